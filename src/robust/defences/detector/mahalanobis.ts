/**
 * Mahalanobis-distance detector (Lee, Lee, Lee & Shin, "A simple unified framework for detecting
 * out-of-distribution samples and adversarial attacks", NeurIPS 2018): class-conditional Gaussians with
 * one shared covariance, fitted on clean training features; an input's score is its smallest squared
 * Mahalanobis distance to a class mean, min_c (f - mu_c)ᵀ Sigma⁻¹ (f - mu_c). Features are the raw inputs
 * or a hidden layer's activations of the network (Lee et al. use hidden features; on inputs it is the
 * "statistical anomaly detection" of the article).
 *
 * The covariance is Ledoit-Wolf shrunk (see ../../linalg.ts): with 784 pixels, many of them constant, the
 * sample covariance is singular and its inverse useless; shrinkage makes it well conditioned.
 *
 * The score's input gradient (`scoreGradient`) is what an adaptive attack needs to evade it (Carlini &
 * Wagner, "Adversarial examples are not easily detected", AISec 2017): on inputs it is closed-form; on a
 * hidden layer it is the closed-form gradient with respect to the features, backpropagated through the
 * network (`Network.backwardFrom`). A detector whose catch rate is reported without that attack is
 * overstated (Tramèr et al., "On adaptive attacks to adversarial example defenses", NeurIPS 2020).
 */
import { BulwarkError, invalidArgument, requireFiniteRows, requireInteger } from '../../../core/index.js';
import { choleskyLower, type ForwardCache, gemm } from '../../../ml/index.js';
import { type EventLoopTurns, runStepsAsync, type Steps } from '../../../ml/turns.js';
import { inverseSpd, ledoitWolf } from '../../linalg.js';
import {
  base64ToF32,
  type Calibration,
  calibrationToJson,
  checkDetectorJson,
  conformalThreshold,
  DETECTOR_FORMAT,
  DETECTOR_VERSION,
  type Detector,
  type DetectorJson,
  f32ToBase64,
  flag,
  notReady,
} from './detector.js';

/**
 * What a hidden-layer detector needs of a network: its layer widths and a forward pass keeping every
 * layer's output (`acts[k]`, k = 1 the first hidden layer after its activation). A Bulwark `Network` is
 * one. `backwardFrom` (the input gradient of a function of `acts[k]`, as `Network.backwardFrom`) is
 * optional: without it the detector scores but has no `scoreGradient`, so no adaptive attack can be
 * run against it (e.g. features read from a model in another runtime that gives activations only).
 */
export interface FeatureNetwork {
  readonly sizes: readonly number[];
  readonly layerCount: number;
  forward(x: Float32Array, rows: number): ForwardCache;
  backwardFrom?(
    cache: ForwardCache,
    layer: number,
    dActs: Float32Array,
    want?: { input?: boolean; params?: boolean },
  ): { input: Float32Array | null; params: Float32Array | null };
}

/** Options of {@link MahalanobisDetector}. */
export interface MahalanobisOptions {
  /** `input` (default) or the index of a hidden layer of `network` (1 = first hidden layer's output). */
  layer?: 'input' | number;
  /** The network whose activations are the features (required with a layer index). */
  network?: FeatureNetwork;
}

interface Fitted {
  d: number;
  /** Global mean the features are centred on before the products. */
  centre: Float32Array;
  /** Class means minus the centre, `classes x d`. */
  means: Float32Array;
  classes: number;
  /** Precision matrix (inverse shrunk covariance), d x d, float32. */
  precision: Float32Array;
  shrinkage: number;
}

/**
 * @example
 * ```ts
 * const det = new MahalanobisDetector({ layer: 1, network: net });
 * await det.fit(trainX, trainRows, trainY);
 * await det.calibrate(heldOutX, heldOutRows, 0.01);   // 1 % of clean inputs flagged
 * const flagged = await det.detect(x, rows);
 * ```
 */
