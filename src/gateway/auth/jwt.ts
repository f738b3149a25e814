import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import { BulwarkError, type ErrorCode, fsError } from '../../core/index.js';
import type { JwtConfig } from './config.js';
import { TokenCache } from './token-cache.js';

/**
 * JWT access-token verification (RFC 9068 profile) with the JWT BCP (RFC 8725) applied before any
 * key is touched, and a cache of verified tokens so the signature is paid once per token.
 */

/** The verified, non-secret facts of a token that the principal is built from. */
/** Marks a caller named by its client_id (a token without sub): see {@link tokenCallerId}. */
const CLIENT_ID_PREFIX = 'client_id:';

/** The caller a verified token names: `iss|sub`, or `iss|client_id:<client_id>` without sub. */
export function tokenCallerId(t: Pick<VerifiedToken, 'issuer' | 'subject' | 'clientId'>): string {
  return t.subject !== undefined
    ? `${t.issuer}|${t.subject}`
    : `${t.issuer}|${CLIENT_ID_PREFIX}${t.clientId ?? ''}`;
}

export interface VerifiedToken {
  readonly issuer: string;
  readonly subject?: string;
  readonly clientId?: string;
  readonly tenant?: string;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  /** RFC 8705 §3.1 `cnf.x5t#S256` when the token is certificate-bound. */
  readonly boundThumbprint?: string;
  /** RFC 9449 §6.1 `cnf.jkt` when the token is DPoP-bound: the SHA-256 JWK thumbprint of the client's key. */
  readonly boundJkt?: string;
  /** Epoch seconds. */
  readonly exp: number;
}

/**
 * A cache entry: the verified facts, and the key (as jose's key set resolved it) and header that chose
 * it, so that a hit can be checked against the current remote key set.
 */
interface CachedToken {
  readonly verified: VerifiedToken;
  readonly exp: number;
  readonly header: { alg: string; kid?: string };
  readonly key: unknown;
}

/** The token argument of a key lookup made outside a verification (jose reads only its header). */
const NO_TOKEN: FlattenedJWSInput = { payload: '', signature: '' };

/** Header parameters that carry or point at keys: never honoured (RFC 8725 §3.10, §2.6). */
const KEY_BEARING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
/**
 * `kid` is only a lookup key (RFC 8725 §3.10). We still refuse characters that make it dangerous if any
 * downstream code ever uses it as a path or query (`../`, quotes, `;`, spaces, control characters).
 */
const KID_PATTERN = /^[A-Za-z0-9_~+=:-][A-Za-z0-9._~+=:-]{0,255}$/;
/** RFC 9068 §2.2 required claims; exp/iss/aud are always required whatever the config says. */
const ALWAYS_REQUIRED = ['exp', 'iss', 'aud'] as const;

function fail(code: ErrorCode, message: string, cause?: unknown): BulwarkError {
  return new BulwarkError(code, message, cause === undefined ? {} : { cause });
}

function normaliseTyp(t: string): string {
  const l = t.toLowerCase();
  return l.startsWith('application/') ? l.slice('application/'.length) : l;
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '[::1]' || host === 'localhost' || host.startsWith('127.');
}

/** Checks a JWKS document (RFC 7517 §5): public asymmetric keys only. */
export function checkJwks(value: unknown, source: string): JSONWebKeySet {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { keys?: unknown }).keys))
    throw fail('ERR_AUTH_JWKS_INVALID', `${source}: not a JWKS (an object with a "keys" array)`);
  const keys = (value as { keys: unknown[] }).keys;
  if (keys.length === 0) throw fail('ERR_AUTH_JWKS_INVALID', `${source}: the JWKS has no keys`);
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'object' || k === null)
      throw fail('ERR_AUTH_JWKS_INVALID', `${source}: keys[${i}] is not a JWK`);
    const kty = (k as { kty?: unknown }).kty;
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP')
      throw fail(
        'ERR_AUTH_JWKS_INVALID',
        `${source}: keys[${i}] has kty ${String(kty)}; only RSA, EC, OKP public keys`,
      );
    if ('d' in k)
      throw fail('ERR_AUTH_JWKS_INVALID', `${source}: keys[${i}] is a private key; publish public keys only`);
  }
  return value as JSONWebKeySet;
}

export interface JwtVerifierOptions {
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds (tests); defaults to `Date.now`. */
  now?: () => number;
  /** Remote JWKS only: do not fetch at creation (the issuer is down at start; fetched on first use). */
  deferInitialFetch?: boolean;
}

