import { z } from 'zod';
import { BulwarkError, parseYaml, readInputFile, requireFinite, validateConfig } from '../core/index.js';
import { PROFILE_IDS, PROFILES, type Profile } from './compliance.js';
import { type BenchSet, type MeasureCost, measuredCosts, type Workload } from './costs.js';
import { EFFECTS, MEASURE_IDS, MEASURES, THREAT_IDS, THREATS } from './model.js';
import {
  type Instance,
  paretoFrontier,
  requiredClosure,
  riskReductionOf,
  type Solution,
  solveExact,
  solveGreedy,
} from './solve.js';

/**
 * `bulwark plan`: builds the optimisation instance from the threat model, the compliance profiles, the
 * measured (or supplied) costs and the plan file, solves it exactly, and explains the choice.
 */

const measureId = z.enum(MEASURE_IDS as [string, ...string[]]);
const threatId = z.enum(THREAT_IDS as [string, ...string[]]);
const level = z.int().min(1).max(5);
/**
 * Bounds of the plan file's numbers. Unbounded, a workload of 1e308 made a cost Infinity and the
 * solver refused it as "plan instance: cost of item 3" (exit 2), and a budget and costs near 1e308 summed
 * to Infinity and the frontier's budget became NaN. 1e15 units a month and 1e9 CPU-hours a month (over a
 * million cores all month) are far above any real workload.
 */
export const MAX_QUANTITY = 1e15;
export const MAX_CPU_HOURS = 1e9;
const quantity = z.number().min(0).max(MAX_QUANTITY);
const cpuHours = z.number().min(0).max(MAX_CPU_HOURS);

export const planFileSchema = z.strictObject({
  /** CPU-hours per month available for protection (the --budget option wins). */
  budget: cpuHours.optional(),
  profiles: z.array(z.enum(PROFILE_IDS as [Profile['id'], ...Profile['id'][]])).default([]),
  workload: z
    .strictObject({
      recordsPerMonth: quantity.default(1e6),
      recordReadsPerMonth: quantity.default(1e6),
      trainingCpuHoursPerMonth: cpuHours.default(10),
      requestsPerMonth: quantity.default(1e6),
      auditEventsPerMonth: quantity.optional(),
      auditStore: z.enum(['sqlite', 'postgres']).default('postgres'),
      modelSizeMB: z.number().min(0).max(1e9).default(10),
      modelLoadsPerMonth: quantity.default(100),
      modelPublishesPerMonth: quantity.default(4),
    })
    .default({
      recordsPerMonth: 1e6,
      recordReadsPerMonth: 1e6,
      trainingCpuHoursPerMonth: 10,
      requestsPerMonth: 1e6,
      auditStore: 'postgres',
      modelSizeMB: 10,
      modelLoadsPerMonth: 100,
      modelPublishesPerMonth: 4,
    }),
  /** Costs the user supplies where none is measured (or to override one); each names its source. */
  costs: z
    .partialRecord(
      measureId,
      z.strictObject({ cpuHoursPerMonth: cpuHours, source: z.string().min(3).max(500) }),
    )
    .default({}),
  /** Likelihood and impact overrides (1–5). */
  threats: z
    .partialRecord(threatId, z.strictObject({ likelihood: level.optional(), impact: level.optional() }))
    .default({}),
  require: z.array(measureId).default([]),
  exclude: z.array(measureId).default([]),
  pricePerCpuHour: z.number().positive().max(1e6).optional(),
  currency: z.string().min(1).max(8).default('USD'),
});
export type PlanFile = z.infer<typeof planFileSchema>;

export async function loadPlanFile(path: string): Promise<PlanFile> {
  // parseYaml refuses a `__proto__` key (which zod's records would drop without a word) for every
  // configuration, this plan file included.
  return validateConfig(
    parseYaml(await readInputFile(path, 'plan file', 'utf8'), path),
    planFileSchema,
    path,
  );
}

export function defaultPlanFile(): PlanFile {
  return planFileSchema.parse({});
}

export interface PlanOptions {
  budget?: number;
  /** Replaces the plan file's profiles when given. */
  profiles?: readonly Profile['id'][];
}

export interface Explained {
  measure: string;
  name: string;
  cost: number;
  /** Risk reduction lost if this measure alone were dropped from the choice. */
  marginal: number;
  reasons: string[];
}

export interface PlanResult {
  unit: 'CPU-hours/month';
  budget: number;
  profiles: string[];
  totalRisk: number;
  chosen: Explained[];
  notChosen: Explained[];
  cost: number;
  riskReduction: number;
  riskReductionShare: number;
  money?: { currency: string; pricePerCpuHour: number; cost: number; budget: number };
  required: Array<{ measure: string; because: string }>;
  unavailable: Array<{ measure: string; reason: string }>;
  costs: MeasureCost[];
  threats: Array<{
    threat: string;
    name: string;
    weight: number;
    residualShare: number;
    coveredBy: string[];
  }>;
  greedy: { measures: string[]; cost: number; riskReduction: number; lossVsOptimal: number };
  frontier: Array<{ cost: number; riskReduction: number; share: number; measures: string[] }>;
  solver: { method: 'branch-and-bound'; nodes: number; items: number };
}

