/**
 * Reading a data file that may be a protected dataset: a file with a Bulwark protection manifest
 * beside it (`FILE.bulwark.json`, as `bulwark data protect` writes it) is verified against that
 * manifest before the command uses it, fail closed (docs/protect.md). Every command that reads a data
 * file runs this: `train` (`--data`, `--eval`), `evaluate` (`--data`, `--members`), `data inspect`,
 * `model fit-detectors`, `predict` and `query` (`--data`), `data schema` and `data validate` (their
 * file), and `data poison` (`--data`).
 *
 * - the manifest's MAC, with the keyring `data reveal` takes (`--keyring`, `--passphrase-file`, ...);
 *   only the dataset's data key of generation 0 is unwrapped, nothing is decrypted;
 * - the rows the command gets, as it reads them (`onRecord` of the one read that builds the dataset:
 *   no second read that could see another file): their count, the columns, the values and empty cells
 *   of each protected column, and the row digest (`ProtectedRowsCheck`, the code `reveal` runs), so
 *   that a flipped label, values moved with their row key to another row, or a row added, removed or
 *   duplicated is `ERR_CIPHERTEXT_TAMPERED` before anything is trained, spent or written.
 *
 * No keyring, or a manifest written before the row digest existed, is `ERR_DATA_UNVERIFIED`, unless
 * `--no-verify-protected` says the file is checked another way. `--require-protected`, or the
 * environment variable `BULWARK_REQUIRE_PROTECTED=1` for every command that has the option (a platform
 * team enforcing it for all jobs), makes a file without a manifest `ERR_DATA_UNVERIFIED` too. Each
 * command records the dataset id and whether it was verified ({@link ProtectedDataRecord}) where it
 * records its inputs.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { BulwarkError, exists } from '../../core/index.js';
import { type CsvDatasetOptions, type Dataset, formatOf } from '../../data/index.js';
import type { Keyring } from '../../keys/index.js';
import { manifestPathOf, ProtectedRowsCheck, readManifest } from '../../protect/index.js';
import type { Io } from '../output.js';
import { keyringInputs, openKeyringFromOptions, type SecretCliOptions, withKeyringOptions } from './keys.js';

/**
 * One keyring for a command that needs it several times (`train --from PARENT.bwm` with a protected
 * --data and --eval: each file's check, then the package): opened at the first {@link get} (one scrypt
 * derivation, one passphrase prompt at a terminal), the same instance after, and closed (its keys
 * wiped) once by the command's {@link close}. Before, each of them opened the keyring anew.
 */
export class KeyringSession {
  #opening: Promise<Keyring> | undefined;
  #path: string | undefined;

