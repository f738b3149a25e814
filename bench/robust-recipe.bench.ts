/**
 * Which of the remaining differences between Bulwark's PGD training and Croce et al.'s train.py moves
 * robust accuracy, measured at the budget of robust-eval-gap (the first 12,000 Fashion-MNIST training
 * images, 5 epochs, FC1, eps 0.1) over several seeds, each variant paired with the baseline by seed
 * (same data order seed, same attack seeds, same test images).
 *
 * Variants (BULWARK_RECIPE_VARIANTS, comma-separated; default all):
 * - `base`: robust-reference's `croceRecipe` with Bulwark's initial weights (He uniform on the hidden
 *   layer, Glorot uniform on the output layer, zero biases) and every row trained on every epoch.
 * - `init`: their initial weights (`mlp`'s `init: 'truncated-normal'`): TensorFlow's
 *   `truncated_normal(stddev = sqrt(2 / fan_in))` on both layers (redrawn beyond 2 sd, so the actual
 *   sd is about 0.88x the nominal), zero biases (their models.py, MLP).
 * - `droplast`: their batching: each epoch's last partial batch dropped (their data.py,
 *   get_batch_iterator with n_batches = n // batch_size).
 * - `parity`: `init` and `droplast` together.
 * - `ratio1`: Madry et al.'s all-adversarial batches (ratio 1) instead of their half (ae_frac 0.5): a
 *   different recipe at the same budget, to see how much robustness the clean half costs.
 * - `madrystep`: Madry et al.'s step 2.5 eps / 40 instead of their 2 eps / 40.
 * - `initratio1`: `init` and `ratio1` together.
 * - `initratio1wide`: `initratio1` trained at eps 0.12 (1.2x the evaluated 0.1), step 2 x 0.12 / 40.
 * - `initratio1ema`: `initratio1` returning the weights' exponential moving average (Gowal et al. 2020)
 *   over about the last two epochs.
 * - `inittrades6`, `inittrades2`: `init` trained with TRADES (Zhang et al. 2019), beta 6 or 2, in place
 *   of Madry's PGD training, with the same attack (40 steps of 2 eps / 40).
 * - `initratio1b64`: `initratio1` in batches of 64 (twice the updates, the same PGD points and epochs).
 *
 * Every model is scored by robust-reference's `evaluateFc1` on the first 1,000 test images: Bulwark's
 * PGD-100 x2 + APGD-CE and their PGD-40. BULWARK_RECIPE_SEEDS: seeds per variant (default 5);
 * BULWARK_RECIPE_BUDGET: a larger training budget (below).
 * `--quick`: 2,000 images, 1 epoch, 200 test images, PGD-20, one seed.
 */
import { performance } from 'node:perf_hooks';
import { accuracy, mlp } from '../src/ml/index.js';
import { adversarialTrain } from '../src/robust/index.js';
import type { Benchmark, Figure } from './harness.js';
import { HIDDEN } from './robust.bench.js';
import {
  evaluateFc1,
  fashionMnist,
  parseVariant,
  RECIPE_VARIANTS,
  type RecipeVariant,
  recipeVariant,
  referenceThreads,
  smallBudgetPlan,
} from './robust-reference.bench.js';

function parseVariants(): RecipeVariant[] {
  const raw = process.env['BULWARK_RECIPE_VARIANTS'];
  if (raw === undefined || raw === '') return [...RECIPE_VARIANTS];
  return raw.split(',').map((s) => parseVariant('BULWARK_RECIPE_VARIANTS', s.trim()));
}

/**
 * BULWARK_RECIPE_BUDGET=ROWSxEPOCHS (e.g. 60000x10): a larger budget than the default 12,000 x 5, to
 * see whether a difference holds as training gets longer (the reference's budget is 60000x100).
 */
function budgetOverride(): { trainRows: number; epochs: number } | Record<string, never> {
  const raw = process.env['BULWARK_RECIPE_BUDGET'];
  if (raw === undefined || raw === '') return {};
  const m = /^(\d+)x(\d+)$/.exec(raw);
  const trainRows = Number(m?.[1]);
  const epochs = Number(m?.[2]);
  if (!m || trainRows < 128 || trainRows > 60000 || epochs < 1)
    throw new Error('BULWARK_RECIPE_BUDGET: expected ROWSxEPOCHS, 128 <= ROWS <= 60000, EPOCHS >= 1');
  return { trainRows, epochs };
}

