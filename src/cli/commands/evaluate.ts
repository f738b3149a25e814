import { basename } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, isBulwarkError, requireFile } from '../../core/index.js';
import {
  type Dataset,
  loadSchema,
  Pipeline,
  readDataset,
  type Schema,
  validateAgainstSchema,
} from '../../data/index.js';
import {
  fromOnnx,
  type LabelledData,
  metadataJson,
  type Network,
  OnnxRuntimeModel,
  onnxMetadata,
} from '../../ml/index.js';
import type { OnnxMemoryOptions } from '../../model/index.js';
import {
  NORMS,
  type Norm,
  networkModel,
  onnxRuntimeModel,
  REDTEAM_ATTACKS,
  type RedTeamAttack,
  type RedTeamModel,
  type RedTeamResult,
  redTeam,
  redTeamSections,
  tabularDomain,
  tprAtLowFpr,
} from '../../robust/index.js';
import { META_CLASS_VALUES, META_LABEL, META_PIPELINE } from '../../train/index.js';
import { MODEL_MEMORY_OPTION, modelMemoryOf, readOnnxModelFile } from '../model-file.js';
import { checkOutputPath, floatOption, intOption, listOption } from '../options.js';
import { ioOf } from '../output.js';
import { startProgress } from '../progress.js';
import { writeHtmlReport } from '../report.js';
import { checkGateInputs, runEvaluateGate } from './evaluate-gate.js';
import {
  addProtectedDataOptions,
  KeyringSession,
  type ProtectedDataOpts,
  type ProtectedDataRecord,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedDataInputs,
  protectedDataLine,
  readProtectable,
} from './protected-data.js';

interface LoadedModel {
  entry: RedTeamModel;
  pipeline: Pipeline | null;
  classValues: string[] | null;
  label: string | undefined;
  close: () => Promise<void>;
}

/**
 * Opens a model for evaluation: white-box through Bulwark's import of the graph (when it is a dense
 * chain Bulwark can import), and black-box through ONNX Runtime either way, under the memory bound
 * `memory` (`OnnxRuntimeModel.create`; its defaults unless given).
 */
export async function loadModel(
  file: string,
  notes: string[],
  memory?: OnnxMemoryOptions,
): Promise<LoadedModel> {
  const bytes = await readOnnxModelFile(file);
  const meta = onnxMetadata(bytes);
  const pipelineState = metadataJson<unknown>(meta, META_PIPELINE, file);
  const classValues = metadataJson<string[]>(meta, META_CLASS_VALUES, file) ?? null;
  let network: Network | null = null;
  try {
    network = fromOnnx(bytes).network;
  } catch (e) {
    if (!isBulwarkError(e, 'ERR_ONNX_UNSUPPORTED_OP') && !isBulwarkError(e, 'ERR_ONNX_INVALID')) throw e;
    notes.push(`${basename(file)}: not importable as a network (${e.message}); black-box attacks only`);
  }
  const session = await OnnxRuntimeModel.create(bytes, memory !== undefined ? { memory } : {});
  const name = basename(file).replace(/\.onnx$/i, '');
  const inputs = network?.inputs ?? metadataJson<string[]>(meta, 'bulwark.features', file)?.length;
  const classes = network?.classes ?? classValues?.length;
  if (inputs === undefined || classes === undefined) {
    await session.close();
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `${file}: cannot tell the model's input width and classes (not importable, and no Bulwark metadata)`,
    );
  }
  const blackBox = onnxRuntimeModel(session, { inputs, classes }, { name: `${name} (ONNX Runtime)` });
  const entry: RedTeamModel = network
    ? { name, model: networkModel(network, name), network, blackBox }
    : { name, model: blackBox, blackBox };
  return {
    entry,
    pipeline: pipelineState === undefined ? null : Pipeline.load(pipelineState),
    classValues,
    label: meta[META_LABEL],
    close: () => session.close(),
  };
}

/** Features and class indices of a data file for the model. */
/**
 * The schema as seen by the model's input: a numeric field's bounds mapped through the model's own
 * preprocessing (a DP model scales its features by the public bounds before the network sees them), and
 * such a field no longer an integer. The attacks work on the network's input, so their valid range must
 * be in its units: raw bounds compared with scaled features refused every row.
 */
