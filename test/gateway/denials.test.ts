/**
 * Refusals in the audit log are bounded (src/gateway/denials.ts): each caller, and all anonymous
 * requests together, get entries of their own up to a token bucket; beyond it refusals are counted and
 * written as one request.denied.summary entry. Before, every refusal was its own entry, and refusals
 * need no credential: anyone reaching the gateway could grow the audit log without limit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { type AuditEntry, AuditLog, generateSignerKey, parseSignerKey } from '../../src/audit/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import { DenialRecorder, MAX_SUMMARY_GROUPS } from '../../src/gateway/denials.js';
import { fixture, startGateway, v2Body } from './gateway-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-denials-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = pino({ level: 'silent' });

async function openLog(name: string): Promise<AuditLog> {
  const signer = parseSignerKey(generateSignerKey('bulwark.test/denials').skey);
  return AuditLog.open({ store: { kind: 'sqlite', path: join(dir, `${name}.db`) }, signer });
}

async function entries(log: AuditLog): Promise<AuditEntry[]> {
  await log.flush();
  return log.tail(100_000);
}

type Summary = {
  count: number;
  groups: { caller: string | null; stage: string; code: string; count: number }[];
};

const denial = (caller: string | null, n: number, code = 'ERR_AUTH_MISSING') => ({
  requestId: `r-${caller ?? 'anon'}-${n}`,
  caller,
  stage: 'authenticate',
  code,
});

describe('DenialRecorder', () => {
  it('records up to the burst on its own, counts the rest by caller, stage and code, and refills at the rate', async () => {
    const log = await openLog('bucket');
    let t = 1_000_000;
    const r = new DenialRecorder(
      log,
      { perSecond: 1, burst: 3, summarySeconds: 60, maxCallers: 100 },
      silent,
      null,
      () => t,
    );
    let hashed = 0;
    for (let i = 0; i < 10; i++)
      r.record({
        ...denial(null, i),
        inputDigest: () => {
          hashed++;
          return `sha256:${'0'.repeat(64)}`;
        },
      });
    // A caller of its own is not held back by the anonymous flood.
    for (let i = 0; i < 4; i++) r.record(denial('alice', i, 'ERR_GATEWAY_RATE_LIMITED'));
    t += 2_000; // two more records' worth for each
    for (let i = 10; i < 13; i++) r.record(denial(null, i));
    await r.flush();
    const all = await entries(log);
    const own = all.filter((e) => e.type === 'request.denied');
    assert.deepEqual(
      own.map((e) => (e.data as { requestId: string }).requestId),
      ['r-anon-0', 'r-anon-1', 'r-anon-2', 'r-alice-0', 'r-alice-1', 'r-alice-2', 'r-anon-10', 'r-anon-11'],
    );
    assert.equal(hashed, 3, 'the input is hashed only for the refusals recorded on their own');
    assert.equal(
      (own[0]?.data as { inputDigest?: string } | undefined)?.inputDigest,
      `sha256:${'0'.repeat(64)}`,
    );
    const summaries = all.filter((e) => e.type === 'request.denied.summary');
    assert.equal(summaries.length, 1);
    const s = summaries[0]?.data as Summary;
    assert.equal(s.count, 7 + 1 + 1);
    assert.deepEqual(s.groups, [
      { caller: null, stage: 'authenticate', code: 'ERR_AUTH_MISSING', count: 8 },
      { caller: 'alice', stage: 'authenticate', code: 'ERR_GATEWAY_RATE_LIMITED', count: 1 },
    ]);
    // Every refusal is accounted for: 8 entries of their own and 9 counted.
    assert.equal(own.length + s.count, 10 + 4 + 3);
    assert.equal((await log.verify()).entries, all.length);
    await log.close();
  });

  it('caps a summary at MAX_SUMMARY_GROUPS groups and counts the rest under *', async () => {
    const log = await openLog('groups');
    const r = new DenialRecorder(
      log,
      { perSecond: 0.01, burst: 1, summarySeconds: 60, maxCallers: 5000 },
      silent,
      null,
      () => 0,
    );
    const callers = MAX_SUMMARY_GROUPS + 2;
    for (let c = 0; c < callers; c++) for (let i = 0; i < 2; i++) r.record(denial(`c${c}`, i));
    await r.flush();
    const all = await entries(log);
    assert.equal(all.filter((e) => e.type === 'request.denied').length, callers);
    const s = all.find((e) => e.type === 'request.denied.summary')?.data as Summary;
    assert.equal(s.count, callers);
    assert.equal(s.groups.length, MAX_SUMMARY_GROUPS + 1);
    assert.deepEqual(s.groups.at(-1), { caller: null, stage: '*', code: '*', count: 2 });
    await log.close();
  });

  it('writes the summary by itself after summarySeconds', async () => {
    const log = await openLog('timer');
    const r = new DenialRecorder(log, { perSecond: 1, burst: 1, summarySeconds: 1, maxCallers: 100 }, silent);
    for (let i = 0; i < 5; i++) r.record(denial(null, i));
    let summary: AuditEntry | undefined;
    for (let waited = 0; summary === undefined && waited < 10_000; waited += 100) {
      await new Promise((res) => setTimeout(res, 100));
      summary = (await entries(log)).find((e) => e.type === 'request.denied.summary');
    }
    assert.equal((summary?.data as Summary | undefined)?.count, 4);
    await r.flush();
    await log.close();
  });
});

describe('the gateway bounds what refused requests add to its audit log', () => {
  it('a flood without credentials: burst entries of their own, the rest in one summary; counted in metrics', async () => {
    const f = await fixture();
    const base = f.config();
    const config = f.config({
      audit: { ...base.audit, denials: { perSecond: 0.01, burst: 5, summarySeconds: 3600, maxCallers: 100 } },
    });
    const gw = await startGateway(config);
    const client = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
    const body = JSON.stringify(v2Body(f.rows.slice(0, 1)));
    for (let i = 0; i < 30; i++) {
      const r = await client.request('POST', '/v2/models/fraud/infer', body);
      assert.equal(r.status, 401, 'every request is refused the same way, recorded or counted');
    }
    client.close();
    const metrics = await gw.metrics.registry.getSingleMetricAsString(
      'gateway_audit_denials_summarized_total',
    );
    assert.match(metrics, /gateway_audit_denials_summarized_total 25$/m);
    await gw.close();
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: config.audit.store, create: false } });
    const all = await log.tail(1000);
    const own = all.filter((e) => e.type === 'request.denied');
    assert.equal(own.length, 5);
    const s = all.filter((e) => e.type === 'request.denied.summary');
    assert.equal(s.length, 1, 'written at shutdown');
    assert.deepEqual((s[0]?.data as Summary | undefined)?.groups, [
      { caller: null, stage: 'authenticate', code: 'ERR_AUTH_MISSING', count: 25 },
    ]);
    await log.close();
  });
});
