import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { datasetStatus, loadTabular } from '../../src/data/index.js';
import { accuracy, evaluate, type LabelledData, mlp } from '../../src/ml/index.js';
import {
  addGaussianNoise,
  createAccountant,
  fitDpLogisticRegression,
  INSECURE_NOISE_WARNING,
  NoiseSource,
  normCdf,
  objectivePerturbationCalibration,
  openLedger,
  poissonSample,
  sampleObjectiveNoise,
  trainDpSgd,
} from '../../src/privacy/index.js';
import { eventLoopProbe } from '../helpers/turns.js';
import { chiSquareCounts, gammaQ, ksTest } from './stats.js';

process.on('warning', (w) => {
  if ((w as { code?: string }).code !== INSECURE_NOISE_WARNING) process.stderr.write(`${w.message}\n`);
});
const seeded = (seed: number) => NoiseSource.insecureSeeded(seed, 'test');
/** An assert.rejects validator: a BulwarkError whose message starts with `prefix`. */
const param = (prefix: string) => (e: unknown) => isBulwarkError(e) && e.message.startsWith(prefix);
const ALPHA = 1e-3;
const tmp = mkdtempSync(join(tmpdir(), 'bulwark-dpm-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A deterministic 3-feature binary problem (the same formula produced the scikit-learn reference). */
function synthetic(n: number): LabelledData {
  const x = new Float32Array(n * 3);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 0.7);
    const b = Math.cos(i * 1.3);
    const c = ((i * 37) % 11) / 10 - 0.5;
    x.set([a, b, c], i * 3);
    y[i] = a + 0.5 * b - 0.3 * c + 0.3 * Math.sin(i * 5.1) > 0.1 ? 1 : 0;
  }
  return { x, y, rows: n };
}

describe('objective perturbation calibration', () => {
  it('add-remove: the Jacobian takes half of epsilon, the noise the other half with scale R/eps', () => {
    const c = objectivePerturbationCalibration({ epsilon: 1, rowNorm: 2 });
    assert.ok(Math.abs(c.epsilonJacobian - 0.5) < 1e-12);
    assert.ok(Math.abs(c.epsilonPrime + c.epsilonJacobian - 1) < 1e-12);
    assert.ok(Math.abs(c.l2 - (0.25 * 4) / Math.expm1(0.5)) < 1e-12);
    assert.ok(Math.abs(c.noiseScale - 2 / c.epsilonPrime) < 1e-12);
  });

  it('replace-one (CMS11): min(2 log(1 + x), −log(1 − x)) for the Jacobian, noise scale 2R/eps′', () => {
    for (const eps of [0.2, 1, 5]) {
      const c = objectivePerturbationCalibration({
        epsilon: eps,
        rowNorm: Math.sqrt(6),
        neighbours: 'replace-one',
      });
      const x = (0.25 * 6) / c.l2;
      const jac = Math.min(2 * Math.log1p(x), x < 1 ? -Math.log1p(-x) : Infinity);
      assert.ok(Math.abs(jac - eps / 2) < 1e-12, `eps ${eps}`);
      assert.ok(Math.abs(c.noiseScale - (2 * Math.sqrt(6)) / (eps / 2)) < 1e-9);
      // Never more penalty than CMS11's own choice cR²/(e^{ε/4} − 1).
      assert.ok(c.l2 <= (0.25 * 6) / Math.expm1(eps / 4) + 1e-12);
    }
  });

  it('a larger user penalty leaves more epsilon for the noise', () => {
    const c = objectivePerturbationCalibration({ epsilon: 1, rowNorm: 1, l2: 100 });
    assert.equal(c.l2, 100);
    assert.ok(Math.abs(c.epsilonJacobian - Math.log1p(0.25 / 100)) < 1e-15);
    assert.ok(c.epsilonPrime > 0.99);
  });

  it('the noise has a uniform direction and a Gamma(d, scale) norm (KS)', () => {
    const noise = seeded(61);
    const d = 4;
    const scale = 2.5;
    const norms: number[] = [];
    const mean = new Float64Array(d);
    for (let i = 0; i < 4000; i++) {
      const b = sampleObjectiveNoise(d, scale, noise);
      const nb = Math.hypot(...b);
      norms.push(nb);
      for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (b[j] as number) / nb / 4000;
    }
    assert.ok(ksTest(norms, (r) => 1 - gammaQ(d, r / scale)).pValue > ALPHA);
    for (const m of mean) assert.ok(Math.abs(m) < 0.05, `direction mean ${m}`);
  });
});

