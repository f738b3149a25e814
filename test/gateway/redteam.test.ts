/**
 * Red-team regressions: attacks on a real gateway (TLS 1.3, the fixture's model, Cedar with the example
 * policies, SQLite audit) over real sockets, one per finding. Each describe starts one gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { Authenticator } from '../../src/gateway/auth/index.js';
import type { Gateway } from '../../src/gateway/server.js';
import { AUDIENCE, goodClaims, ISSUER, issuerKey, mint, T0 } from './auth-fixtures.js';
import { type Fixture, fixture, startGateway, v2Body } from './gateway-fixtures.js';

interface Answer {
  status: number;
  code: string;
  body: string;
}

/** One HTTPS request to `gw` (no client certificate), its status, code and body. */
function call(
  f: Fixture,
  gw: Gateway,
  method: string,
  path: string,
  body: string | null,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${gw.url}${path}`,
      {
        method,
        ca: f.ca.pem,
        servername: 'localhost',
        agent: false,
        headers: body === null ? headers : { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => {
          let code = '';
          try {
            code = String((JSON.parse(text) as { code?: unknown }).code ?? '');
          } catch {}
          resolve({ status: res.statusCode ?? 0, code, body: text });
        });
      },
    );
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Writes `raw` to `gw` over TLS and returns the first answer's status line, code and body. */
function rawCall(f: Fixture, gw: Gateway, raw: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = connect(
      { host: '127.0.0.1', port: Number(new URL(gw.url).port), ca: f.ca.pem, servername: 'localhost' },
      () => s.write(raw),
    );
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
    });
    s.on('error', reject);
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      const code = /"code":"([A-Z_]+)"/.exec(body)?.[1] ?? '';
      resolve({ status, code, body });
    });
  });
}

describe('red team: what a served model looks like to callers not permitted to use it', () => {
  let f: Fixture;
  let gw: Gateway;
  let own: string;
  let other: string;

  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
    own = `Bearer ${await f.token()}`;
    // Another tenant's caller: authenticated, but the policies permit it nothing on tenant acme's model.
    other = `Bearer ${await f.token({ tenant: 'globex', sub: 'client-globex', client_id: 'client-globex' })}`;
  });
  after(async () => {
    await gw?.close();
  });

  const probes: Record<string, string> = {
    'an empty object': '{}',
    'an input the model lacks': JSON.stringify({
      inputs: [{ name: 'zzz', shape: [1], datatype: 'FP64', data: [1] }],
    }),
    'a BYTES tensor for a number': JSON.stringify({
      inputs: [{ name: 'amount', shape: [1], datatype: 'BYTES', data: ['1'] }],
    }),
    'more rows than the model takes': JSON.stringify({
      inputs: [{ name: 'amount', shape: [100_000], datatype: 'FP64', data: [] }],
    }),
  };

  it('an unauthenticated malformed request to a served model gets the 401 an unknown model gets, naming nothing', async () => {
    for (const [what, body] of Object.entries(probes)) {
      const served = await call(f, gw, 'POST', '/v2/models/fraud/infer', body);
      const unknown = await call(f, gw, 'POST', '/v2/models/no-such-model/infer', body);
      assert.equal(`${served.status} ${served.code}`, '401 ERR_AUTH_MISSING', what);
      assert.equal(served.body, unknown.body, what);
      assert.doesNotMatch(served.body, /zzz|amount|rows|input/, what);
    }
  });

  it("another tenant's caller gets the policy's 403 for any body, as for an unknown model", async () => {
    for (const [what, body] of Object.entries(probes)) {
      const served = await call(f, gw, 'POST', '/v2/models/fraud/infer', body, { authorization: other });
      const unknown = await call(f, gw, 'POST', '/v2/models/no-such-model/infer', body, {
        authorization: other,
      });
      assert.equal(`${served.status} ${served.code}`, '403 ERR_POLICY_DENIED', what);
      assert.equal(served.body, unknown.body, what);
    }
    // A well-formed request with a value outside the schema's bounds: the example policies read the
    // risk score, so Cedar runs after validation; the schema's bounds stay hidden from this caller too.
    const outOfBounds = JSON.stringify(v2Body([{ amount: 1e9, age: 40, kind: 'A' }]));
    const r = await call(f, gw, 'POST', '/v2/models/fraud/infer', outOfBounds, { authorization: other });
    assert.equal(`${r.status} ${r.code}`, '403 ERR_POLICY_DENIED');
    assert.doesNotMatch(r.body, /amount|5000/);
  });

  it("a refused caller's 403 names no policy: it cannot tell whether the detectors flagged its input", async () => {
    const risky = JSON.stringify(v2Body([{ amount: 4999, age: 18, kind: 'C' }]));
    const plain = JSON.stringify(v2Body([f.rows[3]!]));
    const high = await call(f, gw, 'POST', '/v2/models/fraud/infer', risky, { authorization: other });
    const low = await call(f, gw, 'POST', '/v2/models/fraud/infer', plain, { authorization: other });
    assert.equal(`${high.status} ${high.code}`, '403 ERR_POLICY_DENIED');
    // deny-high-risk matched for the first (the example policies' forbid on riskScore > 0.9), no
    // permit for either: the answers were 'forbidden by deny-high-risk' and 'not permitted by any policy'.
    assert.equal(high.body, low.body);
    assert.doesNotMatch(high.body, /deny-high-risk|tenant-own-models/);
  });

  it('a permitted caller still gets the exact 400/413 that describes its mistake', async () => {
    const unknownInput = await call(
      f,
      gw,
      'POST',
      '/v2/models/fraud/infer',
      probes['an input the model lacks']!,
      {
        authorization: own,
      },
    );
    assert.equal(`${unknownInput.status} ${unknownInput.code}`, '400 ERR_GATEWAY_REQUEST_INVALID');
    assert.match(unknownInput.body, /no input \\"zzz\\"/);
    const tooMany = await call(
      f,
      gw,
      'POST',
      '/v2/models/fraud/infer',
      probes['more rows than the model takes']!,
      {
        authorization: own,
      },
    );
    assert.equal(`${tooMany.status} ${tooMany.code}`, '413 ERR_INPUT_TOO_LARGE');
    const outOfBounds = JSON.stringify(v2Body([{ amount: 1e9, age: 40, kind: 'A' }]));
    const r = await call(f, gw, 'POST', '/v2/models/fraud/infer', outOfBounds, { authorization: own });
    assert.equal(`${r.status} ${r.code}`, '400 ERR_INPUT_INVALID');
  });
});

describe('red team: request framing and repeated headers', () => {
  let f: Fixture;
  let gw: Gateway;
  let token: string;

  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
    token = await f.token();
  });
  after(async () => {
    await gw?.close();
  });

  it('refuses two Authorization headers whichever holds the valid token (Node keeps the first, a proxy may read the last)', async () => {
    const good = `Authorization: Bearer ${token}\r\n`;
    const bad = 'Authorization: Bearer not.a.token\r\n';
    for (const [what, auth] of [
      ['valid first', good + bad],
      ['valid last', bad + good],
      ['the same twice', good + good],
    ] as const) {
      const meta = await rawCall(
        f,
        gw,
        `GET /v2/models/fraud HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`,
      );
      assert.equal(`${meta.status} ${meta.code}`, '401 ERR_AUTH_TOKEN_MALFORMED', what);
      assert.match(meta.body, /more than one Authorization header/, what);
      const body = JSON.stringify(v2Body(f.rows.slice(0, 1)));
      const infer = await rawCall(
        f,
        gw,
        `POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      assert.equal(`${infer.status} ${infer.code}`, '401 ERR_AUTH_TOKEN_MALFORMED', what);
    }
    // One header still works.
    const one = await rawCall(
      f,
      gw,
      `GET /v2/models/fraud HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(one.status, 200);
  });
});

describe('red team: token time claims', () => {
  let f: Fixture;
  let gw: Gateway;

  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
  });
  after(async () => {
    await gw?.close();
  });

  it('refuses a token whose iat is in the future, which also slipped a year-long token past maxLifetimeSeconds', async () => {
    const now = Math.floor(Date.now() / 1000);
    const year = 365 * 86_400;
    for (const [what, claims] of [
      ['iat an hour ahead', { iat: now + 3600, exp: now + 3600 + 600 }],
      ['valid for a year, iat a minute before exp', { iat: now + year - 60, exp: now + year }],
    ] as const) {
      const t = await f.token({ ...claims, nbf: now - 5, jti: what });
      const r = await call(f, gw, 'GET', '/v2/models/fraud', null, { authorization: `Bearer ${t}` });
      assert.equal(`${r.status} ${r.code}`, '401 ERR_AUTH_TOKEN_NOT_YET_VALID', what);
    }
    // Within the clock skew (30 s by default) an iat ahead is accepted.
    const ok = await f.token({ iat: now + 10, exp: now + 600, nbf: now - 5 });
    const r = await call(f, gw, 'GET', '/v2/models/fraud', null, { authorization: `Bearer ${ok}` });
    assert.equal(r.status, 200);
  });
});

describe('red team: a risk policy stays in force whatever the pipeline was told', () => {
  let f: Fixture;
  let gw: Gateway;
  let token: string;

  before(async () => {
    f = await fixture();
    // Monitor mode: the detectors only count, so the example policies' deny-high-risk is the refusal.
    gw = await startGateway(f.config({ detectors: { mode: 'monitor' } }));
    token = await f.token();
  });
  after(async () => {
    await gw?.close();
  });

  it('evaluates Cedar after the detectors because the loaded policies read riskScore, not because of a separately set flag', async () => {
    // A row far outside the training data (amounts up to 1000): the Mahalanobis risk is above 0.9.
    const body = JSON.stringify(v2Body([{ amount: 4999, age: 18, kind: 'C' }]));
    const auth = { authorization: `Bearer ${token}` };
    const before = await call(f, gw, 'POST', '/v2/models/fraud/infer', body, auth);
    assert.equal(`${before.status} ${before.code}`, '403 ERR_POLICY_DENIED');
    // The same caller with an ordinary row is served: the refusal above is the risk policy's.
    const plain = await call(
      f,
      gw,
      'POST',
      '/v2/models/fraud/infer',
      JSON.stringify(v2Body([f.rows[5]!])),
      auth,
    );
    assert.equal(plain.status, 200);
    // The state a reload left when its second read of the policy files (for this flag) disagreed with
    // the set the authoriser had loaded, or during the moment between the two: the flag says early.
    gw.pipeline.options.policyAfterDetect = false;
    const stale = await call(f, gw, 'POST', '/v2/models/fraud/infer', body, auth);
    assert.equal(`${stale.status} ${stale.code}`, '403 ERR_POLICY_DENIED');
  });
});

describe('red team: rate limits and served names', () => {
  let f: Fixture;
  let gw: Gateway;

  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config({ limits: { backend: 'memory', requestsPerSecond: 1, burst: 1 } }));
  });
  after(async () => {
    await gw?.close();
  });

  it("another tenant's caller past its rate limit still gets the 403 an unknown name gets, not a 429 that marks a served name", async () => {
    const other = `Bearer ${await f.token({ tenant: 'globex', sub: 'client-globex-2', client_id: 'client-globex-2' })}`;
    const body = JSON.stringify(v2Body([f.rows[9]!]));
    for (let i = 0; i < 3; i++) {
      const served = await call(f, gw, 'POST', '/v2/models/fraud/infer', body, { authorization: other });
      const unknown = await call(f, gw, 'POST', '/v2/models/no-such-model/infer', body, {
        authorization: other,
      });
      assert.equal(`${served.status} ${served.code}`, '403 ERR_POLICY_DENIED', `request ${i + 1}`);
      assert.equal(served.body, unknown.body);
    }
    // A permitted caller past the same limit gets the 429 with Retry-After.
    const own = `Bearer ${await f.token()}`;
    const codes: string[] = [];
    for (let i = 0; i < 3; i++)
      codes.push((await call(f, gw, 'POST', '/v2/models/fraud/infer', body, { authorization: own })).code);
    assert.ok(codes.includes('ERR_GATEWAY_RATE_LIMITED'), codes.join(' '));
  });
});

describe("red team: a client cannot take a user's caller id", () => {
  it('a token without sub is named client_id:<id>, never the user whose sub equals its client_id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-redteam-ids-'));
    const issuer = await issuerKey('ES256', 'k1');
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [issuer.publicJwk] }));
    const jwt = { issuer: ISSUER, audience: AUDIENCE, jwks: { file: jwks }, algorithms: ['ES256' as const] };
    const at = { now: () => T0 * 1000 };
    // sub taken out of requiredClaims: client-credentials tokens without sub are accepted.
    const loose = await Authenticator.create(
      { require: 'token', jwt: { ...jwt, requiredClaims: ['iss', 'exp', 'aud', 'iat', 'jti'] } },
      at,
    );
    const req = (t: string) => ({
      peerAuthorized: false,
      remoteAddress: '10.0.0.1',
      authorization: `Bearer ${t}`,
    });
    const user = await loose.authenticate(req(await mint(issuer, goodClaims({ sub: 'alice', jti: 'u' }))));
    const { sub: _sub, ...noSub } = goodClaims({ client_id: 'alice', jti: 'c' });
    const client = await loose.authenticate(req(await mint(issuer, noSub)));
    assert.equal(user.id, `${ISSUER}|alice`);
    assert.equal(client.id, `${ISSUER}|client_id:alice`);
    // Before, both were `${ISSUER}|alice`: the same Cedar principal, rate limit and detector history.
    assert.notEqual(user.id, client.id);
    const { client_id: _c, ...neither } = noSub;
    await assert.rejects(
      loose.authenticate(req(await mint(issuer, { ...neither, jti: 'n' }))),
      /neither sub nor client_id/,
    );
    await assert.rejects(
      loose.authenticate(req(await mint(issuer, goodClaims({ sub: 'client_id:alice', jti: 's' })))),
      /sub may not begin with "client_id:"/,
    );
    // With sub required (the default), ids are iss|sub only, and any sub is accepted.
    const strict = await Authenticator.create({ require: 'token', jwt }, at);
    const odd = await strict.authenticate(
      req(await mint(issuer, goodClaims({ sub: 'client_id:alice', jti: 'o' }))),
    );
    assert.equal(odd.id, `${ISSUER}|client_id:alice`);
    await loose.close();
    await strict.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
