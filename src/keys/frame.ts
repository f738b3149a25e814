import { BulwarkError } from '../core/index.js';
import { GCM_TAG_BYTES } from './aead.js';
import { type GcmKey, gcmKey } from './gcm.js';

/**
 * The crypto of one frame of the framed streaming format (see stream.ts for the construction and the
 * layout): the one implementation used on the calling thread and on the libuv thread pool
 * (frame-pipeline.ts). Frames are independent by design (STREAM,
 * Hoang et al., CRYPTO 2015): frame i needs only the file's keys, its index and its last flag, so
 * frames can be sealed and opened in any order and on any thread; the stream layer alone enforces
 * order, completeness and the release of plaintext.
 *
 * The AES-256-GCM calls go through gcm.ts: the native addon (OpenSSL's EVP, writing into buffers we
 * own) when it is built, node:crypto otherwise; the bytes are the same either way.
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

/**
 * Each file's key, prepared once for the AES-GCM backend; wiped with the frame keys. A wiped entry stays
 * (as null), so frame keys used after wipeFrameKeys fail instead of preparing their zeroed bytes as a key.
 */
const prepared = new WeakMap<FrameKeys, GcmKey | null>();

function gcmOf(k: FrameKeys): GcmKey {
  let g = prepared.get(k);
  if (g === null) throw new BulwarkError('ERR_INTERNAL', 'frame keys used after they were wiped');
  if (!g) {
    g = gcmKey(k.enc);
    prepared.set(k, g);
  }
  return g;
}

export function wipeFrameKeys(k: FrameKeys): void {
  k.enc.fill(0);
  prepared.get(k)?.wipe();
  prepared.set(k, null);
}

/** `len` bytes at the start of `into` (a recycled buffer), or a fresh buffer: where a frame's output goes. */
function outputOf(len: number, into?: Uint8Array): Buffer {
  return into ? Buffer.from(into.buffer, into.byteOffset, len) : Buffer.allocUnsafe(len);
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
  const body = outputOf(plain.length, into);
  const tag = Buffer.allocUnsafe(GCM_TAG_BYTES);
  gcmOf(k).seal(nonceFor(k.prefix, index, last), frameAad(k, header), plain, body, tag);
  return { header, body, tag };
}

/**
 * {@link sealFrame} off the JavaScript thread (the libuv pool) with the native backend, inline with
 * node:crypto. `plain` is copied into the output first and sealed in place, so the caller may reuse
 * `plain` as soon as this returns; `into` must stay untouched until the promise settles.
 */
export async function sealFrameAsync(
  k: FrameKeys,
  index: number,
  last: boolean,
  plain: Uint8Array,
  into?: Uint8Array,
): Promise<SealedFrame> {
  const header = frameHeader(k, index, last, plain.length);
  const body = outputOf(plain.length, into);
  body.set(plain);
  const tag = Buffer.allocUnsafe(GCM_TAG_BYTES);
  return gcmOf(k)
    .sealAsync(nonceFor(k.prefix, index, last), frameAad(k, header), body, body, tag)
    .then(() => ({ header, body, tag }));
}

/** The total length of a frame's ciphertext pieces. */
function lengthOf(body: readonly Uint8Array[]): number {
  let len = 0;
  for (const p of body) len += p.length;
  return len;
}

/** The ciphertext pieces of a frame gathered into `into` (or a fresh buffer): the buffer to open in place. */
function gather(body: readonly Uint8Array[], into?: Uint8Array): Buffer {
  const out = outputOf(lengthOf(body), into);
  let off = 0;
  for (const p of body) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Opens one frame given its clear header `fh` (already checked by the caller for file tag, index and
 * length), its ciphertext as one or more pieces (a frame that straddles read chunks is fed piece by
 * piece, without assembling it) and its tag. Returns the plaintext (in `into` when given), or null
 * when the tag does not verify (then nothing is returned: the partial plaintext is overwritten).
 */
export function openFrame(
  k: FrameKeys,
  index: number,
  last: boolean,
  fh: Uint8Array,
  body: readonly Uint8Array[],
  tag: Uint8Array,
  into?: Uint8Array,
): Buffer | null {
  // Opened from where the pieces lie into the output, without gathering them first.
  const out = outputOf(lengthOf(body), into);
  return gcmOf(k).openPieces(nonceFor(k.prefix, index, last), frameAad(k, fh), body, out, tag) ? out : null;
}

/**
 * {@link openFrame} off the JavaScript thread (see {@link sealFrameAsync}): the pieces are copied into
 * the output first, so the caller may reuse them once this returns. Resolves to null when the tag does
 * not verify (the output is then overwritten).
 */
export async function openFrameAsync(
  k: FrameKeys,
  index: number,
  last: boolean,
  fh: Uint8Array,
  body: readonly Uint8Array[],
  tag: Uint8Array,
  into?: Uint8Array,
): Promise<Buffer | null> {
  const out = gather(body, into);
  const t = Buffer.from(tag);
  return gcmOf(k)
    .openAsync(nonceFor(k.prefix, index, last), frameAad(k, fh), out, out, t)
    .then((ok) => (ok ? out : null));
}
