import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { Keyring, type ScryptParams } from '../../src/keys/index.js';

/** A cheap scrypt setting for tests (the default, 2^17, takes ~0.3 s per open). */
export const TEST_SCRYPT: ScryptParams = { N: 1024, r: 8, p: 1 };

/** A fresh temporary folder, removed when the test file ends. */
export function tempDir(prefix = 'bulwark-keys-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A local keyring with one key `data`, passphrase `pw`. */
export async function localKeyring(
  dir: string,
  name = 'keys.json',
  passphrase = 'correct horse',
): Promise<Keyring> {
  const kr = await Keyring.create(join(dir, name), { secret: { value: passphrase }, scrypt: TEST_SCRYPT });
  await kr.createKey('data');
  return kr;
}

/** Asserts that `fn` rejects with a BulwarkError of `code`; returns the error. */
export async function rejectsWith(fn: () => Promise<unknown>, code: string, msg?: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (isBulwarkError(e) && e.code === code) return e;
    throw new Error(
      `${msg ?? 'expected'} ${code}, got ${isBulwarkError(e) ? e.code : String(e)}: ${(e as Error).message}`,
    );
  }
  throw new Error(`${msg ?? 'expected'} ${code}, but it succeeded`);
}

/** The frame size of the stream tests (the smallest allowed, so many frames stay small). */
export const STREAM_TEST_FRAME = 65536;

/** `n` deterministic bytes. */
export function seededBytes(n: number, seed = 1): Buffer {
  const rng = new SeededRng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

/** Splits an encrypted buffer into its header and frames, following docs/keys.md. */
export function parseStream(ct: Buffer, frameSize = STREAM_TEST_FRAME): { header: Buffer; frames: Buffer[] } {
  const n = ct.readUInt16BE(44);
  const hlen = 46 + n + 64;
  const frames: Buffer[] = [];
  let off = hlen;
  while (off < ct.length) {
    const len = 13 + ct.readUInt32BE(off + 9) + 16;
    assert.ok(ct.readUInt32BE(off + 9) <= frameSize);
    frames.push(ct.subarray(off, off + len));
    off += len;
  }
  return { header: ct.subarray(0, hlen), frames };
}
