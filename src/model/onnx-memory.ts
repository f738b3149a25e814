/**
 * An upper bound on the memory an ONNX graph asks ONNX Runtime for, computed from the model's bytes
 * before ONNX Runtime sees them, and the refusal of a model whose bound passes a limit or cannot be
 * bounded at all.
 *
 * Why: an ONNX graph is a program whose tensor sizes are values. A 222-byte model whose
 * `ConstantOfShape` reads its shape from an initializer made ONNX Runtime 1.30 allocate 200 MB while
 * the session was created (its constant folding runs the node), a 315-byte one whose `Expand` takes
 * `Shape(x)[0] * 50,000,000` allocated 200 MB on the first run, and a 107-byte model with a sparse
 * initializer of dims [50,000,000, 2] and one value took 1.3 GB at creation (sparse initializers are
 * made dense on load). Change the constants and each asks for any size: a gateway serving several
 * models goes down on one request.
 *
 * How: abstract interpretation of the graph over intervals (Cousot & Cousot, POPL 1977). Every
 * tensor gets its element type, its rank, an interval [lo, hi] for each dimension and, when it is a
 * small tensor of known shape, an interval for each of its values (the integer "shape subgraphs":
 * Shape, Gather, Slice, Concat, Unsqueeze, Cast, Add/Sub/Mul/Div, ... are folded this way). The input
 * is what Bulwark feeds it: float32 [rows, features] with rows in [1, maxBatch]. Each operator Bulwark
 * knows computes an interval for its outputs from its inputs (the ONNX operator specifications,
 * onnx/docs/Operators.md and Operators-ml.md); the upper bounds of the sizes, times the element size,
 * summed over every tensor the graph computes (every node output, the dense form of sparse
 * initializers, the column buffer of a convolution), bound what one run can hold even if ONNX Runtime
 * freed nothing. A size that rests on a value not known before the run (a Range over the input's
 * values, NonZero then Expand) has no upper bound, and the model is refused.
 *
 * Operators outside the list below are refused (fail closed): an operator whose output size is not
 * known here could be any size. `OPS` lists what is accepted; docs/model-package.md lists the rules.
 */
import { BulwarkError, requireInteger } from '../core/index.js';
import { readValueInfo } from './onnx-info.js';
import {
  invalidOnnx as invalid,
  type ProtoField,
  protoFields,
  utf8 as str,
  varintAt,
  WT_I32,
  WT_LEN,
  WT_VARINT,
} from './protobuf.js';

/** Limits of {@link onnxMemoryBound}. */
export interface OnnxMemoryOptions {
  /** Most rows Bulwark feeds the model in one run (default {@link DEFAULT_MAX_BATCH}). */
  maxBatch?: number;
  /**
   * Widest input a model whose feature dimension is symbolic is given (default
   * {@link DEFAULT_MAX_FEATURES}); a model with a fixed width gets that width.
   */
  maxFeatures?: number;
  /**
   * Most bytes all the tensors one run computes may add up to, at `maxBatch` rows (default
   * {@link DEFAULT_MAX_MEMORY_BYTES}).
   */
  maxMemoryBytes?: number;
  /**
   * How the caller's user sets `maxMemoryBytes`, named in the refusal so that it says what to raise
   * (default `maxMemoryBytes`; the gateway names `models.<name>.maxMemoryBytes`, the CLI
   * `--max-model-memory`).
   */
  limitName?: string;
  /** How the user sets `maxBatch`, named beside the row count in a refusal (the gateway's `maxRows`). */
  batchName?: string;
}

/** Default of {@link OnnxMemoryOptions.maxBatch}: runs of more rows are split into batches of this many. */
export const DEFAULT_MAX_BATCH = 4096;
/** Default of {@link OnnxMemoryOptions.maxFeatures}. */
export const DEFAULT_MAX_FEATURES = 65_536;
/** Default of {@link OnnxMemoryOptions.maxMemoryBytes}: 1 GiB. */
export const DEFAULT_MAX_MEMORY_BYTES = 2 ** 30;

/** What {@link onnxMemoryBound} found. */
export interface OnnxMemoryBound {
  /** Upper bound of the bytes of every tensor one run computes, summed. */
  bytes: number;
  /** The tensor with the largest bound. */
  largest: { node: string; op: string; output: string; bytes: number } | null;
  /** The batch and feature bounds the sizes were computed for. */
  maxBatch: number;
  maxFeatures: number;
  /** Whether the input's feature dimension is symbolic (runs must then keep within maxFeatures). */
  symbolicFeatures: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Wire format (onnx/onnx.proto3 field numbers). Varints are read exactly as signed 64-bit integers:
// axis = -1 is written as 2^64 - 1, which a double cannot tell from 2^64.

/** The wire format, int64 varints read signed (shapes and constants): src/model/protobuf.ts. */
const fields = (buf: Uint8Array): Generator<ProtoField> => protoFields(buf, { signed: true });

/** Varints of a packed field, or the one value of an unpacked one, appended to `out`. */
function pushInts(f: ProtoField, out: number[]): void {
  if (f.wt === WT_VARINT) out.push(f.int);
  else if (f.wt === WT_LEN) {
    let p = 0;
    while (p < f.bytes.length) {
      let v: number;
      [v, p] = varintAt(f.bytes, p, true);
      out.push(v);
    }
  }
}

/** Floats (fixed32) of a packed field or of one unpacked value, appended to `out`. */
function pushFloats(f: ProtoField, out: number[], width: 4 | 8): void {
  const view = new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength);
  for (let p = 0; p + width <= f.bytes.length; p += width)
    out.push(width === 4 ? view.getFloat32(p, true) : view.getFloat64(p, true));
}

/** Number of values in a packed varint field (without decoding them). */
function countVarints(f: ProtoField): number {
  if (f.wt !== WT_LEN) return 1;
  let c = 0;
  for (const b of f.bytes) if ((b & 0x80) === 0) c++;
  return c;
}

// ONNX TensorProto.DataType -> bytes per element (strings: see stringBytes).
const STRING = 8;
const ELEM_BYTES: Record<number, number> = {
  1: 4, // FLOAT
  2: 1, // UINT8
  3: 1, // INT8
  4: 2, // UINT16
  5: 2, // INT16
  6: 4, // INT32
  7: 8, // INT64
  9: 1, // BOOL
  10: 2, // FLOAT16
  11: 8, // DOUBLE
  12: 4, // UINT32
  13: 8, // UINT64
  14: 8, // COMPLEX64
  15: 16, // COMPLEX128
  16: 2, // BFLOAT16
  17: 1, // FLOAT8E4M3FN
  18: 1,
  19: 1,
  20: 1,
  21: 1, // UINT4 (stored a byte each at most)
  22: 1, // INT4
  23: 1, // FLOAT4E2M1
};
const INT_RANGE: Record<number, [number, number]> = {
  2: [0, 255],
  3: [-128, 127],
  4: [0, 65_535],
  5: [-32_768, 32_767],
  6: [-(2 ** 31), 2 ** 31 - 1],
  7: [-(2 ** 63), 2 ** 63],
  9: [0, 1],
  12: [0, 2 ** 32 - 1],
  13: [0, 2 ** 64],
};
const INT64 = 7;
const FLOAT = 1;
const BOOL = 9;
/** A pseudo element type: one entry of a ZipMap's map (a node of a std::map with its key). */
const MAP_ENTRY = -1;

/** A tensor as parsed: dims, type, and its values when it is small enough to fold. */
interface ConstTensor {
  dims: number[];
  type: number;
  values?: number[];
}

/** Tensors with at most this many values are folded (shapes, axes, pads, scales, ...). */
const FOLD = 64;

function parseTensor(b: Uint8Array): ConstTensor {
  const dims: number[] = [];
  let type = 0;
  const ints: number[] = [];
  const floats: number[] = [];
  let raw: Uint8Array | undefined;
  const tensorFields: ProtoField[] = [];
  for (const f of fields(b)) {
    if (f.no === 1) pushInts(f, dims);
    else if (f.no === 2 && f.wt === WT_VARINT) type = f.int;
    else if (f.no === 9 && f.wt === WT_LEN) raw = f.bytes;
    else if (f.no === 4 || f.no === 5 || f.no === 7 || f.no === 10 || f.no === 11) tensorFields.push(f);
  }
  const n = dims.reduce((a, d) => a * d, 1);
  const t: ConstTensor = { dims, type };
  if (!(n <= FOLD) || dims.some((d) => d < 0)) return t;
  for (const f of tensorFields) {
    if (f.no === 4) pushFloats(f, floats, 4);
    else if (f.no === 10) pushFloats(f, floats, 8);
    else if (f.no === 5 || f.no === 7 || f.no === 11) pushInts(f, ints);
  }
  if (raw !== undefined) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const w = ELEM_BYTES[type];
    if (w !== undefined && raw.length === n * w) {
      const v: number[] = [];
      for (let i = 0; i < n; i++) {
        const o = i * w;
        if (type === 1) v.push(view.getFloat32(o, true));
        else if (type === 11) v.push(view.getFloat64(o, true));
        else if (type === 7) v.push(Number(view.getBigInt64(o, true)));
        else if (type === 13) v.push(Number(view.getBigUint64(o, true)));
        else if (type === 6) v.push(view.getInt32(o, true));
        else if (type === 12) v.push(view.getUint32(o, true));
        else if (type === 5) v.push(view.getInt16(o, true));
        else if (type === 4) v.push(view.getUint16(o, true));
        else if (type === 3) v.push(view.getInt8(o));
        else if (type === 2 || type === 9) v.push(view.getUint8(o));
        else return t;
      }
      t.values = v;
    }
    return t;
  }
  const v = floats.length > 0 ? floats : ints;
  // uint64_data holds uint32 too; int32_data holds every type of 32 bits or less (float16 as bits).
  if (v.length === n && (floats.length > 0 || type !== 10)) t.values = v;
  return t;
}

interface Attr {
  name: string;
  i?: number;
  f?: number;
  s?: Uint8Array;
  ints: number[];
  floats: number[];
  /** The tensor of `t`, unparsed. */
  t?: Uint8Array;
  g?: Uint8Array;
  sparse?: Uint8Array;
  /** Number of entries of `ints` / `strings` (counted without decoding them). */
  intCount: number;
  floatCount: number;
  stringCount: number;
}

interface Node {
  name: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, Attr>;
}

/** Reads an attribute; `ints` and `floats` are decoded only for the listed names (tree arrays are big). */
function parseAttr(b: Uint8Array, decode: (name: string) => boolean): Attr {
  const a: Attr = {
    name: '',
    ints: [],
    floats: [],
    intCount: 0,
    floatCount: 0,
    stringCount: 0,
  };
  const intFields: ProtoField[] = [];
  const floatFields: ProtoField[] = [];
  for (const f of fields(b)) {
    if (f.no === 1 && f.wt === WT_LEN) a.name = str(f.bytes);
    else if (f.no === 2 && f.wt === WT_I32)
      a.f = new DataView(f.bytes.buffer, f.bytes.byteOffset, 4).getFloat32(0, true);
    else if (f.no === 3 && f.wt === WT_VARINT) a.i = f.int;
    else if (f.no === 4 && f.wt === WT_LEN) a.s = f.bytes;
    else if (f.no === 5 && f.wt === WT_LEN) a.t = f.bytes;
    else if (f.no === 6 && f.wt === WT_LEN) a.g = f.bytes;
    else if (f.no === 7) {
      floatFields.push(f);
      a.floatCount += f.wt === WT_LEN ? Math.floor(f.bytes.length / 4) : 1;
    } else if (f.no === 8) {
      intFields.push(f);
      a.intCount += countVarints(f);
    } else if (f.no === 9 && f.wt === WT_LEN) a.stringCount++;
    else if (f.no === 22 && f.wt === WT_LEN) a.sparse = f.bytes;
  }
  if (decode(a.name)) {
    for (const f of intFields) pushInts(f, a.ints);
    for (const f of floatFields) pushFloats(f, a.floats, 4);
  }
  return a;
}

