/**
 * Detectors of attack *traffic* rather than attack inputs: they watch each client's sequence of queries.
 * A black-box evasion attack (Square, HopSkipJump) sends many queries close to each other; a model
 * extraction attack sends queries whose spacing does not look like natural data. Both keep bounded state
 * per client (least recently seen clients are forgotten beyond `maxClients`).
 */
import {
  BulwarkError,
  invalidArgument,
  type Rng,
  requireFiniteRows,
  requireInteger,
  rngOf,
} from '../../../core/index.js';
import type { Calibration, DetectorJson } from './detector.js';

/** One client's queries, in order, with the class the model answered for each (PRADA needs it). */
export interface QueryStream {
  x: Float32Array;
  rows: number;
  predicted?: ArrayLike<number>;
}

/** The verdict on one query. */
export interface QueryVerdict {
  /** Suspicion after this query (higher is more suspicious; NaN while too few queries to judge). */
  score: number;
  flagged: boolean;
}

/** A detector over per-client query streams. */
export interface StreamDetector {
  readonly kind: string;
  readonly calibration: Calibration | null;
  /** Learns the feature scale from clean data. */
  fit(x: Float32Array, rows: number): this;
  /** Records one query of `client` and judges it. */
  observe(client: string, x: Float32Array, predicted?: number): QueryVerdict;
  /** Scores a whole stream as a fresh client would (one score per query). */
  scoreStream(stream: QueryStream): Float64Array;
  /** Sets the threshold from benign streams for a target false-positive rate. */
  calibrate(
    streams: readonly QueryStream[],
    fpr: number,
    options?: { level?: 'query' | 'client' },
  ): Calibration;
  /** Forgets one client, or all. */
  reset(client?: string): void;
  toJSON(): DetectorJson;
}

/** Per-feature standard deviations of clean data (0 becomes 1), the unit of query distances. */
export function featureScale(x: Float32Array, rows: number, d: number): Float32Array {
  requireInteger('rows', rows, 2);
  if (x.length !== rows * d) throw invalidArgument('x', `${rows} rows of ${d} features`, x.length);
  // A NaN made its column's deviation NaN, which `|| 1` then turned into a silent scale of 1.
  requireFiniteRows(x, d, 'fit data');
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[r * d + j] as number) / rows;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++)
      sq[j] = (sq[j] as number) + ((x[r * d + j] as number) - (mean[j] as number)) ** 2;
  }
  return Float32Array.from(sq, (s) => Math.sqrt(s / rows) || 1);
}

/** Benign query streams drawn from clean data: `count` streams of `length` rows in a seeded random order. */
export function benignStreams(
  x: Float32Array,
  rows: number,
  d: number,
  count: number,
  length: number,
  seed: number | Rng = 0,
  predicted?: ArrayLike<number>,
): QueryStream[] {
  requireInteger('count', count, 1);
  requireInteger('length', length, 1, rows);
  const rng = rngOf(seed);
  const out: QueryStream[] = [];
  for (let s = 0; s < count; s++) {
    const perm = rng.permutation(rows).subarray(0, length);
    const xs = new Float32Array(length * d);
    perm.forEach((r, i) => {
      xs.set(x.subarray(r * d, (r + 1) * d), i * d);
    });
    const stream: QueryStream = { x: xs, rows: length };
    if (predicted) stream.predicted = Array.from(perm, (r) => predicted[r] as number);
    out.push(stream);
  }
  return out;
}

/** A least-recently-used map of per-client state. */
export class ClientMap<T> {
  readonly #max: number;
  readonly #map = new Map<string, T>();
  constructor(max: number) {
    this.#max = requireInteger('maxClients', max, 1);
  }
  get size(): number {
    return this.#map.size;
  }
  get(client: string, make: () => T): T {
    if (typeof client !== 'string' || client.length === 0)
      throw invalidArgument('client', 'a non-empty client id', client);
    let v = this.#map.get(client);
    if (v === undefined) {
      v = make();
      if (this.#map.size >= this.#max) {
        const oldest = this.#map.keys().next().value as string;
        this.#map.delete(oldest);
      }
    } else this.#map.delete(client);
    this.#map.set(client, v);
    return v;
  }
  delete(client?: string): void {
    if (client === undefined) this.#map.clear();
    else this.#map.delete(client);
  }
}

export function requireRow(x: Float32Array, d: number): void {
  if (x.length !== d)
    throw new BulwarkError('ERR_SHAPE_MISMATCH', `query: ${x.length} values, expected ${d} features`);
  // A NaN query would enter the client's history: every later distance to it is NaN, and NaN scores
  // are never above a threshold, so one such query could blind the detector for that client.
  for (let j = 0; j < d; j++) {
    if (!Number.isFinite(x[j]))
      throw new BulwarkError('ERR_DATA_VALUE', `query: feature ${j} is ${x[j]}`, { details: { feature: j } });
  }
}
