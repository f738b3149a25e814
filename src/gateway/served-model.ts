/**
 * A model as the pipeline serves it: the KServe v2 / Open Inference Protocol request turned into
 * schema-checked rows (one input tensor per schema field, the columnar form MLServer and Triton clients
 * send for tabular data), the rows into the model's features, inference through ONNX Runtime, and the
 * output hardened against extraction (top-k labels, rounded probabilities, optional noise: Tramèr et al.,
 * "Stealing Machine Learning Models via Prediction APIs", USENIX Security 2016, section 8).
 */
import { BulwarkError, type Rng, SecureRng } from '../core/index.js';
import { Dataset, type Row } from '../data/index.js';
import {
  type BundleKind,
  InputValidator,
  MahalanobisDetector,
  PradaDetector,
  type QueryVerdict,
  type RedisStreamState,
  readDetectorBundle,
  StatefulDetector,
  type StreamDetector,
} from '../robust/index.js';
import type { ModelConfig, OutputConfig } from './config.js';
import type { LoadedModel } from './model-source.js';

const NUMERIC_TYPES = new Set([
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
]);
/**
 * The values each integer datatype can carry. INT64 and UINT64 stop at 2^53 - 1: a JSON number beyond
 * it has already been rounded by `JSON.parse` (9007199254740993 reads as ...992), and the gateway must
 * not answer for a value other than the one sent.
 */
const INTEGER_RANGE: ReadonlyMap<string, readonly [number, number]> = new Map([
  ['UINT8', [0, 255]],
  ['UINT16', [0, 65_535]],
  ['UINT32', [0, 4_294_967_295]],
  ['UINT64', [0, Number.MAX_SAFE_INTEGER]],
  ['INT8', [-128, 127]],
  ['INT16', [-32_768, 32_767]],
  ['INT32', [-2_147_483_648, 2_147_483_647]],
  ['INT64', [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]],
]);
/** The largest finite magnitude of the narrower float datatypes (FP64 is JSON's own number). */
const FLOAT_MAX: ReadonlyMap<string, number> = new Map([
  ['FP16', 65_504],
  ['FP32', 3.4028234663852886e38],
]);
const REQUEST_KEYS = new Set(['id', 'parameters', 'inputs', 'outputs']);
const INPUT_KEYS = new Set(['name', 'shape', 'datatype', 'data', 'parameters']);
const OUTPUT_KEYS = new Set(['name', 'parameters']);
export const OUTPUT_NAMES = ['label', 'probabilities'] as const;

/** A parsed v2 inference request. */
export interface InferRequest {
  id?: string;
  rows: Row[];
  outputs: ReadonlySet<string> | null;
}

/** A v2 output tensor. */
export interface OutputTensor {
  name: string;
  shape: number[];
  datatype: 'BYTES' | 'FP32';
  data: (string | number)[];
}

function bad(message: string, reason: string, field?: string): BulwarkError {
  return new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', message, {
    details: { reason, ...(field !== undefined ? { field } : {}) },
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, allowed: ReadonlySet<string>, where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k))
      throw bad(`${where}: unknown field "${k.slice(0, 64)}"`, 'unknown_field', k.slice(0, 64));
  }
}

function checkParameters(v: unknown, where: string): void {
  if (v === undefined) return;
  if (!isPlainObject(v)) throw bad(`${where}.parameters: expected an object`, 'type');
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string' && typeof x !== 'boolean' && !(typeof x === 'number' && Number.isFinite(x)))
      throw bad(`${where}.parameters.${k.slice(0, 64)}: expected a string, number or boolean`, 'type');
  }
}

/**
 * Runs `f`, naming the configuration key in the message of any error it throws (code and details
 * kept), so an operator with several models knows which file is at fault.
 */
export function atKey<T>(key: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw keyed(key, e);
  }
}

/**
 * `e` with `key: ` before its message (unchanged when it names the key already). The message test only
 * avoids saying the key twice; code and details, what callers branch on, are kept as they are.
 */
export function keyed(key: string, e: unknown): BulwarkError {
  if (e instanceof BulwarkError) {
    if (e.message.startsWith(`${key}`)) return e;
    return new BulwarkError(e.code, `${key}: ${e.message}`, { details: e.details, cause: e });
  }
  return new BulwarkError('ERR_CONFIG_INVALID', `${key}: ${(e as Error)?.message ?? String(e)}`, {
    cause: e,
  });
}

