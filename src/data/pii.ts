import { isIP } from 'node:net';
import { invalidArgument, requireInteger, requireNumberIn, SeededRng } from '../core/index.js';
import { type Column, type Dataset, formatTimestamp, parseTimestamp } from './dataset.js';
import type { PiiKind, Sensitivity } from './schema.js';

/**
 * Detection of personal data in tabular columns, by column name AND by values. The article found
 * sensitive fields by three fixed names; here each kind of personal data has name patterns (strong ones
 * are enough on their own, weak ones need the values to agree) and, where values have a shape, a value
 * test run on a seeded random sample of the column: card numbers must pass the Luhn check
 * (ISO/IEC 7812-1), SSNs follow the SSA's assignment rules, IBANs the ISO 13616 mod-97 check, e-mail
 * addresses, phone numbers, IP addresses and street addresses their usual forms. A column is flagged by
 * its values alone when at least `minMatchRate` (default 0.8) of the sampled values match.
 */

/** A detector of one kind of personal data. */
export interface PiiDetector {
  readonly kind: PiiKind;
  readonly sensitivity: Extract<Sensitivity, 'personal' | 'sensitive'>;
  /** Patterns on the normalised column name (`snake_case`, lower case) that suffice on their own. */
  readonly strongNames?: RegExp;
  /** Patterns on the name that need at least `weakMatchRate` of the values to match `test`. */
  readonly weakNames?: RegExp;
  /** Names that rule the kind out (a merchant's name is no person's name). */
  readonly excludeNames?: RegExp;
  /** Tests one value (numbers arrive as their decimal text, timestamps as ISO 8601). */
  readonly test?: (value: string) => boolean;
  /** When true, the values alone never decide (the shape is too common, e.g. postal codes). */
  readonly needsName?: boolean;
}

/** Why a column was flagged. */
export interface PiiFinding {
  field: string;
  kind: PiiKind;
  sensitivity: Extract<Sensitivity, 'personal' | 'sensitive'>;
  by: 'name' | 'values' | 'name+values';
  /** Share of the sampled non-missing values that matched the kind's value test (when it has one). */
  matchRate?: number;
  /**
   * How sure the detector is, in (0, 1]: highest when the name and the values agree, lower for the
   * values alone, lowest for the name alone (a heuristic scale, for ranking findings in a review).
   */
  confidence?: number;
  /** Why the column was flagged, in words (for the report a reviewer reads). */
  reason?: string;
}

/** Options of {@link detectPii}. */
export interface PiiOptions {
  /** Values sampled per column for the value tests (default 1000). */
  sample?: number;
  /** Seed of the sample (default 0): results are reproducible. */
  seed?: number;
  /** Share of sampled values that must match for values alone to flag a column (default 0.8). */
  minMatchRate?: number;
  /** Share needed when a weak name pattern also matches (default 0.5). */
  weakMatchRate?: number;
  /** Extra detectors, tried after the built-in ones. */
  detectors?: readonly PiiDetector[];
}

/** Luhn (mod 10) check of a digit string, as card numbers carry (ISO/IEC 7812-1 annex B). */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** A payment card number: 13 to 19 digits (spaces or dashes allowed between groups), Luhn-valid. */
export function isCardNumber(s: string): boolean {
  if (!/^\d[\d -]{11,22}\d$/.test(s)) return false;
  const digits = s.replace(/[ -]/g, '');
  if (digits.length < 13 || digits.length > 19) return false;
  // A run of one digit (0000 0000 ...) passes Luhn but is no card.
  if (/^(\d)\1+$/.test(digits)) return false;
  return luhnValid(digits);
}

/**
 * A US Social Security number written ddd-dd-dddd that could have been issued: area not 000, 666 or
 * 900-999, group not 00, serial not 0000 (SSA, "Social Security Number Randomization", 2011).
 */
export function isSsn(s: string): boolean {
  return /^(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$/.test(s);
}

const EMAIL_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/** An e-mail address (the dot-atom form of RFC 5322 with a dotted domain). */
export function isEmail(s: string): boolean {
  return s.length <= 254 && EMAIL_RE.test(s);
}

/**
 * A phone number in a written form: international (`+44 20 7946 0958`, `+15551234567`), North American
 * (`(555) 123-4567`, `555-123-4567`, `555.123.4567`), or national with a trunk 0 (`020 7946 0958`).
 * Bare digit strings are not phones by their values alone (see the name patterns).
 */
export function isPhone(s: string): boolean {
  const digits = s.replace(/\D/g, '').length;
  if (digits < 7 || digits > 15) return false;
  if (/^\+\d[\d ().-]{5,20}\d$/.test(s)) return true;
  if (/^(?:1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}$/.test(s)) return true;
  return /^0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}$/.test(s);
}

