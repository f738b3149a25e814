import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BulwarkError } from '../../src/core/index.js';
import { type Dataset, parseSchema, readDataset, type Schema } from '../../src/data/index.js';
import {
  compareModels,
  continueTraining,
  continueTrainingDp,
  type DpContinueOptions,
  META_CONTINUED_FROM,
  META_POISON_GATE,
  MIN_EVALUATION_ROWS,
  minEvaluationRows,
} from '../../src/integrity/index.js';
import { onnxMetadata } from '../../src/ml/index.js';
import {
  type BudgetLedger,
  type DpTrainingGuarantee,
  dpSgdAccountedEpsilon,
  NoiseSource,
  ONNX_META,
  openLedger,
  trainTabularDp,
} from '../../src/privacy/index.js';
import { InputDomain } from '../../src/robust/index.js';
import { trainTabular } from '../../src/train/index.js';
import { code } from '../helpers/errors.js';
import { backdoored, DP_SCHEMA, rows, writeCsv } from './helpers.js';

/**
 * DP fine-tuning (src/integrity/continue-dp.ts): DP-SGD from a DP model's weights on a new batch, the
 * spend from the same ledger budget (cumulative ε checked against the accountant), the refusals before
 * anything is spent (budget, gate, architecture, ledger), deterministic seeds and seeded DP noise.
 */

