import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog, generateSignerKey, SqliteAuditStore } from '../../src/audit/index.js';

const ORIGIN = 'bulwark.test/folder';

describe('SQLite audit store: the folder of a new log is never created', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-folder-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a new log in a missing folder is ERR_FILE_NOT_FOUND naming the folder, and nothing is created', async () => {
    const missing = join(dir, 'bulwrak', 'deeper');
    const path = join(missing, 'audit.db');
    assert.throws(() => SqliteAuditStore.open({ path }), {
      code: 'ERR_FILE_NOT_FOUND',
      message: `cannot write audit log ${path}: no such folder: ${missing} (create it first)`,
    });
    const { signer } = generateSignerKey(ORIGIN);
    await assert.rejects(AuditLog.open({ store: { kind: 'sqlite', path }, origin: ORIGIN, signer }), {
      code: 'ERR_FILE_NOT_FOUND',
      message: `cannot write audit log ${path}: no such folder: ${missing} (create it first)`,
    });
    assert.equal(existsSync(join(dir, 'bulwrak')), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('the error names the option or configuration key the path came from', () => {
    const path = join(dir, 'typo', 'audit.db');
    assert.throws(
      () => SqliteAuditStore.open({ path, option: 'audit.store' }),
      (e: unknown) => {
        const err = e as { code: string; message: string; details: Record<string, unknown> };
        assert.equal(err.code, 'ERR_FILE_NOT_FOUND');
        assert.equal(
          err.message,
          `cannot write audit log ${path} (audit.store): no such folder: ${join(dir, 'typo')} (create it first)`,
        );
        assert.deepEqual(err.details, { path: join(dir, 'typo'), option: 'audit.store' });
        return true;
      },
    );
    assert.equal(existsSync(join(dir, 'typo')), false);
  });

  it('a new log in an existing folder is created; an existing log opens, with or without create', async () => {
    const path = join(dir, 'audit.db');
    const { signer } = generateSignerKey(ORIGIN);
    const log = await AuditLog.open({ store: { kind: 'sqlite', path }, origin: ORIGIN, signer });
    await log.append({
      type: 'key.created',
      data: { keyId: 'k1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
    });
    await log.close();
    for (const create of [true, false]) {
      const again = await AuditLog.open({ store: { kind: 'sqlite', path, create } });
      assert.equal((await again.tail(5)).length, 1);
      await again.close();
    }
  });

  it('a file where the folder should be is ERR_IO (a file is in the way)', () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    for (const path of [join(file, 'audit.db'), join(file, 'sub', 'audit.db')]) {
      assert.throws(() => SqliteAuditStore.open({ path, option: '--store' }), {
        code: 'ERR_IO',
        message:
          /^cannot write audit log .* \(--store\): .*plain-file(\/sub)? is not a folder \(a file is in the way\)$/,
      });
    }
  });

  it('a reader (create: false) of a missing log is ERR_FILE_NOT_FOUND naming the option', () => {
    const path = join(dir, 'nowhere', 'audit.db');
    assert.throws(() => SqliteAuditStore.open({ path, create: false, option: '--audit' }), {
      code: 'ERR_FILE_NOT_FOUND',
      message: `audit log not found: ${path} (--audit)`,
    });
    assert.equal(existsSync(join(dir, 'nowhere')), false);
  });
});
