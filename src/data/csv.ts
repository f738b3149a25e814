import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { type CsvError, parse } from 'csv-parse';
import { stringify } from 'csv-stringify';
import {
  AtomicFileStream,
  type AtomicWriteOptions,
  BulwarkError,
  fsError,
  invalidArgument,
  requireFile,
  requireInteger,
} from '../core/index.js';
import { CsvTokenizer, MAX_RECORD_CHARS, TokenizeError } from './csv-tokenizer.js';
import {
  type Column,
  type ColumnType,
  columnList,
  Dataset,
  formatTimestamp,
  parseNumber,
  parseTimestamp,
} from './dataset.js';

/**
 * Streaming CSV reading and atomic CSV writing on top of csv-parse and csv-stringify.
 *
 * Reading never holds the file in memory: records flow from a 1 MiB read stream through csv-parse
 * (`cast: false`, records as arrays: the fastest csv-parse mode) straight into column builders or an
 * async iterator. Every malformed record (wrong field count, bad quoting) is `ERR_CSV_PARSE` naming the
 * file and line; messages never quote the offending value, which may be a protected field.
 */

/** How a CSV file is laid out. */
export interface CsvReadOptions {
  /**
   * Field separator, one or more characters (default `,`; Adult's is `, `), or `'whitespace'`: fields
   * separated by runs of spaces and tabs, blanks at line ends ignored (UCI's space-separated files).
   */
  delimiter?: string;
  /** Whether the first record names the columns (default true). */
  header?: boolean;
  /** Column names: required-length names when `header` is false; with a header, they replace it. */
  columns?: readonly string[];
  /** Lines starting with this string are skipped (e.g. `#`, or `|` for Adult's test file). */
  comment?: string;
  /** Trim white space around every value (default false). */
  trim?: boolean;
  /** Values read as missing (default `['']`); e.g. `['', '?', 'NA']`. */
  missing?: readonly string[];
  /** Quote character, or false for none (default `"`). */
  quote?: string | false;
  /** Read at most this many data rows. */
  maxRows?: number;
  /**
   * `auto` (default): Bulwark's tokenizer for one-character delimiters with `"` quotes, csv-parse
   * otherwise; `csv-parse` forces csv-parse (for comparison).
   */
  engine?: 'auto' | 'csv-parse';
  /**
   * Gets every byte read from the file, in order, as it is read; readCsvDataset may read the file more
   * than once (see `onDigest`), and each read calls it again.
   */
  onBytes?: (chunk: Uint8Array) => void;
}

