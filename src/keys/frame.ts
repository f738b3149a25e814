import { createCipheriv, createDecipheriv } from 'node:crypto';
import { GCM_TAG_BYTES } from './aead.js';

/**
 * The crypto of one frame of the framed streaming format (see stream.ts for the construction and the
 * layout): the one implementation used by the sequential path (stream.ts) and by the worker threads
 * of the frame pool (frame-pool.ts, frame-worker.ts). Frames are independent by design (STREAM,
 * Hoang et al., CRYPTO 2015): frame i needs only the file's keys, its index and its last flag, so
 * frames can be sealed and opened in any order and on any thread; the stream layer alone enforces
 * order, completeness and the release of plaintext.
 *
 * This module imports node:crypto only, so a worker thread loads it quickly.
 */

/** Bytes of the 7-byte nonce prefix derived per file. */
export const PREFIX_BYTES = 7;
/** Bytes of the clear header of each frame: file tag u32 | index u32 | flags u8 | length u32. */
export const FRAME_HEADER_BYTES = 13;
/** Bytes each frame adds to its plaintext. */
export const FRAME_OVERHEAD = FRAME_HEADER_BYTES + GCM_TAG_BYTES;
/** Bytes of the SHA-256 of the file header that starts every frame's associated data. */
const HEADER_HASH_BYTES = 32;
/**
 * Bytes per cipher call when writing into a caller's buffer: node:crypto allocates a fresh output per
 * call, and a 1 MiB allocation per frame costs page faults and unmapping on every call (most of the
 * time of a frame on a worker thread, measured); 64 KiB outputs are reused from the allocator's cache.
 */
const PIECE_BYTES = 1 << 16;

/** Runs `input` through `c` in pieces of at most PIECE_BYTES, writing the output into `into` from `at`. */
function updateInto(
  c: { update(data: Uint8Array): Buffer },
  input: Uint8Array,
  into: Uint8Array,
  at: number,
): number {
  let off = at;
  for (let i = 0; i < input.length; i += PIECE_BYTES) {
    const out = c.update(input.subarray(i, Math.min(input.length, i + PIECE_BYTES)));
    into.set(out, off);
    off += out.length;
  }
  return off;
}

/**
 * What sealing or opening a frame needs, derived once per file: the AES-256-GCM key, the nonce
 * prefix, the SHA-256 of the file header and the 4-byte file tag. Secret (the key): never log it;
 * {@link wipeFrameKeys} overwrites it when the file is done.
 */
export interface FrameKeys {
  enc: Uint8Array;
  prefix: Uint8Array;
  headerHash: Uint8Array;
  fileTag: Uint8Array;
}

/** A sealed frame as three parts (header, ciphertext, tag), written one after the other. */
export interface SealedFrame {
  header: Buffer;
  body: Buffer;
  tag: Buffer;
}

export function wipeFrameKeys(k: FrameKeys): void {
  k.enc.fill(0);
}

/** The 12-byte GCM nonce of frame `index`: `prefix(7) | index u32 | last u8`. */
function nonceFor(prefix: Uint8Array, index: number, last: boolean): Buffer {
  const n = Buffer.allocUnsafe(12);
  n.set(prefix, 0);
  n.writeUInt32BE(index, PREFIX_BYTES);
  n[11] = last ? 1 : 0;
  return n;
}

/** The clear header of frame `index` holding `length` plaintext bytes. */
export function frameHeader(k: FrameKeys, index: number, last: boolean, length: number): Buffer {
  const fh = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  fh.set(k.fileTag, 0);
  fh.writeUInt32BE(index, 4);
  fh[8] = last ? 1 : 0;
  fh.writeUInt32BE(length, 9);
  return fh;
}

/** The associated data of a frame: `SHA-256(file header) | frame header`. */
function frameAad(k: FrameKeys, fh: Uint8Array): Buffer {
  const aad = Buffer.allocUnsafe(HEADER_HASH_BYTES + FRAME_HEADER_BYTES);
  aad.set(k.headerHash, 0);
  aad.set(fh, HEADER_HASH_BYTES);
  return aad;
}

/**
 * Seals frame `index` (`last` marks the final frame) over `plain`: into `into` (at least
 * `plain.length` bytes, reused by the caller) when given, else into a fresh buffer.
 */
export function sealFrame(
  k: FrameKeys,
  index: number,
  last: boolean,
  plain: Uint8Array,
  into?: Uint8Array,
): SealedFrame {
  const header = frameHeader(k, index, last, plain.length);
  const c = createCipheriv('aes-256-gcm', k.enc, nonceFor(k.prefix, index, last), {
    authTagLength: GCM_TAG_BYTES,
  });
  c.setAAD(frameAad(k, header));
  let body: Buffer;
  if (into) {
    updateInto(c, plain, into, 0);
    body = Buffer.from(into.buffer, into.byteOffset, plain.length);
  } else body = c.update(plain);
  c.final();
  return { header, body, tag: c.getAuthTag() };
}

/**
 * Opens one frame given its clear header `fh` (already checked by the caller for file tag, index and
 * length), its ciphertext as one or more pieces (a frame that straddles read chunks is fed piece by
 * piece, without assembling it) and its tag. Returns the plaintext pieces (one, in `into`, when given),
 * or null when the tag does not verify (then nothing is returned: the partial plaintext is
 * overwritten).
 */
export function openFrame(
  k: FrameKeys,
  index: number,
  last: boolean,
  fh: Uint8Array,
  body: readonly Uint8Array[],
  tag: Uint8Array,
  into?: Uint8Array,
): Buffer[] | null {
  const d = createDecipheriv('aes-256-gcm', k.enc, nonceFor(k.prefix, index, last), {
    authTagLength: GCM_TAG_BYTES,
  });
  d.setAAD(frameAad(k, fh));
  d.setAuthTag(tag);
  let plain: Buffer[];
  if (into) {
    let off = 0;
    for (const p of body) off = updateInto(d, p, into, off);
    plain = [Buffer.from(into.buffer, into.byteOffset, off)];
  } else plain = body.map((p) => d.update(p));
  try {
    d.final();
  } catch {
    for (const p of plain) p.fill(0);
    return null;
  }
  return plain;
}
