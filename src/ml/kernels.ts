/**
 * Numeric kernels on typed arrays: the hot path of training, DP-SGD and gradient attacks.
 *
 * Matrices are row-major `Float32Array`s with their shape passed alongside. Reductions accumulate in
 * double precision (JavaScript numbers), so sums over a million float32 terms keep ~15 digits.
 * Matrix multiply goes to the WebAssembly SIMD kernel (`gemm-wasm.ts`) when the runtime supports it,
 * and to the portable cache-blocked JavaScript loop below otherwise; both give the same result up to
 * float32 rounding (tested). Large products are split over worker threads ({@link setThreads}; default
 * `BULWARK_THREADS`, else up to 2) that share the kernel's WebAssembly memory.
 */
import { BulwarkError } from '../core/index.js';
import { parallelGemm, setThreads, threads, wasmGemm } from './wasm/gemm-wasm.js';

export { setThreads, threads };

/** Throws ERR_SHAPE_MISMATCH when an array is not of the length its shape says. */
export function requireLength(name: string, a: ArrayLike<number>, expected: number): void {
  if (a.length !== expected) {
    throw new BulwarkError('ERR_SHAPE_MISMATCH', `${name}: expected ${expected} elements, got ${a.length}`, {
      details: { parameter: name, expected, got: a.length },
    });
  }
}

/** Which implementation {@link gemm} uses: `auto` (WebAssembly SIMD when available) or forced `js`. */
let backend: 'auto' | 'js' = 'auto';

/** Forces the portable JavaScript GEMM (`js`) or restores the default (`auto`); for tests and benchmarks. */
export function setGemmBackend(b: 'auto' | 'js'): void {
  backend = b;
}

/** The GEMM implementation in use: `wasm-simd` or `js`. */
export function gemmBackend(): 'wasm-simd' | 'js' {
  return backend === 'auto' && wasmGemm() !== null ? 'wasm-simd' : 'js';
}

/**
 * General matrix multiply, C = op(A) · op(B) (+ C when `accumulate`), op(X) = X or Xᵀ.
 *
 * op(A) is m x k, op(B) is k x n, C is m x n; A is stored m x k (or k x m when `transA`), B is stored
 * k x n (or n x k when `transB`).
 *
 * @example
 * ```ts
 * // Y = X · W for a batch X (b x d) and weights W (d x h)
 * gemm(false, false, b, h, d, X, W, Y);
 * // dW = Xᵀ · dY,  dX = dY · Wᵀ
 * gemm(true, false, d, h, b, X, dY, dW);
 * gemm(false, true, b, d, h, dY, W, dX);
 * ```
 */
export function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  accumulate = false,
): void {
  requireLength('a', a, m * k);
  requireLength('b', b, k * n);
  requireLength('c', c, m * n);
  if (m === 0 || n === 0) return;
  if (k === 0) {
    if (!accumulate) c.fill(0);
    return;
  }
  if (n <= 2) {
    // One or two output columns (binary logistic regression, GEMV): the SIMD kernel would pad them to
    // 16 and copy whole operands for little work; direct loops are faster here.
    gemmNarrow(transA, transB, m, n, k, a, b, c, accumulate);
    return;
  }
  const w = backend === 'auto' ? (parallelGemm() ?? wasmGemm()) : null;
  // Below ~4k multiply-adds the copies into WebAssembly memory cost more than they save.
  if (w !== null && m * n * k >= 4096) {
    try {
      w(transA, transB, m, n, k, a, b, c, accumulate);
      return;
    } catch (e) {
      // The operands did not fit in WebAssembly memory (RangeError from memory.grow, before C is
      // touched): fall through to the JavaScript loop.
      if (!(e instanceof RangeError)) throw e;
    }
  }
  gemmJs(transA, transB, m, n, k, a, b, c, accumulate);
}

/**
 * Portable GEMM: 4-row register blocking over a contiguous row of B (each B element loaded once per
 * four rows of C), k blocked by 256 so the B rows touched stay in cache. Aᵀ is read through strides;
 * Bᵀ is handled by a dot-product loop (both operands contiguous along k).
 */
