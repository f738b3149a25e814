import { createHash, createHmac, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { z } from 'zod';
import {
  BulwarkError,
  exists,
  invalidArgument,
  lockFile,
  readInputFile,
  requireInteger,
  writeFileAtomic,
} from '../core/index.js';
import { hkdf, KEY_BYTES, openCommitted, sealCommitted } from './aead.js';
import { b64, bytesEqual, encodeParts, fromB64, utf8 } from './bytes.js';
import {
  getKeyProvider,
  type KeyProvider,
  type KeyProviderFactory,
  type KeySource,
  type ProviderConfig,
  type ProviderRef,
  registerKeyProvider,
} from './provider.js';
import { pkcs11Provider } from './providers/pkcs11.js';
import { envProvider, fileProvider, localProvider } from './providers/raw.js';
import { readSecret, type SecretSource } from './secret.js';

/**
 * The keyring: named key-encryption keys (KEKs), each with numbered versions held by one provider.
 * Exactly one version of a key is primary (used to wrap new data keys); rotation adds a new primary and
 * keeps older versions for unwrapping only; versions can be disabled (refused until re-enabled) and
 * destroyed (material erased for good: whatever they protected is unreadable, which is crypto-shredding).
 *
 * A `local` keyring file holds the KEKs themselves, sealed: scrypt (RFC 7914) stretches the passphrase
 * with a random per-file salt (parameters stored in the file), HKDF derives a check value (to tell a
 * wrong passphrase from a damaged file) and a sealing key, and the key list is encrypted with the
 * key-committing AES-256-GCM of aead.ts with the whole header as associated data. Other providers'
 * keyring files hold only references (token object ids, file paths, variable names), never key bytes.
 */

export const KEYRING_FORMAT = 'bulwark-keyring';
export const KEYRING_VERSION = 1;

for (const p of [localProvider, pkcs11Provider, fileProvider, envProvider]) registerKeyProvider(p);

/** Status of one KEK version. */
export type KeyStatus = 'enabled' | 'disabled' | 'destroyed';

export interface KeyVersionRecord {
  version: number;
  status: KeyStatus;
  createdAt: string;
  destroyedAt?: string;
  /** Wraps made under this version, counted for providers with a wrap limit (pkcs11). */
  wraps?: number;
  ref: ProviderRef;
}

export interface KeyRecord {
  id: string;
  purpose: string;
  createdAt: string;
  /** The version that wraps new data keys. */
  primary: number;
  versions: KeyVersionRecord[];
}

/** What `list()` tells about a key version (never material). */
export interface KeyVersionInfo {
  key: string;
  purpose: string;
  version: number;
  status: KeyStatus;
  primary: boolean;
  createdAt: string;
  destroyedAt?: string;
  provider: string;
  /** Where the provider keeps it: token object id, file path, variable name (local: "sealed"). */
  location: string;
}

/** A data key wrapped under a KEK version, as stored next to the data it protects. */
export interface WrappedKey {
  /** The keyring's id (a random 128-bit hex string). */
  keyring: string;
  key: string;
  version: number;
  alg: string;
  /** Base64 of the provider's wrapped blob. */
  wrapped: string;
  /** Base64 HMAC-SHA256 commitment to the data key itself (checked after every unwrap). */
  commit: string;
}

export const wrappedKeySchema = z
  .object({
    keyring: z.string().regex(/^[0-9a-f]{32}$/),
    key: z.string().min(1),
    version: z.number().int().min(1),
    alg: z.string().min(1),
    wrapped: z.string().min(1),
    commit: z.string().min(1),
  })
  .strict();

/** scrypt parameters (RFC 7914); stored in the keyring file. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** OWASP's recommended scrypt setting (2023): N = 2^17, r = 8, p = 1 (128 MiB, ~0.3 s here). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

export interface CreateKeyringOptions {
  /** Provider name: `local` (default), `pkcs11`, `file`, `env`, or one registered. */
  provider?: string;
  /** Provider settings (pkcs11: `module`, `token`). */
  settings?: Readonly<Record<string, string | undefined>>;
  /** The passphrase (local) or PIN (pkcs11) source. */
  secret?: SecretSource;
  /** scrypt cost (local); tests use a cheaper one. */
  scrypt?: ScryptParams;
  /**
   * Called (local) when the new passphrase is shorter than {@link MIN_PASSPHRASE_CHARS} characters:
   * the keyring file can be copied and guessed at offline, so its scrypt cost is the only thing
   * between a short passphrase and every key. Told, not refused: the caller decides (the CLI warns).
   */
  onWeakPassphrase?: () => void;
}

