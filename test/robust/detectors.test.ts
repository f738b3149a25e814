import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { mlp, type Network, train } from '../../src/ml/index.js';
import {
  benignStreams,
  conformalFprBound,
  conformalThreshold,
  type Detector,
  type FeatureNetwork,
  InputDomain,
  inverseSpd,
  ledoitWolf,
  MahalanobisDetector,
  networkModel,
  normalQuantile,
  PradaDetector,
  pgd,
  type QueryStream,
  recordingModel,
  SqueezeDetector,
  StatefulDetector,
  shapiroWilk,
  square,
} from '../../src/robust/index.js';
import { reference64 } from '../ml/reference.js';
import { blobs, trainedMlp } from './helpers.js';

/**
 * Reference values from scikit-learn 1.2.1 / scipy 1.10.1 (Debian, /usr/bin/python3):
 *   X[r][j] = sin(1.3 r + 0.7 j²) + 0.1 j cos(r), r < 30, j < 5; sklearn.covariance.ledoit_wolf(X)
 *   scipy.stats.shapiro on the vectors below (scipy computes in float32: W to ~1e-7).
 */
const LW_SHRINKAGE = 0.057822479327825554;
const LW_COV = [
  0.486079509798, 0.358001229327, -0.409672078765, 0.484409459312, 0.131220431883, 0.358001229327,
  0.523086576692, -0.202023486295, 0.407130751154, -0.178850070005, -0.409672078765, -0.202023486295,
  0.477216212802, -0.401413032644, -0.24252244716, 0.484409459312, 0.407130751154, -0.401413032644,
  0.588250051501, 0.176771167279, 0.131220431883, -0.178850070005, -0.24252244716, 0.176771167279,
  0.579834228147,
];
const SHAPIRO: [number[], number, number][] = [
  [[1, 2, 4], 0.9642857313156128, 0.6368856430053711],
  [[0.3, 1.1, 1.5, 2.9, 0.2], 0.9049405455589294, 0.43779122829437256],
  [Array.from({ length: 10 }, (_, i) => Math.sin(i * i)), 0.920772910118103, 0.36344635486602783],
  [
    Array.from({ length: 50 }, (_, i) => Math.sin(i * 1.7) ** 3 + 0.01 * i),
    0.9757421612739563,
    0.3893599510192871,
  ],
  [
    Array.from({ length: 200 }, (_, i) => Math.exp(Math.sin(i * 0.37) * 1.5)),
    0.8357975482940674,
    9.239720669346543e-14,
  ],
];

