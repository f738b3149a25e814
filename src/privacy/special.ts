/**
 * Special functions the accountants and calibrations need, in double precision with full relative
 * accuracy in the tails (where privacy computations live):
 *
 * - `erfc`, `erfcx` (the scaled e^{x²}·erfc(x)) and `logErfc`: a positive-term series for erf on
 *   |x| < 0.9 (erf(x) = 2x/√π · e^{-x²} · Σ (2x²)^n / (2n+1)!!, Abramowitz & Stegun 7.1.6, no
 *   cancellation) and the Laplace continued fraction for erfc beyond (A&S 7.1.14), evaluated with the
 *   modified Lentz algorithm (Press et al., Numerical Recipes 3rd ed., §5.2). log erfc(x) is
 *   log(erfcx(x)) − x², so it stays finite long after erfc(x) underflows.
 * - the standard normal CDF `normCdf`, its logarithm `logNormCdf` (as SciPy's `log_ndtr`), and its
 *   inverse `normPpf` (a rational start, A&S 26.2.23, polished by Newton steps on log Φ).
 * - log-space sums (`logAdd`, `logSub`) with the conventions of Opacus's `analysis/rdp.py`.
 *
 * Tested against SciPy 1.10 values in test/privacy/special.test.ts.
 */

const SQRT_PI = Math.sqrt(Math.PI);
const SQRT2 = Math.SQRT2;
const LOG_HALF = Math.log(0.5);
/** Below this |x| erf comes from the series, above erfc from the continued fraction. */
const SERIES_LIMIT = 0.9;

/** erf(x) for |x| < ~2 by the positive-term series (A&S 7.1.6). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return ((2 * x) / SQRT_PI) * Math.exp(-x2) * sum;
}

/**
 * e^{x²}·erfc(x) for x >= SERIES_LIMIT by the continued fraction
 * erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), modified Lentz.
 */
function erfcxFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = f;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    d = 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 / (SQRT_PI * f);
}

/** The error function. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  if (ax < SERIES_LIMIT) return erfSeries(x);
  const r = 1 - erfc(ax);
  return x < 0 ? -r : r;
}

/** The complementary error function 1 − erf(x), accurate relative to its value for large x. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Infinity) return 0;
  if (x === -Infinity) return 2;
  if (Math.abs(x) < SERIES_LIMIT) return 1 - erfSeries(x);
  if (x > 0) return x > 27.3 ? 0 : Math.exp(-x * x) * erfcxFraction(x);
  return 2 - Math.exp(-x * x) * erfcxFraction(-x);
}

/** The scaled complementary error function e^{x²}·erfc(x), for x >= 0. */
export function erfcx(x: number): number {
  if (x < SERIES_LIMIT) return Math.exp(x * x) * erfc(x);
  return erfcxFraction(x);
}

/** log(erfc(x)), finite for every finite x (SciPy: log(2) + log_ndtr(−x√2)). */
export function logErfc(x: number): number {
  if (x === Infinity) return -Infinity;
  if (x >= SERIES_LIMIT) return Math.log(erfcxFraction(x)) - x * x;
  return Math.log(erfc(x));
}

/** The standard normal CDF Φ(x). */
export function normCdf(x: number): number {
  return 0.5 * erfc(-x / SQRT2);
}

/** The standard normal survival function 1 − Φ(x) = Φ(−x). */
export function normSf(x: number): number {
  return 0.5 * erfc(x / SQRT2);
}

/** log Φ(x), accurate in both tails (as SciPy's `special.log_ndtr`). */
export function logNormCdf(x: number): number {
  if (x === -Infinity) return -Infinity;
  if (x === Infinity) return 0;
  const z = -x / SQRT2;
  if (z >= SERIES_LIMIT) return LOG_HALF + logErfc(z);
  // Upper tail: Φ(x) = 1 − Φ(−x), log1p keeps the small complement.
  if (x > 3) return Math.log1p(-0.5 * erfc(x / SQRT2));
  return Math.log(0.5 * erfc(z));
}

/** The standard normal density. */
export function normPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

/**
 * The inverse of the standard normal CDF. A&S 26.2.23 (error < 4.5e-4) gives the start; Newton steps on
 * log Φ(x) − log p (derivative φ(x)/Φ(x)) converge to machine precision in a few steps.
 */
export function normPpf(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return Number.NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p > 0.5) return -normPpf(1 - p);
  if (p === 0.5) return 0;
  const t = Math.sqrt(-2 * Math.log(p));
  let x = -(
    t -
    (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3)
  );
  const logP = Math.log(p);
  for (let i = 0; i < 50; i++) {
    const lc = logNormCdf(x);
    // d/dx log Φ(x) = φ(x)/Φ(x) = exp(log φ(x) − log Φ(x))
    const slope = Math.exp(-0.5 * x * x - 0.5 * Math.log(2 * Math.PI) - lc);
    const step = (lc - logP) / slope;
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}

/** log(e^a + e^b) without overflow. */
export function logAdd(a: number, b: number): number {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (lo === -Infinity) return hi;
  return Math.log1p(Math.exp(lo - hi)) + hi;
}

/** log(e^a − e^b) for a >= b (−Infinity when equal); throws RangeError when a < b. */
export function logSub(a: number, b: number): number {
  if (a < b) throw new RangeError('logSub: the result would be negative');
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = Math.expm1(a - b);
  return d === Infinity ? a : Math.log(d) + b;
}

/** log(a·e^b + c) for a·e^b + c > 0 (dp_accounting's `log_a_times_exp_b_plus_c`). */
export function logATimesExpBPlusC(a: number, b: number, c: number): number {
  if (a === 0) return Math.log(c);
  if (a < 0) {
    if (c <= 0) throw new RangeError('logATimesExpBPlusC: a·e^b + c must be positive');
    return logSubStrict(Math.log(c), Math.log(-a) + b);
  }
  if (b === 0) return Math.log(a + c);
  const d = b + Math.log(a);
  if (c === 0) return d;
  if (c < 0) return logSubStrict(d, Math.log(-c));
  return logAddPlain(d, Math.log(c));
}

function logAddPlain(a: number, b: number): number {
  const mn = Math.min(a, b);
  const mx = Math.max(a, b);
  return mx + Math.log1p(Math.exp(mn - mx));
}

function logSubStrict(a: number, b: number): number {
  if (b >= a) throw new RangeError('log-space subtraction: the result would not be positive');
  return a + Math.log1p(-Math.exp(b - a));
}

/** log of a weighted sum of exponentials, log Σ w_i e^{a_i} (w_i >= 0), as SciPy's `logsumexp(a, b=w)`. */
export function logSumExpWeighted(a: ArrayLike<number>, w: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if ((w[i] as number) > 0 && (a[i] as number) > m) m = a[i] as number;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const wi = w[i] as number;
    if (wi > 0) s += wi * Math.exp((a[i] as number) - m);
  }
  return m + Math.log(s);
}
