import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The folder Bulwark is installed in (the repository root in a clone): two folders above this module,
 * in src/core/ and dist/core/ alike. Files shipped with Bulwark (its committed benchmark results, the
 * docs) are found from here, not from the working directory.
 */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../', import.meta.url)).replace(/[\\/]$/, '');
}

let cached: string | undefined;

/** Bulwark's version, from package.json (read once). */
export function bulwarkVersion(): string {
  cached ??= (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return cached;
}
