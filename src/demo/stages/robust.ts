import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRng, sha256Digest as sha256, writeFileAtomic } from '../../core/index.js';
import { type LabelledData, type Network, onnxMetadata, thresholdForFpr, toOnnx } from '../../ml/index.js';
import type { Block } from '../../report/index.js';
import {
  adversarialTrain,
  networkModel,
  type RedTeamResult,
  redTeam,
  redTeamSections,
  tabularDomain,
} from '../../robust/index.js';
import type { DemoStage } from '../stage.js';

/**
 * What a fraudster controls about a card transaction: how much, at which kind of merchant, through which
 * channel, at what hour, and how fast they go (which moves the velocity features). Everything else
 * (distances from home and the last transaction, whether the device or merchant is new to the card, the
 * cardholder's history) is fixed by the stolen card and the world: the attacks may not change it.
 */
export const ATTACKER_CONTROLS = [
  'amount',
  'category',
  'channel',
  'local_hour',
  'minutes_since_last',
  'tx_count_1h',
  'amount_to_avg',
];

/** Budget: at most this share of each field's range (schema bounds) or standard deviation. */
export const EPS = 0.1;

const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)} %`;

/** All fraud rows of the training set (up to `maxPos`) and a seeded sample of the others (up to `maxNeg`). */
function fineTuneSample(
  d: LabelledData,
  inputs: number,
  maxPos: number,
  maxNeg: number,
  seed: number,
): LabelledData {
  const pos: number[] = [];
  const neg: number[] = [];
  for (const r of new SeededRng(seed).permutation(d.rows)) {
    if (d.y[r] === 1) {
      if (pos.length < maxPos) pos.push(r);
    } else if (neg.length < maxNeg) neg.push(r);
  }
  const idx = [...pos, ...neg];
  const x = new Float32Array(idx.length * inputs);
  idx.forEach((r, i) => {
    x.set(d.x.subarray(r * inputs, (r + 1) * inputs), i * inputs);
  });
  return { x, y: Int32Array.from(idx, (r) => d.y[r] as number), rows: idx.length };
}

/**
 * Stage: adversarial robustness of the fraud model. A fraudster who can probe the model tweaks what they
 * control so a fraudulent transaction passes as legitimate. The baseline is attacked (FGSM, PGD and the
 * black-box Square attack on the fraud rows, within the schema and a budget), then adversarially
 * fine-tuned with PGD (Madry et al.) on the same rules, and attacked again; detectors and the stream
 * detectors are evaluated alongside. The red team is the same one `bulwark evaluate` runs.
 */
export const robustStage: DemoStage = {
  id: 'robust',
  title: 'Adversarial robustness of the fraud model',
  async run(ctx) {
    const base = ctx.state.baseline?.result;
    if (!base) throw new Error('the robustness stage needs the baseline stage');
    const quick = ctx.options.quick;
    const inputs = base.network.inputs;
    const stringInputs = base.pipeline
      .toJSON()
      .inputs.filter((i) => i.type === 'string')
      .map((i) => i.name);
    const inputColumns = base.pipeline.inputs;
    const immutable = inputColumns.filter((c) => !ATTACKER_CONTROLS.includes(c));
    const all = new Float32Array(base.trainSet.x.length + base.testSet.x.length);
    all.set(base.trainSet.x, 0);
    all.set(base.testSet.x, base.trainSet.x.length);
    const domain = tabularDomain({
      features: base.features,
      x: all,
      rows: base.trainSet.rows + base.testSet.rows,
      ...(ctx.state.schema ? { schema: ctx.state.schema } : {}),
      immutable,
      categorical: stringInputs,
    });

    // Adversarial fine-tuning of a copy of the baseline (warm start: a few epochs instead of a full run).
    const robust = base.network.clone();
    const sample = fineTuneSample(
      base.trainSet,
      inputs,
      quick ? 1000 : 2000,
      quick ? 3000 : 6000,
      ctx.options.seed,
    );
    const epochs = quick ? 3 : 4;
    const h = await adversarialTrain(robust, sample, {
      method: 'pgd',
      eps: EPS,
      steps: 7,
      domain,
      epochs,
      batchSize: 128,
      learningRate: 1e-3,
      classWeights: 'balanced',
      seed: ctx.options.seed,
      onProgress: (p) => ctx.progress((0.4 * ((p.epoch - 1) * p.batches + p.batch)) / (p.epochs * p.batches)),
    });
    const onnx = toOnnx(robust, {
      metadata: {
        ...onnxMetadata(base.onnx),
        'bulwark.adversarial': JSON.stringify({ method: 'pgd', eps: EPS, steps: 7, fineTuned: true }),
      },
    });
    await writeFileAtomic(join(ctx.options.outDir, 'robust.onnx'), onnx);
    ctx.state.robust = { path: join(ctx.options.outDir, 'robust.onnx'), network: robust };

    const r: RedTeamResult = await redTeam(
      [
        { name: 'baseline', model: networkModel(base.network, 'baseline'), network: base.network },
        {
          name: 'adversarially trained',
          model: networkModel(robust, 'adversarially trained'),
          network: robust,
        },
      ],
      { test: base.testSet, members: base.trainSet, domain },
      {
        attacks: ['fgsm', 'pgd', 'square', 'mia'],
        attackClass: 1,
        eps: [0, 0.05, EPS, 0.2],
        detectorEps: EPS,
        rows: quick ? 150 : 300,
        steps: 10,
        restarts: 1,
        squareQueries: quick ? 100 : 200,
        fpr: 0.01,
        shadows: 0,
        miaRows: quick ? 1000 : 2000,
        streamRows: 5,
        seed: ctx.options.seed,
        onProgress: (_, f) => ctx.progress(0.4 + 0.6 * f),
      },
    );
    // What a fraud team reads: recall on all held-out rows at 1 % of legitimate transactions flagged.
    const recallAt1 = (net: Network) => {
      const p = net.predictProba(base.testSet.x, base.testSet.rows);
      const scores = Array.from({ length: base.testSet.rows }, (_, i) => p[2 * i + 1] as number);
      return thresholdForFpr(base.testSet.y, scores, 0.01).tpr;
    };
    const recall = { baseline: recallAt1(base.network), robust: recallAt1(robust) };
    const datasetDigest = ctx.state.dataPath
      ? sha256(await readFile(ctx.state.dataPath))
      : sha256(new Uint8Array(0));
    const at = (m: number, a: 'fgsm' | 'pgd' | 'square') =>
      r.models[m]?.curves[a]?.find((p) => p.eps === EPS);
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `A fraudster controls ${ATTACKER_CONTROLS.filter((c) => inputColumns.includes(c)).join(', ')}; the other ` +
          `inputs (${immutable.join(', ')}) are fixed by the stolen card and the world, amounts and counts stay within ` +
          `their valid ranges and integers stay integers. The attacks target the ${r.rowsAttacked} held-out fraud rows ` +
          `with a budget of ${EPS} of each field's range. The adversarially trained model is the baseline fine-tuned for ` +
          `${epochs} epochs with PGD (Madry et al.) under the same rules, on all training fraud rows and a sample of the ` +
          `others (${sample.rows} rows); it is written as robust.onnx (${sha256(onnx).slice(0, 19)}…).`,
      },
      {
        kind: 'table',
        caption: `Fraud rows evading detection at eps ${EPS} (share of the fraud the model caught before the attack)`,
        columns: ['attack', 'baseline', 'adversarially trained'],
        rows: (['fgsm', 'pgd', 'square'] as const).map((a) => [
          a === 'square' ? 'Square (black-box, outputs only)' : a.toUpperCase(),
          pct(at(0, a)?.successRate),
          pct(at(1, a)?.successRate),
        ]),
      },
      {
        kind: 'facts',
        facts: [
          ['recall at 1 % false positives, all held-out rows: baseline', pct(recall.baseline)],
          ['recall at 1 % false positives, all held-out rows: adversarially trained', pct(recall.robust)],
          ['fraud caught, no attack: baseline', pct(r.models[0]?.cleanAccuracy)],
          ['fraud caught, no attack: adversarially trained', pct(r.models[1]?.cleanAccuracy)],
          [`fraud caught under PGD eps ${EPS}: baseline`, pct(at(0, 'pgd')?.accuracy)],
          [`fraud caught under PGD eps ${EPS}: adversarially trained`, pct(at(1, 'pgd')?.accuracy)],
          [
            'adversarial fine-tuning, seconds per epoch',
            (h.history.reduce((s, e) => s + e.seconds, 0) / h.history.length).toFixed(2),
          ],
          [
            'membership inference (loss threshold) AUC, baseline',
            r.models[0]?.membership?.lossThreshold.auc.toFixed(3) ?? 'n/a',
          ],
        ],
      },
    ];
    for (const s of redTeamSections(r)) {
      if (s.id === 'redteam-setup') continue;
      blocks.push({ kind: 'text', text: `${s.title}.` }, ...s.blocks);
    }
    return {
      summary: {
        rowsAttacked: r.rowsAttacked,
        eps: EPS,
        baselineFraudCaught: r.models[0]?.cleanAccuracy ?? Number.NaN,
        robustFraudCaught: r.models[1]?.cleanAccuracy ?? Number.NaN,
        baselinePgdSuccess: at(0, 'pgd')?.successRate ?? Number.NaN,
        robustPgdSuccess: at(1, 'pgd')?.successRate ?? Number.NaN,
        baselineSquareSuccess: at(0, 'square')?.successRate ?? Number.NaN,
        robustSquareSuccess: at(1, 'square')?.successRate ?? Number.NaN,
        baselineRecallAt1PctFpr: recall.baseline,
        robustRecallAt1PctFpr: recall.robust,
        robustModelDigest: sha256(onnx),
      },
      events: [
        {
          type: 'model.trained',
          data: {
            modelDigest: sha256(onnx),
            datasetDigest,
            algorithm: 'mlp',
            hyperparameters: {
              epochs,
              batchSize: 128,
              optimizer: 'adam',
              fineTunedFrom: 'baseline',
              seed: ctx.options.seed,
            },
            adversarial: { attack: 'pgd', epsilon: EPS, steps: 7, ratio: 1 },
            metrics: {
              fraudCaught: r.models[1]?.cleanAccuracy ?? 0,
              pgdSuccess: at(1, 'pgd')?.successRate ?? 0,
            },
          },
        },
      ],
      blocks,
    };
  },
};
