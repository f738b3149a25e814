import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBulwarkInProcess } from '../helpers/cli.js';

/**
 * The note on the default δ of `bulwark train --dp-epsilon`: DP logistic regression (objective
 * perturbation) is pure ε-DP and spends δ 0, yet it was told "--dp-delta not given: using 0.0000100";
 * and the rule was printed as "below 1/(10 rows)". Now only DP-SGD, which uses δ, gets the note, and it
 * states the rule.
 */
const tmp = mkdtempSync(join(tmpdir(), 'bulwark-dp-notes-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, 'd.csv');
const schema = join(tmp, 's.yaml');
const ledger = join(tmp, 'l.sqlite');

describe('bulwark train --dp-epsilon: the default delta note', () => {
  before(async () => {
    const rows = ['age,city,label'];
    for (let i = 0; i < 300; i++) {
      const age = 18 + ((i * 37) % 63);
      const city = ['Lyon', 'Paris', 'Nice'][i % 3] as string;
      rows.push(`${age},${city},${age > 50 ? 'yes' : 'no'}`);
    }
    writeFileSync(data, `${rows.join('\n')}\n`);
    writeFileSync(
      schema,
      `version: 1
label: label
fields:
  - { name: age, type: integer, bounds: { min: 0, max: 100 } }
  - { name: city, type: category, categories: [Lyon, Paris, Nice] }
  - { name: label, type: category, categories: ['no', 'yes'] }
`,
    );
    const b = await runBulwarkInProcess([
      'query',
      'budget',
      'set',
      'd.csv',
      '--epsilon',
      '4',
      '--delta',
      '1e-4',
      '--ledger',
      ledger,
    ]);
    assert.equal(b.code, 0, b.stderr);
  });

  const train = (out: string, ...extra: string[]) =>
    runBulwarkInProcess([
      'train',
      '--data',
      data,
      '--schema',
      schema,
      '--label',
      'label',
      '--ledger',
      ledger,
      '--seeded-noise',
      '3',
      '--dp-epsilon',
      '1',
      '--out',
      join(tmp, out),
      ...extra,
    ]);

  it('DP logistic regression (pure epsilon-DP) gets no note about a delta it does not use', async () => {
    const r = await train('lr.onnx');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /epsilon 1 \(pure\)/);
    assert.doesNotMatch(r.stderr, /--dp-delta not given/);
  });

  it('DP-SGD is told the delta it uses and the rule it came from', async () => {
    const r = await train(
      'mlp.onnx',
      '--model',
      'mlp',
      '--hidden',
      '4',
      '--epochs',
      '1',
      '--batch-size',
      '40',
    );
    assert.equal(r.code, 0, r.stderr);
    // 300 rows: the default is min(1e-5, 1/(10 x 300)) = 1e-5.
    assert.match(
      r.stderr,
      /^bulwark: --dp-delta not given: using 0\.0000100 \(the smaller of 1e-5 and 1\/\(10 × rows\)\)$/m,
    );
  });
});
