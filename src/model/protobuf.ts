/**
 * One reader of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) for the
 * walks of an ONNX model that run before any decoder or ONNX Runtime sees it: the limits and external
 * data of src/model/onnx-info.ts and the memory bound of src/model/onnx-memory.ts. Nothing is decoded
 * but what a walk asks for; every length is checked against the buffer, so a hostile file ends in
 * ERR_ONNX_INVALID, never an out-of-range read.
 */
import { BulwarkError } from '../core/index.js';

export const WT_VARINT = 0;
export const WT_I64 = 1;
export const WT_LEN = 2;
export const WT_I32 = 5;

const TWO_64 = 2n ** 64n;
const TWO_63 = 2n ** 63n;

/** ERR_ONNX_INVALID: the bytes are not a well-formed ONNX model. */
export function invalidOnnx(what: string): BulwarkError {
  return new BulwarkError('ERR_ONNX_INVALID', `not a well-formed ONNX model: ${what}`);
}

/** One field of a message. */
export interface ProtoField {
  no: number;
  wt: number;
  /** A varint's value (see {@link ProtoOptions.signed}); 0 for other wire types. */
  int: number;
  /** The bytes of a length-delimited or fixed-size field (a view, no copy); empty for a varint. */
  bytes: Uint8Array;
}

export interface ProtoOptions {
  /** Nesting depth of this message: above 64 is ERR_ONNX_INVALID (default 0). */
  depth?: number;
  /**
   * Read varints as signed 64-bit integers, exactly (through a BigInt past 2^49; a double then, exact
   * up to 2^53): int64 values of shapes and constants. Default: unsigned, as a double (counts, versions,
   * dims checked against limits), where a value past 2^63 stays a huge positive number.
   */
  signed?: boolean;
}

const EMPTY = new Uint8Array(0);

/** Reads the varint at `p`; returns [value, next position]. */
export function varintAt(buf: Uint8Array, p: number, signed = false): [number, number] {
  let x = 0;
  let mul = 1;
  for (let i = 0; i < (signed ? 7 : 10); i++) {
    if (p >= buf.length) throw invalidOnnx('truncated varint');
    const b = buf[p++] as number;
    x += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [x, p];
    mul *= 128;
  }
  if (!signed) throw invalidOnnx('varint too long');
  // Eight bytes or more: past 2^49, read exactly as a BigInt and made signed (two's complement).
  let big = BigInt(x);
  let shift = 49n;
  for (let i = 7; i < 10; i++) {
    if (p >= buf.length) throw invalidOnnx('truncated varint');
    const b = buf[p++] as number;
    big += BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      big %= TWO_64;
      return [Number(big >= TWO_63 ? big - TWO_64 : big), p];
    }
    shift += 7n;
  }
  throw invalidOnnx('varint too long');
}

/** Iterates the fields of one message, fixed-size ones included. */
export function* protoFields(buf: Uint8Array, options: ProtoOptions = {}): Generator<ProtoField> {
  if ((options.depth ?? 0) > 64) throw invalidOnnx('nesting too deep');
  const signed = options.signed === true;
  let p = 0;
  const n = buf.length;
  while (p < n) {
    let key: number;
    [key, p] = varintAt(buf, p);
    const no = Math.floor(key / 8);
    const wt = key % 8;
    if (no === 0) throw invalidOnnx('field number 0');
    if (wt === WT_VARINT) {
      let v: number;
      [v, p] = varintAt(buf, p, signed);
      yield { no, wt, int: v, bytes: EMPTY };
    } else if (wt === WT_I64 || wt === WT_I32) {
      const len = wt === WT_I64 ? 8 : 4;
      if (p + len > n) throw invalidOnnx(wt === WT_I64 ? 'truncated fixed64' : 'truncated fixed32');
      yield { no, wt, int: 0, bytes: buf.subarray(p, p + len) };
      p += len;
    } else if (wt === WT_LEN) {
      let len: number;
      [len, p] = varintAt(buf, p);
      if (len > n - p) throw invalidOnnx('length runs past the end');
      yield { no, wt, int: 0, bytes: buf.subarray(p, p + len) };
      p += len;
    } else throw invalidOnnx(`unsupported wire type ${wt}`);
  }
}

const dec = new TextDecoder('utf-8', { fatal: false });
/** A string field's UTF-8 (malformed sequences replaced: names are compared, never trusted). */
export const utf8 = (b: Uint8Array): string => dec.decode(b);
