import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { isBulwarkError } from '../../src/core/index.js';
import {
  Authenticator,
  certificateThumbprint,
  createDpopKey,
  dpopProof,
} from '../../src/gateway/auth/index.js';
import { type Ca, goodClaims, issuerKey, type Leaf, makeCa, makeLeaf, mint } from './auth-fixtures.js';

/**
 * Integration against a REAL OpenID provider (panva/oidc-provider 9) on 127.0.0.1 over TLS: the
 * client-credentials grant issues RFC 9068 JWT access tokens (resource indicators, accessTokenFormat
 * jwt), certificate-bound (RFC 8705) to the client's mTLS certificate; the gateway verifies them through
 * the remote JWKS path (jose createRemoteJWKSet) with nothing shared but the issuer URL.
 */

const RESOURCE = 'https://gateway.bulwark.test';
const TD = 'bulwark.example';
const CLIENT_SPIFFE = `spiffe://${TD}/ns/acme/sa/scorer`;
let ca: Ca;
let client: Leaf;
let issuer: string;
let idp: ReturnType<typeof createHttpsServer>;

/** fetch over node:https trusting the test CA (jose's customFetch hook). */
function caFetch(caPem: string): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    return await new Promise<Response>((resolve, reject) => {
      const r = httpsRequest(
        url,
        {
          method: init?.method ?? 'GET',
          ca: caPem,
          headers: Object.fromEntries(new Headers(init?.headers).entries()),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve(
              new Response(Buffer.concat(chunks), {
                status: res.statusCode ?? 500,
                headers: Object.entries(res.headers).flatMap(([k, v]) =>
                  v === undefined ? [] : (Array.isArray(v) ? v : [v]).map((x) => [k, x] as [string, string]),
                ),
              }),
            ),
          );
        },
      );
      r.on('error', reject);
      init?.signal?.addEventListener('abort', () => r.destroy(new Error('aborted')));
      r.end();
    });
  }) as typeof fetch;
}

