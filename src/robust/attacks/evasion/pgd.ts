/**
 * Projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models
 * resistant to adversarial attacks", ICLR 2018) under L-inf or L2 budgets, and the fast gradient sign
 * method (Goodfellow, Shlens & Szegedy, ICLR 2015) as its one-step case.
 *
 * Unlike the article's sketch, every iterate is projected onto the eps-ball around the clean input AND
 * the valid input range (and the schema's rules), the start is random inside the ball (uniform in the
 * L-inf box, uniform in the L2 ball), and with restarts each row keeps its best point over all runs:
 * a successful one first, else the one with the highest loss. Restarts only rerun the rows not yet
 * fooled. The loss may be cross-entropy, the Carlini-Wagner margin or DLR (see ../../losses.ts): the
 * margin and DLR losses are the adaptive choices when cross-entropy gradients vanish.
 */
import {
  BulwarkError,
  invalidArgument,
  type Rng,
  requireInteger,
  requireNumberIn,
  rngOf,
} from '../../../core/index.js';
import { type OnnxGradientEngine, runSteps, runStepsAsync, type Steps } from '../../../ml/index.js';
import type { InputDomain, Norm } from '../../domain.js';
import { attackLoss, attackSucceeded, type LossName } from '../../losses.js';
import {
  type GradientModel,
  type GradientResult,
  type ProbabilityModel,
  requireGradients,
} from '../../model.js';
import {
  checkBase,
  checkLoss,
  checkStepSize,
  type EvasionBase,
  type EvasionResult,
  predictedClasses,
  rate,
  takeLabels,
  takeRows,
} from './common.js';

/** Options of {@link pgd}. */
export interface PgdOptions extends EvasionBase {
  /** Iterations (default 40). */
  steps?: number;
  /** Step size in the budget's units (default 2.5 * eps / steps, Madry et al.); at most eps. */
  stepSize?: number;
  /** Independent runs from random starts (default 1); later runs only for rows not yet fooled. */
  restarts?: number;
  /** Start at a random point of the ball (default true); false starts at the clean input. */
  randomStart?: boolean;
  /** Loss to ascend: `ce` (default), `margin` or `dlr`. */
  loss?: LossName;
  /** Seed of the random starts (default 0), or a generator. */
  seed?: number | Rng;
  /** Rows per forward/backward pass (default 512). */
  batchSize?: number;
  /**
   * Adaptive-attack hook: a differentiable penalty (e.g. a detector's score) subtracted from the loss with
   * this weight, so the attack also moves away from what a defence flags.
   */
  penalty?: AttackPenalty;
  /**
   * Adaptive-attack hook: an extra condition a point must meet to count as a success (e.g. not flagged by
   * a detector, or misclassified with a margin); the attack keeps searching until it holds.
   */
  accept?: (x: Float32Array, rows: number) => Uint8Array;
}

/** A differentiable penalty on the inputs: per-row values and their gradient. */
export interface AttackPenalty {
  weight: number;
  fn: (x: Float32Array, rows: number) => { values: ArrayLike<number>; gradient: Float32Array };
}

/** Options of {@link fgsm}. */
export interface FgsmOptions extends EvasionBase {
  /** Loss whose gradient sign is followed (default `ce`). */
  loss?: LossName;
  /** Rows per pass (default 512). */
  batchSize?: number;
}

interface Ascent {
  eps: number;
  norm: Norm;
  domain: InputDomain;
  steps: number;
  stepSize: number;
  restarts: number;
  randomStart: boolean;
  loss: LossName;
  targeted: boolean;
  rng: Rng;
  penalty?: AttackPenalty | undefined;
  accept?: ((x: Float32Array, rows: number) => Uint8Array) | undefined;
}

/**
 * One signed (L-inf) or normalised (L2) gradient step of size `alpha` in scale units, in place. One-hot
 * groups, which the ball does not bound, move by `groupStep` in the gradient's sign.
 */
