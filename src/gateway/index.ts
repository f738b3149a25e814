/**
 * The zero-trust inference gateway (`bulwark serve`): TLS 1.3 and mutual TLS, JWT and SPIFFE identity
 * (./auth), Cedar authorisation (./policy), rate limits and query budgets, schema validation, detectors,
 * ONNX Runtime inference from protected model packages, output hardening, a tamper-evident audit record
 * of every prediction, Prometheus metrics, and the KServe v2 / Open Inference Protocol REST routes.
 * See docs/gateway.md. The client SDK is the package subpath `bulwark/client` (./client.ts).
 */
export {
  type EnclaveConfig,
  type GatewayConfig,
  gatewayConfig,
  gatewayConfigSchema,
  loadGatewayConfig,
  type ModelConfig,
  type OutputConfig,
  resolveConfigPaths,
} from './config.js';
export { DASHBOARD_CSP, dashboardData } from './dashboard.js';
export {
  ATTESTATION_PATH,
  type EnclaveInfo,
  GatewayEnclave,
  type GatewayEnclaveOptions,
  modelMeasurement,
  SEALED_ROUTE,
} from './enclave.js';
export { errorReply, httpStatus, type Reply } from './errors.js';
export { jsonStructureProblem, parseJsonBody } from './json.js';
export { Limiter, type LimitOutcome } from './limits.js';
export { GatewayMetrics } from './metrics.js';
export {
  DefaultModelSource,
  InsecureOnnxSource,
  type LoadedModel,
  type ModelSource,
  modelFromOnnx,
  PackageModelSource,
  schemaFromManifest,
} from './model-source.js';
export type { AuthenticatorLike, AuthorizerLike } from './peers.js';
export {
  type InferCall,
  type OptionalStage,
  Pipeline,
  type PipelineOptions,
  STAGES,
  type Stage,
} from './pipeline.js';
export { type Detection, type InferRequest, type OutputTensor, ServedModel } from './served-model.js';
export { Gateway, type GatewayOptions } from './server.js';
