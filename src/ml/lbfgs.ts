/**
 * Full-batch L-BFGS (Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
 * Math. Programming 1989; two-loop recursion as in Nocedal & Wright, Numerical Optimization, Alg. 7.4)
 * with a backtracking Armijo line search, for the smooth convex objectives of logistic regression: the
 * same solver family as scikit-learn's default `lbfgs`, so fits can be compared like for like.
 *
 * The iterate and the curvature pairs are kept in double precision; the loss and gradient come from
 * the network's float32 forward/backward pass, which bounds the reachable precision (~1e-7 relative):
 * the solver stops when the gradient is small, the loss stops decreasing, or the line search can no
 * longer make progress at that precision.
 */
import { BulwarkError, requireInteger, requireNumberIn } from '../core/index.js';
import { dot } from './kernels.js';
import type { Network } from './network.js';
import { checkLabelledData, type LabelledData, resolveClassWeights } from './train.js';
import { EventLoopTurns } from './turns.js';

export interface LbfgsOptions {
  /** L2 penalty (l2/2)·‖W‖² on weights added to the mean loss; scikit-learn's C is 1 / (l2 · n). */
  l2?: number;
  /** Iteration limit (default 200). */
  maxIterations?: number;
  /** Stop when max |gradient| <= this (default 1e-6 on the mean loss). */
  gradientTolerance?: number;
  /** Curvature pairs kept (default 10, as scipy). */
  memory?: number;
  classWeights?: 'balanced' | readonly number[] | null;
  /** Called after every iteration with the loss and the gradient's max-norm. */
  onIteration?: (iteration: number, loss: number, gradMax: number) => void;
}

export interface LbfgsResult {
  iterations: number;
  loss: number;
  gradMax: number;
  /** Why it stopped. */
  reason: LbfgsStop;
}

/** Why {@link minimizeLbfgs} stopped. */
export type LbfgsStop = 'gradient' | 'no-progress' | 'max-iterations';

/** A smooth objective: writes the gradient at `x` into `grad` and returns the value. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

/** Settings of {@link minimizeLbfgs}. */
export interface MinimizeOptions {
  /** Stop when max |gradient| <= this. */
  gradientTolerance: number;
  maxIterations: number;
  /** Curvature pairs kept. */
  memory: number;
  /**
   * Stop ("no progress") after a step whose decrease is at most this times max(1, |f|), once
   * max |gradient| <= `progressGradient` (Infinity: at any gradient). A float32 objective cannot
   * resolve decreases below ~1e-7 relative; a float64 one can go to ~1e-16.
   */
  progressTolerance: number;
  progressGradient: number;
  /** Halvings of the step before the line search gives up. */
  lineSearchSteps: number;
  /** Curvature pairs with sᵀy at or below this are skipped (the implicit Hessian stays positive definite). */
  minCurvature: number;
  onIteration?: (iteration: number, value: number, gradMax: number) => void;
}

/** What {@link minimizeLbfgs} returns. */
export interface MinimizeResult {
  x: Float64Array;
  value: number;
  iterations: number;
  /** max |gradient| at `x`. */
  gradMax: number;
  reason: LbfgsStop;
}

function maxAbs(v: Float64Array): number {
  let m = 0;
  for (const e of v) m = Math.max(m, Math.abs(e));
  return m;
}

/**
 * Minimises `f` from `x0` by L-BFGS (two-loop recursion, Nocedal & Wright Alg. 7.4) with a backtracking
 * Armijo line search (c1 = 1e-4) from the unit step; the first step is scaled by 1 / ‖g‖ as scipy's.
 * Used by {@link fitLbfgs} and by objective perturbation's fallback when Newton's Hessian is not
 * positive definite (src/privacy/models/logistic.ts).
 */
export function minimizeLbfgs(f: Objective, x0: Float64Array, o: MinimizeOptions): MinimizeResult {
  const run = lbfgsIterations(f, x0, o);
  for (;;) {
    const r = run.next();
    if (r.done) return r.value;
  }
}

