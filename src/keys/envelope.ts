import { randomBytes } from 'node:crypto';
import { BulwarkError, requireInteger } from '../core/index.js';
import { KEY_BYTES } from './aead.js';
import type { Keyring, WrappedKey } from './keyring.js';

/**
 * Envelope encryption: data is encrypted under data keys (DEKs) drawn at random per dataset, file or
 * data subject; each DEK is stored only wrapped by a key-encryption key of the keyring, next to the
 * data. Rotating the KEK re-wraps DEKs (small) instead of re-encrypting data (large).
 *
 * A DEK used with random 96-bit GCM nonces must not encrypt more than 2^32 messages (NIST SP 800-38D
 * §8.3); {@link DataKey} counts its uses and refuses past {@link DEK_MAX_MESSAGES} = 2^30, where the
 * chance of a nonce collision is below 2^-37 (q^2 / 2^97), so callers switch to a fresh DEK well
 * before the limit.
 */

/** Messages one DEK may encrypt with random nonces before a new DEK must be drawn. */
export const DEK_MAX_MESSAGES = 2 ** 30;

/** A data key in memory with its usage counter. */
export class DataKey {
  readonly #bytes: Buffer;
  readonly maxUses: number;
  #uses: number;
  #destroyed = false;

  constructor(bytes: Uint8Array, opts: { uses?: number; maxUses?: number } = {}) {
    if (bytes.length !== KEY_BYTES) throw new BulwarkError('ERR_INTERNAL', 'a data key must be 32 bytes');
    this.#bytes = Buffer.from(bytes);
    this.maxUses = requireInteger('maxUses', opts.maxUses ?? DEK_MAX_MESSAGES, 1, DEK_MAX_MESSAGES);
    this.#uses = requireInteger('uses', opts.uses ?? 0, 0);
  }

  /** A fresh random data key. */
  static generate(opts: { maxUses?: number } = {}): DataKey {
    const b = randomBytes(KEY_BYTES);
    const k = new DataKey(b, opts);
    b.fill(0);
    return k;
  }

  /** Messages encrypted so far. */
  get uses(): number {
    return this.#uses;
  }

  /** Messages this key may still encrypt. */
  get remaining(): number {
    return this.maxUses - this.#uses;
  }

  /**
   * The key bytes for `n` more encryptions; `undefined` when that would pass the limit (the caller must
   * draw a new key). Decryption uses {@link DataKey.bytesForDecryption}, which counts nothing.
   */
  useForEncryption(n = 1): Buffer | undefined {
    this.#alive();
    if (this.#uses + n > this.maxUses) return undefined;
    this.#uses += n;
    return this.#bytes;
  }

  /** The key bytes for decrypting (no count). */
  bytesForDecryption(): Buffer {
    this.#alive();
    return this.#bytes;
  }

  #alive(): void {
    if (this.#destroyed) throw new BulwarkError('ERR_INTERNAL', 'a data key was used after destroy()');
  }

  /** Overwrites the key in memory. */
  destroy(): void {
    this.#bytes.fill(0);
    this.#destroyed = true;
  }
}

/** Draws a new DEK and wraps it under the primary version of KEK `kekId` for `context`. */
export async function newDataKey(
  keyring: Keyring,
  kekId: string,
  context: string,
  opts: { maxUses?: number } = {},
): Promise<{ key: DataKey; wrapped: WrappedKey }> {
  const key = DataKey.generate(opts);
  const wrapped = await keyring.wrapKey(kekId, key.bytesForDecryption(), context);
  return { key, wrapped };
}

/** Unwraps a stored DEK (see {@link Keyring.unwrapKey} for the errors). */
export async function openDataKey(
  keyring: Keyring,
  wrapped: WrappedKey,
  context: string,
  opts: { uses?: number; maxUses?: number } = {},
): Promise<DataKey> {
  const bytes = await keyring.unwrapKey(wrapped, context);
  try {
    return new DataKey(bytes, opts);
  } finally {
    bytes.fill(0);
  }
}
