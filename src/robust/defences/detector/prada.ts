/**
 * PRADA (Juuti, Szyller, Marchal & Asokan, "PRADA: protecting against DNN model stealing attacks",
 * IEEE EuroS&P 2019): per client, for each query x answered with class c, the distance d_min from x to
 * the nearest query in the client's "growing set" G_c is recorded in D; x joins G_c when d_min exceeds
 * the class threshold T_c = max(T_c, mean - std of the distances that grew G_c). Natural queries give
 * d_min values that are close to normally distributed; the synthetic, perturbation-based queries of
 * extraction attacks (Papernot's Jacobian augmentation, random noise around seeds) do not. Once D holds
 * `minQueries` values, the Shapiro-Wilk W of D is the test: W below the threshold means an attack.
 *
 * score = 1 - W (higher is more suspicious); calibrated per client: a benign client's largest score over
 * its stream exceeds the threshold with probability `fpr`. Distances are in standardised units.
 */
import { BulwarkError, invalidArgument, requireInteger } from '../../../core/index.js';
import { runSteps, runStepsAsync, type Steps } from '../../../ml/index.js';
import { shapiroWilkSorted } from '../../linalg.js';
import {
  base64ToF32,
  type Calibration,
  calibrationToJson,
  checkDetectorJson,
  conformalThreshold,
  DETECTOR_FORMAT,
  DETECTOR_VERSION,
  type DetectorJson,
  f32ToBase64,
  notReady,
} from './detector.js';
import {
  ClientMap,
  featureScale,
  type QueryStream,
  type QueryVerdict,
  requireRow,
  type StreamDetector,
} from './stream.js';

/** Options of {@link PradaDetector}. */
export interface PradaOptions {
  inputs: number;
  classes: number;
  /** Queries before the test starts (default 100, as the paper). */
  minQueries?: number;
  /** Most recent distances tested (default 2000; Shapiro-Wilk's approximation holds to 5000). */
  window?: number;
  /** Largest growing set per class (default 2000; bounds memory and time per query). */
  maxGrowing?: number;
  maxClients?: number;
}

/**
 * One client's PRADA state. Exported for stores that keep it outside the detector (shared-state.ts,
 * Redis for several gateway replicas).
 */
export interface PradaClientState {
  /** Per class: the growing set G_c (standardised queries), in the order they joined. */
  growing: Float32Array[][];
  /** Per class: d_min of each query that grew G_c after its first (the threshold's sample). */
  grownBy: number[][];
  /** Per class: T_c. */
  thresholds: Float64Array;
  /** The last `window` distances in arrival order, and the same sorted (for the test). */
  distances: number[];
  sorted: number[];
}
type ClientState = PradaClientState;

export class PradaDetector implements StreamDetector {
  readonly kind = 'prada';
  readonly inputs: number;
  readonly classes: number;
  readonly minQueries: number;
  readonly window: number;
  readonly maxGrowing: number;
  readonly maxClients: number;
  #scale: Float32Array | null = null;
  #calibration: Calibration | null = null;
  #clients: ClientMap<ClientState>;

  constructor(o: PradaOptions) {
    this.inputs = requireInteger('inputs', o.inputs, 1);
    this.classes = requireInteger('classes', o.classes, 2);
    this.minQueries = requireInteger('minQueries', o.minQueries ?? 100, 3);
    this.window = requireInteger('window', o.window ?? 2000, this.minQueries, 5000);
    // Each query is compared with its class's whole growing set: bounded, like window.
    this.maxGrowing = requireInteger('maxGrowing', o.maxGrowing ?? 2000, 1, 100_000);
    this.maxClients = requireInteger('maxClients', o.maxClients ?? 10_000, 1, 10_000_000);
    this.#clients = new ClientMap(this.maxClients);
  }

  get calibration(): Calibration | null {
    return this.#calibration;
  }

  fit(x: Float32Array, rows: number): this {
    this.#scale = featureScale(x, rows, this.inputs);
    this.#calibration = null;
    return this;
  }

