/**
 * How much the strength of the evaluation moves a PGD-trained FC1's robust accuracy on Fashion-MNIST at
 * eps 0.1: Croce et al.'s own evaluation (PGD-40, step 2 eps / 40, one random start, as their train.py
 * reports it) against Bulwark's (PGD-100 with 2 random starts, and APGD-CE, robust only if neither
 * fools it), on the same models and images.
 *
 * Why: robust-reference.bench.ts compares Bulwark's model at the reference's full budget (100 epochs of
 * 60,000 images, about an hour on a quiet machine) with the reference's 70.5 %, an upper bound from
 * their evaluation (their eval.py: PGD-40 plus a time-limited MIP search, robust unless either finds an
 * adversarial example), and scores it with both attacks. This bench measures
 * the gap between the two evaluations at a budget that fits in minutes: Croce et al.'s recipe
 * (robust-reference's `croceRecipe`) on the first 12,000 training images for 5 epochs, the budget of
 * robust.bench.ts, for several seeds (BULWARK_EVAL_GAP_SEEDS, default 2), each scored on the first
 * 1,000 test images. It does not replace the full-budget run; it says how much of a gap between a
 * PGD-100 + APGD figure and a PGD-40 figure is the attack alone, on this architecture.
 *
 * `--quick`: 2,000 images, 1 epoch, 200 test images, PGD-20, one seed. BULWARK_REFERENCE_THREADS: ONNX
 * Runtime intra-op threads (default 2).
 */
import { performance } from 'node:perf_hooks';
import { accuracy, mlp } from '../src/ml/index.js';
import { adversarialTrain } from '../src/robust/index.js';
import type { Benchmark, Figure } from './harness.js';
import { HIDDEN } from './robust.bench.js';
import {
  croceRecipe,
  evaluateFc1,
  fashionMnist,
  referenceThreads,
  smallBudgetPlan,
} from './robust-reference.bench.js';

const bench: Benchmark = {
  name: 'robust-eval-gap',
  description:
    "PGD-trained FC1 on Fashion-MNIST (eps 0.1, Croce et al.'s recipe, 12,000 images x 5 epochs): robust accuracy under their PGD-40 evaluation against Bulwark's PGD-100 x2 + APGD-CE, same models and images",
  async run(ctx) {
    const plan = smallBudgetPlan(ctx.quick, 'BULWARK_EVAL_GAP_SEEDS', 2);
    const threads = referenceThreads();
    const { train, x, y, n } = await fashionMnist(plan.trainRows, plan.evalRows);
    const per = {
      clean: [] as number[],
      theirs: [] as number[],
      pgd: [] as number[],
      apgd: [] as number[],
      both: [] as number[],
    };
    for (let seed = 1; seed <= plan.seeds; seed++) {
      const net = mlp({ inputs: 784, hidden: [HIDDEN], classes: 10, rng: seed });
      const t0 = performance.now();
      await adversarialTrain(net, train, croceRecipe(plan.epochs, seed));
      const clean = 100 * accuracy(y, net.predict(x, n));
      ctx.log(
        `seed ${seed}: trained in ${((performance.now() - t0) / 1000).toFixed(0)} s, clean ${clean.toFixed(1)} %`,
      );
      const r = await evaluateFc1(net, x, y, n, plan, (m) => ctx.log(`seed ${seed}: ${m}`));
      ctx.log(
        `seed ${seed}: PGD-40 (theirs) ${r.robustTheirs.toFixed(1)} %, PGD-${plan.evalSteps} x${plan.restarts} ${r.robustPgd.toFixed(1)} %, APGD-CE ${r.robustApgd.toFixed(1)} %, both ${r.robust.toFixed(1)} %`,
      );
      per.clean.push(clean);
      per.theirs.push(r.robustTheirs);
      per.pgd.push(r.robustPgd);
      per.apgd.push(r.robustApgd);
      per.both.push(r.robust);
    }
    const gaps = per.theirs.map((t, i) => t - (per.both[i] as number));
    const pct = (id: string, label: string, samples: number[], unit = '%'): Figure => ({
      id,
      label,
      system: 'bulwark',
      unit,
      better: 'higher',
      samples,
    });
    return {
      figures: [
        pct('clean', `clean accuracy, first ${n} test images`, per.clean),
        pct(
          'robust.pgd40_theirs',
          "robust accuracy, PGD-40 (Croce et al.'s evaluation), eps 0.1",
          per.theirs,
        ),
        pct('robust.pgd', `robust accuracy, PGD-${plan.evalSteps} x${plan.restarts}, eps 0.1`, per.pgd),
        pct('robust.apgd', `robust accuracy, APGD-CE ${plan.evalSteps} steps, eps 0.1`, per.apgd),
        pct('robust', 'robust accuracy, neither PGD nor APGD-CE succeeds, eps 0.1', per.both),
        pct(
          'gap',
          "Croce et al.'s evaluation minus Bulwark's (PGD + APGD-CE), points, per seed",
          gaps,
          'points',
        ),
      ],
      facts: {
        trainRows: plan.trainRows,
        epochs: plan.epochs,
        evalRows: n,
        seeds: plan.seeds,
        threads,
        gapsPoints: JSON.stringify(gaps.map((g) => Number(g.toFixed(2)))),
      },
      notes: [
        `Training: Croce et al.'s train.py recipe (robust-reference.bench.ts): MLP 784-${HIDDEN}-10, Adam 1e-3 x0.1 for the last 10 % of the epochs, batch 128, half of each batch PGD-40 points (step 2 eps / 40, random start); the first ${plan.trainRows} training images, ${plan.epochs} epochs; initial weights and training seeded by the seed.`,
        `Evaluation on the first ${n} test images, all attacks on the same model: theirs (PGD-40, step 2 eps / 40, one random start) and Bulwark's (PGD-${plan.evalSteps}, step eps / 10, ${plan.restarts} random starts; APGD-CE ${plan.evalSteps} steps; robust only if neither succeeds).`,
        'A budget 100x smaller than the reference: the gap measured here is the attack strength on this architecture, not a prediction of the full-budget figure.',
      ],
    };
  },
};

export default bench;
