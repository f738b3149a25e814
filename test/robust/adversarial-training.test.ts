import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { accuracy, mlp, type Network, train } from '../../src/ml/index.js';
import {
  adversarialTrain,
  InputDomain,
  networkModel,
  pgd,
  pgdTrainingInputs,
  tradesLossAndGradient,
} from '../../src/robust/index.js';
import { blobs } from './helpers.js';

describe('TRADES objective', () => {
  for (const classes of [2, 3]) {
    it(`parameter gradient matches finite differences (${classes} classes)`, () => {
      const d = 5;
      const rows = 6;
      const rng = new SeededRng(4);
      const net = mlp({ inputs: d, hidden: [6], classes, activation: 'tanh', rng: 3 });
      const x = Float32Array.from({ length: rows * d }, () => rng.uniform(0, 1));
      const xa = Float32Array.from(x, (v) => v + rng.uniform(-0.3, 0.3));
      const y = Int32Array.from({ length: rows }, (_, i) => i % classes);
      const w = Float32Array.from({ length: rows }, () => rng.uniform(0.5, 2));
      const { gradient } = tradesLossAndGradient(net, x, xa, y, w, rows, 6);
      const h = 1e-2;
      for (let i = 0; i < net.params.length; i += 3) {
        const p0 = net.params[i] as number;
        net.params[i] = p0 + h;
        const up = tradesLossAndGradient(net, x, xa, y, w, rows, 6).loss;
        net.params[i] = p0 - h;
        const down = tradesLossAndGradient(net, x, xa, y, w, rows, 6).loss;
        net.params[i] = p0;
        const fd = (up - down) / (2 * h);
        const a = gradient[i] as number;
        assert.ok(Math.abs(fd - a) <= 3e-3 * Math.max(1, Math.abs(a)), `param ${i}: ${a} vs ${fd}`);
      }
    });
  }
});

