/**
 * The attested-session wire format (version 1). All integers are big-endian. See docs/attestation.md.
 *
 * Attestation exchange — the client POSTs a fresh nonce (16 to 64 random bytes) and receives an
 * envelope, a CBOR map (RFC 8949):
 *   { "v": 1, "format": tstr, "document": bstr, "publicKey": bstr (32, X25519),
 *     "suite": [0x0020, 0x0001, 0x0002] (RFC 9180 KEM, KDF, AEAD ids), "evidence": [* bstr] }
 * The document binds the HPKE public key and the nonce: as `public_key` and `nonce` fields where the
 * format has them (Nitro, software), and always through its user data, which is
 *   SHA-512("bulwark-attested-session/1" || 0x00 || publicKey || nonce)      (64 bytes: SEV-SNP REPORT_DATA)
 *
 * Session frames — `magic "BWS" | version 0x01 | type`, then:
 *   OPEN     (1): transcript (32) | enc (32) | seq (8) | ciphertext     client -> server, seq 0
 *   DATA     (2): session id (16) | seq (8) | ciphertext               client -> server, seq 1, 2, ...
 *   RESPONSE (3): session id (16) | seq (8) | ciphertext               server -> client, the request's seq
 * `transcript` is SHA-256 of the envelope bytes the client verified; `enc` is the HPKE encapsulated key.
 * The ciphertext is AES-256-GCM (16-byte tag) with every byte before it as associated data.
 */
import { BulwarkError } from '../../core/index.js';

export const MAGIC = Uint8Array.of(0x42, 0x57, 0x53); // "BWS"
export const WIRE_VERSION = 1;
export const FrameType = { open: 1, data: 2, response: 3 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const HEADER = 5;
export const TRANSCRIPT_BYTES = 32;
export const ENC_BYTES = 32;
export const SESSION_ID_BYTES = 16;
export const SEQ_BYTES = 8;
export const TAG_BYTES = 16;
export const MIN_NONCE = 16;
export const MAX_NONCE = 64;
/** HPKE identifiers (RFC 9180 §7): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. */
export const SUITE = [0x0020, 0x0001, 0x0002] as const;
export const BINDING_LABEL = 'bulwark-attested-session/1';

export interface OpenFrame {
  type: typeof FrameType.open;
  transcript: Uint8Array;
  enc: Uint8Array;
  seq: bigint;
  aad: Uint8Array;
  ciphertext: Uint8Array;
}

export interface SessionFrame {
  type: typeof FrameType.data | typeof FrameType.response;
  sessionId: Uint8Array;
  seq: bigint;
  aad: Uint8Array;
  ciphertext: Uint8Array;
}

export type Frame = OpenFrame | SessionFrame;

function malformed(message: string): BulwarkError {
  return new BulwarkError('ERR_SESSION_MALFORMED', `attested session: ${message}`);
}

/** Parses a frame (views into `bytes`, no copy). */
export function parseFrame(bytes: Uint8Array): Frame {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER)
    throw malformed('message shorter than its header');
  if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1] || bytes[2] !== MAGIC[2])
    throw malformed('not a Bulwark session frame (magic)');
  if (bytes[3] !== WIRE_VERSION) throw malformed(`wire version ${bytes[3]} is not ${WIRE_VERSION}`);
  const type = bytes[4];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === FrameType.open) {
    const head = HEADER + TRANSCRIPT_BYTES + ENC_BYTES + SEQ_BYTES;
    if (bytes.length < head + TAG_BYTES) throw malformed('OPEN frame too short');
    return {
      type,
      transcript: bytes.subarray(HEADER, HEADER + TRANSCRIPT_BYTES),
      enc: bytes.subarray(HEADER + TRANSCRIPT_BYTES, HEADER + TRANSCRIPT_BYTES + ENC_BYTES),
      seq: dv.getBigUint64(head - SEQ_BYTES),
      aad: bytes.subarray(0, head),
      ciphertext: bytes.subarray(head),
    };
  }
  if (type === FrameType.data || type === FrameType.response) {
    const head = HEADER + SESSION_ID_BYTES + SEQ_BYTES;
    if (bytes.length < head + TAG_BYTES) throw malformed('frame too short');
    return {
      type,
      sessionId: bytes.subarray(HEADER, HEADER + SESSION_ID_BYTES),
      seq: dv.getBigUint64(head - SEQ_BYTES),
      aad: bytes.subarray(0, head),
      ciphertext: bytes.subarray(head),
    };
  }
  throw malformed(`unknown frame type ${type}`);
}

/** The header (associated data) of a frame; the ciphertext follows it. */
export function frameHeader(
  type: FrameType,
  fields: { transcript?: Uint8Array; enc?: Uint8Array; sessionId?: Uint8Array },
  seq: bigint,
): Uint8Array {
  const parts: Uint8Array[] = [MAGIC, Uint8Array.of(WIRE_VERSION, type)];
  if (type === FrameType.open) parts.push(fields.transcript as Uint8Array, fields.enc as Uint8Array);
  else parts.push(fields.sessionId as Uint8Array);
  const s = new Uint8Array(SEQ_BYTES);
  new DataView(s.buffer).setBigUint64(0, seq);
  parts.push(s);
  return Buffer.concat(parts);
}
