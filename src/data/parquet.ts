import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
// Types only: the Parquet libraries are loaded by readParquet and writeParquet when they run, not by
// every start of the CLI that imports this module (about a hundred files between them).
import type { AsyncBuffer, DecodedArray, FileMetaData, SchemaElement } from 'hyparquet';
import type { ColumnSource } from 'hyparquet-writer';
import {
  type AtomicWriteOptions,
  BulwarkError,
  fsError,
  requireFile,
  writeFileAtomic,
} from '../core/index.js';
import { type Column, columnList, Dataset } from './dataset.js';

/**
 * Parquet reading (hyparquet) and writing (hyparquet-writer) to and from {@link Dataset}. Only flat
 * schemas are read: numbers (INT32, INT64, FLOAT, DOUBLE, BOOLEAN as 0/1), UTF-8 strings, and
 * timestamps and dates (as epoch ms). An INT64 column with a value beyond ±2^53 (an identifier a double
 * would round) is read as decimal strings; bytes that are not UTF-8 in a string column, and a footer
 * whose row counts disagree with each other or with the data, are `ERR_PARQUET_READ`. Bulwark writes numbers as DOUBLE, strings as UTF-8, timestamps as
 * TIMESTAMP_MILLIS, all nullable, atomically (temporary file, fsync, rename).
 */

/** Options of {@link readParquet}. */
export interface ParquetReadOptions {
  /** Read only these columns (default all). */
  columns?: readonly string[];
  /** Gets `sha256:<hex>` of the bytes the dataset was built from (the file is read once). */
  onDigest?: (digest: string) => void;
}

function readError(file: string, what: string, cause?: unknown): BulwarkError {
  return new BulwarkError('ERR_PARQUET_READ', `${file}: ${what}`, { cause, details: { file } });
}

/**
 * Reads a Parquet file into a dataset.
 *
 * @example
 * ```ts
 * const ds = await readParquet('tx.parquet', { columns: ['amount', 'is_fraud'] });
 * ```
 */
