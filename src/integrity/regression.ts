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
}

export interface ModelComparison {
  rows: number;
  eps: number;
  attack: 'pgd' | 'square';
  before: { clean: number; robust: number };
  after: { clean: number; robust: number };
  accepted: boolean;
  reasons: string[];
}

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
 * set `bulwark train --from` reads (checkEvaluation, continue.ts); {@link compareModels} itself checks the
 * row count only, as it always has.
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
): Promise<{ clean: number; robust: number }> {
  const k = model.classes;
  const acc = async (x: Float32Array) => {
    const p = argmaxRows(await model.predictProba(x, data.rows), data.rows, k);
    let ok = 0;
    for (let i = 0; i < data.rows; i++) if (p[i] === data.y[i]) ok++;
    return ok / data.rows;
  };
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
  return { clean: await acc(data.x), robust: await acc(adv.x) };
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
  requireEvaluationRows(
    data.rows,
    { maxCleanDrop: maxClean, maxRobustDrop: maxRobust },
    'the evaluation data',
  );
  if (oldModel.inputs !== newModel.inputs || oldModel.classes !== newModel.classes)
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      'the new model does not take the same inputs and classes as the old one',
    );
  const attack = hasGradients(oldModel) && hasGradients(newModel) ? 'pgd' : 'square';
  const before = await measure(oldModel, data, o, attack);
  const after = await measure(newModel, data, o, attack);
  const reasons: string[] = [];
  // Accuracies are counts over rows: 0.8 - 0.79 is 0.010000000000000009 in floating point, so a drop of
  // exactly the limit was refused. 1e-9 is far below one row's share of any evaluation set.
  const TOL = 1e-9;
  if (before.clean - after.clean > maxClean + TOL)
    reasons.push(
      `clean accuracy ${before.clean.toFixed(4)} -> ${after.clean.toFixed(4)} (limit ${maxClean})`,
    );
  if (before.robust - after.robust > maxRobust + TOL)
    reasons.push(
      `robust accuracy ${before.robust.toFixed(4)} -> ${after.robust.toFixed(4)} (${attack} eps ${o.eps ?? 0.05}, limit ${maxRobust})`,
    );
  return {
    rows: data.rows,
    eps: o.eps ?? 0.05,
    attack,
    before,
    after,
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