  /** The keyring of `o` (opened now if not yet); never closed by the caller: {@link close} does. */
  get(o: SecretCliOptions): Promise<Keyring> {
    // One command, one --keyring: another path here would be a bug, not a second keyring to hand out.
    if (this.#path !== undefined && this.#path !== o.keyring)
      throw new BulwarkError('ERR_INTERNAL', 'one keyring session was asked for two keyrings');
    this.#path = o.keyring;
    if (this.#opening === undefined) {
      const opening = openKeyringFromOptions(o);
      // A failed open is not kept: the error goes to this caller, and nothing is left to close.
      opening.catch(() => {
        if (this.#opening === opening) this.#opening = undefined;
      });
      this.#opening = opening;
    }
    return this.#opening;
  }

  /** Closes the keyring if it was opened (a later {@link get} would open it again). */
  async close(): Promise<void> {
    const opening = this.#opening;
    this.#opening = undefined;
    if (opening === undefined) return;
    let keyring: Keyring;
    try {
      keyring = await opening;
    } catch {
      return;
    }
    await keyring.close();
  }
}

/**
 * The keyring of `o` for one use: `session`'s when the command has one (left open for its next use;
 * the session's owner closes it), else one opened for this use, which `release` closes.
 */
export async function borrowKeyring(
  session: KeyringSession | undefined,
  o: SecretCliOptions,
): Promise<{ keyring: Keyring; release: () => Promise<void> }> {
  if (session) return { keyring: await session.get(o), release: async () => {} };
  const keyring = await openKeyringFromOptions(o);
  return { keyring, release: () => keyring.close() };
}

/** The options the check reads: the keyring options, the opt-out and `--require-protected`. */
export interface ProtectedDataOpts extends Partial<SecretCliOptions> {
  /** false with `--no-verify-protected`. */
  verifyProtected?: boolean;
  /** `--require-protected`: a data file without a manifest is refused. */
  requireProtected?: boolean;
  /** The command's shared keyring: used instead of opening (and closing) one for this file. */
  keyringSession?: KeyringSession;
}

/** The environment variable that turns `--require-protected` on for every command that has it. */
export const REQUIRE_PROTECTED_ENV = 'BULWARK_REQUIRE_PROTECTED';

/**
 * The value of {@link REQUIRE_PROTECTED_ENV}: true for `1` or `true`, false when unset, empty, `0` or
 * `false` (either case); anything else is `ERR_USAGE` naming the variable: an enforcement switch whose
 * value is misspelt must stop the job, not run it unenforced.
 */
export function requireProtectedFromEnv(): boolean {
  const raw = process.env[REQUIRE_PROTECTED_ENV];
  if (raw === undefined) return false;
  const v = raw.trim().toLowerCase();
  if (v === '1' || v === 'true') return true;
  if (v === '' || v === '0' || v === 'false') return false;
  throw new BulwarkError(
    'ERR_USAGE',
    `${REQUIRE_PROTECTED_ENV} must be 1 or true (require protected data), or 0, false or empty (do not); got ${JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}...` : raw)}`,
    { details: { variable: REQUIRE_PROTECTED_ENV } },
  );
}

/**
 * What requires protected data for this run: `--require-protected`, else the environment variable
 * (as `BULWARK_REQUIRE_PROTECTED=1`), else null. Checks the variable's value even when the option is
 * given.
 */
export function requireProtectedBy(o: Pick<ProtectedDataOpts, 'requireProtected'>): string | null {
  const env = requireProtectedFromEnv();
  if (o.requireProtected === true) return '--require-protected';
  return env ? `${REQUIRE_PROTECTED_ENV}=${process.env[REQUIRE_PROTECTED_ENV]?.trim()}` : null;
}

/** What is recorded about a protected data file. */
export interface ProtectedDataRecord {
  /** The manifest's dataset id (null: the opt-out was given and the manifest does not parse). */
  dataset: string | null;
  /** Whether its rows were verified against the manifest before the command used them. */
  verified: boolean;
}

/** How a command words the check in its help and messages. */
export interface ProtectedDataUse {
  /** Its data file options, as help lists them: `--data/--eval`. */
  files: string;
  /** What the check comes before: `any training`, `the evaluation`. */
  purpose: string;
  /** Where the result is recorded, after "recorded in": `the model and the audit event`. */
  recorded: string;
  /**
   * Leave exact counts (rows, values, empty cells, line numbers) out of the messages: `bulwark query`,
   * whose user may learn of the data only what the DP releases tell (docs/privacy.md).
   */
  noCounts?: boolean;
}

/**
 * Adds `--no-verify-protected` and `--require-protected` to a command; with `keyring`, the keyring
 * options too (optional: only a protected file needs them; `train` has them from its integrity options).
 */
export function addProtectedDataOptions(
  cmd: Command,
  use: ProtectedDataUse,
  opts: { keyring?: boolean } = {},
): Command {
  if (opts.keyring)
    withKeyringOptions(cmd, {
      optional: `the keyring that checks a protected ${use.files} file against its manifest (FILE.bulwark.json beside it; needed for one)`,
    });
  return cmd
    .option(
      '--no-verify-protected',
      `use a protected ${use.files} file (one with a FILE.bulwark.json manifest beside it) WITHOUT checking it against its manifest, when you verify it another way; recorded in ${use.recorded} (default: checked, which needs --keyring)`,
    )
    .option(
      '--require-protected',
      `refuse a ${use.files} file that is not a protected dataset (no FILE.bulwark.json manifest beside it: ERR_DATA_UNVERIFIED), so that only data verified against its manifest is used; also on when ${REQUIRE_PROTECTED_ENV}=1`,
    );
}

/** The paragraph of a command's help about protected files, wrapped at 100 columns as the others. */
export function protectedDataHelp(use: ProtectedDataUse): string {
  const text = `A ${use.files.replaceAll('/', ' or ')} file with a protection manifest beside it (FILE.bulwark.json, from bulwark data protect) is checked against it before ${use.purpose}: the manifest's MAC and every row as read (a label flipped, values moved between rows, a row added, removed or duplicated: ERR_CIPHERTEXT_TAMPERED). This needs the keyring (--keyring, --passphrase-file, ...; ERR_DATA_UNVERIFIED without it); nothing is decrypted. --no-verify-protected skips the check (recorded in ${use.recorded}); --require-protected, or ${REQUIRE_PROTECTED_ENV}=1 in the environment, refuses a file without a manifest (docs/protect.md).`;
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line].join('\n');
}

