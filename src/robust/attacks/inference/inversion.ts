/**
 * Model inversion as attribute inference (Fredrikson et al., "Privacy in pharmacogenetics: an
 * end-to-end case study of personalized warfarin dosing", USENIX Security 2014): an attacker who knows a
 * person's other attributes and the model's output for them (here the true label, which the attacker
 * observed) recovers a sensitive attribute by trying each candidate value and keeping the one that makes
 * the observed output most likely under the model, weighted by the value's marginal prior:
 *
 *   v* = argmax_v  p_model(y | x with attribute = v) · prior(v)
 *
 * The baseline ignores the model and guesses from the prior alone (the most common value), so the
 * model's leak is the accuracy above that baseline. A differentially private model bounds how much one
 * person's record can shape p_model, and so how much the attack gains (it cannot remove what the
 * population's correlations reveal — the paper's point about DP's cost in utility).
 */
import { BulwarkError, invalidArgument, requireInteger } from '../../../core/index.js';
import { argmaxRows, type ProbabilityModel } from '../../model.js';

export interface AttributeInferenceOptions {
  /** Encoded feature columns of the sensitive attribute (one column for a number; the one-hot group for a category). */
  columns: readonly number[];
  /** Encoded values of each candidate, `candidates x columns.length` (e.g. the one-hot rows). */
  candidates: readonly (readonly number[])[];
  /** Marginal prior of each candidate (the attacker's background knowledge); normalised here. */
  prior: readonly number[];
  /** Display names of the candidates. */
  names?: readonly string[];
  /**
   * Fredrikson et al.'s likelihood: `performance[y][p]` = Pr[true label y | the model predicts p] (the
   * model's published confusion statistics). Given, a candidate's likelihood is
   * performance[y][argmax f(x_v)]; absent, it is the model's own probability p_model(y | x_v).
   */
  performance?: readonly (readonly number[])[];
}

export interface AttributeInferenceResult {
  rows: number;
  /** Share of rows whose attribute the attack recovers. */
  accuracy: number;
  /** Share the prior-only guess (the most common value) recovers. */
  baselineAccuracy: number;
  /** accuracy - baselineAccuracy. */
  advantage: number;
  /** Per candidate: how often it is the truth and how often the attack recovers it. */
  perValue: { name: string; rows: number; recovered: number }[];
  /** The attack's guess per row (candidate index). */
  guesses: Int32Array;
}

/**
 * Runs the attack on encoded records `x` (`rows x inputs`) whose true attribute is `truth` (candidate
 * indices) and whose observed labels are `y`. The sensitive columns' values in `x` are ignored (each
 * candidate overwrites them).
 */
