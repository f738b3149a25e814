/**
 * The synthetic transaction generator: identities against known vectors and their own rules,
 * determinism, the fraud rate, each fraud pattern and look-alike, the history features recomputed
 * independently, and that fraud is learnable but not separable by one feature.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { fixed, isoLocal } from '../../src/data/synth/format.js';
import { haversineKm, utcOffsetMin } from '../../src/data/synth/geo.js';
import {
  CATEGORIES,
  FRAUD_PATTERNS,
  generateTransactions,
  isLuhnValid,
  isPlausibleSsn,
  LEGIT_SCENARIOS,
  luhnCheckDigit,
  type SynthOptions,
  TRANSACTION_COLUMNS,
  type TransactionRecord,
} from '../../src/data/synth/index.js';
import { TRAVEL_ABROAD, US_PLACES } from '../../src/data/synth/reference.js';

function all(o: SynthOptions): TransactionRecord[] {
  return [...generateTransactions(o)];
}

/** An independent Luhn check (ISO/IEC 7812-1 Annex B), written from the standard, not from the code. */
function luhn(digits: string): boolean {
  let sum = 0;
  const rev = [...digits].reverse().map(Number);
  rev.forEach((d, i) => {
    if (i % 2 === 1) {
      const x = d * 2;
      sum += Math.floor(x / 10) + (x % 10);
    } else sum += d;
  });
  return sum % 10 === 0;
}

// Published test card numbers (network test numbers and the Wikipedia Luhn example) and corruptions.
const LUHN_VALID = [
  '79927398713',
  '4111111111111111',
  '4012888888881881',
  '5555555555554444',
  '5105105105105100',
  '378282246310005',
  '371449635398431',
  '6011111111111117',
  '6011000990139424',
];
const LUHN_INVALID = [
  '79927398710',
  '4111111111111112',
  '5555555555554443',
  '378282246310006',
  '1234567812345678',
];

/** One shared, moderately large stream for the distribution tests (about 2-4 s to generate). */
const BIG: SynthOptions = { rows: 120_000, fraudRate: 0.03, seed: 20240601 };
let bigRows: TransactionRecord[] | undefined;
function big(): TransactionRecord[] {
  bigRows ??= all(BIG);
  return bigRows;
}

/** Area under the ROC curve (Mann-Whitney U with mid-ranks for ties). */
function auc(scores: readonly number[], labels: readonly number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => (scores[a] as number) - (scores[b] as number));
  let rankSumPos = 0;
  let nPos = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1] as number] === scores[idx[i] as number]) j++;
    const mid = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[idx[k] as number] === 1) {
        rankSumPos += mid;
        nPos++;
      }
    }
    i = j + 1;
  }
  const nNeg = labels.length - nPos;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

