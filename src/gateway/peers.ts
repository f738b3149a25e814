/**
 * What the pipeline needs from authentication (src/gateway/auth/) and authorisation
 * (src/gateway/policy/): the shapes their indexes export. The pipeline depends on these interfaces
 * only, so a stage can be swapped (or disabled for the protections-off benchmark) without the server
 * knowing which implementation runs.
 */
import type { AuthRequest, Principal } from './auth/index.js';
import type { AuthzRequest, Decision } from './policy/index.js';

export {
  Authenticator,
  type AuthRequest,
  authConfigSchema,
  type Principal,
  pemCertificates,
  RedisReplayStore,
  RevocationLists,
} from './auth/index.js';
export {
  type Action,
  Authorizer,
  type AuthzRequest,
  DETECTOR_CONTEXT,
  type Decision,
  decisionError,
  policyConfigSchema,
} from './policy/index.js';

export interface AuthenticatorLike {
  /** Resolves the caller or throws a BulwarkError with an ERR_AUTH_* code. */
  authenticate(req: AuthRequest): Promise<Principal>;
  reload(): Promise<void> | void;
  close(): Promise<void> | void;
  /** The `WWW-Authenticate` challenge of a 401 with this code (default `Bearer`). */
  challenge?(code: string): string;
  /** The `DPoP-Nonce` to send with every answer (RFC 9449 §9), if nonces are in use. */
  dpopNonce?(): string | undefined;
}

export interface AuthorizerLike {
  authorize(req: AuthzRequest): Decision;
  reload(): Promise<void> | void;
  /**
   * Whether the policies in force read `riskScore` or `queryCount` (Cedar then runs after the
   * detectors); when absent, the pipeline's `policyAfterDetect` option decides.
   */
  readonly readsDetectorContext?: boolean;
}
