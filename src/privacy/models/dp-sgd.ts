/**
 * DP-SGD (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang, "Deep learning with differential
 * privacy", CCS 2016) for the ML core's {@link Network}, as Opacus does it:
 *
 * 1. each step takes a Poisson sample of the training rows (each row independently with probability q,
 *    so the batch size varies), which is what the subsampled-Gaussian accountants assume;
 * 2. per-example gradients are clipped to L2 norm C and summed (the ML core's `clippedGradientSum`, from
 *    per-example norms without materialising per-example gradients);
 * 3. N(0, σ²C²) noise is added to every coordinate of the sum, which is divided by the EXPECTED batch
 *    size q·n (not the realised one, which would leak it; n the declared public count `publicRows`
 *    when given, never the private one), and the optimiser steps;
 * 4. the accountant composes `steps` subsampled-Gaussian events: ε(δ) by RDP (Balle et al. 2020
 *    conversion) or PLD.
 *
 * Given a target ε, the noise multiplier σ is calibrated by bisection for the planned number of steps
 * (epochs / q) before training starts; the budget (the accountant's ε for that σ, and δ) is spent from the
 * ledger before the first step. The guarantee is for add-or-remove-one-row neighbours. Noise comes from
 * the CSPRNG, hardened against floating-point attacks as Opacus's `secure_mode` (see noise.ts); the
 * Poisson sampling uses the same source.
 */
import { BulwarkError, invalidArgument, requireInteger, requireNumberIn } from '../../core/index.js';
import {
  Adam,
  checkLabelledData,
  EventLoopTurns,
  evaluate,
  type LabelledData,
  type Network,
  type Optimizer,
  Sgd,
} from '../../ml/index.js';
import { createAccountant } from '../accountants/accountants.js';
import { calibrateNoiseMultiplier } from '../accountants/calibrate.js';
import type { ComposedEvent, PrivacyEvent } from '../accountants/events.js';
import type { BudgetLedger, SpendReceipt } from '../ledger/ledger.js';
import { addGaussianNoise, type NoiseSource, noiseDetails, noiseOf } from '../mechanisms/noise.js';
import { requireDelta, requireEpsilon, requireNoiseMultiplier, requireSamplingRate } from '../params.js';

/** Options of {@link trainDpSgd}. */
export interface DpSgdOptions {
  /** Target ε: σ is calibrated to reach it (give this or `noiseMultiplier`). */
  epsilon?: number;
  /** δ of the guarantee (required; typically below 1/n). */
  delta: number;
  /** A fixed noise multiplier σ instead of a target ε. */
  noiseMultiplier?: number;
  /** Per-example clipping norm C (default 1). */
  clipNorm?: number;
  /** Poisson sampling rate q (default expectedBatchSize / n). */
  samplingRate?: number;
  /** Expected batch size q·n when `samplingRate` is not given (default 256). */
  expectedBatchSize?: number;
  /**
   * A row count declared PUBLIC (a known size or an upper bound) when `samplingRate` was derived from
   * it: the noisy sum is then divided by q·publicRows. Without it, by q·n with the actual count n,
   * which is then treated as public (as Opacus does). Under add-or-remove neighbours n is private, and
   * a step scaled by 1/(q·n) would carry it into every weight outside the accounted mechanism (Abadi
   * et al. 2016 divide by the lot size L, a public parameter).
   */
  publicRows?: number;
  /** Passes over the data (default 1): steps = ⌊epochs / q⌋. */
  epochs?: number;
  /** Accountant for calibration and the reported ε (default `rdp`). */
  accountant?: 'rdp' | 'pld';
  /** `sgd` (default, momentum 0.9 unless given) or `adam`, or an optimiser instance. */
  optimizer?: 'sgd' | 'adam' | Optimizer;
  /** Default 0.1 for SGD, 1e-3 for Adam. */
  learningRate?: number;
  momentum?: number;
  /** Largest number of rows run through the network at once (default 1,024): bounds memory. */
  maxPhysicalBatch?: number;
  /** Spend the budget from this ledger before the first step. */
  budget?: { ledger: BudgetLedger; dataset: string; analyst?: string };
  /** Noise and sampling source (default: the CSPRNG). */
  noise?: NoiseSource;
  /** Held-out data evaluated after each epoch (not private; it is not training data). */
  validation?: LabelledData;
  /** Called after each step and epoch. */
  onProgress?: (p: DpSgdProgress) => void;
  /**
   * Replaces each sampled row by a training input of its own before its gradient is taken (in place,
   * `rows` rows of `x`): adversarial training inside DP-SGD. The guarantee still holds when the new
   * row depends only on that row, the current weights (already a private output) and public settings:
   * its clipped gradient is then still a function of one row with norm at most C, which is all the
   * subsampled-Gaussian analysis uses. A perturbation that looks at other rows breaks it.
   */
  perturb?: (x: Float32Array, y: Int32Array, rows: number) => void;
  /**
   * Called after σ is calibrated and before the budget is spent (and before any data-dependent step),
   * with the (ε, δ) the run will spend; throwing refuses the run with nothing spent. For a caller that
   * checks the budget (`ledger.preview`) or runs a gate before the spend.
   */
  beforeSpend?: (plan: {
    epsilon: number;
    delta: number;
    noiseMultiplier: number;
    samplingRate: number;
    steps: number;
  }) => Promise<void> | void;
}

