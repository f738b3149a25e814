import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { runBulwark } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
/** The quick run of the first test, reused by the browser test (the demo runs once for both). */
let quickOut: string | undefined;

describe('bulwark demo --quick', () => {
  it('runs every stage and writes report.json and report.html with no personal values in the report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-'));
    const out = join(dir, 'out');
    const r = runBulwark(['--json', 'demo', '--quick', '--out', out, '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    quickOut = out;
    const result = JSON.parse(r.stdout) as {
      report: string;
      summary: Record<string, Record<string, unknown>>;
    };
    assert.equal(result.report, join(out, 'report.html'));
    const files = readdirSync(out);
    for (const f of ['report.html', 'report.json', 'schema.yaml']) assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => f.endsWith('.tmp')), 'no temporary files left');

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      sections: Array<{ id: string; status: string }>;
      summary: Record<string, Record<string, unknown>>;
    };
    assert.ok(report.sections.length >= 2);
    for (const s of report.sections) assert.equal(s.status === 'failed', false, `stage ${s.id} failed`);
    assert.equal(report.summary['data']?.['rows'], 20_000);
    // The baseline fraud model learns the synthetic fraud patterns (well above chance) and is written as ONNX.
    assert.ok(files.includes('baseline.onnx'));
    assert.ok(Number(report.summary['baseline']?.['rocAuc']) > 0.8, 'baseline ROC AUC');
    const personal = String(report.summary['schema']?.['personal']).split(',');
    for (const f of ['card_number', 'national_id', 'email', 'phone', 'date_of_birth']) {
      assert.ok(personal.includes(f), `${f} detected as personal`);
    }

    // The report must not leak the data it describes: no card number or SSN from the generated file.
    const csv = readFileSync(join(out, 'transactions.csv'), 'utf8').split('\n');
    const header = (csv[0] as string).split(',');
    const firstRow = (csv[1] as string).split(',');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const json = readFileSync(join(out, 'report.json'), 'utf8');
    for (const col of ['card_number', 'national_id', 'email']) {
      const v = firstRow[header.indexOf(col)] as string;
      assert.ok(v.length > 5);
      assert.ok(!html.includes(v) && !json.includes(v), `${col} value leaked into the report`);
    }
  });

  it('case study: the served model is the DP one, packaged; every part of the story is in the summary', () => {
    assert.ok(quickOut, 'the quick run of the first test');
    const report = JSON.parse(readFileSync(join(quickOut, 'report.json'), 'utf8')) as {
      sections: Array<{ id: string }>;
      summary: Record<string, Record<string, unknown>>;
      timing: { seconds: number; cpuSeconds: number };
    };
    assert.equal(report.sections[0]?.id, 'case-study', 'the case study comes first');
    const cs = report.summary['case-study'] as Record<string, unknown>;
    assert.equal(cs['servedModel'], 'fraud-dp');
    assert.equal(report.summary['package']?.['model'], 'fraud-dp');
    assert.equal(report.summary['package']?.['tamperedRefusal'], 'ERR_DIGEST_MISMATCH');
    // The package holds the DP model the privacy stage wrote.
    assert.equal(report.summary['package']?.['modelDigest'], report.summary['privacy']?.['modelDigest']);
    // Its DP guarantee and adversarial training are signed as backed by the training run's audit entry.
    assert.equal(report.summary['package']?.['privacyClaim'], 'backed');
    assert.equal(report.summary['package']?.['adversarialClaim'], 'backed');
    // The operating point is at (about) the chosen false-positive rate on rows it was not chosen on.
    assert.ok(Number(cs['servedFpr']) < 0.03 && Number(cs['baselineFpr']) < 0.03);
    assert.ok(Number(cs['baselineRocAuc']) > Number(cs['servedRocAuc']) - 0.02, 'DP costs detection quality');
    assert.equal(cs['sameHeldOutRows'], true, 'the baseline and the DP model are scored on the same rows');
    assert.equal(cs['attacksRefused'], cs['attacks']);
    // A fresh ledger per run: ε 0.5 of 1 spent, about 0.5 left.
    assert.ok(Math.abs(Number(cs['epsilonSpent']) + Number(cs['epsilonLeft']) - 1) < 1e-6);
    // prediction, package, model, keys, protected dataset, raw dataset
    assert.ok(Number(cs['lineageLength']) >= 6, `lineage of ${String(cs['lineageLength'])} entries`);
    assert.equal(cs['lineageUnresolved'], 0);
    // The gateway served the DP package the package stage signed (the digest its predictions record)...
    const gw = report.summary['gateway'] as Record<string, unknown>;
    assert.equal(gw['servedCaseStudyPackage'], true);
    assert.equal(gw['packageDigest'], report.summary['package']?.['packageDigest']);
    assert.equal(cs['gatewayPackageDigest'], report.summary['package']?.['packageDigest']);
    assert.equal(cs['gatewayModelDigest'], report.summary['privacy']?.['modelDigest']);
    assert.ok(!existsSync(join(quickOut, 'fraud-baseline.bwm')), 'no baseline package is written');
    // ...and wrote its predictions into the demo's log: one walk from a prediction in that one log.
    assert.equal(gw['auditLog'], 'audit/audit.db');
    assert.ok(!existsSync(join(quickOut, 'gateway', 'gateway-audit.db')), 'no second audit log');
    const types = String(cs['lineageTypes']).split(',');
    for (const t of [
      'prediction',
      'model.packaged',
      'model.trained',
      'dataset.protected',
      'dataset.created',
      'key.created',
    ])
      assert.ok(types.includes(t), `the lineage reaches ${t}: ${types.join(', ')}`);
    assert.equal(types[0], 'prediction', 'the walk starts at the prediction');
    assert.equal(gw['legitimateAnswered'], gw['legitimateSent'], 'every legitimate request answered');
    assert.equal(gw['sealedRequestMatches'], true);
    assert.equal(gw['proofVerified'], true);
    assert.ok(report.timing.seconds > 0 && report.timing.cpuSeconds > 0);
  });

  it('report.html in headless Chromium: every section shown, the curves drawn, no console error, CSP kept', {
    skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`,
  }, async () => {
    assert.ok(quickOut, 'the quick run of the first test');
    const report = JSON.parse(readFileSync(join(quickOut, 'report.json'), 'utf8')) as {
      sections: Array<{ id: string; title: string }>;
    };
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      // Injected by the browser driver (not subject to the page's CSP): records any violation.
      await page.addInitScript({
        content:
          'window.cspViolations = []; document.addEventListener("securitypolicyviolation", ' +
          '(e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));',
      });
      await page.goto(`file://${join(quickOut, 'report.html')}`);
      const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
      assert.match(csp ?? '', /default-src 'none'/);
      // Every stage's section, and the case study first.
      assert.equal(await page.locator('section').count(), report.sections.length);
      assert.equal(await page.locator('section').first().getAttribute('id'), 'case-study');
      for (const s of report.sections) {
        const sec = page.locator(`section#${s.id}`);
        assert.ok(await sec.isVisible(), s.id);
        assert.ok(((await sec.locator('h2').textContent()) ?? '').includes(s.title), s.id);
      }
      const cs = page.locator('section#case-study');
      const text = (await cs.textContent()) ?? '';
      for (const want of [
        'Detection quality',
        'false-positive rate',
        'The attacks and how each was stopped',
        'ERR_AUTH_MISSING',
        'privacy budget',
        'Lineage of one prediction',
        'dataset.protected',
        'key.created',
      ])
        assert.ok(text.includes(want), want);
      assert.match(text, /Cost table: .* not measured|What each protection costs/);
      // The ROC and PR charts: drawn with a size, one path per model plus the chance line.
      const charts = cs.locator('figure svg');
      assert.ok((await charts.count()) >= 2);
      for (const i of [0, 1]) {
        const svg = charts.nth(i);
        const box = await svg.boundingBox();
        assert.ok(box && box.width > 200 && box.height > 150, `chart ${i} has a size`);
        assert.equal(await svg.locator('path').count(), 4, `chart ${i}: 3 models and chance`);
        const d = (await svg.locator('path').first().getAttribute('d')) ?? '';
        assert.ok((d.match(/L/g) ?? []).length > 20, `chart ${i}: the curve has points`);
      }
      assert.deepEqual(await page.evaluate('window.cspViolations'), []);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });

  it('is deterministic for a seed (same data file), and a rerun in the same folder starts afresh', () => {
    // One more run with the first test's seed (not two new ones: the demo is the slow part of this file),
    // into the first run's folder: the ledger and logs are recreated, so the budget is not spent twice.
    assert.ok(quickOut, 'the quick run of the first test');
    const before = readFileSync(join(quickOut, 'transactions.csv'), 'utf8');
    const r = runBulwark(['--json', 'demo', '--quick', '--out', quickOut, '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(quickOut, 'transactions.csv'), 'utf8'), before);
    const report = JSON.parse(readFileSync(join(quickOut, 'report.json'), 'utf8')) as {
      summary: Record<string, Record<string, unknown>>;
    };
    const cs = report.summary['case-study'] as Record<string, unknown>;
    assert.ok(Math.abs(Number(cs['epsilonLeft']) - (1 - Number(cs['epsilonSpent']))) < 1e-6);
  });
});
