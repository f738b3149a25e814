/**
 * The manifest of a protected model package: what the model is (name, version), what it takes and
 * returns (input fields with their public bounds and the preprocessing that turns them into features,
 * output names and classes), and where it comes from (dataset digest, differential-privacy
 * guarantee and budget spent, adversarial-training settings, the audit-log entry of its training run).
 *
 * The manifest is stored in the clear (anyone may read it: `bulwark model inspect`), and its SHA-256
 * digest is one of the resources of the signed statement, so it cannot be changed without breaking the
 * signature. It holds no secret: the model's weights are only in the encrypted part.
 */
import { z } from 'zod';
import { BulwarkError } from '../core/index.js';

export const MANIFEST_FORMAT = 'bulwark.model-manifest';
/**
 * Version 2 adds `detectors` (a detector bundle in the encrypted part). Version 3 adds
 * `lineage.evidence` (what backs the privacy and adversarial-training claims) and `privacy.noise`;
 * every version-3 manifest with a claim says what backs it. Version 4 adds
 * `detectors.fittedOn.protectedData` (the detectors' data was a protected dataset: its id and whether
 * it was verified against its manifest) and the claim source `parent` (a DP fine-tune whose guarantee
 * composes with a parent's that nothing backed); a release that reads only 1 to 3 refuses it with
 * ERR_FORMAT_VERSION rather than as a malformed manifest. A package is written with the lowest
 * version that holds what it carries (1 without detectors or claims), so Bulwark releases that read
 * only older versions keep reading it, and refuse (ERR_FORMAT_VERSION) what they would misread: a
 * release that reads only 1 and 2 would show a claim nobody checked as a guarantee.
 */
export const MANIFEST_VERSION = 4;
/** The versions this Bulwark reads. */
export const MANIFEST_VERSIONS: readonly number[] = [1, 2, 3, 4];

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');
const finite = z.number().refine(Number.isFinite, 'expected a finite number');
const nonNegative = finite.refine((x) => x >= 0, 'expected >= 0');
const name = z.string().min(1).max(256);
const scalar = z.union([z.string().max(4096), finite, z.boolean(), z.null()]);

/** A model name: letters, digits, `.`, `_`, `-`, `/` (so `team/fraud` works), as trust rules match it. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

const inputFieldSchema = z.strictObject({
  name,
  type: name,
  nullable: z.boolean().optional(),
  /** Public bounds (from the schema, never from the data). */
  bounds: z
    .strictObject({ min: z.union([finite, z.string()]), max: z.union([finite, z.string()]) })
    .optional(),
  categories: z.array(z.string()).optional(),
});

const privacySchema = z.strictObject({
  method: name.optional(),
  epsilon: nonNegative,
  delta: nonNegative.refine((x) => x < 1, 'expected delta < 1'),
  accountant: name.optional(),
  neighbours: name.optional(),
  noiseMultiplier: nonNegative.optional(),
  clipNorm: nonNegative.optional(),
  samplingRate: nonNegative.optional(),
  steps: z.number().int().min(0).optional(),
  /** Budget spent from the ledger by the run (may exceed epsilon when spent with slack). */
  budgetSpent: z.strictObject({ epsilon: nonNegative, delta: nonNegative }).optional(),
  /**
   * Version 3: `insecure-seeded` when the trainer drew the noise from a seeded generator
   * (`--seeded-noise`, tests): whoever knows the seed can remove it, so ε and δ do not hold.
   */
  noise: z.literal('insecure-seeded').optional(),
});

const adversarialSchema = z.strictObject({
  method: name,
  eps: nonNegative,
  steps: z.number().int().min(0).optional(),
  ratio: nonNegative.optional(),
});

const auditRefSchema = z.strictObject({
  /** The audit log's origin line (which log). */
  origin: name.optional(),
  /** Event id of the `model.trained` entry. */
  eventId: name,
  /** Its leaf index in the log. */
  index: z.number().int().min(0).optional(),
  /** SHA-256 of the entry's canonical bytes (its leaf content), `sha256:…`. */
  entryDigest: digest.optional(),
});

/**
 * What backs one claim of the lineage (its differential-privacy guarantee, its adversarial training),
 * manifest version 3:
 * - `backed`: Bulwark's own record of the training, the `model.trained` entry `event` of the audit log
 *   `event.origin`, names this model's digest (the manifest's `onnx.sha256`, which covers the model's
 *   metadata too) and records the same parameters (`protectModel` checked them);
 * - `claimed`: nothing backs it; it was copied from the model file's `bulwark.*` metadata
 *   (`model-metadata`) or given by the caller of `protectModel` (`packager`), which anyone can write.
 */
