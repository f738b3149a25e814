/**
 * One-sided Clopper–Pearson bounds for a share measured as a count (k of n rows), used by the security
 * gate so that a threshold judged on a few rows says how little it shows. Clopper & Pearson, "The use
 * of confidence or fiducial limits illustrated in the case of the binomial", Biometrika 26 (1934): the
 * exact bound is the p at which seeing k or fewer (for the upper bound) or k or more (for the lower
 * bound) successes has probability 1 − confidence. With k = 0 the upper bound is 1 − α^(1/n), about
 * 3/n at 95 % (the "rule of three").
 */
import { clopperPearson, requireNumberIn } from '../core/index.js';

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
  return clopperPearson(successes, rows, confidence, side);
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
