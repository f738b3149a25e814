/**
 * Gateway authorisation with Cedar: may this principal do this action on this model now? The server
 * creates one `Authorizer` from the `policy` config section, calls `authorize` (synchronous, a few µs)
 * per request and `reload` on SIGHUP. A `Decision` that is not `allow` carries `code`:
 * `ERR_POLICY_DENIED` → 403, `ERR_POLICY_ENGINE` → 503; `decisionError` builds the `BulwarkError`.
 * See docs/gateway-auth.md.
 */

/** The authorizer and the helper that turns a refusal into a `BulwarkError`. */
export { Authorizer, DETECTOR_CONTEXT, decisionError } from './authorize.js';
/** The `policy` section of bulwark.yaml: `files`, optional `schemaFile`, `namespace`, `models.<name>.tenant`. */
export { type PolicyConfig, type PolicyConfigInput, policyConfigSchema } from './config.js';
/** The question (`AuthzRequest`), the actions, and the answer (`Decision`). */
export { ACTIONS, type Action, type AuthzRequest, type Decision } from './types.js';
