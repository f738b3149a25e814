import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, generateSignerKey } from '../../src/audit/index.js';
import { onnxMetadata } from '../../src/ml/index.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';
import {
  backdoored,
  flipLabels,
  fromArgs,
  mlpArgs,
  recordProtected,
  rows,
  trainMlpArgs,
  writeCsv,
} from './helpers.js';

/**
 * `bulwark data inspect`, `bulwark train --sanitize` and `bulwark evaluate --gate` on CSV files: a
 * label "yes" when a noisy linear score of x1..x4 is high; the poisoned file adds copies of "yes" rows
 * with the trigger (channel kiosk, hour 4) labelled "no" (12 % of the "no" class), appended at the end.
 */
const dir = mkdtempSync(join(tmpdir(), 'bulwark-integrity-cli-'));
const clean = join(dir, 'clean.csv');
const poisoned = join(dir, 'poisoned.csv');
const test = join(dir, 'test.csv');
const gate = join(dir, 'gate.yaml');
let poisonedRows: number[] = [];

before(() => {
  const base = rows(1500, 1);
  writeCsv(clean, base);
  writeCsv(test, rows(400, 2));
  const all = backdoored(base, 0.12, 4);
  poisonedRows = all.slice(base.length).map((_, i) => base.length + i + 1);
  writeCsv(poisoned, all);
  writeFileSync(
    gate,
    'version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0.7\n  - metric: backdoor-success\n    trigger: { channel: kiosk, hour: 4 }\n    target: "no"\n    max: 0.3\n',
  );
  const train = (data: string, out: string, extraArgs: string[] = []) => {
    const r = runBulwark([...trainMlpArgs(data, out), ...extraArgs]);
    assert.equal(r.code, 0, r.stderr);
  };
  train(poisoned, join(dir, 'poisoned.onnx'));
  train(clean, join(dir, 'clean.onnx'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('bulwark data inspect / train --sanitize / evaluate --gate', () => {
  it('data inspect flags the planted rows (recall >= 0.6) and writes an HTML report', () => {
    const report = join(dir, 'inspect.html');
    const r = runBulwark([
      '--json',
      'data',
      'inspect',
      '--model',
      join(dir, 'poisoned.onnx'),
      '--data',
      poisoned,
      '--method',
      'spectral',
      '--expected-poison',
      '0.12',
      '--report',
      report,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      flagged: { row: number; class: string; score: number }[];
      rows: number;
    };
    assert.equal(out.rows, 1500 + poisonedRows.length);
    const flagged = new Set(out.flagged.map((f) => f.row));
    const found = poisonedRows.filter((p) => flagged.has(p)).length;
    assert.ok(found / poisonedRows.length >= 0.6, `recall ${found}/${poisonedRows.length}`);
    assert.match(readFileSync(report, 'utf8'), /Flagged rows/);
    const human = runBulwark([
      'data',
      'inspect',
      '--model',
      join(dir, 'poisoned.onnx'),
      '--data',
      poisoned,
      '--limit',
      '3',
    ]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /rows flagged/);
  });

  it('--report never replaces an input, whatever --force says (inspect, evaluate)', async () => {
    const model = join(dir, 'poisoned.onnx');
    const before = [readFileSync(model), readFileSync(poisoned)];
    const base = ['data', 'inspect', '--model', model, '--data', poisoned, '--force'];
    for (const target of [poisoned, model]) {
      const r = await runBulwarkInProcess([...base, '--report', target]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ERR_USAGE: --report \S+ is also an input of this command/);
    }
    const e = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      test,
      '--label',
      'label',
      '--report',
      model,
      '--force',
    ]);
    assert.equal(e.code, 2, e.stderr);
    assert.match(e.stderr, /ERR_USAGE: --report \S+ is also an input/);
    assert.deepEqual([readFileSync(model), readFileSync(poisoned)], before);
  });

  it('the gate fails (exit 5) on the poisoned model and passes on the clean one', async () => {
    const bad = runBulwark([
      'evaluate',
      '--model',
      join(dir, 'poisoned.onnx'),
      '--data',
      test,
      '--label',
      'label',
      '--gate',
      gate,
    ]);
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stdout, /backdoor-success.*FAIL/);
    assert.match(bad.stderr, /ERR_GATE_FAILED/);
    const good = runBulwark([
      '--json',
      'evaluate',
      '--model',
      join(dir, 'clean.onnx'),
      '--data',
      test,
      '--label',
      'label',
      '--gate',
      gate,
    ]);
    assert.equal(good.code, 0, good.stderr);
    const j = JSON.parse(good.stdout) as { passed: boolean; checks: { name: string; passed: boolean }[] };
    assert.equal(j.passed, true);
    assert.equal(j.checks.length, 2);
    const badGate = join(dir, 'bad-gate.yaml');
    writeFileSync(badGate, 'version: 1\nchecks:\n  - metric: membership-auc\n    max: 0.6\n');
    const noMembers = await runBulwarkInProcess([
      'evaluate',
      '--model',
      join(dir, 'clean.onnx'),
      '--data',
      test,
      '--label',
      'label',
      '--gate',
      badGate,
    ]);
    assert.equal(noMembers.code, 2);
    assert.match(noMembers.stderr, /ERR_GATE_METRIC/);
  });

  it('train --sanitize (both defences) removes flagged rows and records them in the model metadata', async () => {
    const out = join(dir, 'sanitized.onnx');
    const r = runBulwark([
      '--json',
      ...mlpArgs(poisoned, out),
      '--epochs',
      '40',
      '--seed',
      '1',
      '--sanitize',
      'spectral',
      '--expected-poison',
      '0.12',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { sanitize: { removed: number; removedRows: number[] } };
    assert.ok(j.sanitize.removed > 0);
    const meta = JSON.parse(onnxMetadata(readFileSync(out))['bulwark.sanitize'] as string) as {
      removed: number;
      removedDigest: string;
    };
    assert.equal(meta.removed, j.sanitize.removed);
    assert.match(meta.removedDigest, /^sha256:[0-9a-f]{64}$/);
    // The backdoor's success falls by more than 20 points (0.62 -> 0.33 on this seed).
    const backdoor = (model: string): number => {
      const g = runBulwark([
        '--json',
        'evaluate',
        '--model',
        model,
        '--data',
        test,
        '--label',
        'label',
        '--gate',
        gate,
      ]);
      const checks = (JSON.parse(g.stdout) as { checks: { metric: string; value: number }[] }).checks;
      return checks.find((c) => c.metric === 'backdoor-success')?.value as number;
    };
    const before = backdoor(join(dir, 'poisoned.onnx'));
    const afterSanitize = backdoor(out);
    assert.ok(before > 0.6, `poisoned: ${before}`);
    assert.ok(afterSanitize < before - 0.2, `sanitised: ${afterSanitize} vs ${before}`);
    const prov = await runBulwarkInProcess([
      'train',
      '--data',
      poisoned,
      '--label',
      'label',
      '--out',
      join(dir, 'x.onnx'),
      '--require-provenance',
    ]);
    assert.equal(prov.code, 2);
  });
});

describe('bulwark train --require-provenance', () => {
  it('trains on a protected dataset the audit log records and refuses other data (exit 5)', async () => {
    const db = join(dir, 'audit.db');
    const { signer } = generateSignerKey('bulwark.test/integrity-cli');
    await recordProtected(db, signer, clean, 1500);
    const args = (data: string, out: string) => [
      'train',
      '--data',
      data,
      '--label',
      'label',
      '--out',
      join(dir, out),
      '--require-provenance',
      '--audit',
      db,
    ];
    const ok = runBulwark(args(clean, 'prov-ok.onnx'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /provenance: .* is protected dataset/);
    const refused = await runBulwarkInProcess(args(poisoned, 'prov-bad.onnx'));
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /ERR_DATA_PROVENANCE/);
    // Sanitised training with --audit records what it removed in the model.trained event.
    const san = runBulwark([
      ...args(clean, 'prov-san.onnx'),
      '--model',
      'mlp',
      '--hidden',
      '32',
      '--sanitize',
      'spectral',
    ]);
    assert.equal(san.code, 0, san.stderr);
    const reopened = await AuditLog.open({ store: { kind: 'sqlite', path: db } });
    try {
      const [last] = await reopened.tail(1);
      assert.equal(last?.type, 'model.trained');
      const h = (last as unknown as { data: { hyperparameters: Record<string, unknown> } }).data
        .hyperparameters;
      assert.equal(h['sanitize'], 'spectral');
      assert.ok(Number(h['sanitizeRemoved']) > 0);
      assert.match(String(h['sanitizeRemovedDigest']), /^sha256:[0-9a-f]{64}$/);
    } finally {
      await reopened.close();
    }
    // DP training is checked too (the provenance check runs before every kind of training) ...
    const dp = await runBulwarkInProcess([...args(poisoned, 'prov-dp.onnx'), '--dp-epsilon', '1']);
    assert.equal(dp.code, 5, dp.stderr);
    assert.match(dp.stderr, /ERR_DATA_PROVENANCE/);
    // ... and sanitising, whose inspection is not private, is refused with DP rather than skipped.
    const dpSanitize = await runBulwarkInProcess([
      'train',
      '--data',
      clean,
      '--label',
      'label',
      '--out',
      join(dir, 'dp-s.onnx'),
      '--dp-epsilon',
      '1',
      '--sanitize',
    ]);
    assert.equal(dpSanitize.code, 2, dpSanitize.stderr);
    assert.match(dpSanitize.stderr, /ERR_DP_UNACCOUNTED.*--sanitize does not apply with DP/);
  });
});

describe('bulwark train --from (continuous learning)', () => {
  it('fine-tunes on a clean batch and refuses a label-flipped one (exit 5, nothing written)', async () => {
    const batch = join(dir, 'batch.csv');
    const flipped = join(dir, 'flipped.csv');
    const fresh = rows(600, 5);
    writeCsv(batch, fresh);
    // An attacker flips most labels of the new batch.
    writeCsv(flipped, flipLabels(fresh, 0.7, 6));
    const from = (data: string, out: string) =>
      runBulwark([
        ...fromArgs(join(dir, 'clean.onnx'), data, test),
        '--epochs',
        '30',
        '--lr',
        '0.003',
        '--out',
        join(dir, out),
        '--max-clean-drop',
        '0.03',
        '--max-robust-drop',
        '0.05',
      ]);
    const ok = from(batch, 'continued.onnx');
    assert.equal(ok.code, 0, ok.stderr);
    const j = JSON.parse(ok.stdout) as {
      comparison: { accepted: boolean; before: { clean: number } };
      continuedFrom: string;
    };
    assert.equal(j.comparison.accepted, true);
    assert.match(j.continuedFrom, /^sha256:/);
    assert.match(
      onnxMetadata(readFileSync(join(dir, 'continued.onnx')))['bulwark.continued_from'] as string,
      /^sha256:/,
    );
    const bad = from(flipped, 'continued-bad.onnx');
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stderr, /ERR_MODEL_REGRESSION/);
    assert.equal(existsSync(join(dir, 'continued-bad.onnx')), false);
    const pkg = await runBulwarkInProcess([
      'train',
      '--from',
      join(dir, 'model.bwm'),
      '--data',
      batch,
      '--eval',
      test,
      '--label',
      'label',
      '--out',
      join(dir, 'x2.onnx'),
    ]);
    assert.notEqual(pkg.code, 0);
  });
});

describe('bulwark data poison', () => {
  const poison = (json: boolean, args: string[]) =>
    runBulwark([...(json ? ['--json'] : []), 'data', 'poison', '--data', clean, '--label', 'label', ...args]);
  it('flips exactly the requested share of labels and plants a schema-valid backdoor', () => {
    const flipped = join(dir, 'poison-flip.csv');
    const f = poison(true, ['--attack', 'flip', '--rate', '0.1', '--seed', '3', '--out', flipped]);
    assert.equal(f.code, 0, f.stderr);
    const before = readFileSync(clean, 'utf8').trim().split('\n').slice(1);
    const after = readFileSync(flipped, 'utf8').trim().split('\n').slice(1);
    assert.equal(after.length, before.length);
    const changed = after.filter(
      (r, i) => r.split(',').at(-1) !== (before[i] as string).split(',').at(-1),
    ).length;
    assert.equal(changed, 150);
    assert.equal((JSON.parse(f.stdout) as { poisoned: number }).poisoned, 150);
    const bd = join(dir, 'poison-backdoor.csv');
    const b = poison(true, [
      '--trigger',
      'channel=kiosk,hour=4',
      '--target',
      'no',
      '--rate',
      '0.05',
      '--out',
      bd,
    ]);
    assert.equal(b.code, 0, b.stderr);
    const j = JSON.parse(b.stdout) as { rows: number; poisonedRows: number[] };
    assert.equal(j.poisonedRows.length, Math.round((0.05 * 1500) / 0.95));
    assert.equal(j.rows, 1500 + j.poisonedRows.length);
    const lines = readFileSync(bd, 'utf8').trim().split('\n');
    for (const r of j.poisonedRows) assert.match(lines[r] as string, /,kiosk,4,no$/);
    const bad = poison(false, ['--trigger', 'hour=four', '--target', 'no', '--out', join(dir, 'x.csv')]);
    assert.equal(bad.code, 2);
  });

  it('never poisons the clean file in place, whatever --force says', () => {
    const before = readFileSync(clean);
    const r = poison(false, ['--attack', 'flip', '--rate', '0.1', '--out', clean, '--force']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE: --out \S+ is also an input of this command/);
    assert.deepEqual(readFileSync(clean), before);
  });
});
