import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, requireFile, sha256Digest, writeFileAtomic } from '../../core/index.js';
import {
  type CsvDatasetOptions,
  type Dataset,
  loadSchema,
  readDatasetWithDigest,
  type Schema,
  validateAgainstSchema,
} from '../../data/index.js';
import { ACTIVATIONS, type ActivationName } from '../../ml/index.js';
import type { AdversarialMethod } from '../../robust/index.js';
import { MAX_CATEGORIES, type TrainTabularResult } from '../../train/index.js';
import { addAuditOption, record, withOperationLog } from '../audit-record.js';
import { checkOutputPath, floatOption, intOption, listOption } from '../options.js';
import { type Io, ioOf } from '../output.js';
import { type Progress, startProgress } from '../progress.js';
import {
  addProtectedDataOptions,
  KeyringSession,
  type ProtectedDataOpts,
  type ProtectedDataRecord,
  protectedDataHelp,
  protectedDataInputs,
  protectedHyperparameters,
  readProtectable,
} from './protected-data.js';
import { checkDpContinuation, type DpContinueCliOpts, dpTuner } from './train-continue-dp.js';
import { addDpTrainOptions, type DpTrainOpts, runDpTraining, wantsDp } from './train-dp.js';
import {
  addIntegrityTrainOptions,
  checkTrainingIntegrity,
  type IntegrityTrainOpts,
  runContinuedTraining,
  sanitizeHyperparameters,
  trainWithIntegrity,
} from './train-integrity.js';
import { protectedMetadata, TRAIN_PROTECTED_USE } from './train-protected.js';

function fractionOption(v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 1) {
    throw new InvalidArgumentError(`expected a number in [0, 1), got "${v}"`);
  }
  return x;
}

function oneOf<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(2)} %`;

/** The options of `bulwark train` its action reads (the integrity and DP ones are read apart). */
interface TrainCliOpts {
  data: string;
  label: string;
  out: string;
  model: 'logreg' | 'mlp';
  solver: 'adam' | 'sgd' | 'lbfgs';
  schema?: string;
  hidden?: number[];
  activation: ActivationName;
  epochs?: number;
  batchSize: number;
  lr?: number;
  l2?: number;
  classWeights: 'balanced' | 'none';
  testFraction: number;
  features?: string[];
  drop?: string[];
  seed: number;
  force?: boolean;
  adversarial?: AdversarialMethod;
  advEps?: number;
  advSteps?: number;
  advEma?: number;
  immutable?: string[];
  audit?: string;
  verifyProtected: boolean;
}

/** `bulwark train`: trains a model on a CSV/Parquet file and writes it as ONNX. */
/** The schema's category fields, to be read as text (see {@link readWithCategoriesAsText}). */
function categoryTypes(schema: Schema): Record<string, 'string'> {
  return Object.fromEntries(
    schema.fields.filter((f) => f.type === 'category').map((f) => [f.name, 'string']),
  );
}

/**
 * Reads the training data with its digest; under a schema, its category fields as each row's own text
 * (never typed by inference over all rows). A category field missing from the file is left to the
 * schema check to report (ERR_SCHEMA_MISMATCH, as before), so the file is then read as it is.
 */
async function readWithCategoriesAsText(
  path: string,
  schema: Schema | undefined,
  csv: CsvDatasetOptions = {},
): Promise<{ dataset: Dataset; digest: string }> {
  const types = schema === undefined ? {} : categoryTypes(schema);
  if (Object.keys(types).length === 0) return readDatasetWithDigest(path, csv);
  try {
    return await readDatasetWithDigest(path, { ...csv, types });
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'ERR_COLUMN_NOT_FOUND')
      return readDatasetWithDigest(path, csv);
    throw e;
  }
}

export function registerTrainCommand(program: Command): void {
  // The options every run takes come first in --help; then DP, the audit log and the integrity options.
  const train = program
    .command('train')
    .description('train a logistic regression or MLP classifier on a data file and write it as ONNX')
    .requiredOption('--data <file>', 'training data (CSV, TSV or Parquet)')
    .requiredOption('--label <column>', 'the column to predict')
    .requiredOption('--out <file>', 'where to write the model (ONNX; a .bwm package with --from PARENT.bwm)')
    .option('--model <kind>', 'logreg or mlp', oneOf(['logreg', 'mlp'] as const), 'logreg')
    .option('--schema <file>', 'schema YAML the data must match (types, bounds, categories)')
    .option('--hidden <sizes>', 'hidden layer sizes of the MLP, e.g. 128,64', listOption(intOption(1, 65536)))
    .option('--activation <name>', `MLP activation: ${ACTIVATIONS.join(', ')}`, oneOf(ACTIVATIONS), 'relu')
    .option(
      '--solver <name>',
      'adam, sgd (with momentum) or lbfgs (full batch)',
      oneOf(['adam', 'sgd', 'lbfgs'] as const),
      'adam',
    )
    .option(
      '--epochs <n>',
      'passes over the training data, default 20 (lbfgs: iteration limit, default 200)',
      intOption(1, 100000),
    )
    .option('--batch-size <n>', 'examples per step', intOption(1, 1 << 20), 128)
    .option('--lr <rate>', 'learning rate (default 0.01 logreg, 0.001 mlp)', floatOption(1e-9, 10))
    .option(
      '--l2 <penalty>',
      'L2 penalty on weights (default 1 / training rows, as C = 1)',
      floatOption(0, 1e6),
    )
    .option('--class-weights <mode>', 'balanced or none', oneOf(['balanced', 'none'] as const), 'none')
    .option('--test-fraction <f>', 'share of rows held out for the test metrics', fractionOption, 0.2)
    .option('--features <columns>', 'feature columns (default: all but the label)', listOption(String))
    .option('--drop <columns>', 'columns to leave out', listOption(String))
    .option(
      '--seed <n>',
      'seed of the split, shuffles and initial weights',
      intOption(0, Number.MAX_SAFE_INTEGER),
      0,
    )
    .option(
      '--adversarial <method>',
      'adversarial training: pgd (Madry et al.) or trades (Zhang et al.)',
      oneOf(['pgd', 'trades'] as const),
    )
    .option(
      '--adv-eps <e>',
      "adversarial budget, in units of each feature's range (--schema bounds) or standard deviation",
      floatOption(0, 1e6),
    )
    .option(
      '--adv-steps <n>',
      'PGD steps of the adversarial training attack (default 10)',
      intOption(1, 10000),
    )
    .option(
      '--immutable <columns>',
      'adversarial training: input columns the attacker cannot change (as bulwark evaluate --immutable)',
      listOption(String),
    )
    .option(
      '--adv-ema <decay>',
      "adversarial training returns the weights' exponential moving average with this decay, in (0, 1), e.g. 0.999 (Gowal et al. 2020)",
      floatOption(0, 1),
    )
    .option('--force', 'overwrite --out if it exists');
  addProtectedDataOptions(
    addIntegrityTrainOptions(addAuditOption(addDpTrainOptions(train))),
    TRAIN_PROTECTED_USE,
  )
    .addHelpText(
      'after',
      `
