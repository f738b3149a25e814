import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import {
  analyticGaussianSigma,
  bernoulliExpNeg,
  classicGaussianSigma,
  discreteGaussianDelta,
  discreteGaussianMechanism,
  discreteGaussianSigma,
  discreteLaplaceMechanism,
  exactRational,
  gaussianDelta,
  gaussianMechanism,
  INSECURE_NOISE_WARNING,
  laplaceMechanism,
  NoiseSource,
  normCdf,
  permuteAndFlip,
  sampleDiscreteGaussian,
  sampleDiscreteLaplace,
  uniformBelow,
} from '../../src/privacy/index.js';
import { chiSquareCounts, chiSquareIntegers, ksTest } from './stats.js';

// Seeded noise emits a warning by design; collect it instead of printing it for every test.
const warnings: string[] = [];
process.on('warning', (w) => {
  if ((w as { code?: string }).code === INSECURE_NOISE_WARNING) warnings.push(w.message);
});
const seeded = (seed: number) => NoiseSource.insecureSeeded(seed, 'test');

/** Significance of every goodness-of-fit test below (fixed seeds: deterministic outcomes). */
const ALPHA = 1e-3;

const dlapPmf = (b: number) => (x: number) => Math.tanh(1 / (2 * b)) * Math.exp(-Math.abs(x) / b);
function dgaussPmf(sigma: number): (x: number) => number {
  let z = 0;
  for (let y = -Math.ceil(40 * sigma) - 5; y <= Math.ceil(40 * sigma) + 5; y++)
    z += Math.exp(-(y * y) / (2 * sigma * sigma));
  return (x) => Math.exp(-(x * x) / (2 * sigma * sigma)) / z;
}

describe('exact sampling primitives', () => {
  it('converts doubles to the exact rationals they denote', () => {
    assert.deepEqual(exactRational(0.5), { n: 1n, d: 2n });
    assert.deepEqual(exactRational(-3), { n: -3n, d: 1n });
    assert.deepEqual(exactRational(0.1), { n: 3602879701896397n, d: 36028797018963968n });
    assert.deepEqual(exactRational(2 ** -1074), { n: 1n, d: 1n << 1074n }); // the smallest subnormal
    assert.deepEqual(exactRational(2 ** 60 + 2 ** 8), { n: (1n << 60n) + 256n, d: 1n });
  });

  it('draws uniform integers below n without bias (chi-square over 7 and 2^33 + 5 buckets by residue)', () => {
    const rng = new SeededRng(11);
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 21000; i++) counts[Number(uniformBelow(rng, 7n))]! += 1;
    assert.ok(chiSquareCounts(counts, new Array(7).fill(1 / 7)).pValue > ALPHA);
    const big = (1n << 33n) + 5n;
    for (let i = 0; i < 1000; i++) assert.ok(uniformBelow(rng, big) < big);
  });

  for (const [num, den] of [
    [3n, 10n],
    [17n, 10n],
    [2n, 3n],
    [0n, 1n],
  ] as const) {
    it(`Bernoulli(exp(-${num}/${den})) has the right frequency`, () => {
      const rng = new SeededRng(5);
      const p = Math.exp(-Number(num) / Number(den));
      let ones = 0;
      const n = 20000;
      for (let i = 0; i < n; i++) if (bernoulliExpNeg(rng, num, den)) ones++;
      if (p === 1) assert.equal(ones, n);
      else assert.ok(chiSquareCounts([ones, n - ones], [p, 1 - p]).pValue > ALPHA, `${ones}/${n} vs ${p}`);
    });
  }
});

describe('discrete Laplace', () => {
  for (const scale of [2, 1 / 0.3, 0.4]) {
    it(`matches the exact PMF at scale ${scale.toFixed(3)} (chi-square, 20,000 draws)`, () => {
      const noise = seeded(21);
      const xs = Array.from({ length: 20000 }, () => sampleDiscreteLaplace(scale, noise));
      const r = chiSquareIntegers(xs, dlapPmf(scale));
      assert.ok(r.pValue > ALPHA, `p = ${r.pValue}, chi2 = ${r.statistic} on ${r.dof} dof`);
    });
  }

  it('the test has power: draws at scale 2 are rejected as scale 2.3', () => {
    const noise = seeded(22);
    const xs = Array.from({ length: 20000 }, () => sampleDiscreteLaplace(2, noise));
    assert.ok(chiSquareIntegers(xs, dlapPmf(2.3)).pValue < ALPHA);
  });

  it('the mechanism adds noise of scale sensitivity/epsilon to integers', () => {
    const noise = seeded(23);
    const xs = Array.from(
      { length: 20000 },
      () => discreteLaplaceMechanism(1000, { sensitivity: 2, epsilon: 0.8, noise }) - 1000,
    );
    assert.ok(chiSquareIntegers(xs, dlapPmf(2 / 0.8)).pValue > ALPHA);
  });
});

