/**
 * Whose fault: once a request has passed the checks of the request itself, a failure of the gateway's
 * own model, preprocessing or detectors is a server fault. It is answered 500 with a fixed body
 * (`ERR_ONNX_RUNTIME` when ONNX Runtime failed, `ERR_INTERNAL` otherwise), never as the caller's 4xx and
 * never with the internal message; the error itself is logged, the answer counted and audited. The
 * models here are real: an ONNX graph that ONNX Runtime loads but cannot run, and a saved preprocessing
 * that refuses a category the schema accepts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { AuditLog } from '../../src/audit/index.js';
import { BulwarkError } from '../../src/core/index.js';
import { type Row, saveSchema } from '../../src/data/index.js';
import { GatewayClient, type RawResponse } from '../../src/gateway/client.js';
import { afterValidation, errorReply, httpStatus } from '../../src/gateway/errors.js';
import type { Gateway } from '../../src/gateway/server.js';
import { DataType, decodeModel, encodeModel } from '../../src/ml/onnx/proto.js';
import { type Fixture, fixture, SCHEMA, startGateway, v2Body } from './gateway-fixtures.js';

/**
 * The fixture's model with a Gather in front of it that picks feature 7 of 5: ONNX Runtime loads it
 * (shape inference sees [batch, 5] in and out; index values are only checked when it runs) and fails
 * every run, as a model exported with a wrong feature map would.
 */
function failingAtRunTime(onnx: Uint8Array): Uint8Array {
  const m = decodeModel(onnx);
  const g = m.graph as NonNullable<typeof m.graph>;
  const input = (g.input[0] as { name: string }).name;
  for (const n of g.node) n.input = n.input.map((i) => (i === input ? 'picked' : i));
  g.initializer.push({
    name: 'picked_indices',
    dims: [5],
    dataType: DataType.INT64,
    int64Data: [0, 1, 2, 3, 7],
  } as never);
  g.node.unshift({
    input: [input, 'picked_indices'],
    output: ['picked'],
    name: 'pick',
    opType: 'Gather',
    domain: '',
    attribute: [{ name: 'axis', type: 2, i: 1 }],
  } as never);
  return encodeModel(m);
}

/** The fixture's model with its one-hot step refusing unknown categories (`handleUnknown: error`). */
function strictOneHot(onnx: Uint8Array): Uint8Array {
  const m = decodeModel(onnx);
  const p = m.metadataProps.find((x) => x.key === 'bulwark.pipeline') as { value: string };
  const state = JSON.parse(p.value) as { steps: { kind: string; handleUnknown?: string }[] };
  const onehot = state.steps.find((s) => s.kind === 'onehot');
  assert.ok(onehot, 'the fixture model has a one-hot step');
  onehot.handleUnknown = 'error';
  p.value = JSON.stringify(state);
  return encodeModel(m);
}

/** Log lines written by the gateway (pino JSON). */
class Lines extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l) this.lines.push(JSON.parse(l));
    done();
  }
}

