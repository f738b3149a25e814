/**
 * The privacy budget ledger: a total (ε, δ) per dataset, optionally split per analyst, and every spend
 * against it. Every DP operation spends through {@link BudgetLedger.spend} BEFORE it releases anything:
 * the spend is one transaction that locks the dataset's budget row, checks that the new totals stay
 * within the budget (and within the analyst's, when the dataset has per-analyst budgets), records the
 * spend and commits — or refuses with ERR_PRIVACY_BUDGET_EXCEEDED, spending nothing. A ledger that
 * cannot be reached refuses too (ERR_LEDGER_UNAVAILABLE): Bulwark fails closed.
 *
 * Across ledger entries, spends compose by basic composition (ε and δ add up), which is always sound,
 * unless the budget was set with `composition: 'pld'`: then ε is min(basic sum, the PLD ε at the
 * budget's δ of the accounting events of every spend) (compose.ts), while δ still adds up. Each entry's
 * own (ε, δ) comes from the operation's accountant (RDP or PLD for DP-SGD), and its events are what
 * that accountant composed.
 *
 * Totals are doubles; a spend is allowed when the new total is within 1e-9 (relative) of the budget, so
 * that ten spends of 0.1 fit a budget of 1 despite binary rounding. The overshoot this permits is at
 * most 1e-9 of the budget.
 */
import { BulwarkError, invalidArgument } from '../../core/index.js';
import type { ComposedEvent } from '../accountants/events.js';
import { requireDelta } from '../params.js';
import {
  type ComposedTotal,
  type Composition,
  checkSpendEvents,
  composeSpends,
  type SpendForComposition,
} from './compose.js';

/** An (ε, δ) pair. */
export interface Budget {
  readonly epsilon: number;
  readonly delta: number;
}

/** What a DP operation asks to spend. */
export interface SpendRequest {
  /** The dataset the operation reads. */
  dataset: string;
  /** Who runs it (checked against the analyst's budget when the dataset has per-analyst budgets). */
  analyst?: string;
  epsilon: number;
  /** Default 0 (pure ε-DP). */
  delta?: number;
  /** What is being released, e.g. `query.count`, `train.dp-sgd`. */
  operation: string;
  /** Non-secret facts about the operation (accountant, noise multiplier, column...). */
  details?: Readonly<Record<string, string | number | boolean | null>>;
  /**
   * The accounting events of the operation: what its accountant composed to get `epsilon` at `delta`
   * (DP-SGD: `[{ event: { kind: 'gaussian', noiseMultiplier, samplingRate }, count: steps }]`; a
   * Laplace query: `[{ event: { kind: 'pure', epsilon }, count: 1 }]`). Recorded with the spend; a
   * budget with `composition: 'pld'` composes them. Without them (or with events the PLD accountant
   * cannot analyse) the spend counts as an (epsilon, delta)-DP black box.
   */
  events?: readonly ComposedEvent[];
}

/** A committed spend. */
export interface SpendRecord {
  readonly id: string;
  readonly dataset: string;
  /** The analyst, or null for a dataset-level spend. */
  readonly analyst: string | null;
  readonly epsilon: number;
  readonly delta: number;
  readonly operation: string;
  readonly details: Readonly<Record<string, string | number | boolean | null>>;
  /** The accounting events recorded with the spend, or null (none given, or an older ledger entry). */
  readonly events: readonly ComposedEvent[] | null;
  /** ISO-8601 time of the commit. */
  readonly at: string;
}

/**
 * What {@link BudgetLedger.spend} returns: the record and the dataset's budget after it — what is
 * spent (the composed total for a `pld` budget) and what is left, and the composition used.
 */
export interface SpendReceipt extends SpendRecord {
  readonly remaining: Budget;
  readonly spent: Budget;
  readonly composition: Composition;
}

