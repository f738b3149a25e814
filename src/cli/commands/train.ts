import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, requireFile, SeededRng, writeFileAtomic } from '../../core/index.js';
import {
  type CellValue,
  type Dataset,
  Imputer,
  loadSchema,
  OneHotEncoder,
  Pipeline,
  type PreprocessStep,
  readDataset,
  type Schema,
  validateAgainstSchema,
} from '../../data/index.js';
import {
  ACTIVATIONS,
  type ActivationName,
  accuracy,
  averagePrecision,
  confusionMatrix,
  fitLbfgs,
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
} from '../../ml/index.js';
import { type AdversarialMethod, adversarialTrain, tabularDomain } from '../../robust/index.js';
import { floatOption, intOption, listOption } from '../options.js';
import { bulwarkVersion, ioOf } from '../program.js';
import { type Progress, startProgress } from '../progress.js';

/** Metadata keys Bulwark writes into the ONNX files it trains (read back by `bulwark predict`). */
export const META_PIPELINE = 'bulwark.pipeline';
export const META_LABEL = 'bulwark.label';
export const META_CLASS_VALUES = 'bulwark.class_values';

/** String columns with more distinct values than this are taken for identifiers and left out. */
const MAX_CATEGORIES = 100;
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
  classWeights?: 'balanced' | null;
  /** Columns to use as features (default: every column but the label, minus identifier-like strings). */
  features?: readonly string[];
  /** Columns to leave out. */
  drop?: readonly string[];
  onProgress?: (done: number, total: number, info: Record<string, string | number>) => void;
  /** Adversarial training (src/robust): PGD (Madry) or TRADES within eps, schema-aware when a schema is given. */
  adversarial?: { method: AdversarialMethod; eps: number; steps?: number; schema?: Schema };
  /** A note for the user (columns left out). */
  note?: (message: string) => void;
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
  training: TrainResult;
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
  const nTest = Math.round(n * testFraction);
  if (n - nTest < 2 || (testFraction > 0 && nTest < 1)) {
    throw new BulwarkError(
      'ERR_DATA_VALUE',
      `${n} rows are too few to split off a test set of ${testFraction}`,
    );
  }
  const perm = new SeededRng(seed).permutation(n);
  const testIdx = perm.subarray(0, nTest);
  const trainIdx = perm.subarray(nTest);
  const trainDs = ds.take(trainIdx);
  const pipeline = buildPipeline(ds, features).fit(trainDs);
  const tr = pipeline.transform(trainDs);
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
      learningRate: o.learningRate ?? (solver === 'sgd' ? 0.05 : o.model === 'logreg' ? 0.01 : 1e-3),
      l2,
      seed,
      classWeights: o.classWeights ?? null,
      onProgress: (p) =>
        o.onProgress?.((p.epoch - 1) * batches + p.batch, epochs * batches, {
          epoch: p.epoch,
          loss: p.loss.toFixed(4),
        }),
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
    fitLbfgs(net, trainData, {
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
      learningRate: o.learningRate ?? (solver === 'sgd' ? 0.05 : o.model === 'logreg' ? 0.01 : 1e-3),
      l2,
      seed,
      classWeights: o.classWeights ?? null,
      onProgress: (p) =>
        o.onProgress?.((p.epoch - 1) * batches + p.batch, epochs * batches, {
          epoch: p.epoch,
          loss: p.loss.toFixed(4),
        }),
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
  if (nTest > 0) {
    const te = pipeline.transform(ds.take(testIdx));
    requireFiniteMatrix(te.matrix, te.features, 'test data');
    test = tabularMetrics(
      net,
      te.matrix,
      Int32Array.from(testIdx, (i) => y[i] as number),
      te.rows,
    );
  }
  const onnx = toOnnx(net, {
    producerVersion: bulwarkVersion(),
    metadata: {
      [META_PIPELINE]: JSON.stringify(pipeline.toJSON()),
      [META_LABEL]: o.label,
      [META_CLASS_VALUES]: JSON.stringify(classValues),
      'bulwark.features': JSON.stringify(tr.features),
      ...(o.adversarial
        ? {
            'bulwark.adversarial': JSON.stringify({
              method: o.adversarial.method,
              eps: o.adversarial.eps,
              steps: o.adversarial.steps ?? 10,
            }),
          }
        : {}),
    },
  });
  return {
    network: net,
    pipeline,
    classValues,
    features: tr.features,
    trainRows: tr.rows,
    test,
    training,
    onnx,
  };
}

function fractionOption(v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 1) {
    throw new InvalidArgumentError(`expected a number in [0, 1), got "${v}"`);
  }
  return x;
}