/**
 * The detectors a model package carries (its verified bundle, src/robust `readDetectorBundle`), each
 * kind's saved state still to load; refused, naming the model, when the bundle is malformed or made for
 * another model's width or classes.
 */
export function packageDetectors(
  model: string,
  bundle: unknown,
  loaded?: { features: number; classValues: readonly string[] },
): Partial<Record<BundleKind, unknown>> {
  return atKey(`models.${model}.package`, () => {
    const b = readDetectorBundle(bundle);
    if (loaded && (b.features !== loaded.features || b.classes !== loaded.classValues.length))
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        `its detector bundle was made for ${b.features} features and ${b.classes} classes, the model has ${loaded.features} and ${loaded.classValues.length}`,
      );
    return b.detectors;
  });
}

/** Detector verdicts for one request. */
export interface Detection {
  detector: string;
  score: number;
  flagged: boolean;
}

export class ServedModel {
  readonly name: string;
  readonly version: string;
  readonly validator: InputValidator;
  readonly output: OutputConfig;
  readonly maxRows: number;
  readonly #fieldTypes: Map<string, string>;
  readonly #noiseRng: Rng = new SecureRng();
  readonly mahalanobis: MahalanobisDetector | null;
  readonly stateful: StatefulDetector | null;
  readonly prada: PradaDetector | null;
  /** Where the stream detectors keep callers' state: null in this process's memory, else Redis. */
  #shared: RedisStreamState | null = null;
  ready = true;