/** Attributes whose numbers the bound needs (everything else stays packed). */
const DECODED_ATTRS = new Set([
  'axes',
  'perm',
  'pads',
  'shape',
  'starts',
  'ends',
  'split',
  'scales',
  'kernel_shape',
  'strides',
  'dilations',
  'output_padding',
  'output_shape',
  'value_ints',
  'value_floats',
  'inputdimensions',
  'blocksize',
  'vectors_per_class',
]);

function parseNode(b: Uint8Array): Node {
  const n: Node = { name: '', op: '', domain: '', inputs: [], outputs: [], attrs: new Map() };
  for (const f of fields(b)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 1) n.inputs.push(str(f.bytes));
    else if (f.no === 2) n.outputs.push(str(f.bytes));
    else if (f.no === 3) n.name = str(f.bytes);
    else if (f.no === 4) n.op = str(f.bytes);
    else if (f.no === 7) n.domain = str(f.bytes);
    else if (f.no === 5) {
      const a = parseAttr(f.bytes, (name) => DECODED_ATTRS.has(name));
      n.attrs.set(a.name, a);
    }
  }
  return n;
}

interface Graph {
  nodes: Node[];
  initializers: Map<string, ConstTensor>;
  /** Dense element counts and types of sparse initializers. */
  sparse: { name: string; dims: number[]; type: number }[];
  inputs: { name: string; dims: (number | null)[] | null; type: number }[];
  outputs: string[];
}

function parseSparse(b: Uint8Array): { name: string; dims: number[]; type: number } {
  const dims: number[] = [];
  let name = '';
  let type = 0;
  for (const f of fields(b)) {
    if (f.no === 3) pushInts(f, dims);
    else if (f.no === 1 && f.wt === WT_LEN) {
      for (const g of fields(f.bytes)) {
        if (g.no === 8 && g.wt === WT_LEN) name = str(g.bytes);
        else if (g.no === 2 && g.wt === WT_VARINT) type = g.int;
      }
    }
  }
  return { name, dims, type };
}

function parseGraph(b: Uint8Array): Graph {
  const g: Graph = { nodes: [], initializers: new Map(), sparse: [], inputs: [], outputs: [] };
  for (const f of fields(b)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 1) g.nodes.push(parseNode(f.bytes));
    else if (f.no === 5) {
      let name = '';
      for (const t of fields(f.bytes)) if (t.no === 8 && t.wt === WT_LEN) name = str(t.bytes);
      g.initializers.set(name, parseTensor(f.bytes));
    } else if (f.no === 15) g.sparse.push(parseSparse(f.bytes));
    else if (f.no === 11) g.inputs.push(readValueInfo(f.bytes));
    else if (f.no === 12) g.outputs.push(readValueInfo(f.bytes).name);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------------
// Intervals and abstract tensors.

type Iv = readonly [number, number];
const ANY: Iv = [-Infinity, Infinity];
const exact = (v: number): Iv => [v, v];
const isExact = (v: Iv): boolean => v[0] === v[1];
/** a * b with 0 * Infinity = 0 (an empty dimension empties the tensor). */
const mul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : a * b);
const hull = (a: Iv, b: Iv): Iv => [Math.min(a[0], b[0]), Math.max(a[1], b[1])];
/** A dimension interval: sizes are never negative. */
const dimIv = (v: Iv): Iv => [Math.max(0, v[0]), Math.max(0, v[1])];

/** An abstract tensor: what is known of a value before the run. */
interface T {
  /** ONNX element type; 0 when not known. */
  type: number;
  /** One interval per dimension; undefined when the rank is not known. */
  dims?: Iv[];
  /** Upper bound of the element count. */
  max: number;
  /** Its values, when its shape is known exactly and it has at most FOLD of them. */
  v?: Iv[];
  /**
   * An interval holding every one of its values, whatever its size (NonZero's indices: each below
   * the largest dimension of its input); read as its values once the shape is known and small.
   */
  range?: Iv;
}

function prodHi(dims: readonly Iv[]): number {
  let p = 1;
  for (const d of dims) p = mul(p, d[1]);
  return p;
}
function prodLo(dims: readonly Iv[]): number {
  let p = 1;
  for (const d of dims) p = mul(p, d[0]);
  return p;
}
function exactDims(dims: readonly Iv[] | undefined): number[] | undefined {
  if (dims === undefined || !dims.every(isExact)) return undefined;
  return dims.map((d) => d[0]);
}

function tensor(type: number, dims: Iv[], v?: Iv[], max = Infinity): T {
  const d = dims.map(dimIv);
  const t: T = { type, dims: d, max: Math.min(max, prodHi(d)) };
  const ed = exactDims(d);
  if (v !== undefined && ed !== undefined && v.length === ed.reduce((a, x) => a * x, 1)) t.v = v;
  return t;
}
const rankless = (type: number, max: number): T => ({ type, max });

/** Clamps values computed by integer arithmetic: out of the type's range they wrap, so anything goes. */
function intValues(type: number, v: Iv[]): Iv[] {
  const r = INT_RANGE[type];
  if (r === undefined) return v;
  // Past 2^53 a double no longer holds the exact integer either.
  const lo = Math.max(r[0], -(2 ** 53));
  const hi = Math.min(r[1], 2 ** 53);
  return v.map((x) => (x[0] < lo || x[1] > hi ? ANY : [Math.ceil(x[0]), Math.floor(x[1])]));
}

/**
 * Sizes read from values (a shape, a count): an interval that may be negative is kept as given. A
 * tensor known only by the interval of its values gives that interval for each value, when its shape
 * is known exactly and small.
 */
function valuesOf(t: T | undefined): Iv[] | undefined {
  if (t?.v !== undefined || t?.range === undefined) return t?.v;
  const ed = exactDims(t.dims);
  const n = ed?.reduce((a, x) => a * x, 1);
  return n !== undefined && n <= FOLD ? Array.from({ length: n }, () => t.range as Iv) : undefined;
}

/** The interval of every value of `t`, when known. */
function rangeOf(t: T | undefined): Iv | undefined {
  if (t?.range !== undefined) return t.range;
  if (t?.v === undefined || t.v.length === 0) return undefined;
  return t.v.reduce((a, b) => hull(a, b));
}

/**
 * Operators whose output values are some of their first input's values (moved, picked or compared,
 * never computed), so the interval of the input's values holds the output's; Concat takes the hull of
 * all its inputs.
 */
const KEEPS_VALUES = new Set([
  'Identity',
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Slice',
  'Gather',
  'GatherElements',
  'GatherND',
  'Expand',
  'Tile',
  'Concat',
  'ReduceMax',
  'ReduceMin',
  'TopK',
  'Split',
  'Compress',
]);

// ---------------------------------------------------------------------------------------------------
// The analysis.

interface Ctx {
  opset: number;
  mlOpset: number;
  /** Bytes an element of a string tensor may take (32 for std::string, plus the longest string). */
  stringBytes: number;
  functions: Set<string>;
  /** Every tensor's bound: name, node, op, bytes. */
  tensors: { node: string; op: string; output: string; bytes: number }[];
}

class Refusal extends Error {
  constructor(
    readonly node: Node | null,
    readonly why: string,
  ) {
    super(why);
  }
}

function elemBytes(ctx: Ctx, type: number): number {
  if (type === STRING) return ctx.stringBytes;
  if (type === MAP_ENTRY) return 64 + ctx.stringBytes;
  // Unknown types: as much as the widest numeric type or a string.
  return ELEM_BYTES[type] ?? Math.max(16, ctx.stringBytes);
}

const attrInt = (n: Node, name: string, dflt: number): number => n.attrs.get(name)?.i ?? dflt;
function attrInts(n: Node, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  return a === undefined ? undefined : a.ints;
}
function attrFloats(n: Node, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  return a === undefined ? undefined : a.floats;
}

function normAxis(axis: number, rank: number, node: Node): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) throw new Refusal(node, `axis ${axis} is outside a tensor of rank ${rank}`);
  return a;
}

/** Multidirectional (numpy) broadcasting of dims; undefined when a rank is not known. */
function broadcast(shapes: (readonly Iv[] | undefined)[]): Iv[] | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const ss = shapes as (readonly Iv[])[];
  const rank = Math.max(0, ...ss.map((s) => s.length));
  const out: Iv[] = [];
  for (let i = 0; i < rank; i++) {
    let lo = 0;
    let hi = 0;
    let any = false;
    for (const s of ss) {
      const d = s[s.length - rank + i];
      if (d === undefined) continue;
      // The result is one of the dims (a dim of 1 takes the other's), so it lies in their hull.
      lo = any ? Math.min(lo, d[0]) : d[0];
      hi = any ? Math.max(hi, d[1]) : d[1];
      any = true;
    }
    out.push(any ? [lo, hi] : [1, 1]);
  }
  return out;
}

/** Element bound of a broadcast whose ranks are not all known: each dim is at most the product. */
function broadcastMax(ts: T[]): number {
  return ts.reduce((a, t) => mul(a, t.max), 1);
}

function broadcastValues(ts: T[], f: (xs: Iv[]) => Iv): Iv[] | undefined {
  const shape = broadcast(ts.map((t) => t.dims));
  const ed = exactDims(shape);
  const vs = ts.map(valuesOf);
  if (ed === undefined || vs.some((v) => v === undefined)) return undefined;
  const n = ed.reduce((a, x) => a * x, 1);
  if (n > FOLD) return undefined;
  const out: Iv[] = [];
  const strides = ts.map((t) => {
    const d = exactDims(t.dims) as number[];
    const pad = [...Array(ed.length - d.length).fill(1), ...d];
    const st: number[] = [];
    let s = 1;
    for (let i = pad.length - 1; i >= 0; i--) {
      st[i] = pad[i] === 1 ? 0 : s;
      s *= pad[i] as number;
    }
    return st;
  });
  for (let i = 0; i < n; i++) {
    const xs: Iv[] = [];
    ts.forEach((_t, k) => {
      let rem = i;
      let off = 0;
      for (let j = ed.length - 1; j >= 0; j--) {
        const d = ed[j] as number;
        off += (rem % d) * (strides[k]?.[j] as number);
        rem = Math.floor(rem / d);
      }
      xs.push(vs[k]?.[off] as Iv);
    });
    out.push(f(xs));
  }
  return out;
}

const isIntType = (type: number): boolean => INT_RANGE[type] !== undefined;

