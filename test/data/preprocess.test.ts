import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Dataset,
  Imputer,
  loadStep,
  MinMaxScaler,
  OneHotEncoder,
  Pipeline,
  type PreprocessStep,
  parseSchema,
  StandardScaler,
  trainTestSplit,
} from '../../src/data/index.js';

const close = (a: ArrayLike<number>, b: readonly number[], eps = 1e-6): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= eps, `[${i}] ${a[i]} vs ${b[i]}`);
};

/** A JSON round trip, as a saved file would do. */
const viaJson = (x: { toJSON(): unknown }): unknown => JSON.parse(JSON.stringify(x));

const train = () =>
  Dataset.fromColumns({
    age: [20, null, 40, 60],
    amount: [-50, 50, 150, 1000],
    type: ['CASH', 'TRANSFER', 'CASH', null],
    code: [1, 2, 2, 3],
  });

describe('Imputer', () => {
  it('mean, median, most frequent (ties to the smallest) and constant, hand-computed', () => {
    const ds = Dataset.fromColumns({ x: [1, null, 2, 9, null], s: ['b', 'a', null, 'b', 'a'] });
    const mean = new Imputer({ columns: ['x'], strategy: 'mean' }).fit(ds);
    close(mean.transform(ds).numbers('x'), [1, 4, 2, 9, 4]);
    const med = new Imputer({ columns: ['x'], strategy: 'median' }).fit(ds);
    close(med.transform(ds).numbers('x'), [1, 2, 2, 9, 2]);
    const mf = new Imputer({ columns: ['s'], strategy: 'most_frequent' }).fit(ds);
    assert.deepEqual(mf.transform(ds).strings('s'), ['b', 'a', 'a', 'b', 'a']);
    const c = new Imputer({ columns: ['x'], strategy: 'constant', fillValue: -1 }).fit(ds);
    close(c.transform(ds).numbers('x'), [1, -1, 2, 9, -1]);
    const even = Dataset.fromColumns({ x: [4, 1, 3, 2] });
    assert.equal(new Imputer({ columns: ['x'], strategy: 'median' }).fit(even).statistics.get('x'), 2.5);
  });

  it('refuses mean of strings, an all-missing column, a bad strategy, use before fit', () => {
    const ds = Dataset.fromColumns({ s: ['a', null], e: [null, null] as (number | null)[] });
    assert.throws(() => new Imputer({ columns: ['s'], strategy: 'mean' }).fit(ds), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => new Imputer({ columns: ['e'], strategy: 'mean' }).fit(ds), {
      code: 'ERR_DATA_VALUE',
    });
    assert.throws(() => new Imputer({ columns: ['s'], strategy: 'avg' as never }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => new Imputer({ columns: ['s'], strategy: 'constant' }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => new Imputer({ columns: ['s'], strategy: 'most_frequent' }).transform(ds), {
      code: 'ERR_PREPROCESS_STATE',
    });
    assert.throws(() => new Imputer({ columns: ['zz'], strategy: 'most_frequent' }).fit(ds), {
      code: 'ERR_COLUMN_NOT_FOUND',
    });
  });
});

describe('StandardScaler', () => {
  it('population mean and standard deviation, hand-computed; NaN stays NaN; constant column', () => {
    // x = 1, 2, 3, 4: mean 2.5, population variance 1.25.
    const ds = Dataset.fromColumns({ x: [1, 2, 3, 4, null], k: [7, 7, 7, 7, 7] });
    const s = new StandardScaler({ columns: ['x', 'k'] }).fit(ds);
    const sd = Math.sqrt(1.25);
    assert.deepEqual(s.statistics.get('x'), { mean: 2.5, std: sd });
    const out = s.transform(ds);
    close(out.numbers('x').subarray(0, 4), [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]);
    assert.ok(Number.isNaN(out.numbers('x')[4]!));
    close(out.numbers('k'), [0, 0, 0, 0, 0]);
  });
});

describe('MinMaxScaler', () => {
  const schema = parseSchema(`
version: 1
fields:
  - { name: amount, type: number, bounds: { min: 0, max: 500 } }
  - { name: other, type: number }
`);

  it('scales to the schema’s public bounds and clips, ignoring the data’s own range', () => {
    const ds = Dataset.fromColumns({ amount: [-50, 50, 150, 1000, null] });
    const m = MinMaxScaler.fromSchema(schema, ['amount']).fit(ds);
    const out = m.transform(ds).numbers('amount');
    close(out.subarray(0, 4), [0, 0.1, 0.3, 1]);
    assert.ok(Number.isNaN(out[4]!));
    // Fitting on other data changes nothing: the bounds are not learned.
    const m2 = MinMaxScaler.fromSchema(schema, ['amount']).fit(Dataset.fromColumns({ amount: [1, 2] }));
    close(m2.transform(ds).numbers('amount').subarray(0, 4), [0, 0.1, 0.3, 1]);
  });

  it('refuses a field without bounds and bad bounds', () => {
    assert.throws(() => MinMaxScaler.fromSchema(schema, ['other']), { code: 'ERR_SCHEMA_INVALID' });
    assert.throws(() => new MinMaxScaler({ bounds: { a: { min: 2, max: 1 } } }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => new MinMaxScaler({ bounds: {} }), { code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('OneHotEncoder', () => {
  const ds = Dataset.fromColumns({ t: ['b', 'a', 'b', null], n: [1, 2, 3, 4] });

  it('one column per category in place, sorted; numbers as codes', () => {
    const e = new OneHotEncoder({ columns: ['t'], handleUnknown: 'ignore' }).fit(ds);
    const out = e.transform(ds);
    assert.deepEqual(out.columnNames, ['t=a', 't=b', 'n']);
    assert.deepEqual([...out.numbers('t=a')], [0, 1, 0, 0]);
    assert.deepEqual([...out.numbers('t=b')], [1, 0, 1, 0]);
    const codes = new OneHotEncoder({ columns: ['n'] }).fit(ds).transform(ds);
    assert.deepEqual(codes.columnNames, ['t', 'n=1', 'n=2', 'n=3', 'n=4']);
  });

  it('unknown and missing values: error names row and column, ignore gives zeros, bucket sets <other>', () => {
    const serving = Dataset.fromColumns({ t: ['a', 'zzz'], n: [1, 1] });
    const err = new OneHotEncoder({ columns: ['t'] }).fit(Dataset.fromColumns({ t: ['a', 'b'], n: [1, 2] }));
    assert.throws(
      () => err.transform(serving),
      (e: Error & { code: string }) =>
        e.code === 'ERR_DATA_VALUE' &&
        /row 2 column "t": a category not seen in fit\(\)/.test(e.message) &&
        !e.message.includes('zzz'),
    );
    const bucket = new OneHotEncoder({ columns: ['t'], handleUnknown: 'bucket' }).fit(ds).transform(serving);
    assert.deepEqual(bucket.columnNames, ['t=a', 't=b', 't=<other>', 'n']);
    assert.deepEqual([...bucket.numbers('t=<other>')], [0, 1]);
  });

  it('categories from the schema; maxCategories keeps the most frequent', () => {
    const schema = parseSchema('version: 1\nfields: [{name: t, type: category, categories: [x, a]}]');
    const e = OneHotEncoder.fromSchema(schema, ['t'], 'ignore').fit(ds);
    assert.deepEqual(e.transform(ds).columnNames, ['t=x', 't=a', 'n']);
    const top = new OneHotEncoder({ columns: ['t'], maxCategories: 1, handleUnknown: 'ignore' }).fit(ds);
    assert.deepEqual(top.categories.get('t'), ['b']);
  });
});

describe('column names that are Object.prototype keys', () => {
  // Computed keys: a literal `__proto__:` would set the prototype instead of naming a column.
  const schema = parseSchema(`
version: 1
fields:
  - { name: __proto__, type: number, bounds: { min: 0, max: 10 } }
  - { name: b, type: number, bounds: { min: 0, max: 100 } }
  - { name: constructor, type: category, categories: [x, y, z] }
`);
  const ds = Dataset.fromColumns({ ['__proto__']: [5, 10], b: [50, null], ['constructor']: ['x', null] });

  it('MinMaxScaler.fromSchema scales a field called __proto__ (it was silently left unscaled)', () => {
    const m = MinMaxScaler.fromSchema(schema, ['__proto__', 'b']).fit(ds);
    assert.deepEqual([...m.bounds.keys()], ['__proto__', 'b']);
    close(m.transform(ds).numbers('__proto__'), [0.5, 1]);
    assert.throws(() => MinMaxScaler.fromSchema(schema, ['__proto__']).fit(Dataset.fromColumns({ b: [1] })), {
      code: 'ERR_COLUMN_NOT_FOUND',
    });
  });

  it('OneHotEncoder.fromSchema keeps the schema categories of a field called __proto__', () => {
    const s2 = parseSchema('version: 1\nfields: [{name: __proto__, type: category, categories: [x, y, z]}]');
    const d2 = Dataset.fromColumns({ ['__proto__']: ['x', 'y'] });
    const e = OneHotEncoder.fromSchema(s2, ['__proto__']).fit(d2);
    // The schema's three categories, not the two the data happens to hold.
    assert.deepEqual(e.transform(d2).columnNames, ['__proto__=x', '__proto__=y', '__proto__=z']);
  });

  it('missingCounts counts a column called __proto__', () => {
    const m = ds.missingCounts();
    assert.deepEqual(Object.entries(m), [
      ['__proto__', 0],
      ['b', 1],
      ['constructor', 1],
    ]);
  });
});

describe('saved state', () => {
  it('every step survives toJSON/load with identical output', () => {
    const ds = train();
    const steps: PreprocessStep[] = [
      new Imputer({ columns: ['age'], strategy: 'median' }),
      new StandardScaler({ columns: ['amount'] }),
      new MinMaxScaler({ bounds: { code: { min: 0, max: 4 } } }),
      new OneHotEncoder({ columns: ['type'], handleUnknown: 'bucket' }),
    ];
    for (const s of steps) {
      s.fit(ds);
      const back = loadStep(viaJson(s));
      assert.deepEqual(back.transform(ds), s.transform(ds));
      assert.deepEqual(back.toJSON(), s.toJSON());
    }
  });

  it('refuses another version, format, kind, or a bad shape with ERR_PREPROCESS_STATE', () => {
    const good = new StandardScaler({ columns: ['amount'] }).fit(train()).toJSON();
    const bad: unknown[] = [
      { ...good, version: 2 },
      { ...good, format: 'other' },
      { ...good, kind: 'minmax' },
      { ...good, columns: [{ name: 'amount', mean: 0, std: -1 }] },
      { ...good, columns: 'x' },
      null,
      'text',
    ];
    for (const b of bad)
      assert.throws(() => StandardScaler.load(b), { code: 'ERR_PREPROCESS_STATE' }, JSON.stringify(b));
    assert.throws(() => loadStep({ ...good, kind: 'pca' }), { code: 'ERR_PREPROCESS_STATE' });
    assert.throws(() => new StandardScaler({ columns: ['a'] }).toJSON(), { code: 'ERR_PREPROCESS_STATE' });
  });
});

describe('Pipeline', () => {
  const make = () =>
    new Pipeline({
      inputs: ['age', 'amount', 'type'],
      steps: [
        new Imputer({ columns: ['age'], strategy: 'mean' }),
        new StandardScaler({ columns: ['age'] }),
        new MinMaxScaler({ bounds: { amount: { min: 0, max: 500 } } }),
        new Imputer({ columns: ['type'], strategy: 'constant', fillValue: 'CASH' }),
        new OneHotEncoder({ columns: ['type'], handleUnknown: 'bucket' }),
      ],
    });

  it('fits on train and gives the hand-computed matrix with named features', () => {
    const p = make();
    const { matrix, features, rows } = p.fitTransform(train());
    assert.deepEqual(features, ['age', 'amount', 'type=CASH', 'type=TRANSFER', 'type=<other>']);
    assert.equal(rows, 4);
    // age: 20, (40), 40, 60 -> mean 40, population sd sqrt(200) over [20, 40, 40, 60]... imputed first.
    const sd = Math.sqrt((400 + 0 + 0 + 400) / 4);
    close(matrix, [-20 / sd, 0, 1, 0, 0, 0, 0.1, 0, 1, 0, 0, 0.3, 1, 0, 0, 20 / sd, 1, 1, 0, 0]);
    assert.ok(matrix instanceof Float32Array);
  });

  it('transforms serving rows (strings parsed, unknown categories bucketed) like the batch', () => {
    const p = make().fit(train());
    const row = p.transformRow({ age: '40', amount: '150', type: 'CASH' });
    close(row, [0, 0.3, 1, 0, 0]);
    close(p.transformRow({ age: null, amount: 600, type: 'PAYMENT' }), [0, 1, 0, 0, 1]);
    assert.throws(() => p.transformRow({ age: 'forty', amount: 1, type: 'CASH' }), {
      code: 'ERR_DATA_VALUE',
    });
    assert.throws(() => p.transformRow({ age: 1, type: 'CASH' }), { code: 'ERR_COLUMN_NOT_FOUND' });
    // An inherited property is not a field.
    const proto = new Pipeline({ inputs: ['constructor'], steps: [] }).fit(
      Dataset.fromColumns({ constructor: [1, 2] }),
    );
    assert.throws(() => proto.transformRow({}), { code: 'ERR_COLUMN_NOT_FOUND' });
    close(proto.transformRow({ constructor: 5 }), [5]);
  });

  it('survives JSON and refuses use before fit, unencoded strings, and missing outputs', () => {
    const p = make().fit(train());
    const back = Pipeline.load(viaJson(p));
    assert.deepEqual(back.transform(train()), p.transform(train()));
    assert.deepEqual(back.features, p.features);
    assert.throws(() => make().transform(train()), { code: 'ERR_PREPROCESS_STATE' });
    assert.throws(() => new Pipeline({ inputs: ['type'], steps: [] }).fit(train()), {
      code: 'ERR_PREPROCESS_STATE',
      message: /"type" still holds strings/,
    });
    const noImpute = new Pipeline({ inputs: ['age'], steps: [] }).fit(train());
    assert.throws(() => noImpute.transform(train()), {
      code: 'ERR_DATA_VALUE',
      message: /row 2 column "age": missing value/,
    });
    assert.throws(() => Pipeline.load({ ...p.toJSON(), version: 9 }), { code: 'ERR_PREPROCESS_STATE' });
    assert.throws(() => Pipeline.load({ ...p.toJSON(), steps: [{ kind: 'nope' }] }), {
      code: 'ERR_PREPROCESS_STATE',
    });
  });
});

describe('trainTestSplit', () => {
  const ds = Dataset.fromColumns({
    id: Array.from({ length: 1000 }, (_, i) => i),
    y: Array.from({ length: 1000 }, (_, i) => (i % 20 === 0 ? 1 : 0)),
  });

  it('is seeded, disjoint, complete, and keeps the class balance when stratified', () => {
    const a = trainTestSplit(ds, { testFraction: 0.2, seed: 3, stratify: 'y' });
    const b = trainTestSplit(ds, { testFraction: 0.2, seed: 3, stratify: 'y' });
    assert.deepEqual(a.test.numbers('id'), b.test.numbers('id'));
    assert.equal(a.train.rowCount, 800);
    assert.equal(a.test.rowCount, 200);
    const ids = new Set([...a.train.numbers('id'), ...a.test.numbers('id')]);
    assert.equal(ids.size, 1000);
    const pos = (d: Dataset) => d.numbers('y').reduce((s, v) => s + v, 0);
    assert.equal(pos(a.test), 10);
    assert.equal(pos(a.train), 40);
    const c = trainTestSplit(ds, { testFraction: 0.2, seed: 4 });
    assert.notDeepEqual(c.test.numbers('id'), a.test.numbers('id'));
  });

  it('splits half a million rows (a group too large to spread into one push call)', () => {
    const n = 500_000;
    const big = new Dataset([
      { name: 'id', type: 'number', values: Float64Array.from({ length: n }, (_, i) => i) },
    ]);
    const { train, test } = trainTestSplit(big, { testFraction: 0.25, seed: 1 });
    assert.equal(test.rowCount, 125_000);
    assert.equal(train.rowCount, 375_000);
    const seen = new Uint8Array(n);
    for (const d of [train, test]) for (const v of d.numbers('id')) seen[v]!++;
    assert.ok(seen.every((c) => c === 1));
  });

  it('refuses a fraction outside (0, 1) or one that empties a set', () => {
    assert.throws(() => trainTestSplit(ds, { testFraction: 1 }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => trainTestSplit(ds.slice(0, 2), { testFraction: 0.1 }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => trainTestSplit(ds, { testFraction: 0.5, stratify: 'nope' }), {
      code: 'ERR_COLUMN_NOT_FOUND',
    });
  });
});
