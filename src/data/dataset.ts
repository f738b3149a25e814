import { BulwarkError, invalidArgument, requireInteger } from '../core/index.js';

/**
 * The in-memory, columnar table of the data layer. Numbers live in `Float64Array`s (NaN = missing),
 * strings and categories in arrays of `string | null` (null = missing), timestamps in `Float64Array`s
 * of epoch milliseconds (NaN = missing). Columns are never copied on `select`; row operations
 * (`slice`, `take`) copy only the rows they keep.
 */

/** A numeric column (schema types `number` and `integer`); NaN marks a missing value. */
export interface NumberColumn {
  readonly name: string;
  readonly type: 'number';
  readonly values: Float64Array;
}

/** A string column (schema types `category` and `string`); null marks a missing value. */
export interface StringColumn {
  readonly name: string;
  readonly type: 'string';
  readonly values: readonly (string | null)[];
}

/** A timestamp column in epoch milliseconds (UTC); NaN marks a missing value. */
export interface TimestampColumn {
  readonly name: string;
  readonly type: 'timestamp';
  readonly values: Float64Array;
}

export type Column = NumberColumn | StringColumn | TimestampColumn;
export type ColumnType = Column['type'];

/** One value of a row: a number (NaN = missing), a string, or null (missing string). */
export type CellValue = number | string | null;

/** A row as an object keyed by column name. */
export type Row = Record<string, CellValue>;

/** Options of {@link Dataset.toMatrix}. */
export interface ToMatrixOptions {
  /** Allow NaN in the output (default false: a missing value throws `ERR_DATA_VALUE` naming row and column). */
  allowMissing?: boolean;
}

/**
 * A columnar table.
 *
 * @example
 * ```ts
 * const ds = Dataset.fromColumns({ age: [39, 50], sex: ['Male', null] });
 * ds.rowCount;                    // 2
 * ds.numbers('age');              // Float64Array [39, 50]
 * ds.toMatrix(['age']);           // Float32Array [39, 50]
 * ```
 */
export class Dataset {
  readonly rowCount: number;
  readonly columns: readonly Column[];
  readonly #byName: Map<string, Column>;

  constructor(columns: readonly Column[], rowCount?: number) {
    const n = rowCount ?? columns[0]?.values.length ?? 0;
    requireInteger('rowCount', n, 0);
    const byName = new Map<string, Column>();
    for (const c of columns) {
      if (typeof c.name !== 'string' || c.name.length === 0)
        throw invalidArgument('column name', 'a non-empty string', c.name);
      if (byName.has(c.name)) throw invalidArgument('columns', 'unique column names', `"${c.name}" twice`);
      if (c.values.length !== n) {
        throw invalidArgument(
          `column "${c.name}"`,
          `${n} values (the row count)`,
          `${c.values.length} values`,
        );
      }
      byName.set(c.name, c);
    }
    this.rowCount = n;
    this.columns = Object.freeze([...columns]);
    this.#byName = byName;
  }

  /**
   * Builds a dataset from plain arrays: numbers (or null for missing) become a number column, strings
   * (or null) a string column, `Date`s a timestamp column. Typed arrays are used as they are.
   */
  static fromColumns(
    cols: Record<
      string,
      Float64Array | readonly (number | null)[] | readonly (string | null)[] | readonly (Date | null)[]
    >,
  ): Dataset {
    const out: Column[] = [];
    for (const [name, values] of Object.entries(cols)) {
      if (values instanceof Float64Array) {
        out.push({ name, type: 'number', values });
        continue;
      }
      const first = values.find((v) => v !== null && v !== undefined);
      if (first instanceof Date) {
        const v = new Float64Array(values.length);
        for (let i = 0; i < values.length; i++) {
          const d = values[i];
          v[i] = d instanceof Date ? d.getTime() : Number.NaN;
        }
        out.push({ name, type: 'timestamp', values: v });
      } else if (typeof first === 'string') {
        const v = values.map((x, i) => {
          if (x !== null && x !== undefined && typeof x !== 'string')
            throw invalidArgument(`column "${name}" row ${i}`, 'a string or null', x);
          return (x as string | null | undefined) ?? null;
        });
        out.push({ name, type: 'string', values: v });
      } else {
        const v = new Float64Array(values.length);
        for (let i = 0; i < values.length; i++) {
          const x = values[i];
          if (x === null || x === undefined) v[i] = Number.NaN;
          else if (typeof x === 'number') v[i] = x;
          else throw invalidArgument(`column "${name}" row ${i}`, 'a number or null', x);
        }
        out.push({ name, type: 'number', values: v });
      }
    }
    return new Dataset(out);
  }

