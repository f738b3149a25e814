import { requireInteger } from '../core/index.js';
import type { CsvDatasetOptions } from './csv.js';
import { Dataset } from './dataset.js';
import { readDataset } from './io.js';
import { detectColumn, type PiiFinding, type PiiOptions } from './pii.js';
import {
  type FieldType,
  PII_KINDS,
  type PiiKind,
  type Schema,
  type SchemaField,
  validateSchema,
} from './schema.js';

/**
 * Schema inference: field types from the values, bounds and categories, and sensitivity from the PII
 * detectors. Every column becomes a field (nothing is dropped: the article's snippet dropped the
 * non-sensitive fields). Fields with no personal data are `internal` until a person marks them
 * `public`: inference never guesses that something may be published.
 */

/** Options of {@link inferSchema}. */
export interface InferOptions extends PiiOptions {
  /** A string column with at most this many distinct values is a category (default 50). */
  maxCategories?: number;
  /**
   * Keep the exact minimum and maximum as bounds (default false: bounds are widened to one significant
   * digit, e.g. 17..87 becomes 10..90, timestamps to whole years, so the schema does not publish the
   * extreme value of one person's row).
   */
  exactBounds?: boolean;
  /** The schema's name. */
  name?: string;
  /** The label field. */
  label?: string;
  /** How to read a CSV file given by path. */
  csv?: CsvDatasetOptions;
}

/**
 * Kinds whose values identify a person by themselves: their values never appear in a schema (no
 * categories, no bounds).
 */
const IDENTIFIER_KINDS: ReadonlySet<PiiKind> = new Set<PiiKind>(
  PII_KINDS.filter((k) => k !== 'special_category' && k !== 'quasi_identifier'),
);

/**
 * Infers a schema from a dataset or from a CSV/Parquet file.
 *
 * @example
 * ```ts
 * const schema = await inferSchema('transactions.csv', { sample: 2000 });
 * schema.fields.filter(isPersonal).map((f) => `${f.name}: ${f.pii}`);
 * ```
 */
export async function inferSchema(source: Dataset | string, opts: InferOptions = {}): Promise<Schema> {
  const ds = source instanceof Dataset ? source : await readDataset(source, opts.csv);
  return inferSchemaFromDataset(ds, opts);
}

/** {@link inferSchema} on a dataset already in memory (synchronous). */
export function inferSchemaFromDataset(ds: Dataset, opts: InferOptions = {}): Schema {
  const maxCategories = opts.maxCategories ?? 50;
  requireInteger('maxCategories', maxCategories, 0);
  if (opts.sample !== undefined) requireInteger('sample', opts.sample, 1);
  if (opts.label !== undefined) ds.column(opts.label);
  const fields: SchemaField[] = ds.columns.map((c) => {
    const finding: PiiFinding | undefined = detectColumn(c, opts);
    const identifier = finding !== undefined && IDENTIFIER_KINDS.has(finding.kind);
    let type: FieldType;
    let nullable = false;
    const f: Partial<SchemaField> = {};
    if (c.type === 'string') {
      const distinct = new Set<string>();
      for (const v of c.values) {
        if (v === null) nullable = true;
        else if (distinct.size <= maxCategories) distinct.add(v);
      }
      let nulls = 0;
      for (const v of c.values) if (v === null) nulls++;
      const nonNull = c.values.length - nulls;
      const isCategory =
        !identifier &&
        distinct.size > 0 &&
        distinct.size <= maxCategories &&
        (distinct.size < nonNull / 2 || c.name === opts.label);
      type = isCategory ? 'category' : 'string';
      if (isCategory) f.categories = [...distinct].sort();
    } else {
      let min = Infinity;
      let max = -Infinity;
      let integral = true;
      for (const x of c.values) {
        if (Number.isNaN(x)) {
          nullable = true;
          continue;
        }
        if (x < min) min = x;
        if (x > max) max = x;
        if (integral && !Number.isInteger(x)) integral = false;
      }
      type = c.type === 'timestamp' ? 'timestamp' : integral ? 'integer' : 'number';
      if (min <= max && !identifier) {
        if (opts.exactBounds) f.bounds = { min, max };
        else if (c.type === 'timestamp') f.bounds = { min: yearFloor(min), max: yearCeil(max) };
        else f.bounds = { min: niceFloor(min), max: niceCeil(max) };
      }
    }
    const field: SchemaField = {
      name: c.name,
      type,
      nullable,
      ...f,
      sensitivity: finding?.sensitivity ?? 'internal',
    };
    if (finding) {
      field.pii = finding.kind;
      field.detected = { by: finding.by };
      if (finding.matchRate !== undefined) field.detected.matchRate = finding.matchRate;
    }
    return field;
  });
  const schema: Schema = { version: 1, fields };
  if (opts.name !== undefined) schema.name = opts.name;
  if (opts.label !== undefined) schema.label = opts.label;
  // The result must pass the same validation as a hand-written schema.
  return validateSchema(structuredClone(schema), '<inferred schema>');
}

/** The largest number of one significant digit at or below x (e.g. 17 -> 10, -1234 -> -2000). */
export function niceFloor(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  if (x < 0) return -niceCeil(-x);
  const p = 10 ** Math.floor(Math.log10(x));
  const r = Number((Math.floor(x / p + 1e-9) * p).toPrecision(12));
  // Near the ends of the double range the rounding can overflow (or p underflow to 0): keep x.
  return Number.isFinite(r) && r <= x ? r : x;
}

/** The smallest number of one significant digit at or above x (e.g. 87 -> 90, 2174 -> 3000). */
export function niceCeil(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  if (x < 0) return -niceFloor(-x);
  const p = 10 ** Math.floor(Math.log10(x));
  const r = Number((Math.ceil(x / p - 1e-9) * p).toPrecision(12));
  // 1.7976931348623157e308 rounds up to Infinity, which no schema accepts: keep x.
  return Number.isFinite(r) && r >= x ? r : x;
}

/** The last instant a schema (ISO 8601 text, four-digit years) can state. */
const LAST_TIME = Date.parse('9999-12-31T23:59:59.999Z');

// Whole years, unless the bound would leave what a Date or a schema's four-digit year can hold: then
// t itself. A "9999-12-31" (a common "no end" date) rounded up to 10000-01-01 made a schema that its
// own loader refuses.
function yearFloor(t: number): number {
  const y = yearStart(new Date(t).getUTCFullYear());
  return Number.isNaN(y) ? t : y;
}

function yearCeil(t: number): number {
  const y = new Date(t).getUTCFullYear();
  const start = yearStart(y);
  const next = start === t ? t : yearStart(y + 1);
  return Number.isNaN(next) || next > LAST_TIME ? t : next;
}

/**
 * Epoch ms of 1 January of year `y` (NaN outside a Date's range). Not `Date.UTC(y, 0, 1)`, which
 * reads years 0-99 as 1900-1999: the bounds of a column holding "0001-01-01" (a common "no date"
 * value) became 1901, and the data failed its own inferred schema.
 */
function yearStart(y: number): number {
  const d = new Date(0);
  d.setUTCFullYear(y, 0, 1);
  return d.getTime();
}
