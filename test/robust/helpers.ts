import { SeededRng } from '../../src/core/index.js';
import { type LabelledData, mlp, type Network, train } from '../../src/ml/index.js';

/**
 * Gaussian blobs in [0, 1]^d: class c centred at a random point of [0.25, 0.75]^d with spread `sd`,
 * clipped to the unit box. Small, separable enough to train in a second, hard enough to attack.
 */
export function blobs(rows: number, d: number, classes: number, seed: number, sd = 0.12): LabelledData {
  const rng = new SeededRng(seed);
  const centres = Array.from({ length: classes }, () =>
    Array.from({ length: d }, () => rng.uniform(0.25, 0.75)),
  );
  const x = new Float32Array(rows * d);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const c = rng.int(classes);
    y[r] = c;
    for (let j = 0; j < d; j++) {
      x[r * d + j] = Math.min(1, Math.max(0, (centres[c]?.[j] as number) + rng.normal(0, sd)));
    }
  }
  return { x, y, rows };
}

/** A small MLP trained on `data` (seeded, a few epochs). */
export async function trainedMlp(
  data: LabelledData,
  d: number,
  classes: number,
  opts: { hidden?: number[]; epochs?: number; seed?: number } = {},
): Promise<Network> {
  const net = mlp({ inputs: d, hidden: opts.hidden ?? [32], classes, rng: opts.seed ?? 1 });
  await train(net, data, {
    epochs: opts.epochs ?? 20,
    batchSize: 64,
    learningRate: 3e-3,
    seed: opts.seed ?? 1,
  });
  return net;
}

/** Splits the first `n` rows off. */
export function head(data: LabelledData, d: number, n: number): LabelledData {
  return { x: data.x.slice(0, n * d), y: data.y.slice(0, n), rows: n };
}
