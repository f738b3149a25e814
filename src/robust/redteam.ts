/**
 * The red-team evaluation behind `bulwark evaluate` (and the demo and benchmark): every attack against
 * every model, every detector against every attack, with the numbers a reviewer needs and nothing
 * hidden: accuracy against attack strength, attack success rates, detector ROC curves and catch rates at
 * a calibrated false-positive rate (including against adaptive attacks that know the detector),
 * membership-inference ROC, and extraction agreement against queries.
 *
 * The test rows are split once (seeded): attacked rows (at most `rows`), and clean rows the detectors
 * are fitted and calibrated on, which are also the attacker's pool for extraction and the source of
 * benign query streams. Detectors are evaluated on the first model (the one to be deployed).
 */
import {
  BulwarkError,
  invalidArgument,
  requireInteger,
  requireNumberIn,
  requireOneOf,
  SeededRng,
} from '../core/index.js';
import {
  EventLoopTurns,
  type LabelledData,
  type Network,
  rocAuc,
  rocCurve,
  type TrainOptions,
} from '../ml/index.js';
import { apgdAsync } from './attacks/evasion/apgd.js';
import type { EvasionResult } from './attacks/evasion/common.js';
import { fgsmAsync, pgdAsync } from './attacks/evasion/pgd.js';
import { square } from './attacks/evasion/square.js';
import { extractModel } from './attacks/extraction/knockoff.js';
import { liraAttack, lossThresholdAttack, type MembershipResult } from './attacks/inference/membership.js';
import { MAX_STREAM_VALUES } from './defences/detector/bundle.js';
import type { Detector } from './defences/detector/detector.js';
import { MahalanobisDetector } from './defences/detector/mahalanobis.js';
import { PradaDetector } from './defences/detector/prada.js';
import { SqueezeDetector } from './defences/detector/squeeze.js';
import { StatefulDetector } from './defences/detector/stateful.js';
import { benignStreams, type QueryStream } from './defences/detector/stream.js';
import type { InputDomain, Norm } from './domain.js';
import { NORMS } from './domain.js';
import {
  argmaxRows,
  hasGradients,
  type ProbabilityModel,
  recordingModel,
  requireGradients,
} from './model.js';
import { networkTrainer } from './trainers.js';

export const REDTEAM_ATTACKS = ['fgsm', 'pgd', 'apgd', 'square', 'mia', 'extract'] as const;
export type RedTeamAttack = (typeof REDTEAM_ATTACKS)[number];
const EVASION = ['fgsm', 'pgd', 'apgd', 'square'] as const;
type EvasionName = (typeof EVASION)[number];

/** A model under evaluation. */
export interface RedTeamModel {
  name: string;
  /** White-box access when it has gradients (a networkModel); black-box otherwise. */
  model: ProbabilityModel;
  /** The network, when known: hidden-layer detectors, LiRA shadows and extraction surrogates copy it. */
  network?: Network;
  /** Black-box access used by Square and extraction (e.g. the ONNX file in ONNX Runtime); default `model`. */
  blackBox?: ProbabilityModel;
}

export interface RedTeamData {
  /** Labelled rows the model did not train on. */
  test: LabelledData;
  /** Rows the (first) model trained on, for membership inference. */
  members?: LabelledData;
  domain: InputDomain;
  /** Image layout (Square's windows, the median squeezer). */
  image?: { height: number; width: number };
}