const dir = mkdtempSync(join(tmpdir(), 'bulwark-dpcont-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
async function csv(lines: string[]): Promise<Dataset> {
  const path = join(dir, `d${files++}.csv`);
  writeCsv(path, lines);
  return readDataset(path);
}

let schema: Schema;
let ledger: BudgetLedger;
let parent: Uint8Array;
let parentPrivacy: DpTrainingGuarantee;
let batch: Dataset;
let poisoned: Dataset;
let evaluation: Dataset;

function options(over: Partial<DpContinueOptions> = {}): DpContinueOptions {
  return {
    label: 'label',
    schema,
    epsilon: 1,
    delta: 1e-5,
    ledger,
    epochs: 3,
    batchSize: 60,
    learningRate: 0.03,
    seed: 3,
    noise: NoiseSource.insecureSeeded(11, 'test'),
    // The gate's default check (disagreement with the parent): this parent contradicts the labels of
    // about 5 % of the clean batch and 11 % of the backdoored one; the limit sits between.
    maxFlagged: 0.08,
    evaluation,
    maxCleanDrop: 0.03,
    maxRobustDrop: 0.05,
    ...over,
  };
}

before(async () => {
  schema = parseSchema(DP_SCHEMA);
  batch = await csv(rows(600, 5));
  poisoned = await csv(backdoored(rows(600, 5), 0.12, 7));
  evaluation = await csv(rows(400, 2));
  ledger = await openLedger(join(dir, 'ledger.sqlite'));
  await ledger.setBudget('tx', { epsilon: 10, delta: 1e-4 });
  const r = await trainTabularDp(await csv(rows(1500, 1)), {
    label: 'label',
    schema,
    model: 'mlp',
    hidden: [32],
    method: 'dp-sgd',
    epsilon: 2,
    delta: 1e-5,
    epochs: 10,
    batchSize: 100,
    learningRate: 0.5,
    seed: 1,
    budget: { ledger, dataset: 'tx' },
    noise: NoiseSource.insecureSeeded(3, 'test'),
  });
  parent = r.onnx;
  parentPrivacy = r.privacy;
});

after(async () => ledger.close());

describe('DP fine-tuning from a DP model (continueTrainingDp)', () => {
  it('a model trained with seeded noise is marked, and only a seeded run may continue it', async () => {
    assert.equal(parentPrivacy.noise, 'insecure-seeded');
    const before = (await ledger.status('tx')).spent.epsilon;
    const { noise: _seeded, ...secure } = options();
    await assert.rejects(continueTrainingDp(parent, batch, secure), (e: unknown) => {
      assert.ok(e instanceof BulwarkError && e.code === 'ERR_DP_UNACCOUNTED');
      assert.match(e.message, /insecure-seeded noise/);
      return true;
    });
    assert.equal((await ledger.status('tx')).spent.epsilon, before, 'nothing spent');
  });

  it('records where the parent spent: the ledger id and the budget name', () => {
    assert.deepEqual(parentPrivacy.budget, { ledger: ledger.id, dataset: 'tx' });
    assert.match(ledger.id, /^[0-9a-f-]{36}$/);
  });

  it('spends from the same budget: the ledger total is the sum of the accountant epsilons, as the model says', async () => {
    const before = await ledger.status('tx');
    const r = await continueTrainingDp(parent, batch, options());
    const p = r.privacy;
    assert.equal(p.noise, 'insecure-seeded', 'a seeded run continuing a seeded model is marked in turn');
    assert.ok(r.receipt);
    assert.equal(r.receipt.dataset, 'tx');
    // This run's epsilon is the accountant's for its sigma, sampling rate and steps.
    const runEps = dpSgdAccountedEpsilon(
      p.noiseMultiplier as number,
      p.samplingRate as number,
      p.steps as number,
      1e-5,
      'rdp',
    );
    assert.equal(p.run?.epsilon, runEps);
    assert.ok(runEps <= 1 && runEps > 0.9, String(runEps));
    assert.equal(r.receipt.epsilon, runEps);
    assert.equal(p.steps, Math.floor(3 / (60 / 600)));
    // The parent's spend was its accountant's too; the model's guarantee composes both.
    const parentEps = dpSgdAccountedEpsilon(
      parentPrivacy.noiseMultiplier as number,
      parentPrivacy.samplingRate as number,
      parentPrivacy.steps as number,
      1e-5,
      'rdp',
    );
    assert.equal(parentPrivacy.epsilon, parentEps);
    assert.equal(p.epsilon, parentEps + runEps);
    assert.equal(p.delta, 2e-5);
    const after = await ledger.status('tx');
    assert.ok(Math.abs(after.spent.epsilon - (before.spent.epsilon + runEps)) < 1e-12);
    assert.ok(Math.abs(after.spent.epsilon - p.epsilon) < 1e-12, 'the budget holds exactly the lineage');
    assert.equal(after.spends, before.spends + 1);
    const meta = onnxMetadata(r.onnx);
    const recorded = JSON.parse(meta[ONNX_META.privacy] as string) as DpTrainingGuarantee;
    assert.equal(recorded.epsilon, p.epsilon);
    assert.deepEqual(recorded.budget, { ledger: ledger.id, dataset: 'tx' });
    assert.deepEqual(recorded.parent, { epsilon: parentEps, delta: 1e-5 });
    assert.match(meta[META_CONTINUED_FROM] as string, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(JSON.parse(meta[META_POISON_GATE] as string), {
      method: 'disagreement',
      expectedPoisonFraction: 0.05,
      maxFlagged: 0.08,
      passed: true,
    });
    assert.equal(r.comparison.accepted, true);
    // The fine-tuned model can itself be fine-tuned; the third spend composes again.
    const again = await continueTrainingDp(r.onnx, batch, options({ epsilon: 0.5, seed: 4 }));
    assert.ok(Math.abs(again.privacy.epsilon - (p.epsilon + (again.privacy.run?.epsilon ?? 0))) < 1e-12);
    assert.ok(Math.abs((await ledger.status('tx')).spent.epsilon - again.privacy.epsilon) < 1e-12);
  });

  it('is deterministic for fixed seeds and seeded noise', async () => {
    // At epsilon 0.3 this fine-tune moves the "yes" recall from 0.977 to 0.838 (173 rows) while the
    // accuracies stay within their limits; the per-class default (0.1) refuses that, and this test is
    // about determinism, not the verdict: the class limit is loosened with the others.
    const o = options({ epsilon: 0.3, seed: 8, maxClassDrop: 0.2 });
    const a = await continueTrainingDp(parent, batch, o);
    const b = await continueTrainingDp(parent, batch, {
      ...o,
      noise: NoiseSource.insecureSeeded(11, 'test'),
    });
    assert.deepEqual(a.onnx, b.onnx);
    assert.notEqual(a.receipt?.id, b.receipt?.id, 'two spends recorded');
  });

  it('refuses over budget before looking at the batch or training (nothing spent)', async () => {
    const before = await ledger.status('tx');
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ epsilon: before.remaining.epsilon + 0.5 })),
      code('ERR_PRIVACY_BUDGET_EXCEEDED'),
    );
    assert.deepEqual(await ledger.status('tx'), before);
  });

  it('refuses a backdoored batch whole at the gate (ERR_POISON_GATE), nothing spent', async () => {
    const before = await ledger.status('tx');
    await assert.rejects(continueTrainingDp(parent, poisoned, options()), code('ERR_POISON_GATE'));
    assert.deepEqual(await ledger.status('tx'), before);
  });

  it('refuses an evaluation set it cannot use before the spend (it failed after it: budget gone, no model)', async () => {
    const before = await ledger.status('tx');
    const unknownLabel = rows(50, 4).map((r, i) => (i === 7 ? r.replace(/,(yes|no)$/, ',maybe') : r));
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ evaluation: await csv(unknownLabel) })),
      (e: unknown) => code('ERR_LABEL_INVALID')(e) && /row 8: label "maybe"/.test((e as Error).message),
    );
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ evaluation: await csv([]) })),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) && /evaluation set \(--eval\) has no rows/.test((e as Error).message),
    );
    // One row: the comparison after the spend would have passed or failed by chance.
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ evaluation: await csv(rows(1, 4)) })),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) &&
        /evaluation set \(--eval\) has 1 row; the regression comparison needs at least 100/.test(
          (e as Error).message,
        ),
    );
    assert.deepEqual(await ledger.status('tx'), before);
  });

  it('rejects an architecture, schema or budget mismatch and a non-DP parent, nothing spent', async () => {
    const before = await ledger.status('tx');
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ hidden: [16] })),
      code('ERR_WARM_START_MISMATCH'),
    );
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ model: 'logreg' })),
      code('ERR_WARM_START_MISMATCH'),
    );
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ activation: 'tanh' })),
      code('ERR_WARM_START_MISMATCH'),
    );
    const wider = parseSchema(
      DP_SCHEMA.replace('x1, type: number, bounds: { min: -4', 'x1, type: number, bounds: { min: -5'),
    );
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ schema: wider })),
      code('ERR_WARM_START_MISMATCH'),
    );
    await assert.rejects(
      continueTrainingDp(parent, batch, options({ budget: 'other' })),
      code('ERR_LEDGER_MISMATCH'),
    );
    // Another ledger: the parent names its own, so it is refused there before anything runs.
    const spare = await openLedger(join(dir, 'other.sqlite'));
    try {
      await spare.setBudget('tx', { epsilon: 10, delta: 1e-4 });
      await assert.rejects(
        continueTrainingDp(parent, batch, options({ ledger: spare })),
        code('ERR_LEDGER_MISMATCH'),
      );
      assert.equal((await spare.status('tx')).spends, 0);
    } finally {
      await spare.close();
    }
    const plain = await trainTabular(await csv(rows(300, 9)), {
      label: 'label',
      model: 'mlp',
      hidden: [32],
      epochs: 2,
      seed: 1,
    });
    await assert.rejects(continueTrainingDp(plain.onnx, batch, options()), code('ERR_DP_UNACCOUNTED'));
    assert.deepEqual(await ledger.status('tx'), before);
  });
});

