import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { isBulwarkError } from '../../src/core/index.js';
import {
  Authenticator,
  type AuthenticatorOptions,
  type AuthRequest,
  accessTokenHash,
  createDpopKey,
  type DpopKey,
  dpopProof,
  jwkThumbprint,
  MemoryReplayStore,
  RedisReplayStore,
} from '../../src/gateway/auth/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import {
  AUDIENCE,
  es256,
  forge,
  goodClaims,
  ISSUER,
  type IssuerKeys,
  issuerKey,
  mint,
  T0,
} from './auth-fixtures.js';
import { fixture, startGatewayOnFreePort, v2Body } from './gateway-fixtures.js';

/**
 * RFC 9449 DPoP at the gateway: every check of §4.3 on the proof, the token binding of §6.1/§7.1, the
 * replay check of §11.1 (in memory and shared through a real Redis), the scheme rules (no downgrade to
 * Bearer, no DPoP scheme for a bearer token), and the whole path through the server with the client SDK.
 */

const ORIGIN = 'https://gateway.bulwark.test:8443';
const PATH = '/v2/models/fraud/infer';
const dir = mkdtempSync(join(tmpdir(), 'bulwark-dpop-'));
const jwksFile = join(dir, 'jwks.json');
let issuer: IssuerKeys;
let key: DpopKey;
let other: DpopKey;
let clock = T0 * 1000;
const now = () => clock;

function config(dpop: Record<string, unknown> | undefined) {
  return {
    require: 'token' as const,
    jwt: {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { file: jwksFile },
      algorithms: ['ES256' as const],
      clockSkewSeconds: 30,
      ...(dpop === undefined ? {} : { dpop: { origins: [ORIGIN], ...dpop } }),
    },
  };
}

function create(
  dpop: Record<string, unknown> | undefined,
  o: AuthenticatorOptions = {},
): Promise<Authenticator> {
  return Authenticator.create(config(dpop), { now, ...o });
}

/** A token bound to `k` (cnf.jkt), valid at the test clock. */
function boundToken(k: DpopKey = key, extra: Record<string, unknown> = {}): Promise<string> {
  return mint(issuer, goodClaims({ cnf: { jkt: k.jkt }, jti: `t-${Math.random()}`, ...extra }));
}

interface ProofOptions {
  key?: DpopKey;
  method?: string;
  htu?: string;
  iat?: number;
  jti?: string;
  ath?: string | null;
  header?: Record<string, unknown>;
  omit?: string[];
}

/** A proof at the test clock (jose's own signing); each field can be set wrong on purpose. */
async function proof(token: string, o: ProofOptions = {}): Promise<string> {
  const k = o.key ?? key;
  const claims: Record<string, unknown> = {
    htm: o.method ?? 'POST',
    htu: o.htu ?? `${ORIGIN}${PATH}`,
    iat: o.iat ?? Math.floor(clock / 1000),
    jti: o.jti ?? `p-${Math.random()}`,
    ...(o.ath === null ? {} : { ath: o.ath ?? accessTokenHash(token) }),
  };
  for (const c of o.omit ?? []) delete claims[c];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: k.alg, typ: 'dpop+jwt', jwk: k.publicJwk, ...o.header })
    .sign(k.privateKey);
}

function req(
  token: string,
  p: string | undefined,
  scheme = 'DPoP',
  extra: Partial<AuthRequest> = {},
): AuthRequest {
  return {
    peerAuthorized: false,
    remoteAddress: '127.0.0.1',
    authorization: `${scheme} ${token}`,
    ...(p === undefined ? {} : { dpop: p }),
    method: 'POST',
    url: PATH,
    ...extra,
  };
}

async function refused(auth: Authenticator, r: AuthRequest, code: string, msg?: RegExp): Promise<void> {
  await assert.rejects(auth.authenticate(r), (e: unknown) => {
    assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (msg) assert.match(e.message, msg);
    return true;
  });
}