/**
 * The passphrase length below which `Keyring.create` calls `onWeakPassphrase`: NIST SP 800-63B asks
 * at least 8 characters of a memorized secret guarded by online throttling; an offline guess at a
 * copied file has none, so 12 (about 56 bits of random lower-case letters and digits).
 */
export const MIN_PASSPHRASE_CHARS = 12;

export interface OpenKeyringOptions {
  /** The passphrase (local) or PIN (pkcs11) source. */
  secret?: SecretSource;
  /**
   * The provider the keyring must use (default `local`). The file's header names its provider before
   * anything in it is authenticated, so without this pin whoever can write the file could turn a sealed
   * `local` keyring into a `file` one whose key they hold (no passphrase asked, every new data key
   * wrapped under their key) or point a `pkcs11` one at a library of their choosing.
   */
  provider?: string;
}

const keyId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const refSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
const keyRecordSchema = z
  .object({
    id: keyId,
    purpose: z.string().min(1),
    createdAt: z.string(),
    primary: z.number().int().min(1),
    versions: z
      .array(
        z
          .object({
            version: z.number().int().min(1),
            status: z.enum(['enabled', 'disabled', 'destroyed']),
            createdAt: z.string(),
            destroyedAt: z.string().optional(),
            /** Wraps made, for providers with a wrap limit (pkcs11). */
            wraps: z.number().int().min(0).optional(),
            ref: refSchema,
          })
          .strict(),
      )
      .min(1),
  })
  .strict();
const keysSchema = z.array(keyRecordSchema);
const providerSchema = z
  .object({ name: z.string().min(1) })
  .catchall(z.union([z.string(), z.number(), z.boolean()]));
const headerSchema = z.object({
  format: z.literal(KEYRING_FORMAT),
  version: z.number().int(),
  id: z.string().regex(/^[0-9a-f]{32}$/),
  provider: providerSchema,
});
const sealedSchema = headerSchema
  .extend({
    kdf: z
      .object({
        alg: z.literal('scrypt'),
        N: z.number().int(),
        r: z.number().int(),
        p: z.number().int(),
        salt: z.string(),
      })
      .strict(),
    check: z.string(),
    sealed: z.string(),
  })
  .strict();
const plainSchema = headerSchema.extend({ keys: keysSchema }).strict();

interface SealState {
  kdf: ScryptParams & { salt: Buffer };
  check: Buffer;
  sealKey: Buffer;
}

function scrypt(passphrase: Buffer, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(
      passphrase,
      salt,
      KEY_BYTES,
      { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r * p.p + 16 * 2 ** 20 },
      (e, k) => (e ? reject(e) : resolve(k)),
    );
  });
}

function checkScrypt(p: ScryptParams, where: string): void {
  const ok =
    Number.isInteger(Math.log2(p.N)) &&
    p.N >= 2 ** 10 &&
    p.N <= 2 ** 22 &&
    p.r >= 1 &&
    p.r <= 32 &&
    p.p >= 1 &&
    p.p <= 16;
  if (!ok) throw new BulwarkError('ERR_KEYRING_INVALID', `${where}: scrypt parameters out of range`);
}

async function deriveSeal(
  passphrase: Buffer,
  kdf: ScryptParams & { salt: Buffer },
): Promise<{ check: Buffer; sealKey: Buffer }> {
  const k = await scrypt(passphrase, kdf.salt, kdf);
  try {
    return {
      check: hkdf(k, kdf.salt, 'bulwark/v1/keyring-check', 16),
      sealKey: hkdf(k, kdf.salt, 'bulwark/v1/keyring-seal', KEY_BYTES),
    };
  } finally {
    k.fill(0);
  }
}

/** The associated data of a sealed keyring: its header fields, in a fixed order. */
function sealAad(
  id: string,
  provider: ProviderConfig & { name: string },
  kdf: ScryptParams & { salt: Buffer },
  check: Buffer,
): Buffer {
  return utf8(
    JSON.stringify([
      KEYRING_FORMAT,
      KEYRING_VERSION,
      id,
      provider,
      ['scrypt', kdf.N, kdf.r, kdf.p, b64(kdf.salt)],
      b64(check),
    ]),
  );
}

