/**
 * ONNX Runtime as the compute engine of the input-gradient passes that dominate adversarial training
 * and PGD: the graph of ./gradient-graph.ts, opened once, run with the network's CURRENT parameters
 * (views of `net.params`, read at every call, so it follows the optimiser's in-place updates).
 *
 * Why: one PGD step on a 784-1024-10 MLP is two 128 x 784 x 1024 products; ONNX Runtime's MLAS GEMM
 * (AVX2/AVX-512 FMA, 256/512-bit) runs them 2-3x faster than the 128-bit WebAssembly SIMD kernel of
 * ../wasm (docs/ml.md has the measured figures). ONNX Runtime's `run` is asynchronous, so the callers
 * are the asynchronous loops (adversarial training), not the synchronous `GradientModel`.
 */
import { BulwarkError, invalidArgument, requireInteger } from '../../core/index.js';
import { threads } from '../kernels.js';
import type { Network } from '../network.js';
import { gradientGraphUnsupported, inputGradientGraph, trainingGradientGraph } from './gradient-graph.js';
import { ort } from './runtime.js';

type Ort = Awaited<ReturnType<typeof ort>>;
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;
type Feeds = Record<string, InstanceType<Ort['Tensor']>>;

/** The box of one PGD run: per-row bounds and the per-feature step. */
export interface PgdBox {
  /** `rows x inputs` lower bounds (eps-ball around the clean input intersected with the valid range). */
  lower: Float32Array;
  /** `rows x inputs` upper bounds. */
  upper: Float32Array;
  /** Per-feature step size in input units (`inputs` values; 0 freezes a feature). */
  step: Float32Array;
}

/**
 * What the cross-entropy of the engine's graphs compares the logits with, row by row: class labels
 * (`rows` integers), or a `rows x outputs` matrix `t` (`{ soft }`), for which the gradient with respect
 * to the logits is softmax(z) - t. Rows of probabilities give the soft-label cross-entropy, whose input
 * gradient is TRADES's d KL(p || p') / d z' = p' - p; any other rows give that same linear gradient
 * (the graphs' `loss` output is then sum_j t_j (logsumexp(z) - z_j), a number with no use of its own).
 */
export type EngineTargets = ArrayLike<number> | { readonly soft: Float32Array };

/** Input gradients and PGD steps of a ReLU/softmax {@link Network} computed by ONNX Runtime. */
export class OnnxGradientEngine {
  readonly #ort: Ort;
  readonly #session: Session;
  readonly #training: Session;
  readonly #net: Network;
  #zeros = new Float32Array(0);

  private constructor(o: Ort, session: Session, training: Session, net: Network) {
    this.#ort = o;
    this.#session = session;
    this.#training = training;
    this.#net = net;
  }

  /** Why `net` cannot use the engine (architecture), or null when it can. */
  static unsupported(net: Network): string | null {
    return gradientGraphUnsupported(net);
  }

