import { BulwarkError, requireNumberIn, type Seed, SeededRng } from '../core/index.js';
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