describe('linear algebra and statistics against scikit-learn / scipy', () => {
  it('Ledoit-Wolf shrinkage and covariance', () => {
    const x = new Float32Array(30 * 5);
    for (let r = 0; r < 30; r++)
      for (let j = 0; j < 5; j++) x[r * 5 + j] = Math.sin(1.3 * r + 0.7 * j * j) + 0.1 * j * Math.cos(r);
    const lw = ledoitWolf(x, 30, 5);
    assert.ok(Math.abs(lw.shrinkage - LW_SHRINKAGE) < 1e-5, `shrinkage ${lw.shrinkage}`);
    LW_COV.forEach((v, i) => {
      assert.ok(Math.abs((lw.covariance[i] as number) - v) < 1e-5, `cov[${i}]`);
    });
    const inv = inverseSpd(lw.covariance, 5);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        let s = 0;
        for (let k = 0; k < 5; k++) s += (lw.covariance[i * 5 + k] as number) * (inv[k * 5 + j] as number);
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9);
      }
    }
  });

  it('Shapiro-Wilk W and p', () => {
    for (const [v, w, p] of SHAPIRO) {
      const r = shapiroWilk(v);
      assert.ok(Math.abs(r.w - w) < 2e-5, `n=${v.length}: W ${r.w} vs ${w}`);
      assert.ok(Math.abs(r.p - p) <= 0.01 * p + 1e-4, `n=${v.length}: p ${r.p} vs ${p}`);
    }
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-12);
    assert.ok(Math.abs(normalQuantile(1e-6) + 4.753424308822899) < 1e-9);
  });

  it('conformal threshold: exact rank, Infinity when too few scores', () => {
    const s = Array.from({ length: 99 }, (_, i) => i + 1);
    const c = conformalThreshold(s, 0.1); // rank ceil(100 * 0.9) = 90
    assert.equal(c.threshold, 90);
    assert.ok(Math.abs(c.calibrationFpr - 9 / 99) < 1e-12);
    assert.equal(conformalThreshold([1, 2, 3], 0.01).threshold, Infinity);
    assert.throws(() => conformalThreshold(s, 0), /^fpr|fpr:/);
  });

  it("conformal FPR bound: scipy's Beta quantiles, and about 5 % of calibration sets exceed the 95 % bound", () => {
    // scipy 1.10.1: beta.ppf(0.95, l, n + 1 - l) with l = n + 1 - ceil((n + 1)(1 - fpr)).
    for (const [n, fpr, want] of [
      [100, 0.01, 0.02951304960703993],
      [300, 0.01, 0.020836230527024657],
      [1000, 0.01, 0.015652573749606477],
      [20000, 0.01, 0.01118385484472769],
      [99, 0.05, 0.09007355819196766],
      [5000, 0.001, 0.0018297605084529958],
    ] as const)
      assert.ok(Math.abs(conformalFprBound(n, fpr) / want - 1) < 1e-9, `n ${n}, fpr ${fpr}`);
    assert.equal(conformalFprBound(50, 0.01), 0, 'too few scores: nothing is flagged');
    assert.throws(() => conformalFprBound(0, 0.01), /\bn: expected/);
    assert.throws(() => conformalFprBound(100, 0.01, 1), /confidence: expected/);
    // Uniform clean scores: a threshold t flags a share 1 - t of new clean inputs.
    const rng = new SeededRng(71);
    const bound = conformalFprBound(100, 0.01);
    let over = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const c = conformalThreshold(
        Array.from({ length: 100 }, () => rng.uniform(0, 1)),
        0.01,
      );
      if (1 - c.threshold > bound) over++;
    }
    // Binomial(4000, 0.05): sd 0.0034.
    assert.ok(Math.abs(over / trials - 0.05) < 0.015, `${over} of ${trials}`);
  });
});

/** |observed - target| within 4 standard errors of the fresh sample plus the calibration sample's. */
function withinBinomial(observed: number, target: number, nFresh: number, nCal: number): boolean {
  const sd = Math.sqrt(target * (1 - target));
  return (
    Math.abs(observed - target) <= 4 * sd * (1 / Math.sqrt(nFresh) + 1 / Math.sqrt(nCal)) + 1 / (nCal + 1)
  );
}

function rateOf(f: Uint8Array): number {
  let s = 0;
  for (const v of f) s += v;
  return s / f.length;
}