/** Words of the internal failures that must not reach a client. */
const INTERNAL =
  /Gather|indices|idx=|picked|onehot|fit\(\)|ONNX Runtime failed|kind=|\bat [\w.<>]+ \(|\.ts:\d|\/tmp\//;

function assertServerFault(r: RawResponse, code: 'ERR_INTERNAL' | 'ERR_ONNX_RUNTIME'): void {
  assert.equal(r.status, 500, r.body);
  assert.equal(r.headers['content-type'], 'application/json');
  const body = JSON.parse(r.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['code', 'error']);
  assert.equal(body['code'], code);
  assert.doesNotMatch(r.body, INTERNAL);
  assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
}

describe('server faults after validation answer 500, not the caller’s 4xx', () => {
  let f: Fixture;
  const opened: Gateway[] = [];
  const clients: GatewayClient[] = [];

  before(async () => {
    f = await fixture();
    const onnx = readFileSync(join(f.dir, 'fraud.onnx'));
    writeFileSync(join(f.dir, 'fraud-gather.onnx'), failingAtRunTime(onnx));
    writeFileSync(join(f.dir, 'fraud-strict-onehot.onnx'), strictOneHot(onnx));
    // The operator added a category to the schema and kept the model: the schema accepts "D".
    const kind = { ...(SCHEMA.fields[2] as object), categories: ['A', 'B', 'C', 'D'] };
    await saveSchema(join(f.dir, 'schema-d.yaml'), {
      ...SCHEMA,
      fields: SCHEMA.fields.map((x) => (x.name === 'kind' ? (kind as typeof x) : x)),
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const g of opened) await g.close().catch(() => {});
  });

  async function gateway(onnx: string, schema = 'schema.yaml'): Promise<{ gw: Gateway; log: Lines }> {
    const base = f.config();
    const m = base.models[0] as (typeof base.models)[number];
    const log = new Lines();
    const gw = await startGateway(
      { ...base, models: [{ ...m, onnx: join(f.dir, onnx), schema: join(f.dir, schema) }] },
      { logger: pino({ level: 'debug' }, log) },
    );
    opened.push(gw);
    return { gw, log };
  }
  async function client(gw: Gateway): Promise<GatewayClient> {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: `c-${randomBytes(4).toString('hex')}` }),
    });
    clients.push(c);
    return c;
  }
  const infer = (c: GatewayClient, rows: Row[]) =>
    c.request('POST', '/v2/models/fraud/infer', JSON.stringify(v2Body(rows)));

  it('ONNX Runtime failing at inference: 500 ERR_ONNX_RUNTIME without its message; logged, counted, audited', async () => {
    const { gw, log } = await gateway('fraud-gather.onnx');
    const c = await client(gw);
    const r = await infer(c, [f.rows[0] as Row]);
    assertServerFault(r, 'ERR_ONNX_RUNTIME');
    assert.equal(
      (JSON.parse(r.body) as { error: string }).error,
      'the model failed to run on this request (ONNX Runtime error)',
    );

    // The server's log has what the client does not: the stage, the request id and ONNX Runtime's error.
    const line = log.lines.find((l) => l['msg'] === 'request failed');
    assert.ok(line, 'the failure is logged');
    assert.equal(line['level'], 50);
    assert.equal(line['stage'], 'infer');
    assert.equal(line['code'], 'ERR_ONNX_RUNTIME');
    assert.equal(line['requestId'], r.headers['x-request-id']);
    assert.match(JSON.stringify(line['err']), /ONNX Runtime failed to run the model/);

    const metrics = await gw.pipeline.options.metrics.registry.metrics();
    assert.match(metrics, /gateway_requests_total\{model="fraud",code="ERR_ONNX_RUNTIME"\} 1\b/);
    assert.match(metrics, /gateway_denials_total\{stage="infer",reason="ERR_ONNX_RUNTIME"\} 1\b/);

    await gw.audit?.flush();
    const audit = await AuditLog.open({ store: { kind: 'sqlite', path: gw.config.audit.store } });
    const denied = (await audit.tail(50)).find(
      (e) =>
        e.type === 'request.denied' &&
        (e.data as { requestId: string }).requestId === r.headers['x-request-id'],
    );
    await audit.close();
    assert.deepEqual(
      [(denied?.data as { stage?: string })?.stage, (denied?.data as { code?: string })?.code],
      ['infer', 'ERR_ONNX_RUNTIME'],
    );

    // The caller's own faults on the same gateway are still 4xx: the model never runs for them.
    const bad = await infer(c, [{ amount: -5, age: 40, kind: 'B' }]);
    assert.equal(bad.status, 400, bad.body);
    assert.equal((JSON.parse(bad.body) as { code: string }).code, 'ERR_INPUT_INVALID');
    const malformed = await c.request('POST', '/v2/models/fraud/infer', '{"inputs": [');
    assert.equal(malformed.status, 400, malformed.body);
  });

  it('preprocessing failing on a row the schema accepts: 500 ERR_INTERNAL (was 400 ERR_DATA_VALUE)', async () => {
    const { gw, log } = await gateway('fraud-strict-onehot.onnx', 'schema-d.yaml');
    const c = await client(gw);
    const ok = await infer(c, [{ amount: 120.5, age: 39, kind: 'B' }]);
    assert.equal(ok.status, 200, ok.body);
    const r = await infer(c, [{ amount: 120.5, age: 39, kind: 'D' }]);
    assertServerFault(r, 'ERR_INTERNAL');
    assert.equal(r.body, '{"error":"internal error","code":"ERR_INTERNAL"}');
    const line = log.lines.find((l) => l['msg'] === 'request failed');
    assert.ok(line, 'the failure is logged');
    assert.equal(line['code'], 'ERR_INTERNAL');
    assert.match(JSON.stringify(line['err']), /preprocessing failed/);
    assert.match(JSON.stringify(line['err']), /ERR_DATA_VALUE|a category not seen in fit/);
    const metrics = await gw.pipeline.options.metrics.registry.metrics();
    assert.match(metrics, /gateway_requests_total\{model="fraud",code="ERR_INTERNAL"\} 1\b/);
    assert.doesNotMatch(metrics, /ERR_DATA_VALUE/);
  });
});

