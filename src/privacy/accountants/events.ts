/**
 * What accountants account for: one run of a privacy mechanism, described by what its analysis needs
 * (after dp_accounting's `DpEvent`s). Events are plain data, so a spend can be recorded and replayed.
 */
import { invalidArgument } from '../../core/index.js';
import { requireDelta, requireEpsilon, requireNoiseMultiplier, requireSamplingRate } from '../params.js';

/**
 * - `gaussian`: the Gaussian mechanism with noise standard deviation `noiseMultiplier` × L2 sensitivity,
 *   applied to a Poisson sample of the data with rate `samplingRate` (default 1: the whole data) —
 *   one DP-SGD step;
 * - `pure`: any ε-DP mechanism (Laplace, discrete Laplace, permute-and-flip, objective perturbation);
 * - `approx`: any (ε, δ)-DP mechanism taken as a black box;
 * - `zcdp`: any ρ-zCDP mechanism (Bun & Steinke 2016), e.g. the discrete Gaussian with ρ = Δ²/(2σ²).
 */
export type PrivacyEvent =
  | { kind: 'gaussian'; noiseMultiplier: number; samplingRate?: number }
  | { kind: 'pure'; epsilon: number }
  | { kind: 'approx'; epsilon: number; delta: number }
  | { kind: 'zcdp'; rho: number };

/** One entry of an accountant's history: `count` runs of `event`. */
export interface ComposedEvent {
  readonly event: PrivacyEvent;
  readonly count: number;
}

/** Validates an event's parameters (messages name the field). */
export function checkEvent(e: PrivacyEvent): PrivacyEvent {
  if (typeof e !== 'object' || e === null) throw invalidArgument('event', 'a privacy event object', e);
  switch (e.kind) {
    case 'gaussian':
      requireNoiseMultiplier('event.noiseMultiplier', e.noiseMultiplier);
      if (e.samplingRate !== undefined) requireSamplingRate('event.samplingRate', e.samplingRate);
      return e;
    case 'pure':
      requireEpsilon('event.epsilon', e.epsilon);
      return e;
    case 'approx':
      requireEpsilon('event.epsilon', e.epsilon);
      requireDelta('event.delta', e.delta, { allowZero: true });
      return e;
    case 'zcdp':
      if (typeof e.rho !== 'number' || !Number.isFinite(e.rho) || e.rho <= 0)
        throw invalidArgument('event.rho', 'a finite rho > 0', e.rho);
      return e;
    default:
      throw invalidArgument('event.kind', 'gaussian, pure, approx or zcdp', (e as { kind: unknown }).kind);
  }
}

/** A one-line description for messages and the ledger. */
export function describeEvent(e: PrivacyEvent): string {
  switch (e.kind) {
    case 'gaussian':
      return `Gaussian(noise multiplier ${e.noiseMultiplier}${
        e.samplingRate !== undefined && e.samplingRate < 1 ? `, Poisson rate ${e.samplingRate}` : ''
      })`;
    case 'pure':
      return `${e.epsilon}-DP`;
    case 'approx':
      return `(${e.epsilon}, ${e.delta})-DP`;
    case 'zcdp':
      return `${e.rho}-zCDP`;
  }
}
