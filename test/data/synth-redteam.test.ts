/**
 * Red-team review of `bulwark data synth` (2026-11-28): option values that the checks let through and
 * that silently changed the data, made it depend on the machine, or broke the timestamps. Each case
 * failed on the code before the review (the comment says how).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { generateTransactions, resolveSynthOptions, type SynthOptions } from '../../src/data/synth/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';

const base: SynthOptions = { rows: 10, fraudRate: 0.1, seed: 1 };
const invalid = (re: RegExp) => (e: unknown) =>
  isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && re.test((e as Error).message);

describe('data synth red team', () => {
  it('fraudMix weights near Number.MAX_VALUE keep their shares (their sum overflowed: no fraud at all)', () => {
    const fraudMix = { card_testing: Number.MAX_VALUE, account_takeover: Number.MAX_VALUE };
    const o = resolveSynthOptions({ ...base, fraudMix });
    assert.equal(o.fraudMix.card_testing, 0.5);
    assert.equal(o.fraudMix.account_takeover, 0.5);
    let fraud = 0;
    for (const t of generateTransactions({ rows: 3000, fraudRate: 0.3, seed: 1, fraudMix }))
      fraud += t.is_fraud;
    assert.ok(fraud > 600, `fraud rows ${fraud}`);
  });

  it('start: a date-time needs Z or an offset (it was local time: other bytes in another time zone); impossible days are refused (Feb 30 was March 1)', () => {
    for (const start of [
      '2024-02-01T10:00:00',
      '2024-02-30',
      '2023-02-29',
      '2024-02-31T10:00:00Z',
      '2024-01-01T24:00:00Z',
    ])
      assert.throws(() => resolveSynthOptions({ ...base, start }), invalid(/^start: /), start);
    assert.equal(resolveSynthOptions({ ...base, start: '2024-02-29' }).start, Date.UTC(2024, 1, 29));
    assert.equal(
      resolveSynthOptions({ ...base, start: '2024-01-01T08:00:00+02:00' }).start,
      Date.UTC(2024, 0, 1, 6),
    );
    assert.equal(resolveSynthOptions({ ...base, start: '2024-01-01T08:00Z' }).start, Date.UTC(2024, 0, 1, 8));
  });

  it('a period running past the year 9999 is refused up front (timestamps became "+010000-01…" or a bare RangeError)', () => {
    assert.throws(
      () => resolveSynthOptions({ ...base, rows: 10_000_000, cardholders: 1 }),
      invalid(/^rows: .*before the year 10000: 10000000 rows for 1 cardholders/),
    );
    // txPerDay near 0: the generator threw "RangeError: Invalid time value" (no Bulwark code).
    assert.throws(
      () => [...generateTransactions({ ...base, rows: 50, txPerDay: 1e-300 })],
      invalid(/^rows: /),
    );
    // The documented range still works with the default population.
    assert.equal(resolveSynthOptions({ ...base, rows: 1_000_000_000 }).rows, 1_000_000_000);
  });

  it('on the command line: exit 2, the option named, no file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-synth-rt-'));
    const out = join(dir, 'tx.csv');
    const period = await runBulwarkInProcess([
      'data',
      'synth',
      '--rows',
      '10000000',
      '--cardholders',
      '1',
      '--seed',
      '1',
      '--out',
      out,
    ]);
    assert.equal(period.code, 2, period.stderr);
    assert.match(period.stderr, /ERR_INVALID_ARGUMENT: rows: .*year 10000/);
    const local = await runBulwarkInProcess([
      'data',
      'synth',
      '--start',
      '2024-02-01T10:00:00',
      '--out',
      out,
    ]);
    assert.equal(local.code, 2, local.stderr);
    assert.match(local.stderr, /ERR_USAGE: option '--start <date>'/);
    const seed = await runBulwarkInProcess(['data', 'synth', '--seed', String(2 ** 53), '--out', out]);
    assert.equal(seed.code, 2, seed.stderr);
    assert.doesNotMatch(period.stderr + local.stderr + seed.stderr, /\n\s+at /);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(dir), []);
  });
});
