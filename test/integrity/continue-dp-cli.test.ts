import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dpSgdAccountedEpsilon } from '../../src/privacy/index.js';
import { type CliRun, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';
import { PASS_ENV, tempDir } from '../model/helpers.js';
import {
  auditTailArgs,
  backdoored,
  DP_SCHEMA,
  fromArgs,
  mlpArgs,
  packageArgs,
  parseAuditEvents,
  protectArgs,
  rows,
  setUpPackages,
  writeCsv,
} from './helpers.js';

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

/**
 * {@link bw} in this process: for the refusals raised before the run and the read-backs of the
 * budget, the package and the log (each spawned run was 0.5 s of CPU, nearly all Node start-up).
 */
function bwHere(args: string[]) {
  return runBulwarkInProcess(args, { cwd: t.dir, env });
}

/** {@link bw} without blocking: for runs that do not depend on each other (see inParallel). */
function bwAsync(args: string[]) {
  return runBulwarkAsync(args, { cwd: t.dir, env });
}

const write = (f: string, lines: string[]) => writeCsv(p(f), lines);

/** `train --from` with DP; `extra` adds options. */
function dpFrom(from: string, data: string, out: string, extra: string[] = []) {
  return bw(dpArgs(from, data, out, extra));
}

/** The arguments of {@link dpFrom}. */
function dpArgs(from: string, data: string, out: string, extra: string[]): string[] {
  return [
    ...fromArgs(from, p(data), p('eval.csv')),
    '--schema',
    p('schema.yaml'),
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
    // Between the clean batch's and the backdoored batch's disagreement with the parent (continue-dp.test.ts).
    '0.08',
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
  ];
}

type Spend = { dataset: string; epsilon: number; operation: string };

const spendsOf = (events: { type: string; data: Spend }[]) =>
  events.filter((e) => e.type === 'privacy.spent').map((e) => e.data);

const spentArgs = ['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger];

async function spent(): Promise<number> {
  return spentOf(await bwHere(spentArgs));
}

function spentOf(r: CliRun): number {
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { spent: { epsilon: number } }).spent.epsilon;
}

/** The budget spent and the audited spends. */
async function spentAndSpends(): Promise<[number, Spend[]]> {
  const s = await bwHere(spentArgs);
  const tail = await bwHere(auditTailArgs(audit));
  return [spentOf(s), spendsOf(parseAuditEvents<Spend>(tail))];
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

before(async () => {
  writeFileSync(p('schema.yaml'), DP_SCHEMA);
  write('base.csv', rows(1500, 1));
  write('batch.csv', rows(600, 5));
  write('batch2.csv', rows(600, 8));
  write('eval.csv', rows(400, 2));
  write('poisoned.csv', backdoored(rows(600, 5), 0.12, 7));
  mkdirSync(p('out'));
  // The budget (ledger) and the keys and audit store do not depend on each other: the budget is set
  // while the keys are made (one at a time: 2 processes).
  const [budget] = await Promise.all([
    bwAsync(['query', 'budget', 'set', 'tx', '--epsilon', '6', '--delta', '1e-4', '--ledger', ledger]),
    setUpPackages(bwAsync, t.dir, audit, 'bulwark.test/continue-dp', 1),
  ]);
  assert.equal(budget.code, 0, budget.stderr);
  const parent = bw([
    '--json',
    ...mlpArgs(p('base.csv'), p('parent.onnx')),
    '--schema',
    p('schema.yaml'),
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
  ]);
  assert.equal(parent.code, 0, parent.stderr);
  parentPrivacy = (JSON.parse(parent.stdout) as { privacy: Privacy }).privacy;
  // With the log its training was recorded in: the parent's DP guarantee is signed as backed by it.
  const prot = bw([...protectArgs(t.dir, p('parent.onnx'), p('parent.bwm'), 'fraud-dp'), '--audit', audit]);
  assert.equal(prot.code, 0, prot.stderr);
});

after(() => t.cleanup());

describe('bulwark train --from MODEL --dp-epsilon (DP continuous learning, built CLI, --json)', () => {
  it('fine-tunes the ONNX parent from the same budget: ledger total = the accountants’ sum; privacy.spent audited', async () => {
    assert.equal(parentPrivacy.budget?.dataset, 'tx');
    const r = dpFrom(p('parent.onnx'), 'batch.csv', 'out/next.onnx');
    assert.equal(r.code, 0, r.stderr);
    // The gate is reported once, in the result (the text summary's line, here the JSON's `gate`), not
    // also as a note on stderr.
    assert.doesNotMatch(r.stderr, /poisoning gate/i);
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
    const [nowSpent, nowSpends] = await spentAndSpends();
    assert.ok(Math.abs(nowSpent - j.privacy.epsilon) < 1e-12, 'the budget holds parent + fine-tune');
    assert.ok(Math.abs(j.budget.remaining.epsilon - (6 - j.privacy.epsilon)) < 1e-9);
    assert.deepEqual(
      nowSpends.map((s) => [s.dataset, s.operation]),
      [
        ['tx', 'train.dp-sgd'],
        ['tx', 'train.dp-sgd'],
      ],
    );
  });

  it('fine-tunes the protected .bwm parent into a new signed package, spending from the same budget', async () => {
    const before = await spent();
    const r = dpFrom(p('parent.bwm'), 'batch2.csv', 'out/next.bwm', packageArgs(t.dir));
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { privacy: Privacy; version: string; parent: { version: string } };
    assert.equal(j.version, '1.0.1');
    assert.equal(j.parent.version, '1.0.0');
    // Three runs that only read (budget, package, log).
    const nowSpent = await bwHere(spentArgs);
    const info = await bwHere(['--json', 'model', 'inspect', p('out/next.bwm')]);
    const tail = await bwHere(auditTailArgs(audit));
    assert.ok(Math.abs(spentOf(nowSpent) - (before + accounted(j.privacy))) < 1e-12);
    assert.equal(j.privacy.epsilon, accounted(parentPrivacy) + accounted(j.privacy));
    assert.equal(info.code, 0, info.stderr);
    const m = JSON.parse(info.stdout) as {
      manifest: { lineage: { privacy: { epsilon: number }; algorithm: string } };
    };
    assert.equal(m.manifest.lineage.algorithm, 'fine-tune-dp-sgd');
    assert.equal(m.manifest.lineage.privacy.epsilon, j.privacy.epsilon);
    assert.equal(spendsOf(parseAuditEvents<Spend>(tail)).length, 3);
  });

  it('refuses over budget, a poisoned batch, a mismatch, --sanitize, a missing --max-flagged, an existing --out and the parent’s version: nothing spent or written', async () => {
    const before = await spent();
    const cases: [string[], string, number, string][] = [
      [['--dp-epsilon', '3'], 'batch.csv', 5, 'ERR_PRIVACY_BUDGET_EXCEEDED'],
      [[], 'poisoned.csv', 5, 'ERR_POISON_GATE'],
      [['--hidden', '16'], 'batch.csv', 3, 'ERR_WARM_START_MISMATCH'],
      [['--budget', 'other'], 'batch.csv', 5, 'ERR_LEDGER_MISMATCH'],
      [['--sanitize'], 'batch.csv', 2, 'ERR_DP_UNACCOUNTED'],
    ];
    for (const [extra, data, exit, code] of cases) {
      const args = dpArgs(p('parent.onnx'), data, 'out/refused.onnx', extra);
      // The poisoning gate refuses after its inspection of the batch (real work): the executable runs
      // it. The others are refused before the run: in this process.
      const r = code === 'ERR_POISON_GATE' ? bw(args) : await bwHere(args);
      assert.equal(r.code, exit, `${code}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(code));
      assert.equal(existsSync(p('out/refused.onnx')), false);
    }
    // Refusals that do not depend on the batch come before the run (the final write, or packaging,
    // would refuse too, but after the budget is spent): an existing --out, the parent's version.
    writeFileSync(p('out/taken.onnx'), 'not a model');
    const taken = await bwHere(dpArgs(p('parent.onnx'), 'batch.csv', 'out/taken.onnx', []));
    assert.equal(taken.code, 3, taken.stderr);
    assert.match(taken.stderr, /ERR_FILE_EXISTS/);
    const sameVersion = await bwHere(
      dpArgs(p('parent.bwm'), 'batch.csv', 'out/refused.bwm', [
        ...packageArgs(t.dir),
        '--model-version',
        '1.0.0',
      ]),
    );
    assert.equal(sameVersion.code, 2, sameVersion.stderr);
    assert.match(sameVersion.stderr, /ERR_USAGE.*--model-version 1\.0\.0/);
    assert.equal(existsSync(p('out/refused.bwm')), false);
    // The DP options without --max-flagged.
    const args = dpArgs(p('parent.onnx'), 'batch.csv', 'out/refused.onnx', []);
    const gate = args.indexOf('--max-flagged');
    const noGate = await bwHere([...args.slice(0, gate), ...args.slice(gate + 2)]);
    assert.equal(noGate.code, 2);
    assert.match(noGate.stderr, /--max-flagged/);
    const [afterSpent, afterSpends] = await spentAndSpends();
    assert.equal(afterSpent, before);
    assert.equal(afterSpends.length, 3);
  });

  it('--trainer-key: a parent record its training job did not sign backs nothing (refused before any spend); the option applies to a DP fine-tune with a log only', async () => {
    const keygen = await bwHere([
      'audit',
      'keygen',
      '--name',
      'bulwark.test/trainer',
      '--out',
      p('trainer.key'),
    ]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const before = await spent();
    // The parent was trained with --audit but without --record-key: its record is unsigned.
    const r = await bwHere(
      dpArgs(p('parent.onnx'), 'batch.csv', 'out/trainer.onnx', ['--trainer-key', p('trainer.key.pub')]),
    );
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      r.stderr,
      /ERR_LINEAGE_UNBACKED.*backed by no record of its training \(the parent's model\.trained record .* is not signed by its writer .*\(--trainer-key\)\)/,
    );
    assert.equal(existsSync(p('out/trainer.onnx')), false);
    assert.equal(await spent(), before);
    // Without DP, or without a log, the option has nothing to check: a usage error, not ignored.
    const plain = await bwHere([
      ...fromArgs(p('parent.onnx'), p('batch.csv'), p('eval.csv')),
      '--trainer-key',
      p('trainer.key.pub'),
      '--out',
      p('out/plain-trainer.onnx'),
    ]);
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(plain.stderr, /ERR_USAGE.*--trainer-key applies to a DP fine-tune/);
    const noLog = dpArgs(p('parent.onnx'), 'batch.csv', 'out/trainer.onnx', [
      '--trainer-key',
      p('trainer.key.pub'),
    ]);
    const at = noLog.indexOf('--audit');
    const r2 = await bwHere([...noLog.slice(0, at), ...noLog.slice(at + 2)]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /ERR_USAGE.*--trainer-key needs --audit/);
  });

  it('a parent whose DP guarantee no record backs: refused before any spend, or with --accept-claims recorded and packaged as claimed', async () => {
    // The fine-tunes above were recorded in the log that holds the parent's training: backed.
    type Trained = { modelDigest: string; hyperparameters: Record<string, unknown> };
    const trained = parseAuditEvents<Trained>(await bwHere(auditTailArgs(audit))).filter(
      (e) => e.type === 'model.trained' && e.data.hyperparameters['continuedFrom'] !== undefined,
    );
    assert.deepEqual(
      trained.map((e) => e.data.hyperparameters['parentPrivacy']),
      ['backed', 'backed'],
    );
    // Another log, which never saw the parent's training: its bulwark.privacy metadata is only a claim.
    const other = p('other-audit.db');
    const created = await bwHere(['audit', 'checkpoint', '--store', other, '--signing-key', p('log.key')]);
    assert.equal(created.code, 0, created.stderr);
    const withLog = (args: string[], log: string) =>
      args.map((a, i) => (args[i - 1] === '--audit' ? log : a));
    const before = await spent();
    const refused = await bwHere(
      withLog(dpArgs(p('parent.onnx'), 'batch.csv', 'out/claimed.onnx', []), other),
    );
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(
      refused.stderr,
      /ERR_LINEAGE_UNBACKED.*--from .*parent\.onnx: the parent's differential-privacy guarantee is backed by no record/,
    );
    assert.equal(existsSync(p('out/claimed.onnx')), false);
    assert.equal(await spent(), before);
    // Accepted: the run's record says its guarantee rests on the parent's claim...
    const accepted = bw(
      withLog(dpArgs(p('parent.onnx'), 'batch.csv', 'out/claimed.onnx', ['--accept-claims']), other),
    );
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.equal((JSON.parse(accepted.stdout) as { parentPrivacy: string }).parentPrivacy, 'claimed');
    const rec = parseAuditEvents<Trained>(await bwHere(auditTailArgs(other))).filter(
      (e) => e.type === 'model.trained',
    );
    assert.equal(rec.length, 1);
    assert.equal(rec[0]?.data.hyperparameters['parentPrivacy'], 'claimed');
    // ...so that record does not make the new model's guarantee backed when it is packaged.
    const prot = [
      ...protectArgs(t.dir, p('out/claimed.onnx'), p('out/claimed.bwm'), 'fraud-dp'),
      '--audit',
      other,
    ];
    const unbacked = await bwHere(prot);
    assert.equal(unbacked.code, 5, unbacked.stderr);
    assert.match(unbacked.stderr, /ERR_LINEAGE_UNBACKED.*composes with its parent's, which nothing backed/);
    const claimed = await bwHere([...prot, '--accept-claims']);
    assert.equal(claimed.code, 0, claimed.stderr);
    const info = await bwHere(['--json', 'model', 'inspect', p('out/claimed.bwm')]);
    const m = JSON.parse(info.stdout) as {
      manifest: { version: number; lineage: { evidence: { privacy: unknown } } };
    };
    assert.deepEqual(m.manifest.lineage.evidence.privacy, { status: 'claimed', source: 'parent' });
    // A release that reads manifests 1 to 3 refuses it by version, not as malformed.
    assert.equal(m.manifest.version, 4);
    // --accept-claims outside a DP fine-tune is refused, not ignored.
    const misplaced = await bwHere([...mlpArgs(p('base.csv'), p('out/plain.onnx')), '--accept-claims']);
    assert.equal(misplaced.code, 2, misplaced.stderr);
    assert.match(misplaced.stderr, /ERR_USAGE.*--accept-claims applies to a DP fine-tune/);
  });

  it("--audit-key proves the parent's training record under a signed checkpoint before anything is spent", async () => {
    const before = await spent();
    const keyed = (extra: string[], data = 'batch.csv') =>
      dpArgs(p('parent.onnx'), data, 'out/keyed.onnx', extra);
    // The checkpoint setUpPackages signed predates the parent's training: nothing proves its record
    // yet, so it is refused (without the key, the stored leaf hash alone backed it above).
    const pub = p('log.key.pub');
    let r = await bwHere(keyed(['--audit-key', pub]));
    assert.equal(r.code === 0, false, r.stderr);
    assert.match(
      r.stderr,
      /"ERR_AUDIT_CHECKPOINT_MISSING","message":"the training record of sha256:[0-9a-f]{64}/,
    );
    const cp = ['audit', 'checkpoint', '--store', audit, '--signing-key', p('log.key')];
    assert.equal((await bwHere(cp)).code, 0);
    // Another key of the same name signed no checkpoint of this log.
    const other = p('other-log.key');
    assert.equal(
      (await bwHere(['audit', 'keygen', '--name', 'bulwark.test/continue-dp', '--out', other])).code,
      0,
    );
    r = await bwHere(keyed(['--audit-key', `${other}.pub`]));
    assert.equal(r.code === 0, false, r.stderr);
    assert.match(r.stderr, /ERR_AUDIT_(CHECKPOINT_SIGNATURE|KEY_INVALID)/);
    assert.equal(existsSync(p('out/keyed.onnx')), false);
    // The right key proves it: the run goes on (here to the poisoning gate, which refuses the batch).
    // Without --json, which leaves notes out.
    r = bw(keyed(['--audit-key', pub], 'poisoned.csv').filter((a) => a !== '--json'));
    assert.match(
      r.stderr,
      /the parent's DP guarantee is backed by its model\.trained record, proved under a checkpoint signed by --audit-key/,
    );
    assert.match(r.stderr, /^bulwark: ERR_POISON_GATE: /m);
    assert.equal(await spent(), before);
    // --audit-key outside --require-provenance and a DP fine-tune is refused, not ignored; without a log too.
    const plain = await bwHere([...mlpArgs(p('base.csv'), p('out/plain.onnx')), '--audit-key', pub]);
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(
      plain.stderr,
      /ERR_USAGE.*--audit-key applies with --require-provenance, or to a DP fine-tune/,
    );
    const args = keyed(['--audit-key', pub]);
    const noLog = args.filter((a, i) => a !== '--audit' && args[i - 1] !== '--audit');
    r = await bwHere(noLog);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE.*--audit-key needs --audit/);
  });
});
