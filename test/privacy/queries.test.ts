import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import {
  dpCount,
  dpHistogram,
  dpMean,
  dpQuantiles,
  dpSum,
  INSECURE_NOISE_WARNING,
  NoiseSource,
  openLedger,
} from '../../src/privacy/index.js';
import { runBulwark, runBulwarkInProcess } from '../helpers/cli.js';
import { chiSquareIntegers } from './stats.js';

process.on('warning', (w) => {
  if ((w as { code?: string }).code !== INSECURE_NOISE_WARNING) process.stderr.write(`${w.message}\n`);
});
const seeded = (seed: number) => NoiseSource.insecureSeeded(seed, 'test');
const ALPHA = 1e-3;
const tmp = mkdtempSync(join(tmpdir(), 'bulwark-query-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const dlap = (b: number) => (x: number) => Math.tanh(1 / (2 * b)) * Math.exp(-Math.abs(x) / b);
const param = (prefix: string) => (e: unknown) => isBulwarkError(e) && e.message.startsWith(prefix);

describe('DP queries', () => {
  it('count: the error is discrete Laplace with scale 1/epsilon (chi-square over 3,000 releases)', async () => {
    const noise = seeded(81);
    const errs: number[] = [];
    for (let i = 0; i < 3000; i++) errs.push((await dpCount(500, { epsilon: 0.7, noise })).value - 500);
    assert.ok(chiSquareIntegers(errs, dlap(1 / 0.7)).pValue > ALPHA);
    // Counting a column counts its non-missing values.
    const r = await dpCount([1, null, Number.NaN, 'a', 2], { epsilon: 1e6, noise });
    assert.equal(r.value, 3);
    assert.deepEqual(r.event, { kind: 'pure', epsilon: 1e6 });
  });

  it('sum: values are clamped to the public bounds; the error is Laplace of scale max|bound|/epsilon', async () => {
    const values = [5, 50, 500, -20, null];
    const exact = await dpSum(values, { epsilon: 1e9, lower: 0, upper: 100, noise: seeded(82) });
    assert.ok(Math.abs(exact.value - 155) < 1e-3, String(exact.value)); // 5 + 50 + 100 + 0
    const noise = seeded(83);
    const g = 100 / 2 ** 20;
    const errs: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = await dpSum([10, 20], { epsilon: 2, lower: 0, upper: 100, noise });
      errs.push(Math.round((r.value - 30) / g));
    }
    // In grid units the noise is discrete Laplace with scale 2^20 / epsilon: compare on coarse bins.
    const scale = 2 ** 20 / 2;
    const coarse = errs.map((e) => Math.round(e / scale));
    const pmf = (k: number) => {
      // P(round(X/scale) = k) for X ~ Laplace(scale) (continuous approximation, exact enough at this scale).
      const cdf = (x: number) => (x < 0 ? 0.5 * Math.exp(x) : 1 - 0.5 * Math.exp(-x));
      return cdf(k + 0.5) - cdf(k - 0.5);
    };
    assert.ok(chiSquareIntegers(coarse, pmf).pValue > ALPHA);
  });

  it('mean: close to the truth for many rows, clamped to the bounds', async () => {
    const values = Array.from({ length: 20000 }, (_, i) => (i % 100) + 0.5);
    const r = await dpMean(values, { epsilon: 1, lower: 0, upper: 100, noise: seeded(84) });
    assert.ok(Math.abs(r.value - 50) < 0.5, String(r.value));
    const tiny = await dpMean([1e6], { epsilon: 0.01, lower: 0, upper: 10, noise: seeded(85) });
    assert.ok(tiny.value >= 0 && tiny.value <= 10);
  });

  it('histogram: public categories plus <other>, numeric bins clamped; each bin gets discrete noise', async () => {
    const h = await dpHistogram(['a', 'b', 'a', 'z', null], {
      epsilon: 1e9,
      categories: ['a', 'b', 'c'],
      noise: seeded(86),
    });
    assert.deepEqual(h.value, [
      { bin: 'a', count: 2 },
      { bin: 'b', count: 1 },
      { bin: 'c', count: 0 },
      { bin: '<other>', count: 1 },
    ]);
    const b = await dpHistogram([-5, 0, 9.99, 10, 50], {
      epsilon: 1e9,
      lower: 0,
      upper: 20,
      bins: 2,
      noise: seeded(87),
    });
    assert.deepEqual(
      b.value.map((x) => x.count),
      [3, 2],
    );
    const noise = seeded(88);
    const errs: number[] = [];
    for (let i = 0; i < 600; i++) {
      const r = await dpHistogram(['a'], { epsilon: 0.5, categories: ['a', 'b', 'c', 'd'], noise });
      r.value.forEach((x, j) => {
        errs.push(x.count - (j === 0 ? 1 : 0));
      });
    }
    assert.ok(chiSquareIntegers(errs, dlap(2)).pValue > ALPHA);
  });

  it('histogram with the discrete Gaussian mechanism is (epsilon, delta)-DP', async () => {
    const r = await dpHistogram(['a'], {
      epsilon: 1,
      delta: 1e-6,
      mechanism: 'gaussian',
      categories: ['a'],
      noise: seeded(89),
    });
    assert.equal(r.mechanism, 'discrete-gaussian');
    assert.deepEqual(r.event, { kind: 'approx', epsilon: 1, delta: 1e-6 });
    assert.ok((r.noiseScale ?? 0) > 3);
  });

  it('quantiles: medians and quartiles of 10,000 values land near the truth at epsilon 1', async () => {
    const values = Array.from({ length: 10000 }, (_, i) => ((i * 7919) % 10000) / 100); // 0..99.99
    const r = await dpQuantiles(values, {
      epsilon: 1,
      lower: 0,
      upper: 100,
      quantiles: [0.25, 0.5, 0.9],
      noise: seeded(90),
    });
    const want = [25, 50, 90];
    r.value.forEach((q, i) => {
      assert.ok(Math.abs(q.value - want[i]!) < 1.5, `q${q.quantile} = ${q.value}`);
    });
    assert.equal(r.mechanism, 'permute-and-flip');
  });

  it('spends from the ledger first: a refused query reads nothing and returns nothing', async () => {
    const ledger = await openLedger(join(tmp, `q-${randomBytes(4).toString('hex')}.sqlite`));
    try {
      await ledger.setBudget('adult', { epsilon: 1, delta: 1e-6 });
      const r = await dpMean([1, 2, 3], {
        epsilon: 0.6,
        lower: 0,
        upper: 10,
        column: 'age',
        budget: { ledger, dataset: 'adult' },
      });
      assert.equal(r.receipt?.operation, 'query.mean');
      assert.deepEqual(r.receipt?.details, { column: 'age', lower: 0, upper: 10 });
      let read = false;
      const spy = new Proxy([1, 2, 3], {
        get(t, k) {
          if (k !== 'length' && typeof k === 'string' && /^\d+$/.test(k)) read = true;
          return Reflect.get(t, k);
        },
      });
      await assert.rejects(
        dpSum(spy, { epsilon: 0.6, lower: 0, upper: 10, budget: { ledger, dataset: 'adult' } }),
        (e: unknown) => isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED'),
      );
      assert.equal(read, false, 'the data was not read');
    } finally {
      await ledger.close();
    }
  });

  it('spends nothing on a query that cannot be answered: an infinite range, an unachievable delta', async () => {
    const ledger = await openLedger(join(tmp, `q-${randomBytes(4).toString('hex')}.sqlite`));
    try {
      await ledger.setBudget('adult', { epsilon: 1, delta: 1e-6 });
      const budget = { ledger, dataset: 'adult' };
      const huge = { lower: -1e308, upper: 1e308 };
      await assert.rejects(dpSum([1], { epsilon: 0.1, ...huge, budget }), param('upper:'));
      await assert.rejects(dpHistogram([1], { epsilon: 0.1, ...huge, bins: 3, budget }), param('upper:'));
      await assert.rejects(
        dpQuantiles([1], { epsilon: 0.1, ...huge, quantiles: [0.5], budget }),
        param('upper:'),
      );
      // A Gaussian sum whose sigma cannot be calibrated at this delta (its 2^20 grid units at
      // ε 1e-6 need σ near 8e12, past the discrete Gaussian's 1e12) is refused before the spend.
      await assert.rejects(
        dpSum([1], { epsilon: 1e-6, lower: 0, upper: 1e300, mechanism: 'gaussian', delta: 1e-12, budget }),
        (e: unknown) => isBulwarkError(e) && e.code === 'ERR_PRIVACY_UNACHIEVABLE',
      );
      assert.equal((await ledger.history('adult')).length, 0);
    } finally {
      await ledger.close();
    }
  });

  it('validates parameters naming them', async () => {
    await assert.rejects(dpCount(1, { epsilon: 0 }), param('epsilon:'));
    await assert.rejects(dpCount(1, { epsilon: 1, mechanism: 'gaussian' }), param('delta:'));
    await assert.rejects(dpCount(1, { epsilon: 1, delta: 1e-5 }), param('delta:'));
    await assert.rejects(dpSum([1], { epsilon: 1, lower: 5, upper: 5 }), param('upper:'));
    await assert.rejects(dpHistogram([1], { epsilon: 1, categories: [] }), param('categories:'));
    await assert.rejects(
      dpQuantiles([1], { epsilon: 1, lower: 0, upper: 1, quantiles: [1.5] }),
      param('quantiles[0]:'),
    );
  });
});

describe('bulwark query (CLI)', () => {
  const csv = join(tmp, 'people.csv');
  writeFileSync(
    csv,
    `age,city\n${Array.from({ length: 200 }, (_, i) => `${20 + (i % 50)},${i % 3 === 0 ? 'Lyon' : 'Paris'}`).join('\n')}\n`,
  );

  it('a ledger in a missing folder is refused, not created: exit 3 naming --ledger or $BULWARK_LEDGER', async () => {
    const missing = join(tmp, 'bulwrak');
    const ledger = join(missing, 'ledger.sqlite');
    const expected = (from: string) =>
      `bulwark: ERR_FILE_NOT_FOUND: cannot write budget ledger ${ledger} (${from}): no such folder: ${missing} (create it first)\n`;
    let r = await runBulwarkInProcess([
      'query',
      'budget',
      'set',
      'people.csv',
      '--epsilon',
      '1',
      '--ledger',
      ledger,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, expected('--ledger'));
    r = await runBulwarkInProcess(['query', 'count', '--data', csv, '--epsilon', '0.5'], {
      env: { BULWARK_LEDGER: ledger },
    });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, expected('$BULWARK_LEDGER'));
    assert.equal(existsSync(missing), false);
  });

  it('refuses without a budget (exit 5), answers within it, then refuses past it', async () => {
    const ledger = join(tmp, 'cli.sqlite');
    let r = await runBulwarkInProcess([
      'query',
      'count',
      '--data',
      csv,
      '--epsilon',
      '0.5',
      '--ledger',
      ledger,
    ]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_PRIVACY_BUDGET_UNSET: /);
    r = runBulwark(['query', 'budget', 'set', 'people.csv', '--epsilon', '1', '--ledger', ledger]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /WARNING/);
    // A delta so large it admits publishing whole rows is set (the budget is the owner's call), with a warning.
    r = runBulwark([
      'query',
      'budget',
      'set',
      'loose',
      '--epsilon',
      '1',
      '--delta',
      '0.01',
      '--ledger',
      ledger,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARNING: budget delta 0\.01 is large/);
    r = runBulwark([
      '--json',
      'query',
      'mean',
      '--data',
      csv,
      '--column',
      'age',
      '--lower',
      '0',
      '--upper',
      '100',
      '--epsilon',
      '0.6',
      '--ledger',
      ledger,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { value: number; budget: { remaining: { epsilon: number } } };
    assert.ok(out.value >= 0 && out.value <= 100);
    assert.ok(Math.abs(out.budget.remaining.epsilon - 0.4) < 1e-9);
    r = await runBulwarkInProcess([
      'query',
      'histogram',
      '--data',
      csv,
      '--column',
      'city',
      '--categories',
      'Lyon,Paris',
      '--epsilon',
      '0.5',
      '--ledger',
      ledger,
    ]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /ERR_PRIVACY_BUDGET_EXCEEDED/);
    r = runBulwark(['--json', 'query', 'budget', 'status', 'people.csv', '--ledger', ledger]);
    assert.equal(JSON.parse(r.stdout).spends, 1);
  });

  it('an unreachable ledger refuses with exit 6; missing public bounds are a usage error', async () => {
    let r = await runBulwarkInProcess([
      'query',
      'count',
      '--data',
      csv,
      '--epsilon',
      '0.5',
      '--ledger',
      'postgres://postgres@127.0.0.1:1/test',
    ]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /ERR_LEDGER_UNAVAILABLE/);
    r = await runBulwarkInProcess([
      'query',
      'sum',
      '--data',
      csv,
      '--column',
      'age',
      '--epsilon',
      '0.5',
      '--ledger',
      join(tmp, 'x.sqlite'),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /public bounds/);
  });

  it('--seeded-noise warns that the results are not private', () => {
    const ledger = join(tmp, 'seeded.sqlite');
    runBulwark(['query', 'budget', 'set', 'people.csv', '--epsilon', '5', '--ledger', ledger]);
    const r = runBulwark([
      'query',
      'count',
      '--data',
      csv,
      '--epsilon',
      '0.5',
      '--ledger',
      ledger,
      '--seeded-noise',
      '3',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /NOT private/);
    // Said once, in the CLI's words with the warning's code: not again as Node's process warning
    // ('(node:PID) [BULWARK_INSECURE_NOISE] Warning: ...' and its --trace-warnings hint).
    assert.equal(r.stderr.match(/BULWARK_INSECURE_NOISE/g)?.length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\(node:\d+\)|trace-warnings/);
  });
});
