/**
 * Differential privacy: mechanisms (exact discrete Laplace and Gaussian, analytic Gaussian, Laplace,
 * permute-and-flip), accountants behind a registry (basic, advanced, RDP, PLD), noise calibration, the
 * budget ledger, DP logistic regression by objective perturbation, DP-SGD and DP queries.
 * See docs/privacy.md.
 */
export {
  type Accountant,
  type AccountantName,
  type AccountantOptions,
  AdvancedAccountant,
  accountantNames,
  advancedComposition,
  BasicAccountant,
  createAccountant,
  PldAccountant,
  type PldAccountantOptions,
  RdpAccountant,
  type RdpAccountantOptions,
  registerAccountant,
} from './accountants/accountants.js';
export {
  calibrateNoiseMultiplier,
  dpSgdEpsilon,
  type NoiseCalibrationOptions,
} from './accountants/calibrate.js';
export { type ComposedEvent, checkEvent, describeEvent, type PrivacyEvent } from './accountants/events.js';
export {
  DEFAULT_DISCRETIZATION,
  epsilonDeltaPld,
  type GaussianPldOptions,
  gaussianPld,
  PldPmf,
  PrivacyLossDistribution,
} from './accountants/pld.js';
export {
  DP_ACCOUNTING_ORDERS,
  OPACUS_ORDERS,
  type RdpConversion,
  type RdpSeries,
  rdpSubsampledGaussian,
  rdpSubsampledGaussianStep,
  rdpToDelta,
  rdpToEpsilon,
} from './accountants/rdp-analysis.js';
export {
  COMPOSITIONS,
  type ComposedTotal,
  type Composition,
  composeSpends,
  MAX_SPEND_EVENTS,
  type SpendForComposition,
} from './ledger/compose.js';
export {
  BUDGET_TOLERANCE,
  type Budget,
  type BudgetLedger,
  type BudgetStatus,
  LEDGER_FORMAT,
  LEDGER_VERSION,
  type LedgerSpec,
  parseLedgerLocation,
  type SetBudgetOptions,
  type SpendReceipt,
  type SpendRecord,
  type SpendRequest,
  type SpendSink,
} from './ledger/ledger.js';
export { type AuditAppender, auditSpendSink, openLedger } from './ledger/open.js';
export { PgLedger, type PgLedgerOptions } from './ledger/postgres.js';
export { SqliteLedger, type SqliteLedgerOptions } from './ledger/sqlite.js';
export {
  bernoulliExpNeg,
  bernoulliRational,
  discreteGaussianRational,
  discreteLaplaceRational,
  exactRational,
  type Rational,
  uniformBelow,
} from './mechanisms/exact.js';
export {
  analyticGaussianSigma,
  classicGaussianSigma,
  discreteGaussianDelta,
  discreteGaussianMechanism,
  discreteGaussianSigma,
  discreteLaplaceMechanism,
  gaussianDelta,
  gaussianMechanism,
  hardenedNormal,
  laplaceMechanism,
  laplaceScale,
  type MechanismOptions,
  permuteAndFlip,
  sampleDiscreteGaussian,
  sampleDiscreteLaplace,
} from './mechanisms/mechanisms.js';
export { addGaussianNoise, defaultNoise, INSECURE_NOISE_WARNING, NoiseSource } from './mechanisms/noise.js';
export {
  type DpSgdOptions,
  type DpSgdProgress,
  type DpSgdResult,
  dpSgdAccountedEpsilon,
  poissonSample,
  trainDpSgd,
} from './models/dp-sgd.js';
export {
  type DpLogisticRegressionOptions,
  type DpLogisticRegressionResult,
  fitDpLogisticRegression,
  LOGISTIC_CURVATURE,
  type Neighbours,
  type ObjectivePerturbationCalibration,
  objectivePerturbationCalibration,
  sampleObjectiveNoise,
} from './models/logistic.js';
export {
  deltaWarning,
  requireCount,
  requireDelta,
  requireEpsilon,
  requireNoiseMultiplier,
  requireSamplingRate,
  requireSensitivity,
} from './params.js';
export {
  type Bounds,
  type DpRelease,
  dpCount,
  dpHistogram,
  dpMean,
  dpQuantiles,
  dpSum,
  type HistogramBins,
  type QueryOptions,
} from './queries.js';
export { erf, erfc, erfcx, logErfc, logNormCdf, normCdf, normPdf, normPpf, normSf } from './special.js';
export {
  type DpBudgetRef,
  type DpRunPlan,
  type DpTabularOptions,
  type DpTabularResult,
  type DpTrainingGuarantee,
  type DpWarmStart,
  ONNX_META,
  type TrainedPrivacy,
  trainedPrivacy,
  trainTabularDp,
} from './train-tabular.js';
