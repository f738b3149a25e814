/**
 * `bulwark model fit-detectors`: fits and calibrates the gateway's detectors (Mahalanobis, stateful,
 * PRADA) for a model on clean held-out rows and writes them as one detector bundle, which
 * `bulwark model protect --detectors` then seals into the package with the model.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, readJsonFile, requireFile, writeFileAtomic } from '../../core/index.js';
import { Pipeline, readDatasetWithDigest } from '../../data/index.js';
import { type OnnxMemoryOptions, readManifest } from '../../model/index.js';
import {
  argmaxRows,
  BUNDLE_KINDS,
  type BundleKind,
  conformalFprBound,
  fitDetectorBundle,
  loadDetectorBundle,
} from '../../robust/index.js';
import { MODEL_MEMORY_OPTION, modelMemoryOf } from '../model-file.js';
import { checkOutputPath, floatOption, intOption } from '../options.js';
import { ioOf } from '../output.js';
import { withProgress } from '../progress.js';
import { labelled, loadModel } from './evaluate.js';
import {
  addProtectedDataOptions,
  type ProtectedDataOpts,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedDataInputs,
  readProtectable,
} from './protected-data.js';
import { isModelPackage } from './train-continue.js';

function kindList(v: string): BundleKind[] {
  const items = v.split(',').map((s) => s.trim());
  for (const k of items)
    if (!(BUNDLE_KINDS as readonly string[]).includes(k))
      throw new InvalidArgumentError(`expected some of ${BUNDLE_KINDS.join(', ')}, got "${k}"`);
  return [...new Set(items)] as BundleKind[];
}

/**
 * A detector bundle file (`bulwark model fit-detectors`), loaded with every check the gateway makes
 * (each detector calibrated, its state finite, widths agreeing), so a bad one is refused before it is
 * sealed into a package rather than at the gateway's start.
 */
export async function readDetectorBundleFile(path: string): Promise<unknown> {
  const json = await readJsonFile(
    path,
    'detector bundle',
    () => new BulwarkError('ERR_DETECTOR_STATE', `--detectors: ${path} is not JSON`),
  );
  try {
    loadDetectorBundle(json);
  } catch (e) {
    if (e instanceof BulwarkError)
      throw new BulwarkError(e.code, `--detectors: ${path}: ${e.message}`, { cause: e });
    throw e;
  }
  return json;
}

/** What fitting needs of a model: its preprocessing, classes, label, width, and its predictions. */
interface FitSource {
  pipeline: Pipeline | null;
  classValues: string[] | null;
  label: string | undefined;
  inputs: number;
  classes: number;
  /** The model's predicted classes, or null when it cannot run here (a package: no key is given). */
  predict: ((x: Float32Array, rows: number) => Promise<Int32Array>) | null;
  close(): Promise<void>;
}

/**
 * An ONNX model (run with ONNX Runtime for its predictions), or a protected package, read from its
 * manifest without a key: the preprocessing and classes are public there, and the detectors take the
 * inputs, not the weights; PRADA's calibration streams then use the labels for the predicted classes.
 * A manifest is not verified here: the bundle is checked against the real model when it is packaged.
 * `memory` is the bound an ONNX model is opened under (`--max-model-memory`; a package's model does not
 * run here).
 */
async function fitSource(file: string, notes: string[], memory: OnnxMemoryOptions): Promise<FitSource> {
  await requireFile(file, 'model file');
  if (await isModelPackage(file)) {
    const man = await readManifest(file);
    const classValues = man.output.classes ?? null;
    if (classValues === null || man.input.preprocessing === undefined)
      throw new BulwarkError(
        'ERR_ONNX_INVALID',
        `${file}: the package's manifest has no preprocessing or classes (not a model from bulwark train)`,
      );
    notes.push(
      `${file}: a package's model does not run without its keyring: PRADA's calibration streams use the labels as the predicted classes`,
    );
    return {
      pipeline: Pipeline.load(man.input.preprocessing),
      classValues,
      label: man.input.label,
      inputs: man.input.features,
      classes: classValues.length,
      predict: null,
      close: async () => {},
    };
  }
  const m = await loadModel(file, notes, memory);
  const model = m.entry.blackBox ?? m.entry.model;
  return {
    pipeline: m.pipeline,
    classValues: m.classValues,
    label: m.label,
    inputs: model.inputs,
    classes: model.classes,
    predict: async (x, rows) => argmaxRows(await model.predictProba(x, rows), rows, model.classes),
    close: m.close,
  };
}

