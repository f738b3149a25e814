/**
 * OpenTelemetry: with `telemetry.traces.enabled`, each inference is one span with an event per pipeline
 * stage and the result code, exported through the provider the embedding process registers (here the
 * Node SDK 2 with an in-memory exporter). No identity, token or address goes into span attributes.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { isBulwarkError } from '../../src/core/index.js';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import { gatewayConfig, STAGES } from '../../src/gateway/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { parseHeaderLines } from '../../src/gateway/telemetry.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

/** A client of `gw` with the fixture's CA and a valid access token. */
async function tokenClient(f: Fixture, gw: Gateway): Promise<GatewayClient> {
  return new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token: await f.token() });
}

describe('gateway traces (OpenTelemetry)', () => {
  let f: Fixture;
  let gw: Gateway;
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  before(async () => {
    provider.register();
    f = await fixture();
    gw = await startGateway(
      f.config({ telemetry: { logLevel: 'silent', traces: { enabled: true, serviceName: 'gw-test' } } }),
    );
  });
  after(async () => {
    await gw?.close();
    await provider.shutdown();
    trace.disable();
  });

  it('records one span per request with every stage as an event, and the code of a refusal', async () => {
    const c = await tokenClient(f, gw);
    await c.inferRows('fraud', [f.rows[7] as never]);
    const anon = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
    await anon
      .inferRows('fraud', [f.rows[8] as never])
      .catch((e: GatewayError) => assert.equal(e.code, 'ERR_AUTH_MISSING'));
    c.close();
    anon.close();
    const spans = exporter.getFinishedSpans().filter((s) => s.name === 'gateway.infer');
    assert.equal(spans.length, 2);
    const [ok, denied] = spans as [(typeof spans)[number], (typeof spans)[number]];
    assert.equal(ok.attributes['bulwark.code'], 'OK');
    // Every stage once, in the documented order: the example policies read riskScore and queryCount,
    // so Cedar's one evaluation comes after the detectors.
    assert.equal(gw.pipeline.options.policyAfterDetect, true);
    const late: string[] = STAGES.filter((s) => s !== 'authorize');
    late.splice(late.indexOf('detect') + 1, 0, 'authorize');
    assert.deepEqual(
      ok.events.map((e) => e.name),
      late,
    );
    assert.equal(denied.attributes['bulwark.code'], 'ERR_AUTH_MISSING');
    assert.equal(denied.attributes['bulwark.stage'], 'authenticate');
    const text = JSON.stringify(spans.map((s) => s.attributes));
    assert.doesNotMatch(text, /issuer\.bulwark|client-acme|127\.0\.0\.1|Bearer/);
  });
});

/** A collector stand-in: an HTTP server that keeps what the real OTLP/HTTP exporter posts. */
async function collector(): Promise<{
  url: string;
  posts: { path: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}> {
  const posts: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    posts,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

interface OtlpSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string } }[];
  events?: { name: string }[];
}

