import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitLbfgs, fitLbfgsAsync, minimizeLbfgs, type Objective } from '../../src/ml/lbfgs.js';
import { logisticRegression } from '../../src/ml/network.js';
import { eventLoopProbe } from '../helpers/turns.js';

/*
 * Reference coefficients from scikit-learn 1.2.1 (Debian python3-sklearn), computed once by
 * /usr/bin/python3 on exactly this data:
 *   n, d = 200, 3;  X[i][j] = 2 sin(0.37 i (j + 1)) + 0.1 j   (then cast to float32)
 *   binary:       y = [X0 + 0.5 X1 - X2 + 0.8 sin(1.7 i) > 0]
 *   multinomial:  y = [X0 - X2 + 0.8 sin(1.3 i) > 0.7] + [X1 + 0.5 cos(0.9 i) > 0.5]
 *   LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(X, y)  -> coef_, intercept_
 * Our objective is the mean loss + (l2 / 2) ||W||², i.e. scikit-learn's divided by C n: l2 = 1 / (C n).
 */
const n = 200;
const d = 3;
const X = new Float32Array(n * d);
for (let i = 0; i < n; i++)
  for (let j = 0; j < d; j++) X[i * d + j] = 2 * Math.sin(i * (j + 1) * 0.37) + 0.1 * j;
const x = (i: number, j: number) => 2 * Math.sin(i * (j + 1) * 0.37) + 0.1 * j;
const yb = Int32Array.from({ length: n }, (_, i) =>
  x(i, 0) + 0.5 * x(i, 1) - x(i, 2) + 0.8 * Math.sin(i * 1.7) > 0 ? 1 : 0,
);
const ym = Int32Array.from(
  { length: n },
  (_, i) =>
    (x(i, 0) - x(i, 2) + 0.8 * Math.sin(i * 1.3) > 0.7 ? 1 : 0) +
    (x(i, 1) + 0.5 * Math.cos(i * 0.9) > 0.5 ? 1 : 0),
);
const l2 = 1 / (0.5 * n);

describe('L-BFGS logistic regression matches scikit-learn lbfgs', () => {
  it('binary', () => {
    const net = logisticRegression({ inputs: d, classes: 2 });
    const r = fitLbfgs(net, { x: X, y: yb, rows: n }, { l2, gradientTolerance: 1e-7 });
    assert.ok(r.iterations > 3 && r.iterations < 200, `iterations ${r.iterations} (${r.reason})`);
    const w = net.weights(0);
    const ref = [1.6189544960523972, 0.9820315536938, -1.742120753066723];
    for (let j = 0; j < d; j++) assert.ok(Math.abs(w[j]! - ref[j]!) < 2e-4, `w[${j}] ${w[j]} vs ${ref[j]}`);
    assert.ok(Math.abs(net.bias(0)[0]! - -0.05700493824792512) < 2e-4);
  });

  it('applies the model preprocessing once and restores it (identity scaling: same coefficients)', () => {
    const prep = { kind: 'sub-div' as const, sub: new Float32Array(d), div: new Float32Array(d).fill(1) };
    const net = logisticRegression({ inputs: d, classes: 2, preprocessing: prep });
    fitLbfgs(net, { x: X, y: yb, rows: n }, { l2, gradientTolerance: 1e-7 });
    assert.equal(net.preprocessing, prep);
    assert.ok(Math.abs(net.weights(0)[0]! - 1.6189544960523972) < 2e-4);
  });

  it('multinomial (weights unique under L2; intercepts up to a common shift)', () => {
    const net = logisticRegression({ inputs: d, classes: 3 });
    const r = fitLbfgs(net, { x: X, y: ym, rows: n }, { l2, gradientTolerance: 1e-7 });
    assert.notEqual(r.reason, 'max-iterations');
    const coef = [
      [-0.6334770262671193, -1.4385683802634242, 0.9777405150579074],
      [-0.1368065364710732, -0.008526836917101656, 0.12475135557799352],
      [0.7702835627381937, 1.4470952171805251, -1.1024918706359002],
    ];
    const intercept = [0.5736378100491499, 1.7286780199336385, -2.30231582998279];
    const w = net.weights(0); // d x classes
    for (let c = 0; c < 3; c++)
      for (let j = 0; j < d; j++)
        assert.ok(
          Math.abs(w[j * 3 + c]! - coef[c]![j]!) < 5e-4,
          `W[${j},${c}] ${w[j * 3 + c]} vs ${coef[c]![j]}`,
        );
    const b = net.bias(0);
    const mb = (b[0]! + b[1]! + b[2]!) / 3;
    const mr = (intercept[0]! + intercept[1]! + intercept[2]!) / 3;
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(b[c]! - mb - (intercept[c]! - mr)) < 5e-4);
  });
});

