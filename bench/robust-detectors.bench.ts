/**
 * The robust bench's claims on MNIST on their own (`npm run bench -- robust-detectors`): the detectors
 * (Mahalanobis on inputs and on the hidden layer, feature squeezing) fitted on the training subset and
 * calibrated at 1 % FPR, their catch rates against FGSM, PGD and Square at eps 0.1 and against their
 * adaptive attacks, and the rest of that red-team evaluation (attack success before / after PGD
 * training, stream detectors, membership inference).
 *
 * It trains the two models the claims need (the normal one and the eps-0.1 PGD-trained one) and runs
 * the claims through the functions bench/robust.bench.ts itself calls (trainOurModels, mnistClaims),
 * with the same plan, data and seeds, so its `claims.mnist.*` facts are comparable with robust.json's
 * without robust's ART peer, Fashion-MNIST and eps-0.3 models (about 40 minutes). No time is recorded
 * as a figure.
 */
import { accuracy, setThreads } from '../src/ml/index.js';
import type { Benchmark, Figure } from './harness.js';
import {
  CLAIMS_NOTE,
  DATASETS,
  type DsPlan,
  FULL_PLAN,
  mnistClaims,
  type Plan,
  QUICK_PLAN,
  trainOurModels,
} from './robust.bench.js';

const bench: Benchmark = {
  name: 'robust-detectors',
  description:
    "robust bench's MNIST claims alone: detectors at 1 % FPR vs FGSM/PGD/Square and adaptive attacks, stream detectors, membership inference (same models, data and seeds as robust)",
  async run(ctx) {
    const plan: Plan = ctx.quick ? QUICK_PLAN : FULL_PLAN;
    // As the robust bench: one thread (its models must be the same ones).
    setThreads(1);
    const mnist = DATASETS.find((d) => d.name === 'mnist') as DsPlan;
    const { data, models } = await trainOurModels(ctx, mnist, plan, [0.1]);
    const facts: Record<string, string | number | boolean> = {};
    // The robust bench's clean-accuracy figures (first evalRows test images): equal ones say the
    // models are the same as that run's.
    const n = plan.evalRows;
    for (const [key, net] of Object.entries(models)) {
      facts[`mnist.${key}.clean`] =
        100 * accuracy(data.test.y.subarray(0, n), net.predict(data.test.x.subarray(0, n * 784), n));
    }
    const { facts: claims, result } = await mnistClaims(ctx, plan, data, models);
    Object.assign(facts, claims);
    const figures: Figure[] = [];
    for (const d of result.detectors) {
      facts[`detector.${d.name}.threshold`] = d.threshold;
      facts[`detector.${d.name}.adaptive`] = d.adaptive ?? 'none';
      for (const a of d.attacks) {
        // Beside the catch rate: how many attacked rows the attack fooled, and the share of attacked
        // rows fooled without a flag (the figure to read under an adaptive attack, docs/robust.md).
        facts[`detector.${d.name}.${a.attack}.fooled`] = a.fooled;
        facts[`detector.${d.name}.${a.attack}.evaded%`] = 100 * a.evadedRate;
        facts[`detector.${d.name}.${a.attack}.auc`] = a.auc;
        if (Number.isFinite(a.catchRate))
          figures.push({
            id: `detector.${d.name}.${a.attack}.caught`,
            label: `${d.name}: ${a.attack} caught at ${100 * d.targetFpr} % FPR`,
            system: 'bulwark',
            unit: '%',
            better: 'higher',
            samples: [100 * a.catchRate],
          });
      }
      for (const note of d.notes) facts[`detector.${d.name}.note`] = note;
    }
    facts['redTeam.rowsAttacked'] = result.rowsAttacked;
    facts['redTeam.cleanRows'] = result.cleanRows;
    return {
      figures,
      facts,
      notes: [
        CLAIMS_NOTE,
        `Models: MNIST, first ${plan.trainRows} training images, MLP 784-1024-10, ${plan.epochsNormal} normal epochs and ${plan.epochsAT} PGD-training epochs at eps 0.1, trained by the robust bench's own code (trainOurModels) with its seeds; facts mnist.*.clean are the robust bench's clean-accuracy figures (first ${n} test images), to check the models are the same.`,
        'fooled = attacked rows the attack turned wrong (of those the model got right); evaded% = share of attacked rows fooled without a flag. Under the Mahalanobis adaptive attack (which accepts a point only when not flagged) the catch rate is 0 by construction: read evaded% against plain PGD.',
        ...result.notes,
      ],
    };
  },
};

export default bench;