/** A phone number in any form, for columns whose name says phone: 7 to 15 digits and separators. */
function isPhoneLoose(s: string): boolean {
  if (!/^\+?[\d ().-]+$/.test(s)) return false;
  const digits = s.replace(/\D/g, '').length;
  return digits >= 7 && digits <= 15;
}

/** An IPv4 or IPv6 address. */
export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** An IBAN: country code, two check digits, up to 30 letters or digits, passing ISO 13616's mod 97. */
export function isIban(s: string): boolean {
  const t = s.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(t)) return false;
  const moved = t.slice(4) + t.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const code = ch.charCodeAt(0);
    const v = code >= 65 ? String(code - 55) : ch;
    for (const d of v) rem = (rem * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return rem === 1;
}

const STREET_SUFFIX =
  'street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace|ter|way|parkway|pkwy|highway|hwy|circle|cir|square|sq|trail|trl|crescent|cres|close|grove|row|alley|plaza|loop|run|path|pike|mews|gardens|hill|walk';
const ADDRESS_RES = [
  // 221B Baker Street, 1600 Pennsylvania Ave NW, 12 Elm St. Apt 4
  new RegExp(
    `^\\d{1,6}[A-Za-z]?,?\\s+(?:[\\p{L}0-9.'’-]+\\s+){0,5}(?:${STREET_SUFFIX})\\.?(?:[\\s,].*)?$`,
    'iu',
  ),
  // 12 rue de la Paix, 3 calle Mayor
  /^\d{1,5}[A-Za-z]?,?\s+(?:rue|avenue|av\.|boulevard|bd|calle|via|viale|avenida|rua|chemin|place|piazza)\s+\p{L}.*$/iu,
  // Hauptstraße 5, Kalverstraat 12
  /^[\p{L} .'-]*\p{L}(?:straße|strasse|str\.|weg|gasse|platz|allee|straat|gracht|laan|gatan|vägen|vej|gade)\s+\d{1,5}[a-z]?\b.*$/iu,
];

/** A street address: a house number and a street name with a street word, in common Western forms. */
export function isStreetAddress(s: string): boolean {
  if (s.length < 6 || s.length > 200) return false;
  return ADDRESS_RES.some((re) => re.test(s));
}

const NAME_TOKEN = /^\p{Lu}[\p{L}'’.-]*$/u;

/** A person's name as usually written: one to four capitalised words of letters (`Jane Doe`, `J. O'Neil`). */
export function isPersonName(s: string): boolean {
  const t = s.trim();
  if (t.length < 2 || t.length > 80) return false;
  const parts = t.split(/\s+/);
  if (parts.length > 4) return false;
  return parts.every((p) => NAME_TOKEN.test(p)) && parts.some((p) => p.replace(/[.'’-]/g, '').length >= 2);
}

/** A calendar date in ISO or day/month/year form between 1900 and today: the shape of a birth date. */
export function isBirthDate(s: string): boolean {
  let t = parseTimestamp(s);
  if (Number.isNaN(t)) {
    const m =
      /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s) ?? /^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$/.exec(s);
    if (!m) return false;
    const a = Number(m[1]);
    const b = Number(m[2]);
    const c = Number(m[3]);
    // yyyy/mm/dd, or dd/mm/yyyy, or mm/dd/yyyy when the first number cannot be a month's day order.
    const [y, mo, d] = a > 31 ? [a, b, c] : b > 12 ? [c, a, b] : [c, b, a];
    t = parseTimestamp(`${y}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}`);
    if (Number.isNaN(t)) return false;
  }
  return t >= Date.UTC(1900, 0, 1) && t <= Date.now();
}

/** An opaque identifier: up to 4 letters, an optional separator, then 5 or more digits; or a UUID. */
export function isOpaqueId(s: string): boolean {
  return (
    /^[A-Za-z]{0,4}[-_]?\d{5,}$/.test(s) ||
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)
  );
}

/** A postal code: US ZIP (+4), UK, Canadian, or a 4-6 digit code. Only used with a postal-code name. */
function isPostalCode(s: string): boolean {
  return (
    /^\d{5}(?:-\d{4})?$/.test(s) ||
    /^[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}$/i.test(s) ||
    /^[A-Z]\d[A-Z]\s?\d[A-Z]\d$/i.test(s) ||
    /^\d{4,6}$/.test(s)
  );
}

function inRange(lo: number, hi: number): (s: string) => boolean {
  return (s) => {
    const x = Number(s);
    return s.trim() !== '' && Number.isFinite(x) && x >= lo && x <= hi;
  };
}

/** Builds a name pattern matching whole `_`-separated words of a normalised column name. */
function words(...alternatives: string[]): RegExp {
  return new RegExp(`(?:^|_)(?:${alternatives.join('|')})(?:_|$)`);
}

/**
 * The built-in detectors, most specific first (a column takes the kind with the strongest evidence;
 * ties go to the earlier detector).
 */
export const PII_DETECTORS: readonly PiiDetector[] = [
  {
    kind: 'card_number',
    sensitivity: 'sensitive',
    strongNames: words(
      'card_?(?:number|num|no|nbr)',
      'cc_?(?:number|num|no)',
      'ccn',
      'pan',
      'credit_?card',
      'debit_?card',
      'card_?pan',
    ),
    weakNames: words('card'),
    test: isCardNumber,
  },
  {
    kind: 'national_id',
    sensitivity: 'sensitive',
    strongNames: words(
      'ssn',
      'social_?security(?:_?(?:number|no|num))?',
      'national_?id(?:_?(?:number|no))?',
      'nino',
      'passport(?:_?(?:number|no))?',
      'tax_?id',
      'tin',
      'sin',
      'nid',
      'id_?card',
    ),
    test: isSsn,
  },
  {
    kind: 'iban',
    sensitivity: 'sensitive',
    strongNames: words('iban', 'bank_?account(?:_?(?:number|no))?'),
    test: isIban,
  },
  {
    kind: 'email',
    sensitivity: 'personal',
    strongNames: words('e_?mail(?:_?address)?', 'mail'),
    test: isEmail,
  },
  {
    kind: 'ip',
    sensitivity: 'personal',
    strongNames: words(
      'ip',
      'ip_?addr(?:ess)?',
      'ipv4',
      'ipv6',
      'remote_?addr',
      'client_?ip',
      'src_?ip',
      'dst_?ip',
    ),
    test: isIpAddress,
  },
  {
    kind: 'phone',
    sensitivity: 'personal',
    strongNames: words(
      'phone(?:_?(?:number|no))?',
      'telephone',
      'mobile(?:_?(?:number|no))?',
      'msisdn',
      'cell_?phone',
      'fax',
    ),
    weakNames: words('tel', 'cell', 'contact_?number'),
    test: isPhone,
  },
  {
    kind: 'date_of_birth',
    sensitivity: 'personal',
    // Name and date values together: a date column called "created" is no birth date.
    weakNames: words('dob', 'birth_?date', 'date_?of_?birth', 'birthday', 'born(?:_?on)?', 'birth'),
    test: isBirthDate,
    needsName: true,
  },
  {
    kind: 'name',
    sensitivity: 'personal',
    strongNames: words(
      'first_?name',
      'last_?name',
      'full_?name',
      'sur_?name',
      'given_?name',
      'family_?name',
      'fore_?name',
      'middle_?name',
      'maiden_?name',
      'card_?holder(?:_?name)?',
      'holder_?name',
      'account_?holder(?:_?name)?',
      'customer_?name',
      'client_?name',
      'person_?name',
      'beneficiary(?:_?name)?',
      'patient_?name',
      'employee_?name',
    ),
    weakNames: words('name', 'holder', 'owner', 'customer', 'payee', 'payer'),
    excludeNames: words(
      'merchant',
      'company',
      'business',
      'store',
      'shop',
      'vendor',
      'product',
      'brand',
      'org',
      'organi[sz]ation',
      'employer',
      'bank',
      'branch',
      'file',
      'host',
      'device',
      'city',
      'country',
      'state',
      'region',
      'street',
      'category',
      'item',
      'app',
      'user_?agent',
    ),
    test: isPersonName,
    needsName: true,
  },
  {
    kind: 'address',
    sensitivity: 'personal',
    strongNames: words(
      'street(?:_?address)?',
      'address(?:_?line)?(?:_?\\d)?',
      'home_?address',
      'billing_?address',
      'shipping_?address',
      'residence',
      'addr',
    ),
    test: isStreetAddress,
  },
  {
    kind: 'postal_code',
    sensitivity: 'personal',
    strongNames: words('zip(?:_?code)?', 'post_?code', 'postal_?code', 'postcode'),
    test: isPostalCode,
    needsName: true,
  },
  {
    kind: 'geolocation',
    sensitivity: 'personal',
    strongNames: words('latitude', 'longitude', 'geo_?location', 'coordinates', 'gps'),
    weakNames: words('lat', 'lon', 'lng', 'long'),
    test: inRange(-180, 180),
    needsName: true,
  },
  {
    kind: 'account_id',
    sensitivity: 'personal',
    strongNames: words(
      'account_?(?:number|no|num|id)',
      'acct_?(?:number|no|num|id)?',
      'customer_?id',
      'client_?id',
      'user_?id',
      'member_?id',
      'patient_?id',
      'employee_?id',
      'cardholder_?id',
    ),
    // An opaque identifier (C1231006815, ACC-0042137, a UUID) in a column named after a party to the
    // transaction: PaySim's nameOrig and nameDest are customer ids.
    weakNames: words(
      'name',
      'orig',
      'origin',
      'dest',
      'destination',
      'customer',
      'client',
      'user',
      'account',
      'acct',
      'member',
      'sender',
      'recipient',
      'payer',
      'payee',
      'beneficiary',
    ),
    test: isOpaqueId,
    needsName: true,
  },
  {
    kind: 'device_id',
    sensitivity: 'personal',
    // Online identifiers are personal data (GDPR Recital 30): they single out a person's device.
    strongNames: words(
      'device_?(?:id|fingerprint|identifier)',
      'cookie_?id',
      'advertising_?id',
      'ad_?id',
      'idfa',
      'imei',
      'mac_?address',
    ),
  },
  {
    kind: 'special_category',
    sensitivity: 'sensitive',
    // GDPR Art. 9 special categories of personal data.
    strongNames: words(
      'race',
      'racial',
      'ethnicity',
      'ethnic(?:_?origin|_?group)?',
      'religion',
      'religious',
      'belief',
      'health',
      'diagnosis',
      'medical',
      'disease',
      'disability',
      'sexual_?orientation',
      'sex_?life',
      'political',
      'politics',
      'union_?member(?:ship)?',
      'trade_?union',
      'genetic',
      'biometric',
    ),
  },
  {
    kind: 'quasi_identifier',
    sensitivity: 'personal',
    // Sweeney (2002): a few demographic attributes together single out most people.
    strongNames: words(
      'age',
      'sex',
      'gender',
      'marital(?:_?status)?',
      'marriage',
      'nationality',
      'native_?country',
      'country_?of_?birth',
      'birth_?place',
      'place_?of_?birth',
    ),
  },
];

/** Normalises a column name for the name patterns: camelCase and separators become `_`, lower case. */
export function normalizeColumnName(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** The column's non-missing values as text (numbers in decimal, timestamps as ISO 8601). */
function textAt(c: Column, i: number): string | null {
  if (c.type === 'string') return c.values[i]!;
  const x = c.values[i]!;
  if (Number.isNaN(x)) return null;
  return c.type === 'timestamp' ? formatTimestamp(x) : String(x);
}

/** A seeded uniform sample (without replacement) of the non-missing values of a column. */
export function sampleValues(c: Column, n: number, seed = 0): string[] {
  const rows = c.values.length;
  const rng = new SeededRng(seed);
  const present = (i: number): boolean =>
    c.type === 'string' ? c.values[i] !== null : !Number.isNaN(c.values[i]!);
  if (rows > 4 * n) {
    // Large column: draw distinct row indices at random and keep the present ones, a uniform sample of
    // the present values, in O(n) instead of a pass over every row. A mostly-missing column falls
    // through to the full pass below.
    const seen = new Set<number>();
    const out: string[] = [];
    for (let tries = 0; tries < 20 * n && out.length < n; tries++) {
      const i = rng.int(rows);
      if (seen.has(i)) continue;
      seen.add(i);
      if (present(i)) out.push(textAt(c, i)!);
    }
    if (out.length === n) return out;
  }
  const idx: number[] = [];
  for (let i = 0; i < rows; i++) if (present(i)) idx.push(i);
  if (idx.length > n) {
    // Partial Fisher-Yates: the first n entries are a uniform sample.
    for (let i = 0; i < n; i++) {
      const j = i + rng.int(idx.length - i);
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
    }
    idx.length = n;
  }
  return idx.map((i) => textAt(c, i)!);
}

/** Finds the personal-data kind of one column, or undefined. */
export function detectColumn(c: Column, opts: PiiOptions = {}): PiiFinding | undefined {
  const sample = sampleValues(c, opts.sample ?? 1000, opts.seed ?? 0);
  return detectFromSample(c.name, sample, opts);
}

function detectFromSample(name: string, sample: readonly string[], opts: PiiOptions): PiiFinding | undefined {
  const minRate = opts.minMatchRate ?? 0.8;
  const weakRate = opts.weakMatchRate ?? 0.5;
  const norm = normalizeColumnName(name);
  const detectors = [...PII_DETECTORS, ...(opts.detectors ?? [])];
  let best: { score: number; finding: PiiFinding } | undefined;
  for (const d of detectors) {
    if (d.excludeNames?.test(norm)) continue;
    const strong = d.strongNames?.test(norm) === true;
    const weak = !strong && d.weakNames?.test(norm) === true;
    let rate: number | undefined;
    if (d.test && sample.length > 0 && (strong || weak || !d.needsName)) {
      // A column named as a phone column accepts any phone-like digits, not only the written forms.
      const loose = d.kind === 'phone' && (strong || weak);
      let hits = 0;
      for (const v of sample) if (d.test(v) || (loose && isPhoneLoose(v))) hits++;
      rate = hits / sample.length;
    }
    let score = 0;
    let by: PiiFinding['by'] = 'name';
    if (rate !== undefined && rate >= minRate && !d.needsName) {
      score = 2 + rate;
      by = strong || weak ? 'name+values' : 'values';
    } else if ((strong || weak) && rate !== undefined && rate >= weakRate) {
      score = 1.5 + rate;
      by = 'name+values';
    } else if (strong) {
      score = 1;
      by = 'name';
    }
    if (score > 0 && (best === undefined || score > best.score)) {
      const finding: PiiFinding = { field: name, kind: d.kind, sensitivity: d.sensitivity, by };
      if (rate !== undefined) finding.matchRate = Math.round(rate * 1000) / 1000;
      Object.assign(
        finding,
        explainFinding(name, d.kind, strong ? 'strong' : weak ? 'weak' : 'none', rate, sample.length, by),
      );
      best = { score, finding };
    }
  }
  return best?.finding;
}

/** The confidence and the reason of a finding (see {@link PiiFinding}). */
function explainFinding(
  field: string,
  kind: PiiKind,
  name: 'strong' | 'weak' | 'none',
  rate: number | undefined,
  sampled: number,
  by: PiiFinding['by'],
): { confidence: number; reason: string } {
  const pct =
    rate === undefined
      ? ''
      : `${Math.round(rate * 100)} % of ${sampled} sampled values have the form of ${kind.replace(/_/g, ' ')}`;
  const named = `the column name "${field}" ${name === 'strong' ? 'names' : 'suggests'} ${kind.replace(/_/g, ' ')}`;
  let confidence: number;
  let reason: string;
  if (by === 'name+values') {
    confidence = (name === 'strong' ? 0.9 : 0.8) + 0.1 * (rate ?? 0);
    reason = `${named}, and ${pct}`;
  } else if (by === 'values') {
    confidence = 0.5 + 0.4 * (rate ?? 0);
    reason = pct;
  } else {
    confidence = rate === undefined ? 0.6 : 0.5;
    reason = rate === undefined ? named : `${named} (but only ${pct})`;
  }
  return { confidence: Math.round(Math.min(1, confidence) * 100) / 100, reason };
}

/**
 * Finds the columns holding personal data, by name and by values (see the module comment).
 *
 * @example
 * ```ts
 * detectPii(ds); // [{ field: 'card', kind: 'card_number', sensitivity: 'sensitive', by: 'values', matchRate: 1 }]
 * ```
 */
export function detectPii(ds: Dataset, opts: PiiOptions = {}): PiiFinding[] {
  if (opts.sample !== undefined) requireInteger('sample', opts.sample, 1);
  if (opts.minMatchRate !== undefined)
    requireNumberIn('minMatchRate', opts.minMatchRate, 0, 1, { minExclusive: true });
  if (opts.weakMatchRate !== undefined)
    requireNumberIn('weakMatchRate', opts.weakMatchRate, 0, 1, { minExclusive: true });
  if (opts.seed !== undefined) requireInteger('seed', opts.seed, 0);
  for (const d of opts.detectors ?? []) {
    if (!d.strongNames && !d.weakNames && !d.test)
      throw invalidArgument('detectors', 'a name pattern or a value test', d.kind);
  }
  const out: PiiFinding[] = [];
  for (const c of ds.columns) {
    const f = detectColumn(c, opts);
    if (f) out.push(f);
  }
  return out;
}
