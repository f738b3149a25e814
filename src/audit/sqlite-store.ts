/**
 * The embedded audit store: one SQLite file (better-sqlite3 12.x) in WAL mode. Every write method
 * resolves only after the WAL is fsynced, so an acknowledged append survives a crash of the process or
 * of the machine, as with `synchronous=FULL`; but the fsync is not SQLite's own. better-sqlite3 runs on
 * the caller's thread, and with `synchronous=FULL` the commit's fsync (milliseconds on a virtual disk)
 * blocked the whole event loop: a gateway stopped reading, decrypting and answering requests for the
 * length of every audit commit. Here SQLite commits with `synchronous=NORMAL` (frames written to the
 * WAL, no fsync) and the store then fdatasyncs the WAL file on libuv's thread pool before resolving:
 * the same durability point, reached without holding the event loop, so requests keep flowing while a
 * batch becomes durable (group commit in src/audit/log.ts). fsync is per file (inode), so a fresh
 * descriptor of the WAL flushes what the connection wrote. The store keeps one descriptor of the WAL
 * open from its first write on, rather than opening one per fsync: Linux reports a writeback error
 * once per open file description (errseq), so a descriptor opened after SQLite's own had seen the
 * error (in a checkpoint, whose failure the auto-checkpoint ignores) would never get it. After a failed fsync the store refuses
 * every further write (ERR_AUDIT_UNAVAILABLE until reopened), and fails the writes whose fsync was in
 * flight at the time even if theirs succeeded: Linux may drop the unwritten pages and report the error
 * to one fsync only, so nothing committed before it was seen can be trusted as durable.
 *
 * Appends take the database write lock with `BEGIN IMMEDIATE`, so several processes appending to one
 * file still produce one sequence; a writer that cannot get the lock within `busyTimeoutMs` fails with
 * ERR_AUDIT_UNAVAILABLE.
 */
import { existsSync } from 'node:fs';
import { type FileHandle, open as openFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BulwarkError, requireOutputFolderSync } from '../core/index.js';
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

