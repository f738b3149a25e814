/**
 * Audit events: a versioned, closed schema (zod) for everything the log records, its canonical byte
 * encoding (the Merkle leaf), and the artefact references that lineage queries follow.
 *
 * A log entry is the canonical JSON (sorted keys, no whitespace, RFC 8785 number form) of
 * `{ v, index, id, time, type, data }`. The leaf index is inside the signed bytes so that an entry
 * moved to another position is detected as such, not only as a different root.
 *
 * Lineage: each event type declares which artefacts it *produces* and which it *uses*, as references
 * `kind:identifier` (`dataset:sha256:…`, `model:sha256:…`, `package:sha256:…`, `key:<key id>`,
 * `config:<component>`). Walking from a prediction to the events that produced what it used gives
 * the model, its training run, its dataset and the keys.
 */
import { z } from 'zod';
import { BulwarkError, escapeChars, NOT_ONE_LINE_CHARS } from '../core/index.js';
import { keyName } from './keys.js';

/** The entry format version written by this code. */
export const EVENT_VERSION = 1;

/**
 * The largest entry, in characters of its canonical JSON: what a third party's verifier accepts in an
 * inclusion proof (`verifyInclusionBundle`), so the log refuses, at append, data that would make an
 * entry longer than this. An entry of 2.9 million characters (200,000 protected field names) was
 * appended and then could never be proved to anyone.
 */
export const MAX_ENTRY_CHARS = 1 << 20;

/** Room left in {@link MAX_ENTRY_CHARS} for the envelope (id, index, time, type, version and keys). */
const ENVELOPE_CHARS = 1024;

/**
 * The canonical JSON of an event's data, refused (ERR_AUDIT_EVENT_INVALID) when the entry holding it
 * would exceed {@link MAX_ENTRY_CHARS}.
 */
export function canonicalEventData(e: AuditEventInput): string {
  const json = canonicalJson(e.data);
  if (json.length > MAX_ENTRY_CHARS - ENVELOPE_CHARS)
    throw new BulwarkError(
      'ERR_AUDIT_EVENT_INVALID',
      `audit event ${e.type}: data: ${json.length} characters as canonical JSON, at most ${MAX_ENTRY_CHARS - ENVELOPE_CHARS} (an entry must fit an inclusion proof)`,
      { details: { type: e.type } },
    );
  return json;
}

/** A content digest: `sha256:` and 64 lowercase hex digits. */
export const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');
const idSchema = z.string().min(1).max(256).regex(/^\S+$/, 'expected no whitespace');
const nameSchema = z.string().min(1).max(256);
/** A signed-note verifier key, `name+<8 hex>+<base64>` (note.ts parses it fully where it is used). */
const vkeySchema = z
  .string()
  .max(512)
  .regex(/^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9/=+]+$/, 'expected a verifier key name+keyid+base64');
const scalar = z.union([z.string().max(4096), z.number(), z.boolean(), z.null()]);
/**
 * A free-form record (hyperparameters, details, summaries, metrics) whose keys the writer chooses. An
 * own `__proto__` key is refused: zod skips it when it builds the parsed record (assigning it would
 * set the prototype), so the entry logged silently lacked a key the writer gave
 * (`{"__proto__": "x", "lr": 1}` was recorded as `{"lr": 1}`).
 */
function freeRecord<V extends z.ZodType>(value: V) {
  return z
    .unknown()
    .refine((v) => typeof v !== 'object' || v === null || !Object.hasOwn(v, '__proto__'), {
      message: 'the key "__proto__" cannot be recorded',
    })
    .pipe(z.record(z.string().max(256), value));
}
const flatRecord = freeRecord(scalar);
const finite = z.number().refine(Number.isFinite, 'expected a finite number');
const nonNegative = finite.refine((x) => x >= 0, 'expected >= 0');

const privacySchema = z.strictObject({
  epsilon: nonNegative,
  delta: finite.refine((x) => x >= 0 && x < 1, 'expected 0 <= delta < 1'),
  accountant: nameSchema,
  noiseMultiplier: nonNegative.optional(),
  clipNorm: nonNegative.optional(),
  /** Budget spent by this run, when a ledger tracks several. */
  budgetSpent: z.strictObject({ epsilon: nonNegative, delta: nonNegative }).optional(),
});