describe('input detectors', () => {
  const d = 12;
  const classes = 3;
  const data = blobs(6000, d, classes, 13);
  const part = (from: number, to: number) => ({
    x: data.x.slice(from * d, to * d),
    y: data.y.slice(from, to),
    rows: to - from,
  });
  const fitSet = part(0, 2000);
  const calSet = part(2000, 4000);
  const fresh = part(4000, 6000);
  let net: Network;
  before(async () => {
    net = await trainedMlp(fitSet, d, classes, { hidden: [16], epochs: 10 });
  });

  const makers: [string, () => Promise<Detector>][] = [
    ['mahalanobis on inputs', async () => new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y)],
    [
      'mahalanobis on hidden activations',
      async () => new MahalanobisDetector({ layer: 1, network: net }).fit(fitSet.x, fitSet.rows, fitSet.y),
    ],
    [
      'feature squeezing (bit depth + noise)',
      async () => SqueezeDetector.forDomain(networkModel(net), InputDomain.box(d)).fit(fitSet.x, 10),
    ],
  ];

  for (const [name, make] of makers) {
    it(`${name}: calibrated FPR holds on fresh clean data, for 1 % and 5 %`, async () => {
      const det = await make();
      for (const fpr of [0.01, 0.05]) {
        await det.calibrate(calSet.x, calSet.rows, fpr);
        const observed = rateOf(await det.detect(fresh.x, fresh.rows));
        assert.ok(
          withinBinomial(observed, fpr, fresh.rows, calSet.rows),
          `target ${fpr}, observed ${observed}`,
        );
      }
    });

    it(`${name}: round-trips through JSON with identical scores and threshold`, async () => {
      const det = await make();
      await det.calibrate(calSet.x, calSet.rows, 0.02);
      const json = JSON.parse(JSON.stringify(det.toJSON()));
      const loaded =
        json.kind === 'mahalanobis'
          ? MahalanobisDetector.load(json, { network: net })
          : SqueezeDetector.load(json, networkModel(net));
      assert.deepEqual(loaded.calibration, det.calibration);
      const a = await det.score(fresh.x.subarray(0, 50 * d), 50);
      const b = await loaded.score(fresh.x.subarray(0, 50 * d), 50);
      for (let i = 0; i < 50; i++)
        assert.ok(
          Math.abs((a[i] as number) - (b[i] as number)) <= 1e-6 * Math.max(1, Math.abs(a[i] as number)),
        );
      assert.throws(
        () => MahalanobisDetector.load({ ...json, version: 99 }),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_DETECTOR_STATE') && /version 99 is not supported/.test(e.message),
      );
      assert.throws(
        () => SqueezeDetector.load({ ...json, kind: 'prada' }, networkModel(net)),
        (e: unknown) => isBulwarkError(e, 'ERR_DETECTOR_STATE'),
      );
    });
  }

  it('mahalanobis flags off-distribution inputs and refuses use before fit/calibrate', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.01);
    const rng = new SeededRng(2);
    const noise = Float32Array.from({ length: 500 * d }, () => rng.nextFloat());
    assert.ok(rateOf(await det.detect(noise, 500)) > 0.9);
    assert.ok(det.shrinkage >= 0 && det.shrinkage <= 1);
    await assert.rejects(new MahalanobisDetector().score(noise, 500), (e: unknown) =>
      isBulwarkError(e, 'ERR_DETECTOR_STATE'),
    );
    const fitted = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows);
    await assert.rejects(
      fitted.detect(noise, 500),
      (e: unknown) => isBulwarkError(e, 'ERR_DETECTOR_STATE') && /calibrate/.test(e.message),
    );
    // the gradient used by adaptive attacks matches finite differences
    const x = fresh.x.slice(0, 3 * d);
    const { gradient } = det.scoreGradient(x, 3);
    const h = 1e-3;
    for (const i of [0, 5, 17, 30]) {
      const xp = x.slice();
      const xm = x.slice();
      xp[i] = (xp[i] as number) + h;
      xm[i] = (xm[i] as number) - h;
      const r = Math.floor(i / d);
      const fd =
        (((await det.score(xp, 3))[r] as number) - ((await det.score(xm, 3))[r] as number)) / (2 * h);
      assert.ok(
        Math.abs(fd - (gradient[i] as number)) <= 2e-2 * Math.max(1, Math.abs(fd)),
        `${i}: ${gradient[i]} vs ${fd}`,
      );
    }
  });

  it('squeeze detection is above its false-positive rate on PGD examples', async () => {
    const det = SqueezeDetector.forDomain(networkModel(net), InputDomain.box(d));
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const r = pgd(networkModel(net), fresh.x.slice(0, 400 * d), fresh.y.slice(0, 400), 400, {
      eps: 0.15,
      domain: InputDomain.box(d),
      steps: 20,
      seed: 1,
    });
    const flagged = await det.detect(r.x, 400);
    let caught = 0;
    let fooled = 0;
    for (let i = 0; i < 400; i++)
      if (r.success[i]) {
        fooled++;
        caught += flagged[i] as number;
      }
    assert.ok(fooled > 20);
    assert.ok(caught / fooled > 0.2, `caught ${caught} of ${fooled}`);
  });
});