describe('plain fine-tuning (continueTraining) checks its inputs before it trains', () => {
  it('an empty batch, an empty or too small evaluation set and an unknown evaluation label are refused, naming what', async () => {
    const plain = await trainTabular(await csv(rows(300, 9)), {
      label: 'label',
      model: 'mlp',
      hidden: [8],
      epochs: 2,
      seed: 1,
    });
    let progressed = 0;
    const o = { label: 'label', evaluation, epochs: 1, onProgress: () => progressed++ };
    await assert.rejects(
      continueTraining(plain.onnx, await csv([]), o),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) && /new batch \(--data\) has no rows/.test((e as Error).message),
    );
    await assert.rejects(
      continueTraining(plain.onnx, batch, { ...o, evaluation: await csv([]) }),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) && /evaluation set \(--eval\) has no rows/.test((e as Error).message),
    );
    const unknownLabel = rows(20, 4).map((r, i) => (i === 2 ? r.replace(/,(yes|no)$/, ',maybe') : r));
    await assert.rejects(
      continueTraining(plain.onnx, batch, { ...o, evaluation: await csv(unknownLabel) }),
      code('ERR_LABEL_INVALID'),
    );
    // Too few rows for the comparison to mean anything: one row, and one short of what the limits need.
    for (const [n, limits, min] of [
      [1, {}, 100],
      [99, {}, 100],
      [199, { maxCleanDrop: 0.005 }, 200],
    ] as const) {
      await assert.rejects(
        continueTraining(plain.onnx, batch, { ...o, ...limits, evaluation: await csv(rows(n, 4)) }),
        (e: unknown) =>
          code('ERR_DATA_VALUE')(e) &&
          new RegExp(
            `evaluation set \\(--eval\\) has ${n} rows?; the regression comparison needs at least ${min}`,
          ).test((e as Error).message),
        `${n} rows`,
      );
    }
    assert.equal(progressed, 0, 'it fine-tuned before refusing');
  });
});

