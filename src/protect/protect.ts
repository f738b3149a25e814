import { randomBytes, randomFillSync } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { BulwarkError, invalidArgument, requireInteger } from '../core/index.js';
import { type CsvReader, isPersonal, openCsv, type Schema } from '../data/index.js';
import { DataKey, DEK_MAX_MESSAGES, GCM_NONCE_BYTES, type Keyring } from '../keys/index.js';
import { CsvOut } from './csv-out.js';
import { BlindIndex, ColumnKeys, MODE_DETERMINISTIC, MODE_SUBJECT } from './format.js';
import {
  dekContext,
  type Manifest,
  type ManifestColumn,
  manifestMac,
  type ProtectMode,
  RowDigest,
  writeManifest,
} from './manifest.js';
import type { SubjectKeyStore } from './subjects.js';

/**
 * Field-level protection of CSV datasets, streaming (memory stays bounded whatever the file size):
 * `protectCsv` encrypts the personal columns a schema marks (every other column is kept as it was),
 * `revealCsv` decrypts them for a key holder, `rewrapProtected` rotates the KEK without touching the
 * data, `reencryptCsv` draws new data keys and re-encrypts.
 */

/** The column added for the data-subject handle when values are subject-keyed. */
export const SUBJECT_HANDLE_COLUMN = 'bulwark_subject';
/** Suffix of the column added for a blind index. */
export const BLIND_INDEX_SUFFIX = '_bidx';

export interface ProtectOptions {
  /** The dataset's schema: its `personal` and `sensitive` fields are protected. */
  schema: Schema;
  keyring: Keyring;
  /** KEK id wrapping the data keys (default `data`). */
  keyId?: string;
  /** Protect exactly these columns instead of the schema's personal ones. */
  columns?: readonly string[];
  /** Columns encrypted deterministically (AES-SIV): equal values stay equal, for joins and lookups. */
  deterministic?: readonly string[];
  /** Columns that also get an HMAC blind index column `NAME_bidx`. */
  blindIndex?: readonly string[];
  /**
   * A column whose values identify rows stably (e.g. a transaction id): bound into each value's
   * associated data instead of the row number, so rows may be re-ordered. It must be unprotected or
   * deterministic.
   */
  rowKey?: string;
  /** Per-subject keys: the column naming the data subject, and the store of their keys. */
  subjects?: { column: string; store: SubjectKeyStore };
  /** Accept CSV columns the schema does not declare (default false: they may be personal data). */
  allowExtraColumns?: boolean;
  /** Values one data key encrypts before the next is drawn (default 2^30; tests use small ones). */
  dekMaxUses?: number;
  /** Where the manifest goes (default `OUTPUT.bulwark.json`). */
  manifestPath?: string;
  /** Called every 10,000 rows with the rows done. */
  onProgress?: (rows: number) => void;
}

/** What one protected column did. */
export type ProtectedColumnReport = ManifestColumn;

export interface ProtectReport {
  output: string;
  manifest: string;
  dataset: string;
  rows: number;
  columns: ProtectedColumnReport[];
  /** Data keys drawn (a new one each `dekMaxUses` randomized values). */
  dataKeys: number;
  /** Subjects seen (subject-keyed runs). */
  subjects?: number;
  /** Columns kept as they were. */
  kept: string[];
}

interface ColumnPlan {
  index: number;
  name: string;
  mode: ProtectMode;
  subject: boolean;
  modeBits: number;
  blindIndexColumn: string | null;
  blindIndexAt: number;
  report: ManifestColumn;
  /** Column keys per dataset key generation. */
  byGen: Map<number, ColumnKeys>;
  bidx?: BlindIndex;
}

/** Default manifest path of a protected file. */
export function manifestPathOf(output: string): string {
  return `${output}.bulwark.json`;
}

/** A pool of random nonces drawn in bulk (one CSPRNG call per 4096 values). */
class NoncePool {
  #buf = Buffer.alloc(GCM_NONCE_BYTES * 4096);
  #off = this.#buf.length;
  next(): Buffer {
    if (this.#off === this.#buf.length) {
      this.#buf = randomFillSync(Buffer.allocUnsafe(this.#buf.length));
      this.#off = 0;
    }
    const n = this.#buf.subarray(this.#off, this.#off + GCM_NONCE_BYTES);
    this.#off += GCM_NONCE_BYTES;
    return n;
  }
}

