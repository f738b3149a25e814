import { BulwarkError } from '../core/index.js';

/**
 * The planner's optimiser: choose a set of measures that maximises risk reduction under a budget, with
 * required measures and dependencies ("A needs B").
 *
 * Risk reduction of a set S is Σ_t w_t · (1 − Π_{m∈S} (1 − e_{t,m})): threat t with weight w_t keeps the
 * fraction of its risk that every chosen measure lets through (measures act independently). This is a
 * monotone submodular function, so the problem is a submodular 0/1 knapsack with precedence
 * constraints. With one measure per threat and e = 1 it is exactly the classic 0/1 knapsack.
 *
 * `solveExact` is branch and bound (Land & Doig 1960): items are decided in a topological order of the
 * dependencies (a measure can be taken only once its prerequisites are taken), include first; the
 * bound at a node is value(S) + the fractional-knapsack optimum of the remaining items' marginal gains
 * given S. It is valid because for monotone submodular f, f(S ∪ R) ≤ f(S) + Σ_{r∈R} [f(S ∪ {r}) − f(S)]
 * (Nemhauser, Wolsey & Fisher 1978), and the fractional knapsack bounds every R that fits. The result
 * is optimal: the maximum value, and among sets of that value the cheapest. `greedy` is the article's
 * rule (best benefit/cost first, take what fits), kept to show where it loses.
 */

export interface Instance {
  /** Item costs (finite, >= 0). */
  costs: readonly number[];
  /** Threat weights (>= 0). */
  weights: readonly number[];
  /** eff[i][t] in [0, 1]: the fraction of threat t's risk item i removes on its own. */
  eff: ReadonlyArray<readonly number[]>;
  /** deps[i]: items that must be chosen for item i to be chosen. */
  deps: ReadonlyArray<readonly number[]>;
  /** Items that must be chosen (their dependencies are added). */
  required: readonly number[];
  budget: number;
}

export interface Solution {
  /** Chosen items, ascending. */
  items: number[];
  value: number;
  cost: number;
  /** Branch-and-bound nodes visited (0 for other methods). */
  nodes: number;
}

const TOL = 1e-9;

function check(inst: Instance): void {
  const n = inst.costs.length;
  if (inst.eff.length !== n || inst.deps.length !== n) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      'plan instance: costs, eff and deps must have one entry per item',
    );
  }
  for (let i = 0; i < n; i++) {
    const c = inst.costs[i]!;
    if (!Number.isFinite(c) || c < 0)
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `plan instance: cost of item ${i} must be finite and >= 0`,
      );
    if (inst.eff[i]!.length !== inst.weights.length) {
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `plan instance: eff[${i}] must have one entry per threat`,
      );
    }
    for (const e of inst.eff[i]!)
      if (!(e >= 0 && e <= 1))
        throw new BulwarkError('ERR_INVALID_ARGUMENT', `plan instance: eff[${i}] must be in [0, 1]`);
    for (const d of inst.deps[i]!)
      if (!(Number.isInteger(d) && d >= 0 && d < n && d !== i))
        throw new BulwarkError('ERR_INVALID_ARGUMENT', `plan instance: bad dependency of item ${i}`);
  }
  if (!(inst.budget >= 0))
    throw new BulwarkError('ERR_INVALID_ARGUMENT', 'plan instance: budget must be >= 0');
}

/** Risk reduction of a set of items. */
export function riskReductionOf(inst: Instance, items: readonly number[]): number {
  let v = 0;
  for (let t = 0; t < inst.weights.length; t++) {
    let keep = 1;
    for (const i of items) keep *= 1 - inst.eff[i]![t]!;
    v += inst.weights[t]! * (1 - keep);
  }
  return v;
}

export function costOf(inst: Instance, items: readonly number[]): number {
  let c = 0;
  for (const i of items) c += inst.costs[i]!;
  return c;
}

/** The required items and, transitively, their dependencies. */
export function requiredClosure(inst: Instance): number[] {
  const out = new Set<number>();
  const stack = [...inst.required];
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (out.has(i)) continue;
    out.add(i);
    stack.push(...inst.deps[i]!);
  }
  return [...out].sort((a, b) => a - b);
}