/** The state of one budget. */
export interface BudgetStatus {
  readonly dataset: string;
  readonly analyst: string | null;
  /** How its spends compose (`basic` unless set with `composition: 'pld'`). */
  readonly composition: Composition;
  readonly total: Budget;
  /**
   * What is spent: ε is the composed total (for `pld`, min(basic sum, PLD ε at `total.delta`)), δ the
   * sum of the spends' δ (it adds up under both compositions).
   */
  readonly spent: Budget;
  readonly remaining: Budget;
  /** Number of spends recorded against it. */
  readonly spends: number;
  /** How `spent.epsilon` was reached: the basic sums, the PLD ε (null for basic) and which one it is. */
  readonly accounting: {
    readonly basic: Budget;
    readonly pldEpsilon: number | null;
    readonly figure: Composition;
  };
}

/** Called after each committed spend, e.g. to append an audit event. If it throws, the caller must not release. */
export type SpendSink = (record: SpendRecord) => Promise<void> | void;

/** A budget ledger (SQLite or PostgreSQL). */
export interface BudgetLedger {
  readonly kind: 'sqlite' | 'postgres';
  /** A description of where it lives, without credentials. */
  readonly location: string;
  /**
   * A random identifier made when the ledger was created (kept in its `ledger_meta` table), so that a
   * model can name the ledger it spent from without naming a path or a server, and a later fine-tune
   * can check it spends from the same one (`bulwark train --from`).
   */
  readonly id: string;
  /**
   * Sets (or changes) the total budget of a dataset, or of one analyst on it. Spends so far still count:
   * lowering a total below what was spent leaves nothing to spend. `composition` (`basic`, the default
   * for a new budget, or `pld`) says how spends compose; left out, an existing budget keeps its own.
   */
  setBudget(dataset: string, total: Budget, options?: SetBudgetOptions): Promise<BudgetStatus>;
  /** Spends atomically, or throws ERR_PRIVACY_BUDGET_EXCEEDED / ERR_PRIVACY_BUDGET_UNSET / ERR_LEDGER_UNAVAILABLE. */
  spend(request: SpendRequest): Promise<SpendReceipt>;
  /**
   * The checks of {@link spend} on the committed totals, recording nothing: throws what `spend` would
   * throw now, else returns what would be left of the dataset's budget. For refusing early, before any
   * work that precedes the spend; it is NOT a reservation (a concurrent spend may still take the budget
   * first, and then `spend` refuses).
   */
  preview(request: SpendRequest): Promise<Budget>;
  /** The budget of a dataset (or of an analyst on it); ERR_PRIVACY_BUDGET_UNSET when there is none. */
  status(dataset: string, options?: { analyst?: string }): Promise<BudgetStatus>;
  /** The spends on a dataset, oldest first. */
  history(dataset: string, options?: { analyst?: string; limit?: number }): Promise<SpendRecord[]>;
  close(): Promise<void>;
}

/** Options of {@link BudgetLedger.setBudget}. */
export interface SetBudgetOptions {
  analyst?: string;
  /** How spends compose: `basic` (default for a new budget) or `pld`; omitted, an existing budget keeps its own. */
  composition?: Composition;
}

/** The stored format of a ledger, checked on open (ERR_LEDGER_INVALID on mismatch). */
export const LEDGER_FORMAT = 'bulwark.privacy-ledger';
export const LEDGER_VERSION = 1;

/** Relative slack for floating-point sums (see the module documentation). */
export const BUDGET_TOLERANCE = 1e-9;

/** Checks a dataset or analyst name: 1-256 characters, no control characters, not starting with a space. */
export function requireName(name: string, v: unknown): string {
  const ok =
    typeof v === 'string' &&
    v.length >= 1 &&
    v.length <= 256 &&
    !/^\s/.test(v) &&
    [...v].every((ch) => (ch.codePointAt(0) as number) >= 0x20 && ch !== '\u007f');
  if (!ok) throw invalidArgument(name, 'a name of 1-256 characters without control characters', v);
  return v;
}

