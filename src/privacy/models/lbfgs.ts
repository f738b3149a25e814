/**
 * Limited-memory BFGS (Liu & Nocedal, Math. Programming 1989; two-loop recursion, Nocedal & Wright,
 * Numerical Optimization, Algorithm 7.4) with a backtracking Armijo line search, for the smooth,
 * strongly convex objectives of objective perturbation. Curvature pairs with sᵀy <= 0 are skipped, so the
 * implicit Hessian stays positive definite.
 */

/** The objective: writes the gradient into `grad` and returns the value. */
export type Objective = (w: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Stop when max |gradient| <= this (default 1e-9). */
  gradientTolerance?: number;
  /** Maximum iterations (default 1,000). */
  maxIterations?: number;
  /** Number of correction pairs kept (default 10). */
  memory?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  value: number;
  iterations: number;
  /** max |gradient| at the end. */
  gradientNorm: number;
  converged: boolean;
}

function dotp(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Minimises `f` from `x0`. */
export function lbfgs(f: Objective, x0: Float64Array, o: LbfgsOptions = {}): LbfgsResult {
  const tol = o.gradientTolerance ?? 1e-9;
  const maxIter = o.maxIterations ?? 1000;
  const m = o.memory ?? 10;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const alpha = new Float64Array(m);
  let it = 0;
  for (; it < maxIter && maxAbs(g) > tol; it++) {
    // Two-loop recursion: d = −H g.
    d.set(g);
    for (let i = S.length - 1; i >= 0; i--) {
      const a = (rho[i] as number) * dotp(S[i] as Float64Array, d);
      alpha[i] = a;
      const y = Y[i] as Float64Array;
      for (let j = 0; j < n; j++) d[j] = (d[j] as number) - a * (y[j] as number);
    }
    const gamma =
      S.length > 0
        ? dotp(S[S.length - 1] as Float64Array, Y[Y.length - 1] as Float64Array) /
          dotp(Y[Y.length - 1] as Float64Array, Y[Y.length - 1] as Float64Array)
        : 1 / Math.max(1, maxAbs(g));
    for (let j = 0; j < n; j++) d[j] = (d[j] as number) * gamma;
    for (let i = 0; i < S.length; i++) {
      const b = (rho[i] as number) * dotp(Y[i] as Float64Array, d);
      const s = S[i] as Float64Array;
      const a = alpha[i] as number;
      for (let j = 0; j < n; j++) d[j] = (d[j] as number) + (a - b) * (s[j] as number);
    }
    for (let j = 0; j < n; j++) d[j] = -(d[j] as number);
    let slope = dotp(g, d);
    if (!(slope < 0)) {
      // Not a descent direction (should not happen with skipped pairs): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let j = 0; j < n; j++) d[j] = -(g[j] as number);
      slope = dotp(g, d);
    }
    // Backtracking Armijo line search from the unit step.
    let step = 1;
    const xn = new Float64Array(n);
    const gn = new Float64Array(n);
    let fn = Number.NaN;
    for (let k = 0; k < 60; k++) {
      for (let j = 0; j < n; j++) xn[j] = (x[j] as number) + step * (d[j] as number);
      fn = f(xn, gn);
      if (fn <= fx + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fn <= fx)) break; // no decrease possible at machine precision
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      s[j] = (xn[j] as number) - (x[j] as number);
      y[j] = (gn[j] as number) - (g[j] as number);
    }
    const sy = dotp(s, y);
    if (sy > 1e-300) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
    }
    const decrease = fx - fn;
    x = xn;
    g = gn;
    fx = fn;
    if (decrease <= 1e-16 * Math.max(1, Math.abs(fx)) && maxAbs(g) <= Math.sqrt(tol)) break;
  }
  const gn = maxAbs(g);
  return { x, value: fx, iterations: it, gradientNorm: gn, converged: gn <= tol };
}

/**
 * Cholesky factorisation in place of a symmetric positive definite d x d matrix (row-major, lower
 * triangle used); returns false if it is not positive definite.
 */
export function cholesky(a: Float64Array, d: number): boolean {
  for (let j = 0; j < d; j++) {
    let s = a[j * d + j] as number;
    for (let k = 0; k < j; k++) s -= (a[j * d + k] as number) ** 2;
    if (!(s > 0)) return false;
    const l = Math.sqrt(s);
    a[j * d + j] = l;
    for (let i = j + 1; i < d; i++) {
      let t = a[i * d + j] as number;
      for (let k = 0; k < j; k++) t -= (a[i * d + k] as number) * (a[j * d + k] as number);
      a[i * d + j] = t / l;
    }
  }
  return true;
}

/** Solves L Lᵀ x = b in place of b, given the Cholesky factor L (lower triangle of `l`). */
export function choleskySolve(l: Float64Array, d: number, b: Float64Array): void {
  for (let i = 0; i < d; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * d + k] as number) * (b[k] as number);
    b[i] = s / (l[i * d + i] as number);
  }
  for (let i = d - 1; i >= 0; i--) {
    let s = b[i] as number;
    for (let k = i + 1; k < d; k++) s -= (l[k * d + i] as number) * (b[k] as number);
    b[i] = s / (l[i * d + i] as number);
  }
}