/** A topological order of the items by their dependencies (Kahn), preferring `priority` (higher first). */
function topoOrder(inst: Instance, items: readonly number[], priority: (i: number) => number): number[] {
  const set = new Set(items);
  const indeg = new Map<number, number>();
  for (const i of items) indeg.set(i, inst.deps[i]!.filter((d) => set.has(d)).length);
  const out: number[] = [];
  const ready = items.filter((i) => indeg.get(i) === 0);
  while (ready.length > 0) {
    ready.sort((a, b) => priority(b) - priority(a) || a - b);
    const i = ready.shift()!;
    out.push(i);
    for (const j of items) {
      if (inst.deps[j]!.includes(i)) {
        const k = indeg.get(j)! - 1;
        indeg.set(j, k);
        if (k === 0) ready.push(j);
      }
    }
  }
  if (out.length !== items.length) {
    throw new BulwarkError('ERR_INVALID_ARGUMENT', 'plan instance: the dependencies have a cycle');
  }
  return out;
}

function better(v: number, c: number, bestV: number, bestC: number): boolean {
  return (
    v > bestV + TOL * Math.max(1, Math.abs(bestV)) ||
    (Math.abs(v - bestV) <= TOL * Math.max(1, Math.abs(bestV)) && c < bestC - TOL)
  );
}

/** Thrown as ERR_PLAN_INFEASIBLE when the required measures alone exceed the budget. */
export function infeasible(requiredCost: number, budget: number): BulwarkError {
  return new BulwarkError(
    'ERR_PLAN_INFEASIBLE',
    `the required measures and their dependencies cost ${fmt(requiredCost)}, above the budget ${fmt(budget)}`,
    { details: { requiredCost, budget } },
  );
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}

/** Exact optimum by branch and bound (see the module comment). */
export function solveExact(inst: Instance): Solution {
  check(inst);
  const n = inst.costs.length;
  const T = inst.weights.length;
  const base = requiredClosure(inst);
  const baseCost = costOf(inst, base);
  if (baseCost > inst.budget + TOL) throw infeasible(baseCost, inst.budget);
  const inBase = new Set(base);
  const free = [...Array(n).keys()].filter((i) => !inBase.has(i));
  // Standalone gain per cost (for the order only; any order is correct).
  const keep0 = new Float64Array(T).fill(1);
  for (const i of base) for (let t = 0; t < T; t++) keep0[t]! *= 1 - inst.eff[i]![t]!;
  const gain = (i: number, keep: Float64Array): number => {
    let g = 0;
    for (let t = 0; t < T; t++) g += inst.weights[t]! * keep[t]! * inst.eff[i]![t]!;
    return g;
  };
  const ratio = (i: number) =>
    inst.costs[i]! === 0 ? Number.POSITIVE_INFINITY : gain(i, keep0) / inst.costs[i]!;
  const order = topoOrder(inst, free, ratio);

  const chosen = new Set<number>(base);
  let bestItems = [...base];
  let bestValue = riskReductionOf(inst, base);
  let bestCost = baseCost;
  let nodes = 0;

  const bound = (k: number, keep: Float64Array, room: number): number => {
    // Fractional knapsack over the marginal gains of the items not yet decided.
    const cand: Array<[number, number]> = [];
    let free0 = 0;
    for (let j = k; j < order.length; j++) {
      const i = order[j]!;
      const g = gain(i, keep);
      if (g <= 0) continue;
      if (inst.costs[i]! === 0) free0 += g;
      else cand.push([g, inst.costs[i]!]);
    }
    cand.sort((a, b) => b[0] / b[1] - a[0] / a[1]);
    let b = free0;
    let r = room;
    for (const [g, c] of cand) {
      if (c <= r) {
        b += g;
        r -= c;
      } else {
        b += (g * r) / c;
        break;
      }
    }
    return b;
  };

  const dfs = (k: number, keep: Float64Array, value: number, cost: number): void => {
    nodes++;
    if (better(value, cost, bestValue, bestCost)) {
      bestValue = value;
      bestCost = cost;
      bestItems = [...chosen].sort((a, b) => a - b);
    }
    if (k === order.length) return;
    const ub = value + bound(k, keep, inst.budget - cost);
    const tol = TOL * Math.max(1, Math.abs(bestValue));
    if (ub < bestValue - tol) return;
    if (ub <= bestValue + tol && cost >= bestCost - TOL) return;
    const i = order[k]!;
    const c = inst.costs[i]!;
    if (cost + c <= inst.budget + TOL && inst.deps[i]!.every((d) => chosen.has(d))) {
      const g = gain(i, keep);
      const next = new Float64Array(keep);
      for (let t = 0; t < T; t++) next[t]! *= 1 - inst.eff[i]![t]!;
      chosen.add(i);
      dfs(k + 1, next, value + g, cost + c);
      chosen.delete(i);
    }
    dfs(k + 1, keep, value, cost);
  };
  dfs(0, keep0, bestValue, bestCost);
  return { items: bestItems, value: bestValue, cost: bestCost, nodes };
}

