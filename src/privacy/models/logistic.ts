/**
 * ε-DP logistic regression by objective perturbation (Chaudhuri, Monteleoni & Sarwate, "Differentially
 * private empirical risk minimization", JMLR 2011, Algorithm 2 and Theorem 9), the method of
 * diffprivlib's `LogisticRegression`, for rows of L2 norm at most R, in sum form:
 *
 *   minimise F(w) = Σ_i log(1 + e^{−y_i wᵀx_i}) + (A/2) ||w||² + bᵀw
 *
 * where b has a uniformly random direction and ||b|| ~ Gamma(d, θ). With c = 1/4 (the bound on the
 * logistic loss's second derivative) and x = cR²/A, the density of the minimiser changes between
 * neighbouring datasets by at most e^{ε' + ε_J}:
 * - add-remove neighbours (the default; the relation DP-SGD and the ledger use): one row's gradient moves
 *   b by at most R (|ℓ'| <= 1), so θ = R/ε'; the Hessian gains one rank-1 PSD term with eigenvalue at most
 *   cR², so ε_J = log(1 + x);
 * - replace-one neighbours (CMS11, diffprivlib): b moves by at most 2R, θ = 2R/ε'; the Hessian changes by
 *   a difference of two rank-1 PSD terms, one eigenvalue in [0, x] and one in [−x, 0], so
 *   ε_J = min(2 log(1 + x), −log(1 − x)) (CMS11's bound and the tighter one for small x).
 * A is the user's penalty raised, when needed, so that ε_J = ε/2 (CMS11's choice of Δ); ε' = ε − ε_J.
 * A never depends on the number of rows. The intercept is a constant feature 1 (so R² = dataNorm² + 1)
 * and is penalised like the weights, which the proof needs.
 *
 * `dataNorm` is a PUBLIC bound chosen without looking at the data (domain knowledge): each row is
 * clipped to it. Computing it from the data, as the article's snippet does, leaks. With public per-feature
 * `bounds`, features are first scaled to [0, 1] and clipped.
 *
 * Differences from diffprivlib 0.6.5 (read in bench/peers): diffprivlib bounds the Jacobian term with
 * c·R instead of c·R² (the derivation in its issue #10), which under-states ε when R > 1 (the Adult
 * set-up has R = sqrt(6)), and leaves the intercept out of the penalty the proof relies on. Multi-class
 * problems are one-vs-rest with ε/K per class (as diffprivlib).
 *
 * Limits: the guarantee assumes the exact minimiser; the Newton solver stops when the Newton decrement
 * falls below 1e-12 (then one full Newton step: the remaining error is at double-precision rounding,
 * far below the noise). The noise is drawn
 * in floating point from the CSPRNG.
 */
import { BulwarkError, invalidArgument, requireInteger } from '../../core/index.js';
import {
  checkLabelledData,
  choleskyLower,
  choleskySolve,
  gemm,
  type LabelledData,
  logisticRegression,
  minimizeLbfgs,
  type Network,
} from '../../ml/index.js';
import type { ComposedEvent, PrivacyEvent } from '../accountants/events.js';
import type { BudgetLedger, SpendReceipt } from '../ledger/ledger.js';
import { type NoiseSource, noiseDetails, noiseOf } from '../mechanisms/noise.js';
import { requireEpsilon } from '../params.js';

/** Second-derivative bound of the logistic loss: ℓ''(z) = σ(z)σ(−z) <= 1/4. */
export const LOGISTIC_CURVATURE = 0.25;

/** Neighbouring datasets: one row added or removed (unbounded DP), or one row replaced (bounded DP, CMS11). */
export type Neighbours = 'add-remove' | 'replace-one';

/** The calibration of objective perturbation for one binary problem (sum form). */
export interface ObjectivePerturbationCalibration {
  /** ε spent on the noise term (ε' in CMS11). */
  epsilonPrime: number;
  /** ε spent on the Jacobian (the strong convexity part). */
  epsilonJacobian: number;
  /** Total L2 penalty A (sum form: Σℓ_i + (A/2)||w||²), the user's plus the added Δ. */
  l2: number;
  /** Scale θ of ||b|| ~ Gamma(d, θ): 2R/ε' (replace-one) or R/ε' (add-remove). */
  noiseScale: number;
}

