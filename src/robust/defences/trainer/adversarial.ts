/**
 * Adversarial training: the defence that makes a model itself robust, rather than detecting attacks.
 *
 * - `pgd`: Madry et al., "Towards deep learning models resistant to adversarial attacks" (ICLR 2018):
 *   min_theta E max_{||delta|| <= eps} CE(f(x + delta), y), the inner maximum approximated by PGD from a
 *   random start (the final iterate, as in the paper), against the current weights at every batch.
 *   `ratio` < 1 mixes clean and adversarial rows in each batch (ART's `ratio`).
 * - `trades`: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically principled trade-off between
 *   robustness and accuracy" (ICML 2019): CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL
 *   term by PGD started at x + 0.001 N(0, I). The gradient flows through both f(x) and f(x'), as in the
 *   authors' code; beta (default 6) trades clean accuracy for robustness.
 *
 * Both keep every adversarial point inside the eps-ball, the valid range and the schema's rules (see
 * ../../domain.ts), so a tabular model is trained against changes an attacker can really make.
 */
import {
  BulwarkError,
  invalidArgument,
  type Rng,
  requireInteger,
  requireNumberIn,
  requireOneOf,
  SeededRng,
} from '../../../core/index.js';
import {
  checkLabelledData,
  EventLoopTurns,
  evaluate,
  type LabelledData,
  type Network,
  OnnxGradientEngine,
  type Optimizer,
  type PgdBox,
  resolveClassWeights,
  resolveOptimizer,
} from '../../../ml/index.js';
import { checkStepSize } from '../../attacks/evasion/common.js';
import { gradientStep } from '../../attacks/evasion/pgd.js';
import { InputDomain, NORMS, type Norm } from '../../domain.js';
import { attackLoss } from '../../losses.js';
import { networkModel } from '../../model.js';

export type AdversarialMethod = 'pgd' | 'trades';
export const ADVERSARIAL_METHODS: readonly AdversarialMethod[] = ['pgd', 'trades'];

/**
 * Compute engine of the PGD steps: `js` (the network's own WebAssembly SIMD kernels), `onnxruntime`
 * (ONNX Runtime's MLAS GEMM through ../../../ml/onnx/gradient-engine.ts, 2-3x faster on large MLPs;
 * ReLU/softmax networks, PGD or TRADES under L-inf without one-hot groups), or `auto` (the default:
 * ONNX Runtime when the run qualifies and onnxruntime-node loads, else `js`). Both compute the same steps within
 * float32 rounding (test/robust/onnx-engine.test.ts).
 */
export type AdversarialEngine = 'auto' | 'js' | 'onnxruntime';
export const ADVERSARIAL_ENGINES: readonly AdversarialEngine[] = ['auto', 'js', 'onnxruntime'];

