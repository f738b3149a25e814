/**
 * The little dense linear algebra the detectors need, in double precision: covariance with Ledoit-Wolf
 * shrinkage, Cholesky factorisation and the inverse of a symmetric positive-definite matrix, and the
 * Shapiro-Wilk normality statistic (for PRADA).
 */
import { BulwarkError } from '../core/index.js';
import { choleskyLower, gemm } from '../ml/index.js';

/**
 * Ledoit-Wolf shrunk covariance (Ledoit & Wolf, "A well-conditioned estimator for large-dimensional
 * covariance matrices", J. Multivariate Analysis 2004), as scikit-learn's `ledoit_wolf`:
 * Sigma = (1 - delta) S + delta mu I with S = XᵀX / n of the centred data, mu = tr(S) / d and
 * delta = min(b², d²) / d², where d² = ||S - mu I||²_F / d and b² = (sum_i ||x_i||⁴ / n - ||S||²_F) / (d n).
 * `x` is `rows x d`; pass `centred` when the rows are already centred (e.g. per class).
 */
export function ledoitWolf(
  x: Float32Array,
  rows: number,
  d: number,
  centred = false,
): { covariance: Float64Array; shrinkage: number; mean: Float64Array } {
  const mean = new Float64Array(d);
  if (!centred) {
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[r * d + j] as number);
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) / rows;
  }
  const xc = new Float32Array(rows * d);
  let beta4 = 0;
  for (let r = 0; r < rows; r++) {
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = (x[r * d + j] as number) - (mean[j] as number);
      xc[r * d + j] = v;
      sq += v * v;
    }
    beta4 += sq * sq;
  }
  // S = XcᵀXc / n through the GEMM kernel (float32 products, accumulated per block), then in double.
  const s32 = new Float32Array(d * d);
  gemm(true, false, d, d, rows, xc, xc, s32);
  const s = new Float64Array(d * d);
  let trace = 0;
  let fro = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      // Symmetrise (the float32 kernel may differ in the last bit between (i, j) and (j, i)).
      const v = ((s32[i * d + j] as number) + (s32[j * d + i] as number)) / (2 * rows);
      s[i * d + j] = v;
      fro += v * v;
    }
    trace += s[i * d + i] as number;
  }
  const mu = trace / d;
  const delta = (fro - d * mu * mu) / d;
  let beta = (beta4 / rows - fro) / (d * rows);
  beta = Math.min(beta, delta);
  const shrinkage = beta <= 0 || delta <= 0 ? 0 : beta / delta;
  for (let i = 0; i < d * d; i++) s[i] = (1 - shrinkage) * (s[i] as number);
  for (let i = 0; i < d; i++) s[i * d + i] = (s[i * d + i] as number) + shrinkage * mu;
  return { covariance: s, shrinkage, mean };
}

/** Lower Cholesky factor L (row-major, d x d) of a symmetric positive-definite matrix: A = L Lᵀ. */
export function cholesky(a: Float64Array, d: number): Float64Array {
  const f = choleskyLower(a, d);
  if ('l' in f) return f.l;
  throw new BulwarkError(
    'ERR_DETECTOR_STATE',
    `covariance is not positive definite (pivot ${f.pivot} is ${f.value}); the fit data may be constant or too few rows`,
  );
}

/** Inverse of a symmetric positive-definite matrix through its Cholesky factor. */
export function inverseSpd(a: Float64Array, d: number): Float64Array {
  const l = cholesky(a, d);
  // Linv: lower triangular inverse by forward substitution, column by column.
  const li = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    li[j * d + j] = 1 / (l[j * d + j] as number);
    for (let i = j + 1; i < d; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += (l[i * d + k] as number) * (li[k * d + j] as number);
      li[i * d + j] = -s / (l[i * d + i] as number);
    }
  }
  // A^-1 = Linvᵀ Linv (only the lower triangle of Linv is non-zero).
  const inv = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < d; k++) s += (li[k * d + i] as number) * (li[k * d + j] as number);
      inv[i * d + j] = s;
      inv[j * d + i] = s;
    }
  }
  return inv;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation refined by one Halley step). */
export function normalQuantile(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [
    -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
    -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const e = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x =
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((e[0]! * q + e[1]!) * q + e[2]!) * q + e[3]!) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x =
      ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
      (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x =
      -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((e[0]! * q + e[1]!) * q + e[2]!) * q + e[3]!) * q + 1);
  }
  // One Halley step on Phi(x) - p.
  const err = normalCdf(x) - p;
  const u = err * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/** Standard normal CDF via erfc (W. J. Cody's rational approximations are overkill here; this is to ~1e-15). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Complementary error function (Numerical Recipes' erfc with Chebyshev coefficients, relative error < 1.2e-7, refined). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 2 / (2 + z);
  const ty = 4 * t - 2;
  const cof = [
    -1.3026537197817094, 6.419697923564902e-1, 1.9476473204185836e-2, -9.561514786808631e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5, -1.624290004647e-6,
    1.30365583558e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9, 5.059343495e-9, -9.91364156e-10,
    -2.27365122e-10, 9.6467911e-11, 2.394038e-12, -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13,
    3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16, -2.8e-17,
  ];
  let d = 0;
  let dd = 0;
  for (let j = cof.length - 1; j > 0; j--) {
    const tmp = d;
    d = ty * d - dd + (cof[j] as number);
    dd = tmp;
  }
  const r = t * Math.exp(-z * z + 0.5 * ((cof[0] as number) + ty * d) - dd);
  return x >= 0 ? r : 2 - r;
}

/**
 * The Shapiro-Wilk W statistic and its p-value (Royston, "Approximating the Shapiro-Wilk W-test for
 * non-normality", Statistics and Computing 1992; algorithm AS R94, as scipy.stats.shapiro), for
 * 3 <= n <= 5000. W near 1 means the sample looks normal.
 */
