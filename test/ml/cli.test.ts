import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { csvField } from '../../src/cli/commands/predict.js';
import { SeededRng } from '../../src/core/index.js';
import { AttrType, DataType, encodeModel } from '../../src/ml/onnx/proto.js';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';

/** A learnable table: label "yes" when 2*x1 - x2 + (channel == web) > 0.5, plus a little noise. */
function makeCsv(rows: number, seed: number, opts: { oneClass?: boolean; hole?: number } = {}): string {
  const rng = new SeededRng(seed);
  const lines = ['x1,x2,channel,label'];
  for (let i = 0; i < rows; i++) {
    const x1 = rng.normal();
    const x2 = rng.normal();
    const ch = rng.pick(['web', 'shop', 'phone']);
    const z = 2 * x1 - x2 + (ch === 'web' ? 1 : 0) + rng.normal(0, 0.2);
    const label = opts.oneClass ? 'no' : z > 0.5 ? 'yes' : 'no';
    lines.push(`${i === opts.hole ? '' : x1.toFixed(4)},${x2.toFixed(4)},${ch},${label}`);
  }
  return `${lines.join('\n')}\n`;
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-ml-cli-'));
const data = join(dir, 'train.csv');
writeFileSync(data, makeCsv(600, 1));

describe('bulwark train / predict', () => {
  it('trains a logistic regression, prints test metrics as JSON and writes an ONNX model', async () => {
    const out = join(dir, 'lr.onnx');
    const r = runBulwark([
      '--json',
      'train',
      '--data',
      data,
      '--label',
      'label',
      '--model',
      'logreg',
      '--epochs',
      '30',
      '--seed',
      '3',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      classes: string[];
      features: number;
      test: { accuracy: number; rocAuc: number; rows: number };
    };
    assert.deepEqual(j.classes, ['no', 'yes']);
    assert.equal(j.features, 5); // x1, x2 and three channel columns
    assert.equal(j.test.rows, 120);
    assert.ok(j.test.accuracy > 0.9, `accuracy ${j.test.accuracy}`);
    assert.ok(j.test.rocAuc > 0.95);
    assert.ok(readFileSync(out).length > 100);

    // predict: ONNX Runtime and Bulwark's forward pass give the same classes; accuracy is reported.
    // The three predictions only read the model: two processes at a time.
    const csvOut = join(dir, 'pred.csv');
    const [p1, p2, p3] = (await inParallel([
      () => runBulwarkAsync(['--json', 'predict', '--model', out, '--data', data]),
      () => runBulwarkAsync(['--json', 'predict', '--model', out, '--data', data, '--engine', 'bulwark']),
      () => runBulwarkAsync(['predict', '--model', out, '--data', data, '--out', csvOut]),
    ])) as [CliRun, CliRun, CliRun];
    assert.equal(p1.code, 0, p1.stderr);
    const a = JSON.parse(p1.stdout) as {
      rows: number;
      accuracy: number;
      predictions: { prediction: string; probabilities: number[] }[];
    };
    assert.equal(a.rows, 600);
    assert.equal(a.predictions.length, 600);
    assert.ok(a.accuracy > 0.9);
    const b = JSON.parse(p2.stdout) as typeof a;
    for (let i = 0; i < 600; i++) {
      assert.equal(a.predictions[i]!.prediction, b.predictions[i]!.prediction);
      assert.ok(Math.abs(a.predictions[i]!.probabilities[1]! - b.predictions[i]!.probabilities[1]!) < 1e-5);
    }
    // CSV output
    assert.equal(p3.code, 0, p3.stderr);
    const lines = readFileSync(csvOut, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'prediction,p_no,p_yes');
    assert.equal(lines.length, 601);
  });

  it('fits a logistic regression by L-BFGS (--solver lbfgs)', () => {
    const out = join(dir, 'lbfgs.onnx');
    const r = runBulwark([
      '--json',
      'train',
      '--data',
      data,
      '--label',
      'label',
      '--solver',
      'lbfgs',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { solver: string; epochs: number; test: { accuracy: number } };
    assert.equal(j.solver, 'lbfgs');
    assert.ok(j.epochs > 2 && j.epochs <= 200);
    assert.ok(j.test.accuracy > 0.9, `accuracy ${j.test.accuracy}`);
  });

  it('trains an MLP with --hidden', () => {
    const out = join(dir, 'mlp.onnx');
    const r = runBulwark([
      '--json',
      'train',
      '--data',
      data,
      '--label',
      'label',
      '--model',
      'mlp',
      '--hidden',
      '16,8',
      '--epochs',
      '40',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { architecture: number[]; test: { accuracy: number } };
    assert.deepEqual(j.architecture, [5, 16, 8, 2]);
    assert.ok(j.test.accuracy > 0.85, `accuracy ${j.test.accuracy}`);
  });

  it('bad input: a clear error, a stable code, no output file', async () => {
    const out = join(dir, 'never.onnx');
    const cases: Array<[string[], RegExp, number]> = [
      [['--label', 'nope'], /ERR_COLUMN_NOT_FOUND: no column "nope"/, 3],
      [['--label', 'label', '--model', 'forest'], /ERR_USAGE: .*expected one of logreg, mlp/, 2],
      [['--label', 'label', '--hidden', '8'], /ERR_USAGE: --hidden applies to --model mlp/, 2],
      [['--label', 'label', '--epochs', '0'], /ERR_USAGE/, 2],
    ];
    const one = join(dir, 'one.csv');
    writeFileSync(one, makeCsv(50, 2, { oneClass: true }));
    const hole = join(dir, 'hole.csv');
    writeFileSync(hole, makeCsv(50, 3, { hole: 7 }));
    // an existing output is not overwritten without --force
    const keep = join(dir, 'keep.onnx');
    writeFileSync(keep, 'x');
    // Every run is refused before any work and without writing: one at a time, in this process.
    const runs = await inParallel(
      [
        ...cases.map(
          ([args]) =>
            () =>
              runBulwarkInProcess(['train', '--data', data, '--out', out, ...args]),
        ),
        () => runBulwarkInProcess(['train', '--data', one, '--label', 'label', '--out', out]),
        () =>
          runBulwarkInProcess([
            'train',
            '--data',
            hole,
            '--label',
            'label',
            '--test-fraction',
            '0',
            '--out',
            out,
          ]),
        () =>
          runBulwarkInProcess(['train', '--data', data, '--label', 'label', '--epochs', '1', '--out', keep]),
        // A missing output folder is not created, and the data is never the output, --force or not.
        () =>
          runBulwarkInProcess([
            'train',
            '--data',
            data,
            '--label',
            'label',
            '--out',
            join(dir, 'typo', 'm.onnx'),
          ]),
        () => runBulwarkInProcess(['train', '--data', data, '--label', 'label', '--force', '--out', data]),
      ],
      1,
    );
    for (const [i, [, re, code]] of cases.entries()) {
      const r = runs[i] as CliRun;
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, re);
    }
    let r = runs[cases.length] as CliRun;
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_LABEL_INVALID: label column "label" has only one class \(no\)/);
    r = runs[cases.length + 1] as CliRun;
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_DATA_VALUE: .*column "x1"/);
    assert.equal(existsSync(out), false);
    r = runs[cases.length + 2] as CliRun;
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_FILE_EXISTS/);
    assert.equal(readFileSync(keep, 'utf8'), 'x');
    r = runs[cases.length + 3] as CliRun;
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /ERR_FILE_NOT_FOUND: cannot write .*typo\/m\.onnx: no such folder: .*typo \(create it first\)/,
    );
    assert.equal(existsSync(join(dir, 'typo')), false);
    r = runs[cases.length + 4] as CliRun;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE: --out .* is also an input of this command/);
  });

  it('predict refuses an ONNX model with an unsupported operator, naming it', async () => {
    const model = join(dir, 'conv.onnx');
    writeFileSync(
      model,
      encodeModel({
        irVersion: 7,
        opsetImport: [{ domain: '', version: 13 }],
        graph: {
          name: 'g',
          node: [
            { opType: 'MatMul', input: ['X', 'W'], output: ['z'], name: 'mm' },
            {
              opType: 'LeakyRelu',
              input: ['z'],
              output: ['y'],
              name: 'act',
              attribute: [{ name: 'alpha', type: AttrType.FLOAT, f: 0.1 }],
            },
          ],
          initializer: [{ name: 'W', dims: [2, 2], dataType: DataType.FLOAT, floatData: [1, 0, 0, 1] }],
          input: [
            {
              name: 'X',
              type: {
                tensorType: {
                  elemType: DataType.FLOAT,
                  shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] },
                },
              },
            },
          ],
          output: [{ name: 'y', type: { tensorType: { elemType: DataType.FLOAT } } }],
        },
      }),
    );
    const csv = join(dir, 'two.csv');
    writeFileSync(csv, 'a,b\n1,2\n3,4\n');
    const bad = join(dir, 'bad.onnx');
    writeFileSync(bad, 'not a model at all');
    // Three runs that only read their inputs: two processes at a time.
    const [r, r2, r3] = (await inParallel([
      () => runBulwarkAsync(['predict', '--model', model, '--data', csv, '--engine', 'bulwark']),
      () => runBulwarkAsync(['--json', 'predict', '--model', model, '--data', csv]),
      () => runBulwarkAsync(['predict', '--model', bad, '--data', csv]),
    ])) as [CliRun, CliRun, CliRun];
    assert.equal(r.code, 3);
    assert.match(r.stderr, /ERR_ONNX_UNSUPPORTED_OP: unsupported ONNX operator LeakyRelu \(node "act"\)/);
    // ONNX Runtime runs it (LeakyRelu is standard): predictions from the raw numeric columns.
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((JSON.parse(r2.stdout) as { rows: number }).rows, 2);
    assert.equal(r3.code, 3);
    assert.match(r3.stderr, /ERR_ONNX_INVALID/);
  });
});

