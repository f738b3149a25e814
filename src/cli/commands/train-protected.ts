/**
 * `bulwark train` on a protected dataset: a training file (`--data`) or evaluation set (`--eval`) with a
 * Bulwark protection manifest beside it (`FILE.bulwark.json`, as `bulwark data protect` writes it) is
 * verified against that manifest before any training, fail closed (docs/protect.md):
 *
 * - the manifest's MAC, with the keyring `data reveal` takes (`--keyring`, `--passphrase-file`, ...:
 *   train's own keyring options); only the dataset's data key of generation 0 is unwrapped, nothing is
 *   decrypted;
 * - the rows the trainer gets, as it reads them (`onRecord` of the one read that builds the dataset: no
 *   second read that could see another file): their count, the columns, the values and empty cells of
 *   each protected column, and the row digest (`ProtectedRowsCheck`, the code `reveal` runs), so that a
 *   flipped label, values moved with their row key to another row, or a row added, removed or
 *   duplicated is `ERR_CIPHERTEXT_TAMPERED` before anything is trained, spent or written.
 *
 * No keyring, or a manifest written before the row digest existed, is `ERR_DATA_UNVERIFIED`, unless
 * `--no-verify-protected` says the file is checked another way; the model's metadata
 * (`bulwark.protected_data`), the `model.trained` audit event and the `--json` result record the
 * dataset id and whether it was verified.
 */
import type { Command } from 'commander';
import { BulwarkError, exists } from '../../core/index.js';
import { type CsvDatasetOptions, type Dataset, formatOf } from '../../data/index.js';
import { manifestPathOf, ProtectedRowsCheck, readManifest } from '../../protect/index.js';
import { META_PROTECTED_DATA } from '../../train/index.js';
import type { Io } from '../output.js';
import { openKeyringFromOptions, type SecretCliOptions } from './keys.js';

/** The options of `bulwark train` the check reads: its keyring options and the opt-out. */
export interface ProtectedDataOpts extends Partial<SecretCliOptions> {
  /** false with `--no-verify-protected`. */
  verifyProtected?: boolean;
}

/** What is recorded about a protected training file. */
export interface ProtectedDataRecord {
  /** The manifest's dataset id (null: the opt-out was given and the manifest does not parse). */
  dataset: string | null;
  /** Whether its rows were verified against the manifest before training. */
  verified: boolean;
}

export const NO_VERIFY_PROTECTED_HELP =
  'train on a protected --data/--eval file (one with a FILE.bulwark.json manifest beside it) WITHOUT checking it against its manifest, when you verify it another way; recorded in the model and the audit event (default: checked, which needs --keyring)';

/** Adds `--no-verify-protected` (the keyring options come with the integrity options). */
export function addProtectedDataOptions(cmd: Command): Command {
  return cmd.option('--no-verify-protected', NO_VERIFY_PROTECTED_HELP);
}

/**
 * Reads a training or evaluation file with `read` (given the CSV options to pass on); when a protection
 * manifest is beside it, verifies the rows read against it first (see the module documentation).
 * `option` names the file's option in messages.
 */
export async function readProtectable<T extends { dataset: Dataset }>(
  io: Io,
  path: string,
  option: '--data' | '--eval',
  o: ProtectedDataOpts,
  read: (csv: CsvDatasetOptions) => Promise<T>,
): Promise<T & { protectedData?: ProtectedDataRecord }> {
  const mpath = manifestPathOf(path);
  if (!(await exists(mpath))) return read({});
  if (o.verifyProtected === false) {
    let dataset: string | null = null;
    try {
      dataset = (await readManifest(mpath)).dataset;
    } catch (e) {
      if (!(e instanceof BulwarkError)) throw e;
    }
    io.note(
      `bulwark: WARNING: --no-verify-protected: ${option} ${path} is a protected dataset (manifest ${mpath}) and was NOT checked against its manifest; the model records it as unverified`,
    );
    return { ...(await read({})), protectedData: { dataset, verified: false } };
  }
  if (o.keyring === undefined)
    throw new BulwarkError(
      'ERR_DATA_UNVERIFIED',
      `${option} ${path} is a protected dataset (its manifest ${mpath} is beside it) and is checked against the manifest before training: give --keyring FILE (and --passphrase-file, --passphrase-env or --keyring-provider as for bulwark data reveal), or --no-verify-protected if you verify the file another way`,
      { details: { option: '--keyring', manifest: mpath } },
    );
  if (formatOf(path) !== 'csv' || path.toLowerCase().endsWith('.tsv'))
    throw new BulwarkError(
      'ERR_FORMAT_UNSUPPORTED',
      `${option} ${path} has a protection manifest beside it, but protected datasets are CSV files (bulwark data protect writes CSV)`,
      { details: { path } },
    );
  const keyring = await openKeyringFromOptions({ ...o, keyring: o.keyring });
  let check: ProtectedRowsCheck;
  try {
    check = await ProtectedRowsCheck.open(path, { keyring });
  } finally {
    await keyring.close();
  }
  try {
    if (!check.hasRowDigest)
      throw new BulwarkError(
        'ERR_DATA_UNVERIFIED',
        `${option} ${path}: its protection manifest has no row digest (written before Bulwark recorded one), so its kept columns, the label among them, cannot be checked: bulwark data reencrypt writes a copy whose manifest has one; or give --no-verify-protected if you verify the file another way`,
        { details: { option: '--no-verify-protected', manifest: mpath } },
      );
    const r = await read({
      onRecord: (values, index, line) => {
        // The file is read again (from index 0) when a late value does not fit its inferred type.
        if (index === 0) check.restart();
        check.add(values, index, line);
      },
    });
    check.columns(r.dataset.columnNames);
    check.finish();
    io.note(
      `bulwark: ${option} ${path} verified against its protection manifest (dataset ${check.manifest.dataset}, ${check.rows} rows, row digest)`,
    );
    return { ...r, protectedData: { dataset: check.manifest.dataset, verified: true } };
  } finally {
    check.destroy();
  }
}

/** The ONNX metadata entry of a protected training file (none for an ordinary file). */
export function protectedMetadata(p: ProtectedDataRecord | undefined): Record<string, string> {
  return p === undefined ? {} : { [META_PROTECTED_DATA]: JSON.stringify(p) };
}

/**
 * The `model.trained` hyperparameters of a protected training file (none for an ordinary file):
 * `protectedDataset` (its id) and `protectedVerified`, or under another `prefix` (`evalProtected` for
 * the evaluation set).
 */
export function protectedHyperparameters(
  p: ProtectedDataRecord | undefined,
  prefix = 'protected',
): Record<string, string | boolean | null> {
  return p === undefined ? {} : { [`${prefix}Dataset`]: p.dataset, [`${prefix}Verified`]: p.verified };
}