/**
 * SHA-256 of a keyring file's content, wrap counts left out: any process that wraps adds to them
 * (pkcs11), so they are merged on a write, not a reason to refuse it.
 */
function contentDigest(text: string): Buffer {
  let canonical = text;
  try {
    const doc = JSON.parse(text) as { keys?: { versions?: { wraps?: number }[] }[] };
    for (const k of doc.keys ?? []) for (const v of k.versions ?? []) delete v.wraps;
    canonical = JSON.stringify(doc);
  } catch {
    // not JSON: compared as it is
  }
  return createHash('sha256').update(canonical, 'utf8').digest();
}

/** The wrap counts a plain keyring file holds: [key id, version, wraps]. */
function wrapCounts(text: string): [string, number, number][] {
  try {
    const doc = JSON.parse(text) as {
      keys?: { id: string; versions?: { version: number; wraps?: number }[] }[];
    };
    return (doc.keys ?? []).flatMap((k) =>
      (k.versions ?? []).flatMap((v) =>
        v.wraps === undefined ? [] : [[k.id, v.version, v.wraps] as [string, number, number]],
      ),
    );
  } catch {
    return [];
  }
}

function now(): string {
  return new Date().toISOString();
}

function commitOf(dek: Uint8Array, context: string): Buffer {
  return createHmac('sha256', dek)
    .update(encodeParts(['bulwark/v1/dek-commit', context]))
    .digest();
}

function wrapAad(keyring: string, key: string, version: number, context: string): Buffer {
  return encodeParts(['bulwark/v1/wrapped-dek', keyring, key, String(version), context]);
}

/**
 * An open keyring. Every change is saved at once (atomically, mode 0600).
 *
 * @example
 * ```ts
 * const kr = await Keyring.create('keys.json', { secret: { file: 'pass.txt' } });
 * await kr.createKey('data');
 * const w = await kr.wrapKey('data', dek, 'dataset:42');
 * const again = await kr.unwrapKey(w, 'dataset:42');
 * await kr.close();
 * ```
 */
export class Keyring {
  readonly path: string;
  readonly id: string;
  readonly providerName: string;
  readonly #config: ProviderConfig & { name: string };
  readonly #provider: KeyProvider;
  readonly #seal: SealState | undefined;
  #keys: KeyRecord[];
  /** SHA-256 of the file as this object last read or wrote it (a change by another process shows). */
  #onDisk: Buffer | undefined;

  private constructor(
    path: string,
    id: string,
    config: ProviderConfig & { name: string },
    provider: KeyProvider,
    seal: SealState | undefined,
    keys: KeyRecord[],
    onDisk?: Buffer,
  ) {
    this.#onDisk = onDisk;
    this.path = path;
    this.id = id;
    this.providerName = config.name;
    this.#config = config;
    this.#provider = provider;
    this.#seal = seal;
    this.#keys = keys;
  }

  /** Creates a new, empty keyring file (refuses to overwrite one). */
  static async create(path: string, opts: CreateKeyringOptions = {}): Promise<Keyring> {
    const factory = getKeyProvider(opts.provider ?? 'local');
    if (await exists(path)) {
      throw new BulwarkError('ERR_FILE_EXISTS', `refusing to overwrite the keyring ${path}`, {
        details: { path },
      });
    }
    const config = { name: factory.name, ...factory.configure(opts.settings ?? {}) };
    const id = randomBytes(16).toString('hex');
    let seal: SealState | undefined;
    if (factory.sealed) {
      const params = opts.scrypt ?? DEFAULT_SCRYPT;
      checkScrypt(params, 'scrypt');
      const passphrase = await readSecret('keyring passphrase', opts.secret ?? {});
      // Characters, not bytes: UTF-8 lead bytes, counted in place (no string copy of the secret).
      let chars = 0;
      for (const b of passphrase) if ((b & 0xc0) !== 0x80) chars++;
      if (chars < MIN_PASSPHRASE_CHARS) opts.onWeakPassphrase?.();
      const kdf = { ...params, salt: randomBytes(32) };
      try {
        seal = { kdf, ...(await deriveSeal(passphrase, kdf)) };
      } finally {
        passphrase.fill(0);
      }
    }
    const provider = await factory.open(config, opts.secret ?? {});
    const kr = new Keyring(path, id, config, provider, seal, []);
    await kr.#save(true);
    return kr;
  }

