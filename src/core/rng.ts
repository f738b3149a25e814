import { randomFillSync } from 'node:crypto';
import { BulwarkError, invalidArgument } from './errors.js';

/**
 * Random numbers. Two sources share one interface:
 *
 * - {@link SeededRng}: xoshiro128** 1.1 (Blackman & Vigna, "Scrambled linear pseudorandom number
 *   generators", ACM TOMS 2021), seeded through SplitMix64 as its authors recommend. Fast, 2^128 - 1
 *   period, reproducible for a seed: for synthetic data, shuffles, weight initialisation and tests.
 *   It is NOT cryptographically secure and must never make keys, IVs, salts, tokens or DP noise in
 *   production.
 * - {@link SecureRng}: the operating system's CSPRNG through `crypto.randomFillSync`, for anything a
 *   secret or a privacy guarantee depends on.
 *
 * Code that needs randomness takes a {@link Rng}, so tests pass a seeded one and production the secure one.
 */
export abstract class Rng {
  /** Uniform integer in [0, 2^32). */
  abstract nextUint32(): number;

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^32, without modulo bias (Lemire 2019, with rejection). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x1_0000_0000)
      throw invalidArgument('n', 'an integer in [1, 2^32]', n);
    if (n === 0x1_0000_0000) return this.nextUint32();
    // Rejection sampling on the top of the 32-bit range: accept x < 2^32 - (2^32 mod n).
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  intBetween(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) {
      throw invalidArgument('hi', `an integer >= lo (${lo})`, hi);
    }
    return lo + this.int(hi - lo + 1);
  }

  /** Uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.nextFloat();
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.nextFloat() < p;
  }

  #spare: number | undefined;

  /**
   * Standard normal deviate by the Marsaglia polar method (Marsaglia & Bray 1964); the second deviate
   * of each pair is kept for the next call.
   */
  normal(mean = 0, sd = 1): number {
    if (this.#spare !== undefined) {
      const z = this.#spare;
      this.#spare = undefined;
      return mean + sd * z;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.nextFloat() - 1;
      v = 2 * this.nextFloat() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.#spare = v * m;
    return mean + sd * u * m;
  }

  /** Exponential deviate with the given rate (inverse CDF). */
  exponential(rate = 1): number {
    return -Math.log(1 - this.nextFloat()) / rate;
  }

  /** Fills `out` with normal deviates. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, sd = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, sd);
    return out;
  }

  /** Fills `out` with uniform deviates in [lo, hi). */
  fillUniform<T extends Float32Array | Float64Array>(out: T, lo = 0, hi = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** In-place Fisher-Yates shuffle (Knuth, TAOCP vol. 2, Algorithm P). */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw invalidArgument('items', 'a non-empty array', items);
    return items[this.int(items.length)] as T;
  }

  /** Index drawn with probability proportional to `weights[i]` (non-negative, not all zero). */
  weightedIndex(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.nextFloat() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i] as number;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64 (Steele, Lea & Flood 2014), used only to expand a seed into xoshiro state. */
function splitmix64(state: { x: bigint }): bigint {
  state.x = (state.x + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.x;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Accepted seeds: a non-negative safe integer or a bigint in [0, 2^64). */
export type Seed = number | bigint;

function toSeed(seed: Seed): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new BulwarkError('ERR_RNG_SEED', `seed: expected a non-negative safe integer, got ${seed}`);
    }
    return BigInt(seed);
  }
  if (seed < 0n || seed > MASK64) {
    throw new BulwarkError('ERR_RNG_SEED', 'seed: expected a bigint in [0, 2^64)');
  }
  return seed;
}

/**
 * xoshiro128** 1.1, seeded with SplitMix64: state words are the low and high halves of the first two
 * SplitMix64 outputs. Outputs match the authors' reference C code (see test/core/rng.test.ts).
 */
export class SeededRng extends Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  constructor(seed: Seed) {
    super();
    const st = { x: toSeed(seed) };
    const a = splitmix64(st);
    const b = splitmix64(st);
    this.#s0 = Number(a & 0xffffffffn);
    this.#s1 = Number(a >> 32n);
    this.#s2 = Number(b & 0xffffffffn);
    this.#s3 = Number(b >> 32n);
  }

  nextUint32(): number {
    const s1 = this.#s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= s1;
    this.#s1 = s1 ^ this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return r;
  }

  /** Advances the state by 2^64 steps (the reference `jump()`): for non-overlapping streams. */
  jump(): void {
    const JUMP = [0x8764000b, 0xf542d2d3, 0x6fa035c3, 0x77f2db5b];
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    for (const j of JUMP) {
      for (let bit = 0; bit < 32; bit++) {
        if ((j >>> bit) & 1) {
          a ^= this.#s0;
          b ^= this.#s1;
          c ^= this.#s2;
          d ^= this.#s3;
        }
        this.nextUint32();
      }
    }
    this.#s0 = a;
    this.#s1 = b;
    this.#s2 = c;
    this.#s3 = d;
  }

  /**
   * A new generator for an independent stream: it continues from this state, and this generator jumps
   * 2^64 steps ahead, so the two never overlap in practice.
   */
  split(): SeededRng {
    const child = new SeededRng(0);
    child.#s0 = this.#s0;
    child.#s1 = this.#s1;
    child.#s2 = this.#s2;
    child.#s3 = this.#s3;
    this.jump();
    return child;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The operating system CSPRNG (`crypto.randomFillSync`), buffered 4 KiB at a time. */
export class SecureRng extends Rng {
  readonly #buf = new Uint32Array(1024);
  #pos = 1024;

  nextUint32(): number {
    if (this.#pos === this.#buf.length) {
      randomFillSync(this.#buf);
      this.#pos = 0;
    }
    return this.#buf[this.#pos++] as number;
  }
}

/**
 * The generator an option of type `Rng | Seed` stands for: the caller's {@link Rng} as is, else a
 * {@link SeededRng} from the seed (default `fallback`, 0). The one place the analysis code (poisoning
 * attacks and defences, evasion attacks, detectors) turns its `rng`/`seed` option into a generator, so
 * they agree on the default (reproducible, never the CSPRNG: these are evaluations, not secrets) and on
 * the seed check (ERR_RNG_SEED for a negative, fractional or non-numeric seed).
 */
export function rngOf(source: Rng | Seed | undefined, fallback: Seed = 0): Rng {
  if (source instanceof Rng) return source;
  if (source !== undefined && typeof source !== 'number' && typeof source !== 'bigint')
    throw new BulwarkError(
      'ERR_RNG_SEED',
      `seed: expected an Rng or a non-negative integer, got ${typeof source}`,
    );
  return new SeededRng(source ?? fallback);
}

/** A {@link SeededRng} when a seed is given, otherwise a {@link SecureRng}. */
export function makeRng(seed?: Seed): Rng {
  return seed === undefined ? new SecureRng() : new SeededRng(seed);
}

/**
 * MurmurHash3's 32-bit finaliser: a bijection on 32-bit integers in which every input bit affects every
 * output bit. For spreading values (ids, per-row coins), not for secrecy.
 */
export function fmix32(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
