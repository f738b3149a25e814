import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BulwarkError, SeededRng } from '../../src/core/index.js';
import { type Dataset, parseSchema, readDataset, type Schema } from '../../src/data/index.js';
import { type LabelledData, mlp } from '../../src/ml/index.js';
import {
  type BudgetLedger,
  type DpTabularOptions,
  type DpTabularResult,
  type DpWarmStart,
  NoiseSource,
  openLedger,
  trainDpSgd,
  trainTabularDp,
} from '../../src/privacy/index.js';
import { code } from '../helpers/errors.js';

/**
 * The DP trainers' warm start and pre-spend hook (src/privacy): DP-SGD starts from the given weights,
 * a mismatched starting model is refused, and a hook that refuses before the spend leaves the ledger
 * and the weights untouched.
 */

/** The test schema with the label field declared as `label` says (its part after the name). */
function schemaWithLabel(label: string): Schema {
  return parseSchema(`version: 1
label: label
fields:
  - { name: a, type: number, bounds: { min: 0, max: 10 } }
  - { name: b, type: number, bounds: { min: 0, max: 10 } }
  - { name: city, type: category, categories: [x, y] }
  - { name: label, ${label} }
`);
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-warm-'));
let ledger: BudgetLedger;
let ds: Dataset;
let schema: Schema;

before(async () => {
  const rng = new SeededRng(1);
  const lines = ['a,b,city,label'];
  for (let i = 0; i < 400; i++) {
    const a = rng.uniform(0, 10);
    const b = rng.uniform(0, 10);
    const city = rng.pick(['x', 'y']);
    lines.push(
      `${a.toFixed(3)},${b.toFixed(3)},${city},${a + b + (city === 'x' ? 2 : 0) > 11 ? 'hi' : 'lo'}`,
    );
  }
  writeFileSync(join(dir, 'd.csv'), `${lines.join('\n')}\n`);
  // The same rows with three classes (lo / mid / hi by a + b), and rows with a label none of them has.
  const three = lines.map((l, i) => {
    if (i === 0) return l;
    const [a, b] = l.split(',').map(Number);
    const s = (a as number) + (b as number);
    return l.replace(/,(hi|lo)$/, `,${s < 8 ? 'lo' : s < 12 ? 'mid' : 'hi'}`);
  });
  writeFileSync(join(dir, 'three.csv'), `${three.join('\n')}\n`);
  writeFileSync(join(dir, 'other.csv'), 'a,b,city,label\n1,2,x,lo\n3,4,y,top\n5,6,x,hi\n');
  writeFileSync(
    join(dir, 'd01.csv'),
    `${lines.map((l, i) => (i === 0 ? l : l.replace(/,hi$/, ',1').replace(/,lo$/, ',0'))).join('\n')}\n`,
  );
  ds = await readDataset(join(dir, 'd.csv'));
  schema = schemaWithLabel('type: category, categories: [lo, hi]');
  ledger = await openLedger(join(dir, 'l.sqlite'));
  await ledger.setBudget('d', { epsilon: 20, delta: 1e-3 });
});

after(async () => {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

const base = (over: Partial<DpTabularOptions> = {}): DpTabularOptions => ({
  label: 'label',
  schema,
  model: 'mlp',
  hidden: [8],
  method: 'dp-sgd',
  epsilon: 1,
  delta: 1e-5,
  epochs: 2,
  batchSize: 40,
  learningRate: 0.3,
  seed: 2,
  testFraction: 0,
  budget: { ledger, dataset: 'd' },
  noise: NoiseSource.insecureSeeded(5, 'test'),
  ...over,
});

/** A warm start from a DP training's result (its network, pipeline, classes and guarantee). */
const warmStart = (r: DpTabularResult): DpWarmStart => ({
  network: r.network,
  pipeline: r.pipeline.toJSON(),
  classValues: r.classValues,
  privacy: r.privacy,
});

describe('DP warm start (trainTabularDp initial)', () => {
  it('starts DP-SGD from the given weights and composes the guarantee with the starting model’s', async () => {
    const first = await trainTabularDp(ds, base());
    const initial = warmStart(first);
    const before = Float32Array.from(first.network.params);
    // A learning rate of ~0: the result is the starting weights (a fresh start would differ).
    const still = await trainTabularDp(ds, base({ initial, learningRate: 1e-12, seed: 9 }));
    assert.deepEqual(first.network.params, before, 'the starting network is not changed');
    let maxDiff = 0;
    for (let i = 0; i < before.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs((still.network.params[i] as number) - (before[i] as number)));
    assert.ok(maxDiff < 1e-6, String(maxDiff));
    assert.deepEqual(still.privacy.parent, { epsilon: first.privacy.epsilon, delta: 1e-5 });
    assert.equal(still.privacy.epsilon, first.privacy.epsilon + (still.privacy.run?.epsilon ?? Number.NaN));
    assert.equal(still.privacy.delta, 2e-5);
    assert.deepEqual(still.privacy.budget, { ledger: ledger.id, dataset: 'd' });
  });

  it('predicts the starting model’s classes when the schema declares none: a batch may lack a class', async () => {
    // Three classes, declared for the first run only; the fine-tune's schema declares none.
    const open = schemaWithLabel('type: string');
    const three = await readDataset(join(dir, 'three.csv'));
    // A fresh run cannot take its classes from the private rows: refused before the spend.
    const before = (await ledger.status('d')).spent.epsilon;
    await assert.rejects(trainTabularDp(three, base({ schema: open })), code('ERR_DP_UNACCOUNTED'));
    assert.equal((await ledger.status('d')).spent.epsilon, before, 'nothing spent');
    const declared = schemaWithLabel('type: category, categories: [hi, lo, mid]');
    const first = await trainTabularDp(three, base({ schema: declared }));
    assert.deepEqual(first.classValues, ['hi', 'lo', 'mid']);
    const initial = warmStart(first);
    // A batch without "mid": trained on, predicting the starting model's three classes (it was
    // ERR_WARM_START_MISMATCH when the batch's own classes were compared with the model's).
    const labels = three.column('label').values as readonly (string | null)[];
    const noMid = three.take(labels.flatMap((v, i) => (v === 'mid' ? [] : [i])));
    const next = await trainTabularDp(noMid, base({ schema: open, initial }));
    assert.deepEqual(next.classValues, ['hi', 'lo', 'mid']);
    assert.equal(next.trainRows, noMid.rowCount);
    // A label the starting model does not predict is refused before the spend.
    const spent = (await ledger.status('d')).spent.epsilon;
    const other = await readDataset(join(dir, 'other.csv'));
    await assert.rejects(trainTabularDp(other, base({ schema: open, initial })), code('ERR_LABEL_INVALID'));
    assert.equal((await ledger.status('d')).spent.epsilon, spent, 'nothing spent');
  });

  it('with a public row count, the recorded guarantee does not depend on the private count', async () => {
    const fewer = ds.take(Array.from({ length: ds.rowCount - 1 }, (_, i) => i));
    const declared = async (d: Dataset) => (await trainTabularDp(d, base({ publicRows: 400 }))).privacy;
    const [a, b] = [await declared(ds), await declared(fewer)];
    const { budget: _a, ...pa } = a;
    const { budget: _b, ...pb } = b;
    assert.deepEqual(pa, pb, 'n and n - 1 rows: the same sampling rate, steps, epsilon and delta');
    assert.equal(a.rows, 'declared');
    // Without it the actual count is used, and the model says so.
    const t0 = (await trainTabularDp(ds, base())).privacy;
    const t1 = (await trainTabularDp(fewer, base())).privacy;
    assert.equal(t0.rows, 'treated-as-public');
    assert.notEqual(t0.samplingRate, t1.samplingRate);
    await assert.rejects(trainTabularDp(ds, base({ publicRows: 1.5 })), code('ERR_INVALID_ARGUMENT'));
  });

  it('an integer label takes its classes from its declared bounds (public), not from the rows', async () => {
    const ints = schemaWithLabel('type: integer, bounds: { min: 0, max: 2 }');
    // Labels 0 and 1 only: the model still has the three classes the bounds declare.
    const d01 = await readDataset(join(dir, 'd01.csv'));
    const r = await trainTabularDp(d01, base({ schema: ints }));
    assert.deepEqual(r.classValues, ['0', '1', '2']);
  });

  it('refuses a starting model of another shape, classes or preprocessing, and objective perturbation', async () => {
    const first = await trainTabularDp(ds, base());
    const initial = warmStart(first);
    const spent = (await ledger.status('d')).spent.epsilon;
    await assert.rejects(trainTabularDp(ds, base({ initial, hidden: [4] })), code('ERR_WARM_START_MISMATCH'));
    await assert.rejects(
      trainTabularDp(ds, base({ initial: { ...initial, classValues: ['hi', 'lo'] } })),
      code('ERR_WARM_START_MISMATCH'),
    );
    await assert.rejects(
      trainTabularDp(ds, base({ initial, features: ['a', 'b'] })),
      code('ERR_WARM_START_MISMATCH'),
    );
    await assert.rejects(
      trainTabularDp(ds, base({ initial, model: 'logreg', method: 'objective-perturbation' })),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.equal((await ledger.status('d')).spent.epsilon, spent, 'nothing spent');
  });
});

describe('trainDpSgd beforeSpend', () => {
  it('sees the epsilon about to be spent; throwing refuses with nothing spent and the weights untouched', async () => {
    const rng = new SeededRng(3);
    const rows = 200;
    const data: LabelledData = {
      x: Float32Array.from({ length: rows * 2 }, () => rng.uniform(0, 1)),
      y: Int32Array.from({ length: rows }, () => rng.int(2)),
      rows,
    };
    const net = mlp({ inputs: 2, hidden: [4], classes: 2, rng: 1 });
    const w = Float32Array.from(net.params);
    const spent = (await ledger.status('d')).spends;
    let seen: number | undefined;
    await assert.rejects(
      trainDpSgd(net, data, {
        epsilon: 1,
        delta: 1e-5,
        expectedBatchSize: 20,
        budget: { ledger, dataset: 'd' },
        noise: NoiseSource.insecureSeeded(1, 'test'),
        beforeSpend: (p) => {
          seen = p.epsilon;
          throw new BulwarkError('ERR_POISON_GATE', 'refused by the test');
        },
      }),
      code('ERR_POISON_GATE'),
    );
    assert.ok(seen !== undefined && seen <= 1 && seen > 0.9, String(seen));
    assert.deepEqual(net.params, w);
    assert.equal((await ledger.status('d')).spends, spent);
  });
});

describe('trainTabularDp beforeSpend plan', () => {
  it('carries the accounting events the spend then records (what a pld budget previews)', async () => {
    for (const over of [
      { method: 'dp-sgd' as const },
      { method: 'objective-perturbation' as const, model: 'logreg' as const },
    ]) {
      let planned: unknown;
      const r = await trainTabularDp(
        ds,
        base({
          ...over,
          beforeSpend: (p) => {
            planned = p.events;
          },
        }),
      );
      assert.ok(r.receipt, over.method);
      assert.ok(Array.isArray(planned) && planned.length > 0, over.method);
      assert.deepEqual(planned, r.receipt.events, over.method);
    }
  });
});
