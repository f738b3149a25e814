/**
 * Continuous learning with differential privacy (issue 12 §3, `bulwark train --from MODEL --dp-epsilon`):
 * DP-SGD fine-tuning of a DP-trained model on a new batch, spending from the SAME ledger budget the
 * model's training spent from, so that the budget's total bounds the whole lineage.
 *
 * Order, each step refusing before the next runs:
 * 1. the previous model must be DP-trained (ERR_DP_UNACCOUNTED otherwise: its weights would carry an
 *    unaccounted amount of its own training data) and record its ledger budget; the ledger given must be
 *    that ledger (by id) and `budget`, when given, that budget (ERR_LEDGER_MISMATCH);
 * 2. the run is planned from public facts (schema, sizes, ε, δ): features, classes, the warm-start check
 *    (ERR_WARM_START_MISMATCH), σ for the target ε;
 * 3. `ledger.preview` of the planned spend: ERR_PRIVACY_BUDGET_EXCEEDED / _UNSET before the data is looked at;
 * 4. the poisoning check as a GATE: the previous model inspects the batch (non-private; by default the
 *    share of rows whose label it confidently contradicts) and the batch is refused whole
 *    (ERR_POISON_GATE) when the flagged share exceeds `maxFlagged`. No row
 *    is removed: a data-dependent removal would make which rows are trained on depend on every row, which
 *    the DP-SGD analysis does not cover. What is released about the batch outside the DP accounting is
 *    this one pass/fail bit (the flagged count is not reported);
 * 5. the spend (atomic, in `trainDpSgd`, which refuses if a concurrent spend took the budget meanwhile),
 *    then DP-SGD from the previous weights (`trainTabularDp` with `initial`);
 * 6. the regression comparison on the fixed evaluation set (ERR_MODEL_REGRESSION): it looks at the two
 *    models and the evaluation rows only (post-processing of the DP model); the budget is spent by then.
 */
import { BulwarkError, requireNumberIn } from '../core/index.js';
import { type Dataset, Pipeline, type Schema } from '../data/index.js';
import { type ActivationName, type LabelledData, onnxMetadata } from '../ml/index.js';
import {
  type BudgetLedger,
  type DpTrainingGuarantee,
  type NoiseSource,
  ONNX_META,
  type SpendReceipt,
  trainTabularDp,
} from '../privacy/index.js';
import {
  checkEvaluation,
  compareOnEvaluation,
  limitsOf,
  META_CONTINUED_FROM,
  metaJson,
  previousModel,
} from './continue.js';
import type { ModelComparison } from './regression.js';
import { type InspectMethod, inspectRowsAsync, labelIndices } from './sanitize.js';

/** ONNX metadata key: the poisoning gate a DP fine-tune passed (settings and verdict only, no counts). */
export const META_POISON_GATE = 'bulwark.poison_gate';

export interface DpContinueOptions {
  label: string;
  /** The schema with the public bounds and categories the previous model was trained with. */
  schema: Schema;
  /** Target ε and δ of THIS run (the model's recorded guarantee becomes the parent's plus this). */
  epsilon: number;
  delta: number;
  /** The ledger the previous model spent from (checked by id). */
  ledger: BudgetLedger;
  /** The budget name; default (and required to be) the one the previous model recorded. */
  budget?: string;
  /** Who fine-tunes; default the analyst the previous model recorded, if any. */
  analyst?: string;
  /** Architecture overrides: must match the previous model (ERR_WARM_START_MISMATCH otherwise). */
  model?: 'logreg' | 'mlp';
  hidden?: readonly number[];
  activation?: ActivationName;
  features?: readonly string[];
  clipNorm?: number;
  accountant?: 'rdp' | 'pld';
  epochs?: number;
  batchSize?: number;
  /** The batch's row count declared public (see DpTabularOptions.publicRows). */
  publicRows?: number;
  learningRate?: number;
  optimizer?: 'sgd' | 'adam';
  seed?: number;
  noise?: NoiseSource;
  /**
   * The gate: the check run on the batch with the previous model, and the largest flagged share allowed.
   * Default `disagreement` (rows whose label the previous model contradicts): spectral signatures and
   * activation clustering (`both`) read the previous model's hidden layer, which under DP noise did not
   * separate a backdoor from clean rows in our measurements (docs/integrity.md), so they are opt-in.
   */
  method?: InspectMethod;
  expectedPoisonFraction?: number;
  maxFlagged: number;
  /** The fixed evaluation set and the regression limits (as the non-DP continuation). */
  evaluation: Dataset;
  eps?: number;
  maxCleanDrop?: number;
  maxRobustDrop?: number;
  maxClassDrop?: number;
  /** More ONNX metadata entries of the new model (e.g. `bulwark.protected_data`); its own keys win. */
  metadata?: Readonly<Record<string, string>>;
  note?: (message: string) => void;
  onProgress?: (done: number, total: number) => void;
}