const adversarialSchema = z.strictObject({
  attack: nameSchema,
  epsilon: nonNegative,
  steps: z.number().int().min(0).optional(),
  ratio: nonNegative.optional(),
});

const detectionSchema = z.strictObject({ detector: nameSchema, score: finite, flagged: z.boolean() });

/** The data of each event type (v1). */
export const eventDataSchemas = {
  /** Raw data ingested or generated: the root of a lineage chain. */
  'dataset.created': z.strictObject({
    datasetDigest: digestSchema,
    source: nameSchema,
    rows: z.number().int().min(0),
    columns: z.number().int().min(0),
  }),
  /** A dataset with its sensitive fields encrypted: output digest, input digest, schema, keys. */
  'dataset.protected': z.strictObject({
    datasetDigest: digestSchema,
    sourceDigest: digestSchema.optional(),
    schemaDigest: digestSchema,
    protectedFields: z.array(nameSchema),
    keyIds: z.array(idSchema),
    rows: z.number().int().min(0),
  }),
  'key.created': z.strictObject({
    keyId: idSchema,
    algorithm: nameSchema,
    provider: nameSchema,
    purpose: nameSchema,
  }),
  'key.rotated': z.strictObject({ keyId: idSchema, previousKeyId: idSchema, provider: nameSchema }),
  'key.destroyed': z.strictObject({ keyId: idSchema, reason: nameSchema }),
  'model.trained': z.strictObject({
    modelDigest: digestSchema,
    datasetDigest: digestSchema,
    algorithm: nameSchema,
    hyperparameters: flatRecord,
    privacy: privacySchema.optional(),
    adversarial: adversarialSchema.optional(),
    metrics: freeRecord(finite).optional(),
    /**
     * The writer's signature of the rest of the record (`bulwark train --record-key`;
     * record-signature.ts): who can append to the log cannot make a record a trainer key signed.
     */
    recordedBy: z
      .strictObject({
        key: vkeySchema,
        signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 Ed25519 signature'),
      })
      .optional(),
  }),
  'model.packaged': z.strictObject({
    packageDigest: digestSchema,
    modelDigest: digestSchema,
    /** The data key that encrypts the model. */
    keyId: idSchema,
    /** The signing key. */
    signerKeyId: idSchema,
    /** The data file the package's detectors were fitted and calibrated on (when it carries some). */
    detectorsDatasetDigest: digestSchema.optional(),
  }),
  'model.loaded': z.strictObject({
    packageDigest: digestSchema,
    modelDigest: digestSchema,
    server: nameSchema,
  }),
  /** One prediction: a hash of the input, never the input. */
  prediction: z.strictObject({
    requestId: idSchema,
    caller: nameSchema,
    modelDigest: digestSchema,
    packageDigest: digestSchema.optional(),
    inputDigest: digestSchema,
    decision: z.union([nameSchema, finite]),
    detections: z.array(detectionSchema),
    latencyMs: nonNegative,
  }),
  /** A request refused by a gateway stage, with the error code it got. */
  'request.denied': z.strictObject({
    requestId: idSchema,
    caller: nameSchema.nullable(),
    stage: nameSchema,
    code: z.string().regex(/^ERR_[A-Z0-9_]+$/),
    inputDigest: digestSchema.optional(),
  }),
  /**
   * Refusals beyond a caller's rate of individual `request.denied` entries (the gateway's
   * `audit.denials`), counted by caller, stage and code over [since, until]. `*` marks the refusals
   * beyond the summary's group limit.
   */
  'request.denied.summary': z.strictObject({
    since: z.iso.datetime(),
    until: z.iso.datetime(),
    count: z.number().int().min(1),
    groups: z
      .array(
        z.strictObject({
          caller: nameSchema.nullable(),
          stage: nameSchema,
          code: z.string().regex(/^(ERR_[A-Z0-9_]+|\*)$/),
          count: z.number().int().min(1),
        }),
      )
      .min(1)
      .max(1001),
  }),
  'config.changed': z.strictObject({
    component: nameSchema,
    actor: nameSchema,
    digest: digestSchema,
    previousDigest: digestSchema.nullable(),
    settings: z.array(nameSchema),
  }),
  /**
   * Differential-privacy budget spent from the ledger (a training run, a query), recorded after the
   * ledger commits the spend and before anything is released.
   */
  'privacy.spent': z.strictObject({
    spendId: idSchema,
    /** The ledger's name for the dataset whose budget paid. */
    dataset: nameSchema,
    analyst: nameSchema.nullable(),
    epsilon: nonNegative,
    delta: finite.refine((x) => x >= 0 && x < 1, 'expected 0 <= delta < 1'),
    operation: nameSchema,
    details: flatRecord,
  }),
  /**
   * An attested session step at the gateway (docs/attestation.md): an attestation `issued` for a
   * caller, or a session `opened` with it. `transcript` (SHA-256 of the envelope) links the two; never
   * keys, nonces or plaintext.
   */
  'attestation.session': z.strictObject({
    event: z.enum(['issued', 'opened']),
    caller: nameSchema,
    format: nameSchema,
    hardware: z.boolean(),
    transcript: digestSchema,
    sessionId: z
      .string()
      .regex(/^[0-9a-f]{32}$/)
      .optional(),
  }),
  /**
   * The log's own checkpoint key handed over (`AuditLog.rotateKey`, `bulwark audit rotate-key`): the
   * first checkpoint that covers this entry and is signed by both keys completes it (docs/audit.md,
   * "Rotating the log's key"). Written only by rotateKey: `append` refuses the type.
   */
  'log.key-rotated': z.strictObject({ previousKey: vkeySchema, newKey: vkeySchema }),
  /** A pipeline step finished (the demo records each of its stages). */
  'pipeline.stage': z.strictObject({
    pipeline: nameSchema,
    stage: nameSchema,
    status: z.enum(['ok', 'skipped', 'failed']),
    seconds: nonNegative,
    summary: flatRecord,
  }),
} as const;