String columns are one-hot encoded (missing values as their own category; more than ${MAX_CATEGORIES} distinct
values: left out as identifiers); numeric columns must be complete and finite. Standardisation is part
of the exported model, and the preprocessing and class values are stored in the ONNX metadata, so
\`bulwark predict\` (or any ONNX runtime, on the encoded features) can use it.

${protectedDataHelp(TRAIN_PROTECTED_USE)}`,
    )
    .action(async function (this: Command) {
      const o = this.opts<TrainCliOpts>();
      const io = ioOf(this);
      const integrity = this.opts<IntegrityTrainOpts>();
      // With --from the model kind is the previous model's (a DP fine-tune checks --hidden against it).
      if (o.hidden && o.model !== 'mlp' && integrity.from === undefined)
        throw new BulwarkError('ERR_USAGE', '--hidden applies to --model mlp only');
      await requireFile(o.data, 'data file');
      // Before any work: an output that exists (without --force), sits in a missing folder or is one of
      // the files the run reads (--force or not): the data, the evaluation set, the parent model, the
      // keyring, a key, the ledger or the audit log. `--from M.onnx --out M.onnx --force` replaced the
      // parent, and `--out holdout.csv --force` the evaluation set, with the new model.
      const given = this.opts<Record<string, unknown>>();
      const inputs = [
        'data',
        'schema',
        'from',
        'eval',
        'keyring',
        'passphraseFile',
        'pinFile',
        'trust',
        'signKey',
        'detectors',
        'audit',
        'auditKey',
        'recordKey',
        'trainerKey',
        'ledger',
      ].map((k) => (typeof given[k] === 'string' ? (given[k] as string) : undefined));
      // The protection manifests beside the data and the evaluation set are inputs too.
      inputs.push(
        ...(await protectedDataInputs(
          [given['data'], given['eval']].map((f) => (typeof f === 'string' ? f : undefined)),
        )),
      );
      await checkOutputPath(resolve(o.out), { force: o.force, inputs });
      if (
        (o.advEps !== undefined ||
          o.advSteps !== undefined ||
          o.advEma !== undefined ||
          o.immutable !== undefined) &&
        o.adversarial === undefined
      )
        throw new BulwarkError(
          'ERR_USAGE',
          '--adv-eps, --adv-steps, --adv-ema and --immutable apply with --adversarial only',
        );
      if (o.advEma !== undefined && !(o.advEma > 0 && o.advEma < 1))
        throw new BulwarkError('ERR_USAGE', `--adv-ema: expected a decay in (0, 1), got ${o.advEma}`);
      if (o.adversarial !== undefined && !(o.advEps !== undefined && o.advEps > 0))
        throw new BulwarkError('ERR_USAGE', '--adversarial needs --adv-eps, a budget > 0');
      let schema: Schema | undefined;
      if (o.schema !== undefined) {
        await requireFile(o.schema, 'schema file');
        schema = await loadSchema(o.schema);
      }
      // One read: the dataset and the digest of exactly its bytes (provenance and the audit event). A
      // category field is read as each row's text: typed by inference over every row, a column whose
      // values all look like numbers became numbers ("1.10" read as 1.1, so category "1.1"), and one
      // row that does not (say "beta") turned it back into text, changing how every other row is
      // encoded — outside one row's contribution, which DP training's guarantee is about.
      // A protected file (manifest beside it) is checked on these very rows, before anything else runs.
      // With --from, one keyring checks a protected --data and --eval and opens a package parent: opened
      // at its first use (one scrypt derivation, one prompt), closed once when the command ends.
      const keyringSession = integrity.from !== undefined ? new KeyringSession() : undefined;
      try {
        const read = await readProtectable(
          io,
          o.data,
          '--data',
          { ...this.opts<ProtectedDataOpts>(), ...(keyringSession ? { keyringSession } : {}) },
          (csv) => readWithCategoriesAsText(o.data, schema, csv),
          TRAIN_PROTECTED_USE,
        );
        const dataDigest = read.digest;
        const protectedData = read.protectedData;
        let ds = read.dataset;
        if (schema !== undefined) ds = validateAgainstSchema(ds, schema, { source: o.data });
        const dp = this.opts<DpTrainOpts>();
        // Opened before training: a log that cannot be opened refuses the run (fail closed).
        return await withOperationLog(o.audit, async (log) => {
          await checkTrainingIntegrity(io, integrity, { file: o.data, digest: dataDigest }, log, wantsDp(dp));
          if (integrity.from !== undefined) {
            if (!wantsDp(dp)) {
              return runContinuedTraining(
                io,
                { ...o, ...integrity, dataDigest, protectedData, keyringSession },
                ds,
                schema,
                log,
              );
            }
            // DP fine-tuning: the poisoning checks run as a gate, DP-SGD starts from the model's weights
            // and spends from its ledger budget (train-continue-dp.ts). Architecture options count only
            // when given, so that they can be checked against the model's.
            const given = (name: string) => this.getOptionValueSource(name) === 'cli';
            const dpo: DpContinueCliOpts = {
              ...o,
              ...integrity,
              ...dp,
              dataDigest,
              protectedData,
              keyringSession,
              model: given('model') ? o.model : undefined,
              activation: given('activation') ? o.activation : undefined,
              hidden: o.hidden,
            };
            checkDpContinuation(dpo, schema !== undefined);
            return runContinuedTraining(io, dpo, ds, schema, log, dpTuner(io, dpo, log));
          }
          if (wantsDp(dp))
            return runDpTraining(io, { ...o, ...dp, dataDigest, protectedData }, ds, schema, log);
          return runPlainTraining(io, o, integrity, ds, schema, log, dataDigest, protectedData);
        });
      } finally {
        await keyringSession?.close();
      }
    });
}

