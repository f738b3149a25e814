import { decode, encode, Tag } from 'cbor2';
import { BulwarkError } from '../core/index.js';

/** The decoded parts of a COSE_Sign1 message (RFC 9052 §4.2). */
export interface CoseSign1 {
  readonly protectedBytes: Uint8Array;
  readonly protectedHeader: Map<unknown, unknown>;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

/** COSE algorithm identifiers used here (IANA COSE Algorithms registry). */
export const COSE_ALG = { ES384: -35, EdDSA: -8 } as const;

/**
 * Strict CBOR decoding for attestation documents (RFC 8949 §4.2.1, §5.6): maps as Map; duplicate keys,
 * indefinite lengths and non-preferred (longer than needed) encodings refused, so one document has one
 * encoding and a key written twice in different lengths cannot slip past the duplicate check; tags are
 * kept as tags rather than converted.
 */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    return decode(bytes, {
      preferMap: true,
      rejectDuplicateKeys: true,
      requirePreferred: true,
      rejectStreaming: true,
      ignoreGlobalTags: true,
    });
  } catch (e) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${what} is not well-formed CBOR: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/** Decodes a COSE_Sign1 (tagged 18 or untagged) and checks its protected `alg` is `alg`. */
export function decodeCoseSign1(bytes: Uint8Array, alg: number, what: string): CoseSign1 {
  let v = decodeCbor(bytes, what);
  if (v instanceof Tag) {
    if (Number(v.tag) !== 18)
      throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what}: CBOR tag ${v.tag} is not COSE_Sign1 (18)`);
    v = v.contents;
  }
  if (!Array.isArray(v) || v.length !== 4) {
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what}: not a COSE_Sign1 array of 4 elements`);
  }
  const [p, unprotected, payload, signature] = v as unknown[];
  if (!(p instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${what}: COSE_Sign1 protected header, payload and signature must be byte strings`,
    );
  }
  const header = p.length === 0 ? new Map() : decodeCbor(p, `${what} protected header`);
  if (!(header instanceof Map))
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what}: protected header is not a map`);
  // RFC 9052 §3: the unprotected bucket is a header map, and no label may sit in both buckets (an
  // unsigned `alg` beside the signed one would be a second, contradicting answer).
  if (!(unprotected instanceof Map))
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what}: the unprotected header is not a map`);
  for (const k of unprotected.keys())
    if (header.has(k))
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        `${what}: header label ${String(k)} is both protected and unprotected`,
      );
  // RFC 9052 §3.1: `crit` (label 2) lists labels the recipient must understand; none is understood here.
  if (header.has(2) || unprotected.has(2))
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${what}: critical header parameters (crit) are not supported`,
    );
  if (header.get(1) !== alg) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${what}: COSE algorithm ${String(header.get(1))}, expected ${alg}`,
      {
        details: { alg: String(header.get(1)) },
      },
    );
  }
  return { protectedBytes: p, protectedHeader: header, payload, signature };
}

/**
 * A plain Uint8Array view of `b`. cbor2 encodes a Node `Buffer` through its `toJSON` (a map), not as
 * a byte string, so every Buffer is viewed as a Uint8Array before encoding.
 */
export function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Sig_structure for COSE_Sign1 (RFC 9052 §4.4): ["Signature1", protected, external_aad, payload]. */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return encode(['Signature1', plain(protectedBytes), new Uint8Array(0), plain(payload)]);
}

/** Encodes a COSE_Sign1 array (untagged, as the Nitro Security Module emits it). */
export function encodeCoseSign1(
  protectedBytes: Uint8Array,
  payload: Uint8Array,
  signature: Uint8Array,
): Uint8Array {
  return encode([plain(protectedBytes), new Map(), plain(payload), plain(signature)]);
}

/**
 * The `timestamp` (ms) a COSE-signed attestation claims, read WITHOUT verifying it: only to choose the
 * verification time for stored evidence (`bulwark attest verify --at document`). Null if none.
 */
export function peekCoseTimestamp(bytes: Uint8Array): Date | null {
  try {
    let v = decode(bytes, { preferMap: true });
    if (v instanceof Tag) v = v.contents;
    if (!Array.isArray(v) || !(v[2] instanceof Uint8Array)) return null;
    const m = decode(v[2], { preferMap: true });
    const t = m instanceof Map ? m.get('timestamp') : undefined;
    const n = typeof t === 'bigint' ? Number(t) : t;
    return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? new Date(n) : null;
  } catch {
    return null;
  }
}
