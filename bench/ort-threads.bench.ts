/**
 * ONNX Runtime's intra-op threads and spinning for adversarial training: the wall and CPU time of one
 * PGD-training batch of Croce et al.'s recipe (64 PGD-40 rows, then the training step on 128 rows,
 * through the 784-1024-10 MLP on `OnnxGradientEngine`) with 1 thread, 2 threads whose pool spins
 * between calls (ONNX Runtime's default), and 2 threads that sleep (`spinning: false`, the engine's
 * default). Each repeat runs the three in a seeded shuffled order, so a change of machine load
 * touches all three alike; CPU time is the process's user + system time (all threads).
 *
 * Why: robust-reference's full-budget run (60,000 images x 100 epochs) took 58 and 94 minutes in two runs
 * on this shared machine, and PGD makes one short call per step: between calls, spinning pool threads hold
 * cores that Node's thread running the next call needs.
 */
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../src/core/index.js';
import { mlp } from '../src/ml/index.js';
import { OnnxGradientEngine } from '../src/ml/onnx/gradient-engine.js';
import type { Benchmark, Figure } from './harness.js';
import { HIDDEN } from './robust.bench.js';

const CONFIGS = [
  { id: 't1', label: '1 thread', threads: 1, spinning: false },
  { id: 't2.spin', label: '2 threads, spinning (ONNX Runtime default)', threads: 2, spinning: true },
  { id: 't2', label: '2 threads, no spinning (engine default)', threads: 2, spinning: false },
] as const;

const bench: Benchmark = {
  name: 'ort-threads',
  description:
    "ONNX Runtime threads and spinning: wall and CPU time of one PGD-training batch (Croce et al.'s recipe, 784-1024-10 MLP) with 1 thread, 2 spinning threads and 2 sleeping threads",
  async run(ctx) {
    const batches = ctx.quick ? 3 : 10;
    const d = 784;
    const rows = 128;
    const nAdv = 64;
    const rng = new SeededRng(11);
    const x = Float32Array.from({ length: rows * d }, () => rng.nextFloat());
    const y = Int32Array.from({ length: rows }, () => rng.int(10));
    const eps = 0.1;
    const xa = x.subarray(0, nAdv * d);
    const lower = xa.map((v) => Math.max(0, v - eps));
    const upper = xa.map((v) => Math.min(1, v + eps));
    const step = new Float32Array(d).fill((2 * eps) / 40);
    const net = mlp({ inputs: d, hidden: [HIDDEN], classes: 10, rng: 1 });
    const engines = new Map<string, OnnxGradientEngine>();
    for (const c of CONFIGS)
      engines.set(c.id, await OnnxGradientEngine.create(net, { threads: c.threads, spinning: c.spinning }));
    const wall = new Map<string, number[]>(CONFIGS.map((c) => [c.id, []]));
    const cpu = new Map<string, number[]>(CONFIGS.map((c) => [c.id, []]));
    try {
      const batch = async (e: OnnxGradientEngine) => {
        const adv = await e.pgd(xa.slice(), y.subarray(0, nAdv), nAdv, { lower, upper, step }, 40);
        const xb = x.slice();
        xb.set(adv, 0);
        await e.lossAndGradient(xb, y, rows, null);
      };
      // Warm-up: each session's first calls allocate.
      for (const e of engines.values()) for (let i = 0; i < 2; i++) await batch(e);
      const order = new SeededRng(5);
      for (let r = 0; r < ctx.repeats; r++) {
        const shuffled = order.permutation(CONFIGS.length);
        for (const i of shuffled) {
          const c = CONFIGS[i as number] as (typeof CONFIGS)[number];
          const e = engines.get(c.id) as OnnxGradientEngine;
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          for (let b = 0; b < batches; b++) await batch(e);
          const ms = (performance.now() - t0) / batches;
          const used = process.cpuUsage(c0);
          (wall.get(c.id) as number[]).push(ms);
          (cpu.get(c.id) as number[]).push((used.user + used.system) / 1000 / batches);
        }
        ctx.log(`repeat ${r + 1}/${ctx.repeats}`);
      }
    } finally {
      for (const e of engines.values()) await e.close();
    }
    const figures: Figure[] = [];
    for (const c of CONFIGS) {
      figures.push(
        {
          id: `${c.id}.wall_ms`,
          label: `${c.label}: wall time per PGD-training batch`,
          system: 'bulwark',
          unit: 'ms',
          better: 'lower',
          samples: wall.get(c.id) as number[],
        },
        {
          id: `${c.id}.cpu_ms`,
          label: `${c.label}: CPU time (all threads) per PGD-training batch`,
          system: 'bulwark',
          unit: 'ms',
          better: 'lower',
          samples: cpu.get(c.id) as number[],
        },
      );
    }
    return {
      figures,
      ratios: [
        {
          label: 'wall: 2 threads no spinning / 2 threads spinning',
          of: 't2.wall_ms',
          to: 't2.spin.wall_ms',
        },
        { label: 'wall: 2 threads no spinning / 1 thread', of: 't2.wall_ms', to: 't1.wall_ms' },
        { label: 'wall: 2 threads spinning / 1 thread', of: 't2.spin.wall_ms', to: 't1.wall_ms' },
        { label: 'CPU: 2 threads no spinning / 2 threads spinning', of: 't2.cpu_ms', to: 't2.spin.cpu_ms' },
      ],
      facts: { batches, rows, advRows: nAdv, pgdSteps: 40 },
      notes: [
        `One batch: PGD-40 (step 2 eps / 40, eps ${eps}) on ${nAdv} rows, then the loss and parameter gradient on ${rows} rows (the adversarial rows and the rest), as adversarialTrain's ONNX Runtime path with ratio 0.5; random inputs, the initial weights (the cost does not depend on the values). ${batches} batches per sample, ${ctx.repeats} samples per configuration, the configurations in a seeded shuffled order in each repeat.`,
        'The machine is shared: read the ratios, taken within each repeat under the same load, more than the absolute times.',
      ],
    };
  },
};

export default bench;
