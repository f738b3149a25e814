/**
 * DP analytics over one column: count, sum, mean, histogram and quantiles, with PUBLIC bounds (and
 * public categories or bins) supplied by the caller, never read from the data. Neighbours are datasets
 * with one row added or removed, so one row changes a count by 1, a sum of values clamped to
 * [lower, upper] by at most max(|lower|, |upper|), and exactly one histogram bin by 1.
 *
 * Every released number is an integer plus exact discrete noise (discrete Laplace for ε-DP, or discrete
 * Gaussian for (ε, δ)-DP; Canonne, Kamath & Steinke 2020): sums are computed on a public grid of
 * `granularity` (values rounded to it, so the sum is an integer number of grid steps). Quantiles are
 * chosen among a public grid of candidates by permute-and-flip on the utility −|#{x <= c} − q·n|
 * (sensitivity 1). A mean spends half its ε on the sum and half on the count. Several quantiles split ε
 * evenly (basic composition).
 *
 * Each query spends its (ε, δ) from the ledger first when given one; only then is the data read.
 */
import { BulwarkError, invalidArgument } from '../core/index.js';
import type { ComposedEvent, PrivacyEvent } from './accountants/events.js';
import type { BudgetLedger, SpendReceipt } from './ledger/ledger.js';
import { discreteGaussianRational, discreteLaplaceRational, exactRational } from './mechanisms/exact.js';
import { discreteGaussianSigma, permuteAndFlip } from './mechanisms/mechanisms.js';
import { type NoiseSource, noiseDetails, noiseOf } from './mechanisms/noise.js';
import { requireDelta, requireEpsilon } from './params.js';

/** Options shared by the queries. */
export interface QueryOptions {
  epsilon: number;
  /** `laplace` (default, ε-DP) or `gaussian` (discrete Gaussian, (ε, δ)-DP; needs `delta`). */
  mechanism?: 'laplace' | 'gaussian';
  delta?: number;
  /** Spend from this ledger before reading the data. */
  budget?: { ledger: BudgetLedger; dataset: string; analyst?: string };
  /** The column queried, for the ledger record. */
  column?: string;
  /**
   * More facts for the ledger record (and its `privacy.spent` audit event), e.g. that the data file was
   * verified against its protection manifest; the query's own details take precedence.
   */
  details?: Readonly<Record<string, string | number | boolean | null>>;
  noise?: NoiseSource;
}

/** A released statistic. */
export interface DpRelease<T> {
  value: T;
  epsilon: number;
  delta: number;
  mechanism: 'discrete-laplace' | 'discrete-gaussian' | 'permute-and-flip' | 'composite';
  /** The noise scale in the statistic's units (Laplace scale or Gaussian σ), when additive. */
  noiseScale?: number;
  /** The privacy event spent, for an accountant. */
  event: PrivacyEvent;
  receipt?: SpendReceipt;
}

/** Bounds a numeric query needs. */
export interface Bounds {
  lower: number;
  upper: number;
}

function checkBounds(b: Bounds): Bounds {
  if (typeof b !== 'object' || b === null) throw invalidArgument('bounds', '{ lower, upper }', b);
  if (typeof b.lower !== 'number' || !Number.isFinite(b.lower))
    throw invalidArgument('lower', 'a finite number', b.lower);
  if (typeof b.upper !== 'number' || !Number.isFinite(b.upper) || !(b.upper > b.lower))
    throw invalidArgument('upper', `a finite number > lower (${b.lower})`, b.upper);
  // Each bound finite is not enough: a range wider than the largest double (say ±1e308) makes the bin
  // width, the candidate grid and the noise scale infinite, and a budget would be spent on garbage.
  if (!Number.isFinite(b.upper - b.lower))
    throw invalidArgument(
      'upper',
      `a bound whose distance to lower (${b.lower}) is a finite number`,
      b.upper,
    );
  return b;
}

interface Plan {
  epsilon: number;
  delta: number;
  gaussian: boolean;
}

