import { randomBytes } from 'node:crypto';
import { createWriteStream, type Stats, statSync, unlinkSync, type WriteStream } from 'node:fs';
import { access, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BulwarkError } from './errors.js';

/**
 * File helpers that never leave a half-written file behind: every write goes to a temporary file in the
 * same folder, is fsync'ed, then renamed over the target (rename is atomic on POSIX file systems), and
 * the folder is fsync'ed so the rename itself survives a crash.
 */

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Temporary files being written now: what a process stopped by a signal must not leave behind. */
const pendingTemps = new Set<string>();

/**
 * Deletes every temporary file still being written (synchronously: for a signal handler that exits
 * next). A decrypting command stopped by Ctrl-C would otherwise leave part of the plaintext on disk.
 * Returns how many were deleted.
 */
export function removePendingTemps(): number {
  let n = 0;
  for (const t of pendingTemps) {
    try {
      unlinkSync(t);
      n++;
    } catch {
      // already gone
    }
  }
  pendingTemps.clear();
  return n;
}

/** Maps a Node.js file-system error to a Bulwark error naming the path. */
export function fsError(e: unknown, path: string, action: string): BulwarkError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') {
    return new BulwarkError('ERR_FILE_NOT_FOUND', `${action}: no such file or folder: ${path}`, {
      cause: e,
      details: { path },
    });
  }
  if (code === 'EEXIST') {
    return new BulwarkError('ERR_FILE_EXISTS', `${action}: file exists: ${path}`, {
      cause: e,
      details: { path },
    });
  }
  const reason = code ?? (e instanceof Error ? e.message : 'unknown error');
  return new BulwarkError('ERR_IO', `${action}: ${path}: ${reason}`, { cause: e, details: { path } });
}

/** Throws `ERR_FILE_NOT_FOUND` naming `what` when `path` does not exist. */
export async function requireFile(path: string, what = 'file'): Promise<void> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new BulwarkError('ERR_FILE_NOT_FOUND', `${what} is not a regular file: ${path}`);
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw fsError(e, path, `${what} not readable`);
  }
}

/**
 * Reads an input file whole: a regular file only (a FIFO, a device such as /dev/zero or a folder would
 * block forever or never end, so they are refused with `ERR_FILE_NOT_FOUND` first), errors naming
 * `what` and the path.
 */
/** Process warning code of {@link warnIfWorldReadable}. */
export const SECRET_FILE_EXPOSED_WARNING = 'BULWARK_SECRET_FILE_EXPOSED';

/**
 * Emits a process warning (code {@link SECRET_FILE_EXPOSED_WARNING}) when the secret file at `path`
 * (a private key, a passphrase or PIN file) can be read by every user of the machine, as ssh does for
 * a private key. A warning, not a refusal: group read is how Kubernetes gives a pod its mounted
 * secrets (`fsGroup`, `defaultMode: 0440`, what `bulwark deploy k8s` writes), and a refusal there would
 * stop a service that is configured as it should be. The file's mode only is read; nothing of its
 * content reaches the message. Not checked on Windows, whose modes do not say this.
 */
export function warnIfWorldReadable(path: string, what: string): void {
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return; // The read that follows reports a missing or unreadable file.
  }
  if ((mode & 0o004) === 0) return;
  process.emitWarning(
    `the ${what} ${path} can be read by every user of this machine (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 it (or 640 for a group that needs it)`,
    { code: SECRET_FILE_EXPOSED_WARNING },
  );
}

export async function readInputFile(path: string, what: string): Promise<Buffer>;
export async function readInputFile(path: string, what: string, encoding: 'utf8'): Promise<string>;
export async function readInputFile(path: string, what: string, encoding?: 'utf8'): Promise<Buffer | string> {
  await requireFile(path, what);
  try {
    return encoding ? await readFile(path, encoding) : await readFile(path);
  } catch (e) {
    throw fsError(e, path, `cannot read the ${what}`);
  }
}

/**
 * Reads a JSON file ({@link readInputFile}: a regular file, errors naming `what`); text that is not
 * JSON is the caller's error, `notJson()`, so each format keeps its own code and message.
 */
