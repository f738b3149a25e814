/**
 * Offline certificate revocation lists (RFC 5280 §6.3) for client certificates: `server.tls.clientCrl`
 * handed to Node's TLS (a revoked certificate fails the handshake) and re-checked per request, and
 * `auth.mtls.crlFile` for certificates forwarded by a trusted proxy. Certificates and CRLs are made at
 * test time (auth-fixtures.ts) and served over real HTTPS by a started gateway. CRL windows are placed an
 * hour or more away from now, so no assertion depends on the clock; the forwarded path's expiry is tested
 * with an injected clock.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { isBulwarkError } from '../../src/core/index.js';
import { Authenticator, RevocationLists } from '../../src/gateway/auth/index.js';
import { type GatewayConfig, gatewayConfig } from '../../src/gateway/config.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Ca, type Leaf, makeCa, makeCrl, makeIntermediate, makeLeaf, xfcc } from './auth-fixtures.js';
import { CLIENT_ID, type Fixture, fixture, startGateway, TRUST_DOMAIN } from './gateway-fixtures.js';

const PROXY_ID = `spiffe://${TRUST_DOMAIN}/ns/edge/sa/envoy`;
const HOUR = 3_600_000;

function codeOf(code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(isBulwarkError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

interface Answer {
  status: number;
  code: string;
  /** The request went over a connection opened for an earlier one. */
  reused: boolean;
}

