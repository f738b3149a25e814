import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { assertModelSafe, protectModel, scanModel } from '../../src/model/index.js';
import { FIXTURE_ONNX, makeKeyring, tempDir } from './helpers.js';

const PY = '/usr/bin/python3';
const t = tempDir('model-scan');
const PWNED = join(t.dir, 'PWNED');

function python(script: string): string {
  const r = spawnSync(PY, ['-c', script], { cwd: t.dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

// A class whose unpickling runs os.system (the classic payload); protocols 0-5, plain and inside
// a PyTorch-style zip archive and a gzip-compressed joblib-style file.
const MAKE = `
import os, pickle, gzip, zipfile, collections, json, pickletools
class Payload:
    def __reduce__(self):
        return (os.system, (${JSON.stringify(`echo pwned > ${PWNED}`)},))
report = {}
for proto in range(6):
    data = pickle.dumps({'weights': [0.5, 1.5], 'x': Payload()}, protocol=proto)
    open(f'evil{proto}.pkl', 'wb').write(data)
    ops = [op.name for op, arg, pos in pickletools.genops(data)]
    report[f'evil{proto}.pkl'] = {'imports': sum(o in ('GLOBAL', 'STACK_GLOBAL', 'INST') for o in ops),
                                 'calls': sum(o in ('REDUCE', 'NEWOBJ', 'NEWOBJ_EX', 'OBJ', 'INST') for o in ops)}
with zipfile.ZipFile('evil.pt', 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps(collections.OrderedDict(w=Payload()), protocol=2))
    z.writestr('archive/version', '3\\n')
    z.writestr('archive/data/0', b'\\0' * 16)
with zipfile.ZipFile('benign.pth', 'w', compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr('archive/data.pkl', pickle.dumps(collections.OrderedDict(w=[1.0, 2.0]), protocol=2))
open('evil.joblib', 'wb').write(gzip.compress(pickle.dumps([Payload()], protocol=4)))
print(json.dumps(report))
`;

const MAKE_ONNX = `
import onnx
from onnx import helper, TensorProto
def model(location):
    w = TensorProto(); w.name = 'W'; w.data_type = TensorProto.FLOAT; w.dims.extend([2, 2])
    w.data_location = TensorProto.EXTERNAL
    e = w.external_data.add(); e.key = 'location'; e.value = location
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2])
    g = helper.make_graph([helper.make_node('MatMul', ['x', 'W'], ['y'])], 'g', [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
open('abs.onnx', 'wb').write(model('/etc/passwd').SerializeToString())
open('up.onnx', 'wb').write(model('../../secret.bin').SerializeToString())
open('link.onnx', 'wb').write(model('link.bin').SerializeToString())
open('inside.onnx', 'wb').write(model('weights.bin').SerializeToString())
open('weights.bin', 'wb').write(b'\\0' * 16)
`;

let peer: Record<string, { imports: number; calls: number }>;
let hasOnnx = true;

before(() => {
  peer = JSON.parse(python(MAKE));
  hasOnnx = spawnSync(PY, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;
  if (hasOnnx) {
    python(MAKE_ONNX);
    symlinkSync('/etc/hostname', join(t.dir, 'link.bin'));
  }
});

after(() => t.cleanup());

describe('model scan: pickle-based formats', () => {
  for (let proto = 0; proto <= 5; proto++) {
    it(`finds the os.system payload in a protocol ${proto} pickle without running it`, async () => {
      const f = join(t.dir, `evil${proto}.pkl`);
      const r = await scanModel(f);
      assert.equal(r.format, 'pickle');
      assert.equal(r.safe, false);
      const sys = r.imports.filter((i) => i.name === 'system' && (i.module === 'posix' || i.module === 'os'));
      assert.equal(sys.length, 1, JSON.stringify(r.imports));
      assert.equal(sys[0]!.severity, 'critical');
      assert.equal(sys[0]!.opcode, proto >= 4 ? 'STACK_GLOBAL' : 'GLOBAL');
      // The same counts as CPython's pickletools (a peer that only disassembles).
      assert.equal(r.imports.length, peer[`evil${proto}.pkl`]!.imports);
      assert.equal(r.calls, peer[`evil${proto}.pkl`]!.calls);
      assert.match(r.findings[0]!.message, /system/);
      assert.equal(existsSync(PWNED), false, 'the payload ran');
    });
  }

  it('refuses a PyTorch zip archive and names the pickle member', async () => {
    const r = await scanModel(join(t.dir, 'evil.pt'));
    assert.equal(r.format, 'pytorch-zip');
    assert.equal(r.safe, false);
    assert.ok(r.imports.some((i) => i.name === 'system' && i.entry === 'archive/data.pkl'));
    await assert.rejects(assertModelSafe(join(t.dir, 'evil.pt')), (e: unknown) =>
      isBulwarkError(e, 'ERR_MODEL_UNSAFE'),
    );
    assert.equal(existsSync(PWNED), false);
  });

  it('refuses even a benign pickle (loading it could run code), listing its harmless imports as info', async () => {
    const r = await scanModel(join(t.dir, 'benign.pth'));
    assert.equal(r.safe, false);
    assert.deepEqual(
      r.imports.map((i) => [i.module, i.name, i.severity]),
      [['collections', 'OrderedDict', 'info']],
    );
    assert.equal(r.findings[0]!.severity, 'high');
  });

  it('looks inside gzip-compressed joblib files', async () => {
    const r = await scanModel(join(t.dir, 'evil.joblib'));
    assert.equal(r.format, 'joblib');
    assert.ok(r.imports.some((i) => i.name === 'system' && i.severity === 'critical'));
    assert.equal(existsSync(PWNED), false);
  });

  it('the payload is real: CPython unpickling it does create the file (run last)', () => {
    python(`import pickle; pickle.loads(open('evil2.pkl','rb').read())`);
    assert.equal(existsSync(PWNED), true);
  });
});

describe('model scan: ONNX', () => {
  it('accepts a self-contained ONNX model', async () => {
    const r = await scanModel(FIXTURE_ONNX);
    assert.equal(r.format, 'onnx');
    assert.equal(r.safe, true);
  });

  it('refuses external data with absolute paths, .. or links out of the folder', async (c) => {
    if (!hasOnnx) return c.skip('python onnx not available');
    for (const [f, re] of [
      ['abs.onnx', /absolute path/],
      ['up.onnx', /climbs out/],
      ['link.onnx', /outside the model folder/],
    ] as const) {
      const r = await scanModel(join(t.dir, f));
      assert.equal(r.format, 'onnx');
      assert.equal(r.safe, false, f);
      assert.match(r.findings[0]!.message, re);
    }
    const ok = await scanModel(join(t.dir, 'inside.onnx'));
    assert.equal(ok.safe, true);
    assert.match(ok.findings[0]!.message, /external data "weights.bin"/);
    // Every Bulwark command refuses it (they open models from memory): the scan says so.
    assert.equal(ok.findings[0]!.severity, 'medium');
    assert.match(ok.findings[0]!.message, /Bulwark's commands refuse it/);
  });

  it('a package never holds external data', async (c) => {
    if (!hasOnnx) return c.skip('python onnx not available');
    const kr = await makeKeyring(join(t.dir, 'kr.json'));
    try {
      await assert.rejects(
        protectModel(join(t.dir, 'inside.onnx'), join(t.dir, 'x.bwm'), {
          keyring: kr,
          name: 'x',
          version: '1',
        }),
        (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID'),
      );
    } finally {
      await kr.close();
    }
  });

  it('refuses files it does not recognise', async () => {
    mkdirSync(join(t.dir, 'u'), { recursive: true });
    writeFileSync(join(t.dir, 'u', 'x.txt'), 'hello');
    await assert.rejects(scanModel(join(t.dir, 'u', 'x.txt')), (e: unknown) =>
      isBulwarkError(e, 'ERR_FORMAT_UNSUPPORTED'),
    );
  });
});
