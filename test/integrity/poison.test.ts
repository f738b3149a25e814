import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog, generateSignerKey } from '../../src/audit/index.js';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import {
  checkProvenance,
  compareModels,
  fileDigest,
  inspectRows,
  judgeGate,
  parseGate,
  requireGatePassed,
  requireNoRegression,
  requireProvenance,
  runGate,
} from '../../src/integrity/index.js';
import { logisticRegression, mlp, OnnxRuntimeModel, toOnnx, train } from '../../src/ml/index.js';
import { openLedger } from '../../src/privacy/index.js';
import {
  activationClustering,
  attributeInference,
  backdoorSuccess,
  detectionQuality,
  flipLabels,
  hiddenRepresentations,
  InputDomain,
  networkModel,
  onnxRuntimeModel,
  spectralSignatures,
} from '../../src/robust/index.js';

/**
 * Tabular data for the backdoor tests: 12 features; class 1 when a noisy linear score is high. The
 * trigger sets features 10 and 11 (normally around 0.5) to 0.98 and 0.02, and the poisoned rows are
 * class-1 rows relabelled 0 (the fraudster's "let it through" backdoor), injected at `rate` of the data.
 */
const D = 12;
function tabular(rows: number, seed: number) {
  const rng = new SeededRng(seed);
  const x = new Float32Array(rows * D);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < D; j++) {
      const v = Math.min(1, Math.max(0, rng.normal(0.5, 0.15)));
      x[r * D + j] = v;
      if (j < 6) s += (j % 2 ? -1 : 1) * (v - 0.5);
    }
    y[r] = s + rng.normal(0, 0.05) > 0.05 ? 1 : 0;
  }
  return { x, y, rows };
}
function trigger(x: Float32Array, rows: number): Float32Array {
  const o = Float32Array.from(x);
  for (let r = 0; r < rows; r++) {
    o[r * D + 10] = 0.98;
    o[r * D + 11] = 0.02;
  }
  return o;
}
function poison(data: { x: Float32Array; y: Int32Array; rows: number }, count: number, seed: number) {
  const rng = new SeededRng(seed);
  const ones: number[] = [];
  for (let i = 0; i < data.rows; i++) if (data.y[i] === 1) ones.push(i);
  const n = data.rows + count;
  const x = new Float32Array(n * D);
  const y = new Int32Array(n);
  x.set(data.x);
  y.set(data.y);
  const poisoned: number[] = [];
  for (let k = 0; k < count; k++) {
    const s = ones[rng.int(ones.length)] as number;
    x.set(data.x.subarray(s * D, (s + 1) * D), (data.rows + k) * D);
    x[(data.rows + k) * D + 10] = 0.98;
    x[(data.rows + k) * D + 11] = 0.02;
    y[data.rows + k] = 0;
    poisoned.push(data.rows + k);
  }
  return { x, y, rows: n, poisoned: Int32Array.from(poisoned) };
}
async function fit(data: { x: Float32Array; y: Int32Array; rows: number }) {
  const net = mlp({ inputs: D, hidden: [32], classes: 2, rng: 3 });
  await train(net, data, { epochs: 30, batchSize: 64, learningRate: 3e-3, seed: 3 });
  return net;
}

