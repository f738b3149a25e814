/**
 * The shared audit store: PostgreSQL (node-postgres), for several gateway replicas writing one log.
 * Each append batch is one transaction that locks the single `state` row (`SELECT … FOR UPDATE`),
 * so indices are assigned in one sequence across every process; the commit returns only when it is
 * durable (PostgreSQL's default `synchronous_commit = on`). The log lives in its own schema, so one
 * database can hold several logs and tests can use a throw-away schema.
 */
import pg from 'pg';
import { BulwarkError, isConnectionFailure, redactUrl } from '../core/index.js';
import { EMPTY_ROOT } from './merkle.js';
import type {
  AppendPlan,
  AuditStore,
  NodeRow,
  RefRow,
  StoredCheckpoint,
  StoredEntry,
  TreeState,
} from './store.js';

export interface PgStoreOptions {
  /** A `postgres://` connection string. */
  url: string;
  /** The schema holding the log's tables (default `bulwark_audit`). */
  schema?: string;
  /** Create the schema and tables when missing (default true). */
  create?: boolean;
  /** Connection pool size (default 4). */
  poolSize?: number;
  /** How long to wait for a connection, in ms (default 5,000). */
  connectTimeoutMs?: number;
}

const num = (v: unknown): number => Number(v);

interface EntryRow {
  idx: string;
  id: string;
  leaf: Buffer;
  body: string;
}

const toEntry = (r: EntryRow): StoredEntry => ({
  index: num(r.idx),
  id: r.id,
  leaf: r.leaf,
  body: r.body,
});

/** An {@link AuditStore} in a PostgreSQL schema. */
export class PgAuditStore implements AuditStore {
  readonly kind = 'postgres';
  readonly location: string;
  private readonly pool: pg.Pool;
  private readonly s: string;
  private closed = false;

  private constructor(pool: pg.Pool, location: string, schema: string) {
    this.pool = pool;
    this.location = location;
    this.s = pg.escapeIdentifier(schema);
  }

