/**
 * A Prometheus histogram that is cheap to observe, registered in a prom-client `Registry` and exposed
 * byte for byte as prom-client's `Histogram` would be.
 *
 * Why: prom-client's `observe` validates the labels, hashes them into a string and allocates on every
 * call, about 5 % of the gateway's request path at ~12 observations per request. Here the child of a
 * label set is built once, at its first `labels()`, and kept; its `observe` only checks the value, finds
 * the bucket and adds to a Float64Array (sum and count included), with no allocation and no hashing.
 *
 * Compatible with prom-client 15's `Histogram` (without exemplars): same name/label validation, same
 * `labels`/`observe`/`startTimer`/`zero`/`remove`/`reset`, same `get()` and registry text, including
 * the order of series (first observation since the last reset), the labels a series is reported with
 * (those of the call that first observed it since the last reset), unsorted or repeated bucket bounds,
 * and the partial label sets prom-client accepts. Unlike prom-client's, a label set's child and counters
 * are kept for the histogram's life (reset only zeroes them), which suits closed label sets such as the
 * gateway's, not unbounded ones.
 */
import { format } from 'node:util';
import {
  type Aggregator,
  register as globalRegistry,
  type Metric,
  type OpenMetricsContentType,
  type PrometheusContentType,
  type Registry,
} from 'prom-client';
import { BulwarkError } from '../core/index.js';

type LabelValue = string | number;

/** Label values by label name; a missing or undefined label is left out of the series' identity. */
export type HistogramLabels<L extends string> = Partial<Record<L, LabelValue>>;

export interface FastHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Upper bounds, used in the order given (as prom-client does); default prom-client's. */
  buckets?: readonly number[];
  /** Default: prom-client's global registry, as for its metrics. */
  registers?: readonly (Registry<PrometheusContentType> | Registry<OpenMetricsContentType>)[];
  aggregator?: Aggregator;
  /** Called before each read (get, scrape), as prom-client's `collect`. */
  collect?: (this: FastHistogram<L>) => void | Promise<void>;
}

/** One sample of `get()`: a cumulative bucket, the sum or the count of one label set. */
export interface FastHistogramSample<L extends string> {
  value: number;
  metricName: string;
  /** Always null for buckets and undefined for sum and count (no exemplars), as prom-client. */
  exemplar: null | undefined;
  labels: Partial<Record<L | 'le', LabelValue>>;
}

/** What `get()` returns: prom-client's MetricObject for a histogram. */
export interface FastHistogramMetric<L extends string> {
  name: string;
  help: string;
  type: 'histogram';
  values: FastHistogramSample<L>[];
  aggregator: Aggregator;
}

/** The series of one label set. */
export interface FastHistogramChild<L extends string> {
  /** Count `value` (a finite number; TypeError otherwise, as prom-client). */
  observe(value: number): void;
  /** Returns a function that observes the seconds elapsed since (with extra labels if given). */
  startTimer(): (labels?: HistogramLabels<L>) => number;
}

/** The sample a registry formats: labels of the line (`le`) apart from the series' labels (cached). */
interface ExportSample<L extends string> {
  labels: { le?: number | '+Inf' };
  sharedLabels: HistogramLabels<L>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function invalid(message: string): BulwarkError {
  return new BulwarkError('ERR_INVALID_ARGUMENT', message);
}

function elapsedSince(start: [number, number]): number {
  const d = process.hrtime(start);
  return d[0] + d[1] / 1e9;
}

/**
 * One label set's counters (one per prom-client hash): [0, n) the bucket where a value first fits (index
 * of the first bound it is <= to), n the values above every bound, n+1 the sum, n+2 the count. Not live
 * (absent from the output) until observed since the last reset, as prom-client creates its entry on the
 * first observation; it then takes the labels of the child that observed (prom-client's entry keeps the
 * labels object of the call that created it).
 */
class Series<L extends string> {
  readonly counts: Float64Array;
  live = false;