export async function readParquet(path: string, opts: ParquetReadOptions = {}): Promise<Dataset> {
  const file = basename(path);
  await requireFile(path, 'Parquet file');
  const { parquetMetadataAsync, parquetRead, parquetSchema } = await import('hyparquet');
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw fsError(e, path, 'cannot read Parquet');
  }
  if (opts.onDigest) opts.onDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const buffer: AsyncBuffer = { byteLength: ab.byteLength, slice: (start, end) => ab.slice(start, end) };
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw readError(file, `not a readable Parquet file (${e instanceof Error ? e.message : String(e)})`, e);
  }
  const tree = parquetSchema(metadata);
  const fields = new Map<string, SchemaElement>();
  for (const child of tree.children) {
    if (child.children.length > 0) {
      throw readError(file, `column "${child.element.name}" is nested; only flat tables are read`);
    }
    // Two columns of one name would be read into one array, their values mixed.
    if (fields.has(child.element.name) || child.element.name === '')
      throw readError(file, `column name "${child.element.name}" is empty or not unique`);
    fields.set(child.element.name, child.element);
  }
  const names = opts.columns ? [...opts.columns] : [...fields.keys()];
  for (const n of names) {
    if (!fields.has(n)) {
      throw new BulwarkError(
        'ERR_COLUMN_NOT_FOUND',
        `${file}: no column "${n}"; columns are: ${columnList([...fields.keys()])}`,
        { details: { file, field: n } },
      );
    }
  }
  const rows = checkRowCounts(metadata, file);
  const kinds = new Map(names.map((n) => [n, kindOf(fields.get(n)!, file)]));
  // Each column's values are kept chunk by chunk as hyparquet decodes them and put together at the
  // end, once they are known to cover exactly the rows the footer declares: arrays are never sized
  // from the file's word alone (a forged row count would allocate gigabytes from a small file).
  const chunks = new Map<string, Array<{ start: number; values: Float64Array | (string | null)[] }>>();
  /** INT64 columns holding a value a double cannot hold exactly: read again as decimal strings. */
  const unsafe = new Set<string>();
  const read = async (columns: string[]): Promise<void> => {
    for (const n of columns) chunks.set(n, []);
    let failure: BulwarkError | undefined;
    try {
      await parquetRead({
        file: buffer,
        metadata,
        columns,
        parsers: PARSERS,
        onChunk: ({ columnName, columnData, rowStart, rowEnd }) => {
          if (failure) return;
          try {
            if (rowStart < 0 || rowEnd > rows || columnData.length !== rowEnd - rowStart)
              throw readError(
                file,
                `column "${columnName}": values for rows ${rowStart}-${rowEnd} of ${rows}`,
              );
            chunks
              .get(columnName)
              ?.push({ start: rowStart, values: convert(columnName, columnData, rowStart) });
          } catch (e) {
            failure ??= e instanceof BulwarkError ? e : readError(file, String(e), e);
          }
        },
      });
    } catch (e) {
      throw readError(file, `cannot decode (${e instanceof Error ? e.message : String(e)})`, e);
    }
    if (failure) throw failure;
  };
  await read(names);
  if (unsafe.size > 0) {
    for (const n of unsafe) kinds.set(n, 'string');
    await read([...unsafe]);
  }

  /** One decoded chunk in the column's representation (`start` numbers rows in messages). */
  function convert(name: string, data: DecodedArray, start: number): Float64Array | (string | null)[] {
    const kind = kinds.get(name);
    if (kind === 'string') {
      const out = new Array<string | null>(data.length);
      for (let k = 0; k < data.length; k++) {
        const v: unknown = data[k];
        if (v === null || v === undefined) out[k] = null;
        else if (typeof v === 'string') out[k] = v;
        else if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
        else if (v === INVALID_UTF8)
          throw readError(file, `row ${start + k + 1} column "${name}": invalid UTF-8`);
        else
          throw readError(
            file,
            `row ${start + k + 1} column "${name}": unsupported value of type ${typeof v}`,
          );
      }
      return out;
    }
    const out = new Float64Array(data.length);
    for (let k = 0; k < data.length; k++) {
      const v: unknown = data[k];
      if (typeof v === 'bigint' && (v > MAX_EXACT || v < -MAX_EXACT)) unsafe.add(name);
      const x = toNumber(v, name, start + k, file);
      // A timestamp is written back as ISO 8601 text, which has four-digit years.
      if (kind === 'timestamp' && (x < MIN_TIME || x > MAX_TIME))
        throw readError(
          file,
          `row ${start + k + 1} column "${name}": a timestamp outside the years 0000-9999`,
        );
      out[k] = x;
    }
    return out;
  }

  /** The column's chunks in row order, checked to cover rows 0..rows exactly once. */
  function assemble(name: string): Column {
    const parts = chunks.get(name)!.sort((x, y) => x.start - y.start);
    let next = 0;
    for (const p of parts) {
      if (p.start !== next) break;
      next += p.values.length;
    }
    if (next !== rows || parts.reduce((t, p) => t + p.values.length, 0) !== rows)
      throw readError(
        file,
        `column "${name}" does not hold one value for each of the ${rows} rows the file declares`,
      );
    const kind = kinds.get(name)!;
    if (kind === 'string') {
      const values: (string | null)[] = [];
      for (const p of parts) for (const v of p.values as (string | null)[]) values.push(v);
      return { name, type: 'string', values };
    }
    const values = new Float64Array(rows);
    for (const p of parts) values.set(p.values as Float64Array, p.start);
    return { name, type: kind, values };
  }

  return new Dataset(names.map(assemble), rows);
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_TIME = Date.parse('0000-01-01T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z');

/** What the string parser returns for bytes that are not UTF-8 (fillChunk names row and column). */
const INVALID_UTF8: unique symbol = Symbol('invalid UTF-8');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
function utf8Text(bytes: Uint8Array | undefined): string | typeof INVALID_UTF8 | undefined {
  if (!bytes) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return INVALID_UTF8;
  }
}

