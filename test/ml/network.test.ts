import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import type { ActivationName } from '../../src/ml/activations.js';
import { logisticRegression, Network, type Preprocessing } from '../../src/ml/network.js';
import { reference64 } from './reference.js';

/**
 * Gradients against central finite differences. The forward pass is float32, so the step is 1e-2 for
 * the parameters and the tolerance is relative to the gradient's scale; a sign error, a missing
 * factor or a wrong layer shows up as an O(1) difference.
 */
function fdCheck(
  analytic: ArrayLike<number>,
  f: (i: number, h: number) => number,
  idx: number[],
  h = 1e-2,
  tol = 2e-3,
) {
  for (const i of idx) {
    const fd = (f(i, h) - f(i, -h)) / (2 * h);
    const a = analytic[i]!;
    assert.ok(
      Math.abs(fd - a) <= tol * Math.max(1, Math.abs(a), Math.abs(fd)),
      `index ${i}: analytic ${a}, finite difference ${fd}`,
    );
  }
}

function sampleIdx(rng: SeededRng, n: number, count: number): number[] {
  return Array.from({ length: Math.min(n, count) }, () => rng.int(n));
}

interface Case {
  name: string;
  hidden: number[];
  activation: ActivationName;
  classes: number;
  prep: boolean;
}

const cases: Case[] = [
  { name: 'binary logistic regression', hidden: [], activation: 'relu', classes: 2, prep: true },
  { name: 'multinomial logistic regression', hidden: [], activation: 'relu', classes: 4, prep: false },
  { name: 'tanh MLP, softmax', hidden: [7, 5], activation: 'tanh', classes: 3, prep: true },
  { name: 'relu MLP, sigmoid head', hidden: [6], activation: 'relu', classes: 2, prep: false },
  { name: 'sigmoid MLP', hidden: [5], activation: 'sigmoid', classes: 3, prep: false },
  { name: 'tempered-sigmoid MLP', hidden: [5, 4], activation: 'tempered-sigmoid', classes: 3, prep: true },
];

function makeCase(c: Case, seed: number) {
  const rng = new SeededRng(seed);
  const d = 6;
  const rows = 9;
  const prep: Preprocessing | null = c.prep
    ? {
        kind: 'sub-div',
        sub: rng.fillUniform(new Float32Array(d), -1, 1),
        div: rng.fillUniform(new Float32Array(d), 0.5, 2),
      }
    : null;
  const net = new Network({
    inputs: d,
    hidden: c.hidden,
    activation: c.activation,
    classes: c.classes,
    rng: seed,
    preprocessing: prep,
    tempered: { scale: 1.5, inverseTemperature: 1.2, offset: 0.4 },
  });
  // Logistic regression starts at zero; give it non-trivial weights.
  if (c.hidden.length === 0) rng.fillUniform(net.params, -0.5, 0.5);
  const x = rng.fillUniform(new Float32Array(rows * d), -2, 2);
  const y = Int32Array.from({ length: rows }, () => rng.int(c.classes));
  const w = Float32Array.from({ length: rows }, () => rng.uniform(0.5, 2));
  return { net, x, y, w, rows, d, rng };
}