  constructor(
    public labels: HistogramLabels<L>,
    readonly order: Series<L>[],
    bucketCount: number,
  ) {
    this.counts = new Float64Array(bucketCount + 3);
  }

  activate(labels: HistogramLabels<L>): void {
    this.labels = labels;
    this.live = true;
    this.order.push(this);
  }

  clear(): void {
    this.counts.fill(0);
    this.live = false;
  }
}

/**
 * A label set as given by the caller (one per shape: names in the order given, values with their type),
 * counting into the series of its prom-client identity. Two shapes of one identity (`{a, b}` and
 * `{b, a}`, 5 and '5') share the counters and differ only in the labels they give a series they create.
 */
class Child<L extends string> implements FastHistogramChild<L> {
  constructor(
    readonly owner: FastHistogram<L>,
    readonly series: Series<L>,
    readonly labels: HistogramLabels<L>,
    readonly bounds: Float64Array,
  ) {}

  observe(value: number): void {
    // Same test and message as prom-client (Number.isFinite does not coerce: '5' is refused too).
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${format(value)}`);
    const b = this.bounds;
    const n = b.length;
    let i = 0;
    while (i < n && !(value <= (b[i] as number))) i++;
    const s = this.series;
    const c = s.counts;
    c[i] = (c[i] as number) + 1;
    c[n + 1] = (c[n + 1] as number) + value;
    c[n + 2] = (c[n + 2] as number) + 1;
    if (!s.live) s.activate(this.labels);
  }

  startTimer(): (labels?: HistogramLabels<L>) => number {
    const start = process.hrtime();
    return (labels) => {
      const v = elapsedSince(start);
      if (labels === undefined) this.observe(v);
      else this.owner.observe({ ...this.labels, ...labels }, v);
      return v;
    };
  }
}

export class FastHistogram<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly labelNames: readonly L[];
  readonly buckets: readonly number[];
  readonly aggregator: Aggregator;
  readonly #collect: ((this: FastHistogram<L>) => void | Promise<void>) | undefined;
  readonly #sortedLabelNames: readonly L[];
  readonly #bounds: Float64Array;
  /** Per bound (in output order), the counter slots prom-client's bucket of that bound adds up. */
  readonly #exportSlots: readonly (readonly number[])[];
  /** Series by prom-client's identity of a label set (its hashObject string). */
  readonly #bySet = new Map<string, Series<L>>();
  /** Children by the shape of their labels (see shapeOf). */
  readonly #byShape = new Map<string, Child<L>>();
  /** With one label name, children by the value passed positionally: `labels(model)` with no hashing. */
  readonly #byValue = new Map<string, Child<L>>();
  /** Live series in order of first observation since the last reset (prom-client's output order). */
  readonly #live: Series<L>[] = [];

  constructor(config: FastHistogramConfig<L>) {
    if (!config.help) throw invalid('histogram: help is required');
    if (!config.name) throw invalid('histogram: name is required');
    if (!METRIC_NAME.test(config.name)) throw invalid(`histogram: invalid metric name ${config.name}`);
    const labelNames = [...(config.labelNames ?? [])];
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l)) throw invalid(`histogram ${config.name}: invalid label name ${l}`);
      if (l === 'le') throw invalid(`histogram ${config.name}: le is a reserved label keyword`);
    }
    this.name = config.name;
    this.help = config.help;
    this.labelNames = Object.freeze(labelNames);
    this.#sortedLabelNames = Object.freeze([...labelNames].sort());
    this.buckets = Object.freeze([...(config.buckets ?? DEFAULT_BUCKETS)]);
    this.aggregator = config.aggregator ?? 'sum';
    this.#collect = config.collect;
    this.#bounds = Float64Array.from(this.buckets);
    // prom-client keeps one counter per bound *string* (an object key) and puts values above every bound
    // under the key "-1": so a repeated bound reports the same count twice, and a bound of -1 gets the
    // overflow. Gathered once here so that observe stays a plain index.
    const n = this.buckets.length;
    this.#exportSlots = this.buckets.map((ub) => {
      const key = String(ub);
      const slots: number[] = [];
      this.buckets.forEach((other, j) => {
        if (String(other) === key) slots.push(j);
      });
      if (key === '-1') slots.push(n);
      return slots;
    });
    // prom-client creates the entry of a histogram without labels up front (it is exported at zero).
    if (labelNames.length === 0) this.#series({}).activate({});
    for (const r of config.registers ?? [globalRegistry]) {
      // The registry reads only name, type, help, get/getForPromString and reset: what this class has.
      r.registerMetric(this as unknown as Metric<L>);
    }
  }

  /** The child of a label set, created once (`labels('a')` or `labels({ model: 'a' })`). */
  labels(...values: LabelValue[]): FastHistogramChild<L>;
  labels(labels: HistogramLabels<L>): FastHistogramChild<L>;
  labels(...args: LabelValue[] | [HistogramLabels<L>]): FastHistogramChild<L> {
    const first = args[0];
    const fast = args.length === 1 && typeof first === 'string' && this.labelNames.length === 1;
    if (fast) {
      const s = this.#byValue.get(first);
      if (s !== undefined) return s;
    }
    const c = this.#child(this.#labelsOf(args));
    if (fast) this.#byValue.set(first, c);
    return c;
  }

  /** Count a value, in the series without labels or in that of `labels`. */
  observe(value: number): void;
  observe(labels: HistogramLabels<L>, value: number): void;
  observe(labelsOrValue: HistogramLabels<L> | number, value?: number): void {
    if (typeof labelsOrValue === 'object' && labelsOrValue !== null) {
      this.#child(this.#checked(labelsOrValue)).observe(value as number);
    } else {
      this.#child({}).observe(labelsOrValue);
    }
  }

  /** Returns a function that observes the seconds elapsed since, in the series of the labels given. */
  startTimer(labels?: HistogramLabels<L>): (labels?: HistogramLabels<L>) => number {
    const start = process.hrtime();
    return (endLabels) => {
      const v = elapsedSince(start);
      this.observe({ ...labels, ...endLabels }, v);
      return v;
    };
  }

  /** Export the series of `labels` at zero (resetting it if it has values), as prom-client's zero. */
  zero(labels: HistogramLabels<L>): void {
    const checked = { ...this.#checked(labels) };
    const s = this.#series(checked);
    s.counts.fill(0);
    // prom-client replaces the entry: the labels are zero's, the place in the output is kept if it had one.
    if (s.live) s.labels = checked;
    else s.activate(checked);
  }

  /** Drop a label set from the output; children already handed out keep working (as in prom-client). */
  remove(...values: LabelValue[]): void;
  remove(labels: HistogramLabels<L>): void;
  remove(...args: LabelValue[] | [HistogramLabels<L>]): void {
    const s = this.#bySet.get(this.#hash(this.#labelsOf(args)));
    if (s === undefined || !s.live) return;
    s.clear();
    this.#live.splice(this.#live.indexOf(s), 1);
  }

  /** Drop every series from the output (children handed out keep working). */
  reset(): void {
    for (const s of this.#live) s.clear();
    this.#live.length = 0;
  }

  /** The histogram as prom-client's Histogram.get() returns it. */
  async get(): Promise<FastHistogramMetric<L>> {
    await this.#collected();
    const values: FastHistogramSample<L>[] = [];
    this.#export((le, shared, value, metricName, exemplar) => {
      // prom-client's splayLabels: the line's own labels first, then the series' labels.
      const labels: Record<string, LabelValue> = le === undefined ? {} : { le };
      Object.assign(labels, shared);
      values.push({ value, metricName, exemplar, labels: labels as FastHistogramSample<L>['labels'] });
    });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /**
   * What the registry formats (it prefers this to get()): the series' labels as a separate object, the
   * same for every line of a series, which the registry formats once (it caches by object).
   */
  async getForPromString(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: ExportSample<L>[];
    aggregator: Aggregator;
  }> {
    await this.#collected();
    const values: ExportSample<L>[] = [];
    this.#export((le, sharedLabels, value, metricName, exemplar) => {
      values.push({ labels: le === undefined ? {} : { le }, sharedLabels, value, metricName, exemplar });
    });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  async #collected(): Promise<void> {
    if (this.#collect) {
      const v = this.#collect.call(this);
      if (v instanceof Promise) await v;
    }
  }

  /** Each line in prom-client's order: per series, the cumulative buckets, +Inf, sum, count. */
  #export(
    line: (
      le: number | '+Inf' | undefined,
      shared: HistogramLabels<L>,
      value: number,
      metricName: string,
      exemplar: null | undefined,
    ) => void,
  ): void {
    const bucket = `${this.name}_bucket`;
    const sum = `${this.name}_sum`;
    const count = `${this.name}_count`;
    const n = this.buckets.length;
    for (const s of this.#live) {
      const c = s.counts;
      let acc = 0;
      for (let i = 0; i < n; i++) {
        for (const j of this.#exportSlots[i] as readonly number[]) acc += c[j] as number;
        line(this.buckets[i] as number, s.labels, acc, bucket, null);
      }
      const total = c[n + 2] as number;
      line('+Inf', s.labels, total, bucket, null);
      line(undefined, s.labels, c[n + 1] as number, sum, undefined);
      line(undefined, s.labels, total, count, undefined);
    }
  }

  /** prom-client's getLabels and validateLabel: positional values in labelNames order, or an object. */
  #labelsOf(args: LabelValue[] | [HistogramLabels<L>]): HistogramLabels<L> {
    const first = args[0];
    if (typeof first === 'object') {
      if (first === null) throw invalid(`histogram ${this.name}: labels must be an object or values`);
      return this.#checked(first);
    }
    if (args.length !== this.labelNames.length) {
      throw invalid(
        `histogram ${this.name}: ${args.length} label values for label names (${this.labelNames.join(', ')})`,
      );
    }
    const labels: HistogramLabels<L> = {};
    for (let i = 0; i < args.length; i++) labels[this.labelNames[i] as L] = args[i] as LabelValue;
    return labels;
  }

  /** `labels`, having checked that it names known labels only. */
  #checked(labels: HistogramLabels<L>): HistogramLabels<L> {
    for (const name in labels) {
      if (!this.labelNames.includes(name)) {
        throw invalid(
          `histogram ${this.name}: label ${JSON.stringify(name)} is not one of (${this.labelNames.join(', ')})`,
        );
      }
    }
    return labels;
  }

  /** prom-client's hashObject: the identity of a label set (undefined values left out). */
  #hash(labels: HistogramLabels<L>): string {
    let h = '';
    for (const k of this.#sortedLabelNames) {
      const v = labels[k];
      if (v !== undefined) h += `${k}:${v},`;
    }
    return h;
  }

  #series(labels: HistogramLabels<L>): Series<L> {
    const h = this.#hash(labels);
    let s = this.#bySet.get(h);
    if (s === undefined) {
      s = new Series(labels, this.#live, this.#bounds.length);
      this.#bySet.set(h, s);
    }
    return s;
  }

  #child(labels: HistogramLabels<L>): Child<L> {
    const key = shapeOf(labels);
    let c = this.#byShape.get(key);
    if (c === undefined) {
      // A copy: a caller changing its object later must not relabel the series.
      const own = { ...labels };
      c = new Child(this, this.#series(own), own, this.#bounds);
      this.#byShape.set(key, c);
    }
    return c;
  }
}

/** What tells two label objects apart in prom-client's output: names in order, values and their types. */
function shapeOf(labels: Readonly<Record<string, unknown>>): string {
  let key = '';
  for (const [k, v] of Object.entries(labels))
    key += `${JSON.stringify(k)}:${typeof v}:${JSON.stringify(String(v))},`;
  return key;
}
