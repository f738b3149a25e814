/**
 * `npm run bench -- gateway-costs`: what each of the gateway's protections costs in CPU per request.
 * The pipeline runs in process (no HTTP, no TLS; bench/gateway.bench.ts measures the transport) with
 * the full stack and with the full stack minus one protection at a time (leave-one-out: the audit
 * entry, the Mahalanobis and stateful detectors, PRADA, the limiter, Cedar, identity with Cedar); a
 * protection's cost is the full stack's CPU per request minus that of the full stack without it,
 * paired within a repeat. Repeats run every variant once, in a seeded shuffled order, with a full GC
 * before each pass; the default is 15 repeats, because on a shared 2-core machine single passes of
 * the same configuration differ by tens of microseconds.
 *
 * Traces are priced the other way round (the full stack plus traces minus the full stack): each
 * request a span exported over OTLP/HTTP, JSON or protobuf, at sample ratios 1 and 0.1, to a collector
 * stand-in in a child process (so that receiving the exports is not counted as the gateway's CPU).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { SeededRng } from '../src/core/index.js';
import type { OptionalStage } from '../src/gateway/index.js';
import { type Fixture, fixture } from '../test/gateway/gateway-fixtures.js';
import { baseVariants, benchConfigs, measurePipelineVariants } from './gateway.bench.js';
import type { Benchmark, Figure } from './harness.js';

/**
 * The protections left out one at a time to price each (stages of
 * src/gateway/pipeline.ts; `detect` is the Mahalanobis and stateful detectors, `extraction` PRADA).
 * Schema validation and output hardening are not optional: they run in every configuration.
 */
const LEAVE_ONE_OUT: { id: string; label: string; disable: OptionalStage[] }[] = [
  { id: 'audit', label: 'the audit entry (signed hash chain, group commit)', disable: ['audit'] },
  { id: 'detect', label: 'the Mahalanobis and stateful detectors', disable: ['detect'] },
  { id: 'extraction', label: 'the PRADA extraction detector', disable: ['extraction'] },
  { id: 'limit', label: 'the rate limit and query budget', disable: ['limit'] },
  { id: 'authorize', label: 'Cedar authorisation', disable: ['authorize'] },
  {
    id: 'identity',
    label: 'identity and authorisation (certificate + JWT, Cedar)',
    disable: ['authenticate', 'authorize'],
  },
];

/** Traces added to the full stack (telemetry.traces), priced as full-with-them minus full. */
const ADD_ON: { id: string; label: string; protocol: 'http/json' | 'http/protobuf'; sampleRatio: number }[] =
  [
    {
      id: 'traces_json',
      label: 'traces, every request, OTLP/HTTP JSON',
      protocol: 'http/json',
      sampleRatio: 1,
    },
    {
      id: 'traces_protobuf',
      label: 'traces, every request, OTLP/HTTP protobuf',
      protocol: 'http/protobuf',
      sampleRatio: 1,
    },
    {
      id: 'traces_tenth',
      label: 'traces, sample ratio 0.1, OTLP/HTTP protobuf',
      protocol: 'http/protobuf',
      sampleRatio: 0.1,
    },
  ];

/**
 * An OTLP collector stand-in in a child process: reads each export whole and answers 200 (an empty
 * ExportTraceServiceResponse), so the exporter's full cost, connection and reply included, is paid.
 */
async function childCollector(): Promise<{ url: string; stop(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => r.writeHead(200, { 'content-type': q.headers['content-type'] }).end()); });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  return { url: `http://127.0.0.1:${port}/v1/traces`, stop: () => child.kill() };
}

const bench: Benchmark = {
  name: 'gateway-costs',
  description:
    "the gateway's protections priced one by one: CPU µs per request, full stack minus the full stack without each (in process)",
  async run(ctx) {
    const f: Fixture = await fixture();
    const { plain, full } = benchConfigs(f);
    const repeats = ctx.quick ? 2 : Math.max(ctx.repeats, 15);
    const requests = ctx.quick ? 3000 : 20_000;
    const collector = await childCollector();
    const variants = [
      ...baseVariants(plain, full),
      ...LEAVE_ONE_OUT.map((l) => ({
        id: `full_minus_${l.id}`,
        label: `full stack without ${l.label}`,
        config: full,
        disable: l.disable,
      })),
      ...ADD_ON.map((a) => ({
        id: `full_plus_${a.id}`,
        label: `full stack with ${a.label}`,
        config: {
          ...full,
          telemetry: {
            ...full.telemetry,
            traces: {
              enabled: true,
              serviceName: 'bench',
              sampleRatio: a.sampleRatio,
              otlp: { endpoint: collector.url, timeoutMs: 10_000, maxQueueSize: 2048, protocol: a.protocol },
            },
          },
        },
        disable: [],
      })),
    ];
    const runs = await measurePipelineVariants(f, variants, {
      requests,
      repeats,
      connections: 64,
      shuffle: new SeededRng(11),
      gcBetween: true,
    }).finally(() => collector.stop());
    const figures: Figure[] = [];
    const us = (id: string, label: string, samples: number[]) =>
      figures.push({ id, label, system: 'bulwark', unit: 'µs', better: 'lower', samples });
    const facts: Record<string, string | number | boolean> = {};
    const cpuOf = new Map<string, number[]>();
    for (const v of runs) {
      facts[`${v.id}.errors`] = v.bad;
      us(`${v.id}.cpu_us`, `${v.label}: CPU µs/request`, v.cpu);
      cpuOf.set(v.id, v.cpu);
    }
    // A cost per repeat: `withIt` minus `without`, both from the same repeat.
    const cost = (without: string, withIt = 'full') => {
      const a = cpuOf.get(withIt);
      const b = cpuOf.get(without);
      if (!a || !b) throw new Error(`gateway-costs: missing the ${withIt} or the ${without} run`);
      return a.map((x, k) => x - (b[k] as number));
    };
    us('cost.all_us', 'every protection (full stack minus protections off)', cost('off'));
    for (const l of LEAVE_ONE_OUT)
      us(
        `cost.${l.id}_us`,
        `${l.label} (full stack minus full stack without it)`,
        cost(`full_minus_${l.id}`),
      );
    for (const a of ADD_ON)
      us(
        `cost.${a.id}_us`,
        `${a.label} (full stack with them minus full stack)`,
        cost('full', `full_plus_${a.id}`),
      );
    return {
      figures,
      facts,
      notes: [
        `In process: Pipeline.infer by 64 concurrent callers, ${requests} single-row requests per pass, the load generator's bodies and credentials (a parsed client certificate and the same JWT); ${repeats} counted repeats after a warm-up one, each running every variant once in a seeded shuffled order, with a full GC before each pass; CPU is the process's user + system time per request.`,
        'A cost is paired within a repeat (full minus full-without-it in the same repeat), then the median over repeats; costs do not add up exactly (the stages share caches, allocations and the garbage collector). Identity is left out together with Cedar, which needs an authenticated principal. Schema validation and output hardening run in every configuration, protections off included. TLS and mutual TLS are transport, measured by the gateway bench.',
        'Traces are priced as an addition (full stack with them minus full stack, paired within a repeat): one span per sampled request with an event per stage, batched (512 spans per export, sent when 512 are queued; what is left at the end of a pass is flushed within the pass, so each pass pays for its own exports) and exported over OTLP/HTTP to a collector stand-in in a child process, whose CPU is not counted.',
      ],
    };
  },
};

export default bench;
