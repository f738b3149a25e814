/**
 * The differential-privacy part of `bulwark train` (`--dp-epsilon`): its options, and the run that
 * replaces the ordinary training when they are given (src/privacy `trainTabularDp`).
 */
import { basename, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, sha256Digest, writeFileAtomic } from '../../core/index.js';
import type { Dataset, Schema } from '../../data/index.js';
import type { ActivationName } from '../../ml/index.js';
import {
  auditSpendSink,
  type BudgetLedger,
  deltaWarning,
  NoiseSource,
  openLedger,
  type SpendReceipt,
  trainedPrivacy,
  trainTabularDp,
} from '../../privacy/index.js';
import { record } from '../audit-record.js';
import { floatOption, intOption, locationOrigin } from '../options.js';
import type { Io } from '../output.js';
import { type Progress, startProgress } from '../progress.js';
import { type ProtectedDataRecord, protectedHyperparameters } from './protected-data.js';
import { protectedMetadata } from './train-protected.js';

/** The DP options `bulwark train` accepts. */
export interface DpTrainOpts {
  dpEpsilon?: number;
  dpDelta?: number;
  dataNorm?: number;
  clip?: number;
  accountant: 'rdp' | 'pld';
  seededNoise?: number;
  dpRows?: number;
  ledger?: string;
  budget?: string;
  analyst?: string;
}

/** The common options of `bulwark train` the DP run reads. */
export interface TrainOptsForDp {
  data: string;
  /**
   * sha256 of the data file's bytes as read for training (readDatasetWithDigest): what the audit
   * event records, never a second read of the path, which may see another file.
   */
  dataDigest: string;
  /** --data is a protected dataset: its id and whether it was verified (protected-data.ts). */
  protectedData?: ProtectedDataRecord;
  label: string;
  out: string;
  model: 'logreg' | 'mlp';
  solver: 'adam' | 'sgd' | 'lbfgs';
  hidden?: number[];
  activation: ActivationName;
  epochs?: number;
  batchSize: number;
  lr?: number;
  testFraction: number;
  features?: string[];
  drop?: string[];
  seed: number;
  force?: boolean;
}

function accountantOption(v: string): 'rdp' | 'pld' {
  if (v !== 'rdp' && v !== 'pld') throw new InvalidArgumentError(`expected rdp or pld, got "${v}"`);
  return v;
}

/** Adds the DP options to `bulwark train`. */
export function addDpTrainOptions(cmd: Command): Command {
  return cmd
    .option(
      '--dp-epsilon <e>',
      'train with differential privacy at this epsilon (needs --schema with public bounds)',
      floatOption(1e-6, 1e6),
    )
    .option('--dp-delta <d>', 'delta of the DP guarantee (DP-SGD; below 1/rows)', floatOption(0, 0.999999))
    .option(
      '--data-norm <n>',
      'DP logreg: public bound on the encoded rows’ L2 norm (default sqrt(features))',
      floatOption(1e-9, 1e9),
    )
    .option('--clip <c>', 'DP-SGD per-example gradient clipping norm (default 1)', floatOption(1e-9, 1e9))
    .option('--accountant <name>', 'DP-SGD accountant: rdp or pld', accountantOption, 'rdp')
    .option(
      '--dp-rows <n>',
      'DP-SGD: the number of rows, declared PUBLIC (a known size or an upper bound); the sampling rate, steps and default delta come from it, so the model does not reveal the private count',
      intOption(2, Number.MAX_SAFE_INTEGER),
    )
    .option(
      '--seeded-noise <seed>',
      'INSECURE: reproducible DP noise from a seed, for tests only',
      intOption(0, Number.MAX_SAFE_INTEGER),
    )
    .option(
      '--ledger <location>',
      'privacy budget ledger: SQLite file or postgres:// URL (default $BULWARK_LEDGER or ./bulwark-ledger.sqlite)',
    )
    .option('--budget <name>', 'the budget to spend from (default: the data file name)')
    .option('--analyst <name>', 'who trains (checked against per-analyst budgets)');
}

/**
 * What a DP run of `bulwark train` (training or fine-tuning) starts with once its options are checked:
 * δ (default the smaller of 1e-5 and 1/(10 × rows), noted for DP-SGD), the warning that --seeded-noise makes the model not private,
 * and the ledger (--ledger, else $BULWARK_LEDGER, else ./bulwark-ledger.sqlite). With an audit log,
 * each spend is recorded (privacy.spent) when the ledger commits it, before any model is written.
 */
