/**
 * Continuous learning done carefully (issue 12 §3, for ONNX models Bulwark trained): fine-tune the
 * previous model on a new batch only after the batch passed the poisoning checks (spectral signatures
 * and activation clustering on the PREVIOUS model's hidden layer, which has not seen the batch; flagged
 * rows are removed), then compare the fine-tuned model with the previous one on a fixed clean and
 * adversarial evaluation set, and refuse it (ERR_MODEL_REGRESSION) when it regresses beyond the limits.
 * The caller writes the model only when this returns.
 */
import { BulwarkError, bulwarkVersion, sha256Digest } from '../core/index.js';
import { type Dataset, Pipeline, type Schema } from '../data/index.js';
import {
  fromOnnx,
  type LabelledData,
  metadataJson,
  type Network,
  onnxMetadata,
  toOnnx,
  train,
} from '../ml/index.js';
import { networkModel, tabularDomain, takeLabels, takeRows } from '../robust/index.js';
import { META_CLASS_VALUES, META_LABEL, META_PIPELINE, META_PROTECTED_DATA } from '../train/index.js';
import { requireDisjoint } from './overlap.js';
import {
  compareModels,
  type ModelComparison,
  type RegressionLimits,
  requireDistinctEvaluationRows,
  requireEvaluationRows,
  requireNoRegression,
} from './regression.js';
import {
  exclusionaryReclassification,
  type Inspection,
  type InspectMethod,
  inspectRowsAsync,
  labelIndices,
  META_SANITIZE,
  type SanitizeRecord,
} from './sanitize.js';

/** ONNX metadata key: the digest of the model this one was fine-tuned from. */
export const META_CONTINUED_FROM = 'bulwark.continued_from';

/**
 * Metadata of the previous model that must NOT be carried over to the fine-tuned one: the privacy
 * guarantee (src/privacy, `bulwark.privacy`) and the adversarial-training settings (src/train,
 * `bulwark.adversarial`) describe how the previous model was trained. Fine-tuning on the new batch is
 * neither DP nor adversarial, so copying them would make the new model (and the manifest
 * `protectModel` builds from this metadata) claim a guarantee it does not have. The previous model's
 * claims stay in its own metadata / package, which the new one names (`bulwark.continued_from`).
 */
const NOT_INHERITED = ['bulwark.privacy', 'bulwark.adversarial', META_PROTECTED_DATA] as const;

export interface ContinueOptions {
  label: string;
  /** Poisoning check on the new batch (default both defences). */
  method?: InspectMethod;
  expectedPoisonFraction?: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  /** The fixed evaluation set (raw rows with the label), encoded with the previous model's pipeline. */
  evaluation: Dataset;
  /** Attack budget of the adversarial evaluation (default 0.05) and the limits. */
  eps?: number;
  maxCleanDrop?: number;
  maxRobustDrop?: number;
  /** Largest drop of any class's clean recall (default DEFAULT_MAX_CLASS_DROP, regression.ts). */
  maxClassDrop?: number;
  schema?: Schema;
  /** More ONNX metadata entries of the new model (e.g. `bulwark.protected_data`); its own keys win. */
  metadata?: Readonly<Record<string, string>>;
  onProgress?: (done: number, total: number) => void;
}

export interface ContinueResult {
  onnx: Uint8Array;
  previousDigest: string;
  inspection: Inspection;
  removed: number;
  /** Rows of flagged activation clusters the previous model gives their own label, put back (see sanitize.ts). */
  reinstated?: SanitizeRecord['reinstated'];
  trainRows: number;
  comparison: ModelComparison;
}

/** A required JSON metadata entry of the previous model (ERR_ONNX_INVALID when missing or corrupt). */
export function metaJson<T>(meta: Record<string, string>, key: string): T {
  return metadataJson<T>(meta, key, 'the previous model', true);
}

/** What a continuation (plain or DP) reads from the previous model's ONNX bytes. */
export interface PreviousModel {
  network: Network;
  /** Its preprocessing state (`bulwark.pipeline`, as `Pipeline.toJSON()` wrote it). */
  pipeline: unknown;
  classValues: string[];
  /** `sha256:<hex>` of the ONNX bytes (the new model's `bulwark.continued_from`). */
  digest: string;
}

/**
 * Reads the previous model (its metadata already parsed as `meta`) and checks that it predicts `label`
 * (ERR_USAGE otherwise); ERR_ONNX_INVALID when its pipeline or class values are missing.
 */
