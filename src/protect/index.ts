/**
 * Data protection: field-level encryption of datasets (randomized AES-256-GCM with key commitment,
 * deterministic AES-SIV, HMAC blind indexes), per-subject keys for erasure, streaming protect and
 * reveal of CSV files, rotation and re-encryption. See docs/protect.md.
 */
export {
  BlindIndex,
  ColumnKeys,
  decodeCell,
  FIELD_FORMAT_VERSION,
  type FieldHeader,
  MODE_DETERMINISTIC,
  MODE_SUBJECT,
  parseFieldHeader,
} from './format.js';
export {
  checkManifestMac,
  dekContext,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestColumn,
  manifestMac,
  manifestSchema,
  PROTECT_MODES,
  type ProtectMode,
  readManifest,
  writeManifest,
} from './manifest.js';
export {
  BLIND_INDEX_SUFFIX,
  manifestPathOf,
  type ProtectedColumnReport,
  type ProtectOptions,
  type ProtectReport,
  protectCsv,
  protectRows,
  SUBJECT_HANDLE_COLUMN,
} from './protect.js';
export {
  ProtectedReader,
  type ReencryptOptions,
  type RevealOptions,
  type RevealReport,
  reencryptCsv,
  revealCsv,
  rewrapProtected,
} from './reveal.js';
export {
  SUBJECT_STORE_FORMAT,
  SUBJECT_STORE_VERSION,
  SUBJECT_STORE_VERSIONS,
  type SubjectKey,
  SubjectKeyStore,
} from './subjects.js';
export { checkStoredColumns, ProtectedRowsCheck, unlockManifest } from './verify.js';
