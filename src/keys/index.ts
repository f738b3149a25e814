/**
 * Keys: the keyring of key-encryption keys (local sealed file, PKCS#11 token, file, environment),
 * envelope encryption with counted data keys, and framed streaming file encryption. See docs/keys.md.
 */
export {
  COMMITTED_OVERHEAD,
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
  gcmOpen,
  gcmSeal,
  hkdf,
  KEY_BYTES,
  type OpenFailure,
  type OpenResult,
  openCommitted,
  sealCommitted,
} from './aead.js';
export { b64, b64u, bytesEqual, encodeParts, fromB64, utf8 } from './bytes.js';
export { DataKey, DEK_MAX_MESSAGES, newDataKey, openDataKey } from './envelope.js';
export { PARALLEL_MIN_FRAMES, type ParallelOptions } from './frame-pipeline.js';
export { type GcmBackendInfo, type GcmKey, gcmBackend, gcmKey } from './gcm.js';
export {
  type CreateKeyringOptions,
  DEFAULT_SCRYPT,
  KEYRING_FORMAT,
  KEYRING_VERSION,
  type KeyRecord,
  Keyring,
  type KeyStatus,
  type KeyVersionInfo,
  type KeyVersionRecord,
  MIN_PASSPHRASE_CHARS,
  type OpenKeyringOptions,
  type ScryptParams,
  type WrappedKey,
  wrappedKeySchema,
} from './keyring.js';
export {
  getKeyProvider,
  type KeyProvider,
  type KeyProviderFactory,
  type KeySource,
  keyProviderNames,
  type ProviderConfig,
  type ProviderRef,
  registerKeyProvider,
  unwrapFailed,
  type WrapOutput,
} from './provider.js';
export { findSoftHsmModule, PKCS11_WRAP_ALG, SOFTHSM2_MODULE_PATHS } from './providers/pkcs11.js';
export { parseRawKey, RAW_WRAP_ALG } from './providers/raw.js';
export { readSecret, type SecretSource } from './secret.js';
export {
  type ByteSource,
  DEFAULT_FRAME_SIZE,
  type DecryptStreamOptions,
  decryptBytes,
  decryptFile,
  decryptStream,
  type EncryptStreamOptions,
  encryptBytes,
  encryptFile,
  encryptStream,
  FRAME_HEADER_BYTES,
  FRAME_OVERHEAD,
  MAX_FRAME_LOG2,
  MIN_FRAME_LOG2,
  readStreamHeader,
  STREAM_MAGIC,
  STREAM_VERSION,
  type StreamHeaderInfo,
} from './stream.js';
