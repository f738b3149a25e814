import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { Dataset, readCsvDataset, readDatasetWithDigest, writeParquet } from '../../src/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-digest-'));
const sha = (path: string) => `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

/** 50 rows whose column `v` is numeric until its last row: with inferRows 5 that forces a second read. */
function lateMisfit(last: string): string {
  const rows = Array.from({ length: 49 }, (_, i) => `${i},${i * 2}`);
  return `id,v\n${rows.join('\n')}\n49,${last}\n`;
}

describe('readDatasetWithDigest', () => {
  it('gives the sha256 of the bytes the dataset was built from: CSV (one read or two) and Parquet', async () => {
    const one = join(dir, 'one.csv');
    writeFileSync(one, 'a,b\n1,x\n2,y\n');
    const r1 = await readDatasetWithDigest(one);
    assert.equal(r1.digest, sha(one));
    assert.equal(r1.dataset.rowCount, 2);
    // A late string in a numeric column: the file is read twice, and the digest is still the file's.
    const two = join(dir, 'two.csv');
    writeFileSync(two, lateMisfit('n/a'));
    const reads: number[] = [];
    const r2 = await readDatasetWithDigest(two, { inferRows: 5, onBytes: (c) => reads.push(c.length) });
    assert.equal(r2.digest, sha(two));
    assert.equal(r2.dataset.column('v').type, 'string');
    assert.equal(
      reads.reduce((a, b) => a + b, 0),
      2 * readFileSync(two).length,
      'read twice',
    );
    const pq = join(dir, 'data.parquet');
    await writeParquet(pq, Dataset.fromColumns({ a: [1, 2, 3], b: ['x', 'y', null] }));
    const r3 = await readDatasetWithDigest(pq);
    assert.equal(r3.digest, sha(pq));
    assert.equal(r3.dataset.rowCount, 3);
    await assert.rejects(
      readDatasetWithDigest(one, { maxRows: 1 }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^maxRows/.test(e.message),
    );
  });

  it('refuses a file swapped between two reads (ERR_FILE_CHANGED) instead of digesting other bytes', async () => {
    const path = join(dir, 'swapped.csv');
    const other = join(dir, 'other.csv');
    writeFileSync(path, lateMisfit('n/a'));
    writeFileSync(other, lateMisfit('7').replace('0,0', '0,1000'));
    let swapped = false;
    const read = readCsvDataset(path, {
      inferRows: 5,
      onDigest: () => assert.fail('no digest for a file that changed'),
      // During the first read (its stream holds the old file open), another file takes the path.
      onBytes: () => {
        if (swapped) return;
        swapped = true;
        renameSync(other, path);
      },
    });
    await assert.rejects(
      read,
      (e: unknown) =>
        isBulwarkError(e, 'ERR_FILE_CHANGED') && /swapped\.csv changed while it was read/.test(e.message),
    );
    assert.ok(swapped);
  });
});
