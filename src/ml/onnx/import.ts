/**
 * Imports an ONNX model made of dense layers into Bulwark's differentiable {@link Network}, so that
 * attacks and defences (which need gradients) work on models users bring: a PyTorch MLP from
 * `torch.onnx.export`, a logistic regression, or a model Bulwark exported itself.
 *
 * The graph must be a chain from its one input to the chosen output:
 *   [Sub | Add | Mul | Div by constants]*        -> input preprocessing (folded into one affine map)
 *   (Gemm | MatMul [Add bias]) [Mul/Div/Add/Sub by constants]* [activation]   -> a dense layer, repeated
 *   [Softmax | Sigmoid]                             -> the head
 * with activation one of Relu, Tanh, Sigmoid, or the tempered sigmoid s * Sigmoid(.) - o (its inverse
 * temperature folded into the layer), the same for every hidden layer; Flatten, Identity and Constant
 * nodes are accepted where they change nothing. Any other operator is refused with
 * ERR_ONNX_UNSUPPORTED_OP naming it.
 */
import { BulwarkError } from '../../core/index.js';
import { assertOnnxOpenable, ONNX_DECODE_LIMITS, onnxMetadataProps } from '../../model/onnx-info.js';
import type { ActivationName, TemperedSigmoid } from '../activations.js';
import { type Head, Network, type Preprocessing } from '../network.js';
import {
  type AttributeMsg,
  DataType,
  decodeModel,
  type ModelMsg,
  type NodeMsg,
  type TensorMsg,
} from './proto.js';

export interface OnnxImportOptions {
  /** Name of the graph output to import up to (default: the first graph output). */
  output?: string;
}

export interface OnnxImportResult {
  network: Network;
  /** Whether the imported output is the class probabilities (graph ends in Softmax/Sigmoid) or raw logits. */
  outputKind: 'probabilities' | 'logits';
  inputName: string;
  outputName: string;
  /** producer_name and producer_version of the file. */
  producer: string;
  /** Version of the default-domain opset the model imports. */
  opset: number;
  /** The model's metadata_props (key → value). */
  metadata: Record<string, string>;
}

interface Const {
  dims: number[];
  data: Float64Array;
}

interface Dense {
  fanIn: number;
  fanOut: number;
  /** fanIn x fanOut row-major */
  w: Float64Array;
  b: Float64Array;
}

type Act = { name: ActivationName; tempered?: TemperedSigmoid };

const invalid = (msg: string) => new BulwarkError('ERR_ONNX_INVALID', msg);

function unsupported(node: NodeMsg, why?: string): BulwarkError {
  const label = node.name ? ` (node "${node.name}")` : '';
  return new BulwarkError(
    'ERR_ONNX_UNSUPPORTED_OP',
    why === undefined
      ? `unsupported ONNX operator ${node.domain ? `${node.domain}:` : ''}${node.opType}${label}`
      : `ONNX operator ${node.opType}${label}: ${why}`,
    { details: { operator: node.opType, node: node.name } },
  );
}

/** Decodes a TensorProto's values as doubles (float, double, int32, int64; raw_data or typed fields). */
function tensorValues(t: TensorMsg): Const {
  if (t.dataLocation === 1) throw invalid(`tensor "${t.name}": external data is not supported`);
  const dims = t.dims.map(Number);
  // A negative dim, or a product past 2^53, made `new Float64Array(count)` throw a RangeError
  // (ERR_INTERNAL); the values' length is checked against the dims before any allocation.
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw invalid(`tensor "${t.name}": dimension ${d} of [${dims.join(', ')}] is not a size`);
    count *= d;
    if (!Number.isSafeInteger(count))
      throw invalid(`tensor "${t.name}": dims [${dims.join(', ')}] hold more values than any tensor can`);
  }
  const raw =
    t.rawData && t.rawData.length > 0
      ? Buffer.from(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength)
      : null;
  let data = new Float64Array(0);
  const need = (bytesPer: number) => {
    if (raw !== null && raw.length !== count * bytesPer) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `tensor "${t.name}": ${raw.length} bytes for ${count} values`,
      );
    }
    if (raw !== null) data = new Float64Array(count);
  };
  const fromField = (field: number[]) => {
    if (field.length !== count) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `tensor "${t.name}": ${field.length} values, dims say ${count}`,
      );
    }
    data = new Float64Array(count);
    for (let i = 0; i < count; i++) data[i] = Number(field[i]);
  };
  switch (t.dataType) {
    case DataType.FLOAT:
      need(4);
      if (raw) for (let i = 0; i < count; i++) data[i] = raw.readFloatLE(4 * i);
      else fromField(t.floatData);
      break;
    case DataType.DOUBLE:
      need(8);
      if (raw) for (let i = 0; i < count; i++) data[i] = raw.readDoubleLE(8 * i);
      else fromField(t.doubleData);
      break;
    case DataType.INT64:
      need(8);
      if (raw) for (let i = 0; i < count; i++) data[i] = Number(raw.readBigInt64LE(8 * i));
      else fromField(t.int64Data);
      break;
    case DataType.INT32:
      need(4);
      if (raw) for (let i = 0; i < count; i++) data[i] = raw.readInt32LE(4 * i);
      else fromField(t.int32Data);
      break;
    default:
      throw invalid(
        `tensor "${t.name}": data type ${t.dataType} is not supported (float, double, int32, int64 are)`,
      );
  }
  return { dims, data };
}

