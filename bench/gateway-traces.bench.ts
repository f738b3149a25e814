/**
 * `npm run bench -- gateway-traces`: what OpenTelemetry traces add to the gateway's CPU per request.
 * The pipeline runs in process, as in gateway-costs (no HTTP, no TLS), with the full stack and with the
 * full stack plus traces exported by the gateway's own provider (telemetry.traces.otlp): every request
 * over OTLP/HTTP JSON, every request over OTLP/HTTP protobuf, and one request in ten (sampleRatio 0.1)
 * over protobuf. A trace configuration's cost is its CPU per request minus the full stack's, paired
 * within a repeat; each repeat runs every variant once, in a seeded shuffled order, with a full GC
 * before each pass. The exports go to a collector stand-in in a child process, so receiving them is not
 * counted as the gateway's CPU; each pass flushes its own spans before it is timed out.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { gatewayConfig } from '../src/gateway/index.js';
import { type Fixture, fixture } from '../test/gateway/gateway-fixtures.js';
import { benchConfigs, type PipelineVariant, priceInProcess } from './gateway.bench.js';
import type { Benchmark } from './harness.js';

/** Traces added to the full stack (telemetry.traces), priced as full-with-them minus full. */
const TRACES: { id: string; label: string; protocol: 'http/json' | 'http/protobuf'; sampleRatio: number }[] =
  [
    { id: 'json', label: 'traces, every request, OTLP/HTTP JSON', protocol: 'http/json', sampleRatio: 1 },
    {
      id: 'protobuf',
      label: 'traces, every request, OTLP/HTTP protobuf',
      protocol: 'http/protobuf',
      sampleRatio: 1,
    },
    {
      id: 'tenth',
      label: 'traces, sample ratio 0.1, OTLP/HTTP protobuf',
      protocol: 'http/protobuf',
      sampleRatio: 0.1,
    },
  ];

/**
 * An OTLP collector stand-in in a child process: reads each export whole and answers 200 with an
 * empty body, so the exporter pays for the whole exchange, connection and reply included.
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
  name: 'gateway-traces',
  description:
    "what the gateway's OpenTelemetry traces cost: CPU µs per request, full stack with traces minus full stack (in process)",
  async run(ctx) {
    const f: Fixture = await fixture();
    const { full } = benchConfigs(f);
    const collector = await childCollector();
    const variants: PipelineVariant[] = [
      { id: 'full', label: 'full stack, traces off', config: full, disable: [] },
      // A second gateway with the same configuration: its "cost" is the difference between two
      // identical instances (their own audit files, detector state, code paths warmed apart), the
      // floor under which a trace configuration's cost is not told from zero.
      {
        id: 'full_control',
        label: 'full stack, traces off, a second instance (control)',
        config: full,
        disable: [],
      },
      ...TRACES.map((t) => ({
        id: `full_${t.id}`,
        label: `full stack with ${t.label}`,
        // Parsed again so that the otlp section's defaults (timeout, queue, no compression) are filled.
        config: gatewayConfig({
          ...full,
          telemetry: {
            ...full.telemetry,
            traces: {
              enabled: true,
              serviceName: 'bench',
              sampleRatio: t.sampleRatio,
              otlp: { endpoint: collector.url, protocol: t.protocol },
            },
          },
        }),
        disable: [],
      })),
    ];
    const { figures, facts, cpu, paired, note } = await priceInProcess(f, variants, ctx, 13).finally(() =>
      collector.stop(),
    );
    const base = cpu('full');
    for (const t of [
      { id: 'control', label: 'a second identical instance, traces off (control)' },
      ...TRACES,
    ]) {
      const diff = paired(`full_${t.id}`, 'full');
      figures.push(
        {
          id: `cost.${t.id}_us`,
          label: `${t.label} (full stack with them minus full stack)`,
          system: 'bulwark',
          unit: 'µs',
          better: 'lower',
          samples: diff,
        },
        {
          id: `cost.${t.id}_pct`,
          label: `${t.label}, as a share of the full stack's CPU`,
          system: 'bulwark',
          unit: '%',
          better: 'lower',
          samples: diff.map((d, k) => (100 * d) / (base[k] as number)),
        },
      );
    }
    return {
      figures,
      facts,
      notes: [
        note,
        'One span per sampled request with an event per stage, batched (512 spans per export, sent when 512 are queued; what is left at the end of a pass is flushed within the pass, so each pass pays for its own exports) and exported over OTLP/HTTP to a collector stand-in in a child process, whose CPU is not counted. A cost is paired within a repeat, then the median over repeats; the control (a second gateway with the full stack and traces off) shows how far two identical instances differ.',
      ],
    };
  },
};

export default bench;
