import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import { Network } from '../../src/ml/network.js';
import { toOnnx } from '../../src/ml/onnx/export.js';

/**
 * The reference implementation validates what we export: `onnx.checker.check_model(full_check=True)`
 * (structure, operator schemas at the declared opset, and strict shape inference) from Debian's
 * python3-onnx (scripts/system-deps.txt). Skipped, saying so, where that module is missing.
 */
const PYTHON = process.env['BULWARK_PYTHON'] ?? '/usr/bin/python3';
const hasOnnx = spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;

describe('exported ONNX passes the onnx reference checker', () => {
  it('every kind of model we export', {
    skip: hasOnnx ? false : `${PYTHON} has no onnx module (apt-get install python3-onnx)`,
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-onnx-check-'));
    const rng = new SeededRng(1);
    const files: string[] = [];
    const specs = [
      { hidden: [], classes: 2, activation: 'relu' as const, prep: true },
      { hidden: [], classes: 4, activation: 'relu' as const, prep: false },
      { hidden: [8, 4], classes: 3, activation: 'tanh' as const, prep: true },
      { hidden: [5], classes: 2, activation: 'tempered-sigmoid' as const, prep: false },
      { hidden: [5], classes: 3, activation: 'sigmoid' as const, prep: false },
    ];
    specs.forEach((s, i) => {
      const net = new Network({
        inputs: 6,
        hidden: s.hidden,
        classes: s.classes,
        activation: s.activation,
        rng: i,
        preprocessing: s.prep
          ? {
              kind: 'sub-div',
              sub: rng.fillNormal(new Float32Array(6)),
              div: rng.fillUniform(new Float32Array(6), 1, 2),
            }
          : null,
      });
      const f = join(dir, `m${i}.onnx`);
      writeFileSync(f, toOnnx(net));
      files.push(f);
    });
    const script = [
      'import sys, onnx',
      'for f in sys.argv[1:]:',
      '    m = onnx.load(f)',
      '    onnx.checker.check_model(m, full_check=True)',
      '    print("ok", f, m.opset_import[0].version, m.ir_version)',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script, ...files], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('ok ')).length,
      files.length,
    );
  });
});
