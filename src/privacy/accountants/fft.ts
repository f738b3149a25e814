/**
 * A radix-2 complex FFT (iterative Cooley–Tukey with bit reversal; twiddles from Math.cos/sin per index,
 * not by recurrence, so the error stays O(log n · ε)), and the two products the PLD accountant needs:
 * linear convolution of two real sequences and the k-fold self-convolution by raising the transform to
 * the k-th power (as dp_accounting's `common.self_convolve`).
 */

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = twiddleCache.get(n);
  if (!t) {
    const half = n >> 1;
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    for (let k = 0; k < half; k++) {
      const a = (-2 * Math.PI * k) / n;
      cos[k] = Math.cos(a);
      sin[k] = Math.sin(a);
    }
    t = { cos, sin };
    if (twiddleCache.size > 8) twiddleCache.clear();
    twiddleCache.set(n, t);
  }
  return t;
}

/** The smallest power of two >= n. */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** In-place FFT of (re, im), length a power of two; `inverse` computes the unscaled inverse transform. */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (n <= 1) return;
  if ((n & (n - 1)) !== 0) throw new RangeError(`fft: length ${n} is not a power of two`);
  // Bit-reversal permutation.
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i] as number;
      re[i] = re[j] as number;
      re[j] = t;
      t = im[i] as number;
      im[i] = im[j] as number;
      im[j] = t;
    }
  }
  const { cos, sin } = twiddles(n);
  const sign = inverse ? -1 : 1;
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const stride = n / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * stride] as number;
        const wi = sign * (sin[k * stride] as number);
        const a = i + k;
        const b = a + half;
        const br = re[b] as number;
        const bi = im[b] as number;
        const tr = br * wr - bi * wi;
        const ti = br * wi + bi * wr;
        const ar = re[a] as number;
        const ai = im[a] as number;
        re[b] = ar - tr;
        im[b] = ai - ti;
        re[a] = ar + tr;
        im[a] = ai + ti;
      }
    }
  }
}

/** Linear convolution of two real sequences (length a.length + b.length − 1) through one FFT size. */
export function convolve(a: Float64Array, b: Float64Array): Float64Array {
  const outLen = a.length + b.length - 1;
  const n = nextPow2(outLen);
  // Pack a in the real part and b in the imaginary part: one forward transform gives both spectra.
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  re.set(a);
  im.set(b);
  fft(re, im);
  // A_k = (Z_k + conj Z_{n−k}) / 2, B_k = (Z_k − conj Z_{n−k}) / (2i); the product A_k·B_k.
  const pr = new Float64Array(n);
  const pi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const m = (n - k) & (n - 1);
    const zr = re[k] as number;
    const zi = im[k] as number;
    const cr = re[m] as number;
    const ci = -(im[m] as number);
    const ar = (zr + cr) / 2;
    const ai = (zi + ci) / 2;
    // (Z − conj Z_m)/(2i): (x + iy)/(2i) = (y − ix)/2
    const dr = zr - cr;
    const di = zi - ci;
    const br = di / 2;
    const bi = -dr / 2;
    pr[k] = ar * br - ai * bi;
    pi[k] = ar * bi + ai * br;
  }
  fft(pr, pi, true);
  const out = new Float64Array(outLen);
  for (let i = 0; i < outLen; i++) out[i] = (pr[i] as number) / n;
  return out;
}

/**
 * The k-fold self-convolution of `p`, circular over `n` points (a power of two >= 4): the inverse
 * transform of FFT(p)^k. `p` is real, so both transforms run at half size on the even/odd samples packed
 * as one complex sequence (the standard real-FFT split: with E, O the transforms of the even and odd
 * samples, X[k] = E[k] + W^k O[k], W = e^{−2πi/n}). Callers choose n so that the mass wrapping around is
 * negligible (dp_accounting bounds it with a Chernoff bound and rolls the result).
 */
export function selfConvolveCircular(p: Float64Array, k: number, n: number): Float64Array {
  const h = n >> 1;
  const zr = new Float64Array(h);
  const zi = new Float64Array(h);
  const m = Math.min(p.length, n);
  for (let j = 0; j < m; j++) {
    if (j & 1) zi[j >> 1] = p[j] as number;
    else zr[j >> 1] = p[j] as number;
  }
  fft(zr, zi);
  // X[k] for k = 0..h (the rest is the conjugate mirror), raised to the k-th power in polar form.
  const xr = new Float64Array(h + 1);
  const xi = new Float64Array(h + 1);
  for (let j = 0; j <= h; j++) {
    const a = j % h;
    const b = (h - j) % h;
    const er = ((zr[a] as number) + (zr[b] as number)) / 2;
    const ei = ((zi[a] as number) - (zi[b] as number)) / 2;
    // O = (Z[a] − conj Z[b]) / (2i)
    const dr = (zr[a] as number) - (zr[b] as number);
    const di = (zi[a] as number) + (zi[b] as number);
    const or = di / 2;
    const oi = -dr / 2;
    const ang = (-2 * Math.PI * j) / n;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    const re = er + (wr * or - wi * oi);
    const im = ei + (wr * oi + wi * or);
    const r = Math.hypot(re, im);
    if (r === 0) continue;
    const mag = Math.exp(k * Math.log(r));
    const th = k * Math.atan2(im, re);
    xr[j] = mag * Math.cos(th);
    xi[j] = mag * Math.sin(th);
  }
  // Back: E[j] = (Y[j] + conj Y[h − j]) / 2, O[j] = (Y[j] − conj Y[h − j]) / (2 W^j), Z = E + i O.
  for (let j = 0; j < h; j++) {
    const b = h - j;
    const yr = xr[j] as number;
    const yi = xi[j] as number;
    const cr = xr[b] as number;
    const ci = -(xi[b] as number);
    const er = (yr + cr) / 2;
    const ei = (yi + ci) / 2;
    const ang = (2 * Math.PI * j) / n; // 1 / W^j
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    const dr = (yr - cr) / 2;
    const di = (yi - ci) / 2;
    const or = dr * wr - di * wi;
    const oi = dr * wi + di * wr;
    // Z = E + i O
    zr[j] = er - oi;
    zi[j] = ei + or;
  }
  fft(zr, zi, true);
  const out = new Float64Array(n);
  for (let j = 0; j < h; j++) {
    out[2 * j] = (zr[j] as number) / h;
    out[2 * j + 1] = (zi[j] as number) / h;
  }
  return out;
}
