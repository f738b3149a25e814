import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { logisticRegression, mlp, train } from '../../src/ml/index.js';
import {
  attributeInference,
  aucInterval95,
  extractModel,
  liraAttack,
  lossThresholdAttack,
  membershipSummary,
  modelPerformance,
  networkModel,
  networkTrainer,
} from '../../src/robust/index.js';
import { blobs } from './helpers.js';

describe('membership inference', () => {
  it('summary: AUC, TPR at low FPR and advantage on a hand-checked example', () => {
    // members 4, 3, 2, 0.5; non-members 1, 0, -1, -2: one member below one non-member.
    const r = membershipSummary('loss-threshold', [4, 3, 2, 0.5], [1, 0, -1, -2]);
    assert.equal(r.auc, 15 / 16);
    assert.equal(r.advantage, 0.75);
    assert.deepEqual(r.tprAtFpr, [
      { fpr: 0.001, tpr: 0.75 },
      { fpr: 0.01, tpr: 0.75 },
    ]);
    assert.throws(
      () => membershipSummary('lira', [], [1]),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT'),
    );
  });

  it('the AUC interval (Hanley & McNeil) covers the true AUC about 95 % of the time, and is wide with few members', () => {
    // Members' scores N(1, 1), non-members' N(0, 1): the true AUC is Phi(1 / sqrt 2) = 0.76025.
    const trueAuc = 0.7602499389065233;
    const rng = new SeededRng(61);
    const draw = (n: number, mean: number) => Array.from({ length: n }, () => rng.normal(mean, 1));
    let covered = 0;
    const trials = 600;
    for (let t = 0; t < trials; t++) {
      const [lo, hi] = membershipSummary('loss-threshold', draw(60, 1), draw(80, 0)).aucInterval;
      if (lo <= trueAuc && trueAuc <= hi) covered++;
    }
    // Binomial(600, 0.95): sd 0.009.
    assert.ok(Math.abs(covered / trials - 0.95) < 0.035, `${covered} of ${trials}`);
    // 4 members against 201 non-members: the interval holds 0.5 whatever the AUC reads.
    const few = membershipSummary('loss-threshold', [0.9, 0.1, 0.4, 0.7], draw(201, 0.5));
    assert.ok(few.aucInterval[0] < 0.5 && few.aucInterval[1] > 0.5, `${few.aucInterval}`);
    assert.deepEqual(aucInterval95(1, 10, 10)[1], 1);
  });

  // Noisy labels, few rows, a wide MLP trained long: it memorises its members.
  const d = 8;
  const classes = 2;
  const data = blobs(400, d, classes, 23, 0.5);
  for (let i = 0; i < data.rows; i += 4) data.y[i] = 1 - (data.y[i] as number);
  const members = { x: data.x.slice(0, 200 * d), y: data.y.slice(0, 200), rows: 200 };
  const nonMembers = { x: data.x.slice(200 * d), y: data.y.slice(200), rows: 200 };
  const recipe = { epochs: 200, batchSize: 32, learningRate: 1e-2 };

  it('an overfit model leaks: loss-threshold and LiRA AUC well above 0.5; a simple model on the same data barely', async () => {
    const net = mlp({ inputs: d, hidden: [128], classes, rng: 3 });
    await train(net, members, { ...recipe, seed: 3 });
    const model = networkModel(net);
    const yeom = await lossThresholdAttack(model, members, nonMembers);
    assert.ok(yeom.auc > 0.7, `loss threshold AUC ${yeom.auc}`);
    const lira = await liraAttack(model, members, nonMembers, {
      shadows: 4,
      trainShadow: networkTrainer(net, recipe),
      seed: 1,
    });
    assert.equal(lira.shadows, 4);
    assert.ok(lira.auc > 0.7, `LiRA AUC ${lira.auc}`);
    // Carlini et al.'s point: the likelihood ratio finds members at low FPR where the loss threshold cannot.
    assert.ok(
      (lira.tprAtFpr[1]?.tpr as number) > (yeom.tprAtFpr[1]?.tpr as number) + 0.05,
      JSON.stringify([lira.tprAtFpr, yeom.tprAtFpr]),
    );
    assert.ok(lira.roc.fpr.length > 10 && lira.roc.fpr[0] === 0 && lira.roc.tpr.at(-1) === 1);
    const lr = logisticRegression({ inputs: d, classes });
    await train(lr, members, { epochs: 30, learningRate: 0.05, seed: 1 });
    const weak = await lossThresholdAttack(networkModel(lr), members, nonMembers);
    assert.ok(Math.abs(weak.auc - 0.5) < 0.1, `logistic regression AUC ${weak.auc}`);
    assert.ok(yeom.auc > weak.auc + 0.15);
  });

  it('checks its inputs', async () => {
    const model = networkModel(logisticRegression({ inputs: d, classes }));
    await assert.rejects(
      lossThresholdAttack(model, { ...members, rows: 3 }, nonMembers),
      /^members|members:/,
    );
    // Label 2 of a 2-class model read the next row's class-0 probability: a wrong loss, no error.
    const y2 = members.y.slice();
    y2[0] = 2;
    await assert.rejects(
      lossThresholdAttack(model, { ...members, y: y2 }, nonMembers),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^members\.y\[0\]:/.test(e.message),
    );
    const yNeg = nonMembers.y.slice();
    yNeg[3] = -1;
    await assert.rejects(
      lossThresholdAttack(model, members, { ...nonMembers, y: yNeg }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^nonMembers\.y\[3\]:/.test(e.message),
    );
    const xNaN = members.x.slice();
    xNaN[d * 5 + 1] = Number.NaN;
    await assert.rejects(
      lossThresholdAttack(model, { ...members, x: xNaN }, nonMembers),
      (e: unknown) => isBulwarkError(e, 'ERR_DATA_VALUE') && /^members: row 5/.test(e.message),
    );
    await assert.rejects(
      liraAttack(model, members, nonMembers, {
        shadows: 1,
        trainShadow: networkTrainer(logisticRegression({ inputs: d, classes })),
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^shadows/.test(e.message),
    );
  });
});

describe('model extraction', () => {
  it('agreement with the victim grows with the queries and reaches > 90 %', async () => {
    const d = 10;
    const classes = 3;
    const victimData = blobs(1000, d, classes, 41);
    const victim = mlp({ inputs: d, hidden: [32], classes, rng: 1 });
    await train(victim, victimData, { epochs: 20, learningRate: 3e-3, seed: 1 });
    const attacker = blobs(3000, d, classes, 41); // same distribution, the attacker's own pool
    const pool = { x: attacker.x.slice(0, 2000 * d), rows: 2000 };
    const held = { x: attacker.x.slice(2000 * d), y: attacker.y.slice(2000), rows: 1000 };
    const surrogate = mlp({ inputs: d, hidden: [16], classes });
    const r = await extractModel(networkModel(victim), pool, held, {
      budgets: [10, 100, 1000],
      trainSurrogate: networkTrainer(surrogate, { epochs: 30, learningRate: 3e-3 }),
      seed: 2,
    });
    assert.deepEqual(
      r.points.map((p) => p.queries),
      [10, 100, 1000],
    );
    const ag = r.points.map((p) => p.agreement);
    assert.ok((ag[2] as number) > 0.9, `agreement ${ag}`);
    assert.ok((ag[2] as number) > (ag[0] as number), `agreement ${ag}`);
    assert.ok(r.victimAccuracy !== undefined && r.victimAccuracy > 0.9);
    assert.equal(r.stream.rows, 1000);
    assert.equal(r.stream.predicted?.length, 1000);
    await assert.rejects(
      extractModel(networkModel(victim), pool, held, {
        budgets: [100, 50],
        trainSurrogate: networkTrainer(surrogate),
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^budgets\[1\]/.test(e.message),
    );
  });

  it('checks the held-out set and the trainer before querying (an empty held-out set gave agreement NaN)', async () => {
    const d = 3;
    let queries = 0;
    const victim = {
      name: 'counting',
      inputs: d,
      classes: 2,
      predictProba: async (_x: Float32Array, rows: number) => {
        queries++;
        return new Float32Array(2 * rows).fill(0.5);
      },
    };
    const pool = { x: new Float32Array(10 * d), rows: 10 };
    const trainSurrogate = async () => victim;
    const cases: [RegExp, Parameters<typeof extractModel>[2], Parameters<typeof extractModel>[3]][] = [
      [/^heldOut\.rows:/, { x: new Float32Array(0), rows: 0 }, { budgets: [5], trainSurrogate }],
      [/^heldOut\.y:/, { x: new Float32Array(2 * d), rows: 2, y: [0] }, { budgets: [5], trainSurrogate }],
      [
        /^trainSurrogate:/,
        { x: new Float32Array(2 * d), rows: 2 },
        { budgets: [5], trainSurrogate: 'x' as never },
      ],
    ];
    for (const [re, held, o] of cases)
      await assert.rejects(
        extractModel(victim, pool, held, o),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message),
      );
    assert.equal(queries, 0);
  });
});

describe('attribute inference', () => {
  it('checks labels, truth and candidates before querying the model', async () => {
    let queries = 0;
    const model = {
      name: 'counting',
      inputs: 3,
      classes: 2,
      predictProba: async (_x: Float32Array, rows: number) => {
        queries++;
        return new Float32Array(2 * rows).fill(0.5);
      },
    };
    const x = new Float32Array(4 * 3);
    const y = Int32Array.from([0, 1, 1, 0]);
    const truth = Int32Array.from([0, 1, 0, 1]);
    const o = { columns: [2], candidates: [[0], [1]], prior: [1, 1] };
    const bad: [RegExp, () => Promise<unknown>][] = [
      // label 2 of a 2-class model read the next row's probability
      [/^y\[1\]:/, () => attributeInference(model, x, Int32Array.from([0, 2, 1, 0]), truth, o)],
      [/^truth\[3\]:/, () => attributeInference(model, x, y, Int32Array.from([0, 1, 0, 2]), o)],
      [
        /^candidates\[1\]\[0\]:/,
        () => attributeInference(model, x, y, truth, { ...o, candidates: [[0], [Number.NaN]] }),
      ],
      [
        /^rows/,
        () => attributeInference(model, new Float32Array(0), new Int32Array(0), new Int32Array(0), o),
      ],
      // a TypeError from inside the counting loop before
      [/^y\[0\]:/, () => modelPerformance(model, x, Int32Array.from([-1, 0, 1, 0]))],
    ];
    for (const [re, f] of bad)
      await assert.rejects(
        f,
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message),
        String(re),
      );
    assert.equal(queries, 0);
    const perf = await modelPerformance(model, x, y);
    assert.equal(perf.length, 2);
  });
});