export async function openDpRun(
  io: Io,
  o: DpTrainOpts,
  rows: number,
  log: AuditLog | undefined,
  method: 'dp-sgd' | 'objective-perturbation',
): Promise<{ delta: number; ledger: BudgetLedger }> {
  // From the public count when declared: a default computed from the private count would reveal it.
  const n = o.dpRows ?? rows;
  const delta = o.dpDelta ?? Math.min(1e-5, 1 / (10 * n));
  // Objective perturbation is pure epsilon-DP (delta 0 spent): a note on its delta would mislead.
  if (method === 'dp-sgd') {
    if (o.dpDelta === undefined)
      io.note(
        `bulwark: --dp-delta not given: using ${delta.toPrecision(3)} (the smaller of 1e-5 and 1/(10 × rows))`,
      );
    const warning = deltaWarning(delta, rows);
    if (warning !== null) io.note(`bulwark: WARNING: ${warning}`);
  }
  // Only DP-SGD's sampling rate depends on the count (objective perturbation's noise does not).
  if (o.dpRows === undefined && method === 'dp-sgd')
    io.note(
      "bulwark: --dp-rows not given: DP-SGD treats the row count as public (the model's sampling rate reveals it); declare a public count with --dp-rows N to keep it private",
    );
  if (o.seededNoise !== undefined)
    io.note(
      'bulwark: WARNING (BULWARK_INSECURE_NOISE): --seeded-noise makes the DP noise reproducible: this model is NOT private. Use for tests only.',
    );
  const location = o.ledger ?? (process.env['BULWARK_LEDGER'] || 'bulwark-ledger.sqlite');
  const ledger = await openLedger(location, {
    option: locationOrigin('--ledger', o.ledger !== undefined, 'BULWARK_LEDGER'),
    ...(log ? { onSpend: auditSpendSink(log) } : {}),
  });
  return { delta, ledger };
}

/**
 * The `--json` `budget` of a DP run: the budget's name, the spend's id, its composition, what is spent
 * (the composed total for a `pld` budget) and what is left (null: no spend).
 */
export function budgetResult(receipt: SpendReceipt | undefined): {
  name: string;
  spendId: string;
  composition: SpendReceipt['composition'];
  spent: SpendReceipt['spent'];
  remaining: SpendReceipt['remaining'];
} | null {
  return receipt
    ? {
        name: receipt.dataset,
        spendId: receipt.id,
        composition: receipt.composition,
        spent: receipt.spent,
        remaining: receipt.remaining,
      }
    : null;
}

/** The human line about what is left of the budget (with the ledger's id when given; '' without a spend). */
export function budgetLine(receipt: SpendReceipt | undefined, ledgerId?: string): string {
  if (!receipt) return '';
  const left = receipt.remaining;
  const how =
    receipt.composition === 'pld'
      ? ` (pld composition: ${Number(receipt.spent.epsilon.toPrecision(6))} spent in all)`
      : '';
  return `Budget "${receipt.dataset}"${ledgerId === undefined ? '' : ` (ledger ${ledgerId})`}: left epsilon ${Number(left.epsilon.toPrecision(6))}, delta ${Number(left.delta.toPrecision(6))}${how}.`;
}

/** Whether the command line asks for DP training. */
export function wantsDp(o: DpTrainOpts): boolean {
  return o.dpEpsilon !== undefined || o.dpDelta !== undefined;
}

