/**
 * Red-team regressions for differential privacy: each test reproduces a privacy failure found in a
 * review and checks it stays fixed. Deterministic: where a release is compared exactly, ε is so large
 * that the discrete noise is 0 with probability 1 − 2e^−(10^6) (the release is then the exact
 * statistic, which is what the sensitivity argument is about).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Dataset, type Schema } from '../../src/data/index.js';
import { logisticRegression, type Optimizer } from '../../src/ml/index.js';
import {
  dpCount,
  INSECURE_NOISE_WARNING,
  NoiseSource,
  openLedger,
  trainDpSgd,
  trainTabularDp,
} from '../../src/privacy/index.js';
import { runBulwarkAsync } from '../helpers/cli.js';

process.on('warning', (w) => {
  if ((w as { code?: string }).code !== INSECURE_NOISE_WARNING) process.stderr.write(`${w.message}\n`);
});
const seeded = (seed: number) => NoiseSource.insecureSeeded(seed, 'test');

const tmp = mkdtempSync(join(tmpdir(), 'bulwark-dp-redteam-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A ledger of its own for `NAME.csv` (the budget a query or a training run on that file spends from). */
async function ledgerWithBudget(name: string, epsilon: string): Promise<string> {
  const ledger = join(tmp, `${name}.sqlite`);
  const set = await runBulwarkAsync([
    'query',
    'budget',
    'set',
    `${name}.csv`,
    '--epsilon',
    epsilon,
    '--ledger',
    ledger,
  ]);
  assert.equal(set.code, 0, set.stderr);
  return ledger;
}

