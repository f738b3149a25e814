import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, fsError, requireFile, sha256Digest, writeFileAtomic } from '../../core/index.js';
import { type Dataset, readDatasetWithDigest, type Schema, validateAgainstSchema } from '../../data/index.js';
import {
  DEFAULT_MAX_CLASS_DROP,
  INSPECT_METHODS,
  type InspectMethod,
  requireProvenance,
  type SanitizedTraining,
  type SanitizeRecord,
  sanitizeCosts,
  trainSanitized,
} from '../../integrity/index.js';
import { type TrainTabularOptions, type TrainTabularResult, trainTabular } from '../../train/index.js';
import { record } from '../audit-record.js';
import { floatOption } from '../options.js';
import type { Io } from '../output.js';
import { loadSigner, loadVerifierKey } from './audit.js';
import { withKeyringOptions } from './keys.js';
import { protectedHyperparameters, readProtectable } from './protected-data.js';
import {
  type Continuation,
  type ContinueCliOpts,
  comparisonMetrics,
  isModelPackage,
  plainTuner,
  type Tuner,
} from './train-continue.js';
import { runPackageContinuation } from './train-package.js';
import { TRAIN_PROTECTED_USE } from './train-protected.js';

/** Options `bulwark train` takes for training-data integrity (kept here so train.ts changes little). */
export interface IntegrityTrainOpts {
  sanitize?: InspectMethod | true;
  expectedPoison: number;
  requireProvenance?: boolean;
  auditKey?: string;
  from?: string;
  eval?: string;
  evalEps: number;
  maxCleanDrop: number;
  maxRobustDrop: number;
  maxClassDrop: number;
  /** `--from` with DP: the poisoning gate's largest flagged share. */
  maxFlagged?: number;
  /** `--gate`: the DP gate's check. */
  gate?: InspectMethod;
  /**
   * The keyring: `--from PARENT.bwm`'s, and a protected --data or --eval file's (protected-data.ts);
   * then the trust policy, signing key and new version of the package.
   */
  keyring?: string;
  keyringProvider?: string;
  passphraseFile?: string;
  passphraseEnv?: string;
  pinFile?: string;
  pinEnv?: string;
  trust?: string;
  signKey?: string;
  modelVersion?: string;
  /** `--from PARENT.bwm`: a detector bundle to seal into the new package. */
  detectors?: string;
  /** `--from` with DP: continue a parent whose DP guarantee no training record backs. */
  acceptClaims?: boolean;
  /** `--record-key`: the writer's key that signs the model.trained record (record-signature.ts). */
  recordKey?: string;
  /** `--trainer-key`: a DP fine-tune's parent record must be signed by this key to back its guarantee. */
  trainerKey?: string;
}

function inspectMethod(v: string): InspectMethod {
  if (!(INSPECT_METHODS as readonly string[]).includes(v))
    throw new InvalidArgumentError(`expected one of ${INSPECT_METHODS.join(', ')}, got "${v}"`);
  return v as InspectMethod;
}

