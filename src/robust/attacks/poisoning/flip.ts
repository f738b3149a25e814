/**
 * Label flipping, the simplest poisoning attack (Biggio, Nelson & Laskov, "Poisoning attacks against
 * support vector machines", ICML 2012, use it as the baseline): the attacker controls the labels of a
 * share of the training rows. `random` gives each chosen row another class uniformly at random;
 * `targeted` relabels rows of one source class (or of every class but the target) as the target class,
 * the attack that moves a decision boundary where the attacker wants it.
 *
 * The number of rows changed is exact: round(fraction x eligible rows), chosen without replacement by a
 * seeded permutation, so evaluations are reproducible and a test can count the flips.
 */
import {
  BulwarkError,
  type Rng,
  requireInteger,
  requireNumberIn,
  requireOneOf,
  rngOf,
} from '../../../core/index.js';

export const FLIP_MODES = ['random', 'targeted'] as const;
export type FlipMode = (typeof FLIP_MODES)[number];

export interface LabelFlipOptions {
  /** Share of the eligible rows to flip, in [0, 1]. Eligible: every row (`random`), source rows (`targeted`). */
  fraction: number;
  /** Number of classes (labels are 0..classes-1). */
  classes: number;
  /** Default `random`. */
  mode?: FlipMode;
  /** `targeted`: the class rows are relabelled as. */
  target?: number;
  /** `targeted`: the class whose rows are relabelled (default: every class but the target). */
  source?: number;
  /** Seed or generator of the choice of rows (and of the new labels for `random`). */
  rng?: Rng | number;
}

export interface PoisonedLabels {
  /** The labels after the attack (a copy). */
  y: Int32Array;
  /** Indices of the rows whose label changed, ascending. */
  rows: Int32Array;
}

/** Flips the labels of exactly round(fraction x eligible) rows; the input is not modified. */
export function flipLabels(y: Int32Array, o: LabelFlipOptions): PoisonedLabels {
  const classes = requireInteger('classes', o.classes, 2);
  const fraction = requireNumberIn('fraction', o.fraction, 0, 1);
  const mode = requireOneOf('mode', o.mode ?? 'random', FLIP_MODES);
  for (let i = 0; i < y.length; i++) {
    const v = y[i] as number;
    if (!(v >= 0 && v < classes))
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `y[${i}]: expected a class in [0, ${classes}), got ${v}`,
        {
          details: { parameter: 'y' },
        },
      );
  }
  let target = -1;
  let source: number | undefined;
  if (mode === 'targeted') {
    if (o.target === undefined)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'target: required for targeted flipping');
    target = requireInteger('target', o.target, 0, classes - 1);
    if (o.source !== undefined) {
      source = requireInteger('source', o.source, 0, classes - 1);
      if (source === target)
        throw new BulwarkError('ERR_INVALID_ARGUMENT', 'source: must differ from target');
    }
  }
  const rng = rngOf(o.rng);
  const eligible: number[] = [];
  for (let i = 0; i < y.length; i++) {
    if (mode === 'random') eligible.push(i);
    else if (source !== undefined ? y[i] === source : y[i] !== target) eligible.push(i);
  }
  const count = Math.round(fraction * eligible.length);
  const perm = rng.permutation(eligible.length);
  const chosen = Array.from(perm.subarray(0, count), (p) => eligible[p] as number).sort((a, b) => a - b);
  const out = Int32Array.from(y);
  for (const i of chosen) {
    if (mode === 'targeted') out[i] = target;
    else {
      // Uniform over the other classes: draw from classes - 1 and skip the true one.
      const r = rng.int(classes - 1);
      out[i] = r >= (y[i] as number) ? r + 1 : r;
    }
  }
  return { y: out, rows: Int32Array.from(chosen) };
}
