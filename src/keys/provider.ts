import { BulwarkError, invalidArgument } from '../core/index.js';
import type { SecretSource } from './secret.js';

/**
 * Key providers hold key-encryption keys (KEKs) and wrap and unwrap data keys with them. A provider
 * never hands out a KEK: it only wraps and unwraps. Providers are found by name in a registry (as
 * sigstore-js' signers or opacus' accountants), so a deployment can add a cloud KMS or Vault with
 * {@link registerKeyProvider} without touching the keyring.
 */

/**
 * What the keyring stores about one KEK version for its provider: for `local` the sealed key itself,
 * for `pkcs11` the token object's label and id, for `file`/`env` where the key is read from.
 */
export type ProviderRef = Readonly<Record<string, string | number | boolean>>;

/** How a new KEK version gets its material. */
export interface KeySource {
  /** Read a raw 256-bit key from this file (`file` provider). */
  file?: string;
  /** Read a raw 256-bit key from this environment variable (`env` provider). */
  env?: string;
}

/** Where and how a data key was wrapped: the output of {@link KeyProvider.wrap}. */
export interface WrapOutput {
  /** Algorithm name stored with the wrapped key (checked on unwrap). */
  alg: string;
  blob: Buffer;
}

/** An open provider: wraps and unwraps data keys under the KEK versions it holds. */
export interface KeyProvider {
  readonly name: string;
  /** Makes the material of a new KEK version (or records where it lives) and returns its reference. */
  createKey(keyId: string, version: number, source: KeySource): Promise<ProviderRef>;
  /**
   * How many wraps one KEK version may make, when the provider's wrapping has such a limit (AES-GCM with
   * random 96-bit IVs inside a token: at most 2^32 messages per key, NIST SP 800-38D §8.3). The keyring
   * then counts every wrap in its file before it is made and refuses past the limit. Undefined: no
   * limit to count (a committing AEAD under a fresh derived key per message).
   */
  readonly wrapLimit?: number;
  /** Wraps `dek` (32 bytes) under the KEK `ref`, binding `aad`. */
  wrap(ref: ProviderRef, dek: Uint8Array, aad: Uint8Array): Promise<WrapOutput>;
  /** Unwraps; throws `ERR_KEY_UNWRAP` on any failure to authenticate. */
  unwrap(ref: ProviderRef, alg: string, blob: Uint8Array, aad: Uint8Array): Promise<Buffer>;
  /** Destroys the material where the provider can (local: erased; pkcs11: object deleted). */
  destroy(ref: ProviderRef): Promise<ProviderRef>;
  /** Releases sessions and handles. */
  close(): Promise<void>;
}

/** The settings a provider keeps in the keyring file (never secrets). */
export type ProviderConfig = Readonly<Record<string, string | number | boolean>>;

/** Opens a provider from its stored settings and a source for its secret (a PIN), when it needs one. */
export interface KeyProviderFactory {
  readonly name: string;
  /** True when the keyring file holds the KEKs themselves and is sealed with a passphrase (`local`). */
  readonly sealed: boolean;
  /** One-line description for `bulwark keys init --help`. */
  readonly description: string;
  /** Checks settings given at `keys init`; returns what to store. */
  configure(settings: Readonly<Record<string, string | undefined>>): ProviderConfig;
  open(config: ProviderConfig, secret: SecretSource): Promise<KeyProvider>;
}

const registry = new Map<string, KeyProviderFactory>();

/**
 * Adds a key provider (e.g. a cloud KMS). Its name is stored in keyring files; a name already taken is
 * `ERR_INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * registerKeyProvider({ name: 'vault', sealed: false, description: 'HashiCorp Vault transit',
 *   configure: (s) => ({ address: s['address'] ?? '' }), open: async (cfg, pin) => new VaultProvider(cfg) });
 * ```
 */
export function registerKeyProvider(factory: KeyProviderFactory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(factory.name))
    throw invalidArgument('provider.name', 'a lower-case name', factory.name);
  if (registry.has(factory.name))
    throw invalidArgument('provider.name', 'a name not yet registered', factory.name);
  registry.set(factory.name, factory);
}

/** The registered provider `name`; `ERR_INVALID_ARGUMENT` listing the known ones otherwise. */
export function getKeyProvider(name: string): KeyProviderFactory {
  const f = registry.get(name);
  if (!f) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `unknown key provider "${name}"; known: ${[...registry.keys()].join(', ')}`,
      { details: { parameter: 'provider' } },
    );
  }
  return f;
}

/** Names of the registered providers. */
export function keyProviderNames(): string[] {
  return [...registry.keys()];
}

/** The error every provider raises when a wrapped key does not authenticate. */
export function unwrapFailed(what: string, cause?: unknown): BulwarkError {
  return new BulwarkError(
    'ERR_KEY_UNWRAP',
    `${what}: the wrapped data key does not authenticate (altered, or the key material changed)`,
    { cause },
  );
}
