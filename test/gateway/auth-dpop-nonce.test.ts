import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { isBulwarkError } from '../../src/core/index.js';
import {
  Authenticator,
  type AuthRequest,
  accessTokenHash,
  createDpopKey,
  type DpopKey,
  DpopNonces,
  dpopProof,
} from '../../src/gateway/auth/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import { AUDIENCE, goodClaims, ISSUER, type IssuerKeys, issuerKey, mint, T0 } from './auth-fixtures.js';
import { fixture, startGatewayOnFreePort, v2Body } from './gateway-fixtures.js';

/**
 * RFC 9449 §9 resource-server nonces (`auth.jwt.dpop.nonce`): a proof must carry a nonce the gateway
 * issued within one to two lifetimes; nonces are stateless, so replicas sharing the secret accept each
 * other's; a refusal says `use_dpop_nonce` and carries a fresh `DPoP-Nonce`, which the client SDK uses
 * to retry once.
 */

const ORIGIN = 'https://gateway.bulwark.test:8443';
const PATH = '/v2/models/fraud/infer';
const dir = mkdtempSync(join(tmpdir(), 'bulwark-dpop-nonce-'));
const jwksFile = join(dir, 'jwks.json');
const secretFile = join(dir, 'nonce.secret');
let issuer: IssuerKeys;
let key: DpopKey;
let clock = T0 * 1000;
const now = () => clock;

function authConfig(secret = secretFile, lifetimeSeconds = 60) {
  return {
    require: 'token' as const,
    jwt: {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { file: jwksFile },
      algorithms: ['ES256' as const],
      clockSkewSeconds: 5,
      dpop: { origins: [ORIGIN], nonce: { secretFile: secret, lifetimeSeconds } },
    },
  };
}

