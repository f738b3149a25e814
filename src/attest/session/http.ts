/**
 * A plain node:http mounting of an attested endpoint (the gateway mounts the same two routes on
 * fastify): `POST {prefix}/attestation` (body: nonce) and `POST {prefix}/infer` (body: a session frame).
 * Errors answer 4xx with `{"error": {"code", "message"}}`, never a stack trace.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BulwarkError, type ErrorCode } from '../../core/index.js';
import { httpStatus } from '../../gateway/errors.js';
import { ATTESTATION_MEDIA_TYPE, SESSION_MEDIA_TYPE } from './client.js';

/** What an attested server offers, in process (AttestedSessionServer + app) or in a worker. */
export interface AttestedEndpoint {
  attestation(nonce: Uint8Array): Promise<Uint8Array>;
  handle(frame: Uint8Array): Promise<Uint8Array>;
}

const MAX_BODY = 1 << 20;

/**
 * HTTP status for an error code: the gateway's mapping (src/gateway/errors.ts), one table for every
 * HTTP surface of Bulwark, so a code answers the same status on `/infer-sealed` and on this endpoint.
 */
export const httpStatusOf: (code: ErrorCode) => number = httpStatus;

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new BulwarkError('ERR_INPUT_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A node:http request listener serving `endpoint` under `prefix` (e.g. `/v1/attested`). */
export function attestedHttpHandler(
  endpoint: AttestedEndpoint,
  prefix = '',
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      try {
        if (req.method !== 'POST') {
          res.writeHead(405, { allow: 'POST' }).end();
          return;
        }
        const path = (req.url ?? '').split('?')[0];
        if (path === `${prefix}/attestation`) {
          const out = await endpoint.attestation(await body(req));
          res.writeHead(200, { 'content-type': ATTESTATION_MEDIA_TYPE }).end(out);
        } else if (path === `${prefix}/infer`) {
          const out = await endpoint.handle(await body(req));
          res.writeHead(200, { 'content-type': SESSION_MEDIA_TYPE }).end(out);
        } else {
          res.writeHead(404).end();
        }
      } catch (e) {
        const err = e instanceof BulwarkError ? e : new BulwarkError('ERR_INTERNAL', 'internal error');
        res
          .writeHead(httpStatusOf(err.code), { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code: err.code, message: err.message } }));
      }
    })();
  };
}
