import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import {
  BulwarkError,
  exists,
  type FileLock,
  fsError,
  lockFile,
  requireNonEmptyString,
  writeFileAtomic,
} from '../core/index.js';
import {
  b64,
  DEK_MAX_MESSAGES,
  encodeParts,
  fromB64,
  type Keyring,
  openCommitted,
  sealCommitted,
  type WrappedKey,
  wrappedKeySchema,
} from '../keys/index.js';

/**
 * Per-subject data keys for erasure by crypto-shredding. Each data subject (a cardholder, a patient)
 * gets their own data keys; all their protected values, in every dataset and every backup, are
 * encrypted under them. Erasing the subject deletes their keys from this store: exactly their values
 * become unreadable, everyone else's stay intact (GDPR Art. 17 for data in backups too).
 *
 * The store is a JSON file: a random store key wrapped by a keyring KEK (rotation re-wraps only this
 * one key), then per subject a handle — HMAC-SHA256 of the subject id under a key derived from the
 * store key, so the file never lists subject ids — and the subject's data keys, each sealed under the
 * store key with the key-committing AEAD (associated data: store id, handle, generation).
 *
 * The store must not be backed up together with the data it unlocks (or its backups must be pruned
 * on erasure): a restored old store brings erased keys back. Erased handles are kept in a list so
 * that reading an erased subject's data says "erased", not "tampered".
 *
 * A store opened for writing holds an exclusive lock on its file from open to close (read-modify-write
 * of the whole file): without it, a long `data protect` run that opened the store before an erasure
 * and saved after it would write the erased subject's keys back (the erasure silently undone), and two
 * runs adding the same subject's next key generation would each keep a different key under one number.
 */

export const SUBJECT_STORE_FORMAT = 'bulwark-subject-keys';
/**
 * Version 2 adds `first` (an entry's first key generation) and `erasedBefore` (see
 * {@link SubjectKeyStore.keyForEncryption}). A store that needs neither is still written as version 1,
 * so Bulwark releases that read only version 1 keep reading it.
 */
export const SUBJECT_STORE_VERSION = 2;
/** The versions this Bulwark reads. */
export const SUBJECT_STORE_VERSIONS: readonly number[] = [1, 2];

/**
 * The first key generation of a subject erased by a store that did not record how many generations
 * the erased keys had (version 1): far above any generation one life of a subject reaches (each holds
 * 2^30 values), so the new keys never take the number of an erased one.
 */
const LEGACY_NEXT_LIFE = 2 ** 16;
const MAX_GENERATION = 2 ** 32;

const entrySchema = z
  .object({
    keys: z.array(z.object({ sealed: z.string(), uses: z.number().int().min(0) }).strict()).min(1),
    first: z.number().int().min(1).max(MAX_GENERATION).optional(),
  })
  .strict();
const storeSchema = z
  .object({
    format: z.literal(SUBJECT_STORE_FORMAT),
    version: z.number().int(),
    id: z.string().regex(/^[0-9a-f]{32}$/),
    storeKey: wrappedKeySchema,
    subjects: z.record(z.string(), entrySchema),
    erased: z.array(z.string()),
    erasedBefore: z.record(z.string(), z.number().int().min(1).max(MAX_GENERATION)).optional(),
  })
  .strict();

interface Entry {
  keys: { sealed: string; uses: number }[];
  /** The generation of `keys[0]` (0 when absent): above every generation of an erased earlier life. */
  first?: number;
}

/** A subject's data key of one generation. */
export interface SubjectKey {
  handle: string;
  generation: number;
  bytes: Buffer;
}

