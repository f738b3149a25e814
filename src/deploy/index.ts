export {
  type CheckOptions,
  checkManifests,
  type Finding,
  failsAt,
  type ManifestDoc,
  type ObjectRef,
  parseManifests,
  splitImage,
} from './check.js';
export {
  type DeployConfig,
  type DeployInputs,
  type Destination,
  deploySchema,
  type EgressPeer,
  loadDeployConfig,
  MOUNTS,
  PRE_STOP_SECONDS,
  parseDeployConfig,
  readDeployInputs,
  secretFileProblem,
} from './config.js';
export {
  type ConfigFile,
  kustomization,
  readConfigFiles,
  toYaml,
  type WrittenBase,
  writeKustomizeBase,
} from './kustomize.js';
export {
  buildManifests,
  CONFIG_MAP,
  type GeneratedBase,
  type GeneratedObject,
  IMAGE_NODE,
  type K8sObject,
  peerFor,
} from './manifests.js';
export {
  RULE_BY_ID,
  RULES,
  type Rule,
  type RuleLevel,
  SEVERITIES,
  type Severity,
  severityRank,
} from './rules.js';