describe('Network gradients match finite differences', () => {
  cases.forEach((c, ci) => {
    it(`${c.name}: parameter gradient with L2 and sample weights`, () => {
      const { net, x, y, w, rows, rng } = makeCase(c, 100 + ci);
      const opts = { l2: 0.03, sampleWeights: w };
      const { gradient } = net.lossAndGradient(x, y, rows, opts);
      const p0 = net.params.slice();
      fdCheck(
        gradient,
        (i, h) => {
          net.params.set(p0);
          net.params[i] = p0[i]! + h;
          const l = net.lossAndGradient(x, y, rows, opts).loss;
          net.params.set(p0);
          return l;
        },
        sampleIdx(rng, net.params.length, 40),
      );
    });

    it(`${c.name}: input gradient of each example's loss`, () => {
      const { net, x, y, w, rows, d, rng } = makeCase(c, 200 + ci);
      const { gradient, losses } = net.inputGradient(x, y, rows, { sampleWeights: w });
      assert.equal(gradient.length, rows * d);
      fdCheck(
        gradient,
        (i, h) => {
          const r = Math.floor(i / d);
          const xr = x.slice(r * d, (r + 1) * d);
          xr[i % d] = xr[i % d]! + h;
          const one = net.inputGradient(xr, y.subarray(r, r + 1), 1, { sampleWeights: w.subarray(r, r + 1) });
          return one.losses[0]!;
        },
        sampleIdx(rng, rows * d, 30),
      );
      // Each per-example loss equals the batch-of-one loss (no batch coupling).
      const l3 = net.inputGradient(x.subarray(3 * d, 4 * d), y.subarray(3, 4), 1, {
        sampleWeights: w.subarray(3, 4),
      }).losses[0]!;
      assert.ok(Math.abs(l3 - losses[3]!) < 1e-6);
    });

    it(`${c.name}: per-example gradient norms and clipped sum equal the materialised gradients`, () => {
      const { net, x, y, w, rows, d } = makeCase(c, 300 + ci);
      const norms = net.perExampleGradientNorms(x, y, rows, { sampleWeights: w });
      const perEx: Float32Array[] = [];
      for (let r = 0; r < rows; r++) {
        const g = net.lossAndGradient(x.subarray(r * d, (r + 1) * d), y.subarray(r, r + 1), 1, {
          sampleWeights: w.subarray(r, r + 1),
        }).gradient;
        perEx.push(g);
        let sq = 0;
        for (const v of g) sq += v * v;
        assert.ok(
          Math.abs(Math.sqrt(sq) - norms[r]!) <= 1e-4 * Math.max(1, norms[r]!),
          `row ${r}: ${Math.sqrt(sq)} vs ${norms[r]}`,
        );
      }
      const sorted = [...norms].sort((a, b) => a - b);
      const C = sorted[Math.floor(rows / 2)]!; // about half the examples get clipped
      const { sum, clipped, norms: n2 } = net.clippedGradientSum(x, y, rows, C, { sampleWeights: w });
      assert.deepEqual([...n2], [...norms]);
      assert.equal(clipped, norms.filter((v) => v > C).length);
      const expect = new Float64Array(net.params.length);
      perEx.forEach((g, r) => {
        const f = Math.min(1, C / norms[r]!);
        for (let i = 0; i < g.length; i++) expect[i] = expect[i]! + f * g[i]!;
      });
      for (let i = 0; i < expect.length; i++)
        assert.ok(Math.abs(expect[i]! - sum[i]!) < 1e-4 * Math.max(1, Math.abs(expect[i]!)));
    });
  });
});

describe('Network.backward with a custom loss', () => {
  it('input and parameter gradients of sum(logits²)/2 match finite differences', () => {
    const { net, x, rows, d, rng } = makeCase(cases[5]!, 77);
    const loss = () => {
      const z = net.logits(x, rows);
      let s = 0;
      for (const v of z) s += v * v;
      return s / 2;
    };
    const cache = net.forward(x, rows);
    const z = cache.acts[net.layerCount]!;
    const g = net.backward(cache, z, { input: true, params: true });
    const p0 = net.params.slice();
    fdCheck(
      g.params!,
      (i, h) => {
        net.params.set(p0);
        net.params[i] = p0[i]! + h;
        const l = loss();
        net.params.set(p0);
        return l;
      },
      sampleIdx(rng, net.params.length, 25),
    );
    const x0 = x.slice();
    fdCheck(
      g.input!,
      (i, h) => {
        x.set(x0);
        x[i] = x0[i]! + h;
        const l = loss();
        x.set(x0);
        return l;
      },
      sampleIdx(rng, rows * d, 20),
    );
    assert.equal(net.backward(cache, z).params, null);
    assert.throws(
      () => net.backward(cache, new Float32Array(3)),
      (e) => isBulwarkError(e, 'ERR_SHAPE_MISMATCH'),
    );
  });
});

