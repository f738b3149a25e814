/**
 * Differentially private mechanisms. Each validates its parameters first (ε > 0, 0 < δ < 1,
 * sensitivity > 0 and finite) and draws from the CSPRNG unless given an explicit {@link NoiseSource}.
 *
 * Released statistics should use the discrete mechanisms (integer-valued, sampled exactly; see
 * exact.ts). The continuous Laplace and Gaussian mechanisms compute with doubles: their output is only
 * approximately the ideal distribution, and Mironov (CCS 2012) showed how the textbook floating-point
 * Laplace leaks through its least significant bits. They are kept for internal use (the Gaussian noise of
 * DP-SGD) and for comparison, and say so in docs/privacy.md.
 */
import { BulwarkError, invalidArgument } from '../../core/index.js';
import { requireDelta, requireEpsilon, requireSensitivity } from '../params.js';
import { erfc, logNormCdf, normCdf } from '../special.js';
import {
  bernoulliExpNeg,
  discreteGaussianRational,
  discreteLaplaceRational,
  exactRational,
} from './exact.js';
import { type NoiseSource, noiseOf } from './noise.js';

// ---------------------------------------------------------------------------------------------------
// Continuous mechanisms

/** The Laplace scale b = Δ/ε of the ε-DP Laplace mechanism (Dwork, McSherry, Nissim & Smith 2006). */
export function laplaceScale(sensitivity: number, epsilon: number): number {
  return requireSensitivity('sensitivity', sensitivity) / requireEpsilon('epsilon', epsilon);
}

/** Options shared by the mechanisms. */
export interface MechanismOptions {
  /** The source of noise (default: the CSPRNG). */
  noise?: NoiseSource;
}

/**
 * The Laplace mechanism on a real value: value + Lap(Δ/ε), ε-DP for an L1 sensitivity Δ in exact
 * arithmetic. Floating point: see the module documentation; prefer {@link discreteLaplaceMechanism}.
 */
export function laplaceMechanism(
  value: number,
  o: { sensitivity: number; epsilon: number } & MechanismOptions,
): number {
  if (!Number.isFinite(value)) throw invalidArgument('value', 'a finite number', value);
  const b = laplaceScale(o.sensitivity, o.epsilon);
  const rng = noiseOf(o.noise).rng;
  return value + b * (rng.exponential() - rng.exponential());
}

/**
 * δ(ε) of the Gaussian mechanism with noise σ and L2 sensitivity Δ, exactly (Balle & Wang, "Improving
 * the Gaussian mechanism for differential privacy", ICML 2018, Theorem 8):
 * δ = Φ(Δ/(2σ) − εσ/Δ) − e^ε Φ(−Δ/(2σ) − εσ/Δ).
 */
export function gaussianDelta(sigma: number, epsilon: number, sensitivity = 1): number {
  const a = sensitivity / (2 * sigma);
  const b = (epsilon * sigma) / sensitivity;
  const d = normCdf(a - b) - Math.exp(epsilon + logNormCdf(-a - b));
  return Math.max(0, d);
}

/**
 * The smallest noise σ for which the Gaussian mechanism is (ε, δ)-DP for L2 sensitivity Δ: the analytic
 * Gaussian mechanism of Balle & Wang (2018, Algorithm 1), found by bisection on the exact δ(σ) of their
 * Theorem 8 (decreasing in σ), returning the upper end so the guarantee holds. Valid for every ε > 0,
 * unlike the classic σ = Δ·sqrt(2 ln(1.25/δ))/ε, which needs ε < 1 and is looser.
 */
