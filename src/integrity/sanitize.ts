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
import {
  type TabularMetrics,
  type TrainTabularOptions,
  type TrainTabularResult,
  trainTabular,
  withMetadata,
} from '../train/index.js';
import { DEFAULT_MAX_CLASS_DROP, DROP_TOLERANCE } from './regression.js';

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
  /**
   * Rows held out as the test set before anything was inspected: the first model's test rows, on which
   * the final model is tested too (absent in records written before 2026-11-28, which inspected every
   * row and tested on what the removal left).
   */
  heldOut?: number;
  removed: number;
  /** sha256 of the removed 0-based row numbers, comma-separated ascending (ties the record to the rows). */
  removedDigest: string;
  /** The removed 0-based row numbers of the input data, ascending. */
  removedRows: number[];
  /** Per class (label value): training rows inspected and removed. */
  byClass?: { class: string; rows: number; removed: number }[];
  /**
   * Per flagged activation cluster (`cluster` rows of `class`, `spectral` of them flagged by the
   * spectral signatures too, which stay out): the `rows` put back by exclusionary reclassification,
   * those the model trained without them gave their own label.
   */
  reinstated?: { class: string; cluster: number; spectral: number; rows: number }[];
}

export interface SanitizedTraining {
  result: TrainTabularResult;
  /** The model trained on the data as it came (whose representations were inspected). */
  firstPass: TrainTabularResult;
  inspection: Inspection;
  record: SanitizeRecord;
}

/**
 * `bulwark train --sanitize`: trains on the data as it came, inspects that model's TRAINING rows with
 * its hidden representations (the test rows are held out before anything is inspected, so that the
 * removal cannot take the hard rows out of the test set), removes the flagged rows, trains again with
 * the same options on what is left and tests on the same held-out rows. With activation clustering, the
 * rows of a flagged cluster that the retrained model gives their own label are put back and the model
 * trained once more (exclusionary reclassification). The final model's ONNX metadata records what was
 * removed ({@link META_SANITIZE}).
 */
export async function trainSanitized(
  ds: Dataset,
  train: TrainTabularOptions,
  o: InspectOptions = {},
  onStage?: (stage: 'first-pass' | 'inspect' | 'retrain' | 'reclassify') => void,
): Promise<SanitizedTraining> {
  const method = requireOneOf('method', o.method ?? 'both', INSPECT_METHODS);
  const eps = o.expectedPoisonFraction ?? 0.05;
  onStage?.('first-pass');
  const firstPass = await trainTabular(ds, train);
  onStage?.('inspect');
  const test = firstPass.testRows;
  const isTest = new Uint8Array(ds.rowCount);
  for (const r of test) isTest[r] = 1;
  // The training rows, ascending: inspected row i is data row trainRows[i].
  const trainRows: number[] = [];
  for (let i = 0; i < ds.rowCount; i++) if (!isTest[i]) trainRows.push(i);
  const inspected = ds.take(trainRows);
  const y = labelIndices(inspected, train.label, firstPass.classValues);
  const inspection = await inspectRowsAsync(
    firstPass.network,
    firstPass.pipeline.transform(inspected).matrix,
    y,
    { method, expectedPoisonFraction: eps, seed: o.seed ?? train.seed ?? 0 },
  );
  const gone = new Set(inspection.flagged.map((f) => f.row));
  const retrain = () =>
    trainTabular(ds, { ...train, rows: { train: trainRows.filter((_, i) => !gone.has(i)), test } });
  onStage?.('retrain');
  let result = await retrain();
  if (inspection.activations) onStage?.('reclassify');
  const reinstated = exclusionaryReclassification(
    inspection,
    y,
    gone,
    (rows) => result.network.predict(result.pipeline.transform(inspected.take(rows)).matrix, rows.length),
    firstPass.classValues,
  );
  if (reinstated?.some((r) => r.rows > 0)) {
    onStage?.('retrain');
    result = await retrain();
  }
  const removedRows = [...gone].map((i) => trainRows[i] as number).sort((a, b) => a - b);
  const record: SanitizeRecord = {
    method,
    expectedPoisonFraction: eps,
    rowsBefore: ds.rowCount,
    heldOut: test.length,
    removed: removedRows.length,
    removedDigest: sha256Digest(removedRows.join(',')),
    removedRows,
    byClass: firstPass.classValues.map((cls, c) => {
      let rows = 0;
      let removed = 0;
      for (let i = 0; i < y.length; i++) {
        if (y[i] !== c) continue;
        rows++;
        if (gone.has(i)) removed++;
      }
      return { class: cls, rows, removed };
    }),
    ...(reinstated ? { reinstated } : {}),
  };
  result = withMetadata(result, { [META_SANITIZE]: JSON.stringify(record) });
  return { result, firstPass, inspection, record };
}

