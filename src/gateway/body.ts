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

/**
 * Reads `req` up to `limit` bytes. `untilEnd`: wait for the end of the body even past the limit (the
 * rest is read and dropped); otherwise return as soon as the limit is passed. Rejects on a stream error.
 */
export async function readLimitedBody(
  req: IncomingMessage,
  limit: number,
  untilEnd: boolean,
): Promise<LimitedBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  await new Promise<void>((resolve, reject) => {
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        if (!untilEnd) resolve();
        return;
      }
      chunks.push(c);
    });
    req.once('end', resolve);
    req.once('error', reject);
  });
  return { body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks), over };
}