export function analyticGaussianSigma(epsilon: number, delta: number, sensitivity = 1): number {
  requireEpsilon('epsilon', epsilon);
  requireDelta('delta', delta);
  requireSensitivity('sensitivity', sensitivity);
  let lo = 0;
  let hi = sensitivity;
  while (gaussianDelta(hi, epsilon, sensitivity) > delta) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (gaussianDelta(mid, epsilon, sensitivity) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The classic calibration σ = Δ sqrt(2 ln(1.25/δ))/ε (Dwork & Roth 2014, Thm A.1; only for ε < 1). */
export function classicGaussianSigma(epsilon: number, delta: number, sensitivity = 1): number {
  requireEpsilon('epsilon', epsilon);
  requireDelta('delta', delta);
  requireSensitivity('sensitivity', sensitivity);
  if (epsilon >= 1) throw invalidArgument('epsilon', 'an epsilon < 1 for the classic calibration', epsilon);
  return (sensitivity * Math.sqrt(2 * Math.log(1.25 / delta))) / epsilon;
}

/**
 * One N(0, σ²) deviate hardened as Opacus's `secure_mode` does (Holohan & Braghin, "Secure random
 * sampling in differential privacy", ESORICS 2021, §5.1): the sum of four N(0, σ²) draws over 2, so the
 * low bits of a single floating-point draw cannot be inverted.
 */
export function hardenedNormal(noise: NoiseSource, sigma: number): number {
  const r = noise.rng;
  return (sigma * (r.normal() + r.normal() + r.normal() + r.normal())) / 2;
}

/** The analytic Gaussian mechanism on a real value or vector with L2 sensitivity Δ: (ε, δ)-DP. */
export function gaussianMechanism<T extends number | Float64Array>(
  value: T,
  o: { sensitivity: number; epsilon: number; delta: number } & MechanismOptions,
): T {
  const sigma = analyticGaussianSigma(o.epsilon, o.delta, o.sensitivity);
  const noise = noiseOf(o.noise);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArgument('value', 'a finite number', value);
    return (value + hardenedNormal(noise, sigma)) as T;
  }
  const out = new Float64Array(value as Float64Array);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw invalidArgument(`value[${i}]`, 'a finite number', out[i]);
    out[i] = (out[i] as number) + hardenedNormal(noise, sigma);
  }
  return out as T;
}

// ---------------------------------------------------------------------------------------------------
// Discrete mechanisms (exact)

function requireIntegerValue(name: string, v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalidArgument(name, 'a safe integer', v);
  return BigInt(v);
}

function requireIntegerSensitivity(name: string, v: unknown): bigint {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw invalidArgument(name, 'an integer sensitivity >= 1', v);
  return BigInt(v);
}

function toSafeNumber(x: bigint, what: string): number {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BulwarkError('ERR_INTERNAL', `${what}: ${x} is beyond the safe integer range`);
  }
  return Number(x);
}

/** A discrete Laplace sample with scale `scale` (P[x] ∝ exp(−|x|/scale)), exact for the double given. */
export function sampleDiscreteLaplace(scale: number, noise?: NoiseSource): number {
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale))
    throw invalidArgument('scale', 'a finite scale > 0', scale);
  const r = exactRational(scale);
  return toSafeNumber(discreteLaplaceRational(noiseOf(noise).rng, r.n, r.d), 'discrete Laplace sample');
}

/** A discrete Gaussian sample with σ (P[x] ∝ exp(−x²/(2σ²))), exact for the double σ² = sigma·sigma. */
export function sampleDiscreteGaussian(sigma: number, noise?: NoiseSource): number {
  if (typeof sigma !== 'number' || !(sigma > 0) || !Number.isFinite(sigma))
    throw invalidArgument('sigma', 'a finite sigma > 0', sigma);
  const r = exactRational(sigma * sigma);
  return toSafeNumber(discreteGaussianRational(noiseOf(noise).rng, r.n, r.d), 'discrete Gaussian sample');
}

/**
 * The discrete Laplace (geometric) mechanism: an integer value plus discrete Laplace noise of scale Δ/ε,
 * ε-DP for integer L1 sensitivity Δ (Ghosh, Roughgarden & Sundararajan 2009; sampled as CKS20 Alg. 2).
 * The scale Δ/ε is used as the exact rational Δ·d/n where ε = n/d is the double given.
 */
export function discreteLaplaceMechanism(
  value: number,
  o: { sensitivity: number; epsilon: number } & MechanismOptions,
): number {
  const v = requireIntegerValue('value', value);
  const s = requireIntegerSensitivity('sensitivity', o.sensitivity);
  const eps = exactRational(requireEpsilon('epsilon', o.epsilon));
  const noise = discreteLaplaceRational(noiseOf(o.noise).rng, s * eps.d, eps.n);
  return toSafeNumber(v + noise, 'discrete Laplace mechanism output');
}

