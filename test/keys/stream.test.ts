import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gcm } from '@noble/ciphers/aes.js';
import { SeededRng } from '../../src/core/index.js';
import {
  decryptBytes,
  decryptFile,
  encryptBytes,
  encryptFile,
  FRAME_OVERHEAD,
  hkdf,
  type Keyring,
  readStreamHeader,
} from '../../src/keys/index.js';
import {
  seededBytes as data,
  localKeyring,
  parseStream as parse,
  rejectsWith,
  STREAM_TEST_FRAME,
  tempDir,
} from './helpers.js';

const F = STREAM_TEST_FRAME;

describe('framed file encryption', () => {
  const dir = tempDir();
  let kr: Keyring;
  let other: Keyring;

  it('round-trips sizes around frame boundaries with 25 bytes per frame', async () => {
    kr = await localKeyring(dir, 'k.json');
    other = await localKeyring(dir, 'other.json');
    for (const n of [0, 1, F - 1, F, F + 1, 3 * F, 3 * F + 17]) {
      const pt = data(n, n);
      const ct = await encryptBytes(pt, kr, { frameSize: F });
      const { header, frames } = parse(ct);
      assert.equal(frames.length, n === 0 ? 1 : Math.ceil(n / F), `n=${n}`);
      assert.equal(ct.length, header.length + n + frames.length * FRAME_OVERHEAD);
      assert.deepEqual(await decryptBytes(ct, kr), pt, `n=${n}`);
    }
  });

  it('is readable by an independent implementation of the documented format (@noble/ciphers)', async () => {
    const pt = data(F + 100, 9);
    const ct = await encryptBytes(pt, kr, { frameSize: F });
    const { header, frames } = parse(ct);
    const wk = JSON.parse(header.subarray(46, 46 + header.readUInt16BE(44)).toString()) as Parameters<
      Keyring['unwrapKey']
    >[0];
    const dek = await kr.unwrapKey(wk, 'bulwark/v1/stream');
    const salt = header.subarray(12, 44);
    const okm = hkdf(dek, salt, 'bulwark/v1/stream-keys', 103);
    const body = header.subarray(0, header.length - 32);
    assert.deepEqual(
      header.subarray(header.length - 64, header.length - 32),
      okm.subarray(32, 64),
      'commitment',
    );
    assert.deepEqual(
      createHmac('sha256', okm.subarray(64, 96)).update(body).digest(),
      header.subarray(header.length - 32),
    );
    const hh = createHash('sha256').update(header).digest();
    const out: Uint8Array[] = [];
    frames.forEach((f, i) => {
      const nonce = Buffer.concat([okm.subarray(96, 103), Buffer.from([0, 0, 0, i]), Buffer.from([f[8]!])]);
      out.push(
        gcm(okm.subarray(0, 32), nonce, Buffer.concat([hh, f.subarray(0, 13)])).decrypt(f.subarray(13)),
      );
    });
    assert.deepEqual(Buffer.concat(out), pt);
  });

  it('every header byte edited is refused with the code of its field', async () => {
    const ct = await encryptBytes(data(2 * F + 5, 3), kr, { frameSize: F });
    const { header } = parse(ct);
    const n = header.readUInt16BE(44);
    const seen = new Map<string, number>();
    for (let i = 0; i < header.length; i++) {
      const t = Buffer.from(ct);
      t[i]! ^= 0x01;
      let code = 'none';
      try {
        await decryptBytes(t, kr);
      } catch (e) {
        code = (e as { code?: string }).code ?? String(e);
      }
      let allowed: string[];
      if (i < 8) allowed = ['ERR_FORMAT_UNSUPPORTED'];
      else if (i < 10) allowed = ['ERR_FORMAT_VERSION'];
      else if (i < 12) allowed = ['ERR_HEADER_TAMPERED'];
      else if (i < 44)
        allowed = ['ERR_HEADER_TAMPERED']; // salt: commitment fails
      else if (i < 46)
        allowed = ['ERR_CIPHERTEXT_TRUNCATED', 'ERR_HEADER_TAMPERED']; // the length
      else if (i < 46 + n)
        allowed = ['ERR_HEADER_TAMPERED', 'ERR_KEY_UNWRAP', 'ERR_KEY_NOT_FOUND', 'ERR_FORMAT_VERSION']; // wrapped key
      else allowed = ['ERR_HEADER_TAMPERED']; // commitment and MAC
      assert.ok(
        allowed.includes(code),
        `header byte ${i}: got ${code}, expected one of ${allowed.join(', ')}`,
      );
      seen.set(code, (seen.get(code) ?? 0) + 1);
    }
    assert.ok((seen.get('ERR_HEADER_TAMPERED') ?? 0) > 64);
  });

  it('any edited frame byte is ERR_CIPHERTEXT_TAMPERED (and the clear frame header is checked)', async () => {
    const ct = await encryptBytes(data(2 * F + 5, 4), kr, { frameSize: F });
    const { header, frames } = parse(ct);
    const rng = new SeededRng(5);
    let off = header.length;
    for (const f of frames) {
      for (let k = 0; k < 20; k++) {
        const j = k < 13 ? k : 13 + rng.int(f.length - 13);
        const t = Buffer.from(ct);
        t[off + j]! ^= 1 << rng.int(8);
        // The last frame's length field: a longer length reads as truncation, a shorter one leaves
        // data after the final frame; every other byte is caught by the position check or the tag.
        const lastLen = f === frames[frames.length - 1] && j >= 9 && j < 13;
        const expect =
          j < 8
            ? ['ERR_FRAME_ORDER']
            : lastLen
              ? ['ERR_CIPHERTEXT_TRUNCATED', 'ERR_FRAME_ORDER', 'ERR_CIPHERTEXT_TAMPERED']
              : ['ERR_CIPHERTEXT_TAMPERED'];
        const code = await decryptBytes(t, kr).then(
          () => 'none',
          (e: { code?: string }) => e.code,
        );
        assert.ok(expect.includes(String(code)), `frame byte ${j}: ${code}`);
      }
      off += f.length;
    }
  });

  it('truncation anywhere is ERR_CIPHERTEXT_TRUNCATED', async () => {
    const ct = await encryptBytes(data(3 * F, 6), kr, { frameSize: F });
    const { header, frames } = parse(ct);
    const cuts = [13, header.length - 1, header.length, header.length + 5, header.length + frames[0]!.length];
    cuts.push(header.length + frames[0]!.length + frames[1]!.length, ct.length - 1, ct.length - 16);
    for (const c of cuts)
      await rejectsWith(() => decryptBytes(ct.subarray(0, c), kr), 'ERR_CIPHERTEXT_TRUNCATED', `cut at ${c}`);
  });

  it('reordered, repeated, dropped, foreign or appended frames are ERR_FRAME_ORDER', async () => {
    const ct = await encryptBytes(data(3 * F + 1, 7), kr, { frameSize: F });
    const { header, frames } = parse(ct);
    const [f0, f1, f2, f3] = frames as [Buffer, Buffer, Buffer, Buffer];
    const cases: [string, Buffer[]][] = [
      ['swapped', [header, f1, f0, f2, f3]],
      ['repeated', [header, f0, f0, f1, f2, f3]],
      ['dropped', [header, f0, f2, f3]],
      ['appended', [header, f0, f1, f2, f3, f3]],
    ];
    for (const [what, parts] of cases)
      await rejectsWith(() => decryptBytes(Buffer.concat(parts), kr), 'ERR_FRAME_ORDER', what);
    const ct2 = await encryptBytes(data(3 * F + 1, 8), kr, { frameSize: F });
    const g = parse(ct2).frames;
    await rejectsWith(
      () => decryptBytes(Buffer.concat([header, f0, g[1]!, f2, f3]), kr),
      'ERR_FRAME_ORDER',
      'foreign',
    );
    // A forger who also rewrites the clear position and file tag still fails the frame's tag.
    const moved = Buffer.from(f1);
    f0.copy(moved, 0, 0, 8);
    await rejectsWith(
      () => decryptBytes(Buffer.concat([header, moved, f1, f2, f3]), kr),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    const forged = Buffer.from(g[1]!);
    f1.copy(forged, 0, 0, 8);
    await rejectsWith(
      () => decryptBytes(Buffer.concat([header, f0, forged, f2, f3]), kr),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    // A middle frame marked last (and the rest cut) fails its tag: "last" is in the nonce.
    const early = Buffer.from(f1);
    early[8] = 1;
    await rejectsWith(() => decryptBytes(Buffer.concat([header, f0, early]), kr), 'ERR_CIPHERTEXT_TAMPERED');
  });

  it('unknown versions, foreign files and missing keys have their own codes', async () => {
    const ct = await encryptBytes(data(100, 9), kr, { frameSize: F });
    const v2 = Buffer.from(ct);
    v2[8] = 2;
    await rejectsWith(() => decryptBytes(v2, kr), 'ERR_FORMAT_VERSION');
    await rejectsWith(() => decryptBytes(Buffer.from('id,amount\n1,2\n'), kr), 'ERR_FORMAT_UNSUPPORTED');
    await rejectsWith(() => decryptBytes(Buffer.alloc(0), kr), 'ERR_FORMAT_UNSUPPORTED');
    await rejectsWith(() => decryptBytes(ct, other), 'ERR_KEY_NOT_FOUND');
    await kr.rotate('data');
    const ct2 = await encryptBytes(data(100, 9), kr, { frameSize: F });
    assert.deepEqual(await decryptBytes(ct, kr), data(100, 9), 'old version still decrypts');
    await kr.disable('data', 1);
    await rejectsWith(() => decryptBytes(ct, kr), 'ERR_KEY_DISABLED');
    await kr.destroy('data', 1);
    await rejectsWith(() => decryptBytes(ct, kr), 'ERR_KEY_DESTROYED');
    assert.deepEqual(await decryptBytes(ct2, kr), data(100, 9));
    await rejectsWith(() => encryptBytes(Buffer.alloc(1), kr, { frameSize: 1000 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      () => encryptBytes(Buffer.alloc(1), kr, { frameSize: 1 << 21 }),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('files: atomic output, and nothing written when decryption fails', async () => {
    const input = join(dir, 'plain.bin');
    const pt = data(5 * F + 3, 10);
    writeFileSync(input, pt);
    const enc = join(dir, 'plain.bin.bwe');
    const bytes = await encryptFile(input, enc, kr, { frameSize: F });
    assert.equal(bytes, readFileSync(enc).length);
    const info = await readStreamHeader(enc);
    assert.equal(info.frameSize, F);
    assert.equal(info.wrappedKey.key, 'data');
    const out = join(dir, 'out.bin');
    await decryptFile(enc, out, kr);
    assert.deepEqual(readFileSync(out), pt);
    const before = readdirSync(dir).sort();
    const t = readFileSync(enc);
    t[t.length - 5]! ^= 1;
    writeFileSync(join(dir, 'bad.bwe'), t);
    await rejectsWith(
      () => decryptFile(join(dir, 'bad.bwe'), join(dir, 'bad.out'), kr),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    writeFileSync(join(dir, 'cut.bwe'), t.subarray(0, t.length - F));
    await rejectsWith(
      () => decryptFile(join(dir, 'cut.bwe'), join(dir, 'cut.out'), kr),
      'ERR_CIPHERTEXT_TRUNCATED',
    );
    assert.deepEqual(
      readdirSync(dir).sort(),
      [...before, 'bad.bwe', 'cut.bwe'].sort(),
      'no output, no temp file',
    );
    await rejectsWith(() => encryptFile(join(dir, 'missing'), join(dir, 'x'), kr), 'ERR_FILE_NOT_FOUND');
  });
});