export function gradientStep(
  x: Float32Array,
  g: Float32Array,
  rows: number,
  domain: InputDomain,
  norm: Norm,
  alpha: number,
  groupStep: number,
): void {
  const d = domain.inputs;
  const { scale, mutable, groupOf } = domain;
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let n = 1;
    if (norm === '2') {
      let sq = 0;
      for (let j = 0; j < d; j++) {
        if (mutable[j] === 0 || groupOf[j] !== -1) continue;
        const u = (g[o + j] as number) * (scale[j] as number);
        sq += u * u;
      }
      n = Math.sqrt(sq);
    }
    for (let j = 0; j < d; j++) {
      if (mutable[j] === 0) continue;
      const gj = g[o + j] as number;
      if (gj === 0) continue;
      const s = scale[j] as number;
      if (groupOf[j] !== -1) x[o + j] = (x[o + j] as number) + Math.sign(gj) * groupStep;
      else if (norm === 'inf') x[o + j] = (x[o + j] as number) + alpha * s * Math.sign(gj);
      else if (n > 0) x[o + j] = (x[o + j] as number) + (alpha * s * gj * s) / n;
    }
  }
}

/** Keeps, per row, the better of the current best and a candidate (success first, then loss). */
function keepBest(
  best: { x: Float32Array; loss: Float64Array; success: Uint8Array },
  cand: Float32Array,
  logits: Float32Array,
  labels: Int32Array,
  rows: number,
  d: number,
  model: GradientModel,
  a: Ascent,
): void {
  const k = model.classes;
  const lv = attackLoss(a.loss, logits, labels, rows, k, a.targeted).values;
  const ok = attackSucceeded(logits, labels, rows, k, a.targeted);
  if (a.penalty) {
    const pv = a.penalty.fn(cand, rows).values;
    for (let r = 0; r < rows; r++) lv[r] = (lv[r] as number) - a.penalty.weight * (pv[r] as number);
  }
  if (a.accept) {
    const acc = a.accept(cand, rows);
    for (let r = 0; r < rows; r++) ok[r] = (ok[r] as number) & (acc[r] as number);
  }
  for (let r = 0; r < rows; r++) {
    const s = ok[r] as number;
    const bs = best.success[r] as number;
    if (s > bs || (s === bs && bs === 0 && (lv[r] as number) > (best.loss[r] as number))) {
      best.success[r] = s;
      best.loss[r] = lv[r] as number;
      best.x.set(cand.subarray(r * d, (r + 1) * d), r * d);
    }
  }
}

/** One input-gradient pass the ascent asks for (answered by the model, or by an ONNX Runtime engine). */
interface GradientRequest {
  x: Float32Array;
  rows: number;
  /** The rows' labels (true labels, untargeted; the engine's cross-entropy uses them). */
  labels: Int32Array;
  lossGrad: (z: Float32Array) => Float32Array;
}

interface Ascended {
  x: Float32Array;
  success: Uint8Array;
  queries: number;
}

/**
 * Runs the ascent on one batch; returns the best points, their success, and the passes used per row.
 * A generator that yields each input-gradient pass, so one body serves the synchronous path
 * (`model.gradient`) and the asynchronous ONNX Runtime one ({@link pgdAsync}).
 */
