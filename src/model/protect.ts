/**
 * `protectModel`: ONNX model → protected package, in one streaming pass over the output: header and
 * manifest, the model encrypted with the framed streaming AEAD of src/keys/stream.ts under a fresh
 * data key wrapped by the keyring, then the signature over the statement of the body's digests, then
 * the footer. The output appears only when complete (temporary file, fsync, rename).
 */
import { createHash, type Hash } from 'node:crypto';
import {
  AtomicFileStream,
  BulwarkError,
  bulwarkVersion,
  fsError,
  invalidArgument,
  readInputFile,
} from '../core/index.js';
import type { Schema } from '../data/index.js';
import { DEFAULT_FRAME_SIZE, encryptStream, type Keyring } from '../keys/index.js';
import { metadataJson } from '../ml/index.js';
import { encodeFooter, encodeHeader, FOOTER_BYTES, HEADER_BYTES, MAX_MANIFEST_BYTES } from './format.js';
import {
  type ClaimEvidence,
  MANIFEST_FORMAT,
  type ManifestDetectors,
  type ManifestInputField,
  MODEL_NAME_PATTERN,
  type ModelLineage,
  type ModelManifest,
  parseManifest,
} from './manifest.js';
import { assertOnnxOpenable, externalTensors, onnxInfo } from './onnx-info.js';
import { type OnnxMemoryOptions, onnxMemoryBound } from './onnx-memory.js';
import { buildStatement, type SignedResource, type SigningKey, signStatement } from './sign.js';

/** Names of the statement's resources. */
export const RESOURCE_MANIFEST = 'manifest.json';
export const RESOURCE_MODEL = 'model.onnx';
export const RESOURCE_BODY = 'package.body';
/** The detector bundle (manifest version 2), when the package carries one. */
export const RESOURCE_DETECTORS = 'detectors.json';

/** ONNX metadata keys Bulwark's trainers write (src/train/tabular.ts META_*, src/privacy ONNX_META). */
export const ONNX_META_KEYS = {
  pipeline: 'bulwark.pipeline',
  label: 'bulwark.label',
  classValues: 'bulwark.class_values',
  features: 'bulwark.features',
  privacy: 'bulwark.privacy',
  adversarial: 'bulwark.adversarial',
} as const;

