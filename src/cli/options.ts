import { InvalidArgumentError } from 'commander';

/**
 * Option value parsers for commander: each rejects a bad value with a message naming what was
 * expected; commander adds the option name, and the CLI maps it to ERR_USAGE (exit 2).
 */

export function intOption(min = -Infinity, max = Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer${rangeText(min, max)}, got "${v}"`);
    }
    return n;
  };
}

export function floatOption(min = -Infinity, max = Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a number${rangeText(min, max)}, got "${v}"`);
    }
    return n;
  };
}

export function listOption<T>(item: (v: string) => T): (v: string) => T[] {
  return (v) => v.split(',').map((s) => item(s.trim()));
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` >= ${min}`;
  if (min === -Infinity) return ` <= ${max}`;
  return ` in [${min}, ${max}]`;
}
