/**
 * A detector bundle: the fitted and calibrated detectors a served model runs in the gateway's request
 * path (Mahalanobis on its input features, the stateful query detector, PRADA), saved together as one
 * JSON document so that it can travel inside the model package, encrypted and signed with the model
 * (src/model, manifest version 2), instead of beside it as files anyone with disk access could swap.
 *
 * Only the detectors the gateway can run are bundled: a Mahalanobis detector on a hidden layer needs
 * the network's activations, which the gateway (ONNX Runtime, probabilities out) does not have, and the
 * squeeze detector needs extra model calls per request.
 *
 * A bundle also says what data its detectors were fitted and calibrated on (`fittedOn`): the
 * Mahalanobis state is class means and a precision matrix of those rows, a statistic of the data that
 * no differential-privacy guarantee covers. An auditor reading a package can see which data it is,
 * and, when it was a protected dataset (a `bulwark data protect` manifest beside it), its id and
 * whether its rows were verified against that manifest before fitting (`fittedOn.protectedData`,
 * optional: bundles written before it, or fitted on a plain file, have none, and still load; readers
 * of version 1 that predate it ignore it).
 */
import {
  BulwarkError,
  invalidArgument,
  requireFiniteRows,
  requireInteger,
  requireNumberIn,
  rngOf,
} from '../../../core/index.js';
import { takeLabels, takeRows } from '../../attacks/evasion/common.js';
import type { DetectorJson } from './detector.js';
import { MahalanobisDetector } from './mahalanobis.js';
import { PradaDetector, type PradaOptions } from './prada.js';
import { StatefulDetector, type StatefulOptions } from './stateful.js';
import { benignStreams } from './stream.js';

export const DETECTOR_BUNDLE_FORMAT = 'bulwark.detectors';
export const DETECTOR_BUNDLE_VERSION = 1;
/** The detector kinds a bundle holds, in the gateway's order. */
export const BUNDLE_KINDS = ['mahalanobis', 'stateful', 'prada'] as const;
export type BundleKind = (typeof BUNDLE_KINDS)[number];

/**
 * A protected dataset the detectors were fitted on: the id of its protection manifest (null when the
 * check was skipped and the manifest did not parse) and whether its rows were verified against it
 * (false: `--no-verify-protected`).
 */
export interface DetectorProtectedData {
  dataset: string | null;
  verified: boolean;
}

/** What the detectors of a bundle were fitted and calibrated on. */
export interface DetectorProvenance {
  /** `sha256:` of the data file the rows came from. */
  datasetDigest?: string;
  /** When that file was a protected dataset: its id, and whether it was verified. */
  protectedData?: DetectorProtectedData;
  /** Rows the detectors were fitted on. */
  fitRows: number;
  /** Rows (disjoint from the fitted ones) their thresholds were calibrated on. */
  calibrationRows: number;
  /** Seed of the split and of the benign streams. */
  seed?: number;
}

/** The saved form of a bundle. */
export interface DetectorBundleJson {
  format: typeof DETECTOR_BUNDLE_FORMAT;
  version: number;
  /** Width of the model's feature vector the detectors score. */
  features: number;
  /** Number of the model's classes. */
  classes: number;
  fittedOn?: DetectorProvenance;
  detectors: Partial<Record<BundleKind, DetectorJson>>;
}

/** The detectors of a bundle, loaded. */
export interface DetectorBundle {
  features: number;
  classes: number;
  fittedOn: DetectorProvenance | null;
  mahalanobis: MahalanobisDetector | null;
  stateful: StatefulDetector | null;
  prada: PradaDetector | null;
}

function bad(why: string): BulwarkError {
  return new BulwarkError('ERR_DETECTOR_STATE', `detector bundle: ${why}`);
}

function requireCalibrated(kind: string, threshold: number | undefined): void {
  if (threshold === undefined) throw bad(`the ${kind} detector is not calibrated: call calibrate() first`);
  if (!Number.isFinite(threshold))
    throw bad(
      `the ${kind} detector has no finite threshold (calibrated on too few clean rows for its target rate, it flags nothing); calibrate it on more rows`,
    );
}

type BundleParts = { mahalanobis?: MahalanobisDetector; stateful?: StatefulDetector; prada?: PradaDetector };

/**
 * The checks every bundle passes, saved or loaded: at least one detector, each calibrated with a finite
 * threshold, of the model's width (PRADA: and class count), and a Mahalanobis detector on the inputs.
 */
