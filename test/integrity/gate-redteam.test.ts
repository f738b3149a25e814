import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, generateSignerKey } from '../../src/audit/index.js';
import { isBulwarkError } from '../../src/core/index.js';
import { binomialBound, fileDigest, judgeGate, minRowsFor, parseGate } from '../../src/integrity/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { fromArgs, recordProtected, rows, trainMlpArgs, writeCsv } from './helpers.js';

/**
 * Red-team review of the security gate and the continuous-learning checks (2026-11-29): each case is
 * a way to get a bad model released or a poisoned batch trained on that the old code let through.
 */
const dir = mkdtempSync(join(tmpdir(), 'bulwark-gate-redteam-'));
const f = (n: string) => join(dir, n);
const invalid = (text: string, re: RegExp) =>
  assert.throws(
    () => parseGate(text),
    (e) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && re.test(e.message),
    text,
  );

before(async () => {
  writeCsv(f('train.csv'), rows(600, 1));
  writeCsv(f('hold.csv'), rows(400, 2));
  writeCsv(f('tiny.csv'), rows(10, 3));
  writeCsv(f('batch.csv'), rows(300, 5));
  writeCsv(f('eval.csv'), rows(400, 8));
  const r = await runBulwarkInProcess([...trainMlpArgs(f('train.csv'), f('m.onnx')), '--epochs', '15']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(f('acc.yaml'), 'version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0.9\n');
  writeFileSync(
    f('gate.yaml'),
    'version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0.5\n  - metric: membership-auc\n    max: 0.6\n',
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('gate files that say less than they appear to', () => {
  it('a threshold on the unsafe side, one no model can cross, and duplicate checks are refused', () => {
    // Before: each parsed, and the first passed the leakiest model.
    invalid('version: 1\nchecks:\n  - metric: membership-auc\n    min: 0.6\n', /judged with "max"/);
    invalid('version: 1\nchecks:\n  - metric: clean-accuracy\n    max: 0.9\n', /judged with "min"/);
    invalid(
      'version: 1\nchecks:\n  - metric: privacy-spent\n    budget: b\n    min: 1\n',
      /judged with "max"/,
    );
    invalid('version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0\n', /min 0 passes any model/);
    invalid(
      'version: 1\nchecks:\n  - metric: backdoor-success\n    trigger: { a: 1 }\n    target: x\n    max: 1\n',
      /max 1 passes any model/,
    );
    invalid('version: 1\nchecks:\n  - metric: membership-auc\n    max: 1\n', /passes any model/);
    invalid('version: 1\nchecks:\n  - metric: membership-auc\n    max: 0.4\n', /fails every model/);
    invalid(
      'version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0.9\n  - metric: clean-accuracy\n    min: 0.5\n',
      /duplicates check 1/,
    );
    // A custom name may not take another check's generated name.
    invalid(
      'version: 1\nchecks:\n  - metric: robust-accuracy\n    attack: pgd\n    eps: 0.05\n    min: 0.5\n  - metric: robust-accuracy\n    name: robust-accuracy pgd eps 0.05\n    attack: fgsm\n    eps: 0.0001\n    min: 0.5\n',
      /duplicates check 1/,
    );
    invalid('version: 1\nconfidence: 1.5\nchecks:\n  - metric: clean-accuracy\n    min: 0.9\n', /confidence/);
    invalid('version: 1\nchecks: []\n', /checks/);
    invalid('version: 1\nchecks:\n  - metric: clean-acuracy\n    min: 0.9\n', /metric/);
    invalid('version: 1\nchecks:\n  - metric: clean-accuracy\n    min: .nan\n', /min/);
  });

  it('a share measured on too few rows fails, with its one-sided Clopper-Pearson bound', () => {
    // 0 of 100: the exact 95 % upper bound is 1 - 0.05^(1/100) (the rule of three, about 3/n).
    assert.ok(Math.abs(binomialBound(0, 100, 0.95, 'upper') - (1 - 0.05 ** (1 / 100))) < 1e-9);
    assert.ok(Math.abs(binomialBound(100, 100, 0.95, 'lower') - 0.05 ** (1 / 100)) < 1e-9);
    // 50 of 100: a known Clopper-Pearson one-sided 95 % bound (R: binom.test(50, 100, alt = "l")).
    assert.ok(Math.abs(binomialBound(50, 100, 0.95, 'lower') - 0.4136) < 1e-3);
    assert.equal(minRowsFor(0.01, '<=', 0.95), 299);
    assert.equal(minRowsFor(0.95, '>=', 0.95), 59);
    const gate = parseGate(
      'version: 1\nchecks:\n  - metric: backdoor-success\n    trigger: { a: 1 }\n    target: x\n    max: 0.01\n',
    );
    // Before: 0 of 10 triggered rows passed a 1 % limit.
    const small = judgeGate(gate, [0], [], [{ successes: 0, rows: 10 }]);
    assert.equal(small.passed, false);
    assert.match(small.checks[0]?.error as string, /10 rows cannot show <= 0.01 .* at least 299 needed/);
    assert.ok((small.checks[0]?.bound as number) > 0.25);
    assert.equal(judgeGate(gate, [0], [], [{ successes: 0, rows: 400 }]).passed, true);
    // judge: bound judges the unsafe end of the interval: 2 of 400 (0.5 %) has an upper bound of 1.6 %.
    const strict = parseGate(
      'version: 1\njudge: bound\nchecks:\n  - metric: backdoor-success\n    trigger: { a: 1 }\n    target: x\n    max: 0.01\n',
    );
    assert.equal(judgeGate(gate, [0.005], [], [{ successes: 2, rows: 400 }]).passed, true);
    assert.equal(judgeGate(strict, [0.005], [], [{ successes: 2, rows: 400 }]).passed, false);
  });
});

describe('bulwark evaluate --gate: inputs that cannot judge the model', () => {
  const gateArgs = (data: string, extra: string[] = []) => [
    'evaluate',
    '--model',
    f('m.onnx'),
    '--data',
    data,
    '--label',
    'label',
    '--gate',
    f('gate.yaml'),
    ...extra,
  ];

  it('a holdout set that is (or overlaps) the training set is refused (ERR_DATA_OVERLAP)', async () => {
    // Before: membership AUC 0.5 ("no leakage": members compared with members), gate judged on it.
    const same = await runBulwarkInProcess(gateArgs(f('train.csv'), ['--members', f('train.csv')]));
    assert.equal(same.code, 3, same.stderr);
    assert.match(
      same.stderr,
      /ERR_DATA_OVERLAP: the holdout set .* shares 600 of its 600 rows with --members/,
    );
    assert.doesNotMatch(same.stderr, /\n\s+at /);
    const mixed = rows(600, 1).slice(0, 50).concat(rows(400, 2));
    writeCsv(f('mixed.csv'), mixed);
    const part = await runBulwarkInProcess(gateArgs(f('mixed.csv'), ['--members', f('train.csv')]));
    assert.equal(part.code, 3, part.stderr);
    assert.match(part.stderr, /shares 50 of its 450 rows .*data rows 1, 2, 3, 4, 5, \.\.\./);
    const ok = await runBulwarkInProcess([
      '--json',
      ...gateArgs(f('hold.csv'), ['--members', f('train.csv')]),
    ]);
    assert.ok(ok.code === 0 || ok.code === 5, ok.stderr);
    const j = JSON.parse(ok.stdout) as { passed: boolean; checks: { rows?: number; bound?: number }[] };
    assert.equal(ok.code === 0, j.passed, '--json and the exit code agree');
    assert.equal(j.checks[0]?.rows, 400);
    assert.equal(typeof j.checks[0]?.bound, 'number');
  });

  it('a second --model (not gated) and a --label the model does not predict are refused', async () => {
    // Before: only the first model was gated and the run exited 0 for both.
    const two = await runBulwarkInProcess([
      ...gateArgs(f('hold.csv'), ['--members', f('train.csv')]),
      '--model',
      f('m.onnx'),
    ]);
    assert.equal(two.code, 2, two.stderr);
    assert.match(two.stderr, /ERR_USAGE: --gate judges one model; 2 --model options/);
    // A copy of the label under another name: the model was not trained to predict it.
    const text = readFileSync(f('hold.csv'), 'utf8').trim().split('\n');
    writeFileSync(
      f('relabel.csv'),
      `${text.map((l, i) => `${l},${i === 0 ? 'other' : l.slice(l.lastIndexOf(',') + 1)}`).join('\n')}\n`,
    );
    const other = await runBulwarkInProcess([
      'evaluate',
      '--model',
      f('m.onnx'),
      '--data',
      f('relabel.csv'),
      '--label',
      'other',
      '--gate',
      f('acc.yaml'),
    ]);
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /ERR_USAGE: --label "other": the model predicts "label"/);
  });

  it('ten holdout rows cannot pass a 90 % accuracy check, and --json says why with the same exit code', async () => {
    const args = [
      'evaluate',
      '--model',
      f('m.onnx'),
      '--data',
      f('tiny.csv'),
      '--label',
      'label',
      '--gate',
      f('acc.yaml'),
    ];
    const table = await runBulwarkInProcess(args);
    assert.equal(table.code, 5, table.stderr);
    assert.match(
      table.stdout,
      /clean-accuracy .*FAIL \(10 rows cannot show >= 0.9 at 95 % confidence; at least 29 needed\)/,
    );
    const json = await runBulwarkInProcess(['--json', ...args]);
    assert.equal(json.code, 5);
    const j = JSON.parse(json.stdout) as { passed: boolean; checks: { minRows: number; passed: boolean }[] };
    assert.equal(j.passed, false);
    assert.equal(j.checks[0]?.minRows, 29);
    assert.match(json.stderr, /"code":"ERR_GATE_FAILED"/);
  });
});

describe('bulwark train --from: evaluation sets that flatter a poisoned model', () => {
  const run = (data: string, evalSet: string, extra: string[] = []) =>
    runBulwarkInProcess([
      ...fromArgs(f('m.onnx'), data, evalSet),
      '--out',
      f('next.onnx'),
      '--epochs',
      '2',
      ...extra,
    ]);

  it('one class, repeated rows, and evaluation rows inside the batch are refused before training', async () => {
    const yesOnly = rows(800, 6).filter((r) => r.endsWith(',yes'));
    writeCsv(f('one-class.csv'), yesOnly.slice(0, 200));
    const a = await run(f('batch.csv'), f('one-class.csv'));
    assert.equal(a.code, 3, a.stderr);
    assert.match(a.stderr, /ERR_DATA_VALUE.*no row of class \\?"no\\?"/);
    const pool = rows(50, 7);
    const two = [pool.find((r) => r.endsWith(',yes')), pool.find((r) => r.endsWith(',no'))];
    writeCsv(
      f('repeated.csv'),
      Array.from({ length: 200 }, (_, i) => two[i % 2] as string),
    );
    const b = await run(f('batch.csv'), f('repeated.csv'));
    assert.equal(b.code, 3, b.stderr);
    assert.match(b.stderr, /ERR_DATA_VALUE.*200 rows but only 2 distinct ones/);
    writeCsv(f('batch+eval.csv'), rows(300, 5).concat(rows(400, 8).slice(0, 30)));
    const c = await run(f('batch+eval.csv'), f('eval.csv'));
    assert.equal(c.code, 3, c.stderr);
    assert.match(
      c.stderr,
      /ERR_DATA_OVERLAP","message":"the evaluation set \(--eval\) shares 30 of its 400 rows with the new batch/,
    );
  });

  it('a set with 2 % of one class: a fine-tune that stops predicting it is refused by its recall', async () => {
    // Before: the accuracies weigh classes by their share, so losing the 8 "yes" rows of 400 cost at
    // most 2 points and passed --max-clean-drop 0.03. Now each class's recall is held to
    // --max-class-drop (default 0.1).
    const pool = rows(2000, 9);
    writeCsv(
      f('rare.csv'),
      pool
        .filter((r) => r.endsWith(',no'))
        .slice(0, 392)
        .concat(pool.filter((r) => r.endsWith(',yes')).slice(0, 8)),
    );
    // The poisoner's batch: every row labelled "no" but ten (a batch of one class is refused).
    writeCsv(
      f('no-yes.csv'),
      rows(300, 10).map((r, i) => r.replace(/,(yes|no)$/, i < 10 ? ',yes' : ',no')),
    );
    const rareArgs = [
      ...fromArgs(f('m.onnx'), f('no-yes.csv'), f('rare.csv')),
      '--out',
      f('rare.onnx'),
      '--force',
      '--epochs',
      '30',
      '--lr',
      '0.003',
      '--max-clean-drop',
      '0.03',
      '--max-robust-drop',
      '0.05',
    ];
    const fine = (extra: string[]) => runBulwarkInProcess([...rareArgs, ...extra]);
    const refused = await fine([]);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(
      refused.stderr,
      /ERR_MODEL_REGRESSION.*recall of class \\"yes\\" 0\.\d{4} -> 0\.\d{4} over its 8 rows \(limit 0\.1 per class\)/,
    );
    assert.doesNotMatch(refused.stderr, /clean accuracy|robust accuracy/);
    // The same run with the check off is accepted (the accuracies alone pass it), and reports the
    // per-class figures in --json, the human summary and model.trained.
    const db = f('rare-audit.db');
    const { signer } = generateSignerKey('bulwark.test/gate-redteam-rare');
    await (await AuditLog.open({ store: { kind: 'sqlite', path: db }, origin: signer.name, signer })).close();
    const accepted = await fine(['--max-class-drop', '1', '--audit', db]);
    assert.equal(accepted.code, 0, accepted.stderr);
    const j = JSON.parse(accepted.stdout) as {
      comparison: {
        maxClassDrop: number;
        classes: { class: string; rows: number; before: number; after: number }[];
        before: { balanced: number };
        after: { balanced: number };
      };
    };
    assert.equal(j.comparison.maxClassDrop, 1);
    assert.deepEqual(
      j.comparison.classes.map((c) => [c.class, c.rows]),
      [
        ['no', 392],
        ['yes', 8],
      ],
    );
    const yes = j.comparison.classes[1] as { before: number; after: number };
    assert.ok(yes.before - yes.after > 0.1, JSON.stringify(j.comparison));
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: db } });
    try {
      const [last] = await log.tail(1);
      const m = (last as unknown as { data: { metrics: Record<string, number> } }).data.metrics;
      assert.equal(m['balancedBefore'], j.comparison.before.balanced);
      assert.equal(m['balancedAfter'], j.comparison.after.balanced);
      assert.ok(Math.abs((m['maxClassRecallDrop'] as number) - (yes.before - yes.after)) < 1e-12);
    } finally {
      await log.close();
    }
    // The same command without --json (fromArgs puts it first): the human summary.
    const human = await runBulwarkInProcess([...rareArgs.slice(1), '--max-class-drop', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /Recall by class \(limit 1 each\): "no" \(392 rows\) \d+\.\d\d % -> \d+\.\d\d %, "yes" \(8 rows\) \d+\.\d\d % -> \d+\.\d\d %; balanced accuracy \d+\.\d\d % -> \d+\.\d\d %\./,
    );
  });

  it('--require-provenance covers --eval, and model.trained records its digest', async () => {
    const db = f('audit.db');
    const { signer } = generateSignerKey('bulwark.test/gate-redteam');
    await recordProtected(db, signer, f('batch.csv'), 1);
    const prov = ['--require-provenance', '--audit', db, '--force'];
    // Before: the batch's provenance was checked, the evaluation set (the judge) was not.
    const refused = await run(f('batch.csv'), f('eval.csv'), prov);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /ERR_DATA_PROVENANCE","message":"[^"]*eval\.csv/);
    await recordProtected(db, signer, f('eval.csv'), 400);
    const ok = await run(f('batch.csv'), f('eval.csv'), [
      ...prov,
      '--max-clean-drop',
      '0.2',
      '--max-robust-drop',
      '0.5',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const reopened = await AuditLog.open({ store: { kind: 'sqlite', path: db } });
    try {
      const [last] = await reopened.tail(1);
      const h = (last as unknown as { data: { hyperparameters: Record<string, unknown> } }).data
        .hyperparameters;
      assert.equal(h['evalDigest'], await fileDigest(f('eval.csv')));
    } finally {
      await reopened.close();
    }
  });
});
