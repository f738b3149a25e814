import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import type { Network } from '../../src/ml/index.js';
import { renderHtml } from '../../src/report/index.js';
import {
  type CurvePoint,
  InputDomain,
  networkModel,
  type ProbabilityModel,
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
    assert.ok(r.detectors[1]?.notes.some((n) => /no adaptive attack/.test(n)));
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

  it('says when too few non-members leave the TPR at 0.1 % FPR in effect at 0 % FPR', () => {
    const m = (nonMembers: number) => ({
      attack: 'loss-threshold' as const,
      auc: 0.6,
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