function plan(o: QueryOptions): Plan {
  const epsilon = requireEpsilon('epsilon', o.epsilon);
  const mech = o.mechanism ?? 'laplace';
  if (mech !== 'laplace' && mech !== 'gaussian')
    throw invalidArgument('mechanism', 'laplace or gaussian', mech);
  if (mech === 'gaussian') return { epsilon, delta: requireDelta('delta', o.delta), gaussian: true };
  if (o.delta !== undefined && o.delta !== 0)
    throw invalidArgument('delta', '0 (or omitted) for the Laplace mechanism', o.delta);
  return { epsilon, delta: 0, gaussian: false };
}

/**
 * Spends the query's (ε, δ) with its accounting events: `events` are the mechanisms it runs (default
 * one run of {@link eventOf}: a mean is two runs at half each, q quantiles q runs at ε/q), which a
 * budget with `composition: 'pld'` composes with every other spend.
 */
async function spend(
  o: QueryOptions,
  p: Plan,
  operation: string,
  details: Record<string, string | number | boolean | null>,
  events: ComposedEvent[] = [{ event: eventOf(p), count: 1 }],
): Promise<SpendReceipt | undefined> {
  if (!o.budget) return undefined;
  return o.budget.ledger.spend({
    dataset: o.budget.dataset,
    ...(o.budget.analyst === undefined ? {} : { analyst: o.budget.analyst }),
    epsilon: p.epsilon,
    delta: p.delta,
    operation,
    details: {
      ...(o.column === undefined ? {} : { column: o.column }),
      ...o.details,
      ...details,
      ...noiseDetails(o.noise),
    },
    events,
  });
}

/**
 * The noise of an integer statistic with integer L1/L2 sensitivity `sens` at (ε, δ), calibrated but
 * not drawn: calibration can fail (a δ too small for the Gaussian), and it must fail before the budget
 * is spent.
 */
interface IntegerNoise {
  scale: number;
  draw(noise: NoiseSource): bigint;
}

function integerNoise(p: Plan, sens: number): IntegerNoise {
  if (p.gaussian) {
    const sigma = discreteGaussianSigma(p.epsilon, p.delta, sens);
    const r = exactRational(sigma * sigma);
    return { scale: sigma, draw: (noise) => discreteGaussianRational(noise.rng, r.n, r.d) };
  }
  const e = exactRational(p.epsilon);
  return {
    scale: sens / p.epsilon,
    draw: (noise) => discreteLaplaceRational(noise.rng, BigInt(sens) * e.d, e.n),
  };
}

function eventOf(p: Plan): PrivacyEvent {
  return p.gaussian
    ? { kind: 'approx', epsilon: p.epsilon, delta: p.delta }
    : { kind: 'pure', epsilon: p.epsilon };
}

function release<T>(
  value: T,
  p: Plan,
  mech: DpRelease<T>['mechanism'],
  scale: number | undefined,
  receipt: SpendReceipt | undefined,
): DpRelease<T> {
  const out: DpRelease<T> = { value, epsilon: p.epsilon, delta: p.delta, mechanism: mech, event: eventOf(p) };
  if (scale !== undefined) out.noiseScale = scale;
  if (receipt) out.receipt = receipt;
  return out;
}

const mechName = (p: Plan) => (p.gaussian ? ('discrete-gaussian' as const) : ('discrete-laplace' as const));

/**
 * A DP count of the rows (or of the non-missing values when `values` is given with nulls/NaN).
 *
 * @example
 * ```ts
 * const r = await dpCount(rows, { epsilon: 0.5 });  // r.value: an integer near the true count
 * ```
 */
export async function dpCount(
  rows: number | ArrayLike<unknown>,
  o: QueryOptions,
): Promise<DpRelease<number>> {
  const p = plan(o);
  if (typeof rows === 'number' && (!Number.isSafeInteger(rows) || rows < 0))
    throw invalidArgument('rows', 'a count >= 0', rows);
  const z = integerNoise(p, 1);
  const receipt = await spend(o, p, 'query.count', {});
  let n: number;
  if (typeof rows === 'number') {
    n = rows;
  } else {
    n = 0;
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i];
      if (v !== null && v !== undefined && !(typeof v === 'number' && Number.isNaN(v))) n++;
    }
  }
  return release(Number(BigInt(n) + z.draw(noiseOf(o.noise))), p, mechName(p), z.scale, receipt);
}

