import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type GcmKey, gcmBackend, gcmKey } from '../../src/keys/gcm.js';
import { decryptBytes, encryptBytes } from '../../src/keys/index.js';
import { localKeyring, seededBytes, tempDir } from './helpers.js';

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test case 16 (AES-256, 96-bit IV,
// 20 bytes of AAD, 60 bytes of plaintext).
const TC16 = {
  key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
  iv: 'cafebabefacedbaddecaf888',
  aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
  pt: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
  ct: '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
  tag: '76fc6ece0f4e1768cddf8853bb2d551b',
};
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

const info = gcmBackend();
// CI builds the addon (npm ci runs scripts/build-native.mjs): there, the native backend must be the one
// in use, so that the suite tests the path the benchmarks measure. Elsewhere a missing compiler is
// allowed and said.
const nativeSkip =
  info.backend === 'native'
    ? false
    : process.env.CI === 'true'
      ? false
      : `native AES-GCM not in use: ${info.reason}`;

const backends: ('native' | 'node:crypto')[] =
  info.backend === 'native' ? ['native', 'node:crypto'] : ['node:crypto'];

describe('AES-256-GCM backends', () => {
  it('CI uses the native backend', { skip: nativeSkip }, () => {
    assert.equal(info.backend, 'native', info.reason);
    assert.match(info.openssl ?? '', /^OpenSSL 3\./);
  });

  for (const b of backends) {
    it(`${b}: the GCM specification's test case 16, sealed and opened, in place and not`, async () => {
      const k = gcmKey(hex(TC16.key), b);
      assert.equal(k.backend, b);
      const out = Buffer.alloc(hex(TC16.pt).length);
      const tag = Buffer.alloc(16);
      k.seal(hex(TC16.iv), hex(TC16.aad), hex(TC16.pt), out, tag);
      assert.equal(out.toString('hex'), TC16.ct);
      assert.equal(tag.toString('hex'), TC16.tag);
      const back = hex(TC16.ct);
      assert.ok(k.open(hex(TC16.iv), hex(TC16.aad), back, back, hex(TC16.tag)));
      assert.equal(back.toString('hex'), TC16.pt);
      const asyncOut = Buffer.alloc(back.length);
      const asyncTag = Buffer.alloc(16);
      await k.sealAsync(hex(TC16.iv), hex(TC16.aad), hex(TC16.pt), asyncOut, asyncTag);
      assert.equal(asyncOut.toString('hex'), TC16.ct);
      assert.equal(asyncTag.toString('hex'), TC16.tag);
      assert.ok(await k.openAsync(hex(TC16.iv), hex(TC16.aad), asyncOut, asyncOut, asyncTag));
      assert.equal(asyncOut.toString('hex'), TC16.pt);
    });

    it(`${b}: every changed input fails to open and leaves no plaintext behind`, async () => {
      const k = gcmKey(seededBytes(32, 1), b);
      const iv = seededBytes(12, 2);
      const aad = seededBytes(40, 3);
      const pt = seededBytes(5000, 4);
      const ct = Buffer.alloc(pt.length);
      const tag = Buffer.alloc(16);
      k.seal(iv, aad, pt, ct, tag);
      const flip = (x: Buffer, at: number): Buffer => {
        const y = Buffer.from(x);
        y[at]! ^= 1;
        return y;
      };
      const cases: [string, Buffer, Buffer, Buffer, Buffer][] = [
        ['ciphertext', iv, aad, flip(ct, 4321), tag],
        ['tag', iv, aad, ct, flip(tag, 15)],
        ['aad', iv, flip(aad, 0), ct, tag],
        ['iv', flip(iv, 11), aad, ct, tag],
      ];
      for (const [what, i, a, c, t] of cases) {
        const out = Buffer.alloc(pt.length, 0xee);
        assert.equal(k.open(i, a, c, out, t), false, what);
        assert.ok(
          out.every((x) => x === 0),
          `${what}: output overwritten`,
        );
        const pieces = [c.subarray(0, 1), c.subarray(1, 3000), c.subarray(3000)];
        const outv = Buffer.alloc(pt.length, 0xee);
        assert.equal(k.openPieces(i, a, pieces, outv, t), false, `${what}, in pieces`);
        assert.ok(
          outv.every((x) => x === 0),
          `${what}, in pieces: output overwritten`,
        );
        const outa = Buffer.from(c);
        assert.equal(await k.openAsync(i, a, outa, outa, t), false, `${what}, async`);
        assert.ok(
          outa.every((x) => x === 0),
          `${what}, async: output overwritten`,
        );
      }
      // A key that differs in one bit.
      const other = gcmKey(flip(seededBytes(32, 1), 31), b);
      assert.equal(other.open(iv, aad, ct, Buffer.alloc(pt.length), tag), false);
    });
  }

  it('native and node:crypto give the same bytes for every length, whole and in pieces', {
    skip: nativeSkip,
  }, () => {
    const n = gcmKey(seededBytes(32, 5), 'native');
    const o = gcmKey(seededBytes(32, 5), 'node:crypto');
    for (const len of [0, 1, 15, 16, 17, 255, 65_536 + 3, (1 << 20) + 1]) {
      const iv = seededBytes(12, len + 6);
      const aad = seededBytes(len % 97, len + 7);
      const pt = seededBytes(len, len + 8);
      const [c1, c2] = [Buffer.alloc(len), Buffer.alloc(len)];
      const [t1, t2] = [Buffer.alloc(16), Buffer.alloc(16)];
      n.seal(iv, aad, pt, c1, t1);
      o.seal(iv, aad, pt, c2, t2);
      assert.ok(c1.equals(c2) && t1.equals(t2), `length ${len}`);
      const cut = Math.floor(len / 3);
      const pieces = [c1.subarray(0, cut), c1.subarray(cut, cut), c1.subarray(cut)];
      for (const k of [n, o]) {
        const back = Buffer.alloc(len);
        assert.ok(k.openPieces(iv, aad, pieces, back, t1), `${k.backend} length ${len}`);
        assert.ok(back.equals(pt));
      }
    }
  });

  it('refuses wrong sizes, overlapping buffers and a wiped key', { skip: nativeSkip }, () => {
    const k: GcmKey = gcmKey(seededBytes(32, 9), 'native');
    const iv = Buffer.alloc(12);
    const t = Buffer.alloc(16);
    assert.throws(() => gcmKey(Buffer.alloc(16), 'native'), /32 bytes/);
    assert.throws(
      () => k.seal(Buffer.alloc(8), Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(4), t),
      /iv must be 12/,
    );
    assert.throws(() => k.seal(iv, Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(5), t), /as long as input/);
    assert.throws(
      () => k.seal(iv, Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(8)),
      /tag/,
    );
    const buf = Buffer.alloc(100);
    assert.throws(
      () => k.seal(iv, Buffer.alloc(0), buf.subarray(0, 50), buf.subarray(10, 60), t),
      /overlaps/,
    );
    assert.throws(
      () => k.openPieces(iv, Buffer.alloc(0), [Buffer.alloc(3), Buffer.alloc(3)], Buffer.alloc(7), t),
      /add up/,
    );
    assert.throws(
      () => k.openPieces(iv, Buffer.alloc(0), [buf.subarray(0, 20)], buf.subarray(10, 30), t),
      /overlaps/,
    );
    k.wipe();
    assert.throws(() => k.seal(iv, Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(1), t), /wiped/);
    assert.throws(() => k.open(iv, Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(1), t), /wiped/);
  });

  it('a file sealed on the native backend opens on node:crypto alone (BULWARK_NATIVE=0)', {
    skip: nativeSkip,
  }, async () => {
    const dir = tempDir();
    const kr = await localKeyring(dir, 'k.json');
    const pt = seededBytes(3 * 65_536 + 77, 10);
    const ct = await encryptBytes(pt, kr, { frameSize: 65_536 });
    assert.ok((await decryptBytes(ct, kr)).equals(pt));
    await kr.close();
    writeFileSync(join(dir, 'c.bin'), ct);
    const script = `
      import { readFileSync } from 'node:fs';
      import { Keyring, decryptBytes } from './src/keys/index.js';
      import { gcmBackend } from './src/keys/gcm.js';
      const kr = await Keyring.open(${JSON.stringify(join(dir, 'k.json'))}, { secret: { value: 'correct horse' } });
      const pt = await decryptBytes(readFileSync(${JSON.stringify(join(dir, 'c.bin'))}), kr);
      process.stdout.write(JSON.stringify({ backend: gcmBackend().backend, sha: (await import('node:crypto')).createHash('sha256').update(pt).digest('hex') }));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, BULWARK_NATIVE: '0' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { backend: string; sha: string };
    assert.equal(got.backend, 'node:crypto');
    const { createHash } = await import('node:crypto');
    assert.equal(got.sha, createHash('sha256').update(pt).digest('hex'));
  });
});
