import { basename } from 'node:path';
import { BulwarkError } from '../core/index.js';
import type { Keyring } from '../keys/index.js';
import { checkManifestMac, dekContext, type Manifest, RowDigest, readManifest } from './manifest.js';
import { manifestPathOf } from './protect.js';

/**
 * The checks of a protected file's stored rows against its manifest, shared by `reveal`/`reencrypt`
 * (which decrypt the rows) and the consumers that read the protected CSV themselves without decrypting
 * anything (`bulwark train --data`): the manifest's MAC, the columns, the number of rows, the number of
 * values and empty cells of each protected column, and the row digest (see {@link RowDigest}).
 */

/**
 * Reads a manifest, unwraps its data keys (`all`, or only generation 0, which the MAC and the row
 * digest are keyed from) and checks its MAC: `ERR_HEADER_TAMPERED` when it was altered or lacks
 * generation 0; the keyring's own codes (`ERR_KEY_NOT_FOUND`, `ERR_KEY_UNWRAP`, ...) when a key does
 * not unwrap. The caller wipes the keys returned.
 */
export async function unlockManifest(
  path: string,
  keyring: Keyring,
  generations: 'all' | 'first',
): Promise<{ manifest: Manifest; deks: Map<number, Buffer> }> {
  const manifest = await readManifest(path);
  const deks = new Map<number, Buffer>();
  try {
    for (const d of manifest.deks)
      if (generations === 'all' || d.generation === 0)
        deks.set(
          d.generation,
          await keyring.unwrapKey(d.wrapped, dekContext(manifest.dataset, d.generation)),
        );
    const dek0 = deks.get(0);
    if (!dek0)
      throw new BulwarkError('ERR_HEADER_TAMPERED', `${path}: the manifest lacks data key generation 0`);
    checkManifestMac(manifest, dek0, path);
    return { manifest, deks };
  } catch (e) {
    for (const d of deks.values()) d.fill(0);
    throw e;
  }
}

/** Checks a protected file's header against the columns its manifest recorded (`ERR_SCHEMA_MISMATCH`). */
export function checkStoredColumns(manifest: Manifest, header: readonly string[], file: string): void {
  if (
    header.length !== manifest.outputColumns.length ||
    header.some((h, i) => h !== manifest.outputColumns[i])
  ) {
    const missing = manifest.outputColumns.find((c) => !header.includes(c));
    throw new BulwarkError(
      'ERR_SCHEMA_MISMATCH',
      `${file}: the columns differ from those the manifest recorded${missing ? ` ("${missing}" is absent)` : ''}`,
      { details: { file, field: missing ?? '' } },
    );
  }
}

/**
 * The row checks of a protected file, fed its stored rows as they are read ({@link add}) and run to
 * the end once they all were ({@link finish}): more rows than protected is `ERR_CIPHERTEXT_TAMPERED`
 * at once; fewer is `ERR_CIPHERTEXT_TRUNCATED`; a protected column holding another number of values or
 * empty cells than the manifest recorded (a deleted ciphertext reads as an empty cell, which decryption
 * alone cannot tell from a value missing in the source), or, when the manifest records a row digest,
 * rows that differ in any cell, kept columns included, from those protected, is
 * `ERR_CIPHERTEXT_TAMPERED`. Act on the rows only once {@link finish} returned.
 *
 * Needs no decryption: only the row-digest key, derived from the dataset's first data key. Open one
 * for a file read elsewhere with {@link ProtectedRowsCheck.open}.
 */
export class ProtectedRowsCheck {
  readonly manifest: Manifest;
  readonly file: string;
  /** Per protected column (all of them): its index and the cells seen, empty or not. */
  readonly #tally: { name: string; index: number; values: number; missing: number }[];
  /** The digest of the stored rows, when the manifest records one. */
  readonly #rowDigest: RowDigest | undefined;
  #rows = 0;

  /** `dek0`: the dataset's data key of generation 0 (not kept; the caller wipes it). */
  constructor(manifest: Manifest, dek0: Uint8Array, file: string) {
    this.manifest = manifest;
    this.file = file;
    this.#tally = manifest.columns.map((c) => ({
      name: c.name,
      index: manifest.outputColumns.indexOf(c.name),
      values: 0,
      missing: 0,
    }));
    this.#rowDigest =
      manifest.rowDigest === undefined
        ? undefined
        : new RowDigest(dek0, manifest.dataset, manifest.rowKey === null);
  }

  /**
   * Opens the checks of protected file `input` with its manifest (default `INPUT.bulwark.json`): reads
   * the manifest, unwraps its first data key only and checks the manifest's MAC (see
   * {@link unlockManifest}). Nothing is decrypted.
   */
  static async open(
    input: string,
    opts: { keyring: Keyring; manifestPath?: string },
  ): Promise<ProtectedRowsCheck> {
    const { manifest, deks } = await unlockManifest(
      opts.manifestPath ?? manifestPathOf(input),
      opts.keyring,
      'first',
    );
    try {
      return new ProtectedRowsCheck(manifest, deks.get(0)!, basename(input));
    } finally {
      for (const d of deks.values()) d.fill(0);
    }
  }

  /** Whether the manifest records a row digest (manifests written before it existed do not). */
  get hasRowDigest(): boolean {
    return this.#rowDigest !== undefined;
  }

  /** The rows added so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Checks the file's header against the manifest's columns (`ERR_SCHEMA_MISMATCH`). */
  columns(header: readonly string[]): void {
    checkStoredColumns(this.manifest, header, this.file);
  }

  /**
   * Adds one stored row, its cells as read (empty or missing cells as '', null or undefined), its
   * 0-based index among the data rows and its line in the file (for messages).
   */
  add(values: readonly (string | null | undefined)[], index: number, line: number): void {
    if (this.#rows >= this.manifest.rows) {
      throw new BulwarkError(
        'ERR_CIPHERTEXT_TAMPERED',
        `${this.file}:${line}: more rows than the ${this.manifest.rows} protected`,
      );
    }
    this.#rows++;
    for (const t of this.#tally) {
      const v = values[t.index];
      if (v === null || v === undefined || v === '') t.missing++;
      else t.values++;
    }
    this.#rowDigest?.add(values, index);
  }

  /** Forgets the rows added: the file is read again from its first row. */
  restart(): void {
    this.#rows = 0;
    for (const t of this.#tally) {
      t.values = 0;
      t.missing = 0;
    }
    this.#rowDigest?.reset();
  }

  /** Runs the checks that need every row (see the class). */
  finish(): void {
    const m = this.manifest;
    if (this.#rows < m.rows) {
      throw new BulwarkError(
        'ERR_CIPHERTEXT_TRUNCATED',
        `${this.file}: ${this.#rows} rows, but ${m.rows} were protected: the file was truncated`,
      );
    }
    for (const t of this.#tally) {
      const c = m.columns.find((x) => x.name === t.name)!;
      if (t.values !== c.values || t.missing !== c.missing)
        throw new BulwarkError(
          'ERR_CIPHERTEXT_TAMPERED',
          `${this.file}: column "${t.name}" holds ${t.values} protected values and ${t.missing} empty cells, but ${c.values} and ${c.missing} were written: protected values were deleted or added`,
        );
    }
    if (this.#rowDigest && !this.#rowDigest.matches(m.rowDigest!))
      throw new BulwarkError(
        'ERR_CIPHERTEXT_TAMPERED',
        `${this.file}: the rows differ from those protected (a cell was changed, or values were moved to another row with their row key): the file was altered`,
      );
  }

  /** Wipes the row-digest key. */
  destroy(): void {
    this.#rowDigest?.destroy();
  }
}
