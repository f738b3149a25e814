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
import type { OptionalStage } from '../src/gateway/index.js';
import { type Fixture, fixture } from '../test/gateway/gateway-fixtures.js';
import { baseVariants, benchConfigs, inProcessPlan, measurePipelineVariants } from './gateway.bench.js';
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

const bench: Benchmark = {
  name: 'gateway-costs',
  description:
    "the gateway's protections priced one by one: CPU µs per request, full stack minus the full stack without each (in process)",
  async run(ctx) {
    const f: Fixture = await fixture();
    const { plain, full } = benchConfigs(f);
    const { repeats, requests } = inProcessPlan(ctx);
    const variants = [
      ...baseVariants(plain, full),
      ...LEAVE_ONE_OUT.map((l) => ({
        id: `full_minus_${l.id}`,
        label: `full stack without ${l.label}`,
        config: full,
        disable: l.disable,
      })),
    ];
    const runs = await measurePipelineVariants(f, variants, {
      requests,
      repeats,
      connections: 64,
      shuffle: new SeededRng(11),
      gcBetween: true,
    });
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
    // A cost per repeat: `full` minus `without`, both from the same repeat.
    const cost = (without: string) => {
      const a = cpuOf.get('full');
      const b = cpuOf.get(without);
      if (!a || !b) throw new Error(`gateway-costs: missing the full or the ${without} run`);
      return a.map((x, k) => x - (b[k] as number));
    };
    us('cost.all_us', 'every protection (full stack minus protections off)', cost('off'));
    for (const l of LEAVE_ONE_OUT)
      us(
        `cost.${l.id}_us`,
        `${l.label} (full stack minus full stack without it)`,
        cost(`full_minus_${l.id}`),
      );
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
