/**
 * `bulwark train --from MODEL --dp-epsilon E --schema S --max-flagged F …`: DP fine-tuning (issue 12 §3),
 * the {@link Tuner} the ONNX and package paths of `--from` run when DP options are given. The library
 * side (gate, warm start, same-ledger checks, composition) is src/integrity/continue-dp.ts.
 */

import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, isBulwarkError, sha256Digest } from '../../core/index.js';
import { continueTrainingDp } from '../../integrity/index.js';
import { type ActivationName, onnxMetadata } from '../../ml/index.js';
import { backClaims, type ClaimStatus, lineageFromOnnxMetadata } from '../../model/index.js';
import { NoiseSource, trainedPrivacy } from '../../privacy/index.js';
import type { Io } from '../output.js';
import { type Progress, startProgress } from '../progress.js';
import { loadVerifierKey } from './audit.js';
import { type ContinueCliOpts, comparisonLines, type Tuner } from './train-continue.js';
import { budgetLine, budgetResult, type DpTrainOpts, openDpRun } from './train-dp.js';
import { protectedMetadata } from './train-protected.js';

/** The options of a DP continuation; `model`/`hidden` only when given on the command line. */
export type DpContinueCliOpts = ContinueCliOpts &
  DpTrainOpts & {
    schema?: string;
    model?: 'logreg' | 'mlp';
    hidden?: number[];
    activation?: ActivationName;
    solver: string;
  };

/** Checks the options a DP continuation needs, before anything is read or opened. */
export function checkDpContinuation(o: DpContinueCliOpts, hasSchema: boolean): void {
  if (o.dpEpsilon === undefined) throw new BulwarkError('ERR_USAGE', '--dp-delta needs --dp-epsilon');
  if (!hasSchema)
    throw new BulwarkError(
      'ERR_USAGE',
      '--from with --dp-epsilon needs --schema FILE, the schema (public bounds and categories) the model was trained with',
    );
  if (o.maxFlagged === undefined)
    throw new BulwarkError(
      'ERR_USAGE',
      '--from with --dp-epsilon needs --max-flagged F: under DP the poisoning check is a gate that refuses the batch whole when it flags more than this share (calibrate it on known-clean batches with bulwark data inspect)',
    );
  if (o.solver === 'lbfgs')
    throw new BulwarkError('ERR_USAGE', '--solver lbfgs does not apply: a DP fine-tune runs DP-SGD');
}

/** How a parent's DP guarantee is backed, and (`why`) what set its record aside. */
interface ParentBacking {
  status: 'backed' | 'claimed' | 'none';
  why?: string;
}

/**
 * Whether the parent's differential-privacy guarantee is backed: by its package's signed evidence
 * (`packageClaim` 'backed'), or by a `model.trained` record of its digest in the audit log that records
 * the same guarantee (the check `model protect` runs, {@link backClaims}). `none`: the parent claims no
 * DP (continueTrainingDp refuses it). A record that contradicts the claim is ERR_LINEAGE_MISMATCH.
 *
 * Why it matters: a DP fine-tune's guarantee is the parent's plus this run's, and its own training
 * record backs the sum when it is packaged. Without this check a parent whose `bulwark.privacy`
 * metadata anyone had written came out of a fine-tune as a backed DP model.
 */
export async function parentPrivacyBacking(
  previous: Uint8Array,
  packageClaim: ClaimStatus | undefined,
  log: AuditLog | undefined,
  where: string,
  publicKey?: string,
  trainerKey?: string,
): Promise<ParentBacking> {
  const claimed = lineageFromOnnxMetadata(onnxMetadata(previous)).privacy;
  if (claimed === undefined) return { status: 'none' };
  if (packageClaim === 'backed') return { status: 'backed' };
  if (log === undefined) return { status: 'claimed' };
  const digest = sha256Digest(previous);
  // With the log's key (--audit-key) the record must be proved under a signed checkpoint, as model
  // protect --audit-key proves one: whoever can write the database could add a model.trained entry
  // of the parent and recompute its leaf hash, but cannot sign a checkpoint that covers it.
  const record = await log.trainingRecord(digest, publicKey === undefined ? {} : { publicKey });
  if (record === undefined) return { status: 'claimed' };
  // With the training job's key (--trainer-key) only a record it signed counts (record-signature.ts).
  if (trainerKey !== undefined) {
    // Loaded here, not at the top: the train command's other paths need no audit driver.
    const { parseVerifierKey, recordSignatureProblem } = await import('../../audit/index.js');
    const why = recordSignatureProblem(
      record.data,
      [parseVerifierKey(trainerKey)],
      `the parent's model.trained record (event ${record.eventId}, #${record.index})`,
    );
    if (why !== undefined) return { status: 'claimed', why };
  }
  try {
    const l = backClaims({ privacy: claimed }, { privacy: claimed }, digest, record, false, where);
    return { status: l.evidence?.privacy?.status === 'backed' ? 'backed' : 'claimed' };
  } catch (e) {
    // Its own record says it composes with a claimed guarantee: claimed in turn.
    if (isBulwarkError(e, 'ERR_LINEAGE_UNBACKED')) return { status: 'claimed' };
    throw e;
  }
}