export async function readJsonFile(
  path: string,
  what: string,
  notJson: () => BulwarkError,
): Promise<unknown> {
  const text = await readInputFile(path, what, 'utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw notJson();
  }
}

/** Opens `path` for reading (an error names the path: `fsError`), runs `fn` on it and closes it after. */
export async function withFileRead<T>(path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw fsError(e, path, 'cannot open');
  }
  try {
    return await fn(fh);
  } finally {
    await fh.close();
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** What is being written, for the folder errors: the path, with what it is and where it came from. */
export interface OutputFolderTarget {
  /** What the file is ("audit log", "budget ledger"), put before the path. */
  what?: string | undefined;
  /** The option, flag or configuration key the path came from (`--store`, `audit.store`), put after it. */
  option?: string | undefined;
}

function folderError(
  code: 'ERR_FILE_NOT_FOUND' | 'ERR_IO',
  dir: string,
  path: string,
  t: OutputFolderTarget,
  cause: unknown,
): BulwarkError {
  const label = `${t.what === undefined ? '' : `${t.what} `}${path}${t.option === undefined ? '' : ` (${t.option})`}`;
  const problem =
    code === 'ERR_IO'
      ? `${dir} is not a folder (a file is in the way)`
      : `no such folder: ${dir} (create it first)`;
  return new BulwarkError(code, `cannot write ${label}: ${problem}`, {
    cause,
    details: { path: dir, ...(t.option === undefined ? {} : { option: t.option }) },
  });
}

type StatOutcome = { stats: Stats; error?: undefined } | { stats?: undefined; error: unknown };

/**
 * Decides from the `stat` of `dir`, the folder `path` is written into, whether it is there: true when
 * it is a folder, false when it is missing and `create` allows making it. A missing folder is
 * ERR_FILE_NOT_FOUND otherwise; a file standing where a folder must be is ERR_IO, not ERR_FILE_EXISTS.
 * Shared by the asynchronous and synchronous checks so that both refuse with the same codes and words.
 */
function folderReady(
  dir: string,
  path: string,
  target: OutputFolderTarget,
  outcome: StatOutcome,
  create: boolean,
): boolean {
  if (outcome.stats !== undefined) {
    if (outcome.stats.isDirectory()) return true;
    throw folderError('ERR_IO', dir, path, target, null);
  }
  const e = outcome.error;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTDIR') throw folderError('ERR_IO', dir, path, target, e);
  if (code !== 'ENOENT') throw fsError(e, dir, 'cannot write into folder');
  if (!create) throw folderError('ERR_FILE_NOT_FOUND', dir, path, target, e);
  return false;
}

/**
 * Makes sure `dir`, the folder `path` is written into, exists. A missing folder is ERR_FILE_NOT_FOUND
 * unless `create`, which makes it and its parents and fsyncs each new folder's entry into its parent
 * (a rename fsynced into a folder whose own entry was never synced can still vanish in a crash). A file
 * standing where a folder must be is ERR_IO, not ERR_FILE_EXISTS.
 */
async function prepareFolder(
  dir: string,
  path: string,
  create: boolean,
  target: OutputFolderTarget = {},
): Promise<void> {
  const outcome: StatOutcome = await stat(dir).then(
    (stats) => ({ stats }),
    (error: unknown) => ({ error }),
  );
  if (folderReady(dir, path, target, outcome, create)) return;
  let first: string | undefined;
  try {
    first = await mkdir(dir, { recursive: true });
  } catch (m) {
    const mc = (m as NodeJS.ErrnoException).code;
    if (mc === 'EEXIST' || mc === 'ENOTDIR') throw folderError('ERR_IO', dir, path, target, m);
    throw fsError(m, dir, 'cannot create folder');
  }
  // The new folders, deepest first, up to the first one mkdir made; each is synced into its parent.
  if (first !== undefined) {
    for (let d = dir; ; d = dirname(d)) {
      await fsyncDir(dirname(d));
      if (d === first || dirname(d) === d) break;
    }
  }
}

/**
 * Checks, before any work is done, that the folder `path` will be written into exists (the check
 * {@link writeFileAtomic} makes again when it writes): ERR_FILE_NOT_FOUND when missing, ERR_IO when a
 * file stands in its place. `target` adds what the file is and the option it came from to the message.
 */
export async function requireOutputFolder(path: string, target: OutputFolderTarget = {}): Promise<void> {
  await prepareFolder(dirname(path), path, false, target);
}

/**
 * {@link requireOutputFolder} for synchronous code (a SQLite database is opened synchronously): the
 * same check, codes and messages.
 */
export function requireOutputFolderSync(path: string, target: OutputFolderTarget = {}): void {
  const dir = dirname(path);
  let outcome: StatOutcome;
  try {
    outcome = { stats: statSync(dir) };
  } catch (error) {
    outcome = { error };
  }
  folderReady(dir, path, target, outcome, false);
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export interface AtomicWriteOptions {
  /** File mode of the result (default 0o644; use 0o600 for anything secret). */
  mode?: number;
  /** Refuse with `ERR_FILE_EXISTS` when the target exists (default: overwrite). */
  noClobber?: boolean;
  /**
   * Create the folder the file goes in, and its parents, when missing (default false: a missing folder
   * is `ERR_FILE_NOT_FOUND`, so that a mistyped output path fails instead of growing a folder tree
   * somewhere unexpected). For a program's own output layout (the demo's folders, a deployment's
   * manifests folder), not for a file path a user typed.
   */
  createFolders?: boolean;
}

/** Writes `data` to `path` atomically (temp file, fsync, rename, fsync folder). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  await withAtomicFile(path, opts, async (fd) => {
    await fd.writeFile(data);
  });
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/**
 * Puts the finished temporary file at `path`. rename() replaces whatever is there, so with `noClobber`
 * the file is linked instead: link() fails with EEXIST atomically when `path` appeared since the
 * caller checked (an existence check before a rename leaves that gap open).
 */
async function publish(tmp: string, path: string, noClobber: boolean | undefined): Promise<void> {
  if (!noClobber) {
    await rename(tmp, path);
    return;
  }
  try {
    await link(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new BulwarkError('ERR_FILE_EXISTS', `refusing to overwrite ${path}`, { details: { path } });
    throw e;
  }
  await unlink(tmp);
}

async function withAtomicFile(
  path: string,
  opts: AtomicWriteOptions,
  body: (fd: FileHandle) => Promise<void>,
): Promise<void> {
  if (opts.noClobber && (await exists(path))) {
    throw new BulwarkError('ERR_FILE_EXISTS', `refusing to overwrite ${path}`, { details: { path } });
  }
  const dir = dirname(path);
  await prepareFolder(dir, path, opts.createFolders === true);
  const tmp = tempPathFor(path);
  let fd: FileHandle;
  pendingTemps.add(tmp);
  try {
    fd = await open(tmp, 'wx', opts.mode ?? 0o644);
  } catch (e) {
    pendingTemps.delete(tmp);
    throw fsError(e, path, 'cannot write');
  }
  try {
    await body(fd);
    await fd.sync();
    await fd.close();
    await publish(tmp, path, opts.noClobber);
    await fsyncDir(dir);
  } catch (e) {
    await fd.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e instanceof BulwarkError ? e : fsError(e, path, 'cannot write');
  } finally {
    pendingTemps.delete(tmp);
  }
}

/**
 * A write stream to a temporary file that becomes `path` only on {@link AtomicFileStream.commit};
 * {@link AtomicFileStream.abort} (or any failure) deletes it. For large streamed outputs (CSV, encrypted
 * files) where the whole content never sits in memory.
 */
export class AtomicFileStream {
  readonly path: string;
  readonly tempPath: string;
  readonly stream: WriteStream;
  readonly #noClobber: boolean;
  #done = false;

  private constructor(path: string, tempPath: string, stream: WriteStream, noClobber: boolean) {
    this.path = path;
    this.tempPath = tempPath;
    this.stream = stream;
    this.#noClobber = noClobber;
  }

  static async create(path: string, opts: AtomicWriteOptions = {}): Promise<AtomicFileStream> {
    if (opts.noClobber && (await exists(path))) {
      throw new BulwarkError('ERR_FILE_EXISTS', `refusing to overwrite ${path}`, { details: { path } });
    }
    await prepareFolder(dirname(path), path, opts.createFolders === true);
    const tmp = tempPathFor(path);
    pendingTemps.add(tmp);
    const stream = createWriteStream(tmp, { flags: 'wx', mode: opts.mode ?? 0o644 });
    try {
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', (e) => reject(fsError(e, path, 'cannot write')));
      });
    } catch (e) {
      pendingTemps.delete(tmp);
      throw e;
    }
    return new AtomicFileStream(path, tmp, stream, opts.noClobber === true);
  }

  /** Ends the stream, fsyncs, and renames the temporary file over the target. */
  async commit(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await new Promise<void>((resolve, reject) => {
        this.stream.once('error', reject);
        this.stream.end(() => resolve());
      });
      const h = await open(this.tempPath, 'r+');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
      await publish(this.tempPath, this.path, this.#noClobber);
      await fsyncDir(dirname(this.path));
    } catch (e) {
      await unlink(this.tempPath).catch(() => undefined);
      throw e instanceof BulwarkError ? e : fsError(e, this.path, 'cannot write');
    } finally {
      pendingTemps.delete(this.tempPath);
    }
  }

  /** Discards everything written; the target is left as it was. */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await new Promise<void>((resolve) => {
      this.stream.destroy();
      this.stream.once('close', () => resolve());
      if (this.stream.closed) resolve();
    });
    await unlink(this.tempPath).catch(() => undefined);
    pendingTemps.delete(this.tempPath);
  }
}

