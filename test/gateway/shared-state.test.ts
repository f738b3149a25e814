/**
 * The stream detectors' per-caller state in Redis (src/robust/defences/detector/shared-state.ts), on the
 * real Redis at 127.0.0.1:6379: the same verdicts as state in memory, bounded lists with a TTL, two
 * gateway replicas judging one caller on its whole stream, and fail closed (503
 * ERR_DETECTOR_STORE_UNAVAILABLE) while Redis is cut, recovering by itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SeededRng } from '../../src/core/index.js';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import type { OptionalStage } from '../../src/gateway/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { RedisStreamState } from '../../src/robust/defences/detector/shared-state.js';
import { PradaDetector, type QueryVerdict, StatefulDetector } from '../../src/robust/index.js';
import { type Fixture, fixture, Relay, startGateway } from './gateway-fixtures.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

function same(a: readonly QueryVerdict[], b: readonly QueryVerdict[], what: string): void {
  assert.equal(a.length, b.length, `${what}: verdict count`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as QueryVerdict;
    const y = b[i] as QueryVerdict;
    assert.equal(x.flagged, y.flagged, `${what} #${i}: flagged`);
    if (Number.isNaN(x.score)) assert.ok(Number.isNaN(y.score), `${what} #${i}: score NaN`);
    else assert.equal(y.score, x.score, `${what} #${i}: score`);
  }
}

async function code(c: GatewayClient, row: Record<string, number | string>): Promise<string> {
  try {
    await c.inferRows('fraud', [row]);
    return 'OK';
  } catch (e) {
    const g = e as GatewayError;
    if (typeof g.status !== 'number') throw e;
    return `${g.status} ${g.code}`;
  }
}

/** Polls until `fn` gives `want` (reconnection happens in the background: no fixed sleeps). */
async function eventually(fn: () => Promise<string>, want: string, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = await fn();
  while (last !== want && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    last = await fn();
  }
  return last;
}

