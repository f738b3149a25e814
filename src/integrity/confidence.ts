/**
 * One-sided Clopper–Pearson bounds for a share measured as a count (k of n rows), used by the security
 * gate so that a threshold judged on a few rows says how little it shows. Clopper & Pearson, "The use
 * of confidence or fiducial limits illustrated in the case of the binomial", Biometrika 26 (1934): the
 * exact bound is the p at which seeing k or fewer (for the upper bound) or k or more (for the lower
 * bound) successes has probability 1 − confidence. With k = 0 the upper bound is 1 − α^(1/n), about
 * 3/n at 95 % (the "rule of three").
 */
import { requireNumberIn } from '../core/index.js';

/** log P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space (no underflow for large n). */
function logCdf(k: number, n: number, p: number): number {
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  let term = n * lq; // log P(X = 0)
  let max = term;
  const terms = [term];
  for (let j = 1; j <= k; j++) {
    term += Math.log(n - j + 1) - Math.log(j) + lp - lq;
    terms.push(term);
    if (term > max) max = term;
  }
  let s = 0;
  for (const t of terms) s += Math.exp(t - max);
  return max + Math.log(s);
}

/**
 * The one-sided Clopper–Pearson bound at `confidence` of a share of which `successes` of `rows` were
 * seen: `lower` is the smallest share still consistent with it, `upper` the largest.
 */
export function binomialBound(
  successes: number,
  rows: number,
  confidence: number,
  side: 'lower' | 'upper',
): number {
  requireNumberIn('confidence', confidence, 0.5, 0.9999);
  if (
    !Number.isInteger(rows) ||
    rows < 1 ||
    !Number.isInteger(successes) ||
    successes < 0 ||
    successes > rows
  )
    throw new RangeError(`binomialBound: ${successes} of ${rows}`);
  const alpha = 1 - confidence;
  if (side === 'upper' && successes === rows) return 1;
  if (side === 'lower' && successes === 0) return 0;
  // upper: P(X <= k; p) = alpha (decreasing in p); lower: P(X <= k - 1; p) = 1 - alpha.
  const k = side === 'upper' ? successes : successes - 1;
  const target = Math.log(side === 'upper' ? alpha : 1 - alpha);
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (logCdf(k, rows, mid) > target) lo = mid;
    else hi = mid;
  }
  return side === 'upper' ? hi : lo;
}

/** Rows that a zero-tolerance threshold (max 0, min 1) needs: the regression comparison's floor. */
export const ZERO_TOLERANCE_ROWS = 100;

/**
 * The fewest rows on which even a perfect result (no failure for a minimum, no success for a maximum)
 * has its one-sided bound at `confidence` within `threshold`: below it, the check cannot show what its
 * threshold asks whatever the model does. For a minimum t: α^(1/n) ≥ t, n ≥ ln α / ln t; for a maximum
 * t: 1 − α^(1/n) ≤ t, n ≥ ln α / ln(1 − t). A threshold of 1 (min) or 0 (max) is never reached by a
 * bound; it needs {@link ZERO_TOLERANCE_ROWS}.
 */
export function minRowsFor(threshold: number, op: '>=' | '<=', confidence: number): number {
  requireNumberIn('confidence', confidence, 0.5, 0.9999);
  const alpha = 1 - confidence;
  const base = op === '>=' ? threshold : 1 - threshold;
  if (base >= 1) return ZERO_TOLERANCE_ROWS;
  if (base <= 0) return 1;
  // 1e-9: a bound that equals the threshold exactly counts as reaching it.
  return Math.max(1, Math.ceil(Math.log(alpha) / Math.log(base) - 1e-9));
}