describe('stream detectors', () => {
  const d = 12;
  const classes = 3;
  const data = blobs(3000, d, classes, 17);
  let net: Network;
  before(async () => {
    net = await trainedMlp(data, d, classes, { hidden: [16], epochs: 8 });
  });

  it('stateful: per-query FPR on fresh benign streams, Square attack streams flagged, JSON round trip', async () => {
    const det = new StatefulDetector({ inputs: d, k: 10, history: 200, dims: 8 }).fit(
      data.x.subarray(0, 1000 * d),
      1000,
    );
    const calStreams = benignStreams(data.x.subarray(0, 1500 * d), 1500, d, 20, 200, 1);
    det.calibrate(calStreams, 0.01, { level: 'query' });
    const freshStreams = benignStreams(data.x.subarray(1500 * d), 1500, d, 20, 200, 2);
    let flagged = 0;
    let judged = 0;
    for (const s of freshStreams) {
      for (const v of det.scoreStream(s)) {
        if (Number.isNaN(v)) continue;
        judged++;
        if (v > (det.calibration?.threshold as number)) flagged++;
      }
    }
    assert.ok(withinBinomial(flagged / judged, 0.01, judged, 20 * 190), `benign ${flagged}/${judged}`);
    // A Square attack on one row, recorded as that client's stream, is flagged early.
    const queries: Float32Array[] = [];
    const rec = recordingModel(networkModel(net), (x, rows) => {
      for (let i = 0; i < rows; i++) queries.push(x.slice(i * d, (i + 1) * d));
    });
    await square(rec, data.x.slice(0, d), [data.y[0] as number], 1, { eps: 0.05, queries: 300, seed: 1 });
    let first = -1;
    queries.forEach((q, i) => {
      if (first < 0 && det.observe('attacker', q).flagged) first = i;
    });
    assert.ok(first >= 0 && first < 60, `first detection at query ${first} of ${queries.length}`);
    const loaded = StatefulDetector.load(JSON.parse(JSON.stringify(det.toJSON())));
    assert.deepEqual(
      loaded.scoreStream(freshStreams[0] as QueryStream),
      det.scoreStream(freshStreams[0] as QueryStream),
    );
    assert.throws(
      () => new StatefulDetector({ inputs: d }).observe('c', data.x.subarray(0, d)),
      (e: unknown) => isBulwarkError(e, 'ERR_DETECTOR_STATE'),
    );
    assert.throws(() => new StatefulDetector({ inputs: d, k: 10, history: 5 }), /^history|history:/);
  });

  it('PRADA: per-client FPR bound on benign clients; synthetic extraction queries flagged; JSON round trip', () => {
    const predicted = net.predict(data.x, data.rows);
    const det = new PradaDetector({ inputs: d, classes, minQueries: 50 }).fit(
      data.x.subarray(0, 1000 * d),
      1000,
    );
    const cal = benignStreams(
      data.x.subarray(0, 1500 * d),
      1500,
      d,
      100,
      120,
      3,
      predicted.subarray(0, 1500),
    );
    det.calibrate(cal, 0.05);
    const fresh = benignStreams(data.x.subarray(1500 * d), 1500, d, 100, 120, 4, predicted.subarray(1500));
    let fp = 0;
    for (const s of fresh) {
      const m = Math.max(...Array.from(det.scoreStream(s)).filter((v) => !Number.isNaN(v)));
      if (m > (det.calibration?.threshold as number)) fp++;
    }
    assert.ok(withinBinomial(fp / 100, 0.05, 100, 100), `benign clients flagged ${fp}/100`);
    // Extraction-style queries: a few seeds and many small perturbations around them (the shape of Papernot et
    // al.'s Jacobian augmentation), labelled by the model. (Uniform random or natural queries are not caught:
    // PRADA's known limit, which the evaluation reports.)
    const rng = new SeededRng(5);
    let caught = 0;
    for (let a = 0; a < 10; a++) {
      const rows = 120;
      const x = new Float32Array(rows * d);
      for (let i = 0; i < rows; i++) {
        const seed = rng.int(5);
        for (let j = 0; j < d; j++)
          x[i * d + j] = (data.x[(seed + 10 * a) * d + j] as number) + rng.normal(0, 0.002) * (1 + (i % 7));
      }
      const s: QueryStream = { x, rows, predicted: net.predict(x, rows) };
      const m = Math.max(...Array.from(det.scoreStream(s)).filter((v) => !Number.isNaN(v)));
      if (m > (det.calibration?.threshold as number)) caught++;
    }
    assert.ok(caught >= 8, `caught ${caught}/10 synthetic clients`);
    const loaded = PradaDetector.load(JSON.parse(JSON.stringify(det.toJSON())));
    assert.deepEqual(loaded.scoreStream(fresh[0] as QueryStream), det.scoreStream(fresh[0] as QueryStream));
    assert.deepEqual(loaded.calibration, det.calibration);
    assert.throws(() => det.observe('c', data.x.subarray(0, d)), /predicted/);
  });
});