/** Validates a budget's (ε, δ). */
export function checkBudget(b: Budget): Budget {
  if (typeof b !== 'object' || b === null) throw invalidArgument('budget', 'an { epsilon, delta } object', b);
  if (typeof b.epsilon !== 'number' || !Number.isFinite(b.epsilon) || b.epsilon < 0)
    throw invalidArgument('budget.epsilon', 'a finite epsilon >= 0', b.epsilon);
  requireDelta('budget.delta', b.delta, { allowZero: true });
  return { epsilon: b.epsilon, delta: b.delta };
}

/** A spend request as validated: delta defaulted to 0, no events as null. */
export type CheckedSpendRequest = Required<Omit<SpendRequest, 'analyst' | 'events'>> & {
  analyst: string | null;
  events: readonly ComposedEvent[] | null;
};

/**
 * The values of a `ledger_spends` row in column order (id, dataset, analyst, epsilon, delta, operation,
 * details, events, at), as both stores insert it: no analyst as '', details and events as JSON.
 */
export function spendRow(id: string, r: CheckedSpendRequest, at: string): unknown[] {
  return [
    id,
    r.dataset,
    r.analyst ?? '',
    r.epsilon,
    r.delta,
    r.operation,
    JSON.stringify(r.details),
    r.events === null ? null : JSON.stringify(r.events),
    at,
  ];
}

/** Validates a spend request up front; returns it normalised (delta defaulted to 0, no events as null). */
export function checkSpendRequest(r: SpendRequest): CheckedSpendRequest {
  if (typeof r !== 'object' || r === null) throw invalidArgument('spend', 'a spend request object', r);
  const dataset = requireName('dataset', r.dataset);
  const analyst = r.analyst === undefined ? null : requireName('analyst', r.analyst);
  if (typeof r.epsilon !== 'number' || !Number.isFinite(r.epsilon) || r.epsilon < 0)
    throw invalidArgument('epsilon', 'a finite epsilon >= 0', r.epsilon);
  const delta = r.delta ?? 0;
  requireDelta('delta', delta, { allowZero: true });
  const operation = requireName('operation', r.operation);
  const details = r.details ?? {};
  for (const [k, v] of Object.entries(details)) {
    const ok =
      v === null ||
      typeof v === 'boolean' ||
      typeof v === 'string' ||
      (typeof v === 'number' && Number.isFinite(v));
    if (!ok) throw invalidArgument(`details.${k}`, 'a string, finite number, boolean or null', v);
  }
  const events = r.events === undefined ? null : checkSpendEvents(r.events);
  return {
    dataset,
    analyst,
    epsilon: r.epsilon,
    delta,
    operation,
    details,
    events: events === null || events.length === 0 ? null : events,
  };
}

/** One stored budget row (the spent columns are the basic sums). */
export interface BudgetRow {
  epsilonTotal: number;
  deltaTotal: number;
  epsilonSpent: number;
  deltaSpent: number;
  composition: Composition;
}

/** A stored composition value, or ERR_LEDGER_INVALID: an unknown one must not be read as `basic`. */
export function storedComposition(v: unknown, ledger: string, dataset: string): Composition {
  if (v === 'basic' || v === 'pld') return v;
  throw new BulwarkError(
    'ERR_LEDGER_INVALID',
    `budget ledger ${ledger}: the budget of "${dataset}" has an unknown composition ${JSON.stringify(v)}`,
    { details: { ledger, dataset } },
  );
}

/** The composed total of a budget row with its spends (read only for a `pld` row). */
export function composedOf(row: BudgetRow, spends: readonly SpendForComposition[]): ComposedTotal {
  return composeSpends(spends, row.composition, row.deltaTotal, {
    basic: { epsilon: row.epsilonSpent, delta: row.deltaSpent },
  });
}

