/**
 * Fast, exact text for the hot path of the CSV writer (a million rows must take seconds, and
 * `Number#toFixed` / `Date#toISOString` / `Number#toString(16)` dominate otherwise).
 */

const TWO: readonly string[] = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000];

/**
 * `x` rounded half away from zero to `d` decimals (0-6), as text. The value written is exactly
 * `Math.round(|x| * 10^d) / 10^d` with the sign of x, so parsing the text back gives that number.
 */
export function fixed(x: number, d: number): string {
  const p = POW10[d] as number;
  const n = Math.round(Math.abs(x) * p);
  const sign = x < 0 && n !== 0 ? '-' : '';
  if (d === 0) return sign + String(n);
  const ip = Math.floor(n / p);
  const frac = String(n - ip * p).padStart(d, '0');
  return `${sign}${ip}.${frac}`;
}

/** Eight lowercase hex digits of a 32-bit unsigned integer. */
export function hex8(x: number): string {
  return (
    (HEX2[(x >>> 24) & 255] as string) +
    (HEX2[(x >>> 16) & 255] as string) +
    (HEX2[(x >>> 8) & 255] as string) +
    (HEX2[x & 255] as string)
  );
}

const DAY = 86_400_000;
const dateCache = new Map<number, string>();

/** `YYYY-MM-DD` of a day number since 1970-01-01 (cached: rows of one run span few days). */
function dateText(day: number): string {
  let s = dateCache.get(day);
  if (s === undefined) {
    s = new Date(day * DAY).toISOString().slice(0, 10);
    if (dateCache.size > 4096) dateCache.clear();
    dateCache.set(day, s);
  }
  return s;
}

const offsetCache = new Map<number, string>();

function offsetText(min: number): string {
  let s = offsetCache.get(min);
  if (s === undefined) {
    const a = Math.abs(min);
    s = `${min < 0 ? '-' : '+'}${TWO[Math.floor(a / 60)]}:${TWO[a % 60]}`;
    offsetCache.set(min, s);
  }
  return s;
}

/**
 * ISO 8601 local date-time with its UTC offset, to the second (truncated), e.g.
 * `2024-03-10T03:15:00-07:00`: the instant is exact and the local hour readable.
 */
export function isoLocal(utcMs: number, offsetMin: number): string {
  const local = Math.floor(utcMs / 1000) * 1000 + offsetMin * 60_000;
  const day = Math.floor(local / DAY);
  const sec = Math.floor((local - day * DAY) / 1000);
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec - h * 3600) / 60);
  return `${dateText(day)}T${TWO[h]}:${TWO[m]}:${TWO[sec - h * 3600 - m * 60]}${offsetText(offsetMin)}`;
}
