/**
 * `bulwark/client`: the server's certificate is always checked (NODE_TLS_REJECT_UNAUTHORIZED=0 does not
 * turn it off), an `http://` URL needs an explicit `insecurePlaintext`, refusals are typed errors with
 * the gateway's code, and `inferRows` sends every field of every row.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GatewayClient, GatewayError } from '../../src/gateway/client.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway } from './gateway-fixtures.js';

describe('bulwark/client', () => {
  let f: Fixture;
  let gw: Gateway;
  before(async () => {
    f = await fixture();
    gw = await startGateway(f.config());
  });
  after(async () => {
    await gw?.close();
  });

  it('checks the server certificate even with NODE_TLS_REJECT_UNAUTHORIZED=0', async () => {
    const saved = process.env['NODE_TLS_REJECT_UNAUTHORIZED'];
    // The gateway's certificate is from the test CA, which the client is not given.
    const c = new GatewayClient({ url: gw.url, servername: 'localhost', token: await f.token() });
    process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = '0';
    try {
      await assert.rejects(c.live(), (e: NodeJS.ErrnoException) => /certificate/i.test(e.message));
    } finally {
      if (saved === undefined) delete process.env['NODE_TLS_REJECT_UNAUTHORIZED'];
      else process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = saved;
      c.close();
    }
    // With the CA it connects.
    const ok = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost' });
    assert.equal(await ok.live(), true);
    ok.close();
  });

  it('refuses an http:// URL unless insecurePlaintext is set', () => {
    assert.throws(
      () => new GatewayClient({ url: 'http://gateway.internal:8443', token: 'secret-token' }),
      (e: unknown) =>
        e instanceof TypeError && e.message.startsWith('url: ') && !e.message.includes('secret-token'),
    );
    new GatewayClient({ url: 'http://127.0.0.1:1', insecurePlaintext: true }).close();
  });

  it('throws refusals as GatewayError with the status and code, never the token', async () => {
    const token = await f.token({ aud: 'someone-else' });
    const c = new GatewayClient({ url: gw.url, ca: f.ca.pem, servername: 'localhost', token });
    await assert.rejects(
      c.inferRows('fraud', [{ amount: 1, age: 30, kind: 'A' }]),
      (e: unknown) =>
        e instanceof GatewayError &&
        e.status === 401 &&
        /^ERR_AUTH_/.test(e.code) &&
        !e.message.includes(token) &&
        !String(e.stack).includes(token),
    );
    c.close();
  });

  it('timeoutMs bounds the whole exchange, not only each idle gap; bad values are refused up front', async () => {
    // A server that trickles its answer, one byte per 50 ms for 4 s: never idle for timeoutMs.
    const timers = new Set<NodeJS.Timeout>();
    const slow = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let n = 0;
      const t = setInterval(() => {
        if (++n >= 80 || res.destroyed) {
          clearInterval(t);
          res.end(' ');
        } else res.write(' ');
      }, 50);
      timers.add(t);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const port = (slow.address() as AddressInfo).port;
    const c = new GatewayClient({ url: `http://127.0.0.1:${port}`, insecurePlaintext: true, timeoutMs: 500 });
    try {
      await assert.rejects(c.live(), /request timed out after 500 ms/);
    } finally {
      c.close();
      for (const t of timers) clearInterval(t);
      slow.closeAllConnections();
      await new Promise<void>((r) => slow.close(() => r()));
    }
    for (const timeoutMs of [0, -1, 1.5, Number.NaN])
      assert.throws(
        () => new GatewayClient({ url: 'https://x.example', timeoutMs }),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('timeoutMs: '),
      );
  });

  it('inferRows sends a field missing from the first row instead of dropping it', async () => {
    let received = '';
    const echo = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        received = Buffer.concat(chunks).toString('utf8');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ model_name: 'm', id: 'x', outputs: [] }));
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as AddressInfo).port;
    const c = new GatewayClient({ url: `http://127.0.0.1:${port}`, insecurePlaintext: true });
    try {
      await c.inferRows('m', [{ amount: 1 }, { amount: 2, kind: 'B' }]);
    } finally {
      c.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
    const inputs = (JSON.parse(received) as { inputs: { name: string; datatype: string; data: unknown[] }[] })
      .inputs;
    assert.deepEqual(
      inputs.map((t) => [t.name, t.datatype, t.data]),
      [
        ['amount', 'FP64', [1, 2]],
        ['kind', 'BYTES', [null, 'B']],
      ],
    );
  });
});
