/**
 * OpenTelemetry: with `telemetry.traces.enabled`, each inference is one span with an event per pipeline
 * stage and the result code, exported through the provider the embedding process registers (here the
 * Node SDK 2 with an in-memory exporter). No identity, token or address goes into span attributes.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { pino } from 'pino';
import protobuf from 'protobufjs';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import { gatewayConfig, STAGES } from '../../src/gateway/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { parseHeaderLines, requestSampler } from '../../src/gateway/telemetry.js';
import { makeLeaf } from './auth-fixtures.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

/** A client of `gw` with the fixture's CA and a valid access token. */
async function tokenClient(f: Fixture, gw: Gateway): Promise<GatewayClient> {
  return new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token: await f.token() });
}

/** Spans `gw` counted as lost in `gateway_trace_spans_dropped_total`. */
async function droppedSpans(gw: Gateway): Promise<number> {
  const m = await gw.metrics.registry.getSingleMetric('gateway_trace_spans_dropped_total')?.get();
  return m?.values[0]?.value ?? 0;
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
    const answered = await c.request(
      'POST',
      '/v2/models/fraud/infer',
      JSON.stringify(v2Body([f.rows[7] as never])),
    );
    assert.equal(answered.status, 200);
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
    // The span carries the request id of the reply, which the logs and the audit entry carry too
    // (test/gateway/pipeline.test.ts finds the audit entry by it).
    assert.match(String(ok.attributes['bulwark.request_id']), /^[0-9a-f-]{36}$/);
    assert.equal(ok.attributes['bulwark.request_id'], answered.headers['x-request-id']);
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

interface Post {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  body: string;
}

/** A collector stand-in: an HTTP server that keeps what the real OTLP/HTTP exporter posts, answering after `holdMs`. */
async function collector(holdMs = 0): Promise<{
  url: string;
  posts: Post[];
  close(): Promise<void>;
}> {
  const posts: Post[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sent = Buffer.concat(chunks);
      const raw = req.headers['content-encoding'] === 'gzip' ? gunzipSync(sent) : sent;
      posts.push({ path: req.url ?? '', headers: req.headers, raw, body: raw.toString('utf8') });
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), holdMs);
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

/**
 * Starts a gateway that exports to `otlp` and sends two requests: one on its own, one from a caller
 * in trace `traceId` (span `callerSpan`, W3C flags `flags`). The client is closed, the gateway is not.
 */
async function twoRequests(
  f: Fixture,
  serviceName: string,
  otlp: Record<string, unknown>,
  caller: { traceId: string; callerSpan: string; flags: '00' | '01' },
): Promise<Gateway> {
  const gw = await startGateway(
    f.config({ telemetry: { logLevel: 'silent', traces: { enabled: true, serviceName, otlp } } }),
  );
  const c = await tokenClient(f, gw);
  await c.inferRows('fraud', [f.rows[3] as never]);
  const joined = await c.request(
    'POST',
    '/v2/models/fraud/infer',
    JSON.stringify(v2Body([f.rows[4] as never])),
    {
      traceparent: `00-${caller.traceId}-${caller.callerSpan}-${caller.flags}`,
    },
  );
  assert.equal(joined.status, 200);
  c.close();
  return gw;
}

interface OtlpSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string } }[];
  events?: { name: string }[];
}

/**
 * The `gateway.infer` spans in OTLP/JSON exports; with `service`, each export's resource must carry
 * that service name.
 */
function jsonSpans(posts: Post[], service?: string): OtlpSpan[] {
  const spans: OtlpSpan[] = [];
  for (const p of posts) {
    const body = JSON.parse(p.body) as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: { spans: OtlpSpan[] }[];
      }[];
    };
    for (const rs of body.resourceSpans) {
      if (service !== undefined)
        assert.equal(
          rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue,
          service,
        );
      for (const ss of rs.scopeSpans) spans.push(...ss.spans.filter((s) => s.name === 'gateway.infer'));
    }
  }
  return spans;
}

interface ProtoKeyValue {
  key: string;
  value: { stringValue?: string };
}
interface ProtoSpan {
  traceId: string;
  parentSpanId: string;
  name: string;
  attributes: ProtoKeyValue[];
  events: { name: string }[];
}

