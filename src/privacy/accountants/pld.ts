/**
 * Privacy loss distributions (PLD): the distribution of the privacy loss log(P(o)/Q(o)) for o drawn from
 * P, discretised on a grid of width `discretization` with a pessimistic rounding so that every δ(ε) read
 * from it is an upper bound (Koskela, Jälkö & Honkela, AISTATS 2020; Meiser & Mohammadi, CCS 2018).
 * Composition is convolution of the PMFs, done by FFT; k-fold self-composition raises the transform to
 * the k-th power, over a window whose outside mass a Chernoff bound keeps below 1e-15 (added to the
 * infinite-loss mass, pessimistically).
 *
 * This follows Google's dp_accounting (`pld/pld_pmf.py`, `pld/privacy_loss_mechanism.py`,
 * `pld/privacy_loss_distribution.py`) step by step: the Gaussian mechanism (optionally Poisson-
 * subsampled, add-or-remove neighbours, both the ADD and REMOVE distributions kept and the larger ε
 * reported) is discretised by the pessimistic "connect the dots" algorithm of Doroshenko, Ghazi, Kamath,
 * Kumar & Manurangsi (PETS 2022, Algorithm 1) on an ε grid covering the noise up to a tail mass of e^-50.
 * An (ε, δ)-DP black box is the worst-case two-point PLD (dp_accounting `from_privacy_parameters`).
 */
import { logATimesExpBPlusC, logNormCdf, logSumExpWeighted, normCdf, normPpf } from '../special.js';
import { convolve, nextPow2, selfConvolveCircular } from './fft.js';

/** Default grid width of the privacy loss (dp_accounting's default). */
export const DEFAULT_DISCRETIZATION = 1e-4;
/** Default bound on the mass dropped from each composition's tails. */
export const TAIL_MASS_TRUNCATION = 1e-15;

/** A dense, pessimistically discretised PLD PMF: mass `probs[i]` at loss (lowerLoss + i)·discretization. */
export class PldPmf {
  constructor(
    readonly discretization: number,
    readonly lowerLoss: number,
    readonly probs: Float64Array,
    readonly infinityMass: number,
  ) {}

  /** The PMF of the composition of the two mechanisms (convolution), tails truncated pessimistically. */
  compose(other: PldPmf, tailMassTruncation = TAIL_MASS_TRUNCATION): PldPmf {
    if (other.discretization !== this.discretization) {
      throw new RangeError(
        `PLDs with different discretizations cannot be composed (${this.discretization} vs ${other.discretization})`,
      );
    }
    // A single point mass only shifts the other PMF: no convolution needed.
    const probs =
      this.probs.length === 1
        ? scaled(other.probs, this.probs[0] as number)
        : other.probs.length === 1
          ? scaled(this.probs, other.probs[0] as number)
          : convolve(this.probs, other.probs);
    const inf = this.infinityMass + other.infinityMass - this.infinityMass * other.infinityMass;
    const t = truncateTails(probs, tailMassTruncation);
    return new PldPmf(
      this.discretization,
      this.lowerLoss + other.lowerLoss + t.offset,
      t.probs,
      inf + t.rightMass,
    );
  }

  /** The PMF of `k` compositions of this mechanism with itself. */
  selfCompose(k: number, tailMassTruncation = TAIL_MASS_TRUNCATION): PldPmf {
    if (!Number.isInteger(k) || k < 1)
      throw new RangeError(`selfCompose: k must be an integer >= 1, got ${k}`);
    const { lower, upper } = selfConvolveBounds(this.probs, k, tailMassTruncation);
    const outLen = upper - lower + 1;
    const n = Math.max(4, nextPow2(Math.max(outLen, this.probs.length)));
    const circ = selfConvolveCircular(this.probs, k, n);
    const out = new Float64Array(outLen);
    for (let j = 0; j < outLen; j++) out[j] = circ[(((j + lower) % n) + n) % n] as number;
    const inf = tailMassTruncation - Math.expm1(k * Math.log1p(-this.infinityMass));
    return new PldPmf(this.discretization, this.lowerLoss * k + lower, out, inf);
  }

  /** The ε-hockey-stick divergence: the δ for which the mechanism is (ε, δ)-DP. */
  deltaForEpsilon(epsilon: number): number {
    let delta = this.infinityMass;
    const d = this.discretization;
    for (let i = 0; i < this.probs.length; i++) {
      const loss = (this.lowerLoss + i) * d;
      if (loss > epsilon) delta += -Math.expm1(epsilon - loss) * (this.probs[i] as number);
    }
    return delta;
  }

