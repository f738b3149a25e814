import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { bytesEqual, utf8 } from './bytes.js';

/**
 * Key-committing AES-256-GCM for small messages (sealed keyrings, wrapped data keys, manifests).
 *
 * GCM alone is not key-committing: one ciphertext can be made to decrypt validly under two keys
 * ("invisible salamanders", Dodis et al., CRYPTO 2018; Albertini et al., USENIX Security 2022). As in
 * the AWS Encryption SDK's committing suites, each message draws a 256-bit random salt; HKDF-SHA256
 * (RFC 5869) expands key and salt into a one-message encryption key and a 256-bit commitment value. The
 * commitment is stored and checked (in constant time) before anything is decrypted, so a ciphertext
 * opens under exactly one key; since the encryption key is unique per message, the all-zero GCM nonce
 * is never reused under one key (NIST SP 800-38D §8 holds trivially).
 *
 * Layout: `salt (32) | commitment (32) | ciphertext | tag (16)`: 80 bytes of overhead.
 */

export const GCM_TAG_BYTES = 16;
export const GCM_NONCE_BYTES = 12;
export const KEY_BYTES = 32;
const SALT_BYTES = 32;
const COMMIT_BYTES = 32;
/** Bytes a committed seal adds to its plaintext. */
export const COMMITTED_OVERHEAD = SALT_BYTES + COMMIT_BYTES + GCM_TAG_BYTES;
const ZERO_NONCE = Buffer.alloc(GCM_NONCE_BYTES);

/** Why a committed ciphertext did not open. */
export type OpenFailure = 'malformed' | 'commitment' | 'tag';

export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; reason: OpenFailure };

/** HKDF-SHA256 (RFC 5869) of `ikm` with `salt` and `info`, `length` bytes. */
export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string | Uint8Array, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, typeof info === 'string' ? utf8(info) : info, length));
}

function derive(key: Uint8Array, salt: Uint8Array, label: string): { enc: Buffer; commit: Buffer } {
  const okm = hkdf(key, salt, `bulwark/v1/committed-aead/${label}`, KEY_BYTES + COMMIT_BYTES);
  return { enc: okm.subarray(0, KEY_BYTES), commit: okm.subarray(KEY_BYTES) };
}

/** One AES-256-GCM encryption: returns `ciphertext | tag`. */
export function gcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(aad);
  const head = c.update(plaintext);
  const tail = c.final();
  return Buffer.concat([head, tail, c.getAuthTag()]);
}

/** One AES-256-GCM decryption of `ciphertext | tag`; undefined when the tag does not verify. */
export function gcmOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Buffer | undefined {
  if (sealed.length < GCM_TAG_BYTES) return undefined;
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
  const out = d.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES));
  try {
    d.final();
  } catch {
    out.fill(0);
    return undefined;
  }
  return out;
}

/**
 * Encrypts `plaintext` under the 256-bit `key` with associated data `aad`, committing to the key.
 * `label` separates uses (a keyring seal never opens as a wrapped key).
 */
export function sealCommitted(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  label: string,
): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const { enc, commit } = derive(key, salt, label);
  const body = gcmSeal(enc, ZERO_NONCE, plaintext, aad);
  enc.fill(0);
  return Buffer.concat([salt, commit, body]);
}

/** Opens a {@link sealCommitted} message: the commitment is checked first, then the GCM tag. */
export function openCommitted(
  key: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
  label: string,
): OpenResult {
  if (sealed.length < COMMITTED_OVERHEAD) return { ok: false, reason: 'malformed' };
  const salt = sealed.subarray(0, SALT_BYTES);
  const stored = sealed.subarray(SALT_BYTES, SALT_BYTES + COMMIT_BYTES);
  const { enc, commit } = derive(key, salt, label);
  if (!bytesEqual(commit, stored)) {
    enc.fill(0);
    return { ok: false, reason: 'commitment' };
  }
  const pt = gcmOpen(enc, ZERO_NONCE, sealed.subarray(SALT_BYTES + COMMIT_BYTES), aad);
  enc.fill(0);
  return pt === undefined ? { ok: false, reason: 'tag' } : { ok: true, plaintext: pt };
}
