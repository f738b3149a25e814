/**
 * Reading a request body under a size limit, shared by the gateway's HTTP server and its enclave
 * endpoints: bytes past the limit are dropped, never buffered, so an oversized body cannot grow memory.
 */
import type { IncomingMessage } from 'node:http';

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
 * rest is read and dropped); otherwise return as soon as the limit is passed. Rejects on a stream error.
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
  return { body: buf === null ? Buffer.alloc(0) : (buf as Buffer).subarray(0, size), over };
}
