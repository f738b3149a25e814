/**
 * Red-team review of `bulwark plan` (2026-11-28): a cost must never be shown as measured when the result
 * behind it is from another file, a quick run, hand-edited or nonsensical; every measured cost names
 * its file and run; hostile plan files are refused with a stable code naming the key. Each case failed
 * on the code before the review (the comment says how).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, runBulwarkInProcess } from '../helpers/cli.js';

const RESULTS = join(ROOT, 'bench', 'results');
const PLAN = join(import.meta.dirname, 'fixtures', 'plan.yaml');
const base = mkdtempSync(join(tmpdir(), 'bulwark-plan-rt-'));

// biome-ignore lint/suspicious/noExplicitAny: editing bench JSON
type J = any;

/** A copy of the committed results, with `edit` applied to the named files. */
function results(edit: Record<string, (j: J) => J> = {}): string {
  const dir = mkdtempSync(join(base, 'res-'));
  for (const f of readdirSync(RESULTS).filter((n) => n.endsWith('.json'))) {
    const name = f.slice(0, -5);
    const text = readFileSync(join(RESULTS, f), 'utf8');
    const e = edit[name];
    writeFileSync(join(dir, f), e ? JSON.stringify(e(JSON.parse(text))) : text);
  }
  return dir;
}
const figure = (j: J, id: string): J => j.figures.find((f: J) => f.id === id);
const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');

async function plan(args: string[]) {
  return runBulwarkInProcess(['plan', ...args]);
}

describe('plan red team: the results behind a cost', () => {
  it('a file of another name claiming a benchmark is refused (it silently replaced crypto.json and was cited as it)', async () => {
    const dir = results();
    const fake = JSON.parse(readFileSync(join(RESULTS, 'crypto.json'), 'utf8'));
    for (const id of ['fields.encrypt.bulwark', 'fields.decrypt.bulwark']) {
      const f = figure(fake, id);
      f.samples = [1e12];
      f.median = f.min = f.max = 1e12;
    }
    writeFileSync(join(dir, 'zz-faster.json'), JSON.stringify(fake));
    const r = await plan(['--plan', PLAN, '--results', dir]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_BENCH_RESULTS_INVALID: \S*zz-faster\.json: names the benchmark "crypto"/);
    noStack(r.stderr);
  });

  it('a --quick smoke run is not a measurement: the measure is missing with that reason (it was "measured")', async () => {
    const dir = results({ crypto: (j) => ({ ...j, quick: true }) });
    const r = await runBulwarkInProcess(['plan', '--plan', PLAN, '--results', dir, '--profile', 'pci-dss']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_PLAN_COST_MISSING: field-encryption is required .*--quick run/);
    // Without a profile requiring it, it is listed as unavailable, not priced.
    const ok = await runBulwarkInProcess(['--json', 'plan', '--results', dir, '--budget', '10']);
    assert.equal(ok.code, 0, ok.stderr);
    const j = JSON.parse(ok.stdout);
    const fe = j.costs.find((c: J) => c.measure === 'field-encryption');
    assert.equal(fe.status, 'missing');
    assert.match(fe.reason, /crypto\.json is from a --quick run/);
    assert.ok(j.unavailable.some((u: J) => u.measure === 'field-encryption'));
  });

  it('a median edited by hand (not its samples) is refused', async () => {
    const dir = results({
      audit: (j) => {
        figure(j, 'pg.append').median *= 100;
        return j;
      },
    });
    const r = await plan(['--plan', PLAN, '--results', dir]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /ERR_BENCH_RESULTS_INVALID: .*audit\.json: figures\[\d+\] \(pg\.append\): median .* is not the median of its samples/,
    );
    noStack(r.stderr);
  });

  it('a zero rate or a negative stage time is ERR_BENCH_RESULTS_INVALID naming it (was "plan instance: cost of item 8", exit 2)', async () => {
    const zero = results({
      audit: (j) => {
        const f = figure(j, 'pg.append');
        f.samples = [0];
        f.median = f.min = f.max = 0;
        return j;
      },
    });
    const r = await plan(['--plan', PLAN, '--results', zero]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /ERR_BENCH_RESULTS_INVALID: .*audit\.json: figure pg\.append is 0; a rate or a time must be above 0/,
    );
    const neg = results({
      gateway: (j) => {
        const st = JSON.parse(j.facts['full.sequential_stage_means_us']);
        st.authenticate = -5; // lowered the gateway's cost silently
        j.facts['full.sequential_stage_means_us'] = JSON.stringify(st);
        return j;
      },
    });
    const g = await plan(['--plan', PLAN, '--results', neg]);
    assert.equal(g.code, 3, g.stderr);
    assert.match(
      g.stderr,
      /ERR_BENCH_RESULTS_INVALID: .*gateway\.json: fact full\.sequential_stage_means_us: stage authenticate has the mean -5/,
    );
  });

  it('a DP epoch faster than the plain one is not a "measured" cost of 0', async () => {
    const dir = results({
      dp: (j) => {
        const f = figure(j, 'mnist.dpsgd.epoch_s');
        f.samples = [0.1];
        f.median = f.min = f.max = 0.1;
        return j;
      },
    });
    const r = await runBulwarkInProcess(['--json', 'plan', '--plan', PLAN, '--results', dir]);
    assert.equal(r.code, 0, r.stderr);
    const dp = JSON.parse(r.stdout).costs.find((c: J) => c.measure === 'dp-training');
    assert.equal(dp.status, 'missing');
    assert.match(dp.reason, /shorter than the plain epoch .*not comparable/);
  });

  it('every measured cost names its file, run date and machine; the text says which costs are supplied and what compliance was checked', async () => {
    const j = await runBulwarkInProcess(['--json', 'plan', '--plan', PLAN]);
    assert.equal(j.code, 0, j.stderr);
    const out = JSON.parse(j.stdout);
    const crypto = JSON.parse(readFileSync(join(RESULTS, 'crypto.json'), 'utf8'));
    for (const c of out.costs.filter((x: J) => x.status === 'measured')) {
      assert.ok(c.figures.length > 0, `${c.measure} cites a figure`); // validation and detectors cited none
      for (const f of c.figures) {
        assert.match(f.file, /\.json$/);
        assert.match(f.finishedAt, /^\d{4}-\d\d-\d\dT/);
        assert.match(f.machine, /cores/);
      }
    }
    const fe = out.costs.find((x: J) => x.measure === 'field-encryption');
    assert.equal(fe.figures[0].finishedAt, crypto.finishedAt);
    const t = await plan(['--plan', PLAN]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^compliance: PCI DSS v4\.0, GDPR — every measure they require is chosen/);
    assert.match(t.stdout, /\+ k8s-hardening +0 supplied /);
    assert.match(
      t.stdout,
      new RegExp(
        `field-encryption +measured +[\\d.]+ +crypto\\.json \\(run ${crypto.finishedAt.replace(/\./g, '\\.')}, AMD EPYC, 2 cores`,
      ),
    );
    assert.match(t.stdout, /budget-ledger +supplied +0\.1 +plan file: estimate/);
    assert.match(t.stdout, /tee +missing +— +bench\/results\/attest\.json measures attestation/);
    // An undated result says so instead of looking current.
    const undated = results({
      crypto: (x) => {
        delete x.finishedAt;
        return x;
      },
    });
    const u = await plan(['--plan', PLAN, '--results', undated]);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /crypto\.json \(run date unknown/);
  });
});

