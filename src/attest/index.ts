/**
 * Confidential inference: attestation verifiers behind one registry (Nitro, SEV-SNP, software; slots
 * for TDX and NVIDIA GPUs), policies, attested HPKE sessions, and enclave runtimes. See
 * docs/attestation.md.
 */
export { peekCoseTimestamp } from './cose.js';
export { AWS_NITRO_ROOT_FINGERPRINT, type NitroPayload, parseNitroPayload } from './formats/nitro.js';
export {
  AMD_ARK_FINGERPRINTS,
  parseSnpReport,
  SNP_REPORT_SIZE,
  type SnpReport,
  type TcbVersion,
} from './formats/sev-snp.js';
export {
  SOFTWARE_FORMAT_ID,
  type SoftwareStatement,
  signSoftwareAttestation,
  softwareKeyId,
} from './formats/software.js';
export { type AttestationPolicy, checkPolicy, parsePolicy, productionPolicy } from './policy.js';
export {
  attestationFormats,
  attestationVerifier,
  clearAttestationCaches,
  RESERVED_ATTESTATION_FORMATS,
  registerAttestationFormat,
  type VerifyAttestationOptions,
  verifyAttestation,
} from './registry.js';
export {
  encodeInferenceRequest,
  type InferenceResponse,
  parseInferenceRequest,
  parseInferenceResponse,
} from './runtime/inference.js';
export {
  decodeNsmAttestationResponse,
  encodeNsmAttestationRequest,
  NitroAttester,
  type NsmDevice,
  nsmHelperDevice,
} from './runtime/nitro.js';
export {
  type RemoteOpenedRequest,
  SoftwareEnclave,
  type SoftwareEnclaveOptions,
} from './runtime/software.js';
export { buildSnpCertTable, parseSnpCertTable, TsmAttester, type TsmAttesterOptions } from './runtime/tsm.js';
export {
  ATTESTATION_MEDIA_TYPE,
  AttestedClient,
  type AttestedClientOptions,
  ClientSession,
  type ClientVerifyOptions,
  type FetchLike,
  SESSION_MEDIA_TYPE,
} from './session/client.js';
export { bindingDigest } from './session/crypto.js';
export { type AttestedEndpoint, attestedHttpHandler, httpStatusOf } from './session/http.js';
export { ReplayWindow } from './session/replay.js';
export {
  type AttestationBinding,
  AttestedSessionServer,
  type AttestedSessionServerOptions,
  type Attester,
  type OpenedRequest,
} from './session/server.js';
export { parseFrame } from './session/wire.js';
export type { AttestationClaims, AttestationVerifier, VerifyOptions } from './types.js';
