/**
 * A read-only walk over an ONNX ModelProto's protobuf wire format (field numbers from onnx/onnx.proto3)
 * that never copies tensor data: packaging a 1 GB model reads its metadata, inputs and outputs
 * without decoding the weights, and the scanner visits every tensor (initializers, sparse
 * initializers, node attributes, sub-graphs of If/Loop/Scan, functions) for its external-data
 * location. Malformed input is ERR_ONNX_INVALID.
 */
import { BulwarkError } from '../core/index.js';

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

function invalid(what: string): BulwarkError {
  return new BulwarkError('ERR_ONNX_INVALID', `not a well-formed ONNX model: ${what}`);
}

interface Field {
  no: number;
  wt: number;
  /** varint value (as a number: ONNX values here fit), for WT_VARINT. */
  int: number;
  /** the bytes of a length-delimited field (a view, no copy). */
  bytes: Uint8Array;
}

/** Iterates the fields of one message. */
function* fields(buf: Uint8Array, depth = 0): Generator<Field> {
  if (depth > 64) throw invalid('nesting too deep');
  let p = 0;
  const n = buf.length;
  const varint = (): number => {
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= n) throw invalid('truncated varint');
      const b = buf[p++]!;
      x += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return x;
      mul *= 128;
    }
    throw invalid('varint too long');
  };
  while (p < n) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wt = key % 8;
    if (no === 0) throw invalid('field number 0');
    if (wt === WT_VARINT) yield { no, wt, int: varint(), bytes: EMPTY };
    else if (wt === WT_I64) {
      if (p + 8 > n) throw invalid('truncated fixed64');
      p += 8;
    } else if (wt === WT_I32) {
      if (p + 4 > n) throw invalid('truncated fixed32');
      p += 4;
    } else if (wt === WT_LEN) {
      const len = varint();
      if (len > n - p) throw invalid('length runs past the end');
      yield { no, wt, int: 0, bytes: buf.subarray(p, p + len) };
      p += len;
    } else throw invalid(`unsupported wire type ${wt}`);
  }
}

const EMPTY = new Uint8Array(0);
const dec = new TextDecoder('utf-8', { fatal: false });
const str = (b: Uint8Array): string => dec.decode(b);

/** What packaging needs to know about an ONNX model. */
export interface OnnxInfo {
  irVersion: number;
  producer: string;
  /** Default-domain opset. */
  opset?: number;
  metadata: Record<string, string>;
  /** Graph inputs that are not initializers, with their dims (-1 for a symbolic dim). */
  inputs: { name: string; dims: number[] }[];
  outputs: string[];
}

function valueInfo(b: Uint8Array): { name: string; dims: number[] } {
  let name = '';
  const dims: number[] = [];
  for (const f of fields(b)) {
    if (f.no === 1 && f.wt === WT_LEN) name = str(f.bytes);
    else if (f.no === 2 && f.wt === WT_LEN) {
      // TypeProto.tensor_type(1) -> shape(2) -> dim(1) -> dim_value(1) | dim_param(2)
      for (const t of fields(f.bytes)) {
        if (t.no !== 1 || t.wt !== WT_LEN) continue;
        for (const s of fields(t.bytes)) {
          if (s.no !== 2 || s.wt !== WT_LEN) continue;
          for (const d of fields(s.bytes)) {
            if (d.no !== 1 || d.wt !== WT_LEN) continue;
            let v = -1;
            for (const x of fields(d.bytes)) if (x.no === 1 && x.wt === WT_VARINT) v = x.int;
            dims.push(v);
          }
        }
      }
    }
  }
  return { name, dims };
}

