import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { logisticRegression, mlp, Network } from '../../src/ml/network.js';
import { Adam, Sgd } from '../../src/ml/optim.js';
import {
  evaluate,
  type LabelledData,
  resolveClassWeights,
  type TrainProgress,
  train,
} from '../../src/ml/train.js';
import { eventLoopProbe } from '../helpers/turns.js';

/** XOR-like data in 2-D (not linearly separable): class = sign(x0 * x1) > 0. */
function xor(rows: number, seed: number): LabelledData {
  const rng = new SeededRng(seed);
  const x = rng.fillUniform(new Float32Array(rows * 2), -1, 1);
  const y = new Int32Array(rows);
  for (let i = 0; i < rows; i++) y[i] = x[2 * i]! * x[2 * i + 1]! > 0 ? 1 : 0;
  return { x, y, rows };
}

/** Three Gaussian blobs in 4-D. */
function blobs(rows: number, seed: number): LabelledData {
  const rng = new SeededRng(seed);
  const x = new Float32Array(rows * 4);
  const y = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = rng.int(3);
    y[i] = c;
    for (let j = 0; j < 4; j++) x[i * 4 + j] = rng.normal(j === c ? 2 : 0, 1);
  }
  return { x, y, rows };
}

describe('train', () => {
  it('an MLP learns XOR (a logistic regression cannot)', async () => {
    const data = xor(2000, 1);
    const test = xor(1000, 2);
    const net = mlp({ inputs: 2, hidden: [16, 16], classes: 2, activation: 'tanh', rng: 3 });
    await train(net, data, { epochs: 40, batchSize: 32, learningRate: 0.01, seed: 4 });
    assert.ok(evaluate(net, test).accuracy > 0.95, `MLP accuracy ${evaluate(net, test).accuracy}`);
    const lr = logisticRegression({ inputs: 2, classes: 2 });
    await train(lr, data, { epochs: 10, learningRate: 0.05, seed: 4 });
    assert.ok(evaluate(lr, test).accuracy < 0.7);
  });

  it('multinomial logistic regression with SGD+momentum fits blobs, deterministically for a seed', async () => {
    const data = blobs(1500, 5);
    const runOnce = async () => {
      const net = logisticRegression({ inputs: 4, classes: 3 });
      await train(net, data, { epochs: 5, optimizer: 'sgd', learningRate: 0.05, momentum: 0.9, seed: 9 });
      return net;
    };
    const a = await runOnce();
    const b = await runOnce();
    assert.deepEqual([...a.params], [...b.params]);
    assert.ok(evaluate(a, blobs(1000, 6)).accuracy > 0.85);
  });

  it('early stopping restores the best validation epoch and reports progress', async () => {
    // Few rows, a big net and a high learning rate: validation loss rises after a few epochs.
    const data = blobs(120, 7);
    const net = mlp({ inputs: 4, hidden: [64], classes: 3, rng: 1 });
    const events: TrainProgress[] = [];
    const r = await train(net, data, {
      epochs: 200,
      batchSize: 16,
      learningRate: 0.02,
      validation: 0.3,
      patience: 5,
      seed: 2,
      onProgress: (p) => events.push(p),
    });
    assert.ok(r.stoppedEarly, 'stopped early');
    assert.equal(r.history.length, r.bestEpoch + 5);
    const best = Math.min(...r.history.map((h) => h.valLoss!));
    assert.equal(r.history[r.bestEpoch - 1]!.valLoss, best);
    const epochEvents = events.filter((e) => e.phase === 'epoch');
    assert.equal(epochEvents.length, r.history.length);
    assert.equal(events.filter((e) => e.phase === 'batch' && e.epoch === 1).length, Math.ceil(84 / 16));
  });

  it('balanced class weights match scikit-learn and raise minority recall', async () => {
    const rng = new SeededRng(11);
    const rows = 2000;
    const x = new Float32Array(rows * 2);
    const y = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      y[i] = rng.bernoulli(0.05) ? 1 : 0;
      x[2 * i] = rng.normal(y[i] ? 1 : 0, 1);
      x[2 * i + 1] = rng.normal(0, 1);
    }
    const data = { x, y, rows };
    const cw = resolveClassWeights('balanced', data, 2);
    const n1 = y.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(cw[1]! - rows / (2 * n1)) < 1e-12);
    const recall = async (classWeights: 'balanced' | null) => {
      const net = logisticRegression({ inputs: 2, classes: 2 });
      await train(net, data, { epochs: 10, learningRate: 0.05, classWeights, seed: 1 });
      const p = net.predict(x, rows);
      let tp = 0;
      for (let i = 0; i < rows; i++) if (y[i] === 1 && p[i] === 1) tp++;
      return tp / n1;
    };
    assert.ok((await recall('balanced')) > (await recall(null)) + 0.3);
  });

  it('fails closed on bad data and parameters', async () => {
    const net = new Network({ inputs: 2, classes: 2 });
    const x = new Float32Array([0, 1, 2, Number.NaN]);
    await assert.rejects(
      train(net, { x, y: new Int32Array([0, 1]), rows: 2 }),
      (e) => isBulwarkError(e, 'ERR_DATA_VALUE') && /row 1, feature 1/.test(e.message),
    );
    await assert.rejects(
      train(net, { x: new Float32Array(4), y: new Int32Array([1, 1]), rows: 2 }),
      (e) => isBulwarkError(e, 'ERR_LABEL_INVALID') && /only one class/.test(e.message),
    );
    await assert.rejects(train(net, { x: new Float32Array(4), y: new Int32Array([0, 2]), rows: 2 }), (e) =>
      isBulwarkError(e, 'ERR_LABEL_INVALID'),
    );
    await assert.rejects(train(net, { x: new Float32Array(3), y: new Int32Array([0, 1]), rows: 2 }), (e) =>
      isBulwarkError(e, 'ERR_SHAPE_MISMATCH'),
    );
    await assert.rejects(train(net, xor(10, 1), { epochs: 0 }), /epochs/);
    await assert.rejects(train(net, xor(10, 1), { patience: 3 }), /patience/);
    await assert.rejects(train(net, xor(10, 1), { classWeights: [1] }), (e) =>
      isBulwarkError(e, 'ERR_LABEL_INVALID'),
    );
    const big = xor(100, 1);
    big.x.forEach((v, i) => {
      big.x[i] = v * 1e30;
    });
    await assert.rejects(train(net, big, { optimizer: 'sgd', learningRate: 1e10 }), (e) =>
      isBulwarkError(e, 'ERR_TRAINING_DIVERGED'),
    );
  });
});

