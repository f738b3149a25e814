/**
 * Dependencies going away and coming back (real Redis and PostgreSQL behind a TCP relay the test cuts and
 * restores; a policy that fails to evaluate), limits and query budgets shared by two replicas through
 * Redis, TLS 1.3 only, mutual TLS required, certificate and policy reload without restart, and a
 * graceful shutdown that answers every request in flight and checkpoints the audit log.
 */
import assert from 'node:assert/strict';
import { randomBytes, type X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import pg from 'pg';
import { AuditLog, generateSignerKey, parseVerifierKey, verifyCheckpoint } from '../../src/audit/index.js';
import { isBulwarkError } from '../../src/core/index.js';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import type { Gateway } from '../../src/gateway/server.js';
import { makeLeaf } from './auth-fixtures.js';
import { type Fixture, fixture, Relay, startGateway } from './gateway-fixtures.js';

const REDIS = { host: '127.0.0.1', port: 6379 };
const PG_URL = process.env['BULWARK_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const row = { amount: 120.5, age: 39, kind: 'B' };

async function status(
  c: GatewayClient,
  rows: Record<string, number | string>[] = [row],
): Promise<[number, string]> {
  try {
    await c.inferRows('fraud', rows);
    return [200, 'OK'];
  } catch (e) {
    const g = e as GatewayError;
    if (typeof g.status !== 'number') throw e;
    return [g.status, g.code];
  }
}

/** Polls every `intervalMs` until `fn` gives `want` (recovery happens in the background: no fixed sleeps). */
async function eventually<T>(
  fn: () => Promise<T>,
  want: T,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await fn();
  while (JSON.stringify(last) !== JSON.stringify(want) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, intervalMs));
    last = await fn();
  }
  return last;
}