/** Interval arithmetic of the binary operators folded (Add, Sub, Mul, Div, Mod, Max, Min, ...). */
function binary(op: string, a: Iv, b: Iv, intType: boolean): Iv {
  const corners = (f: (x: number, y: number) => number): Iv => {
    const c = [f(a[0], b[0]), f(a[0], b[1]), f(a[1], b[0]), f(a[1], b[1])];
    if (c.some(Number.isNaN)) return ANY;
    return [Math.min(...c), Math.max(...c)];
  };
  switch (op) {
    case 'Add':
      return [a[0] + b[0], a[1] + b[1]];
    case 'Sub':
      return [a[0] - b[1], a[1] - b[0]];
    case 'Mul':
      return corners((x, y) => mul(x, y));
    case 'Div': {
      if (b[0] <= 0 && b[1] >= 0) return ANY; // integer division by zero is undefined
      // Truncation is monotone, so the extremes are at the corners.
      return corners((x, y) => (intType ? Math.trunc(x / y) : x / y));
    }
    case 'Mod': {
      if (isExact(a) && isExact(b) && b[0] !== 0 && Number.isFinite(a[0])) {
        const m = a[0] % b[0];
        return exact(intType && m !== 0 && Math.sign(m) !== Math.sign(b[0]) ? m + b[0] : m);
      }
      const m = Math.max(Math.abs(b[0]), Math.abs(b[1]));
      return [-m, m];
    }
    case 'Max':
      return [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
    case 'Min':
      return [Math.min(a[0], b[0]), Math.min(a[1], b[1])];
    case 'Pow':
      return isExact(a) && isExact(b) ? exact(a[0] ** b[0]) : ANY;
    case 'Equal':
      return isExact(a) && isExact(b)
        ? exact(a[0] === b[0] ? 1 : 0)
        : a[1] < b[0] || b[1] < a[0]
          ? [0, 0]
          : [0, 1];
    case 'Less':
      return a[1] < b[0] ? [1, 1] : a[0] >= b[1] ? [0, 0] : [0, 1];
    case 'LessOrEqual':
      return a[1] <= b[0] ? [1, 1] : a[0] > b[1] ? [0, 0] : [0, 1];
    case 'Greater':
      return a[0] > b[1] ? [1, 1] : a[1] <= b[0] ? [0, 0] : [0, 1];
    case 'GreaterOrEqual':
      return a[0] >= b[1] ? [1, 1] : a[1] < b[0] ? [0, 0] : [0, 1];
    case 'And':
      // Booleans: intervals within [0, 1].
      return [a[0] >= 1 && b[0] >= 1 ? 1 : 0, a[1] >= 1 && b[1] >= 1 ? 1 : 0];
    case 'Or':
      return a[0] === a[1] && b[0] === b[1] ? exact(a[0] !== 0 || b[0] !== 0 ? 1 : 0) : [0, 1];
    default:
      return ANY;
  }
}

/** Unary value folding. */
function unary(op: string, x: Iv, node: Node, outType: number): Iv {
  switch (op) {
    case 'Identity':
      return x;
    case 'Neg':
      return [-x[1], -x[0]];
    case 'Abs':
      return x[0] >= 0 ? x : x[1] <= 0 ? [-x[1], -x[0]] : [0, Math.max(-x[0], x[1])];
    case 'Floor':
      return [Math.floor(x[0]), Math.floor(x[1])];
    case 'Ceil':
      return [Math.ceil(x[0]), Math.ceil(x[1])];
    case 'Round':
      return [Math.round(x[0]) - 1, Math.round(x[1]) + 1];
    case 'Relu':
      return [Math.max(0, x[0]), Math.max(0, x[1])];
    case 'Sign':
      return [Math.sign(x[0]), Math.sign(x[1])];
    case 'Not':
      return isExact(x) ? exact(x[0] === 0 ? 1 : 0) : [0, 1];
    case 'Cast':
    case 'CastLike': {
      if (outType === BOOL) return isExact(x) ? exact(x[0] !== 0 ? 1 : 0) : [0, 1];
      if (!isIntType(outType)) return x;
      const t: Iv = [Math.trunc(x[0]), Math.trunc(x[1])];
      // A cast to a narrower integer wraps (C++ conversion): an exact value is wrapped here, a range that
      // does not fit becomes the whole range of the type.
      const r = INT_RANGE[outType] as [number, number];
      if (t[0] >= r[0] && t[1] <= r[1]) return t;
      if (isExact(t) && Number.isSafeInteger(t[0]) && outType !== INT64 && outType !== 13) {
        const span = r[1] - r[0] + 1;
        const w = (((t[0] - r[0]) % span) + span) % span;
        return exact(w + r[0]);
      }
      void node;
      return [r[0], r[1]];
    }
    default:
      return ANY;
  }
}

const SAME_SHAPE = new Set([
  'Abs',
  'Acos',
  'Acosh',
  'Asin',
  'Asinh',
  'Atan',
  'Atanh',
  'BitwiseNot',
  'Ceil',
  'Celu',
  'Cos',
  'Cosh',
  'CumSum',
  'Elu',
  'Erf',
  'Exp',
  'Floor',
  'Gelu',
  'HardSigmoid',
  'HardSwish',
  'Hardmax',
  'Identity',
  'IsInf',
  'IsNaN',
  'LeakyRelu',
  'Log',
  'LogSoftmax',
  'LpNormalization',
  'LRN',
  'MeanVarianceNormalization',
  'Mish',
  'Neg',
  'Not',
  'Reciprocal',
  'Relu',
  'Round',
  'Selu',
  'Shrink',
  'Sigmoid',
  'Sign',
  'Sin',
  'Sinh',
  'Softmax',
  'Softplus',
  'Softsign',
  'Sqrt',
  'Tan',
  'Tanh',
  'ThresholdedRelu',
  'Trilu',
  'Clip',
  'Cast',
  'CastLike',
  'Dropout',
  'InstanceNormalization',
  'BatchNormalization',
  // GroupNormalization (opset 18, 21): Y has X's shape (https://onnx.ai/onnx/operators/onnx__GroupNormalization.html).
  'GroupNormalization',
  'LayerNormalization',
  'QuantizeLinear',
  'DequantizeLinear',
  'ScatterElements',
  'ScatterND',
  'Scatter',
  'EyeLike',
  'RandomNormalLike',
  'RandomUniformLike',
  'Bernoulli',
]);
const BROADCAST = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Mod',
  'Max',
  'Min',
  'Mean',
  'Sum',
  'And',
  'Or',
  'Xor',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'BitShift',
  'BitwiseAnd',
  'BitwiseOr',
  'BitwiseXor',
  'PRelu',
  'Where',
]);
const BOOL_OUT = new Set([
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'And',
  'Or',
  'Xor',
  'Not',
  'IsInf',
  'IsNaN',
]);
const REDUCE = new Set([
  'ReduceSum',
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
  'ArgMax',
  'ArgMin',
]);
const CONV = new Set(['Conv', 'ConvInteger', 'QLinearConv']);
const POOL = new Set(['MaxPool', 'AveragePool', 'LpPool']);
const GLOBAL_POOL = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);
const SHAPE_OPS = new Set([
  'Shape',
  'Size',
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Gather',
  'GatherElements',
  'GatherND',
  'Expand',
  'Tile',
  'ConstantOfShape',
  'Constant',
  'Range',
  'Pad',
  'Resize',
  'Upsample',
  'OneHot',
  'MatMul',
  'MatMulInteger',
  'QLinearMatMul',
  'Gemm',
  'ConvTranspose',
  'TopK',
  'NonZero',
  'Unique',
  'Compress',
  'DepthToSpace',
  'SpaceToDepth',
  'RandomNormal',
  'RandomUniform',
  'Multinomial',
  'DynamicQuantizeLinear',
  'If',
]);
/**
 * Outputs computed from the inputs' dims and attributes by rules of their own: Einsum (from its
 * equation) and the recurrent layers (from seq_length, batch, num_directions, hidden_size).
 */
const EQUATION_OPS = new Set(['Einsum']);
const RECURRENT = new Set(['LSTM', 'GRU', 'RNN']);
const ML_OPS = new Set([
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'TreeEnsemble',
  'LinearClassifier',
  'LinearRegressor',
  'SVMClassifier',
  'SVMRegressor',
  'Normalizer',
  'Scaler',
  'Imputer',
  'Binarizer',
  'LabelEncoder',
  'CategoryMapper',
  'ZipMap',
  'ArrayFeatureExtractor',
  'OneHotEncoder',
  'FeatureVectorizer',
]);

/** Every operator the bound knows, by domain (`''` is ai.onnx). Others are refused. */
export const OPS: Readonly<Record<'' | 'ai.onnx.ml', readonly string[]>> = {
  '': [
    ...SAME_SHAPE,
    ...BROADCAST,
    ...REDUCE,
    ...CONV,
    ...POOL,
    ...GLOBAL_POOL,
    ...SHAPE_OPS,
    ...EQUATION_OPS,
    ...RECURRENT,
  ].sort(),
  'ai.onnx.ml': [...ML_OPS].sort(),
};

/** Values a node reads from an input that must be known before the run (a shape, repeats, pads). */
function needValues(node: Node, t: T | undefined, what: string): Iv[] {
  const v = valuesOf(t);
  if (v === undefined)
    throw new Refusal(
      node,
      `its ${what} is computed at run time from values Bulwark cannot bound before the run, so its output can be of any size`,
    );
  return v;
}

function requireDims(node: Node, t: T | undefined, what = 'input'): Iv[] {
  if (t?.dims === undefined) throw new Refusal(node, `the rank of its ${what} is not known before the run`);
  return t.dims;
}

function sliceLength(d: number, start: number, end: number, step: number): number {
  // ONNX Slice: negative indices count from the end, then clamp ([0, d] forward, [-1, d-1] backward).
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
    return e > s ? Math.ceil((e - s) / step) : 0;
  }
  s = Math.min(Math.max(s, -1), d - 1);
  e = Math.min(Math.max(e, -1), d - 1);
  return s > e ? Math.ceil((s - e) / -step) : 0;
}

/**
 * Bounds the outputs of one node from its inputs. `env` resolves names (outer scopes included for a
 * sub-graph); `sub` analyses an If branch.
 */
