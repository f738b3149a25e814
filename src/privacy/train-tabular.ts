/**
 * DP training on a tabular dataset, for `bulwark train --dp-epsilon` and the demo: every step that could
 * look at the data before the private training is replaced by a PUBLIC one from the schema — numeric
 * features scaled to [0, 1] by the schema's bounds (clipped), categorical features one-hot encoded with
 * the schema's categories, missing values filled with constants — so nothing about the training rows
 * leaks except through the DP mechanism. Then: logistic regression by objective perturbation (ε-DP) or
 * DP-SGD for an MLP (or a logistic regression) ((ε, δ)-DP), the budget spent from the ledger first, and
 * the model exported to ONNX with its pipeline and privacy guarantee in the metadata.
 *
 * A share of the rows is held out for test metrics, each row by a seeded hash of its own values
 * ({@link heldOutSplit}: one row added or removed moves no other row); those metrics are computed on
 * private rows and are NOT covered by the guarantee (report them internally, as Opacus's examples do).
 */
import { isDeepStrictEqual } from 'node:util';
import {
  BulwarkError,
  bulwarkVersion,
  invalidArgument,
  requireInteger,
  requireNumberIn,
} from '../core/index.js';
import {
  type Dataset,
  heldOutSplit,
  Imputer,
  MinMaxScaler,
  OneHotEncoder,
  Pipeline,
  type PreprocessStep,
  type Schema,
  type SchemaField,
} from '../data/index.js';
import {
  type ActivationName,
  accuracy,
  type LabelledData,
  logisticRegression,
  mlp,
  type Network,
  precisionRecallF1,
  rocAuc,
  toOnnx,
} from '../ml/index.js';
import type { ComposedEvent } from './accountants/events.js';
import type { BudgetLedger, SpendReceipt } from './ledger/ledger.js';
import type { NoiseSource } from './mechanisms/noise.js';
import { dpSgdEvents, trainDpSgd } from './models/dp-sgd.js';
import { fitDpLogisticRegression, objectivePerturbationEvents } from './models/logistic.js';
import { requireDelta, requireEpsilon } from './params.js';

/** ONNX metadata keys shared with src/train (`bulwark predict` reads them); a test checks they agree. */
export const ONNX_META = {
  pipeline: 'bulwark.pipeline',
  label: 'bulwark.label',
  classValues: 'bulwark.class_values',
  features: 'bulwark.features',
  privacy: 'bulwark.privacy',
} as const;

/**
 * Where a DP training spent its budget, written with its guarantee (`bulwark.privacy`): the ledger's id
 * (not its location), the budget's name and the analyst. A fine-tune of the model spends from the same
 * budget of the same ledger, so the budget's total bounds every model in the lineage.
 */
export interface DpBudgetRef {
  ledger: string;
  dataset: string;
  analyst?: string;
}

/**
 * DP fine-tuning (warm start): DP-SGD starts from a previous model's weights instead of fresh ones.
 * The guarantee for the data trained on holds whatever the starting point, provided the starting
 * weights do not depend on that data (Tramèr & Boneh, ICLR 2021; De et al. 2022 fine-tune public or
 * earlier weights with DP-SGD the same way): the analysis of DP-SGD conditions on the initial
 * parameters. The previous model must have the architecture and the public preprocessing this run
 * would build (ERR_WARM_START_MISMATCH otherwise): its weights are only meaningful on those features.
 */
export interface DpWarmStart {
  /** The starting network; copied, never changed. */
  network: Network;
  /** Its preprocessing state (`Pipeline.toJSON()`, as in its `bulwark.pipeline` metadata). */
  pipeline: unknown;
  classValues: readonly string[];
  /**
   * The starting model's own guarantee (its `bulwark.privacy`). When given, the result's ε and δ are
   * its ε and δ plus this run's (basic composition: a person may be in the data of both runs), and the
   * result records both parts.
   */
  privacy?: DpTrainingGuarantee;
}

