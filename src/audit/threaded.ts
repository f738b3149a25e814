/**
 * An audit log written on a worker thread of its own.
 *
 * Why: in the gateway every answered request appends a prediction event, and the append's work
 * (schema validation, canonical JSON, the leaf and tree hashes, the SQLite or PostgreSQL write and the
 * fsync's bookkeeping) runs on the event loop that also decrypts, parses and answers requests. Here
 * the event loop only queues the event and posts the queue (one message in flight: what is appended
 * meanwhile travels in the next); the thread validates, hashes and commits (group commit, as
 * {@link AuditLog}), and posts the receipts back once the batch is durable. The durability point is
 * unchanged: `append` resolves only after the commit, so the gateway still releases no prediction
 * before its record is on disk.
 *
 * Fail closed: if the thread stops (a crash, an out-of-memory kill), every append and call in flight
 * rejects with ERR_AUDIT_UNAVAILABLE and so do new ones, until a new thread has reopened the log (at
 * most one attempt a second, started by the next call). An event the thread committed but could not
 * acknowledge is a record without an answer, never an answer without a record.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BulwarkError, type ErrorCode, errorCodes, requireInteger } from '../core/index.js';
import type { Checkpoint } from './checkpoint.js';
import type { AuditEventInput } from './events.js';
import type { AuditStoreSpec } from './log.js';
import type { AppendReceipt, AuditWriter } from './writer.js';

export interface ThreadedAuditLogOptions {
  /** Where the log is kept (a store object cannot cross threads: a spec only). */
  store: AuditStoreSpec;
  /** The checkpoint signing key text (`PRIVATE+KEY+name+id+key`), parsed on the thread. */
  signerKey?: string;
  /** The log's origin (default: the signer's name, or the stored one). */
  origin?: string;
  /** The most events written in one transaction (default 4,096). */
  maxBatch?: number;
  /** How long the thread may take to open the log, in ms (default 30,000). */
  startTimeoutMs?: number;
}

/** @internal The thread's start-up data: the options it opens the log with. */
export type WriterInit = Omit<ThreadedAuditLogOptions, 'startTimeoutMs'>;

/** @internal A failure as it crosses the thread boundary. */
export interface WireError {
  code: string;
  message: string;
  details?: Record<string, string | number | boolean | null>;
}

/** @internal Calls other than append. */
export type WriterOp = 'flush' | 'checkpoint' | 'checkpoints' | 'publicKey' | 'useSigner' | 'close';

/** @internal Main thread → writer (`arg`: useSigner's key text). */
export type ToWriter =
  | { k: 'append'; events: { s: number; e: AuditEventInput }[] }
  | { k: 'call'; s: number; op: WriterOp; arg?: string };

/** @internal Writer → main thread. */
export type FromWriter =
  | { k: 'ready'; origin: string }
  | { k: 'fatal'; error: WireError }
  | { k: 'appended'; r: ({ s: number; ok: AppendReceipt } | { s: number; err: WireError })[] }
  | { k: 'result'; s: number; ok?: unknown; err?: WireError };

interface Waiter {
  resolve: (v: never) => void;
  reject: (e: unknown) => void;
}

const unavailable = (why: string) =>
  new BulwarkError('ERR_AUDIT_UNAVAILABLE', `the audit writer thread ${why}; request refused`);

/** A BulwarkError again from its wire form (an unknown code becomes ERR_AUDIT_UNAVAILABLE). */
export function fromWire(e: WireError): BulwarkError {
  const code: ErrorCode = Object.hasOwn(errorCodes, e.code) ? (e.code as ErrorCode) : 'ERR_AUDIT_UNAVAILABLE';
  return new BulwarkError(code, e.message, e.details ? { details: e.details } : {});
}

/**
 * The writer thread's entry. Built, it is threaded-worker.js; from source (tests, benchmarks) it is
 * TypeScript, and a worker thread does not inherit the parent's `--import tsx` hooks: a small
 * bootstrap registers tsx in the thread first, then imports the entry.
 */
function workerSource(): { source: string | URL; eval: boolean } {
  const ext = extname(fileURLToPath(import.meta.url));
  const url = new URL(`./threaded-worker${ext}`, import.meta.url);
  if (ext !== '.ts') return { source: url, eval: false };
  const api = import.meta.resolve('tsx/esm/api');
  return {
    source: `import(${JSON.stringify(api)}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); });`,
    eval: true,
  };
}

/** Checkpoints come back with `root` as a Uint8Array (structured clone): make it a Buffer again. */
function checkpointOf(c: Checkpoint): Checkpoint {
  return { ...c, root: Buffer.from(c.root.buffer, c.root.byteOffset, c.root.byteLength) };
}

