import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  AtomicFileStream,
  type AtomicWriteOptions,
  BulwarkError,
  fsError,
  invalidArgument,
  requireFile,
  requireInteger,
} from '../core/index.js';
import { GCM_TAG_BYTES, hkdf, KEY_BYTES } from './aead.js';
import { bytesEqual, utf8 } from './bytes.js';
import { DataKey } from './envelope.js';
import {
  FRAME_HEADER_BYTES,
  type FrameKeys,
  openFrame,
  openFrameAsync,
  PREFIX_BYTES,
  type SealedFrame,
  sealFrame,
  sealFrameAsync,
} from './frame.js';
import { FramePipeline, frameThreads, type ParallelOptions } from './frame-pipeline.js';
import { type Keyring, type WrappedKey, wrappedKeySchema } from './keyring.js';

/**
 * Framed streaming AEAD for files of any size (datasets, model files): the STREAM construction of
 * Hoang, Reyhanitabar, Rogaway and Vizár ("Online Authenticated-Encryption and its Nonce-Reuse
 * Misuse-Resistance", CRYPTO 2015), as in Tink's streaming AEAD, over AES-256-GCM.
 *
 * Each file draws a fresh DEK (wrapped by the keyring) and a 256-bit salt; HKDF-SHA256 turns them into
 * the file's encryption key, a 256-bit key commitment, a header-MAC key and a 7-byte nonce prefix.
 * Frame i (plaintext of `frameSize` bytes, the last one shorter or empty) is sealed with nonce
 * `prefix(7) | i (u32) | last (u8)` and associated data `SHA-256(header) | frame header`, so:
 * - a changed byte anywhere fails its frame's tag (ERR_CIPHERTEXT_TAMPERED);
 * - a frame moved, repeated or dropped fails the position check or its tag (ERR_FRAME_ORDER);
 * - a frame from another file carries another file tag and nonce prefix (ERR_FRAME_ORDER);
 * - a file cut short lacks the frame marked last (ERR_CIPHERTEXT_TRUNCATED);
 * - a changed header byte fails the key commitment or the header MAC (ERR_HEADER_TAMPERED), or the
 *   wrapped key (ERR_KEY_UNWRAP / ERR_KEY_NOT_FOUND).
 *
 * Layout (big-endian):
 * ```
 * header: magic "BULWARKE" | version u8 = 1 | algorithm u8 = 1 | log2(frameSize) u8 | flags u8 = 0
 *         | salt (32) | u16 n | wrapped DEK (n bytes of JSON) | commitment (32) | header MAC (32)
 * frame:  file tag u32 (= salt[0..4]) | index u32 | flags u8 (bit 0: last) | plaintext length u32
 *         | ciphertext | GCM tag (16)
 * ```
 * Every frame but the last holds exactly `frameSize` bytes. Overhead: the header (about 430 bytes) plus
 * 29 bytes per frame: 0.0028 % at 1 MiB frames.
 *
 * Frames are independent (each has its own nonce and associated data), so with `threads` beyond the
 * first few frames they are sealed and opened on the libuv thread pool (frame-pipeline.ts), with the
 * same per-frame code (frame.ts) and byte-identical output; this module keeps the order, the checks of
 * every frame header, and the release of plaintext only after authentication.
 */

export const STREAM_MAGIC = Buffer.from('BULWARKE', 'ascii');
export const STREAM_VERSION = 1;
const ALG_AES256GCM_HKDF_STREAM = 1;
const SALT_BYTES = 32;
const COMMIT_BYTES = 32;
const MAC_BYTES = 32;

export { FRAME_HEADER_BYTES, FRAME_OVERHEAD } from './frame.js';

/** The context a file's DEK is wrapped for (the commitment binds the DEK to the file's salt). */
const WRAP_CONTEXT = 'bulwark/v1/stream';
/** Frame sizes allowed: 64 KiB to 1 MiB (the bounds), as log2. */
export const MIN_FRAME_LOG2 = 16;
export const MAX_FRAME_LOG2 = 20;
/** The default frame size, 1 MiB: size overhead 0.0024 %. */
export const DEFAULT_FRAME_SIZE = 1 << 20;