/** Every event type. */
export type AuditEventType = keyof typeof eventDataSchemas;
export const AUDIT_EVENT_TYPES = Object.keys(eventDataSchemas) as AuditEventType[];

/** The data of an event of type `T`. */
export type AuditEventData<T extends AuditEventType> = z.infer<(typeof eventDataSchemas)[T]>;

/** What a writer passes to `append`: a type and its data (the log assigns id, index and time). */
export type AuditEventInput = { [T in AuditEventType]: { type: T; data: AuditEventData<T> } }[AuditEventType];

/** A stored entry, as decoded from the log. */
export type AuditEntry = AuditEventInput & {
  v: number;
  index: number;
  id: string;
  time: string;
};

const inputSchema = z.discriminatedUnion(
  'type',
  AUDIT_EVENT_TYPES.map((t) =>
    z.strictObject({ type: z.literal(t), data: eventDataSchemas[t] }),
  ) as unknown as [z.ZodObject, ...z.ZodObject[]],
);

const entrySchema = z.discriminatedUnion(
  'type',
  AUDIT_EVENT_TYPES.map((t) =>
    z.strictObject({
      v: z.literal(EVENT_VERSION),
      index: z.number().int().min(0),
      id: idSchema,
      time: z.iso.datetime(),
      type: z.literal(t),
      data: eventDataSchemas[t],
    }),
  ) as unknown as [z.ZodObject, ...z.ZodObject[]],
);

function issuesText(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(event)'}: ${i.message}`)
    .join('; ');
}

/**
 * Validates an event before it is appended. Throws ERR_AUDIT_EVENT_INVALID naming the field.
 */
export function parseEventInput(input: unknown): AuditEventInput {
  const r = inputSchema.safeParse(input);
  if (!r.success) {
    const type =
      typeof input === 'object' && input !== null && 'type' in input
        ? String((input as { type: unknown }).type)
        : '?';
    throw new BulwarkError('ERR_AUDIT_EVENT_INVALID', `audit event ${type}: ${issuesText(r.error)}`, {
      details: { type },
    });
  }
  return r.data as AuditEventInput;
}