describe('plan red team: hostile plan files and options', () => {
  const write = (name: string, text: string) => {
    const p = join(base, name);
    writeFileSync(p, text);
    return p;
  };

  it('huge numbers are refused naming the key (they became "cost of item 3" and a NaN budget)', async () => {
    const w = await plan([
      '--plan',
      write('huge.yaml', 'budget: 10\nworkload: { requestsPerMonth: 1e308 }\n'),
    ]);
    assert.equal(w.code, 4, w.stderr);
    assert.match(w.stderr, /ERR_CONFIG_INVALID: .*workload\.requestsPerMonth: /);
    const b = await plan([
      '--plan',
      write(
        'huge2.yaml',
        'budget: 1e308\ncosts: { tee: { cpuHoursPerMonth: 1e308, source: "xxx" }, k8s-hardening: { cpuHoursPerMonth: 1.7e308, source: "yyy" } }\n',
      ),
    ]);
    assert.equal(b.code, 4, b.stderr);
    assert.match(b.stderr, /ERR_CONFIG_INVALID: .*budget: .*costs\.tee\.cpuHoursPerMonth: /);
    const cli = await plan(['--budget', '1e300']);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /ERR_USAGE: option '--budget <cpu-hours>'/);
    // A tiny but positive rate with a large workload: the measure is named, not "item N".
    const tiny = results({
      crypto: (j) => {
        const f = figure(j, 'fields.encrypt.bulwark');
        f.samples = [1e-300];
        f.median = f.min = f.max = 1e-300;
        return j;
      },
    });
    const t = await plan(['--plan', PLAN, '--results', tiny]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(
      t.stderr,
      /ERR_INVALID_ARGUMENT: workload: the cost of field-encryption comes to [\d.e+]+ CPU-hours per month \(above 1000000000\)/,
    );
    noStack(t.stderr);
  });

  it('a __proto__ key is refused like any unknown key (it was dropped without a word)', async () => {
    const r = await plan([
      '--plan',
      write(
        'proto.yaml',
        'budget: 10\ncosts: { __proto__: { tee: { cpuHoursPerMonth: 0, source: "xxx" } } }\n',
      ),
    ]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_CONFIG_INVALID: .*costs\.__proto__: a "__proto__" key is not allowed/);
    const alias = await plan([
      '--plan',
      write(
        'bomb.yaml',
        `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
      ),
    ]);
    assert.equal(alias.code, 4, alias.stderr);
    assert.match(alias.stderr, /ERR_CONFIG_(PARSE|INVALID)/);
  });

  it("--profile with an empty list is refused (it dropped the plan file's profiles silently)", async () => {
    const r = await plan(['--plan', PLAN, '--profile', '']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /ERR_USAGE: .*--profile.*got none/);
  });
});
