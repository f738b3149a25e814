/**
 * Training workflows on tabular data, shared by `bulwark train`, the demo, and the privacy and robustness
 * stages: label encoding, feature choice, a one-hot pipeline, standardisation folded into the model, a
 * seeded train/test split, training (Adam/SGD, L-BFGS, or adversarial), test metrics, and the ONNX model
 * with its preprocessing in the metadata.
 */
import { BulwarkError, bulwarkVersion, invalidArgument, SeededRng } from '../core/index.js';
import {
  type CellValue,
  type Dataset,
  heldOutSplit,
  Imputer,
  OneHotEncoder,
  Pipeline,
  type PreprocessStep,
  type Schema,
} from '../data/index.js';
import {
  type ActivationName,
  accuracy,
  averagePrecision,
  confusionMatrix,
  EventLoopTurns,
  fitLbfgsAsync,
  type LabelledData,
  logisticRegression,
  mlp,
  type Network,
  precisionRecallF1,
  resolveClassWeights,
  rocAuc,
  type TrainResult,
  toOnnx,
  train,
} from '../ml/index.js';
import { type AdversarialMethod, adversarialTrain, tabularDomain } from '../robust/index.js';

/** Metadata keys Bulwark writes into the ONNX files it trains (read back by `bulwark predict`). */
export const META_PIPELINE = 'bulwark.pipeline';
export const META_LABEL = 'bulwark.label';
export const META_CLASS_VALUES = 'bulwark.class_values';
/**
 * What `bulwark train` wrote about a protected training file (one with a Bulwark protection manifest
 * beside it): JSON `{"dataset": <its dataset id, or null>, "verified": <whether its rows were checked
 * against the manifest before training>}`. Never inherited by a model fine-tuned from this one.
 */
export const META_PROTECTED_DATA = 'bulwark.protected_data';

/** String columns with more distinct values than this are taken for identifiers and left out. */
export const MAX_CATEGORIES = 100;
const MISSING = '<missing>';

export interface TrainTabularOptions {
  label: string;
  model: 'logreg' | 'mlp';
  /** `adam` (default), `sgd` (with momentum) or `lbfgs` (full batch; `epochs` is then its iteration limit). */
  solver?: 'adam' | 'sgd' | 'lbfgs';
  hidden?: readonly number[];
  activation?: ActivationName;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  l2?: number;
  seed?: number;
  testFraction?: number;
  /**
   * How test rows are chosen: `permutation` (default), the first share of a seeded permutation;
   * `row-hash`, each row by a seeded hash of its own values (data's `heldOutSplit`, the split DP
   * training always uses), so a model trained this way is tested on the same rows as a DP model
   * trained on the same data, seed and share, and one row added or removed moves no other row.
   */
  split?: 'permutation' | 'row-hash';
  /**
   * An explicit split of the dataset's rows (0-based; overrides `testFraction` and `split`): rows in
   * neither list are left out. Sanitising uses it to retrain on fewer rows and test on the very rows the
   * first model was tested on.
   */
  rows?: { train: ArrayLike<number>; test: ArrayLike<number> };
  classWeights?: 'balanced' | null;
  /** Columns to use as features (default: every column but the label, minus identifier-like strings). */
  features?: readonly string[];
  /** Columns to leave out. */
  drop?: readonly string[];
  onProgress?: (done: number, total: number, info: Record<string, string | number>) => void;
  /** Adversarial training (src/robust): PGD (Madry) or TRADES within eps, schema-aware when a schema is given. */
  adversarial?: {
    method: AdversarialMethod;
    eps: number;
    steps?: number;
    schema?: Schema;
    /**
     * Input columns the attacker cannot change (their one-hot features too). Every other categorical
     * field may switch category at any budget (docs/robust.md), so a field left mutable here is one
     * the training attacker rewrites freely.
     */
    immutable?: readonly string[];
    /** Return the weights' moving average with this decay (see AdversarialTrainOptions.weightAverage). */
    weightAverage?: number;
  };
  /** A note for the user (columns left out). */
  note?: (message: string) => void;
  /** Extra ONNX metadata entries (e.g. `bulwark.sanitize`: what training-data sanitising removed). */
  metadata?: Readonly<Record<string, string>>;
}