/** Options of {@link adversarialTrain}. */
export interface AdversarialTrainOptions {
  /** `pgd` (Madry) or `trades` (Zhang). */
  method: AdversarialMethod;
  /** Budget of the training attack, in the domain's scale units. */
  eps: number;
  /** `inf` (default) or `2`. */
  norm?: Norm;
  /** PGD steps of the inner maximisation (default 10). */
  steps?: number;
  /** Step size (default 2.5 * eps / steps), at most eps. */
  stepSize?: number;
  /** TRADES's beta (default 6). */
  beta?: number;
  /** PGD training: share of each batch replaced by adversarial rows (default 1, as Madry et al.). */
  ratio?: number;
  /** Valid inputs and the attacker's freedom (default: unbounded). */
  domain?: InputDomain;
  /** Epochs (default 10). */
  epochs?: number;
  /** Clean epochs before adversarial ones (default 0). */
  warmupEpochs?: number;
  /** Epochs over which eps grows linearly from eps/epochs to eps (default 0: full eps at once). */
  epsRampEpochs?: number;
  batchSize?: number;
  /**
   * Skip each epoch's last partial batch (PyTorch's `drop_last`; Croce et al.'s train.py does, 60,000 =
   * 468 x 128 + 96). Default false: every row is trained on every epoch.
   */
  dropLast?: boolean;
  /** `adam` (default, lr 1e-3) or `sgd` (lr 0.05, momentum 0.9), or an instance. */
  optimizer?: 'adam' | 'sgd' | Optimizer;
  learningRate?: number;
  /**
   * From epoch `epoch` (1-based) on, the learning rate times `factor` (Croce et al., AISTATS 2019: x0.1
   * for the last 10 % of the epochs). Default: none.
   */
  learningRateDrop?: { epoch: number; factor: number };
  /**
   * Train on the weights but return their exponential moving average (Polyak averaging; Gowal, Qin,
   * Uesato, Mann & Kohli, "Uncovering the limits of adversarial training against norm-bounded
   * adversarial examples", 2020, §4.3, and Rebuffi et al. 2021 use it for robust models): after each
   * step avg <- d avg + (1 - d) theta with d = min(decay, (1 + t) / (10 + t)) at step t (TensorFlow's
   * ExponentialMovingAverage with num_updates, so the first steps' weights fade quickly). Each epoch's
   * validation accuracy is the average's. Default: none (the last step's weights).
   */
  weightAverage?: { decay: number };
  /** Compute engine of the PGD steps (default `auto`). */
  engine?: AdversarialEngine;
  l2?: number;
  /** `balanced` or per-class weights on the loss (default none). */
  classWeights?: 'balanced' | readonly number[] | null;
  seed?: number;
  /** Held-out data for clean accuracy after each epoch. */
  validation?: LabelledData;
  onProgress?: (p: AdversarialProgress) => void;
}

