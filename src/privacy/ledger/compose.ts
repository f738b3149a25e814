/**
 * How a budget composes its spends: `basic` (ε and δ add up) or `pld` (the privacy loss distributions of
 * every spend's recorded accounting events composed with {@link PldAccountant}, ε read at the budget's
 * δ). Used by both ledger stores inside the spend transaction, on the rows read under its lock.
 *
 * Soundness rules of the `pld` figure (docs/privacy.md, "Composition across spends"):
 * - a spend's events are used only when it recorded some and the PLD accountant supports every one of
 *   them; otherwise the spend counts as its own (ε, δ)-DP black box (the worst-case two-point PLD of
 *   Kairouz, Oh & Viswanath 2015), never as nothing;
 * - the figure is min(basic sum, PLD ε at the budget's δ): both are valid bounds of the same
 *   composition, so the smaller one is too (and the PLD grid's pessimistic rounding can make the PLD
 *   figure the larger one for a few pure-ε spends);
 * - any failure of the PLD computation leaves the basic sum, which is always sound.
 * Composition is commutative, so identical events of all spends are merged into one event with the
 * summed count and composed once (k DP-SGD runs of T steps are one subsampled Gaussian of kT steps).
 */
import { BulwarkError, invalidArgument } from '../../core/index.js';
import { PldAccountant } from '../accountants/accountants.js';
import { type ComposedEvent, checkEvent, type PrivacyEvent } from '../accountants/events.js';
import { requireCount } from '../params.js';

/** How a budget composes the spends against it (see the module documentation). */
export type Composition = 'basic' | 'pld';

/** The compositions a budget may use. */
export const COMPOSITIONS: readonly Composition[] = ['basic', 'pld'];

/** At most this many events per spend (one operation's analysis; bounds what a row stores). */
export const MAX_SPEND_EVENTS = 256;

/** Checks a budget's composition option (ERR_INVALID_ARGUMENT naming `composition`). */
export function requireComposition(v: unknown): Composition {
  if (!(COMPOSITIONS as readonly unknown[]).includes(v))
    throw invalidArgument('composition', COMPOSITIONS.map((c) => `'${c}'`).join(' or '), v);
  return v as Composition;
}

/**
 * Validates the accounting events of a spend request, each `{ event, count }`, naming the field
 * (`events[2].event.kind: expected gaussian, pure, approx or zcdp, got "foo"`). Returns frozen copies
 * holding only the fields of each kind, so what is stored is exactly what was checked.
 */
export function checkSpendEvents(v: unknown, name = 'events'): ComposedEvent[] {
  if (!Array.isArray(v) || v.length > MAX_SPEND_EVENTS)
    throw invalidArgument(name, `an array of at most ${MAX_SPEND_EVENTS} { event, count } entries`, v);
  return v.map((entry: unknown, i) => {
    const at = `${name}[${i}]`;
    if (typeof entry !== 'object' || entry === null)
      throw invalidArgument(at, 'an { event, count } object', entry);
    const { event, count } = entry as { event?: unknown; count?: unknown };
    requireCount(`${at}.count`, count);
    let e: PrivacyEvent;
    try {
      e = checkEvent(event as PrivacyEvent);
    } catch (err) {
      // checkEvent names `event.…`; say which entry.
      if (err instanceof BulwarkError && err.code === 'ERR_INVALID_ARGUMENT')
        throw new BulwarkError('ERR_INVALID_ARGUMENT', `${at}.${err.message}`, {
          details: { parameter: `${at}.${String(err.details['parameter'] ?? 'event')}` },
        });
      throw err;
    }
    return Object.freeze({ event: Object.freeze(canonicalEvent(e)), count: count as number });
  });
}

/** Only the fields of the event's kind (an extra field would otherwise split identical events). */
function canonicalEvent(e: PrivacyEvent): PrivacyEvent {
  switch (e.kind) {
    case 'gaussian':
      return e.samplingRate === undefined
        ? { kind: 'gaussian', noiseMultiplier: e.noiseMultiplier }
        : { kind: 'gaussian', noiseMultiplier: e.noiseMultiplier, samplingRate: e.samplingRate };
    case 'pure':
      return { kind: 'pure', epsilon: e.epsilon };
    case 'approx':
      return { kind: 'approx', epsilon: e.epsilon, delta: e.delta };
    case 'zcdp':
      return { kind: 'zcdp', rho: e.rho };
  }
}

/**
 * The stored events of a spend (the `events` column: NULL or a JSON array), or ERR_LEDGER_INVALID when
 * they do not parse or validate: a ledger whose accounting record is damaged refuses, it never guesses.
 */
export function parseStoredEvents(
  text: string | null,
  spendId: string,
  ledger: string,
): ComposedEvent[] | null {
  if (text === null) return null;
  try {
    return checkSpendEvents(JSON.parse(text) as unknown, `spend ${spendId} events`);
  } catch (e) {
    throw new BulwarkError(
      'ERR_LEDGER_INVALID',
      `budget ledger ${ledger}: the accounting events stored with spend ${spendId} are damaged (${e instanceof Error ? e.message : String(e)}): refusing to compose them`,
      { cause: e, details: { ledger, spendId } },
    );
  }
}

