import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, requireFile, writeFileAtomic } from '../../core/index.js';
import { type Dataset, Pipeline, readDataset } from '../../data/index.js';
import {
  accuracy,
  fromOnnx,
  metadataJson,
  OnnxRuntimeModel,
  onnxMetadata,
  softmaxRows,
} from '../../ml/index.js';
import type { OnnxMemoryOptions } from '../../model/index.js';
import { classIndexOf, META_CLASS_VALUES, META_LABEL, META_PIPELINE } from '../../train/index.js';
import { MODEL_MEMORY_OPTION, modelMemoryOf, readOnnxModelFile } from '../model-file.js';
import { checkOutputPath } from '../options.js';
import { ioOf } from '../output.js';
import {
  addProtectedDataOptions,
  type ProtectedDataOpts,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedDataInputs,
  readProtectable,
} from './protected-data.js';

export interface Predictions {
  rows: number;
  classValues: string[];
  /** Predicted class index of each row. */
  predicted: Int32Array;
  /** Class probabilities, `rows x classes`. */
  probabilities: Float32Array;
}

/** The model's input matrix for `ds`: through the saved pipeline, or the numeric columns in order. */
function featuresOf(ds: Dataset, meta: Record<string, string>, inputs: number | null): Float32Array {
  const state = metadataJson<unknown>(meta, META_PIPELINE, 'model');
  let x: Float32Array;
  let names: readonly string[];
  if (state !== undefined) {
    const p = Pipeline.load(state);
    const fm = p.transform(ds);
    x = fm.matrix;
    names = fm.features;
  } else {
    names = ds.columns.filter((c) => c.type !== 'string').map((c) => c.name);
    x = ds.toMatrix(names);
  }
  if (inputs !== null && names.length !== inputs) {
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `the model takes ${inputs} features, the data gives ${names.length} (${state === undefined ? 'numeric columns; the model has no Bulwark preprocessing metadata' : 'after preprocessing'})`,
    );
  }
  const d = names.length;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new BulwarkError(
        'ERR_DATA_VALUE',
        `row ${Math.floor(i / d) + 1} column "${names[i % d]}" is ${x[i]}`,
        {
          details: { row: Math.floor(i / d) + 1, field: names[i % d] as string },
        },
      );
    }
  }
  return x;
}

/**
 * Predicts with an ONNX model on a dataset, through ONNX Runtime (`onnxruntime`) or Bulwark's own
 * forward pass of the imported model (`bulwark`). `memory` is the bound ONNX Runtime opens the model
 * under (`OnnxRuntimeModel.create`; its defaults unless given).
 */
export async function predictDataset(
  bytes: Uint8Array,
  ds: Dataset,
  engine: 'onnxruntime' | 'bulwark' = 'onnxruntime',
  memory?: OnnxMemoryOptions,
): Promise<Predictions> {
  const meta = onnxMetadata(bytes);
  const rows = ds.rowCount;
  if (rows === 0) throw new BulwarkError('ERR_DATA_VALUE', 'the data has no rows');
  let probabilities: Float32Array;
  let k: number;
  if (engine === 'bulwark') {
    const net = fromOnnx(bytes).network;
    const x = featuresOf(ds, meta, net.inputs);
    probabilities = net.predictProba(x, rows);
    k = net.classes;
  } else {
    const model = await OnnxRuntimeModel.create(bytes, memory !== undefined ? { memory } : {});
    try {
      const pipelineWidth = metadataJson<{ features?: string[] }>(meta, META_PIPELINE, 'model')?.features
        ?.length;
      const x = featuresOf(ds, meta, null);
      const d = x.length / rows;
      if (pipelineWidth !== undefined && pipelineWidth !== d) {
        throw new BulwarkError(
          'ERR_SHAPE_MISMATCH',
          `pipeline gives ${d} features, metadata says ${pipelineWidth}`,
        );
      }
      const out = await model.run(x, rows, d);
      const name = 'probabilities' in out ? 'probabilities' : (Object.keys(out)[0] as string);
      const o = out[name] as { data: Float32Array; dims: readonly number[] };
      k = o.data.length / rows;
      probabilities = o.data;
      if (k === 1) {
        // One score per row: the probability of the second class.
        probabilities = new Float32Array(rows * 2);
        for (let i = 0; i < rows; i++) {
          probabilities[2 * i] = 1 - (o.data[i] as number);
          probabilities[2 * i + 1] = o.data[i] as number;
        }
        k = 2;
      } else if (name !== 'probabilities' && fromOnnxKind(bytes) === 'logits') {
        probabilities = softmaxRows(o.data, rows, k);
      }
    } finally {
      await model.close();
    }
  }
  const classValues =
    metadataJson<string[]>(meta, META_CLASS_VALUES, 'model') ??
    Array.from({ length: k }, (_, i) => String(i));
  if (classValues.length !== k) {
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `metadata lists ${classValues.length} classes, the model outputs ${k}`,
    );
  }
  const predicted = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < k; c++)
      if ((probabilities[r * k + c] as number) > (probabilities[r * k + best] as number)) best = c;
    predicted[r] = best;
  }
  return { rows, classValues, predicted, probabilities };
}

