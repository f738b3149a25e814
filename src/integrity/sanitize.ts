/**
 * Inspecting and sanitising training data before (re)training (Tran et al. 2018, Algorithm 1: train,
 * compute representations, remove the flagged rows, retrain). The representation is the last hidden
 * layer of a model trained on the data as it came; the defences flag rows per class
 * (src/robust/defences/poison).
 */
import { BulwarkError, requireNumberIn, requireOneOf, sha256Digest } from '../core/index.js';
import type { Dataset } from '../data/index.js';
import { type Network, runSteps, runStepsAsync, type Steps } from '../ml/index.js';
import {
  activationClusteringSteps,
  hiddenRepresentationSteps,
  type PoisonScores,
  spectralSignatureSteps,
} from '../robust/index.js';
import { type TrainTabularOptions, type TrainTabularResult, trainTabular } from '../train/index.js';

export const INSPECT_METHODS = ['spectral', 'activations', 'both', 'disagreement'] as const;
export type InspectMethod = (typeof INSPECT_METHODS)[number];

/** ONNX metadata key recording what sanitising removed. */
export const META_SANITIZE = 'bulwark.sanitize';

export interface InspectOptions {
  /**
   * Default `both`: a row is flagged when spectral signatures or activation clustering flags it.
   * `disagreement`: a row is flagged when the model gives its label a probability below
   * `disagreementBelow` (a label the model confidently contradicts), meant for a model trained before
   * the data arrived (the previous model of a fine-tune), which has not learnt the poisoned labels.
   */
  method?: InspectMethod;
  /** `disagreement`: the label probability under which a row is flagged (default 0.2). */
  disagreementBelow?: number;
  /** Expected poison fraction for spectral signatures (default 0.05). */
  expectedPoisonFraction?: number;
  seed?: number;
}

export interface FlaggedRow {
  /** 0-based row of the inspected data. */
  row: number;
  class: number;
  /** The spectral score normalised by its class's threshold (>= 1 flagged), or the clustering score. */
  score: number;
  by: ('spectral' | 'activations' | 'disagreement')[];
}

export interface Inspection {
  method: InspectMethod;
  rows: number;
  flagged: FlaggedRow[];
  spectral?: PoisonScores;
  activations?: PoisonScores;
}

/** Runs the defences on a model's hidden representations of `x` (labels `y`). */
export function inspectRows(
  net: Network,
  x: Float32Array,
  y: Int32Array,
  o: InspectOptions = {},
): Inspection {
  return runSteps(inspectSteps(net, x, y, o));
}

/**
 * {@link inspectRows}, giving the event loop a turn (at most every 50 ms) between chunks, classes and
 * phases of the defences, so that a signal is handled during a long inspection; the same result.
 */
export async function inspectRowsAsync(
  net: Network,
  x: Float32Array,
  y: Int32Array,
  o: InspectOptions = {},
): Promise<Inspection> {
  return await runStepsAsync(inspectSteps(net, x, y, o));
}

function* inspectSteps(net: Network, x: Float32Array, y: Int32Array, o: InspectOptions): Steps<Inspection> {
  const method = requireOneOf('method', o.method ?? 'both', INSPECT_METHODS);
  const eps = requireNumberIn('expectedPoisonFraction', o.expectedPoisonFraction ?? 0.05, 0, 0.5);
  const rows = y.length;
  // Said plainly (it surfaced as "rows: expected an integer >= 1, got 0").
  if (rows === 0) throw new BulwarkError('ERR_DATA_VALUE', 'the data to inspect has no rows');
  if (method === 'disagreement') {
    const below = requireNumberIn('disagreementBelow', o.disagreementBelow ?? 0.2, 0, 1);
    return { method, rows, flagged: yield* disagreementSteps(net, x, y, rows, below) };
  }
  const { reps, dim } = yield* hiddenRepresentationSteps(net, x, rows);
  const seed = o.seed ?? 0;
  const spectral =
    method === 'activations'
      ? undefined
      : yield* spectralSignatureSteps(reps, dim, y, net.classes, { expectedPoisonFraction: eps, rng: seed });
  const activations =
    method === 'spectral'
      ? undefined
      : yield* activationClusteringSteps(reps, dim, y, net.classes, { rng: seed + 1 });
  const flagged: FlaggedRow[] = [];
  const thresholds = new Map((spectral?.classes ?? []).map((c) => [c.class, c.threshold ?? Number.NaN]));
  for (let r = 0; r < rows; r++) {
    const by: FlaggedRow['by'] = [];
    if (spectral?.flagged[r]) by.push('spectral');
    if (activations?.flagged[r]) by.push('activations');
    if (by.length === 0) continue;
    const c = y[r] as number;
    const t = thresholds.get(c) ?? Number.NaN;
    const score =
      by.includes('spectral') && t > 0
        ? (spectral?.scores[r] as number) / t
        : (activations?.scores[r] as number);
    flagged.push({ row: r, class: c, score, by });
  }
  flagged.sort((a, b) => b.score - a.score || a.row - b.row);
  return {
    method,
    rows,
    flagged,
    ...(spectral ? { spectral } : {}),
    ...(activations ? { activations } : {}),
  };
}

