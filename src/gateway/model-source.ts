/**
 * Where a served model comes from. The default and only secure source is the protected model package
 * (signed, encrypted; src/model). A plain ONNX file written by `bulwark train` can be served only with
 * `insecure: true` in its model section, and the gateway logs a warning for it at every start: nothing
 * proves who produced the file or that it was not altered.
 */
import { readFile } from 'node:fs/promises';
import { BulwarkError, fsError, sha256Digest } from '../core/index.js';
import {
  type ColumnType,
  FIELD_TYPES,
  type FieldType,
  loadSchema,
  Pipeline,
  type Schema,
  validateSchema,
} from '../data/index.js';
import { Keyring } from '../keys/index.js';
import { metadataJson, OnnxRuntimeModel, onnxMetadata } from '../ml/index.js';
import {
  loadProtectedModel,
  loadTrustPolicy,
  type ModelManifest,
  type OnnxMemoryOptions,
} from '../model/index.js';
import type { ModelConfig } from './config.js';

/** Metadata keys `bulwark train` writes (src/train/tabular.ts META_*). */
const META_PIPELINE = 'bulwark.pipeline';
const META_CLASS_VALUES = 'bulwark.class_values';

/** A model ready to serve. */
export interface LoadedModel {
  name: string;
  version: string;
  /** The schema requests are validated against. */
  schema: Schema;
  /** Preprocessing from schema fields to the model's input features. */
  pipeline: Pipeline;
  /** Column types the pipeline reads. */
  inputTypes: Readonly<Record<string, ColumnType>>;
  /** Fields a request must carry, in the pipeline's order. */
  inputFields: readonly string[];
  /** Width of the feature vector. */
  features: number;
  classValues: readonly string[];
  /** `sha256:` of the ONNX bytes. */
  modelDigest: string;
  /** `sha256:` of the package file (packages only). */
  packageDigest?: string;
  /** Who signed the package, or null for an unsigned file. */
  signer: string | null;
  /** How the model got here: `package` (signature verified) or `insecure-onnx`. */
  origin: 'package' | 'insecure-onnx';
  runtime: OnnxRuntimeModel;
  /** Name of the probability output. */
  outputName: string;
  /**
   * The detector bundle the package carries (signed and encrypted with the model; JSON, loaded by the
   * server), or undefined.
   */
  detectors?: unknown;
}

/** Loads models named by the configuration. */
export interface ModelSource {
  load(config: ModelConfig): Promise<LoadedModel>;
}

/** What a source found: the runtime plus the metadata the pipeline needs. */
interface ModelParts {
  schema: Schema;
  pipelineState: unknown;
  classValues: unknown;
  runtime: OnnxRuntimeModel;
  version: string;
  modelDigest: string;
  packageDigest?: string;
  signer: string | null;
  origin: LoadedModel['origin'];
  detectors?: unknown;
}

/** Checks the parts agree (pipeline inputs declared by the schema, classes) and builds the model. */
function assemble(c: ModelConfig, p: ModelParts): LoadedModel {
  const what = `models.${c.name}`;
  let pipeline: Pipeline;
  try {
    pipeline = Pipeline.load(p.pipelineState);
  } catch (e) {
    throw new BulwarkError('ERR_ONNX_INVALID', `${what}: the model's preprocessing does not load`, {
      cause: e,
    });
  }
  const state = pipeline.toJSON();
  const classValues = p.classValues;
  if (!Array.isArray(classValues) || classValues.length < 2 || classValues.some((v) => typeof v !== 'string'))
    throw new BulwarkError('ERR_ONNX_INVALID', `${what}: class values must be a list of >= 2 strings`);
  const fields = new Set(p.schema.fields.map((f) => f.name));
  for (const i of state.inputs) {
    if (!fields.has(i.name))
      throw new BulwarkError(
        'ERR_SCHEMA_MISMATCH',
        `${what}: the model reads "${i.name}", which the schema does not declare`,
        { details: { field: i.name } },
      );
  }
  const outputName = p.runtime.outputNames.includes('probabilities')
    ? 'probabilities'
    : (p.runtime.outputNames[0] as string);
  return {
    name: c.name,
    version: p.version,
    schema: p.schema,
    pipeline,
    inputTypes: Object.fromEntries(state.inputs.map((i) => [i.name, i.type])),
    inputFields: state.inputs.map((i) => i.name),
    features: state.features.length,
    classValues: classValues as string[],
    modelDigest: p.modelDigest,
    ...(p.packageDigest ? { packageDigest: p.packageDigest } : {}),
    signer: p.signer,
    origin: p.origin,
    runtime: p.runtime,
    outputName,
    ...(p.detectors !== undefined && p.detectors !== null ? { detectors: p.detectors } : {}),
  };
}

/**
 * The memory bound a served model opens under: its tensors at `maxRows` rows (the most a request may
 * carry) may hold at most `maxMemoryBytes`; a model past it, or whose sizes cannot be bounded, is
 * refused at load (ERR_MODEL_UNSAFE) instead of taking the gateway down on a request.
 */
function memoryOf(c: ModelConfig): OnnxMemoryOptions {
  // The refusal names the keys of this entry that raise the limit or lower the rows.
  return {
    maxBatch: c.maxRows,
    maxMemoryBytes: c.maxMemoryBytes,
    limitName: `models.${c.name}.maxMemoryBytes`,
    batchName: `models.${c.name}.maxRows`,
  };
}

