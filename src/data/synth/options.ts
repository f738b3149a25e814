import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireNumberIn,
  type Seed,
  SeededRng,
} from '../../core/index.js';
import { parseTimestamp } from '../dataset.js';

/** The fraud patterns the generator plants (see docs/synth.md). */
export const FRAUD_PATTERNS = [
  'card_testing',
  'account_takeover',
  'night_high_amount',
  'geo_impossible',
  'friendly_fraud',
] as const;
export type FraudPattern = (typeof FRAUD_PATTERNS)[number];

/** Legitimate behaviour, including the look-alikes that resemble fraud. */
export const LEGIT_SCENARIOS = [
  'normal',
  'legit_travel',
  'legit_large_purchase',
  'legit_new_device',
  'legit_micro_burst',
] as const;
export type LegitScenario = (typeof LEGIT_SCENARIOS)[number];

/** What produced a row: a fraud pattern (labelled 1, or 0 when unreported) or legitimate behaviour. */
export type Scenario = FraudPattern | LegitScenario;

/** Default share of fraud rows per pattern. */
export const DEFAULT_FRAUD_MIX: Readonly<Record<FraudPattern, number>> = {
  card_testing: 0.35,
  account_takeover: 0.25,
  night_high_amount: 0.15,
  geo_impossible: 0.15,
  friendly_fraud: 0.1,
};

/** Options of {@link generateTransactions} and {@link writeTransactionsCsv}. */
export interface SynthOptions {
  /** Number of transactions (rows), 1 to 1e9. */
  rows: number;
  /** Target fraction of rows labelled `is_fraud = 1`, in [0, 0.5]. */
  fraudRate: number;
  /** PRNG seed: a non-negative safe integer or a bigint below 2^64. Same seed and options, same rows. */
  seed: Seed;
  /** Start of the simulated period (default 2024-01-01T00:00:00Z): a Date, ISO 8601 text or epoch ms. */
  start?: Date | string | number;
  /** Number of cardholders (default rows / 100, clamped to [20, 20000]). */
  cardholders?: number;
  /** Mean transactions per cardholder per day (default 1.2), in (0, 50]. */
  txPerDay?: number;
  /** Fraction of fraud episodes that are never reported and so labelled 0 (default 0.03), in [0, 0.5]. */
  labelNoise?: number;
  /** Share of fraud rows per pattern (non-negative weights, normalised; default {@link DEFAULT_FRAUD_MIX}). */
  fraudMix?: Partial<Record<FraudPattern, number>>;
}

/** {@link SynthOptions} after validation, with defaults filled in. */
export interface ResolvedSynthOptions {
  rows: number;
  fraudRate: number;
  seed: Seed;
  start: number;
  cardholders: number;
  txPerDay: number;
  labelNoise: number;
  fraudMix: Record<FraudPattern, number>;
}

export const MAX_ROWS = 1_000_000_000;
/** Per-card state is kept in flat arrays (a merchant bit set of ~350 bytes each): 200k is ~70 MB. */
export const MAX_CARDHOLDERS = 200_000;
const MIN_START = Date.UTC(2000, 0, 1);
const MAX_START = Date.UTC(2100, 0, 1);
/**
 * The simulated clock stays before the year 10000: ISO 8601 text has four year digits (past them
 * `Date#toISOString` writes `+010000-01-01`, which the writer cut to `+010000-01`).
 */
export const MAX_INSTANT = Date.UTC(10000, 0, 1);
const DAY_MS = 86_400_000;

/**
 * ISO 8601 text: a date (`2024-03-01`, UTC midnight) or a date-time with `Z` or an offset. A date-time
 * without one is local time in ECMAScript (ECMA-262 §21.4.3.2), so the same seed gave other bytes on a
 * machine in another time zone; and `Date.parse` rolls an impossible day over (`2024-02-30` was March 1).
 */
const START_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2}))?$/;

function parseStartText(v: string): number {
  const m = START_TEXT.exec(v);
  if (!m)
    throw invalidArgument(
      'start',
      'an ISO 8601 date (2024-01-01) or a date-time with Z or an offset (2024-01-01T08:00:00Z)',
      v,
    );
  // The dataset reader's parser (src/data/dataset.ts): for this shape the instant Date.parse gives, and
  // NaN for a day or time that does not exist. It admits a leap second (:60), which is refused here.
  const ms = parseTimestamp(v);
  if (Number.isNaN(ms) || m[6] === '60')
    throw invalidArgument('start', 'a date that exists (month 1-12, a day of that month, hh:mm:ss)', v);
  return ms;
}

