/**
 * Inference through ONNX Runtime (`onnxruntime-node`, CPU execution provider). The native binding is
 * loaded on first use only, so commands that never run ONNX Runtime do not pay for it.
 */
import { BulwarkError, requireInteger } from '../../core/index.js';
import { assertOnnxOpenable } from '../../model/onnx-info.js';
import { type OnnxMemoryBound, type OnnxMemoryOptions, onnxMemoryBound } from '../../model/onnx-memory.js';

type Ort = typeof import('onnxruntime-node');
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

let ortPromise: Promise<Ort> | undefined;

/** Loads onnxruntime-node once (ERR_ONNX_RUNTIME when it cannot be loaded). */
export async function ort(): Promise<Ort> {
  ortPromise ??= import('onnxruntime-node').catch((e: unknown) => {
    ortPromise = undefined;
    throw new BulwarkError(
      'ERR_ONNX_RUNTIME',
      `onnxruntime-node could not be loaded: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  });
  return ortPromise;
}

/** Longest part of an ONNX Runtime error message that Bulwark repeats in its own. */
const ORT_MESSAGE_CHARS = 1000;

/**
 * ONNX Runtime's message, cut to {@link ORT_MESSAGE_CHARS} characters: it can list the whole offending
 * node, and a model whose node has a million empty inputs gave a 3 MB error line.
 */
function ortMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.length > ORT_MESSAGE_CHARS ? `${m.slice(0, ORT_MESSAGE_CHARS)}… (${m.length} characters)` : m;
}

/** An ONNX model opened in ONNX Runtime, taking one float32 [batch, features] input. */
export class OnnxRuntimeModel {
  readonly #session: Session;
  readonly #ort: Ort;
  /** Name of the graph input. */
  readonly inputName: string;
  /** Names of the graph outputs, in graph order. */
  readonly outputNames: readonly string[];
  /**
   * The outputs that are tensors, the ones a run asks for: onnxruntime-node cannot return a sequence or
   * a map ("Non tensor type is temporarily not supported"), and skl2onnx ends classifiers with a ZipMap
   * (a sequence of maps) beside the tensor of probabilities, so asking for every output failed every run.
   */
  readonly #fetches: readonly string[];
  /** The memory bound the model was opened under: runs keep within its batch and feature bounds. */
  readonly memory: Readonly<OnnxMemoryBound>;

  private constructor(o: Ort, session: Session, memory: OnnxMemoryBound) {
    this.#ort = o;
    this.#session = session;
    this.memory = memory;
    if (session.inputNames.length !== 1) {
      throw new BulwarkError('ERR_ONNX_INVALID', `model has ${session.inputNames.length} inputs, expected 1`);
    }
    this.inputName = session.inputNames[0] as string;
    this.outputNames = [...session.outputNames];
    this.#fetches = session.outputMetadata.filter((m) => m.isTensor).map((m) => m.name);
  }

  /**
   * Opens a model from its bytes, with `threads` intra-op threads (default 1: the machine is shared).
   * Refused first, before ONNX Runtime sees the bytes: a model with external data or past the size
   * limits (`assertOnnxOpenable`: ONNX Runtime would read external data from the working folder), and
   * a model whose tensors may pass `memory.maxMemoryBytes` at `memory.maxBatch` rows, or cannot be
   * bounded (`onnxMemoryBound`, ERR_MODEL_UNSAFE: a graph's sizes are values, and a few hundred bytes
   * can ask for gigabytes). {@link run} then splits longer inputs into runs of `maxBatch` rows.
   * ONNX Runtime's own log is off (fatal only): its errors reach the caller in the thrown error's
   * message, not as colored C++ log lines on stderr. `describedAs` is how those refusals name the
   * model (default "model"; the gateway gives its configuration key, `models.fraud`, so that its
   * message reads "models.fraud: at 256 rows ..." rather than "models.fraud: model: at 256 rows ...").
   */
  static async create(
    bytes: Uint8Array,
    options: { threads?: number; memory?: OnnxMemoryOptions; describedAs?: string } = {},
  ): Promise<OnnxRuntimeModel> {
    const threads = requireInteger('threads', options.threads ?? 1, 1, 256);
    const what = options.describedAs ?? 'model';
    assertOnnxOpenable(bytes, what);
    const memory = onnxMemoryBound(bytes, what, options.memory);
    const o = await ort();
    try {
      const session = await o.InferenceSession.create(bytes, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 4,
      });
      return new OnnxRuntimeModel(o, session, memory);
    } catch (e) {
      if (e instanceof BulwarkError) throw e;
      throw new BulwarkError('ERR_ONNX_RUNTIME', `ONNX Runtime could not open the model: ${ortMessage(e)}`, {
        cause: e,
      });
    }
  }

  /**
   * Runs `rows` examples (`rows x features` row-major) and returns every float32 output by name. More
   * rows than the bound's `maxBatch` run in batches of `maxBatch` (the memory bound holds for those),
   * and each output's rows are put back together; a model whose outputs do not have one row per input
   * row cannot be run so (ERR_ONNX_RUNTIME).
   */
  async run(
    x: Float32Array,
    rows: number,
    features: number,
  ): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
    requireInteger('rows', rows, 1);
    requireInteger('features', features, 1);
    if (x.length !== rows * features) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `x: expected ${rows * features} values (${rows} x ${features}), got ${x.length}`,
      );
    }
    if (this.memory.symbolicFeatures && features > this.memory.maxFeatures)
      throw new BulwarkError(
        'ERR_INPUT_TOO_LARGE',
        `features: ${features}, above the ${this.memory.maxFeatures} the model's memory was bounded for (memory.maxFeatures)`,
      );
    const batch = this.memory.maxBatch;
    if (rows <= batch) return this.#runBatch(x, rows, features);
    const parts: Record<string, { data: Float32Array; dims: readonly number[] }>[] = [];
    for (let r = 0; r < rows; r += batch) {
      const n = Math.min(batch, rows - r);
      const part = await this.#runBatch(x.slice(r * features, (r + n) * features), n, features);
      for (const [name, t] of Object.entries(part))
        if (t.dims[0] !== n)
          throw new BulwarkError(
            'ERR_ONNX_RUNTIME',
            `output "${name}" has dims [${t.dims.join(', ')}] for ${n} rows, not one row per input row: the ${rows} rows cannot be run in batches of ${batch} (memory.maxBatch)`,
          );
      parts.push(part);
    }
    const result: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
    for (const name of Object.keys(parts[0] as object)) {
      const pieces = parts.map((p) => p[name]);
      if (pieces.some((p) => p === undefined))
        throw new BulwarkError('ERR_ONNX_RUNTIME', `output "${name}" is missing from some batches`);
      const ts = pieces as { data: Float32Array; dims: readonly number[] }[];
      const data = new Float32Array(ts.reduce((a, t) => a + t.data.length, 0));
      let o = 0;
      for (const t of ts) {
        data.set(t.data, o);
        o += t.data.length;
      }
      result[name] = { data, dims: [rows, ...(ts[0] as { dims: readonly number[] }).dims.slice(1)] };
    }
    return result;
  }

  async #runBatch(
    x: Float32Array,
    rows: number,
    features: number,
  ): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
    let out: Awaited<ReturnType<Session['run']>>;
    try {
      out = await this.#session.run(
        { [this.inputName]: new this.#ort.Tensor('float32', x, [rows, features]) },
        [...this.#fetches],
      );
    } catch (e) {
      throw new BulwarkError('ERR_ONNX_RUNTIME', `ONNX Runtime failed to run the model: ${ortMessage(e)}`, {
        cause: e,
      });
    }
    const result: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
    for (const name of this.outputNames) {
      const t = out[name];
      // Non-float outputs (a converter's int64 or string label output) are left out.
      if (t !== undefined && t.data instanceof Float32Array) result[name] = { data: t.data, dims: t.dims };
    }
    if (Object.keys(result).length === 0) {
      throw new BulwarkError(
        'ERR_ONNX_RUNTIME',
        `the model has no float32 tensor output (outputs: ${this.outputNames.join(', ')})`,
      );
    }
    return result;
  }

  /** Frees the native session. */
  async close(): Promise<void> {
    await this.#session.release();
  }
}
