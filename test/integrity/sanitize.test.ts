import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Dataset, readDataset } from '../../src/data/index.js';
import { META_SANITIZE, sanitizeCosts, trainSanitized } from '../../src/integrity/index.js';
import { onnxMetadata } from '../../src/ml/index.js';
import type { TabularMetrics, TrainTabularOptions } from '../../src/train/index.js';
import { tempDir } from '../model/helpers.js';
import { backdoored, rows, writeCsv } from './helpers.js';

/**
 * `trainSanitized` (bulwark train --sanitize) on the integrity tests' data: the test rows are held out
 * before the inspection and are the same rows before and after; activation clustering's flags are
 * undone row by row for the rows the retrained model gives their own label (exclusionary
 * reclassification), while the planted rows of a backdoor stay out.
 */
const t = tempDir('sanitize');
const BASE = 1500;
let clean: Dataset;
let poisoned: Dataset;
let planted: Set<number>;

const train: TrainTabularOptions = {
  label: 'label',
  model: 'mlp',
  hidden: [32],
  epochs: 40,
  testFraction: 0.1,
  seed: 1,
};

before(async () => {
  const base = rows(BASE, 1);
  const all = backdoored(base, 0.12, 4);
  planted = new Set(Array.from({ length: all.length - BASE }, (_, i) => BASE + i));
  writeCsv(join(t.dir, 'clean.csv'), base);
  writeCsv(join(t.dir, 'poisoned.csv'), all);
  clean = await readDataset(join(t.dir, 'clean.csv'));
  poisoned = await readDataset(join(t.dir, 'poisoned.csv'));
});
after(() => t.cleanup());

describe('trainSanitized', () => {
  it('holds the test rows out of the inspection: the final model is tested on the first model’s test rows, none removed', async () => {
    const s = await trainSanitized(poisoned, train, { method: 'spectral', expectedPoisonFraction: 0.12 });
    const test = [...s.firstPass.testRows];
    assert.deepEqual([...s.result.testRows], test);
    assert.equal(s.record.heldOut, test.length);
    assert.equal(s.record.rowsBefore, poisoned.rowCount);
    const held = new Set(test);
    assert.equal(s.record.removedRows.filter((r) => held.has(r)).length, 0);
    // Before, the rows were inspected whole and the retraining split what was left: its test set
    // lacked the removed rows and had other rows.
    assert.equal(s.inspection.rows, poisoned.rowCount - test.length);
    assert.equal(s.result.trainRows, poisoned.rowCount - test.length - s.record.removed);
    const byClass = s.record.byClass ?? [];
    assert.equal(
      byClass.reduce((a, c) => a + c.removed, 0),
      s.record.removed,
    );
    assert.equal(
      byClass.reduce((a, c) => a + c.rows, 0),
      s.inspection.rows,
    );
    // Spectral signatures take 1.5 x eps of each class (rounded), which the record shows by class.
    for (const c of byClass) assert.ok(Math.abs(c.removed - 1.5 * 0.12 * c.rows) <= 1, JSON.stringify(c));
    assert.equal(s.record.reinstated, undefined, 'no activation clustering, nothing to put back');
    const meta = JSON.parse(onnxMetadata(s.result.onnx)[META_SANITIZE] as string);
    assert.deepEqual(meta, JSON.parse(JSON.stringify(s.record)));
  });

  it('activation clustering: the planted rows stay out, the clean rows of their cluster come back', async () => {
    const s = await trainSanitized(poisoned, train, { method: 'activations' });
    const held = new Set(s.firstPass.testRows);
    const trainRows: number[] = [];
    for (let i = 0; i < poisoned.rowCount; i++) if (!held.has(i)) trainRows.push(i);
    const a = s.inspection.activations;
    assert.ok(a);
    const flagged = trainRows.filter((_, i) => a.flagged[i]);
    const plantedInTrain = trainRows.filter((r) => planted.has(r)).length;
    // What the clustering flagged on this seed: every planted training row, in a cluster with more
    // clean rows than planted ones (95 of 283 in the "no" class, and a clean cluster of "yes").
    assert.equal(flagged.filter((r) => planted.has(r)).length, plantedInTrain);
    assert.ok(flagged.length > 2 * plantedInTrain, `${flagged.length} flagged`);
    const removed = new Set(s.record.removedRows);
    const plantedOut = [...removed].filter((r) => planted.has(r)).length;
    assert.ok(plantedOut >= 0.8 * plantedInTrain, `${plantedOut} of ${plantedInTrain} planted rows removed`);
    // Most of what was put back is clean: the removed set is far purer than the clustering's flags.
    const back = (s.record.reinstated ?? []).reduce((n, c) => n + c.rows, 0);
    assert.equal(back, flagged.length - removed.size);
    assert.ok(back > plantedInTrain, `${back} rows put back`);
    assert.ok(plantedOut / removed.size > 0.5, `${plantedOut} planted of ${removed.size} removed`);
    assert.deepEqual(
      (s.record.reinstated ?? []).map((c) => c.cluster).reduce((x, y) => x + y, 0),
      flagged.length,
    );
    assert.ok((s.record.reinstated ?? []).every((c) => c.spectral === 0));
    // With both defences, rows the spectral signatures flagged stay out even when reclassified.
    const both = await trainSanitized(poisoned, train, { method: 'both', expectedPoisonFraction: 0.12 });
    const spectralOut = new Set(both.record.removedRows);
    const bh = new Set(both.firstPass.testRows);
    const tr = [...Array(poisoned.rowCount).keys()].filter((r) => !bh.has(r));
    const sf = both.inspection.spectral?.flagged;
    assert.ok(sf);
    assert.ok(tr.every((r, i) => !sf[i] || spectralOut.has(r)));
    const overlap = (both.record.reinstated ?? []).reduce((n, c) => n + c.spectral, 0);
    assert.ok(overlap > 0, 'the clusters and the spectral flags overlap on this seed');
  });

  it('clean data: activation clustering flags nothing here, so nothing is removed or put back', async () => {
    const s = await trainSanitized(clean, train, { method: 'activations' });
    assert.equal(s.record.removed, 0);
    assert.deepEqual(s.record.reinstated, []);
  });
});

describe('sanitizeCosts', () => {
  const m = (accuracy: number, confusion: number[][], averagePrecision?: number): TabularMetrics => ({
    rows: 100,
    accuracy,
    precision: 0,
    recall: 0,
    f1: 0,
    confusion,
    ...(averagePrecision === undefined ? {} : { averagePrecision }),
  });
  const classes = ['no', 'yes'];

  it('names each finding beyond its limit and nothing within', () => {
    const before = m(0.95, [
      [80, 0],
      [5, 15],
    ]);
    assert.deepEqual(sanitizeCosts(before, before, classes), []);
    // Accuracy -0.01 exactly, recall of "yes" -0.10 exactly, PR AUC -0.02: each at its limit, none beyond.
    const edge = m(
      0.94,
      [
        [80, 0],
        [7, 13],
      ],
      0.8,
    );
    assert.deepEqual(sanitizeCosts({ ...before, averagePrecision: 0.82 }, edge, classes), []);
    const worse = m(
      0.9,
      [
        [79, 1],
        [9, 11],
      ],
      0.6,
    );
    assert.deepEqual(sanitizeCosts({ ...before, averagePrecision: 0.84 }, worse, classes), [
      'accuracy 95.00 % -> 90.00 %',
      'recall of "yes" 75.00 % -> 55.00 %',
      'PR AUC 0.8400 -> 0.6000',
    ]);
  });
});
