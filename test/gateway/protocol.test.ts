/**
 * The Open Inference Protocol request checked exactly (parse stage): a value the declared datatype
 * cannot hold is a malformed request (400 ERR_GATEWAY_REQUEST_INVALID), never coerced or rounded into a
 * value the schema accepts; and the audit record of a prediction carries its decision whatever outputs
 * the caller asked for.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../../src/audit/index.js';
import { type ErrorCode, isBulwarkError, SeededRng } from '../../src/core/index.js';
import type { Schema } from '../../src/data/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import { modelConfigSchema } from '../../src/gateway/config.js';
import type { LoadedModel } from '../../src/gateway/model-source.js';
import { ServedModel } from '../../src/gateway/served-model.js';
import type { Gateway } from '../../src/gateway/server.js';
import { MahalanobisDetector } from '../../src/robust/index.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

/** A schema with an unbounded integer field and numeric-looking categories. */
const SCHEMA: Schema = {
  version: 1,
  name: 'protocol-test',
  label: 'y',
  fields: [
    { name: 'n', type: 'integer', nullable: false, sensitivity: 'internal' },
    { name: 'x', type: 'number', nullable: false, sensitivity: 'internal' },
    { name: 'c', type: 'category', nullable: false, categories: ['1', '2'], sensitivity: 'internal' },
    { name: 'y', type: 'category', nullable: false, categories: ['no', 'yes'], sensitivity: 'internal' },
  ],
};

/** parseRequest and validate read only the schema, fields and output settings of the loaded model. */
function served(): ServedModel {
  const loaded = {
    name: 'm',
    version: '1',
    schema: SCHEMA,
    inputFields: ['n', 'x', 'c'],
    classValues: ['no', 'yes'],
    features: 3,
  } as unknown as LoadedModel;
  return new ServedModel(
    loaded,
    modelConfigSchema.parse({ name: 'm', onnx: 'm.onnx', insecure: true, schema: 'm.yaml' }),
  );
}

function body(n: unknown, dt: string, c: unknown = '1', x: unknown = 1.5, xdt = 'FP64') {
  return {
    inputs: [
      { name: 'n', shape: [1], datatype: dt, data: [n] },
      { name: 'x', shape: [1], datatype: xdt, data: [x] },
      { name: 'c', shape: [1], datatype: 'BYTES', data: [c] },
    ],
  };
}

function refused(m: ServedModel, b: unknown, field: string): void {
  assert.throws(
    () => m.validate(m.parseRequest(b).rows),
    (e: unknown) =>
      isBulwarkError(e, 'ERR_GATEWAY_REQUEST_INVALID') &&
      e.details['reason'] === 'datatype' &&
      e.message.startsWith(`inputs.${field}.data:`),
    JSON.stringify(b),
  );
}

describe('Open Inference Protocol datatypes', () => {
  it('refuses integers beyond 2^53 (already rounded by JSON.parse) and outside the datatype range', () => {
    const m = served();
    // 9007199254740993 reads as 9007199254740992: the model must not answer for another value.
    refused(
      m,
      JSON.parse(
        '{"inputs":[{"name":"n","shape":[1],"datatype":"INT64","data":[9007199254740993]},{"name":"x","shape":[1],"datatype":"FP64","data":[1]},{"name":"c","shape":[1],"datatype":"BYTES","data":["1"]}]}',
      ),
      'n',
    );
    refused(m, body(2 ** 53, 'UINT64'), 'n');
    refused(m, body(-5, 'UINT8'), 'n');
    refused(m, body(300, 'UINT8'), 'n');
    refused(m, body(128, 'INT8'), 'n');
    refused(m, body(2 ** 31, 'INT32'), 'n');
    refused(m, body(1, 'INT64', '1', 1e6, 'FP16'), 'x');
    refused(m, body(1, 'INT64', '1', -1e39, 'FP32'), 'x');
    // In range, each is taken as sent.
    for (const [v, dt] of [
      [Number.MAX_SAFE_INTEGER, 'INT64'],
      [Number.MIN_SAFE_INTEGER, 'INT64'],
      [255, 'UINT8'],
      [-128, 'INT8'],
    ] as const)
      assert.deepEqual(m.validate(m.parseRequest(body(v, dt)).rows)[0]?.['n'], v);
    assert.equal(m.validate(m.parseRequest(body(1, 'INT64', '2', 65_504, 'FP16')).rows)[0]?.['x'], 65_504);
  });

  it('refuses a number in a BYTES tensor instead of turning it into a category', () => {
    const m = served();
    refused(m, body(1, 'INT64', 1), 'c');
    refused(m, body(1, 'INT64', true), 'c');
    assert.equal(m.validate(m.parseRequest(body(1, 'INT64', '1')).rows)[0]?.['c'], '1');
  });

  it('refuses an output requested twice', () => {
    const m = served();
    assert.throws(
      () => m.parseRequest({ ...body(1, 'INT64'), outputs: [{ name: 'label' }, { name: 'label' }] }),
      (e: unknown) => isBulwarkError(e, 'ERR_GATEWAY_REQUEST_INVALID') && e.details['reason'] === 'duplicate',
    );
  });
});