/** What a decided spend leaves: the new stored sums and the composed totals after it. */
export interface SpendDecision {
  /** The new stored (basic) sums of the dataset's row and of the analyst's row (null: none). */
  dataset: Budget;
  analyst: Budget | null;
  /** The dataset's budget after the spend: composed spent and what is left. */
  after: { composition: Composition; spent: Budget; remaining: Budget };
}

function fits(spent: number, add: number, total: number): boolean {
  return spent + add <= total * (1 + BUDGET_TOLERANCE) + Number.MIN_VALUE;
}

function fmt(x: number): string {
  return Number.parseFloat(x.toPrecision(6)).toString();
}

/**
 * The decision at the heart of a spend, on rows read under the lock: throws ERR_PRIVACY_BUDGET_UNSET or
 * ERR_PRIVACY_BUDGET_EXCEEDED, else returns the new spent totals. `spendsOf` reads the committed spends
 * a `pld` row composes (all of the dataset's, or the analyst's); it is called only for such rows.
 */
export function decideSpend(
  req: {
    dataset: string;
    analyst: string | null;
    epsilon: number;
    delta: number;
    events: readonly ComposedEvent[] | null;
  },
  datasetRow: BudgetRow | undefined,
  analystRow: BudgetRow | undefined,
  datasetHasAnalystBudgets: boolean,
  spendsOf: (analyst: string | null) => readonly SpendForComposition[],
): SpendDecision {
  if (datasetRow === undefined) {
    throw new BulwarkError(
      'ERR_PRIVACY_BUDGET_UNSET',
      `no privacy budget is set for dataset "${req.dataset}"`,
      {
        details: { dataset: req.dataset },
      },
    );
  }
  if (req.analyst !== null && analystRow === undefined && datasetHasAnalystBudgets) {
    throw new BulwarkError(
      'ERR_PRIVACY_BUDGET_UNSET',
      `dataset "${req.dataset}" has per-analyst budgets and none is set for analyst "${req.analyst}"`,
      { details: { dataset: req.dataset, analyst: req.analyst } },
    );
  }
  if (req.analyst === null && datasetHasAnalystBudgets) {
    throw new BulwarkError(
      'ERR_PRIVACY_BUDGET_UNSET',
      `dataset "${req.dataset}" has per-analyst budgets: the spend must name an analyst`,
      { details: { dataset: req.dataset } },
    );
  }
  const mine: SpendForComposition = { epsilon: req.epsilon, delta: req.delta, events: req.events };
  /** Checks one row; returns its composed spent total after the spend. */
  const check = (row: BudgetRow, who: string, analyst: string | null): Budget => {
    const spends = row.composition === 'pld' ? spendsOf(analyst) : [];
    const basicAfter = { epsilon: row.epsilonSpent + req.epsilon, delta: row.deltaSpent + req.delta };
    // δ adds up under both compositions (the conservative choice: docs/privacy.md).
    const deltaOk = fits(row.deltaSpent, req.delta, row.deltaTotal);
    let epsAfter = basicAfter.epsilon;
    if (row.composition === 'pld' && deltaOk) {
      epsAfter = composeSpends([...spends, mine], 'pld', row.deltaTotal, { basic: basicAfter }).epsilon;
    }
    if (deltaOk && fits(0, epsAfter, row.epsilonTotal)) return { epsilon: epsAfter, delta: basicAfter.delta };
    const before = row.composition === 'pld' ? composedOf(row, spends).epsilon : row.epsilonSpent;
    const leftE = Math.max(0, row.epsilonTotal - before);
    const leftD = Math.max(0, row.deltaTotal - row.deltaSpent);
    const how =
      row.composition === 'pld' && deltaOk
        ? ` (pld composition: the composed epsilon would be ${fmt(epsAfter)})`
        : '';
    throw new BulwarkError(
      'ERR_PRIVACY_BUDGET_EXCEEDED',
      `${who}: spending epsilon ${fmt(req.epsilon)}, delta ${fmt(req.delta)} would exceed the budget${how} (left: epsilon ${fmt(leftE)}, delta ${fmt(leftD)} of ${fmt(row.epsilonTotal)}, ${fmt(row.deltaTotal)})`,
      {
        details: {
          dataset: req.dataset,
          analyst: req.analyst,
          epsilon: req.epsilon,
          delta: req.delta,
          epsilonLeft: leftE,
          deltaLeft: leftD,
          composition: row.composition,
        },
      },
    );
  };
  const spent = check(datasetRow, `dataset "${req.dataset}"`, null);
  if (analystRow !== undefined)
    check(analystRow, `analyst "${req.analyst}" on dataset "${req.dataset}"`, req.analyst);
  return {
    dataset: { epsilon: datasetRow.epsilonSpent + req.epsilon, delta: datasetRow.deltaSpent + req.delta },
    analyst:
      analystRow === undefined
        ? null
        : { epsilon: analystRow.epsilonSpent + req.epsilon, delta: analystRow.deltaSpent + req.delta },
    after: {
      composition: datasetRow.composition,
      spent,
      remaining: {
        epsilon: Math.max(0, datasetRow.epsilonTotal - spent.epsilon),
        delta: Math.max(0, datasetRow.deltaTotal - spent.delta),
      },
    },
  };
}