  #fresh = (): ClientState => ({
    growing: Array.from({ length: this.classes }, () => []),
    grownBy: Array.from({ length: this.classes }, () => []),
    thresholds: new Float64Array(this.classes),
    distances: [],
    sorted: [],
  });

  #push(st: ClientState, x: Float32Array, c: number): number {
    const s = this.#scale;
    if (!s) throw notReady(this.kind, 'fit');
    requireRow(x, this.inputs);
    if (!Number.isInteger(c) || c < 0 || c >= this.classes) {
      throw invalidArgument('predicted', `a class in [0, ${this.classes - 1}]`, c);
    }
    const u = Float32Array.from(x, (v, j) => v / (s[j] as number));
    const g = st.growing[c] as Float32Array[];
    if (g.length === 0) g.push(u);
    else {
      let dmin = Infinity;
      for (const y of g) {
        let acc = 0;
        for (let j = 0; j < u.length; j++) {
          const t = (y[j] as number) - (u[j] as number);
          acc += t * t;
        }
        if (acc < dmin) dmin = acc;
      }
      dmin = Math.sqrt(dmin);
      st.distances.push(dmin);
      st.sorted.splice(lowerBound(st.sorted, dmin), 0, dmin);
      if (st.distances.length > this.window) {
        const old = st.distances.shift() as number;
        st.sorted.splice(lowerBound(st.sorted, old), 1);
      }
      if (dmin > (st.thresholds[c] as number) && g.length < this.maxGrowing) {
        g.push(u);
        const by = st.grownBy[c] as number[];
        by.push(dmin);
        let mean = 0;
        for (const v of by) mean += v;
        mean /= by.length;
        let sq = 0;
        for (const v of by) sq += (v - mean) ** 2;
        const sd = Math.sqrt(sq / by.length);
        st.thresholds[c] = Math.max(st.thresholds[c] as number, mean - sd);
      }
    }
    if (st.distances.length < this.minQueries) return Number.NaN;
    return 1 - shapiroWilkSorted(st.sorted).w;
  }

  observe(client: string, x: Float32Array, predicted?: number): QueryVerdict {
    const c = this.#calibration;
    if (!c) throw notReady(this.kind, 'calibrate');
    if (predicted === undefined)
      throw invalidArgument('predicted', 'the class the model answered for the query', predicted);
    const score = this.#push(this.#clients.get(client, this.#fresh), x, predicted);
    return { score, flagged: score > c.threshold };
  }

  /** A client with no queries yet, for a store kept outside the detector. */
  newState(): PradaClientState {
    return this.#fresh();
  }

  /**
   * Records query `x`, answered with class `predicted`, in `st` and judges it: what {@link observe}
   * does with the state it keeps itself. A distance is appended to `st.distances` when G_c was not
   * empty; the query joins `st.growing[c]` (with its distance in `grownBy[c]` unless it is the first)
   * when it is far enough.
   */
  advance(st: PradaClientState, x: Float32Array, predicted: number): QueryVerdict {
    const c = this.#calibration;
    if (!c) throw notReady(this.kind, 'calibrate');
    const score = this.#push(st, x, predicted);
    return { score, flagged: score > c.threshold };
  }

  scoreStream(stream: QueryStream): Float64Array {
    const d = this.inputs;
    if (stream.x.length !== stream.rows * d) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `stream: ${stream.x.length} values for ${stream.rows} queries of ${d} features`,
      );
    }
    const p = stream.predicted;
    if (!p || p.length !== stream.rows)
      throw invalidArgument('stream.predicted', `${stream.rows} predicted classes`, p?.length);
    const st = this.#fresh();
    const out = new Float64Array(stream.rows);
    for (let i = 0; i < stream.rows; i++)
      out[i] = this.#push(st, stream.x.subarray(i * d, (i + 1) * d), p[i] as number);
    return out;
  }

  /** Per-client calibration on benign streams: each stream's largest score. */
  calibrate(streams: readonly QueryStream[], fpr: number): Calibration {
    return runSteps(this.#calibrateSteps(streams, fpr));
  }

  /**
   * {@link calibrate}, giving the event loop a turn between streams (at most every 50 ms); the same
   * calibration.
   */
  async calibrateAsync(streams: readonly QueryStream[], fpr: number): Promise<Calibration> {
    return await runStepsAsync(this.#calibrateSteps(streams, fpr));
  }

  *#calibrateSteps(streams: readonly QueryStream[], fpr: number): Steps<Calibration> {
    const maxima: number[] = [];
    for (const s of streams) {
      let m = -Infinity;
      for (const v of this.scoreStream(s)) if (!Number.isNaN(v)) m = Math.max(m, v);
      if (m === -Infinity) {
        throw invalidArgument(
          'streams',
          `benign streams longer than minQueries (${this.minQueries}) distances`,
          s.rows,
        );
      }
      maxima.push(m);
      yield;
    }
    this.#calibration = conformalThreshold(maxima, fpr);
    return this.#calibration;
  }

  reset(client?: string): void {
    this.#clients.delete(client);
  }

  toJSON(): DetectorJson {
    const s = this.#scale;
    if (!s) throw notReady(this.kind, 'fit');
    return {
      format: DETECTOR_FORMAT,
      version: DETECTOR_VERSION,
      kind: this.kind,
      calibration: calibrationToJson(this.#calibration),
      inputs: this.inputs,
      classes: this.classes,
      minQueries: this.minQueries,
      window: this.window,
      maxGrowing: this.maxGrowing,
      maxClients: this.maxClients,
      scale: f32ToBase64(s),
    };
  }

  static load(json: unknown): PradaDetector {
    const j = checkDetectorJson(json, 'prada', [0, 1]); // 1 - W, W in [0, 1]
    let det: PradaDetector;
    try {
      det = new PradaDetector({
        inputs: j['inputs'] as number,
        classes: j['classes'] as number,
        minQueries: j['minQueries'] as number,
        window: j['window'] as number,
        maxGrowing: j['maxGrowing'] as number,
        maxClients: j['maxClients'] as number,
      });
    } catch (e) {
      throw new BulwarkError('ERR_DETECTOR_STATE', `saved prada detector: ${(e as Error).message}`, {
        cause: e,
      });
    }
    det.#scale = base64ToF32(j['scale'], det.inputs, 'scale', 'prada', true);
    det.#calibration = j.calibration;
    return det;
  }
}

/** First index of a sorted array whose value is >= v. */
function lowerBound(a: readonly number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] as number) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
