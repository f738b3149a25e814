/**
 * The synthetic world: places with their merchants, and the cardholder population with each person's
 * identity, home, devices, habits and running card history. Built once per generation from its own
 * seeded streams, so the population does not depend on how many transactions are drawn from it.
 */
import { BulwarkError, type Rng } from '../../core/index.js';
import {
  makeCardNumber,
  makeDeviceId,
  makeEmail,
  makePhone,
  makePublicIpv4,
  makeSsn,
  pad,
} from './identity.js';
import {
  CATEGORIES,
  CATEGORY_INFO,
  type Category,
  FIRST_NAMES,
  FRAUD_ABROAD,
  LAST_NAMES,
  MERCHANT_TEMPLATES,
  MERCHANT_WORDS,
  type Place,
  STREET_NAMES,
  STREET_SUFFIXES,
  TRAVEL_ABROAD,
  US_PLACES,
} from './reference.js';

/** CSV field text per RFC 4180: quoted when it holds a comma, quote, CR or LF; quotes doubled. */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Draws indexes with probability proportional to fixed weights (cumulative sums, binary search). */
export class WeightedPicker {
  readonly #cum: Float64Array;

  constructor(weights: readonly number[]) {
    this.#cum = new Float64Array(weights.length);
    let s = 0;
    for (let i = 0; i < weights.length; i++) {
      s += weights[i] as number;
      this.#cum[i] = s;
    }
  }

  pick(rng: Rng): number {
    const cum = this.#cum;
    const r = rng.nextFloat() * (cum[cum.length - 1] as number);
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cum[mid] as number) > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/**
 * Draws indexes with probability proportional to fixed weights in O(1) by the alias method (Walker
 * 1977, in Vose's numerically stable form, IEEE TSE 1991): two array reads per draw, where a binary
 * search over a large population would miss the cache at every level.
 */
export class AliasPicker {
  readonly #prob: Float64Array;
  readonly #alias: Uint32Array;

  constructor(weights: readonly number[]) {
    const n = weights.length;
    let total = 0;
    for (const w of weights) total += w;
    this.#prob = new Float64Array(n);
    this.#alias = new Uint32Array(n);
    const scaled = weights.map((w) => (w * n) / total);
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < n; i++) ((scaled[i] as number) < 1 ? small : large).push(i);
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large.pop() as number;
      this.#prob[s] = scaled[s] as number;
      this.#alias[s] = l;
      scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    for (const i of large) this.#prob[i] = 1;
    for (const i of small) this.#prob[i] = 1; // only left by rounding
  }