/** Options of {@link readCsvDataset}. */
export interface CsvDatasetOptions extends CsvReadOptions {
  /**
   * Gets `sha256:<hex>` of the bytes the dataset was built from. The file is read again when a late
   * value does not fit its column's inferred type; every read must see the same bytes, or the read is
   * ERR_FILE_CHANGED (a file swapped between reads would otherwise give a digest of other data).
   */
  onDigest?: (digest: string) => void;
  /** Column types to use instead of inferring them; a value that does not parse is `ERR_DATA_VALUE`. */
  types?: Readonly<Record<string, ColumnType>>;
  /** Rows examined before a column's type is fixed (default 10,000); later misfits trigger a re-read. */
  inferRows?: number;
  /**
   * Value rewrites per column applied before typing, e.g. `{ income: { '>50K.': '>50K' } }` for the
   * Adult test file whose labels end in a full stop.
   */
  valueMaps?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Gets each data record as parsed (before value maps, missing tokens and typing), with
   * its 0-based index among the data rows and its line: a check of the very rows the dataset is built
   * from (a protected file's row digest). When the file is read again (see `onDigest`), the records
   * come again from index 0.
   */
  onRecord?: (values: readonly string[], index: number, line: number) => void;
}

/** One data row of a CSV file, as the async iterator yields it. */
export interface CsvRow {
  /** 1-based line number in the file of the row's last line. */
  readonly line: number;
  /** 0-based index among the data rows. */
  readonly index: number;
  /** The values, with missing tokens replaced by null. */
  readonly values: readonly (string | null)[];
}

/** A CSV file opened for streaming; iterate it with `for await`. */
export interface CsvReader extends AsyncIterable<CsvRow> {
  /** The column names (from the header or the options). */
  readonly columns: readonly string[];
}

const READ_CHUNK = 1 << 20;

function checkReadOptions(opts: CsvReadOptions): void {
  if (opts.delimiter !== undefined && (typeof opts.delimiter !== 'string' || opts.delimiter.length === 0)) {
    throw invalidArgument('delimiter', 'a non-empty string', opts.delimiter);
  }
  if (opts.comment !== undefined && (typeof opts.comment !== 'string' || opts.comment.length === 0)) {
    throw invalidArgument('comment', 'a non-empty string', opts.comment);
  }
  if (
    opts.quote !== undefined &&
    opts.quote !== false &&
    (typeof opts.quote !== 'string' || opts.quote.length !== 1)
  ) {
    throw invalidArgument('quote', 'one character or false', opts.quote);
  }
  if (opts.delimiter === 'whitespace' && opts.quote !== undefined && opts.quote !== '"') {
    throw invalidArgument('quote', '" (the only quote of whitespace-delimited files)', opts.quote);
  }
  // Characters with one meaning each: a delimiter that is a line end or the quote, or a comment
  // marker that is the delimiter (every row starting with an empty field skipped), read "successfully"
  // into something other than the file.
  const delim = opts.delimiter ?? ',';
  const quote = opts.quote === undefined ? '"' : opts.quote;
  if (delim !== 'whitespace') {
    if (/[\r\n]/.test(delim)) throw invalidArgument('delimiter', 'no line-end character', delim);
    if (quote !== false && delim.includes(quote))
      throw invalidArgument('delimiter', `no quote character (${quote})`, delim);
  }
  if (quote !== false && /[\r\n]/.test(quote)) throw invalidArgument('quote', 'not a line end', quote);
  if (opts.comment !== undefined) {
    if (/[\r\n]/.test(opts.comment)) throw invalidArgument('comment', 'no line-end character', opts.comment);
    if (delim !== 'whitespace' && opts.comment.startsWith(delim))
      throw invalidArgument(
        'comment',
        `a marker that does not start with the delimiter (${delim})`,
        opts.comment,
      );
  }
  for (const k of ['header', 'trim'] as const)
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean')
      throw invalidArgument(k, 'true or false', opts[k]);
  if (opts.maxRows !== undefined) requireInteger('maxRows', opts.maxRows, 0);
  if (opts.engine !== undefined && opts.engine !== 'auto' && opts.engine !== 'csv-parse') {
    throw invalidArgument('engine', 'auto or csv-parse', opts.engine);
  }
  if (opts.header === false && opts.columns === undefined) return;
  if (opts.columns !== undefined) {
    if (!Array.isArray(opts.columns) || opts.columns.length === 0)
      throw invalidArgument('columns', 'a non-empty list of names', opts.columns);
    checkNames(opts.columns, 'columns');
  }
}

function checkNames(names: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (typeof n !== 'string' || n.length === 0) throw invalidArgument(what, 'non-empty names', n);
    if (seen.has(n)) throw invalidArgument(what, 'unique names', `"${n}" twice`);
    seen.add(n);
  }
}

/** The sink of a scan: gets the header once, then each record with its line. */
interface ScanSink {
  header(columns: string[]): void;
  /** Returns false to stop reading. */
  row(values: string[], line: number): boolean;
}

/** A running scan: a promise for its end, and flow control for the async iterator. */
interface Scan {
  readonly done: Promise<void>;
  pause(): void;
  resume(): void;
  stop(): void;
}

/**
 * Streams `path` into `sink`, through our tokenizer for the common dialect and csv-parse for the rest.
 * Flow control pauses the file stream, never the parser, so records arrive with their line numbers.
 */
