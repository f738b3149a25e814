/**
 * `npm run bench -- gateway-costs`: what each of the gateway's protections costs in CPU per request.
 * The pipeline runs in process (no HTTP, no TLS; bench/gateway.bench.ts measures the transport) with
 * the full stack and with the full stack minus one protection at a time (leave-one-out: the audit
 * entry, the Mahalanobis and stateful detectors, PRADA, the limiter, Cedar, identity with Cedar); a
 * protection's cost is the full stack's CPU per request minus that of the full stack without it,
 * paired within a repeat. Repeats run every variant once, in a seeded shuffled order, with a full GC
 * before each pass; the default is 15 repeats, because on a shared 2-core machine single passes of
 * the same configuration differ by tens of microseconds.
 */
import { SeededRng } from '../src/core/index.js';
import { type Fixture, fixture } from '../test/gateway/gateway-fixtures.js';
import { benchConfigs, LEAVE_ONE_OUT, measurePipelineVariants, pipelineVariants } from './gateway.bench.js';
import type { Benchmark, Figure } from './harness.js';

const bench: Benchmark = {
  name: 'gateway-costs',
  description:
    "the gateway's protections priced one by one: CPU µs per request, full stack minus the full stack without each (in process)",
  async run(ctx) {
    const f: Fixture = await fixture();
    const { plain, full } = benchConfigs(f);
    const repeats = ctx.quick ? 2 : Math.max(ctx.repeats, 15);
    const requests = ctx.quick ? 3000 : 20_000;
    const runs = await measurePipelineVariants(f, pipelineVariants(plain, full), {
      requests,
      repeats,
      connections: 64,
      shuffle: new SeededRng(11),
      gcBetween: true,
    });
    const figures: Figure[] = [];
    const facts: Record<string, string | number | boolean> = {};
    for (const v of runs) {
      facts[`${v.id}.errors`] = v.bad;
      figures.push({
        id: `${v.id}.cpu_us`,
        label: `${v.label}: CPU µs/request`,
        system: 'bulwark',
        unit: 'µs',
        better: 'lower',
        samples: v.cpu,
      });
    }
    const byId = new Map(runs.map((v) => [v.id, v]));
    const fullRun = byId.get('full');
    const off = byId.get('off');
    if (!fullRun || !off) throw new Error('gateway-costs: missing the full or the off run');
    const paired = (a: number[], b: number[]) => a.map((x, k) => x - (b[k] as number));
    figures.push({
      id: 'cost.all_us',
      label: 'every protection (full stack minus protections off)',
      system: 'bulwark',
      unit: 'µs',
      better: 'lower',
      samples: paired(fullRun.cpu, off.cpu),
    });
    for (const l of LEAVE_ONE_OUT) {
      const v = byId.get(`full_minus_${l.id}`);
      if (!v) throw new Error(`gateway-costs: no run without ${l.id}`);
      figures.push({
        id: `cost.${l.id}_us`,
        label: `${l.label} (full stack minus full stack without it)`,
        system: 'bulwark',
        unit: 'µs',
        better: 'lower',
        samples: paired(fullRun.cpu, v.cpu),
      });
    }
    return {
      figures,
      facts,
      notes: [
        `In process: Pipeline.infer by 64 concurrent callers, ${requests} single-row requests per pass, the load generator's bodies and credentials (a parsed client certificate and the same JWT); ${repeats} counted repeats after a warm-up one, each running every variant once in a seeded shuffled order, with a full GC before each pass; CPU is the process's user + system time per request.`,
        'A cost is paired within a repeat (full minus full-without-it in the same repeat), then the median over repeats; costs do not add up exactly (the stages share caches, allocations and the garbage collector). Identity is left out together with Cedar, which needs an authenticated principal. Schema validation and output hardening run in every configuration, protections off included. TLS and mutual TLS are transport, measured by the gateway bench.',
      ],
    };
  },
};

export default bench;