  /** Builds a dataset from row objects, with the column types given (missing keys are missing values). */
  static fromRows(rows: readonly Row[], types: Readonly<Record<string, ColumnType>>): Dataset {
    const cols: Column[] = [];
    for (const [name, type] of Object.entries(types)) {
      if (type === 'string') {
        const v = rows.map((r, i) => {
          const x = Object.hasOwn(r, name) ? r[name] : undefined;
          if (x === null || x === undefined) return null;
          if (typeof x === 'number') return Number.isNaN(x) ? null : String(x);
          if (typeof x !== 'string') throw invalidArgument(`row ${i} field "${name}"`, 'a string', x);
          return x;
        });
        cols.push({ name, type, values: v });
      } else {
        const v = new Float64Array(rows.length);
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i]!;
          const x = Object.hasOwn(row, name) ? row[name] : undefined;
          if (x === null || x === undefined) v[i] = Number.NaN;
          else if (typeof x === 'number') v[i] = x;
          else {
            const parsed = type === 'timestamp' ? parseTimestamp(x) : parseNumber(x);
            if (Number.isNaN(parsed)) {
              throw new BulwarkError('ERR_DATA_VALUE', `row ${i + 1} field "${name}": expected a ${type}`, {
                details: { row: i + 1, field: name },
              });
            }
            v[i] = parsed;
          }
        }
        cols.push({ name, type, values: v });
      }
    }
    return new Dataset(cols, rows.length);
  }

  /** The column names, in order. */
  get columnNames(): string[] {
    return this.columns.map((c) => c.name);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The column called `name`; throws `ERR_COLUMN_NOT_FOUND` listing the columns that exist. */
  column(name: string): Column {
    const c = this.#byName.get(name);
    if (!c) throw columnNotFound(name, this.columnNames);
    return c;
  }

  /** The values of a number column; throws `ERR_DATA_VALUE` for a string or timestamp column. */
  numbers(name: string): Float64Array {
    const c = this.column(name);
    if (c.type !== 'number') throw wrongType(name, c.type, 'number');
    return c.values;
  }

  /** The values of a string column; throws `ERR_DATA_VALUE` for a number or timestamp column. */
  strings(name: string): readonly (string | null)[] {
    const c = this.column(name);
    if (c.type !== 'string') throw wrongType(name, c.type, 'string');
    return c.values;
  }

  /** The values of a timestamp column (epoch ms); throws `ERR_DATA_VALUE` for other columns. */
  timestamps(name: string): Float64Array {
    const c = this.column(name);
    if (c.type !== 'timestamp') throw wrongType(name, c.type, 'timestamp');
    return c.values;
  }

  /** A dataset of the named columns, in the order given (columns are shared, not copied). */
  select(names: readonly string[]): Dataset {
    return new Dataset(
      names.map((n) => this.column(n)),
      this.rowCount,
    );
  }

  /** A dataset without the named columns (each must exist). */
  drop(names: readonly string[]): Dataset {
    for (const n of names) this.column(n);
    const gone = new Set(names);
    return new Dataset(
      this.columns.filter((c) => !gone.has(c.name)),
      this.rowCount,
    );
  }

  /** A dataset with `col` added, or replacing the column of the same name in place. */
  withColumn(col: Column): Dataset {
    const i = this.columns.findIndex((c) => c.name === col.name);
    const cols = [...this.columns];
    if (i < 0) cols.push(col);
    else cols[i] = col;
    return new Dataset(cols, this.rowCount);
  }

  /** Rows `start` (inclusive) to `end` (exclusive), like `Array.prototype.slice` without negatives. */
  slice(start: number, end: number = this.rowCount): Dataset {
    requireInteger('start', start, 0, this.rowCount);
    requireInteger('end', end, start, this.rowCount);
    return new Dataset(
      this.columns.map((c) => mapValues(c, (v) => v.slice(start, end) as typeof v)),
      end - start,
    );
  }

  /** The rows at `indices` (in that order; repeats allowed), e.g. a train/test split from a permutation. */
  take(indices: ArrayLike<number>): Dataset {
    const n = indices.length;
    for (let i = 0; i < n; i++) {
      const k = indices[i]!;
      if (!Number.isInteger(k) || k < 0 || k >= this.rowCount) {
        throw invalidArgument(`indices[${i}]`, `an integer in [0, ${this.rowCount - 1}]`, k);
      }
    }
    const cols = this.columns.map((c): Column => {
      if (c.type === 'string') {
        const out = new Array<string | null>(n);
        for (let i = 0; i < n; i++) out[i] = c.values[indices[i]!]!;
        return { name: c.name, type: 'string', values: out };
      }
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = c.values[indices[i]!]!;
      return { name: c.name, type: c.type, values: out };
    });
    return new Dataset(cols, n);
  }

  /** Row `i` as an object (numbers as numbers, NaN for missing numbers, null for missing strings). */
  row(i: number): Row {
    requireInteger('row', i, 0, this.rowCount - 1);
    const r: Row = {};
    // defineProperty, not assignment: a column called "__proto__" is data, not the prototype.
    for (const c of this.columns) {
      Object.defineProperty(r, c.name, {
        value: c.values[i]!,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return r;
  }

  /** Iterates the rows as objects. */
  *rows(): IterableIterator<Row> {
    for (let i = 0; i < this.rowCount; i++) yield this.row(i);
  }

  /** The first `n` rows. */
  head(n = 5): Dataset {
    return this.slice(0, Math.min(n, this.rowCount));
  }

  /**
   * The named number and timestamp columns (default: all of them, in order) as a row-major
   * `Float32Array` of `rowCount * columns.length` values, the input of the ML layer. String columns must
   * be encoded first (see `OneHotEncoder`); missing values throw `ERR_DATA_VALUE` naming the row and
   * column unless `allowMissing`.
   */
  toMatrix(columns?: readonly string[], opts: ToMatrixOptions = {}): Float32Array {
    const names = columns ?? this.columns.filter((c) => c.type !== 'string').map((c) => c.name);
    const cols = names.map((n) => {
      const c = this.column(n);
      if (c.type === 'string') {
        throw new BulwarkError(
          'ERR_DATA_VALUE',
          `column "${n}" holds strings; encode it (one-hot) before building a matrix`,
          { details: { field: n } },
        );
      }
      return c.values;
    });
    const d = cols.length;
    const out = new Float32Array(this.rowCount * d);
    for (let j = 0; j < d; j++) {
      const v = cols[j]!;
      for (let i = 0; i < this.rowCount; i++) {
        const x = v[i]!;
        if (Number.isNaN(x) && !opts.allowMissing) {
          throw new BulwarkError(
            'ERR_DATA_VALUE',
            `row ${i + 1} column "${names[j]}": missing value in a matrix`,
            {
              details: { row: i + 1, field: names[j]! },
            },
          );
        }
        out[i * d + j] = x;
      }
    }
    return out;
  }

  /** The number of missing values (NaN or null) of each column. */
  missingCounts(): Record<string, number> {
    // Entries, not `out[c.name] = m`: a column called "__proto__" would lose its count.
    const out: Array<[string, number]> = [];
    for (const c of this.columns) {
      let m = 0;
      if (c.type === 'string') {
        for (const v of c.values) if (v === null) m++;
      } else {
        for (const v of c.values) if (Number.isNaN(v)) m++;
      }
      out.push([c.name, m]);
    }
    return Object.fromEntries(out);
  }

  /** The number of rows with at least one missing value. */
  rowsWithMissing(): number {
    const bad = new Uint8Array(this.rowCount);
    for (const c of this.columns) {
      if (c.type === 'string') {
        for (let i = 0; i < this.rowCount; i++) if (c.values[i] === null) bad[i] = 1;
      } else {
        for (let i = 0; i < this.rowCount; i++) if (Number.isNaN(c.values[i]!)) bad[i] = 1;
      }
    }
    let n = 0;
    for (const b of bad) n += b;
    return n;
  }
}

function mapValues(c: Column, f: <T extends Float64Array | readonly (string | null)[]>(v: T) => T): Column {
  if (c.type === 'string') return { name: c.name, type: 'string', values: f(c.values) };
  return { name: c.name, type: c.type, values: f(c.values) };
}

/** The `ERR_COLUMN_NOT_FOUND` error, naming the column and listing the ones that exist. */
export function columnNotFound(name: string, existing: readonly string[]): BulwarkError {
  return new BulwarkError(
    'ERR_COLUMN_NOT_FOUND',
    `no column "${name}"; columns are: ${columnList(existing)}`,
    {
      details: { field: name },
    },
  );
}

/** Column names for a message: the first 30 and how many there are (a wide file has a million). */
export function columnList(names: readonly string[]): string {
  if (names.length === 0) return '(none)';
  return names.length > 30 ? `${names.slice(0, 30).join(', ')}, ... (${names.length})` : names.join(', ');
}

function wrongType(name: string, got: ColumnType, want: ColumnType): BulwarkError {
  return new BulwarkError('ERR_DATA_VALUE', `column "${name}" is a ${got} column, not a ${want} column`, {
    details: { field: name },
  });
}

/**
 * Parses a decimal number as written in data files (`12`, `-3.5`, `1e-3`, `.5`, `5.`); anything else
 * (including `NaN`, `Infinity`, hex, white space, empty, overflow to infinity, underflow of a non-zero
 * value to 0) gives NaN. Stricter than `Number()`, which accepts `0x1f`, `''` and `' 1 '`. Checked
 * with character codes, then `Number()`: this runs once per value on million-row files.
 */
export function parseNumber(s: string): number {
  const n = s.length;
  if (n === 0) return Number.NaN;
  const c0 = s.charCodeAt(0);
  const cl = s.charCodeAt(n - 1);
  // First: digit, sign or point; last: digit or point. Rules out spaces, 'Infinity', 'NaN'.
  if (!((c0 >= 48 && c0 <= 57) || c0 === 45 || c0 === 43 || c0 === 46)) return Number.NaN;
  if (!((cl >= 48 && cl <= 57) || cl === 46)) return Number.NaN;
  if (n > 1 && c0 === 48) {
    const c1 = s.charCodeAt(1) | 32; // 0x.., 0o.., 0b..
    if (c1 === 120 || c1 === 111 || c1 === 98) return Number.NaN;
  }
  const x = Number(s);
  // Out of a double's range either way is not a number: too large gives Infinity, and too small
  // (`1e-400`) gives 0, a different value; a true zero has no non-zero digit before its exponent.
  if (x === 0) {
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 101 || c === 69) break; // e, E
      if (c >= 49 && c <= 57) return Number.NaN; // 1-9
    }
  }
  return Number.isFinite(x) ? x : Number.NaN;
}

const DATE_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parses an ISO 8601 date (`2024-01-31`) or date-time (`2024-01-31T10:00:00Z`, `2024-01-31 10:00`,
 * with an optional fraction and offset) to epoch ms; a time without an offset is taken as UTC so that
 * results do not depend on the machine's time zone. Anything else, or an impossible date, gives NaN.
 */
export function parseTimestamp(s: string): number {
  const n = s.length;
  // Cheap rejection before the regular expression: 'YYYY-MM-DD' at least, with '-' at 4 and 7.
  if (n < 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return Number.NaN;
  // Fast path for the common fixed-width forms (YYYY-MM-DD, with THH:MM:SS, Z or ±HH:MM): character
  // codes instead of the regular expression. Anything it does not accept goes to the general path.
  if (n === 10 || n === 19 || n === 20 || n === 25) {
    const t = parseFixedWidth(s, n);
    if (!Number.isNaN(t)) return t;
  }
  const m = DATE_RE.exec(s);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, sec, frac, tz] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return Number.NaN;
  const hh = h === undefined ? 0 : Number(h);
  const mm = mi === undefined ? 0 : Number(mi);
  const ss = sec === undefined ? 0 : Number(sec);
  if (hh > 23 || mm > 59 || ss > 60) return Number.NaN;
  const ms = frac === undefined ? 0 : Math.round(Number(`0${frac}`) * 1000);
  let t = utc(year, month - 1, day, hh, mm, Math.min(ss, 59), ms);
  if (tz !== undefined && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2));
    t -= sign * offMin * 60_000;
  }
  return t;
}

