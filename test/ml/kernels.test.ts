import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import {
  argmaxRows,
  colSums,
  gemm,
  gemmBackend,
  gemmJs,
  logSumExp,
  logSumExpRows,
  setGemmBackend,
  setThreads,
  softmaxRows,
  transpose,
} from '../../src/ml/kernels.js';
import { GEMM_WASM_BASE64, GEMM_WASM_SHAPE } from '../../src/ml/wasm/gemm-bytes.js';
import { compileGemmWasm } from './compile-wasm.js';

/** Naive triple loop in double precision: the reference. */
function naive(tA: boolean, tB: boolean, m: number, n: number, k: number, a: Float32Array, b: Float32Array) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = tA ? a[p * m + i]! : a[i * k + p]!;
        const bv = tB ? b[j * k + p]! : b[p * n + j]!;
        s += av * bv;
      }
      c[i * n + j] = s;
    }
  return c;
}

function rand(rng: SeededRng, n: number): Float32Array {
  return rng.fillUniform(new Float32Array(n), -1, 1);
}

describe('gemm', () => {
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [3, 5, 7],
    [4, 16, 8],
    [17, 33, 19],
    [64, 10, 100],
    [130, 257, 31],
    [5, 300, 2],
    [50, 1, 70],
    [40, 2, 33],
  ];
  for (const backend of ['auto', 'js'] as const) {
    for (const [m, n, k] of shapes) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          it(`${backend} ${m}x${n}x${k} tA=${tA} tB=${tB} matches the naive product`, () => {
            const rng = new SeededRng(m * 1000 + n * 10 + k);
            const a = rand(rng, m * k);
            const b = rand(rng, k * n);
            const c0 = rand(rng, m * n);
            const ref = naive(tA, tB, m, n, k, a, b);
            setGemmBackend(backend);
            try {
              const c = new Float32Array(m * n).fill(Number.NaN);
              gemm(tA, tB, m, n, k, a, b, c);
              const acc = c0.slice();
              gemm(tA, tB, m, n, k, a, b, acc, true);
              for (let i = 0; i < m * n; i++) {
                assert.ok(Math.abs(c[i]! - ref[i]!) <= 1e-5 * (k + 1), `c[${i}] ${c[i]} vs ${ref[i]}`);
                assert.ok(Math.abs(acc[i]! - (ref[i]! + c0[i]!)) <= 1e-5 * (k + 2), `acc[${i}]`);
              }
            } finally {
              setGemmBackend('auto');
            }
          });
        }
      }
    }
  }

  for (const t of [1, 2, 3]) {
    it(`splits large products over ${t} thread(s) with the same result`, () => {
      setThreads(t);
      try {
        for (const [m, n, k, tA, tB] of [
          [67, 300, 70, false, false],
          [130, 90, 120, true, false],
          [98, 140, 100, false, true],
        ] as Array<[number, number, number, boolean, boolean]>) {
          const rng = new SeededRng(m + n + k);
          const a = rand(rng, m * k);
          const b = rand(rng, k * n);
          const ref = naive(tA, tB, m, n, k, a, b);
          const c = new Float32Array(m * n);
          gemm(tA, tB, m, n, k, a, b, c);
          for (let i = 0; i < m * n; i++)
            assert.ok(Math.abs(c[i]! - ref[i]!) <= 1e-5 * k, `c[${i}] ${c[i]} vs ${ref[i]}`);
        }
      } finally {
        setThreads(2);
      }
    });
  }

  it('uses WebAssembly SIMD on Node 20', () => {
    assert.equal(gemmBackend(), 'wasm-simd');
  });

  it('the committed kernel bytes are those compiled from gemm-wat.ts', async () => {
    const bytes = await compileGemmWasm(GEMM_WASM_SHAPE);
    assert.equal(Buffer.from(bytes).toString('base64'), GEMM_WASM_BASE64, 'run scripts/build-ml-wasm.ts');
  });

  it('the wasm and js paths agree on a training-sized product', () => {
    const rng = new SeededRng(7);
    const [m, n, k] = [128, 256, 784];
    const a = rand(rng, m * k);
    const b = rand(rng, k * n);
    const c1 = new Float32Array(m * n);
    const c2 = new Float32Array(m * n);
    gemm(false, false, m, n, k, a, b, c1);
    gemmJs(false, false, m, n, k, a, b, c2);
    for (let i = 0; i < m * n; i++) assert.ok(Math.abs(c1[i]! - c2[i]!) < 1e-3);
  });

  it('rejects operands of the wrong length with ERR_SHAPE_MISMATCH', () => {
    assert.throws(
      () => gemm(false, false, 2, 2, 2, new Float32Array(4), new Float32Array(3), new Float32Array(4)),
      (e) => isBulwarkError(e, 'ERR_SHAPE_MISMATCH') && /^b: expected 4 elements, got 3/.test(e.message),
    );
  });
});

describe('softmax and log-sum-exp', () => {
  it('are stable for large and very negative logits', () => {
    const x = new Float32Array([1000, 1001, 1002, -1000, -1001, -1002]);
    const p = softmaxRows(x, 2, 3);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const z = e[0]! + e[1]! + e[2]!;
    for (let j = 0; j < 3; j++) {
      assert.ok(Math.abs(p[j]! - e[j]! / z) < 1e-6);
      assert.ok(Math.abs(p[3 + 2 - j]! - e[j]! / z) < 1e-6);
    }
    const lse = logSumExpRows(x, 2, 3);
    assert.ok(Math.abs(lse[0]! - (1002 + Math.log(z))) < 1e-9);
    assert.ok(Math.abs(lse[1]! - (-1000 + Math.log(z))) < 1e-9);
    assert.equal(logSumExp([-Infinity, -Infinity]), -Infinity);
    assert.ok(Math.abs(logSumExp([0, 0]) - Math.LN2) < 1e-15);
  });
});

describe('reductions and layout', () => {
  it('colSums, argmaxRows and transpose', () => {
    const x = new Float32Array([1, 5, 3, 7, 2, 9]);
    assert.deepEqual([...colSums(x, 2, 3)], [8, 7, 12]);
    assert.deepEqual([...argmaxRows(x, 2, 3)], [1, 2]);
    assert.deepEqual([...transpose(x, 2, 3)], [1, 7, 5, 2, 3, 9]);
  });
});