export interface AdversarialProgress {
  phase: 'batch' | 'epoch';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Mean training loss so far this epoch (the method's objective). */
  loss: number;
}

export interface AdversarialEpoch {
  epoch: number;
  loss: number;
  /** eps used this epoch (0 during warm-up). */
  eps: number;
  /** Accuracy on the adversarial training rows crafted this epoch (robust training accuracy). */
  adversarialAccuracy: number;
  seconds: number;
  validationAccuracy?: number;
}

export interface AdversarialTrainResult {
  method: AdversarialMethod;
  history: AdversarialEpoch[];
  /** The engine the PGD steps ran on. */
  engine: 'js' | 'onnxruntime';
  /** The moving average the network now holds (weightAverage), over `steps` optimiser steps; or null. */
  weightAverage: { decay: number; steps: number } | null;
}

/** `fn`'s result with `weights` in `net.params` for its duration (restored after, even on a throw). */
function withWeights<T>(net: Network, weights: Float32Array, fn: () => T): T {
  const saved = net.params.slice();
  net.params.set(weights);
  try {
    return fn();
  } finally {
    net.params.set(saved);
  }
}

interface Checked {
  method: AdversarialMethod;
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  beta: number;
  ratio: number;
  domain: InputDomain;
  epochs: number;
  warmup: number;
  ramp: number;
  batchSize: number;
  dropLast: boolean;
  l2: number;
  seed: number;
  engine: AdversarialEngine;
  drop: { epoch: number; factor: number } | null;
  averageDecay: number | null;
}

function check(net: Network, o: AdversarialTrainOptions): Checked {
  const method = requireOneOf('method', o.method, ADVERSARIAL_METHODS);
  const eps = requireNumberIn('eps', o.eps, 0, Number.MAX_VALUE, { minExclusive: true });
  const norm = requireOneOf('norm', o.norm ?? 'inf', NORMS);
  const steps = requireInteger('steps', o.steps ?? 10, 1);
  const stepSize = checkStepSize(o.stepSize ?? Math.min(eps, (2.5 * eps) / steps), eps);
  const beta = requireNumberIn('beta', o.beta ?? 6, 0, Number.MAX_VALUE);
  const ratio = requireNumberIn('ratio', o.ratio ?? 1, 0, 1, { minExclusive: true });
  if (o.ratio !== undefined && method !== 'pgd')
    throw invalidArgument('ratio', 'only with method pgd', o.ratio);
  if (o.beta !== undefined && method !== 'trades')
    throw invalidArgument('beta', 'only with method trades', o.beta);
  const domain = o.domain ?? new InputDomain({ inputs: net.inputs });
  if (!(domain instanceof InputDomain) || domain.inputs !== net.inputs) {
    throw invalidArgument('domain', `an InputDomain of ${net.inputs} features`, domain);
  }
  const epochs = requireInteger('epochs', o.epochs ?? 10, 1);
  const warmup = requireInteger('warmupEpochs', o.warmupEpochs ?? 0, 0, epochs - 1);
  const ramp = requireInteger('epsRampEpochs', o.epsRampEpochs ?? 0, 0, epochs - warmup);
  const batchSize = requireInteger('batchSize', o.batchSize ?? 128, 1);
  const dropLast = o.dropLast ?? false;
  if (typeof dropLast !== 'boolean') throw invalidArgument('dropLast', 'a boolean', dropLast);
  const l2 = requireNumberIn('l2', o.l2 ?? 0, 0, Number.MAX_VALUE);
  const seed = requireInteger('seed', o.seed ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const engine = requireOneOf('engine', o.engine ?? 'auto', ADVERSARIAL_ENGINES);
  let drop: Checked['drop'] = null;
  if (o.learningRateDrop !== undefined) {
    drop = {
      epoch: requireInteger('learningRateDrop.epoch', o.learningRateDrop.epoch, 1, epochs),
      factor: requireNumberIn('learningRateDrop.factor', o.learningRateDrop.factor, 0, 1, {
        minExclusive: true,
      }),
    };
  }
  const averageDecay =
    o.weightAverage === undefined
      ? null
      : requireNumberIn('weightAverage.decay', o.weightAverage.decay, 0, 1, {
          minExclusive: true,
          maxExclusive: true,
        });
  return {
    averageDecay,
    method,
    eps,
    norm,
    steps,
    stepSize,
    beta,
    ratio,
    domain,
    epochs,
    warmup,
    ramp,
    batchSize,
    dropLast,
    l2,
    seed,
    engine,
    drop,
  };
}

/** Why this run cannot use ONNX Runtime for its PGD steps, or null when it can. */
function engineUnsupported(net: Network, c: Checked): string | null {
  if (c.norm !== 'inf') return `norm ${c.norm} (only inf)`;
  if (c.domain.groups.length > 0) return 'a domain with one-hot groups';
  return OnnxGradientEngine.unsupported(net);
}

/**
 * The ONNX Runtime engine when `engine` asks for it (ERR_INVALID_ARGUMENT naming what does not
 * qualify) or `auto` finds the run qualifies and onnxruntime-node loads; null for the JS path.
 */
async function openEngine(net: Network, c: Checked): Promise<OnnxGradientEngine | null> {
  if (c.engine === 'js') return null;
  const why = engineUnsupported(net, c);
  if (why !== null) {
    if (c.engine === 'onnxruntime') throw invalidArgument('engine', `js or auto for ${why}`, c.engine);
    return null;
  }
  try {
    return await OnnxGradientEngine.create(net);
  } catch (e) {
    if (c.engine === 'onnxruntime') throw e;
    return null;
  }
}

/** Softmax of wide logits (rows x k). */
function softmaxRows(z: Float32Array, rows: number, k: number): Float64Array {
  const p = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j] as number);
    let s = 0;
    for (let j = 0; j < k; j++) {
      const e = Math.exp((z[r * k + j] as number) - m);
      p[r * k + j] = e;
      s += e;
    }
    for (let j = 0; j < k; j++) p[r * k + j] = (p[r * k + j] as number) / s;
  }
  return p;
}

/** The network's logits in k-column form ([0, z] for a sigmoid head). */
function wideLogits(net: Network, z: Float32Array, rows: number): Float32Array {
  if (net.outputs !== 1) return z;
  const w = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) w[2 * r + 1] = z[r] as number;
  return w;
}

