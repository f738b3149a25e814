/**
 * The transaction stream: a discrete-event simulation of a card issuer's day-to-day traffic.
 *
 * Purchases arrive as a non-homogeneous Poisson process, simulated by thinning (Lewis & Shedler 1979):
 * candidates arrive at a constant rate, each names a cardholder (weighted by how often they use their
 * card) and is kept with probability proportional to that person's activity at the local hour.
 * A kept arrival becomes a normal purchase, a legitimate look-alike (a trip, a large purchase, a new
 * phone, a burst of in-app purchases) or, with a probability steered toward the target fraud rate, the
 * first row of a fraud episode. Episodes schedule their rows into a priority queue, so rows come out in
 * time order with memory bounded by the number of open episodes.
 *
 * Each emitted row gets history features computed causally from the card's own earlier rows, as an
 * issuer's feature store would: distance from home and from the last transaction, minutes since it,
 * transactions in the past hour, amount relative to the card's running average, and whether the device
 * and merchant were seen before on the card.
 */
import { fmix32, invalidArgument, SeededRng } from '../../core/index.js';
import { fixed, hex8, isoLocal } from './format.js';
import { haversineKm, localHour, utcOffsetMin } from './geo.js';
import { makeDeviceId, makePublicIpv4 } from './identity.js';
import {
  DEFAULT_FRAUD_MIX,
  FRAUD_PATTERNS,
  type FraudPattern,
  MAX_INSTANT,
  type ResolvedSynthOptions,
  resolveSynthOptions,
  type Scenario,
  type SynthOptions,
} from './options.js';
import { CATEGORIES, CATEGORY_INFO, type Category, DAY_PROFILE, PER_USD } from './reference.js';
import {
  buildWorld,
  type Cardholder,
  type Merchant,
  markMerchant,
  RECENT,
  type Site,
  seenMerchant,
  WeightedPicker,
  type World,
} from './world.js';

/** How the card was used. */
export type Channel = 'chip' | 'swipe' | 'contactless' | 'online';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const CAT: Readonly<Record<Category, number>> = Object.fromEntries(
  CATEGORIES.map((c, i) => [c, i]),
) as Record<Category, number>;

/** Legitimate look-alikes, as probabilities per purchase. */
export const LOOKALIKE_RATES = {
  /** Start of a trip (booked online; then card-present purchases in the destination for 2-10 days). */
  trip: 0.004,
  /** A purchase 4-15 times the usual amount in electronics, jewellery, travel or home improvement. */
  largePurchase: 0.005,
  /** 3-6 small in-app purchases within minutes on the usual device. */
  microBurst: 0.003,
  /** An online purchase from a phone the card has never been used with. */
  newDevice: 0.012,
  /** An online purchase from an unfamiliar IP address (café, mobile network). */
  newIp: 0.08,
} as const;

/** Mean labelled-or-not fraud rows per episode of each pattern (used to turn row shares into episode odds). */
const MEAN_ROWS: Readonly<Record<FraudPattern, number>> = {
  card_testing: 9.5 + 0.5 * 1.5,
  account_takeover: 4,
  night_high_amount: 2,
  geo_impossible: 1.5,
  friendly_fraud: 1,
};

/** One generated row before its history features are computed. */
interface Pending {
  t: number;
  seq: number;
  ch: Cardholder;
  m: Merchant;
  amountUsd: number;
  channel: Channel;
  device: string | null;
  ip: string | null;
  lat: number;
  lon: number;
  currency: string;
  scenario: Scenario;
  fraud: 0 | 1;
}

/**
 * A finished row: the pending row plus its id, clock and history features, as numbers (the record and
 * the CSV writer format them with the same rounding, so both give the same text).
 */
export interface Emitted {
  readonly p: Pending;
  /** The two 32-bit halves of the transaction id. */
  readonly idHi: number;
  readonly idLo: number;
  readonly offsetMin: number;
  readonly localHour: number;
  /** In the transaction currency, unrounded; written with `minor` decimals. */
  readonly amount: number;
  readonly minor: number;
  readonly distHome: number;
  readonly kmLast: number;
  readonly minLast: number;
  readonly count1h: number;
  readonly amountRatio: number;
  readonly newDevice: 0 | 1;
  readonly newMerchant: 0 | 1;
}