describe('audit record of a prediction whatever outputs were asked for', () => {
  let f: Fixture;
  let gw: Gateway;
  let c: GatewayClient;
  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
    c = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token: await f.token() });
  });
  after(async () => {
    c?.close();
    await gw?.close();
  });

  it('records the decision of a caller that asked for probabilities only', async () => {
    const rows = f.rows.slice(10, 13);
    const r = await c.request(
      'POST',
      '/v2/models/fraud/infer',
      JSON.stringify(v2Body(rows, { outputs: [{ name: 'probabilities' }] })),
    );
    assert.equal(r.status, 200, r.body);
    const out = JSON.parse(r.body) as { outputs: { name: string }[] };
    assert.deepEqual(
      out.outputs.map((o) => o.name),
      ['probabilities'],
    );
    const full = await c.request('POST', '/v2/models/fraud/infer', JSON.stringify(v2Body(rows)));
    assert.equal(full.status, 200, full.body);
    const labels = (JSON.parse(full.body) as { outputs: { name: string; data: string[] }[] }).outputs.find(
      (o) => o.name === 'label',
    )?.data;
    await gw.audit?.flush();
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: gw.config.audit.store } });
    const entry = (await log.tail(100)).find(
      (e) =>
        e.type === 'prediction' && (e.data as { requestId: string }).requestId === r.headers['x-request-id'],
    );
    // A refusal after authentication names the caller, also for a model name that is not served.
    const nf = await c.request('POST', '/v2/models/not-served/infer', JSON.stringify(v2Body(rows)));
    assert.equal(nf.status, 403, nf.body);
    await gw.audit?.flush();
    const denied = (await log.tail(100)).find(
      (e) =>
        e.type === 'request.denied' &&
        (e.data as { requestId: string }).requestId === nf.headers['x-request-id'],
    );
    await log.close();
    assert.match(
      String((denied?.data as { caller?: unknown } | undefined)?.caller),
      /^https:\/\/issuer\.bulwark\.test\|/,
    );
    assert.ok(entry, 'prediction recorded');
    assert.equal((entry.data as { decision: string }).decision, labels?.join(','));
  });
});

describe('query budget as documented', () => {
  for (const backend of ['memory', 'redis'] as const)
    it(`takes the rows of a request refused after the limit stage, not of one refused before it or by the budget (${backend})`, async () => {
      const f = await fixture();
      const redis = {
        url: 'redis://127.0.0.1:6379',
        keyPrefix: `bulwark-test:${process.pid}:${randomBytes(4).toString('hex')}:`,
      };
      const gw = await startGateway(
        f.config({
          limits: {
            backend,
            ...(backend === 'redis' ? { redis } : {}),
            requestsPerSecond: 100_000,
            queryBudget: { queries: 3 },
          },
        }),
      );
      const c = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token(),
      });
      const code = async (body: unknown) =>
        JSON.parse((await c.request('POST', '/v2/models/fraud/infer', JSON.stringify(body))).body).code ??
        'OK';
      try {
        const rows = f.rows.slice(20, 22);
        // Refused at parse, before the limit stage: costs nothing.
        assert.equal(await code({ ...v2Body(rows), x: 1 }), 'ERR_GATEWAY_REQUEST_INVALID');
        // Refused by the schema check, after it: its 2 rows are taken.
        assert.equal(await code(v2Body(rows.map((r) => ({ ...r, amount: 6000 })))), 'ERR_INPUT_INVALID');
        // 2 more rows do not fit in the 1 left; the refusal takes nothing, so 1 row still fits.
        assert.equal(await code(v2Body(rows)), 'ERR_GATEWAY_BUDGET_EXHAUSTED');
        assert.equal(await code(v2Body(rows.slice(0, 1))), 'OK');
        assert.equal(await code(v2Body(rows.slice(1, 2))), 'ERR_GATEWAY_BUDGET_EXHAUSTED');
      } finally {
        c.close();
        await gw.close();
      }
    });
});