  /** Opens a keyring file; a local one needs its passphrase, a pkcs11 one its PIN. */
  static async open(path: string, opts: OpenKeyringOptions = {}): Promise<Keyring> {
    const text = await readInputFile(path, 'keyring', 'utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new BulwarkError('ERR_KEYRING_INVALID', `${path} is not a keyring (not JSON)`, {
        cause: e,
        details: { path },
      });
    }
    const head = headerSchema.safeParse(raw);
    if (!head.success) {
      throw new BulwarkError('ERR_KEYRING_INVALID', `${path} is not a Bulwark keyring`, {
        details: { path },
      });
    }
    if (head.data.version !== KEYRING_VERSION) {
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `${path}: keyring format version ${head.data.version} is not supported (this Bulwark reads ${KEYRING_VERSION})`,
        { details: { path } },
      );
    }
    const expected = opts.provider ?? 'local';
    if (head.data.provider.name !== expected) {
      throw new BulwarkError(
        'ERR_KEYRING_PROVIDER_MISMATCH',
        `${path} names the key provider "${head.data.provider.name}", but "${expected}" was expected: refused (an edited provider could hand new data keys to whoever edited the file); name the provider the keyring was created with (--keyring-provider, or keyringProvider in the gateway config)`,
        { details: { path, provider: head.data.provider.name, expected } },
      );
    }
    const factory: KeyProviderFactory = getKeyProvider(head.data.provider.name);
    const config = head.data.provider as ProviderConfig & { name: string };
    if (factory.sealed) {
      const doc = sealedSchema.safeParse(raw);
      if (!doc.success)
        throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: malformed sealed keyring`, {
          details: { path },
        });
      const d = doc.data;
      const salt = fromB64(d.kdf.salt);
      const check = fromB64(d.check);
      const sealed = fromB64(d.sealed);
      if (!salt || salt.length < 16 || !check || check.length !== 16 || !sealed) {
        throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: malformed sealed keyring`, {
          details: { path },
        });
      }
      const kdf = { N: d.kdf.N, r: d.kdf.r, p: d.kdf.p, salt };
      checkScrypt(kdf, path);
      const passphrase = await readSecret('keyring passphrase', opts.secret ?? {});
      let derived: { check: Buffer; sealKey: Buffer };
      try {
        derived = await deriveSeal(passphrase, kdf);
      } finally {
        passphrase.fill(0);
      }
      if (!bytesEqual(derived.check, check)) {
        derived.sealKey.fill(0);
        throw new BulwarkError('ERR_PASSPHRASE_WRONG', `the passphrase does not open the keyring ${path}`, {
          details: { path },
        });
      }
      const r = openCommitted(derived.sealKey, sealed, sealAad(d.id, config, kdf, check), 'keyring');
      if (!r.ok) {
        derived.sealKey.fill(0);
        throw new BulwarkError(
          'ERR_KEYRING_INVALID',
          `${path}: the sealed keys fail authentication: the keyring file was altered`,
          { details: { path } },
        );
      }
      const keys = parseKeys(r.plaintext, path);
      r.plaintext.fill(0);
      const provider = await factory.open(config, opts.secret ?? {});
      return new Keyring(
        path,
        d.id,
        config,
        provider,
        { kdf, check, sealKey: derived.sealKey },
        keys,
        contentDigest(text),
      );
    }
    const doc = plainSchema.safeParse(raw);
    if (!doc.success)
      throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: malformed keyring`, { details: { path } });
    const keys = doc.data.keys as KeyRecord[];
    checkKeys(keys, path);
    const provider = await factory.open(config, opts.secret ?? {});
    return new Keyring(path, doc.data.id, config, provider, undefined, keys, contentDigest(text));
  }

  /** The file's text for the current state. */
  #text(): string {
    let doc: Record<string, unknown>;
    const base = { format: KEYRING_FORMAT, version: KEYRING_VERSION, id: this.id, provider: this.#config };
    if (this.#seal) {
      const s = this.#seal;
      const plaintext = utf8(JSON.stringify({ keys: this.#keys }));
      const sealed = sealCommitted(
        s.sealKey,
        plaintext,
        sealAad(this.id, this.#config, s.kdf, s.check),
        'keyring',
      );
      plaintext.fill(0);
      doc = {
        ...base,
        kdf: { alg: 'scrypt', N: s.kdf.N, r: s.kdf.r, p: s.kdf.p, salt: b64(s.kdf.salt) },
        check: b64(s.check),
        sealed: b64(sealed),
      };
    } else {
      doc = { ...base, keys: this.#keys };
    }
    return `${JSON.stringify(doc, null, 2)}\n`;
  }

  async #save(noClobber = false): Promise<void> {
    if (noClobber) {
      const text = this.#text();
      await writeFileAtomic(this.path, text, { mode: 0o600, noClobber });
      this.#onDisk = contentDigest(text);
      return;
    }
    // Read-modify-write of the whole file: another process that changed the keyring since this one read
    // it (a version destroyed, a key rotated) would otherwise be undone by this write, which holds the
    // state read before that change. Under the file's lock, the write happens only over the content
    // this object read or wrote last (wrap counts aside: every process adds to them; they are merged).
    const lock = await lockFile(this.path, 'keyring');
    try {
      const current = await readInputFile(this.path, 'keyring', 'utf8');
      if (this.#onDisk === undefined || !contentDigest(current).equals(this.#onDisk))
        throw new BulwarkError(
          'ERR_KEYRING_CHANGED',
          `${this.path} was changed by another process since it was opened; nothing was written: open it again and repeat the change`,
          { details: { path: this.path } },
        );
      for (const [id, version, wraps] of wrapCounts(current)) {
        const v = this.#keys.find((k) => k.id === id)?.versions.find((x) => x.version === version);
        if (v && wraps > (v.wraps ?? 0)) v.wraps = wraps;
      }
      const text = this.#text();
      lock.assertHeld();
      await writeFileAtomic(this.path, text, { mode: 0o600 });
      this.#onDisk = contentDigest(text);
    } finally {
      await lock.release();
    }
  }

  /** Every key version, oldest first (no key material). */
  list(): KeyVersionInfo[] {
    return this.#keys.flatMap((k) =>
      k.versions.map((v) => {
        const info: KeyVersionInfo = {
          key: k.id,
          purpose: k.purpose,
          version: v.version,
          status: v.status,
          primary: v.version === k.primary,
          createdAt: v.createdAt,
          provider: this.providerName,
          location: locationOf(this.providerName, v.ref),
        };
        if (v.destroyedAt) info.destroyedAt = v.destroyedAt;
        return info;
      }),
    );
  }

  /** Whether a key with this id exists. */
  has(id: string): boolean {
    return this.#keys.some((k) => k.id === id);
  }

  #key(id: string): KeyRecord {
    const k = this.#keys.find((x) => x.id === id);
    if (!k) {
      throw new BulwarkError(
        'ERR_KEY_NOT_FOUND',
        `keyring ${this.path} has no key "${id}" (keys: ${this.#keys.map((x) => x.id).join(', ') || 'none'})`,
        { details: { key: id } },
      );
    }
    return k;
  }

  #version(k: KeyRecord, version: number): KeyVersionRecord {
    const v = k.versions.find((x) => x.version === version);
    if (!v) {
      throw new BulwarkError('ERR_KEY_NOT_FOUND', `key "${k.id}" has no version ${version}`, {
        details: { key: k.id, version },
      });
    }
    return v;
  }

  #usable(k: KeyRecord, v: KeyVersionRecord): void {
    if (v.status === 'disabled') {
      throw new BulwarkError('ERR_KEY_DISABLED', `key "${k.id}" version ${v.version} is disabled`, {
        details: { key: k.id, version: v.version },
      });
    }
    if (v.status === 'destroyed') {
      throw new BulwarkError('ERR_KEY_DESTROYED', `key "${k.id}" version ${v.version} was destroyed`, {
        details: { key: k.id, version: v.version },
      });
    }
  }

  /** Adds a key with its first version as primary. `source` is needed by `file` and `env` keyrings. */
  async createKey(id: string, opts: { purpose?: string; source?: KeySource } = {}): Promise<KeyVersionInfo> {
    if (!keyId.safeParse(id).success)
      throw invalidArgument('key', 'a lower-case id of letters, digits, ".", "_", "-"', id);
    if (this.has(id)) throw invalidArgument('key', 'a key id not yet in the keyring', id);
    const purpose = opts.purpose ?? id;
    if (this.#keys.some((k) => k.purpose === purpose)) {
      throw invalidArgument('purpose', 'a purpose no other key has (one primary per purpose)', purpose);
    }
    const ref = await this.#provider.createKey(id, 1, opts.source ?? {});
    const t = now();
    this.#keys.push({
      id,
      purpose,
      createdAt: t,
      primary: 1,
      versions: [{ version: 1, status: 'enabled', createdAt: t, ref }],
    });
    await this.#save();
    return this.#info(id, 1);
  }

  /** Adds a new version of key `id` and makes it primary; older versions stay for unwrapping. */
  async rotate(id: string, opts: { source?: KeySource } = {}): Promise<KeyVersionInfo> {
    const k = this.#key(id);
    const version = Math.max(...k.versions.map((v) => v.version)) + 1;
    const ref = await this.#provider.createKey(id, version, opts.source ?? {});
    k.versions.push({ version, status: 'enabled', createdAt: now(), ref });
    k.primary = version;
    await this.#save();
    return this.#info(id, version);
  }

  /** Disables a version: it neither wraps nor unwraps until {@link Keyring.enable}. */
  async disable(id: string, version: number): Promise<KeyVersionInfo> {
    requireInteger('version', version, 1);
    const k = this.#key(id);
    const v = this.#version(k, version);
    if (v.status === 'destroyed') this.#usable(k, v);
    v.status = 'disabled';
    await this.#save();
    return this.#info(id, version);
  }

  /** Re-enables a disabled version. */
  async enable(id: string, version: number): Promise<KeyVersionInfo> {
    requireInteger('version', version, 1);
    const k = this.#key(id);
    const v = this.#version(k, version);
    if (v.status === 'destroyed') this.#usable(k, v);
    v.status = 'enabled';
    await this.#save();
    return this.#info(id, version);
  }

  /**
   * Destroys a version's material (local: erased from the sealed file; pkcs11: deleted from the token;
   * file/env: forgotten, and the secret must be deleted where it lives). Irreversible.
   */
  async destroy(id: string, version: number): Promise<KeyVersionInfo> {
    requireInteger('version', version, 1);
    const k = this.#key(id);
    const v = this.#version(k, version);
    if (v.status !== 'destroyed') {
      v.ref = await this.#provider.destroy(v.ref);
      v.status = 'destroyed';
      v.destroyedAt = now();
      await this.#save();
    }
    return this.#info(id, version);
  }

  #info(id: string, version: number): KeyVersionInfo {
    return this.list().find((i) => i.key === id && i.version === version)!;
  }

  /** The primary version of key `id` (throws when it is disabled or destroyed). */
  primaryVersion(id: string): number {
    const k = this.#key(id);
    this.#usable(k, this.#version(k, k.primary));
    return k.primary;
  }

  /**
   * Wraps a data key under the primary version of KEK `id`. `context` (e.g. `dataset:<id>`) is bound
   * into the wrap and the commitment: the wrapped key unwraps only for the same context.
   */
  async wrapKey(id: string, dek: Uint8Array, context: string): Promise<WrappedKey> {
    if (dek.length !== KEY_BYTES) throw invalidArgument('dek', 'a 32-byte data key', `${dek.length} bytes`);
    const k = this.#key(id);
    const v = this.#version(k, k.primary);
    this.#usable(k, v);
    if (this.#provider.wrapLimit !== undefined)
      await this.#countWrap(k.id, v.version, this.#provider.wrapLimit);
    const out = await this.#provider.wrap(v.ref, dek, wrapAad(this.id, k.id, v.version, context));
    return {
      keyring: this.id,
      key: k.id,
      version: v.version,
      alg: out.alg,
      wrapped: b64(out.blob),
      commit: b64(commitOf(dek, context)),
    };
  }

  /**
   * Counts one wrap of KEK `id` v`version` in the keyring file, under its lock and before the wrap is
   * made, and refuses once the provider's limit is reached (`ERR_KEY_WRAP_LIMIT`: rotate the key).
   * The count is read from and written to the file as it is on disk, so wraps made by every process
   * add up; a crash between counting and wrapping only over-counts. Only the count changes: a process
   * whose copy of the file was current stays current, any other finds its next change refused as before.
   */
  async #countWrap(id: string, version: number, limit: number): Promise<void> {
    if (this.#seal)
      throw new BulwarkError(
        'ERR_INTERNAL',
        'wrap counting is for providers whose keyring file is plain JSON',
      );
    const lock = await lockFile(this.path, 'keyring');
    try {
      const text = await readInputFile(this.path, 'keyring', 'utf8');
      const doc = JSON.parse(text) as {
        keys: { id: string; versions: { version: number; wraps?: number }[] }[];
      };
      const onDisk = doc.keys.find((k) => k.id === id)?.versions.find((v) => v.version === version);
      if (!onDisk)
        throw new BulwarkError(
          'ERR_KEYRING_CHANGED',
          `${this.path}: key "${id}" v${version} is no longer in the file`,
        );
      const n = (onDisk.wraps ?? 0) + 1;
      if (n > limit)
        throw new BulwarkError(
          'ERR_KEY_WRAP_LIMIT',
          `key "${id}" v${version} has wrapped ${limit} data keys, the most its provider's random IVs allow: rotate it (bulwark keys rotate ${id})`,
          { details: { key: id, version } },
        );
      onDisk.wraps = n;
      lock.assertHeld();
      await writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
      const v = this.#keys.find((k) => k.id === id)?.versions.find((x) => x.version === version);
      if (v) v.wraps = n;
    } finally {
      await lock.release();
    }
  }

  /** Unwraps a data key; every failure has its own code (see docs/errors.md). */
  async unwrapKey(w: WrappedKey, context: string): Promise<Buffer> {
    if (w.keyring !== this.id) {
      throw new BulwarkError(
        'ERR_KEY_NOT_FOUND',
        `the data key was wrapped by keyring ${w.keyring}, not by ${this.path} (${this.id})`,
        { details: { keyring: w.keyring } },
      );
    }
    const k = this.#key(w.key);
    const v = this.#version(k, w.version);
    this.#usable(k, v);
    const blob = fromB64(w.wrapped);
    const commit = fromB64(w.commit);
    if (!blob || !commit)
      throw new BulwarkError('ERR_KEY_UNWRAP', `key "${k.id}" v${v.version}: malformed wrapped key`);
    const dek = await this.#provider.unwrap(v.ref, w.alg, blob, wrapAad(this.id, k.id, v.version, context));
    if (dek.length !== KEY_BYTES || !bytesEqual(commitOf(dek, context), commit)) {
      dek.fill(0);
      throw new BulwarkError(
        'ERR_KEY_UNWRAP',
        `key "${k.id}" v${v.version}: the unwrapped data key does not match its commitment`,
      );
    }
    return dek;
  }

  /**
   * Re-wraps a data key under the current primary version of `toKey` (default: the same key): rotation
   * without re-encrypting the data it protects.
   */
  async rewrapKey(w: WrappedKey, context: string, toKey = w.key): Promise<WrappedKey> {
    const dek = await this.unwrapKey(w, context);
    try {
      return await this.wrapKey(toKey, dek, context);
    } finally {
      dek.fill(0);
    }
  }

  /** Releases the provider (HSM session); the keyring object is unusable afterwards. */
  async close(): Promise<void> {
    this.#seal?.sealKey.fill(0);
    await this.#provider.close();
  }
}

