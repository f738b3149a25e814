import { readFileSync } from 'node:fs';
import { SeededRng } from '../../src/core/index.js';

/**
 * The protected-file fixture of the test/protect files (train-verify, readers-verify, protect-twice,
 * evaluate-keyring-once): generated rows with two personal columns (name, email) and a learnable label,
 * and the schema that protects them and gives DP training its public bounds and categories.
 */

export const HEADER = 'id,name,email,x1,x2,channel,hour,label';

/** Generated rows: a label "yes" when a noisy linear score of x1, x2 is high; name and email personal. */
export function rows(n: number, seed: number, prefix = 'r'): string[] {
  const rng = new SeededRng(seed);
  const names = ['Ann', 'Bo', 'Cai', 'Dee', 'Eli', 'Fay', 'Gus', 'Hal'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const x1 = rng.normal();
    const x2 = rng.normal();
    const name = `${rng.pick(names)} ${rng.pick(names)}son`;
    const z = 1.5 * x1 - x2 + rng.normal(0, 0.3);
    out.push(
      [
        `${prefix}${String(i).padStart(5, '0')}`,
        name,
        `${name.replace(' ', '.').toLowerCase()}${i}@example.com`,
        x1.toFixed(4),
        x2.toFixed(4),
        rng.pick(['web', 'shop', 'phone', 'kiosk']),
        rng.int(24),
        z > 0.5 ? 'yes' : 'no',
      ].join(','),
    );
  }
  return out;
}

/** Protect's sensitivity and DP training's public bounds and categories, in one schema. */
export const SCHEMA = `version: 1
label: label
fields:
  - { name: id, type: string }
  - { name: name, type: string, sensitivity: personal }
  - { name: email, type: string, sensitivity: personal }
  - { name: x1, type: number, bounds: { min: -5, max: 5 } }
  - { name: x2, type: number, bounds: { min: -5, max: 5 } }
  - { name: channel, type: category, categories: [web, shop, phone, kiosk] }
  - { name: hour, type: integer, bounds: { min: 0, max: 23 } }
  - { name: label, type: category, categories: ['no', 'yes'] }
`;

/**
 * The fast `bulwark evaluate` options of the protected-file tests (after --model and --data): one FGSM
 * step on 20 rows, no detectors, no shadow models; the check against the manifest is what they test.
 */
export const EVALUATE_FAST = [
  '--label',
  'label',
  '--attacks',
  'fgsm',
  '--eps',
  '0,0.1',
  '--rows',
  '20',
  '--no-detectors',
  '--shadows',
  '0',
];

export function readLines(path: string): string[] {
  return readFileSync(path, 'utf8').replace(/\r\n/g, '\n').trimEnd().split('\n');
}
