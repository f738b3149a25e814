/**
 * `bulwark model fit-detectors` then `bulwark model protect --detectors`, as a user runs them: the
 * detectors of a trained model fitted on held-out rows, sealed into its package, shown by inspect and
 * recorded (with the data they saw) in the audit log; bad bundles refused before packaging.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import { conformalFprBound } from '../../src/robust/index.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';
import { PASS_ENV, tempDir } from './helpers.js';

const t = tempDir('fit-det-cli');
const env = { [PASS_ENV]: process.env[PASS_ENV]! };
const bw = (args: string[]) => runBulwark(args, { cwd: t.dir, env });
/** {@link bw} in this process: for the refusals raised before any work and the read-backs. */
const bwHere = (args: string[]) => runBulwarkInProcess(args, { cwd: t.dir, env });
const path = (n: string) => join(t.dir, n);

/** Seeded rows: fraud likelier for large amounts of kind C. */
function csv(n: number, seed: number): string {
  const rng = new SeededRng(seed);
  const lines = ['amount,age,kind,fraud'];
  for (let i = 0; i < n; i++) {
    const amount = Math.round(rng.uniform(0, 1000) * 100) / 100;
    const age = rng.intBetween(18, 90);
    const kind = ['A', 'B', 'C'][rng.int(3)] as string;
    const z = (amount - 600) / 120 + (kind === 'C' ? 1.5 : 0) + rng.normal(0, 0.5);
    lines.push(`${amount},${age},${kind},${z > 0.5 ? 'yes' : 'no'}`);
  }
  return `${lines.join('\n')}\n`;
}

