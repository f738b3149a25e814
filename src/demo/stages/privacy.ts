import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRng, sha256Digest as sha256, writeFileAtomic } from '../../core/index.js';
import { type Network, thresholdForFpr } from '../../ml/index.js';
import { openLedger, trainedPrivacy, trainTabularDp } from '../../privacy/index.js';
import type { Block } from '../../report/index.js';
import { InputDomain, pgdTrainingInputs } from '../../robust/index.js';
import type { DemoStage } from '../stage.js';
import { EPS as ADV_EPS, ATTACKER_CONTROLS } from './robust.js';

/** The article's case study: the fraud model trained at epsilon 0.5. */
const EPSILON = 0.5;
/** The demo dataset's total budget in the ledger (this stage spends EPSILON of it). */
const BUDGET = { epsilon: 1, delta: 1e-5 };
/** The same columns the baseline leaves out (identifiers and raw time). */
const NOT_FEATURES = ['transaction_id', 'timestamp', 'merchant_id', 'merchant_location'];
const TARGET_FPR = 0.01;
const EPOCHS = 5;

/** PGD steps of the adversarial examples inside DP-SGD (each costs a forward and backward pass). */
const ADV_STEPS = 3;
/** Share of each sampled batch replaced by its adversarial examples. */
const ADV_RATIO = 0.5;

/**
 * The attacker's freedom in the DP model's PUBLIC feature space: every encoded feature is in [0, 1]
 * (numeric ones scaled by the schema's bounds, so eps is a share of each field's range, as in the
 * robust stage), one-hot groups stay one-hot, and fields the stolen card and the world fix are
 * immutable. Built from names and the schema only, never from the data, so the perturbation of a row
 * depends on that row and the weights alone (what DP-SGD's guarantee needs).
 */
function publicDomain(features: readonly string[]): InputDomain {
  const fieldOf = (f: string) => (f.includes('=') ? f.slice(0, f.indexOf('=')) : f);
  const groups = new Map<string, number[]>();
  features.forEach((f, j) => {
    if (f.includes('=')) groups.set(fieldOf(f), [...(groups.get(fieldOf(f)) ?? []), j]);
  });
  return new InputDomain({
    inputs: features.length,
    lower: 0,
    upper: 1,
    scale: 1,
    immutable: features.flatMap((f, j) => (ATTACKER_CONTROLS.includes(fieldOf(f)) ? [] : [j])),
    categorical: [...groups.values()],
    names: features,
  });
}

