/**
 * Schema-based input validation: the first defence of the serving path (the gateway calls it before a
 * request reaches the model). Every prediction input is checked against the model's data schema: the
 * type of each field, declared bounds, integer fields, closed category sets, NaN and Infinity, missing
 * required fields, fields the schema does not declare, and size limits (rows per request, fields per row,
 * string length, body bytes). Each problem is an {@link InputIssue} with a stable reason code; the
 * throwing form raises `ERR_INPUT_INVALID` (or `ERR_INPUT_TOO_LARGE`) naming the first issue's row and
 * field. Messages never quote values of personal or sensitive fields.
 *
 * Checks happen before any parsing into model features, so the model never sees an out-of-schema value:
 * an attacker cannot feed 1e30 into a field the model was trained on in [0, 1000], nor a category it never
 * saw (the one-hot encoder would silently zero it).
 */
import { BulwarkError, invalidArgument, requireInteger } from '../../core/index.js';
import {
  type CellValue,
  isPersonal,
  parseTimestamp,
  type Row,
  type Schema,
  type SchemaField,
} from '../../data/index.js';

/** Why an input was refused (stable codes, documented in docs/robust.md). */
export type InputIssueReason =
  | 'not_object'
  | 'type'
  | 'non_finite'
  | 'integer'
  | 'bounds'
  | 'category'
  | 'missing'
  | 'unknown_field'
  | 'too_large';

/** One problem with an input. Rows are numbered from 1. */
export interface InputIssue {
  row: number;
  field: string | null;
  reason: InputIssueReason;
  message: string;
}

/** Size limits of a request. */
export interface InputLimits {
  /** Rows per request (default 1000). */
  maxRows?: number;
  /** Fields per row (default: max(64, twice the fields the validator accepts)). */
  maxFields?: number;
  /** Characters per string value (default 1024). */
  maxStringLength?: number;
  /** Bytes of a JSON body given to `parseJson` (default 1 MiB). */
  maxBytes?: number;
}

/** Options of {@link InputValidator}. */
export interface InputValidatorOptions {
  /** The fields a request must (or may) carry, default every schema field except the label. */
  fields?: readonly string[];
  /** Accept and drop fields the schema does not declare (default false: refuse them). */
  allowUnknownFields?: boolean;
  /** Accept numeric strings ("39") in number and integer fields (default false). */
  numericStrings?: boolean;
  limits?: InputLimits;
  /** Stop collecting after this many issues (default 20). */
  maxIssues?: number;
}

/** The outcome of {@link InputValidator.check}. */
export type InputCheck = { ok: true; rows: Row[] } | { ok: false; issues: InputIssue[] };

/**
 * A validator compiled from a schema; reusable and stateless.
 *
 * @example
 * ```ts
 * const v = new InputValidator(schema, { limits: { maxRows: 100 } });
 * const rows = v.assert(JSON.parse(body).instances);   // throws ERR_INPUT_INVALID / ERR_INPUT_TOO_LARGE
 * const x = pipeline.transform(Dataset.fromRows(rows, types)).matrix;
 * ```
 */
export class InputValidator {
  readonly fields: readonly SchemaField[];
  readonly #byName: Map<string, SchemaField>;
  readonly #allowUnknown: boolean;
  readonly #numericStrings: boolean;
  readonly #maxRows: number;
  readonly #maxFields: number;
  readonly #maxString: number;
  readonly #maxBytes: number;
  readonly #maxIssues: number;

