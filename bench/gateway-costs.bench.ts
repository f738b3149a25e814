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
import type { OptionalStage } from '../src/gateway/index.js';
import { type Fixture, fixture } from '../test/gateway/gateway-fixtures.js';
import { baseVariants, benchConfigs, priceInProcess } from './gateway.bench.js';
import type { Benchmark } from './harness.js';

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
    const variants = [
      ...baseVariants(plain, full),
      ...LEAVE_ONE_OUT.map((l) => ({
        id: `full_minus_${l.id}`,
        label: `full stack without ${l.label}`,
        config: full,
        disable: l.disable,
      })),
    ];
    const { figures, facts, paired, note } = await priceInProcess(f, variants, ctx, 11);
    const us = (id: string, label: string, samples: number[]) =>
      figures.push({ id, label, system: 'bulwark', unit: 'µs', better: 'lower', samples });
    // A cost per repeat: `full` minus the run without it, both from the same repeat.
    us('cost.all_us', 'every protection (full stack minus protections off)', paired('full', 'off'));
    for (const l of LEAVE_ONE_OUT)
      us(
        `cost.${l.id}_us`,
        `${l.label} (full stack minus full stack without it)`,
        paired('full', `full_minus_${l.id}`),
      );
    return {
      figures,
      facts,
      notes: [
        note,
        'A cost is paired within a repeat (full minus full-without-it in the same repeat), then the median over repeats; costs do not add up exactly (the stages share caches, allocations and the garbage collector). Identity is left out together with Cedar, which needs an authenticated principal. Schema validation and output hardening run in every configuration, protections off included. TLS and mutual TLS are transport, measured by the gateway bench.',
      ],
    };
  },
};

export default bench;
