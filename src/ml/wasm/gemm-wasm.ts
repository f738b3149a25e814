/**
 * The WebAssembly SIMD matrix multiply: instantiates the kernel compiled from `gemm-wat.ts` (bytes in
 * `gemm-bytes.ts`), copies the operands into its linear memory, runs it and copies C back.
 *
 * The copies cost O(mk + kn + mn) against the kernel's O(mnk), i.e. under 2% at training sizes. The
 * kernel only computes full MR x NR blocks; rather than finishing ragged edges in JavaScript, C is given
 * a leading dimension rounded up to NR and m is rounded up to MR: the extra rows and columns read past
 * the operands (into slack that is allocated, never into other data) and land only in padding cells of C
 * that are not copied back.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { GEMM_WASM_BASE64, GEMM_WASM_SHAPE, GEMM_WASM_SHARED_BASE64 } from './gemm-bytes.js';

type GemmFn = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  accumulate: boolean,
) => void;

/** The few WebAssembly JS-API types used here (TypeScript's ES lib has none; they live in lib.dom). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface KernelExports {
  memory: WasmMemory;
  gemm: (
    m: number,
    n: number,
    k: number,
    a: number,
    rsa: number,
    csa: number,
    b: number,
    ldb: number,
    c: number,
    ldc: number,
    beta: number,
  ) => void;
  adam: (
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    b1: number,
    b2: number,
    step: number,
    isb: number,
    eps: number,
  ) => void;
}

let cached: GemmFn | null | undefined;

/** A new instance of the kernel module (each has its own linear memory), or null without SIMD. */
function instantiate(): KernelExports | null {
  try {
    const bytes = Buffer.from(GEMM_WASM_BASE64, 'base64');
    const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
    if (wasm === undefined) return null;
    return new wasm.Instance(new wasm.Module(bytes), {}).exports as unknown as KernelExports;
  } catch {
    return null;
  }
}

/** The SIMD GEMM, or null when this runtime cannot compile WebAssembly SIMD. */
export function wasmGemm(): GemmFn | null {
  if (cached !== undefined) return cached;
  const ex = instantiate();
  cached = ex === null ? null : makeGemm(ex.memory, ex.gemm);
  return cached;
}

/** Adam's update over one parameter vector, with its moment estimates kept in WebAssembly memory. */
export interface WasmAdam {
  step(
    params: Float32Array,
    grad: Float32Array,
    b1: number,
    b2: number,
    stepSize: number,
    invSqrtBc2: number,
    eps: number,
  ): void;
}

/**
 * A SIMD Adam for `n` parameters (its own module instance: p, g, m, v at fixed offsets; m and v start
 * at zero and persist between steps), or null without WebAssembly SIMD.
 */
export function wasmAdam(n: number): WasmAdam | null {
  const ex = instantiate();
  if (ex === null) return null;
  const n4 = (n + 3) & ~3;
  const bytes = 4 * n4 * 4;
  if (bytes > ex.memory.buffer.byteLength)
    ex.memory.grow(Math.ceil((bytes - ex.memory.buffer.byteLength) / PAGE));
  const f32 = new Float32Array(ex.memory.buffer);
  const [pOff, gOff, mOff, vOff] = [0, n4, 2 * n4, 3 * n4];
  return {
    step(params, grad, b1, b2, stepSize, invSqrtBc2, eps) {
      f32.set(params, pOff);
      f32.set(grad, gOff);
      ex.adam(pOff * 4, gOff * 4, mOff * 4, vOff * 4, n4, b1, b2, stepSize, invSqrtBc2, eps);
      params.set(f32.subarray(pOff, pOff + n));
    },
  };
}

const PAGE = 65536;

/** Runs the kernel on padded operands already in memory (byte offsets), possibly split over threads. */
type KernelRunner = (
  m: number,
  n: number,
  k: number,
  a: number,
  rsa: number,
  csa: number,
  b: number,
  ldb: number,
  c: number,
  ldc: number,
  beta: number,
) => void;

/**
 * The copy-in / kernel / copy-out wrapper. `base` is the first byte offset it may use (the threaded
 * variant keeps control blocks below it); `run` executes the kernel.
 */