export interface TabularMetrics {
  rows: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  rocAuc?: number;
  averagePrecision?: number;
  confusion: number[][];
}

export interface TrainTabularResult {
  network: Network;
  pipeline: Pipeline;
  classValues: string[];
  features: readonly string[];
  trainRows: number;
  test: TabularMetrics;
  /** The encoded held-out rows (features after the pipeline, labels as class indices), for evaluation and attacks. */
  testSet: LabelledData;
  /** Which rows of the input dataset are held out: `testSet` row i is dataset row `testRows[i]`. */
  testRows: Int32Array;
  /** The encoded training rows, for adversarial fine-tuning and membership inference (the members). */
  trainSet: LabelledData;
  training: TrainResult;
  /** The ONNX model's metadata entries (pipeline, label, class values, features, options' records). */
  metadata: Readonly<Record<string, string>>;
  /** The ONNX model (network + standardisation) with the pipeline and labels in its metadata. */
  onnx: Uint8Array;
}

/** The label column as class indices; the class values in index order. */
function encodeLabels(ds: Dataset, label: string): { y: Int32Array; classValues: string[] } {
  const col = ds.column(label);
  const raw: (string | null)[] =
    col.type === 'string'
      ? [...col.values]
      : Array.from(col.values, (v) => (Number.isFinite(v) ? String(v) : null));
  const missing = raw.indexOf(null);
  if (missing >= 0) {
    throw new BulwarkError('ERR_LABEL_INVALID', `label column "${label}": row ${missing + 1} has no value`, {
      details: { row: missing + 1, field: label },
    });
  }
  const values = [...new Set(raw as string[])];
  if (col.type === 'string') values.sort();
  else values.sort((a, b) => Number(a) - Number(b));
  if (values.length < 2) {
    throw new BulwarkError(
      'ERR_LABEL_INVALID',
      `label column "${label}" has only one class (${values[0] ?? 'none'}); a classifier needs two or more`,
      { details: { field: label } },
    );
  }
  if (values.length > 1000) {
    throw new BulwarkError(
      'ERR_LABEL_INVALID',
      `label column "${label}" has ${values.length} distinct values: is it a class label?`,
      { details: { field: label } },
    );
  }
  const index = new Map(values.map((v, i) => [v, i]));
  return { y: Int32Array.from(raw as string[], (v) => index.get(v) as number), classValues: values };
}

/** The feature pipeline: string columns imputed with a `<missing>` category and one-hot encoded. */
function buildPipeline(ds: Dataset, features: readonly string[]): Pipeline {
  const strings = features.filter((f) => ds.column(f).type === 'string');
  const steps: PreprocessStep[] = [];
  if (strings.length > 0) {
    steps.push(new Imputer({ columns: strings, strategy: 'constant', fillValue: MISSING }));
    steps.push(
      new OneHotEncoder({ columns: strings, handleUnknown: 'ignore', maxCategories: MAX_CATEGORIES }),
    );
  }
  return new Pipeline({ inputs: features, steps });
}

/** Throws ERR_DATA_VALUE for NaN or Infinity in a feature matrix, naming the row and the feature. */
function requireFiniteMatrix(m: Float32Array, features: readonly string[], what: string): void {
  const d = features.length;
  for (let i = 0; i < m.length; i++) {
    if (!Number.isFinite(m[i])) {
      const row = Math.floor(i / d) + 1;
      const field = features[i % d] as string;
      throw new BulwarkError('ERR_DATA_VALUE', `${what}: row ${row} column "${field}" is ${m[i]}`, {
        details: { row, field },
      });
    }
  }
}

