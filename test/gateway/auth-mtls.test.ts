import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { isBulwarkError } from '../../src/core/index.js';
import {
  Authenticator,
  type AuthRequest,
  certificateThumbprint,
  type Principal,
  spiffeIdFromCertificate,
} from '../../src/gateway/auth/index.js';
import {
  AUDIENCE,
  type Ca,
  goodClaims,
  ISSUER,
  type IssuerKeys,
  issuerKey,
  type Leaf,
  makeCa,
  makeLeaf,
  mint,
  xfcc,
} from './auth-fixtures.js';

const TD = 'bulwark.example';
const CLIENT_ID = `spiffe://${TD}/ns/fraud/sa/scorer`;
const PROXY_ID = `spiffe://${TD}/ns/edge/sa/envoy`;
const PEM_PROXY_ID = `spiffe://${TD}/ns/edge/sa/nginx`;
const dir = mkdtempSync(join(tmpdir(), 'bulwark-auth-mtls-'));
let ca: Ca;
let otherCa: Ca;
let client: Leaf;
let proxy: Leaf;
let pemProxy: Leaf;
let key: IssuerKeys;
let auth: Authenticator;

function codeOf(code: string) {
  return (e: unknown) => {
    assert.ok(isBulwarkError(e), String(e));
    assert.equal(e.code, code, e.message);
    return true;
  };
}

function mtls(cert: Leaf, extra: Partial<AuthRequest> = {}): AuthRequest {
  return { peerCertificate: cert.cert, peerAuthorized: true, remoteAddress: '10.1.2.3', ...extra };
}

before(async () => {
  ca = await makeCa();
  otherCa = await makeCa('Other CA');
  client = await makeLeaf(ca, { uris: [CLIENT_ID] });
  proxy = await makeLeaf(ca, { uris: [PROXY_ID] });
  pemProxy = await makeLeaf(ca, { uris: [PEM_PROXY_ID] });
  key = await issuerKey('ES256', 'k1');
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [key.publicJwk] }));
  auth = await Authenticator.create(
    {
      require: 'either',
      mtls: {
        trustDomains: [TD],
        caFile: join(dir, 'ca.pem'),
        identities: [
          { spiffeId: `spiffe://${TD}/ns/fraud/*`, tenant: 'acme', roles: ['predictor'] },
          { spiffeId: `spiffe://${TD}/ns/monitoring/sa/prometheus`, roles: ['monitoring'] },
        ],
      },
      jwt: { issuer: ISSUER, audience: AUDIENCE, jwks: { file: join(dir, 'jwks.json') } },
      trustedProxies: [
        { spiffeId: PROXY_ID, format: 'xfcc' },
        { spiffeId: PEM_PROXY_ID, format: 'pem' },
      ],
    },
    { now: () => Date.now() },
  );
});

