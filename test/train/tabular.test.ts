import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { warnBelowMajority } from '../../src/train/tabular.js';

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