/** Asserts the gateway refuses to start with `config`; one that starts anyway is closed, not leaked. */
async function refusedToStart(config: unknown, prefix: string, code?: ErrorCode): Promise<void> {
  let started: Gateway | undefined;
  try {
    await assert.rejects(
      startGateway(config as never).then((g) => {
        started = g;
        return g;
      }),
      (e: unknown) => isBulwarkError(e, code) && e.message.startsWith(prefix),
      prefix,
    );
  } finally {
    await started?.close();
  }
}

describe('detector files checked at start', () => {
  it('names the configuration key of a file that does not load', async () => {
    const f = await fixture();
    const base = f.config();
    const m = base.models[0] as (typeof base.models)[number];
    writeFileSync(join(f.dir, 'not-json.json'), '{oops');
    const prada = JSON.parse(readFileSync(join(f.dir, 'prada.json'), 'utf8'));
    writeFileSync(join(f.dir, 'prada-3.json'), JSON.stringify({ ...prada, classes: 3 }));
    const cases: [string, unknown][] = [
      [
        'models.fraud.detectors.stateful: saved stateful detector',
        {
          ...base,
          models: [{ ...m, detectors: { ...m.detectors, stateful: join(f.dir, 'mahalanobis.json') } }],
        },
      ],
      [
        'models.fraud.detectors.prada: ',
        { ...base, models: [{ ...m, detectors: { ...m.detectors, prada: join(f.dir, 'not-json.json') } }] },
      ],
      [
        'models.fraud.detectors.stateful: stateful detector not readable: no such file',
        { ...base, models: [{ ...m, detectors: { ...m.detectors, stateful: join(f.dir, 'none.json') } }] },
      ],
      [
        'models.fraud.detectors.prada: fitted for 3 classes, the model has 2',
        { ...base, models: [{ ...m, detectors: { ...m.detectors, prada: join(f.dir, 'prada-3.json') } }] },
      ],
      ['models.fraud: cannot read model', { ...base, models: [{ ...m, onnx: join(f.dir, 'none.onnx') }] }],
      [
        'audit.signer: signer key',
        { ...base, audit: { ...base.audit, signer: join(f.dir, 'not-json.json') } },
      ],
      ['audit.signer: cannot read', { ...base, audit: { ...base.audit, signer: join(f.dir, 'none.key') } }],
    ];
    for (const [prefix, config] of cases) await refusedToStart(config, prefix);
  });

  it('refuses a Mahalanobis detector of another width, naming the key (it answered every request 400)', async () => {
    const f = await fixture();
    const x = new Float32Array(40);
    const rng = new SeededRng(5);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal(0, 1);
    const det = new MahalanobisDetector();
    await det.fit(x, 20);
    await det.calibrate(x, 20, 0.1);
    const file = join(f.dir, 'mahalanobis-2.json');
    writeFileSync(file, JSON.stringify(det.toJSON()));
    const base = f.config();
    const m = base.models[0] as (typeof base.models)[number];
    await refusedToStart(
      { ...base, models: [{ ...m, detectors: { ...m.detectors, mahalanobis: file } }] },
      'models.fraud.detectors.mahalanobis: cannot score',
      'ERR_DETECTOR_STATE',
    );
  });
});