/** d loss / d wide logits back to the network's own output width. */
function narrow(net: Network, dz: Float32Array, rows: number): Float32Array {
  if (net.outputs !== 1) return dz;
  return Float32Array.from({ length: rows }, (_, r) => dz[2 * r + 1] as number);
}

/**
 * The inner maximisation's ascent (PGD and TRADES): `c.steps` gradient steps on the loss whose logit
 * gradient is `lossGrad`, from the start `x` (changed in place), each projected back to the feasible set
 * around `x0` (step size scaled to `eps`, which the ramp may make smaller than `c.eps`); the final
 * iterate repaired to the schema's rules.
 */
function ascendFrom(
  net: Network,
  x: Float32Array,
  x0: Float32Array,
  rows: number,
  c: Checked,
  eps: number,
  lossGrad: (z: Float32Array) => Float32Array,
): Float32Array {
  const model = networkModel(net);
  const stepSize = (c.stepSize * eps) / c.eps;
  for (let t = 0; t < c.steps; t++) {
    const { gradient } = model.gradient(x, rows, lossGrad);
    gradientStep(x, gradient, rows, c.domain, c.norm, stepSize, Math.min(1, 2.5 / c.steps));
    c.domain.project(x, x0, rows, c.norm, eps);
  }
  return c.domain.repair(x, x0, rows, c.norm, eps);
}

/** PGD's final iterate (Madry et al. train on it), from a random start; repaired to the schema's rules. */
function pgdIterate(
  net: Network,
  x0: Float32Array,
  y: Int32Array,
  rows: number,
  c: Checked,
  eps: number,
  rng: Rng,
): Float32Array {
  const x = c.domain.randomStart(x0, rows, c.norm, eps, rng);
  return ascendFrom(net, x, x0, rows, c, eps, (z) => attackLoss('ce', z, y, rows, net.classes).grad);
}

/**
 * The engine's PGD box for rows `x0` at budget `eps`: the eps-ball within the valid range, and the
 * per-feature step ({@link ascendFrom}'s step scaled to `eps`, 0 for the features the attacker cannot
 * change).
 */
function engineBox(x0: Float32Array, rows: number, c: Checked, eps: number): PgdBox {
  const stepSize = (c.stepSize * eps) / c.eps;
  const { lower, upper } = c.domain.linfBox(x0, rows, eps);
  const step = Float32Array.from(c.domain.scale, (s, j) => (c.domain.mutable[j] === 1 ? stepSize * s : 0));
  return { lower, upper, step };
}

/** {@link pgdIterate} on ONNX Runtime: the same random start, steps, projection and repair. */
async function pgdIterateEngine(
  engine: OnnxGradientEngine,
  x0: Float32Array,
  y: Int32Array,
  rows: number,
  c: Checked,
  eps: number,
  rng: Rng,
): Promise<Float32Array> {
  const x = c.domain.randomStart(x0, rows, c.norm, eps, rng);
  const xe = await engine.pgd(x, y, rows, engineBox(x0, rows, c, eps), c.steps);
  return c.domain.repair(xe, x0, rows, c.norm, eps);
}

/** Options of {@link pgdTrainingInputs}. */
export interface PgdTrainingInputsOptions {
  /** Budget of the attack, in the domain's scale units (> 0). */
  eps: number;
  /** `inf` (default) or `2`. */
  norm?: Norm;
  /** PGD steps (default 10). */
  steps?: number;
  /** Step size (default 2.5 * eps / steps), at most eps. */
  stepSize?: number;
  /** Valid inputs and the attacker's freedom (default: unbounded). */
  domain?: InputDomain;
}

/**
 * Madry et al.'s training inputs for one batch, in place: each row replaced by the final PGD iterate
 * from a random start against the current weights, inside the eps-ball, the valid range and the
 * schema's rules. Each row's result depends only on that row, the weights and `rng` (no batch
 * statistics), which is what DP-SGD's `perturb` hook requires.
 */
