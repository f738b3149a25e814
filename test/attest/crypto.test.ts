import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import { open, seal } from '../../src/attest/session/crypto.js';
import { gcmKey } from '../../src/keys/index.js';

/** RFC 9180 §5.2 ComputeNonce written out plainly: base XOR I2OSP(seq, 12). */
function referenceNonce(base: Buffer, seq: bigint): Buffer {
  const s = Buffer.alloc(12);
  s.writeBigUInt64BE(seq, 4);
  return Buffer.from(base.map((b, i) => b ^ (s[i] as number)));
}

describe('attested session records (AES-256-GCM, RFC 9180 nonces)', () => {
  const raw = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
  const key = gcmKey(raw);
  const base = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaab', 'hex');
  const header = Buffer.from('header bytes');
  const pt = Buffer.from('a record of plaintext');

  it('seals with nonce = base XOR seq, as an independent AES-GCM computes it', () => {
    for (const seq of [0n, 1n, 255n, 0xffffffffn, 0x100000000n, 0x0123456789abcdefn, 2n ** 64n - 1n]) {
      const c = createCipheriv('aes-256-gcm', raw, referenceNonce(base, seq));
      c.setAAD(header);
      const want = Buffer.concat([header, c.update(pt), c.final(), c.getAuthTag()]);
      const got = Buffer.from(seal(key, base, seq, header, pt));
      assert.equal(got.toString('hex'), want.toString('hex'), `seq ${seq}`);
      assert.equal(
        Buffer.from(open(key, base, seq, header, got.subarray(header.length))).toString(),
        pt.toString(),
      );
    }
  });

  it('refuses another sequence number, another key, altered associated data', () => {
    const sealed = Buffer.from(seal(key, base, 7n, header, pt)).subarray(header.length);
    assert.throws(() => open(key, base, 8n, header, sealed), { code: 'ERR_SESSION_DECRYPT' });
    const other = gcmKey(Buffer.alloc(32, 1));
    assert.throws(() => open(other, base, 7n, header, sealed), { code: 'ERR_SESSION_DECRYPT' });
    assert.throws(() => open(key, base, 7n, Buffer.from('header byteS'), sealed), {
      code: 'ERR_SESSION_DECRYPT',
    });
    assert.throws(() => open(key, base, 7n, header, sealed.subarray(0, 10)), {
      code: 'ERR_SESSION_MALFORMED',
    });
  });
});
