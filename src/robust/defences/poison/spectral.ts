/**
 * Spectral signatures (Tran, Li & Madry, "Spectral signatures in backdoor attacks", NeurIPS 2018): in
 * each class, poisoned rows leave a trace in the covariance of the learned representations that is
 * strong enough to show along the top singular vector. Per class: centre the hidden representations
 * R (n x d), take the top right singular vector v of the centred matrix (the leading eigenvector of
 * its covariance), score each row by its squared projection ((r_i - mean) · v)², and remove the
 * 1.5 x eps x n highest-scoring rows, eps being the expected poison fraction (the paper's Algorithm 1;
 * 1.5 is its factor, and ART's `eps_multiplier`).
 */
import { type Rng, requireInteger, requireNumberIn, requirePositive, rngOf } from '../../../core/index.js';
import { runSteps, type Steps } from '../../../ml/index.js';
import {
  type ClassSummary,
  centredRows,
  covariance,
  leadingEigenvectors,
  type PoisonScores,
  rowsByClass,
} from './common.js';

export interface SpectralOptions {
  /** The expected share of poisoned rows, eps (the defender's guess: the defence's one parameter). */
  expectedPoisonFraction: number;
  /** Rows removed per class: removalFactor x eps x class rows (default 1.5, Tran et al.). */
  removalFactor?: number;
  /** Classes with fewer rows are left alone (default 10: no covariance worth the name). */
  minClassRows?: number;
  rng?: Rng | number;
}

/** Scores and flags rows by their spectral signature, per class, on representations `reps` (`rows x dim`). */
export function spectralSignatures(
  reps: Float32Array,
  dim: number,
  y: Int32Array,
  classes: number,
  o: SpectralOptions,
): PoisonScores {
  return runSteps(spectralSignatureSteps(reps, dim, y, classes, o));
}

/** {@link spectralSignatures} as steps, a few per class (see runSteps / runStepsAsync). */
export function* spectralSignatureSteps(
  reps: Float32Array,
  dim: number,
  y: Int32Array,
  classes: number,
  o: SpectralOptions,
): Steps<PoisonScores> {
  const eps = requireNumberIn('expectedPoisonFraction', o.expectedPoisonFraction, 0, 0.5);
  const factor = requirePositive('removalFactor', o.removalFactor ?? 1.5);
  const minRows = requireInteger('minClassRows', o.minClassRows ?? 10, 2);
  requireInteger('dim', dim, 1);
  const n = y.length;
  requireInteger('rows', reps.length / dim, n, n);
  const rng = rngOf(o.rng);
  const scores = new Float64Array(n);
  const flagged = new Uint8Array(n);
  const summaries: ClassSummary[] = [];
  for (const [c, idx] of rowsByClass(y, classes).entries()) {
    if (idx.length < minRows) {
      summaries.push({ class: c, rows: idx.length, flagged: 0 });
      continue;
    }
    const m = centredRows(reps, dim, idx);
    yield;
    const cov = covariance(m, idx.length, dim);
    yield;
    const { vectors } = leadingEigenvectors(cov, dim, 1, rng);
    yield;
    const v = vectors[0] as Float64Array;
    const s = idx.map((_, i) => {
      let p = 0;
      for (let j = 0; j < dim; j++) p += (m[i * dim + j] as number) * (v[j] as number);
      return p * p;
    });
    idx.forEach((r, i) => {
      scores[r] = s[i] as number;
    });
    yield;
    const remove = Math.min(idx.length, Math.round(factor * eps * idx.length));
    // Highest scores first; ties by row index, so the choice is deterministic.
    const order = idx.map((_, i) => i).sort((a, b) => (s[b] as number) - (s[a] as number) || a - b);
    for (let t = 0; t < remove; t++) flagged[idx[order[t] as number] as number] = 1;
    summaries.push({
      class: c,
      rows: idx.length,
      flagged: remove,
      ...(remove > 0 ? { threshold: s[order[remove - 1] as number] as number } : {}),
    });
    yield;
  }
  return { method: 'spectral-signatures', scores, flagged, classes: summaries };
}