const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(2)} %`;

/**
 * Stage: the fraud model again, with differential privacy (DP-SGD at ε = 0.5, the article's case study),
 * the budget spent from a ledger first, and the accuracy it costs against the non-private baseline.
 */
export const privacyStage: DemoStage = {
  id: 'privacy',
  title: 'Differentially private fraud model with adversarial training (ε = 0.5)',
  async run(ctx) {
    const ds = ctx.state.dataset;
    const label = ctx.state.label;
    const schema = ctx.state.schema;
    if (!ds || !label || !schema || !ctx.state.dataPath)
      throw new Error('the privacy stage needs the data and schema stages');
    const quick = ctx.options.quick;
    const rows = ds.rowCount;
    const delta = Math.min(1e-5, 1 / (10 * rows));
    const ledgerPath = join(ctx.options.outDir, 'privacy-ledger.sqlite');
    // The demo folder is regenerated on every run: a ledger left by an earlier run would have spent
    // the budget already (a third run would be refused), so start from a fresh one.
    for (const f of ['', '-wal', '-shm', '-journal']) await rm(`${ledgerPath}${f}`, { force: true });
    const ledger = await openLedger(ledgerPath);
    let r: Awaited<ReturnType<typeof trainTabularDp>>;
    const budgetName = 'transactions';
    try {
      await ledger.setBudget(budgetName, { epsilon: BUDGET.epsilon, delta: Math.max(BUDGET.delta, delta) });
      r = await trainTabularDp(ds, {
        label,
        schema,
        model: 'mlp',
        hidden: [32],
        epsilon: EPSILON,
        delta,
        clipNorm: 1,
        accountant: 'rdp',
        // Large expected batches: the noise per averaged gradient falls as 1/batch (Abadi et al. 2016).
        epochs: EPOCHS,
        batchSize: quick ? 2048 : 4096,
        learningRate: 1,
        optimizer: 'sgd',
        seed: ctx.options.seed,
        drop: NOT_FEATURES.filter((c) => ds.has(c)),
        budget: { ledger, dataset: budgetName },
        // The article's case study trains with DP AND adversarial training: PGD examples of each sampled
        // row replace it inside DP-SGD, before clipping and noise (see DpSgdOptions.perturb).
        adversarial: {
          method: 'pgd',
          eps: ADV_EPS,
          steps: ADV_STEPS,
          perturb: (net: Network, features: readonly string[]) => {
            const domain = publicDomain(features);
            const rng = new SeededRng(ctx.options.seed + 17);
            const d = features.length;
            return (x, y, n) => {
              // Half of the rows, each by a coin independent of the data, keep their clean version (ART's
              // `ratio` 0.5): the clean signal that DP noise already thins out is not thrown away entirely.
              const clean = x.slice();
              pgdTrainingInputs(net, x, y, n, { eps: ADV_EPS, steps: ADV_STEPS, domain }, rng);
              for (let r = 0; r < n; r++)
                if (rng.bernoulli(1 - ADV_RATIO)) x.set(clean.subarray(r * d, (r + 1) * d), r * d);
            };
          },
        },
        onProgress: (done, total) => ctx.progress(done / total),
      });
    } finally {
      await ledger.close();
    }
    const modelPath = join(ctx.options.outDir, 'fraud-dp.onnx');
    await writeFileAtomic(modelPath, r.onnx);
    ctx.state.dp = { path: modelPath, result: r };
    const proba = r.network.predictProba(r.testSet.x, r.testSet.rows);
    const scores = Array.from({ length: r.testSet.rows }, (_, i) => proba[2 * i + 1] as number);
    const recall =
      new Set(r.testSet.y).size === 2 ? thresholdForFpr(r.testSet.y, scores, TARGET_FPR).tpr : Number.NaN;
    const base = ctx.state.baseline?.result;
    let baseRecall = Number.NaN;
    if (base) {
      const bp = base.network.predictProba(base.testSet.x, base.testSet.rows);
      const bs = Array.from({ length: base.testSet.rows }, (_, i) => bp[2 * i + 1] as number);
      baseRecall = thresholdForFpr(base.testSet.y, bs, TARGET_FPR).tpr;
    }
    const p = r.privacy;
    const left = r.receipt?.remaining ?? { epsilon: Number.NaN, delta: Number.NaN };
    const digest = sha256(r.onnx);
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `The same ${[r.network.inputs, 32, 2].join('-')} MLP, trained with DP-SGD (Poisson sampling, per-example clipping at ${p.clipNorm}, ` +
          `Gaussian noise multiplier ${(p.noiseMultiplier ?? 0).toFixed(3)} from the CSPRNG, ${p.steps} steps) so that the released model is ` +
          `(${p.epsilon.toFixed(3)}, ${p.delta.toExponential(1)})-DP for adding or removing any one transaction (RDP accountant, Balle et al. 2020 conversion). ` +
          `Adversarial training runs inside DP-SGD: ${100 * ADV_RATIO} % of the sampled rows (by a coin independent of the data) are replaced by their PGD examples (${ADV_STEPS} steps, a budget of ${ADV_EPS} of each field's range, ` +
          'only the fields an attacker controls) against the current weights before clipping and noise, so each clipped gradient still depends on one row and the guarantee holds. ' +
          'Features are scaled by the schema’s bounds and categories, treated as public domain knowledge (for this synthetic data they follow the ' +
          'generator’s design; for real data declare them, never compute them from the rows). The ledger spent the budget before the first step. ' +
          'Test metrics are on held-out rows and are not themselves private. Read ROC AUC and recall at 1 % false positives: with a ' +
          'few percent of fraud, accuracy rewards calling everything legitimate (the baseline trades accuracy for recall with balanced class weights).',
      },
      {
        kind: 'facts',
        facts: [
          ['epsilon spent (target 0.5)', Number(p.epsilon.toFixed(4))],
          ['delta', p.delta],
          ['budget of "transactions"', `ε ${BUDGET.epsilon}, δ ${Math.max(BUDGET.delta, delta)}`],
          [
            'budget remaining',
            `ε ${Number(left.epsilon.toFixed(4))}, δ ${Number(left.delta.toPrecision(3))}`,
          ],
          ['DP accuracy', pct(r.test.accuracy)],
          ['baseline accuracy', pct(base?.test.accuracy)],
          ['DP ROC AUC', r.test.rocAuc?.toFixed(4) ?? 'n/a'],
          ['baseline ROC AUC', base?.test.rocAuc?.toFixed(4) ?? 'n/a'],
          [`DP recall at ${100 * TARGET_FPR} % false positives`, pct(recall)],
          [`baseline recall at ${100 * TARGET_FPR} % false positives`, pct(baseRecall)],
        ],
      },
      {
        kind: 'bars',
        title: 'What privacy costs (held-out transactions)',
        unit: '%',
        bars: [
          { label: 'baseline ROC AUC', value: 100 * (base?.test.rocAuc ?? Number.NaN) },
          { label: 'DP ROC AUC', value: 100 * (r.test.rocAuc ?? Number.NaN) },
          { label: 'baseline recall @1% FPR', value: 100 * baseRecall },
          { label: 'DP recall @1% FPR', value: 100 * recall },
        ].filter((b) => Number.isFinite(b.value)),
      },
    ];
    return {
      summary: {
        epsilon: p.epsilon,
        delta: p.delta,
        noiseMultiplier: p.noiseMultiplier ?? Number.NaN,
        steps: p.steps ?? 0,
        budgetRemainingEpsilon: left.epsilon,
        accuracy: r.test.accuracy,
        rocAuc: r.test.rocAuc ?? Number.NaN,
        recallAt1PctFpr: recall,
        accuracyCostPoints: base ? 100 * (base.test.accuracy - r.test.accuracy) : Number.NaN,
        rocAucCost:
          base?.test.rocAuc !== undefined && r.test.rocAuc !== undefined
            ? base.test.rocAuc - r.test.rocAuc
            : Number.NaN,
        modelDigest: digest,
      },
      events: [
        {
          type: 'model.trained',
          data: {
            modelDigest: digest,
            datasetDigest: sha256(await readFile(ctx.state.dataPath)),
            algorithm: 'mlp',
            hyperparameters: {
              hidden: '32',
              epochs: quick ? 2 : 4,
              batchSize: 512,
              optimizer: 'sgd',
              seed: ctx.options.seed,
            },
            privacy: trainedPrivacy(p, r.receipt),
            adversarial: { attack: 'pgd', epsilon: ADV_EPS, steps: ADV_STEPS, ratio: ADV_RATIO },
            metrics: {
              accuracy: r.test.accuracy,
              f1: r.test.f1,
              ...(r.test.rocAuc === undefined ? {} : { rocAuc: r.test.rocAuc }),
            },
          },
        },
      ],
      blocks,
    };
  },
};