export function previousModel(
  previous: Uint8Array,
  label: string,
  meta: Record<string, string> = onnxMetadata(previous),
): PreviousModel {
  const pipeline = metaJson<unknown>(meta, META_PIPELINE);
  const classValues = metaJson<string[]>(meta, META_CLASS_VALUES);
  if (meta[META_LABEL] !== undefined && meta[META_LABEL] !== label)
    throw new BulwarkError(
      'ERR_USAGE',
      `--label "${label}": the previous model predicts "${meta[META_LABEL]}"`,
    );
  return { network: fromOnnx(previous).network, pipeline, classValues, digest: sha256Digest(previous) };
}

/**
 * The fixed evaluation set encoded with the previous model's pipeline, refused when it cannot serve as
 * one: no rows (ERR_DATA_VALUE), a label that is not one of the model's classes (ERR_LABEL_INVALID),
 * columns the pipeline cannot encode, or too few rows for the comparison under `limits` to mean
 * anything (ERR_DATA_VALUE, {@link minEvaluationRows}). Run before any training or privacy spend.
 */
export function checkEvaluation(
  evaluation: Dataset,
  label: string,
  classValues: readonly string[],
  pipeline: Pipeline,
  inputs: number,
  limits: RegressionLimits = {},
): LabelledData {
  if (evaluation.rowCount === 0)
    throw new BulwarkError('ERR_DATA_VALUE', 'the evaluation set (--eval) has no rows', {
      details: { field: 'evaluation' },
    });
  const fm = pipeline.transform(evaluation);
  if (fm.features.length !== inputs)
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `the evaluation set gives ${fm.features.length} features, the model takes ${inputs}`,
    );
  const y = labelIndices(evaluation, label, classValues);
  // One row (or a handful) decides the comparison by chance: refused here, before the fine-tuning and
  // any privacy spend, not by compareModels afterwards.
  requireEvaluationRows(evaluation.rowCount, limits);
  // A class with no evaluation row is a class the comparison cannot see: on a set of one class, a new
  // model that predicts only that class scores 100 % and "improves" on the old one.
  const present = new Set(y);
  const missing = classValues.filter((_, c) => !present.has(c));
  if (missing.length > 0)
    throw new BulwarkError(
      'ERR_DATA_VALUE',
      `the evaluation set (--eval) has no row of class ${missing.map((m) => `"${m}"`).join(', ')}: the comparison could not see what the new model does on it (a model that never predicts it would pass); give rows of every class the model predicts`,
      { details: { field: 'evaluation', missing: missing.join(', ') } },
    );
  const data = { x: fm.matrix, y, rows: evaluation.rowCount };
  requireDistinctEvaluationRows(data, limits, 'the evaluation set (--eval)');
  return data;
}

/** The regression limits given in `o` (the defaults of compareModels for those not given). */
export function limitsOf(o: RegressionLimits): RegressionLimits {
  return {
    ...(o.maxCleanDrop === undefined ? {} : { maxCleanDrop: o.maxCleanDrop }),
    ...(o.maxRobustDrop === undefined ? {} : { maxRobustDrop: o.maxRobustDrop }),
    ...(o.maxClassDrop === undefined ? {} : { maxClassDrop: o.maxClassDrop }),
  };
}

/** The limits and settings of the regression comparison (shared with the DP continuation). */
export type ComparisonSettings = Pick<
  ContinueOptions,
  'eps' | 'maxCleanDrop' | 'maxRobustDrop' | 'maxClassDrop' | 'schema' | 'seed'
> & {
  /** The model's class values, by index: the per-class figures are reported under these names. */
  classNames?: readonly string[];
};

/**
 * Compares `old` and `next` on the encoded evaluation set, clean and under attack, and throws
 * ERR_MODEL_REGRESSION beyond the limits. The attack's valid ranges come from the schema and the rows
 * seen: the evaluation rows, plus `batch` when given (the non-DP path; the DP path leaves the private
 * batch out, so the comparison depends on it only through the DP model).
 */
export async function compareOnEvaluation(
  old: Network,
  next: Network,
  pipeline: Pipeline,
  evaluation: LabelledData,
  o: ComparisonSettings,
  batch?: LabelledData,
): Promise<ModelComparison> {
  const stringInputs = pipeline
    .toJSON()
    .inputs.filter((i) => i.type === 'string')
    .map((i) => i.name);
  const seen = new Float32Array((batch?.x.length ?? 0) + evaluation.x.length);
  if (batch) seen.set(batch.x, 0);
  seen.set(evaluation.x, batch?.x.length ?? 0);
  const domain = tabularDomain({
    features: pipeline.features,
    x: seen,
    rows: (batch?.rows ?? 0) + evaluation.rows,
    ...(o.schema ? { schema: o.schema } : {}),
    categorical: stringInputs,
  });
  const comparison = await compareModels(networkModel(old), networkModel(next), evaluation, {
    domain,
    eps: o.eps ?? 0.05,
    ...limitsOf(o),
    seed: o.seed ?? 0,
    ...(o.classNames ? { classNames: o.classNames } : {}),
  });
  requireNoRegression(comparison);
  return comparison;
}

