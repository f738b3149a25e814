import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import { fromOnnx } from '../../src/ml/onnx/import.js';
import { AttrType, DataType, encodeModel } from '../../src/ml/onnx/proto.js';
import { OnnxRuntimeModel } from '../../src/ml/onnx/runtime.js';

/**
 * Linear models in the form scikit-learn's ONNX converter writes them (ai.onnx.ml Scaler +
 * LinearClassifier [+ Normalizer], outputs [label, probabilities]); skl2onnx itself is not installable
 * here, so the graphs are built by hand and ONNX Runtime, which implements these operators, is the
 * reference our imported network must agree with.
 */
const F = 4;
const opened: OnnxRuntimeModel[] = [];
after(async () => {
  for (const m of opened) await m.close();
});

const floats = (name: string, v: number[]) => ({ name, type: AttrType.FLOATS, floats: v });
const str = (name: string, v: string) => ({ name, type: AttrType.STRING, s: Buffer.from(v) });
const ints = (name: string, v: number[]) => ({ name, type: AttrType.INTS, ints: v });

function model(opts: {
  coef: number[];
  intercepts: number[];
  post: string;
  labels: number[];
  scaler?: boolean;
  tail?: 'Normalizer' | 'ZipMap';
}): Uint8Array {
  const nodes: object[] = [];
  let x = 'X';
  if (opts.scaler) {
    nodes.push({
      opType: 'Scaler',
      domain: 'ai.onnx.ml',
      input: [x],
      output: ['scaled'],
      name: 'scaler',
      attribute: [floats('offset', [0.5, -1, 2, 0]), floats('scale', [2, 0.5, 1.5, 1])],
    });
    x = 'scaled';
  }
  nodes.push({
    opType: 'LinearClassifier',
    domain: 'ai.onnx.ml',
    input: [x],
    output: ['label', opts.tail ? 'scores' : 'probabilities'],
    name: 'linear',
    attribute: [
      floats('coefficients', opts.coef),
      floats('intercepts', opts.intercepts),
      str('post_transform', opts.post),
      ints('classlabels_ints', opts.labels),
      { name: 'multi_class', type: AttrType.INT, i: 0 },
    ],
  });
  if (opts.tail === 'Normalizer') {
    nodes.push({
      opType: 'Normalizer',
      domain: 'ai.onnx.ml',
      input: ['scores'],
      output: ['probabilities'],
      name: 'normalizer',
      attribute: [str('norm', 'L1')],
    });
  }
  if (opts.tail === 'ZipMap') {
    nodes.push({
      opType: 'ZipMap',
      domain: 'ai.onnx.ml',
      input: ['scores'],
      output: ['probabilities'],
      name: 'zipmap',
      attribute: [ints('classlabels_int64s', opts.labels)],
    });
  }
  return encodeModel({
    irVersion: 7,
    opsetImport: [
      { domain: '', version: 13 },
      { domain: 'ai.onnx.ml', version: 1 },
    ],
    producerName: 'hand (skl2onnx layout)',
    graph: {
      name: 'linear',
      node: nodes,
      initializer: [],
      input: [
        {
          name: 'X',
          type: {
            tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: F }] } },
          },
        },
      ],
      output: [
        { name: 'label', type: { tensorType: { elemType: DataType.INT64 } } },
        { name: 'probabilities', type: { tensorType: { elemType: DataType.FLOAT } } },
      ],
    },
  });
}

async function agree(bytes: Uint8Array, classes: number) {
  const rng = new SeededRng(5);
  const rows = 20;
  const x = rng.fillNormal(new Float32Array(rows * F), 0, 2);
  const imp = fromOnnx(bytes);
  assert.equal(imp.outputName, 'probabilities');
  assert.equal(imp.outputKind, 'probabilities');
  const ours = imp.network.predictProba(x, rows);
  const m = await OnnxRuntimeModel.create(bytes);
  opened.push(m);
  const ort = (await m.run(x, rows, F))['probabilities']!;
  assert.equal(ort.data.length, rows * classes);
  for (let i = 0; i < ours.length; i++)
    assert.ok(Math.abs(ours[i]! - ort.data[i]!) <= 1e-5, `p[${i}] ${ours[i]} vs ${ort.data[i]}`);
  // and the gradient path exists (attacks need it)
  assert.equal(imp.network.inputGradient(x, new Int32Array(rows), rows).gradient.length, rows * F);
}

const W3 = [0.5, -1, 0.25, 2, -0.5, 1, 1.5, -2, 0, 0.75, -1.25, 0.5];

describe('ai.onnx.ml linear models (scikit-learn converter layout) import and agree with ONNX Runtime', () => {
  it('Scaler + LinearClassifier SOFTMAX (multinomial)', async () => {
    await agree(
      model({ coef: W3, intercepts: [0.1, -0.2, 0.3], post: 'SOFTMAX', labels: [0, 1, 2], scaler: true }),
      3,
    );
  });
  it('LinearClassifier LOGISTIC with two opposite rows + Normalizer L1 (binary)', async () => {
    const w = [0.5, -1, 0.25, 2];
    await agree(
      model({
        coef: [...w.map((v) => -v), ...w],
        intercepts: [0.4, -0.4],
        post: 'LOGISTIC',
        labels: [0, 1],
        scaler: true,
        tail: 'Normalizer',
      }),
      2,
    );
  });
  it('a ZipMap output is refused, naming it', () => {
    assert.throws(
      () =>
        fromOnnx(
          model({ coef: W3, intercepts: [0, 0, 0], post: 'SOFTMAX', labels: [0, 1, 2], tail: 'ZipMap' }),
        ),
      (e) => isBulwarkError(e, 'ERR_ONNX_UNSUPPORTED_OP') && /ZipMap/.test(e.message),
    );
    assert.throws(
      () => fromOnnx(model({ coef: W3, intercepts: [0, 0, 0], post: 'PROBIT', labels: [0, 1, 2] })),
      (e) => isBulwarkError(e, 'ERR_ONNX_UNSUPPORTED_OP') && /post_transform PROBIT/.test(e.message),
    );
  });
});