describe('adversarial training', () => {
  const d = 10;
  const classes = 3;
  const all = blobs(1500, d, classes, 31, 0.1);
  const nTrain = 1000;
  const trainSet = { x: all.x.slice(0, nTrain * d), y: all.y.slice(0, nTrain), rows: nTrain };
  const nTest = all.rows - nTrain;
  const testX = all.x.slice(nTrain * d);
  const testY = all.y.slice(nTrain);
  const domain = InputDomain.box(d);
  const eps = 0.12;
  const robustAccuracy = (net: Network) =>
    1 -
    pgd(networkModel(net), testX, testY, nTest, { eps, domain, steps: 20, restarts: 2, seed: 1 }).successRate;
  const fresh = () => mlp({ inputs: d, hidden: [32], classes, rng: 5 });
  /** A short PGD run: two epochs of 2-step PGD. */
  const twoEpochs = { method: 'pgd' as const, eps, steps: 2, domain, epochs: 2 };

  it('PGD training and TRADES raise robust accuracy well above normal training', async () => {
    const normal = fresh();
    await train(normal, trainSet, { epochs: 15, batchSize: 50, learningRate: 3e-3, seed: 2 });
    const madry = fresh();
    const hm = await adversarialTrain(madry, trainSet, {
      method: 'pgd',
      eps,
      steps: 7,
      domain,
      epochs: 15,
      batchSize: 50,
      learningRate: 3e-3,
      seed: 2,
    });
    const trades = fresh();
    await adversarialTrain(trades, trainSet, {
      method: 'trades',
      eps,
      steps: 7,
      domain,
      epochs: 15,
      batchSize: 50,
      learningRate: 3e-3,
      seed: 2,
    });
    const clean = (net: Network) => accuracy(testY, net.predict(testX, nTest));
    const r = {
      normal: robustAccuracy(normal),
      madry: robustAccuracy(madry),
      trades: robustAccuracy(trades),
    };
    assert.ok(clean(normal) > 0.9, `normal clean ${clean(normal)}`);
    assert.ok(clean(madry) > 0.8 && clean(trades) > 0.8, `clean ${clean(madry)} ${clean(trades)}`);
    assert.ok(r.madry > r.normal + 0.15, JSON.stringify(r));
    assert.ok(r.trades > r.normal + 0.15, JSON.stringify(r));
    assert.equal(hm.history.length, 15);
    assert.ok(
      hm.history.every((e) => e.eps === eps && e.adversarialAccuracy >= 0 && e.adversarialAccuracy <= 1),
    );
  });

  it('is reproducible with a seed; warm-up and eps ramp follow the schedule', async () => {
    const opts = {
      method: 'pgd' as const,
      eps,
      steps: 3,
      domain,
      epochs: 4,
      warmupEpochs: 1,
      epsRampEpochs: 2,
      batchSize: 100,
      seed: 9,
    };
    const a = fresh();
    const b = fresh();
    const ha = await adversarialTrain(a, trainSet, opts);
    await adversarialTrain(b, trainSet, opts);
    assert.deepEqual(a.params, b.params);
    assert.deepEqual(
      ha.history.map((e) => e.eps),
      [0, eps / 2, eps, eps],
    );
  });

  it("dropLast skips each epoch's last partial batch (Croce et al.'s batching)", async () => {
    const steps = async (dropLast: boolean) => {
      const seen: number[] = [];
      const net = fresh();
      const h = await adversarialTrain(net, trainSet, {
        ...twoEpochs,
        batchSize: 300,
        dropLast,
        seed: 3,
        onProgress: (p) => {
          if (p.phase === 'batch') seen.push(p.batch);
        },
      });
      return { seen, net, h };
    };
    const dropped = await steps(true);
    const kept = await steps(false);
    // 1,000 rows in batches of 300: 3 full batches and one of 100, per epoch.
    assert.deepEqual(dropped.seen, [1, 2, 3, 1, 2, 3]);
    assert.deepEqual(kept.seen, [1, 2, 3, 4, 1, 2, 3, 4]);
    assert.notDeepEqual(dropped.net.params, kept.net.params);
    assert.ok(dropped.h.history.every((e) => Number.isFinite(e.loss) && e.loss > 0));
    await assert.rejects(
      adversarialTrain(fresh(), trainSet, { method: 'pgd', eps, domain, batchSize: 1001, dropLast: true }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^dropLast: expected false/.test(e.message),
    );
  });

  it('weightAverage returns the moving average of the weights each step left (TensorFlow-style warm-up)', async () => {
    const decay = 0.9;
    const net = fresh();
    const initial = net.params.slice();
    // The weights after each optimiser step, as the progress callback sees them.
    const steps: Float32Array[] = [];
    const validation = { x: testX, y: testY, rows: nTest };
    const h = await adversarialTrain(net, trainSet, {
      ...twoEpochs,
      batchSize: 250,
      seed: 4,
      validation,
      weightAverage: { decay },
      onProgress: (p) => {
        if (p.phase === 'batch') steps.push(net.params.slice());
      },
    });
    assert.equal(steps.length, 8);
    assert.deepEqual(h.weightAverage, { decay, steps: 8 });
    // The same average in float64, from the initial weights.
    const want = Float64Array.from(initial);
    steps.forEach((w, t) => {
      const dt = Math.min(decay, (1 + t) / (10 + t));
      for (let i = 0; i < want.length; i++) want[i] = dt * (want[i] as number) + (1 - dt) * (w[i] as number);
    });
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs((net.params[i] as number) - (want[i] as number)) < 1e-5, `param ${i}`);
    // Not the last step's weights, and the last epoch's validation accuracy is the average's.
    assert.notDeepEqual(net.params, steps[7]);
    assert.equal(h.history[1]?.validationAccuracy, accuracy(testY, net.predict(testX, nTest)));
    const plain = await adversarialTrain(fresh(), trainSet, { method: 'pgd', eps, domain, epochs: 1 });
    assert.equal(plain.weightAverage, null);
    for (const bad of [0, 1, -0.5, Number.NaN]) {
      await assert.rejects(
        adversarialTrain(fresh(), trainSet, { method: 'pgd', eps, domain, weightAverage: { decay: bad } }),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_INVALID_ARGUMENT') &&
          /^weightAverage\.decay: expected a number in \(0, 1\)/.test(e.message),
      );
    }
  });

  it('checks its parameters, naming them', async () => {
    const net = fresh();
    const bad: [object, RegExp][] = [
      [{ method: 'fgsm', eps }, /^method: expected one of pgd, trades/],
      [{ method: 'pgd', eps: 0 }, /^eps: expected a number in \(0/],
      [{ method: 'pgd', eps, steps: 0 }, /^steps/],
      [{ method: 'pgd', eps, stepSize: 2 * eps }, /^stepSize: expected a step no larger than eps/],
      [{ method: 'trades', eps, ratio: 0.5 }, /^ratio: expected only with method pgd/],
      [{ method: 'pgd', eps, beta: 3 }, /^beta: expected only with method trades/],
      [{ method: 'pgd', eps, domain: InputDomain.box(3) }, /^domain: expected an InputDomain of 10 features/],
      [{ method: 'pgd', eps, epochs: 2, warmupEpochs: 2 }, /^warmupEpochs/],
    ];
    for (const [o, re] of bad) {
      await assert.rejects(
        adversarialTrain(net, trainSet, o as never),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message),
      );
    }
    const outside = { ...trainSet, x: Float32Array.from(trainSet.x, (v) => v * 3) };
    await assert.rejects(adversarialTrain(net, outside, { method: 'pgd', eps, domain }), (e: unknown) =>
      isBulwarkError(e, 'ERR_SCHEMA_MISMATCH'),
    );
  });

  it('a run whose last step overflows the weights is ERR_TRAINING_DIVERGED, not a network of Infinity', async () => {
    // One epoch of one batch: the loss checked before the step is finite, the step itself overflows.
    const small = blobs(64, 4, 2, 1);
    for (const method of ['pgd', 'trades'] as const) {
      const net = mlp({ inputs: 4, hidden: [8], classes: 2, rng: 1 });
      await assert.rejects(
        adversarialTrain(net, small, {
          method,
          eps: 0.1,
          epochs: 1,
          batchSize: 64,
          learningRate: 1e300,
          domain: InputDomain.box(4),
          engine: 'js',
        }),
        (e: unknown) => isBulwarkError(e, 'ERR_TRAINING_DIVERGED') && /non-finite weights/.test(e.message),
        method,
      );
    }
  });

  it('pgdTrainingInputs: in place, inside the eps-ball, the valid range and the immutable features; raises the loss', () => {
    const rng = new SeededRng(41);
    const rows = 64;
    const d = 4;
    const x0 = Float32Array.from({ length: rows * d }, () => rng.uniform(0, 1));
    const y = Int32Array.from({ length: rows }, (_, r) => ((x0[r * d] as number) > 0.5 ? 1 : 0));
    const net = mlp({ inputs: d, hidden: [8], classes: 2, rng: 5 });
    train(net, { x: x0, y, rows }, { epochs: 30, batchSize: 16, learningRate: 0.05, seed: 1 });
    const domain = new InputDomain({ inputs: d, lower: 0, upper: 1, immutable: [3] });
    const x = x0.slice();
    pgdTrainingInputs(net, x, y, rows, { eps: 0.1, steps: 5, domain }, new SeededRng(7));
    let changed = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i] as number;
      assert.ok(v >= 0 && v <= 1, `in range at ${i}`);
      assert.ok(Math.abs(v - (x0[i] as number)) <= 0.1 + 1e-6, `in the eps-ball at ${i}`);
      if (i % d === 3) assert.equal(v, x0[i], 'immutable feature untouched');
      if (v !== x0[i]) changed++;
    }
    assert.ok(changed > rows, 'rows were perturbed');
    const loss = (xs: Float32Array) => {
      const p = net.predictProba(xs, rows);
      let s = 0;
      for (let r = 0; r < rows; r++) s -= Math.log(Math.max(1e-12, p[2 * r + (y[r] as number)] as number));
      return s / rows;
    };
    assert.ok(loss(x) > loss(x0), 'the adversarial rows have a higher loss');
  });
});
