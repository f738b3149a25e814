import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import {
  barChart,
  binGroups,
  escapeXml,
  histogramCounts,
  lineChart,
  niceTicks,
  type ReportDoc,
  renderHtml,
} from '../../src/report/index.js';
import { flowLegend, niceDomain } from '../../src/report/svg.js';

describe('report building blocks', () => {
  it('escapeXml escapes the five XML specials', () => {
    assert.equal(escapeXml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });

  it('niceTicks gives round steps covering the range (Heckbert)', () => {
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0, 97), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(-3, 3), [-4, -2, 0, 2, 4]);
  });

  it('histogramCounts bins with the top edge in the last bin and clamps outliers', () => {
    assert.deepEqual(histogramCounts([0, 0.1, 0.5, 0.99, 1, 5, -2, Number.NaN], 2, 0, 1), [3, 4]);
  });

  it('binGroups puts groups on one range and keeps only counts', () => {
    const b = binGroups(
      [
        { name: 'a', values: [1, 10, 100] },
        { name: 'b', values: [1000] },
      ],
      { bins: 3, log10: true },
    );
    assert.equal(b.lo, 0);
    assert.equal(b.hi, 3);
    assert.deepEqual(
      b.groups.map((g) => g.counts),
      [
        [1, 1, 1],
        [0, 0, 1],
      ],
    );
  });

  it('charts are SVG with escaped labels', () => {
    const bars = barChart([{ label: '<script>', value: 3 }], { title: 't' });
    assert.match(bars, /^<svg /);
    assert.ok(!bars.includes('<script>'));
    const lines = lineChart(
      [
        {
          name: 'roc',
          points: [
            [0, 0],
            [0.5, 0.8],
            [1, 1],
          ],
        },
      ],
      { title: 'ROC' },
    );
    assert.match(lines, /<path d="M/);
  });

  it('a line chart without a y domain runs up to the tick above its largest value; an empty table says none', () => {
    assert.deepEqual(niceDomain(0, 0.73), [0, 0.8]);
    assert.deepEqual(niceDomain(0, 88.3), [0, 100]);
    assert.deepEqual(niceDomain(0, 1), [0, 1]);
    assert.deepEqual(niceDomain(50, 100), [50, 100]);
    assert.deepEqual(niceDomain(3, 3), [3, 3]);
    // Accuracy topping out at 0.73: the axis is labelled up to 0.80.
    const chart = lineChart([
      {
        name: 'acc',
        points: [
          [0, 0.73],
          [0.2, 0.6],
        ],
      },
    ]);
    assert.ok(chart.includes('>0.80</text>'), chart);
    const html = renderHtml({
      title: 't',
      generatedAt: 'now',
      bulwarkVersion: 'test',
      sections: [
        { id: 's', title: 'S', status: 'ok', blocks: [{ kind: 'table', columns: ['a', 'b'], rows: [] }] },
      ],
    });
    assert.ok(html.includes('<tbody><tr><td colspan="2">none</td></tr></tbody>'));
  });

  it('legends flow under the plot and wrap inside the chart; long labels are cut with a tooltip', () => {
    // Five entries, two long: they cannot share one row of a 560-px chart.
    const names = [
      'FGSM',
      'PGD',
      'SQUARE',
      'adaptive PGD (evades the detector)',
      'DP ε 0.49 + PGD (served), AUC 0.780',
    ];
    const { rows, at } = flowLegend(names, 56, 544);
    assert.equal(rows, 2);
    assert.deepEqual(
      at.map((a) => a.row),
      [0, 0, 0, 0, 1],
    );
    assert.ok(at.every((a) => a.x >= 56 && a.x < 544));
    assert.deepEqual(flowLegend([], 0, 100), { rows: 0, at: [] });
    // The legend lies below the plot box: the SVG grows by the legend's rows.
    const series = names.map((name, i) => ({
      name,
      points: [
        [0, 0],
        [1, i / 5],
      ] as [number, number][],
    }));
    const chart = lineChart(series, { height: 340 });
    assert.match(chart, /viewBox="0 0 560 382"/);
    const legendY = [...chart.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="10"/g)].map((m) => Number(m[1]));
    assert.equal(legendY.length, 5);
    assert.ok(legendY.every((y) => y > 340 - 44));
    // A bar label longer than half the chart is cut, and its whole text (escaped) is the tooltip.
    const long = `<b>${'a very long label '.repeat(4)}`;
    const bars = barChart([{ label: long, value: 1 }]);
    assert.ok(bars.includes(`<title>${escapeXml(long)}</title>`));
    assert.match(bars, /…<\/text>/);
    assert.ok(!barChart([{ label: 'short', value: 1 }]).includes('<title>'));
  });

  it('renderHtml makes one self-contained page: no scripts, a CSP, every section', () => {
    const doc: ReportDoc = {
      title: 'T & <b>',
      generatedAt: '2026-01-01T00:00:00Z',
      bulwarkVersion: '0.0.0',
      sections: [
        {
          id: 's1',
          title: 'One',
          status: 'ok',
          seconds: 1.25,
          blocks: [{ kind: 'text', text: '<img src=x>' }],
        },
        {
          id: 's2',
          title: 'Two',
          status: 'failed',
          blocks: [{ kind: 'table', columns: ['a', 'b'], rows: [['x', 1]] }],
        },
      ],
    };
    const html = renderHtml(doc);
    assert.ok(!/<script/i.test(html));
    assert.ok(!html.includes('<img src=x>'));
    assert.match(html, /Content-Security-Policy/);
    assert.match(html, /id="s1"/);
    assert.match(html, /class="status failed"/);
    assert.match(html, /<td class="num">1<\/td>/);
  });

  it('no string in a report can add markup: every text, attribute and chart field is escaped', () => {
    // Column names, category values, model and attack names reach reports from data and models.
    const x = `"'><img src=x onerror=alert(1)></svg></script><!--<a href="javascript:alert(1)">`;
    const series = [{ name: x, points: [[0, 0] as const, [1, 1] as const], color: x }];
    const doc: ReportDoc = {
      title: x,
      subtitle: x,
      generatedAt: x,
      bulwarkVersion: x,
      sections: [
        {
          id: x,
          title: x,
          // A status from a report.json someone edited: the type does not hold at run time.
          status: x as 'ok',
          blocks: [
            { kind: 'text', text: x },
            { kind: 'facts', facts: [[x, x]] },
            { kind: 'table', columns: [x], rows: [[x]], caption: x },
            { kind: 'bars', title: x, unit: x, bars: [{ label: x, value: 1, color: x }] },
            { kind: 'lines', title: x, xLabel: x, yLabel: x, series },
            {
              kind: 'histogram',
              title: x,
              xLabel: x,
              lo: 0,
              hi: 1,
              groups: [{ name: x, counts: [1, 2], color: x }],
            },
          ],
        },
      ],
    };
    const html = renderHtml(doc);
    const tags = new Set([...html.matchAll(/<\/?([a-zA-Z][\w-]*)/g)].map((m) => m[1]!.toLowerCase()));
    const allowed =
      'html head meta title style body h1 h2 p nav a section span dl dt dd table caption thead tbody tr th td figure svg text rect path line';
    assert.deepEqual(
      [...tags].filter((t) => !allowed.split(' ').includes(t)),
      [],
    );
    assert.ok(!html.includes('<!--'));
    // Every attribute value is quoted and holds no raw quote: the attributes parse as written.
    for (const tag of html.matchAll(/<[a-zA-Z][^>]*>/g))
      assert.match(tag[0], /^<[a-zA-Z][\w-]*(?:\s+[\w:-]+(?:="[^"<>]*")?)*\s*\/?>$/, tag[0]);
  });
});

const CHROMIUM = '/usr/bin/chromium';

describe('report.html in headless Chromium', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`,
}, () => {
  it('its style sheet applies under a CSP without unsafe-inline; hostile strings stay text', async () => {
    const x = `<img src=x onerror="document.title='pwned'"><style>body{display:none}</style>`;
    const html = renderHtml({
      title: x,
      generatedAt: '2026-01-01T00:00:00Z',
      bulwarkVersion: '0.0.0',
      sections: [
        { id: 'a', title: x, status: 'failed', blocks: [{ kind: 'table', columns: [x], rows: [[x]] }] },
        {
          id: 'b',
          title: 'chart',
          status: 'ok',
          blocks: [{ kind: 'bars', title: x, bars: [{ label: x, value: 1 }] }],
        },
      ],
    });
    assert.match(html, /style-src 'sha256-[A-Za-z0-9+/]+=*'/);
    assert.doesNotMatch(html, /unsafe-inline/);
    const file = join(mkdtempSync(join(tmpdir(), 'bulwark-report-')), 'report.html');
    writeFileSync(file, html);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      await page.goto(pathToFileURL(file).href);
      // The sheet applied (the hash matches): a failed section's badge is red, the body is visible.
      const badge = page.locator('section#a h2 .status');
      // The callbacks run in the page (serialised: they cannot call a helper of this file); the test's
      // TypeScript has no DOM library, so the page's getComputedStyle is reached through globalThis.
      type Page = { getComputedStyle(e: unknown): { backgroundColor: string; display: string } };
      assert.equal(
        await badge.evaluate((e) => (globalThis as unknown as Page).getComputedStyle(e).backgroundColor),
        'rgb(254, 226, 226)',
      );
      assert.equal(
        await page
          .locator('body')
          .evaluate((e) => (globalThis as unknown as Page).getComputedStyle(e).display),
        'block',
      );
      assert.equal(await page.locator('img').count(), 0);
      assert.equal(await page.locator('body style').count(), 0);
      assert.equal(await page.title(), x);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