export function shapiroWilk(values: ArrayLike<number>): { w: number; p: number } {
  const n = values.length;
  if (n < 3)
    throw new BulwarkError('ERR_INVALID_ARGUMENT', `shapiroWilk: expected at least 3 values, got ${n}`);
  return shapiroWilkSorted(Float64Array.from(values).sort());
}

/** {@link shapiroWilk} of values already sorted in increasing order (PRADA keeps them sorted). */
export function shapiroWilkSorted(x: ArrayLike<number>): { w: number; p: number } {
  const n = x.length;
  if (n < 3)
    throw new BulwarkError('ERR_INVALID_ARGUMENT', `shapiroWilk: expected at least 3 values, got ${n}`);
  const range = (x[n - 1] as number) - (x[0] as number);
  if (!(range > 0)) return { w: 1, p: 1 };
  const a = shapiroCoefficients(n);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i] as number;
  mean /= n;
  let num = 0;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    num += (a[i] as number) * (x[i] as number);
    ss += ((x[i] as number) - mean) ** 2;
  }
  const w = Math.min(1, (num * num) / ss);
  return { w, p: shapiroP(w, n) };
}

const coefficientCache = new Map<number, Float64Array>();

/** Royston's approximation of the Shapiro-Wilk coefficients for a sample of n (cached: PRADA asks often). */
function shapiroCoefficients(n: number): Float64Array {
  const hit = coefficientCache.get(n);
  if (hit) return hit;
  const a = new Float64Array(n);
  if (n === 3) {
    a[0] = -Math.SQRT1_2;
    a[2] = Math.SQRT1_2;
  } else {
    const m = new Float64Array(n);
    let mm = 0;
    for (let i = 0; i < n; i++) {
      m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25));
      mm += (m[i] as number) ** 2;
    }
    const u = 1 / Math.sqrt(n);
    const cn = (m[n - 1] as number) / Math.sqrt(mm);
    const cn1 = (m[n - 2] as number) / Math.sqrt(mm);
    const an =
      cn + 0.221157 * u - 0.147981 * u ** 2 - 2.07119 * u ** 3 + 4.434685 * u ** 4 - 2.706056 * u ** 5;
    if (n > 5) {
      const an1 =
        cn1 + 0.042981 * u - 0.293762 * u ** 2 - 1.752461 * u ** 3 + 5.682633 * u ** 4 - 3.582633 * u ** 5;
      const phi =
        (mm - 2 * (m[n - 1] as number) ** 2 - 2 * (m[n - 2] as number) ** 2) /
        (1 - 2 * an ** 2 - 2 * an1 ** 2);
      for (let i = 2; i < n - 2; i++) a[i] = (m[i] as number) / Math.sqrt(phi);
      a[n - 1] = an;
      a[n - 2] = an1;
      a[0] = -an;
      a[1] = -an1;
    } else {
      const phi = (mm - 2 * (m[n - 1] as number) ** 2) / (1 - 2 * an ** 2);
      for (let i = 1; i < n - 1; i++) a[i] = (m[i] as number) / Math.sqrt(phi);
      a[n - 1] = an;
      a[0] = -an;
    }
  }
  if (coefficientCache.size > 64) coefficientCache.clear();
  coefficientCache.set(n, a);
  return a;
}

/** Royston's normalising transformations of W for the p-value. */
function shapiroP(w: number, n: number): number {
  if (n === 3) {
    const p = (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.asin(Math.sqrt(0.75)));
    return Math.max(0, Math.min(1, p));
  }
  const ln = Math.log(n);
  let y: number;
  let mu: number;
  let sigma: number;
  if (n <= 11) {
    const gamma = 0.459 * n - 2.273;
    y = -Math.log(gamma - Math.log(1 - w));
    mu = 0.544 - 0.39978 * n + 0.025054 * n ** 2 - 0.0006714 * n ** 3;
    sigma = Math.exp(1.3822 - 0.77857 * n + 0.062767 * n ** 2 - 0.0020322 * n ** 3);
  } else {
    y = Math.log(1 - w);
    mu = -1.5861 - 0.31082 * ln - 0.083751 * ln ** 2 + 0.0038915 * ln ** 3;
    sigma = Math.exp(-0.4803 - 0.082676 * ln + 0.0030302 * ln ** 2);
  }
  return 1 - normalCdf((y - mu) / sigma);
}