/** Options of {@link trainTabularDp}. */
export interface DpTabularOptions {
  label: string;
  /** The schema with PUBLIC bounds for numeric features and categories for string features. */
  schema: Schema;
  model: 'logreg' | 'mlp';
  /** `objective-perturbation` (logreg only, the default there) or `dp-sgd` (the default for mlp). */
  method?: 'objective-perturbation' | 'dp-sgd';
  epsilon: number;
  /** δ for DP-SGD (objective perturbation is ε-DP and spends δ = 0). */
  delta: number;
  /** Objective perturbation: public bound on the encoded rows' L2 norm (default sqrt(number of input columns)). */
  dataNorm?: number;
  /** DP-SGD per-example clipping norm (default 1). */
  clipNorm?: number;
  accountant?: 'rdp' | 'pld';
  hidden?: readonly number[];
  activation?: ActivationName;
  epochs?: number;
  /** DP-SGD expected batch size (default 256). */
  batchSize?: number;
  /**
   * The number of rows of the dataset, declared PUBLIC (a known size or an upper bound). DP-SGD's
   * sampling rate and steps are then derived from it (less the test share) rather than from the
   * private count: with add-or-remove neighbours the count itself is private, and a sampling rate of
   * batch / n written into the model tells n exactly. Without it the actual count is used and treated
   * as public (as Opacus and TF Privacy do): the model then reveals how many rows it was trained on.
   */
  publicRows?: number;
  learningRate?: number;
  optimizer?: 'sgd' | 'adam';
  seed?: number;
  /**
   * Share of the rows held out for the test metrics, in [0, 1) (default 0.2): each row by a seeded hash
   * of its own values, so the count held out is about this share, not exactly it.
   */
  testFraction?: number;
  /** Feature columns (default: every schema field with bounds or categories, but the label). */
  features?: readonly string[];
  drop?: readonly string[];
  budget?: { ledger: BudgetLedger; dataset: string; analyst?: string };
  noise?: NoiseSource;
  /** More ONNX metadata entries (e.g. lineage); the trainer's own keys win. */
  metadata?: Readonly<Record<string, string>>;
  /** DP-SGD only: start from these weights (fine-tuning; see {@link DpWarmStart}). */
  initial?: DpWarmStart;
  /**
   * Called once the run is planned and checked (features, labels, warm start), before the budget is
   * spent and before any data-dependent computation; throwing refuses the run with nothing spent.
   * Used to check the budget and run the poisoning gate of a fine-tune before the spend.
   */
  beforeSpend?: (plan: DpRunPlan) => Promise<void> | void;
  /**
   * DP-SGD only: adversarial training inside DP-SGD. `perturb`, given the network being trained and
   * the encoded feature names, returns the per-row perturbation of each sampled batch (see
   * `DpSgdOptions.perturb` for when the guarantee still holds; the encoded features are in [0, 1],
   * numeric ones scaled by the schema's public bounds, or one-hot). The settings go to the ONNX
   * metadata (`bulwark.adversarial`), as `bulwark train --adversarial` writes them.
   */
  adversarial?: {
    method: string;
    eps: number;
    steps: number;
    perturb: (
      net: Network,
      features: readonly string[],
    ) => (x: Float32Array, y: Int32Array, rows: number) => void;
  };
  note?: (message: string) => void;
  onProgress?: (done: number, total: number, info: Record<string, string | number>) => void;
}

/** The privacy part of a DP training result (also written to the ONNX metadata). */
export interface DpTrainingGuarantee {
  method: 'objective-perturbation' | 'dp-sgd';
  epsilon: number;
  delta: number;
  neighbours: 'add-remove';
  accountant?: 'rdp' | 'pld';
  noiseMultiplier?: number;
  clipNorm?: number;
  samplingRate?: number;
  steps?: number;
  dataNorm?: number;
  /**
   * Where DP-SGD's sampling rate came from: `declared`, a public row count (the rate reveals nothing
   * about the data), or `treated-as-public`, the actual count (the rate reveals it).
   */
  rows?: 'declared' | 'treated-as-public';
  /** The ledger budget the run spent from (when it spent from one). */
  budget?: DpBudgetRef;
  /**
   * `insecure-seeded` when the noise came from a seeded generator (tests, reproducible experiments):
   * anyone who learns the seed can remove it, so ε and δ above do not hold. Absent: the CSPRNG.
   */
  noise?: 'insecure-seeded';
  /**
   * Set when the run fine-tuned a DP model: ε and δ above are the composition (sum) of the starting
   * model's and this run's; `run` is this run's alone and `parent` the starting model's.
   */
  run?: { epsilon: number; delta: number };
  parent?: { epsilon: number; delta: number };
}

/** The `privacy` of a `model.trained` audit event (src/audit events.ts) for a DP training. */
export interface TrainedPrivacy {
  epsilon: number;
  delta: number;
  /** The DP-SGD accountant, or the method for objective perturbation (which has none). */
  accountant: string;
  noiseMultiplier?: number;
  clipNorm?: number;
  /** What this run took from the ledger (a fine-tune's alone, while ε and δ above are composed). */
  budgetSpent?: { epsilon: number; delta: number };
}

