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
import type { Network } from './network.js';
import { checkLabelledData, type LabelledData, resolveClassWeights } from './train.js';

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
  reason: 'gradient' | 'no-progress' | 'max-iterations';
}

/** Minimises the network's regularised mean cross-entropy on all of `data` at once. */
export function fitLbfgs(net: Network, data: LabelledData, options: LbfgsOptions = {}): LbfgsResult {
  checkLabelledData('training data', data, net.inputs, net.classes);
  // Full batch: apply the input preprocessing once rather than at every evaluation.
  const prep = net.preprocessing;
  if (prep === null) return lbfgsCore(net, data, options);
  const x = net.preprocessInputs(data.x);
  net.setPreprocessing(null);
  try {
    return lbfgsCore(net, { x, y: data.y, rows: data.rows }, options);
  } finally {
    net.setPreprocessing(prep);
  }
}

function lbfgsCore(net: Network, data: LabelledData, options: LbfgsOptions): LbfgsResult {
  const l2 = requireNumberIn('l2', options.l2 ?? 0, 0, Number.MAX_VALUE);
  const maxIt = requireInteger('maxIterations', options.maxIterations ?? 200, 1);
  const gtol = requireNumberIn('gradientTolerance', options.gradientTolerance ?? 1e-6, 0, Number.MAX_VALUE);
  const mem = requireInteger('memory', options.memory ?? 10, 1, 1000);
  const cw = resolveClassWeights(options.classWeights ?? null, data, net.classes);
  const sampleWeights = cw.some((w) => w !== 1) ? Float32Array.from(data.y, (c) => cw[c] as number) : null;

  const n = net.params.length;
  const gradBuf = new Float32Array(n);
  const evaluate = (x: Float64Array): { f: number; g: Float64Array } => {
    for (let i = 0; i < n; i++) net.params[i] = x[i] as number;
    const { loss, gradient } = net.lossAndGradient(data.x, data.y, data.rows, {
      l2,
      sampleWeights,
      gradientOut: gradBuf,
    });
    if (!Number.isFinite(loss)) {
      throw new BulwarkError('ERR_TRAINING_DIVERGED', `L-BFGS: the loss became ${loss}`);
    }
    return { f: loss, g: Float64Array.from(gradient) };
  };
  const maxAbs = (v: Float64Array) => {
    let m = 0;
    for (const e of v) m = Math.max(m, Math.abs(e));
    return m;
  };
  const dotp = (a: Float64Array, b: Float64Array) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += (a[i] as number) * (b[i] as number);
    return s;
  };

  let x: Float64Array = Float64Array.from(net.params);
  let { f, g } = evaluate(x);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  let it = 0;
  let reason: LbfgsResult['reason'] = 'max-iterations';
  for (; it < maxIt; it++) {
    const gmax = maxAbs(g);
    if (gmax <= gtol) {
      reason = 'gradient';
      break;
    }
    // Two-loop recursion: d = -H g.
    const q = Float64Array.from(g);
    const alpha = new Array<number>(S.length);
    for (let j = S.length - 1; j >= 0; j--) {
      const a = (rho[j] as number) * dotp(S[j] as Float64Array, q);
      alpha[j] = a;
      const y = Y[j] as Float64Array;
      for (let i = 0; i < n; i++) q[i] = (q[i] as number) - a * (y[i] as number);
    }
    if (S.length > 0) {
      const yk = Y[Y.length - 1] as Float64Array;
      const gamma = dotp(S[S.length - 1] as Float64Array, yk) / dotp(yk, yk);
      for (let i = 0; i < n; i++) q[i] = (q[i] as number) * gamma;
    } else {
      const s0 = 1 / Math.max(1e-12, Math.sqrt(dotp(g, g)));
      for (let i = 0; i < n; i++) q[i] = (q[i] as number) * s0;
    }
    for (let j = 0; j < S.length; j++) {
      const b = (rho[j] as number) * dotp(Y[j] as Float64Array, q);
      const s = S[j] as Float64Array;
      const a = alpha[j] as number;
      for (let i = 0; i < n; i++) q[i] = (q[i] as number) + (a - b) * (s[i] as number);
    }
    const d = q.map((v) => -v);
    let slope = dotp(g, d);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -(g[i] as number);
      slope = dotp(g, d);
    }
    // Backtracking Armijo line search (c1 = 1e-4), step 1 first.
    let step = 1;
    let accepted: { f: number; g: Float64Array; x: Float64Array } | null = null;
    for (let ls = 0; ls < 30; ls++) {
      const xn = new Float64Array(n);
      for (let i = 0; i < n; i++) xn[i] = (x[i] as number) + step * (d[i] as number);
      const e = evaluate(xn);
      if (e.f <= f + 1e-4 * step * slope) {
        accepted = { ...e, x: xn };
        break;
      }
      step *= 0.5;
    }
    if (accepted === null || f - accepted.f <= 1e-12 * Math.max(1, Math.abs(f))) {
      if (accepted !== null) {
        x = accepted.x;
        f = accepted.f;
        g = accepted.g;
      }
      reason = 'no-progress';
      it++;
      break;
    }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = (accepted.x[i] as number) - (x[i] as number);
      y[i] = (accepted.g[i] as number) - (g[i] as number);
    }
    const sy = dotp(s, y);
    if (sy > 1e-12) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > mem) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    x = accepted.x;
    f = accepted.f;
    g = accepted.g;
    options.onIteration?.(it + 1, f, maxAbs(g));
  }
  for (let i = 0; i < n; i++) net.params[i] = x[i] as number;
  return { iterations: it, loss: f, gradMax: maxAbs(g), reason };
}