export interface DpSgdProgress {
  phase: 'step' | 'epoch';
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** Fraction of examples clipped so far in this epoch. */
  clippedFraction: number;
  valAccuracy?: number;
  /** Seconds of this epoch (epoch phase). */
  seconds?: number;
}

/** What {@link trainDpSgd} returns. */
export interface DpSgdResult {
  /** ε at δ by the chosen accountant, for the steps run. */
  epsilon: number;
  delta: number;
  accountant: 'rdp' | 'pld';
  noiseMultiplier: number;
  clipNorm: number;
  samplingRate: number;
  steps: number;
  epochs: number;
  /** The event composed `steps` times. */
  event: PrivacyEvent;
  /**
   * Per epoch: seconds, fraction clipped, validation accuracy when given. The clipped fraction is a
   * statistic of the private rows sampled, not covered by ε: for the operator tuning `clipNorm`, never
   * to be published (it is not written into the model).
   */
  history: Array<{ epoch: number; seconds: number; clippedFraction: number; valAccuracy?: number }>;
  receipt?: SpendReceipt;
}

/** Row indices of a Poisson sample with rate q over n rows, by geometric skips. */
export function poissonSample(n: number, q: number, source: NoiseSource): number[] {
  const out: number[] = [];
  if (q >= 1) {
    for (let i = 0; i < n; i++) out.push(i);
    return out;
  }
  const r = source.rng;
  const logQ = Math.log1p(-q);
  let i = -1;
  for (;;) {
    // Gap ~ Geometric(q): ⌊log(U)/log(1 − q)⌋ with U in (0, 1].
    const u = 1 - r.nextFloat();
    i += 1 + Math.floor(Math.log(u) / logQ);
    if (i >= n) return out;
    out.push(i);
  }
}

/** The ε of `steps` DP-SGD steps by an accountant. */
export function dpSgdAccountedEpsilon(
  noiseMultiplier: number,
  samplingRate: number,
  steps: number,
  delta: number,
  accountant: 'rdp' | 'pld',
): number {
  return createAccountant(accountant)
    .compose({ kind: 'gaussian', noiseMultiplier, samplingRate }, steps)
    .getEpsilon(delta);
}

/** What the accountant composes for a DP-SGD run, as the ledger's events: `steps` Poisson-subsampled Gaussian steps. */
export function dpSgdEvents(noiseMultiplier: number, samplingRate: number, steps: number): ComposedEvent[] {
  return [{ event: { kind: 'gaussian', noiseMultiplier, samplingRate }, count: steps }];
}

/**
 * Trains `net` in place with DP-SGD (see the module documentation).
 *
 * @example
 * ```ts
 * const net = mlp({ inputs: 784, hidden: [256], classes: 10 });
 * const r = await trainDpSgd(net, train, { epsilon: 3, delta: 1e-5, clipNorm: 1, epochs: 3, learningRate: 0.1 });
 * r.epsilon; // <= 3 (RDP)
 * ```
 */