  /**
   * @param sources where each detector's state came from: `package` (sealed in the signed package) or
   *   `file` (a configured file), for the dashboard and `serve --check`.
   */
  constructor(
    readonly loaded: LoadedModel,
    config: ModelConfig,
    detectors: { mahalanobis?: unknown; stateful?: unknown; prada?: unknown } = {},
    readonly detectorSources: Readonly<Partial<Record<BundleKind, 'package' | 'file'>>> = {},
  ) {
    this.name = loaded.name;
    this.version = loaded.version;
    this.output = config.output;
    this.maxRows = config.maxRows;
    if (this.output.topK > loaded.classValues.length)
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `models.${loaded.name}.output.topK: ${this.output.topK} is more than the ${loaded.classValues.length} classes`,
      );
    this.validator = new InputValidator(loaded.schema, {
      fields: loaded.inputFields,
      limits: { maxRows: config.maxRows },
    });
    this.#fieldTypes = new Map(this.validator.fields.map((f) => [f.name, f.type]));
    this.mahalanobis = atKey(`models.${loaded.name}.detectors.mahalanobis`, () =>
      detectors.mahalanobis === undefined ? null : MahalanobisDetector.load(detectors.mahalanobis),
    );
    this.stateful = atKey(`models.${loaded.name}.detectors.stateful`, () =>
      detectors.stateful === undefined ? null : StatefulDetector.load(detectors.stateful),
    );
    this.prada = atKey(`models.${loaded.name}.detectors.prada`, () =>
      detectors.prada === undefined ? null : PradaDetector.load(detectors.prada),
    );
    if (this.mahalanobis) {
      // Its width is only checked when it scores: probe it here with one zero row, so a detector of
      // another model stops the start naming the key instead of failing every request.
      try {
        this.mahalanobis.scoreSync(new Float32Array(loaded.features), 1);
      } catch (e) {
        throw new BulwarkError(
          'ERR_DETECTOR_STATE',
          `models.${loaded.name}.detectors.mahalanobis: cannot score the model's ${loaded.features} features (${(e as Error).message.slice(0, 160)})`,
          { cause: e },
        );
      }
    }
    // PRADA keeps per-class state: a model predicting a class it does not know would fail each such
    // request after inference (ERR_INVALID_ARGUMENT, a 500 for every such request).
    if (this.prada && this.prada.classes !== loaded.classValues.length)
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        `models.${loaded.name}.detectors.prada: fitted for ${this.prada.classes} classes, the model has ${loaded.classValues.length}`,
      );
    for (const [kind, d] of [
      ['stateful', this.stateful],
      ['prada', this.prada],
    ] as const) {
      if (d && d.inputs !== loaded.features)
        throw new BulwarkError(
          'ERR_DETECTOR_STATE',
          `models.${loaded.name}.detectors.${kind}: fitted on ${d.inputs} features, the model takes ${loaded.features}`,
        );
    }
  }

  /** The v2 model metadata (`GET /v2/models/{name}`). */
  metadata(): Record<string, unknown> {
    const types = this.#fieldTypes;
    return {
      name: this.name,
      versions: [this.version],
      platform: 'onnxruntime_onnx',
      inputs: this.loaded.inputFields.map((n) => {
        const t = types.get(n);
        return {
          name: n,
          datatype: t === 'number' ? 'FP64' : t === 'integer' ? 'INT64' : 'BYTES',
          shape: [-1],
        };
      }),
      outputs: [
        { name: 'label', datatype: 'BYTES', shape: [-1, this.output.topK] },
        ...(this.output.probabilities
          ? [{ name: 'probabilities', datatype: 'FP32', shape: [-1, this.output.topK] }]
          : []),
      ],
    };
  }

  /**
   * Checks the shape of a v2 request exactly (unknown fields, types, shapes, datatypes: 400) and turns
   * its columns into rows. Values are not coerced: the schema check that follows refuses a string in a
   * number field.
   */
  parseRequest(body: unknown): InferRequest {
    if (!isPlainObject(body)) throw bad('request body: expected a JSON object', 'type');
    checkKeys(body, REQUEST_KEYS, 'request');
    const out: InferRequest = { rows: [], outputs: null };
    if (body['id'] !== undefined) {
      const id = body['id'];
      if (typeof id !== 'string' || id.length === 0 || id.length > 128 || !/^[\x21-\x7e]+$/.test(id))
        throw bad('id: expected 1-128 printable ASCII characters', 'type', 'id');
      out.id = id;
    }
    checkParameters(body['parameters'], 'request');
    const outputs = body['outputs'];
    if (outputs !== undefined) {
      if (!Array.isArray(outputs) || outputs.length === 0 || outputs.length > OUTPUT_NAMES.length)
        throw bad('outputs: expected a list of 1 or 2 output requests', 'type', 'outputs');
      const names = new Set<string>();
      for (const o of outputs) {
        if (!isPlainObject(o)) throw bad('outputs: expected objects', 'type', 'outputs');
        checkKeys(o, OUTPUT_KEYS, 'outputs[]');
        checkParameters(o['parameters'], 'outputs[]');
        const n = o['name'];
        if (typeof n !== 'string' || !(OUTPUT_NAMES as readonly string[]).includes(n))
          throw bad(
            `outputs[].name: expected one of ${OUTPUT_NAMES.join(', ')}`,
            'unknown_output',
            'outputs',
          );
        if (n === 'probabilities' && !this.output.probabilities)
          throw bad('outputs[].name: this model does not release probabilities', 'unknown_output', 'outputs');
        if (names.has(n)) throw bad(`outputs: "${n}" requested twice`, 'duplicate', 'outputs');
        names.add(n);
      }
      out.outputs = names;
    }
    const inputs = body['inputs'];
    if (!Array.isArray(inputs) || inputs.length === 0)
      throw bad('inputs: expected a non-empty list of input tensors', 'type', 'inputs');
    if (inputs.length > this.#fieldTypes.size)
      throw bad(
        `inputs: ${inputs.length} tensors, the model has ${this.#fieldTypes.size} inputs`,
        'shape',
        'inputs',
      );
    let rows = -1;
    const columns: [string, unknown[]][] = [];
    const seen = new Set<string>();
    for (const t of inputs) {
      if (!isPlainObject(t)) throw bad('inputs[]: expected objects', 'type', 'inputs');
      checkKeys(t, INPUT_KEYS, 'inputs[]');
      checkParameters(t['parameters'], 'inputs[]');
      const name = t['name'];
      if (typeof name !== 'string') throw bad('inputs[].name: expected a string', 'type', 'inputs');
      const ftype = this.#fieldTypes.get(name);
      if (ftype === undefined)
        throw bad(
          `inputs[].name: the model has no input "${name.slice(0, 64)}"`,
          'unknown_field',
          name.slice(0, 64),
        );
      if (seen.has(name)) throw bad(`inputs: "${name}" given twice`, 'duplicate', name);
      seen.add(name);
      const shape = t['shape'];
      if (
        !Array.isArray(shape) ||
        shape.length < 1 ||
        shape.length > 2 ||
        !shape.every((s) => typeof s === 'number' && Number.isInteger(s) && s >= 1) ||
        (shape.length === 2 && shape[1] !== 1)
      )
        throw bad(`inputs.${name}.shape: expected [rows] or [rows, 1]`, 'shape', name);
      const n = shape[0] as number;
      if (n > this.maxRows)
        throw new BulwarkError(
          'ERR_INPUT_TOO_LARGE',
          `inputs.${name}: ${n} rows, the limit is ${this.maxRows}`,
          {
            details: { reason: 'too_large', field: name },
          },
        );
      if (rows !== -1 && n !== rows)
        throw bad(`inputs.${name}.shape: ${n} rows, other inputs have ${rows}`, 'shape', name);
      rows = n;
      const dt = t['datatype'];
      const numeric = ftype === 'number' || ftype === 'integer';
      if (typeof dt !== 'string' || (numeric ? !NUMERIC_TYPES.has(dt) || dt === 'BOOL' : dt !== 'BYTES'))
        throw bad(
          `inputs.${name}.datatype: expected ${numeric ? 'a numeric type (FP32, FP64, INT64, ...)' : 'BYTES'}`,
          'datatype',
          name,
        );
      const data = t['data'];
      if (!Array.isArray(data) || data.length !== n)
        throw bad(`inputs.${name}.data: expected a flat list of ${n} values`, 'shape', name);
      // The declared datatype is checked against the values (null stays for a missing value, judged by
      // the schema): nothing is coerced, so a value the datatype cannot hold is a malformed request.
      const range = INTEGER_RANGE.get(dt);
      const fmax = FLOAT_MAX.get(dt);
      if (range !== undefined) {
        const [lo, hi] = range;
        for (const v of data)
          if (v !== null && !(typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi))
            throw bad(
              `inputs.${name}.data: ${dt} values must be integers in [${lo}, ${hi}]`,
              'datatype',
              name,
            );
      } else if (fmax !== undefined) {
        for (const v of data)
          if (typeof v === 'number' && Math.abs(v) > fmax)
            throw bad(`inputs.${name}.data: a value beyond the range of ${dt}`, 'datatype', name);
      } else if (dt === 'BYTES') {
        // A number is not BYTES: the schema check would turn 1 into the category "1".
        for (const v of data)
          if (v !== null && typeof v !== 'string')
            throw bad(`inputs.${name}.data: BYTES values must be strings`, 'datatype', name);
      }
      columns.push([name, data]);
    }
    for (let r = 0; r < rows; r++) {
      const row: Row = {};
      for (const [name, data] of columns) row[name] = data[r] as Row[string];
      out.rows.push(row);
    }
    return out;
  }

  /** The schema check: throws ERR_INPUT_INVALID / ERR_INPUT_TOO_LARGE naming row and field. */
  validate(rows: Row[]): Row[] {
    return this.validator.assert(rows);
  }

  /**
   * Schema rows (already validated) to the model's feature matrix (the preprocessing saved with the
   * model). The preprocessing failing on rows the schema accepts is the gateway's fault, not the
   * caller's (a schema that allows a category the model's encoder never saw, a broken saved state):
   * ERR_INTERNAL, whatever code it threw. A row whose features are not finite (a value the model cannot
   * represent) is the caller's: ERR_INPUT_INVALID.
   */
  features(rows: Row[]): Float32Array {
    let x: Float32Array;
    try {
      x = this.loaded.pipeline.transform(Dataset.fromRows(rows, this.loaded.inputTypes)).matrix;
    } catch (e) {
      throw new BulwarkError('ERR_INTERNAL', `model ${this.name}: the preprocessing failed on valid rows`, {
        cause: e,
      });
    }
    for (let i = 0; i < x.length; i++)
      if (!Number.isFinite(x[i]))
        throw new BulwarkError('ERR_INPUT_INVALID', 'an input maps to a non-finite feature', {
          details: { reason: 'non_finite', row: Math.floor(i / this.loaded.features) + 1 },
        });
    return x;
  }

  /** Class probabilities, `rows x classes`. */
  async predict(x: Float32Array, rows: number): Promise<Float32Array> {
    const out = await this.loaded.runtime.run(x, rows, this.loaded.features);
    const o = out[this.loaded.outputName] as { data: Float32Array };
    const k = this.loaded.classValues.length;
    if (o.data.length === rows * k) return o.data;
    if (o.data.length === rows && k === 2) {
      const p = new Float32Array(rows * 2);
      for (let i = 0; i < rows; i++) {
        p[2 * i] = 1 - (o.data[i] as number);
        p[2 * i + 1] = o.data[i] as number;
      }
      return p;
    }
    throw new BulwarkError(
      'ERR_ONNX_RUNTIME',
      `model ${this.name}: output has ${o.data.length} values for ${rows} rows of ${k} classes`,
    );
  }

  /** Index of the most probable class of each row. */
  argmax(p: Float32Array, rows: number): Int32Array {
    const k = this.loaded.classValues.length;
    const out = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let c = 1; c < k; c++) if ((p[r * k + c] as number) > (p[r * k + best] as number)) best = c;
      out[r] = best;
    }
    return out;
  }

  /**
   * The released outputs: noise (if configured) on the probability vector, then the top-k labels and
   * their probabilities rounded to `roundDigits`. Rounding and top-k bound what each answer reveals about
   * the decision surface; noise blurs equation-solving attacks further.
   */
  harden(
    p: Float32Array,
    rows: number,
    wanted: ReadonlySet<string> | null,
  ): { outputs: OutputTensor[]; labels: readonly string[] } {
    const { topK, roundDigits, noise } = this.output;
    const k = this.loaded.classValues.length;
    const labels: string[] = [];
    const probs: number[] = [];
    const scale = 10 ** roundDigits;
    const v = new Float64Array(k);
    const idx = Array.from({ length: k }, (_, i) => i);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < k; c++) {
        let x = p[r * k + c] as number;
        if (noise && noise.scale > 0) {
          x +=
            noise.kind === 'gaussian'
              ? this.#noiseRng.normal(0, noise.scale)
              : (this.#noiseRng.bernoulli(0.5) ? 1 : -1) * this.#noiseRng.exponential(1 / noise.scale);
          x = Math.min(1, Math.max(0, x));
        }
        v[c] = x;
        sum += x;
      }
      if (noise && sum > 0) for (let c = 0; c < k; c++) v[c] = (v[c] as number) / sum;
      idx.sort((a, b) => (v[b] as number) - (v[a] as number) || a - b);
      for (let j = 0; j < topK; j++) {
        const c = idx[j] as number;
        labels.push(this.loaded.classValues[c] as string);
        probs.push(Math.round((v[c] as number) * scale) / scale);
      }
    }
    const out: OutputTensor[] = [];
    if (wanted === null || wanted.has('label'))
      out.push({ name: 'label', shape: [rows, topK], datatype: 'BYTES', data: labels });
    if (this.output.probabilities && (wanted === null || wanted.has('probabilities')))
      out.push({ name: 'probabilities', shape: [rows, topK], datatype: 'FP32', data: probs });
    // The labels are returned whatever the caller asked for: the audit record's decision must not
    // depend on the `outputs` the caller chose (a caller asking for probabilities only is still audited
    // with the decision they reveal).
    return { outputs: out, labels };
  }

  /** Keeps the stream detectors' per-caller state in `store` (several replicas) instead of memory. */
  shareStreamState(store: RedisStreamState): void {
    this.#shared = store;
  }

  /** Whether the stream detectors' state is shared through Redis. */
  get sharedStreamState(): boolean {
    return this.#shared !== null;
  }

  /**
   * The stateful detector's verdict on each of `rows` queries (`x` row-major) of `client`, from the
   * state in memory or in Redis (ERR_DETECTOR_STORE_UNAVAILABLE when it cannot be reached).
   */
  async observeStateful(client: string, x: Float32Array, rows: number): Promise<QueryVerdict[]> {
    const det = this.stateful;
    if (det === null) return [];
    if (this.#shared) return this.#shared.observeStateful(det, client, x, rows);
    const d = this.loaded.features;
    const out: QueryVerdict[] = [];
    for (let i = 0; i < rows; i++) out.push(det.observe(client, x.subarray(i * d, (i + 1) * d)));
    return out;
  }

  /** PRADA's verdict on each of `rows` queries of `client` answered with `predicted` (as above). */
  async observePrada(
    client: string,
    x: Float32Array,
    predicted: Int32Array,
    rows: number,
  ): Promise<QueryVerdict[]> {
    const det = this.prada;
    if (det === null) return [];
    if (this.#shared) return this.#shared.observePrada(det, client, x, predicted, rows);
    const d = this.loaded.features;
    const out: QueryVerdict[] = [];
    for (let i = 0; i < rows; i++)
      out.push(det.observe(client, x.subarray(i * d, (i + 1) * d), predicted[i] as number));
    return out;
  }

  /** Stream detectors keep per-principal state. */
  streamDetectors(): StreamDetector[] {
    return [this.stateful, this.prada].filter((d): d is StatefulDetector | PradaDetector => d !== null);
  }

  async close(): Promise<void> {
    this.ready = false;
    await this.loaded.runtime.close();
  }
}