export function pgdTrainingInputs(
  net: Network,
  x: Float32Array,
  y: Int32Array,
  rows: number,
  o: PgdTrainingInputsOptions,
  rng: Rng,
): void {
  const c = check(net, { method: 'pgd', ...o });
  if (x.length !== rows * net.inputs)
    throw invalidArgument('x', `${rows} rows of ${net.inputs} features`, x.length);
  x.set(pgdIterate(net, x, y, rows, c, c.eps, rng));
}

/** TRADES's start x + 0.001 N(0, I) (in scale units), projected to the feasible set around `x0`. */
function tradesStart(x0: Float32Array, rows: number, c: Checked, eps: number, rng: Rng): Float32Array {
  const d = c.domain.inputs;
  const x = x0.slice();
  const scale = c.domain.scale;
  for (let i = 0; i < x.length; i++)
    x[i] = (x[i] as number) + 0.001 * rng.normal() * (scale[i % d] as number);
  c.domain.project(x, x0, rows, c.norm, eps);
  return x;
}

/** TRADES's inner maximisation of KL(p(x) || p(x')) from {@link tradesStart}. */
function tradesIterate(
  net: Network,
  x0: Float32Array,
  pNat: Float64Array,
  rows: number,
  c: Checked,
  eps: number,
  rng: Rng,
): Float32Array {
  const k = net.classes;
  const x = tradesStart(x0, rows, c, eps, rng);
  // d KL(p || p') / d z' = p' - p.
  return ascendFrom(net, x, x0, rows, c, eps, (z) => {
    const q = softmaxRows(z, rows, k);
    const g = new Float32Array(rows * k);
    for (let i = 0; i < g.length; i++) g[i] = (q[i] as number) - (pNat[i] as number);
    return g;
  });
}

/**
 * One TRADES batch on ONNX Runtime: the inner maximisation is PGD on the cross-entropy against the
 * clean probabilities p (its input gradient is p' - p, the KL's), and the outer gradient is one
 * weighted cross-entropy pass over the stacked batch [x; x'] with {@link tradesTargets}'s targets.
 * The same start, steps, projection and repair as {@link tradesIterate} and the same objective as
 * {@link tradesLossAndGradient}, within float32 rounding.
 */
async function tradesStepEngine(
  engine: OnnxGradientEngine,
  k: number,
  x0: Float32Array,
  y: Int32Array,
  w: Float32Array | null,
  rows: number,
  c: Checked,
  eps: number,
  rng: Rng,
): Promise<{ loss: number; gradient: Float32Array; advCorrect: number }> {
  const zn = (await engine.inputGradient(x0, y, rows)).logits;
  const pNat = Float32Array.from(softmaxRows(zn, rows, k));
  const start = tradesStart(x0, rows, c, eps, rng);
  const xe = await engine.pgd(start, { soft: pNat }, rows, engineBox(x0, rows, c, eps), c.steps);
  const xa = c.domain.repair(xe, x0, rows, c.norm, eps);
  const za = (await engine.inputGradient(xa, y, rows)).logits;
  const t = tradesTargets(zn, za, y, w, rows, k, c.beta);
  const both = new Float32Array(2 * x0.length);
  both.set(x0, 0);
  both.set(xa, x0.length);
  const { gradient } = await engine.weightedGradient(both, { soft: t.targets }, 2 * rows, t.weights);
  return { loss: t.loss, gradient, advCorrect: t.advCorrect };
}

/**
 * One step of the weights' exponential moving average, in place: avg <- d avg + (1 - d) params with
 * d = min(decay, (1 + t) / (10 + t)) at step `t` (0-based), TensorFlow's ExponentialMovingAverage.
 */
function updateWeightAverage(avg: Float32Array, params: Float32Array, decay: number, t: number): void {
  const d = Math.min(decay, (1 + t) / (10 + t));
  for (let i = 0; i < avg.length; i++) avg[i] = d * (avg[i] as number) + (1 - d) * (params[i] as number);
}

