/**
 * The budget ledger in one SQLite file (better-sqlite3 12.x), the default for a single machine. A spend
 * runs in a `BEGIN IMMEDIATE` transaction, which takes the database's write lock before it reads the
 * budget: spends from several processes on one file are serialised, so the total is never exceeded.
 * WAL journal with `synchronous=FULL`: a committed spend survives a crash. The composition of a `pld`
 * budget (its spends' events, read and composed) happens inside that transaction, under the same lock.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { BulwarkError, requireOutputFolder } from '../../core/index.js';
import { parseStoredEvents, requireComposition, type SpendForComposition } from './compose.js';
import {
  type Budget,
  type BudgetLedger,
  type BudgetRow,
  type BudgetStatus,
  type CheckedSpendRequest,
  checkBudget,
  checkSpendRequest,
  composedOf,
  decideSpend,
  LEDGER_FORMAT,
  LEDGER_VERSION,
  requireName,
  type SetBudgetOptions,
  type SpendDecision,
  type SpendReceipt,
  type SpendRecord,
  type SpendRequest,
  type SpendSink,
  spendRow,
  statusOf,
  storedComposition,
  unsetError,
} from './ledger.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_budgets (dataset TEXT NOT NULL, analyst TEXT NOT NULL,
  epsilon_total REAL NOT NULL, delta_total REAL NOT NULL, epsilon_spent REAL NOT NULL DEFAULT 0,
  delta_spent REAL NOT NULL DEFAULT 0, PRIMARY KEY (dataset, analyst)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_spends (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  dataset TEXT NOT NULL, analyst TEXT NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL,
  operation TEXT NOT NULL, details TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_spends_dataset ON ledger_spends (dataset, analyst, seq);
`;

/**
 * Columns added after the first format (version 1 is kept: the additions are optional to older code,
 * which ignores them and stays sound by basic composition). A ledger that lacks them gets them on open:
 * `composition` of every existing budget is then `basic`, and its spends have no events (NULL).
 */
const ADDED_COLUMNS: ReadonlyArray<{ table: string; column: string; ddl: string }> = [
  { table: 'ledger_budgets', column: 'composition', ddl: "composition TEXT NOT NULL DEFAULT 'basic'" },
  { table: 'ledger_spends', column: 'events', ddl: 'events TEXT' },
];

interface RawBudget {
  epsilon_total: number;
  delta_total: number;
  epsilon_spent: number;
  delta_spent: number;
  composition: string;
}

interface RawSpend {
  id: string;
  dataset: string;
  analyst: string;
  epsilon: number;
  delta: number;
  operation: string;
  details: string;
  events: string | null;
  at: string;
}

const rowOf = (r: RawBudget | undefined, ledger: string, dataset: string): BudgetRow | undefined =>
  r === undefined
    ? undefined
    : {
        epsilonTotal: r.epsilon_total,
        deltaTotal: r.delta_total,
        epsilonSpent: r.epsilon_spent,
        deltaSpent: r.delta_spent,
        composition: storedComposition(r.composition, ledger, dataset),
      };

const recordOf = (r: RawSpend, ledger: string): SpendRecord => ({
  id: r.id,
  dataset: r.dataset,
  analyst: r.analyst === '' ? null : r.analyst,
  epsilon: r.epsilon,
  delta: r.delta,
  operation: r.operation,
  details: JSON.parse(r.details) as SpendRecord['details'],
  events: parseStoredEvents(r.events, r.id, ledger),
  at: r.at,
});

