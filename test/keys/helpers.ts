import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
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