function* ascend(
  model: GradientModel,
  x0: Float32Array,
  labels: Int32Array,
  rows: number,
  a: Ascent,
): Generator<GradientRequest, Ascended, GradientResult> {
  const d = model.inputs;
  const k = model.classes;
  const best = { x: x0.slice(), loss: new Float64Array(rows).fill(-Infinity), success: new Uint8Array(rows) };
  // The clean point itself is a candidate (an example already misclassified needs no perturbation).
  keepBest(best, x0, model.logits(x0, rows), labels, rows, d, model, a);
  let queries = 1;
  if (a.eps === 0) return { x: best.x, success: best.success, queries };
  const discrete = a.domain.discrete;
  const groupStep = Math.min(1, 2.5 / a.steps);
  for (let run = 0; run < a.restarts; run++) {
    const idx: number[] = [];
    for (let r = 0; r < rows; r++) if (best.success[r] === 0) idx.push(r);
    if (idx.length === 0) break;
    const n = idx.length;
    const bx0 = takeRows(x0, d, idx);
    const by = takeLabels(labels, idx);
    const sub = {
      x: takeRows(best.x, d, idx),
      loss: Float64Array.from(idx, (r) => best.loss[r] as number),
      success: new Uint8Array(n),
    };
    let x = a.randomStart ? a.domain.randomStart(bx0, n, a.norm, a.eps, a.rng) : bx0.slice();
    const lossGrad = (z: Float32Array) => attackLoss(a.loss, z, by, n, k, a.targeted).grad;
    for (let t = 0; t < a.steps; t++) {
      const { logits, gradient } = yield { x, rows: n, labels: by, lossGrad };
      if (a.penalty) {
        const pg = a.penalty.fn(x, n).gradient;
        for (let i = 0; i < gradient.length; i++)
          gradient[i] = (gradient[i] as number) - a.penalty.weight * (pg[i] as number);
      }
      if (t > 0 || a.randomStart) {
        if (discrete) {
          const c = a.domain.repair(x, bx0, n, a.norm, a.eps);
          keepBest(sub, c, model.logits(c, n), by, n, d, model, a);
        } else keepBest(sub, x, logits, by, n, d, model, a);
      }
      gradientStep(x, gradient, n, a.domain, a.norm, a.stepSize, groupStep);
      a.domain.project(x, bx0, n, a.norm, a.eps);
    }
    x = discrete ? a.domain.repair(x, bx0, n, a.norm, a.eps) : x;
    keepBest(sub, x, model.logits(x, n), by, n, d, model, a);
    queries += a.steps * (discrete ? 2 : 1) + 1;
    idx.forEach((r, i) => {
      const s = sub.success[i] as number;
      if (
        s > (best.success[r] as number) ||
        (s === 0 && (sub.loss[i] as number) > (best.loss[r] as number))
      ) {
        best.success[r] = s;
        best.loss[r] = sub.loss[i] as number;
        best.x.set(sub.x.subarray(i * d, (i + 1) * d), r * d);
      }
    });
  }
  return { x: best.x, success: best.success, queries };
}

/**
 * Runs {@link ascend} answering its gradient requests with `model.gradient`, a step (yield) after each
 * pass.
 */
function* ascendSteps(
  model: GradientModel,
  x0: Float32Array,
  labels: Int32Array,
  rows: number,
  a: Ascent,
): Steps<Ascended> {
  const gen = ascend(model, x0, labels, rows, a);
  let r = gen.next();
  while (!r.done) {
    const q = r.value;
    const answer = model.gradient(q.x, q.rows, q.lossGrad);
    yield;
    r = gen.next(answer);
  }
  return r.value;
}

/** Runs {@link ascend} answering its gradient requests with the ONNX Runtime engine. */
async function ascendEngine(
  engine: OnnxGradientEngine,
  model: GradientModel,
  x0: Float32Array,
  labels: Int32Array,
  rows: number,
  a: Ascent,
): Promise<Ascended> {
  const gen = ascend(model, x0, labels, rows, a);
  let r = gen.next();
  while (!r.done) {
    const q = r.value;
    r = gen.next(await engine.inputGradient(q.x, q.labels, q.rows));
  }
  return r.value;
}

/** The ascent over all rows, batch by batch: run by {@link pgd} and, without an engine, {@link pgdAsync}. */
function* batchedSteps(
  model: GradientModel,
  x: Float32Array,
  labels: Int32Array,
  rows: number,
  batchSize: number,
  a: Ascent,
): Steps<EvasionResult> {
  const d = model.inputs;
  const parts: Ascended[] = [];
  for (let s = 0; s < rows; s += batchSize) {
    const e = Math.min(rows, s + batchSize);
    parts.push(yield* ascendSteps(model, x.subarray(s * d, e * d), labels.subarray(s, e), e - s, a));
  }
  return gather(parts, x, rows, d, batchSize, a);
}

