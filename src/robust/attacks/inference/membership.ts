/**
 * Membership inference: given a trained model and a record, was the record in the training set? The
 * measure of how much a model leaks about individuals, and what differential privacy bounds.
 *
 * - Loss threshold (Yeom, Giacomelli, Fredrikson & Jha, "Privacy risk in machine learning: analyzing the
 *   connection to overfitting", CSF 2018): members have lower loss; the score is -loss.
 * - LiRA (Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership inference attacks from first
 *   principles", IEEE S&P 2022), online version: shadow models are trained on random halves of the audit
 *   pool, so each record is IN some and OUT of others; its logit-scaled confidence
 *   phi = log(p_y / (1 - p_y)) is modelled as Gaussian under IN and OUT, and the score is the likelihood
 *   ratio of the target model's phi. With few shadows (the default, 8, suits 2 cores) the per-record
 *   variances are replaced by global ones, as the paper recommends below 64 shadows.
 *
 * Both report the ROC AUC and, as Carlini et al. insist, the true-positive rate at low false-positive
 * rates (0.1 % and 1 %): an attack that reliably identifies a few members is a real leak even at AUC 0.5x.
 * With n non-members, an FPR below 1/n cannot be resolved; the result says how many there were.
 */
import { invalidArgument, requireFiniteRows, requireInteger, SeededRng } from '../../../core/index.js';
import { type LabelledData, rocAuc, rocCurve, thresholdForFpr } from '../../../ml/index.js';
import type { ProbabilityModel } from '../../model.js';

/** Outcome of a membership-inference attack. */
export interface MembershipResult {
  attack: 'loss-threshold' | 'lira';
  auc: number;
  /**
   * A 95 % interval for the AUC from its standard error (Hanley & McNeil, Radiology 1982): with few
   * members or non-members it is wide, and an interval holding 0.5 cannot tell a leak from chance.
   */
  aucInterval: [number, number];
  /** TPR at the given FPR targets (the most members found with at most that share of non-members flagged). */
  tprAtFpr: { fpr: number; tpr: number }[];
  /** Largest TPR - FPR over thresholds (the membership advantage of Yeom et al.). */
  advantage: number;
  members: number;
  nonMembers: number;
  /** The ROC curve, thinned to at most ~400 points for plotting. */
  roc: { fpr: number[]; tpr: number[] };
  /** Shadow models trained (LiRA). */
  shadows?: number;
}

const FPR_TARGETS = [0.001, 0.01];

/** Per-row cross-entropy of `model` on labelled data. */
async function losses(model: ProbabilityModel, d: LabelledData): Promise<Float64Array> {
  const p = await model.predictProba(d.x, d.rows);
  const k = model.classes;
  return Float64Array.from(
    { length: d.rows },
    (_, r) => -Math.log(Math.max(p[r * k + (d.y[r] as number)] as number, 1e-30)),
  );
}

/** Summary of member scores vs non-member scores (higher = member). */
export function membershipSummary(
  attack: MembershipResult['attack'],
  memberScores: ArrayLike<number>,
  nonMemberScores: ArrayLike<number>,
): MembershipResult {
  const m = memberScores.length;
  const n = nonMemberScores.length;
  if (m === 0 || n === 0)
    throw invalidArgument('members', 'at least one member and one non-member', `${m} and ${n}`);
  const y = new Uint8Array(m + n);
  y.fill(1, 0, m);
  const s = new Float64Array(m + n);
  s.set(Array.from(memberScores), 0);
  s.set(Array.from(nonMemberScores), m);
  const roc = rocCurve(y, s);
  let advantage = 0;
  for (let i = 0; i < roc.fpr.length; i++)
    advantage = Math.max(advantage, (roc.tpr[i] as number) - (roc.fpr[i] as number));
  const step = Math.max(1, Math.floor(roc.fpr.length / 400));
  const thin = { fpr: [] as number[], tpr: [] as number[] };
  for (let i = 0; i < roc.fpr.length; i++) {
    // keep every point at low FPR (the part that matters), thin the rest
    if ((roc.fpr[i] as number) < 0.02 || i % step === 0 || i === roc.fpr.length - 1) {
      thin.fpr.push(roc.fpr[i] as number);
      thin.tpr.push(roc.tpr[i] as number);
    }
  }
  const auc = rocAuc(y, s);
  return {
    attack,
    auc,
    aucInterval: aucInterval95(auc, m, n),
    tprAtFpr: FPR_TARGETS.map((f) => ({ fpr: f, tpr: thresholdForFpr(y, s, f).tpr })),
    advantage,
    members: m,
    nonMembers: n,
    roc: thin,
  };
}

