/**
 * Fuzz: 10,000+ malformed requests against the running gateway over TLS (in-process, kept-alive
 * connections): broken JSON, huge bodies, deep nesting, wrong types, `__proto__`/`constructor` keys,
 * NaN/Infinity, wrong shapes, bad headers and garbage HTTP. Every answer must be a 4xx JSON body with an
 * ERR_ code; no 5xx, no crash, and the gateway still answers a valid request afterwards.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { SeededRng } from '../../src/core/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

const N = 10_000;
const LIMIT = 16 << 10;

interface Case {
  body: string | Buffer;
  headers: Record<string, string>;
  path?: string;
  method?: string;
}

function generator(seed: number, token: string, valid: Record<string, unknown>): () => Case {
  const rng = new SeededRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T;
  const json = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const validText = JSON.stringify(valid);
  const clone = () => JSON.parse(validText) as { inputs: Record<string, unknown>[]; [k: string]: unknown };
  const weird: unknown[] = [
    'x',
    '',
    '1',
    true,
    false,
    null,
    {},
    [],
    [[1]],
    { a: 1 },
    -1,
    1e308,
    -0,
    2 ** 53 + 1,
    '\u0000',
    '💥'.repeat(10),
  ];
  const kinds: (() => Case)[] = [
    // broken JSON: a valid body cut short or with a byte flipped
    () => {
      const cut = rng.int(validText.length - 1) + 1;
      return { body: validText.slice(0, cut), headers: json };
    },
    () => {
      const b = Buffer.from(validText);
      const i = rng.int(b.length);
      b[i] = pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x2c, 0x3a, 0x00, 0xff, 0xc3]);
      const text = b.toString('latin1');
      try {
        JSON.parse(b.toString('utf8'));
        return { body: `${text}}`, headers: json };
      } catch {
        return { body: b, headers: json };
      }
    },
    // invalid UTF-8
    () => ({ body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]), headers: json }),
    // huge bodies
    () => ({
      body: JSON.stringify({ inputs: [], pad: 'x'.repeat(LIMIT + rng.int(4 * LIMIT)) }),
      headers: json,
    }),
    // deep nesting (arrays or objects), anywhere in the document
    () => {
      const d = 9 + rng.int(3000);
      const deep = rng.bernoulli(0.5)
        ? `${'['.repeat(d)}${']'.repeat(d)}`
        : `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`;
      return { body: `{"inputs":${deep}}`, headers: json };
    },
    // forbidden keys, plain or escaped, at the top or inside a tensor
    () => {
      const key = pick(['__proto__', 'constructor', 'prototype', '\\u005f_proto__', 'constr\\u0075ctor']);
      return rng.bernoulli(0.5)
        ? { body: `{"${key}":{"polluted":1},${validText.slice(1)}`, headers: json }
        : { body: validText.replace('"name":"amount"', `"name":"amount","${key}":{"x":1}`), headers: json };
    },
    // NaN / Infinity / out-of-range literals
    () => ({
      body: validText.replace(
        /("data":\[)[^\]]*/,
        `$1${pick(['NaN', 'Infinity', '-Infinity', '1e999', 'undefined', '0x10', '+1', '.5', '01'])}`,
      ),
      headers: json,
    }),
    // wrong types in every position
    () => {
      const b = clone();
      const t = b.inputs[rng.int(b.inputs.length)] as Record<string, unknown>;
      const field = pick(['name', 'shape', 'datatype', 'data', 'parameters']);
      // An object is a valid `parameters`: give it a value that is not one of a string, number or boolean.
      t[field] = field === 'parameters' ? { p: pick([null, {}, [], [1]]) } : pick(weird);
      if (field === 'data' && Array.isArray(t[field]) && (t[field] as unknown[]).length === 1)
        t[field] = [[1]];
      return { body: JSON.stringify(b), headers: json };
    },
    () => {
      const b = clone();
      const t = b.inputs[rng.int(b.inputs.length)] as { name: string; data: unknown[] };
      t.data = t.data.map(() =>
        t.name === 'kind'
          ? pick([1, true, null, {}, [], 'Z', 'a'.repeat(2000)])
          : pick(['1', true, null, {}, [], 'NaN', -5, 1e7]),
      );
      return { body: JSON.stringify(b), headers: json };
    },
    // top-level shape: not an object, extra fields, missing inputs
    () => ({
      body: JSON.stringify(
        pick([
          [],
          1,
          'x',
          null,
          true,
          { inputs: [] },
          {},
          { ...clone(), extra: 1 },
          { id: 5, inputs: clone().inputs },
          { outputs: [{ name: 'secret' }], inputs: clone().inputs },
        ]),
      ),
      headers: json,
    }),
    // wrong shapes
    () => {
      const b = clone();
      const t = b.inputs[rng.int(b.inputs.length)] as Record<string, unknown>;
      t['shape'] = pick([[0], [-1], [2], [1, 2], [1, 1, 1], [1e9], [1.5], ['1'], [], [10_000_000]]);
      return { body: JSON.stringify(b), headers: json };
    },
    () => {
      const b = clone();
      b.inputs = rng.bernoulli(0.5)
        ? b.inputs.slice(0, rng.int(b.inputs.length))
        : [...b.inputs, b.inputs[0] as Record<string, unknown>];
      if (b.inputs.length === 3)
        b.inputs.push({ name: 'fraud', shape: [1], datatype: 'BYTES', data: ['no'] });
      return { body: JSON.stringify(b), headers: json };
    },
    // bad headers: media type, authorization
    () => ({
      body: validText,
      headers: {
        'content-type': pick([
          'text/plain',
          'application/xml',
          'application/json; charset=latin1',
          'multipart/form-data',
          '',
        ]),
        authorization: `Bearer ${token}`,
      },
    }),
    () => ({
      body: validText,
      headers: {
        'content-type': 'application/json',
        authorization: pick([
          'Bearer',
          'Bearer ',
          'Basic dXNlcjpwYXNz',
          `Bearer ${token.slice(0, -3)}abc`,
          `Bearer ${'a'.repeat(9000)}`,
          'Bearer a.b.c',
          `Bearer ${token}.x`,
          'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
        ]),
      },
    }),
    // wrong routes and methods
    () => ({
      body: validText,
      headers: json,
      path: pick([
        '/v2/models/../infer',
        '/v2/models/fraud/infer/x',
        '/v2/models//infer',
        '/v2/models/%00/infer',
        '/v3',
        '/',
        '/v2/models/fraud/versions//infer',
      ]),
    }),
    () => ({ body: validText, headers: json, method: pick(['PUT', 'DELETE', 'PATCH', 'GET']) }),
  ];
  return () => kinds[rng.int(kinds.length)]!();
}