/**
 * {@link minimizeLbfgs} that gives the event loop a turn between iterations (at most every 50 ms): a
 * full-batch fit on a large file is tens of seconds of synchronous work, during which Ctrl-C/SIGTERM
 * would not be handled. Same iterates, same result.
 */
export async function minimizeLbfgsAsync(
  f: Objective,
  x0: Float64Array,
  o: MinimizeOptions,
): Promise<MinimizeResult> {
  const turns = new EventLoopTurns();
  const run = lbfgsIterations(f, x0, o);
  for (;;) {
    const r = run.next();
    if (r.done) return r.value;
    if (turns.due()) await turns.turn();
  }
}

/** The L-BFGS iterations; the generator yields after each one (and returns the result). */
function* lbfgsIterations(
  f: Objective,
  x0: Float64Array,
  o: MinimizeOptions,
): Generator<void, MinimizeResult, void> {
  const n = x0.length;
  let x: Float64Array = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const alpha = new Float64Array(o.memory);
  let it = 0;
  let reason: LbfgsStop = 'max-iterations';
  for (; it < o.maxIterations; it++) {
    if (maxAbs(g) <= o.gradientTolerance) {
      reason = 'gradient';
      break;
    }
    // Two-loop recursion: d = -H g.
    d.set(g);
    for (let j = S.length - 1; j >= 0; j--) {
      const a = (rho[j] as number) * dot(S[j] as Float64Array, d);
      alpha[j] = a;
      const y = Y[j] as Float64Array;
      for (let i = 0; i < n; i++) d[i] = (d[i] as number) - a * (y[i] as number);
    }
    const yk = Y[Y.length - 1];
    const gamma =
      yk === undefined
        ? 1 / Math.max(1e-12, Math.sqrt(dot(g, g)))
        : dot(S[S.length - 1] as Float64Array, yk) / dot(yk, yk);
    for (let i = 0; i < n; i++) d[i] = (d[i] as number) * gamma;
    for (let j = 0; j < S.length; j++) {
      const b = (rho[j] as number) * dot(Y[j] as Float64Array, d);
      const s = S[j] as Float64Array;
      const a = alpha[j] as number;
      for (let i = 0; i < n; i++) d[i] = (d[i] as number) + (a - b) * (s[i] as number);
    }
    for (let i = 0; i < n; i++) d[i] = -(d[i] as number);
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -(g[i] as number);
      slope = dot(g, d);
    }
    let step = 1;
    let xn: Float64Array | null = null;
    const gn = new Float64Array(n);
    let fn = Number.NaN;
    for (let ls = 0; ls < o.lineSearchSteps; ls++) {
      const xt = new Float64Array(n);
      for (let i = 0; i < n; i++) xt[i] = (x[i] as number) + step * (d[i] as number);
      fn = f(xt, gn);
      if (fn <= fx + 1e-4 * step * slope) {
        xn = xt;
        break;
      }
      step *= 0.5;
    }
    if (xn === null) {
      reason = 'no-progress';
      break;
    }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = (xn[i] as number) - (x[i] as number);
      y[i] = (gn[i] as number) - (g[i] as number);
    }
    const sy = dot(s, y);
    if (sy > o.minCurvature) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > o.memory) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const decrease = fx - fn;
    x = xn;
    g = gn;
    fx = fn;
    const gmax = maxAbs(g);
    o.onIteration?.(it + 1, fx, gmax);
    if (decrease <= o.progressTolerance * Math.max(1, Math.abs(fx)) && gmax <= o.progressGradient) {
      reason = 'no-progress';
      it++;
      break;
    }
    yield;
  }
  return { x, value: fx, iterations: it, gradMax: maxAbs(g), reason };
}

