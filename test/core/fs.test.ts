import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  AtomicFileStream,
  lockFile,
  readInputFile,
  requireFile,
  requireOutputFolder,
  requireOutputFolderSync,
  writeFileAtomic,
} from '../../src/core/index.js';
import { loadSchema } from '../../src/data/index.js';
import { Keyring } from '../../src/keys/index.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'bulwark-fs-'));
/** A regular file, so that a path under it cannot be created (ENOTDIR). */
const fileAsDir = () => {
  const p = join(fresh(), 'plain-file');
  writeFileSync(p, '');
  return p;
};

describe('atomic writes', () => {
  it('writeFileAtomic writes, sets the mode and leaves no temp file', async () => {
    const dir = fresh();
    const p = join(dir, 'out.txt');
    await writeFileAtomic(p, 'hello', { mode: 0o600 });
    assert.equal(readFileSync(p, 'utf8'), 'hello');
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['out.txt']);
  });

  it('a missing folder is ERR_FILE_NOT_FOUND and nothing is created, unless createFolders says so', async () => {
    const dir = fresh();
    const p = join(dir, 'typo', 'deeper', 'out.txt');
    for (const write of [
      () => writeFileAtomic(p, 'hello'),
      () => AtomicFileStream.create(p).then((s) => s.commit()),
    ]) {
      await assert.rejects(write(), {
        code: 'ERR_FILE_NOT_FOUND',
        message: `cannot write ${p}: no such folder: ${join(dir, 'typo', 'deeper')} (create it first)`,
      });
      assert.deepEqual(readdirSync(dir), []);
    }
    await writeFileAtomic(p, 'hello', { createFolders: true });
    assert.equal(readFileSync(p, 'utf8'), 'hello');
    const q = join(dir, 'other', 'out.txt');
    const s = await AtomicFileStream.create(q, { createFolders: true });
    s.stream.write('streamed');
    await s.commit();
    assert.equal(readFileSync(q, 'utf8'), 'streamed');
    assert.deepEqual(readdirSync(dir).sort(), ['other', 'typo']);
  });

  it('requireOutputFolder and requireOutputFolderSync: the same check, naming what and where from', async () => {
    const dir = fresh();
    const p = join(dir, 'typo', 'audit.db');
    const target = { what: 'audit log', option: '--store' };
    const missing = {
      code: 'ERR_FILE_NOT_FOUND',
      message: `cannot write audit log ${p} (--store): no such folder: ${join(dir, 'typo')} (create it first)`,
      details: { path: join(dir, 'typo'), option: '--store' },
    };
    await assert.rejects(requireOutputFolder(p, target), missing);
    assert.throws(() => requireOutputFolderSync(p, target), missing);
    assert.throws(() => requireOutputFolderSync(p), {
      code: 'ERR_FILE_NOT_FOUND',
      message: `cannot write ${p}: no such folder: ${join(dir, 'typo')} (create it first)`,
    });
    assert.deepEqual(readdirSync(dir), []);
    await requireOutputFolder(join(dir, 'here.db'), target);
    requireOutputFolderSync(join(dir, 'here.db'), target);
    for (const q of [join(fileAsDir(), 'x'), join(fileAsDir(), 'sub', 'x')]) {
      const inTheWay = {
        code: 'ERR_IO',
        message: /^cannot write audit log .* \(--store\): .* is not a folder \(a file is in the way\)$/,
      };
      await assert.rejects(requireOutputFolder(q, target), inTheWay);
      assert.throws(() => requireOutputFolderSync(q, target), inTheWay);
    }
  });

  it('noClobber refuses to overwrite', async () => {
    const dir = fresh();
    const p = join(dir, 'x');
    writeFileSync(p, 'old');
    await assert.rejects(writeFileAtomic(p, 'new', { noClobber: true }), { code: 'ERR_FILE_EXISTS' });
    assert.equal(readFileSync(p, 'utf8'), 'old');
  });

  it('AtomicFileStream: nothing at the target until commit; abort leaves the old file and no temp', async () => {
    const dir = fresh();
    const p = join(dir, 'big.csv');
    writeFileSync(p, 'previous');
    const s = await AtomicFileStream.create(p);
    s.stream.write('a,b\n1,2\n');
    assert.equal(readFileSync(p, 'utf8'), 'previous');
    await s.abort();
    assert.equal(readFileSync(p, 'utf8'), 'previous');
    assert.deepEqual(readdirSync(dir), ['big.csv']);

    const t = await AtomicFileStream.create(p);
    t.stream.write('a,b\n');
    await t.commit();
    assert.equal(readFileSync(p, 'utf8'), 'a,b\n');
    assert.deepEqual(readdirSync(dir), ['big.csv']);
  });

  it('maps errors to codes naming the path', async () => {
    await assert.rejects(requireFile('/nonexistent/file.csv', 'data file'), {
      code: 'ERR_FILE_NOT_FOUND',
      message: /\/nonexistent\/file\.csv/,
    });
    await assert.rejects(requireFile(fresh(), 'data file'), {
      code: 'ERR_FILE_NOT_FOUND',
      message: /not a regular/,
    });
    for (const createFolders of [false, true]) {
      await assert.rejects(writeFileAtomic(join(fileAsDir(), 'x'), 'y', { createFolders }), {
        code: 'ERR_IO',
        message: /plain-file is not a folder \(a file is in the way\)/,
      });
      await assert.rejects(writeFileAtomic(join(fileAsDir(), 'sub', 'x'), 'y', { createFolders }), {
        code: 'ERR_IO',
        message: /plain-file\/sub is not a folder \(a file is in the way\)/,
      });
    }
  });
});