function send(agent: https.Agent, url: URL, c: Case): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname,
        port: url.port,
        path: c.path ?? '/v2/models/fraud/infer',
        method: c.method ?? 'POST',
        agent,
        servername: 'localhost',
        headers: { ...c.headers, 'content-length': Buffer.byteLength(c.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

describe('gateway fuzz', () => {
  let f: Fixture;
  let gw: Gateway;

  before(async () => {
    f = await fixture();
    const base = f.config();
    gw = await startGateway(f.config({ server: { ...base.server, bodyLimitBytes: LIMIT } }));
  });
  after(async () => {
    await gw?.close();
  });

  it(`answers ${N} malformed requests with 4xx JSON and an ERR_ code, never 5xx`, async () => {
    const url = new URL(gw.url);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 16, ca: f.ca.pem });
    const next = generator(42, await f.token(), v2Body([f.rows[0] as never]));
    const statuses = new Map<number, number>();
    const codes = new Map<string, number>();
    let done = 0;
    const failures: string[] = [];
    const worker = async () => {
      while (done < N) {
        done++;
        const c = next();
        const r = await send(agent, url, c);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        let code = '';
        try {
          code = (JSON.parse(r.body) as { code: string }).code;
        } catch {
          /* recorded below */
        }
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (r.status < 400 || r.status >= 500 || !/^ERR_[A-Z0-9_]+$/.test(code))
          failures.push(`${r.status} ${r.body.slice(0, 120)} <- ${String(c.body).slice(0, 120)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    agent.destroy();
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} bad answers`);
    assert.ok([...statuses.keys()].every((s) => s >= 400 && s < 500));
    // The mix reached many stages: parse, authenticate, validate, routing, media type and size checks.
    for (const c of [
      'ERR_GATEWAY_REQUEST_INVALID',
      'ERR_GATEWAY_BODY_TOO_LARGE',
      'ERR_INPUT_INVALID',
      'ERR_GATEWAY_MEDIA_TYPE',
      'ERR_GATEWAY_NOT_FOUND',
      'ERR_GATEWAY_METHOD_NOT_ALLOWED',
    ])
      assert.ok((codes.get(c) ?? 0) > 0, `no ${c} among ${JSON.stringify([...codes])}`);
    assert.ok([...codes.keys()].some((c) => c.startsWith('ERR_AUTH_')));
  });

  it('answers garbage HTTP with 400 and a code, and stays up', async () => {
    const url = new URL(gw.url);
    const garbage = [
      'GARBAGE\r\n\r\n',
      'POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
      'GET / HTTP/9.9\r\n\r\n',
    ];
    for (const g of garbage) {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = tls.connect(
          { host: url.hostname, port: Number(url.port), ca: f.ca.pem, servername: 'localhost' },
          () => s.end(g),
        );
        const chunks: Buffer[] = [];
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('end', () => resolve(Buffer.concat(chunks).toString()));
        s.on('error', reject);
      });
      const status = Number(answer.slice(9, 12));
      assert.ok(status >= 400 && status < 500, `${JSON.stringify(g.slice(0, 40))} -> ${answer.slice(0, 60)}`);
      assert.match(answer, /"code":"ERR_[A-Z_]+"/);
    }
    const ok = await send(new https.Agent({ ca: f.ca.pem }), url, {
      body: JSON.stringify(v2Body([f.rows[2] as never])),
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await f.token({ sub: 'after-fuzz' })}`,
      },
    });
    assert.equal(ok.status, 200, ok.body);
  });
});
