/**
 * The regression gate of continuous learning: a model retrained (fine-tuned) on new data is compared
 * with the model it would replace on a FIXED evaluation set, clean and under attack, and refused when it
 * is worse beyond configured limits (a poisoned update that passed the data checks shows up here as a
 * drop in clean or robust accuracy; a backdoor shows up in the gate's trigger check). Works on any
 * probability model: white-box PGD (Madry et al.) when both give gradients (Bulwark networks, ONNX
 * imported with `fromOnnx`), the black-box Square attack (Andriushchenko et al. 2020) otherwise (e.g. a
 * packaged model loaded in ONNX Runtime by `loadProtectedModel`); the same attack for both models.
 */
import { BulwarkError, requireNumberIn } from '../core/index.js';
import { fromOnnx, type LabelledData } from '../ml/index.js';
import {
  argmaxRows,
  hasGradients,
  type InputDomain,
  networkModel,
  type ProbabilityModel,
  pgd,
  square,
} from '../robust/index.js';
import { distinctRows } from './overlap.js';

export interface RegressionLimits {
  /** Largest allowed drop in clean accuracy (absolute, e.g. 0.01 = one point; default 0.01). */
  maxCleanDrop?: number;
  /** Largest allowed drop in robust accuracy at `eps` (default 0.02). */
  maxRobustDrop?: number;
  /**
   * Largest allowed drop in any one class's clean recall (default {@link DEFAULT_MAX_CLASS_DROP}): the
   * accuracies weigh classes by their share of the set, so a model that stops predicting a class of 2 %
   * of the rows loses at most 2 points of them; its recall of that class falls to 0.
   */
  maxClassDrop?: number;
}

export interface RegressionOptions extends RegressionLimits {
  domain: InputDomain;
  /** Attack budget of the adversarial evaluation (units of the domain; default 0.05). */
  eps?: number;
  /** PGD steps (default 20). */
  steps?: number;
  /** Square queries per row when a model has no gradients (default 300). */
  queries?: number;
  seed?: number;
  /** The class names, by index, for the report (default the indices). */
  classNames?: readonly string[];
}

/** One class's clean recall before and after (a point comparison: see {@link DEFAULT_MAX_CLASS_DROP}). */
export interface ClassRecall {
  /** The class's name ({@link RegressionOptions.classNames}) or its index. */
  class: string;
  /** Evaluation rows of the class: one of them is 1 / rows of its recall. */
  rows: number;
  /** Share of those rows the old model assigns to the class. */
  before: number;
  /** Share of those rows the new model assigns to the class. */
  after: number;
}

export interface ModelComparison {
  rows: number;
  eps: number;
  attack: 'pgd' | 'square';
  /** Clean and robust accuracy, and balanced accuracy (the mean clean recall of the classes with rows). */
  before: { clean: number; robust: number; balanced: number };
  after: { clean: number; robust: number; balanced: number };
  /** The per-class limit applied. */
  maxClassDrop: number;
  /** Each class with evaluation rows (a class without any is not judged: checkEvaluation refuses that). */
  classes: ClassRecall[];
  accepted: boolean;
  reasons: string[];
}

/**
 * Default largest drop of one class's clean recall: 10 points. The per-class check is a POINT
 * comparison (no allowance for chance), like the accuracy limits: with n rows of a class, one row is
 * 1 / n of its recall, so a class with fewer than 1 / 0.1 = 10 rows is refused for one row lost, and
 * a class with n ≥ 10 tolerates ⌊0.1 · n⌋ rows lost net. That errs towards refusing: a small class
 * makes the check stricter than the limit, never looser, and a model that stops predicting a class
 * its parent recalled above 10 % is refused whatever the class's size. The noise of a drop is that of
 * the accuracies' (McNemar's paired comparison) within the class: with d rows of the class on which the
 * models disagree and no real change, the net drop has a standard deviation of about √d / n.
 */
export const DEFAULT_MAX_CLASS_DROP = 0.1;

/**
 * Accuracies are counts over rows: 0.8 - 0.79 is 0.010000000000000009 in floating point, so a drop of
 * exactly a limit was refused. A drop beyond a limit is one above limit + this; 1e-9 is far below one
 * row's share of any evaluation set.
 */
export const DROP_TOLERANCE = 1e-9;

/**
 * The fewest rows any evaluation set must have (see {@link minEvaluationRows}): below 100 rows one row
 * is more than a point of accuracy, coarser than the default clean-accuracy limit, and a 95 % interval
 * of one accuracy spans up to ±10 points (1.96 · √(0.25 / 100) = 0.098).
 */
export const MIN_EVALUATION_ROWS = 100;