/**
 * hyparquet's parsers, replaced where the defaults lose data: their string decoder turns invalid UTF-8
 * into U+FFFD, JSON columns became "[object Object]", and timestamps went through `Date`, whose range
 * ends at ±8.64e15 ms (a value beyond read as missing). Timestamps are epoch ms here, as in a Dataset.
 */
const PARSERS = {
  stringFromBytes: utf8Text,
  jsonFromBytes: utf8Text,
  timestampFromMilliseconds: (ms: bigint) => Number(ms),
  timestampFromMicroseconds: (us: bigint) => Number(us / 1000n),
  timestampFromNanoseconds: (ns: bigint) => Number(ns / 1_000_000n),
  dateFromDays: (days: number) => days * 86_400_000,
};

/**
 * The row count the footer declares, checked against its row groups' counts: the file's own word on
 * its size is what the column arrays are allocated from, so a lie would crash the allocation
 * (negative or huge), pad the table with missing rows, or cut rows off without a word.
 */
function checkRowCounts(metadata: FileMetaData, file: string): number {
  const rows = metadata.num_rows;
  let sum = 0n;
  for (const g of metadata.row_groups) {
    if (g.num_rows < 0n) throw readError(file, `a row group declares ${g.num_rows} rows`);
    sum += g.num_rows;
  }
  if (rows < 0n || rows > MAX_EXACT) throw readError(file, `the file declares ${rows} rows`);
  if (sum !== rows)
    throw readError(file, `the file declares ${rows} rows but its row groups hold ${sum} in all`);
  return Number(rows);
}

function toNumber(v: unknown, name: string, row: number, file: string): number {
  if (v === null || v === undefined) return Number.NaN;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.getTime();
  throw readError(file, `row ${row + 1} column "${name}": unsupported value of type ${typeof v}`);
}

function kindOf(e: SchemaElement, file: string): Column['type'] {
  const logical = e.logical_type?.type;
  const conv = e.converted_type;
  if (
    logical === 'TIMESTAMP' ||
    logical === 'DATE' ||
    conv === 'TIMESTAMP_MILLIS' ||
    conv === 'TIMESTAMP_MICROS' ||
    conv === 'DATE'
  ) {
    return 'timestamp';
  }
  if (e.type === 'INT96') return 'timestamp';
  switch (e.type) {
    case 'BOOLEAN':
    case 'INT32':
    case 'INT64':
    case 'FLOAT':
    case 'DOUBLE':
      return 'number';
    case 'BYTE_ARRAY':
    case 'FIXED_LEN_BYTE_ARRAY':
      if (conv === 'DECIMAL' || logical === 'DECIMAL') return 'number';
      return 'string';
    default:
      throw readError(file, `column "${e.name}" has unsupported type ${String(e.type)}`);
  }
}

/**
 * Writes a dataset as Parquet, atomically. Numbers are DOUBLE (NaN written as null), strings UTF-8,
 * timestamps TIMESTAMP_MILLIS; every column is nullable.
 *
 * @example
 * ```ts
 * await writeParquet('tx.parquet', ds);
 * ```
 */
export async function writeParquet(path: string, ds: Dataset, opts: AtomicWriteOptions = {}): Promise<void> {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const columnData: ColumnSource[] = ds.columns.map((c) => {
    if (c.type === 'string') return { name: c.name, data: [...c.values], type: 'STRING', nullable: true };
    if (c.type === 'timestamp') {
      return {
        name: c.name,
        data: Array.from(c.values, (t) => (Number.isNaN(t) ? null : new Date(t))),
        type: 'TIMESTAMP',
        nullable: true,
      };
    }
    return {
      name: c.name,
      data: Array.from(c.values, (x) => (Number.isNaN(x) ? null : x)),
      type: 'DOUBLE',
      nullable: true,
    };
  });
  let buf: ArrayBuffer;
  try {
    buf = parquetWriteBuffer({ columnData, createdBy: 'bulwark' });
  } catch (e) {
    throw new BulwarkError('ERR_INTERNAL', `cannot encode Parquet for ${basename(path)}: ${String(e)}`, {
      cause: e,
    });
  }
  await writeFileAtomic(path, new Uint8Array(buf), opts);
}
