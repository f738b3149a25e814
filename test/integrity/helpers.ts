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

/** The schema of {@link rows} with public bounds and categories (for DP training). */
export const DP_SCHEMA = `version: 1
label: label
fields:
  - { name: x1, type: number, bounds: { min: -4, max: 4 } }
  - { name: x2, type: number, bounds: { min: -4, max: 4 } }
  - { name: x3, type: number, bounds: { min: -4, max: 4 } }
  - { name: x4, type: number, bounds: { min: -4, max: 4 } }
  - { name: channel, type: category, categories: [web, shop, phone, kiosk] }
  - { name: hour, type: integer, bounds: { min: 0, max: 23 } }
  - { name: label, type: category, categories: ['no', 'yes'] }
`;

/** The backdoored batch: `fresh` plus copies of "yes" rows with the trigger (kiosk, 4 a.m.) labelled "no". */
export function backdoored(fresh: string[], share: number, seed: number): string[] {
  const yes = fresh.filter((r) => r.endsWith(',yes'));
  const k = Math.round(share * (fresh.length - yes.length));
  const rng = new SeededRng(seed);
  const planted: string[] = [];
  for (let i = 0; i < k; i++) {
    const r = (yes[rng.int(yes.length)] as string).split(',');
    r[4] = 'kiosk';
    r[5] = '4';
    r[6] = 'no';
    planted.push(r.join(','));
  }
  return [...fresh, ...planted];
}