describe('stream detector state shared through Redis', () => {
  let f: Fixture;
  let redis: Redis;
  const prefixes: string[] = [];
  const opened: Gateway[] = [];
  const clients: GatewayClient[] = [];
  const prefix = () => {
    const p = `bulwark-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
    prefixes.push(p);
    return p;
  };

  before(async () => {
    f = await fixture();
    redis = new Redis(REDIS_URL);
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const g of opened) await g.close().catch(() => {});
    for (const p of prefixes) {
      const keys = await redis.keys(`${p}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    redis.disconnect();
  });

  const load = () => ({
    stateful: StatefulDetector.load(JSON.parse(readFileSync(join(f.dir, 'stateful.json'), 'utf8'))),
    prada: PradaDetector.load(JSON.parse(readFileSync(join(f.dir, 'prada.json'), 'utf8'))),
  });

  it('gives the verdicts of state in memory, row by row and across a detection, in bounded lists with a TTL', async () => {
    const mem = load();
    const shared = load();
    const d = mem.stateful.inputs;
    const store = new RedisStreamState(redis, { keyPrefix: prefix(), ttlSeconds: 600 });
    // 40 spread-out queries, then 40 near-duplicates of one (a probing attack: the stateful detector
    // flags and clears the history), in requests of 1 to 3 rows; classes seeded.
    const rng = new SeededRng(41);
    const n = 80;
    const x = new Float32Array(n * d);
    const seedRow = Array.from({ length: d }, () => rng.normal());
    for (let i = 0; i < n; i++)
      for (let j = 0; j < d; j++)
        x[i * d + j] = i < 40 ? rng.normal() * 2 : (seedRow[j] as number) + rng.normal() * 1e-3;
    const predicted = Int32Array.from({ length: n }, () => (rng.bernoulli(0.3) ? 1 : 0));
    const client = 'spiffe://bulwark.example/ns/apps/sa/prober';
    const memS: QueryVerdict[] = [];
    const memP: QueryVerdict[] = [];
    const redS: QueryVerdict[] = [];
    const redP: QueryVerdict[] = [];
    for (let i = 0; i < n; ) {
      const rows = Math.min(1 + (i % 3), n - i);
      const xs = x.subarray(i * d, (i + rows) * d);
      const ps = predicted.subarray(i, i + rows);
      for (let r = 0; r < rows; r++) {
        memS.push(mem.stateful.observe(client, xs.subarray(r * d, (r + 1) * d)));
        memP.push(mem.prada.observe(client, xs.subarray(r * d, (r + 1) * d), ps[r] as number));
      }
      redS.push(...(await store.observeStateful(shared.stateful, client, xs, rows)));
      redP.push(...(await store.observePrada(shared.prada, client, xs, ps, rows)));
      i += rows;
    }
    same(memS, redS, 'stateful');
    same(memP, redP, 'prada');
    assert.ok(
      memS.some((v) => v.flagged),
      'the stream must include a stateful detection (history cleared)',
    );
    assert.ok(
      memP.some((v) => Number.isFinite(v.score)),
      'PRADA must have judged part of the stream',
    );

    const sKey = store.statefulKey(client);
    const pKeys = store.pradaKeys(client, shared.prada.classes);
    assert.ok((await redis.llen(sKey)) <= shared.stateful.history);
    assert.ok((await redis.llen(pKeys.distances)) <= shared.prada.window);
    for (const k of [sKey, pKeys.distances, ...pKeys.growing]) {
      const ttl = await redis.pttl(k);
      assert.ok(ttl > 0 && ttl <= 600_000, `${k}: TTL ${ttl}`);
    }
    // Client ids do not reach Redis.
    assert.ok(!sKey.includes('prober'));
  });

  it('two replicas sharing one Redis judge a caller on its whole stream, as one replica does', async () => {
    // A probing stream: the same row with tiny changes, in distribution (Mahalanobis stays quiet).
    const stream = Array.from({ length: 24 }, (_, i) => ({
      amount: 300 + i * 0.01,
      age: 40,
      kind: 'B',
    }));
    const firstDetection = async (gws: Gateway[]): Promise<number> => {
      const token = await f.token({ sub: `prober-${randomBytes(4).toString('hex')}` });
      const cs = gws.map((g) => {
        const c = new GatewayClient({ url: g.url, ca: f.ca.pem, servername: 'localhost', token });
        clients.push(c);
        return c;
      });
      for (let i = 0; i < stream.length; i++) {
        const got = await code(cs[i % cs.length] as GatewayClient, stream[i] as never);
        if (got === '403 ERR_GATEWAY_DETECTED') return i;
        assert.equal(got, 'OK', `query ${i}`);
      }
      return -1;
    };
    const start = async (limits: Record<string, unknown>) => {
      const gw = await startGateway(f.config({ limits, detectors: { mode: 'enforce' } }));
      opened.push(gw);
      return gw;
    };
    const memory = { backend: 'memory', requestsPerSecond: 1000 };
    const one = await firstDetection([await start(memory)]);
    assert.ok(one > 0, 'one replica flags the probing stream');

    const p = prefix();
    const shared = { backend: 'redis', redis: { url: REDIS_URL, keyPrefix: p }, requestsPerSecond: 1000 };
    const a = await start(shared);
    const b = await start(shared);
    assert.equal(await firstDetection([a, b]), one, 'two replicas sharing Redis flag at the same query');

    // Without sharing, each replica sees half the stream and flags later (or not at all).
    const apart = await firstDetection([await start(memory), await start(memory)]);
    assert.ok(
      apart === -1 || apart > one,
      `replicas with memory state flagged at ${apart}, shared at ${one}`,
    );
  });

  it('Redis cut: 503 ERR_DETECTOR_STORE_UNAVAILABLE, not a judgement without history; recovers by itself', async () => {
    const relay = new Relay('127.0.0.1', 6379);
    await relay.up();
    // The limiter would answer first on the same Redis (ERR_GATEWAY_LIMITER_UNAVAILABLE, tested in
    // faults.test.ts): here it is off so the detectors' store is the one that meets the outage.
    const gw = await startGateway(
      f.config({
        limits: {
          backend: 'redis',
          redis: { url: `redis://127.0.0.1:${relay.port}`, keyPrefix: prefix() },
          requestsPerSecond: 1000,
        },
      }),
      { unsafeDisable: ['limit'] as OptionalStage[] },
    );
    opened.push(gw);
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: `cut-${randomBytes(4).toString('hex')}` }),
    });
    clients.push(c);
    const row = { amount: 120.5, age: 39, kind: 'B' };
    assert.equal(await eventually(() => code(c, row), 'OK'), 'OK');
    await relay.down();
    assert.equal(
      await eventually(() => code(c, row), '503 ERR_DETECTOR_STORE_UNAVAILABLE'),
      '503 ERR_DETECTOR_STORE_UNAVAILABLE',
    );
    await relay.up();
    assert.equal(await eventually(() => code(c, row), 'OK'), 'OK');
    await relay.down();
  });

  it('a store that cannot be reached at all refuses at once', async () => {
    // Port 1 on loopback: nothing listens there (a real refused connection, no stand-in).
    const dead = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on('error', () => {});
    const { stateful, prada } = load();
    const store = new RedisStreamState(dead, { keyPrefix: prefix() });
    const x = new Float32Array(stateful.inputs);
    await assert.rejects(store.observeStateful(stateful, 'c', x, 1), {
      code: 'ERR_DETECTOR_STORE_UNAVAILABLE',
    });
    await assert.rejects(store.observePrada(prada, 'c', x, Int32Array.of(0), 1), {
      code: 'ERR_DETECTOR_STORE_UNAVAILABLE',
    });
    dead.disconnect();
  });
});
