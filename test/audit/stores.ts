/**
 * Store fixtures for the shared audit store suite: a fresh SQLite file, or a fresh PostgreSQL schema
 * (dropped afterwards), plus raw SQL access for the tamper tests.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { AuditStoreSpec } from '../../src/audit/index.js';

/** The PostgreSQL the tests use (CI starts it with scripts/services.sh). */
export const PG_URL = process.env['BULWARK_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface StoreFixture {
  readonly name: 'sqlite' | 'postgres';
  readonly spec: AuditStoreSpec;
  /** Runs SQL against the log's tables (unqualified names). */
  exec(sql: string, params?: unknown[]): Promise<void>;
  cleanup(): Promise<void>;
}

let counter = 0;

export function sqliteFixture(): StoreFixture {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-'));
  const path = join(dir, 'audit.db');
  return {
    name: 'sqlite',
    spec: { kind: 'sqlite', path },
    async exec(sql, params = []) {
      const db = new Database(path);
      try {
        db.prepare(sql).run(...params);
      } finally {
        db.close();
      }
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pgFixture(): StoreFixture {
  const schema = `audit_t_${process.pid}_${Date.now() % 1_000_000}_${counter++}`;
  return {
    name: 'postgres',
    spec: { kind: 'postgres', url: PG_URL, schema },
    async exec(sql, params = []) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        await c.query(`SET search_path TO ${schema}`);
        await c.query(sql, params);
      } finally {
        await c.end();
      }
    },
    async cleanup() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

export const FIXTURES = [sqliteFixture, pgFixture] as const;

export const WRITER = join(import.meta.dirname, 'fixtures', 'writer.mjs');

export interface WriterOptions {
  store: AuditStoreSpec;
  origin: string;
  skey?: string;
  count: number;
  window: number;
  checkpointEvery?: number;
  tag: string;
}

/** Spawns a writer process; `acks` fills with acknowledged ids as they are printed. */
export function spawnWriter(opts: WriterOptions) {
  const child = spawn(process.execPath, [WRITER, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acks: { id: string; index: number }[] = [];
  let buf = '';
  let stderr = '';
  let done = false;
  const listeners: (() => void)[] = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const m = /^ack (\S+) (\d+)$/.exec(line);
      if (m) acks.push({ id: m[1] as string, index: Number(m[2]) });
      else if (line === 'done') done = true;
      nl = buf.indexOf('\n');
    }
    for (const l of listeners.splice(0)) l();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    stderr += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    acks,
    exited,
    get done() {
      return done;
    },
    get stderr() {
      return stderr;
    },
    /** Resolves once at least `n` acks were printed (or the process exits). */
    async waitForAcks(n: number): Promise<void> {
      let ended = false;
      void exited.then(() => {
        ended = true;
        for (const l of listeners.splice(0)) l();
      });
      while (acks.length < n && !ended) await new Promise<void>((r) => listeners.push(r));
    },
  };
}

/**
 * Inside a `describe`: a maker of fresh stores of one kind, each cleaned up after that suite (tables
 * dropped, files removed).
 */
export function freshStores(make: () => StoreFixture): () => StoreFixture {
  const fixtures: StoreFixture[] = [];
  after(async () => {
    for (const fx of fixtures) await fx.cleanup();
  });
  return () => {
    const fx = make();
    fixtures.push(fx);
    return fx;
  };
}
