import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import {
  accuracy,
  averagePrecision,
  binaryReport,
  confusionMatrix,
  fprAtThreshold,
  precisionRecallF1,
  rocAuc,
  rocCurve,
  thresholdForFpr,
} from '../../src/ml/metrics.js';

/*
 * Reference values from scikit-learn 1.2.1 (Debian python3-sklearn), computed once by
 * /usr/bin/python3 on exactly this data:
 *   n = 60; y = [1 if (i*7) % 11 < 4 else 0]; s = [((i*37) % 101 + 30*y[i]) / 100]; pred = s >= 0.5
 *   yt3 = [i % 3]; yp3 = [((i*5) % 7) % 3]
 *   accuracy_score, precision_score, recall_score, f1_score, roc_auc_score, average_precision_score,
 *   confusion_matrix, precision_recall_fscore_support(average=...), and roc_curve(drop_intermediate=False)
 *   taking the last point with fpr <= target.
 */
const n = 60;
const y = Array.from({ length: n }, (_, i) => ((i * 7) % 11 < 4 ? 1 : 0));
const s = Array.from({ length: n }, (_, i) => (((i * 37) % 101) + 30 * y[i]!) / 100);
const pred = s.map((v) => (v >= 0.5 ? 1 : 0));
const yt3 = Array.from({ length: n }, (_, i) => i % 3);
const yp3 = Array.from({ length: n }, (_, i) => ((i * 5) % 7) % 3);

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('metrics agree with scikit-learn', () => {
  it('binary metrics', () => {
    close(accuracy(y, pred), 0.6);
    const prf = precisionRecallF1(y, pred);
    close(prf.precision, 0.4666666666666667);
    close(prf.recall, 0.6363636363636364);
    close(prf.f1, 0.5384615384615385);
    close(rocAuc(y, s), 0.7715311004784688);
    close(averagePrecision(y, s), 0.7936961065771495);
    assert.deepEqual(confusionMatrix(y, pred, 2), [
      [22, 16],
      [8, 14],
    ]);
    assert.equal(rocCurve(y, s).fpr.length, 55);
    const r = binaryReport(y, s);
    close(r.f1, 0.5384615384615385);
  });

  it('multi-class averages', () => {
    close(accuracy(yt3, yp3), 0.3);
    assert.deepEqual(confusionMatrix(yt3, yp3, 3), [
      [8, 6, 6],
      [9, 5, 6],
      [9, 6, 5],
    ]);
    const ref = {
      macro: [0.29864253393665163, 0.3, 0.2961222091656874],
      micro: [0.3, 0.3, 0.3],
      weighted: [0.2986425339366516, 0.3, 0.2961222091656874],
    } as const;
    for (const avg of ['macro', 'micro', 'weighted'] as const) {
      const got = precisionRecallF1(yt3, yp3, avg, 3);
      close(got.precision, ref[avg][0]);
      close(got.recall, ref[avg][1]);
      close(got.f1, ref[avg][2]);
    }
    // 'samples' is scikit-learn's for multi-label data; it was computed as 'weighted' without a word.
    assert.throws(
      () => precisionRecallF1(yt3, yp3, 'samples' as never, 3),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /^average: expected one of/.test(e.message),
    );
  });

  it('threshold for a target FPR, and FPR at that threshold', () => {
    const a = thresholdForFpr(y, s, 0.1);
    assert.deepEqual(a, { threshold: 0.73, fpr: 0.07894736842105263, tpr: 0.6363636363636364 });
    const b = thresholdForFpr(y, s, 0.25);
    assert.equal(b.threshold, 0.62);
    close(b.fpr, 0.23684210526315788);
    const at = fprAtThreshold(y, s, b.threshold);
    close(at.fpr, b.fpr);
    close(at.tpr, b.tpr);
    // FPR 0 allowed: only thresholds above every negative.
    const z = thresholdForFpr(y, s, 0);
    assert.equal(fprAtThreshold(y, s, z.threshold).fpr, 0);
  });

  it('ties are grouped (AUC of constant scores is 0.5) and bad input is refused', () => {
    close(rocAuc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]), 0.5);
    close(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75); // the scikit-learn docstring example
    close(averagePrecision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.8333333333333333);
    assert.throws(
      () => rocAuc([1, 1], [0.2, 0.4]),
      (e) => isBulwarkError(e, 'ERR_LABEL_INVALID'),
    );
    assert.throws(
      () => rocAuc([0, 2], [0.2, 0.4]),
      (e) => isBulwarkError(e, 'ERR_LABEL_INVALID') && /yTrue\[1\]/.test(e.message),
    );
    assert.throws(
      () => rocAuc([0, 1], [0.2, Number.NaN]),
      (e) => isBulwarkError(e, 'ERR_DATA_VALUE'),
    );
    assert.throws(
      () => accuracy([0, 1], [0]),
      (e) => isBulwarkError(e, 'ERR_SHAPE_MISMATCH'),
    );
    assert.throws(() => thresholdForFpr(y, s, 1.5), /targetFpr/);
  });
});