/** fitDetectorBundle's parameters as the command's options name them. */
const OPTION_OF: Record<string, string> = {
  calibrationShare: '--calibration-share',
  streamLength: '--stream-length',
  streams: '--streams',
  seed: '--seed',
};

/**
 * fitDetectorBundle, its refusals of an argument worded with the option (or the data file) that set it:
 * `rows: ...` is about the rows of --data, `streamLength: ...` about --stream-length.
 */
async function fitBundle(
  dataFile: string,
  ...args: Parameters<typeof fitDetectorBundle>
): ReturnType<typeof fitDetectorBundle> {
  try {
    return await fitDetectorBundle(...args);
  } catch (e) {
    if (!(e instanceof BulwarkError) || e.code !== 'ERR_INVALID_ARGUMENT') throw e;
    const p = e.details['parameter'];
    const option = p === 'rows' ? `--data ${dataFile}` : typeof p === 'string' ? OPTION_OF[p] : undefined;
    if (option === undefined || typeof p !== 'string' || !e.message.startsWith(`${p}:`)) throw e;
    const details = { ...e.details, option: option.split(' ')[0] as string };
    throw new BulwarkError(e.code, `${option}:${e.message.slice(p.length + 1)}`, { details, cause: e });
  }
}

/** How fit-detectors words the protected-data check (protected-data.ts). */
const FIT_USE: ProtectedDataUse = {
  files: '--data',
  purpose: 'the detectors are fitted',
  recorded: 'the --json result',
};