/**
 * The AUC ± 1.96 standard errors of Hanley & McNeil (1982), clipped to [0, 1]:
 * SE² = (A(1 − A) + (m − 1)(Q1 − A²) + (n − 1)(Q2 − A²)) / (m n), Q1 = A / (2 − A), Q2 = 2A² / (1 + A).
 */
export function aucInterval95(auc: number, members: number, nonMembers: number): [number, number] {
  const a = auc;
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  const v =
    (a * (1 - a) + (members - 1) * (q1 - a * a) + (nonMembers - 1) * (q2 - a * a)) / (members * nonMembers);
  const se = Math.sqrt(Math.max(0, v));
  return [Math.max(0, a - 1.96 * se), Math.min(1, a + 1.96 * se)];
}

function checkData(name: string, d: LabelledData, model: ProbabilityModel): void {
  requireInteger(`${name}.rows`, d.rows, 1);
  if (d.x.length !== d.rows * model.inputs)
    throw invalidArgument(name, `${d.rows} rows of ${model.inputs} features`, `${d.x.length} values`);
  if (d.y.length !== d.rows) throw invalidArgument(`${name}.y`, `${d.rows} labels`, d.y.length);
  // A label outside [0, classes) read another row's probability (label k of row r is row r + 1's
  // class 0): a silently wrong loss, or a NaN reported as "scores[i] is NaN".
  for (let i = 0; i < d.rows; i++) requireInteger(`${name}.y[${i}]`, d.y[i], 0, model.classes - 1);
  requireFiniteRows(d.x, model.inputs, name);
}

/**
 * The loss-threshold attack (Yeom et al. 2018): score = -loss on the target model.
 *
 * @example
 * ```ts
 * const r = await lossThresholdAttack(model, trainRows, heldOutRows);
 * console.log(r.auc, r.tprAtFpr);
 * ```
 */
export async function lossThresholdAttack(
  model: ProbabilityModel,
  members: LabelledData,
  nonMembers: LabelledData,
): Promise<MembershipResult> {
  checkData('members', members, model);
  checkData('nonMembers', nonMembers, model);
  const a = await losses(model, members);
  const b = await losses(model, nonMembers);
  return membershipSummary(
    'loss-threshold',
    a.map((v) => -v),
    b.map((v) => -v),
  );
}

/** Trains a shadow model on the given rows with the target's recipe. */
export type ShadowTrainer = (data: LabelledData, seed: number) => Promise<ProbabilityModel>;

/** Options of {@link liraAttack}. */
export interface LiraOptions {
  /** Shadow models (default 8; at least 2). */
  shadows?: number;
  /** Trains one shadow model with the target's architecture and training recipe. */
  trainShadow: ShadowTrainer;
  seed?: number;
  /** Called after each shadow model. */
  onProgress?: (done: number, total: number) => void;
}

/** phi = log(p_y) - log(1 - p_y), computed stably from the other classes' probabilities. */
async function scaledConfidence(model: ProbabilityModel, d: LabelledData): Promise<Float64Array> {
  const p = await model.predictProba(d.x, d.rows);
  const k = model.classes;
  return Float64Array.from({ length: d.rows }, (_, r) => {
    const y = d.y[r] as number;
    let rest = 0;
    for (let j = 0; j < k; j++) if (j !== y) rest += p[r * k + j] as number;
    return Math.log(Math.max(p[r * k + y] as number, 1e-30)) - Math.log(Math.max(rest, 1e-30));
  });
}

