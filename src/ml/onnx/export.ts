/**
 * Exports a {@link Network} with its input preprocessing as a standard ONNX model (opset 17, IR 8),
 * using only Sub/Div or Mul/Add (preprocessing), Gemm (dense layers), Relu/Tanh/Sigmoid (+ Mul/Sub for
 * the tempered sigmoid) and Softmax, so any ONNX runtime serves it.
 *
 * Graph interface: input `input` float32 [batch, inputs]; outputs `probabilities` float32
 * [batch, classes] and `logits` float32 [batch, classes]. A sigmoid (binary) head is exported as a
 * two-column Gemm whose first column is identically 0, followed by Softmax: softmax([0, z]) =
 * [1 - sigmoid(z), sigmoid(z)], the same probabilities with only standard operators.
 */
import { BulwarkError } from '../../core/index.js';
import type { Network } from '../network.js';
import { AttrType, DataType, encodeModel } from './proto.js';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const INPUT_NAME = 'input';
export const PROBABILITIES_NAME = 'probabilities';
export const LOGITS_NAME = 'logits';

export interface OnnxExportOptions {
  /** Written as the model's producer_version (default: unset). */
  producerVersion?: string;
  /** Extra metadata_props entries. */
  metadata?: Readonly<Record<string, string>>;
  /** Graph name (default `bulwark`). */
  graphName?: string;
}

interface Built {
  nodes: object[];
  initializers: object[];
}

function floatTensor(name: string, dims: number[], data: ArrayLike<number>): object {
  const f = Float32Array.from(data);
  return {
    name,
    dims,
    dataType: DataType.FLOAT,
    rawData: Buffer.from(f.buffer, f.byteOffset, f.byteLength),
  };
}

function valueInfo(name: string, width: number): object {
  return {
    name,
    type: {
      tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: width }] } },
    },
  };
}

/** Serialises `net` as ONNX ModelProto bytes. */
export function toOnnx(net: Network, options: OnnxExportOptions = {}): Uint8Array {
  // Never write a model that computes NaN (fromOnnx refuses to read one back).
  const bad = net.params.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new BulwarkError(
      'ERR_TRAINING_DIVERGED',
      `the network's parameter ${bad} is ${net.params[bad]}: a model with non-finite weights is not written`,
    );
  const b: Built = { nodes: [], initializers: [] };
  let counter = 0;
  const node = (opType: string, inputs: string[], attrs: object[] = []): string => {
    const out = `${opType.toLowerCase()}_${counter++}`;
    b.nodes.push({ opType, input: inputs, output: [out], name: out, attribute: attrs });
    return out;
  };
  const constant = (name: string, dims: number[], data: ArrayLike<number>): string => {
    b.initializers.push(floatTensor(name, dims, data));
    return name;
  };

  let x = INPUT_NAME;
  const p = net.preprocessing;
  if (p !== null) {
    if (p.kind === 'sub-div') {
      x = node('Sub', [x, constant('prep_sub', [net.inputs], p.sub)]);
      x = node('Div', [x, constant('prep_div', [net.inputs], p.div)]);
    } else {
      x = node('Mul', [x, constant('prep_mul', [net.inputs], p.mul)]);
      x = node('Add', [x, constant('prep_add', [net.inputs], p.add)]);
    }
  }
  const L = net.layerCount;
  for (let l = 0; l < L; l++) {
    const fanIn = net.sizes[l] as number;
    const fanOut = net.sizes[l + 1] as number;
    let w: Float32Array = net.weights(l);
    let bias: Float32Array = net.bias(l);
    let width = fanOut;
    if (l === L - 1 && net.head === 'sigmoid') {
      // [0 | w] and [0 | b]: logits [0, z]
      const w2 = new Float32Array(fanIn * 2);
      for (let i = 0; i < fanIn; i++) w2[2 * i + 1] = w[i] as number;
      w = w2;
      bias = Float32Array.from([0, bias[0] as number]);
      width = 2;
    }
    const gemmOut = node('Gemm', [x, constant(`W${l}`, [fanIn, width], w), constant(`b${l}`, [width], bias)]);
    x = gemmOut;
    if (l + 1 < L) {
      switch (net.activation) {
        case 'relu':
          x = node('Relu', [x]);
          break;
        case 'tanh':
          x = node('Tanh', [x]);
          break;
        case 'sigmoid':
          x = node('Sigmoid', [x]);
          break;
        case 'tempered-sigmoid': {
          const t = net.tempered;
          if (l === 0) {
            constant('tempered_T', [], [t.inverseTemperature]);
            constant('tempered_s', [], [t.scale]);
            constant('tempered_o', [], [t.offset]);
          }
          x = node('Mul', [x, 'tempered_T']);
          x = node('Sigmoid', [x]);
          x = node('Mul', [x, 'tempered_s']);
          x = node('Sub', [x, 'tempered_o']);
          break;
        }
        case 'identity':
          break;
      }
    }
  }
  // Name the final values as the graph outputs.
  const last = b.nodes[b.nodes.length - 1] as { output: string[] };
  last.output = [LOGITS_NAME];
  b.nodes.push({
    opType: 'Softmax',
    input: [LOGITS_NAME],
    output: [PROBABILITIES_NAME],
    name: 'softmax_out',
    attribute: [{ name: 'axis', type: AttrType.INT, i: 1 }],
  });

  const metadata = {
    'bulwark.classes': String(net.classes),
    'bulwark.head': net.head,
    'bulwark.hidden': net.hidden.join(','),
    'bulwark.activation': net.activation,
    ...options.metadata,
  };
  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'bulwark',
    producerVersion: options.producerVersion ?? '',
    graph: {
      name: options.graphName ?? 'bulwark',
      node: b.nodes,
      initializer: b.initializers,
      input: [valueInfo(INPUT_NAME, net.inputs)],
      output: [valueInfo(PROBABILITIES_NAME, net.classes), valueInfo(LOGITS_NAME, net.classes)],
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
}
