import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ONNX_META } from '../../src/privacy/index.js';
import { META_CLASS_VALUES, META_LABEL, META_PIPELINE } from '../../src/train/index.js';
import { runBulwark } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'bulwark-dptrain-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// A deterministic, learnable data set and its schema with PUBLIC bounds and categories.
const data = join(tmp, 'd.csv');
const schema = join(tmp, 's.yaml');
const rows = ['age,income,city,label'];
for (let i = 0; i < 1500; i++) {
  const age = 18 + ((i * 37) % 63);
  const income = ((i * 7919) % 200000) + 0.5;
  const city = ['Lyon', 'Paris', 'Nice'][i % 3] as string;
  const score = age / 80 + income / 200000 + (city === 'Nice' ? 0.3 : 0) + 0.2 * Math.sin(i * 1.7);
  rows.push(`${age},${income},${city},${score > 1 ? 'yes' : 'no'}`);
}
writeFileSync(data, `${rows.join('\n')}\n`);
writeFileSync(
  schema,
  `version: 1
label: label
fields:
  - { name: age, type: integer, bounds: { min: 0, max: 100 } }
  - { name: income, type: number, bounds: { min: 0, max: 250000 } }
  - { name: city, type: category, categories: [Lyon, Paris, Nice] }
  - { name: label, type: category, categories: ['no', 'yes'] }
`,
);

describe('bulwark train --dp-epsilon', () => {
  it('writes ONNX metadata under the same keys as src/train (bulwark predict reads them)', () => {
    assert.equal(ONNX_META.pipeline, META_PIPELINE);
    assert.equal(ONNX_META.label, META_LABEL);
    assert.equal(ONNX_META.classValues, META_CLASS_VALUES);
  });

  it('DP logistic regression and DP-SGD MLP spend from the ledger and report the epsilon spent; then refuse', () => {
    const ledger = join(tmp, 'l.sqlite');
    assert.equal(
      runBulwark([
        'query',
        'budget',
        'set',
        'd.csv',
        '--epsilon',
        '2.5',
        '--delta',
        '1e-5',
        '--ledger',
        ledger,
      ]).code,
      0,
    );
    const common = [
      'train',
      '--data',
      data,
      '--schema',
      schema,
      '--label',
      'label',
      '--ledger',
      ledger,
      '--seeded-noise',
      '7',
    ];
    let r = runBulwark(['--json', ...common, '--out', join(tmp, 'lr.onnx'), '--dp-epsilon', '1']);
    assert.equal(r.code, 0, r.stderr);
    let out = JSON.parse(r.stdout);
    assert.equal(out.privacy.method, 'objective-perturbation');
    assert.equal(out.privacy.epsilon, 1);
    assert.equal(out.privacy.delta, 0);
    assert.ok(out.test.accuracy > 0.75, String(out.test.accuracy));
    assert.ok(Math.abs(out.budget.remaining.epsilon - 1.5) < 1e-9);
    r = runBulwark([
      '--json',
      ...common,
      '--out',
      join(tmp, 'mlp.onnx'),
      '--model',
      'mlp',
      '--hidden',
      '8',
      '--dp-epsilon',
      '1.2',
      '--dp-delta',
      '1e-5',
      '--epochs',
      '3',
      '--batch-size',
      '50',
      '--lr',
      '0.5',
      '--dp-rows',
      '2000',
    ]);
    assert.equal(r.code, 0, r.stderr);
    out = JSON.parse(r.stdout);
    assert.equal(out.privacy.method, 'dp-sgd');
    assert.ok(out.privacy.epsilon <= 1.2 && out.privacy.epsilon > 1.1);
    // The sampling rate comes from the declared public count (2,000 less the 20 % test share), not
    // from the 1,200 rows actually trained on.
    assert.equal(out.privacy.rows, 'declared');
    assert.equal(out.privacy.samplingRate, 50 / 1600);
    assert.equal(out.privacy.steps, Math.floor(3 / (50 / 1600)));
    assert.ok(existsSync(join(tmp, 'mlp.onnx')));
    const p = runBulwark(['predict', '--model', join(tmp, 'lr.onnx'), '--data', data]);
    assert.equal(p.code, 0, p.stderr);
    r = runBulwark([...common, '--out', join(tmp, 'again.onnx'), '--dp-epsilon', '1']);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /ERR_PRIVACY_BUDGET_EXCEEDED/);
    assert.ok(!existsSync(join(tmp, 'again.onnx')), 'no model written when refused');
  });

  it('needs a schema with public bounds (usage error, exit 2)', () => {
    const r = runBulwark([
      'train',
      '--data',
      data,
      '--label',
      'label',
      '--out',
      join(tmp, 'x.onnx'),
      '--dp-epsilon',
      '1',
      '--ledger',
      join(tmp, 'y.sqlite'),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs --schema/);
  });
});