  /** The smallest ε >= 0 whose hockey-stick divergence is at most δ (Infinity when none is). */
  epsilonForDelta(delta: number): number {
    if (this.infinityMass > delta) return Infinity;
    let massUpper = this.infinityMass;
    let massLower = 0;
    const d = this.discretization;
    // The losses from the top down, by repeated subtraction as dp_accounting's itertools.count does.
    let loss = (this.lowerLoss + this.probs.length - 1) * d;
    for (let i = this.probs.length - 1; i >= 0; i--, loss -= d) {
      if (massUpper > delta && massLower > 0 && Math.log((massUpper - delta) / massLower) >= loss) break;
      const p = this.probs[i] as number;
      massUpper += p;
      massLower += Math.exp(-loss) * p;
      if (massUpper >= delta && massLower === 0) return Math.max(0, loss);
    }
    if (massUpper <= massLower + delta) return 0;
    return Math.log((massUpper - delta) / massLower);
  }
}

function scaled(p: Float64Array, c: number): Float64Array {
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = (p[i] as number) * c;
  return out;
}

/** Drops prefix and suffix mass of at most tail/2 each: the prefix onto the first kept point, the suffix to +∞. */
function truncateTails(
  probs: Float64Array,
  tail: number,
): { offset: number; probs: Float64Array; rightMass: number } {
  if (tail === 0) return { offset: 0, probs, rightMass: 0 };
  const n = probs.length;
  let s = 0;
  let left = n;
  for (let i = 0; i < n; i++) {
    s += probs[i] as number;
    if (s > tail / 2) {
      left = i;
      break;
    }
  }
  s = 0;
  let rightCount = n;
  for (let i = 0; i < n; i++) {
    s += probs[n - 1 - i] as number;
    if (s > tail / 2) {
      rightCount = i;
      break;
    }
  }
  const right = Math.max(n - rightCount, left + 1);
  let leftMass = 0;
  for (let i = 0; i < left; i++) leftMass += probs[i] as number;
  let rightMass = 0;
  for (let i = right; i < n; i++) rightMass += probs[i] as number;
  const kept = probs.slice(left, right);
  kept[0] = (kept[0] as number) + leftMass;
  return { offset: left, probs: kept, rightMass };
}

/**
 * Indices [lower, upper] outside which the k-fold convolution has mass <= tail (Chernoff bound on the
 * moment generating function at orders ±1..20 / length, dp_accounting `compute_self_convolve_bounds`).
 */
function selfConvolveBounds(p: Float64Array, k: number, tail: number): { lower: number; upper: number } {
  let upper = (p.length - 1) * k;
  let lower = 0;
  if (tail === 0) return { lower, upper };
  const idx = new Float64Array(p.length);
  for (let order = -20; order <= 20; order++) {
    if (order === 0) continue;
    const t = order / p.length;
    for (let i = 0; i < p.length; i++) idx[i] = i * t;
    const logMgf = logSumExpWeighted(idx, p);
    const bound = (k * logMgf + Math.log(2 / tail)) / t;
    if (!Number.isFinite(bound)) continue;
    if (t > 0) upper = Math.min(upper, Math.ceil(bound));
    else lower = Math.max(lower, Math.floor(bound));
  }
  return { lower, upper };
}

/**
 * A privacy loss distribution under add-or-remove neighbours: the REMOVE PMF and, when the mechanism is
 * not symmetric (subsampling), the ADD PMF; ε(δ) is the larger of the two.
 */
export class PrivacyLossDistribution {
  constructor(
    readonly remove: PldPmf,
    readonly add: PldPmf | null = null,
  ) {}

  /** The identity (no privacy loss). */
  static identity(discretization = DEFAULT_DISCRETIZATION): PrivacyLossDistribution {
    return new PrivacyLossDistribution(new PldPmf(discretization, 0, Float64Array.of(1), 0));
  }

  compose(other: PrivacyLossDistribution, tail = TAIL_MASS_TRUNCATION): PrivacyLossDistribution {
    const remove = this.remove.compose(other.remove, tail);
    if (this.add === null && other.add === null) return new PrivacyLossDistribution(remove);
    const add = (this.add ?? this.remove).compose(other.add ?? other.remove, tail);
    return new PrivacyLossDistribution(remove, add);
  }

  selfCompose(k: number, tail = TAIL_MASS_TRUNCATION): PrivacyLossDistribution {
    return new PrivacyLossDistribution(
      this.remove.selfCompose(k, tail),
      this.add === null ? null : this.add.selfCompose(k, tail),
    );
  }

