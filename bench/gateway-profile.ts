/**
 * Profiling helper for the gateway (not a benchmark: no results file). Starts ONE gateway configuration
 * (off | tls | full) in this process and drives it from a forked bench/gateway-load.ts for a few seconds,
 * printing requests/s. Run under a profiler, e.g.
 *   node --import tsx bench/gateway-profile.ts full 8000 /tmp/full.cpuprofile
 * (the V8 profiler runs only during the measured load, not the start-up) and summarise it with
 *   node --import tsx bench/gateway-profile.ts --summary /tmp/full.cpuprofile
 * The configurations and the load generator are the gateway bench's own (bench/gateway.bench.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { OptionalStage } from '../src/gateway/index.js';
import { fixture, startGateway } from '../test/gateway/gateway-fixtures.js';
import { ALL_OFF, benchConfigs, Loader, mainThreadCpuSeconds, withAuditWriter } from './gateway.bench.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time by function (top 40) and by file, from a V8 .cpuprofile. */
function summary(file: string): void {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++)
    self.set(p.samples[i] as number, (self.get(p.samples[i] as number) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const url = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id) as ProfileNode;
    const u = n.callFrame.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/');
    const k = `${n.callFrame.functionName || '(anon)'} ${u}:${n.callFrame.lineNumber + 1}`;
    fn.set(k, (fn.get(k) ?? 0) + t);
    const pkg = u.startsWith('node_modules/')
      ? u
          .split('/')
          .slice(0, u.includes('@') ? 3 : 2)
          .join('/')
      : u || n.callFrame.functionName;
    url.set(pkg, (url.get(pkg) ?? 0) + t);
  }
  const show = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, t]) => `${((t / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  process.stdout.write(
    `total ${(total / 1e6).toFixed(2)} s\n-- by function\n${show(fn, 45)}\n-- by file\n${show(url, 30)}\n`,
  );
}

async function main(): Promise<void> {
  if (process.argv[2] === '--summary') return summary(process.argv[3] as string);
  // e.g. "full" or "full-audit-detect": the full stack with those optional stages switched off.
  // A suffix "@thread" writes the audit log on a worker thread of its own.
  const [spec = 'full', writer = 'inline'] = (process.argv[2] ?? 'full').split('@');
  const [which = 'full', ...minus] = spec.split('-');
  const without = minus as OptionalStage[];
  const ms = Number(process.argv[3] ?? 8000);
  const f = await fixture();
  const { base, plain, full, clientTls } = benchConfigs(f);
  const gw =
    which === 'off'
      ? await startGateway(plain, { unsafeDisable: ALL_OFF, unsafePlaintext: true })
      : which === 'tls'
        ? await startGateway(base, { unsafeDisable: ALL_OFF })
        : await startGateway(withAuditWriter(full, writer), { unsafeDisable: without });
  const loader = new Loader();
  const token = await f.token();
  const tls = which === 'off' ? {} : which === 'tls' ? { ca: f.ca.pem } : clientTls;
  await loader.run({ url: gw.url, connections: 64, durationMs: 500, seed: 1, token, ...tls });
  const out = process.argv[4];
  const session = new Session();
  if (out) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const main0 = mainThreadCpuSeconds();
  const cpu0 = process.cpuUsage();
  const r = await loader.run({ url: gw.url, connections: 64, durationMs: ms, seed: 2, token, ...tls });
  const cpu = process.cpuUsage(cpu0);
  const mainCpu = mainThreadCpuSeconds() - main0;
  if (out) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(out, JSON.stringify(profile));
    session.disconnect();
  }
  process.stdout.write(
    `server main thread ${((mainCpu * 1e6) / r.requests).toFixed(0)} µs CPU/request; server CPU ${(((cpu.user + cpu.system) / 1e6 / r.seconds) * 100).toFixed(0)}% of one core (user ${(cpu.user / 1e6).toFixed(2)} s, sys ${(cpu.system / 1e6).toFixed(2)} s over ${r.seconds.toFixed(1)} s); ${((cpu.user + cpu.system) / r.requests).toFixed(0)} µs CPU/request; load generator CPU ${((r.cpuSeconds / r.seconds) * 100).toFixed(0)}% of one core, ${((r.cpuSeconds * 1e6) / r.requests).toFixed(0)} µs/request\n`,
  );
  process.stdout.write(
    `${process.argv[2]}: ${r.rps.toFixed(0)} req/s p50 ${r.p50Ms.toFixed(2)} ms, errors ${r.errors} ${JSON.stringify(r.codes)}\n`,
  );
  loader.close();
  await gw.close();
  f.cleanup();
}

await main();