function makeGemm(memory: WasmMemory, run: KernelRunner, base = 0): GemmFn {
  const { mr, nr } = GEMM_WASM_SHAPE;
  let f32 = new Float32Array(memory.buffer);
  const ensure = (floats: number): void => {
    const bytes = floats * 4;
    if (bytes > memory.buffer.byteLength) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
    if (f32.buffer !== memory.buffer || f32.length * 4 !== memory.buffer.byteLength)
      f32 = new Float32Array(memory.buffer);
  };
  return (transA, transB, m, n, k, a, b, c, accumulate) => {
    const mPad = Math.ceil(m / mr) * mr;
    const nPad = Math.ceil(n / nr) * nr;
    // Layout (in floats): A (m*k + slack), B (k*n + slack), C (mPad*nPad); slack covers reads past the
    // last real element by padded rows/columns. Offsets are multiples of 4 floats (16-byte aligned).
    const slackA = (mr + 4) * (transA ? 1 : k) + 4;
    const slackB = nr + 4;
    const aOff = base / 4;
    const bOff = align4(aOff + m * k + slackA);
    const cOff = align4(bOff + k * n + slackB);
    ensure(cOff + mPad * nPad + 4);
    // A is copied as stored and read through strides (Aᵀ in place: as fast as row-major A in the
    // kernel, measured); B must be row-major k x n, so a stored Bᵀ is transposed while copying.
    f32.set(a, aOff);
    if (transB) transposeInto(b, n, k, f32, bOff);
    else f32.set(b, bOff);
    if (accumulate) {
      if (n === nPad) f32.set(c, cOff);
      else for (let i = 0; i < m; i++) f32.set(c.subarray(i * n, i * n + n), cOff + i * nPad);
    }
    const rsa = transA ? 4 : k * 4;
    const csa = transA ? m * 4 : 4;
    run(mPad, nPad, k, aOff * 4, rsa, csa, bOff * 4, n * 4, cOff * 4, nPad * 4, accumulate ? 1 : 0);
    if (n === nPad) c.set(f32.subarray(cOff, cOff + m * n));
    else for (let i = 0; i < m; i++) c.set(f32.subarray(cOff + i * nPad, cOff + i * nPad + n), i * n);
  };
}

// ---------------------------------------------------------------------------------------------------
// Worker threads. The kernel module is instantiated on the main thread and in each worker over ONE
// shared WebAssembly memory; a GEMM is split by rows of C (whole MR blocks): the main thread computes
// the first share while each worker computes its own, then the main thread waits (Atomics.wait) for
// them. Each worker has a 64-byte control block at the start of the memory: [job seq, done seq, the
// kernel's 11 arguments]. Workers are unref'd, so they never keep the process alive.