describe('DP logistic regression (objective perturbation)', () => {
  it('with negligible noise it finds the same minimiser as scikit-learn (L2, no intercept)', async () => {
    // scikit-learn 1.2.1: LogisticRegression(C=1/2, fit_intercept=False, tol=1e-12) on synthetic(400).
    const ref = [4.055993172592227, 1.9339915877162321, -0.7447307445868964];
    const r = await fitDpLogisticRegression(synthetic(400), {
      epsilon: 1e7,
      classes: 2,
      dataNorm: 10,
      l2: 2,
      fitIntercept: false,
      noise: seeded(62),
    });
    const w = r.model.weights(0);
    ref.forEach((v, j) => {
      assert.ok(Math.abs((w[j] as number) - v) < 1e-4, `w[${j}] = ${w[j]} vs ${v}`);
    });
    assert.ok((r.problems[0]?.gradientNorm ?? 1) < 1e-8);
    assert.deepEqual(r.event, { kind: 'pure', epsilon: 1e7 });
    // Nothing about the noise drawn is returned: its norm beside the weights identifies a member.
    assert.deepEqual(Object.keys(r.problems[0] ?? {}).sort(), [
      'epsilonJacobian',
      'epsilonPrime',
      'gradientNorm',
      'iterations',
      'l2',
      'noiseScale',
    ]);
  });

  it('one-hot (mostly zero) designs take the sparse path and reach the same minimiser as scikit-learn', async () => {
    // scikit-learn 1.2.1: LogisticRegression(C=1/3, fit_intercept=False, tol=1e-12) on this design.
    const ref = [
      -2.1182894953179345, -0.8467649476373993, -0.10302445178709052, 0.9075998513077947, 2.0832627105233144,
      2.8099042516352566,
    ];
    const n = 500;
    const x = new Float32Array(n * 6);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      x[i * 6 + (i % 5)] = 1;
      x[i * 6 + 5] = Math.sin(i * 0.37);
      y[i] = ((i % 5) - 2) * 0.4 + Math.fround(Math.sin(i * 0.37)) + 0.5 * Math.sin(i * 2.3) > 0 ? 1 : 0;
    }
    const r = await fitDpLogisticRegression(
      { x, y, rows: n },
      { epsilon: 1e7, classes: 2, dataNorm: 10, l2: 3, fitIntercept: false, noise: seeded(67) },
    );
    const w = r.model.weights(0);
    ref.forEach((v, j) => {
      assert.ok(Math.abs((w[j] as number) - v) < 1e-4, `w[${j}] = ${w[j]} vs ${v}`);
    });
  });

  it('clips rows to the public data norm: an outlier row changes nothing beyond its clipped self', async () => {
    const a = synthetic(300);
    const b = { x: Float32Array.from(a.x), y: a.y, rows: a.rows };
    b.x.set([1000, -2000, 500], 0);
    const c = { x: Float32Array.from(a.x), y: a.y, rows: a.rows };
    const s = 1 / Math.hypot(1000, -2000, 500);
    c.x.set([1000 * s, -2000 * s, 500 * s], 0); // already at norm 1
    const fb = await fitDpLogisticRegression(b, { epsilon: 1, classes: 2, dataNorm: 1, noise: seeded(63) });
    const fc = await fitDpLogisticRegression(c, { epsilon: 1, classes: 2, dataNorm: 1, noise: seeded(63) });
    assert.deepEqual(Array.from(fb.model.params), Array.from(fc.model.params));
  });

  it('requires a public data norm and validates options naming them', async () => {
    const d = synthetic(50);
    await assert.rejects(
      fitDpLogisticRegression(d, { epsilon: 1, classes: 2 } as never),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') &&
        /^dataNorm:.*never computed from the data/.test(e.message),
    );
    // The classes are public, declared: from the labels they would leak outside the DP accounting.
    await assert.rejects(
      fitDpLogisticRegression(d, { epsilon: 1, dataNorm: 1 } as never),
      (e: unknown) => isBulwarkError(e, 'ERR_DP_UNACCOUNTED') && /^classes:/.test(e.message),
    );
    await assert.rejects(
      fitDpLogisticRegression(d, { epsilon: 0, classes: 2, dataNorm: 1 }),
      param('epsilon:'),
    );
    await assert.rejects(
      fitDpLogisticRegression(d, { epsilon: 1, classes: 2, dataNorm: 1, neighbours: 'swap' as never }),
      param('neighbours:'),
    );
    await assert.rejects(
      fitDpLogisticRegression(d, {
        epsilon: 1,
        classes: 2,
        dataNorm: 1,
        bounds: { lower: [0, 0, 1], upper: [1, 1, 1] },
      }),
      param('bounds[2]:'),
    );
  });

  it('one-vs-rest for several classes splits epsilon evenly', async () => {
    const d = synthetic(300);
    const y = Int32Array.from(d.y, (v, i) => (v === 1 ? 1 : i % 2 === 0 ? 0 : 2));
    const r = await fitDpLogisticRegression(
      { ...d, y },
      { epsilon: 3, dataNorm: 2, classes: 3, noise: seeded(64) },
    );
    assert.equal(r.problems.length, 3);
    assert.equal(r.model.classes, 3);
    for (const p of r.problems) assert.ok(Math.abs(p.epsilonPrime + p.epsilonJacobian - 1) < 1e-12);
  });

  it('spends from the ledger before fitting, and fits nothing when refused', async () => {
    const ledger = await openLedger(join(tmp, `lr-${randomBytes(4).toString('hex')}.sqlite`));
    try {
      await ledger.setBudget('synthetic', { epsilon: 1.5, delta: 0 });
      const r = await fitDpLogisticRegression(synthetic(100), {
        epsilon: 1,
        classes: 2,
        dataNorm: 2,
        budget: { ledger, dataset: 'synthetic' },
        noise: seeded(65),
      });
      assert.equal(r.receipt?.operation, 'train.dp-logistic-regression');
      assert.ok(Math.abs((r.receipt?.remaining.epsilon ?? 0) - 0.5) < 1e-12);
      await assert.rejects(
        fitDpLogisticRegression(synthetic(100), {
          epsilon: 1,
          classes: 2,
          dataNorm: 2,
          budget: { ledger, dataset: 'synthetic' },
        }),
        (e: unknown) => isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED'),
      );
    } finally {
      await ledger.close();
    }
  });

  it('UCI Adult, five numeric features, eps 1: test accuracy near the non-private 81%', async (t) => {
    const st = await datasetStatus('adult');
    if (!st.present) {
      t.skip(`UCI Adult not found in ${st.folder ?? 'the datasets folder'} (set BULWARK_DATASETS)`);
      return;
    }
    const adult = await loadTabular('adult');
    const cols = ['age', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week'];
    const mk = (s: string): LabelledData => {
      const ds = adult.splits[s]!;
      return { x: ds.toMatrix(cols), y: Int32Array.from(ds.numbers('income')), rows: ds.rowCount };
    };
    const train = mk('train');
    const test = mk('test');
    const bounds = { lower: [0, 0, 0, 0, 0], upper: [100, 16, 100_000, 5_000, 100] };
    const r = await fitDpLogisticRegression(train, {
      epsilon: 1,
      classes: 2,
      dataNorm: Math.sqrt(5),
      bounds,
      noise: seeded(66),
    });
    const acc = accuracy(test.y, r.model.predict(test.x, test.rows));
    assert.ok(acc > 0.79, `accuracy ${acc}`);
  });
});