describe('minimizeLbfgs (float64 objectives)', () => {
  const exact = {
    gradientTolerance: 1e-9,
    maxIterations: 1000,
    memory: 10,
    progressTolerance: 1e-16,
    progressGradient: Math.sqrt(1e-9),
    lineSearchSteps: 60,
    minCurvature: 1e-300,
  };

  const rosenbrock: Objective = (x, g) => {
    const [a, b] = [x[0]!, x[1]!];
    g[0] = -400 * a * (b - a * a) - 2 * (1 - a);
    g[1] = 200 * (b - a * a);
    return 100 * (b - a * a) ** 2 + (1 - a) ** 2;
  };

  it('finds the minimum of Rosenbrock’s function from the classic start (-1.2, 1)', () => {
    const r = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), exact);
    assert.equal(r.reason, 'gradient');
    assert.ok(Math.abs(r.x[0]! - 1) < 1e-8 && Math.abs(r.x[1]! - 1) < 1e-8, `${r.x}`);
    assert.ok(r.gradMax <= 1e-9);
  });

  it('solves an ill-conditioned quadratic exactly: x* = A⁻¹ b', () => {
    // A = diag(1, 10, 100, 1000) + 0.5 (all-ones): condition number about 1,000; checked by A x* = b.
    const n = 4;
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) A[i * n + j] = 0.5;
      A[i * n + i] = 10 ** i + 0.5;
    }
    const b = Float64Array.from([1, -2, 3, -4]);
    /** Row i of A x. */
    const ax = (i: number, x: Float64Array) => {
      let s = 0;
      for (let j = 0; j < n; j++) s += A[i * n + j]! * x[j]!;
      return s;
    };
    const quad: Objective = (x, g) => {
      let f = 0;
      for (let i = 0; i < n; i++) {
        const r = ax(i, x);
        g[i] = r - b[i]!;
        f += 0.5 * x[i]! * r - b[i]! * x[i]!;
      }
      return f;
    };
    const r = minimizeLbfgs(quad, new Float64Array(n), exact);
    assert.notEqual(r.reason, 'max-iterations');
    for (let i = 0; i < n; i++)
      assert.ok(Math.abs(ax(i, r.x) - b[i]!) < 1e-8, `row ${i}: ${ax(i, r.x)} vs ${b[i]}`);
  });

  it('stops at the iteration limit and says so', () => {
    const r = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), { ...exact, maxIterations: 3 });
    assert.equal(r.reason, 'max-iterations');
    assert.equal(r.iterations, 3);
  });
});

describe('L-BFGS and signals', () => {
  it('fitLbfgsAsync gives the event loop a turn between iterations, with the same result', async () => {
    // `bulwark train --solver lbfgs` ran the whole fit without a turn: SIGTERM waited for the end.
    const probe = eventLoopProbe();
    let ranBeforeIteration2: boolean | undefined;
    const o = { l2, gradientTolerance: 1e-7 };
    const net = logisticRegression({ inputs: d, classes: 3 });
    const r = await fitLbfgsAsync(
      net,
      { x: X, y: ym, rows: n },
      {
        ...o,
        onIteration: (it) => {
          if (it === 1) probe.block();
          if (it === 2) ranBeforeIteration2 = probe.ran;
        },
      },
    );
    assert.equal(ranBeforeIteration2, true, 'the event loop ran between two iterations');
    const sync = logisticRegression({ inputs: d, classes: 3 });
    assert.deepEqual(r, fitLbfgs(sync, { x: X, y: ym, rows: n }, o));
    assert.deepEqual(net.params, sync.params);
  });
});