  epsilonForDelta(delta: number): number {
    const e = this.remove.epsilonForDelta(delta);
    return this.add === null ? e : Math.max(e, this.add.epsilonForDelta(delta));
  }

  deltaForEpsilon(epsilon: number): number {
    const d = this.remove.deltaForEpsilon(epsilon);
    return this.add === null ? d : Math.max(d, this.add.deltaForEpsilon(epsilon));
  }
}

type Adjacency = 'add' | 'remove';

/** The privacy loss of the (subsampled) Gaussian mechanism as dp_accounting's `GaussianPrivacyLoss`. */
class GaussianLoss {
  constructor(
    readonly sigma: number,
    readonly sensitivity: number,
    readonly q: number,
    readonly adjacency: Adjacency,
  ) {}

  #lossWithoutSubsamplingRemove(x: number): number {
    const s = this.sensitivity;
    return (s * (-0.5 * s - x)) / (this.sigma * this.sigma);
  }

  #inverseWithoutSubsamplingRemove(loss: number): number {
    const s = this.sensitivity;
    return -0.5 * s - (loss * this.sigma * this.sigma) / s;
  }

  #lossRemove(x: number): number {
    const l = this.#lossWithoutSubsamplingRemove(x);
    return this.q === 1 ? l : logATimesExpBPlusC(this.q, l, 1 - this.q);
  }

  privacyLoss(x: number): number {
    return this.adjacency === 'add' ? -this.#lossRemove(-x) : this.#lossRemove(x);
  }

  /** The largest x whose privacy loss is at least `loss`. */
  inverse(loss: number): number {
    const q = this.q;
    const s = this.sensitivity;
    if (this.adjacency === 'remove') {
      if (q === 1) return this.#inverseWithoutSubsamplingRemove(loss);
      const floor = Math.log(1 - q);
      if (isClose(loss, floor)) return this.#inverseWithoutSubsamplingRemove(-Infinity);
      if (loss <= floor) throw new RangeError(`privacy loss ${loss} is below log(1 − q)`);
      return this.#inverseWithoutSubsamplingRemove(logATimesExpBPlusC(1 / q, loss, 1 - 1 / q));
    }
    if (q === 1) return s + this.#inverseWithoutSubsamplingRemove(loss);
    const ceil = -Math.log(1 - q);
    if (isClose(loss, ceil)) return s + this.#inverseWithoutSubsamplingRemove(Infinity);
    if (loss > ceil) throw new RangeError(`privacy loss ${loss} is above −log(1 − q)`);
    return s + this.#inverseWithoutSubsamplingRemove(-logATimesExpBPlusC(1 / q, -loss, 1 - 1 / q));
  }

  muUpperCdf(x: number): number {
    const z = x / this.sigma;
    if (this.adjacency === 'add') return normCdf(z);
    const shifted = normCdf((x + this.sensitivity) / this.sigma);
    return this.q === 1 ? shifted : (1 - this.q) * normCdf(z) + this.q * shifted;
  }

  muLowerLogCdf(x: number): number {
    if (this.adjacency === 'remove') return logNormCdf(x / this.sigma);
    const shifted = logNormCdf((x - this.sensitivity) / this.sigma);
    if (this.q === 1) return shifted;
    return logAddExp(Math.log1p(-this.q) + logNormCdf(x / this.sigma), Math.log(this.q) + shifted);
  }

  deltaForEpsilon(eps: number): number {
    const q = this.q;
    let delta: number;
    if (q !== 1 && this.adjacency === 'add' && !(eps < -Math.log1p(-q))) delta = 0;
    else if (q !== 1 && this.adjacency === 'remove' && !(eps > Math.log1p(-q))) delta = -Math.expm1(eps);
    else {
      const x = this.inverse(eps);
      delta = this.muUpperCdf(x) - Math.exp(eps + this.muLowerLogCdf(x));
    }
    return Math.min(1, Math.max(0, delta));
  }

  /** [lower x, upper x] beyond which the noise has mass below e^bound (tails rounded pessimistically). */
  truncation(logMassBound: number): { lowerX: number; upperX: number } {
    let lowerX = this.sigma * normPpf(0.5 * Math.exp(logMassBound));
    let upperX = -lowerX;
    if (this.adjacency === 'add') upperX += this.sensitivity;
    else lowerX -= this.sensitivity;
    return { lowerX, upperX };
  }
}

