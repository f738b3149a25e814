import { z } from 'zod';

/**
 * The `auth` section of `bulwark.yaml`. Every field is validated at start (errors name the key path);
 * unknown keys are refused so a typo such as `audiance` cannot silently disable a check.
 */

/** Asymmetric JWS algorithms we accept (RFC 7518 §3, RFC 8037). HS* and `none` are never allowed:
 * a verifier holding only public keys must not accept MACs (RFC 8725 §2.1, §3.1). */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

const spiffeIdSchema = z
  .string()
  .regex(
    /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/,
    'a SPIFFE id spiffe://trust-domain/path',
  );
const trustDomainSchema = z
  .string()
  .regex(/^[a-z0-9._-]{1,255}$/, 'a SPIFFE trust domain (lower-case, no scheme)');

const jwksSchema = z.union([
  z.strictObject({
    /** A local JWKS file (RFC 7517 §5); re-read on `reload()`. */
    file: z.string().min(1),
  }),
  z.strictObject({
    /** The issuer's `jwks_uri`; https required unless the host is loopback (tests, sidecars). */
    url: z.url(),
    /** Minimum time between two refetches triggered by an unknown `kid` (jose `cooldownDuration`). */
    cooldownMs: z.number().int().min(0).max(3_600_000).default(30_000),
    /** Keys are refetched in the background after this age (jose `cacheMaxAge`). */
    cacheMaxAgeMs: z.number().int().min(1000).max(86_400_000).default(600_000),
    /** Fetch timeout (jose `timeoutDuration`). */
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  }),
]);

/**
 * RFC 9449 DPoP: access tokens bound to a key the client holds (`cnf.jkt`), each request carrying a fresh
 * proof signed with it. For clients without mTLS certificates: a stolen token is useless without the key.
 */
export const dpopConfigSchema = z.strictObject({
  /**
   * `if-present`: DPoP-bound tokens must come with the DPoP scheme and a valid proof, plain bearer tokens
   * are still accepted; `required`: every token must be DPoP-bound.
   */
  mode: z.enum(['if-present', 'required']).default('if-present'),
  /**
   * The gateway's public origins (`https://gateway.example:8443`): a proof's `htu` must be one of them
   * followed by the request's path (RFC 9449 §4.3 step 9). Configured, never taken from the Host header,
   * so a proof made for another server is not accepted here.
   */
  origins: z
    .array(
      z.url().refine((u) => {
        const x = new URL(u);
        return (
          (x.protocol === 'https:' || x.protocol === 'http:') &&
          x.pathname === '/' &&
          x.search === '' &&
          x.hash === ''
        );
      }, 'an origin: http(s)://host[:port] with no path, query or fragment'),
    )
    .min(1),
  /** Proof algorithms (asymmetric only; RFC 9449 §4.2). */
  algorithms: z.array(z.enum(ASYMMETRIC_ALGORITHMS)).min(1).default(['ES256', 'EdDSA', 'Ed25519', 'PS256']),
  /** A proof is accepted for this long after its `iat` (RFC 9449 §11.1); its `jti` is remembered as long. */
  maxAgeSeconds: z.number().int().min(1).max(600).default(60),
  /** Refuse proofs larger than this many bytes before parsing them. */
  maxProofBytes: z.number().int().min(256).max(16_384).default(4096),
  /** Memory replay store only: the most unexpired proofs kept; when full, new proofs are refused (503). */
  maxReplayEntries: z.number().int().min(1000).max(10_000_000).default(1_000_000),
  /**
   * Server-provided nonces (RFC 9449 §9): every proof must carry a nonce the gateway issued in a
   * `DPoP-Nonce` header within the last one to two `lifetimeSeconds`, so proofs cannot be made in
   * advance. Stateless: replicas that share the secret file accept each other's nonces.
   */
  nonce: z
    .strictObject({
      /** At least 32 bytes of secret, the same file at every replica (a mounted secret). */
      secretFile: z.string().min(1),
      lifetimeSeconds: z.number().int().min(5).max(3600).default(60),
    })
    .optional(),
});
export type DpopConfig = z.infer<typeof dpopConfigSchema>;

