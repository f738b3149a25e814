import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';

/**
 * Counts the reads of one file through node:fs/promises' readFile (how readSecret, src/keys/secret.ts,
 * reads a passphrase file once per Keyring.open): the function is wrapped, every call passed through,
 * and published to ES module importers with syncBuiltinESMExports. The observable of the "keyring opened
 * once per command" tests; nothing is mocked. `reset()` sets the count to 0, `restore()` puts readFile
 * back.
 */
export function countFileReads(path: string): { readonly count: number; reset(): void; restore(): void } {
  const real = fsp.readFile;
  let count = 0;
  (fsp as { readFile: typeof fsp.readFile }).readFile = ((file: unknown, ...rest: unknown[]) => {
    if (file === path) count++;
    return (real as (...a: unknown[]) => ReturnType<typeof fsp.readFile>)(file, ...rest);
  }) as typeof fsp.readFile;
  syncBuiltinESMExports();
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
    restore() {
      (fsp as { readFile: typeof fsp.readFile }).readFile = real;
      syncBuiltinESMExports();
    },
  };
}
