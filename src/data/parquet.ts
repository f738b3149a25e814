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
import { type Column, Dataset } from './dataset.js';

/**
 * Parquet reading (hyparquet) and writing (hyparquet-writer) to and from {@link Dataset}. Only flat
 * schemas are read: numbers (INT32, INT64, FLOAT, DOUBLE, BOOLEAN as 0/1), UTF-8 strings, and
 * timestamps and dates (as epoch ms). Bulwark writes numbers as DOUBLE, strings as UTF-8, timestamps as
 * TIMESTAMP_MILLIS, all nullable, atomically (temporary file, fsync, rename).
 */

/** Options of {@link readParquet}. */
export interface ParquetReadOptions {
  /** Read only these columns (default all). */
  columns?: readonly string[];
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
    fields.set(child.element.name, child.element);
  }
  const names = opts.columns ? [...opts.columns] : [...fields.keys()];
  for (const n of names) {
    if (!fields.has(n)) {
      throw new BulwarkError(
        'ERR_COLUMN_NOT_FOUND',
        `${file}: no column "${n}"; columns are: ${[...fields.keys()].join(', ')}`,
        { details: { file, field: n } },
      );
    }
  }
  const rows = Number(metadata.num_rows);
  const kinds = new Map(names.map((n) => [n, kindOf(fields.get(n)!, file)]));
  const nums = new Map<string, Float64Array>();
  const strs = new Map<string, (string | null)[]>();
  for (const n of names) {
    if (kinds.get(n) === 'string') strs.set(n, new Array<string | null>(rows).fill(null));
    else nums.set(n, new Float64Array(rows).fill(Number.NaN));
  }
  let failure: BulwarkError | undefined;
  try {
    await parquetRead({
      file: buffer,
      metadata,
      columns: names,
      onChunk: ({ columnName, columnData, rowStart, rowEnd }) => {
        try {
          fillChunk(columnName, columnData, rowStart, Math.min(rowEnd, rows));
        } catch (e) {
          failure ??= e instanceof BulwarkError ? e : readError(file, String(e), e);
        }
      },
    });
  } catch (e) {
    throw readError(file, `cannot decode (${e instanceof Error ? e.message : String(e)})`, e);
  }
  if (failure) throw failure;

  function fillChunk(name: string, data: DecodedArray, start: number, end: number): void {
    const kind = kinds.get(name);
    if (kind === undefined) return;
    if (kind === 'string') {
      const out = strs.get(name)!;
      for (let i = start; i < end; i++) {
        const v: unknown = data[i - start];
        if (v === null || v === undefined) out[i] = null;
        else if (typeof v === 'string') out[i] = v;
        else if (v instanceof Uint8Array) out[i] = new TextDecoder().decode(v);
        else out[i] = String(v);
      }
      return;
    }
    const out = nums.get(name)!;
    for (let i = start; i < end; i++) {
      const v: unknown = data[i - start];
      out[i] = toNumber(v, name, i, file);
    }
  }

  const columns: Column[] = names.map((n) => {
    const k = kinds.get(n)!;
    if (k === 'string') return { name: n, type: 'string', values: strs.get(n)! };
    return { name: n, type: k, values: nums.get(n)! };
  });
  return new Dataset(columns, rows);
}

function toNumber(v: unknown, name: string, row: number, file: string): number {
  if (v === null || v === undefined) return Number.NaN;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.getTime();
  throw readError(file, `row ${row} column "${name}": unsupported value of type ${typeof v}`);
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
