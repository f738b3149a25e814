/**
 * The ML core: numeric kernels, logistic regression and MLP models with first-class gradients,
 * training, metrics, and ONNX export/import. See docs/ml.md.
 */
export {
  ACTIVATIONS,
  type ActivationName,
  DEFAULT_TEMPERED,
  type TemperedSigmoid,
} from './activations.js';
export { choleskyLower, choleskySolve } from './cholesky.js';
export {
  add,
  addRowVector,
  argmaxRows,
  axpy,
  colSums,
  dot,
  gemm,
  gemmBackend,
  logSumExp,
  logSumExpRows,
  max,
  mul,
  norm2,
  scale,
  setGemmBackend,
  setThreads,
  sigmoid,
  softmaxRows,
  softplus,
  sub,
  sum,
  sumSquares,
  threads,
  transpose,
} from './kernels.js';
export {
  fitLbfgs,
  fitLbfgsAsync,
  type LbfgsOptions,
  type LbfgsResult,
  type LbfgsStop,
  type MinimizeOptions,
  type MinimizeResult,
  minimizeLbfgs,
  minimizeLbfgsAsync,
  type Objective,
} from './lbfgs.js';
export {
  type Average,
  accuracy,
  averagePrecision,
  binaryReport,
  confusionMatrix,
  fprAtThreshold,
  type PrecisionRecallF1,
  precisionRecallF1,
  type RocCurve,
  rocAuc,
  rocCurve,
  thresholdForFpr,
} from './metrics.js';
export {
  type ForwardCache,
  type Head,
  type LossOptions,
  logisticRegression,
  mlp,
  NETWORK_INITS,
  Network,
  type NetworkInit,
  type NetworkJson,
  type NetworkSpec,
  type Preprocessing,
} from './network.js';
export {
  INPUT_NAME,
  LOGITS_NAME,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxExportOptions,
  PROBABILITIES_NAME,
  toOnnx,
} from './onnx/export.js';
export { type EngineTargets, OnnxGradientEngine, type PgdBox } from './onnx/gradient-engine.js';
export {
  gradientGraphUnsupported,
  inputGradientGraph,
  trainingGradientGraph,
} from './onnx/gradient-graph.js';
export { fromOnnx, type OnnxImportOptions, type OnnxImportResult, onnxMetadata } from './onnx/import.js';
export { metadataJson } from './onnx/metadata.js';
export { OnnxRuntimeModel } from './onnx/runtime.js';
export { Adam, type AdamOptions, type Optimizer, type OptimizerName, Sgd, type SgdOptions } from './optim.js';
export {
  checkLabelledData,
  type EpochRecord,
  evaluate,
  type LabelledData,
  resolveClassWeights,
  resolveOptimizer,
  splitValidation,
  type TrainOptions,
  type TrainProgress,
  type TrainResult,
  train,
} from './train.js';
export { EventLoopTurns, runSteps, runStepsAsync, type Steps, TURN_INTERVAL_MS } from './turns.js';
