/**
 * OpenTelemetry traces of the gateway (docs/gateway.md, "Operations").
 *
 * With `telemetry.traces.otlp`, the gateway runs a tracer provider of its own (the Node SDK 2.12 line,
 * the last for Node 20) that batches spans and exports them over OTLP/HTTP (JSON or protobuf,
 * `/v1/traces`) to a collector, so that `bulwark serve` traces without an embedding process; which
 * requests are traced is the gateway's own draw (`sampleRatio`). The provider is not registered
 * globally: an embedding process's own provider is left alone. Without `otlp`, spans go through the
 * global `@opentelemetry/api` to whatever provider the embedding process registered.
 *
 * Traces are telemetry, not a control: a collector that is down loses spans, never a request; each
 * failed export, and each span that finds the export queue full, is counted
 * (`gateway_trace_spans_dropped_total`) and logged as a warning. The audit log
 * is the record that fails closed. Header values (a collector's API key) come from a file and are never
 * logged or echoed in errors.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { createSecureContext } from 'node:tls';
import {
  type Context,
  createNoopMeter,
  defaultTextMapGetter,
  type Meter,
  type MeterProvider,
  ROOT_CONTEXT,
  type Span,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
// The SDK's own batch processor (the Node SDK's re-export does not take a self-observability meter).
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import {
  AlwaysOnSampler,
  NodeTracerProvider,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-node';
import { BulwarkError, bulwarkVersion, fsError, type Rng, SecureRng } from '../core/index.js';
import type { GatewayConfig } from './config.js';

type TracesConfig = GatewayConfig['telemetry']['traces'];

/** How the gateway starts its spans, and how to flush and stop what exports them. */
export interface GatewayTracing {
  /**
   * The span of one inference request, or null when the draw at `sampleRatio` leaves this request out:
   * an unsampled request costs no span and its headers are not read. A sampled request's W3C
   * `traceparent` / `tracestate` (in `headers`) make the span a child in the caller's trace; the
   * caller's sampled flag decides nothing (the gateway draws, {@link requestSampler}), so a caller
   * cannot keep its requests out of the traces.
   */
  startSpan(headers: IncomingHttpHeaders | undefined): Span | null;
  /** Exports the spans buffered so far (a no-op without `otlp`). */
  flush(): Promise<void>;
  /**
   * Re-reads the collector's headers file, CA, client certificate and key (a no-op without `otlp`);
   * on an error (ERR_CONFIG_INVALID) the previous exporter stays in service.
   */
  reload(): Promise<void>;
  /** Exports the spans still buffered, then stops (a no-op without `otlp`). */
  shutdown(): Promise<void>;
}

const w3c = new W3CTraceContextPropagator();

/** The caller's trace from its W3C headers, or undefined without a valid `traceparent`. */
function parentOf(headers: IncomingHttpHeaders | undefined): Context | undefined {
  if (headers?.traceparent === undefined) return undefined;
  const ctx = w3c.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  return trace.getSpanContext(ctx) === undefined ? undefined : ctx;
}

/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Header lines `Name: value` (blank lines and `#` comments ignored) from `file`. An error names the file
 * and the line, never the value.
 */
export function parseHeaderLines(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    const value = colon > 0 ? line.slice(colon + 1).trim() : '';
    if (!TOKEN.test(name) || value === '' || /[\r\n\0]/.test(value))
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `telemetry.traces.otlp.headersFile: ${file} line ${i + 1}: expected "Name: value"`,
      );
    out[name.toLowerCase()] = value;
  }
  return out;
}

/**
 * An exporter that reports each failed export (spans lost) to `dropped`, then answers as `inner` did:
 * the SDK itself only tells its diagnostic logger, which the gateway does not register globally.
 */
class ReportingExporter implements SpanExporter {
  #inner: SpanExporter;
  constructor(
    inner: SpanExporter,
    private readonly dropped: (spans: number, error: Error | undefined) => void,
  ) {
    this.#inner = inner;
  }