function checkParts(parts: BundleParts, features: number, classes: number): void {
  if (!Number.isInteger(features) || features < 1)
    throw bad(`features ${features} is not a positive integer`);
  if (!Number.isInteger(classes) || classes < 2) throw bad(`classes ${classes} is not an integer >= 2`);
  const m = parts.mahalanobis;
  if (m) {
    if (m.layer !== 'input')
      throw bad(
        'a Mahalanobis detector on a hidden layer cannot be bundled: the gateway scores the input features',
      );
    requireCalibrated('mahalanobis', m.calibration?.threshold);
    if (m.width !== features)
      throw bad(`the mahalanobis detector scores ${m.width} features, the model has ${features}`);
  }
  for (const [kind, d] of [
    ['stateful', parts.stateful],
    ['prada', parts.prada],
  ] as const) {
    if (!d) continue;
    requireCalibrated(kind, d.calibration?.threshold);
    if (d.inputs !== features)
      throw bad(`the ${kind} detector takes ${d.inputs} features, the model has ${features}`);
  }
  if (parts.prada && parts.prada.classes !== classes)
    throw bad(`the prada detector was fitted for ${parts.prada.classes} classes, the model has ${classes}`);
  if (!parts.mahalanobis && !parts.stateful && !parts.prada) throw bad('no detector to save');
}

/**
 * Saves fitted, calibrated detectors as a bundle for a model with `features` inputs and `classes`
 * classes. Refuses (ERR_DETECTOR_STATE) an empty bundle, an uncalibrated detector or one that flags
 * nothing, a detector of another width or class count, and a Mahalanobis detector on a hidden layer.
 */
export function detectorBundleToJson(
  parts: BundleParts,
  model: { features: number; classes: number; fittedOn?: DetectorProvenance },
): DetectorBundleJson {
  const { features, classes } = model;
  checkParts(parts, features, classes);
  const detectors: Partial<Record<BundleKind, DetectorJson>> = {};
  for (const kind of BUNDLE_KINDS) {
    const d = parts[kind];
    if (d) detectors[kind] = d.toJSON();
  }
  return {
    format: DETECTOR_BUNDLE_FORMAT,
    version: DETECTOR_BUNDLE_VERSION,
    features,
    classes,
    ...(model.fittedOn
      ? {
          fittedOn: {
            ...model.fittedOn,
            ...(model.fittedOn.protectedData ? { protectedData: { ...model.fittedOn.protectedData } } : {}),
          },
        }
      : {}),
    detectors,
  };
}

function provenanceOf(raw: unknown): DetectorProvenance | null {
  if (raw === undefined) return null;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('fittedOn malformed');
  const p = raw as Record<string, unknown>;
  const count = (k: string): number => {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`fittedOn.${k} malformed`);
    return v;
  };
  const out: DetectorProvenance = {
    fitRows: count('fitRows'),
    calibrationRows: count('calibrationRows'),
  };
  const digest = p['datasetDigest'];
  if (digest !== undefined) {
    if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest))
      throw bad('fittedOn.datasetDigest malformed');
    out.datasetDigest = digest;
  }
  if (p['seed'] !== undefined) out.seed = count('seed');
  const pd = p['protectedData'];
  if (pd !== undefined) {
    if (typeof pd !== 'object' || pd === null || Array.isArray(pd))
      throw bad('fittedOn.protectedData malformed');
    const { dataset, verified, ...rest } = pd as Record<string, unknown>;
    if (
      Object.keys(rest).length > 0 ||
      typeof verified !== 'boolean' ||
      (dataset !== null && (typeof dataset !== 'string' || !/^[0-9a-f]{32}$/.test(dataset)))
    )
      throw bad('fittedOn.protectedData malformed');
    out.protectedData = { dataset, verified };
  }
  return out;
}

/**
 * Checks a saved bundle's envelope (format, version, widths, provenance, known kinds) and returns its
 * parts, each detector's saved state still unparsed: the caller loads them (the gateway does, naming
 * its configuration key in errors). ERR_DETECTOR_STATE on anything malformed.
 */
