import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type Attester, ClientSession, parsePolicy } from '../../src/attest/index.js';
import { AuditLog } from '../../src/audit/index.js';
import { AttestedGatewayClient, GatewayClient, GatewayError } from '../../src/gateway/client.js';
import { gatewayConfig, modelMeasurement } from '../../src/gateway/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { makePki, pem, signNitro } from '../attest/fixtures.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

/** A policy that accepts software attestations pinning the served model's digest. */
function softwarePolicy(gw: Gateway, extra: Record<string, unknown> = {}) {
  const info = gw.enclave;
  assert.ok(info);
  const m = modelMeasurement('fraud');
  return parsePolicy({
    requireHardware: false,
    formats: ['software'],
    measurements: { [m]: [info.measurements[m]], runtime: [info.measurements['runtime']] },
    ...extra,
  });
}

const FRAME = { 'content-type': 'application/vnd.bulwark.session' };

/** A session set up by hand (to look at the wire): a raw client and the verified ClientSession. */
async function rawSession(gw: Gateway, f: Fixture, token: string) {
  const raw = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token });
  const nonce = randomBytes(32);
  const r = await raw.request('POST', '/v2/attestation', nonce, {
    'content-type': 'application/octet-stream',
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/vnd.bulwark.attestation+cbor');
  const s = await ClientSession.establish(new Uint8Array(r.raw), new Uint8Array(nonce), {
    policy: softwarePolicy(gw),
    roots: { software: [gw.enclave?.signerPublicKey as string] },
  });
  return { raw, s };
}

describe('gateway enclave.mode software: attested sessions over TLS 1.3 through the pipeline', () => {
  let f: Fixture;
  let gw: Gateway;
  let plain: GatewayClient;
  let attested: AttestedGatewayClient;
  let auditPath: string;

  before(async () => {
    f = await fixture();
    const config = f.config({
      enclave: { mode: 'software', attestation: { perMinute: 12 }, software: { moduleId: 'gw-test' } },
    });
    auditPath = config.audit.store;
    gw = await startGateway(config);
    const token = await f.token();
    const base = { url: gw.url, ca: f.ca.pem, servername: 'localhost', token };
    // The plain client is another principal: the same rows from one principal would look like probing
    // to the stateful detector (whose risk score reaches Cedar's deny-high-risk policy).
    plain = new GatewayClient({
      ...base,
      token: await f.token({ sub: 'client-plain', client_id: 'client-plain', jti: 'jti-plain' }),
    });
    attested = new AttestedGatewayClient({
      ...base,
      policy: softwarePolicy(gw),
      roots: { software: [gw.enclave?.signerPublicKey as string] },
    });
  });

  after(async () => {
    plain?.close();
    attested?.close();
    await gw?.close();
  });

  it('verifies the software attestation and answers sealed requests exactly as the plain path', async () => {
    const claims = await attested.connect();
    assert.equal(claims.format, 'software');
    assert.equal(claims.hardware, false);
    assert.equal(
      claims.measurements[modelMeasurement('fraud')],
      gw.models.get('fraud')?.loaded.modelDigest.replace('sha256:', ''),
    );
    const rows = f.rows.slice(0, 12);
    const a = await attested.inferRows('fraud', rows as never);
    const p = await plain.inferRows('fraud', rows as never);
    assert.deepEqual(a.outputs, p.outputs);
    assert.equal(a.model_name, 'fraud');
    // A second request in the same session (a DATA frame).
    const b = await attested.infer('fraud', v2Body(f.rows.slice(20, 23)) as never);
    const q = await plain.infer('fraud', v2Body(f.rows.slice(20, 23)) as never);
    assert.deepEqual(b.outputs, q.outputs);
  });

  it('still authorises with Cedar: another tenant is denied, and the denial arrives sealed', async () => {
    const other = new AttestedGatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ tenant: 'globex', jti: 'jti-globex' }),
      policy: softwarePolicy(gw),
      roots: { software: [gw.enclave?.signerPublicKey as string] },
    });
    try {
      await assert.rejects(
        other.inferRows('fraud', f.rows.slice(0, 1) as never),
        (e: GatewayError) => e instanceof GatewayError && e.status === 403 && e.code === 'ERR_POLICY_DENIED',
      );
    } finally {
      other.close();
    }
    // On the wire the denial is a 200 session frame; the 403 is inside it.
    const { raw, s } = await rawSession(gw, f, await f.token({ tenant: 'globex', jti: 'jti-globex2' }));
    try {
      const { frame, seq } = s.sealRequest(Buffer.from(JSON.stringify(v2Body(f.rows.slice(0, 1)))));
      const r = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(frame), FRAME);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/vnd.bulwark.session');
      assert.doesNotMatch(r.body, /ERR_POLICY_DENIED/);
      const inner = JSON.parse(Buffer.from(s.openResponse(new Uint8Array(r.raw), seq)).toString());
      assert.equal(inner.status, 403);
      assert.equal(inner.code, 'ERR_POLICY_DENIED');
      assert.equal(inner.body.code, 'ERR_POLICY_DENIED');
      assert.match(inner.requestId, /^[0-9a-f-]{36}$/);
    } finally {
      raw.close();
    }
    // Pipeline refusals travel sealed too: a string where a number belongs.
    await assert.rejects(
      attested.infer('fraud', {
        inputs: [{ name: 'amount', shape: [1], datatype: 'FP64', data: ['x'] }],
      } as never),
      (e: GatewayError) => e.status === 400 && e.code.startsWith('ERR_'),
    );
  });

  it('refuses a replayed frame and an unauthenticated attestation request, in plaintext with codes', async () => {
    // A principal of its own: rows the first test's principal sent again would look like probing to the
    // stateful detector, and this test is about the session layer.
    const { raw, s } = await rawSession(
      gw,
      f,
      await f.token({ sub: 'client-replay', client_id: 'client-replay', jti: 'jti-replay' }),
    );
    try {
      const { frame, seq } = s.sealRequest(Buffer.from(JSON.stringify(v2Body(f.rows.slice(0, 1)))));
      const headers = { 'content-type': 'application/vnd.bulwark.session' };
      const first = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(frame), headers);
      assert.equal(first.status, 200);
      const answer = JSON.parse(Buffer.from(s.openResponse(new Uint8Array(first.raw), seq)).toString());
      assert.equal(answer.status, 200);
      const again = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(frame), headers);
      assert.equal(again.status, 403);
      assert.equal(JSON.parse(again.body).code, 'ERR_SESSION_REPLAY');
      // A DATA frame replayed within the session.
      const d = s.sealRequest(Buffer.from(JSON.stringify(v2Body(f.rows.slice(1, 2)))));
      // Another principal cannot spend this session's frame (refused before decryption, so the owner
      // still can).
      const thief = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token({ sub: 'client-thief', client_id: 'client-thief', jti: 'jti-thief' }),
      });
      try {
        const stolen = await thief.request(
          'POST',
          '/v2/models/fraud/infer-sealed',
          Buffer.from(d.frame),
          headers,
        );
        assert.equal(stolen.status, 403);
        assert.equal(JSON.parse(stolen.body).code, 'ERR_SESSION_UNKNOWN');
        // Nor open a session with an attestation issued to someone else.
        const { raw: raw2, s: s2 } = await rawSession(gw, f, await f.token());
        raw2.close();
        const open2 = s2.sealRequest(Buffer.from(JSON.stringify(v2Body(f.rows.slice(2, 3)))));
        const r2 = await thief.request(
          'POST',
          '/v2/models/fraud/infer-sealed',
          Buffer.from(open2.frame),
          headers,
        );
        assert.equal(r2.status, 403);
        assert.equal(JSON.parse(r2.body).code, 'ERR_SESSION_UNKNOWN');
        assert.match(JSON.parse(r2.body).error, /another principal/);
      } finally {
        thief.close();
      }
      assert.equal(
        (await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(d.frame), headers)).status,
        200,
      );
      const dup = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(d.frame), headers);
      assert.equal(dup.status, 403);
      assert.equal(JSON.parse(dup.body).code, 'ERR_SESSION_REPLAY');
      // A tampered frame does not decrypt.
      const t = Buffer.from(s.sealRequest(Buffer.from('{}')).frame);
      t[t.length - 1] = (t[t.length - 1] as number) ^ 1;
      const bad = await raw.request('POST', '/v2/models/fraud/infer-sealed', t, headers);
      assert.equal(bad.status, 403);
      assert.equal(JSON.parse(bad.body).code, 'ERR_SESSION_DECRYPT');
      const json = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from('{}'), {
        'content-type': 'application/json',
      });
      assert.equal(json.status, 415);
      assert.equal(JSON.parse(json.body).code, 'ERR_GATEWAY_MEDIA_TYPE');
      const huge = await raw.request(
        'POST',
        '/v2/models/fraud/infer-sealed',
        Buffer.alloc(gw.config.server.bodyLimitBytes + 1024),
        headers,
      );
      assert.equal(huge.status, 413);
      assert.equal(JSON.parse(huge.body).code, 'ERR_GATEWAY_BODY_TOO_LARGE');
      const junk = await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from('hello'), headers);
      assert.equal(junk.status, 400);
      assert.equal(JSON.parse(junk.body).code, 'ERR_SESSION_MALFORMED');
    } finally {
      raw.close();
    }
    const anon = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
    try {
      const r = await anon.request('POST', '/v2/attestation', randomBytes(32), {
        'content-type': 'application/octet-stream',
      });
      assert.equal(r.status, 401);
      assert.equal(JSON.parse(r.body).code, 'ERR_AUTH_MISSING');
    } finally {
      anon.close();
    }
  });

  it('counts attestations, sessions opened and active, and refused replays (Prometheus)', async () => {
    const value = async (name: string, labels: Record<string, string> = {}) => {
      const m = (await gw.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
      assert.ok(m, `${name} is registered`);
      const v = m.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
      return v?.value ?? 0;
    };
    const replay = { route: 'session', code: 'ERR_SESSION_REPLAY' };
    const before = {
      issued: await value('gateway_attestations_issued_total'),
      opened: await value('gateway_attested_sessions_opened_total'),
      active: await value('gateway_attested_sessions_active'),
      replays: await value('gateway_attested_refusals_total', replay),
    };
    const { raw, s } = await rawSession(gw, f, await f.token());
    try {
      const { frame } = s.sealRequest(Buffer.from(JSON.stringify(v2Body(f.rows.slice(5, 6)))));
      assert.equal(
        (await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(frame), FRAME)).status,
        200,
      );
      assert.equal(
        (await raw.request('POST', '/v2/models/fraud/infer-sealed', Buffer.from(frame), FRAME)).status,
        403,
      );
    } finally {
      raw.close();
    }
    assert.equal(await value('gateway_attestations_issued_total'), before.issued + 1);
    assert.equal(await value('gateway_attested_sessions_opened_total'), before.opened + 1);
    assert.equal(await value('gateway_attested_sessions_active'), before.active + 1);
    assert.equal(await value('gateway_attested_refusals_total', replay), before.replays + 1);
    // Closed label sets only: no session id or caller in the exposition.
    const text = await gw.metrics.registry.metrics();
    assert.match(text, /gateway_attested_refusals_total\{route="session",code="ERR_SESSION_REPLAY"\}/);
    assert.doesNotMatch(text, new RegExp(s.sessionId));
  });

  it('rate-limits attestations per principal (each costs a signature)', async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'client-ratelimit', client_id: 'client-ratelimit', jti: 'jti-rl' }),
    });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 14; i++) {
        const r = await c.request('POST', '/v2/attestation', randomBytes(32), {
          'content-type': 'application/octet-stream',
        });
        codes.push(r.status);
        if (r.status !== 200) assert.equal(JSON.parse(r.body).code, 'ERR_GATEWAY_RATE_LIMITED');
      }
      assert.deepEqual(codes, [...Array(12).fill(200), 429, 429]);
    } finally {
      c.close();
    }
  });

  it('a client whose policy requires hardware refuses the software attestation and sends nothing', async () => {
    const prod = new AttestedGatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'client-prod', client_id: 'client-prod', jti: 'jti-prod' }),
      policy: parsePolicy({}),
      roots: { software: [gw.enclave?.signerPublicKey as string] },
    });
    try {
      await assert.rejects(prod.connect(), { code: 'ERR_ATTEST_HARDWARE_REQUIRED' });
      await assert.rejects(prod.inferRows('fraud', f.rows.slice(0, 1) as never), {
        code: 'ERR_ATTEST_HARDWARE_REQUIRED',
      });
    } finally {
      prod.close();
    }
    // A policy pinning another model digest refuses too.
    const pinned = new AttestedGatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'client-pin', client_id: 'client-pin', jti: 'jti-pin' }),
      policy: parsePolicy({
        requireHardware: false,
        measurements: { [modelMeasurement('fraud')]: ['00'.repeat(32)] },
      }),
      roots: { software: [gw.enclave?.signerPublicKey as string] },
    });
    try {
      await assert.rejects(pinned.connect(), { code: 'ERR_ATTEST_MEASUREMENT' });
    } finally {
      pinned.close();
    }
  });

  it('records the sealed predictions and the session openings in the audit log', async () => {
    await gw.audit?.flush();
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: auditPath } });
    try {
      const tail = await log.tail(500);
      const sessions = tail.filter((e) => e.type === 'attestation.session');
      const issued = sessions.filter((e) => (e.data as { event: string }).event === 'issued');
      const opened = sessions.filter((e) => (e.data as { event: string }).event === 'opened');
      assert.ok(issued.length >= 3, `issued ${issued.length}`);
      assert.ok(opened.length >= 2, `opened ${opened.length}`);
      for (const o of opened) {
        const d = o.data as { transcript: string; format: string; hardware: boolean; sessionId: string };
        assert.equal(d.format, 'software');
        assert.equal(d.hardware, false);
        assert.match(d.sessionId, /^[0-9a-f]{32}$/);
        assert.ok(issued.some((i) => (i.data as { transcript: string }).transcript === d.transcript));
      }
      const preds = tail.filter((e) => e.type === 'prediction');
      // Plain and sealed requests of the first test: the same model digest, caller from the outer token.
      assert.ok(preds.length >= 4);
      for (const p of preds)
        assert.equal(
          (p.data as { modelDigest: string }).modelDigest,
          gw.models.get('fraud')?.loaded.modelDigest,
        );
      const denied = tail.filter((e) => e.type === 'request.denied');
      assert.ok(denied.some((e) => (e.data as { code: string }).code === 'ERR_POLICY_DENIED'));
      // Session-layer refusals are audited too, with the refused caller.
      const session = denied.filter((e) => (e.data as { stage: string }).stage === 'session');
      for (const code of ['ERR_SESSION_REPLAY', 'ERR_SESSION_DECRYPT', 'ERR_SESSION_UNKNOWN'])
        assert.ok(
          session.some((e) => (e.data as { code: string }).code === code),
          code,
        );
      assert.ok(
        session.some((e) => /client-thief/.test(String((e.data as { caller: string | null }).caller))),
      );
      assert.ok(
        denied.some(
          (e) =>
            (e.data as { stage: string; code: string }).stage === 'attestation' &&
            (e.data as { code: string }).code === 'ERR_GATEWAY_RATE_LIMITED',
        ),
      );
    } finally {
      await log.close();
    }
  });
});

