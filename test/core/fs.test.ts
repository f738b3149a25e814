import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AtomicFileStream, requireFile, writeFileAtomic } from '../../src/core/index.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'bulwark-fs-'));
/** A regular file, so that a path under it cannot be created (ENOTDIR). */
const fileAsDir = () => {
  const p = join(fresh(), 'plain-file');
  writeFileSync(p, '');
  return p;
};

describe('atomic writes', () => {
  it('writeFileAtomic writes, creates folders, sets the mode and leaves no temp file', async () => {
    const dir = fresh();
    const p = join(dir, 'sub', 'out.txt');
    await writeFileAtomic(p, 'hello', { mode: 0o600 });
    assert.equal(readFileSync(p, 'utf8'), 'hello');
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['out.txt']);
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
    await assert.rejects(writeFileAtomic(join(fileAsDir(), 'x'), 'y'), {
      code: 'ERR_IO',
      message: /plain-file/,
    });
  });
});