/** Minimises the network's regularised mean cross-entropy on all of `data` at once. */
export function fitLbfgs(net: Network, data: LabelledData, options: LbfgsOptions = {}): LbfgsResult {
  const full = preprocessedOnce(net, data);
  try {
    const p = lbfgsProblem(net, full.data, options);
    return p.finish(minimizeLbfgs(p.objective, p.x0, p.options));
  } finally {
    full.restore();
  }
}

/**
 * {@link fitLbfgs} that gives the event loop a turn between iterations (see {@link minimizeLbfgsAsync}):
 * what `bulwark train --solver lbfgs` runs, so that Ctrl-C/SIGTERM stop it. Same fit.
 */
export async function fitLbfgsAsync(
  net: Network,
  data: LabelledData,
  options: LbfgsOptions = {},
): Promise<LbfgsResult> {
  const full = preprocessedOnce(net, data);
  try {
    const p = lbfgsProblem(net, full.data, options);
    return p.finish(await minimizeLbfgsAsync(p.objective, p.x0, p.options));
  } finally {
    full.restore();
  }
}

/**
 * Full batch: the network's input preprocessing is applied to `data` once rather than at every
 * evaluation, and switched off on the network until `restore()`.
 */
function preprocessedOnce(net: Network, data: LabelledData): { data: LabelledData; restore: () => void } {
  checkLabelledData('training data', data, net.inputs, net.classes);
  const prep = net.preprocessing;
  if (prep === null) return { data, restore: () => {} };
  const x = net.preprocessInputs(data.x);
  net.setPreprocessing(null);
  return { data: { x, y: data.y, rows: data.rows }, restore: () => net.setPreprocessing(prep) };
}

/** The objective, start and settings of a network's L-BFGS fit, and how its result is applied. */
function lbfgsProblem(
  net: Network,
  data: LabelledData,
  options: LbfgsOptions,
): {
  objective: Objective;
  x0: Float64Array;
  options: MinimizeOptions;
  finish: (r: MinimizeResult) => LbfgsResult;
} {
  const l2 = requireNumberIn('l2', options.l2 ?? 0, 0, Number.MAX_VALUE);
  const maxIterations = requireInteger('maxIterations', options.maxIterations ?? 200, 1);
  const gradientTolerance = requireNumberIn(
    'gradientTolerance',
    options.gradientTolerance ?? 1e-6,
    0,
    Number.MAX_VALUE,
  );
  const memory = requireInteger('memory', options.memory ?? 10, 1, 1000);
  const cw = resolveClassWeights(options.classWeights ?? null, data, net.classes);
  const sampleWeights = cw.some((w) => w !== 1) ? Float32Array.from(data.y, (c) => cw[c] as number) : null;

  const n = net.params.length;
  const gradBuf = new Float32Array(n);
  const objective: Objective = (x, grad) => {
    for (let i = 0; i < n; i++) net.params[i] = x[i] as number;
    const { loss, gradient } = net.lossAndGradient(data.x, data.y, data.rows, {
      l2,
      sampleWeights,
      gradientOut: gradBuf,
    });
    if (!Number.isFinite(loss)) {
      throw new BulwarkError('ERR_TRAINING_DIVERGED', `L-BFGS: the loss became ${loss}`);
    }
    grad.set(gradient);
    return loss;
  };
  return {
    objective,
    x0: Float64Array.from(net.params),
    // The loss and gradient come from float32 passes: progress below 1e-12 relative is rounding.
    options: {
      gradientTolerance,
      maxIterations,
      memory,
      progressTolerance: 1e-12,
      progressGradient: Number.POSITIVE_INFINITY,
      lineSearchSteps: 30,
      minCurvature: 1e-12,
      ...(options.onIteration ? { onIteration: options.onIteration } : {}),
    },
    finish: (r) => {
      for (let i = 0; i < n; i++) net.params[i] = r.x[i] as number;
      return { iterations: r.iterations, loss: r.value, gradMax: r.gradMax, reason: r.reason };
    },
  };
}
