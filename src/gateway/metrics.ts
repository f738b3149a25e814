/**
 * Prometheus metrics of the gateway (prom-client, a registry of its own, served on a separate port).
 * Labels are closed sets only: model names from the configuration, stage names, error codes and
 * detector kinds. Tokens, subjects, principals and addresses never appear in a label (they would leak
 * identities to whoever scrapes, and make cardinality unbounded).
 * The histograms are FastHistograms (same exposition as prom-client's Histogram): the pipeline observes
 * about twelve times per request, and prom-client's observe hashes and allocates on each.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { FastHistogram } from './fast-histogram.js';

/** Buckets from 5 µs to 1 s: stages range from microseconds (validation) to milliseconds (audit). */
const STAGE_BUCKETS = [
  5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1,
];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model' | 'code'>;
  readonly stageSeconds: FastHistogram<'stage'>;
  readonly requestSeconds: FastHistogram<'model'>;
  readonly denials: Counter<'stage' | 'reason'>;
  readonly detections: Counter<'model' | 'detector'>;
  readonly budgetRemaining: FastHistogram<'model'>;
  readonly inFlight: Gauge;
  readonly modelInfo: Gauge<'model' | 'version' | 'origin'>;
  readonly auditCheckpointSize: Gauge;
  readonly traceSpansDropped: Counter;
  readonly auditDenialsSummarized: Counter;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    const histogram = <L extends string>(name: string, help: string, labelNames: L[], buckets: number[]) =>
      new FastHistogram<L>({ name, help, labelNames, buckets, registers });
    this.requests = counter(
      'gateway_requests_total',
      'Requests answered, by model and result code (OK or the ERR_ code).',
      ['model', 'code'],
    );
    this.stageSeconds = histogram(
      'gateway_stage_duration_seconds',
      'Time spent in each pipeline stage.',
      ['stage'],
      STAGE_BUCKETS,
    );
    this.requestSeconds = histogram(
      'gateway_request_duration_seconds',
      'Time from the end of the request body to the answer.',
      ['model'],
      STAGE_BUCKETS,
    );
    this.denials = counter(
      'gateway_denials_total',
      'Requests denied, by the stage that denied them and the error code.',
      ['stage', 'reason'],
    );
    this.detections = counter(
      'gateway_detections_total',
      'Requests flagged by a detector (counted in monitor mode too).',
      ['model', 'detector'],
    );
    this.budgetRemaining = histogram(
      'gateway_query_budget_remaining',
      "Callers' query budget left after each request (a distribution: callers are not labels).",
      ['model'],
      [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000],
    );
    this.inFlight = new Gauge({
      name: 'gateway_requests_in_flight',
      help: 'Requests being processed.',
      registers,
    });
    this.modelInfo = new Gauge({
      name: 'gateway_model_info',
      help: 'Models served (1), with where they came from: package (signature verified) or insecure-onnx.',
      labelNames: ['model', 'version', 'origin'],
      registers,
    });
    this.auditCheckpointSize = new Gauge({
      name: 'gateway_audit_checkpoint_size',
      help: 'Tree size of the latest signed audit checkpoint.',
      registers,
    });
    this.traceSpansDropped = new Counter({
      name: 'gateway_trace_spans_dropped_total',
      help: 'Trace spans an OTLP export failed to deliver (traces are lost, requests are not).',
      registers,
    });
    this.auditDenialsSummarized = new Counter({
      name: 'gateway_audit_denials_summarized_total',
      help: 'Refusals counted in a request.denied.summary audit entry instead of an entry of their own (audit.denials).',
      registers,
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
