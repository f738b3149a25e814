import { join } from 'node:path';
import { isBulwarkError, SeededRng } from '../../core/index.js';
import { type Dataset, PERSONAL_COLUMNS, readDataset, writeTransactionsCsv } from '../../data/index.js';
import { checkProvenance, fileDigest, parseGate, runGate } from '../../integrity/index.js';
import type { Block } from '../../report/index.js';
import {
  applyTabularTrigger,
  backdoorSuccess,
  concatRows,
  detectionQuality,
  hiddenRepresentations,
  InputDomain,
  networkModel,
  plantTabularBackdoor,
  spectralSignatures,
  type TabularTrigger,
} from '../../robust/index.js';
import { type TrainTabularResult, trainTabular } from '../../train/index.js';
import type { DemoStage } from '../stage.js';

/** Columns that are identifiers or times, left out of the model as in the baseline stage. */
const NOT_FEATURES = ['transaction_id', 'timestamp', 'merchant_id', 'merchant_location'];

const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)} %`);

/**
 * Stage: training-data poisoning. A second batch of transactions arrives for retraining; an insider has
 * planted a backdoor in part of it: copies of fraudulent transactions carrying a trigger (a swiped
 * card at 4 a.m. on a new device: valid values of the schema) labelled legitimate, so any fraud with the trigger
 * will pass. The stage shows (1) the provenance check refusing the batch, which never went through the
 * protection step the audit log records; (2) what happens if it is used anyway: the backdoor works;
 * (3) spectral signatures on the model's hidden layer catching the planted rows, and the model retrained
 * without them; (4) the CI security gate refusing the poisoned model and passing the sanitised one.
 */
export const poisonStage: DemoStage = {
  id: 'poison',
  title: 'Training-data poisoning: a backdoor in the second batch',
  async run(ctx) {
    const base = ctx.state.dataset;
    const label = ctx.state.label;
    if (!base || !label || !ctx.state.dataPath) throw new Error('the poisoning stage needs the data stages');
    const quick = ctx.options.quick;
    const seed = ctx.options.seed;
    // (1) The second batch, from outside the protected pipeline.
    const batchPath = join(ctx.options.outDir, 'batch2.csv');
    await writeTransactionsCsv(batchPath, { rows: quick ? 6000 : 20000, fraudRate: 0.02, seed: seed + 1 });
    let provenance = 'no audit log open';
    if (ctx.state.audit) {
      const ok = await checkProvenance(
        ctx.state.audit,
        ctx.state.dataPath,
        await fileDigest(ctx.state.dataPath),
      );
      try {
        await checkProvenance(ctx.state.audit, batchPath, await fileDigest(batchPath));
        provenance = 'batch 2 ACCEPTED (unexpected)';
      } catch (e) {
        if (!isBulwarkError(e, 'ERR_DATA_PROVENANCE')) throw e;
        provenance = `batch 1 accepted (audit event #${ok.index}); batch 2 refused: ${e.code}`;
      }
    }
    ctx.progress(0.1);
    const keepCols = base.columnNames.filter(
      (c) => !NOT_FEATURES.includes(c) && !(PERSONAL_COLUMNS as readonly string[]).includes(c),
    );
    const batch1 = base.select(keepCols);
    const raw2 = await readDataset(batchPath);
    const batch2 = raw2.select(keepCols);
    // Trigger: a swiped card, at 4 a.m., on a device new to the card (valid values of the schema; a
    // clean model does not pass fraud with it as legitimate: bench/results/poisoning.json).
    const trigger: TabularTrigger = { channel: 'swipe', local_hour: 4, new_device: 1 };
    // A clean held-out third of batch 2 to measure on; the rest is poisoned and added to batch 1.
    const perm = new SeededRng(seed).permutation(batch2.rowCount);
    const cut = Math.round(batch2.rowCount / 3);
    const test = batch2.take(perm.subarray(0, cut));
    const incoming = batch2.take(perm.subarray(cut));
    const legit =
      batch1.numbers(label).filter((v) => v === 0).length +
      incoming.numbers(label).filter((v) => v === 0).length;
    const k = Math.round(0.1 * legit); // 10 % of the legitimate class (Tran et al.'s convention)
    const p = plantTabularBackdoor(incoming, {
      label,
      target: '0',
      trigger,
      rate: k / (incoming.rowCount + k),
      mode: 'inject',
      ...(ctx.state.schema ? { schema: ctx.state.schema } : {}),
      rng: seed,
    });
    const training = concatRows(batch1, p.dataset);
    const poisonedRows = Int32Array.from(p.poisoned, (i) => i + batch1.rowCount);
    const fit = (d: Dataset, from: number, to: number) =>
      trainTabular(d, {
        label,
        model: 'mlp',
        hidden: [32],
        epochs: quick ? 4 : 8,
        batchSize: 256,
        classWeights: 'balanced',
        testFraction: 0,
        seed,
        onProgress: (done, total) => ctx.progress(from + ((to - from) * done) / total),
      });
    const yTest = Int32Array.from(test.numbers(label));
    const testTrig = applyTabularTrigger(test, trigger);
    const measure = async (r: TrainTabularResult) => {
      const clean = r.pipeline.transform(test).matrix;
      const trig = r.pipeline.transform(testTrig).matrix;
      const b = await backdoorSuccess(networkModel(r.network), clean, trig, yTest, 0);
      let ok = 0;
      const pred = r.network.predict(clean, test.rowCount);
      for (let i = 0; i < test.rowCount; i++) if (pred[i] === yTest[i]) ok++;
      return { accuracy: ok / test.rowCount, asr: b.successRate, missed: b.cleanTargetRate, clean, trig };
    };
    // (2) Used anyway: the backdoor works.
    const poisoned = await fit(training, 0.15, 0.5);
    const mp = await measure(poisoned);
    // (3) Spectral signatures on the poisoned model's last hidden layer, then retraining without the flagged rows.
    const fm = poisoned.pipeline.transform(training).matrix;
    const { reps, dim } = hiddenRepresentations(poisoned.network, fm, training.rowCount);
    const y = Int32Array.from(training.numbers(label));
    const s = spectralSignatures(reps, dim, y, 2, { expectedPoisonFraction: 0.1, rng: seed });
    const q = detectionQuality(s.flagged, poisonedRows);
    const keep: number[] = [];
    for (let i = 0; i < training.rowCount; i++) if (!s.flagged[i]) keep.push(i);
    const sanitized = await fit(training.take(keep), 0.5, 0.85);
    const ms = await measure(sanitized);
    // (4) The CI gate: backdoor success at most 10 %, the same check `bulwark evaluate --gate` runs.
    const gate = parseGate(
      `version: 1\nchecks:\n  - metric: backdoor-success\n    trigger: ${JSON.stringify(trigger)}\n    target: "0"\n    max: 0.1\n`,
      'demo gate',
    );
    const gateOf = async (r: TrainTabularResult, m: Awaited<ReturnType<typeof measure>>) =>
      runGate(gate, {
        model: { name: 'model', model: networkModel(r.network) },
        test: { x: m.clean, y: yTest, rows: test.rowCount },
        domain: InputDomain.box(r.network.inputs),
        triggered: async () => ({ clean: m.clean, triggered: m.trig, y: yTest, target: 0 }),
      });
    const gPoisoned = await gateOf(poisoned, mp);
    const gSanitized = await gateOf(sanitized, ms);
    ctx.progress(1);
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `A second batch of ${raw2.rowCount} transactions arrives for retraining. Someone planted ${p.poisoned.length} copies of fraudulent ` +
          `transactions carrying a trigger (a swiped card at 4 a.m. on a new device: values the schema allows) and labelled legitimate ` +
          `(10 % of the legitimate class). The provenance check refuses the batch: its digest is not a protected dataset in the audit log. ` +
          'If it were used anyway, the model learns the backdoor; spectral signatures (Tran, Li & Madry 2018) on the hidden layer flag ' +
          'the planted rows, and the model retrained without them no longer obeys the trigger; the CI gate refuses the poisoned model.',
      },
      {
        kind: 'facts',
        facts: [
          ['provenance', provenance],
          ['poisoned rows', `${p.poisoned.length} of ${training.rowCount}`],
          ['spectral signatures: flagged', s.flagged.reduce((a, b) => a + b, 0)],
          ['detection precision', pct(q.precision)],
          ['detection recall', pct(q.recall)],
          ['gate on the poisoned model', gPoisoned.passed ? 'passed' : 'REFUSED (exit 5)'],
          ['gate on the sanitised model', gSanitized.passed ? 'passed' : 'REFUSED (exit 5)'],
        ],
      },
      {
        kind: 'table',
        columns: ['model', 'accuracy', 'fraud passed (no trigger)', 'fraud passed WITH the trigger'],
        rows: [
          ['poisoned', pct(mp.accuracy), pct(mp.missed), pct(mp.asr)],
          ['sanitised', pct(ms.accuracy), pct(ms.missed), pct(ms.asr)],
        ],
        caption: `Measured on ${test.rowCount} clean held-out rows of batch 2 (${yTest.filter((v) => v === 1).length} fraudulent).`,
      },
    ];
    return {
      blocks,
      summary: {
        poisonedRows: p.poisoned.length,
        trigger: JSON.stringify(trigger),
        provenance,
        backdoorSuccessPoisoned: mp.asr,
        backdoorSuccessSanitized: ms.asr,
        detectionPrecision: q.precision,
        detectionRecall: q.recall,
        accuracyPoisoned: mp.accuracy,
        accuracySanitized: ms.accuracy,
        gatePoisoned: gPoisoned.passed,
        gateSanitized: gSanitized.passed,
      },
    };
  },
};
