/**
 * The gateway benchmark's load generator, run as a SECOND process (forked by bench/gateway.bench.ts) so
 * that the server's event loop is not shared with the client's. Loopback only. Closed loop (N
 * connections each sending the next request when the previous answer arrives) for the throughput
 * figures, or open loop at a fixed rate for the soak. Request bodies are seeded random rows of the fixture
 * schema, so no two consecutive requests of a caller are identical.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../src/core/index.js';

export interface LoadSpec {
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  connections: number;
  durationMs: number;
  /** Requests per second for an open-loop run (closed loop when absent). */
  rate?: number;
  seed: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  codes: Record<string, number>;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time (user + system) this load-generator process spent during the run, in seconds. */
  cpuSeconds: number;
}

function bodies(seed: number, n: number): Buffer[] {
  const rng = new SeededRng(seed);
  return Array.from({ length: n }, () => {
    const amount = Math.round(rng.uniform(0, 1000) * 100) / 100;
    const age = rng.intBetween(18, 90);
    const kind = ['A', 'B', 'C'][rng.int(3)] as string;
    return Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'amount', shape: [1], datatype: 'FP64', data: [amount] },
          { name: 'age', shape: [1], datatype: 'INT64', data: [age] },
          { name: 'kind', shape: [1], datatype: 'BYTES', data: [kind] },
        ],
      }),
    );
  });
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export async function runLoad(s: LoadSpec): Promise<LoadResult> {
  const url = new URL(s.url);
  const tlsOn = url.protocol === 'https:';
  const agentOpts = { keepAlive: true, maxSockets: s.connections, maxFreeSockets: s.connections };
  const agent = tlsOn
    ? new https.Agent({
        ...agentOpts,
        ...(s.ca ? { ca: s.ca } : {}),
        ...(s.cert ? { cert: s.cert, key: s.key } : {}),
        servername: 'localhost',
      })
    : new http.Agent(agentOpts);
  const mod = tlsOn ? https : http;
  const pool = bodies(s.seed, 4096);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (s.token) headers['authorization'] = `Bearer ${s.token}`;
  const lat: number[] = [];
  const codes: Record<string, number> = {};
  let errors = 0;
  let i = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const body = pool[i++ % pool.length] as Buffer;
      const t0 = performance.now();
      const req = mod.request(
        {
          host: url.hostname,
          port: url.port,
          path: '/v2/models/fraud/infer',
          method: 'POST',
          agent,
          ...(tlsOn ? { servername: 'localhost' } : {}),
          headers: { ...headers, 'content-length': body.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            lat.push(performance.now() - t0);
            const st = res.statusCode ?? 0;
            let key = String(st);
            if (st !== 200) {
              errors++;
              try {
                key = `${st} ${(JSON.parse(Buffer.concat(chunks).toString()) as { code: string }).code}`;
              } catch {
                /* keep the status */
              }
            }
            codes[key] = (codes[key] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        errors++;
        codes[e.message] = (codes[e.message] ?? 0) + 1;
        resolve();
      });
      req.end(body);
    });
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + s.durationMs;
  if (s.rate === undefined) {
    await Promise.all(
      Array.from({ length: s.connections }, async () => {
        while (performance.now() < end) await one();
      }),
    );
  } else {
    const interval = 1000 / s.rate;
    const inflight = new Set<Promise<void>>();
    let next = start;
    while (performance.now() < end) {
      const now = performance.now();
      while (next <= now) {
        const p = one();
        inflight.add(p);
        void p.then(() => inflight.delete(p));
        next += interval;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5, next - performance.now()))));
    }
    await Promise.all(inflight);
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  const sorted = Float64Array.from(lat).sort();
  return {
    requests: lat.length,
    errors,
    codes,
    seconds,
    rps: lat.length / seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

// As a forked child: one spec per message, one result back.
if (process.send) {
  process.on('message', (m: LoadSpec) => {
    runLoad(m).then(
      (r) => process.send?.(r),
      (e: unknown) => process.send?.({ error: (e as Error).message }),
    );
  });
}