/**
 * LiRA, online, with global variances (see the module comment). The audit pool is members followed by
 * non-members; each shadow trains on a seeded random half of it.
 */
export async function liraAttack(
  model: ProbabilityModel,
  members: LabelledData,
  nonMembers: LabelledData,
  options: LiraOptions,
): Promise<MembershipResult> {
  checkData('members', members, model);
  checkData('nonMembers', nonMembers, model);
  const shadows = requireInteger('shadows', options.shadows ?? 8, 2, 256);
  if (typeof options.trainShadow !== 'function')
    throw invalidArgument('trainShadow', 'a function training one shadow model', options.trainShadow);
  const d = model.inputs;
  const n = members.rows + nonMembers.rows;
  const pool: LabelledData = { x: new Float32Array(n * d), y: new Int32Array(n), rows: n };
  pool.x.set(members.x, 0);
  pool.x.set(nonMembers.x, members.rows * d);
  pool.y.set(members.y, 0);
  pool.y.set(nonMembers.y, members.rows);
  const rng = new SeededRng(requireInteger('seed', options.seed ?? 0, 0));
  // Balanced inclusion: for each record, exactly half the shadows include it (a random half), as the
  // paper's implementation does, so every record has IN and OUT observations.
  const inMask: Uint8Array[] = Array.from({ length: shadows }, () => new Uint8Array(n));
  for (let i = 0; i < n; i++) {
    const perm = rng.permutation(shadows);
    for (let s = 0; s < Math.floor(shadows / 2); s++) (inMask[perm[s] as number] as Uint8Array)[i] = 1;
  }
  const phi: Float64Array[] = [];
  for (let s = 0; s < shadows; s++) {
    const mask = inMask[s] as Uint8Array;
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (mask[i]) idx.push(i);
    const sub: LabelledData = {
      x: new Float32Array(idx.length * d),
      y: new Int32Array(idx.length),
      rows: idx.length,
    };
    idx.forEach((r, i) => {
      sub.x.set(pool.x.subarray(r * d, (r + 1) * d), i * d);
      sub.y[i] = pool.y[r] as number;
    });
    const shadow = await options.trainShadow(sub, 1000 + s);
    phi.push(await scaledConfidence(shadow, pool));
    options.onProgress?.(s + 1, shadows);
  }
  // Per-record means, global variances.
  const muIn = new Float64Array(n);
  const muOut = new Float64Array(n);
  let varIn = 0;
  let varOut = 0;
  let cIn = 0;
  let cOut = 0;
  for (let i = 0; i < n; i++) {
    let si = 0;
    let so = 0;
    let ni = 0;
    let no = 0;
    for (let s = 0; s < shadows; s++) {
      const v = (phi[s] as Float64Array)[i] as number;
      if ((inMask[s] as Uint8Array)[i]) {
        si += v;
        ni++;
      } else {
        so += v;
        no++;
      }
    }
    muIn[i] = si / ni;
    muOut[i] = so / no;
    for (let s = 0; s < shadows; s++) {
      const v = (phi[s] as Float64Array)[i] as number;
      if ((inMask[s] as Uint8Array)[i]) {
        varIn += (v - (muIn[i] as number)) ** 2;
        cIn++;
      } else {
        varOut += (v - (muOut[i] as number)) ** 2;
        cOut++;
      }
    }
  }
  const sdIn = Math.sqrt(varIn / Math.max(1, cIn - n)) || 1e-6;
  const sdOut = Math.sqrt(varOut / Math.max(1, cOut - n)) || 1e-6;
  const target = await scaledConfidence(model, pool);
  const logN = (x: number, mu: number, sd: number) => -0.5 * ((x - mu) / sd) ** 2 - Math.log(sd);
  const scores = Float64Array.from({ length: n }, (_, i) => {
    const t = target[i] as number;
    return logN(t, muIn[i] as number, sdIn) - logN(t, muOut[i] as number, sdOut);
  });
  const r = membershipSummary('lira', scores.subarray(0, members.rows), scores.subarray(members.rows));
  r.shadows = shadows;
  return r;
}