/** A figure of `variant` (id `variant.id`); labels read "variant: label" ("variant minus base ..." for deltas). */
function fig(
  variant: RecipeVariant,
  id: string,
  label: string,
  samples: number[],
  unit = '%',
  sep = ': ',
): Figure {
  return {
    id: `${variant}.${id}`,
    label: `${variant}${sep}${label}`,
    system: 'bulwark',
    unit,
    better: 'higher',
    samples,
  };
}

const bench: Benchmark = {
  name: 'robust-recipe',
  description:
    "PGD-trained FC1 on Fashion-MNIST (eps 0.1; 12,000 images x 5 epochs unless BULWARK_RECIPE_BUDGET says otherwise): which difference from Croce et al.'s train.py (initial weights, last partial batch, adversarial share, step size) moves robust accuracy, paired by seed",
  async run(ctx) {
    const plan = { ...smallBudgetPlan(ctx.quick, 'BULWARK_RECIPE_SEEDS', 5), ...budgetOverride() };
    const variants = parseVariants();
    const threads = referenceThreads();
    const { train, x, y, n } = await fashionMnist(plan.trainRows, plan.evalRows);
    const figures: Figure[] = [];
    const facts: Record<string, string | number> = {
      trainRows: plan.trainRows,
      epochs: plan.epochs,
      evalRows: n,
      seeds: plan.seeds,
      threads,
      variants: variants.join(','),
    };
    const per = new Map<RecipeVariant, { clean: number[]; robust: number[]; theirs: number[] }>();
    for (const variant of variants) {
      const r = { clean: [] as number[], robust: [] as number[], theirs: [] as number[] };
      for (let seed = 1; seed <= plan.seeds; seed++) {
        const v = recipeVariant(variant, plan.epochs, seed, plan.trainRows);
        const net = mlp({ inputs: 784, hidden: [HIDDEN], classes: 10, rng: seed, init: v.init });
        const t0 = performance.now();
        await adversarialTrain(net, train, v.options);
        const clean = 100 * accuracy(y, net.predict(x, n));
        const e = await evaluateFc1(net, x, y, n, plan, () => undefined);
        ctx.log(
          `${variant} seed ${seed}: ${((performance.now() - t0) / 1000).toFixed(0)} s; clean ${clean.toFixed(1)} %, robust ${e.robust.toFixed(1)} % (their PGD-40 ${e.robustTheirs.toFixed(1)} %)`,
        );
        r.clean.push(clean);
        r.robust.push(e.robust);
        r.theirs.push(e.robustTheirs);
      }
      per.set(variant, r);
      figures.push(
        fig(variant, 'clean', `clean accuracy, first ${n} test images`, r.clean),
        fig(variant, 'robust', 'robust accuracy, neither PGD-100 x2 nor APGD-CE succeeds, eps 0.1', r.robust),
        fig(variant, 'robust.pgd40_theirs', "robust accuracy, Croce et al.'s PGD-40, eps 0.1", r.theirs),
      );
    }
    // Paired by seed against the baseline: the difference each change makes on the same seed.
    const base = per.get('base');
    if (base !== undefined) {
      for (const [variant, r] of per) {
        if (variant === 'base') continue;
        const diff = (a: number[], b: number[]) => a.map((v, k) => v - (b[k] as number));
        figures.push(
          fig(
            variant,
            'delta.robust',
            'minus base, robust accuracy (PGD + APGD-CE), points, per seed',
            diff(r.robust, base.robust),
            'points',
            ' ',
          ),
          fig(
            variant,
            'delta.clean',
            'minus base, clean accuracy, points, per seed',
            diff(r.clean, base.clean),
            'points',
            ' ',
          ),
        );
      }
    }
    return {
      figures,
      facts,
      notes: [
        `Training: robust-reference's croceRecipe (MLP 784-${HIDDEN}-10, Adam 1e-3 x0.1 for the last 10 % of the epochs, batch 128, half of each batch PGD-40 points, step 2 eps / 40, random start) on the first ${plan.trainRows} training images for ${plan.epochs} epochs, changed as each variant says; seeds 1..${plan.seeds} seed the initial weights, the data order and the attacks.`,
        `Evaluation on the first ${n} test images: robust when neither PGD-${plan.evalSteps} (step eps / 10, ${plan.restarts} random starts) nor APGD-CE (${plan.evalSteps} steps) fools the model; also Croce et al.'s PGD-40.`,
        'A budget 100x smaller than the reference: a difference here says which change matters, not what it is worth at full budget.',
      ],
    };
  },
};

export default bench;
