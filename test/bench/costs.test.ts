import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { CLAIMS, type CostRow, costRows, SECTIONS, uncoveredClaims } from '../../src/bench/index.js';
import { type BenchSet, parseBenchResult, readBenchResults } from '../../src/plan/index.js';
import { ROOT, runBulwark } from '../helpers/cli.js';

/**
 * The claims extracted by hand from the source article (/work/shared/seed/securing-cloud-native-ai.txt):
 * the six rows x three columns of "Secure AI Performance Benchmarks", the three bullets of "Performance
 * Impact Analysis", of "Real-World Performance Metrics" and of "Defense Effectiveness Metrics" (the
 * adversarial-training bullet states two figures: 95 % before, 15-25 % after).
 */
const FIXTURE: Array<[string, string]> = [
  ['table.data-encryption.impact', '5-15%'],
  ['table.data-encryption.cost', '10-20%'],
  ['table.data-encryption.benefit', 'High'],
  ['table.differential-privacy.impact', '10-25% accuracy'],
  ['table.differential-privacy.cost', '15-30%'],
  ['table.differential-privacy.benefit', 'Very High'],
  ['table.model-encryption.impact', '2-5%'],
  ['table.model-encryption.cost', '5-15%'],
  ['table.model-encryption.benefit', 'Medium'],
  ['table.tee.impact', '200-300%'],
  ['table.tee.cost', '50-100%'],
  ['table.tee.benefit', 'Very High'],
  ['table.adversarial-training.impact', '20-40% training time'],
  ['table.adversarial-training.cost', '25-40%'],
  ['table.adversarial-training.benefit', 'High'],
  ['table.input-validation.impact', '1-5ms per request'],
  ['table.input-validation.cost', '5-10%'],
  ['table.input-validation.benefit', 'Medium'],
  ['impact.encryption-training-time', '5-15% increased training time'],
  ['impact.dp-accuracy-eps1', '10-25% accuracy reduction for ε=1.0'],
  ['impact.encrypted-memory-storage', '20-30% increase for encrypted data storage'],
  ['realworld.tee-inference', '2-3x slower than native execution'],
  ['realworld.encrypted-model-size', '40-60% size increase'],
  ['realworld.session-setup', '100-200ms overhead'],
  ['defense.attack-success-without-at', 'from 95%'],
  ['defense.attack-success-with-at', 'to 15-25%'],
  ['defense.input-validation-caught', '80-90% of basic adversarial attacks'],
  ['defense.ensemble-improvement', '3-5x improvement over single methods'],
];

/** The source article: `BULWARK_SEED` (its folder), else ../shared/seed next to the repository. */
const SEED = join(
  process.env['BULWARK_SEED'] ?? join(ROOT, '..', 'shared', 'seed'),
  'securing-cloud-native-ai.txt',
);

/** The ids a results file offers: figure ids and `facts.KEY`. */
function idsOf(path: string): Set<string> {
  const j = JSON.parse(readFileSync(path, 'utf8')) as { figures: { id: string }[]; facts?: object };
  return new Set([...j.figures.map((f) => f.id), ...Object.keys(j.facts ?? {}).map((k) => `facts.${k}`)]);
}

describe('bench costs: the claim list', () => {
  it('holds exactly the claims extracted from the article, each once', () => {
    assert.deepEqual(
      CLAIMS.map((c) => c.id),
      FIXTURE.map(([id]) => id),
    );
    for (const [id, words] of FIXTURE) {
      const c = CLAIMS.find((x) => x.id === id);
      assert.ok(c?.text.includes(words.replace(/^(from|to) /, '')), `${id}: "${c?.text}" lacks "${words}"`);
    }
  });

  it("quotes figures the article's text really states", {
    skip: !existsSync(SEED) && 'seed article absent',
  }, () => {
    const text = readFileSync(SEED, 'utf8');
    for (const f of [
      '| Data Encryption | 5-15% | 10-20% | High |',
      '| Differential Privacy | 10-25% accuracy | 15-30% | Very High |',
      '| Model Encryption | 2-5% | 5-15% | Medium |',
      '| TEE Deployment | 200-300% | 50-100% | Very High |',
      '| Adversarial Training | 20-40% training time | 25-40% | High |',
      '| Input Validation | 1-5ms per request | 5-10% | Medium |',
      'Encryption overhead: 5-15% increased training time',
      'Differential privacy: 10-25% accuracy reduction for ε=1.0',
      'Memory usage: 20-30% increase for encrypted data storage',
      'TEE inference: 2-3x slower than native execution',
      'Encrypted model storage: 40-60% size increase',
      'Secure session establishment: 100-200ms overhead',
      'Reduces attack success rate from 95% to 15-25%',
      'Catches 80-90% of basic adversarial attacks',
      'Provide 3-5x improvement over single methods',
    ]) {
      assert.ok(text.includes(f), `article lacks: ${f}`);
    }
  });
});

