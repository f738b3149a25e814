/**
 * Operators the graph memory bound (src/model/onnx-memory.ts) accepts for what common exporters write
 * (PyTorch and TensorFlow exports of small networks, skl2onnx): each model below is built with the
 * repo's protobuf encoder and really run by ONNX Runtime at a few batch sizes, and the bound at that
 * batch must hold every tensor the run returns. Each family also has a hostile variant, still refused.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { AttrType, DataType, encodeModel } from '../../src/ml/onnx/proto.js';
import { OnnxRuntimeModel, ort } from '../../src/ml/onnx/runtime.js';
import { ONNX_BOUNDED_OPS, onnxMemoryBound } from '../../src/model/index.js';
import {
  attrFloats as aFloats,
  attrInt as aInt,
  attrInts as aInts,
  attrString as aStr,
  floats,
  ints,
} from './onnx-build.js';

const INT64 = DataType.INT64;
const FLOAT = DataType.FLOAT;
const STRING = 8;
const opened: OnnxRuntimeModel[] = [];
after(async () => {
  for (const m of opened) await m.close();
});

const tensorVi = (name: string, elemType: number = FLOAT) => ({ name, type: { tensorType: { elemType } } });
const inputVi = (name: string, width: number) => ({
  name,
  type: {
    tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } },
  },
});
const seq = (n: number, scale = 0.1) => Array.from({ length: n }, (_, i) => Math.sin(i + 1) * scale);

/** A model of input x [N, width] computing `outputs` with `nodes`. */
function model(o: {
  nodes: object[];
  outputs: (string | { name: string; type?: number })[];
  initializer?: object[];
  width?: number;
  opset?: number;
  ml?: number;
}): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: o.opset ?? 17 },
      ...(o.ml !== undefined ? [{ domain: 'ai.onnx.ml', version: o.ml }] : []),
    ],
    graph: {
      name: 'g',
      node: o.nodes,
      initializer: o.initializer ?? [],
      input: [inputVi('x', o.width ?? 4)],
      output: o.outputs.map((x) =>
        typeof x === 'string'
          ? tensorVi(x)
          : x.type === undefined
            ? { name: x.name }
            : tensorVi(x.name, x.type),
      ),
    },
  });
}

const BYTES: Record<string, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  bool: 1,
  uint8: 1,
  int8: 1,
};

/**
 * Opens `bytes` in ONNX Runtime at batches of 1, 3 and 8 rows: the bound at maxBatch 8 must hold the
 * bytes of every output (all of the graph's outputs: each node under test is one), strings at 32 bytes
 * plus their length as the bound counts them. Returns the bound.
 */
async function runsWithinBound(what: string, bytes: Uint8Array, width = 4): Promise<number> {
  const bound = onnxMemoryBound(bytes, what, { maxBatch: 8 }).bytes;
  // Bulwark opens it (the same bound, at the default batch).
  opened.push(await OnnxRuntimeModel.create(bytes, { memory: { maxBatch: 8 } }));
  const o = await ort();
  const session = await o.InferenceSession.create(bytes, { logSeverityLevel: 4 });
  try {
    for (const rows of [1, 3, 8]) {
      const x = new o.Tensor('float32', Float32Array.from(seq(rows * width, 1)), [rows, width]);
      const out = await session.run({ [session.inputNames[0] as string]: x });
      let total = 0;
      for (const name of session.outputNames) {
        const t = out[name] as { type: string; data: ArrayLike<unknown>; size: number };
        const each =
          t.type === 'string'
            ? Math.max(0, ...Array.from(t.data as string[], (s) => 32 + Buffer.byteLength(s)))
            : (BYTES[t.type] ?? 16);
        total += t.size * each;
      }
      assert.ok(total > 0, `${what}: no output at ${rows} rows`);
      assert.ok(total <= bound, `${what}: ${rows} rows returned ${total} bytes, above the bound ${bound}`);
    }
  } finally {
    await session.release();
  }
  return bound;
}

/** A refusal of `bytes` (ERR_MODEL_UNSAFE) at a node of operator `op`, for `reason`. */
function refused(what: string, bytes: Uint8Array, op: string, reason: 'limit' | 'unbounded'): void {
  assert.throws(
    () => onnxMemoryBound(bytes, what),
    (e: unknown) => {
      assert.ok(isBulwarkError(e, 'ERR_MODEL_UNSAFE'), `${what}: ${String(e)}`);
      assert.equal(e.details['op'], op, `${what}: ${e.message}`);
      assert.equal(e.details['reason'], reason, `${what}: ${e.message}`);
      return true;
    },
    what,
  );
}