export function addIntegrityTrainOptions(cmd: Command): Command {
  cmd
    .option(
      '--sanitize [method]',
      `train, flag suspicious rows (${INSPECT_METHODS.join(', ')}; default both), remove them and train again`,
      inspectMethod,
    )
    .option(
      '--expected-poison <f>',
      'expected poisoned share for --sanitize (spectral signatures)',
      floatOption(0, 0.5),
      0.05,
    )
    .option(
      '--require-provenance',
      'refuse data whose digest is not a dataset.protected event in the --audit log',
    )
    .option(
      '--trainer-key <key>',
      "a DP fine-tune (--from with --dp-epsilon): the parent's model.trained record backs its guarantee only if this training job's key (public key or file) signed it (train --record-key)",
    )
    .option(
      '--record-key <file>',
      "sign the model.trained record with this key of the training job's own (bulwark audit keygen): model protect --trainer-key then accepts only records it signed, not ones anyone who can append to the log wrote",
    )
    .option(
      '--audit-key <key>',
      "the audit log public key (or a file): --require-provenance's record, and a DP fine-tune's parent training record, must be proved under a checkpoint signed by it",
    )
    .option(
      '--from <model>',
      'continue training this model (ONNX from bulwark train, or a protected .bwm package) on --data, after the poisoning checks',
    )
    .option('--eval <file>', '--from: the fixed labelled evaluation set the new model is compared on')
    .option('--eval-eps <e>', '--from: PGD budget of the adversarial comparison', floatOption(0, 1e6), 0.05)
    .option('--max-clean-drop <d>', '--from: largest allowed drop in clean accuracy', floatOption(0, 1), 0.01)
    .option(
      '--max-robust-drop <d>',
      '--from: largest allowed drop in robust accuracy',
      floatOption(0, 1),
      0.02,
    )
    .option(
      '--max-class-drop <d>',
      "--from: largest allowed drop in any one class's clean recall (a point comparison: with n rows of a class one row is 1/n; docs/integrity.md)",
      floatOption(0, 1),
      DEFAULT_MAX_CLASS_DROP,
    )
    .option(
      '--max-flagged <f>',
      '--from with DP: refuse the new batch whole when the poisoning check flags more than this share of it',
      floatOption(0, 1),
    )
    .option(
      '--accept-claims',
      "--from with DP: fine-tune a parent whose differential-privacy guarantee no training record backs (a package's claim marked claimed, or a model file's bulwark.privacy metadata with no model.trained entry in the --audit log); the new model's guarantee is recorded as resting on that unchecked claim (parentPrivacy: claimed) and packaged as claimed",
    )
    .option(
      '--gate <method>',
      `--from with DP: the poisoning check the gate runs with the previous model (${INSPECT_METHODS.join(', ')}; default disagreement: rows whose label it contradicts)`,
      inspectMethod,
    );
  return withKeyringOptions(cmd, {
    optional:
      'the keyring that checks a protected --data/--eval file against its manifest (FILE.bulwark.json beside it); with --from PARENT.bwm, also the one that decrypts it and encrypts the new package',
  })
    .option('--trust <file>', '--from PARENT.bwm: trust policy the parent package is verified against')
    .option('--sign-key <file>', '--from PARENT.bwm: signing key of the new package (--out NEW.bwm)')
    .option(
      '--model-version <v>',
      "--from PARENT.bwm: version of the new package (default: the parent's, last number + 1)",
    )
    .option(
      '--detectors <file>',
      "--from PARENT.bwm: detector bundle (bulwark model fit-detectors PARENT.bwm ...; see docs/model-package.md) to seal into the new package; the parent's are not carried over",
    );
}

/** The sanitising record, flat, for the model.trained event's hyperparameters. */
export function sanitizeHyperparameters(s: SanitizeRecord | undefined): Record<string, string | number> {
  if (!s) return {};
  return {
    sanitize: s.method,
    sanitizeExpectedPoison: s.expectedPoisonFraction,
    sanitizeRemoved: s.removed,
    sanitizeRemovedDigest: s.removedDigest,
  };
}

/**
 * The checks `bulwark train` runs before ANY training (plain, adversarial or DP): option consistency and
 * the provenance of the data file (fail closed, against the `--audit` log).
 */
export async function checkTrainingIntegrity(
  io: Io,
  o: IntegrityTrainOpts,
  data: { file: string; digest: string },
  log: AuditLog | undefined,
  dp: boolean,
): Promise<void> {
  if (o.requireProvenance && !log)
    throw new BulwarkError(
      'ERR_USAGE',
      '--require-provenance needs --audit <store> (or BULWARK_AUDIT_STORE)',
    );
  if (o.auditKey !== undefined && !o.requireProvenance && !(dp && o.from !== undefined))
    throw new BulwarkError(
      'ERR_USAGE',
      "--audit-key applies with --require-provenance, or to a DP fine-tune (--from with --dp-epsilon), whose parent's training record it proves",
    );
  if (o.auditKey !== undefined && !log)
    throw new BulwarkError('ERR_USAGE', '--audit-key needs --audit <store> (or BULWARK_AUDIT_STORE)');
  // Sanitising inspects the data with a non-private model and removes rows by what it saw: not a DP
  // operation, so it is refused with DP training rather than silently skipped.
  if (dp && o.sanitize !== undefined)
    throw new BulwarkError(
      'ERR_DP_UNACCOUNTED',
      '--sanitize does not apply with DP training: it removes rows chosen by a non-private inspection of every row, which the DP accounting does not cover (with --from, DP runs the checks as a gate: --max-flagged)',
    );
  // The gate's settings do nothing elsewhere: said, not silently ignored.
  if ((o.gate !== undefined || o.maxFlagged !== undefined) && !(dp && o.from !== undefined))
    throw new BulwarkError(
      'ERR_USAGE',
      '--gate and --max-flagged apply to a DP fine-tune (--from with --dp-epsilon); without DP, --sanitize [method] removes flagged rows',
    );
  if (o.acceptClaims === true && !(dp && o.from !== undefined))
    throw new BulwarkError(
      'ERR_USAGE',
      '--accept-claims applies to a DP fine-tune (--from with --dp-epsilon) of a parent whose guarantee nothing backs; to package a model with unchecked claims, bulwark model protect --accept-claims',
    );
  if (o.trainerKey !== undefined && !(dp && o.from !== undefined))
    throw new BulwarkError(
      'ERR_USAGE',
      "--trainer-key applies to a DP fine-tune (--from with --dp-epsilon), whose parent's training record it checks; to package a model, bulwark model protect --trainer-key",
    );
  if (o.trainerKey !== undefined && !log)
    throw new BulwarkError('ERR_USAGE', '--trainer-key needs --audit <store> (or BULWARK_AUDIT_STORE)');
  if (o.recordKey !== undefined) {
    if (!log)
      throw new BulwarkError(
        'ERR_USAGE',
        '--record-key signs the model.trained record: it needs --audit <store> (or BULWARK_AUDIT_STORE)',
      );
    log.signRecordsWith(await loadSigner(o.recordKey));
  }
  if (log && o.requireProvenance) await provenanceOf(io, log, o.auditKey, data.file, data.digest, '');
}

