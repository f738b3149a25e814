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

export const GATE_METRICS = [
  'clean-accuracy',
  'robust-accuracy',
  'membership-auc',
  'backdoor-success',
  'privacy-spent',
] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

const GATE_ATTACKS = ['fgsm', 'pgd', 'apgd', 'square'] as const;

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
  });

export const gateSchema = z.strictObject({
  version: z.literal(1),
  checks: z.array(checkSchema).min(1),
});

export type GateSpec = z.infer<typeof gateSchema>;
export type GateCheck = GateSpec['checks'][number];

/** Parses gate YAML (ERR_CONFIG_PARSE / ERR_CONFIG_INVALID naming the key). */
export function parseGate(text: string, source = '<gate>'): GateSpec {
  return parseConfig(text, gateSchema, source);
}

export function loadGate(path: string): Promise<GateSpec> {
  return loadConfig(path, gateSchema);
}

/** A check's display name: its `name`, or the metric with its parameters. */
export function checkName(c: GateCheck): string {
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
  /** Why the value is missing, when it is. */
  error?: string;
}

export interface GateReport {
  passed: boolean;
  failed: number;
  checks: GateRow[];
}

/** Judges measured values against the checks; a missing or NaN value fails. */
export function judgeGate(
  spec: GateSpec,
  values: readonly (number | null)[],
  errors: readonly (string | undefined)[] = [],
): GateReport {
  const checks = spec.checks.map((c, i): GateRow => {
    const v = values[i] ?? null;
    const op = c.min !== undefined ? '>=' : '<=';
    const threshold = (c.min ?? c.max) as number;
    const ok = v !== null && Number.isFinite(v) && (op === '>=' ? v >= threshold : v <= threshold);
    const err = errors[i];
    return {
      name: checkName(c),
      metric: c.metric,
      value: v,
      op,
      threshold,
      passed: ok,
      ...(err ? { error: err } : {}),
    };
  });
  const failed = checks.filter((c) => !c.passed).length;
  return { passed: failed === 0, failed, checks };
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
      if (c.metric === 'clean-accuracy') values[i] = inp.test.rows === 0 ? null : ok / inp.test.rows;
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
      if (s.rows === 0) errors[i] = 'no test rows outside the target class';
    }
    if (c.metric === 'privacy-spent' && inp.ledger) {
      const st = await inp.ledger.status(c.budget as string, c.analyst ? { analyst: c.analyst } : {});
      values[i] = st.spent.epsilon;
    }
  }
  return judgeGate(spec, values, errors);
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