describe('SPIFFE X.509-SVID identity', () => {
  it('takes the identity from the single spiffe URI SAN and applies the identity rule', async () => {
    assert.equal(spiffeIdFromCertificate(client.cert), CLIENT_ID);
    const p = await auth.authenticate(mtls(client));
    assert.equal(p.id, CLIENT_ID);
    assert.equal(p.spiffeId, CLIENT_ID);
    assert.equal(p.tenant, 'acme');
    assert.deepEqual(p.roles, ['predictor']);
    assert.deepEqual(p.sources, ['mtls']);
    assert.equal(p.certThumbprint, certificateThumbprint(client.cert));
    assert.match(p.certThumbprint ?? '', /^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses certificates that are not valid SVIDs', async () => {
    const cases: [string, Parameters<typeof makeLeaf>[1]][] = [
      ['two URI SANs', { uris: [CLIENT_ID, `spiffe://${TD}/ns/other`] }],
      ['no URI SAN', { dns: ['scorer.bulwark.example'] }],
      ['an https URI', { uris: ['https://bulwark.example/scorer'] }],
      ['a CA certificate', { uris: [CLIENT_ID], ca: true }],
      [
        'keyCertSign usage',
        { uris: [CLIENT_ID], usages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign },
      ],
      ['no digitalSignature usage', { uris: [CLIENT_ID], usages: x509.KeyUsageFlags.keyEncipherment }],
      ['a dot-dot path segment', { uris: [`spiffe://${TD}/ns/../admin`] }],
      ['an upper-case trust domain', { uris: ['spiffe://Bulwark.Example/ns/x'] }],
      ['a port in the trust domain', { uris: [`spiffe://${TD}:8443/ns/x`] }],
      ['a trailing slash', { uris: [`spiffe://${TD}/ns/x/`] }],
      ['a query', { uris: [`spiffe://${TD}/ns/x?admin=1`] }],
    ];
    for (const [what, o] of cases) {
      const leaf = await makeLeaf(ca, o);
      await assert.rejects(auth.authenticate(mtls(leaf)), codeOf('ERR_AUTH_CERT_INVALID'), what);
    }
  });

  it('refuses a certificate that expired during a kept-alive connection', async () => {
    const later = await Authenticator.create(
      { require: 'certificate', mtls: { trustDomains: [TD] } },
      { now: () => Date.parse(client.cert.validTo) + 1000 },
    );
    await assert.rejects(later.authenticate(mtls(client)), codeOf('ERR_AUTH_CERT_INVALID'));
  });

  it('refuses a trust domain outside the allow-list', async () => {
    const leaf = await makeLeaf(ca, { uris: ['spiffe://evil.example/ns/fraud/sa/scorer'] });
    await assert.rejects(auth.authenticate(mtls(leaf)), codeOf('ERR_AUTH_TRUST_DOMAIN'));
  });

  it('refuses a certificate TLS did not verify', async () => {
    await assert.rejects(
      auth.authenticate(mtls(client, { peerAuthorized: false })),
      codeOf('ERR_AUTH_CERT_INVALID'),
    );
  });

  it('combines the certificate identity with the token claims', async () => {
    const t = await mint(
      key,
      goodClaims({
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 300,
        roles: ['explainer'],
      }),
    );
    const p = await auth.authenticate(mtls(client, { authorization: `Bearer ${t}` }));
    assert.equal(p.id, CLIENT_ID);
    assert.equal(p.subject, 'client-acme');
    assert.equal(p.tenant, 'acme');
    assert.deepEqual(p.roles, ['explainer', 'predictor']);
    assert.deepEqual(p.sources, ['mtls', 'token']);
  });

  it('refuses a token whose tenant contradicts the workload identity', async () => {
    const s = Math.floor(Date.now() / 1000);
    const t = await mint(key, goodClaims({ iat: s, exp: s + 300, tenant: 'globex', jti: 'conflict' }));
    await assert.rejects(
      auth.authenticate(mtls(client, { authorization: `Bearer ${t}` })),
      codeOf('ERR_AUTH_IDENTITY_CONFLICT'),
    );
  });
});

describe('forwarded client certificates', () => {
  it('accepts an XFCC certificate from the trusted proxy over mTLS, re-verified against the CA', async () => {
    const p = await auth.authenticate(mtls(proxy, { forwardedClientCert: xfcc(client) }));
    assert.equal(p.spiffeId, CLIENT_ID);
    assert.deepEqual(p.sources, ['forwarded-cert']);
    assert.equal(p.certThumbprint, certificateThumbprint(client.cert));
  });

  it('never honours a forwarded header from a plain connection or an ordinary client', async () => {
    await assert.rejects(
      auth.authenticate({
        peerAuthorized: false,
        remoteAddress: '10.0.0.9',
        forwardedClientCert: xfcc(client),
      }),
      codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
    );
    const mallory = await makeLeaf(ca, { uris: [`spiffe://${TD}/ns/fraud/sa/mallory`] });
    await assert.rejects(
      auth.authenticate(mtls(mallory, { forwardedClientCert: xfcc(client) })),
      codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
    );
  });

  it('refuses forwarded certificates that are forged, from another CA, multi-hop or mismatched', async () => {
    const foreign = await makeLeaf(otherCa, { uris: [CLIENT_ID] });
    for (const [what, header] of [
      ['another CA', xfcc(foreign)],
      ['Hash mismatch', xfcc(client, { hash: '00'.repeat(32) })],
      ['two hops', `${xfcc(client)},${xfcc(proxy)}`],
      ['no Cert', `By=${PROXY_ID};Hash=${'ab'.repeat(32)}`],
      ['garbage', 'Cert="%%%"'],
      ['unterminated quote', 'Cert="abc'],
    ] as const) {
      await assert.rejects(
        auth.authenticate(mtls(proxy, { forwardedClientCert: header })),
        codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
        what,
      );
    }
  });

  it('accepts a URL-encoded PEM from a proxy configured for it, and nothing else from that proxy', async () => {
    const p = await auth.authenticate(
      mtls(pemProxy, { forwardedClientCert: encodeURIComponent(client.pem) }),
    );
    assert.equal(p.spiffeId, CLIENT_ID);
    assert.deepEqual(p.sources, ['forwarded-cert']);
    for (const header of [xfcc(client), encodeURIComponent(client.pem + proxy.pem), 'not a certificate']) {
      await assert.rejects(
        auth.authenticate(mtls(pemProxy, { forwardedClientCert: header })),
        codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
      );
    }
  });

  it('reload re-reads the CA bundle: certificates of a withdrawn CA stop being accepted', async () => {
    const f = join(dir, 'ca-reload.pem');
    writeFileSync(f, ca.pem);
    const a = await Authenticator.create({
      require: 'certificate',
      mtls: { trustDomains: [TD], caFile: f },
      trustedProxies: [{ spiffeId: PROXY_ID, format: 'xfcc' }],
    });
    assert.equal(
      (await a.authenticate(mtls(proxy, { forwardedClientCert: xfcc(client) }))).spiffeId,
      CLIENT_ID,
    );
    writeFileSync(f, otherCa.pem);
    await a.reload();
    await assert.rejects(
      a.authenticate(mtls(proxy, { forwardedClientCert: xfcc(client) })),
      codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
    );
  });

  it('reload withdraws a CA even when the JWKS cannot be re-read at that moment', async () => {
    const f = join(dir, 'ca-reload-2.pem');
    const jwks = join(dir, 'jwks-reload-2.json');
    writeFileSync(f, `${otherCa.pem}${ca.pem}`);
    writeFileSync(jwks, JSON.stringify({ keys: [key.publicJwk] }));
    const a = await Authenticator.create({
      require: 'either',
      mtls: { trustDomains: [TD], caFile: f },
      jwt: { issuer: ISSUER, audience: AUDIENCE, jwks: { file: jwks } },
      trustedProxies: [{ spiffeId: PROXY_ID, format: 'xfcc' }],
    });
    // Issued now (this authenticator runs on the real clock; goodClaims' iat is T0, in the future).
    const iat = Math.floor(Date.now() / 1000);
    const token = await mint(key, goodClaims({ jti: 'reload-2', iat, exp: iat + 600 }));
    await a.authenticate({
      peerAuthorized: false,
      remoteAddress: '10.1.2.3',
      authorization: `Bearer ${token}`,
    });
    assert.equal(a.cachedTokens, 1);
    // The operator withdraws the CA that issued the client's certificate, while the JWKS is unreadable.
    writeFileSync(f, otherCa.pem);
    writeFileSync(jwks, 'not json');
    await assert.rejects(a.reload(), codeOf('ERR_AUTH_JWKS_INVALID'));
    await assert.rejects(
      a.authenticate(mtls(proxy, { forwardedClientCert: xfcc(client) })),
      codeOf('ERR_AUTH_FORWARDED_UNTRUSTED'),
    );
    // The token cache was emptied too; the previous key set stays in service.
    assert.equal(a.cachedTokens, 0);
  });

  it('does not treat the trusted proxy itself as the caller', async () => {
    await assert.rejects(auth.authenticate(mtls(proxy)), codeOf('ERR_AUTH_MISSING'));
  });
});

describe('RFC 8705 certificate-bound tokens', () => {
  const s = () => Math.floor(Date.now() / 1000);
  it('accepts a token bound to the presented certificate and refuses it with any other', async () => {
    const bound = await mint(
      key,
      goodClaims({
        iat: s(),
        exp: s() + 300,
        jti: 'bound',
        cnf: { 'x5t#S256': certificateThumbprint(client.cert) },
      }),
    );
    const p = await auth.authenticate(mtls(client, { authorization: `Bearer ${bound}` }));
    assert.equal(p.spiffeId, CLIENT_ID);
    const other = await makeLeaf(ca, { uris: [`spiffe://${TD}/ns/fraud/sa/other`] });
    await assert.rejects(
      auth.authenticate(mtls(other, { authorization: `Bearer ${bound}` })),
      codeOf('ERR_AUTH_TOKEN_BINDING'),
    );
    await assert.rejects(
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${bound}` }),
      codeOf('ERR_AUTH_TOKEN_BINDING'),
    );
    // through the trusted proxy the binding is to the forwarded client certificate
    const viaProxy = await auth.authenticate(
      mtls(proxy, { forwardedClientCert: xfcc(client), authorization: `Bearer ${bound}` }),
    );
    assert.equal(viaProxy.subject, 'client-acme');
  });

  it("a token bound to the trusted proxy's own certificate does not pass through the proxy", async () => {
    const toProxy = await mint(
      key,
      goodClaims({
        iat: s(),
        exp: s() + 300,
        jti: 'proxy-bound',
        cnf: { 'x5t#S256': certificateThumbprint(proxy.cert) },
      }),
    );
    await assert.rejects(
      auth.authenticate(mtls(proxy, { authorization: `Bearer ${toProxy}` })),
      codeOf('ERR_AUTH_TOKEN_BINDING'),
    );
  });

  it('binding without an mtls section uses the TLS-verified peer certificate', async () => {
    const tokenOnly = await Authenticator.create({
      jwt: { issuer: ISSUER, audience: AUDIENCE, jwks: { file: join(dir, 'jwks.json') } },
    });
    const bound = await mint(
      key,
      goodClaims({
        iat: s(),
        exp: s() + 300,
        jti: 'b3',
        cnf: { 'x5t#S256': certificateThumbprint(client.cert) },
      }),
    );
    const p = await tokenOnly.authenticate(mtls(client, { authorization: `Bearer ${bound}` }));
    assert.equal(p.spiffeId, undefined);
    assert.equal(p.subject, 'client-acme');
    await assert.rejects(
      tokenOnly.authenticate(mtls(proxy, { authorization: `Bearer ${bound}` })),
      codeOf('ERR_AUTH_TOKEN_BINDING'),
    );
  });

  it('certificateBinding: required refuses unbound tokens; certificate-and-token needs both', async () => {
    const strict = await Authenticator.create({
      require: 'certificate-and-token',
      mtls: { trustDomains: [TD] },
      jwt: {
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { file: join(dir, 'jwks.json') },
        certificateBinding: 'required',
      },
    });
    const unbound = await mint(key, goodClaims({ iat: s(), exp: s() + 300, jti: 'unbound' }));
    await assert.rejects(
      strict.authenticate(mtls(client, { authorization: `Bearer ${unbound}` })),
      codeOf('ERR_AUTH_TOKEN_BINDING'),
    );
    await assert.rejects(strict.authenticate(mtls(client)), codeOf('ERR_AUTH_MISSING'));
    const bound = await mint(
      key,
      goodClaims({
        iat: s(),
        exp: s() + 300,
        jti: 'b2',
        cnf: { 'x5t#S256': certificateThumbprint(client.cert) },
      }),
    );
    await assert.rejects(
      strict.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${bound}` }),
      codeOf('ERR_AUTH_MISSING'),
    );
    assert.equal(
      (await strict.authenticate(mtls(client, { authorization: `Bearer ${bound}` }))).id,
      CLIENT_ID,
    );
  });
});

