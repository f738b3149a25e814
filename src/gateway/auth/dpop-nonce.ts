import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { BulwarkError, readInputFile } from '../../core/index.js';

/**
 * Resource-server DPoP nonces (RFC 9449 §9). With nonces, a proof must carry a `nonce` the gateway
 * issued recently (in the `DPoP-Nonce` header of its answers), so a proof cannot be made in advance: an
 * attacker who could sign with the client's key for a moment (an XSS, a borrowed HSM session) cannot
 * stock up proofs for later, which `iat` alone does not prevent (the client's clock is the attacker's).
 *
 * The nonces are stateless, so every replica sharing the secret accepts the others' nonces without a
 * shared store: a nonce is the number of its time step (`lifetimeSeconds` long) with an HMAC-SHA-256
 * tag over it (truncated to 128 bits), under a key derived from the secret file with HKDF (RFC 5869).
 * A nonce is accepted during the step it was issued in and the next one, so it lives between one and
 * two lifetimes, widened by the clock skew on both ends for replicas whose clocks differ.
 */

/** HKDF `info`: the key is for this use only, whatever else the secret file may be used for. */
const KEY_INFO = 'bulwark gateway dpop nonce v1';
const STEP_BYTES = 6;
const TAG_BYTES = 16;
/** The smallest secret accepted (bytes): a 256-bit key. */
export const MIN_NONCE_SECRET_BYTES = 32;

function nonceError(message: string): BulwarkError {
  return new BulwarkError('ERR_AUTH_DPOP_NONCE', message);
}

/** Issues and checks DPoP nonces (see the module documentation). */
export class DpopNonces {
  readonly #key: Buffer;
  readonly #lifetimeMs: number;
  readonly #skewMs: number;
  readonly #now: () => number;
  #cached: { step: number; nonce: string } | null = null;

  /**
   * @param secret at least 32 bytes, shared by every replica
   * @param lifetimeSeconds a time step's length; a nonce is accepted for one to two of them
   * @param clockSkewSeconds the clock difference tolerated between replicas
   * @param now clock in epoch milliseconds
   */
  constructor(
    secret: Uint8Array,
    lifetimeSeconds: number,
    clockSkewSeconds: number,
    now: () => number = Date.now,
  ) {
    if (secret.length < MIN_NONCE_SECRET_BYTES)
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `auth.jwt.dpop.nonce.secretFile: at least ${MIN_NONCE_SECRET_BYTES} bytes of secret needed, got ${secret.length}`,
      );
    this.#key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), KEY_INFO, 32));
    this.#lifetimeMs = lifetimeSeconds * 1000;
    this.#skewMs = clockSkewSeconds * 1000;
    this.#now = now;
  }

  /** Reads the secret from a file (never from the configuration itself, which is not secret). */
  static async fromFile(
    path: string,
    lifetimeSeconds: number,
    clockSkewSeconds: number,
    now?: () => number,
  ): Promise<DpopNonces> {
    const secret = await readInputFile(path, 'auth.jwt.dpop.nonce.secretFile');
    return new DpopNonces(secret, lifetimeSeconds, clockSkewSeconds, now);
  }

  #tag(step: Buffer): Buffer {
    return createHmac('sha256', this.#key).update(step).digest().subarray(0, TAG_BYTES);
  }

  /** The nonce to hand out now (the same string for a whole time step). */
  current(): string {
    const step = Math.floor(this.#now() / this.#lifetimeMs);
    if (this.#cached?.step !== step) {
      const s = Buffer.alloc(STEP_BYTES);
      s.writeUIntBE(step, 0, STEP_BYTES);
      this.#cached = { step, nonce: Buffer.concat([s, this.#tag(s)]).toString('base64url') };
    }
    return this.#cached.nonce;
  }

  /** Throws ERR_AUTH_DPOP_NONCE unless `nonce` is one this gateway issued and it is still fresh. */
  check(nonce: unknown): void {
    if (nonce === undefined) throw nonceError('this gateway requires a nonce in DPoP proofs');
    if (typeof nonce !== 'string' || !/^[A-Za-z0-9_-]{30}$/.test(nonce))
      throw nonceError('DPoP proof nonce is not a nonce of this gateway');
    const raw = Buffer.from(nonce, 'base64url');
    // One spelling per nonce: the last character's unused bits must be zero.
    if (raw.length !== STEP_BYTES + TAG_BYTES || raw.toString('base64url') !== nonce)
      throw nonceError('DPoP proof nonce is not a nonce of this gateway');
    if (!timingSafeEqual(raw.subarray(STEP_BYTES), this.#tag(raw.subarray(0, STEP_BYTES))))
      throw nonceError('DPoP proof nonce is not a nonce of this gateway');
    const now = this.#now();
    const issued = raw.readUIntBE(0, STEP_BYTES) * this.#lifetimeMs;
    if (issued > now + this.#skewMs) throw nonceError('DPoP proof nonce is from the future');
    if (issued + 2 * this.#lifetimeMs <= now - this.#skewMs) throw nonceError('DPoP proof nonce has expired');
  }
}
