import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BulwarkError, readInputFile } from '../core/index.js';

/**
 * The IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/): a
 * 4-byte magic (two zero bytes, a type code, the number of dimensions), each dimension as a big-endian
 * uint32, then the values in row-major order, big-endian. Gzipped files (Fashion-MNIST's, `1f 8b`) are
 * inflated first.
 */

/** IDX element types by their type code. */
const IDX_TYPES = {
  8: { name: 'uint8', size: 1 },
  9: { name: 'int8', size: 1 },
  11: { name: 'int16', size: 2 },
  12: { name: 'int32', size: 4 },
  13: { name: 'float32', size: 4 },
  14: { name: 'float64', size: 8 },
} as const;

export type IdxType = (typeof IDX_TYPES)[keyof typeof IDX_TYPES]['name'];

/** A decoded IDX tensor. */
export interface IdxTensor {
  readonly type: IdxType;
  /** Dimensions, outermost first (e.g. [60000, 28, 28]). */
  readonly shape: readonly number[];
  readonly data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

/** The largest decompressed IDX file read (1 GiB; Fashion-MNIST's training images are 47 MB). */
export const MAX_IDX_BYTES = 1 << 30;

function bad(source: string, what: string): BulwarkError {
  return new BulwarkError('ERR_FORMAT_UNSUPPORTED', `${source}: not a valid IDX file: ${what}`, {
    details: { file: source },
  });
}

/**
 * Decodes IDX bytes (gzipped or not).
 *
 * @example
 * ```ts
 * const t = parseIdx(readFileSync('train-labels-idx1-ubyte')); // t.shape = [60000]
 * ```
 */
export function parseIdx(bytes: Uint8Array, source = '<idx>', maxBytes = MAX_IDX_BYTES): IdxTensor {
  let b = bytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      // Bounded: a few kilobytes of gzip can claim gigabytes (a decompression bomb).
      b = gunzipSync(b, { maxOutputLength: maxBytes });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
        throw bad(source, `the gzip data decompresses to more than ${maxBytes} bytes`);
      throw bad(source, `gzip data is corrupt (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0)
    throw bad(source, 'the magic number does not start with two zero bytes');
  const info = IDX_TYPES[b[2] as keyof typeof IDX_TYPES];
  if (!info) throw bad(source, `unknown type code 0x${b[2]!.toString(16)}`);
  const ndim = b[3]!;
  if (ndim === 0) throw bad(source, 'zero dimensions');
  const headerLen = 4 + 4 * ndim;
  if (b.length < headerLen) throw bad(source, 'truncated header');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    shape.push(d);
    count *= d;
  }
  const expected = headerLen + count * info.size;
  if (b.length !== expected) {
    throw bad(source, `expected ${expected} bytes for shape [${shape.join(', ')}], found ${b.length}`);
  }
  const n = count;
  let data: IdxTensor['data'];
  switch (info.name) {
    case 'uint8':
    case 'int8': {
      // A copy into a fresh buffer: a Node Buffer's slice shares (pooled) memory.
      const raw = new Uint8Array(n);
      raw.set(b.subarray(headerLen, expected));
      data = info.name === 'uint8' ? raw : new Int8Array(raw.buffer);
      break;
    }
    case 'int16': {
      const a = new Int16Array(n);
      for (let i = 0; i < n; i++) a[i] = view.getInt16(headerLen + 2 * i, false);
      data = a;
      break;
    }
    case 'int32': {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = view.getInt32(headerLen + 4 * i, false);
      data = a;
      break;
    }
    case 'float32': {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = view.getFloat32(headerLen + 4 * i, false);
      data = a;
      break;
    }
    case 'float64': {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = view.getFloat64(headerLen + 8 * i, false);
      data = a;
      break;
    }
  }
  return { type: info.name, shape, data };
}

/** Reads and decodes an IDX file (gzipped or not). */
export async function readIdx(path: string): Promise<IdxTensor> {
  return parseIdx(await readInputFile(path, 'IDX file'), basename(path));
}

/** Encodes a tensor as IDX bytes (uncompressed), the inverse of {@link parseIdx}. */
export function encodeIdx(t: IdxTensor): Uint8Array {
  const entry = Object.entries(IDX_TYPES).find(([, v]) => v.name === t.type);
  if (!entry) throw bad('<idx>', `unknown type ${t.type}`);
  const [code, info] = entry;
  const headerLen = 4 + 4 * t.shape.length;
  const out = new Uint8Array(headerLen + t.data.length * info.size);
  const view = new DataView(out.buffer);
  out[2] = Number(code);
  out[3] = t.shape.length;
  for (let i = 0; i < t.shape.length; i++) view.setUint32(4 + 4 * i, t.shape[i]!, false);
  for (let i = 0; i < t.data.length; i++) {
    const o = headerLen + i * info.size;
    const x = t.data[i]!;
    if (info.name === 'uint8') view.setUint8(o, x);
    else if (info.name === 'int8') view.setInt8(o, x);
    else if (info.name === 'int16') view.setInt16(o, x, false);
    else if (info.name === 'int32') view.setInt32(o, x, false);
    else if (info.name === 'float32') view.setFloat32(o, x, false);
    else view.setFloat64(o, x, false);
  }
  return out;
}
