import { spawn, spawnSync } from 'node:child_process';
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

/**
 * {@link runBulwark} without blocking the test process, so that independent runs can overlap (see
 * {@link inParallel}): each run spends most of its time starting Node and loading modules.
 */
export function runBulwarkAsync(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'bulwark.js'), ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, CI: 'true', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    // A child that exits without reading its input closes the pipe: not a failure of the run.
    child.stdin.on('error', () => {});
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Runs `tasks` at most `limit` at a time (default 2: the test machines have 2 cores) and returns their
 * results in the order of `tasks`. Only for runs that do not depend on each other.
 */
export async function inParallel<T>(tasks: ReadonlyArray<() => Promise<T>>, limit = 2): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
