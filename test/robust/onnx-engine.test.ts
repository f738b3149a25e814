import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { mlp, OnnxGradientEngine } from '../../src/ml/index.js';
import { gradientStep } from '../../src/robust/attacks/evasion/pgd.js';
import { adversarialTrain, InputDomain, networkModel, pgd, pgdAsync } from '../../src/robust/index.js';
import { blobs } from './helpers.js';

/**
 * ONNX Runtime as the engine of adversarial training's PGD steps (src/ml/onnx/gradient-engine.ts): the
 * real onnxruntime-node session, checked against the network's own JS/WebAssembly path.
 */
describe('ONNX Runtime gradient engine', () => {
  const rng = new SeededRng(12);
  const d = 23;
  const rows = 37;
  const k = 5;
  const x = Float32Array.from({ length: rows * d }, () => rng.uniform(0, 1));
  const y = Int32Array.from({ length: rows }, () => rng.int(k));

  for (const [name, hidden, prep] of [
    ['one hidden layer', [64], false],
    ['two hidden layers with sub-div preprocessing', [40, 24], true],
  ] as const) {
    it(`input gradient and logits match the JS path within float32 tolerance (${name})`, async () => {
      const net = mlp({ inputs: d, hidden: [...hidden], classes: k, rng: 3 });
      if (prep) {
        net.setPreprocessing({
          kind: 'sub-div',
          sub: Float32Array.from({ length: d }, () => rng.uniform(0, 0.5)),
          div: Float32Array.from({ length: d }, () => rng.uniform(0.2, 2)),
        });
      }
      const engine = await OnnxGradientEngine.create(net, { threads: 1 });
      try {
        const ref = net.inputGradient(x, y, rows).gradient;
        const got = await engine.inputGradient(x, y, rows);
        let scale = 0;
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        assert.ok(scale > 1e-3, 'gradients are not trivially zero');
        for (let i = 0; i < ref.length; i++) {
          const a = ref[i] as number;
          const b = got.gradient[i] as number;
          assert.ok(Math.abs(a - b) <= 1e-5 * scale + 1e-4 * Math.abs(a), `gradient ${i}: ${a} vs ${b}`);
        }
        const z = net.logits(x, rows);
        for (let i = 0; i < z.length; i++)
          assert.ok(Math.abs((z[i] as number) - (got.logits[i] as number)) < 1e-4, `logit ${i}`);
        // The training step: mean sample-weighted CE and its parameter gradient.
        const w = Float32Array.from({ length: rows }, () => rng.uniform(0.5, 2));
        const refStep = net.lossAndGradient(x, y, rows, { sampleWeights: w });
        const step = await engine.lossAndGradient(x, y, rows, w);
        assert.ok(
          Math.abs(refStep.loss - step.loss) < 1e-5 * (1 + refStep.loss),
          `${refStep.loss} vs ${step.loss}`,
        );
        assert.equal(step.gradient.length, net.params.length);
        let pscale = 0;
        for (const v of refStep.gradient) pscale = Math.max(pscale, Math.abs(v));
        for (let i = 0; i < refStep.gradient.length; i++) {
          const a = refStep.gradient[i] as number;
          const g = step.gradient[i] as number;
          assert.ok(
            Math.abs(a - g) <= 1e-5 * pscale + 1e-4 * Math.abs(a),
            `param gradient ${i}: ${a} vs ${g}`,
          );
        }
        const unweighted = await engine.lossAndGradient(x, y, rows);
        assert.ok(Math.abs(unweighted.loss - net.lossAndGradient(x, y, rows).loss) < 1e-4);
        // The engine reads the parameters at each call: a changed weight changes the answer.
        net.params[5] = (net.params[5] as number) + 1;
        const after = await engine.inputGradient(x, y, rows);
        const ref2 = net.inputGradient(x, y, rows).gradient;
        let diff = 0;
        for (let i = 0; i < ref2.length; i++)
          diff = Math.max(diff, Math.abs((ref2[i] as number) - (after.gradient[i] as number)));
        assert.ok(diff <= 1e-5 * scale + 1e-4, `after a weight update: ${diff}`);
      } finally {
        await engine.close();
      }
    });
  }

  it('one PGD step equals the JS step and projection; many steps stay inside the eps-ball and range', async () => {
    const net = mlp({ inputs: d, hidden: [32], classes: k, rng: 4 });
    const domain = new InputDomain({ inputs: d, lower: 0, upper: 1, immutable: [0, 7] });
    const eps = 0.1;
    const alpha = 0.03;
    const start = domain.randomStart(x, rows, 'inf', eps, new SeededRng(2));
    const { lower, upper } = domain.linfBox(x, rows, eps);
    const step = Float32Array.from({ length: d }, (_, j) => (domain.mutable[j] === 1 ? alpha : 0));
    const engine = await OnnxGradientEngine.create(net);
    try {
      const one = await engine.pgd(start, y, rows, { lower, upper, step }, 1);
      const js = start.slice();
      const { gradient } = networkModel(net).gradient(js, rows, (z) => {
        const g = new Float32Array(z.length);
        for (let r = 0; r < rows; r++) {
          let m = -Infinity;
          for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j] as number);
          let s = 0;
          for (let j = 0; j < k; j++) s += Math.exp((z[r * k + j] as number) - m);
          for (let j = 0; j < k; j++)
            g[r * k + j] = Math.exp((z[r * k + j] as number) - m) / s - (j === y[r] ? 1 : 0);
        }
        return g;
      });
      gradientStep(js, gradient, rows, domain, 'inf', alpha, 1);
      domain.project(js, x, rows, 'inf', eps);
      let same = 0;
      for (let i = 0; i < js.length; i++) if (Math.abs((js[i] as number) - (one[i] as number)) < 1e-6) same++;
      // A coordinate whose gradient is within rounding of 0 may take the other sign: allow a handful.
      assert.ok(same >= js.length - 3, `${js.length - same} of ${js.length} coordinates differ`);
      const many = await engine.pgd(start, y, rows, { lower, upper, step }, 25);
      for (let i = 0; i < many.length; i++) {
        const j = i % d;
        const v = many[i] as number;
        assert.ok(v >= 0 && v <= 1, `range ${i}`);
        assert.ok(Math.abs(v - (x[i] as number)) <= eps + 1e-6, `ball ${i}`);
        if (domain.mutable[j] === 0) assert.equal(v, x[i]);
      }
      // The steps raise the loss.
      const loss = (z: Float32Array) => {
        let s = 0;
        for (let r = 0; r < rows; r++) {
          let m = -Infinity;
          for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j] as number);
          let e = 0;
          for (let j = 0; j < k; j++) e += Math.exp((z[r * k + j] as number) - m);
          s += m + Math.log(e) - (z[r * k + (y[r] as number)] as number);
        }
        return s / rows;
      };
      assert.ok(loss(net.logits(many, rows)) > loss(net.logits(x, rows)) + 0.05);
    } finally {
      await engine.close();
    }
  });

  it("soft targets: the input gradient is the soft-label cross-entropy's (TRADES's p' - p); bad ones are refused", async () => {
    const net = mlp({ inputs: d, hidden: [32], classes: k, rng: 6 });
    // Targets: the probabilities of another input, as TRADES's clean p.
    const other = Float32Array.from(x, (v, i) => Math.min(1, v + 0.05 * Math.sin(i)));
    const zo = net.logits(other, rows);
    const soft = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(zo[r * k + j] as number);
      for (let j = 0; j < k; j++) soft[r * k + j] = Math.exp(zo[r * k + j] as number) / s;
    }
    const ref = networkModel(net).gradient(x, rows, (z) => {
      const g = new Float32Array(z.length);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += Math.exp(z[r * k + j] as number);
        for (let j = 0; j < k; j++)
          g[r * k + j] = Math.exp(z[r * k + j] as number) / s - (soft[r * k + j] as number);
      }
      return g;
    }).gradient;
    const engine = await OnnxGradientEngine.create(net, { threads: 1 });
    try {
      const got = (await engine.inputGradient(x, { soft }, rows)).gradient;
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 1e-4, 'gradients are not trivially zero');
      for (let i = 0; i < ref.length; i++) {
        const a = ref[i] as number;
        const b = got[i] as number;
        assert.ok(Math.abs(a - b) <= 1e-4 * scale, `gradient ${i}: ${a} vs ${b}`);
      }
      // One-hot soft targets are the labels.
      const onehot = new Float32Array(rows * k);
      for (let r = 0; r < rows; r++) onehot[r * k + (y[r] as number)] = 1;
      const w = new Float32Array(rows).fill(1 / rows);
      const a = await engine.weightedGradient(x, { soft: onehot }, rows, w);
      const b = await engine.lossAndGradient(x, y, rows);
      assert.deepEqual(a.gradient, b.gradient);
      assert.equal(a.loss, b.loss);
      for (const [bad, re] of [
        [{ soft: soft.subarray(1) }, /^y\.soft: expected a Float32Array of 37 x 5 targets/],
        [{ soft: Float64Array.from(soft) as never }, /^y\.soft: /],
        [
          { soft: Float32Array.from(soft, (v, i) => (i === 7 ? Number.NaN : v)) },
          /^y\.soft\[7\]: expected a finite number/,
        ],
      ] as const) {
        await assert.rejects(
          engine.inputGradient(x, bad, rows),
          (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message),
        );
      }
      await assert.rejects(
        engine.weightedGradient(x, y, rows, w.subarray(1)),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^weights: expected 37 weights/.test(e.message),
      );
    } finally {
      await engine.close();
    }
  });

  it("TRADES on ONNX Runtime takes the JS engine's step: one batch of SGD gives the same weights and loss", async () => {
    const dd = 12;
    const all = blobs(96, dd, 4, 17, 0.1);
    const run = async (engine: 'js' | 'onnxruntime') => {
      const net = mlp({ inputs: dd, hidden: [24], classes: 4, rng: 8 });
      const before = net.params.slice();
      const r = await adversarialTrain(net, all, {
        method: 'trades',
        eps: 0.1,
        steps: 3,
        domain: InputDomain.box(dd),
        epochs: 1,
        batchSize: all.rows,
        optimizer: 'sgd',
        learningRate: 0.5,
        seed: 3,
        engine,
      });
      return { r, delta: Float32Array.from(net.params, (v, i) => v - (before[i] as number)) };
    };
    const js = await run('js');
    const ort = await run('onnxruntime');
    assert.equal(js.r.engine, 'js');
    assert.equal(ort.r.engine, 'onnxruntime');
    const lj = js.r.history[0]?.loss as number;
    const lo = ort.r.history[0]?.loss as number;
    assert.ok(Math.abs(lj - lo) < 1e-4 * lj, `loss ${lj} vs ${lo}`);
    assert.equal(js.r.history[0]?.adversarialAccuracy, ort.r.history[0]?.adversarialAccuracy);
    let scale = 0;
    for (const v of js.delta) scale = Math.max(scale, Math.abs(v));
    assert.ok(scale > 1e-3, 'the step moved the weights');
    for (let i = 0; i < js.delta.length; i++) {
      const a = js.delta[i] as number;
      const b = ort.delta[i] as number;
      assert.ok(Math.abs(a - b) <= 2e-3 * scale, `weight ${i}: step ${a} vs ${b}`);
    }
  });

  it('spinning threads change the scheduling, not the results; a non-boolean is refused', async () => {
    const net = mlp({ inputs: d, hidden: [32], classes: k, rng: 4 });
    const domain = InputDomain.box(d);
    const start = domain.randomStart(x, rows, 'inf', 0.1, new SeededRng(2));
    const { lower, upper } = domain.linfBox(x, rows, 0.1);
    const step = new Float32Array(d).fill(0.02);
    const run = async (spinning: boolean) => {
      const e = await OnnxGradientEngine.create(net, { threads: 2, spinning });
      try {
        return await e.pgd(start, y, rows, { lower, upper, step }, 10);
      } finally {
        await e.close();
      }
    };
    assert.deepEqual(await run(true), await run(false));
    await assert.rejects(
      OnnxGradientEngine.create(net, { spinning: 'yes' as never }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^spinning: expected a boolean/.test(e.message),
    );
  });

  it('linfBox is the L-inf projection as bounds', () => {
    const domain = new InputDomain({
      inputs: 4,
      lower: [0, -1, 0, 0],
      upper: [1, 1, 5, 1],
      scale: [1, 2, 1, 1],
      immutable: [3],
    });
    const x0 = Float32Array.from([0.05, 0.5, 4.95, 0.3]);
    const { lower, upper } = domain.linfBox(x0, 1, 0.1);
    const near = (a: ArrayLike<number>, b: number[]) => {
      for (const [i, v] of b.entries()) assert.ok(Math.abs((a[i] as number) - v) < 1e-6, `${i}: ${a[i]}`);
    };
    near(lower, [0, 0.3, 4.85, 0.3]);
    near(upper, [0.15, 0.7, 5, 0.3]);
  });

  it('adversarial training on ONNX Runtime gives a model as robust as the JS engine, and refuses runs it cannot do', async () => {
    const dd = 10;
    const classes = 3;
    const all = blobs(1300, dd, classes, 31, 0.1);
    const n = 1000;
    const trainSet = { x: all.x.slice(0, n * dd), y: all.y.slice(0, n), rows: n };
    const tx = all.x.slice(n * dd);
    const ty = all.y.slice(n);
    const domain = InputDomain.box(dd);
    const eps = 0.12;
    const opts = {
      method: 'pgd' as const,
      eps,
      steps: 7,
      domain,
      epochs: 10,
      batchSize: 50,
      learningRate: 3e-3,
      seed: 2,
    };
    const robust = (net: ReturnType<typeof mlp>) =>
      1 -
      pgd(networkModel(net), tx, ty, all.rows - n, { eps, domain, steps: 20, restarts: 2, seed: 1 })
        .successRate;
    const a = mlp({ inputs: dd, hidden: [32], classes, rng: 5 });
    const b = mlp({ inputs: dd, hidden: [32], classes, rng: 5 });
    const ha = await adversarialTrain(a, trainSet, { ...opts, engine: 'onnxruntime' });
    const hb = await adversarialTrain(b, trainSet, { ...opts, engine: 'js' });
    assert.equal(ha.engine, 'onnxruntime');
    assert.equal(hb.engine, 'js');
    const ra = robust(a);
    const rb = robust(b);
    assert.ok(Math.abs(ra - rb) < 0.08, `onnxruntime ${ra} vs js ${rb}`);
    // Same seed, same engine: the same weights.
    const a2 = mlp({ inputs: dd, hidden: [32], classes, rng: 5 });
    await adversarialTrain(a2, trainSet, { ...opts, engine: 'onnxruntime' });
    assert.deepEqual(a2.params, a.params);
    // TRADES too: as robust on either engine.
    const trades = { ...opts, method: 'trades' as const, beta: 3 };
    const ta = mlp({ inputs: dd, hidden: [32], classes, rng: 5 });
    const tb = mlp({ inputs: dd, hidden: [32], classes, rng: 5 });
    assert.equal(
      (await adversarialTrain(ta, trainSet, { ...trades, engine: 'onnxruntime' })).engine,
      'onnxruntime',
    );
    assert.equal((await adversarialTrain(tb, trainSet, { ...trades, engine: 'js' })).engine, 'js');
    const [rta, rtb] = [robust(ta), robust(tb)];
    assert.ok(Math.abs(rta - rtb) < 0.08, `TRADES: onnxruntime ${rta} vs js ${rtb}`);
    assert.ok(rta > 0.5, `TRADES on onnxruntime is robust: ${rta}`);
    // auto falls back to JS where the graph does not apply (tanh, L2); onnxruntime refuses.
    const tanh = mlp({ inputs: dd, hidden: [8], classes, activation: 'tanh', rng: 1 });
    const h = await adversarialTrain(tanh, trainSet, { ...opts, epochs: 1 });
    assert.equal(h.engine, 'js');
    for (const [net, o] of [
      [tanh, { ...opts, epochs: 1 }],
      [a, { ...opts, norm: '2' as const, epochs: 1 }],
    ] as const) {
      await assert.rejects(
        adversarialTrain(net, trainSet, { ...o, engine: 'onnxruntime' }),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^engine: expected js or auto for /.test(e.message),
      );
    }
    await assert.rejects(
      adversarialTrain(a, trainSet, { ...opts, engine: 'gpu' as never }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^engine/.test(e.message),
    );
    await assert.rejects(
      adversarialTrain(a, trainSet, { ...opts, learningRateDrop: { epoch: 11, factor: 0.1 } }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^learningRateDrop.epoch/.test(e.message),
    );
  });
});

describe('adversarialTrain engine auto: the fallbacks not covered above', () => {
  it('falls back to JS for a sigmoid head and for one-hot groups; onnxruntime refuses both', async () => {
    const dd = 6;
    const data = blobs(120, dd, 2, 3);
    // Features 4 and 5: a one-hot pair (exactly one is 1 in every row).
    for (let r = 0; r < data.rows; r++) {
      data.x[r * dd + 4] = r % 2;
      data.x[r * dd + 5] = 1 - (r % 2);
    }
    const box = { inputs: dd, lower: 0, upper: 1 };
    const opts = { method: 'pgd' as const, eps: 0.1, steps: 3, epochs: 1, batchSize: 40, seed: 1 };
    const cases = [
      // Two classes: a sigmoid head by default (the gradient graph is for softmax heads).
      [mlp({ inputs: dd, hidden: [8], classes: 2, rng: 1 }), new InputDomain(box)],
      [
        mlp({ inputs: dd, hidden: [8], classes: 2, head: 'softmax', rng: 1 }),
        new InputDomain({ ...box, categorical: [[4, 5]] }),
      ],
    ] as const;
    for (const [net, domain] of cases) {
      const h = await adversarialTrain(net, data, { ...opts, domain });
      assert.equal(h.engine, 'js');
      await assert.rejects(
        adversarialTrain(net, data, { ...opts, domain, engine: 'onnxruntime' }),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^engine: expected js or auto for /.test(e.message),
      );
    }
    // The same softmax network on a box without groups does run on ONNX Runtime.
    const [, [net]] = cases;
    const h = await adversarialTrain(net, data, { ...opts, domain: new InputDomain(box) });
    assert.equal(h.engine, 'onnxruntime');
  });
});

describe('pgdAsync on the ONNX Runtime engine', () => {
  it('finds the same adversarial examples as pgd, inside the ball and range, and refuses a foreign engine', async () => {
    const dd = 12;
    const classes = 4;
    const data = blobs(300, dd, classes, 8, 0.15);
    const net = mlp({ inputs: dd, hidden: [48], classes, rng: 2 });
    await adversarialTrain(
      net,
      { x: data.x, y: data.y, rows: data.rows },
      {
        method: 'pgd',
        eps: 0.01,
        domain: InputDomain.box(dd),
        epochs: 5,
        batchSize: 50,
        engine: 'js',
      },
    );
    const model = networkModel(net);
    const domain = InputDomain.box(dd);
    const o = { eps: 0.03, steps: 15, restarts: 2, domain, seed: 4, batchSize: 64 };
    const engine = await OnnxGradientEngine.create(net);
    const other = await OnnxGradientEngine.create(mlp({ inputs: dd, hidden: [48], classes, rng: 9 }));
    try {
      const sync = pgd(model, data.x, data.y, data.rows, o);
      const viaOrt = await pgdAsync(model, data.x, data.y, data.rows, { ...o, engine });
      assert.ok(sync.successRate > 0.1 && sync.successRate < 0.95, `success ${sync.successRate}`);
      let agree = 0;
      for (let i = 0; i < data.rows; i++) if (sync.success[i] === viaOrt.success[i]) agree++;
      assert.ok(agree >= data.rows - 3, `${data.rows - agree} rows differ`);
      for (let i = 0; i < viaOrt.x.length; i++) {
        const v = viaOrt.x[i] as number;
        assert.ok(v >= 0 && v <= 1 && Math.abs(v - (data.x[i] as number)) <= o.eps + 1e-6, `row value ${i}`);
      }
      await assert.rejects(
        pgdAsync(model, data.x, data.y, data.rows, { ...o, engine: other }),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^engine: /.test(e.message),
      );
      await assert.rejects(
        pgdAsync(model, data.x, data.y, data.rows, { ...o, loss: 'margin', engine }),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^engine: /.test(e.message),
      );
    } finally {
      await engine.close();
      await other.close();
    }
  });
});