/**
 * Where the model trained after the removal is worse than the first on the same held-out rows: overall
 * accuracy down by more than 0.01 (the regression comparison's default clean limit), a class's recall
 * down by more than {@link DEFAULT_MAX_CLASS_DROP}, or the positive class's average precision (PR AUC,
 * binary labels) down by more than 0.02. On clean data the removal has nothing to take but clean rows:
 * spectral signatures take 1.5 x eps of every class, and the rows at the end of a class's top direction
 * are often its hardest ones (legitimate rows that look like fraud). One reason per finding, for the user;
 * empty when none.
 */
export function sanitizeCosts(
  before: TabularMetrics,
  after: TabularMetrics,
  classValues: readonly string[],
): string[] {
  const out: string[] = [];
  const pts = (v: number) => `${(100 * v).toFixed(2)} %`;
  if (before.accuracy - after.accuracy > 0.01 + DROP_TOLERANCE)
    out.push(`accuracy ${pts(before.accuracy)} -> ${pts(after.accuracy)}`);
  const recall = (m: TabularMetrics, c: number) => {
    const row = m.confusion[c] ?? [];
    const n = row.reduce((a, b) => a + b, 0);
    return n === 0 ? Number.NaN : (row[c] ?? 0) / n;
  };
  classValues.forEach((v, c) => {
    const [b, a] = [recall(before, c), recall(after, c)];
    if (b - a > DEFAULT_MAX_CLASS_DROP + DROP_TOLERANCE) out.push(`recall of "${v}" ${pts(b)} -> ${pts(a)}`);
  });
  const [pb, pa] = [before.averagePrecision, after.averagePrecision];
  if (pb !== undefined && pa !== undefined && pb - pa > 0.02 + DROP_TOLERANCE)
    out.push(`PR AUC ${pb.toFixed(4)} -> ${pa.toFixed(4)}`);
  return out;
}

/**
 * Exclusionary reclassification (Chen et al., arXiv:1811.03728, section 3.3), row by row: a row of a
 * flagged activation cluster comes back (is deleted from `gone`, the flagged rows) when a model that
 * did not learn from it gives it its own label (`predict`: the classes of inspected rows, by a model
 * trained without them; for a fine-tune, the previous model, which never saw the batch). A poisoned
 * row carries a label its features contradict, so such a model sends it to its source class; a clean
 * row of a natural subgroup of its class (an unusual merchant type, a night-time pattern) is explained
 * by the rest of the class. The paper judges the cluster as a whole (put back when l/p > T); by row, a
 * cluster that mixes clean rows with poisoned ones (the tests' backdoor: 95 planted rows in a cluster of
 * 283) returns its clean rows and keeps the rest out. Rows the spectral signatures flagged too stay
 * out: only the clustering's verdict is undone. Undefined when activation clustering did not run.
 */
export function exclusionaryReclassification(
  inspection: Inspection,
  y: Int32Array,
  gone: Set<number>,
  predict: (rows: number[]) => Int32Array,
  classValues: readonly string[],
): NonNullable<SanitizeRecord['reinstated']> | undefined {
  if (!inspection.activations) return undefined;
  return flaggedClusters(inspection, y).map(({ c, rows }) => {
    const predicted = predict(rows);
    let back = 0;
    let spectral = 0;
    rows.forEach((r, i) => {
      if (inspection.spectral?.flagged[r]) spectral++;
      else if (predicted[i] === c && gone.delete(r)) back++;
    });
    return { class: classValues[c] ?? String(c), cluster: rows.length, spectral, rows: back };
  });
}

/** The activation clusters the inspection flagged: per class, the inspected rows of its cluster. */
function flaggedClusters(inspection: Inspection, y: Int32Array): { c: number; rows: number[] }[] {
  const a = inspection.activations;
  if (!a) return [];
  return a.classes
    .filter((s) => s.flagged > 0)
    .map((s) => {
      const rows: number[] = [];
      for (let r = 0; r < y.length; r++) if (a.flagged[r] && y[r] === s.class) rows.push(r);
      return { c: s.class, rows };
    });
}
