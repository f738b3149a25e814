import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';

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

/** A stand-in for process.stdout or process.stderr that keeps what is written (never a terminal). */
class Captured extends Writable {
  text = '';
  constructor() {
    super({ decodeStrings: false });
  }
  override _write(chunk: string | Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    done();
  }
}

let inProcessBusy = false;

/**
 * Runs the CLI in this process: `runCli` of src/cli/program.ts, the function bin/bulwark.js runs, with
 * process.stdout, process.stderr and process.stdin replaced for the run (stdin as {@link runBulwark}
 * gives it: a pipe holding `input`, not a terminal), CI=true and `env` set, and `cwd` as the working
 * folder; the exit code is what runCli returns, which bin/bulwark.js sets as the process's.
 *
 * For tests of help text, option parsing and errors raised before any real work: the same code as the
 * executable without the 0.4-0.5 s of CPU each new Node process spends loading it. Tests about the
 * process itself (its exit status as a shell sees it, signals, stdout/stderr pipes, no stack trace from
 * a crash outside runCli) spawn it with {@link runBulwark}. One run at a time: the streams, environment
 * and working folder are the process's own. Runs the TypeScript sources, not dist/.
 */
export async function runBulwarkInProcess(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<CliRun> {
  if (inProcessBusy) throw new Error('runBulwarkInProcess: one run at a time');
  inProcessBusy = true;
  const out = new Captured();
  const err = new Captured();
  const stdin = Readable.from(opts.input ? [Buffer.from(opts.input)] : []);
  const saved = new Map<string, PropertyDescriptor | undefined>();
  const env = { CI: 'true', ...opts.env };
  const savedEnv = new Map(Object.keys(env).map((k) => [k, process.env[k]]));
  const savedCwd = process.cwd();
  const savedExitCode = process.exitCode;
  try {
    const { runCli } = await import('../../src/cli/program.js');
    for (const [name, stream] of Object.entries({ stdout: out, stderr: err, stdin })) {
      saved.set(name, Object.getOwnPropertyDescriptor(process, name));
      Object.defineProperty(process, name, { configurable: true, enumerable: true, get: () => stream });
    }
    Object.assign(process.env, env);
    process.chdir(opts.cwd ?? ROOT);
    const code = await runCli(args);
    return { code, stdout: out.text, stderr: err.text };
  } finally {
    process.chdir(savedCwd);
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    for (const [name, d] of saved) if (d) Object.defineProperty(process, name, d);
    process.exitCode = savedExitCode;
    inProcessBusy = false;
  }
}