describe('identities', () => {
  it('luhnCheckDigit / isLuhnValid agree with published vectors', () => {
    for (const v of LUHN_VALID) {
      assert.ok(isLuhnValid(v), v);
      assert.ok(luhn(v), v);
      assert.equal(luhnCheckDigit(v.slice(0, -1)), Number(v.at(-1)), v);
    }
    for (const v of LUHN_INVALID) {
      assert.equal(isLuhnValid(v), false, v);
      assert.equal(luhn(v), false, v);
    }
    assert.equal(isLuhnValid('4111-1111-1111-1111'), false);
    assert.equal(isLuhnValid(''), false);
  });

  it('SSN plausibility rejects the never-issued ranges', () => {
    for (const s of ['123-45-6789', '001-01-0001', '899-99-9999', '665-12-3456'])
      assert.ok(isPlausibleSsn(s), s);
    for (const s of [
      '000-12-3456',
      '666-12-3456',
      '900-12-3456',
      '123-00-4567',
      '123-45-0000',
      '123456789',
      '12-345-6789',
    ]) {
      assert.equal(isPlausibleSsn(s), false, s);
    }
  });

  it('every cardholder has a Luhn-valid card with a real IIN, a plausible SSN, and consistent contact data', () => {
    const rows = all({ rows: 20_000, fraudRate: 0.02, seed: 11, cardholders: 2000 });
    const seen = new Map<string, TransactionRecord>();
    for (const r of rows) if (!seen.has(r.cardholder_id)) seen.set(r.cardholder_id, r);
    assert.ok(seen.size > 1500, `${seen.size} cardholders`);
    const networks = { visa: 0, mastercard: 0, amex: 0, discover: 0 };
    for (const r of seen.values()) {
      const c = r.card_number;
      assert.ok(luhn(c), `Luhn: ${c}`);
      if (/^4\d{15}$/.test(c)) networks.visa++;
      else if (/^5[1-5]\d{14}$/.test(c)) networks.mastercard++;
      else if (/^3[47]\d{13}$/.test(c)) networks.amex++;
      else if (/^6011\d{12}$/.test(c)) networks.discover++;
      else assert.fail(`card number with no known IIN/length: ${c}`);
      assert.match(r.national_id, /^\d{3}-\d{2}-\d{4}$/);
      const area = Number(r.national_id.slice(0, 3));
      assert.ok(area !== 0 && area !== 666 && area < 900, r.national_id);
      assert.notEqual(r.national_id.slice(4, 6), '00');
      assert.notEqual(r.national_id.slice(7), '0000');
      // Email derived from the name, at a reserved domain.
      const last = r.last_name.toLowerCase().replace(/[^a-z]/g, '');
      const first = r.first_name.toLowerCase().replace(/[^a-z]/g, '');
      assert.ok(r.email.includes(last), `${r.email} from ${r.last_name}`);
      assert.ok(
        r.email.includes(first) || r.email.startsWith(first[0] as string),
        `${r.email} from ${r.first_name}`,
      );
      assert.match(r.email, /^[a-z0-9._]+@(mail\.)?example\.(com|net|org)$/);
      assert.match(r.phone, /^\([2-9]\d{2}\) [2-9]\d{2}-\d{4}$/);
      assert.doesNotMatch(r.phone, / 555-/);
      assert.match(r.street, /^\d{1,4} [A-Z][a-z]+ [A-Z][a-z]+( Apt \d{1,2}[ABC]?)?$/);
      assert.match(r.zip, /^\d{5}$/);
      const place = US_PLACES.find((p) => p.name === r.city && p.region === r.state);
      assert.ok(place, `${r.city}, ${r.state} is a known US city`);
      assert.ok(r.zip.startsWith(place.zip3 as string), `${r.zip} in ${r.city}`);
      assert.ok((place.areaCodes ?? []).includes(Number(r.phone.slice(1, 4))), `${r.phone} in ${r.city}`);
      const dob = Date.parse(`${r.date_of_birth}T00:00:00Z`);
      assert.ok(Number.isFinite(dob) && /^\d{4}-\d{2}-\d{2}$/.test(r.date_of_birth), r.date_of_birth);
      const age = (Date.UTC(2024, 0, 1) - dob) / (365.25 * 86_400_000);
      assert.ok(age >= 18 && age < 82, `age ${age}`);
    }
    // Every network appears, roughly in its market share.
    assert.ok(
      networks.visa > networks.mastercard && networks.mastercard > networks.amex,
      JSON.stringify(networks),
    );
    assert.ok(networks.amex > 0 && networks.discover > 0, JSON.stringify(networks));
  });
});