/** Picks the feature columns: explicit, or all but the label, the dropped ones and identifier-like strings. */
function chooseFeatures(ds: Dataset, o: TrainTabularOptions): string[] {
  for (const n of [...(o.features ?? []), ...(o.drop ?? [])]) ds.column(n);
  if (o.features && o.features.length > 0) {
    if (o.features.includes(o.label)) {
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `--features: the label column "${o.label}" cannot be a feature`,
      );
    }
    return [...o.features];
  }
  const out: string[] = [];
  for (const c of ds.columns) {
    if (c.name === o.label || o.drop?.includes(c.name)) continue;
    if (c.type === 'string') {
      const distinct = new Set(c.values).size;
      if (distinct > MAX_CATEGORIES) {
        o.note?.(
          `left out column "${c.name}": ${distinct} distinct strings (an identifier?); name it in --features to keep it`,
        );
        continue;
      }
    }
    out.push(c.name);
  }
  if (out.length === 0) throw new BulwarkError('ERR_DATA_VALUE', 'no feature columns left besides the label');
  return out;
}

/** Column means and population standard deviations (0 becomes 1) of a row-major matrix. */
function standardisation(x: Float32Array, rows: number, d: number): { sub: Float32Array; div: Float32Array } {
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[r * d + j] as number);
  for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) / rows;
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < d; j++)
      sq[j] = (sq[j] as number) + ((x[r * d + j] as number) - (mean[j] as number)) ** 2;
  return { sub: Float32Array.from(mean), div: Float32Array.from(sq, (s) => Math.sqrt(s / rows) || 1) };
}

/** Accuracy, precision/recall/F1 (binary on the second class, else macro), AUCs (binary) and the confusion matrix. */
export function tabularMetrics(net: Network, x: Float32Array, y: Int32Array, rows: number): TabularMetrics {
  const pred = net.predict(x, rows);
  const k = net.classes;
  const prf = precisionRecallF1(y, pred, k === 2 ? 'binary' : 'macro', k);
  const out: TabularMetrics = {
    rows,
    accuracy: accuracy(y, pred),
    ...prf,
    confusion: confusionMatrix(y, pred, k),
  };
  if (k === 2) {
    const proba = net.predictProba(x, rows);
    const scores = Array.from({ length: rows }, (_, i) => proba[2 * i + 1] as number);
    const both = new Set(y).size === 2;
    if (both) {
      out.rocAuc = rocAuc(y, scores);
      out.averagePrecision = averagePrecision(y, scores);
    }
  }
  return out;
}

/** {@link TrainTabularOptions.rows}, checked: row numbers of the data, each in one list at most. */
function explicitSplit(
  rows: { train: ArrayLike<number>; test: ArrayLike<number> },
  n: number,
): { train: ArrayLike<number>; test: ArrayLike<number> } {
  const seen = new Uint8Array(n);
  for (const [name, list] of [
    ['rows.train', rows.train],
    ['rows.test', rows.test],
  ] as const) {
    for (let i = 0; i < list.length; i++) {
      const r = list[i] as number;
      if (!Number.isInteger(r) || r < 0 || r >= n)
        throw invalidArgument(name, `row numbers in [0, ${n - 1}]`, r);
      if (seen[r]) throw invalidArgument(name, 'each row in one list, once', r);
      seen[r] = 1;
    }
  }
  return rows;
}

/**
 * Trains a logistic regression or MLP on a tabular dataset: label encoding, one-hot features,
 * standardisation folded into the model, a seeded train/test split, training with progress, test
 * metrics, and the ONNX model with the preprocessing pipeline and class values in its metadata.
 */
