/**
 * OpenTelemetry traces of the gateway (docs/gateway.md, "Operations").
 *
 * With `telemetry.traces.otlp`, the gateway runs a tracer provider of its own (the Node SDK 2.12 line,
 * the last for Node 20) that batches spans and exports them over OTLP/HTTP (JSON, `/v1/traces`) to a
 * collector, so that `bulwark serve` traces without an embedding process. The provider is not
 * registered globally: an embedding process's own provider is left alone. Without `otlp`, spans go
 * through the global `@opentelemetry/api` to whatever provider the embedding process registered.
 *
 * Traces are telemetry, not a control: a collector that is down loses spans, never a request; each
 * failed export is counted (`gateway_trace_spans_dropped_total`) and logged as a warning. The audit log
 * is the record that fails closed. Header values (a collector's API key) come from a file and are never
 * logged or echoed in errors.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { type Context, defaultTextMapGetter, ROOT_CONTEXT, type Tracer, trace } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-node';
import { BulwarkError, bulwarkVersion, fsError } from '../core/index.js';
import type { GatewayConfig } from './config.js';

type TracesConfig = GatewayConfig['telemetry']['traces'];

/** The gateway's tracer, and how to flush and stop what exports it. */
export interface GatewayTracing {
  tracer: Tracer;
  /**
   * The caller's trace from its W3C `traceparent` / `tracestate` headers (undefined without them), so
   * the gateway's span joins it. The parent's sampled flag decides nothing with the gateway's own
   * provider (it samples every request): a caller cannot keep its requests out of the traces.
   */
  parentOf(headers: IncomingHttpHeaders): Context | undefined;
  /** Exports the spans still buffered, then stops (a no-op without `otlp`). */
  shutdown(): Promise<void>;
}

const w3c = new W3CTraceContextPropagator();

function parentOf(headers: IncomingHttpHeaders): Context | undefined {
  if (headers.traceparent === undefined) return undefined;
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
  constructor(
    private readonly inner: SpanExporter,
    private readonly dropped: (spans: number, error: Error | undefined) => void,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.dropped(spans.length, result.error);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * The gateway's tracing for `traces` (enabled), started; `dropped` hears of spans an export lost.
 */
export async function startTracing(
  traces: TracesConfig,
  dropped: (spans: number, error: Error | undefined) => void = () => {},
): Promise<GatewayTracing> {
  const otlp = traces.otlp;
  if (otlp === undefined)
    return {
      tracer: trace.getTracer('bulwark-gateway', bulwarkVersion()),
      parentOf,
      shutdown: async () => {},
    };
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
  const ca = otlp.caFile === undefined ? undefined : await read('caFile', otlp.caFile);
  const exporter = new OTLPTraceExporter({
    url: otlp.endpoint,
    headers,
    timeoutMillis: otlp.timeoutMs,
    ...(ca === undefined ? {} : { httpAgentOptions: { ca, keepAlive: true } }),
  });
  const provider = new NodeTracerProvider({
    sampler: new AlwaysOnSampler(),
    resource: resourceFromAttributes({
      'service.name': traces.serviceName,
      'service.version': bulwarkVersion(),
    }),
    spanProcessors: [
      new BatchSpanProcessor(new ReportingExporter(exporter, dropped), {
        exportTimeoutMillis: otlp.timeoutMs,
      }),
    ],
  });
  return {
    tracer: provider.getTracer('bulwark-gateway', bulwarkVersion()),
    parentOf,
    shutdown: () => provider.shutdown(),
  };
}