function startScan(path: string, opts: CsvReadOptions, sink: ScanSink): Scan {
  const file = basename(path);
  const quote = opts.quote === undefined ? '"' : opts.quote;
  const delimiter = opts.delimiter ?? ',';
  const source = createReadStream(path, { highWaterMark: READ_CHUNK });
  let expected = -1;
  let headerPending = opts.header !== false;
  let stopped = false;
  let settle: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const finish = (e?: unknown): void => {
    if (stopped) return;
    stopped = true;
    source.destroy();
    if (e === undefined) settle!.resolve();
    else settle!.reject(e);
  };
  if (opts.header === false && opts.columns) {
    expected = opts.columns.length;
    sink.header([...opts.columns]);
  }
  const onRecord = (rec: string[], line: number): void => {
    if (stopped) return;
    if (headerPending) {
      headerPending = false;
      const names = opts.columns
        ? [...opts.columns]
        : rec.map((n, i) => (n.trim() === '' ? `column_${i + 1}` : n));
      if (opts.columns && opts.columns.length !== rec.length) {
        throw csvError(
          file,
          line,
          `the header has ${rec.length} fields but ${opts.columns.length} column names were given`,
        );
      }
      const seen = new Set<string>();
      for (const n of names) {
        if (seen.has(n)) throw csvError(file, line, `duplicate column name "${n}" in the header`);
        seen.add(n);
      }
      expected = names.length;
      sink.header(names);
      return;
    }
    if (expected < 0) {
      expected = rec.length;
      sink.header(rec.map((_, i) => `c${i + 1}`));
    }
    if (rec.length !== expected) {
      throw csvError(file, line, `expected ${expected} fields, found ${rec.length}`);
    }
    if (!sink.row(rec, line)) finish();
  };
  const onEnd = (): void => {
    if (stopped) return;
    // A file with no header has no columns: reading it as a table of none would only fail later,
    // far from the cause (an empty schema, a missing label), or pass silently.
    if (headerPending) finish(csvError(file, 1, 'the file is empty: no header line'));
    else if (expected < 0) finish(csvError(file, 1, 'the file is empty: no rows and no column names'));
    else finish();
  };
  source.on('error', (e) => finish(fsError(e, path, 'cannot read CSV')));
  // First listener: sees each chunk before the parser does.
  const onBytes = opts.onBytes;
  if (onBytes) source.on('data', (chunk) => onBytes(chunk as Buffer));
  const bytes = new ByteCheck(file);

  // Whitespace-separated files need the tokenizer; other one-character dialects use it unless told.
  const tokenizable = quote === '"' && delimiter.length === 1 && delimiter !== '"';
  if (delimiter === 'whitespace' || (tokenizable && opts.engine !== 'csv-parse')) {
    // Fast path: our tokenizer on decoded text (see csv-tokenizer.ts).
    const tok = new CsvTokenizer(delimiter, opts.comment, onRecord, opts.trim === true);
    const guard = (f: () => void): void => {
      if (stopped) return;
      try {
        f();
      } catch (e) {
        finish(e instanceof TokenizeError ? mapCsvError(e, file) : e);
      }
    };
    source.on('data', (chunk) => guard(() => tok.push(bytes.decode(chunk as Buffer))));
    source.on('end', () =>
      guard(() => {
        tok.push(bytes.end());
        tok.end();
        onEnd();
      }),
    );
  } else {
    const parser = parse({
      delimiter,
      cast: false,
      bom: true,
      quote: quote === false ? '' : quote,
      relax_column_count: true,
      skip_empty_lines: true,
      // The tokenizer's bound: without it an unclosed quote buffers the rest of the file.
      max_record_size: MAX_RECORD_CHARS,
      trim: opts.trim === true,
      ...(opts.comment === undefined ? {} : { comment: opts.comment, comment_no_infix: true }),
    });
    // csv-parse emits records synchronously while it parses a chunk (its readable side stays
    // flowing), so `parser.info.lines` is the line of the record just emitted.
    parser.on('data', (rec: string[]) => {
      if (stopped) return;
      try {
        onRecord(rec, parser.info.lines);
      } catch (e) {
        finish(e);
      }
    });
    parser.on('error', (e) => finish(mapCsvError(e as CsvError, file)));
    parser.on('end', onEnd);
    // The bytes are checked here (csv-parse would decode invalid UTF-8 to U+FFFD without a word).
    source.on('data', (chunk) => {
      if (stopped) return;
      try {
        bytes.decode(chunk as Buffer);
        parser.write(chunk);
      } catch (e) {
        finish(e);
      }
    });
    source.on('end', () => {
      if (stopped) return;
      try {
        bytes.end();
        parser.end();
      } catch (e) {
        finish(e);
      }
    });
  }
  return {
    done,
    pause: () => source.pause(),
    resume: () => source.resume(),
    stop: () => finish(),
  };
}

/**
 * The byte-level checks of a CSV file, chunk by chunk: it must be UTF-8 text. A UTF-16 file (byte-order
 * mark FF FE or FE FF), an invalid UTF-8 sequence or a NUL byte (binary data, or UTF-16 without a mark)
 * is `ERR_CSV_PARSE` naming the line and byte offset; a lenient decoder would turn them into U+FFFD
 * or garbage columns without a word, and the data would no longer be what the file holds.
 */
class ByteCheck {
  readonly #file: string;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  /** Offset of the current chunk's first byte in the file. */
  #offset = 0;
  /** Line (1-based) of the current chunk's first byte. */
  #line = 1;

  constructor(file: string) {
    this.#file = file;
  }