export async function trainTabular(ds: Dataset, o: TrainTabularOptions): Promise<TrainTabularResult> {
  ds.column(o.label);
  const seed = o.seed ?? 0;
  const testFraction = o.testFraction ?? 0.2;
  const features = chooseFeatures(ds, o);
  const { y, classValues } = encodeLabels(ds, o.label);
  const n = ds.rowCount;
  const split = o.split ?? 'permutation';
  if (split !== 'permutation' && split !== 'row-hash')
    throw invalidArgument('split', 'permutation or row-hash', split);
  let trainIdx: ArrayLike<number>;
  let testIdx: ArrayLike<number>;
  if (o.rows) {
    ({ train: trainIdx, test: testIdx } = explicitSplit(o.rows, n));
  } else if (split === 'row-hash') {
    ({ trainIdx, testIdx } = heldOutSplit(ds, testFraction, seed));
  } else {
    const perm = new SeededRng(seed).permutation(n);
    const nTest = Math.round(n * testFraction);
    testIdx = perm.subarray(0, nTest);
    trainIdx = perm.subarray(nTest);
  }
  if (trainIdx.length < 2 || (testFraction > 0 && testIdx.length < 1)) {
    throw new BulwarkError(
      'ERR_DATA_VALUE',
      `${n} rows are too few to split off a test set of ${testFraction}`,
    );
  }
  // Each phase below is a synchronous pass over the data (a second or more on a large file): a turn of
  // the event loop between them lets Ctrl-C/SIGTERM stop the run there (src/cli/signals.ts).
  const turns = new EventLoopTurns();
  const trainDs = ds.take(trainIdx);
  const pipeline = buildPipeline(ds, features).fit(trainDs);
  await turns.turn();
  const tr = pipeline.transform(trainDs);
  await turns.turn();
  requireFiniteMatrix(tr.matrix, tr.features, 'training data');
  const d = tr.features.length;
  const trainData: LabelledData = {
    x: tr.matrix,
    y: Int32Array.from(trainIdx, (i) => y[i] as number),
    rows: tr.rows,
  };
  const classes = classValues.length;
  const std = standardisation(tr.matrix, tr.rows, d);
  const preprocessing = { kind: 'sub-div' as const, ...std };
  const net =
    o.model === 'logreg'
      ? logisticRegression({ inputs: d, classes, preprocessing })
      : mlp({
          inputs: d,
          hidden: o.hidden && o.hidden.length > 0 ? o.hidden : [64],
          activation: o.activation ?? 'relu',
          classes,
          rng: seed,
          preprocessing,
        });
  const epochs = o.epochs ?? 20;
  const batchSize = o.batchSize ?? 128;
  const batches = Math.ceil(tr.rows / batchSize);
  const l2 = o.l2 ?? 1 / tr.rows;
  const solver = o.solver ?? 'adam';
  // Mini-batch solvers (plain and adversarial training alike): learning rate and progress by batch.
  const learningRate = o.learningRate ?? (solver === 'sgd' ? 0.05 : o.model === 'logreg' ? 0.01 : 1e-3);
  const onProgress = (p: { epoch: number; batch: number; loss: number }) =>
    o.onProgress?.((p.epoch - 1) * batches + p.batch, epochs * batches, {
      epoch: p.epoch,
      loss: p.loss.toFixed(4),
    });
  let training: TrainResult;
  if (o.adversarial) {
    // eps is in units of each feature's range (schema bounds) or standard deviation; see docs/robust.md.
    if (solver === 'lbfgs') throw new BulwarkError('ERR_USAGE', '--adversarial needs --solver adam or sgd');
    const a = o.adversarial;
    const domain = tabularDomain({
      features: tr.features,
      x: tr.matrix,
      rows: tr.rows,
      ...(a.schema ? { schema: a.schema } : {}),
      immutable: a.immutable ?? [],
      categorical: features.filter((f) => ds.column(f).type === 'string'),
    });
    const adv = await adversarialTrain(net, trainData, {
      method: a.method,
      eps: a.eps,
      steps: a.steps ?? 10,
      domain,
      epochs,
      batchSize,
      optimizer: solver,
      learningRate,
      l2,
      seed,
      classWeights: o.classWeights ?? null,
      ...(a.weightAverage === undefined ? {} : { weightAverage: { decay: a.weightAverage } }),
      onProgress,
    });
    training = {
      history: adv.history.map((e) => ({ epoch: e.epoch, loss: e.loss })),
      bestEpoch: adv.history.length,
      stoppedEarly: false,
      classWeights: resolveClassWeights(o.classWeights ?? null, trainData, classes),
    };
  } else if (solver === 'lbfgs') {
    // Full batch, to convergence (scikit-learn's default solver); one "epoch" per iteration in the history.
    const maxIterations = o.epochs ?? 200;
    const history: TrainResult['history'] = [];
    await fitLbfgsAsync(net, trainData, {
      l2,
      maxIterations,
      classWeights: o.classWeights ?? null,
      onIteration: (it, loss) => {
        history.push({ epoch: it, loss });
        o.onProgress?.(it, maxIterations, { iteration: it, loss: loss.toFixed(4) });
      },
    });
    training = {
      history,
      bestEpoch: history.length,
      stoppedEarly: false,
      classWeights: resolveClassWeights(o.classWeights ?? null, trainData, classes),
    };
  } else {
    training = await train(net, trainData, {
      epochs,
      batchSize,
      optimizer: solver,
      learningRate,
      l2,
      seed,
      classWeights: o.classWeights ?? null,
      onProgress,
    });
  }
  let test: TabularMetrics = {
    rows: 0,
    accuracy: Number.NaN,
    precision: Number.NaN,
    recall: Number.NaN,
    f1: Number.NaN,
    confusion: [],
  };
  let testSet: LabelledData = { x: new Float32Array(0), y: new Int32Array(0), rows: 0 };
  if (testIdx.length > 0) {
    await turns.turn();
    const te = pipeline.transform(ds.take(testIdx));
    requireFiniteMatrix(te.matrix, te.features, 'test data');
    await turns.turn();
    testSet = { x: te.matrix, y: Int32Array.from(testIdx, (i) => y[i] as number), rows: te.rows };
    test = tabularMetrics(net, testSet.x, testSet.y, testSet.rows);
    await turns.turn();
    if (o.adversarial) warnBelowMajority(test.accuracy, testSet.y, o.note);
  }
  const metadata: Record<string, string> = {
    [META_PIPELINE]: JSON.stringify(pipeline.toJSON()),
    [META_LABEL]: o.label,
    [META_CLASS_VALUES]: JSON.stringify(classValues),
    'bulwark.features': JSON.stringify(tr.features),
    ...(o.metadata ?? {}),
    ...(o.adversarial
      ? {
          'bulwark.adversarial': JSON.stringify({
            method: o.adversarial.method,
            eps: o.adversarial.eps,
            steps: o.adversarial.steps ?? 10,
            ...(o.adversarial.immutable?.length ? { immutable: o.adversarial.immutable } : {}),
            ...(o.adversarial.weightAverage === undefined
              ? {}
              : { weightAverage: o.adversarial.weightAverage }),
          }),
        }
      : {}),
  };
  return {
    network: net,
    pipeline,
    classValues,
    features: tr.features,
    trainRows: tr.rows,
    test,
    testSet,
    testRows: Int32Array.from(testIdx),
    trainSet: trainData,
    training,
    metadata,
    onnx: toOnnx(net, { producerVersion: bulwarkVersion(), metadata }),
  };
}

