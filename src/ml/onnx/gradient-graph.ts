/**
 * An ONNX graph that computes, for a ReLU {@link Network} with a softmax head, the cross-entropy loss
 * gradient with respect to the raw inputs and one projected L-inf PGD step (Madry et al., ICLR 2018),
 * with the network's parameters fed as graph INPUTS rather than initializers: one session serves every
 * weight update of a training run, and ONNX Runtime's MLAS kernels (AVX2/AVX-512 FMA) do the two large
 * products per step (forward x·W and backward dH·Wᵀ) instead of the 128-bit WebAssembly SIMD GEMM.
 *
 * Graph interface (n = batch, d = inputs, k = classes):
 * - inputs `x` [n, d], `onehot` [n, k] (one-hot true labels), `lower`/`upper` [n, d] (the feasible box:
 *   the eps-ball around the clean input intersected with the valid range), `step` [d] (step size in
 *   input units per feature), and `W{l}` [sizes[l], sizes[l+1]], `b{l}` [sizes[l+1]] for every layer;
 * - outputs `logits` [n, k]; `gradient` [n, d], row i = d CE(f(x_i), y_i) / d x_i (not averaged);
 *   `next` [n, d] = min(max(x + step * sign(gradient), lower), upper).
 *
 * Backpropagation by hand with standard operators: d CE / d z = softmax(z) - onehot, through a dense
 * layer dH = dZ · Wᵀ (Gemm transB), through ReLU dA = dH * [a > 0] (the same derivative as
 * ../activations.ts), through the preprocessing x' = (x - sub) / div (or x * mul + add) by the
 * constant factor 1 / div (or mul).
 */
import { BulwarkError } from '../../core/index.js';
import type { Network } from '../network.js';
import { ONNX_IR_VERSION, ONNX_OPSET } from './export.js';
import { AttrType, DataType, encodeModel } from './proto.js';

/** Why `net` cannot use the gradient graph, or null when it can. */
export function gradientGraphUnsupported(net: Network): string | null {
  if (net.head !== 'softmax') return `head ${net.head} (only softmax)`;
  if (net.layerCount > 1 && net.activation !== 'relu') return `activation ${net.activation} (only relu)`;
  return null;
}

function dims(name: string, ...shape: (number | string)[]): object {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: shape.map((s) => (typeof s === 'number' ? { dimValue: s } : { dimParam: s })) },
      },
    },
  };
}

interface Builder {
  nodes: object[];
  initializers: object[];
  node: (opType: string, inputs: string[], attrs?: object[], out?: string) => string;
  constant: (name: string, shape: number[], data: ArrayLike<number>) => string;
}

function builder(): Builder {
  const nodes: object[] = [];
  const initializers: object[] = [];
  let counter = 0;
  return {
    nodes,
    initializers,
    node(opType, inputs, attrs = [], out) {
      const o = out ?? `${opType.toLowerCase()}_${counter++}`;
      nodes.push({ opType, input: inputs, output: [o], name: o, attribute: attrs });
      return o;
    },
    constant(name, shape, data) {
      const f = Float32Array.from(data);
      initializers.push({
        name,
        dims: shape,
        dataType: DataType.FLOAT,
        rawData: Buffer.from(f.buffer, f.byteOffset, f.byteLength),
      });
      return name;
    },
  };
}

const int = (name: string, i: number) => ({ name, type: AttrType.INT, i });

/**
 * The forward pass into `logits`, returning each layer's input activation (`acts[l]`, the preprocessed
 * input for l = 0), each hidden layer's pre-activation (for the ReLU mask) and the factor d x' / d x of
 * the preprocessing (null without one).
 */
function forward(b: Builder, net: Network): { acts: string[]; pre: string[]; inScale: string | null } {
  const d = net.inputs;
  let h = 'x';
  let inScale: string | null = null;
  const p = net.preprocessing;
  if (p !== null) {
    if (p.kind === 'sub-div') {
      h = b.node('Div', [
        b.node('Sub', [h, b.constant('prep_sub', [d], p.sub)]),
        b.constant('prep_div', [d], p.div),
      ]);
      inScale = b.constant(
        'prep_dscale',
        [d],
        Float32Array.from(p.div, (v) => 1 / v),
      );
    } else {
      h = b.node('Add', [
        b.node('Mul', [h, b.constant('prep_mul', [d], p.mul)]),
        b.constant('prep_add', [d], p.add),
      ]);
      inScale = 'prep_mul';
    }
  }
  const acts: string[] = [];
  const pre: string[] = [];
  const L = net.layerCount;
  for (let l = 0; l < L; l++) {
    acts.push(h);
    const a = b.node('Gemm', [h, `W${l}`, `b${l}`], [], l === L - 1 ? 'logits' : undefined);
    pre.push(a);
    h = l === L - 1 ? a : b.node('Relu', [a]);
  }
  return { acts, pre, inScale };
}