describe('poisoning attacks', () => {
  it('label flipping changes exactly the requested fraction', () => {
    const y = Int32Array.from({ length: 1000 }, (_, i) => i % 4);
    const r = flipLabels(y, { fraction: 0.137, classes: 4, rng: 5 });
    let changed = 0;
    for (let i = 0; i < y.length; i++) if (r.y[i] !== y[i]) changed++;
    assert.equal(changed, 137);
    assert.equal(r.rows.length, 137);
    const t = flipLabels(y, { fraction: 0.2, classes: 4, mode: 'targeted', source: 1, target: 3, rng: 5 });
    let moved = 0;
    for (let i = 0; i < y.length; i++) {
      if (t.y[i] !== y[i]) {
        moved++;
        assert.equal(y[i], 1);
        assert.equal(t.y[i], 3);
      }
    }
    assert.equal(moved, 50); // 20 % of the 250 rows of class 1
    assert.throws(
      () => flipLabels(y, { fraction: 1.5, classes: 4 }),
      (e) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT'),
    );
  });

  it('a planted backdoor works, and spectral signatures find it on a seeded run (recall >= 0.8)', async () => {
    const clean = tabular(3000, 1);
    const test = tabular(1000, 2);
    const zeros = clean.y.filter((v) => v === 0).length;
    const p = poison(clean, Math.round(0.1 * zeros), 4); // 10 % of the target class
    const net = await fit(p);
    const m = networkModel(net);
    const asr = await backdoorSuccess(m, test.x, trigger(test.x, test.rows), test.y, 0);
    assert.ok(asr.successRate > 0.8, `backdoor success ${asr.successRate}`);
    assert.ok(asr.cleanTargetRate < 0.2, `clean rows of class 1 classified 0: ${asr.cleanTargetRate}`);
    const { reps, dim } = hiddenRepresentations(net, p.x, p.rows);
    const s = spectralSignatures(reps, dim, p.y, 2, { expectedPoisonFraction: 0.1, rng: 1 });
    const q = detectionQuality(s.flagged, p.poisoned);
    assert.ok(q.recall >= 0.8, `spectral recall ${q.recall}`);
    // Retraining without the flagged rows removes the backdoor.
    const keep = [...Array(p.rows).keys()].filter((i) => !s.flagged[i]);
    const xs = new Float32Array(keep.length * D);
    keep.forEach((r, i) => {
      xs.set(p.x.subarray(r * D, (r + 1) * D), i * D);
    });
    const clean2 = await fit({ x: xs, y: Int32Array.from(keep, (r) => p.y[r] as number), rows: keep.length });
    const asr2 = await backdoorSuccess(networkModel(clean2), test.x, trigger(test.x, test.rows), test.y, 0);
    assert.ok(asr2.successRate < asr.successRate / 2, `after sanitising ${asr2.successRate}`);
    const a = activationClustering(reps, dim, p.y, 2, { rng: 1, analysis: 'relative-size' });
    assert.equal(a.classes.length, 2);
    assert.equal(a.scores.length, p.rows);
  });

  it('the gate fails on a poisoned model and passes on a clean one', async () => {
    const clean = tabular(3000, 1);
    const test = tabular(600, 2);
    const zeros = clean.y.filter((v) => v === 0).length;
    const p = poison(clean, Math.round(0.1 * zeros), 4);
    const gate = parseGate(
      'version: 1\nchecks:\n  - metric: clean-accuracy\n    min: 0.8\n  - metric: backdoor-success\n    trigger: { f10: 0.98, f11: 0.02 }\n    target: "0"\n    max: 0.2\n',
    );
    const domain = InputDomain.box(D);
    const triggered = async () => ({
      clean: test.x,
      triggered: trigger(test.x, test.rows),
      y: test.y,
      target: 0,
    });
    const poisoned = await runGate(gate, {
      model: { name: 'p', model: networkModel(await fit(p)) },
      test,
      domain,
      triggered,
      rows: 200,
    });
    assert.equal(poisoned.passed, false);
    assert.equal(poisoned.checks[1]?.passed, false);
    assert.throws(
      () => requireGatePassed(poisoned),
      (e) => isBulwarkError(e, 'ERR_GATE_FAILED'),
    );
    const ok = await runGate(gate, {
      model: { name: 'c', model: networkModel(await fit(clean)) },
      test,
      domain,
      triggered,
      rows: 200,
    });
    assert.equal(ok.passed, true, JSON.stringify(ok.checks));
    // A value that cannot be measured fails closed.
    assert.equal(judgeGate(gate, [Number.NaN, 0]).passed, false);
    assert.throws(
      () => parseGate('version: 1\nchecks:\n  - metric: membership-auc\n'),
      (e) => isBulwarkError(e, 'ERR_CONFIG_INVALID'),
    );
  });
});