/** x [N, 4] cast to int64, its largest value as a 1-D shape: a size only the run knows. */
const valueShape = [
  { opType: 'Cast', input: ['x'], output: ['xi'], name: 'cast', attribute: [aInt('to', INT64)] },
  { opType: 'ReduceMax', input: ['xi'], output: ['m'], name: 'max', attribute: [aInt('keepdims', 1)] },
  { opType: 'Reshape', input: ['m', 'flat'], output: ['m1'], name: 'reshape_m' },
];

/** {@link valueShape} with the constant `rest` after it, as `output`: a shape or repeats only the run knows. */
const valueShapeConcat = (rest: string, output: string) => [
  ...valueShape,
  { opType: 'Concat', input: ['m1', rest], output: [output], name: output, attribute: [aInt('axis', 0)] },
];

describe('operators of PyTorch and TensorFlow exports of small networks', () => {
  it('the list names them', () => {
    for (const op of [
      'Einsum',
      'LSTM',
      'GRU',
      'RNN',
      'GroupNormalization',
      'LayerNormalization',
      'BatchNormalization',
      'Dropout',
      'Softmax',
      'LogSoftmax',
      'Gemm',
      'MatMul',
      'Conv',
      'ConvTranspose',
      'MaxPool',
      'AveragePool',
      'GlobalAveragePool',
      'Flatten',
      'Transpose',
      'Erf',
      'Gelu',
      'Where',
      'Clip',
      'Pow',
      'Sqrt',
    ])
      assert.ok(ONNX_BOUNDED_OPS[''].includes(op), op);
    for (const op of [
      'LinearClassifier',
      'LinearRegressor',
      'SVMClassifier',
      'SVMRegressor',
      'Scaler',
      'Normalizer',
      'Imputer',
      'OneHotEncoder',
      'LabelEncoder',
      'ArrayFeatureExtractor',
      'Binarizer',
      'FeatureVectorizer',
      'TreeEnsembleRegressor',
      'TreeEnsembleClassifier',
      'TreeEnsemble',
      'ZipMap',
      'CategoryMapper',
    ])
      assert.ok(ONNX_BOUNDED_OPS['ai.onnx.ml'].includes(op), op);
    for (const op of ['CastMap', 'DictVectorizer'])
      assert.ok(!ONNX_BOUNDED_OPS['ai.onnx.ml'].includes(op), op);
  });

  it('Einsum: output dims from the equation (explicit, implicit, ellipsis), ONNX Runtime keeps within the bound', async () => {
    const m = model({
      nodes: [
        {
          opType: 'Einsum',
          input: ['x', 'w'],
          output: ['mm'],
          name: 'mm',
          attribute: [aStr('equation', 'ij,jk->ik')],
        },
        {
          opType: 'Einsum',
          input: ['x', 'x'],
          output: ['outer'],
          name: 'outer',
          attribute: [aStr('equation', 'bi,bj->bij')],
        },
        {
          opType: 'Einsum',
          input: ['x', 'w'],
          output: ['implicit'],
          name: 'implicit',
          attribute: [aStr('equation', 'ij,jk')],
        },
        {
          opType: 'Einsum',
          input: ['x', 'w'],
          output: ['ell'],
          name: 'ell',
          attribute: [aStr('equation', '...i,ik->...k')],
        },
        {
          opType: 'Einsum',
          input: ['x'],
          output: ['tr'],
          name: 'transpose',
          attribute: [aStr('equation', 'ij->ji')],
        },
        {
          opType: 'Einsum',
          input: ['x', 'w', 'v'],
          output: ['chain'],
          name: 'chain',
          attribute: [aStr('equation', 'ij,jk,kl->il')],
        },
      ],
      outputs: ['mm', 'outer', 'implicit', 'ell', 'tr', 'chain'],
      initializer: [floats('w', seq(12), [4, 3]), floats('v', seq(6), [3, 2])],
      opset: 12,
    });
    const bound = await runsWithinBound('einsum', m);
    // The outer product is the largest: [8, 4, 4] floats at 8 rows; the bound stays near the outputs.
    assert.ok(bound < 8 * 1024, String(bound));
  });

  it('Einsum: an output letter in no input, or a term that does not match its input, is refused', () => {
    for (const equation of ['ij->ik', 'ijk->ij']) {
      const m = model({
        nodes: [
          {
            opType: 'Einsum',
            input: ['x'],
            output: ['y'],
            name: 'e',
            attribute: [aStr('equation', equation)],
          },
        ],
        outputs: ['y'],
        opset: 12,
      });
      refused(equation, m, 'Einsum', 'unbounded');
    }
  });

  it('Einsum hostile: an outer product of the input reshaped to a size only the run knows asks for x^3', () => {
    // Reshape(x, [max(x)]): the dims are not known, but an Einsum's output is at most the product of its
    // inputs' elements, here (4,096 x 4)^3 floats: refused by the limit, at the Einsum.
    const m = model({
      nodes: [
        ...valueShape,
        { opType: 'Reshape', input: ['x', 'm1'], output: ['r'], name: 'reshape' },
        {
          opType: 'Einsum',
          input: ['r', 'r', 'r'],
          output: ['y'],
          name: 'cube',
          attribute: [aStr('equation', 'i,j,k->ijk')],
        },
      ],
      outputs: ['y'],
      initializer: [ints('flat', [-1])],
      opset: 12,
    });
    assert.ok(m.length < 600, String(m.length));
    refused('einsum cube', m, 'Einsum', 'limit');
  });

  /** x [N, 4] as a sequence of 2 steps of 2 features, [2, N, 2] (layout 0), into `op`. */
  function recurrent(op: 'LSTM' | 'GRU' | 'RNN', direction: string, hidden: number, hiddenAttr = hidden) {
    const gates = op === 'LSTM' ? 4 : op === 'GRU' ? 3 : 1;
    const dirs = direction === 'bidirectional' ? 2 : 1;
    const outs = op === 'LSTM' ? ['y', 'y_h', 'y_c'] : ['y', 'y_h'];
    return model({
      nodes: [
        { opType: 'Reshape', input: ['x', 'shape'], output: ['x3'], name: 'reshape' },
        {
          opType: 'Transpose',
          input: ['x3'],
          output: ['xt'],
          name: 'transpose',
          attribute: [aInts('perm', [1, 0, 2])],
        },
        {
          opType: op,
          input: ['xt', 'W', 'R', 'B'],
          output: outs,
          name: op.toLowerCase(),
          attribute: [aInt('hidden_size', hiddenAttr), aStr('direction', direction)],
        },
      ],
      outputs: outs,
      initializer: [
        ints('shape', [-1, 2, 2]),
        floats('W', seq(dirs * gates * hidden * 2), [dirs, gates * hidden, 2]),
        floats('R', seq(dirs * gates * hidden * hidden), [dirs, gates * hidden, hidden]),
        floats('B', seq(dirs * 2 * gates * hidden), [dirs, 2 * gates * hidden]),
      ],
      opset: 14,
    });
  }

  it('LSTM, GRU, RNN: Y [seq, directions, batch, hidden], Y_h (and Y_c) [directions, batch, hidden], ONNX Runtime keeps within the bound', async () => {
    for (const op of ['LSTM', 'GRU', 'RNN'] as const)
      for (const direction of ['forward', 'reverse', 'bidirectional']) {
        const bound = await runsWithinBound(`${op} ${direction}`, recurrent(op, direction, 3));
        assert.ok(bound < 16 * 1024, `${op} ${direction}: ${bound}`);
      }
  });

  it('LSTM layout 1 (batch first) is bounded from its own dims', () => {
    const m = model({
      nodes: [
        { opType: 'Reshape', input: ['x', 'shape'], output: ['x3'], name: 'reshape' },
        {
          opType: 'LSTM',
          input: ['x3', 'W', 'R'],
          output: ['y', 'y_h'],
          name: 'lstm',
          attribute: [aInt('hidden_size', 5), aInt('layout', 1)],
        },
      ],
      outputs: ['y', 'y_h'],
      initializer: [
        ints('shape', [-1, 2, 2]),
        floats('W', seq(40), [1, 20, 2]),
        floats('R', seq(100), [1, 20, 5]),
      ],
      opset: 14,
    });
    const at1 = onnxMemoryBound(m, 'm', { maxBatch: 1 }).bytes;
    const at2 = onnxMemoryBound(m, 'm', { maxBatch: 2 }).bytes;
    // Y [batch, 2, 1, 5] floats and more per row: the bound grows with the batch.
    assert.ok(at2 > at1 && at1 >= (2 * 5 + 5) * 4, `${at1} ${at2}`);
  });

  it('recurrent hostile: a hidden_size larger than W says, or a sequence tiled by a value, is refused', () => {
    // hidden_size 2^28 with a W of 4 rows: ONNX Runtime would refuse the mismatch, but the bound takes
    // the larger and does not rely on that; Y alone is 2 x 4,096 x 2^28 floats.
    const big = recurrent('LSTM', 'forward', 1, 2 ** 28);
    assert.ok(big.length < 600, String(big.length));
    refused('lstm hidden_size', big, 'LSTM', 'limit');
    const tiled = model({
      nodes: [
        ...valueShapeConcat('ones', 'reps'),
        { opType: 'Reshape', input: ['x', 'shape'], output: ['x3'], name: 'reshape' },
        { opType: 'Tile', input: ['x3', 'reps'], output: ['xt'], name: 'tile' },
        {
          opType: 'GRU',
          input: ['xt', 'W', 'R'],
          output: ['y'],
          name: 'gru',
          attribute: [aInt('hidden_size', 1)],
        },
      ],
      outputs: ['y'],
      initializer: [
        ints('flat', [-1]),
        ints('ones', [1, 1]),
        ints('shape', [2, -1, 2]),
        floats('W', seq(6), [1, 3, 2]),
        floats('R', seq(3), [1, 3, 1]),
      ],
      opset: 14,
    });
    refused('gru tiled', tiled, 'Tile', 'unbounded');
  });

  it('GroupNormalization keeps its input shape; Expand by a value before it is refused', async () => {
    const m = model({
      nodes: [
        { opType: 'Reshape', input: ['x', 'shape'], output: ['x3'], name: 'reshape' },
        {
          opType: 'GroupNormalization',
          input: ['x3', 'scale', 'bias'],
          output: ['y'],
          name: 'gn',
          attribute: [aInt('num_groups', 2)],
        },
      ],
      outputs: ['y'],
      initializer: [ints('shape', [-1, 4, 1]), floats('scale', [1, 2, 3, 4]), floats('bias', [0, 0, 1, 1])],
      opset: 21,
    });
    await runsWithinBound('group norm', m);
    const hostile = model({
      nodes: [
        ...valueShapeConcat('c41', 'target'),
        { opType: 'Expand', input: ['one', 'target'], output: ['x3'], name: 'expand' },
        {
          opType: 'GroupNormalization',
          input: ['x3', 'scale', 'bias'],
          output: ['y'],
          name: 'gn',
          attribute: [aInt('num_groups', 2)],
        },
      ],
      outputs: ['y'],
      initializer: [
        ints('flat', [-1]),
        ints('c41', [4, 1]),
        floats('one', [1]),
        floats('scale', [1, 2, 3, 4]),
        floats('bias', [0, 0, 1, 1]),
      ],
      opset: 21,
    });
    refused('group norm expand', hostile, 'Expand', 'unbounded');
  });
});