const nameOf = (id: string) => MEASURES.find((m) => m.id === id)?.name ?? id;

/** Builds and solves the plan. Throws ERR_PLAN_COST_MISSING / ERR_PLAN_INFEASIBLE as documented. */
export function makePlan(file: PlanFile, bench: BenchSet, opts: PlanOptions = {}): PlanResult {
  const budget = opts.budget ?? file.budget;
  if (budget === undefined) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      'budget: give --budget (CPU-hours per month) or budget in the plan file',
      {
        details: { parameter: 'budget' },
      },
    );
  }
  requireFinite('budget', budget);
  if (budget < 0 || budget > MAX_CPU_HOURS) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `budget: expected 0 to ${MAX_CPU_HOURS} CPU-hours per month, got ${budget}`,
      { details: { parameter: 'budget' } },
    );
  }
  const profiles = PROFILES.filter((p) => (opts.profiles ?? file.profiles).includes(p.id));
  const workload: Workload = {
    ...file.workload,
    auditEventsPerMonth: file.workload.auditEventsPerMonth ?? file.workload.requestsPerMonth,
  };

  // Costs: measured, then the plan file's (which win, and say so).
  const costs = measuredCosts(bench, workload).map((c): MeasureCost => {
    const s = file.costs[c.measure];
    if (!s) return c;
    return {
      measure: c.measure,
      status: 'supplied',
      cpuHours: s.cpuHoursPerMonth,
      source: s.source,
      ...(c.status === 'measured'
        ? { overrides: `measured ${Number(c.cpuHours.toPrecision(4))} CPU-h (${c.formula})` }
        : {}),
    };
  });
  const costOf = new Map(costs.map((c) => [c.measure, c]));
  // A rate near 0 in a result file (or a workload near its bound) can still make a cost overflow: say
  // which, instead of the solver's "cost of item N".
  for (const c of costs) {
    if (c.status !== 'missing' && !(Number.isFinite(c.cpuHours) && c.cpuHours <= MAX_CPU_HOURS)) {
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `workload: the cost of ${c.measure} comes to ${c.cpuHours} CPU-hours per month (above ${MAX_CPU_HOURS}); check the workload and ${c.status === 'measured' ? c.figures.map((f) => `${f.bench}.json#${f.id}`).join(', ') : `costs.${c.measure}`}`,
        { details: { parameter: 'workload', measure: c.measure } },
      );
    }
  }

  // Required measures, with why.
  const required: Array<{ measure: string; because: string }> = [];
  for (const p of profiles)
    for (const r of p.requires)
      required.push({ measure: r.measure, because: `${p.name} ${r.clause}: ${r.text}` });
  for (const m of file.require) required.push({ measure: m, because: 'required by the plan file' });
  const depsOf = (id: string) => MEASURES.find((m) => m.id === id)?.dependsOn ?? [];
  const closure = new Set<string>();
  const stack = required.map((r) => r.measure);
  while (stack.length > 0) {
    const m = stack.pop()!;
    if (closure.has(m)) continue;
    closure.add(m);
    for (const d of depsOf(m)) {
      if (!closure.has(d)) required.push({ measure: d, because: `${m} depends on it` });
      stack.push(d);
    }
  }
  for (const m of closure) {
    if (file.exclude.includes(m)) {
      throw new BulwarkError(
        'ERR_PLAN_INFEASIBLE',
        `${m} is both required (${required.find((r) => r.measure === m)?.because}) and excluded by the plan file`,
        {
          details: { measure: m },
        },
      );
    }
    const c = costOf.get(m);
    if (!c || c.status === 'missing') {
      throw new BulwarkError(
        'ERR_PLAN_COST_MISSING',
        `${m} is required (${required.find((r) => r.measure === m)?.because}) but has no cost: ${c?.status === 'missing' ? c.reason : 'unknown'}; supply costs.${m} in the plan file`,
        { details: { measure: m } },
      );
    }
  }

  // Available measures: costed, not excluded, with every dependency available.
  const unavailable: Array<{ measure: string; reason: string }> = [];
  const available = new Set<string>();
  for (const m of MEASURE_IDS) {
    const c = costOf.get(m)!;
    if (file.exclude.includes(m)) unavailable.push({ measure: m, reason: 'excluded by the plan file' });
    else if (c.status === 'missing') unavailable.push({ measure: m, reason: `no cost: ${c.reason}` });
    else available.add(m);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const m of [...available]) {
      const lacking = depsOf(m).filter((d) => !available.has(d));
      if (lacking.length > 0) {
        available.delete(m);
        unavailable.push({ measure: m, reason: `depends on ${lacking.join(', ')}, which is unavailable` });
        changed = true;
      }
    }
  }

  const items = MEASURE_IDS.filter((m) => available.has(m));
  const index = new Map(items.map((m, i) => [m, i]));
  const threats = THREATS.map((t) => {
    const o = file.threats[t.id] ?? {};
    return { ...t, weight: (o.likelihood ?? t.likelihood) * (o.impact ?? t.impact) };
  });
  const inst: Instance = {
    costs: items.map((m) => (costOf.get(m) as { cpuHours: number }).cpuHours),
    weights: threats.map((t) => t.weight),
    eff: items.map((m) =>
      threats.map((t) => EFFECTS.find((e) => e.threat === t.id && e.measure === m)?.e ?? 0),
    ),
    deps: items.map((m) => depsOf(m).map((d) => index.get(d)!)),
    required: [...closure].map((m) => index.get(m)!),
    budget,
  };
  let best: Solution;
  try {
    best = solveExact(inst);
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'ERR_PLAN_INFEASIBLE') {
      throw new BulwarkError(
        'ERR_PLAN_INFEASIBLE',
        `${profiles.map((p) => p.name).join(' + ') || 'the required measures'}: ${e.message}; raise the budget or change the profiles`,
        { details: e.details },
      );
    }
    throw e;
  }
  const greedy = solveGreedy(inst);
  const totalAvailable = inst.costs.reduce((a, b) => a + b, 0);
  const frontier = paretoFrontier(inst, Math.max(totalAvailable, budget));
  const totalRisk = threats.reduce((a, t) => a + t.weight, 0);
  const ids = (s: readonly number[]) => s.map((i) => items[i]!);

  const chosenSet = new Set(best.items);
  const requiredBy = (m: string) => required.filter((r) => r.measure === m).map((r) => r.because);
  const chosen: Explained[] = best.items.map((i) => {
    const m = items[i]!;
    const without = best.items.filter((j) => j !== i);
    const marginal = best.value - riskReductionOf(inst, without);
    const reasons = requiredBy(m).filter((b) => !b.endsWith(' depends on it'));
    const dependents = best.items.filter((j) => inst.deps[j]!.includes(i)).map((j) => items[j]!);
    if (dependents.length > 0) reasons.push(`needed by ${dependents.join(', ')}`);
    if (marginal > 0)
      reasons.push(`dropping it alone would give up ${pct(marginal / totalRisk)} of the total risk`);
    return { measure: m, name: nameOf(m), cost: inst.costs[i]!, marginal, reasons };
  });
  const notChosen: Explained[] = items
    .map((m, i) => [m, i] as const)
    .filter(([, i]) => !chosenSet.has(i))
    .map(([m, i]) => {
      const add = requiredClosure({ ...inst, required: [i] }).filter((j) => !chosenSet.has(j));
      const addCost = add.reduce((a, j) => a + inst.costs[j]!, 0);
      const gain = riskReductionOf(inst, [...best.items, ...add]) - best.value;
      const reasons: string[] = [];
      if (gain <= 1e-12)
        reasons.push('adds no risk reduction to the choice (its threats are covered or unweighted)');
      else if (best.cost + addCost > budget + 1e-9) {
        reasons.push(
          `adding it${
            add.length > 1
              ? ` with ${add
                  .filter((j) => j !== i)
                  .map((j) => items[j])
                  .join(', ')}`
              : ''
          } costs ${num(addCost)} more than the ${num(budget - best.cost)} left; the budget buys more risk reduction elsewhere`,
        );
      }
      if (reasons.length === 0) reasons.push('the exact optimum does not include it');
      return { measure: m, name: nameOf(m), cost: inst.costs[i]!, marginal: gain, reasons };
    });

  return {
    unit: 'CPU-hours/month',
    budget,
    profiles: profiles.map((p) => p.id),
    totalRisk,
    chosen,
    notChosen,
    cost: best.cost,
    riskReduction: best.value,
    riskReductionShare: totalRisk > 0 ? best.value / totalRisk : 0,
    ...(file.pricePerCpuHour !== undefined
      ? {
          money: {
            currency: file.currency,
            pricePerCpuHour: file.pricePerCpuHour,
            cost: best.cost * file.pricePerCpuHour,
            budget: budget * file.pricePerCpuHour,
          },
        }
      : {}),
    required: required.filter(
      (r, k) => required.findIndex((x) => x.measure === r.measure && x.because === r.because) === k,
    ),
    unavailable,
    costs,
    threats: threats.map((t, ti) => {
      let keep = 1;
      const coveredBy: string[] = [];
      for (const i of best.items) {
        const e = inst.eff[i]![ti]!;
        if (e > 0) coveredBy.push(items[i]!);
        keep *= 1 - e;
      }
      return { threat: t.id, name: t.name, weight: t.weight, residualShare: keep, coveredBy };
    }),
    greedy: {
      measures: ids(greedy.items),
      cost: greedy.cost,
      riskReduction: greedy.value,
      lossVsOptimal: best.value - greedy.value,
    },
    frontier: frontier.map((p) => ({
      cost: p.cost,
      riskReduction: p.value,
      share: totalRisk > 0 ? p.value / totalRisk : 0,
      measures: ids(p.items),
    })),
    solver: { method: 'branch-and-bound', nodes: best.nodes, items: items.length },
  };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)} %`;
}
function num(x: number): string {
  return Number(x.toPrecision(4)).toString();
}