/** The batches' results as one {@link EvasionResult}. */
function gather(
  parts: Ascended[],
  x: Float32Array,
  rows: number,
  d: number,
  batchSize: number,
  a: Ascent,
): EvasionResult {
  const out = new Float32Array(rows * d);
  const success = new Uint8Array(rows);
  let queries = 0;
  for (const [i, r] of parts.entries()) {
    const s = i * batchSize;
    out.set(r.x, s * d);
    success.set(r.success, s);
    queries = Math.max(queries, r.queries);
  }
  return {
    x: out,
    rows,
    success,
    successRate: rate(success),
    distance: a.domain.distance(out, x, rows, a.norm),
    queries,
  };
}

/**
 * Projected gradient descent (ascent on the loss) within an L-inf or L2 ball. Needs input gradients.
 * `y` are the true labels (null: attack the model's own predictions, as ART does without labels).
 *
 * @example
 * ```ts
 * const r = pgd(networkModel(net), x, y, rows, {
 *   eps: 0.1, steps: 100, restarts: 5, domain: InputDomain.box(784), seed: 1,
 * });
 * console.log(`robust accuracy ${1 - r.successRate}`);
 * ```
 */
export function pgd(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: PgdOptions,
): EvasionResult {
  const p = preparePgd(model, x, y, rows, options);
  return runSteps(batchedSteps(p.model, x, p.labels, rows, p.batchSize, p.ascent));
}

/** The checked options of {@link pgd} and {@link pgdAsync}. */
function preparePgd(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: PgdOptions,
): { model: GradientModel; labels: Int32Array; batchSize: number; ascent: Ascent } {
  const m = requireGradients(model, 'pgd');
  const base = checkBase(m, x, y, rows, options, () => predictedClasses(m, x, rows));
  const steps = requireInteger('steps', options.steps ?? 40, 1);
  const stepSize =
    base.eps === 0
      ? 0
      : checkStepSize(options.stepSize ?? Math.min(base.eps, (2.5 * base.eps) / steps), base.eps);
  const restarts = requireInteger('restarts', options.restarts ?? 1, 1);
  const batchSize = requireInteger('batchSize', options.batchSize ?? 512, 1);
  const loss = checkLoss(options.loss ?? 'ce', m.classes, base.targeted);
  const rng = rngOf(options.seed);
  // A NaN weight made every penalised loss NaN: no candidate ever beat the best, silently.
  if (options.penalty !== undefined) {
    const pen = options.penalty as Partial<AttackPenalty> | null;
    if (pen === null || typeof pen !== 'object' || typeof pen.fn !== 'function')
      throw invalidArgument('penalty', '{ weight, fn } with fn a function', pen);
    requireNumberIn('penalty.weight', pen.weight, 0, Number.MAX_VALUE);
  }
  if (options.accept !== undefined && typeof options.accept !== 'function')
    throw invalidArgument('accept', 'a function', options.accept);
  return {
    model: m,
    labels: base.labels,
    batchSize,
    ascent: {
      ...base,
      steps,
      stepSize,
      restarts,
      randomStart: options.randomStart ?? true,
      loss,
      rng,
      penalty: options.penalty,
      accept: options.accept,
    },
  };
}

/**
 * {@link pgd} with its input-gradient passes on ONNX Runtime (`engine`, opened with
 * `OnnxGradientEngine.create(net)` for the model's network): the same attack, random starts, steps,
 * projections and best-point bookkeeping, 2-3x faster on large MLPs (docs/ml.md). The engine computes
 * the cross-entropy gradient, so the loss must be `ce` and the attack untargeted; a check of its logits
 * against the model's refuses an engine opened for another network (ERR_INVALID_ARGUMENT). Without an
 * engine this is {@link pgd}, giving the event loop a turn between gradient passes (at most every
 * 50 ms, so a signal is handled during a long attack); the same result.
 *
 * @example
 * ```ts
 * const engine = await OnnxGradientEngine.create(net);
 * const r = await pgdAsync(networkModel(net), x, y, rows, { eps: 0.1, steps: 100, domain, engine });
 * await engine.close();
 * ```
 */
