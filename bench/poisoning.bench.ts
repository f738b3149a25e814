/**
 * Poisoning benchmark (issue #12): backdoor attacks and the training-data defences, on MNIST and on the
 * generated card transactions, with IBM's ART 1.16.0 defences run side by side on the same data; and
 * model inversion (attribute inference) on UCI Adult for a non-private and a DP model.
 *
 * Backdoors (BadNets, Gu et al. 2017): all-to-one, triggered copies of rows of other classes injected
 * with the attacker's label. The poison rate eps is the share of the TARGET class's training rows that
 * are poisoned (Tran, Li & Madry's convention, and the defence's parameter); on the transactions the
 * target (legitimate) class is ~98 % of the rows, so it is also about the share of all rows.
 * - MNIST: a 3x3 white patch one pixel from the bottom-right corner, target digit 0; MLP 784-256-10.
 * - Transactions: the raw-field pattern {channel: swipe, local_hour: 4, new_device: 1} (valid values
 *   of the schema) on fraud rows labelled legitimate; MLP with one hidden layer of 32 on the
 *   non-personal columns (bulwark train's pipeline), balanced class weights.
 * For each rate: clean accuracy and attack success rate (triggered test rows whose true class is not the
 * target, classified as the target) of the poisoned model; each defence's precision and recall on the
 * poisoned rows; the model retrained without the flagged rows (clean accuracy, attack success). ART's
 * SpectralSignatureDefense and ActivationDefence run on the same hidden representations (written to
 * disk), so the comparison is of the algorithms. The cost of sanitising CLEAN data: the model trained
 * after spectral signatures (eps 0.05) removed rows from unpoisoned data, against the model on all rows.
 *
 * ART is found in BULWARK_PEERS (default bench/peers)/art-1.16.0/art (git archive 1.16.0 art of
 * Trusted-AI/adversarial-robustness-toolbox); Python needs numpy, torch and scikit-learn.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRng } from '../src/core/index.js';
import {
  type Dataset,
  loadImages,
  loadTabular,
  PERSONAL_COLUMNS,
  readDataset,
  writeTransactionsCsv,
} from '../src/data/index.js';
import {
  accuracy,
  type LabelledData,
  logisticRegression,
  mlp,
  type Network,
  train,
} from '../src/ml/index.js';
import { fitDpLogisticRegression, NoiseSource } from '../src/privacy/index.js';
import { takeLabels, takeRows } from '../src/robust/attacks/evasion/common.js';
import {
  activationClustering,
  applyPatch,
  applyTabularTrigger,
  attributeInference,
  backdoorSuccess,
  detectionQuality,
  hiddenRepresentations,
  modelPerformance,
  networkModel,
  type PoisonScores,
  plantImageBackdoor,
  plantTabularBackdoor,
  spectralSignatures,
} from '../src/robust/index.js';
import { trainTabular } from '../src/train/index.js';
import { type Benchmark, type Figure, pythonHas, runPython } from './harness.js';

const RATES = [0.01, 0.05, 0.1];
const TRIGGER = { channel: 'swipe', local_hour: 4, new_device: 1 };
const NOT_FEATURES = [
  'transaction_id',
  'timestamp',
  'merchant_id',
  'merchant_location',
  'merchant_name',
  'device_id',
  'ip_address',
  'cardholder_id',
];

interface Defended {
  flagged: Uint8Array;
  precision: number;
  recall: number;
  seconds: number;
}

interface Case {
  name: string;
  reps: Float32Array;
  dim: number;
  y: Int32Array;
  classes: number;
  eps: number;
  poisoned: Int32Array;
}

function writeBin(path: string, a: Float32Array | Int32Array): void {
  writeFileSync(path, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
}

function defend(c: Case, which: 'spectral' | 'activations'): Defended {
  const t0 = performance.now();
  const s: PoisonScores =
    which === 'spectral'
      ? spectralSignatures(c.reps, c.dim, c.y, c.classes, { expectedPoisonFraction: c.eps, rng: 1 })
      : activationClustering(c.reps, c.dim, c.y, c.classes, { analysis: 'relative-size', rng: 1 });
  const seconds = (performance.now() - t0) / 1000;
  const q = detectionQuality(s.flagged, c.poisoned);
  return { flagged: s.flagged, precision: q.precision, recall: q.recall, seconds };
}

function without(d: LabelledData, flagged: Uint8Array): LabelledData {
  const dim = d.x.length / d.rows;
  const keep: number[] = [];
  for (let i = 0; i < d.rows; i++) if (!flagged[i]) keep.push(i);
  return { x: takeRows(d.x, dim, keep), y: takeLabels(d.y, keep), rows: keep.length };
}

const pct = (x: number) => 100 * x;

const bench: Benchmark = {
  name: 'poisoning',
  description:
    'Backdoor poisoning (MNIST patch, transaction field pattern) at 1/5/10 %: attack success with and without spectral signatures and activation clustering, detection precision/recall, vs ART 1.16.0 on the same representations; attribute inference on Adult (non-private vs DP)',
  async run(ctx) {
    const figures: Figure[] = [];
    const facts: Record<string, string | number | boolean> = {};
    const notes: string[] = [];
    const cases: Case[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-poison-bench-'));
    const fig = (
      id: string,
      label: string,
      system: string,
      unit: string,
      better: 'higher' | 'lower',
      v: number,
    ) => figures.push({ id, label, system, unit, better, samples: [v] });
    /** The poisoned model's figures before any defence (`title`: e.g. "MNIST eps 0.05"). */
    const poisonedFigs = (tag: string, title: string, ev: { acc: number; asr: number }) => {
      fig(`${tag}.poisoned.acc`, `${title}: poisoned model accuracy`, 'bulwark', '%', 'higher', pct(ev.acc));
      fig(
        `${tag}.poisoned.asr`,
        `${title}: attack success, no defence`,
        'bulwark',
        '%',
        'lower',
        pct(ev.asr),
      );
    };
    /** One defence on one poisoned case: detection quality, the model retrained without the flagged rows, time. */
    const defenceFigs = (
      tag: string,
      title: string,
      which: string,
      d: Defended,
      e: { acc: number; asr: number },
    ) => {
      const id = `${tag}.${which}`;
      fig(`${id}.precision`, `${title}: ${which} precision`, 'bulwark', '%', 'higher', pct(d.precision));
      fig(`${id}.recall`, `${title}: ${which} recall`, 'bulwark', '%', 'higher', pct(d.recall));
      fig(`${id}.acc`, `${title}: accuracy after ${which}`, 'bulwark', '%', 'higher', pct(e.acc));
      fig(`${id}.asr`, `${title}: attack success after ${which}`, 'bulwark', '%', 'lower', pct(e.asr));
      fig(`${id}.seconds`, `${title}: ${which} time`, 'bulwark', 's', 'lower', d.seconds);
    };
    try {
      // ---- MNIST -------------------------------------------------------------------------------------
      const nTrain = ctx.quick ? 3000 : 12000;
      const nTest = ctx.quick ? 500 : 2000;
      const epochs = ctx.quick ? 3 : 5;
      const m = await loadImages('mnist', { splits: ['train', 'test'] });
      const tr = m.splits['train'];
      const te = m.splits['test'];
      if (!tr || !te) throw new Error('mnist: missing splits');
      const x = tr.toMatrix().slice(0, nTrain * 784);
      const y = Int32Array.from(tr.labels.subarray(0, nTrain));
      const xt = te.toMatrix().slice(0, nTest * 784);
      const yt = Int32Array.from(te.labels.subarray(0, nTest));
      const patch = { kind: 'patch' as const, width: 28, height: 28, size: 3, value: 1, margin: 1 };
      const xtTrig = applyPatch(Float32Array.from(xt), nTest, patch);
      const fitMnist = async (d: LabelledData): Promise<Network> => {
        const net = mlp({ inputs: 784, hidden: [256], classes: 10, rng: 1 });
        await train(net, d, { epochs, batchSize: 128, learningRate: 1e-3, seed: 1 });
        return net;
      };
      const evalMnist = async (net: Network) => ({
        acc: accuracy(yt, net.predict(xt, nTest)),
        asr: (await backdoorSuccess(networkModel(net), xt, xtTrig, yt, 0)).successRate,
      });
      ctx.log(`mnist: clean model (${nTrain} rows)`);
      const cleanNet = await fitMnist({ x, y, rows: nTrain });
      const cleanEval = await evalMnist(cleanNet);
      fig('mnist.clean.acc', 'MNIST clean model: accuracy', 'bulwark', '%', 'higher', pct(cleanEval.acc));
      fig(
        'mnist.clean.asr',
        'MNIST clean model: trigger → 0 rate',
        'bulwark',
        '%',
        'lower',
        pct(cleanEval.asr),
      );
      {
        const { reps, dim } = hiddenRepresentations(cleanNet, x, nTrain);
        const s = spectralSignatures(reps, dim, y, 10, { expectedPoisonFraction: 0.05, rng: 1 });
        const e = await evalMnist(await fitMnist(without({ x, y, rows: nTrain }, s.flagged)));
        fig(
          'mnist.clean.sanitized.acc',
          'MNIST clean data, spectral-sanitised (eps 0.05): accuracy',
          'bulwark',
          '%',
          'higher',
          pct(e.acc),
        );
      }
      const nTarget = y.filter((v) => v === 0).length;
      for (const eps of RATES) {
        const k = Math.round(eps * nTarget);
        ctx.log(`mnist: eps ${eps} (${k} poisoned rows)`);
        const p = plantImageBackdoor(x, y, {
          trigger: patch,
          target: 0,
          rate: k / (nTrain + k),
          classes: 10,
          mode: 'inject',
          rng: 7,
        });
        const data = { x: p.x, y: p.y, rows: p.rows };
        const net = await fitMnist(data);
        const ev = await evalMnist(net);
        const tag = `mnist.eps${eps}`;
        poisonedFigs(tag, `MNIST eps ${eps}`, ev);
        const { reps, dim } = hiddenRepresentations(net, p.x, p.rows);
        const c: Case = { name: tag, reps, dim, y: p.y, classes: 10, eps, poisoned: p.poisoned };
        cases.push(c);
        for (const which of ['spectral', 'activations'] as const) {
          const d = defend(c, which);
          const e = await evalMnist(await fitMnist(without(data, d.flagged)));
          defenceFigs(tag, `MNIST eps ${eps}`, which, d, e);
        }
      }

      // ---- Transactions ------------------------------------------------------------------------------
      const rows = ctx.quick ? 8000 : 30000;
      const csv = join(dir, 'tx.csv');
      ctx.log(`transactions: generating ${rows} rows`);
      await writeTransactionsCsv(csv, { rows, fraudRate: 0.02, seed: 11 });
      let ds: Dataset = await readDataset(csv);
      ds = ds.drop([...PERSONAL_COLUMNS, ...NOT_FEATURES].filter((c) => ds.has(c)));
      const perm = new SeededRng(3).permutation(ds.rowCount);
      const cut = Math.round(0.75 * ds.rowCount);
      const trainDs = ds.take(perm.subarray(0, cut));
      const testDs = ds.take(perm.subarray(cut));
      const fitTx = (d: Dataset) =>
        trainTabular(d, {
          label: 'is_fraud',
          model: 'mlp',
          hidden: [32],
          epochs: ctx.quick ? 4 : 8,
          batchSize: 256,
          classWeights: 'balanced',
          testFraction: 0,
          seed: 1,
        });
      const testTrig = applyTabularTrigger(testDs, TRIGGER);
      const evalTx = async (r: Awaited<ReturnType<typeof fitTx>>) => {
        const clean = r.pipeline.transform(testDs).matrix;
        const trig = r.pipeline.transform(testTrig).matrix;
        const yv = Int32Array.from(testDs.numbers('is_fraud'));
        const pred = r.network.predict(clean, testDs.rowCount);
        const b = await backdoorSuccess(networkModel(r.network), clean, trig, yv, 0);
        return { acc: accuracy(yv, pred), asr: b.successRate, missed: b.cleanTargetRate };
      };
      ctx.log('transactions: clean model');
      const cleanTx = await fitTx(trainDs);
      const cte = await evalTx(cleanTx);
      fig('tx.clean.acc', 'Transactions clean model: accuracy', 'bulwark', '%', 'higher', pct(cte.acc));
      fig(
        'tx.clean.asr',
        'Transactions clean model: fraud with trigger passed as legitimate',
        'bulwark',
        '%',
        'lower',
        pct(cte.asr),
      );
      fig(
        'tx.clean.missed',
        'Transactions clean model: fraud passed as legitimate without trigger',
        'bulwark',
        '%',
        'lower',
        pct(cte.missed),
      );
      {
        const fm = cleanTx.pipeline.transform(trainDs).matrix;
        const { reps, dim } = hiddenRepresentations(cleanTx.network, fm, trainDs.rowCount);
        const s = spectralSignatures(reps, dim, Int32Array.from(trainDs.numbers('is_fraud')), 2, {
          expectedPoisonFraction: 0.05,
          rng: 1,
        });
        const keep = [...Array(trainDs.rowCount).keys()].filter((i) => !s.flagged[i]);
        const e = await evalTx(await fitTx(trainDs.take(keep)));
        fig(
          'tx.clean.sanitized.acc',
          'Transactions clean data, spectral-sanitised (eps 0.05): accuracy',
          'bulwark',
          '%',
          'higher',
          pct(e.acc),
        );
      }
      const nLegit = trainDs.numbers('is_fraud').filter((v) => v === 0).length;
      for (const eps of RATES) {
        const k = Math.round(eps * nLegit);
        ctx.log(`transactions: eps ${eps} (${k} poisoned rows)`);
        const p = plantTabularBackdoor(trainDs, {
          label: 'is_fraud',
          target: '0',
          trigger: TRIGGER,
          rate: k / (trainDs.rowCount + k),
          mode: 'inject',
          rng: 7,
        });
        const r = await fitTx(p.dataset);
        const ev = await evalTx(r);
        const tag = `tx.eps${eps}`;
        poisonedFigs(tag, `Transactions eps ${eps}`, ev);
        fig(
          `${tag}.poisoned.missed`,
          `Transactions eps ${eps}: fraud passed as legitimate WITHOUT the trigger`,
          'bulwark',
          '%',
          'lower',
          pct(ev.missed),
        );
        const fm = r.pipeline.transform(p.dataset).matrix;
        const yv = Int32Array.from(p.dataset.numbers('is_fraud'));
        const { reps, dim } = hiddenRepresentations(r.network, fm, p.dataset.rowCount);
        const c: Case = { name: tag, reps, dim, y: yv, classes: 2, eps, poisoned: p.poisoned };
        cases.push(c);
        for (const which of ['spectral', 'activations'] as const) {
          const d = defend(c, which);
          const keep = [...Array(p.dataset.rowCount).keys()].filter((i) => !d.flagged[i]);
          const e = await evalTx(await fitTx(p.dataset.take(keep)));
          defenceFigs(tag, `Transactions eps ${eps}`, which, d, e);
        }
      }

      // ---- ART side by side ----------------------------------------------------------------------------
      const artDir = join(ctx.peersDir, 'art-1.16.0');
      const missing =
        (await pythonHas(ctx, ['numpy', 'torch', 'sklearn'])) ??
        (existsSync(join(artDir, 'art', '__init__.py')) ? null : `ART not found in ${artDir}/art`);
      if (missing) notes.push(`ART side by side skipped: ${missing}`);
      else {
        ctx.log('ART 1.16.0 defences on the same representations');
        const cfg = {
          cases: cases.map((c, i) => {
            writeBin(join(dir, `reps${i}.bin`), c.reps);
            writeBin(join(dir, `labels${i}.bin`), c.y);
            return {
              name: c.name,
              reps: join(dir, `reps${i}.bin`),
              labels: join(dir, `labels${i}.bin`),
              rows: c.y.length,
              dim: c.dim,
              classes: c.classes,
              eps: c.eps,
            };
          }),
        };
        writeFileSync(join(dir, 'art.json'), JSON.stringify(cfg));
        const out = (await runPython(ctx, 'poisoning-art.py', [join(dir, 'art.json')], {
          PYTHONPATH: artDir,
        })) as {
          art: string;
          torch: string;
          cases: {
            name: string;
            spectral: number[];
            activations: number[];
            spectralSeconds: number;
            activationsSeconds: number;
          }[];
        };
        const system = `ART ${out.art}`;
        facts['art.version'] = out.art;
        for (const [i, a] of out.cases.entries()) {
          const c = cases[i] as Case;
          for (const which of ['spectral', 'activations'] as const) {
            const flags = new Uint8Array(c.y.length);
            for (const r of a[which]) flags[r] = 1;
            const q = detectionQuality(flags, c.poisoned);
            const ours = defend(c, which);
            let both = 0;
            let either = 0;
            for (let r = 0; r < flags.length; r++) {
              if (flags[r] && ours.flagged[r]) both++;
              if (flags[r] || ours.flagged[r]) either++;
            }
            const ds = c.name.startsWith('mnist') ? 'MNIST' : 'Transactions';
            fig(
              `${c.name}.${which}.precision.art`,
              `${ds} eps ${c.eps}: ${which} precision`,
              system,
              '%',
              'higher',
              pct(q.precision),
            );
            fig(
              `${c.name}.${which}.recall.art`,
              `${ds} eps ${c.eps}: ${which} recall`,
              system,
              '%',
              'higher',
              pct(q.recall),
            );
            fig(
              `${c.name}.${which}.seconds.art`,
              `${ds} eps ${c.eps}: ${which} time`,
              system,
              's',
              'lower',
              which === 'spectral' ? a.spectralSeconds : a.activationsSeconds,
            );
            facts[`${c.name}.${which}.agreement_jaccard`] = either === 0 ? 1 : both / either;
          }
        }
      }

      // ---- Attribute inference on Adult -----------------------------------------------------------------
      const adultDir = join(ctx.datasetsDir, 'adult');
      if (!existsSync(join(adultDir, 'adult.data')))
        notes.push(`attribute inference skipped: UCI Adult not in ${adultDir}`);
      else {
        ctx.log('Adult: attribute inference (marital-status)');
        const adult = await loadTabular('adult', { dir: ctx.datasetsDir });
        const cats: Record<string, string[]> = {};
        for (const line of readFileSync(join(adultDir, 'adult.names'), 'utf8').split('\n')) {
          const mm = /^([a-z-]+): (.+)\.$/.exec(line.trim());
          if (mm && mm[2] !== 'continuous')
            cats[mm[1] as string] = (mm[2] as string).split(',').map((s) => s.trim());
        }
        const NUM: Record<string, [number, number]> = {
          age: [0, 100],
          'education-num': [0, 16],
          'capital-gain': [0, 100_000],
          'capital-loss': [0, 5_000],
          'hours-per-week': [0, 100],
        };
        const catCols = Object.keys(cats).filter((c) => c !== 'income');
        const width = Object.keys(NUM).length + catCols.reduce((s, c) => s + (cats[c] as string[]).length, 0);
        const sensitive = 'marital-status';
        const trainSplit = adult.splits['train'] as Dataset;
        const n = trainSplit.rowCount;
        const xa = new Float32Array(n * width);
        const truth = new Int32Array(n);
        let sensStart = -1;
        {
          const num = Object.keys(NUM).map((c) => trainSplit.numbers(c));
          const str = catCols.map((c) => trainSplit.strings(c));
          for (let i = 0; i < n; i++) {
            let o = i * width;
            Object.keys(NUM).forEach((c, j) => {
              const [lo, hi] = NUM[c] as [number, number];
              xa[o++] = Math.min(1, Math.max(0, ((num[j]?.[i] as number) - lo) / (hi - lo)));
            });
            catCols.forEach((c, j) => {
              const list = cats[c] as string[];
              if (c === sensitive) {
                sensStart = o - i * width;
                truth[i] = Math.max(0, list.indexOf(str[j]?.[i] ?? ''));
              }
              const kk = list.indexOf(str[j]?.[i] ?? '');
              if (kk >= 0) xa[o + kk] = 1;
              o += list.length;
            });
          }
        }
        const ya = Int32Array.from(trainSplit.numbers('income'));
        const values = cats[sensitive] as string[];
        const prior = values.map((_, v) => truth.filter((t) => t === v).length);
        const columns = values.map((_, v) => sensStart + v);
        const candidates = values.map((_, v) => values.map((_, w) => (w === v ? 1 : 0)));
        const data = { x: xa, y: ya, rows: n };
        const nonPrivate = logisticRegression({ inputs: width, classes: 2 });
        await train(nonPrivate, data, {
          epochs: ctx.quick ? 3 : 10,
          batchSize: 256,
          learningRate: 0.01,
          seed: 1,
        });
        const attackRows = ctx.quick ? 3000 : 10000;
        const sub = {
          x: xa.subarray(0, attackRows * width),
          y: ya.subarray(0, attackRows),
          t: truth.subarray(0, attackRows),
        };
        const runAttack = async (net: Network, confusion: boolean) => {
          const model = networkModel(net);
          const performance = confusion ? await modelPerformance(model, sub.x, sub.y) : undefined;
          return attributeInference(
            model,
            Float32Array.from(sub.x),
            Int32Array.from(sub.y),
            Int32Array.from(sub.t),
            {
              columns,
              candidates,
              prior,
              names: values,
              ...(performance ? { performance } : {}),
            },
          );
        };
        const np = await runAttack(nonPrivate, false);
        const npc = await runAttack(nonPrivate, true);
        fig(
          'adult.inversion.prior',
          'Adult marital-status: prior-only guess accuracy',
          'bulwark',
          '%',
          'higher',
          pct(np.baselineAccuracy),
        );
        fig(
          'adult.inversion.nonprivate',
          'Adult marital-status: inversion accuracy (model probability), non-private LR',
          'bulwark',
          '%',
          'higher',
          pct(np.accuracy),
        );
        fig(
          'adult.inversion.nonprivate.confusion',
          'Adult marital-status: inversion accuracy (confusion statistics), non-private LR',
          'bulwark',
          '%',
          'higher',
          pct(npc.accuracy),
        );
        for (const pv of np.perValue)
          facts[`adult.inversion.nonprivate.recovered.${pv.name}`] = `${pv.recovered}/${pv.rows}`;
        facts['adult.inversion.nonprivate.model_accuracy'] = accuracy(ya, nonPrivate.predict(xa, n));
        for (const eps of [1, 0.1]) {
          const accs: number[] = [];
          for (let s = 0; s < (ctx.quick ? 2 : 5); s++) {
            const r = await fitDpLogisticRegression(data, {
              epsilon: eps,
              classes: 2,
              dataNorm: Math.sqrt(Object.keys(NUM).length + catCols.length),
              noise: NoiseSource.insecureSeeded(100 + s, 'bench'),
            });
            accs.push(pct((await runAttack(r.model, false)).accuracy));
          }
          figures.push({
            id: `adult.inversion.dp${eps}`,
            label: `Adult marital-status: inversion accuracy, DP LR ε ${eps}`,
            system: 'bulwark',
            unit: '%',
            better: 'higher',
            samples: accs,
          });
        }
        notes.push(
          `Attribute inference: ${attackRows} training rows of UCI Adult; the attacker knows every other feature and the income label and guesses marital-status (${values.length} values) by argmax L(label | x, v) · prior(v) (Fredrikson et al. 2014), L the model's probability or its confusion statistics (Pr[true label | predicted]); the baseline guesses the most common value. DP models: objective perturbation (add-remove), data norm sqrt(${Object.keys(NUM).length + catCols.length}), seeds 100+.`,
        );
      }
      notes.push(
        `MNIST: ${nTrain} training rows, ${nTest} test rows, MLP 784-256-10 (Adam 1e-3, ${epochs} epochs); transactions: ${rows} generated rows (fraud 2 %), 75/25 split, MLP with 32 hidden units. Poison rate = share of the target class poisoned (injected copies). Activation clustering: PCA to 10 dims, 2-means, relative-size analysis (threshold 0.35) on both sides; spectral signatures remove 1.5 x eps per class on both sides. Precision counts every flagged row of every class, so spectral signatures (which remove 1.5 x eps of EVERY class) cannot exceed about 1 / (1.5 x classes) on MNIST.`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return { figures, facts, notes };
  },
};

export default bench;
