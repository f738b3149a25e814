import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { isBulwarkError } from '../../src/core/index.js';
import {
  type BenchSet,
  defaultPlanFile,
  EFFECTS,
  MEASURES,
  makePlan,
  measuredCosts,
  PROFILES,
  parseBenchResult,
  planFileSchema,
  readBenchResults,
  solveBruteForce,
  THREATS,
} from '../../src/plan/index.js';
import { ROOT, runBulwark, runBulwarkInProcess } from '../helpers/cli.js';

const RESULTS = join(ROOT, 'bench', 'results');
const PLAN = join(import.meta.dirname, 'fixtures', 'plan.yaml');
const planFile = () => planFileSchema.parse(parse(readFileSync(PLAN, 'utf8')));

// biome-ignore lint/suspicious/noExplicitAny: reading bench JSON in assertions
type J = any;
const json = (name: string): J => JSON.parse(readFileSync(join(RESULTS, `${name}.json`), 'utf8'));
const median = (j: J, id: string): number => j.figures.find((f: J) => f.id === id).median;

describe('plan: measured costs', async () => {
  const bench = await readBenchResults(RESULTS);
  const w = {
    recordsPerMonth: 1e6,
    recordReadsPerMonth: 2e6,
    trainingCpuHoursPerMonth: 10,
    requestsPerMonth: 1e6,
    auditEventsPerMonth: 3e6,
    auditStore: 'postgres' as const,
    modelSizeMB: 50,
    modelLoadsPerMonth: 200,
    modelPublishesPerMonth: 3,
  };
  const costs = new Map(measuredCosts(bench, w).map((c) => [c.measure, c]));

  it('each measured cost is the documented formula over the committed figures', () => {
    const crypto = json('crypto');
    const fe = costs.get('field-encryption') as J;
    assert.equal(fe.status, 'measured');
    const expectFe =
      (1e6 / median(crypto, 'fields.encrypt.bulwark') + 2e6 / median(crypto, 'fields.decrypt.bulwark')) /
      3600;
    assert.ok(Math.abs(fe.cpuHours - expectFe) < 1e-12);
    const dp = costs.get('dp-training') as J;
    assert.ok(
      Math.abs(
        dp.cpuHours -
          10 * (median(json('dp'), 'mnist.dpsgd.epoch_s') / median(json('ml-core'), 'mnist.epoch_s') - 1),
      ) < 1e-12,
    );
    const robust = json('robust');
    const at = costs.get('adversarial-training') as J;
    assert.ok(
      Math.abs(
        at.cpuHours -
          10 * (median(robust, 'mnist.at0.1.epoch_s') / robust.facts['mnist.bulwark.normalEpochSeconds'] - 1),
      ) < 1e-12,
    );
    const audit = costs.get('audit-log') as J;
    assert.ok(Math.abs(audit.cpuHours - 3e6 / median(json('audit'), 'pg.append') / 3600) < 1e-12);
    for (const c of [fe, dp, at, audit]) {
      assert.ok(c.figures.length > 0 && c.figures.every((f: J) => typeof f.value === 'number'));
    }
  });

  it('measures with no committed figures are missing, with the reason — never estimated', () => {
    for (const m of ['budget-ledger', 'k8s-hardening']) assert.equal(costs.get(m)!.status, 'missing');
    for (const [m, b] of [
      ['gateway', 'gateway'],
      ['input-validation', 'gateway'],
      ['detectors', 'gateway'],
    ] as const) {
      const c = costs.get(m)!;
      if (!bench.has(b)) {
        assert.equal(c.status, 'missing');
        assert.match(
          (c as { reason: string }).reason,
          new RegExp(`bench/results/${b}\\.json is not committed`),
        );
      }
    }
    // Removing a file makes its measure missing.
    const without = new Map(bench) as Map<string, J>;
    without.delete('crypto');
    const c = measuredCosts(without as BenchSet, w).find((x) => x.measure === 'field-encryption')!;
    assert.deepEqual(c, {
      measure: 'field-encryption',
      status: 'missing',
      reason: 'bench/results/crypto.json is not committed',
    });
  });

  it('model package: (loads × size × extra load time + publishes × size × protect time) per 100 MB; TEE stays missing', () => {
    const crafted = parseBenchResult(
      JSON.stringify({
        benchmark: 'model-package',
        figures: [
          { id: '100mb.load', median: 2 },
          { id: '100mb.plain_load', median: 0.5 },
          { id: '100mb.protect', median: 1 },
        ],
        facts: { '100mb.overhead_percent': 0.005 },
      }),
      'model-package.json',
    );
    const attest = parseBenchResult('{"benchmark":"attest","figures":[]}', 'attest.json');
    const set = new Map([...bench, ['model-package', crafted], ['attest', attest]]);
    const all = measuredCosts(set, w);
    const mp = all.find((c) => c.measure === 'model-package') as J;
    assert.equal(mp.status, 'measured');
    assert.ok(Math.abs(mp.cpuHours - (200 * 50 * 1.5 + 3 * 50 * 1) / 100 / 3600) < 1e-15);
    assert.deepEqual(mp.effects, ['package size +0.005 % (100 MB model)']);
    const tee = all.find((c) => c.measure === 'tee') as J;
    assert.equal(tee.status, 'missing');
    assert.match(tee.reason, /not the enclave's execution overhead/);
    // A result file without the figure is missing with that reason.
    const partial = parseBenchResult(
      '{"benchmark":"model-package","figures":[{"id":"100mb.load","median":2}]}',
      'm.json',
    );
    const miss = measuredCosts(new Map([...bench, ['model-package', partial]]), w).find(
      (c) => c.measure === 'model-package',
    ) as J;
    assert.match(miss.reason, /has no figure 100mb\.plain_load/);
  });

  it('gateway measures: TLS time per request + auth/policy/limit stages; validation; detectors', () => {
    const crafted = parseBenchResult(
      JSON.stringify({
        benchmark: 'gateway',
        figures: [
          { id: 'off.rps', median: 1000 },
          { id: 'tls.rps', median: 800 },
        ],
        facts: {
          'full.stage_means_us': JSON.stringify({
            authenticate: 60,
            authorize: 10,
            limit: 5,
            validate: 3,
            detect: 7,
            extraction: 8,
            audit: 3000,
          }),
        },
      }),
      'gateway.json',
    );
    const all = new Map(
      measuredCosts(new Map([...bench, ['gateway', crafted]]), w).map((c) => [c.measure, c as J]),
    );
    const perMonth = (us: number) => (1e6 * us) / 1e6 / 3600;
    assert.ok(Math.abs(all.get('gateway').cpuHours - perMonth(250 + 75)) < 1e-12);
    assert.ok(Math.abs(all.get('input-validation').cpuHours - perMonth(3)) < 1e-12);
    assert.ok(Math.abs(all.get('detectors').cpuHours - perMonth(15)) < 1e-12);
    const noStages = parseBenchResult(
      '{"benchmark":"gateway","figures":[{"id":"off.rps","median":1},{"id":"tls.rps","median":1}]}',
      'g.json',
    );
    const m = measuredCosts(new Map([...bench, ['gateway', noStages]]), w).find(
      (c) => c.measure === 'detectors',
    ) as J;
    assert.equal(m.status, 'missing');
    assert.match(m.reason, /no fact full\.sequential_stage_means_us or full\.stage_means_us/);
  });

  it('gateway costs from the committed gateway.json, when there, are its sequential stage means', () => {
    const g = bench.get('gateway');
    if (!g) return;
    const st = JSON.parse(String(g.facts['full.sequential_stage_means_us']));
    const c = new Map(measuredCosts(bench, w).map((x) => [x.measure, x as J]));
    assert.ok(Math.abs(c.get('input-validation').cpuHours - (1e6 * st.validate) / 1e6 / 3600) < 1e-12);
    assert.ok(
      Math.abs(c.get('detectors').cpuHours - (1e6 * (st.detect + st.extraction)) / 1e6 / 3600) < 1e-12,
    );
    const tls = 1e6 / g.figures.get('tls.rps')!.median - 1e6 / g.figures.get('off.rps')!.median;
    const gw = Math.max(0, tls) + st.authenticate + st.authorize + st.limit;
    assert.ok(Math.abs(c.get('gateway').cpuHours - (1e6 * gw) / 1e6 / 3600) < 1e-12);
  });

  it('a malformed result file is refused with ERR_BENCH_RESULTS_INVALID; a null median is a figure without a value', () => {
    const r = parseBenchResult(
      '{"benchmark":"x","figures":[{"id":"a","median":null},{"id":"b","median":2}]}',
      'x.json',
    );
    assert.deepEqual([...r.figures.keys()], ['b']);
    assert.deepEqual([...r.empty], ['a']);
    for (const text of [
      '{',
      '[]',
      '{"benchmark":"x"}',
      '{"benchmark":"x","figures":[{"id":"a","median":"1"}]}',
      '{"benchmark":"x","figures":[{"median":1}]}',
    ]) {
      assert.throws(
        () => parseBenchResult(text, 'x.json'),
        (e: unknown) => isBulwarkError(e, 'ERR_BENCH_RESULTS_INVALID'),
      );
    }
  });

  it('measured benefit weights of the threat model agree with the committed robust.json', () => {
    const f = robustFacts();
    const e = (t: string, m: string) => EFFECTS.find((x) => x.threat === t && x.measure === m)!;
    const lira = 1 - (f['mia.DP-SGD eps 4.lira.auc'] - 0.5) / (f['mia.non-private.lira.auc'] - 0.5);
    assert.ok(Math.abs(e('membership-inference', 'dp-training').e - lira) < 0.01, `dp ${lira}`);
    const pgd =
      1 -
      f['claims.mnist.PGD-trained eps 0.1.pgd.eps0.1.successRate'] /
        f['claims.mnist.normal.pgd.eps0.1.successRate'];
    assert.ok(Math.abs(e('evasion', 'adversarial-training').e - pgd) < 0.01, `at ${pgd}`);
    const det = 'claims.mnist.detector.Mahalanobis (inputs).';
    const caught =
      (f[`${det}PGD.caught%`] +
        f[`${det}SQUARE.caught%`] +
        f[`${det}adaptive PGD (evades the detector).caught%`]) /
      300;
    assert.ok(Math.abs(e('evasion', 'detectors').e - caught) < 0.01, `detectors ${caught}`);
    for (const x of EFFECTS) assert.ok(x.e >= 0 && x.e <= 1);
  });
});

function robustFacts(): J {
  return json('robust').facts;
}

describe('plan: choice, compliance, dependencies', async () => {
  const bench = await readBenchResults(RESULTS);

  it('the example plan: compliant, within budget, dependencies closed, equal to brute force over the same costs', () => {
    const file = planFile();
    const p = makePlan(file, bench);
    const chosen = new Set(p.chosen.map((c) => c.measure));
    assert.ok(p.cost <= p.budget + 1e-9);
    for (const prof of PROFILES.filter((x) => file.profiles.includes(x.id))) {
      for (const r of prof.requires) assert.ok(chosen.has(r.measure), `${prof.id} requires ${r.measure}`);
    }
    for (const m of MEASURES)
      if (chosen.has(m.id)) for (const d of m.dependsOn) assert.ok(chosen.has(d), `${m.id} needs ${d}`);
    // Unavailable measures are never chosen.
    for (const u of p.unavailable) assert.ok(!chosen.has(u.measure));
    // The same instance by exhaustive search.
    const items = [...p.chosen, ...p.notChosen]
      .map((c) => c.measure)
      .sort((a, b) => MEASURES.findIndex((m) => m.id === a) - MEASURES.findIndex((m) => m.id === b));
    const costOf = new Map([...p.chosen, ...p.notChosen].map((c) => [c.measure, c.cost]));
    const threats = THREATS;
    const brute = solveBruteForce({
      costs: items.map((m) => costOf.get(m)!),
      weights: threats.map((t) => t.likelihood * t.impact),
      eff: items.map((m) =>
        threats.map((t) => EFFECTS.find((e) => e.threat === t.id && e.measure === m)?.e ?? 0),
      ),
      deps: items.map((m) => MEASURES.find((x) => x.id === m)!.dependsOn.map((d) => items.indexOf(d))),
      required: items.filter((m) => p.required.some((r) => r.measure === m)).map((m) => items.indexOf(m)),
      budget: p.budget,
    });
    assert.ok(Math.abs(brute.value - p.riskReduction) < 1e-9);
    assert.deepEqual(brute.items.map((i) => items[i]).sort(), [...chosen].sort());
    // Every choice and non-choice is explained.
    for (const c of [...p.chosen, ...p.notChosen]) assert.ok(c.reasons.length > 0, c.measure);
    assert.ok(p.frontier.length > 1);
    assert.ok(p.greedy.riskReduction <= p.riskReduction + 1e-9);
  });

  it('compliance that the budget cannot pay for → ERR_PLAN_INFEASIBLE with the cheapest compliant cost', () => {
    // A budget far under the compliance floor whatever the machine the committed results came from
    // (field encryption alone costs over 0.1 CPU-hours a month at any measured rate so far).
    assert.throws(
      () => makePlan(planFile(), bench, { budget: 0.01 }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_PLAN_INFEASIBLE') &&
        /PCI DSS v4\.0 \+ GDPR: .*cost [\d.]+, above the budget 0\.01/.test(e.message),
    );
  });

  it('a required measure without a measured or supplied cost → ERR_PLAN_COST_MISSING naming it', () => {
    const file = planFile();
    delete file.costs['k8s-hardening'];
    assert.throws(
      () => makePlan(file, bench),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_PLAN_COST_MISSING') &&
        /k8s-hardening is required .* supply costs\.k8s-hardening/.test(e.message),
    );
  });

  it('without a plan file: only measured measures compete, the others are listed as unavailable', () => {
    const p = makePlan(defaultPlanFile(), bench, { budget: 1000 });
    const unavailable = new Map(p.unavailable.map((u) => [u.measure, u.reason]));
    for (const m of ['budget-ledger', 'k8s-hardening', 'dp-training']) assert.ok(unavailable.has(m), m);
    assert.match(unavailable.get('dp-training')!, /depends on budget-ledger/);
    for (const c of p.chosen) assert.equal(p.costs.find((x) => x.measure === c.measure)!.status, 'measured');
  });

  it('threat overrides change the weights the optimiser uses', () => {
    const file = planFile();
    const base = makePlan(file, bench);
    file.threats = { evasion: { likelihood: 5, impact: 5 } };
    const p = makePlan(file, bench);
    assert.equal(p.threats.find((t) => t.threat === 'evasion')!.weight, 25);
    assert.equal(p.totalRisk, base.totalRisk + 25 - 16);
  });

  it('a supplied cost overrides a measured one and says so; exclude conflicts with require', () => {
    const file = planFile();
    file.costs['audit-log'] = { cpuHoursPerMonth: 1, source: 'ops estimate' };
    const p = makePlan(file, bench);
    const c = p.costs.find((x) => x.measure === 'audit-log') as J;
    assert.equal(c.status, 'supplied');
    assert.match(c.overrides, /^measured /);
    file.exclude = ['audit-log'];
    assert.throws(
      () => makePlan(file, bench),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_PLAN_INFEASIBLE') && /both required .* and excluded/.test(e.message),
    );
  });
});

describe('bulwark plan (CLI)', () => {
  it('--json and an HTML report with the frontier plot; infeasible exits 3; bad profile exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-plan-'));
    const report = join(dir, 'plan.html');
    const r = runBulwark(['--json', 'plan', '--plan', PLAN, '--report', report]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.unit, 'CPU-hours/month');
    assert.ok(j.chosen.length > 0 && j.frontier.length > 1);
    const html = readFileSync(report, 'utf8');
    for (const s of ['id="choice"', 'id="frontier"', 'id="costs"', 'id="threats"', '<svg', 'Pareto frontier'])
      assert.ok(html.includes(s), s);
    // The report never replaces the plan file it was made from, whatever --force says.
    const own = join(dir, 'own-plan.yaml');
    copyFileSync(PLAN, own);
    const self = await runBulwarkInProcess(['plan', '--plan', own, '--report', own, '--force']);
    assert.equal(self.code, 2, self.stderr);
    assert.match(self.stderr, /ERR_USAGE: --report \S+ is also an input/);
    assert.equal(readFileSync(own, 'utf8'), readFileSync(PLAN, 'utf8'));
    // A folder is refused before the work (it failed after it, ERR_IO EISDIR, exit 1).
    const folder = await runBulwarkInProcess(['plan', '--plan', PLAN, '--report', dir, '--force']);
    assert.equal(folder.code, 2, folder.stderr);
    assert.match(folder.stderr, /ERR_USAGE: --report \S+ is a folder; give a file path/);
    const bad = await runBulwarkInProcess(['plan', '--plan', PLAN, '--budget', '0.01']);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /^bulwark: ERR_PLAN_INFEASIBLE: /);
    const prof = await runBulwarkInProcess(['plan', '--budget', '5', '--profile', 'sox']);
    assert.equal(prof.code, 2);
    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, 'budget: 10\nrequire: [k8s-hardening]\n');
    const m = await runBulwarkInProcess(['plan', '--plan', missing]);
    assert.equal(m.code, 3);
    assert.match(m.stderr, /ERR_PLAN_COST_MISSING: .*is required/);
  });

  it('reads the results shipped with Bulwark whatever the working directory; --results reads another folder', async () => {
    // Run from a project folder with no bench/results: the same plan as from the repository root (it
    // used to be ERR_FILE_NOT_FOUND for <cwd>/bench/results).
    const elsewhere = mkdtempSync(join(tmpdir(), 'bulwark-plan-cwd-'));
    const fromRoot = runBulwark(['--json', 'plan', '--plan', PLAN]);
    const fromElsewhere = runBulwark(['--json', 'plan', '--plan', PLAN], { cwd: elsewhere });
    assert.equal(fromElsewhere.code, 0, fromElsewhere.stderr);
    assert.deepEqual(JSON.parse(fromElsewhere.stdout).chosen, JSON.parse(fromRoot.stdout).chosen);
    // An empty folder of results: every measured cost is missing, so a required measure cannot be costed.
    const empty = mkdtempSync(join(tmpdir(), 'bulwark-plan-empty-'));
    const none = await runBulwarkInProcess(
      ['plan', '--plan', PLAN, '--results', empty, '--budget', '5', '--profile', 'pci-dss'],
      {
        cwd: elsewhere,
      },
    );
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /ERR_PLAN_/);
    // The npm package ships the results the plan reads.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
    assert.ok(pkg.files.includes('bench/results/*.json'));
  });
});

describe('docs', () => {
  it('docs/threat-model.md lists every threat, measure, benefit weight, dependency and compliance clause', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'threat-model.md'), 'utf8');
    for (const t of THREATS)
      assert.ok(doc.includes(`| \`${t.id}\` | ${t.name} | ${t.likelihood} | ${t.impact} |`), t.id);
    for (const e of EFFECTS)
      assert.ok(
        doc.includes(`| \`${e.threat}\` | \`${e.measure}\` | ${e.e} | ${e.kind} |`),
        `${e.threat} × ${e.measure}`,
      );
    for (const m of MEASURES)
      assert.ok(
        doc.includes(`| \`${m.id}\` | ${m.dependsOn.map((d) => `\`${d}\``).join(', ') || '—'} |`),
        m.id,
      );
    for (const p of PROFILES)
      for (const r of p.requires)
        assert.ok(doc.includes(`| ${p.name} | \`${r.measure}\` | ${r.clause} |`), `${p.id} ${r.measure}`);
  });
});
