/**
 * The budget ledger in PostgreSQL (node-postgres), for several processes or machines spending one
 * budget. A spend is one transaction that first locks the dataset's budget row
 * (`SELECT … FOR UPDATE`): concurrent spenders on a dataset queue on that row lock, each re-reads the
 * committed totals once it holds the lock, so the sum of committed spends never exceeds the budget.
 * The tables live in their own schema (default `bulwark_ledger`), so tests can use a throw-away one.
 * A `pld` budget's spends are read and composed inside that transaction, while the row lock is held
 * (READ COMMITTED: each statement after the lock sees every spend committed before it).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { BulwarkError, CONNECTION_ERRNO, invalidArgument, redactUrl } from '../../core/index.js';
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

/** Options of {@link PgLedger.open}. */
export interface PgLedgerOptions {
  /** A `postgres://` connection string. */
  url: string;
  /** The schema holding the ledger's tables (default `bulwark_ledger`). */
  schema?: string;
  /** How long to wait for a connection, in ms (default 5,000). */
  connectTimeoutMs?: number;
  /** Connection pool size (default 2). */
  poolSize?: number;
  /** Called after each committed spend (an audit sink). */
  onSpend?: SpendSink;
}

/**
 * Any failure talking to the database is ERR_LEDGER_UNAVAILABLE (the caller refuses to release); the
 * budget decisions (BulwarkErrors thrown inside the transaction) pass through.
 */
