import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { gcm } from '@noble/ciphers/aes.js';
import { encodeParts, gcmOpen, gcmSeal, hkdf, openCommitted, sealCommitted } from '../../src/keys/index.js';

describe('primitives against published vectors', () => {
  it('HKDF-SHA256 matches RFC 5869 test case 1', () => {
    const okm = hkdf(
      Buffer.alloc(22, 0x0b),
      Buffer.from('000102030405060708090a0b0c', 'hex'),
      Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex'),
      42,
    );
    assert.equal(
      okm.toString('hex'),
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
  });

  it('AES-256-GCM matches McGrew-Viega test case 14 and @noble/ciphers', () => {
    const key = Buffer.alloc(32);
    const iv = Buffer.alloc(12);
    const out = gcmSeal(key, iv, Buffer.alloc(16), Buffer.alloc(0));
    assert.equal(
      out.toString('hex'),
      'cea7403d4d606b6e074ec5d3baf39d18' + 'd0d1c8a799996bf0265b98b5d48ab919',
    );
    const k = randomBytes(32);
    const n = randomBytes(12);
    const aad = randomBytes(20);
    const pt = randomBytes(77);
    assert.deepEqual(new Uint8Array(gcmSeal(k, n, pt, aad)), gcm(k, n, aad).encrypt(pt));
    assert.deepEqual(gcmOpen(k, n, gcmSeal(k, n, pt, aad), aad), pt);
    assert.equal(gcmOpen(k, n, gcmSeal(k, n, pt, aad), randomBytes(20)), undefined);
  });
});

describe('key-committing seal', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('header');
  const pt = Buffer.from('a data key, 32 bytes long......!');

  it('round-trips and adds exactly 80 bytes', () => {
    const s = sealCommitted(key, pt, aad, 'test');
    assert.equal(s.length, pt.length + 80);
    const r = openCommitted(key, s, aad, 'test');
    assert.ok(r.ok);
    assert.deepEqual(r.plaintext, pt);
  });

  it('a fresh salt per seal: two seals of the same message differ', () => {
    assert.notDeepEqual(sealCommitted(key, pt, aad, 'test'), sealCommitted(key, pt, aad, 'test'));
  });

  it('fails the commitment under another key, before any decryption', () => {
    const r = openCommitted(randomBytes(32), sealCommitted(key, pt, aad, 'test'), aad, 'test');
    assert.deepEqual(r, { ok: false, reason: 'commitment' });
  });

  it('fails the tag on changed associated data or any changed ciphertext byte', () => {
    const s = sealCommitted(key, pt, aad, 'test');
    assert.deepEqual(openCommitted(key, s, Buffer.from('other'), 'test'), { ok: false, reason: 'tag' });
    for (let i = 64; i < s.length; i++) {
      const t = Buffer.from(s);
      t[i]! ^= 0x80;
      assert.equal(openCommitted(key, t, aad, 'test').ok, false, `byte ${i}`);
    }
    for (let i = 0; i < 64; i++) {
      const t = Buffer.from(s);
      t[i]! ^= 1;
      assert.deepEqual(openCommitted(key, t, aad, 'test'), { ok: false, reason: 'commitment' }, `byte ${i}`);
    }
  });

  it('separates uses by label, and rejects short input', () => {
    assert.deepEqual(openCommitted(key, sealCommitted(key, pt, aad, 'a'), aad, 'b'), {
      ok: false,
      reason: 'commitment',
    });
    assert.deepEqual(openCommitted(key, Buffer.alloc(79), aad, 'a'), { ok: false, reason: 'malformed' });
  });

  it('encodeParts is injective on splits', () => {
    assert.notDeepEqual(encodeParts(['ab', 'c']), encodeParts(['a', 'bc']));
    assert.notDeepEqual(encodeParts(['a', '']), encodeParts(['a']));
  });
});