/**
 * A status from a stored row and the count of its spends; `composed` is the row's composed total
 * (read from its spends for a `pld` row; the stored sums for a `basic` one when left out).
 */
export function statusOf(
  dataset: string,
  analyst: string | null,
  row: BudgetRow,
  spends: number,
  composed: ComposedTotal = composedOf(row, []),
): BudgetStatus {
  const spent = { epsilon: composed.epsilon, delta: row.deltaSpent };
  return {
    dataset,
    analyst,
    composition: row.composition,
    total: { epsilon: row.epsilonTotal, delta: row.deltaTotal },
    spent,
    remaining: {
      epsilon: Math.max(0, row.epsilonTotal - spent.epsilon),
      delta: Math.max(0, row.deltaTotal - spent.delta),
    },
    spends,
    accounting: {
      basic: { epsilon: row.epsilonSpent, delta: row.deltaSpent },
      pldEpsilon: composed.pldEpsilon,
      figure: composed.figure,
    },
  };
}

/** ERR_PRIVACY_BUDGET_UNSET for a status query. */
export function unsetError(dataset: string, analyst: string | null): BulwarkError {
  return new BulwarkError(
    'ERR_PRIVACY_BUDGET_UNSET',
    analyst === null
      ? `no privacy budget is set for dataset "${dataset}"`
      : `no privacy budget is set for analyst "${analyst}" on dataset "${dataset}"`,
    { details: { dataset, analyst } },
  );
}

/** Where a ledger lives. */
export type LedgerSpec =
  | { kind: 'sqlite'; path: string; busyTimeoutMs?: number }
  | { kind: 'postgres'; url: string; schema?: string; connectTimeoutMs?: number; poolSize?: number };

/**
 * A ledger location from text: `postgres://…` / `postgresql://…` (an optional `?schema=NAME` picks the
 * schema), `sqlite:PATH`, or a plain file path (SQLite).
 */
export function parseLedgerLocation(text: string): LedgerSpec {
  if (typeof text !== 'string' || text.length === 0)
    throw invalidArgument('ledger', 'a file path or postgres:// URL', text);
  if (/^postgres(ql)?:\/\//.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw invalidArgument('ledger', 'a valid postgres:// URL', 'an unparseable URL');
    }
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return schema === undefined
      ? { kind: 'postgres', url: url.toString() }
      : { kind: 'postgres', url: url.toString(), schema };
  }
  return { kind: 'sqlite', path: text.startsWith('sqlite:') ? text.slice('sqlite:'.length) : text };
}