/** The `model.trained` privacy record of a DP training's guarantee and ledger receipt. */
export function trainedPrivacy(p: DpTrainingGuarantee, receipt?: SpendReceipt): TrainedPrivacy {
  return {
    epsilon: p.epsilon,
    delta: p.delta,
    accountant: p.accountant ?? p.method,
    ...(p.noiseMultiplier === undefined ? {} : { noiseMultiplier: p.noiseMultiplier }),
    ...(p.clipNorm === undefined ? {} : { clipNorm: p.clipNorm }),
    ...(receipt ? { budgetSpent: { epsilon: receipt.epsilon, delta: receipt.delta } } : {}),
  };
}

/** What a DP run will spend and train on, known before it spends (see `beforeSpend`). */
export interface DpRunPlan {
  method: 'objective-perturbation' | 'dp-sgd';
  /** The (ε, δ) the run will ask the ledger for (DP-SGD: the accountant's, for the calibrated σ). */
  epsilon: number;
  delta: number;
  trainRows: number;
  /** The encoded training rows and their labels (for a gate that inspects them before the spend). */
  trainSet: LabelledData;
  /** The accounting events the spend will record (what a `pld` budget composes; pass them to `preview`). */
  events: readonly ComposedEvent[];
}

export interface DpTabularResult {
  network: Network;
  pipeline: Pipeline;
  classValues: string[];
  features: readonly string[];
  trainRows: number;
  trainSet: LabelledData;
  testSet: LabelledData;
  /** Which rows of the input dataset are held out (never trained on): `testSet` row i is row `testRows[i]`. */
  testRows: Int32Array;
  /** Accuracy, precision/recall/F1 (binary: of the second class) and ROC AUC on the held-out rows (not private). */
  test: { rows: number; accuracy: number; precision: number; recall: number; f1: number; rocAuc?: number };
  privacy: DpTrainingGuarantee;
  receipt?: SpendReceipt;
  onnx: Uint8Array;
}

const MISSING = '<missing>';

function publicPipeline(schema: Schema, features: readonly string[]): Pipeline {
  const steps: PreprocessStep[] = [];
  const field = (n: string) => schema.fields.find((f) => f.name === n);
  const numeric = features.filter((f) => field(f)?.categories === undefined);
  const strings = features.filter((f) => field(f)?.categories !== undefined);
  for (const n of numeric) {
    const b = field(n)?.bounds;
    if (!b) {
      throw new BulwarkError(
        'ERR_SCHEMA_INVALID',
        `field "${n}" needs public bounds in the schema for DP training`,
        {
          details: { field: n },
        },
      );
    }
    // Missing values take the public lower bound (a constant, not a statistic of the data).
    steps.push(new Imputer({ columns: [n], strategy: 'constant', fillValue: b.min }));
  }
  if (numeric.length > 0) steps.push(MinMaxScaler.fromSchema(schema, numeric));
  if (strings.length > 0) {
    steps.push(new Imputer({ columns: strings, strategy: 'constant', fillValue: MISSING }));
    steps.push(OneHotEncoder.fromSchema(schema, strings, 'ignore'));
  }
  return new Pipeline({ inputs: features, steps });
}

function chooseFeatures(ds: Dataset, o: DpTabularOptions): string[] {
  for (const n of [...(o.features ?? []), ...(o.drop ?? [])]) ds.column(n);
  if (o.features && o.features.length > 0) {
    if (o.features.includes(o.label))
      throw invalidArgument('features', 'columns other than the label', o.label);
    return [...o.features];
  }
  const out: string[] = [];
  for (const f of o.schema.fields) {
    if (f.name === o.label || o.drop?.includes(f.name) || !ds.has(f.name)) continue;
    if (f.bounds === undefined && f.categories === undefined) {
      o.note?.(`left out column "${f.name}": no public bounds or categories in the schema`);
      continue;
    }
    out.push(f.name);
  }
  if (out.length === 0)
    throw new BulwarkError(
      'ERR_SCHEMA_INVALID',
      'no schema field has public bounds or categories to train on',
    );
  return out;
}

/**
 * The classes an integer label's declared bounds allow ({0, 1} for bounds 0..1): public, like
 * categories. Undefined for other fields, or a range too wide to be a set of classes.
 */