/** Rows per forward pass of the disagreement check (then the event loop gets a turn). */
const DISAGREEMENT_CHUNK = 4096;

/**
 * Rows whose label `net` gives a probability below `below`. A backdoor or a label flip gives rows the
 * label the attacker wants, against what their features say; a model trained before the batch arrived
 * contradicts those labels, while on clean rows it disagrees only as often as it errs. Unlike spectral
 * signatures and activation clustering it needs no separation of the poisoned rows in the hidden
 * layer, which a DP model's noisy representation does not give (docs/integrity.md).
 */
function* disagreementSteps(
  net: Network,
  x: Float32Array,
  y: Int32Array,
  rows: number,
  below: number,
): Steps<FlaggedRow[]> {
  const k = net.classes;
  const d = net.inputs;
  const flagged: FlaggedRow[] = [];
  for (let start = 0; start < rows; start += DISAGREEMENT_CHUNK) {
    const n = Math.min(DISAGREEMENT_CHUNK, rows - start);
    const p = net.predictProba(x.subarray(start * d, (start + n) * d), n);
    for (let i = 0; i < n; i++) {
      const c = y[start + i] as number;
      const pl = p[i * k + c] as number;
      if (pl < below) flagged.push({ row: start + i, class: c, score: 1 - pl, by: ['disagreement'] });
    }
    yield;
  }
  flagged.sort((a, b) => b.score - a.score || a.row - b.row);
  return flagged;
}

/** The class index of each row's label, in the model's class order; throws ERR_LABEL_INVALID for unknown labels. */
export function labelIndices(ds: Dataset, label: string, classValues: readonly string[]): Int32Array {
  const col = ds.column(label);
  const y = new Int32Array(ds.rowCount);
  for (let i = 0; i < ds.rowCount; i++) {
    const v = col.values[i];
    const s =
      v === null || v === undefined
        ? null
        : typeof v === 'number'
          ? Number.isFinite(v)
            ? String(v)
            : null
          : v;
    const idx = s === null ? -1 : classValues.indexOf(s);
    if (idx < 0)
      throw new BulwarkError(
        'ERR_LABEL_INVALID',
        `row ${i + 1}: label "${String(v)}" is not one of the classes (${classValues.join(', ')})`,
        {
          details: { row: i + 1, field: label },
        },
      );
    y[i] = idx;
  }
  return y;
}

export interface SanitizeRecord {
  method: InspectMethod;
  expectedPoisonFraction: number;
  rowsBefore: number;
  removed: number;
  /** sha256 of the removed 0-based row numbers, comma-separated ascending (ties the record to the rows). */
  removedDigest: string;
  /** The removed 0-based row numbers of the input data, ascending. */
  removedRows: number[];
}

export interface SanitizedTraining {
  result: TrainTabularResult;
  /** The model trained on the data as it came (whose representations were inspected). */
  firstPass: TrainTabularResult;
  inspection: Inspection;
  record: SanitizeRecord;
}

/**
 * `bulwark train --sanitize`: trains on the data as it came, inspects every row with that model's
 * hidden representations, removes the flagged rows and trains again with the same options; the final
 * model's ONNX metadata records what was removed ({@link META_SANITIZE}).
 */
export async function trainSanitized(
  ds: Dataset,
  train: TrainTabularOptions,
  o: InspectOptions = {},
  onStage?: (stage: 'first-pass' | 'inspect' | 'retrain') => void,
): Promise<SanitizedTraining> {
  const method = requireOneOf('method', o.method ?? 'both', INSPECT_METHODS);
  const eps = o.expectedPoisonFraction ?? 0.05;
  onStage?.('first-pass');
  const firstPass = await trainTabular(ds, train);
  onStage?.('inspect');
  const fm = firstPass.pipeline.transform(ds);
  const y = labelIndices(ds, train.label, firstPass.classValues);
  const inspection = await inspectRowsAsync(firstPass.network, fm.matrix, y, {
    method,
    expectedPoisonFraction: eps,
    seed: o.seed ?? train.seed ?? 0,
  });
  const removedRows = inspection.flagged.map((f) => f.row).sort((a, b) => a - b);
  const gone = new Set(removedRows);
  const keep: number[] = [];
  for (let i = 0; i < ds.rowCount; i++) if (!gone.has(i)) keep.push(i);
  const record: SanitizeRecord = {
    method,
    expectedPoisonFraction: eps,
    rowsBefore: ds.rowCount,
    removed: removedRows.length,
    removedDigest: sha256Digest(removedRows.join(',')),
    removedRows,
  };
  onStage?.('retrain');
  const result = await trainTabular(ds.take(keep), {
    ...train,
    metadata: { ...(train.metadata ?? {}), [META_SANITIZE]: JSON.stringify(record) },
  });
  return { result, firstPass, inspection, record };
}