/** Correct predictions among `rows` of wide logits. */
function correct(z: Float32Array, y: Int32Array, rows: number, k: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) {
    let b = 0;
    for (let j = 1; j < k; j++) if ((z[r * k + j] as number) > (z[r * k + b] as number)) b = j;
    if (b === y[r]) n++;
  }
  return n;
}

/**
 * TRADES's objective CE(f(x), y) + beta KL(p || p') on one batch (mean over the batch, weighted by `w`)
 * from the clean logits `zn` and the adversarial logits `za` (wide, k columns), written as the targets
 * and weights of one cross-entropy over the stacked rows [x; x'] whose gradient is the objective's,
 * through both branches:
 * - clean row r: weight c_r = w_r / rows, target y_r - beta p (g - sum_j p_j g_j) with
 *   g = log p - log p', so that c_r (softmax(z) - target) = c_r (p - y + beta d KL / d z);
 * - adversarial row r: weight beta c_r, target p (d KL / d z' = p' - p).
 * Also the objective's value and the adversarial rows' correct predictions.
 */
function tradesTargets(
  zn: Float32Array,
  za: Float32Array,
  y: Int32Array,
  w: Float32Array | null,
  rows: number,
  k: number,
  beta: number,
): { loss: number; targets: Float32Array; weights: Float32Array; advCorrect: number } {
  const p = softmaxRows(zn, rows, k);
  const q = softmaxRows(za, rows, k);
  const targets = new Float32Array(2 * rows * k);
  const weights = new Float32Array(2 * rows);
  const g = new Float64Array(k);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    const c = (w === null ? 1 : (w[r] as number)) / rows;
    const t = y[r] as number;
    let kl = 0;
    for (let j = 0; j < k; j++) {
      const pj = Math.max(p[o + j] as number, 1e-30);
      g[j] = Math.log(pj) - Math.log(Math.max(q[o + j] as number, 1e-30));
      kl += pj * (g[j] as number);
    }
    loss += c * (-Math.log(Math.max(p[o + t] as number, 1e-30)) + beta * kl);
    for (let j = 0; j < k; j++) {
      const pj = p[o + j] as number;
      targets[o + j] = (j === t ? 1 : 0) - beta * pj * ((g[j] as number) - kl);
      targets[(rows + r) * k + j] = pj;
    }
    weights[r] = c;
    weights[rows + r] = beta * c;
  }
  return { loss, targets, weights, advCorrect: correct(za, y, rows, k) };
}

/**
 * TRADES objective on one batch and its parameter gradient (mean over the batch, weighted by `w`):
 * CE(f(x), y) + beta KL(p || p'), through both branches ({@link tradesTargets}).
 */
export function tradesLossAndGradient(
  net: Network,
  x: Float32Array,
  xAdv: Float32Array,
  y: Int32Array,
  w: Float32Array | null,
  rows: number,
  beta: number,
): { loss: number; gradient: Float32Array; advCorrect: number } {
  const k = net.classes;
  const cn = net.forward(x, rows);
  const ca = net.forward(xAdv, rows);
  const zn = wideLogits(net, cn.acts[cn.acts.length - 1] as Float32Array, rows);
  const za = wideLogits(net, ca.acts[ca.acts.length - 1] as Float32Array, rows);
  const t = tradesTargets(zn, za, y, w, rows, k, beta);
  // Each half's logit gradient weight x (softmax(z) - target).
  const dz = (z: Float32Array, half: number): Float32Array => {
    const s = softmaxRows(z, rows, k);
    const out = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      const c = t.weights[half * rows + r] as number;
      for (let j = 0; j < k; j++)
        out[r * k + j] = c * ((s[r * k + j] as number) - (t.targets[(half * rows + r) * k + j] as number));
    }
    return narrow(net, out, rows);
  };
  const gn = net.backward(cn, dz(zn, 0), { params: true }).params as Float32Array;
  const ga = net.backward(ca, dz(za, 1), { params: true }).params as Float32Array;
  for (let i = 0; i < gn.length; i++) gn[i] = (gn[i] as number) + (ga[i] as number);
  return { loss: t.loss, gradient: gn, advCorrect: t.advCorrect };
}

