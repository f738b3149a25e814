import { createHmac, hash } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import { BulwarkError } from '../core/index.js';
import {
  bytesEqual,
  encodeParts,
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
  type GcmKey,
  gcmKey,
  hkdf,
} from '../keys/index.js';

/**
 * The protected-value format (version 1): one cell of a protected dataset, self-describing and
 * bound to its place.
 *
 * ```
 * byte 0   version (high nibble, 1) | mode (low nibble): bit 0 deterministic, bit 2 subject-keyed
 * varint   key generation (LEB128): which data key of the dataset (or of the data subject)
 * randomized:    nonce (12) | ciphertext | committed tag (16)       overhead 30 bytes (1-byte varint)
 * deterministic: synthetic IV (16) | ciphertext                     overhead 18 bytes
 * ```
 * written into the CSV as unpadded base64url.
 *
 * Randomized values are AES-256-GCM under a fresh random 96-bit nonce, with associated data binding
 * the dataset id, the column, the key generation, the mode and the row key (and the data subject's
 * handle when subject-keyed): a value copied to another row, column or dataset fails to decrypt.
 * GCM's tag T is replaced by T* = SHA-256(K | N | A | T) truncated to 128 bits: the CTX construction
 * of Chan and Rogaway ("On Committing Authenticated-Encryption", ESORICS 2022), which makes the value
 * key-committing (a ciphertext opens under one key only; 64-bit collision resistance at this length)
 * at no size cost. Decryption recomputes T (the keystream, then GCM over the plaintext) and checks T*
 * before returning anything.
 *
 * Both go through keys/gcm.ts's prepared key (the native addon's OpenSSL EVP context keyed once per
 * column, or node:crypto without it): a value is a few dozen bytes, so creating a node:crypto cipher
 * object per value (key schedule, allocations) used to cost more than the encryption itself.
 *
 * Deterministic values are AES-SIV (RFC 5297, @noble/ciphers) with the same associated data minus
 * the row key: equal plaintexts in a column give equal ciphertexts, so the column can still be joined
 * or searched by equality, and nothing else is revealed beyond equality and length.
 */

export const FIELD_FORMAT_VERSION = 1;
export const MODE_DETERMINISTIC = 1;
export const MODE_SUBJECT = 4;
const VALID_MODES = new Set([0, MODE_DETERMINISTIC, MODE_SUBJECT, MODE_SUBJECT | MODE_DETERMINISTIC]);
const SIV_BYTES = 16;

