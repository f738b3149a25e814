import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import {
  type Instance,
  paretoFrontier,
  requiredClosure,
  riskReductionOf,
  type Solution,
  solveBruteForce,
  solveExact,
  solveGreedy,
} from '../../src/plan/index.js';

/** A random instance: n items, T threats, a DAG of dependencies (edges only to lower indices), some required. */
function randomInstance(rng: SeededRng, n: number, T: number): Instance {
  const costs = Array.from({ length: n }, () =>
    rng.bernoulli(0.1) ? 0 : Math.round(rng.uniform(0.5, 10) * 100) / 100,
  );
  const weights = Array.from({ length: T }, () => rng.intBetween(1, 25));
  const eff = Array.from({ length: n }, () =>
    Array.from({ length: T }, () => (rng.bernoulli(0.35) ? Math.round(rng.uniform(0.05, 1) * 100) / 100 : 0)),
  );
  const deps = Array.from({ length: n }, (_, i) => {
    const d: number[] = [];
    for (let j = 0; j < i; j++) if (rng.bernoulli(0.15)) d.push(j);
    return d;
  });
  const required = Array.from({ length: n }, (_, i) => i).filter(() => rng.bernoulli(0.1));
  const total = costs.reduce((a, b) => a + b, 0);
  const budget = Math.round(rng.uniform(0.1, 0.8) * total * 100) / 100;
  return { costs, weights, eff, deps, required, budget };
}

function feasible(inst: Instance, s: Solution): void {
  const set = new Set(s.items);
  for (const r of inst.required) assert.ok(set.has(r), `required ${r} chosen`);
  for (const i of s.items)
    for (const d of inst.deps[i]!) assert.ok(set.has(d), `dependency ${d} of ${i} chosen`);
  assert.ok(s.cost <= inst.budget + 1e-9, 'within budget');
  assert.ok(Math.abs(s.value - riskReductionOf(inst, s.items)) < 1e-9, 'value is the value of the set');
}