/**
 * Plain training (no --from, no DP): trains with the integrity options (sanitising, provenance), writes
 * the ONNX model and records model.trained.
 */
async function runPlainTraining(
  io: Io,
  o: TrainCliOpts,
  integrity: IntegrityTrainOpts,
  ds: Dataset,
  schema: Schema | undefined,
  log: AuditLog | undefined,
  dataDigest: string,
  protectedData: ProtectedDataRecord | undefined,
): Promise<void> {
  // One default for what is trained, recorded and printed.
  const advSteps = o.advSteps ?? 10;
  let bar: Progress | null = null;
  let r: TrainTabularResult;
  let sanitize: Awaited<ReturnType<typeof trainWithIntegrity>>['sanitize'];
  try {
    ({ result: r, sanitize } = await trainWithIntegrity(io, integrity, ds, {
      label: o.label,
      model: o.model,
      solver: o.solver,
      hidden: o.hidden,
      activation: o.activation,
      epochs: o.epochs,
      batchSize: o.batchSize,
      learningRate: o.lr,
      l2: o.l2,
      seed: o.seed,
      testFraction: o.testFraction,
      classWeights: o.classWeights === 'balanced' ? 'balanced' : null,
      features: o.features,
      drop: o.drop,
      metadata: protectedMetadata(protectedData),
      ...(o.adversarial
        ? {
            adversarial: {
              method: o.adversarial,
              eps: o.advEps as number,
              steps: advSteps,
              ...(o.advEma === undefined ? {} : { weightAverage: o.advEma }),
              ...(o.immutable === undefined ? {} : { immutable: o.immutable }),
              ...(schema ? { schema } : {}),
            },
          }
        : {}),
      note: (m) => io.note(m),
      onProgress: (done, total, info) => {
        bar ??= startProgress(io, 'train', total, 'batches');
        bar.update(done, info);
      },
    }));
  } finally {
    (bar as Progress | null)?.stop();
  }
  const out = resolve(o.out);
  await writeFileAtomic(out, r.onnx, { noClobber: o.force !== true });
  const auditIds = await record(log, [
    {
      type: 'model.trained',
      data: {
        modelDigest: sha256Digest(r.onnx),
        datasetDigest: dataDigest,
        algorithm: o.model,
        hyperparameters: {
          solver: o.solver,
          ...(o.hidden ? { hidden: o.hidden.join(',') } : {}),
          epochs: r.training.history.length,
          batchSize: o.batchSize,
          seed: o.seed,
          testFraction: o.testFraction,
          ...sanitizeHyperparameters(sanitize),
          ...protectedHyperparameters(protectedData),
        },
        ...(o.adversarial
          ? {
              adversarial: {
                attack: o.adversarial,
                epsilon: o.advEps as number,
                steps: advSteps,
              },
            }
          : {}),
        metrics: {
          accuracy: r.test.accuracy,
          f1: r.test.f1,
          ...(r.test.rocAuc === undefined ? {} : { rocAuc: r.test.rocAuc }),
        },
      },
    },
  ]);
  const last = r.training.history[r.training.history.length - 1];
  io.result(
    {
      out,
      model: o.model,
      solver: o.solver,
      architecture: [r.network.inputs, ...r.network.hidden, r.network.classes],
      label: o.label,
      classes: r.classValues,
      features: r.features.length,
      trainRows: r.trainRows,
      epochs: r.training.history.length,
      trainLoss: last?.loss,
      test: r.test,
      ...(o.adversarial ? { adversarial: { method: o.adversarial, eps: o.advEps, steps: advSteps } } : {}),
      ...(sanitize ? { sanitize } : {}),
      ...(protectedData ? { protectedData } : {}),
      ...(auditIds.length > 0 ? { auditEvent: auditIds[0] } : {}),
    },
    () =>
      [
        `Trained ${o.model} [${[r.network.inputs, ...r.network.hidden, r.network.classes].join('-')}] on ${r.trainRows} rows, ${r.training.history.length} ${o.solver === 'lbfgs' ? 'L-BFGS iterations' : 'epochs'} (final loss ${last?.loss.toFixed(4)}).`,
        `Test (${r.test.rows} rows): accuracy ${pct(r.test.accuracy)}, precision ${pct(r.test.precision)}, recall ${pct(r.test.recall)}, F1 ${pct(r.test.f1)}${
          r.test.rocAuc !== undefined
            ? `, ROC AUC ${r.test.rocAuc.toFixed(4)}, PR AUC ${r.test.averagePrecision?.toFixed(4)}`
            : ''
        }`,
        `Classes of "${o.label}": ${r.classValues.join(', ')}${r.classValues.length === 2 ? ` (positive: ${r.classValues[1]})` : ''}`,
        `Model: ${out}`,
        ...(auditIds.length > 0 ? [`Audit: model.trained recorded as event ${auditIds[0]}`] : []),
      ].join('\n'),
  );
}
