import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { BulwarkError, readJsonFile, writeFileAtomic } from '../core/index.js';
import { bytesEqual, encodeParts, fromB64, hkdf, type WrappedKey, wrappedKeySchema } from '../keys/index.js';

/**
 * The protection manifest: the sidecar `OUT.bulwark.json` that records what `protect` did (which
 * columns, how, under which wrapped data keys, how many rows) and what `reveal` needs. It holds no
 * plaintext and no key in clear. An HMAC under a key derived from the dataset's first data key covers
 * everything but the wrapped keys themselves (so rotation can re-wrap them without the MAC changing):
 * an edited manifest is `ERR_HEADER_TAMPERED`.
 */

export const MANIFEST_FORMAT = 'bulwark-protected';
export const MANIFEST_VERSION = 1;

export const PROTECT_MODES = ['randomized', 'deterministic'] as const;
export type ProtectMode = (typeof PROTECT_MODES)[number];

const columnSchema = z
  .object({
    name: z.string().min(1),
    mode: z.enum(PROTECT_MODES),
    keyed: z.enum(['dataset', 'subject']),
    blindIndex: z.string().nullable(),
    sensitivity: z.string(),
    pii: z.string().nullable(),
    values: z.number().int().min(0),
    missing: z.number().int().min(0),
  })
  .strict();

export const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    dataset: z.string().regex(/^[0-9a-f]{32}$/),
    createdAt: z.string(),
    source: z.string(),
    rows: z.number().int().min(0),
    sourceColumns: z.array(z.string()).min(1),
    outputColumns: z.array(z.string()).min(1),
    rowKey: z.string().nullable(),
    subject: z
      .object({ column: z.string(), handleColumn: z.string(), store: z.string() })
      .strict()
      .nullable(),
    deks: z
      .array(
        z
          .object({
            generation: z.number().int().min(0),
            uses: z.number().int().min(0),
            wrapped: wrappedKeySchema,
          })
          .strict(),
      )
      .min(1),
    columns: z.array(columnSchema),
    /**
     * Keyed digest of every stored row, kept columns included (see {@link RowDigest}). Absent from
     * manifests written before it existed: those open without the row check (`data reencrypt` writes
     * a manifest with one). Under the MAC like everything else, so it cannot be stripped.
     */
    rowDigest: z.string().optional(),
    mac: z.string(),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestColumn = z.infer<typeof columnSchema>;

