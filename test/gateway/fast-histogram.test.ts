import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, type OpenMetricsContentType, Registry } from 'prom-client';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { FastHistogram, type HistogramLabels } from '../../src/gateway/fast-histogram.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';

const STAGE_BUCKETS = [
  5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1,
];
const BUDGET_BUCKETS = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

interface Pair<L extends string> {
  prom: Histogram<L>;
  fast: FastHistogram<L>;
  promReg: Registry;
  fastReg: Registry;
}

/** The same histogram twice: prom-client's and ours, each alone in a registry of its own. */
function pair<L extends string>(
  labelNames: L[],
  buckets: number[] | undefined,
  help = 'A histogram.',
  registry: () => Registry = () => new Registry(),
): Pair<L> {
  const promReg = registry();
  const fastReg = registry();
  const name = 'test_seconds';
  const prom = new Histogram<L>({
    name,
    help,
    labelNames,
    ...(buckets ? { buckets: [...buckets] } : {}),
    registers: [promReg],
  });
  const fast = new FastHistogram<L>({
    name,
    help,
    labelNames,
    ...(buckets ? { buckets } : {}),
    registers: [fastReg],
  });
  return { prom, fast, promReg, fastReg };
}

async function assertSame<L extends string>(p: Pair<L>): Promise<void> {
  assert.equal(await p.fastReg.metrics(), await p.promReg.metrics());
  assert.deepStrictEqual(await p.fast.get(), await p.prom.get());
  assert.deepStrictEqual(await p.fastReg.getMetricsAsJSON(), await p.promReg.getMetricsAsJSON());
}

/** A value that exercises the bucket search: exact bounds, 0, negatives, huge, spread over magnitudes. */
function value(rng: SeededRng, buckets: readonly number[]): number {
  switch (rng.int(7)) {
    case 0:
      return buckets[rng.int(buckets.length)] as number;
    case 1:
      return 0;
    case 2:
      return -rng.uniform(0, 10);
    case 3:
      return [1e6, 1e12, 1e300, Number.MAX_VALUE / 4][rng.int(4)] as number;
    case 4:
      return rng.int(2_000_000);
    default:
      return 10 ** rng.uniform(-7, 1);
  }
}

/**
 * Label sets with a fixed shape each (a label set keeps the shape it was first given; see the module's
 * doc): values needing escaping, a number, and for two labels a partial set and a hash collision.
 */
const MODEL_SETS: HistogramLabels<'model'>[] = [
  { model: 'fraud' },
  { model: 'say "hi"' },
  { model: 'back\\slash' },
  { model: 'new\nline' },
  { model: '' },
  { model: 7 },
];
const TWO_SETS: HistogramLabels<'stage' | 'code'>[] = [
  { stage: 'validate', code: 'OK' },
  { code: 'ERR_X', stage: 'auth' },
  { stage: 'q"\\\n' },
  { code: 'b,stage:a' },
  { stage: 'a', code: 'b' },
  {},
];

/** Feed both histograms the same stream, through every way of reaching a series. */
async function feed<L extends string>(
  p: Pair<L>,
  sets: HistogramLabels<L>[],
  buckets: readonly number[],
  seed: number,
  steps: number,
): Promise<void> {
  const rng = new SeededRng(seed);
  const promChildren = sets.map((s) => p.prom.labels(s));
  const fastChildren = sets.map((s) => p.fast.labels(s));
  for (let step = 0; step < steps; step++) {
    const k = rng.int(sets.length);
    const labels = sets[k] as HistogramLabels<L>;
    const v = value(rng, buckets);
    const positional = p.fast.labelNames.map((n) => labels[n]);
    switch (rng.int(4)) {
      case 0:
        if (positional.every((x) => typeof x === 'string')) {
          p.prom.labels(...(positional as string[])).observe(v);
          p.fast.labels(...(positional as string[])).observe(v);
          break;
        }
        p.prom.labels(labels).observe(v);
        p.fast.labels(labels).observe(v);
        break;
      case 1:
        p.prom.observe(labels, v);
        p.fast.observe(labels, v);
        break;
      case 2:
        promChildren[k]?.observe(v);
        fastChildren[k]?.observe(v);
        break;
      default:
        p.prom.labels(labels).observe(v);
        p.fast.labels(labels).observe(v);
    }
    // A reset part-way: series come back in the order of their next observation.
    if (step === Math.floor(steps / 2)) {
      await assertSame(p);
      p.prom.reset();
      p.fast.reset();
      await assertSame(p);
    }
  }
}