describe('detectors fail closed on tampered state and bad inputs', () => {
  const d = 6;
  const data = blobs(600, d, 2, 23);
  const fitSet = { x: data.x.subarray(0, 300 * d), y: data.y.subarray(0, 300), rows: 300 };
  const calSet = { x: data.x.subarray(300 * d), rows: 300 };
  const stateErr = (re?: RegExp) => (e: unknown) =>
    isBulwarkError(e, 'ERR_DETECTOR_STATE') && (re === undefined || re.test(e.message));

  it('a saved calibration must be whole: no null (infinite) threshold, none out of the scores range, no bad fpr or n', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const good = JSON.parse(JSON.stringify(det.toJSON()));
    assert.deepEqual(MahalanobisDetector.load(good).calibration, det.calibration);
    const edited = (c: Record<string, unknown>) => ({ ...good, calibration: { ...good.calibration, ...c } });
    // null is what an uncalibratable (infinite) threshold saves as: loaded, it used to flag nothing.
    assert.throws(() => MahalanobisDetector.load(edited({ threshold: null })), stateErr(/finite threshold/));
    const noThreshold = { ...good, calibration: { fpr: 0.05, n: 300, calibrationFpr: 0.04 } };
    assert.throws(() => MahalanobisDetector.load(noThreshold), stateErr(/finite threshold/));
    assert.throws(() => MahalanobisDetector.load(edited({ threshold: -1 })), stateErr(/threshold -1/));
    assert.throws(() => MahalanobisDetector.load(edited({ threshold: '5' })), stateErr(/threshold/));
    assert.throws(() => MahalanobisDetector.load(edited({ fpr: 0 })), stateErr(/fpr/));
    assert.throws(() => MahalanobisDetector.load(edited({ n: 0 })), stateErr(/\bn\b/));
    assert.throws(() => MahalanobisDetector.load(edited({ calibrationFpr: 2 })), stateErr(/calibrationFpr/));
    assert.throws(() => MahalanobisDetector.load({ ...good, calibration: [] }), stateErr(/malformed/));
    // An uncalibratable detector (3 rows for a 1 % target) saves, but is not loaded.
    await det.calibrate(calSet.x.subarray(0, 3 * d), 3, 0.01);
    assert.equal(det.calibration?.threshold, Infinity);
    assert.throws(() => MahalanobisDetector.load(JSON.parse(JSON.stringify(det.toJSON()))), stateErr());
  });

  it('a NaN (or a non-positive scale) hidden in saved matrices is refused', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const good = JSON.parse(JSON.stringify(det.toJSON()));
    const precision = Buffer.from(good.precision, 'base64');
    precision.writeFloatLE(Number.NaN, 4 * 7);
    // With one NaN in the precision matrix every score was NaN, and a NaN score was never flagged.
    assert.throws(
      () => MahalanobisDetector.load({ ...good, precision: precision.toString('base64') }),
      stateErr(/precision\[7\] is NaN/),
    );
    const st = new StatefulDetector({ inputs: d, k: 3, history: 20 }).fit(fitSet.x, fitSet.rows);
    st.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 20, 1), 0.1);
    const sj = JSON.parse(JSON.stringify(st.toJSON()));
    const scale = Buffer.from(sj.scale, 'base64');
    scale.writeFloatLE(0, 0);
    assert.throws(
      () => StatefulDetector.load({ ...sj, scale: scale.toString('base64') }),
      stateErr(/scale\[0\]/),
    );
    assert.throws(
      () => StatefulDetector.load({ ...sj, calibration: { ...sj.calibration, threshold: 0.5 } }),
      stateErr(/threshold 0.5/),
    );
    assert.ok(StatefulDetector.load(sj).calibration);
    // A history of a billion queries: each shared-state request allocated history x dims floats.
    assert.throws(() => StatefulDetector.load({ ...sj, history: 1e9 }), stateErr(/history/));
    assert.throws(
      () => new PradaDetector({ inputs: d, classes: 2, maxGrowing: 1e9 }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^maxGrowing:/.test(e.message),
    );
  });

  it('a saved precision matrix that is not symmetric positive definite is refused (it made every score 0)', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const good = JSON.parse(JSON.stringify(det.toJSON()));
    const matrix = (f: (i: number, j: number) => number) =>
      Buffer.from(
        Float32Array.from({ length: d * d }, (_, i) => f(Math.floor(i / d), i % d)).buffer,
      ).toString('base64');
    // Loaded, -I and zeros scored a point a million units from every mean 0: never flagged.
    const far = new Float32Array(d).fill(1e6);
    assert.deepEqual(Array.from(await MahalanobisDetector.load(good).detect(far, 1)), [1]);
    for (const [name, f, re] of [
      ['-I', (i: number, j: number) => (i === j ? -1 : 0), /not positive definite/],
      ['zeros', () => 0, /not positive definite/],
      ['asymmetric', (i: number, j: number) => (i === j ? 1 : i < j ? 5 : -5), /not symmetric/],
    ] as const)
      assert.throws(
        () => MahalanobisDetector.load({ ...good, precision: matrix(f) }),
        stateErr(re),
        `precision ${name}`,
      );
  });

  it('a saved calibration claiming a finite threshold from too few scores for its rate is refused', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const good = JSON.parse(JSON.stringify(det.toJSON()));
    // 300 rows at 5 %: a finite threshold. 300 rows cannot give one at 0.1 %, nor 98 rows at 1 %.
    assert.ok(MahalanobisDetector.load(good).calibration);
    for (const [n, fpr] of [
      [300, 0.001],
      [98, 0.01],
    ] as const)
      assert.throws(
        () => MahalanobisDetector.load({ ...good, calibration: { ...good.calibration, n, fpr } }),
        stateErr(/claims a finite threshold/),
      );
    assert.ok(MahalanobisDetector.load({ ...good, calibration: { ...good.calibration, n: 99, fpr: 0.01 } }));
  });

  it('a saved stateful detector is refused before its projection is allocated for a width it does not have', () => {
    const st = new StatefulDetector({ inputs: d, k: 3, history: 20 }).fit(fitSet.x, fitSet.rows);
    st.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 20, 1), 0.1);
    const sj = JSON.parse(JSON.stringify(st.toJSON()));
    // The projection (dims x inputs floats) used to be drawn before the scale was read: 200,000 inputs
    // and 4,096 dims took 3.3 GB and about 90 s to refuse a 6-value scale (2^31 inputs: a RangeError).
    assert.throws(
      () => StatefulDetector.load({ ...sj, inputs: 2 ** 31, dims: 4096 }),
      stateErr(/scale has 6 values, expected 2147483648/),
    );
    // With a scale of that width, the projection itself is bounded (2^26 values).
    const wide = Buffer.from(new Float32Array(20_000).fill(1).buffer).toString('base64');
    assert.throws(
      () => StatefulDetector.load({ ...sj, inputs: 20_000, dims: 4096, scale: wide }),
      stateErr(/dims: expected at most 3355 for 20000 inputs/),
    );
    assert.equal(StatefulDetector.load({ ...sj, inputs: 20_000, dims: 64, scale: wide }).dims, 64);
    assert.throws(
      () => new StatefulDetector({ inputs: 1_100_000 }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^dims: expected at most 61 /.test(e.message),
    );
  });

  it('a NaN input is never scored as clean', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await det.calibrate(calSet.x, calSet.rows, 0.05);
    const x = calSet.x.slice(0, 2 * d);
    x[d + 3] = Number.NaN;
    await assert.rejects(
      det.detect(x, 2),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE') && /row 1/.test(e.message),
    );
    // A model whose probabilities are NaN for a NaN input (as any network's are): the squeeze score is
    // NaN, and a NaN score used to count as below the threshold.
    const model = {
      name: 'sigmoid of the sum',
      inputs: d,
      classes: 2,
      predictProba: async (xs: Float32Array, rows: number) => {
        const p = new Float32Array(2 * rows);
        for (let r = 0; r < rows; r++) {
          let z = 0;
          for (let j = 0; j < d; j++) z += 4 * ((xs[r * d + j] as number) - 0.5);
          p[2 * r + 1] = 1 / (1 + Math.exp(-z));
          p[2 * r] = 1 - (p[2 * r + 1] as number);
        }
        return p;
      },
    };
    const sq = await SqueezeDetector.forDomain(model, InputDomain.box(d)).fit(fitSet.x, 10);
    await sq.calibrate(calSet.x, calSet.rows, 0.05);
    assert.deepEqual(Array.from(await sq.detect(x, 2)).slice(1), [1]);
    const st = new StatefulDetector({ inputs: d, k: 3, history: 20 }).fit(fitSet.x, fitSet.rows);
    st.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 20, 1), 0.1);
    const q = calSet.x.slice(0, d);
    q[2] = Number.NaN;
    assert.throws(
      () => st.observe('c', q),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE'),
    );
    const pr = new PradaDetector({ inputs: d, classes: 2, minQueries: 5 }).fit(fitSet.x, fitSet.rows);
    assert.throws(
      () => pr.scoreStream({ x: q, rows: 1, predicted: [0] }),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE'),
    );
  });

  it('stateful calibrate: an unknown level or streams too short to judge are named, not "no clean score"', () => {
    const st = new StatefulDetector({ inputs: d, k: 5, history: 20 }).fit(fitSet.x, fitSet.rows);
    const streams = benignStreams(calSet.x, calSet.rows, d, 20, 20, 1);
    assert.throws(
      () => st.calibrate(streams, 0.1, { level: 'session' as never }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^level: expected one of query, client/.test(e.message),
    );
    assert.throws(
      () => st.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 5, 1), 0.1),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') &&
        /^streams: expected benign streams of more than k \(5\)/.test(e.message),
    );
    assert.ok(st.calibrate(streams, 0.1).threshold <= 0);
  });

  it('stateful: a new client costs memory for the queries it sent, not a whole history', () => {
    const st = new StatefulDetector({ inputs: d, k: 3, history: 500, dims: 6 }).fit(fitSet.x, fitSet.rows);
    st.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 100, 1), 0.1);
    const before = process.memoryUsage().arrayBuffers;
    // 20,000 identities of one query each: 20,000 x 500 x 6 floats (240 MB) when every ring was whole.
    for (let c = 0; c < 20_000; c++)
      st.observe(`id-${c}`, calSet.x.subarray((c % 300) * d, ((c % 300) + 1) * d));
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 40e6, `array buffers grew by ${grown} bytes`);
    // and a client with a long history still judges on all of it (the ring grows to `history`)
    const s = benignStreams(calSet.x, calSet.rows, d, 1, 300, 9)[0] as QueryStream;
    const fresh = new StatefulDetector({ inputs: d, k: 3, history: 500, dims: 6 }).fit(fitSet.x, fitSet.rows);
    fresh.calibrate(benignStreams(calSet.x, calSet.rows, d, 20, 100, 1), 0.1);
    const verdicts = Array.from({ length: 300 }, (_, i) =>
      fresh.observe('long', s.x.subarray(i * d, (i + 1) * d)),
    );
    const viaStream = Array.from(fresh.scoreStream(s));
    // Until the first detection (which clears the history) observe() and scoreStream() agree.
    const first = verdicts.findIndex((v) => v.flagged);
    const upTo = first < 0 ? 300 : first + 1;
    assert.ok(upTo > 100, `first benign detection at ${first}`);
    assert.deepEqual(
      verdicts.slice(0, upTo).map((v) => v.score),
      viaStream.slice(0, upTo),
    );
  });
});

