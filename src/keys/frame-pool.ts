import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BulwarkError, requireInteger } from '../core/index.js';
import type { FrameKeys, SealedFrame } from './frame.js';

/**
 * A small pool of worker threads that seal and open frames of the framed streaming format in
 * parallel (frames are independent: each has its own nonce and associated data, see frame.ts).
 *
 * Why threads: in one thread node:crypto's AES-GCM spends well under half its time in OpenSSL's
 * AES-NI/VAES kernel; the rest is Node's per-call output allocation (CipherBase::Update allocates and
 * zero-fills a fresh backing store per call), and Node offers no call that encrypts into a caller's
 * buffer. Spreading frames over threads spreads that cost too.
 *
 * Buffers cross threads without copies where possible: inputs in shared memory (a SharedArrayBuffer,
 * as the model loader reads packages) are passed by reference; other inputs are copied once into a
 * recycled ArrayBuffer that is transferred to the worker and back; outputs (node:crypto's fresh
 * buffers) are transferred. Key material is sent once per operation (`session`), kept by the workers
 * only until the session ends, and never logged. A worker that dies fails every pending frame and the
 * pool (terminating the other workers); {@link sharedFramePool} then starts a new one.
 *
 * Starting a worker costs tens of milliseconds (about a second when the worker is compiled from
 * TypeScript by tsx on a loaded machine), so one pool per thread count is kept for the process and
 * reused by every operation; idle workers do not keep the process alive.
 */

/** Messages to a worker. */
export type WorkerRequest =
  | ({ t: 'keys'; s: number } & FrameKeys)
  | { t: 'end'; s: number }
  | {
      t: 'seal';
      id: number;
      s: number;
      index: number;
      last: boolean;
      src: ArrayBuffer | SharedArrayBuffer;
      off: number;
      len: number;
      /** A buffer to write the output into (transferred back with the reply). */
      out?: ArrayBuffer;
    }
  | {
      t: 'open';
      id: number;
      s: number;
      index: number;
      last: boolean;
      fh: Uint8Array;
      tag: Uint8Array;
      src: ArrayBuffer | SharedArrayBuffer;
      off: number;
      len: number;
      out?: ArrayBuffer;
    };

/** Messages from a worker. */
export type WorkerReply =
  | { t: 'ended'; s: number }
  | {
      t: 'sealed';
      id: number;
      header: Uint8Array;
      tag: Uint8Array;
      body: ArrayBuffer;
      src: ArrayBuffer | SharedArrayBuffer;
    }
  | { t: 'opened'; id: number; plain: ArrayBuffer; src: ArrayBuffer | SharedArrayBuffer }
  | {
      t: 'failed';
      id: number;
      reason: 'auth' | 'internal';
      src: ArrayBuffer | SharedArrayBuffer;
      out?: ArrayBuffer;
    };

/** A frame that failed authentication in a worker (the stream layer names the file and frame). */
export class FrameAuthFailure extends Error {
  constructor(readonly index: number) {
    super(`frame ${index} fails authentication`);
  }
}

interface Pending {
  resolve(r: WorkerReply): void;
  reject(e: Error): void;
  worker: Slot;
}

interface Slot {
  worker: Worker;
  inFlight: number;
}

/**
 * Starts the worker script next to this module: `frame-worker.js` when built; when run from source
 * (tests, benchmarks: `node --import tsx`), `frame-worker.ts` through tsx's loader, which worker
 * threads do not inherit from `--import`, so a tiny bootstrap registers it first.
 */