const trainingEventSchema = z.strictObject({
  /** The audit log's origin line. */
  origin: name,
  /** Event id of the `model.trained` entry. */
  eventId: name,
  /** Its leaf index in the log. */
  index: z.number().int().min(0),
  /** SHA-256 of the entry's canonical bytes (its leaf content), `sha256:…`. */
  entryDigest: digest,
});
const claimEvidenceSchema = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('backed'), event: trainingEventSchema }),
  z.strictObject({
    status: z.literal('claimed'),
    source: z.enum(['model-metadata', 'packager', 'parent']),
  }),
]);

/**
 * The package a fine-tuned model was trained from (`bulwark train --from PARENT.bwm`): which verified
 * package (its whole-file digest) and which model in it. The parent's own lineage (its dataset, privacy
 * guarantee, training run) is in the parent's manifest; it is not copied, because it describes the
 * parent, not this model.
 */
const parentSchema = z.strictObject({
  /** `sha256:` of the whole parent package file, as verified before fine-tuning. */
  packageDigest: digest,
  /** `sha256:` of the parent's plaintext ONNX. */
  modelDigest: digest,
  name: z.string().regex(MODEL_NAME_PATTERN),
  version: z.string().min(1).max(64),
});

/**
 * The detector bundle (src/robust `detectorBundleToJson`) stored after the model in the encrypted part:
 * what it holds and its digest, in the clear; its state (training-data statistics) only encrypted.
 */
const detectorsSchema = z.strictObject({
  /** SHA-256 of the bundle's JSON bytes (hex); also the `detectors.json` resource of the statement. */
  sha256: hex64,
  bytes: z.number().int().min(1),
  /** Detector kinds in the bundle. */
  kinds: z.array(name).min(1),
  /** What the detectors were fitted and calibrated on (the bundle's `fittedOn`). */
  fittedOn: z
    .strictObject({
      datasetDigest: digest.optional(),
      fitRows: z.number().int().min(0),
      calibrationRows: z.number().int().min(0),
      seed: z.number().int().min(0).optional(),
      /**
       * Version 4: the data was a protected dataset (`bulwark data protect`): its id (null when the
       * check was skipped and its manifest did not parse) and whether its rows were verified.
       */
      protectedData: z
        .strictObject({
          dataset: z
            .string()
            .regex(/^[0-9a-f]{32}$/)
            .nullable(),
          verified: z.boolean(),
        })
        .optional(),
    })
    .optional(),
});

