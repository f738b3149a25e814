import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import {
  type FrameKeys,
  openFrameAsync,
  sealFrame,
  sealFrameAsync,
  wipeFrameKeys,
} from '../../src/keys/frame.js';
import { gcmKey } from '../../src/keys/gcm.js';
import {
  decryptBytes,
  decryptFile,
  decryptStream,
  encryptBytes,
  encryptFile,
  type Keyring,
  PARALLEL_MIN_FRAMES,
} from '../../src/keys/index.js';
import { sealFrames } from '../../src/keys/stream.js';
import {
  STREAM_TEST_FRAME as F,
  localKeyring,
  parseStream,
  rejectsWith,
  seededBytes,
  tempDir,
} from './helpers.js';

/** Enough 64 KiB frames that the thread pool takes over after the first PARALLEL_MIN_FRAMES. */
const FRAMES = PARALLEL_MIN_FRAMES + 14;
const N = FRAMES * F - 1234;

/**
 * Frame keys from seeds `seed`..`seed + 3` (production draws them from the CSPRNG, a fresh DEK and salt
 * per file): for the tests that need the same bytes on two paths.
 */
function fixedFrameKeys(seed: number): FrameKeys {
  return {
    enc: seededBytes(32, seed),
    prefix: seededBytes(7, seed + 1),
    headerHash: seededBytes(32, seed + 2),
    fileTag: seededBytes(4, seed + 3),
  };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

/** The error code and message of a decryption, or 'ok'. */
async function outcome(ct: Buffer, kr: Keyring, threads: number): Promise<string> {
  try {
    await decryptBytes(ct, kr, { threads });
    return 'ok';
  } catch (e) {
    if (!isBulwarkError(e)) throw e;
    return `${e.code}: ${e.message}`;
  }
}

describe('framed encryption with frames on the thread pool', () => {
  const dir = tempDir();
  let kr: Keyring;

  it('seals byte-identical frames on one thread and on a pool, under the same keys', async () => {
    // Fixed frame keys through the frame-level function: production draws them from the CSPRNG (a
    // fresh DEK and salt per file), so whole files differ run to run by design.
    const keys = (): FrameKeys => fixedFrameKeys(11);
    const pt = seededBytes(N, 1);
    // Source chunks that do not line up with frames.
    const chunks = (): Buffer[] => {
      const out: Buffer[] = [];
      for (let o = 0; o < pt.length; o += 40_000) out.push(pt.subarray(o, o + 40_000));
      return out;
    };
    const one = await collect(sealFrames(keys(), chunks(), F, { threads: 1 }));
    const two = await collect(sealFrames(keys(), chunks(), F, { threads: 2 }));
    const three = await collect(sealFrames(keys(), [pt], F, { threads: 3 }));
    // Outputs written into recycled buffers (collect copies each part before asking for the next).
    const lent = await collect(sealFrames(keys(), chunks(), F, { threads: 2, reuseOutput: true }));
    assert.equal(one.length, N + FRAMES * 29);
    assert.ok(one.equals(two), 'two threads');
    assert.ok(one.equals(three), 'three threads');
    assert.ok(one.equals(lent), 'two threads, reused output buffers');
  });

  it('round-trips across the paths: parallel to sequential and back, any frame size', async () => {
    kr = await localKeyring(dir, 'k.json');
    const pt = seededBytes(N, 2);
    for (const [enc, dec] of [
      [2, 1],
      [1, 2],
      [2, 2],
    ] as const) {
      const ct = await encryptBytes(pt, kr, { frameSize: F, threads: enc });
      assert.equal(parseStream(ct).frames.length, FRAMES);
      assert.ok((await decryptBytes(ct, kr, { threads: dec })).equals(pt), `${enc} -> ${dec}`);
    }
    // 1 MiB frames, a few beyond the threshold; and exactly at the threshold (stays on this thread).
    const big = seededBytes((PARALLEL_MIN_FRAMES + 3) << 20, 3);
    const ct = await encryptBytes(big, kr, { threads: 2 });
    assert.ok((await decryptBytes(ct, kr, { threads: 2 })).equals(big));
    const edge = seededBytes(PARALLEL_MIN_FRAMES * F, 4);
    assert.ok(
      (await decryptBytes(await encryptBytes(edge, kr, { frameSize: F, threads: 2 }), kr)).equals(edge),
    );
  });

  it('reused output buffers: each is valid until the next is requested, then overwritten', async () => {
    const pt = seededBytes(N, 8);
    const ct = await encryptBytes(pt, kr, { frameSize: F, threads: 1 });
    const copies: Buffer[] = [];
    const seen: Buffer[] = [];
    for await (const p of decryptStream([ct], kr, '<t>', { threads: 2, reuseOutput: true })) {
      copies.push(Buffer.from(p));
      seen.push(p);
    }
    assert.ok(Buffer.concat(copies).equals(pt));
    // The buffers were handed back: plaintext no longer sits in them (all zeros or reused).
    const late = seen[seen.length - 3]!;
    assert.ok(!late.equals(copies[copies.length - 3]!), 'a released buffer was overwritten');
  });

  it('ciphertext in shared memory is read in place', async () => {
    const pt = seededBytes(N, 5);
    const ct = await encryptBytes(pt, kr, { frameSize: F, threads: 1 });
    const shared = Buffer.from(new SharedArrayBuffer(ct.length));
    ct.copy(shared);
    assert.ok((await decryptBytes(shared, kr, { threads: 2 })).equals(pt));
  });

  it('tampered, reordered and truncated streams fail on the thread pool with the sequential error', async () => {
    const ct = await encryptBytes(seededBytes(N, 6), kr, { frameSize: F, threads: 2 });
    const { header, frames } = parseStream(ct);
    const late = PARALLEL_MIN_FRAMES + 4; // a frame the thread pool opens
    const flip = (b: Buffer, at: number): Buffer => {
      const t = Buffer.from(b);
      t[at]! ^= 0x10;
      return t;
    };
    const frameAt = (i: number): number =>
      header.length + frames.slice(0, i).reduce((s, f) => s + f.length, 0);
    const swapped = [...frames];
    [swapped[late], swapped[late + 1]] = [swapped[late + 1]!, swapped[late]!];
    // Frame `late` tampered and frame `late + 2` out of place: the earlier failure is reported.
    const both = flip(
      Buffer.concat([header, ...frames.slice(0, late + 2), frames[late + 3]!]),
      frameAt(late) + 500,
    );
    const cases: [string, Buffer, string][] = [
      ['ciphertext byte', flip(ct, frameAt(late) + 13 + 1000), 'ERR_CIPHERTEXT_TAMPERED'],
      ['tag byte', flip(ct, frameAt(late + 1) - 3), 'ERR_CIPHERTEXT_TAMPERED'],
      ['last frame', flip(ct, ct.length - 100), 'ERR_CIPHERTEXT_TAMPERED'],
      ['swapped frames', Buffer.concat([header, ...swapped]), 'ERR_FRAME_ORDER'],
      ['dropped frame', Buffer.concat([header, ...frames.filter((_, i) => i !== late)]), 'ERR_FRAME_ORDER'],
      ['last frame cut off', Buffer.concat([header, ...frames.slice(0, -1)]), 'ERR_CIPHERTEXT_TRUNCATED'],
      ['cut mid-frame', ct.subarray(0, frameAt(late) + 700), 'ERR_CIPHERTEXT_TRUNCATED'],
      ['tampered, then out of order', both, 'ERR_CIPHERTEXT_TAMPERED'],
    ];
    for (const [what, bad, code] of cases) {
      const par = await outcome(bad, kr, 2);
      assert.ok(par.startsWith(`${code}:`), `${what}: ${par}`);
      assert.equal(par, await outcome(bad, kr, 1), `${what}: same error on both paths`);
    }
    const e = await rejectsWith(
      () => decryptBytes(flip(ct, frameAt(late) + 13 + 1000), kr, { threads: 2 }),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    assert.deepEqual((e as { details?: unknown }).details, { frame: late });
  });

  it('files: a frame failing on the thread pool aborts the whole file and leaves no output', async () => {
    const input = join(dir, 'plain.bin');
    const pt = seededBytes(N, 7);
    writeFileSync(input, pt);
    const enc = join(dir, 'plain.bwe');
    await encryptFile(input, enc, kr, { frameSize: F, threads: 2 });
    await decryptFile(enc, join(dir, 'out.bin'), kr, { threads: 2 });
    assert.ok(readFileSync(join(dir, 'out.bin')).equals(pt));
    const before = readdirSync(dir).sort();
    const t = readFileSync(enc);
    t[t.length - 10 * F]! ^= 1;
    writeFileSync(join(dir, 'bad.bwe'), t);
    await rejectsWith(
      () => decryptFile(join(dir, 'bad.bwe'), join(dir, 'bad.out'), kr, { threads: 2 }),
      'ERR_CIPHERTEXT_TAMPERED',
    );
    assert.deepEqual(readdirSync(dir).sort(), [...before, 'bad.bwe'].sort(), 'no output, no temp file');
  });

  it('a frame on the thread pool copies its input first: the caller may reuse it at once', async () => {
    const keys = fixedFrameKeys(51);
    const pt = seededBytes(F, 55);
    const want = sealFrame(keys, 3, false, pt);
    const input = Buffer.from(pt);
    const pending = sealFrameAsync(keys, 3, false, input);
    input.fill(0x5a);
    const got = await pending;
    assert.ok(got.body.equals(want.body) && got.tag.equals(want.tag) && got.header.equals(want.header));
    // Opening: the ciphertext pieces are copied too, and a wrong tag resolves to null with the
    // output overwritten.
    const pieces = [Buffer.from(got.body.subarray(0, 1000)), Buffer.from(got.body.subarray(1000))];
    const opening = openFrameAsync(keys, 3, false, got.header, pieces, got.tag);
    for (const p of pieces) p.fill(0);
    assert.ok((await opening)?.equals(pt));
    const into = Buffer.alloc(F);
    const bad = Buffer.from(got.tag);
    bad[0]! ^= 1;
    assert.equal(await openFrameAsync(keys, 3, false, got.header, [got.body], bad, into), null);
    assert.ok(
      into.every((b) => b === 0),
      'no unauthenticated plaintext left',
    );
  });

  it('a frame key is wiped with the frame keys: later use fails instead of using a zero key', async () => {
    const k = fixedFrameKeys(61);
    sealFrame(k, 0, true, Buffer.alloc(16));
    wipeFrameKeys(k);
    assert.ok(k.enc.every((b) => b === 0));
    // Wiped frame keys refuse (not a fresh key prepared from their zeroed bytes), on both paths; a
    // prepared key refuses once wiped.
    assert.throws(() => sealFrame(k, 1, true, Buffer.alloc(16)), /used after they were wiped/);
    await assert.rejects(sealFrameAsync(k, 1, true, Buffer.alloc(16)), /used after they were wiped/);
    const g = gcmKey(seededBytes(32, 65));
    g.wipe();
    assert.throws(
      () => g.seal(Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(16)),
      /wiped/,
    );
  });

  it('refuses a thread count out of range', async () => {
    await rejectsWith(() => encryptBytes(Buffer.alloc(1), kr, { threads: 0 }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(() => decryptBytes(Buffer.alloc(1), kr, { threads: 1.5 }), 'ERR_INVALID_ARGUMENT');
    await kr.close();
  });
});
