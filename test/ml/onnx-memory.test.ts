/**
 * The memory a graph asks ONNX Runtime for when it runs, bounded before ONNX Runtime sees the model
 * (src/model/onnx-memory.ts). Each hostile model below is a few hundred bytes whose output size is a
 * value: before the bound, ONNX Runtime 1.30 allocated what it asked for (a 222-byte ConstantOfShape
 * model took 490 MB at its peak while the session was created, at 50,000,000 floats; the ones here ask
 * for 4 GiB and more). None of them reaches ONNX Runtime now, so these tests allocate nothing large.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { Network } from '../../src/ml/index.js';
import { toOnnx } from '../../src/ml/onnx/export.js';
import { AttrType, DataType, encodeModel } from '../../src/ml/onnx/proto.js';
import { OnnxRuntimeModel } from '../../src/ml/onnx/runtime.js';
import {
  buildManifest,
  DEFAULT_MAX_MEMORY_BYTES,
  onnxMemoryBound,
  scanModel,
} from '../../src/model/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { FIXTURE_ONNX, makeKeyring, PASS_ENV, tempDir } from '../model/helpers.js';
import { attrInt, attrInts, floats, ints } from './onnx-build.js';

const { dir, cleanup } = tempDir('onnx-memory');
after(cleanup);

const INT64 = DataType.INT64;
const vi = (name: string, width: number | null, batch: number | null = null) => ({
  name,
  type: {
    tensorType: {
      elemType: DataType.FLOAT,
      shape: {
        dim: [
          batch === null ? { dimParam: 'N' } : { dimValue: batch },
          width === null ? { dimParam: 'F' } : { dimValue: width },
        ],
      },
    },
  },
});

/**
 * A model of input x [N, 2] whose nodes compute `big` somehow; `big` is summed to one value and added
 * to x, so the output is a float [N, 2] as Bulwark expects.
 */
function graph(nodes: object[], initializer: object[] = [], opset = 17, input = vi('x', 2)): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'g',
      node: [
        ...nodes,
        {
          opType: 'ReduceSum',
          input: ['big'],
          output: ['s'],
          name: 'sum',
          attribute: [attrInt('keepdims', 0)],
        },
        { opType: 'Add', input: ['x', 's'], output: ['p'], name: 'add' },
      ],
      initializer,
      input: [input],
      output: [vi('p', 2)],
    },
  });
}

/** 2^30 floats: 4 GiB. */
const HUGE = 2 ** 30;

/** The largest index of x's non-zero elements as a 1-D int64 `m1` (NonZero, ReduceMax, Reshape by `flat`). */
const nonZeroMax = [
  { opType: 'NonZero', input: ['x'], output: ['nz'], name: 'nonzero' },
  { opType: 'ReduceMax', input: ['nz'], output: ['m'], name: 'max', attribute: [attrInt('keepdims', 1)] },
  { opType: 'Reshape', input: ['m', 'flat'], output: ['m1'], name: 'reshape' },
];