/** Parsed header of a protected value. */
export interface FieldHeader {
  mode: number;
  generation: number;
  /** Offset of the body (nonce or SIV) in the bytes. */
  bodyOffset: number;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let x = n;
  while (x >= 0x80) {
    out.push((x & 0x7f) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
  return Buffer.from(out);
}

/** Decodes the header; `where` names the cell in messages (never its value). */
export function parseFieldHeader(b: Buffer, where: string): FieldHeader {
  if (b.length < 2) throw tampered(where, 'too short');
  const v = b[0]! >> 4;
  const mode = b[0]! & 0x0f;
  if (v !== FIELD_FORMAT_VERSION) {
    throw new BulwarkError(
      'ERR_FORMAT_VERSION',
      `${where}: protected-value format version ${v} is not supported`,
    );
  }
  if (!VALID_MODES.has(mode)) throw tampered(where, 'unknown mode');
  let gen = 0;
  let i = 1;
  for (let shift = 1; ; shift *= 128) {
    if (i >= b.length || i > 5) throw tampered(where, 'bad key generation');
    const c = b[i++]!;
    gen += (c & 0x7f) * shift;
    if ((c & 0x80) === 0) break;
  }
  const min = mode & MODE_DETERMINISTIC ? SIV_BYTES : GCM_NONCE_BYTES + GCM_TAG_BYTES;
  if (b.length - i < min) throw tampered(where, 'too short');
  return { mode, generation: gen, bodyOffset: i };
}

function tampered(where: string, what: string): BulwarkError {
  return new BulwarkError(
    'ERR_CIPHERTEXT_TAMPERED',
    `${where}: the protected value fails authentication (${what})`,
  );
}

/**
 * The keys and constant associated-data prefix of one protected column under one data key. Built once
 * per (column, key) and reused for every value.
 */
export class ColumnKeys {
  readonly column: string;
  readonly generation: number;
  readonly mode: number;
  readonly #gcm: Buffer | undefined;
  readonly #gcmKey: GcmKey | undefined;
  readonly #siv: Uint8Array | undefined;
  readonly #prefix: Buffer;
  readonly #header: Buffer;

  /**
   * `dek` is the dataset's data key of `generation` (or a data subject's key with MODE_SUBJECT);
   * column keys are derived from it with HKDF (salt: the dataset id) so each column, and the GCM and
   * SIV uses, get separate keys.
   */
  constructor(dek: Uint8Array, datasetId: Uint8Array, column: string, generation: number, mode: number) {
    this.column = column;
    this.generation = generation;
    this.mode = mode;
    const info = encodeParts(['bulwark/v1/field-key', mode & MODE_DETERMINISTIC ? 'siv' : 'gcm', column]);
    if (mode & MODE_DETERMINISTIC) this.#siv = hkdf(dek, datasetId, info, 64);
    else {
      this.#gcm = hkdf(dek, datasetId, info, 32);
      this.#gcmKey = gcmKey(this.#gcm);
    }
    this.#header = Buffer.concat([Buffer.from([(FIELD_FORMAT_VERSION << 4) | mode]), varint(generation)]);
    this.#prefix = encodeParts(['bulwark/v1/field', datasetId, column, this.#header]);
  }

  /** The per-row part of the associated data (cached: every column of a row shares it). */
  #suffix(rowKey: string, subject: string): Buffer {
    const det = (this.mode & MODE_DETERMINISTIC) !== 0;
    const c = det ? lastDet : lastRow;
    if (c.rowKey === rowKey && c.subject === subject) return c.suffix;
    const suffix = encodeParts([det ? '\u0000det' : rowKey, subject]);
    const entry = { rowKey, subject, suffix };
    if (det) lastDet = entry;
    else lastRow = entry;
    return suffix;
  }

  /** Encrypts one value; returns the base64url text of the cell. */
  encrypt(plaintext: string, rowKey: string, nonce: Uint8Array | undefined, subject = ''): string {
    const pt = Buffer.from(plaintext, 'utf8');
    const suffix = this.#suffix(rowKey, subject);
    if (this.#siv) {
      const out = aessiv(this.#siv, this.#prefix, suffix).encrypt(pt);
      return Buffer.concat([this.#header, out]).toString('base64url');
    }
    const n = nonce!;
    const aad = Buffer.concat([this.#prefix, suffix]);
    // header | nonce | ciphertext | T*, the ciphertext written in place.
    const h = this.#header.length;
    const out = Buffer.allocUnsafe(h + GCM_NONCE_BYTES + pt.length + GCM_TAG_BYTES);
    this.#header.copy(out, 0);
    out.set(n, h);
    const ct = out.subarray(h + GCM_NONCE_BYTES, h + GCM_NONCE_BYTES + pt.length);
    const tag = Buffer.allocUnsafe(GCM_TAG_BYTES);
    this.#gcmKey!.seal(n, aad, pt, ct, tag);
    out.set(ctxTag(this.#gcm!, n, aad, tag), h + GCM_NONCE_BYTES + pt.length);
    return out.toString('base64url');
  }

  /** Decrypts the body of a value whose header was parsed (`h.generation === this.generation`). */
  decrypt(bytes: Buffer, h: FieldHeader, rowKey: string, where: string, subject = ''): string {
    const suffix = this.#suffix(rowKey, subject);
    const body = bytes.subarray(h.bodyOffset);
    if (this.#siv) {
      let pt: Uint8Array;
      try {
        pt = aessiv(this.#siv, this.#prefix, suffix).decrypt(body);
      } catch {
        throw tampered(where, 'synthetic IV mismatch');
      }
      return Buffer.from(pt.buffer, pt.byteOffset, pt.byteLength).toString('utf8');
    }
    const nonce = body.subarray(0, GCM_NONCE_BYTES);
    const ct = body.subarray(GCM_NONCE_BYTES, body.length - GCM_TAG_BYTES);
    const tStar = body.subarray(body.length - GCM_TAG_BYTES);
    const g = this.#gcmKey!;
    const aad = Buffer.concat([this.#prefix, suffix]);
    // T* hides T, so GCM's own open cannot check it: the plaintext comes from the keystream, which
    // depends on the key and nonce only (SP 800-38D §7.1: GCTR from inc32(J0)), taken by sealing zeros
    // under this nonce; sealing the plaintext with the associated data then gives T. Both seals stay
    // here (nothing sealed twice under one nonce leaves the process).
    const pt = Buffer.alloc(ct.length);
    const tag = Buffer.allocUnsafe(GCM_TAG_BYTES);
    g.seal(nonce, EMPTY, pt, pt, tag);
    for (let i = 0; i < pt.length; i++) pt[i]! ^= ct[i]!;
    const again = Buffer.allocUnsafe(ct.length);
    g.seal(nonce, aad, pt, again, tag);
    if (!bytesEqual(ctxTag(this.#gcm!, nonce, aad, tag), tStar)) {
      pt.fill(0);
      again.fill(0);
      throw tampered(where, 'tag mismatch');
    }
    return pt.toString('utf8');
  }

  /** Wipes the derived keys. */
  destroy(): void {
    this.#gcm?.fill(0);
    this.#gcmKey?.wipe();
    this.#siv?.fill(0);
  }
}

interface SuffixCache {
  rowKey: string;
  subject: string;
  suffix: Buffer;
}
let lastRow: SuffixCache = { rowKey: '\u0000', subject: '\u0000', suffix: Buffer.alloc(0) };
let lastDet: SuffixCache = { rowKey: '\u0000', subject: '\u0000', suffix: Buffer.alloc(0) };

const EMPTY = new Uint8Array(0);

/** CTX's committed tag: SHA-256(K | N | A | T), first 16 bytes. One-shot hash. */
function ctxTag(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, tag: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([key, nonce, aad, tag]), 'buffer').subarray(0, GCM_TAG_BYTES);
}

/** Decodes a cell's base64url text; malformed text is tampering. */
export function decodeCell(text: string, where: string): Buffer {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw tampered(where, 'not base64url');
  return Buffer.from(text, 'base64url');
}

/**
 * An HMAC-SHA256 blind index (truncated to 128 bits, base64url): equal values give equal indexes, so a
 * key holder can look rows up by value without decrypting, while the index reveals nothing else to
 * anyone without the key (but does reveal equality and frequency to anyone who reads the file).
 */
export class BlindIndex {
  readonly #key: Buffer;
  constructor(dek: Uint8Array, datasetId: Uint8Array, column: string) {
    this.#key = hkdf(dek, datasetId, encodeParts(['bulwark/v1/blind-index', column]), 32);
  }
  /** The index of a value (normalised by the caller if lookups should ignore case or spacing). */
  of(value: string): string {
    return createHmac('sha256', this.#key)
      .update(value, 'utf8')
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }
  destroy(): void {
    this.#key.fill(0);
  }
}
