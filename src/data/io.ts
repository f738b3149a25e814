import { extname } from 'node:path';
import { type AtomicWriteOptions, BulwarkError, invalidArgument } from '../core/index.js';
import { type CsvDatasetOptions, type CsvWriteOptions, readCsvDataset, writeCsv } from './csv.js';
import type { Dataset } from './dataset.js';
import { readParquet, writeParquet } from './parquet.js';

/** File formats the data layer reads and writes. */
export type DataFormat = 'csv' | 'parquet';

/**
 * The format of a data file from its extension (`.csv`, `.tsv` as CSV with tabs, `.parquet`, `.pq`);
 * anything else is `ERR_FORMAT_UNSUPPORTED`.
 */
export function formatOf(path: string): DataFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv' || ext === '.tsv' || ext === '.txt') return 'csv';
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  throw new BulwarkError(
    'ERR_FORMAT_UNSUPPORTED',
    `cannot tell the format of ${path} from its extension "${ext || '(none)'}"; use .csv or .parquet`,
    { details: { path } },
  );
}

/**
 * Reads a CSV or Parquet file (by extension) into a dataset. CSV options apply to CSV files only; a
 * `.tsv` file defaults to a tab delimiter.
 *
 * @example
 * ```ts
 * const ds = await readDataset('transactions.parquet');
 * ```
 */
export async function readDataset(path: string, csv: CsvDatasetOptions = {}): Promise<Dataset> {
  const format = formatOf(path);
  if (format === 'parquet') return readParquet(path, csv.onDigest ? { onDigest: csv.onDigest } : {});
  const opts =
    extname(path).toLowerCase() === '.tsv' && csv.delimiter === undefined ? { ...csv, delimiter: '\t' } : csv;
  return readCsvDataset(path, opts);
}

/**
 * {@link readDataset} with the SHA-256 of exactly the bytes parsed (`sha256:<hex>`, as
 * `dataset.protected` audit events record it). Hashing the path again after reading it could hash
 * another file, swapped in between: the digest a provenance check or an audit event relies on must be
 * of the data the model was trained on.
 */
export async function readDatasetWithDigest(
  path: string,
  csv: CsvDatasetOptions = {},
): Promise<{ dataset: Dataset; digest: string }> {
  if (csv.maxRows !== undefined)
    throw invalidArgument('maxRows', 'no row limit (the digest is of the whole file)', csv.maxRows);
  let digest: string | undefined;
  const onDigest = (d: string): void => {
    digest = d;
  };
  const dataset = await readDataset(path, { ...csv, onDigest });
  if (digest === undefined) throw new BulwarkError('ERR_INTERNAL', `no digest was taken of ${path}`);
  return { dataset, digest };
}

/** Writes a dataset as CSV or Parquet (by extension), atomically. */
export async function writeDataset(
  path: string,
  ds: Dataset,
  opts: CsvWriteOptions & AtomicWriteOptions = {},
): Promise<void> {
  if (formatOf(path) === 'parquet') return writeParquet(path, ds, opts);
  const o =
    extname(path).toLowerCase() === '.tsv' && opts.delimiter === undefined
      ? { ...opts, delimiter: '\t' }
      : opts;
  return writeCsv(path, ds, o);
}