describe('bench costs: rows from results', () => {
  let committed: BenchSet;
  before(async () => {
    committed = await readBenchResults(join(ROOT, 'bench', 'results'));
  });

  /** A run's own results with chosen medians (the shape the command writes). */
  const run = (medians: Record<string, number>) =>
    parseBenchResult(
      JSON.stringify({
        benchmark: 'costs',
        finishedAt: '2026-01-01T00:00:00.000Z',
        figures: Object.entries(medians).map(([id, median]) => ({ id, median, label: id, unit: '' })),
        facts: {},
      }),
      'bench/results/costs.json',
    );

  it('gives a verdict against the claimed range, at the claim’s precision', () => {
    const at = (v: number) => {
      const b = new Map(committed);
      b.set('costs', run({ 'train.reveal_overhead_pct': v }));
      return costRows(b).find((r) => r.claim === 'impact.encryption-training-time') as CostRow;
    };
    assert.equal(at(10).verdict, 'confirms');
    assert.equal(at(15.4).verdict, 'confirms');
    assert.equal(at(15.6).verdict, 'contradicts');
    assert.match(at(40).why, /higher than the article's 5–15 %/);
    assert.equal(at(1).verdict, 'contradicts');
    assert.match(at(1).why, /lower/);
    assert.equal(at(10).measured, 10);
    assert.deepEqual(at(10).sources, [
      {
        file: 'bench/results/costs.json',
        figures: ['train.reveal_overhead_pct'],
        runDate: '2026-01-01T00:00:00.000Z',
      },
    ]);
  });

  it('a missing results file is "not measured", with no number', () => {
    const b = new Map(committed);
    b.delete('robust');
    b.delete('gateway');
    b.delete('costs');
    const rows = costRows(b);
    const robust = rows.filter(
      (r) => r.claim.startsWith('defense.attack-success') && r.what.includes('MNIST'),
    );
    assert.ok(robust.length >= 2);
    for (const r of [...robust, ...rows.filter((x) => x.claim === 'table.input-validation.impact')]) {
      assert.equal(r.verdict, 'not measured');
      assert.equal(r.measured, null);
      assert.equal(r.ratio, null);
      assert.match(r.why, /bench\/results\/(robust|gateway)\.json is not committed/);
    }
    // No run of the command at all: its own rows are not measured either.
    const own = rows.filter((r) => r.claim === 'defense.ensemble-improvement');
    assert.equal(own[0]?.verdict, 'not measured');
    assert.match(own[0]?.why ?? '', /costs\.json is not committed/);
    // Every claim still has its row.
    assert.deepEqual(uncoveredClaims(rows), []);
  });

  it('a results file without the figure is "not measured" naming the figure', () => {
    const b = new Map(committed);
    b.set('costs', run({ 'train.reveal_overhead_pct': 12 }));
    const r = costRows(b).find((x) => x.claim === 'defense.input-validation-caught') as CostRow;
    assert.equal(r.verdict, 'not measured');
    assert.match(r.why, /has no figure validation\.basic_caught_pct/);
  });
});

describe('bench costs: the committed table', () => {
  const committedCosts = join(ROOT, 'bench', 'results', 'costs.json');
  it('covers every claim and cites figures that exist in the committed results', {
    skip: !existsSync(committedCosts) && 'bench/results/costs.json not committed yet',
  }, () => {
    const parsed = parseBenchResult(readFileSync(committedCosts, 'utf8'), committedCosts);
    assert.equal(parsed.benchmark, 'costs');
    const rows = JSON.parse(String(parsed.facts['rows'])) as CostRow[];
    assert.deepEqual(uncoveredClaims(rows), []);
    for (const r of rows) {
      for (const s of r.sources) {
        const path = join(ROOT, s.file);
        assert.ok(existsSync(path), `${r.claim}: ${s.file} does not exist`);
        const ids = idsOf(path);
        for (const f of s.figures) assert.ok(ids.has(f), `${r.claim}: ${s.file} has no ${f}`);
      }
    }
    // The doc is the committed table's: every row's figure appears in it.
    const md = readFileSync(join(ROOT, 'docs', 'performance.md'), 'utf8');
    for (const r of rows) assert.ok(md.includes(r.what), `docs/performance.md lacks the row "${r.what}"`);
  });
});

describe('bench costs: a --quick run of the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-costs-test-'));
  const out = join(dir, 'costs.json');
  const doc = join(dir, 'performance.md');
  let res: ReturnType<typeof runBulwark>;
  before(() => {
    res = runBulwark(['bench', 'costs', '--quick', '--out', out, '--doc', doc, '--json']);
  });

  it('writes a results file of the harness shape, every claim covered', () => {
    assert.equal(res.code, 0, res.stderr);
    const j = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    for (const k of [
      'benchmark',
      'startedAt',
      'finishedAt',
      'quick',
      'repeats',
      'machine',
      'figures',
      'facts',
      'notes',
      'table',
    ]) {
      assert.ok(k in j, `no ${k}`);
    }
    assert.equal(j['benchmark'], 'costs');
    assert.equal(j['quick'], true);
    const parsed = parseBenchResult(readFileSync(out, 'utf8'), out);
    for (const id of [
      'train.reveal_overhead_pct',
      'dp.eps1.acc',
      'tee.slowdown_x',
      'validation.basic_caught_pct',
    ]) {
      assert.ok(parsed.figures.has(id), `no figure ${id}`);
    }
    const rows = JSON.parse(String(parsed.facts['rows'])) as CostRow[];
    assert.deepEqual(uncoveredClaims(rows), []);
    const stdout = JSON.parse(res.stdout) as { rows: CostRow[] };
    assert.deepEqual(stdout.rows, rows);
    // The measured figures behave: DP at ε = 1 does not beat the non-private model by much, the software
    // enclave is slower than in-process inference, a share is a share.
    const m = (id: string) => parsed.figures.get(id)?.median as number;
    assert.ok(m('dp.eps1.acc') <= m('dp.nonprivate.acc') + 1);
    assert.ok(m('tee.slowdown_x') > 1);
    assert.ok(m('validation.basic_caught_pct') >= 0 && m('validation.basic_caught_pct') <= 100);
    assert.ok(m('storage.protected_bytes') > m('storage.plain_bytes'));
  });

  it('cites only figures that exist in the files it names', () => {
    const rows = (JSON.parse(res.stdout) as { rows: CostRow[] }).rows;
    const cache = new Map<string, Set<string>>();
    let cited = 0;
    for (const r of rows) {
      for (const s of r.sources) {
        const path = s.file === 'bench/results/costs.json' ? out : join(ROOT, s.file);
        assert.ok(existsSync(path), `${r.claim}: ${s.file} does not exist`);
        if (!cache.has(path)) cache.set(path, idsOf(path));
        for (const f of s.figures) {
          assert.ok(cache.get(path)?.has(f), `${r.claim}: ${s.file} has no ${f}`);
          cited++;
        }
        if (r.verdict !== 'not measured') assert.ok(s.runDate, `${r.claim}: no run date for ${s.file}`);
      }
      if (r.verdict === 'confirms' || r.verdict === 'contradicts') assert.equal(typeof r.measured, 'number');
    }
    assert.ok(cited > 30);
  });

  it('--from rebuilds the rows against other results: a missing file is "not measured"', () => {
    const only = join(dir, 'results');
    mkdirSync(only);
    copyFileSync(join(ROOT, 'bench', 'results', 'attest.json'), join(only, 'attest.json'));
    const r = runBulwark(['bench', 'costs', '--from', out, '--results', only, '--no-write', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { rows: CostRow[] }).rows;
    assert.deepEqual(uncoveredClaims(rows), []);
    const robust = rows.filter((x) => x.sources.length === 0 && x.verdict === 'not measured');
    assert.ok(robust.some((x) => /robust\.json is not committed/.test(x.why)));
    for (const x of rows.filter((y) =>
      /(robust|gateway|dp|model-package)\.json is not committed/.test(y.why),
    )) {
      assert.equal(x.verdict, 'not measured');
      assert.equal(x.measured, null);
    }
    // This run's own figures and attest.json still count.
    const own = rows.find((x) => x.claim === 'defense.input-validation-caught') as CostRow;
    assert.notEqual(own.verdict, 'not measured');
    const session = rows.find((x) => x.claim === 'realworld.session-setup') as CostRow;
    assert.equal(session.sources[0]?.file, 'bench/results/attest.json');
    assert.equal(typeof session.measured, 'number');
    // No results folder at all (an installed CLI outside the repository): only this run's rows count.
    const none = runBulwark([
      'bench',
      'costs',
      '--from',
      out,
      '--results',
      join(dir, 'none'),
      '--no-write',
      '--json',
    ]);
    assert.equal(none.code, 0, none.stderr);
    const bare = (JSON.parse(none.stdout) as { rows: CostRow[] }).rows;
    for (const x of bare) {
      if (x.verdict === 'not measured') assert.match(x.why, /is not committed/);
      else for (const src of x.sources) assert.equal(src.file, 'bench/results/costs.json');
    }
    assert.ok(bare.some((x) => x.verdict === 'not measured'));
    const missing = runBulwark(['bench', 'costs', '--from', join(dir, 'nope.json'), '--no-write']);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /^bulwark: ERR_\w+: .*nope\.json/);
  });

  it('writes the doc: a table per section, contradictions said plainly', () => {
    const md = readFileSync(doc, 'utf8');
    for (const s of SECTIONS)
      assert.match(md, new RegExp(`## ${s}\\n\\n\\| claim \\| measured \\| verdict \\| source \\|`));
    const rows = (JSON.parse(res.stdout) as { rows: CostRow[] }).rows;
    const where = md.slice(md.indexOf('## Where we contradict the article'), md.indexOf(`## ${SECTIONS[0]}`));
    for (const r of rows.filter((x) => x.verdict === 'contradicts')) {
      assert.ok(where.includes(r.what), `contradiction not listed: ${r.what}`);
    }
    assert.match(md, /Software\s+mode is not a TEE/);
  });
});