export interface RedTeamOptions {
  attacks: readonly RedTeamAttack[];
  /** Budgets of the accuracy-vs-strength curves (include 0 for the clean point). */
  eps: readonly number[];
  /** Budget the detectors are evaluated at (default: the middle non-zero eps). */
  detectorEps?: number;
  norm?: Norm;
  /** PGD steps (default 20); APGD uses the same. */
  steps?: number;
  /** PGD / APGD restarts (default 2). */
  restarts?: number;
  /** Square's query budget per row (default 500). */
  squareQueries?: number;
  /** Rows attacked (default 500). */
  rows?: number;
  /** Evaluate detectors (default true). */
  detectors?: boolean;
  /** Target false-positive rate of the detectors (default 0.01). */
  fpr?: number;
  /** LiRA shadow models (default 8; 0 runs the loss-threshold attack only). */
  shadows?: number;
  /** Query budgets of the extraction curve (default: 50, 100, 250, 500, 1000, ... up to the pool). */
  extractionBudgets?: readonly number[];
  /** Training recipe of shadows and surrogates (default: 20 epochs of Adam). */
  trainRecipe?: TrainOptions;
  /** Attack only rows of this true class (default: all classes). */
  attackClass?: number | null;
  /** Members and non-members used by membership inference, each at most (default 2000, seeded sample). */
  miaRows?: number;
  /** Square attacks recorded one row per client for the stream detectors (default 10). */
  streamRows?: number;
  /**
   * Most feature values the recorded Square streams hold together (default {@link MAX_STREAM_VALUES},
   * 2^26: 256 MiB): each stream's Square run gets a budget of at most this / (streams x features)
   * queries (never fewer than the benign streams' length), and the notes say so when it is cut.
   */
  streamValues?: number;
  seed?: number;
  onProgress?: (label: string, fraction: number) => void;
}

export interface CurvePoint {
  eps: number;
  /** Accuracy on the attacked rows under the attack (robust accuracy). */
  accuracy: number;
  /** Share of the correctly classified rows the attack fooled. */
  successRate: number;
  /** Most model queries (passes) per row. */
  queries: number;
}

export interface ModelEvaluation {
  name: string;
  whiteBox: boolean;
  cleanAccuracy: number;
  curves: Partial<Record<EvasionName, CurvePoint[]>>;
  membership?: { lossThreshold: MembershipResult; lira?: MembershipResult };
  extraction?: {
    points: { queries: number; agreement: number; accuracy?: number }[];
    victimAccuracy?: number;
  };
}

export interface DetectorAttackResult {
  attack: string;
  /**
   * Adversarial inputs that fooled the model: rows it classified right before the attack and gets
   * wrong after (rows it already got wrong are not adversarial inputs, and are left out).
   */
  fooled: number;
  /** Share of them the detector flags at its calibrated threshold. */
  catchRate: number;
  /**
   * Share of attacked rows the model got right that the attack turns wrong without a flag: the
   * attack's success against model + detector.
   */
  evadedRate: number;
  auc: number;
  roc: { fpr: number[]; tpr: number[] };
}

export interface DetectorEvaluation {
  name: string;
  targetFpr: number;
  /**
   * Share of the attacked rows flagged before the attack (they are not used for calibration). With
   * `attackClass` null these are fresh clean rows, so this is the observed false-positive rate; with
   * an attack class they are that class only, which calibration (on every class) does not target.
   */
  observedFpr: number;
  threshold: number;
  attacks: DetectorAttackResult[];
  /**
   * The label (in `attacks`) of the adaptive attack run against this detector, one that knows it
   * (Carlini & Wagner, AISec 2017), or null when none was: its catch rate is then only against
   * attacks that ignore it, an upper bound of what it stops (`notes` says why).
   */
  adaptive: string | null;
  notes: string[];
}

export interface StreamEvaluation {
  name: string;
  targetFpr: number;
  level: 'query' | 'client';
  /** Per attack: share of attack streams (clients) flagged, and the median queries before the first flag. */
  attacks: { attack: string; streams: number; detected: number; medianQueriesToDetection: number | null }[];
  notes: string[];
}

export interface RedTeamResult {
  attacks: RedTeamAttack[];
  eps: number[];
  detectorEps: number;
  norm: Norm;
  rowsAttacked: number;
  /** The class of the attacked rows, or null for all classes. */
  attackClass: number | null;
  cleanRows: number;
  models: ModelEvaluation[];
  detectors: DetectorEvaluation[];
  streams: StreamEvaluation[];
  notes: string[];
}

function thinRoc(
  neg: ArrayLike<number>,
  pos: ArrayLike<number>,
): { auc: number; roc: { fpr: number[]; tpr: number[] } } {
  const y = new Uint8Array(neg.length + pos.length);
  y.fill(1, neg.length);
  const s = Float64Array.from([...Array.from(neg), ...Array.from(pos)]);
  const r = rocCurve(y, s);
  const step = Math.max(1, Math.floor(r.fpr.length / 300));
  const out = { fpr: [] as number[], tpr: [] as number[] };
  for (let i = 0; i < r.fpr.length; i++) {
    if (i % step === 0 || i === r.fpr.length - 1) {
      out.fpr.push(r.fpr[i] as number);
      out.tpr.push(r.tpr[i] as number);
    }
  }
  return { auc: rocAuc(y, s), roc: out };
}