function oneOf<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(2)} %`;

/** `bulwark train`: trains a model on a CSV/Parquet file and writes it as ONNX. */
export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('train a logistic regression or MLP classifier on a data file and write it as ONNX')
    .requiredOption('--data <file>', 'training data (CSV, TSV or Parquet)')
    .requiredOption('--label <column>', 'the column to predict')
    .requiredOption('--out <file>', 'where to write the model (ONNX)')
    .option('--model <kind>', 'logreg or mlp', oneOf(['logreg', 'mlp'] as const), 'logreg')
    .option('--schema <file>', 'schema YAML the data must match (types, bounds, categories)')
    .option('--hidden <sizes>', 'hidden layer sizes of the MLP, e.g. 128,64', listOption(intOption(1, 65536)))
    .option('--activation <name>', `MLP activation: ${ACTIVATIONS.join(', ')}`, oneOf(ACTIVATIONS), 'relu')
    .option(
      '--solver <name>',
      'adam, sgd (with momentum) or lbfgs (full batch)',
      oneOf(['adam', 'sgd', 'lbfgs'] as const),
      'adam',
    )
    .option(
      '--epochs <n>',
      'passes over the training data, default 20 (lbfgs: iteration limit, default 200)',
      intOption(1, 100000),
    )
    .option('--batch-size <n>', 'examples per step', intOption(1, 1 << 20), 128)
    .option('--lr <rate>', 'learning rate (default 0.01 logreg, 0.001 mlp)', floatOption(1e-9, 10))
    .option(
      '--l2 <penalty>',
      'L2 penalty on weights (default 1 / training rows, as C = 1)',
      floatOption(0, 1e6),
    )
    .option('--class-weights <mode>', 'balanced or none', oneOf(['balanced', 'none'] as const), 'none')
    .option('--test-fraction <f>', 'share of rows held out for the test metrics', fractionOption, 0.2)
    .option('--features <columns>', 'feature columns (default: all but the label)', listOption(String))
    .option('--drop <columns>', 'columns to leave out', listOption(String))
    .option(
      '--seed <n>',
      'seed of the split, shuffles and initial weights',
      intOption(0, Number.MAX_SAFE_INTEGER),
      0,
    )
    .option(
      '--adversarial <method>',
      'adversarial training: pgd (Madry et al.) or trades (Zhang et al.)',
      oneOf(['pgd', 'trades'] as const),
    )
    .option(
      '--adv-eps <e>',
      "adversarial budget, in units of each feature's range (--schema bounds) or standard deviation",
      floatOption(0, 1e6),
    )
    .option(
      '--adv-steps <n>',
      'PGD steps of the adversarial training attack (default 10)',
      intOption(1, 10000),
    )
    .option('--force', 'overwrite --out if it exists')
    .addHelpText(
      'after',
      `