export function gemmJs(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  accumulate = false,
): void {
  if (!accumulate) c.fill(0);
  const rsa = transA ? 1 : k;
  const csa = transA ? m : 1;
  if (transB) {
    // C[i,j] += sum_p A(i,p) * B[j,p]
    for (let i = 0; i < m; i++) {
      const ci = i * n;
      for (let j = 0; j < n; j++) {
        const bj = j * k;
        let s = 0;
        let ap = i * rsa;
        for (let p = 0; p < k; p++, ap += csa) s += (a[ap] as number) * (b[bj + p] as number);
        c[ci + j] = (c[ci + j] as number) + s;
      }
    }
    return;
  }
  const KB = 256;
  for (let p0 = 0; p0 < k; p0 += KB) {
    const p1 = Math.min(k, p0 + KB);
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const c0 = i * n;
      const c1 = c0 + n;
      const c2 = c1 + n;
      const c3 = c2 + n;
      for (let p = p0; p < p1; p++) {
        const base = i * rsa + p * csa;
        const a0 = a[base] as number;
        const a1 = a[base + rsa] as number;
        const a2 = a[base + 2 * rsa] as number;
        const a3 = a[base + 3 * rsa] as number;
        const bo = p * n;
        for (let j = 0; j < n; j++) {
          const bv = b[bo + j] as number;
          c[c0 + j] = (c[c0 + j] as number) + a0 * bv;
          c[c1 + j] = (c[c1 + j] as number) + a1 * bv;
          c[c2 + j] = (c[c2 + j] as number) + a2 * bv;
          c[c3 + j] = (c[c3 + j] as number) + a3 * bv;
        }
      }
    }
    for (; i < m; i++) {
      const ci = i * n;
      for (let p = p0; p < p1; p++) {
        const av = a[i * rsa + p * csa] as number;
        if (av === 0) continue;
        const bo = p * n;
        for (let j = 0; j < n; j++) c[ci + j] = (c[ci + j] as number) + av * (b[bo + j] as number);
      }
    }
  }
}

/**
 * GEMM for n <= 2 columns of C: dot products along contiguous rows of A, or (for Aᵀ) axpy over
 * contiguous rows of the stored A, accumulated in double.
 */
function gemmNarrow(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  accumulate: boolean,
): void {
  for (let j = 0; j < n; j++) {
    // column j of op(B) as a contiguous vector of length k
    const bj = new Float64Array(k);
    for (let p = 0; p < k; p++) bj[p] = transB ? (b[j * k + p] as number) : (b[p * n + j] as number);
    if (!transA) {
      for (let i = 0; i < m; i++) {
        let s = 0;
        const o = i * k;
        for (let p = 0; p < k; p++) s += (a[o + p] as number) * (bj[p] as number);
        c[i * n + j] = (accumulate ? (c[i * n + j] as number) : 0) + s;
      }
    } else {
      const acc = new Float64Array(m);
      for (let p = 0; p < k; p++) {
        const v = bj[p] as number;
        if (v === 0) continue;
        const o = p * m;
        for (let i = 0; i < m; i++) acc[i] = (acc[i] as number) + (a[o + i] as number) * v;
      }
      for (let i = 0; i < m; i++)
        c[i * n + j] = (accumulate ? (c[i * n + j] as number) : 0) + (acc[i] as number);
    }
  }
}

/** out[i] = a[i] + b[i]. */
export function add(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  requireLength('b', b, a.length);
  requireLength('out', out, a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) + (b[i] as number);
  return out;
}

/** out[i] = a[i] - b[i]. */
export function sub(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  requireLength('b', b, a.length);
  requireLength('out', out, a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) - (b[i] as number);
  return out;
}

/** out[i] = a[i] * b[i] (Hadamard product). */
export function mul(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  requireLength('b', b, a.length);
  requireLength('out', out, a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) * (b[i] as number);
  return out;
}

/** x[i] *= s, in place. */
export function scale<T extends Float32Array | Float64Array>(x: T, s: number): T {
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * s;
  return x;
}

/** y[i] += alpha * x[i], in place (BLAS axpy). */
export function axpy(alpha: number, x: Float32Array | Float64Array, y: Float32Array | Float64Array): void {
  requireLength('y', y, x.length);
  for (let i = 0; i < x.length; i++) y[i] = (y[i] as number) + alpha * (x[i] as number);
}

