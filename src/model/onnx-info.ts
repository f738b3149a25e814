/**
 * A read-only walk over an ONNX ModelProto's protobuf wire format (field numbers from onnx/onnx.proto3)
 * that never copies tensor data: packaging a 1 GB model reads its metadata, inputs and outputs
 * without decoding the weights, and the scanner visits every tensor (initializers, sparse
 * initializers, node attributes, sub-graphs of If/Loop/Scan, functions) for its external-data
 * location. Malformed input is ERR_ONNX_INVALID.
 */
import { BulwarkError } from '../core/index.js';
import {
  invalidOnnx as invalid,
  type ProtoField,
  protoFields,
  utf8 as str,
  WT_LEN,
  WT_VARINT,
} from './protobuf.js';

/** The wire format (src/model/protobuf.ts); varints unsigned, as counts and limits read them. */
const fields = (buf: Uint8Array, depth = 0): Generator<ProtoField> => protoFields(buf, { depth });
const signedFields = (buf: Uint8Array): Generator<ProtoField> => protoFields(buf, { signed: true });

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

/** A StringStringEntryProto (metadata_props, external_data): key(1), value(2). */
function stringEntry(b: Uint8Array): [key: string, value: string] {
  let key = '';
  let value = '';
  for (const e of fields(b, 1)) {
    if (e.no === 1 && e.wt === WT_LEN) key = str(e.bytes);
    else if (e.no === 2 && e.wt === WT_LEN) value = str(e.bytes);
  }
  return [key, value];
}

/**
 * A ValueInfoProto (a graph input or output): its name, element type and dims (null for a symbolic
 * dim_param, the whole list null without a shape). Varints read signed, as ONNX's int64 dims are: the
 * one reader of graph inputs for onnxInfo and the memory bound (onnx-memory.ts).
 */
export function readValueInfo(b: Uint8Array): { name: string; dims: (number | null)[] | null; type: number } {
  let name = '';
  let dims: (number | null)[] | null = null;
  let type = 0;
  for (const f of signedFields(b)) {
    if (f.no === 1 && f.wt === WT_LEN) name = str(f.bytes);
    else if (f.no === 2 && f.wt === WT_LEN) {
      // TypeProto.tensor_type(1) -> elem_type(1), shape(2) -> dim(1) -> dim_value(1) | dim_param(2)
      for (const t of signedFields(f.bytes)) {
        if (t.no !== 1 || t.wt !== WT_LEN) continue;
        for (const s of signedFields(t.bytes)) {
          if (s.no === 1 && s.wt === WT_VARINT) type = s.int;
          if (s.no !== 2 || s.wt !== WT_LEN) continue;
          dims = [];
          for (const d of signedFields(s.bytes)) {
            if (d.no !== 1 || d.wt !== WT_LEN) continue;
            let v: number | null = null;
            for (const x of signedFields(d.bytes)) if (x.no === 1 && x.wt === WT_VARINT) v = x.int;
            dims.push(v);
          }
        }
      }
    }
  }
  return { name, dims, type };
}