/** Bytes to encrypt or decrypt: a Node.js readable stream, an async generator, or an array of buffers. */
export type ByteSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

export interface EncryptStreamOptions extends ParallelOptions {
  /** KEK id in the keyring (default `data`). */
  keyId?: string;
  /** Plaintext bytes per frame: a power of two from 64 KiB to 1 MiB (default 1 MiB). */
  frameSize?: number;
}

/** Options of decryption: the worker threads (see {@link ParallelOptions}). */
export type DecryptStreamOptions = ParallelOptions;

interface FileKeys {
  enc: Buffer;
  commit: Buffer;
  mac: Buffer;
  prefix: Buffer;
}

function deriveFileKeys(dek: Uint8Array, salt: Uint8Array): FileKeys {
  const okm = hkdf(dek, salt, 'bulwark/v1/stream-keys', KEY_BYTES + COMMIT_BYTES + KEY_BYTES + PREFIX_BYTES);
  return {
    enc: okm.subarray(0, 32),
    commit: okm.subarray(32, 64),
    mac: okm.subarray(64, 96),
    prefix: okm.subarray(96, 96 + PREFIX_BYTES),
  };
}

function frameLog2(frameSize: number): number {
  requireInteger('frameSize', frameSize, 1 << MIN_FRAME_LOG2, 1 << MAX_FRAME_LOG2);
  const l = Math.log2(frameSize);
  if (!Number.isInteger(l))
    throw invalidArgument('frameSize', 'a power of two from 65536 to 1048576', frameSize);
  return l;
}

/** A sealed frame as the buffers to write, in order. */
function frameParts(f: SealedFrame): Buffer[] {
  return [f.header, f.body, f.tag];
}

function wipeParts(parts: Buffer[]): void {
  for (const p of parts) p.fill(0);
}

function frameTampered(where: string, index: number): BulwarkError {
  return new BulwarkError(
    'ERR_CIPHERTEXT_TAMPERED',
    `${where}: frame ${index} fails authentication: the file was altered`,
    { details: { frame: index } },
  );
}

/**
 * Cuts a byte source into frames of `frameSize` bytes (the last shorter, or empty for an empty
 * source), holding one frame back: a frame is known to be the last only when the source ends.
 */
async function* plainFrames(
  source: ByteSource,
  frameSize: number,
): AsyncGenerator<{ plain: Buffer; last: boolean }> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    let buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (buf.length > 0) {
      if (pendingBytes === frameSize) {
        // A full frame is pending and more data follows: it is not the last.
        const full = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        yield { plain: full, last: false };
        continue;
      }
      const take = Math.min(buf.length, frameSize - pendingBytes);
      pending.push(buf.subarray(0, take));
      pendingBytes += take;
      buf = buf.subarray(take);
    }
  }
  yield { plain: pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes), last: true };
}

/**
 * Seals the frames of `source` under one file's frame keys: the frame part of {@link encryptStream},
 * on this thread or on worker threads (`threads`), with the same bytes either way. Exported for the
 * tests that compare the two paths under fixed keys; applications use encryptStream.
 */
export async function* sealFrames(
  keys: FrameKeys,
  source: ByteSource,
  frameSize: number,
  opts: ParallelOptions = {},
): AsyncGenerator<Buffer> {
  const pipe = new FramePipeline<Buffer[]>(opts, frameSize);
  // With reuseOutput, a frame's ciphertext buffer comes back for a later frame once the consumer asks
  // for the next part (the tag follows the body, so resuming after the tag means the body is done with).
  async function* release(parts: Buffer[]): AsyncGenerator<Buffer> {
    yield* parts;
    pipe.recycle(parts[1]!);
  }
  let index = 0;
  try {
    for await (const { plain, last } of plainFrames(source, frameSize)) {
      if (index > 0xffffffff)
        throw new BulwarkError('ERR_INVALID_ARGUMENT', 'file too large: more than 2^32 frames');
      const i = index++;
      const done = await pipe.submit(
        (into) => frameParts(sealFrame(keys, i, last, plain, into)),
        async (into) => frameParts(await sealFrameAsync(keys, i, last, plain, into)),
      );
      for (const parts of done) yield* release(parts);
    }
    for (const parts of await pipe.finish()) yield* release(parts);
  } catch (e) {
    throw await pipe.abort(e);
  } finally {
    await pipe.close();
  }
}

