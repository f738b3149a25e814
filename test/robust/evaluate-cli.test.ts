import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';

/** Label "yes" when 2 x1 - x2 + (channel == web) + count / 5 > 0.8, with noise; count is an integer in [0, 9]. */
function makeCsv(rows: number, seed: number): string {
  const rng = new SeededRng(seed);
  const lines = ['x1,x2,count,channel,label'];
  for (let i = 0; i < rows; i++) {
    const x1 = rng.normal();
    const x2 = rng.normal();
    const count = rng.int(10);
    const ch = rng.pick(['web', 'shop', 'phone']);
    const z = 2 * x1 - x2 + (ch === 'web' ? 1 : 0) + count / 5 + rng.normal(0, 0.3);
    lines.push(`${x1.toFixed(4)},${x2.toFixed(4)},${count},${ch},${z > 0.8 ? 'yes' : 'no'}`);
  }
  return `${lines.join('\n')}\n`;
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-evaluate-'));
const trainCsv = join(dir, 'train.csv');
const testCsv = join(dir, 'test.csv');
const model = join(dir, 'model.onnx');
const robust = join(dir, 'robust.onnx');
writeFileSync(trainCsv, makeCsv(800, 1));
writeFileSync(testCsv, makeCsv(400, 2));
/** `bulwark train` on the training file, predicting `label`. */
const train = (args: readonly string[]) =>
  runBulwark(['train', '--data', trainCsv, '--label', 'label', ...args]);
const fast = ['--rows', '100', '--steps', '5', '--restarts', '1', '--queries', '40', '--eps', '0,0.1,0.2'];

describe('bulwark evaluate', () => {
  before(() => {
    const t = train(['--model', 'mlp', '--hidden', '16', '--epochs', '40', '--lr', '0.01', '--out', model]);
    assert.equal(t.code, 0, t.stderr);
    const a = train([
      '--model',
      'mlp',
      '--hidden',
      '16',
      '--epochs',
      '40',
      '--lr',
      '0.01',
      '--out',
      robust,
      '--adversarial',
      'pgd',
      '--adv-eps',
      '0.2',
      '--adv-steps',
      '5',
      '--adv-ema',
      '0.95',
    ]);
    assert.equal(a.code, 0, a.stderr);
  });

  it('train --adv-ema records the weight average in the model; a decay outside (0, 1) or without --adversarial is a usage error', () => {
    // ONNX metadata values are stored as plain strings in the protobuf.
    assert.ok(
      readFileSync(robust).includes('{"method":"pgd","eps":0.2,"steps":5,"weightAverage":0.95}'),
      'bulwark.adversarial metadata',
    );
    const out = join(dir, 'never.onnx');
    for (const [args, re] of [
      [
        ['--adversarial', 'pgd', '--adv-eps', '0.2', '--adv-ema', '1'],
        /ERR_USAGE: --adv-ema: expected a decay in \(0, 1\), got 1/,
      ],
      [
        ['--adv-ema', '0.9'],
        /ERR_USAGE: --adv-eps, --adv-steps, --adv-ema and --immutable apply with --adversarial only/,
      ],
      [['--immutable', 'channel'], /ERR_USAGE: .* and --immutable apply with --adversarial only/],
    ] as const) {
      const r = train(['--model', 'mlp', '--out', out, ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(existsSync(out), false);
    }
  });

  it('train --immutable pins fields against the training attacker: a label carried by a category is learnt only when the category is immutable', () => {
    // The label is the category `kind` (70 % "a"); a mutable category may switch at any budget, so
    // the training attacker flips it and the model cannot use it; pinned, the model learns it.
    const rng = new SeededRng(11);
    const lines = ['x1,kind,label'];
    for (let i = 0; i < 600; i++) {
      const kind = rng.bernoulli(0.7) ? 'a' : 'b';
      lines.push(`${rng.normal().toFixed(4)},${kind},${kind === 'b' ? 'yes' : 'no'}`);
    }
    const data = join(dir, 'kind.csv');
    writeFileSync(data, `${lines.join('\n')}\n`);
    /** `bulwark --json train` adversarially (PGD, eps 0.1) on the kind data into `out`. */
    const trainKind = (out: string, extra: readonly string[]) =>
      runBulwark([
        '--json',
        'train',
        '--data',
        data,
        '--label',
        'label',
        '--model',
        'mlp',
        '--hidden',
        '8',
        '--epochs',
        '15',
        '--lr',
        '0.01',
        '--seed',
        '3',
        '--adversarial',
        'pgd',
        '--adv-eps',
        '0.1',
        '--adv-steps',
        '3',
        '--out',
        out,
        ...extra,
      ]);
    const accuracy = (name: string, extra: readonly string[]) => {
      const r = trainKind(join(dir, name), extra);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { test: { accuracy: number } }).test.accuracy;
    };
    const pinned = accuracy('kind-pinned.onnx', ['--immutable', 'kind']);
    const free = accuracy('kind-free.onnx', []);
    assert.ok(pinned > 0.95, `pinned: ${pinned}`);
    assert.ok(free < 0.85, `free: ${free}`);
    assert.ok(
      readFileSync(join(dir, 'kind-pinned.onnx')).includes('"immutable":["kind"]'),
      'bulwark.adversarial metadata',
    );
    // A misspelt column would leave the field free: refused, naming it and the columns there are.
    const typo = join(dir, 'kind-typo.onnx');
    const r = trainKind(typo, ['--immutable', 'knid']);
    assert.equal(r.code, 2, r.stderr);
    const e = (JSON.parse(r.stderr) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
    assert.equal(e.message, 'immutable: expected input columns of the model (x1, kind), got "knid"');
    assert.equal(existsSync(typo), false);
  });

  it('writes the HTML report and the JSON result, comparing a normal and an adversarially trained model', () => {
    const report = join(dir, 'report.html');
    const r = runBulwark([
      '--json',
      'evaluate',
      '--model',
      model,
      '--model',
      robust,
      '--data',
      testCsv,
      '--label',
      'label',
      '--attacks',
      'fgsm,pgd,square,mia,extract',
      '--members',
      trainCsv,
      '--shadows',
      '2',
      '--budgets',
      '20,60',
      '--immutable',
      'channel',
      '--report',
      report,
      ...fast,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      models: {
        name: string;
        cleanAccuracy: number;
        curves: Record<string, { eps: number; accuracy: number }[]>;
        membership?: unknown;
        extraction?: unknown;
      }[];
      detectors: { name: string }[];
      streams: unknown[];
      report: string;
    };
    assert.deepEqual(
      j.models.map((m) => m.name),
      ['model', 'robust'],
    );
    const [base, rob] = j.models;
    assert.ok(base && rob);
    assert.ok(base.cleanAccuracy > 0.8, `clean accuracy ${base.cleanAccuracy}`);
    const at = (m: typeof base, a: string, e: number) =>
      m.curves[a]?.find((p) => p.eps === e)?.accuracy as number;
    assert.ok(at(base, 'pgd', 0.2) < base.cleanAccuracy, 'PGD lowers accuracy');
    const drop = (m: typeof base) => m.cleanAccuracy - at(m, 'pgd', 0.1);
    assert.ok(drop(rob) < drop(base), `adversarial training helps: PGD costs ${drop(rob)} vs ${drop(base)}`);
    assert.ok(base.membership && base.extraction);
    assert.ok(j.detectors.length >= 2 && j.streams.length === 2);
    const html = readFileSync(report, 'utf8');
    for (const s of ['Evasion attacks', 'Detectors', 'Membership inference', 'Model extraction', '<svg'])
      assert.ok(html.includes(s), s);
  });

  it('a DP model with --schema: the schema bounds are mapped into the features the model takes', () => {
    const schema = join(dir, 'train.schema.yaml');
    const ledger = join(dir, 'ledger.sqlite');
    const dp = join(dir, 'dp.onnx');
    assert.equal(runBulwark(['data', 'schema', trainCsv, '--out', schema]).code, 0);
    assert.equal(
      runBulwark(['query', 'budget', 'set', 'train.csv', '--epsilon', '5', '--ledger', ledger]).code,
      0,
    );
    const t = train(['--schema', schema, '--dp-epsilon', '1', '--ledger', ledger, '--out', dp]);
    assert.equal(t.code, 0, t.stderr);
    // The DP model scales its inputs by the public bounds: raw bounds refused every (scaled) row.
    const r = runBulwark([
      '--json',
      'evaluate',
      '--model',
      dp,
      '--data',
      testCsv,
      '--label',
      'label',
      '--schema',
      schema,
      '--attacks',
      'fgsm',
      '--no-detectors',
      '--report',
      join(dir, 'dp.html'),
      ...fast,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      models: { cleanAccuracy: number; curves: { fgsm: { eps: number; accuracy: number }[] } }[];
    };
    const m = out.models[0]!;
    const atZero = m.curves.fgsm.find((a) => a.eps === 0);
    assert.equal(atZero?.accuracy, m.cleanAccuracy, 'an attack of size 0 changes nothing');
  });

  it('fails closed with named errors', async () => {
    const noMembers = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      testCsv,
      '--label',
      'label',
      '--attacks',
      'mia',
    ]);
    assert.equal(noMembers.code, 2);
    assert.match(noMembers.stderr, /ERR_USAGE: --attacks mia needs --members/);
    const unknown = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      testCsv,
      '--label',
      'label',
      '--attacks',
      'pgd,hsj',
    ]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /expected some of fgsm, pgd, apgd, square, mia, extract, got "hsj"/);
    const cls = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      testCsv,
      '--label',
      'label',
      '--attack-class',
      'maybe',
      ...fast,
    ]);
    assert.equal(cls.code, 2);
    assert.match(cls.stderr, /--attack-class: "maybe" is not one of the model's classes \(no, yes\)/);
    const imm = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      testCsv,
      '--label',
      'label',
      '--immutable',
      'nope',
      ...fast,
    ]);
    assert.equal(imm.code, 2);
    assert.match(imm.stderr, /immutable: expected input columns of the model/);
    const missing = await runBulwarkInProcess([
      'evaluate',
      '--model',
      join(dir, 'none.onnx'),
      '--data',
      testCsv,
      '--label',
      'label',
    ]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /ERR_FILE_NOT_FOUND/);
    const report = join(dir, 'exists.html');
    writeFileSync(report, 'x');
    const exists = await runBulwarkInProcess([
      'evaluate',
      '--model',
      model,
      '--data',
      testCsv,
      '--label',
      'label',
      '--report',
      report,
      '--no-detectors',
      ...fast,
    ]);
    assert.equal(exists.code, 3);
    assert.match(exists.stderr, /ERR_FILE_EXISTS/);
    assert.equal(readFileSync(report, 'utf8'), 'x');
    assert.ok(!existsSync(join(dir, 'none.html')));
  });
});