const CTRL_BYTES = 64;
const CTRL_INTS = CTRL_BYTES / 4;
/** Data starts after the control blocks of up to 15 workers. */
const DATA_BASE = 1024;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, index } = workerData;
const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
let seen = 0;
for (;;) {
  const ctrl = new Int32Array(memory.buffer, index * ${CTRL_BYTES}, ${CTRL_INTS});
  Atomics.wait(ctrl, 0, seen);
  const job = Atomics.load(ctrl, 0);
  if (job === seen) continue;
  seen = job;
  if (job < 0) break;
  ex.gemm(ctrl[2], ctrl[3], ctrl[4], ctrl[5], ctrl[6], ctrl[7], ctrl[8], ctrl[9], ctrl[10], ctrl[11], ctrl[12]);
  Atomics.store(ctrl, 1, job);
  Atomics.notify(ctrl, 1);
}
`;

/** Below this many multiply-adds a GEMM runs on the calling thread only (waking a worker costs ~10 us). */
const PARALLEL_MIN_WORK = 1 << 20;

interface Pool {
  threads: number;
  gemm: GemmFn;
}

let pool: Pool | null | undefined;
let wantedThreads = defaultThreads();

function defaultThreads(): number {
  const env = process.env['BULWARK_THREADS'];
  if (env !== undefined && /^[1-9][0-9]?$/.test(env)) return Math.min(16, Number(env));
  return Math.max(1, Math.min(2, availableParallelism()));
}

function availableParallelism(): number {
  // os.availableParallelism exists from Node 18.14; cpus().length before.
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * Sets how many threads large matrix multiplies use (1 = the calling thread only). The default is
 * `BULWARK_THREADS`, else min(2, available cores). Workers start on the first large GEMM.
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 16)
    throw new RangeError(`threads: expected an integer in [1, 16], got ${n}`);
  if (n !== wantedThreads) {
    shutdownPool();
    wantedThreads = n;
  }
}

/** The number of threads large matrix multiplies use. */
export function threads(): number {
  return wantedThreads;
}

function shutdownPool(): void {
  if (pool) {
    const p = pool as Pool & { stop?: () => void };
    p.stop?.();
  }
  pool = undefined;
}

/** The threaded GEMM for the configured thread count, or null (1 thread, or no shared-memory SIMD). */
export function parallelGemm(): GemmFn | null {
  if (wantedThreads <= 1) return null;
  if (pool !== undefined) return pool?.gemm ?? null;
  pool = null;
  try {
    pool = createPool(wantedThreads);
  } catch {
    pool = null;
  }
  return pool?.gemm ?? null;
}

interface SharedWasmApi extends WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}

function createPool(n: number): Pool & { stop: () => void } {
  const wasm = (globalThis as unknown as { WebAssembly: SharedWasmApi }).WebAssembly;
  const memory = new wasm.Memory({ initial: 2, maximum: 16384, shared: true });
  const module = new wasm.Module(Buffer.from(GEMM_WASM_SHARED_BASE64, 'base64'));
  const ex = new wasm.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  const workers: Worker[] = [];
  for (let i = 0; i < n - 1; i++) {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, index: i } });
    w.unref();
    workers.push(w);
  }
  let seq = 0;
  const { mr } = GEMM_WASM_SHAPE;
  const ctrlOf = (i: number) => new Int32Array(memory.buffer, i * CTRL_BYTES, CTRL_INTS);
  const run: KernelRunner = (m, nn, k, a, rsa, csa, b, ldb, c, ldc, beta) => {
    if (m * nn * k < PARALLEL_MIN_WORK || m < 2 * mr) {
      ex.gemm(m, nn, k, a, rsa, csa, b, ldb, c, ldc, beta);
      return;
    }
    // Shares of whole MR-row blocks; the main thread takes the first.
    const blocks = m / mr;
    const parts = Math.min(n, blocks);
    const per = Math.floor(blocks / parts);
    const extra = blocks % parts;
    const starts: number[] = [];
    let r = 0;
    for (let t = 0; t < parts; t++) {
      starts.push(r);
      r += (per + (t < extra ? 1 : 0)) * mr;
    }
    starts.push(m);
    seq = (seq + 1) & 0x3fffffff;
    for (let t = 1; t < parts; t++) {
      const ctrl = ctrlOf(t - 1);
      const r0 = starts[t] as number;
      const rows = (starts[t + 1] as number) - r0;
      ctrl.set([rows, nn, k, a + r0 * rsa, rsa, csa, b, ldb, c + r0 * ldc, ldc, beta], 2);
      Atomics.store(ctrl, 0, seq);
      Atomics.notify(ctrl, 0);
    }
    ex.gemm(starts[1] as number, nn, k, a, rsa, csa, b, ldb, c, ldc, beta);
    for (let t = 1; t < parts; t++) {
      const ctrl = ctrlOf(t - 1);
      for (;;) {
        const done = Atomics.load(ctrl, 1);
        if (done === seq) break;
        if (Atomics.wait(ctrl, 1, done, 10_000) === 'timed-out') {
          throw new Error('internal: a GEMM worker thread did not answer within 10 s');
        }
      }
    }
  };
  return {
    threads: n,
    gemm: makeGemm(memory, run, DATA_BASE),
    stop() {
      workers.forEach((w, i) => {
        const ctrl = ctrlOf(i);
        Atomics.store(ctrl, 0, -1);
        Atomics.notify(ctrl, 0);
        void w.terminate();
      });
    },
  };
}

/** Writes the transpose of `src` (rows x cols, row-major) into `dst` at `off` (cols x rows), in 32 x 32 tiles. */
function transposeInto(src: Float32Array, rows: number, cols: number, dst: Float32Array, off: number): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        let si = r * cols + c0;
        let di = off + c0 * rows + r;
        for (let c = c0; c < c1; c++, si++, di += rows) dst[di] = src[si] as number;
      }
    }
  }
}

function align4(x: number): number {
  return (x + 3) & ~3;
}
