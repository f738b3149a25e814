/**
 * Session keys and record protection. The HPKE context (RFC 9180 §5.1, mode_base, info bound to the
 * attestation transcript) is used only for its secret export (§5.3): both sides derive a request key,
 * a response key, their nonce bases and the session id, then protect each message with AES-256-GCM
 * under a nonce = base XOR seq (as RFC 9180 §5.2 ComputeNonce), so a request costs one AES-GCM
 * operation each way instead of an X25519 key agreement.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { BulwarkError } from '../../core/index.js';
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

export interface SessionKeys {
  sessionId: Uint8Array;
  requestKey: Buffer;
  responseKey: Buffer;
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
  return {
    sessionId: new Uint8Array(take(SESSION_ID_BYTES)),
    requestKey: take(32),
    responseKey: take(32),
    requestNonce: take(12),
    responseNonce: take(12),
  };
}

function nonceFor(base: Buffer, seq: bigint): Buffer {
  const n = Buffer.from(base);
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(seq);
  for (let i = 0; i < 8; i++) n[4 + i] = (n[4 + i] as number) ^ (s[i] as number);
  return n;
}

/** AES-256-GCM seal: ciphertext || tag appended to `header`. */
export function seal(
  key: Buffer,
  base: Buffer,
  seq: bigint,
  header: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, nonceFor(base, seq));
  c.setAAD(header);
  const body = c.update(plaintext);
  const fin = c.final();
  return Buffer.concat([header, body, fin, c.getAuthTag()]);
}

/** AES-256-GCM open; `ERR_SESSION_DECRYPT` when authentication fails. */
export function open(
  key: Buffer,
  base: Buffer,
  seq: bigint,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  if (ciphertext.length < TAG_BYTES)
    throw new BulwarkError('ERR_SESSION_MALFORMED', 'attested session: ciphertext shorter than its tag');
  const d = createDecipheriv('aes-256-gcm', key, nonceFor(base, seq));
  d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
  const body = d.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES));
  try {
    return Buffer.concat([body, d.final()]);
  } catch (e) {
    throw new BulwarkError(
      'ERR_SESSION_DECRYPT',
      "attested session: message failed authentication (altered, or another session's)",
      { cause: e },
    );
  }
}