/** The store of per-subject keys (see the module comment). */
export class SubjectKeyStore {
  readonly path: string;
  readonly id: string;
  readonly #keyring: Keyring;
  #wrapped: WrappedKey;
  readonly #sealKey: Buffer;
  readonly #handleKey: Buffer;
  readonly #subjects: Map<string, Entry>;
  readonly #erased: Set<string>;
  /** Per erased handle, the generation its next keys must start at (every erased key was below it). */
  readonly #erasedBefore: Map<string, number>;
  readonly #cache = new Map<string, Buffer>();
  readonly maxUses: number;
  /** The lock of a store opened for writing; undefined when opened read-only. */
  readonly #lock: FileLock | undefined;
  #dirty = false;

  private constructor(
    path: string,
    id: string,
    keyring: Keyring,
    wrapped: WrappedKey,
    storeKey: Buffer,
    subjects: Map<string, Entry>,
    erased: Set<string>,
    erasedBefore: Map<string, number>,
    maxUses: number,
    lock: FileLock | undefined,
  ) {
    this.path = path;
    this.#lock = lock;
    this.id = id;
    this.#keyring = keyring;
    this.#wrapped = wrapped;
    this.#sealKey = createHmac('sha256', storeKey).update('bulwark/v1/subject-seal').digest();
    this.#handleKey = createHmac('sha256', storeKey).update('bulwark/v1/subject-handle').digest();
    storeKey.fill(0);
    this.#subjects = subjects;
    this.#erased = erased;
    this.#erasedBefore = erasedBefore;
    this.maxUses = maxUses;
  }