function valueInfo(b: Uint8Array): { name: string; dims: number[] } {
  const v = readValueInfo(b);
  return { name: v.name, dims: (v.dims ?? []).map((d) => d ?? -1) };
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
      const [k, v] = stringEntry(f.bytes);
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
      const [key, value] = stringEntry(f.bytes);
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

/**
 * Every tensor of the model stored as external data, with its `location`. A model without a graph is
 * ERR_ONNX_INVALID unless `graphless` allows it (it then has no tensors to report).
 */
export function externalTensors(bytes: Uint8Array, graphless = false): ExternalTensor[] {
  const out: ExternalTensor[] = [];
  let sawGraph = graphless;
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

/**
 * What each length-delimited field of an ONNX message holds (onnx/onnx.proto3 and onnx-ml.proto3
 * field numbers): a sub-message of the named kind, an entry of a repeated string/bytes list (`'str'`),
 * or packed 64-bit integers (`'int64'`: each value is one object in a protobuf decoder). Fields not
 * listed (raw_data, float_data, names, doc strings) hold bytes or packed floats and are not walked.
 */
type Kind =
  | 'model'
  | 'graph'
  | 'node'
  | 'attr'
  | 'tensor'
  | 'sparse'
  | 'valueInfo'
  | 'type'
  | 'typeTensor'
  | 'typeOne'
  | 'typeMap'
  | 'shape'
  | 'leaf'
  | 'function'
  | 'training'
  | 'annotation';
const SCHEMA: Record<Kind, Record<number, Kind | 'str' | 'int64'>> = {
  model: { 7: 'graph', 8: 'leaf', 14: 'leaf', 20: 'training', 25: 'function' },
  graph: {
    1: 'node',
    5: 'tensor',
    11: 'valueInfo',
    12: 'valueInfo',
    13: 'valueInfo',
    14: 'annotation',
    15: 'sparse',
    16: 'leaf',
  },
  node: { 1: 'str', 2: 'str', 5: 'attr', 9: 'leaf' },
  attr: {
    5: 'tensor',
    6: 'graph',
    8: 'int64',
    9: 'str',
    10: 'tensor',
    11: 'graph',
    14: 'type',
    15: 'type',
    22: 'sparse',
    23: 'sparse',
  },
  tensor: { 1: 'int64', 3: 'leaf', 5: 'int64', 6: 'str', 7: 'int64', 11: 'int64', 13: 'leaf', 16: 'leaf' },
  sparse: { 1: 'tensor', 2: 'tensor', 3: 'int64' },
  valueInfo: { 2: 'type', 4: 'leaf' },
  type: { 1: 'typeTensor', 4: 'typeOne', 5: 'typeMap', 8: 'typeTensor', 9: 'typeOne' },
  typeTensor: { 2: 'shape' },
  typeOne: { 1: 'type' },
  typeMap: { 2: 'type' },
  shape: { 1: 'leaf' },
  leaf: {},
  function: { 4: 'str', 5: 'str', 6: 'str', 7: 'node', 9: 'leaf', 11: 'attr', 12: 'valueInfo', 14: 'leaf' },
  training: { 1: 'graph', 2: 'graph', 3: 'leaf', 4: 'leaf' },
  annotation: { 2: 'leaf' },
};

/**
 * How much a decoder builds from a model: nodes and tensors (of every graph, sub-graph and function),
 * elements (every message and list entry, nodes and tensors included) and int64 values (packed: one
 * per byte at most).
 */
export interface OnnxCounts {
  nodes: number;
  tensors: number;
  elements: number;
  int64: number;
}

/**
 * Upper bounds for a model opened in ONNX Runtime. In one-off checks during the red-team review (not
 * committed results) an empty node cost about 1.7 KB there, an empty tensor 300 bytes, other messages
 * 100-250 bytes, an int64 value 20-30 bytes, and a 16 MB file of empty nodes (2 bytes each) took 7 GB;
 * at these bounds parsing stays at some hundreds of MB. A tree ensemble's int64 node arrays fit.
 */
export const ONNX_LIMITS: Readonly<OnnxCounts> = {
  nodes: 100_000,
  tensors: 100_000,
  elements: 1_000_000,
  int64: 50_000_000,
};

/**
 * Upper bounds for a model decoded by protobufjs (`fromOnnx`, which imports dense chains of a few
 * dozen nodes): it builds a JavaScript object per element with every default filled (one-off checks:
 * about 1 KB per empty tensor, 430 bytes per empty node, 90 bytes per int64 value; a 4 MB file of
 * empty tensors held 1.9 GB of heap).
 */
export const ONNX_DECODE_LIMITS: Readonly<OnnxCounts> = {
  nodes: 10_000,
  tensors: 10_000,
  elements: 200_000,
  int64: 1_000_000,
};

const UNITS: Record<keyof OnnxCounts, string> = {
  nodes: 'nodes',
  tensors: 'tensors',
  elements: 'elements (messages and list entries)',
  int64: '64-bit integer values',
};

/**
 * Counts the nodes, tensors, elements and int64 values of a model without decoding it, stopping as
 * soon as one passes its bound in `limits` (that count then exceeds it; the others are partial).
 * ERR_ONNX_INVALID when the wire format is malformed or nested more than 64 deep.
 */
export function onnxCounts(bytes: Uint8Array, limits: Readonly<OnnxCounts> = ONNX_LIMITS): OnnxCounts {
  const c: OnnxCounts = { nodes: 0, tensors: 0, elements: 0, int64: 0 };
  const over = () =>
    c.nodes > limits.nodes ||
    c.tensors > limits.tensors ||
    c.elements > limits.elements ||
    c.int64 > limits.int64;
  const walk = (b: Uint8Array, kind: Kind, depth: number): boolean => {
    const schema = SCHEMA[kind];
    for (const f of fields(b, depth)) {
      const what = schema[f.no];
      if (what === undefined) continue;
      if (what === 'int64') c.int64 += f.wt === WT_LEN ? f.bytes.length : 1;
      else if (what === 'str') c.elements += 1;
      else if (f.wt === WT_LEN) {
        c.elements += 1;
        if (what === 'node') c.nodes += 1;
        else if (what === 'tensor') c.tensors += 1;
        if (what !== 'leaf' && walk(f.bytes, what, depth + 1)) return true;
      }
      if (over()) return true;
    }
    return false;
  };
  walk(bytes, 'model', 0);
  return c;
}

/** Bulwark writes about ten metadata entries; a model may carry at most this many. */
export const MAX_METADATA_ENTRIES = 10_000;

/**
 * The model's metadata_props (key -> value), read from the top-level fields only: nothing else of the
 * model is decoded. ERR_ONNX_INVALID when the wire format is malformed or there are more than
 * {@link MAX_METADATA_ENTRIES} entries.
 */
export function onnxMetadataProps(bytes: Uint8Array): Record<string, string> {
  const meta: Record<string, string> = {};
  let n = 0;
  for (const f of fields(bytes)) {
    if (f.no !== 14 || f.wt !== WT_LEN) continue;
    if (++n > MAX_METADATA_ENTRIES) throw invalid(`more than ${MAX_METADATA_ENTRIES} metadata entries`);
    const [k, v] = stringEntry(f.bytes);
    meta[k] = v;
  }
  return meta;
}

/**
 * Refuses, before any decoder or ONNX Runtime sees it, a model Bulwark must not open from memory:
 *
 * - one with more nodes, tensors, elements or int64 values than `limits` (default {@link ONNX_LIMITS};
 *   ERR_ONNX_INVALID): decoders build an object per element, hundreds of times the bytes it takes in
 *   the file;
 * - one with a tensor stored as external data (ERR_MODEL_UNSAFE): ONNX Runtime opens a model given as
 *   bytes by resolving `location` against the process's working folder, so a model handed to
 *   `bulwark predict` read `pass.txt` beside the user into its weights and the predictions printed its
 *   bytes. Bulwark always opens models from memory and packages hold none, so none is accepted.
 *
 * `what` names the model in messages (a file, `models.NAME`).
 */
export function assertOnnxOpenable(
  bytes: Uint8Array,
  what: string,
  limits: Readonly<OnnxCounts> = ONNX_LIMITS,
): void {
  const c = onnxCounts(bytes, limits);
  for (const k of ['nodes', 'tensors', 'elements', 'int64'] as const) {
    if (c[k] > limits[k])
      throw new BulwarkError(
        'ERR_ONNX_INVALID',
        `${what}: the model has more than ${limits[k]} ${UNITS[k]}: Bulwark does not open it`,
        { details: { limit: k, max: limits[k] } },
      );
  }
  // A model without a graph is refused by whoever reads it next, with its own message.
  const ext = externalTensors(bytes, true);
  if (ext.length > 0) {
    const t = ext[0] as ExternalTensor;
    throw new BulwarkError(
      'ERR_MODEL_UNSAFE',
      `${what}: tensor ${JSON.stringify(t.tensor)} keeps its data in an external file ${JSON.stringify(t.location)}${ext.length > 1 ? ` (and ${ext.length - 1} more)` : ''}: Bulwark opens models from memory only, where ONNX Runtime would read that file from the working folder; save the model with its data inside`,
      { details: { tensor: t.tensor, location: t.location } },
    );
  }
}