export async function pgdAsync(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: PgdOptions & { engine?: OnnxGradientEngine },
): Promise<EvasionResult> {
  const p = preparePgd(model, x, y, rows, options);
  const engine = options.engine;
  if (engine === undefined)
    return await runStepsAsync(batchedSteps(p.model, x, p.labels, rows, p.batchSize, p.ascent));
  if (p.ascent.loss !== 'ce' || p.ascent.targeted)
    throw invalidArgument(
      'engine',
      'no engine with a targeted attack or a loss other than ce',
      p.ascent.loss,
    );
  await checkEngine(engine, p.model, x, p.labels, rows);
  const d = p.model.inputs;
  const parts: Ascended[] = [];
  for (let s = 0; s < rows; s += p.batchSize) {
    const e = Math.min(rows, s + p.batchSize);
    parts.push(
      await ascendEngine(engine, p.model, x.subarray(s * d, e * d), p.labels.subarray(s, e), e - s, p.ascent),
    );
  }
  return gather(parts, x, rows, d, p.batchSize, p.ascent);
}

/** Refuses an engine whose logits are not the model's (opened for another network). */
async function checkEngine(
  engine: OnnxGradientEngine,
  model: GradientModel,
  x: Float32Array,
  labels: Int32Array,
  rows: number,
): Promise<void> {
  const n = Math.min(rows, 4);
  const xs = x.subarray(0, n * model.inputs);
  let got: Float32Array;
  try {
    got = (await engine.inputGradient(xs, labels.subarray(0, n), n)).logits;
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'ERR_INVALID_ARGUMENT')
      throw invalidArgument('engine', `an engine for the model's network (${e.message})`, model.name);
    throw e;
  }
  const want = model.logits(xs, n);
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as number;
    if (got.length !== want.length || Math.abs((got[i] as number) - w) > 1e-3 * (1 + Math.abs(w)))
      throw invalidArgument('engine', "an engine for the model's network (its logits differ)", model.name);
  }
}

/**
 * The fast gradient sign method: one step of size eps along the sign of the loss gradient (L-inf), or
 * along the gradient normalised in the scaled L2 norm (the fast gradient method), then projected onto
 * the valid range. On a linear model under L-inf with no range limits this is exactly the worst case
 * within the ball (the loss is monotone in w·x, and sign(w) maximises w·delta over the box).
 */
export function fgsm(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: FgsmOptions,
): EvasionResult {
  return runSteps(fgsmSteps(model, x, y, rows, options));
}

/** {@link fgsm}, giving the event loop a turn between batches (at most every 50 ms); the same result. */
export async function fgsmAsync(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: FgsmOptions,
): Promise<EvasionResult> {
  return await runStepsAsync(fgsmSteps(model, x, y, rows, options));
}

function* fgsmSteps(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: FgsmOptions,
): Steps<EvasionResult> {
  const m = requireGradients(model, 'fgsm');
  const base = checkBase(m, x, y, rows, options, () => predictedClasses(m, x, rows));
  const batchSize = requireInteger('batchSize', options.batchSize ?? 512, 1);
  const loss = checkLoss(options.loss ?? 'ce', m.classes, base.targeted);
  const d = m.inputs;
  const k = m.classes;
  const out = new Float32Array(rows * d);
  for (let s = 0; s < rows; s += batchSize) {
    const e = Math.min(rows, s + batchSize);
    const n = e - s;
    const x0 = x.subarray(s * d, e * d);
    const labels = base.labels.subarray(s, e);
    const adv = x0.slice();
    if (base.eps > 0) {
      const { gradient } = m.gradient(x0, n, (z) => attackLoss(loss, z, labels, n, k, base.targeted).grad);
      gradientStep(adv, gradient, n, base.domain, base.norm, base.eps, 1);
      base.domain.project(adv, x0, n, base.norm, base.eps);
    }
    out.set(base.domain.repair(adv, x0, n, base.norm, base.eps), s * d);
    yield;
  }
  const success = attackSucceeded(m.logits(out, rows), base.labels, rows, k, base.targeted);
  return {
    x: out,
    rows,
    success,
    successRate: rate(success),
    distance: base.domain.distance(out, x, rows, base.norm),
    queries: 2,
  };
}