/**
 * The same trained model with more ONNX metadata entries (`extra` wins over an entry of the same key):
 * for a record that is known only after training (what sanitising removed), without training again.
 */
export function withMetadata(
  r: TrainTabularResult,
  extra: Readonly<Record<string, string>>,
): TrainTabularResult {
  const metadata = { ...r.metadata, ...extra };
  return { ...r, metadata, onnx: toOnnx(r.network, { producerVersion: bulwarkVersion(), metadata }) };
}

/** Used by predict: a row's label value as a class index, or -1 when it is not one of the classes. */
export function classIndexOf(classValues: readonly string[], v: CellValue): number {
  if (v === null) return -1;
  const s = typeof v === 'number' ? String(v) : v;
  return classValues.indexOf(s);
}

/**
 * Adversarial training against too strong an attacker (a budget too large, or categorical fields the
 * attacker may switch freely) can leave a model that does worse than always answering the most common
 * class, with nothing else pointing at it: say so. The rate is measured on the held-out rows.
 */
export function warnBelowMajority(
  accuracy: number,
  labels: Int32Array,
  note: ((message: string) => void) | undefined,
): void {
  if (labels.length === 0 || !Number.isFinite(accuracy)) return;
  const counts = new Map<number, number>();
  for (const v of labels) counts.set(v, (counts.get(v) ?? 0) + 1);
  const majority = Math.max(...counts.values()) / labels.length;
  if (accuracy < majority)
    note?.(
      `the adversarially trained model's test accuracy (${(100 * accuracy).toFixed(2)} %) is below always predicting the most common class (${(100 * majority).toFixed(2)} %): the attacker trained against is too strong for this model. Lower --adv-eps, or mark the fields an attacker cannot change with --immutable (a mutable categorical field may switch category at any budget).`,
    );
}
