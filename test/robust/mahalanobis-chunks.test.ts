/**
 * MahalanobisDetector scores large sets (calibration) in chunks of rows with turns of the event loop
 * between them (src/ml/turns.ts), so SIGTERM is handled during a calibration: the scores, and so the
 * calibrated threshold, must be bit-identical to scoring all rows in one step, on both GEMM back ends,
 * for input and hidden-layer features.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventLoopTurns, mlp, setGemmBackend } from '../../src/ml/index.js';
import { conformalThreshold, MahalanobisDetector } from '../../src/robust/index.js';
import { blobs } from './helpers.js';

const sameBits = (a: Float64Array, b: Float64Array, what: string): void => {
  assert.equal(a.length, b.length, what);
  assert.ok(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ),
    what,
  );
};

describe('MahalanobisDetector.scoreAsync / calibrate in chunks', () => {
  const D = 20;
  const fitSet = blobs(600, D, 3, 11);
  // 1999 rows: eight chunks of 256 rows at 20 features, the last one taking the 207 left over.
  const held = blobs(1999, D, 3, 12);

  for (const backend of ['auto', 'js'] as const) {
    it(`gives the scores of one step, bit for bit (input features, ${backend} GEMM)`, async () => {
      setGemmBackend(backend);
      try {
        const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
        const whole = det.scoreSync(held.x, held.rows).scores;
        sameBits(await det.scoreAsync(held.x, held.rows, new EventLoopTurns(0)), whole, 'scores');
        const cal = await det.calibrate(held.x, held.rows, 0.05);
        assert.deepEqual(cal, conformalThreshold(whole, 0.05));
        // Fewer rows than two chunks: one step, the same as before.
        sameBits(
          await det.scoreAsync(held.x.subarray(0, 300 * D), 300),
          det.scoreSync(held.x.subarray(0, 300 * D), 300).scores,
          '300 rows',
        );
      } finally {
        setGemmBackend('auto');
      }
    });

    it(`gives the scores of one step, bit for bit (hidden-layer features, ${backend} GEMM)`, async () => {
      setGemmBackend(backend);
      try {
        const net = mlp({ inputs: D, hidden: [24, 12], classes: 3, activation: 'relu', rng: 7 });
        const det = await new MahalanobisDetector({ layer: 1, network: net }).fit(
          fitSet.x,
          fitSet.rows,
          fitSet.y,
        );
        const whole = det.scoreSync(held.x, held.rows).scores;
        sameBits(await det.scoreAsync(held.x, held.rows, new EventLoopTurns(0)), whole, 'scores');
      } finally {
        setGemmBackend('auto');
      }
    });
  }

  it('gives the scores of one step where the whole runs on two threads and a chunk on one (60 features)', async () => {
    // 256 rows x 60 x 60 is under the kernel's threading threshold (2^20 multiply-adds), 1999 rows over.
    const W = 60;
    const f = blobs(400, W, 3, 13);
    const h = blobs(1999, W, 3, 14);
    const det = await new MahalanobisDetector().fit(f.x, f.rows, f.y);
    sameBits(await det.scoreAsync(h.x, h.rows), det.scoreSync(h.x, h.rows).scores, 'scores');
  });

  it('gives the event loop a turn between chunks when one is due', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    let ticks = 0;
    let on = true;
    const tick = (): void => {
      ticks++;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    // A turn is due at every step with a 0 ms interval: the 7 turns between the 8 chunks run the ticks.
    await det.scoreAsync(held.x, held.rows, new EventLoopTurns(0));
    on = false;
    assert.ok(ticks >= 7, `${ticks} turns`);
  });

  it('validates rows and the width of x', async () => {
    const det = await new MahalanobisDetector().fit(fitSet.x, fitSet.rows, fitSet.y);
    await assert.rejects(det.scoreAsync(held.x, 0), /rows/);
    await assert.rejects(det.scoreAsync(held.x.subarray(0, 7), 2), /x: expected a multiple of rows/);
    await assert.rejects(new MahalanobisDetector().scoreAsync(held.x, held.rows), /call fit\(\)/);
  });
});
