import { basename } from 'node:path';
import { BulwarkError, invalidArgument, isBulwarkError } from '../core/index.js';
import { type CsvReader, type CsvRow, openCsv, type Schema } from '../data/index.js';
import type { Keyring } from '../keys/index.js';
import { CsvOut } from './csv-out.js';
import { ColumnKeys, decodeCell, MODE_DETERMINISTIC, MODE_SUBJECT, parseFieldHeader } from './format.js';
import { checkManifestMac, dekContext, type Manifest, readManifest, writeManifest } from './manifest.js';
import { manifestPathOf, type ProtectOptions, type ProtectReport, protectRows } from './protect.js';
import type { SubjectKeyStore } from './subjects.js';
import { checkStoredColumns, ProtectedRowsCheck, unlockManifest } from './verify.js';

export interface RevealOptions {
  keyring: Keyring;
  /** The manifest (default `INPUT.bulwark.json`). */
  manifestPath?: string;
  /** Decrypt only these protected columns (default all); the others stay encrypted. */
  columns?: readonly string[];
  /** The subject key store, for subject-keyed data. */
  subjects?: SubjectKeyStore;
  /**
   * What to do with values of erased data subjects: `blank` (default) writes them empty and counts the
   * rows; `fail` stops with ERR_KEY_DESTROYED.
   */
  erased?: 'blank' | 'fail';
  onProgress?: (rows: number) => void;
}

export interface RevealReport {
  output: string;
  rows: number;
  revealed: string[];
  /** Rows whose subject was erased (their protected values were written empty). */
  erasedRows: number;
}

interface RevealPlan {
  index: number;
  name: string;
  modeBits: number;
  subject: boolean;
}

/**
 * An opened protected dataset: manifest checked, data keys unwrapped, header matched. `row()` turns a
 * stored row into the source row (selected columns decrypted; added columns dropped).
 */
export class ProtectedReader {
  readonly manifest: Manifest;
  readonly reader: CsvReader;
  readonly file: string;
  readonly revealed: string[];
  readonly #plans: RevealPlan[];
  readonly #keys = new Map<string, ColumnKeys>();
  readonly #deks: Map<number, Buffer>;
  readonly #dataset: Buffer;
  readonly #rowKeyAt: number;
  readonly #handleAt: number;
  readonly #store: SubjectKeyStore | undefined;
  readonly #erased: 'blank' | 'fail';
  readonly #width: number;
  /** The checks of the stored rows: count, protected values per column, row digest. */
  readonly #check: ProtectedRowsCheck;
  erasedRows = 0;

  private constructor(
    manifest: Manifest,
    reader: CsvReader,
    file: string,
    deks: Map<number, Buffer>,
    plans: RevealPlan[],
    opts: RevealOptions,
  ) {
    this.manifest = manifest;
    this.reader = reader;
    this.file = file;
    this.#deks = deks;
    this.#plans = plans;
    this.revealed = plans.map((p) => p.name);
    this.#dataset = Buffer.from(manifest.dataset, 'hex');
    this.#rowKeyAt = manifest.rowKey === null ? -1 : manifest.outputColumns.indexOf(manifest.rowKey);
    this.#handleAt =
      manifest.subject === null ? -1 : manifest.outputColumns.indexOf(manifest.subject.handleColumn);
    this.#store = opts.subjects;
    this.#erased = opts.erased ?? 'blank';
    this.#width = manifest.sourceColumns.length;
    this.#check = new ProtectedRowsCheck(manifest, deks.get(0)!, file);
  }

  /**
   * The source rows, decrypted, in order. Refuses a file with more or fewer rows than the manifest's,
   * and, once every row is read, one whose protected columns hold another number of values or empty
   * cells than the manifest recorded: a deleted ciphertext reads as an empty cell, which decryption
   * alone cannot tell from a value that was missing in the source (the counts are under the
   * manifest's MAC). Then, when the manifest records a row digest, one whose stored rows differ in any
   * cell, kept columns included, from those protected (ERR_CIPHERTEXT_TAMPERED; see RowDigest). These
   * are the checks of {@link ProtectedRowsCheck}, which readers that decrypt nothing share. Act on the
   * rows only once the generator has ended without error.
   */
  async *rows(): AsyncGenerator<CsvRow> {
    for await (const r of this.reader) {
      this.#check.add(r.values, r.index, r.line);
      yield { line: r.line, index: r.index, values: this.row(r.values, r.index, r.line) };
    }
    this.#check.finish();
  }