export const manifestSchema = z
  .strictObject({
    format: z.literal(MANIFEST_FORMAT),
    version: z.number().int(),
    model: z.strictObject({
      name: z.string().regex(MODEL_NAME_PATTERN, 'expected letters, digits, ".", "_", "-", "/"'),
      version: z.string().min(1).max(64),
      description: z.string().max(4096).optional(),
      createdAt: z.string().min(1).max(64),
      /** Tool that made the package (`bulwark x.y.z`). */
      packager: name,
    }),
    input: z.strictObject({
      /** The graph input's name. */
      name,
      /** Width of the feature vector the model takes. */
      features: z.number().int().min(1),
      featureNames: z.array(z.string()).optional(),
      /** The label the model predicts (a schema field name). */
      label: name.optional(),
      /** Raw fields a request carries, with their public bounds. */
      fields: z.array(inputFieldSchema).optional(),
      /** The preprocessing pipeline state (`bulwark.preprocess` format, see src/data/preprocess.ts). */
      preprocessing: z.unknown().optional(),
    }),
    output: z.strictObject({
      names: z.array(name).min(1),
      classes: z.array(z.string()).optional(),
    }),
    onnx: z.strictObject({
      /** SHA-256 of the plaintext ONNX bytes (hex); also the `model.onnx` resource of the statement. */
      sha256: hex64,
      bytes: z.number().int().min(1),
      producer: z.string().max(256).optional(),
      opset: z.number().int().min(1).optional(),
    }),
    encryption: z.strictObject({
      /** `bulwark-stream-v1`: src/keys/stream.ts, AES-256-GCM STREAM with HKDF and a key commitment. */
      scheme: z.literal('bulwark-stream-v1'),
      /** Keyring key (KEK) that wraps the data key; the wrapped key itself is in the stream header. */
      keyId: name,
      keyVersion: z.number().int().min(1),
      keyring: z.string().regex(/^[0-9a-f]{32}$/),
      frameSize: z.number().int().min(1),
    }),
    lineage: z.strictObject({
      datasetDigest: digest.optional(),
      algorithm: name.optional(),
      hyperparameters: z.record(z.string().max(256), scalar).optional(),
      metrics: z.record(z.string().max(256), finite).optional(),
      privacy: privacySchema.optional(),
      adversarial: adversarialSchema.optional(),
      trainingRun: auditRefSchema.optional(),
      /** Set when this model was fine-tuned from another package (continuous learning). */
      parent: parentSchema.optional(),
      /** Version 3: what backs `privacy` and `adversarial` (one entry for each claim present). */
      evidence: z
        .strictObject({
          privacy: claimEvidenceSchema.optional(),
          adversarial: claimEvidenceSchema.optional(),
        })
        .optional(),
    }),
    /** Manifest version 2: detectors travel in the package (after the model, in the encrypted part). */
    detectors: detectorsSchema.optional(),
  })
  .refine((m) => m.detectors === undefined || m.version >= 2, {
    message: 'detectors need manifest version 2',
    path: ['detectors'],
  })
  .refine((m) => m.detectors?.fittedOn?.protectedData === undefined || m.version >= 4, {
    message: "the detectors' protected data needs manifest version 4",
    path: ['detectors', 'fittedOn', 'protectedData'],
  })
  .refine(
    (m) => (m.lineage.evidence === undefined && m.lineage.privacy?.noise === undefined) || m.version >= 3,
    { message: 'claim evidence needs manifest version 3', path: ['lineage', 'evidence'] },
  )
  // From version 3 every claim says what backs it, and evidence is only for a claim that is there: a
  // reader never has to guess whether a guarantee was checked.
  .refine(
    (m) =>
      m.version < 3 ||
      (['privacy', 'adversarial'] as const).every(
        (k) => (m.lineage[k] === undefined) === (m.lineage.evidence?.[k] === undefined),
      ),
    {
      message: 'each privacy or adversarial claim needs its evidence, and only those',
      path: ['lineage', 'evidence'],
    },
  );

/** The manifest of a protected model package (see docs/model-package.md). */
export type ModelManifest = z.infer<typeof manifestSchema>;
/** Training lineage recorded in a manifest. */
export type ModelLineage = ModelManifest['lineage'];
/** One raw input field of a manifest, with its public bounds. */
export type ManifestInputField = z.infer<typeof inputFieldSchema>;
/** The manifest's record of the package's detector bundle. */
export type ManifestDetectors = z.infer<typeof detectorsSchema>;
/** What backs one privacy or adversarial claim of a lineage (manifest version 3). */
export type ClaimEvidence = z.infer<typeof claimEvidenceSchema>;

/**
 * How a package's privacy or adversarial claim can be taken: `backed` by the audit entry of the
 * training run, `claimed` (nothing backs it), `unrecorded` (a package of manifest version 1 or 2, made
 * before Bulwark recorded what backs a claim: treat it as claimed), or `none` (no such claim).
 */
export type ClaimStatus = 'backed' | 'claimed' | 'unrecorded' | 'none';

/** The status of a manifest's privacy and adversarial claims (see {@link ClaimStatus}). */
export function claimStatus(m: ModelManifest): { privacy: ClaimStatus; adversarial: ClaimStatus } {
  const of = (k: 'privacy' | 'adversarial'): ClaimStatus =>
    m.lineage[k] === undefined ? 'none' : (m.lineage.evidence?.[k]?.status ?? 'unrecorded');
  return { privacy: of('privacy'), adversarial: of('adversarial') };
}

/** Checks a parsed manifest (format, version, every field); `where` names the package in messages. */
export function parseManifest(raw: unknown, where: string): ModelManifest {
  if (typeof raw === 'object' && raw !== null && (raw as { format?: unknown }).format === MANIFEST_FORMAT) {
    const v = (raw as { version?: unknown }).version;
    if (typeof v !== 'number' || !MANIFEST_VERSIONS.includes(v)) {
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `${where}: model manifest version ${String(v)} is not supported (this Bulwark reads ${MANIFEST_VERSIONS.slice(0, -1).join(', ')} and ${MANIFEST_VERSIONS.at(-1)})`,
      );
    }
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue?.path.join('.') ?? '';
    throw new BulwarkError(
      'ERR_PACKAGE_INVALID',
      `${where}: malformed model manifest${at ? ` at ${at}` : ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}