/** Binary min-heap of pending rows ordered by (time, sequence). */
class Queue {
  readonly #a: Pending[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): Pending | undefined {
    return this.#a[0];
  }
  push(x: Pending): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(x, a[parent] as Pending)) break;
      a[i] = a[parent] as Pending;
      i = parent;
    }
    a[i] = x;
  }
  pop(): Pending | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && before(a[r] as Pending, a[l] as Pending) ? r : l;
      if (!before(a[c] as Pending, last)) break;
      a[i] = a[c] as Pending;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

function before(a: Pending, b: Pending): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}

function minorUnits(currency: string): number {
  return currency === 'JPY' ? 0 : 2;
}

const NIGHT_SHIFT = 10;
const PROFILE_MEAN = DAY_PROFILE.reduce((s, x) => s + x, 0) / DAY_PROFILE.length;
const PROFILE = DAY_PROFILE.map((x) => x / PROFILE_MEAN);
const PROFILE_MAX = Math.max(...PROFILE);

/**
 * The simulation behind {@link generateTransactions} and the CSV writer: yields finished rows in time
 * order. Internal; its output type is not part of the public API.
 */
export function* simulate(o: ResolvedSynthOptions): Generator<Emitted, void, undefined> {
  const root = new SeededRng(o.seed);
  const merchantRng = root.split();
  const populationRng = root.split();
  const rng = root.split();
  const idRng = root.split();
  const world: World = buildWorld(merchantRng, populationRng, o.cardholders, o.start);
  const idKey = idRng.nextUint32();

  // Fraud episode odds: pattern i is chosen with probability proportional to share_i / rows_i, so the
  // rows come out in the mix asked for. L is the mean number of fraud-labelled rows per episode.
  const mix = o.fraudMix ?? DEFAULT_FRAUD_MIX;
  const patternWeights = FRAUD_PATTERNS.map((p) => mix[p] / MEAN_ROWS[p]);
  const pw = patternWeights.reduce((s, x) => s + x, 0);
  let meanLabelled = 0;
  for (let i = 0; i < FRAUD_PATTERNS.length; i++) {
    const p = FRAUD_PATTERNS[i] as FraudPattern;
    const noise = p === 'friendly_fraud' ? 0 : o.labelNoise;
    meanLabelled += ((patternWeights[i] as number) / pw) * MEAN_ROWS[p] * (1 - noise);
  }
  const patterns = new WeightedPicker(patternWeights);
  const f = o.fraudRate;
  // With q the chance an arrival starts an episode, fraud rows per arrival are q*L against (1 - q)
  // legitimate ones: q = f / (L (1 - f) + f). A feedback term then keeps the realised rate on target.
  const q = f === 0 ? 0 : f / (meanLabelled * (1 - f) + f);
  const gainScale = 4 * Math.max(meanLabelled, 1);

  const queue = new Queue();
  let seq = 0;
  let committedTotal = 0;
  let committedFraud = 0;

  const push = (p: Omit<Pending, 'seq'>): void => {
    (p as Pending).seq = seq++;
    committedTotal++;
    committedFraud += p.fraud;
    queue.push(p as Pending);
  };

  // ---- helpers drawing from the transaction stream ----

  const lognormalUsd = (cat: Category, ch: Cardholder): number => {
    const info = CATEGORY_INFO[cat];
    return info.medianUsd * ch.spend * Math.exp(rng.normal(0, info.logSd));
  };

  const currentSite = (ch: Cardholder, t: number): Site => {
    const trip = ch.trip;
    if (trip === null) return ch.home;
    if (t >= trip.end) {
      ch.trip = null;
      world.onTrip[ch.index] = 0;
      return ch.home;
    }
    return t >= trip.start ? trip.site : ch.home;
  };

  /**
   * One of the person's 2-3 regular merchants of a category (online or at home), chosen on first need.
   * Stored as merchant indexes in a flat array: `FAV` slots per (cardholder, category, online) with
   * the count in the first slot (0 = not chosen yet).
   */
  const FAV = 4;
  const favouriteMerchant = (ch: Cardholder, cat: number, online: boolean): Merchant => {
    const base = ((ch.index * 2 + (online ? 1 : 0)) * CATEGORIES.length + cat) * FAV;
    const fav = world.favourites;
    let k = fav[base] as number;
    if (k === 0) {
      const pool = online ? (world.online[cat] as Merchant[]) : (ch.home.merchants[cat] as Merchant[]);
      const want = Math.min(pool.length, online ? 2 : 3);
      for (let i = 0; i < want; i++) {
        const m = rng.pick(pool);
        let dup = false;
        for (let j = 1; j <= k; j++) if (fav[base + j] === m.index) dup = true;
        if (dup) continue;
        fav[base + ++k] = m.index;
        // The person's regular shops predate the generated window: the card history knows them.
        markMerchant(world, ch, m.index);
      }
      fav[base] = k;
    }
    return world.merchants[fav[base + 1 + rng.int(k)] as number] as Merchant;
  };

  const jitter = (x: number, d: number): number => x + rng.uniform(-d, d);

  /** A site at least `minKm` from `from`, drawn from `pool` (the US by default). */
  const farSite = (from: Site, minKm: number, pool: readonly Site[] = world.usSites): Site => {
    for (let i = 0; i < 50; i++) {
      const s = rng.pick(pool);
      if (s !== from && haversineKm(s.place.lat, s.place.lon, from.place.lat, from.place.lon) >= minKm)
        return s;
    }
    // Every US city has cities and fraud sites more than 1000 km away; this is only a guard.
    return rng.pick(
      world.fraudSites.filter(
        (s) => haversineKm(s.place.lat, s.place.lon, from.place.lat, from.place.lon) >= minKm,
      ),
    );
  };

  const NCAT = CATEGORIES.length;
  const pickCategory = (ch: Cardholder): Category => {
    const base = ch.index * NCAT;
    const cum = world.categoryCum;
    const r = rng.nextFloat() * (cum[base + NCAT - 1] as number);
    let k = 0;
    while (k < NCAT - 1 && (cum[base + k] as number) <= r) k++;
    return CATEGORIES[k] as Category;
  };

  const onlineProb = (cat: Category, ch: Cardholder): number => {
    const p = CATEGORY_INFO[cat].online;
    return p >= 1 || p <= 0 ? p : Math.min(0.95, p * ch.onlineBias);
  };

  /** A purchase by the cardholder themself, in the usual way unless told otherwise. */
  const purchase = (
    ch: Cardholder,
    t: number,
    scenario: Scenario,
    fraud: 0 | 1,
    opts: { cat?: Category; amountUsd?: number; online?: boolean; device?: string } = {},
  ): void => {
    const site = currentSite(ch, t);
    const away = site !== ch.home;
    const cat = opts.cat ?? pickCategory(ch);
    const ci = CAT[cat];
    let online = opts.online ?? rng.bernoulli(onlineProb(cat, ch));
    // Shops of most kinds are closed at night: night purchases in those categories happen online.
    if (!online && !CATEGORY_INFO[cat].openAtNight) {
      const h = localHour(site.place, t);
      if (h < 5) online = true;
    }
    if (!online && (site.merchants[ci] as Merchant[]).length === 0) online = true;
    if (online && (world.online[ci] as Merchant[]).length === 0) online = false;
    const amountUsd = opts.amountUsd ?? lognormalUsd(cat, ch);
    let scen = scenario;
    if (scenario === 'normal' && away) scen = 'legit_travel';
    if (online) {
      const m =
        !away && rng.bernoulli(0.65)
          ? favouriteMerchant(ch, ci, true)
          : rng.pick(world.online[ci] as Merchant[]);
      let device = opts.device ?? (rng.bernoulli(0.8) ? (ch.devices[0] as string) : rng.pick(ch.devices));
      if (opts.device === undefined && scen === 'normal' && rng.bernoulli(LOOKALIKE_RATES.newDevice)) {
        // A new phone: it becomes the person's main device from now on.
        device = makeDeviceId(rng);
        ch.devices.unshift(device);
        if (ch.devices.length > 4) ch.devices.pop();
        scen = 'legit_new_device';
      }
      let ipSite = site;
      let ip: string;
      if (ch.vpnSite !== null && !away && rng.bernoulli(0.5)) {
        ipSite = ch.vpnSite;
        ip = ch.ips[ch.ips.length - 1] as string;
      } else if (away || rng.bernoulli(LOOKALIKE_RATES.newIp)) ip = makePublicIpv4(rng);
      else ip = ch.ips[0] as string;
      push({
        t,
        ch,
        m,
        amountUsd,
        channel: 'online',
        device,
        ip,
        lat: jitter(ipSite.place.lat, 0.08),
        lon: jitter(ipSite.place.lon, 0.1),
        currency: 'USD',
        scenario: scen,
        fraud,
      });
      return;
    }
    const pool = site.merchants[ci] as Merchant[];
    const m = !away && rng.bernoulli(0.65) ? favouriteMerchant(ch, ci, false) : rng.pick(pool);
    const r = rng.nextFloat();
    const channel: Channel =
      r < ch.contactless ? 'contactless' : r < ch.contactless + 0.07 ? 'swipe' : 'chip';
    push({
      t,
      ch,
      m,
      amountUsd,
      channel,
      device: channel === 'contactless' && ch.walletUser ? (ch.devices[0] as string) : null,
      ip: null,
      lat: m.lat,
      lon: m.lon,
      currency: site.place.currency,
      scenario: scen,
      fraud,
    });
  };

  // ---- legitimate behaviour ----

  const legit = (ch: Cardholder, t: number): void => {
    const r = rng.nextFloat();
    let acc = LOOKALIKE_RATES.trip;
    if (r < acc) {
      if (ch.trip !== null) {
        purchase(ch, t, 'normal', 0); // already travelling or about to
        return;
      }
      // Book a trip online now; travel a few days later for 2-10 days, 80% within the US.
      const dest = rng.bernoulli(0.8) ? farSite(ch.home, 300) : rng.pick(world.travelSites);
      const start = t + rng.uniform(6, 96) * HOUR;
      ch.trip = { site: dest, start, end: start + rng.uniform(2, 10) * DAY };
      world.onTrip[ch.index] = 1;
      purchase(ch, t, 'legit_travel', 0, {
        cat: 'travel',
        online: true,
        amountUsd: lognormalUsd('travel', ch) * 1.5,
      });
      return;
    }
    acc += LOOKALIKE_RATES.largePurchase;
    if (r < acc) {
      const cat = (['electronics', 'electronics', 'jewelry', 'travel', 'home_improvement'] as const)[
        rng.int(5)
      ] as Category;
      purchase(ch, t, 'legit_large_purchase', 0, {
        cat,
        amountUsd: lognormalUsd(cat, ch) * rng.uniform(4, 15),
      });
      return;
    }
    acc += LOOKALIKE_RATES.microBurst;
    if (r < acc) {
      let tt = t;
      const n = 3 + rng.int(4);
      const m = rng.pick(world.online[CAT.digital_goods] as Merchant[]);
      for (let i = 0; i < n; i++) {
        push({
          t: tt,
          ch,
          m,
          amountUsd: rng.pick([0.99, 1.99, 2.99, 4.99, 9.99]),
          channel: 'online',
          device: ch.devices[0] as string,
          ip: ch.ips[0] as string,
          lat: jitter(ch.home.place.lat, 0.08),
          lon: jitter(ch.home.place.lon, 0.1),
          currency: 'USD',
          scenario: 'legit_micro_burst',
          fraud: 0,
        });
        tt += 10_000 + rng.exponential(1 / 90_000);
      }
      return;
    }
    purchase(ch, t, 'normal', 0);
  };

  // ---- fraud patterns ----

  interface Fraudster {
    site: Site;
    device: string;
    ip: string;
    lat: number;
    lon: number;
  }
  const fraudster = (ch: Cardholder, abroad: number): Fraudster => {
    const site = rng.bernoulli(abroad) ? rng.pick(world.fraudSites) : farSite(ch.home, 200);
    return {
      site,
      device: makeDeviceId(rng),
      ip: makePublicIpv4(rng),
      lat: jitter(site.place.lat, 0.08),
      lon: jitter(site.place.lon, 0.1),
    };
  };
  const onlineFraud = (
    ch: Cardholder,
    t: number,
    fr: Fraudster,
    m: Merchant,
    amountUsd: number,
    scenario: Scenario,
    fraud: 0 | 1,
  ): void => {
    push({
      t,
      ch,
      m,
      amountUsd,
      channel: 'online',
      device: fr.device,
      ip: fr.ip,
      lat: fr.lat,
      lon: fr.lon,
      currency: 'USD',
      scenario,
      fraud,
    });
  };
  const episodeLabel = (): 0 | 1 => (rng.bernoulli(o.labelNoise) ? 0 : 1);

  /** Card testing: 4-15 small authorisations at 1-2 online merchants within minutes, then maybe a cash-out. */
  const cardTesting = (ch: Cardholder, t: number): void => {
    const label = episodeLabel();
    const fr = fraudster(ch, 0.55);
    const merchants = [1, 2]
      .slice(0, 1 + rng.int(2))
      .map(() =>
        rng.pick(world.online[rng.bernoulli(0.6) ? CAT.digital_goods : CAT.online_retail] as Merchant[]),
      );
    const n = 4 + rng.int(12);
    let tt = t;
    for (let i = 0; i < n; i++) {
      const r = rng.nextFloat();
      const amount = r < 0.4 ? rng.uniform(0.5, 3) : r < 0.75 ? 1 + rng.int(5) : rng.uniform(3, 12);
      onlineFraud(ch, tt, fr, rng.pick(merchants), amount, 'card_testing', label);
      tt += 2_000 + rng.exponential(1 / 25_000);
    }
    if (rng.bernoulli(0.5)) {
      const k = 1 + rng.int(2);
      tt += 5 * MINUTE + rng.exponential(1 / (30 * MINUTE));
      for (let i = 0; i < k; i++) {
        const cat: Category = rng.bernoulli(0.6) ? 'electronics' : 'online_retail';
        onlineFraud(
          ch,
          tt,
          fr,
          rng.pick(world.online[CAT[cat]] as Merchant[]),
          CATEGORY_INFO[cat].medianUsd * rng.uniform(3, 10),
          'card_testing',
          label,
        );
        tt += 2 * MINUTE + rng.exponential(1 / (10 * MINUTE));
      }
    }
  };

  const ATO_CATS = new WeightedPicker([0.35, 0.15, 0.25, 0.1, 0.15]);
  const ATO_CAT_NAMES: readonly Category[] = [
    'electronics',
    'jewelry',
    'online_retail',
    'travel',
    'digital_goods',
  ];
  /** Account takeover: a new device in a new place spends 3-12 times the usual on resaleable goods. */
  const accountTakeover = (ch: Cardholder, t: number): void => {
    const label = episodeLabel();
    const fr = fraudster(ch, 0.6);
    const n = 2 + rng.int(5);
    let tt = t + rng.exponential(1 / (10 * MINUTE));
    for (let i = 0; i < n; i++) {
      const cat = ATO_CAT_NAMES[ATO_CATS.pick(rng)] as Category;
      const amount = CATEGORY_INFO[cat].medianUsd * ch.spend * rng.uniform(3, 12);
      onlineFraud(
        ch,
        tt,
        fr,
        rng.pick(world.online[CAT[cat]] as Merchant[]),
        amount,
        'account_takeover',
        label,
      );
      tt += 5 * MINUTE + rng.exponential(1 / (40 * MINUTE));
    }
  };

  /** Night high amounts: jewellery/electronics online, or gift cards in person, between 00:00 and 05:00. */
  const nightHighAmount = (ch: Cardholder, t: number): void => {
    const label = episodeLabel();
    const off = utcOffsetMin(ch.home.place, t) * MINUTE;
    const local = t + off;
    const hour = Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
    let tt =
      hour < 5
        ? t + rng.uniform(0, 20) * MINUTE
        : Math.floor(local / DAY) * DAY + DAY - off + rng.uniform(0.25, 4.5) * HOUR;
    const n = 1 + rng.int(3);
    const online = rng.bernoulli(0.7);
    const fr = fraudster(ch, 0.15);
    for (let i = 0; i < n; i++) {
      if (online) {
        const cat: Category = rng.bernoulli(0.55) ? 'electronics' : 'jewelry';
        const amount = CATEGORY_INFO[cat].medianUsd * ch.spend * rng.uniform(5, 20);
        onlineFraud(
          ch,
          tt,
          fr,
          rng.pick(world.online[CAT[cat]] as Merchant[]),
          amount,
          'night_high_amount',
          label,
        );
      } else {
        // A stolen card at an all-night store, loading gift cards.
        const cat = (['gas', 'grocery', 'pharmacy'] as const)[rng.int(3)] as Category;
        const m = rng.pick(ch.home.merchants[CAT[cat]] as Merchant[]);
        const contactless = rng.bernoulli(0.4);
        push({
          t: tt,
          ch,
          m,
          amountUsd: 50 * (2 + rng.int(9)),
          channel: contactless ? 'contactless' : 'swipe',
          device: contactless ? fr.device : null,
          ip: null,
          lat: m.lat,
          lon: m.lon,
          currency: 'USD',
          scenario: 'night_high_amount',
          fraud: label,
        });
      }
      tt += 3 * MINUTE + rng.exponential(1 / (20 * MINUTE));
    }
  };

  const GEO_CATS = new WeightedPicker([0.3, 0.2, 0.15, 0.15, 0.1, 0.1]);
  const GEO_CAT_NAMES: readonly Category[] = [
    'electronics',
    'apparel',
    'jewelry',
    'grocery',
    'gas',
    'restaurants',
  ];
  /**
   * Geographic impossibility: the real cardholder shops in person at home, and within the hour a
   * cloned card is used in person more than 1000 km away.
   */
  const geoImpossible = (ch: Cardholder, t: number): void => {
    const label = episodeLabel();
    const anchor = ch.trip === null ? ch.home : currentSite(ch, t);
    purchase(ch, t, 'normal', 0, { online: false });
    const site = farSite(anchor, 1000, rng.bernoulli(0.7) ? world.usSites : world.fraudSites);
    const n = 1 + rng.int(2);
    let tt = t + 8 * MINUTE + rng.uniform(0, 45) * MINUTE;
    for (let i = 0; i < n; i++) {
      let cat = GEO_CAT_NAMES[GEO_CATS.pick(rng)] as Category;
      if ((site.merchants[CAT[cat]] as Merchant[]).length === 0) cat = 'grocery';
      const m = rng.pick(site.merchants[CAT[cat]] as Merchant[]);
      const contactless = rng.bernoulli(0.2);
      push({
        t: tt,
        ch,
        m,
        amountUsd: CATEGORY_INFO[cat].medianUsd * ch.spend * rng.uniform(1.5, 6),
        channel: contactless ? 'contactless' : 'swipe',
        device: contactless ? makeDeviceId(rng) : null,
        ip: null,
        lat: m.lat,
        lon: m.lon,
        currency: site.place.currency,
        scenario: 'geo_impossible',
        fraud: label,
      });
      tt += 5 * MINUTE + rng.exponential(1 / (15 * MINUTE));
    }
  };

  /** Friendly fraud (label noise): an ordinary purchase the cardholder later disputes. */
  const friendlyFraud = (ch: Cardholder, t: number): void => {
    purchase(ch, t, 'friendly_fraud', 1, { online: rng.bernoulli(0.7) ? true : undefined });
  };

  const starters: Readonly<Record<FraudPattern, (ch: Cardholder, t: number) => void>> = {
    card_testing: cardTesting,
    account_takeover: accountTakeover,
    night_high_amount: nightHighAmount,
    geo_impossible: geoImpossible,
    friendly_fraud: friendlyFraud,
  };

  // ---- finishing a row: history features, formatting ----

  const finish = (p: Pending, index: number): Emitted => {
    const ch = p.ch;
    const off = utcOffsetMin(ch.home.place, p.t);
    const localMs = p.t + off * MINUTE;
    const hour = Math.floor((((localMs % DAY) + DAY) % DAY) / HOUR);
    const minLast = Math.max(0, (p.t - ch.lastTime) / MINUTE);
    const kmLast = haversineKm(ch.lastLat, ch.lastLon, p.lat, p.lon);
    const distHome = haversineKm(ch.homeLat, ch.homeLon, p.lat, p.lon);
    // The ring holds this card's times in order: count back from the newest while within the hour.
    const ring = ch.index * RECENT;
    let count1h = 0;
    while (
      count1h < RECENT &&
      p.t - (world.recent[ring + ((ch.recentPos - 1 - count1h + RECENT) % RECENT)] as number) <= HOUR
    ) {
      count1h++;
    }
    const ratio = p.amountUsd / ch.avgUsd;
    const newDevice: 0 | 1 = p.device !== null && !ch.seenDevices.has(p.device) ? 1 : 0;
    const newMerchant: 0 | 1 = seenMerchant(world, ch, p.m.index) ? 0 : 1;
    const perUsd = PER_USD[p.currency] ?? 1;
    const amount = Math.max(p.amountUsd * perUsd, 0.01 * perUsd);
    const e: Emitted = {
      p,
      idHi: fmix32((index ^ idKey) >>> 0),
      idLo: idRng.nextUint32(),
      offsetMin: off,
      localHour: hour,
      amount,
      minor: minorUnits(p.currency),
      distHome,
      kmLast,
      minLast,
      count1h,
      amountRatio: ratio,
      newDevice,
      newMerchant,
    };
    ch.lastTime = p.t;
    ch.lastLat = p.lat;
    ch.lastLon = p.lon;
    world.recent[ring + ch.recentPos] = p.t;
    ch.recentPos = (ch.recentPos + 1) % RECENT;
    ch.avgUsd = 0.9 * ch.avgUsd + 0.1 * p.amountUsd;
    if (newDevice === 1) ch.seenDevices.add(p.device as string);
    markMerchant(world, ch, p.m.index);
    return e;
  };

  // ---- the event loop ----

  // Candidates arrive at the peak rate; each is kept with probability activity(local hour) / peak.
  const candidatesPerMs = (o.cardholders * o.txPerDay * PROFILE_MAX) / DAY;
  let nextBase = o.start + rng.exponential(candidatesPerMs);
  let emitted = 0;
  while (emitted < o.rows) {
    const top = queue.peek();
    if (top !== undefined && top.t <= nextBase) {
      queue.pop();
      // The period is checked up front on its expected length; a run that still reaches 2100 (chance
      // near the bound) stops here with a named error instead of writing timestamps ISO 8601 cannot hold.
      if (top.t >= MAX_INSTANT) {
        throw invalidArgument(
          'rows',
          `a simulated period ending before the year 10000 (row ${emitted + 1} would be dated after 9999); raise cardholders or lower rows`,
          o.rows,
        );
      }
      yield finish(top, emitted);
      emitted++;
      continue;
    }
    const t = nextBase;
    nextBase = t + rng.exponential(candidatesPerMs);
    const ci = world.activity.pick(rng);
    const ch = world.cardholders[ci] as Cardholder;
    const site = world.onTrip[ci] === 1 ? currentSite(ch, t) : ch.home;
    let h = localHour(site.place, t);
    if (world.nightOwl[ci] === 1) h = (h + NIGHT_SHIFT) % 24;
    if (rng.nextFloat() * PROFILE_MAX >= (PROFILE[h] as number)) continue;
    if (q > 0) {
      const err = committedFraud - f * committedTotal;
      const qEff = Math.min(1, 4 * q, Math.max(0, q * (1 - err / gainScale)));
      if (rng.nextFloat() < qEff) {
        (starters[FRAUD_PATTERNS[patterns.pick(rng)] as FraudPattern] as (c: Cardholder, t: number) => void)(
          ch,
          t,
        );
        continue;
      }
    }
    legit(ch, t);
  }
}