/**
 * The fewest evaluation rows the comparison accepts under `limits`: at least ⌈1 / t⌉ for the smallest
 * positive limit t (each accuracy is a count over the rows, so one row moves it by 1 / rows; with fewer
 * rows than 1 / t a single row lost is already beyond the limit, and the verdict turns on one row
 * instead of the limit configured), and never fewer than {@link MIN_EVALUATION_ROWS}. A limit of 0
 * ("no drop at all") is met or not at any size and adds no bound of its own.
 */
export function minEvaluationRows(limits: RegressionLimits = {}): number {
  const maxClean = requireNumberIn('maxCleanDrop', limits.maxCleanDrop ?? 0.01, 0, 1);
  const maxRobust = requireNumberIn('maxRobustDrop', limits.maxRobustDrop ?? 0.02, 0, 1);
  const positive = [maxClean, maxRobust].filter((t) => t > 0);
  // 1e-9: 1 / 0.03 must give 34, and 1 / 0.01 (100.00000000000001 or so) 100.
  const granularity = positive.length === 0 ? 0 : Math.ceil(1 / Math.min(...positive) - 1e-9);
  return Math.max(MIN_EVALUATION_ROWS, granularity);
}

/**
 * Throws ERR_DATA_VALUE when an evaluation set of `rows` rows is too small for a meaningful comparison
 * under `limits` ({@link minEvaluationRows}); the message names the option that gives the set.
 */
export function requireEvaluationRows(
  rows: number,
  limits: RegressionLimits = {},
  what = 'the evaluation set (--eval)',
): void {
  const min = minEvaluationRows(limits);
  if (rows >= min) return;
  const clean = limits.maxCleanDrop ?? 0.01;
  const robust = limits.maxRobustDrop ?? 0.02;
  throw new BulwarkError(
    'ERR_DATA_VALUE',
    `${what} has ${rows} row${rows === 1 ? '' : 's'}; the regression comparison needs at least ${min}: one row moves an accuracy by 1/rows, which must be within the smallest limit (max clean drop ${clean}, max robust drop ${robust}), and an accuracy over fewer than ${MIN_EVALUATION_ROWS} rows says little (docs/integrity.md)`,
    { details: { field: 'evaluation', rows, minimum: min } },
  );
}

/**
 * Throws ERR_DATA_VALUE when `data` has fewer DISTINCT rows (encoded features and class) than the
 * comparison needs under `limits`: a row repeated 100 times is one row's evidence counted 100 times, so
 * it passes the row count while each accuracy still turns on that one row. Checked on every evaluation
 * set `bulwark train --from` reads (checkEvaluation, continue.ts) and by {@link compareModels} itself,
 * for any caller of the library.
 */
export function requireDistinctEvaluationRows(
  data: LabelledData,
  limits: RegressionLimits = {},
  what = 'the evaluation set (--eval)',
): void {
  const min = minEvaluationRows(limits);
  const distinct = distinctRows(data);
  if (distinct >= min) return;
  throw new BulwarkError(
    'ERR_DATA_VALUE',
    `${what} has ${data.rows} rows but only ${distinct} distinct ones; the regression comparison needs at least ${min} distinct rows (a repeated row adds no evidence, docs/integrity.md)`,
    { details: { field: 'evaluation', rows: data.rows, distinct, minimum: min } },
  );
}

async function measure(
  model: ProbabilityModel,
  data: LabelledData,
  o: RegressionOptions,
  attack: 'pgd' | 'square',
): Promise<{ clean: number; robust: number; recalled: number[] }> {
  const k = model.classes;
  const predict = async (x: Float32Array) => argmaxRows(await model.predictProba(x, data.rows), data.rows, k);
  const acc = (p: ArrayLike<number>) => {
    let ok = 0;
    for (let i = 0; i < data.rows; i++) if (p[i] === data.y[i]) ok++;
    return ok / data.rows;
  };
  const clean = await predict(data.x);
  // Rows of each class the model assigns to it (its recall's numerator).
  const recalled = new Array<number>(k).fill(0);
  for (let i = 0; i < data.rows; i++) {
    const c = data.y[i] as number;
    if (clean[i] === c && c >= 0 && c < k) recalled[c] = (recalled[c] as number) + 1;
  }
  const eps = o.eps ?? 0.05;
  const adv =
    attack === 'pgd'
      ? pgd(model, data.x, data.y, data.rows, {
          eps,
          steps: o.steps ?? 20,
          domain: o.domain,
          seed: o.seed ?? 0,
        })
      : await square(model, data.x, data.y, data.rows, {
          eps,
          queries: o.queries ?? 300,
          domain: o.domain,
          seed: o.seed ?? 0,
        });
  return { clean: acc(clean), robust: acc(await predict(adv.x)), recalled };
}

