/**
 * What the training-data defences share: a model's hidden representations of the training rows, the
 * rows of each class, and the small linear algebra they need (covariance through the GEMM kernel, the
 * leading eigenvectors by orthogonal iteration, seeded k-means++).
 */
import { invalidArgument, type Rng, requireInteger } from '../../../core/index.js';
import { gemm, type Network, runSteps, type Steps } from '../../../ml/index.js';

/** Per-row suspicion scores and flags of a training-data defence, with what it saw in each class. */
export interface PoisonScores {
  method: 'spectral-signatures' | 'activation-clustering';
  /** One score per row: higher is more suspicious (comparable within a class only). */
  scores: Float64Array;
  /** 1 for the rows the defence would remove. */
  flagged: Uint8Array;
  classes: ClassSummary[];
}

export interface ClassSummary {
  class: number;
  rows: number;
  flagged: number;
  /** Spectral signatures: the score at and above which rows are flagged. */
  threshold?: number;
  /** Activation clustering: the two clusters' shares of the class, the silhouette, which one is flagged. */
  clusterShares?: [number, number];
  silhouette?: number;
  flaggedCluster?: number | null;
}

/**
 * The representation the defences look at: the last hidden layer's activations (Tran et al. and Chen
 * et al. both use the penultimate layer); for a model without hidden layers, the preprocessed input.
 * Computed in chunks so a large training set does not hold every layer's activations at once.
 */
export function hiddenRepresentations(
  net: Network,
  x: Float32Array,
  rows: number,
  chunk = 4096,
): { reps: Float32Array; dim: number } {
  return runSteps(hiddenRepresentationSteps(net, x, rows, chunk));
}

/** {@link hiddenRepresentations} as steps, one per chunk (see runSteps / runStepsAsync). */
export function* hiddenRepresentationSteps(
  net: Network,
  x: Float32Array,
  rows: number,
  chunk = 4096,
): Steps<{ reps: Float32Array; dim: number }> {
  requireInteger('rows', rows, 1);
  if (x.length !== rows * net.inputs) throw invalidArgument('x', `${rows} x ${net.inputs} values`, x.length);
  const layer = net.layerCount - 1;
  const dim = net.sizes[layer] as number;
  const reps = new Float32Array(rows * dim);
  for (let s = 0; s < rows; s += chunk) {
    const e = Math.min(rows, s + chunk);
    const acts = net.forward(x.subarray(s * net.inputs, e * net.inputs), e - s).acts[layer] as Float32Array;
    reps.set(acts, s * dim);
    yield;
  }
  return { reps, dim };
}

/** Row indices of each class 0..classes-1. */
export function rowsByClass(y: Int32Array, classes: number): number[][] {
  const out: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < y.length; i++) {
    const c = y[i] as number;
    if (!(c >= 0 && c < classes)) throw invalidArgument(`y[${i}]`, `a class in [0, ${classes})`, c);
    (out[c] as number[]).push(i);
  }
  return out;
}

/** The rows `idx` of `reps`, centred on their mean (float32, `idx.length x dim`). */
export function centredRows(reps: Float32Array, dim: number, idx: readonly number[]): Float32Array {
  const n = idx.length;
  const m = new Float32Array(n * dim);
  const mean = new Float64Array(dim);
  idx.forEach((r, i) => {
    for (let j = 0; j < dim; j++) {
      const v = reps[r * dim + j] as number;
      m[i * dim + j] = v;
      mean[j] = (mean[j] as number) + v;
    }
  });
  for (let j = 0; j < dim; j++) mean[j] = (mean[j] as number) / Math.max(1, n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) m[i * dim + j] = (m[i * dim + j] as number) - (mean[j] as number);
  return m;
}

/** Mᵀ M / n of a centred `n x d` matrix (the covariance), as float64. */
export function covariance(m: Float32Array, n: number, d: number): Float64Array {
  const c = new Float32Array(d * d);
  gemm(true, false, d, d, n, m, m, c);
  return Float64Array.from(c, (v) => v / Math.max(1, n));
}

/**
 * The `k` leading eigenvectors of a symmetric positive semi-definite `d x d` matrix by orthogonal
 * (subspace) iteration with Gram–Schmidt (Golub & Van Loan, Matrix Computations, 4th ed., §8.2.4),
 * with their Rayleigh quotients. Deterministic for a seed.
 */
export function leadingEigenvectors(
  a: Float64Array,
  d: number,
  k: number,
  rng: Rng,
  iterations = 300,
): { vectors: Float64Array[]; values: number[] } {
  k = Math.min(k, d);
  let q: Float64Array[] = Array.from({ length: k }, () =>
    Float64Array.from({ length: d }, () => rng.normal()),
  );
  const orthonormalise = (vs: Float64Array[]): Float64Array[] => {
    const out: Float64Array[] = [];
    for (const v of vs) {
      const w = Float64Array.from(v);
      for (const u of out) {
        let p = 0;
        for (let j = 0; j < d; j++) p += (w[j] as number) * (u[j] as number);
        for (let j = 0; j < d; j++) w[j] = (w[j] as number) - p * (u[j] as number);
      }
      let nrm = 0;
      for (let j = 0; j < d; j++) nrm += (w[j] as number) ** 2;
      nrm = Math.sqrt(nrm);
      if (nrm < 1e-300) {
        // A rank-deficient matrix: any unit vector orthogonal to the others will do.
        w.fill(0);
        w[out.length % d] = 1;
        out.push(w);
      } else out.push(w.map((x) => x / nrm));
    }
    return out;
  };
  const mul = (v: Float64Array): Float64Array => {
    const o = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = 0;
      const row = i * d;
      for (let j = 0; j < d; j++) s += (a[row + j] as number) * (v[j] as number);
      o[i] = s;
    }
    return o;
  };
  q = orthonormalise(q);
  for (let it = 0; it < iterations; it++) {
    const next = orthonormalise(q.map(mul));
    let change = 0;
    for (let t = 0; t < k; t++) {
      let p = 0;
      for (let j = 0; j < d; j++) p += (next[t]?.[j] as number) * (q[t]?.[j] as number);
      change = Math.max(change, 1 - Math.abs(p));
    }
    q = next;
    if (change < 1e-12) break;
  }
  const values = q.map((v) => {
    const av = mul(v);
    let s = 0;
    for (let j = 0; j < d; j++) s += (v[j] as number) * (av[j] as number);
    return s;
  });
  return { vectors: q, values };
}

