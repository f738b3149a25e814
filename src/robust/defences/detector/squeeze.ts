/**
 * Prediction-consistency detector: feature squeezing (Xu, Evans & Qi, "Feature squeezing: detecting
 * adversarial examples in deep neural networks", NDSS 2018) and its noise variant. An adversarial input
 * sits in a thin, brittle region: squeezing away the fine detail the attack relies on (fewer bits per
 * feature, a median filter over image pixels) or adding small random noise moves the prediction much
 * more than it moves a clean input's. The score is the largest L1 distance between the model's
 * probabilities on the input and on each squeezed version (at most 2).
 *
 * Known limit (He, Wei, Chen, Carlini & Song, WOOT 2017): an attacker who knows the squeezers can craft
 * high-confidence examples that survive them; the evaluation reports it (high-confidence adaptive PGD).
 */
import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireNumberIn,
  SeededRng,
} from '../../../core/index.js';
import type { InputDomain } from '../../domain.js';
import type { ProbabilityModel } from '../../model.js';
import {
  type Calibration,
  calibrationToJson,
  checkDetectorJson,
  conformalThreshold,
  DETECTOR_FORMAT,
  DETECTOR_VERSION,
  type Detector,
  type DetectorJson,
  flag,
  notReady,
} from './detector.js';

/** One squeezer. */
export type Squeezer =
  /** Rounds each feature to `bits` bits over its range [lower, upper] (default [0, 1]). */
  | { kind: 'bit-depth'; bits: number }
  /** Median over a `size x size` window of a `height x width` single-channel image. */
  | { kind: 'median'; size: number; height: number; width: number }
  /** Mean over `samples` draws of Gaussian noise with standard deviation `sigma` (in range units). */
  | { kind: 'noise'; sigma: number; samples: number; seed: number };

/** Options of {@link SqueezeDetector}. */
export interface SqueezeOptions {
  squeezers: readonly Squeezer[];
  /** Per-feature valid ranges for bit-depth and noise scaling (default [0, 1] for every feature). */
  lower?: ArrayLike<number>;
  upper?: ArrayLike<number>;
}

function checkSqueezer(s: Squeezer, i: number): Squeezer {
  const at = `squeezers[${i}]`;
  switch (s?.kind) {
    case 'bit-depth':
      return { kind: 'bit-depth', bits: requireInteger(`${at}.bits`, s.bits, 1, 16) };
    case 'median':
      return {
        kind: 'median',
        size: requireInteger(`${at}.size`, s.size, 2, 9),
        height: requireInteger(`${at}.height`, s.height, 1),
        width: requireInteger(`${at}.width`, s.width, 1),
      };
    case 'noise':
      return {
        kind: 'noise',
        sigma: requireNumberIn(`${at}.sigma`, s.sigma, 0, 10, { minExclusive: true }),
        samples: requireInteger(`${at}.samples`, s.samples, 1, 100),
        seed: requireInteger(`${at}.seed`, s.seed, 0),
      };
    default:
      throw invalidArgument(`${at}.kind`, 'one of bit-depth, median, noise', (s as { kind?: unknown })?.kind);
  }
}

/** A squeeze detector over a model (see the module comment). */
export class SqueezeDetector implements Detector {
  readonly kind = 'squeeze';
  readonly squeezers: readonly Squeezer[];
  readonly #model: ProbabilityModel;
  readonly #lower: Float64Array;
  readonly #upper: Float64Array;
  #calibration: Calibration | null = null;

  constructor(model: ProbabilityModel, options: SqueezeOptions) {
    if (!Array.isArray(options.squeezers) || options.squeezers.length === 0) {
      throw invalidArgument('squeezers', 'at least one squeezer', options.squeezers);
    }
    this.squeezers = options.squeezers.map(checkSqueezer);
    this.#model = model;
    const d = model.inputs;
    for (const s of this.squeezers) {
      if (s.kind === 'median' && s.height * s.width !== d) {
        throw invalidArgument('median', `an image shape with ${d} pixels`, `${s.height}x${s.width}`);
      }
    }
    const range = (name: string, v: ArrayLike<number> | undefined, dflt: number) => {
      if (v === undefined) return new Float64Array(d).fill(dflt);
      if (v.length !== d) throw invalidArgument(name, `${d} values`, v.length);
      return Float64Array.from(v, (x) => (Number.isFinite(x) ? x : dflt));
    };
    this.#lower = range('lower', options.lower, 0);
    this.#upper = range('upper', options.upper, 1);
  }

  /** Feature squeezing's usual settings for [0, 1] images: 1-bit depth and a 2x2 median (Xu et al. for MNIST). */
  static forImages(model: ProbabilityModel, height: number, width: number): SqueezeDetector {
    return new SqueezeDetector(model, {
      squeezers: [
        { kind: 'bit-depth', bits: 1 },
        { kind: 'median', size: 2, height, width },
      ],
    });
  }

  /** For tabular inputs (ranges from the domain): 4-bit depth and small noise. */
  static forDomain(model: ProbabilityModel, domain: InputDomain): SqueezeDetector {
    const finite = (v: Float64Array, dflt: number) =>
      Float64Array.from(v, (x) => (Number.isFinite(x) ? x : dflt));
    return new SqueezeDetector(model, {
      squeezers: [
        { kind: 'bit-depth', bits: 4 },
        { kind: 'noise', sigma: 0.02, samples: 4, seed: 1 },
      ],
      lower: finite(domain.lower, 0),
      upper: finite(domain.upper, 1),
    });
  }