describe('discrete Gaussian', () => {
  for (const sigma of [2.5, 0.7, 11.3]) {
    it(`matches the exact PMF at sigma ${sigma} (chi-square, 20,000 draws)`, () => {
      const noise = seeded(31);
      const xs = Array.from({ length: 20000 }, () => sampleDiscreteGaussian(sigma, noise));
      const r = chiSquareIntegers(xs, dgaussPmf(sigma));
      assert.ok(r.pValue > ALPHA, `p = ${r.pValue}`);
    });
  }

  it('the test has power: sigma 2.5 draws are rejected as sigma 2.7', () => {
    const noise = seeded(32);
    const xs = Array.from({ length: 20000 }, () => sampleDiscreteGaussian(2.5, noise));
    assert.ok(chiSquareIntegers(xs, dgaussPmf(2.7)).pValue < ALPHA);
  });

  it('delta (CKS20 Thm 7) equals the hockey-stick divergence summed over the integers', () => {
    for (const [sigma, eps, sens] of [
      [1.5, 1, 1],
      [0.5, 0.3, 1],
      [4, 0.5, 3],
      [12, 0.05, 2],
      // Tails that fall by less than 0.5 % a step (ε/Δ < 0.005, σ >= 100): Euler–Maclaurin's branch.
      [150, 0.004, 1],
      [1000, 0.002, 3],
      [20000, 0.00005, 1],
    ] as const) {
      const p = dgaussPmf(sigma);
      let direct = 0;
      const r = Math.ceil(40 * sigma) + sens;
      for (let y = -r; y <= r; y++) direct += Math.max(0, p(y) - Math.exp(eps) * p(y - sens));
      const d = discreteGaussianDelta(sigma, eps, sens);
      assert.ok(Math.abs(d - direct) <= 1e-9 * direct + 1e-15, `sigma ${sigma}: ${d} vs ${direct}`);
    }
    // Large sigma: close to the continuous Gaussian's delta.
    const dd = discreteGaussianDelta(50, 0.08, 1);
    assert.ok(Math.abs(dd - gaussianDelta(50, 0.08, 1)) / dd < 1e-3);
  });

  it('calibration reaches the target delta and no less noise would', () => {
    const s = discreteGaussianSigma(0.5, 1e-6, 3);
    assert.ok(discreteGaussianDelta(s, 0.5, 3) <= 1e-6);
    assert.ok(discreteGaussianDelta(s * (1 - 1e-6), 0.5, 3) > 1e-6 * (1 - 1e-3));
    const out = discreteGaussianMechanism(7, {
      sensitivity: 3,
      epsilon: 0.5,
      delta: 1e-6,
      noise: seeded(33),
    });
    assert.equal(out.sigma, s);
    assert.ok(Number.isInteger(out.value));
  });

  it('calibrates a large sensitivity (sigma near 5e7) to the continuous analytic Gaussian, and refuses past 1e12', () => {
    // Δ = 1e5 at ε = 0.01: the discrete Gaussian's σ is the continuous one's (Balle & Wang 2018) to
    // within 1e-6 at this scale (CKS20 §4); this used to be refused (σ was capped at 1e7).
    const s = discreteGaussianSigma(0.01, 1e-9, 100_000);
    assert.ok(discreteGaussianDelta(s, 0.01, 100_000) <= 1e-9);
    assert.ok(discreteGaussianDelta(s * (1 - 1e-6), 0.01, 100_000) > 1e-9 * (1 - 1e-3));
    assert.ok(Math.abs(s / analyticGaussianSigma(0.01, 1e-9, 100_000) - 1) < 1e-6, `${s}`);
    assert.throws(
      () => discreteGaussianSigma(1e-6, 1e-12, 2 ** 20),
      (e: unknown) => isBulwarkError(e) && e.code === 'ERR_PRIVACY_UNACHIEVABLE' && /1e12/.test(e.message),
    );
  });
});