function evalNode(
  ctx: Ctx,
  node: Node,
  ins: (T | undefined)[],
  sub: (g: Uint8Array) => T[],
): (T | undefined)[] {
  const op = node.op;
  const x = ins[0];
  const opset = ctx.opset;
  const outs = node.outputs.length;
  const same = (t: T | undefined, type = t?.type ?? 0): T => {
    if (t === undefined) throw new Refusal(node, 'a required input is missing');
    return t.dims ? tensor(type, [...t.dims], undefined, t.max) : rankless(type, t.max);
  };
  if (node.domain === 'ai.onnx.ml') return evalMl(ctx, node, ins);
  if (node.domain !== '' && node.domain !== 'ai.onnx')
    throw new Refusal(
      node,
      `an operator of domain "${node.domain}", which Bulwark does not bound: its output could be of any size`,
    );
  if (SAME_SHAPE.has(op)) {
    let type = x?.type ?? 0;
    if (BOOL_OUT.has(op)) type = BOOL;
    if (op === 'Cast') type = attrInt(node, 'to', 0);
    if (op === 'CastLike') type = ins[1]?.type ?? 0;
    const out = same(x, type);
    if (x?.v !== undefined && out.dims !== undefined) out.v = x.v.map((iv) => unary(op, iv, node, type));
    if (op === 'Clip' && x?.v !== undefined && out.v !== undefined) {
      const lo =
        ins[1]?.v?.[0] ??
        (node.attrs.get('min')?.f !== undefined ? exact(node.attrs.get('min')?.f as number) : undefined);
      const hi =
        ins[2]?.v?.[0] ??
        (node.attrs.get('max')?.f !== undefined ? exact(node.attrs.get('max')?.f as number) : undefined);
      out.v = x.v.map((iv) => [
        Math.min(Math.max(iv[0], lo?.[0] ?? -Infinity), hi?.[1] ?? Infinity),
        Math.max(Math.min(iv[1], hi?.[1] ?? Infinity), lo?.[0] ?? -Infinity),
      ]);
    }
    if (
      out.v !== undefined &&
      ![
        'Identity',
        'Neg',
        'Abs',
        'Floor',
        'Ceil',
        'Round',
        'Relu',
        'Sign',
        'Not',
        'Cast',
        'CastLike',
        'Clip',
      ].includes(op)
    )
      delete out.v;
    if (out.v !== undefined && isIntType(type)) out.v = intValues(type, out.v);
    // Dropout's mask, BatchNormalization's running statistics (training mode), LayerNormalization's
    // mean and inverse deviation: no larger than the input.
    const rest = Array.from({ length: outs - 1 }, () => same(x, op === 'Dropout' ? BOOL : (x?.type ?? 0)));
    return [out, ...rest];
  }
  if (BROADCAST.has(op)) {
    const present = ins.filter((t): t is T => t !== undefined);
    if (present.length === 0) throw new Refusal(node, 'a required input is missing');
    const type = BOOL_OUT.has(op) ? BOOL : op === 'Where' ? (ins[1]?.type ?? 0) : (present[0] as T).type;
    const dims = broadcast(present.map((t) => t.dims));
    if (dims === undefined) return [rankless(type, broadcastMax(present))];
    let v: Iv[] | undefined;
    const intType = isIntType((present[0] as T).type);
    if (op === 'Where')
      v = broadcastValues(present, (xs) => {
        const c = xs[0] as Iv;
        return isExact(c) ? (c[0] !== 0 ? (xs[1] as Iv) : (xs[2] as Iv)) : hull(xs[1] as Iv, xs[2] as Iv);
      });
    else if (op === 'Sum' || op === 'Max' || op === 'Min')
      v = broadcastValues(present, (xs) =>
        xs.slice(1).reduce((a, b) => binary(op === 'Sum' ? 'Add' : op, a, b, intType), xs[0] as Iv),
      );
    else if (present.length === 2)
      v = broadcastValues(present, (xs) => binary(op, xs[0] as Iv, xs[1] as Iv, intType));
    if (v !== undefined && isIntType(type)) v = intValues(type, v);
    return [tensor(type, dims, v)];
  }
  if (REDUCE.has(op)) {
    const type = op === 'ArgMax' || op === 'ArgMin' ? INT64 : (x?.type ?? 0);
    // A reduction is never larger than its input.
    if (x !== undefined && x.dims === undefined) return [rankless(type, x.max)];
    const dims = requireDims(node, x);
    const keep = attrInt(node, 'keepdims', 1) !== 0;
    // Axes: an attribute (ArgMax/ArgMin's `axis`; Reduce* before opset 18, ReduceSum before 13), else
    // the second input.
    let axes: number[] | undefined;
    if (op === 'ArgMax' || op === 'ArgMin') axes = [attrInt(node, 'axis', 0)];
    else if (node.attrs.has('axes')) axes = attrInts(node, 'axes');
    else if (ins[1] !== undefined) {
      const v = valuesOf(ins[1]);
      axes = v?.every(isExact) ? v.map((a) => a[0]) : undefined;
      if (axes === undefined) {
        // Unknown axes: each dim is kept or reduced to 1.
        if (keep)
          return [
            tensor(
              type,
              dims.map((d) => [Math.min(d[0], 1), d[1]]),
              undefined,
              x?.max,
            ),
          ];
        return [rankless(type, x?.max ?? Infinity)];
      }
    } else axes = attrInt(node, 'noop_with_empty_axes', 0) !== 0 ? [] : undefined;
    const all = axes === undefined;
    const set = new Set((axes ?? []).map((a) => normAxis(a, dims.length, node)));
    const out: Iv[] = [];
    dims.forEach((d, i) => {
      if (all || set.has(i)) {
        if (keep) out.push([1, 1]);
      } else out.push(d);
    });
    let v: Iv[] | undefined;
    if (
      x?.v !== undefined &&
      dims.length === 1 &&
      (all || set.has(0)) &&
      (op === 'ReduceSum' || op === 'ReduceProd')
    )
      v = [
        x.v.reduce(
          (a, b) => binary(op === 'ReduceSum' ? 'Add' : 'Mul', a, b, isIntType(type)),
          exact(op === 'ReduceSum' ? 0 : 1),
        ),
      ];
    if (v !== undefined && isIntType(type)) v = intValues(type, v);
    return [tensor(type, out, v)];
  }
  if (GLOBAL_POOL.has(op)) {
    const dims = requireDims(node, x);
    return [
      tensor(
        x?.type ?? 0,
        dims.map((d, i) => (i < 2 ? d : [1, 1])),
      ),
    ];
  }
  if (CONV.has(op) || POOL.has(op) || op === 'ConvTranspose') return evalConv(ctx, node, ins);
  if (op === 'Einsum') return [evalEinsum(ctx, node, ins)];
  if (RECURRENT.has(op)) return evalRecurrent(ctx, node, ins);
  switch (op) {
    case 'Constant': {
      const a = [...node.attrs.values()][0];
      if (a === undefined) throw new Refusal(node, 'a Constant without a value');
      if (a.t !== undefined) return [fromConst(parseTensor(a.t))];
      if (a.sparse !== undefined) {
        const s = parseSparse(a.sparse);
        return [tensor(s.type, s.dims.map(exact))];
      }
      if (a.name === 'value_int') return [tensor(INT64, [], [exact(a.i ?? 0)])];
      if (a.name === 'value_float') return [tensor(FLOAT, [], [exact(a.f ?? 0)])];
      if (a.name === 'value_ints') {
        const v = a.intCount <= FOLD ? a.ints.map(exact) : undefined;
        return [tensor(INT64, [exact(a.intCount)], v)];
      }
      if (a.name === 'value_floats') return [tensor(FLOAT, [exact(a.floats.length)])];
      if (a.name === 'value_string') return [tensor(STRING, [])];
      if (a.name === 'value_strings') return [tensor(STRING, [exact(a.stringCount)])];
      throw new Refusal(node, `a Constant with attribute "${a.name}"`);
    }
    case 'Shape': {
      const dims = requireDims(node, x);
      const r = dims.length;
      let start = attrInt(node, 'start', 0);
      let end = node.attrs.has('end') ? attrInt(node, 'end', r) : r;
      start = Math.min(Math.max(start < 0 ? start + r : start, 0), r);
      end = Math.min(Math.max(end < 0 ? end + r : end, 0), r);
      const v = dims.slice(start, Math.max(start, end));
      return [
        tensor(
          INT64,
          [exact(v.length)],
          v.map((d) => [d[0], d[1]] as Iv),
        ),
      ];
    }
    case 'Size': {
      if (x === undefined) throw new Refusal(node, 'a required input is missing');
      const lo = x.dims ? prodLo(x.dims) : 0;
      return [tensor(INT64, [], [[lo, x.max]])];
    }
    case 'Reshape': {
      const shapeV = opset < 5 ? attrInts(node, 'shape')?.map(exact) : valuesOf(ins[1]);
      const e = x?.max ?? Infinity;
      const allowZero = attrInt(node, 'allowzero', 0) !== 0;
      if (shapeV === undefined) {
        const sd = exactDims(ins[1]?.dims);
        if (sd === undefined || sd.length !== 1) return [rankless(x?.type ?? 0, e)];
        return [
          tensor(
            x?.type ?? 0,
            Array.from({ length: sd[0] as number }, () => [0, Infinity] as Iv),
            undefined,
            e,
          ),
        ];
      }
      const out: Iv[] = shapeV.map((s, i) => {
        if (isExact(s) && s[0] === 0 && !allowZero) return x?.dims?.[i] ?? [0, Infinity];
        if (isExact(s) && s[0] === -1) return [0, Infinity]; // set below
        if (s[0] >= 1 || (allowZero && s[0] >= 0)) return s;
        return [0, Infinity];
      });
      // The inferred dim: the input's elements over the others.
      const inferred = shapeV.findIndex((s) => isExact(s) && s[0] === -1);
      if (inferred >= 0) {
        const others = out.filter((_, i) => i !== inferred);
        const lo = prodLo(others);
        out[inferred] = [0, lo >= 1 ? Math.floor(e / lo) : Infinity];
        // Every size known: the inferred one is the quotient (a [1, 1] value reshaped to [-1] is [1]).
        const n = exactDims(x?.dims)?.reduce((a, b) => a * b, 1);
        const o = exactDims(others)?.reduce((a, b) => a * b, 1);
        if (n !== undefined && o !== undefined && o >= 1 && n % o === 0) out[inferred] = exact(n / o);
      }
      const v = x?.v !== undefined ? [...x.v] : undefined;
      return [tensor(x?.type ?? 0, out, v, e)];
    }
    case 'Flatten': {
      const dims = requireDims(node, x);
      let axis = attrInt(node, 'axis', 1);
      if (axis < 0) axis += dims.length;
      const a = dims.slice(0, axis);
      const b = dims.slice(axis);
      return [
        tensor(
          x?.type ?? 0,
          [
            [prodLo(a), prodHi(a)],
            [prodLo(b), prodHi(b)],
          ],
          x?.v,
          x?.max,
        ),
      ];
    }
    case 'Squeeze': {
      const dims = requireDims(node, x);
      let axes = node.attrs.has('axes') ? attrInts(node, 'axes') : undefined;
      if (axes === undefined && ins[1] !== undefined) {
        const v = valuesOf(ins[1]);
        if (v === undefined || !v.every(isExact)) return [rankless(x?.type ?? 0, x?.max ?? Infinity)];
        axes = v.map((a) => a[0]);
      }
      let keep: boolean[];
      if (axes === undefined) {
        // Every dim of size 1 goes: the rank is known only when each dim is known to be 1 or not.
        if (dims.some((d) => d[0] <= 1 && d[1] >= 1 && !isExact(d)))
          return [rankless(x?.type ?? 0, x?.max ?? Infinity)];
        keep = dims.map((d) => !(isExact(d) && d[0] === 1));
      } else {
        const set = new Set(axes.map((a) => normAxis(a, dims.length, node)));
        keep = dims.map((_, i) => !set.has(i));
      }
      return [
        tensor(
          x?.type ?? 0,
          dims.filter((_, i) => keep[i]),
          x?.v,
          x?.max,
        ),
      ];
    }
    case 'Unsqueeze': {
      const dims = requireDims(node, x);
      let axes = node.attrs.has('axes') ? attrInts(node, 'axes') : undefined;
      if (axes === undefined) {
        const v = needValues(node, ins[1], 'axes');
        if (!v.every(isExact)) throw new Refusal(node, 'its axes are not known before the run');
        axes = v.map((a) => a[0]);
      }
      const r = dims.length + axes.length;
      const set = new Set(axes.map((a) => normAxis(a, r, node)));
      const out: Iv[] = [];
      let j = 0;
      for (let i = 0; i < r; i++) out.push(set.has(i) ? [1, 1] : (dims[j++] ?? [1, 1]));
      return [tensor(x?.type ?? 0, out, x?.v, x?.max)];
    }
    case 'Transpose': {
      const dims = requireDims(node, x);
      const perm = attrInts(node, 'perm') ?? dims.map((_, i) => dims.length - 1 - i);
      return [
        tensor(
          x?.type ?? 0,
          perm.map((p) => dims[p] ?? [0, Infinity]),
          undefined,
          x?.max,
        ),
      ];
    }
    case 'Concat': {
      const present = ins.filter((t): t is T => t !== undefined);
      const first = present.find((t) => t.dims !== undefined);
      const type = present[0]?.type ?? 0;
      const total = present.reduce((a, t) => a + t.max, 0);
      if (
        first?.dims === undefined ||
        present.some((t) => t.dims === undefined || t.dims.length !== first.dims?.length)
      )
        return [rankless(type, total)];
      const r = first.dims.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r, node);
      const out: Iv[] = first.dims.map((_, i) => {
        if (i === axis)
          return present.reduce<Iv>(
            (a, t) => [a[0] + (t.dims?.[i]?.[0] ?? 0), a[1] + (t.dims?.[i]?.[1] ?? 0)],
            [0, 0],
          );
        // Every input has the same size there: the intersection of their intervals.
        return present.reduce<Iv>(
          (a, t) => [Math.max(a[0], t.dims?.[i]?.[0] ?? 0), Math.min(a[1], t.dims?.[i]?.[1] ?? Infinity)],
          [0, Infinity],
        );
      });
      const v =
        r === 1 && present.every((t) => t.v !== undefined) ? present.flatMap((t) => t.v as Iv[]) : undefined;
      return [tensor(type, out, v, total)];
    }
    case 'Split': {
      const dims = requireDims(node, x);
      const axis = normAxis(attrInt(node, 'axis', 0), dims.length, node);
      const split = node.attrs.has('split') ? attrInts(node, 'split')?.map(exact) : valuesOf(ins[1]);
      return node.outputs.map((_, k) => {
        const s = split?.[k];
        const d = dims.map((di, i) => (i === axis ? (s ?? ([0, di[1]] as Iv)) : di));
        return tensor(x?.type ?? 0, d, undefined, x?.max);
      });
    }
    case 'Slice': {
      const dims = requireDims(node, x);
      const get = (attr: string, idx: number): Iv[] | undefined =>
        opset < 10 ? attrInts(node, attr)?.map(exact) : valuesOf(ins[idx]);
      const starts = get('starts', 1);
      const ends = get('ends', 2);
      const axesV = get('axes', 3);
      const steps = opset < 10 ? undefined : valuesOf(ins[4]);
      const out: Iv[] = dims.map((d) => [0, d[1]]);
      const known =
        starts?.every(isExact) &&
        ends?.every(isExact) &&
        (axesV?.every(isExact) ?? true) &&
        (steps?.every(isExact) ?? true);
      if (!known || starts === undefined || ends === undefined) {
        // Parameters not known before the run: a slice is never larger than its input, and the axes
        // not sliced (when the axes are known) keep their size.
        const axesGiven = opset < 10 ? node.attrs.has('axes') : ins[3] !== undefined;
        if (axesGiven && axesV?.every(isExact)) {
          const axes = axesV.map((a) => normAxis(a[0], dims.length, node));
          dims.forEach((d, i) => {
            if (!axes.includes(i)) out[i] = d;
          });
        }
        return [tensor(x?.type ?? 0, out, undefined, x?.max)];
      }
      const axes = (axesV ?? starts.map((_, i) => exact(i))).map((a) => normAxis(a[0], dims.length, node));
      dims.forEach((d, i) => {
        const k = axes.indexOf(i);
        if (k < 0) {
          out[i] = d;
          return;
        }
        const st = (steps?.[k]?.[0] ?? 1) as number;
        if (st === 0) throw new Refusal(node, 'a slice step of 0');
        // The slice's length never shrinks as the dimension grows: its bounds are at the ends.
        const len = (n: number) => sliceLength(n, starts[k]?.[0] as number, ends[k]?.[0] as number, st);
        out[i] = [
          len(d[0]),
          Number.isFinite(d[1]) ? len(d[1]) : len(2 ** 53) >= 2 ** 52 ? Infinity : len(2 ** 53),
        ];
      });
      let v: Iv[] | undefined;
      const ed = exactDims(dims);
      if (x?.v !== undefined && ed !== undefined && ed.length === 1) {
        const n = ed[0] as number;
        const st = (steps?.[0]?.[0] ?? 1) as number;
        let s = starts[0]?.[0] as number;
        let e = ends[0]?.[0] as number;
        s = s < 0 ? s + n : s;
        e = e < 0 ? e + n : e;
        v = [];
        if (st > 0) {
          s = Math.min(Math.max(s, 0), n);
          e = Math.min(Math.max(e, 0), n);
          for (let i = s; i < e; i += st) v.push(x.v[i] as Iv);
        } else {
          s = Math.min(Math.max(s, -1), n - 1);
          e = Math.min(Math.max(e, -1), n - 1);
          for (let i = s; i > e; i += st) v.push(x.v[i] as Iv);
        }
      }
      return [tensor(x?.type ?? 0, out, v, x?.max)];
    }
    case 'Gather': {
      const dims = requireDims(node, x, 'data');
      const idx = ins[1];
      const idims = requireDims(node, idx, 'indices');
      const axis = normAxis(attrInt(node, 'axis', 0), dims.length, node);
      const out = [...dims.slice(0, axis), ...idims, ...dims.slice(axis + 1)];
      let v: Iv[] | undefined;
      const ed = exactDims(dims);
      if (x?.v !== undefined && ed?.length === 1 && idx?.v !== undefined) {
        const n = ed[0] as number;
        const all = x.v.reduce((a, b) => hull(a, b));
        v = idx.v.map((iv) => {
          // A known index picks its value; an index known only as a range may pick any.
          if (!isExact(iv)) return all;
          const i = iv[0] < 0 ? iv[0] + n : iv[0];
          return i >= 0 && i < n ? (x.v?.[i] as Iv) : ANY;
        });
      }
      return [tensor(x?.type ?? 0, out, v)];
    }
    case 'GatherElements':
      return [tensor(x?.type ?? 0, [...requireDims(node, ins[1], 'indices')])];
    case 'GatherND': {
      const data = requireDims(node, x, 'data');
      const idims = requireDims(node, ins[1], 'indices');
      const last = idims[idims.length - 1];
      const b = attrInt(node, 'batch_dims', 0);
      if (last === undefined || !isExact(last))
        return [rankless(x?.type ?? 0, mul(x?.max ?? Infinity, ins[1]?.max ?? Infinity))];
      return [tensor(x?.type ?? 0, [...idims.slice(0, -1), ...data.slice(b + last[0])])];
    }
    case 'Expand': {
      const dims = requireDims(node, x);
      const shape = needValues(node, ins[1], 'shape');
      return [tensor(x?.type ?? 0, broadcast([dims, shape.map(dimIv)]) as Iv[])];
    }
    case 'Tile': {
      const dims = requireDims(node, x);
      const reps = needValues(node, ins[1], 'repeats');
      return [
        tensor(
          x?.type ?? 0,
          dims.map((d, i) => {
            const r = dimIv(reps[i] ?? exact(1));
            return [mul(d[0], r[0]), mul(d[1], r[1])] as Iv;
          }),
        ),
      ];
    }
    case 'ConstantOfShape': {
      const shape = needValues(node, x, 'shape');
      const value = node.attrs.get('value')?.t;
      const c = value ? parseTensor(value) : undefined;
      const type = c?.type ?? FLOAT;
      const fill = c?.values?.[0] ?? 0;
      const dims = shape.map(dimIv);
      const ed = exactDims(dims);
      const n = ed?.reduce((a, b) => a * b, 1) ?? Infinity;
      return [tensor(type, dims, n <= FOLD ? Array.from({ length: n }, () => exact(fill)) : undefined)];
    }
    case 'Range': {
      const [s, l, d] = [ins[0], ins[1], ins[2]].map(
        (t, i) => needValues(node, t, ['start', 'limit', 'delta'][i] as string)[0] ?? ANY,
      ) as [Iv, Iv, Iv];
      const type = x?.type ?? 0;
      let n: number;
      if (d[0] > 0) n = Math.ceil((l[1] - s[0]) / d[0]);
      else if (d[1] < 0) n = Math.ceil((s[1] - l[0]) / -d[1]);
      else throw new Refusal(node, 'its delta may be 0 or change sign, so its length has no bound');
      n = Math.max(0, n);
      if (Number.isNaN(n)) n = Infinity;
      let v: Iv[] | undefined;
      if (isExact(s) && isExact(l) && isExact(d) && n <= FOLD)
        v = Array.from({ length: n }, (_, i) => exact(s[0] + i * d[0]));
      return [tensor(type, [[0, n]], v)];
    }
    case 'Pad': {
      const dims = requireDims(node, x);
      const pads = opset < 11 ? attrInts(node, 'pads')?.map(exact) : valuesOf(ins[1]);
      if (pads === undefined) needValues(node, undefined, 'pads');
      const p = pads as Iv[];
      const axesV = opset >= 18 && ins[3] !== undefined ? needValues(node, ins[3], 'axes') : undefined;
      const axes = axesV ? axesV.map((a) => normAxis(a[0], dims.length, node)) : dims.map((_, i) => i);
      const k = axes.length;
      const out = dims.map((d) => [d[0], d[1]] as Iv);
      axes.forEach((a, j) => {
        const b = p[j] ?? exact(0);
        const e = p[j + k] ?? exact(0);
        const d = dims[a] as Iv;
        out[a] = [Math.max(0, d[0] + b[0] + e[0]), d[1] + b[1] + e[1]];
      });
      return [tensor(x?.type ?? 0, out)];
    }
    case 'Resize':
    case 'Upsample': {
      const dims = requireDims(node, x);
      let scales: Iv[] | undefined;
      let sizes: Iv[] | undefined;
      if (op === 'Upsample') scales = opset < 9 ? attrFloats(node, 'scales')?.map(exact) : valuesOf(ins[1]);
      else if (opset < 11) scales = valuesOf(ins[1]);
      else {
        // An empty name or a tensor of no values means "not given".
        const sc = ins[2];
        if (sc !== undefined && sc.max > 0) scales = valuesOf(sc);
        else if (ins[3] !== undefined) sizes = valuesOf(ins[3]);
      }
      const given = scales ?? sizes;
      if (given === undefined) needValues(node, undefined, 'scales or sizes');
      const axesA = attrInts(node, 'axes');
      const axes =
        axesA && axesA.length > 0 ? axesA.map((a) => normAxis(a, dims.length, node)) : dims.map((_, i) => i);
      const out = dims.map((d) => [d[0], d[1]] as Iv);
      const policy = node.attrs.get('keep_aspect_ratio_policy')?.s;
      const notSmaller = policy !== undefined && str(policy) === 'not_smaller';
      if (scales !== undefined)
        axes.forEach((a, j) => {
          const s = scales?.[j] ?? exact(1);
          const d = dims[a] as Iv;
          out[a] = [0, Math.floor(mul(d[1], Math.max(0, s[1]))) + 1];
        });
      else if (sizes !== undefined) {
        // not_smaller scales every axis by the largest ratio: an axis can grow past its own size.
        let ratio = 0;
        axes.forEach((a, j) => {
          const d = dims[a] as Iv;
          ratio = Math.max(ratio, (sizes?.[j]?.[1] ?? Infinity) / Math.max(1, d[0]));
        });
        axes.forEach((a, j) => {
          const d = dims[a] as Iv;
          out[a] = notSmaller ? [0, Math.floor(mul(d[1], ratio)) + 1] : dimIv(sizes?.[j] ?? ANY);
        });
      }
      return [tensor(x?.type ?? 0, out)];
    }
    case 'OneHot': {
      const dims = requireDims(node, x, 'indices');
      const depth = needValues(node, ins[1], 'depth')[0] ?? ANY;
      const r = dims.length + 1;
      const axis = normAxis(attrInt(node, 'axis', -1), r, node);
      const out = [...dims];
      out.splice(axis, 0, [0, Math.floor(Math.max(0, depth[1]))]);
      return [tensor(ins[2]?.type ?? 0, out)];
    }
    case 'MatMul':
    case 'MatMulInteger':
    case 'QLinearMatMul': {
      const a = op === 'QLinearMatMul' ? ins[0] : ins[0];
      const b = op === 'QLinearMatMul' ? ins[3] : ins[1];
      const type = op === 'MatMulInteger' ? 6 : op === 'QLinearMatMul' ? (ins[7]?.type ?? 0) : (a?.type ?? 0);
      if (a?.dims === undefined || b?.dims === undefined)
        return [rankless(type, mul(a?.max ?? Infinity, b?.max ?? Infinity))];
      const A = a.dims.length === 1 ? [[1, 1] as Iv, a.dims[0] as Iv] : a.dims;
      const B = b.dims.length === 1 ? [b.dims[0] as Iv, [1, 1] as Iv] : b.dims;
      const batch = broadcast([A.slice(0, -2), B.slice(0, -2)]) as Iv[];
      const out = [...batch];
      if (a.dims.length > 1) out.push(A[A.length - 2] as Iv);
      if (b.dims.length > 1) out.push(B[B.length - 1] as Iv);
      return [tensor(type, out)];
    }
    case 'Gemm': {
      const a = requireDims(node, ins[0], 'A');
      const b = requireDims(node, ins[1], 'B');
      if (a.length !== 2 || b.length !== 2) throw new Refusal(node, 'Gemm takes matrices');
      const m = attrInt(node, 'transA', 0) ? a[1] : a[0];
      const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
      return [tensor(ins[0]?.type ?? 0, [m as Iv, n as Iv])];
    }
    case 'TopK': {
      const dims = requireDims(node, x);
      const axis = normAxis(attrInt(node, 'axis', -1), dims.length, node);
      const k = opset < 10 ? exact(attrInt(node, 'k', 0)) : valuesOf(ins[1])?.[0];
      const out = dims.map((d, i) => (i === axis ? ([0, Math.min(d[1], k?.[1] ?? Infinity)] as Iv) : d));
      return [tensor(x?.type ?? 0, out), tensor(INT64, out)];
    }
    case 'NonZero': {
      // Its output is [rank, count of non-zero elements]: the count is at most the input's elements,
      // and each value is an index along one axis, below that axis's size (onnx/docs/Operators.md,
      // NonZero), so sizes computed from its values are bounded by the input's dims.
      const dims = requireDims(node, x);
      const t = tensor(INT64, [exact(dims.length), [0, x?.max ?? Infinity]]);
      const top = Math.max(0, ...dims.map((d) => d[1]));
      if (Number.isFinite(top)) t.range = [0, Math.max(0, top - 1)];
      return [t];
    }
    case 'Unique': {
      const dims = requireDims(node, x);
      const axisA = node.attrs.get('axis')?.i;
      const e = x?.max ?? Infinity;
      const y =
        axisA === undefined
          ? tensor(x?.type ?? 0, [[0, e]])
          : tensor(
              x?.type ?? 0,
              dims.map((d, i) => (i === normAxis(axisA, dims.length, node) ? ([0, d[1]] as Iv) : d)),
            );
      const n = axisA === undefined ? e : (dims[normAxis(axisA, dims.length, node)]?.[1] ?? Infinity);
      return [y, tensor(INT64, [[0, n]]), tensor(INT64, [[0, n]]), tensor(INT64, [[0, n]])];
    }
    case 'Compress': {
      const dims = requireDims(node, x);
      const axisA = node.attrs.get('axis')?.i;
      if (axisA === undefined) return [tensor(x?.type ?? 0, [[0, x?.max ?? Infinity]])];
      const axis = normAxis(axisA, dims.length, node);
      return [
        tensor(
          x?.type ?? 0,
          dims.map((d, i) => (i === axis ? ([0, d[1]] as Iv) : d)),
        ),
      ];
    }
    case 'DepthToSpace':
    case 'SpaceToDepth': {
      const dims = requireDims(node, x);
      if (dims.length !== 4) throw new Refusal(node, `${op} takes a 4-D tensor`);
      const b = attrInt(node, 'blocksize', 1);
      if (b < 1) throw new Refusal(node, 'blocksize below 1');
      const [n, c, h, w] = dims as [Iv, Iv, Iv, Iv];
      const b2 = b * b;
      const out: Iv[] =
        op === 'DepthToSpace'
          ? [
              n,
              [Math.floor(c[0] / b2), Math.floor(c[1] / b2)],
              [h[0] * b, mul(h[1], b)],
              [w[0] * b, mul(w[1], b)],
            ]
          : [
              n,
              [c[0] * b2, mul(c[1], b2)],
              [Math.floor(h[0] / b), Math.floor(h[1] / b)],
              [Math.floor(w[0] / b), Math.floor(w[1] / b)],
            ];
      return [tensor(x?.type ?? 0, out, undefined, x?.max)];
    }
    case 'RandomNormal':
    case 'RandomUniform': {
      const shape = attrInts(node, 'shape');
      if (shape === undefined) throw new Refusal(node, 'no shape attribute');
      return [tensor(attrInt(node, 'dtype', FLOAT), shape.map(exact))];
    }
    case 'Multinomial': {
      const dims = requireDims(node, x);
      return [tensor(attrInt(node, 'dtype', 6), [dims[0] ?? [1, 1], exact(attrInt(node, 'sample_size', 1))])];
    }
    case 'DynamicQuantizeLinear':
      return [same(x, 2), tensor(FLOAT, []), tensor(2, [])];
    case 'If': {
      const then = node.attrs.get('then_branch')?.g;
      const other = node.attrs.get('else_branch')?.g;
      if (then === undefined || other === undefined) throw new Refusal(node, 'an If without both branches');
      const a = sub(then);
      const b = sub(other);
      return node.outputs.map((_, i) => joinT(a[i], b[i]));
    }
  }
  if (ctx.functions.has(`${node.domain}:${op}`))
    throw new Refusal(node, 'it calls a function defined in the model; Bulwark does not bound those');
  throw new Refusal(
    node,
    op === 'Loop' || op === 'Scan'
      ? `it runs a sub-graph a number of times set by values, and keeps every iteration's output; Bulwark does not bound ${op}`
      : `an operator Bulwark does not bound (${node.domain ? `${node.domain}:` : ''}${op}): its output could be of any size`,
  );
}