describe('file locks', () => {
  it('one holder at a time; released, the next may take it; a broken lock is reported, not thrown', async () => {
    const p = join(fresh(), 'store.json');
    const a = await lockFile(p, 'store');
    assert.equal(a.held, true);
    await assert.rejects(lockFile(p, 'store'), {
      code: 'ERR_FILE_LOCKED',
      message: /in use by another process/,
    });
    await a.release();
    assert.equal(a.held, false);
    assert.throws(() => a.assertHeld(), { code: 'ERR_FILE_LOCKED', message: /lock was lost/ });
    // A lock whose folder is removed while held is lost at its next refresh (every staleMs / 3).
    const b = await lockFile(p, 'store', 2000);
    rmSync(`${p}.lock`, { recursive: true });
    for (let i = 0; i < 50 && b.held; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(b.held, false);
    assert.throws(() => b.assertHeld(), { code: 'ERR_FILE_LOCKED' });
    await b.release();
  });

  it('noClobber: a target created after the check is not replaced at commit', async () => {
    const dir = fresh();
    const p = join(dir, 'key.pem');
    const s = await AtomicFileStream.create(p, { noClobber: true });
    s.stream.write('ours');
    writeFileSync(p, 'theirs');
    await assert.rejects(s.commit(), { code: 'ERR_FILE_EXISTS' });
    assert.equal(readFileSync(p, 'utf8'), 'theirs');
    assert.deepEqual(readdirSync(dir), ['key.pem']);
  });
});

describe('input files', () => {
  it('a FIFO, a device or a folder is refused at once instead of blocking (keyring, schema too)', async () => {
    const dir = fresh();
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    for (const p of [fifo, '/dev/zero', dir])
      await assert.rejects(readInputFile(p, 'schema', 'utf8'), {
        code: 'ERR_FILE_NOT_FOUND',
        message: /not a regular file/,
      });
    await assert.rejects(Keyring.open(fifo), { code: 'ERR_FILE_NOT_FOUND' });
    await assert.rejects(loadSchema(fifo), { code: 'ERR_FILE_NOT_FOUND' });
    const f = join(dir, 'ok.txt');
    writeFileSync(f, 'hello');
    assert.equal(await readInputFile(f, 'text', 'utf8'), 'hello');
    assert.deepEqual(await readInputFile(f, 'bytes'), Buffer.from('hello'));
  });
});