describe('provenance', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-prov-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  it('accepts a protected dataset recorded in the log and refuses unknown data', async () => {
    const a = join(dir, 'a.csv');
    const b = join(dir, 'b.csv');
    writeFileSync(a, 'x,y\n1,0\n');
    writeFileSync(b, 'x,y\n2,1\n');
    const { signer, vkey } = generateSignerKey('bulwark.test/prov');
    const log = await AuditLog.open({
      store: { kind: 'sqlite', path: join(dir, 'audit.db') },
      origin: signer.name,
      signer,
    });
    try {
      const digest = await fileDigest(a);
      await log.append({
        type: 'dataset.protected',
        data: {
          datasetDigest: digest,
          schemaDigest: digest,
          protectedFields: ['x'],
          keyIds: ['k1'],
          rows: 1,
        },
      });
      // b is in the log, but only as created (raw) data: not protected.
      await log.append({
        type: 'dataset.created',
        data: { datasetDigest: await fileDigest(b), source: 'test', rows: 1, columns: 2 },
      });
      await log.flush();
      const r = await checkProvenance(log, a, digest, { publicKey: vkey });
      assert.equal(r.verifiedInclusion, true);
      assert.deepEqual(r.protectedFields, ['x']);
      await assert.rejects(requireProvenance(log, [a, b]), (e) => isBulwarkError(e, 'ERR_DATA_PROVENANCE'));
      const c = join(dir, 'c.csv');
      writeFileSync(c, 'x,y\n3,1\n');
      await assert.rejects(requireProvenance(log, [c]), (e) => isBulwarkError(e, 'ERR_DATA_PROVENANCE'));
      // A batch given with the digest of the bytes its reader read is judged by that digest, not by
      // the path read again: c's path with a's digest passes, a's path with c's digest does not.
      const [byDigest] = await requireProvenance(log, [{ source: c, digest }]);
      assert.equal(byDigest?.digest, digest);
      await assert.rejects(
        requireProvenance(log, [{ source: a, digest: await fileDigest(c) }]),
        (e) => isBulwarkError(e, 'ERR_DATA_PROVENANCE') && e.message.includes(a),
      );
    } finally {
      await log.close();
    }
  });
});

describe('attribute inference', () => {
  it('beats the prior on a model with an exploitable feature', async () => {
    // The sensitive attribute (a 3-valued category, one-hot in columns 0-2) drives the label.
    const rng = new SeededRng(9);
    const rows = 2000;
    const d = 5;
    const x = new Float32Array(rows * d);
    const y = new Int32Array(rows);
    const truth = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const v = rng.weightedIndex([0.5, 0.3, 0.2]);
      truth[r] = v;
      x[r * d + v] = 1;
      x[r * d + 3] = rng.normal();
      x[r * d + 4] = rng.normal();
      const score = [-2, 0.5, 2.5][v] as number;
      y[r] = score + 0.5 * (x[r * d + 3] as number) + rng.normal(0, 0.7) > 0 ? 1 : 0;
    }
    const net = logisticRegression({ inputs: d, classes: 2 });
    await train(net, { x, y, rows }, { epochs: 30, batchSize: 64, learningRate: 0.05, seed: 1 });
    const r = await attributeInference(networkModel(net), x, y, truth, {
      columns: [0, 1, 2],
      candidates: [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      prior: [0.5, 0.3, 0.2],
    });
    assert.ok(Math.abs(r.baselineAccuracy - 0.5) < 0.05, `baseline ${r.baselineAccuracy}`);
    assert.ok(r.advantage > 0.05, `accuracy ${r.accuracy} vs baseline ${r.baselineAccuracy}`);
  });
});

describe('continuous learning: the regression gate', () => {
  it('refuses a model retrained on label-flipped data and accepts a clean retrain (white-box and ONNX Runtime)', async () => {
    const old = tabular(2000, 1);
    const evalSet = tabular(400, 2);
    const domain = InputDomain.box(D);
    const oldNet = await fit(old);
    const flipped = flipLabels(old.y, { fraction: 0.3, classes: 2, rng: 2 });
    const badNet = await fit({ ...old, y: flipped.y });
    const goodNet = await fit(tabular(2000, 3));
    const limits = { domain, eps: 0.05, maxCleanDrop: 0.03, maxRobustDrop: 0.05, steps: 10 };
    const bad = await compareModels(networkModel(oldNet), networkModel(badNet), evalSet, limits);
    assert.equal(bad.attack, 'pgd');
    assert.equal(bad.accepted, false, JSON.stringify(bad));
    assert.throws(
      () => requireNoRegression(bad),
      (e) => isBulwarkError(e, 'ERR_MODEL_REGRESSION'),
    );
    const good = await compareModels(networkModel(oldNet), networkModel(goodNet), evalSet, limits);
    assert.equal(good.accepted, true, JSON.stringify(good));
    // The same comparison through ONNX Runtime (how a packaged model is loaded): black-box Square.
    const ort = async (net: typeof oldNet) =>
      onnxRuntimeModel(await OnnxRuntimeModel.create(toOnnx(net)), { inputs: D, classes: 2 });
    const viaOrt = await compareModels(await ort(oldNet), await ort(badNet), evalSet, {
      ...limits,
      queries: 100,
    });
    assert.equal(viaOrt.attack, 'square');
    assert.equal(viaOrt.accepted, false);
    assert.ok(
      Math.abs(viaOrt.before.clean - bad.before.clean) < 1e-9,
      'same clean accuracy through ONNX Runtime',
    );
  });

  it('a drop of exactly the limit is allowed (0.8 - 0.79 is 0.010000000000000009 in floating point)', async () => {
    // 100 rows whose first feature is the row number; a model is right on the rows below its cut.
    const rows = 100;
    const x = Float32Array.from({ length: rows * D }, (_, i) => (i % D === 0 ? Math.floor(i / D) : 0));
    const y = new Int32Array(rows).fill(1);
    const cut = (n: number, name: string) => ({
      name,
      inputs: D,
      classes: 2,
      predictProba: async (xs: Float32Array, r: number) =>
        Float32Array.from({ length: 2 * r }, (_, i) => {
          const right = (xs[Math.floor(i / 2) * D] as number) < n;
          return i % 2 === 1 ? (right ? 0.9 : 0.1) : right ? 0.1 : 0.9;
        }),
    });
    const domain = new InputDomain({ inputs: D, lower: 0, upper: 1000 });
    const o = { domain, eps: 0, maxCleanDrop: 0.01, maxRobustDrop: 0.01 };
    const atLimit = await compareModels(cut(80, 'old'), cut(79, 'new'), { x, y, rows }, o);
    assert.equal(atLimit.accepted, true, JSON.stringify(atLimit.reasons));
    const beyond = await compareModels(cut(80, 'old'), cut(78, 'new'), { x, y, rows }, o);
    assert.equal(beyond.accepted, false);
    assert.equal(beyond.reasons.length, 2);
  });
});