/** The gate's record: what it ran and that it passed (no count: see the module documentation). */
export interface PoisonGateRecord {
  method: InspectMethod;
  expectedPoisonFraction: number;
  maxFlagged: number;
  passed: true;
}

export interface DpContinueResult {
  onnx: Uint8Array;
  previousDigest: string;
  gate: PoisonGateRecord;
  trainRows: number;
  privacy: DpTrainingGuarantee;
  receipt?: SpendReceipt;
  comparison: ModelComparison;
}

/** The previous model's DP guarantee, or ERR_DP_UNACCOUNTED / ERR_LEDGER_MISMATCH (step 1). */
export function previousGuarantee(
  meta: Record<string, string>,
  ledger: BudgetLedger,
  budget: string | undefined,
  seededRun = false,
): DpTrainingGuarantee & { budget: NonNullable<DpTrainingGuarantee['budget']> } {
  if (meta[ONNX_META.privacy] === undefined)
    throw new BulwarkError(
      'ERR_DP_UNACCOUNTED',
      'the model to fine-tune was not trained with differential privacy: its weights carry an unaccounted amount of its own training data, so a DP fine-tune of it would claim a guarantee that does not hold for that data',
    );
  const p = metaJson<DpTrainingGuarantee>(meta, ONNX_META.privacy);
  // A seeded run may continue a seeded model (a reproducible experiment): its result is marked
  // insecure-seeded in turn, so the chain can never pass for DP.
  if (p.noise !== undefined && !seededRun)
    throw new BulwarkError(
      'ERR_DP_UNACCOUNTED',
      `the model to fine-tune was trained with ${p.noise} noise: its recorded guarantee does not hold (whoever learns the seed can remove the noise), so it cannot be the start of a DP model`,
    );
  const b = p.budget;
  if (!b || typeof b.ledger !== 'string' || typeof b.dataset !== 'string')
    throw new BulwarkError(
      'ERR_LEDGER_MISMATCH',
      'the model to fine-tune records no ledger budget (trained without a ledger, or before ledger ids were recorded): cannot tell which budget its training spent',
    );
  if (b.ledger !== ledger.id)
    throw new BulwarkError(
      'ERR_LEDGER_MISMATCH',
      `the ledger ${ledger.location} (id ${ledger.id}) is not the one the model to fine-tune spent from (id ${b.ledger}); give that ledger with --ledger`,
      { details: { expected: b.ledger, actual: ledger.id } },
    );
  if (budget !== undefined && budget !== b.dataset)
    throw new BulwarkError(
      'ERR_LEDGER_MISMATCH',
      `--budget "${budget}": the model to fine-tune spent from budget "${b.dataset}"; a fine-tune spends from the same budget`,
      { details: { expected: b.dataset, actual: budget } },
    );
  return { ...p, budget: b };
}

/**
 * Whether `flagged` of `rows` is more than the share `max`. Not `flagged > max * rows`: 0.29 * 100 is
 * 28.999999999999996, so 29 flagged rows of 100 counted as more than 0.29 of them.
 */
export function flaggedBeyond(flagged: number, rows: number, max: number): boolean {
  return flagged > max * rows + 1e-9 * Math.max(1, rows);
}

