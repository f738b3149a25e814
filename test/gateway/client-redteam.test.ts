/**
 * Red-team review of `bulwark/client` as a hostile or compromised server, or a careless caller, would
 * attack it. Every case talks to a real local HTTPS server with certificates from a test CA (no mock of
 * the client): header injection through the token, endless and oversized answers, compressed answers,
 * hostile JSON (`__proto__`, `1e999`, wrong shapes), error bodies that are `null` or forge log lines,
 * redirects to another host, a certificate without its key, URLs with a path or credentials, and model
 * names that would leave /v2/models/.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { GatewayClient, type GatewayClientOptions, GatewayError } from '../../src/gateway/client.js';
import { type Ca, type Leaf, makeCa, makeLeaf } from './auth-fixtures.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  /** SHA-256 fingerprint of the client certificate the TLS handshake presented, or ''. */
  cert: string;
}

/** A real HTTPS server (test CA certificate for localhost) asking for, but not requiring, a client certificate. */
async function hostile(ca: Ca, leaf: Leaf) {
  const seen: Seen[] = [];
  let handler: Handler = (_q, s) => s.end('{}');
  const server = https.createServer(
    { cert: leaf.pem, key: leaf.keyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({ url: req.url ?? '', headers: req.headers, cert: peer?.fingerprint256 ?? '' });
      req.resume();
      handler(req, res);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    seen,
    url: `https://127.0.0.1:${port}`,
    set(h: Handler) {
      handler = h;
      seen.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const json =
  (body: string, status = 200, headers: Record<string, string> = {}): Handler =>
  (_q, s) => {
    s.writeHead(status, { 'content-type': 'application/json', ...headers });
    s.end(body);
  };

const isCode = (code: string, status?: number) => (e: unknown) =>
  e instanceof GatewayError && e.code === code && (status === undefined || e.status === status);

const GOOD = {
  model_name: 'm',
  id: '1',
  outputs: [{ name: 'p', shape: [1, 2], datatype: 'FP32', data: [0.25, 0.75] }],
};

describe('bulwark/client red team', () => {
  let ca: Ca;
  let srv: Awaited<ReturnType<typeof hostile>>;
  let other: Awaited<ReturnType<typeof hostile>>;
  let clientA: Leaf;
  let clientB: Leaf;
  const opts = (o: Partial<GatewayClientOptions> = {}): GatewayClientOptions => ({
    url: srv.url,
    ca: ca.pem,
    servername: 'localhost',
    ...o,
  });

  before(async () => {
    ca = await makeCa();
    const leaf = await makeLeaf(ca, { dns: ['localhost'], serverAuth: true });
    srv = await hostile(ca, leaf);
    other = await hostile(ca, leaf);
    clientA = await makeLeaf(ca, { uris: ['spiffe://bulwark.example/ns/a/sa/one'] });
    clientB = await makeLeaf(ca, { uris: ['spiffe://bulwark.example/ns/b/sa/two'] });
  });
  after(async () => {
    await srv?.close();
    await other?.close();
  });

  it('a token with a CR/LF is refused by name, never echoed, and does not end the process later', async () => {
    srv.set(json('{}'));
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    // node:test reports an uncaught exception against the running test; listen first so it is counted here.
    process.prependListener('uncaughtException', onUncaught);
    try {
      const secret = 'eyJhbGciOi.secret-part.sig';
      // A token file read with its trailing newline, a token source returning a header injection, and a
      // caller header with one: all refused before anything is sent.
      assert.throws(
        () => new GatewayClient(opts({ token: `${secret}\n` })),
        (e: unknown) =>
          e instanceof TypeError && e.message.startsWith('token: ') && !e.message.includes(secret),
      );
      const c = new GatewayClient(opts({ token: () => `${secret}\r\nX-Evil: 1`, timeoutMs: 150 }));
      await assert.rejects(
        c.live(),
        (e: unknown) =>
          e instanceof TypeError && e.message.startsWith('token: ') && !e.message.includes(secret),
      );
      const plain = new GatewayClient(opts({ timeoutMs: 150 }));
      await assert.rejects(plain.request('GET', '/v2/health/live', undefined, { 'x-a': 'b\r\nX-Evil: 1' }));
      // Past timeoutMs: the old code's deadline timer fired on a request that was never created and
      // threw a ReferenceError out of the timer, which ends a real service.
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(uncaught, []);
      assert.equal(srv.seen.length, 0);
      c.close();
      plain.close();
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });

  it('an endless or oversized answer is cut off at maxResponseBytes (ERR_CLIENT_RESPONSE_TOO_LARGE)', async () => {
    const chunk = Buffer.alloc(64 << 10, 0x20);
    srv.set((_q, s) => {
      s.writeHead(200, { 'content-type': 'application/json' });
      const pump = () => {
        while (!s.destroyed && s.write(chunk));
        if (!s.destroyed) s.once('drain', pump);
      };
      pump();
    });
    const c = new GatewayClient(opts({ maxResponseBytes: 1 << 20, timeoutMs: 20_000 }));
    const t0 = Date.now();
    await assert.rejects(c.modelMetadata('m'), isCode('ERR_CLIENT_RESPONSE_TOO_LARGE', 200));
    // Refused when the bound is passed, not at the deadline (the old code read until timeoutMs).
    assert.ok(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms`);
    // Announced by Content-Length: refused before the body is read.
    srv.set((_q, s) => {
      s.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 << 20) });
      s.write('{');
    });
    await assert.rejects(c.live(), isCode('ERR_CLIENT_RESPONSE_TOO_LARGE'));
    // The default bound is 16 MiB; the option is checked.
    for (const maxResponseBytes of [0, 1.5, (256 << 20) + 1])
      assert.throws(
        () => new GatewayClient(opts({ maxResponseBytes })),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('maxResponseBytes: '),
      );
    assert.throws(
      () => new GatewayClient(opts({ timeoutMs: 2 ** 31 })),
      (e: unknown) => e instanceof TypeError && e.message.startsWith('timeoutMs: '),
    );
    c.close();
  });

  it('asks for identity encoding and refuses a compressed answer instead of inflating it', async () => {
    srv.set((_q, s) => {
      s.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      s.end(gzipSync(Buffer.from(JSON.stringify(GOOD))));
    });
    const c = new GatewayClient(opts());
    await assert.rejects(
      c.infer('m', { inputs: [] }),
      (e: unknown) => isCode('ERR_CLIENT_RESPONSE')(e) && /compressed/.test((e as Error).message),
    );
    assert.equal(srv.seen[0]?.headers['accept-encoding'], 'identity');
    c.close();
  });

  it('hostile JSON never reaches the caller typed as a valid answer', async () => {
    const c = new GatewayClient(opts());
    const hostileBodies: [string, RegExp][] = [
      // An own __proto__ key: Object.assign(target, answer) would swap target's prototype.
      ['{"model_name":"m","id":"1","outputs":[],"__proto__":{"isAdmin":true}}', /__proto__/],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1],"datatype":"FP32","data":[1e999]}]}',
        /out of range/,
      ],
      ['{"model_name":"m","id":"1"}', /outputs is not a list/],
      ['null', /not an object/],
      ['[1,2]', /not an object/],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[[0.1,0.9]]}]}',
        /1 values for shape/,
      ],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[0.1]}]}',
        /1 values for shape/,
      ],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1],"datatype":"FP32","data":["0.9"]}]}',
        /not FP32/,
      ],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1],"datatype":"INT64","data":[0.5]}]}',
        /not INT64/,
      ],
      [
        '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1],"datatype":"EVIL","data":[1]}]}',
        /datatype/,
      ],
      ['{"model_name":7,"id":"1","outputs":[]}', /model_name/],
    ];
    hostileBodies.push([
      '{"model_name":"m","id":"1","outputs":[{"name":"p","shape":[1],"datatype":"FP32","data":[[0.9]]}]}',
      /not FP32/,
    ]);
    for (const [body, why] of hostileBodies) {
      srv.set(json(body));
      await assert.rejects(
        c.infer('m', { inputs: [] }),
        (e: unknown) => isCode('ERR_CLIENT_RESPONSE')(e) && why.test((e as Error).message),
        body,
      );
    }
    assert.equal(Object.hasOwn(Object.prototype, 'isAdmin'), false);
    // modelMetadata: an object; modelReady: a null body is "not ready", not a TypeError.
    srv.set(json('null'));
    await assert.rejects(c.modelMetadata('m'), isCode('ERR_CLIENT_RESPONSE'));
    assert.equal(await c.modelReady('m'), false);
    srv.set(json('{"name":"m","constructor":{"prototype":{"x":1}},"__proto__":{"x":1}}'));
    await assert.rejects(c.modelMetadata('m'), isCode('ERR_CLIENT_RESPONSE'));
    // A valid answer still passes, unchanged.
    srv.set(json(JSON.stringify(GOOD)));
    assert.deepEqual(await c.infer('m', { inputs: [] }), GOOD);
    c.close();
  });

  it('error bodies: null, non-JSON, forged codes and log lines map to a GatewayError, never a crash', async () => {
    const c = new GatewayClient(opts());
    srv.set(json('null', 500));
    await assert.rejects(c.modelMetadata('m'), isCode('HTTP_500', 500));
    srv.set(json('"just a string"', 503));
    await assert.rejects(c.infer('m', { inputs: [] }), isCode('HTTP_503', 503));
    srv.set((_q, s) => {
      s.writeHead(502, { 'content-type': 'text/html' });
      s.end('<html>bad gateway</html>');
    });
    await assert.rejects(c.infer('m', { inputs: [] }), isCode('ERR_CLIENT_RESPONSE', 502));
    // A code that is not one (spaces, newline) and a message forging a log line, with ANSI escapes,
    // reflecting the caller's token, and megabytes long.
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';
    srv.set(
      json(
        JSON.stringify({
          code: 'ERR_X\nlevel=info msg=ok',
          error: `denied\r\n2026-01-01 INFO admin login ok \u001b[2J Bearer ${jwt} DPoP abc.def ${'x'.repeat(1 << 20)}`,
        }),
        403,
      ),
    );
    await assert.rejects(c.infer('m', { inputs: [] }), (e: unknown) => {
      assert.ok(e instanceof GatewayError);
      assert.equal(e.code, 'HTTP_403');
      assert.ok(!/[\r\n]/.test(e.message) && !e.message.includes('\u001b'), e.message.slice(0, 80));
      assert.ok(!e.message.includes(jwt) && !e.message.includes('abc.def'), e.message.slice(0, 200));
      assert.ok(e.message.length <= 512);
      return true;
    });
    // An opaque token (no JWT shape) echoed bare: the client knows what it sent and takes it out.
    const opaque = 'tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0';
    const withToken = new GatewayClient(opts({ token: opaque }));
    srv.set(json(JSON.stringify({ code: 'ERR_AUTH_INVALID', error: `token ${opaque} is not valid` }), 401));
    await assert.rejects(withToken.infer('m', { inputs: [] }), (e: unknown) => {
      assert.ok(isCode('ERR_AUTH_INVALID', 401)(e));
      assert.equal((e as Error).message, 'token [credential] is not valid');
      return true;
    });
    withToken.close();
    // A well-formed refusal keeps its code and message.
    srv.set(json('{"error":"predict not permitted","code":"ERR_POLICY_DENIED"}', 403));
    await assert.rejects(c.infer('m', { inputs: [] }), (e: unknown) => {
      return isCode('ERR_POLICY_DENIED', 403)(e) && (e as Error).message === 'predict not permitted';
    });
    c.close();
  });

  it('a redirect is not followed: the token and the client certificate never go to another host', async () => {
    srv.set((_q, s) => {
      s.writeHead(307, { location: `${other.url}/v2/models/m/infer`, 'content-type': 'application/json' });
      s.end('{"error":"moved"}');
    });
    other.set(json(JSON.stringify(GOOD)));
    const c = new GatewayClient(opts({ token: 'tok.en', cert: clientA.pem, key: clientA.keyPem }));
    await assert.rejects(c.infer('m', { inputs: [] }), isCode('HTTP_307', 307));
    assert.equal(srv.seen.length, 1);
    assert.equal(other.seen.length, 0);
    c.close();
  });

  it('mutual TLS: a certificate without its key is refused; two identities never share a connection', async () => {
    // Node sends no client certificate when the key is missing: mTLS would be silently off.
    assert.throws(
      () => new GatewayClient(opts({ cert: clientA.pem })),
      (e: unknown) => e instanceof TypeError && e.message.startsWith('key: '),
    );
    assert.throws(
      () => new GatewayClient(opts({ key: clientA.keyPem })),
      (e: unknown) => e instanceof TypeError && e.message.startsWith('cert: '),
    );
    srv.set(json('{}'));
    const a = new GatewayClient(opts({ cert: clientA.pem, key: clientA.keyPem }));
    const b = new GatewayClient(opts({ cert: clientB.pem, key: clientB.keyPem }));
    for (let i = 0; i < 3; i++) {
      await a.live();
      await b.live();
    }
    const fp = (l: Leaf) => l.cert.fingerprint256;
    assert.deepEqual(
      srv.seen.map((s) => s.cert),
      [fp(clientA), fp(clientB), fp(clientA), fp(clientB), fp(clientA), fp(clientB)],
    );
    a.close();
    b.close();
  });

  it('the server name is checked: another name than the certificate’s is refused', async () => {
    srv.set(json('{}'));
    const wrong = new GatewayClient(opts({ servername: 'gateway.other.example' }));
    await assert.rejects(wrong.live(), /altnames|does not match/i);
    // No servername with an address URL: the address is checked against the certificate (it has none).
    const bare = new GatewayClient({ url: srv.url, ca: ca.pem });
    await assert.rejects(bare.live(), /altnames|does not match/i);
    assert.equal(srv.seen.length, 0);
    wrong.close();
    bare.close();
  });

  it('URLs with a path, query, fragment or credentials are refused without echoing the credentials', () => {
    for (const url of ['https://gw.example/prefix', 'https://gw.example/?a=1', 'https://gw.example/#x'])
      assert.throws(
        () => new GatewayClient({ url }),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('url: '),
        url,
      );
    for (const url of ['https://user:hunter2@gw.example', 'htt ps://user:hunter2@gw'])
      assert.throws(
        () => new GatewayClient({ url }),
        (e: unknown) =>
          e instanceof TypeError && e.message.startsWith('url: ') && !e.message.includes('hunter2'),
        url,
      );
    new GatewayClient({ url: 'https://gw.example:8443/' }).close();
  });

  it('model names, versions and raw paths cannot leave /v2/models/ or inject a query', async () => {
    srv.set(json(JSON.stringify(GOOD)));
    const c = new GatewayClient(opts());
    for (const name of [
      '../admin',
      '..',
      '%2e%2e',
      'a/b',
      'a?x=1',
      'a#b',
      'a b',
      'mo\u0064el\u202e',
      'ｍodel',
      '',
      'a\r\nb',
    ])
      await assert.rejects(
        c.infer(name, { inputs: [] }),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('model: '),
        JSON.stringify(name),
      );
    await assert.rejects(c.infer('m', { inputs: [] }, { version: '../1' }), /^TypeError: version: /);
    for (const path of [
      '//evil.example/x',
      'v2/health/live',
      '/a b',
      '/a#b',
      '/a\r\nb',
      'https://evil.example/',
    ])
      await assert.rejects(
        c.request('GET', path),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('path: '),
      );
    assert.equal(srv.seen.length, 0);
    await c.infer('model-1.v2_x', { inputs: [] }, { version: '3' });
    assert.deepEqual(
      srv.seen.map((s) => s.url),
      ['/v2/models/model-1.v2_x/versions/3/infer'],
    );
    c.close();
  });
});