describe('gateway faults, limits and operations', () => {
  let f: Fixture;
  const opened: Gateway[] = [];
  const clients: GatewayClient[] = [];

  before(async () => {
    f = await fixture();
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const g of opened) await g.close().catch(() => {});
  });

  async function gateway(over: Parameters<Fixture['config']>[0] = {}): Promise<Gateway> {
    const gw = await startGateway(f.config(over));
    opened.push(gw);
    return gw;
  }
  async function client(gw: Gateway, claims: Record<string, unknown> = {}): Promise<GatewayClient> {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: `c-${randomBytes(4).toString('hex')}`, ...claims }),
    });
    clients.push(c);
    return c;
  }

  it('Redis down: 503 ERR_GATEWAY_LIMITER_UNAVAILABLE and not ready; recovers by itself when Redis returns', async () => {
    const relay = new Relay(REDIS.host, REDIS.port);
    await relay.up();
    const prefix = `bulwark-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const gw = await gateway({
      limits: {
        backend: 'redis',
        redis: { url: `redis://127.0.0.1:${relay.port}`, keyPrefix: prefix },
        requestsPerSecond: 1000,
      },
    });
    const c = await client(gw);
    assert.deepEqual(await eventually(() => status(c), [200, 'OK']), [200, 'OK']);
    await relay.down();
    assert.deepEqual(await eventually(() => status(c), [503, 'ERR_GATEWAY_LIMITER_UNAVAILABLE']), [
      503,
      'ERR_GATEWAY_LIMITER_UNAVAILABLE',
    ]);
    assert.equal(await c.ready(), false);
    await relay.up();
    assert.deepEqual(await eventually(() => status(c), [200, 'OK']), [200, 'OK']);
    assert.equal(await c.ready(), true);
    await gw.close();
    await relay.down();
  });

  it('rate limit and query budget: 429 with Retry-After; the budget is shared by two replicas through Redis', async () => {
    const prefix = `bulwark-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const limits = {
      backend: 'redis',
      redis: { url: `redis://${REDIS.host}:${REDIS.port}`, keyPrefix: prefix },
      requestsPerSecond: 1000,
      queryBudget: { queries: 3, windowSeconds: 3600 },
    };
    const a = await gateway({ limits });
    const b = await gateway({ limits });
    const sub = `budget-${randomBytes(4).toString('hex')}`;
    const ca = await client(a, { sub });
    const cb = await client(b, { sub });
    assert.deepEqual(await eventually(() => status(ca, [row, row]), [200, 'OK']), [200, 'OK']);
    const r = await cb.request(
      'POST',
      '/v2/models/fraud/infer',
      JSON.stringify({
        inputs: [
          { name: 'amount', shape: [2], datatype: 'FP64', data: [1, 2] },
          { name: 'age', shape: [2], datatype: 'INT64', data: [30, 31] },
          { name: 'kind', shape: [2], datatype: 'BYTES', data: ['A', 'B'] },
        ],
      }),
    );
    assert.equal(r.status, 429);
    assert.equal(JSON.parse(r.body).code, 'ERR_GATEWAY_BUDGET_EXHAUSTED');
    assert.ok(Number(r.headers['retry-after']) > 3000);
    // Another caller has its own budget.
    assert.deepEqual(await status(await client(b)), [200, 'OK']);
    await a.close();
    await b.close();

    const slow = await gateway({ limits: { backend: 'memory', requestsPerSecond: 2, burst: 2 } });
    const cs = await client(slow);
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await status(cs));
    assert.deepEqual(got[2], [429, 'ERR_GATEWAY_RATE_LIMITED']);
    await slow.close();
  });

  it('a SQLite audit.store in a missing folder: the gateway does not start, names audit.store, creates nothing', async () => {
    const base = f.config();
    const missing = join(f.dir, `no-such-${randomBytes(3).toString('hex')}`);
    await assert.rejects(
      startGateway({ ...base, audit: { ...base.audit, store: join(missing, 'audit.db') } }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_FILE_NOT_FOUND') &&
        e.message.includes('(audit.store)') &&
        e.message.includes(`no such folder: ${missing}`),
    );
    assert.equal(existsSync(missing), false);
  });

  it('PostgreSQL audit store down: predictions refused with 503 ERR_AUDIT_UNAVAILABLE (fail closed), readiness false; both recover', async () => {
    const target = new URL(PG_URL);
    const relay = new Relay(target.hostname, Number(target.port || 5432));
    await relay.up();
    const via = new URL(PG_URL);
    via.hostname = '127.0.0.1';
    via.port = String(relay.port);
    const schema = `gw_test_${process.pid}_${randomBytes(3).toString('hex')}`;
    const base = f.config();
    const gw = await gateway({
      audit: { ...base.audit, store: via.toString(), schema, checkpointSeconds: 0 },
    });
    try {
      const c = await client(gw);
      assert.deepEqual(await status(c), [200, 'OK']);
      assert.equal(await c.ready(), true);
      await relay.down();
      assert.deepEqual(await status(c), [503, 'ERR_AUDIT_UNAVAILABLE']);
      // A replica that can only refuse leaves the rotation, and comes back with no traffic needed.
      assert.equal(await eventually(() => c.ready(), false), false);
      await relay.up();
      assert.equal(await eventually(() => c.ready(), true), true);
      assert.deepEqual(await eventually(() => status(c), [200, 'OK']), [200, 'OK']);
      await gw.close();
      // Every acknowledged prediction is in the log, and the log verifies.
      const log = await AuditLog.open({ store: { kind: 'postgres', url: PG_URL, schema } });
      const report = await log.verify();
      assert.ok(report.size >= 2);
      await log.close();
    } finally {
      await relay.down();
      const client_ = new pg.Client({ connectionString: PG_URL });
      await client_.connect();
      await client_.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client_.end();
    }
  });

  it('policy engine failing: 503 ERR_POLICY_ENGINE, never allowed; a fixed policy is reloaded without restart', async () => {
    const file = join(f.dir, `broken-${randomBytes(3).toString('hex')}.cedar`);
    // Without a schema this parses, and fails at evaluation: the context has no `nope`.
    writeFileSync(file, 'permit (principal, action, resource) when { context.nope == 1 };\n');
    const base = f.config();
    const gw = await gateway({ policy: { files: [file], models: base.policy.models } });
    const c = await client(gw);
    assert.deepEqual(await status(c), [503, 'ERR_POLICY_ENGINE']);
    writeFileSync(file, 'permit (principal, action == Bulwark::Action::"predict", resource);\n');
    await gw.reload();
    assert.deepEqual(await status(c), [200, 'OK']);
    await gw.close();
  });

  it('speaks TLS 1.3 only, requires a client certificate with clientAuth require, and reloads its certificate', async () => {
    const base = f.config();
    const gw = await gateway({
      server: { ...base.server, tls: { ...(base.server.tls as object), clientAuth: 'require' } },
    });
    const url = new URL(gw.url);
    const handshake = (o: tls.ConnectionOptions) =>
      new Promise<X509Certificate>((resolve, reject) => {
        const s = tls.connect(
          { host: url.hostname, port: Number(url.port), ca: f.ca.pem, servername: 'localhost', ...o },
          () => {
            const cert = s.getPeerX509Certificate();
            // With TLS 1.3 a refused client certificate surfaces after the handshake: read once.
            s.once('data', () => {});
            s.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
            s.once('data', () => {
              s.end();
              if (cert) resolve(cert);
              else reject(new Error('no server certificate'));
            });
          },
        );
        s.on('error', reject);
      });
    await assert.rejects(handshake({ maxVersion: 'TLSv1.2', cert: f.client.pem, key: f.client.keyPem }));
    await assert.rejects(handshake({}));
    const first = await handshake({ cert: f.client.pem, key: f.client.keyPem });
    assert.equal(first.serialNumber, f.server.cert.serialNumber);
    // Rotate the server certificate in place; SIGHUP (reload) picks it up for new connections.
    const next = await makeLeaf(f.ca, { dns: ['localhost'], serverAuth: true });
    const tlsConf = base.server.tls as { cert: string; key: string };
    const certPath = join(f.dir, `rot-${randomBytes(3).toString('hex')}.pem`);
    const keyPath = `${certPath}.key`;
    writeFileSync(certPath, f.server.pem);
    writeFileSync(keyPath, f.server.keyPem);
    const rot = await gateway({
      server: { ...base.server, tls: { ...(base.server.tls as object), cert: certPath, key: keyPath } },
    });
    const ru = new URL(rot.url);
    const serial = async () =>
      (
        await new Promise<X509Certificate>((resolve, reject) => {
          const s = tls.connect(
            { host: ru.hostname, port: Number(ru.port), ca: f.ca.pem, servername: 'localhost' },
            () => {
              const c = s.getPeerX509Certificate();
              s.end();
              if (c) resolve(c);
              else reject(new Error('no certificate'));
            },
          );
          s.on('error', reject);
        })
      ).serialNumber;
    assert.equal(await serial(), f.server.cert.serialNumber);
    writeFileSync(certPath, next.pem);
    writeFileSync(keyPath, next.keyPem);
    await rot.reload();
    assert.equal(await serial(), next.cert.serialNumber);
    // A broken file leaves the working certificate in service.
    writeFileSync(keyPath, 'not a key');
    await rot.reload();
    assert.equal(await serial(), next.cert.serialNumber);
    void tlsConf;
    await rot.close();
    // With server.tls.watch, changing the files is enough (no signal).
    const watchedCert = join(f.dir, `watch-${randomBytes(3).toString('hex')}.pem`);
    writeFileSync(watchedCert, f.server.pem);
    writeFileSync(`${watchedCert}.key`, f.server.keyPem);
    const watched = await gateway({
      server: {
        ...base.server,
        tls: { ...(base.server.tls as object), cert: watchedCert, key: `${watchedCert}.key`, watch: true },
      },
    });
    const wu = new URL(watched.url);
    const watchedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect(
          { host: wu.hostname, port: Number(wu.port), ca: f.ca.pem, servername: 'localhost' },
          () => {
            const c = s.getPeerX509Certificate();
            s.end();
            if (c) resolve(c.serialNumber);
            else reject(new Error('no certificate'));
          },
        );
        s.on('error', reject);
      });
    assert.equal(await watchedSerial(), f.server.cert.serialNumber);
    const third = await makeLeaf(f.ca, { dns: ['localhost'], serverAuth: true });
    writeFileSync(`${watchedCert}.key`, third.keyPem);
    writeFileSync(watchedCert, third.pem);
    assert.equal(await eventually(watchedSerial, third.cert.serialNumber, 10_000), third.cert.serialNumber);
    await watched.close();
    await gw.close();
  });

  it('audit key rotated while serving: checkpoints refused, never signed by the retired key, until a reload gives the gateway the new key; predictions go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-rotate-'));
    try {
      for (const writer of ['inline', 'thread'] as const) {
        const keyFile = join(dir, `${writer}.key`);
        const a = generateSignerKey('bulwark.test/gateway');
        const b = generateSignerKey('bulwark.test/gateway');
        writeFileSync(keyFile, a.skey, { mode: 0o600 });
        const store = join(dir, `${writer}.db`);
        const gw = await gateway({ audit: { store, signer: keyFile, checkpointSeconds: 0, writer } });
        const c = await client(gw);
        const rows = f.rows as Record<string, number | string>[];
        assert.deepEqual(await status(c, [rows[0] as never]), [200, 'OK']);
        assert.ok(await gw.checkpoint());
        // The operator rotates the key with another process (bulwark audit rotate-key).
        const op = await AuditLog.open({ store: { kind: 'sqlite', path: store }, signer: a.signer });
        await op.rotateKey(b.signer);
        await op.close();
        assert.deepEqual(await status(c, [rows[1] as never]), [200, 'OK']);
        assert.equal(await gw.checkpoint(), null, `${writer}: the retired key signs nothing`);
        // A reload with the old key still in the file keeps refusing; with the new key it signs again.
        await gw.reload();
        assert.equal(await gw.checkpoint(), null);
        writeFileSync(keyFile, b.skey, { mode: 0o600 });
        await gw.reload();
        assert.deepEqual(await status(c, [rows[2] as never]), [200, 'OK']);
        const cp = await gw.checkpoint();
        assert.ok(cp, `${writer}: signed with the new key after the reload`);
        await gw.close();
        const log = await AuditLog.open({ store: { kind: 'sqlite', path: store } });
        try {
          for (const publicKey of [a.vkey, b.vkey]) {
            const rep = await log.verify({ publicKey });
            assert.equal(rep.keys, 2);
          }
          const last = (await log.checkpoints()).at(-1) as { note: string; size: number };
          verifyCheckpoint(last.note, parseVerifierKey(b.vkey));
          assert.equal(last.size, (await log.head()).size, 'the shutdown checkpoint is the new key’s');
        } finally {
          await log.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('graceful shutdown answers every request in flight and checkpoints the audit log', async () => {
    const gw = await gateway();
    const c = await client(gw);
    // Open the connections first: a connection the server has not accepted yet is not in flight.
    // Varied rows: repeating one row would (rightly) trip the stateful detector.
    const rows = f.rows as Record<string, number | string>[];
    await Promise.all(Array.from({ length: 16 }, (_, i) => status(c, [rows[i] as never])));
    const pending = Array.from({ length: 16 }, (_, i) => status(c, [rows[50 + i] as never]));
    let settled = 0;
    for (const p of pending)
      p.then(
        () => settled++,
        () => settled++,
      );
    // Close once half are in flight, polled often so that the moment is seen while they are served;
    // once every request has been answered none can be in flight any more: waiting on is pointless.
    await eventually(async () => gw.inFlight >= 8 || settled === pending.length, true, 10_000, 5);
    const closing = gw.close();
    const results = await Promise.all(
      pending.map((p) => p.catch((e: Error) => [0, e.message] as [number, string])),
    );
    await closing;
    for (const [s, code] of results)
      assert.ok(s === 200 || (s === 503 && code === 'ERR_GATEWAY_NOT_READY'), `${s} ${code}`);
    const ok = results.filter(([s]) => s === 200).length;
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: gw.config.audit.store } });
    const cps = await log.checkpoints();
    const head = verifyCheckpoint(
      (cps.at(-1) as { note: string }).note,
      parseVerifierKey((await log.publicKey()) as string),
    );
    const entries = await log.tail(1000);
    assert.equal(head.size, entries.length, 'the final checkpoint covers every entry');
    assert.equal(entries.filter((e) => e.type === 'prediction').length, 16 + ok);
    await log.close();
  });
});
