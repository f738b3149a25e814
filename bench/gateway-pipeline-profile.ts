/**
 * Profiling helper (not a benchmark: no results file): the gateway's pipeline called in process, no HTTP
 * or TLS, 64 callers concurrently, so the cost of the stages themselves (CPU µs per request) can be
 * compared between variants on a noisy shared machine. Usage:
 *   node --import tsx bench/gateway-pipeline-profile.ts [full|full-audit|...] [requests] [out.cpuprofile]
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../src/core/index.js';
import type { OptionalStage } from '../src/gateway/index.js';
import { fixture, startGateway } from '../test/gateway/gateway-fixtures.js';
import { BENCH_POLICIES } from './gateway.bench.js';

const [, ...minus] = (process.argv[2] ?? 'full').split('-');
const n = Number(process.argv[3] ?? 20000);
const out = process.argv[4];
const f = await fixture();
const base = f.config();
const policies = join(f.dir, 'bench-policies.cedar');
writeFileSync(policies, BENCH_POLICIES);
const gw = await startGateway(
  f.config({
    server: { ...base.server, tls: { ...(base.server.tls as object), clientAuth: 'require' } },
    auth: { ...base.auth, require: 'certificate-and-token' },
    detectors: { mode: 'monitor' },
    policy: { ...base.policy, files: [policies] },
    limits: { backend: 'memory', requestsPerSecond: 1_000_000, queryBudget: { queries: 1_000_000_000 } },
  }),
  { unsafeDisable: minus as OptionalStage[] },
);
const rng = new SeededRng(1);
const bodies = Array.from({ length: 4096 }, () =>
  Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: 'amount',
          shape: [1],
          datatype: 'FP64',
          data: [Math.round(rng.uniform(0, 1000) * 100) / 100],
        },
        { name: 'age', shape: [1], datatype: 'INT64', data: [rng.intBetween(18, 90)] },
        { name: 'kind', shape: [1], datatype: 'BYTES', data: [['A', 'B', 'C'][rng.int(3)] as string] },
      ],
    }),
  ),
);
const auth = {
  peerAuthorized: true,
  remoteAddress: '127.0.0.1',
  peerCertificate: new X509Certificate(f.client.pem),
  authorization: `Bearer ${await f.token()}`,
};
const codes: Record<string, number> = {};
async function drive(count: number): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (i < count) {
        const body = bodies[i++ % bodies.length] as Buffer;
        const r = await gw.pipeline.infer({ model: 'fraud', body, auth });
        codes[r.code] = (codes[r.code] ?? 0) + 1;
      }
    }),
  );
}
await drive(3000);
const session = new Session();
if (out) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
const c0 = process.cpuUsage();
const t0 = performance.now();
await drive(n);
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
if (out) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(out, JSON.stringify(profile));
}
const stages = await gw.metrics.stageSeconds.get();
const sum = new Map<string, number>();
const cnt = new Map<string, number>();
for (const v of stages.values) {
  const s = String(v.labels['stage']);
  if (v.metricName?.endsWith('_sum')) sum.set(s, v.value);
  if (v.metricName?.endsWith('_count')) cnt.set(s, v.value);
}
process.stdout.write(
  `${process.argv[2] ?? 'full'}: ${(n / wall).toFixed(0)} req/s wall, CPU ${((c.user + c.system) / n).toFixed(1)} µs/request (user ${(c.user / n).toFixed(1)}, sys ${(c.system / n).toFixed(1)}) ${JSON.stringify(codes)}\n  stage means µs (incl. warm-up): ${[...sum].map(([k, v]) => `${k} ${((v / (cnt.get(k) ?? 1)) * 1e6).toFixed(1)}`).join(', ')}\n`,
);
await gw.close();
f.cleanup();