  /** Exports from now on through `next`; returns the exporter it replaces. */
  swap(next: SpanExporter): SpanExporter {
    const old = this.#inner;
    this.#inner = next;
    return old;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.dropped(spans.length, result.error);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * The batch processor's self-observability meter reduced to what the gateway needs: the spans it drops
 * because its queue is full (the SDK's `otel.sdk.processor.span.processed` with `error.type:
 * queue_full`), which it otherwise only tells a diagnostic logger the gateway does not register. Failed
 * exports are counted by {@link ReportingExporter}, so they are not counted here a second time.
 */
function queueDrops(dropped: (spans: number, error: Error | undefined) => void): MeterProvider {
  const full = new Error('the export queue is full (telemetry.traces.otlp.maxQueueSize)');
  const meter: Meter = Object.assign(Object.create(createNoopMeter()) as Meter, {
    createCounter: () => ({
      add(value: number, attributes?: Record<string, unknown>) {
        if (attributes?.['error.type'] === 'queue_full') dropped(value, full);
      },
    }),
  });
  return { getMeter: () => meter };
}

/**
 * Head sampling at `ratio`, decided by the gateway from `rng` (the CSPRNG in production): a trace-id
 * ratio sampler would let a caller who picks its own trace ids in `traceparent` choose to go unseen.
 */
export function requestSampler(ratio: number, rng: Rng): () => boolean {
  return ratio >= 1 ? () => true : () => rng.bernoulli(ratio);
}

/** The gateway's tracing from `tracer`; `own` is the gateway's own provider (with `otlp`): flush, reload, stop. */
function tracing(
  tracer: Tracer,
  sampled: () => boolean,
  own?: { forceFlush(): Promise<void>; shutdown(): Promise<void>; reload(): Promise<void> },
): GatewayTracing {
  return {
    startSpan: (headers) =>
      sampled() ? tracer.startSpan('gateway.infer', undefined, parentOf(headers)) : null,
    flush: async () => own?.forceFlush(),
    reload: async () => own?.reload(),
    shutdown: async () => own?.shutdown(),
  };
}

type OtlpConfig = NonNullable<TracesConfig['otlp']>;

/**
 * The OTLP exporter for `otlp`, its files read now: the headers (a collector's API key), the CA, and
 * the client certificate and key for mutual TLS. A key that does not parse or is not the certificate's
 * is refused here (ERR_CONFIG_INVALID naming the files, never their contents), not at every export.
 */
async function otlpExporter(otlp: OtlpConfig): Promise<SpanExporter> {
  const read = async (key: string, path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      const err = fsError(e, path, `telemetry.traces.otlp.${key}: cannot read`);
      throw new BulwarkError('ERR_CONFIG_INVALID', err.message, { cause: e, details: { path } });
    }
  };
  const headers =
    otlp.headersFile === undefined
      ? {}
      : parseHeaderLines(await read('headersFile', otlp.headersFile), otlp.headersFile);
  const tls = {
    ...(otlp.caFile === undefined ? {} : { ca: await read('caFile', otlp.caFile) }),
    ...(otlp.certFile === undefined || otlp.keyFile === undefined
      ? {}
      : { cert: await read('certFile', otlp.certFile), key: await read('keyFile', otlp.keyFile) }),
  };
  if (tls.cert !== undefined) {
    try {
      createSecureContext(tls);
    } catch (e) {
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `telemetry.traces.otlp.keyFile: ${otlp.keyFile} is not the PEM private key of ${otlp.certFile}`,
        { cause: e },
      );
    }
  }
  const options = {
    url: otlp.endpoint,
    headers,
    timeoutMillis: otlp.timeoutMs,
    compression: otlp.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
    ...(Object.keys(tls).length === 0 ? {} : { httpAgentOptions: { ...tls, keepAlive: true } }),
  };
  return otlp.protocol === 'http/protobuf' ? new ProtobufExporter(options) : new JsonExporter(options);
}

/**
 * The gateway's tracing for `traces` (enabled), started; `dropped` hears of spans an export lost;
 * `rng` draws the sampling decisions (tests pass a seeded one).
 */
export async function startTracing(
  traces: TracesConfig,
  dropped: (spans: number, error: Error | undefined) => void = () => {},
  rng: Rng = new SecureRng(),
): Promise<GatewayTracing> {
  const sampled = requestSampler(traces.sampleRatio, rng);
  const otlp = traces.otlp;
  if (otlp === undefined) return tracing(trace.getTracer('bulwark-gateway', bulwarkVersion()), sampled);
  const exporter = new ReportingExporter(await otlpExporter(otlp), dropped);
  const provider = new NodeTracerProvider({
    sampler: new AlwaysOnSampler(),
    resource: resourceFromAttributes({
      'service.name': traces.serviceName,
      'service.version': bulwarkVersion(),
    }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        exportTimeoutMillis: otlp.timeoutMs,
        maxQueueSize: otlp.maxQueueSize,
        maxExportBatchSize: Math.min(512, otlp.maxQueueSize),
        selfObsMeterProvider: queueDrops(dropped),
      }),
    ],
  });
  return tracing(provider.getTracer('bulwark-gateway', bulwarkVersion()), sampled, {
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
    // Rotated collector credentials (a short-lived client certificate, a new API key): the next
    // export uses a new exporter; the old one finishes what it is sending, then stops.
    reload: async () => {
      const old = exporter.swap(await otlpExporter(otlp));
      await old.shutdown().catch(() => {});
    },
  });
}