export const jwtConfigSchema = z.strictObject({
  /** Expected `iss` (RFC 9068 §4 step 3: exact match). */
  issuer: z.string().min(1),
  /** Accepted `aud` values: the token must name at least one (RFC 7519 §4.1.3). */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  jwks: jwksSchema,
  /** Algorithm allow-list (RFC 8725 §3.1); asymmetric only. */
  algorithms: z.array(z.enum(ASYMMETRIC_ALGORITHMS)).min(1).default(['ES256', 'RS256', 'PS256', 'EdDSA']),
  /** Tolerance for `exp`/`nbf`/`iat`, bounded to 5 minutes. */
  clockSkewSeconds: z.number().int().min(0).max(300).default(30),
  /** Largest accepted token lifetime `exp - iat` when `iat` is present (0 disables the check). */
  maxLifetimeSeconds: z.number().int().min(0).max(31_536_000).default(86_400),
  /** Accepted `typ` header values (RFC 9068 §2.1: `at+jwt`; media type form also accepted). */
  types: z.array(z.string().min(1)).min(1).default(['at+jwt', 'application/at+jwt']),
  /**
   * RFC 8705 §3 certificate binding: `required` refuses tokens without `cnf.x5t#S256`; `if-present`
   * checks the binding when the token carries one (a bound token without a client certificate is
   * refused); `off` ignores `cnf` (not recommended).
   */
  certificateBinding: z.enum(['required', 'if-present', 'off']).default('if-present'),
  /** Claims that must be present; RFC 9068 §2.2 lists all of these as REQUIRED. exp, iss, aud always are. */
  requiredClaims: z
    .array(z.enum(['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti', 'nbf']))
    .default(['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']),
  /** Where tenant, roles and scopes come from in the token. */
  claims: z
    .strictObject({
      tenant: z.string().min(1).default('tenant'),
      roles: z.string().min(1).default('roles'),
      scopes: z.string().min(1).default('scope'),
    })
    .default({ tenant: 'tenant', roles: 'roles', scopes: 'scope' }),
  /** Verified-token cache size (entries); 0 disables the cache. */
  cacheSize: z.number().int().min(0).max(1_000_000).default(10_000),
  /** DPoP-bound tokens (RFC 9449); absent: the DPoP scheme is refused, and so are DPoP-bound tokens. */
  dpop: dpopConfigSchema.optional(),
  /** Refuse tokens larger than this many bytes before parsing them. */
  maxTokenBytes: z.number().int().min(256).max(65_536).default(8192),
});
export type JwtConfig = z.infer<typeof jwtConfigSchema>;

const identityRuleSchema = z.strictObject({
  /** An exact SPIFFE id, or a prefix ending in `/*` (`spiffe://prod.example/ns/fraud/*`). */
  spiffeId: z.string().regex(/^spiffe:\/\/[^*]+(\/\*)?$/, 'a SPIFFE id, optionally ending in /*'),
  tenant: z.string().min(1).optional(),
  roles: z.array(z.string().min(1)).default([]),
});
export type IdentityRule = z.infer<typeof identityRuleSchema>;

export const mtlsConfigSchema = z.strictObject({
  /** SPIFFE trust domains whose workloads we accept (SPIFFE X509-SVID §5.2); at least one. */
  trustDomains: z.array(trustDomainSchema).min(1),
  /** Static tenant/roles for workload identities (first matching rule wins). */
  identities: z.array(identityRuleSchema).default([]),
  /**
   * PEM CA bundle the forwarded client certificates are re-verified against (the proxy verified them,
   * we check again: defence in depth). Required when `trustedProxies` is set.
   */
  caFile: z.string().min(1).optional(),
  /**
   * PEM file of CRLs (`X509 CRL` blocks, one per CA of `caFile`) forwarded certificates are checked
   * against (RFC 5280 §6.3, offline: no OCSP, no fetching); needs `caFile`. Re-read on `reload()`.
   */
  crlFile: z.string().min(1).optional(),
});
export type MtlsConfig = z.infer<typeof mtlsConfigSchema>;

const trustedProxySchema = z.strictObject({
  /** The proxy's own SPIFFE id, from ITS mTLS client certificate. */
  spiffeId: spiffeIdSchema,
  /** How the proxy forwards the client certificate: Envoy XFCC (`Cert="..."`) or URL-encoded PEM. */
  format: z.enum(['xfcc', 'pem']).default('xfcc'),
});
export type TrustedProxy = z.infer<typeof trustedProxySchema>;

export const authConfigSchema = z
  .strictObject({
    /** Which credentials a request must carry; at least one identity source is always required. */
    require: z.enum(['certificate', 'token', 'certificate-and-token', 'either']).default('token'),
    mtls: mtlsConfigSchema.optional(),
    jwt: jwtConfigSchema.optional(),
    trustedProxies: z.array(trustedProxySchema).default([]),
  })
  .superRefine((c, ctx) => {
    const needsToken = c.require === 'token' || c.require === 'certificate-and-token';
    const needsCert = c.require === 'certificate' || c.require === 'certificate-and-token';
    if (needsToken && c.jwt === undefined)
      ctx.addIssue({ code: 'custom', path: ['jwt'], message: `required when require is ${c.require}` });
    if (needsCert && c.mtls === undefined)
      ctx.addIssue({ code: 'custom', path: ['mtls'], message: `required when require is ${c.require}` });
    if (c.require === 'either' && (c.mtls === undefined || c.jwt === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['require'],
        message: 'either needs both the mtls and jwt sections',
      });
    if (c.trustedProxies.length > 0 && c.mtls?.caFile === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['mtls', 'caFile'],
        message: 'required when trustedProxies is set',
      });
    if (c.mtls?.crlFile !== undefined && c.mtls.caFile === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['mtls', 'crlFile'],
        message: 'needs mtls.caFile (the CAs that issued the CRLs)',
      });
    if (c.jwt?.certificateBinding === 'required' && c.mtls === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['jwt', 'certificateBinding'],
        message: 'required binding needs the mtls section',
      });
  });
/** The parsed `auth` section (defaults filled in). */
export type AuthConfig = z.output<typeof authConfigSchema>;
/** The `auth` section as written in YAML (defaults optional). */
export type AuthConfigInput = z.input<typeof authConfigSchema>;
