/**
 * OpenTelemetry: with `telemetry.traces.enabled`, each inference is one span with an event per pipeline
 * stage and the result code, exported through the provider the embedding process registers (here the
 * Node SDK 2 with an in-memory exporter). No identity, token or address goes into span attributes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import { STAGES } from '../../src/gateway/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway } from './gateway-fixtures.js';

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
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token(),
    });
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