describe('DP-SGD', () => {
  it('Poisson sampling includes each row with probability q (chi-square over rows and batch sizes)', () => {
    const noise = seeded(71);
    const n = 50;
    const q = 0.2;
    const counts = new Array<number>(n).fill(0);
    let total = 0;
    for (let s = 0; s < 4000; s++) {
      const b = poissonSample(n, q, noise);
      total += b.length;
      for (const i of b) counts[i]! += 1;
    }
    assert.ok(chiSquareCounts(counts, new Array(n).fill(1 / n)).pValue > ALPHA);
    const mean = total / 4000;
    assert.ok(Math.abs(mean - n * q) < 4 * Math.sqrt((n * q * (1 - q)) / 4000), `mean batch ${mean}`);
  });

  it('hardened CSPRNG noise and seeded noise are N(0, std^2) (KS)', () => {
    for (const src of [NoiseSource.secure(), seeded(72)]) {
      const v = new Float32Array(20000);
      addGaussianNoise(v, 1.7, src);
      assert.ok(ksTest(v, (x) => normCdf(x / 1.7)).pValue > ALPHA, `secure=${src.secure}`);
    }
  });

  it('one full-batch step is the clipped gradient sum over n, plus noise, through SGD', async () => {
    const data = synthetic(64);
    const net = mlp({ inputs: 3, hidden: [5], classes: 2, rng: 3 });
    const before = Float32Array.from(net.params);
    const { sum } = net.clone().clippedGradientSum(data.x, data.y, data.rows, 0.5);
    await trainDpSgd(net, data, {
      noiseMultiplier: 1e-9,
      delta: 1e-5,
      clipNorm: 0.5,
      samplingRate: 1,
      epochs: 1,
      optimizer: 'sgd',
      learningRate: 0.3,
      momentum: 0,
      noise: seeded(73),
    });
    for (let k = 0; k < before.length; k++) {
      const want = (before[k] as number) - (0.3 * (sum[k] as number)) / 64;
      assert.ok(Math.abs((net.params[k] as number) - want) < 1e-6, `param ${k}`);
    }
  });

  it('perturb replaces the sampled rows before clipping (adversarial training inside DP-SGD), not the data', async () => {
    const data = synthetic(64);
    const original = data.x.slice();
    const shift = 0.7;
    // With a full batch and no noise, the step equals the clipped gradient sum of the perturbed rows.
    const moved = Float32Array.from(data.x, (v) => v + shift);
    const net = mlp({ inputs: 3, hidden: [5], classes: 2, rng: 3 });
    const before = Float32Array.from(net.params);
    const { sum } = net.clone().clippedGradientSum(moved, data.y, data.rows, 0.5);
    let calls = 0;
    let rowsSeen = 0;
    await trainDpSgd(net, data, {
      noiseMultiplier: 1e-9,
      delta: 1e-5,
      clipNorm: 0.5,
      samplingRate: 1,
      epochs: 1,
      optimizer: 'sgd',
      learningRate: 0.3,
      momentum: 0,
      noise: seeded(75),
      perturb: (x, _y, rows) => {
        calls++;
        rowsSeen += rows;
        for (let i = 0; i < rows * 3; i++) x[i] = (x[i] as number) + shift;
      },
    });
    assert.equal(calls, 1);
    assert.equal(rowsSeen, 64);
    assert.deepEqual(data.x, original, 'the training data itself is never modified');
    for (let k = 0; k < before.length; k++) {
      const want = (before[k] as number) - (0.3 * (sum[k] as number)) / 64;
      assert.ok(Math.abs((net.params[k] as number) - want) < 1e-6, `param ${k}`);
    }
  });

  it('reports the accountant epsilon for the steps run, and calibrates sigma for a target epsilon', async () => {
    const data = synthetic(400);
    const net = mlp({ inputs: 3, hidden: [8], classes: 2, rng: 4 });
    const r = await trainDpSgd(net, data, {
      epsilon: 2,
      delta: 1e-5,
      expectedBatchSize: 40,
      epochs: 3,
      learningRate: 0.5,
      noise: seeded(74),
    });
    assert.equal(r.samplingRate, 0.1);
    assert.equal(r.steps, 30);
    assert.ok(r.epsilon <= 2 && r.epsilon > 1.9, String(r.epsilon));
    const acc = createAccountant('rdp').compose(r.event, r.steps).getEpsilon(1e-5);
    assert.equal(acc, r.epsilon);
    assert.equal(r.history.length, 3);
    assert.ok(evaluate(net, data).accuracy > 0.7, 'learns the synthetic problem under DP');
  });

  it('gives the event loop a turn within an epoch (Ctrl-C/SIGTERM are handled there), same model', async () => {
    // It yielded only between epochs: an epoch of per-example gradients on a large file is seconds.
    const data = synthetic(400);
    const run = async (onProgress?: (p: { phase: string; step: number }) => void) => {
      const net = mlp({ inputs: 3, hidden: [8], classes: 2, rng: 4 });
      await trainDpSgd(net, data, {
        noiseMultiplier: 1,
        delta: 1e-5,
        expectedBatchSize: 40,
        epochs: 1,
        noise: seeded(76),
        ...(onProgress ? { onProgress } : {}),
      });
      return net.params;
    };
    const probe = eventLoopProbe();
    let ranBeforeStep2: boolean | undefined;
    const params = await run((p) => {
      if (p.phase !== 'step') return;
      if (p.step === 1) probe.block();
      if (p.step === 2) ranBeforeStep2 = probe.ran;
    });
    assert.equal(ranBeforeStep2, true, 'the event loop ran between two steps of one epoch (10 steps)');
    assert.deepEqual(params, await run());
  });

  it('spends before training: refused budgets leave the model untouched', async () => {
    const ledger = await openLedger(join(tmp, `sgd-${randomBytes(4).toString('hex')}.sqlite`));
    try {
      await ledger.setBudget('synthetic', { epsilon: 1, delta: 1e-6 });
      const net = mlp({ inputs: 3, hidden: [4], classes: 2, rng: 5 });
      const before = Float32Array.from(net.params);
      await assert.rejects(
        trainDpSgd(net, synthetic(200), {
          epsilon: 2,
          delta: 1e-6,
          expectedBatchSize: 20,
          budget: { ledger, dataset: 'synthetic' },
        }),
        (e: unknown) => isBulwarkError(e, 'ERR_PRIVACY_BUDGET_EXCEEDED'),
      );
      assert.deepEqual(Array.from(net.params), Array.from(before));
      const r = await trainDpSgd(net, synthetic(200), {
        epsilon: 0.9,
        delta: 1e-6,
        expectedBatchSize: 20,
        budget: { ledger, dataset: 'synthetic' },
        noise: seeded(75),
      });
      assert.equal(r.receipt?.operation, 'train.dp-sgd');
      assert.equal(r.receipt?.epsilon, r.epsilon);
    } finally {
      await ledger.close();
    }
  });

  it('validates its options', async () => {
    const net = mlp({ inputs: 3, hidden: [4], classes: 2 });
    const d = synthetic(50);
    const q = { samplingRate: 0.1 };
    await assert.rejects(trainDpSgd(net, d, { ...q, delta: 1e-5 }), param('epsilon: expected either'));
    await assert.rejects(
      trainDpSgd(net, d, { ...q, delta: 1e-5, epsilon: 1, noiseMultiplier: 1 }),
      param('epsilon:'),
    );
    await assert.rejects(trainDpSgd(net, d, { ...q, delta: 0, epsilon: 1 }), param('delta:'));
    await assert.rejects(
      trainDpSgd(net, d, { ...q, delta: 1e-5, epsilon: 1, clipNorm: 0 }),
      param('clipNorm:'),
    );
    await assert.rejects(
      trainDpSgd(net, d, { delta: 1e-5, epsilon: 1, samplingRate: 2 }),
      param('samplingRate:'),
    );
  });
});
