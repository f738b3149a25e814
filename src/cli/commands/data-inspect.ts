import { basename } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, requireFile } from '../../core/index.js';
import { type Dataset, Pipeline, readDataset } from '../../data/index.js';
import {
  INSPECT_METHODS,
  type Inspection,
  type InspectMethod,
  inspectRowsAsync,
  labelIndices,
} from '../../integrity/index.js';
import { fromOnnx, metadataJson, onnxMetadata } from '../../ml/index.js';
import { META_CLASS_VALUES, META_LABEL, META_PIPELINE } from '../../train/index.js';
import { readOnnxModelFile } from '../model-file.js';
import { checkOutputPath, floatOption, intOption } from '../options.js';
import { ioOf } from '../output.js';
import { writeHtmlReport } from '../report.js';
import {
  addProtectedDataOptions,
  type ProtectedDataOpts,
  type ProtectedDataRecord,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedDataInputs,
  protectedDataLine,
  readProtectable,
} from './protected-data.js';

function method(v: string): InspectMethod {
  if (!(INSPECT_METHODS as readonly string[]).includes(v))
    throw new InvalidArgumentError(`expected one of ${INSPECT_METHODS.join(', ')}, got "${v}"`);
  return v as InspectMethod;
}

/**
 * Loads a Bulwark-trained ONNX model and the data's encoded rows and labels (`read`: how the data file
 * is read, by default as it is); runs the defences.
 */
export async function inspectFile(
  modelFile: string,
  dataFile: string,
  o: { label?: string; method: InspectMethod; expectedPoison: number; seed: number },
  read: (path: string) => Promise<Dataset> = (path) => readDataset(path),
): Promise<{ inspection: Inspection; classValues: string[]; label: string }> {
  const bytes = await readOnnxModelFile(modelFile);
  await requireFile(dataFile, 'data file');
  const meta = onnxMetadata(bytes);
  const pipeline = Pipeline.load(metadataJson<unknown>(meta, META_PIPELINE, modelFile, true));
  const classValues = metadataJson<string[]>(meta, META_CLASS_VALUES, modelFile, true);
  const label = o.label ?? meta[META_LABEL];
  if (label === undefined)
    throw new BulwarkError('ERR_USAGE', '--label is needed: the model does not name its label');
  const net = fromOnnx(bytes).network;
  const ds = await read(dataFile);
  const fm = pipeline.transform(ds);
  if (fm.features.length !== net.inputs)
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `${dataFile}: the model takes ${net.inputs} features, the data gives ${fm.features.length}`,
    );
  const y = labelIndices(ds, label, classValues);
  const inspection = await inspectRowsAsync(net, fm.matrix, y, {
    method: o.method,
    expectedPoisonFraction: o.expectedPoison,
    seed: o.seed,
  });
  return { inspection, classValues, label };
}

/** How data inspect words the protected-data check (protected-data.ts). */
const INSPECT_USE: ProtectedDataUse = {
  files: '--data',
  purpose: 'the inspection',
  recorded: 'the --json result and the report',
};

