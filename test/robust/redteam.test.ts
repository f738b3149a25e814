import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import type { Network } from '../../src/ml/index.js';
import { renderHtml } from '../../src/report/index.js';
import {
  type CurvePoint,
  type EvasionResult,
  InputDomain,
  MahalanobisDetector,
  networkModel,
  type ProbabilityModel,
  pgd,
  type RedTeamOptions,
  redTeam,
  redTeamSections,
  tprAtLowFpr,
} from '../../src/robust/index.js';
import { blobs, trainedMlp } from './helpers.js';

describe('red-team evaluation', () => {
  const d = 6;
  const classes = 3;
  const all = blobs(900, d, classes, 51);
  const members = { x: all.x.slice(0, 500 * d), y: all.y.slice(0, 500), rows: 500 };
  const test = { x: all.x.slice(500 * d), y: all.y.slice(500), rows: 400 };
  const domain = InputDomain.box(d);
  let net: Network;
  before(async () => {
    net = await trainedMlp(members, d, classes, { hidden: [16], epochs: 15 });
  });
  const options: RedTeamOptions = {
    attacks: ['fgsm', 'pgd', 'apgd', 'square', 'mia', 'extract'],
    eps: [0, 0.1, 0.2],
    rows: 60,
    steps: 5,
    restarts: 1,
    squareQueries: 40,
    shadows: 2,
    extractionBudgets: [20, 60],
    fpr: 0.05,
    streamRows: 3,
    trainRecipe: { epochs: 5, learningRate: 3e-3 },
    seed: 3,
  };

  it('runs every attack and detector, deterministically, with consistent figures', async () => {
    const models = [{ name: 'mlp', model: networkModel(net), network: net }];
    const r = await redTeam(models, { test, members, domain }, options);
    const again = await redTeam(models, { test, members, domain }, options);
    assert.deepEqual(JSON.parse(JSON.stringify(r)), JSON.parse(JSON.stringify(again)));
    assert.equal(r.rowsAttacked, 60);
    assert.equal(r.detectorEps, 0.1);
    const m = r.models[0];
    assert.ok(m);
    for (const a of ['fgsm', 'pgd', 'apgd', 'square'] as const) {
      const c: CurvePoint[] | undefined = m.curves[a];
      assert.ok(c && c.length === 3, a);
      assert.equal(c[0]?.accuracy, m.cleanAccuracy, `${a} at eps 0 is the clean accuracy`);
      for (const p of c)
        assert.ok(p.accuracy <= m.cleanAccuracy + 1e-12 && p.successRate >= 0 && p.successRate <= 1);
      assert.ok((c[2]?.accuracy as number) <= (c[0]?.accuracy as number));
    }
    // PGD is at least as strong as FGSM where it matters.
    assert.ok((m.curves.pgd?.[2]?.accuracy as number) <= (m.curves.fgsm?.[2]?.accuracy as number) + 0.02);
    assert.ok(m.membership?.lossThreshold && m.membership.lira?.shadows === 2);
    assert.deepEqual(
      m.extraction?.points.map((p) => p.queries),
      [20, 60],
    );
    const names = r.detectors.map((x) => x.name);
    assert.deepEqual(names, [
      'Mahalanobis (inputs)',
      'Mahalanobis (hidden layer 1)',
      'Feature squeezing (4-bit, noise)',
    ]);
    for (const det of r.detectors) {
      assert.ok(det.attacks.some((a) => a.attack === 'PGD'));
      for (const a of det.attacks)
        assert.ok(Number.isNaN(a.catchRate) || (a.catchRate >= 0 && a.catchRate <= 1));
    }
    assert.ok(r.detectors[0]?.attacks.some((a) => a.attack.startsWith('adaptive')));
    // The detectors judge adversarial inputs only: rows the model got right that the attack turns
    // wrong, as many as the evasion curve's success rate at the detectors' eps says (rows it already
    // got wrong are not counted, though the attack returns them as "successes").
    const nCorrect = Math.round(m.cleanAccuracy * r.rowsAttacked);
    assert.ok(nCorrect < r.rowsAttacked, 'the test needs rows the model gets wrong');
    for (const a of ['fgsm', 'pgd', 'apgd', 'square'] as const) {
      const at: CurvePoint | undefined = m.curves[a]?.find((p) => p.eps === r.detectorEps);
      const judged = r.detectors[0]?.attacks.find((x) => x.attack === a.toUpperCase());
      assert.ok(at && judged, a);
      assert.equal(judged.fooled, Math.round(at.successRate * nCorrect), a);
    }
    // Every detector meets an attack that knows it, the hidden-layer Mahalanobis one included (its
    // score's input gradient is backpropagated from the hidden layer), and the result says which.
    assert.deepEqual(
      r.detectors.map((x) => x.adaptive),
      [
        'adaptive PGD (evades the detector)',
        'adaptive PGD (evades the detector)',
        'adaptive PGD (high confidence, margin 4)',
      ],
    );
    for (const det of r.detectors) {
      assert.ok(det.attacks.some((a) => a.attack === det.adaptive));
      assert.ok(!det.notes.some((n) => /no adaptive attack/.test(n)), det.name);
    }
    assert.deepEqual(
      r.streams.map((s) => s.name),
      ['Stateful query detector (Chen et al.)', 'PRADA (Juuti et al.)'],
    );
    assert.ok(r.streams[0]?.attacks[0]?.attack.startsWith('benign clients'));
    const html = renderHtml({
      title: 'red team',
      generatedAt: 'now',
      bulwarkVersion: 'test',
      sections: redTeamSections(r),
    });
    for (const id of [
      'redteam-evasion',
      'redteam-detectors',
      'redteam-streams',
      'redteam-privacy',
      'redteam-extraction',
    ]) {
      assert.ok(html.includes(`id="${id}"`), id);
    }
    assert.ok((html.match(/<svg/g) ?? []).length >= 8);
    assert.ok(
      html.includes(
        'Evaluated against an adaptive attack: Mahalanobis (inputs) (adaptive PGD (evades the detector)); Mahalanobis (hidden layer 1) (adaptive PGD (evades the detector));',
      ),
    );
    assert.ok(!html.includes('Not evaluated adaptively'));
    // Every class attacked: the attacked rows before the attack are fresh clean rows, a check of the FPR.
    assert.ok(html.includes('flagged before attack (target FPR)'));
    assert.ok(html.includes('so it checks the calibrated rate'));
    // One class attacked: the same figure is that class's flag rate, and the report says it is not a
    // calibration check (the demo's fraud rows read 14 % against a 1 % target).
    const oneClass = renderHtml({
      title: 'red team',
      generatedAt: 'now',
      bulwarkVersion: 'test',
      sections: redTeamSections({ ...r, attackClass: 1 }),
    });
    assert.ok(oneClass.includes('flagged before attack, class 1 (target FPR)'));
    assert.ok(oneClass.includes('It is not a check of the calibration'));
    assert.ok(!oneClass.includes('so it checks the calibrated rate'));
  });

  it('the hidden-layer Mahalanobis detector meets the adaptive attack, which lowers its catch rate and evades it more often', async () => {
    // eps 0.2 on these blobs: plain PGD's adversarial inputs are partly flagged by the hidden-layer
    // detector, so there is a catch rate for the adaptive attack to lower.
    const r = await redTeam(
      [{ name: 'mlp', model: networkModel(net), network: net }],
      { test, members, domain },
      {
        attacks: ['pgd'],
        eps: [0, 0.2],
        rows: 100,
        steps: 10,
        restarts: 1,
        fpr: 0.05,
        seed: 3,
      },
    );
    const hidden = r.detectors.find((x) => x.name === 'Mahalanobis (hidden layer 1)');
    assert.ok(hidden);
    assert.equal(hidden.adaptive, 'adaptive PGD (evades the detector)');
    const plain = hidden.attacks.find((a) => a.attack === 'PGD');
    const adaptive = hidden.attacks.find((a) => a.attack === hidden.adaptive);
    assert.ok(plain && adaptive);
    assert.ok(
      plain.fooled >= 20 && plain.catchRate > 0.05,
      `plain PGD: ${plain.fooled} fooled, ${plain.catchRate} caught`,
    );
    assert.ok(adaptive.fooled >= 20, `adaptive: ${adaptive.fooled} fooled`);
    assert.ok(adaptive.catchRate < plain.catchRate, `caught ${adaptive.catchRate} vs ${plain.catchRate}`);
    // Not only the acceptance rule at work (an accepted point is unflagged by definition): more of the
    // attacked rows are turned wrong without a flag than plain PGD manages.
    assert.ok(adaptive.evadedRate > plain.evadedRate, `evaded ${adaptive.evadedRate} vs ${plain.evadedRate}`);
  });

  it('PGD with the hidden-layer score as penalty lowers that score, within the eps-ball and the valid range', async () => {
    const det = await new MahalanobisDetector({ layer: 1, network: net }).fit(
      members.x,
      members.rows,
      members.y,
    );
    const n = 100;
    const x0 = test.x.slice(0, n * d);
    const y0 = test.y.slice(0, n);
    const eps = 0.2;
    const model = networkModel(net);
    const common = { eps, domain, steps: 20, restarts: 1, seed: 5, loss: 'margin' as const };
    const plain = pgd(model, x0, y0, n, common);
    const before = det.scoreSync(plain.x, n).scores;
    const scale = before.reduce((s, v) => s + v, 0) / n; // the penalty in units of the typical score
    const adaptive = pgd(model, x0, y0, n, {
      ...common,
      penalty: {
        weight: 1,
        fn: (x, rows) => {
          const g = det.scoreGradient(x, rows);
          return { values: g.values.map((v) => v / scale), gradient: g.gradient.map((v) => v / scale) };
        },
      },
    });
    const after = det.scoreSync(adaptive.x, n).scores;
    const mean = (a: Float64Array) => a.reduce((s, v) => s + v, 0) / a.length;
    assert.ok(
      mean(after) < 0.8 * mean(before),
      `mean score ${mean(after)} vs ${mean(before)} under plain PGD`,
    );
    // Rows the model already got wrong come back unperturbed from both, and rows fooled at the same
    // first iterate come back identical: compare the rows where the two attacks returned different points.
    let differ = 0;
    let lower = 0;
    for (let i = 0; i < n; i++) {
      if (adaptive.x.subarray(i * d, (i + 1) * d).every((v, j) => v === plain.x[i * d + j])) continue;
      differ++;
      if ((after[i] as number) < (before[i] as number)) lower++;
    }
    assert.ok(differ >= 30 && lower >= 0.9 * differ, `${lower} of ${differ} changed rows scored lower`);
    // At a threshold calibrated on clean rows (5 % FPR), fewer of the fooling points are flagged.
    await det.calibrate(test.x.slice(200 * d), test.rows - 200, 0.05);
    const t = det.calibration?.threshold as number;
    const flaggedShare = (r: EvasionResult, scores: Float64Array) => {
      let fooled = 0;
      let flagged = 0;
      for (let i = 0; i < n; i++) {
        if (!r.success[i]) continue;
        fooled++;
        if ((scores[i] as number) > t) flagged++;
      }
      return flagged / fooled;
    };
    assert.ok(
      flaggedShare(adaptive, after) < 0.5 * flaggedShare(plain, before),
      `flagged ${flaggedShare(adaptive, after)} vs ${flaggedShare(plain, before)}`,
    );
    // Every returned point is in the ball around its clean row and in [0, 1].
    for (let i = 0; i < n * d; i++) {
      const v = adaptive.x[i] as number;
      assert.ok(v >= 0 && v <= 1, `x[${i}] = ${v}`);
      assert.ok(
        Math.abs(v - (x0[i] as number)) <= eps,
        `|x - x0| at ${i}: ${Math.abs(v - (x0[i] as number))}`,
      );
    }
    // It still fools the model on a good share of the rows: the penalty did not simply stop the attack.
    assert.ok(
      adaptive.successRate >= 0.5 * plain.successRate,
      `${adaptive.successRate} vs ${plain.successRate}`,
    );
  });

  it('says when too few members leave the membership AUC unable to tell a leak from chance', async () => {
    const models = [{ name: 'mlp', model: networkModel(net), network: net }];
    const few = { x: members.x.slice(0, 4 * d), y: members.y.slice(0, 4), rows: 4 };
    const o = { ...options, attacks: ['mia'] as RedTeamOptions['attacks'], shadows: 0 };
    const r = await redTeam(models, { test, members: few, domain }, o);
    const [lo, hi] = r.models[0]?.membership?.lossThreshold.aucInterval ?? [1, 0];
    assert.ok(lo <= 0.5 && hi >= 0.5, `${lo} ${hi}`);
    assert.ok(
      r.notes.some((n) => /used 4 members and 400 non-members: .* holds 0\.5: too few rows/.test(n)),
      r.notes.join(' | '),
    );
    // With all 500 members the note is not there.
    const many = await redTeam(models, { test, members, domain }, o);
    assert.ok(!many.notes.some((n) => /too few rows to tell a leak/.test(n)));
  });

  it('says when too few non-members leave the TPR at 0.1 % FPR in effect at 0 % FPR', () => {
    const m = (nonMembers: number) => ({
      attack: 'loss-threshold' as const,
      auc: 0.6,
      aucInterval: [0.55, 0.65] as [number, number],
      tprAtFpr: [
        { fpr: 0.001, tpr: 0.008 },
        { fpr: 0.01, tpr: 0.03 },
      ],
      advantage: 0.1,
      members: 800,
      nonMembers,
      roc: { fpr: [0, 1], tpr: [0, 1] },
    });
    assert.equal(tprAtLowFpr(m(200)), 'TPR 0.8 % at 0.1 % FPR (with 200 non-members: in effect at 0 % FPR)');
    assert.equal(tprAtLowFpr(m(2000)), 'TPR 0.8 % at 0.1 % FPR');
  });

  it('the recorded Square streams are bounded in memory, and the notes say when their budget is cut', async () => {
    // Each recorded Square query was kept until its stream was scored, whatever --queries said (up to
    // 10^7 per stream from the command line: gigabytes). Here a bound of 3 streams x 100 queries x 6
    // features, raised to the benign streams' length (the 340 clean rows), and a budget of 2,000 queries
    // at an eps that fools no row the model gets right, so every such stream would use all of it.
    const m = networkModel(net);
    let inStreams = false;
    let streamQueries = 0;
    const blackBox: ProbabilityModel = {
      name: 'api',
      inputs: d,
      classes,
      predictProba: (x, rows) => {
        // The Square runs recorded for the stream detectors ask one row at a time.
        if (inStreams && rows === 1) streamQueries++;
        return m.predictProba(x, rows);
      },
    };
    const o: RedTeamOptions = {
      ...options,
      attacks: ['square'],
      eps: [0, 1e-6],
      squareQueries: 2000,
      streamValues: 3 * 100 * d,
      onProgress: (label) => {
        if (label === 'stream detectors') inStreams = true;
      },
    };
    const r = await redTeam(
      [{ name: 'mlp', model: m, network: net, blackBox }],
      { test, members, domain },
      o,
    );
    assert.ok(streamQueries > 0 && streamQueries <= 3 * 340, `${streamQueries} recorded Square queries`);
    assert.equal(r.streams.length, 2);
    for (const s of r.streams)
      assert.ok(
        s.notes.some((n) =>
          /^the Square streams are runs with a budget of 340 queries each, not 2000/.test(n),
        ),
        s.notes.join(' | '),
      );
    // Within the bound nothing is cut, and nothing is said.
    const whole = await redTeam(
      [{ name: 'mlp', model: m, network: net }],
      { test, members, domain },
      {
        ...o,
        onProgress: () => {},
        squareQueries: 300,
      },
    );
    for (const s of whole.streams) assert.ok(!s.notes.some((n) => /budget of/.test(n)), s.notes.join(' | '));
  });

  it('refuses bad options up front, naming them; white-box attacks on a black-box model name the capability', async () => {
    const models = [{ name: 'mlp', model: networkModel(net), network: net }];
    const data = { test, members, domain };
    const bad: [Partial<RedTeamOptions>, RegExp][] = [
      [{ attacks: ['pgd', 'nope' as never] }, /^attacks\[1\]: expected one of/],
      [{ eps: [0, -1] }, /^eps\[1\]/],
      [{ fpr: 0 }, /^fpr/],
      [{ shadows: 1 }, /^shadows/],
      [{ norm: '2', attacks: ['square'] }, /^norm: expected 'inf' with the square attack/],
      // A million benign streams for the stream detectors' calibration: refused before any work.
      [{ fpr: 1e-6, attacks: ['square'] }, /^fpr: expected at least 0.001 when the stream detectors run/],
      [{ fpr: 1e-4, attacks: ['extract'] }, /^fpr: expected at least 0.001/],
    ];
    for (const [o, re] of bad) {
      await assert.rejects(
        redTeam(models, data, { ...options, ...o }),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test(e.message),
      );
    }
    await assert.rejects(
      redTeam(models, { test, domain }, { ...options, attacks: ['mia'] }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') &&
        /^members: expected the model's training rows/.test(e.message),
    );
    const m = networkModel(net);
    const blackBox: ProbabilityModel = {
      name: 'scoring API',
      inputs: d,
      classes,
      predictProba: m.predictProba,
    };
    await assert.rejects(
      redTeam([{ name: 'api', model: blackBox }], data, { ...options, attacks: ['square', 'pgd'] }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MODEL_CAPABILITY') && /pgd on "api" needs input gradients/.test(e.message),
    );
    // Without the detectors a small fpr is harmless; with input detectors only, too few calibration rows
    // for the target are said in the detector's notes rather than shown as a detector that catches nothing.
    const small = await redTeam(models, data, { ...options, attacks: ['fgsm'], eps: [0, 0.1], fpr: 1e-4 });
    assert.ok(small.detectors.length > 0, 'the detectors ran');
    for (const det of small.detectors) {
      assert.equal(det.threshold, Infinity);
      assert.ok(
        det.notes.some((n) => /^no finite threshold: \d+ clean calibration rows are too few/.test(n)),
        `${det.name}: ${det.notes.join(' | ')}`,
      );
      // FGSM alone: no adaptive attack ran, and the result says so.
      assert.equal(det.adaptive, null);
      assert.ok(
        det.notes.includes('no adaptive attack evaluated: it runs with pgd or apgd among the attacks'),
      );
    }
    // ... and runs the black-box attack alone
    const r = await redTeam([{ name: 'api', model: blackBox }], data, {
      ...options,
      attacks: ['square'],
      detectors: false,
    });
    assert.equal(r.models[0]?.whiteBox, false);
    assert.ok(r.models[0]?.curves.square);
  });
});