  /** Opens `input` with its manifest; every check runs before any row is read. */
  static async open(input: string, opts: RevealOptions): Promise<ProtectedReader> {
    const file = basename(input);
    const mpath = opts.manifestPath ?? manifestPathOf(input);
    const { manifest, deks } = await unlockManifest(mpath, opts.keyring, 'all');
    try {
      const reader = await openCsv(input);
      const header = reader.columns;
      checkStoredColumns(manifest, header, file);
      const wanted = opts.columns ?? manifest.columns.map((c) => c.name);
      const plans: RevealPlan[] = [];
      for (const name of wanted) {
        const c = manifest.columns.find((x) => x.name === name);
        if (!c) {
          if (!header.includes(name))
            throw new BulwarkError('ERR_COLUMN_NOT_FOUND', `${file}: no column "${name}"`, {
              details: { file, field: name },
            });
          throw invalidArgument('columns', 'protected columns', name);
        }
        const subject = c.keyed === 'subject';
        plans.push({
          index: header.indexOf(name),
          name,
          modeBits: (c.mode === 'deterministic' ? MODE_DETERMINISTIC : 0) | (subject ? MODE_SUBJECT : 0),
          subject,
        });
      }
      if (plans.some((p) => p.subject)) {
        if (!opts.subjects)
          throw invalidArgument('subjects', 'the subject key store (the data is subject-keyed)', undefined);
        if (opts.subjects.id !== manifest.subject?.store) {
          throw new BulwarkError(
            'ERR_KEY_NOT_FOUND',
            `${file} was protected with subject key store ${manifest.subject?.store}, not ${opts.subjects.id}`,
          );
        }
      }
      // The row key (when protected) must be decrypted after the values it binds: order it last.
      const rk = manifest.rowKey === null ? -1 : header.indexOf(manifest.rowKey);
      plans.sort((a, b) => (a.index === rk ? 1 : b.index === rk ? -1 : 0));
      return new ProtectedReader(manifest, reader, file, deks, plans, opts);
    } catch (e) {
      for (const d of deks.values()) d.fill(0);
      throw e;
    }
  }

  #datasetKeys(p: RevealPlan, generation: number, where: string): ColumnKeys {
    const k = `${p.name}/${generation}`;
    let keys = this.#keys.get(k);
    if (!keys) {
      const dek = this.#deks.get(generation);
      if (!dek)
        throw new BulwarkError(
          'ERR_CIPHERTEXT_TAMPERED',
          `${where}: the value names data key generation ${generation}, which this dataset never had`,
        );
      keys = new ColumnKeys(dek, this.#dataset, p.name, generation, p.modeBits);
      this.#keys.set(k, keys);
    }
    return keys;
  }

