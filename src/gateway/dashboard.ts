/**
 * The security dashboard: one page served by the gateway (`GET /dashboard`) that shows live traffic,
 * refusals by stage and reason, detections, the query-budget distribution, each model's identity and
 * signature status, and the audit log's latest signed checkpoint with its verification. The page and its
 * script are static and public; the data (`GET /dashboard/data`) needs an identity that Cedar permits to
 * `read-metrics`. The browser passes a bearer token in the URL fragment (`/dashboard#token=...`), which
 * is never sent to the server in the URL nor logged; the script moves it into an Authorization header.
 *
 * Self-contained and served with a strict Content-Security-Policy: no inline script or style, no
 * third-party origin, charts drawn as SVG by the script.
 */
import { parseVerifierKey, verifyCheckpoint } from '../audit/index.js';
import type { Gateway } from './server.js';

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark gateway</title>
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header><h1>Bulwark gateway</h1><span id="status">loading…</span></header>
<main>
<section><h2>Traffic</h2><svg id="traffic" width="640" height="160" role="img" aria-label="requests per second"></svg>
<p id="totals"></p></section>
<section><h2>Denials by stage and reason</h2><svg id="denials-chart" width="640" height="160" role="img" aria-label="denials"></svg>
<table id="denials"><thead><tr><th>stage</th><th>reason</th><th>count</th></tr></thead><tbody></tbody></table></section>
<section><h2>Detections</h2><table id="detections"><thead><tr><th>model</th><th>detector</th><th>count</th></tr></thead><tbody></tbody></table></section>
<section><h2>Query budget remaining</h2><table id="budget"><thead><tr><th>model</th><th>at most</th><th>answers</th></tr></thead><tbody></tbody></table></section>
<section><h2>Models</h2><table id="models"><thead><tr><th>model</th><th>version</th><th>origin</th><th>signer</th><th>model digest</th><th>package digest</th><th>detectors</th></tr></thead><tbody></tbody></table></section>
<section><h2>Audit log</h2><table id="audit"><tbody></tbody></table></section>
<section><h2>Stage time (mean, µs)</h2><table id="stages"><thead><tr><th>stage</th><th>mean µs</th><th>count</th></tr></thead><tbody></tbody></table></section>
</main>
</body>
</html>
`;

export const DASHBOARD_CSS = `body{font:14px system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{display:flex;gap:1em;align-items:baseline;padding:.6em 1.2em;background:#14213d;color:#fff}
h1{font-size:1.2em;margin:0}h2{font-size:1em;margin:.2em 0 .5em}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(660px,1fr));gap:1em;padding:1em}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.8em}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2em .5em;border-bottom:1px solid #eceff2;font-variant-numeric:tabular-nums}
td.digest{font-family:monospace;font-size:12px;word-break:break-all}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
`;

export const DASHBOARD_JS = `'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const m = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  let token = null;
  let badToken = false;
  // A malformed escape (a token cut while pasting) threw here and left the page at "loading…".
  try { token = m ? decodeURIComponent(m[1]) : null; } catch (e) { badToken = true; }
  if (m) history.replaceState(null, '', location.pathname);
  function fail(text) {
    $('status').textContent = text;
    $('status').className = 'bad';
  }
  const NS = 'http://www.w3.org/2000/svg';
  const history_ = [];
  function rows(id, data, cells) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...data.map((d) => {
      const tr = document.createElement('tr');
      for (const [text, cls] of cells(d)) {
        const td = document.createElement('td');
        td.textContent = String(text);
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }));
  }
  function bars(svg, items) {
    const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
    const max = Math.max(1, ...items.map((i) => i.value));
    const bw = items.length ? Math.min(60, (w - 10) / items.length) : 0;
    svg.replaceChildren(...items.flatMap((it, k) => {
      const r = document.createElementNS(NS, 'rect');
      const bh = Math.round((h - 30) * it.value / max);
      r.setAttribute('x', String(5 + k * bw)); r.setAttribute('y', String(h - 20 - bh));
      r.setAttribute('width', String(bw - 4)); r.setAttribute('height', String(bh));
      r.setAttribute('fill', it.color || '#3a6ea5');
      const t = document.createElementNS(NS, 'text');
      t.setAttribute('x', String(5 + k * bw)); t.setAttribute('y', String(h - 6));
      t.setAttribute('font-size', '10'); t.textContent = it.label;
      const title = document.createElementNS(NS, 'title'); title.textContent = it.label + ': ' + it.value;
      r.append(title);
      return [r, t];
    }));
  }
  function line(svg, points) {
    const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
    const max = Math.max(1, ...points);
    const p = document.createElementNS(NS, 'polyline');
    p.setAttribute('fill', 'none'); p.setAttribute('stroke', '#3a6ea5'); p.setAttribute('stroke-width', '2');
    p.setAttribute('points', points.map((v, i) => (i * (w / 59)).toFixed(1) + ',' + (h - 10 - (h - 20) * v / max).toFixed(1)).join(' '));
    const label = document.createElementNS(NS, 'text');
    label.setAttribute('x', '4'); label.setAttribute('y', '12'); label.setAttribute('font-size', '11');
    label.textContent = 'max ' + max.toFixed(1) + ' req/s';
    svg.replaceChildren(p, label);
  }
  async function refresh() {
    let r;
    let body;
    try {
      r = await fetch('/dashboard/data', { headers: token ? { authorization: 'Bearer ' + token } : {}, cache: 'no-store' });
    } catch (e) { fail('gateway unreachable'); return; }
    // A reply that is not the gateway's JSON (a proxy's error page) is shown as such: it used to
    // throw here and leave the status at "live" in green while nothing was refreshed.
    try { body = await r.json(); } catch (e) { fail(r.status + ' (not a gateway reply)'); return; }
    if (!r.ok) { fail(r.status + ' ' + body.code); return; }
    $('status').textContent = 'live · ' + new Date(body.time).toLocaleTimeString(); $('status').className = 'ok';
    const total = Object.values(body.traffic).reduce((a, b) => a + b, 0);
    history_.push({ t: Date.now(), total });
    while (history_.length > 60) history_.shift();
    const rates = history_.map((h, i) => i === 0 ? 0 : Math.max(0, (h.total - history_[i - 1].total) / ((h.t - history_[i - 1].t) / 1000)));
    line($('traffic'), rates);
    $('totals').textContent = Object.entries(body.traffic).map(([k, v]) => k + ': ' + v).join(' · ') || 'no requests yet';
    bars($('denials-chart'), body.denials.map((d) => ({ label: d.stage, value: d.count, color: '#cf222e' })));
    rows('denials', body.denials, (d) => [[d.stage], [d.reason], [d.count]]);
    rows('detections', body.detections, (d) => [[d.model], [d.detector], [d.count]]);
    rows('budget', body.budget, (d) => [[d.model], [d.le], [d.count]]);
    rows('models', body.models, (d) => [[d.name], [d.version], [d.origin, d.origin === 'package' ? 'ok' : 'warn'], [d.signer || 'unsigned', d.signer ? 'ok' : 'bad'], [d.modelDigest, 'digest'], [d.packageDigest || '-', 'digest'], [d.detectors || 'none', d.detectors === '' ? 'warn' : d.detectors.includes('(file)') ? 'warn' : 'ok']]);
    const a = body.audit;
    rows('audit', [
      ['origin', a.origin || '-'],
      ['latest checkpoint: tree size', a.checkpoint ? a.checkpoint.size : 'none yet'],
      ['latest checkpoint: time', a.checkpoint ? a.checkpoint.time : '-'],
      ['signature', a.verified === null ? 'not checked' : a.verified ? 'verified' : 'FAILED'],
    ], (d) => [[d[0]], [d[1], d[1] === 'verified' ? 'ok' : d[1] === 'FAILED' ? 'bad' : '']]);
    rows('stages', body.stages, (d) => [[d.stage], [d.meanUs.toFixed(1)], [d.count]]);
  }
  if (badToken) { fail('the token in the address is malformed'); return; }
  refresh();
  setInterval(refresh, 2000);
})();
`;

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

async function values(metric: { get(): Promise<{ values: Sample[] }> }): Promise<Sample[]> {
  return (await metric.get()).values;
}

/** The dashboard's data: counters from the metrics registry, models, and the audit log's head. */
export async function dashboardData(gw: Gateway): Promise<Record<string, unknown>> {
  const m = gw.metrics;
  const traffic: Record<string, number> = {};
  for (const v of await values(m.requests))
    traffic[String(v.labels['code'])] = (traffic[String(v.labels['code'])] ?? 0) + v.value;
  const denials = (await values(m.denials))
    .map((v) => ({ stage: String(v.labels['stage']), reason: String(v.labels['reason']), count: v.value }))
    .sort((a, b) => b.count - a.count);
  const detections = (await values(m.detections)).map((v) => ({
    model: String(v.labels['model']),
    detector: String(v.labels['detector']),
    count: v.value,
  }));
  const budget = (await values(m.budgetRemaining))
    .filter((v) => v.metricName?.endsWith('_bucket'))
    .map((v) => ({ model: String(v.labels['model']), le: String(v.labels['le']), count: v.value }));
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const v of await values(m.stageSeconds)) {
    const s = String(v.labels['stage']);
    if (v.metricName?.endsWith('_sum')) sums.set(s, v.value);
    if (v.metricName?.endsWith('_count')) counts.set(s, v.value);
  }
  const stages = [...counts].map(([stage, count]) => ({
    stage,
    count,
    meanUs: count > 0 ? ((sums.get(stage) ?? 0) / count) * 1e6 : 0,
  }));
  const models = [...gw.models.values()].map((s) => ({
    name: s.name,
    version: s.version,
    origin: s.loaded.origin,
    signer: s.loaded.signer,
    modelDigest: s.loaded.modelDigest,
    packageDigest: s.loaded.packageDigest ?? null,
    // "mahalanobis (package), stateful (file)": a file is unsigned state beside the package.
    detectors: Object.entries(s.detectorSources)
      .map(([k, src]) => `${k} (${src})`)
      .join(', '),
  }));
  return {
    time: new Date().toISOString(),
    traffic,
    denials,
    detections,
    budget,
    stages,
    models,
    audit: await auditStatus(gw),
  };
}

/** Per audit log (not per module: two gateways in one process must not see each other's status). */
const cache = new WeakMap<object, { at: number; value: Record<string, unknown> }>();

/** The latest stored checkpoint, verified against the log's public key (cached for 5 s). */
async function auditStatus(gw: Gateway): Promise<Record<string, unknown>> {
  const log = gw.audit;
  if (!log) return { origin: null, checkpoint: null, verified: null };
  const hit = cache.get(log);
  if (hit && Date.now() - hit.at < 5000) return hit.value;
  let value: Record<string, unknown>;
  try {
    const cps = await log.checkpoints();
    const last = cps.at(-1);
    const vkey = await log.publicKey();
    let verified: boolean | null = null;
    if (last && vkey) {
      try {
        verifyCheckpoint(last.note, parseVerifierKey(vkey), log.origin);
        verified = true;
      } catch {
        verified = false;
      }
    }
    value = {
      origin: log.origin,
      checkpoint: last ? { size: last.size, time: gw.lastCheckpoint?.time ?? null } : null,
      verified,
    };
  } catch {
    value = { origin: log.origin, checkpoint: null, verified: null, error: 'audit store unreachable' };
  }
  cache.set(log, { at: Date.now(), value });
  return value;
}