/**
 * @internal Fault injection for tests: ends the writer thread as a crash would (no close, nothing
 * flushed), and resolves with its exit code.
 */
export const CRASH_WRITER: unique symbol = Symbol('bulwark.audit.crashWriter');

/** An {@link AuditWriter} whose log lives on a worker thread. */
export class ThreadedAuditLog implements AuditWriter {
  readonly origin: string;
  #init: WriterInit;
  readonly #timeout: number;
  #worker: Worker | null;
  #seq = 0;
  #outbox: { s: number; e: AuditEventInput }[] = [];
  #scheduled = false;
  /** Appends posted to the thread and not yet answered. */
  #inFlight = 0;
  readonly #waiting = new Map<number, Waiter>();
  #closed = false;
  #restart: Promise<void> | null = null;
  #lastStart = 0;

  private constructor(origin: string, init: WriterInit, timeout: number, worker: Worker) {
    this.origin = origin;
    this.#init = init;
    this.#timeout = timeout;
    this.#worker = worker;
    this.#lastStart = Date.now();
    this.#attach(worker);
  }

  /**
   * Starts the thread and opens the log there; fails as {@link AuditLog.open} does (which checks the
   * other options, on the thread).
   */
  static async open(options: ThreadedAuditLogOptions): Promise<ThreadedAuditLog> {
    const { startTimeoutMs, ...init } = options;
    const timeout = requireInteger('startTimeoutMs', startTimeoutMs ?? 30_000, 1);
    const { worker, origin } = await start(init, timeout);
    return new ThreadedAuditLog(origin, init, timeout, worker);
  }