function integerClasses(field: SchemaField | undefined): string[] | undefined {
  if (field?.type !== 'integer' || field.bounds === undefined) return undefined;
  const { min, max } = field.bounds;
  if (!Number.isInteger(min) || !Number.isInteger(max) || max - min > 1000) return undefined;
  return Array.from({ length: max - min + 1 }, (_, i) => String(min + i));
}

function labels(ds: Dataset, o: DpTabularOptions): { y: Int32Array; classValues: string[] } {
  const col = ds.column(o.label);
  const raw: (string | null)[] =
    col.type === 'string'
      ? [...col.values]
      : Array.from(col.values, (v) => (Number.isFinite(v) ? String(v) : null));
  // A warm start predicts its starting model's classes (public: in that model), whatever classes the
  // batch happens to hold; deriving them from the batch would refuse a batch missing a class and reveal
  // which classes it holds outside the DP accounting.
  const field = o.schema.fields.find((f) => f.name === o.label);
  const declared = field?.categories ?? integerClasses(field) ?? o.initial?.classValues;
  // Classes taken from the private rows would put any rare label a single person holds into the
  // model's shape and metadata, outside the DP accounting: they must be declared (fail closed).
  if (!declared)
    throw new BulwarkError(
      'ERR_DP_UNACCOUNTED',
      `the classes of "${o.label}" must be public under DP: declare them as the label field's categories in the schema (taken from the data, a single person's rare label would change the model outside the DP accounting)`,
      { details: { field: o.label } },
    );
  const classValues = [...declared];
  if (classValues.length < 2)
    throw new BulwarkError('ERR_LABEL_INVALID', `label "${o.label}" has fewer than two classes`);
  const index = new Map(classValues.map((v, i) => [v, i]));
  const y = new Int32Array(raw.length);
  raw.forEach((v, i) => {
    const k = v === null ? undefined : index.get(v);
    if (k === undefined) {
      throw new BulwarkError(
        'ERR_LABEL_INVALID',
        `label "${o.label}": row ${i + 1} has ${v === null ? 'no value' : `"${v}", not a declared class`}`,
        {
          details: { row: i + 1, field: o.label },
        },
      );
    }
    y[i] = k;
  });
  return { y, classValues };
}

function mismatch(what: string, previous: unknown, now: unknown): BulwarkError {
  return new BulwarkError(
    'ERR_WARM_START_MISMATCH',
    `the model to fine-tune has ${what} ${JSON.stringify(previous)}, this run would train ${JSON.stringify(now)}: DP fine-tuning needs the same architecture and public preprocessing (same --schema, --features, --model, --hidden)`,
    { details: { what } },
  );
}

/**
 * Checks that a warm start fits this run: same classes, same public preprocessing (the pipeline this
 * run builds from the schema, compared with the one the previous model recorded), same architecture
 * (logistic regression or MLP, hidden sizes, activation, inputs, outputs) and no preprocessing baked
 * into the network (DP models take the public pipeline's features). Throws ERR_WARM_START_MISMATCH.
 */
function checkWarmStart(
  w: DpWarmStart,
  o: DpTabularOptions,
  pipeline: Pipeline,
  classValues: readonly string[],
): void {
  if (!isDeepStrictEqual([...w.classValues], [...classValues]))
    throw mismatch('classes', w.classValues, classValues);
  const now = pipeline.toJSON();
  const before = w.pipeline as { inputs?: unknown; features?: unknown } | null;
  if (!isDeepStrictEqual(before?.inputs, now.inputs)) throw mismatch('inputs', before?.inputs, now.inputs);
  if (!isDeepStrictEqual(before?.features, now.features))
    throw mismatch('features', before?.features, now.features);
  if (!isDeepStrictEqual(before, now))
    throw mismatch('preprocessing (scaling bounds or categories)', 'its pipeline', 'another');
  const net = w.network;
  const kind = net.hidden.length === 0 ? 'logreg' : 'mlp';
  if (kind !== o.model) throw mismatch('model kind', kind, o.model);
  if (o.model === 'mlp') {
    const hidden = o.hidden && o.hidden.length > 0 ? [...o.hidden] : [...net.hidden];
    if (!isDeepStrictEqual([...net.hidden], hidden)) throw mismatch('hidden layers', net.hidden, hidden);
    const act = o.activation ?? net.activation;
    if (act !== net.activation) throw mismatch('activation', net.activation, act);
  }
  if (net.inputs !== now.features.length) throw mismatch('inputs width', net.inputs, now.features.length);
  if (net.classes !== classValues.length) throw mismatch('class count', net.classes, classValues.length);
  if (net.preprocessing !== null)
    throw mismatch('preprocessing inside the network', net.preprocessing.kind, 'none (public pipeline)');
}