export interface ProtectOptions {
  keyring: Keyring;
  /** Keyring key (KEK) that wraps the data key (default `data`). */
  keyId?: string;
  /** The signing key. Without one the package is unsigned and every loader refuses it. */
  signingKey?: SigningKey;
  name: string;
  version: string;
  description?: string;
  /** The data schema: its fields (minus the label) with their public bounds go into the manifest. */
  schema?: Schema;
  /**
   * Input fields for the manifest when there is no `schema` (e.g. carried over from the package a
   * fine-tuned model comes from). Ignored when `schema` is given.
   */
  inputFields?: ManifestInputField[];
  /**
   * Lineage, merged over what the ONNX metadata says (privacy, adversarial training). Its `evidence`
   * is ignored: {@link protectModel} works it out (below).
   */
  lineage?: ModelLineage;
  /**
   * Bulwark's record of the model's training: the `model.trained` audit entry that produced it, or a
   * function that finds it by the model's `sha256:` digest (the CLI looks in the `--audit` log). A
   * privacy or adversarial claim of the lineage is `backed` when this record names the model's digest
   * and records the same parameters; a record that contradicts the lineage is refused
   * (ERR_LINEAGE_MISMATCH). The function returns `{ missing }` when it found a record it does not
   * accept (one its trainer did not sign): `missing` says why, in the refusal of a claim.
   */
  trainingRecord?:
    | TrainingRecord
    | ((modelDigest: string) => Promise<TrainingRecord | { missing: string } | undefined>);
  /**
   * Package a privacy or adversarial claim that no training record backs, marked `claimed` in the
   * manifest. Without it such a claim is refused (ERR_LINEAGE_UNBACKED): anyone can write the
   * `bulwark.privacy` metadata of a model file.
   */
  acceptClaims?: boolean;
  /**
   * A detector bundle (src/robust `detectorBundleToJson`, format `bulwark.detectors`) to carry after
   * the model in the encrypted part; the gateway runs it. Its state is statistics of the rows it was
   * fitted on: with a differentially private model it must name its data (`fittedOn.datasetDigest`),
   * the lineage must name the training data (`datasetDigest`), and the two must differ
   * (ERR_DP_UNACCOUNTED).
   */
  detectors?: unknown;
  /**
   * With a DP model and `detectors`: digests of other datasets its guarantee covers besides the
   * lineage's `datasetDigest` (a DP fine-tune: its parent's training data; undefined for one not named),
   * on which the bundle must not have been fitted either.
   */
  privateDatasets?: readonly (string | undefined)[];
  /**
   * The memory bound the model must keep within (`onnxMemoryBound`; defaults as there): a model whose
   * tensors may pass it, or whose sizes cannot be bounded, is refused before it is signed
   * (ERR_MODEL_UNSAFE), as the gateway would refuse to load it.
   */
  memory?: OnnxMemoryOptions;
  /** Encrypted frame size (default 1 MiB). */
  frameSize?: number;
  /** Refuse to overwrite `out`. */
  noClobber?: boolean;
  /** Progress: encrypted bytes written so far, of about `total` (the model's size). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * A `model.trained` audit entry (src/audit, `AuditLog.producer('model:<digest>')`) as `protectModel`
 * checks claims against it: where it is, the SHA-256 of its canonical bytes, and its data.
 */
export interface TrainingRecord {
  /** The audit log's origin line. */
  origin: string;
  eventId: string;
  index: number;
  /** `sha256:` of the entry's canonical bytes (its leaf content). */
  entryDigest: string;
  data: {
    modelDigest: string;
    datasetDigest: string;
    privacy?: {
      epsilon: number;
      delta: number;
      accountant: string;
      noiseMultiplier?: number;
      clipNorm?: number;
      budgetSpent?: { epsilon: number; delta: number };
    };
    adversarial?: { attack: string; epsilon: number; steps?: number; ratio?: number };
    /**
     * The run's hyperparameters. A DP fine-tune's `parentPrivacy: 'claimed'` says its guarantee
     * composes with a parent's that nothing backed: the record then backs no privacy claim.
     */
    hyperparameters?: Readonly<Record<string, unknown>>;
  };
}

export interface ProtectResult {
  path: string;
  manifest: ModelManifest;
  /** `sha256:` of the whole package file. */
  packageDigest: string;
  /** `sha256:` of the plaintext ONNX. */
  modelDigest: string;
  /** Bytes of the package and of the ONNX it holds. */
  packageBytes: number;
  /** Bytes of the detector bundle it holds (0: none). */
  detectorBytes: number;
  modelBytes: number;
  signer: { keyId: string; algorithm: string } | null;
}

const PRIVACY_KEYS = [
  'method',
  'epsilon',
  'delta',
  'accountant',
  'neighbours',
  'noiseMultiplier',
  'clipNorm',
  'samplingRate',
  'steps',
  'noise',
] as const;

/** Lineage that the ONNX metadata of `bulwark train` states (privacy guarantee, adversarial training). */
export function lineageFromOnnxMetadata(meta: Record<string, string>): ModelLineage {
  const out: ModelLineage = {};
  const p = metadataJson<unknown>(meta, ONNX_META_KEYS.privacy, 'model');
  if (p && typeof p === 'object') {
    const src = p as Record<string, unknown>;
    const privacy: Record<string, unknown> = {};
    for (const k of PRIVACY_KEYS) if (src[k] !== undefined) privacy[k] = src[k];
    out.privacy = privacy as ModelLineage['privacy'];
  }
  const a = metadataJson<unknown>(meta, ONNX_META_KEYS.adversarial, 'model');
  if (a && typeof a === 'object') {
    const src = a as Record<string, unknown>;
    const adv: Record<string, unknown> = { method: src['method'], eps: src['eps'] };
    if (src['steps'] !== undefined) adv['steps'] = src['steps'];
    if (src['ratio'] !== undefined) adv['ratio'] = src['ratio'];
    out.adversarial = adv as ModelLineage['adversarial'];
  }
  return out;
}

function inputFields(
  schema: Schema | undefined,
  label: string | undefined,
): ManifestInputField[] | undefined {
  if (!schema) return undefined;
  return schema.fields
    .filter((f) => f.name !== (label ?? schema.label))
    .map((f) => {
      const o: ManifestInputField = { name: f.name, type: f.type, nullable: f.nullable };
      if (f.bounds) o.bounds = { min: f.bounds.min, max: f.bounds.max };
      if (f.categories) o.categories = [...f.categories];
      return o;
    });
}

const BUNDLE_FORMAT = 'bulwark.detectors';

/**
 * Checks a detector bundle for packaging with a model (src/model does not depend on src/robust, which
 * loads the detectors: `bulwark model protect` loads the bundle against the model before packaging it,
 * and the gateway loads it again at every start): its envelope, the model's width and class count, and
 * for a differentially private model the DP rule. `privateData` lists the digests of every dataset the
 * model's DP guarantee covers (the lineage's `datasetDigest`; for a DP fine-tune also its parent's
 * training data), undefined for one that is not named; null for a model without a DP guarantee.
 * ERR_DETECTOR_STATE or ERR_DP_UNACCOUNTED. Run it before work that cannot be undone (a DP fine-tune
 * spends its budget), and `protectModel` runs it again.
 */
export function checkDetectorBundle(
  bundle: unknown,
  privateData: readonly (string | undefined)[] | null,
  model: { features: number; classes: number | undefined },
  where: string,
): { kinds: string[]; fittedOn: ManifestDetectors['fittedOn'] | undefined } {
  const bad = (why: string) => new BulwarkError('ERR_DETECTOR_STATE', `${where}: the detector bundle ${why}`);
  if (typeof bundle !== 'object' || bundle === null || Array.isArray(bundle)) throw bad('is not an object');
  const b = bundle as Record<string, unknown>;
  if (b['format'] !== BUNDLE_FORMAT) throw bad(`is not a "${BUNDLE_FORMAT}" document`);
  const det = b['detectors'];
  if (typeof det !== 'object' || det === null || Array.isArray(det) || Object.keys(det).length === 0)
    throw bad('holds no detector');
  if (b['features'] !== model.features)
    throw bad(`was made for ${String(b['features'])} features, the model takes ${model.features}`);
  if (model.classes !== undefined && b['classes'] !== model.classes)
    throw bad(`was made for ${String(b['classes'])} classes, the model has ${model.classes}`);
  const fittedOn = b['fittedOn'] as ManifestDetectors['fittedOn'] | undefined;
  if (privateData !== null) {
    // The DP guarantee bounds what the model reveals about its training rows; detector state (class
    // means, a precision matrix) computed on those rows would reveal them with no bound at all.
    const d = fittedOn?.datasetDigest;
    if (d === undefined)
      throw new BulwarkError(
        'ERR_DP_UNACCOUNTED',
        `${where}: the model is differentially private and the detector bundle does not say which data it was fitted on: refit it naming its data (bulwark model fit-detectors records the file's digest)`,
      );
    // Without the training data's digest nothing tells the detectors' data apart from it: the rule
    // would pass any bundle, the training file's included (`model protect` without --dataset).
    if (privateData.length === 0 || privateData.includes(undefined))
      throw new BulwarkError(
        'ERR_DP_UNACCOUNTED',
        `${where}: the model is differentially private and its lineage does not name its training data, so the detectors' data (${d.slice(0, 19)}…) cannot be shown to be other rows: name it (bulwark model protect --dataset FILE or --dataset-digest)`,
      );
    if (privateData.includes(d))
      throw new BulwarkError(
        'ERR_DP_UNACCOUNTED',
        `${where}: the detectors were fitted on the model's private training data (${d.slice(0, 19)}…): their state would release it outside the DP guarantee; fit them on held-out data`,
      );
  }
  return { kinds: Object.keys(det), fittedOn };
}

/** The serialised detector bundle and its manifest record, checked by {@link checkDetectorBundle}. */
function detectorsRecord(
  bundle: unknown,
  privateData: readonly (string | undefined)[] | null,
  model: { features: number; classes: number | undefined },
  where: string,
): { bytes: Buffer; record: ManifestDetectors } {
  const { kinds, fittedOn } = checkDetectorBundle(bundle, privateData, model, where);
  const bytes = Buffer.from(JSON.stringify(bundle), 'utf8');
  return {
    bytes,
    record: {
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
      kinds,
      ...(fittedOn !== undefined ? { fittedOn } : {}),
    },
  };
}

/**
 * Checks the lineage's privacy and adversarial claims against Bulwark's record of the training and
 * returns the lineage to sign, with `evidence` for each claim (and, from a record, the training data's
 * digest, the run's audit reference and the budget it spent, when the lineage lacks them).
 * ERR_LINEAGE_MISMATCH: the record is of another model, or contradicts the lineage. ERR_LINEAGE_UNBACKED:
 * a claim without a record, unless `acceptClaims`.
 */
export function backClaims(
  lineage: ModelLineage,
  fromMetadata: ModelLineage,
  modelDigest: string,
  record: TrainingRecord | undefined,
  acceptClaims: boolean,
  where: string,
  /** Why no record backs the claims, and what to do, when the caller knows better than "give the log". */
  missing = 'give the audit log its training was recorded in (--audit)',
): ModelLineage {
  const { evidence: _ignored, ...rest } = lineage;
  const out: ModelLineage = rest;
  const mismatch = (why: string, cite = true) =>
    new BulwarkError(
      'ERR_LINEAGE_MISMATCH',
      `${where}: ${why}${record && cite ? ` (audit event ${record.eventId} in ${record.origin})` : ''}`,
      { details: { modelDigest, ...(record ? { eventId: record.eventId } : {}) } },
    );
  if (record) {
    const d = record.data;
    if (d.modelDigest !== modelDigest)
      throw mismatch(`the training record is of model ${d.modelDigest}, not of this model (${modelDigest})`);
    if (out.datasetDigest !== undefined && out.datasetDigest !== d.datasetDigest)
      throw mismatch(
        `the lineage names training data ${out.datasetDigest}; the audit log records ${d.datasetDigest}`,
      );
    const run = out.trainingRun;
    if (
      run !== undefined &&
      (run.eventId !== record.eventId ||
        (run.origin !== undefined && run.origin !== record.origin) ||
        (run.index !== undefined && run.index !== record.index) ||
        (run.entryDigest !== undefined && run.entryDigest !== record.entryDigest))
    )
      throw mismatch(
        `the lineage names training run ${run.eventId}${run.index !== undefined ? ` (entry ${run.index})` : ''}${run.origin !== undefined ? ` in ${run.origin}` : ''}; the audit log's record of this model is event ${record.eventId} (entry ${record.index}) in ${record.origin}`,
        false,
      );
    const differs = (claimed: unknown, recorded: unknown) => claimed !== undefined && claimed !== recorded;
    const p = out.privacy;
    if (p) {
      const e = d.privacy;
      if (!e)
        throw mismatch(
          `the model claims (${p.epsilon}, ${p.delta})-differential privacy; the audit log records its training without differential privacy`,
        );
      const bad = (
        [
          ['epsilon', p.epsilon, e.epsilon],
          ['delta', p.delta, e.delta],
          ['accountant', p.accountant ?? p.method, e.accountant],
          ['noiseMultiplier', p.noiseMultiplier, e.noiseMultiplier],
          ['clipNorm', p.clipNorm, e.clipNorm],
          ['budgetSpent.epsilon', p.budgetSpent?.epsilon, e.budgetSpent?.epsilon],
          ['budgetSpent.delta', p.budgetSpent?.delta, e.budgetSpent?.delta],
        ] as const
      ).filter(([, c, r]) => differs(c, r));
      if (bad.length > 0)
        throw mismatch(
          `the privacy claim differs from the audit log's record of the training: ${bad.map(([k, c, r]) => `${k} ${String(c)} claimed, ${String(r)} recorded`).join('; ')}`,
        );
      if (p.budgetSpent === undefined && e.budgetSpent !== undefined)
        out.privacy = { ...p, budgetSpent: { ...e.budgetSpent } };
    }
    const a = out.adversarial;
    if (a) {
      const e = d.adversarial;
      if (!e)
        throw mismatch(
          `the model claims adversarial training (${a.method} at eps ${a.eps}); the audit log records its training without it`,
        );
      const bad = (
        [
          ['method', a.method, e.attack],
          ['eps', a.eps, e.epsilon],
          ['steps', a.steps, e.steps],
          ['ratio', a.ratio, e.ratio],
        ] as const
      ).filter(([, c, r]) => differs(c, r));
      if (bad.length > 0)
        throw mismatch(
          `the adversarial-training claim differs from the audit log's record of the training: ${bad.map(([k, c, r]) => `${k} ${String(c)} claimed, ${String(r)} recorded`).join('; ')}`,
        );
    }
    out.datasetDigest ??= d.datasetDigest;
    out.trainingRun = {
      origin: record.origin,
      eventId: record.eventId,
      index: record.index,
      entryDigest: record.entryDigest,
    };
  }
  const evidence: NonNullable<ModelLineage['evidence']> = {};
  const unbacked: string[] = [];
  // A DP fine-tune of a parent whose own guarantee was only claimed: the record is of this run, but
  // the guarantee it records is the parent's plus this run's, and the parent's part rests on nothing.
  const parentClaimed = record?.data.hyperparameters?.['parentPrivacy'] === 'claimed';
  for (const k of ['privacy', 'adversarial'] as const) {
    const claim = out[k];
    if (claim === undefined) continue;
    if (record && !(k === 'privacy' && parentClaimed)) {
      evidence[k] = {
        status: 'backed',
        event: {
          origin: record.origin,
          eventId: record.eventId,
          index: record.index,
          entryDigest: record.entryDigest,
        },
      };
      continue;
    }
    unbacked.push(k);
    const source: Extract<ClaimEvidence, { status: 'claimed' }>['source'] = record
      ? 'parent'
      : JSON.stringify(lineage[k]) === JSON.stringify(fromMetadata[k])
        ? 'model-metadata'
        : 'packager';
    evidence[k] = { status: 'claimed', source };
  }
  if (unbacked.length > 0 && !acceptClaims)
    throw new BulwarkError(
      'ERR_LINEAGE_UNBACKED',
      parentClaimed
        ? `${where}: the model's differential-privacy guarantee composes with its parent's, which nothing backed (its training record says parentPrivacy: claimed): package it as an unchecked claim (--accept-claims)`
        : `${where}: the model's ${unbacked.map((k) => (k === 'privacy' ? 'differential-privacy guarantee' : 'adversarial-training claim')).join(' and ')} (its bulwark.${unbacked.join('/bulwark.')} metadata, which anyone can write) is backed by no record of its training: ${missing}, or package it as an unchecked claim (--accept-claims)`,
      { details: { modelDigest, claims: unbacked.join(',') } },
    );
  if (Object.keys(evidence).length > 0) out.evidence = evidence;
  return out;
}

/** The manifest for an ONNX model (checked against the manifest schema). */
export function buildManifest(
  onnx: Uint8Array,
  o: Omit<ProtectOptions, 'signingKey' | 'noClobber' | 'onProgress' | 'trainingRecord'> & {
    trainingRecord?: TrainingRecord;
    /** Why no record backs a claim ({@link backClaims}'s `missing`). */
    recordMissing?: string;
  },
  where = 'model',
): { manifest: ModelManifest; modelDigest: string; detectorBytes: Buffer | null } {
  if (!MODEL_NAME_PATTERN.test(o.name))
    throw invalidArgument('name', 'letters, digits, ".", "_", "-", "/" (at most 128)', o.name);
  if (!/^[^\s]{1,64}$/.test(o.version))
    throw invalidArgument('version', 'a version without spaces', o.version);
  const info = onnxInfo(onnx);
  if (info.inputs.length !== 1) {
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `${where}: the model has ${info.inputs.length} graph inputs; a package holds a model with one input`,
    );
  }
  if (externalTensors(onnx).length > 0) {
    // ONNX Runtime opens a package's model from memory: data in side files would be read from disk
    // unencrypted and unsigned.
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `${where}: the model keeps tensors in external data files; save it with the data inside (onnx.save(..., save_as_external_data=False))`,
    );
  }
  // What the gateway checks before it opens the model, checked before it is signed: a package whose
  // model no gateway would load, or that could take one down, is not made.
  assertOnnxOpenable(onnx, where);
  onnxMemoryBound(onnx, where, o.memory);
  const input = info.inputs[0]!;
  const meta = info.metadata;
  const featureNames = metadataJson<string[]>(meta, ONNX_META_KEYS.features, where);
  const lastDim = input.dims[input.dims.length - 1] ?? -1;
  const features = lastDim > 0 ? lastDim : (featureNames?.length ?? 0);
  if (features < 1)
    throw new BulwarkError('ERR_ONNX_INVALID', `${where}: the input's feature count is not fixed`);
  const label = meta[ONNX_META_KEYS.label];
  const classes = metadataJson<string[]>(meta, ONNX_META_KEYS.classValues, where);
  const preprocessing = metadataJson<unknown>(meta, ONNX_META_KEYS.pipeline, where);
  const keyId = o.keyId ?? 'data';
  const modelDigest = createHash('sha256').update(onnx).digest('hex');
  const fields = inputFields(o.schema, label) ?? (o.inputFields ? [...o.inputFields] : undefined);
  const fromMetadata = lineageFromOnnxMetadata(meta);
  const lineage = backClaims(
    { ...fromMetadata, ...(o.lineage ?? {}) },
    fromMetadata,
    `sha256:${modelDigest}`,
    o.trainingRecord,
    o.acceptClaims === true,
    where,
    ...(o.recordMissing === undefined ? [] : [o.recordMissing]),
  );
  const detectors =
    o.detectors === undefined
      ? null
      : detectorsRecord(
          o.detectors,
          lineage.privacy ? [lineage.datasetDigest, ...(o.privateDatasets ?? [])] : null,
          { features, classes: Array.isArray(classes) ? classes.length : undefined },
          where,
        );
  const raw: ModelManifest = {
    format: MANIFEST_FORMAT,
    // The lowest version that holds what it carries, so older readers keep reading what they can.
    version:
      detectors?.record.fittedOn?.protectedData ||
      Object.values(lineage.evidence ?? {}).some((e) => e.status === 'claimed' && e.source === 'parent')
        ? 4
        : lineage.evidence || lineage.privacy?.noise
          ? 3
          : detectors
            ? 2
            : 1,
    model: {
      name: o.name,
      version: o.version,
      ...(o.description !== undefined ? { description: o.description } : {}),
      createdAt: new Date().toISOString(),
      packager: `bulwark ${bulwarkVersion()}`,
    },
    input: {
      name: input.name,
      features,
      ...(Array.isArray(featureNames) ? { featureNames } : {}),
      ...(label !== undefined ? { label } : {}),
      ...(fields ? { fields } : {}),
      ...(preprocessing !== undefined ? { preprocessing } : {}),
    },
    output: { names: info.outputs, ...(Array.isArray(classes) ? { classes } : {}) },
    onnx: {
      sha256: modelDigest,
      bytes: onnx.length,
      ...(info.producer ? { producer: info.producer } : {}),
      ...(info.opset !== undefined ? { opset: info.opset } : {}),
    },
    encryption: {
      scheme: 'bulwark-stream-v1',
      keyId,
      keyVersion: o.keyring.primaryVersion(keyId),
      keyring: o.keyring.id,
      frameSize: o.frameSize ?? DEFAULT_FRAME_SIZE,
    },
    lineage,
    ...(detectors ? { detectors: detectors.record } : {}),
  };
  return {
    manifest: parseManifest(raw, where),
    modelDigest: `sha256:${modelDigest}`,
    detectorBytes: detectors?.bytes ?? null,
  };
}