/**
 * Runs `bulwark train`'s tabular training with the integrity options (after
 * {@link checkTrainingIntegrity}): plain or sanitised training.
 */
export async function trainWithIntegrity(
  io: Io,
  o: IntegrityTrainOpts,
  ds: Dataset,
  train: TrainTabularOptions,
): Promise<{
  result: TrainTabularResult;
  /** The record, and in `unsanitizedTest` the first model's metrics on the same held-out rows. */
  sanitize?: SanitizeRecord & { unsanitizedTest: TrainTabularResult['test'] };
}> {
  if (o.sanitize === undefined) return { result: await trainTabular(ds, train) };
  const method: InspectMethod = o.sanitize === true ? 'both' : o.sanitize;
  const s = await trainSanitized(
    ds,
    train,
    { method, expectedPoisonFraction: o.expectedPoison, seed: train.seed ?? 0 },
    (stage) => io.note(`sanitize: ${stage}`),
  );
  io.note(sanitizeSummary(s));
  return { result: s.result, sanitize: { ...s.record, unsanitizedTest: s.firstPass.test } };
}

/** What `train --sanitize` did, in words: per class, what was put back, the same test rows before and after. */
export function sanitizeSummary(s: SanitizedTraining): string {
  const r = s.record;
  const worse = sanitizeCosts(s.firstPass.test, s.result.test, s.result.classValues);
  const pct = (n: number, of: number, digits = 1) => `${((100 * n) / Math.max(1, of)).toFixed(digits)} %`;
  const classes = (r.byClass ?? []).map(
    (c) => `"${c.class}" ${c.removed} of ${c.rows} (${pct(c.removed, c.rows)})`,
  );
  const back = (r.reinstated ?? [])
    .filter((c) => c.rows > 0)
    .map(
      (c) =>
        `"${c.class}" ${c.rows} of a cluster of ${c.cluster}${c.spectral > 0 ? ` (${c.spectral} flagged by the spectral signatures too stay out)` : ''}`,
    );
  const m = (t: TrainTabularResult['test']) =>
    `accuracy ${pct(t.accuracy, 1, 2)}, recall ${pct(t.recall, 1, 2)}${t.averagePrecision === undefined ? '' : `, PR AUC ${t.averagePrecision.toFixed(4)}`}`;
  return [
    `sanitize (${r.method}): removed ${r.removed} of the ${r.rowsBefore - (r.heldOut ?? 0)} training rows: by class ${classes.join(', ')}; recorded in the model metadata (bulwark.sanitize)`,
    ...(back.length > 0
      ? [
          `sanitize: rows of activation clusters put back (the model trained without them gave them their own label): ${back.join(', ')}`,
        ]
      : []),
    `sanitize: on the same ${r.heldOut ?? 0} held-out test rows (never inspected): trained on every row ${m(s.firstPass.test)}; after removal ${m(s.result.test)}`,
    ...(worse.length > 0
      ? [
          `bulwark: WARNING: the model trained after the removal is worse on the held-out rows (${worse.join('; ')}). On clean data sanitising removes clean rows: spectral signatures take 1.5 x --expected-poison of every class. Inspect first (bulwark data inspect), or lower --expected-poison.`,
        ]
      : []),
  ].join('\n');
}

/**
 * `bulwark train --from PREVIOUS --data NEW --eval EVAL`: fine-tunes the previous model on the new
 * batch after the poisoning checks, compares it with the previous one on the evaluation set, and writes
 * it only when it does not regress (ERR_MODEL_REGRESSION otherwise). PREVIOUS is an ONNX model from
 * `bulwark train` (the result is ONNX) or a protected package (verified, decrypted in memory; the
 * result is a new signed package: train-package.ts).
 */