const hostile: { name: string; op: string; model: Uint8Array; reason: 'limit' | 'unbounded' }[] = [
  {
    name: 'ConstantOfShape of an initializer',
    op: 'ConstantOfShape',
    reason: 'limit',
    model: graph(
      [
        {
          opType: 'ConstantOfShape',
          input: ['shape'],
          output: ['big'],
          name: 'fill',
          attribute: [{ name: 'value', type: AttrType.TENSOR, t: floats('v', [1], [1]) }],
        },
      ],
      [ints('shape', [HUGE])],
    ),
  },
  {
    name: 'ConstantOfShape of a Constant node',
    op: 'ConstantOfShape',
    reason: 'limit',
    model: graph([
      {
        opType: 'Constant',
        input: [],
        output: ['shape'],
        name: 'c',
        attribute: [{ name: 'value_ints', type: AttrType.INTS, ints: [2 ** 15, 2 ** 15] }],
      },
      { opType: 'ConstantOfShape', input: ['shape'], output: ['big'], name: 'fill' },
    ]),
  },
  {
    // The batch size times a constant: 1 row asks for 2^30 floats already.
    name: 'Expand to Shape(x)[0] * K',
    op: 'Expand',
    reason: 'limit',
    model: graph(
      [
        { opType: 'Shape', input: ['x'], output: ['sh'], name: 'shape' },
        { opType: 'Slice', input: ['sh', 'zero', 'one'], output: ['n'], name: 'slice' },
        { opType: 'Mul', input: ['n', 'k'], output: ['m'], name: 'mul' },
        { opType: 'Expand', input: ['one_f', 'm'], output: ['big'], name: 'expand' },
      ],
      [ints('zero', [0]), ints('one', [1]), ints('k', [HUGE]), floats('one_f', [1])],
    ),
  },
  {
    name: 'Tile of the input',
    op: 'Tile',
    reason: 'limit',
    model: graph(
      [{ opType: 'Tile', input: ['x', 'reps'], output: ['big'], name: 'tile' }],
      [ints('reps', [2 ** 20, 2 ** 10])],
    ),
  },
  {
    name: 'Range with a constant limit',
    op: 'Range',
    reason: 'limit',
    model: graph(
      [{ opType: 'Range', input: ['s0', 'lim', 'd1'], output: ['big'], name: 'range' }],
      [floats('s0', [0], []), floats('lim', [HUGE], []), floats('d1', [1], [])],
    ),
  },
  {
    name: 'Pad by constant pads',
    op: 'Pad',
    reason: 'limit',
    model: graph(
      [{ opType: 'Pad', input: ['x', 'pads'], output: ['big'], name: 'pad' }],
      [ints('pads', [0, 0, 0, HUGE])],
    ),
  },
  {
    name: 'Resize by constant scales',
    op: 'Resize',
    reason: 'limit',
    model: graph(
      [{ opType: 'Resize', input: ['x', '', 'scales'], output: ['big'], name: 'resize' }],
      [floats('scales', [1, HUGE])],
    ),
  },
  {
    name: 'Upsample (opset 9) by constant scales',
    op: 'Upsample',
    reason: 'limit',
    model: graph(
      [{ opType: 'Upsample', input: ['x', 'scales'], output: ['big'], name: 'up' }],
      [floats('scales', [HUGE, 1])],
      9,
    ),
  },
  {
    name: 'OneHot of a constant depth',
    op: 'OneHot',
    reason: 'limit',
    model: graph(
      [{ opType: 'OneHot', input: ['x', 'depth', 'vals'], output: ['big'], name: 'onehot' }],
      [floats('depth', [HUGE], []), floats('vals', [0, 1])],
    ),
  },
  {
    // Reshape to a computed shape, then Expand by that shape's values times a constant.
    name: 'Reshape then Expand chain',
    op: 'Expand',
    reason: 'limit',
    model: graph(
      [
        { opType: 'Reshape', input: ['x', 'flat'], output: ['r'], name: 'reshape' },
        { opType: 'Shape', input: ['r'], output: ['rs'], name: 'shape' },
        {
          opType: 'Concat',
          input: ['rs', 'k'],
          output: ['target'],
          name: 'concat',
          attribute: [attrInt('axis', 0)],
        },
        { opType: 'Unsqueeze', input: ['r', 'ax'], output: ['r2'], name: 'unsq' },
        { opType: 'Expand', input: ['r2', 'target'], output: ['big'], name: 'expand' },
      ],
      [ints('flat', [-1]), ints('k', [2 ** 24]), ints('ax', [1])],
    ),
  },
  {
    name: 'ConvTranspose to a constant output_shape',
    op: 'ConvTranspose',
    reason: 'limit',
    model: graph(
      [
        { opType: 'Unsqueeze', input: ['x', 'ax'], output: ['x3'], name: 'unsq' },
        {
          opType: 'ConvTranspose',
          input: ['x3', 'w'],
          output: ['big'],
          name: 'deconv',
          attribute: [attrInts('output_shape', [HUGE]), attrInts('strides', [2 ** 20])],
        },
      ],
      [ints('ax', [1]), floats('w', [1], [1, 1, 1])],
    ),
  },
  {
    // Data-dependent: the length comes from the input's values.
    name: 'Range over the input values',
    op: 'Range',
    reason: 'unbounded',
    model: graph(
      [
        {
          opType: 'ReduceMax',
          input: ['x'],
          output: ['m'],
          name: 'max',
          attribute: [attrInt('keepdims', 0)],
        },
        { opType: 'Range', input: ['zero_f', 'm', 'one_f'], output: ['big'], name: 'range' },
      ],
      [floats('zero_f', [0], []), floats('one_f', [1], [])],
    ),
  },
  {
    // NonZero's indices are below the input's dims (4,095 at most here), so Expand by them alone is
    // bounded (see 'NonZero ... bounded by the input's dims' below); times a constant it asks for 2^42.
    name: 'NonZero then Expand by its values times a constant',
    op: 'Expand',
    reason: 'limit',
    model: graph(
      [
        ...nonZeroMax,
        { opType: 'Mul', input: ['m1', 'k'], output: ['m2'], name: 'mul' },
        { opType: 'Expand', input: ['one_f', 'm2'], output: ['big'], name: 'expand' },
      ],
      [floats('one_f', [1]), ints('flat', [-1]), ints('k', [HUGE])],
    ),
  },
  {
    name: 'ConstantOfShape of the input cast to int64',
    op: 'ConstantOfShape',
    reason: 'unbounded',
    model: graph(
      [
        { opType: 'Cast', input: ['x'], output: ['xi'], name: 'cast', attribute: [attrInt('to', INT64)] },
        {
          opType: 'ReduceMax',
          input: ['xi'],
          output: ['m'],
          name: 'max',
          attribute: [attrInt('keepdims', 1)],
        },
        { opType: 'Reshape', input: ['m', 'flat'], output: ['m1'], name: 'reshape' },
        { opType: 'ConstantOfShape', input: ['m1'], output: ['big'], name: 'fill' },
      ],
      [ints('flat', [-1])],
    ),
  },
  {
    name: 'an operator of another domain',
    op: 'Evil',
    reason: 'unbounded',
    model: graph([{ opType: 'Evil', domain: 'com.example', input: ['x'], output: ['big'], name: 'custom' }]),
  },
];