describe('Network', () => {
  it('sigmoid head probabilities are [1 - p, p] and predictions threshold at 0.5', () => {
    const net = logisticRegression({ inputs: 2, classes: 2 });
    net.params.set([1, -1, 0.5]);
    const x = new Float32Array([1, 0, 0, 3]);
    const p = net.predictProba(x, 2);
    const s = 1 / (1 + Math.exp(-1.5));
    assert.ok(Math.abs(p[1]! - s) < 1e-6 && Math.abs(p[0]! - (1 - s)) < 1e-6);
    assert.deepEqual([...net.predict(x, 2)], [1, 0]);
  });

  it('toJSON / load round-trips and rejects other versions and shapes', () => {
    const net = new Network({ inputs: 3, hidden: [4], classes: 3, activation: 'tanh', rng: 5 });
    net.setPreprocessing({
      kind: 'mul-add',
      mul: new Float32Array([1, 2, 3]),
      add: new Float32Array([0, 1, 0]),
    });
    const json = JSON.parse(JSON.stringify(net.toJSON()));
    const back = Network.load(json);
    assert.deepEqual([...back.params], [...net.params]);
    const x = new Float32Array([0.1, 0.2, 0.3]);
    assert.deepEqual([...back.predictProba(x, 1)], [...net.predictProba(x, 1)]);
    assert.throws(
      () => Network.load({ ...json, version: 99 }),
      (e) => isBulwarkError(e, 'ERR_MODEL_STATE') && /version 99/.test(e.message),
    );
    assert.throws(
      () => Network.load({ ...json, hidden: [5] }),
      (e) => isBulwarkError(e, 'ERR_MODEL_STATE') && /params has/.test(e.message),
    );
    assert.throws(
      () => Network.load('x'),
      (e) => isBulwarkError(e, 'ERR_MODEL_STATE'),
    );
  });

  it("init 'truncated-normal' draws TensorFlow 1's truncated normal, sd sqrt(2 / fan-in), on every layer", () => {
    const spec = { inputs: 784, hidden: [256], classes: 10, rng: 7 } as const;
    const net = new Network({ ...spec, init: 'truncated-normal' });
    // A standard normal truncated to [-2, 2] has variance 1 - 4 phi(2) / (Phi(2) - Phi(-2)) = 0.77374.
    const truncatedSd = Math.sqrt(0.773741);
    for (let l = 0; l < net.layerCount; l++) {
      const w = net.weights(l);
      const nominal = Math.sqrt(2 / (l === 0 ? 784 : 256));
      let sum = 0;
      let sq = 0;
      let max = 0;
      for (const v of w) {
        sum += v;
        sq += v * v;
        max = Math.max(max, Math.abs(v));
      }
      const mean = sum / w.length;
      const sd = Math.sqrt(sq / w.length - mean * mean);
      assert.ok(max <= 2 * nominal + 1e-7, `layer ${l}: |w| ${max} beyond 2 sd`);
      // Within 4 standard errors of 0.
      assert.ok(
        Math.abs(mean) < (4 * truncatedSd * nominal) / Math.sqrt(w.length),
        `layer ${l}: mean ${mean}`,
      );
      // 200,704 and 2,560 draws: the sd's relative standard error is about 0.2 % and 1.5 %.
      const tol = l === 0 ? 0.01 : 0.06;
      assert.ok(Math.abs(sd / nominal - truncatedSd) < tol, `layer ${l}: sd ratio ${sd / nominal}`);
      assert.ok(net.bias(l).every((b) => b === 0));
    }
    assert.deepEqual(new Network({ ...spec, init: 'truncated-normal' }).params, net.params);
    assert.notDeepEqual(new Network(spec).params, net.params);
    assert.throws(
      () => new Network({ ...spec, init: 'normal' as never }),
      (e) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') &&
        /^init: expected one of auto, truncated-normal/.test(e.message),
    );
  });

  it('rejects bad labels and parameters with their codes', () => {
    const net = new Network({ inputs: 2, classes: 3 });
    assert.throws(
      () => net.lossAndGradient(new Float32Array(2), [3], 1),
      (e) => isBulwarkError(e, 'ERR_LABEL_INVALID') && /row 0/.test(e.message),
    );
    assert.throws(
      () => new Network({ inputs: 2, classes: 1 }),
      (e) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /classes/.test(e.message),
    );
    assert.throws(() => new Network({ inputs: 2, classes: 3, head: 'sigmoid' }), /head/);
    // Layer sizes too large to allocate are refused by name, not by a RangeError in the allocation.
    assert.throws(
      () => new Network({ inputs: 10, classes: 2, hidden: [65536, 65536] }),
      (e) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^hidden: .*parameters/.test(e.message),
    );
    assert.throws(
      () => net.forward(new Float32Array(5), 2),
      (e) => isBulwarkError(e, 'ERR_SHAPE_MISMATCH'),
    );
  });
});