/** Adds the row vector `v` (length cols) to every row of the rows x cols matrix `x`, in place. */
export function addRowVector(x: Float32Array, rows: number, cols: number, v: Float32Array): void {
  requireLength('x', x, rows * cols);
  requireLength('v', v, cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) x[o + c] = (x[o + c] as number) + (v[c] as number);
  }
}

/** Column sums of a rows x cols matrix (accumulated in double), added into `out` when `accumulate`. */
export function colSums(
  x: Float32Array,
  rows: number,
  cols: number,
  out: Float32Array = new Float32Array(cols),
  accumulate = false,
): Float32Array {
  requireLength('x', x, rows * cols);
  requireLength('out', out, cols);
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) acc[c] = (acc[c] as number) + (x[o + c] as number);
  }
  for (let c = 0; c < cols; c++) out[c] = (accumulate ? (out[c] as number) : 0) + (acc[c] as number);
  return out;
}

/** Sum of the elements, accumulated in double (pairwise error not needed at these sizes). */
export function sum(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] as number;
  return s;
}

/** Dot product, accumulated in double. */
export function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  requireLength('y', y, x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] as number) * (y[i] as number);
  return s;
}

/** Sum of squares, accumulated in double. */
export function sumSquares(x: ArrayLike<number>, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) {
    const v = x[i] as number;
    s += v * v;
  }
  return s;
}

/** Euclidean norm. */
export function norm2(x: ArrayLike<number>): number {
  return Math.sqrt(sumSquares(x));
}

/** Largest element (-Infinity for an empty array). */
export function max(x: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if ((x[i] as number) > m) m = x[i] as number;
  return m;
}

/** Index of the largest element of each row (first on ties). */
export function argmaxRows(x: Float32Array, rows: number, cols: number): Int32Array {
  requireLength('x', x, rows * cols);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let best = 0;
    let bv = x[o] as number;
    for (let c = 1; c < cols; c++) {
      if ((x[o + c] as number) > bv) {
        bv = x[o + c] as number;
        best = c;
      }
    }
    out[r] = best;
  }
  return out;
}

/**
 * log(sum(exp(x))) of each row, computed stably as m + log(sum(exp(x - m))) with m the row maximum, so
 * no term overflows and at least one term is exp(0) = 1 (no underflow to log(0)).
 */
export function logSumExpRows(x: Float32Array, rows: number, cols: number): Float64Array {
  requireLength('x', x, rows * cols);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) if ((x[o + c] as number) > m) m = x[o + c] as number;
    if (m === -Infinity) {
      out[r] = -Infinity;
      continue;
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp((x[o + c] as number) - m);
    out[r] = m + Math.log(s);
  }
  return out;
}

/** log-sum-exp of a vector (stable, see {@link logSumExpRows}). */
export function logSumExp(x: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if ((x[i] as number) > m) m = x[i] as number;
  if (m === -Infinity) return -Infinity;
  if (m === Infinity) return Infinity;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp((x[i] as number) - m);
  return m + Math.log(s);
}

/** Row-wise softmax, stable (the row maximum is subtracted first); `out` may be `x`. */
export function softmaxRows(
  x: Float32Array,
  rows: number,
  cols: number,
  out: Float32Array = new Float32Array(rows * cols),
): Float32Array {
  requireLength('x', x, rows * cols);
  requireLength('out', out, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) if ((x[o + c] as number) > m) m = x[o + c] as number;
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp((x[o + c] as number) - m);
      out[o + c] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let c = 0; c < cols; c++) out[o + c] = (out[o + c] as number) * inv;
  }
  return out;
}

/** Logistic sigmoid, computed without overflow for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** log(1 + exp(z)) without overflow (softplus), used by the binary cross-entropy. */
export function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/** Transposes a rows x cols matrix into a cols x rows one. */
export function transpose(
  x: Float32Array,
  rows: number,
  cols: number,
  out = new Float32Array(rows * cols),
): Float32Array {
  requireLength('x', x, rows * cols);
  requireLength('out', out, rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++)
        for (let c = c0; c < c1; c++) out[c * rows + r] = x[r * cols + c] as number;
    }
  }
  return out;
}