export function readDetectorBundle(json: unknown): {
  features: number;
  classes: number;
  fittedOn: DetectorProvenance | null;
  detectors: Partial<Record<BundleKind, unknown>>;
} {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('not an object');
  const j = json as Record<string, unknown>;
  if (j['format'] !== DETECTOR_BUNDLE_FORMAT)
    throw bad(`format is ${JSON.stringify(j['format'])}, expected "${DETECTOR_BUNDLE_FORMAT}"`);
  if (j['version'] !== DETECTOR_BUNDLE_VERSION)
    throw bad(
      `version ${String(j['version'])} is not supported (this Bulwark reads ${DETECTOR_BUNDLE_VERSION})`,
    );
  const features = j['features'];
  const classes = j['classes'];
  if (typeof features !== 'number' || !Number.isInteger(features) || features < 1)
    throw bad('features malformed');
  if (typeof classes !== 'number' || !Number.isInteger(classes) || classes < 2)
    throw bad('classes malformed');
  const d = j['detectors'];
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw bad('detectors malformed');
  const detectors: Partial<Record<BundleKind, unknown>> = {};
  for (const [kind, state] of Object.entries(d)) {
    if (!(BUNDLE_KINDS as readonly string[]).includes(kind))
      throw bad(`unknown detector kind ${JSON.stringify(kind)} (known: ${BUNDLE_KINDS.join(', ')})`);
    detectors[kind as BundleKind] = state;
  }
  if (Object.keys(detectors).length === 0) throw bad('no detector in it');
  return { features, classes, fittedOn: provenanceOf(j['fittedOn']), detectors };
}

/**
 * Loads a saved bundle: its envelope, then each detector (its own checks: calibrated, finite state),
 * then that every detector fits the bundle's width and class count, and, when `model` is given, the
 * model's. ERR_DETECTOR_STATE on any mismatch.
 */
export function loadDetectorBundle(
  json: unknown,
  model?: { features: number; classes: number },
): DetectorBundle {
  const r = readDetectorBundle(json);
  if (model && (model.features !== r.features || model.classes !== r.classes))
    throw bad(
      `made for ${r.features} features and ${r.classes} classes, the model has ${model.features} and ${model.classes}`,
    );
  const { mahalanobis: mj, stateful: sj, prada: pj } = r.detectors;
  const out: DetectorBundle = {
    features: r.features,
    classes: r.classes,
    fittedOn: r.fittedOn,
    mahalanobis: mj === undefined ? null : MahalanobisDetector.load(mj),
    stateful: sj === undefined ? null : StatefulDetector.load(sj),
    prada: pj === undefined ? null : PradaDetector.load(pj),
  };
  // The same checks as when saving (a hand-edited bundle is held to them too), without saving again.
  checkParts(
    {
      ...(out.mahalanobis ? { mahalanobis: out.mahalanobis } : {}),
      ...(out.stateful ? { stateful: out.stateful } : {}),
      ...(out.prada ? { prada: out.prada } : {}),
    },
    r.features,
    r.classes,
  );
  return out;
}

/** The most feature values the benign calibration streams of {@link fitDetectorBundle} hold (256 MiB). */
export const MAX_STREAM_VALUES = 2 ** 26;

/** Options of {@link fitDetectorBundle}. */
export interface FitBundleOptions {
  /** Number of the model's classes (labels are 0..classes-1). */
  classes: number;
  /** Detectors to fit (default all three). */
  kinds?: readonly BundleKind[];
  /** Target false-positive rate of every detector, or per kind (default 0.01). */
  fpr?: number | Partial<Record<BundleKind, number>>;
  /** Share of the rows held out to calibrate the thresholds (default 0.5); the rest are fitted on. */
  calibrationShare?: number;
  /** Seed of the split and of the benign streams (default 0). */
  seed?: number;
  /** `sha256:` of the file the rows come from, recorded in `fittedOn`. */
  datasetDigest?: string;
  /** When that file is a protected dataset: its id and whether it was verified, in `fittedOn`. */
  protectedData?: DetectorProtectedData;
  /**
   * Benign query streams the stream detectors are calibrated on (default 100); streams x streamLength x
   * features at most {@link MAX_STREAM_VALUES}.
   */
  streams?: number;
  /** Queries per benign stream (default min(500, calibration rows)). */
  streamLength?: number;
  /**
   * The model's predicted class of each row (for PRADA's per-class sets, as the gateway feeds it);
   * default the labels `y`.
   */
  predicted?: ArrayLike<number>;
  stateful?: Omit<StatefulOptions, 'inputs'>;
  prada?: Omit<PradaOptions, 'inputs' | 'classes'>;
  /** Called after each detector is fitted and calibrated. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Told what makes the detectors weaker than their calibration suggests (a class absent from the
   * fitted rows, fewer fitted rows than features), so the caller can say it.
   */
  onNote?: (message: string) => void;
}

