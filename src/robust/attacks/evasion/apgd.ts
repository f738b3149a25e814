/**
 * Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks", ICML 2020): PGD with momentum (alpha = 0.75) and a step size that starts at
 * 2 eps and halves, per example, at checkpoints where the loss stopped rising: fewer than rho = 0.75 of
 * the steps since the last checkpoint increased it, or the best loss did not improve since then (and
 * the step was not just halved). After halving, the iterate restarts from the best point found. The
 * checkpoints follow the reference implementation: every 22 % of the iterations at first, the spacing
 * shrinking by 3 % of the iterations each time down to 6 %.
 *
 * With the cross-entropy loss this is APGD-CE; with `dlr` (3+ classes) APGD-DLR; both are the strong
 * evaluations that stop a fixed-step PGD from overestimating robustness.
 */
import { type Rng, requireInteger, rngOf } from '../../../core/index.js';
import { runSteps, runStepsAsync, type Steps } from '../../../ml/index.js';
import { attackLoss, attackSucceeded, type LossName } from '../../losses.js';
import { type ProbabilityModel, requireGradients } from '../../model.js';
import {
  checkBase,
  checkLoss,
  type EvasionBase,
  type EvasionResult,
  predictedClasses,
  rate,
  takeLabels,
  takeRows,
} from './common.js';
import { gradientStep } from './pgd.js';

/** Options of {@link apgd}. */
export interface ApgdOptions extends EvasionBase {
  /** Iterations (default 100). */
  steps?: number;
  /** Runs from random starts for the rows not yet fooled (default 1). */
  restarts?: number;
  /** `ce` (default) or `dlr` (3+ classes); `margin` is accepted too. */
  loss?: LossName;
  seed?: number | Rng;
  /** Rows per pass (default 512). */
  batchSize?: number;
}

const RHO = 0.75;
const ALPHA = 0.75;

/**
 * APGD within an L-inf or L2 ball (needs input gradients). Returns, per row, a successful point if one
 * was met on the way, else the highest-loss point.
 */
export function apgd(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: ApgdOptions,
): EvasionResult {
  return runSteps(apgdSteps(model, x, y, rows, options));
}

/** {@link apgd}, giving the event loop a turn between steps (at most every 50 ms); the same result. */
export async function apgdAsync(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: ApgdOptions,
): Promise<EvasionResult> {
  return await runStepsAsync(apgdSteps(model, x, y, rows, options));
}

