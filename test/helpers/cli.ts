import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The repository root (tests run from anywhere). */
export const ROOT = join(import.meta.dirname, '..', '..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `bulwark` executable (bin/bulwark.js -> dist/) as a user would: `npm test` and
 * `npm run test:unit` build first. No shell, so arguments are passed exactly.
 */
export function runBulwark(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): CliRun {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'bulwark.js'), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, CI: 'true', ...opts.env },
    input: opts.input ?? '',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
