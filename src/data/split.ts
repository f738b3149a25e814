import {
  BulwarkError,
  fmix32,
  requireInteger,
  requireNumberIn,
  type Seed,
  SeededRng,
} from '../core/index.js';
import type { Dataset } from './dataset.js';

/** Options of {@link trainTestSplit}. */
export interface SplitOptions {
  /** Share of rows in the test set, in (0, 1). */
  testFraction: number;
  /** Seed of the shuffle (default 0): the same seed gives the same split. */
  seed?: Seed;
  /**
   * Keep each value of this column in the same proportion in both sets (stratified split, as for a
   * rare fraud label). Missing values form their own group.
   */
  stratify?: string;
}

/**
 * A seeded random train/test split by row (`Dataset.take` of a permutation). With `stratify`, each
 * group of equal values is shuffled and split on its own, so both sets keep the class balance; each
 * group contributes round(size * testFraction) rows to the test set.
 *
 * @example
 * ```ts
 * const { train, test } = trainTestSplit(ds, { testFraction: 0.2, seed: 7, stratify: 'is_fraud' });
 * ```
 */
export function trainTestSplit(ds: Dataset, opts: SplitOptions): { train: Dataset; test: Dataset } {
  const f = requireNumberIn('testFraction', opts.testFraction, 0, 1, {
    minExclusive: true,
    maxExclusive: true,
  });
  const rng = new SeededRng(opts.seed ?? 0);
  const groups = new Map<string, number[]>();
  if (opts.stratify === undefined) {
    groups.set(
      '',
      Array.from({ length: ds.rowCount }, (_, i) => i),
    );
  } else {
    const c = ds.column(opts.stratify);
    for (let i = 0; i < ds.rowCount; i++) {
      const v = c.values[i]!;
      const key = v === null || (typeof v === 'number' && Number.isNaN(v)) ? '\u0000missing' : String(v);
      let g = groups.get(key);
      if (!g) {
        g = [];
        groups.set(key, g);
      }
      g.push(i);
    }
  }
  const train: number[] = [];
  const test: number[] = [];
  // Groups in a fixed order so that the split does not depend on row order beyond the seed.
  for (const key of [...groups.keys()].sort()) {
    const g = rng.shuffle(groups.get(key)!);
    const k = Math.round(g.length * f);
    // A loop, not push(...slice): spreading a group of a few hundred thousand rows into the
    // arguments of one call overflows the stack.
    for (let i = 0; i < g.length; i++) (i < k ? test : train).push(g[i]!);
  }
  if (train.length === 0 || test.length === 0) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `testFraction: ${f} of ${ds.rowCount} rows leaves the ${train.length === 0 ? 'train' : 'test'} set empty`,
      { details: { parameter: 'testFraction' } },
    );
  }
  train.sort((a, b) => a - b);
  test.sort((a, b) => a - b);
  return { train: ds.take(train), test: ds.take(test) };
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * The held-out test rows: row i is held out when a hash of the seed and of row i's own values (every
 * column) falls below `fraction`. Each row's side depends on that row alone, so adding or removing one
 * row leaves every other row where it was, and the training sets of two neighbouring datasets are
 * themselves neighbours (or equal): what DP-SGD's and objective perturbation's guarantees are about.
 * A seeded permutation of the n rows (the split before) is a different permutation for n + 1 rows: one
 * added row moved about a third of the others between training and test, so the trained model depended
 * on every row's presence far beyond one row's clipped gradient — whoever knows the other rows and the
 * (public) seed could tell the two training sets, and so the two datasets, apart. The hash need not be
 * secret for this (it is a function of one row, like a per-row coin): it is a spread, not a key.
 */
export function heldOutSplit(
  ds: Dataset,
  fraction: number,
  seed: number,
): { trainIdx: Int32Array; testIdx: Int32Array } {
  const n = ds.rowCount;
  if (fraction === 0)
    return { trainIdx: Int32Array.from({ length: n }, (_, i) => i), testIdx: new Int32Array(0) };
  const s = requireInteger('seed', seed, 0);
  const h1 = new Uint32Array(n).fill(fmix32((s ^ 0x9e3779b9) >>> 0));
  const h2 = new Uint32Array(n).fill(fmix32((Math.floor(s / 2 ** 32) ^ 0x7f4a7c15) >>> 0));
  const mix = (i: number, w: number): void => {
    h1[i] = fmix32(Math.imul((h1[i] as number) ^ w, 0xcc9e2d51) + 0xe6546b64);
    h2[i] = fmix32(Math.imul((h2[i] as number) + w, 0x1b873593) ^ 0x5bd1e995);
  };
  for (const c of ds.columns) {
    for (let i = 0; i < n; i++) {
      if (c.type === 'string') {
        const v = c.values[i];
        if (v === null || v === undefined) mix(i, 0x6e756c6c);
        else {
          mix(i, v.length + 0x73747200);
          for (let k = 0; k < v.length; k++) mix(i, v.charCodeAt(k));
        }
      } else {
        // A number by its bits (every NaN alike, −0 as 0: the same value the row shows).
        const x = c.values[i] as number;
        f64[0] = Number.isNaN(x) ? Number.NaN : x === 0 ? 0 : x;
        mix(i, u32[0] as number);
        mix(i, u32[1] as number);
      }
    }
  }
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < n; i++) {
    // 53 bits of the two lanes as a uniform number in [0, 1).
    const u = ((h1[i] as number) * 2 ** 21 + ((h2[i] as number) >>> 11)) / 2 ** 53;
    (u < fraction ? test : train).push(i);
  }
  return { trainIdx: Int32Array.from(train), testIdx: Int32Array.from(test) };
}
