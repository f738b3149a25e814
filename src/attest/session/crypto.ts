/**
 * Session keys and record protection. The HPKE context (RFC 9180 §5.1, mode_base, info bound to the
 * attestation transcript) is used only for its secret export (§5.3): both sides derive a request key,
 * a response key, their nonce bases and the session id, then protect each message with AES-256-GCM
 * under a nonce = base XOR seq (as RFC 9180 §5.2 ComputeNonce), so a request costs one AES-GCM
 * operation each way instead of an X25519 key agreement.
 */
import { createHash } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { BulwarkError } from '../../core/index.js';
import { type GcmKey, gcmKey } from '../../keys/index.js';
import { BINDING_LABEL, SESSION_ID_BYTES, TAG_BYTES } from './wire.js';

export function hpkeSuite(): CipherSuite {
  return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
}

const te = new TextEncoder();

/** HPKE `info`: the label and the SHA-256 of the attestation envelope the client verified. */
export function sessionInfo(transcript: Uint8Array): Uint8Array {
  return Buffer.concat([te.encode(BINDING_LABEL), Uint8Array.of(0), transcript]);
}

/** The session transcript: SHA-256 of the attestation envelope (client and server compute it alike). */
export function transcriptHash(envelope: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(envelope).digest());
}

/** The 64-byte user data every attestation of a session binds (see wire.ts). */
export function bindingDigest(publicKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return createHash('sha512')
    .update(BINDING_LABEL)
    .update(Uint8Array.of(0))
    .update(publicKey)
    .update(nonce)
    .digest();
}

/**
 * A session's keys. The AES keys are prepared once per session (src/keys/gcm.ts: the native backend
 * keeps the key schedule in native memory and writes each record into its final buffer; node:crypto
 * otherwise), so a record costs neither a key import nor a cipher object; they are never exported.
 * A dropped session's keys are overwritten when the collector frees them (the native key's finalizer),
 * not at eviction: a request in flight may still hold the session to seal its response.
 */
export interface SessionKeys {
  sessionId: Uint8Array;
  requestKey: GcmKey;
  responseKey: GcmKey;
  requestNonce: Buffer;
  responseNonce: Buffer;
}

interface Exporter {
  export(exporterContext: ArrayBuffer | Uint8Array, length: number): Promise<ArrayBuffer>;
}

/**
 * Derives the session's keys from an HPKE context's exporter (both sides run this): one export of
 * 104 bytes, split into the session id, the two AES-256 keys and the two nonce bases (one exporter
 * call instead of five: each is an HKDF-Expand through WebCrypto).
 */
export async function deriveSessionKeys(ctx: Exporter): Promise<SessionKeys> {
  const b = Buffer.from(
    await ctx.export(te.encode('bulwark session keys v1'), SESSION_ID_BYTES + 32 + 32 + 12 + 12),
  );
  let o = 0;
  const take = (n: number) => {
    const s = b.subarray(o, o + n);
    o += n;
    return Buffer.from(s);
  };
  const keys: SessionKeys = {
    sessionId: new Uint8Array(take(SESSION_ID_BYTES)),
    requestKey: secretKey(take(32)),
    responseKey: secretKey(take(32)),
    requestNonce: take(12),
    responseNonce: take(12),
  };
  b.fill(0);
  return keys;
}

/** Prepares a raw key and zeroes the bytes it came from (the prepared key keeps its own copy). */
function secretKey(raw: Buffer): GcmKey {
  const k = gcmKey(raw);
  raw.fill(0);
  return k;
}

/** RFC 9180 §5.2 ComputeNonce: the base XOR the sequence number, big-endian in the last 8 bytes. */
function nonceFor(base: Buffer, seq: bigint): Buffer {
  const n = Buffer.allocUnsafe(12);
  base.copy(n, 0, 0, 12);
  n.writeUInt32BE((n.readUInt32BE(4) ^ Number(seq >> 32n)) >>> 0, 4);
  n.writeUInt32BE((n.readUInt32BE(8) ^ Number(seq & 0xffffffffn)) >>> 0, 8);
  return n;
}

/** AES-256-GCM seal: ciphertext || tag appended to `header`, written into one buffer. */
export function seal(
  key: GcmKey,
  base: Buffer,
  seq: bigint,
  header: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const out = Buffer.allocUnsafe(header.length + plaintext.length + TAG_BYTES);
  out.set(header, 0);
  const end = header.length + plaintext.length;
  key.seal(nonceFor(base, seq), header, plaintext, out.subarray(header.length, end), out.subarray(end));
  return out;
}

/** AES-256-GCM open; `ERR_SESSION_DECRYPT` when authentication fails. */
export function open(
  key: GcmKey,
  base: Buffer,
  seq: bigint,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  if (ciphertext.length < TAG_BYTES)
    throw new BulwarkError('ERR_SESSION_MALFORMED', 'attested session: ciphertext shorter than its tag');
  const n = ciphertext.length - TAG_BYTES;
  const body = Buffer.allocUnsafe(n);
  // A failed open overwrites `body`: unauthenticated plaintext is never released.
  if (!key.open(nonceFor(base, seq), aad, ciphertext.subarray(0, n), body, ciphertext.subarray(n))) {
    throw new BulwarkError(
      'ERR_SESSION_DECRYPT',
      "attested session: message failed authentication (altered, or another session's)",
    );
  }
  return body;
}
