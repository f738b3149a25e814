import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, exists } from '../../core/index.js';
import {
  type CsvDatasetOptions,
  checkAgainstSchema,
  type Dataset,
  type DatasetStatus,
  datasetNames,
  datasetStatus,
  formatOf,
  inferSchemaFromDataset,
  isPersonal,
  loadSchema,
  readDataset,
  type Schema,
  saveSchema,
  validateAgainstSchema,
} from '../../data/index.js';
import { manifestPathOf } from '../../protect/index.js';
import { checkOutputPath, intOption } from '../options.js';
import { type Io, ioOf } from '../output.js';
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

/** CSV layout options shared by `data schema` and `data validate`. */
interface CsvCliOptions {
  delimiter?: string;
  header: boolean;
  missing?: string[];
  comment?: string;
  trim?: boolean;
}

function delimiterOption(v: string): string {
  if (v === '\\t' || v === 'tab') return '\t';
  if (v === '')
    throw new InvalidArgumentError('expected a delimiter (",", ";", "\\t", "whitespace"), got ""');
  return v;
}

function tokensOption(v: string): string[] {
  return v.split(',');
}

function withCsvOptions(c: Command): Command {
  return c
    .option(
      '--delimiter <d>',
      'CSV field separator (default ","; "\\t" for tab; "whitespace" for runs of blanks)',
      delimiterOption,
    )
    .option('--no-header', 'the CSV file has no header line (columns are named c1, c2, ...)')
    .option(
      '--missing <tokens>',
      'comma-separated values that mean missing (default: empty), e.g. ",?,NA"',
      tokensOption,
    )
    .option('--comment <prefix>', 'skip CSV lines starting with this prefix')
    .option('--trim', 'trim blanks around CSV values');
}

function csvOf(o: CsvCliOptions): CsvDatasetOptions {
  const out: CsvDatasetOptions = { header: o.header };
  if (o.delimiter !== undefined) out.delimiter = o.delimiter;
  if (o.missing !== undefined) out.missing = o.missing;
  if (o.comment !== undefined) out.comment = o.comment;
  if (o.trim) out.trim = true;
  return out;
}

/** How `data schema` words the protected-data check (protected-data.ts). */
const SCHEMA_USE: ProtectedDataUse = {
  files: 'data',
  purpose: 'the schema is inferred',
  recorded: 'the --json result and the summary line',
};

/** How `data validate` words it. */
const VALIDATE_USE: ProtectedDataUse = {
  files: 'data',
  purpose: 'it is validated',
  recorded: 'the --json result and the summary line',
};

/**
 * Reads `file` with the CSV options, checking it against its protection manifest first when one is
 * beside it (protected-data.ts): a schema inferred from tampered rows would carry the attacker's
 * bounds and categories into the preprocessing, and a validation passed on them would vouch for data
 * other than that protected. A protected file is read as `bulwark data protect` wrote it; the layout
 * options that change which cells the rows hold (`--delimiter` other than ",", `--no-header`,
 * `--comment`, `--trim`) would make the check fail as if the file were altered, so they are refused
 * with the option's name instead (`--missing` only changes how cells are typed, after the check).
 */
async function readChecked(
  io: Io,
  file: string,
  o: CsvCliOptions & ProtectedDataOpts,
  use: ProtectedDataUse,
): Promise<{ dataset: Dataset; protectedData?: ProtectedDataRecord }> {
  if (o.verifyProtected !== false && (await exists(manifestPathOf(file)))) {
    const layout = [
      o.delimiter !== undefined && o.delimiter !== ',' ? '--delimiter' : undefined,
      o.header === false ? '--no-header' : undefined,
      o.comment !== undefined ? '--comment' : undefined,
      o.trim === true ? '--trim' : undefined,
    ].find((x) => x !== undefined);
    if (layout !== undefined)
      throw new BulwarkError(
        'ERR_USAGE',
        `${layout}: ${file} is a protected dataset (its manifest ${manifestPathOf(file)} is beside it), read as bulwark data protect wrote it (comma-separated, with a header, no comment lines, untrimmed) to be checked against its manifest: drop ${layout}`,
        { details: { option: layout } },
      );
  }
  return readProtectable(
    io,
    file,
    'file',
    o,
    async (csv) => ({ dataset: await readDataset(file, { ...csvOf(o), ...csv }) }),
    use,
  );
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** A fixed-width text table (first row is the header). */
function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  return rows
    .map((r) => r.map((c, j) => (j === r.length - 1 ? c : pad(c, widths[j]!))).join('  '))
    .join('\n');
}

