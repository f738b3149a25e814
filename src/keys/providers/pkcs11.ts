import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { delimiter } from 'node:path';
import type * as Pkcs11Types from 'pkcs11js';
import { BulwarkError, invalidArgument } from '../../core/index.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES } from '../aead.js';
import {
  type KeyProvider,
  type KeyProviderFactory,
  type ProviderConfig,
  type ProviderRef,
  unwrapFailed,
  type WrapOutput,
} from '../provider.js';
import { readSecret, type SecretSource } from '../secret.js';

/**
 * The `pkcs11` provider: KEKs are AES-256 keys generated inside a PKCS#11 token (an HSM, or SoftHSM2
 * in tests) as sensitive, non-extractable token objects; data keys are wrapped and unwrapped inside the
 * token with CKM_AES_GCM (a fresh 96-bit IV per wrap, 128-bit tag, the wrap context as AAD). The key
 * never leaves the token. SoftHSM2 reports a failed GCM decrypt as CKR_GENERAL_ERROR rather than
 * CKR_ENCRYPTED_DATA_INVALID, so any failed unwrap is treated as an authentication failure.
 *
 * The native binding (pkcs11js) is loaded only when a pkcs11 keyring is opened.
 */

export const PKCS11_WRAP_ALG = 'PKCS11-CKM_AES_GCM';

type Pkcs11Module = typeof Pkcs11Types;
type Handle = Buffer;

/** Common locations of SoftHSM2's module on Debian/Ubuntu and others. */
export const SOFTHSM2_MODULE_PATHS = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
];

/** The first SoftHSM2 module found on this machine, or undefined. */
export function findSoftHsmModule(): string | undefined {
  return SOFTHSM2_MODULE_PATHS.find((p) => existsSync(p));
}

/**
 * The variable that lists further PKCS#11 modules this machine trusts (absolute paths, separated by
 * `:`), for HSMs other than SoftHSM2, whose usual locations are trusted without it.
 */
export const PKCS11_MODULES_ENV = 'BULWARK_PKCS11_MODULES';

/**
 * The real path of `module` when it is a module this machine trusts: one of SoftHSM2's usual locations
 * or one listed in {@link PKCS11_MODULES_ENV}, compared after resolving symlinks and `..`.
 *
 * Why: a pkcs11 keyring file is plain JSON, authenticated by nothing, and names the module to load.
 * Loading a shared library runs its code in this process (its constructors run at dlopen), and
 * C_Login then hands it the token's PIN; so whoever can write the keyring file could otherwise run
 * code as every process that opens it and collect the PIN. The module is therefore chosen by the
 * machine's configuration, never by the file. The path returned is the one loaded, so a symlink
 * changed after this check cannot swap the library.
 */
export function trustedModule(module: string): string {
  let real: string;
  try {
    real = realpathSync(module);
  } catch (e) {
    throw new BulwarkError('ERR_HSM', `PKCS#11 module not found: ${module}`, {
      cause: e,
      details: { module },
    });
  }
  const listed = (process.env[PKCS11_MODULES_ENV] ?? '').split(delimiter).filter((p) => p !== '');
  for (const candidate of [...SOFTHSM2_MODULE_PATHS, ...listed]) {
    let r: string;
    try {
      r = realpathSync(candidate);
    } catch {
      continue;
    }
    if (r === real) return real;
  }
  throw new BulwarkError(
    'ERR_PKCS11_MODULE_UNTRUSTED',
    `the PKCS#11 module ${module} is not one this machine trusts: refused before loading it (a keyring file naming a module could otherwise run any library with the token's PIN); if it is your HSM's module, list it in ${PKCS11_MODULES_ENV}`,
    { details: { module } },
  );
}

function hsmError(what: string, e: unknown, details: Record<string, string> = {}): BulwarkError {
  const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return new BulwarkError('ERR_HSM', `${what}: ${reason}`, { cause: e, details });
}

/** One loaded and initialised module per path: C_Initialize may run once per process. */
const loaded = new Map<string, { lib: Pkcs11Types.PKCS11; users: number }>();

async function loadModule(path: string): Promise<{ mod: Pkcs11Module; lib: Pkcs11Types.PKCS11 }> {
  let mod: Pkcs11Module;
  try {
    mod = ((await import('pkcs11js')) as unknown as { default: Pkcs11Module }).default;
  } catch (e) {
    throw hsmError('the pkcs11js native binding is not available (npm ci builds it with node-gyp)', e);
  }
  const have = loaded.get(path);
  if (have) {
    have.users++;
    return { mod, lib: have.lib };
  }
  if (!existsSync(path)) {
    throw new BulwarkError('ERR_HSM', `PKCS#11 module not found: ${path}`, { details: { module: path } });
  }
  const lib = new mod.PKCS11();
  try {
    lib.load(path);
    lib.C_Initialize();
  } catch (e) {
    // By the PKCS#11 result value (pkcs11js's Pkcs11Error.code), not the message's text.
    if ((e as { code?: unknown }).code !== mod.CKR_CRYPTOKI_ALREADY_INITIALIZED)
      throw hsmError(`cannot load PKCS#11 module ${path}`, e, { module: path });
  }
  loaded.set(path, { lib, users: 1 });
  return { mod, lib };
}