/** Reads the model's metadata, producer, opset, inputs and outputs. */
export function onnxInfo(bytes: Uint8Array): OnnxInfo {
  const info: OnnxInfo = { irVersion: 0, producer: '', metadata: {}, inputs: [], outputs: [] };
  let graph: Uint8Array | undefined;
  let producerVersion = '';
  for (const f of fields(bytes)) {
    if (f.no === 1 && f.wt === WT_VARINT) info.irVersion = f.int;
    else if (f.no === 2 && f.wt === WT_LEN) info.producer = str(f.bytes);
    else if (f.no === 3 && f.wt === WT_LEN) producerVersion = str(f.bytes);
    else if (f.no === 7 && f.wt === WT_LEN) graph = f.bytes;
    else if (f.no === 8 && f.wt === WT_LEN) {
      let domain = '';
      let version = 0;
      for (const o of fields(f.bytes)) {
        if (o.no === 1 && o.wt === WT_LEN) domain = str(o.bytes);
        else if (o.no === 2 && o.wt === WT_VARINT) version = o.int;
      }
      if (domain === '' || domain === 'ai.onnx') info.opset = version;
    } else if (f.no === 14 && f.wt === WT_LEN) {
      let k = '';
      let v = '';
      for (const e of fields(f.bytes)) {
        if (e.no === 1 && e.wt === WT_LEN) k = str(e.bytes);
        else if (e.no === 2 && e.wt === WT_LEN) v = str(e.bytes);
      }
      info.metadata[k] = v;
    }
  }
  if (info.irVersion === 0 || graph === undefined) throw invalid('no ir_version or no graph');
  if (producerVersion) info.producer = `${info.producer} ${producerVersion}`.trim();
  const initializers = new Set<string>();
  const inputs: { name: string; dims: number[] }[] = [];
  for (const f of fields(graph)) {
    if (f.no === 5 && f.wt === WT_LEN) {
      for (const t of fields(f.bytes)) if (t.no === 8 && t.wt === WT_LEN) initializers.add(str(t.bytes));
    } else if (f.no === 11 && f.wt === WT_LEN) inputs.push(valueInfo(f.bytes));
    else if (f.no === 12 && f.wt === WT_LEN) info.outputs.push(valueInfo(f.bytes).name);
  }
  info.inputs = inputs.filter((i) => !initializers.has(i.name));
  return info;
}

/** A tensor whose data lives outside the model file. */
export interface ExternalTensor {
  tensor: string;
  location: string;
}

function tensorExternal(b: Uint8Array, out: ExternalTensor[]): void {
  let name = '';
  let dataLocation = 0;
  const entries: { key: string; value: string }[] = [];
  for (const f of fields(b)) {
    if (f.no === 8 && f.wt === WT_LEN) name = str(f.bytes);
    else if (f.no === 14 && f.wt === WT_VARINT) dataLocation = f.int;
    else if (f.no === 13 && f.wt === WT_LEN) {
      let key = '';
      let value = '';
      for (const e of fields(f.bytes)) {
        if (e.no === 1 && e.wt === WT_LEN) key = str(e.bytes);
        else if (e.no === 2 && e.wt === WT_LEN) value = str(e.bytes);
      }
      entries.push({ key, value });
    }
  }
  const loc = entries.find((e) => e.key === 'location');
  if (dataLocation === 1 || loc) out.push({ tensor: name, location: loc?.value ?? '' });
}

function sparseExternal(b: Uint8Array, out: ExternalTensor[]): void {
  // SparseTensorProto: values(1), indices(2) are TensorProtos.
  for (const f of fields(b)) if ((f.no === 1 || f.no === 2) && f.wt === WT_LEN) tensorExternal(f.bytes, out);
}

function attributeExternal(b: Uint8Array, out: ExternalTensor[], depth: number): void {
  // AttributeProto: t(5), g(6), tensors(10), graphs(11), sparse_tensor(22), sparse_tensors(23)
  for (const f of fields(b)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 5 || f.no === 10) tensorExternal(f.bytes, out);
    else if (f.no === 6 || f.no === 11) graphExternal(f.bytes, out, depth + 1);
    else if (f.no === 22 || f.no === 23) sparseExternal(f.bytes, out);
  }
}

function nodeExternal(b: Uint8Array, out: ExternalTensor[], depth: number): void {
  for (const f of fields(b)) if (f.no === 5 && f.wt === WT_LEN) attributeExternal(f.bytes, out, depth);
}

function graphExternal(b: Uint8Array, out: ExternalTensor[], depth: number): void {
  if (depth > 32) throw invalid('sub-graphs nested too deep');
  // GraphProto: node(1), initializer(5), sparse_initializer(15)
  for (const f of fields(b)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 1) nodeExternal(f.bytes, out, depth);
    else if (f.no === 5) tensorExternal(f.bytes, out);
    else if (f.no === 15) sparseExternal(f.bytes, out);
  }
}

/** Every tensor of the model stored as external data, with its `location`. */
export function externalTensors(bytes: Uint8Array): ExternalTensor[] {
  const out: ExternalTensor[] = [];
  let sawGraph = false;
  for (const f of fields(bytes)) {
    if (f.wt !== WT_LEN) continue;
    if (f.no === 7) {
      sawGraph = true;
      graphExternal(f.bytes, out, 0);
    } else if (f.no === 25) {
      // FunctionProto: node(7)
      for (const g of fields(f.bytes)) if (g.no === 7 && g.wt === WT_LEN) nodeExternal(g.bytes, out, 1);
    }
  }
  if (!sawGraph) throw invalid('no graph');
  return out;
}