/** Values clamped to the bounds and rounded to the grid, in grid units; missing values are skipped. */
function gridSum(values: ArrayLike<number | null>, b: Bounds, g: number): { units: bigint; count: number } {
  let units = 0n;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || Number.isNaN(v)) continue;
    const c = Math.min(b.upper, Math.max(b.lower, v));
    units += BigInt(Math.round(c / g));
    count++;
  }
  return { units, count };
}

/** The public grid: max(|lower|, |upper|) / 2^20 unless given. */
function gridOf(b: Bounds, granularity: number | undefined): { g: number; sens: number } {
  const m = Math.max(Math.abs(b.lower), Math.abs(b.upper));
  const g = granularity ?? m / 2 ** 20;
  if (!(g > 0) || !Number.isFinite(g))
    throw invalidArgument('granularity', 'a finite number > 0', granularity);
  const sens = Math.max(Math.abs(Math.round(b.lower / g)), Math.abs(Math.round(b.upper / g)));
  if (sens > 2 ** 40)
    throw invalidArgument('granularity', 'a grid no finer than max(|lower|, |upper|) / 2^40', g);
  return { g, sens: Math.max(1, sens) };
}

/** A DP sum of a column clamped to public bounds (missing values skipped). */
export async function dpSum(
  values: ArrayLike<number | null>,
  o: QueryOptions & Bounds & { granularity?: number },
): Promise<DpRelease<number>> {
  const p = plan(o);
  const b = checkBounds(o);
  const { g, sens } = gridOf(b, o.granularity);
  const z = integerNoise(p, sens);
  const receipt = await spend(o, p, 'query.sum', { lower: b.lower, upper: b.upper });
  const { units } = gridSum(values, b, g);
  return release(Number(units + z.draw(noiseOf(o.noise))) * g, p, mechName(p), z.scale * g, receipt);
}

/** A DP mean of a column clamped to public bounds: a DP sum over a DP count (ε/2 each), clamped to the bounds. */
export async function dpMean(
  values: ArrayLike<number | null>,
  o: QueryOptions & Bounds & { granularity?: number },
): Promise<DpRelease<number> & { sum: number; count: number }> {
  const p = plan(o);
  const b = checkBounds(o);
  const { g, sens } = gridOf(b, o.granularity);
  const half: Plan = { epsilon: p.epsilon / 2, delta: p.delta / 2, gaussian: p.gaussian };
  const sumNoise = integerNoise(half, sens);
  const countNoise = integerNoise(half, 1);
  // Two mechanisms at half the (ε, δ) each: the sum and the count.
  const receipt = await spend(o, p, 'query.mean', { lower: b.lower, upper: b.upper }, [
    { event: eventOf(half), count: 2 },
  ]);
  const noise = noiseOf(o.noise);
  const { units, count } = gridSum(values, b, g);
  const s = Number(units + sumNoise.draw(noise)) * g;
  const c = Number(BigInt(count) + countNoise.draw(noise));
  // Post-processing: a mean outside the bounds (or an empty noisy count) is clamped.
  const mean = c <= 0 ? (b.lower + b.upper) / 2 : Math.min(b.upper, Math.max(b.lower, s / c));
  return { ...release(mean, p, 'composite', undefined, receipt), sum: s, count: c };
}

/** Bins of a histogram: public categories, or equal-width numeric bins between public bounds. */
export type HistogramBins = { categories: readonly string[] } | (Bounds & { bins: number });

/**
 * A DP histogram: one noisy count per bin (one row moves one bin: L1 and L2 sensitivity 1, so each bin
 * gets the full ε). Values outside the categories count in an `<other>` bin; numeric values are clamped
 * into the end bins; missing values are not counted.
 */
