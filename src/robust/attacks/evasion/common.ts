/** Shared parameter checks and result type of the evasion attacks. */
import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireNumberIn,
  requireOneOf,
} from '../../../core/index.js';
import { InputDomain, NORMS, type Norm } from '../../domain.js';
import { LOSS_NAMES, type LossName } from '../../losses.js';
import { argmaxRows, type GradientModel, type ProbabilityModel } from '../../model.js';

/** What every evasion attack returns. */
export interface EvasionResult {
  /** The adversarial examples, `rows x inputs` (the clean row where nothing better was found). */
  x: Float32Array;
  rows: number;
  /** 1 where the returned point meets the goal (misclassified, or classified as the target). */
  success: Uint8Array;
  /** Share of rows with success. */
  successRate: number;
  /** Perturbation of each row in the budget's units (see InputDomain.distance). */
  distance: Float64Array;
  /** Model evaluations per row, the most any row used (forward passes; a gradient counts as one). */
  queries: number;
}

/** Options every evasion attack takes. */
export interface EvasionBase {
  /** Perturbation budget (>= 0) in the domain's scale units. */
  eps: number;
  /** `inf` (default) or `2`. */
  norm?: Norm;
  /** Valid inputs and the attacker's freedom (default: unbounded, all features mutable). */
  domain?: InputDomain;
  /** Target classes for a targeted attack (default: untargeted, against `y`). */
  targets?: ArrayLike<number> | null;
}

export interface CheckedBase {
  eps: number;
  norm: Norm;
  domain: InputDomain;
  targeted: boolean;
  /** The classes the loss is computed against: targets when targeted, else the labels. */
  labels: Int32Array;
}

/** Checks data shapes and the options shared by all attacks; resolves labels (predicted when `y` is null). */
export function checkBase(
  model: ProbabilityModel & { logits?: (x: Float32Array, rows: number) => Float32Array },
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  o: EvasionBase,
  predicted: () => Int32Array,
): CheckedBase {
  requireInteger('rows', rows, 1);
  if (x.length !== rows * model.inputs) {
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `x: ${x.length} values for ${rows} rows, but the model "${model.name}" takes ${model.inputs} features`,
    );
  }
  const eps = requireNumberIn('eps', o.eps, 0, Number.MAX_VALUE);
  const norm = requireOneOf('norm', o.norm ?? 'inf', NORMS);
  const domain = o.domain ?? new InputDomain({ inputs: model.inputs });
  if (!(domain instanceof InputDomain)) throw invalidArgument('domain', 'an InputDomain', domain);
  if (domain.inputs !== model.inputs) {
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `domain has ${domain.inputs} features, the model "${model.name}" takes ${model.inputs}`,
    );
  }
  domain.check(x, rows, 'clean input');
  const k = model.classes;
  const labelsOf = (name: string, v: ArrayLike<number>): Int32Array => {
    if (v.length !== rows) throw invalidArgument(name, `${rows} labels (one per row)`, `${v.length} labels`);
    const out = new Int32Array(rows);
    for (let i = 0; i < rows; i++) out[i] = requireInteger(`${name}[${i}]`, v[i], 0, k - 1);
    return out;
  };
  const targets = o.targets ?? null;
  if (targets !== null) return { eps, norm, domain, targeted: true, labels: labelsOf('targets', targets) };
  return { eps, norm, domain, targeted: false, labels: y === null ? predicted() : labelsOf('y', y) };
}

/** Predicted classes of a gradient model, in one forward pass. */
export function predictedClasses(model: GradientModel, x: Float32Array, rows: number): Int32Array {
  return argmaxRows(model.logits(x, rows), rows, model.classes);
}

/** Step size checks: in (0, eps], since a larger step than the budget only bounces off the ball's boundary. */
export function checkStepSize(stepSize: number, eps: number, name = 'stepSize'): number {
  requireNumberIn(name, stepSize, 0, Number.MAX_VALUE, { minExclusive: true });
  if (stepSize > eps) {
    throw invalidArgument(
      name,
      `a step no larger than eps (${eps}); a larger step only bounces off the boundary`,
      stepSize,
    );
  }
  return stepSize;
}

export function checkLoss(loss: unknown, classes: number, targeted: boolean): LossName {
  const name = requireOneOf('loss', loss, LOSS_NAMES);
  if (name === 'dlr' && classes < 3) {
    throw invalidArgument(
      'loss',
      `ce or margin (dlr needs 3 or more classes; the model has ${classes})`,
      name,
    );
  }
  if (name === 'dlr' && targeted) throw invalidArgument('loss', 'ce or margin for a targeted attack', name);
  return name;
}

/** Copies rows `idx` of a `rows x d` matrix. */
export function takeRows(a: Float32Array, d: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i] as number;
    out.set(a.subarray(r * d, (r + 1) * d), i * d);
  }
  return out;
}

export function takeLabels(a: ArrayLike<number>, idx: ArrayLike<number>): Int32Array {
  return Int32Array.from({ length: idx.length }, (_, i) => a[idx[i] as number] as number);
}

export function rate(flags: Uint8Array): number {
  let s = 0;
  for (const f of flags) s += f;
  return flags.length === 0 ? 0 : s / flags.length;
}