/** DP fine-tuning of `previous` (ONNX bytes of a DP model) on `batch` (see the module documentation). */
export async function continueTrainingDp(
  previous: Uint8Array,
  batch: Dataset,
  o: DpContinueOptions,
): Promise<DpContinueResult> {
  const maxFlagged = requireNumberIn('maxFlagged', o.maxFlagged, 0, 1);
  const method = o.method ?? 'disagreement';
  const expectedPoisonFraction = o.expectedPoisonFraction ?? 0.05;
  const meta = onnxMetadata(previous);
  const parent = previousGuarantee(meta, o.ledger, o.budget, o.noise !== undefined && !o.noise.secure);
  const prev = previousModel(previous, o.label, meta);
  const { classValues, network: old, digest: previousDigest } = prev;
  const pipelineState = prev.pipeline as { inputs: { name: string }[] };
  // The evaluation set is read before anything is spent: an empty one, an unknown label or a column the
  // previous model's pipeline cannot encode used to fail only after the DP spend, so the budget was
  // gone and no model came out. (The warm start requires the new pipeline to be the previous one.)
  checkEvaluation(o.evaluation, o.label, classValues, Pipeline.load(prev.pipeline), old.inputs, limitsOf(o));
  const analyst = o.analyst ?? parent.budget.analyst;
  const gate: PoisonGateRecord = { method, expectedPoisonFraction, maxFlagged, passed: true };
  let passedGate = false;
  const r = await trainTabularDp(batch, {
    label: o.label,
    schema: o.schema,
    model: o.model ?? (old.hidden.length === 0 ? 'logreg' : 'mlp'),
    method: 'dp-sgd',
    hidden: o.hidden ?? old.hidden,
    activation: o.activation ?? old.activation,
    features: o.features ?? pipelineState.inputs.map((i) => i.name),
    epsilon: o.epsilon,
    delta: o.delta,
    accountant: o.accountant ?? 'rdp',
    ...(o.clipNorm === undefined ? {} : { clipNorm: o.clipNorm }),
    ...(o.epochs === undefined ? {} : { epochs: o.epochs }),
    ...(o.batchSize === undefined ? {} : { batchSize: o.batchSize }),
    ...(o.publicRows === undefined ? {} : { publicRows: o.publicRows }),
    ...(o.learningRate === undefined ? {} : { learningRate: o.learningRate }),
    ...(o.optimizer === undefined ? {} : { optimizer: o.optimizer }),
    seed: o.seed ?? 0,
    // Every row of the batch is trained on: the comparison uses the fixed evaluation set instead.
    testFraction: 0,
    budget: {
      ledger: o.ledger,
      dataset: parent.budget.dataset,
      ...(analyst === undefined ? {} : { analyst }),
    },
    ...(o.noise ? { noise: o.noise } : {}),
    initial: { network: old, pipeline: pipelineState, classValues, privacy: parent },
    // Written only if the run gets that far, i.e. the gate passed (it runs before the spend).
    metadata: {
      ...(o.metadata ?? {}),
      [META_CONTINUED_FROM]: previousDigest,
      [META_POISON_GATE]: JSON.stringify(gate),
    },
    beforeSpend: async (plan) => {
      // Refuse an exhausted budget before the batch is looked at, then run the gate.
      await o.ledger.preview({
        dataset: parent.budget.dataset,
        ...(analyst === undefined ? {} : { analyst }),
        epsilon: plan.epsilon,
        delta: plan.delta,
        operation: 'train.dp-sgd',
        // What the spend will record: a `pld` budget previews the composed figure the spend will charge.
        events: plan.events,
      });
      const inspection = await inspectRowsAsync(old, plan.trainSet.x, plan.trainSet.y, {
        method,
        expectedPoisonFraction,
        seed: o.seed ?? 0,
      });
      if (flaggedBeyond(inspection.flagged.length, inspection.rows, maxFlagged))
        throw new BulwarkError(
          'ERR_POISON_GATE',
          `the poisoning check (${method}, previous model) flagged more than ${maxFlagged} of the new batch: refused whole (under DP rows are not removed one by one); nothing spent or trained`,
          { details: { method, maxFlagged } },
        );
      // No note: the result carries the gate (the CLI's summary line and --json say it once).
      passedGate = true;
    },
    ...(o.note ? { note: o.note } : {}),
    ...(o.onProgress ? { onProgress: (done, total) => o.onProgress?.(done, total) } : {}),
  });
  if (!passedGate) throw new BulwarkError('ERR_INTERNAL', 'the poisoning gate did not run');
  const encode = (ds: Dataset): LabelledData => {
    const fm = r.pipeline.transform(ds);
    return { x: fm.matrix, y: labelIndices(ds, o.label, classValues), rows: ds.rowCount };
  };
  const comparison = await compareOnEvaluation(old, r.network, r.pipeline, encode(o.evaluation), {
    ...(o.eps === undefined ? {} : { eps: o.eps }),
    ...(o.maxCleanDrop === undefined ? {} : { maxCleanDrop: o.maxCleanDrop }),
    ...(o.maxRobustDrop === undefined ? {} : { maxRobustDrop: o.maxRobustDrop }),
    ...(o.maxClassDrop === undefined ? {} : { maxClassDrop: o.maxClassDrop }),
    classNames: classValues,
    // No schema: the DP pipeline's features are min-max scaled, not in the schema's raw units; the
    // attack's ranges come from the evaluation rows (never from the private batch).
    seed: o.seed ?? 0,
  });
  return {
    onnx: r.onnx,
    previousDigest,
    gate,
    trainRows: r.trainRows,
    privacy: r.privacy,
    ...(r.receipt ? { receipt: r.receipt } : {}),
    comparison,
  };
}
