/**
 * Noise calibration: the noise multiplier σ that makes `steps` Poisson-subsampled Gaussian steps at
 * rate q (ε, δ)-DP for a target ε, by doubling then bisection on the accountant's ε(σ), which decreases
 * in σ (as Opacus's `get_noise_multiplier`). The σ returned always meets the target (ε(σ) <= target),
 * within `tolerance` of it.
 */
import { BulwarkError } from '../../core/index.js';
import { requireCount, requireDelta, requireEpsilon, requireSamplingRate } from '../params.js';
import { createAccountant } from './accountants.js';

/** Options of {@link calibrateNoiseMultiplier}. */
export interface NoiseCalibrationOptions {
  targetEpsilon: number;
  delta: number;
  /** Poisson sampling rate per step. */
  samplingRate: number;
  /** Number of steps (epochs / samplingRate for DP-SGD). */
  steps: number;
  /** `rdp` (default) or `pld`. */
  accountant?: 'rdp' | 'pld';
  /** Stop when target − ε(σ) <= tolerance (default 0.01, as Opacus). */
  tolerance?: number;
}

/** Above this no useful model can come out; Opacus refuses past 1e6 too. */
const MAX_SIGMA = 1e6;

/** ε of `steps` subsampled Gaussian steps with noise multiplier σ, by the named accountant. */
export function dpSgdEpsilon(
  sigma: number,
  samplingRate: number,
  steps: number,
  delta: number,
  accountant: 'rdp' | 'pld' = 'rdp',
  discretization?: number,
): number {
  const acc = createAccountant(accountant, discretization === undefined ? {} : { discretization });
  acc.compose({ kind: 'gaussian', noiseMultiplier: sigma, samplingRate }, steps);
  return acc.getEpsilon(delta);
}

/**
 * The noise multiplier reaching `targetEpsilon` (see the module doc). For `pld` the search runs on a
 * 10x coarser grid (still a pessimistic upper bound, and fast) and the answer is checked on the fine one.
 * Throws ERR_PRIVACY_UNACHIEVABLE when even σ = 1e6 does not reach the target.
 *
 * @example
 * ```ts
 * calibrateNoiseMultiplier({ targetEpsilon: 1.28, delta: 1e-5, samplingRate: 256 / 60000, steps: 3515 }); // ≈ 1.1
 * ```
 */
export function calibrateNoiseMultiplier(o: NoiseCalibrationOptions): {
  noiseMultiplier: number;
  epsilon: number;
} {
  const target = requireEpsilon('targetEpsilon', o.targetEpsilon);
  const delta = requireDelta('delta', o.delta);
  const q = requireSamplingRate('samplingRate', o.samplingRate);
  const steps = requireCount('steps', o.steps);
  const tol = o.tolerance ?? 0.01;
  if (!(tol > 0) || !Number.isFinite(tol))
    throw new BulwarkError('ERR_INVALID_ARGUMENT', `tolerance: expected a positive number, got ${tol}`);
  const name = o.accountant ?? 'rdp';
  const coarse = name === 'pld' ? 1e-3 : undefined;
  const eps = (s: number) => dpSgdEpsilon(s, q, steps, delta, name, coarse);

  let lo = 0;
  let hi = 1;
  let epsHi = eps(hi);
  while (epsHi > target) {
    lo = hi;
    hi *= 2;
    if (hi > MAX_SIGMA) {
      throw new BulwarkError(
        'ERR_PRIVACY_UNACHIEVABLE',
        `epsilon ${target} at delta ${delta} cannot be reached with sampling rate ${q} over ${steps} steps (noise multiplier would exceed ${MAX_SIGMA})`,
        { details: { targetEpsilon: target, delta } },
      );
    }
    epsHi = eps(hi);
  }
  for (let i = 0; i < 100 && target - epsHi > tol; i++) {
    const mid = (lo + hi) / 2;
    const e = eps(mid);
    if (e <= target) {
      hi = mid;
      epsHi = e;
    } else lo = mid;
    if (hi - lo < 1e-9 * hi) break;
  }
  if (name === 'pld') {
    // Report (and guarantee) the fine-grid ε.
    let fine = dpSgdEpsilon(hi, q, steps, delta, 'pld');
    while (fine > target) {
      hi *= 1.01;
      fine = dpSgdEpsilon(hi, q, steps, delta, 'pld');
    }
    epsHi = fine;
  }
  return { noiseMultiplier: hi, epsilon: epsHi };
}