/** d / d (pre-activation of layer l - 1) from d / d (output of layer l): dZ · Wᵀ, masked by ReLU'. */
function backLayer(b: Builder, g: string, l: number, pre: string[]): string {
  const dh = b.node('Gemm', [g, `W${l}`], [int('transB', 1)]);
  return l > 0 ? b.node('Where', [b.node('Greater', [pre[l - 1] as string, 'zero']), dh, 'zero']) : dh;
}

function checked(net: Network): void {
  const why = gradientGraphUnsupported(net);
  if (why !== null) throw new BulwarkError('ERR_MODEL_CAPABILITY', `no ONNX gradient graph for ${why}`);
}

function paramInputs(net: Network): object[] {
  const out: object[] = [];
  for (let l = 0; l < net.layerCount; l++) {
    out.push(dims(`W${l}`, net.sizes[l] as number, net.sizes[l + 1] as number));
    out.push(dims(`b${l}`, net.sizes[l + 1] as number));
  }
  return out;
}

function model(b: Builder, name: string, inputs: object[], outputs: object[]): Uint8Array {
  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'bulwark',
    graph: { name, node: b.nodes, initializer: b.initializers, input: inputs, output: outputs },
  });
}

/** The PGD-step / input-gradient graph of `net`'s architecture (its parameters are inputs). */
export function inputGradientGraph(net: Network): Uint8Array {
  checked(net);
  const d = net.inputs;
  const k = net.outputs;
  const b = builder();
  const { pre, inScale } = forward(b, net);
  b.constant('zero', [], [0]);
  // d CE / d z = softmax(z) - onehot, then through every layer to the input.
  let g = b.node('Sub', [b.node('Softmax', ['logits'], [int('axis', 1)]), 'onehot']);
  for (let l = net.layerCount - 1; l >= 0; l--) g = backLayer(b, g, l, pre);
  if (inScale !== null) g = b.node('Mul', [g, inScale]);
  b.node('Identity', [g], [], 'gradient');
  const moved = b.node('Add', ['x', b.node('Mul', [b.node('Sign', ['gradient']), 'step'])]);
  b.node('Min', [b.node('Max', [moved, 'lower']), 'upper'], [], 'next');
  const inputs = [dims('x', 'n', d), dims('onehot', 'n', k), dims('lower', 'n', d), dims('upper', 'n', d)];
  inputs.push(dims('step', d), ...paramInputs(net));
  return model(b, 'bulwark-input-gradient', inputs, [
    dims('logits', 'n', k),
    dims('gradient', 'n', d),
    dims('next', 'n', d),
  ]);
}

/**
 * The training-step graph: inputs `x` [n, d], `onehot` [n, k], `weight` [n, 1] (each row's loss
 * weight, the sample weight / n for a mean) and the parameters; outputs `loss` (sum of weight x CE),
 * `logits` [n, k] and `gradient` [P], its gradient with respect to the parameters in the Network's layout (W0, b0, W1, ...):
 * dW_l = a_lᵀ · delta_l, db_l = column sums of delta_l.
 */
export function trainingGradientGraph(net: Network): Uint8Array {
  checked(net);
  const d = net.inputs;
  const k = net.outputs;
  const b = builder();
  const { acts, pre } = forward(b, net);
  b.constant('zero', [], [0]);
  b.initializers.push({ name: 'axis1', dims: [1], dataType: DataType.INT64, int64Data: [1] });
  b.initializers.push({ name: 'axis0', dims: [1], dataType: DataType.INT64, int64Data: [0] });
  b.initializers.push({ name: 'flat', dims: [1], dataType: DataType.INT64, int64Data: [-1] });
  // CE_i = logsumexp(z_i) - z_i[y_i]; loss = sum_i weight_i CE_i.
  const lse = b.node('ReduceLogSumExp', ['logits'], [{ name: 'axes', type: AttrType.INTS, ints: [1] }]);
  const picked = b.node('ReduceSum', [b.node('Mul', ['logits', 'onehot']), 'axis1']);
  const weighted = b.node('Mul', [b.node('Sub', [lse, picked]), 'weight']);
  b.node('ReduceSum', [weighted, 'axis0'], [int('keepdims', 0)], 'loss');
  let delta = b.node('Mul', [
    b.node('Sub', [b.node('Softmax', ['logits'], [int('axis', 1)]), 'onehot']),
    'weight',
  ]);
  const parts: string[] = [];
  for (let l = net.layerCount - 1; l >= 0; l--) {
    const dW = b.node('Gemm', [acts[l] as string, delta], [int('transA', 1)]);
    const db = b.node('ReduceSum', [delta, 'axis0'], [int('keepdims', 0)]);
    parts.unshift(b.node('Reshape', [dW, 'flat']), db);
    if (l > 0) delta = backLayer(b, delta, l, pre);
  }
  b.node('Concat', parts, [int('axis', 0)], 'gradient');
  const inputs = [dims('x', 'n', d), dims('onehot', 'n', k), dims('weight', 'n', 1), ...paramInputs(net)];
  return model(b, 'bulwark-training-gradient', inputs, [
    dims('loss', 1),
    dims('gradient', net.params.length),
    dims('logits', 'n', k),
  ]);
}