function schemaTable(schema: Schema): string {
  const rows = [['FIELD', 'TYPE', 'NULLABLE', 'SENSITIVITY', 'PII', 'EVIDENCE', 'BOUNDS/CATEGORIES']];
  for (const f of schema.fields) {
    const ev = f.detected
      ? `${f.detected.by}${f.detected.matchRate !== undefined ? ` ${(100 * f.detected.matchRate).toFixed(0)}%` : ''}`
      : '';
    let domain = '';
    if (f.bounds) {
      domain =
        f.type === 'timestamp'
          ? `${new Date(f.bounds.min).toISOString().slice(0, 10)} .. ${new Date(f.bounds.max).toISOString().slice(0, 10)}`
          : `${f.bounds.min} .. ${f.bounds.max}`;
    } else if (f.categories) {
      const shown = f.categories.slice(0, 4).join(', ');
      domain = f.categories.length > 4 ? `${shown}, ... (${f.categories.length})` : shown;
    }
    rows.push([f.name, f.type, f.nullable ? 'yes' : 'no', f.sensitivity, f.pii ?? '', ev, domain]);
  }
  return table(rows);
}

function statusTable(list: readonly DatasetStatus[]): string {
  const rows = [['NAME', 'KIND', 'PRESENT', 'ROWS', 'FOLDER']];
  for (const s of list) {
    const rowsText = s.rows
      ? Object.entries(s.rows)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')
      : '';
    rows.push([s.name, s.kind, s.present ? 'yes' : 'no', rowsText, s.folder ?? '(not installed)']);
  }
  const missing = list.filter((s) => !s.present);
  const notes = missing.map(
    (s) =>
      `  ${s.name}: missing ${
        s.files
          .filter((f) => !f.present)
          .map((f) => f.path)
          .join(', ') || 'its folder'
      }`,
  );
  return [table(rows), ...(notes.length > 0 ? ['', 'missing files:', ...notes] : [])].join('\n');
}

