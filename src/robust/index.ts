/**
 * Adversarial robustness: evasion attacks (FGSM, PGD, APGD, Square), poisoning (label flipping, backdoors),
 * training-data defences (spectral signatures, activation clustering), privacy attacks (membership
 * inference, model extraction), defences (adversarial training, input validation) and detectors, and the
 * red-team evaluation behind `bulwark evaluate`. See docs/robust.md.
 */
export { type ApgdOptions, apgd, apgdAsync } from './attacks/evasion/apgd.js';
export { type EvasionBase, type EvasionResult, takeLabels, takeRows } from './attacks/evasion/common.js';
export {
  type AttackPenalty,
  type FgsmOptions,
  fgsm,
  fgsmAsync,
  type PgdOptions,
  pgd,
  pgdAsync,
} from './attacks/evasion/pgd.js';
export { type SquareOptions, square, squareP } from './attacks/evasion/square.js';
export {
  type ExtractionOptions,
  type ExtractionPoint,
  type ExtractionResult,
  extractModel,
  type SurrogateTrainer,
} from './attacks/extraction/knockoff.js';
export {
  type AttributeInferenceOptions,
  type AttributeInferenceResult,
  attributeInference,
  modelPerformance,
} from './attacks/inference/inversion.js';
export {
  aucInterval95,
  type LiraOptions,
  liraAttack,
  lossThresholdAttack,
  type MembershipResult,
  membershipSummary,
  type ShadowTrainer,
} from './attacks/inference/membership.js';
export {
  applyPatch,
  applyTabularTrigger,
  type BackdoorSuccess,
  backdoorSuccess,
  checkTabularTrigger,
  concatRows,
  type ImageBackdoor,
  type ImageBackdoorOptions,
  type PatchTrigger,
  POISON_MODES,
  type PoisonMode,
  plantImageBackdoor,
  plantTabularBackdoor,
  type TabularBackdoor,
  type TabularBackdoorOptions,
  type TabularTrigger,
} from './attacks/poisoning/backdoor.js';
export {
  FLIP_MODES,
  type FlipMode,
  flipLabels,
  type LabelFlipOptions,
  type PoisonedLabels,
} from './attacks/poisoning/flip.js';
export {
  BUNDLE_KINDS,
  type BundleKind,
  DETECTOR_BUNDLE_FORMAT,
  DETECTOR_BUNDLE_VERSION,
  type DetectorBundle,
  type DetectorBundleJson,
  type DetectorProtectedData,
  type DetectorProvenance,
  detectorBundleToJson,
  type FitBundleOptions,
  fitDetectorBundle,
  loadDetectorBundle,
  MAX_STREAM_VALUES,
  readDetectorBundle,
} from './defences/detector/bundle.js';
export {
  type Calibration,
  conformalFprBound,
  conformalThreshold,
  DETECTOR_FORMAT,
  DETECTOR_VERSION,
  type Detector,
  type DetectorJson,
} from './defences/detector/detector.js';
export {
  type FeatureNetwork,
  MahalanobisDetector,
  type MahalanobisOptions,
} from './defences/detector/mahalanobis.js';
export { PradaDetector, type PradaOptions } from './defences/detector/prada.js';
export {
  RedisStreamState,
  type RedisStreamStateOptions,
} from './defences/detector/shared-state.js';
export { SqueezeDetector, type SqueezeOptions, type Squeezer } from './defences/detector/squeeze.js';
export { StatefulDetector, type StatefulOptions } from './defences/detector/stateful.js';
export {
  benignStreams,
  featureScale,
  type QueryStream,
  type QueryVerdict,
  type StreamDetector,
} from './defences/detector/stream.js';
export {
  type ActivationClusteringOptions,
  activationClustering,
  activationClusteringSteps,
  CLUSTER_ANALYSES,
  type ClusterAnalysis,
  detectionQuality,
} from './defences/poison/clustering.js';
export {
  type ClassSummary,
  hiddenRepresentationSteps,
  hiddenRepresentations,
  type PoisonScores,
} from './defences/poison/common.js';
export {
  type SpectralOptions,
  spectralSignatureSteps,
  spectralSignatures,
} from './defences/poison/spectral.js';
export {
  ADVERSARIAL_ENGINES,
  ADVERSARIAL_METHODS,
  type AdversarialEngine,
  type AdversarialEpoch,
  type AdversarialMethod,
  type AdversarialProgress,
  type AdversarialTrainOptions,
  type AdversarialTrainResult,
  adversarialTrain,
  type PgdTrainingInputsOptions,
  pgdTrainingInputs,
  tradesLossAndGradient,
} from './defences/trainer/adversarial.js';
export {
  type InputCheck,
  type InputIssue,
  type InputIssueReason,
  type InputLimits,
  InputValidator,
  type InputValidatorOptions,
  validateFeatures,
} from './defences/validate.js';
export {
  domainFromSchema,
  InputDomain,
  type InputDomainSpec,
  NORMS,
  type Norm,
  type SchemaDomainOptions,
  type TabularDomainOptions,
  tabularDomain,
} from './domain.js';
export {
  cholesky,
  inverseSpd,
  ledoitWolf,
  normalCdf,
  normalQuantile,
  shapiroWilk,
  shapiroWilkSorted,
} from './linalg.js';
export { attackLoss, attackSucceeded, LOSS_NAMES, type LossName, type LossValue } from './losses.js';
export {
  argmaxRows,
  type GradientModel,
  type GradientResult,
  hasGradients,
  networkModel,
  onnxRuntimeModel,
  type ProbabilityModel,
  recordingModel,
  requireGradients,
  softmax,
} from './model.js';
export {
  type CurvePoint,
  type DetectorAttackResult,
  type DetectorEvaluation,
  type ModelEvaluation,
  REDTEAM_ATTACKS,
  type RedTeamAttack,
  type RedTeamData,
  type RedTeamModel,
  type RedTeamOptions,
  type RedTeamResult,
  redTeam,
  type StreamEvaluation,
} from './redteam.js';
export { redTeamSections, tprAtLowFpr } from './redteam-report.js';
export { networkTrainer } from './trainers.js';