/**
 * The refusal of data that is not a protected dataset under `--require-protected`, or under the
 * environment variable when `by` says so (what {@link requireProtectedBy} returned).
 */
export function unprotectedRefusal(
  option: string,
  source: string,
  why: string,
  by = '--require-protected',
): BulwarkError {
  const fromEnv = by.startsWith(`${REQUIRE_PROTECTED_ENV}=`);
  return new BulwarkError(
    'ERR_DATA_UNVERIFIED',
    `${option} ${source} ${why}, and ${fromEnv ? `${by} (in the environment: --require-protected for every command)` : by} admits only protected datasets verified against their manifest: protect it with bulwark data protect${fromEnv ? '' : ', or drop --require-protected'}`,
    { details: { option: '--require-protected', ...(fromEnv ? { variable: REQUIRE_PROTECTED_ENV } : {}) } },
  );
}

/**
 * The protection manifests beside `files` that exist: inputs of the command, which its output may not
 * replace (checkOutputPath), with `o`'s keyring files when `o` is given.
 */
export async function protectedDataInputs(
  files: readonly (string | undefined)[],
  o?: ProtectedDataOpts,
): Promise<string[]> {
  const inputs: string[] = [];
  for (const f of files)
    if (f !== undefined && (await exists(manifestPathOf(f)))) inputs.push(manifestPathOf(f));
  if (o !== undefined) for (const f of keyringInputs(o)) if (f !== undefined) inputs.push(f);
  return inputs;
}

/**
 * Reads a data file with `read` (given the CSV options to pass on); when a protection manifest is
 * beside it, verifies the rows read against it first (see the module documentation). `option` names
 * the file's option in messages.
 */