/** Two decimal digits at i, or -1. */
function d2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function parseFixedWidth(s: string, n: number): number {
  const y1 = d2(s, 0);
  const y2 = d2(s, 2);
  const mo = d2(s, 5);
  const d = d2(s, 8);
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1) return Number.NaN;
  const year = y1 * 100 + y2;
  if (d > daysIn(year, mo)) return Number.NaN;
  if (n === 10) return utc(year, mo - 1, d, 0, 0, 0, 0);
  const sep = s.charCodeAt(10);
  if ((sep !== 84 && sep !== 32) || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return Number.NaN;
  const hh = d2(s, 11);
  const mm = d2(s, 14);
  const ss = d2(s, 17);
  if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60) return Number.NaN;
  const t = utc(year, mo - 1, d, hh, mm, Math.min(ss, 59), 0);
  if (n === 19) return t;
  if (n === 20) return s.charCodeAt(19) === 90 ? t : Number.NaN;
  const sign = s.charCodeAt(19);
  const oh = d2(s, 20);
  const om = d2(s, 23);
  if ((sign !== 43 && sign !== 45) || s.charCodeAt(22) !== 58 || oh < 0 || om < 0) return Number.NaN;
  return t - (sign === 45 ? -1 : 1) * (oh * 60 + om) * 60_000;
}

/** Date.UTC without its mapping of years 0-99 to 1900-1999. */
function utc(
  year: number,
  month0: number,
  day: number,
  h: number,
  mi: number,
  s: number,
  ms: number,
): number {
  const t = Date.UTC(year, month0, day, h, mi, s, ms);
  return year >= 100 ? t : new Date(t).setUTCFullYear(year);
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysIn(year: number, month: number): number {
  if (month === 2 && ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0)) return 29;
  return DAYS[month - 1]!;
}

/** Formats epoch ms as ISO 8601 (a date only when the time is midnight UTC); NaN gives ''. */
export function formatTimestamp(ms: number): string {
  if (Number.isNaN(ms)) return '';
  const iso = new Date(ms).toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
}