describe('the memory a graph asks for is bounded before ONNX Runtime opens it', () => {
  it('small hostile models are refused by OnnxRuntimeModel.create (ERR_MODEL_UNSAFE naming the node and operator)', async () => {
    for (const h of hostile) {
      assert.ok(h.model.length < 600, `${h.name}: ${h.model.length} bytes`);
      await assert.rejects(
        OnnxRuntimeModel.create(h.model),
        (e: unknown) => {
          assert.ok(isBulwarkError(e, 'ERR_MODEL_UNSAFE'), `${h.name}: ${String(e)}`);
          assert.equal(e.details['op'], h.op, `${h.name}: ${e.message}`);
          assert.equal(e.details['reason'], h.reason, `${h.name}: ${e.message}`);
          assert.match(e.message, new RegExp(`\\((com\\.example:)?${h.op}\\)`), h.name);
          if (h.reason === 'limit') assert.match(e.message, /above the limit of 1\.0 GiB \(maxMemoryBytes\)/);
          else assert.match(e.message, /values Bulwark cannot bound|Bulwark does not bound/);
          return true;
        },
        h.name,
      );
    }
  });

  it('a sparse initializer ONNX Runtime makes dense on load is counted at its dense size', async () => {
    // 107 bytes that took 1.3 GB when the session was created (dims [50,000,000, 2], one value).
    const base = Buffer.from(
      encodeModel({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: {
          name: 'g',
          node: [{ opType: 'Add', input: ['x', 'W'], output: ['p'], name: 'a' }],
          input: [vi('x', 2)],
          output: [vi('p', 2)],
        },
      }),
    );
    const model = withSparse(base, 'W', [HUGE, 2]);
    assert.ok(model.length < 200);
    await assert.rejects(
      OnnxRuntimeModel.create(model),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MODEL_UNSAFE') &&
        e.details['op'] === 'sparse_initializer' &&
        /8\.0 GiB/.test(e.message),
    );
  });

  it('Loop and Scan are refused; If is bounded by its larger branch, reading outer names', async () => {
    const GRAPH = 5; // AttributeProto.GRAPH
    const body = { name: 'body', node: [], input: [], output: [] };
    for (const op of ['Loop', 'Scan']) {
      const m = graph([
        {
          opType: op,
          input: ['', ''],
          output: ['big'],
          name: 'l',
          attribute: [{ name: 'body', type: GRAPH, g: body }],
        },
      ]);
      assert.throws(
        () => onnxMemoryBound(m, 'm'),
        (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['op'] === op,
        op,
      );
    }
    // then: ConstantOfShape of the outer initializer `shape` (no input of the If names it); else: x.
    const ifModel = (n: number) =>
      graph(
        [
          {
            opType: 'If',
            input: ['cond'],
            output: ['big'],
            name: 'if',
            attribute: [
              {
                name: 'then_branch',
                type: GRAPH,
                g: {
                  name: 'then',
                  node: [{ opType: 'ConstantOfShape', input: ['shape'], output: ['t'], name: 'inner_fill' }],
                  output: [{ name: 't' }],
                },
              },
              {
                name: 'else_branch',
                type: GRAPH,
                g: {
                  name: 'else',
                  node: [{ opType: 'Identity', input: ['x'], output: ['e'], name: 'id' }],
                  output: [{ name: 'e' }],
                },
              },
            ],
          },
        ],
        [ints('shape', [n]), { name: 'cond', dims: [], dataType: 9, int32Data: [0] }],
      );
    assert.throws(
      () => onnxMemoryBound(ifModel(HUGE), 'm'),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['node'] === 'inner_fill',
    );
    const small = await OnnxRuntimeModel.create(ifModel(3));
    assert.deepEqual(Array.from((await small.run(Float32Array.from([1, 2]), 1, 2))['p']?.data ?? []), [4, 5]);
    await small.close();
  });

  it("Bulwark's own models, a PyTorch export, a tree ensemble and a dynamic reshape still open and run", async () => {
    const net = new Network({ inputs: 4, hidden: [64, 32], classes: 3, rng: 3 });
    const ours = toOnnx(net);
    const b = onnxMemoryBound(ours, 'ours');
    // [4096, 64] floats is the largest tensor: 1 MiB.
    assert.equal(b.largest?.bytes, 4096 * 64 * 4);
    assert.ok(b.bytes < 4 * 2 ** 20, String(b.bytes));
    const m = await OnnxRuntimeModel.create(ours);
    const x = Float32Array.from({ length: 4 * 10 }, (_, i) => Math.sin(i));
    const out = await m.run(x, 10, 4);
    assert.deepEqual(out['probabilities']?.dims, [10, 3]);
    await m.close();

    const { readFileSync } = await import('node:fs');
    const torch = await OnnxRuntimeModel.create(readFileSync(FIXTURE_ONNX));
    await torch.close();

    const tree = treeModel();
    const t = await OnnxRuntimeModel.create(tree);
    const tout = await t.run(Float32Array.from([0.2, 5, 0.9, -1]), 2, 2);
    assert.deepEqual(tout['probabilities']?.dims, [2, 2]);
    await t.close();

    const dyn = dynamicReshape();
    const d = await OnnxRuntimeModel.create(dyn);
    const dout = await d.run(Float32Array.from([1, 2, 3, 4]), 2, 2);
    assert.deepEqual(Array.from(dout['p']?.data ?? []), [1, 2, 3, 4]);
    await d.close();
  });

  it("NonZero's values are bounded by the input's dims: Expand by them opens, and ONNX Runtime's output keeps within the bound", async () => {
    // Expand([1], [max index of a non-zero element]): at most the batch (4,096) floats. Refused before
    // (no values known for NonZero's output); `big` is a graph output here so that its size is seen.
    const m = encodeModel({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        node: [
          ...nonZeroMax,
          { opType: 'Expand', input: ['one_f', 'm1'], output: ['big'], name: 'expand' },
          { opType: 'Identity', input: ['x'], output: ['p'], name: 'id' },
        ],
        initializer: [floats('one_f', [1]), ints('flat', [-1])],
        input: [vi('x', 2)],
        output: [
          vi('p', 2),
          {
            name: 'big',
            type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'K' }] } } },
          },
        ],
      },
    });
    const b = onnxMemoryBound(m, 'm');
    assert.ok(b.bytes < 2 ** 20, String(b.bytes));
    // The Expand's output: 4,096 floats at most at the default batch, 8 at a batch of 8.
    assert.ok(onnxMemoryBound(m, 'm', { maxBatch: 8 }).bytes < b.bytes);
    const ort = await OnnxRuntimeModel.create(m, { memory: { maxBatch: 8 } });
    for (const rows of [1, 3, 8]) {
      const x = Float32Array.from({ length: rows * 2 }, (_, i) => (i === rows * 2 - 2 ? 1 : 0));
      const out = await ort.run(x, rows, 2);
      // The largest index of a non-zero element is rows - 1: Expand to that many floats, below the
      // bound's rows (the batch) for that tensor.
      assert.deepEqual(out['big']?.dims, [rows - 1]);
      assert.ok((out['big']?.data.length ?? 0) * 4 <= 8 * 4);
    }
    await ort.close();
  });

  it('runs of more rows than maxBatch are split, with the same results', async () => {
    const net = new Network({ inputs: 3, hidden: [8], classes: 2, rng: 5 });
    const bytes = toOnnx(net);
    const rows = 23;
    const x = Float32Array.from({ length: rows * 3 }, (_, i) => Math.cos(i * 0.7));
    const whole = await OnnxRuntimeModel.create(bytes);
    const split = await OnnxRuntimeModel.create(bytes, { memory: { maxBatch: 5 } });
    const a = await whole.run(x, rows, 3);
    const s = await split.run(x, rows, 3);
    assert.deepEqual(s['probabilities']?.dims, [rows, 2]);
    assert.deepEqual(Array.from(s['probabilities']?.data ?? []), Array.from(a['probabilities']?.data ?? []));
    assert.deepEqual(Array.from(s['logits']?.data ?? []), Array.from(a['logits']?.data ?? []));
    await whole.close();
    await split.close();
  });

  it('the limit and the batch are options: the bound scales with maxBatch', () => {
    const net = new Network({ inputs: 4, hidden: [256], classes: 2, rng: 1 });
    const bytes = toOnnx(net);
    const at4096 = onnxMemoryBound(bytes, 'm').bytes;
    const at256 = onnxMemoryBound(bytes, 'm', { maxBatch: 256 }).bytes;
    assert.equal(at4096, at256 * 16);
    assert.equal(DEFAULT_MAX_MEMORY_BYTES, 2 ** 30);
    assert.throws(
      () => onnxMemoryBound(bytes, 'fraud.onnx', { maxMemoryBytes: 2 ** 20 }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MODEL_UNSAFE') &&
        e.details['reason'] === 'limit' &&
        /^fraud\.onnx: at 4096 rows a run may hold .* above the limit of 1\.0 MiB \(maxMemoryBytes\); the largest is output "gemm_0" of node "gemm_0" \(Gemm\), up to 4\.0 MiB$/.test(
          e.message,
        ),
    );
    onnxMemoryBound(bytes, 'm', { maxMemoryBytes: 2 ** 20, maxBatch: 16 });
    // A 4 GiB ask at one row still passes with a limit raised to match; unbounded stays refused.
    const ask = hostile[0]?.model as Uint8Array;
    assert.ok(onnxMemoryBound(ask, 'm', { maxMemoryBytes: 2 ** 33 }).bytes >= 4 * HUGE);
    assert.throws(() => onnxMemoryBound(hostile[11]?.model as Uint8Array, 'm', { maxMemoryBytes: 2 ** 40 }));
  });

  it('a symbolic feature width is bounded by maxFeatures, and wider inputs are refused at run time', async () => {
    const model = graph(
      [{ opType: 'Identity', input: ['x'], output: ['big'], name: 'id' }],
      [],
      17,
      vi('x', null),
    );
    const b = onnxMemoryBound(model, 'm', { maxFeatures: 8 });
    assert.equal(b.symbolicFeatures, true);
    const m = await OnnxRuntimeModel.create(model, { memory: { maxFeatures: 2 } });
    await m.run(Float32Array.from([1, 2]), 1, 2);
    await assert.rejects(m.run(new Float32Array(3), 1, 3), (e: unknown) =>
      isBulwarkError(e, 'ERR_INPUT_TOO_LARGE'),
    );
    await m.close();
  });

  it('bulwark predict refuses a hostile model (exit 5), model protect refuses to sign one, model scan reports it', async () => {
    const file = join(dir, 'expand.onnx');
    writeFileSync(file, hostile[2]?.model as Uint8Array);
    writeFileSync(join(dir, 'rows.csv'), 'a,b\n1,2\n');
    const r = await runBulwarkInProcess(['predict', '--model', file, '--data', join(dir, 'rows.csv')]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_MODEL_UNSAFE: model: .*node "expand" \(Expand\)/);
    assert.equal(r.stdout, '');

    const keyring = await makeKeyring(join(dir, 'keyring.json'));
    assert.throws(
      () => buildManifest(hostile[2]?.model as Uint8Array, { keyring, name: 'evil', version: '1' }),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && /node "expand" \(Expand\)/.test(e.message),
    );

    const report = await scanModel(file);
    assert.equal(report.format, 'onnx');
    assert.equal(report.safe, false);
    const f = report.findings.find((x) => x.severity === 'high');
    assert.match(f?.message ?? '', /node "expand" \(Expand\).*denial of service/);
    const unbounded = join(dir, 'range.onnx');
    writeFileSync(unbounded, hostile[11]?.model as Uint8Array);
    assert.equal((await scanModel(unbounded)).safe, false);
    const ok = join(dir, 'ok.onnx');
    writeFileSync(ok, toOnnx(new Network({ inputs: 2, hidden: [4], classes: 2, rng: 2 })));
    assert.equal((await scanModel(ok)).safe, true);
  });
});

