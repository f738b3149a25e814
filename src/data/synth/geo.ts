/**
 * Distances and local clocks for the generator: great-circle distance, UTC offsets with daylight
 * saving time (US/Canada and EU rules), and ISO 8601 local timestamps with their offset.
 */
import type { DstRule, Place } from './reference.js';

const EARTH_RADIUS_KM = 6371.0088; // IUGG mean radius
const RAD = Math.PI / 180;

/** Great-circle distance in km by the haversine formula (Sinnott, "Virtues of the Haversine", 1984). */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RAD;
  const dLon = (lon2 - lon1) * RAD;
  const s1 = Math.sin(dLat / 2);
  const s2 = Math.sin(dLon / 2);
  const a = s1 * s1 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * s2 * s2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

const HOUR = 3_600_000;
const DAY = 86_400_000;

/** UTC ms of the n-th (1-based; -1 = last) Sunday of a month (0-based) of a year, at midnight UTC. */
function nthSunday(year: number, month: number, n: number): number {
  if (n > 0) {
    const first = Date.UTC(year, month, 1);
    const dow = new Date(first).getUTCDay();
    return first + (((7 - dow) % 7) + 7 * (n - 1)) * DAY;
  }
  const last = Date.UTC(year, month + 1, 0);
  const dow = new Date(last).getUTCDay();
  return last - dow * DAY;
}

interface ZoneYear {
  /** The UTC year this entry covers: [from, to). */
  from: number;
  to: number;
  /** Daylight saving time in that year: [start, end). */
  start: number;
  end: number;
}

const zoneCache = new Map<Place, ZoneYear>();

/**
 * The UTC interval of daylight saving time in `year` for a clock with the given rule and standard
 * offset. US/Canada (Energy Policy Act 2005): second Sunday of March 02:00 local standard time to first
 * Sunday of November 02:00 local daylight time. EU (Directive 2000/84/EC): last Sunday of March to last
 * Sunday of October, both at 01:00 UTC.
 */
function dstSpan(rule: DstRule, stdOffsetMin: number, year: number): { start: number; end: number } {
  if (rule === 'us') {
    return {
      start: nthSunday(year, 2, 2) + 2 * HOUR - stdOffsetMin * 60_000,
      end: nthSunday(year, 10, 1) + 2 * HOUR - (stdOffsetMin + 60) * 60_000,
    };
  }
  return { start: nthSunday(year, 2, -1) + HOUR, end: nthSunday(year, 9, -1) + HOUR };
}

/** The UTC offset in minutes of `place`'s civil time at the instant `utcMs`. */
export function utcOffsetMin(place: Place, utcMs: number): number {
  if (place.dst === 'none') return place.stdOffsetMin;
  let z = zoneCache.get(place);
  if (z === undefined || utcMs < z.from || utcMs >= z.to) {
    const year = new Date(utcMs).getUTCFullYear();
    z = {
      from: Date.UTC(year, 0, 1),
      to: Date.UTC(year + 1, 0, 1),
      ...dstSpan(place.dst, place.stdOffsetMin, year),
    };
    zoneCache.set(place, z);
  }
  return utcMs >= z.start && utcMs < z.end ? place.stdOffsetMin + 60 : place.stdOffsetMin;
}

/** Local hour of day (0-23) at `place` at the instant `utcMs`. */
export function localHour(place: Place, utcMs: number): number {
  const local = utcMs + utcOffsetMin(place, utcMs) * 60_000;
  return Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
}
