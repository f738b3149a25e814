/**
 * Losses an evasion attack maximises, as functions of the logits, with their gradients with respect to
 * the logits (the model backpropagates them to the input). Every loss here is "higher = closer to the
 * attacker's goal", so attacks always ascend.
 *
 * - `ce`: cross-entropy of the true class (Goodfellow et al. 2015; Madry et al. 2018).
 * - `margin`: max_{j != y} z_j - z_y, the Carlini & Wagner (S&P 2017) margin: positive exactly when the
 *   example is misclassified, and not saturated by a confident softmax as cross-entropy is, which is why
 *   it is the adaptive choice against models whose cross-entropy gradient vanishes.
 * - `dlr`: the Difference of Logits Ratio of Croce & Hein (ICML 2020), -(z_y - max_{j != y} z_j) /
 *   (z_pi1 - z_pi3), invariant to shifting and scaling the logits; needs at least 3 classes.
 *
 * Targeted variants (a target class t per row) maximise -ce(t) or z_t - max_{j != t} z_j.
 */
import { invalidArgument } from '../core/index.js';

export type LossName = 'ce' | 'margin' | 'dlr';
export const LOSS_NAMES: readonly LossName[] = ['ce', 'margin', 'dlr'];

/** Per-row loss values and d loss / d logits. */
export interface LossValue {
  values: Float64Array;
  grad: Float32Array;
}

/** Largest entry of row `o..o+k` other than index `skip`. */
function maxOther(z: Float32Array, o: number, k: number, skip: number): number {
  let best = -1;
  for (let j = 0; j < k; j++) {
    if (j === skip) continue;
    if (best < 0 || (z[o + j] as number) > (z[o + best] as number)) best = j;
  }
  return best;
}

/**
 * Evaluates loss `name` on logits `z` (`rows x k`) for labels `y` (the true classes, or the targets when
 * `targeted`), returning per-row values and the gradient.
 */
export function attackLoss(
  name: LossName,
  z: Float32Array,
  y: ArrayLike<number>,
  rows: number,
  k: number,
  targeted = false,
): LossValue {
  if (name === 'dlr' && k < 3)
    throw invalidArgument('loss', 'ce or margin for a model with 2 classes (dlr needs 3 or more)', name);
  if (name === 'dlr' && targeted) throw invalidArgument('loss', 'ce or margin for a targeted attack', name);
  const values = new Float64Array(rows);
  const grad = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    const t = y[r] as number;
    if (name === 'ce') {
      let m = -Infinity;
      for (let j = 0; j < k; j++) if ((z[o + j] as number) > m) m = z[o + j] as number;
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp((z[o + j] as number) - m);
      const lse = m + Math.log(s);
      const ce = lse - (z[o + t] as number);
      const sign = targeted ? -1 : 1;
      values[r] = sign * ce;
      for (let j = 0; j < k; j++) {
        grad[o + j] = sign * (Math.exp((z[o + j] as number) - lse) - (j === t ? 1 : 0));
      }
    } else if (name === 'margin') {
      const m = maxOther(z, o, k, t);
      const v = (z[o + m] as number) - (z[o + t] as number);
      const sign = targeted ? -1 : 1;
      values[r] = sign * v;
      grad[o + m] = sign;
      grad[o + t] = -sign;
    } else {
      // DLR: -(z_y - z_m) / (z_pi1 - z_pi3 + 1e-12), pi the logits sorted in decreasing order.
      const idx = Array.from({ length: k }, (_, j) => j).sort(
        (a, b) => (z[o + b] as number) - (z[o + a] as number),
      );
      const p1 = idx[0] as number;
      const p3 = idx[2] as number;
      const m = maxOther(z, o, k, t);
      const num = (z[o + t] as number) - (z[o + m] as number);
      const den = (z[o + p1] as number) - (z[o + p3] as number) + 1e-12;
      values[r] = -num / den;
      // d(-num/den) = -(dnum * den - num * dden) / den^2
      grad[o + t] = (grad[o + t] as number) - 1 / den;
      grad[o + m] = (grad[o + m] as number) + 1 / den;
      const c = num / (den * den);
      grad[o + p1] = (grad[o + p1] as number) + c;
      grad[o + p3] = (grad[o + p3] as number) - c;
    }
  }
  return { values, grad };
}

/** Whether each row's logits (or probabilities) meet the attacker's goal: misclassified, or the target. */
export function attackSucceeded(
  scores: ArrayLike<number>,
  y: ArrayLike<number>,
  rows: number,
  k: number,
  targeted = false,
): Uint8Array {
  const out = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < k; j++)
      if ((scores[r * k + j] as number) > (scores[r * k + best] as number)) best = j;
    out[r] = (targeted ? best === y[r] : best !== y[r]) ? 1 : 0;
  }
  return out;
}