function pgError(e: unknown, location: string, action: string): BulwarkError {
  if (e instanceof BulwarkError) return e;
  const code = (e as { code?: unknown }).code;
  const c = typeof code === 'string' ? code : '';
  const reason = CONNECTION_ERRNO.has(c) ? c : c ? `SQLSTATE ${c}` : '';
  return new BulwarkError(
    'ERR_LEDGER_UNAVAILABLE',
    `budget ledger ${location}: cannot ${action}${reason ? ` (${reason})` : ''}: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e, details: { ledger: location } },
  );
}

const num = (v: unknown): number => Number(v);

interface RawBudget {
  epsilon_total: number;
  delta_total: number;
  epsilon_spent: number;
  delta_spent: number;
  composition: string;
}

const rowOf = (r: RawBudget | undefined, ledger: string, dataset: string): BudgetRow | undefined =>
  r === undefined
    ? undefined
    : {
        epsilonTotal: num(r.epsilon_total),
        deltaTotal: num(r.delta_total),
        epsilonSpent: num(r.epsilon_spent),
        deltaSpent: num(r.delta_spent),
        composition: storedComposition(r.composition, ledger, dataset),
      };

/**
 * Columns added after the first format (version 1 is kept: older code ignores them and stays sound by
 * basic composition). A ledger that lacks them gets them on open, under the schema's advisory lock:
 * existing budgets are then `basic`, existing spends have no events (NULL).
 */
const ADDED_COLUMNS: ReadonlyArray<{ table: string; column: string; ddl: string }> = [
  { table: 'ledger_budgets', column: 'composition', ddl: "composition TEXT NOT NULL DEFAULT 'basic'" },
  { table: 'ledger_spends', column: 'events', ddl: 'events TEXT' },
];

const BUDGET_COLUMNS = 'epsilon_total, delta_total, epsilon_spent, delta_spent, composition';

/** A {@link BudgetLedger} in a PostgreSQL schema. */
export class PgLedger implements BudgetLedger {
  readonly kind = 'postgres';
  readonly location: string;
  readonly id: string;
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #onSpend: SpendSink | undefined;

  private constructor(
    pool: pg.Pool,
    location: string,
    id: string,
    schema: string,
    onSpend: SpendSink | undefined,
  ) {
    this.#pool = pool;
    this.location = location;
    this.id = id;
    this.#s = `"${schema}"`;
    this.#onSpend = onSpend;
  }

  /** Connects and creates the schema and tables when missing; ERR_LEDGER_UNAVAILABLE when unreachable. */
  static async open(o: PgLedgerOptions): Promise<PgLedger> {
    const schema = o.schema ?? 'bulwark_ledger';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
      throw invalidArgument('schema', 'a lower-case SQL identifier', schema);
    const location = `${redactUrl(o.url)} (schema ${schema})`;
    const pool = new pg.Pool({
      connectionString: o.url,
      max: o.poolSize ?? 2,
      connectionTimeoutMillis: o.connectTimeoutMs ?? 5000,
    });
    // An idle client that errors (server restart) must not crash the process: the next query reports it.
    pool.on('error', () => {});
    const s = `"${schema}"`;
    let client: pg.PoolClient | undefined;
    let id = '';
    try {
      client = await pool.connect();
      await client.query('BEGIN');
      // Serialise schema creation between processes opening a new ledger at once.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bulwark-ledger:${schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${s}.ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${s}.ledger_budgets (dataset TEXT NOT NULL, analyst TEXT NOT NULL,
          epsilon_total DOUBLE PRECISION NOT NULL, delta_total DOUBLE PRECISION NOT NULL,
          epsilon_spent DOUBLE PRECISION NOT NULL DEFAULT 0, delta_spent DOUBLE PRECISION NOT NULL DEFAULT 0,
          PRIMARY KEY (dataset, analyst))`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${s}.ledger_spends (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
          dataset TEXT NOT NULL, analyst TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
          delta DOUBLE PRECISION NOT NULL, operation TEXT NOT NULL, details TEXT NOT NULL, at TEXT NOT NULL)`,
      );
      await client.query(
        `CREATE INDEX IF NOT EXISTS ledger_spends_dataset ON ${s}.ledger_spends (dataset, analyst, seq)`,
      );
      // Looked up first: ALTER TABLE takes an exclusive lock even when it has nothing to add.
      for (const a of ADDED_COLUMNS) {
        const has = await client.query(
          'SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3',
          [schema, a.table, a.column],
        );
        if (has.rowCount === 0) await client.query(`ALTER TABLE ${s}.${a.table} ADD COLUMN ${a.ddl}`);
      }
      const meta = await client.query<{ key: string; value: string }>(
        `SELECT key, value FROM ${s}.ledger_meta`,
      );
      const m = new Map(meta.rows.map((r) => [r.key, r.value]));
      if (!m.has('format')) {
        await client.query(
          `INSERT INTO ${s}.ledger_meta (key, value) VALUES ('format', $1), ('version', $2)`,
          [LEDGER_FORMAT, String(LEDGER_VERSION)],
        );
      } else if (m.get('format') !== LEDGER_FORMAT || m.get('version') !== String(LEDGER_VERSION)) {
        throw new BulwarkError(
          'ERR_LEDGER_INVALID',
          `${location} holds ${m.get('format')} version ${m.get('version') ?? '?'}, not ${LEDGER_FORMAT} version ${LEDGER_VERSION}`,
          { details: { ledger: location } },
        );
      }
      // Ledgers made before the id existed get one on their next open.
      await client.query(
        `INSERT INTO ${s}.ledger_meta (key, value) VALUES ('id', $1) ON CONFLICT (key) DO NOTHING`,
        [randomUUID()],
      );
      id = (await client.query<{ value: string }>(`SELECT value FROM ${s}.ledger_meta WHERE key = 'id'`))
        .rows[0]?.value as string;
      await client.query('COMMIT');
    } catch (e) {
      if (client) await client.query('ROLLBACK').catch(() => {});
      client?.release(true);
      client = undefined;
      await pool.end().catch(() => {});
      throw pgError(e, location, 'open the ledger');
    } finally {
      client?.release();
    }
    return new PgLedger(pool, location, id, schema, o.onSpend);
  }

  async #tx<T>(action: string, body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw pgError(e, this.location, action);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const out = await body(client);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      broken = !(e instanceof BulwarkError);
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw pgError(e, this.location, action);
    } finally {
      client.release(broken);
    }
  }

  async setBudget(dataset: string, total: Budget, options: SetBudgetOptions = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? '' : requireName('analyst', options.analyst);
    const b = checkBudget(total);
    const composition = options.composition === undefined ? null : requireComposition(options.composition);
    // Without a composition a new budget is basic and an existing one keeps its own.
    await this.#tx('set the budget', (c) =>
      c.query(
        `INSERT INTO ${this.#s}.ledger_budgets (dataset, analyst, epsilon_total, delta_total, composition) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dataset, analyst) DO UPDATE SET epsilon_total = EXCLUDED.epsilon_total, delta_total = EXCLUDED.delta_total,
         composition = COALESCE($6::text, ${this.#s}.ledger_budgets.composition)`,
        [dataset, analyst, b.epsilon, b.delta, composition ?? 'basic', composition],
      ),
    );
    return this.status(dataset, options.analyst === undefined ? {} : { analyst: options.analyst });
  }

  async spend(request: SpendRequest): Promise<SpendReceipt> {
    const r = checkSpendRequest(request);
    const id = randomUUID();
    const receipt = await this.#tx('record the spend', async (c): Promise<SpendReceipt> => {
      const next = await this.#decide(c, r, true);
      const upd = `UPDATE ${this.#s}.ledger_budgets SET epsilon_spent = $1, delta_spent = $2 WHERE dataset = $3 AND analyst = $4`;
      await c.query(upd, [next.dataset.epsilon, next.dataset.delta, r.dataset, '']);
      if (next.analyst !== null && r.analyst !== null)
        await c.query(upd, [next.analyst.epsilon, next.analyst.delta, r.dataset, r.analyst]);
      const at = new Date().toISOString();
      await c.query(
        `INSERT INTO ${this.#s}.ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, events, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        spendRow(id, r, at),
      );
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
    });
    if (this.#onSpend) await this.#onSpend(receipt);
    return receipt;
  }

  /** The committed spends a `pld` budget composes: all of the dataset's, or one analyst's. */
  async #spendsOf(c: pg.PoolClient, dataset: string, analyst: string | null): Promise<SpendForComposition[]> {
    const q =
      analyst === null
        ? await c.query<{ id: string; epsilon: number; delta: number; events: string | null }>(
            `SELECT id, epsilon, delta, events FROM ${this.#s}.ledger_spends WHERE dataset = $1`,
            [dataset],
          )
        : await c.query<{ id: string; epsilon: number; delta: number; events: string | null }>(
            `SELECT id, epsilon, delta, events FROM ${this.#s}.ledger_spends WHERE dataset = $1 AND analyst = $2`,
            [dataset, analyst],
          );
    return q.rows.map((s) => ({
      epsilon: num(s.epsilon),
      delta: num(s.delta),
      events: parseStoredEvents(s.events, String(s.id), this.location),
    }));
  }

  /** Reads the rows a spend needs (locked for a spend) and decides it. */
  async #decide(c: pg.PoolClient, r: CheckedSpendRequest, lock: boolean): Promise<SpendDecision> {
    const sel = `SELECT ${BUDGET_COLUMNS} FROM ${this.#s}.ledger_budgets
      WHERE dataset = $1 AND analyst = $2${lock ? ' FOR UPDATE' : ''}`;
    // The dataset row first, always: every spender on a dataset takes the same lock in the same order.
    const ds = rowOf((await c.query<RawBudget>(sel, [r.dataset, ''])).rows[0], this.location, r.dataset);
    const an =
      r.analyst === null
        ? undefined
        : rowOf((await c.query<RawBudget>(sel, [r.dataset, r.analyst])).rows[0], this.location, r.dataset);
    const perAnalyst =
      (
        await c.query(
          `SELECT 1 FROM ${this.#s}.ledger_budgets WHERE dataset = $1 AND analyst <> '' LIMIT 1`,
          [r.dataset],
        )
      ).rowCount !== 0;
    // The spends are read here, after the lock, and handed to the (synchronous) decision.
    const spends = new Map<string | null, SpendForComposition[]>();
    if (ds?.composition === 'pld') spends.set(null, await this.#spendsOf(c, r.dataset, null));
    if (an?.composition === 'pld' && r.analyst !== null)
      spends.set(r.analyst, await this.#spendsOf(c, r.dataset, r.analyst));
    return decideSpend(r, ds, an, perAnalyst, (analyst) => spends.get(analyst) ?? []);
  }

  async preview(request: SpendRequest): Promise<Budget> {
    const r = checkSpendRequest(request);
    return (await this.#tx('read the budget', (c) => this.#decide(c, r, false))).after.remaining;
  }

  async status(dataset: string, options: { analyst?: string } = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? null : requireName('analyst', options.analyst);
    const status = await this.#tx('read the budget', async (c) => {
      // REPEATABLE READ: the row and the spends it composes are of the same snapshot.
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const b = await c.query<RawBudget>(
        `SELECT ${BUDGET_COLUMNS} FROM ${this.#s}.ledger_budgets WHERE dataset = $1 AND analyst = $2`,
        [dataset, analyst ?? ''],
      );
      const n =
        analyst === null
          ? await c.query<{ n: string }>(
              `SELECT COUNT(*) AS n FROM ${this.#s}.ledger_spends WHERE dataset = $1`,
              [dataset],
            )
          : await c.query<{ n: string }>(
              `SELECT COUNT(*) AS n FROM ${this.#s}.ledger_spends WHERE dataset = $1 AND analyst = $2`,
              [dataset, analyst],
            );
      const row = rowOf(b.rows[0], this.location, dataset);
      if (row === undefined) return undefined;
      const spends = row.composition === 'pld' ? await this.#spendsOf(c, dataset, analyst) : [];
      return statusOf(dataset, analyst, row, num(n.rows[0]?.n ?? 0), composedOf(row, spends));
    });
    if (status === undefined) throw unsetError(dataset, analyst);
    return status;
  }

  async history(dataset: string, options: { analyst?: string; limit?: number } = {}): Promise<SpendRecord[]> {
    requireName('dataset', dataset);
    const limit = options.limit ?? null;
    const rows = await this.#tx('read the history', async (c) => {
      const q =
        options.analyst === undefined
          ? await c.query(`SELECT * FROM ${this.#s}.ledger_spends WHERE dataset = $1 ORDER BY seq LIMIT $2`, [
              dataset,
              limit,
            ])
          : await c.query(
              `SELECT * FROM ${this.#s}.ledger_spends WHERE dataset = $1 AND analyst = $2 ORDER BY seq LIMIT $3`,
              [dataset, requireName('analyst', options.analyst), limit],
            );
      return q.rows as Array<Record<string, unknown>>;
    });
    return rows.map((r) => ({
      id: String(r['id']),
      dataset: String(r['dataset']),
      analyst: r['analyst'] === '' ? null : String(r['analyst']),
      epsilon: num(r['epsilon']),
      delta: num(r['delta']),
      operation: String(r['operation']),
      details: JSON.parse(String(r['details'])) as SpendRecord['details'],
      events: parseStoredEvents(
        r['events'] === null || r['events'] === undefined ? null : String(r['events']),
        String(r['id']),
        this.location,
      ),
      at: String(r['at']),
    }));
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => {});
  }
}