export class JwtVerifier {
  readonly #config: JwtConfig;
  readonly #options: JwtVerifierOptions;
  readonly #cache: TokenCache<CachedToken>;
  readonly #types: ReadonlySet<string>;
  readonly #algorithms: ReadonlySet<string>;
  readonly #required: readonly string[];
  #keys: JWTVerifyGetKey;
  #remote: ReturnType<typeof createRemoteJWKSet> | undefined;

  private constructor(config: JwtConfig, options: JwtVerifierOptions, keys: JWTVerifyGetKey) {
    this.#config = config;
    this.#options = options;
    this.#cache = new TokenCache(config.cacheSize);
    this.#types = new Set(config.types.map(normaliseTyp));
    this.#algorithms = new Set(config.algorithms);
    this.#required = [...new Set<string>([...ALWAYS_REQUIRED, ...config.requiredClaims])];
    this.#keys = keys;
  }

  static async create(config: JwtConfig, options: JwtVerifierOptions = {}): Promise<JwtVerifier> {
    const v = new JwtVerifier(config, options, () => {
      throw fail('ERR_INTERNAL', 'key set not loaded');
    });
    if (options.deferInitialFetch === true && 'url' in config.jwks) v.#ensureRemote(config.jwks);
    else await v.reload();
    return v;
  }

