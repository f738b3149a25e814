import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mlp } from '../../src/ml/index.js';
import {
  adversarialTrain,
  apgd,
  apgdAsync,
  benignStreams,
  fgsm,
  fgsmAsync,
  type GradientModel,
  InputDomain,
  networkModel,
  PradaDetector,
  pgd,
  pgdAsync,
  type QueryStream,
  StatefulDetector,
  square,
} from '../../src/robust/index.js';
import { eventLoopProbe } from '../helpers/turns.js';
import { blobs, trainedMlp } from './helpers.js';

// `bulwark evaluate` ran each attack over all rows without a turn of the event loop (seconds), and
// `bulwark model fit-detectors` each stream calibration (tens of seconds on large inputs): SIGTERM
// waited for the end. Each check blocks in one step (a gradient pass, a stream, a batch) for longer
// than the interval between turns and asks, at the next step, whether the event loop ran in between.

const d = 6;
const classes = 3;
const data = blobs(300, d, classes, 7);

/** The model, blocking in its first gradient pass and recording whether the loop ran before the second. */
function probed(model: GradientModel): { model: GradientModel; ranBeforeSecond: () => boolean | undefined } {
  const probe = eventLoopProbe();
  let calls = 0;
  let ran: boolean | undefined;
  return {
    model: {
      ...model,
      gradient: (x, rows, lossGrad) => {
        calls++;
        if (calls === 1) probe.block();
        if (calls === 2) ran = probe.ran;
        return model.gradient(x, rows, lossGrad);
      },
    },
    ranBeforeSecond: () => ran,
  };
}

describe('evasion attacks give the event loop a turn', async () => {
  const net = await trainedMlp(data, d, classes, { epochs: 5 });
  const domain = InputDomain.box(d);
  const x = data.x.subarray(0, 40 * d);
  const y = data.y.subarray(0, 40);

  it('pgdAsync without an engine: between gradient passes, the same result as pgd', async () => {
    const o = { eps: 0.1, domain, steps: 5, restarts: 2, seed: 3, batchSize: 16 };
    const p = probed(networkModel(net));
    const r = await pgdAsync(p.model, x, y, 40, o);
    assert.equal(p.ranBeforeSecond(), true, 'the event loop ran between two gradient passes');
    assert.deepEqual(r, pgd(networkModel(net), x, y, 40, o));
  });

  it('fgsmAsync: between batches, the same result as fgsm', async () => {
    const o = { eps: 0.1, domain, batchSize: 16 };
    const p = probed(networkModel(net));
    const r = await fgsmAsync(p.model, x, y, 40, o);
    assert.equal(p.ranBeforeSecond(), true, 'the event loop ran between two batches');
    assert.deepEqual(r, fgsm(networkModel(net), x, y, 40, o));
  });

  it('apgdAsync: between steps, the same result as apgd', async () => {
    const o = { eps: 0.1, domain, steps: 10, restarts: 2, seed: 4, batchSize: 16 };
    const p = probed(networkModel(net));
    const r = await apgdAsync(p.model, x, y, 40, o);
    assert.equal(p.ranBeforeSecond(), true, 'the event loop ran between two steps');
    assert.deepEqual(r, apgd(networkModel(net), x, y, 40, o));
  });

  it('square with a synchronous model: between queries, the same result', async () => {
    const o = { eps: 0.1, domain, queries: 40, seed: 5 };
    const probe = eventLoopProbe();
    let calls = 0;
    let ran: boolean | undefined;
    const base = networkModel(net);
    const model = {
      ...base,
      // Synchronous answers: an await on them never leaves the turn.
      predictProba: (q: Float32Array, rows: number) => {
        calls++;
        if (calls === 1) probe.block();
        // Calls 2 and 3: the random start and the first proposal of the search.
        if (calls === 3) ran = probe.ran;
        return base.predictProba(q, rows);
      },
    };
    const r = await square(model, x, y, 40, o);
    assert.ok(calls > 3, 'the search made proposals');
    assert.equal(ran, true, 'the event loop ran between two queries');
    assert.deepEqual(r, await square(networkModel(net), x, y, 40, o));
  });
});

describe('stream detectors calibrate with turns of the event loop', () => {
  const streams = benignStreams(data.x, data.rows, d, 6, 120, 5, data.y);

  /** Blocks while scoring the first stream; records whether the loop ran before the next one. */
  function probing<T extends { scoreStream(s: QueryStream): Float64Array }>(det: T) {
    const probe = eventLoopProbe();
    let calls = 0;
    let ran: boolean | undefined;
    const score = det.scoreStream.bind(det);
    det.scoreStream = (s) => {
      calls++;
      if (calls === 1) probe.block();
      if (calls === 2) ran = probe.ran;
      return score(s);
    };
    return () => ran;
  }

  it('StatefulDetector.calibrateAsync: between streams, the same calibration and scores', async () => {
    const make = () => new StatefulDetector({ inputs: d, k: 10, history: 100 }).fit(data.x, data.rows);
    const det = make();
    const ranBeforeSecond = probing(det);
    const cal = await det.calibrateAsync(streams, 0.2);
    assert.equal(ranBeforeSecond(), true, 'the event loop ran between two streams');
    const sync = make();
    assert.deepEqual(cal, sync.calibrate(streams, 0.2));
    assert.deepEqual(det.scoreStream(streams[0] as QueryStream), sync.scoreStream(streams[0] as QueryStream));
  });

  it('PradaDetector.calibrateAsync: between streams, the same calibration', async () => {
    const make = () => new PradaDetector({ inputs: d, classes, minQueries: 20 }).fit(data.x, data.rows);
    const det = make();
    const ranBeforeSecond = probing(det);
    const cal = await det.calibrateAsync(streams, 0.2);
    assert.equal(ranBeforeSecond(), true, 'the event loop ran between two streams');
    assert.deepEqual(cal, make().calibrate(streams, 0.2));
  });
});

describe('adversarial training gives the event loop a turn within an epoch', () => {
  it('between two batches, with the same weights', async () => {
    // Its only turn was at the end of an epoch; its awaits (on ONNX Runtime) may resolve without one.
    const o = { method: 'pgd' as const, eps: 0.1, steps: 2, domain: InputDomain.box(d), epochs: 1 };
    const probe = eventLoopProbe();
    let ranBeforeBatch2: boolean | undefined;
    const net = mlp({ inputs: d, hidden: [8], classes, rng: 5 });
    await adversarialTrain(net, data, {
      ...o,
      batchSize: 50,
      seed: 2,
      onProgress: (p) => {
        if (p.phase !== 'batch') return;
        if (p.batch === 1) probe.block();
        if (p.batch === 2) ranBeforeBatch2 = probe.ran;
      },
    });
    assert.equal(ranBeforeBatch2, true, 'the event loop ran between two batches of one epoch');
    const reference = mlp({ inputs: d, hidden: [8], classes, rng: 5 });
    await adversarialTrain(reference, data, { ...o, batchSize: 50, seed: 2 });
    assert.deepEqual(net.params, reference.params);
  });
});
