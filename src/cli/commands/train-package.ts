/**
 * `bulwark train --from PARENT.bwm --data NEW --eval EVAL --keyring K --trust T --sign-key KEY --out
 * NEW.bwm`: continuous learning from a protected model package (issue 12 §3).
 *
 * Order, each step refusing before the next runs:
 * 1. options and the output (exists without --force: ERR_FILE_EXISTS), signing key, trust policy;
 * 2. the parent package is verified exactly as every load verifies it (`decryptProtectedModel`, the
 *    code path of `loadProtectedModel`: signature, trust, digests, key unwrap, plaintext digest), and
 *    decrypted in memory only; a tampered or untrusted parent is refused with its own code here, before
 *    any training;
 * 3. the signing key must be trusted for the parent's model name under the same policy, so the new
 *    package will load where the parent did (ERR_SIGNER_UNTRUSTED otherwise), and the new version must
 *    differ from the parent's (ERR_USAGE), and a --detectors bundle must fit the parent's width and
 *    classes and, for a DP fine-tune, not be fitted on the batch or the parent's training data
 *    (ERR_DETECTOR_STATE, ERR_DP_UNACCOUNTED): all before the run, which for DP spends the budget;
 * 4. poisoning checks on the new batch with the parent's hidden layer, fine-tuning, and the regression
 *    comparison on the fixed evaluation set (ERR_MODEL_REGRESSION: nothing written, nothing recorded);
 * 5. `model.trained` in the audit log (with --audit), then the new package (`protectModel`, from the
 *    in-memory ONNX: the plaintext never touches disk) whose lineage names the parent package and this
 *    run's audit entry, then `model.packaged`.
 * The parent's plaintext and the new model's plaintext are overwritten once used.
 */
import { resolve } from 'node:path';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, sha256Digest } from '../../core/index.js';
import type { Dataset, Schema } from '../../data/index.js';
import {
  checkDetectorBundle,
  claimStatus,
  type DecryptedModel,
  decryptProtectedModel,
  loadSigningKey,
  loadTrustPolicy,
  type ModelLineage,
  type ModelManifest,
  modelPatternMatches,
  PACKAGE_EXTENSION,
  protectModel,
} from '../../model/index.js';
import { checkOutputPath } from '../options.js';
import type { Io } from '../output.js';
import { readDetectorBundleFile } from './model-detectors.js';
import { borrowKeyring, protectedHyperparameters } from './protected-data.js';
import { type Continuation, type ContinueCliOpts, comparisonMetrics, type Tuner } from './train-continue.js';

/** The parent's version with its last number incremented (`1.2.0` → `1.2.1`, `3` → `4`). */
export function nextVersion(v: string): string | undefined {
  const m = /^(.*?)(\d+)([^\d]*)$/.exec(v);
  if (!m) return undefined;
  return `${m[1]}${BigInt(m[2] as string) + 1n}${m[3]}`;
}

/** The new package's version: `--model-version`, else the parent's incremented; never the parent's. */
function newVersion(given: string | undefined, parentVersion: string): string {
  const version = given ?? nextVersion(parentVersion);
  if (version === undefined)
    throw new BulwarkError(
      'ERR_USAGE',
      `the parent's version "${parentVersion}" has no number to increment; give --model-version`,
    );
  if (version === parentVersion)
    throw new BulwarkError(
      'ERR_USAGE',
      `--model-version ${version}: the parent has this version; a fine-tuned model needs a new one`,
    );
  return version;
}

function required(o: ContinueCliOpts): { keyring: string; trust: string; signKey: string } {
  const missing = (
    [
      ['--keyring', o.keyring],
      ['--trust', o.trust],
      ['--sign-key', o.signKey],
    ] as const
  )
    .filter(([, v]) => v === undefined)
    .map(([n]) => n);
  if (missing.length > 0)
    throw new BulwarkError(
      'ERR_USAGE',
      `--from ${o.from}: a protected package needs ${missing.join(', ')} (verify and decrypt the parent, sign the new package)`,
    );
  if (!o.out.toLowerCase().endsWith(PACKAGE_EXTENSION))
    throw new BulwarkError(
      'ERR_USAGE',
      `--out ${o.out}: continuing a protected package writes a new package; name it *${PACKAGE_EXTENSION}`,
    );
  return { keyring: o.keyring as string, trust: o.trust as string, signKey: o.signKey as string };
}