export async function dpHistogram(
  values: ArrayLike<string | number | null>,
  o: QueryOptions & HistogramBins,
): Promise<DpRelease<Array<{ bin: string; count: number }>>> {
  const p = plan(o);
  let labels: string[];
  let index: (v: string | number) => number;
  if ('categories' in o) {
    if (!Array.isArray(o.categories) || o.categories.length === 0)
      throw invalidArgument('categories', 'a non-empty list of public categories', o.categories);
    const cats = o.categories.map(String);
    if (new Set(cats).size !== cats.length)
      throw invalidArgument('categories', 'distinct categories', o.categories);
    const pos = new Map(cats.map((c, i) => [c, i]));
    labels = [...cats, '<other>'];
    index = (v) => pos.get(String(v)) ?? cats.length;
  } else {
    const b = checkBounds(o);
    const k = o.bins;
    if (!Number.isInteger(k) || k < 1 || k > 100_000)
      throw invalidArgument('bins', 'an integer in [1, 100000]', k);
    const w = (b.upper - b.lower) / k;
    labels = Array.from(
      { length: k },
      (_, i) => `[${fmt(b.lower + i * w)}, ${fmt(b.lower + (i + 1) * w)}${i === k - 1 ? ']' : ')'}`,
    );
    index = (v) => {
      const x = typeof v === 'number' ? v : Number(v);
      if (!Number.isFinite(x)) return -1;
      return Math.min(k - 1, Math.max(0, Math.floor((x - b.lower) / w)));
    };
  }
  const z = integerNoise(p, 1);
  const receipt = await spend(o, p, 'query.histogram', { bins: labels.length });
  const counts = new Array<number>(labels.length).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) continue;
    const j = index(v);
    if (j >= 0) counts[j] = (counts[j] as number) + 1;
  }
  const noise = noiseOf(o.noise);
  const out = counts.map((c, j) => ({ bin: labels[j] as string, count: Number(BigInt(c) + z.draw(noise)) }));
  return release(out, p, mechName(p), z.scale, receipt);
}

function fmt(x: number): string {
  return Number.parseFloat(x.toPrecision(6)).toString();
}

/**
 * DP quantiles: for each q, a candidate among `candidates` evenly spaced points of [lower, upper]
 * chosen by permute-and-flip with utility −|#{x <= c} − q·n| (sensitivity 1 under add-remove), with ε
 * split evenly over the quantiles. Pure ε-DP (the `mechanism` option does not apply).
 */
export async function dpQuantiles(
  values: ArrayLike<number | null>,
  o: Omit<QueryOptions, 'mechanism' | 'delta'> &
    Bounds & { quantiles: readonly number[]; candidates?: number },
): Promise<DpRelease<Array<{ quantile: number; value: number }>>> {
  const epsilon = requireEpsilon('epsilon', o.epsilon);
  const b = checkBounds(o);
  if (!Array.isArray(o.quantiles) || o.quantiles.length === 0)
    throw invalidArgument('quantiles', 'a non-empty list of numbers in [0, 1]', o.quantiles);
  o.quantiles.forEach((q, i) => {
    if (typeof q !== 'number' || !(q >= 0 && q <= 1))
      throw invalidArgument(`quantiles[${i}]`, 'a number in [0, 1]', q);
  });
  const k = o.candidates ?? 1001;
  if (!Number.isInteger(k) || k < 2 || k > 1_000_000)
    throw invalidArgument('candidates', 'an integer in [2, 1000000]', k);
  const p: Plan = { epsilon, delta: 0, gaussian: false };
  // One permute-and-flip at ε/q per quantile.
  const receipt = await spend(
    { ...o },
    p,
    'query.quantiles',
    { quantiles: o.quantiles.length, candidates: k },
    [{ event: { kind: 'pure', epsilon: epsilon / o.quantiles.length }, count: o.quantiles.length }],
  );
  const xs: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== null && v !== undefined && !Number.isNaN(v)) xs.push(Math.min(b.upper, Math.max(b.lower, v)));
  }
  xs.sort((a, c) => a - c);
  const n = xs.length;
  const cand = Array.from({ length: k }, (_, i) => b.lower + ((b.upper - b.lower) * i) / (k - 1));
  // #{x <= c} for each candidate by a merge over the sorted values.
  const below = new Array<number>(k);
  let j = 0;
  for (let i = 0; i < k; i++) {
    while (j < n && (xs[j] as number) <= (cand[i] as number)) j++;
    below[i] = j;
  }
  const each = epsilon / o.quantiles.length;
  const noise = noiseOf(o.noise);
  const out = o.quantiles.map((q) => {
    const util = below.map((c) => -Math.abs(c - q * n));
    const r = permuteAndFlip(util, { epsilon: each, sensitivity: 1, noise });
    return { quantile: q, value: cand[r] as number };
  });
  if (out.some((r) => !Number.isFinite(r.value)))
    throw new BulwarkError('ERR_INTERNAL', 'quantile selection failed');
  return release(out, p, 'permute-and-flip', undefined, receipt);
}