function sqliteError(e: unknown, path: string, action: string): BulwarkError {
  if (e instanceof BulwarkError) return e;
  const code = (e as { code?: unknown }).code;
  const c = typeof code === 'string' ? code : '';
  if (c === 'SQLITE_NOTADB' || c === 'SQLITE_CORRUPT') {
    return new BulwarkError('ERR_LEDGER_INVALID', `${path} is not a readable budget ledger (${c})`, {
      cause: e,
      details: { ledger: path },
    });
  }
  return new BulwarkError(
    'ERR_LEDGER_UNAVAILABLE',
    `budget ledger ${path}: cannot ${action}${c ? ` (${c})` : ''}: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e, details: { ledger: path } },
  );
}

/** Options of {@link SqliteLedger.open}. */
export interface SqliteLedgerOptions {
  path: string;
  /**
   * The option, flag or configuration key the path came from (`--ledger`), named in the error about a
   * missing folder.
   */
  option?: string;
  /** How long to wait for another process's write lock, in ms (default 10,000). */
  busyTimeoutMs?: number;
  /** Called after each committed spend (an audit sink). */
  onSpend?: SpendSink;
}

/** A {@link BudgetLedger} in a SQLite file. */
export class SqliteLedger implements BudgetLedger {
  readonly kind = 'sqlite';
  readonly location: string;
  readonly id: string;
  readonly #db: Database.Database;
  readonly #onSpend: SpendSink | undefined;

  private constructor(db: Database.Database, path: string, id: string, onSpend: SpendSink | undefined) {
    this.#db = db;
    this.location = path;
    this.id = id;
    this.#onSpend = onSpend;
  }

  /**
   * Opens (creating when missing) the ledger file; ERR_LEDGER_UNAVAILABLE / ERR_LEDGER_INVALID on
   * failure. Its folder is never created: a missing one is ERR_FILE_NOT_FOUND (a mistyped path must not
   * start a fresh ledger, that is a fresh budget, somewhere new), a file in its place ERR_IO.
   */
  static async open(o: SqliteLedgerOptions): Promise<SqliteLedger> {
    const path = o.path;
    await requireOutputFolder(path, { what: 'budget ledger', option: o.option });
    let db: Database.Database;
    let id = '';
    try {
      db = new Database(path, { timeout: o.busyTimeoutMs ?? 10_000 });
    } catch (e) {
      throw sqliteError(e, path, 'open the file');
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.transaction(() => {
        db.exec(SCHEMA);
        for (const a of ADDED_COLUMNS) {
          const cols = db.prepare(`PRAGMA table_info(${a.table})`).all() as Array<{ name: string }>;
          if (!cols.some((c) => c.name === a.column)) db.exec(`ALTER TABLE ${a.table} ADD COLUMN ${a.ddl}`);
        }
        const get = db.prepare('SELECT value FROM ledger_meta WHERE key = ?');
        const fmt = get.get('format') as { value: string } | undefined;
        const ver = get.get('version') as { value: string } | undefined;
        if (fmt === undefined) {
          db.prepare('INSERT INTO ledger_meta (key, value) VALUES (?, ?)').run('format', LEDGER_FORMAT);
          db.prepare('INSERT INTO ledger_meta (key, value) VALUES (?, ?)').run(
            'version',
            String(LEDGER_VERSION),
          );
        } else if (fmt.value !== LEDGER_FORMAT || ver?.value !== String(LEDGER_VERSION)) {
          throw new BulwarkError(
            'ERR_LEDGER_INVALID',
            `${path} holds ${fmt.value} version ${ver?.value ?? '?'}, not ${LEDGER_FORMAT} version ${LEDGER_VERSION}`,
            { details: { ledger: path } },
          );
        }
        // Ledgers made before the id existed get one on their next open.
        db.prepare('INSERT OR IGNORE INTO ledger_meta (key, value) VALUES (?, ?)').run('id', randomUUID());
        id = (get.get('id') as { value: string }).value;
      }).immediate();
    } catch (e) {
      db.close();
      throw sqliteError(e, path, 'initialise the ledger');
    }
    return new SqliteLedger(db, path, id, o.onSpend);
  }

  #budgetRow(dataset: string, analyst: string): BudgetRow | undefined {
    return rowOf(
      this.#db
        .prepare(
          'SELECT epsilon_total, delta_total, epsilon_spent, delta_spent, composition FROM ledger_budgets WHERE dataset = ? AND analyst = ?',
        )
        .get(dataset, analyst) as RawBudget | undefined,
      this.location,
      dataset,
    );
  }

  /** The committed spends a `pld` budget composes: all of the dataset's, or one analyst's. */
  #spendsOf(dataset: string, analyst: string | null): SpendForComposition[] {
    const rows = (
      analyst === null
        ? this.#db
            .prepare('SELECT id, epsilon, delta, events FROM ledger_spends WHERE dataset = ?')
            .all(dataset)
        : this.#db
            .prepare('SELECT id, epsilon, delta, events FROM ledger_spends WHERE dataset = ? AND analyst = ?')
            .all(dataset, analyst)
    ) as Array<{ id: string; epsilon: number; delta: number; events: string | null }>;
    return rows.map((s) => ({
      epsilon: s.epsilon,
      delta: s.delta,
      events: parseStoredEvents(s.events, s.id, this.location),
    }));
  }

  /** Reads the rows a spend needs and decides it (inside the caller's transaction for a spend). */
  #decide(r: CheckedSpendRequest): SpendDecision {
    const ds = this.#budgetRow(r.dataset, '');
    const an = r.analyst === null ? undefined : this.#budgetRow(r.dataset, r.analyst);
    const perAnalyst =
      (this.#db
        .prepare("SELECT 1 FROM ledger_budgets WHERE dataset = ? AND analyst <> '' LIMIT 1")
        .get(r.dataset) as unknown) !== undefined;
    return decideSpend(r, ds, an, perAnalyst, (analyst) => this.#spendsOf(r.dataset, analyst));
  }

  async preview(request: SpendRequest): Promise<Budget> {
    const r = checkSpendRequest(request);
    try {
      return this.#db.transaction(() => this.#decide(r)).deferred().after.remaining;
    } catch (e) {
      throw sqliteError(e, this.location, 'read the budget');
    }
  }

  async setBudget(dataset: string, total: Budget, options: SetBudgetOptions = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? '' : requireName('analyst', options.analyst);
    const b = checkBudget(total);
    const composition = options.composition === undefined ? null : requireComposition(options.composition);
    try {
      this.#db
        .transaction(() => {
          // Without a composition a new budget is basic and an existing one keeps its own.
          this.#db
            .prepare(
              `INSERT INTO ledger_budgets (dataset, analyst, epsilon_total, delta_total, composition) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (dataset, analyst) DO UPDATE SET epsilon_total = excluded.epsilon_total, delta_total = excluded.delta_total,
               composition = COALESCE(?, composition)`,
            )
            .run(dataset, analyst, b.epsilon, b.delta, composition ?? 'basic', composition);
        })
        .immediate();
    } catch (e) {
      throw sqliteError(e, this.location, 'set the budget');
    }
    return this.status(dataset, options.analyst === undefined ? {} : { analyst: options.analyst });
  }

  async spend(request: SpendRequest): Promise<SpendReceipt> {
    const r = checkSpendRequest(request);
    const id = randomUUID();
    let receipt: SpendReceipt;
    try {
      receipt = this.#db
        .transaction((): SpendReceipt => {
          const next = this.#decide(r);
          const upd = this.#db.prepare(
            'UPDATE ledger_budgets SET epsilon_spent = ?, delta_spent = ? WHERE dataset = ? AND analyst = ?',
          );
          upd.run(next.dataset.epsilon, next.dataset.delta, r.dataset, '');
          if (next.analyst !== null && r.analyst !== null)
            upd.run(next.analyst.epsilon, next.analyst.delta, r.dataset, r.analyst);
          const at = new Date().toISOString();
          this.#db
            .prepare(
              'INSERT INTO ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, events, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            )
            .run(...spendRow(id, r, at));
          return {
            id,
            dataset: r.dataset,
            analyst: r.analyst,
            epsilon: r.epsilon,
            delta: r.delta,
            operation: r.operation,
            details: { ...r.details },
            events: r.events,
            at,
            remaining: next.after.remaining,
            spent: next.after.spent,
            composition: next.after.composition,
          };
        })
        .immediate();
    } catch (e) {
      throw sqliteError(e, this.location, 'record the spend');
    }
    if (this.#onSpend) await this.#onSpend(receipt);
    return receipt;
  }

  async status(dataset: string, options: { analyst?: string } = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? null : requireName('analyst', options.analyst);
    let status: BudgetStatus | undefined;
    try {
      // One read transaction: the row and the spends it composes are of the same moment.
      status = this.#db
        .transaction(() => {
          const row = this.#budgetRow(dataset, analyst ?? '');
          if (row === undefined) return undefined;
          const q =
            analyst === null
              ? this.#db.prepare('SELECT COUNT(*) AS n FROM ledger_spends WHERE dataset = ?').get(dataset)
              : this.#db
                  .prepare('SELECT COUNT(*) AS n FROM ledger_spends WHERE dataset = ? AND analyst = ?')
                  .get(dataset, analyst);
          const spends = row.composition === 'pld' ? this.#spendsOf(dataset, analyst) : [];
          return statusOf(dataset, analyst, row, (q as { n: number }).n, composedOf(row, spends));
        })
        .deferred();
    } catch (e) {
      throw sqliteError(e, this.location, 'read the budget');
    }
    if (status === undefined) throw unsetError(dataset, analyst);
    return status;
  }

  async history(dataset: string, options: { analyst?: string; limit?: number } = {}): Promise<SpendRecord[]> {
    requireName('dataset', dataset);
    const limit = options.limit ?? -1;
    try {
      const rows =
        options.analyst === undefined
          ? this.#db
              .prepare('SELECT * FROM ledger_spends WHERE dataset = ? ORDER BY seq LIMIT ?')
              .all(dataset, limit)
          : this.#db
              .prepare('SELECT * FROM ledger_spends WHERE dataset = ? AND analyst = ? ORDER BY seq LIMIT ?')
              .all(dataset, requireName('analyst', options.analyst), limit);
      return (rows as RawSpend[]).map((r) => recordOf(r, this.location));
    } catch (e) {
      throw sqliteError(e, this.location, 'read the history');
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
