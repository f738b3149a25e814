/**
 * Where DP noise comes from. Production noise must come from the operating system's CSPRNG: a seeded
 * generator lets anyone who learns the seed subtract the noise. A seeded source exists for tests and
 * reproducible experiments only, and only behind an explicit, loud opt-in (as Opacus's `secure_mode`):
 * creating one emits a process warning (code `BULWARK_INSECURE_NOISE`).
 */
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

/** The caller's source, or the shared secure one. */
export function noiseOf(source: NoiseSource | undefined): NoiseSource {
  return source ?? defaultNoise();
}
