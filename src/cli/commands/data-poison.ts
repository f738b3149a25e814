import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, exists, requireFile } from '../../core/index.js';
import {
  type Dataset,
  loadSchema,
  readDataset,
  type Schema,
  validateAgainstSchema,
  writeDataset,
} from '../../data/index.js';
import { manifestPathOf } from '../../protect/index.js';
import {
  FLIP_MODES,
  type FlipMode,
  flipLabels,
  POISON_MODES,
  type PoisonMode,
  plantTabularBackdoor,
  type TabularTrigger,
} from '../../robust/index.js';
import { checkOutputPath, floatOption, intOption } from '../options.js';
import { ioOf } from '../output.js';
import {
  addProtectedDataOptions,
  type ProtectedDataOpts,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedDataInputs,
  readProtectable,
} from './protected-data.js';

function oneOf<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** `field=value,field=value`: the raw values; numbers are converted for numeric columns later. */
function triggerOption(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of v.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`expected field=value[,field=value...], got "${part}"`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

function typedTrigger(raw: Record<string, string>, ds: Dataset): TabularTrigger {
  const t: Record<string, number | string> = {};
  for (const [f, v] of Object.entries(raw)) {
    const col = ds.column(f);
    if (col.type === 'string') t[f] = v;
    else {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n))
        throw new BulwarkError('ERR_USAGE', `--trigger ${f}: expected a number, got "${v}"`);
      t[f] = n;
    }
  }
  return t;
}

/** Label values as strings, in a stable order (sorted as bulwark train sorts them). */
function labelValues(ds: Dataset, label: string): { values: string[]; y: Int32Array } {
  const col = ds.column(label);
  const raw = Array.from({ length: ds.rowCount }, (_, i) => {
    const v = col.values[i];
    if (v === null || (typeof v === 'number' && !Number.isFinite(v)))
      throw new BulwarkError('ERR_LABEL_INVALID', `label column "${label}": row ${i + 1} has no value`, {
        details: { row: i + 1, field: label },
      });
    return String(v);
  });
  const values = [...new Set(raw)].sort((a, b) =>
    col.type === 'string' ? a.localeCompare(b) : Number(a) - Number(b),
  );
  const index = new Map(values.map((v, i) => [v, i]));
  return { values, y: Int32Array.from(raw, (v) => index.get(v) as number) };
}

/** How `data poison` words the protected-data check (protected-data.ts). */
const POISON_USE: ProtectedDataUse = {
  files: '--data',
  purpose: 'any row is poisoned',
  recorded: 'the --json result',
};

/**
 * `bulwark data poison`: plants a backdoor or flips labels in a copy of a data file, for red-team
 * evaluation of a training pipeline (does `data inspect` find it? does the gate refuse the model?).
 *
 * A protected `--data` (manifest beside it) is verified first, as every data-reading command does
 * (protected-data.ts): the command's output lists the rows it poisoned, the ground truth the red-team
 * experiment scores `data inspect` and the gate against; rows someone else had already altered would
 * be poisoned rows missing from that list, and the experiment would measure the wrong thing. The
 * poisoned copy is NOT a protected dataset: no manifest is written or copied beside it (its rows differ
 * from those protected, so it would only fail its check), and an `--out` with a manifest beside it is
 * refused, --force or not: the copy would sit beside a manifest that is not its own (and with --force
 * replace a protected dataset). Downstream commands read the copy as a plain file, so a pipeline run
 * with `--require-protected` refuses it: the refusal the red team should see.
 */