export async function runContinuedTraining(
  io: Io,
  o: ContinueCliOpts,
  ds: Dataset,
  schema: Schema | undefined,
  log: AuditLog | undefined,
  tune: Tuner = plainTuner(io, o),
): Promise<void> {
  const from = o.from as string;
  if (o.eval === undefined)
    throw new BulwarkError('ERR_USAGE', '--from needs --eval <file>, the fixed evaluation set');
  if (o.sanitize !== undefined)
    throw new BulwarkError('ERR_USAGE', '--from always runs the poisoning checks; drop --sanitize');
  if (o.adversarial !== undefined)
    throw new BulwarkError('ERR_USAGE', '--from does not combine with --adversarial yet');
  await requireFile(from, 'model file');
  await requireFile(o.eval, 'evaluation file');
  const packaged = await isModelPackage(from);
  // A protected evaluation set is checked as --data is: the comparison decides whether a model is kept.
  const evalFile = o.eval;
  const ev = await readProtectable(
    io,
    evalFile,
    '--eval',
    o,
    // Read once with its digest: the provenance check and the audit record are of the bytes compared on.
    (csv) => readDatasetWithDigest(evalFile, csv),
    TRAIN_PROTECTED_USE,
  );
  o = { ...o, evalProtectedData: ev.protectedData, evalDigest: ev.digest };
  // The evaluation set decides whether the new model is kept, so --require-provenance covers it as it
  // covers --data: an unrecorded set chosen to flatter a poisoned model would otherwise be the judge.
  if (o.requireProvenance && log) await provenanceOf(io, log, o.auditKey, evalFile, ev.digest, ' (--eval)');
  let evaluation = ev.dataset;
  if (schema) evaluation = validateAgainstSchema(evaluation, schema, { source: o.eval });
  if (packaged) return runPackageContinuation(io, o, ds, evaluation, schema, log, tune);
  // An ONNX parent needs no key: the keyring that checked --data and --eval is closed before training.
  await o.keyringSession?.close();
  // The keyring also checks a protected --data or --eval file.
  const keyringUsed = o.protectedData?.verified === true || o.evalProtectedData?.verified === true;
  const packageOnly = (
    [
      ['--keyring', keyringUsed ? undefined : o.keyring],
      ['--trust', o.trust],
      ['--sign-key', o.signKey],
      ['--model-version', o.modelVersion],
      ['--detectors', o.detectors],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (packageOnly.length > 0)
    throw new BulwarkError(
      'ERR_USAGE',
      `${packageOnly.map(([n]) => n).join(', ')}: apply when --from is a protected package (.bwm); ${from} is not one`,
    );
  // `bulwark train` checked --out before any work (checkOutputPath): a DP fine-tune spends its budget
  // before the model is written.
  const out = resolve(o.out);
  let previous: Uint8Array;
  try {
    previous = await readFile(from);
  } catch (e) {
    throw fsError(e, from, 'cannot read model');
  }
  let r: Continuation;
  try {
    r = await tune(previous, ds, evaluation, schema);
  } finally {
    previous.fill(0);
  }
  await writeFileAtomic(out, r.onnx, { noClobber: o.force !== true });
  const c = r.comparison;
  const ids = await record(log, [
    {
      type: 'model.trained',
      data: {
        modelDigest: sha256Digest(r.onnx),
        datasetDigest: o.dataDigest,
        algorithm: r.algorithm,
        hyperparameters: {
          continuedFrom: r.previousDigest,
          ...r.hyperparameters,
          ...(o.evalDigest ? { evalDigest: o.evalDigest } : {}),
          seed: o.seed,
          ...protectedHyperparameters(o.protectedData),
          ...protectedHyperparameters(o.evalProtectedData, 'evalProtected'),
        },
        ...(r.privacy ? { privacy: r.privacy } : {}),
        metrics: comparisonMetrics(c),
      },
    },
  ]);
  io.result(
    {
      out,
      continuedFrom: r.previousDigest,
      ...r.result,
      comparison: c,
      ...(o.protectedData ? { protectedData: o.protectedData } : {}),
      ...(o.evalProtectedData ? { evalProtectedData: o.evalProtectedData } : {}),
      ...(ids[0] ? { auditEvent: ids[0] } : {}),
    },
    () => [...r.lines, `Model: ${out}`].join('\n'),
  );
}

/**
 * `--require-provenance` for one file read with its digest: the bytes used must be the output of a
 * `dataset.protected` event in the audit log (with `--audit-key`, proved under a signed checkpoint).
 * The digest is of the bytes the command read, never of the path hashed again (it may have changed).
 */
async function provenanceOf(
  io: Io,
  log: AuditLog,
  auditKey: string | undefined,
  file: string,
  digest: string,
  what: string,
): Promise<void> {
  const key = auditKey === undefined ? undefined : await loadVerifierKey(auditKey);
  const [p] = await requireProvenance(
    log,
    [{ source: file, digest }],
    key === undefined ? {} : { publicKey: key },
  );
  if (p)
    io.note(
      `provenance: ${file}${what} is protected dataset ${p.digest.slice(0, 19)}… (audit event #${p.index})`,
    );
}