/** One generated transaction; keys are the CSV column names. `null` is written as an empty field. */
export interface TransactionRecord {
  transaction_id: string;
  /** ISO 8601 local date-time of the cardholder's home, with its UTC offset. */
  timestamp: string;
  cardholder_id: string;
  first_name: string;
  last_name: string;
  card_number: string;
  national_id: string;
  email: string;
  phone: string;
  street: string;
  city: string;
  state: string;
  zip: string;
  date_of_birth: string;
  merchant_id: string;
  merchant_name: string;
  category: Category;
  /** `"City, ST"` (or `"City, CC"` abroad); empty for online merchants. */
  merchant_location: string;
  amount: number;
  currency: string;
  channel: Channel;
  lat: number;
  lon: number;
  device_id: string | null;
  ip_address: string | null;
  local_hour: number;
  distance_from_home_km: number;
  km_from_last: number;
  minutes_since_last: number;
  tx_count_1h: number;
  amount_to_avg: number;
  new_device: 0 | 1;
  new_merchant: 0 | 1;
  is_fraud: 0 | 1;
  /** What produced the row; written to CSV only with `includeScenario` (a model must not see it). */
  scenario: Scenario;
}

/** The CSV columns in order (without `scenario`, which {@link writeTransactionsCsv} adds on request). */
export const TRANSACTION_COLUMNS = [
  'transaction_id',
  'timestamp',
  'cardholder_id',
  'first_name',
  'last_name',
  'card_number',
  'national_id',
  'email',
  'phone',
  'street',
  'city',
  'state',
  'zip',
  'date_of_birth',
  'merchant_id',
  'merchant_name',
  'category',
  'merchant_location',
  'amount',
  'currency',
  'channel',
  'lat',
  'lon',
  'device_id',
  'ip_address',
  'local_hour',
  'distance_from_home_km',
  'km_from_last',
  'minutes_since_last',
  'tx_count_1h',
  'amount_to_avg',
  'new_device',
  'new_merchant',
  'is_fraud',
] as const satisfies readonly (keyof TransactionRecord)[];