/** A TreeEnsembleClassifier (as skl2onnx writes one: label + probabilities) over 2 features. */
function treeModel(): Uint8Array {
  const ints = (name: string, v: number[]) => ({ name, type: AttrType.INTS, ints: v });
  const fl = (name: string, v: number[]) => ({ name, type: AttrType.FLOATS, floats: v });
  const modes = {
    name: 'nodes_modes',
    type: 8, // STRINGS
    strings: [Buffer.from('BRANCH_LEQ'), Buffer.from('LEAF'), Buffer.from('LEAF')],
  };
  return encodeModel({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'ai.onnx.ml', version: 3 },
    ],
    graph: {
      name: 'tree',
      node: [
        {
          opType: 'TreeEnsembleClassifier',
          domain: 'ai.onnx.ml',
          input: ['x'],
          output: ['label', 'probabilities'],
          name: 'trees',
          attribute: [
            ints('classlabels_int64s', [0, 1]),
            ints('nodes_treeids', [0, 0, 0]),
            ints('nodes_nodeids', [0, 1, 2]),
            ints('nodes_featureids', [0, 0, 0]),
            fl('nodes_values', [0.5, 0, 0]),
            modes,
            ints('nodes_truenodeids', [1, 0, 0]),
            ints('nodes_falsenodeids', [2, 0, 0]),
            ints('class_treeids', [0, 0]),
            ints('class_nodeids', [1, 2]),
            ints('class_ids', [0, 1]),
            fl('class_weights', [1, 1]),
          ],
        },
      ],
      input: [vi('x', 2)],
      output: [
        {
          name: 'label',
          type: { tensorType: { elemType: INT64, shape: { dim: [{ dimParam: 'N' }] } } },
        },
        vi('probabilities', 2),
      ],
    },
  });
}