/**
 * Σ_{y >= k} e^{−y²/(2σ²)} for an integer k >= 1. Term by term while the terms fall fast (at least
 * 0.5 % per step: at most a few thousand terms to reach 1e−18 of the sum); otherwise, with σ >= 100,
 * by the Euler–Maclaurin formula: ∫_k^∞ f + f(k)/2 − Σ_j B_2j/(2j)! f^(2j−1)(k), with
 * f^(n)(x) = (−1/σ)^n He_n(x/σ) f(x) (probabilists' Hermite polynomials) and terms up to f^(7). There
 * |σ^−n He_n(k/σ)| is at most about (k/σ²)^n < 0.005^n, so the remainder (below 1e−6 of |f^(8)|'s
 * integral) is under 1e−24 of f(k), itself under 1/200 of the sum. Summing term by term there would
 * take of the order of σ·√(2 ln 10^18) terms: seconds at σ = 10^7, and refusing larger σ outright.
 */
function gaussianTailSum(sigma: number, k: number): number {
  if (sigma < 100 || (2 * k + 1) / (2 * sigma * sigma) >= 0.005) {
    const s2 = 2 * sigma * sigma;
    let s = 0;
    for (let y = k; ; y++) {
      const t = Math.exp((-y * y) / s2);
      s += t;
      if (t === 0 || t < 1e-18 * s) break;
    }
    return s;
  }
  const u = k / sigma;
  const f = Math.exp(-0.5 * u * u);
  const u2 = u * u;
  const he3 = u * (u2 - 3);
  const he5 = u * (u2 * (u2 - 10) + 15);
  const he7 = u * (u2 * (u2 * (u2 - 21) + 105) - 105);
  const s3 = sigma ** 3;
  const integral = sigma * Math.sqrt(Math.PI / 2) * erfc(u / Math.SQRT2);
  return (
    integral +
    f *
      (0.5 +
        u / (12 * sigma) -
        he3 / (720 * s3) +
        he5 / (30240 * s3 * sigma * sigma) -
        he7 / (1209600 * s3 * s3 * sigma))
  );
}

/**
 * Σ_{y ∈ Z} e^{−y²/(2σ²)}. For σ >= 3 by Poisson summation (the Jacobi theta identity):
 * σ√(2π)·(1 + 2 Σ_{m>=1} e^{−2π²σ²m²}), whose correction is below e^{−177} there, so the closed
 * form is exact in double precision; below, term by term.
 */
function gaussianNormalizer(sigma: number): number {
  if (sigma >= 3) return sigma * Math.sqrt(2 * Math.PI);
  return 1 + 2 * gaussianTailSum(sigma, 1);
}

/**
 * P[Y > c] for Y discrete Gaussian with parameter σ (CKS20 §2), to full double precision; `z` is
 * {@link gaussianNormalizer}(σ), computed once by the caller for both of δ's tails.
 */
function discreteGaussianTail(sigma: number, z: number, c: number): number {
  const fc = Math.floor(c);
  // c >= 0: the tail from ⌊c⌋ + 1; c < 0: 1 − P[Y <= ⌊c⌋] = 1 − P[Y >= −⌊c⌋] by symmetry.
  return fc >= 0 ? gaussianTailSum(sigma, fc + 1) / z : Math.max(0, 1 - gaussianTailSum(sigma, -fc) / z);
}

/**
 * δ(ε) of the discrete Gaussian mechanism with parameter σ and integer sensitivity Δ (Canonne, Kamath &
 * Steinke 2020, Theorem 7): δ = P[Y > εσ²/Δ − Δ/2] − e^ε P[Y > εσ²/Δ + Δ/2], Y ~ N_Z(0, σ²).
 */
export function discreteGaussianDelta(sigma: number, epsilon: number, sensitivity = 1): number {
  const m = (epsilon * sigma * sigma) / sensitivity;
  const z = gaussianNormalizer(sigma);
  return Math.max(
    0,
    discreteGaussianTail(sigma, z, m - sensitivity / 2) -
      Math.exp(epsilon) * discreteGaussianTail(sigma, z, m + sensitivity / 2),
  );
}