/**
 * The part of the OTLP trace schema the test reads, field numbers as in opentelemetry-proto
 * (collector/trace/v1/trace_service.proto, trace/v1/trace.proto, common/v1/common.proto); the rest of
 * each message is skipped as unknown fields.
 */
const OTLP_REQUEST = protobuf
  .parse(`
  syntax = "proto3";
  message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
  message KeyValue { string key = 1; AnyValue value = 2; }
  message Resource { repeated KeyValue attributes = 1; }
  message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
  message Span {
    bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
    repeated KeyValue attributes = 9; repeated Event events = 11;
  }
  message ScopeSpans { repeated Span spans = 2; }
  message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
  message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`)
  .root.lookupType('ExportTraceServiceRequest');

describe('gateway traces exported over OTLP/HTTP by the gateway itself (bulwark serve)', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });

  it('exports each request as a span to the collector, with the headers file, and flushes on close', async () => {
    const col = await collector();
    const headersFile = join(f.dir, 'otlp-headers');
    writeFileSync(headersFile, '# collector credentials\nX-Api-Key: k-123-secret\n');
    // The second request comes from a caller in a trace of its own, with the sampled flag off: the span
    // joins that trace and is recorded anyway (a caller cannot keep its requests out of the traces).
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const gw = await twoRequests(
      f,
      'gw-otlp',
      { endpoint: col.url, headersFile, timeoutMs: 5000 },
      { traceId, callerSpan, flags: '00' },
    );
    // The gateway's provider is its own: the global API still has no recording provider.
    const probe = trace.getTracer('probe').startSpan('probe');
    assert.equal(probe.isRecording(), false);
    probe.end();
    await gw.close();
    try {
      assert.ok(col.posts.length >= 1, 'spans were exported by close()');
      for (const p of col.posts) {
        assert.equal(p.path, '/v1/traces');
        assert.match(String(p.headers['content-type']), /application\/json/);
        assert.equal(p.headers['x-api-key'], 'k-123-secret');
      }
      const infer = jsonSpans(col.posts, 'gw-otlp');
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

  it('exports protobuf (OTLP/HTTP, http/protobuf), gzipped, that decodes with the OTLP schema', async () => {
    const col = await collector();
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    const gw = await twoRequests(
      f,
      'gw-proto',
      { endpoint: col.url, protocol: 'http/protobuf', compression: 'gzip' },
      { traceId, callerSpan, flags: '01' },
    );
    // flushTraces exports what is buffered without stopping (the batch would otherwise wait 5 s).
    await gw.flushTraces();
    assert.ok(col.posts.length >= 1, 'flushTraces exported the spans');
    await gw.close();
    try {
      const spans: ProtoSpan[] = [];
      for (const p of col.posts) {
        assert.equal(p.headers['content-type'], 'application/x-protobuf');
        assert.equal(p.headers['content-encoding'], 'gzip');
        const req = OTLP_REQUEST.toObject(OTLP_REQUEST.decode(p.raw), { bytes: String, defaults: true }) as {
          resourceSpans: {
            resource: { attributes: ProtoKeyValue[] };
            scopeSpans: { spans: ProtoSpan[] }[];
          }[];
        };
        for (const rs of req.resourceSpans) {
          assert.equal(
            rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue,
            'gw-proto',
          );
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
      }
      const infer = spans.filter((s) => s.name === 'gateway.infer');
      assert.equal(infer.length, 2);
      const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
      const child = infer.find((s) => hex(s.traceId) === traceId);
      assert.equal(
        child && hex(child.parentSpanId),
        callerSpan,
        'the span with a traceparent joins the caller trace',
      );
      for (const s of infer) {
        assert.equal(s.attributes.find((a) => a.key === 'bulwark.code')?.value.stringValue, 'OK');
        assert.deepEqual(
          s.events.map((e) => e.name).filter((n) => n === 'infer' || n === 'audit'),
          ['infer', 'audit'],
        );
      }
    } finally {
      await col.close();
    }
  });

  it("samples requests at sampleRatio by its own draw, whatever the caller's sampled flag says", async () => {
    // The draw: deterministic for a seed, close to the ratio, and ratio 1 draws nothing.
    const rng = new SeededRng(7);
    const quarter = requestSampler(0.25, rng);
    let n = 0;
    for (let i = 0; i < 10_000; i++) if (quarter()) n++;
    assert.ok(n > 2_300 && n < 2_700, `${n} of 10,000 at 0.25`);
    const all = requestSampler(1, {
      bernoulli: () => assert.fail('ratio 1 draws nothing'),
    } as unknown as SeededRng);
    assert.equal(all(), true);

    // Through the gateway (the CSPRNG draws): 40 requests that ask to be traced (sampled=1) at 0.5 are
    // neither all traced nor all left out (each outcome has probability 2^-40).
    const col = await collector();
    // Detectors in monitor mode: 40 queries from one client in a row are what the stateful detector is for.
    const gw = await startGateway(
      f.config({
        detectors: { mode: 'monitor', stateTtlSeconds: 86_400 },
        telemetry: {
          logLevel: 'silent',
          traces: { enabled: true, serviceName: 'gw-half', sampleRatio: 0.5, otlp: { endpoint: col.url } },
        },
      }),
    );
    const c = await tokenClient(f, gw);
    for (let i = 0; i < 40; i++) {
      const body = JSON.stringify(v2Body([f.rows[10 + i] as never]));
      const r = await c.request('POST', '/v2/models/fraud/infer', body, {
        traceparent: `00-${(i + 1).toString(16).padStart(32, '0')}-00f067aa0ba902b7-01`,
      });
      assert.equal(r.status, 200);
    }
    c.close();
    await gw.close();
    await col.close();
    const spans = jsonSpans(col.posts).length;
    assert.ok(spans > 0 && spans < 40, `${spans} of 40 traced at 0.5`);
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
    assert.ok((await droppedSpans(gw)) >= 1);
  });

  it('a full export queue drops spans (counted) while a slow collector holds an export', async () => {
    const col = await collector(5000);
    const logs: string[] = [];
    const gw = await startGateway(
      f.config({
        detectors: { mode: 'monitor', stateTtlSeconds: 86_400 },
        telemetry: {
          logLevel: 'silent',
          traces: {
            enabled: true,
            serviceName: 'gw-slow',
            otlp: { endpoint: col.url, timeoutMs: 10_000, maxQueueSize: 2 },
          },
        },
      }),
      { logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) },
    );
    const c = await tokenClient(f, gw);
    // The first two spans fill a batch whose export the collector holds for 5 s; two more wait in the
    // queue; the rest of the 10 requests (answered well within the 5 s) find it full.
    for (let i = 0; i < 10; i++) await c.inferRows('fraud', [f.rows[60 + i] as never]);
    c.close();
    const dropped = await droppedSpans(gw);
    await gw.close();
    await col.close();
    assert.ok(dropped >= 1);
    assert.equal(jsonSpans(col.posts).length + dropped, 10, 'every span is exported or counted');
    // One warning for the burst (at most one per 10 s), not one per span.
    const warnings = logs.filter((l) => l.includes('trace spans dropped'));
    assert.equal(warnings.length, 1, logs.join(''));
    assert.match(warnings[0] as string, /queue is full/);
  });

  it('exports to a collector that requires mutual TLS with certFile and keyFile, rotated on reload; without them, spans are lost and counted', async () => {
    const seen: string[] = [];
    const server = https.createServer(
      { cert: f.server.pem, key: f.server.keyPem, ca: f.ca.pem, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        seen.push((req.socket as TLSSocket).getPeerX509Certificate()?.subjectAltName ?? '');
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
      },
    );
    await new Promise<void>((r) => server.listen(0, 'localhost', () => r()));
    const url = `https://localhost:${(server.address() as AddressInfo).port}/v1/traces`;
    writeFileSync(join(f.dir, 'otlp-client.pem'), f.client.pem);
    writeFileSync(join(f.dir, 'otlp-client.key'), f.client.keyPem);
    const run = async (otlp: Record<string, unknown>) => {
      const gw = await startGateway(
        f.config({
          telemetry: { logLevel: 'silent', traces: { enabled: true, serviceName: 'gw-mtls', otlp } },
        }),
      );
      const c = await tokenClient(f, gw);
      await c.inferRows('fraud', [f.rows[2] as never]);
      c.close();
      await gw.close();
      return droppedSpans(gw);
    };
    try {
      const caFile = join(f.dir, 'ca.pem');
      assert.equal(
        await run({
          endpoint: url,
          caFile,
          certFile: join(f.dir, 'otlp-client.pem'),
          keyFile: join(f.dir, 'otlp-client.key'),
          timeoutMs: 5000,
        }),
        0,
      );
      assert.equal(seen.length, 1);
      assert.match(seen[0] as string, /URI:spiffe:\/\//, 'the collector saw the client certificate');
      // The collector refuses a handshake without a client certificate: the span is lost and counted.
      assert.ok((await run({ endpoint: url, caFile, timeoutMs: 2000 })) >= 1);
      assert.equal(seen.length, 1);

      // Rotation: a new client certificate on disk and a reload (SIGHUP) make the next export present
      // it; a rotation whose key is not the certificate's leaves the previous exporter in service.
      const certFile = join(f.dir, 'otlp-rot.pem');
      const keyFile = join(f.dir, 'otlp-rot.key');
      writeFileSync(certFile, f.client.pem);
      writeFileSync(keyFile, f.client.keyPem);
      const gw = await startGateway(
        f.config({
          telemetry: {
            logLevel: 'silent',
            traces: { enabled: true, otlp: { endpoint: url, caFile, certFile, keyFile, timeoutMs: 5000 } },
          },
        }),
      );
      const c = await tokenClient(f, gw);
      const oneSpan = async (row: number) => {
        await c.inferRows('fraud', [f.rows[row] as never]);
        await gw.flushTraces();
      };
      await oneSpan(20);
      const rotated = await makeLeaf(f.ca, { uris: ['spiffe://bulwark.test/otel-rotated'] });
      writeFileSync(certFile, rotated.pem);
      writeFileSync(keyFile, rotated.keyPem);
      await gw.reload();
      await oneSpan(21);
      writeFileSync(keyFile, f.server.keyPem);
      await gw.reload();
      await oneSpan(22);
      c.close();
      await gw.close();
      assert.equal(await droppedSpans(gw), 0);
      assert.deepEqual(
        seen.slice(1).map((san) => /otel-rotated/.test(san)),
        [false, true, true],
        seen.join(' | '),
      );
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    const base = f.config();
    const otlpError = (otlp: Record<string, unknown>) => () =>
      gatewayConfig(
        { ...base, telemetry: { logLevel: 'silent', traces: { enabled: true, otlp } } },
        'bulwark.yaml',
      );
    assert.throws(
      otlpError({ endpoint: url, certFile: join(f.dir, 'otlp-client.pem') }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /otlp\.certFile: .*keyFile/.test(e.message),
    );
    assert.throws(
      otlpError({
        endpoint: 'http://localhost:4318/v1/traces',
        certFile: join(f.dir, 'otlp-client.pem'),
        keyFile: join(f.dir, 'otlp-client.key'),
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /otlp\.certFile: .*https/.test(e.message),
    );
    // A key that is not the certificate's: refused at start, naming the files and not their contents.
    writeFileSync(join(f.dir, 'otlp-other.key'), f.server.keyPem);
    await assert.rejects(
      startGateway(
        f.config({
          telemetry: {
            logLevel: 'silent',
            traces: {
              enabled: true,
              otlp: {
                endpoint: url,
                certFile: join(f.dir, 'otlp-client.pem'),
                keyFile: join(f.dir, 'otlp-other.key'),
              },
            },
          },
        }),
      ),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /otlp\.keyFile: .*otlp-other\.key is not the PEM private key of .*otlp-client\.pem/.test(e.message) &&
        !/PRIVATE KEY-----|MII/.test(e.message),
    );
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
      bad({ enabled: true, otlp: { endpoint: 'http://c:4318/v1/traces', protocol: 'grpc' } }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /otlp\.protocol/.test(e.message),
    );
    for (const sampleRatio of [0, 1.5, Number.NaN])
      assert.throws(
        bad({ enabled: true, sampleRatio }),
        (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /traces\.sampleRatio/.test(e.message),
        String(sampleRatio),
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
