import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import { logisticRegression, mlp } from '../../src/ml/index.js';
import { attackLoss, networkModel } from '../../src/robust/index.js';

/**
 * Network.backward (the small addition to src/ml this issue needed) and the robust losses: input and
 * parameter gradients of arbitrary losses of the logits against central finite differences, and the
 * cross-entropy case against Network's own lossAndGradient / inputGradient.
 */
describe('Network.backward and attack losses', () => {
  const d = 7;
  const rows = 5;
  const rng = new SeededRng(3);
  const x = Float32Array.from({ length: rows * d }, () => rng.uniform(-1, 1));

  for (const [name, classes, hidden] of [
    ['softmax MLP', 4, [6]],
    ['sigmoid MLP', 2, [5, 4]],
    ['multinomial LR', 3, []],
  ] as const) {
    it(`${name}: CE delta reproduces lossAndGradient and inputGradient`, () => {
      const net =
        hidden.length === 0
          ? logisticRegression({ inputs: d, classes })
          : mlp({ inputs: d, hidden: [...hidden], classes, activation: 'tanh', rng: 2 });
      if (hidden.length === 0) for (let i = 0; i < net.params.length; i++) net.params[i] = rng.uniform(-1, 1);
      net.setPreprocessing({
        kind: 'sub-div',
        sub: Float32Array.from({ length: d }, () => rng.uniform(-0.2, 0.2)),
        div: Float32Array.from({ length: d }, () => rng.uniform(0.5, 2)),
      });
      const y = Int32Array.from({ length: rows }, (_, i) => i % classes);
      const cache = net.forward(x, rows);
      const z = cache.acts[cache.acts.length - 1] as Float32Array;
      const k = net.outputs;
      const dz = new Float32Array(rows * k);
      for (let r = 0; r < rows; r++) {
        if (k === 1) dz[r] = (1 / (1 + Math.exp(-(z[r] as number))) - (y[r] as number)) / rows;
        else {
          let s = 0;
          for (let j = 0; j < k; j++) s += Math.exp(z[r * k + j] as number);
          for (let j = 0; j < k; j++)
            dz[r * k + j] = (Math.exp(z[r * k + j] as number) / s - (j === y[r] ? 1 : 0)) / rows;
        }
      }
      const b = net.backward(cache, dz, { input: true, params: true });
      const ref = net.lossAndGradient(x, y, rows);
      const refIn = net.inputGradient(x, y, rows).gradient;
      for (let i = 0; i < ref.gradient.length; i++) {
        assert.ok(Math.abs((b.params?.[i] as number) - (ref.gradient[i] as number)) < 1e-6, `param ${i}`);
      }
      for (let i = 0; i < refIn.length; i++) {
        assert.ok(Math.abs((b.input?.[i] as number) * rows - (refIn[i] as number)) < 1e-5, `input ${i}`);
      }
    });
  }

  for (const loss of ['ce', 'margin', 'dlr'] as const) {
    it(`${loss} loss: input gradient through networkModel matches finite differences`, () => {
      const classes = 4;
      const net = mlp({ inputs: d, hidden: [8], classes, activation: 'tanh', rng: 5 });
      const model = networkModel(net);
      const y = Int32Array.from({ length: rows }, (_, i) => i % classes);
      const f = (xx: Float32Array) => attackLoss(loss, model.logits(xx, rows), y, rows, classes).values;
      const { gradient } = model.gradient(x, rows, (z) => attackLoss(loss, z, y, rows, classes).grad);
      const h = 1e-2;
      for (let i = 0; i < rows * d; i += 3) {
        const xp = x.slice();
        const xm = x.slice();
        xp[i] = (xp[i] as number) + h;
        xm[i] = (xm[i] as number) - h;
        const r = Math.floor(i / d);
        const fd = ((f(xp)[r] as number) - (f(xm)[r] as number)) / (2 * h);
        const a = gradient[i] as number;
        // Margin and DLR are smooth away from ties between logits, which random points avoid.
        assert.ok(
          Math.abs(fd - a) <= 3e-3 * Math.max(1, Math.abs(a)),
          `row ${r} feature ${i % d}: ${a} vs ${fd}`,
        );
      }
    });
  }

  it('a sigmoid network is seen as logits [0, z]', () => {
    const net = mlp({ inputs: d, hidden: [4], classes: 2, rng: 9 });
    const m = networkModel(net);
    const z = net.logits(x, rows);
    const wide = m.logits(x, rows);
    for (let r = 0; r < rows; r++) {
      assert.equal(wide[2 * r], 0);
      assert.equal(wide[2 * r + 1], z[r]);
    }
  });
});