/** The attack, a step (yield) after each gradient pass. */
function* apgdSteps(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: ApgdOptions,
): Steps<EvasionResult> {
  const m = requireGradients(model, 'apgd');
  const base = checkBase(m, x, y, rows, options, () => predictedClasses(m, x, rows));
  const steps = requireInteger('steps', options.steps ?? 100, 1);
  const restarts = requireInteger('restarts', options.restarts ?? 1, 1);
  const batchSize = requireInteger('batchSize', options.batchSize ?? 512, 1);
  const loss = checkLoss(options.loss ?? 'ce', m.classes, base.targeted);
  const rng = rngOf(options.seed);
  const { eps, norm, domain, targeted } = base;
  const d = m.inputs;
  const k = m.classes;
  const out = x.slice();
  const success = attackSucceeded(m.logits(x, rows), base.labels, rows, k, targeted);
  // Highest loss over the runs of each row not fooled yet (its point is in `out`): a later restart
  // replaces it only with a higher one.
  const outLoss = new Float64Array(rows).fill(-Infinity);
  const stepsInit = Math.max(Math.floor(0.22 * steps), 1);
  const sizeDecr = Math.max(Math.floor(0.03 * steps), 1);
  const stepsMin = Math.max(Math.floor(0.06 * steps), 1);
  const discrete = domain.discrete;
  let queries = 1;
  if (eps > 0) {
    for (let run = 0; run < restarts; run++) {
      const todo: number[] = [];
      for (let r = 0; r < rows; r++) if (success[r] === 0) todo.push(r);
      if (todo.length === 0) break;
      queries += steps * (discrete ? 2 : 1) + 1;
      for (let s = 0; s < todo.length; s += batchSize) {
        const idx = todo.slice(s, s + batchSize);
        const n = idx.length;
        const x0 = takeRows(x, d, idx);
        const lab = takeLabels(base.labels, idx);
        const lossOf = (z: Float32Array) => attackLoss(loss, z, lab, n, k, targeted);
        let cur: Float32Array = domain.randomStart(x0, n, norm, eps, rng);
        let prev: Float32Array = cur.slice();
        let { logits, gradient } = m.gradient(cur, n, (z) => lossOf(z).grad);
        let lv = lossOf(logits).values;
        const eta = new Float64Array(n).fill(2 * eps);
        const bestX = cur.slice();
        const bestG = gradient.slice();
        const bestLoss = Float64Array.from(lv);
        const found = new Uint8Array(n);
        const advX = x0.slice();
        const lossSteps: Float64Array[] = [Float64Array.from(lv)];
        let lastCheckBest = Float64Array.from(bestLoss);
        let reducedLast = new Uint8Array(n).fill(1);
        let window = stepsInit;
        let counter = 0;
        const record = (pt: Float32Array, z: Float32Array) => {
          const ok = attackSucceeded(z, lab, n, k, targeted);
          for (let i = 0; i < n; i++) {
            if (ok[i] && !found[i]) {
              found[i] = 1;
              advX.set(pt.subarray(i * d, (i + 1) * d), i * d);
            }
          }
        };
        const candidate = (pt: Float32Array) => {
          if (!discrete) return record(pt, logits);
          const c = domain.repair(pt, x0, n, norm, eps);
          record(c, m.logits(c, n));
        };
        candidate(cur);
        yield;
        for (let t = 0; t < steps; t++) {
          // Step: z = P(x + eta * dir(grad)); x' = P(x + a (z - x) + (1 - a)(x - x_prev)), a = 1 at first.
          const a = t > 0 ? ALPHA : 1;
          const z = cur.slice();
          for (let i = 0; i < n; i++) {
            const sl = z.subarray(i * d, (i + 1) * d);
            gradientStep(
              sl,
              gradient.subarray(i * d, (i + 1) * d),
              1,
              domain,
              norm,
              eta[i] as number,
              Math.min(1, eta[i] as number),
            );
          }
          domain.project(z, x0, n, norm, eps);
          const next = new Float32Array(n * d);
          for (let j = 0; j < n * d; j++) {
            const c = cur[j] as number;
            next[j] = c + a * ((z[j] as number) - c) + (1 - a) * (c - (prev[j] as number));
          }
          domain.project(next, x0, n, norm, eps);
          prev = cur;
          cur = next;
          ({ logits, gradient } = m.gradient(cur, n, (zz) => lossOf(zz).grad));
          yield;
          lv = lossOf(logits).values;
          candidate(cur);
          lossSteps.push(Float64Array.from(lv));
          for (let i = 0; i < n; i++) {
            if ((lv[i] as number) > (bestLoss[i] as number)) {
              bestLoss[i] = lv[i] as number;
              bestX.set(cur.subarray(i * d, (i + 1) * d), i * d);
              bestG.set(gradient.subarray(i * d, (i + 1) * d), i * d);
            }
          }
          counter++;
          if (counter === window) {
            const reduce = new Uint8Array(n);
            const last = lossSteps.length - 1;
            for (let i = 0; i < n; i++) {
              let increases = 0;
              for (let j = last - window + 1; j <= last; j++) {
                if (
                  j >= 1 &&
                  ((lossSteps[j] as Float64Array)[i] as number) >
                    ((lossSteps[j - 1] as Float64Array)[i] as number)
                )
                  increases++;
              }
              const oscillating = increases <= window * RHO;
              const noImprovement =
                reducedLast[i] === 0 && (lastCheckBest[i] as number) >= (bestLoss[i] as number);
              reduce[i] = oscillating || noImprovement ? 1 : 0;
            }
            reducedLast = reduce;
            lastCheckBest = Float64Array.from(bestLoss);
            for (let i = 0; i < n; i++) {
              if (!reduce[i]) continue;
              eta[i] = (eta[i] as number) / 2;
              cur.set(bestX.subarray(i * d, (i + 1) * d), i * d);
              gradient.set(bestG.subarray(i * d, (i + 1) * d), i * d);
            }
            window = Math.max(window - sizeDecr, stepsMin);
            counter = 0;
          }
        }
        // Rows never fooled keep the highest-loss point (repaired), which later runs may beat.
        const fallback = discrete ? domain.repair(bestX, x0, n, norm, eps) : bestX;
        idx.forEach((r, i) => {
          if (found[i]) {
            success[r] = 1;
            out.set(advX.subarray(i * d, (i + 1) * d), r * d);
          } else if ((bestLoss[i] as number) > (outLoss[r] as number)) {
            outLoss[r] = bestLoss[i] as number;
            out.set(fallback.subarray(i * d, (i + 1) * d), r * d);
          }
        });
      }
    }
  }
  return {
    x: out,
    rows,
    success,
    successRate: rate(success),
    distance: domain.distance(out, x, rows, norm),
    queries,
  };
}