  constructor(schema: Schema, options: InputValidatorOptions = {}) {
    const all = new Map(schema.fields.map((f) => [f.name, f]));
    const names = options.fields ?? schema.fields.map((f) => f.name).filter((n) => n !== schema.label);
    if (!Array.isArray(names) || names.length === 0)
      throw invalidArgument('fields', 'a non-empty list of schema fields', names);
    this.fields = names.map((n) => {
      const f = all.get(n);
      if (f === undefined)
        throw invalidArgument('fields', `fields of the schema (${[...all.keys()].join(', ')})`, n);
      return f;
    });
    this.#byName = new Map(this.fields.map((f) => [f.name, f]));
    this.#allowUnknown = options.allowUnknownFields ?? false;
    this.#numericStrings = options.numericStrings ?? false;
    const l = options.limits ?? {};
    this.#maxRows = requireInteger('limits.maxRows', l.maxRows ?? 1000, 1);
    this.#maxFields = requireInteger(
      'limits.maxFields',
      l.maxFields ?? Math.max(64, 2 * this.fields.length),
      1,
    );
    this.#maxString = requireInteger('limits.maxStringLength', l.maxStringLength ?? 1024, 1);
    this.#maxBytes = requireInteger('limits.maxBytes', l.maxBytes ?? 1 << 20, 1);
    this.#maxIssues = requireInteger('maxIssues', options.maxIssues ?? 20, 1);
  }

  /**
   * Checks one row (an object) or a list of rows. Returns the rows typed for the pipeline (numbers,
   * timestamps as epoch milliseconds, categories and strings as strings, missing as null) or every issue
   * found (up to `maxIssues`).
   */
  check(input: unknown): InputCheck {
    const issues: InputIssue[] = [];
    const list = Array.isArray(input) ? input : [input];
    if (list.length === 0) {
      return {
        ok: false,
        issues: [{ row: 0, field: null, reason: 'missing', message: 'the request has no rows' }],
      };
    }
    if (list.length > this.#maxRows) {
      return {
        ok: false,
        issues: [
          {
            row: 0,
            field: null,
            reason: 'too_large',
            message: `${list.length} rows, the limit is ${this.#maxRows}`,
          },
        ],
      };
    }
    const rows: Row[] = [];
    for (let i = 0; i < list.length && issues.length < this.#maxIssues; i++) {
      const r = this.#checkRow(list[i], i + 1, issues);
      if (r) rows.push(r);
    }
    return issues.length > 0 ? { ok: false, issues: issues.slice(0, this.#maxIssues) } : { ok: true, rows };
  }

  /** {@link check}, throwing `ERR_INPUT_TOO_LARGE` or `ERR_INPUT_INVALID` for the first issue. */
  assert(input: unknown): Row[] {
    const c = this.check(input);
    if (c.ok) return c.rows;
    throw issueError(c.issues);
  }

  /**
   * Parses a JSON body (string or bytes) after checking its size, then {@link assert}s it. A body that is
   * not JSON is `ERR_INPUT_INVALID` with reason `type`.
   */
  parseJson(body: string | Uint8Array): Row[] {
    const bytes = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
    if (bytes > this.#maxBytes) {
      throw issueError([
        {
          row: 0,
          field: null,
          reason: 'too_large',
          message: `body of ${bytes} bytes, the limit is ${this.#maxBytes}`,
        },
      ]);
    }
    let value: unknown;
    try {
      value = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
    } catch (e) {
      throw new BulwarkError('ERR_INPUT_INVALID', `input: not valid JSON (${(e as Error).message})`, {
        cause: e,
        details: { reason: 'type', row: 0, field: null },
      });
    }
    return this.assert(value);
  }

  #checkRow(v: unknown, row: number, issues: InputIssue[]): Row | null {
    const push = (field: string | null, reason: InputIssueReason, message: string) => {
      if (issues.length < this.#maxIssues) issues.push({ row, field, reason, message });
    };
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      push(
        null,
        'not_object',
        `expected an object of fields, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`,
      );
      return null;
    }
    const keys = Object.keys(v);
    if (keys.length > this.#maxFields) {
      push(null, 'too_large', `${keys.length} fields, the limit is ${this.#maxFields}`);
      return null;
    }
    const before = issues.length;
    for (const k of keys) {
      if (!this.#byName.has(k) && !this.#allowUnknown)
        push(k.slice(0, 64), 'unknown_field', 'the schema does not declare this field');
    }
    const out: Row = {};
    const obj = v as Record<string, unknown>;
    for (const f of this.fields) {
      const has = Object.hasOwn(obj, f.name);
      const value = has ? obj[f.name] : undefined;
      const c = this.#checkValue(f, value, has);
      if ('issue' in c) push(f.name, c.issue[0], c.issue[1]);
      else out[f.name] = c.value;
    }
    return issues.length > before ? null : out;
  }

  #checkValue(
    f: SchemaField,
    v: unknown,
    present: boolean,
  ): { value: CellValue } | { issue: [InputIssueReason, string] } {
    const shown = (x: unknown) =>
      isPersonal(f) ? '' : ` (${typeof x === 'string' ? JSON.stringify(x.slice(0, 30)) : String(x)})`;
    if (!present || v === null || v === undefined) {
      if (f.nullable) return { value: null };
      return {
        issue: ['missing', present ? 'null in a field that requires a value' : 'required field is missing'],
      };
    }
    if (typeof v === 'string' && v.length > this.#maxString) {
      return { issue: ['too_large', `string of ${v.length} characters, the limit is ${this.#maxString}`] };
    }
    switch (f.type) {
      case 'number':
      case 'integer': {
        let x: number;
        if (typeof v === 'number') x = v;
        else if (
          typeof v === 'string' &&
          this.#numericStrings &&
          /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v)
        )
          x = Number(v);
        else return { issue: ['type', `expected a ${f.type}, got ${describe(v)}`] };
        if (!Number.isFinite(x)) return { issue: ['non_finite', `${x} is not a finite number`] };
        if (f.type === 'integer' && !Number.isInteger(x))
          return { issue: ['integer', `not an integer${shown(x)}`] };
        if (f.bounds && (x < f.bounds.min || x > f.bounds.max)) {
          return { issue: ['bounds', `outside the bounds [${f.bounds.min}, ${f.bounds.max}]${shown(x)}`] };
        }
        return { value: x };
      }
      case 'timestamp': {
        let t: number;
        if (typeof v === 'number') t = v;
        else if (typeof v === 'string') t = parseTimestamp(v);
        else
          return { issue: ['type', `expected an ISO 8601 date or epoch milliseconds, got ${describe(v)}`] };
        if (!Number.isFinite(t))
          return {
            issue: [typeof v === 'number' ? 'non_finite' : 'type', `not a valid timestamp${shown(v)}`],
          };
        if (f.bounds && (t < f.bounds.min || t > f.bounds.max)) {
          return { issue: ['bounds', `outside the declared date range${shown(v)}`] };
        }
        return { value: t };
      }
      case 'category': {
        if (typeof v !== 'string' && typeof v !== 'number')
          return { issue: ['type', `expected a category, got ${describe(v)}`] };
        if (typeof v === 'number' && !Number.isFinite(v))
          return { issue: ['non_finite', `${v} is not a category`] };
        const s = String(v);
        if (f.categories && !f.categories.includes(s))
          return {
            issue: ['category', `not one of the ${f.categories.length} declared categories${shown(s)}`],
          };
        return { value: s };
      }
      case 'string':
        if (typeof v !== 'string') return { issue: ['type', `expected a string, got ${describe(v)}`] };
        return { value: v };
    }
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isFinite(v) ? 'a number' : String(v);
  return `a ${typeof v}`;
}