/** The larger of two abstract tensors (the outputs of an If's branches). */
function joinT(a: T | undefined, b: T | undefined): T | undefined {
  if (a === undefined || b === undefined) return undefined;
  const type = a.type === b.type ? a.type : 0;
  if (a.dims === undefined || b.dims === undefined || a.dims.length !== b.dims.length)
    return rankless(type, Math.max(a.max, b.max));
  const bd = b.dims;
  return tensor(
    type,
    a.dims.map((d, i) => hull(d, bd[i] as Iv)),
    undefined,
    Math.max(a.max, b.max),
  );
}

function fromConst(c: ConstTensor): T {
  if (c.dims.some((d) => d < 0)) throw invalid(`a tensor with dims [${c.dims.join(', ')}]`);
  const v = c.values?.map(exact);
  return tensor(c.type, c.dims.map(exact), v);
}

/** Convolutions and pools: the output bound, and the column buffer of a convolution. */
function evalConv(ctx: Ctx, node: Node, ins: (T | undefined)[]): T[] {
  const op = node.op;
  const x = ins[op === 'QLinearConv' ? 0 : 0];
  const w = ins[op === 'QLinearConv' ? 3 : 1];
  const dims = requireDims(node, x);
  if (dims.length < 3) throw new Refusal(node, `${op} takes a tensor of rank 3 or more`);
  const k = dims.length - 2;
  const wd =
    op === 'Conv' || op === 'ConvInteger' || op === 'QLinearConv' || op === 'ConvTranspose'
      ? requireDims(node, w, 'weights')
      : undefined;
  const kernel = attrInts(node, 'kernel_shape') ?? wd?.slice(2).map((d) => d[1]) ?? [];
  const strides = attrInts(node, 'strides') ?? [];
  const dil = attrInts(node, 'dilations') ?? [];
  const pads = attrInts(node, 'pads') ?? [];
  const group = attrInt(node, 'group', 1);
  const type = op === 'ConvInteger' ? 6 : op === 'QLinearConv' ? (ins[7]?.type ?? 0) : (x?.type ?? 0);
  const spatial: Iv[] = [];
  for (let i = 0; i < k; i++) {
    const d = dims[2 + i] as Iv;
    const pad = Math.max(0, pads[i] ?? 0) + Math.max(0, pads[i + k] ?? 0);
    if (op === 'ConvTranspose') {
      const s = Math.max(1, strides[i] ?? 1);
      const kk = kernel[i] ?? 1;
      const dl = Math.max(1, dil[i] ?? 1);
      const op_ = Math.max(0, attrInts(node, 'output_padding')?.[i] ?? 0);
      let hi = mul(s, d[1]) + op_ + mul(kk - 1, dl) + 1;
      const os = attrInts(node, 'output_shape');
      if (os !== undefined && os.length > 0) hi = Math.max(hi, os[os.length - k + i] ?? 0);
      spatial.push([0, hi]);
    } else {
      // Stride, kernel and dilation at least 1 can only shrink it: the padded size (+1 for ceil_mode).
      spatial.push([0, d[1] + pad + 1]);
    }
  }
  let channels: Iv;
  if (op === 'ConvTranspose') channels = [0, mul(wd?.[1]?.[1] ?? Infinity, group)];
  else if (wd !== undefined) channels = wd[0] as Iv;
  else channels = dims[1] as Iv;
  const out = tensor(type, [dims[0] as Iv, channels, ...spatial]);
  const outs: T[] = [out];
  if (op === 'MaxPool' && node.outputs.length > 1)
    outs.push(tensor(INT64, [dims[0] as Iv, channels, ...spatial]));
  if (wd !== undefined) {
    // MLAS's im2col buffer: (input channels / group) x kernel elements x output positions, per image.
    const cin = op === 'ConvTranspose' ? mul(wd[1]?.[1] ?? Infinity, 1) : (wd[1]?.[1] ?? Infinity);
    const kprod = kernel.reduce((a, b) => mul(a, b), 1);
    const positions = op === 'ConvTranspose' ? prodHi(dims.slice(2)) : prodHi(spatial);
    const col = mul(mul(cin, kprod), positions);
    ctx.tensors.push({
      node: node.name,
      op,
      output: `${node.outputs[0] ?? ''} (column buffer)`,
      bytes: mul(col, elemBytes(ctx, x?.type ?? 0)),
    });
  }
  return outs;
}

