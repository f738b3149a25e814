/**
 * Inference through ONNX Runtime (`onnxruntime-node`, CPU execution provider). The native binding is
 * loaded on first use only, so commands that never run ONNX Runtime do not pay for it.
 */
import { BulwarkError, requireInteger } from '../../core/index.js';
import { assertOnnxOpenable } from '../../model/onnx-info.js';

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

  private constructor(o: Ort, session: Session) {
    this.#ort = o;
    this.#session = session;
    if (session.inputNames.length !== 1) {
      throw new BulwarkError('ERR_ONNX_INVALID', `model has ${session.inputNames.length} inputs, expected 1`);
    }
    this.inputName = session.inputNames[0] as string;
    this.outputNames = [...session.outputNames];
  }

  /**
   * Opens a model from its bytes, with `threads` intra-op threads (default 1: the machine is shared).
   * A model with external data or past the size limits is refused first (`assertOnnxOpenable`):
   * ONNX Runtime would read external data from the working folder. ONNX Runtime's own log is off
   * (fatal only): its errors reach the caller in the thrown error's message, not as colored C++ log
   * lines on stderr.
   */
  static async create(bytes: Uint8Array, options: { threads?: number } = {}): Promise<OnnxRuntimeModel> {
    const threads = requireInteger('threads', options.threads ?? 1, 1, 256);
    assertOnnxOpenable(bytes, 'model');
    const o = await ort();
    try {
      const session = await o.InferenceSession.create(bytes, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 4,
      });
      return new OnnxRuntimeModel(o, session);
    } catch (e) {
      if (e instanceof BulwarkError) throw e;
      throw new BulwarkError('ERR_ONNX_RUNTIME', `ONNX Runtime could not open the model: ${ortMessage(e)}`, {
        cause: e,
      });
    }
  }

  /** Runs `rows` examples (`rows x features` row-major) and returns every float32 output by name. */
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
    let out: Awaited<ReturnType<Session['run']>>;
    try {
      out = await this.#session.run({
        [this.inputName]: new this.#ort.Tensor('float32', x, [rows, features]),
      });
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
