/**
 * `bulwark model fit-detectors`: fits and calibrates the gateway's detectors (Mahalanobis, stateful,
 * PRADA) for a model on clean held-out rows and writes them as one detector bundle, which
 * `bulwark model protect --detectors` then seals into the package with the model.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, writeFileAtomic } from '../../core/index.js';
import { readDatasetWithDigest } from '../../data/index.js';
import { argmaxRows, BUNDLE_KINDS, type BundleKind, fitDetectorBundle } from '../../robust/index.js';
import { checkOutputPath, floatOption, intOption } from '../options.js';
import { ioOf } from '../program.js';
import { withProgress } from '../progress.js';
import { labelled, loadModel } from './evaluate.js';

function kindList(v: string): BundleKind[] {
  const items = v.split(',').map((s) => s.trim());
  for (const k of items)
    if (!(BUNDLE_KINDS as readonly string[]).includes(k))
      throw new InvalidArgumentError(`expected some of ${BUNDLE_KINDS.join(', ')}, got "${k}"`);
  return [...new Set(items)] as BundleKind[];
}

/** Registers `fit-detectors` under `bulwark model`. */
export function registerFitDetectorsCommand(model: Command): void {
  model
    .command('fit-detectors <model>')
    .description(
      "fit and calibrate the gateway's detectors for a model (ONNX from bulwark train) on clean held-out rows",
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
    .addHelpText(
      'after',
      `
The rows are split (seeded): the detectors are fitted on one part and their thresholds calibrated on
the other (split-conformal: the rate holds on fresh clean traffic). Use rows the model did not train
on: the bundle holds statistics of them (class means, a covariance), and for a differentially private
model, \`model protect\` refuses a bundle fitted on the training file. The bundle records the data
file's SHA-256. Then: bulwark model protect MODEL --detectors BUNDLE ... (docs/robust.md).`,
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
      await checkOutputPath(o.out, { force: o.force, inputs: [file, o.data] });
      const notes: string[] = [];
      const m = await loadModel(file, notes);
      try {
        const label = o.label ?? m.label;
        if (label === undefined)
          throw new BulwarkError(
            'ERR_USAGE',
            `--label: ${file} does not say which column it predicts; give --label`,
            { details: { option: '--label' } },
          );
        const { dataset, digest } = await readDatasetWithDigest(o.data);
        const model = m.entry.blackBox ?? m.entry.model;
        const { inputs, classes } = model;
        const { data } = labelled(dataset, label, m.pipeline, m.classValues, inputs, o.data);
        // PRADA's per-class sets take the class the model predicts, as in the gateway.
        const predicted = argmaxRows(await model.predictProba(data.x, data.rows), data.rows, classes);
        const bundle = await withProgress(io, 'fit detectors', o.kinds.length, (bar) =>
          fitDetectorBundle(data.x, data.y, data.rows, {
            classes,
            kinds: o.kinds,
            fpr: o.fpr,
            calibrationShare: o.calibrationShare,
            seed: o.seed,
            datasetDigest: digest,
            streams: o.streams,
            ...(o.streamLength !== undefined ? { streamLength: o.streamLength } : {}),
            predicted,
            onProgress: (done) => bar.update(done),
          }),
        );
        // 0600: the bundle holds statistics of the rows (class means, a precision matrix).
        await writeFileAtomic(o.out, JSON.stringify(bundle), { mode: 0o600, noClobber: o.force !== true });
        for (const n of notes) io.note(n);
        const detectors = Object.fromEntries(
          Object.entries(bundle.detectors).map(([k, j]) => [k, j?.calibration]),
        );
        io.result(
          {
            bundle: o.out,
            model: file,
            features: bundle.features,
            classes: bundle.classes,
            fittedOn: bundle.fittedOn,
            detectors,
          },
          () =>
            [
              `wrote ${o.out}: ${Object.keys(detectors).join(', ')} for ${bundle.features} features and ${bundle.classes} classes`,
              `  data:         ${o.data} (${digest}), fitted on ${bundle.fittedOn?.fitRows} rows, calibrated on ${bundle.fittedOn?.calibrationRows} others`,
              ...Object.entries(detectors).map(
                ([k, c]) =>
                  `  ${`${k}:`.padEnd(14)}threshold ${c?.threshold.toPrecision(4)}, target FPR ${c?.fpr} (${(100 * (c?.calibrationFpr ?? 0)).toFixed(2)} % of the ${c?.n} calibration ${k === 'mahalanobis' ? 'rows' : 'streams'} above it)`,
              ),
              `Seal it into the package: bulwark model protect ${file} --detectors ${o.out} ...`,
            ].join('\n'),
        );
      } finally {
        await m.close();
      }
    });
}
