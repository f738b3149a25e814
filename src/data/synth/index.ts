/**
 * Synthetic card transactions with planted, documented fraud patterns (no real fraud data ships with
 * Bulwark). See docs/synth.md.
 */
export {
  type SynthProgressCallback,
  type SynthSummary,
  type WriteTransactionsCsvOptions,
  writeTransactionsCsv,
} from './csv.js';
export {
  type Channel,
  generateTransactions,
  LOOKALIKE_RATES,
  PERSONAL_COLUMNS,
  TRANSACTION_COLUMNS,
  type TransactionRecord,
} from './generator.js';
export { CARD_NETWORKS, isLuhnValid, isPlausibleSsn, luhnCheckDigit } from './identity.js';
export {
  DEFAULT_FRAUD_MIX,
  FRAUD_PATTERNS,
  type FraudPattern,
  LEGIT_SCENARIOS,
  type LegitScenario,
  MAX_CARDHOLDERS,
  MAX_ROWS,
  type ResolvedSynthOptions,
  resolveSynthOptions,
  type Scenario,
  type SynthOptions,
} from './options.js';
export { CATEGORIES, type Category } from './reference.js';