describe('signals during training', () => {
  it('gives the event loop a turn within a long epoch (Ctrl-C/SIGTERM are handled there), same result', async () => {
    // It yielded only between epochs: one MLP epoch on a large file is seconds of synchronous work.
    const data = blobs(2000, 11);
    const probe = eventLoopProbe();
    let ranBeforeBatch2: boolean | undefined;
    const net = mlp({ inputs: 4, hidden: [8], classes: 3, rng: 5 });
    const reference = net.clone();
    await train(net, data, {
      epochs: 2,
      batchSize: 50,
      seed: 3,
      onProgress: (p) => {
        if (p.phase !== 'batch' || p.epoch !== 1) return;
        if (p.batch === 1) probe.block();
        if (p.batch === 2) ranBeforeBatch2 = probe.ran;
      },
    });
    assert.equal(ranBeforeBatch2, true, 'the event loop ran between two batches of one epoch');
    await train(reference, data, { epochs: 2, batchSize: 50, seed: 3 });
    assert.deepEqual(net.params, reference.params);
  });
});

describe('learning-rate schedule', () => {
  it('cosine anneals from the learning rate towards 0 over all steps, then restores it', async () => {
    const rates: number[] = [];
    const inner = new Sgd({ learningRate: 0.1, momentum: 0 });
    const recorder = {
      get learningRate() {
        return inner.learningRate;
      },
      set learningRate(v: number) {
        inner.learningRate = v;
      },
      step(p: Float32Array, g: Float32Array) {
        rates.push(inner.learningRate);
        inner.step(p, g);
      },
    };
    const net = logisticRegression({ inputs: 2, classes: 2 });
    await train(net, xor(100, 1), { epochs: 4, batchSize: 10, optimizer: recorder, schedule: 'cosine' });
    assert.equal(rates.length, 40);
    assert.equal(rates[0], 0.1);
    assert.ok(Math.abs(rates[20]! - 0.05) < 1e-12);
    assert.ok(rates[39]! < 0.001 && rates[39]! > 0);
    for (let i = 1; i < 40; i++) assert.ok(rates[i]! < rates[i - 1]!);
    assert.equal(inner.learningRate, 0.1);
  });
});

describe('optimisers', () => {
  it('Adam and SGD minimise a quadratic; Adam first step is lr * sign(g)', () => {
    const p = new Float32Array([1, -2]);
    const adam = new Adam({ learningRate: 0.1 });
    adam.step(p, new Float32Array([3, -0.5]));
    assert.ok(Math.abs(p[0]! - 0.9) < 1e-6 && Math.abs(p[1]! - -1.9) < 1e-6);
    const q = new Float32Array([5]);
    const sgd = new Sgd({ learningRate: 0.1, momentum: 0.5 });
    for (let i = 0; i < 100; i++) sgd.step(q, new Float32Array([2 * q[0]!]));
    assert.ok(Math.abs(q[0]!) < 1e-4);
    assert.throws(() => new Sgd({ learningRate: 0.1, momentum: 1 }), /momentum/);
  });
});

describe('Adam SIMD path', () => {
  it('matches the textbook update computed in double precision over 3 steps', () => {
    const n = 2051; // >= 1024 takes the WebAssembly path; not a multiple of 4
    const rng = new SeededRng(3);
    const p = rng.fillNormal(new Float32Array(n));
    const ref = Float64Array.from(p);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    const adam = new Adam({ learningRate: 0.01 });
    for (let t = 1; t <= 3; t++) {
      const g = rng.fillNormal(new Float32Array(n));
      adam.step(p, g);
      for (let i = 0; i < n; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
        const mh = m[i]! / (1 - 0.9 ** t);
        const vh = v[i]! / (1 - 0.999 ** t);
        ref[i] = ref[i]! - (0.01 * mh) / (Math.sqrt(vh) + 1e-8);
      }
    }
    for (let i = 0; i < n; i++) assert.ok(Math.abs(p[i]! - ref[i]!) < 1e-5, `p[${i}] ${p[i]} vs ${ref[i]}`);
  });
});