describe('Network.backwardFrom: input gradient of a function of a hidden layer', () => {
  // F(x) = sum over rows and units of c ⊙ h + (h ⊙ h) / 2, h = acts[layer]: its upstream gradient
  // dF/dh = c + h involves the activations themselves, as a Mahalanobis score's does.
  const H = 1e-5;
  // The analytic gradient is float32 (forward and backward); against float64 differences it is
  // within float32 rounding of the chain of products, far below 1e-4 relative. A missing activation
  // derivative, a wrong layer or a dropped preprocessing slope is an O(1) error.
  const TOL = 1e-4;
  const preps: (Preprocessing | null)[] = [
    null,
    {
      kind: 'sub-div',
      sub: Float32Array.of(0.1, -0.2, 0.3, 0, 0.5),
      div: Float32Array.of(0.7, 1.5, 2, 0.9, 1.1),
    },
    {
      kind: 'mul-add',
      mul: Float32Array.of(1.3, -0.6, 0.8, 2, 0.5),
      add: Float32Array.of(0, 0.2, -0.1, 0.4, 0),
    },
  ];
  const activations: ActivationName[] = ['relu', 'tanh', 'sigmoid', 'tempered-sigmoid', 'identity'];
  activations.forEach((activation, ai) => {
    for (const classes of [2, 3]) {
      it(`${activation}, ${classes === 2 ? 'sigmoid head' : 'softmax'}: every layer 1..L matches float64 central differences`, () => {
        const rng = new SeededRng(900 + 10 * ai + classes);
        const d = 5;
        const rows = 4;
        const net = new Network({
          inputs: d,
          hidden: [6, 4],
          activation,
          classes,
          rng: 900 + ai,
          preprocessing: preps[(ai + classes) % preps.length] ?? null,
          tempered: { scale: 1.5, inverseTemperature: 1.2, offset: 0.4 },
        });
        rng.fillUniform(net.params, -0.8, 0.8); // biases too, so no unit is dead at every row
        const x = rng.fillUniform(new Float32Array(rows * d), -1.5, 1.5);
        const cache = net.forward(x, rows);
        const ref = reference64(net, x, rows);
        for (let l = 0; l <= net.layerCount; l++) {
          const a = cache.acts[l]!;
          for (let i = 0; i < a.length; i++)
            assert.ok(
              Math.abs(a[i]! - ref[l]![i]!) <= 1e-5 * Math.max(1, Math.abs(ref[l]![i]!)),
              `acts[${l}][${i}]`,
            );
        }
        for (let layer = 1; layer <= net.layerCount; layer++) {
          const width = net.sizes[layer]!;
          const c = Float64Array.from({ length: rows * width }, () => rng.uniform(-1, 1));
          const F = (xs: ArrayLike<number>): Float64Array => {
            const h = reference64(net, xs, rows)[layer]!;
            const per = new Float64Array(rows);
            for (let i = 0; i < h.length; i++) {
              const r = Math.floor(i / width);
              per[r] = per[r]! + c[i]! * h[i]! + (h[i]! * h[i]!) / 2;
            }
            return per;
          };
          const h = cache.acts[layer]!;
          const upstream = Float32Array.from(h, (v, i) => c[i]! + v);
          const up0 = upstream.slice();
          const g = net.backwardFrom(cache, layer, upstream, { input: true, params: true });
          assert.deepEqual(upstream, up0, 'the upstream gradient is not modified');
          const gi = g.input!;
          assert.equal(gi.length, rows * d);
          const x64 = Float64Array.from(x);
          for (let i = 0; i < rows * d; i++) {
            const r = Math.floor(i / d);
            const xp = x64.slice();
            const xm = x64.slice();
            xp[i] = xp[i]! + H;
            xm[i] = xm[i]! - H;
            // Row r's F depends on row r's input only.
            const fd = (F(xp)[r]! - F(xm)[r]!) / (2 * H);
            assert.ok(
              Math.abs(gi[i]! - fd) <= TOL * Math.max(1, Math.abs(fd)),
              `layer ${layer}, input ${i}: analytic ${gi[i]}, central difference ${fd}`,
            );
          }
          // Parameter gradient of the sum over rows: the same differences on the weights; layers after
          // `layer` have none.
          const total = (): number => F(x64).reduce((s, v) => s + v, 0);
          const gp = g.params!;
          const p0 = net.params.slice();
          for (const idx of Array.from({ length: 12 }, () => rng.int(net.params.length))) {
            // float32 parameters: step by float32-representable amounts around p0 (exact in float64).
            const step = 2 ** -12;
            net.params[idx] = p0[idx]! + step;
            const fp = total();
            net.params[idx] = p0[idx]! - step;
            const fm = total();
            net.params.set(p0);
            const fd = (fp - fm) / (2 * step);
            assert.ok(
              Math.abs(gp[idx]! - fd) <= 1e-3 * Math.max(1, Math.abs(fd)),
              `layer ${layer}, param ${idx}: analytic ${gp[idx]}, central difference ${fd}`,
            );
          }
          for (let l = layer; l < net.layerCount; l++) {
            const w = net.weights(l);
            const off = w.byteOffset / 4;
            for (let i = off; i < off + w.length + net.sizes[l + 1]!; i++) assert.equal(gp[i], 0);
          }
        }
        // From the last layer it is `backward` exactly.
        const dz = rng.fillUniform(new Float32Array(rows * net.outputs), -1, 1);
        assert.deepEqual(net.backwardFrom(cache, net.layerCount, dz).input, net.backward(cache, dz).input);
      });
    }
  });

  it('refuses a layer out of range and an upstream gradient of the wrong width, naming them', () => {
    const net = new Network({ inputs: 3, hidden: [4], classes: 3, rng: 1 });
    const cache = net.forward(new Float32Array(6), 2);
    for (const layer of [0, 3, 1.5]) {
      assert.throws(
        () => net.backwardFrom(cache, layer, new Float32Array(8)),
        (e) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^layer: /.test(e.message),
      );
    }
    assert.throws(
      () => net.backwardFrom(cache, 1, new Float32Array(6)),
      (e) => isBulwarkError(e, 'ERR_SHAPE_MISMATCH') && /dActs/.test(e.message),
    );
  });
});