describe('continuous mechanisms', () => {
  it('Laplace noise follows Lap(sensitivity/epsilon) (KS, 20,000 draws)', () => {
    const noise = seeded(41);
    const b = 1.5 / 0.5;
    const xs = Array.from(
      { length: 20000 },
      () => laplaceMechanism(10, { sensitivity: 1.5, epsilon: 0.5, noise }) - 10,
    );
    const cdf = (x: number) => (x < 0 ? 0.5 * Math.exp(x / b) : 1 - 0.5 * Math.exp(-x / b));
    assert.ok(ksTest(xs, cdf).pValue > ALPHA);
  });

  it('analytic Gaussian sigma matches diffprivlib 0.6.5 GaussianAnalytic and beats the classic one', () => {
    // Reference: diffprivlib 0.6.5, GaussianAnalytic(epsilon, delta, sensitivity=1)._scale, computed once.
    assert.ok(Math.abs(analyticGaussianSigma(1, 1e-5) - 3.7306316348148236) < 1e-9);
    assert.ok(Math.abs(analyticGaussianSigma(0.5, 1e-5) - 7.031826675581986) < 1e-9);
    assert.ok(Math.abs(analyticGaussianSigma(5, 1e-6) - 0.9800490003226346) < 1e-9);
    assert.ok(analyticGaussianSigma(0.5, 1e-5) < classicGaussianSigma(0.5, 1e-5));
    const s = analyticGaussianSigma(2, 1e-7, 3);
    assert.ok(gaussianDelta(s, 2, 3) <= 1e-7);
  });

  it('the Gaussian mechanism adds N(0, sigma^2) noise (KS, 10,000 draws)', () => {
    const noise = seeded(42);
    const sigma = analyticGaussianSigma(1, 1e-5, 2);
    const xs = Array.from({ length: 10000 }, () =>
      gaussianMechanism(0, { sensitivity: 2, epsilon: 1, delta: 1e-5, noise }),
    );
    assert.ok(ksTest(xs, (x) => normCdf(x / sigma)).pValue > ALPHA);
    assert.ok(ksTest(xs, (x) => normCdf(x / (1.1 * sigma))).pValue < ALPHA, 'the KS test has power');
  });
});

describe('permute-and-flip', () => {
  /** Exact selection probabilities by enumerating every visiting order. */
  function exactProbs(u: number[], eps: number, sens: number): number[] {
    const best = Math.max(...u);
    const p = u.map((x) => Math.exp((eps * (x - best)) / (2 * sens)));
    const out = new Array<number>(u.length).fill(0);
    const perms: number[][] = [];
    const permute = (rest: number[], acc: number[]) => {
      if (rest.length === 0) perms.push(acc);
      rest.forEach((r, i) => {
        permute([...rest.slice(0, i), ...rest.slice(i + 1)], [...acc, r]);
      });
    };
    permute(
      u.map((_, i) => i),
      [],
    );
    for (const perm of perms) {
      let reach = 1;
      for (const r of perm) {
        out[r]! += (reach * p[r]!) / perms.length;
        reach *= 1 - p[r]!;
      }
    }
    return out;
  }

  it('selects with the exact permute-and-flip probabilities (chi-square, 12,000 draws)', () => {
    const u = [1, 2.5, 3, 0.2];
    const noise = seeded(51);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 12000; i++) counts[permuteAndFlip(u, { epsilon: 1.3, sensitivity: 1, noise })]! += 1;
    const probs = exactProbs(u, 1.3, 1);
    assert.ok(Math.abs(probs.reduce((a, b) => a + b) - 1) < 1e-12);
    assert.ok(chiSquareCounts(counts, probs).pValue > ALPHA, `${counts} vs ${probs}`);
  });
});

describe('parameter validation and noise sources', () => {
  const bad: Array<[string, () => unknown, string]> = [
    ['epsilon 0', () => laplaceMechanism(1, { sensitivity: 1, epsilon: 0 }), 'epsilon'],
    ['epsilon NaN', () => discreteLaplaceMechanism(1, { sensitivity: 1, epsilon: Number.NaN }), 'epsilon'],
    ['delta 1', () => analyticGaussianSigma(1, 1), 'delta'],
    ['delta 0', () => gaussianMechanism(1, { sensitivity: 1, epsilon: 1, delta: 0 }), 'delta'],
    ['infinite sensitivity', () => laplaceMechanism(1, { sensitivity: Infinity, epsilon: 1 }), 'sensitivity'],
    [
      'fractional integer sensitivity',
      () => discreteLaplaceMechanism(1, { sensitivity: 1.5, epsilon: 1 }),
      'sensitivity',
    ],
    ['non-integer value', () => discreteLaplaceMechanism(1.5, { sensitivity: 1, epsilon: 1 }), 'value'],
    ['empty utilities', () => permuteAndFlip([], { sensitivity: 1, epsilon: 1 }), 'utilities'],
    ['NaN utility', () => permuteAndFlip([1, Number.NaN], { sensitivity: 1, epsilon: 1 }), 'utilities[1]'],
  ];
  for (const [what, f, param] of bad) {
    it(`refuses ${what} naming the parameter`, () => {
      assert.throws(
        f,
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && e.message.startsWith(`${param}:`),
      );
    });
  }

  it('seeded noise warns loudly; the default source is the CSPRNG', () => {
    const n = NoiseSource.insecureSeeded(1, 'warning check');
    assert.equal(n.secure, false);
    // process warnings are delivered on the next tick.
    return new Promise<void>((resolve) => {
      setImmediate(() => {
        const mine = warnings.filter((w) => w.startsWith('warning check:'));
        assert.equal(mine.length, 1);
        assert.match(mine[0]!, /NO privacy guarantee/);
        assert.equal(NoiseSource.secure().secure, true);
        // Two secure draws differ (with overwhelming probability) — it is not seeded.
        assert.notEqual(sampleDiscreteLaplace(1e6), sampleDiscreteLaplace(1e6));
        resolve();
      });
    });
  });
});
