/**
 * Cholesky factorisation A = L Lᵀ of a symmetric positive-definite matrix, and solves with the factor:
 * what the Mahalanobis detector's precision matrix (src/robust/linalg.ts) and objective perturbation's
 * Newton steps (src/privacy/models/logistic.ts) both need. Row-major d x d; only A's lower triangle is
 * read.
 */

/**
 * The lower factor L (a new row-major d x d array), or the first pivot that is not positive (A is not
 * positive definite, numerically) with its value.
 */
export function choleskyLower(
  a: Float64Array,
  d: number,
): { l: Float64Array } | { pivot: number; value: number } {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const li = i * d;
    for (let j = 0; j <= i; j++) {
      const lj = j * d;
      let s = a[li + j] as number;
      for (let k = 0; k < j; k++) s -= (l[li + k] as number) * (l[lj + k] as number);
      if (i === j) {
        if (!(s > 0)) return { pivot: i, value: s };
        l[li + i] = Math.sqrt(s);
      } else l[li + j] = s / (l[lj + j] as number);
    }
  }
  return { l };
}

/** Solves L Lᵀ x = b in place of b, given the lower factor L from {@link choleskyLower}. */
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