/** The smallest σ (by bisection on {@link discreteGaussianDelta}) for (ε, δ)-DP with integer sensitivity Δ. */
export function discreteGaussianSigma(epsilon: number, delta: number, sensitivity = 1): number {
  requireEpsilon('epsilon', epsilon);
  requireDelta('delta', delta);
  requireIntegerSensitivity('sensitivity', sensitivity);
  let lo = 0;
  let hi = sensitivity;
  while (discreteGaussianDelta(hi, epsilon, sensitivity) > delta) {
    lo = hi;
    hi *= 2;
    // Beyond 1e12 the noise alone (several sigma) nears 2^53, past which the sum of a value and
    // its noise is no longer an exact integer in a double (toSafeNumber would refuse the output).
    if (hi > 1e12)
      throw new BulwarkError(
        'ERR_PRIVACY_UNACHIEVABLE',
        `discrete Gaussian: no sigma below 1e12 gives (${epsilon}, ${delta})-DP`,
      );
  }
  for (let i = 0; i < 100 && hi - lo > 1e-10 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (discreteGaussianDelta(mid, epsilon, sensitivity) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * The discrete Gaussian mechanism: an integer value plus N_Z(0, σ²) noise, with σ calibrated for
 * (ε, δ)-DP at integer L2 sensitivity Δ (CKS20 Theorem 7), sampled exactly. Returns the output and σ.
 */
export function discreteGaussianMechanism(
  value: number,
  o: { sensitivity: number; epsilon: number; delta: number } & MechanismOptions,
): { value: number; sigma: number } {
  const v = requireIntegerValue('value', value);
  const sigma = discreteGaussianSigma(o.epsilon, o.delta, o.sensitivity);
  const r = exactRational(sigma * sigma);
  const noise = discreteGaussianRational(noiseOf(o.noise).rng, r.n, r.d);
  return { value: toSafeNumber(v + noise, 'discrete Gaussian mechanism output'), sigma };
}

// ---------------------------------------------------------------------------------------------------
// Selection

/**
 * Permute-and-flip (McKenna & Sheldon, NeurIPS 2020): visit the candidates in a uniformly random order
 * and stop at candidate r with probability exp(ε (u_r − u*) / (2Δ)), u* the best utility. ε-DP for
 * utilities of sensitivity Δ, never worse in expected utility than the exponential mechanism. Each stop
 * decision is an exact Bernoulli(exp(−γ)) on the rational γ the doubles denote, so no floating-point
 * rounding enters the selection. Returns the index chosen.
 */
export function permuteAndFlip(
  utilities: readonly number[],
  o: { sensitivity: number; epsilon: number } & MechanismOptions,
): number {
  if (!Array.isArray(utilities) || utilities.length === 0)
    throw invalidArgument('utilities', 'a non-empty array of finite numbers', utilities);
  utilities.forEach((u, i) => {
    if (typeof u !== 'number' || !Number.isFinite(u))
      throw invalidArgument(`utilities[${i}]`, 'a finite number', u);
  });
  const eps = exactRational(requireEpsilon('epsilon', o.epsilon));
  const sens = exactRational(requireSensitivity('sensitivity', o.sensitivity));
  const rng = noiseOf(o.noise).rng;
  let best = utilities[0] as number;
  for (const u of utilities) if (u > best) best = u;
  const bestR = exactRational(best);
  const order = rng.permutation(utilities.length);
  for (const r of order) {
    const u = exactRational(utilities[r] as number);
    // γ = ε (u* − u_r) / (2Δ) with u* − u_r = (b.n·u.d − u.n·b.d)/(b.d·u.d)
    const gapN = bestR.n * u.d - u.n * bestR.d;
    const gapD = bestR.d * u.d;
    if (bernoulliExpNeg(rng, eps.n * gapN * sens.d, eps.d * gapD * 2n * sens.n)) return r;
  }
  // Unreachable: the best candidate stops with probability 1.
  throw new BulwarkError('ERR_INTERNAL', 'permute-and-flip selected nothing');
}