/** Whether an importable model's output is logits (null when Bulwark cannot import the graph). */
function fromOnnxKind(bytes: Uint8Array): 'logits' | 'probabilities' | null {
  try {
    return fromOnnx(bytes).outputKind;
  } catch {
    return null;
  }
}

/**
 * One CSV field of the predictions. The class names come from the model file's metadata, which whoever
 * made the model wrote: a name beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is a
 * formula to a spreadsheet that opens the file (`=HYPERLINK(...)`, `=cmd|...`: CSV injection, OWASP),
 * so it is written with a leading apostrophe, as OWASP advises, unless it is a plain number (a class
 * `-1` stays `-1`).
 */
export function csvField(s: string): string {
  const safe = /^[=+\-@\t\r]/.test(s) && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** How predict words the protected-data check (protected-data.ts). */
const PREDICT_USE: ProtectedDataUse = {
  files: '--data',
  purpose: 'any prediction',
  recorded: 'the --json result',
};

/** `bulwark predict`: class predictions and probabilities for each row of a data file. */
export function registerPredictCommand(program: Command): void {
  const cmd = program
    .command('predict')
    .description(
      'predict with an ONNX model (from `bulwark train` or any dense ONNX classifier) on a data file',
    )
    .requiredOption('--model <file>', 'the model (ONNX)')
    .requiredOption('--data <file>', 'rows to predict (CSV, TSV or Parquet)')
    .option('--out <file>', 'write the predictions as CSV here (default: stdout)')
    .option(
      '--engine <name>',
      'onnxruntime (ONNX Runtime) or bulwark (our own forward pass of the imported model)',
      (v: string) => {
        if (v !== 'onnxruntime' && v !== 'bulwark')
          throw new InvalidArgumentError(`expected onnxruntime or bulwark, got "${v}"`);
        return v;
      },
      'onnxruntime',
    )
    .option('--force', 'overwrite --out if it exists')
    .option(...MODEL_MEMORY_OPTION);
  addProtectedDataOptions(cmd, PREDICT_USE, { keyring: true })
    .addHelpText(
      'after',
      `
Output: one CSV row per input row: prediction, then p_<class> for each class. When the data holds the
model's label column, the accuracy is reported on stderr (and in --json).

${protectedDataHelp(PREDICT_USE)}`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{
        model: string;
        data: string;
        out?: string;
        engine: 'onnxruntime' | 'bulwark';
        force?: boolean;
      }>();
      const io = ioOf(this);
      const bytes = await readOnnxModelFile(o.model);
      await requireFile(o.data, 'data file');
      const po = this.opts<ProtectedDataOpts>();
      // Before the work, and never over the model, the data, its manifest or the keyring, --force or not.
      if (o.out !== undefined)
        await checkOutputPath(o.out, {
          force: o.force,
          inputs: [o.model, o.data, ...(await protectedDataInputs([o.data], po))],
        });
      // A protected file (manifest beside it) is checked on these very rows before any prediction.
      const { dataset: ds, protectedData } = await readProtectable(
        io,
        o.data,
        '--data',
        po,
        async (csv) => ({ dataset: await readDataset(o.data, csv) }),
        PREDICT_USE,
      );
      const p = await predictDataset(bytes, ds, o.engine, modelMemoryOf(this));
      const meta = onnxMetadata(bytes);
      const label = meta[META_LABEL];
      let acc: number | undefined;
      if (label !== undefined && ds.has(label)) {
        const col = ds.column(label);
        const truth = Array.from({ length: ds.rowCount }, (_, i) =>
          classIndexOf(
            p.classValues,
            col.type === 'string' ? (col.values[i] ?? null) : (col.values[i] as number),
          ),
        );
        acc = accuracy(truth, p.predicted);
      }
      const k = p.classValues.length;
      const lines = [['prediction', ...p.classValues.map((c) => `p_${c}`)].map(csvField).join(',')];
      for (let r = 0; r < p.rows; r++) {
        const probs = Array.from({ length: k }, (_, c) => String(p.probabilities[r * k + c]));
        lines.push([csvField(p.classValues[p.predicted[r] as number] as string), ...probs].join(','));
      }
      const csv = `${lines.join('\n')}\n`;
      if (o.out !== undefined) await writeFileAtomic(resolve(o.out), csv, { noClobber: o.force !== true });
      if (acc !== undefined)
        io.note(`accuracy on the "${label}" column: ${(100 * acc).toFixed(2)} % (${p.rows} rows)`);
      if (io.json) {
        io.result(
          {
            rows: p.rows,
            classes: p.classValues,
            ...(acc !== undefined ? { accuracy: acc } : {}),
            ...(protectedData ? { protectedData } : {}),
            ...(o.out !== undefined
              ? { out: resolve(o.out) }
              : {
                  predictions: Array.from({ length: p.rows }, (_, r) => ({
                    prediction: p.classValues[p.predicted[r] as number],
                    probabilities: Array.from(p.probabilities.subarray(r * k, (r + 1) * k)),
                  })),
                }),
          },
          () => '',
        );
      } else if (o.out === undefined) {
        // A reader that stops early (`| head`) is handled once for every command (cli/main.ts).
        process.stdout.write(csv);
      } else io.result(null, () => `Wrote ${p.rows} predictions to ${resolve(o.out as string)}`);
    });
}
