/**
 * Gateway authentication: who is calling. The server calls `Authenticator.authenticate` once per request
 * with the transport facts (`AuthRequest`) and gets a `Principal` or a `BulwarkError` with an `ERR_AUTH_*`
 * code. HTTP mapping for the gateway: `ERR_AUTH_JWKS_UNAVAILABLE` → 503; every other `ERR_AUTH_*` → 401
 * (`Authenticator.challenge` gives the `WWW-Authenticate` value: Bearer, and DPoP with `jwt.dpop`).
 * See docs/gateway-auth.md.
 */

/** The authenticator: create once from the `auth` config section, `authenticate` per request, `reload` on SIGHUP. */
export { Authenticator, type AuthenticatorOptions } from './authenticate.js';
/** The `auth` section of bulwark.yaml: `require`, `mtls` (trust domains, identity rules, caFile, crlFile), `jwt`, `trustedProxies`. */
export {
  ASYMMETRIC_ALGORITHMS,
  type AuthConfig,
  type AuthConfigInput,
  authConfigSchema,
  type DpopConfig,
  type IdentityRule,
  type JwtConfig,
  type MtlsConfig,
  type TrustedProxy,
} from './config.js';
/** Offline CRLs of a CA bundle (RFC 5280 §6.3), shared by the TLS layer and the forwarded-certificate check. */
export {
  RevocationLists,
  type RevocationListsOptions,
  type RevocationStatus,
  revocationError,
} from './crl.js';
/** RFC 9449 DPoP proofs: the verifier and the replay stores (memory for one replica, Redis for several). */
export { DpopVerifier, MemoryReplayStore, RedisReplayStore, type ReplayStore } from './dpop.js';
export { accessTokenHash, jwkThumbprint } from './dpop-hash.js';
/** RFC 9449 §9 server nonces (`jwt.dpop.nonce`): stateless, shared by replicas through the secret. */
export { DpopNonces, MIN_NONCE_SECRET_BYTES } from './dpop-nonce.js';
/** The client side of DPoP: a key pair and a proof per request (used by `bulwark/client`). */
export { createDpopKey, type DpopAlgorithm, type DpopKey, dpopProof } from './dpop-proof.js';
/** The certificates of a PEM bundle (the TLS layer's client CA bundle and the forwarded one). */
export { pemCertificates } from './forwarded.js';
/** SPIFFE X.509-SVID identity and the RFC 8705 certificate thumbprint. */
export { certificateThumbprint, parseSpiffeId, spiffeIdFromCertificate } from './spiffe.js';
/** The caller (`Principal`) and what the transport hands in (`AuthRequest`). */
export type { AuthRequest, Principal } from './types.js';