/**
 * Encrypts a byte stream: yields the header, then frames (as several buffers each, to avoid copies).
 * Memory stays at about two frames.
 *
 * @example
 * ```ts
 * for await (const part of encryptStream(createReadStream('model.onnx'), keyring)) out.write(part);
 * ```
 */
export async function* encryptStream(
  source: ByteSource,
  keyring: Keyring,
  opts: EncryptStreamOptions = {},
): AsyncGenerator<Buffer> {
  const frameSize = opts.frameSize ?? DEFAULT_FRAME_SIZE;
  const log2 = frameLog2(frameSize);
  frameThreads(opts);
  const dek = DataKey.generate();
  const wrapped = await keyring.wrapKey(opts.keyId ?? 'data', dek.bytesForDecryption(), WRAP_CONTEXT);
  const salt = randomBytes(SALT_BYTES);
  const keys = deriveFileKeys(dek.useForEncryption()!, salt);
  dek.destroy();
  try {
    const wk = utf8(JSON.stringify(wrapped));
    if (wk.length > 0xffff) throw new BulwarkError('ERR_INTERNAL', 'wrapped key too large for the header');
    const fixed = Buffer.alloc(12);
    STREAM_MAGIC.copy(fixed, 0);
    fixed[8] = STREAM_VERSION;
    fixed[9] = ALG_AES256GCM_HKDF_STREAM;
    fixed[10] = log2;
    fixed[11] = 0;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(wk.length, 0);
    const body = Buffer.concat([fixed, salt, len, wk, keys.commit]);
    const mac = createHmac('sha256', keys.mac).update(body).digest();
    const header = Buffer.concat([body, mac]);
    const headerHash = createHash('sha256').update(header).digest();
    yield header;

    const frameKeys: FrameKeys = {
      enc: keys.enc,
      prefix: keys.prefix,
      headerHash,
      fileTag: salt.subarray(0, 4),
    };
    yield* sealFrames(frameKeys, source, frameSize, opts);
  } finally {
    keys.enc.fill(0);
    keys.mac.fill(0);
  }
}

/** Reads exact byte counts from an async stream of chunks. */
class Reader {
  readonly #it: AsyncIterator<Uint8Array | string>;
  #chunks: Buffer[] = [];
  #have = 0;
  #ended = false;

  constructor(source: ByteSource) {
    this.#it =
      Symbol.asyncIterator in source
        ? source[Symbol.asyncIterator]()
        : (async function* () {
            yield* source;
          })();
  }

  /** Buffers until `n` bytes are available or the source ends; returns how many are available. */
  async fill(n: number): Promise<number> {
    while (this.#have < n && !this.#ended) {
      const r = await this.#it.next();
      if (r.done) {
        this.#ended = true;
        break;
      }
      const c =
        typeof r.value === 'string'
          ? Buffer.from(r.value)
          : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (c.length > 0) {
        this.#chunks.push(c);
        this.#have += c.length;
      }
    }
    return Math.min(n, this.#have);
  }

  /** Takes exactly `n` buffered bytes (call after `fill`). */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#have -= n;
    return out;
  }

