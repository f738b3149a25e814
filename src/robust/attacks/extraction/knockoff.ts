/**
 * Model extraction by training a copy on the victim's answers (Tramèr et al., USENIX Security 2016;
 * Correia-Silva et al., "Copycat CNN", IJCNN 2018; Orekondy, Schiele & Fritz, "Knockoff Nets", CVPR
 * 2019): the attacker queries the victim with natural inputs from its own pool (here in a seeded random
 * order, Knockoff's "random" strategy), labels them with the victim's top-1 answers (Copycat's hard
 * labels: what a service returning only a class gives away), and trains a surrogate. The measure is the
 * agreement between surrogate and victim on held-out inputs as the number of queries grows: how many
 * queries a rate limit must stop before the model is effectively stolen.
 */
import { invalidArgument, requireInteger, SeededRng } from '../../../core/index.js';
import type { LabelledData } from '../../../ml/index.js';
import type { QueryStream } from '../../defences/detector/stream.js';
import { argmaxRows, type ProbabilityModel } from '../../model.js';

/** Trains a surrogate on victim-labelled rows. */
export type SurrogateTrainer = (data: LabelledData, seed: number) => Promise<ProbabilityModel>;

export interface ExtractionOptions {
  /** Query counts to train a surrogate at, increasing (e.g. [100, 300, 1000, 3000]). */
  budgets: readonly number[];
  trainSurrogate: SurrogateTrainer;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ExtractionPoint {
  queries: number;
  /** Share of held-out inputs where the surrogate predicts the victim's class. */
  agreement: number;
  /** The surrogate's accuracy on the true labels (when the held-out set has them). */
  accuracy?: number;
}

export interface ExtractionResult {
  points: ExtractionPoint[];
  /** The victim's accuracy on the held-out set (when labelled). */
  victimAccuracy?: number;
  /** The attacker's queries in order with the victim's answers (for PRADA and the stateful detector). */
  stream: QueryStream;
  surrogate: ProbabilityModel;
}

/**
 * Runs the extraction at every budget: one query batch for the largest budget, then one surrogate per
 * budget on the first `budget` answers.
 */
export async function extractModel(
  victim: ProbabilityModel,
  pool: { x: Float32Array; rows: number },
  heldOut: { x: Float32Array; rows: number; y?: ArrayLike<number> },
  options: ExtractionOptions,
): Promise<ExtractionResult> {
  const d = victim.inputs;
  const k = victim.classes;
  if (!Array.isArray(options.budgets) || options.budgets.length === 0) {
    throw invalidArgument('budgets', 'a non-empty list of query counts', options.budgets);
  }
  let prev = 0;
  options.budgets.forEach((b, i) => {
    requireInteger(`budgets[${i}]`, b, Math.max(2, prev + 1), pool.rows);
    prev = b;
  });
  if (pool.x.length !== pool.rows * d)
    throw invalidArgument('pool', `${pool.rows} rows of ${d} features`, pool.x.length);
  requireInteger('heldOut.rows', heldOut.rows, 1);
  if (heldOut.y !== undefined && heldOut.y.length !== heldOut.rows)
    throw invalidArgument('heldOut.y', `${heldOut.rows} labels`, heldOut.y.length);
  if (typeof options.trainSurrogate !== 'function')
    throw invalidArgument(
      'trainSurrogate',
      'a function training one surrogate model',
      options.trainSurrogate,
    );
  if (heldOut.x.length !== heldOut.rows * d)
    throw invalidArgument('heldOut', `${heldOut.rows} rows of ${d} features`, heldOut.x.length);
  const max = prev;
  const rng = new SeededRng(requireInteger('seed', options.seed ?? 0, 0));
  const order = rng.permutation(pool.rows).subarray(0, max);
  const qx = new Float32Array(max * d);
  order.forEach((r, i) => {
    qx.set(pool.x.subarray(r * d, (r + 1) * d), i * d);
  });
  const answers = argmaxRows(await victim.predictProba(qx, max), max, k);
  const victimHeld = argmaxRows(await victim.predictProba(heldOut.x, heldOut.rows), heldOut.rows, k);
  const acc = (pred: Int32Array) => {
    if (!heldOut.y) return undefined;
    let c = 0;
    for (let i = 0; i < heldOut.rows; i++) if (pred[i] === heldOut.y[i]) c++;
    return c / heldOut.rows;
  };
  const points: ExtractionPoint[] = [];
  let surrogate: ProbabilityModel | null = null;
  for (const [i, b] of options.budgets.entries()) {
    const data: LabelledData = { x: qx.slice(0, b * d), y: answers.slice(0, b), rows: b };
    surrogate = await options.trainSurrogate(data, 100 + i);
    const pred = argmaxRows(await surrogate.predictProba(heldOut.x, heldOut.rows), heldOut.rows, k);
    let agree = 0;
    for (let r = 0; r < heldOut.rows; r++) if (pred[r] === victimHeld[r]) agree++;
    const p: ExtractionPoint = { queries: b, agreement: agree / heldOut.rows };
    const a = acc(pred);
    if (a !== undefined) p.accuracy = a;
    points.push(p);
    options.onProgress?.(i + 1, options.budgets.length);
  }
  const out: ExtractionResult = {
    points,
    stream: { x: qx, rows: max, predicted: answers },
    surrogate: surrogate as ProbabilityModel,
  };
  const va = acc(victimHeld);
  if (va !== undefined) out.victimAccuracy = va;
  return out;
}