/**
 * Calibration for rows of norm <= rowNorm, in sum form Σℓ_i(w) + (A/2)||w||² + bᵀw. The Jacobian gets the
 * share `jacobianShare` of ε (CMS11: 1/2) unless the user's penalty `l2` already makes it smaller:
 * - replace-one (CMS11 Thm 9): ε_J = 2 log(1 + cR²/A), ||b|| ~ Gamma(d, 2R/ε'), ε' = ε − ε_J;
 * - add-remove (one rank-1 change, gradient sensitivity R): ε_J = log(1 + cR²/A), ||b|| ~ Gamma(d, R/ε').
 * A never depends on the number of rows, which add-remove neighbours do not share.
 */
export function objectivePerturbationCalibration(o: {
  epsilon: number;
  rowNorm: number;
  l2?: number;
  neighbours?: Neighbours;
  jacobianShare?: number;
  curvature?: number;
}): ObjectivePerturbationCalibration {
  const eps = requireEpsilon('epsilon', o.epsilon);
  const c = o.curvature ?? LOGISTIC_CURVATURE;
  const r2 = o.rowNorm * o.rowNorm;
  const share = o.jacobianShare ?? 0.5;
  if (!(share > 0 && share < 1)) throw invalidArgument('jacobianShare', 'a number in (0, 1)', share);
  const replace = (o.neighbours ?? 'add-remove') === 'replace-one';
  // The penalty A at which the Jacobian term is exactly share·ε, with x = cR²/A. Replace-one: the
  // perturbation of the Hessian has one eigenvalue in [0, x] and one in [−x, 0] (a difference of two
  // rank-1 PSD terms), so its log-determinant is at most −log(1 − x); CMS11 bound it by 2 log(1 + x).
  // Both hold; the smaller is used. Add-remove: a single rank-1 PSD term, log(1 + x).
  const target = share * eps;
  const xMax = replace ? Math.max(Math.expm1(target / 2), -Math.expm1(-target)) : Math.expm1(target);
  const l2 = Math.max(o.l2 ?? 0, (c * r2) / xMax);
  const x = (c * r2) / l2;
  const epsJ = replace ? Math.min(2 * Math.log1p(x), x < 1 ? -Math.log1p(-x) : Infinity) : Math.log1p(x);
  const epsilonPrime = eps - epsJ;
  return {
    epsilonPrime,
    epsilonJacobian: epsJ,
    l2,
    noiseScale: ((replace ? 2 : 1) * o.rowNorm) / epsilonPrime,
  };
}

/** A noise vector with a uniform direction and norm ~ Gamma(d, scale) (d integer: a sum of d exponentials). */
export function sampleObjectiveNoise(d: number, scale: number, noise: NoiseSource): Float64Array {
  const rng = noise.rng;
  const v = new Float64Array(d);
  let sq = 0;
  do {
    sq = 0;
    for (let i = 0; i < d; i++) {
      v[i] = rng.normal();
      sq += (v[i] as number) * (v[i] as number);
    }
  } while (sq === 0);
  let norm = 0;
  for (let i = 0; i < d; i++) norm += rng.exponential();
  norm *= scale;
  const f = norm / Math.sqrt(sq);
  for (let i = 0; i < d; i++) v[i] = (v[i] as number) * f;
  return v;
}

/** Options of {@link fitDpLogisticRegression}. */
export interface DpLogisticRegressionOptions {
  /** Total ε (the model is ε-DP; δ = 0). */
  epsilon: number;
  /** PUBLIC bound on each row's L2 norm (after scaling by `bounds`); rows are clipped to it. */
  dataNorm: number;
  /**
   * Number of classes: PUBLIC, declared by the caller. Taken from the labels, one person with a rare
   * label would change the model's shape outside the DP accounting.
   */
  classes: number;
  /** A, the user's L2 penalty in sum form Σℓ_i + (A/2)||w||² (default 0: the calibration adds what the proof needs). */
  l2?: number;
  /** Neighbouring relation the guarantee is stated for (default `add-remove`, as DP-SGD and the ledger). */
  neighbours?: Neighbours;
  /** Share of ε given to the Jacobian term when the penalty is set by the calibration (default 1/2, CMS11). */
  jacobianShare?: number;
  /** Fit an intercept (default true). */
  fitIntercept?: boolean;
  /** Public per-feature bounds: features are scaled to [0, 1] by them and clipped (carried by the model). */
  bounds?: { lower: ArrayLike<number>; upper: ArrayLike<number> };
  /** Spend ε from this ledger before fitting (refused spends throw and nothing is fitted). */
  budget?: { ledger: BudgetLedger; dataset: string; analyst?: string };
  /** Noise source (default: the CSPRNG). */
  noise?: NoiseSource;
  /** L-BFGS limits (defaults 1e-9 and 1,000). */
  gradientTolerance?: number;
  maxIterations?: number;
}