/**
 * Fits and calibrates the gateway's detectors on clean rows of a model's feature space and returns the
 * bundle: a seeded split into rows the detectors are fitted on (Mahalanobis: class means and covariance;
 * the stream detectors: feature scales) and disjoint rows their thresholds are calibrated on
 * (split-conformal, so the target rate holds on fresh clean data; the stream detectors on benign query
 * streams drawn from the calibration rows). `x` is row-major, `rows` x `features`; `y` class indices.
 */
export async function fitDetectorBundle(
  x: Float32Array,
  y: ArrayLike<number>,
  rows: number,
  o: FitBundleOptions,
): Promise<DetectorBundleJson> {
  // Two rows at least on each side of the split: a covariance and feature scales need two, a stream two
  // queries.
  if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 4)
    throw invalidArgument(
      'rows',
      'at least 4 rows (2 to fit the detectors on, 2 to calibrate them on)',
      rows,
    );
  const features = x.length / rows;
  if (!Number.isInteger(features) || features < 1)
    throw invalidArgument('x', `a multiple of rows (${rows})`, x.length);
  requireInteger('classes', o.classes, 2);
  if (y.length !== rows) throw invalidArgument('y', `${rows} labels`, y.length);
  for (let i = 0; i < rows; i++) {
    const c = y[i] as number;
    if (!Number.isInteger(c) || c < 0 || c >= o.classes)
      throw invalidArgument('y', `class indices in [0, ${o.classes - 1}]`, `${c} at row ${i}`);
  }
  requireFiniteRows(x, features, 'x');
  const kinds = o.kinds ?? BUNDLE_KINDS;
  if (kinds.length === 0 || kinds.some((k) => !(BUNDLE_KINDS as readonly string[]).includes(k)))
    throw invalidArgument('kinds', `some of ${BUNDLE_KINDS.join(', ')}`, kinds.join(','));
  const fprOf = (k: BundleKind): number => {
    const f = typeof o.fpr === 'number' ? o.fpr : (o.fpr?.[k] ?? 0.01);
    return requireNumberIn(`fpr.${k}`, f, 0, 1, { minExclusive: true, maxExclusive: true });
  };
  const share = requireNumberIn('calibrationShare', o.calibrationShare ?? 0.5, 0, 1, {
    minExclusive: true,
    maxExclusive: true,
  });
  const seed = o.seed ?? 0;
  requireInteger('seed', seed, 0);
  const calRows = Math.round(rows * share);
  const fitRows = rows - calRows;
  if (calRows < 2 || fitRows < 2)
    throw invalidArgument(
      'calibrationShare',
      `a share leaving at least 2 of the ${rows} rows on each side (now ${fitRows} fitted, ${calRows} calibration)`,
      share,
    );
  const streams = o.streams ?? 100;
  requireInteger('streams', streams, 1);
  const streamLength = o.streamLength ?? Math.min(500, calRows);
  if (o.streamLength !== undefined) requireInteger('streamLength', streamLength, 2, calRows);
  // The benign streams are held in memory (a copy of their rows each, per stream detector): past this,
  // a large --streams ran out of heap (a V8 fatal error, no message) or ran for many minutes.
  if (kinds.some((k) => k !== 'mahalanobis') && streams * streamLength * features > MAX_STREAM_VALUES)
    throw invalidArgument(
      'streams',
      `at most ${Math.max(1, Math.floor(MAX_STREAM_VALUES / (streamLength * features)))} streams of ${streamLength} queries of ${features} features (${MAX_STREAM_VALUES} values in memory)`,
      streams,
    );
  // A stream detector that cannot score the benign streams (too short for its history) says why in
  // the caller's terms: the stream length, and the calibration rows the default length comes from.
  // Checked here, before any fitting, from the detectors' own parameters (their constructors validate
  // the options); the detectors' refusals during calibration are the backstop.
  const tooShort = (kind: 'stateful' | 'prada', needs: string, cause?: unknown): BulwarkError => {
    const parameter = o.streamLength !== undefined ? 'streamLength' : 'rows';
    return new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      o.streamLength !== undefined
        ? `streamLength: the ${kind} detector needs ${needs}, got streams of ${streamLength}`
        : `rows: the ${kind} detector needs ${needs}; the streams are as long as the calibration rows allow (${calRows} of ${rows}): give more rows or a larger calibration share`,
      { details: { parameter, detector: kind, streamLength }, ...(cause === undefined ? {} : { cause }) },
    );
  };
  const stateful = kinds.includes('stateful')
    ? new StatefulDetector({ ...(o.stateful ?? {}), inputs: features })
    : undefined;
  // A query is judged against k earlier ones (StatefulDetector's calibration refuses shorter streams).
  const statefulNeeds = `benign streams of more than k (${stateful?.k}) queries (a query is judged against k earlier ones)`;
  if (stateful !== undefined && streamLength <= stateful.k) throw tooShort('stateful', statefulNeeds);
  const prada = kinds.includes('prada')
    ? new PradaDetector({ ...(o.prada ?? {}), inputs: features, classes: o.classes })
    : undefined;
  // PRADA scores a stream once it holds minQueries distances, one per query after the first of its
  // predicted class (Juuti et al., EuroS&P 2019): a stream needs more than minQueries queries, and more
  // still with more classes, which only the streams drawn below tell.
  const pradaNeeds = `benign streams longer than minQueries (${prada?.minQueries}) distances (one per query after the first of its predicted class)`;
  if (prada !== undefined && streamLength <= prada.minQueries) throw tooShort('prada', pradaNeeds);
  // The backstop, told apart by its code and parameter (never its wording): the detector refused the
  // benign streams themselves, the only `streams` argument this function passes it.
  const streamCalibration = async <T>(
    kind: 'stateful' | 'prada',
    needs: string,
    calibrate: () => Promise<T>,
  ): Promise<T> => {
    try {
      return await calibrate();
    } catch (e) {
      if (
        e instanceof BulwarkError &&
        e.code === 'ERR_INVALID_ARGUMENT' &&
        e.details['parameter'] === 'streams'
      )
        throw tooShort(kind, needs, e);
      throw e;
    }
  };

  // The split: a seeded permutation, fitted rows first.
  const rng = rngOf(seed);
  const perm = rng.permutation(rows);
  const take = (from: number, n: number) => {
    const idx = perm.subarray(from, from + n);
    return {
      x: takeRows(x, features, idx),
      y: takeLabels(y, idx),
      predicted: takeLabels(o.predicted ?? y, idx),
      rows: n,
    };
  };
  const fit = take(0, fitRows);
  const cal = take(fitRows, calRows);
  const parts: BundleParts = {};
  if (kinds.includes('mahalanobis')) {
    // The Mahalanobis detector models the classes it is fitted on: inputs of a class it never saw lie
    // far from every mean, so that class's clean traffic is flagged far above the calibrated rate
    // (calibration rows of that class are few too, or none).
    const seen = new Int32Array(o.classes);
    for (const c of fit.y) seen[c] = (seen[c] as number) + 1;
    const absent = [...seen.keys()].filter((c) => seen[c] === 0);
    if (absent.length > 0)
      o.onNote?.(
        `no fitted row of class${absent.length > 1 ? 'es' : ''} ${absent.join(', ')} (of ${fitRows} fitted rows): the Mahalanobis detector will flag that class's clean inputs far above its calibrated rate; give more rows of it`,
      );
    if (fitRows < features)
      o.onNote?.(
        `the Mahalanobis detector is fitted on ${fitRows} rows for ${features} features: its covariance is mostly shrinkage; give more rows`,
      );
    const m = new MahalanobisDetector();
    await m.fit(fit.x, fit.rows, fit.y);
    await m.calibrate(cal.x, cal.rows, fprOf('mahalanobis'));
    parts.mahalanobis = m;
    o.onProgress?.(Object.keys(parts).length, kinds.length);
  }
  if (stateful !== undefined) {
    const st = stateful.fit(fit.x, fit.rows);
    const benign = benignStreams(cal.x, cal.rows, features, streams, streamLength, rng);
    await streamCalibration('stateful', statefulNeeds, () => st.calibrateAsync(benign, fprOf('stateful')));
    parts.stateful = st;
    o.onProgress?.(Object.keys(parts).length, kinds.length);
  }
  if (prada !== undefined) {
    const pr = prada.fit(fit.x, fit.rows);
    const benign = benignStreams(cal.x, cal.rows, features, streams, streamLength, rng, cal.predicted);
    await streamCalibration('prada', pradaNeeds, () => pr.calibrateAsync(benign, fprOf('prada')));
    parts.prada = pr;
    o.onProgress?.(Object.keys(parts).length, kinds.length);
  }
  return detectorBundleToJson(parts, {
    features,
    classes: o.classes,
    fittedOn: {
      ...(o.datasetDigest !== undefined ? { datasetDigest: o.datasetDigest } : {}),
      ...(o.protectedData !== undefined
        ? { protectedData: { dataset: o.protectedData.dataset, verified: o.protectedData.verified } }
        : {}),
      fitRows,
      calibrationRows: calRows,
      seed,
    },
  });
}