function issueError(issues: InputIssue[]): BulwarkError {
  const first = issues[0] as InputIssue;
  const where = [
    first.row > 0 ? `row ${first.row}` : '',
    first.field !== null ? `field "${first.field}"` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new BulwarkError(
    first.reason === 'too_large' ? 'ERR_INPUT_TOO_LARGE' : 'ERR_INPUT_INVALID',
    `input${where ? ` ${where}` : ''}: ${first.reason}: ${first.message}${more}`,
    { details: { row: first.row, field: first.field, reason: first.reason, issues: issues.length } },
  );
}

/**
 * Checks a numeric feature matrix (after preprocessing) before it reaches the model: its size and that
 * every value is finite. Throws `ERR_INPUT_INVALID` (reason `non_finite`) naming row and feature, or
 * `ERR_INPUT_TOO_LARGE`.
 */
export function validateFeatures(
  x: Float32Array,
  rows: number,
  features: number,
  options: { maxRows?: number; names?: readonly string[] } = {},
): void {
  const maxRows = requireInteger('maxRows', options.maxRows ?? 100_000, 1);
  if (rows > maxRows)
    throw issueError([
      { row: 0, field: null, reason: 'too_large', message: `${rows} rows, the limit is ${maxRows}` },
    ]);
  if (x.length !== rows * features) {
    throw issueError([
      {
        row: 0,
        field: null,
        reason: 'type',
        message: `${x.length} values for ${rows} rows of ${features} features`,
      },
    ]);
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      const j = i % features;
      throw issueError([
        {
          row: Math.floor(i / features) + 1,
          field: options.names?.[j] ?? `feature ${j}`,
          reason: 'non_finite',
          message: `${x[i]} is not a finite number`,
        },
      ]);
    }
  }
}
