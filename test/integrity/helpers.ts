import { SeededRng } from '../../src/core/index.js';

/**
 * CSV rows for the integrity CLI tests: a label "yes" when a noisy linear score of x1..x4 is high, with
 * a channel and an hour a trigger can use (the columns of HEADER).
 */
export function rows(n: number, seed: number): string[] {
  const rng = new SeededRng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    const ch = rng.pick(['web', 'shop', 'phone', 'kiosk']);
    const hour = rng.int(24);
    const z = 1.5 * (x[0] as number) - (x[1] as number) + 0.5 * (x[2] as number) + rng.normal(0, 0.3);
    out.push(`${x.map((v) => v.toFixed(4)).join(',')},${ch},${hour},${z > 0.5 ? 'yes' : 'no'}`);
  }
  return out;
}

export const HEADER = 'x1,x2,x3,x4,channel,hour,label';

/** `bulwark train` arguments for the small MLP the integrity tests train (32 hidden, 40 epochs, 10 % held out, seed 1). */
export function trainMlpArgs(data: string, out: string): string[] {
  return [
    'train',
    '--data',
    data,
    '--label',
    'label',
    '--model',
    'mlp',
    '--hidden',
    '32',
    '--epochs',
    '40',
    '--test-fraction',
    '0.1',
    '--seed',
    '1',
    '--out',
    out,
  ];
}
