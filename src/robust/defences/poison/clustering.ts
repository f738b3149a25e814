/**
 * Activation clustering (Chen et al., "Detecting backdoor attacks on deep neural networks by
 * activation clustering", AAAI SafeAI workshop 2019, arXiv:1811.03728): rows the model assigns to a
 * class for the backdoor's reason (the trigger) activate the last hidden layer differently from rows of
 * that class proper. Per class: reduce the activations to ~10 dimensions (the paper uses ICA; we use PCA,
 * which the paper reports works too and ART offers — deterministic and cheaper), split them with
 * 2-means, and flag the smaller cluster when it is small enough (`relative-size`: under 35 % of the
 * class, the paper's and ART's threshold) and, with `silhouette`, only when the two clusters are also
 * well separated (mean silhouette above 0.1; ART's `silhouette-scores` analysis). A clean class tends to
 * split into halves of similar size, or into clusters with a low silhouette.
 *
 * A row's score is 1 minus the share of the class in its cluster (a row in a 5 % cluster scores 0.95),
 * so the rows of small clusters rank first whichever cluster is flagged.
 */
import { type Rng, requireInteger, requireNumberIn, requireOneOf, rngOf } from '../../../core/index.js';
import { runSteps, type Steps } from '../../../ml/index.js';
import {
  type ClassSummary,
  centredRows,
  covariance,
  kMeansSteps,
  leadingEigenvectors,
  type PoisonScores,
  rowsByClass,
  silhouette,
} from './common.js';

export const CLUSTER_ANALYSES = ['relative-size', 'silhouette'] as const;
export type ClusterAnalysis = (typeof CLUSTER_ANALYSES)[number];

export interface ActivationClusteringOptions {
  /** Dimensions kept by PCA (default 10, Chen et al.). */
  dims?: number;
  /** Default `silhouette`. */
  analysis?: ClusterAnalysis;
  /** A cluster under this share of its class is suspicious (default 0.35). */
  sizeThreshold?: number;
  /** `silhouette`: the clustering must score above this (default 0.1). */
  silhouetteThreshold?: number;
  minClassRows?: number;
  rng?: Rng | number;
}

/** Clusters each class's representations `reps` (`rows x dim`) and flags the suspicious cluster's rows. */
export function activationClustering(
  reps: Float32Array,
  dim: number,
  y: Int32Array,
  classes: number,
  o: ActivationClusteringOptions = {},
): PoisonScores {
  return runSteps(activationClusteringSteps(reps, dim, y, classes, o));
}

/**
 * {@link activationClustering} as steps: per class, its phases and each k-means iteration (see
 * runSteps / runStepsAsync).
 */
export function* activationClusteringSteps(
  reps: Float32Array,
  dim: number,
  y: Int32Array,
  classes: number,
  o: ActivationClusteringOptions = {},
): Steps<PoisonScores> {
  const dims = requireInteger('dims', o.dims ?? 10, 1, 1000);
  const analysis = requireOneOf('analysis', o.analysis ?? 'silhouette', CLUSTER_ANALYSES);
  const sizeThreshold = requireNumberIn('sizeThreshold', o.sizeThreshold ?? 0.35, 0, 0.5);
  const silThreshold = requireNumberIn('silhouetteThreshold', o.silhouetteThreshold ?? 0.1, -1, 1);
  const minRows = requireInteger('minClassRows', o.minClassRows ?? 10, 4);
  const n = y.length;
  requireInteger('rows', reps.length / dim, n, n);
  const rng = rngOf(o.rng);
  const scores = new Float64Array(n);
  const flagged = new Uint8Array(n);
  const summaries: ClassSummary[] = [];
  for (const [c, idx] of rowsByClass(y, classes).entries()) {
    const nc = idx.length;
    if (nc < minRows) {
      summaries.push({ class: c, rows: nc, flagged: 0 });
      continue;
    }
    const m = centredRows(reps, dim, idx);
    yield;
    const k = Math.min(dims, dim);
    const cov = covariance(m, nc, dim);
    yield;
    const { vectors } = leadingEigenvectors(cov, dim, k, rng, 100);
    yield;
    const z = new Float64Array(nc * k);
    for (let i = 0; i < nc; i++) {
      for (let t = 0; t < k; t++) {
        let p = 0;
        const v = vectors[t] as Float64Array;
        for (let j = 0; j < dim; j++) p += (m[i * dim + j] as number) * (v[j] as number);
        z[i * k + t] = p;
      }
      if (i % 8192 === 8191) yield;
    }
    yield;
    const assign = yield* kMeansSteps(z, nc, k, 2, rng);
    let c1 = 0;
    for (let i = 0; i < nc; i++) c1 += assign[i] as number;
    const shares: [number, number] = [(nc - c1) / nc, c1 / nc];
    const small = shares[0] <= shares[1] ? 0 : 1;
    const sil = silhouette(z, nc, k, assign, 2, rng);
    yield;
    const suspicious = shares[small] < sizeThreshold && (analysis === 'relative-size' || sil > silThreshold);
    let count = 0;
    idx.forEach((r, i) => {
      const a = assign[i] as number;
      scores[r] = 1 - shares[a as 0 | 1];
      if (suspicious && a === small) {
        flagged[r] = 1;
        count++;
      }
    });
    summaries.push({
      class: c,
      rows: nc,
      flagged: count,
      clusterShares: shares,
      silhouette: sil,
      flaggedCluster: suspicious ? small : null,
    });
  }
  return { method: 'activation-clustering', scores, flagged, classes: summaries };
}

/** Precision and recall of flagged rows against the truly poisoned ones (evaluation, where the truth is known). */
export function detectionQuality(
  flagged: Uint8Array,
  poisoned: ArrayLike<number>,
): { precision: number; recall: number; flagged: number } {
  const truth = new Uint8Array(flagged.length);
  for (let i = 0; i < poisoned.length; i++) truth[poisoned[i] as number] = 1;
  let tp = 0;
  let f = 0;
  for (let i = 0; i < flagged.length; i++) {
    if (flagged[i]) {
      f++;
      if (truth[i]) tp++;
    }
  }
  return {
    precision: f === 0 ? Number.NaN : tp / f,
    recall: poisoned.length === 0 ? Number.NaN : tp / poisoned.length,
    flagged: f,
  };
}
