/**
 * Reading a request body under a size limit, shared by the gateway's HTTP server and its enclave
 * endpoints: bytes past the limit are dropped, never buffered, so an oversized body cannot grow memory;
 * a body its connection's parser cut short is refused, never served.
 */
import type { IncomingMessage } from 'node:http';
import { BulwarkError } from '../core/index.js';

/**
 * Requests whose body was still arriving when their connection's parser failed (server.ts
 * #clientError). After Node's HPE_PAUSED the parser has dropped bytes of the stream, so the rest of
 * such a body, if it "arrives", is other requests' bytes: {@link readLimitedBody} refuses it.
 */
const broken = new WeakSet<IncomingMessage>();

/** Marks `req`'s body as cut by a parser error on its connection, if it was not read whole. */
export function markBodyBroken(req: IncomingMessage): void {
  if (!req.complete) broken.add(req);
}

/** Whether {@link markBodyBroken} marked `req`. */
export function isBodyBroken(req: IncomingMessage): boolean {
  return broken.has(req);
}

export interface LimitedBody {
  /** What was read (only the bytes up to the limit when `over`). */
  body: Buffer;
  /** Whether the body went past the limit. */
  over: boolean;
}

/** First capacity when the length is not declared (chunked): most bodies fit, larger ones double. */
const INITIAL_CAPACITY = 16 << 10;

/**
 * Reads `req` up to `limit` bytes. `untilEnd`: wait for the end of the body even past the limit (the
 * rest is read and dropped); otherwise return as soon as the limit is passed. Rejects on a stream error,
 * and with ERR_GATEWAY_REQUEST_INVALID for a body {@link markBodyBroken} marked.
 *
 * Every chunk is copied into one buffer, sized from `Content-Length` (at most `limit`) or grown by
 * doubling up to `limit`: a body sent as many tiny chunks (1-byte chunked encoding) would otherwise keep
 * one Buffer object and backing store per chunk, hundreds of bytes of overhead per byte of body.
 * `allocate` is the allocator (a seam for tests); its buffers are written before they are read.
 */
export async function readLimitedBody(
  req: IncomingMessage,
  limit: number,
  untilEnd: boolean,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): Promise<LimitedBody> {
  const declared = Number(req.headers['content-length']);
  let buf: Buffer | null = null;
  let size = 0;
  let over = false;
  await new Promise<void>((resolve, reject) => {
    req.on('data', (c: Buffer) => {
      if (over) return;
      if (size + c.length > limit) {
        over = true;
        if (!untilEnd) resolve();
        return;
      }
      if (buf === null || size + c.length > buf.length) {
        let capacity =
          buf === null
            ? Number.isSafeInteger(declared) && declared > 0
              ? declared
              : INITIAL_CAPACITY
            : buf.length * 2;
        while (capacity < size + c.length) capacity *= 2;
        const next = allocate(Math.min(capacity, limit));
        if (buf !== null) buf.copy(next, 0, 0, size);
        buf = next;
      }
      c.copy(buf, size);
      size += c.length;
    });
    req.once('end', resolve);
    req.once('error', reject);
  });
  if (broken.has(req))
    throw new BulwarkError(
      'ERR_GATEWAY_REQUEST_INVALID',
      'the connection failed while this request body was read',
    );
  return { body: buf === null ? Buffer.alloc(0) : (buf as Buffer).subarray(0, size), over };
}
