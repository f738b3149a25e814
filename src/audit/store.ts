/**
 * The storage contract of the audit log. Two implementations pass the same test suite: SQLite (the
 * embedded default, `sqlite-store.ts`) and PostgreSQL (several writers on one log, `pg-store.ts`).
 *
 * A store keeps, in one database:
 * - `entries`: index, event id, type, time, the entry bytes and their RFC 9162 leaf hash;
 * - `refs`: (reference, role, index) rows for lineage look-ups;
 * - `nodes`: a cache of perfect-subtree hashes at heights >= {@link NODE_CACHE_LEVEL} (1/128 of the
 *   leaf count), so a root or proof at any size needs O(log n) node reads plus at most one block of
 *   2^NODE_CACHE_LEVEL leaf hashes;
 * - `state`: one row with the tree size, root and right-edge frontier, which is also the lock that
 *   serialises appends from every process (SQLite `BEGIN IMMEDIATE`, PostgreSQL `FOR UPDATE`);
 * - `checkpoints`, and `meta` (format version, origin, public key).
 */

/** Subtrees at this height and above are cached in the `nodes` table. */
export const NODE_CACHE_LEVEL = 8;

/** The on-disk format identifier kept in `meta.format`. */
export const STORE_FORMAT = 'bulwark-audit/1';

/** An entry row: the event id is a column (indexed for look-ups); type and time are only in the bytes. */
export interface StoredEntry {
  index: number;
  id: string;
  body: string;
  leaf: Buffer;
}

/** The tree state row. */
export interface TreeState {
  size: number;
  root: Buffer;
  /** Concatenated right-edge hashes (see `Frontier.encode`). */
  frontier: Buffer;
}

/**
 * A reference row: role 0 = the entry produces `ref`. (What an entry uses is read from its bytes, so
 * only producers are indexed: a prediction adds no row.)
 */
export interface RefRow {
  ref: string;
  role: 0 | 1;
  index: number;
}

export interface NodeRow {
  level: number;
  index: number;
  hash: Buffer;
}

/** What one append transaction writes, computed from the locked state. */
export interface AppendPlan<T> {
  entries: StoredEntry[];
  refs: RefRow[];
  nodes: NodeRow[];
  state: TreeState;
  /** Returned to the caller after the commit. */
  result: T;
}

export interface StoredCheckpoint {
  size: number;
  root: Buffer;
  note: string;
  createdAt: string;
}

/** Storage for one log. Every method fails with ERR_AUDIT_UNAVAILABLE when the database cannot be reached. */
export interface AuditStore {
  /** `sqlite` or `postgres`. */
  readonly kind: string;
  /** Where the log is, for messages (no credentials). */
  readonly location: string;
  /**
   * Runs one durable append transaction: takes the log's write lock, reads the state, lets `plan`
   * (synchronous, pure) compute the rows, writes them and commits. Resolves only after the commit is
   * durable (SQLite: the WAL fsynced off the event loop; PostgreSQL synchronous_commit).
   */
  appendBatch<T>(plan: (state: TreeState) => AppendPlan<T>): Promise<T>;
  state(): Promise<TreeState>;
  /** Entries with `start <= index < end`, in index order. */
  entries(start: number, end: number): Promise<StoredEntry[]>;
  /** Leaf hashes with `start <= index < end`, in index order. */
  leafHashes(start: number, end: number): Promise<Buffer[]>;
  /** Cached node hashes on `level` with `start <= index < end` (missing ones absent). */
  nodes(level: number, start: number, end: number): Promise<NodeRow[]>;
  entryById(id: string): Promise<StoredEntry | undefined>;
  /** The index of the latest entry before `before` that produces `ref`. */
  producerOf(ref: string, before: number): Promise<number | undefined>;
  /** Index rows with `start <= index < end`, in any order. */
  refs(start: number, end: number): Promise<RefRow[]>;
  /**
   * In one snapshot: the tree size, and how many entry rows and index rows lie at or beyond it. A store
   * written only through {@link AuditStore.appendBatch} has none (the rows and the size commit
   * together); any there were inserted outside the log.
   */
  rowsBeyondHead(): Promise<{ size: number; entries: number; refs: number }>;
  /** Stores a checkpoint (a no-op when one for that size exists). */
  addCheckpoint(cp: StoredCheckpoint): Promise<void>;
  /** All checkpoints, by size. */
  checkpoints(): Promise<StoredCheckpoint[]>;
  getMeta(key: string): Promise<string | undefined>;
  /** Sets a meta value only when absent; returns the value now stored. */
  initMeta(key: string, value: string): Promise<string>;
  /**
   * Sets meta values, replacing what is there, in one transaction (the log's key history and its
   * current key change together when the key is rotated).
   */
  setMeta(values: Readonly<Record<string, string>>): Promise<void>;
  close(): Promise<void>;
}