/**
 * The logins this process holds, per module and token. A PKCS#11 login belongs to the application, not
 * to a session (C_Login on a second session answers CKR_USER_ALREADY_LOGGED_IN without looking at the
 * PIN; C_Logout logs every session out): so a second keyring on a logged-in token has its PIN compared
 * here with the one that logged in (HMAC under a per-process random key, compared in constant time),
 * and only the last keyring to close logs out.
 */
const logins = new Map<string, { pin: Buffer; users: number }>();
const pinKey = randomBytes(32);
const pinDigest = (pin: Buffer) => createHmac('sha256', pinKey).update(pin).digest();

function releaseModule(path: string): void {
  const have = loaded.get(path);
  if (!have) return;
  have.users--;
  if (have.users > 0) return;
  loaded.delete(path);
  try {
    have.lib.C_Finalize();
  } catch {
    // Finalising an already finalised module is harmless.
  }
  try {
    have.lib.close();
  } catch {
    // idem
  }
}

class Pkcs11Provider implements KeyProvider {
  readonly name = 'pkcs11';
  readonly #mod: Pkcs11Module;
  readonly #lib: Pkcs11Types.PKCS11;
  readonly #session: Handle;
  readonly #module: string;
  readonly #token: string;
  #closed = false;
  /** CKM_AES_GCM with a random 96-bit IV per wrap: the keyring counts wraps (SP 800-38D §8.3). */
  readonly wrapLimit = 2 ** 32;

  constructor(mod: Pkcs11Module, lib: Pkcs11Types.PKCS11, session: Handle, module: string, token: string) {
    this.#mod = mod;
    this.#lib = lib;
    this.#session = session;
    this.#module = module;
    this.#token = token;
  }

