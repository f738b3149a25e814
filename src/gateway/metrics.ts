/**
 * Prometheus metrics of the gateway (prom-client, a registry of its own, served on a separate port).
 * Labels are closed sets only: model names from the configuration, stage names, error codes and
 * detector kinds. Tokens, subjects, principals and addresses never appear in a label (they would leak
 * identities to whoever scrapes, and make cardinality unbounded).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Buckets from 5 µs to 1 s: stages range from microseconds (validation) to milliseconds (audit). */
const STAGE_BUCKETS = [
  5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1,
];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model' | 'code'>;
  readonly stageSeconds: Histogram<'stage'>;
  readonly requestSeconds: Histogram<'model'>;
  readonly denials: Counter<'stage' | 'reason'>;
  readonly detections: Counter<'model' | 'detector'>;
  readonly budgetRemaining: Histogram<'model'>;
  readonly inFlight: Gauge;
  readonly modelInfo: Gauge<'model' | 'version' | 'origin'>;
  readonly auditCheckpointSize: Gauge;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by model and result code (OK or the ERR_ code).',
      labelNames: ['model', 'code'],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'gateway_stage_duration_seconds',
      help: 'Time spent in each pipeline stage.',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'gateway_request_duration_seconds',
      help: 'Time from the end of the request body to the answer.',
      labelNames: ['model'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.denials = new Counter({
      name: 'gateway_denials_total',
      help: 'Requests denied, by the stage that denied them and the error code.',
      labelNames: ['stage', 'reason'],
      registers,
    });
    this.detections = new Counter({
      name: 'gateway_detections_total',
      help: 'Requests flagged by a detector (counted in monitor mode too).',
      labelNames: ['model', 'detector'],
      registers,
    });
    this.budgetRemaining = new Histogram({
      name: 'gateway_query_budget_remaining',
      help: "Callers' query budget left after each request (a distribution: callers are not labels).",
      labelNames: ['model'],
      buckets: [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000],
      registers,
    });
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
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
