/**
 * Up-front checks of privacy parameters: each throws ERR_INVALID_ARGUMENT with a message naming the
 * parameter and what was expected (epsilon > 0, 0 < delta < 1, sensitivity > 0 and finite, ...).
 */
import { invalidArgument } from '../core/index.js';

/** ε: a finite number > 0. */
export function requireEpsilon(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw invalidArgument(name, 'a finite epsilon > 0', v);
  return v;
}

/** δ: a number in (0, 1), or [0, 1) with `allowZero`. */
export function requireDelta(name: string, v: unknown, opts: { allowZero?: boolean } = {}): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && v < 1 && (opts.allowZero ? v >= 0 : v > 0);
  if (!ok) throw invalidArgument(name, opts.allowZero ? 'a delta in [0, 1)' : 'a delta in (0, 1)', v);
  return v as number;
}

/**
 * A warning for a δ too large to mean much, or null: δ >= 1/rows admits a mechanism that publishes a
 * whole row with probability δ (Dwork & Roth 2014, §2.3), so δ should sit well below 1/rows; without a
 * row count, anything above 1e-3 is flagged. Advice for the operator, not a refusal: the budget's δ is
 * the limit.
 */
export function deltaWarning(delta: number, rows?: number): string | null {
  if (rows !== undefined && rows > 0 && delta >= 1 / rows)
    return `delta ${delta} is at least 1/rows (1/${rows}): a mechanism may then publish a whole row with probability delta; choose delta well below 1/rows`;
  if (delta > 1e-3)
    return `delta ${delta} is large: a mechanism may publish a whole row with probability delta; choose delta well below 1/rows (typically 1e-5 to 1e-7)`;
  return null;
}

/** A sensitivity: a finite number > 0. */
export function requireSensitivity(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw invalidArgument(name, 'a finite sensitivity > 0', v);
  return v;
}

/** A Poisson sampling rate in (0, 1]. */
export function requireSamplingRate(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1)
    throw invalidArgument(name, 'a sampling rate in (0, 1]', v);
  return v;
}

/** A noise multiplier (noise standard deviation / L2 sensitivity): a finite number > 0. */
export function requireNoiseMultiplier(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw invalidArgument(name, 'a finite noise multiplier > 0', v);
  return v;
}

/** A positive integer count (steps, compositions). */
export function requireCount(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw invalidArgument(name, 'an integer >= 1', v);
  return v;
}
