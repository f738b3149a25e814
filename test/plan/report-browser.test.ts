/**
 * The plan report in headless Chromium (Debian's /usr/bin/chromium via playwright-core): every section
 * is shown, the frontier plot is drawn (a path per series, the chosen and greedy markers, the budget
 * line), the tables list every measure, and the page loads under its CSP with no error.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { parse } from 'yaml';
import { bulwarkVersion } from '../../src/core/index.js';
import {
  MEASURE_IDS,
  makePlan,
  parseBenchResult,
  planFileSchema,
  planSections,
  readBenchResults,
} from '../../src/plan/index.js';
import { renderHtml } from '../../src/report/index.js';
import { ROOT } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';

describe('plan report (headless Chromium)', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`,
}, () => {
  let browser: Browser;
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
  });

  it('shows the choice, the frontier plot, the costs and the threats', async () => {
    const file = planFileSchema.parse(
      parse(readFileSync(join(import.meta.dirname, 'fixtures', 'plan.yaml'), 'utf8')),
    );
    const plan = makePlan(file, await readBenchResults(join(ROOT, 'bench', 'results')));
    const html = renderHtml({
      title: 'Bulwark security plan',
      generatedAt: new Date(0).toISOString(),
      bulwarkVersion: bulwarkVersion(),
      sections: planSections(plan),
    });
    const path = join(mkdtempSync(join(tmpdir(), 'bulwark-plan-html-')), 'plan.html');
    writeFileSync(path, html);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`file://${path}`);
    for (const id of ['choice', 'frontier', 'costs', 'threats']) {
      assert.ok(await page.locator(`section#${id}`).isVisible(), id);
    }
    const svg = page.locator('section#frontier svg');
    assert.equal(await svg.count(), 1);
    const box = await svg.boundingBox();
    assert.ok(box && box.width > 200 && box.height > 150, 'the plot has a size');
    // exact optimum, budget line, chosen and greedy markers
    assert.equal(await svg.locator('path').count(), 4);
    const legend = await svg.locator('text').allTextContents();
    for (const s of ['exact optimum', 'budget', 'chosen', 'greedy']) assert.ok(legend.includes(s), s);
    const costsText = await page.locator('section#costs').innerText();
    for (const m of MEASURE_IDS) assert.ok(costsText.includes(m), m);
    assert.match(await page.locator('section#choice').innerText(), /greedy \(the article’s rule\)/);
    assert.deepEqual(problems, []);
    await page.close();
  });
  it('names from the plan file and the results are text, never markup or script (red team)', async () => {
    const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
    const file = planFileSchema.parse({
      ...parse(readFileSync(join(import.meta.dirname, 'fixtures', 'plan.yaml'), 'utf8')),
      currency: '<b>X',
      costs: {
        'k8s-hardening': { cpuHoursPerMonth: 0, source: evil },
        'budget-ledger': { cpuHoursPerMonth: 0.1, source: 'estimate' },
      },
    });
    const dir = join(ROOT, 'bench', 'results');
    const bench = new Map(await readBenchResults(dir));
    const crypto = JSON.parse(readFileSync(join(dir, 'crypto.json'), 'utf8'));
    crypto.machine = { ...crypto.machine, cpu: evil };
    bench.set('crypto', parseBenchResult(JSON.stringify(crypto), join(dir, 'crypto.json')));
    assert.ok(readdirSync(dir).includes('crypto.json'));
    const plan = makePlan(file, bench);
    const html = renderHtml({
      title: 'Bulwark security plan',
      generatedAt: new Date(0).toISOString(),
      bulwarkVersion: bulwarkVersion(),
      sections: planSections(plan),
    });
    assert.ok(!html.includes('<script>window.__pwned'), 'escaped in the file');
    const path = join(mkdtempSync(join(tmpdir(), 'bulwark-plan-html-')), 'evil.html');
    writeFileSync(path, html);
    const page = await browser.newPage();
    let dialogs = 0;
    page.on('dialog', async (d) => {
      dialogs++;
      await d.dismiss();
    });
    await page.goto(`file://${path}`);
    assert.equal(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined);
    assert.equal(await page.locator('section#costs img').count(), 0);
    const costs = (await page.locator('section#costs').textContent()) ?? '';
    assert.ok(costs.includes(`plan file: ${evil}`), 'the supplied source is shown as text');
    // The machine line (`<cpu>, <cores> cores, ...`), not the plan file's source above, which holds `evil` too.
    assert.ok(
      costs.includes(`, ${evil}, ${crypto.machine.cores} cores`),
      'the machine of the run is shown as text',
    );
    assert.equal(dialogs, 0);
    await page.close();
  });
});
