import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AuditEntry, AuditLog, describeEvent, type LineageNode } from '../audit/index.js';
import { packageRoot } from '../core/index.js';
import { averagePrecision, type LabelledData, type Network, rocAuc, rocCurve } from '../ml/index.js';
import type { Block, Section } from '../report/index.js';
import type { DemoOptions, DemoState } from './stage.js';

/** Fraud teams work at a fixed false-alarm budget: 1 % of legitimate transactions flagged. */
export const TARGET_FPR = 0.01;
/** Points kept per drawn curve (the SVG stays small; the areas are computed on every point). */
const CURVE_POINTS = 200;

/** The package root (dist/demo/ or src/demo/ are two levels down), where bench/results/ lives. */
const PACKAGE_ROOT = packageRoot();

const pct = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(2)} %`;

export interface OperatingPoint {
  threshold: number;
  fpr: number;
  recall: number;
  precision: number;
  /** Evaluation rows (the half of the held-out rows the threshold was NOT chosen on). */
  rows: number;
}

export interface DetectionQuality {
  name: string;
  rocAuc: number;
  averagePrecision: number;
  roc: Array<[number, number]>;
  pr: Array<[number, number]>;
  op: OperatingPoint;
}

function thin(points: Array<[number, number]>): Array<[number, number]> {
  const step = Math.max(1, Math.ceil(points.length / CURVE_POINTS));
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

/**
 * ROC and precision-recall curves of positive-class scores, and the operating point: the threshold is
 * chosen on the even held-out rows (the lowest threshold whose FPR there is within `targetFpr`) and
 * the FPR, recall and precision are measured on the odd rows, so the reported false-positive rate is
 * not the one the threshold was fitted to. The threshold comes from held-out rows only, never from
 * training rows (for the DP model that would be an unaccounted use of the private data).
 */
export function detectionQuality(
  name: string,
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  targetFpr = TARGET_FPR,
): DetectionQuality {
  const n = scores.length;
  const yy = Int32Array.from({ length: n }, (_, i) => y[i] as number);
  const ss = Float64Array.from({ length: n }, (_, i) => scores[i] as number);
  const roc = rocCurve(yy, ss);
  let pos = 0;
  for (const v of yy) pos += v === 1 ? 1 : 0;
  const neg = n - pos;
  const rocPts: Array<[number, number]> = roc.fpr.map((f, i) => [f, roc.tpr[i] as number]);
  // Precision at each ROC point: tp / (tp + fp), from the rates and the class counts.
  const prPts: Array<[number, number]> = [];
  for (let i = 1; i < roc.fpr.length; i++) {
    const tp = (roc.tpr[i] as number) * pos;
    const fp = (roc.fpr[i] as number) * neg;
    if (tp + fp > 0) prPts.push([roc.tpr[i] as number, tp / (tp + fp)]);
  }
  // Calibrate on the even rows, evaluate on the odd rows.
  const pick = (parity: number) => {
    const idx = Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === parity);
    return {
      y: Int32Array.from(idx, (i) => yy[i] as number),
      s: Float64Array.from(idx, (i) => ss[i] as number),
    };
  };
  const cal = pick(0);
  const ev = pick(1);
  const calRoc = rocCurve(cal.y, cal.s);
  let best = 0;
  for (let i = 0; i < calRoc.fpr.length; i++) if ((calRoc.fpr[i] as number) <= targetFpr + 1e-12) best = i;
  const threshold = calRoc.thresholds[best] as number;
  let tp = 0;
  let fp = 0;
  let p = 0;
  for (let i = 0; i < ev.y.length; i++) {
    if (ev.y[i] === 1) p++;
    if ((ev.s[i] as number) >= threshold) {
      if (ev.y[i] === 1) tp++;
      else fp++;
    }
  }
  const nEv = ev.y.length - p;
  return {
    name,
    rocAuc: rocAuc(yy, ss),
    averagePrecision: averagePrecision(yy, ss),
    roc: thin(rocPts),
    pr: thin(prPts),
    op: {
      threshold,
      fpr: nEv === 0 ? 0 : fp / nEv,
      recall: p === 0 ? 0 : tp / p,
      precision: tp + fp === 0 ? Number.NaN : tp / (tp + fp),
      rows: ev.y.length,
    },
  };
}

function scoresOf(net: Network, d: LabelledData): Float64Array {
  const p = net.predictProba(d.x, d.rows);
  return Float64Array.from({ length: d.rows }, (_, i) => p[2 * i + 1] as number);
}

/** The rows of `bench/results/costs.json` (written by `bulwark bench costs`), or why there are none. */
export async function readCostRows(
  file = join(PACKAGE_ROOT, 'bench', 'results', 'costs.json'),
): Promise<{ rows: Array<Record<string, unknown>>; file: string } | { missing: string }> {
  if (!existsSync(file))
    return {
      missing: `${file} does not exist yet: the cost table is not measured (run "bulwark bench costs")`,
    };
  try {
    const json = JSON.parse(await readFile(file, 'utf8')) as { facts?: Record<string, unknown> };
    const raw = json.facts?.['rows'];
    const rows = typeof raw === 'string' ? (JSON.parse(raw) as unknown) : raw;
    if (!Array.isArray(rows)) return { missing: `${file} has no rows (fact "rows")` };
    return {
      rows: rows.filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null),
      file,
    };
  } catch (e) {
    return { missing: `${file} could not be read: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function cell(v: unknown): string | number {
  if (typeof v === 'number') return Number.isFinite(v) ? Number(v.toPrecision(4)) : String(v);
  if (v === null || v === undefined) return '—';
  return String(v);
}