/** What {@link fitDpLogisticRegression} returns. */
export interface DpLogisticRegressionResult {
  /** A logistic regression network (sigmoid head for 2 classes, softmax over one-vs-rest scores otherwise). */
  model: Network;
  epsilon: number;
  /** The event to account for (ε-DP). */
  event: PrivacyEvent;
  /**
   * Per binary problem: calibration (public) and the optimiser's outcome. `iterations` and
   * `gradientNorm` are computed from the private data and are not covered by ε: diagnostics for the
   * operator, never to be published. The noise drawn is not reported at all: its norm, beside the
   * released weights, identifies a member (the weights fix Σ∇ℓ + b, so the norm tells D from D').
   */
  problems: Array<ObjectivePerturbationCalibration & { iterations: number; gradientNorm: number }>;
  /** The ledger receipt when a budget was given. */
  receipt?: SpendReceipt;
}

/** Scales by public bounds and clips to [0, 1]; clips each row to L2 norm `dataNorm`; appends the intercept column. */
function design(
  data: LabelledData,
  inputs: number,
  dataNorm: number,
  fitIntercept: boolean,
  bounds: { lower: ArrayLike<number>; upper: ArrayLike<number> } | undefined,
): Float64Array {
  const cols = inputs + (fitIntercept ? 1 : 0);
  const X = new Float64Array(data.rows * cols);
  for (let r = 0; r < data.rows; r++) {
    let sq = 0;
    const o = r * cols;
    for (let j = 0; j < inputs; j++) {
      let v = data.x[r * inputs + j] as number;
      if (bounds) {
        const lo = bounds.lower[j] as number;
        const hi = bounds.upper[j] as number;
        v = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
      }
      X[o + j] = v;
      sq += v * v;
    }
    const norm = Math.sqrt(sq);
    if (norm > dataNorm) {
      const f = dataNorm / norm;
      for (let j = 0; j < inputs; j++) X[o + j] = (X[o + j] as number) * f;
    }
    if (fitIntercept) X[o + inputs] = 1;
  }
  return X;
}

/**
 * What an objective-perturbation fit spends, as the ledger's events: one ε-DP fit per one-vs-rest
 * problem (one for two classes), at ε / problems each. The spend and a caller's preview both use it.
 */
export function objectivePerturbationEvents(epsilon: number, classes: number): ComposedEvent[] {
  const problems = classes === 2 ? 1 : classes;
  return [{ event: { kind: 'pure', epsilon: epsilon / problems }, count: problems }];
}

/**
 * Fits an ε-DP logistic regression by objective perturbation (see the module documentation).
 *
 * @example
 * ```ts
 * const { model } = fitDpLogisticRegression(train, { epsilon: 1, dataNorm: Math.sqrt(5), bounds });
 * accuracy(test.y, model.predict(test.x, test.rows));
 * ```
 */
