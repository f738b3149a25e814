import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  type CryptoKey,
  decodeProtectedHeader,
  importJWK,
  type JWK,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import { BulwarkError } from '../../core/index.js';
import type { DpopConfig } from './config.js';
import { accessTokenHash, jwkThumbprint } from './dpop-hash.js';
import type { DpopNonces } from './dpop-nonce.js';

/**
 * RFC 9449 (OAuth 2.0 Demonstrating Proof of Possession) on the resource-server side: the checks of
 * §4.3 on the `DPoP` header of each request, the access-token hash `ath` and the key binding `cnf.jkt`
 * (§6.1, §7.1), and the `jti` replay check of §11.1 in a store every replica shares. Freshness comes
 * from `iat` within `maxAgeSeconds` and the replay store, and with `dpop.nonce` also from server-provided
 * nonces (§9, dpop-nonce.ts), which the client cannot make in advance.
 */

/** Records proof ids; `claim` is true only the first time a key is seen within `ttlMs`. */
export interface ReplayStore {
  claim(key: string, ttlMs: number): Promise<boolean>;
  close?(): Promise<void>;
}

/**
 * One replica's replay store. Every entry lives the same time, so insertion order is expiry order: the
 * expired ones are dropped from the front as new ones arrive. A store full of unexpired proofs refuses
 * (ERR_AUTH_DPOP_UNAVAILABLE): forgetting a proof id early would let that proof be replayed.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #seen = new Map<string, number>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(maxEntries: number, now: () => number = Date.now) {
    this.#max = maxEntries;
    this.#now = now;
  }

  get size(): number {
    return this.#seen.size;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.#now();
    for (const [k, expires] of this.#seen) {
      if (expires > now) break;
      this.#seen.delete(k);
    }
    const expires = this.#seen.get(key);
    if (expires !== undefined && expires > now) return false;
    if (this.#seen.size >= this.#max)
      throw new BulwarkError(
        'ERR_AUTH_DPOP_UNAVAILABLE',
        `the DPoP replay store holds ${this.#max} unexpired proofs (dpop.maxReplayEntries)`,
      );
    this.#seen.set(key, now + ttlMs);
    return true;
  }
}

/** Replay store shared by every replica: `SET key 1 PX ttl NX` is atomic in Redis. */
export class RedisReplayStore implements ReplayStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    let r: string | null;
    try {
      r = await this.#redis.set(`${this.#prefix}${key}`, '1', 'PX', ttlMs, 'NX');
    } catch (e) {
      throw new BulwarkError('ERR_AUTH_DPOP_UNAVAILABLE', 'the DPoP replay store (Redis) cannot be reached', {
        cause: e,
      });
    }
    return r === 'OK';
  }
}

/** What a DPoP check needs of the request. */
export interface DpopRequest {
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The request target's path (`req.url`; its query is ignored, RFC 9449 §4.3 step 9). */
  readonly url: string;
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const MAX_JTI = 256;
/** Imported proof keys kept (one per client key in use). */
const MAX_KEYS = 10_000;

function invalid(message: string, cause?: unknown): BulwarkError {
  return new BulwarkError('ERR_AUTH_DPOP_INVALID', message, cause === undefined ? {} : { cause });
}

/** The path part of a URL, normalised as the WHATWG parser does (dot segments, percent-encoding case). */
function pathOf(url: string, base: string): string {
  return new URL(url, base).pathname;
}

export class DpopVerifier {
  readonly #config: DpopConfig;
  readonly #skew: number;
  readonly #store: ReplayStore;
  readonly #algorithms: ReadonlySet<string>;
  readonly #origins: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #keys = new Map<string, CryptoKey>();
  #nonces: DpopNonces | null;

  constructor(
    config: DpopConfig,
    clockSkewSeconds: number,
    store: ReplayStore,
    now: () => number = Date.now,
    nonces: DpopNonces | null = null,
  ) {
    this.#nonces = nonces;
    this.#config = config;
    this.#skew = clockSkewSeconds;
    this.#store = store;
    this.#algorithms = new Set(config.algorithms);
    this.#origins = new Set(config.origins.map((o) => new URL(o).origin));
    this.#now = now;
  }

  get mode(): DpopConfig['mode'] {
    return this.#config.mode;
  }

  get algorithms(): readonly string[] {
    return this.#config.algorithms;
  }

  get store(): ReplayStore {
    return this.#store;
  }

  /** Replaces the nonces (a reloaded secret). */
  setNonces(nonces: DpopNonces | null): void {
    this.#nonces = nonces;
  }

  /** The nonce to hand out in `DPoP-Nonce` (undefined without `dpop.nonce`). */
  nonce(): string | undefined {
    return this.#nonces?.current();
  }