describe('skl2onnx operators (ai.onnx.ml)', () => {
  const svmAttrs = [aStr('kernel_type', 'RBF'), aFloats('kernel_params', [0.5, 0, 3])];

  it('SVMRegressor and SVMClassifier with support vectors run within the bound, which counts their kernel buffer', async () => {
    const reg = model({
      nodes: [
        {
          opType: 'SVMRegressor',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['y'],
          name: 'svr',
          attribute: [
            ...svmAttrs,
            aInt('n_supports', 3),
            aFloats('support_vectors', seq(12)),
            aFloats('coefficients', [1, -1, 0.5]),
            aFloats('rho', [0.1]),
          ],
        },
      ],
      outputs: ['y'],
      ml: 1,
    });
    await runsWithinBound('svr', reg);
    const cls = model({
      nodes: [
        {
          opType: 'SVMClassifier',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['label', 'scores'],
          name: 'svc',
          attribute: [
            ...svmAttrs,
            aInts('classlabels_ints', [0, 1, 2]),
            aInts('vectors_per_class', [1, 1, 1]),
            aFloats('support_vectors', seq(12)),
            aFloats('coefficients', [1, -1, 0.5, 0.2, 0.3, -0.4]),
            aFloats('rho', [0.1, 0.2, 0.3]),
            aFloats('prob_a', [-1, -1, -1]),
            aFloats('prob_b', [0, 0, 0]),
          ],
        },
      ],
      outputs: [{ name: 'label', type: INT64 }, 'scores'],
      ml: 1,
    });
    await runsWithinBound('svc', cls);
  });

  it('SVM hostile: a support-vector count that is a number in the model, not an array in it, is refused', () => {
    // ONNX Runtime allocates rows x n_supports floats for the kernel values (svmregressor.cc); the count
    // is an attribute, so 2^30 of them cost a few bytes of model and 4 GiB per row. The bound counted
    // only the [rows, 1] output before.
    const reg = model({
      nodes: [
        {
          opType: 'SVMRegressor',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['y'],
          name: 'svr',
          attribute: [
            ...svmAttrs,
            aInt('n_supports', 2 ** 30),
            aFloats('coefficients', [1]),
            aFloats('rho', [0]),
          ],
        },
      ],
      outputs: ['y'],
      ml: 1,
    });
    assert.ok(reg.length < 300, String(reg.length));
    refused('svr n_supports', reg, 'SVMRegressor', 'limit');
    const cls = model({
      nodes: [
        {
          opType: 'SVMClassifier',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['label', 'scores'],
          name: 'svc',
          attribute: [
            ...svmAttrs,
            aInts('classlabels_ints', [0]),
            aInts('vectors_per_class', [2 ** 30]),
            aFloats('coefficients', [1]),
            aFloats('rho', [0]),
          ],
        },
      ],
      outputs: [{ name: 'label', type: INT64 }, 'scores'],
      ml: 1,
    });
    refused('svc vectors_per_class', cls, 'SVMClassifier', 'limit');
  });

  it('LabelEncoder (ai.onnx.ml 4) whose values_tensor holds strings is counted as strings', () => {
    const enc = (valuesType: number) =>
      model({
        nodes: [
          {
            opType: 'LabelEncoder',
            domain: 'ai.onnx.ml',
            input: ['x'],
            output: ['y'],
            name: 'enc',
            attribute: [
              { name: 'keys_tensor', type: AttrType.TENSOR, t: floats('k', [0, 1]) },
              {
                name: 'values_tensor',
                type: AttrType.TENSOR,
                t:
                  valuesType === STRING
                    ? {
                        name: 'v',
                        dims: [2],
                        dataType: STRING,
                        stringData: [Buffer.from('no'), Buffer.from('yes')],
                      }
                    : ints('v', [0, 1]),
              },
            ],
          },
        ],
        outputs: [{ name: 'y', type: valuesType }],
        ml: 4,
      });
    const asInts = onnxMemoryBound(enc(INT64), 'ints').bytes;
    const asStrings = onnxMemoryBound(enc(STRING), 'strings').bytes;
    // 4,096 x 4 strings of 32 + 3 bytes each, not int64s.
    assert.ok(asStrings >= 4096 * 4 * 35, `${asStrings} (int64 values: ${asInts})`);
    assert.ok(asStrings > asInts);
  });

  it('ZipMap is bounded (rows x classes map entries); Bulwark runs a model with one, reading its tensor outputs', async () => {
    const m = model({
      nodes: [
        {
          opType: 'LinearClassifier',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['label', 'scores'],
          name: 'linear',
          attribute: [
            aFloats('coefficients', seq(12)),
            aFloats('intercepts', [0, 0, 0]),
            aInts('classlabels_ints', [0, 1, 2]),
            aStr('post_transform', 'SOFTMAX'),
          ],
        },
        {
          opType: 'ZipMap',
          domain: 'ai.onnx.ml',
          input: ['scores'],
          output: ['probabilities'],
          name: 'zipmap',
          attribute: [aInts('classlabels_int64s', [0, 1, 2])],
        },
      ],
      outputs: [{ name: 'label', type: INT64 }, 'scores', { name: 'probabilities' }],
      ml: 1,
    });
    const b = onnxMemoryBound(m, 'zipmap', { maxBatch: 8 });
    // 8 rows x 3 entries of 64 + 32 bytes, beside the label and scores.
    assert.ok(b.bytes >= 8 * 3 * 96 + 8 * 8 + 8 * 3 * 4, String(b.bytes));
    const r = await OnnxRuntimeModel.create(m, { memory: { maxBatch: 8 } });
    opened.push(r);
    const out = await r.run(Float32Array.from(seq(8)), 2, 4);
    assert.deepEqual(Object.keys(out), ['scores']);
  });

  it('CastMap and DictVectorizer (they read a map) are refused, saying why', () => {
    for (const op of ['CastMap', 'DictVectorizer']) {
      const m = model({
        nodes: [{ opType: op, domain: 'ai.onnx.ml', input: ['x'], output: ['y'], name: 'm' }],
        outputs: ['y'],
        ml: 1,
      });
      assert.throws(
        () => onnxMemoryBound(m, 'm'),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['op'] === op && /reads a map/.test(e.message),
        op,
      );
    }
  });
});