/** x.reshape(Shape(x)[0], -1) as PyTorch exports it: Shape, Gather, Unsqueeze, Concat, Reshape. */
function dynamicReshape(): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [
        { opType: 'Shape', input: ['x'], output: ['sh'], name: 'shape' },
        {
          opType: 'Gather',
          input: ['sh', 'i0'],
          output: ['n'],
          name: 'gather',
          attribute: [attrInt('axis', 0)],
        },
        { opType: 'Unsqueeze', input: ['n', 'ax'], output: ['n1'], name: 'unsq' },
        {
          opType: 'Concat',
          input: ['n1', 'minus1'],
          output: ['target'],
          name: 'concat',
          attribute: [attrInt('axis', 0)],
        },
        { opType: 'Reshape', input: ['x', 'target'], output: ['p'], name: 'reshape' },
      ],
      initializer: [ints('i0', [0], []), ints('ax', [0]), ints('minus1', [-1])],
      input: [vi('x', 2)],
      output: [vi('p', 2)],
    },
  });
}

/** `base` with a sparse initializer `name` of `dims` holding one value (GraphProto.sparse_initializer). */
function withSparse(base: Buffer, name: string, dims: number[]): Buffer {
  const varint = (x: number): Buffer => {
    const o: number[] = [];
    while (x > 127) {
      o.push((x & 127) | 128);
      x = Math.floor(x / 128);
    }
    o.push(x);
    return Buffer.from(o);
  };
  const field = (no: number, b: Uint8Array): Buffer =>
    Buffer.concat([varint(no * 8 + 2), varint(b.length), b]);
  const values = Buffer.concat([
    Buffer.from([0x08, 1]),
    field(8, Buffer.from(name)),
    Buffer.from([0x10, 1]),
    field(4, Buffer.from(new Float32Array([1]).buffer)),
  ]);
  const indices = Buffer.concat([Buffer.from([0x08, 1, 0x10, 7]), field(7, Buffer.from([0]))]);
  const sparse = Buffer.concat([
    field(1, values),
    field(2, indices),
    field(3, Buffer.concat(dims.map(varint))),
  ]);
  // Re-write the top-level fields, appending the sparse initializer to the graph (field 7).
  const parts: Buffer[] = [];
  let p = 0;
  const rd = (): number => {
    let x = 0;
    let m = 1;
    for (;;) {
      const b = base[p++] as number;
      x += (b & 127) * m;
      if (!(b & 128)) return x;
      m *= 128;
    }
  };
  while (p < base.length) {
    const s = p;
    const key = rd();
    if ((key & 7) === 2) {
      const len = rd();
      const body = base.subarray(p, p + len);
      p += len;
      parts.push(key >> 3 === 7 ? field(7, Buffer.concat([body, field(15, sparse)])) : base.subarray(s, p));
    } else {
      rd();
      parts.push(base.subarray(s, p));
    }
  }
  return Buffer.concat(parts);
}

