import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dpSgdAccountedEpsilon } from '../../src/privacy/index.js';
import { runBulwark } from '../helpers/cli.js';
import { PASS_ENV, tempDir } from '../model/helpers.js';
import { backdoored, DP_SCHEMA, HEADER, rows } from './helpers.js';

/**
 * `bulwark train --from MODEL --dp-epsilon …` through the built CLI with --json, each step a separate
 * process: a DP-trained parent (ONNX, then protected as a .bwm), DP fine-tunes that spend from the
 * parent's ledger budget (the ledger's total checked against the accountant), `privacy.spent` events in
 * the audit log, and the refusals (over budget, poisoned batch, architecture, --sanitize, no gate limit).
 */

const t = tempDir('continue-dp');
const env = { [PASS_ENV]: process.env[PASS_ENV] as string };
const p = (f: string) => join(t.dir, f);
const ledger = p('ledger.sqlite');
const audit = p('audit.db');

function bw(args: string[]) {
  return runBulwark(args, { cwd: t.dir, env });
}

const write = (f: string, lines: string[]) => writeFileSync(p(f), `${[HEADER, ...lines].join('\n')}\n`);

/** `train --from` with DP; `extra` adds options. */
function dpFrom(from: string, data: string, out: string, extra: string[] = []) {
  return bw([
    '--json',
    'train',
    '--from',
    from,
    '--data',
    p(data),
    '--schema',
    p('schema.yaml'),
    '--eval',
    p('eval.csv'),
    '--label',
    'label',
    '--dp-epsilon',
    '1',
    '--dp-delta',
    '1e-5',
    '--epochs',
    '3',
    '--batch-size',
    '60',
    '--lr',
    '0.03',
    '--solver',
    'sgd',
    '--seed',
    '3',
    '--seeded-noise',
    '11',
    '--max-flagged',
    '0.22',
    '--max-clean-drop',
    '0.03',
    '--max-robust-drop',
    '0.05',
    '--ledger',
    ledger,
    '--audit',
    audit,
    '--out',
    p(out),
    ...extra,
  ]);
}

function spends(): { dataset: string; epsilon: number; operation: string }[] {
  const r = bw(['--json', 'audit', 'tail', '--store', audit, '--count', '100000']);
  assert.equal(r.code, 0, r.stderr);
  return (
    JSON.parse(r.stdout) as { type: string; data: { dataset: string; epsilon: number; operation: string } }[]
  )
    .filter((e) => e.type === 'privacy.spent')
    .map((e) => e.data);
}

function spent(): number {
  const r = bw(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { spent: { epsilon: number } }).spent.epsilon;
}

interface Privacy {
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  samplingRate: number;
  steps: number;
  run?: { epsilon: number; delta: number };
  parent?: { epsilon: number; delta: number };
  budget?: { ledger: string; dataset: string };
}

const accounted = (q: Privacy) =>
  dpSgdAccountedEpsilon(q.noiseMultiplier, q.samplingRate, q.steps, 1e-5, 'rdp');

let parentPrivacy: Privacy;

before(() => {
  writeFileSync(p('schema.yaml'), DP_SCHEMA);
  write('base.csv', rows(1500, 1));
  write('batch.csv', rows(600, 5));
  write('batch2.csv', rows(600, 8));
  write('eval.csv', rows(400, 2));
  write('poisoned.csv', backdoored(rows(600, 5), 0.12, 7));
  mkdirSync(p('out'));
  const setup: string[][] = [
    ['query', 'budget', 'set', 'tx', '--epsilon', '6', '--delta', '1e-4', '--ledger', ledger],
    ['keys', 'init', '--keyring', p('kr.json'), '--passphrase-env', PASS_ENV, '--scrypt-log-n', '10'],
    ['model', 'keygen', '--out', p('signer.key')],
    ['audit', 'keygen', '--name', 'bulwark.test/continue-dp', '--out', p('log.key')],
    ['audit', 'checkpoint', '--store', audit, '--signing-key', p('log.key')],
  ];
  for (const s of setup) {
    const r = bw(s);
    assert.equal(r.code, 0, `${s.slice(0, 2).join(' ')}: ${r.stderr}`);
  }
  const parent = bw([
    '--json',
    'train',
    '--data',
    p('base.csv'),
    '--schema',
    p('schema.yaml'),
    '--label',
    'label',
    '--model',
    'mlp',
    '--hidden',
    '32',
    '--dp-epsilon',
    '2',
    '--dp-delta',
    '1e-5',
    '--epochs',
    '10',
    '--batch-size',
    '100',
    '--lr',
    '0.5',
    '--solver',
    'sgd',
    '--seed',
    '1',
    '--seeded-noise',
    '3',
    '--ledger',
    ledger,
    '--budget',
    'tx',
    '--audit',
    audit,
    '--out',
    p('parent.onnx'),
  ]);
  assert.equal(parent.code, 0, parent.stderr);
  parentPrivacy = (JSON.parse(parent.stdout) as { privacy: Privacy }).privacy;
  const prot = bw([
    'model',
    'protect',
    p('parent.onnx'),
    '--keyring',
    p('kr.json'),
    '--passphrase-env',
    PASS_ENV,
    '--sign-key',
    p('signer.key'),
    '--out',
    p('parent.bwm'),
    '--name',
    'fraud-dp',
    '--model-version',
    '1.0.0',
  ]);
  assert.equal(prot.code, 0, prot.stderr);
  writeFileSync(
    p('trust.yaml'),
    'version: 1\nsigners:\n  - name: ml-platform\n    publicKeyFile: signer.key.pub\n    models: ["fraud-*"]\n',
  );
});