describe('status mapping (errors.ts)', () => {
  it('gives 4xx only to client refusals: a code of the input or usage class is not the caller’s by itself', () => {
    assert.equal(httpStatus('ERR_GATEWAY_REQUEST_INVALID'), 400);
    assert.equal(httpStatus('ERR_INPUT_INVALID'), 400);
    assert.equal(httpStatus('ERR_SESSION_MALFORMED'), 400);
    assert.equal(httpStatus('ERR_SESSION_REPLAY'), 403);
    assert.equal(httpStatus('ERR_AUTH_TOKEN_EXPIRED'), 401);
    assert.equal(httpStatus('ERR_DETECTOR_STORE_UNAVAILABLE'), 503);
    for (const code of [
      'ERR_DATA_VALUE',
      'ERR_SHAPE_MISMATCH',
      'ERR_INVALID_ARGUMENT',
      'ERR_PREPROCESS_STATE',
      'ERR_ATTEST_MALFORMED',
      'ERR_INTERNAL',
      'ERR_ONNX_RUNTIME',
    ] as const)
      assert.equal(httpStatus(code), 500, code);
  });

  it('answers a server fault with a fixed body: the code (ERR_INTERNAL for any but ONNX Runtime), never the message', () => {
    const cases: [unknown, number, string][] = [
      [new TypeError("Cannot read properties of undefined (reading 'data')"), 500, 'ERR_INTERNAL'],
      [
        new BulwarkError('ERR_DATA_VALUE', 'onehot: row 1 column "kind": a category not seen'),
        500,
        'ERR_INTERNAL',
      ],
      [
        new BulwarkError('ERR_ONNX_RUNTIME', 'ONNX Runtime failed to run the model: Gather idx=7'),
        500,
        'ERR_ONNX_RUNTIME',
      ],
      [
        new BulwarkError(
          'ERR_AUDIT_UNAVAILABLE',
          'audit store /var/lib/bulwark/audit.db: cannot append (SQLITE_FULL)',
        ),
        503,
        'ERR_AUDIT_UNAVAILABLE',
      ],
      [
        new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', 'NSM helper /opt/nsm-helper failed: spawn ENOENT'),
        503,
        'ERR_ENCLAVE_UNAVAILABLE',
      ],
    ];
    for (const [e, status, code] of cases) {
      const r = errorReply(e);
      assert.equal(r.status, status, String(e));
      assert.equal(r.code, code);
      const body = JSON.parse(r.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error']);
      assert.equal(body['code'], code);
      assert.doesNotMatch(r.body, /undefined|onehot|Gather|\/var\/|\/opt\/|SQLITE|ENOENT/, r.body);
    }
    // A client refusal keeps its message, written for the client.
    const refusal = errorReply(new BulwarkError('ERR_INPUT_INVALID', 'row 1 field amount: below 0'));
    assert.equal(refusal.status, 400);
    assert.match(refusal.body, /below 0/);
  });

  it('after validation keeps only the later stages’ refusals and dependencies down; anything else is ERR_INTERNAL', () => {
    const kept = [
      new BulwarkError('ERR_GATEWAY_DETECTED', 'request flagged by the prada detector'),
      new BulwarkError('ERR_POLICY_DENIED', 'predict not permitted'),
      new BulwarkError('ERR_DETECTOR_STORE_UNAVAILABLE', 'store down'),
      new BulwarkError('ERR_AUDIT_UNAVAILABLE', 'audit down'),
      new BulwarkError('ERR_ONNX_RUNTIME', 'failed'),
    ];
    for (const e of kept) assert.equal(afterValidation(e), e);
    for (const e of [
      new BulwarkError('ERR_INPUT_INVALID', 'x: row 0 has NaN'),
      new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', 'reused by a bug'),
      new BulwarkError('ERR_INVALID_ARGUMENT', 'client: expected a non-empty client id'),
      new RangeError('offset out of bounds'),
    ]) {
      const w = afterValidation(e);
      assert.equal(w.code, 'ERR_INTERNAL');
      assert.equal(w.cause, e, 'the original error stays as the cause, for the log');
      assert.equal(errorReply(w).status, 500);
    }
  });
});
