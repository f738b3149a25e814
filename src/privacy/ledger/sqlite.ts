/**
 * The budget ledger in one SQLite file (better-sqlite3 12.x), the default for a single machine. A spend
 * runs in a `BEGIN IMMEDIATE` transaction, which takes the database's write lock before it reads the
 * budget: spends from several processes on one file are serialised, so the total is never exceeded.
 * WAL journal with `synchronous=FULL`: a committed spend survives a crash.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { BulwarkError, requireOutputFolder } from '../../core/index.js';
import {
  type Budget,
  type BudgetLedger,
  type BudgetRow,
  type BudgetStatus,
  checkBudget,
  checkSpendRequest,
  decideSpend,
  LEDGER_FORMAT,
  LEDGER_VERSION,
  requireName,
  type SpendReceipt,
  type SpendRecord,
  type SpendRequest,
  type SpendSink,
  statusOf,
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

interface RawBudget {
  epsilon_total: number;
  delta_total: number;
  epsilon_spent: number;
  delta_spent: number;
}

interface RawSpend {
  id: string;
  dataset: string;
  analyst: string;
  epsilon: number;
  delta: number;
  operation: string;
  details: string;
  at: string;
}

const rowOf = (r: RawBudget | undefined): BudgetRow | undefined =>
  r === undefined
    ? undefined
    : {
        epsilonTotal: r.epsilon_total,
        deltaTotal: r.delta_total,
        epsilonSpent: r.epsilon_spent,
        deltaSpent: r.delta_spent,
      };

const recordOf = (r: RawSpend): SpendRecord => ({
  id: r.id,
  dataset: r.dataset,
  analyst: r.analyst === '' ? null : r.analyst,
  epsilon: r.epsilon,
  delta: r.delta,
  operation: r.operation,
  details: JSON.parse(r.details) as SpendRecord['details'],
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
          'SELECT epsilon_total, delta_total, epsilon_spent, delta_spent FROM ledger_budgets WHERE dataset = ? AND analyst = ?',
        )
        .get(dataset, analyst) as RawBudget | undefined,
    );
  }

  /** Reads the rows a spend needs and decides it (inside the caller's transaction for a spend). */
  #decide(r: ReturnType<typeof checkSpendRequest>): {
    ds: BudgetRow | undefined;
    next: ReturnType<typeof decideSpend>;
  } {
    const ds = this.#budgetRow(r.dataset, '');
    const an = r.analyst === null ? undefined : this.#budgetRow(r.dataset, r.analyst);
    const perAnalyst =
      (this.#db
        .prepare("SELECT 1 FROM ledger_budgets WHERE dataset = ? AND analyst <> '' LIMIT 1")
        .get(r.dataset) as unknown) !== undefined;
    return { ds, next: decideSpend(r, ds, an, perAnalyst) };
  }

  async preview(request: SpendRequest): Promise<Budget> {
    const r = checkSpendRequest(request);
    try {
      const { ds, next } = this.#db.transaction(() => this.#decide(r)).deferred();
      const row = ds as BudgetRow;
      return {
        epsilon: Math.max(0, row.epsilonTotal - next.dataset.epsilon),
        delta: Math.max(0, row.deltaTotal - next.dataset.delta),
      };
    } catch (e) {
      throw sqliteError(e, this.location, 'read the budget');
    }
  }

  async setBudget(dataset: string, total: Budget, options: { analyst?: string } = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? '' : requireName('analyst', options.analyst);
    const b = checkBudget(total);
    try {
      this.#db
        .transaction(() => {
          this.#db
            .prepare(
              `INSERT INTO ledger_budgets (dataset, analyst, epsilon_total, delta_total) VALUES (?, ?, ?, ?)
               ON CONFLICT (dataset, analyst) DO UPDATE SET epsilon_total = excluded.epsilon_total, delta_total = excluded.delta_total`,
            )
            .run(dataset, analyst, b.epsilon, b.delta);
        })
        .immediate();
    } catch (e) {
      throw sqliteError(e, this.location, 'set the budget');
    }
    return this.status(dataset, options);
  }

  async spend(request: SpendRequest): Promise<SpendReceipt> {
    const r = checkSpendRequest(request);
    const id = randomUUID();
    let receipt: SpendReceipt;
    try {
      receipt = this.#db
        .transaction((): SpendReceipt => {
          const { ds, next } = this.#decide(r);
          const upd = this.#db.prepare(
            'UPDATE ledger_budgets SET epsilon_spent = ?, delta_spent = ? WHERE dataset = ? AND analyst = ?',
          );
          upd.run(next.dataset.epsilon, next.dataset.delta, r.dataset, '');
          if (next.analyst !== null && r.analyst !== null)
            upd.run(next.analyst.epsilon, next.analyst.delta, r.dataset, r.analyst);
          const at = new Date().toISOString();
          this.#db
            .prepare(
              'INSERT INTO ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            )
            .run(
              id,
              r.dataset,
              r.analyst ?? '',
              r.epsilon,
              r.delta,
              r.operation,
              JSON.stringify(r.details),
              at,
            );
          const row = ds as BudgetRow;
          return {
            id,
            dataset: r.dataset,
            analyst: r.analyst,
            epsilon: r.epsilon,
            delta: r.delta,
            operation: r.operation,
            details: { ...r.details },
            at,
            remaining: {
              epsilon: Math.max(0, row.epsilonTotal - next.dataset.epsilon),
              delta: Math.max(0, row.deltaTotal - next.dataset.delta),
            },
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
    let row: BudgetRow | undefined;
    let count: number;
    try {
      row = this.#budgetRow(dataset, analyst ?? '');
      const q =
        analyst === null
          ? this.#db.prepare('SELECT COUNT(*) AS n FROM ledger_spends WHERE dataset = ?').get(dataset)
          : this.#db
              .prepare('SELECT COUNT(*) AS n FROM ledger_spends WHERE dataset = ? AND analyst = ?')
              .get(dataset, analyst);
      count = (q as { n: number }).n;
    } catch (e) {
      throw sqliteError(e, this.location, 'read the budget');
    }
    if (row === undefined) throw unsetError(dataset, analyst);
    return statusOf(dataset, analyst, row, count);
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
      return (rows as RawSpend[]).map(recordOf);
    } catch (e) {
      throw sqliteError(e, this.location, 'read the history');
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
