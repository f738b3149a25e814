/**
 * `bulwark train --from`: what the ONNX path (train-integrity.ts) and the protected-package path
 * (train-package.ts) share: the options, package detection, the fine-tuning run with its progress bar,
 * and the summary lines.
 */
import { withFileRead } from '../../core/index.js';
import type { Dataset, Schema } from '../../data/index.js';
import { type ContinueResult, continueTraining, type ModelComparison } from '../../integrity/index.js';
import { type ClaimStatus, PACKAGE_MAGIC } from '../../model/index.js';
import type { TrainedPrivacy } from '../../privacy/index.js';
import type { Io } from '../output.js';
import { type Progress, startProgress } from '../progress.js';
import type { KeyringSession, ProtectedDataRecord } from './protected-data.js';
import type { IntegrityTrainOpts } from './train-integrity.js';
import { protectedMetadata } from './train-protected.js';

/** The options of `bulwark train --from`. */
export type ContinueCliOpts = IntegrityTrainOpts & {
  data: string;
  /**
   * sha256 of the data file's bytes as read for training (readDatasetWithDigest): what the audit
   * event records, never a second read of the path, which may see another file.
   */
  dataDigest: string;
  label: string;
  out: string;
  force?: boolean;
  epochs?: number;
  batchSize: number;
  lr?: number;
  seed: number;
  adversarial?: string;
  /** Set for a DP fine-tune (`--dp-epsilon`): the new model carries a DP guarantee. */
  dpEpsilon?: number;
  /** `--no-verify-protected` (false): a protected --data or --eval file is not checked. */
  verifyProtected?: boolean;
  /** --data is a protected dataset: its id and whether it was verified (protected-data.ts). */
  protectedData?: ProtectedDataRecord;
  /** The same for --eval (set once it is read). */
  evalProtectedData?: ProtectedDataRecord;
  /** sha256 of the --eval file's bytes as read (set once it is read): recorded as `evalDigest`. */
  evalDigest?: string;
  /** The run's one keyring: checks the protected --data and --eval, then opens the package. */
  keyringSession?: KeyringSession;
};

/**
 * What a fine-tuning run (plain or DP) hands to the ONNX and package paths: the model, the comparison,
 * and what each path records and prints about its own checks.
 */
export interface Continuation {
  onnx: Uint8Array;
  previousDigest: string;
  comparison: ModelComparison;
  /** `model.trained` algorithm. */
  algorithm: string;
  /** The run's own `model.trained` hyperparameters (and the package lineage's). */
  hyperparameters: Record<string, string | number>;
  /** `model.trained` privacy (DP runs). */
  privacy?: TrainedPrivacy;
  /** The run's own fields of the `--json` result. */
  result: Record<string, unknown>;
  /** The run's own lines of the human summary. */
  lines: string[];
}

/** Fine-tunes the previous model's ONNX bytes on the batch (after its checks). */
export type Tuner = (
  previous: Uint8Array,
  ds: Dataset,
  evaluation: Dataset,
  schema: Schema | undefined,
  /** From a package: the status of the parent's privacy claim in its signed manifest. */
  parentPrivacyClaim?: ClaimStatus,
) => Promise<Continuation>;

/** The non-DP tuner: poisoning checks that remove flagged rows, fine-tuning, the comparison. */
export function plainTuner(io: Io, o: ContinueCliOpts): Tuner {
  return async (previous, ds, evaluation, schema) => {
    const r = await fineTune(io, o, previous, ds, evaluation, schema);
    return {
      onnx: r.onnx,
      previousDigest: r.previousDigest,
      comparison: r.comparison,
      algorithm: 'fine-tune',
      hyperparameters: {
        poisonCheck: r.inspection.method,
        poisonExpected: o.expectedPoison,
        poisonRemoved: r.removed,
        trainRows: r.trainRows,
      },
      result: {
        removed: r.removed,
        removedRows: removedDataRows(r),
        ...(r.reinstated ? { reinstated: r.reinstated } : {}),
        trainRows: r.trainRows,
      },
      lines: continuationLines(r),
    };
  };
}