/** Builds a {@link LoadedModel} from ONNX bytes carrying Bulwark's preprocessing metadata. */
export async function modelFromOnnx(bytes: Uint8Array, schema: Schema, c: ModelConfig): Promise<LoadedModel> {
  const what = `models.${c.name}`;
  const m = onnxMetadata(bytes);
  const pipelineState = metadataJson<unknown>(m, META_PIPELINE, what, true);
  const classValues = metadataJson<unknown>(m, META_CLASS_VALUES, what, true);
  // Refusals of the graph name the entry itself ("models.fraud: at 256 rows ..."), which the server's
  // keyed() then leaves as is; before, they read "models.fraud: model: at 256 rows ...".
  const runtime = await OnnxRuntimeModel.create(bytes, {
    threads: c.threads,
    memory: memoryOf(c),
    describedAs: what,
  });
  try {
    return assemble(c, {
      schema,
      pipelineState,
      classValues,
      runtime,
      version: c.version ?? '1',
      modelDigest: sha256Digest(bytes),
      signer: null,
      origin: 'insecure-onnx',
    });
  } catch (e) {
    await runtime.close();
    throw e;
  }
}

/** The request schema a package's manifest declares (raw input fields with their public bounds). */
export function schemaFromManifest(m: ModelManifest, source: string): Schema {
  const fields = m.input.fields;
  if (fields === undefined || fields.length === 0)
    throw new BulwarkError(
      'ERR_SCHEMA_INVALID',
      `${source}: the package manifest lists no input fields; give the model a schema file`,
    );
  for (const f of fields)
    if (!(FIELD_TYPES as readonly string[]).includes(f.type))
      throw new BulwarkError('ERR_SCHEMA_INVALID', `${source}: input field "${f.name}" has type "${f.type}"`);
  return validateSchema(
    {
      // The label is what the model predicts: it is not a request field (and not in the manifest's list).
      version: 1,
      fields: fields.map((f) => ({
        name: f.name,
        type: f.type as FieldType,
        nullable: f.nullable ?? false,
        ...(f.bounds ? { bounds: f.bounds } : {}),
        ...(f.categories ? { categories: f.categories } : {}),
      })),
    },
    source,
  );
}

/**
 * Protected model packages (the default): the package signature is verified against the trust policy
 * and the model decrypted in memory with the keyring (src/model loadProtectedModel) before it is served.
 */
export class PackageModelSource implements ModelSource {
  async load(c: ModelConfig): Promise<LoadedModel> {
    if (c.package === undefined || c.keyring === undefined || c.trust === undefined)
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `models.${c.name}: a package needs package, keyring and trust`,
      );
    const secret =
      c.keyringPassphrase ?? (process.env['BULWARK_PASSPHRASE'] ? { env: 'BULWARK_PASSPHRASE' } : {});
    const keyring = await Keyring.open(c.keyring, {
      secret: { ...secret, prompt: false },
      provider: c.keyringProvider,
    });
    const trust = await loadTrustPolicy(c.trust);
    const pkg = await loadProtectedModel(c.package, {
      keyring,
      trust,
      threads: c.threads,
      memory: memoryOf(c),
      describedAs: `models.${c.name}`,
    });
    try {
      const m = pkg.manifest;
      // The signature says who made the package and for which model name; the configuration says which
      // package this entry serves. Both are checked, so a validly signed package of another model, or an
      // older one put back at the path, is not served here.
      const expected = c.packageModel ?? c.name;
      if (m.model.name !== expected)
        throw new BulwarkError(
          'ERR_CONFIG_INVALID',
          `models.${c.name}${c.packageModel === undefined ? '' : '.packageModel'}: the package is model "${m.model.name}", not "${expected}"${c.packageModel === undefined ? ' (set packageModel to serve it under another name)' : ''}`,
        );
      if (c.digest !== undefined && c.digest !== pkg.packageDigest)
        throw new BulwarkError(
          'ERR_DIGEST_MISMATCH',
          `models.${c.name}.digest: the package at ${c.package} is ${pkg.packageDigest}, not the pinned ${c.digest}`,
        );
      if (c.version !== undefined && c.version !== m.model.version)
        throw new BulwarkError(
          'ERR_CONFIG_INVALID',
          `models.${c.name}.version: "${c.version}", but the package is version "${m.model.version}"`,
        );
      const schema = c.schema ? await loadSchema(c.schema) : schemaFromManifest(m, c.package);
      return assemble(c, {
        schema,
        pipelineState: m.input.preprocessing,
        classValues: m.output.classes,
        runtime: pkg.model,
        version: m.model.version,
        modelDigest: `sha256:${m.onnx.sha256}`,
        packageDigest: pkg.packageDigest,
        signer: pkg.signer.keyId,
        origin: 'package',
        detectors: pkg.detectors,
      });
    } catch (e) {
      await pkg.model.close();
      throw e;
    }
  }
}

/** Packages by default; plain ONNX only for models configured `insecure: true`. */
export class DefaultModelSource implements ModelSource {
  readonly #pkg = new PackageModelSource();
  readonly #onnx = new InsecureOnnxSource();
  load(c: ModelConfig): Promise<LoadedModel> {
    return c.package !== undefined ? this.#pkg.load(c) : this.#onnx.load(c);
  }
}

/** Plain ONNX files from `bulwark train` (unsigned): only for models configured `insecure: true`. */
export class InsecureOnnxSource implements ModelSource {
  async load(c: ModelConfig): Promise<LoadedModel> {
    if (c.onnx === undefined || !c.insecure || c.schema === undefined)
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `models.${c.name}: a plain ONNX model needs onnx, schema and insecure: true`,
      );
    let bytes: Uint8Array;
    try {
      bytes = await readFile(c.onnx);
    } catch (e) {
      throw fsError(e, c.onnx, 'cannot read model');
    }
    const schema = await loadSchema(c.schema);
    return modelFromOnnx(bytes, schema, c);
  }
}