  /** The chunk's text (a character cut by the chunk's end comes with the next one). */
  decode(chunk: Buffer): string {
    if (
      this.#offset === 0 &&
      chunk.length >= 2 &&
      ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff))
    ) {
      throw this.#error(
        chunk,
        0,
        'the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8',
      );
    }
    let text: string | undefined;
    let bad = -1;
    try {
      text = this.#decoder.decode(chunk, { stream: true });
    } catch {
      bad = invalidUtf8At(chunk);
    }
    const nul = chunk.indexOf(0);
    if (nul >= 0 && (bad < 0 || nul < bad))
      throw this.#error(chunk, nul, 'a NUL byte (is the file binary, or UTF-16 text?)');
    if (text === undefined)
      throw this.#error(chunk, Math.max(0, bad), 'invalid UTF-8 (save the file as UTF-8)');
    this.#offset += chunk.length;
    this.#line += countByte(chunk, 10, chunk.length);
    return text;
  }

  /** The text held back at the end of the file. */
  end(): string {
    try {
      return this.#decoder.decode();
    } catch {
      throw this.#error(Buffer.alloc(0), 0, 'the file ends inside a UTF-8 character (invalid UTF-8)');
    }
  }

  #error(chunk: Buffer, at: number, what: string): BulwarkError {
    const line = this.#line + countByte(chunk, 10, at);
    const offset = this.#offset + at;
    return new BulwarkError('ERR_CSV_PARSE', `${this.#file}:${line}: byte ${offset}: ${what}`, {
      details: { file: this.#file, line, offset },
    });
  }
}

/** Occurrences of `byte` in `b[0, end)`. */
function countByte(b: Buffer, byte: number, end: number): number {
  let k = 0;
  for (let i = b.indexOf(byte); i >= 0 && i < end; i = b.indexOf(byte, i + 1)) k++;
  return k;
}

/**
 * Index of the first byte of `b` that starts an ill-formed UTF-8 sequence (Unicode 15, table 3-7), or
 * -1. Continuation bytes at the very start may finish a character begun in the previous chunk and are
 * skipped; a sequence cut by the end is not an error here (the next chunk completes it).
 */