export class MahalanobisDetector implements Detector {
  readonly kind = 'mahalanobis';
  readonly layer: 'input' | number;
  readonly #network: FeatureNetwork | null;
  #fitted: Fitted | null = null;
  #calibration: Calibration | null = null;

  constructor(options: MahalanobisOptions = {}) {
    const layer = options.layer ?? 'input';
    if (layer !== 'input') {
      const net = options.network;
      if (!net) throw invalidArgument('network', 'the network whose hidden layer is the feature space', net);
      requireInteger('layer', layer, 1, Math.max(1, net.layerCount - 1));
      if (net.layerCount < 2)
        throw invalidArgument('layer', "'input' (the network has no hidden layer)", layer);
    }
    this.layer = layer;
    this.#network = options.network ?? null;
  }

  get calibration(): Calibration | null {
    return this.#calibration;
  }

  /** Shrinkage intensity chosen by Ledoit-Wolf at fit time. */
  get shrinkage(): number {
    if (!this.#fitted) throw notReady(this.kind, 'fit');
    return this.#fitted.shrinkage;
  }

  /** Width of the feature vectors it was fitted on (the input width with `layer: 'input'`). */
  get width(): number {
    if (!this.#fitted) throw notReady(this.kind, 'fit');
    return this.#fitted.d;
  }

  /** The feature vectors of `x` (inputs, or the chosen layer's activations). */
  features(x: Float32Array, rows: number): { f: Float32Array; d: number } {
    const { f, d } = this.#features(x, rows);
    return { f, d };
  }

  /** The features, and the forward cache they come from for a hidden layer (for backpropagation). */
  #features(x: Float32Array, rows: number): { f: Float32Array; d: number; cache: ForwardCache | null } {
    if (this.layer === 'input') {
      const d = x.length / rows;
      if (!Number.isInteger(d)) throw invalidArgument('x', `a multiple of rows (${rows})`, x.length);
      return { f: x, d, cache: null };
    }
    const net = this.#network as FeatureNetwork;
    const cache = net.forward(x, rows);
    const f = cache.acts[this.layer] as Float32Array;
    return { f, d: net.sizes[this.layer] as number, cache };
  }

  /**
   * Whether {@link scoreGradient} is available: always on inputs; on a hidden layer when the network
   * gives gradients with respect to its hidden layers (`backwardFrom`, as a Bulwark `Network` does).
   */
  get hasScoreGradient(): boolean {
    return this.layer === 'input' || typeof this.#network?.backwardFrom === 'function';
  }

  /** Fits the class means and the shrunk shared covariance on clean rows (labels optional: one class). */
  async fit(x: Float32Array, rows: number, labels: ArrayLike<number> | null = null): Promise<this> {
    requireInteger('rows', rows, 2);
    const { f, d } = this.features(x, rows);
    for (let i = 0; i < rows * d; i++) {
      if (!Number.isFinite(f[i]))
        throw new BulwarkError('ERR_DATA_VALUE', `fit data: row ${Math.floor(i / d)} has ${f[i]}`);
    }
    let classes = 1;
    const y = new Int32Array(rows);
    if (labels !== null) {
      if (labels.length !== rows) throw invalidArgument('labels', `${rows} labels`, labels.length);
      for (let i = 0; i < rows; i++) {
        y[i] = requireInteger(`labels[${i}]`, labels[i], 0, 1e6);
        classes = Math.max(classes, (y[i] as number) + 1);
      }
    }
    const sums = new Float64Array(classes * d);
    const counts = new Float64Array(classes);
    const centre = new Float64Array(d);
    for (let r = 0; r < rows; r++) {
      const c = y[r] as number;
      counts[c] = (counts[c] as number) + 1;
      for (let j = 0; j < d; j++) {
        const v = f[r * d + j] as number;
        sums[c * d + j] = (sums[c * d + j] as number) + v;
        centre[j] = (centre[j] as number) + v / rows;
      }
    }
    // Classes never seen keep a mean at infinity-like distance: drop them by giving them the centre and
    // marking them absent (their distance is then never the minimum unless all are absent).
    const present: number[] = [];
    for (let c = 0; c < classes; c++) if ((counts[c] as number) > 0) present.push(c);
    const means = new Float32Array(present.length * d);
    present.forEach((c, i) => {
      for (let j = 0; j < d; j++)
        means[i * d + j] = (sums[c * d + j] as number) / (counts[c] as number) - (centre[j] as number);
    });
    const classIndex = new Map(present.map((c, i) => [c, i]));
    const xc = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const ci = classIndex.get(y[r] as number) as number;
      for (let j = 0; j < d; j++) {
        xc[r * d + j] = (f[r * d + j] as number) - (centre[j] as number) - (means[ci * d + j] as number);
      }
    }
    const lw = ledoitWolf(xc, rows, d, true);
    const precision = Float32Array.from(inverseSpd(lw.covariance, d));
    this.#fitted = {
      d,
      centre: Float32Array.from(centre),
      means,
      classes: present.length,
      precision,
      shrinkage: lw.shrinkage,
    };
    this.#calibration = null;
    return this;
  }

  /** Squared Mahalanobis distance to the nearest class mean, and that class's index. */
  scoreSync(x: Float32Array, rows: number): { scores: Float64Array; nearest: Int32Array } {
    const fit = this.#fitted;
    if (!fit) throw notReady(this.kind, 'fit');
    const { f, d } = this.#features(x, rows);
    return this.#scoreFeatures(fit, f, d, rows);
  }

  #scoreFeatures(
    fit: Fitted,
    f: Float32Array,
    d: number,
    rows: number,
  ): { scores: Float64Array; nearest: Int32Array } {
    if (d !== fit.d) throw invalidArgument('x', `rows of ${fit.d} features`, `${d} features`);
    // A NaN feature makes the score NaN, and `NaN > threshold` is false: it would pass as clean.
    requireFiniteRows(f.subarray(0, rows * d), d, 'x');
    const fc = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < d; j++) fc[r * d + j] = (f[r * d + j] as number) - (fit.centre[j] as number);
    const fp = new Float32Array(rows * d);
    gemm(false, false, rows, d, d, fc, fit.precision, fp);
    const k = fit.classes;
    const pm = new Float32Array(k * d);
    gemm(false, false, k, d, d, fit.means, fit.precision, pm);
    const cross = new Float32Array(rows * k);
    gemm(false, true, rows, k, d, fc, pm, cross);
    const mpm = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (pm[c * d + j] as number) * (fit.means[c * d + j] as number);
      mpm[c] = s;
    }
    const scores = new Float64Array(rows);
    const nearest = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let q = 0;
      for (let j = 0; j < d; j++) q += (fp[r * d + j] as number) * (fc[r * d + j] as number);
      let best = Infinity;
      for (let c = 0; c < k; c++) {
        const s = q - 2 * (cross[r * k + c] as number) + (mpm[c] as number);
        if (s < best) {
          best = s;
          nearest[r] = c;
        }
      }
      scores[r] = Math.max(0, best);
    }
    return { scores, nearest };
  }

  async score(x: Float32Array, rows: number): Promise<Float64Array> {
    return this.scoreSync(x, rows).scores;
  }

  /**
   * Scores and their gradient with respect to the inputs, for the adaptive attacks that evade the
   * detector while fooling the model. The gradient with respect to the features f is
   * 2 Sigma⁻¹ (f - mu_c) for the nearest class c (the minimum over classes is differentiable almost
   * everywhere, where the nearest class does not change); on inputs f = x, on a hidden layer it is
   * backpropagated to the inputs through the network (`backwardFrom`), from the same forward pass as
   * the scores. A hidden-layer detector whose network gives no gradients with respect to its hidden
   * layers throws `ERR_MODEL_CAPABILITY` naming the missing capability (`hidden-layer-gradients`).
   */
  scoreGradient(x: Float32Array, rows: number): { values: Float64Array; gradient: Float32Array } {
    const net = this.#network;
    if (this.layer !== 'input' && typeof net?.backwardFrom !== 'function') {
      throw new BulwarkError(
        'ERR_MODEL_CAPABILITY',
        `mahalanobis scoreGradient on hidden layer ${this.layer}: the network gives no gradients with respect to its hidden layers (no backwardFrom), so the score has no input gradient and no adaptive attack can use it`,
        { details: { operation: 'mahalanobis scoreGradient', missing: 'hidden-layer-gradients' } },
      );
    }
    const fit = this.#fitted;
    if (!fit) throw notReady(this.kind, 'fit');
    const { f, d, cache } = this.#features(x, rows);
    const { scores, nearest } = this.#scoreFeatures(fit, f, d, rows);
    const diff = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const c = nearest[r] as number;
      for (let j = 0; j < d; j++) {
        diff[r * d + j] =
          (f[r * d + j] as number) - (fit.centre[j] as number) - (fit.means[c * d + j] as number);
      }
    }
    const g = new Float32Array(rows * d);
    gemm(false, false, rows, d, d, diff, fit.precision, g);
    for (let i = 0; i < g.length; i++) g[i] = 2 * (g[i] as number);
    if (cache === null) return { values: scores, gradient: g };
    const back = (net as Required<FeatureNetwork>).backwardFrom(cache, this.layer as number, g, {
      input: true,
    });
    return { values: scores, gradient: back.input as Float32Array };
  }

  /**
   * Calibrates the threshold on clean held-out rows (split-conformal), scored by {@link scoreAsync}: a
   * large calibration set no longer holds the event loop in one step (5,000 rows of 784 features took
   * 0.8 s at once, during which SIGTERM waited), and the threshold is the one scoring all rows at once
   * gives, bit for bit.
   */
  async calibrate(x: Float32Array, rows: number, fpr: number): Promise<Calibration> {
    this.#calibration = conformalThreshold(await this.scoreAsync(x, rows), fpr);
    return this.#calibration;
  }

  /**
   * {@link scoreSync}'s scores, computed in chunks of rows with a turn of the event loop between two
   * chunks when one is due (src/ml/turns.ts; `turns` for tests). Bit-identical to scoring all rows at
   * once: every product here is a GEMM whose output rows are computed independently of the others, the
   * chunks start on multiples of 16 rows (so each row keeps its place in the kernels' row blocks: 2 in
   * the WebAssembly kernel, 4 in the JavaScript one) and each holds enough rows for the same kernel to
   * be chosen as for the whole (at least 4,096 multiply-adds per product); the last chunk takes the
   * remainder.
   */
  async scoreAsync(x: Float32Array, rows: number, turns?: EventLoopTurns): Promise<Float64Array> {
    return await runStepsAsync(this.#scoreSteps(x, rows), turns);
  }

  *#scoreSteps(x: Float32Array, rows: number): Steps<Float64Array> {
    const fit = this.#fitted;
    if (!fit) throw notReady(this.kind, 'fit');
    requireInteger('rows', rows, 1);
    const width = x.length / rows;
    if (!Number.isInteger(width)) throw invalidArgument('x', `a multiple of rows (${rows})`, x.length);
    // The smallest product of two dimensions a GEMM of the scoring runs over (output width x inner):
    // the feature products, and the network's layers for hidden-layer features.
    const dims = [fit.d * fit.d, fit.classes * fit.d];
    const sizes = this.layer === 'input' ? [] : (this.#network?.sizes ?? []);
    for (let l = 0; l + 1 < sizes.length; l++) dims.push((sizes[l] as number) * (sizes[l + 1] as number));
    const least = Math.max(1, Math.min(...dims));
    // ~40 ms a chunk at 784 features; more rows where the dimensions are small.
    const chunk = 16 * Math.ceil(Math.max(256, Math.ceil(4096 / least)) / 16);
    if (rows < 2 * chunk) return this.scoreSync(x, rows).scores;
    const out = new Float64Array(rows);
    for (let r0 = 0; r0 < rows; ) {
      const r1 = rows - r0 < 2 * chunk ? rows : r0 + chunk;
      out.set(this.scoreSync(x.subarray(r0 * width, r1 * width), r1 - r0).scores, r0);
      r0 = r1;
      yield;
    }
    return out;
  }

  async detect(x: Float32Array, rows: number): Promise<Uint8Array> {
    if (!this.#calibration) throw notReady(this.kind, 'calibrate');
    return flag(await this.score(x, rows), this.#calibration.threshold);
  }

  toJSON(): DetectorJson {
    const fit = this.#fitted;
    if (!fit) throw notReady(this.kind, 'fit');
    return {
      format: DETECTOR_FORMAT,
      version: DETECTOR_VERSION,
      kind: this.kind,
      calibration: calibrationToJson(this.#calibration),
      layer: this.layer,
      features: fit.d,
      classes: fit.classes,
      shrinkage: fit.shrinkage,
      centre: f32ToBase64(fit.centre),
      means: f32ToBase64(fit.means),
      precision: f32ToBase64(fit.precision),
    };
  }

  /** Rebuilds a saved detector; a layer detector needs the same network. */
  static load(json: unknown, options: { network?: FeatureNetwork } = {}): MahalanobisDetector {
    // Scores are squared distances, >= 0.
    const j = checkDetectorJson(json, 'mahalanobis', [0, Number.MAX_VALUE]);
    const d = j['features'];
    const k = j['classes'];
    if (
      typeof d !== 'number' ||
      !Number.isInteger(d) ||
      d < 1 ||
      typeof k !== 'number' ||
      !Number.isInteger(k) ||
      k < 1
    ) {
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        'saved mahalanobis detector: features or classes malformed',
      );
    }
    const layer = j['layer'];
    if (layer !== 'input' && (typeof layer !== 'number' || !Number.isInteger(layer))) {
      throw new BulwarkError('ERR_DETECTOR_STATE', 'saved mahalanobis detector: layer malformed');
    }
    let det: MahalanobisDetector;
    try {
      det = new MahalanobisDetector(options.network ? { layer, network: options.network } : { layer });
    } catch (e) {
      throw new BulwarkError('ERR_DETECTOR_STATE', `saved mahalanobis detector: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (layer !== 'input' && (options.network?.sizes[layer] as number) !== d) {
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        `saved mahalanobis detector: layer ${layer} of the network given does not have ${d} units`,
      );
    }
    det.#fitted = {
      d,
      classes: k,
      centre: base64ToF32(j['centre'], d, 'centre', 'mahalanobis'),
      means: base64ToF32(j['means'], k * d, 'means', 'mahalanobis'),
      precision: checkPrecision(base64ToF32(j['precision'], d * d, 'precision', 'mahalanobis'), d),
      shrinkage: typeof j['shrinkage'] === 'number' ? j['shrinkage'] : Number.NaN,
    };
    det.#calibration = j.calibration;
    return det;
  }
}

/**
 * A saved precision matrix must be what fitting makes: symmetric (fit writes both triangles from the same
 * value) and positive definite. Any other finite matrix loaded: -I or zeros made every score 0 or
 * negative, below any threshold (>= 0), so the detector answered "clean" to everything, however far
 * the input; an asymmetric one scored a quadratic form of its symmetric part, not the saved matrix.
 */
function checkPrecision(p: Float32Array, d: number): Float32Array {
  for (let i = 0; i < d; i++)
    for (let j = 0; j < i; j++)
      if (p[i * d + j] !== p[j * d + i])
        throw new BulwarkError(
          'ERR_DETECTOR_STATE',
          `saved mahalanobis detector: precision is not symmetric (entries [${i}][${j}] and [${j}][${i}] differ)`,
        );
  const f = choleskyLower(Float64Array.from(p), d);
  if ('pivot' in f)
    throw new BulwarkError(
      'ERR_DETECTOR_STATE',
      `saved mahalanobis detector: precision is not positive definite (Cholesky pivot ${f.pivot} is ${f.value}); fit the detector again`,
    );
  return p;
}
