/**
 * What an attack or defence may ask of a model, after ART's estimators: every model answers class
 * probabilities (`ProbabilityModel`, enough for black-box attacks, membership inference, extraction and
 * detectors); a `GradientModel` also gives logits and input gradients of any loss of the logits (white-box
 * evasion attacks, adversarial training). Each attack states the capability it needs and
 * {@link requireGradients} refuses a model without it, naming what is missing.
 */
import { BulwarkError } from '../core/index.js';
import type { Network, OnnxRuntimeModel } from '../ml/index.js';

/** A classifier answering class probabilities through its outputs only (black-box access). */
export interface ProbabilityModel {
  /** Short description for messages and reports, e.g. `network 30-64-2` or `onnxruntime model.onnx`. */
  readonly name: string;
  /** Number of input features. */
  readonly inputs: number;
  /** Number of classes. */
  readonly classes: number;
  /** Class probabilities, `rows x classes` row-major. */
  predictProba(x: Float32Array, rows: number): Promise<Float32Array>;
}

/** Logits and the input gradient of a loss of the logits, from one forward and one backward pass. */
export interface GradientResult {
  /** `rows x classes` logits. */
  logits: Float32Array;
  /** `rows x inputs`: row i is d loss_i / d x_i. */
  gradient: Float32Array;
}

/** A classifier with white-box access: logits and input gradients. */
export interface GradientModel extends ProbabilityModel {
  readonly gradients: true;
  /** Logits, `rows x classes` (for a one-logit sigmoid model: [0, z], whose softmax is [1 - p, p]). */
  logits(x: Float32Array, rows: number): Float32Array;
  /**
   * Runs the model forward, asks `lossGradient(logits)` for d loss / d logits (`rows x classes`), and
   * backpropagates it to the raw inputs.
   */
  gradient(
    x: Float32Array,
    rows: number,
    lossGradient: (logits: Float32Array) => Float32Array,
  ): GradientResult;
}

/** Whether `m` gives gradients. */
export function hasGradients(m: ProbabilityModel): m is GradientModel {
  return (m as Partial<GradientModel>).gradients === true;
}

/**
 * Throws `ERR_MODEL_CAPABILITY` when `m` has no input gradients, naming the operation and the missing
 * capability (and how to get it).
 */
export function requireGradients(m: ProbabilityModel, operation: string): GradientModel {
  if (!hasGradients(m)) {
    throw new BulwarkError(
      'ERR_MODEL_CAPABILITY',
      `${operation} needs input gradients, and the model "${m.name}" only answers probabilities ` +
        '(import the ONNX file as a network with fromOnnx to attack it with gradients, or use a black-box attack such as square)',
      { details: { operation, model: m.name, missing: 'input-gradients' } },
    );
  }
  return m;
}

/** Softmax of every row of `z` (`rows x k`). */
export function softmax(z: Float32Array, rows: number, k: number): Float32Array {
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    let m = -Infinity;
    for (let j = 0; j < k; j++) if ((z[o + j] as number) > m) m = z[o + j] as number;
    let s = 0;
    for (let j = 0; j < k; j++) {
      const e = Math.exp((z[o + j] as number) - m);
      out[o + j] = e;
      s += e;
    }
    for (let j = 0; j < k; j++) out[o + j] = (out[o + j] as number) / s;
  }
  return out;
}

/** Argmax of every row of a `rows x k` matrix. */
export function argmaxRows(a: ArrayLike<number>, rows: number, k: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if ((a[r * k + j] as number) > (a[r * k + best] as number)) best = j;
    out[r] = best;
  }
  return out;
}

/**
 * A {@link GradientModel} over a Bulwark {@link Network}. A sigmoid (one-logit) network is seen as two
 * logits [0, z], the form its ONNX export has, so every attack treats every model as k-class.
 *
 * @example
 * ```ts
 * const model = networkModel(net);
 * const adv = pgd(model, x, y, rows, { eps: 0.1, steps: 40 });
 * ```
 */
