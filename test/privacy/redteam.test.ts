/**
 * Red-team regressions for differential privacy: each test reproduces a privacy failure found in a
 * review and checks it stays fixed. Deterministic: where a release is compared exactly, ε is so large
 * that the discrete noise is 0 with probability 1 − 2e^−(10^6) (the release is then the exact
 * statistic, which is what the sensitivity argument is about).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runBulwarkAsync } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'bulwark-dp-redteam-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** `bulwark --json query ...` on its own ledger with a large budget; the parsed JSON result. */
async function query(name: string, csv: string, args: readonly string[]): Promise<{ value: unknown }> {
  const file = join(tmp, `${name}.csv`);
  writeFileSync(file, csv);
  const ledger = join(tmp, `${name}.sqlite`);
  const set = await runBulwarkAsync([
    'query',
    'budget',
    'set',
    `${name}.csv`,
    '--epsilon',
    '1e6',
    '--ledger',
    ledger,
  ]);
  assert.equal(set.code, 0, set.stderr);
  const r = await runBulwarkAsync([
    '--json',
    'query',
    ...args,
    '--data',
    file,
    '--epsilon',
    '1e6',
    '--ledger',
    ledger,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { value: unknown };
}

describe('bulwark query: one row cannot change how the other rows are read', () => {
  // D: every value looks like a number; D' = D plus one row whose value is not a number. Before the
  // fix a CSV column was typed by inference over all rows: in D the column was numeric, so "1.0" was
  // read as 1 and matched no category ("1" != "1.0"): every row went to <other>. The one extra row of
  // D' made the column text, and every row moved to its category: one row changed every bin, an
  // unbounded sensitivity where the histogram claims 1.
  const d = `v\n${['1.0', '1.0', '2.0', '1.0', '2.0'].join('\n')}\n`;
  const dPlus = `${d}x\n`;

  it('histogram over public categories: neighbours differ in one bin by one', async () => {
    const args = ['histogram', '--column', 'v', '--categories', '1.0,2.0'];
    const [a, b] = await Promise.all([query('hist-d', d, args), query('hist-d1', dPlus, args)]);
    assert.deepEqual(a.value, [
      { bin: '1.0', count: 3 },
      { bin: '2.0', count: 2 },
      { bin: '<other>', count: 0 },
    ]);
    assert.deepEqual(b.value, [
      { bin: '1.0', count: 3 },
      { bin: '2.0', count: 2 },
      { bin: '<other>', count: 1 },
    ]);
  });

  it('a numeric query is answered the same way whatever the other rows hold (no data-dependent refusal)', async () => {
    // Before the fix D' was refused with ERR_DATA_VALUE ("holds strings") before the spend: whether
    // some row is not a number was released, unaccounted. Now the value counts as missing for its row.
    const args = ['sum', '--column', 'v', '--lower', '0', '--upper', '10'];
    const [a, b] = await Promise.all([query('sum-d', d, args), query('sum-d1', dPlus, args)]);
    // The sum's noise is in units of its public grid (10 / 2^20 here): at ε 10^6 a few units at most.
    assert.ok(Math.abs((a.value as number) - 7) < 1e-3, String(a.value));
    assert.ok(Math.abs((b.value as number) - 7) < 1e-3, String(b.value));
    const c = await query('count-d1', dPlus, ['count', '--column', 'v']);
    assert.equal(c.value, 6);
  });

  it('a missing --column is still named', async () => {
    const file = join(tmp, 'nocol.csv');
    writeFileSync(file, d);
    const r = await runBulwarkAsync([
      'query',
      'count',
      '--data',
      file,
      '--column',
      'nope',
      '--epsilon',
      '1',
      '--ledger',
      join(tmp, 'nocol.sqlite'),
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_COLUMN_NOT_FOUND: nocol\.csv: no column "nope"; columns are: v/);
  });
});