describe('the size of the evaluation set', () => {
  it('needs at least 1/t rows for the smallest limit t, and never fewer than 100', () => {
    assert.equal(MIN_EVALUATION_ROWS, 100);
    // The defaults (0.01 clean, 0.02 robust): one row is 1 point, the clean limit.
    assert.equal(minEvaluationRows(), 100);
    assert.equal(minEvaluationRows({ maxCleanDrop: 0.03, maxRobustDrop: 0.05 }), 100);
    assert.equal(minEvaluationRows({ maxCleanDrop: 0.005 }), 200);
    assert.equal(minEvaluationRows({ maxCleanDrop: 0.01, maxRobustDrop: 0.003 }), 334);
    assert.equal(minEvaluationRows({ maxCleanDrop: 0.001, maxRobustDrop: 0.002 }), 1000);
    // A limit of 0 ("no drop at all") holds or not at any size: the other limit and the floor decide.
    assert.equal(minEvaluationRows({ maxCleanDrop: 0, maxRobustDrop: 0.004 }), 250);
    assert.equal(minEvaluationRows({ maxCleanDrop: 0, maxRobustDrop: 0 }), 100);
  });

  it('compareModels refuses too small a set itself (any caller of the library)', async () => {
    const model = {
      name: 'm',
      inputs: 1,
      classes: 2,
      predictProba: async (_x: Float32Array, r: number) =>
        Float32Array.from({ length: 2 * r }, (_, i) => (i % 2 === 0 ? 0.9 : 0.1)),
    };
    // Rows told apart by their one feature (the row number scaled into the domain).
    const data = (rows: number) => ({
      x: Float32Array.from({ length: rows }, (_, i) => i / rows),
      y: new Int32Array(rows),
      rows,
    });
    const o = { domain: new InputDomain({ inputs: 1, lower: 0, upper: 1 }), eps: 0, queries: 1 };
    await assert.rejects(
      compareModels(model, model, data(1), o),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) && /evaluation data has 1 row; .* at least 100/.test((e as Error).message),
    );
    await assert.rejects(
      compareModels(model, model, data(199), { ...o, maxCleanDrop: 0.005 }),
      (e: unknown) => code('ERR_DATA_VALUE')(e) && /199 rows; .* at least 200/.test((e as Error).message),
    );
    assert.equal((await compareModels(model, model, data(100), o)).accepted, true);
    // Distinct rows count, as in train --from: one row repeated 100 times is one row's evidence.
    const repeated = { x: new Float32Array(100), y: new Int32Array(100), rows: 100 };
    await assert.rejects(
      compareModels(model, model, repeated, o),
      (e: unknown) =>
        code('ERR_DATA_VALUE')(e) &&
        /evaluation data has 100 rows but only 1 distinct ones; .* at least 100 distinct rows/.test(
          (e as Error).message,
        ),
    );
    const ninetyNine = data(100);
    ninetyNine.x[99] = 0;
    await assert.rejects(
      compareModels(model, model, ninetyNine, o),
      (e: unknown) => code('ERR_DATA_VALUE')(e) && /but only 99 distinct ones/.test((e as Error).message),
    );
  });
});

describe('the DP poisoning gate limit', () => {
  it('a flagged share equal to --max-flagged passes; one row more does not', async () => {
    const { flaggedBeyond } = await import('../../src/integrity/continue-dp.js');
    // 0.29 * 100 = 28.999999999999996: 29 of 100 used to count as more than 0.29.
    assert.equal(flaggedBeyond(29, 100, 0.29), false);
    assert.equal(flaggedBeyond(30, 100, 0.29), true);
    assert.equal(flaggedBeyond(15, 22, 15 / 22), false);
    assert.equal(flaggedBeyond(16, 22, 15 / 22), true);
    assert.equal(flaggedBeyond(0, 1000, 0), false);
    assert.equal(flaggedBeyond(1, 1000, 0), true);
  });
});
