import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { BulwarkError, exists, requireOutputFolder } from '../core/index.js';

/**
 * Option value parsers for commander: each rejects a bad value with a message naming what was
 * expected; commander adds the option name, and the CLI maps it to ERR_USAGE (exit 2).
 */

export function intOption(min = -Infinity, max = Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer${rangeText(min, max)}, got "${v}"`);
    }
    return n;
  };
}

export function floatOption(min = -Infinity, max = Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a number${rangeText(min, max)}, got "${v}"`);
    }
    return n;
  };
}

/**
 * A size in bytes: a whole number of bytes, or a number with KiB, MiB, GiB or TiB (powers of 1024;
 * `1.5GiB` is allowed when it comes to whole bytes), in [min, max].
 */
export function bytesOption(min: number, max: number): (v: string) => number {
  const unit: Record<string, number> = {
    '': 1,
    b: 1,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
  };
  return (v) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(v);
    const mult = m ? unit[(m[2] as string).toLowerCase()] : undefined;
    const n = m && mult !== undefined ? Number(m[1]) * mult : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(
        `expected a size in bytes, or with KiB, MiB, GiB or TiB (as 512MiB or 2GiB), from ${sizeText(min)} to ${sizeText(max)}, got "${v}"`,
      );
    return n;
  };
}

/** A byte count as the largest power-of-1024 unit that divides it (2 ** 30 -> "1GiB"). */
function sizeText(n: number): string {
  for (const [u, m] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const)
    if (n >= m && n % m === 0) return `${n / m}${u}`;
  return `${n} bytes`;
}

export function listOption<T>(item: (v: string) => T): (v: string) => T[] {
  return (v) => v.split(',').map((s) => item(s.trim()));
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` >= ${min}`;
  if (min === -Infinity) return ` <= ${max}`;
  return ` in [${min}, ${max}]`;
}

/** The file a path names, links resolved, or the resolved path when nothing is there yet. */
async function identityOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Checks an output path before any work is done (a DP run would otherwise spend its budget first):
 * `ERR_USAGE` when it is one of the command's inputs — the same file, links resolved, whatever
 * `--force` says: a command never writes its result over what it reads (the audit database, a
 * signing key, the data) — `ERR_FILE_EXISTS` when it exists and `force` is not set, and
 * `ERR_FILE_NOT_FOUND` when the folder it goes in does not exist (it is not created: a mistyped path
 * fails before the work rather than after it, or growing folders somewhere unexpected).
 */
export async function checkOutputPath(
  out: string,
  opts: { force?: boolean | undefined; option?: string; inputs?: readonly (string | undefined)[] } = {},
): Promise<void> {
  const option = opts.option ?? '--out';
  const target = await identityOf(out);
  for (const input of opts.inputs ?? []) {
    if (input !== undefined && (await identityOf(input)) === target)
      throw new BulwarkError(
        'ERR_USAGE',
        `${option} ${out} is also an input of this command; choose another path`,
        {
          details: { option },
        },
      );
  }
  // A folder is never replaced, --force or not: refused here, before the work, not as EISDIR after it.
  if ((await stat(out).catch(() => null))?.isDirectory())
    throw new BulwarkError('ERR_USAGE', `${option} ${out} is a folder; give a file path`, {
      details: { option },
    });
  if (opts.force !== true && (await exists(out)))
    throw new BulwarkError('ERR_FILE_EXISTS', `refusing to overwrite ${out} (add --force to replace it)`, {
      details: { path: out },
    });
  await requireOutputFolder(out);
}

/**
 * Where a location's value came from, for the errors about it (a store or ledger in a missing folder):
 * `flag` when it was given on the command line, `$ENV` when it came from `envVar`, else undefined (the
 * built-in default, a file in the working folder).
 */
export function locationOrigin(flag: string, fromCommandLine: boolean, envVar: string): string | undefined {
  if (fromCommandLine) return flag;
  const v = process.env[envVar];
  return v !== undefined && v !== '' ? `$${envVar}` : undefined;
}
