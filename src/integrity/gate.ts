/**
 * The security gate for CI/CD (`bulwark evaluate --gate gate.yaml`): a list of checks, each a metric
 * with a minimum or a maximum, measured on the model and data a pipeline step gives; the gate fails
 * (ERR_GATE_FAILED, exit 5) when any check is beyond its threshold, so a pipeline can block an unsafe
 * model. A check that cannot be measured is a failure (fail closed), never a pass.
 *
 * ```yaml
 * version: 1
 * checks:
 *   - metric: clean-accuracy
 *     min: 0.9
 *   - metric: robust-accuracy     # accuracy under attack at eps (units of each feature's range)
 *     attack: pgd                  # fgsm | pgd | apgd | square
 *     eps: 0.05
 *     min: 0.6
 *   - metric: membership-auc      # loss-threshold membership inference (needs --members)
 *     max: 0.6
 *   - metric: backdoor-success    # share of triggered non-target rows classified as the target
 *     trigger: { amount: 913.37, local_hour: 4 }
 *     target: "0"
 *     max: 0.1
 *   - metric: privacy-spent       # epsilon spent from a ledger budget
 *     budget: transactions
 *     max: 2
 * ```
 */
import { z } from 'zod';
import { BulwarkError, loadConfig, parseConfig } from '../core/index.js';
import type { LabelledData } from '../ml/index.js';
import type { BudgetLedger } from '../privacy/index.js';
import {
  argmaxRows,
  backdoorSuccess,
  type InputDomain,
  type RedTeamAttack,
  type RedTeamModel,
  redTeam,
  type TabularTrigger,
} from '../robust/index.js';
import { binomialBound, minRowsFor } from './confidence.js';

export const GATE_METRICS = [
  'clean-accuracy',
  'robust-accuracy',
  'membership-auc',
  'backdoor-success',
  'privacy-spent',
] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

const GATE_ATTACKS = ['fgsm', 'pgd', 'apgd', 'square'] as const;

/**
 * Which side of a threshold is safe for each metric: accuracies must stay above a minimum, leakage and
 * spend below a maximum. The other side is refused: `membership-auc: { min: 0.6 }` would pass the
 * leakiest model and fail the safest, and a reviewer reading "membership-auc 0.6" would not notice.
 */
export const GATE_DIRECTION: Readonly<Record<GateMetric, 'min' | 'max'>> = {
  'clean-accuracy': 'min',
  'robust-accuracy': 'min',
  'membership-auc': 'max',
  'backdoor-success': 'max',
  'privacy-spent': 'max',
};

/** The metrics that are a share of rows (a count k of n), judged with a confidence bound. */
export const SHARE_METRICS: readonly GateMetric[] = ['clean-accuracy', 'robust-accuracy', 'backdoor-success'];