describe('gateway enclave configuration', () => {
  it('accepts off, software and nitro, and names the key of every mistake', async () => {
    const f = await fixture();
    assert.equal(f.config({ enclave: { mode: 'off' } }).enclave?.mode, 'off');
    const c = f.config({ enclave: { mode: 'nitro', nitro: { helper: '/usr/local/bin/bulwark-nsm' } } });
    assert.equal(c.enclave?.attestation.perMinute, 30);
    assert.equal(c.enclave?.sessionSeconds, 3600);
    const base = f.config() as unknown as Record<string, unknown>;
    for (const [enclave, key] of [
      [{ mode: 'sgx' }, 'enclave.mode'],
      [{ mode: 'software', attestation: { perMinute: 0 } }, 'enclave.attestation.perMinute'],
      [{ mode: 'software', sessionSeconds: 1.5 }, 'enclave.sessionSeconds'],
      [{ mode: 'off', software: {} }, 'enclave.software'],
      [{ mode: 'software', nitro: {} }, 'enclave.nitro'],
      [{ mode: 'software', software: { timeout: 5 } }, 'enclave.software'],
      [{ mode: 'software', ttl: 5 }, 'enclave'],
    ] as const) {
      assert.throws(
        () => gatewayConfig({ ...base, enclave }),
        (e: Error & { code?: string }) => e.code === 'ERR_CONFIG_INVALID' && e.message.includes(key),
        JSON.stringify(enclave),
      );
    }
  });
});