describe('certificate revocation lists', () => {
  let f: Fixture;
  /** Clients of the fixture CA: `revoked` is on the CRLs below, `good` never is. */
  let good: Leaf;
  let revoked: Leaf;
  let proxy: Leaf;
  let n = 0;
  const opened: Gateway[] = [];
  const agents: https.Agent[] = [];

  /** Writes `text` to a new file of the fixture folder and returns its path. */
  const file = (text: string, ext = 'pem'): string => {
    const p = join(f.dir, `crl-test-${process.pid}-${n++}.${ext}`);
    writeFileSync(p, text);
    return p;
  };

  const gateway = async (config: GatewayConfig): Promise<Gateway> => {
    const gw = await startGateway(config);
    opened.push(gw);
    return gw;
  };

  /** The fixture config with `server.tls` changed and `auth` replaced when given. */
  const config = (tls: Record<string, unknown>, auth?: Record<string, unknown>): GatewayConfig => {
    const base = f.config();
    return f.config({
      server: { ...base.server, tls: { ...(base.server.tls as object), ...tls } },
      ...(auth ? { auth: { ...base.auth, ...auth } } : {}),
    });
  };

  /** GET of the model's metadata: authenticated and authorised like a prediction, no body. */
  const get = (gw: Gateway, client: Leaf, o: { agent?: https.Agent; xfcc?: string } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const url = new URL(gw.url);
      const req = https.request(
        {
          host: url.hostname,
          port: Number(url.port),
          path: '/v2/models/fraud',
          servername: 'localhost',
          ca: f.ca.pem,
          cert: client.pem,
          key: client.keyPem,
          agent: o.agent ?? false,
          ...(o.xfcc ? { headers: { 'x-forwarded-client-cert': o.xfcc } } : {}),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
          });
          res.on('end', () => {
            const code = res.statusCode === 200 ? 'OK' : (JSON.parse(body) as { code: string }).code;
            resolve({ status: res.statusCode ?? 0, code, reused: req.reusedSocket });
          });
        },
      );
      req.on('error', reject);
      req.end();
    });

  const keepAlive = (): https.Agent => {
    const a = new https.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(a);
    return a;
  };

  before(async () => {
    f = await fixture();
    good = await makeLeaf(f.ca, { uris: [CLIENT_ID] });
    revoked = await makeLeaf(f.ca, { uris: [`spiffe://${TRUST_DOMAIN}/ns/apps/sa/stolen`] });
    proxy = await makeLeaf(f.ca, { uris: [PROXY_ID] });
  });

  after(async () => {
    for (const a of agents) a.destroy();
    for (const g of opened) await g.close().catch(() => {});
  });

  describe('direct connections (server.tls.clientCrl, Node TLS)', () => {
    it('refuses a revoked client certificate at the TLS handshake and accepts one that is not revoked', async () => {
      const crl = file(await makeCrl(f.ca, [revoked]));
      const gw = await gateway(config({ clientAuth: 'require', clientCrl: crl }));
      assert.deepEqual(await get(gw, good), { status: 200, code: 'OK', reused: false });
      // With clientAuth require, Node ends the connection after the handshake: no HTTP answer at all.
      await assert.rejects(get(gw, revoked));
      assert.deepEqual(await get(gw, good), { status: 200, code: 'OK', reused: false });
    });

    it('with clientAuth request, answers a revoked certificate 401 ERR_AUTH_CERT_REVOKED', async () => {
      const gw = await gateway(
        config({ clientAuth: 'request', clientCrl: file(await makeCrl(f.ca, [revoked])) }),
      );
      assert.deepEqual(await get(gw, revoked), { status: 401, code: 'ERR_AUTH_CERT_REVOKED', reused: false });
      assert.equal((await get(gw, good)).status, 200);
    });

    it('reload picks up a newly revoked certificate without a restart: new connections fail the handshake, kept-alive ones get 401', async () => {
      const crl = file(await makeCrl(f.ca, []));
      const logs: string[] = [];
      const gw = await startGateway(config({ clientAuth: 'require', clientCrl: crl }), {
        logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }),
      });
      opened.push(gw);
      const agent = keepAlive();
      assert.deepEqual(await get(gw, revoked, { agent }), { status: 200, code: 'OK', reused: false });
      writeFileSync(crl, await makeCrl(f.ca, [revoked]));
      await gw.reload();
      // The connection opened before the reload: TLS does not look again, the per-request check does.
      assert.deepEqual(await get(gw, revoked, { agent }), {
        status: 401,
        code: 'ERR_AUTH_CERT_REVOKED',
        reused: true,
      });
      await assert.rejects(get(gw, revoked));
      assert.equal((await get(gw, good)).status, 200);
      // A CRL that does not load (here: forged) leaves the previous one in service.
      const other = await makeCa('Forger');
      writeFileSync(crl, await makeCrl(f.ca, [], { signingKey: other.keys.privateKey }));
      await gw.reload();
      await assert.rejects(get(gw, revoked));
      assert.equal((await get(gw, good)).status, 200);
      // The log says which file failed and why, not only the code.
      const failed = logs.map((l) => JSON.parse(l)).find((l) => /^TLS reload failed/.test(l.msg));
      assert.equal(failed?.code, 'ERR_GATEWAY_TLS');
      assert.match(String(failed?.reason), /^server\.tls\.clientCrl: /);
    });

    it('checks a chain through an intermediate CA of the bundle: the leaf against the intermediate CRL, the intermediate against the root CRL', async () => {
      const inter = await makeIntermediate(f.ca);
      const leaf = await makeLeaf(inter, { uris: [CLIENT_ID] });
      const stolen = await makeLeaf(inter, { uris: [`spiffe://${TRUST_DOMAIN}/ns/apps/sa/stolen`] });
      const bundle = file(`${f.ca.pem}\n${inter.pem}\n`);
      const crl = file((await makeCrl(f.ca, [])) + (await makeCrl(inter, [stolen])));
      const gw = await gateway(config({ clientAuth: 'request', clientCa: bundle, clientCrl: crl }));
      const agent = keepAlive();
      assert.deepEqual(await get(gw, leaf, { agent }), { status: 200, code: 'OK', reused: false });
      assert.equal((await get(gw, stolen)).code, 'ERR_AUTH_CERT_REVOKED');
      const strict = await gateway(config({ clientAuth: 'require', clientCa: bundle, clientCrl: crl }));
      assert.equal((await get(strict, leaf)).status, 200);
      await assert.rejects(get(strict, stolen));
      // The root revokes the intermediate: every leaf under it, kept-alive connection included.
      writeFileSync(crl, (await makeCrl(f.ca, [inter])) + (await makeCrl(inter, [stolen])));
      await gw.reload();
      assert.deepEqual(await get(gw, leaf, { agent }), {
        status: 401,
        code: 'ERR_AUTH_CERT_REVOKED',
        reused: true,
      });
      assert.equal((await get(gw, leaf)).code, 'ERR_AUTH_CERT_REVOKED');
    });

    it('a CA withdrawn from clientCa (with its CRL) by a reload is refused on kept-alive connections too', async () => {
      const other = await makeCa('Withdrawn CA');
      const client = await makeLeaf(other, { uris: [CLIENT_ID] });
      const bundle = file(`${f.ca.pem}\n${other.pem}\n`);
      const crl = file((await makeCrl(f.ca, [])) + (await makeCrl(other, [])));
      const gw = await gateway(config({ clientAuth: 'require', clientCa: bundle, clientCrl: crl }));
      const agent = keepAlive();
      assert.equal((await get(gw, client, { agent })).status, 200);
      writeFileSync(bundle, `${f.ca.pem}\n`);
      writeFileSync(crl, await makeCrl(f.ca, []));
      await gw.reload();
      assert.deepEqual(await get(gw, client, { agent }), {
        status: 401,
        code: 'ERR_AUTH_CERT_INVALID',
        reused: true,
      });
      await assert.rejects(get(gw, client));
      assert.equal((await get(gw, good)).status, 200);
    });

    it('with server.tls.watch, a new CRL written to the file is picked up without a signal', async () => {
      const crl = file(await makeCrl(f.ca, []));
      const gw = await gateway(config({ clientAuth: 'request', clientCrl: crl, watch: true }));
      assert.equal((await get(gw, revoked)).status, 200);
      writeFileSync(crl, await makeCrl(f.ca, [revoked]));
      // The watcher reloads in the background (after a 200 ms debounce): poll, no fixed sleep.
      const end = Date.now() + 20_000;
      let code = (await get(gw, revoked)).code;
      while (code !== 'ERR_AUTH_CERT_REVOKED' && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 100));
        code = (await get(gw, revoked)).code;
      }
      assert.equal(code, 'ERR_AUTH_CERT_REVOKED');
      assert.equal((await get(gw, good)).status, 200);
    });

    it('refuses every client of a CA whose CRL is past its nextUpdate: no handshake with require, 503 ERR_AUTH_CRL_EXPIRED with request', async () => {
      const stale = file(
        await makeCrl(f.ca, [], {
          thisUpdate: new Date(Date.now() - 2 * HOUR),
          nextUpdate: new Date(Date.now() - HOUR),
        }),
      );
      const strict = await gateway(config({ clientAuth: 'require', clientCrl: stale }));
      await assert.rejects(get(strict, good));
      const lax = await gateway(config({ clientAuth: 'request', clientCrl: stale }));
      assert.deepEqual(await get(lax, good), { status: 503, code: 'ERR_AUTH_CRL_EXPIRED', reused: false });
      const early = file(await makeCrl(f.ca, [], { thisUpdate: new Date(Date.now() + HOUR) }));
      const future = await gateway(config({ clientAuth: 'request', clientCrl: early }));
      assert.deepEqual(await get(future, good), { status: 503, code: 'ERR_AUTH_CRL_EXPIRED', reused: false });
    });

    it('refuses at start, naming server.tls.clientCrl, a CRL whose signature does not verify with its CA', async () => {
      const other = await makeCa('Forger');
      const forged = file(await makeCrl(f.ca, [], { signingKey: other.keys.privateKey }));
      await assert.rejects(
        startGateway(config({ clientAuth: 'require', clientCrl: forged })),
        codeOf(
          'ERR_GATEWAY_TLS',
          /^server\.tls\.clientCrl: .*the signature does not verify with the key of the CA CN=Bulwark Test CA/,
        ),
      );
    });

    it('config: clientCrl needs clientCa', () => {
      const base = f.config();
      const { clientCa: _ca, ...tls } = base.server.tls as Record<string, unknown>;
      assert.throws(
        () =>
          gatewayConfig({
            ...base,
            server: { ...base.server, tls: { ...tls, clientAuth: 'none', clientCrl: 'crl.pem' } },
          }),
        codeOf('ERR_CONFIG_INVALID', /server\.tls\.clientCrl: clientCrl needs clientCa/),
      );
    });
  });

  describe('forwarded certificates (auth.mtls.crlFile)', () => {
    /** The fixture's auth section with a trusted Envoy and the CA bundle and CRLs of forwarded certificates. */
    const forwardedAuth = (crlFile: string) => ({
      mtls: {
        trustDomains: [TRUST_DOMAIN],
        identities: [
          { spiffeId: `spiffe://${TRUST_DOMAIN}/ns/apps/*`, tenant: 'acme', roles: ['predictor'] },
        ],
        caFile: join(f.dir, 'ca.pem'),
        crlFile,
      },
      trustedProxies: [{ spiffeId: PROXY_ID, format: 'xfcc' as const }],
    });

    it('refuses a revoked forwarded certificate with 401 ERR_AUTH_CERT_REVOKED and accepts one that is not revoked', async () => {
      const gw = await gateway(
        config({ clientAuth: 'require' }, forwardedAuth(file(await makeCrl(f.ca, [revoked])))),
      );
      assert.deepEqual(await get(gw, proxy, { xfcc: xfcc(good) }), {
        status: 200,
        code: 'OK',
        reused: false,
      });
      assert.deepEqual(await get(gw, proxy, { xfcc: xfcc(revoked) }), {
        status: 401,
        code: 'ERR_AUTH_CERT_REVOKED',
        reused: false,
      });
    });

    it('reload picks up a newly revoked forwarded certificate; a CRL that does not load keeps the previous one', async () => {
      const crl = file(await makeCrl(f.ca, []));
      const gw = await gateway(config({ clientAuth: 'require' }, forwardedAuth(crl)));
      const agent = keepAlive();
      assert.equal((await get(gw, proxy, { agent, xfcc: xfcc(revoked) })).status, 200);
      writeFileSync(crl, await makeCrl(f.ca, [revoked]));
      await gw.reload();
      assert.deepEqual(await get(gw, proxy, { agent, xfcc: xfcc(revoked) }), {
        status: 401,
        code: 'ERR_AUTH_CERT_REVOKED',
        reused: true,
      });
      writeFileSync(crl, 'not a CRL');
      await gw.reload();
      assert.equal((await get(gw, proxy, { agent, xfcc: xfcc(revoked) })).code, 'ERR_AUTH_CERT_REVOKED');
      assert.equal((await get(gw, proxy, { agent, xfcc: xfcc(good) })).status, 200);
    });

    it('answers 503 ERR_AUTH_CRL_EXPIRED past the CRL nextUpdate (and before its thisUpdate), as the TLS path does', async () => {
      // Inside the certificates' validity (an hour before now to a day after), a minute past each edge:
      // CRL times have a precision of one second.
      const thisUpdate = new Date(Date.now() - HOUR / 2);
      const nextUpdate = new Date(Date.now() + HOUR);
      const crlFile = file(await makeCrl(f.ca, [revoked], { thisUpdate, nextUpdate }));
      let now = thisUpdate.getTime() + 60_000;
      const auth = await Authenticator.create(
        { require: 'certificate', ...forwardedAuth(crlFile) },
        { now: () => now },
      );
      const req = (leaf: Leaf) => ({
        peerCertificate: proxy.cert,
        peerAuthorized: true,
        remoteAddress: '127.0.0.1',
        forwardedClientCert: xfcc(leaf),
      });
      assert.equal((await auth.authenticate(req(good))).spiffeId, CLIENT_ID);
      await assert.rejects(auth.authenticate(req(revoked)), codeOf('ERR_AUTH_CERT_REVOKED'));
      now = nextUpdate.getTime() + 60_000;
      await assert.rejects(auth.authenticate(req(good)), codeOf('ERR_AUTH_CRL_EXPIRED', /nextUpdate/));
      // Out of date first, as OpenSSL reports it: the revoked certificate gets the same answer.
      await assert.rejects(auth.authenticate(req(revoked)), codeOf('ERR_AUTH_CRL_EXPIRED'));
      now = thisUpdate.getTime() - 60_000;
      await assert.rejects(auth.authenticate(req(good)), codeOf('ERR_AUTH_CRL_EXPIRED', /not yet valid/));
      // Over HTTP: a CRL already out of date gives 503, never an allow.
      const stale = file(
        await makeCrl(f.ca, [], {
          thisUpdate: new Date(Date.now() - 2 * HOUR),
          nextUpdate: new Date(Date.now() - HOUR),
        }),
      );
      const gw = await gateway(config({ clientAuth: 'require' }, forwardedAuth(stale)));
      assert.deepEqual(await get(gw, proxy, { xfcc: xfcc(good) }), {
        status: 503,
        code: 'ERR_AUTH_CRL_EXPIRED',
        reused: false,
      });
    });

    it('refuses at load, naming auth.mtls.crlFile, a CRL whose signature does not verify with its CA', async () => {
      const other = await makeCa('Forger');
      const forged = file(await makeCrl(f.ca, [revoked], { signingKey: other.keys.privateKey }));
      await assert.rejects(
        Authenticator.create({ require: 'certificate', ...forwardedAuth(forged) }),
        codeOf(
          'ERR_CONFIG_INVALID',
          /^auth\.mtls\.crlFile: .*the signature does not verify with the key of the CA/,
        ),
      );
      await assert.rejects(
        startGateway(config({ clientAuth: 'require' }, forwardedAuth(forged))),
        codeOf('ERR_CONFIG_INVALID', /^auth\.mtls\.crlFile: /),
      );
    });

    it('config: crlFile needs caFile', async () => {
      await assert.rejects(
        Authenticator.create({
          require: 'certificate',
          mtls: { trustDomains: [TRUST_DOMAIN], crlFile: 'crl.pem' },
        }),
        codeOf('ERR_CONFIG_INVALID', /mtls\.crlFile: needs mtls\.caFile/),
      );
    });
  });

  describe('loading (RevocationLists.load, shared by both paths)', () => {
    let other: Ca;
    before(async () => {
      other = await makeCa('Other CA');
    });
    const load = (text: string, cas = [f.ca.pem]) =>
      RevocationLists.load(
        file(text),
        cas.map((p) => new X509Certificate(p)),
        { key: 'test.crl', code: 'ERR_CONFIG_INVALID' },
      );

    it('accepts one CRL per CA and reports the revoked serials', async () => {
      const lists = await load((await makeCrl(f.ca, [revoked])) + (await makeCrl(other, [])), [
        f.ca.pem,
        other.pem,
      ]);
      assert.equal(lists.pem.length, 2);
      const ca = new X509Certificate(f.ca.pem);
      assert.equal(lists.status(revoked.cert, ca, Date.now()), 'CERT_REVOKED');
      assert.equal(lists.status(good.cert, ca, Date.now()), 'good');
    });

    it('refuses each CRL it cannot use, naming the key', async () => {
      const cases: [string, string, RegExp, string[]?][] = [
        [
          'issuer outside the bundle',
          await makeCrl(other, []),
          /issued by CN=Other CA, which is not a CA of the bundle/,
        ],
        ['no nextUpdate', await makeCrl(f.ca, [], { nextUpdate: null }), /has no nextUpdate/],
        [
          'a critical extension (delta CRL indicator)',
          await makeCrl(f.ca, [], {
            extensions: [new x509.Extension('2.5.29.27', true, new Uint8Array([2, 1, 1]))],
          }),
          /critical extensions \(2\.5\.29\.27\)/,
        ],
        [
          'two CRLs of one CA',
          (await makeCrl(f.ca, [])) + (await makeCrl(f.ca, [revoked])),
          /two CRLs of the CA/,
        ],
        [
          'a CA of the bundle without a CRL',
          await makeCrl(f.ca, []),
          /no CRL for the CA CN=Other CA/,
          [f.ca.pem, other.pem],
        ],
        ['another PEM label', (await makeCrl(f.ca, [])).replaceAll('X509 CRL', 'CRL'), /PEM "CRL" block/],
        ['no CRL at all', '\n', /no X509 CRL block/],
        ['not DER', '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n', /CRL 1 cannot be parsed/],
        [
          'a PEM header inside a block',
          (await makeCrl(f.ca, [])).replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\n\n'),
          /CRL 1 is not plain base64/,
        ],
        [
          'a block without its END line',
          `${await makeCrl(f.ca, [])}-----BEGIN X509 CRL-----\nAAAA\n`,
          /an X509 CRL block has no END line/,
        ],
      ];
      for (const [what, text, message, cas] of cases)
        await assert.rejects(
          load(text, cas),
          codeOf('ERR_CONFIG_INVALID', new RegExp(`^test\\.crl: .*${message.source}`)),
          what,
        );
    });

    it('refuses a CRL of a CA whose key usage does not allow CRL signing (RFC 5280 §6.3.3 (f))', async () => {
      const noCrlSign = await makeCa('No CRL Sign CA', x509.KeyUsageFlags.keyCertSign);
      await assert.rejects(
        load(await makeCrl(noCrlSign, []), [noCrlSign.pem]),
        codeOf('ERR_CONFIG_INVALID', /without cRLSign/),
      );
    });

    it('Node TLS itself refuses a client of a CA with no CRL once any CRL is set (why the loader requires one per CA)', async () => {
      const otherClient = await makeLeaf(other, { uris: [CLIENT_ID] });
      const server = https.createServer(
        {
          key: f.server.keyPem,
          cert: f.server.pem,
          ca: [f.ca.pem, other.pem],
          crl: await makeCrl(f.ca, []),
          requestCert: true,
          rejectUnauthorized: false,
        },
        (req, res) => res.end(String((req.socket as TLSSocket).authorizationError ?? 'authorized')),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const port = (server.address() as AddressInfo).port;
        const reason = (client: Leaf) =>
          new Promise<string>((resolve, reject) => {
            https
              .get(
                {
                  host: '127.0.0.1',
                  port,
                  servername: 'localhost',
                  ca: f.ca.pem,
                  cert: client.pem,
                  key: client.keyPem,
                  agent: false,
                },
                (res) => {
                  let b = '';
                  res.on('data', (d) => {
                    b += String(d);
                  });
                  res.on('end', () => resolve(b));
                },
              )
              .on('error', reject);
          });
        assert.equal(await reason(good), 'authorized');
        assert.equal(await reason(otherClient), 'UNABLE_TO_GET_CRL');
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    });

    it('validates its parameters', async () => {
      await assert.rejects(
        RevocationLists.load('', [], { key: 'k', code: 'ERR_CONFIG_INVALID' }),
        codeOf('ERR_INVALID_ARGUMENT', /^file: /),
      );
      await assert.rejects(
        RevocationLists.load('x.pem', [], { key: 'k', code: 'ERR_CONFIG_INVALID' }),
        codeOf('ERR_INVALID_ARGUMENT', /^cas: /),
      );
    });
  });
});
