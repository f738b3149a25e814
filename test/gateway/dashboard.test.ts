/**
 * The security dashboard end to end in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): the page loads under its strict CSP with no violation, refuses to show data without
 * a permitted identity, and with a monitoring token shows the served model's identity, live traffic,
 * denials by stage and reason, detections and the audit log's latest signed checkpoint as verified.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway } from './gateway-fixtures.js';

const CHROMIUM = '/usr/bin/chromium';

describe('security dashboard (headless Chromium)', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`,
}, () => {
  let f: Fixture;
  let gw: Gateway;
  let browser: Browser;

  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    // Traffic to show: predictions, a denial at the authenticate stage, a detection, a checkpoint.
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token(),
    });
    await c.inferRows('fraud', f.rows.slice(0, 3) as never);
    await c
      .inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }])
      .catch((e: GatewayError) => assert.equal(e.code, 'ERR_GATEWAY_DETECTED'));
    const anon = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
    await anon
      .inferRows('fraud', f.rows.slice(0, 1) as never)
      .catch((e: GatewayError) => assert.equal(e.code, 'ERR_AUTH_MISSING'));
    c.close();
    anon.close();
    await gw.checkpoint();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('shows live traffic, denials, detections, model identity and the verified checkpoint; no CSP violation', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const token = await f.token({ roles: ['monitoring'], sub: 'dashboard-viewer' });
    const res = await page.goto(`${gw.url}/dashboard#token=${encodeURIComponent(token)}`);
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'/);
    await page.waitForSelector('#models tbody tr');
    // The token left the address bar.
    assert.equal(new URL(page.url()).hash, '');
    const models = await page.locator('#models tbody tr').first().innerText();
    assert.match(models, /fraud/);
    assert.match(models, /insecure-onnx/);
    assert.match(models, /unsigned/);
    // Where each detector's state came from: files here (a package's own would read "(package)").
    assert.match(models, /mahalanobis \(file\), stateful \(file\), prada \(file\)/);
    assert.ok(models.includes(gw.models.get('fraud')?.loaded.modelDigest as string));
    const denials = await page.locator('#denials tbody').innerText();
    assert.match(denials, /authenticate\s+ERR_AUTH_MISSING\s+1/);
    assert.match(await page.locator('#detections tbody').innerText(), /fraud\s+mahalanobis\s+1/);
    const audit = await page.locator('#audit tbody').innerText();
    assert.match(audit, /verified/);
    assert.match(audit, /tree size\s+\d+/);
    assert.ok((await page.locator('#denials-chart rect').count()) >= 1, 'denials chart drawn');
    // The traffic line appears after a second poll.
    // (Playwright's string predicates are eval: the page's CSP rightly refuses them, so poll from here.)
    for (let i = 0; i < 100; i++) {
      const points = (await page.locator('#traffic polyline').getAttribute('points')) ?? '';
      if (points.split(' ').length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(
      ((await page.locator('#traffic polyline').getAttribute('points')) ?? '').split(' ').length >= 2,
    );
    assert.match(await page.locator('#totals').innerText(), /OK: \d+/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('serves its assets with no-store, nosniff, no referrer and no framing', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/app.css']) {
      const res = await context.request.get(`${gw.url}${path}`);
      const h = res.headers();
      assert.equal(res.status(), 200, path);
      assert.match(h['content-security-policy'] ?? '', /frame-ancestors 'none'/, path);
      assert.doesNotMatch(h['content-security-policy'] ?? '', /unsafe-inline|unsafe-eval/, path);
      assert.equal(h['x-frame-options'], 'DENY', path);
      assert.equal(h['x-content-type-options'], 'nosniff', path);
      assert.equal(h['cache-control'], 'no-store', path);
      assert.equal(h['referrer-policy'], 'no-referrer', path);
    }
    await context.close();
  });

  it('says so when the token is malformed, the gateway unreachable, or the reply not the gateway’s', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const problems: string[] = [];
    const watch = (p: import('playwright-core').Page) => p.on('pageerror', (e) => problems.push(e.message));
    const status = async (p: import('playwright-core').Page, re: RegExp): Promise<void> => {
      await p
        .locator('#status.bad')
        .filter({ hasText: re })
        .waitFor({ timeout: 5000 })
        .catch(async () => {
          throw new Error(`status: ${await p.locator('#status').innerText()} (expected ${re})`);
        });
    };
    // A token cut mid-escape threw in the script: the page stayed at "loading…" for good.
    const cut = await context.newPage();
    watch(cut);
    await cut.goto(`${gw.url}/dashboard#token=abc%E0%A4%A`);
    await status(cut, /the token in the address is malformed/);
    assert.equal(new URL(cut.url()).hash, '');
    // Live first; then a proxy's HTML error page, then no connection: each replaces "live" in red
    // (the error page threw in the script and left "live" in green).
    const page = await context.newPage();
    watch(page);
    const token = await f.token({ roles: ['monitoring'], sub: 'dashboard-viewer' });
    await page.goto(`${gw.url}/dashboard#token=${encodeURIComponent(token)}`);
    await page.locator('#status.ok').filter({ hasText: /^live/ }).waitFor();
    await page.route('**/dashboard/data', (r) =>
      r.fulfill({ status: 502, contentType: 'text/html', body: '<html>Bad Gateway</html>' }),
    );
    await status(page, /^502 \(not a gateway reply\)$/);
    await page.unroute('**/dashboard/data');
    await page.route('**/dashboard/data', (r) => r.abort('connectionrefused'));
    await status(page, /^gateway unreachable$/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('shows no data without a token, or to a caller not permitted to read metrics', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${gw.url}/dashboard`);
    await page
      .locator('#status')
      .filter({ hasText: /^401/ })
      .waitFor({
        timeout: 5000,
      })
      .catch(async (e) => {
        throw new Error(`status: ${await page.locator('#status').innerText()} (${(e as Error).message})`);
      });
    assert.equal(await page.locator('#models tbody tr').count(), 0);
    const token = await f.token({ sub: 'not-monitoring' });
    // A fresh page: from /dashboard, only the fragment would change and the script would not rerun.
    const other = await context.newPage();
    await other.goto(`${gw.url}/dashboard#token=${encodeURIComponent(token)}`);
    await other.locator('#status').filter({ hasText: /^403/ }).waitFor();
    assert.match((await other.locator('#status').innerText()) ?? '', /ERR_POLICY_DENIED/);
    assert.equal(await other.locator('#models tbody tr').count(), 0);
    await context.close();
  });
});