/** The context a dataset's data key of one generation is wrapped for. */
export function dekContext(dataset: string, generation: number): string {
  return `bulwark/v1/dataset:${dataset}:${generation}`;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The MAC of a manifest (everything but `mac` and the wrapped keys). */
export function manifestMac(m: Omit<Manifest, 'mac'> | Manifest, dek0: Uint8Array): string {
  const { mac: _mac, ...rest } = m as Manifest;
  const body = {
    ...rest,
    deks: rest.deks.map((d) => ({ generation: d.generation, uses: d.uses, keyring: d.wrapped.keyring })),
  };
  const key = hkdf(dek0, Buffer.from(m.dataset, 'hex'), 'bulwark/v1/manifest-mac', 32);
  const mac = createHmac('sha256', key)
    .update(encodeParts(['bulwark/v1/manifest', canonical(body)]))
    .digest();
  key.fill(0);
  return mac.toString('base64');
}

/**
 * A keyed digest of the rows of a protected file as stored: every cell, kept columns, row key, blind
 * indexes and subject handles included, so that `reveal` notices any change to the file, not only to
 * the protected values.
 *
 * Why: a protected value is bound to its row only through the row key (or row number) in its
 * associated data, and that row key is itself an ordinary cell. Without this digest, whoever could
 * write the file could move a person's protected values together with their row key onto another row
 * (another transaction's amount, merchant and fraud label), or edit any kept column (flip `is_fraud`),
 * and `reveal` would accept it.
 *
 * Each row gives HMAC-SHA256 under a key derived from the dataset's first data key (domain-separated
 * from the manifest MAC key) of its cells (empty and missing cells alike, as the CSV writer stores both
 * as an empty field), prefixed by its row number when the file has no row key; the digest is the sum
 * of these values modulo 2^256: the keyed MSet-Add-Hash of Clarke, Devadas, van Dijk, Gassend and Suh
 * ("Incremental Multiset Hash Functions and Their Application to Memory Integrity Checking",
 * ASIACRYPT 2003). A sum does not depend on the order of the rows, so a file with a row key may still
 * be re-ordered (as documented), while any row added, removed, duplicated or changed changes the sum
 * except with negligible probability; without a row key the row numbers fix the order too. Addition
 * rather than XOR: under XOR two copies of a row cancel.
 */
export class RowDigest {
  readonly #key: Buffer;
  readonly #ordered: boolean;
  /** The running sum, as eight 32-bit words, most significant first. */
  readonly #sum = new Uint32Array(8);

  /** `ordered`: bind each row's position (a file without a row key). */
  constructor(dek0: Uint8Array, dataset: string, ordered: boolean) {
    this.#key = hkdf(dek0, Buffer.from(dataset, 'hex'), 'bulwark/v1/row-digest', 32);
    this.#ordered = ordered;
  }

  /** Adds one stored row (its 0-based index among the data rows). */
  add(values: readonly (string | null | undefined)[], index: number): void {
    // An unambiguous encoding, built as one string (one HMAC update per row: this runs for every
    // row): the row number (or nothing), then each cell as its UTF-8 byte length, ':', its text.
    let text = `bulwark/v1/row\n${this.#ordered ? index : ''}\n`;
    for (const v of values) {
      const x = v ?? '';
      text += `${Buffer.byteLength(x, 'utf8')}:${x}`;
    }
    const d = createHmac('sha256', this.#key).update(text, 'utf8').digest();
    let carry = 0;
    for (let i = 7; i >= 0; i--) {
      const x = this.#sum[i]! + d.readUInt32BE(i * 4) + carry;
      this.#sum[i] = x >>> 0;
      carry = x > 0xffffffff ? 1 : 0;
    }
  }

  /** Forgets the rows added (the sum is zero again). */
  reset(): void {
    this.#sum.fill(0);
  }

  /** The sum's 32 bytes. */
  #bytes(): Buffer {
    const out = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) out.writeUInt32BE(this.#sum[i]!, i * 4);
    return out;
  }

  /** The digest, base64. */
  digest(): string {
    return this.#bytes().toString('base64');
  }

  /** Whether the rows added give the digest `want` (constant time). */
  matches(want: string): boolean {
    const w = fromB64(want);
    return w !== undefined && bytesEqual(this.#bytes(), w);
  }

  destroy(): void {
    this.#key.fill(0);
  }
}

/** Checks a manifest's MAC; `ERR_HEADER_TAMPERED` when it does not match. */
export function checkManifestMac(m: Manifest, dek0: Uint8Array, where: string): void {
  const want = fromB64(manifestMac(m, dek0))!;
  const got = fromB64(m.mac);
  if (!got || !bytesEqual(want, got)) {
    throw new BulwarkError(
      'ERR_HEADER_TAMPERED',
      `${where}: the protection manifest was altered (its MAC does not match)`,
      {
        details: { file: where },
      },
    );
  }
}

/** Reads and parses a manifest (no MAC check: that needs the data key). */
export async function readManifest(path: string): Promise<Manifest> {
  // Not JSON at all: most often the wrong file (the data file rather than its .bulwark.json). A
  // manifest altered to this point is refused just the same.
  const raw = await readJsonFile(
    path,
    'protection manifest',
    () =>
      new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${path} is not a Bulwark protection manifest (not JSON)`),
  );
  const o = raw as { format?: unknown; version?: unknown } | null;
  if (o?.format !== MANIFEST_FORMAT) {
    throw new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${path} is not a Bulwark protection manifest`);
  }
  if (o.version !== MANIFEST_VERSION) {
    throw new BulwarkError(
      'ERR_FORMAT_VERSION',
      `${path}: protection manifest version ${String(o.version)} is not supported`,
    );
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new BulwarkError(
      'ERR_HEADER_TAMPERED',
      `${path}: malformed protection manifest (${first?.path.join('.') ?? ''}: ${first?.message ?? ''})`,
    );
  }
  return r.data;
}

/** Writes a manifest atomically. */
export async function writeManifest(path: string, m: Manifest): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(m, null, 2)}\n`);
}

/** The wrapped keys by generation. */
export function wrappedByGeneration(m: Manifest): Map<number, WrappedKey> {
  return new Map(m.deks.map((d) => [d.generation, d.wrapped]));
}