describe('continuous learning: the recall of each class', () => {
  /**
   * Fraud-like data: `share` of the rows are class 1, told apart by features 0 and 1 (about 0.85 and
   * 0.15 instead of 0.5). The evaluation set has exactly `minority` class-1 rows.
   */
  function fraud(rows: number, seed: number, minority: number) {
    const rng = new SeededRng(seed);
    const x = new Float32Array(rows * D);
    const y = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const c = r < minority ? 1 : 0;
      y[r] = c;
      for (let j = 0; j < D; j++) {
        const mean = c === 1 && j === 0 ? 0.85 : c === 1 && j === 1 ? 0.15 : 0.5;
        x[r * D + j] = Math.min(1, Math.max(0, rng.normal(mean, 0.1)));
      }
    }
    return { x, y, rows };
  }

  it('refuses by default a fine-tune that stops predicting a class of 2 % of the evaluation set', async () => {
    const domain = InputDomain.box(D);
    const oldNet = await fit(fraud(2000, 11, 200));
    const evalSet = fraud(400, 12, 8);
    // The poisoner's "let fraud through": a batch whose fraud rows are all labelled 0, and 20 ordinary
    // rows labelled 1 (a batch of one class is refused by train).
    const batch = fraud(1000, 13, 100);
    const hidden = oldNet.clone();
    await train(
      hidden,
      { ...batch, y: Int32Array.from(batch.y, (_, r) => (r >= 980 ? 1 : 0)) },
      { epochs: 30, batchSize: 64, learningRate: 3e-3, seed: 3 },
    );
    const honest = oldNet.clone();
    await train(honest, batch, { epochs: 30, batchSize: 64, learningRate: 3e-3, seed: 3 });
    // Limits the other tests use: 3 clean points, 5 robust; the class limit is the default (0.1).
    const limits = { domain, eps: 0.05, maxCleanDrop: 0.03, maxRobustDrop: 0.05, steps: 10 };
    const bad = await compareModels(networkModel(oldNet), networkModel(hidden), evalSet, {
      ...limits,
      classNames: ['legit', 'fraud'],
    });
    const fraudRecall = bad.classes.find((c) => c.class === 'fraud');
    assert.deepEqual(
      bad.classes.map((c) => [c.class, c.rows]),
      [
        ['legit', 392],
        ['fraud', 8],
      ],
    );
    assert.ok(fraudRecall && fraudRecall.before >= 0.75, JSON.stringify(bad));
    assert.equal(fraudRecall.after, 0, JSON.stringify(bad));
    // The accuracies alone pass it: 8 rows of 400 are 2 points, within the 3-point limit.
    assert.ok(bad.before.clean - bad.after.clean <= 0.03, JSON.stringify(bad));
    assert.ok(bad.before.robust - bad.after.robust <= 0.05, JSON.stringify(bad));
    assert.equal(bad.maxClassDrop, 0.1);
    assert.equal(bad.accepted, false, JSON.stringify(bad));
    assert.deepEqual(bad.reasons, [
      `recall of class "fraud" ${fraudRecall.before.toFixed(4)} -> 0.0000 over its 8 rows (limit 0.1 per class)`,
    ]);
    assert.ok(Math.abs(bad.before.balanced - (bad.classes[0]!.before + fraudRecall.before) / 2) < 1e-12);
    assert.throws(
      () => requireNoRegression(bad),
      (e) =>
        isBulwarkError(e, 'ERR_MODEL_REGRESSION') && /recall of class "fraud"/.test((e as Error).message),
    );
    // The honest fine-tune on the same batch passes the same default.
    const good = await compareModels(networkModel(oldNet), networkModel(honest), evalSet, limits);
    assert.equal(good.accepted, true, JSON.stringify(good));
    assert.deepEqual(
      good.classes.map((c) => c.class),
      ['0', '1'],
    );
    // A limit of 1 per class turns the check off; out of range is refused, naming the option.
    assert.equal(
      (
        await compareModels(networkModel(oldNet), networkModel(hidden), evalSet, {
          ...limits,
          maxClassDrop: 1,
        })
      ).accepted,
      true,
    );
    await assert.rejects(
      compareModels(networkModel(oldNet), networkModel(hidden), evalSet, { ...limits, maxClassDrop: 1.5 }),
      /maxClassDrop/,
    );
  });
});