describe('detectors: degenerate fit data', () => {
  it('stream detectors refuse NaN fit data (it became a silent scale of 1)', async () => {
    const d = 4;
    const data = blobs(40, d, 2, 3);
    const bad = data.x.slice();
    bad[5] = Number.NaN;
    assert.throws(
      () => new StatefulDetector({ inputs: d, k: 2, history: 10 }).fit(bad, 40),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE') && /row 1/.test(e.message),
    );
    assert.throws(
      () => new PradaDetector({ inputs: d, classes: 2 }).fit(bad, 40),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE'),
    );
  });
});

describe('mahalanobis scoreGradient on hidden layers', () => {
  const d = 8;
  const classes = 3;
  const data = blobs(1600, d, classes, 29);
  const fitSet = { x: data.x.slice(0, 1200 * d), y: data.y.slice(0, 1200), rows: 1200 };
  const probe = data.x.slice(1200 * d, 1206 * d); // 6 fresh rows
  const nets: { name: string; net: Network }[] = [];
  before(async () => {
    for (const activation of ['relu', 'tanh'] as const) {
      const net = mlp({ inputs: d, hidden: [16, 8], classes, activation, rng: 4 });
      await train(net, fitSet, { epochs: 5, batchSize: 64, learningRate: 3e-3, seed: 4 });
      nets.push({ name: activation, net });
    }
  });

  /** The score in float64 from the detector's saved state and the float64 forward of test/ml. */
  function score64(net: Network, det: MahalanobisDetector, x: ArrayLike<number>, rows: number): Float64Array {
    const j = det.toJSON() as unknown as Record<string, string | number>;
    const f32 = (s: string) => new Float32Array(Uint8Array.from(Buffer.from(s, 'base64')).buffer);
    const centre = f32(j['centre'] as string);
    const means = f32(j['means'] as string);
    const precision = f32(j['precision'] as string);
    const k = j['classes'] as number;
    const w = j['features'] as number;
    const h = reference64(net, x, rows)[det.layer as number] as Float64Array;
    const out = new Float64Array(rows);
    const diff = new Float64Array(w);
    for (let r = 0; r < rows; r++) {
      let best = Infinity;
      for (let c = 0; c < k; c++) {
        for (let i = 0; i < w; i++) diff[i] = h[r * w + i]! - centre[i]! - means[c * w + i]!;
        let s = 0;
        for (let a = 0; a < w; a++)
          for (let b = 0; b < w; b++) s += diff[a]! * precision[a * w + b]! * diff[b]!;
        best = Math.min(best, s);
      }
      out[r] = best;
    }
    return out;
  }

  it('matches float64 central differences on every hidden layer, relu and tanh', async () => {
    // Step 1e-5 on a float64 function: difference error far below the tolerance. The analytic
    // gradient is float32 (features, the products with the precision matrix, the backward pass), so
    // it is compared within 1e-3 of the row's largest gradient entry (at least 1).
    const H = 1e-5;
    const rows = 6;
    for (const { name, net } of nets) {
      for (const layer of [1, 2]) {
        const det = await new MahalanobisDetector({ layer, network: net }).fit(
          fitSet.x,
          fitSet.rows,
          fitSet.y,
        );
        assert.ok(det.hasScoreGradient);
        const { values, gradient } = det.scoreGradient(probe, rows);
        assert.equal(gradient.length, rows * d);
        const ref = score64(net, det, probe, rows);
        for (let r = 0; r < rows; r++) {
          assert.ok(
            Math.abs(values[r]! - ref[r]!) <= 1e-3 * Math.max(1, ref[r]!),
            `${name} layer ${layer} row ${r}: score ${values[r]} vs float64 ${ref[r]}`,
          );
        }
        const x64 = Float64Array.from(probe);
        for (let r = 0; r < rows; r++) {
          let scale = 1;
          for (let j = 0; j < d; j++) scale = Math.max(scale, Math.abs(gradient[r * d + j]!));
          for (let j = 0; j < d; j++) {
            const i = r * d + j;
            const xp = x64.slice();
            const xm = x64.slice();
            xp[i] = xp[i]! + H;
            xm[i] = xm[i]! - H;
            const fd = (score64(net, det, xp, rows)[r]! - score64(net, det, xm, rows)[r]!) / (2 * H);
            assert.ok(
              Math.abs(gradient[i]! - fd) <= 1e-3 * scale,
              `${name} layer ${layer}, row ${r}, input ${j}: analytic ${gradient[i]}, central difference ${fd}`,
            );
          }
        }
      }
    }
  });

  it('refuses, naming the missing capability, when the network gives activations only', async () => {
    const { net } = nets[0]!;
    // A feature source with a forward pass and no backward one: what a model run elsewhere (another
    // runtime returning activations) offers.
    const activationsOnly: FeatureNetwork = {
      sizes: net.sizes,
      layerCount: net.layerCount,
      forward: (x, rows) => net.forward(x, rows),
    };
    const det = await new MahalanobisDetector({ layer: 1, network: activationsOnly }).fit(
      fitSet.x,
      fitSet.rows,
      fitSet.y,
    );
    assert.equal(det.hasScoreGradient, false);
    const full = await new MahalanobisDetector({ layer: 1, network: net }).fit(
      fitSet.x,
      fitSet.rows,
      fitSet.y,
    );
    assert.deepEqual(await det.score(probe, 6), await full.score(probe, 6));
    assert.throws(
      () => det.scoreGradient(probe, 6),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MODEL_CAPABILITY') &&
        (e.details as { missing?: string }).missing === 'hidden-layer-gradients' &&
        /no gradients with respect to its hidden layers/.test(e.message),
    );
    // Input features never need the network.
    assert.ok(new MahalanobisDetector().hasScoreGradient);
  });
});