const unit = z.number().min(0).max(1);
const checkSchema = z
  .strictObject({
    name: z.string().min(1).max(200).optional(),
    metric: z.enum(GATE_METRICS),
    min: z.number().refine(Number.isFinite, 'must be finite').optional(),
    max: z.number().refine(Number.isFinite, 'must be finite').optional(),
    attack: z.enum(GATE_ATTACKS).optional(),
    eps: z.number().min(0).max(1e6).optional(),
    trigger: z
      .record(z.string().min(1), z.union([z.number().refine(Number.isFinite, 'must be finite'), z.string()]))
      .optional(),
    target: z.union([z.string(), z.number().transform(String)]).optional(),
    budget: z.string().min(1).optional(),
    analyst: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.min === undefined) === (c.max === undefined))
      ctx.addIssue({ code: 'custom', message: 'give exactly one of min and max' });
    const need = (k: string, ok: boolean) => {
      if (!ok) ctx.addIssue({ code: 'custom', message: `${c.metric} needs "${k}"` });
    };
    if (c.metric === 'robust-accuracy') {
      need('attack', c.attack !== undefined);
      need('eps', c.eps !== undefined);
    }
    if (c.metric === 'backdoor-success') {
      need('trigger', c.trigger !== undefined && Object.keys(c.trigger).length > 0);
      need('target', c.target !== undefined);
    }
    if (c.metric === 'privacy-spent') need('budget', c.budget !== undefined);
    if (['clean-accuracy', 'robust-accuracy', 'membership-auc', 'backdoor-success'].includes(c.metric)) {
      const t = c.min ?? c.max;
      if (t !== undefined && !unit.safeParse(t).success)
        ctx.addIssue({ code: 'custom', message: `${c.metric} thresholds are shares in [0, 1]` });
    }
    const side = GATE_DIRECTION[c.metric];
    if ((side === 'min' ? c.max : c.min) !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${c.metric} is judged with "${side}" (${side === 'min' ? 'higher is safer' : 'lower is safer'})`,
      });
      return;
    }
    // A threshold no value can cross makes a check that passes whatever the model does (or one that
    // can never pass): a gate file that says less than it appears to, refused rather than run.
    const t = c.min ?? c.max;
    if (t === undefined) return;
    const always =
      (c.metric === 'clean-accuracy' || c.metric === 'robust-accuracy') && t <= 0
        ? 'min 0 passes any model'
        : c.metric === 'backdoor-success' && t >= 1
          ? 'max 1 passes any model'
          : c.metric === 'membership-auc' && t >= 1
            ? 'max 1 passes any model (the gate judges max(AUC, 1 - AUC), at most 1)'
            : c.metric === 'membership-auc' && t < 0.5
              ? 'a max below 0.5 fails every model (the gate judges max(AUC, 1 - AUC), at least 0.5)'
              : c.metric === 'privacy-spent' && t < 0
                ? 'a negative max fails every model'
                : null;
    if (always !== null) ctx.addIssue({ code: 'custom', message: `${c.metric}: ${always}` });
  });

export const gateSchema = z
  .strictObject({
    version: z.literal(1),
    /**
     * Confidence of the one-sided Clopper–Pearson bound reported (and, with `judge: bound`, judged)
     * for each share check, and of the rule that refuses a check measured on too few rows (default 0.95).
     */
    confidence: z.number().min(0.5).max(0.999).optional(),
    /**
     * `value` (default): a share check passes when the measured share is within its threshold;
     * `bound`: when its one-sided bound at `confidence` is (the safe side of the interval).
     */
    judge: z.enum(['value', 'bound']).optional(),
    checks: z.array(checkSchema).min(1),
  })
  .superRefine((g, ctx) => {
    // Two checks of one name make the table and the failure message ambiguous (which one failed?), and
    // a custom name can otherwise impersonate another check's generated one.
    const seen = new Map<string, number>();
    g.checks.forEach((c, i) => {
      const n = checkName(c);
      const first = seen.get(n);
      if (first !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['checks', i],
          message: `duplicates check ${first + 1} ("${n}"): give each check once, or a distinct name`,
        });
      else seen.set(n, i);
    });
  });

export type GateSpec = z.infer<typeof gateSchema>;
export type GateCheck = GateSpec['checks'][number];

/** Parses gate YAML (ERR_CONFIG_PARSE / ERR_CONFIG_INVALID naming the key). */
export function parseGate(text: string, source = '<gate>'): GateSpec {
  return parseConfig(text, gateSchema, source);
}

export function loadGate(path: string): Promise<GateSpec> {
  return loadConfig(path, gateSchema, 'gate file');
}

/** A check's display name: its `name`, or the metric with its parameters. */
export function checkName(c: z.infer<typeof checkSchema>): string {
  if (c.name) return c.name;
  if (c.metric === 'robust-accuracy') return `robust-accuracy ${c.attack} eps ${c.eps}`;
  if (c.metric === 'privacy-spent') return `privacy-spent ${c.budget}`;
  if (c.metric === 'backdoor-success') return `backdoor-success -> ${c.target}`;
  return c.metric;
}

export interface GateRow {
  name: string;
  metric: GateMetric;
  value: number | null;
  /** `>=` for a minimum, `<=` for a maximum. */
  op: '>=' | '<=';
  threshold: number;
  passed: boolean;
  /** Why the value is missing (or cannot be judged), when it is. */
  error?: string;
  /** Share checks: the rows the share is over. */
  rows?: number;
  /**
   * Share checks: the one-sided Clopper–Pearson bound at the gate's confidence on the unsafe side
   * (the lower bound of an accuracy, the upper bound of a backdoor success rate).
   */
  bound?: number;
  /** Share checks: the fewest rows on which a perfect result's bound reaches the threshold. */
  minRows?: number;
}

/** A share check's count, for its bound and its minimum rows. */
export interface GateCount {
  successes: number;
  rows: number;
}

export interface GateReport {
  passed: boolean;
  /** The confidence of the bounds, and what was judged (the value or the bound). */
  confidence: number;
  judge: 'value' | 'bound';
  failed: number;
  checks: GateRow[];
}

/**
 * Judges measured values against the checks; a missing or NaN value fails. A share check given its
 * count (`counts[i]`) also gets its one-sided bound, and fails when it was measured on fewer rows than
 * a perfect result would need for that bound to reach the threshold ({@link minRowsFor}: 10 rows cannot
 * show a rate of at most 1 %, whatever they show); with `judge: bound` the bound itself is judged.
 */
export function judgeGate(
  spec: GateSpec,
  values: readonly (number | null)[],
  errors: readonly (string | undefined)[] = [],
  counts: readonly (GateCount | undefined)[] = [],
): GateReport {
  const confidence = spec.confidence ?? 0.95;
  const judge = spec.judge ?? 'value';
  const checks = spec.checks.map((c, i): GateRow => {
    const v = values[i] ?? null;
    const op = c.min !== undefined ? '>=' : '<=';
    const threshold = (c.min ?? c.max) as number;
    const within = (x: number) => (op === '>=' ? x >= threshold : x <= threshold);
    let ok = v !== null && Number.isFinite(v) && within(v);
    let err = errors[i];
    const n = counts[i];
    let share: Pick<GateRow, 'rows' | 'bound' | 'minRows'> = {};
    if (n && SHARE_METRICS.includes(c.metric) && n.rows > 0) {
      const bound = binomialBound(n.successes, n.rows, confidence, op === '>=' ? 'lower' : 'upper');
      const minRows = minRowsFor(threshold, op, confidence);
      share = { rows: n.rows, bound, minRows };
      if (n.rows < minRows) {
        ok = false;
        err ??= `${n.rows} rows cannot show ${op} ${threshold} at ${100 * confidence} % confidence; at least ${minRows} needed`;
      } else if (judge === 'bound' && !within(bound)) ok = false;
    } else if (SHARE_METRICS.includes(c.metric) && judge === 'bound' && n === undefined && v !== null) {
      ok = false;
      err ??= 'no row count to bound the share';
    }
    return {
      name: checkName(c),
      metric: c.metric,
      value: v,
      op,
      threshold,
      passed: ok,
      ...(err ? { error: err } : {}),
      ...share,
    };
  });
  const failed = checks.filter((c) => !c.passed).length;
  return { passed: failed === 0, confidence, judge, failed, checks };
}

export interface GateInputs {
  model: RedTeamModel;
  test: LabelledData;
  domain: InputDomain;
  members?: LabelledData;
  /**
   * The test rows with a trigger applied, encoded for the model (the CLI applies it to the raw records
   * and runs the model's pipeline): clean and triggered features, labels, and the target's class index.
   */
  triggered?: (
    trigger: TabularTrigger,
    target: string,
  ) => Promise<{ clean: Float32Array; triggered: Float32Array; y: Int32Array; target: number }>;
  ledger?: BudgetLedger;
  rows?: number;
  steps?: number;
  restarts?: number;
  seed?: number;
  onProgress?: (label: string, fraction: number) => void;
}

/** Measures every check and judges the gate. */
export async function runGate(spec: GateSpec, inp: GateInputs): Promise<GateReport> {
  const values: (number | null)[] = spec.checks.map(() => null);
  const errors: (string | undefined)[] = spec.checks.map(() => undefined);
  const counts: (GateCount | undefined)[] = spec.checks.map(() => undefined);
  // A share of n rows is a count: k = round(share * n) recovers it exactly (n is far below 2^52).
  const count = (share: number, rows: number): GateCount => ({ successes: Math.round(share * rows), rows });
  const attacks = new Set<RedTeamAttack>();
  const eps = new Set<number>([0]);
  let needRedTeam = false;
  spec.checks.forEach((c) => {
    if (c.metric === 'robust-accuracy') {
      needRedTeam = true;
      attacks.add(c.attack as RedTeamAttack);
      eps.add(c.eps as number);
    }
    if (c.metric === 'membership-auc') {
      if (!inp.members)
        throw new BulwarkError(
          'ERR_GATE_METRIC',
          `check "${checkName(c)}": membership-auc needs the model's training rows (--members)`,
        );
      needRedTeam = true;
      attacks.add('mia');
    }
    if (c.metric === 'privacy-spent' && !inp.ledger)
      throw new BulwarkError(
        'ERR_GATE_METRIC',
        `check "${checkName(c)}": privacy-spent needs a budget ledger (--ledger)`,
      );
    if (c.metric === 'backdoor-success' && !inp.triggered)
      throw new BulwarkError(
        'ERR_GATE_METRIC',
        `check "${checkName(c)}": backdoor-success needs labelled raw data to apply the trigger to`,
      );
  });
  if (
    attacks.size > 0 &&
    [...attacks].some((a) => a !== 'square' && a !== 'mia') &&
    !('gradients' in inp.model.model)
  )
    throw new BulwarkError(
      'ERR_GATE_METRIC',
      'white-box attacks in the gate need a model Bulwark can import as a network',
    );
  if (spec.checks.some((c) => c.metric === 'clean-accuracy')) {
    const p = argmaxRows(
      await inp.model.model.predictProba(inp.test.x, inp.test.rows),
      inp.test.rows,
      inp.model.model.classes,
    );
    let ok = 0;
    for (let i = 0; i < inp.test.rows; i++) if (p[i] === inp.test.y[i]) ok++;
    spec.checks.forEach((c, i) => {
      if (c.metric !== 'clean-accuracy') return;
      values[i] = inp.test.rows === 0 ? null : ok / inp.test.rows;
      if (inp.test.rows > 0) counts[i] = { successes: ok, rows: inp.test.rows };
    });
  }
  if (needRedTeam) {
    const r = await redTeam(
      [inp.model],
      { test: inp.test, ...(inp.members ? { members: inp.members } : {}), domain: inp.domain },
      {
        attacks: [...attacks],
        eps: [...eps].sort((a, b) => a - b),
        detectors: false,
        shadows: 0,
        rows: inp.rows ?? 500,
        steps: inp.steps ?? 20,
        restarts: inp.restarts ?? 1,
        seed: inp.seed ?? 0,
        ...(inp.onProgress ? { onProgress: inp.onProgress } : {}),
      },
    );
    const m = r.models[0];
    spec.checks.forEach((c, i) => {
      if (!m) return;
      if (c.metric === 'robust-accuracy') {
        const p = m.curves[c.attack as keyof typeof m.curves]?.find((q) => q.eps === c.eps);
        values[i] = p ? p.accuracy : null;
        if (p && r.rowsAttacked > 0) counts[i] = count(p.accuracy, r.rowsAttacked);
        if (!p) errors[i] = `no ${c.attack} result at eps ${c.eps}`;
      }
      if (c.metric === 'membership-auc') {
        // An AUC of 0.2 separates members from non-members as well as 0.8 does (the attacker flips the
        // score): the gate judges the distance from chance either way, max(AUC, 1 - AUC).
        const auc = m.membership?.lossThreshold.auc;
        values[i] = auc === undefined ? null : Math.max(auc, 1 - auc);
        if (values[i] === null) errors[i] = 'membership inference did not run';
      }
    });
  }
  for (const [i, c] of spec.checks.entries()) {
    if (c.metric === 'backdoor-success' && inp.triggered) {
      const t = await inp.triggered(c.trigger as TabularTrigger, c.target as string);
      const s = await backdoorSuccess(inp.model.model, t.clean, t.triggered, t.y, t.target);
      values[i] = s.rows === 0 ? null : s.successRate;
      if (s.rows > 0) counts[i] = count(s.successRate, s.rows);
      if (s.rows === 0) errors[i] = 'no test rows outside the target class';
    }
    if (c.metric === 'privacy-spent' && inp.ledger) {
      const st = await inp.ledger.status(c.budget as string, c.analyst ? { analyst: c.analyst } : {});
      values[i] = st.spent.epsilon;
    }
  }
  return judgeGate(spec, values, errors, counts);
}

/** Throws ERR_GATE_FAILED when the gate did not pass (after the caller printed the table). */
export function requireGatePassed(r: GateReport): void {
  if (r.passed) return;
  const names = r.checks.filter((c) => !c.passed).map((c) => c.name);
  throw new BulwarkError(
    'ERR_GATE_FAILED',
    `security gate failed: ${r.failed} of ${r.checks.length} checks (${names.join('; ')})`,
    {
      details: { failed: names.join('; ') },
    },
  );
}
