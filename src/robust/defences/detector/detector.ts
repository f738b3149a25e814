/**
 * What every detector shares: scores where higher means more suspicious, a threshold calibrated on
 * held-out clean data to a chosen false-positive rate, and a JSON form with a format and version check
 * (to travel in the model package).
 *
 * Calibration is split-conformal (Vovk et al. 2005; Angelopoulos & Bates 2021): with n clean
 * calibration scores, the threshold is the ceil((n + 1)(1 - alpha))-th smallest, and an input is flagged
 * when its score is strictly above it. For a fresh clean input exchangeable with the calibration set,
 * P(flagged) <= alpha, and >= alpha - 1 / (n + 1) without ties: the target FPR holds on new data, not
 * just on the data it was fitted on. With too few scores for the target (n < 1 / alpha - 1), the
 * threshold is +Infinity (nothing can be flagged) and calibration says so.
 */
import { BulwarkError, clopperPearson, invalidArgument, requireNumberIn } from '../../../core/index.js';

export const DETECTOR_FORMAT = 'bulwark.detector';
export const DETECTOR_VERSION = 1;

/** A fitted and calibrated threshold. */
export interface Calibration {
  threshold: number;
  /** The target false-positive rate. */
  fpr: number;
  /** Number of clean scores it was calibrated on. */
  n: number;
  /** Share of the calibration scores above the threshold. */
  calibrationFpr: number;
}

/** The conformal threshold of `scores` for a target false-positive rate. */
export function conformalThreshold(scores: ArrayLike<number>, fpr: number): Calibration {
  requireNumberIn('fpr', fpr, 0, 1, { minExclusive: true, maxExclusive: true });
  const n = scores.length;
  if (n === 0) throw invalidArgument('scores', 'at least one clean score to calibrate on', n);
  const s = Float64Array.from(scores);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(s[i])) throw new BulwarkError('ERR_DATA_VALUE', `calibration score ${i} is NaN`);
  }
  s.sort();
  const rank = Math.ceil((n + 1) * (1 - fpr));
  const threshold = rank > n ? Infinity : (s[rank - 1] as number);
  let above = 0;
  for (let i = 0; i < n; i++) if ((s[i] as number) > threshold) above++;
  return { threshold, fpr, n, calibrationFpr: above / n };
}

/**
 * An upper confidence bound on the false-positive rate a calibrated threshold will actually have.
 * The conformal guarantee is on average over calibration sets; the rate of one threshold is itself
 * random: for continuous, exchangeable scores it is Beta(l, n + 1 − l) with l = n + 1 − r, r the
 * threshold's rank (Vovk 2012, "Conditional validity of inductive conformal predictors";
 * Angelopoulos & Bates 2021, §3.2). Returns its `confidence` quantile: with 100 scores at a 1 %
 * target it is 2.95 % at 95 %, with 1,000 scores 1.57 %. 0 when nothing can be flagged (too few
 * scores for the target). For integer a, b, I_x(a, b) = P(Binomial(a + b − 1, x) >= a), so the
 * quantile is core's Clopper–Pearson bound.
 */
export function conformalFprBound(n: number, fpr: number, confidence = 0.95): number {
  if (!Number.isInteger(n) || n < 1) throw invalidArgument('n', 'a positive integer', n);
  requireNumberIn('fpr', fpr, 0, 1, { minExclusive: true, maxExclusive: true });
  requireNumberIn('confidence', confidence, 0, 1, { minExclusive: true, maxExclusive: true });
  const rank = Math.ceil((n + 1) * (1 - fpr));
  if (rank > n) return 0;
  // Beta(l, n + 1 − l)'s quantile c is the p with P(Binomial(n, p) >= l) = c, i.e.
  // P(Binomial(n, p) <= l − 1) = 1 − c: the Clopper–Pearson upper bound of l − 1 successes in n.
  return clopperPearson(n - rank, n, confidence, 'upper');
}

/**
 * 1 where score > threshold, and where the score is NaN: a score that cannot be computed is no evidence
 * the input is clean (fail closed; `NaN > t` is false, so a NaN score used to pass as clean).
 */
export function flag(scores: ArrayLike<number>, threshold: number): Uint8Array {
  return Uint8Array.from({ length: scores.length }, (_, i) => ((scores[i] as number) <= threshold ? 0 : 1));
}

/** A detector of adversarial inputs, one input at a time. */
export interface Detector {
  readonly kind: string;
  /** The calibration, once {@link calibrate} has run (or was loaded). */
  readonly calibration: Calibration | null;
  /** Suspicion score of each row (higher is more suspicious). */
  score(x: Float32Array, rows: number): Promise<Float64Array>;
  /** Sets the threshold from clean held-out rows for a target false-positive rate. */
  calibrate(x: Float32Array, rows: number, fpr: number): Promise<Calibration>;
  /** 1 for each row scored above the threshold. */
  detect(x: Float32Array, rows: number): Promise<Uint8Array>;
  toJSON(): DetectorJson;
}

/** Common fields of every saved detector. */
export interface DetectorJson {
  format: typeof DETECTOR_FORMAT;
  version: number;
  kind: string;
  calibration: Calibration | null;
  [key: string]: unknown;
}

