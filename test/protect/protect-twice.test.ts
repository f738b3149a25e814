import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { manifestPathOf, readManifest } from '../../src/protect/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { localKeyring, tempDir } from '../keys/helpers.js';
import { HEADER, readLines, rows, SCHEMA } from './fixture.js';

/**
 * `bulwark data protect` on a file that is already protected (its FILE.bulwark.json manifest beside
 * it): before, the ciphertext cells were encrypted a second time under a new manifest whose source
 * columns said nothing of the first, so a later reveal gave back ciphertext that looked like data.
 * Now it is ERR_DATA_ALREADY_PROTECTED naming the file and its manifest, nothing written, unless
 * --allow-protected-input asks for exactly that.
 */
const dir = tempDir('bulwark-protect-twice-');
const p = (f: string) => join(dir, f);
const auth = ['--keyring', p('keys.json'), '--passphrase-file', p('pass.txt')];
const protect = (input: string, out: string, ...extra: string[]) =>
  runBulwarkInProcess([
    'data',
    'protect',
    input,
    '--schema',
    p('schema.yaml'),
    '--out',
    out,
    ...auth,
    ...extra,
  ]);

describe('data protect of an already protected file', () => {
  before(async () => {
    writeFileSync(p('pass.txt'), 'pw\n');
    writeFileSync(p('schema.yaml'), SCHEMA);
    writeFileSync(p('tx.csv'), `${[HEADER, ...rows(40, 3)].join('\n')}\n`);
    await (await localKeyring(dir, 'keys.json', 'pw')).close();
    const r = await protect(p('tx.csv'), p('tx.p.csv'), '--row-key', 'id');
    assert.equal(r.code, 0, r.stderr);
  });

  it('is refused with ERR_DATA_ALREADY_PROTECTED naming the file and its manifest; nothing is written', async () => {
    const before = readdirSync(dir).sort();
    const r = await protect(p('tx.p.csv'), p('tx.pp.csv'), '--row-key', 'id');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_DATA_ALREADY_PROTECTED: /);
    assert.ok(r.stderr.includes(p('tx.p.csv')) && r.stderr.includes(manifestPathOf(p('tx.p.csv'))), r.stderr);
    assert.match(r.stderr, /--allow-protected-input/);
    assert.deepEqual(readdirSync(dir).sort(), before);
    assert.equal(existsSync(p('tx.pp.csv')), false);
  });

  it('--allow-protected-input protects it again under a new manifest (a chain: reveal twice)', async () => {
    const r = await protect(p('tx.p.csv'), p('tx.pp.csv'), '--row-key', 'id', '--allow-protected-input');
    assert.equal(r.code, 0, r.stderr);
    const outer = await readManifest(manifestPathOf(p('tx.pp.csv')));
    const inner = await readManifest(manifestPathOf(p('tx.p.csv')));
    assert.notEqual(outer.dataset, inner.dataset);
    // Revealing the outer layer gives back the once-protected file, byte for byte in every cell.
    const back = await runBulwarkInProcess([
      'data',
      'reveal',
      p('tx.pp.csv'),
      '--out',
      p('tx.back.csv'),
      ...auth,
    ]);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(readLines(p('tx.back.csv')), readLines(p('tx.p.csv')));
    assert.notDeepEqual(readLines(p('tx.back.csv')), readLines(p('tx.csv')));
    assert.equal(readFileSync(p('tx.csv'), 'utf8').split('\n')[0], HEADER);
  });

  it('a plain file without a manifest beside it is protected as before', async () => {
    const r = await protect(p('tx.csv'), p('tx.p2.csv'));
    assert.equal(r.code, 0, r.stderr);
  });
});
