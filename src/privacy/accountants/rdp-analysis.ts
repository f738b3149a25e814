/**
 * Rényi differential privacy (Mironov, CSF 2017) of the Poisson-subsampled Gaussian mechanism, computed
 * as Mironov, Talwar & Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"
 * (arXiv:1908.10530, 2019) §3.3 do — integer orders by the binomial expansion of A_α, fractional orders by
 * the two-sided series with erfc terms — with the same term-by-term arithmetic as Opacus 1.4.0's
 * `accountants/analysis/rdp.py` (itself TF Privacy's), so results agree to ~1e-12 relative
 * (test/privacy/accountants.test.ts checks a grid against Opacus to 1e-9).
 *
 * Conversions from RDP to (ε, δ)-DP:
 * - `classic`: ε = min_α RDP(α) + log(1/δ)/(α − 1) (Mironov 2017, Proposition 3);
 * - `balle2020`: ε = min_α RDP(α) + log((α − 1)/α) − (log δ + log α)/(α − 1) (Balle, Barthe, Gaboardi,
 *   Hsu & Sato, "Hypothesis testing interpretations and Rényi differential privacy", AISTATS 2020,
 *   Theorem 21), the conversion Opacus 1.4 and dp_accounting use; never larger than `classic`.
 */
import { logAdd, logErfc, logSub } from '../special.js';

/** Opacus 1.4's default RDP orders: 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63. */
export const OPACUS_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** dp_accounting's default RDP orders: 1.1, ..., 10.9, 11, ..., 63, 128, 256, 512, 1024. */
export const DP_ACCOUNTING_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
]);

/** Conversion from RDP to (ε, δ)-DP. */
export type RdpConversion = 'classic' | 'balle2020';

/** log A_α for integer α: log Σ_{i=0}^{α} C(α, i) q^i (1 − q)^{α−i} e^{(i² − i)/(2σ²)}. */
function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  const logQ = Math.log(q);
  const log1mQ = Math.log(1 - q);
  let logBinom = 0; // log C(alpha, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/**
 * How the fractional-order series is summed: `opacus` adds and subtracts terms by the sign of the
 * generalised binomial coefficient and stops when both terms fall below e^-30 (Opacus 1.4, TF Privacy);
 * `dp-accounting` adds the magnitudes of all terms (an upper bound, slightly larger) and stops when both
 * terms are decreasing and 30 nats below the total (Google dp_accounting). They agree at integer orders.
 */
export type RdpSeries = 'opacus' | 'dp-accounting';

/** log A_α for fractional α (MTZ19 §3.3): two series split at z0 = σ² log(1/q − 1) + 1/2. */
function logAFrac(q: number, sigma: number, alpha: number, series: RdpSeries): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = series === 'opacus' ? Math.log(1 - q) : Math.log1p(-q);
  const s2 = 2 * sigma * sigma;
  const denom = Math.SQRT2 * sigma;
  let lastS0 = -Infinity;
  let lastS1 = -Infinity;
  // C(alpha, i) for real alpha as the running product Π_{k<i} (alpha − k)/(k + 1): its log-magnitude and sign.
  let logAbsCoef = 0;
  let coefPositive = true;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const factor = (alpha - (i - 1)) / i;
      if (factor < 0) coefPositive = !coefPositive;
      logAbsCoef += Math.log(Math.abs(factor));
    }
    const j = alpha - i;
    const logT0 = logAbsCoef + i * logQ + j * log1mQ;
    const logT1 = logAbsCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / denom);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / denom);
    const logS0 = logT0 + (i * i - i) / s2 + logE0;
    const logS1 = logT1 + (j * j - j) / s2 + logE1;
    if (series === 'dp-accounting') {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
      const total = logAdd(logA0, logA1);
      if (logS0 < lastS0 && logS1 < lastS1 && Math.max(logS0, logS1) < total - 30) return total;
      lastS0 = logS0;
      lastS1 = logS1;
      // dp_accounting drops an order whose series has not converged after 1000 terms.
      if (i + 1 >= 1000) return Infinity;
      continue;
    }
    if (coefPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100_000) throw new RangeError(`RDP series did not converge at order ${alpha}`);
  }
  return logAdd(logA0, logA1);
}

/**
 * RDP of one step of the Poisson-subsampled Gaussian mechanism with sampling rate `q` and noise
 * multiplier `sigma` (noise standard deviation / L2 sensitivity) at order `alpha` (> 1); +Infinity when
 * sigma is 0.
 */
export function rdpSubsampledGaussianStep(
  q: number,
  sigma: number,
  alpha: number,
  series: RdpSeries = 'opacus',
): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha, series);
  return logA / (alpha - 1);
}

/** RDP of `steps` compositions of the subsampled Gaussian at each order (RDP composes additively). */
export function rdpSubsampledGaussian(
  q: number,
  sigma: number,
  steps: number,
  orders: readonly number[],
  series: RdpSeries = 'opacus',
): Float64Array {
  const out = new Float64Array(orders.length);
  for (let i = 0; i < orders.length; i++)
    out[i] = steps * rdpSubsampledGaussianStep(q, sigma, orders[i] as number, series);
  return out;
}

/** The smallest ε over the orders for the target δ, and the order reaching it. */
export function rdpToEpsilon(
  orders: readonly number[],
  rdp: ArrayLike<number>,
  delta: number,
  conversion: RdpConversion = 'balle2020',
): { epsilon: number; order: number } {
  let best = Infinity;
  let bestOrder = Number.NaN;
  const logDelta = Math.log(delta);
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i] as number;
    const r = rdp[i] as number;
    if (!(a > 1)) continue;
    const eps =
      conversion === 'classic'
        ? r - logDelta / (a - 1)
        : r - (logDelta + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

/** The smallest δ over the orders for a target ε (the inverse conversion, Balle et al. 2020 / classic). */
export function rdpToDelta(
  orders: readonly number[],
  rdp: ArrayLike<number>,
  epsilon: number,
  conversion: RdpConversion = 'balle2020',
): number {
  let best = Infinity;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i] as number;
    const r = rdp[i] as number;
    if (!(a > 1)) continue;
    const logDelta =
      conversion === 'classic'
        ? (a - 1) * (r - epsilon)
        : (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a);
    if (logDelta < best) best = logDelta;
  }
  return Math.min(1, Math.exp(best));
}