function schemaInModelSpace(schema: Schema, pipeline: Pipeline | null): Schema {
  if (!pipeline) return schema;
  const { inputs, features } = pipeline.toJSON();
  const row = (pick: 'min' | 'max') =>
    Object.fromEntries(
      inputs.map((i) => {
        const f = schema.fields.find((x) => x.name === i.name);
        return [i.name, i.type === 'number' && f?.bounds ? f.bounds[pick] : null];
      }),
    );
  let lo: Float32Array;
  let hi: Float32Array;
  try {
    lo = pipeline.transformRow(row('min'));
    hi = pipeline.transformRow(row('max'));
  } catch {
    return schema; // a preprocessing that cannot take the bounds alone: attack in the schema's units
  }
  return {
    ...schema,
    fields: schema.fields.map((f) => {
      const j = features.indexOf(f.name);
      if (j < 0 || !f.bounds) return f;
      const a = lo[j] as number;
      const b = hi[j] as number;
      if (a === Math.fround(f.bounds.min) && b === Math.fround(f.bounds.max)) return f;
      return {
        ...f,
        type: f.type === 'integer' ? 'number' : f.type,
        bounds: { min: Math.min(a, b), max: Math.max(a, b) },
      };
    }),
  };
}

export function labelled(
  ds: Dataset,
  label: string,
  pipeline: Pipeline | null,
  classValues: string[] | null,
  inputs: number,
  file: string,
): { data: LabelledData; features: readonly string[] } {
  const col = ds.column(label);
  let x: Float32Array;
  let features: readonly string[];
  if (pipeline) {
    const fm = pipeline.transform(ds);
    x = fm.matrix;
    features = fm.features;
  } else {
    features = ds.columns.filter((c) => c.name !== label && c.type !== 'string').map((c) => c.name);
    x = ds.toMatrix(features);
  }
  if (features.length !== inputs) {
    throw new BulwarkError(
      'ERR_SHAPE_MISMATCH',
      `${file}: the model takes ${inputs} features, the data gives ${features.length}${pipeline ? ' after preprocessing' : ' numeric columns (the model has no Bulwark preprocessing metadata)'}`,
    );
  }
  const d = features.length;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new BulwarkError(
        'ERR_DATA_VALUE',
        `${file}: row ${Math.floor(i / d) + 1} column "${features[i % d]}" is ${x[i]}`,
        {
          details: { row: Math.floor(i / d) + 1, field: features[i % d] as string },
        },
      );
    }
  }
  const values =
    classValues ??
    [...new Set(Array.from({ length: ds.rowCount }, (_, i) => String(col.values[i])))].sort((a, b) =>
      col.type === 'string' ? a.localeCompare(b) : Number(a) - Number(b),
    );
  const y = new Int32Array(ds.rowCount);
  for (let i = 0; i < ds.rowCount; i++) {
    const v = col.values[i];
    const idx = v === null || v === undefined ? -1 : values.indexOf(String(v));
    if (idx < 0) {
      throw new BulwarkError(
        'ERR_LABEL_INVALID',
        `${file}: row ${i + 1}: label "${String(v)}" is not one of the model's classes (${values.join(', ')})`,
        { details: { row: i + 1, field: label } },
      );
    }
    y[i] = idx;
  }
  return { data: { x, y, rows: ds.rowCount }, features };
}