  /** Connects and (by default) creates the schema. Throws ERR_AUDIT_UNAVAILABLE when unreachable. */
  static async open(options: PgStoreOptions): Promise<PgAuditStore> {
    const schema = options.schema ?? 'bulwark_audit';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `schema: expected a lowercase SQL identifier, got ${JSON.stringify(schema)}`,
        {
          details: { parameter: 'schema' },
        },
      );
    const location = `${redactUrl(options.url)} schema ${schema}`;
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 10_000,
    });
    // An idle client losing its connection emits on the pool; without a listener that would crash the
    // process. The next query reports the failure as ERR_AUDIT_UNAVAILABLE instead.
    pool.on('error', () => {});
    const store = new PgAuditStore(pool, location, schema);
    try {
      await store.init(schema, options.create ?? true);
    } catch (e) {
      await pool.end().catch(() => {});
      throw store.mapError(e, 'initialise the log');
    }
    return store;
  }

  private t(name: string): string {
    return `${this.s}.${name}`;
  }

  private async init(schema: string, create: boolean): Promise<void> {
    const client = await this.pool.connect();
    let broken = false;
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      if (!create) {
        const r = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [
          `${schema}.state`,
        ]);
        if (r.rows[0]?.t == null)
          throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `no audit log in ${this.location}`, {
            details: { schema },
          });
        return;
      }
      await client.query('BEGIN');
      // Serialise concurrent creators of the same schema (CREATE … IF NOT EXISTS is not race-free).
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bulwark-audit:${schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.s}`);
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${this.t('meta')} (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE IF NOT EXISTS ${this.t('state')} (id int PRIMARY KEY CHECK (id = 0), size bigint NOT NULL,
          root bytea NOT NULL, frontier bytea NOT NULL);
        CREATE TABLE IF NOT EXISTS ${this.t('entries')} (idx bigint PRIMARY KEY, id text NOT NULL UNIQUE,
          leaf bytea NOT NULL, body text NOT NULL);
        CREATE TABLE IF NOT EXISTS ${this.t('refs')} (ref text NOT NULL, role smallint NOT NULL, idx bigint NOT NULL,
          PRIMARY KEY (ref, role, idx));
        CREATE INDEX IF NOT EXISTS refs_by_idx ON ${this.t('refs')} (idx);
        CREATE TABLE IF NOT EXISTS ${this.t('nodes')} (level int NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL,
          PRIMARY KEY (level, idx));
        CREATE TABLE IF NOT EXISTS ${this.t('checkpoints')} (size bigint PRIMARY KEY, root bytea NOT NULL,
          note text NOT NULL, created_at text NOT NULL);
      `);
      await client.query(
        `INSERT INTO ${this.t('state')} (id, size, root, frontier) VALUES (0, 0, $1, $2) ON CONFLICT (id) DO NOTHING`,
        [EMPTY_ROOT, Buffer.alloc(0)],
      );
      await client.query('COMMIT');
    } catch (e) {
      broken ||= isConnectionFailure(e);
      if (!broken) await client.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private mapError(e: unknown, action: string): BulwarkError {
    if (e instanceof BulwarkError) return e;
    if (isConnectionFailure(e))
      return new BulwarkError(
        'ERR_AUDIT_UNAVAILABLE',
        `audit store ${this.location}: cannot ${action}: ${(e as Error).message}`,
        {
          cause: e,
          details: { store: this.location },
        },
      );
    return new BulwarkError(
      'ERR_INTERNAL',
      `audit store ${this.location}: ${action} failed: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }

  private async query<R extends pg.QueryResultRow>(
    action: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    if (this.closed) throw new BulwarkError('ERR_AUDIT_CLOSED', `audit store ${this.location} is closed`);
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (e) {
      throw this.mapError(e, action);
    }
  }

  async appendBatch<T>(plan: (state: TreeState) => AppendPlan<T>): Promise<T> {
    if (this.closed) throw new BulwarkError('ERR_AUDIT_CLOSED', `audit store ${this.location} is closed`);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw this.mapError(e, 'connect');
    }
    let broken = false;
    // A checked-out client that loses its connection emits 'error' (the pool listens only while it is
    // idle); the query in flight rejects anyway, so the event only needs a listener.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const r = await client.query<{ size: string; root: Buffer; frontier: Buffer }>(
        `SELECT size, root, frontier FROM ${this.t('state')} WHERE id = 0 FOR UPDATE`,
      );
      const row = r.rows[0];
      if (!row) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
      const p = plan({ size: num(row.size), root: row.root, frontier: row.frontier });
      if (p.entries.length > 0)
        await client.query(
          `INSERT INTO ${this.t('entries')} (idx, id, leaf, body)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[])`,
          [
            p.entries.map((e) => e.index),
            p.entries.map((e) => e.id),
            p.entries.map((e) => e.leaf),
            p.entries.map((e) => e.body),
          ],
        );
      if (p.refs.length > 0)
        await client.query(
          `INSERT INTO ${this.t('refs')} (ref, role, idx) SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[])
           ON CONFLICT DO NOTHING`,
          [p.refs.map((x) => x.ref), p.refs.map((x) => x.role), p.refs.map((x) => x.index)],
        );
      if (p.nodes.length > 0)
        await client.query(
          `INSERT INTO ${this.t('nodes')} (level, idx, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])
           ON CONFLICT (level, idx) DO UPDATE SET hash = EXCLUDED.hash`,
          [p.nodes.map((n) => n.level), p.nodes.map((n) => n.index), p.nodes.map((n) => n.hash)],
        );
      await client.query(`UPDATE ${this.t('state')} SET size = $1, root = $2, frontier = $3 WHERE id = 0`, [
        p.state.size,
        p.state.root,
        p.state.frontier,
      ]);
      await client.query('COMMIT');
      return p.result;
    } catch (e) {
      broken ||= isConnectionFailure(e);
      if (!broken) await client.query('ROLLBACK').catch(() => {});
      throw this.mapError(e, 'append');
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  async state(): Promise<TreeState> {
    const rows = await this.query<{ size: string; root: Buffer; frontier: Buffer }>(
      'read the tree state',
      `SELECT size, root, frontier FROM ${this.t('state')} WHERE id = 0`,
    );
    const r = rows[0];
    if (!r) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
    return { size: num(r.size), root: r.root, frontier: r.frontier };
  }

  async entries(start: number, end: number): Promise<StoredEntry[]> {
    const rows = await this.query<EntryRow>(
      'read entries',
      `SELECT idx, id, leaf, body FROM ${this.t('entries')} WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
      [start, end],
    );
    return rows.map(toEntry);
  }

  async leafHashes(start: number, end: number): Promise<Buffer[]> {
    const rows = await this.query<{ leaf: Buffer }>(
      'read leaf hashes',
      `SELECT leaf FROM ${this.t('entries')} WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
      [start, end],
    );
    return rows.map((r) => r.leaf);
  }

  async nodes(level: number, start: number, end: number): Promise<NodeRow[]> {
    const rows = await this.query<{ idx: string; hash: Buffer }>(
      'read tree nodes',
      `SELECT idx, hash FROM ${this.t('nodes')} WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`,
      [level, start, end],
    );
    return rows.map((r) => ({ level, index: num(r.idx), hash: r.hash }));
  }

  async entryById(id: string): Promise<StoredEntry | undefined> {
    const rows = await this.query<EntryRow>(
      'find an entry',
      `SELECT idx, id, leaf, body FROM ${this.t('entries')} WHERE id = $1`,
      [id],
    );
    return rows[0] ? toEntry(rows[0]) : undefined;
  }

  async producerOf(ref: string, before: number): Promise<number | undefined> {
    const rows = await this.query<{ idx: string }>(
      'query lineage',
      `SELECT idx FROM ${this.t('refs')} WHERE ref = $1 AND role = 0 AND idx < $2 ORDER BY idx DESC LIMIT 1`,
      [ref, before],
    );
    return rows[0] ? num(rows[0].idx) : undefined;
  }

  async refs(start: number, end: number): Promise<RefRow[]> {
    const rows = await this.query<{ ref: string; role: number; idx: string }>(
      'read the lineage index',
      `SELECT ref, role, idx FROM ${this.t('refs')} WHERE idx >= $1 AND idx < $2`,
      [start, end],
    );
    return rows.map((r) => ({ ref: r.ref, role: r.role as 0 | 1, index: num(r.idx) }));
  }

  async rowsBeyondHead(): Promise<{ size: number; entries: number; refs: number }> {
    // One statement, so one snapshot: a concurrent append moves the size and its rows together.
    const rows = await this.query<{ size: string; entries: string; refs: string }>(
      'read the tree state',
      `SELECT s.size, (SELECT count(*) FROM ${this.t('entries')} WHERE idx >= s.size) AS entries,
         (SELECT count(*) FROM ${this.t('refs')} WHERE idx >= s.size) AS refs
       FROM ${this.t('state')} s WHERE s.id = 0`,
    );
    const r = rows[0];
    if (!r) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
    return { size: num(r.size), entries: num(r.entries), refs: num(r.refs) };
  }

  async addCheckpoint(cp: StoredCheckpoint): Promise<void> {
    await this.query(
      'store a checkpoint',
      `INSERT INTO ${this.t('checkpoints')} (size, root, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING`,
      [cp.size, cp.root, cp.note, cp.createdAt],
    );
  }

  async checkpoints(): Promise<StoredCheckpoint[]> {
    const rows = await this.query<{ size: string; root: Buffer; note: string; created_at: string }>(
      'read checkpoints',
      `SELECT size, root, note, created_at FROM ${this.t('checkpoints')} ORDER BY size`,
    );
    return rows.map((r) => ({ size: num(r.size), root: r.root, note: r.note, createdAt: r.created_at }));
  }

  async getMeta(key: string): Promise<string | undefined> {
    const rows = await this.query<{ value: string }>(
      'read metadata',
      `SELECT value FROM ${this.t('meta')} WHERE key = $1`,
      [key],
    );
    return rows[0]?.value;
  }

  async initMeta(key: string, value: string): Promise<string> {
    await this.query(
      'write metadata',
      `INSERT INTO ${this.t('meta')} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
      [key, value],
    );
    return (await this.getMeta(key)) as string;
  }

  async setMeta(values: Readonly<Record<string, string>>): Promise<void> {
    const e = Object.entries(values);
    // One statement: atomic without a transaction of its own.
    await this.query(
      'write metadata',
      `INSERT INTO ${this.t('meta')} (key, value) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [e.map(([k]) => k), e.map(([, v]) => v)],
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