describe('clock and formatting', () => {
  const ny = US_PLACES.find((p) => p.name === 'New York')!;
  const phoenix = US_PLACES.find((p) => p.name === 'Phoenix')!;
  const london = TRAVEL_ABROAD.find((p) => p.name === 'London')!;

  it('daylight saving time switches at the legal instants (US 2024: Mar 10 07:00Z, Nov 3 06:00Z; EU: Mar 31 and Oct 27 01:00Z)', () => {
    assert.equal(utcOffsetMin(ny, Date.parse('2024-03-10T06:59:59Z')), -300);
    assert.equal(utcOffsetMin(ny, Date.parse('2024-03-10T07:00:00Z')), -240);
    assert.equal(utcOffsetMin(ny, Date.parse('2024-11-03T05:59:59Z')), -240);
    assert.equal(utcOffsetMin(ny, Date.parse('2024-11-03T06:00:00Z')), -300);
    assert.equal(utcOffsetMin(phoenix, Date.parse('2024-07-01T12:00:00Z')), -420);
    assert.equal(utcOffsetMin(london, Date.parse('2024-03-31T00:59:59Z')), 0);
    assert.equal(utcOffsetMin(london, Date.parse('2024-03-31T01:00:00Z')), 60);
    assert.equal(utcOffsetMin(london, Date.parse('2024-10-27T01:00:00Z')), 0);
    // 2025 as well (the cache follows the year).
    assert.equal(utcOffsetMin(ny, Date.parse('2025-03-09T07:00:00Z')), -240);
    assert.equal(utcOffsetMin(ny, Date.parse('2025-03-09T06:59:00Z')), -300);
  });

  it('isoLocal writes the local time with its offset; fixed() rounds like the decimal value', () => {
    assert.equal(isoLocal(Date.parse('2024-03-10T07:30:05.999Z'), -240), '2024-03-10T03:30:05-04:00');
    assert.equal(isoLocal(Date.parse('2024-01-01T00:00:00Z'), -300), '2023-12-31T19:00:00-05:00');
    assert.equal(isoLocal(Date.parse('2024-06-30T23:59:59Z'), 330), '2024-07-01T05:29:59+05:30');
    assert.equal(Date.parse('2023-12-31T19:00:00-05:00'), Date.parse('2024-01-01T00:00:00Z'));
    assert.equal(fixed(12.345, 1), '12.3');
    assert.equal(fixed(0.5, 0), '1');
    assert.equal(fixed(-74.00604, 4), '-74.0060');
    assert.equal(fixed(-0.00001, 4), '0.0000');
    assert.equal(fixed(3, 2), '3.00');
    assert.equal(fixed(1234567.891, 2), '1234567.89');
    assert.equal(fixed(0.0505, 3), '0.051');
  });

  it('haversine matches known great-circle distances', () => {
    // New York - Los Angeles is about 3936 km; London - Paris about 344 km.
    assert.ok(Math.abs(haversineKm(40.7128, -74.006, 34.0522, -118.2437) - 3936) < 5);
    assert.ok(Math.abs(haversineKm(51.5074, -0.1278, 48.8566, 2.3522) - 344) < 2);
    assert.equal(haversineKm(10, 20, 10, 20), 0);
  });
});