/** The DP tuner: opens the ledger (with the audit sink), runs the DP continuation, closes the ledger. */
export function dpTuner(io: Io, o: DpContinueCliOpts, log: AuditLog | undefined): Tuner {
  return async (previous, ds, evaluation, schema, parentPrivacyClaim) => {
    if (schema === undefined || o.dpEpsilon === undefined || o.maxFlagged === undefined)
      throw new BulwarkError('ERR_INTERNAL', 'DP continuation options were not checked');
    // Before the ledger is opened and anything spent.
    const where = `--from ${o.from}`;
    const key = o.auditKey === undefined ? undefined : await loadVerifierKey(o.auditKey);
    const trainerKey = o.trainerKey === undefined ? undefined : await loadVerifierKey(o.trainerKey);
    const { status: parentPrivacy, why: untrusted } = await parentPrivacyBacking(
      previous,
      parentPrivacyClaim,
      log,
      where,
      key,
      trainerKey,
    );
    // Only a run recorded in an audit log can back the new guarantee later (model protect --audit):
    // there a parent's unchecked claim would come out as backed, so it is refused unless accepted. A
    // run with no log backs nothing; its package (if any) goes out marked claimed anyway.
    if (parentPrivacy === 'claimed' && log !== undefined) {
      if (o.acceptClaims !== true)
        throw new BulwarkError(
          'ERR_LINEAGE_UNBACKED',
          `${where}: the parent's differential-privacy guarantee is backed by no record of its training (${untrusted !== undefined ? `${untrusted} (--trainer-key)` : parentPrivacyClaim === undefined ? 'its bulwark.privacy metadata, which anyone can write, and no model.trained entry of it in the --audit log' : `its package marks it ${parentPrivacyClaim}, and the --audit log has no model.trained entry of it`}); this run's record would back a guarantee that composes with it: give the log the parent's training was recorded in (--audit), or --accept-claims to record the new guarantee as resting on an unchecked claim`,
          { details: { claims: 'privacy' } },
        );
      io.note(
        `${where}: the parent's DP guarantee is an unchecked claim (--accept-claims); the new model's is recorded as resting on it (parentPrivacy: claimed)`,
      );
    }
    if (key !== undefined && parentPrivacy === 'backed' && parentPrivacyClaim !== 'backed')
      io.note(
        `${where}: the parent's DP guarantee is backed by its model.trained record, proved under a checkpoint signed by --audit-key`,
      );
    const { delta, ledger } = await openDpRun(io, o, ds.rowCount, log, 'dp-sgd');
    let bar: Progress | null = null;
    try {
      const r = await continueTrainingDp(previous, ds, {
        label: o.label,
        schema,
        epsilon: o.dpEpsilon,
        delta,
        ledger,
        ...(o.budget === undefined ? {} : { budget: o.budget }),
        ...(o.analyst === undefined ? {} : { analyst: o.analyst }),
        ...(o.model === undefined ? {} : { model: o.model }),
        ...(o.hidden === undefined ? {} : { hidden: o.hidden }),
        ...(o.activation === undefined ? {} : { activation: o.activation }),
        accountant: o.accountant,
        ...(o.clip === undefined ? {} : { clipNorm: o.clip }),
        ...(o.epochs === undefined ? {} : { epochs: o.epochs }),
        batchSize: o.batchSize,
        ...(o.dpRows === undefined ? {} : { publicRows: o.dpRows }),
        ...(o.lr === undefined ? {} : { learningRate: o.lr }),
        optimizer: o.solver === 'adam' ? 'adam' : 'sgd',
        seed: o.seed,
        ...(o.seededNoise === undefined
          ? {}
          : { noise: NoiseSource.insecureSeeded(o.seededNoise, 'bulwark train --from') }),
        expectedPoisonFraction: o.expectedPoison,
        maxFlagged: o.maxFlagged,
        ...(o.gate === undefined ? {} : { method: o.gate }),
        evaluation,
        eps: o.evalEps,
        maxCleanDrop: o.maxCleanDrop,
        maxRobustDrop: o.maxRobustDrop,
        maxClassDrop: o.maxClassDrop,
        metadata: protectedMetadata(o.protectedData),
        note: (m) => io.note(m),
        onProgress: (done, total) => {
          bar ??= startProgress(io, 'dp-fine-tune', total, 'steps');
          bar.update(done);
        },
      });
      const p = r.privacy;
      const c = r.comparison;
      const run = p.run ?? { epsilon: p.epsilon, delta: p.delta };
      return {
        onnx: r.onnx,
        previousDigest: r.previousDigest,
        comparison: c,
        algorithm: 'fine-tune-dp-sgd',
        hyperparameters: {
          poisonGate: r.gate.method,
          poisonExpected: r.gate.expectedPoisonFraction,
          poisonMaxFlagged: r.gate.maxFlagged,
          trainRows: r.trainRows,
          budget: p.budget?.dataset ?? '',
          ledgerId: p.budget?.ledger ?? '',
          ...(parentPrivacy === 'none' ? {} : { parentPrivacy }),
        },
        privacy: trainedPrivacy(p, r.receipt),
        result: {
          trainRows: r.trainRows,
          gate: r.gate,
          privacy: p,
          budget: budgetResult(r.receipt),
          seededNoise: o.seededNoise !== undefined,
          ...(parentPrivacy === 'none' ? {} : { parentPrivacy }),
        },
        lines: [
          `Poisoning gate (${r.gate.method}, previous model): passed (at most ${r.gate.maxFlagged} of the ${r.trainRows} new rows flagged; no row removed under DP).`,
          `DP fine-tune (DP-SGD from the previous weights): this run epsilon ${Number(run.epsilon.toPrecision(4))}, delta ${run.delta}; the model's guarantee with its parent's (basic composition): epsilon ${Number(p.epsilon.toPrecision(4))}, delta ${Number(p.delta.toPrecision(4))}.`,
          budgetLine(r.receipt, ledger.id),
          ...comparisonLines(c),
        ].filter((l) => l !== ''),
      };
    } finally {
      (bar as Progress | null)?.stop();
      await ledger.close();
    }
  };
}
