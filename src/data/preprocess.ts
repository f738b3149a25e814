import { z } from 'zod';
import { BulwarkError, invalidArgument, requireOneOf } from '../core/index.js';
import {
  type CellValue,
  type Column,
  type ColumnType,
  Dataset,
  formatTimestamp,
  parseNumber,
  parseTimestamp,
  type Row,
} from './dataset.js';
import type { Schema } from './schema.js';

/**
 * Fitted, serialisable preprocessing (after scikit-learn's transformers and mljs's `toJSON`/`load`):
 * each step learns its state from a training dataset with `fit`, applies it to any dataset with
 * `transform`, and saves it with `toJSON()`; `load()` checks the format and version and refuses
 * anything else with `ERR_PREPROCESS_STATE`. A {@link Pipeline} chains steps and turns a dataset — the
 * training set or one request's row at serving time — into the `Float32Array` matrix the models take,
 * with named output features.
 *
 * Min-max scaling uses PUBLIC bounds from the schema, never bounds computed from the (private) data:
 * computing them from the data leaks (the article's `data_norm` flaw), and rows are clipped to them.
 */

/** The format tag and version written into every saved state. */
export const PREPROCESS_FORMAT = 'bulwark.preprocess';
export const PREPROCESS_VERSION = 1;

/** A preprocessing step. */
export interface PreprocessStep {
  readonly kind: StepState['kind'];
  /** Learns the step's state from a training dataset. Returns the step. */
  fit(ds: Dataset): this;
  /** Applies the fitted state; throws `ERR_PREPROCESS_STATE` before `fit`. */
  transform(ds: Dataset): Dataset;
  /** The fitted state as plain JSON (throws `ERR_PREPROCESS_STATE` before `fit`). */
  toJSON(): StepState;
}

function notFitted(kind: string): BulwarkError {
  return new BulwarkError('ERR_PREPROCESS_STATE', `${kind}: used before fit()`, { details: { step: kind } });
}

function stateError(what: string): BulwarkError {
  return new BulwarkError('ERR_PREPROCESS_STATE', `saved preprocessing state: ${what}`);
}

const header = {
  format: z.literal(PREPROCESS_FORMAT),
  version: z.number().int(),
};

function checkHeader(json: unknown, kind: string): void {
  const h = z.object({ format: z.unknown(), version: z.unknown(), kind: z.unknown() }).safeParse(json);
  if (!h.success) throw stateError('not an object');
  if (h.data.format !== PREPROCESS_FORMAT)
    throw stateError(`format is ${JSON.stringify(h.data.format)}, expected "${PREPROCESS_FORMAT}"`);
  if (h.data.version !== PREPROCESS_VERSION) {
    throw stateError(
      `version ${JSON.stringify(h.data.version)} is not supported (this Bulwark reads version ${PREPROCESS_VERSION})`,
    );
  }
  if (h.data.kind !== kind) throw stateError(`kind is ${JSON.stringify(h.data.kind)}, expected "${kind}"`);
}