String columns are one-hot encoded (missing values as their own category; more than ${MAX_CATEGORIES} distinct
values: left out as identifiers); numeric columns must be complete and finite. Standardisation is part
of the exported model, and the preprocessing and class values are stored in the ONNX metadata, so
\`bulwark predict\` (or any ONNX runtime, on the encoded features) can use it.`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{
        data: string;
        label: string;
        out: string;
        model: 'logreg' | 'mlp';
        solver: 'adam' | 'sgd' | 'lbfgs';
        schema?: string;
        hidden?: number[];
        activation: ActivationName;
        epochs?: number;
        batchSize: number;
        lr?: number;
        l2?: number;
        classWeights: 'balanced' | 'none';
        testFraction: number;
        features?: string[];
        drop?: string[];
        seed: number;
        force?: boolean;
        adversarial?: AdversarialMethod;
        advEps?: number;
        advSteps?: number;
      }>();
      const io = ioOf(this);
      if (o.hidden && o.model !== 'mlp')
        throw new BulwarkError('ERR_USAGE', '--hidden applies to --model mlp only');
      await requireFile(o.data, 'data file');
      if ((o.advEps !== undefined || o.advSteps !== undefined) && o.adversarial === undefined)
        throw new BulwarkError('ERR_USAGE', '--adv-eps and --adv-steps apply with --adversarial only');
      if (o.adversarial !== undefined && !(o.advEps !== undefined && o.advEps > 0))
        throw new BulwarkError('ERR_USAGE', '--adversarial needs --adv-eps, a budget > 0');
      let ds = await readDataset(o.data);
      let schema: Schema | undefined;
      if (o.schema !== undefined) {
        await requireFile(o.schema, 'schema file');
        schema = await loadSchema(o.schema);
        ds = validateAgainstSchema(ds, schema, { source: o.data });
      }
      let bar: Progress | null = null;
      let r: TrainTabularResult;
      try {
        r = await trainTabular(ds, {
          label: o.label,
          model: o.model,
          solver: o.solver,
          hidden: o.hidden,
          activation: o.activation,
          epochs: o.epochs,
          batchSize: o.batchSize,
          learningRate: o.lr,
          l2: o.l2,
          seed: o.seed,
          testFraction: o.testFraction,
          classWeights: o.classWeights === 'balanced' ? 'balanced' : null,
          features: o.features,
          drop: o.drop,
          ...(o.adversarial
            ? {
                adversarial: {
                  method: o.adversarial,
                  eps: o.advEps as number,
                  steps: o.advSteps ?? 10,
                  ...(schema ? { schema } : {}),
                },
              }
            : {}),
          note: (m) => io.note(m),
          onProgress: (done, total, info) => {
            bar ??= startProgress(io, 'train', total, 'batches');
            bar.update(done, info);
          },
        });
      } finally {
        (bar as Progress | null)?.stop();
      }
      const out = resolve(o.out);
      await writeFileAtomic(out, r.onnx, { noClobber: o.force !== true });
      const last = r.training.history[r.training.history.length - 1];
      io.result(
        {
          out,
          model: o.model,
          solver: o.solver,
          architecture: [r.network.inputs, ...r.network.hidden, r.network.classes],
          label: o.label,
          classes: r.classValues,
          features: r.features.length,
          trainRows: r.trainRows,
          epochs: r.training.history.length,
          trainLoss: last?.loss,
          test: r.test,
          ...(o.adversarial
            ? { adversarial: { method: o.adversarial, eps: o.advEps, steps: o.advSteps ?? 10 } }
            : {}),
        },
        () =>
          [
            `Trained ${o.model} [${[r.network.inputs, ...r.network.hidden, r.network.classes].join('-')}] on ${r.trainRows} rows, ${r.training.history.length} ${o.solver === 'lbfgs' ? 'L-BFGS iterations' : 'epochs'} (final loss ${last?.loss.toFixed(4)}).`,
            `Test (${r.test.rows} rows): accuracy ${pct(r.test.accuracy)}, precision ${pct(r.test.precision)}, recall ${pct(r.test.recall)}, F1 ${pct(r.test.f1)}${
              r.test.rocAuc !== undefined
                ? `, ROC AUC ${r.test.rocAuc.toFixed(4)}, PR AUC ${r.test.averagePrecision?.toFixed(4)}`
                : ''
            }`,
            `Classes of "${o.label}": ${r.classValues.join(', ')}${r.classValues.length === 2 ? ` (positive: ${r.classValues[1]})` : ''}`,
            `Model: ${out}`,
          ].join('\n'),
      );
    });
}

/** Used by predict: a row's label value as a class index, or -1 when it is not one of the classes. */
export function classIndexOf(classValues: readonly string[], v: CellValue): number {
  if (v === null) return -1;
  const s = typeof v === 'number' ? String(v) : v;
  return classValues.indexOf(s);
}