/**
 * k-means (Lloyd) with k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), best of `inits` runs by
 * inertia. Returns each row's cluster.
 */
export function kMeans(...args: Parameters<typeof kMeansSteps>): Int32Array {
  return runSteps(kMeansSteps(...args));
}

/** {@link kMeans} as steps, one per Lloyd iteration. */
export function* kMeansSteps(
  m: Float64Array,
  n: number,
  d: number,
  k: number,
  rng: Rng,
  inits = 4,
  iterations = 100,
): Steps<Int32Array> {
  let best: Int32Array = new Int32Array(n);
  let bestInertia = Number.POSITIVE_INFINITY;
  const dist2 = (i: number, c: Float64Array, ci: number) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += ((m[i * d + j] as number) - (c[ci * d + j] as number)) ** 2;
    return s;
  };
  for (let run = 0; run < inits; run++) {
    const centres = new Float64Array(k * d);
    const first = rng.int(n);
    for (let j = 0; j < d; j++) centres[j] = m[first * d + j] as number;
    const near = Float64Array.from({ length: n }, (_, i) => dist2(i, centres, 0));
    for (let c = 1; c < k; c++) {
      let total = 0;
      for (let i = 0; i < n; i++) total += near[i] as number;
      let r = rng.nextFloat() * total;
      let pick = n - 1;
      for (let i = 0; i < n; i++) {
        r -= near[i] as number;
        if (r <= 0) {
          pick = i;
          break;
        }
      }
      for (let j = 0; j < d; j++) centres[c * d + j] = m[pick * d + j] as number;
      for (let i = 0; i < n; i++) near[i] = Math.min(near[i] as number, dist2(i, centres, c));
    }
    const assign = new Int32Array(n).fill(-1);
    let inertia = 0;
    for (let it = 0; it < iterations; it++) {
      let moved = 0;
      inertia = 0;
      for (let i = 0; i < n; i++) {
        let bc = 0;
        let bd = Number.POSITIVE_INFINITY;
        for (let c = 0; c < k; c++) {
          const dd = dist2(i, centres, c);
          if (dd < bd) {
            bd = dd;
            bc = c;
          }
        }
        if (assign[i] !== bc) moved++;
        assign[i] = bc;
        inertia += bd;
      }
      yield;
      if (moved === 0) break;
      const counts = new Float64Array(k);
      centres.fill(0);
      for (let i = 0; i < n; i++) {
        const c = assign[i] as number;
        counts[c] = (counts[c] as number) + 1;
        for (let j = 0; j < d; j++)
          centres[c * d + j] = (centres[c * d + j] as number) + (m[i * d + j] as number);
      }
      for (let c = 0; c < k; c++) {
        if (counts[c] === 0) {
          // An empty cluster takes a random row (keeps k clusters).
          const r = rng.int(n);
          for (let j = 0; j < d; j++) centres[c * d + j] = m[r * d + j] as number;
        } else
          for (let j = 0; j < d; j++)
            centres[c * d + j] = (centres[c * d + j] as number) / (counts[c] as number);
      }
    }
    if (inertia < bestInertia) {
      bestInertia = inertia;
      best = assign;
    }
  }
  return best;
}

/**
 * Mean silhouette (Rousseeuw, J. Comput. Appl. Math. 20, 1987) of a clustering, on at most `maxRows`
 * rows chosen by `rng` (the exact score is quadratic in the rows).
 */
export function silhouette(
  m: Float64Array,
  n: number,
  d: number,
  assign: Int32Array,
  k: number,
  rng: Rng,
  maxRows = 1500,
): number {
  let idx: number[] = Array.from({ length: n }, (_, i) => i);
  if (n > maxRows) idx = Array.from(rng.permutation(n).subarray(0, maxRows));
  const counts = new Float64Array(k);
  for (const i of idx) counts[assign[i] as number] = (counts[assign[i] as number] as number) + 1;
  if ([...counts].filter((c) => c > 0).length < 2) return 0;
  let total = 0;
  for (const i of idx) {
    const sums = new Float64Array(k);
    for (const j of idx) {
      if (j === i) continue;
      let s = 0;
      for (let t = 0; t < d; t++) s += ((m[i * d + t] as number) - (m[j * d + t] as number)) ** 2;
      sums[assign[j] as number] = (sums[assign[j] as number] as number) + Math.sqrt(s);
    }
    const own = assign[i] as number;
    if ((counts[own] as number) <= 1) continue; // silhouette 0 for a singleton (Rousseeuw)
    const a = (sums[own] as number) / ((counts[own] as number) - 1);
    let b = Number.POSITIVE_INFINITY;
    for (let c = 0; c < k; c++)
      if (c !== own && (counts[c] as number) > 0)
        b = Math.min(b, (sums[c] as number) / (counts[c] as number));
    total += (b - a) / Math.max(a, b);
  }
  return total / idx.length;
}