  append(event: AuditEventInput): Promise<AppendReceipt> {
    if (this.#closed) return Promise.reject(new BulwarkError('ERR_AUDIT_CLOSED', 'the audit log is closed'));
    if (this.#worker === null) {
      this.#revive();
      return Promise.reject(unavailable('is not running'));
    }
    const s = ++this.#seq;
    const p = new Promise<AppendReceipt>((resolve, reject) =>
      this.#waiting.set(s, { resolve: resolve as (v: never) => void, reject }),
    );
    this.#outbox.push({ s, e: event });
    // Group commit on this side too: while a message's appends are being committed the next ones wait
    // here and then travel together (a message costs microseconds of this thread, whatever its size);
    // with none in flight they go at the end of this loop turn, with the turn's other appends.
    if (this.#inFlight === 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#post());
    }
    return p;
  }

  flush(): Promise<void> {
    return this.#call('flush');
  }

  async checkpoint(): Promise<Checkpoint> {
    return checkpointOf(await this.#call<Checkpoint>('checkpoint'));
  }

  async checkpoints(): Promise<Checkpoint[]> {
    return (await this.#call<Checkpoint[]>('checkpoints')).map(checkpointOf);
  }

  publicKey(): Promise<string | undefined> {
    return this.#call('publicKey');
  }

  /** {@link AuditWriter.useSigner} on the thread; a thread restarted later opens the log with this key. */
  async useSigner(signerKey: string): Promise<{ key: string; changed: boolean }> {
    const r = await this.#call<{ key: string; changed: boolean }>('useSigner', signerKey);
    this.#init = { ...this.#init, signerKey };
    return r;
  }

  /** Commits what is queued, closes the log on the thread and ends the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const worker = this.#worker;
    let failure: unknown = null;
    if (worker) {
      try {
        await this.#call('close');
      } catch (e) {
        failure = e;
      }
    }
    this.#closed = true;
    this.#worker = null;
    if (worker) await worker.terminate();
    if (failure) throw failure;
  }

  /** @internal See {@link CRASH_WRITER}. */
  async [CRASH_WRITER](): Promise<number> {
    const worker = this.#worker;
    if (worker === null) return -1;
    return worker.terminate();
  }

  #call<T>(op: WriterOp, arg?: string): Promise<T> {
    if (this.#closed) return Promise.reject(new BulwarkError('ERR_AUDIT_CLOSED', 'the audit log is closed'));
    const worker = this.#worker;
    if (worker === null) {
      this.#revive();
      return Promise.reject(unavailable('is not running'));
    }
    // Appends queued before the call go first, so that flush and checkpoint cover them.
    this.#post();
    const s = ++this.#seq;
    const p = new Promise<T>((resolve, reject) =>
      this.#waiting.set(s, { resolve: resolve as (v: never) => void, reject }),
    );
    worker.postMessage({ k: 'call', s, op, ...(arg === undefined ? {} : { arg }) } satisfies ToWriter);
    return p;
  }

  #post(): void {
    this.#scheduled = false;
    if (this.#outbox.length === 0) return;
    const events = this.#outbox;
    this.#outbox = [];
    const worker = this.#worker;
    if (worker === null) {
      for (const { s } of events) this.#settle(s, undefined, unavailable('is not running'));
      return;
    }
    try {
      worker.postMessage({ k: 'append', events } satisfies ToWriter);
      this.#inFlight += events.length;
    } catch {
      // An event that cannot be cloned (a function, a symbol) is its caller's error: the others go alone.
      for (const one of events) {
        try {
          worker.postMessage({ k: 'append', events: [one] } satisfies ToWriter);
          this.#inFlight++;
        } catch (e) {
          this.#settle(
            one.s,
            undefined,
            new BulwarkError(
              'ERR_AUDIT_EVENT_INVALID',
              `event cannot be sent to the writer: ${(e as Error).message}`,
            ),
          );
        }
      }
    }
  }

  #settle(s: number, value: unknown, error?: unknown): void {
    const w = this.#waiting.get(s);
    if (!w) return;
    this.#waiting.delete(s);
    if (error !== undefined) w.reject(error);
    else w.resolve(value as never);
  }

  #attach(worker: Worker): void {
    worker.on('message', (m: FromWriter) => {
      if (m.k === 'appended') {
        this.#inFlight -= m.r.length;
        for (const r of m.r)
          if ('ok' in r) this.#settle(r.s, r.ok);
          else this.#settle(r.s, undefined, fromWire(r.err));
        if (this.#inFlight === 0) this.#post();
      } else if (m.k === 'result') this.#settle(m.s, m.ok, m.err ? fromWire(m.err) : undefined);
    });
    // The thread stopped: what still waits on it is refused (never left pending). After close() that
    // is an append that raced the close (ERR_AUDIT_CLOSED); otherwise a crash (ERR_AUDIT_UNAVAILABLE).
    const down = (why: string) => {
      if (this.#worker === worker) {
        this.#worker = null;
        this.#inFlight = 0;
        this.#outbox = [];
      } else if (!this.#closed) return; // a thread already replaced or already reported
      const error = this.#closed
        ? new BulwarkError('ERR_AUDIT_CLOSED', 'the audit log is closed')
        : unavailable(why);
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const w of waiting) w.reject(error);
    };
    worker.on('error', () => down('failed'));
    worker.on('exit', (code) => down(`stopped (exit code ${code})`));
  }

  /** Starts a new thread after one stopped: at most one attempt a second, never concurrently. */
  #revive(): void {
    if (this.#closed || this.#restart || Date.now() - this.#lastStart < 1000) return;
    this.#lastStart = Date.now();
    this.#restart = start(this.#init, this.#timeout)
      .then(({ worker, origin }) => {
        if (this.#closed || origin !== this.origin) {
          void worker.terminate();
          return;
        }
        this.#worker = worker;
        this.#attach(worker);
      })
      .catch(() => {})
      .finally(() => {
        this.#restart = null;
      });
  }
}

/** Starts a writer thread and waits for it to open the log. */
function start(init: WriterInit, timeout: number): Promise<{ worker: Worker; origin: string }> {
  const entry = workerSource();
  let worker: Worker;
  try {
    worker = new Worker(entry.source, { eval: entry.eval, workerData: init, stdout: false, stderr: false });
  } catch (e) {
    return Promise.reject(unavailable(`could not start (${(e as Error).message})`));
  }
  return new Promise((resolve, reject) => {
    // Only this function's own listeners come off: Worker keeps internal ones (removeAllListeners
    // would detach its message port).
    const onError = (e: Error) => fail(unavailable(`failed at start-up (${e.message})`));
    const onExit = (code: number) => fail(unavailable(`exited at start-up (code ${code})`));
    const onMessage = (m: FromWriter) => {
      if (m.k === 'ready') {
        detach();
        resolve({ worker, origin: m.origin });
      } else fail(m.k === 'fatal' ? fromWire(m.error) : unavailable('sent an unexpected first message'));
    };
    const detach = () => {
      clearTimeout(timer);
      worker.off('error', onError).off('exit', onExit).off('message', onMessage);
    };
    const fail = (e: BulwarkError) => {
      detach();
      void worker.terminate();
      reject(e);
    };
    const timer = setTimeout(() => fail(unavailable(`did not open the log within ${timeout} ms`)), timeout);
    worker.on('error', onError).on('exit', onExit).on('message', onMessage);
  });
}