  /**
   * Opens the engine for `net`'s architecture and preprocessing (as they are now), with `threads`
   * intra-op threads (default: the kernels' {@link threads} setting, so `setThreads(1)` holds for both).
   *
   * `spinning` (default false) lets ONNX Runtime's pool threads busy-wait for the next call, its own
   * default. Off here: PGD makes one short call per step, and between calls the spinning threads hold
   * the cores that Node's thread running the next call needs; on 2 cores, 2 spinning threads took
   * longer per PGD-training batch than 1 thread (bench/results/ort-threads.json).
   */
  static async create(
    net: Network,
    options: { threads?: number; spinning?: boolean } = {},
  ): Promise<OnnxGradientEngine> {
    const n = requireInteger('threads', options.threads ?? threads(), 1, 256);
    const spinning = options.spinning ?? false;
    if (typeof spinning !== 'boolean') throw invalidArgument('spinning', 'a boolean', spinning);
    const why = gradientGraphUnsupported(net);
    if (why !== null)
      throw new BulwarkError('ERR_MODEL_CAPABILITY', `ONNX Runtime gradients need a ReLU MLP: ${why}`);
    const o = await ort();
    const sessionOptions = {
      executionProviders: ['cpu'],
      intraOpNumThreads: n,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all' as const,
      // Session config entry "session.intra_op.allow_spinning" (onnxruntime_session_options_config_keys.h).
      extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' } } },
    };
    let session: Session | undefined;
    try {
      session = await o.InferenceSession.create(inputGradientGraph(net), sessionOptions);
      const training = await o.InferenceSession.create(trainingGradientGraph(net), sessionOptions);
      return new OnnxGradientEngine(o, session, training, net);
    } catch (e) {
      // The first session's native memory is not left behind when the second cannot be opened.
      await session?.release().catch(() => undefined);
      throw new BulwarkError(
        'ERR_ONNX_RUNTIME',
        `ONNX Runtime could not open the gradient graph: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }

  #base(x: Float32Array, y: EngineTargets, rows: number): Feeds {
    const net = this.#net;
    const d = net.inputs;
    const k = net.outputs;
    requireInteger('rows', rows, 1);
    if (x.length !== rows * d) throw invalidArgument('x', `${rows} rows of ${d} features`, x.length);
    const T = this.#ort.Tensor;
    const feeds: Feeds = {
      x: new T('float32', x, [rows, d]),
      onehot: new T('float32', targetRows(y, rows, k), [rows, k]),
    };
    for (let l = 0; l < net.layerCount; l++) {
      feeds[`W${l}`] = new T('float32', net.weights(l), [net.sizes[l] as number, net.sizes[l + 1] as number]);
      feeds[`b${l}`] = new T('float32', net.bias(l), [net.sizes[l + 1] as number]);
    }
    return feeds;
  }

  #feeds(x: Float32Array, y: EngineTargets, rows: number, box: PgdBox | null): Feeds {
    const feeds = this.#base(x, y, rows);
    const d = this.#net.inputs;
    const T = this.#ort.Tensor;
    feeds['lower'] = new T('float32', box?.lower ?? this.#zero(rows * d), [rows, d]);
    feeds['upper'] = new T('float32', box?.upper ?? this.#zero(rows * d), [rows, d]);
    feeds['step'] = new T('float32', box?.step ?? this.#zero(d), [d]);
    return feeds;
  }

  /**
   * `n` zeros for the box inputs of a gradient-only pass (the graph needs them fed; `next` is not
   * fetched): one buffer reused by every call, as ONNX Runtime only reads its inputs, instead of a
   * fresh `rows x inputs` allocation per PGD step of {@link inputGradient}'s callers.
   */
  #zero(n: number): Float32Array {
    if (this.#zeros.length < n) this.#zeros = new Float32Array(n);
    return this.#zeros.subarray(0, n);
  }

  async #run(feeds: Feeds, fetch: string[], session = this.#session): Promise<Record<string, Float32Array>> {
    let out: Awaited<ReturnType<Session['run']>>;
    try {
      out = await session.run(feeds, fetch);
    } catch (e) {
      throw new BulwarkError(
        'ERR_ONNX_RUNTIME',
        `ONNX Runtime failed to run the gradient graph: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const res: Record<string, Float32Array> = {};
    for (const name of fetch) res[name] = out[name]?.data as Float32Array;
    return res;
  }

  /**
   * Logits and, per row, the gradient of that row's cross-entropy loss with respect to its raw input
   * (not averaged over the batch): the same values as `net.inputGradient`, within float32 rounding.
   */
  async inputGradient(
    x: Float32Array,
    y: EngineTargets,
    rows: number,
  ): Promise<{ logits: Float32Array; gradient: Float32Array }> {
    const r = await this.#run(this.#feeds(x, y, rows, null), ['logits', 'gradient']);
    return { logits: r['logits'] as Float32Array, gradient: r['gradient'] as Float32Array };
  }

  /**
   * `steps` L-inf PGD steps from `x` on the cross-entropy of the targets `y` (the true labels for
   * Madry et al.'s PGD; the clean input's probabilities for TRADES's inner maximisation of the KL):
   * x <- min(max(x + step * sign(grad), lower), upper), against the current parameters. Returns the
   * final iterate (`x` is not modified).
   */
  async pgd(
    x: Float32Array,
    y: EngineTargets,
    rows: number,
    box: PgdBox,
    steps: number,
  ): Promise<Float32Array> {
    requireInteger('steps', steps, 0);
    const d = this.#net.inputs;
    if (box.lower.length !== rows * d || box.upper.length !== rows * d)
      throw invalidArgument('box', `lower and upper of ${rows} x ${d}`, box.lower.length);
    if (box.step.length !== d) throw invalidArgument('box.step', `${d} values`, box.step.length);
    const feeds = this.#feeds(x, y, rows, box);
    let cur = x;
    for (let t = 0; t < steps; t++) {
      cur = (await this.#run(feeds, ['next']))['next'] as Float32Array;
      feeds['x'] = new this.#ort.Tensor('float32', cur, [rows, d]);
    }
    return cur === x ? x.slice() : cur;
  }

  /**
   * The mean (sample-weighted) cross-entropy of a batch and its gradient with respect to the
   * parameters, in `net.params` layout: what `net.lossAndGradient(x, y, rows, { sampleWeights })`
   * returns (without L2), within float32 rounding; and the batch's logits.
   */
  async lossAndGradient(
    x: Float32Array,
    y: EngineTargets,
    rows: number,
    sampleWeights: ArrayLike<number> | null = null,
  ): Promise<{ loss: number; gradient: Float32Array; logits: Float32Array }> {
    if (sampleWeights !== null && sampleWeights.length !== rows)
      throw invalidArgument('sampleWeights', `${rows} weights`, sampleWeights.length);
    const w = new Float32Array(rows);
    for (let r = 0; r < rows; r++) w[r] = (sampleWeights === null ? 1 : (sampleWeights[r] as number)) / rows;
    return this.weightedGradient(x, y, rows, w);
  }

  /**
   * sum_r weights[r] x CE(z_r, y_r) and its gradient with respect to the parameters (each row's logit
   * gradient weights[r] x (softmax(z_r) - t_r)), with the weights taken as they are (no mean); and
   * the batch's logits. With `{ soft }` targets that are not probabilities, only the gradient and the
   * logits mean anything (see {@link EngineTargets}).
   */
  async weightedGradient(
    x: Float32Array,
    y: EngineTargets,
    rows: number,
    weights: Float32Array,
  ): Promise<{ loss: number; gradient: Float32Array; logits: Float32Array }> {
    const feeds = this.#base(x, y, rows);
    if (weights.length !== rows) throw invalidArgument('weights', `${rows} weights`, weights.length);
    feeds['weight'] = new this.#ort.Tensor('float32', weights, [rows, 1]);
    const out = await this.#run(feeds, ['loss', 'gradient', 'logits'], this.#training);
    return {
      loss: (out['loss'] as Float32Array)[0] as number,
      gradient: out['gradient'] as Float32Array,
      logits: out['logits'] as Float32Array,
    };
  }

  /** Frees the native sessions. */
  async close(): Promise<void> {
    try {
      await this.#session.release();
    } finally {
      await this.#training.release();
    }
  }
}

/** The graphs' `onehot` input for `y`: one-hot rows for labels, the matrix itself for soft targets. */
function targetRows(y: EngineTargets, rows: number, k: number): Float32Array {
  if ('soft' in y) {
    if (!(y.soft instanceof Float32Array) || y.soft.length !== rows * k)
      throw invalidArgument('y.soft', `a Float32Array of ${rows} x ${k} targets`, y.soft?.length);
    for (let i = 0; i < y.soft.length; i++)
      if (!Number.isFinite(y.soft[i])) throw invalidArgument(`y.soft[${i}]`, 'a finite number', y.soft[i]);
    return y.soft;
  }
  if (y.length !== rows) throw invalidArgument('y', `${rows} labels`, y.length);
  const onehot = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const c = y[r] as number;
    if (!Number.isInteger(c) || c < 0 || c >= k)
      throw invalidArgument(`y[${r}]`, `a class in 0..${k - 1}`, c);
    onehot[r * k + c] = 1;
  }
  return onehot;
}
