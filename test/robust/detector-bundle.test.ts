/**
 * Detector bundles (src/robust/defences/detector/bundle.ts): fitting on a seeded split, saving with the
 * checks that keep a detector that flags nothing or fits another model out of a package, and loading
 * with the same checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { mlp } from '../../src/ml/index.js';
import {
  type DetectorBundleJson,
  detectorBundleToJson,
  fitDetectorBundle,
  loadDetectorBundle,
  MahalanobisDetector,
  StatefulDetector,
} from '../../src/robust/index.js';
import { blobs } from './helpers.js';

const D = 5;
const data = blobs(600, D, 3, 2);
const rows = (n: number) => [data.x.subarray(0, n * D), data.y.subarray(0, n), n] as const;
const small = { stateful: { k: 5, history: 80 }, prada: { minQueries: 20, window: 100 }, streamLength: 100 };

function throwsCode(f: () => unknown, code: string, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(isBulwarkError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

async function rejectsCode(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBulwarkError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('detector bundle', () => {
  let fitted: DetectorBundleJson;

  it('fits on a seeded split: the same seed gives the same bundle, another seed another split', async () => {
    fitted = await fitDetectorBundle(data.x, data.y, data.rows, { classes: 3, seed: 7, ...small });
    const again = await fitDetectorBundle(data.x, data.y, data.rows, { classes: 3, seed: 7, ...small });
    assert.deepEqual(again, fitted);
    assert.deepEqual(fitted.fittedOn, { fitRows: 300, calibrationRows: 300, seed: 7 });
    assert.deepEqual(Object.keys(fitted.detectors), ['mahalanobis', 'stateful', 'prada']);
    const other = await fitDetectorBundle(data.x, data.y, data.rows, { classes: 3, seed: 8, ...small });
    assert.notDeepEqual(other.detectors.mahalanobis, fitted.detectors.mahalanobis);
    for (const j of Object.values(fitted.detectors)) {
      assert.ok(Number.isFinite(j?.calibration?.threshold), 'every detector calibrated');
      assert.equal(j?.calibration?.fpr, 0.01);
    }
  });

  it('says when a class is absent from the fitted rows, or when there are fewer rows than features', async () => {
    const notes: string[] = [];
    const two = Int32Array.from(data.y, (c) => (c === 2 ? 1 : c)); // class 2 of 3 never appears
    await fitDetectorBundle(data.x, two, data.rows, {
      classes: 3,
      kinds: ['mahalanobis'],
      onNote: (n) => notes.push(n),
    });
    assert.equal(notes.length, 1, notes.join('\n'));
    assert.match(notes[0] as string, /no fitted row of class 2 \(of 300 fitted rows\)/);
    const few: string[] = [];
    await fitDetectorBundle(data.x.subarray(0, 8 * D), data.y.subarray(0, 8), 8, {
      classes: 3,
      kinds: ['mahalanobis'],
      fpr: 0.3,
      onNote: (n) => few.push(n),
    });
    assert.ok(
      few.some((n) => /fitted on 4 rows for 5 features/.test(n)),
      few.join('\n'),
    );
    // Nothing to say on the full data.
    const none: string[] = [];
    await fitDetectorBundle(data.x, data.y, data.rows, {
      classes: 3,
      kinds: ['mahalanobis'],
      onNote: (n) => none.push(n),
    });
    assert.deepEqual(none, []);
  });

  it('fits only the kinds asked for, each at its own rate', async () => {
    const b = await fitDetectorBundle(data.x, data.y, data.rows, {
      classes: 3,
      kinds: ['mahalanobis'],
      fpr: { mahalanobis: 0.05 },
    });
    assert.deepEqual(Object.keys(b.detectors), ['mahalanobis']);
    assert.equal(b.detectors.mahalanobis?.calibration?.fpr, 0.05);
  });

  it('loads what it saved, against the model it was made for, and refuses another', () => {
    const l = loadDetectorBundle(JSON.parse(JSON.stringify(fitted)), { features: D, classes: 3 });
    assert.ok(l.mahalanobis && l.stateful && l.prada);
    assert.equal(l.mahalanobis.width, D);
    throwsCode(
      () => loadDetectorBundle(fitted, { features: D + 1, classes: 3 }),
      'ERR_DETECTOR_STATE',
      /made for 5 features and 3 classes, the model has 6 and 3/,
    );
  });

  it('refuses malformed bundles with ERR_DETECTOR_STATE', () => {
    const cases: [unknown, RegExp][] = [
      [null, /not an object/],
      [{ ...fitted, format: 'bulwark.detector' }, /format is "bulwark.detector"/],
      [{ ...fitted, version: 2 }, /version 2 is not supported/],
      [{ ...fitted, features: 0 }, /features malformed/],
      [{ ...fitted, classes: 1 }, /classes malformed/],
      [{ ...fitted, detectors: {} }, /no detector/],
      [{ ...fitted, detectors: { ...fitted.detectors, squeeze: {} } }, /unknown detector kind "squeeze"/],
      [{ ...fitted, fittedOn: { fitRows: -1, calibrationRows: 3 } }, /fittedOn.fitRows malformed/],
      [{ ...fitted, fittedOn: { fitRows: 1, calibrationRows: 3, datasetDigest: 'md5:1' } }, /datasetDigest/],
      // A detector of another width than the bundle says.
      [
        { ...fitted, features: D + 1 },
        /takes 5 features, the model has 6|scores 5 features, the model has 6/,
      ],
      // PRADA fitted for 3 classes in a bundle that claims 2.
      [{ ...fitted, classes: 2 }, /prada detector was fitted for 3 classes, the model has 2/],
      // An uncalibrated detector (its saved calibration null): it would answer "clean" to everything.
      [
        { ...fitted, detectors: { stateful: { ...fitted.detectors.stateful, calibration: null } } },
        /stateful detector is not calibrated/,
      ],
    ];
    for (const [json, message] of cases)
      throwsCode(() => loadDetectorBundle(json), 'ERR_DETECTOR_STATE', message);
  });

  it('refuses to save what the gateway cannot run or what flags nothing', async () => {
    const net = mlp({ inputs: D, hidden: [4], classes: 3, rng: 1 });
    const hidden = new MahalanobisDetector({ layer: 1, network: net });
    await hidden.fit(data.x, data.rows, data.y);
    await hidden.calibrate(data.x, data.rows, 0.05);
    throwsCode(
      () => detectorBundleToJson({ mahalanobis: hidden }, { features: D, classes: 3 }),
      'ERR_DETECTOR_STATE',
      /hidden layer cannot be bundled/,
    );
    const uncalibrated = new StatefulDetector({ inputs: D }).fit(data.x, data.rows);
    throwsCode(
      () => detectorBundleToJson({ stateful: uncalibrated }, { features: D, classes: 3 }),
      'ERR_DETECTOR_STATE',
      /not calibrated/,
    );
    throwsCode(
      () => detectorBundleToJson({}, { features: D, classes: 3 }),
      'ERR_DETECTOR_STATE',
      /no detector/,
    );
    // 20 calibration rows cannot calibrate a 1 % rate (the threshold would be infinite).
    const few = { x: data.x.subarray(0, 40 * D), y: data.y.subarray(0, 40), rows: 40 };
    await rejectsCode(
      fitDetectorBundle(few.x, few.y, few.rows, { classes: 3, kinds: ['mahalanobis'] }),
      'ERR_DETECTOR_STATE',
      /no finite threshold.*calibrate it on more rows/,
    );
  });

  it('validates its parameters up front, naming them', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ calibrationShare: 1 }, /calibrationShare/],
      [{ calibrationShare: 0 }, /calibrationShare/],
      [{ fpr: 0 }, /fpr\.mahalanobis/],
      [{ kinds: ['squeeze'] }, /kinds/],
      [{ kinds: [] }, /kinds/],
      [{ streamLength: 301 }, /streamLength/],
      [{ streams: 0 }, /streams/],
      [{ seed: -1 }, /seed/],
      // 600 x 0.5 = 300 calibration rows: streams of 300 queries of 5 features, 2^26 values at most.
      [{ streams: 44740 }, /^streams: expected at most 44739 streams of 300 queries of 5 features/],
    ];
    for (const [o, message] of cases)
      await rejectsCode(
        fitDetectorBundle(data.x, data.y, data.rows, { classes: 3, ...o }),
        'ERR_INVALID_ARGUMENT',
        message,
      );
    await rejectsCode(
      fitDetectorBundle(
        data.x,
        Int32Array.from(data.y, (c) => (c === 2 ? 3 : c)),
        data.rows,
        { classes: 3 },
      ),
      'ERR_INVALID_ARGUMENT',
      /y: .*class indices in \[0, 2\]/,
    );
    const nan = Float32Array.from(data.x);
    nan[7] = Number.NaN;
    await rejectsCode(fitDetectorBundle(nan, data.y, data.rows, { classes: 3 }), 'ERR_DATA_VALUE', /NaN/);
  });

  it('too few rows, or streams too short for a stream detector, are refused naming what to change', async () => {
    const param = (p: string) => (e: unknown) => {
      assert.ok(isBulwarkError(e), String(e));
      assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
      assert.equal(e.details['parameter'], p, e.message);
      return e.message;
    };
    // 1 to 3 rows: one side of the split would have fewer than 2 (a covariance, a scale, a stream need 2).
    for (const n of [1, 2, 3])
      await assert.rejects(fitDetectorBundle(...rows(n), { classes: 3 }), (e: unknown) => {
        assert.match(param('rows')(e), /^rows: expected at least 4 rows \(2 to fit .*, 2 to calibrate/);
        return true;
      });
    await assert.rejects(
      fitDetectorBundle(...rows(100), { classes: 3, calibrationShare: 0.01 }),
      (e: unknown) => {
        assert.match(
          param('calibrationShare')(e),
          /at least 2 of the 100 rows on each side \(now 99 fitted, 1 calibration\)/,
        );
        return true;
      },
    );
    // 40 rows: the default streams (20 calibration rows) are too short for the stateful detector's k = 20.
    await assert.rejects(fitDetectorBundle(...rows(40), { classes: 3 }), (e: unknown) => {
      assert.match(
        param('rows')(e),
        /^rows: the stateful detector needs benign streams of more than k \(20\) queries .*\(20 of 40\): give more rows or a larger calibration share$/,
      );
      return true;
    });
    await assert.rejects(
      fitDetectorBundle(...rows(600), { classes: 3, kinds: ['prada'], streamLength: 50 }),
      (e: unknown) => {
        assert.match(
          param('streamLength')(e),
          /^streamLength: the prada detector needs benign streams longer than minQueries \(100\) distances \(one per query after the first of its predicted class\), got streams of 50$/,
        );
        return true;
      },
    );
  });

  it('refuses streams too short for a stream detector before fitting anything, from the detector parameters (not its error text)', async () => {
    const progress: number[] = [];
    await assert.rejects(
      fitDetectorBundle(...rows(40), { classes: 3, onProgress: (done) => progress.push(done) }),
      (e: unknown) => {
        assert.ok(isBulwarkError(e), String(e));
        assert.deepEqual(e.details, { parameter: 'rows', detector: 'stateful', streamLength: 20 });
        assert.equal(e.cause, undefined, 'refused up front, not after the detector threw');
        return true;
      },
    );
    assert.deepEqual(progress, [], 'the Mahalanobis detector was not fitted first');
    await assert.rejects(
      fitDetectorBundle(...rows(600), { classes: 3, stateful: { k: 7 }, streamLength: 7 }),
      (e: unknown) => {
        assert.ok(isBulwarkError(e), String(e));
        assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
        assert.match(
          e.message,
          /^streamLength: the stateful detector needs benign streams of more than k \(7\) queries \(a query is judged against k earlier ones\), got streams of 7$/,
        );
        assert.deepEqual(e.details, { parameter: 'streamLength', detector: 'stateful', streamLength: 7 });
        return true;
      },
    );
  });

  it("rewords PRADA's own refusal of the benign streams by its code and parameter, keeping it as the cause", async () => {
    // 4 queries clear minQueries = 3 up front, but a stream of 2 or 3 classes holds only 1 or 2
    // distances (the first query of each class has none): only the detector's calibration can tell.
    await assert.rejects(
      fitDetectorBundle(...rows(600), {
        classes: 3,
        kinds: ['prada'],
        prada: { minQueries: 3, window: 10 },
        streamLength: 4,
      }),
      (e: unknown) => {
        assert.ok(isBulwarkError(e), String(e));
        assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
        assert.match(
          e.message,
          /^streamLength: the prada detector needs benign streams longer than minQueries \(3\) distances \(one per query after the first of its predicted class\), got streams of 4$/,
        );
        assert.deepEqual(e.details, { parameter: 'streamLength', detector: 'prada', streamLength: 4 });
        assert.ok(isBulwarkError(e.cause), String(e.cause));
        assert.equal(e.cause.code, 'ERR_INVALID_ARGUMENT');
        assert.equal(e.cause.details['parameter'], 'streams');
        return true;
      },
    );
  });
});