export function registerDataPoisonCommand(data: Command): void {
  const cmd = data
    .command('poison')
    .description('red team: plant a backdoor or flip labels in a copy of a data file (evaluation only)')
    .requiredOption('--data <file>', 'the clean data (CSV, TSV or Parquet)')
    .requiredOption('--label <column>', 'the label column')
    .requiredOption('--out <file>', 'where to write the poisoned copy')
    .option('--attack <kind>', 'backdoor or flip', oneOf(['backdoor', 'flip'] as const), 'backdoor')
    .option(
      '--trigger <pattern>',
      'backdoor: field=value[,field=value...] (values the schema allows)',
      triggerOption,
    )
    .option('--target <value>', "the attacker's label value (backdoor, targeted flip)")
    .option(
      '--source <value>',
      'targeted flip: the label value whose rows are relabelled (default: all others)',
    )
    .option(
      '--rate <r>',
      'backdoor: poisoned share (see --poison-mode); flip: share of eligible rows',
      floatOption(0, 0.99),
      0.05,
    )
    .option(
      '--poison-mode <m>',
      `backdoor: ${POISON_MODES.join(' or ')}`,
      oneOf(POISON_MODES),
      'inject' as PoisonMode,
    )
    .option('--flip <m>', `flip: ${FLIP_MODES.join(' or ')}`, oneOf(FLIP_MODES), 'random' as FlipMode)
    .option(
      '--schema <file>',
      'schema YAML: the data must match it, and the trigger its bounds and categories',
    )
    .option('--seed <n>', 'seed of the rows chosen', intOption(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--force', 'overwrite --out if it exists');
  addProtectedDataOptions(cmd, POISON_USE, { keyring: true })
    .addHelpText(
      'after',
      `
backdoor --poison-mode inject appends triggered copies of rows of other classes labelled --target
(rate = their share of the output); relabel changes existing rows in place (rate = share of rows).
The output lists the poisoned 1-based row numbers with --json. See docs/integrity.md.

${protectedDataHelp(POISON_USE)} The poisoned copy is not a protected dataset: no manifest is written
beside it, and an --out with a FILE.bulwark.json beside it is refused (ERR_USAGE), --force or not.`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{
        data: string;
        label: string;
        out: string;
        attack: 'backdoor' | 'flip';
        trigger?: Record<string, string>;
        target?: string;
        source?: string;
        rate: number;
        poisonMode: PoisonMode;
        flip: FlipMode;
        schema?: string;
        seed: number;
        force?: boolean;
      }>();
      const io = ioOf(this);
      const po = this.opts<ProtectedDataOpts>();
      await requireFile(o.data, 'data file');
      // The copy is not a protected dataset: not beside a manifest (see the command's documentation).
      if (await exists(manifestPathOf(o.out)))
        throw new BulwarkError(
          'ERR_USAGE',
          `--out ${o.out} has a protection manifest beside it (${manifestPathOf(o.out)}): the poisoned copy is not a protected dataset and must not sit beside a manifest that is not its own; choose another path`,
          { details: { option: '--out' } },
        );
      // Never over the clean data, its manifest, the keyring (or the schema), whatever --force says:
      // the point is a poisoned copy, and an --out equal to --data poisoned the only clean file in place.
      await checkOutputPath(o.out, {
        force: o.force,
        inputs: [o.data, o.schema, ...(await protectedDataInputs([o.data], po))],
      });
      // A protected file (manifest beside it) is checked on these very rows before any is poisoned.
      const read = await readProtectable(
        io,
        o.data,
        '--data',
        po,
        async (csv) => ({ dataset: await readDataset(o.data, csv) }),
        POISON_USE,
      );
      const protectedData = read.protectedData;
      let ds = read.dataset;
      let schema: Schema | undefined;
      if (o.schema !== undefined) {
        await requireFile(o.schema, 'schema file');
        schema = await loadSchema(o.schema);
        ds = validateAgainstSchema(ds, schema, { source: o.data });
      }
      let out: Dataset;
      let rows: Int32Array;
      if (o.attack === 'backdoor') {
        if (!o.trigger || o.target === undefined)
          throw new BulwarkError('ERR_USAGE', 'a backdoor needs --trigger and --target');
        const p = plantTabularBackdoor(ds, {
          label: o.label,
          target: o.target,
          trigger: typedTrigger(o.trigger, ds),
          rate: o.rate,
          mode: o.poisonMode,
          ...(schema ? { schema } : {}),
          rng: o.seed,
        });
        out = p.dataset;
        rows = p.poisoned;
      } else {
        const { values, y } = labelValues(ds, o.label);
        const idx = (v: string | undefined, what: string) => {
          if (v === undefined) return undefined;
          const i = values.indexOf(v);
          if (i < 0)
            throw new BulwarkError(
              'ERR_USAGE',
              `${what} "${v}" is not a value of "${o.label}" (${values.slice(0, 10).join(', ')})`,
            );
          return i;
        };
        const target = idx(o.target, '--target');
        const source = idx(o.source, '--source');
        const f = flipLabels(y, {
          fraction: o.rate,
          classes: values.length,
          mode: o.flip,
          ...(target === undefined ? {} : { target }),
          ...(source === undefined ? {} : { source }),
          rng: o.seed,
        });
        const col = ds.column(o.label);
        out = ds.withColumn(
          col.type === 'string'
            ? { name: o.label, type: 'string', values: Array.from(f.y, (c) => values[c] as string) }
            : { name: o.label, type: col.type, values: Float64Array.from(f.y, (c) => Number(values[c])) },
        );
        rows = f.rows;
      }
      const path = resolve(o.out);
      await writeDataset(path, out, { noClobber: o.force !== true });
      if (protectedData)
        io.note(
          `${o.data} is a protected dataset (${protectedData.dataset ?? 'id unreadable'}, ${protectedData.verified ? 'verified against its manifest' : 'NOT verified: --no-verify-protected'}); the poisoned copy ${path} is not: no manifest beside it, so commands read it as a plain file and --require-protected refuses it`,
        );
      io.result(
        {
          out: path,
          attack: o.attack,
          rows: out.rowCount,
          poisoned: rows.length,
          poisonedRows: Array.from(rows, (r) => r + 1),
          ...(protectedData ? { protectedData } : {}),
        },
        () =>
          `${o.attack === 'backdoor' ? 'Planted a backdoor in' : 'Flipped the labels of'} ${rows.length} of ${out.rowCount} rows: ${path}`,
      );
    });
}