describe('plan solver', () => {
  it('branch and bound equals brute force on 300 seeded random instances (deps, required, zero costs)', () => {
    const rng = new SeededRng(20261126);
    let infeasible = 0;
    let greedyLost = 0;
    for (let k = 0; k < 300; k++) {
      const inst = randomInstance(rng, rng.intBetween(1, 12), rng.intBetween(1, 6));
      let brute: Solution;
      try {
        brute = solveBruteForce(inst);
      } catch (e) {
        assert.ok(isBulwarkError(e, 'ERR_PLAN_INFEASIBLE'));
        assert.throws(
          () => solveExact(inst),
          (x: unknown) => isBulwarkError(x, 'ERR_PLAN_INFEASIBLE'),
        );
        infeasible++;
        continue;
      }
      const exact = solveExact(inst);
      feasible(inst, exact);
      assert.ok(
        Math.abs(exact.value - brute.value) < 1e-9,
        `instance ${k}: exact ${exact.value} vs brute ${brute.value}`,
      );
      assert.ok(exact.cost <= brute.cost + 1e-9, `instance ${k}: cheapest among the optimal sets`);
      const g = solveGreedy(inst);
      feasible(inst, g);
      assert.ok(g.value <= exact.value + 1e-9);
      if (g.value < exact.value - 1e-9) greedyLost++;
    }
    // The generator makes both kinds of case, so the assertions above were exercised. The counts are
    // pinned (the RNG is seeded) because docs/plan.md quotes them: 257 feasible, greedy short on 42.
    assert.equal(300 - infeasible, 257, 'feasible instances');
    assert.equal(greedyLost, 42, 'instances where greedy falls short of the optimum');
  });

  it("the article's own numbers: greedy (benefit/cost order) loses at budget 0.7; the exact choice does not", () => {
    // SecurityCostOptimizer's options, one threat per measure (additive benefits, the article's model).
    const names = [
      'data_encryption',
      'differential_privacy',
      'model_encryption',
      'adversarial_training',
      'tee_deployment',
    ];
    const costs = [0.15, 0.25, 0.1, 0.35, 1.0];
    const benefit = [0.8, 0.95, 0.6, 0.85, 0.99];
    const inst: Instance = {
      costs,
      weights: benefit,
      eff: names.map((_, i) => names.map((__, t) => (i === t ? 1 : 0))),
      deps: names.map(() => []),
      required: [],
      budget: 0.7,
    };
    const g = solveGreedy(inst);
    const e = solveExact(inst);
    const b = solveBruteForce(inst);
    assert.deepEqual(
      g.items.map((i) => names[i]),
      ['data_encryption', 'differential_privacy', 'model_encryption'],
    );
    assert.ok(Math.abs(g.value - 2.35) < 1e-12);
    assert.deepEqual(
      e.items.map((i) => names[i]),
      ['differential_privacy', 'model_encryption', 'adversarial_training'],
    );
    assert.ok(Math.abs(e.value - 2.4) < 1e-12);
    assert.deepEqual(e.items, b.items);
  });

  it('dependencies are respected even when the dependent alone is the best buy', () => {
    // Item 1 removes all of a heavy threat but needs item 0, which costs too much alongside it.
    const inst: Instance = {
      costs: [6, 2, 3],
      weights: [10, 4],
      eff: [
        [0, 0],
        [1, 0],
        [0, 1],
      ],
      deps: [[], [0], []],
      required: [],
      budget: 7,
    };
    const s = solveExact(inst);
    assert.deepEqual(s.items, [2]);
    assert.deepEqual(solveBruteForce(inst).items, [2]);
    assert.deepEqual(solveExact({ ...inst, budget: 8 }).items, [0, 1]);
    assert.deepEqual(requiredClosure({ ...inst, required: [1] }), [0, 1]);
  });

  it('infeasible required set → ERR_PLAN_INFEASIBLE naming the cheapest compliant cost', () => {
    const inst: Instance = {
      costs: [5, 3],
      weights: [1],
      eff: [[0.5], [0.5]],
      deps: [[], [0]],
      required: [1],
      budget: 7,
    };
    assert.throws(
      () => solveExact(inst),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_PLAN_INFEASIBLE') && /cost 8, above the budget 7/.test(e.message),
    );
  });

  it('Pareto frontier: strictly increasing cost and value, each point optimal at its budget and at budgets up to the next', () => {
    const rng = new SeededRng(7);
    for (let k = 0; k < 30; k++) {
      const inst: Instance = {
        ...randomInstance(rng, rng.intBetween(2, 10), rng.intBetween(1, 5)),
        required: [],
      };
      const f = paretoFrontier(inst);
      assert.ok(f.length >= 1);
      for (let i = 1; i < f.length; i++) {
        assert.ok(f[i]!.cost > f[i - 1]!.cost, 'cost increases');
        assert.ok(f[i]!.value > f[i - 1]!.value + 1e-12, 'value increases');
      }
      for (const p of f) {
        feasible({ ...inst, budget: p.cost }, p);
        assert.ok(Math.abs(solveBruteForce({ ...inst, budget: p.cost }).value - p.value) < 1e-9);
      }
      // A random budget's optimum is the frontier's step value there.
      const b = rng.uniform(
        0,
        inst.costs.reduce((a, c) => a + c, 0),
      );
      const step = [...f].reverse().find((p) => p.cost <= b + 1e-9);
      assert.ok(Math.abs(solveBruteForce({ ...inst, budget: b }).value - (step?.value ?? 0)) < 1e-9);
    }
  });

  it('rejects malformed instances up front', () => {
    const ok: Instance = { costs: [1], weights: [1], eff: [[0.5]], deps: [[]], required: [], budget: 1 };
    for (const bad of [
      { ...ok, costs: [-1] },
      { ...ok, eff: [[1.5]] },
      { ...ok, deps: [[0]] },
      { ...ok, budget: Number.NaN },
      { ...ok, eff: [[0.5, 0.1]] },
    ]) {
      assert.throws(
        () => solveExact(bad),
        (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT'),
      );
    }
    const cyclic: Instance = {
      costs: [1, 1],
      weights: [1],
      eff: [[0.5], [0.5]],
      deps: [[1], [0]],
      required: [],
      budget: 5,
    };
    assert.throws(
      () => solveExact(cyclic),
      (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT') && /cycle/.test(e.message),
    );
  });
});