export async function readProtectable<T extends { dataset: Dataset }>(
  io: Io,
  path: string,
  option: string,
  o: ProtectedDataOpts,
  read: (csv: CsvDatasetOptions) => Promise<T>,
  use: Pick<ProtectedDataUse, 'purpose' | 'noCounts'>,
): Promise<T & { protectedData?: ProtectedDataRecord }> {
  const required = requireProtectedBy(o);
  if (required !== null && o.verifyProtected === false)
    throw new BulwarkError(
      'ERR_USAGE',
      `${required}${required === '--require-protected' ? '' : ' (in the environment)'} admits only data verified against its manifest: drop --no-verify-protected`,
      { details: { option: '--no-verify-protected' } },
    );
  const mpath = manifestPathOf(path);
  if (!(await exists(mpath))) {
    if (required !== null)
      throw unprotectedRefusal(option, path, `has no protection manifest beside it (${mpath})`, required);
    return read({});
  }
  if (o.verifyProtected === false) {
    let dataset: string | null = null;
    try {
      dataset = (await readManifest(mpath)).dataset;
    } catch (e) {
      if (!(e instanceof BulwarkError)) throw e;
    }
    io.note(
      `bulwark: WARNING: --no-verify-protected: ${option} ${path} is a protected dataset (manifest ${mpath}) and was NOT checked against its manifest; recorded as unverified`,
    );
    return { ...(await read({})), protectedData: { dataset, verified: false } };
  }
  if (o.keyring === undefined)
    throw new BulwarkError(
      'ERR_DATA_UNVERIFIED',
      `${option} ${path} is a protected dataset (its manifest ${mpath} is beside it) and is checked against the manifest before ${use.purpose}: give --keyring FILE (and --passphrase-file, --passphrase-env or --keyring-provider as for bulwark data reveal), or --no-verify-protected if you verify the file another way`,
      { details: { option: '--keyring', manifest: mpath } },
    );
  if (formatOf(path) !== 'csv' || path.toLowerCase().endsWith('.tsv'))
    throw new BulwarkError(
      'ERR_FORMAT_UNSUPPORTED',
      `${option} ${path} has a protection manifest beside it, but protected datasets are CSV files (bulwark data protect writes CSV)`,
      { details: { path } },
    );
  const { keyring, release } = await borrowKeyring(o.keyringSession, { ...o, keyring: o.keyring });
  let check: ProtectedRowsCheck;
  try {
    check = await ProtectedRowsCheck.open(path, { keyring });
  } finally {
    await release();
  }
  try {
    if (!check.hasRowDigest)
      throw new BulwarkError(
        'ERR_DATA_UNVERIFIED',
        `${option} ${path}: its protection manifest has no row digest (written before Bulwark recorded one), so its kept columns, the label among them, cannot be checked: bulwark data reencrypt writes a copy whose manifest has one; or give --no-verify-protected if you verify the file another way`,
        { details: { option: '--no-verify-protected', manifest: mpath } },
      );
    let r: T;
    try {
      r = await read({
        onRecord: (values, index, line) => {
          // The file is read again (from index 0) when a late value does not fit its inferred type.
          if (index === 0) check.restart();
          check.add(values, index, line);
        },
      });
      check.columns(r.dataset.columnNames);
      check.finish();
    } catch (e) {
      // The check's messages give the file's row count, a line number or a column's count of empty
      // cells: exact statistics of the data, which a DP query's user must not get outside the releases.
      if (
        use.noCounts === true &&
        e instanceof BulwarkError &&
        (e.code === 'ERR_CIPHERTEXT_TAMPERED' || e.code === 'ERR_CIPHERTEXT_TRUNCATED')
      )
        throw new BulwarkError(
          e.code,
          `${option} ${path}: the rows differ from those protected (${e.code === 'ERR_CIPHERTEXT_TRUNCATED' ? 'rows are missing' : 'a row was changed, added, moved or duplicated'}): the file was altered (counts left out of this message: they are statistics of the data)`,
        );
      throw e;
    }
    io.note(
      `bulwark: ${option} ${path} verified against its protection manifest (dataset ${check.manifest.dataset}${use.noCounts === true ? '' : `, ${check.rows} rows`}, row digest)`,
    );
    return { ...r, protectedData: { dataset: check.manifest.dataset, verified: true } };
  } finally {
    check.destroy();
  }
}

/** One sentence for a report: the protected data file, and whether it was verified. */
export function protectedDataLine(file: string, p: ProtectedDataRecord): string {
  return `${basename(file)} is a protected dataset (${p.dataset ?? 'id unreadable'}): ${p.verified ? 'verified against its protection manifest (MAC, row count, per-column counts, row digest) on the rows read' : 'NOT verified against its manifest (--no-verify-protected)'}.`;
}

/**
 * The audit-event fields of a protected data file (none for an ordinary file): `protectedDataset` (its
 * id) and `protectedVerified`, or under another `prefix` (`evalProtected` for train's evaluation set).
 */
export function protectedHyperparameters(
  p: ProtectedDataRecord | undefined,
  prefix = 'protected',
): Record<string, string | boolean | null> {
  return p === undefined ? {} : { [`${prefix}Dataset`]: p.dataset, [`${prefix}Verified`]: p.verified };
}