/** Nitro documents signed under a test root (a substitute for the NSM), and that root's PKI. */
async function testNitroAttester() {
  const pki = await makePki(new Date());
  const chain = { leaf: pki.leaf, bundle: [pki.root, pki.inter] };
  const attester: Attester = {
    format: 'nitro',
    attest: async (b) => ({ document: signNitro({ timestamp: Date.now(), ...b }, chain) }),
  };
  return { pki, attester };
}

describe('gateway enclave.mode nitro: the in-enclave session path (documents signed under a test root)', () => {
  it('a production policy (hardware required, PCR0 pinned) accepts it and predictions match the plain path', async () => {
    const { pki, attester } = await testNitroAttester();
    const f = await fixture();
    // Detectors in monitor mode: the same rows go sealed then plain from one principal (near-duplicates).
    const config = f.config({ enclave: { mode: 'nitro' }, detectors: { mode: 'monitor' } });
    const gw = await startGateway(config, { enclaveAttester: attester });
    const base = { url: gw.url, ca: f.ca.pem, servername: 'localhost', token: await f.token() };
    const plain = new GatewayClient({
      ...base,
      token: await f.token({ sub: 'client-plain', client_id: 'client-plain', jti: 'jti-plain' }),
    });
    const c = new AttestedGatewayClient({
      ...base,
      policy: parsePolicy({ measurements: { PCR0: ['07'.repeat(48)] } }),
      roots: { nitro: [pem(pki.root)] },
    });
    const wrongPcr = new AttestedGatewayClient({
      ...base,
      policy: parsePolicy({ measurements: { PCR0: ['08'.repeat(48)] } }),
      roots: { nitro: [pem(pki.root)] },
    });
    try {
      assert.equal(gw.enclave?.mode, 'nitro');
      const claims = await c.connect();
      assert.equal(claims.format, 'nitro');
      assert.equal(claims.hardware, true);
      const rows = f.rows.slice(40, 50);
      assert.deepEqual(
        (await c.inferRows('fraud', rows as never)).outputs,
        (await plain.inferRows('fraud', rows as never)).outputs,
      );
      await assert.rejects(wrongPcr.connect(), { code: 'ERR_ATTEST_MEASUREMENT' });
      await gw.audit?.flush();
      const log = await AuditLog.open({ store: { kind: 'sqlite', path: config.audit.store } });
      try {
        const opened = (await log.tail(100)).filter(
          (e) => e.type === 'attestation.session' && (e.data as { event: string }).event === 'opened',
        );
        assert.equal(opened.length, 1);
        assert.equal((opened[0] as { data: { hardware: boolean } }).data.hardware, true);
      } finally {
        await log.close();
      }
    } finally {
      plain.close();
      c.close();
      wrongPcr.close();
      await gw.close();
    }
  });
});