/** Exhaustive search over every subset (for tests and tiny instances; n <= 20). */
export function solveBruteForce(inst: Instance): Solution {
  check(inst);
  const n = inst.costs.length;
  if (n > 20) throw new BulwarkError('ERR_INVALID_ARGUMENT', 'brute force: at most 20 items');
  const base = requiredClosure(inst);
  const baseCost = costOf(inst, base);
  if (baseCost > inst.budget + TOL) throw infeasible(baseCost, inst.budget);
  let best: Solution | null = null;
  for (let mask = 0; mask < 1 << n; mask++) {
    const items: number[] = [];
    for (let i = 0; i < n; i++) if (mask & (1 << i)) items.push(i);
    if (!inst.required.every((r) => mask & (1 << r))) continue;
    if (!items.every((i) => inst.deps[i]!.every((d) => mask & (1 << d)))) continue;
    const c = costOf(inst, items);
    if (c > inst.budget + TOL) continue;
    const v = riskReductionOf(inst, items);
    if (best === null || better(v, c, best.value, best.cost)) best = { items, value: v, cost: c, nodes: 0 };
  }
  return best!;
}

/**
 * The article's greedy rule: required measures first, then by standalone benefit/cost, highest first,
 * taking each measure (with any dependency it still lacks) when it fits. Not optimal.
 */
export function solveGreedy(inst: Instance): Solution {
  check(inst);
  const base = requiredClosure(inst);
  const baseCost = costOf(inst, base);
  if (baseCost > inst.budget + TOL) throw infeasible(baseCost, inst.budget);
  const chosen = new Set(base);
  let cost = baseCost;
  const standalone = (i: number) => riskReductionOf(inst, [i]);
  const order = [...Array(inst.costs.length).keys()]
    .filter((i) => !chosen.has(i))
    .sort((a, b) => {
      const ra = inst.costs[a] === 0 ? Number.POSITIVE_INFINITY : standalone(a) / inst.costs[a]!;
      const rb = inst.costs[b] === 0 ? Number.POSITIVE_INFINITY : standalone(b) / inst.costs[b]!;
      return rb - ra || a - b;
    });
  for (const i of order) {
    if (chosen.has(i)) continue;
    const add = requiredClosure({ ...inst, required: [i] }).filter((j) => !chosen.has(j));
    const c = costOf(inst, add);
    if (cost + c <= inst.budget + TOL) {
      for (const j of add) chosen.add(j);
      cost += c;
    }
  }
  const items = [...chosen].sort((a, b) => a - b);
  return { items, value: riskReductionOf(inst, items), cost, nodes: 0 };
}

/**
 * The Pareto frontier of cost against risk reduction over feasible sets: repeatedly solve exactly
 * with the budget just below the last optimum's cost. Each point is the best value for any budget in
 * [its cost, the next point's cost); ascending cost.
 */
export function paretoFrontier(inst: Instance, maxBudget?: number): Solution[] {
  const points: Solution[] = [];
  let budget = maxBudget ?? inst.costs.reduce((a, b) => a + b, 0);
  const floor = costOf(inst, requiredClosure(inst));
  if (budget < floor - TOL) return [];
  // Costs closer than 1e-6 (relative) are one point: the solver compares budgets with a 1e-9 tolerance.
  for (;;) {
    const s = solveExact({ ...inst, budget });
    const last = points[points.length - 1];
    if (last !== undefined && s.cost >= last.cost) break; // no progress (cannot happen; never loop)
    points.push(s);
    if (s.cost <= floor + TOL) break;
    budget = s.cost - Math.max(1e-6, Math.abs(s.cost) * 1e-6);
    if (budget < floor - TOL) break;
  }
  return points.reverse();
}