  /** The source row for stored row `values` (row `index`, file line `line`). */
  row(values: readonly (string | null)[], index: number, line: number): (string | null)[] {
    const out = values.slice(0, this.#width) as (string | null)[];
    const rowKey = this.#rowKeyAt >= 0 ? (values[this.#rowKeyAt] ?? '') : String(index);
    const handle = this.#handleAt >= 0 ? (values[this.#handleAt] ?? '') : '';
    let erased = false;
    for (const p of this.#plans) {
      const text = values[p.index];
      if (text === null || text === undefined) continue;
      const where = `${this.file}:${line}: column "${p.name}"`;
      const bytes = decodeCell(text, where);
      const h = parseFieldHeader(bytes, where);
      if (h.mode !== p.modeBits) {
        throw new BulwarkError(
          'ERR_CIPHERTEXT_TAMPERED',
          `${where}: the value's mode differs from the column's (moved from another column?)`,
        );
      }
      let keys: ColumnKeys;
      if (p.subject) {
        let sk: { bytes: Buffer };
        try {
          sk = this.#store!.keyForDecryption(handle, h.generation);
        } catch (e) {
          if (isBulwarkError(e, 'ERR_KEY_DESTROYED') && this.#erased === 'blank') {
            erased = true;
            out[p.index] = null;
            continue;
          }
          if (isBulwarkError(e)) throw new BulwarkError(e.code, `${where}: ${e.message}`, { cause: e });
          throw e;
        }
        const k = `${handle}/${h.generation}/${p.name}`;
        keys = this.#keys.get(k) ?? new ColumnKeys(sk.bytes, this.#dataset, p.name, h.generation, p.modeBits);
        if (this.#keys.size > 65536) {
          for (const c of this.#keys.values()) c.destroy();
          this.#keys.clear();
        }
        this.#keys.set(k, keys);
      } else {
        keys = this.#datasetKeys(p, h.generation, where);
      }
      out[p.index] = keys.decrypt(bytes, h, rowKey, where, handle);
    }
    if (erased) this.erasedRows++;
    return out;
  }

  /** Wipes keys in memory. */
  close(): void {
    this.#check.destroy();
    for (const k of this.#keys.values()) k.destroy();
    this.#keys.clear();
    for (const d of this.#deks.values()) d.fill(0);
  }
}

/**
 * Decrypts a protected CSV file for a key holder. Nothing is written unless every row decrypted and
 * the row count matches the manifest's; the output (mode 0600: it holds personal data) has the
 * source's columns, in order.
 */
export async function revealCsv(input: string, output: string, opts: RevealOptions): Promise<RevealReport> {
  const pr = await ProtectedReader.open(input, opts);
  const writer = await CsvOut.create(output, pr.manifest.sourceColumns, { mode: 0o600 });
  let rows = 0;
  try {
    for await (const r of pr.rows()) {
      await writer.write(r.values);
      rows++;
      if (rows % 10_000 === 0) opts.onProgress?.(rows);
    }
    await writer.commit();
    return { output, rows, revealed: pr.revealed, erasedRows: pr.erasedRows };
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    pr.close();
  }
}

/**
 * Rotation without re-encrypting data: re-wraps every data key of a protected dataset under the
 * current primary version of `keyId` (default: the key that wrapped them) and rewrites the manifest.
 * Returns the number of keys re-wrapped.
 */
export async function rewrapProtected(
  manifestPath: string,
  keyring: Keyring,
  keyId?: string,
): Promise<number> {
  const m = await readManifest(manifestPath);
  const deks: Manifest['deks'] = [];
  for (const d of m.deks) {
    const ctx = dekContext(m.dataset, d.generation);
    if (d.generation === 0) {
      const dek0 = await keyring.unwrapKey(d.wrapped, ctx);
      try {
        checkManifestMac(m, dek0, manifestPath);
      } finally {
        dek0.fill(0);
      }
    }
    deks.push({ ...d, wrapped: await keyring.rewrapKey(d.wrapped, ctx, keyId ?? d.wrapped.key) });
  }
  await writeManifest(manifestPath, { ...m, deks });
  return deks.length;
}

export interface ReencryptOptions extends RevealOptions {
  /** KEK id for the new data keys (default: the one that wrapped the old ones). */
  keyId?: string;
  /** Where the new manifest goes (default `OUTPUT.bulwark.json`). */
  outputManifestPath?: string;
  dekMaxUses?: number;
}

/**
 * Full re-encryption: every protected value is decrypted and encrypted again under new data keys
 * (and a new dataset id), in one streaming pass; plaintext never touches the disk. Use it after a data
 * key may have leaked; for a KEK rotation {@link rewrapProtected} is enough.
 */
export async function reencryptCsv(
  input: string,
  output: string,
  opts: ReencryptOptions,
): Promise<ProtectReport> {
  const pr = await ProtectedReader.open(input, { ...opts, columns: undefined, erased: 'fail' });
  const m = pr.manifest;
  try {
    const personal = new Map(m.columns.map((c) => [c.name, c]));
    const schema: Schema = {
      version: 1,
      fields: m.sourceColumns.map((name) => ({
        name,
        type: 'string' as const,
        nullable: true,
        sensitivity: personal.has(name) ? ('personal' as const) : ('internal' as const),
      })),
    };
    const source: CsvReader = {
      columns: m.sourceColumns,
      [Symbol.asyncIterator]: () => pr.rows(),
    };
    const protectOpts: ProtectOptions = {
      schema,
      keyring: opts.keyring,
      keyId: opts.keyId ?? m.deks[0]!.wrapped.key,
      columns: m.columns.map((c) => c.name),
      deterministic: m.columns.filter((c) => c.mode === 'deterministic').map((c) => c.name),
      blindIndex: m.columns.filter((c) => c.blindIndex !== null).map((c) => c.name),
    };
    if (m.rowKey !== null) protectOpts.rowKey = m.rowKey;
    if (m.subject !== null) {
      if (!opts.subjects)
        throw invalidArgument('subjects', 'the subject key store (the data is subject-keyed)', undefined);
      protectOpts.subjects = { column: m.subject.column, store: opts.subjects };
    }
    if (opts.outputManifestPath) protectOpts.manifestPath = opts.outputManifestPath;
    if (opts.dekMaxUses !== undefined) protectOpts.dekMaxUses = opts.dekMaxUses;
    return await protectRows(source, m.source, output, protectOpts);
  } finally {
    pr.close();
  }
}