export async function fitDpLogisticRegression(
  data: LabelledData,
  o: DpLogisticRegressionOptions,
): Promise<DpLogisticRegressionResult> {
  const epsilon = requireEpsilon('epsilon', o.epsilon);
  if (typeof o.dataNorm !== 'number' || !Number.isFinite(o.dataNorm) || o.dataNorm <= 0) {
    throw invalidArgument(
      'dataNorm',
      'a public bound on the rows’ L2 norm (a finite number > 0), never computed from the data',
      o.dataNorm,
    );
  }
  const l2 = o.l2 ?? 0;
  if (typeof l2 !== 'number' || !Number.isFinite(l2) || l2 < 0)
    throw invalidArgument('l2', 'a finite number >= 0', l2);
  const neighbours = o.neighbours ?? 'add-remove';
  if (neighbours !== 'add-remove' && neighbours !== 'replace-one')
    throw invalidArgument('neighbours', 'add-remove or replace-one', neighbours);
  if (typeof data !== 'object' || data === null || !(data.x instanceof Float32Array))
    throw invalidArgument('data', 'labelled data { x, y, rows }', data);
  const inputs = data.rows > 0 ? data.x.length / data.rows : 0;
  if (!Number.isInteger(inputs) || inputs < 1)
    throw invalidArgument('data.x', 'rows x features values', data.x.length);
  if (o.classes === undefined)
    throw new BulwarkError(
      'ERR_DP_UNACCOUNTED',
      'classes: the number of classes must be declared (public); derived from the labels it would reveal them outside the DP accounting',
    );
  const classes = requireInteger('classes', o.classes, 2);
  checkLabelledData('training data', data, inputs, classes);
  const fitIntercept = o.fitIntercept ?? true;
  if (o.bounds) {
    for (let j = 0; j < inputs; j++) {
      const lo = o.bounds.lower[j];
      const hi = o.bounds.upper[j];
      if (
        typeof lo !== 'number' ||
        typeof hi !== 'number' ||
        !Number.isFinite(lo) ||
        !Number.isFinite(hi) ||
        !(hi > lo)
      )
        throw invalidArgument(`bounds[${j}]`, 'finite lower < upper', `${lo}..${hi}`);
    }
  }
  const noise = noiseOf(o.noise);
  const tol = o.gradientTolerance ?? 1e-9;
  const maxIterations = o.maxIterations ?? 1000;

  // Spend before anything data-dependent is computed.
  let receipt: SpendReceipt | undefined;
  if (o.budget) {
    receipt = await o.budget.ledger.spend({
      dataset: o.budget.dataset,
      ...(o.budget.analyst === undefined ? {} : { analyst: o.budget.analyst }),
      epsilon,
      delta: 0,
      operation: 'train.dp-logistic-regression',
      details: {
        mechanism: 'objective-perturbation',
        dataNorm: o.dataNorm,
        classes,
        neighbours,
        ...noiseDetails(o.noise),
      },
      events: objectivePerturbationEvents(epsilon, classes),
    });
  }

  const X = design(data, inputs, o.dataNorm, fitIntercept, o.bounds);
  const d = inputs + (fitIntercept ? 1 : 0);
  const n = data.rows;
  const rowNorm = Math.sqrt(o.dataNorm * o.dataNorm + (fitIntercept ? 1 : 0));
  const problems = classes === 2 ? [1] : Array.from({ length: classes }, (_, k) => k);
  const epsEach = epsilon / problems.length;
  const weights: Float64Array[] = [];
  const report: DpLogisticRegressionResult['problems'] = [];
  const ys = new Float64Array(n);
  for (const pos of problems) {
    for (let i = 0; i < n; i++) ys[i] = data.y[i] === pos ? 1 : -1;
    const cal = objectivePerturbationCalibration({
      epsilon: epsEach,
      rowNorm,
      l2,
      neighbours,
      ...(o.jacobianShare === undefined ? {} : { jacobianShare: o.jacobianShare }),
    });
    const b = sampleObjectiveNoise(d, cal.noiseScale, noise);
    // The objective divided by n (same minimiser, better scaled): (1/n)Σℓ + (A/2n)||w||² + bᵀw/n.
    const res = minimisePerturbedLogistic(X, ys, n, d, cal.l2 / n, b, tol, maxIterations);
    if (!res.x.every(Number.isFinite)) {
      throw new BulwarkError(
        'ERR_TRAINING_DIVERGED',
        'objective perturbation: the optimiser produced non-finite weights',
      );
    }
    weights.push(res.x);
    report.push({
      ...cal,
      iterations: res.iterations,
      gradientNorm: res.gradientNorm,
    });
  }

  const model = logisticRegression({ inputs, classes });
  const W = model.weights(0);
  const B = model.bias(0);
  const outs = model.outputs;
  weights.forEach((w, k) => {
    for (let j = 0; j < inputs; j++) W[j * outs + k] = w[j] as number;
    B[k] = fitIntercept ? (w[inputs] as number) : 0;
  });
  if (o.bounds) {
    const mul = new Float32Array(inputs);
    const add = new Float32Array(inputs);
    for (let j = 0; j < inputs; j++) {
      const lo = o.bounds.lower[j] as number;
      const hi = o.bounds.upper[j] as number;
      mul[j] = 1 / (hi - lo);
      add[j] = -lo / (hi - lo);
    }
    model.setPreprocessing({ kind: 'mul-add', mul, add });
  }
  const out: DpLogisticRegressionResult = {
    model,
    epsilon,
    event: { kind: 'pure', epsilon },
    problems: report,
  };
  if (receipt) out.receipt = receipt;
  return out;
}

