import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { Dataset, heldOutSplit } from '../../src/data/index.js';
import { trainTabular, warnBelowMajority } from '../../src/train/tabular.js';

describe('warnBelowMajority', () => {
  // 133 of 200 held-out rows in class 0: always answering 0 scores 66.5 %.
  const labels = Int32Array.from({ length: 200 }, (_, i) => (i < 133 ? 0 : 1));
  const notes = (accuracy: number, y: Int32Array = labels) => {
    const out: string[] = [];
    warnBelowMajority(accuracy, y, (m) => out.push(m));
    return out;
  };

  it('warns when an adversarially trained model does worse than always predicting the most common class', () => {
    // German credit at --adv-eps 0.1 with every categorical field mutable: 37.5 % against 66.5 %.
    const [m, ...rest] = notes(0.375);
    assert.equal(rest.length, 0);
    assert.match(
      m ?? '',
      /test accuracy \(37\.50 %\) is below always predicting the most common class \(66\.50 %\)/,
    );
    assert.match(m ?? '', /--adv-eps/);
    assert.match(m ?? '', /--immutable/);
  });

  it('stays quiet at or above that rate, without held-out rows, or without an accuracy', () => {
    assert.deepEqual(notes(0.665), []);
    assert.deepEqual(notes(0.9), []);
    assert.deepEqual(notes(0.1, new Int32Array(0)), []);
    assert.deepEqual(notes(Number.NaN), []);
  });
});

describe('trainTabular split', () => {
  // Row i is the same in every size (each row's values drawn in turn), so ds(401) is ds(400) plus one.
  const ds = (n: number): Dataset => {
    const rng = new SeededRng(5);
    const rows = Array.from({ length: n }, () => [rng.uniform(0, 1), rng.uniform(0, 1)] as const);
    return Dataset.fromColumns({
      x: rows.map((r) => r[0]),
      z: rows.map((r) => r[1]),
      label: rows.map((r) => (r[0] > 0.5 ? 'yes' : 'no')),
    });
  };
  const base = { label: 'label', model: 'logreg' as const, epochs: 2, seed: 3, testFraction: 0.25 };

  it("row-hash holds out data's heldOutSplit rows, the split DP training uses; one added row moves none", async () => {
    const d = ds(400);
    const r = await trainTabular(d, { ...base, split: 'row-hash' });
    const { testIdx } = heldOutSplit(d, 0.25, 3);
    assert.deepEqual([...r.testRows], [...testIdx]);
    assert.equal(r.trainRows + r.test.rows, 400);
    // The default permutation holds out other rows.
    const p = await trainTabular(d, base);
    assert.notDeepEqual(
      [...p.testRows].sort((a, b) => a - b),
      [...testIdx],
    );
    // One row appended: every earlier row stays on its side.
    const more = await trainTabular(ds(401), { ...base, split: 'row-hash' });
    assert.deepEqual(
      [...more.testRows].filter((i) => i < 400),
      [...testIdx],
    );
  });

  it('rows: an explicit split; rows in neither list are left out; a bad row number or a row in both lists is refused', async () => {
    const d = ds(100);
    const test = [3, 1, 50];
    const train = Array.from({ length: 90 }, (_, i) => i + 10).filter((i) => i !== 50);
    const r = await trainTabular(d, { ...base, rows: { train, test } });
    assert.deepEqual([...r.testRows], test);
    assert.equal(r.trainRows, train.length);
    assert.equal(r.test.rows, 3);
    for (const [rows, name] of [
      [{ train, test: [100] }, 'rows.test'],
      [{ train: [...train, 1.5], test }, 'rows.train'],
      [{ train: [...train, 3], test }, 'rows.test'],
    ] as const) {
      await assert.rejects(
        trainTabular(d, { ...base, rows }),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && (e as Error).message.startsWith(`${name}:`),
        name,
      );
    }
  });

  it('refuses an unknown split, naming it', async () => {
    await assert.rejects(
      trainTabular(ds(50), { ...base, split: 'random' as 'row-hash' }),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^split:/.test((e as Error).message),
    );
  });
});
