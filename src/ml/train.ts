/**
 * Mini-batch training of a {@link Network}: seeded shuffle each epoch, Adam or SGD with momentum, L2,
 * class weights, early stopping on a validation split (best weights restored), and a progress callback.
 */
import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireNumberIn,
  requireOneOf,
  SeededRng,
} from '../core/index.js';
import type { Network } from './network.js';
import { Adam, type Optimizer, type OptimizerName, Sgd } from './optim.js';
import { EventLoopTurns } from './turns.js';

/** A labelled data set: `rows x cols` row-major features and integer class labels. */
export interface LabelledData {
  x: Float32Array;
  y: Int32Array;
  rows: number;
}

/** What `onProgress` receives: after every batch (`phase: 'batch'`) and after every epoch. */
export interface TrainProgress {
  phase: 'batch' | 'epoch';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Mean training loss so far in this epoch. */
  loss: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainOptions {
  /** Passes over the data (default 10). */
  epochs?: number;
  /** Examples per step (default 128). */
  batchSize?: number;
  /** `adam` (default), `sgd` (with momentum), or an optimiser instance. */
  optimizer?: OptimizerName | Optimizer;
  /** Default 1e-3 for Adam, 0.05 for SGD. */
  learningRate?: number;
  /** SGD momentum (default 0.9). */
  momentum?: number;
  /** L2 penalty on weights (default 0). */
  l2?: number;
  /**
   * Learning-rate schedule over the steps: `constant` (default) or `cosine` annealing from the
   * learning rate to 0 (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts).
   */
  schedule?: 'constant' | 'cosine';
  /** Seed of the shuffles and of the validation split (default 0). */
  seed?: number;
  /** A held-out set, or the fraction of the training rows to hold out (default: none). */
  validation?: LabelledData | number;
  /** Stop after this many epochs without a better validation loss (default: never); needs `validation`. */
  patience?: number;
  /** `balanced` (n / (k * n_c), as scikit-learn) or one weight per class; default none. */
  classWeights?: 'balanced' | readonly number[] | null;
  /**
   * Called after each batch and epoch. Training gives the event loop a turn after every epoch and,
   * within an epoch, at least every 50 ms (so a signal handler or a timer runs during a long epoch).
   */
  onProgress?: (p: TrainProgress) => void;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainResult {
  history: EpochRecord[];
  /** Epoch (1-based) whose weights the network holds at the end. */
  bestEpoch: number;
  stoppedEarly: boolean;
  /** Per-class weights used (all 1 without class weighting). */
  classWeights: number[];
}

/** Checks features are finite and labels valid with at least two classes present. */
export function checkLabelledData(name: string, d: LabelledData, inputs: number, classes: number): void {
  requireInteger(`${name}.rows`, d.rows, 1);
  if (d.x.length !== d.rows * inputs) {
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `${name}: ${d.x.length} feature values for ${d.rows} rows, expected ${inputs} per row`,
      { details: { parameter: name } },
    );
  }
  if (d.y.length !== d.rows) {
    throw new BulwarkError('ERR_SHAPE_MISMATCH', `${name}: ${d.y.length} labels for ${d.rows} rows`, {
      details: { parameter: name },
    });
  }
  for (let i = 0; i < d.x.length; i++) {
    if (!Number.isFinite(d.x[i])) {
      const row = Math.floor(i / inputs);
      const col = i % inputs;
      throw new BulwarkError('ERR_DATA_VALUE', `${name}: row ${row}, feature ${col} is ${d.x[i]}`, {
        details: { row, column: col },
      });
    }
  }
  const seen = new Set<number>();
  for (let i = 0; i < d.rows; i++) {
    const v = d.y[i] as number;
    if (v < 0 || v >= classes) {
      throw new BulwarkError(
        'ERR_LABEL_INVALID',
        `${name}: label of row ${i} is ${v}, expected a class in [0, ${classes - 1}]`,
        { details: { row: i } },
      );
    }
    seen.add(v);
  }
  if (seen.size < 2 && name === 'training data') {
    throw new BulwarkError('ERR_LABEL_INVALID', `${name}: labels have only one class (${[...seen][0]})`);
  }
}

/** Copies the rows `idx[from..to)` of `d` into `x`/`y` buffers. */
function gather(
  d: LabelledData,
  inputs: number,
  idx: ArrayLike<number>,
  from: number,
  to: number,
  x: Float32Array,
  y: Int32Array,
): void {
  for (let i = from; i < to; i++) {
    const r = idx[i] as number;
    x.set(d.x.subarray(r * inputs, (r + 1) * inputs), (i - from) * inputs);
    y[i - from] = d.y[r] as number;
  }
}

/** Splits off a seeded random `fraction` of the rows. */
export function splitValidation(
  d: LabelledData,
  inputs: number,
  fraction: number,
  seed: number,
): { train: LabelledData; validation: LabelledData } {
  requireNumberIn('validation', fraction, 0, 1, { minExclusive: true, maxExclusive: true });
  const perm = new SeededRng(seed).split().permutation(d.rows);
  const nVal = Math.max(1, Math.round(d.rows * fraction));
  if (nVal >= d.rows) throw invalidArgument('validation', 'a fraction leaving training rows', fraction);
  const mk = (from: number, to: number): LabelledData => {
    const x = new Float32Array((to - from) * inputs);
    const y = new Int32Array(to - from);
    gather(d, inputs, perm, from, to, x, y);
    return { x, y, rows: to - from };
  };
  return { validation: mk(0, nVal), train: mk(nVal, d.rows) };
}

/** Mean (unweighted) cross-entropy and accuracy of `net` on `d`, in chunks. */
export function evaluate(net: Network, d: LabelledData): { loss: number; accuracy: number } {
  const chunk = 4096;
  let loss = 0;
  let correct = 0;
  for (let s = 0; s < d.rows; s += chunk) {
    const e = Math.min(d.rows, s + chunk);
    const x = d.x.subarray(s * net.inputs, e * net.inputs);
    const y = d.y.subarray(s, e);
    const { losses, predictions } = net.lossesAndPredictions(x, y, e - s);
    for (const l of losses) loss += l;
    for (let i = 0; i < e - s; i++) if (predictions[i] === y[i]) correct++;
  }
  return { loss: loss / d.rows, accuracy: correct / d.rows };
}

/**
 * The optimiser a training run asks for: an instance as given, or `adam` (default, learning rate 1e-3)
 * or `sgd` (learning rate 0.05, momentum 0.9) built with the run's learning rate and momentum.
 */
export function resolveOptimizer(options: {
  optimizer?: OptimizerName | Optimizer;
  learningRate?: number;
  momentum?: number;
}): Optimizer {
  if (typeof options.optimizer === 'object') return options.optimizer;
  const name = requireOneOf('optimizer', options.optimizer ?? 'adam', ['adam', 'sgd'] as const);
  return name === 'adam'
    ? new Adam({ learningRate: options.learningRate ?? 1e-3 })
    : new Sgd({ learningRate: options.learningRate ?? 0.05, momentum: options.momentum ?? 0.9 });
}

/** Trains `net` in place on `data`; resolves when done. */
export async function train(
  net: Network,
  data: LabelledData,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const epochs = requireInteger('epochs', options.epochs ?? 10, 1);
  const batchSize = requireInteger('batchSize', options.batchSize ?? 128, 1);
  const l2 = requireNumberIn('l2', options.l2 ?? 0, 0, Number.MAX_VALUE);
  const seed = requireInteger('seed', options.seed ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const patience =
    options.patience === undefined ? Infinity : requireInteger('patience', options.patience, 1);
  if (options.patience !== undefined && options.validation === undefined) {
    throw invalidArgument('patience', 'a validation set or fraction alongside', options.patience);
  }
  const inputs = net.inputs;
  checkLabelledData('training data', data, inputs, net.classes);
  let trainSet = data;
  let valSet: LabelledData | null = null;
  if (typeof options.validation === 'number') {
    const s = splitValidation(data, inputs, options.validation, seed);
    trainSet = s.train;
    valSet = s.validation;
  } else if (options.validation !== undefined) {
    checkLabelledData('validation data', options.validation, inputs, net.classes);
    valSet = options.validation;
  }
  const classWeights = resolveClassWeights(options.classWeights ?? null, trainSet, net.classes);
  const weighted = classWeights.some((w) => w !== 1);

  const opt = resolveOptimizer(options);

  const schedule = requireOneOf('schedule', options.schedule ?? 'constant', ['constant', 'cosine'] as const);
  const baseLr = opt.learningRate;
  const rng = new SeededRng(seed);
  const n = trainSet.rows;
  const batches = Math.ceil(n / batchSize);
  const totalSteps = epochs * batches;
  let step = 0;
  const bx = new Float32Array(batchSize * inputs);
  const by = new Int32Array(batchSize);
  const bw = new Float32Array(batchSize);
  const gradBuf = new Float32Array(net.params.length);
  const history: EpochRecord[] = [];
  let best = { loss: Infinity, epoch: 0, params: null as Float32Array | null };
  let stoppedEarly = false;
  const turns = new EventLoopTurns();

  for (let epoch = 1; epoch <= epochs; epoch++) {
    const perm = rng.permutation(n);
    let lossSum = 0;
    let seen = 0;
    for (let b = 0; b < batches; b++) {
      const from = b * batchSize;
      const to = Math.min(n, from + batchSize);
      const rows = to - from;
      gather(trainSet, inputs, perm, from, to, bx, by);
      const xb = rows === batchSize ? bx : bx.subarray(0, rows * inputs);
      const yb = rows === batchSize ? by : by.subarray(0, rows);
      let sw: Float32Array | null = null;
      if (weighted) {
        sw = bw.subarray(0, rows);
        for (let i = 0; i < rows; i++) sw[i] = classWeights[yb[i] as number] as number;
      }
      const { loss, gradient } = net.lossAndGradient(xb, yb, rows, {
        l2,
        sampleWeights: sw,
        gradientOut: gradBuf,
      });
      if (!Number.isFinite(loss)) {
        throw new BulwarkError(
          'ERR_TRAINING_DIVERGED',
          `training diverged at epoch ${epoch}, batch ${b + 1}: loss is ${loss} (lower the learning rate?)`,
          { details: { epoch, batch: b + 1 } },
        );
      }
      if (schedule === 'cosine')
        opt.learningRate = 0.5 * baseLr * (1 + Math.cos((Math.PI * step) / totalSteps));
      step++;
      opt.step(net.params, gradient);
      lossSum += loss * rows;
      seen += rows;
      options.onProgress?.({ phase: 'batch', epoch, epochs, batch: b + 1, batches, loss: lossSum / seen });
      // One epoch of an MLP on a large file is seconds of synchronous work: Ctrl-C/SIGTERM must not wait.
      if (turns.due()) await turns.turn();
    }
    const rec: EpochRecord = { epoch, loss: lossSum / seen };
    if (valSet !== null) {
      const ev = evaluate(net, valSet);
      rec.valLoss = ev.loss;
      rec.valAccuracy = ev.accuracy;
      if (ev.loss < best.loss) best = { loss: ev.loss, epoch, params: net.params.slice() };
      else if (epoch - best.epoch >= patience) stoppedEarly = true;
    }
    history.push(rec);
    options.onProgress?.({ ...rec, phase: 'epoch', epochs, batch: batches, batches });
    await turns.turn();
    if (stoppedEarly) break;
  }
  opt.learningRate = baseLr;
  for (const p of net.params) {
    if (!Number.isFinite(p)) {
      throw new BulwarkError(
        'ERR_TRAINING_DIVERGED',
        'training produced non-finite weights (lower the learning rate?)',
      );
    }
  }
  let bestEpoch = history.length;
  if (best.params !== null && best.epoch !== history.length) {
    net.params.set(best.params);
    bestEpoch = best.epoch;
  }
  return { history, bestEpoch, stoppedEarly, classWeights };
}

/** Per-class weights: all 1, scikit-learn's `balanced` (n / (k n_c)), or given. */
export function resolveClassWeights(
  cw: 'balanced' | readonly number[] | null,
  d: LabelledData,
  classes: number,
): number[] {
  if (cw === null) return new Array<number>(classes).fill(1);
  if (cw === 'balanced') {
    const counts = new Float64Array(classes);
    for (let i = 0; i < d.rows; i++) counts[d.y[i] as number] = (counts[d.y[i] as number] as number) + 1;
    return Array.from(counts, (c) => (c === 0 ? 0 : d.rows / (classes * c)));
  }
  if (!Array.isArray(cw) || cw.length !== classes) {
    throw new BulwarkError(
      'ERR_LABEL_INVALID',
      `classWeights: expected ${classes} weights (one per class), got ${Array.isArray(cw) ? cw.length : String(cw)}`,
    );
  }
  cw.forEach((w, i) => {
    requireNumberIn(`classWeights[${i}]`, w, 0, Number.MAX_VALUE);
  });
  return [...cw];
}