/**
 * Minimises (1/n) Σ log(1 + e^{−y_i wᵀx_i}) + (reg/2)||w||² + bᵀw/n by damped Newton steps (Cholesky
 * solves; Armijo backtracking), which converge quadratically on this strongly convex objective: 6-10
 * iterations. Gradients are in double precision; mostly-zero (one-hot) designs are kept as compressed
 * rows; the dense Hessian XᵀDX goes through the ML core's GEMM (float32) when d is large, which changes
 * only the step, not the minimiser. L-BFGS is the fallback if
 * a Hessian is not numerically positive definite.
 */
function minimisePerturbedLogistic(
  X: Float64Array,
  ys: Float64Array,
  n: number,
  d: number,
  reg: number,
  b: Float64Array,
  tol: number,
  maxIterations: number,
): { x: Float64Array; iterations: number; gradientNorm: number } {
  const sig = new Float64Array(n); // σ(−m_i), then the curvature σ(m)σ(−m)
  // One-hot designs are mostly zeros: keep the non-zeros by row (CSR) when under half are set.
  let nnz = 0;
  for (let k = 0; k < X.length; k++) if (X[k] !== 0) nnz++;
  const sparse = nnz < 0.5 * X.length;
  const rowPtr = new Int32Array(sparse ? n + 1 : 0);
  const cols = new Int32Array(sparse ? nnz : 0);
  const vals = new Float64Array(sparse ? nnz : 0);
  if (sparse) {
    let p = 0;
    for (let i = 0, o = 0; i < n; i++, o += d) {
      rowPtr[i] = p;
      for (let j = 0; j < d; j++) {
        const v = X[o + j] as number;
        if (v !== 0) {
          cols[p] = j;
          vals[p++] = v;
        }
      }
    }
    rowPtr[n] = p;
  }
  const evaluate = (w: Float64Array, grad: Float64Array | null): number => {
    let loss = 0;
    if (grad) grad.fill(0);
    for (let i = 0, o = 0; i < n; i++, o += d) {
      let s = 0;
      if (sparse)
        for (let p = rowPtr[i] as number; p < (rowPtr[i + 1] as number); p++)
          s += (vals[p] as number) * (w[cols[p] as number] as number);
      else for (let j = 0; j < d; j++) s += (X[o + j] as number) * (w[j] as number);
      const y = ys[i] as number;
      const m = y * s;
      // softplus(−m) = log(1 + e^{−m}) and σ(−m) = 1/(1 + e^{m}) from one exp(−|m|).
      const e = Math.exp(-Math.abs(m));
      let sg: number;
      if (m >= 0) {
        loss += Math.log1p(e);
        sg = e / (1 + e);
      } else {
        loss += -m + Math.log1p(e);
        sg = 1 / (1 + e);
      }
      sig[i] = sg;
      if (grad) {
        const coef = -y * sg; // dℓ/dw = −y σ(−m) x
        if (sparse)
          for (let p = rowPtr[i] as number; p < (rowPtr[i + 1] as number); p++) {
            const j = cols[p] as number;
            grad[j] = (grad[j] as number) + coef * (vals[p] as number);
          }
        else for (let j = 0; j < d; j++) grad[j] = (grad[j] as number) + coef * (X[o + j] as number);
      }
    }
    let value = loss / n;
    for (let j = 0; j < d; j++) {
      const wj = w[j] as number;
      if (grad) grad[j] = (grad[j] as number) / n + reg * wj + (b[j] as number) / n;
      value += 0.5 * reg * wj * wj + ((b[j] as number) * wj) / n;
    }
    return value;
  };
  let w = new Float64Array(d);
  let g = new Float64Array(d);
  let f = evaluate(w, g);
  const H = new Float64Array(d * d);
  const useGemm = d > 24 && !sparse;
  const A32 = useGemm ? new Float32Array(n * d) : null;
  const H32 = useGemm ? new Float32Array(d * d) : null;
  let it = 0;
  const gmax = () => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  for (; it < maxIterations && gmax() > tol; it++) {
    // H = (1/n) Xᵀ diag(σ(1 − σ)) X + reg I
    H.fill(0);
    if (sparse) {
      // Lower triangle from each row's non-zero pairs (columns are increasing within a row).
      for (let i = 0; i < n; i++) {
        const sg = sig[i] as number;
        const c = sg * (1 - sg);
        const end = rowPtr[i + 1] as number;
        for (let p = rowPtr[i] as number; p < end; p++) {
          const j = cols[p] as number;
          const xj = c * (vals[p] as number);
          for (let q = rowPtr[i] as number; q <= p; q++) {
            const at = j * d + (cols[q] as number);
            H[at] = (H[at] as number) + xj * (vals[q] as number);
          }
        }
      }
      for (let k = 0; k < d * d; k++) H[k] = (H[k] as number) / n;
    } else if (A32 && H32) {
      for (let i = 0, o = 0; i < n; i++, o += d) {
        const sg = sig[i] as number;
        const r = Math.sqrt(sg * (1 - sg));
        for (let j = 0; j < d; j++) A32[o + j] = r * (X[o + j] as number);
      }
      gemm(true, false, d, d, n, A32, A32, H32);
      for (let k = 0; k < d * d; k++) H[k] = (H32[k] as number) / n;
    } else {
      for (let i = 0, o = 0; i < n; i++, o += d) {
        const sg = sig[i] as number;
        const c = sg * (1 - sg);
        for (let j = 0; j < d; j++) {
          const xj = c * (X[o + j] as number);
          for (let k = 0; k <= j; k++) H[j * d + k] = (H[j * d + k] as number) + xj * (X[o + k] as number);
        }
      }
      for (let k = 0; k < d * d; k++) H[k] = (H[k] as number) / n;
    }
    for (let j = 0; j < d; j++) H[j * d + j] = (H[j * d + j] as number) + reg;
    const factor = choleskyLower(H, d);
    if (!('l' in factor)) {
      // A float64 objective that objective perturbation needs minimised exactly: progress is judged
      // to 1e-16 relative, and only once the gradient is near its tolerance.
      const r = minimizeLbfgs(evaluateBoth(evaluate), w, {
        gradientTolerance: tol,
        maxIterations,
        memory: 10,
        progressTolerance: 1e-16,
        progressGradient: Math.sqrt(tol),
        lineSearchSteps: 60,
        minCurvature: 1e-300,
      });
      return { x: r.x, iterations: it + r.iterations, gradientNorm: r.gradMax };
    }
    const step = Float64Array.from(g);
    choleskySolve(factor.l, d, step); // H⁻¹ g
    let slope = 0;
    for (let j = 0; j < d; j++) slope -= (g[j] as number) * (step[j] as number);
    // Newton decrement λ² = gᵀH⁻¹g: f − f* ≈ λ²/2. Once it is at the level where a sum of n losses
    // cannot resolve a decrease any more, the line search is meaningless: take the full Newton step
    // (quadratic convergence makes it exact to rounding) and stop.
    if (-slope <= 1e-12 * Math.max(1, Math.abs(f))) {
      for (let j = 0; j < d; j++) w[j] = (w[j] as number) - (step[j] as number);
      f = evaluate(w, g);
      it++;
      break;
    }
    let t = 1;
    const wn = new Float64Array(d);
    const gn = new Float64Array(d);
    let fn = Number.NaN;
    for (let k = 0; k < 50; k++) {
      for (let j = 0; j < d; j++) wn[j] = (w[j] as number) - t * (step[j] as number);
      fn = evaluate(wn, gn);
      if (fn <= f + 1e-4 * t * slope) break;
      t *= 0.5;
    }
    if (!(fn <= f)) {
      evaluate(w, g); // restore σ for the current point
      break; // no further decrease at machine precision
    }
    f = fn;
    w = wn;
    g = gn;
  }
  return { x: w, iterations: it, gradientNorm: gmax() };
}

function evaluateBoth(
  evaluate: (w: Float64Array, grad: Float64Array | null) => number,
): (w: Float64Array, grad: Float64Array) => number {
  return (w, grad) => evaluate(w, grad);
}