/** `bulwark data schema FILE`, `bulwark data validate FILE --schema S`, `bulwark data datasets`. */
export function registerDataSchemaCommands(data: Command): void {
  const schemaCmd = withCsvOptions(
    data
      .command('schema')
      .description(
        'infer a schema (types, bounds, categories, sensitivity from PII detection) from a CSV or Parquet file',
      )
      .argument('<file>', 'data file (.csv, .tsv or .parquet)'),
  )
    .option('--out <schema.yaml>', 'write the schema as YAML (atomically)')
    .option('--force', 'overwrite --out if it exists')
    .option('--sample <n>', 'values sampled per column for the PII value tests', intOption(1), 1000)
    .option('--seed <n>', 'seed of that sample (results are reproducible)', intOption(0, 2 ** 32 - 1), 0)
    .option(
      '--max-categories <n>',
      'a string column with at most n distinct values is a category',
      intOption(0),
      50,
    )
    .option('--exact-bounds', 'keep exact min/max as bounds (default: widened to one significant digit)')
    .option('--label <column>', 'the label field')
    .option('--name <name>', 'the schema name');
  addProtectedDataOptions(schemaCmd, SCHEMA_USE, { keyring: true })
    .addHelpText(
      'after',
      `
Every column becomes a field; none is dropped. Fields where no personal data is found are "internal";
mark the ones that may be published "public" by hand. Review the bounds: they are the public bounds the
preprocessing scales to. Exit 3 for a missing or malformed file, 2 for a bad option.

${protectedDataHelp(SCHEMA_USE)} A protected file's schema is that of the stored file (its encrypted
columns are strings).`,
    )
    .action(async function (
      this: Command,
      file: string,
      o: CsvCliOptions &
        ProtectedDataOpts & {
          out?: string;
          force?: boolean;
          sample: number;
          seed: number;
          maxCategories: number;
          exactBounds?: boolean;
          label?: string;
          name?: string;
        },
    ) {
      const io = ioOf(this);
      formatOf(file);
      // Never over the data, its manifest or the keyring, --force or not.
      if (o.out !== undefined)
        await checkOutputPath(o.out, {
          force: o.force,
          inputs: [file, ...(await protectedDataInputs([file], o))],
        });
      const { dataset: ds, protectedData } = await readChecked(io, file, o, SCHEMA_USE);
      const schema = inferSchemaFromDataset(ds, {
        sample: o.sample,
        seed: o.seed,
        maxCategories: o.maxCategories,
        ...(o.exactBounds ? { exactBounds: true } : {}),
        ...(o.label !== undefined ? { label: o.label } : {}),
        ...(o.name !== undefined ? { name: o.name } : {}),
      });
      if (o.out !== undefined) await saveSchema(o.out, schema);
      const personal = schema.fields.filter((f) => isPersonal(f));
      const sensitive = personal.filter((f) => f.sensitivity === 'sensitive');
      io.result(
        {
          file,
          rows: ds.rowCount,
          ...(protectedData ? { protectedData } : {}),
          schema,
          ...(o.out !== undefined ? { out: o.out } : {}),
        },
        () =>
          [
            schemaTable(schema),
            '',
            `${file}: ${ds.rowCount} rows, ${schema.fields.length} fields, ${personal.length} personal (${sensitive.length} sensitive)` +
              (o.out !== undefined ? `; schema written to ${o.out}` : ''),
            ...(protectedData ? [protectedDataLine(file, protectedData)] : []),
          ].join('\n'),
      );
    });

  const validateCmd = withCsvOptions(
    data
      .command('validate')
      .description('check that a CSV or Parquet file matches a schema (types, nulls, bounds, categories)')
      .argument('<file>', 'data file (.csv, .tsv or .parquet)'),
  )
    .requiredOption('--schema <schema.yaml>', 'the schema to check against')
    .option('--allow-extra', 'accept columns the schema does not declare')
    .option('--max-issues <n>', 'list at most n problems', intOption(1), 20);
  addProtectedDataOptions(validateCmd, VALIDATE_USE, { keyring: true })
    .addHelpText(
      'after',
      `
Exit 0 when every row matches; 3 (ERR_SCHEMA_MISMATCH) naming the first bad row and field otherwise,
with the other problems listed on stderr. Values of personal fields are never printed.

${protectedDataHelp(VALIDATE_USE)} A protected file is validated as stored (its encrypted columns are
strings).`,
    )
    .action(async function (
      this: Command,
      file: string,
      o: CsvCliOptions & ProtectedDataOpts & { schema: string; allowExtra?: boolean; maxIssues: number },
    ) {
      const io = ioOf(this);
      formatOf(file);
      const schema = await loadSchema(o.schema);
      const { dataset: ds, protectedData } = await readChecked(io, file, o, VALIDATE_USE);
      const opts = { allowExtraColumns: o.allowExtra === true, maxIssues: o.maxIssues };
      const issues = checkAgainstSchema(ds, schema, opts);
      if (issues.length > 1) {
        io.note(
          `${file} does not match ${o.schema}; ${issues.length >= o.maxIssues ? `the first ${issues.length}` : 'all'} problems:`,
        );
        for (const i of issues)
          io.note(`  ${i.row === undefined ? '' : `row ${i.row}, `}field "${i.field}": ${i.problem}`);
      }
      validateAgainstSchema(ds, schema, { ...opts, source: file });
      io.result(
        {
          file,
          schema: o.schema,
          rows: ds.rowCount,
          fields: schema.fields.length,
          ok: true,
          ...(protectedData ? { protectedData } : {}),
        },
        () =>
          [
            `${file}: ${ds.rowCount} rows match ${o.schema} (${schema.fields.length} fields)`,
            ...(protectedData ? [protectedDataLine(file, protectedData)] : []),
          ].join('\n'),
      );
    });

  data
    .command('datasets')
    .description('list the dataset registry and whether each dataset’s files are present')
    .option(
      '--dir <folder>',
      'datasets folder (default: BULWARK_DATASETS, else ../shared/datasets from the repo root)',
    )
    .addHelpText('after', '\nLoad one in code with loadDataset(name); see docs/data.md for the registry.')
    .action(async function (this: Command, o: { dir?: string }) {
      const io = ioOf(this);
      const list = await Promise.all(
        datasetNames().map((n) => datasetStatus(n, o.dir === undefined ? {} : { dir: o.dir })),
      );
      io.result(list, () => statusTable(list));
    });
}