/** A bounded cache of derived column keys for subject keys. */
class KeyCache {
  readonly #m = new Map<string, ColumnKeys>();
  get(k: string, make: () => ColumnKeys): ColumnKeys {
    let v = this.#m.get(k);
    if (!v) {
      if (this.#m.size >= 65536) {
        for (const c of this.#m.values()) c.destroy();
        this.#m.clear();
      }
      v = make();
      this.#m.set(k, v);
    }
    return v;
  }
  clear(): void {
    for (const c of this.#m.values()) c.destroy();
    this.#m.clear();
  }
}

function schemaMismatch(file: string, what: string, field: string): BulwarkError {
  return new BulwarkError('ERR_SCHEMA_MISMATCH', `${file}: ${what}`, { details: { file, field } });
}

/** Validates options against the CSV header and builds the column plan. */
function planColumns(
  header: readonly string[],
  opts: ProtectOptions,
  file: string,
): { plans: ColumnPlan[]; outputColumns: string[]; rowKeyAt: number; subjectAt: number; handleAt: number } {
  const schema = opts.schema;
  const names = new Set(header);
  for (const f of schema.fields) {
    if (!names.has(f.name))
      throw schemaMismatch(file, `the schema's column "${f.name}" is absent from the data`, f.name);
  }
  const declared = new Map(schema.fields.map((f) => [f.name, f]));
  if (!opts.allowExtraColumns) {
    for (const h of header) {
      if (!declared.has(h))
        throw schemaMismatch(
          file,
          `column "${h}" is not declared in the schema (it may hold personal data)`,
          h,
        );
    }
  }
  const chosen = opts.columns ? [...opts.columns] : schema.fields.filter(isPersonal).map((f) => f.name);
  for (const c of [...chosen, ...(opts.deterministic ?? []), ...(opts.blindIndex ?? [])]) {
    if (!names.has(c)) throw schemaMismatch(file, `column "${c}" is absent from the data`, c);
  }
  const det = new Set(opts.deterministic ?? []);
  const bidx = new Set(opts.blindIndex ?? []);
  for (const c of det)
    if (!chosen.includes(c)) throw invalidArgument('deterministic', 'protected columns', c);
  for (const c of bidx) if (!chosen.includes(c)) throw invalidArgument('blindIndex', 'protected columns', c);
  const subject = opts.subjects !== undefined;
  if (subject && bidx.size > 0) {
    throw invalidArgument(
      'blindIndex',
      'no blind index with per-subject keys (it would survive erasure)',
      [...bidx].join(','),
    );
  }
  const outputColumns = [...header];
  const plans: ColumnPlan[] = [];
  for (const name of chosen) {
    const f = declared.get(name);
    const mode: ProtectMode = det.has(name) ? 'deterministic' : 'randomized';
    const bi = bidx.has(name) ? `${name}${BLIND_INDEX_SUFFIX}` : null;
    if (bi && names.has(bi))
      throw invalidArgument('blindIndex', `a column name not already used (${bi})`, name);
    if (bi) outputColumns.push(bi);
    plans.push({
      index: header.indexOf(name),
      name,
      mode,
      subject,
      modeBits: (mode === 'deterministic' ? MODE_DETERMINISTIC : 0) | (subject ? MODE_SUBJECT : 0),
      blindIndexColumn: bi,
      blindIndexAt: bi ? outputColumns.length - 1 : -1,
      report: {
        name,
        mode,
        keyed: subject ? 'subject' : 'dataset',
        blindIndex: bi,
        sensitivity: f?.sensitivity ?? 'personal',
        pii: f?.pii ?? null,
        values: 0,
        missing: 0,
      },
      byGen: new Map(),
    });
  }
  if (plans.length === 0)
    throw invalidArgument('columns', 'at least one column to protect (the schema marks none personal)', 0);
  let rowKeyAt = -1;
  if (opts.rowKey !== undefined) {
    rowKeyAt = header.indexOf(opts.rowKey);
    if (rowKeyAt < 0)
      throw schemaMismatch(file, `the row key column "${opts.rowKey}" is absent`, opts.rowKey);
    const p = plans.find((x) => x.index === rowKeyAt);
    if (p && p.mode === 'randomized') {
      throw invalidArgument('rowKey', 'an unprotected or deterministic column', opts.rowKey);
    }
    // The row key is encrypted first: the others bind its stored text.
    if (p) plans.sort((a, b) => (a === p ? -1 : b === p ? 1 : 0));
  }
  let subjectAt = -1;
  let handleAt = -1;
  if (opts.subjects) {
    subjectAt = header.indexOf(opts.subjects.column);
    if (subjectAt < 0)
      throw schemaMismatch(
        file,
        `the subject column "${opts.subjects.column}" is absent`,
        opts.subjects.column,
      );
    if (names.has(SUBJECT_HANDLE_COLUMN))
      throw invalidArgument('subjects', `data without a "${SUBJECT_HANDLE_COLUMN}" column`, file);
    outputColumns.push(SUBJECT_HANDLE_COLUMN);
    handleAt = outputColumns.length - 1;
  }
  return { plans, outputColumns, rowKeyAt, subjectAt, handleAt };
}

/**
 * Protects a CSV file: every column the schema marks personal or sensitive is encrypted cell by cell
 * (see format.ts), every other column is written as it was, and a manifest records what was done.
 * The output and the manifest appear only when the whole file succeeded.
 *
 * @example
 * ```ts
 * const report = await protectCsv('tx.csv', 'tx.protected.csv', { schema, keyring, rowKey: 'transaction_id' });
 * ```
 */
export async function protectCsv(
  input: string,
  output: string,
  opts: ProtectOptions,
): Promise<ProtectReport> {
  requireInteger('dekMaxUses', opts.dekMaxUses ?? DEK_MAX_MESSAGES, 1, DEK_MAX_MESSAGES);
  opts.keyring.primaryVersion(opts.keyId ?? 'data');
  return protectRows(await openCsv(input), basename(input), output, opts);
}

/** {@link protectCsv} on rows from any reader (re-encryption feeds it revealed rows). */
export async function protectRows(
  reader: CsvReader,
  file: string,
  output: string,
  opts: ProtectOptions,
): Promise<ProtectReport> {
  const maxUses = requireInteger('dekMaxUses', opts.dekMaxUses ?? DEK_MAX_MESSAGES, 1, DEK_MAX_MESSAGES);
  const keyId = opts.keyId ?? 'data';
  opts.keyring.primaryVersion(keyId);
  const plan = planColumns(reader.columns, opts, file);
  const dataset = randomBytes(16);
  const datasetHex = dataset.toString('hex');
  const manifestPath = opts.manifestPath ?? manifestPathOf(output);
  const deks: Manifest['deks'] = [];
  let current: DataKey | undefined;
  let dek0: Buffer | undefined;
  let rowDigest: RowDigest | undefined;
  const newGeneration = async (): Promise<void> => {
    const generation = deks.length;
    const key = DataKey.generate({ maxUses });
    const wrapped = await opts.keyring.wrapKey(
      keyId,
      key.bytesForDecryption(),
      dekContext(datasetHex, generation),
    );
    if (current) {
      deks[deks.length - 1]!.uses = current.uses;
      current.destroy();
    }
    deks.push({ generation, uses: 0, wrapped });
    if (generation === 0) {
      dek0 = Buffer.from(key.bytesForDecryption());
      rowDigest = new RowDigest(dek0, datasetHex, opts.rowKey === undefined);
    }
    for (const p of plan.plans) {
      if (p.subject) continue;
      // Deterministic values and blind indexes always use generation 0: they must stay comparable.
      if (p.mode === 'deterministic' && generation > 0) continue;
      p.byGen.set(
        generation,
        new ColumnKeys(key.bytesForDecryption(), dataset, p.name, generation, p.modeBits),
      );
      if (generation === 0 && p.blindIndexColumn)
        p.bidx = new BlindIndex(key.bytesForDecryption(), dataset, p.name);
    }
    current = key;
  };
  await newGeneration();
  const nonces = new NoncePool();
  const subjectKeys = new KeyCache();
  const store = opts.subjects?.store;
  const randomizedDataset = plan.plans.filter((p) => !p.subject && p.mode === 'randomized');
  if (maxUses < randomizedDataset.length) {
    throw invalidArgument(
      'dekMaxUses',
      `at least the ${randomizedDataset.length} values of one row`,
      maxUses,
    );
  }
  const writer = await CsvOut.create(output, plan.outputColumns);
  const width = plan.outputColumns.length;
  const handles = new Set<string>();
  let rows = 0;
  try {
    for await (const row of reader) {
      const v = row.values;
      const out: (string | null)[] = new Array(width);
      for (let j = 0; j < v.length; j++) out[j] = v[j]!;
      let handle = '';
      let sk: { generation: number; bytes: Buffer } | undefined;
      if (store) {
        const id = v[plan.subjectAt];
        if (id === null || id === undefined) {
          throw new BulwarkError(
            'ERR_DATA_VALUE',
            `${file}:${row.line}: the subject column "${opts.subjects!.column}" is empty`,
            {
              details: { file, line: row.line, field: opts.subjects!.column },
            },
          );
        }
        handle = store.handleOf(id);
        handles.add(handle);
        out[plan.handleAt] = handle;
        let n = 0;
        for (const p of plan.plans) if (p.mode === 'randomized' && v[p.index] !== null) n++;
        sk = store.keyForEncryption(handle, Math.max(n, 1));
      }
      if (randomizedDataset.length > 0) {
        let n = 0;
        for (const p of randomizedDataset) if (v[p.index] !== null) n++;
        if (current!.useForEncryption(n) === undefined) {
          await newGeneration();
          current!.useForEncryption(n);
        }
      }
      let rowKey = String(row.index);
      if (plan.rowKeyAt >= 0) {
        const rk = v[plan.rowKeyAt];
        if (rk === null || rk === undefined) {
          throw new BulwarkError(
            'ERR_DATA_VALUE',
            `${file}:${row.line}: the row key "${opts.rowKey}" is empty`,
            {
              details: { file, line: row.line, field: opts.rowKey ?? '' },
            },
          );
        }
        rowKey = rk;
      }
      for (const p of plan.plans) {
        const value = v[p.index];
        if (value === null || value === undefined) {
          p.report.missing++;
          continue;
        }
        let keys: ColumnKeys;
        if (p.subject) {
          const s = sk!;
          keys = subjectKeys.get(
            `${handle}/${s.generation}/${p.name}`,
            () => new ColumnKeys(s.bytes, dataset, p.name, s.generation, p.modeBits),
          );
        } else {
          keys = p.byGen.get(p.mode === 'deterministic' ? 0 : deks.length - 1)!;
        }
        out[p.index] = keys.encrypt(
          value,
          rowKey,
          p.mode === 'randomized' ? nonces.next() : undefined,
          handle,
        );
        if (p.bidx) out[p.blindIndexAt] = p.bidx.of(value);
        p.report.values++;
        if (p.index === plan.rowKeyAt) rowKey = out[p.index]!;
      }
      rowDigest!.add(out, row.index);
      await writer.write(out);
      rows++;
      if (rows % 10_000 === 0) opts.onProgress?.(rows);
    }
    deks[deks.length - 1]!.uses = current!.uses;
    const manifest: Omit<Manifest, 'mac'> = {
      format: 'bulwark-protected',
      version: 1,
      dataset: datasetHex,
      createdAt: new Date().toISOString(),
      source: file,
      rows,
      sourceColumns: [...reader.columns],
      outputColumns: plan.outputColumns,
      rowKey: opts.rowKey ?? null,
      subject: opts.subjects
        ? { column: opts.subjects.column, handleColumn: SUBJECT_HANDLE_COLUMN, store: store!.id }
        : null,
      deks,
      columns: [...plan.plans].sort((a, b) => a.index - b.index).map((p) => p.report),
      rowDigest: rowDigest!.digest(),
    };
    const full: Manifest = { ...manifest, mac: manifestMac(manifest, dek0!) };
    if (store) await store.save();
    await writer.commit();
    try {
      await writeManifest(manifestPath, full);
    } catch (e) {
      await unlink(output).catch(() => undefined);
      throw e;
    }
    const report: ProtectReport = {
      output,
      manifest: manifestPath,
      dataset: datasetHex,
      rows,
      columns: full.columns,
      dataKeys: deks.length,
      kept: reader.columns.filter((c) => !plan.plans.some((p) => p.name === c)),
    };
    if (store) report.subjects = handles.size;
    return report;
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    current?.destroy();
    dek0?.fill(0);
    rowDigest?.destroy();
    subjectKeys.clear();
    for (const p of plan.plans) {
      for (const k of p.byGen.values()) k.destroy();
      p.bidx?.destroy();
    }
  }
}
