/**
 * `Gateway.check` (`bulwark serve --check`) is a dry run: it loads and checks what `serve` would use,
 * and writes nothing and binds nothing. Before, `--check` was a full start and stop: it bound the ports
 * (EADDRINUSE beside a running gateway), created the audit log, appended model.loaded events and
 * signed a checkpoint on its way out.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { AuditLog, generateSignerKey } from '../../src/audit/index.js';
import { BulwarkError } from '../../src/core/index.js';
import { gatewayConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway } from './gateway-fixtures.js';

const { Client } = pg;
const PG_URL = process.env['BULWARK_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Entries and checkpoints of an audit log, read without writing. */
async function logState(store: string): Promise<{ size: number; checkpoints: number }> {
  const log = await AuditLog.open({ store: { kind: 'sqlite', path: store, create: false } });
  try {
    return { size: (await log.head()).size, checkpoints: (await log.checkpoints()).length };
  } finally {
    await log.close();
  }
}

describe('Gateway.check: a dry run of serve', () => {
  let f: Fixture;
  let running: Gateway | null = null;
  before(async () => {
    f = await fixture();
  });
  after(async () => {
    await running?.close();
  });

  it('reports every section, creates no audit log and binds no port', async () => {
    const config = f.config();
    const r = await Gateway.check({ config });
    assert.deepEqual(
      r.models.map((m) => [m.name, m.origin, m.detectors]),
      [['fraud', 'insecure-onnx', { mahalanobis: 'file', stateful: 'file', prada: 'file' }]],
    );
    const status = Object.fromEntries(r.checks.map((c) => [c.component, c.status]));
    assert.deepEqual(status, {
      models: 'ok',
      limits: 'ok',
      auth: 'ok',
      policy: 'ok',
      audit: 'create',
      'server.tls': 'ok',
      ports: 'skipped',
    });
    assert.equal(existsSync(config.audit.store), false, 'the audit log is not created');
  });

  it('runs beside a gateway serving on the same ports, and leaves its audit log as it was', async () => {
    const config = f.config();
    running = await startGateway(config);
    await running.checkpoint();
    const before = await logState(config.audit.store);
    assert.equal(before.checkpoints, 1);
    const port = Number(new URL(running.url).port);
    const metricsPort = Number(new URL(running.metricsUrl as string).port);
    const same = gatewayConfig({
      ...structuredClone(config),
      server: { ...config.server, port },
      metrics: { ...config.metrics, port: metricsPort },
    });
    const r = await Gateway.check({ config: same });
    const audit = r.checks.find((c) => c.component === 'audit');
    assert.equal(audit?.status, 'ok');
    assert.match(audit?.detail ?? '', /log bulwark\.test\/gateway, \d+ entries/);
    assert.match(
      r.checks.find((c) => c.component === 'ports')?.detail ?? '',
      new RegExp(`:${port} and metrics`),
    );
    // Nothing appended and no checkpoint signed by the check.
    assert.deepEqual(await logState(config.audit.store), before);
  });

  it('refuses an existing audit log signed by another key (ERR_AUDIT_KEY_INVALID, naming audit.store)', async () => {
    const config = f.config();
    const g = await startGateway(config);
    await g.close();
    const other = join(f.dir, `other-${process.pid}.key`);
    writeFileSync(other, generateSignerKey('bulwark.test/gateway').skey);
    await assert.rejects(
      Gateway.check({
        config: gatewayConfig({ ...structuredClone(config), audit: { ...config.audit, signer: other } }),
      }),
      (e: unknown) =>
        e instanceof BulwarkError && e.code === 'ERR_AUDIT_KEY_INVALID' && /^audit\.store: /.test(e.message),
    );
  });

  it('refuses an audit log in a folder that does not exist (ERR_FILE_NOT_FOUND)', async () => {
    const config = f.config();
    await assert.rejects(
      Gateway.check({
        config: gatewayConfig({
          ...structuredClone(config),
          audit: { ...config.audit, store: join(f.dir, 'no-such-folder', 'audit.db') },
        }),
      }),
      (e: unknown) =>
        e instanceof BulwarkError && e.code === 'ERR_FILE_NOT_FOUND' && /audit\.store/.test(e.message),
    );
  });

  it('a PostgreSQL audit log not created yet is reported, and its schema is not created by the check', async () => {
    const schema = `chk_${process.pid}_${Date.now() % 100000}`;
    const config = f.config();
    const pg = gatewayConfig({
      ...structuredClone(config),
      audit: { ...config.audit, store: PG_URL, schema },
    });
    const r = await Gateway.check({ config: pg });
    assert.equal(r.checks.find((c) => c.component === 'audit')?.status, 'create');
    const client = new Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const q = await client.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [
        schema,
      ]);
      assert.equal(q.rowCount, 0, 'no schema created');
    } finally {
      await client.end();
    }
  });

  it('refuses when a remote JWKS does not answer (ERR_AUTH_JWKS_UNAVAILABLE), where serve would start and answer 503', async () => {
    const base = f.config();
    const config = f.config({
      auth: { ...base.auth, jwt: { ...base.auth.jwt!, jwks: { url: 'http://127.0.0.1:1/jwks.json' } } },
    });
    await assert.rejects(
      Gateway.check({ config }),
      (e: unknown) => e instanceof BulwarkError && e.code === 'ERR_AUTH_JWKS_UNAVAILABLE',
    );
  });

  it('refuses when Redis does not answer (ERR_GATEWAY_LIMITER_UNAVAILABLE), where serve would deny every request', async () => {
    const config = f.config({
      limits: {
        backend: 'redis',
        requestsPerSecond: 1000,
        redis: { url: 'redis://127.0.0.1:1', keyPrefix: 'chk:' },
      },
    });
    await assert.rejects(
      Gateway.check({ config }),
      (e: unknown) =>
        e instanceof BulwarkError &&
        e.code === 'ERR_GATEWAY_LIMITER_UNAVAILABLE' &&
        /limits\.redis\.url/.test(e.message),
    );
  });

  it('passes with a reachable Redis', async () => {
    const config = f.config({
      limits: {
        backend: 'redis',
        requestsPerSecond: 1000,
        redis: { url: 'redis://127.0.0.1:6379', keyPrefix: `chk-${process.pid}:` },
      },
    });
    const r = await Gateway.check({ config });
    assert.equal(r.checks.find((c) => c.component === 'limits')?.detail, 'Redis answered');
  });
});