describe('generateTransactions: options', () => {
  it('validates every option up front, naming it', () => {
    const base: SynthOptions = { rows: 10, fraudRate: 0.1, seed: 1 };
    const bad: [Partial<SynthOptions> & Record<string, unknown>, string, RegExp][] = [
      [{ rows: 0 }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ rows: -5 }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ rows: 2.5 }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ rows: Number.NaN }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ rows: '10' as unknown as number }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ rows: 2e9 }, 'ERR_INVALID_ARGUMENT', /^rows: /],
      [{ fraudRate: -0.01 }, 'ERR_INVALID_ARGUMENT', /^fraudRate: /],
      [{ fraudRate: 0.51 }, 'ERR_INVALID_ARGUMENT', /^fraudRate: /],
      [{ fraudRate: Number.NaN }, 'ERR_INVALID_ARGUMENT', /^fraudRate: /],
      [{ seed: -1 }, 'ERR_RNG_SEED', /seed/],
      [{ seed: 1.5 }, 'ERR_RNG_SEED', /seed/],
      [{ seed: '7' as unknown as number }, 'ERR_RNG_SEED', /seed/],
      [{ start: 'yesterday' }, 'ERR_INVALID_ARGUMENT', /^start: /],
      [{ start: '1999-12-31' }, 'ERR_INVALID_ARGUMENT', /^start: /],
      [{ start: Number.NaN }, 'ERR_INVALID_ARGUMENT', /^start: /],
      [{ cardholders: 0 }, 'ERR_INVALID_ARGUMENT', /^cardholders: /],
      [{ txPerDay: 0 }, 'ERR_INVALID_ARGUMENT', /^txPerDay: /],
      [{ labelNoise: 0.6 }, 'ERR_INVALID_ARGUMENT', /^labelNoise: /],
      [{ fraudMix: { bogus: 1 } as never }, 'ERR_INVALID_ARGUMENT', /^fraudMix: /],
      [{ fraudMix: { card_testing: -1 } }, 'ERR_INVALID_ARGUMENT', /^fraudMix\.card_testing: /],
      [
        { fraudMix: Object.fromEntries(FRAUD_PATTERNS.map((p) => [p, 0])) as never },
        'ERR_INVALID_ARGUMENT',
        /^fraudMix: /,
      ],
    ];
    for (const [patch, code, msg] of bad) {
      assert.throws(
        () => generateTransactions({ ...base, ...patch } as SynthOptions),
        (e: unknown) => isBulwarkError(e, code as never) && msg.test((e as Error).message),
        JSON.stringify(patch),
      );
    }
  });

  it('gives exactly `rows` rows with every column, in time order, with consistent local hours', () => {
    const rows = all({ rows: 5000, fraudRate: 0.05, seed: 3, start: '2024-03-09T12:00:00Z' });
    assert.equal(rows.length, 5000);
    let prev = Number.NEGATIVE_INFINITY;
    const ids = new Set<string>();
    for (const r of rows) {
      for (const c of TRANSACTION_COLUMNS) assert.ok(c in r, c);
      assert.match(r.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/);
      const t = Date.parse(r.timestamp);
      assert.ok(t >= prev, `${r.timestamp} after ${prev}`);
      prev = t;
      assert.equal(r.local_hour, Number(r.timestamp.slice(11, 13)));
      assert.match(r.transaction_id, /^tx_[0-9a-f]{16}$/);
      ids.add(r.transaction_id);
      assert.ok(CATEGORIES.includes(r.category));
      assert.ok(r.amount > 0);
      assert.ok(r.is_fraud === 0 || r.is_fraud === 1);
      assert.equal(r.ip_address !== null, r.channel === 'online', 'an IP exactly for online purchases');
      if (r.channel === 'online') assert.equal(r.merchant_location, '');
      if (r.channel === 'chip' || r.channel === 'swipe') assert.equal(r.device_id, null);
      assert.ok([...FRAUD_PATTERNS, ...LEGIT_SCENARIOS].includes(r.scenario as never));
    }
    assert.equal(ids.size, rows.length, 'transaction ids are unique');
    // The period crosses the US switch to daylight time on 2024-03-10: both offsets of New York appear.
    const nyOffsets = new Set(rows.filter((r) => r.city === 'New York').map((r) => r.timestamp.slice(-6)));
    assert.deepEqual([...nyOffsets].sort(), ['-04:00', '-05:00']);
  });

  it('is deterministic for a seed and different for another seed', () => {
    const o = { rows: 3000, fraudRate: 0.05, seed: 99 };
    assert.deepEqual(all(o), all(o));
    const other = all({ ...o, seed: 100 });
    const a = all(o);
    assert.notDeepEqual(
      a.map((r) => r.card_number),
      other.map((r) => r.card_number),
    );
    assert.notDeepEqual(
      a.map((r) => r.amount),
      other.map((r) => r.amount),
    );
    // bigint seeds work and equal the same number.
    assert.deepEqual(all({ ...o, seed: 99n }), a);
  });

  it('the population does not depend on how many rows are drawn (separate PRNG streams)', () => {
    const short = all({ rows: 500, fraudRate: 0, seed: 5, cardholders: 300 });
    const long = all({ rows: 5000, fraudRate: 0, seed: 5, cardholders: 300 });
    assert.deepEqual(long.slice(0, 500), short);
    const withFraud = all({ rows: 5000, fraudRate: 0.2, seed: 5, cardholders: 300 });
    const cards = new Map(long.map((r) => [r.cardholder_id, r.card_number]));
    for (const r of withFraud) {
      const c = cards.get(r.cardholder_id);
      if (c !== undefined) assert.equal(r.card_number, c);
    }
  });

  it('fraudRate 0 gives no fraud; the rate is on target for several rates', () => {
    assert.equal(all({ rows: 20_000, fraudRate: 0, seed: 8 }).filter((r) => r.is_fraud === 1).length, 0);
    for (const [rate, rows, tol] of [
      [0.001, 60_000, 0.0004],
      [0.05, 30_000, 0.004],
      [0.3, 20_000, 0.015],
      [0.5, 20_000, 0.02],
    ] as const) {
      const fraud = all({ rows, fraudRate: rate, seed: 17 }).filter((r) => r.is_fraud === 1).length;
      assert.ok(Math.abs(fraud / rows - rate) <= tol, `rate ${rate}: got ${fraud / rows}`);
    }
    const b = big();
    const fraud = b.filter((r) => r.is_fraud === 1).length;
    assert.ok(Math.abs(fraud / b.length - BIG.fraudRate) < 0.002, `got ${fraud / b.length}`);
  });
});