/** An exclusive lock on a file, held across processes until {@link FileLock.release}. */
export interface FileLock {
  /** Whether the lock is still ours: false once released or once another process broke it. */
  readonly held: boolean;
  /** Throws `ERR_FILE_LOCKED` when the lock is no longer held (check before every write it guards). */
  assertHeld(): void;
  release(): Promise<void>;
}

/**
 * Takes an exclusive lock on `path` (the file need not exist yet) for a read-modify-write that other
 * processes must not interleave with, or refuses at once with `ERR_FILE_LOCKED` when another process
 * holds it. proper-lockfile makes `<path>.lock` with mkdir (atomic, also on network file systems) and
 * refreshes its time while held, so the lock of a process that died is taken over once it is
 * `staleMs` old. A lock found broken while held (its refresh failed, or another process took it over)
 * is reported through {@link FileLock.held}, never by an exception thrown from a timer.
 */
export async function lockFile(path: string, what: string, staleMs = 30_000): Promise<FileLock> {
  let held = false;
  let release: () => Promise<void>;
  // Loaded on first use: it brings graceful-fs and signal-exit, which hook into fs and signals, and
  // only commands that change a locked file need them.
  const { default: properLockfile } = await import('proper-lockfile');
  try {
    release = await properLockfile.lock(path, {
      realpath: false,
      stale: staleMs,
      update: Math.floor(staleMs / 3),
      retries: 0,
      onCompromised: () => {
        held = false;
      },
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOCKED')
      throw new BulwarkError(
        'ERR_FILE_LOCKED',
        `${what} ${path} is in use by another process (lock ${path}.lock); try again when it has finished`,
        { details: { path } },
      );
    throw fsError(e, path, `cannot lock the ${what}`);
  }
  held = true;
  const lost = () =>
    new BulwarkError(
      'ERR_FILE_LOCKED',
      `${what} ${path}: the lock was lost (${path}.lock was removed or taken over); nothing was written`,
      { details: { path } },
    );
  return {
    get held() {
      return held;
    },
    assertHeld() {
      if (!held) throw lost();
    },
    async release() {
      if (!held) return;
      held = false;
      await release().catch(() => undefined);
    },
  };
}