function parseKeys(plaintext: Buffer, path: string): KeyRecord[] {
  let raw: unknown;
  try {
    raw = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: sealed contents are not JSON`);
  }
  const r = z.object({ keys: keysSchema }).strict().safeParse(raw);
  if (!r.success) throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: malformed sealed key list`);
  const keys = r.data.keys as KeyRecord[];
  checkKeys(keys, path);
  return keys;
}

function checkKeys(keys: KeyRecord[], path: string): void {
  const ids = new Set<string>();
  for (const k of keys) {
    if (ids.has(k.id)) throw new BulwarkError('ERR_KEYRING_INVALID', `${path}: key "${k.id}" appears twice`);
    ids.add(k.id);
    if (!k.versions.some((v) => v.version === k.primary)) {
      throw new BulwarkError(
        'ERR_KEYRING_INVALID',
        `${path}: key "${k.id}" names a primary version it lacks`,
      );
    }
  }
}

function locationOf(provider: string, ref: ProviderRef): string {
  if (provider === 'local') return ref['key'] === undefined ? 'erased' : 'sealed in the keyring';
  if (provider === 'pkcs11')
    return `token object ${String(ref['label'] ?? '')} (id ${String(ref['id'] ?? '')})`;
  if (provider === 'file') return `file ${String(ref['path'] ?? '')}`;
  if (provider === 'env') return `variable ${String(ref['env'] ?? '')}`;
  return JSON.stringify(ref);
}
