import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Gauge } from 'prom-client';
import { AuditLog, parseVerifierKey, ThreadedAuditLog, verifyCheckpoint } from '../../src/audit/index.js';
import { predictDataset } from '../../src/cli/commands/predict.js';
import { Dataset, type Row } from '../../src/data/index.js';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import type { Gateway } from '../../src/gateway/server.js';
import { goodClaims, issuerKey, mint } from './auth-fixtures.js';
import { type Fixture, fixture, makeRows, startGateway, v2Body } from './gateway-fixtures.js';

// The whole suite runs with the audit log on the event loop (the default) and on its own thread.
for (const writer of ['inline', 'thread'] as const)
  describe(`gateway pipeline over TLS 1.3 (real model, Cedar, SQLite audit, audit.writer ${writer})`, () => {
    let f: Fixture;
    let gw: Gateway;
    let mtls: GatewayClient;
    let bearer: GatewayClient;
    let anon: GatewayClient;
    let auditPath: string;

    before(async () => {
      f = await fixture();
      const base0 = f.config();
      const config = { ...base0, audit: { ...base0.audit, writer } };
      auditPath = config.audit.store;
      gw = await startGateway(config);
      const base = { url: gw.url, ca: f.ca.pem, servername: 'localhost' };
      mtls = new GatewayClient({ ...base, cert: f.client.pem, key: f.client.keyPem });
      const token = await f.token();
      bearer = new GatewayClient({ ...base, token });
      anon = new GatewayClient(base);
    });

    after(async () => {
      for (const c of [mtls, bearer, anon]) c?.close();
      await gw?.close();
    });

    it('answers health, readiness, server and model metadata', async () => {
      assert.equal(await anon.live(), true);
      assert.equal(await anon.ready(), true);
      const meta = await mtls.modelMetadata('fraud');
      assert.equal(meta['name'], 'fraud');
      assert.deepEqual((meta['inputs'] as { name: string }[]).map((i) => i.name).sort(), [
        'age',
        'amount',
        'kind',
      ]);
      assert.equal(await mtls.modelReady('fraud'), true);
      await assert.rejects(anon.modelMetadata('fraud'), (e: GatewayError) => e.status === 401);
    });

    it('predicts for an mTLS workload and for a bearer token, with top-1 labels and rounded probabilities', async () => {
      const rows = f.rows.slice(0, 5);
      for (const c of [mtls, bearer]) {
        const out = await c.infer('fraud', v2Body(rows) as never);
        assert.equal(out.model_name, 'fraud');
        const label = out.outputs.find((o) => o.name === 'label');
        const probs = out.outputs.find((o) => o.name === 'probabilities');
        assert.deepEqual(label?.shape, [5, 1]);
        for (const l of label?.data ?? []) assert.ok(l === 'yes' || l === 'no');
        for (const p of (probs?.data ?? []) as number[]) {
          assert.ok(p >= 0.5 && p <= 1, `top-1 probability ${p}`);
          assert.equal(Math.round(p * 100) / 100, p, 'rounded to 2 digits');
        }
      }
    });

    it('answers what `bulwark predict` answers for the same model and rows', async () => {
      const rows = f.rows.slice(10, 40);
      const out = await bearer.inferRows('fraud', rows as never);
      const ds = Dataset.fromRows(rows, { amount: 'number', age: 'number', kind: 'string' });
      const p = await predictDataset(readFileSync(join(f.dir, 'fraud.onnx')), ds);
      assert.deepEqual(
        out.outputs.find((o) => o.name === 'label')?.data,
        Array.from(p.predicted, (c) => p.classValues[c]),
      );
    });

    it('refuses an out-of-distribution row (Mahalanobis) with 403 even though it is within the schema bounds', async () => {
      // The schema allows amounts to 5,000; training data stopped at 1,000.
      await assert.rejects(
        bearer.inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }]),
        (e: GatewayError) => {
          assert.equal(e.status, 403);
          assert.equal(e.code, 'ERR_GATEWAY_DETECTED');
          assert.match(e.message, /mahalanobis/);
          return true;
        },
      );
    });

    it('denies without credentials (401), with a forged token (401), and for another tenant (403)', async () => {
      await assert.rejects(anon.inferRows('fraud', [f.rows[0] as never]), (e: GatewayError) => {
        assert.equal(e.status, 401);
        assert.equal(e.code, 'ERR_AUTH_MISSING');
        return true;
      });
      const attacker = await issuerKey('ES256', 'k1');
      const forged = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await mint(
          attacker,
          goodClaims({ iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 }),
        ),
      });
      await assert.rejects(forged.inferRows('fraud', [f.rows[0] as never]), (e: GatewayError) => {
        assert.equal(e.status, 401);
        assert.match(e.code, /^ERR_AUTH_TOKEN_/);
        return true;
      });
      forged.close();
      const other = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token({ tenant: 'globex' }),
      });
      await assert.rejects(other.inferRows('fraud', [f.rows[0] as never]), (e: GatewayError) => {
        assert.equal(e.status, 403);
        assert.equal(e.code, 'ERR_POLICY_DENIED');
        return true;
      });
      other.close();
    });

    it('tells only an authenticated caller permitted on a name which versions exist (401, then 403, before 404)', async () => {
      const row = f.rows[0] as never;
      // Without credentials, an unknown name, an unknown version and the served model look alike.
      for (const [name, version] of [
        ['fraud', undefined],
        ['no-such-model', undefined],
        ['fraud', '999'],
      ] as const)
        await assert.rejects(anon.inferRows(name, [row], version ? { version } : {}), (e: GatewayError) => {
          assert.equal(e.status, 401, `${name}@${version}`);
          assert.equal(e.code, 'ERR_AUTH_MISSING');
          return true;
        });
      // A caller permitted on the model learns that a version does not exist.
      await assert.rejects(bearer.inferRows('fraud', [row], { version: '999' }), (e: GatewayError) => {
        assert.equal(e.status, 404);
        assert.equal(e.code, 'ERR_GATEWAY_NOT_FOUND');
        assert.match(e.message, /no such model version/);
        return true;
      });
      // A name no policy permits is refused as the metadata route refuses it (403), so a caller of
      // another tenant cannot tell served names (403) from free ones (a 404 before).
      const other = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token({ tenant: 'globex' }),
      });
      const cases: [GatewayClient, string, string | undefined][] = [
        [bearer, 'no-such-model', undefined],
        [other, 'no-such-model', undefined],
        [other, 'fraud', undefined],
        [other, 'fraud', '999'],
      ];
      for (const [c, name, version] of cases) {
        const got = await Promise.allSettled([
          c.inferRows(name, [row], version ? { version } : {}),
          c.modelMetadata(name, version),
        ]);
        for (const r of got) {
          assert.equal(r.status, 'rejected');
          const e = (r as PromiseRejectedResult).reason as GatewayError;
          assert.equal(`${e.status} ${e.code}`, '403 ERR_POLICY_DENIED', `${name}@${version}`);
        }
      }
      other.close();
    });

    it('refuses malformed and out-of-schema requests with 4xx and a code, coercing nothing', async () => {
      const row = f.rows[0] as Row;
      const cases: [unknown, number, string][] = [
        [{ ...v2Body([row]), extra: 1 }, 400, 'ERR_GATEWAY_REQUEST_INVALID'],
        [v2Body([{ ...row, amount: '120.5' }]), 400, 'ERR_INPUT_INVALID'],
        [v2Body([{ ...row, amount: 6000 }]), 400, 'ERR_INPUT_INVALID'],
        [v2Body([{ ...row, kind: 'Z' }]), 400, 'ERR_INPUT_INVALID'],
        [v2Body([{ ...row, age: 30.5 }]), 400, 'ERR_GATEWAY_REQUEST_INVALID'],
        [
          { inputs: [{ name: 'amount', shape: [2], datatype: 'FP64', data: [1] }] },
          400,
          'ERR_GATEWAY_REQUEST_INVALID',
        ],
        [{ inputs: [{ name: 'amount', shape: [1], datatype: 'FP64', data: [1] }] }, 400, 'ERR_INPUT_INVALID'],
      ];
      for (const [body, status, code] of cases) {
        const r = await bearer.request('POST', '/v2/models/fraud/infer', JSON.stringify(body));
        assert.equal(r.status, status, r.body);
        assert.equal(JSON.parse(r.body).code, code, r.body);
      }
      const raw: [string, Record<string, string>, number, string][] = [
        ['{"inputs": [', {}, 400, 'ERR_GATEWAY_REQUEST_INVALID'],
        ['{"__proto__": {"x": 1}, "inputs": []}', {}, 400, 'ERR_GATEWAY_REQUEST_INVALID'],
        [`${'['.repeat(50)}${']'.repeat(50)}`, {}, 400, 'ERR_GATEWAY_REQUEST_INVALID'],
        ['{"inputs": []}', { 'content-type': 'text/plain' }, 415, 'ERR_GATEWAY_MEDIA_TYPE'],
        [JSON.stringify({ pad: 'x'.repeat(2 << 20) }), {}, 413, 'ERR_GATEWAY_BODY_TOO_LARGE'],
      ];
      for (const [body, headers, status, code] of raw) {
        const r = await bearer.request('POST', '/v2/models/fraud/infer', body, headers);
        assert.equal(r.status, status, r.body);
        assert.equal(JSON.parse(r.body).code, code);
      }
      const nf = await bearer.request('POST', '/v2/models/nope/infer', JSON.stringify(v2Body([row])));
      assert.equal(nf.status, 403, 'a name no policy permits');
      const nv = await bearer.request(
        'POST',
        '/v2/models/fraud/versions/9/infer',
        JSON.stringify(v2Body([row])),
      );
      assert.equal(nv.status, 404);
      const m = await bearer.request('GET', '/v2/models/fraud/infer');
      assert.equal(m.status, 405);
    });

    it('flags a black-box probing stream (near-identical queries) with the stateful detector: 403', async () => {
      const probe = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token({ sub: 'prober', client_id: 'prober' }),
      });
      const base = { amount: 500, age: 40, kind: 'B' };
      let denied: GatewayError | null = null;
      for (let i = 0; i < 40 && denied === null; i++) {
        try {
          await probe.inferRows('fraud', [{ ...base, amount: 500 + i * 0.01 }]);
        } catch (e) {
          denied = e as GatewayError;
        }
      }
      probe.close();
      assert.ok(denied, 'the probing stream was never flagged');
      assert.equal(denied.status, 403);
      assert.equal(denied.code, 'ERR_GATEWAY_DETECTED');
      // Ordinary varied traffic of another caller is not affected.
      const out = await mtls.inferRows('fraud', makeRows(3, 5).map(({ fraud: _f, ...r }) => r) as never);
      assert.equal(out.outputs[0]?.data.length, 3);
    });

    it('records predictions and denials in the audit log, hashing the input, and checkpoints it', async () => {
      const body = JSON.stringify(v2Body([f.rows[1] as never], { id: 'req-audit-1' }));
      const r = await bearer.request('POST', '/v2/models/fraud/infer', body);
      assert.equal(r.status, 200);
      const requestId = r.headers['x-request-id'];
      assert.ok(gw.audit instanceof (writer === 'thread' ? ThreadedAuditLog : AuditLog));
      await gw.audit?.flush();
      const cp = await gw.checkpoint();
      assert.ok(cp && cp.size > 0);
      const log = await AuditLog.open({ store: { kind: 'sqlite', path: auditPath } });
      const tail = await log.tail(200);
      const mine = tail.find(
        (e) => e.type === 'prediction' && (e.data as { requestId: string }).requestId === requestId,
      );
      assert.ok(mine, 'prediction recorded');
      const d = mine.data as {
        inputDigest: string;
        caller: string;
        modelDigest: string;
        detections: unknown[];
      };
      assert.equal(d.inputDigest, `sha256:${createHash('sha256').update(body).digest('hex')}`);
      assert.match(d.caller, /^https:\/\/issuer\.bulwark\.test\|/);
      assert.equal(d.modelDigest, gw.models.get('fraud')?.loaded.modelDigest);
      const denied = tail.filter((e) => e.type === 'request.denied');
      assert.ok(denied.some((e) => (e.data as { code: string }).code === 'ERR_AUTH_MISSING'));
      assert.ok(denied.some((e) => (e.data as { stage: string }).stage === 'parse'));
      const cps = await log.checkpoints();
      const vkey = await log.publicKey();
      assert.ok(vkey);
      const head = verifyCheckpoint((cps.at(-1) as { note: string }).note, parseVerifierKey(vkey));
      assert.ok(head.size >= 1);
      await log.close();
    });

    it('exposes Prometheus metrics with closed label sets only', async () => {
      const url = gw.metricsUrl as string;
      const text = await (await fetch(url)).text();
      assert.match(text, /gateway_requests_total\{model="fraud",code="OK"\} \d+/);
      assert.match(text, /gateway_stage_duration_seconds_bucket\{le="[^"]+",stage="validate"\}/);
      assert.match(text, /gateway_denials_total\{stage="authenticate",reason="ERR_AUTH_MISSING"\}/);
      assert.match(text, /gateway_detections_total\{model="fraud",detector="stateful"\}/);
      assert.doesNotMatch(text, /spiffe:|issuer\.bulwark|127\.0\.0\.1|prober|Bearer/);
    });

    it('answers 500 when a metrics collector fails, and stays up (it was an unhandled rejection)', async () => {
      const url = gw.metricsUrl as string;
      new Gauge({
        name: 'test_failing_collector',
        help: 'a collector that throws',
        registers: [gw.metrics.registry],
        collect() {
          throw new Error('collector down');
        },
      });
      try {
        const r = await fetch(url);
        assert.equal(r.status, 500);
        assert.equal(await r.text(), 'metrics collection failed\n');
      } finally {
        gw.metrics.registry.removeSingleMetric('test_failing_collector');
      }
      assert.equal((await fetch(url)).status, 200);
    });
  });