/** Compares the new model with the old one on `data`; `accepted` is false beyond the limits. */
export async function compareModels(
  oldModel: ProbabilityModel,
  newModel: ProbabilityModel,
  data: LabelledData,
  o: RegressionOptions,
): Promise<ModelComparison> {
  const maxClean = requireNumberIn('maxCleanDrop', o.maxCleanDrop ?? 0.01, 0, 1);
  const maxRobust = requireNumberIn('maxRobustDrop', o.maxRobustDrop ?? 0.02, 0, 1);
  const maxClass = requireNumberIn('maxClassDrop', o.maxClassDrop ?? DEFAULT_MAX_CLASS_DROP, 0, 1);
  const limits = { maxCleanDrop: maxClean, maxRobustDrop: maxRobust };
  requireEvaluationRows(data.rows, limits, 'the evaluation data');
  // Distinct rows, as train --from checks (6b7af29): a row repeated 100 times passed the row count
  // while each accuracy turned on that one row.
  requireDistinctEvaluationRows(data, limits, 'the evaluation data');
  if (oldModel.inputs !== newModel.inputs || oldModel.classes !== newModel.classes)
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      'the new model does not take the same inputs and classes as the old one',
    );
  const attack = hasGradients(oldModel) && hasGradients(newModel) ? 'pgd' : 'square';
  const old = await measure(oldModel, data, o, attack);
  const next = await measure(newModel, data, o, attack);
  const counts = new Array<number>(oldModel.classes).fill(0);
  for (let i = 0; i < data.rows; i++) {
    const c = data.y[i] as number;
    if (c >= 0 && c < counts.length) counts[c] = (counts[c] as number) + 1;
  }
  const classes: ClassRecall[] = [];
  counts.forEach((n, c) => {
    if (n > 0)
      classes.push({
        class: o.classNames?.[c] ?? String(c),
        rows: n,
        before: (old.recalled[c] as number) / n,
        after: (next.recalled[c] as number) / n,
      });
  });
  const balanced = (k: 'before' | 'after') =>
    classes.length === 0 ? 0 : classes.reduce((s, c) => s + c[k], 0) / classes.length;
  const before = { clean: old.clean, robust: old.robust, balanced: balanced('before') };
  const after = { clean: next.clean, robust: next.robust, balanced: balanced('after') };
  const reasons: string[] = [];
  if (before.clean - after.clean > maxClean + DROP_TOLERANCE)
    reasons.push(
      `clean accuracy ${before.clean.toFixed(4)} -> ${after.clean.toFixed(4)} (limit ${maxClean})`,
    );
  if (before.robust - after.robust > maxRobust + DROP_TOLERANCE)
    reasons.push(
      `robust accuracy ${before.robust.toFixed(4)} -> ${after.robust.toFixed(4)} (${attack} eps ${o.eps ?? 0.05}, limit ${maxRobust})`,
    );
  // The accuracies weigh classes by their share of the rows: a model that stops predicting a class of
  // 2 % of them loses at most 2 points. Each class's recall is held to its own limit (a point
  // comparison, DEFAULT_MAX_CLASS_DROP: exact counts, the same DROP_TOLERANCE).
  for (const c of classes)
    if (c.before - c.after > maxClass + DROP_TOLERANCE)
      reasons.push(
        `recall of class "${c.class}" ${c.before.toFixed(4)} -> ${c.after.toFixed(4)} over its ${c.rows} row${c.rows === 1 ? '' : 's'} (limit ${maxClass} per class)`,
      );
  return {
    rows: data.rows,
    eps: o.eps ?? 0.05,
    attack,
    before,
    after,
    maxClassDrop: maxClass,
    classes,
    accepted: reasons.length === 0,
    reasons,
  };
}

/** {@link compareModels} on two ONNX files Bulwark can import (white-box PGD). */
export function compareOnnxModels(
  oldOnnx: Uint8Array,
  newOnnx: Uint8Array,
  data: LabelledData,
  o: RegressionOptions,
): Promise<ModelComparison> {
  return compareModels(
    networkModel(fromOnnx(oldOnnx).network),
    networkModel(fromOnnx(newOnnx).network),
    data,
    o,
  );
}

/** Throws ERR_MODEL_REGRESSION when the comparison was not accepted. */
export function requireNoRegression(c: ModelComparison): void {
  if (!c.accepted)
    throw new BulwarkError('ERR_MODEL_REGRESSION', `the new model regresses: ${c.reasons.join('; ')}`, {
      details: { reasons: c.reasons.join('; ') },
    });
}