describe('bulwark predict CSV output', () => {
  it('class names that a spreadsheet would run as formulas are written with a leading apostrophe; numbers stay as they are', async () => {
    assert.equal(csvField('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
    for (const f of ['+1+cmd', '-2+3', '@SUM(A1)', '\tx', '\rx'])
      assert.equal(csvField(f).replace(/^"/, '')[0], "'", f);
    for (const n of ['-1', '+2', '-0.5', '1e-3', '-.5', 'yes', 'a=b']) assert.equal(csvField(n), n);
    // End to end: the classes come from the training labels, and so into the model's metadata.
    const rng = new SeededRng(9);
    const lines = ['x,label'];
    for (let i = 0; i < 200; i++) {
      const x = rng.normal();
      lines.push(`${x.toFixed(4)},${x > 0 ? '@SUM(1+1)' : '-1'}`);
    }
    const csv = join(dir, 'formula.csv');
    writeFileSync(csv, `${lines.join('\n')}\n`);
    const model = join(dir, 'formula.onnx');
    const t = await runBulwarkInProcess([
      'train',
      '--data',
      csv,
      '--label',
      'label',
      '--model',
      'logreg',
      '--out',
      model,
    ]);
    assert.equal(t.code, 0, t.stderr);
    const out = join(dir, 'formula-pred.csv');
    const p = await runBulwarkInProcess(['predict', '--model', model, '--data', csv, '--out', out]);
    assert.equal(p.code, 0, p.stderr);
    const rows = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',')[0]);
    assert.ok(rows.includes("'@SUM(1+1)") && rows.includes('-1'), rows.slice(0, 5).join(' '));
    assert.ok(!rows.includes('@SUM(1+1)'));
  });
});
