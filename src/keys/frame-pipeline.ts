import { requireInteger } from '../core/index.js';
import { gcmBackend } from './gcm.js';

/**
 * Runs a stream's frame jobs in order, on this thread or on the libuv thread pool, so that the
 * streaming code (stream.ts) has one loop for both. Frames are independent (STREAM, Hoang et al.,
 * CRYPTO 2015), so frame i can be sealed or opened while frame i+1 is read; the stream layer alone
 * enforces order, completeness and the release of plaintext.
 *
 * - One thread (the default): every frame is sealed or opened here, with the native AES-GCM backend
 *   (gcm.ts) writing into an output buffer that comes back for the next frame when the consumer allows
 *   it (`reuseOutput`): no frame-sized allocation per frame.
 * - `threads` > 1 with the native backend: after the first {@link PARALLEL_MIN_FRAMES} frames (a small
 *   file never waits), up to `threads` frames are in flight on the libuv thread pool; each job copies
 *   its input into its own output first, so the reader may reuse its buffers at once. There is no
 *   worker start-up and no hand-off of buffers between threads. With node:crypto (no native addon)
 *   frames stay on this thread whatever `threads` says: its per-call allocation is what bounds it,
 *   and worker threads measured slower than one thread (bench/results/crypto.json of 2026-11-26
 *   06:56Z, an earlier worker-thread design).
 *
 * Results come out in submission order. Fail closed: the first failing frame aborts the operation with
 * the error the sequential path would have raised (a failure at frame i reported only after every
 * earlier frame settled), and the results of frames still in flight are overwritten.
 */

/** Frames processed on the calling thread before frames go to the thread pool. */
export const PARALLEL_MIN_FRAMES = 8;

export interface ParallelOptions {
  /**
   * Frames in flight on the libuv thread pool (native backend only): 1 keeps everything on the calling
   * thread. Default 1; raise it where cores are free, and measure (the libuv pool has 4 threads unless
   * UV_THREADPOOL_SIZE says otherwise, shared with file I/O).
   */
  threads?: number;
  /**
   * Each buffer the stream yields stays valid only until the next one is requested: it is then
   * reused for a later frame (plaintext overwritten first). Saves a frame-sized allocation per frame;
   * for consumers that write or copy each buffer before asking for the next (`encryptFile`,
   * `decryptFile` and the model loader use it). Default false.
   */
  reuseOutput?: boolean;
}

/** The thread count an operation uses, validated (unset: 1). */
export function frameThreads(opts: ParallelOptions): number {
  const t = opts.threads ?? 1;
  requireInteger('threads', t, 1, 256);
  return t;
}

/** Output buffers kept for reuse per stream: the frames in flight plus the one the consumer holds. */
const SPARE_LIMIT = 16;

export class FramePipeline<R> {
  readonly #threads: number;
  readonly #frameSize: number;
  readonly #reuse: boolean;
  readonly #wipe: (r: R) => void;
  readonly #queue: Promise<R>[] = [];
  readonly #spare: Buffer[] = [];
  #count = 0;
  #jobFailed = false;

  /**
   * `frameSize` sizes the recycled outputs; `wipe` overwrites a result that will not be released (the
   * plaintext of an aborted stream).
   */
  constructor(opts: ParallelOptions, frameSize: number, wipe: (r: R) => void = () => undefined) {
    const threads = frameThreads(opts);
    this.#threads = gcmBackend().backend === 'native' ? threads : 1;
    this.#frameSize = frameSize;
    this.#reuse = opts.reuseOutput === true;
    this.#wipe = wipe;
  }

  /**
   * Submits the next frame: `here` computes it on this thread, `pooled` on the thread pool (whichever
   * this frame uses), each writing into the output buffer it is given (a recycled one, or undefined
   * for a fresh one). `pooled` must copy its inputs before returning. Returns the results now ready,
   * in order.
   */
  async submit(here: (into?: Buffer) => R, pooled: (into?: Buffer) => Promise<R>): Promise<R[]> {
    this.#count++;
    if (this.#threads === 1 || this.#count <= PARALLEL_MIN_FRAMES) {
      // Frames in flight finish first, so results stay in order.
      const ready = await this.finish();
      ready.push(here(this.#take()));
      return ready;
    }
    const p = pooled(this.#take());
    // Marked handled now; awaited (and its failure raised) in order, by #head.
    p.catch(() => undefined);
    this.#queue.push(p);
    const ready: R[] = [];
    while (this.#queue.length >= this.#threads) ready.push(await this.#head());
    return ready;
  }

  /** Waits for every frame in flight; returns their results in order. */
  async finish(): Promise<R[]> {
    const ready: R[] = [];
    while (this.#queue.length > 0) ready.push(await this.#head());
    return ready;
  }

  /**
   * Aborts after `e`: settles the frames in flight, overwrites their results, and returns the error to
   * raise: the earliest frame's. When `e` came from a frame in flight, the frames still queued come
   * after it; otherwise `e` was raised at the frame being read, after all the queued ones, and a
   * failure among those wins.
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
    await this.close();
    return first;
  }

  /** Waits for frames still in flight (discarding them) and drops the spare buffers. Idempotent. */
  async close(): Promise<void> {
    for (const p of this.#queue.splice(0)) {
      try {
        this.#wipe(await p);
      } catch {
        // Closing after an abandoned stream: results are discarded either way.
      }
    }
    for (const b of this.#spare.splice(0)) b.fill(0);
  }

  /**
   * Hands an output buffer back for a later frame once the consumer is done with it (reuseOutput
   * only). Returns false when it is not kept (a buffer of another size, or enough spares): the caller
   * then disposes of it. Kept buffers are overwritten by a later frame or, at the end, by close().
   */
  recycle(b: Buffer): boolean {
    if (!this.#reuse || this.#spare.length >= SPARE_LIMIT) return false;
    if (b.byteOffset !== 0 || b.buffer.byteLength !== this.#frameSize) return false;
    // The whole buffer: the last frame's shorter view may have been written into it, too.
    this.#spare.push(Buffer.from(b.buffer, 0, this.#frameSize));
    return true;
  }

  #take(): Buffer | undefined {
    return this.#reuse ? (this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.#frameSize)) : undefined;
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