/** The personal (sensitive) columns: what a schema's PII detection must flag. */
export const PERSONAL_COLUMNS = [
  'first_name',
  'last_name',
  'card_number',
  'national_id',
  'email',
  'phone',
  'street',
  'city',
  'state',
  'zip',
  'date_of_birth',
] as const satisfies readonly (keyof TransactionRecord)[];

/** `tx_` and 16 hex digits: the row number mixed by a bijection (unique), then 32 random bits. */
export function transactionId(e: Emitted): string {
  return `tx_${hex8(e.idHi)}${hex8(e.idLo)}`;
}

export function toRecord(e: Emitted): TransactionRecord {
  const { p } = e;
  const ch = p.ch;
  const m = p.m;
  return {
    transaction_id: transactionId(e),
    timestamp: isoLocal(p.t, e.offsetMin),
    cardholder_id: ch.id,
    first_name: ch.firstName,
    last_name: ch.lastName,
    card_number: ch.cardNumber,
    national_id: ch.nationalId,
    email: ch.email,
    phone: ch.phone,
    street: ch.street,
    city: ch.home.place.name,
    state: ch.home.place.region,
    zip: ch.zip,
    date_of_birth: ch.dateOfBirth,
    merchant_id: m.id,
    merchant_name: m.name,
    category: m.category,
    merchant_location: m.site ? m.site.label : '',
    amount: Number(fixed(e.amount, e.minor)),
    currency: p.currency,
    channel: p.channel,
    lat: Number(fixed(p.lat, 4)),
    lon: Number(fixed(p.lon, 4)),
    device_id: p.device,
    ip_address: p.ip,
    local_hour: e.localHour,
    distance_from_home_km: Number(fixed(e.distHome, 1)),
    km_from_last: Number(fixed(e.kmLast, 1)),
    minutes_since_last: Number(fixed(e.minLast, 1)),
    tx_count_1h: e.count1h,
    amount_to_avg: Number(fixed(e.amountRatio, 3)),
    new_device: e.newDevice,
    new_merchant: e.newMerchant,
    is_fraud: p.fraud,
    scenario: p.scenario,
  };
}

/**
 * Synthetic card transactions with planted fraud, in time order, deterministic for a seed.
 *
 * The iterator is synchronous (generation is pure computation) and so also works with `for await`.
 * All options are validated before the first row (`ERR_INVALID_ARGUMENT` / `ERR_RNG_SEED` naming the
 * option). See docs/synth.md for the fields and fraud patterns.
 *
 * @example
 * ```ts
 * for (const tx of generateTransactions({ rows: 1000, fraudRate: 0.02, seed: 7 })) {
 *   if (tx.is_fraud) console.log(tx.scenario, tx.amount, tx.timestamp);
 * }
 * ```
 */
export function generateTransactions(options: SynthOptions): IterableIterator<TransactionRecord> {
  const o = resolveSynthOptions(options);
  const inner = simulate(o);
  const it: IterableIterator<TransactionRecord> = {
    next() {
      const r = inner.next();
      return r.done ? { done: true, value: undefined } : { done: false, value: toRecord(r.value) };
    },
    return() {
      inner.return();
      return { done: true, value: undefined };
    },
    [Symbol.iterator]() {
      return it;
    },
  };
  return it;
}