/**
 * Canonical JSON (RFC 8785 JCS for the values events hold): object keys sorted by UTF-16 code units,
 * no whitespace, numbers in ECMAScript shortest form, `undefined` members omitted.
 */
export function canonicalJson(value: unknown): string {
  // Written with string concatenation and no intermediate arrays: every append and every entry of a
  // verification goes through here.
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError('canonical JSON has no NaN or Infinity');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
        return `${out}]`;
      }
      const obj = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, which is the order RFC 8785 prescribes.
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new RangeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

/**
 * The entry bytes for an event at `index`. Keys in canonical order (data, id, index, time, type, v),
 * with `dataJson` the canonical JSON of the data, computed once before the index is known.
 */
export function entryBody(dataJson: string, id: string, index: number, time: string, type: string): string {
  return `{"data":${dataJson},"id":${JSON.stringify(id)},"index":${index},"time":${JSON.stringify(time)},"type":${JSON.stringify(type)},"v":${EVENT_VERSION}}`;
}

/**
 * Decodes and checks an entry's bytes: JSON, the v1 schema of its type, and canonical form (so two
 * different byte strings can never decode to the same event). Returns null when any check fails.
 *
 * With `schema: false` only the envelope (version, index, id, time, known type, data object) is
 * checked, not the fields of the data: what `AuditLog.verify` does by default on every entry, since
 * the data was validated when it was appended and the bytes are bound by the hash tree since.
 */
export function decodeEntry(body: string, options: { schema?: boolean } = {}): AuditEntry | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (canonicalJson(parsed) !== body) return null;
  if (options.schema === false) {
    const e = parsed as Record<string, unknown>;
    const ok =
      e['v'] === EVENT_VERSION &&
      Number.isSafeInteger(e['index']) &&
      (e['index'] as number) >= 0 &&
      typeof e['id'] === 'string' &&
      typeof e['time'] === 'string' &&
      typeof e['type'] === 'string' &&
      Object.hasOwn(eventDataSchemas, e['type']) &&
      typeof e['data'] === 'object' &&
      e['data'] !== null &&
      !Array.isArray(e['data']) &&
      Object.keys(e).length === 6;
    return ok ? (parsed as AuditEntry) : null;
  }
  const r = entrySchema.safeParse(parsed);
  return r.success ? (r.data as AuditEntry) : null;
}

/** The artefacts an event produces and uses, as `kind:identifier` references (see module doc). */
export function eventRefs(e: AuditEventInput): { produces: string[]; uses: string[] } {
  switch (e.type) {
    case 'dataset.created':
      return { produces: [`dataset:${e.data.datasetDigest}`], uses: [] };
    case 'dataset.protected':
      return {
        produces: [`dataset:${e.data.datasetDigest}`],
        uses: [
          ...(e.data.sourceDigest ? [`dataset:${e.data.sourceDigest}`] : []),
          ...e.data.keyIds.map((k) => `key:${k}`),
        ],
      };
    case 'key.created':
      return { produces: [`key:${e.data.keyId}`], uses: [] };
    case 'key.rotated':
      return { produces: [`key:${e.data.keyId}`], uses: [`key:${e.data.previousKeyId}`] };
    case 'key.destroyed':
      return { produces: [], uses: [`key:${e.data.keyId}`] };
    case 'model.trained':
      return { produces: [`model:${e.data.modelDigest}`], uses: [`dataset:${e.data.datasetDigest}`] };
    case 'model.packaged':
      return {
        produces: [`package:${e.data.packageDigest}`],
        uses: [
          `model:${e.data.modelDigest}`,
          `key:${e.data.keyId}`,
          `key:${e.data.signerKeyId}`,
          ...(e.data.detectorsDatasetDigest ? [`dataset:${e.data.detectorsDatasetDigest}`] : []),
        ],
      };
    case 'model.loaded':
      return { produces: [], uses: [`package:${e.data.packageDigest}`] };
    case 'prediction':
      return {
        produces: [],
        uses: e.data.packageDigest ? [`package:${e.data.packageDigest}`] : [`model:${e.data.modelDigest}`],
      };
    case 'request.denied':
    case 'request.denied.summary':
      return { produces: [], uses: [] };
    case 'config.changed':
      return { produces: [`config:${e.data.component}`], uses: [] };
    case 'privacy.spent':
    case 'pipeline.stage':
    case 'attestation.session':
    case 'log.key-rotated':
      return { produces: [], uses: [] };
  }
}

