/**
 * A worker thread of the frame pool (frame-pool.ts): seals and opens frames with the same functions
 * as the sequential path (frame.ts). It holds each operation's frame keys only between the `keys` and
 * `end` messages, overwrites them on `end`, and never logs or echoes them; failures are reported by
 * frame id only (the main thread turns them into BulwarkErrors).
 */
import { parentPort } from 'node:worker_threads';
import { type FrameKeys, openFrame, sealFrame, wipeFrameKeys } from './frame.js';
import type { WorkerReply, WorkerRequest } from './frame-pool.js';

const port = parentPort;
if (!port) throw new Error('frame-worker.ts runs as a worker thread only');

const sessions = new Map<number, FrameKeys>();

/** `b` as a transferable ArrayBuffer of its own (node:crypto's outputs usually are; copied otherwise). */
function own(b: Buffer): { buf: ArrayBuffer; off: number; len: number } {
  const ab = b.buffer;
  if (ab instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === ab.byteLength && b.length >= 4096)
    return { buf: ab, off: 0, len: b.length };
  const copy = new Uint8Array(b.length);
  copy.set(b);
  b.fill(0);
  return { buf: copy.buffer, off: 0, len: b.length };
}

function reply(m: WorkerReply, transfer: ArrayBuffer[]): void {
  port!.postMessage(m, transfer);
}

port.on('message', (m: WorkerRequest) => {
  switch (m.t) {
    case 'keys':
      sessions.set(m.s, { enc: m.enc, prefix: m.prefix, headerHash: m.headerHash, fileTag: m.fileTag });
      return;
    case 'end': {
      const k = sessions.get(m.s);
      if (k) wipeFrameKeys(k);
      sessions.delete(m.s);
      reply({ t: 'ended', s: m.s }, []);
      return;
    }
    case 'seal':
    case 'open': {
      // The input buffer goes back with the reply for reuse (unless it is shared memory).
      const back = m.src instanceof ArrayBuffer ? [m.src] : [];
      const k = sessions.get(m.s);
      if (!k) {
        reply({ t: 'failed', id: m.id, reason: 'internal', src: m.src }, back);
        return;
      }
      try {
        const input = new Uint8Array(m.src, m.off, m.len);
        // The output goes into the caller's recycled buffer when it lends one (see FramePoolSession).
        const into = m.out ? new Uint8Array(m.out) : undefined;
        if (m.t === 'seal') {
          const f = sealFrame(k, m.index, m.last, input, into);
          const body = m.out ? m.out : own(f.body).buf;
          reply({ t: 'sealed', id: m.id, header: f.header, tag: f.tag, body, src: m.src }, [body, ...back]);
        } else {
          const plain = openFrame(k, m.index, m.last, m.fh, [input], m.tag, into);
          if (!plain) {
            const lent = m.out ? [m.out] : [];
            reply({ t: 'failed', id: m.id, reason: 'auth', src: m.src, out: m.out }, [...lent, ...back]);
            return;
          }
          const out = m.out ? m.out : own(plain.length === 1 ? plain[0]! : Buffer.concat(plain)).buf;
          reply({ t: 'opened', id: m.id, plain: out, src: m.src }, [out, ...back]);
        }
      } catch {
        // The lent output may hold part of an unauthenticated frame's plaintext: wiped, and handed back.
        if (m.out) new Uint8Array(m.out).fill(0);
        const lent = m.out ? [m.out] : [];
        reply({ t: 'failed', id: m.id, reason: 'internal', src: m.src, out: m.out }, [...lent, ...back]);
      }
      return;
    }
  }
});