/**
 * Einsum (https://onnx.ai/onnx/operators/onnx__Einsum.html): `equation` is `term1,term2->out`, a term a
 * string of letters, one per axis of its input, and at most one `...` standing for the leading axes
 * not named (broadcast between the inputs). The output has one axis per letter of `out` (and `...`'s
 * axes where it stands), of the size that letter has in the inputs; without `->` (implicit mode) the
 * output is `...` followed by the letters that occur once, in alphabetical order. Every letter of the
 * output occurs in some input, so an output element picks one element of each input: it has at most
 * the product of the inputs' elements (a bound when a dim is unknown). ONNX Runtime contracts the
 * inputs from left to right (onnxruntime/core/providers/cpu/math/einsum.cc): the partial result after
 * input k keeps the letters of inputs 0..k still needed by a later input or the output, and each input
 * is first copied (transposed, its own letters summed out); those are counted as its workspace.
 */
function evalEinsum(ctx: Ctx, node: Node, ins: (T | undefined)[]): T {
  const eqAttr = node.attrs.get('equation')?.s;
  if (eqAttr === undefined) throw new Refusal(node, 'an Einsum without an equation');
  const eq = str(eqAttr).replace(/\s+/g, '');
  if (!/^[A-Za-z.,]*(->[A-Za-z.]*)?$/.test(eq))
    throw new Refusal(node, `an Einsum equation "${eq}" it cannot read`);
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const terms = (lhs as string).split(',');
  if (terms.length !== ins.length)
    throw new Refusal(node, `its equation names ${terms.length} inputs, it has ${ins.length}`);
  const letters = new Map<string, Iv>();
  const uses = new Map<string, number>();
  const ellipses: Iv[][] = [];
  const termLetters: string[][] = [];
  terms.forEach((term, k) => {
    const dims = requireDims(node, ins[k], `input ${k}`);
    const parts = term.split('...');
    if (parts.length > 2 || /\./.test(parts.join('')))
      throw new Refusal(node, `an Einsum term "${term}" it cannot read`);
    const named = parts.join('');
    const eRank = dims.length - named.length;
    if (eRank < 0 || (parts.length === 1 && eRank !== 0))
      throw new Refusal(node, `Einsum term "${term}" does not match input ${k} of rank ${dims.length}`);
    const before = (parts[0] as string).length;
    const ls: string[] = [];
    [...named].forEach((l, i) => {
      const d = dims[i < before ? i : i + eRank] as Iv;
      // A letter has one size in every input (ONNX Runtime checks it): the hull holds it.
      const prev = letters.get(l);
      letters.set(l, prev === undefined ? d : hull(prev, d));
      uses.set(l, (uses.get(l) ?? 0) + 1);
      ls.push(l);
    });
    if (parts.length === 2) {
      ellipses.push(dims.slice(before, before + eRank));
      ls.push('...');
    }
    termLetters.push(ls);
  });
  const ell = ellipses.length > 0 ? (broadcast(ellipses) as Iv[]) : [];
  let outLetters: string[];
  if (rhs !== undefined) {
    const parts = rhs.split('...');
    if (parts.length > 2 || /\./.test(parts.join('')))
      throw new Refusal(node, `an Einsum output "${rhs}" it cannot read`);
    outLetters = parts.length === 2 ? [...(parts[0] as string), '...', ...(parts[1] as string)] : [...rhs];
  } else
    outLetters = [
      ...(ell.length > 0 ? ['...'] : []),
      ...[...uses.entries()]
        .filter(([, n]) => n === 1)
        .map(([l]) => l)
        .sort(),
    ];
  const dimsOf = (ls: Iterable<string>): Iv[] =>
    [...ls].flatMap((l) => {
      if (l === '...') return ell;
      const d = letters.get(l);
      if (d === undefined) throw new Refusal(node, `its output letter "${l}" is in no input`);
      return [d];
    });
  const present = ins.filter((t): t is T => t !== undefined);
  const type = present[0]?.type ?? 0;
  const out = tensor(type, dimsOf(outLetters), undefined, broadcastMax(present));
  // Workspace: a copy of each input, and the partial results of the left-to-right contraction.
  let work = present.reduce((a, t) => a + t.max, 0);
  const outSet = new Set(outLetters);
  for (let k = 0; k < termLetters.length - 1; k++) {
    const seen = new Set(termLetters.slice(0, k + 1).flat());
    const later = new Set([...termLetters.slice(k + 1).flat(), ...outSet]);
    const kept = [...seen].filter((l) => later.has(l));
    const cap = present.slice(0, k + 1).reduce((a, t) => mul(a, t.max), 1);
    work += Math.min(cap, prodHi(dimsOf(kept)));
  }
  ctx.tensors.push({
    node: node.name,
    op: node.op,
    output: `${node.outputs[0] ?? ''} (workspace)`,
    bytes: mul(work, elemBytes(ctx, type)),
  });
  return out;
}