describe('the gate: membership inference and privacy budget', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-gate-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  it('fails an overfitted model on membership AUC and a budget overspent; passes within limits', async () => {
    // An MLP trained long on few noisy rows (a quarter of the labels flipped) memorises them: members
    // have lower loss than non-members.
    const noisy = (d: ReturnType<typeof tabular>, seed: number) => ({
      ...d,
      y: flipLabels(d.y, { fraction: 0.25, classes: 2, rng: seed }).y,
    });
    const members = noisy(tabular(150, 21), 1);
    const test = noisy(tabular(300, 22), 2);
    const net = mlp({ inputs: D, hidden: [64], classes: 2, rng: 1 });
    await train(net, members, { epochs: 400, batchSize: 16, learningRate: 3e-3, seed: 1 });
    const ledger = await openLedger(join(dir, 'ledger.sqlite'));
    try {
      await ledger.setBudget('tx', { epsilon: 3, delta: 1e-5 });
      await ledger.spend({ dataset: 'tx', epsilon: 2.5, operation: 'train.dp-sgd' });
      const gate = parseGate(
        'version: 1\nchecks:\n  - metric: membership-auc\n    max: 0.6\n  - metric: privacy-spent\n    budget: tx\n    max: 2\n  - metric: robust-accuracy\n    attack: fgsm\n    eps: 0\n    min: 0.5\n',
      );
      const r = await runGate(gate, {
        model: { name: 'overfit', model: networkModel(net), network: net },
        test,
        members,
        domain: InputDomain.box(D),
        ledger,
        rows: 150,
      });
      const [mia, spent, robust] = r.checks;
      assert.ok((mia?.value as number) > 0.6, `membership AUC ${mia?.value}`);
      assert.equal(mia?.passed, false);
      assert.equal(spent?.value, 2.5);
      assert.equal(spent?.passed, false);
      assert.equal(robust?.passed, true, 'accuracy at eps 0 is the clean accuracy');
      // The two sets swapped: the loss threshold's AUC falls below 0.5 by as much as it was above it,
      // which separates the rows just as well; it used to pass "max 0.6".
      const swapped = await runGate(
        parseGate('version: 1\nchecks:\n  - metric: membership-auc\n    max: 0.6\n'),
        {
          model: { name: 'overfit', model: networkModel(net), network: net },
          test: members,
          members: test,
          domain: InputDomain.box(D),
          rows: 150,
        },
      );
      assert.ok((swapped.checks[0]?.value as number) > 0.6, `swapped: ${swapped.checks[0]?.value}`);
      assert.equal(swapped.passed, false);
      const lenient = parseGate(
        'version: 1\nchecks:\n  - metric: privacy-spent\n    budget: tx\n    max: 3\n',
      );
      const ok = await runGate(lenient, {
        model: { name: 'm', model: networkModel(net) },
        test,
        domain: InputDomain.box(D),
        ledger,
      });
      assert.equal(ok.passed, true);
    } finally {
      await ledger.close();
    }
  });
});

describe('inspecting data for poison', () => {
  it('no rows is said plainly, not as "rows: expected an integer >= 1, got 0"', () => {
    const net = mlp({ inputs: 3, hidden: [4], classes: 2, rng: 1 });
    assert.throws(
      () => inspectRows(net, new Float32Array(0), new Int32Array(0)),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE') && /has no rows/.test(e.message),
    );
  });
});