/**
 * The datasets a DP fine-tune's guarantee covers (its batch and the parent's training data: the new
 * guarantee composes with the parent's), or null for a plain fine-tune (no guarantee: the parent's is
 * not inherited). Detectors sealed into the new package must not be fitted on any of them.
 */
function privateData(o: ContinueCliOpts, parent: ModelManifest): (string | undefined)[] | null {
  return o.dpEpsilon !== undefined ? [o.dataDigest, parent.lineage.datasetDigest] : null;
}

export async function runPackageContinuation(
  io: Io,
  o: ContinueCliOpts,
  ds: Dataset,
  evaluation: Dataset,
  schema: Schema | undefined,
  log: AuditLog | undefined,
  tune: Tuner,
): Promise<void> {
  const from = o.from as string;
  const need = required(o);
  const out = resolve(o.out);
  await checkOutputPath(out, { force: o.force });
  const trust = await loadTrustPolicy(need.trust);
  const signingKey = await loadSigningKey(need.signKey);
  // Checked before the run (a DP fine-tune spends its budget): a bad bundle is refused now.
  const detectors = o.detectors !== undefined ? await readDetectorBundleFile(o.detectors) : undefined;
  // The keyring that checked a protected --data or --eval, when there was one: opened once per run.
  const { keyring, release } = await borrowKeyring(o.keyringSession, { ...o, keyring: need.keyring });
  try {
    let parent: DecryptedModel | undefined;
    let r: Continuation;
    let version: string;
    try {
      parent = await decryptProtectedModel(from, { keyring, trust });
      const pm = parent.manifest;
      io.note(
        `parent: ${from} verified (signer ${parent.signer.name}, model ${pm.model.name} ${pm.model.version}, package ${parent.packageDigest.slice(0, 23)}…); decrypted in memory`,
      );
      if (
        !trust.signers.some(
          (s) => s.keyId === signingKey.keyId && s.models.some((m) => modelPatternMatches(m, pm.model.name)),
        )
      )
        throw new BulwarkError(
          'ERR_SIGNER_UNTRUSTED',
          `--sign-key ${need.signKey}: key ${signingKey.keyId.slice(0, 16)}… is not trusted for model "${pm.model.name}" by ${need.trust}; the new package would not load`,
          { details: { keyId: signingKey.keyId, model: pm.model.name } },
        );
      // Checked before the run: a DP fine-tune has spent its budget once `tune` returns.
      version = newVersion(o.modelVersion, pm.model.version);
      if (detectors !== undefined)
        checkDetectorBundle(
          detectors,
          privateData(o, pm),
          { features: pm.input.features, classes: pm.output.classes?.length },
          `--detectors ${o.detectors}`,
        );
      r = await tune(parent.onnx, ds, evaluation, schema, claimStatus(pm).privacy);
    } finally {
      parent?.wipe();
    }
    const pm = parent.manifest;
    try {
      const c = r.comparison;
      const parentRef = {
        packageDigest: parent.packageDigest,
        modelDigest: `sha256:${pm.onnx.sha256}`,
        name: pm.model.name,
        version: pm.model.version,
      };
      const datasetDigest = o.dataDigest;
      const hyperparameters = {
        continuedFrom: r.previousDigest,
        parentPackage: parentRef.packageDigest,
        ...r.hyperparameters,
        ...(o.evalDigest ? { evalDigest: o.evalDigest } : {}),
        seed: o.seed,
        ...protectedHyperparameters(o.protectedData),
        ...protectedHyperparameters(o.evalProtectedData, 'evalProtected'),
      };
      const metrics = { ...comparisonMetrics(c), evalEps: c.eps };
      // Recorded before packaging: the manifest names this entry (the run's audit reference).
      const trained = await log?.append({
        type: 'model.trained',
        data: {
          modelDigest: sha256Digest(r.onnx),
          datasetDigest,
          algorithm: r.algorithm,
          hyperparameters,
          ...(r.privacy ? { privacy: r.privacy } : {}),
          metrics,
        },
      });
      const lineage: ModelLineage = {
        datasetDigest,
        algorithm: r.algorithm,
        hyperparameters,
        metrics,
        parent: parentRef,
        ...(trained
          ? { trainingRun: { eventId: trained.id, index: trained.index, origin: (log as AuditLog).origin } }
          : {}),
      };
      const made = await protectModel(r.onnx, out, {
        keyring,
        keyId: pm.encryption.keyId,
        signingKey,
        name: pm.model.name,
        version,
        ...(pm.model.description !== undefined ? { description: pm.model.description } : {}),
        ...(schema ? { schema } : pm.input.fields ? { inputFields: pm.input.fields } : {}),
        lineage,
        // A DP fine-tune's guarantee (its bulwark.privacy metadata) is backed by the model.trained entry
        // just appended; without an audit log it goes out marked as an unchecked claim (the budget is
        // spent by now, so refusing would only lose the run).
        ...(log ? { trainingRecord: (d: string) => log.trainingRecord(d) } : {}),
        // With --accept-claims, a DP fine-tune of a parent whose guarantee nothing backs goes out marked
        // as claimed (its training record says parentPrivacy: claimed).
        acceptClaims: log === undefined || o.acceptClaims === true,
        ...(detectors !== undefined ? { detectors } : {}),
        // The parent's training data too: the new model's guarantee composes with the parent's.
        ...(o.dpEpsilon !== undefined ? { privateDatasets: [pm.lineage.datasetDigest] } : {}),
        frameSize: pm.encryption.frameSize,
        noClobber: o.force !== true,
      });
      // The parent's detectors describe the parent (its traffic, PRADA its predictions): they are not
      // copied. Say so when the new package goes out without any.
      const notes =
        pm.detectors && !made.manifest.detectors
          ? [
              `the parent carried detectors (${pm.detectors.kinds.join(', ')}); ${out} has none: fit them (bulwark model fit-detectors) and pass --detectors, or the gateway runs it unguarded`,
            ]
          : [];
      for (const n of notes) io.note(n);
      const packaged = await log?.append({
        type: 'model.packaged',
        data: {
          packageDigest: made.packageDigest,
          modelDigest: made.modelDigest,
          keyId: pm.encryption.keyId,
          signerKeyId: signingKey.keyId,
          ...(made.manifest.detectors?.fittedOn?.datasetDigest
            ? { detectorsDatasetDigest: made.manifest.detectors.fittedOn.datasetDigest }
            : {}),
        },
      });
      io.result(
        {
          out,
          package: made.packageDigest,
          modelDigest: made.modelDigest,
          name: made.manifest.model.name,
          version,
          parent: parentRef,
          continuedFrom: r.previousDigest,
          ...r.result,
          comparison: c,
          ...(o.protectedData ? { protectedData: o.protectedData } : {}),
          ...(o.evalProtectedData ? { evalProtectedData: o.evalProtectedData } : {}),
          signer: made.signer,
          ...(trained ? { auditEvent: trained.id } : {}),
          ...(packaged ? { packagedEvent: packaged.id } : {}),
          ...(notes.length > 0 ? { notes } : {}),
        },
        () =>
          [
            ...r.lines,
            `Package: ${out} (${made.manifest.model.name} ${version}, ${made.packageDigest}), signed by ${signingKey.keyId.slice(0, 16)}…`,
            `Lineage: fine-tuned from ${from} (${parentRef.name} ${parentRef.version}, ${parentRef.packageDigest})`,
            ...(trained && packaged
              ? [`Audit: model.trained event ${trained.id}, model.packaged event ${packaged.id}`]
              : []),
          ].join('\n'),
      );
    } finally {
      r.onnx.fill(0);
    }
  } finally {
    await release();
  }
}
