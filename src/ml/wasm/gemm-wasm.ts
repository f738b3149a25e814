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
import { GEMM_WASM_BASE64, GEMM_WASM_SHAPE } from './gemm-bytes.js';

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
  cached = ex === null ? null : makeGemm(ex);
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

function makeGemm(ex: KernelExports): GemmFn {
  const { mr, nr } = GEMM_WASM_SHAPE;
  let f32 = new Float32Array(ex.memory.buffer);
  const ensure = (floats: number): void => {
    const bytes = floats * 4;
    if (bytes > ex.memory.buffer.byteLength) {
      ex.memory.grow(Math.ceil((bytes - ex.memory.buffer.byteLength) / PAGE));
    }
    if (f32.buffer !== ex.memory.buffer) f32 = new Float32Array(ex.memory.buffer);
  };
  return (transA, transB, m, n, k, a, b, c, accumulate) => {
    const mPad = Math.ceil(m / mr) * mr;
    const nPad = Math.ceil(n / nr) * nr;
    // Layout (in floats): A (m*k + slack), B (k*n + slack), C (mPad*nPad); slack covers reads past the
    // last real element by padded rows/columns. Offsets are multiples of 4 floats (16-byte aligned).
    const slackA = (mr + 4) * (transA ? 1 : k) + 4;
    const slackB = nr + 4;
    const aOff = 0;
    const bOff = align4(aOff + m * k + slackA);
    const cOff = align4(bOff + k * n + slackB);
    ensure(cOff + mPad * nPad + 4);
    f32.set(a, aOff);
    if (transB) {
      // B is stored n x k: transpose into k x n in 32 x 32 tiles.
      const T = 32;
      for (let j0 = 0; j0 < n; j0 += T) {
        const j1 = Math.min(n, j0 + T);
        for (let p0 = 0; p0 < k; p0 += T) {
          const p1 = Math.min(k, p0 + T);
          for (let j = j0; j < j1; j++)
            for (let p = p0; p < p1; p++) f32[bOff + p * n + j] = b[j * k + p] as number;
        }
      }
    } else {
      f32.set(b, bOff);
    }
    if (accumulate) {
      if (n === nPad) f32.set(c, cOff);
      else for (let i = 0; i < m; i++) f32.set(c.subarray(i * n, i * n + n), cOff + i * nPad);
    }
    const rsa = transA ? 4 : k * 4;
    const csa = transA ? m * 4 : 4;
    ex.gemm(mPad, nPad, k, aOff * 4, rsa, csa, bOff * 4, n * 4, cOff * 4, nPad * 4, accumulate ? 1 : 0);
    if (n === nPad) c.set(f32.subarray(cOff, cOff + m * n));
    else for (let i = 0; i < m; i++) c.set(f32.subarray(cOff + i * nPad, cOff + i * nPad + n), i * n);
  };
}

function align4(x: number): number {
  return (x + 3) & ~3;
}