function parseStart(v: unknown): number {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'number') ms = v;
  else if (typeof v === 'string') ms = parseStartText(v);
  else throw invalidArgument('start', 'a Date, an ISO 8601 date-time or epoch milliseconds', v);
  if (!Number.isFinite(ms) || ms < MIN_START || ms >= MAX_START) {
    throw invalidArgument('start', 'a valid instant in the years 2000-2099', v);
  }
  return ms;
}

/** Validates every option up front (throws `ERR_INVALID_ARGUMENT` / `ERR_RNG_SEED` naming it). */
export function resolveSynthOptions(o: SynthOptions): ResolvedSynthOptions {
  if (typeof o !== 'object' || o === null) throw invalidArgument('options', 'an object', o);
  const rows = requireInteger('rows', o.rows, 1, MAX_ROWS);
  const fraudRate = requireNumberIn('fraudRate', o.fraudRate, 0, 0.5);
  if (typeof o.seed !== 'number' && typeof o.seed !== 'bigint') {
    throw new BulwarkError('ERR_RNG_SEED', `seed: expected a non-negative integer, got ${typeof o.seed}`);
  }
  new SeededRng(o.seed); // throws ERR_RNG_SEED naming the seed when out of range
  const start = o.start === undefined ? Date.UTC(2024, 0, 1) : parseStart(o.start);
  const cardholders =
    o.cardholders === undefined
      ? Math.min(20_000, Math.max(20, Math.round(rows / 100)))
      : requireInteger('cardholders', o.cardholders, 1, MAX_CARDHOLDERS);
  const txPerDay =
    o.txPerDay === undefined ? 1.2 : requireNumberIn('txPerDay', o.txPerDay, 0, 50, { minExclusive: true });
  const labelNoise = o.labelNoise === undefined ? 0.03 : requireNumberIn('labelNoise', o.labelNoise, 0, 0.5);
  const fraudMix = { ...DEFAULT_FRAUD_MIX };
  if (o.fraudMix !== undefined) {
    if (typeof o.fraudMix !== 'object' || o.fraudMix === null) {
      throw invalidArgument('fraudMix', 'an object of pattern weights', o.fraudMix);
    }
    for (const [k, v] of Object.entries(o.fraudMix)) {
      if (!(FRAUD_PATTERNS as readonly string[]).includes(k)) {
        throw invalidArgument('fraudMix', `keys among ${FRAUD_PATTERNS.join(', ')}`, k);
      }
      fraudMix[k as FraudPattern] = requireNumberIn(`fraudMix.${k}`, v, 0, Number.MAX_VALUE);
    }
    // Scale by the largest weight first: two weights near Number.MAX_VALUE summed to Infinity, every
    // share became 0 and the run planted no fraud at all whatever fraudRate asked for.
    const top = Math.max(...FRAUD_PATTERNS.map((p) => fraudMix[p]));
    if (!(top > 0)) throw invalidArgument('fraudMix', 'at least one positive weight', 0);
    for (const p of FRAUD_PATTERNS) fraudMix[p] /= top;
    const total = FRAUD_PATTERNS.reduce((s, p) => s + fraudMix[p], 0);
    for (const p of FRAUD_PATTERNS) fraudMix[p] /= total;
  }
  // The period lasts about rows / (cardholders × txPerDay) days. Unchecked, a small population ran the
  // clock past the year 9999 (timestamps written as "+010000-01T..."), and far enough on the run failed
  // with a bare RangeError ("Invalid time value") after writing rows.
  const days = rows / (cardholders * txPerDay);
  if (!(start + days * DAY_MS < MAX_INSTANT)) {
    throw invalidArgument(
      'rows',
      `a simulated period ending before the year 10000: ${rows} rows for ${cardholders} cardholders at ${txPerDay} a day last about ${Math.round(days)} days from start; raise cardholders (or txPerDay) or lower rows`,
      rows,
    );
  }
  return { rows, fraudRate, seed: o.seed, start, cardholders, txPerDay, labelNoise, fraudMix };
}
