import type { Principal } from '../auth/index.js';

/** The gateway operations a policy can permit. */
export const ACTIONS = ['predict', 'explain', 'admin', 'read-metrics'] as const;
export type Action = (typeof ACTIONS)[number];

/** One authorisation question: may `principal` do `action` on `resource` in `context`? */
export interface AuthzRequest {
  readonly principal: Principal;
  readonly action: Action;
  /** The model addressed; `tenant` overrides the `policy.models` config entry for this model. */
  readonly resource: { readonly model: string; readonly version?: string; readonly tenant?: string };
  /**
   * Flat request context. Values are typed by the schema's context declaration for the action: a number
   * declared `decimal` becomes a Cedar decimal (4 places), `Long` must be an integer, a string declared
   * `ipaddr` becomes an IP address. Without a schema: integers are Long, other numbers decimal.
   * Conventional keys: time (epoch s), clientAddress, riskScore, queryCount.
   */
  readonly context: Readonly<Record<string, string | number | boolean>>;
}

/** The answer; `allow` is false unless a permit matched, no forbid matched and the engine did not fail. */
export interface Decision {
  readonly allow: boolean;
  /** Ids of the determining policies (the permits when allowed, the forbids when forbidden). */
  readonly reasons: readonly string[];
  /** Evaluation errors (policy id: message) and engine failures; non-empty errors never allow by themselves. */
  readonly errors: readonly string[];
  /**
   * Why not allowed: `ERR_POLICY_DENIED` (403: no permit, or a forbid) or `ERR_POLICY_ENGINE` (503: the
   * engine failed or the request did not conform to the schema). Undefined when allowed.
   */
  readonly code?: 'ERR_POLICY_DENIED' | 'ERR_POLICY_ENGINE';
}