before(async () => {
  issuer = await issuerKey('ES256', 'k1');
  writeFileSync(jwksFile, JSON.stringify({ keys: [issuer.publicJwk] }));
  key = await createDpopKey('ES256');
  other = await createDpopKey('EdDSA');
});

describe('DPoP proofs (RFC 9449 §4.3)', () => {
  let auth: Authenticator;
  before(async () => {
    auth = await create({});
  });

  it('accepts a bound token with a fresh proof, and says so in the principal', async () => {
    const t = await boundToken();
    const p = await auth.authenticate(req(t, await proof(t)));
    assert.deepEqual(p.sources, ['token', 'dpop']);
    assert.equal(p.subject, 'client-acme');
    // EdDSA keys too (the default algorithms), and the scheme is case-insensitive (RFC 9110 §11.1).
    const t2 = await boundToken(other);
    const p2 = await auth.authenticate(req(t2, await proof(t2, { key: other }), 'dpop'));
    assert.deepEqual(p2.sources, ['token', 'dpop']);
  });

  it('refuses a replayed proof, and a proof made for another method, URL or origin', async () => {
    const t = await boundToken();
    const p = await proof(t);
    await auth.authenticate(req(t, p));
    await refused(auth, req(t, p), 'ERR_AUTH_DPOP_REPLAY');
    await refused(auth, req(t, await proof(t, { method: 'GET' })), 'ERR_AUTH_DPOP_INVALID', /htm/);
    await refused(
      auth,
      req(t, await proof(t, { htu: `${ORIGIN}/v2/models/other/infer` })),
      'ERR_AUTH_DPOP_INVALID',
      /htu/,
    );
    await refused(
      auth,
      req(t, await proof(t, { htu: `https://evil.test:8443${PATH}` })),
      'ERR_AUTH_DPOP_INVALID',
      /origin/,
    );
    await refused(auth, req(t, await proof(t, { htu: 'not a url' })), 'ERR_AUTH_DPOP_INVALID', /htu/);
    // The query and fragment are not compared (§4.3 step 9); case of scheme and host, and the default
    // port, are normalised as URLs are.
    const q = await proof(t, { htu: `${ORIGIN.toUpperCase().replace('HTTPS', 'https')}${PATH}?x=1#f` });
    await auth.authenticate(req(t, q, 'DPoP', { url: `${PATH}?debug=1` }));
  });

  it('refuses a proof that is too old, from the future, or without its claims', async () => {
    const t = await boundToken();
    const nowS = Math.floor(clock / 1000);
    await refused(auth, req(t, await proof(t, { iat: nowS - 60 - 31 })), 'ERR_AUTH_DPOP_INVALID', /older/);
    await auth.authenticate(req(t, await proof(t, { iat: nowS - 60 - 29 })));
    await refused(auth, req(t, await proof(t, { iat: nowS + 31 })), 'ERR_AUTH_DPOP_INVALID', /future/);
    for (const c of ['jti', 'htm', 'htu', 'iat'])
      await refused(auth, req(t, await proof(t, { omit: [c] })), 'ERR_AUTH_DPOP_INVALID', new RegExp(c));
    await refused(auth, req(t, await proof(t, { jti: 'x'.repeat(257) })), 'ERR_AUTH_DPOP_INVALID', /jti/);
  });

  it('refuses a proof for another token or another key than the token is bound to', async () => {
    const t = await boundToken();
    const t2 = await boundToken();
    await refused(auth, req(t, await proof(t, { ath: null })), 'ERR_AUTH_DPOP_INVALID', /ath/);
    await refused(auth, req(t, await proof(t2)), 'ERR_AUTH_DPOP_INVALID', /ath/);
    await refused(auth, req(t, await proof(t, { key: other })), 'ERR_AUTH_DPOP_INVALID', /key/);
  });

  it('refuses malformed proofs before any key is used', async () => {
    const t = await boundToken();
    const good = await proof(t);
    const ec = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(ec.privateKey);
    const cases: [string, string, RegExp][] = [
      ['two DPoP headers', `${good}, ${await proof(t)}`, /more than one/],
      ['not a JWS', 'abc.def', /compact JWS/],
      ['typ JWT', await proof(t, { header: { typ: 'JWT' } }), /typ/],
      [
        'alg not in dpop.algorithms',
        forge(
          { alg: 'ES512', typ: 'dpop+jwt', jwk: key.publicJwk },
          { htm: 'POST' },
          es256(issuer.privateKey),
        ),
        /algorithm/,
      ],
      ['no jwk', forge({ alg: 'ES256', typ: 'dpop+jwt' }, { htm: 'POST' }, es256(issuer.privateKey)), /jwk/],
      [
        'a private jwk',
        forge({ alg: 'ES256', typ: 'dpop+jwt', jwk: privateJwk }, { htm: 'POST' }, es256(issuer.privateKey)),
        /public key/,
      ],
      [
        'crit',
        forge(
          { alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk, crit: ['x'], x: 1 },
          { htm: 'POST' },
          es256(issuer.privateKey),
        ),
        /crit/,
      ],
      ['jku', await proof(t, { header: { jku: 'https://evil.test/jwks' } }), /jku/],
      ['all-zero signature', `${good.split('.').slice(0, 2).join('.')}.${'A'.repeat(86)}`, /all zero/],
      ['bad signature', `${good.slice(0, -4)}AAAA`, /signature/],
      // The key of `key` is already imported and kept (it signed the proofs above): a proof naming it but
      // signed by another key must still fail.
      [
        'signed by another key than its jwk',
        forge(
          { alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk },
          { htm: 'POST' },
          es256(issuer.privateKey),
        ),
        /signature/,
      ],
      [
        'a jwk that is not a key for the algorithm',
        forge(
          { alg: 'ES256', typ: 'dpop+jwt', jwk: other.publicJwk },
          { htm: 'POST' },
          es256(issuer.privateKey),
        ),
        /not a key for its algorithm/,
      ],
      ['too large', `${good}${'A'.repeat(5000)}`, /longer/],
    ];
    for (const [what, p, msg] of cases)
      await assert.rejects(
        auth.authenticate(req(t, p)),
        (e: unknown) => isBulwarkError(e) && e.code === 'ERR_AUTH_DPOP_INVALID' && msg.test(e.message),
        what,
      );
    // HS256 keyed with the public key (the classic confusion) and alg none are refused by the allow-list.
    const none = forge({ alg: 'none', typ: 'dpop+jwt', jwk: key.publicJwk }, { htm: 'POST' }, () =>
      Buffer.alloc(0),
    );
    await refused(auth, req(t, none), 'ERR_AUTH_DPOP_INVALID');
  });

  it('keeps the scheme rules: no downgrade to Bearer, no DPoP scheme for a bearer token', async () => {
    const bound = await boundToken();
    await refused(auth, req(bound, undefined, 'Bearer'), 'ERR_AUTH_TOKEN_BINDING', /DPoP scheme/);
    const plain = await mint(issuer, goodClaims({ jti: 'plain-1' }));
    await refused(auth, req(plain, await proof(plain)), 'ERR_AUTH_TOKEN_BINDING', /not DPoP-bound/);
    await refused(auth, req(plain, await proof(plain), 'Bearer'), 'ERR_AUTH_DPOP_INVALID', /bearer/);
    await refused(auth, req(bound, undefined), 'ERR_AUTH_DPOP_INVALID', /missing/);
    await refused(
      auth,
      req(bound, await proof(bound), 'DPoP', { method: undefined }),
      'ERR_AUTH_DPOP_INVALID',
      /unknown/,
    );
    await refused(
      auth,
      { peerAuthorized: false, remoteAddress: '127.0.0.1', dpop: await proof(bound) },
      'ERR_AUTH_DPOP_INVALID',
    );
    // if-present: a plain bearer token is still accepted.
    const p = await auth.authenticate(req(plain, undefined, 'Bearer'));
    assert.deepEqual(p.sources, ['token']);
    await refused(
      auth,
      req(await boundToken(key, { cnf: { jkt: 'short' } }), undefined),
      'ERR_AUTH_TOKEN_BINDING',
      /jkt/,
    );
  });

  it('mode required refuses bearer tokens; no dpop section refuses DPoP tokens both ways', async () => {
    const strict = await create({ mode: 'required' });
    const plain = await mint(issuer, goodClaims({ jti: 'plain-2' }));
    await refused(strict, req(plain, undefined, 'Bearer'), 'ERR_AUTH_TOKEN_BINDING', /requires DPoP/);
    const t = await boundToken();
    await strict.authenticate(req(t, await proof(t)));
    const none = await create(undefined);
    await refused(none, req(t, await proof(t)), 'ERR_AUTH_TOKEN_MALFORMED', /no jwt.dpop/);
    await refused(none, req(t, undefined, 'Bearer'), 'ERR_AUTH_TOKEN_BINDING', /does not accept DPoP/);
  });

  it('gives the WWW-Authenticate challenge of RFC 9449 §7.1', async () => {
    assert.equal(auth.challenge('ERR_AUTH_MISSING'), 'Bearer, DPoP algs="ES256 EdDSA Ed25519 PS256"');
    assert.equal(
      auth.challenge('ERR_AUTH_DPOP_REPLAY'),
      'Bearer, DPoP error="invalid_dpop_proof", algs="ES256 EdDSA Ed25519 PS256"',
    );
    const strict = await create({ mode: 'required', algorithms: ['ES256'] });
    assert.equal(strict.challenge('ERR_AUTH_DPOP_INVALID'), 'DPoP error="invalid_dpop_proof", algs="ES256"');
    assert.equal((await create(undefined)).challenge('ERR_AUTH_MISSING'), 'Bearer');
  });

  it('validates the dpop section, naming the key', async () => {
    for (const [dpop, path] of [
      [{ origins: [] }, /origins/],
      [{ origins: ['https://gw.test/api'] }, /origins/],
      [{ origins: ['ftp://gw.test'] }, /origins/],
      [{ origins: [ORIGIN], maxAgeSeconds: 0 }, /maxAgeSeconds/],
      [{ origins: [ORIGIN], algorithms: ['HS256'] }, /algorithms/],
      [{ origins: [ORIGIN], nonce: true }, /nonce|unrecognized/i],
    ] as const)
      await assert.rejects(
        Authenticator.create({ ...config(undefined), jwt: { ...config(undefined).jwt, dpop } } as never),
        (e: unknown) => isBulwarkError(e) && e.code === 'ERR_CONFIG_INVALID' && path.test(e.message),
      );
  });
});

