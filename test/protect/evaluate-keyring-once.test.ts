import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadSchema } from '../../src/data/index.js';
import { protectCsv } from '../../src/protect/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { countFileReads } from '../helpers/read-counter.js';
import { localKeyring, tempDir } from '../keys/helpers.js';
import { EVALUATE_FAST, HEADER, rows, SCHEMA } from './fixture.js';

/**
 * `bulwark evaluate --data X --members Y` with both files protected opens the keyring once (one scrypt
 * derivation; at a terminal, one passphrase prompt) for the two checks against their manifests. Before,
 * each file opened it anew: two reads of the passphrase, two scrypt runs, two prompts (train --from had
 * the same fault, 9f6f282).
 *
 * The observable, as in test/integrity/package-keyring-once.test.ts: reads of the passphrase file.
 * readSecret (src/keys/secret.ts) reads it once per Keyring.open through node:fs/promises' readFile;
 * this test wraps that function (counting the calls for the passphrase file, passing every call
 * through) and publishes it to ES module importers with syncBuiltinESMExports. The keyring is the real
 * one.
 */

// Removed after the tests (tempDir registers it).
const t = tempDir('bulwark-evaluate-keyring-once-');
const p = (f: string) => join(t, f);
const pass = p('pass.txt');
const auth = ['--keyring', p('keys.json'), '--passphrase-file', pass];

let reads: ReturnType<typeof countFileReads>;

before(async () => {
  reads = countFileReads(pass);
  writeFileSync(pass, 'pw\n', { mode: 0o600 });
  writeFileSync(p('schema.yaml'), SCHEMA);
  writeFileSync(p('train.csv'), `${[HEADER, ...rows(240, 5)].join('\n')}\n`);
  writeFileSync(p('test.csv'), `${[HEADER, ...rows(120, 6, 't')].join('\n')}\n`);
  const kr = await localKeyring(t, 'keys.json', 'pw');
  try {
    const schema = await loadSchema(p('schema.yaml'));
    await protectCsv(p('train.csv'), p('train.p.csv'), { schema, keyring: kr, rowKey: 'id' });
    await protectCsv(p('test.csv'), p('test.p.csv'), { schema, keyring: kr, rowKey: 'id' });
  } finally {
    await kr.close();
  }
  const r = await runBulwarkInProcess([
    'train',
    '--data',
    p('train.csv'),
    '--label',
    'label',
    '--model',
    'mlp',
    '--hidden',
    '8',
    '--epochs',
    '20',
    '--seed',
    '1',
    '--out',
    p('m.onnx'),
  ]);
  assert.equal(r.code, 0, r.stderr);
});

after(() => {
  reads.restore();
});

const evaluate = (extra: string[]) =>
  runBulwarkInProcess([
    '--json',
    'evaluate',
    '--model',
    p('m.onnx'),
    '--data',
    p('test.p.csv'),
    '--members',
    p('train.p.csv'),
    ...EVALUATE_FAST,
    ...extra,
  ]);

describe('evaluate with a protected --data and --members', () => {
  it('opens the keyring once for both checks, and still verifies both files', async () => {
    reads.reset();
    const r = await evaluate(auth);
    assert.equal(r.code, 0, r.stderr);
    // The old code read the passphrase (and ran scrypt) twice: --data, then --members.
    assert.equal(reads.count, 1, `passphrase file read ${reads.count} times`);
    const j = JSON.parse(r.stdout) as {
      protectedData?: { verified: boolean };
      membersProtectedData?: { verified: boolean };
    };
    assert.equal(j.protectedData?.verified, true);
    assert.equal(j.membersProtectedData?.verified, true);
  });

  it('a wrong passphrase is still refused at the first use', async () => {
    writeFileSync(p('wrong.txt'), 'not it\n', { mode: 0o600 });
    const r = await evaluate(['--keyring', p('keys.json'), '--passphrase-file', p('wrong.txt')]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_PASSPHRASE_WRONG/);
  });
});