async function proof(token: string, nonce?: string): Promise<string> {
  return new SignJWT({
    htm: 'POST',
    htu: `${ORIGIN}${PATH}`,
    iat: Math.floor(clock / 1000),
    jti: `p-${Math.random()}`,
    ath: accessTokenHash(token),
    ...(nonce === undefined ? {} : { nonce }),
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .sign(key.privateKey);
}

function req(token: string, p: string): AuthRequest {
  return {
    peerAuthorized: false,
    remoteAddress: '127.0.0.1',
    authorization: `DPoP ${token}`,
    dpop: p,
    method: 'POST',
    url: PATH,
  };
}

function code(e: unknown): string {
  assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
  return e.code;
}

before(async () => {
  issuer = await issuerKey('ES256', 'k1');
  writeFileSync(jwksFile, JSON.stringify({ keys: [issuer.publicJwk] }));
  writeFileSync(secretFile, randomBytes(32));
  key = await createDpopKey('ES256');
});

describe('DpopNonces', () => {
  const secret = Buffer.alloc(32, 7);
  /** A step boundary: 16,666,667 steps of 60 s. */
  const B = 1_000_000_020_000;
  let t = B;
  const n = new DpopNonces(secret, 60, 5, () => t);

  it('accepts a nonce during its step and the next, and refuses it after (one to two lifetimes)', () => {
    t = B + 20_000;
    const nonce = n.current();
    assert.match(nonce, /^[A-Za-z0-9_-]{30}$/);
    t = B + 50_000;
    assert.equal(n.current(), nonce, 'the same nonce for a whole step');
    n.check(nonce);
    t = B + 110_000; // the next step
    assert.notEqual(n.current(), nonce);
    n.check(nonce);
    t = B + 124_999; // two lifetimes after the step began, within the skew
    n.check(nonce);
    t = B + 125_000;
    assert.throws(() => n.check(nonce), /expired/);
  });

  it('refuses nonces from the future beyond the skew, under another secret, tampered, or spelled another way', () => {
    t = B + 20_000;
    const later = new DpopNonces(secret, 60, 5, () => t + 60_000).current();
    assert.throws(
      () => n.check(later),
      (e: unknown) => code(e) === 'ERR_AUTH_DPOP_NONCE' && /future/.test(String(e)),
    );
    // A replica whose clock is 4 s ahead, within the 5 s skew, already hands out the next step's nonce.
    t = B + 58_000;
    n.check(new DpopNonces(secret, 60, 5, () => t + 4_000).current());
    const good = n.current();
    const otherSecret = new DpopNonces(Buffer.alloc(32, 8), 60, 5, () => t).current();
    assert.throws(() => n.check(otherSecret), /not a nonce of this gateway/);
    const raw = Buffer.from(good, 'base64url');
    raw[raw.length - 1]! ^= 1;
    assert.throws(() => n.check(raw.toString('base64url')), /not a nonce of this gateway/);
    // The last character holds 2 unused bits: another spelling of the same bytes is refused.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const respelled = `${good.slice(0, -1)}${alphabet[alphabet.indexOf(good.at(-1)!) + 1]}`;
    assert.deepEqual(Buffer.from(respelled, 'base64url'), Buffer.from(good, 'base64url'));
    assert.throws(() => n.check(respelled), /not a nonce of this gateway/);
    for (const bad of [undefined, 42, '', 'x'.repeat(30), `${good}A`])
      assert.throws(
        () => n.check(bad),
        (e: unknown) => code(e) === 'ERR_AUTH_DPOP_NONCE',
      );
    assert.throws(() => n.check(undefined), /requires a nonce/);
  });

  it('needs at least 32 bytes of secret', () => {
    assert.throws(
      () => new DpopNonces(Buffer.alloc(31), 60, 5),
      (e: unknown) => code(e) === 'ERR_CONFIG_INVALID' && /secretFile: at least 32 bytes/.test(String(e)),
    );
  });
});

describe('Authenticator with jwt.dpop.nonce', () => {
  it('refuses a proof without a fresh nonce with use_dpop_nonce, and accepts one with it', async () => {
    const auth = await Authenticator.create(authConfig(), { now });
    const token = await mint(issuer, goodClaims({ cnf: { jkt: key.jkt }, jti: 't1' }));
    await assert.rejects(auth.authenticate(req(token, await proof(token))), (e: unknown) => {
      assert.equal(code(e), 'ERR_AUTH_DPOP_NONCE');
      assert.match(auth.challenge('ERR_AUTH_DPOP_NONCE'), /^Bearer, DPoP error="use_dpop_nonce", algs=/);
      return true;
    });
    const nonce = auth.dpopNonce();
    assert.ok(nonce);
    const p = await auth.authenticate(req(token, await proof(token, nonce)));
    assert.deepEqual(p.sources, ['token', 'dpop']);
    // The other checks come first: a proof for another token is invalid, not "use a nonce".
    const other = await mint(issuer, goodClaims({ cnf: { jkt: key.jkt }, jti: 't2' }));
    await assert.rejects(
      auth.authenticate(req(token, await proof(other))),
      (e: unknown) => code(e) === 'ERR_AUTH_DPOP_INVALID',
    );
    await auth.close();
  });

  it('replicas sharing the secret accept each other’s nonces; a reloaded secret retires the old ones', async () => {
    const a = await Authenticator.create(authConfig(), { now });
    const b = await Authenticator.create(authConfig(), { now });
    const elsewhere = join(dir, 'other.secret');
    writeFileSync(elsewhere, randomBytes(32));
    const c = await Authenticator.create(authConfig(elsewhere), { now });
    const token = await mint(issuer, goodClaims({ cnf: { jkt: key.jkt }, jti: 't3' }));
    const nonce = a.dpopNonce() as string;
    await b.authenticate(req(token, await proof(token, nonce)));
    await assert.rejects(
      c.authenticate(req(token, await proof(token, nonce))),
      (e: unknown) => code(e) === 'ERR_AUTH_DPOP_NONCE',
    );
    // Rotation: a new secret in the file, then a reload (SIGHUP at the gateway).
    writeFileSync(secretFile, randomBytes(32));
    await b.reload();
    await assert.rejects(
      b.authenticate(req(token, await proof(token, nonce))),
      (e: unknown) => code(e) === 'ERR_AUTH_DPOP_NONCE',
    );
    await b.authenticate(req(token, await proof(token, b.dpopNonce())));
    for (const x of [a, b, c]) await x.close();
  });

  it('refuses to start with a missing or short secret file, naming it', async () => {
    await assert.rejects(
      Authenticator.create(authConfig(join(dir, 'absent'))),
      (e: unknown) => code(e) === 'ERR_FILE_NOT_FOUND' && /secretFile/.test(String(e)),
    );
    const short = join(dir, 'short.secret');
    writeFileSync(short, 'too short');
    await assert.rejects(
      Authenticator.create(authConfig(short)),
      (e: unknown) => code(e) === 'ERR_CONFIG_INVALID',
    );
  });
});

describe('DPoP nonces through the gateway and the client SDK', () => {
  it('a new client is asked for a nonce and retries once by itself; answers carry DPoP-Nonce', async () => {
    clock = Date.now();
    const f = await fixture();
    const base = f.config();
    const { gw } = await startGatewayOnFreePort((port) =>
      f.config({
        server: { ...base.server, port },
        auth: {
          ...base.auth,
          require: 'token',
          jwt: {
            ...base.auth.jwt!,
            dpop: { origins: [`https://127.0.0.1:${port}`], nonce: { secretFile } },
          },
        },
      }),
    );
    try {
      const dkey = await createDpopKey();
      const token = await f.token({ cnf: { jkt: dkey.jkt } });
      const body = JSON.stringify(v2Body(f.rows.slice(0, 1)));
      // By hand: a proof without a nonce gets 401 use_dpop_nonce with a nonce to use.
      const raw = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
      const first = await raw.request('POST', PATH, body, {
        authorization: `DPoP ${token}`,
        dpop: await dpopProof(dkey, 'POST', `${gw.url}${PATH}`, token),
      });
      assert.equal(first.status, 401);
      assert.equal(JSON.parse(first.body).code, 'ERR_AUTH_DPOP_NONCE');
      assert.match(String(first.headers['www-authenticate']), /DPoP error="use_dpop_nonce"/);
      const nonce = String(first.headers['dpop-nonce']);
      assert.match(nonce, /^[A-Za-z0-9_-]{30}$/);
      const second = await raw.request('POST', PATH, body, {
        authorization: `DPoP ${token}`,
        dpop: await dpopProof(dkey, 'POST', `${gw.url}${PATH}`, token, nonce),
      });
      assert.equal(second.status, 200, second.body);
      assert.equal(second.headers['dpop-nonce'], nonce);
      // The SDK: its first request is refused for want of a nonce and retried with the one it got.
      const client = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token,
        dpop: dkey,
      });
      const ok = await client.request('POST', PATH, body);
      assert.equal(ok.status, 200, ok.body);
      assert.equal((await client.request('POST', PATH, body)).status, 200);
      // A bearer client without DPoP is refused with the challenge, and is not retried.
      const bearer = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token(),
      });
      const b = await bearer.request('POST', PATH, body);
      assert.equal(b.status, 200, 'if-present mode still serves unbound bearer tokens');
      for (const x of [raw, client, bearer]) x.close();
    } finally {
      await gw.close();
    }
  });
});
