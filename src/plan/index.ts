export { PROFILE_IDS, PROFILES, type Profile, type Requirement } from './compliance.js';
export {
  type BenchFigure,
  type BenchResult,
  type BenchSet,
  type FigureRef,
  type MeasureCost,
  measuredCosts,
  parseBenchResult,
  provenance,
  readBenchResults,
  type Workload,
} from './costs.js';
export {
  EFFECTS,
  type Effect,
  MEASURE_IDS,
  MEASURES,
  type Measure,
  THREAT_IDS,
  THREATS,
  type Threat,
} from './model.js';
export {
  defaultPlanFile,
  type Explained,
  loadPlanFile,
  MAX_CPU_HOURS,
  MAX_QUANTITY,
  makePlan,
  type PlanFile,
  type PlanOptions,
  type PlanResult,
  planFileSchema,
} from './plan.js';
export { planSections } from './report.js';
export {
  costOf,
  type Instance,
  paretoFrontier,
  requiredClosure,
  riskReductionOf,
  type Solution,
  solveBruteForce,
  solveExact,
  solveGreedy,
} from './solve.js';
