/**
 * Hostile ONNX files handed to Bulwark (red-team review of the model readers): external data that
 * ONNX Runtime would read from the working folder, files that decode into hundreds of times their
 * size, dims that are not sizes, and ONNX Runtime's own output on a refused model.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { fromOnnx, onnxMetadata } from '../../src/ml/onnx/import.js';
import { DataType, encodeModel } from '../../src/ml/onnx/proto.js';
import { OnnxRuntimeModel } from '../../src/ml/onnx/runtime.js';
import { ONNX_DECODE_LIMITS, ONNX_LIMITS, onnxCounts } from '../../src/model/onnx-info.js';
import { ROOT, runBulwarkInProcess } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-onnx-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'hunter2-secret-passphrase!';

const vi = (name: string, width: number, elemType = DataType.FLOAT) => ({
  name,
  type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } } },
});

/**
 * A model whose only weights are the bytes of `location` (uint8, stored as external data), cast to
 * float and added to the input: its "probabilities" are the file's bytes.
 */
function leakingModel(location: string, n: number): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [
        {
          input: ['W'],
          output: ['Wf'],
          opType: 'Cast',
          name: 'c',
          attribute: [{ name: 'to', type: 2, i: 1 }],
        },
        { input: ['x', 'Wf'], output: ['probabilities'], opType: 'Add', name: 'a' },
      ],
      initializer: [
        {
          name: 'W',
          dims: [1, n],
          dataType: 2, // UINT8
          dataLocation: 1, // EXTERNAL
          externalData: [{ key: 'location', value: location }],
        },
      ],
      input: [vi('x', n)],
      output: [vi('probabilities', n)],
    },
  });
}

/** A one-layer model: MatMul by `W` (given as a TensorProto object), then Sigmoid. */
function denseModel(W: object): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [
        { input: ['x', 'W'], output: ['y'], opType: 'MatMul', name: 'n' },
        { input: ['y'], output: ['p'], opType: 'Sigmoid', name: 's' },
      ],
      initializer: [{ name: 'W', ...W }],
      input: [vi('x', 2)],
      output: [vi('p', 1)],
    },
  });
}

// Hand-built wire format: field `no` as a length-delimited field.
const varint = (x: number): Buffer => {
  const o: number[] = [];
  while (x > 127) {
    o.push((x & 127) | 128);
    x = Math.floor(x / 128);
  }
  o.push(x);
  return Buffer.from(o);
};
const field = (no: number, b: Uint8Array): Buffer => Buffer.concat([varint(no * 8 + 2), varint(b.length), b]);
/** `count` empty length-delimited fields number `no` (2 bytes each when no < 16). */
const empties = (no: number, count: number): Buffer => {
  const b = Buffer.alloc(2 * count);
  for (let i = 0; i < count; i++) b[2 * i] = no * 8 + 2;
  return b;
};
const HEAD = Buffer.from(
  encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [{ key: 'bulwark.label', value: 'y' }],
  }),
);
/** A model whose graph is `graph` (raw GraphProto bytes). */
const withGraph = (graph: Uint8Array): Buffer => Buffer.concat([HEAD, field(7, graph)]);