before(() => {
  writeFileSync(path('train.csv'), csv(800, 1));
  writeFileSync(path('held.csv'), csv(600, 2));
  const tr = bw([
    'train',
    '--data',
    'train.csv',
    '--label',
    'fraud',
    '--model',
    'mlp',
    '--epochs',
    '5',
    '--out',
    'm.onnx',
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  const init = bw([
    'keys',
    'init',
    '--keyring',
    'kr.json',
    '--passphrase-env',
    PASS_ENV,
    '--scrypt-log-n',
    '10',
  ]);
  assert.equal(init.code, 0, init.stderr);
  const kg = bw(['--json', 'model', 'keygen', '--out', 'signer.key']);
  assert.equal(kg.code, 0, kg.stderr);
  const lk = bw(['audit', 'keygen', '--name', 'bulwark.test/fit', '--out', 'log.key']);
  assert.equal(lk.code, 0, lk.stderr);
  const cp = bw(['audit', 'checkpoint', '--store', 'audit.db', '--signing-key', 'log.key']);
  assert.equal(cp.code, 0, cp.stderr);
});

after(() => t.cleanup());

const protectArgs = (out: string, bundle: string, extra: string[] = []) => [
  '--json',
  'model',
  'protect',
  'm.onnx',
  '--keyring',
  'kr.json',
  '--passphrase-env',
  PASS_ENV,
  '--sign-key',
  'signer.key',
  '--out',
  out,
  '--name',
  'fraud',
  '--dataset',
  'train.csv',
  '--detectors',
  bundle,
  '--audit',
  'audit.db',
  ...extra,
];
const protect = (out: string, bundle: string, extra: string[] = []) => bw(protectArgs(out, bundle, extra));

describe('bulwark model fit-detectors', () => {
  let heldDigest: string;

  it('fits the three detectors on a seeded split of held-out rows and writes a 0600 bundle', async () => {
    const r = bw(['--json', 'model', 'fit-detectors', 'm.onnx', '--data', 'held.csv', '--out', 'det.json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out.detectors), ['mahalanobis', 'stateful', 'prada']);
    assert.equal(out.fittedOn.fitRows + out.fittedOn.calibrationRows, 600);
    assert.match(out.fittedOn.datasetDigest, /^sha256:[0-9a-f]{64}$/);
    heldDigest = out.fittedOn.datasetDigest;
    for (const c of Object.values(out.detectors) as {
      fpr: number;
      threshold: number;
      n: number;
      fprBound95: number;
    }[]) {
      assert.equal(c.fpr, 0.01);
      assert.ok(Number.isFinite(c.threshold));
      // The 95 % bound on the rate on new traffic (the Beta quantile of its rank), above the target.
      assert.equal(c.fprBound95, conformalFprBound(c.n, 0.01));
      assert.ok(c.fprBound95 > 0.01);
    }
    // The text output says it, and asks for more calibration rows when the bound is over twice the target.
    const text = await bwHere([
      'model',
      'fit-detectors',
      'm.onnx',
      '--data',
      'held.csv',
      '--out',
      'det-text.json',
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /on new traffic below \d+\.\d\d % with 95 % confidence/);
    assert.equal(statSync(path('det.json')).mode & 0o777, 0o600);
    // Seeded: the same command gives the same bundle.
    const again = bw(['model', 'fit-detectors', 'm.onnx', '--data', 'held.csv', '--out', 'det2.json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(readFileSync(path('det2.json'), 'utf8'), readFileSync(path('det.json'), 'utf8'));
  });

  it('protect --detectors seals the bundle into the package; inspect shows it, the audit log names its data', async () => {
    const p = protect('m.bwm', 'det.json');
    assert.equal(p.code, 0, p.stderr);
    const made = JSON.parse(p.stdout);
    assert.deepEqual(made.manifest.detectors.kinds, ['mahalanobis', 'stateful', 'prada']);
    assert.equal(made.manifest.version, 2);
    const i = bw(['model', 'inspect', 'm.bwm']);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /detectors: {4}mahalanobis, stateful, prada \(\d+ bytes, encrypted and signed/);
    const tail = await bwHere(['--json', 'audit', 'tail', '--store', 'audit.db']);
    assert.equal(tail.code, 0, tail.stderr);
    const packaged = (JSON.parse(tail.stdout) as { type: string; data: Record<string, string> }[]).find(
      (e) => e.type === 'model.packaged',
    );
    assert.equal(packaged?.data['detectorsDatasetDigest'], heldDigest);
  });

  it('fits from a package (its public manifest) and seals the bundle into a fine-tuned package; warns when a fine-tune drops its parent detectors', async () => {
    const kg = JSON.parse(bw(['--json', 'model', 'keygen', '--out', 'signer2.key']).stdout);
    writeFileSync(
      path('trust.yaml'),
      `version: 1\nsigners:\n  - name: t\n    publicKeyFile: signer2.key.pub\n    keyId: ${kg.keyId}\n    models: ["fraud"]\n`,
    );
    const p = protect('m2.bwm', 'det.json', ['--sign-key', 'signer2.key']);
    assert.equal(p.code, 0, p.stderr);
    const r = bw([
      '--json',
      'model',
      'fit-detectors',
      'm2.bwm',
      '--data',
      'held.csv',
      '--out',
      'det-pkg.json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).notes.join('\n'), /use the labels as the predicted classes/);
    // Same preprocessing, labels for PRADA's classes: the Mahalanobis state equals the ONNX run's.
    const fromPkg = JSON.parse(readFileSync(path('det-pkg.json'), 'utf8'));
    const fromOnnx = JSON.parse(readFileSync(path('det.json'), 'utf8'));
    assert.deepEqual(fromPkg.detectors.mahalanobis, fromOnnx.detectors.mahalanobis);
    writeFileSync(path('batch2.csv'), csv(400, 3));
    writeFileSync(path('eval.csv'), csv(400, 4));
    const tune = (out: string, extra: string[]) =>
      bw([
        '--json',
        'train',
        '--from',
        'm2.bwm',
        '--data',
        'batch2.csv',
        '--eval',
        'eval.csv',
        '--label',
        'fraud',
        '--keyring',
        'kr.json',
        '--passphrase-env',
        PASS_ENV,
        '--trust',
        'trust.yaml',
        '--sign-key',
        'signer2.key',
        '--out',
        out,
        ...extra,
      ]);
    const without = tune('m3.bwm', []);
    assert.equal(without.code, 0, without.stderr);
    assert.match(
      JSON.parse(without.stdout).notes.join('\n'),
      /the parent carried detectors \(mahalanobis, stateful, prada\); .*m3\.bwm has none/,
    );
    const withDet = tune('m4.bwm', ['--detectors', 'det-pkg.json']);
    assert.equal(withDet.code, 0, withDet.stderr);
    const i = JSON.parse((await bwHere(['--json', 'model', 'inspect', 'm4.bwm'])).stdout);
    assert.deepEqual(i.manifest.detectors.kinds, ['mahalanobis', 'stateful', 'prada']);
    assert.equal(i.manifest.lineage.parent.name, 'fraud');
  });

  it('refuses a bundle that would flag nothing, before packaging, naming --detectors', async () => {
    const b = JSON.parse(readFileSync(path('det.json'), 'utf8'));
    b.detectors.mahalanobis.calibration.threshold = null;
    writeFileSync(path('bad.json'), JSON.stringify(b));
    const p = await bwHere(protectArgs('bad.bwm', 'bad.json'));
    assert.equal(p.code, 3, p.stderr);
    const err = JSON.parse(p.stderr).error;
    assert.equal(err.code, 'ERR_DETECTOR_STATE');
    assert.match(err.message, /^--detectors: bad\.json: .*no finite threshold/);
    assert.throws(() => statSync(path('bad.bwm')), /ENOENT/);
    writeFileSync(path('notjson.json'), '{');
    const q = await bwHere(protectArgs('bad.bwm', 'notjson.json'));
    assert.match(JSON.parse(q.stderr).error.message, /^--detectors: notjson\.json is not JSON/);
  });

  it('refuses bad arguments with a message naming them', async () => {
    const fitArgs = (out: string, ...extra: string[]) => [
      'model',
      'fit-detectors',
      'm.onnx',
      '--data',
      'held.csv',
      '--out',
      out,
      ...extra,
    ];
    const fit = (out: string, ...extra: string[]) => bw(fitArgs(out, ...extra));
    // Refused before any work: in this process.
    const same = await bwHere(fitArgs('held.csv', '--force'));
    assert.notEqual(same.code, 0);
    assert.match(same.stderr, /--out held\.csv is also an input/);
    const kinds = await bwHere(fitArgs('x.json', '--kinds', 'squeeze'));
    assert.notEqual(kinds.code, 0);
    assert.match(kinds.stderr, /--kinds.*expected some of mahalanobis, stateful, prada/);
    const few = fit('x.json', '--fpr', '0.0001');
    assert.equal(few.code, 3, few.stderr);
    assert.match(few.stderr, /ERR_DETECTOR_STATE: .*calibrate it on more rows/);
    assert.throws(() => statSync(path('x.json')), /ENOENT/);
  });

  it('too few rows or too short streams: one line naming --data or --stream-length, exit 2, nothing written', async () => {
    const lines = readFileSync(path('held.csv'), 'utf8').trimEnd().split('\n');
    writeFileSync(path('three.csv'), `${lines.slice(0, 4).join('\n')}\n`);
    writeFileSync(path('forty.csv'), `${lines.slice(0, 41).join('\n')}\n`);
    // Refused before any fitting: in this process.
    const fit =
      (data: string, ...extra: string[]) =>
      () =>
        bwHere(['model', 'fit-detectors', 'm.onnx', '--data', data, '--out', 'few.json', ...extra]);
    const cases: [ReturnType<typeof fit>, RegExp][] = [
      [fit('three.csv'), /^bulwark: ERR_INVALID_ARGUMENT: --data three\.csv: expected at least 4 rows/],
      [
        fit('forty.csv'),
        /^bulwark: ERR_INVALID_ARGUMENT: --data forty\.csv: the stateful detector needs benign streams of more than k \(20\) queries .*give more rows or a larger calibration share$/,
      ],
      [
        fit('held.csv', '--stream-length', '2'),
        /^bulwark: ERR_INVALID_ARGUMENT: --stream-length: the stateful detector needs .*, got streams of 2$/,
      ],
      [
        fit('held.csv', '--calibration-share', '0.01', '--kinds', 'mahalanobis', '--stream-length', '7'),
        /^bulwark: ERR_INVALID_ARGUMENT: --stream-length: expected an integer in \[2, 6\], got 7$/,
      ],
      // The benign streams are held in memory: 100000 streams of 300 queries of 5 features ran out of
      // heap or for many minutes (with no turn for SIGTERM); refused at once.
      [
        fit('held.csv', '--streams', '100000'),
        /^bulwark: ERR_INVALID_ARGUMENT: --streams: expected at most 44739 streams of 300 queries of 5 features/,
      ],
    ];
    for (const [run, message] of cases) {
      const r = await run();
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr.trim(), message);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
      assert.throws(() => statSync(path('few.json')), /ENOENT/);
    }
  });
});