after(() => t.cleanup());

describe('bulwark train --from MODEL --dp-epsilon (DP continuous learning, built CLI, --json)', () => {
  it('fine-tunes the ONNX parent from the same budget: ledger total = the accountants’ sum; privacy.spent audited', () => {
    assert.equal(parentPrivacy.budget?.dataset, 'tx');
    const r = dpFrom(p('parent.onnx'), 'batch.csv', 'out/next.onnx');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      privacy: Privacy;
      gate: { passed: boolean; maxFlagged: number };
      budget: { name: string; remaining: { epsilon: number } };
      comparison: { accepted: boolean };
      continuedFrom: string;
    };
    assert.equal(j.gate.passed, true);
    assert.equal(j.budget.name, 'tx');
    assert.equal(j.comparison.accepted, true);
    assert.match(j.continuedFrom, /^sha256:/);
    const run = accounted(j.privacy);
    assert.equal(j.privacy.run?.epsilon, run);
    assert.equal(j.privacy.epsilon, accounted(parentPrivacy) + run);
    assert.ok(Math.abs(spent() - j.privacy.epsilon) < 1e-12, 'the budget holds parent + fine-tune');
    assert.ok(Math.abs(j.budget.remaining.epsilon - (6 - j.privacy.epsilon)) < 1e-9);
    assert.deepEqual(
      spends().map((s) => [s.dataset, s.operation]),
      [
        ['tx', 'train.dp-sgd'],
        ['tx', 'train.dp-sgd'],
      ],
    );
  });

  it('fine-tunes the protected .bwm parent into a new signed package, spending from the same budget', () => {
    const before = spent();
    const r = dpFrom(p('parent.bwm'), 'batch2.csv', 'out/next.bwm', [
      '--keyring',
      p('kr.json'),
      '--passphrase-env',
      PASS_ENV,
      '--trust',
      p('trust.yaml'),
      '--sign-key',
      p('signer.key'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { privacy: Privacy; version: string; parent: { version: string } };
    assert.equal(j.version, '1.0.1');
    assert.equal(j.parent.version, '1.0.0');
    assert.ok(Math.abs(spent() - (before + accounted(j.privacy))) < 1e-12);
    assert.equal(j.privacy.epsilon, accounted(parentPrivacy) + accounted(j.privacy));
    const info = bw(['--json', 'model', 'inspect', p('out/next.bwm')]);
    assert.equal(info.code, 0, info.stderr);
    const m = JSON.parse(info.stdout) as {
      manifest: { lineage: { privacy: { epsilon: number }; algorithm: string } };
    };
    assert.equal(m.manifest.lineage.algorithm, 'fine-tune-dp-sgd');
    assert.equal(m.manifest.lineage.privacy.epsilon, j.privacy.epsilon);
    assert.equal(spends().length, 3);
  });

  it('refuses over budget, a poisoned batch, a mismatch, --sanitize and a missing --max-flagged: nothing spent or written', () => {
    const before = spent();
    const cases: [string[], string, number, string][] = [
      [['--dp-epsilon', '3'], 'batch.csv', 5, 'ERR_PRIVACY_BUDGET_EXCEEDED'],
      [[], 'poisoned.csv', 5, 'ERR_POISON_GATE'],
      [['--hidden', '16'], 'batch.csv', 3, 'ERR_WARM_START_MISMATCH'],
      [['--budget', 'other'], 'batch.csv', 5, 'ERR_LEDGER_MISMATCH'],
      [['--sanitize'], 'batch.csv', 2, 'ERR_DP_UNACCOUNTED'],
    ];
    for (const [extra, data, exit, code] of cases) {
      const r = dpFrom(p('parent.onnx'), data, 'out/refused.onnx', extra);
      assert.equal(r.code, exit, `${code}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(code));
      assert.equal(existsSync(p('out/refused.onnx')), false);
    }
    const noGate = bw([
      'train',
      '--from',
      p('parent.onnx'),
      '--data',
      p('batch.csv'),
      '--schema',
      p('schema.yaml'),
      '--eval',
      p('eval.csv'),
      '--label',
      'label',
      '--dp-epsilon',
      '1',
      '--ledger',
      ledger,
      '--out',
      p('out/refused.onnx'),
    ]);
    assert.equal(noGate.code, 2);
    assert.match(noGate.stderr, /--max-flagged/);
    assert.equal(spent(), before);
    assert.equal(spends().length, 3);
  });
});