  #ensureRemote(jwks: Extract<JwtConfig['jwks'], { url: string }>): ReturnType<typeof createRemoteJWKSet> {
    if (this.#remote !== undefined) return this.#remote;
    const url = new URL(jwks.url);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname)))
      throw fail(
        'ERR_AUTH_JWKS_INVALID',
        `jwks.url must be https (plain http only on loopback): ${url.origin}`,
      );
    this.#remote = createRemoteJWKSet(url, {
      cooldownDuration: jwks.cooldownMs,
      cacheMaxAge: jwks.cacheMaxAgeMs,
      timeoutDuration: jwks.timeoutMs,
      headers: { accept: 'application/jwk-set+json, application/json' },
      ...(this.#options.fetch === undefined ? {} : { [customFetch]: this.#options.fetch }),
    });
    this.#keys = this.#remote;
    return this.#remote;
  }

  /** Drops every cached verified token, and lets no verification started before join later requests. */
  clear(): void {
    this.#generation += 1;
    this.#cache.clear();
    this.#inFlight.clear();
  }

  /** Number of verified tokens held by the cache (for metrics and tests). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * Re-reads the JWKS file, or forces a refetch of the remote JWKS (rotation without restart), and
   * empties the verified-token cache so tokens signed by a withdrawn key stop working at once.
   */
  async reload(): Promise<void> {
    // The cache goes first, whatever happens to the refetch: an operator reloads to withdraw a key, and
    // an issuer that is down at that moment must not keep tokens signed by that key in service.
    this.clear();
    const jwks = this.#config.jwks;
    if ('file' in jwks) {
      let text: string;
      try {
        text = await readFile(jwks.file, 'utf8');
      } catch (e) {
        throw fsError(e, jwks.file, 'cannot read JWKS');
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw fail('ERR_AUTH_JWKS_INVALID', `${jwks.file}: not JSON`, e);
      }
      this.#keys = createLocalJWKSet(checkJwks(parsed, jwks.file));
    } else {
      const remote = this.#ensureRemote(jwks);
      const url = new URL(jwks.url);
      try {
        await remote.reload();
      } catch (e) {
        throw fail(
          'ERR_AUTH_JWKS_UNAVAILABLE',
          `the JWKS at ${url.origin}${url.pathname} could not be fetched`,
          e,
        );
      }
    }
    // Verifications that ran during the refetch used the previous set: none of them is kept.
    this.clear();
  }

  /**
   * Verifies a compact JWT access token. Order matters: the header is screened (size, alg allow-list,
   * key-bearing headers, `crit`, `kid`, `typ`) before a key is looked up, so a hostile header never
   * reaches key selection; then jose verifies the signature with a key from OUR key set only, and the
   * claims (`iss`, `aud`, `exp`, `nbf`, required claims) with bounded skew.
   */
  async verify(token: string): Promise<VerifiedToken> {
    const nowMs = (this.#options.now ?? Date.now)();
    const nowS = Math.floor(nowMs / 1000);
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const hit = this.#cache.get(cacheKey, nowS);
    if (hit !== undefined && (this.#remote === undefined || (await this.#stillServed(hit))))
      return hit.verified;
    // Single flight: concurrent requests with the same new token share one verification (a client's first
    // burst would otherwise pay one signature check per request).
    const pending = this.#inFlight.get(cacheKey);
    if (pending !== undefined) return pending;
    const p = this.#verifyUncached(token, cacheKey, nowMs, nowS);
    this.#inFlight.set(cacheKey, p);
    try {
      return await p;
    } finally {
      if (this.#inFlight.get(cacheKey) === p) this.#inFlight.delete(cacheKey);
    }
  }

  /**
   * A remote key set changes without a reload: jose refetches it once it is older than `cacheMaxAgeMs`
   * or when a token names an unknown `kid`. A cached token stays served only while the current set
   * still resolves its header to the very key that verified it (jose hands out one key object per
   * fetched set, so any refetch sends each cached token through one full verification against the new
   * set: a withdrawn key stops working within one refetch, not at the token's `exp`). The lookup also
   * makes jose refetch a set older than `cacheMaxAgeMs` first; an issuer that cannot be reached then
   * refuses the token (ERR_AUTH_JWKS_UNAVAILABLE), as it would a new one.
   */
  async #stillServed(hit: CachedToken): Promise<boolean> {
    try {
      return (await this.#getKey(hit.header, NO_TOKEN)) === hit.key;
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys)
        return false;
      throw mapJoseError(e);
    }
  }

  readonly #inFlight = new Map<string, Promise<VerifiedToken>>();
  /** Bumped by reload/clear: a verification that started before must not fill the emptied cache. */
  #generation = 0;

  async #verifyUncached(
    token: string,
    cacheKey: string,
    nowMs: number,
    nowS: number,
  ): Promise<VerifiedToken> {
    const generation = this.#generation;
    this.#screen(token);
    let payload: JWTPayload;
    let header: ProtectedHeaderParameters;
    let key: unknown;
    try {
      const r = await jwtVerify(token, this.#getKey, {
        algorithms: [...this.#algorithms],
        issuer: this.#config.issuer,
        audience: this.#config.audience,
        clockTolerance: this.#config.clockSkewSeconds,
        requiredClaims: [...this.#required],
        currentDate: new Date(nowMs),
      });
      payload = r.payload;
      header = r.protectedHeader;
      key = r.key;
    } catch (e) {
      throw mapJoseError(e);
    }
    const verified = this.#toVerified(payload, nowS);
    if (generation === this.#generation)
      this.#cache.set(cacheKey, {
        verified,
        exp: verified.exp,
        header: { alg: header.alg as string, ...(header.kid === undefined ? {} : { kid: header.kid }) },
        key,
      });
    return verified;
  }

  /** Key lookup through OUR set only; failures other than "no such key" mean the JWKS is unavailable. */
  readonly #getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await this.#keys(header, token);
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys)
        throw e;
      if (
        e instanceof joseErrors.JOSEError &&
        (e.code === 'ERR_JWK_INVALID' || e.code === 'ERR_JOSE_NOT_SUPPORTED')
      )
        throw e;
      throw fail('ERR_AUTH_JWKS_UNAVAILABLE', 'the issuer JWKS could not be fetched', e);
    }
  };

  #screen(token: string): void {
    if (token.length > this.#config.maxTokenBytes)
      throw fail('ERR_AUTH_TOKEN_MALFORMED', `token longer than ${this.#config.maxTokenBytes} bytes`);
    const parts = token.split('.');
    if (
      parts.length !== 3 ||
      parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) ||
      parts[0] === '' ||
      parts[1] === ''
    )
      throw fail('ERR_AUTH_TOKEN_MALFORMED', 'token is not a compact JWS (three base64url parts)');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (e) {
      throw fail('ERR_AUTH_TOKEN_MALFORMED', 'token header is not base64url JSON', e);
    }
    const alg = header.alg;
    // RFC 8725 §3.1/§3.2: an allow-list of asymmetric algorithms; `none` and HMAC never (a verifier with a
    // public key would otherwise accept a MAC keyed with that public key).
    if (typeof alg !== 'string' || !this.#algorithms.has(alg))
      throw fail(
        'ERR_AUTH_TOKEN_ALG',
        `token algorithm ${typeof alg === 'string' ? JSON.stringify(alg.slice(0, 16)) : 'missing'} is not allowed`,
      );
    for (const h of KEY_BEARING_HEADERS) {
      if (h in header)
        throw fail(
          'ERR_AUTH_TOKEN_HEADER',
          `token header "${h}" is not accepted: keys come only from the configured JWKS`,
        );
    }
    // RFC 7515 §4.1.11: a recipient MUST reject a JWS whose `crit` lists extensions it does not understand;
    // we implement none, so any `crit` is refused.
    if ('crit' in header)
      throw fail('ERR_AUTH_TOKEN_CRIT', 'token header has critical extensions (crit) that are not supported');
    if ('b64' in header) throw fail('ERR_AUTH_TOKEN_CRIT', 'token header b64 (RFC 7797) is not supported');
    if (header.kid !== undefined && (typeof header.kid !== 'string' || !KID_PATTERN.test(header.kid)))
      throw fail('ERR_AUTH_TOKEN_KID', 'token kid is malformed');
    // RFC 9068 §4: the resource server MUST check typ is at+jwt (explicit typing, RFC 8725 §3.11), so an
    // ID token or any other JWT from the same issuer cannot be replayed as an access token.
    if (typeof header.typ !== 'string' || !this.#types.has(normaliseTyp(header.typ)))
      throw fail(
        'ERR_AUTH_TOKEN_TYPE',
        `token typ ${typeof header.typ === 'string' ? JSON.stringify(header.typ.slice(0, 32)) : 'missing'} is not an access-token type`,
      );
    // CVE-2022-21449 ("psychic signatures"): an all-zero ECDSA signature verified on some JVMs. Node is not
    // affected, but an all-zero signature is never valid for any algorithm, so refuse it outright.
    const sig = Buffer.from(parts[2]!, 'base64url');
    if (sig.length === 0 || sig.every((b) => b === 0))
      throw fail('ERR_AUTH_TOKEN_SIGNATURE', 'token signature is empty or all zero');
  }

  #toVerified(p: JWTPayload, nowS: number): VerifiedToken {
    const exp = p.exp as number;
    // jose checks that iat is a number but, without maxTokenAge, not that it is in the past. A token
    // issued "later" is not valid yet (as for nbf), and its iat would also shrink the lifetime checked
    // below: iat = exp - 60 on a token valid for a year passed maxLifetimeSeconds.
    if (typeof p.iat === 'number' && p.iat > nowS + this.#config.clockSkewSeconds)
      throw fail('ERR_AUTH_TOKEN_NOT_YET_VALID', 'token iat is in the future');
    if (
      this.#config.maxLifetimeSeconds > 0 &&
      typeof p.iat === 'number' &&
      exp - p.iat > this.#config.maxLifetimeSeconds
    )
      throw fail(
        'ERR_AUTH_TOKEN_LIFETIME',
        `token lifetime ${exp - p.iat}s exceeds ${this.#config.maxLifetimeSeconds}s`,
      );
    if (exp <= nowS - this.#config.clockSkewSeconds) throw fail('ERR_AUTH_TOKEN_EXPIRED', 'token expired');
    const claims = this.#config.claims;
    const tenantRaw = p[claims.tenant];
    if (tenantRaw !== undefined && typeof tenantRaw !== 'string')
      throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', `token claim ${claims.tenant} must be a string`);
    const roles = stringList(p[claims.roles], claims.roles);
    const scopes = stringList(p[claims.scopes], claims.scopes);
    const clientId = p['client_id'];
    if (clientId !== undefined && typeof clientId !== 'string')
      throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', 'token claim client_id must be a string');
    if (p.sub !== undefined && typeof p.sub !== 'string')
      throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', 'token claim sub must be a string');
    // The caller's id is `iss|sub`, or `iss|client_id:<client_id>` for a token without sub (only when sub
    // is dropped from requiredClaims). A token naming neither has no caller; and while sub is optional, a
    // sub of the second form is refused, so the two kinds of id never meet: a client whose client_id is
    // a user's sub (dynamic registration lets a client choose it) would otherwise become that user for
    // the policies, the limiter and the detectors.
    if (p.sub === undefined && clientId === undefined)
      throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', 'token has neither sub nor client_id: no caller to name');
    if (
      typeof p.sub === 'string' &&
      p.sub.startsWith(CLIENT_ID_PREFIX) &&
      !this.#config.requiredClaims.includes('sub')
    )
      throw fail(
        'ERR_AUTH_TOKEN_CLAIM_MISSING',
        `token claim sub may not begin with "${CLIENT_ID_PREFIX}" while sub is optional (requiredClaims): it would name a client`,
      );
    let bound: string | undefined;
    let jkt: string | undefined;
    const cnf = p['cnf'];
    if (cnf !== undefined) {
      if (typeof cnf !== 'object' || cnf === null)
        throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', 'token claim cnf must be an object');
      const t = (cnf as Record<string, unknown>)['x5t#S256'];
      if (t !== undefined) {
        if (typeof t !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(t))
          throw fail('ERR_AUTH_TOKEN_BINDING', 'token cnf x5t#S256 is not a base64url SHA-256 thumbprint');
        bound = t;
      }
      const j = (cnf as Record<string, unknown>)['jkt'];
      if (j !== undefined) {
        if (typeof j !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(j))
          throw fail('ERR_AUTH_TOKEN_BINDING', 'token cnf jkt is not a base64url SHA-256 JWK thumbprint');
        jkt = j;
      }
    }
    return {
      issuer: p.iss as string,
      ...(p.sub === undefined ? {} : { subject: p.sub }),
      ...(clientId === undefined ? {} : { clientId }),
      ...(tenantRaw === undefined ? {} : { tenant: tenantRaw }),
      roles,
      scopes,
      ...(bound === undefined ? {} : { boundThumbprint: bound }),
      ...(jkt === undefined ? {} : { boundJkt: jkt }),
      exp,
    };
  }
}

/** A claim that is a JSON array of strings or one space-separated string (RFC 9068 §2.2.3 `scope`). */
function stringList(v: unknown, name: string): readonly string[] {
  if (v === undefined) return [];
  if (typeof v === 'string') return [...new Set(v.split(' ').filter((s) => s !== ''))].sort();
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return [...new Set(v as string[])].sort();
  throw fail('ERR_AUTH_TOKEN_CLAIM_MISSING', `token claim ${name} must be a string or an array of strings`);
}

/** Maps jose's error classes to our stable codes; anything unexpected is a signature failure (fail closed). */
function mapJoseError(e: unknown): BulwarkError {
  if (e instanceof BulwarkError) return e;
  if (e instanceof joseErrors.JWTExpired) return fail('ERR_AUTH_TOKEN_EXPIRED', 'token expired', e);
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    const { claim, reason } = e;
    if (reason === 'missing')
      return fail('ERR_AUTH_TOKEN_CLAIM_MISSING', `token claim ${claim} is missing`, e);
    if (claim === 'iss') return fail('ERR_AUTH_TOKEN_ISSUER', 'token issuer is not the configured issuer', e);
    if (claim === 'aud')
      return fail('ERR_AUTH_TOKEN_AUDIENCE', 'token audience does not name this gateway', e);
    if ((claim === 'nbf' || claim === 'iat') && reason === 'check_failed')
      return fail('ERR_AUTH_TOKEN_NOT_YET_VALID', `token ${claim} is in the future`, e);
    return fail('ERR_AUTH_TOKEN_CLAIM_MISSING', `token claim ${claim} is invalid`, e);
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed)
    return fail('ERR_AUTH_TOKEN_ALG', 'token algorithm is not allowed', e);
  if (e instanceof joseErrors.JWSSignatureVerificationFailed)
    return fail('ERR_AUTH_TOKEN_SIGNATURE', 'token signature does not verify', e);
  if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys)
    return fail(
      'ERR_AUTH_TOKEN_KEY_UNKNOWN',
      'no single key of the issuer JWKS matches the token kid and alg',
      e,
    );
  if (e instanceof joseErrors.JWKSTimeout)
    return fail('ERR_AUTH_JWKS_UNAVAILABLE', 'JWKS fetch timed out', e);
  if (e instanceof joseErrors.JWKSInvalid)
    return fail('ERR_AUTH_JWKS_UNAVAILABLE', 'JWKS response is not a valid JWKS', e);
  if (e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JWSInvalid)
    return fail('ERR_AUTH_TOKEN_MALFORMED', 'token is malformed', e);
  if (e instanceof joseErrors.JOSEError) {
    // e.g. a JWK in the set that cannot be imported for the algorithm: treat as no usable key.
    if (e.code === 'ERR_JWK_INVALID' || e.code === 'ERR_JOSE_NOT_SUPPORTED')
      return fail('ERR_AUTH_TOKEN_KEY_UNKNOWN', 'the issuer key cannot be used with the token algorithm', e);
    return fail('ERR_AUTH_TOKEN_SIGNATURE', 'token verification failed', e);
  }
  // Anything else during verification: refuse as an invalid token (key-fetch failures were mapped to
  // ERR_AUTH_JWKS_UNAVAILABLE by the key getter, and by reload()).
  return fail('ERR_AUTH_TOKEN_SIGNATURE', 'token verification failed', e);
}