/** Trains a DP model on tabular data (see the module documentation). */
export async function trainTabularDp(ds: Dataset, o: DpTabularOptions): Promise<DpTabularResult> {
  const epsilon = requireEpsilon('epsilon', o.epsilon);
  const delta = requireDelta('delta', o.delta);
  const method = o.method ?? (o.model === 'logreg' && !o.initial ? 'objective-perturbation' : 'dp-sgd');
  if (method === 'objective-perturbation' && o.initial !== undefined)
    // Objective perturbation releases the minimiser of a perturbed objective: no starting point.
    throw invalidArgument(
      'method',
      'dp-sgd for a warm start (objective perturbation has no starting weights)',
      method,
    );
  if (method === 'objective-perturbation' && o.model !== 'logreg')
    throw invalidArgument(
      'method',
      'dp-sgd for an MLP (objective perturbation is for logistic regression)',
      method,
    );
  if (method === 'objective-perturbation' && o.adversarial !== undefined)
    throw invalidArgument('adversarial', 'DP-SGD (objective perturbation has no per-step batches)', method);
  ds.column(o.label);
  const features = chooseFeatures(ds, o);
  const { y, classValues } = labels(ds, o);
  const testFraction = requireNumberIn('testFraction', o.testFraction ?? 0.2, 0, 1, { maxExclusive: true });
  const publicRows = o.publicRows === undefined ? undefined : requireInteger('publicRows', o.publicRows, 2);
  // Rows trained on out of a public count: the held-out test share is taken off.
  const trainShare = (rows: number) => rows - Math.round(rows * testFraction);
  const { trainIdx, testIdx } = heldOutSplit(ds, testFraction, o.seed ?? 0);
  if (trainIdx.length < 2)
    throw new BulwarkError('ERR_DATA_VALUE', `${trainIdx.length} rows are too few to train on`);
  // The pipeline's fit only checks column types: every parameter comes from the schema.
  const pipeline = publicPipeline(o.schema, features).fit(ds.take(trainIdx));
  const tr = pipeline.transform(ds.take(trainIdx));
  const trainSet: LabelledData = {
    x: tr.matrix,
    y: Int32Array.from(trainIdx, (i) => y[i] as number),
    rows: tr.rows,
  };
  const te = pipeline.transform(ds.take(testIdx));
  const testSet: LabelledData = {
    x: te.matrix,
    y: Int32Array.from(testIdx, (i) => y[i] as number),
    rows: te.rows,
  };
  const d = tr.features.length;
  const classes = classValues.length;
  if (o.initial) checkWarmStart(o.initial, o, pipeline, classValues);
  const beforeSpend = async (eps: number, del: number, events: readonly ComposedEvent[]) =>
    o.beforeSpend?.({ method, epsilon: eps, delta: del, trainRows: trainSet.rows, trainSet, events });

  let network: Network;
  let privacy: DpTrainingGuarantee;
  let receipt: SpendReceipt | undefined;
  if (method === 'objective-perturbation') {
    // Each numeric column is in [0, 1] and each one-hot group has at most one 1: ||x||² <= input columns.
    const dataNorm = o.dataNorm ?? Math.sqrt(features.length);
    await beforeSpend(epsilon, 0, objectivePerturbationEvents(epsilon, classes));
    const r = await fitDpLogisticRegression(trainSet, {
      epsilon,
      dataNorm,
      classes,
      ...(o.budget ? { budget: o.budget } : {}),
      ...(o.noise ? { noise: o.noise } : {}),
    });
    network = r.model;
    receipt = r.receipt;
    privacy = { method, epsilon, delta: 0, neighbours: 'add-remove', dataNorm };
  } else {
    network = o.initial
      ? o.initial.network.clone()
      : o.model === 'logreg'
        ? logisticRegression({ inputs: d, classes })
        : mlp({
            inputs: d,
            hidden: o.hidden && o.hidden.length > 0 ? o.hidden : [64],
            activation: o.activation ?? 'relu',
            classes,
            rng: o.seed ?? 0,
          });
    const epochs = o.epochs ?? 5;
    // The rows the sampling rate is computed over: public when declared.
    const sampledOver = publicRows === undefined ? trainSet.rows : Math.max(1, trainShare(publicRows));
    const r = await trainDpSgd(network, trainSet, {
      epsilon,
      delta,
      clipNorm: o.clipNorm ?? 1,
      samplingRate: Math.min(o.batchSize ?? 256, sampledOver) / sampledOver,
      // With a declared count the step is divided by q·(that count), not by q·(actual rows).
      ...(publicRows === undefined ? {} : { publicRows: sampledOver }),
      epochs,
      accountant: o.accountant ?? 'rdp',
      optimizer: o.optimizer ?? 'sgd',
      ...(o.learningRate === undefined ? {} : { learningRate: o.learningRate }),
      ...(o.budget ? { budget: o.budget } : {}),
      ...(o.noise ? { noise: o.noise } : {}),
      ...(o.adversarial ? { perturb: o.adversarial.perturb(network, tr.features) } : {}),
      beforeSpend: (p) =>
        beforeSpend(p.epsilon, p.delta, dpSgdEvents(p.noiseMultiplier, p.samplingRate, p.steps)),
      onProgress: (p) => {
        if (p.phase === 'step')
          o.onProgress?.(p.step, p.steps, { epoch: p.epoch, clipped: p.clippedFraction.toFixed(2) });
      },
    });
    receipt = r.receipt;
    privacy = {
      method,
      epsilon: r.epsilon,
      delta,
      neighbours: 'add-remove',
      accountant: r.accountant,
      noiseMultiplier: r.noiseMultiplier,
      clipNorm: r.clipNorm,
      samplingRate: r.samplingRate,
      steps: r.steps,
      rows: publicRows === undefined ? 'treated-as-public' : 'declared',
    };
    const parent = o.initial?.privacy;
    if (parent) {
      // Basic composition with the starting model's guarantee (always sound; see DpWarmStart.privacy).
      privacy.parent = { epsilon: parent.epsilon, delta: parent.delta };
      privacy.run = { epsilon: privacy.epsilon, delta: privacy.delta };
      privacy.epsilon = parent.epsilon + privacy.epsilon;
      privacy.delta = parent.delta + privacy.delta;
    }
  }
  // Seeded noise here or in the model this run continues: the recorded ε and δ do not hold.
  if ((o.noise !== undefined && !o.noise.secure) || o.initial?.privacy?.noise !== undefined)
    privacy.noise = 'insecure-seeded';
  if (o.budget)
    privacy.budget = {
      ledger: o.budget.ledger.id,
      dataset: o.budget.dataset,
      ...(o.budget.analyst === undefined ? {} : { analyst: o.budget.analyst }),
    };

  const test: DpTabularResult['test'] = {
    rows: testSet.rows,
    accuracy: Number.NaN,
    precision: Number.NaN,
    recall: Number.NaN,
    f1: Number.NaN,
  };
  if (testSet.rows > 0) {
    const pred = network.predict(testSet.x, testSet.rows);
    const prf = precisionRecallF1(testSet.y, pred, classes === 2 ? 'binary' : 'macro', classes);
    Object.assign(test, { accuracy: accuracy(testSet.y, pred), ...prf });
    if (classes === 2 && new Set(testSet.y).size === 2) {
      const p = network.predictProba(testSet.x, testSet.rows);
      test.rocAuc = rocAuc(
        testSet.y,
        Array.from({ length: testSet.rows }, (_, i) => p[2 * i + 1] as number),
      );
    }
  }
  const onnx = toOnnx(network, {
    producerVersion: bulwarkVersion(),
    metadata: {
      ...(o.metadata ?? {}),
      [ONNX_META.pipeline]: JSON.stringify(pipeline.toJSON()),
      [ONNX_META.label]: o.label,
      [ONNX_META.classValues]: JSON.stringify(classValues),
      [ONNX_META.features]: JSON.stringify(tr.features),
      [ONNX_META.privacy]: JSON.stringify(privacy),
      ...(o.adversarial
        ? {
            'bulwark.adversarial': JSON.stringify({
              method: o.adversarial.method,
              eps: o.adversarial.eps,
              steps: o.adversarial.steps,
              insideDpSgd: true,
            }),
          }
        : {}),
    },
  });
  const out: DpTabularResult = {
    network,
    pipeline,
    classValues,
    features: tr.features,
    trainRows: trainSet.rows,
    trainSet,
    testSet,
    testRows: Int32Array.from(testIdx),
    test,
    privacy,
    onnx,
  };
  if (receipt) out.receipt = receipt;
  return out;
}
