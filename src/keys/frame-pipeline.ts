import { requireInteger } from '../core/index.js';
import type { FrameKeys } from './frame.js';
import { type FramePool, type FramePoolSession, sharedFramePool } from './frame-pool.js';

/**
 * Runs a stream's frame jobs in order, on this thread or on the process's {@link FramePool}, so that
 * the streaming code (stream.ts) has one loop for both: the first {@link PARALLEL_MIN_FRAMES} frames
 * run here (a small file never waits for threads); after that, when more than one thread is allowed,
 * frames go to the pool (started on first use), at most {@link DEPTH_PER_WORKER} per worker in flight
 * (memory stays at a few frames per worker). Results come out in submission order.
 *
 * Fail closed: the first failing frame aborts the operation, with the error the sequential path would
 * have raised (a failure at frame i reported only after every earlier frame was settled), the
 * plaintext of frames still in flight is overwritten, and the workers wipe this operation's keys. A
 * failure of the workers themselves (not a frame failing authentication) terminates the pool.
 */

/** Frames processed on the calling thread before a pool is started. */
export const PARALLEL_MIN_FRAMES = 8;
/** Frames in flight per worker: one being processed, one queued behind it. */
export const DEPTH_PER_WORKER = 4;

export interface ParallelOptions {
  /**
   * Threads for the frame crypto: 1 keeps everything on the calling thread; more starts that many
   * worker threads once the stream has more than {@link PARALLEL_MIN_FRAMES} frames. Default 1
   * (see {@link frameThreads}).
   */
  threads?: number;
  /**
   * Each buffer the stream yields stays valid only until the next one is requested: it is then
   * reused for a later frame (plaintext overwritten first). Saves a frame-sized allocation per frame
   * on the worker threads (page faults and unmapping, most of a frame's cost there); for consumers
   * that write or copy each buffer before asking for the next (`encryptFile`, `decryptFile` and the
   * model loader use it). Default false.
   */
  reuseOutput?: boolean;
}

/**
 * The thread count an operation uses, validated. Unset, it is 1: on the 2-vCPU machine the benchmarks
 * run on, the pool measured slower than one thread even with recycled outputs and the machine
 * otherwise idle (bench/results/crypto.json of 2026-11-26 06:56Z: 0.70 against 0.84 GB/s encrypting,
 * 0.59 against 0.87 decrypting; model-package.json of 06:58Z: a 1 GB package loaded in 10.5 s with
 * 2 threads against 9.2 s with one). Node's GCM call costs mostly its per-call output allocation,
 * which the workers pay too, plus the hand-offs. Where real cores are free, set `threads` and measure:
 * an explicit value is always honoured.
 */
export function frameThreads(opts: ParallelOptions): number {
  const t = opts.threads ?? 1;
  requireInteger('threads', t, 1, 256);
  return t;
}

export class FramePipeline<R> {
  readonly #keys: FrameKeys;
  readonly #threads: number;
  readonly #wipe: (r: R) => void;
  readonly #queue: Promise<R>[] = [];
  #pool: FramePool | null = null;
  #session: FramePoolSession | null = null;
  #count = 0;
  #jobFailed = false;

  /** `wipe` overwrites a result that will not be released (the plaintext of an aborted stream). */
  constructor(keys: FrameKeys, threads: number, wipe: (r: R) => void = () => undefined) {
    this.#keys = keys;
    this.#threads = threads;
    this.#wipe = wipe;
  }

  /**
   * Submits the next frame: `here` computes it on this thread, `pooled` on the pool (whichever this
   * frame uses). Both must copy what they need from their inputs before returning (or before their
   * first await), as the caller may reuse them. Returns the results now ready, in order.
   */
  async submit(here: () => R, pooled: (s: FramePoolSession) => Promise<R>): Promise<R[]> {
    this.#count++;
    if (!this.#session && this.#threads > 1 && this.#count > PARALLEL_MIN_FRAMES) {
      this.#pool = sharedFramePool(this.#threads);
      this.#session = this.#pool.session(this.#keys);
    }
    if (!this.#session) return [here()];
    const p = pooled(this.#session);
    // Marked handled now; awaited (and its failure raised) in order, by #head.
    p.catch(() => undefined);
    this.#queue.push(p);
    const ready: R[] = [];
    while (this.#queue.length >= this.#threads * DEPTH_PER_WORKER) ready.push(await this.#head());
    return ready;
  }

  /** Waits for every frame in flight; returns their results in order. */
  async finish(): Promise<R[]> {
    const ready: R[] = [];
    while (this.#queue.length > 0) ready.push(await this.#head());
    return ready;
  }

  /**
   * Aborts after `e`: settles the frames in flight, overwrites their results, terminates the pool,
   * and returns the error to raise: the earliest frame's. When `e` came from a frame in flight, the
   * frames still queued come after it; otherwise `e` was raised at the frame being read, after all
   * the queued ones, and a failure among those wins.
   */
  async abort(e: unknown): Promise<unknown> {
    let first = e;
    const queuedAreEarlier = !this.#jobFailed;
    for (const p of this.#queue.splice(0)) {
      try {
        this.#wipe(await p);
      } catch (je) {
        if (queuedAreEarlier && first === e) first = je;
      }
    }
    const pool = this.#pool;
    if (pool && !pool.usable) {
      this.#pool = null;
      this.#session = null;
      await pool.destroy();
    }
    await this.close();
    return first;
  }

  /** Waits for frames still in flight (discarding them) and wipes the keys held by the workers. Idempotent. */
  async close(): Promise<void> {
    for (const p of this.#queue.splice(0)) {
      try {
        this.#wipe(await p);
      } catch {
        // Closing after an abandoned stream: results are discarded either way.
      }
    }
    const session = this.#session;
    this.#pool = null;
    this.#session = null;
    await session?.end();
  }

  /** Hands a lent output buffer back to the pool (a no-op for results computed on this thread). */
  recycle(b: Buffer): void {
    this.#session?.recycle(b);
  }

  /** The worker threads in use (0 while the stream is still on this thread). */
  get threadsInUse(): number {
    return this.#pool?.threads ?? 0;
  }

  async #head(): Promise<R> {
    const head = this.#queue.shift()!;
    try {
      return await head;
    } catch (e) {
      this.#jobFailed = true;
      throw e;
    }
  }
}
