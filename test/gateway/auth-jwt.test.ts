import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { exportSPKI } from 'jose';
import { isBulwarkError } from '../../src/core/index.js';
import { Authenticator, type AuthRequest } from '../../src/gateway/auth/index.js';
import {
  AUDIENCE,
  es256,
  forge,
  goodClaims,
  ISSUER,
  type IssuerKeys,
  issuerKey,
  mint,
  rs256,
  T0,
} from './auth-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-auth-jwt-'));
const jwksFile = join(dir, 'jwks.json');
let es: IssuerKeys;
let rs: IssuerKeys;
let attacker: IssuerKeys;
let clock = T0 * 1000;
let auth: Authenticator;

function req(token: string, extra: Partial<AuthRequest> = {}): AuthRequest {
  return { peerAuthorized: false, remoteAddress: '127.0.0.1', authorization: `Bearer ${token}`, ...extra };
}

async function rejects(token: string, code: string): Promise<void> {
  await assert.rejects(auth.authenticate(req(token)), (e: unknown) => {
    assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

before(async () => {
  es = await issuerKey('ES256', 'es-1');
  rs = await issuerKey('RS256', 'rs-1');
  attacker = await issuerKey('ES256', 'es-1'); // same kid as the real key: kid is only a lookup hint
  writeFileSync(jwksFile, JSON.stringify({ keys: [es.publicJwk, rs.publicJwk] }));
  auth = await Authenticator.create(
    {
      require: 'token',
      jwt: {
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { file: jwksFile },
        algorithms: ['ES256', 'RS256'],
        clockSkewSeconds: 30,
      },
    },
    { now: () => clock },
  );
});

describe('JWT access tokens: accepted', () => {
  it('a valid ES256 and RS256 at+jwt token gives the principal from its claims', async () => {
    for (const key of [es, rs]) {
      const p = await auth.authenticate(req(await mint(key)));
      assert.equal(p.id, `${ISSUER}|client-acme`);
      assert.equal(p.issuer, ISSUER);
      assert.equal(p.subject, 'client-acme');
      assert.equal(p.clientId, 'client-acme');
      assert.equal(p.tenant, 'acme');
      assert.deepEqual(p.roles, ['predictor']);
      assert.deepEqual(p.scopes, ['explain', 'predict']);
      assert.equal(p.expiresAt, T0 + 600);
      assert.deepEqual(p.sources, ['token']);
    }
  });

  it('accepts typ application/at+jwt (RFC 9068 §4) and a scheme in any case', async () => {
    const t = await mint(es, goodClaims({ jti: 'typ-2' }), { typ: 'application/at+jwt' });
    const p = await auth.authenticate({ ...req(t), authorization: `bEaReR ${t}` });
    assert.equal(p.tenant, 'acme');
  });

  it('accepts nbf and exp within the bounded clock skew', async () => {
    const t = await mint(es, goodClaims({ jti: 'skew', nbf: T0 + 20, exp: T0 - 10, iat: T0 - 100 }));
    assert.equal((await auth.authenticate(req(t))).expiresAt, T0 - 10);
  });
});

describe('JWT attack list: each refused with its code', () => {
  it('alg none (unsigned token)', async () => {
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(goodClaims())).toString('base64url')}.`;
    await rejects(none, 'ERR_AUTH_TOKEN_ALG');
    // also with the usual case variants some libraries accepted
    const noneCase = none.replace(
      /^[^.]+/,
      Buffer.from(JSON.stringify({ alg: 'None', typ: 'at+jwt' })).toString('base64url'),
    );
    await rejects(noneCase, 'ERR_AUTH_TOKEN_ALG');
  });

  it('HS256 signed with the RSA and the EC public key as the HMAC secret (key confusion)', async () => {
    for (const key of [rs, es]) {
      const pem = await exportSPKI(key.publicKey);
      const t = forge({ alg: 'HS256', typ: 'at+jwt', kid: key.kid }, goodClaims(), (input) =>
        createHmac('sha256', pem).update(input).digest(),
      );
      await rejects(t, 'ERR_AUTH_TOKEN_ALG');
    }
  });

  it('tampered payload (roles raised to admin after signing)', async () => {
    const t = await mint(es);
    const [h, , s] = t.split('.');
    const evil = Buffer.from(JSON.stringify(goodClaims({ roles: ['admin'] }))).toString('base64url');
    await rejects(`${h}.${evil}.${s}`, 'ERR_AUTH_TOKEN_SIGNATURE');
  });

  it('a token signed by another key under the real kid', async () => {
    await rejects(await mint(attacker, goodClaims({ jti: 'att' })), 'ERR_AUTH_TOKEN_SIGNATURE');
  });

  it('embedded jwk header carrying the attacker key', async () => {
    const t = forge(
      { alg: 'ES256', typ: 'at+jwt', jwk: attacker.publicJwk },
      goodClaims(),
      es256(attacker.privateKey),
    );
    await rejects(t, 'ERR_AUTH_TOKEN_HEADER');
  });

  it('attacker jku, x5u and x5c headers', async () => {
    for (const h of [
      { jku: 'https://attacker.example/jwks.json', kid: 'es-1' },
      { x5u: 'https://attacker.example/cert.pem' },
      { x5c: ['MIIBszCCAVmgAwIBAgIUQ'] },
    ]) {
      const t = forge({ alg: 'ES256', typ: 'at+jwt', ...h }, goodClaims(), es256(attacker.privateKey));
      await rejects(t, 'ERR_AUTH_TOKEN_HEADER');
    }
  });

  it('kid injection: path traversal, SQL and control characters', async () => {
    for (const kid of [
      '../../../../../../dev/null',
      "x' UNION SELECT 'secret' --",
      'es-1;rm -rf /',
      'es-1\u0000',
      '..',
      'a'.repeat(300),
    ]) {
      const t = forge({ alg: 'ES256', typ: 'at+jwt', kid }, goodClaims(), es256(es.privateKey));
      await rejects(t, 'ERR_AUTH_TOKEN_KID');
    }
    const numeric = forge({ alg: 'ES256', typ: 'at+jwt', kid: 7 }, goodClaims(), es256(es.privateKey));
    await rejects(numeric, 'ERR_AUTH_TOKEN_KID');
  });

  it('a well-formed kid that is not in the JWKS', async () => {
    await rejects(await mint({ ...attacker, kid: 'unknown-kid' }), 'ERR_AUTH_TOKEN_KEY_UNKNOWN');
  });

  it('all-zero ECDSA signature (psychic signatures, CVE-2022-21449)', async () => {
    const t = forge({ alg: 'ES256', typ: 'at+jwt', kid: 'es-1' }, goodClaims(), () => Buffer.alloc(64));
    await rejects(t, 'ERR_AUTH_TOKEN_SIGNATURE');
    // r = 0, s = 0 in a DER-ish or short form too
    const short = forge({ alg: 'ES256', typ: 'at+jwt', kid: 'es-1' }, goodClaims(), () => Buffer.alloc(8));
    await rejects(short, 'ERR_AUTH_TOKEN_SIGNATURE');
  });

  it('a valid signature of the wrong length or over other bytes', async () => {
    const t = await mint(es);
    const [h, p] = t.split('.');
    await rejects(`${h}.${p}.${Buffer.alloc(64, 1).toString('base64url')}`, 'ERR_AUTH_TOKEN_SIGNATURE');
  });

  it('unknown crit extension (validly signed)', async () => {
    const t = forge(
      {
        alg: 'ES256',
        typ: 'at+jwt',
        kid: 'es-1',
        crit: ['urn:example:must-understand'],
        'urn:example:must-understand': 1,
      },
      goodClaims(),
      es256(es.privateKey),
    );
    await rejects(t, 'ERR_AUTH_TOKEN_CRIT');
  });

  it('expired token (beyond the skew)', async () => {
    await rejects(await mint(es, goodClaims({ iat: T0 - 700, exp: T0 - 31 })), 'ERR_AUTH_TOKEN_EXPIRED');
  });

  it('nbf in the future (beyond the skew)', async () => {
    await rejects(await mint(es, goodClaims({ nbf: T0 + 31 })), 'ERR_AUTH_TOKEN_NOT_YET_VALID');
  });

  it('missing exp, and other RFC 9068 required claims', async () => {
    const { exp: _e, ...noExp } = goodClaims();
    await rejects(await mint(es, noExp), 'ERR_AUTH_TOKEN_CLAIM_MISSING');
    const { sub: _s, ...noSub } = goodClaims();
    await rejects(await mint(es, noSub), 'ERR_AUTH_TOKEN_CLAIM_MISSING');
    await rejects(await mint(es, goodClaims({ exp: 'tomorrow' })), 'ERR_AUTH_TOKEN_CLAIM_MISSING');
  });

  it('wrong aud, wrong iss', async () => {
    await rejects(await mint(es, goodClaims({ aud: 'https://other.example' })), 'ERR_AUTH_TOKEN_AUDIENCE');
    await rejects(await mint(es, goodClaims({ iss: 'https://evil.example' })), 'ERR_AUTH_TOKEN_ISSUER');
  });

  it('wrong or missing typ (an ID token or a plain JWT replayed as an access token)', async () => {
    await rejects(await mint(es, goodClaims(), { typ: 'JWT' }), 'ERR_AUTH_TOKEN_TYPE');
    const noTyp = forge({ alg: 'ES256', kid: 'es-1' }, goodClaims(), es256(es.privateKey));
    await rejects(noTyp, 'ERR_AUTH_TOKEN_TYPE');
  });

  it('an algorithm outside the allow-list even with a real key (RS256 key used for PS256)', async () => {
    const t = forge({ alg: 'PS256', typ: 'at+jwt', kid: 'rs-1' }, goodClaims(), rs256(rs.privateKey));
    await rejects(t, 'ERR_AUTH_TOKEN_ALG');
  });

  it('lifetime longer than the configured maximum', async () => {
    await rejects(await mint(es, goodClaims({ iat: T0, exp: T0 + 2 * 86_400 })), 'ERR_AUTH_TOKEN_LIFETIME');
  });

  it('malformed tokens and headers', async () => {
    for (const t of ['abc', 'a.b', 'a.b.c.d.e', `${'x'.repeat(9000)}.a.b`, '..', 'eyJ!.e.e']) {
      await rejects(t, 'ERR_AUTH_TOKEN_MALFORMED');
    }
    await assert.rejects(
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: 'Basic dXNlcjpwYXNz' }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_TOKEN_MALFORMED'),
    );
    await assert.rejects(auth.authenticate({ peerAuthorized: false, remoteAddress: '::1' }), (e: unknown) =>
      isBulwarkError(e, 'ERR_AUTH_MISSING'),
    );
  });
});

describe('verified-token cache', () => {
  it('serves a token until exp and never after, even from the cache', async () => {
    const t = await mint(es, goodClaims({ jti: 'cache-exp', exp: T0 + 100 }));
    const before = auth.cachedTokens;
    await auth.authenticate(req(t));
    assert.equal(auth.cachedTokens, before + 1);
    clock = (T0 + 99) * 1000;
    assert.equal((await auth.authenticate(req(t))).expiresAt, T0 + 100);
    clock = (T0 + 131) * 1000; // past exp + skew: the cached entry must not answer
    await rejects(t, 'ERR_AUTH_TOKEN_EXPIRED');
    clock = T0 * 1000;
  });

  it('is emptied by reload: a token signed by a withdrawn key stops working at once', async () => {
    const t = await mint(rs, goodClaims({ jti: 'rotated' }));
    await auth.authenticate(req(t));
    writeFileSync(jwksFile, JSON.stringify({ keys: [es.publicJwk] }));
    await auth.reload();
    assert.equal(auth.cachedTokens, 0);
    await rejects(t, 'ERR_AUTH_TOKEN_KEY_UNKNOWN');
    writeFileSync(jwksFile, JSON.stringify({ keys: [es.publicJwk, rs.publicJwk] }));
    await auth.reload();
    await auth.authenticate(req(t));
  });

  it('concurrent requests with one new token share a verification and all get the same answer', async () => {
    const good = await mint(es, goodClaims({ jti: 'burst' }));
    const ps = await Promise.all(Array.from({ length: 20 }, () => auth.authenticate(req(good))));
    assert.ok(ps.every((p) => p.tenant === 'acme'));
    const bad = await mint(attacker, goodClaims({ jti: 'burst-bad' }));
    const rs = await Promise.allSettled(Array.from({ length: 20 }, () => auth.authenticate(req(bad))));
    assert.ok(
      rs.every((r) => r.status === 'rejected' && isBulwarkError(r.reason, 'ERR_AUTH_TOKEN_SIGNATURE')),
    );
  });

  it('a failed verification is not cached (the next try verifies again)', async () => {
    const t = await mint(es, goodClaims({ jti: 'future', nbf: T0 + 60 }));
    await rejects(t, 'ERR_AUTH_TOKEN_NOT_YET_VALID');
    clock = (T0 + 60) * 1000;
    assert.equal((await auth.authenticate(req(t))).tenant, 'acme');
    clock = T0 * 1000;
  });
});

describe('configuration', () => {
  it('refuses symmetric and private keys in the JWKS, and a config with unknown keys', async () => {
    const f = join(dir, 'bad-jwks.json');
    writeFileSync(f, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }));
    const base = { issuer: ISSUER, audience: AUDIENCE, jwks: { file: f } };
    await assert.rejects(Authenticator.create({ jwt: base }), (e: unknown) =>
      isBulwarkError(e, 'ERR_AUTH_JWKS_INVALID'),
    );
    writeFileSync(f, JSON.stringify({ keys: [{ ...es.publicJwk, d: 'AAAA' }] }));
    await assert.rejects(Authenticator.create({ jwt: base }), (e: unknown) =>
      isBulwarkError(e, 'ERR_AUTH_JWKS_INVALID'),
    );
    await assert.rejects(
      Authenticator.create({ jwt: { ...base, algorithms: ['HS256'] } } as never),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /jwt\.algorithms/.test(e.message),
    );
    await assert.rejects(Authenticator.create({ jwt: { ...base, audiance: 'x' } } as never), (e: unknown) =>
      isBulwarkError(e, 'ERR_CONFIG_INVALID'),
    );
    await assert.rejects(
      Authenticator.create({ jwt: { ...base, clockSkewSeconds: 3600 } }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /clockSkewSeconds/.test(e.message),
    );
    await assert.rejects(
      Authenticator.create({ jwt: { ...base, jwks: { url: 'http://issuer.example/jwks' } } }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_JWKS_INVALID'),
    );
  });
});
