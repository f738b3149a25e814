import { stringify as yamlStringify } from 'yaml';
import { z } from 'zod';
import {
  type AtomicWriteOptions,
  BulwarkError,
  isBulwarkError,
  parseConfig,
  readInputFile,
  validateConfig,
  writeFileAtomic,
} from '../core/index.js';
import {
  type Column,
  type ColumnType,
  Dataset,
  formatTimestamp,
  parseNumber,
  parseTimestamp,
} from './dataset.js';

/**
 * The schema of a tabular data set: for each field its type, whether it may be missing, its public
 * bounds or categories, and how sensitive it is. Saved as YAML (see docs/data.md), validated with zod;
 * every problem is `ERR_SCHEMA_INVALID` naming the file and key path. Bounds declared here are the
 * public bounds the preprocessing scales to, never bounds computed from the private data at training
 * time (the article's `data_norm` flaw).
 */

/** Field types: `number` (real), `integer`, `category` (a closed set of labels), `string`, `timestamp`. */
export const FIELD_TYPES = ['number', 'integer', 'category', 'string', 'timestamp'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

/**
 * How sensitive a field is, from least to most: `public` (may be published), `internal` (business data,
 * the default for anything not shown to be public), `personal` (relates to an identifiable person),
 * `sensitive` (its disclosure harms the person: card numbers, national ids, special-category data).
 */
export const SENSITIVITIES = ['public', 'internal', 'personal', 'sensitive'] as const;
export type Sensitivity = (typeof SENSITIVITIES)[number];

/** Kinds of personal data the detectors recognise (docs/data.md lists how each is found). */
export const PII_KINDS = [
  'name',
  'email',
  'phone',
  'card_number',
  'national_id',
  'address',
  'postal_code',
  'date_of_birth',
  'ip',
  'iban',
  'geolocation',
  'account_id',
  'device_id',
  'special_category',
  'quasi_identifier',
] as const;
export type PiiKind = (typeof PII_KINDS)[number];

/** How a detector decided a field is personal. */
export interface Detection {
  /** `name`: the column name alone; `values`: the values alone; `name+values`: both. */
  by: 'name' | 'values' | 'name+values';
  /** Share of the sampled non-missing values that matched the value pattern. */
  matchRate?: number;
}

/** One field of a schema. */
export interface SchemaField {
  name: string;
  type: FieldType;
  nullable: boolean;
  /** Public bounds of a number, integer or timestamp (epoch ms) field. */
  bounds?: { min: number; max: number };
  /** The allowed values of a category field. */
  categories?: string[];
  sensitivity: Sensitivity;
  pii?: PiiKind;
  description?: string;
  detected?: Detection;
}

/** A data set's schema. */
export interface Schema {
  version: 1;
  name?: string;
  /** The label field, when the data set is for supervised learning. */
  label?: string;
  fields: SchemaField[];
}

const boundValue = z.union([z.number().refine(Number.isFinite, 'must be finite'), z.string()]);

const fieldSchema = z
  .object({
    name: z.string().min(1),
    type: z.enum(FIELD_TYPES),
    nullable: z.boolean().default(true),
    bounds: z.object({ min: boundValue, max: boundValue }).strict().optional(),
    categories: z
      .array(z.union([z.string(), z.number()]).transform(String))
      .min(1)
      .optional(),
    sensitivity: z.enum(SENSITIVITIES).default('internal'),
    pii: z.enum(PII_KINDS).optional(),
    description: z.string().optional(),
    detected: z
      .object({
        by: z.enum(['name', 'values', 'name+values']),
        matchRate: z.number().min(0).max(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const schemaSchema = z
  .object({
    version: z.literal(1),
    name: z.string().optional(),
    label: z.string().optional(),
    fields: z.array(fieldSchema).min(1),
  })
  .strict();

/** Parses schema YAML text; `source` names the file in messages. Throws `ERR_SCHEMA_INVALID`. */
export function parseSchema(text: string, source = '<schema>'): Schema {
  let raw: z.infer<typeof schemaSchema>;
  try {
    raw = parseConfig(text, schemaSchema, source);
  } catch (e) {
    throw asSchemaError(e);
  }
  return checkSchema(raw, source);
}

/** Validates a schema object built in code (or parsed from JSON). Throws `ERR_SCHEMA_INVALID`. */
export function validateSchema(value: unknown, source = '<schema>'): Schema {
  let raw: z.infer<typeof schemaSchema>;
  try {
    raw = validateConfig(value, schemaSchema, source);
  } catch (e) {
    throw asSchemaError(e);
  }
  return checkSchema(raw, source);
}

function asSchemaError(e: unknown): unknown {
  if (isBulwarkError(e, 'ERR_CONFIG_INVALID') || isBulwarkError(e, 'ERR_CONFIG_PARSE')) {
    return new BulwarkError('ERR_SCHEMA_INVALID', e.message, { cause: e, details: e.details });
  }
  return e;
}

function invalid(source: string, path: string, what: string): BulwarkError {
  return new BulwarkError('ERR_SCHEMA_INVALID', `${source}: ${path}: ${what}`, {
    details: { file: source, firstPath: path },
  });
}

/** The cross-field rules zod does not express: unique names, bounds per type, pii vs sensitivity. */
function checkSchema(raw: z.infer<typeof schemaSchema>, source: string): Schema {
  const seen = new Set<string>();
  const fields: SchemaField[] = raw.fields.map((f, i) => {
    const at = `fields[${i}]`;
    if (seen.has(f.name)) throw invalid(source, `${at}.name`, `field "${f.name}" is declared twice`);
    seen.add(f.name);
    const out: SchemaField = { name: f.name, type: f.type, nullable: f.nullable, sensitivity: f.sensitivity };
    if (f.bounds) {
      if (f.type !== 'number' && f.type !== 'integer' && f.type !== 'timestamp') {
        throw invalid(
          source,
          `${at}.bounds`,
          `bounds apply to number, integer and timestamp fields, not ${f.type}`,
        );
      }
      const min = boundToNumber(f.bounds.min, f.type);
      const max = boundToNumber(f.bounds.max, f.type);
      if (Number.isNaN(min))
        throw invalid(source, `${at}.bounds.min`, `not a ${f.type === 'timestamp' ? 'date' : 'number'}`);
      if (Number.isNaN(max))
        throw invalid(source, `${at}.bounds.max`, `not a ${f.type === 'timestamp' ? 'date' : 'number'}`);
      if (min > max)
        throw invalid(source, `${at}.bounds`, `min ${f.bounds.min} is greater than max ${f.bounds.max}`);
      out.bounds = { min, max };
    }
    if (f.categories) {
      if (f.type !== 'category')
        throw invalid(source, `${at}.categories`, `categories apply to category fields, not ${f.type}`);
      if (new Set(f.categories).size !== f.categories.length) {
        throw invalid(source, `${at}.categories`, 'categories must be unique');
      }
      out.categories = [...f.categories];
    }
    if (f.pii !== undefined) {
      if (f.sensitivity !== 'personal' && f.sensitivity !== 'sensitive') {
        throw invalid(
          source,
          `${at}.sensitivity`,
          `a field with pii "${f.pii}" must be personal or sensitive, not ${f.sensitivity}`,
        );
      }
      out.pii = f.pii;
    }
    if (f.description !== undefined) out.description = f.description;
    if (f.detected !== undefined) {
      out.detected = { by: f.detected.by };
      if (f.detected.matchRate !== undefined) out.detected.matchRate = f.detected.matchRate;
    }
    return out;
  });
  if (raw.label !== undefined && !seen.has(raw.label)) {
    throw invalid(source, 'label', `the label "${raw.label}" is not one of the fields`);
  }
  const schema: Schema = { version: 1, fields };
  if (raw.name !== undefined) schema.name = raw.name;
  if (raw.label !== undefined) schema.label = raw.label;
  return schema;
}

function boundToNumber(v: number | string, type: FieldType): number {
  if (type === 'timestamp') return typeof v === 'number' ? v : parseTimestamp(v);
  return typeof v === 'number' ? v : parseNumber(v);
}

/** Reads and validates a schema YAML file. */
export async function loadSchema(path: string): Promise<Schema> {
  return parseSchema(await readInputFile(path, 'schema', 'utf8'), path);
}

/** The schema as YAML (timestamp bounds as ISO 8601 dates); `parseSchema` reads it back unchanged. */
export function schemaToYaml(schema: Schema): string {
  const doc = {
    version: schema.version,
    ...(schema.name === undefined ? {} : { name: schema.name }),
    ...(schema.label === undefined ? {} : { label: schema.label }),
    fields: schema.fields.map((f) => {
      const o: Record<string, unknown> = { name: f.name, type: f.type, nullable: f.nullable };
      if (f.bounds) {
        o['bounds'] =
          f.type === 'timestamp'
            ? { min: formatTimestamp(f.bounds.min), max: formatTimestamp(f.bounds.max) }
            : { min: f.bounds.min, max: f.bounds.max };
      }
      if (f.categories) o['categories'] = f.categories;
      o['sensitivity'] = f.sensitivity;
      if (f.pii) o['pii'] = f.pii;
      if (f.description !== undefined) o['description'] = f.description;
      if (f.detected) o['detected'] = f.detected;
      return o;
    }),
  };
  const header =
    '# Bulwark data schema (docs/data.md). Review every field before use: bounds are public bounds\n' +
    '# the preprocessing scales to, and sensitivity decides which fields are encrypted.\n';
  return header + yamlStringify(doc, { lineWidth: 0 });
}

/** Writes the schema as YAML, atomically. */
export async function saveSchema(path: string, schema: Schema, opts: AtomicWriteOptions = {}): Promise<void> {
  validateSchema(structuredClone(schema));
  await writeFileAtomic(path, schemaToYaml(schema), opts);
}

/** True when a field holds personal data (sensitivity `personal` or `sensitive`). */
export function isPersonal(field: Pick<SchemaField, 'sensitivity'>): boolean {
  return field.sensitivity === 'personal' || field.sensitivity === 'sensitive';
}

/** The dataset column type that holds a field type. */
export function columnTypeOf(t: FieldType): ColumnType {
  if (t === 'number' || t === 'integer') return 'number';
  if (t === 'timestamp') return 'timestamp';
  return 'string';
}

/** One way data fails its schema. Rows are numbered from 1 (the first data row). */
export interface SchemaIssue {
  field: string;
  row?: number;
  problem: string;
}

/** Options of {@link checkAgainstSchema}. */
export interface SchemaCheckOptions {
  /** Accept columns the schema does not declare (default false: an undeclared column may be personal data). */
  allowExtraColumns?: boolean;
  /** Stop after this many issues (default 100). */
  maxIssues?: number;
}

/** The value of a failing cell, only for public or internal fields: messages never quote personal data. */
function shown(f: SchemaField, v: string | number): string {
  if (isPersonal(f)) return '';
  const s = typeof v === 'number' ? String(v) : JSON.stringify(v.length > 30 ? `${v.slice(0, 30)}…` : v);
  return ` (${s})`;
}

/**
 * Converts the dataset's columns to the schema's types (numbers from strings, timestamps from ISO
 * strings, strings from numbers), in schema order. A value that does not convert is an issue; missing
 * columns are issues. Returns the converted dataset (columns that failed are left as they were) and the
 * issues found.
 */
export function coerceToSchema(
  ds: Dataset,
  schema: Schema,
  opts: SchemaCheckOptions = {},
): { dataset: Dataset; issues: SchemaIssue[]; partial: Map<string, Float64Array> } {
  const max = opts.maxIssues ?? 100;
  const issues: SchemaIssue[] = [];
  const cols: Column[] = [];
  // A numeric column with values that do not parse stays a string column in `dataset`; what did parse
  // is kept here (NaN elsewhere), so the other rows are still checked against the field's bounds.
  const partial = new Map<string, Float64Array>();
  const declared = new Set(schema.fields.map((f) => f.name));
  for (const f of schema.fields) {
    if (!ds.has(f.name)) {
      issues.push({ field: f.name, problem: 'column is missing from the data' });
      continue;
    }
    const c = ds.column(f.name);
    const want = columnTypeOf(f.type);
    if (c.type === want) {
      cols.push(c);
      continue;
    }
    if (want === 'string') {
      if (c.type === 'number') {
        cols.push({
          name: f.name,
          type: 'string',
          values: Array.from(c.values, (x) => (Number.isNaN(x) ? null : String(x))),
        });
      } else if (c.type === 'timestamp') {
        cols.push({
          name: f.name,
          type: 'string',
          values: Array.from(c.values, (x) => (Number.isNaN(x) ? null : formatTimestamp(x))),
        });
      }
      continue;
    }
    if (c.type !== 'string') {
      issues.push({ field: f.name, problem: `expected ${f.type} values, found a ${c.type} column` });
      cols.push(c);
      continue;
    }
    const out = new Float64Array(ds.rowCount);
    let ok = true;
    for (let i = 0; i < ds.rowCount; i++) {
      const s = c.values[i]!;
      if (s === null) {
        out[i] = Number.NaN;
        continue;
      }
      const x = want === 'timestamp' ? parseTimestamp(s) : parseNumber(s);
      if (Number.isNaN(x)) {
        if (issues.length < max) {
          issues.push({
            field: f.name,
            row: i + 1,
            problem: `not ${f.type === 'integer' ? 'an' : 'a'} ${f.type}${shown(f, s)}`,
          });
        }
        ok = false;
      }
      out[i] = x;
    }
    cols.push(ok ? { name: f.name, type: want, values: out } : c);
    if (!ok) partial.set(f.name, out);
  }
  if (!opts.allowExtraColumns) {
    for (const c of ds.columns) {
      if (!declared.has(c.name))
        issues.push({ field: c.name, problem: 'column is not declared in the schema' });
    }
  }
  return { dataset: new Dataset(cols, ds.rowCount), issues: issues.slice(0, max), partial };
}

/**
 * Every way (up to `maxIssues`) the dataset fails its schema: missing or undeclared columns, values of
 * the wrong type, non-integers in integer fields, missing values in non-nullable fields, values outside
 * the bounds or categories.
 */
export function checkAgainstSchema(
  ds: Dataset,
  schema: Schema,
  opts: SchemaCheckOptions = {},
): SchemaIssue[] {
  const max = opts.maxIssues ?? 100;
  const { dataset, issues, partial } = coerceToSchema(ds, schema, opts);
  const bad = new Set(issues.map((i) => i.field));
  for (const f of schema.fields) {
    if (issues.length >= max) break;
    const parsed = partial.get(f.name);
    if (parsed) {
      // Rows that parsed, in a column where some did not: their bounds still matter. The unparseable
      // ones were reported; missing ones are checked here (NaN in both: look at the source value).
      const source = ds.column(f.name).values as readonly (string | null)[];
      numericIssues(f, parsed, issues, max, (i) => source[i] !== null);
      continue;
    }
    if (bad.has(f.name) || !dataset.has(f.name)) continue;
    const c = dataset.column(f.name);
    if (c.type === 'string') {
      const cats = f.type === 'category' && f.categories ? new Set(f.categories) : undefined;
      for (let i = 0; i < dataset.rowCount && issues.length < max; i++) {
        const v = c.values[i]!;
        if (v === null) {
          if (!f.nullable)
            issues.push({ field: f.name, row: i + 1, problem: 'missing value in a non-nullable field' });
        } else if (cats && !cats.has(v)) {
          issues.push({
            field: f.name,
            row: i + 1,
            problem: `value is not one of the declared categories${shown(f, v)}`,
          });
        }
      }
      continue;
    }
    numericIssues(f, c.values as Float64Array, issues, max);
  }
  return issues;
}

/**
 * The issues of a numeric or timestamp column's values (NaN: missing), in row order, up to `max`.
 * `unparsed(i)`: row i's NaN is a value that did not parse (already reported), not a missing one.
 */
function numericIssues(
  f: SchemaField,
  values: Float64Array,
  issues: SchemaIssue[],
  max: number,
  unparsed: (i: number) => boolean = () => false,
): void {
  for (let i = 0; i < values.length && issues.length < max; i++) {
    const x = values[i] as number;
    if (Number.isNaN(x)) {
      if (!f.nullable && !unparsed(i))
        issues.push({ field: f.name, row: i + 1, problem: 'missing value in a non-nullable field' });
      continue;
    }
    if (f.type === 'integer' && !Number.isInteger(x)) {
      issues.push({ field: f.name, row: i + 1, problem: `not an integer${shown(f, x)}` });
      continue;
    }
    if (f.bounds && (x < f.bounds.min || x > f.bounds.max)) {
      const b =
        f.type === 'timestamp'
          ? `[${formatTimestamp(f.bounds.min)}, ${formatTimestamp(f.bounds.max)}]`
          : `[${f.bounds.min}, ${f.bounds.max}]`;
      const v = f.type === 'timestamp' ? formatTimestamp(x) : x;
      issues.push({ field: f.name, row: i + 1, problem: `value outside the bounds ${b}${shown(f, v)}` });
    }
  }
}

/**
 * Throws `ERR_SCHEMA_MISMATCH` naming the row and field of the first problem (and how many more there
 * are) when the dataset does not match its schema; returns the dataset converted to the schema's types
 * otherwise. Messages never quote values of personal or sensitive fields.
 *
 * @example
 * ```ts
 * const typed = validateAgainstSchema(await readCsvDataset('tx.csv'), await loadSchema('tx.schema.yaml'));
 * ```
 */
export function validateAgainstSchema(
  ds: Dataset,
  schema: Schema,
  opts: SchemaCheckOptions & { source?: string } = {},
): Dataset {
  const issues = checkAgainstSchema(ds, schema, opts);
  if (issues.length > 0) {
    const first = issues[0]!;
    const where =
      first.row === undefined ? `field "${first.field}"` : `row ${first.row}, field "${first.field}"`;
    const more =
      issues.length > 1
        ? ` (and ${issues.length - 1}${issues.length >= (opts.maxIssues ?? 100) ? '+' : ''} more)`
        : '';
    const src = opts.source ? `${opts.source}: ` : '';
    throw new BulwarkError('ERR_SCHEMA_MISMATCH', `${src}${where}: ${first.problem}${more}`, {
      details: { field: first.field, row: first.row ?? null, issues: issues.length },
    });
  }
  return coerceToSchema(ds, schema, opts).dataset;
}