describe('--max-model-memory: the limit of the CLI commands that open or check a model', () => {
  /**
   * x [N, 2] tiled to [N, 2^17] floats: 2 GiB at 4,096 rows, so refused by the 1 GiB default, though one
   * row takes 512 KiB.
   */
  const wide = graph(
    [{ opType: 'Tile', input: ['x', 'reps'], output: ['big'], name: 'tile' }],
    [ints('reps', [1, 2 ** 16])],
  );

  it('predict, model scan and model protect are refused under the default and open the model under a raised limit', async () => {
    const file = join(dir, 'wide.onnx');
    writeFileSync(file, wide);
    writeFileSync(join(dir, 'one.csv'), 'a,b\n1,2\n');
    const predict = ['predict', '--model', file, '--data', join(dir, 'one.csv')];
    let r = await runBulwarkInProcess(predict);
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      r.stderr,
      /^bulwark: ERR_MODEL_UNSAFE: model: at 4096 rows a run may hold 2\.0 GiB .*above the limit of 1\.0 GiB \(--max-model-memory\); .*node "tile" \(Tile\)/,
    );
    r = await runBulwarkInProcess([...predict, '--max-model-memory', '3GiB']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^prediction,p_0/);
    // Lowered: the same option refuses what the default opens.
    const small = join(dir, 'small.onnx');
    writeFileSync(small, graph([{ opType: 'Identity', input: ['x'], output: ['big'], name: 'id' }]));
    r = await runBulwarkInProcess([
      'predict',
      '--model',
      small,
      '--data',
      join(dir, 'one.csv'),
      '--max-model-memory',
      '1MiB',
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await runBulwarkInProcess(['model', 'scan', file]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /\(--max-model-memory\).*node "tile" \(Tile\)/);
    r = await runBulwarkInProcess([
      '--json',
      'model',
      'scan',
      file,
      '--max-model-memory',
      String(3 * 2 ** 30),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { safe: boolean }).safe, true);

    await makeKeyring(join(dir, 'cli-keyring.json')).then((k) => k.close());
    r = await runBulwarkInProcess(['model', 'keygen', '--out', join(dir, 'cli-signer.key')]);
    assert.equal(r.code, 0, r.stderr);
    const protect = (out: string) => [
      'model',
      'protect',
      file,
      '--keyring',
      join(dir, 'cli-keyring.json'),
      '--passphrase-env',
      PASS_ENV,
      '--sign-key',
      join(dir, 'cli-signer.key'),
      '--out',
      join(dir, out),
    ];
    r = await runBulwarkInProcess(protect('wide.bwm'));
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_MODEL_UNSAFE: .*\(--max-model-memory\).*node "tile" \(Tile\)/);
    r = await runBulwarkInProcess([...protect('wide.bwm'), '--max-model-memory', '3GiB']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('evaluate takes it too', async () => {
    const file = join(dir, 'wide-eval.onnx');
    writeFileSync(file, wide);
    writeFileSync(join(dir, 'labelled.csv'), 'a,b,y\n1,2,0\n3,4,1\n');
    const evaluate = ['evaluate', '--model', file, '--data', join(dir, 'labelled.csv'), '--label', 'y'];
    let r = await runBulwarkInProcess(evaluate);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_MODEL_UNSAFE: .*\(--max-model-memory\).*node "tile" \(Tile\)/);
    // Past the bound, evaluate goes on to what it needs next (this graph has no Bulwark metadata).
    r = await runBulwarkInProcess([...evaluate, '--max-model-memory', '3GiB']);
    assert.match(r.stderr, /ERR_ONNX_INVALID: .*cannot tell the model's input width/);
  });

  it('model fit-detectors takes it too', async () => {
    const file = join(dir, 'wide-fit.onnx');
    writeFileSync(file, wide);
    writeFileSync(join(dir, 'fit.csv'), 'a,b,y\n1,2,0\n3,4,1\n');
    const fit = [
      'model',
      'fit-detectors',
      file,
      '--data',
      join(dir, 'fit.csv'),
      '--label',
      'y',
      '--out',
      join(dir, 'wide-fit.json'),
    ];
    let r = await runBulwarkInProcess(fit);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_MODEL_UNSAFE: .*\(--max-model-memory\).*node "tile" \(Tile\)/);
    // Past the bound, fit-detectors goes on to what it needs next (this graph has no Bulwark metadata).
    r = await runBulwarkInProcess([...fit, '--max-model-memory', '3GiB']);
    assert.match(r.stderr, /ERR_ONNX_INVALID: .*cannot tell the model's input width/);
  });

  it('BULWARK_MAX_MODEL_MEMORY sets it for every command; the option overrides it; a bad value is ERR_USAGE naming it', async () => {
    const file = join(dir, 'wide-env.onnx');
    writeFileSync(file, wide);
    writeFileSync(join(dir, 'one-env.csv'), 'a,b\n1,2\n');
    const predict = ['predict', '--model', file, '--data', join(dir, 'one-env.csv')];
    const under = (v: string) => ({ env: { BULWARK_MAX_MODEL_MEMORY: v } });
    let r = await runBulwarkInProcess(predict, under('3GiB'));
    assert.equal(r.code, 0, r.stderr);
    r = await runBulwarkInProcess(['model', 'scan', file], under('512MiB'));
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /above the limit of 512\.0 MiB \(BULWARK_MAX_MODEL_MEMORY\)/);
    r = await runBulwarkInProcess([...predict, '--max-model-memory', '3GiB'], under('1MiB'));
    assert.equal(r.code, 0, r.stderr);
    r = await runBulwarkInProcess(predict, under('lots'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^bulwark: ERR_USAGE: BULWARK_MAX_MODEL_MEMORY: expected a size in bytes.*got "lots"/m,
    );
  });

  it('a bad value is refused before any work, naming the option (exit 2)', async () => {
    for (const v of ['', '0', '12XB', '-1GiB', '1.5', '1023KiB', '2TiB', 'lots']) {
      const r = await runBulwarkInProcess([
        'model',
        'scan',
        join(dir, 'absent.onnx'),
        '--max-model-memory',
        v,
      ]);
      assert.equal(r.code, 2, `${v}: ${r.stderr}`);
      assert.match(r.stderr, /ERR_USAGE: .*--max-model-memory.*expected a size in bytes/, v);
    }
    for (const cmd of [
      ['predict'],
      ['evaluate'],
      ['model', 'protect'],
      ['model', 'scan'],
      ['model', 'verify'],
      ['model', 'fit-detectors'],
    ]) {
      const r = await runBulwarkInProcess([...cmd, '--help']);
      assert.match(r.stdout, /--max-model-memory <size>/, cmd.join(' '));
    }
  });
});
