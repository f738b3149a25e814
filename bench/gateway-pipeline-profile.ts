/**
 * Profiling helper (not a benchmark: no results file): the gateway's pipeline called in process, no HTTP
 * or TLS, 64 callers concurrently, so the cost of the stages themselves (CPU µs per request) can be
 * compared between variants on a noisy shared machine. The set-up (configuration, request bodies,
 * caller) is the gateway bench's own (bench/gateway.bench.ts). Usage:
 *   node --import tsx bench/gateway-pipeline-profile.ts [full|full-audit|...] [requests] [out.cpuprofile]
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import type { OptionalStage } from '../src/gateway/index.js';
import { fixture, startGateway } from '../test/gateway/gateway-fixtures.js';
import {
  benchBodies,
  benchConfigs,
  inProcessAuth,
  mainThreadCpuSeconds,
  stageMeanUs,
  withAuditWriter,
} from './gateway.bench.js';

// "full-audit-detect": the full stack without those stages; a suffix "@thread" writes the audit log on
// a worker thread of its own.
const [spec = 'full', writer = 'inline'] = (process.argv[2] ?? 'full').split('@');
const [, ...minus] = spec.split('-');
const n = Number(process.argv[3] ?? 20000);
const out = process.argv[4];
const f = await fixture();
const full = benchConfigs(f).full;
const gw = await startGateway(withAuditWriter(full, writer), { unsafeDisable: minus as OptionalStage[] });
const bodies = benchBodies(1);
const auth = await inProcessAuth(f);
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
const m0 = mainThreadCpuSeconds();
const t0 = performance.now();
await drive(n);
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const mainUs = ((mainThreadCpuSeconds() - m0) * 1e6) / n;
if (out) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(out, JSON.stringify(profile));
}
const stages = await stageMeanUs(gw);
process.stdout.write(
  `${process.argv[2] ?? 'full'}: ${(n / wall).toFixed(0)} req/s wall, main thread ${mainUs.toFixed(1)} µs/request, process CPU ${((c.user + c.system) / n).toFixed(1)} µs/request (user ${(c.user / n).toFixed(1)}, sys ${(c.system / n).toFixed(1)}) ${JSON.stringify(codes)}\n  stage means µs (incl. warm-up): ${Object.entries(
    stages,
  )
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ')}\n`,
);
await gw.close();
f.cleanup();