function startWorker(): Worker {
  const ext = extname(fileURLToPath(import.meta.url));
  const script = new URL(`./frame-worker${ext}`, import.meta.url);
  if (ext === '.js') return new Worker(script);
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script.href)}); });`;
  return new Worker(boot, { eval: true });
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export class FramePool {
  readonly threads: number;
  readonly #slots: Slot[];
  readonly #pending = new Map<number, Pending>();
  readonly #spare: ArrayBuffer[] = [];
  #nextId = 0;
  #nextSession = 0;
  #failure: Error | null = null;
  #destroyed = false;
  #terminated: Promise<void> | null = null;

  private constructor(threads: number) {
    this.threads = threads;
    this.#slots = [];
    for (let i = 0; i < threads; i++) {
      const worker = startWorker();
      const slot: Slot = { worker, inFlight: 0 };
      worker.on('message', (m: WorkerReply) => this.#onReply(m));
      worker.on('error', (e) =>
        this.#fail(new BulwarkError('ERR_INTERNAL', `frame worker failed: ${e.message}`)),
      );
      worker.on('exit', (code) => {
        if (!this.#destroyed)
          this.#fail(new BulwarkError('ERR_INTERNAL', `frame worker exited unexpectedly (code ${code})`));
      });
      // Idle workers do not keep the process alive; busy ones do (see #track).
      worker.unref();
      this.#slots.push(slot);
    }
  }

  /** Starts `threads` workers (callers choose the count: src/keys/frame-pipeline.ts frameThreads). */
  static create(threads: number): FramePool {
    requireInteger('threads', threads, 1, 256);
    return new FramePool(threads);
  }

  /** Hands `keys` to every worker for one operation; end the session to wipe them there. */
  session(keys: FrameKeys): FramePoolSession {
    const s = this.#nextSession++;
    // Copies of exactly these bytes: a view would clone its whole underlying buffer (which, for keys
    // cut from one HKDF output, holds the other keys too). postMessage serialises synchronously, so
    // the copies are wiped right after.
    const msg = {
      t: 'keys',
      s,
      enc: Uint8Array.from(keys.enc),
      prefix: Uint8Array.from(keys.prefix),
      headerHash: Uint8Array.from(keys.headerHash),
      fileTag: Uint8Array.from(keys.fileTag),
    } satisfies WorkerRequest;
    try {
      for (const slot of this.#slots) slot.worker.postMessage(msg);
    } finally {
      msg.enc.fill(0);
    }
    return new FramePoolSession(this, s);
  }

  /** Terminates every worker; pending frames fail. Idempotent. */
  destroy(): Promise<void> {
    if (this.#terminated) return this.#terminated;
    this.#destroyed = true;
    this.#terminated = Promise.all(this.#slots.map((s) => s.worker.terminate())).then(() => undefined);
    this.#fail(new BulwarkError('ERR_INTERNAL', 'frame pool destroyed'));
    this.#wipeSpare();
    this.#spare.length = 0;
    return this.#terminated;
  }

  /** @internal Settles once every worker has been terminated (null while the pool is running). */
  get terminated(): Promise<void> | null {
    return this.#terminated;
  }

  /** @internal Posts a request to the least busy worker and waits for its reply. */
  request(build: (id: number) => WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    if (this.#failure) return Promise.reject(this.#failure);
    const slot = this.#slots.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    const id = this.#nextId++;
    const msg = build(id);
    return new Promise<WorkerReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, worker: slot });
      this.#track(slot, 1);
      try {
        slot.worker.postMessage(msg, transfer);
      } catch (e) {
        // Not sent (a buffer that cannot be cloned or transferred): no reply will come.
        this.#pending.delete(id);
        this.#track(slot, -1);
        reject(e);
      }
    });
  }

  /** @internal Sends `end` to every worker and waits until each has wiped the session's keys. */
  async endSession(s: number): Promise<void> {
    this.#wipeSpare();
    if (this.#failure) return;
    await Promise.all(
      this.#slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            // Counted like a frame in flight: the worker stays referenced until every session's
            // `ended` is back (two operations ending at once: the first must not unref the worker
            // while the second still waits, or the process can exit with the wipe unconfirmed).
            const done = (): void => {
              slot.worker.off('message', onMsg);
              slot.worker.off('exit', done);
              this.#track(slot, -1);
              resolve();
            };
            const onMsg = (m: WorkerReply): void => {
              if (m.t === 'ended' && m.s === s) done();
            };
            slot.worker.on('message', onMsg);
            slot.worker.on('exit', done);
            this.#track(slot, 1);
            slot.worker.postMessage({ t: 'end', s } satisfies WorkerRequest);
          }),
      ),
    );
  }

  /**
   * @internal A recycled buffer of exactly `n` bytes (or a new one). Exactly: a recycled buffer may
   * still hold the plaintext of another operation's frame (a sealed frame's input is not overwritten
   * until its session ends), and a lent output is handed to the consumer as a view whose `.buffer` is
   * the whole ArrayBuffer, so a larger one would carry that plaintext past the view's end.
   */
  spare(n: number): ArrayBuffer {
    const i = this.#spare.findIndex((b) => b.byteLength === n);
    if (i >= 0) return this.#spare.splice(i, 1)[0]!;
    return new ArrayBuffer(n);
  }

  /** Whether the pool can take work (not destroyed, no worker lost). */
  get usable(): boolean {
    return !this.#destroyed && this.#failure === null;
  }

  /**
   * Takes back a buffer for reuse as a frame's input or output (the caller no longer uses it; a
   * buffer that held plaintext must be overwritten first).
   */
  recycle(src: ArrayBuffer | SharedArrayBuffer): void {
    if (!(src instanceof ArrayBuffer)) return;
    if (this.#destroyed) return;
    // Enough for every frame in flight, its input and output, plus the one a consumer holds; when
    // full, the oldest goes (odd sizes, such as last frames, age out instead of crowding the list).
    if (this.#spare.length >= this.threads * 12) new Uint8Array(this.#spare.shift()!).fill(0);
    this.#spare.push(src);
  }

  /** Overwrites the recycled input buffers (they held plaintext of sealed frames). */
  #wipeSpare(): void {
    for (const b of this.#spare) new Uint8Array(b).fill(0);
  }

  #track(slot: Slot, delta: number): void {
    slot.inFlight += delta;
    if (slot.inFlight === 1 && delta > 0) slot.worker.ref();
    if (slot.inFlight === 0) slot.worker.unref();
  }

  #onReply(m: WorkerReply): void {
    if (m.t === 'ended') return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    this.#track(p.worker, -1);
    this.recycle(m.src);
    if (m.t === 'failed' && m.out) {
      new Uint8Array(m.out).fill(0);
      this.recycle(m.out);
    }
    p.resolve(m);
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      this.#track(p.worker, -1);
      p.reject(this.#failure);
    }
    // A pool that lost a worker takes no more work, and its other workers still hold the keys of the
    // sessions in progress (endSession cannot reach a failed pool): terminate them all now rather than
    // whenever sharedFramePool is next asked for one.
    if (!this.#destroyed) void this.destroy();
  }
}

const shared = new Map<number, FramePool>();

/**
 * The process's pool of `threads` workers, started on first use and reused; a pool that lost a worker
 * is replaced.
 */
export function sharedFramePool(threads: number): FramePool {
  const p = shared.get(threads);
  if (p?.usable) return p;
  // A pool that lost a worker: its other workers are terminated too.
  void p?.destroy();
  const fresh = FramePool.create(threads);
  shared.set(threads, fresh);
  return fresh;
}

/** One operation's frames on a {@link FramePool}: seal or open frames under one file's keys. */
export class FramePoolSession {
  readonly #pool: FramePool;
  readonly #s: number;

  constructor(pool: FramePool, s: number) {
    this.#pool = pool;
    this.#s = s;
  }

  /**
   * Seals frame `index` over `plain` (copied into a buffer the worker owns; the caller keeps `plain`).
   * With `lend`, the ciphertext comes in one of the pool's recycled buffers: the caller hands it back
   * with {@link recycle} once done with it (no fresh frame-sized allocation per frame).
   */
  async seal(index: number, last: boolean, plain: Uint8Array, lend = false): Promise<SealedFrame> {
    const src = this.#pool.spare(plain.length);
    new Uint8Array(src, 0, plain.length).set(plain);
    const out = lend ? this.#pool.spare(plain.length) : undefined;
    const s = this.#s;
    const len = plain.length;
    const r = await this.#pool.request(
      (id) => ({ t: 'seal', id, s, index, last, src, off: 0, len, ...(out ? { out } : {}) }),
      out ? [src, out] : [src],
    );
    if (r.t !== 'sealed') throw new BulwarkError('ERR_INTERNAL', `frame ${index} could not be sealed`);
    return { header: toBuffer(r.header), body: Buffer.from(r.body, 0, len), tag: toBuffer(r.tag) };
  }

  /**
   * Opens frame `index` (header `fh` already checked by the caller). Ciphertext in shared memory is
   * passed by reference; otherwise its pieces are copied once into a buffer for the worker. Rejects
   * with {@link FrameAuthFailure} when the tag does not verify.
   */
  async open(
    index: number,
    last: boolean,
    fh: Uint8Array,
    body: readonly Uint8Array[],
    tag: Uint8Array,
    lend = false,
  ): Promise<Buffer> {
    const first = body[0];
    let src: ArrayBuffer | SharedArrayBuffer;
    let off = 0;
    let len = 0;
    const transfer: ArrayBuffer[] = [];
    if (body.length === 1 && first && first.buffer instanceof SharedArrayBuffer) {
      src = first.buffer;
      off = first.byteOffset;
      len = first.byteLength;
    } else {
      for (const p of body) len += p.byteLength;
      const ab = this.#pool.spare(len);
      const view = new Uint8Array(ab);
      for (const p of body) {
        view.set(p, off);
        off += p.byteLength;
      }
      src = ab;
      off = 0;
      transfer.push(ab);
    }
    const out = lend ? this.#pool.spare(len) : undefined;
    if (out) transfer.push(out);
    const s = this.#s;
    const r = await this.#pool.request(
      (id) => ({
        t: 'open',
        id,
        s,
        index,
        last,
        fh: Uint8Array.from(fh),
        tag: Uint8Array.from(tag),
        src,
        off,
        len,
        ...(out ? { out } : {}),
      }),
      transfer,
    );
    if (r.t === 'opened') return Buffer.from(r.plain, 0, len);
    if (r.t === 'failed' && r.reason === 'auth') throw new FrameAuthFailure(index);
    throw new BulwarkError('ERR_INTERNAL', `frame ${index} could not be opened`);
  }

  /** Takes back a lent output buffer (see `seal`, `open`); plaintext must be overwritten first. */
  recycle(b: Buffer): void {
    this.#pool.recycle(b.buffer);
  }

  /** Wipes this operation's keys in every worker. */
  end(): Promise<void> {
    return this.#pool.endSession(this.#s);
  }
}