/**
 * Checks the envelope of saved detector state; `ERR_DETECTOR_STATE` when it is not `kind`'s. A saved
 * calibration must be whole: a finite threshold within `thresholdRange` (the values the detector's
 * scores can take), fpr in (0, 1), n a positive integer, calibrationFpr in [0, 1]. A null (infinite)
 * threshold is refused: it was calibrated on too few clean rows for its target and flags nothing, so a
 * gateway loading it would run a detector that always answers "clean".
 */
export function checkDetectorJson(
  json: unknown,
  kind: string,
  thresholdRange: readonly [number, number] = [-Number.MAX_VALUE, Number.MAX_VALUE],
): DetectorJson {
  const bad = (why: string) => new BulwarkError('ERR_DETECTOR_STATE', `saved ${kind} detector: ${why}`);
  if (typeof json !== 'object' || json === null) throw bad('not an object');
  const j = json as Partial<DetectorJson>;
  if (j.format !== DETECTOR_FORMAT)
    throw bad(`format is ${JSON.stringify(j.format)}, expected "${DETECTOR_FORMAT}"`);
  if (j.version !== DETECTOR_VERSION) {
    throw bad(
      `version ${String(j.version)} is not supported (this Bulwark reads version ${DETECTOR_VERSION})`,
    );
  }
  if (j.kind !== kind) throw bad(`it is a ${JSON.stringify(j.kind)} detector`);
  const c = j.calibration as unknown;
  if (c === null || c === undefined) return { ...(j as DetectorJson), calibration: null };
  if (typeof c !== 'object' || Array.isArray(c)) throw bad('calibration malformed');
  const { threshold: t, fpr, n, calibrationFpr } = c as Record<string, unknown>;
  if (t === null || t === undefined)
    throw bad(
      'calibration has no finite threshold (calibrated on too few clean rows for its target rate, it flags nothing); calibrate it again on more rows',
    );
  const [lo, hi] = thresholdRange;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < lo || t > hi)
    throw bad(`calibration threshold ${JSON.stringify(t)} is not a number in [${lo}, ${hi}]`);
  if (typeof fpr !== 'number' || !(fpr > 0 && fpr < 1))
    throw bad(`calibration fpr ${JSON.stringify(fpr)} is not in (0, 1)`);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw bad(`calibration n ${JSON.stringify(n)} is not a positive integer`);
  if (typeof calibrationFpr !== 'number' || !(calibrationFpr >= 0 && calibrationFpr <= 1))
    throw bad(`calibration calibrationFpr ${JSON.stringify(calibrationFpr)} is not in [0, 1]`);
  // The rank conformalThreshold takes: past n, n scores give no finite threshold for this target, so a
  // finite one beside them was not calibrated (a file edited to claim a rate it never had).
  if (Math.ceil((n + 1) * (1 - fpr)) > n)
    throw bad(
      `calibration claims a finite threshold for a target rate of ${fpr} from ${n} scores; at least ${Math.ceil(1 / fpr - 1)} are needed`,
    );
  return { ...(j as DetectorJson), calibration: { threshold: t, fpr, n, calibrationFpr } };
}

/** JSON cannot hold Infinity: an uncalibratable threshold is saved as null. */
export function calibrationToJson(c: Calibration | null): Calibration | null {
  if (c === null) return null;
  return { ...c, threshold: Number.isFinite(c.threshold) ? c.threshold : (null as unknown as number) };
}

/** Float32 array <-> base64 (little-endian), for saved matrices. */
export function f32ToBase64(a: Float32Array | Float64Array): string {
  const f = a instanceof Float32Array ? a : Float32Array.from(a);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}

/**
 * A saved float32 vector; every value must be finite (and > 0 with `positive`): a NaN smuggled into a
 * precision matrix or a scale makes every score NaN, and a detector whose scores are NaN flags nothing.
 */
export function base64ToF32(
  s: unknown,
  length: number,
  what: string,
  kind: string,
  positive = false,
): Float32Array {
  if (typeof s !== 'string')
    throw new BulwarkError('ERR_DETECTOR_STATE', `saved ${kind} detector: ${what} missing`);
  const b = Buffer.from(s, 'base64');
  if (b.length !== length * 4) {
    throw new BulwarkError(
      'ERR_DETECTOR_STATE',
      `saved ${kind} detector: ${what} has ${b.length / 4} values, expected ${length}`,
    );
  }
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const v = b.readFloatLE(i * 4);
    if (!Number.isFinite(v) || (positive && !(v > 0)))
      throw new BulwarkError(
        'ERR_DETECTOR_STATE',
        `saved ${kind} detector: ${what}[${i}] is ${v}, expected a ${positive ? 'positive ' : ''}finite number`,
      );
    out[i] = v;
  }
  return out;
}

export function notReady(kind: string, what: 'fit' | 'calibrate'): BulwarkError {
  return new BulwarkError(
    'ERR_DETECTOR_STATE',
    what === 'fit'
      ? `${kind} detector: call fit() first`
      : `${kind} detector: call calibrate() first to set its threshold`,
  );
}