export async function attributeInference(
  model: ProbabilityModel,
  x: Float32Array,
  y: Int32Array,
  truth: Int32Array,
  o: AttributeInferenceOptions,
): Promise<AttributeInferenceResult> {
  const d = model.inputs;
  const rows = requireInteger('rows (y.length)', y.length, 1);
  if (x.length !== rows * d) throw invalidArgument('x', `${rows} x ${d} values`, x.length);
  if (truth.length !== rows) throw invalidArgument('truth', `${rows} values`, truth.length);
  const k = o.candidates.length;
  if (k < 2) throw invalidArgument('candidates', 'two or more', k);
  // Checked before any query: a label outside [0, classes) read another row's probability.
  checkLabels('y', y, model.classes);
  for (let r = 0; r < rows; r++) requireInteger(`truth[${r}]`, truth[r], 0, k - 1);
  o.candidates.forEach((c, i) => {
    c.forEach((v, j) => {
      if (!Number.isFinite(v)) throw invalidArgument(`candidates[${i}][${j}]`, 'a finite number', v);
    });
  });
  if (o.prior.length !== k) throw invalidArgument('prior', `${k} values`, o.prior.length);
  o.columns.forEach((c, i) => {
    requireInteger(`columns[${i}]`, c, 0, d - 1);
  });
  o.candidates.forEach((c, i) => {
    if (c.length !== o.columns.length)
      throw invalidArgument(`candidates[${i}]`, `${o.columns.length} values`, c.length);
  });
  const priorSum = o.prior.reduce((a, b) => a + b, 0);
  if (!(priorSum > 0) || o.prior.some((p) => !(p >= 0)))
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      'prior: expected non-negative weights with a positive sum',
    );
  const prior = o.prior.map((p) => p / priorSum);
  const best = new Float64Array(rows).fill(Number.NEGATIVE_INFINITY);
  const guesses = new Int32Array(rows);
  for (let v = 0; v < k; v++) {
    const xv = Float32Array.from(x);
    const enc = o.candidates[v] as readonly number[];
    for (let r = 0; r < rows; r++)
      o.columns.forEach((c, j) => {
        xv[r * d + c] = enc[j] as number;
      });
    const p = await model.predictProba(xv, rows);
    const lp = Math.log(Math.max(prior[v] as number, 1e-300));
    const pred = o.performance ? argmaxRows(p, rows, model.classes) : null;
    for (let r = 0; r < rows; r++) {
      const like = pred
        ? (o.performance?.[y[r] as number]?.[pred[r] as number] ?? 0)
        : (p[r * model.classes + (y[r] as number)] as number);
      const s = Math.log(Math.max(like, 1e-300)) + lp;
      if (s > (best[r] as number)) {
        best[r] = s;
        guesses[r] = v;
      }
    }
  }
  let majority = 0;
  for (let v = 1; v < k; v++) if ((prior[v] as number) > (prior[majority] as number)) majority = v;
  let hit = 0;
  let base = 0;
  const perValue = Array.from({ length: k }, (_, v) => ({
    name: o.names?.[v] ?? String(v),
    rows: 0,
    recovered: 0,
  }));
  for (let r = 0; r < rows; r++) {
    const t = truth[r] as number;
    const pv = perValue[t] as { rows: number; recovered: number };
    pv.rows++;
    if (guesses[r] === t) {
      hit++;
      pv.recovered++;
    }
    if (t === majority) base++;
  }
  const accuracy = rows === 0 ? Number.NaN : hit / rows;
  const baselineAccuracy = rows === 0 ? Number.NaN : base / rows;
  return { rows, accuracy, baselineAccuracy, advantage: accuracy - baselineAccuracy, perValue, guesses };
}

function checkLabels(name: string, y: ArrayLike<number>, classes: number): void {
  for (let r = 0; r < y.length; r++) requireInteger(`${name}[${r}]`, y[r], 0, classes - 1);
}

/**
 * The performance statistics Fredrikson et al.'s attacker is assumed to know: Pr[true label y | the
 * model predicts p], estimated on labelled rows (`performance[y][p]`; columns with no prediction are
 * uniform).
 */
export async function modelPerformance(
  model: ProbabilityModel,
  x: Float32Array,
  y: Int32Array,
): Promise<number[][]> {
  const k = model.classes;
  requireInteger('rows (y.length)', y.length, 1);
  if (x.length !== y.length * model.inputs)
    throw invalidArgument('x', `${y.length} x ${model.inputs} values`, x.length);
  // A label outside [0, classes) was a TypeError from inside the counting loop.
  checkLabels('y', y, k);
  const pred = argmaxRows(await model.predictProba(x, y.length), y.length, k);
  const counts = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < y.length; i++) (counts[y[i] as number] as number[])[pred[i] as number]! += 1;
  const out = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let p = 0; p < k; p++) {
    let col = 0;
    for (let t = 0; t < k; t++) col += (counts[t] as number[])[p] as number;
    for (let t = 0; t < k; t++)
      (out[t] as number[])[p] = col === 0 ? 1 / k : ((counts[t] as number[])[p] as number) / col;
  }
  return out;
}