  static #context(id: string): string {
    return `bulwark/v1/subject-store:${id}`;
  }

  /**
   * Opens the store at `path` for writing, creating it (store key wrapped under KEK `keyId`) when
   * absent. Holds the store's lock until {@link SubjectKeyStore.close}; `ERR_FILE_LOCKED` when another
   * process holds it.
   */
  static async openOrCreate(
    path: string,
    keyring: Keyring,
    opts: { keyId?: string; maxUses?: number } = {},
  ): Promise<SubjectKeyStore> {
    const lock = await lockFile(path, 'subject key store');
    try {
      if (await exists(path)) return await SubjectKeyStore.#load(path, keyring, opts, lock);
      const id = randomBytes(16).toString('hex');
      const storeKey = randomBytes(32);
      const wrapped = await keyring.wrapKey(opts.keyId ?? 'data', storeKey, SubjectKeyStore.#context(id));
      const s = new SubjectKeyStore(
        path,
        id,
        keyring,
        wrapped,
        storeKey,
        new Map(),
        new Set(),
        new Map(),
        opts.maxUses ?? DEK_MAX_MESSAGES,
        lock,
      );
      s.#dirty = true;
      await s.save();
      return s;
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /**
   * Opens an existing store: for writing (the default), holding its lock until
   * {@link SubjectKeyStore.close} (`ERR_FILE_LOCKED` when another process holds it), or with
   * `readOnly` for reading only (revealing data), without a lock: writes replace the file atomically,
   * so a reader sees the store before or after a change, never half of one.
   */
  static async open(
    path: string,
    keyring: Keyring,
    opts: { maxUses?: number; readOnly?: boolean } = {},
  ): Promise<SubjectKeyStore> {
    if (opts.readOnly) return SubjectKeyStore.#load(path, keyring, opts, undefined);
    const lock = await lockFile(path, 'subject key store');
    try {
      return await SubjectKeyStore.#load(path, keyring, opts, lock);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  static async #load(
    path: string,
    keyring: Keyring,
    opts: { maxUses?: number },
    lock: FileLock | undefined,
  ): Promise<SubjectKeyStore> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      if (e instanceof SyntaxError)
        throw new BulwarkError('ERR_HEADER_TAMPERED', `${path} is not a subject key store (not JSON)`);
      throw fsError(e, path, 'cannot read the subject key store');
    }
    const v = (raw as { version?: unknown } | null)?.version;
    if (
      (raw as { format?: unknown } | null)?.format === SUBJECT_STORE_FORMAT &&
      !SUBJECT_STORE_VERSIONS.includes(v as number)
    ) {
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `${path}: subject key store version ${String(v)} is not supported`,
      );
    }
    const r = storeSchema.safeParse(raw);
    if (!r.success) throw new BulwarkError('ERR_HEADER_TAMPERED', `${path}: malformed subject key store`);
    const d = r.data;
    const storeKey = await keyring.unwrapKey(d.storeKey, SubjectKeyStore.#context(d.id));
    return new SubjectKeyStore(
      path,
      d.id,
      keyring,
      d.storeKey,
      storeKey,
      new Map(Object.entries(d.subjects)),
      new Set(d.erased),
      new Map(Object.entries(d.erasedBefore ?? {})),
      opts.maxUses ?? DEK_MAX_MESSAGES,
      lock,
    );
  }

  /** The pseudonymous handle of a subject id (what protected files carry). */
  handleOf(subjectId: string): string {
    requireNonEmptyString('subject', subjectId);
    return createHmac('sha256', this.#handleKey)
      .update(subjectId, 'utf8')
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  /** Number of subjects with keys. */
  get size(): number {
    return this.#subjects.size;
  }

  #aad(handle: string, generation: number): Buffer {
    return encodeParts(['bulwark/v1/subject-key', this.id, handle, String(generation)]);
  }

  /**
   * The key a subject's next `n` values are encrypted under: the newest generation, or a new one when
   * the newest has reached its usage limit; the subject's first key is created on first use.
   *
   * A subject erased earlier who appears in new data gets new keys, numbered from above every erased
   * generation: were they numbered from 0 again, the erased values (in every old dataset and backup)
   * would name a generation that exists again, fail authentication under the new key and read as
   * tampering, which made `reveal` of any such file fail for everyone in it instead of blanking the
   * erased subject's values. Below `first`, a generation reads as erased.
   */
  keyForEncryption(handle: string, n = 1): SubjectKey {
    let e = this.#subjects.get(handle);
    if (!e) {
      const first = this.#erasedBefore.get(handle) ?? (this.#erased.has(handle) ? LEGACY_NEXT_LIFE : 0);
      e = first > 0 ? { keys: [], first } : { keys: [] };
      this.#subjects.set(handle, e);
    }
    // The old data stays unreadable; the handle is no longer erased (isErased), and its earlier
    // generations still read as erased through `first`.
    this.#erased.delete(handle);
    const first = e.first ?? 0;
    let gen = first + e.keys.length - 1;
    if (e.keys.length === 0 || e.keys[gen - first]!.uses + n > this.maxUses) {
      const k = randomBytes(32);
      gen = first + e.keys.length;
      if (gen >= MAX_GENERATION)
        throw new BulwarkError('ERR_INTERNAL', 'a data subject has used every key generation');
      e.keys.push({
        sealed: b64(sealCommitted(this.#sealKey, k, this.#aad(handle, gen), 'subject-key')),
        uses: 0,
      });
      this.#cache.set(`${handle}/${gen}`, k);
    }
    e.keys[gen - first]!.uses += n;
    this.#dirty = true;
    return { handle, generation: gen, bytes: this.#key(handle, gen) };
  }

  /**
   * The subject's key of `generation` for decryption. An erased subject is `ERR_KEY_DESTROYED`; a
   * handle the store never had is `ERR_CIPHERTEXT_TAMPERED` (the handle cell was altered).
   */
  keyForDecryption(handle: string, generation: number): SubjectKey {
    return { handle, generation, bytes: this.#key(handle, generation) };
  }

  /** Whether the handle belongs to an erased subject. */
  isErased(handle: string): boolean {
    return this.#erased.has(handle) && !this.#subjects.has(handle);
  }

  #key(handle: string, generation: number): Buffer {
    const c = this.#cache.get(`${handle}/${generation}`);
    if (c) return c;
    const e = this.#subjects.get(handle);
    if (!e) {
      if (this.#erased.has(handle)) {
        throw new BulwarkError(
          'ERR_KEY_DESTROYED',
          'the data subject of this value was erased: it cannot be decrypted',
          {
            details: { handle },
          },
        );
      }
      throw new BulwarkError(
        'ERR_CIPHERTEXT_TAMPERED',
        'the data-subject handle is unknown to the subject key store (altered, or another store)',
      );
    }
    const first = e.first ?? 0;
    if (generation < first)
      throw new BulwarkError(
        'ERR_KEY_DESTROYED',
        'the data subject of this value was erased (the subject has keys again since, for newer data only): it cannot be decrypted',
        { details: { handle } },
      );
    const k = e.keys[generation - first];
    if (!k)
      throw new BulwarkError('ERR_KEY_NOT_FOUND', `the data subject has no key of generation ${generation}`);
    const sealed = fromB64(k.sealed);
    const r = sealed
      ? openCommitted(this.#sealKey, sealed, this.#aad(handle, generation), 'subject-key')
      : undefined;
    if (!r?.ok)
      throw new BulwarkError(
        'ERR_KEY_UNWRAP',
        `${this.path}: a subject key fails authentication (the store was altered)`,
      );
    this.#cache.set(`${handle}/${generation}`, r.plaintext);
    return r.plaintext;
  }

  /**
   * Erases a subject (by id): deletes all their keys and saves the store. Returns false when the store
   * had no keys for them.
   */
  async erase(subjectId: string): Promise<boolean> {
    return this.eraseHandle(this.handleOf(subjectId));
  }

  /** Erases a subject by handle (see {@link SubjectKeyStore.erase}). */
  async eraseHandle(handle: string): Promise<boolean> {
    const e = this.#subjects.get(handle);
    const had = this.#subjects.delete(handle);
    // Where the subject's next keys must start, should they appear again: above every erased one.
    if (e) this.#erasedBefore.set(handle, (e.first ?? 0) + e.keys.length);
    for (const k of [...this.#cache.keys()]) {
      if (k.startsWith(`${handle}/`)) {
        this.#cache.get(k)!.fill(0);
        this.#cache.delete(k);
      }
    }
    this.#erased.add(handle);
    this.#dirty = true;
    await this.save();
    return had;
  }

  /** Re-wraps the store key under the primary version of KEK `keyId` (rotation; no subject key changes). */
  async rewrap(keyId = this.#wrapped.key): Promise<void> {
    this.#wrapped = await this.#keyring.rewrapKey(this.#wrapped, SubjectKeyStore.#context(this.id), keyId);
    this.#dirty = true;
    await this.save();
  }

  /** Writes the store atomically (mode 0600) when it changed; only while its lock is held. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    if (this.#lock === undefined)
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `${this.path}: the subject key store was opened read-only; it cannot be changed`,
      );
    this.#lock.assertHeld();
    // Version 1 unless a version-2 field is needed, so older releases keep reading such stores.
    const v2 = this.#erasedBefore.size > 0 || [...this.#subjects.values()].some((e) => e.first);
    const doc = {
      format: SUBJECT_STORE_FORMAT,
      version: v2 ? SUBJECT_STORE_VERSION : 1,
      id: this.id,
      storeKey: this.#wrapped,
      subjects: Object.fromEntries(this.#subjects),
      erased: [...this.#erased].sort(),
      ...(this.#erasedBefore.size > 0
        ? { erasedBefore: Object.fromEntries([...this.#erasedBefore].sort(([a], [b]) => (a < b ? -1 : 1))) }
        : {}),
    };
    await writeFileAtomic(this.path, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
    this.#dirty = false;
  }

  /** Wipes keys held in memory and releases the lock (changes not saved are dropped). */
  async close(): Promise<void> {
    for (const k of this.#cache.values()) k.fill(0);
    this.#cache.clear();
    this.#sealKey.fill(0);
    this.#handleKey.fill(0);
    await this.#lock?.release();
  }
}
