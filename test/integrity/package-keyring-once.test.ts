import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspectPackage } from '../../src/model/index.js';
import { type CliRun, runBulwarkInProcess } from '../helpers/cli.js';
import { countFileReads } from '../helpers/read-counter.js';
import { tempDir } from '../model/helpers.js';
import { HEADER, rows, trainMlpArgs } from './helpers.js';

/**
 * `bulwark train --from PARENT.bwm` with a protected --data and a protected --eval opens the keyring
 * once (one scrypt derivation; at a terminal, one passphrase prompt) for the three uses: the check of
 * each file against its manifest and the package's decryption and signing. Before, each opened it anew:
 * three reads of the passphrase, three scrypt runs, three prompts.
 *
 * The observable: reads of the passphrase file. readSecret (src/keys/secret.ts) reads it once per
 * Keyring.open, through node:fs/promises' readFile; this test wraps that function (counting the calls
 * for the passphrase file, passing every call through) and publishes it to ES module importers with
 * syncBuiltinESMExports. The keyring itself is the real one.
 */

const t = tempDir('keyring-once');
const p = (f: string) => join(t.dir, f);
const pass = p('pass.txt');
const auth = ['--keyring', p('kr.json'), '--passphrase-file', pass];
const SCHEMA = `version: 1
label: label
fields:
  - { name: id, type: string, sensitivity: personal }
  - { name: x1, type: number }
  - { name: x2, type: number }
  - { name: x3, type: number }
  - { name: x4, type: number }
  - { name: channel, type: category, categories: [web, shop, phone, kiosk] }
  - { name: hour, type: integer }
  - { name: label, type: category, categories: ['no', 'yes'] }
`;

/** Rows of {@link rows} with a personal id column in front (unique: training leaves it out). */
function writeWithIds(path: string, lines: readonly string[], prefix: string): void {
  writeFileSync(path, `${[`id,${HEADER}`, ...lines.map((l, i) => `${prefix}${i},${l}`)].join('\n')}\n`);
}

let reads: ReturnType<typeof countFileReads>;

/** `train --from parent.bwm` on `data` with the protected --eval, writing the package `out`. */
function fromArgs(data: string, out: string): string[] {
  return [
    'train',
    '--from',
    p('parent.bwm'),
    '--data',
    p(data),
    '--eval',
    p('eval.p.csv'),
    '--label',
    'label',
    '--epochs',
    '20',
    '--lr',
    '0.003',
    '--max-clean-drop',
    '0.05',
    '--max-robust-drop',
    '0.1',
    ...auth,
    '--trust',
    p('trust.yaml'),
    '--sign-key',
    p('signer.key'),
    '--out',
    p(out),
  ];
}

async function cli(args: string[]): Promise<CliRun> {
  const r = await runBulwarkInProcess(args, { cwd: t.dir });
  assert.equal(r.code, 0, `${args.slice(0, 2).join(' ')}: ${r.stderr}`);
  return r;
}

before(async () => {
  reads = countFileReads(pass);
  writeFileSync(pass, 'keyring once passphrase\n', { mode: 0o600 });
  writeFileSync(p('schema.yaml'), SCHEMA);
  writeWithIds(p('base.csv'), rows(1200, 1), 'b');
  writeWithIds(p('batch.csv'), rows(500, 5), 'n');
  writeWithIds(p('eval.csv'), rows(400, 2), 'e');
  await cli(['keys', 'init', ...auth, '--scrypt-log-n', '10']);
  await cli(['model', 'keygen', '--out', p('signer.key')]);
  writeFileSync(
    p('trust.yaml'),
    'version: 1\nsigners:\n  - name: ml-platform\n    publicKeyFile: signer.key.pub\n    models: ["fraud-*"]\n',
  );
  await cli(trainMlpArgs(p('base.csv'), p('base.onnx')));
  await cli([
    'model',
    'protect',
    p('base.onnx'),
    ...auth,
    '--sign-key',
    p('signer.key'),
    '--out',
    p('parent.bwm'),
    '--name',
    'fraud-mlp',
    '--model-version',
    '1.0.0',
  ]);
  for (const f of ['batch', 'eval'])
    await cli([
      'data',
      'protect',
      p(`${f}.csv`),
      '--schema',
      p('schema.yaml'),
      '--out',
      p(`${f}.p.csv`),
      ...auth,
    ]);
});

after(() => {
  reads.restore();
  t.cleanup();
});

describe('train --from PARENT.bwm with protected --data and --eval', () => {
  it('opens the keyring once for both checks and the package, and still verifies both files', async () => {
    reads.reset();
    const r = await cli(['--json', ...fromArgs('batch.p.csv', 'child.bwm')]);
    // The old code read the passphrase (and ran scrypt) three times: --data, --eval, the package.
    assert.equal(reads.count, 1, `passphrase file read ${reads.count} times`);
    const j = JSON.parse(r.stdout) as {
      protectedData?: { verified: boolean };
      evalProtectedData?: { verified: boolean };
    };
    assert.equal(j.protectedData?.verified, true, r.stdout);
    assert.equal(j.evalProtectedData?.verified, true, r.stdout);
    // The package was decrypted and a new one signed with that one keyring.
    const child = await inspectPackage(p('child.bwm'));
    assert.equal(child.manifest.model.name, 'fraud-mlp');
  });

  it('a wrong passphrase is still refused, at the first protected file, and a plain --data opens it once too', async () => {
    reads.reset();
    writeFileSync(p('wrong.txt'), 'not the passphrase\n', { mode: 0o600 });
    const r = await runBulwarkInProcess(
      [
        'train',
        '--from',
        p('parent.bwm'),
        '--data',
        p('batch.p.csv'),
        '--eval',
        p('eval.p.csv'),
        '--label',
        'label',
        '--keyring',
        p('kr.json'),
        '--passphrase-file',
        p('wrong.txt'),
        '--trust',
        p('trust.yaml'),
        '--sign-key',
        p('signer.key'),
        '--out',
        p('child2.bwm'),
      ],
      { cwd: t.dir },
    );
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_PASSPHRASE_WRONG: /);
    reads.reset();
    await cli(fromArgs('batch.csv', 'child3.bwm'));
    assert.equal(reads.count, 1, `passphrase file read ${reads.count} times`);
  });
});
