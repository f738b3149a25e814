/**
 * Goodness-of-fit helpers for the mechanism tests: Pearson's chi-square test on binned counts (tails
 * merged until every expected count is >= 5) with its p-value from the regularised upper incomplete
 * gamma function, and the one-sample Kolmogorov–Smirnov statistic with its asymptotic p-value.
 */

/** log Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error < 1e-13). */
export function lgamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
  const xx = x - 1;
  let a = c[0] as number;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Q(a, x) = Γ(a, x)/Γ(a), the regularised upper incomplete gamma function (Numerical Recipes §6.2). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let del = sum;
    let ap = a;
    for (let n = 0; n < 10000; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - lgamma(a));
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - lgamma(a)) * h;
}

/**
 * Pearson's chi-square test of integer samples against a PMF over the integers. Support points are
 * visited outwards from the mode; the two tails beyond the points with expected count >= 5 are merged
 * into one bin each. Returns the statistic, degrees of freedom and p-value.
 */
export function chiSquareIntegers(
  samples: ArrayLike<number>,
  pmf: (x: number) => number,
  center = 0,
): { statistic: number; dof: number; pValue: number } {
  const n = samples.length;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(samples[i] as number, (counts.get(samples[i] as number) ?? 0) + 1);
  let lo = center;
  let hi = center;
  while (n * pmf(lo - 1) >= 5) lo--;
  while (n * pmf(hi + 1) >= 5) hi++;
  let stat = 0;
  let bins = 0;
  let massInside = 0;
  for (let x = lo; x <= hi; x++) {
    const e = n * pmf(x);
    massInside += pmf(x);
    const o = counts.get(x) ?? 0;
    stat += ((o - e) * (o - e)) / e;
    bins++;
  }
  // Tails: everything below lo and above hi, by mass left over (split by symmetry of the sums).
  let below = 0;
  let above = 0;
  let massBelow = 0;
  for (let x = lo - 1; x > lo - 100000; x--) {
    const p = pmf(x);
    massBelow += p;
    if (p < 1e-18 && x < lo - 10) break;
  }
  const massAbove = Math.max(0, 1 - massInside - massBelow);
  for (const [x, c] of counts) {
    if (x < lo) below += c;
    else if (x > hi) above += c;
  }
  for (const [o, m] of [
    [below, massBelow],
    [above, massAbove],
  ] as const) {
    if (m * n > 0.5) {
      stat += ((o - m * n) * (o - m * n)) / (m * n);
      bins++;
    } else if (o > 0 && m * n < 1e-9) {
      stat = Infinity; // samples where the distribution puts (almost) no mass
    }
  }
  const dof = bins - 1;
  return { statistic: stat, dof, pValue: gammaQ(dof / 2, stat / 2) };
}

/** Chi-square test of categorical counts against probabilities. */
export function chiSquareCounts(
  counts: readonly number[],
  probs: readonly number[],
): { statistic: number; pValue: number } {
  const n = counts.reduce((a, b) => a + b, 0);
  let stat = 0;
  counts.forEach((o, i) => {
    const e = n * (probs[i] as number);
    stat += ((o - e) * (o - e)) / e;
  });
  return { statistic: stat, pValue: gammaQ((counts.length - 1) / 2, stat / 2) };
}

/** The one-sample KS statistic D and its asymptotic p-value (Kolmogorov distribution, Marsaglia et al.). */
export function ksTest(
  samples: ArrayLike<number>,
  cdf: (x: number) => number,
): { d: number; pValue: number } {
  const xs = Float64Array.from(samples).sort();
  const n = xs.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(xs[i] as number);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  const t = (Math.sqrt(n) + 0.12 + 0.11 / Math.sqrt(n)) * d;
  let p = 0;
  for (let k = 1; k < 200; k++) p += 2 * (-1) ** (k - 1) * Math.exp(-2 * k * k * t * t);
  return { d, pValue: Math.min(1, Math.max(0, p)) };
}