/**
 * Trains `net` in place with PGD adversarial training or TRADES. Resolves with the per-epoch history.
 *
 * @example
 * ```ts
 * const net = mlp({ inputs: 784, hidden: [256], classes: 10 });
 * await adversarialTrain(net, train, { method: 'pgd', eps: 0.1, steps: 40, stepSize: 0.01,
 *   domain: InputDomain.box(784), epochs: 10 });
 * ```
 */
export async function adversarialTrain(
  net: Network,
  data: LabelledData,
  options: AdversarialTrainOptions,
): Promise<AdversarialTrainResult> {
  const c = check(net, options);
  checkLabelledData('training data', data, net.inputs, net.classes);
  c.domain.check(data.x, data.rows, 'training data');
  if (options.validation) checkLabelledData('validation data', options.validation, net.inputs, net.classes);
  const classWeights = resolveClassWeights(options.classWeights ?? null, data, net.classes);
  const weighted = classWeights.some((v) => v !== 1);
  const opt = resolveOptimizer(options);
  const d = net.inputs;
  const k = net.classes;
  const rng = new SeededRng(c.seed);
  const attackRng = rng.split();
  const mask = net.weightMask();
  const n = data.rows;
  if (c.dropLast && n < c.batchSize)
    throw invalidArgument('dropLast', `false with fewer training rows (${n}) than batchSize`, true);
  const batches = c.dropLast ? Math.floor(n / c.batchSize) : Math.ceil(n / c.batchSize);
  const seen = c.dropLast ? batches * c.batchSize : n;
  const history: AdversarialEpoch[] = [];
  const baseRate = opt.learningRate;
  // The weights' moving average (weightAverage), and the steps taken so far.
  const average = c.averageDecay === null ? null : net.params.slice();
  let step = 0;
  const engine = await openEngine(net, c);
  // A batch's awaits (on ONNX Runtime) may resolve without a turn of the event loop, and the JS path has
  // none: a turn between batches when one is due, so a signal is handled within an epoch.
  const turns = new EventLoopTurns();
  try {
    for (let epoch = 1; epoch <= c.epochs; epoch++) {
      const t0 = performance.now();
      opt.learningRate = c.drop !== null && epoch >= c.drop.epoch ? baseRate * c.drop.factor : baseRate;
      const adv = epoch > c.warmup;
      const rampAt = epoch - c.warmup;
      const eps = !adv ? 0 : c.ramp > 0 && rampAt < c.ramp ? (c.eps * rampAt) / c.ramp : c.eps;
      const perm = rng.permutation(n);
      let lossSum = 0;
      let advRight = 0;
      let advSeen = 0;
      for (let b = 0; b < batches; b++) {
        const from = b * c.batchSize;
        const rows = Math.min(n, from + c.batchSize) - from;
        const xb = new Float32Array(rows * d);
        const yb = new Int32Array(rows);
        for (let i = 0; i < rows; i++) {
          const r = perm[from + i] as number;
          xb.set(data.x.subarray(r * d, (r + 1) * d), i * d);
          yb[i] = data.y[r] as number;
        }
        const sw = weighted ? Float32Array.from(yb, (v) => classWeights[v] as number) : null;
        let loss: number;
        let gradient: Float32Array;
        if (!adv) {
          ({ loss, gradient } =
            engine === null
              ? net.lossAndGradient(xb, yb, rows, { sampleWeights: sw })
              : await engine.lossAndGradient(xb, yb, rows, sw));
        } else if (c.method === 'pgd') {
          const nAdv = Math.max(1, Math.round(c.ratio * rows));
          const x0 = xb.subarray(0, nAdv * d);
          const y0 = yb.subarray(0, nAdv);
          const xa =
            engine === null
              ? pgdIterate(net, x0, y0, nAdv, c, eps, attackRng)
              : await pgdIterateEngine(engine, x0, y0, nAdv, c, eps, attackRng);
          // The batch's first nAdv rows become their adversarial points (x0 is not read again).
          xb.set(xa, 0);
          if (engine === null) {
            advRight += correct(wideLogits(net, net.logits(xa, nAdv), nAdv), y0, nAdv, k);
            ({ loss, gradient } = net.lossAndGradient(xb, yb, rows, { sampleWeights: sw }));
          } else {
            // The step's forward pass gives the adversarial rows' logits (before this update).
            const r = await engine.lossAndGradient(xb, yb, rows, sw);
            advRight += correct(r.logits.subarray(0, nAdv * k), y0, nAdv, k);
            ({ loss, gradient } = r);
          }
          advSeen += nAdv;
        } else {
          let r: { loss: number; gradient: Float32Array; advCorrect: number };
          if (engine === null) {
            const zn = wideLogits(net, net.logits(xb, rows), rows);
            const pNat = softmaxRows(zn, rows, k);
            const xa = tradesIterate(net, xb, pNat, rows, c, eps, attackRng);
            r = tradesLossAndGradient(net, xb, xa, yb, sw, rows, c.beta);
          } else {
            r = await tradesStepEngine(engine, k, xb, yb, sw, rows, c, eps, attackRng);
          }
          ({ loss, gradient } = r);
          advRight += r.advCorrect;
          advSeen += rows;
        }
        if (c.l2 > 0) {
          let sq = 0;
          for (let i = 0; i < gradient.length; i++) {
            if (mask[i] === 0) continue;
            const p = net.params[i] as number;
            gradient[i] = (gradient[i] as number) + c.l2 * p;
            sq += p * p;
          }
          loss += 0.5 * c.l2 * sq;
        }
        if (!Number.isFinite(loss)) {
          throw new BulwarkError(
            'ERR_TRAINING_DIVERGED',
            `adversarial training diverged at epoch ${epoch}, batch ${b + 1}: loss is ${loss} (lower the learning rate?)`,
            { details: { epoch, batch: b + 1 } },
          );
        }
        opt.step(net.params, gradient);
        if (average !== null) updateWeightAverage(average, net.params, c.averageDecay as number, step);
        step++;
        lossSum += loss * rows;
        options.onProgress?.({
          phase: 'batch',
          epoch,
          epochs: c.epochs,
          batch: b + 1,
          batches,
          loss: lossSum / (from + rows),
        });
        if (b + 1 < batches && turns.due()) await turns.turn();
      }
      const rec: AdversarialEpoch = {
        epoch,
        loss: lossSum / seen,
        eps,
        adversarialAccuracy: advSeen === 0 ? Number.NaN : advRight / advSeen,
        seconds: (performance.now() - t0) / 1000,
      };
      if (options.validation) {
        const v = options.validation;
        rec.validationAccuracy =
          average === null
            ? evaluate(net, v).accuracy
            : withWeights(net, average, () => evaluate(net, v).accuracy);
      }
      history.push(rec);
      options.onProgress?.({
        phase: 'epoch',
        epoch,
        epochs: c.epochs,
        batch: batches,
        batches,
        loss: rec.loss,
      });
      await turns.turn();
    }
    // The averaged weights are the model trained (only once every epoch has run: a failed run keeps
    // the weights it stopped at).
    if (average !== null) net.params.set(average);
    // The loss is checked before each step, so the last step's update is not: a step that overflows
    // the float32 weights (a learning rate far too high) returned a network of Infinity and NaN.
    for (const p of net.params) {
      if (!Number.isFinite(p))
        throw new BulwarkError(
          'ERR_TRAINING_DIVERGED',
          'adversarial training produced non-finite weights (lower the learning rate?)',
        );
    }
  } finally {
    opt.learningRate = baseRate;
    await engine?.close();
  }
  return {
    method: c.method,
    history,
    engine: engine === null ? 'js' : 'onnxruntime',
    weightAverage: c.averageDecay === null ? null : { decay: c.averageDecay, steps: step },
  };
}
