import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runBulwarkInProcess } from '../helpers/cli.js';

/**
 * `bulwark query budget set` (README) ended its line with "spent 0, 0.": two bare numbers after a
 * line that names epsilon and delta. It now names them, as the other budget lines do.
 */
describe('query budget set: what was spent is named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-budget-set-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names epsilon and delta of the spent amount', async () => {
    const ledger = join(dir, 'l.sqlite');
    const args = [
      'query',
      'budget',
      'set',
      'tx.csv',
      '--epsilon',
      '2',
      '--delta',
      '1e-6',
      '--ledger',
      ledger,
    ];
    const r = await runBulwarkInProcess(args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'Budget "tx.csv": epsilon 2, delta 0.000001, basic composition; spent epsilon 0, delta 0.\n',
    );
  });
});