function attackList(v: string): RedTeamAttack[] {
  const items = v.split(',').map((s) => s.trim());
  for (const a of items) {
    if (!(REDTEAM_ATTACKS as readonly string[]).includes(a)) {
      throw new InvalidArgumentError(`expected some of ${REDTEAM_ATTACKS.join(', ')}, got "${a}"`);
    }
  }
  return items as RedTeamAttack[];
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

const pct = (v: number | undefined) =>
  v === undefined || Number.isNaN(v) ? 'n/a' : `${(100 * v).toFixed(1)} %`;

/** How evaluate words the protected-data check (protected-data.ts). */
const EVALUATE_USE: ProtectedDataUse = {
  files: '--data/--members',
  purpose: 'the evaluation',
  recorded: 'the --json result, the gate result and the report',
};

/** `bulwark evaluate`: the red-team report of one or more models. */
export function registerEvaluateCommand(program: Command): void {
  const cmd = program
    .command('evaluate')
    .description(
      'red-team models: evasion, black-box, membership-inference and extraction attacks, detectors; HTML report',
    )
    .requiredOption(
      '--model <file>',
      'model to evaluate (ONNX; repeat to compare models, the first is the deployed one)',
      collect,
    )
    .requiredOption('--data <file>', 'labelled rows the models did not train on (CSV, TSV or Parquet)')
    .requiredOption('--label <column>', 'the label column')
    .option('--attacks <list>', `attacks: ${REDTEAM_ATTACKS.join(',')}`, attackList, [
      'fgsm',
      'pgd',
      'square',
    ] as RedTeamAttack[])
    .option('--report <file>', 'write the HTML report here')
    .option('--attack-class <value>', 'attack only rows of this label value (e.g. the fraud class)')
    .option('--members <file>', "the first model's training rows (membership inference)")
    .option('--schema <file>', 'schema YAML: bounds, integer and categorical fields the attacks respect')
    .option('--immutable <columns>', 'input columns the attacker cannot change', listOption(String))
    .option(
      '--eps <list>',
      "attack budgets, in units of each feature's range (schema bounds) or standard deviation",
      listOption(floatOption(0, 1e6)),
      [0, 0.02, 0.05, 0.1, 0.2],
    )
    .option(
      '--detector-eps <e>',
      'budget the detectors are evaluated at (default: the middle of --eps)',
      floatOption(0, 1e6),
    )
    .option(
      '--norm <n>',
      'inf or 2',
      (v: string) => {
        if (!(NORMS as readonly string[]).includes(v))
          throw new InvalidArgumentError(`expected inf or 2, got "${v}"`);
        return v as Norm;
      },
      'inf' as Norm,
    )
    .option('--steps <n>', 'PGD / APGD steps', intOption(1, 100000), 20)
    .option('--restarts <n>', 'PGD / APGD restarts', intOption(1, 1000), 2)
    .option('--queries <n>', 'Square attack query budget per row', intOption(2, 1e7), 500)
    .option('--rows <n>', 'rows attacked', intOption(10, 1e7), 500)
    .option('--fpr <f>', "detectors' target false-positive rate", floatOption(1e-6, 0.5), 0.01)
    .option('--shadows <n>', 'LiRA shadow models (0: loss-threshold attack only)', intOption(0, 256), 8)
    .option('--budgets <list>', 'extraction query budgets', listOption(intOption(2, 1e9)))
    .option('--no-detectors', 'skip the detectors')
    .option('--seed <n>', 'seed of every random choice', intOption(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--force', 'overwrite --report if it exists')
    .option(
      '--gate <file>',
      'security gate YAML: exit 5 when a metric crosses its threshold (docs/integrity.md)',
    )
    .option(
      '--ledger <location>',
      "privacy budget ledger for the gate's privacy-spent checks (default $BULWARK_LEDGER)",
    )
    .option(...MODEL_MEMORY_OPTION);
  addProtectedDataOptions(cmd, EVALUATE_USE, { keyring: true })
    .addHelpText(
      'after',
      `
White-box attacks (fgsm, pgd, apgd) need a model Bulwark can import as a network (any model from
\`bulwark train\`, dense ONNX graphs); square, mia and extract need only its outputs (ONNX Runtime).
mia needs --members. Attacks keep every input valid: within the schema's bounds (or the range seen in
the data), integers integral, one categorical value per field, --immutable columns unchanged.

${protectedDataHelp(EVALUATE_USE)} With --gate, a tampered holdout set is refused
before any check is measured.`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{
        model: string[];
        data: string;
        label: string;
        attacks: RedTeamAttack[];
        report?: string;
        attackClass?: string;
        members?: string;
        schema?: string;
        immutable?: string[];
        eps: number[];
        detectorEps?: number;
        norm: Norm;
        steps: number;
        restarts: number;
        queries: number;
        rows: number;
        fpr: number;
        shadows: number;
        budgets?: number[];
        detectors: boolean;
        seed: number;
        force?: boolean;
        gate?: string;
        ledger?: string;
      }>();
      const io = ioOf(this);
      const po = this.opts<ProtectedDataOpts>();
      const t0 = performance.now();
      if (o.attacks.includes('mia') && o.members === undefined) {
        throw new BulwarkError(
          'ERR_USAGE',
          '--attacks mia needs --members (the training rows of the first model)',
        );
      }
      // Refuse an existing report before the work, not after it (it is checked again when written),
      // and one of the inputs whatever --force says: the HTML would replace the model or the data.
      if (o.report !== undefined)
        await checkOutputPath(o.report, {
          force: o.force,
          option: '--report',
          inputs: [
            ...o.model,
            o.data,
            o.members,
            o.schema,
            o.gate,
            o.ledger,
            ...(await protectedDataInputs([o.data, o.members], po)),
          ],
        });
      await requireFile(o.data, 'data file');
      if (o.members !== undefined) await requireFile(o.members, 'members file');
      let schema: Schema | undefined;
      if (o.schema !== undefined) {
        await requireFile(o.schema, 'schema file');
        schema = await loadSchema(o.schema);
      }
      const notes: string[] = [];
      const loaded: LoadedModel[] = [];
      try {
        for (const f of o.model) loaded.push(await loadModel(f, notes, modelMemoryOf(this)));
        const first = loaded[0] as LoadedModel;
        // A protected file (manifest beside it) is checked on the very rows evaluated, before any attack
        // or gate check: a tampered holdout set could pass a regressed model.
        const protectedData: { data?: ProtectedDataRecord; members?: ProtectedDataRecord } = {};
        // One keyring checks a protected --data and --members: opened at its first use (one scrypt
        // derivation, one passphrase prompt at a terminal) and closed once both are read, before any
        // attack runs. Before, each file opened it anew (as train --from did until 9f6f282).
        const keyringSession = new KeyringSession();
        const read = async (file: string, option: '--data' | '--members') => {
          const r = await readProtectable(
            io,
            file,
            option,
            { ...po, keyringSession },
            async (csv) => ({ dataset: await readDataset(file, csv) }),
            EVALUATE_USE,
          );
          if (r.protectedData) {
            protectedData[option === '--data' ? 'data' : 'members'] = r.protectedData;
            notes.push(protectedDataLine(file, r.protectedData));
          }
          const ds = r.dataset;
          return schema ? validateAgainstSchema(ds, schema, { source: file, allowExtraColumns: true }) : ds;
        };
        const inputs = first.entry.model.inputs;
        let raw: Dataset;
        let test: ReturnType<typeof labelled>;
        let members: ReturnType<typeof labelled>['data'] | undefined;
        try {
          raw = await read(o.data, '--data');
          test = labelled(raw, o.label, first.pipeline, first.classValues, inputs, o.data);
          members =
            o.members === undefined
              ? undefined
              : labelled(
                  await read(o.members, '--members'),
                  o.label,
                  first.pipeline,
                  first.classValues,
                  inputs,
                  o.members,
                ).data;
        } finally {
          await keyringSession.close();
        }
        const recorded = {
          ...(protectedData.data ? { protectedData: protectedData.data } : {}),
          ...(protectedData.members ? { membersProtectedData: protectedData.members } : {}),
        };
        if (first.label !== undefined && first.label !== o.label) {
          notes.push(`the model was trained to predict "${first.label}", evaluated on --label "${o.label}"`);
        }
        for (const m of loaded.slice(1)) {
          const f = m.pipeline?.features;
          if (
            m.entry.model.inputs !== inputs ||
            (f && first.pipeline && f.join('\u0000') !== first.pipeline.features.join('\u0000'))
          ) {
            throw new BulwarkError(
              'ERR_SHAPE_MISMATCH',
              `model "${m.entry.name}" does not take the same features as "${first.entry.name}"`,
            );
          }
        }
        const all = members
          ? { x: Float32Array.from([...test.data.x, ...members.x]), rows: test.data.rows + members.rows }
          : { x: test.data.x, rows: test.data.rows };
        const stringInputs = first.pipeline
          ? first.pipeline
              .toJSON()
              .inputs.filter((i) => i.type === 'string')
              .map((i) => i.name)
          : [];
        const domain = tabularDomain({
          features: test.features,
          x: all.x,
          rows: all.rows,
          ...(schema ? { schema: schemaInModelSpace(schema, first.pipeline) } : {}),
          immutable: o.immutable ?? [],
          categorical: stringInputs,
        });
        let attackClass: number | null = null;
        if (o.attackClass !== undefined) {
          const values = first.classValues ?? [];
          attackClass = values.indexOf(o.attackClass);
          if (attackClass < 0) {
            throw new BulwarkError(
              'ERR_USAGE',
              `--attack-class: "${o.attackClass}" is not one of the model's classes (${values.join(', ') || 'unknown: the model has no class metadata'})`,
            );
          }
        }
        if (o.gate !== undefined) {
          checkGateInputs(o, first.label, test.data, members);
          return await runEvaluateGate(
            io,
            { ...o, gate: o.gate },
            first.entry,
            first.pipeline,
            first.classValues,
            raw,
            test.data,
            domain,
            members,
            recorded,
          );
        }
        const bar = startProgress(io, 'evaluate', 1000);
        let result: RedTeamResult;
        try {
          result = await redTeam(
            loaded.map((m) => m.entry),
            { test: test.data, ...(members ? { members } : {}), domain },
            {
              attacks: o.attacks,
              attackClass,
              eps: o.eps,
              ...(o.detectorEps === undefined ? {} : { detectorEps: o.detectorEps }),
              norm: o.norm,
              steps: o.steps,
              restarts: o.restarts,
              squareQueries: o.queries,
              rows: o.rows,
              detectors: o.detectors,
              fpr: o.fpr,
              shadows: o.shadows,
              ...(o.budgets ? { extractionBudgets: o.budgets } : {}),
              seed: o.seed,
              onProgress: (label, f) => bar.update(Math.round(1000 * f), { stage: label }),
            },
          );
        } finally {
          bar.stop();
        }
        result.notes.unshift(...notes);
        const seconds = (performance.now() - t0) / 1000;
        let reportPath: string | undefined;
        if (o.report !== undefined) {
          reportPath = await writeHtmlReport(o.report, o.force, {
            title: 'Bulwark red-team report',
            subtitle: `${o.model.map((m) => basename(m)).join(' vs ')} on ${basename(o.data)}.`,
            sections: redTeamSections(result, seconds),
          });
        }
        io.result({ ...result, seconds, ...recorded, ...(reportPath ? { report: reportPath } : {}) }, () => {
          const lines: string[] = [];
          for (const m of result.models) {
            lines.push(`${m.name}: clean accuracy ${pct(m.cleanAccuracy)} on ${result.rowsAttacked} rows`);
            for (const [a, c] of Object.entries(m.curves)) {
              lines.push(`  ${a.padEnd(6)} ${c.map((p) => `eps ${p.eps}: ${pct(p.accuracy)}`).join(' · ')}`);
            }
            if (m.membership) {
              const l = m.membership.lossThreshold;
              lines.push(`  membership (loss threshold): AUC ${l.auc.toFixed(3)}, ${tprAtLowFpr(l)}`);
              if (m.membership.lira) {
                const r = m.membership.lira;
                lines.push(
                  `  membership (LiRA, ${r.shadows} shadows): AUC ${r.auc.toFixed(3)}, ${tprAtLowFpr(r)}`,
                );
              }
            }
            if (m.extraction) {
              lines.push(
                `  extraction: ${m.extraction.points.map((p) => `${p.queries} queries → ${pct(p.agreement)} agreement`).join(' · ')}`,
              );
            }
          }
          for (const d of result.detectors) {
            lines.push(
              `detector ${d.name} (${result.attackClass === null ? 'FPR' : `class ${result.attackClass} rows flagged before attack`} ${pct(d.observedFpr)}, target FPR ${pct(d.targetFpr)}): ${d.attacks.map((a) => `${a.attack} ${pct(a.catchRate)}`).join(' · ')}`,
            );
          }
          for (const s of result.streams) {
            lines.push(
              `stream detector ${s.name}: ${s.attacks.map((a) => `${a.attack}: ${a.detected}/${a.streams}`).join(' · ')}`,
            );
          }
          for (const n of result.notes) lines.push(`note: ${n}`);
          if (reportPath) lines.push(`Report: ${reportPath}`);
          return lines.join('\n');
        });
      } finally {
        for (const m of loaded) await m.close();
      }
    });
}
