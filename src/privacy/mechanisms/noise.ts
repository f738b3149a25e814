/**
 * Where DP noise comes from. Production noise must come from the operating system's CSPRNG: a seeded
 * generator lets anyone who learns the seed subtract the noise. A seeded source exists for tests and
 * reproducible experiments only, and only behind an explicit, loud opt-in (as Opacus's `secure_mode`):
 * creating one emits a process warning (code `BULWARK_INSECURE_NOISE`).
 */
import { randomFillSync } from 'node:crypto';
import { type Rng, SecureRng, type Seed, SeededRng } from '../../core/index.js';

/** Warning code emitted when seeded (insecure) DP noise is created. */
export const INSECURE_NOISE_WARNING = 'BULWARK_INSECURE_NOISE';

/** A source of DP noise: the CSPRNG ({@link NoiseSource.secure}) or, explicitly, a seeded generator. */
export class NoiseSource {
  readonly rng: Rng;
  /** False for a seeded source: its noise gives no privacy against anyone who can learn the seed. */
  readonly secure: boolean;

  private constructor(rng: Rng, secure: boolean) {
    this.rng = rng;
    this.secure = secure;
  }

  /** Noise from the operating system's CSPRNG (the default everywhere). */
  static secure(): NoiseSource {
    return new NoiseSource(new SecureRng(), true);
  }

  /**
   * Seeded, reproducible noise that is NOT private against anyone who can learn or guess the seed. For
   * tests and experiments only; emits a `BULWARK_INSECURE_NOISE` process warning.
   */
  static insecureSeeded(seed: Seed, context = 'differential privacy'): NoiseSource {
    process.emitWarning(
      `${context}: seeded noise (seed ${String(seed)}) is reproducible and gives NO privacy guarantee against anyone who can learn the seed; use it for tests only`,
      { code: INSECURE_NOISE_WARNING },
    );
    return new NoiseSource(new SeededRng(seed), false);
  }
}

let defaultSource: NoiseSource | null = null;

/** The shared CSPRNG noise source used when a caller passes none. */
export function defaultNoise(): NoiseSource {
  defaultSource ??= NoiseSource.secure();
  return defaultSource;
}

/**
 * What a ledger spend records about its noise: `{ noise: 'insecure-seeded' }` for a seeded source, else
 * nothing. A release with seeded noise is not private against whoever chose or learns the seed (an
 * analyst who passes `--seeded-noise` can subtract the noise), so the spend must not read in the
 * ledger's history and audit log like a private one.
 */
export function noiseDetails(source: NoiseSource | undefined): { noise?: 'insecure-seeded' } {
  return source !== undefined && !source.secure ? { noise: 'insecure-seeded' } : {};
}

/** The caller's source, or the shared secure one. */
export function noiseOf(source: NoiseSource | undefined): NoiseSource {
  return source ?? defaultNoise();
}

const BULK_WORDS = 1 << 16;
let bulk: Uint32Array | null = null;
let bulkPos = BULK_WORDS;

function secureWord(): number {
  if (bulk === null) bulk = new Uint32Array(BULK_WORDS);
  if (bulkPos === BULK_WORDS) {
    randomFillSync(bulk);
    bulkPos = 0;
  }
  return bulk[bulkPos++] as number;
}

/** A uniform double in (0, 1] with 53 random bits from the CSPRNG buffer. */
function secureUniformOpen(): number {
  const hi = secureWord() >>> 5;
  const lo = secureWord() >>> 6;
  return (hi * 67108864 + lo + 1) / 9007199254740992;
}

/**
 * Adds N(0, std²) noise to every element of `out`, fast, for DP-SGD's gradient noise. From a secure
 * source each deviate is hardened as Opacus's `secure_mode` does (the sum of four standard normals over
 * 2; Holohan & Braghin 2021), the normals drawn by Marsaglia's polar method from 53-bit uniforms out of
 * large CSPRNG buffers; from a seeded source (tests only) it is one normal per element from that
 * generator.
 */
export function addGaussianNoise(out: Float32Array, std: number, source: NoiseSource): void {
  if (std === 0) return;
  if (!source.secure) {
    const r = source.rng;
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + std * r.normal();
    return;
  }
  const half = std / 2;
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    // Two polar pairs: four independent N(0, 1); their sum is N(0, 4).
    for (let k = 0; k < 2; k++) {
      let u: number;
      let v: number;
      let q: number;
      do {
        u = 2 * secureUniformOpen() - 1;
        v = 2 * secureUniformOpen() - 1;
        q = u * u + v * v;
      } while (q >= 1 || q === 0);
      sum += (u + v) * Math.sqrt((-2 * Math.log(q)) / q);
    }
    out[i] = (out[i] as number) + half * sum;
  }
}