export async function trainDpSgd(net: Network, data: LabelledData, o: DpSgdOptions): Promise<DpSgdResult> {
  checkLabelledData('training data', data, net.inputs, net.classes);
  const n = data.rows;
  const delta = requireDelta('delta', o.delta);
  const clipNorm = o.clipNorm ?? 1;
  if (!(clipNorm > 0) || !Number.isFinite(clipNorm))
    throw invalidArgument('clipNorm', 'a finite number > 0', clipNorm);
  const expected = o.expectedBatchSize ?? 256;
  const q =
    o.samplingRate !== undefined
      ? requireSamplingRate('samplingRate', o.samplingRate)
      : requireSamplingRate('expectedBatchSize / rows', requireInteger('expectedBatchSize', expected, 1) / n);
  const epochs = requireNumberIn('epochs', o.epochs ?? 1, 0, 1e6, { minExclusive: true });
  const steps = Math.floor(epochs / q);
  if (steps < 1) throw invalidArgument('epochs', `at least one step (epochs >= sampling rate ${q})`, epochs);
  const accountant = o.accountant ?? 'rdp';
  if (accountant !== 'rdp' && accountant !== 'pld')
    throw invalidArgument('accountant', 'rdp or pld', accountant);
  if ((o.epsilon === undefined) === (o.noiseMultiplier === undefined)) {
    throw invalidArgument('epsilon', 'either a target epsilon or a noise multiplier (not both)', o.epsilon);
  }
  const maxPhysical = requireInteger('maxPhysicalBatch', o.maxPhysicalBatch ?? 1024, 1);
  const publicRows = o.publicRows === undefined ? undefined : requireInteger('publicRows', o.publicRows, 1);
  const source = noiseOf(o.noise);

  let sigma: number;
  let epsilon: number;
  if (o.noiseMultiplier !== undefined) {
    sigma = requireNoiseMultiplier('noiseMultiplier', o.noiseMultiplier);
    epsilon = dpSgdAccountedEpsilon(sigma, q, steps, delta, accountant);
  } else {
    const c = calibrateNoiseMultiplier({
      targetEpsilon: requireEpsilon('epsilon', o.epsilon),
      delta,
      samplingRate: q,
      steps,
      accountant,
    });
    sigma = c.noiseMultiplier;
    epsilon = c.epsilon;
  }

  let opt: Optimizer;
  if (typeof o.optimizer === 'object') opt = o.optimizer;
  else if ((o.optimizer ?? 'sgd') === 'adam') opt = new Adam({ learningRate: o.learningRate ?? 1e-3 });
  else if (o.optimizer === undefined || o.optimizer === 'sgd')
    opt = new Sgd({ learningRate: o.learningRate ?? 0.1, momentum: o.momentum ?? 0.9 });
  else throw invalidArgument('optimizer', 'sgd, adam or an optimiser', o.optimizer);

  await o.beforeSpend?.({ epsilon, delta, noiseMultiplier: sigma, samplingRate: q, steps });
  // Spend before the first data-dependent computation.
  let receipt: SpendReceipt | undefined;
  if (o.budget) {
    receipt = await o.budget.ledger.spend({
      dataset: o.budget.dataset,
      ...(o.budget.analyst === undefined ? {} : { analyst: o.budget.analyst }),
      epsilon,
      delta,
      operation: 'train.dp-sgd',
      details: {
        accountant,
        noiseMultiplier: sigma,
        clipNorm,
        samplingRate: q,
        steps,
        ...noiseDetails(o.noise),
      },
      events: dpSgdEvents(sigma, q, steps),
    });
  }

  const d = net.inputs;
  const stepsPerEpoch = Math.max(1, Math.round(1 / q));
  const grad = new Float32Array(net.params.length);
  const bx = new Float32Array(maxPhysical * d);
  const by = new Int32Array(maxPhysical);
  const history: DpSgdResult['history'] = [];
  // The expected batch size from public facts only: q times the declared count when there is one.
  const scale = 1 / (q * (publicRows ?? n));
  let epoch = 1;
  let epochStart = performance.now();
  let seen = 0;
  let clipped = 0;
  const turns = new EventLoopTurns();
  for (let step = 1; step <= steps; step++) {
    const batch = poissonSample(n, q, source);
    grad.fill(0);
    for (let from = 0; from < batch.length; from += maxPhysical) {
      const to = Math.min(batch.length, from + maxPhysical);
      const rows = to - from;
      for (let i = from; i < to; i++) {
        const r = batch[i] as number;
        bx.set(data.x.subarray(r * d, (r + 1) * d), (i - from) * d);
        by[i - from] = data.y[r] as number;
      }
      o.perturb?.(bx.subarray(0, rows * d), by.subarray(0, rows), rows);
      const part = net.clippedGradientSum(bx.subarray(0, rows * d), by.subarray(0, rows), rows, clipNorm);
      for (let k = 0; k < grad.length; k++) grad[k] = (grad[k] as number) + (part.sum[k] as number);
      clipped += part.clipped;
    }
    seen += batch.length;
    addGaussianNoise(grad, sigma * clipNorm, source);
    for (let k = 0; k < grad.length; k++) grad[k] = (grad[k] as number) * scale;
    opt.step(net.params, grad);
    const clippedFraction = seen === 0 ? 0 : clipped / seen;
    o.onProgress?.({ phase: 'step', epoch, epochs: Math.ceil(epochs), step, steps, clippedFraction });
    // An epoch of per-example gradients on a large file is seconds of synchronous work: a turn of the
    // event loop at least every 50 ms lets Ctrl-C/SIGTERM stop it (the noise and steps are unchanged).
    if (step % stepsPerEpoch !== 0 && step !== steps && turns.due()) await turns.turn();
    if (step % stepsPerEpoch === 0 || step === steps) {
      const rec: DpSgdResult['history'][number] = {
        epoch,
        seconds: (performance.now() - epochStart) / 1000,
        clippedFraction,
      };
      if (o.validation) rec.valAccuracy = evaluate(net, o.validation).accuracy;
      history.push(rec);
      o.onProgress?.({ ...rec, phase: 'epoch', epochs: Math.ceil(epochs), step, steps });
      epoch++;
      seen = 0;
      clipped = 0;
      await turns.turn();
      epochStart = performance.now();
    }
  }
  for (const p of net.params) {
    if (!Number.isFinite(p)) {
      throw new BulwarkError(
        'ERR_TRAINING_DIVERGED',
        'DP-SGD produced non-finite weights (lower the learning rate?)',
      );
    }
  }
  const out: DpSgdResult = {
    epsilon,
    delta,
    accountant,
    noiseMultiplier: sigma,
    clipNorm,
    samplingRate: q,
    steps,
    epochs,
    event: { kind: 'gaussian', noiseMultiplier: sigma, samplingRate: q },
    history,
  };
  if (receipt) out.receipt = receipt;
  return out;
}