/** What the composition of a budget reads of one spend. */
export interface SpendForComposition {
  readonly epsilon: number;
  readonly delta: number;
  /** The spend's accounting events, or null when it recorded none. */
  readonly events: readonly ComposedEvent[] | null;
}

/** The composed total of a set of spends. */
export interface ComposedTotal {
  readonly composition: Composition;
  /** The basic sums (Σε, Σδ) — the stored totals. */
  readonly basic: { readonly epsilon: number; readonly delta: number };
  /**
   * `pld` budgets: the PLD ε of all spends at the budget's δ (Infinity when that δ cannot be met;
   * null when the budget's δ is 0, there is nothing to compose, or the PLD computation failed).
   */
  readonly pldEpsilon: number | null;
  /** The ε the budget is charged: the basic sum, or for `pld` min(basic sum, PLD ε). */
  readonly epsilon: number;
  /** Which figure {@link epsilon} is. */
  readonly figure: Composition;
}

function eventKey(e: PrivacyEvent): string {
  switch (e.kind) {
    case 'gaussian':
      return `g:${e.noiseMultiplier}:${e.samplingRate ?? 1}`;
    case 'pure':
      return `p:${e.epsilon}`;
    case 'approx':
      return `a:${e.epsilon}:${e.delta}`;
    case 'zcdp':
      return `z:${e.rho}`;
  }
}

/**
 * The (ε, δ)-DP black box a spend without usable events counts as. An ε of 0 with δ > 0 is stated at
 * the smallest positive ε (a (0, δ)-DP mechanism is (ε′, δ)-DP for every ε′ >= 0, and the PLD grid
 * rounds it up to one grid step); (0, 0) is no privacy loss at all.
 */
function blackBox(s: SpendForComposition): PrivacyEvent | null {
  if (s.delta > 0)
    return { kind: 'approx', epsilon: s.epsilon > 0 ? s.epsilon : Number.MIN_VALUE, delta: s.delta };
  if (s.epsilon > 0) return { kind: 'pure', epsilon: s.epsilon };
  return null;
}

/**
 * Composes spends as a budget of `composition` with total δ `budgetDelta` would (see the module
 * documentation). `discretization` is the PLD grid (default the accountant's 1e-4); `basic`, when
 * given, is the basic sum to use (the stored one: an analyst's budget counts only the spends made
 * since it was set, while its list of spends may hold earlier ones, which only raise the PLD figure).
 */
export function composeSpends(
  spends: readonly SpendForComposition[],
  composition: Composition,
  budgetDelta: number,
  options: { discretization?: number; basic?: { epsilon: number; delta: number } } = {},
): ComposedTotal {
  let basic = options.basic;
  if (basic === undefined) {
    let e = 0;
    let d = 0;
    for (const s of spends) {
      e += s.epsilon;
      d += s.delta;
    }
    basic = { epsilon: e, delta: d };
  }
  const epsilon = basic.epsilon;
  if (composition === 'basic') return { composition, basic, pldEpsilon: null, epsilon, figure: 'basic' };
  const pldEpsilon = budgetDelta > 0 ? pldOf(spends, budgetDelta, options.discretization) : null;
  const usePld = pldEpsilon !== null && pldEpsilon < epsilon;
  return {
    composition,
    basic,
    pldEpsilon,
    epsilon: usePld ? pldEpsilon : epsilon,
    figure: usePld ? 'pld' : 'basic',
  };
}

/** The PLD ε at δ of the spends, or null when there is nothing to compose or the computation fails. */
function pldOf(
  spends: readonly SpendForComposition[],
  delta: number,
  discretization?: number,
): number | null {
  const acc = new PldAccountant(discretization === undefined ? {} : { discretization });
  const merged = new Map<string, { event: PrivacyEvent; count: number }>();
  const add = (event: PrivacyEvent, count: number) => {
    const k = eventKey(event);
    const m = merged.get(k);
    if (m === undefined) merged.set(k, { event, count });
    else m.count += count;
  };
  for (const s of spends) {
    const events = s.events ?? [];
    if (events.length > 0 && events.every((h) => acc.supports(h.event))) {
      for (const h of events) add(h.event, h.count);
    } else {
      const b = blackBox(s);
      if (b !== null) add(b, 1);
    }
  }
  if (merged.size === 0) return null;
  try {
    // Sorted, so the same set of spends composes in the same order whatever order they were read in.
    for (const [, m] of [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!Number.isSafeInteger(m.count)) return null;
      acc.compose(m.event, m.count);
    }
    const e = acc.getEpsilon(delta);
    return Number.isNaN(e) ? null : e;
  } catch {
    // Fail closed: without a PLD figure the basic sum, always sound, is what the budget is charged.
    return null;
  }
}