  get calibration(): Calibration | null {
    return this.#calibration;
  }

  /** Nothing to learn; present so every detector is used the same way. Checks the model answers. */
  async fit(x: Float32Array, rows: number): Promise<this> {
    requireInteger('rows', rows, 1);
    await this.score(x.subarray(0, this.#model.inputs), 1);
    return this;
  }

  #squeeze(s: Squeezer, x: Float32Array, rows: number, draw: number): Float32Array {
    const d = this.#model.inputs;
    const out = new Float32Array(x.length);
    if (s.kind === 'bit-depth') {
      const levels = 2 ** s.bits - 1;
      for (let i = 0; i < x.length; i++) {
        const j = i % d;
        const lo = this.#lower[j] as number;
        const span = (this.#upper[j] as number) - lo || 1;
        const u = Math.min(1, Math.max(0, ((x[i] as number) - lo) / span));
        out[i] = lo + (Math.round(u * levels) / levels) * span;
      }
    } else if (s.kind === 'median') {
      const { height: h, width: w, size } = s;
      const win: number[] = [];
      // Window as scipy.ndimage.median_filter's: offsets [-floor(size/2), size - 1 - floor(size/2)], edges reflected.
      const half = Math.floor(size / 2);
      for (let r = 0; r < rows; r++) {
        const o = r * d;
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) {
            win.length = 0;
            for (let a = i - half; a < i - half + size; a++) {
              for (let b = j - half; b < j - half + size; b++) {
                const aa = a < 0 ? -a - 1 : a >= h ? 2 * h - a - 1 : a;
                const bb = b < 0 ? -b - 1 : b >= w ? 2 * w - b - 1 : b;
                win.push(x[o + aa * w + bb] as number);
              }
            }
            win.sort((p, q) => p - q);
            const m = win.length;
            out[o + i * w + j] =
              m % 2
                ? (win[(m - 1) / 2] as number)
                : ((win[m / 2 - 1] as number) + (win[m / 2] as number)) / 2;
          }
        }
      }
    } else {
      const rng = new SeededRng(s.seed + 7919 * draw);
      for (let i = 0; i < x.length; i++) {
        const j = i % d;
        const span = (this.#upper[j] as number) - (this.#lower[j] as number) || 1;
        const v = (x[i] as number) + rng.normal(0, s.sigma * span);
        out[i] = Math.min(this.#upper[j] as number, Math.max(this.#lower[j] as number, v));
      }
    }
    return out;
  }

  async score(x: Float32Array, rows: number): Promise<Float64Array> {
    const m = this.#model;
    if (x.length !== rows * m.inputs) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `x: ${x.length} values for ${rows} rows of ${m.inputs} features`,
      );
    }
    const k = m.classes;
    const p = await m.predictProba(x, rows);
    const out = new Float64Array(rows);
    for (const s of this.squeezers) {
      const draws = s.kind === 'noise' ? s.samples : 1;
      const acc = new Float64Array(rows);
      for (let t = 0; t < draws; t++) {
        const q = await m.predictProba(this.#squeeze(s, x, rows, t), rows);
        for (let r = 0; r < rows; r++) {
          let l1 = 0;
          for (let j = 0; j < k; j++) l1 += Math.abs((p[r * k + j] as number) - (q[r * k + j] as number));
          acc[r] = (acc[r] as number) + l1 / draws;
        }
      }
      for (let r = 0; r < rows; r++) out[r] = Math.max(out[r] as number, acc[r] as number);
    }
    return out;
  }

  async calibrate(x: Float32Array, rows: number, fpr: number): Promise<Calibration> {
    this.#calibration = conformalThreshold(await this.score(x, rows), fpr);
    return this.#calibration;
  }

  async detect(x: Float32Array, rows: number): Promise<Uint8Array> {
    if (!this.#calibration) throw notReady(this.kind, 'calibrate');
    return flag(await this.score(x, rows), this.#calibration.threshold);
  }

  toJSON(): DetectorJson {
    return {
      format: DETECTOR_FORMAT,
      version: DETECTOR_VERSION,
      kind: this.kind,
      calibration: calibrationToJson(this.#calibration),
      inputs: this.#model.inputs,
      squeezers: this.squeezers.map((s) => ({ ...s })),
      lower: Array.from(this.#lower),
      upper: Array.from(this.#upper),
    };
  }

  /** Rebuilds a saved detector around the model it was calibrated for. */
  static load(json: unknown, model: ProbabilityModel): SqueezeDetector {
    const j = checkDetectorJson(json, 'squeeze', [0, 2]); // an L1 change of probabilities
    if (j['inputs'] !== model.inputs) {
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        `saved squeeze detector: made for ${String(j['inputs'])} inputs, the model takes ${model.inputs}`,
      );
    }
    let det: SqueezeDetector;
    try {
      det = new SqueezeDetector(model, {
        squeezers: j['squeezers'] as Squeezer[],
        lower: j['lower'] as number[],
        upper: j['upper'] as number[],
      });
    } catch (e) {
      throw new BulwarkError('ERR_DETECTOR_STATE', `saved squeeze detector: ${(e as Error).message}`, {
        cause: e,
      });
    }
    det.#calibration = j.calibration;
    return det;
  }
}