/** Registers `fit-detectors` under `bulwark model`. */
export function registerFitDetectorsCommand(model: Command): void {
  const cmd = model
    .command('fit-detectors')
    .argument('<model>', 'the model: ONNX from bulwark train, or a package (.bwm)')
    .description(
      "fit and calibrate the gateway's detectors for a model (ONNX from bulwark train, or a package) on clean held-out rows",
    )
    .requiredOption('--data <file>', 'clean labelled rows the model did not train on (CSV, TSV or Parquet)')
    .requiredOption('--out <file>', 'detector bundle to write (JSON, mode 0600)')
    .option('--label <column>', 'the label column (default: the one the model was trained on)')
    .option('--kinds <list>', `detectors: ${BUNDLE_KINDS.join(',')}`, kindList, [...BUNDLE_KINDS])
    .option(
      '--fpr <f>',
      'target false-positive rate of each detector on clean traffic',
      floatOption(1e-6, 0.5),
      0.01,
    )
    .option(
      '--calibration-share <f>',
      'share of the rows held out to calibrate the thresholds',
      floatOption(0.01, 0.99),
      0.5,
    )
    .option(
      '--streams <n>',
      'benign query streams the stream detectors calibrate on',
      intOption(1, 100000),
      100,
    )
    .option(
      '--stream-length <n>',
      'queries per benign stream (default min(500, calibration rows))',
      intOption(2, 1e7),
    )
    .option('--seed <n>', 'seed of the split and the streams', intOption(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--force', 'overwrite --out')
    .option(...MODEL_MEMORY_OPTION);
  addProtectedDataOptions(cmd, FIT_USE, { keyring: true })
    .addHelpText(
      'after',
      `
The rows are split (seeded): the detectors are fitted on one part and their thresholds calibrated on
the other (split-conformal: the rate holds on fresh clean traffic). Use rows the model did not train
on: the bundle holds statistics of them (class means, a covariance), and for a differentially private
model, \`model protect\` refuses a bundle fitted on the training file. The bundle records the data
file's SHA-256 and, for a protected dataset, its id and whether it was verified (fittedOn.protectedData,
shown by model inspect once packaged). Then: bulwark model protect MODEL --detectors BUNDLE ...
(docs/robust.md).

${protectedDataHelp(FIT_USE)} The keyring is the data's: a package's model still does not run here.`,
    )
    .action(async function (this: Command, file: string) {
      const io = ioOf(this);
      const o = this.opts<{
        data: string;
        out: string;
        label?: string;
        kinds: BundleKind[];
        fpr: number;
        calibrationShare: number;
        streams: number;
        streamLength?: number;
        seed: number;
        force?: boolean;
      }>();
      const po = this.opts<ProtectedDataOpts>();
      // Never over the model, the data, its manifest or the keyring, whatever --force says.
      await checkOutputPath(o.out, {
        force: o.force,
        inputs: [file, o.data, ...(await protectedDataInputs([o.data], po))],
      });
      const notes: string[] = [];
      const m = await fitSource(file, notes, modelMemoryOf(this));
      try {
        const label = o.label ?? m.label;
        if (label === undefined)
          throw new BulwarkError(
            'ERR_USAGE',
            `--label: ${file} does not say which column it predicts; give --label`,
            { details: { option: '--label' } },
          );
        // A protected file (manifest beside it) is checked on the very rows the detectors are fitted on
        // (a tampered calibration set would shift their thresholds).
        const { dataset, digest, protectedData } = await readProtectable(
          io,
          o.data,
          '--data',
          po,
          (csv) => readDatasetWithDigest(o.data, csv),
          FIT_USE,
        );
        const { inputs, classes } = m;
        const { data } = labelled(dataset, label, m.pipeline, m.classValues, inputs, o.data);
        // PRADA's per-class sets take the class the model predicts, as in the gateway.
        const predicted = m.predict ? await m.predict(data.x, data.rows) : data.y;
        const bundle = await withProgress(io, 'fit detectors', o.kinds.length, (bar) =>
          fitBundle(o.data, data.x, data.y, data.rows, {
            classes,
            kinds: o.kinds,
            fpr: o.fpr,
            calibrationShare: o.calibrationShare,
            seed: o.seed,
            datasetDigest: digest,
            // Whether the rows were a protected dataset verified against its manifest travels with
            // the bundle (and into a package's manifest): the --json result alone was lost with it.
            ...(protectedData ? { protectedData } : {}),
            streams: o.streams,
            ...(o.streamLength !== undefined ? { streamLength: o.streamLength } : {}),
            predicted,
            onProgress: (done) => bar.update(done),
            onNote: (n) => notes.push(n),
          }),
        );
        // 0600: the bundle holds statistics of the rows (class means, a precision matrix).
        await writeFileAtomic(o.out, JSON.stringify(bundle), { mode: 0o600, noClobber: o.force !== true });
        for (const n of notes) io.note(n);
        // With each calibration, the false-positive rate its threshold will not exceed on new clean
        // traffic with 95 % confidence (conformalFprBound): the target holds on average over
        // calibration sets, and with few scores one threshold's own rate is often well above it.
        const detectors = Object.fromEntries(
          Object.entries(bundle.detectors).map(([k, j]) => {
            const c = j?.calibration;
            return [k, c ? { ...c, fprBound95: conformalFprBound(c.n, c.fpr) } : c];
          }),
        );
        io.result(
          {
            bundle: o.out,
            model: file,
            features: bundle.features,
            classes: bundle.classes,
            fittedOn: bundle.fittedOn,
            ...(protectedData ? { protectedData } : {}),
            detectors,
            notes,
          },
          () =>
            [
              `wrote ${o.out}: ${Object.keys(detectors).join(', ')} for ${bundle.features} features and ${bundle.classes} classes`,
              `  data:         ${o.data} (${digest}), fitted on ${bundle.fittedOn?.fitRows} rows, calibrated on ${bundle.fittedOn?.calibrationRows} others${protectedData ? `; protected dataset ${protectedData.dataset}, ${protectedData.verified ? 'verified against its manifest' : 'NOT verified (--no-verify-protected)'}` : ''}`,
              ...Object.entries(detectors).map(
                ([k, c]) =>
                  `  ${`${k}:`.padEnd(14)}threshold ${c?.threshold.toPrecision(4)}, target FPR ${c?.fpr} (${(100 * (c?.calibrationFpr ?? 0)).toFixed(2)} % of the ${c?.n} calibration ${k === 'mahalanobis' ? 'rows' : 'streams'} above it; on new traffic below ${(100 * (c?.fprBound95 ?? 0)).toFixed(2)} % with 95 % confidence${(c?.fprBound95 ?? 0) > 2 * (c?.fpr ?? 1) ? `: calibrate on about ${Math.ceil(10 / (c?.fpr ?? 1))} or more to hold the target more tightly` : ''})`,
              ),
              `Seal it into a package: bulwark model protect MODEL.onnx --detectors ${o.out} ... (or bulwark train --from PACKAGE.bwm ... --detectors ${o.out})`,
            ].join('\n'),
        );
      } finally {
        await m.close();
      }
    });
}