/**
 * LSTM, GRU, RNN (https://onnx.ai/onnx/operators/onnx__LSTM.html, onnx__GRU.html, onnx__RNN.html): X
 * is [seq_length, batch_size, input_size] ([batch_size, seq_length, input_size] when layout = 1); Y is
 * [seq_length, num_directions, batch_size, hidden_size] ([batch_size, seq_length, num_directions,
 * hidden_size]), Y_h and LSTM's Y_c [num_directions, batch_size, hidden_size] ([batch_size,
 * num_directions, hidden_size]), num_directions 2 when `direction` is "bidirectional", else 1.
 * hidden_size is the attribute, and W is [num_directions, gates * hidden_size, input_size] (gates 4, 3
 * and 1): the larger of the two is taken, so an attribute that disagrees with W cannot lower the bound
 * (ONNX Runtime refuses the mismatch anyway). sequence_lens only shortens the steps computed, each at
 * most seq_length (ONNX Runtime checks), never the outputs. ONNX Runtime's CPU kernels also hold, per
 * direction, the gate pre-activations of every step (seq x batch x gates x hidden, `output_iofc_` in
 * onnxruntime/core/providers/cpu/rnn/uni_directional_lstm.cc, `outputZRH_` for GRU) and for the
 * reverse direction a reversed copy of X and of Y: counted as the node's workspace.
 */
function evalRecurrent(ctx: Ctx, node: Node, ins: (T | undefined)[]): T[] {
  const op = node.op;
  const x = ins[0];
  const xd = requireDims(node, x, 'X');
  const wd = requireDims(node, ins[1], 'W');
  if (xd.length !== 3 || wd.length !== 3) throw new Refusal(node, `${op} takes X and W of rank 3`);
  const gates = op === 'LSTM' ? 4 : op === 'GRU' ? 3 : 1;
  const dirAttr = node.attrs.get('direction')?.s;
  const dirs = dirAttr !== undefined && str(dirAttr) === 'bidirectional' ? 2 : 1;
  const layout = attrInt(node, 'layout', 0);
  const hAttr = node.attrs.get('hidden_size')?.i;
  const hW = Math.ceil((wd[1] as Iv)[1] / gates);
  const hidden = Math.max(hAttr ?? 0, hW);
  if (!(hidden >= 0) || !Number.isFinite(hidden))
    throw new Refusal(node, 'its hidden_size is not known before the run');
  let seq = (layout === 0 ? xd[0] : xd[1]) as Iv;
  let batch = (layout === 0 ? xd[1] : xd[0]) as Iv;
  const input = (wd[2] as Iv)[1];
  // X's last dim is W's input_size (ONNX Runtime checks it): seq x batch is at most X's elements over it.
  const steps = isExact(wd[2] as Iv) && input >= 1 ? Math.floor((x?.max ?? Infinity) / input) : Infinity;
  seq = [seq[0], Math.min(seq[1], steps)];
  batch = [batch[0], Math.min(batch[1], steps)];
  const sb = Math.min(mul(seq[1], batch[1]), steps);
  const type = x?.type ?? 0;
  const H = exact(hidden);
  const D = exact(dirs);
  const y = tensor(
    type,
    layout === 0 ? [seq, D, batch, H] : [batch, seq, D, H],
    undefined,
    mul(mul(sb, dirs), hidden),
  );
  const yh = tensor(type, layout === 0 ? [D, batch, H] : [batch, D, H]);
  const outs = [y, yh];
  if (op === 'LSTM') outs.push(tensor(type, layout === 0 ? [D, batch, H] : [batch, D, H]));
  const work = mul(mul(sb, dirs), mul(gates, hidden) + input + 2 * hidden);
  ctx.tensors.push({
    node: node.name,
    op,
    output: `${node.outputs[0] ?? ''} (workspace)`,
    bytes: mul(work, elemBytes(ctx, type)),
  });
  return outs;
}

/** ai.onnx.ml operators. */
function evalMl(ctx: Ctx, node: Node, ins: (T | undefined)[]): (T | undefined)[] {
  const x = ins[0];
  const op = node.op;
  if (op === 'CastMap' || op === 'DictVectorizer')
    throw new Refusal(
      node,
      `ai.onnx.ml:${op} reads a map, and Bulwark feeds a model one float32 tensor (no operator Bulwark accepts makes a map): its output would be of the size of a map it cannot bound`,
    );
  if (!ML_OPS.has(op))
    throw new Refusal(
      node,
      `an operator Bulwark does not bound (ai.onnx.ml:${op}): its output could be of any size`,
    );
  const rows = (): Iv => {
    const d = requireDims(node, x);
    return d.length >= 2 ? (d[0] as Iv) : [1, 1];
  };
  const count = (...names: string[]): number => {
    let n = 0;
    for (const name of names) {
      const a = node.attrs.get(name);
      if (a) n = Math.max(n, a.intCount, a.stringCount, a.floatCount);
    }
    return n;
  };
  const labelType = (): number => (node.attrs.has('classlabels_strings') ? STRING : INT64);
  switch (op) {
    case 'TreeEnsembleClassifier':
    case 'LinearClassifier':
    case 'SVMClassifier': {
      let c = Math.max(2, count('classlabels_int64s', 'classlabels_ints', 'classlabels_strings'));
      if (op === 'LinearClassifier') c = Math.max(c, node.attrs.get('intercepts')?.floatCount ?? 0);
      // SVM one-vs-one votes: a column per pair of classes.
      if (op === 'SVMClassifier') c = Math.max(c, (c * (c - 1)) / 2);
      const n = rows();
      if (op === 'SVMClassifier')
        svmWorkspace(ctx, node, x, n, count('classlabels_ints', 'classlabels_strings'));
      return [tensor(labelType(), [n]), tensor(FLOAT, [n, exact(c)])];
    }
    case 'TreeEnsembleRegressor':
    case 'TreeEnsemble':
    case 'LinearRegressor':
    case 'SVMRegressor':
      if (op === 'SVMRegressor') svmWorkspace(ctx, node, x, rows(), 0);
      return [
        tensor(FLOAT, [
          rows(),
          exact(Math.max(1, attrInt(node, 'n_targets', 1), attrInt(node, 'targets', 1))),
        ]),
      ];
    case 'Normalizer':
    case 'Scaler':
    case 'Imputer':
    case 'Binarizer': {
      const d = requireDims(node, x);
      const type = op === 'Imputer' || op === 'Binarizer' ? (x?.type ?? 0) : FLOAT;
      return [tensor(type, [...d], undefined, x?.max)];
    }
    case 'LabelEncoder':
    case 'CategoryMapper': {
      const d = requireDims(node, x);
      // LabelEncoder's values: values_strings, or (ai.onnx.ml 4) values_tensor, whose type is the output's.
      const valuesTensor = node.attrs.get('values_tensor')?.t;
      const toStrings =
        node.attrs.has('values_strings') ||
        (valuesTensor !== undefined && parseTensor(valuesTensor).type === STRING) ||
        (op === 'CategoryMapper' && x?.type !== STRING);
      return [tensor(toStrings ? STRING : INT64, [...d], undefined, x?.max)];
    }
    case 'ZipMap': {
      // A sequence of one map per row, an entry per class.
      const c = Math.max(1, count('classlabels_int64s', 'classlabels_strings'));
      return [tensor(MAP_ENTRY, [rows(), exact(c)])];
    }
    case 'ArrayFeatureExtractor': {
      const d = requireDims(node, x);
      const k = ins[1]?.max ?? Infinity;
      return [tensor(x?.type ?? 0, [...(d.length > 1 ? d.slice(0, -1) : [[1, 1] as Iv]), [0, k]])];
    }
    case 'OneHotEncoder': {
      const d = requireDims(node, x);
      return [tensor(FLOAT, [...d, exact(count('cats_int64s', 'cats_strings'))])];
    }
    case 'FeatureVectorizer': {
      const widths = attrInts(node, 'inputdimensions') ?? [];
      return [tensor(FLOAT, [rows(), exact(widths.reduce((a, b) => a + Math.max(0, b), 0))])];
    }
  }
  throw new Refusal(node, `an operator Bulwark does not bound (ai.onnx.ml:${op})`);
}

/**
 * The buffers ONNX Runtime's SVM kernels hold besides their outputs
 * (onnxruntime/core/providers/cpu/ml/svmclassifier.cc and svmregressor.cc): the input cast to float
 * when it is not float, and with support vectors a kernel value per row and vector (rows x
 * vector_count floats; SVMClassifier's vector_count is the sum of `vectors_per_class`, SVMRegressor's
 * the `n_supports` attribute: numbers in the model, not the size of an array in it, so a small model
 * can name 2^40 of them), SVMClassifier's votes (rows x classes int64) and, with `prob_a`, its
 * pairwise scores and probabilities (rows x classes^2 floats).
 */
function svmWorkspace(ctx: Ctx, node: Node, x: T | undefined, rows: Iv, classes: number): void {
  const n = rows[1];
  let vectors: number;
  if (node.op === 'SVMClassifier')
    vectors = (attrInts(node, 'vectors_per_class') ?? []).reduce((a, v) => a + Math.abs(v), 0);
  else vectors = Math.abs(attrInt(node, 'n_supports', 0));
  let floats = x !== undefined && x.type !== FLOAT ? x.max : 0;
  let int64s = 0;
  if (vectors > 0) {
    floats += mul(n, vectors);
    if (node.op === 'SVMClassifier') {
      int64s = mul(n, classes);
      if (node.attrs.has('prob_a')) floats += mul(n, classes * classes + (classes * (classes - 1)) / 2);
    }
  }
  ctx.tensors.push({
    node: node.name,
    op: node.op,
    output: `${node.outputs[0] ?? ''} (workspace)`,
    bytes: mul(floats, 4) + mul(int64s, 8),
  });
}

/** Every name the sub-graphs of a node read (their own names included: only outer ones matter). */
function implicitInputs(n: Node): string[] {
  const out: string[] = [];
  const walk = (g: Uint8Array, depth: number): void => {
    if (depth > 32) throw invalid('sub-graphs nested too deep');
    for (const f of fields(g)) {
      if (f.no !== 1 || f.wt !== WT_LEN) continue;
      for (const x of fields(f.bytes)) {
        if (x.wt !== WT_LEN) continue;
        if (x.no === 1) out.push(str(x.bytes));
        else if (x.no === 5)
          for (const a of fields(x.bytes))
            if ((a.no === 6 || a.no === 11) && a.wt === WT_LEN) walk(a.bytes, depth + 1);
      }
    }
  };
  for (const a of n.attrs.values()) if (a.g !== undefined) walk(a.g, 1);
  return out;
}

/**
 * Carries the interval of the input's values to the outputs of an operator that only moves values
 * ({@link KEEPS_VALUES}; TopK's indices and other integer side outputs are left alone).
 */