/**
 * The first prediction the gateway recorded in the demo's audit log, and its lineage walked from it
 * in that same log (one `AuditLog.lineage`): prediction → package → model → training run → dataset → keys.
 */
async function predictionLineage(
  outDir: string,
): Promise<
  | { prediction: AuditEntry; nodes: LineageNode[]; unresolved: { ref: string; usedBy: number }[] }
  | { missing: string }
> {
  const demoDb = join(outDir, 'audit', 'audit.db');
  if (!existsSync(demoDb)) return { missing: 'the demo wrote no audit log' };
  const log = await AuditLog.open({ store: { kind: 'sqlite', path: demoDb, create: false } });
  try {
    const { size } = await log.head();
    const prediction = (await log.tail(size)).find((e) => e.type === 'prediction');
    if (!prediction) return { missing: 'the demo log holds no prediction (did the gateway stage run?)' };
    const l = await log.lineage(prediction.id);
    return { prediction, nodes: l.nodes, unresolved: l.unresolved };
  } finally {
    await log.close();
  }
}

type SummaryMap = Record<string, Record<string, string | number | boolean>>;

/**
 * The case-study section (issue 11): the article's financial-services story in one place, built after
 * every stage ran, from what they left in the state, the report and the demo's audit log.
 */
export async function caseStudySection(
  options: DemoOptions,
  state: DemoState,
  sections: readonly Section[],
  summary: SummaryMap,
  timing: { seconds: number; cpuSeconds: number },
): Promise<{ section: Section; summary: Record<string, string | number | boolean> }> {
  const blocks: Block[] = [];
  const out: Record<string, string | number | boolean> = {};
  const base = state.baseline?.result;
  const dp = state.dp?.result;
  const lin = await predictionLineage(options.outDir);
  // Which model the gateway really answered with: the prediction's model digest says it.
  let servedName = summary['gateway'] ? (gatewayModel(sections) ?? 'n/a') : 'not run';
  if (!('missing' in lin)) {
    const pd = lin.prediction.data as { modelDigest: string; packageDigest?: string };
    if (pd.packageDigest !== undefined && pd.packageDigest === state.served?.packageDigest)
      servedName += `: the case-study package ${state.served.name}.bwm`;
    else if (pd.modelDigest === state.served?.modelDigest) servedName += ': the case-study model';
    else if (base && pd.modelDigest === summary['baseline']?.['modelDigest'])
      servedName += ': the non-private baseline (the case-study package was absent)';
    out['gatewayPackageDigest'] = pd.packageDigest ?? 'n/a';
    out['gatewayModelDigest'] = pd.modelDigest;
  }

  blocks.push({
    kind: 'text',
    text:
      'The article’s financial-services case study, end to end: generated card transactions with the personal fields ' +
      'encrypted, a fraud model trained with differential privacy at ε = 0.5 AND adversarial training, packaged and signed, ' +
      'served by the gateway (TLS, JWT, Cedar, schema validation, detectors, audit), attacked, and the audit log verified. ' +
      'The adversarial training runs inside DP-SGD: each sampled row is replaced by its PGD example against the current ' +
      'weights (in the public feature space, within the attacker’s budget) before per-example clipping and noise, so each ' +
      'clipped gradient still depends on one row only and the ε = 0.5 guarantee holds. The baseline fine-tuned with PGD ' +
      '(no privacy) is measured beside it as a second variant.',
  });
  blocks.push({
    kind: 'facts',
    facts: [
      [
        'case-study model (packaged and signed)',
        state.served ? `${state.served.name} (${state.served.packageDigest.slice(0, 19)}…)` : 'n/a',
      ],
      ['model the gateway stage served', servedName],
      ['run', `${options.quick ? 'quick' : 'full'}, seed ${options.seed}`],
      [
        'time of the whole run',
        `${timing.seconds.toFixed(1)} s wall, ${timing.cpuSeconds.toFixed(1)} s CPU (this process)`,
      ],
    ],
  });
  out['servedModel'] = state.served?.name ?? 'n/a';
  out['gatewayModel'] = servedName;
  out['seconds'] = Number(timing.seconds.toFixed(2));
  out['cpuSeconds'] = Number(timing.cpuSeconds.toFixed(2));

  // Detection quality: the served (DP) model against the non-private baseline, and the adversarial variant.
  if (base) {
    const q: DetectionQuality[] = [
      detectionQuality('baseline', base.testSet.y, scoresOf(base.network, base.testSet)),
    ];
    if (dp)
      q.push(
        detectionQuality(
          `DP ε ${dp.privacy.epsilon.toFixed(2)} + PGD (served)`,
          dp.testSet.y,
          scoresOf(dp.network, dp.testSet),
        ),
      );
    if (state.robust)
      q.push(
        detectionQuality('adversarial (PGD)', base.testSet.y, scoresOf(state.robust.network, base.testSet)),
      );
    const prevalence = base.testSet.y.reduce((s, v) => s + (v === 1 ? 1 : 0), 0) / base.testSet.rows;
    // Every model holds out the same rows (the baseline trains with split 'row-hash', DP training's
    // split): checked here, not assumed, since the table compares them.
    const sameRows =
      !dp ||
      (dp.testRows.length === base.testRows.length && dp.testRows.every((r, i) => r === base.testRows[i]));
    const rowsSaid = sameRows
      ? `every model on the same ${base.testSet.rows} held-out rows (${pct(prevalence)} fraud), chosen row by row by a seeded hash of each row's values, DP training's split, so that one added row moves no other`
      : `the baseline and the adversarial variant on the same ${base.testSet.rows} rows (${pct(prevalence)} fraud); the DP model on its own ${dp ? dp.testSet.rows : 0} held-out rows (the splits differ)`;
    out['sameHeldOutRows'] = sameRows;
    blocks.push({
      kind: 'table',
      caption:
        `Detection quality on held-out transactions: ${rowsSaid}. ` +
        `The threshold is chosen on half of them for ${100 * TARGET_FPR} % false positives; FPR, recall and precision are measured on the other half.`,
      columns: [
        'model',
        'ROC AUC',
        'PR AUC',
        'threshold',
        'false-positive rate',
        'recall (fraud caught)',
        'precision',
      ],
      rows: q.map((m) => [
        m.name,
        Number(m.rocAuc.toFixed(4)),
        Number(m.averagePrecision.toFixed(4)),
        Number(m.op.threshold.toPrecision(4)),
        pct(m.op.fpr),
        pct(m.op.recall),
        pct(m.op.precision),
      ]),
    });
    blocks.push({
      kind: 'lines',
      title: 'ROC curves (held-out transactions)',
      xLabel: 'false-positive rate',
      yLabel: 'true-positive rate (recall)',
      series: [
        ...q.map((m) => ({ name: `${m.name}, AUC ${m.rocAuc.toFixed(3)}`, points: m.roc })),
        {
          name: 'chance',
          points: [
            [0, 0],
            [1, 1],
          ] as Array<[number, number]>,
          dashed: true,
        },
      ],
    });
    blocks.push({
      kind: 'lines',
      title: 'Precision-recall curves (held-out transactions)',
      xLabel: 'recall',
      yLabel: 'precision',
      series: [
        ...q.map((m) => ({ name: `${m.name}, AP ${m.averagePrecision.toFixed(3)}`, points: m.pr })),
        {
          name: 'chance (fraud rate)',
          points: [
            [0, prevalence],
            [1, prevalence],
          ] as Array<[number, number]>,
          dashed: true,
        },
      ],
    });
    const served = q[1] ?? q[0];
    if (served) {
      out['servedRocAuc'] = served.rocAuc;
      out['servedAveragePrecision'] = served.averagePrecision;
      out['servedFpr'] = served.op.fpr;
      out['servedRecall'] = served.op.recall;
      out['servedThreshold'] = served.op.threshold;
    }
    out['baselineRocAuc'] = q[0]?.rocAuc ?? Number.NaN;
    out['baselineFpr'] = q[0]?.op.fpr ?? Number.NaN;
    out['baselineRecall'] = q[0]?.op.recall ?? Number.NaN;
  }

  // The attacks, and what stopped each.
  const gwTable = tableOf(sections, 'gateway', 'attempt');
  const robust = summary['robust'];
  const pkg = summary['package'];
  const attackRows: Array<Array<string | number>> = [];
  for (const r of gwTable?.rows ?? []) {
    const [attempt, http, code, stage] = r;
    attackRows.push([String(attempt), `gateway: HTTP ${http} ${code} at ${stage}`]);
  }
  if (pkg) {
    attackRows.push([
      'one byte of the model package changed',
      `package verification: ${String(pkg['tamperedRefusal'])}`,
    ]);
    attackRows.push([
      'package signed by a key not trusted for the model',
      `trust policy: ${String(pkg['untrustedRefusal'])}`,
    ]);
  }
  if (robust)
    attackRows.push([
      `evasion: PGD on the fraud rows within the attacker's fields (eps ${String(robust['eps'])})`,
      `adversarial training: ${pct(Number(robust['baselinePgdSuccess']))} of fraud evades the baseline, ${pct(Number(robust['robustPgdSuccess']))} the adversarially trained model`,
    ]);
  const poison = summary['poison'];
  if (poison)
    attackRows.push([
      'poisoned training batch (backdoor)',
      `${String(poison['provenance'])}; backdoor success ${pct(Number(poison['backdoorSuccessPoisoned']))} → ${pct(Number(poison['backdoorSuccessSanitized']))} after sanitising`,
    ]);
  blocks.push(
    attackRows.length > 0
      ? {
          kind: 'table',
          caption: 'The attacks and how each was stopped',
          columns: ['attack', 'stopped by'],
          rows: attackRows,
        }
      : { kind: 'text', text: 'No attack results: the gateway and robustness stages did not run.' },
  );
  const g = summary['gateway'];
  if (g) {
    out['attacksRefused'] = Number(g['attacksRefused']);
    out['attacks'] = Number(g['attacks']);
  }

  // The privacy budget.
  if (dp) {
    const left = dp.receipt?.remaining;
    const spentEps = dp.receipt?.epsilon ?? dp.privacy.epsilon;
    const totalEps = left ? spentEps + left.epsilon : Number.NaN;
    blocks.push({
      kind: 'facts',
      facts: [
        [
          'privacy budget of the transactions',
          Number.isFinite(totalEps) ? `ε ${Number(totalEps.toFixed(4))}` : 'n/a',
        ],
        [
          'spent by the served model',
          `ε ${Number(spentEps.toFixed(4))}, δ ${dp.privacy.delta} (DP-SGD, ${dp.privacy.accountant ?? 'rdp'} accountant, σ ${dp.privacy.noiseMultiplier?.toFixed(3) ?? 'n/a'}, ${dp.privacy.steps ?? 0} steps)`,
        ],
        [
          'left',
          left
            ? `ε ${Number(left.epsilon.toFixed(4))}, δ ${Number(left.delta.toPrecision(3))}`
            : 'n/a (no ledger)',
        ],
        ['ledger', 'privacy-ledger.sqlite (spent before the first training step)'],
      ],
    });
    if (left)
      blocks.push({
        kind: 'bars',
        title: 'Privacy budget (ε)',
        bars: [
          { label: 'spent', value: spentEps },
          { label: 'left', value: left.epsilon },
        ],
      });
    out['epsilonSpent'] = spentEps;
    out['epsilonLeft'] = left?.epsilon ?? Number.NaN;
  }

  // The lineage of one prediction.
  if ('missing' in lin) {
    blocks.push({ kind: 'text', text: `Lineage of a prediction: not available (${lin.missing}).` });
    out['lineageLength'] = 0;
  } else {
    const rows: Array<Array<string | number>> = lin.nodes.map((n) => [
      n.depth,
      `#${n.entry.index}`,
      n.entry.type,
      shortRef(describeEvent(n.entry)),
      n.via ? shortRef(n.via) : 'the prediction (start)',
    ]);
    blocks.push({
      kind: 'table',
      caption:
        'Lineage of one prediction: the first prediction the gateway recorded in the demo’s signed log (audit/audit.db, the ' +
        'gateway writing to it beside the demo; proved in gateway/prediction-proof.json), and one AuditLog.lineage walk from it ' +
        'in that log: prediction → package → model → training run → protected dataset → keys.',
      columns: ['depth', 'entry', 'type', 'what', 'reached through'],
      rows,
    });
    if (lin.unresolved.length > 0)
      blocks.push({
        kind: 'text',
        text: `References no earlier event produces: ${lin.unresolved.map((u) => `#${u.usedBy} uses ${u.ref}`).join('; ')}.`,
      });
    out['lineageLength'] = rows.length;
    out['lineageUnresolved'] = lin.unresolved.length;
    // One walk in one log: every node is an entry of audit/audit.db, reached from the prediction.
    out['lineageTypes'] = [...new Set(lin.nodes.map((n) => n.entry.type))].join(',');
  }

  // The cost table.
  const costs = await readCostRows();
  if ('missing' in costs) {
    blocks.push({ kind: 'text', text: `Cost table: ${costs.missing}.` });
    out['costRows'] = 0;
  } else {
    blocks.push({
      kind: 'table',
      caption: `What each protection costs: the article's claims beside our measurements (${costs.file.replace(`${PACKAGE_ROOT}/`, '')}, docs/performance.md)`,
      columns: ['article says', 'what we measured', 'measured', 'unit', 'ratio to the claim', 'verdict'],
      rows: costs.rows.map((r) => [
        cell(r['claimText']),
        cell(r['what']),
        cell(r['measured']),
        cell(r['unit']),
        cell(r['ratio']),
        cell(r['verdict']),
      ]),
    });
    out['costRows'] = costs.rows.length;
  }

  return {
    section: {
      id: 'case-study',
      title: 'Case study: a card-fraud model, secured end to end',
      status: 'ok',
      blocks,
    },
    summary: out,
  };
}

/** `dataset:sha256:<64 hex>` → `dataset:sha256:0123456789ab…`; long key ids likewise. */
function shortRef(ref: string): string {
  return ref.replace(/([0-9a-f]{12})[0-9a-f]{20,}/g, '$1…');
}

function tableOf(
  sections: readonly Section[],
  id: string,
  firstColumn: string,
): Extract<Block, { kind: 'table' }> | undefined {
  const s = sections.find((x) => x.id === id);
  for (const b of s?.blocks ?? []) if (b.kind === 'table' && b.columns[0] === firstColumn) return b;
  return undefined;
}

/** The "model" fact of the gateway stage (name, version, origin): which package it really served. */
function gatewayModel(sections: readonly Section[]): string | undefined {
  const s = sections.find((x) => x.id === 'gateway');
  for (const b of s?.blocks ?? [])
    if (b.kind === 'facts') for (const [k, v] of b.facts) if (k === 'model') return String(v);
  return undefined;
}
