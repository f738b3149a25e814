import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BulwarkError, rngOf, SecureRng, SeededRng } from '../../src/core/index.js';

// Reference outputs from the authors' C code (xoshiro128starstar.c and splitmix64.c, Blackman & Vigna),
// compiled with gcc: state = low/high halves of the first two SplitMix64 outputs of the seed.
const VECTORS: Array<[bigint, number[]]> = [
  [0n, [3737715805, 2584255861, 2876756834, 3286328325, 1553311962, 1625202774]],
  [42n, [1776835114, 4165204688, 17111135, 2317295270, 2792088233, 2554630222]],
  [0xdeadbeefcafebaben, [2306019369, 2612752571, 2283903557, 601034383, 1745798403, 4232365414]],
];
const AFTER_JUMP_42 = [2449739786, 2605826980, 3103900246, 3575675664];

describe('SeededRng (xoshiro128**)', () => {
  for (const [seed, expected] of VECTORS) {
    it(`matches the reference C implementation for seed ${seed}`, () => {
      const r = new SeededRng(seed);
      assert.deepEqual(
        expected.map(() => r.nextUint32()),
        expected,
      );
    });
  }

  it('accepts a number seed the same as the bigint', () => {
    const a = new SeededRng(42);
    const b = new SeededRng(42n);
    for (let i = 0; i < 100; i++) assert.equal(a.nextUint32(), b.nextUint32());
  });

  it('jump() matches the reference', () => {
    const r = new SeededRng(42);
    r.jump();
    assert.deepEqual(
      AFTER_JUMP_42.map(() => r.nextUint32()),
      AFTER_JUMP_42,
    );
  });

  it('split() continues the stream and jumps the parent', () => {
    const parent = new SeededRng(42);
    const child = parent.split();
    assert.deepEqual(
      VECTORS[1]![1].map(() => child.nextUint32()),
      VECTORS[1]![1],
    );
    assert.deepEqual(
      AFTER_JUMP_42.map(() => parent.nextUint32()),
      AFTER_JUMP_42,
    );
  });

  it('rejects bad seeds with ERR_RNG_SEED', () => {
    for (const s of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, -1n, 1n << 64n]) {
      assert.throws(
        () => new SeededRng(s),
        (e: unknown) => e instanceof BulwarkError && e.code === 'ERR_RNG_SEED',
      );
    }
  });

  it('nextFloat is in [0,1) with mean 1/2 and variance 1/12', () => {
    const r = new SeededRng(7);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = r.nextFloat();
      assert.ok(x >= 0 && x < 1);
      s += x;
      s2 += x * x;
    }
    const mean = s / n;
    const variance = s2 / n - mean * mean;
    // 5 standard errors: sd(mean) = sqrt(1/12/n) ~ 6.5e-4.
    assert.ok(Math.abs(mean - 0.5) < 5 * Math.sqrt(1 / 12 / n), `mean ${mean}`);
    assert.ok(Math.abs(variance - 1 / 12) < 0.002, `variance ${variance}`);
  });

  it('int(n) is unbiased: chi-square over 10 bins passes at p=0.001', () => {
    const r = new SeededRng(11);
    const counts = new Array<number>(10).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[r.int(10)]!++;
    const e = n / 10;
    const chi2 = counts.reduce((acc, c) => acc + (c - e) ** 2 / e, 0);
    assert.ok(chi2 < 27.88, `chi2 ${chi2}`); // chi2(9 df) 0.999 quantile
  });

  it('normal() has mean 0 and sd 1', () => {
    const r = new SeededRng(3);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
    }
    assert.ok(Math.abs(s / n) < 0.01);
    assert.ok(Math.abs(Math.sqrt(s2 / n - (s / n) ** 2) - 1) < 0.01);
  });

  it('permutation() is a permutation', () => {
    const p = new SeededRng(5).permutation(1000);
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
  });

  it('int() validates its argument', () => {
    assert.throws(() => new SeededRng(1).int(0), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => new SeededRng(1).int(2.5), { code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('SecureRng', () => {
  it('produces values in range and two instances differ', () => {
    const a = new SecureRng();
    const b = new SecureRng();
    const xs = Array.from({ length: 2000 }, () => a.nextUint32());
    const ys = Array.from({ length: 2000 }, () => b.nextUint32());
    assert.ok(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32));
    assert.notDeepEqual(xs, ys);
    const f = a.nextFloat();
    assert.ok(f >= 0 && f < 1);
  });
});

describe('rngOf', () => {
  it('passes an Rng through, seeds a SeededRng from a number, defaults to the fallback seed', () => {
    const own = new SeededRng(5);
    assert.equal(rngOf(own), own);
    const first = (r: { nextUint32(): number }) => r.nextUint32();
    assert.equal(first(rngOf(42)), first(new SeededRng(42)));
    assert.equal(first(rngOf(undefined)), first(new SeededRng(0)));
    assert.equal(first(rngOf(undefined, 9)), first(new SeededRng(9)));
  });

  it('rejects a bad seed with ERR_RNG_SEED', () => {
    for (const s of [-1, 1.5, '7' as unknown as number, {} as unknown as number]) {
      assert.throws(
        () => rngOf(s),
        (e: unknown) => e instanceof BulwarkError && e.code === 'ERR_RNG_SEED',
      );
    }
  });
});