function keepRange(node: Node, ins: (T | undefined)[], outs: (T | undefined)[]): void {
  if (!KEEPS_VALUES.has(node.op)) return;
  let r: Iv | undefined;
  if (node.op === 'Concat') {
    for (const t of ins) {
      if (t === undefined) continue;
      const ri = rangeOf(t);
      if (ri === undefined) return;
      r = r === undefined ? ri : hull(r, ri);
    }
  } else r = rangeOf(ins[0]);
  if (r === undefined) return;
  const n = node.op === 'TopK' ? 1 : outs.length;
  for (let k = 0; k < n; k++) {
    const t = outs[k];
    if (t !== undefined && t.v === undefined && t.range === undefined) t.range = r;
  }
}

/** Analyses a graph; `outer` holds the names visible from enclosing graphs. */
function analyseGraph(
  ctx: Ctx,
  g: Graph,
  outer: Map<string, T>,
  input: ((name: string, dims: (number | null)[] | null, type: number) => T) | null,
  depth: number,
): T[] {
  const env = new Map(outer);
  for (const [name, c] of g.initializers) env.set(name, fromConst(c));
  for (const s of g.sparse) {
    if (s.dims.some((d) => d < 0)) throw invalid(`a sparse tensor with dims [${s.dims.join(', ')}]`);
    const t = tensor(s.type, s.dims.map(exact));
    env.set(s.name, t);
    // ONNX Runtime makes sparse initializers dense when it loads the model.
    ctx.tensors.push({
      node: '(sparse initializer)',
      op: 'sparse_initializer',
      output: s.name,
      bytes: mul(t.max, elemBytes(ctx, s.type)),
    });
  }
  for (const i of g.inputs) {
    if (g.initializers.has(i.name) || g.sparse.some((s) => s.name === i.name)) continue;
    env.set(
      i.name,
      input
        ? input(i.name, i.dims, i.type)
        : tensor(
            i.type,
            (i.dims ?? []).map((d) => (d === null ? [0, Infinity] : exact(d))),
          ),
    );
  }
  // Kahn's algorithm: ONNX Runtime runs nodes in an order of its own, and a file need not list them in
  // order; every order computes the same tensors.
  const producers = new Map<string, number>();
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) if (o !== '') producers.set(o, i);
  });
  // A sub-graph reads names of the graphs around it without listing them as the node's inputs
  // (ONNX Runtime's implicit inputs): the node waits for them too.
  const waiting = g.nodes.map(
    (n) =>
      new Set([...n.inputs, ...implicitInputs(n)].filter((i) => i !== '' && !env.has(i) && producers.has(i))),
  );
  const consumers = new Map<string, number[]>();
  g.nodes.forEach((_n, i) => {
    // Appended in place: a tensor read by k nodes (the input, in a wide graph) cost k^2 copies before.
    for (const name of waiting[i] as Set<string>) {
      const c = consumers.get(name);
      if (c === undefined) consumers.set(name, [i]);
      else c.push(i);
    }
  });
  const ready = g.nodes.map((_, i) => i).filter((i) => (waiting[i] as Set<string>).size === 0);
  let done = 0;
  // A queue read from its head by index: Array.shift() moves every element left, each time.
  for (let head = 0; head < ready.length; head++) {
    const i = ready[head] as number;
    const node = g.nodes[i] as Node;
    done++;
    // A node without outputs holds nothing (ONNX Runtime refuses it anyway, with its own message).
    if (node.outputs.every((o) => o === '')) continue;
    const ins = node.inputs.map((name) => (name === '' ? undefined : env.get(name)));
    const outs = evalNode(ctx, node, ins, (graph) => {
      if (depth >= 32) throw invalid('sub-graphs nested too deep');
      return analyseGraph(ctx, parseGraph(graph), env, null, depth + 1);
    });
    if (node.domain === '' || node.domain === 'ai.onnx') keepRange(node, ins, outs);
    node.outputs.forEach((name, k) => {
      if (name === '') return;
      const t = outs[k];
      if (t === undefined) throw new Refusal(node, `its output ${k} is not known`);
      env.set(name, t);
      ctx.tensors.push({
        node: node.name,
        op: node.op,
        output: name,
        bytes: mul(t.max, elemBytes(ctx, t.type)),
      });
      for (const c of consumers.get(name) ?? []) {
        const w = waiting[c] as Set<string>;
        w.delete(name);
        if (w.size === 0) ready.push(c);
      }
    });
  }
  if (done < g.nodes.length) {
    const stuck = g.nodes.find((_, i) => (waiting[i] as Set<string>).size > 0) as Node;
    throw new Refusal(stuck, 'its inputs depend on its own outputs (a cycle)');
  }
  return g.outputs.map((o) => env.get(o) ?? rankless(0, Infinity));
}

const fmtBytes = (b: number): string =>
  !Number.isFinite(b)
    ? 'no bound'
    : b >= 2 ** 30
      ? `${(b / 2 ** 30).toFixed(1)} GiB`
      : b >= 2 ** 20
        ? `${(b / 2 ** 20).toFixed(1)} MiB`
        : `${Math.ceil(b / 1024)} KiB`;

/**
 * The upper bound of the memory one run of the model computes, for inputs of at most `maxBatch` rows
 * (see the module comment), and the refusal of a model past `maxMemoryBytes` or without a bound:
 * ERR_MODEL_UNSAFE naming the node, its operator and the bound. `what` names the model in messages.
 * Call {@link assertOnnxOpenable} first (it bounds the counts this walk visits).
 *
 * @example
 * ```ts
 * const b = onnxMemoryBound(bytes, 'model.onnx', { maxBatch: 256 });
 * console.log(b.bytes, b.largest?.node);
 * ```
 */
export function onnxMemoryBound(
  bytes: Uint8Array,
  what: string,
  options: OnnxMemoryOptions = {},
): OnnxMemoryBound {
  const maxBatch = requireInteger('maxBatch', options.maxBatch ?? DEFAULT_MAX_BATCH, 1, 1_000_000_000);
  const maxFeatures = requireInteger(
    'maxFeatures',
    options.maxFeatures ?? DEFAULT_MAX_FEATURES,
    1,
    1_000_000_000,
  );
  const limit = options.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES;
  const limitName = options.limitName ?? 'maxMemoryBytes';
  if (!(Number.isSafeInteger(limit) && limit >= 1))
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `${limitName}: expected a whole number of bytes >= 1, got ${limit}`,
    );
  let graph: Uint8Array | undefined;
  let opset = 1;
  let mlOpset = 1;
  const functions = new Set<string>();
  for (const f of fields(bytes)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 7) graph = f.bytes;
    else if (f.no === 8) {
      let domain = '';
      let version = 0;
      for (const o of fields(f.bytes)) {
        if (o.no === 1 && o.wt === WT_LEN) domain = str(o.bytes);
        else if (o.no === 2 && o.wt === WT_VARINT) version = o.int;
      }
      if (domain === '' || domain === 'ai.onnx') opset = version;
      else if (domain === 'ai.onnx.ml') mlOpset = version;
    } else if (f.no === 25) {
      let name = '';
      let domain = '';
      for (const g of fields(f.bytes)) {
        if (g.no === 1 && g.wt === WT_LEN) name = str(g.bytes);
        else if (g.no === 10 && g.wt === WT_LEN) domain = str(g.bytes);
      }
      functions.add(`${domain}:${name}`);
    }
  }
  if (graph === undefined) throw invalid('no graph');
  // The longest string anywhere bounds each element of a string tensor (strings are copied, never
  // built, by the operators accepted here).
  const ctx: Ctx = { opset, mlOpset, stringBytes: 32 + longestString(graph), functions, tensors: [] };
  const g = parseGraph(graph);
  let first = true;
  let symbolicFeatures = false;
  try {
    analyseGraph(
      ctx,
      g,
      new Map(),
      (_name, dims, type) => {
        // What Bulwark feeds: float32 [rows, features], rows at most maxBatch. A declared fixed size is
        // checked by ONNX Runtime at run time, so it holds.
        const d0 = dims?.[0];
        const d1 = dims?.[1];
        const isFirst = first;
        first = false;
        if (!isFirst)
          return tensor(
            type,
            (dims ?? []).map((d) => (d === null ? [0, Infinity] : exact(d))),
          );
        if (dims === null || dims.length === 2) {
          if (d1 === null || d1 === undefined) symbolicFeatures = true;
          return tensor(FLOAT, [
            d0 === null || d0 === undefined ? [1, maxBatch] : exact(d0),
            d1 === null || d1 === undefined ? [1, maxFeatures] : exact(d1),
          ]);
        }
        // Another rank: ONNX Runtime refuses Bulwark's [rows, features] at run time; only what the
        // session computes from constants when it opens counts, and that does not depend on the input.
        return tensor(
          type,
          dims.map((d, i) => (d !== null ? exact(d) : i === 0 ? [1, maxBatch] : [1, maxFeatures])),
        );
      },
      0,
    );
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    const n = e.node;
    throw new BulwarkError(
      'ERR_MODEL_UNSAFE',
      `${what}: node ${JSON.stringify(n?.name ?? '')} (${n?.domain ? `${n.domain}:` : ''}${n?.op ?? '?'}): ${e.why}; Bulwark does not run a model whose memory it cannot bound`,
      { details: { node: n?.name ?? '', op: n?.op ?? '', reason: 'unbounded' } },
    );
  }
  let total = 0;
  let largest: OnnxMemoryBound['largest'] = null;
  for (const t of ctx.tensors) {
    total += t.bytes;
    if (largest === null || t.bytes > largest.bytes) largest = t;
  }
  // The first tensor (in the order the graph computes them) without a bound, or past the limit on its
  // own, is the cause; what it feeds only inherits its size.
  const endless = ctx.tensors.find((t) => !Number.isFinite(t.bytes));
  if (endless !== undefined) {
    throw new BulwarkError(
      'ERR_MODEL_UNSAFE',
      `${what}: node ${JSON.stringify(endless.node)} (${endless.op}): the size of its output ${JSON.stringify(endless.output)} has no bound before the run; Bulwark does not run a model whose memory it cannot bound`,
      { details: { node: endless.node, op: endless.op, output: endless.output, reason: 'unbounded' } },
    );
  }
  if (total > limit) {
    const l = (ctx.tensors.find((t) => t.bytes > limit) ?? largest) as NonNullable<
      OnnxMemoryBound['largest']
    >;
    throw new BulwarkError(
      'ERR_MODEL_UNSAFE',
      `${what}: at ${maxBatch} rows${options.batchName !== undefined ? ` (${options.batchName})` : ''} a run may hold ${fmtBytes(total)} of tensors, above the limit of ${fmtBytes(limit)} (${limitName}); ${l === largest ? 'the largest' : 'the first past it'} is output ${JSON.stringify(l.output)} of node ${JSON.stringify(l.node)} (${l.op}), up to ${fmtBytes(l.bytes)}`,
      {
        details: { node: l.node, op: l.op, output: l.output, bytes: l.bytes, total, limit, reason: 'limit' },
      },
    );
  }
  return { bytes: total, largest, maxBatch, maxFeatures, symbolicFeatures };
}

/** Length of the longest string value of any tensor or attribute in a graph and its sub-graphs. */
function longestString(graph: Uint8Array): number {
  let m = 0;
  const tensorStrings = (t: Uint8Array) => {
    for (const f of fields(t)) if (f.no === 6 && f.wt === WT_LEN) m = Math.max(m, f.bytes.length);
  };
  const walkGraph = (g: Uint8Array, depth: number): void => {
    if (depth > 32) throw invalid('sub-graphs nested too deep');
    for (const f of fields(g)) {
      if (f.wt !== WT_LEN) continue;
      if (f.no === 5) tensorStrings(f.bytes);
      else if (f.no === 1) {
        for (const n of fields(f.bytes)) {
          if (n.no !== 5 || n.wt !== WT_LEN) continue;
          for (const a of fields(n.bytes)) {
            if (a.wt !== WT_LEN) continue;
            if (a.no === 4 || a.no === 9) m = Math.max(m, a.bytes.length);
            else if (a.no === 5 || a.no === 10) tensorStrings(a.bytes);
            else if (a.no === 6 || a.no === 11) walkGraph(a.bytes, depth + 1);
          }
        }
      }
    }
  };
  walkGraph(graph, 0);
  return m;
}
