/**
 * Stateful detection of black-box attacks (Chen, Carlini & Wagner, "Stateful detection of black-box
 * adversarial attacks", ACM SPAI 2020 / arXiv:1907.05587, 2019). Query-based attacks probe the model with
 * long runs of inputs that are tiny variations of each other; natural traffic is spread out. For every
 * query of a client, the detector takes the mean distance to its k nearest neighbours among that client's
 * recent queries; a run of queries with an unusually small such distance is an attack. Chen et al.
 * compare in the embedding of a similarity encoder; here queries are standardised per feature and, for
 * wide inputs, projected to `dims` dimensions with a seeded Gaussian random projection, which preserves
 * distances up to a small factor (Johnson-Lindenstrauss) and bounds the memory per client to
 * `history x dims` floats.
 *
 * score = -(mean k-NN distance) / (the median benign k-NN distance with as much history, learnt at
 * calibration, since any client's neighbours get closer as its history grows), so that higher is more
 * suspicious as for every detector; the threshold
 * is calibrated on benign streams, per client (default: a share fpr of benign clients is ever flagged) or
 * per query (the paper's choice). After a detection the client's history is cleared, as in the paper
 * (each detection then counts once).
 */
import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireOneOf,
  SeededRng,
} from '../../../core/index.js';
import { runSteps, runStepsAsync, type Steps } from '../../../ml/index.js';
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

/** Options of {@link StatefulDetector}. */
export interface StatefulOptions {
  /** Number of input features. */
  inputs: number;
  /** Neighbours averaged (default 20). */
  k?: number;
  /** Recent queries kept per client (default 500). */
  history?: number;
  /** Random-projection dimensions (default min(inputs, 64)); inputs <= dims are not projected. */
  dims?: number;
  /** Seed of the projection (default 0). */
  seed?: number;
  /** Clients kept in memory (default 10,000; the least recently seen are forgotten). */
  maxClients?: number;
}

/**
 * One client's recent queries: a ring of `history` embeddings (`dims` floats each, filled from slot 0)
 * and the number recorded. Exported for stores that keep the state outside the detector
 * (shared-state.ts, Redis for several gateway replicas); the order of the embeddings does not matter.
 */
export interface StatefulClientState {
  buf: Float32Array;
  count: number;
}
type ClientState = StatefulClientState;

/** The most values of the random projection (dims x inputs floats, 256 MiB). */
export const MAX_PROJECTION_VALUES = 2 ** 26;

export class StatefulDetector implements StreamDetector {
  readonly kind = 'stateful';
  readonly inputs: number;
  readonly k: number;
  readonly history: number;
  readonly dims: number;
  readonly seed: number;
  readonly maxClients: number;
  readonly #projection: Float32Array | null;
  #scale: Float32Array | null = null;
  #calibration: Calibration | null = null;
  /** Median benign k-NN distance by history size (index n - k), learnt at calibration; null before. */
  #reference: Float32Array | null = null;
  #clients: ClientMap<ClientState>;

  constructor(o: StatefulOptions) {
    this.inputs = requireInteger('inputs', o.inputs, 1);
    this.k = requireInteger('k', o.k ?? 20, 1);
    // Upper bounds: every query costs history x dims operations, and a saved detector is read from a
    // file (a hand-edited history of 1e9 made each request allocate gigabytes in the shared-state path).
    this.history = requireInteger('history', o.history ?? 500, this.k + 1, 100_000);
    const dims = requireInteger('dims', o.dims ?? Math.min(this.inputs, 64), 1, 4096);
    this.dims = Math.min(dims, this.inputs);
    // The projection is dims x inputs floats, drawn here: a saved detector claiming 200,000 inputs and
    // 4,096 dims allocated 3.3 GB and ran for 90 s before its scale was found to be 4 values long.
    if (this.dims < this.inputs && this.dims * this.inputs > MAX_PROJECTION_VALUES)
      throw invalidArgument(
        'dims',
        `at most ${Math.max(1, Math.floor(MAX_PROJECTION_VALUES / this.inputs))} for ${this.inputs} inputs (a projection of at most ${MAX_PROJECTION_VALUES} values)`,
        dims,
      );
    this.seed = requireInteger('seed', o.seed ?? 0, 0);
    this.maxClients = requireInteger('maxClients', o.maxClients ?? 10_000, 1, 10_000_000);
    this.#clients = new ClientMap(this.maxClients);
    if (this.dims < this.inputs) {
      const rng = new SeededRng(this.seed);
      const p = new Float32Array(this.dims * this.inputs);
      const f = 1 / Math.sqrt(this.dims);
      for (let i = 0; i < p.length; i++) p[i] = rng.normal() * f;
      this.#projection = p;
    } else this.#projection = null;
  }