describe('hostile ONNX files', () => {
  it('external data is refused before ONNX Runtime reads it from the working folder', async () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    writeFileSync(join(work, 'pass.txt'), SECRET);
    writeFileSync(join(work, 'evil.onnx'), leakingModel('pass.txt', SECRET.length));
    writeFileSync(
      join(work, 'rows.csv'),
      `${Array.from({ length: SECRET.length }, (_, i) => `f${i}`).join(',')}\n${Array(SECRET.length).fill('0').join(',')}\n`,
    );
    // Before: exit 0, and the probabilities were the passphrase's bytes (104,117,110,116,...).
    const r = await runBulwarkInProcess(['predict', '--model', 'evil.onnx', '--data', 'rows.csv'], {
      cwd: work,
    });
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      r.stderr,
      /^bulwark: ERR_MODEL_UNSAFE: .*tensor "W" keeps its data in an external file "pass\.txt"/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const codes = [...SECRET].map((c) => c.charCodeAt(0)).join(',');
    assert.ok(!r.stdout.includes(codes));
    assert.equal(r.stdout, '');
  });

  it('every external location is refused by OnnxRuntimeModel.create, in the main graph or a sub-graph', async () => {
    for (const loc of ['pass.txt', '../../etc/hostname', '/etc/hostname', 'sub/w.bin']) {
      await assert.rejects(
        OnnxRuntimeModel.create(leakingModel(loc, 4)),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_MODEL_UNSAFE') &&
          e.details['location'] === loc &&
          e.details['tensor'] === 'W',
        loc,
      );
    }
    // A Constant holding an external tensor inside an If branch (AttributeProto.g -> NodeProto -> t).
    const tensor = Buffer.concat([
      field(8, Buffer.from('C')),
      Buffer.from([0x10, 1]), // data_type FLOAT
      Buffer.from([0x70, 1]), // data_location EXTERNAL
      field(13, Buffer.concat([field(1, Buffer.from('location')), field(2, Buffer.from('pass.txt'))])),
    ]);
    const constNode = Buffer.concat([
      field(2, Buffer.from('c')),
      field(4, Buffer.from('Constant')),
      field(5, Buffer.concat([field(1, Buffer.from('value')), varint(20 * 8), varint(4), field(5, tensor)])),
    ]);
    const ifNode = Buffer.concat([
      field(4, Buffer.from('If')),
      field(
        5,
        Buffer.concat([
          field(1, Buffer.from('then_branch')),
          varint(20 * 8),
          varint(5),
          field(6, field(1, constNode)),
        ]),
      ),
    ]);
    await assert.rejects(
      OnnxRuntimeModel.create(withGraph(field(1, ifNode))),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['tensor'] === 'C',
    );
    // The importer refuses it the same way (before any decoding).
    assert.throws(
      () => fromOnnx(leakingModel('pass.txt', 4)),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE'),
    );
  });

  it('a small file that decodes into millions of objects is refused before any decoder builds them', async () => {
    // 100,001 empty nodes: 200 KB. Before: a 16 MB file of them held 3 GB in protobufjs and 7 GB in
    // ONNX Runtime.
    const manyNodes = withGraph(empties(1, ONNX_LIMITS.nodes + 1));
    assert.ok(manyNodes.length < 210_000);
    await assert.rejects(
      OnnxRuntimeModel.create(manyNodes),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_ONNX_INVALID') &&
        /more than 100000 nodes/.test(e.message) &&
        e.details['limit'] === 'nodes',
    );
    // The importer's own bounds are lower (it decodes everything with protobufjs).
    for (const [graph, what] of [
      [empties(1, ONNX_DECODE_LIMITS.nodes + 1), /more than 10000 nodes/],
      [empties(5, ONNX_DECODE_LIMITS.tensors + 1), /more than 10000 tensors/],
      [empties(13, ONNX_DECODE_LIMITS.elements + 1), /more than 200000 elements/],
    ] as const) {
      assert.throws(
        () => fromOnnx(withGraph(graph)),
        (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID') && what.test(e.message),
      );
    }
    // Packed int64 values count one per byte at most: dims of a tensor.
    const int64s = withGraph(field(5, field(1, Buffer.alloc(ONNX_DECODE_LIMITS.int64 + 1, 1))));
    assert.throws(
      () => fromOnnx(int64s),
      (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID') && /64-bit integer values/.test(e.message),
    );
    assert.ok(onnxCounts(int64s).int64 > ONNX_DECODE_LIMITS.int64);
    // Under the bounds a real model opens as before.
    const ok = denseModel({ dims: [2, 1], dataType: DataType.FLOAT, floatData: [1, 2] });
    assert.deepEqual(onnxCounts(ok), { nodes: 2, tensors: 1, elements: 22, int64: 2 });
    assert.equal(fromOnnx(ok).network.inputs, 2);
  });

  it('metadata is read from the top-level fields without decoding the graph', () => {
    // Before: onnxMetadata decoded the whole model (a 4 MB file of empty nodes took 860 MB), and a
    // graph it could not decode made the metadata unreadable.
    const m = withGraph(Buffer.from([0x0a, 0x05, 0x01])); // a node whose length runs past its graph
    assert.deepEqual(onnxMetadata(m), { 'bulwark.label': 'y' });
    assert.throws(
      () => onnxMetadata(Buffer.concat([HEAD, empties(14, 10_001)])),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_ONNX_INVALID') && /more than 10000 metadata entries/.test(e.message),
    );
    assert.throws(
      () => onnxMetadata(Buffer.from([0x72, 0x7f, 0x00])),
      (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID') && /length runs past the end/.test(e.message),
    );
  });

  it('dims that are not sizes are ERR_ONNX_INVALID, and no tensor is allocated before its data is checked', async () => {
    for (const [dims, what] of [
      [[-2, 1], /dimension -2 of \[-2, 1\] is not a size/],
      [[-2, -1], /dimension -2/],
      [[2 ** 40, 2 ** 40], /hold more values than any tensor can/],
    ] as const) {
      // Before: RangeError "Invalid typed array length" (ERR_INTERNAL), or a -2-feature layer.
      assert.throws(
        () => fromOnnx(denseModel({ dims, dataType: DataType.FLOAT, floatData: [1, 2] })),
        (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID') && what.test(e.message),
        String(dims),
      );
    }
    // 2^31 values declared, two given: refused by their count (ERR_SHAPE_MISMATCH), not after
    // allocating 16 GB of doubles for them.
    assert.throws(
      () => fromOnnx(denseModel({ dims: [2 ** 31, 1], dataType: DataType.FLOAT, floatData: [1, 2] })),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_SHAPE_MISMATCH') && /2 values, dims say 2147483648/.test(e.message),
    );
    const file = join(dir, 'neg.onnx');
    writeFileSync(file, denseModel({ dims: [-2, 1], dataType: DataType.FLOAT, floatData: [1, 2] }));
    writeFileSync(join(dir, 'ab.csv'), 'a,b\n1,2\n');
    const r = await runBulwarkInProcess([
      'predict',
      '--model',
      file,
      '--data',
      join(dir, 'ab.csv'),
      '--engine',
      'bulwark',
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_ONNX_INVALID: tensor "W": dimension -2/);
  });

  it("ONNX Runtime's refusal is one short error: no log lines of its own, no megabyte message", () => {
    // A node with 300,000 empty inputs (under every bound): ONNX Runtime's message lists them all.
    const node = Buffer.concat([field(4, Buffer.from('Relu')), empties(1, 300_000)]);
    const model = withGraph(field(1, node));
    const file = join(dir, 'wide-node.onnx');
    writeFileSync(file, model);
    // In a process of its own: ONNX Runtime logs to file descriptor 2, not through process.stderr.
    const script = `
      import { readFileSync } from 'node:fs';
      import { OnnxRuntimeModel } from ${JSON.stringify(join(ROOT, 'src/ml/onnx/runtime.ts'))};
      try { await OnnxRuntimeModel.create(readFileSync(${JSON.stringify(file)})); process.stdout.write('opened'); }
      catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); }`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { code: string; message: string };
    assert.equal(out.code, 'ERR_ONNX_RUNTIME');
    // Before: 1.2 MB.
    assert.ok(out.message.length < 1200, `${out.message.length} characters`);
    assert.match(out.message, /… \(\d+ characters\)$/);
    // Before: "[E:onnxruntime:, inference_session.cc ...]" in red on stderr, beside Bulwark's own line.
    assert.equal(r.stderr, '');
  });
});