/**
 * Text from an event as one line that a terminal shows rather than obeys: every control character,
 * line break and bidirectional override as `\uXXXX`. Event strings (a caller's name, a dataset's
 * source) come from whoever wrote the event; printed raw, a newline in one started a line of its own
 * that `audit tail` readers took for another entry, and an escape sequence could move the cursor back
 * over the lines above it.
 */
export function oneLine(v: unknown): string {
  return escapeChars(String(v), NOT_ONE_LINE_CHARS);
}

/** A one-line human summary of an event's data, for `audit tail` and lineage output. */
export function describeEvent(e: AuditEventInput): string {
  return oneLine(describeRaw(e));
}

function describeRaw(e: AuditEventInput): string {
  const d = e.data as Record<string, unknown>;
  const short = (v: unknown) =>
    typeof v === 'string' && v.startsWith('sha256:') ? `${v.slice(0, 19)}…` : String(v);
  switch (e.type) {
    case 'dataset.created':
      return `dataset ${short(d['datasetDigest'])} from ${String(d['source'])} (${String(d['rows'])} rows)`;
    case 'dataset.protected':
      return `dataset ${short(d['datasetDigest'])} protected with keys ${(d['keyIds'] as string[]).join(', ')}`;
    case 'key.created':
    case 'key.destroyed':
      return `key ${String(d['keyId'])}`;
    case 'key.rotated':
      return `key ${String(d['previousKeyId'])} → ${String(d['keyId'])}`;
    case 'model.trained': {
      // The writer's key as the record names it; whether it verifies is `audit verify`'s to say.
      const by = d['recordedBy'] as { key?: unknown } | undefined;
      const signer = typeof by?.key === 'string' ? `, signed by ${keyName(by.key)}` : '';
      return `model ${short(d['modelDigest'])} by ${String(d['algorithm'])} on ${short(d['datasetDigest'])}${signer}`;
    }
    case 'model.packaged':
      return `package ${short(d['packageDigest'])} of model ${short(d['modelDigest'])}`;
    case 'model.loaded':
      return `package ${short(d['packageDigest'])} loaded by ${String(d['server'])}`;
    case 'prediction':
      return `${String(d['caller'])} → ${String(d['decision'])} (model ${short(d['modelDigest'])})`;
    case 'request.denied':
      return `${String(d['caller'] ?? 'anonymous')} denied at ${String(d['stage'])}: ${String(d['code'])}`;
    case 'request.denied.summary':
      return `${String(d['count'])} more denials counted from ${String(d['since'])} to ${String(d['until'])} (${(d['groups'] as unknown[]).length} callers, stages and codes)`;
    case 'config.changed':
      return `${String(d['component'])} configuration ${short(d['digest'])} by ${String(d['actor'])}`;
    case 'privacy.spent':
      return `ε ${String(d['epsilon'])}, δ ${String(d['delta'])} of ${String(d['dataset'])}${d['analyst'] === null ? '' : ` (analyst ${String(d['analyst'])})`} for ${String(d['operation'])}`;
    case 'attestation.session':
      return `${String(d['format'])} attestation ${String(d['event'])} for ${String(d['caller'])}${d['sessionId'] ? ` (session ${String(d['sessionId']).slice(0, 8)}…)` : ''}`;
    case 'log.key-rotated':
      return `log key ${keyName(String(d['previousKey']))} → ${keyName(String(d['newKey']))}`;
    case 'pipeline.stage':
      return `${String(d['pipeline'])}/${String(d['stage'])} ${String(d['status'])} in ${Number(d['seconds']).toFixed(2)} s`;
  }
}