/** `bulwark --json query ...` on its own ledger with a large budget; the parsed JSON result. */
async function query(name: string, csv: string, args: readonly string[]): Promise<{ value: unknown }> {
  const file = join(tmp, `${name}.csv`);
  writeFileSync(file, csv);
  const ledger = await ledgerWithBudget(name, '1e6');
  const r = await runBulwarkAsync([
    '--json',
    'query',
    ...args,
    '--data',
    file,
    '--epsilon',
    '1e6',
    '--ledger',
    ledger,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { value: unknown };
}

describe('bulwark query: one row cannot change how the other rows are read', () => {
  // D: every value looks like a number; D' = D plus one row whose value is not a number. Before the
  // fix a CSV column was typed by inference over all rows: in D the column was numeric, so "1.0" was
  // read as 1 and matched no category ("1" != "1.0"): every row went to <other>. The one extra row of
  // D' made the column text, and every row moved to its category: one row changed every bin, an
  // unbounded sensitivity where the histogram claims 1.
  const d = `v\n${['1.0', '1.0', '2.0', '1.0', '2.0'].join('\n')}\n`;
  const dPlus = `${d}x\n`;

  it('histogram over public categories: neighbours differ in one bin by one', async () => {
    const args = ['histogram', '--column', 'v', '--categories', '1.0,2.0'];
    const [a, b] = await Promise.all([query('hist-d', d, args), query('hist-d1', dPlus, args)]);
    assert.deepEqual(a.value, [
      { bin: '1.0', count: 3 },
      { bin: '2.0', count: 2 },
      { bin: '<other>', count: 0 },
    ]);
    assert.deepEqual(b.value, [
      { bin: '1.0', count: 3 },
      { bin: '2.0', count: 2 },
      { bin: '<other>', count: 1 },
    ]);
  });

  it('a numeric query is answered the same way whatever the other rows hold (no data-dependent refusal)', async () => {
    // Before the fix D' was refused with ERR_DATA_VALUE ("holds strings") before the spend: whether
    // some row is not a number was released, unaccounted. Now the value counts as missing for its row.
    const args = ['sum', '--column', 'v', '--lower', '0', '--upper', '10'];
    const [a, b] = await Promise.all([query('sum-d', d, args), query('sum-d1', dPlus, args)]);
    // The sum's noise is in units of its public grid (10 / 2^20 here): at ε 10^6 a few units at most.
    assert.ok(Math.abs((a.value as number) - 7) < 1e-3, String(a.value));
    assert.ok(Math.abs((b.value as number) - 7) < 1e-3, String(b.value));
    const c = await query('count-d1', dPlus, ['count', '--column', 'v']);
    assert.equal(c.value, 6);
  });

  it('a missing --column is still named', async () => {
    const file = join(tmp, 'nocol.csv');
    writeFileSync(file, d);
    const r = await runBulwarkAsync([
      'query',
      'count',
      '--data',
      file,
      '--column',
      'nope',
      '--epsilon',
      '1',
      '--ledger',
      join(tmp, 'nocol.sqlite'),
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_COLUMN_NOT_FOUND: nocol\.csv: no column "nope"; columns are: v/);
  });
});

describe('DP-SGD with a declared public row count divides by the public expected batch size', () => {
  // Abadi et al. (CCS 2016) divide the noisy sum by the lot size L, a public parameter. With
  // `publicRows` (bulwark train --dp-rows) the row count is private under add-or-remove neighbours;
  // before the fix each step was still divided by q·n with the ACTUAL n, so every weight carried the
  // private count outside the accounted mechanism. q = 1 here: every row is in the one step, the
  // sampling draws nothing, and a noise multiplier of 1e-9 makes the step the clipped sum itself.
  const d = 3;
  const rows = (n: number) => {
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) x[i * d + j] = ((i * 7 + j * 3) % 11) / 11;
      y[i] = i % 2;
    }
    return { x, y, rows: n };
  };
  /** The gradient handed to the optimiser in the one step, and the clipped sum it came from. */
  const firstStep = async (n: number, publicRows?: number) => {
    const net = logisticRegression({ inputs: d, classes: 2 });
    const data = rows(n);
    const sum = net.clippedGradientSum(data.x, data.y, n, 1).sum;
    let seen: Float32Array | undefined;
    const optimizer: Optimizer = {
      learningRate: 1,
      step: (_p, g) => {
        seen = Float32Array.from(g);
      },
    };
    await trainDpSgd(net, data, {
      noiseMultiplier: 1e-9,
      delta: 1e-5,
      samplingRate: 1,
      epochs: 1,
      optimizer,
      noise: seeded(1),
      ...(publicRows === undefined ? {} : { publicRows }),
    });
    assert.ok(seen);
    return { grad: seen, sum };
  };
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

  it('the step is the clipped sum over q·publicRows, whatever the actual count', async () => {
    for (const n of [40, 41]) {
      const { grad, sum } = await firstStep(n, 50);
      for (let k = 0; k < grad.length; k++)
        assert.ok(close(grad[k] as number, (sum[k] as number) / 50), `n=${n} k=${k}: ${grad[k]}`);
    }
  });

  it('without a declared count the actual count is the divisor (treated as public, as Opacus)', async () => {
    const { grad, sum } = await firstStep(40);
    for (let k = 0; k < grad.length; k++) assert.ok(close(grad[k] as number, (sum[k] as number) / 40));
  });

  it('trainTabularDp passes the declared count on (bulwark train --dp-rows)', async () => {
    // Two datasets, the second the first twice over, trained from the same zero weights with the
    // same seeded noise at q = 1 for one step: the step is Σ/L, so with a public L the second step is
    // twice the first; divided by q·n (the old behaviour) the two steps were equal.
    const schema: Schema = {
      version: 1,
      label: 'label',
      fields: [
        { name: 'a', type: 'number', nullable: false, bounds: { min: 0, max: 1 }, sensitivity: 'internal' },
        { name: 'label', type: 'category', nullable: false, categories: ['0', '1'], sensitivity: 'internal' },
      ],
    };
    const make = (copies: number) => {
      const a: number[] = [];
      const label: string[] = [];
      for (let c = 0; c < copies; c++)
        for (let i = 0; i < 30; i++) {
          a.push((i % 10) / 10);
          label.push(i % 3 === 0 ? '1' : '0');
        }
      return new Dataset([
        { name: 'a', type: 'number', values: Float64Array.from(a) },
        { name: 'label', type: 'string', values: label },
      ]);
    };
    const step = async (copies: number) => {
      const r = await trainTabularDp(make(copies), {
        label: 'label',
        schema,
        model: 'logreg',
        method: 'dp-sgd',
        epsilon: 1e4,
        delta: 1e-5,
        batchSize: 1000,
        publicRows: 100,
        epochs: 1,
        learningRate: 0.01,
        testFraction: 0,
        noise: seeded(2),
      });
      assert.equal(r.privacy.samplingRate, 1);
      assert.equal(r.privacy.steps, 1);
      return Array.from(r.network.params);
    };
    const one = await step(1);
    const two = await step(2);
    // Zero initial weights: the weights after one plain SGD step are −lr·(Σ + noise)/L.
    for (let k = 0; k < one.length; k++)
      assert.ok(
        Math.abs((two[k] as number) - 2 * (one[k] as number)) < 1e-3 * Math.abs(one[k] as number) + 1e-6,
        `param ${k}: ${one[k]} ${two[k]}`,
      );
  });
});

describe('DP training: the held-out split cannot move other rows when one row is added', () => {
  // Before the fix the test rows were the first 20 % of a permutation seeded by the (public) seed:
  // a permutation of n + 1 rows is another permutation, so adding one person moved about a third of
  // the other rows between training and test. The two training sets were then far from neighbours,
  // and whoever knew the other rows could tell them apart through the model.
  const schema: Schema = {
    version: 1,
    label: 'label',
    fields: [
      { name: 'a', type: 'number', nullable: false, bounds: { min: 0, max: 100 }, sensitivity: 'internal' },
      { name: 'c', type: 'category', nullable: false, categories: ['x', 'y'], sensitivity: 'internal' },
      { name: 'label', type: 'category', nullable: false, categories: ['0', '1'], sensitivity: 'internal' },
    ],
  };
  const make = (extra: boolean) => {
    const a: number[] = extra ? [42.5] : [];
    const c: string[] = extra ? ['y'] : [];
    const label: string[] = extra ? ['1'] : [];
    for (let i = 0; i < 300; i++) {
      a.push((i * 37) % 101);
      c.push(i % 3 === 0 ? 'x' : 'y');
      label.push((i * 7) % 5 < 2 ? '1' : '0');
    }
    return new Dataset([
      { name: 'a', type: 'number', values: Float64Array.from(a) },
      { name: 'c', type: 'string', values: c },
      { name: 'label', type: 'string', values: label },
    ]);
  };
  const heldOut = async (ds: Dataset) =>
    (
      await trainTabularDp(ds, {
        label: 'label',
        schema,
        model: 'logreg',
        epsilon: 1,
        delta: 1e-5,
        seed: 3,
        noise: seeded(4),
      })
    ).testRows;

  it('the other rows keep their side: the training sets of neighbours are neighbours', async () => {
    const before = Array.from(await heldOut(make(false)));
    // The new row is the first row of D': every other row's index is one more.
    const after = Array.from(await heldOut(make(true)));
    const shifted = after.filter((i) => i !== 0).map((i) => i - 1);
    assert.deepEqual(shifted, before);
    // About the share asked for (each row by a hash: not exactly it).
    assert.ok(before.length > 30 && before.length < 90, String(before.length));
  });
});

describe('a release with seeded noise is marked in the ledger', () => {
  // Whoever picks the seed knows the noise: `bulwark query --seeded-noise 7` on a file whose count is
  // known gives the noise, and the same seed on the private file then gives the exact count, each for
  // the ε it spends. Before the fix the ledger's history (and its privacy.spent audit events) recorded
  // such spends exactly like private ones.
  it('the spend details say insecure-seeded; a CSPRNG spend says nothing about its noise', async () => {
    const ledger = await openLedger(join(tmp, 'seeded.sqlite'));
    try {
      await ledger.setBudget('d', { epsilon: 2, delta: 0 });
      const budget = { ledger, dataset: 'd' };
      const a = await dpCount(10, { epsilon: 0.5, budget, noise: seeded(7) });
      const b = await dpCount(10, { epsilon: 0.5, budget, noise: seeded(7) });
      assert.equal(a.value, b.value, 'the same seed, the same noise: subtracting it gives the count');
      await dpCount(10, { epsilon: 0.5, budget });
      const h = await ledger.history('d');
      assert.deepEqual(
        h.map((r) => r.details['noise'] ?? null),
        ['insecure-seeded', 'insecure-seeded', null],
      );
    } finally {
      await ledger.close();
    }
  });

  it('bulwark query budget history says so', async () => {
    const file = join(tmp, 'hist.csv');
    writeFileSync(file, 'v\n1\n2\n');
    const ledger = await ledgerWithBudget('hist', '5');
    const q = await runBulwarkAsync([
      'query',
      'count',
      '--data',
      file,
      '--epsilon',
      '1',
      '--ledger',
      ledger,
      '--seeded-noise',
      '3',
    ]);
    assert.equal(q.code, 0, q.stderr);
    const h = await runBulwarkAsync(['query', 'budget', 'history', 'hist.csv', '--ledger', ledger]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /query\.count {2}epsilon 1 {2}INSECURE seeded noise: not private/);
  });
});

describe('bulwark train --dp-epsilon: a category field is read as each row’s text', () => {
  // Before the fix the CSV was typed by inference over every row: a category column whose values all
  // looked like numbers became numbers, and the schema check turned them back into text by String(x)
  // ("1.0" -> "1", "1.10" -> "1.1": another category, or none). One row that did not look like a
  // number kept the column as text and every other row as written: the encoding of every row, and
  // whether the run happened at all, depended on one person's value.
  const schema = join(tmp, 'cat.yaml');
  writeFileSync(
    schema,
    `version: 1
label: label
fields:
  - { name: a, type: number, bounds: { min: 0, max: 10 } }
  - { name: rating, type: category, categories: ['1.0', '2.0', 'n/a'] }
  - { name: label, type: category, categories: ['no', 'yes'] }
`,
  );
  const lines = Array.from(
    { length: 60 },
    (_, i) => `${i % 10},${i % 3 === 0 ? '2.0' : '1.0'},${i % 4 === 0 ? 'yes' : 'no'}`,
  );
  const train = async (name: string, rows: string[]) => {
    const data = join(tmp, `${name}.csv`);
    writeFileSync(data, `a,rating,label\n${rows.join('\n')}\n`);
    const ledger = await ledgerWithBudget(name, '5');
    return runBulwarkAsync([
      '--json',
      'train',
      '--data',
      data,
      '--schema',
      schema,
      '--label',
      'label',
      '--model',
      'logreg',
      '--dp-epsilon',
      '1',
      '--ledger',
      ledger,
      '--seeded-noise',
      '5',
      '--out',
      join(tmp, `${name}.onnx`),
    ]);
  };

  it('values that look like numbers keep their text: the run does not hinge on one other row', async () => {
    const [d, dPlus] = await Promise.all([train('cat-d', lines), train('cat-d1', [...lines, '3,n/a,no'])]);
    // Before the fix D was refused (ERR_SCHEMA_MISMATCH: "1" is not a declared category) and D' trained.
    assert.equal(d.code, 0, d.stderr);
    assert.equal(dPlus.code, 0, dPlus.stderr);
  });
});