/** Runs DP training: spends from the ledger, trains, writes the ONNX model, reports ε spent. */
export async function runDpTraining(
  io: Io,
  o: TrainOptsForDp & DpTrainOpts,
  ds: Dataset,
  schema: Schema | undefined,
  log?: AuditLog,
): Promise<void> {
  if (o.dpEpsilon === undefined) throw new BulwarkError('ERR_USAGE', '--dp-delta needs --dp-epsilon');
  if (schema === undefined)
    throw new BulwarkError(
      'ERR_USAGE',
      '--dp-epsilon needs --schema FILE: DP training scales features by PUBLIC bounds and categories, never by the data',
    );
  if (o.solver === 'lbfgs' && o.model !== 'logreg')
    throw new BulwarkError('ERR_USAGE', '--solver lbfgs applies to --model logreg');
  // `bulwark train` checked --out before any work (checkOutputPath), so the budget is never spent for
  // a model that cannot be written.
  const out = resolve(o.out);
  const method = o.model === 'logreg' ? 'objective-perturbation' : 'dp-sgd';
  const { delta, ledger } = await openDpRun(io, o, ds.rowCount, log, method);
  let bar: Progress | null = null;
  try {
    const r = await trainTabularDp(ds, {
      label: o.label,
      schema,
      model: o.model,
      method,
      epsilon: o.dpEpsilon,
      delta,
      accountant: o.accountant,
      ...(o.dataNorm === undefined ? {} : { dataNorm: o.dataNorm }),
      ...(o.clip === undefined ? {} : { clipNorm: o.clip }),
      ...(o.hidden === undefined ? {} : { hidden: o.hidden }),
      activation: o.activation,
      ...(o.epochs === undefined ? {} : { epochs: o.epochs }),
      batchSize: o.batchSize,
      ...(o.lr === undefined ? {} : { learningRate: o.lr }),
      optimizer: o.solver === 'adam' ? 'adam' : 'sgd',
      seed: o.seed,
      testFraction: o.testFraction,
      ...(o.dpRows === undefined ? {} : { publicRows: o.dpRows }),
      ...(o.features === undefined ? {} : { features: o.features }),
      ...(o.drop === undefined ? {} : { drop: o.drop }),
      metadata: protectedMetadata(o.protectedData),
      budget: {
        ledger,
        dataset: o.budget ?? basename(o.data),
        ...(o.analyst === undefined ? {} : { analyst: o.analyst }),
      },
      ...(o.seededNoise === undefined
        ? {}
        : { noise: NoiseSource.insecureSeeded(o.seededNoise, 'bulwark train') }),
      note: (m) => io.note(m),
      onProgress: (done, total, info) => {
        bar ??= startProgress(io, 'dp-train', total, 'steps');
        bar.update(done, info);
      },
    });
    (bar as Progress | null)?.stop();
    bar = null;
    await writeFileAtomic(out, r.onnx, { noClobber: o.force !== true });
    const p = r.privacy;
    const auditIds = await record(log, [
      {
        type: 'model.trained',
        data: {
          modelDigest: sha256Digest(r.onnx),
          datasetDigest: o.dataDigest,
          algorithm: `${o.model}-${p.method}`,
          hyperparameters: {
            seed: o.seed,
            testFraction: o.testFraction,
            batchSize: o.batchSize,
            ...protectedHyperparameters(o.protectedData),
          },
          privacy: trainedPrivacy(p, r.receipt),
          metrics: {
            accuracy: r.test.accuracy,
            f1: r.test.f1,
            ...(r.test.rocAuc === undefined ? {} : { rocAuc: r.test.rocAuc }),
          },
        },
      },
    ]);
    const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(2)} %`);
    io.result(
      {
        out,
        model: o.model,
        architecture: [r.network.inputs, ...r.network.hidden, r.network.classes],
        label: o.label,
        classes: r.classValues,
        features: r.features.length,
        trainRows: r.trainRows,
        test: r.test,
        privacy: p,
        budget: budgetResult(r.receipt),
        seededNoise: o.seededNoise !== undefined,
        ...(o.protectedData ? { protectedData: o.protectedData } : {}),
        ...(auditIds.length > 0 ? { auditEvent: auditIds[0] } : {}),
      },
      () =>
        [
          `Trained ${o.model} [${[r.network.inputs, ...r.network.hidden, r.network.classes].join('-')}] on ${r.trainRows} rows with differential privacy (${p.method}).`,
          `Privacy: epsilon ${Number(p.epsilon.toPrecision(4))}${p.delta > 0 ? `, delta ${p.delta}` : ' (pure)'} for add-or-remove-one-row neighbours${
            p.method === 'dp-sgd'
              ? ` (${p.accountant} accountant, noise multiplier ${Number((p.noiseMultiplier ?? 0).toPrecision(4))}, clip ${p.clipNorm}, ${p.steps} steps at sampling rate ${Number((p.samplingRate ?? 0).toPrecision(4))})`
              : ` (data norm ${Number((p.dataNorm ?? 0).toPrecision(4))})`
          }.`,
          budgetLine(r.receipt),
          `Test (${r.test.rows} held-out rows, not covered by the guarantee): accuracy ${pct(r.test.accuracy)}, F1 ${pct(r.test.f1)}${r.test.rocAuc !== undefined ? `, ROC AUC ${r.test.rocAuc.toFixed(4)}` : ''}`,
          `Model: ${out}`,
          auditIds.length > 0 ? `Audit: spend and model.trained recorded (event ${auditIds[0]})` : '',
        ]
          .filter((l) => l !== '')
          .join('\n'),
    );
  } finally {
    (bar as Progress | null)?.stop();
    await ledger.close();
  }
}