/** `bulwark data inspect`: flags suspicious training rows (spectral signatures, activation clustering). */
export function registerDataInspectCommand(data: Command): void {
  const cmd = data
    .command('inspect')
    .description("flag suspicious (possibly poisoned) training rows from a model's hidden activations")
    .requiredOption('--model <file>', 'a model trained on the data (ONNX from bulwark train)')
    .requiredOption('--data <file>', 'the training data to inspect (CSV, TSV or Parquet)')
    .option('--label <column>', 'the label column (default: the one the model was trained on)')
    .option('--method <m>', `${INSPECT_METHODS.join(', ')}`, method, 'both' as InspectMethod)
    .option(
      '--expected-poison <f>',
      'expected poisoned share for spectral signatures (1.5x is removed per class)',
      floatOption(0, 0.5),
      0.05,
    )
    .option('--limit <n>', 'flagged rows shown in the table', intOption(1, 1e9), 20)
    .option('--report <file>', 'write an HTML report here')
    .option(
      '--seed <n>',
      'seed of the clustering and eigenvector iterations',
      intOption(0, Number.MAX_SAFE_INTEGER),
      0,
    )
    .option('--force', 'overwrite --report if it exists');
  addProtectedDataOptions(cmd, INSPECT_USE, { keyring: true })
    .addHelpText(
      'after',
      `
Per class, spectral signatures (Tran, Li & Madry 2018) score rows by their projection on the top
singular vector of the centred last-hidden-layer activations and flag the top 1.5 x --expected-poison;
activation clustering (Chen et al. 2018) splits the activations into two clusters and flags a small,
well-separated one. Row numbers are 1-based data rows (the header not counted). See docs/integrity.md.

${protectedDataHelp(INSPECT_USE)}`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{
        model: string;
        data: string;
        label?: string;
        method: InspectMethod;
        expectedPoison: number;
        limit: number;
        report?: string;
        seed: number;
        force?: boolean;
      }>();
      const io = ioOf(this);
      const po = this.opts<ProtectedDataOpts>();
      // Before the work; and never over the model, the data, its manifest or the keyring, whatever
      // --force says.
      if (o.report !== undefined)
        await checkOutputPath(o.report, {
          force: o.force,
          option: '--report',
          inputs: [o.model, o.data, ...(await protectedDataInputs([o.data], po))],
        });
      // A protected file (manifest beside it) is checked on the very rows inspected.
      let protectedData: ProtectedDataRecord | undefined;
      const {
        inspection: r,
        classValues,
        label,
      } = await inspectFile(
        o.model,
        o.data,
        {
          ...(o.label !== undefined ? { label: o.label } : {}),
          method: o.method,
          expectedPoison: o.expectedPoison,
          seed: o.seed,
        },
        async (path) => {
          const read = await readProtectable(
            io,
            path,
            '--data',
            po,
            async (csv) => ({ dataset: await readDataset(path, csv) }),
            INSPECT_USE,
          );
          protectedData = read.protectedData;
          return read.dataset;
        },
      );
      const perClass = classValues.map((v, c) => ({
        class: v,
        rows: r.spectral?.classes[c]?.rows ?? r.activations?.classes[c]?.rows ?? 0,
        spectral: r.spectral?.classes[c]?.flagged ?? null,
        activations: r.activations?.classes[c]?.flagged ?? null,
        clusterShares: r.activations?.classes[c]?.clusterShares ?? null,
        silhouette: r.activations?.classes[c]?.silhouette ?? null,
      }));
      const flagged = r.flagged.map((f) => ({
        row: f.row + 1,
        class: classValues[f.class] as string,
        score: f.score,
        by: f.by,
      }));
      let reportPath: string | undefined;
      if (o.report !== undefined) {
        reportPath = await writeHtmlReport(o.report, o.force, {
          title: 'Bulwark training-data inspection',
          subtitle: `${basename(o.model)} on ${basename(o.data)} (label "${label}").`,
          sections: [
            {
              id: 'summary',
              status: 'ok',
              title: 'Per class',
              blocks: [
                {
                  kind: 'text',
                  text: `${flagged.length} of ${r.rows} rows flagged (${o.method}; spectral signatures remove 1.5 x ${o.expectedPoison} of each class).`,
                },
                ...(protectedData
                  ? [{ kind: 'text' as const, text: protectedDataLine(o.data, protectedData) }]
                  : []),
                {
                  kind: 'table',
                  columns: [
                    'class',
                    'rows',
                    'spectral flagged',
                    'clustering flagged',
                    'cluster shares',
                    'silhouette',
                  ],
                  rows: perClass.map((c) => [
                    c.class,
                    c.rows,
                    c.spectral ?? '-',
                    c.activations ?? '-',
                    c.clusterShares ? c.clusterShares.map((s) => s.toFixed(2)).join(' / ') : '-',
                    c.silhouette === null ? '-' : c.silhouette.toFixed(3),
                  ]),
                },
              ],
            },
            {
              id: 'rows',
              status: 'ok',
              title: 'Flagged rows',
              blocks: [
                {
                  kind: 'table',
                  columns: ['row', 'class', 'score', 'flagged by'],
                  rows: flagged
                    .slice(0, 1000)
                    .map((f) => [f.row, f.class, f.score.toFixed(3), f.by.join(', ')]),
                  caption: flagged.length > 1000 ? `first 1,000 of ${flagged.length}; --json lists all` : '',
                },
              ],
            },
          ],
        });
      }
      io.result(
        {
          rows: r.rows,
          method: o.method,
          flaggedCount: flagged.length,
          classes: perClass,
          flagged,
          ...(protectedData ? { protectedData } : {}),
          ...(reportPath ? { report: reportPath } : {}),
        },
        () => {
          const lines = [`${flagged.length} of ${r.rows} rows flagged (${o.method}).`];
          for (const c of perClass)
            lines.push(
              `  class ${c.class}: ${c.rows} rows; spectral ${c.spectral ?? '-'}, clustering ${c.activations ?? '-'}${c.clusterShares ? ` (clusters ${c.clusterShares.map((s) => (100 * s).toFixed(0)).join('/')} %, silhouette ${c.silhouette?.toFixed(2)})` : ''}`,
            );
          if (flagged.length > 0) {
            lines.push('   row  class        score  by');
            for (const f of flagged.slice(0, o.limit))
              lines.push(
                `${String(f.row).padStart(6)}  ${f.class.padEnd(10).slice(0, 10)} ${f.score.toFixed(3).padStart(7)}  ${f.by.join(', ')}`,
              );
            if (flagged.length > o.limit)
              lines.push(`  ... ${flagged.length - o.limit} more (--limit, --json)`);
          }
          if (reportPath) lines.push(`Report: ${reportPath}`);
          return lines.join('\n');
        },
      );
    });
}