function take(d: LabelledData, inputs: number, idx: ArrayLike<number>): LabelledData {
  const x = new Float32Array(idx.length * inputs);
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i] as number;
    x.set(d.x.subarray(r * inputs, (r + 1) * inputs), i * inputs);
    y[i] = d.y[r] as number;
  }
  return { x, y, rows: idx.length };
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Checks every option up front, naming it. */
function checkOptions(models: readonly RedTeamModel[], data: RedTeamData, o: RedTeamOptions) {
  if (!Array.isArray(models) || models.length === 0)
    throw invalidArgument('models', 'at least one model', models);
  const attacks = [...new Set(o.attacks)].map((a, i) => requireOneOf(`attacks[${i}]`, a, REDTEAM_ATTACKS));
  if (attacks.length === 0)
    throw invalidArgument('attacks', `some of ${REDTEAM_ATTACKS.join(', ')}`, o.attacks);
  if (!Array.isArray(o.eps) || o.eps.length === 0)
    throw invalidArgument('eps', 'a non-empty list of budgets', o.eps);
  const eps = [...new Set(o.eps.map((e, i) => requireNumberIn(`eps[${i}]`, e, 0, Number.MAX_VALUE)))].sort(
    (a, b) => a - b,
  );
  const positive = eps.filter((e) => e > 0);
  const detectorEps =
    o.detectorEps === undefined
      ? (positive[Math.floor((positive.length - 1) / 2)] ?? 0)
      : requireNumberIn('detectorEps', o.detectorEps, 0, Number.MAX_VALUE, { minExclusive: true });
  if (detectorEps > 0 && !eps.includes(detectorEps)) {
    eps.push(detectorEps);
    eps.sort((a, b) => a - b);
  }
  const norm = requireOneOf('norm', o.norm ?? 'inf', NORMS);
  if (attacks.includes('square') && norm !== 'inf')
    throw invalidArgument('norm', "'inf' with the square attack (L-inf only)", norm);
  const steps = requireInteger('steps', o.steps ?? 20, 1);
  const restarts = requireInteger('restarts', o.restarts ?? 2, 1);
  const squareQueries = requireInteger('squareQueries', o.squareQueries ?? 500, 2);
  const rows = requireInteger('rows', o.rows ?? 500, 10);
  const fpr = requireNumberIn('fpr', o.fpr ?? 0.01, 0, 0.5, { minExclusive: true });
  // The stream detectors calibrate on ceil(1 / fpr) + 1 benign clients, each a stream of up to 1,000
  // queries held in memory: at 1e-6 that was a million streams, gigabytes within a minute, never done.
  if (o.detectors !== false && (attacks.includes('square') || attacks.includes('extract')) && fpr < 1e-3)
    throw invalidArgument(
      'fpr',
      'at least 0.001 when the stream detectors run (square or extract attacks): they calibrate on 1 / fpr + 1 benign clients',
      fpr,
    );
  const shadows = requireInteger('shadows', o.shadows ?? 8, 0, 256);
  if (shadows === 1) throw invalidArgument('shadows', '0 (loss threshold only) or at least 2', shadows);
  const streamRows = requireInteger('streamRows', o.streamRows ?? 10, 1);
  const streamValues = requireInteger('streamValues', o.streamValues ?? MAX_STREAM_VALUES, 1);
  const miaRows = requireInteger('miaRows', o.miaRows ?? 2000, 10);
  const attackClass =
    o.attackClass === undefined || o.attackClass === null
      ? null
      : requireInteger('attackClass', o.attackClass, 0, (models[0]?.model.classes ?? 2) - 1);
  const seed = requireInteger('seed', o.seed ?? 0, 0);
  const d = models[0]?.model.inputs as number;
  for (const m of models) {
    if (m.model.inputs !== d || m.model.classes !== models[0]?.model.classes) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `model "${m.name}" does not take the same inputs and classes as "${models[0]?.name}"`,
      );
    }
    for (const a of attacks)
      if (a === 'fgsm' || a === 'pgd' || a === 'apgd') requireGradients(m.model, `${a} on "${m.name}"`);
  }
  if (attacks.includes('mia') && data.members === undefined) {
    throw invalidArgument(
      'members',
      "the model's training rows (membership inference needs members)",
      undefined,
    );
  }
  if (data.domain.inputs !== d)
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `domain has ${data.domain.inputs} features, the models take ${d}`,
    );
  if (data.test.rows < 40)
    throw invalidArgument(
      'test.rows',
      'at least 40 rows (attacked rows plus clean rows for the detectors)',
      data.test.rows,
    );
  return {
    attacks,
    eps,
    detectorEps,
    norm,
    steps,
    restarts,
    squareQueries,
    rows,
    fpr,
    shadows,
    streamRows,
    streamValues,
    miaRows,
    attackClass,
    seed,
  };
}