  get calibration(): Calibration | null {
    return this.#calibration;
  }

  fit(x: Float32Array, rows: number): this {
    this.#scale = featureScale(x, rows, this.inputs);
    this.#calibration = null;
    return this;
  }

  #embed(x: Float32Array): Float32Array {
    const s = this.#scale;
    if (!s) throw notReady(this.kind, 'fit');
    requireRow(x, this.inputs);
    const u = Float32Array.from(x, (v, j) => v / (s[j] as number));
    const p = this.#projection;
    if (p === null) return u;
    const e = new Float32Array(this.dims);
    for (let i = 0; i < this.dims; i++) {
      let acc = 0;
      const o = i * this.inputs;
      for (let j = 0; j < this.inputs; j++) acc += (p[o + j] as number) * (u[j] as number);
      e[i] = acc;
    }
    return e;
  }

  /** -(mean distance to the k nearest of the client's previous queries), then records the query. */
  #push(st: ClientState, e: Float32Array): number {
    const m = this.dims;
    const n = Math.min(st.count, this.history);
    let score = Number.NaN;
    if (n >= this.k) {
      // The k smallest distances, kept sorted in a small array (k << n).
      const top = new Float64Array(this.k).fill(Infinity);
      for (let i = 0; i < n; i++) {
        let acc = 0;
        const o = i * m;
        for (let j = 0; j < m; j++) {
          const t = (st.buf[o + j] as number) - (e[j] as number);
          acc += t * t;
        }
        if (acc >= (top[this.k - 1] as number)) continue;
        let p = this.k - 1;
        while (p > 0 && (top[p - 1] as number) > acc) {
          top[p] = top[p - 1] as number;
          p--;
        }
        top[p] = acc;
      }
      let s = 0;
      for (let i = 0; i < this.k; i++) s += Math.sqrt(top[i] as number);
      // Relative to benign traffic with as much history: k-NN distances shrink as any history grows.
      const ref = this.#reference;
      const r = ref === null ? 1 : (ref[Math.min(n, ref.length - 1 + this.k) - this.k] as number);
      score = -s / this.k / (r > 0 ? r : 1);
    }
    const slot = (st.count % this.history) * m;
    if (slot + m > st.buf.length) {
      // The in-memory ring grows as the client's history does (see #fresh).
      const grown = new Float32Array(Math.min(this.history * m, Math.max(2 * st.buf.length, slot + m)));
      grown.set(st.buf);
      st.buf = grown;
    }
    st.buf.set(e, slot);
    st.count++;
    return score;
  }

  /**
   * A new client's ring starts at 8 slots and doubles up to `history`: allocated whole, every identity an
   * attacker rotates through cost `history x dims` floats (128 KiB by default) from its first query,
   * 1.3 GB for the default 10,000 clients.
   */
  #fresh = (): ClientState => ({ buf: new Float32Array(Math.min(8, this.history) * this.dims), count: 0 });

  observe(client: string, x: Float32Array): QueryVerdict {
    if (!this.#calibration) throw notReady(this.kind, 'calibrate');
    return this.advance(this.#clients.get(client, this.#fresh), x);
  }

  /** A client with no history yet, for a store kept outside the detector: its ring is allocated whole. */
  newState(): StatefulClientState {
    return { buf: new Float32Array(this.history * this.dims), count: 0 };
  }

  /**
   * Records query `x` in `st` and judges it: what {@link observe} does with the state it keeps itself.
   * The query's embedding is written at slot `count % history` (read it from there to store it
   * elsewhere); after a detection `count` is 0 (the history is cleared).
   */
  advance(st: StatefulClientState, x: Float32Array): QueryVerdict {
    const c = this.#calibration;
    if (!c) throw notReady(this.kind, 'calibrate');
    const score = this.#push(st, this.#embed(x));
    const flagged = score > c.threshold;
    if (flagged) {
      st.count = 0;
    }
    return { score, flagged };
  }

  scoreStream(stream: QueryStream): Float64Array {
    const st = this.#fresh();
    const out = new Float64Array(stream.rows);
    const d = this.inputs;
    if (stream.x.length !== stream.rows * d) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `stream: ${stream.x.length} values for ${stream.rows} queries of ${d} features`,
      );
    }
    for (let i = 0; i < stream.rows; i++)
      out[i] = this.#push(st, this.#embed(stream.x.subarray(i * d, (i + 1) * d)));
    return out;
  }

  /**
   * Calibrates on benign streams. `query` (Chen et al.'s choice): `fpr` of benign queries (with k earlier
   * ones) are flagged, so a long benign session is flagged eventually; `client` (default): a share `fpr`
   * of benign clients sending streams like these is ever flagged.
   */
  calibrate(
    streams: readonly QueryStream[],
    fpr: number,
    options: { level?: 'query' | 'client' } = {},
  ): Calibration {
    return runSteps(this.#calibrateSteps(streams, fpr, options));
  }

  /**
   * {@link calibrate}, giving the event loop a turn between streams (at most every 50 ms); the same
   * calibration.
   */
  async calibrateAsync(
    streams: readonly QueryStream[],
    fpr: number,
    options: { level?: 'query' | 'client' } = {},
  ): Promise<Calibration> {
    return await runStepsAsync(this.#calibrateSteps(streams, fpr, options));
  }

  *#calibrateSteps(
    streams: readonly QueryStream[],
    fpr: number,
    options: { level?: 'query' | 'client' },
  ): Steps<Calibration> {
    const level = requireOneOf('level', options.level ?? 'client', ['query', 'client'] as const);
    if (!Array.isArray(streams) || !streams.some((s) => s.rows > this.k))
      throw invalidArgument(
        'streams',
        `benign streams of more than k (${this.k}) queries (a query is judged against k earlier ones)`,
        Array.isArray(streams) ? streams.map((s) => s.rows).join(', ') : streams,
      );
    // Pass 1: the median benign k-NN distance for each history size n (k <= n <= history).
    this.#reference = null;
    const byN: number[][] = Array.from({ length: this.history - this.k + 1 }, () => []);
    for (const st of streams) {
      this.scoreStream(st).forEach((v, i) => {
        if (!Number.isNaN(v)) (byN[Math.min(i, this.history) - this.k] as number[]).push(-v);
      });
      yield;
    }
    const ref = new Float32Array(byN.length);
    let last = 1;
    byN.forEach((vals, i) => {
      if (vals.length > 0) {
        vals.sort((a, b) => a - b);
        last = vals[vals.length >> 1] as number;
      }
      ref[i] = last;
    });
    this.#reference = ref;
    // Pass 2: scores relative to the reference, then the conformal threshold.
    const scores: number[] = [];
    for (const st of streams) {
      let m = -Infinity;
      for (const v of this.scoreStream(st)) {
        if (Number.isNaN(v)) continue;
        if (level === 'query') scores.push(v);
        else m = Math.max(m, v);
      }
      if (level === 'client' && m > -Infinity) scores.push(m);
      yield;
    }
    this.#calibration = conformalThreshold(scores, fpr);
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
      k: this.k,
      history: this.history,
      dims: this.dims,
      seed: this.seed,
      maxClients: this.maxClients,
      scale: f32ToBase64(s),
      reference: this.#reference === null ? null : f32ToBase64(this.#reference),
    };
  }

  static load(json: unknown): StatefulDetector {
    // Scores are minus a (relative) mean distance: <= 0.
    const j = checkDetectorJson(json, 'stateful', [-Number.MAX_VALUE, 0]);
    const inputs = j['inputs'];
    if (typeof inputs !== 'number' || !Number.isInteger(inputs) || inputs < 1)
      throw new BulwarkError('ERR_DETECTOR_STATE', 'saved stateful detector: inputs malformed');
    // Read before the detector is built (its projection is sized by inputs): a claimed width its
    // saved scale does not have is refused without allocating for it.
    const scale = base64ToF32(j['scale'], inputs, 'scale', 'stateful', true);
    let det: StatefulDetector;
    try {
      det = new StatefulDetector({
        inputs,
        k: j['k'] as number,
        history: j['history'] as number,
        dims: j['dims'] as number,
        seed: j['seed'] as number,
        maxClients: j['maxClients'] as number,
      });
    } catch (e) {
      throw new BulwarkError('ERR_DETECTOR_STATE', `saved stateful detector: ${(e as Error).message}`, {
        cause: e,
      });
    }
    det.#scale = scale;
    det.#reference =
      j['reference'] === null || j['reference'] === undefined
        ? null
        : base64ToF32(j['reference'], det.history - det.k + 1, 'reference', 'stateful');
    det.#calibration = j.calibration;
    return det;
  }
}