describe('gateway traces exported over OTLP/HTTP by the gateway itself (bulwark serve)', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });

  it('exports each request as a span to the collector, with the headers file, and flushes on close', async () => {
    const col = await collector();
    const headersFile = join(f.dir, 'otlp-headers');
    writeFileSync(headersFile, '# collector credentials\nX-Api-Key: k-123-secret\n');
    const gw = await startGateway(
      f.config({
        telemetry: {
          logLevel: 'silent',
          traces: {
            enabled: true,
            serviceName: 'gw-otlp',
            otlp: { endpoint: col.url, headersFile, timeoutMs: 5000 },
          },
        },
      }),
    );
    const c = await tokenClient(f, gw);
    await c.inferRows('fraud', [f.rows[3] as never]);
    // A caller in a trace of its own, with the sampled flag off: the span joins that trace and is
    // recorded anyway (a caller cannot keep its requests out of the traces).
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const joined = await c.request(
      'POST',
      '/v2/models/fraud/infer',
      JSON.stringify(v2Body([f.rows[4] as never])),
      {
        traceparent: `00-${traceId}-${callerSpan}-00`,
      },
    );
    assert.equal(joined.status, 200);
    c.close();
    // The gateway's provider is its own: the global API still has no recording provider.
    const probe = trace.getTracer('probe').startSpan('probe');
    assert.equal(probe.isRecording(), false);
    probe.end();
    await gw.close();
    try {
      assert.ok(col.posts.length >= 1, 'spans were exported by close()');
      const spans: OtlpSpan[] = [];
      for (const p of col.posts) {
        assert.equal(p.path, '/v1/traces');
        assert.match(String(p.headers['content-type']), /application\/json/);
        assert.equal(p.headers['x-api-key'], 'k-123-secret');
        const body = JSON.parse(p.body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[];
        };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name');
          assert.equal(service?.value.stringValue, 'gw-otlp');
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
      }
      const infer = spans.filter((s) => s.name === 'gateway.infer');
      assert.equal(infer.length, 2);
      const child = infer.filter((s) => s.traceId === traceId);
      assert.equal(child.length, 1, 'the span with a traceparent joins the caller trace');
      assert.equal(child[0]?.parentSpanId, callerSpan);
      assert.ok(
        infer.some((s) => s.traceId !== traceId && !s.parentSpanId),
        'the other is a root span',
      );
      for (const s of infer) {
        assert.equal(s.attributes.find((a) => a.key === 'bulwark.code')?.value.stringValue, 'OK');
        assert.ok((s.events ?? []).some((e) => e.name === 'audit'));
      }
      const all = col.posts.map((p) => p.body).join('\n');
      assert.doesNotMatch(all, /Bearer|client-acme|k-123-secret/);
    } finally {
      await col.close();
    }
  });

  it('a collector that is down loses spans (counted), not requests', async () => {
    const col = await collector();
    const url = col.url;
    await col.close();
    const gw = await startGateway(
      f.config({
        telemetry: {
          logLevel: 'silent',
          traces: { enabled: true, serviceName: 'gw-down', otlp: { endpoint: url, timeoutMs: 500 } },
        },
      }),
    );
    const c = await tokenClient(f, gw);
    const r = await c.inferRows('fraud', [f.rows[5] as never]);
    assert.equal(r.outputs.length > 0, true);
    c.close();
    await gw.close();
    // The span the flush on close could not deliver is counted, not silently lost.
    const dropped = await gw.metrics.registry.getSingleMetric('gateway_trace_spans_dropped_total')?.get();
    assert.ok((dropped?.values[0]?.value ?? 0) >= 1, JSON.stringify(dropped?.values));
  });

  it('refuses a bad otlp section, naming the key; a headers file error names the line, not the value', async () => {
    const base = f.config();
    const bad = (traces: unknown) => () =>
      gatewayConfig({ ...base, telemetry: { logLevel: 'silent', traces } }, 'bulwark.yaml');
    assert.throws(
      bad({ enabled: false, otlp: { endpoint: 'http://127.0.0.1:4318/v1/traces' } }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') && /telemetry\.traces\.otlp: .*enabled/.test(e.message),
    );
    assert.throws(
      bad({ enabled: true, otlp: { endpoint: 'ftp://collector/v1/traces' } }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') && /telemetry\.traces\.otlp\.endpoint/.test(e.message),
    );
    assert.throws(
      bad({ enabled: true, otlp: { endpoint: 'http://c:4318/v1/traces', timeoutMs: 5 } }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /otlp\.timeoutMs/.test(e.message),
    );
    assert.throws(
      () => parseHeaderLines('X-Api-Key: fine\nthis-line-has-no-colon s3cret\n', 'h.txt'),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /h\.txt line 2/.test(e.message) &&
        !/s3cret/.test(e.message),
    );
    assert.deepEqual(parseHeaderLines('\n# c\nX-Api-Key:  v1 \nAuthorization: Basic abc\n', 'h'), {
      'x-api-key': 'v1',
      authorization: 'Basic abc',
    });
    const missing = gatewayConfig({
      ...base,
      telemetry: {
        logLevel: 'silent',
        traces: {
          enabled: true,
          otlp: { endpoint: 'http://127.0.0.1:1/v1/traces', headersFile: join(f.dir, 'nope') },
        },
      },
    });
    await assert.rejects(
      startGateway(missing),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') && /otlp\.headersFile: cannot read/.test(e.message),
    );
  });
});