  /**
   * Checks one proof for one request and access token (RFC 9449 §4.3, §7.1) bound to the key whose
   * RFC 7638 thumbprint is `boundJkt` (the token's `cnf.jkt`), and records its `jti`. The header is
   * screened before the signature is checked, and the replay store is written only for a proof that
   * verified and is signed by the token's own key: neither forged proofs nor someone holding a stolen
   * token with a key of their own can fill it.
   */
  async verify(proof: string, req: DpopRequest, accessToken: string, boundJkt: string): Promise<void> {
    const nowMs = this.#now();
    const header = this.#screen(proof);
    const jkt = jwkThumbprint(header.jwk as JWK);
    if (jkt === null) throw invalid('DPoP proof jwk has no RFC 7638 thumbprint (kty EC, OKP or RSA)');
    const key = await this.#publicKey(header.jwk as JWK, header.alg as string, jkt);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(proof, key, {
        algorithms: [...this.#algorithms],
        typ: 'dpop+jwt',
        requiredClaims: ['jti', 'htm', 'htu', 'iat'],
        currentDate: new Date(nowMs),
        clockTolerance: this.#skew,
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWSSignatureVerificationFailed)
        throw invalid('DPoP proof signature does not verify', e);
      if (e instanceof joseErrors.JWTClaimValidationFailed)
        throw invalid(`DPoP proof claim ${e.claim} is ${e.reason === 'missing' ? 'missing' : 'invalid'}`, e);
      throw invalid('DPoP proof is not a valid JWS', e);
    }
    const { jti, htm, htu, iat, ath, nonce } = payload as JWTPayload & {
      htm?: unknown;
      htu?: unknown;
      ath?: unknown;
      nonce?: unknown;
    };
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI)
      throw invalid(`DPoP proof jti must be a string of 1 to ${MAX_JTI} characters`);
    if (htm !== req.method) throw invalid('DPoP proof htm is not the request method');
    if (typeof htu !== 'string') throw invalid('DPoP proof htu must be a string');
    let target: URL;
    try {
      target = new URL(htu);
    } catch {
      throw invalid('DPoP proof htu is not a URL');
    }
    if (!this.#origins.has(target.origin)) throw invalid('DPoP proof htu is not an origin of this gateway');
    if (target.pathname !== pathOf(req.url, target.origin))
      throw invalid('DPoP proof htu is not the request URL');
    const nowS = nowMs / 1000;
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('DPoP proof iat must be a number');
    if (iat > nowS + this.#skew) throw invalid('DPoP proof iat is in the future');
    if (iat < nowS - this.#config.maxAgeSeconds - this.#skew)
      throw invalid(`DPoP proof is older than ${this.#config.maxAgeSeconds} s`);
    // §7.1: with an access token, ath is required and must hash that token.
    if (ath !== accessTokenHash(accessToken))
      throw invalid('DPoP proof ath is not the hash of the access token');
    if (jkt !== boundJkt) throw invalid('the DPoP proof key is not the key the token is bound to');
    // §4.3 step 10, §9: last of the checks, so a client told to use a nonce is not sent back for one
    // over a proof that fails for another reason; and before the jti is recorded.
    this.#nonces?.check(nonce);
    // The accepted window for a proof is [iat - skew, iat + maxAge + skew]; it was stored at or after
    // iat - skew, so remembering it maxAge + 2 skew covers every moment it could still be accepted.
    const ttlMs = (this.#config.maxAgeSeconds + 2 * this.#skew) * 1000;
    const seen = createHash('sha256').update(jkt).update('\0').update(jti).digest('base64url');
    if (!(await this.#store.claim(seen, ttlMs)))
      throw new BulwarkError('ERR_AUTH_DPOP_REPLAY', 'DPoP proof already used (replayed jti)');
  }

  /**
   * The proof's public key, imported once per key and algorithm: a client signs every request with the
   * same key, and importing a JWK cost about half of a proof's check (bench gateway-auth). Keyed by the
   * algorithm and the RFC 7638 thumbprint, which covers every member that defines the key, so two JWKs
   * with one thumbprint are the same public key; only keys that imported as public keys are kept, and
   * at most {@link MAX_KEYS} (the oldest goes first).
   */
  async #publicKey(jwk: JWK, alg: string, jkt: string): Promise<CryptoKey> {
    const id = `${alg} ${jkt}`;
    const hit = this.#keys.get(id);
    if (hit !== undefined) return hit;
    let key: CryptoKey | Uint8Array;
    try {
      key = await importJWK({ ...jwk, ext: true }, alg);
    } catch (e) {
      throw invalid('DPoP proof jwk is not a key for its algorithm', e);
    }
    if (key instanceof Uint8Array || key.type !== 'public')
      throw invalid('DPoP proof jwk must be a public key');
    if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value as string);
    this.#keys.set(id, key);
    return key;
  }

  /** RFC 9449 §4.3 steps 1-7 that need no key: size, form, typ, alg allow-list, a public jwk, no crit. */
  #screen(proof: string): ProtectedHeaderParameters {
    if (proof.length > this.#config.maxProofBytes)
      throw invalid(`DPoP proof longer than ${this.#config.maxProofBytes} bytes`);
    // Node joins repeated headers with ", ": a compact JWS never holds a comma or a space.
    if (proof.includes(',')) throw invalid('more than one DPoP header');
    const parts = proof.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p)))
      throw invalid('DPoP proof is not a compact JWS (three base64url parts)');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(proof);
    } catch (e) {
      throw invalid('DPoP proof header is not base64url JSON', e);
    }
    if (header.typ !== 'dpop+jwt') throw invalid('DPoP proof typ must be dpop+jwt');
    if (typeof header.alg !== 'string' || !this.#algorithms.has(header.alg))
      throw invalid('DPoP proof algorithm is not allowed');
    const jwk = header.jwk;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
      throw invalid('DPoP proof header must carry the public key as jwk');
    if (PRIVATE_JWK_MEMBERS.some((m) => m in jwk)) throw invalid('DPoP proof jwk must be a public key');
    if ('crit' in header) throw invalid('DPoP proof header has critical extensions (crit)');
    for (const h of ['jku', 'x5u', 'x5c'] as const)
      if (h in header) throw invalid(`DPoP proof header "${h}" is not accepted`);
    const sig = Buffer.from(parts[2]!, 'base64url');
    if (sig.every((b) => b === 0)) throw invalid('DPoP proof signature is all zero');
    return header;
  }
}
