import { BulwarkError, invalidArgument } from './errors.js';

/**
 * Up-front parameter checks (after ART's `_check_params`): each throws `ERR_INVALID_ARGUMENT` with a
 * message naming the parameter and what was expected.
 */

export function requireFinite(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(name, 'a finite number', v);
  return v;
}

export function requireInteger(name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = rangeText(min, max);
    throw invalidArgument(name, `an integer${range}`, v);
  }
  return v;
}

export function requireNumberIn(
  name: string,
  v: unknown,
  min: number,
  max: number,
  opts: { minExclusive?: boolean; maxExclusive?: boolean } = {},
): number {
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (opts.minExclusive ? v > min : v >= min) &&
    (opts.maxExclusive ? v < max : v <= max);
  if (!ok) {
    const lo = opts.minExclusive ? '(' : '[';
    const hi = opts.maxExclusive ? ')' : ']';
    throw invalidArgument(name, `a number in ${lo}${min}, ${max}${hi}`, v);
  }
  return v as number;
}

export function requirePositive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw invalidArgument(name, 'a positive number', v);
  return v;
}

export function requireOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidArgument(name, `one of ${allowed.join(', ')}`, v);
  }
  return v as T;
}

export function requireNonEmptyString(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw invalidArgument(name, 'a non-empty string', v);
  return v;
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` >= ${min}`;
  if (min === -Infinity) return ` <= ${max}`;
  return ` in [${min}, ${max}]`;
}

/**
 * Throws `ERR_DATA_VALUE` ("`what`: row R has V", details.row, rows 0-based) for the first NaN or
 * infinite value of a row-major matrix of `d` columns: data, not a parameter, so not
 * ERR_INVALID_ARGUMENT. A NaN compares false with every threshold, so it must be refused before a
 * score or a scale is computed from it.
 */
export function requireFiniteRows(x: ArrayLike<number>, d: number, what: string): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    if (!Number.isFinite(v)) {
      const row = Math.floor(i / d);
      throw new BulwarkError('ERR_DATA_VALUE', `${what}: row ${row} has ${v}`, { details: { row } });
    }
  }
}