describe('over a real TLS 1.3 mutual-TLS connection', () => {
  it('authenticates the peer certificate the TLS stack verified, and refuses an unverified one', async () => {
    const server = await makeLeaf(ca, {
      dns: ['localhost'],
      uris: [`spiffe://${TD}/ns/bulwark/sa/gateway`],
      serverAuth: true,
    });
    const seen: Principal[] = [];
    const errors: string[] = [];
    const srv = createServer(
      {
        key: server.keyPem,
        cert: server.pem,
        ca: ca.pem,
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
      },
      (req, res) => {
        const sock = req.socket as TLSSocket;
        const peer = sock.getPeerX509Certificate();
        auth
          .authenticate({
            ...(peer === undefined ? {} : { peerCertificate: peer }),
            peerAuthorized: sock.authorized,
            remoteAddress: sock.remoteAddress ?? '',
          })
          .then((p) => {
            seen.push(p);
            res.end('ok');
          })
          .catch((e: unknown) => {
            errors.push(isBulwarkError(e) ? e.code : String(e));
            res.statusCode = 401;
            res.end();
          });
      },
    );
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    const call = (leaf: Leaf) =>
      new Promise<number>((resolve, reject) => {
        const r = request(
          {
            host: '127.0.0.1',
            port,
            servername: 'localhost',
            path: '/',
            key: leaf.keyPem,
            cert: leaf.pem,
            ca: ca.pem,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        r.on('error', reject);
        r.end();
      });
    try {
      assert.equal(await call(client), 200);
      assert.equal(seen[0]?.spiffeId, CLIENT_ID);
      const foreign = await makeLeaf(otherCa, { uris: [CLIENT_ID] });
      assert.equal(await call(foreign), 401);
      assert.deepEqual(errors, ['ERR_AUTH_CERT_INVALID']);
    } finally {
      srv.close();
    }
  });
});
