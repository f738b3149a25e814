import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest as sha256, writeFileAtomic } from '../../core/index.js';
import { rocCurve, thresholdForFpr } from '../../ml/index.js';
import type { Block } from '../../report/index.js';
import { trainTabular } from '../../train/index.js';
import type { DemoStage } from '../stage.js';

/** Identifier-like or time columns that carry no signal a fraud model should learn from. */
const NOT_FEATURES = ['transaction_id', 'timestamp', 'merchant_id', 'merchant_location'];

/** The false-positive rate fraud teams work at: 1 % of legitimate transactions flagged. */
const TARGET_FPR = 0.01;

/**
 * Stage: the non-private baseline fraud model, trained with `bulwark train`'s code path on what the
 * protect stage left (the non-personal columns), written as ONNX. Later stages (DP, adversarial
 * training) compare against it.
 */
export const baselineStage: DemoStage = {
  id: 'baseline',
  title: 'Baseline fraud model',
  async run(ctx) {
    const ds = ctx.state.dataset;
    const label = ctx.state.label;
    if (!ds || !label || !ctx.state.dataPath) throw new Error('the baseline stage needs the data stage');
    const epochs = ctx.options.quick ? 4 : 8;
    const hidden = [32];
    const r = await trainTabular(ds, {
      label,
      model: 'mlp',
      hidden,
      epochs,
      batchSize: 256,
      seed: ctx.options.seed,
      // DP training's split (each row held out by a hash of its values): the DP model is then scored
      // on the very rows the baseline and its adversarial variant are (the case study compares them).
      split: 'row-hash',
      classWeights: 'balanced',
      drop: NOT_FEATURES.filter((c) => ds.has(c)),
      onProgress: (done, total) => ctx.progress(done / total),
    });
    const modelPath = join(ctx.options.outDir, 'baseline.onnx');
    await writeFileAtomic(modelPath, r.onnx);
    ctx.state.baseline = { path: modelPath, result: r };

    // Fraud teams work at a fixed false-positive rate: recall there is the figure that matters.
    const proba = r.network.predictProba(r.testSet.x, r.testSet.rows);
    const scores = Array.from({ length: r.testSet.rows }, (_, i) => proba[2 * i + 1] as number);
    const op = thresholdForFpr(r.testSet.y, scores, TARGET_FPR);
    const recallAtFpr = op.tpr;
    const roc = rocCurve(r.testSet.y, scores);
    const step = Math.max(1, Math.floor(roc.fpr.length / 200));
    const points: Array<[number, number]> = roc.fpr
      .map((f, i) => [f, roc.tpr[i] as number] as [number, number])
      .filter((_, i) => i % step === 0 || i === roc.fpr.length - 1);
    const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(100 * x).toFixed(2)} %`);
    const datasetDigest = sha256(await readFile(ctx.state.dataPath));
    const modelDigest = sha256(r.onnx);
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `A ${[r.network.inputs, ...hidden, 2].join('-')} MLP (ReLU, Adam, balanced class weights, ${epochs} epochs) ` +
          `trained on ${r.trainRows} rows of the non-personal columns and tested on ${r.test.rows} held-out rows. ` +
          'No differential privacy and no adversarial training: this is the reference the later stages pay against. ' +
          `The model and its preprocessing are in baseline.onnx (${modelDigest.slice(0, 19)}…).`,
      },
      {
        kind: 'facts',
        facts: [
          ['accuracy', pct(r.test.accuracy)],
          ['precision', pct(r.test.precision)],
          ['recall', pct(r.test.recall)],
          ['F1', pct(r.test.f1)],
          ['ROC AUC', r.test.rocAuc?.toFixed(4) ?? 'n/a'],
          ['PR AUC (average precision)', r.test.averagePrecision?.toFixed(4) ?? 'n/a'],
          [`recall at ${100 * TARGET_FPR} % false positives`, pct(recallAtFpr)],
          ['features after one-hot encoding', r.features.length],
        ],
      },
      {
        kind: 'lines',
        title: 'ROC curve on the held-out transactions',
        xLabel: 'false-positive rate',
        yLabel: 'true-positive rate (recall)',
        series: [
          { name: `baseline (AUC ${r.test.rocAuc?.toFixed(3) ?? 'n/a'})`, points },
          {
            name: 'chance',
            points: [
              [0, 0],
              [1, 1],
            ],
            dashed: true,
          },
        ],
      },
    ];
    return {
      summary: {
        accuracy: r.test.accuracy,
        f1: r.test.f1,
        rocAuc: r.test.rocAuc ?? Number.NaN,
        averagePrecision: r.test.averagePrecision ?? Number.NaN,
        recallAt1PctFpr: recallAtFpr,
        modelDigest,
      },
      events: [
        {
          type: 'model.trained',
          data: {
            modelDigest,
            datasetDigest,
            algorithm: 'mlp',
            hyperparameters: {
              hidden: hidden.join(','),
              epochs,
              batchSize: 256,
              optimizer: 'adam',
              seed: ctx.options.seed,
            },
            metrics: {
              accuracy: r.test.accuracy,
              f1: r.test.f1,
              ...(r.test.rocAuc === undefined ? {} : { rocAuc: r.test.rocAuc }),
              recallAt1PctFpr: recallAtFpr,
            },
          },
        },
      ],
      blocks,
    };
  },
};
