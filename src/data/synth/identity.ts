/**
 * Personal identifiers with the shape of real ones: payment card numbers with real issuer
 * identification number (IIN) prefixes and a valid Luhn check digit (ISO/IEC 7812-1, Annex B), US
 * Social Security numbers in the `AAA-GG-SSSS` format avoiding the numbers the SSA never issues, NANP
 * telephone numbers, public IPv4 addresses and device identifiers.
 */
import type { Rng } from '../../core/index.js';
import { EMAIL_DOMAINS } from './reference.js';

/**
 * The Luhn check digit (ISO/IEC 7812-1 Annex B) for a string of decimal digits without its check digit.
 *
 * @example
 * ```ts
 * luhnCheckDigit('7992739871'); // 3 (so 79927398713 is valid)
 * ```
 */
export function luhnCheckDigit(payload: string): number {
  let sum = 0;
  // Starting from the rightmost payload digit, every other digit is doubled (the check digit will sit
  // to its right and is not doubled).
  for (let i = payload.length - 1, double = true; i >= 0; i--, double = !double) {
    const d = payload.charCodeAt(i) - 48;
    if (d < 0 || d > 9) throw new RangeError(`luhnCheckDigit: not a digit string: ${payload}`);
    if (double) {
      const x = d * 2;
      sum += x > 9 ? x - 9 : x;
    } else sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** Whether a string of decimal digits (with its check digit last) passes the Luhn check. */
export function isLuhnValid(digits: string): boolean {
  if (!/^[0-9]{2,}$/.test(digits)) return false;
  return luhnCheckDigit(digits.slice(0, -1)) === Number(digits[digits.length - 1]);
}

/** Card networks and their IIN prefixes and lengths. */
export const CARD_NETWORKS = [
  { name: 'visa', prefixes: ['4'], length: 16, share: 0.52 },
  { name: 'mastercard', prefixes: ['51', '52', '53', '54', '55'], length: 16, share: 0.3 },
  { name: 'amex', prefixes: ['34', '37'], length: 15, share: 0.1 },
  { name: 'discover', prefixes: ['6011'], length: 16, share: 0.08 },
] as const;

const NETWORK_SHARES = CARD_NETWORKS.map((n) => n.share);

/** A Luhn-valid card number of a network chosen by market share. */
export function makeCardNumber(rng: Rng): string {
  const net = CARD_NETWORKS[rng.weightedIndex(NETWORK_SHARES)] ?? CARD_NETWORKS[0];
  let s = rng.pick(net.prefixes) as string;
  while (s.length < net.length - 1) s += String.fromCharCode(48 + rng.int(10));
  return s + String(luhnCheckDigit(s));
}

/**
 * A Social Security number `AAA-GG-SSSS` the SSA could have issued: area 001-899 except 666, group
 * 01-99, serial 0001-9999 (SSA, "Social Security Number Randomization", 2011).
 */
export function makeSsn(rng: Rng): string {
  let area = 1 + rng.int(899);
  if (area === 666) area = 667;
  const group = 1 + rng.int(99);
  const serial = 1 + rng.int(9999);
  return `${pad(area, 3)}-${pad(group, 2)}-${pad(serial, 4)}`;
}

/** Whether `s` is a well-formed SSN the SSA could issue (format and the never-issued ranges). */
export function isPlausibleSsn(s: string): boolean {
  const m = /^([0-9]{3})-([0-9]{2})-([0-9]{4})$/.exec(s);
  if (!m) return false;
  const area = Number(m[1]);
  return area !== 0 && area !== 666 && area < 900 && m[2] !== '00' && m[3] !== '0000';
}

/**
 * A NANP number `(AAA) EEE-XXXX`: the exchange avoids N11 service codes and 555 (reserved for fiction
 * and directory assistance) and starts with 2-9 as the plan requires.
 */
export function makePhone(rng: Rng, areaCode: number): string {
  let exchange: number;
  do exchange = 200 + rng.int(800);
  while (exchange % 100 === 11 || exchange === 555);
  return `(${areaCode}) ${exchange}-${pad(rng.int(10000), 4)}`;
}

/** An email address derived from the name, at an RFC 2606 reserved domain. */
export function makeEmail(rng: Rng, first: string, last: string): string {
  const f = first.toLowerCase().replace(/[^a-z]/g, '');
  const l = last.toLowerCase().replace(/[^a-z]/g, '');
  const style = rng.int(5);
  const n = rng.int(100);
  const local =
    style === 0
      ? `${f}.${l}`
      : style === 1
        ? `${f}${l}${n}`
        : style === 2
          ? `${f[0]}${l}`
          : style === 3
            ? `${f}_${l}${n}`
            : `${l}.${f}${1950 + rng.int(55)}`;
  return `${local}@${rng.pick(EMAIL_DOMAINS)}`;
}

/**
 * A public unicast IPv4 address: never in 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
 * 192.0.0/24, 192.0.2/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24 or 224/3 (RFC 6890).
 */
export function makePublicIpv4(rng: Rng): string {
  for (;;) {
    const a = 1 + rng.int(223);
    const b = rng.int(256);
    const c = rng.int(256);
    if (
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168) ||
      (a === 192 && b === 0 && (c === 0 || c === 2)) ||
      (a === 198 && (b === 18 || b === 19)) ||
      (a === 198 && b === 51 && c === 100) ||
      (a === 203 && b === 0 && c === 113)
    ) {
      continue;
    }
    return `${a}.${b}.${c}.${1 + rng.int(254)}`;
  }
}

const HEX = '0123456789abcdef';

/** A device identifier: `dev_` and 16 hex digits. */
export function makeDeviceId(rng: Rng): string {
  let s = 'dev_';
  for (let i = 0; i < 16; i++) s += HEX[rng.int(16)];
  return s;
}

export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}
