/**
 * Protected model packages: one `.bwm` file holding a manifest (name, version, input/output schema,
 * training lineage), the ONNX model encrypted with the keyring's streaming encryption, and an OpenSSF
 * Model Signing (v1.0) signature in a Sigstore bundle; verified before every load, decrypted in memory
 * only. Also the scanner for models people bring (pickle opcodes, ONNX external data). See
 * docs/model-package.md.
 */
export {
  FOOTER_BYTES,
  HEADER_BYTES,
  PACKAGE_EXTENSION,
  PACKAGE_MAGIC,
  PACKAGE_VERSION,
  type PackageLayout,
} from './format.js';
export {
  type DecryptedModel,
  decryptProtectedModel,
  inspectPackage,
  type LoadedModel,
  type LoadOptions,
  loadProtectedModel,
  type PackageInspection,
  readManifest,
  type VerifiedPackage,
  verifyPackage,
} from './load.js';
export {
  type ClaimEvidence,
  type ClaimStatus,
  claimStatus,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MANIFEST_VERSIONS,
  type ManifestDetectors,
  type ManifestInputField,
  type ModelLineage,
  type ModelManifest,
  manifestSchema,
} from './manifest.js';
export { type ExternalTensor, externalTensors, type OnnxInfo, onnxInfo } from './onnx-info.js';
export {
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_FEATURES,
  DEFAULT_MAX_MEMORY_BYTES,
  type OnnxMemoryBound,
  type OnnxMemoryOptions,
  OPS as ONNX_BOUNDED_OPS,
  onnxMemoryBound,
} from './onnx-memory.js';
export {
  backClaims,
  buildManifest,
  checkDetectorBundle,
  lineageFromOnnxMetadata,
  ONNX_META_KEYS,
  type ProtectOptions,
  type ProtectResult,
  protectModel,
  RESOURCE_BODY,
  RESOURCE_DETECTORS,
  RESOURCE_MANIFEST,
  RESOURCE_MODEL,
  type TrainingRecord,
} from './protect.js';
export {
  assertModelSafe,
  type PickleImport,
  type ScanFinding,
  type ScannedFormat,
  type ScanOptions,
  type ScanReport,
  type ScanSeverity,
  scanModel,
  walkPickle,
} from './scan.js';
export {
  algorithmOf,
  buildStatement,
  generateSigningKey,
  IN_TOTO_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_TYPE,
  loadSigningKey,
  MODEL_SIGNING_PREDICATE_TYPE,
  type ModelStatement,
  type ParsedSignature,
  pae,
  parsePublicKey,
  parseSignature,
  parseStatement,
  publicKeyId,
  publicKeyPem,
  rootDigest,
  SIGNING_ALGORITHMS,
  SIGSTORE_BUNDLE_MEDIA_TYPE,
  type SignedResource,
  type SigningAlgorithm,
  type SigningKey,
  signingKeyFromPem,
  signStatement,
  verifyBytes,
  writeSigningKey,
} from './sign.js';
export {
  loadTrustPolicy,
  modelPatternMatches,
  type TrustedSigner,
  type TrustPolicy,
  trustPolicyFrom,
} from './trust.js';