  /**
   * Takes exactly `n` buffered bytes as the buffered pieces themselves, without assembling them (call
   * after `fill`): a frame that straddles source chunks is decrypted piece by piece, with no copy.
   */
  takePieces(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.#chunks[0]!;
      if (c.length <= left) {
        out.push(c);
        this.#chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.#chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.#have -= n;
    return out;
  }

  /** Whether the source is exhausted and nothing is buffered. */
  async atEnd(): Promise<boolean> {
    return (await this.fill(1)) === 0;
  }

  async return(): Promise<void> {
    await this.#it.return?.();
  }
}

function truncated(where: string): BulwarkError {
  return new BulwarkError(
    'ERR_CIPHERTEXT_TRUNCATED',
    `${where}: the encrypted file ends early: it was truncated`,
  );
}

function headerTampered(where: string, what: string): BulwarkError {
  return new BulwarkError(
    'ERR_HEADER_TAMPERED',
    `${where}: the encrypted file's header was altered (${what})`,
  );
}

/** What the header of an encrypted file says (no secrets). */
export interface StreamHeaderInfo {
  version: number;
  frameSize: number;
  wrappedKey: WrappedKey;
  headerBytes: number;
}

/**
 * Opens the frames that follow a verified header: checks each frame header (file tag, position, flags,
 * length) here, in order, and authenticates and decrypts the frames here or on worker threads; a
 * frame's plaintext is released only after it authenticated, and in order.
 */
async function* openFrames(
  keys: FrameKeys,
  r: Reader,
  frameSize: number,
  where: string,
  opts: ParallelOptions,
): AsyncGenerator<Buffer> {
  const pipe = new FramePipeline<Buffer[]>(opts, frameSize, wipeParts);
  const reuse = opts.reuseOutput === true;
  // With reuseOutput, a frame's plaintext buffer comes back for a later frame (whose plaintext then
  // overwrites it) once the consumer asks for the next one; a buffer not kept for reuse is overwritten
  // now, and the pipeline overwrites the ones it keeps when the stream ends.
  async function* release(parts: Buffer[]): AsyncGenerator<Buffer> {
    for (const p of parts) {
      if (p.length > 0) yield p;
      if (reuse && !pipe.recycle(p)) p.fill(0);
    }
  }
  // Frames authenticated but not yet handed to the consumer: overwritten if it stops early.
  let ready: Buffer[][] = [];
  async function* releaseAll(done: Buffer[][]): AsyncGenerator<Buffer> {
    ready = done;
    while (ready.length > 0) yield* release(ready.shift()!);
  }
  try {
    for (let index = 0; ; index++) {
      const h = await r.fill(FRAME_HEADER_BYTES);
      if (h < FRAME_HEADER_BYTES) throw truncated(where);
      const fh = r.take(FRAME_HEADER_BYTES);
      if (!bytesEqual(fh.subarray(0, 4), keys.fileTag)) {
        throw new BulwarkError(
          'ERR_FRAME_ORDER',
          `${where}: frame ${index} comes from another encrypted file`,
        );
      }
      const stated = fh.readUInt32BE(4);
      if (stated !== index) {
        throw new BulwarkError(
          'ERR_FRAME_ORDER',
          `${where}: frame ${stated} found where frame ${index} belongs: frames were reordered, repeated or dropped`,
        );
      }
      const flags = fh[8]!;
      if ((flags & ~1) !== 0) {
        throw new BulwarkError('ERR_CIPHERTEXT_TAMPERED', `${where}: frame ${index} has unknown flags`);
      }
      const last = flags === 1;
      const len = fh.readUInt32BE(9);
      if (len > frameSize || (!last && len !== frameSize)) {
        throw new BulwarkError(
          'ERR_CIPHERTEXT_TAMPERED',
          `${where}: frame ${index} has an impossible length`,
        );
      }
      const want = len + GCM_TAG_BYTES;
      if ((await r.fill(want)) < want) throw truncated(where);
      // The ciphertext as the source's own pieces (a frame usually straddles read chunks): fed to the
      // decipher one by one instead of being copied into one buffer first.
      const body = r.takePieces(len);
      const tag = r.take(GCM_TAG_BYTES);
      if (last && !(await r.atEnd())) {
        throw new BulwarkError('ERR_FRAME_ORDER', `${where}: data follows the final frame ${index}`);
      }
      const i = index;
      // A frame's plaintext as the part to release, or the tamper error when its tag did not verify.
      const authenticated = (plain: Buffer | null): Buffer[] => {
        if (!plain) throw frameTampered(where, i);
        return [plain];
      };
      const done = await pipe.submit(
        (into) => authenticated(openFrame(keys, i, last, fh, body, tag, into)),
        (into) => openFrameAsync(keys, i, last, fh, body, tag, into).then(authenticated),
      );
      // Released only after the whole frame authenticated.
      yield* releaseAll(done);
      if (last) break;
    }
    yield* releaseAll(await pipe.finish());
  } catch (e) {
    throw await pipe.abort(e);
  } finally {
    for (const parts of ready) wipeParts(parts);
    await pipe.close();
  }
}

/**
 * Decrypts a stream written by {@link encryptStream}: yields each frame's plaintext only after the
 * frame authenticated. A consumer that must not act on a prefix of a file (a truncated file's frames
 * all authenticate) has to wait for the generator to finish: {@link decryptFile} writes to a
 * temporary file and renames it only then. `where` names the input in messages.
 */
export async function* decryptStream(
  source: ByteSource,
  keyring: Keyring,
  where = '<stream>',
  opts: DecryptStreamOptions = {},
): AsyncGenerator<Buffer> {
  frameThreads(opts);
  const r = new Reader(source);
  try {
    const got = await r.fill(12);
    const fixed = r.take(got);
    if (got < 8 || !fixed.subarray(0, 8).equals(STREAM_MAGIC)) {
      throw new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${where} is not a Bulwark encrypted file`);
    }
    if (got < 12) throw truncated(where);
    if (fixed[8] !== STREAM_VERSION) {
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `${where}: encrypted-file format version ${fixed[8]} is not supported (this Bulwark reads ${STREAM_VERSION})`,
      );
    }
    if (fixed[9] !== ALG_AES256GCM_HKDF_STREAM) {
      throw new BulwarkError('ERR_FORMAT_VERSION', `${where}: unknown encryption algorithm ${fixed[9]}`);
    }
    const log2 = fixed[10]!;
    if (log2 < MIN_FRAME_LOG2 || log2 > MAX_FRAME_LOG2 || fixed[11] !== 0)
      throw headerTampered(where, 'frame size or flags');
    const frameSize = 2 ** log2;
    if ((await r.fill(SALT_BYTES + 2)) < SALT_BYTES + 2) throw truncated(where);
    const saltLen = r.take(SALT_BYTES + 2);
    const salt = Buffer.from(saltLen.subarray(0, SALT_BYTES));
    const n = saltLen.readUInt16BE(SALT_BYTES);
    if ((await r.fill(n + COMMIT_BYTES + MAC_BYTES)) < n + COMMIT_BYTES + MAC_BYTES) throw truncated(where);
    const wkBytes = Buffer.from(r.take(n));
    const commit = Buffer.from(r.take(COMMIT_BYTES));
    const mac = Buffer.from(r.take(MAC_BYTES));
    let wrapped: WrappedKey;
    try {
      const parsed = wrappedKeySchema.safeParse(JSON.parse(wkBytes.toString('utf8')));
      if (!parsed.success) throw new Error('schema');
      wrapped = parsed.data;
    } catch {
      throw headerTampered(where, 'wrapped data key');
    }
    const dek = await keyring.unwrapKey(wrapped, WRAP_CONTEXT);
    const keys = deriveFileKeys(dek, salt);
    dek.fill(0);
    try {
      // The commitment first: only the one DEK that made this file derives it.
      if (!bytesEqual(keys.commit, commit)) throw headerTampered(where, 'key commitment');
      const body = Buffer.concat([fixed, saltLen, wkBytes, commit]);
      if (!bytesEqual(createHmac('sha256', keys.mac).update(body).digest(), mac))
        throw headerTampered(where, 'header MAC');
      const headerHash = createHash('sha256').update(body).update(mac).digest();
      const frameKeys: FrameKeys = {
        enc: keys.enc,
        prefix: keys.prefix,
        headerHash,
        fileTag: salt.subarray(0, 4),
      };
      yield* openFrames(frameKeys, r, frameSize, where, opts);
    } finally {
      keys.enc.fill(0);
      keys.mac.fill(0);
    }
  } finally {
    await r.return();
  }
}

/** Reads the header of an encrypted file without decrypting (for `list`-like tools). */
export async function readStreamHeader(path: string): Promise<StreamHeaderInfo> {
  await requireFile(path, 'encrypted file');
  const s = createReadStream(path, { start: 0, end: 12 + SALT_BYTES + 2 + 0xffff + 64 });
  const r = new Reader(s);
  try {
    const got = await r.fill(12 + SALT_BYTES + 2);
    const b = r.take(got);
    if (got < 8 || !b.subarray(0, 8).equals(STREAM_MAGIC))
      throw new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${path} is not a Bulwark encrypted file`);
    if (got < 12 + SALT_BYTES + 2) throw truncated(path);
    if (b[8] !== STREAM_VERSION)
      throw new BulwarkError(
        'ERR_FORMAT_VERSION',
        `${path}: encrypted-file format version ${b[8]} is not supported`,
      );
    const n = b.readUInt16BE(12 + SALT_BYTES);
    if ((await r.fill(n)) < n) throw truncated(path);
    let raw: unknown;
    try {
      raw = JSON.parse(r.take(n).toString('utf8'));
    } catch {
      throw headerTampered(path, 'wrapped data key');
    }
    const wk = wrappedKeySchema.safeParse(raw);
    if (!wk.success) throw headerTampered(path, 'wrapped data key');
    return {
      version: b[8]!,
      frameSize: 2 ** b[10]!,
      wrappedKey: wk.data,
      headerBytes: 12 + SALT_BYTES + 2 + n + COMMIT_BYTES + MAC_BYTES,
    };
  } finally {
    s.destroy();
  }
}

/**
 * Writes `parts` to `out` atomically. The parts come from a stream with `reuseOutput`: each buffer is
 * reused once the next is requested, so each write completes before the next part is taken (the
 * frames in flight on the workers keep going meanwhile).
 */
async function pipeToFile(
  parts: AsyncIterable<Buffer>,
  out: string,
  opts: AtomicWriteOptions,
): Promise<number> {
  const f = await AtomicFileStream.create(out, opts);
  let bytes = 0;
  try {
    for await (const p of parts) {
      bytes += p.length;
      await new Promise<void>((resolve, reject) =>
        f.stream.write(p, (e) => (e ? reject(fsError(e, out, 'cannot write')) : resolve())),
      );
    }
    await f.commit();
    return bytes;
  } catch (e) {
    await f.abort();
    throw e;
  }
}

function readChunks(path: string, chunk: number): AsyncIterable<Buffer> {
  const s = createReadStream(path, { highWaterMark: chunk });
  s.on('error', () => undefined);
  return (async function* () {
    try {
      for await (const c of s) yield c as Buffer;
    } catch (e) {
      throw fsError(e, path, 'cannot read');
    }
  })();
}

/**
 * Encrypts file `input` to `output` (atomically: temporary file, fsync, rename). Returns the bytes
 * written.
 */
export async function encryptFile(
  input: string,
  output: string,
  keyring: Keyring,
  opts: EncryptStreamOptions & AtomicWriteOptions = {},
): Promise<number> {
  await requireFile(input, 'input file');
  const frameSize = opts.frameSize ?? DEFAULT_FRAME_SIZE;
  frameLog2(frameSize);
  frameThreads(opts);
  return pipeToFile(
    encryptStream(readChunks(input, frameSize), keyring, { ...opts, reuseOutput: true }),
    output,
    opts,
  );
}

/**
 * Decrypts file `input` to `output`; the output appears only when every frame, the last included,
 * authenticated (otherwise nothing is left behind). Mode 0600 unless given.
 */
export async function decryptFile(
  input: string,
  output: string,
  keyring: Keyring,
  opts: AtomicWriteOptions & DecryptStreamOptions = {},
): Promise<number> {
  await requireFile(input, 'encrypted file');
  frameThreads(opts);
  const parts = decryptStream(readChunks(input, DEFAULT_FRAME_SIZE + 64), keyring, input, {
    ...opts,
    reuseOutput: true,
  });
  return pipeToFile(parts, output, {
    mode: 0o600,
    ...opts,
  });
}

/** Encrypts a buffer in memory (the same format as files). */
export async function encryptBytes(
  data: Uint8Array,
  keyring: Keyring,
  opts: EncryptStreamOptions = {},
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of encryptStream([data], keyring, opts)) parts.push(p);
  return Buffer.concat(parts);
}

/** Decrypts a buffer in memory; nothing is returned unless the whole input authenticated. */
export async function decryptBytes(
  data: Uint8Array,
  keyring: Keyring,
  opts: DecryptStreamOptions = {},
): Promise<Buffer> {
  const parts: Buffer[] = [];
  try {
    for await (const p of decryptStream([data], keyring, '<bytes>', opts)) parts.push(p);
    return Buffer.concat(parts);
  } finally {
    for (const p of parts) p.fill(0);
  }
}