/** The client-credentials grant over mTLS: POST /token with client_secret_basic and a resource indicator. */
function fetchToken(
  leaf: Leaf,
  scope: string,
  as: { client: string; secret: string; headers?: Record<string, string> } = {
    client: 'acme-scorer',
    secret: 'acme-scorer-secret-0123456789abcdef',
  },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    scope,
    resource: RESOURCE,
  }).toString();
  return new Promise((resolve, reject) => {
    const r = httpsRequest(
      `${issuer}/token`,
      {
        method: 'POST',
        ca: ca.pem,
        key: leaf.keyPem,
        cert: leaf.pem,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${as.client}:${as.secret}`).toString('base64')}`,
          ...as.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
        );
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

before(async () => {
  ca = await makeCa();
  client = await makeLeaf(ca, { uris: [CLIENT_SPIFFE] });
  const server = await makeLeaf(ca, {
    dns: ['localhost'],
    ips: ['127.0.0.1'],
    uris: [`spiffe://${TD}/ns/idp/sa/op`],
    serverAuth: true,
  });
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'op-es256-1', alg: 'ES256', use: 'sig' };

  idp = createHttpsServer({
    key: server.keyPem,
    cert: server.pem,
    ca: ca.pem,
    requestCert: true,
    rejectUnauthorized: false,
  });
  idp.listen(0, '127.0.0.1');
  await once(idp, 'listening');
  issuer = `https://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'acme-scorer',
        client_secret: 'acme-scorer-secret-0123456789abcdef',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        tls_client_certificate_bound_access_tokens: true,
        id_token_signed_response_alg: 'ES256',
      },
      {
        // RFC 9449 §5.2: every access token of this client is DPoP-bound.
        client_id: 'acme-dpop',
        client_secret: 'acme-dpop-secret-0123456789abcdef0123',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        dpop_bound_access_tokens: true,
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: [signing] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        // The IdP's own TLS layer verified the client certificate against the test CA.
        getCertificate: (ctx) => {
          const sock = ctx.socket as TLSSocket;
          return sock.authorized ? sock.getPeerX509Certificate()?.toString() : undefined;
        },
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== RESOURCE) throw new Error('unknown resource');
          return {
            scope: 'predict explain',
            audience: RESOURCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    ttl: { ClientCredentials: 300 },
    extraTokenClaims: () => ({ tenant: 'acme', roles: ['predictor'] }),
  });
  idp.on('request', provider.callback());
});

after(() => {
  idp.close();
  idp.closeAllConnections();
});

describe('a real OpenID provider (oidc-provider 9, client credentials, JWT access tokens)', () => {
  it('issues a certificate-bound at+jwt that the gateway verifies through the remote JWKS', async () => {
    const auth = await Authenticator.create(
      {
        require: 'certificate-and-token',
        mtls: { trustDomains: [TD] },
        jwt: {
          issuer,
          audience: RESOURCE,
          jwks: { url: `${issuer}/jwks` },
          algorithms: ['ES256'],
          certificateBinding: 'required',
        },
      },
      { fetch: caFetch(ca.pem) },
    );
    const { status, body } = await fetchToken(client, 'predict');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body['token_type'], 'Bearer');
    const token = body['access_token'] as string;
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.kid, 'op-es256-1');

    const p = await auth.authenticate({
      peerCertificate: client.cert,
      peerAuthorized: true,
      remoteAddress: '127.0.0.1',
      authorization: `Bearer ${token}`,
    });
    assert.equal(p.id, CLIENT_SPIFFE);
    assert.equal(p.issuer, issuer);
    assert.equal(p.clientId, 'acme-scorer');
    assert.equal(p.subject, 'acme-scorer');
    assert.equal(p.tenant, 'acme');
    assert.deepEqual(p.roles, ['predictor']);
    assert.deepEqual(p.scopes, ['predict']);
    assert.equal(p.certThumbprint, certificateThumbprint(client.cert));

    // The same token from a workload holding another certificate is refused (RFC 8705 §3).
    const thief = await makeLeaf(ca, { uris: [`spiffe://${TD}/ns/other/sa/thief`] });
    await assert.rejects(
      auth.authenticate({
        peerCertificate: thief.cert,
        peerAuthorized: true,
        remoteAddress: '127.0.0.1',
        authorization: `Bearer ${token}`,
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_TOKEN_BINDING'),
    );
    // A token the provider signed for another audience is refused.
    const wrongAud = await Authenticator.create(
      {
        jwt: {
          issuer,
          audience: 'https://other.bulwark.test',
          jwks: { url: `${issuer}/jwks` },
          algorithms: ['ES256'],
        },
      },
      { fetch: caFetch(ca.pem) },
    );
    await assert.rejects(
      wrongAud.authenticate({
        peerAuthorized: false,
        remoteAddress: '127.0.0.1',
        authorization: `Bearer ${token}`,
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_TOKEN_AUDIENCE'),
    );
  });
});

describe('DPoP (RFC 9449) with a real OpenID provider', () => {
  it('issues a DPoP-bound at+jwt (cnf.jkt) that the gateway accepts only with a proof of the same key', async () => {
    const gateway = 'https://gateway.bulwark.test:8443';
    const auth = await Authenticator.create(
      {
        require: 'token',
        jwt: {
          issuer,
          audience: RESOURCE,
          jwks: { url: `${issuer}/jwks` },
          algorithms: ['ES256'],
          dpop: { origins: [gateway], mode: 'required' },
        },
      },
      { fetch: caFetch(ca.pem) },
    );
    const key = await createDpopKey('EdDSA');
    const dpop = 'acme-dpop';
    const secret = 'acme-dpop-secret-0123456789abcdef0123';
    // Without a proof the provider refuses a client registered for DPoP-bound tokens.
    const refused = await fetchToken(client, 'predict', { client: dpop, secret });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    const { status, body } = await fetchToken(client, 'predict', {
      client: dpop,
      secret,
      headers: { dpop: await dpopProof(key, 'POST', `${issuer}/token`) },
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body['token_type'], 'DPoP');
    const token = body['access_token'] as string;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
    assert.deepEqual(claims.cnf, { jkt: key.jkt });

    const request = async (authorization: string, proof?: string) =>
      auth.authenticate({
        peerAuthorized: false,
        remoteAddress: '127.0.0.1',
        authorization,
        ...(proof === undefined ? {} : { dpop: proof }),
        method: 'POST',
        url: '/v2/models/fraud/infer',
      });
    const p = await request(
      `DPoP ${token}`,
      await dpopProof(key, 'POST', `${gateway}/v2/models/fraud/infer`, token),
    );
    assert.deepEqual(p.sources, ['token', 'dpop']);
    assert.equal(p.clientId, dpop);
    await assert.rejects(
      request(`Bearer ${token}`),
      (e: unknown) => isBulwarkError(e) && e.code === 'ERR_AUTH_TOKEN_BINDING',
    );
    const thief = await createDpopKey('ES256');
    await assert.rejects(
      request(`DPoP ${token}`, await dpopProof(thief, 'POST', `${gateway}/v2/models/fraud/infer`, token)),
      (e: unknown) => isBulwarkError(e) && e.code === 'ERR_AUTH_DPOP_INVALID' && /bound to/.test(e.message),
    );
  });
});

describe('remote JWKS: rotation, outage and recovery', () => {
  let jwksBody = '';
  let up = true;
  let fetches = 0;
  let srv: Server;
  let url = '';

  before(async () => {
    srv = createHttpServer((_req, res) => {
      fetches++;
      if (!up) {
        res.statusCode = 503;
        res.end('down');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(jwksBody);
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/jwks`;
  });
  after(() => srv.close());

  it('picks up a new signing key by kid, refuses while the issuer is down, recovers by itself', async () => {
    const k1 = await issuerKey('ES256', 'k1');
    const k2 = await issuerKey('ES256', 'k2');
    jwksBody = JSON.stringify({ keys: [k1.publicJwk] });
    const ISS = 'https://issuer.bulwark.test';
    const now = Math.floor(Date.now() / 1000);
    const claims = (jti: string) => goodClaims({ iss: ISS, aud: RESOURCE, iat: now, exp: now + 300, jti });
    const auth = await Authenticator.create({
      jwt: { issuer: ISS, audience: RESOURCE, jwks: { url, cooldownMs: 0 } },
    });
    assert.equal(fetches, 1);
    const t1 = await mint(k1, claims('a'));
    await auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t1}` });
    // verification is cached: the same token again costs no fetch and no signature check
    await auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t1}` });
    assert.equal(auth.cachedTokens, 1);
    assert.equal(fetches, 1);

    // rotation: the issuer publishes k2; a token with the unknown kid triggers one refetch
    jwksBody = JSON.stringify({ keys: [k1.publicJwk, k2.publicJwk] });
    const t2 = await mint(k2, claims('b'));
    await auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t2}` });
    assert.equal(fetches, 2);

    // outage: a new kid cannot be resolved -> 503-class error, not a 401
    up = false;
    const k3 = await issuerKey('ES256', 'k3');
    const t3 = await mint(k3, claims('c'));
    await assert.rejects(
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t3}` }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_JWKS_UNAVAILABLE'),
    );
    await assert.rejects(auth.reload(), (e: unknown) => isBulwarkError(e, 'ERR_AUTH_JWKS_UNAVAILABLE'));

    // recovery: the issuer is back with k3
    up = true;
    jwksBody = JSON.stringify({ keys: [k2.publicJwk, k3.publicJwk] });
    const p = await auth.authenticate({
      peerAuthorized: false,
      remoteAddress: '::1',
      authorization: `Bearer ${t3}`,
    });
    assert.equal(p.tenant, 'acme');
    // k1 was withdrawn: after a reload its cached token no longer passes
    await auth.reload();
    await assert.rejects(
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t1}` }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_TOKEN_KEY_UNKNOWN'),
    );
  });

  it('a key the issuer withdraws stops its cached tokens at the next refetch, not at their exp', async () => {
    const ka = await issuerKey('ES256', 'wa');
    const kb = await issuerKey('ES256', 'wb');
    const kc = await issuerKey('ES256', 'wc');
    up = true;
    jwksBody = JSON.stringify({ keys: [ka.publicJwk, kb.publicJwk] });
    const ISS = 'https://issuer.bulwark.test';
    const now = Math.floor(Date.now() / 1000);
    const claims = (jti: string) => goodClaims({ iss: ISS, aud: RESOURCE, iat: now, exp: now + 300, jti });
    const auth = await Authenticator.create({
      jwt: { issuer: ISS, audience: RESOURCE, jwks: { url, cooldownMs: 0, cacheMaxAgeMs: 1000 } },
    });
    const call = (t: string) =>
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t}` });
    const ta = await mint(ka, claims('wa'));
    const tb = await mint(kb, claims('wb'));
    await call(ta);
    await call(tb);
    const f0 = fetches;
    await call(ta);
    await call(tb);
    assert.equal(fetches, f0, 'cached tokens cost no fetch while the key set is fresh');
    // The issuer withdraws key a and publishes c; a token under c makes jose refetch on its own.
    jwksBody = JSON.stringify({ keys: [kb.publicJwk, kc.publicJwk] });
    await call(await mint(kc, claims('wc')));
    assert.equal(fetches, f0 + 1);
    await assert.rejects(call(ta), (e: unknown) => isBulwarkError(e, 'ERR_AUTH_TOKEN_KEY_UNKNOWN'));
    assert.equal((await call(tb)).tenant, 'acme');
    // Once the set is older than cacheMaxAgeMs, a cached token waits for a refetch: with the issuer
    // down it is refused as a new token would be, and served again when the issuer answers.
    await new Promise((r) => setTimeout(r, 1100));
    up = false;
    await assert.rejects(call(tb), (e: unknown) => isBulwarkError(e, 'ERR_AUTH_JWKS_UNAVAILABLE'));
    up = true;
    assert.equal((await call(tb)).tenant, 'acme');
  });

  it('starts while the issuer is down and serves once it answers', async () => {
    up = false;
    const k = await issuerKey('ES256', 'late');
    jwksBody = JSON.stringify({ keys: [k.publicJwk] });
    const ISS = 'https://issuer.bulwark.test';
    const auth = await Authenticator.create({
      jwt: { issuer: ISS, audience: RESOURCE, jwks: { url, cooldownMs: 0 } },
    });
    const now = Math.floor(Date.now() / 1000);
    const t = await mint(k, goodClaims({ iss: ISS, aud: RESOURCE, iat: now, exp: now + 300 }));
    await assert.rejects(
      auth.authenticate({ peerAuthorized: false, remoteAddress: '::1', authorization: `Bearer ${t}` }),
      (e: unknown) => isBulwarkError(e, 'ERR_AUTH_JWKS_UNAVAILABLE'),
    );
    up = true;
    const p = await auth.authenticate({
      peerAuthorized: false,
      remoteAddress: '::1',
      authorization: `Bearer ${t}`,
    });
    assert.equal(p.subject, 'client-acme');
  });
});
