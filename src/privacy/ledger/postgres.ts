/**
 * The budget ledger in PostgreSQL (node-postgres), for several processes or machines spending one
 * budget. A spend is one transaction that first locks the dataset's budget row
 * (`SELECT … FOR UPDATE`): concurrent spenders on a dataset queue on that row lock, each re-reads the
 * committed totals once it holds the lock, so the sum of committed spends never exceeds the budget.
 * The tables live in their own schema (default `bulwark_ledger`), so tests can use a throw-away one.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { BulwarkError, CONNECTION_ERRNO, invalidArgument, redactUrl } from '../../core/index.js';
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
}

const rowOf = (r: RawBudget | undefined): BudgetRow | undefined =>
  r === undefined
    ? undefined
    : {
        epsilonTotal: num(r.epsilon_total),
        deltaTotal: num(r.delta_total),
        epsilonSpent: num(r.epsilon_spent),
        deltaSpent: num(r.delta_spent),
      };

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

  async setBudget(dataset: string, total: Budget, options: { analyst?: string } = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? '' : requireName('analyst', options.analyst);
    const b = checkBudget(total);
    await this.#tx('set the budget', (c) =>
      c.query(
        `INSERT INTO ${this.#s}.ledger_budgets (dataset, analyst, epsilon_total, delta_total) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dataset, analyst) DO UPDATE SET epsilon_total = EXCLUDED.epsilon_total, delta_total = EXCLUDED.delta_total`,
        [dataset, analyst, b.epsilon, b.delta],
      ),
    );
    return this.status(dataset, options);
  }

  async spend(request: SpendRequest): Promise<SpendReceipt> {
    const r = checkSpendRequest(request);
    const id = randomUUID();
    const receipt = await this.#tx('record the spend', async (c): Promise<SpendReceipt> => {
      const { ds, next } = await this.#decide(c, r, true);
      const upd = `UPDATE ${this.#s}.ledger_budgets SET epsilon_spent = $1, delta_spent = $2 WHERE dataset = $3 AND analyst = $4`;
      await c.query(upd, [next.dataset.epsilon, next.dataset.delta, r.dataset, '']);
      if (next.analyst !== null && r.analyst !== null)
        await c.query(upd, [next.analyst.epsilon, next.analyst.delta, r.dataset, r.analyst]);
      const at = new Date().toISOString();
      await c.query(
        `INSERT INTO ${this.#s}.ledger_spends (id, dataset, analyst, epsilon, delta, operation, details, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, r.dataset, r.analyst ?? '', r.epsilon, r.delta, r.operation, JSON.stringify(r.details), at],
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
    });
    if (this.#onSpend) await this.#onSpend(receipt);
    return receipt;
  }

  /** Reads the rows a spend needs (locked for a spend) and decides it. */
  async #decide(
    c: pg.PoolClient,
    r: ReturnType<typeof checkSpendRequest>,
    lock: boolean,
  ): Promise<{ ds: BudgetRow | undefined; next: ReturnType<typeof decideSpend> }> {
    const sel = `SELECT epsilon_total, delta_total, epsilon_spent, delta_spent FROM ${this.#s}.ledger_budgets
      WHERE dataset = $1 AND analyst = $2${lock ? ' FOR UPDATE' : ''}`;
    // The dataset row first, always: every spender on a dataset takes the same lock in the same order.
    const ds = rowOf((await c.query<RawBudget>(sel, [r.dataset, ''])).rows[0]);
    const an =
      r.analyst === null ? undefined : rowOf((await c.query<RawBudget>(sel, [r.dataset, r.analyst])).rows[0]);
    const perAnalyst =
      (
        await c.query(
          `SELECT 1 FROM ${this.#s}.ledger_budgets WHERE dataset = $1 AND analyst <> '' LIMIT 1`,
          [r.dataset],
        )
      ).rowCount !== 0;
    return { ds, next: decideSpend(r, ds, an, perAnalyst) };
  }

  async preview(request: SpendRequest): Promise<Budget> {
    const r = checkSpendRequest(request);
    const { ds, next } = await this.#tx('read the budget', (c) => this.#decide(c, r, false));
    const row = ds as BudgetRow;
    return {
      epsilon: Math.max(0, row.epsilonTotal - next.dataset.epsilon),
      delta: Math.max(0, row.deltaTotal - next.dataset.delta),
    };
  }

  async status(dataset: string, options: { analyst?: string } = {}): Promise<BudgetStatus> {
    requireName('dataset', dataset);
    const analyst = options.analyst === undefined ? null : requireName('analyst', options.analyst);
    const { row, count } = await this.#tx('read the budget', async (c) => {
      const b = await c.query<RawBudget>(
        `SELECT epsilon_total, delta_total, epsilon_spent, delta_spent FROM ${this.#s}.ledger_budgets WHERE dataset = $1 AND analyst = $2`,
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
      return { row: rowOf(b.rows[0]), count: num(n.rows[0]?.n ?? 0) };
    });
    if (row === undefined) throw unsetError(dataset, analyst);
    return statusOf(dataset, analyst, row, count);
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
      at: String(r['at']),
    }));
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => {});
  }
}