  #find(ref: ProviderRef): Handle {
    const id = ref['id'];
    if (typeof id !== 'string')
      throw new BulwarkError('ERR_KEYRING_INVALID', 'a pkcs11 key entry lacks its id');
    const m = this.#mod;
    let found: Handle[];
    try {
      this.#lib.C_FindObjectsInit(this.#session, [
        { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
        { type: m.CKA_ID, value: Buffer.from(id, 'hex') },
      ]);
      found = this.#lib.C_FindObjects(this.#session, 2);
      this.#lib.C_FindObjectsFinal(this.#session);
    } catch (e) {
      throw hsmError(`cannot search token "${this.#token}"`, e);
    }
    const h = found[0];
    if (found.length !== 1 || h === undefined) {
      throw new BulwarkError(
        'ERR_KEY_NOT_FOUND',
        `the token "${this.#token}" holds no key with id ${id}${found.length > 1 ? ' (or several)' : ''}`,
        { details: { token: this.#token, id } },
      );
    }
    return h;
  }

  async createKey(keyId: string, version: number): Promise<ProviderRef> {
    const m = this.#mod;
    const id = randomBytes(16);
    const label = `bulwark:${keyId}:v${version}`;
    try {
      this.#lib.C_GenerateKey(this.#session, { mechanism: m.CKM_AES_KEY_GEN }, [
        { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
        { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
        { type: m.CKA_VALUE_LEN, value: 32 },
        { type: m.CKA_TOKEN, value: true },
        { type: m.CKA_PRIVATE, value: true },
        { type: m.CKA_SENSITIVE, value: true },
        { type: m.CKA_EXTRACTABLE, value: false },
        { type: m.CKA_ENCRYPT, value: true },
        { type: m.CKA_DECRYPT, value: true },
        { type: m.CKA_LABEL, value: label },
        { type: m.CKA_ID, value: id },
      ]);
    } catch (e) {
      throw hsmError(`cannot generate a key in token "${this.#token}"`, e);
    }
    return { id: id.toString('hex'), label };
  }

  #gcm(iv: Buffer, aad: Uint8Array): Pkcs11Types.Mechanism {
    const m = this.#mod;
    const parameter: Pkcs11Types.GcmParams = {
      type: m.CK_PARAMS_GCM,
      iv,
      ivBits: iv.length * 8,
      aad: Buffer.from(aad),
      tagBits: GCM_TAG_BYTES * 8,
    };
    return { mechanism: m.CKM_AES_GCM, parameter };
  }

  async wrap(ref: ProviderRef, dek: Uint8Array, aad: Uint8Array): Promise<WrapOutput> {
    const key = this.#find(ref);
    const iv = randomBytes(GCM_NONCE_BYTES);
    try {
      this.#lib.C_EncryptInit(this.#session, this.#gcm(iv, aad), key);
      const out = this.#lib.C_Encrypt(
        this.#session,
        Buffer.from(dek),
        Buffer.alloc(dek.length + GCM_TAG_BYTES),
      );
      return { alg: PKCS11_WRAP_ALG, blob: Buffer.concat([iv, out]) };
    } catch (e) {
      throw hsmError(`token "${this.#token}" refused to wrap a data key`, e);
    }
  }

  async unwrap(ref: ProviderRef, alg: string, blob: Uint8Array, aad: Uint8Array): Promise<Buffer> {
    if (alg !== PKCS11_WRAP_ALG) {
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `unknown key-wrapping algorithm "${alg}" for a pkcs11 key`,
      );
    }
    const key = this.#find(ref);
    if (blob.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw unwrapFailed(`token "${this.#token}"`);
    const iv = Buffer.from(blob.subarray(0, GCM_NONCE_BYTES));
    const body = Buffer.from(blob.subarray(GCM_NONCE_BYTES));
    try {
      this.#lib.C_DecryptInit(this.#session, this.#gcm(iv, aad), key);
      return Buffer.from(this.#lib.C_Decrypt(this.#session, body, Buffer.alloc(body.length)));
    } catch (e) {
      // CKR_GENERAL_ERROR (SoftHSM2), CKR_ENCRYPTED_DATA_INVALID, CKR_AEAD_DECRYPT_FAILED...: all mean
      // the wrapped key does not authenticate under this key. A decrypt operation left active by a
      // failure is ended by the next C_DecryptInit.
      throw unwrapFailed(`token "${this.#token}"`, e);
    }
  }

  async destroy(ref: ProviderRef): Promise<ProviderRef> {
    const key = this.#find(ref);
    try {
      this.#lib.C_DestroyObject(this.#session, key);
    } catch (e) {
      throw hsmError(`token "${this.#token}" refused to destroy key ${String(ref['id'])}`, e);
    }
    return { id: String(ref['id']), label: String(ref['label'] ?? '') };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const login = logins.get(loginKey(this.#module, this.#token));
    if (login && --login.users === 0) {
      logins.delete(loginKey(this.#module, this.#token));
      try {
        this.#lib.C_Logout(this.#session);
      } catch {
        // not logged in
      }
    }
    try {
      this.#lib.C_CloseSession(this.#session);
    } catch {
      // already closed
    }
    releaseModule(this.#module);
  }
}

function loginKey(module: string, token: string): string {
  return `${module}\0${token}`;
}

async function openPkcs11(config: ProviderConfig, secret: SecretSource): Promise<KeyProvider> {
  const named = config['module'];
  const token = config['token'];
  if (typeof named !== 'string' || typeof token !== 'string') {
    throw new BulwarkError('ERR_KEYRING_INVALID', 'a pkcs11 keyring must name its module and token');
  }
  // Checked before anything is loaded; the resolved path is the one loaded (see trustedModule).
  const module = trustedModule(named);
  const { mod, lib } = await loadModule(module);
  let session: Handle | undefined;
  try {
    let slot: Handle | undefined;
    for (const s of lib.C_GetSlotList(true)) {
      if (lib.C_GetTokenInfo(s).label.trim() === token) {
        slot = s;
        break;
      }
    }
    if (!slot) {
      throw new BulwarkError('ERR_HSM', `no token labelled "${token}" in ${module}`, {
        details: { module, token },
      });
    }
    session = lib.C_OpenSession(slot, mod.CKF_SERIAL_SESSION | mod.CKF_RW_SESSION);
    const pin = await readSecret(`PIN of token "${token}"`, secret);
    const key = loginKey(module, token);
    try {
      const held = logins.get(key);
      if (held) {
        if (!timingSafeEqual(held.pin, pinDigest(pin)))
          throw hsmError(`login to token "${token}" failed`, new Error('CKR_PIN_INCORRECT'), {
            module,
            token,
          });
        held.users++;
      } else {
        try {
          lib.C_Login(session, mod.CKU_USER, pin.toString('utf8'));
        } catch (e) {
          // Logged in by something else in this process than a keyring (no PIN to compare): refused.
          throw hsmError(`login to token "${token}" failed`, e, { module, token });
        }
        logins.set(key, { pin: pinDigest(pin), users: 1 });
      }
    } finally {
      pin.fill(0);
    }
    return new Pkcs11Provider(mod, lib, session, module, token);
  } catch (e) {
    if (session) {
      try {
        lib.C_CloseSession(session);
      } catch {
        // ignore
      }
    }
    releaseModule(module);
    throw e instanceof BulwarkError ? e : hsmError(`cannot open token "${token}"`, e, { module, token });
  }
}

export const pkcs11Provider: KeyProviderFactory = {
  name: 'pkcs11',
  sealed: false,
  description: 'non-extractable AES keys generated in a PKCS#11 token (HSM); wrap/unwrap inside the token',
  configure(settings) {
    const module = settings['module'] ?? findSoftHsmModule();
    const token = settings['token'];
    if (module === undefined) throw invalidArgument('module', 'the path of a PKCS#11 module', undefined);
    if (token === undefined || token === '') throw invalidArgument('token', 'a token label', token);
    return { module, token };
  },
  open: openPkcs11,
};
