import { existsSync, readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError } from '../../core/index.js';
import type { Dataset } from '../../data/index.js';
import {
  INSPECT_METHODS,
  type InspectMethod,
  requireProvenance,
  type SanitizeRecord,
  trainSanitized,
} from '../../integrity/index.js';
import { type TrainTabularOptions, type TrainTabularResult, trainTabular } from '../../train/index.js';
import { floatOption } from '../options.js';
import type { Io } from '../output.js';

/** Options `bulwark train` takes for training-data integrity (kept here so train.ts changes little). */
export interface IntegrityTrainOpts {
  sanitize?: InspectMethod | true;
  expectedPoison: number;
  requireProvenance?: boolean;
  auditKey?: string;
}

export function addIntegrityTrainOptions(cmd: Command): Command {
  return cmd
    .option(
      '--sanitize [method]',
      `train, flag suspicious rows (${INSPECT_METHODS.join(', ')}; default both), remove them and train again`,
      (v: string) => {
        if (!(INSPECT_METHODS as readonly string[]).includes(v))
          throw new InvalidArgumentError(`expected one of ${INSPECT_METHODS.join(', ')}, got "${v}"`);
        return v as InspectMethod;
      },
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
      '--audit-key <key>',
      'the audit log public key (or a file): provenance also needs a verified inclusion proof',
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
  dataFile: string,
  log: AuditLog | undefined,
  dp: boolean,
): Promise<void> {
  if (o.requireProvenance && !log)
    throw new BulwarkError(
      'ERR_USAGE',
      '--require-provenance needs --audit <store> (or BULWARK_AUDIT_STORE)',
    );
  if (o.auditKey !== undefined && !o.requireProvenance)
    throw new BulwarkError('ERR_USAGE', '--audit-key applies with --require-provenance');
  // Sanitising inspects the data with a non-private model and removes rows by what it saw: not a DP
  // operation, so it is refused with DP training rather than silently skipped.
  if (dp && o.sanitize !== undefined)
    throw new BulwarkError(
      'ERR_USAGE',
      '--sanitize does not apply with DP training (the inspection is not private)',
    );
  if (log && o.requireProvenance) {
    const key =
      o.auditKey === undefined
        ? undefined
        : existsSync(o.auditKey)
          ? readFileSync(o.auditKey, 'utf8').trim()
          : o.auditKey;
    const [p] = await requireProvenance(log, [dataFile], key === undefined ? {} : { publicKey: key });
    if (p)
      io.note(
        `provenance: ${dataFile} is protected dataset ${p.digest.slice(0, 19)}… (audit event #${p.index})`,
      );
  }
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
): Promise<{ result: TrainTabularResult; sanitize?: SanitizeRecord }> {
  if (o.sanitize === undefined) return { result: await trainTabular(ds, train) };
  const method: InspectMethod = o.sanitize === true ? 'both' : o.sanitize;
  const s = await trainSanitized(
    ds,
    train,
    { method, expectedPoisonFraction: o.expectedPoison, seed: train.seed ?? 0 },
    (stage) => io.note(`sanitize: ${stage}`),
  );
  io.note(
    `sanitize: removed ${s.record.removed} of ${s.record.rowsBefore} rows (${method}); recorded in the model metadata (bulwark.sanitize)`,
  );
  return { result: s.result, sanitize: s.record };
}