  pick(rng: Rng): number {
    const i = rng.int(this.#prob.length);
    return rng.nextFloat() < (this.#prob[i] as number) ? i : (this.#alias[i] as number);
  }
}

/** A place with its merchants and a cached UTC offset. */
export interface Site {
  readonly index: number;
  readonly place: Place;
  /** Physical merchants by category index (empty when the category has none here). */
  readonly merchants: readonly Merchant[][];
  /** `"City, ST"`, the merchant location text. */
  readonly label: string;
}

export interface Merchant {
  readonly index: number;
  readonly id: string;
  readonly name: string;
  readonly category: Category;
  readonly catIndex: number;
  /** Null for online merchants. */
  readonly site: Site | null;
  readonly lat: number;
  readonly lon: number;
  /** The merchant's CSV columns (id, name, category, location), already escaped. */
  readonly csv: string;
  /** `csv` as UTF-8 bytes, for the CSV writer. */
  readonly csvBytes: Uint8Array;
}

export interface Trip {
  readonly site: Site;
  readonly start: number;
  readonly end: number;
}

export interface Cardholder {
  readonly index: number;
  readonly id: string;
  readonly firstName: string;
  readonly lastName: string;
  readonly cardNumber: string;
  readonly nationalId: string;
  readonly email: string;
  readonly phone: string;
  readonly street: string;
  readonly zip: string;
  readonly dateOfBirth: string;
  readonly home: Site;
  readonly homeLat: number;
  readonly homeLon: number;
  /** Multiplier on every category's median spend (log-normal across people). */
  readonly spend: number;
  /** Night-shift worker: activity curve shifted by 10 hours. */
  readonly nightOwl: boolean;
  /** Multiplier on each category's probability of being bought online. */
  readonly onlineBias: number;
  readonly contactless: number;
  readonly walletUser: boolean;
  /** Uses a VPN whose exit geolocates to another city (a legitimate source of location jumps). */
  readonly vpnSite: Site | null;
  readonly devices: string[];
  readonly ips: string[];
  trip: Trip | null;
  /** The personal CSV columns, already escaped. */
  readonly csv: string;
  /** `csv` as UTF-8 bytes, for the CSV writer. */
  readonly csvBytes: Uint8Array;
  // Running card history, as an issuer's feature store would keep it.
  lastTime: number;
  lastLat: number;
  lastLon: number;
  avgUsd: number;
  /** Next slot of this card's ring in {@link World.recent}. */
  recentPos: number;
  readonly seenDevices: Set<string>;
}

/** Everything the transaction stream draws from. */
export interface World {
  readonly sites: readonly Site[];
  readonly usSites: readonly Site[];
  readonly travelSites: readonly Site[];
  readonly fraudSites: readonly Site[];
  /** Online merchants by category index. */
  readonly online: readonly Merchant[][];
  readonly cardholders: readonly Cardholder[];
  /** Picks a cardholder by how often they use their card. */
  readonly activity: AliasPicker;
  /*
   * Per-cardholder state in flat typed arrays indexed by `Cardholder.index`: generation is bound by
   * cache misses on a large population, and one array slot costs one miss where an object graph
   * costs several.
   */
  /** 1 for night-shift workers. */
  readonly nightOwl: Uint8Array;
  /** 1 while a trip is planned or under way. */
  readonly onTrip: Uint8Array;
  /** Cumulative category weights, {@link CATEGORIES}.length per cardholder. */
  readonly categoryCum: Float64Array;
  /** Ring of the last {@link RECENT} transaction times, per cardholder (for `tx_count_1h`). */
  readonly recent: Float64Array;
  /** Bit set of merchants each card has been used at, `merchantWords` 32-bit words per cardholder. */
  readonly seenMerchants: Uint32Array;
  readonly merchantWords: number;
  /** Regular merchants: per cardholder, in person then online, per category, a count and 3 indexes. */
  readonly favourites: Uint16Array;
  /** Every merchant, by `Merchant.index`. */
  readonly merchants: readonly Merchant[];
}

/** Number of recent transaction times each card remembers (for `tx_count_1h`). */
export const RECENT = 32;

const PHYSICAL_CATEGORIES = CATEGORIES.map((c, i) => (CATEGORY_INFO[c].online < 1 ? i : -1)).filter(
  (i) => i >= 0,
);

function merchantName(rng: Rng, cat: Category): string {
  const t = rng.pick(MERCHANT_TEMPLATES[cat]);
  return t.replace(/\{S\}/g, () => rng.pick(LAST_NAMES)).replace(/\{W\}/g, () => rng.pick(MERCHANT_WORDS));
}

function buildSites(rng: Rng): {
  sites: Site[];
  usSites: Site[];
  travelSites: Site[];
  fraudSites: Site[];
  online: Merchant[][];
} {
  const sites: Site[] = [];
  const byKey = new Map<string, Site>();
  let merchantIndex = 0;
  const newMerchant = (cat: number, site: Site | null): Merchant => {
    const category = CATEGORIES[cat] as Category;
    const name = merchantName(rng, category);
    const index = merchantIndex++;
    const id = `m${pad(index + 1, 6)}`;
    // Shops spread over the metro area (up to ~15 km from the centre).
    const lat = site ? site.place.lat + rng.uniform(-0.13, 0.13) : 0;
    const lon = site ? site.place.lon + rng.uniform(-0.16, 0.16) : 0;
    const csv = `${id},${csvField(name)},${category},${csvField(site ? site.label : '')}`;
    return {
      index,
      id,
      name,
      category,
      catIndex: cat,
      site,
      lat,
      lon,
      csv,
      csvBytes: Buffer.from(csv, 'utf8'),
    };
  };
  const addSite = (place: Place, weight: number): Site => {
    const key = `${place.name}|${place.country}`;
    const existing = byKey.get(key);
    if (existing) return existing;
    const merchants: Merchant[][] = CATEGORIES.map(() => []);
    const site: Site = { index: sites.length, place, merchants, label: `${place.name}, ${place.region}` };
    sites.push(site);
    byKey.set(key, site);
    // Merchant count grows with the square root of population, per category share.
    const scale = Math.sqrt(weight);
    for (const c of PHYSICAL_CATEGORIES) {
      const info = CATEGORY_INFO[CATEGORIES[c] as Category];
      const n = 1 + Math.floor(scale * info.share * (1 - info.online));
      for (let k = 0; k < n; k++) (merchants[c] as Merchant[]).push(newMerchant(c, site));
    }
    return site;
  };
  const usSites = US_PLACES.map((p) => addSite(p, p.weight));
  const travelSites = TRAVEL_ABROAD.map((p) => addSite(p, 40 * p.weight));
  const fraudSites = FRAUD_ABROAD.map((p) => addSite(p, 40 * p.weight));
  const online: Merchant[][] = CATEGORIES.map((c, i) => {
    const info = CATEGORY_INFO[c];
    if (info.online === 0) return [];
    const n = 2 + Math.round(60 * info.share * info.online);
    return Array.from({ length: n }, () => newMerchant(i, null));
  });
  return { sites, usSites, travelSites, fraudSites, online };
}

function makeCardholder(
  rng: Rng,
  index: number,
  home: Site,
  start: number,
  world: Pick<World, 'usSites'>,
  categoryCum: Float64Array,
): Cardholder {
  const firstName = rng.pick(FIRST_NAMES);
  const lastName = rng.pick(LAST_NAMES);
  const cardNumber = makeCardNumber(rng);
  const nationalId = makeSsn(rng);
  const email = makeEmail(rng, firstName, lastName);
  const place = home.place;
  const phone = makePhone(rng, rng.pick(place.areaCodes ?? [555]));
  let street = `${1 + rng.int(9899)} ${rng.pick(STREET_NAMES)} ${rng.pick(STREET_SUFFIXES)}`;
  if (rng.bernoulli(0.25)) street += ` Apt ${1 + rng.int(40)}${rng.pick(['', 'A', 'B', 'C'])}`;
  const zip = `${place.zip3 ?? '000'}${pad(1 + rng.int(99), 2)}`;
  // Adult ages 18-80, peaked in the 40s (sum of uniforms).
  const age = 18 + rng.int(20) + rng.int(20) + rng.int(23);
  const birthYear = new Date(start).getUTCFullYear() - age - 1;
  const dob = new Date(Date.UTC(birthYear, 0, 1) + rng.int(365) * 86_400_000).toISOString().slice(0, 10);
  const homeLat = place.lat + rng.uniform(-0.12, 0.12);
  const homeLon = place.lon + rng.uniform(-0.15, 0.15);
  const spend = Math.exp(rng.normal(0, 0.45));
  const nightOwl = rng.bernoulli(0.06);
  // Each person's category mix: the population shares times a log-normal taste factor.
  let cum = 0;
  CATEGORIES.forEach((c, k) => {
    cum += CATEGORY_INFO[c].share * Math.exp(rng.normal(0, 0.6));
    categoryCum[index * CATEGORIES.length + k] = cum;
  });
  const onlineBias = Math.exp(rng.normal(0, 0.4));
  const contactless = rng.uniform(0.05, 0.6);
  const walletUser = rng.bernoulli(0.45);
  const vpnSite = rng.bernoulli(0.04) ? rng.pick(world.usSites) : null;
  const devices = Array.from({ length: 1 + rng.int(3) }, () => makeDeviceId(rng));
  const ips = Array.from({ length: 1 + rng.int(2) }, () => makePublicIpv4(rng));
  const id = `c${pad(index + 1, 7)}`;
  const csv = [
    id,
    csvField(firstName),
    csvField(lastName),
    cardNumber,
    nationalId,
    csvField(email),
    csvField(phone),
    csvField(street),
    csvField(place.name),
    place.region,
    zip,
    dob,
  ].join(',');
  // The card's history before the generated window: last seen at home some hours before the start.
  const lastTime = start - Math.floor(rng.uniform(1, 48) * 3_600_000);
  let avgUsd = 0;
  for (const c of CATEGORIES) avgUsd += CATEGORY_INFO[c].share * CATEGORY_INFO[c].medianUsd;
  // Hot fields first: an object's in-object properties are laid out in this order, and the fields
  // read for every row then share cache lines.
  return {
    index,
    home,
    spend,
    onlineBias,
    contactless,
    walletUser,
    devices,
    ips,
    vpnSite,
    trip: null,
    lastTime,
    lastLat: homeLat,
    lastLon: homeLon,
    homeLat,
    homeLon,
    avgUsd: avgUsd * spend,
    recentPos: 0,
    seenDevices: new Set(devices),
    csvBytes: Buffer.from(csv, 'utf8'),
    nightOwl,
    id,
    firstName,
    lastName,
    cardNumber,
    nationalId,
    email,
    phone,
    street,
    zip,
    dateOfBirth: dob,
    csv,
  };
}

/** Builds the places, merchants and `n` cardholders (homes weighted by metro population). */
export function buildWorld(merchantRng: Rng, populationRng: Rng, n: number, start: number): World {
  const { sites, usSites, travelSites, fraudSites, online } = buildSites(merchantRng);
  const partial = { sites, usSites, travelSites, fraudSites, online };
  const merchants: Merchant[] = [];
  for (const s of sites) for (const list of s.merchants) merchants.push(...list);
  for (const list of online) merchants.push(...list);
  merchants.sort((a, b) => a.index - b.index);
  // Merchant indexes are dense (0..M-1) and fit the 16-bit favourites table.
  if (merchants.some((m, i) => m.index !== i) || merchants.length >= 0xffff) {
    throw new BulwarkError('ERR_INTERNAL', 'synth: merchant indexes are not dense 16-bit values');
  }
  const merchantWords = Math.ceil(merchants.length / 32);
  const homes = new WeightedPicker(usSites.map((s) => s.place.weight));
  const categoryCum = new Float64Array(n * CATEGORIES.length);
  const cardholders: Cardholder[] = [];
  const activity: number[] = [];
  for (let i = 0; i < n; i++) {
    const home = usSites[homes.pick(populationRng)] as Site;
    cardholders.push(makeCardholder(populationRng, i, home, start, partial, categoryCum));
    // How often each person uses the card, relative to the mean (log-normal, mean 1).
    activity.push(Math.exp(populationRng.normal(-0.18, 0.6)));
  }
  return {
    ...partial,
    cardholders,
    activity: new AliasPicker(activity),
    nightOwl: Uint8Array.from(cardholders, (c) => (c.nightOwl ? 1 : 0)),
    onTrip: new Uint8Array(n),
    categoryCum,
    recent: new Float64Array(n * RECENT).fill(Number.NEGATIVE_INFINITY),
    seenMerchants: new Uint32Array(n * merchantWords),
    merchantWords,
    favourites: new Uint16Array(n * 2 * CATEGORIES.length * 4),
    merchants,
  };
}

/** Whether the card has been used at merchant `m` before. */
export function seenMerchant(world: World, ch: Cardholder, m: number): boolean {
  return (
    ((world.seenMerchants[ch.index * world.merchantWords + (m >>> 5)] as number) & (1 << (m & 31))) !== 0
  );
}

export function markMerchant(world: World, ch: Cardholder, m: number): void {
  const k = ch.index * world.merchantWords + (m >>> 5);
  world.seenMerchants[k] = (world.seenMerchants[k] as number) | (1 << (m & 31));
}