function invalidUtf8At(b: Uint8Array): number {
  const n = b.length;
  let i = 0;
  while (i < 3 && i < n && (b[i]! & 0xc0) === 0x80) i++;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return -1;
      const d = b[i + k]!;
      if (d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}

function csvError(file: string, line: number, what: string): BulwarkError {
  return new BulwarkError('ERR_CSV_PARSE', `${file}:${line}: ${what}`, { details: { file, line } });
}

/** Maps a csv-parse error to ERR_CSV_PARSE without its message, which can quote field values. */
function mapCsvError(e: CsvError | TokenizeError, file: string): BulwarkError {
  const line = typeof e.lines === 'number' ? e.lines : 0;
  const reasons: Record<string, string> = {
    CSV_QUOTE_NOT_CLOSED: 'a quoted field is not closed before the end of the file',
    CSV_INVALID_CLOSING_QUOTE: 'unexpected character after a closing quote',
    CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'unexpected character after a closing quote',
    CSV_INVALID_OPENING_QUOTE: 'a quote inside an unquoted field',
    INVALID_OPENING_QUOTE: 'a quote inside an unquoted field',
    CSV_MAX_RECORD_SIZE: 'a record is larger than the maximum record size',
    CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'wrong number of fields',
  };
  const reason = reasons[e.code] ?? `malformed CSV (${e.code ?? 'unknown error'})`;
  return new BulwarkError('ERR_CSV_PARSE', `${file}:${line}: ${reason}`, {
    cause: e,
    details: { file, line },
  });
}

/**
 * A test for missing-value tokens that avoids hashing every value: only strings as short as the
 * longest token are looked up.
 */
class MissingTokens {
  readonly #set: Set<string>;
  readonly #maxLen: number;
  readonly #onlyEmpty: boolean;
  constructor(tokens: readonly string[]) {
    this.#set = new Set(tokens);
    this.#maxLen = Math.max(0, ...tokens.map((t) => t.length));
    this.#onlyEmpty = this.#set.size === 1 && this.#set.has('');
  }
  has(s: string): boolean {
    if (this.#onlyEmpty) return s.length === 0;
    return s.length <= this.#maxLen && this.#set.has(s);
  }
}

function missingSet(opts: CsvReadOptions): MissingTokens {
  const m = opts.missing ?? [''];
  if (!Array.isArray(m) || m.some((t) => typeof t !== 'string'))
    throw invalidArgument('missing', 'a list of strings', m);
  return new MissingTokens(m);
}

/**
 * Opens a CSV file for streaming row by row; memory stays bounded (the file stream is paused while
 * rows wait to be consumed).
 *
 * @example
 * ```ts
 * const reader = await openCsv('tx.csv', { missing: ['', '?'] });
 * for await (const row of reader) console.log(row.line, row.values[0]);
 * ```
 */
export async function openCsv(path: string, opts: CsvReadOptions = {}): Promise<CsvReader> {
  checkReadOptions(opts);
  await requireFile(path, 'CSV file');
  const missing = missingSet(opts);
  // Read the header eagerly so that `columns` is known before iteration.
  const header = await readCsvHeader(path, opts);
  return {
    columns: header,
    [Symbol.asyncIterator]: () => rowIterator(path, opts, missing),
  };
}

/** The column names of a CSV file (its header, or the names given). */
export async function readCsvHeader(path: string, opts: CsvReadOptions = {}): Promise<string[]> {
  checkReadOptions(opts);
  await requireFile(path, 'CSV file');
  let cols: string[] = [];
  const scan = startScan(
    path,
    { ...opts, maxRows: undefined },
    {
      header(c) {
        cols = c;
      },
      row() {
        return false;
      },
    },
  );
  // A header-only file ends without a row; otherwise the first row stops the scan.
  await scan.done;
  return cols;
}

async function* rowIterator(
  path: string,
  opts: CsvReadOptions,
  missing: MissingTokens,
): AsyncGenerator<CsvRow> {
  // A chunk of the file yields thousands of rows at once; the queue is read from `head` and compacted
  // now and then (Array.shift on a long array is linear), and the file stream is paused while it is long.
  const HIGH = 4096;
  let queue: CsvRow[] = [];
  let head = 0;
  let index = 0;
  let wake: (() => void) | undefined;
  let ended = false;
  let failure: unknown;
  const max = opts.maxRows ?? Infinity;
  const scan = startScan(path, opts, {
    header() {},
    row(values, line) {
      if (index >= max) return false;
      const v = values.map((x) => (missing.has(x) ? null : x));
      queue.push({ line, index: index++, values: v });
      if (queue.length - head >= HIGH) scan.pause();
      wake?.();
      return index < max;
    },
  });
  scan.done.then(
    () => {
      ended = true;
      wake?.();
    },
    (e: unknown) => {
      failure = e;
      ended = true;
      wake?.();
    },
  );
  try {
    for (;;) {
      if (head < queue.length) {
        const r = queue[head++]!;
        if (head === queue.length) {
          queue = [];
          head = 0;
          scan.resume();
        } else if (head >= 8192) {
          queue = queue.slice(head);
          head = 0;
        }
        yield r;
        continue;
      }
      if (ended) {
        if (failure !== undefined) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    scan.stop();
  }
}

/** Incremental builder of one column while its type may still change. */
const INTERN_LIMIT = 4096;

class ColumnBuilder {
  readonly name: string;
  type: ColumnType | undefined;
  readonly forced: boolean;
  // Grown by doubling from a small start: 1024 values per column up front made a 7 MB file with a
  // header of a million names allocate 8 GB before its first row.
  nums = new Float64Array(16);
  strs: (string | null)[] = [];
  length = 0;
  /** Set when a value did not fit the inferred type: the file must be read again. */
  misfit = false;
  /**
   * Canonical copies of a low-cardinality string column's values: one string per distinct value
   * instead of one per row keeps the old generation small (fewer objects for the GC to mark). Dropped
   * once the column shows more than INTERN_LIMIT distinct values.
   */
  intern: Map<string, string> | undefined = new Map();

  constructor(name: string, type: ColumnType | undefined) {
    this.name = name;
    this.type = type;
    this.forced = type !== undefined;
  }

  pushString(s: string | null): void {
    const m = this.intern;
    if (s !== null && m !== undefined) {
      const c = m.get(s);
      if (c !== undefined) s = c;
      else if (m.size < INTERN_LIMIT) m.set(s, s);
      else this.intern = undefined;
    }
    this.strs.push(s);
    this.length++;
  }

  pushNumber(x: number): void {
    if (this.length === this.nums.length) {
      const bigger = new Float64Array(this.nums.length * 2);
      bigger.set(this.nums);
      this.nums = bigger;
    }
    this.nums[this.length++] = x;
  }

  build(): Column {
    if (this.type === 'string') return { name: this.name, type: 'string', values: this.strs };
    return { name: this.name, type: this.type ?? 'number', values: this.nums.slice(0, this.length) };
  }
}

/**
 * True when `s` is a number whose value keeps all its meaning as a float: not an integer with a leading
 * zero (`007`, a code) or more than 15 digits (`4111111111111111`, an identifier that a double would
 * round), which type inference keeps as strings.
 */
export function isSafeNumber(s: string): boolean {
  return !Number.isNaN(parseNumber(s)) && !isCodeLike(s);
}

/** A number-shaped string that is really a code: integer digits with a leading zero or more than 15. */
function isCodeLike(s: string): boolean {
  const n = s.length;
  let i = 0;
  const c0 = s.charCodeAt(0);
  if (c0 === 43 || c0 === 45) i = 1;
  if (n - i <= 1) return false;
  const lead = s.charCodeAt(i) === 48;
  if (!lead && n - i <= 15) return false;
  for (let k = i; k < n; k++) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The type a raw value suggests: number, timestamp, or string. */
function valueType(s: string): ColumnType {
  if (isSafeNumber(s)) return 'number';
  if (!Number.isNaN(parseTimestamp(s))) return 'timestamp';
  return 'string';
}

function mergeType(a: ColumnType | undefined, b: ColumnType): ColumnType {
  if (a === undefined || a === b) return b;
  return 'string';
}

/**
 * Reads a whole CSV file into a {@link Dataset}, streaming: values go straight into typed columns.
 * Column types are inferred from the first `inferRows` rows (numbers, ISO timestamps, otherwise
 * strings; missing tokens are ignored); if a later value does not fit, the file is read a second time
 * with that column as strings. `types` fixes types instead (a misfit is `ERR_DATA_VALUE`).
 *
 * @example
 * ```ts
 * const ds = await readCsvDataset('adult.data', {
 *   header: false, columns: ADULT_COLUMNS, delimiter: ',', trim: true, missing: ['?'],
 * });
 * ```
 */
export async function readCsvDataset(path: string, opts: CsvDatasetOptions = {}): Promise<Dataset> {
  checkReadOptions(opts);
  const inferRows = opts.inferRows ?? 10_000;
  requireInteger('inferRows', inferRows, 1);
  await requireFile(path, 'CSV file');
  let forced: Record<string, ColumnType> = { ...(opts.types ?? {}) };
  for (const [k, t] of Object.entries(forced)) {
    if (t !== 'number' && t !== 'string' && t !== 'timestamp')
      throw invalidArgument(`types.${k}`, 'number, string or timestamp', t);
  }
  // Checked here: a number among the rewrites crashed the typing of every value with a TypeError.
  if (opts.valueMaps !== undefined) {
    if (typeof opts.valueMaps !== 'object' || opts.valueMaps === null)
      throw invalidArgument('valueMaps', 'an object of per-column rewrites', opts.valueMaps);
    for (const [col, m] of Object.entries(opts.valueMaps)) {
      if (typeof m !== 'object' || m === null) throw invalidArgument(`valueMaps.${col}`, 'an object', m);
      for (const [from, to] of Object.entries(m))
        if (typeof to !== 'string') throw invalidArgument(`valueMaps.${col}.${from}`, 'a string', to);
    }
  }
  // At most one extra pass per column: each pass turns at least one misfit column into strings.
  let firstDigest: string | undefined;
  for (let pass = 0; pass < 1000; pass++) {
    const hash = opts.onDigest ? createHash('sha256') : undefined;
    const passOpts: CsvDatasetOptions = hash
      ? {
          ...opts,
          onBytes: (c) => {
            hash.update(c);
            opts.onBytes?.(c);
          },
        }
      : opts;
    const r = await readPass(path, passOpts, forced, inferRows);
    if (hash) {
      const digest = `sha256:${hash.digest('hex')}`;
      firstDigest ??= digest;
      if (digest !== firstDigest)
        throw new BulwarkError(
          'ERR_FILE_CHANGED',
          `${basename(path)} changed while it was read (it is read again when a late value does not fit its column's inferred type, and the two reads differ)`,
          { details: { file: basename(path) } },
        );
      if (r.dataset) opts.onDigest?.(digest);
    }
    if (r.dataset) return r.dataset;
    forced = { ...forced, ...Object.fromEntries(r.misfits.map((m) => [m, 'string' as const])) };
  }
  throw new BulwarkError('ERR_INTERNAL', `type inference did not settle for ${path}`);
}

async function readPass(
  path: string,
  opts: CsvDatasetOptions,
  forced: Readonly<Record<string, ColumnType>>,
  inferRows: number,
): Promise<{ dataset?: Dataset; misfits: string[] }> {
  const file = basename(path);
  const missing = missingSet(opts);
  const max = opts.maxRows ?? Infinity;
  let builders: ColumnBuilder[] = [];
  // Value maps as Maps: a plain-object lookup would turn a value like "__proto__" into an object.
  let maps: (Map<string, string> | undefined)[] = [];
  let pending: string[][] | undefined = [];
  let pendingLines: number[] = [];
  let rows = 0;

  const accept = (rec: readonly string[], line: number): void => {
    for (let j = 0; j < builders.length; j++) {
      const b = builders[j]!;
      let s = rec[j]!;
      const map = maps[j];
      if (map !== undefined) s = map.get(s) ?? s;
      if (b.type === 'string') {
        b.pushString(missing.has(s) ? null : s);
        continue;
      }
      if (missing.has(s)) {
        b.pushNumber(Number.NaN);
        continue;
      }
      let x = b.type === 'timestamp' ? parseTimestamp(s) : parseNumber(s);
      if (!b.forced && b.type === 'number' && isCodeLike(s)) x = Number.NaN;
      if (Number.isNaN(x)) {
        if (b.forced) {
          throw new BulwarkError(
            'ERR_DATA_VALUE',
            `${file}:${line}: column "${b.name}": expected a ${b.type}`,
            {
              details: { file, line, field: b.name },
            },
          );
        }
        b.misfit = true;
      }
      b.pushNumber(x);
    }
    rows++;
  };

  const fixTypes = (): void => {
    const buffered = pending!;
    pending = undefined;
    for (let j = 0; j < builders.length; j++) {
      const b = builders[j]!;
      if (b.type !== undefined) continue;
      let t: ColumnType | undefined;
      const map = maps[j];
      for (const rec of buffered) {
        let s = rec[j]!;
        if (map !== undefined) s = map.get(s) ?? s;
        if (missing.has(s)) continue;
        t = mergeType(t, valueType(s));
        if (t === 'string') break;
      }
      b.type = t ?? 'string';
    }
    for (let i = 0; i < buffered.length; i++) accept(buffered[i]!, pendingLines[i]!);
    pendingLines = [];
  };

  const scan = startScan(path, opts, {
    header(cols) {
      builders = cols.map((c) => new ColumnBuilder(c, Object.hasOwn(forced, c) ? forced[c] : undefined));
      maps = cols.map((c) => {
        const m = opts.valueMaps && Object.hasOwn(opts.valueMaps, c) ? opts.valueMaps[c] : undefined;
        return m === undefined ? undefined : new Map(Object.entries(m));
      });
      for (const k of Object.keys(forced)) {
        if (!cols.includes(k) && opts.types?.[k] !== undefined) {
          throw new BulwarkError(
            'ERR_COLUMN_NOT_FOUND',
            `${file}: no column "${k}" (given a type); columns are: ${columnList(cols)}`,
            {
              details: { file, field: k },
            },
          );
        }
      }
    },
    row(rec, line) {
      if (rows + (pending?.length ?? 0) >= max) return false;
      opts.onRecord?.(rec, rows + (pending?.length ?? 0), line);
      if (pending !== undefined) {
        pending.push(rec);
        pendingLines.push(line);
        if (pending.length >= inferRows) fixTypes();
      } else {
        accept(rec, line);
      }
      return rows + (pending?.length ?? 0) < max;
    },
  });
  await scan.done;
  if (pending !== undefined) fixTypes();
  const misfits = builders.filter((b) => b.misfit).map((b) => b.name);
  if (misfits.length > 0) return { misfits };
  return {
    dataset: new Dataset(
      builders.map((b) => b.build()),
      rows,
    ),
    misfits,
  };
}

/** How to write a CSV file. */
export interface CsvWriteOptions extends AtomicWriteOptions {
  /** Field separator (default `,`). */
  delimiter?: string;
  /** Write a header line (default true). */
  header?: boolean;
  /** The text written for a missing value (default empty). */
  missing?: string;
}

/**
 * A CSV file being written row by row through csv-stringify into an {@link AtomicFileStream}: the file
 * appears under its name only on {@link CsvWriter.commit}; {@link CsvWriter.abort} or a failure leaves
 * nothing behind. Suits outputs too large to hold in memory (a million synthetic transactions).
 *
 * @example
 * ```ts
 * const w = await CsvWriter.create('out.csv', ['id', 'amount']);
 * try {
 *   await w.write(['1', 12.5]);
 *   await w.commit();
 * } catch (e) { await w.abort(); throw e; }
 * ```
 */
export class CsvWriter {
  readonly path: string;
  readonly columns: readonly string[];
  readonly #out: AtomicFileStream;
  readonly #stringifier: ReturnType<typeof stringify>;
  readonly #missing: string;
  #failure: unknown;
  #rows = 0;

  private constructor(
    path: string,
    columns: readonly string[],
    out: AtomicFileStream,
    opts: CsvWriteOptions,
  ) {
    this.path = path;
    this.columns = columns;
    this.#out = out;
    this.#missing = opts.missing ?? '';
    this.#stringifier = stringify({
      delimiter: opts.delimiter ?? ',',
      header: opts.header !== false,
      columns: [...columns],
      eof: true,
      // A value starting with U+FEFF at the very start of the file would read back without it (a
      // reader takes it for the byte-order mark): quoted, it is not at the start.
      quoted_match: /^\ufeff/,
    });
    this.#stringifier.on('error', (e) => {
      this.#failure ??= e;
    });
    out.stream.on('error', (e) => {
      this.#failure ??= e;
    });
    this.#stringifier.pipe(out.stream, { end: false });
  }

  /** Opens `path` for writing (through a temporary file) with the given header. */
  static async create(
    path: string,
    columns: readonly string[],
    opts: CsvWriteOptions = {},
  ): Promise<CsvWriter> {
    checkNames(columns, 'columns');
    if (opts.delimiter !== undefined && (typeof opts.delimiter !== 'string' || opts.delimiter.length === 0))
      throw invalidArgument('delimiter', 'a non-empty string', opts.delimiter);
    // Such a file could not be read back: its records and quoting would be ambiguous.
    if (opts.delimiter !== undefined && /["\r\n]/.test(opts.delimiter))
      throw invalidArgument('delimiter', 'no quote or line-end character', opts.delimiter);
    if (opts.missing !== undefined && (typeof opts.missing !== 'string' || /["\r\n]/.test(opts.missing)))
      throw invalidArgument('missing', 'a string with no quote or line end', opts.missing);
    const out = await AtomicFileStream.create(path, opts);
    return new CsvWriter(path, columns, out, opts);
  }

  /** The number of rows written so far. */
  get rowCount(): number {
    return this.#rows;
  }

  /** Writes one row (numbers as their shortest round-trip text; null, undefined and NaN as missing). */
  async write(row: readonly (string | number | null | undefined)[]): Promise<void> {
    if (this.#failure !== undefined) throw fsError(this.#failure, this.path, 'cannot write CSV');
    if (row.length !== this.columns.length) {
      throw invalidArgument(`row ${this.#rows}`, `${this.columns.length} values`, `${row.length} values`);
    }
    // -0 as "-0": String(-0) is "0", and a "-0" read back would not be written as it was read.
    const cells = row.map((v) =>
      v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))
        ? this.#missing
        : Object.is(v, -0)
          ? '-0'
          : String(v),
    );
    this.#rows++;
    if (!this.#stringifier.write(cells)) {
      await new Promise<void>((resolve) => this.#stringifier.once('drain', resolve));
    }
  }

  /** Flushes, fsyncs and renames the file into place. */
  async commit(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#stringifier.once('error', reject);
      this.#stringifier.once('end', resolve);
      this.#stringifier.end();
    }).catch((e: unknown) => {
      this.#failure ??= e;
    });
    if (this.#failure !== undefined) {
      await this.#out.abort();
      throw fsError(this.#failure, this.path, 'cannot write CSV');
    }
    await this.#out.commit();
  }

  /** Discards the output; the target file is left as it was. */
  async abort(): Promise<void> {
    this.#stringifier.destroy();
    await this.#out.abort();
  }
}

/**
 * Writes a dataset as CSV atomically (temporary file, fsync, rename): numbers in shortest round-trip
 * form, timestamps as ISO 8601, missing values as `missing` (default empty).
 */
export async function writeCsv(path: string, ds: Dataset, opts: CsvWriteOptions = {}): Promise<void> {
  const w = await CsvWriter.create(path, ds.columnNames, opts);
  try {
    const cols = ds.columns;
    const row = new Array<string | number | null>(cols.length);
    for (let i = 0; i < ds.rowCount; i++) {
      for (let j = 0; j < cols.length; j++) {
        const c = cols[j]!;
        if (c.type === 'timestamp') {
          const t = c.values[i]!;
          row[j] = Number.isNaN(t) ? null : formatTimestamp(t);
        } else {
          row[j] = c.values[i]!;
        }
      }
      await w.write(row);
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}