function parseState<S extends z.ZodType>(json: unknown, schema: S, kind: string): z.infer<S> {
  checkHeader(json, kind);
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw stateError(`${kind}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

function requireColumns(name: string, columns: unknown): string[] {
  if (
    !Array.isArray(columns) ||
    columns.length === 0 ||
    columns.some((c) => typeof c !== 'string' || c === '')
  ) {
    throw invalidArgument(name, 'a non-empty list of column names', columns);
  }
  if (new Set(columns).size !== columns.length) throw invalidArgument(name, 'unique column names', columns);
  return [...(columns as string[])];
}

/** A number or timestamp column's values; a string column is `ERR_DATA_VALUE`. */
function numericValues(ds: Dataset, name: string, step: string): Float64Array {
  const c = ds.column(name);
  if (c.type === 'string') {
    throw new BulwarkError('ERR_DATA_VALUE', `${step}: column "${name}" holds strings, not numbers`, {
      details: { field: name },
    });
  }
  return c.values;
}

/** Replaces a column's values; `keepType` keeps a timestamp a timestamp (imputing), else numbers (scaling). */
function replaceValues(ds: Dataset, name: string, values: Float64Array, keepType = false): Dataset {
  const c = ds.column(name);
  const type = keepType && c.type === 'timestamp' ? 'timestamp' : 'number';
  return ds.withColumn({ name, type, values });
}

// ---------------------------------------------------------------------------------------------------
// Imputer

export type ImputeStrategy = 'mean' | 'median' | 'most_frequent' | 'constant';
const IMPUTE_STRATEGIES: readonly ImputeStrategy[] = ['mean', 'median', 'most_frequent', 'constant'];

const imputerState = z
  .object({
    ...header,
    kind: z.literal('impute'),
    strategy: z.enum(['mean', 'median', 'most_frequent', 'constant']),
    columns: z
      .array(z.object({ name: z.string().min(1), value: z.union([z.number(), z.string()]) }).strict())
      .min(1),
  })
  .strict();
export type ImputerState = z.infer<typeof imputerState>;

/**
 * Replaces missing values (NaN, null) by the column's mean, median, most frequent value (ties go to the
 * smallest, as in scikit-learn's SimpleImputer) or a constant. Mean and median apply to numbers only;
 * most frequent and constant to strings too.
 */
export class Imputer implements PreprocessStep {
  readonly kind = 'impute' as const;
  readonly columns: readonly string[];
  readonly strategy: ImputeStrategy;
  readonly fillValue: number | string | undefined;
  #values: Map<string, number | string> | undefined;

  constructor(opts: { columns: readonly string[]; strategy: ImputeStrategy; fillValue?: number | string }) {
    this.columns = requireColumns('columns', opts.columns);
    this.strategy = requireOneOf('strategy', opts.strategy, IMPUTE_STRATEGIES);
    if (this.strategy === 'constant') {
      if (
        typeof opts.fillValue === 'number'
          ? !Number.isFinite(opts.fillValue)
          : typeof opts.fillValue !== 'string'
      ) {
        throw invalidArgument('fillValue', 'a finite number or a string (strategy constant)', opts.fillValue);
      }
    }
    this.fillValue = opts.fillValue;
  }

  fit(ds: Dataset): this {
    const values = new Map<string, number | string>();
    for (const name of this.columns) {
      const c = ds.column(name);
      if (this.strategy === 'constant') {
        const want = c.type === 'string' ? 'string' : 'number';
        if (typeof this.fillValue !== want) {
          throw invalidArgument('fillValue', `a ${want} for column "${name}"`, this.fillValue);
        }
        values.set(name, this.fillValue!);
        continue;
      }
      if (c.type === 'string') {
        if (this.strategy !== 'most_frequent') {
          throw invalidArgument(
            'strategy',
            `most_frequent or constant for the string column "${name}"`,
            this.strategy,
          );
        }
        values.set(
          name,
          mostFrequent(
            c.values.filter((v): v is string => v !== null),
            name,
          ),
        );
        continue;
      }
      const present = c.values.filter((x) => !Number.isNaN(x));
      if (present.length === 0) {
        throw new BulwarkError('ERR_DATA_VALUE', `impute: column "${name}" has no values to learn from`, {
          details: { field: name },
        });
      }
      if (this.strategy === 'mean') values.set(name, mean(present));
      else if (this.strategy === 'median') values.set(name, median(present));
      else values.set(name, mostFrequent(Array.from(present), name));
    }
    this.#values = values;
    return this;
  }

  transform(ds: Dataset): Dataset {
    const values = this.#values;
    if (!values) throw notFitted(this.kind);
    let out = ds;
    for (const [name, fill] of values) {
      const c = out.column(name);
      if (c.type === 'string') {
        const s = typeof fill === 'string' ? fill : String(fill);
        out = out.withColumn({ name, type: 'string', values: c.values.map((v) => v ?? s) });
      } else {
        const x = typeof fill === 'number' ? fill : parseNumber(fill);
        out = replaceValues(
          out,
          name,
          c.values.map((v) => (Number.isNaN(v) ? x : v)),
          true,
        );
      }
    }
    return out;
  }

  /** The learned fill value of each column. */
  get statistics(): ReadonlyMap<string, number | string> {
    if (!this.#values) throw notFitted(this.kind);
    return this.#values;
  }

  toJSON(): ImputerState {
    if (!this.#values) throw notFitted(this.kind);
    return {
      format: PREPROCESS_FORMAT,
      version: PREPROCESS_VERSION,
      kind: 'impute',
      strategy: this.strategy,
      columns: [...this.#values].map(([name, value]) => ({ name, value })),
    };
  }

  static load(json: unknown): Imputer {
    const s = parseState(json, imputerState, 'impute');
    const fill = s.strategy === 'constant' ? s.columns[0]!.value : undefined;
    const imp = new Imputer({
      columns: s.columns.map((c) => c.name),
      strategy: s.strategy,
      ...(fill === undefined ? {} : { fillValue: fill }),
    });
    imp.#values = new Map(s.columns.map((c) => [c.name, c.value]));
    return imp;
  }
}

function mean(v: ArrayLike<number>): number {
  // Two-pass mean with compensation keeps the result within one ulp for long columns.
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  const m = s / v.length;
  let r = 0;
  for (let i = 0; i < v.length; i++) r += v[i]! - m;
  return m + r / v.length;
}

function median(v: Float64Array): number {
  const s = Float64Array.from(v).sort();
  const k = s.length >> 1;
  return s.length % 2 === 1 ? s[k]! : (s[k - 1]! + s[k]!) / 2;
}

function mostFrequent<T extends number | string>(v: readonly T[], name: string): T {
  if (v.length === 0) {
    throw new BulwarkError('ERR_DATA_VALUE', `impute: column "${name}" has no values to learn from`, {
      details: { field: name },
    });
  }
  const counts = new Map<T, number>();
  for (const x of v) counts.set(x, (counts.get(x) ?? 0) + 1);
  let best: T | undefined;
  let bestN = -1;
  for (const [x, n] of counts) {
    if (n > bestN || (n === bestN && best !== undefined && x < best)) {
      best = x;
      bestN = n;
    }
  }
  return best!;
}

// ---------------------------------------------------------------------------------------------------
// StandardScaler

const standardState = z
  .object({
    ...header,
    kind: z.literal('standardize'),
    columns: z
      .array(z.object({ name: z.string().min(1), mean: z.number(), std: z.number().positive() }).strict())
      .min(1),
  })
  .strict();
export type StandardScalerState = z.infer<typeof standardState>;

/**
 * Standardises numbers to zero mean and unit variance: (x - mean) / std with the population standard
 * deviation of the training data (as scikit-learn's StandardScaler); a constant column gets std 1.
 * Missing values are ignored when fitting and stay missing.
 */
export class StandardScaler implements PreprocessStep {
  readonly kind = 'standardize' as const;
  readonly columns: readonly string[];
  #stats: Map<string, { mean: number; std: number }> | undefined;

  constructor(opts: { columns: readonly string[] }) {
    this.columns = requireColumns('columns', opts.columns);
  }

  fit(ds: Dataset): this {
    const stats = new Map<string, { mean: number; std: number }>();
    for (const name of this.columns) {
      const v = numericValues(ds, name, this.kind).filter((x) => !Number.isNaN(x));
      if (v.length === 0) {
        throw new BulwarkError(
          'ERR_DATA_VALUE',
          `standardize: column "${name}" has no values to learn from`,
          {
            details: { field: name },
          },
        );
      }
      const m = mean(v);
      let ss = 0;
      for (const x of v) ss += (x - m) * (x - m);
      const sd = Math.sqrt(ss / v.length);
      stats.set(name, { mean: m, std: sd > 0 && Number.isFinite(sd) ? sd : 1 });
    }
    this.#stats = stats;
    return this;
  }

  transform(ds: Dataset): Dataset {
    if (!this.#stats) throw notFitted(this.kind);
    let out = ds;
    for (const [name, { mean: m, std }] of this.#stats) {
      const v = numericValues(out, name, this.kind);
      out = replaceValues(
        out,
        name,
        v.map((x) => (x - m) / std),
      );
    }
    return out;
  }

  get statistics(): ReadonlyMap<string, { mean: number; std: number }> {
    if (!this.#stats) throw notFitted(this.kind);
    return this.#stats;
  }

  toJSON(): StandardScalerState {
    if (!this.#stats) throw notFitted(this.kind);
    return {
      format: PREPROCESS_FORMAT,
      version: PREPROCESS_VERSION,
      kind: 'standardize',
      columns: [...this.#stats].map(([name, s]) => ({ name, mean: s.mean, std: s.std })),
    };
  }

  static load(json: unknown): StandardScaler {
    const s = parseState(json, standardState, 'standardize');
    const st = new StandardScaler({ columns: s.columns.map((c) => c.name) });
    st.#stats = new Map(s.columns.map((c) => [c.name, { mean: c.mean, std: c.std }]));
    return st;
  }
}

// ---------------------------------------------------------------------------------------------------
// MinMaxScaler

const minMaxState = z
  .object({
    ...header,
    kind: z.literal('minmax'),
    columns: z.array(z.object({ name: z.string().min(1), min: z.number(), max: z.number() }).strict()).min(1),
  })
  .strict();
export type MinMaxScalerState = z.infer<typeof minMaxState>;

/**
 * Scales numbers to [0, 1] with PUBLIC bounds: (clip(x, min, max) - min) / (max - min). The bounds come
 * from the schema (or are given), never from the data, and `fit` only checks the columns: computing
 * them from the training data would leak its extreme rows. Values outside are clipped.
 */
export class MinMaxScaler implements PreprocessStep {
  readonly kind = 'minmax' as const;
  readonly bounds: ReadonlyMap<string, { min: number; max: number }>;
  #fitted = false;

  constructor(opts: { bounds: Readonly<Record<string, { min: number; max: number }>> }) {
    const entries = Object.entries(opts.bounds ?? {});
    if (entries.length === 0) throw invalidArgument('bounds', 'bounds for at least one column', opts.bounds);
    for (const [name, b] of entries) {
      if (!b || !Number.isFinite(b.min) || !Number.isFinite(b.max) || b.min > b.max) {
        throw invalidArgument(`bounds.${name}`, 'finite {min, max} with min <= max', b);
      }
    }
    this.bounds = new Map(entries.map(([n, b]) => [n, { min: b.min, max: b.max }]));
  }

  /** A scaler for `columns` with the bounds the schema declares (each must have bounds). */
  static fromSchema(schema: Schema, columns: readonly string[]): MinMaxScaler {
    // Entries, then Object.fromEntries: an assignment `bounds[name] = ...` with a field called
    // "__proto__" would set the object's prototype and drop the column without a word.
    const bounds: Array<[string, { min: number; max: number }]> = [];
    for (const name of requireColumns('columns', columns)) {
      const f = schema.fields.find((x) => x.name === name);
      if (!f) throw invalidArgument('columns', `fields of the schema`, name);
      if (!f.bounds) {
        throw new BulwarkError(
          'ERR_SCHEMA_INVALID',
          `field "${name}" has no bounds in the schema; min-max scaling needs public bounds`,
          {
            details: { field: name },
          },
        );
      }
      bounds.push([name, f.bounds]);
    }
    const s = new MinMaxScaler({ bounds: Object.fromEntries(bounds) });
    return s;
  }

  fit(ds: Dataset): this {
    for (const name of this.bounds.keys()) numericValues(ds, name, this.kind);
    this.#fitted = true;
    return this;
  }

  transform(ds: Dataset): Dataset {
    if (!this.#fitted) throw notFitted(this.kind);
    let out = ds;
    for (const [name, { min, max }] of this.bounds) {
      const v = numericValues(out, name, this.kind);
      const span = max - min;
      out = replaceValues(
        out,
        name,
        v.map((x) => (Number.isNaN(x) ? x : span === 0 ? 0 : (Math.min(max, Math.max(min, x)) - min) / span)),
      );
    }
    return out;
  }

  toJSON(): MinMaxScalerState {
    if (!this.#fitted) throw notFitted(this.kind);
    return {
      format: PREPROCESS_FORMAT,
      version: PREPROCESS_VERSION,
      kind: 'minmax',
      columns: [...this.bounds].map(([name, b]) => ({ name, min: b.min, max: b.max })),
    };
  }

  static load(json: unknown): MinMaxScaler {
    const s = parseState(json, minMaxState, 'minmax');
    for (const c of s.columns)
      if (c.min > c.max) throw stateError(`minmax: column "${c.name}" has min > max`);
    const m = new MinMaxScaler({
      bounds: Object.fromEntries(s.columns.map((c) => [c.name, { min: c.min, max: c.max }])),
    });
    m.#fitted = true;
    return m;
  }
}

// ---------------------------------------------------------------------------------------------------
// OneHotEncoder

/** What a one-hot encoder does with a value not seen in `fit` (or missing). */
export type UnknownCategory = 'error' | 'ignore' | 'bucket';
const UNKNOWN_MODES: readonly UnknownCategory[] = ['error', 'ignore', 'bucket'];

/** The name of the extra output column that collects unknown values in `bucket` mode. */
export const OTHER_CATEGORY = '<other>';

const oneHotState = z
  .object({
    ...header,
    kind: z.literal('onehot'),
    handleUnknown: z.enum(['error', 'ignore', 'bucket']),
    columns: z.array(z.object({ name: z.string().min(1), categories: z.array(z.string()) }).strict()).min(1),
  })
  .strict();
export type OneHotEncoderState = z.infer<typeof oneHotState>;

/**
 * Replaces each categorical column by one 0/1 column per category, named `column=category`, in place.
 * Categories come from the schema when given, otherwise from the training data (sorted; at most
 * `maxCategories` most frequent, the rest then unknown). Unknown and missing values: `error` throws
 * `ERR_DATA_VALUE` naming row and column, `ignore` encodes all zeros, `bucket` sets the extra
 * `column=<other>` output.
 */
export class OneHotEncoder implements PreprocessStep {
  readonly kind = 'onehot' as const;
  readonly columns: readonly string[];
  readonly handleUnknown: UnknownCategory;
  readonly maxCategories: number;
  readonly #given: Readonly<Record<string, readonly string[]>> | undefined;
  #categories: Map<string, string[]> | undefined;

  constructor(opts: {
    columns: readonly string[];
    handleUnknown?: UnknownCategory;
    categories?: Readonly<Record<string, readonly string[]>>;
    maxCategories?: number;
  }) {
    this.columns = requireColumns('columns', opts.columns);
    this.handleUnknown = requireOneOf('handleUnknown', opts.handleUnknown ?? 'error', UNKNOWN_MODES);
    this.maxCategories = opts.maxCategories ?? 1000;
    if (!Number.isInteger(this.maxCategories) || this.maxCategories < 1) {
      throw invalidArgument('maxCategories', 'an integer >= 1', opts.maxCategories);
    }
    if (opts.categories) {
      for (const [k, v] of Object.entries(opts.categories)) {
        if (!Array.isArray(v) || v.length === 0 || new Set(v).size !== v.length)
          throw invalidArgument(`categories.${k}`, 'a non-empty list of unique values', v);
      }
    }
    this.#given = opts.categories;
  }

  /** An encoder whose categories are those the schema declares for each column. */
  static fromSchema(
    schema: Schema,
    columns: readonly string[],
    handleUnknown: UnknownCategory = 'error',
  ): OneHotEncoder {
    // Entries, not assignments: see MinMaxScaler.fromSchema (a field called "__proto__").
    const categories: Array<[string, string[]]> = [];
    for (const name of requireColumns('columns', columns)) {
      const f = schema.fields.find((x) => x.name === name);
      if (!f) throw invalidArgument('columns', 'fields of the schema', name);
      if (!f.categories) {
        throw new BulwarkError('ERR_SCHEMA_INVALID', `field "${name}" has no categories in the schema`, {
          details: { field: name },
        });
      }
      categories.push([name, f.categories]);
    }
    return new OneHotEncoder({ columns, handleUnknown, categories: Object.fromEntries(categories) });
  }

  fit(ds: Dataset): this {
    const cats = new Map<string, string[]>();
    for (const name of this.columns) {
      const given = this.#given && Object.hasOwn(this.#given, name) ? this.#given[name] : undefined;
      if (given) {
        ds.column(name);
        cats.set(name, [...given]);
        continue;
      }
      const counts = new Map<string, number>();
      for (const v of textValues(ds.column(name))) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
      let keys = [...counts.keys()];
      if (keys.length > this.maxCategories) {
        keys = keys
          .sort((a, b) => counts.get(b)! - counts.get(a)! || (a < b ? -1 : 1))
          .slice(0, this.maxCategories);
      }
      cats.set(name, keys.sort());
    }
    this.#categories = cats;
    return this;
  }

  transform(ds: Dataset): Dataset {
    if (!this.#categories) throw notFitted(this.kind);
    const replaced = new Map<string, Column[]>();
    for (const [name, cats] of this.#categories) {
      const values = textValues(ds.column(name));
      const index = new Map(cats.map((c, i) => [c, i]));
      const k = cats.length + (this.handleUnknown === 'bucket' ? 1 : 0);
      const outs = Array.from({ length: k }, () => new Float64Array(ds.rowCount));
      for (let i = 0; i < ds.rowCount; i++) {
        const v = values[i]!;
        const j = v === null ? undefined : index.get(v);
        if (j !== undefined) outs[j]![i] = 1;
        else if (this.handleUnknown === 'bucket') outs[cats.length]![i] = 1;
        else if (this.handleUnknown === 'error') {
          throw new BulwarkError(
            'ERR_DATA_VALUE',
            `onehot: row ${i + 1} column "${name}": ${v === null ? 'missing value' : 'a category not seen in fit()'}`,
            { details: { row: i + 1, field: name } },
          );
        }
      }
      const names = [...cats, ...(this.handleUnknown === 'bucket' ? [OTHER_CATEGORY] : [])];
      replaced.set(
        name,
        names.map((c, j) => ({ name: `${name}=${c}`, type: 'number' as const, values: outs[j]! })),
      );
    }
    const cols: Column[] = [];
    for (const c of ds.columns) cols.push(...(replaced.get(c.name) ?? [c]));
    return new Dataset(cols, ds.rowCount);
  }

  /** The categories of each column, in output order. */
  get categories(): ReadonlyMap<string, readonly string[]> {
    if (!this.#categories) throw notFitted(this.kind);
    return this.#categories;
  }

  toJSON(): OneHotEncoderState {
    if (!this.#categories) throw notFitted(this.kind);
    return {
      format: PREPROCESS_FORMAT,
      version: PREPROCESS_VERSION,
      kind: 'onehot',
      handleUnknown: this.handleUnknown,
      columns: [...this.#categories].map(([name, categories]) => ({ name, categories })),
    };
  }

  static load(json: unknown): OneHotEncoder {
    const s = parseState(json, oneHotState, 'onehot');
    const e = new OneHotEncoder({ columns: s.columns.map((c) => c.name), handleUnknown: s.handleUnknown });
    e.#categories = new Map(s.columns.map((c) => [c.name, [...c.categories]]));
    return e;
  }
}

/** A column's values as category labels: numbers as their decimal text (so codes 1, 2 work too). */
function textValues(c: Column): readonly (string | null)[] {
  if (c.type === 'string') return c.values;
  if (c.type === 'timestamp')
    return Array.from(c.values, (x) => (Number.isNaN(x) ? null : formatTimestamp(x)));
  return Array.from(c.values, (x) => (Number.isNaN(x) ? null : String(x)));
}

// ---------------------------------------------------------------------------------------------------
// Pipeline

export type StepState = ImputerState | StandardScalerState | MinMaxScalerState | OneHotEncoderState;

/** Loads any saved step by its `kind`. */
export function loadStep(json: unknown): PreprocessStep {
  const kind = (json as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'impute':
      return Imputer.load(json);
    case 'standardize':
      return StandardScaler.load(json);
    case 'minmax':
      return MinMaxScaler.load(json);
    case 'onehot':
      return OneHotEncoder.load(json);
    default:
      throw stateError(`unknown step kind ${JSON.stringify(kind)}`);
  }
}

const pipelineState = z
  .object({
    ...header,
    kind: z.literal('pipeline'),
    inputs: z
      .array(z.object({ name: z.string().min(1), type: z.enum(['number', 'string', 'timestamp']) }).strict())
      .min(1),
    features: z.array(z.string().min(1)).min(1),
    steps: z.array(z.unknown()),
  })
  .strict();
export interface PipelineState {
  format: typeof PREPROCESS_FORMAT;
  version: number;
  kind: 'pipeline';
  inputs: { name: string; type: ColumnType }[];
  features: string[];
  steps: StepState[];
}

/** A dataset turned into a model's input. */
export interface FeatureMatrix {
  /** Row-major values, `rows * features.length`. */
  readonly matrix: Float32Array;
  readonly rows: number;
  /** The name of each output column. */
  readonly features: readonly string[];
}

/**
 * A chain of preprocessing steps from named input columns to a numeric matrix. `fit` learns each step
 * on the output of the previous ones (training data only); `transform` applies them to any dataset,
 * converting input columns to the types seen in training (so a serving request's `"39"` is read as 39),
 * and returns the features in the order fixed at fit time. Every output must be numeric and present: a
 * string column left unencoded is `ERR_PREPROCESS_STATE` at fit, a missing value `ERR_DATA_VALUE`
 * naming row and column (add an Imputer).
 *
 * @example
 * ```ts
 * const p = new Pipeline({
 *   inputs: ['age', 'amount', 'type'],
 *   steps: [
 *     new Imputer({ columns: ['age'], strategy: 'median' }),
 *     new StandardScaler({ columns: ['age'] }),
 *     MinMaxScaler.fromSchema(schema, ['amount']),
 *     new OneHotEncoder({ columns: ['type'], handleUnknown: 'bucket' }),
 *   ],
 * }).fit(train);
 * const { matrix, features } = p.transform(test);
 * const x = p.transformRow({ age: '39', amount: 120.5, type: 'TRANSFER' });
 * await writeFileAtomic('prep.json', JSON.stringify(p));   // Pipeline.load(JSON.parse(...))
 * ```
 */
export class Pipeline {
  readonly inputs: readonly string[];
  readonly steps: readonly PreprocessStep[];
  #inputTypes: Map<string, ColumnType> | undefined;
  #features: string[] | undefined;

  constructor(opts: { inputs: readonly string[]; steps: readonly PreprocessStep[] }) {
    this.inputs = requireColumns('inputs', opts.inputs);
    if (!Array.isArray(opts.steps))
      throw invalidArgument('steps', 'a list of preprocessing steps', opts.steps);
    this.steps = [...opts.steps];
  }

  /** Whether `fit` (or `load`) has run. */
  get fitted(): boolean {
    return this.#features !== undefined;
  }

  /** The output feature names (after fit). */
  get features(): readonly string[] {
    if (!this.#features) throw notFitted('pipeline');
    return this.#features;
  }

  fit(ds: Dataset): this {
    let cur = ds.select(this.inputs);
    this.#inputTypes = new Map(cur.columns.map((c) => [c.name, c.type]));
    for (const s of this.steps) cur = s.fit(cur).transform(cur);
    const strings = cur.columns.filter((c) => c.type === 'string').map((c) => c.name);
    if (strings.length > 0) {
      throw new BulwarkError(
        'ERR_PREPROCESS_STATE',
        `pipeline: column${strings.length > 1 ? 's' : ''} ${strings.map((n) => `"${n}"`).join(', ')} still hold${strings.length > 1 ? '' : 's'} strings after the steps; add a OneHotEncoder`,
        { details: { field: strings[0]! } },
      );
    }
    this.#features = cur.columnNames;
    return this;
  }

  /** `fit(ds)` then `transform(ds)`. */
  fitTransform(ds: Dataset): FeatureMatrix {
    return this.fit(ds).transform(ds);
  }

  transform(ds: Dataset): FeatureMatrix {
    const types = this.#inputTypes;
    const features = this.#features;
    if (!types || !features) throw notFitted('pipeline');
    let cur = new Dataset(
      this.inputs.map((n) => coerceColumn(ds.column(n), types.get(n)!)),
      ds.rowCount,
    );
    for (const s of this.steps) cur = s.transform(cur);
    return { matrix: cur.toMatrix(features), rows: cur.rowCount, features };
  }

  /** Transforms one row (an object of input values; strings are parsed) into one feature vector. */
  transformRow(row: Readonly<Record<string, CellValue | undefined>>): Float32Array {
    const types = this.#inputTypes;
    if (!types) throw notFitted('pipeline');
    for (const n of this.inputs) {
      if (!Object.hasOwn(row, n))
        throw new BulwarkError('ERR_COLUMN_NOT_FOUND', `input row has no field "${n}"`, {
          details: { field: n },
        });
    }
    const ds = Dataset.fromRows([row as Row], Object.fromEntries(types));
    return this.transform(ds).matrix;
  }

  toJSON(): PipelineState {
    const types = this.#inputTypes;
    if (!types || !this.#features) throw notFitted('pipeline');
    return {
      format: PREPROCESS_FORMAT,
      version: PREPROCESS_VERSION,
      kind: 'pipeline',
      inputs: this.inputs.map((name) => ({ name, type: types.get(name)! })),
      features: [...this.#features],
      steps: this.steps.map((s) => s.toJSON()),
    };
  }

  /** Loads a saved pipeline; any format, version or shape problem is `ERR_PREPROCESS_STATE`. */
  static load(json: unknown): Pipeline {
    const s = parseState(json, pipelineState, 'pipeline');
    const p = new Pipeline({ inputs: s.inputs.map((i) => i.name), steps: s.steps.map((x) => loadStep(x)) });
    p.#inputTypes = new Map(s.inputs.map((i) => [i.name, i.type]));
    p.#features = [...s.features];
    return p;
  }
}

/** Converts a column to the type the pipeline was fitted on (strings parsed, numbers as text). */
function coerceColumn(c: Column, type: ColumnType): Column {
  if (c.type === type) return c;
  if (type === 'string') {
    return { name: c.name, type: 'string', values: textValues(c) };
  }
  if (c.type === 'string') {
    const out = new Float64Array(c.values.length);
    for (let i = 0; i < c.values.length; i++) {
      const s = c.values[i]!;
      const x = s === null ? Number.NaN : type === 'timestamp' ? parseTimestamp(s) : parseNumber(s);
      if (s !== null && Number.isNaN(x)) {
        throw new BulwarkError('ERR_DATA_VALUE', `row ${i + 1} column "${c.name}": expected a ${type}`, {
          details: { row: i + 1, field: c.name },
        });
      }
      out[i] = x;
    }
    return { name: c.name, type, values: out };
  }
  return { name: c.name, type, values: c.values };
}