function isClose(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/**
 * Pessimistic connect-the-dots PMF on the contiguous grid [lower, upper]·d from the hockey-stick
 * divergences δ(ε_i) (Doroshenko et al. 2022, Algorithm 1; dp_accounting
 * `create_pmf_pessimistic_connect_dots_fixed_gap`).
 */
function connectDotsFixedGap(d: number, lower: number, upper: number, deltasIn: Float64Array): PldPmf {
  const n = upper - lower + 1;
  if (n === 1)
    return new PldPmf(d, lower, Float64Array.of(1 - (deltasIn[0] as number)), deltasIn[0] as number);
  const deltas = new Float64Array(deltasIn);
  for (let i = 1; i < n; i++) {
    if ((deltas[i] as number) - (deltas[i - 1] as number) > 1e-12) {
      throw new RangeError('PLD discretisation: hockey-stick divergences are not non-increasing');
    }
    if ((deltas[i] as number) > (deltas[i - 1] as number)) deltas[i] = deltas[i - 1] as number;
  }
  const probs = new Float64Array(n);
  const em1 = Math.expm1(d);
  const ed = Math.exp(d);
  const diff = (i: number) => (deltas[i + 1] as number) - (deltas[i] as number);
  probs[0] = 1 - (deltas[0] as number) + diff(0) / em1;
  for (let i = 1; i < n - 1; i++) probs[i] = (diff(i) - diff(i - 1) * ed) / em1;
  probs[n - 1] = diff(n - 2) / Math.expm1(-d);
  for (let i = 0; i < n; i++) if (!((probs[i] as number) > 0)) probs[i] = 0;
  return new PldPmf(d, lower, probs, deltas[n - 1] as number);
}

function gaussianPmf(loss: GaussianLoss, d: number, logMassBound: number): PldPmf {
  const { lowerX, upperX } = loss.truncation(logMassBound);
  const epsUpper = loss.privacyLoss(lowerX);
  const epsLower = loss.privacyLoss(upperX);
  const hi = Math.ceil(epsUpper / d);
  const lo = Math.floor(epsLower / d);
  const deltas = new Float64Array(hi - lo + 1);
  for (let k = lo; k <= hi; k++) deltas[k - lo] = loss.deltaForEpsilon(k * d);
  return connectDotsFixedGap(d, lo, hi, deltas);
}

/** Options of {@link gaussianPld}. */
export interface GaussianPldOptions {
  /** Noise standard deviation (the noise multiplier when `sensitivity` is 1). */
  sigma: number;
  /** L2 sensitivity (default 1). */
  sensitivity?: number;
  /** Poisson sampling probability in (0, 1] (default 1: no subsampling). */
  samplingRate?: number;
  /** Grid width of the privacy loss (default 1e-4). */
  discretization?: number;
  /** log of the noise mass left out of the grid (default −50), rounded pessimistically. */
  logMassTruncationBound?: number;
}

/** The PLD of one step of the (Poisson-subsampled) Gaussian mechanism under add-or-remove neighbours. */
export function gaussianPld(o: GaussianPldOptions): PrivacyLossDistribution {
  const s = o.sensitivity ?? 1;
  const q = o.samplingRate ?? 1;
  const d = o.discretization ?? DEFAULT_DISCRETIZATION;
  const bound = o.logMassTruncationBound ?? -50;
  const remove = gaussianPmf(new GaussianLoss(o.sigma, s, q, 'remove'), d, bound);
  if (q === 1) return new PrivacyLossDistribution(remove);
  return new PrivacyLossDistribution(remove, gaussianPmf(new GaussianLoss(o.sigma, s, q, 'add'), d, bound));
}

/**
 * The worst-case PLD of any (ε, δ)-DP mechanism: +∞ with probability δ, ε with (1 − δ)/(1 + e^−ε), −ε
 * with (1 − δ)/(1 + e^ε) (Kairouz, Oh & Viswanath 2015; dp_accounting `from_privacy_parameters`).
 */
export function epsilonDeltaPld(
  epsilon: number,
  delta: number,
  discretization = DEFAULT_DISCRETIZATION,
): PrivacyLossDistribution {
  const hi = Math.ceil(epsilon / discretization);
  const lo = Math.ceil(-epsilon / discretization);
  const probs = new Float64Array(hi - lo + 1);
  probs[hi - lo] = (1 - delta) / (1 + Math.exp(-epsilon));
  probs[0] = (probs[0] as number) + (1 - delta) / (1 + Math.exp(epsilon));
  return new PrivacyLossDistribution(new PldPmf(discretization, lo, probs, delta));
}
