import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { localKeyring, tempDir } from '../keys/helpers.js';
import { HEADER, rows, SCHEMA } from './fixture.js';

/**
 * `bulwark data protect` printed "  10000 rows", "  20000 rows", ... on stderr in scripts and CI (a
 * 1,000,000-row file: 100 lines), while every other command draws progress only on an interactive
 * terminal (src/cli/progress.ts). Now it is quiet there too; the summary is unchanged.
 */
const dir = tempDir('bulwark-protect-progress-');
const p = (f: string) => join(dir, f);

describe('data protect progress', () => {
  before(async () => {
    writeFileSync(p('pass.txt'), 'pw\n');
    writeFileSync(p('schema.yaml'), SCHEMA);
    writeFileSync(p('tx.csv'), `${[HEADER, ...rows(20_000, 5)].join('\n')}\n`);
    await (await localKeyring(dir, 'keys.json', 'pw')).close();
  });

  it('prints no per-10,000-row lines when not on a terminal (CI, pipes)', async () => {
    const r = await runBulwarkInProcess([
      'data',
      'protect',
      p('tx.csv'),
      '--schema',
      p('schema.yaml'),
      '--keyring',
      p('keys.json'),
      '--passphrase-file',
      p('pass.txt'),
      '--out',
      p('tx.p.csv'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^protected 20000 rows of /);
    assert.doesNotMatch(r.stderr, /^\s*\d+ rows$/m);
    assert.doesNotMatch(r.stdout, /^\s*\d+ rows$/m);
  });
});