describe('attestation rate limit on the limiter backend', () => {
  it('two replicas sharing Redis draw from one count per principal; an unreachable store refuses (503)', async () => {
    const { Redis } = await import('ioredis');
    const { attester } = await testNitroAttester();
    const f = await fixture();
    const prefix = `bulwark-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const config = f.config({
      enclave: { mode: 'nitro', attestation: { perMinute: 3 } },
      limits: {
        backend: 'redis',
        redis: { url: 'redis://127.0.0.1:6379', keyPrefix: prefix },
        requestsPerSecond: 1000,
      },
    });
    const a = await startGateway(config, { enclaveAttester: attester });
    const b = await startGateway(config, { enclaveAttester: attester });
    const token = await f.token({
      sub: 'client-shared-rl',
      client_id: 'client-shared-rl',
      jti: 'jti-shared-rl',
    });
    const ca = new GatewayClient({ url: a.url, ca: f.ca.pem, servername: 'localhost', token });
    const cb = new GatewayClient({ url: b.url, ca: f.ca.pem, servername: 'localhost', token });
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      const attest = async (c: GatewayClient) => {
        const r = await c.request('POST', '/v2/attestation', randomBytes(32), {
          'content-type': 'application/octet-stream',
        });
        return r.status === 200 ? 200 : `${r.status} ${JSON.parse(r.body).code}`;
      };
      // 3 per minute in all: two on one replica, one on the other, then both refuse.
      const codes = [
        await attest(ca),
        await attest(cb),
        await attest(ca),
        await attest(cb),
        await attest(ca),
      ];
      assert.deepEqual(codes, [
        200,
        200,
        200,
        '429 ERR_GATEWAY_RATE_LIMITED',
        '429 ERR_GATEWAY_RATE_LIMITED',
      ]);
      // The count lives in Redis under the configured prefix, keyed by a hash of the principal.
      const keys = await redis.keys(`${prefix}attestation*`);
      assert.equal(keys.length, 1);
      assert.doesNotMatch(keys[0] as string, /client-shared-rl/);
    } finally {
      ca.close();
      cb.close();
      await a.close();
      await b.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
    // Fail closed: a limiter whose store is down refuses instead of letting attestations through.
    const { principalLimit, connectRedis } = await import('../../src/gateway/limits.js');
    const down = connectRedis('redis://127.0.0.1:1');
    try {
      await assert.rejects(
        principalLimit('attestation', 3, { redis: down, keyPrefix: prefix }).consume('someone'),
        { code: 'ERR_GATEWAY_LIMITER_UNAVAILABLE' },
      );
    } finally {
      down.disconnect();
    }
  });
});

describe('gateway enclave.mode software: the worker dies', () => {
  it('fails closed: sealed requests and attestations 503 ERR_ENCLAVE_UNAVAILABLE, not ready, plain path still served', async () => {
    const f = await fixture();
    const gw = await startGateway(f.config({ enclave: { mode: 'software' } }));
    const token = await f.token({ sub: 'client-dies', client_id: 'client-dies', jti: 'jti-dies' });
    const base = { url: gw.url, ca: f.ca.pem, servername: 'localhost', token };
    const plain = new GatewayClient(base);
    const c = new AttestedGatewayClient({
      ...base,
      policy: softwarePolicy(gw),
      roots: { software: [gw.enclave?.signerPublicKey as string] },
    });
    try {
      await c.connect();
      assert.equal(await plain.ready(), true);
      const pid = gw.enclave?.workerPid as number;
      process.kill(pid, 'SIGKILL'); // the worker this test's gateway started
      while (gw.ready) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await plain.ready(), false);
      await assert.rejects(c.inferRows('fraud', f.rows.slice(0, 1) as never), {
        status: 503,
        code: 'ERR_ENCLAVE_UNAVAILABLE',
      });
      const r = await plain.request('POST', '/v2/attestation', randomBytes(32), {
        'content-type': 'application/octet-stream',
      });
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.body).code, 'ERR_ENCLAVE_UNAVAILABLE');
      const out = await plain.inferRows('fraud', f.rows.slice(60, 61) as never);
      assert.equal(out.model_name, 'fraud');
    } finally {
      plain.close();
      c.close();
      await gw.close();
    }
  });
});