function attr(node: NodeMsg, name: string): AttributeMsg | undefined {
  return node.attribute.find((a) => a.name === name);
}

function stringAttr(node: NodeMsg, name: string): string | undefined {
  const a = attr(node, name);
  return a === undefined ? undefined : Buffer.from(a.s).toString('utf8');
}

/** ai.onnx.ml operators the importer understands (scikit-learn linear models as converted). */
const ML_OPS = new Set(['Scaler', 'LinearClassifier', 'Normalizer', 'ZipMap']);

function intAttr(node: NodeMsg, name: string, dflt: number): number {
  const a = attr(node, name);
  return a === undefined ? dflt : Number(a.i);
}

function floatAttr(node: NodeMsg, name: string, dflt: number): number {
  const a = attr(node, name);
  return a === undefined ? dflt : a.f;
}

/**
 * The metadata_props of an ONNX model, read from its top-level fields without decoding the graph (a
 * full decode of a 4 MB file of empty nodes held 860 MB in a one-off check); ERR_ONNX_INVALID if the wire format is
 * malformed.
 */
export function onnxMetadata(bytes: Uint8Array): Record<string, string> {
  return onnxMetadataProps(bytes);
}

/** Reads an ONNX model (ModelProto bytes) into a {@link Network}. */
export function fromOnnx(bytes: Uint8Array, options: OnnxImportOptions = {}): OnnxImportResult {
  // Bounded before decoding: protobufjs builds an object for every element.
  assertOnnxOpenable(bytes, 'model', ONNX_DECODE_LIMITS);
  let model: ModelMsg;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    throw new BulwarkError('ERR_ONNX_INVALID', `not an ONNX model: ${(e as Error).message}`, { cause: e });
  }
  const g = model.graph;
  if (g === undefined || g === null || g.node.length === 0) throw invalid('the model has no graph');
  const opsetEntry = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (opsetEntry === undefined) throw invalid('the model imports no default-domain (ai.onnx) opset');
  const opset = Number(opsetEntry.version);

  const consts = new Map<string, Const>();
  for (const t of g.initializer) consts.set(t.name, tensorValues(t));
  for (const n of g.node) {
    const mlOp = n.domain === 'ai.onnx.ml' && ML_OPS.has(n.opType);
    if (n.domain !== '' && n.domain !== 'ai.onnx' && !mlOp) throw unsupported(n);
    if (n.opType !== 'Constant') continue;
    const v = attr(n, 'value');
    const out = n.output[0] as string;
    if (v?.t) consts.set(out, tensorValues(v.t));
    else if (attr(n, 'value_float'))
      consts.set(out, { dims: [], data: Float64Array.of(floatAttr(n, 'value_float', 0)) });
    else if (attr(n, 'value_floats')) {
      const fs = (attr(n, 'value_floats') as AttributeMsg).floats;
      consts.set(out, { dims: [fs.length], data: Float64Array.from(fs) });
    } else throw unsupported(n, 'only value, value_float and value_floats constants are supported');
  }

  const inputs = g.input.filter((i) => !consts.has(i.name));
  if (inputs.length !== 1) throw invalid(`the graph has ${inputs.length} non-constant inputs, expected 1`);
  const inputInfo = inputs[0] as (typeof inputs)[number];
  const inputName = inputInfo.name;
  // Default: the first float tensor output (converters put an int64/string label output first).
  const outputName =
    options.output ??
    (g.output.find((o) => o.type?.tensorType?.elemType === DataType.FLOAT) ?? g.output[0])?.name;
  if (outputName === undefined || !g.output.some((o) => o.name === outputName)) {
    throw invalid(
      `the graph has no output ${JSON.stringify(outputName)}; outputs: ${g.output.map((o) => o.name).join(', ')}`,
    );
  }
  const declaredDims = inputInfo.type?.tensorType?.shape?.dim ?? [];
  const declaredWidth =
    declaredDims.length === 2 && declaredDims[1]?.dimValue ? Number(declaredDims[1].dimValue) : null;

  const consumers = new Map<string, NodeMsg[]>();
  for (const n of g.node) {
    if (n.opType === 'Constant') continue;
    for (const i of n.input) {
      if (i === '' || consts.has(i)) continue;
      const list = consumers.get(i) ?? [];
      list.push(n);
      consumers.set(i, list);
    }
  }

  // Walk the chain.
  let width: number | null = declaredWidth;
  let preA: Float64Array | null = null;
  let preB: Float64Array | null = null;
  const preOps: { op: string; c: Const }[] = [];
  const denses: Dense[] = [];
  const acts: Act[] = [];
  let pendingAct: Act | null = null;
  let state: 'pre' | 'dense' | 'act' | 'tempered' | 'end' = 'pre';
  let head: { kind: 'softmax' | 'sigmoid' } | null = null;
  let current = inputName;
  const visited = new Set<string>();

  const constOperand = (n: NodeMsg): { c: Const; constFirst: boolean } => {
    if (n.input.length !== 2) throw unsupported(n, `expected 2 inputs, got ${n.input.length}`);
    const [a, b] = n.input as [string, string];
    if (a === current && consts.has(b)) return { c: consts.get(b) as Const, constFirst: false };
    if (b === current && consts.has(a)) return { c: consts.get(a) as Const, constFirst: true };
    throw unsupported(n, 'only a constant second operand is supported (the graph must be a chain)');
  };
  const vectorOf = (n: NodeMsg, c: Const, len: number): Float64Array => {
    const count = c.data.length;
    if (count === 1) return new Float64Array(len).fill(c.data[0] as number);
    const lastDim = c.dims[c.dims.length - 1];
    if (count === len && lastDim === len) return c.data;
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `ONNX node ${n.name || n.opType}: constant of shape [${c.dims.join(', ')}] does not broadcast over ${len} features`,
    );
  };
  const finishAct = () => {
    if (pendingAct !== null) {
      acts.push(pendingAct);
      pendingAct = null;
    }
  };

  while (current !== outputName) {
    const next = consumers.get(current) ?? [];
    if (next.length !== 1) {
      throw invalid(
        next.length === 0
          ? `value "${current}" is not consumed on the way to output "${outputName}"`
          : `value "${current}" feeds ${next.length} nodes: only chain-shaped graphs can be imported`,
      );
    }
    const n = next[0] as NodeMsg;
    if (visited.has(n.name + n.output.join())) throw invalid('the graph has a cycle');
    visited.add(n.name + n.output.join());
    const op = n.opType;
    if (state === 'end') {
      // An L1 normalisation of probabilities that already sum to 1 changes nothing (converters add it).
      if (op === 'Normalizer' && n.domain === 'ai.onnx.ml' && stringAttr(n, 'norm') === 'L1') {
        current = n.output[0] as string;
        continue;
      }
      if (op === 'ZipMap') {
        throw unsupported(
          n,
          'a map output is not a tensor; import the probabilities output (convert with zipmap disabled)',
        );
      }
      throw unsupported(n, 'operators after the output head are not supported');
    }
    if (n.domain === 'ai.onnx.ml' && op !== 'Scaler' && op !== 'LinearClassifier') throw unsupported(n);
    let follow: string = n.output[0] as string;
    switch (op) {
      case 'Scaler': {
        // ai.onnx.ml Scaler: y = (x - offset) * scale (scikit-learn's StandardScaler as converted).
        if (state !== 'pre') throw unsupported(n, 'Scaler is only supported on the raw input');
        const offset = attr(n, 'offset')?.floats ?? [];
        const scale = attr(n, 'scale')?.floats ?? [];
        if (width === null) width = Math.max(offset.length, scale.length);
        const w = width;
        const vec = (v: number[], dflt: number) =>
          v.length === 0
            ? new Float64Array(w).fill(dflt)
            : vectorOf(n, { dims: [v.length], data: Float64Array.from(v) }, w);
        const o = vec(offset, 0);
        const sc = vec(scale, 1);
        preA ??= new Float64Array(w).fill(1);
        preB ??= new Float64Array(w);
        for (let j = 0; j < w; j++) {
          preA[j] = (preA[j] as number) * (sc[j] as number);
          preB[j] = ((preB[j] as number) - (o[j] as number)) * (sc[j] as number);
        }
        preOps.push({ op: 'Scaler', c: { dims: [w], data: sc } });
        break;
      }
      case 'LinearClassifier': {
        // ai.onnx.ml LinearClassifier (linear models converted from scikit-learn): scores Z = X Cᵀ + b,
        // then post_transform; outputs [labels, Z]. Bulwark follows Z.
        if (state !== 'pre')
          throw unsupported(n, 'LinearClassifier is only supported on the (scaled) raw input');
        const coef = attr(n, 'coefficients')?.floats ?? [];
        const icpt = attr(n, 'intercepts')?.floats ?? [];
        const post = stringAttr(n, 'post_transform') ?? 'NONE';
        const rowsC = icpt.length > 0 ? icpt.length : 1;
        if (coef.length === 0 || coef.length % rowsC !== 0)
          throw invalid(`LinearClassifier ${n.name}: ${coef.length} coefficients for ${rowsC} classes`);
        const F = coef.length / rowsC;
        if (width !== null && width !== F) {
          throw new BulwarkError(
            'ERR_SHAPE_MISMATCH',
            `LinearClassifier ${n.name || ''}: ${F} coefficients per class, the input has ${width} features`,
          );
        }
        const icptOf = (c: number) => (icpt[c] as number | undefined) ?? 0;
        const rowOf = (c: number) => coef.slice(c * F, (c + 1) * F);
        const negated =
          rowsC === 2 &&
          rowOf(0).every(
            (v, j) => Math.abs(v + (rowOf(1)[j] as number)) <= 1e-7 * Math.max(1, Math.abs(v)),
          ) &&
          Math.abs(icptOf(0) + icptOf(1)) <= 1e-7 * Math.max(1, Math.abs(icptOf(0)));
        let dense: Dense;
        if (post === 'SOFTMAX' && rowsC >= 2) {
          const w = new Float64Array(F * rowsC);
          for (let c = 0; c < rowsC; c++)
            for (let j = 0; j < F; j++) w[j * rowsC + c] = coef[c * F + j] as number;
          dense = {
            fanIn: F,
            fanOut: rowsC,
            w,
            b: Float64Array.from({ length: rowsC }, (_, c) => icptOf(c)),
          };
          head = { kind: 'softmax' };
        } else if (post === 'LOGISTIC' && (rowsC === 1 || negated)) {
          const c = rowsC === 1 ? 0 : 1;
          dense = { fanIn: F, fanOut: 1, w: Float64Array.from(rowOf(c)), b: Float64Array.of(icptOf(c)) };
          head = { kind: 'sigmoid' };
        } else {
          throw unsupported(
            n,
            `post_transform ${post} with ${rowsC} coefficient rows (supported: SOFTMAX over 2+ classes, LOGISTIC over one class or two opposite ones)`,
          );
        }
        denses.push(dense);
        width = dense.fanOut;
        state = 'end';
        follow = n.output[1] as string;
        if (follow === undefined || follow === '')
          throw invalid(`LinearClassifier ${n.name}: no scores output`);
        break;
      }
      case 'Identity':
        break;
      case 'Flatten': {
        const axis = intAttr(n, 'axis', 1);
        if (axis !== 1) throw unsupported(n, `axis ${axis} (only 1 keeps [batch, features])`);
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        if (state === 'dense') acts.push({ name: 'identity' });
        if (state === 'tempered' || state === 'act') finishAct();
        if (n.input[0] !== current) throw unsupported(n, 'the data must be the first input');
        const wName = n.input[1] as string;
        const wc = consts.get(wName);
        if (wc === undefined || wc.dims.length !== 2)
          throw unsupported(n, 'weights must be a constant 2-D tensor');
        let transB = 0;
        let alpha = 1;
        let beta = 1;
        if (op === 'Gemm') {
          if (intAttr(n, 'transA', 0) !== 0) throw unsupported(n, 'transA = 1');
          transB = intAttr(n, 'transB', 0);
          alpha = floatAttr(n, 'alpha', 1);
          beta = floatAttr(n, 'beta', 1);
        }
        const [d0, d1] = wc.dims as [number, number];
        const fanIn = transB ? d1 : d0;
        const fanOut = transB ? d0 : d1;
        if (width !== null && width !== fanIn) {
          throw new BulwarkError(
            'ERR_SHAPE_MISMATCH',
            `ONNX node ${n.name || op}: weights "${wName}" take ${fanIn} features, the layer before gives ${width}`,
          );
        }
        const w = new Float64Array(fanIn * fanOut);
        for (let i = 0; i < fanIn; i++)
          for (let j = 0; j < fanOut; j++)
            w[i * fanOut + j] = alpha * (wc.data[transB ? j * fanIn + i : i * fanOut + j] as number);
        const b = new Float64Array(fanOut);
        const cName = op === 'Gemm' ? n.input[2] : undefined;
        if (cName !== undefined && cName !== '') {
          const cc = consts.get(cName);
          if (cc === undefined) throw unsupported(n, 'bias must be a constant');
          const v = vectorOf(n, cc, fanOut);
          for (let j = 0; j < fanOut; j++) b[j] = beta * (v[j] as number);
        }
        denses.push({ fanIn, fanOut, w, b });
        width = fanOut;
        state = 'dense';
        break;
      }
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div': {
        const { c, constFirst } = constOperand(n);
        if (constFirst && (op === 'Sub' || op === 'Div'))
          throw unsupported(n, 'constant as the first operand');
        if (state === 'pre') {
          if (width === null) {
            if (c.data.length === 1)
              throw invalid('the input width is unknown (declare it in the input shape)');
            width = c.data.length;
          }
          const v = vectorOf(n, c, width);
          preA ??= new Float64Array(width).fill(1);
          preB ??= new Float64Array(width);
          for (let j = 0; j < width; j++) {
            const cj = v[j] as number;
            if ((op === 'Div' && cj === 0) || !Number.isFinite(cj))
              throw invalid(`node ${n.name || op}: constant ${cj} cannot be used`);
            if (op === 'Add') preB[j] = (preB[j] as number) + cj;
            else if (op === 'Sub') preB[j] = (preB[j] as number) - cj;
            else {
              const f = op === 'Mul' ? cj : 1 / cj;
              preA[j] = (preA[j] as number) * f;
              preB[j] = (preB[j] as number) * f;
            }
          }
          preOps.push({ op, c: { dims: c.dims, data: v } });
        } else if (state === 'dense') {
          const d = denses[denses.length - 1] as Dense;
          const v = vectorOf(n, c, d.fanOut);
          for (let j = 0; j < d.fanOut; j++) {
            const cj = v[j] as number;
            if (op === 'Add') d.b[j] = (d.b[j] as number) + cj;
            else if (op === 'Sub') d.b[j] = (d.b[j] as number) - cj;
            else {
              if (op === 'Div' && cj === 0) throw invalid(`node ${n.name || op}: division by 0`);
              const f = op === 'Mul' ? cj : 1 / cj;
              d.b[j] = (d.b[j] as number) * f;
              for (let i = 0; i < d.fanIn; i++) d.w[i * d.fanOut + j] = (d.w[i * d.fanOut + j] as number) * f;
            }
          }
        } else if (state === 'act' && pendingAct?.name === 'sigmoid' && op === 'Mul' && c.data.length === 1) {
          pendingAct = {
            name: 'tempered-sigmoid',
            tempered: { scale: c.data[0] as number, inverseTemperature: 1, offset: 0 },
          };
          state = 'tempered';
        } else if (
          state === 'tempered' &&
          (op === 'Sub' || op === 'Add') &&
          c.data.length === 1 &&
          pendingAct?.tempered
        ) {
          const o = (c.data[0] as number) * (op === 'Sub' ? 1 : -1);
          const t = (pendingAct as Act).tempered as TemperedSigmoid;
          pendingAct = { name: 'tempered-sigmoid', tempered: { ...t, offset: t.offset + o } };
        } else {
          throw unsupported(
            n,
            'an element-wise constant after an activation is only supported as the tempered sigmoid s * Sigmoid(x) - o',
          );
        }
        break;
      }
      case 'Relu':
      case 'Tanh':
      case 'Sigmoid': {
        if (state !== 'dense')
          throw unsupported(n, 'an activation must follow a dense layer (Gemm or MatMul)');
        pendingAct = { name: op === 'Relu' ? 'relu' : op === 'Tanh' ? 'tanh' : 'sigmoid' };
        state = 'act';
        break;
      }
      case 'Softmax': {
        if (state !== 'dense') throw unsupported(n, 'Softmax must follow the last dense layer');
        const axis = intAttr(n, 'axis', opset >= 13 ? -1 : 1);
        if (axis !== 1 && axis !== -1) throw unsupported(n, `axis ${axis} (only the class axis, 1 or -1)`);
        head = { kind: 'softmax' };
        state = 'end';
        break;
      }
      default:
        throw unsupported(n);
    }
    current = follow;
  }

  if (denses.length === 0) throw invalid('the graph has no dense layer (Gemm or MatMul)');
  // A trailing activation: Sigmoid on one output is the binary head; others are not heads.
  if (state === 'act' || state === 'tempered') {
    const a = pendingAct as Act | null;
    const last = denses[denses.length - 1] as Dense;
    if (state === 'act' && a?.name === 'sigmoid' && last.fanOut === 1) {
      head = { kind: 'sigmoid' };
      pendingAct = null;
    } else {
      throw new BulwarkError(
        'ERR_ONNX_UNSUPPORTED_OP',
        `the output is an activation (${a?.name}) of ${last.fanOut} values: only Softmax, or Sigmoid on one value, can end the graph`,
        { details: { operator: a?.name ?? '' } },
      );
    }
  }
  const hiddenActs = acts;
  const first = hiddenActs[0];
  for (const a of hiddenActs) {
    if (a.name !== first?.name || JSON.stringify(a.tempered) !== JSON.stringify(first?.tempered)) {
      throw new BulwarkError(
        'ERR_ONNX_UNSUPPORTED_OP',
        `hidden layers use different activations (${hiddenActs.map((x) => x.name).join(', ')}); Bulwark networks use one`,
        { details: { operator: a.name } },
      );
    }
  }
  const last = denses[denses.length - 1] as Dense;
  const outKind: 'probabilities' | 'logits' = head === null ? 'logits' : 'probabilities';
  const headKind: Head = last.fanOut === 1 ? 'sigmoid' : 'softmax';
  if (head?.kind === 'softmax' && last.fanOut === 1) throw invalid('Softmax over a single output');
  const classes = last.fanOut === 1 ? 2 : last.fanOut;
  const d0 = denses[0] as Dense;

  let preprocessing: Preprocessing | null = null;
  if (preA !== null && preB !== null) {
    const ops = preOps.map((p) => p.op).join(',');
    if (ops === 'Sub,Div') {
      preprocessing = {
        kind: 'sub-div',
        sub: Float32Array.from((preOps[0] as { c: Const }).c.data),
        div: Float32Array.from((preOps[1] as { c: Const }).c.data),
      };
    } else if (ops === 'Mul,Add') {
      preprocessing = {
        kind: 'mul-add',
        mul: Float32Array.from((preOps[0] as { c: Const }).c.data),
        add: Float32Array.from((preOps[1] as { c: Const }).c.data),
      };
    } else preprocessing = { kind: 'mul-add', mul: Float32Array.from(preA), add: Float32Array.from(preB) };
  }

  const net = new Network({
    inputs: d0.fanIn,
    hidden: denses.slice(0, -1).map((d) => d.fanOut),
    activation: first?.name ?? 'relu',
    tempered: first?.tempered,
    classes,
    head: headKind,
    init: 'zeros',
    preprocessing,
  });
  denses.forEach((d, l) => {
    net.weights(l).set(d.w);
    net.bias(l).set(d.b);
  });
  // A NaN or infinite weight makes every output NaN: argmax then answers class 0 for every row and no
  // gradient moves, so `bulwark evaluate` reported such a model as accurate AND fully robust.
  for (let l = 0; l < denses.length; l++) {
    for (const [what, a] of [
      ['weights', net.weights(l)],
      ['bias', net.bias(l)],
    ] as const) {
      const i = a.findIndex((v) => !Number.isFinite(v));
      if (i >= 0) throw invalid(`dense layer ${l + 1} ${what}: value ${i} is ${a[i]} (not a finite number)`);
    }
  }
  if (preprocessing !== null) {
    const vals = Object.values(preprocessing).filter((v): v is Float32Array => v instanceof Float32Array);
    if (vals.some((a) => a.some((v) => !Number.isFinite(v))))
      throw invalid('the input preprocessing has a value that is not a finite number');
  }
  return {
    network: net,
    outputKind: outKind,
    inputName,
    outputName,
    producer: `${model.producerName} ${model.producerVersion}`.trim(),
    opset,
    metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value])),
  };
}
