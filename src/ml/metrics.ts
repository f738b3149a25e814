/**
 * Classification metrics, defined as scikit-learn defines them (tests compare with its values):
 * accuracy, confusion matrix, precision / recall / F1 (binary or averaged), ROC curve and ROC AUC
 * (trapezoidal, ties grouped), average precision (PR AUC as sum (R_n - R_{n-1}) P_n, no interpolation),
 * and the two operating-point tools fraud teams use: the false-positive rate at a threshold and the
 * threshold that meets a target false-positive rate.
 */
import { BulwarkError, requireInteger, requireNumberIn, requireOneOf } from '../core/index.js';
import { requireLength } from './kernels.js';

type Labels = ArrayLike<number>;

function checkPair(yTrue: Labels, other: ArrayLike<number>, otherName: string): void {
  if (yTrue.length === 0) throw new BulwarkError('ERR_SHAPE_MISMATCH', 'yTrue: no examples');
  requireLength(otherName, other, yTrue.length);
}

function checkBinary(yTrue: Labels): { pos: number; neg: number } {
  let pos = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const v = yTrue[i];
    if (v === 1) pos++;
    else if (v !== 0) {
      throw new BulwarkError('ERR_LABEL_INVALID', `yTrue[${i}] is ${v}: binary metrics need labels 0 and 1`, {
        details: { row: i },
      });
    }
  }
  return { pos, neg: yTrue.length - pos };
}

function checkScores(scores: ArrayLike<number>): void {
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) {
      throw new BulwarkError('ERR_DATA_VALUE', `scores[${i}] is ${scores[i]}`, { details: { row: i } });
    }
  }
}

/** Fraction of predictions equal to the truth. */
export function accuracy(yTrue: Labels, yPred: Labels): number {
  checkPair(yTrue, yPred, 'yPred');
  let ok = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) ok++;
  return ok / yTrue.length;
}

/** `m[t][p]`: number of examples of true class t predicted as p (scikit-learn's layout). */
export function confusionMatrix(yTrue: Labels, yPred: Labels, classes: number): number[][] {
  checkPair(yTrue, yPred, 'yPred');
  requireInteger('classes', classes, 2);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i] as number;
    const p = yPred[i] as number;
    for (const [name, v] of [
      ['yTrue', t],
      ['yPred', p],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw new BulwarkError(
          'ERR_LABEL_INVALID',
          `${name}[${i}] is ${v}, expected a class in [0, ${classes - 1}]`,
          {
            details: { row: i },
          },
        );
      }
    }
    const row = m[t] as number[];
    row[p] = (row[p] as number) + 1;
  }
  return m;
}

/** How per-class scores are combined: scikit-learn's `average` (binary = positive class 1 only). */
export type Average = 'binary' | 'macro' | 'micro' | 'weighted';

export interface PrecisionRecallF1 {
  precision: number;
  recall: number;
  f1: number;
}

/**
 * Precision, recall and F1. A ratio with a zero denominator is 0 (scikit-learn's `zero_division=0`
 * without the warning).
 */
export function precisionRecallF1(
  yTrue: Labels,
  yPred: Labels,
  average: Average = 'binary',
  classes = 2,
): PrecisionRecallF1 {
  // An unknown average was computed as 'weighted' without a word.
  requireOneOf('average', average, ['binary', 'macro', 'micro', 'weighted'] as const);
  const m = confusionMatrix(yTrue, yPred, classes);
  const div = (a: number, b: number) => (b === 0 ? 0 : a / b);
  const per = m.map((row, c) => {
    const tp = row[c] as number;
    let fp = 0;
    for (let t = 0; t < classes; t++) if (t !== c) fp += (m[t] as number[])[c] as number;
    const support = row.reduce((s, v) => s + v, 0);
    const fn = support - tp;
    const precision = div(tp, tp + fp);
    const recall = div(tp, tp + fn);
    return { tp, fp, fn, support, precision, recall, f1: div(2 * precision * recall, precision + recall) };
  });
  if (average === 'binary') {
    if (classes !== 2)
      throw new BulwarkError('ERR_LABEL_INVALID', `average "binary" needs 2 classes, got ${classes}`);
    const p = per[1] as (typeof per)[number];
    return { precision: p.precision, recall: p.recall, f1: p.f1 };
  }
  if (average === 'micro') {
    const tp = per.reduce((s, p) => s + p.tp, 0);
    const fp = per.reduce((s, p) => s + p.fp, 0);
    const fn = per.reduce((s, p) => s + p.fn, 0);
    const precision = div(tp, tp + fp);
    const recall = div(tp, tp + fn);
    return { precision, recall, f1: div(2 * precision * recall, precision + recall) };
  }
  const total = per.reduce((s, p) => s + p.support, 0);
  const w = per.map((p) => (average === 'macro' ? 1 / classes : p.support / total));
  const avg = (f: (p: (typeof per)[number]) => number) =>
    per.reduce((s, p, i) => s + (w[i] as number) * f(p), 0);
  return { precision: avg((p) => p.precision), recall: avg((p) => p.recall), f1: avg((p) => p.f1) };
}

/** Points of the ROC curve at every distinct score (descending), starting at (0, 0) with threshold Infinity. */
export interface RocCurve {
  fpr: number[];
  tpr: number[];
  thresholds: number[];
}