export function networkModel(net: Network, name?: string): GradientModel {
  const k = net.classes;
  const sigmoidHead = net.outputs === 1;
  const widen = (z: Float32Array, rows: number): Float32Array => {
    if (!sigmoidHead) return z;
    const out = new Float32Array(rows * 2);
    for (let r = 0; r < rows; r++) out[2 * r + 1] = z[r] as number;
    return out;
  };
  const logits = (x: Float32Array, rows: number): Float32Array => widen(net.logits(x, rows), rows);
  return {
    name: name ?? `network ${net.sizes.join('-')}`,
    inputs: net.inputs,
    classes: k,
    gradients: true,
    logits,
    async predictProba(x, rows) {
      return softmax(logits(x, rows), rows, k);
    },
    gradient(x, rows, lossGradient) {
      const cache = net.forward(x, rows);
      const z = widen(cache.acts[cache.acts.length - 1] as Float32Array, rows);
      const dz = lossGradient(z);
      let d = dz;
      if (sigmoidHead) {
        // z_wide = [0, z]: d loss / d z = d loss / d z_wide[1] (the constant 0 has no parameters).
        d = new Float32Array(rows);
        for (let r = 0; r < rows; r++) d[r] = dz[2 * r + 1] as number;
      }
      const g = net.backward(cache, d, { input: true }).input as Float32Array;
      return { logits: z, gradient: g };
    },
  };
}

/**
 * A {@link ProbabilityModel} over an ONNX model opened in ONNX Runtime: black-box access through the
 * `probabilities` output (the name Bulwark's exports use), else the first output, softmaxed when
 * `outputKind` is `logits`.
 */
export function onnxRuntimeModel(
  session: OnnxRuntimeModel,
  shape: { inputs: number; classes: number },
  options: { name?: string; output?: string; outputKind?: 'probabilities' | 'logits' } = {},
): ProbabilityModel {
  const output =
    options.output ??
    (session.outputNames.includes('probabilities') ? 'probabilities' : (session.outputNames[0] as string));
  if (!session.outputNames.includes(output)) {
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `model has no output "${output}" (outputs: ${session.outputNames.join(', ')})`,
    );
  }
  const kind = options.outputKind ?? 'probabilities';
  const { inputs, classes } = shape;
  return {
    name: options.name ?? 'onnxruntime model',
    inputs,
    classes,
    async predictProba(x, rows) {
      const out = (await session.run(x, rows, inputs))[output];
      if (!out) throw new BulwarkError('ERR_ONNX_RUNTIME', `ONNX Runtime returned no "${output}"`);
      if (out.data.length !== rows * classes) {
        throw new BulwarkError(
          'ERR_SHAPE_MISMATCH',
          `model output "${output}" has ${out.data.length} values for ${rows} rows, expected ${classes} per row`,
        );
      }
      // A NaN output is not a probability: argmax reads it as class 0 and no attack can move it, so a
      // model with a NaN weight was evaluated as accurate and perfectly robust.
      const bad = out.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0)
        throw new BulwarkError(
          'ERR_ONNX_INVALID',
          `model output "${output}" is ${out.data[bad]} for row ${Math.floor(bad / classes) + 1}: the model does not compute probabilities (non-finite weights?)`,
          { details: { row: Math.floor(bad / classes) + 1 } },
        );
      return kind === 'logits' ? softmax(out.data, rows, classes) : out.data;
    },
  };
}

/**
 * Wraps a model so every query is recorded (for the stateful query detectors and for counting an
 * attack's queries).
 */
export function recordingModel(
  inner: ProbabilityModel,
  onQuery: (x: Float32Array, rows: number) => void,
): ProbabilityModel {
  return {
    name: inner.name,
    inputs: inner.inputs,
    classes: inner.classes,
    predictProba(x, rows) {
      onQuery(x, rows);
      return inner.predictProba(x, rows);
    },
  };
}
