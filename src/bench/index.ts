/**
 * The measured cost table behind `bulwark bench costs`: the source article's performance and
 * effectiveness claims beside figures from the committed benchmark results and from measurements run by
 * the command itself. See docs/performance.md.
 */
export { CLAIMS, type Claim, SECTIONS, type Section } from './claims.js';
export {
  assemble,
  COSTS_DESCRIPTION,
  type CostsJson,
  type CostsResult,
  fmt,
  performanceDoc,
  type RunCostsOptions,
  readCommitted,
  reassemble,
  runCosts,
  summarise,
} from './costs.js';
export { collect, type Figure, type Measured, type MeasureOptions, measureCosts } from './measure.js';
export {
  COSTS_BENCH,
  type CostRow,
  costRows,
  type RowSource,
  uncoveredClaims,
  VERDICTS,
  type Verdict,
} from './table.js';