describe('RFC 7638 JWK thumbprints', () => {
  it('matches the RFC 7638 §3.1 example and jose for EC, OKP and RSA keys', async () => {
    const rfc = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    assert.equal(jwkThumbprint(rfc), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    for (const alg of ['ES256', 'EdDSA', 'RS256'] as const) {
      const { publicKey } = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'ignored', use: 'sig' };
      assert.equal(jwkThumbprint(jwk), await calculateJwkThumbprint(jwk, 'sha256'), alg);
    }
    assert.equal(jwkThumbprint({ kty: 'oct', k: 'AAAA' }), null);
    assert.equal(jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'AA' }), null);
  });
});

describe('DPoP replay stores', () => {
  it("records only proofs signed by the token's key (a stolen token with another key cannot fill the store)", async () => {
    const store = new MemoryReplayStore(1000, now);
    const auth = await create({}, { dpopReplay: store });
    const t = await boundToken();
    for (let i = 0; i < 3; i++)
      await refused(auth, req(t, await proof(t, { key: other })), 'ERR_AUTH_DPOP_INVALID', /bound to/);
    assert.equal(store.size, 0);
    await auth.authenticate(req(t, await proof(t)));
    assert.equal(store.size, 1);
  });

  it('memory: a full store of unexpired proofs refuses (503), and frees itself as they expire', async () => {
    const store = new MemoryReplayStore(1000, now);
    const auth = await create({}, { dpopReplay: store });
    const t = await boundToken();
    for (let i = 0; i < 1000; i++) assert.equal(await store.claim(`k${i}`, 90_000), true);
    await refused(auth, req(t, await proof(t)), 'ERR_AUTH_DPOP_UNAVAILABLE');
    clock += 91_000;
    try {
      const t2 = await boundToken(key, {
        iat: Math.floor(clock / 1000),
        exp: Math.floor(clock / 1000) + 600,
      });
      await auth.authenticate(req(t2, await proof(t2)));
      assert.equal(store.size, 1);
    } finally {
      clock -= 91_000;
    }
  });

  it('Redis: a proof used at one replica is refused at another; Redis down refuses (503)', async () => {
    const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    const prefix = `bulwark-test:dpop:${process.pid}:${Date.now()}:`;
    try {
      const a = await create({}, { dpopReplay: new RedisReplayStore(redis, prefix) });
      const b = await create({}, { dpopReplay: new RedisReplayStore(redis, prefix) });
      const t = await boundToken();
      const p = await proof(t);
      await a.authenticate(req(t, p));
      await refused(b, req(t, p), 'ERR_AUTH_DPOP_REPLAY');
      const keys = await redis.keys(`${prefix}*`);
      assert.equal(keys.length, 1);
      const ttl = await redis.pttl(keys[0]!);
      assert.ok(ttl > 0 && ttl <= 120_000, `ttl ${ttl} ms: maxAge 60 s + 2 x 30 s skew`);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
    const down = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    down.on('error', () => {});
    const c = await create({}, { dpopReplay: new RedisReplayStore(down, 'x:') });
    const t = await boundToken();
    await refused(c, req(t, await proof(t)), 'ERR_AUTH_DPOP_UNAVAILABLE');
    down.disconnect();
  });
});

describe('DPoP through the gateway and the client SDK', () => {
  it('serves a DPoP client, and refuses a stolen bound token sent as a bearer token', async () => {
    const f = await fixture();
    const base = f.config();
    // The proof names the gateway's origin, so the port is chosen before the gateway starts.
    const { gw } = await startGatewayOnFreePort((port) =>
      f.config({
        server: { ...base.server, port },
        auth: {
          ...base.auth,
          require: 'token',
          jwt: { ...base.auth.jwt!, dpop: { origins: [`https://127.0.0.1:${port}`] } },
        },
      }),
    );
    try {
      const dkey = await createDpopKey();
      const token = await f.token({ cnf: { jkt: dkey.jkt } });
      const client = new GatewayClient({
        url: gw.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token,
        dpop: dkey,
      });
      const body = JSON.stringify(v2Body(f.rows.slice(0, 1)));
      const ok = await client.request('POST', PATH, body);
      assert.equal(ok.status, 200, ok.body);
      const again = await client.request('POST', PATH, body);
      assert.equal(again.status, 200, 'a fresh proof per request');
      const thief = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token });
      const stolen = await thief.request('POST', PATH, body);
      assert.equal(stolen.status, 401);
      assert.equal(JSON.parse(stolen.body).code, 'ERR_AUTH_TOKEN_BINDING');
      assert.match(String(stolen.headers['www-authenticate']), /DPoP algs=/);
      // A replayed request (same proof) is refused with the DPoP error of §7.1.
      const p = await dpopProof(dkey, 'POST', `${gw.url}${PATH}`, token);
      const h = { authorization: `DPoP ${token}`, dpop: p };
      const raw = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
      assert.equal((await raw.request('POST', PATH, body, h)).status, 200);
      const replay = await raw.request('POST', PATH, body, h);
      assert.equal(replay.status, 401);
      assert.equal(JSON.parse(replay.body).code, 'ERR_AUTH_DPOP_REPLAY');
      assert.match(String(replay.headers['www-authenticate']), /DPoP error="invalid_dpop_proof"/);
      for (const x of [client, thief, raw]) x.close();
    } finally {
      await gw.close();
    }
  });
});