describe('generateTransactions: fraud patterns and look-alikes', () => {
  it('history features agree with an independent recomputation from the rows', () => {
    const rows = big().slice(0, 40_000);
    const last = new Map<string, TransactionRecord>();
    let checked = 0;
    for (const r of rows) {
      const p = last.get(r.cardholder_id);
      if (p !== undefined) {
        const minutes = (Date.parse(r.timestamp) - Date.parse(p.timestamp)) / 60_000;
        // Timestamps are truncated to the second, the feature uses exact times: within a minute/60.
        assert.ok(
          Math.abs(r.minutes_since_last - minutes) <= 0.1 + 1 / 60,
          `${r.minutes_since_last} vs ${minutes}`,
        );
        const km = haversineKm(p.lat, p.lon, r.lat, r.lon);
        assert.ok(Math.abs(r.km_from_last - km) <= 0.1 + 0.05, `${r.km_from_last} vs ${km}`);
        checked++;
      }
      last.set(r.cardholder_id, r);
    }
    assert.ok(checked > 30_000);
  });

  it('card testing: bursts of many small online amounts within minutes', () => {
    const ct = big().filter((r) => r.scenario === 'card_testing');
    assert.ok(ct.length > 500, `${ct.length} card-testing rows`);
    const byCard = new Map<string, TransactionRecord[]>();
    for (const r of ct) byCard.set(r.cardholder_id, [...(byCard.get(r.cardholder_id) ?? []), r]);
    let bursts = 0;
    for (const list of byCard.values()) {
      const small = list.filter((r) => r.amount <= 12);
      if (small.length < 4) continue;
      for (const r of small) assert.equal(r.channel, 'online');
      // At least four small amounts within ten minutes.
      const times = small.map((r) => Date.parse(r.timestamp)).sort((a, b) => a - b);
      for (let i = 0; i + 3 < times.length; i++) {
        if ((times[i + 3] as number) - (times[i] as number) <= 10 * 60_000) {
          bursts++;
          break;
        }
      }
    }
    assert.ok(bursts >= 0.8 * byCard.size, `${bursts} bursts in ${byCard.size} cards`);
    // Velocity shows: most card-testing rows see earlier transactions in the same hour.
    const withVelocity = ct.filter((r) => r.tx_count_1h >= 2).length;
    assert.ok(withVelocity > 0.6 * ct.length, `${withVelocity}/${ct.length}`);
    const normal = big().filter((r) => r.scenario === 'normal');
    assert.ok(normal.filter((r) => r.tx_count_1h >= 2).length < 0.05 * normal.length);
  });

  it('account takeover: a new device far from home spending several times the usual', () => {
    const ato = big().filter((r) => r.scenario === 'account_takeover');
    assert.ok(ato.length > 300);
    const cards = new Set(ato.map((r) => r.cardholder_id));
    const firstOfCard = new Map<string, TransactionRecord>();
    for (const r of ato) if (!firstOfCard.has(r.cardholder_id)) firstOfCard.set(r.cardholder_id, r);
    const firstNewDevice = [...firstOfCard.values()].filter((r) => r.new_device === 1).length;
    assert.ok(firstNewDevice >= 0.95 * cards.size, `${firstNewDevice}/${cards.size} start on a new device`);
    for (const r of ato) assert.equal(r.channel, 'online');
    const far = ato.filter((r) => r.distance_from_home_km > 150).length;
    assert.ok(far >= 0.95 * ato.length);
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1] as number;
    assert.ok(median(ato.map((r) => r.amount_to_avg)) > 2);
    assert.ok(
      median(
        big()
          .filter((r) => r.scenario === 'normal')
          .map((r) => r.amount_to_avg),
      ) < 1,
    );
  });

  it('night high amounts: between 00:00 and 05:00 local, jewellery/electronics or gift cards, large', () => {
    const nh = big().filter((r) => r.scenario === 'night_high_amount');
    assert.ok(nh.length > 150);
    const night = nh.filter((r) => r.local_hour < 6).length;
    assert.ok(night >= 0.97 * nh.length, `${night}/${nh.length} at night`);
    for (const r of nh) {
      if (r.channel === 'online')
        assert.ok(r.category === 'jewelry' || r.category === 'electronics', r.category);
      else assert.ok(['gas', 'grocery', 'pharmacy'].includes(r.category), r.category);
      assert.ok(r.amount >= 100, `${r.amount}`);
    }
  });

  it('geographic impossibility: in person more than 1000 km from the previous purchase within the hour', () => {
    const rows = big();
    const prev = new Map<string, TransactionRecord>();
    let geo = 0;
    let impossible = 0;
    let odd = 0;
    for (const r of rows) {
      const p = prev.get(r.cardholder_id);
      if (r.scenario === 'geo_impossible') {
        geo++;
        assert.notEqual(r.channel, 'online');
        if (p !== undefined) {
          const hours = (Date.parse(r.timestamp) - Date.parse(p.timestamp)) / 3_600_000;
          const km = haversineKm(p.lat, p.lon, r.lat, r.lon);
          // Faster than an airliner (about 900 km/h), or a second purchase at the cloned card's city.
          if (hours < 1.1 && km / Math.max(hours, 1 / 60) > 900) impossible++;
          else if (p.scenario !== 'geo_impossible') odd++; // a second row at the clone's city is slow
        }
      }
      prev.set(r.cardholder_id, r);
    }
    assert.ok(geo > 150);
    assert.ok(impossible >= 0.6 * geo, `${impossible}/${geo}`);
    assert.ok(odd <= 0.02 * geo, `${odd}/${geo} geo rows neither impossible nor after another`);
  });

  it('friendly fraud and unreported fraud make the labels noisy', () => {
    const rows = big();
    const ff = rows.filter((r) => r.scenario === 'friendly_fraud');
    assert.ok(ff.length > 100);
    for (const r of ff) assert.equal(r.is_fraud, 1);
    // Looks ordinary: near home, usual device.
    assert.ok(ff.filter((r) => r.distance_from_home_km < 100 && r.new_device === 0).length > 0.8 * ff.length);
    const unreported = rows.filter(
      (r) => (FRAUD_PATTERNS as readonly string[]).includes(r.scenario) && r.is_fraud === 0,
    );
    assert.ok(unreported.length > 0);
    for (const r of rows)
      if ((LEGIT_SCENARIOS as readonly string[]).includes(r.scenario)) assert.equal(r.is_fraud, 0);
    const clean = all({ rows: 30_000, fraudRate: 0.05, seed: 4, labelNoise: 0 });
    assert.equal(
      clean.filter(
        (r) =>
          r.scenario !== 'friendly_fraud' && FRAUD_PATTERNS.includes(r.scenario as never) && r.is_fraud === 0,
      ).length,
      0,
    );
  });

  it('legitimate look-alikes: travel far from home, large purchases, new devices, in-app bursts, all labelled 0', () => {
    const rows = big();
    const of = (s: string): TransactionRecord[] => rows.filter((r) => r.scenario === s);
    const travel = of('legit_travel');
    assert.ok(travel.filter((r) => r.distance_from_home_km > 300).length > 0.5 * travel.length);
    assert.ok(
      travel.some((r) => r.currency !== 'USD'),
      'some travel is abroad',
    );
    const large = of('legit_large_purchase');
    assert.ok(large.length > 100 && large.filter((r) => r.amount_to_avg > 3).length > 0.7 * large.length);
    const nd = of('legit_new_device');
    assert.ok(nd.length > 50 && nd.every((r) => r.new_device === 1 && r.channel === 'online'));
    const mb = of('legit_micro_burst');
    assert.ok(mb.length > 100 && mb.every((r) => r.amount < 10 && r.category === 'digital_goods'));
    assert.ok(mb.filter((r) => r.tx_count_1h >= 2).length > 0.4 * mb.length);
  });

  it('fraud is learnable from the features, but no single feature separates it', () => {
    const rows = big();
    const y = rows.map((r) => r.is_fraud);
    const feats: [string, (r: TransactionRecord) => number][] = [
      ['log_amount', (r) => Math.log1p(r.amount)],
      ['night', (r) => (r.local_hour < 5 ? 1 : 0)],
      ['log_home_km', (r) => Math.log1p(r.distance_from_home_km)],
      ['log_last_km', (r) => Math.log1p(r.km_from_last)],
      ['log_minutes', (r) => Math.log1p(r.minutes_since_last)],
      ['tx_count_1h', (r) => r.tx_count_1h],
      ['log_ratio', (r) => Math.log(r.amount_to_avg + 1e-3)],
      ['new_device', (r) => r.new_device],
      ['new_merchant', (r) => r.new_merchant],
      ['online', (r) => (r.channel === 'online' ? 1 : 0)],
      ['swipe', (r) => (r.channel === 'swipe' ? 1 : 0)],
      ['risky_cat', (r) => (['jewelry', 'electronics', 'digital_goods'].includes(r.category) ? 1 : 0)],
    ];
    const X = rows.map((r) => feats.map(([, f]) => f(r)));
    // No single feature is a near-perfect separator.
    for (let j = 0; j < feats.length; j++) {
      const a = auc(
        X.map((x) => x[j] as number),
        y,
      );
      assert.ok(Math.max(a, 1 - a) < 0.95, `${feats[j]?.[0]} alone has AUC ${a}`);
    }
    // Logistic regression by full-batch gradient descent on standardised features, with a few
    // pairwise products: trained on the first half, scored on the second.
    const d = feats.length;
    const mean = new Array(d).fill(0);
    const sd = new Array(d).fill(0);
    for (const x of X) for (let j = 0; j < d; j++) mean[j] += (x[j] as number) / X.length;
    for (const x of X) for (let j = 0; j < d; j++) sd[j] += ((x[j] as number) - mean[j]) ** 2 / X.length;
    const Z = X.map((x) => x.map((v, j) => (v - mean[j]) / (Math.sqrt(sd[j]) || 1)));
    const half = Z.length >> 1;
    const w = new Float64Array(d + 1);
    const lr = 0.5;
    for (let it = 0; it < 150; it++) {
      const g = new Float64Array(d + 1);
      for (let i = 0; i < half; i++) {
        const z = Z[i] as number[];
        let s = w[d] as number;
        for (let j = 0; j < d; j++) s += (w[j] as number) * (z[j] as number);
        const e = 1 / (1 + Math.exp(-s)) - (y[i] as number);
        for (let j = 0; j < d; j++) g[j] = (g[j] as number) + e * (z[j] as number);
        g[d] = (g[d] as number) + e;
      }
      for (let j = 0; j <= d; j++) w[j] = (w[j] as number) - (lr * (g[j] as number)) / half;
    }
    const scores = Z.slice(half).map((z) => z.reduce((s, v, j) => s + v * (w[j] as number), w[d] as number));
    const test = auc(scores, y.slice(half));
    assert.ok(test > 0.9, `logistic regression AUC ${test}`);
    assert.ok(test < 0.995, `logistic regression AUC ${test}: too easy`);
  });
});
