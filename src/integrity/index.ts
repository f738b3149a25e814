/**
 * Training-data integrity and the security gate: provenance of training batches (audit log), the
 * inspect-and-sanitise training workflow, the CI/CD security gate and the continuous-learning
 * regression check. It sits above robust, privacy, audit and train (it combines them), below the CLI.
 * The attacks and the defences themselves are in src/robust. See docs/integrity.md.
 */

export { binomialBound, minRowsFor, ZERO_TOLERANCE_ROWS } from './confidence.js';
export {
  type ComparisonSettings,
  type ContinueOptions,
  type ContinueResult,
  compareOnEvaluation,
  continueTraining,
  META_CONTINUED_FROM,
} from './continue.js';
export {
  continueTrainingDp,
  type DpContinueOptions,
  type DpContinueResult,
  META_POISON_GATE,
  type PoisonGateRecord,
  previousGuarantee,
} from './continue-dp.js';
export {
  checkName,
  GATE_DIRECTION,
  GATE_METRICS,
  type GateCheck,
  type GateCount,
  type GateInputs,
  type GateMetric,
  type GateReport,
  type GateRow,
  type GateSpec,
  gateSchema,
  judgeGate,
  loadGate,
  parseGate,
  requireGatePassed,
  runGate,
  SHARE_METRICS,
} from './gate.js';
export { distinctRows, requireDisjoint, sharedRows } from './overlap.js';
export {
  checkProvenance,
  fileDigest,
  type ProvenanceOptions,
  type ProvenanceRecord,
  requireProvenance,
} from './provenance.js';
export {
  type ClassRecall,
  compareModels,
  compareOnnxModels,
  DEFAULT_MAX_CLASS_DROP,
  MIN_EVALUATION_ROWS,
  type ModelComparison,
  minEvaluationRows,
  type RegressionLimits,
  type RegressionOptions,
  requireDistinctEvaluationRows,
  requireEvaluationRows,
  requireNoRegression,
} from './regression.js';
export {
  type FlaggedRow,
  INSPECT_METHODS,
  type Inspection,
  type InspectMethod,
  type InspectOptions,
  inspectRows,
  inspectRowsAsync,
  labelIndices,
  META_SANITIZE,
  type SanitizedTraining,
  type SanitizeRecord,
  sanitizeCosts,
  trainSanitized,
} from './sanitize.js';
