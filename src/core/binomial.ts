/**
 * Exact one-sided confidence bounds of a binomial share (Clopper & Pearson, "The use of confidence or
 * fiducial limits illustrated in the case of the binomial", Biometrika 26, 1934): the p at which
 * seeing k or fewer successes of n (upper bound) or k or more (lower bound) has probability
 * 1 − confidence. The same quantity is a Beta quantile (I_p(a, b) = P(Binomial(a + b − 1, p) >= a) for
 * integer a, b), which is how the detectors' conformal false-positive bound uses it.
 */

/** log P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space (no underflow for large n). */
function logBinomialCdf(k: number, n: number, p: number): number {
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
 * The one-sided Clopper–Pearson bound at `confidence` (0 < confidence < 1) of a share of which
 * `successes` of `rows` were seen: `lower` is the smallest share still consistent with it, `upper` the
 * largest. Callers validate their own arguments (integers, 0 <= successes <= rows, rows >= 1).
 */
export function clopperPearson(
  successes: number,
  rows: number,
  confidence: number,
  side: 'lower' | 'upper',
): number {
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
    if (logBinomialCdf(k, rows, mid) > target) lo = mid;
    else hi = mid;
  }
  return side === 'upper' ? hi : lo;
}