describe('FastHistogram', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`exposes what prom-client's Histogram does for the same stream (seed ${seed})`, async () => {
      const one = pair(['model'], STAGE_BUCKETS);
      await assertSame(one);
      await feed(one, MODEL_SETS, STAGE_BUCKETS, seed, 3000);
      await assertSame(one);

      const budget = pair(['model'], BUDGET_BUCKETS);
      await feed(budget, MODEL_SETS, BUDGET_BUCKETS, seed + 100, 1000);
      await assertSame(budget);

      const two = pair(['stage', 'code'], undefined);
      await feed(two, TWO_SETS, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], seed + 200, 3000);
      await assertSame(two);
    });
  }

  it('matches on OpenMetrics registries and with default labels', async () => {
    const open = pair(['model'], STAGE_BUCKETS, 'Help with \\ and\nnewline.', () => {
      const r = new Registry<OpenMetricsContentType>();
      r.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
      return r as unknown as Registry;
    });
    assert.match(await open.fastReg.metrics(), /# EOF\n$/);
    await feed(open, MODEL_SETS, STAGE_BUCKETS, 9, 500);
    await assertSame(open);

    const labelled = pair(['model'], BUDGET_BUCKETS);
    labelled.promReg.setDefaultLabels({ host: 'h"1', model: 'default' });
    labelled.fastReg.setDefaultLabels({ host: 'h"1', model: 'default' });
    await feed(labelled, MODEL_SETS, BUDGET_BUCKETS, 10, 500);
    await assertSame(labelled);
  });

  it('matches without labels: exported at zero until reset, then from the next observation', async () => {
    const p = pair([], [0.1, 1]);
    await assertSame(p);
    p.prom.observe(0.5);
    p.fast.observe(0.5);
    p.prom.observe(1);
    p.fast.observe(1);
    await assertSame(p);
    p.prom.reset();
    p.fast.reset();
    await assertSame(p);
    assert.equal((await p.fast.get()).values.length, 0);
    p.prom.observe(2);
    p.fast.observe(2);
    await assertSame(p);
  });

  it('matches for unsorted and repeated bounds, as prom-client counts them', async () => {
    for (const buckets of [
      [1, 0.1, 10],
      [0.1, 0.1, 1],
      [-1, 0, 1],
    ]) {
      const p = pair(['model'], buckets);
      await feed(p, MODEL_SETS, buckets, 11, 400);
      await assertSame(p);
    }
  });

  it('matches for zero and remove, and children handed out keep counting', async () => {
    const p = pair(['model'], BUDGET_BUCKETS);
    const promChild = p.prom.labels('a');
    const fastChild = p.fast.labels('a');
    p.prom.zero({ model: 'z' });
    p.fast.zero({ model: 'z' });
    promChild.observe(5);
    fastChild.observe(5);
    p.prom.labels('b').observe(50);
    p.fast.labels('b').observe(50);
    await assertSame(p);
    p.prom.remove('a');
    p.fast.remove('a');
    await assertSame(p);
    p.prom.zero({ model: 'b' }); // in place: b keeps its position
    p.fast.zero({ model: 'b' });
    promChild.observe(3); // a comes back, last
    fastChild.observe(3);
    await assertSame(p);
    p.prom.reset();
    p.fast.reset();
    fastChild.observe(7);
    promChild.observe(7);
    await assertSame(p);
  });

  it('reports a series with the labels of its first observation since the last reset', async () => {
    const p = pair(['stage', 'code'], [1]);
    const shapes: HistogramLabels<'stage' | 'code'>[] = [
      { stage: 'a', code: 5 },
      { code: '5', stage: 'a' },
    ];
    const prom = shapes.map((l) => p.prom.labels(l));
    const fast = shapes.map((l) => p.fast.labels(l));
    for (const first of [0, 1, 0]) {
      prom[first]?.observe(1);
      fast[first]?.observe(1);
      prom[1 - first]?.observe(2);
      fast[1 - first]?.observe(2);
      await assertSame(p);
      p.prom.reset();
      p.fast.reset();
    }
  });

  it('times with startTimer into the series of the labels given', async () => {
    const h = new FastHistogram({ name: 't', help: 'h', labelNames: ['stage'], registers: [] });
    h.startTimer({ stage: 'x' })();
    h.labels('y').startTimer()();
    h.startTimer()({ stage: 'x' });
    const counts = (await h.get()).values.filter((v) => v.metricName === 't_count');
    assert.deepStrictEqual(
      counts.map((v) => [v.labels.stage, v.value]),
      [
        ['x', 2],
        ['y', 1],
      ],
    );
  });

  it('refuses a non-finite value with the TypeError prom-client throws, and records nothing', async () => {
    const p = pair(['model'], STAGE_BUCKETS);
    p.prom.labels('a').observe(1);
    p.fast.labels('a').observe(1);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '1', undefined]) {
      const v = bad as number;
      let expected: unknown;
      assert.throws(
        () => p.prom.labels('a').observe(v),
        (e) => {
          expected = e;
          return e instanceof TypeError;
        },
      );
      assert.throws(
        () => p.fast.labels('a').observe(v),
        (e) => {
          assert.ok(e instanceof TypeError);
          assert.equal(e.message, (expected as TypeError).message);
          return true;
        },
      );
      assert.throws(() => p.fast.observe({ model: 'new' }, v), TypeError);
    }
    await assertSame(p);
  });

  it('refuses unknown label names, wrong label counts and the reserved le at labels() time', () => {
    const h = new FastHistogram<'model'>({ name: 'x', help: 'h', labelNames: ['model'], registers: [] });
    const refused = (e: unknown) => isBulwarkError(e, 'ERR_INVALID_ARGUMENT');
    assert.throws(() => h.labels({ bogus: 'a' } as HistogramLabels<'model'>), refused);
    assert.throws(() => h.observe({ bogus: 'a' } as HistogramLabels<'model'>, 1), refused);
    assert.throws(() => h.labels('a', 'b'), refused);
    assert.throws(() => h.labels(), refused);
    assert.throws(
      () => new FastHistogram({ name: 'y', help: 'h', labelNames: ['le'], registers: [] }),
      refused,
    );
    assert.throws(
      () => new FastHistogram({ name: 'y', help: 'h', labelNames: ['a-b'], registers: [] }),
      refused,
    );
    assert.throws(() => new FastHistogram({ name: 'bad name', help: 'h', registers: [] }), refused);
    assert.throws(() => new FastHistogram({ name: 'y', help: '', registers: [] }), refused);
  });

  it('hands out one child per label set', () => {
    const h = new FastHistogram<'model'>({ name: 'x', help: 'h', labelNames: ['model'], registers: [] });
    const a = h.labels('a');
    assert.equal(h.labels('a'), a);
    assert.equal(h.labels({ model: 'a' }), a);
    assert.notEqual(h.labels('b'), a);
  });

  it('is a registry metric: getSingleMetric, resetMetrics, one name per registry', async () => {
    const reg = new Registry();
    const h = new FastHistogram({ name: 'x', help: 'h', labelNames: ['m'], buckets: [1], registers: [reg] });
    assert.equal(reg.getSingleMetric('x'), h as unknown);
    h.labels('a').observe(2);
    assert.match(await reg.getSingleMetricAsString('x'), /^x_bucket\{le="\+Inf",m="a"\} 1$/m);
    reg.resetMetrics();
    assert.equal(await reg.metrics(), '# HELP x h\n# TYPE x histogram\n');
    assert.throws(
      () => new FastHistogram({ name: 'x', help: 'h', registers: [reg] }),
      /already been registered/,
    );
  });

  it("gives the gateway's histograms the exposition prom-client gave them", async () => {
    const m = new GatewayMetrics({ defaultMetrics: false });
    const promReg = new Registry();
    const prom = new Histogram<'stage'>({
      name: 'gateway_stage_duration_seconds',
      help: 'Time spent in each pipeline stage.',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers: [promReg],
    });
    const rng = new SeededRng(5);
    for (let i = 0; i < 500; i++) {
      const stage = ['validate', 'auth', 'infer'][rng.int(3)] as string;
      const v = value(rng, STAGE_BUCKETS);
      m.stageSeconds.labels(stage).observe(v);
      prom.labels(stage).observe(v);
    }
    assert.equal(
      await m.registry.getSingleMetricAsString(m.stageSeconds.name),
      await promReg.metrics().then((t) => t.trimEnd()),
    );
  });
});