async function write(f: AtomicFileStream, chunk: Buffer, hash: Hash): Promise<void> {
  hash.update(chunk);
  if (!f.stream.write(chunk)) {
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: unknown): void => reject(fsError(e, f.path, 'cannot write'));
      f.stream.once('error', onErr);
      f.stream.once('drain', () => {
        f.stream.off('error', onErr);
        resolve();
      });
    });
  }
}

/**
 * Packages ONNX bytes (or an ONNX file) as a protected model at `out`.
 *
 * @example
 * ```ts
 * const key = await loadSigningKey('signer.key');
 * await protectModel('model.onnx', 'model.bwm', { keyring, signingKey: key, name: 'fraud', version: '1' });
 * ```
 */
export async function protectModel(
  model: string | Uint8Array,
  out: string,
  options: ProtectOptions,
): Promise<ProtectResult> {
  let onnx: Uint8Array;
  const where = typeof model === 'string' ? model : 'model';
  if (typeof model === 'string') {
    onnx = await readInputFile(model, 'ONNX model');
  } else onnx = model;
  const { trainingRecord, ...rest } = options;
  // Looked up by the digest of the bytes packaged here (never of a second read of the path).
  const digest = `sha256:${createHash('sha256').update(onnx).digest('hex')}`;
  const found = typeof trainingRecord === 'function' ? await trainingRecord(digest) : trainingRecord;
  const record = found !== undefined && !('missing' in found) ? found : undefined;
  // A log was searched: "give the audit log" would send the user back to the log they gave.
  const recordMissing =
    found !== undefined && 'missing' in found
      ? found.missing
      : trainingRecord !== undefined && found === undefined
        ? `the audit log given has no model.trained entry of this model (${digest}): it was trained without that log (--audit) or changed since; give the log its training was recorded in`
        : undefined;
  const built = buildManifest(
    onnx,
    { ...rest, ...(record ? { trainingRecord: record } : {}), ...(recordMissing ? { recordMissing } : {}) },
    where,
  );
  const { manifest, modelDigest, detectorBytes } = built;
  const manifestBytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  if (manifestBytes.length > MAX_MANIFEST_BYTES)
    throw invalidArgument(
      'manifest',
      `at most ${MAX_MANIFEST_BYTES} bytes of JSON`,
      `${manifestBytes.length} bytes`,
    );

  const f = await AtomicFileStream.create(out, { mode: 0o644, noClobber: options.noClobber ?? false });
  try {
    const hash = createHash('sha256');
    await write(f, encodeHeader(manifestBytes.length), hash);
    await write(f, manifestBytes, hash);
    let encrypted = 0;
    // The detector bundle follows the model in the same stream: one data key, one key-committed AEAD,
    // and the manifest's lengths say where the model ends.
    const plaintext = detectorBytes ? [onnx, detectorBytes] : [onnx];
    const total = onnx.length + (detectorBytes?.length ?? 0);
    for await (const part of encryptStream(plaintext, options.keyring, {
      keyId: manifest.encryption.keyId,
      frameSize: manifest.encryption.frameSize,
    })) {
      encrypted += part.length;
      await write(f, part, hash);
      options.onProgress?.(Math.min(encrypted, total), total);
    }
    const body = hash.copy().digest('hex');
    let signature = Buffer.alloc(0);
    if (options.signingKey) {
      const resources: SignedResource[] = [
        {
          name: RESOURCE_MANIFEST,
          algorithm: 'sha256',
          digest: createHash('sha256').update(manifestBytes).digest('hex'),
        },
        { name: RESOURCE_MODEL, algorithm: 'sha256', digest: manifest.onnx.sha256 },
        { name: RESOURCE_BODY, algorithm: 'sha256', digest: body },
      ];
      if (manifest.detectors)
        resources.push({ name: RESOURCE_DETECTORS, algorithm: 'sha256', digest: manifest.detectors.sha256 });
      signature = Buffer.from(
        signStatement(buildStatement(manifest.model.name, resources), options.signingKey),
        'utf8',
      );
    }
    if (signature.length > 0) await write(f, signature, hash);
    await write(f, encodeFooter(encrypted, signature.length), hash);
    await f.commit();
    return {
      path: out,
      manifest,
      packageDigest: `sha256:${hash.digest('hex')}`,
      modelDigest,
      packageBytes: HEADER_BYTES + manifestBytes.length + encrypted + signature.length + FOOTER_BYTES,
      modelBytes: onnx.length,
      detectorBytes: detectorBytes?.length ?? 0,
      signer: options.signingKey
        ? { keyId: options.signingKey.keyId, algorithm: options.signingKey.algorithm }
        : null,
    };
  } catch (e) {
    await f.abort();
    throw e;
  }
}