export interface SqliteStoreOptions {
  /** The database file. */
  path: string;
  /**
   * Create the file and tables when missing (default true); when false a missing file is
   * ERR_FILE_NOT_FOUND. The folder is never created: a missing one is ERR_FILE_NOT_FOUND (a mistyped
   * path must not start a fresh, empty log somewhere new), a file in its place ERR_IO.
   */
  create?: boolean;
  /**
   * The option, flag or configuration key the path came from (`--store`, `audit.store`), named in the
   * errors about a missing file or folder.
   */
  option?: string;
  /** How long to wait for another process's write lock, in ms (default 10,000). */
  busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL,
  root BLOB NOT NULL, frontier BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, leaf BLOB NOT NULL,
  body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (ref TEXT NOT NULL, role INTEGER NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY (ref, role, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_by_idx ON refs (idx);
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL,
  created_at TEXT NOT NULL);
`;

interface EntryRow {
  idx: number;
  id: string;
  leaf: Buffer;
  body: string;
}

const toEntry = (r: EntryRow): StoredEntry => ({
  index: r.idx,
  id: r.id,
  leaf: r.leaf,
  body: r.body,
});

/** Maps a SQLite failure to Bulwark's codes: unreachable/locked/IO → ERR_AUDIT_UNAVAILABLE. */
function sqliteError(e: unknown, location: string, action: string): BulwarkError {
  if (e instanceof BulwarkError) return e;
  const code = (e as { code?: unknown }).code;
  const c = typeof code === 'string' ? code : '';
  if (c === 'SQLITE_NOTADB' || c === 'SQLITE_CORRUPT')
    return new BulwarkError(
      'ERR_AUDIT_STORE_INVALID',
      `${location} is not a readable audit database (${c})`,
      {
        cause: e,
        details: { store: location },
      },
    );
  if (c.startsWith('SQLITE_') || c.startsWith('E'))
    return new BulwarkError('ERR_AUDIT_UNAVAILABLE', `audit store ${location}: cannot ${action} (${c})`, {
      cause: e,
      details: { store: location, reason: c },
    });
  return new BulwarkError(
    'ERR_INTERNAL',
    `audit store ${location}: ${action} failed: ${(e as Error).message}`,
    {
      cause: e,
    },
  );
}

/** An {@link AuditStore} on a SQLite file. */
export class SqliteAuditStore implements AuditStore {
  readonly kind = 'sqlite';
  readonly location: string;
  private readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteAuditStore['prepare']>;
  private closed = false;
  /** Set by a failed fsync: no later write can be trusted as durable. */
  private syncFailed: unknown = null;
  /** The WAL, open from the first write on (null: not opened yet, or it did not exist then). */
  private wal: Promise<FileHandle | null> | null = null;
  /** Whether the folder has been fsynced since the WAL file was first seen (its directory entry). */
  private dirSynced = false;

  private constructor(db: Database.Database, location: string) {
    this.db = db;
    this.location = location;
    this.stmts = this.prepare();
  }

  /**
   * Opens (and by default creates) the store, in a folder that must exist. Throws
   * ERR_AUDIT_UNAVAILABLE, ERR_FILE_NOT_FOUND (no such log, or no such folder), or ERR_IO (a file
   * where the folder should be).
   */
  static open(options: SqliteStoreOptions): SqliteAuditStore {
    const create = options.create ?? true;
    const from = options.option === undefined ? '' : ` (${options.option})`;
    let db: Database.Database;
    try {
      if (create) requireOutputFolderSync(options.path, { what: 'audit log', option: options.option });
      db = new Database(options.path, { fileMustExist: !create, timeout: options.busyTimeoutMs ?? 10_000 });
    } catch (e) {
      // better-sqlite3 refuses a missing folder itself, with a TypeError that has no code.
      if (
        !create &&
        ((e as { code?: unknown }).code === 'SQLITE_CANTOPEN' || !existsSync(dirname(options.path)))
      )
        throw new BulwarkError('ERR_FILE_NOT_FOUND', `audit log not found: ${options.path}${from}`, {
          details: {
            path: options.path,
            ...(options.option === undefined ? {} : { option: options.option }),
          },
        });
      throw sqliteError(e, options.path, 'open the database');
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // 32 MiB of page cache keeps the id index and the tail of the tree in memory on large logs.
      db.pragma('cache_size = -32768');
      db.transaction(() => {
        db.exec(SCHEMA);
        db.prepare('INSERT OR IGNORE INTO state (id, size, root, frontier) VALUES (0, 0, ?, ?)').run(
          EMPTY_ROOT,
          Buffer.alloc(0),
        );
      }).immediate();
      // From here on commits write the WAL without fsync; every write method fsyncs it itself, off
      // the event loop, before resolving (see the header comment).
      db.pragma('synchronous = NORMAL');
      return new SqliteAuditStore(db, options.path);
    } catch (e) {
      db.close();
      throw sqliteError(e, options.path, 'initialise the database');
    }
  }

  private prepare() {
    const db = this.db;
    return {
      state: db.prepare<[], { size: number; root: Buffer; frontier: Buffer }>(
        'SELECT size, root, frontier FROM state WHERE id = 0',
      ),
      setState: db.prepare<[number, Buffer, Buffer]>(
        'UPDATE state SET size = ?, root = ?, frontier = ? WHERE id = 0',
      ),
      insertEntry: db.prepare<[number, string, Buffer, string]>(
        'INSERT INTO entries (idx, id, leaf, body) VALUES (?, ?, ?, ?)',
      ),
      insertRef: db.prepare<[string, number, number]>(
        'INSERT OR IGNORE INTO refs (ref, role, idx) VALUES (?, ?, ?)',
      ),
      insertNode: db.prepare<[number, number, Buffer]>(
        'INSERT OR REPLACE INTO nodes (level, idx, hash) VALUES (?, ?, ?)',
      ),
      entries: db.prepare<[number, number], EntryRow>(
        'SELECT idx, id, leaf, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx',
      ),
      leaves: db.prepare<[number, number], Buffer>(
        'SELECT leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx',
      ),
      nodes: db.prepare<[number, number, number], { idx: number; hash: Buffer }>(
        'SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx',
      ),
      byId: db.prepare<[string], EntryRow>('SELECT idx, id, leaf, body FROM entries WHERE id = ?'),
      producer: db.prepare<[string, number], { idx: number }>(
        'SELECT idx FROM refs WHERE ref = ? AND role = 0 AND idx < ? ORDER BY idx DESC LIMIT 1',
      ),
      refs: db.prepare<[number, number], { ref: string; role: number; idx: number }>(
        'SELECT ref, role, idx FROM refs WHERE idx >= ? AND idx < ?',
      ),
      // One statement, so one snapshot: a concurrent append moves the size and its rows together.
      beyond: db.prepare<[], { size: number; entries: number; refs: number }>(
        `SELECT s.size AS size, (SELECT count(*) FROM entries WHERE idx >= s.size) AS entries,
           (SELECT count(*) FROM refs WHERE idx >= s.size) AS refs FROM state s WHERE s.id = 0`,
      ),
      addCheckpoint: db.prepare<[number, Buffer, string, string]>(
        'INSERT OR IGNORE INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)',
      ),
      checkpoints: db.prepare<[], { size: number; root: Buffer; note: string; created_at: string }>(
        'SELECT size, root, note, created_at FROM checkpoints ORDER BY size',
      ),
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      initMeta: db.prepare<[string, string]>('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
      setMeta: db.prepare<[string, string]>('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
    };
  }

  private run<T>(action: string, fn: () => T): Promise<T> {
    if (this.closed)
      return Promise.reject(new BulwarkError('ERR_AUDIT_CLOSED', `audit store ${this.location} is closed`));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(sqliteError(e, this.location, action));
    }
  }

  /**
   * A write: `fn` commits synchronously (without fsync), then the WAL is fsynced off the event loop
   * and only then does the promise resolve. A failed fsync rejects this write and every later one.
   */
  private async write<T>(action: string, fn: () => T): Promise<T> {
    if (this.syncFailed !== null) throw this.unsynced(action);
    const result = await this.run(action, fn);
    try {
      await this.syncWal();
    } catch (e) {
      this.syncFailed ??= e;
      throw this.unsynced(action);
    }
    // A concurrent write's fsync may have failed while this one's was in flight: on Linux the error
    // is reported once, to that fsync, and this one then succeeds although pages this write committed
    // may have been dropped with it. So success counts only if no fsync failed meanwhile.
    if (this.syncFailed !== null) throw this.unsynced(action);
    return result;
  }

  private unsynced(action: string): BulwarkError {
    return new BulwarkError(
      'ERR_AUDIT_UNAVAILABLE',
      `audit store ${this.location}: cannot ${action}: an earlier fsync failed, so durability is unknown; reopen the log`,
      { cause: this.syncFailed, details: { store: this.location, reason: 'fsync' } },
    );
  }

  /** fdatasync of the WAL (the main file when there is no WAL), and once of the folder holding it. */
  private async syncWal(): Promise<void> {
    this.wal ??= openFile(`${this.location}-wal`, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      return null;
    });
    let h: FileHandle | null;
    try {
      h = await this.wal;
    } catch (e) {
      this.wal = null;
      throw e;
    }
    const wal = h !== null;
    if (h === null) {
      // No WAL yet: the main file, and the WAL is looked for again next time.
      this.wal = null;
      const m = await openFile(this.location, 'r');
      try {
        await m.datasync();
      } finally {
        await m.close();
      }
    } else await h.datasync();
    if (!this.dirSynced) {
      const d = await openFile(dirname(this.location), 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
      // Only once the WAL exists: its directory entry is what this fsync makes durable.
      this.dirSynced = wal;
    }
  }

  appendBatch<T>(plan: (state: TreeState) => AppendPlan<T>): Promise<T> {
    return this.write('append', () =>
      this.db
        .transaction(() => {
          const s = this.stmts.state.get();
          if (!s) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
          const p = plan({ size: s.size, root: s.root, frontier: s.frontier });
          for (const e of p.entries) this.stmts.insertEntry.run(e.index, e.id, e.leaf, e.body);
          for (const r of p.refs) this.stmts.insertRef.run(r.ref, r.role, r.index);
          for (const n of p.nodes) this.stmts.insertNode.run(n.level, n.index, n.hash);
          this.stmts.setState.run(p.state.size, p.state.root, p.state.frontier);
          return p.result;
        })
        .immediate(),
    );
  }

  state(): Promise<TreeState> {
    return this.run('read the tree state', () => {
      const s = this.stmts.state.get();
      if (!s) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
      return { size: s.size, root: s.root, frontier: s.frontier };
    });
  }

  entries(start: number, end: number): Promise<StoredEntry[]> {
    return this.run('read entries', () => this.stmts.entries.all(start, end).map(toEntry));
  }

  leafHashes(start: number, end: number): Promise<Buffer[]> {
    return this.run(
      'read leaf hashes',
      () => this.stmts.leaves.pluck().all(start, end) as unknown as Buffer[],
    );
  }

  nodes(level: number, start: number, end: number): Promise<NodeRow[]> {
    return this.run('read tree nodes', () =>
      this.stmts.nodes.all(level, start, end).map((r) => ({ level, index: r.idx, hash: r.hash })),
    );
  }

  entryById(id: string): Promise<StoredEntry | undefined> {
    return this.run('find an entry', () => {
      const r = this.stmts.byId.get(id);
      return r ? toEntry(r) : undefined;
    });
  }

  producerOf(ref: string, before: number): Promise<number | undefined> {
    return this.run('query lineage', () => this.stmts.producer.get(ref, before)?.idx);
  }

  refs(start: number, end: number): Promise<RefRow[]> {
    return this.run('read the lineage index', () =>
      this.stmts.refs.all(start, end).map((r) => ({ ref: r.ref, role: r.role as 0 | 1, index: r.idx })),
    );
  }

  rowsBeyondHead(): Promise<{ size: number; entries: number; refs: number }> {
    return this.run('read the tree state', () => {
      const r = this.stmts.beyond.get();
      if (!r) throw new BulwarkError('ERR_AUDIT_STORE_INVALID', `${this.location}: state row missing`);
      return r;
    });
  }

  addCheckpoint(cp: StoredCheckpoint): Promise<void> {
    return this.write('store a checkpoint', () => {
      this.stmts.addCheckpoint.run(cp.size, cp.root, cp.note, cp.createdAt);
    });
  }

  checkpoints(): Promise<StoredCheckpoint[]> {
    return this.run('read checkpoints', () =>
      this.stmts.checkpoints
        .all()
        .map((r) => ({ size: r.size, root: r.root, note: r.note, createdAt: r.created_at })),
    );
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.run('read metadata', () => this.stmts.getMeta.get(key)?.value);
  }

  initMeta(key: string, value: string): Promise<string> {
    return this.write('write metadata', () => {
      this.stmts.initMeta.run(key, value);
      return (this.stmts.getMeta.get(key) as { value: string }).value;
    });
  }

  setMeta(values: Readonly<Record<string, string>>): Promise<void> {
    return this.write('write metadata', () => {
      this.db.transaction(() => {
        for (const [k, v] of Object.entries(values)) this.stmts.setMeta.run(k, v);
      })();
    });
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
    }
    const wal = this.wal;
    this.wal = null;
    return wal
      ? wal.then(
          (h) => h?.close(),
          () => undefined,
        )
      : Promise.resolve();
  }
}