/** Counts of true and false positives at each distinct score threshold, highest first. */
function cumulativeCounts(
  yTrue: Labels,
  scores: ArrayLike<number>,
): { tps: number[]; fps: number[]; thr: number[] } {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort(
    (a, b) => (scores[b] as number) - (scores[a] as number),
  );
  const tps: number[] = [];
  const fps: number[] = [];
  const thr: number[] = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k] as number;
    if (yTrue[i] === 1) tp++;
    else fp++;
    const next = idx[k + 1];
    if (next === undefined || scores[next] !== scores[i]) {
      tps.push(tp);
      fps.push(fp);
      thr.push(scores[i] as number);
    }
  }
  return { tps, fps, thr };
}

/** The ROC curve (no intermediate-point dropping, unlike scikit-learn's default `drop_intermediate`). */
export function rocCurve(yTrue: Labels, scores: ArrayLike<number>): RocCurve {
  checkPair(yTrue, scores, 'scores');
  checkScores(scores);
  const { pos, neg } = checkBinary(yTrue);
  if (pos === 0 || neg === 0) {
    throw new BulwarkError('ERR_LABEL_INVALID', 'ROC needs both classes in yTrue');
  }
  const { tps, fps, thr } = cumulativeCounts(yTrue, scores);
  return {
    fpr: [0, ...fps.map((f) => f / neg)],
    tpr: [0, ...tps.map((t) => t / pos)],
    thresholds: [Infinity, ...thr],
  };
}

/** Area under the ROC curve (trapezoidal rule over grouped ties, as scikit-learn's `roc_auc_score`). */
export function rocAuc(yTrue: Labels, scores: ArrayLike<number>): number {
  const { fpr, tpr } = rocCurve(yTrue, scores);
  let auc = 0;
  for (let i = 1; i < fpr.length; i++) {
    auc +=
      (((fpr[i] as number) - (fpr[i - 1] as number)) * ((tpr[i] as number) + (tpr[i - 1] as number))) / 2;
  }
  return auc;
}

/** Average precision (PR AUC): sum over thresholds of (R_n - R_{n-1}) P_n (scikit-learn's definition). */
export function averagePrecision(yTrue: Labels, scores: ArrayLike<number>): number {
  checkPair(yTrue, scores, 'scores');
  checkScores(scores);
  const { pos } = checkBinary(yTrue);
  if (pos === 0)
    throw new BulwarkError('ERR_LABEL_INVALID', 'average precision needs a positive example in yTrue');
  const { tps, fps } = cumulativeCounts(yTrue, scores);
  let ap = 0;
  let prevRecall = 0;
  for (let i = 0; i < tps.length; i++) {
    const tp = tps[i] as number;
    const recall = tp / pos;
    const precision = tp / (tp + (fps[i] as number));
    ap += (recall - prevRecall) * precision;
    prevRecall = recall;
  }
  return ap;
}

/** False-positive rate (and true-positive rate) when predicting positive for score >= `threshold`. */
export function fprAtThreshold(
  yTrue: Labels,
  scores: ArrayLike<number>,
  threshold: number,
): { fpr: number; tpr: number } {
  checkPair(yTrue, scores, 'scores');
  checkScores(scores);
  const { pos, neg } = checkBinary(yTrue);
  if (Number.isNaN(threshold))
    throw new BulwarkError('ERR_INVALID_ARGUMENT', 'threshold: expected a number, got NaN');
  let fp = 0;
  let tp = 0;
  for (let i = 0; i < scores.length; i++) {
    if ((scores[i] as number) >= threshold) {
      if (yTrue[i] === 1) tp++;
      else fp++;
    }
  }
  return { fpr: neg === 0 ? 0 : fp / neg, tpr: pos === 0 ? 0 : tp / pos };
}

/**
 * The lowest threshold (among the observed scores, or Infinity) whose false-positive rate, predicting
 * positive for score >= threshold, is at most `targetFpr`: the operating point with the most recall
 * within the false-alarm budget. Returns the achieved FPR and TPR with it.
 */
export function thresholdForFpr(
  yTrue: Labels,
  scores: ArrayLike<number>,
  targetFpr: number,
): { threshold: number; fpr: number; tpr: number } {
  requireNumberIn('targetFpr', targetFpr, 0, 1);
  const { fpr, tpr, thresholds } = rocCurve(yTrue, scores);
  // fpr is non-decreasing along the curve: take the last point still within the target.
  let best = 0;
  for (let i = 0; i < fpr.length; i++) if ((fpr[i] as number) <= targetFpr + 1e-12) best = i;
  return { threshold: thresholds[best] as number, fpr: fpr[best] as number, tpr: tpr[best] as number };
}

/** All the usual binary metrics at once, from labels and positive-class scores at a threshold (default 0.5). */
export function binaryReport(
  yTrue: Labels,
  scores: ArrayLike<number>,
  threshold = 0.5,
): {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  rocAuc: number;
  averagePrecision: number;
  confusion: number[][];
} {
  const yPred = Array.from(scores as ArrayLike<number>, (s) => (s >= threshold ? 1 : 0));
  const prf = precisionRecallF1(yTrue, yPred, 'binary');
  return {
    accuracy: accuracy(yTrue, yPred),
    ...prf,
    rocAuc: rocAuc(yTrue, scores),
    averagePrecision: averagePrecision(yTrue, scores),
    confusion: confusionMatrix(yTrue, yPred, 2),
  };
}