/** Fine-tunes `previous` (ONNX bytes from bulwark train) on `batch`; throws ERR_MODEL_REGRESSION on regression. */
export async function continueTraining(
  previous: Uint8Array,
  batch: Dataset,
  o: ContinueOptions,
): Promise<ContinueResult> {
  const meta = onnxMetadata(previous);
  const prev = previousModel(previous, o.label, meta);
  const pipeline = Pipeline.load(prev.pipeline);
  const { classValues, network: old, digest: previousDigest } = prev;
  const encode = (ds: Dataset): LabelledData => {
    const fm = pipeline.transform(ds);
    if (fm.features.length !== old.inputs)
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `the data gives ${fm.features.length} features, the model takes ${old.inputs}`,
      );
    return { x: fm.matrix, y: labelIndices(ds, o.label, classValues), rows: ds.rowCount };
  };
  if (batch.rowCount === 0)
    throw new BulwarkError('ERR_DATA_VALUE', 'the new batch (--data) has no rows', {
      details: { field: 'data' },
    });
  const data = encode(batch);
  // Checked before the fine-tuning runs, not after it (see checkEvaluation).
  const evaluation = checkEvaluation(o.evaluation, o.label, classValues, pipeline, old.inputs, limitsOf(o));
  // Evaluation rows in the batch would be trained on, and then judge the model that learnt them: a
  // poisoned batch carrying copies of the evaluation rows keeps its accuracy there while the poison
  // works elsewhere. (Not checked under DP, continue-dp.ts: the answer would reveal whether given rows
  // are in the private batch, outside the accounting.)
  requireDisjoint(evaluation, data, 'the evaluation set (--eval)', 'the new batch (--data)');
  // The poisoning check uses the previous model: its representations were learned without this batch.
  const inspection = await inspectRowsAsync(old, data.x, data.y, {
    method: o.method ?? 'both',
    expectedPoisonFraction: o.expectedPoisonFraction ?? 0.05,
    seed: o.seed ?? 0,
  });
  const gone = new Set(inspection.flagged.map((f) => f.row));
  // The previous model never saw the batch: it is the model "trained without the cluster" that
  // exclusionary reclassification asks for, with no retraining.
  const reinstated = exclusionaryReclassification(
    inspection,
    data.y,
    gone,
    (rows) => old.predict(takeRows(data.x, old.inputs, rows), rows.length),
    classValues,
  );
  const keep: number[] = [];
  for (let i = 0; i < data.rows; i++) if (!gone.has(i)) keep.push(i);
  const kept: LabelledData = {
    x: takeRows(data.x, old.inputs, keep),
    y: takeLabels(data.y, keep),
    rows: keep.length,
  };
  const next = old.clone();
  const epochs = o.epochs ?? 5;
  const batchSize = o.batchSize ?? 128;
  const batches = Math.ceil(kept.rows / batchSize);
  await train(next, kept, {
    epochs,
    batchSize,
    learningRate: o.learningRate ?? 1e-3,
    seed: o.seed ?? 0,
    onProgress: (p) => o.onProgress?.((p.epoch - 1) * batches + p.batch, epochs * batches),
  });
  const comparison = await compareOnEvaluation(
    old,
    next,
    pipeline,
    evaluation,
    { ...o, classNames: classValues },
    data,
  );
  const removedRows = [...gone].sort((a, b) => a - b);
  const inherited = { ...meta };
  for (const k of NOT_INHERITED) delete inherited[k];
  const onnx = toOnnx(next, {
    producerVersion: bulwarkVersion(),
    metadata: {
      ...inherited,
      ...(o.metadata ?? {}),
      [META_CONTINUED_FROM]: previousDigest,
      [META_SANITIZE]: JSON.stringify({
        method: inspection.method,
        expectedPoisonFraction: o.expectedPoisonFraction ?? 0.05,
        rowsBefore: data.rows,
        removed: removedRows.length,
        removedDigest: sha256Digest(removedRows.join(',')),
        ...(reinstated ? { reinstated } : {}),
        removedRows,
      }),
    },
  });
  return {
    onnx,
    previousDigest,
    inspection,
    removed: removedRows.length,
    ...(reinstated ? { reinstated } : {}),
    trainRows: kept.rows,
    comparison,
  };
}