/**
 * Runs the evaluation. Deterministic for a seed.
 *
 * @example
 * ```ts
 * const r = await redTeam([{ name: 'baseline', model: networkModel(net), network: net }],
 *   { test, members: train, domain }, { attacks: ['fgsm', 'pgd', 'square', 'mia'], eps: [0, 0.05, 0.1] });
 * ```
 */
export async function redTeam(
  models: readonly RedTeamModel[],
  data: RedTeamData,
  options: RedTeamOptions,
): Promise<RedTeamResult> {
  const o = checkOptions(models, data, options);
  const progress = options.onProgress ?? (() => {});
  const first = models[0] as RedTeamModel;
  const d = first.model.inputs;
  const k = first.model.classes;
  data.domain.check(data.test.x, data.test.rows, 'test data');
  const rng = new SeededRng(o.seed);
  const perm = rng.permutation(data.test.rows);
  // Attacked rows: the first of a seeded order (of one class when asked: e.g. fraud rows, whose
  // evasion is the attacker's goal), at most half the test rows; the rest are the clean rows.
  const eligible =
    o.attackClass === null
      ? Array.from(perm)
      : Array.from(perm).filter((r) => data.test.y[r] === o.attackClass);
  const nAttack = Math.min(o.rows, Math.floor(data.test.rows / 2), eligible.length);
  if (nAttack < 2) {
    throw invalidArgument('attackClass', `a class with at least 2 rows in the test data`, o.attackClass);
  }
  const attackIdx = eligible.slice(0, nAttack);
  const chosen = new Set(attackIdx);
  const attackSet = take(data.test, d, attackIdx);
  const clean = take(
    data.test,
    d,
    Array.from(perm).filter((r) => !chosen.has(r)),
  );
  const notes: string[] = [];
  const result: RedTeamResult = {
    attacks: o.attacks,
    eps: o.eps,
    detectorEps: o.detectorEps,
    norm: o.norm,
    rowsAttacked: nAttack,
    attackClass: o.attackClass,
    cleanRows: clean.rows,
    models: [],
    detectors: [],
    streams: [],
    notes,
  };
  const image = data.image ? { height: data.image.height, width: data.image.width } : undefined;
  const adversarial = new Map<string, EvasionResult>(); // first model, at detectorEps
  const evasion = o.attacks.filter((a): a is EvasionName => (EVASION as readonly string[]).includes(a));
  let step = 0;
  // The attacks and the stream calibrations give the event loop a turn now and then (so a signal is
  // handled during the evaluation); the detectors' phases and the stream scoring here do too.
  const turns = new EventLoopTurns();
  const breathe = async () => {
    if (turns.due()) await turns.turn();
  };
  const totalSteps = models.length * evasion.length * o.eps.length;

  // Rows the first model classifies right before any attack: the only ones an attack can fool (a row
  // it already gets wrong is returned unperturbed and would count as a "success" the detector missed).
  let firstCorrect = new Uint8Array(nAttack);
  for (const [mi, m] of models.entries()) {
    const predicted = argmaxRows(await m.model.predictProba(attackSet.x, nAttack), nAttack, k);
    const correct = Uint8Array.from(predicted, (p, i) => (p === attackSet.y[i] ? 1 : 0));
    if (mi === 0) firstCorrect = correct;
    const nCorrect = correct.reduce((s, v) => s + v, 0);
    const ev: ModelEvaluation = {
      name: m.name,
      whiteBox: hasGradients(m.model),
      cleanAccuracy: nCorrect / nAttack,
      curves: {},
    };
    for (const a of evasion) {
      const curve: CurvePoint[] = [];
      for (const eps of o.eps) {
        progress(`${m.name}: ${a} eps ${eps}`, step++ / Math.max(1, totalSteps));
        const common = { eps, norm: o.norm, domain: data.domain };
        let r: EvasionResult;
        if (a === 'fgsm') r = await fgsmAsync(m.model, attackSet.x, attackSet.y, nAttack, common);
        else if (a === 'pgd')
          r = await pgdAsync(m.model, attackSet.x, attackSet.y, nAttack, {
            ...common,
            steps: o.steps,
            restarts: o.restarts,
            seed: o.seed + 1,
          });
        else if (a === 'apgd')
          r = await apgdAsync(m.model, attackSet.x, attackSet.y, nAttack, {
            ...common,
            steps: o.steps,
            restarts: o.restarts,
            seed: o.seed + 2,
          });
        else {
          r = await square(m.blackBox ?? m.model, attackSet.x, attackSet.y, nAttack, {
            eps,
            domain: data.domain,
            queries: o.squareQueries,
            seed: o.seed + 3,
            ...(image ? { image } : {}),
          });
        }
        let fooledCorrect = 0;
        let robust = 0;
        for (let i = 0; i < nAttack; i++) {
          if (correct[i] && r.success[i]) fooledCorrect++;
          if (correct[i] && !r.success[i]) robust++;
        }
        curve.push({
          eps,
          accuracy: robust / nAttack,
          successRate: nCorrect === 0 ? 0 : fooledCorrect / nCorrect,
          queries: r.queries,
        });
        if (mi === 0 && eps === o.detectorEps) adversarial.set(a, r);
      }
      ev.curves[a] = curve;
    }
    result.models.push(ev);
  }

  // Detectors, on the first model.
  if (options.detectors !== false && adversarial.size > 0 && o.detectorEps > 0) {
    progress('detectors', 0);
    const half = Math.floor(clean.rows / 2);
    const fitSet =
      data.members ??
      take(
        clean,
        d,
        Array.from({ length: half }, (_, i) => i),
      );
    const calSet = data.members
      ? clean
      : take(
          clean,
          d,
          Array.from({ length: clean.rows - half }, (_, i) => half + i),
        );
    const dets: { name: string; det: Detector; adaptive: 'penalty' | 'confidence' | null }[] = [];
    const maha = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await breathe();
    dets.push({ name: 'Mahalanobis (inputs)', det: maha, adaptive: 'penalty' });
    if (first.network && first.network.layerCount >= 2) {
      // The same adaptive attack as on inputs: the score's input gradient is backpropagated from the
      // hidden layer (Network.backwardFrom). Without it the hidden-layer detector's catch rate would
      // be measured only against attacks that ignore it (Tramèr et al., NeurIPS 2020).
      dets.push({
        name: 'Mahalanobis (hidden layer 1)',
        det: await new MahalanobisDetector({ layer: 1, network: first.network }).fit(
          fitSet.x,
          fitSet.rows,
          fitSet.y,
        ),
        adaptive: 'penalty',
      });
      await breathe();
    }
    const sq = image
      ? SqueezeDetector.forImages(first.model, image.height, image.width)
      : SqueezeDetector.forDomain(first.model, data.domain);
    dets.push({
      name: image ? 'Feature squeezing (1-bit, 2x2 median)' : 'Feature squeezing (4-bit, noise)',
      det: sq,
      adaptive: 'confidence',
    });
    for (const [di, { name, det, adaptive }] of dets.entries()) {
      progress(`detector ${name}`, di / dets.length);
      const cal = await det.calibrate(calSet.x, calSet.rows, o.fpr);
      await breathe();
      // Said, not left to be read as "the detector catches nothing": with too few clean rows for the
      // target there is no finite threshold.
      const noThreshold = Number.isFinite(cal.threshold)
        ? []
        : [
            `no finite threshold: ${cal.n} clean calibration rows are too few for a target false-positive rate of ${o.fpr} (at least ${Math.ceil(1 / o.fpr - 1)} needed), so it flags nothing`,
          ];
      const cleanScores = await det.score(attackSet.x, nAttack);
      await breathe();
      let fp = 0;
      for (const s of cleanScores) if (s > cal.threshold) fp++;
      const de: DetectorEvaluation = {
        name,
        targetFpr: o.fpr,
        observedFpr: fp / nAttack,
        threshold: cal.threshold,
        attacks: [],
        adaptive: null,
        notes: noThreshold,
      };
      const judge = async (label: string, r: EvasionResult) => {
        await breathe();
        const scores = await det.score(r.x, nAttack);
        const pos: number[] = [];
        let caught = 0;
        let evaded = 0;
        for (let i = 0; i < nAttack; i++) {
          if (!r.success[i] || !firstCorrect[i]) continue;
          pos.push(scores[i] as number);
          if ((scores[i] as number) > cal.threshold) caught++;
          else evaded++;
        }
        const roc =
          pos.length > 0 ? thinRoc(cleanScores, pos) : { auc: Number.NaN, roc: { fpr: [0, 1], tpr: [0, 1] } };
        de.attacks.push({
          attack: label,
          fooled: pos.length,
          catchRate: pos.length === 0 ? Number.NaN : caught / pos.length,
          evadedRate: evaded / nAttack,
          ...roc,
        });
      };
      for (const [a, r] of adversarial) await judge(a.toUpperCase(), r);
      if (!hasGradients(first.model) || !(o.attacks.includes('pgd') || o.attacks.includes('apgd'))) {
        de.notes.push(
          hasGradients(first.model)
            ? 'no adaptive attack evaluated: it runs with pgd or apgd among the attacks'
            : 'no adaptive attack evaluated: the model gives no input gradients',
        );
      } else {
        const base = {
          eps: o.detectorEps,
          norm: o.norm,
          domain: data.domain,
          steps: o.steps * 2,
          restarts: o.restarts,
          seed: o.seed + 5,
        };
        if (adaptive === 'penalty' && det instanceof MahalanobisDetector && det.hasScoreGradient) {
          // PGD on the margin loss minus a hinge on score / threshold (active above 0.9 of the
          // threshold), accepting a point only if it fools the model and is not flagged.
          const t = Math.max(cal.threshold, 1e-9);
          const r = await pgdAsync(first.model, attackSet.x, attackSet.y, nAttack, {
            ...base,
            loss: 'margin',
            penalty: {
              weight: 1,
              fn: (x, rows) => {
                const g = det.scoreGradient(x, rows);
                return {
                  values: g.values.map((v) => Math.max(0, v / t - 0.9)),
                  gradient: g.gradient.map((v, i) =>
                    (g.values[Math.floor(i / d)] as number) / t > 0.9 ? v / t : 0,
                  ),
                };
              },
            },
            accept: (x, rows) =>
              Uint8Array.from(det.scoreSync(x, rows).scores, (s) => (s > cal.threshold ? 0 : 1)),
          });
          de.adaptive = 'adaptive PGD (evades the detector)';
          await judge(de.adaptive, r);
        } else if (adaptive === 'confidence') {
          const kappa = 4;
          const mm = requireGradients(first.model, 'adaptive PGD');
          const r = await pgdAsync(mm, attackSet.x, attackSet.y, nAttack, {
            ...base,
            loss: 'margin',
            accept: (x, rows) => {
              const z = mm.logits(x, rows);
              return Uint8Array.from({ length: rows }, (_, i) => {
                const y = attackSet.y[i] as number;
                let other = -Infinity;
                for (let j = 0; j < k; j++) if (j !== y) other = Math.max(other, z[i * k + j] as number);
                return other - (z[i * k + y] as number) >= kappa ? 1 : 0;
              });
            },
          });
          de.adaptive = `adaptive PGD (high confidence, margin ${kappa})`;
          await judge(de.adaptive, r);
        } else {
          de.notes.push(
            'no adaptive attack evaluated: the network gives no gradients with respect to its hidden layers',
          );
        }
      }
      result.detectors.push(de);
    }
  }

  // Stream detectors, on the first model's black-box interface.
  const victim = first.blackBox ?? first.model;
  let extractionStream: QueryStream | null = null;
  if (o.attacks.includes('extract')) {
    for (const [mi, m] of models.entries()) {
      progress(`${m.name}: extraction`, mi / models.length);
      const pool = { x: clean.x, rows: clean.rows };
      const budgets =
        options.extractionBudgets ??
        [50, 100, 250, 500, 1000, 2500, 5000, 10000].filter((b) => b <= pool.rows);
      if (budgets.length === 0)
        throw invalidArgument(
          'extractionBudgets',
          `budgets of at most ${pool.rows} queries (the clean pool)`,
          budgets,
        );
      const template = m.network;
      if (!template) {
        notes.push(`extraction of "${m.name}" skipped: no network architecture to copy for the surrogate`);
        continue;
      }
      const r = await extractModel(m.blackBox ?? m.model, pool, attackSet, {
        budgets,
        trainSurrogate: networkTrainer(template, options.trainRecipe ?? { epochs: 20, learningRate: 3e-3 }),
        seed: o.seed + 7,
      });
      const ev = result.models[mi] as ModelEvaluation;
      ev.extraction = {
        points: r.points,
        ...(r.victimAccuracy === undefined ? {} : { victimAccuracy: r.victimAccuracy }),
      };
      if (mi === 0) extractionStream = r.stream;
    }
  }
  if (options.detectors !== false && (o.attacks.includes('square') || extractionStream !== null)) {
    progress('stream detectors', 0);
    const fitSet = data.members ?? clean;
    const cleanPred = argmaxRows(await victim.predictProba(clean.x, clean.rows), clean.rows, k);
    // Benign clients send as many queries as the longest attack stream (within the clean pool), so a
    // detector that flags everyone eventually is seen doing so.
    const longest = Math.max(
      o.attacks.includes('square') ? o.squareQueries : 0,
      extractionStream?.rows ?? 0,
      adversarial.size > 0 ? nAttack : 0,
    );
    const streamLength = Math.max(20, Math.min(longest, clean.rows, 1000));
    const stateful = new StatefulDetector({ inputs: d, k: 20, history: 500 }).fit(fitSet.x, fitSet.rows);
    await stateful.calibrateAsync(
      benignStreams(clean.x, clean.rows, d, Math.ceil(1 / o.fpr) + 1, streamLength, o.seed + 11),
      o.fpr,
    );
    const nStreams = Math.ceil(1 / o.fpr) + 1;
    const prada = new PradaDetector({
      inputs: d,
      classes: k,
      minQueries: Math.min(100, Math.floor(streamLength / 2)),
    }).fit(fitSet.x, fitSet.rows);
    await prada.calibrateAsync(
      benignStreams(clean.x, clean.rows, d, nStreams, streamLength, o.seed + 12, cleanPred),
      o.fpr,
    );
    const attackStreams: { attack: string; streams: QueryStream[] }[] = [
      {
        attack: `benign clients (${streamLength} natural queries each, fresh draws)`,
        streams: benignStreams(clean.x, clean.rows, d, 50, streamLength, o.seed + 14, cleanPred),
      },
    ];
    // Every query of a recorded Square run is held until its stream is scored: at --queries 10,000,000
    // that was up to 10 x 10^7 queries (one small array each) in memory, gigabytes, and hours of scoring.
    // Bounded as a bundle's benign calibration streams are, never below the benign streams' length.
    let squareCap = o.squareQueries;
    if (o.attacks.includes('square') && o.detectorEps > 0) {
      const streams: QueryStream[] = [];
      const nStreams = Math.min(o.streamRows, nAttack);
      squareCap = Math.min(
        o.squareQueries,
        Math.max(streamLength, Math.floor(o.streamValues / (d * nStreams))),
      );
      for (let i = 0; i < nStreams; i++) {
        // One row attacked: each query is one row, and Square makes at most its budget of them.
        let buf = new Float32Array(Math.min(squareCap, 1024) * d);
        let n = 0;
        const rec = recordingModel(victim, (x, rows) => {
          if ((n + rows) * d > buf.length) {
            const grown = new Float32Array(Math.max(2 * buf.length, (n + rows) * d));
            grown.set(buf);
            buf = grown;
          }
          buf.set(x.subarray(0, rows * d), n * d);
          n += rows;
        });
        await square(rec, attackSet.x.subarray(i * d, (i + 1) * d), [attackSet.y[i] as number], 1, {
          eps: o.detectorEps,
          domain: data.domain,
          queries: squareCap,
          seed: o.seed + 20 + i,
          ...(image ? { image } : {}),
        });
        const x = buf.slice(0, n * d);
        streams.push({
          x,
          rows: n,
          predicted: argmaxRows(await victim.predictProba(x, n), n, k),
        });
      }
      attackStreams.push({ attack: `Square (one client per attacked row, eps ${o.detectorEps})`, streams });
    }
    if (extractionStream !== null)
      attackStreams.push({
        attack: `Extraction (${extractionStream.rows} natural queries)`,
        streams: [extractionStream],
      });
    for (const a of ['FGSM', 'PGD'] as const) {
      const r = adversarial.get(a.toLowerCase());
      if (r) {
        attackStreams.push({
          attack: `${a} inputs sent by one client`,
          streams: [
            {
              x: r.x,
              rows: nAttack,
              predicted: argmaxRows(await victim.predictProba(r.x, nAttack), nAttack, k),
            },
          ],
        });
      }
    }
    for (const [name, det, level] of [
      ['Stateful query detector (Chen et al.)', stateful, 'client'],
      ['PRADA (Juuti et al.)', prada, 'client'],
    ] as const) {
      const se: StreamEvaluation = { name, targetFpr: o.fpr, level, attacks: [], notes: [] };
      for (const { attack, streams } of attackStreams) {
        const firsts: number[] = [];
        let detected = 0;
        for (const s of streams) {
          await breathe();
          const scores = det.scoreStream(s);
          const t = det.calibration?.threshold as number;
          const at = Array.from(scores).findIndex((v) => v > t);
          if (at >= 0) {
            detected++;
            firsts.push(at + 1);
          }
        }
        se.attacks.push({
          attack,
          streams: streams.length,
          detected,
          medianQueriesToDetection: median(firsts),
        });
      }
      se.notes.push(
        `threshold calibrated on benign clients sending ${streamLength} natural queries each, so that ${(100 * o.fpr).toFixed(1)} % of them are ever flagged; an attack stream counts as detected at its first flag`,
      );
      if (squareCap < o.squareQueries)
        se.notes.push(
          `the Square streams are runs with a budget of ${squareCap} queries each, not ${o.squareQueries}: the recorded queries are held in memory (at most ${o.streamValues} feature values); a detector that would flag a longer run later is not seen doing so`,
        );
      result.streams.push(se);
    }
  }

  if (o.attacks.includes('mia') && data.members) {
    const sample = (dd: LabelledData, salt: number) =>
      dd.rows <= o.miaRows
        ? dd
        : take(dd, d, new SeededRng(o.seed + salt).permutation(dd.rows).subarray(0, o.miaRows));
    const members = sample(data.members, 31);
    const nonMembers = sample(data.test, 32);
    for (const [mi, m] of models.entries()) {
      progress(`${m.name}: membership inference`, mi / models.length);
      const ev = result.models[mi] as ModelEvaluation;
      const lossThreshold = await lossThresholdAttack(m.model, members, nonMembers);
      ev.membership = { lossThreshold };
      const [lo, hi] = lossThreshold.aucInterval;
      if (lo <= 0.5 && hi >= 0.5 && Math.min(members.rows, nonMembers.rows) < 100)
        notes.push(
          `membership inference on "${m.name}" used ${members.rows} members and ${nonMembers.rows} non-members: its AUC ${lossThreshold.auc.toFixed(3)} has a 95 % interval of [${lo.toFixed(2)}, ${hi.toFixed(2)}] (Hanley & McNeil 1982), which holds 0.5: too few rows to tell a leak from chance (give more --members rows)`,
        );
      if (o.shadows > 0 && mi === 0) {
        if (!m.network)
          notes.push(`LiRA on "${m.name}" skipped: no network architecture to train shadow models with`);
        else {
          ev.membership.lira = await liraAttack(m.model, members, nonMembers, {
            shadows: o.shadows,
            trainShadow: networkTrainer(m.network, options.trainRecipe ?? { epochs: 20, learningRate: 3e-3 }),
            seed: o.seed + 13,
            onProgress: (done, total) => progress(`${m.name}: LiRA shadow ${done}/${total}`, done / total),
          });
        }
      }
    }
    if (models.length > 1)
      notes.push(
        "membership inference uses the first model's training rows as members for every model; LiRA runs on the first model only",
      );
  }
  progress('done', 1);
  return result;
}
