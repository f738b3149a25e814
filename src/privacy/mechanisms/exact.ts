/**
 * Exact sampling with integer arithmetic (Canonne, Kamath & Steinke, "The Discrete Gaussian for
 * Differential Privacy", NeurIPS 2020, §5): Bernoulli(p) for rational p by comparing a uniform integer,
 * Bernoulli(exp(−γ)) for rational γ by von Neumann's alternating series (their Algorithm 1), the
 * discrete Laplace (Algorithm 2) and the discrete Gaussian (Algorithm 3). Every random choice is a
 * uniform integer drawn by rejection from 32-bit words, and every comparison is on BigInt rationals, so
 * the output distribution is exactly the stated one: no floating-point rounding for an attacker to
 * exploit (Mironov, "On significance of the least significant bits for differential privacy", CCS 2012).
 * Parameters given as doubles are converted to the exact rationals they denote.
 */
import { invalidArgument, type Rng } from '../../core/index.js';

/** A non-negative rational n/d (d > 0). */
export interface Rational {
  readonly n: bigint;
  readonly d: bigint;
}

const view = new DataView(new ArrayBuffer(8));

/** The exact value of a finite double as a rational (its denominator is a power of two). */
export function exactRational(x: number): { n: bigint; d: bigint } {
  if (!Number.isFinite(x)) throw invalidArgument('value', 'a finite number', x);
  if (x === 0) return { n: 0n, d: 1n };
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const e = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  let m = e === 0 ? frac : frac | (1n << 52n);
  const exp = (e === 0 ? 1 : e) - 1075;
  let n: bigint;
  let d = 1n;
  if (exp >= 0) n = m << BigInt(exp);
  else {
    d = 1n << BigInt(-exp);
    while ((m & 1n) === 0n && d > 1n) {
      m >>= 1n;
      d >>= 1n;
    }
    n = m;
  }
  return { n: negative ? -n : n, d };
}

/** A uniform integer in [0, n) for n >= 1, by rejection on ceil(log2 n) random bits. */
export function uniformBelow(rng: Rng, n: bigint): bigint {
  if (n < 1n) throw invalidArgument('n', 'an integer >= 1', n.toString());
  if (n === 1n) return 0n;
  const bits = (n - 1n).toString(2).length;
  const words = Math.ceil(bits / 32);
  const topBits = bits - 32 * (words - 1);
  const topMask = topBits === 32 ? 0xffffffff : 2 ** topBits - 1;
  for (;;) {
    let v = BigInt((rng.nextUint32() & topMask) >>> 0);
    for (let w = 1; w < words; w++) v = (v << 32n) | BigInt(rng.nextUint32());
    if (v < n) return v;
  }
}

/** True with probability num/den (0 <= num <= den). */
export function bernoulliRational(rng: Rng, num: bigint, den: bigint): boolean {
  return uniformBelow(rng, den) < num;
}

/** True with probability exp(−num/den), num/den >= 0 (CKS20 Algorithm 1). */
export function bernoulliExpNeg(rng: Rng, num: bigint, den: bigint): boolean {
  if (num < 0n || den <= 0n) throw invalidArgument('gamma', 'a rational >= 0', `${num}/${den}`);
  // γ > 1: exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)), each factor an independent trial.
  const whole = num / den;
  for (let k = 0n; k < whole; k++) if (!bernoulliExpNegAtMostOne(rng, 1n, 1n)) return false;
  return bernoulliExpNegAtMostOne(rng, num - whole * den, den);
}

/** exp(−γ) for 0 <= γ <= 1: draw A_k ~ Bernoulli(γ/k) until one is 0; accept when that k is odd. */
function bernoulliExpNegAtMostOne(rng: Rng, num: bigint, den: bigint): boolean {
  let k = 1n;
  while (bernoulliRational(rng, num, den * k)) k++;
  return (k & 1n) === 1n;
}

/**
 * A discrete Laplace sample with scale num/den, P[x] ∝ exp(−|x|·den/num), for positive integers num, den
 * (CKS20 Algorithm 2 with t = num, s = den: X = U + t·V is geometric with P[X = x] ∝ e^{−x/t}, and
 * ⌊X/s⌋ with a random sign, rejecting −0, is the discrete Laplace of scale t/s).
 */
export function discreteLaplaceRational(rng: Rng, num: bigint, den: bigint): bigint {
  if (num <= 0n || den <= 0n) throw invalidArgument('scale', 'a positive rational', `${num}/${den}`);
  const t = num;
  const s = den;
  for (;;) {
    const u = uniformBelow(rng, t);
    if (!bernoulliExpNeg(rng, u, t)) continue;
    let v = 0n;
    while (bernoulliExpNeg(rng, 1n, 1n)) v++;
    const x = u + t * v;
    const y = x / s;
    const negative = bernoulliRational(rng, 1n, 2n);
    if (negative && y === 0n) continue;
    return negative ? -y : y;
  }
}

/** floor(sqrt(n)) for a non-negative BigInt (Newton's method on integers). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw invalidArgument('n', 'a non-negative integer', n.toString());
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  // Correct the floating-point start in both directions.
  while (x * x > n) x = (x + n / x) / 2n;
  while ((x + 1n) * (x + 1n) <= n) x++;
  while (x * x > n) x--;
  return x;
}

/**
 * A discrete Gaussian sample with variance parameter σ² = a/b (P[x] ∝ exp(−x²/(2σ²)) over the integers),
 * by rejection from the discrete Laplace with scale t = ⌊σ⌋ + 1 (CKS20 Algorithm 3).
 */
export function discreteGaussianRational(rng: Rng, a: bigint, b: bigint): bigint {
  if (a <= 0n || b <= 0n) throw invalidArgument('sigma2', 'a positive rational', `${a}/${b}`);
  const t = isqrt(a / b) + 1n;
  for (;;) {
    const y = discreteLaplaceRational(rng, t, 1n);
    const absY = y < 0n ? -y : y;
    // γ = (|y| − σ²/t)² / (2σ²) = (|y|·b·t − a)² / (2·a·b·t²)
    const diff = absY * b * t - a;
    if (bernoulliExpNeg(rng, diff * diff, 2n * a * b * t * t)) return y;
  }
}
