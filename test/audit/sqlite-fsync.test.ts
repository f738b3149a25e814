/**
 * A failed fsync of the SQLite store's WAL is sticky, and fails the writes whose fsync was in flight
 * with it: on Linux a writeback error is reported once, to one fsync, and the next fsync of the file
 * succeeds although the dropped pages held committed data of both writes. The fault is injected at
 * the store's fsync step only (the database is real SQLite): a disk that fails on demand is not
 * available to the test suite.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteAuditStore } from '../../src/audit/index.js';

interface Syncing {
  syncWal(): Promise<void>;
}

describe('SQLite audit store: a failed WAL fsync', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-fsync-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fails the concurrent write whose own fsync then succeeds, and every later write', async () => {
    const store = SqliteAuditStore.open({ path: join(dir, 'audit.db') });
    try {
      const s = store as unknown as Syncing;
      const real = s.syncWal.bind(store);
      let calls = 0;
      let releaseSecond!: () => void;
      const second = new Promise<void>((r) => {
        releaseSecond = r;
      });
      s.syncWal = async () => {
        const n = calls++;
        if (n === 0) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        // The second fsync runs after the first failed, and succeeds (as Linux reports an error once).
        await second;
        return real();
      };
      // Both writes commit before either fsync runs.
      const a = store.initMeta('a', '1');
      const b = store.initMeta('b', '2');
      await assert.rejects(a, { code: 'ERR_AUDIT_UNAVAILABLE' });
      releaseSecond();
      await assert.rejects(b, { code: 'ERR_AUDIT_UNAVAILABLE' });
      assert.equal(calls, 2);
      // Sticky: no later write is attempted.
      await assert.rejects(store.initMeta('c', '3'), { code: 'ERR_AUDIT_UNAVAILABLE' });
      assert.equal(calls, 2);
    } finally {
      await store.close();
    }
  });

  it('a reopened store writes again', async () => {
    const store = SqliteAuditStore.open({ path: join(dir, 'audit.db') });
    try {
      assert.equal(await store.initMeta('d', '4'), '4');
    } finally {
      await store.close();
    }
  });
});