/** Whether a file starts with the model-package magic (a `.bwm`, whatever its name). */
export async function isModelPackage(path: string): Promise<boolean> {
  return withFileRead(path, async (fh) => {
    const head = Buffer.alloc(PACKAGE_MAGIC.length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return bytesRead === head.length && head.equals(PACKAGE_MAGIC);
  });
}

/** Poisoning checks, fine-tuning and the regression comparison (shared by the ONNX and package paths). */
export async function fineTune(
  io: Io,
  o: ContinueCliOpts,
  previous: Uint8Array,
  ds: Dataset,
  evaluation: Dataset,
  schema: Schema | undefined,
): Promise<ContinueResult> {
  let bar: Progress | null = null;
  try {
    return await continueTraining(previous, ds, {
      label: o.label,
      expectedPoisonFraction: o.expectedPoison,
      ...(o.epochs === undefined ? {} : { epochs: o.epochs }),
      batchSize: o.batchSize,
      ...(o.lr === undefined ? {} : { learningRate: o.lr }),
      seed: o.seed,
      evaluation,
      metadata: protectedMetadata(o.protectedData),
      eps: o.evalEps,
      maxCleanDrop: o.maxCleanDrop,
      maxRobustDrop: o.maxRobustDrop,
      maxClassDrop: o.maxClassDrop,
      ...(schema ? { schema } : {}),
      onProgress: (done, total) => {
        bar ??= startProgress(io, 'fine-tune', total, 'batches');
        bar.update(done);
      },
    });
  } finally {
    (bar as Progress | null)?.stop();
  }
}

/** The human summary of a continuation's checks. */
export function continuationLines(r: ContinueResult): string[] {
  const c = r.comparison;
  const back = (r.reinstated ?? []).reduce((n, k) => n + k.rows, 0);
  return [
    `Poisoning check (${r.inspection.method}, previous model): removed ${r.removed} of ${r.inspection.rows} new rows; fine-tuned on ${r.trainRows}.${back > 0 ? ` ${back} rows of activation clusters were put back: the previous model gives them their own label.` : ''}`,
    ...comparisonLines(c),
  ];
}

const pct = (v: number) => `${(100 * v).toFixed(2)} %`;

/** The human lines of an accepted comparison: the accuracies, then each class's recall. */
export function comparisonLines(c: ModelComparison): string[] {
  return [
    `Evaluation (${c.rows} rows): clean ${pct(c.before.clean)} -> ${pct(c.after.clean)}, robust (${c.attack} eps ${c.eps}) ${pct(c.before.robust)} -> ${pct(c.after.robust)}: accepted.`,
    `Recall by class (limit ${c.maxClassDrop} each): ${c.classes.map((k) => `"${k.class}" (${k.rows} rows) ${pct(k.before)} -> ${pct(k.after)}`).join(', ')}; balanced accuracy ${pct(c.before.balanced)} -> ${pct(c.after.balanced)}.`,
  ];
}

/**
 * The comparison's figures for the `model.trained` record and the package lineage (flat finite numbers,
 * as the audit and manifest schemas take): the accuracies, balanced accuracy, and the largest drop of a
 * class's recall (the per-class figures, named by class value, are in the `--json` result).
 */
export function comparisonMetrics(c: ModelComparison): Record<string, number> {
  return {
    cleanBefore: c.before.clean,
    cleanAfter: c.after.clean,
    robustBefore: c.before.robust,
    robustAfter: c.after.robust,
    balancedBefore: c.before.balanced,
    balancedAfter: c.after.balanced,
    maxClassRecallDrop: Math.max(0, ...c.classes.map((k) => k.before - k.after)),
  };
}

/** The rows the poisoning check removed, as 1-based data rows (as `bulwark data inspect` numbers them). */
export function removedDataRows(r: ContinueResult): number[] {
  return [...new Set(r.inspection.flagged.map((f) => f.row + 1))].sort((a, b) => a - b);
}
