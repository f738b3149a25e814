import { basename } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, requireFile } from '../../core/index.js';
import {
  type Dataset,
  formatOf,
  loadTabular,
  parseNumber,
  parseTimestamp,
  readDataset,
} from '../../data/index.js';
import {
  auditSpendSink,
  type BudgetLedger,
  type BudgetStatus,
  COMPOSITIONS,
  type Composition,
  type DpRelease,
  deltaWarning,
  dpCount,
  dpHistogram,
  dpMean,
  dpQuantiles,
  dpSum,
  NoiseSource,
  openLedger,
  type QueryOptions,
} from '../../privacy/index.js';
import { AUDIT_OPTION_FLAGS, AUDIT_OPTION_HELP, withOperationLog } from '../audit-record.js';
import { floatOption, intOption, listOption, locationOrigin } from '../options.js';
import { type Io, ioOf } from '../output.js';
import {
  addProtectedDataOptions,
  type ProtectedDataOpts,
  type ProtectedDataRecord,
  type ProtectedDataUse,
  protectedDataHelp,
  protectedHyperparameters,
  readProtectable,
  requireProtectedBy,
  unprotectedRefusal,
} from './protected-data.js';

/** The default ledger: `BULWARK_LEDGER`, else `bulwark-ledger.sqlite` in the working folder. */
function defaultLedger(): string {
  const env = process.env['BULWARK_LEDGER'];
  return env !== undefined && env !== '' ? env : 'bulwark-ledger.sqlite';
}

function oneOf<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

interface CommonOpts extends ProtectedDataOpts {
  data?: string;
  dataset?: string;
  column?: string;
  epsilon: number;
  delta?: number;
  mechanism: 'laplace' | 'gaussian';
  ledger?: string;
  budget?: string;
  analyst?: string;
  audit?: string;
  seededNoise?: number;
  lower?: number;
  upper?: number;
  bins?: number;
  categories?: string[];
  quantiles?: number[];
  candidates?: number;
}

/**
 * Loads the data (a file, or a registered dataset `NAME[:SPLIT]`) and the budget name it spends from.
 *
 * A CSV or TSV file's queried column is read as text, never typed by inference: inference looks at
 * every row (one value that is not a number turns the whole column into strings), so the type — and
 * with it how every other row is binned or whether the query runs at all — would depend on one
 * person's value, outside the mechanism's sensitivity. Each value is then read on its own
 * ({@link numericColumn}, or as its own text for categories).
 *
 * A protected file (manifest beside it) is verified against its manifest on the rows read, before
 * anything is spent (protected-data.ts); its messages leave out exact counts (docs/privacy.md).
 */
async function loadData(
  io: Io,
  o: CommonOpts,
): Promise<{ ds: Dataset; budgetName: string; protectedData?: ProtectedDataRecord }> {
  if ((o.data === undefined) === (o.dataset === undefined))
    throw new BulwarkError('ERR_USAGE', 'give exactly one of --data FILE or --dataset NAME[:SPLIT]');
  if (o.data !== undefined) {
    const file = o.data;
    await requireFile(file, 'data file');
    const asText = o.column !== undefined && formatOf(file) !== 'parquet';
    let read: { dataset: Dataset; protectedData?: ProtectedDataRecord };
    try {
      read = await readProtectable(
        io,
        file,
        '--data',
        o,
        async (csv) => ({
          dataset: await readDataset(
            file,
            asText ? { ...csv, types: { [o.column as string]: 'string' } } : csv,
          ),
        }),
        QUERY_USE,
      );
    } catch (e) {
      // The reader names the typed column "given a type"; here it is the --column asked for.
      if (e instanceof BulwarkError && e.code === 'ERR_COLUMN_NOT_FOUND')
        throw new BulwarkError(e.code, e.message.replace(' (given a type)', ''), {
          details: { field: o.column ?? null },
        });
      throw e;
    }
    return {
      ds: read.dataset,
      budgetName: o.budget ?? basename(file),
      ...(read.protectedData ? { protectedData: read.protectedData } : {}),
    };
  }
  const required = requireProtectedBy(o);
  if (required !== null)
    throw unprotectedRefusal(
      '--dataset',
      o.dataset as string,
      'is a registered dataset, not a protected file',
      required,
    );
  const [name, split] = (o.dataset as string).split(':') as [string, string | undefined];
  const t = await loadTabular(name, split === undefined ? {} : { splits: [split] });
  const key = split ?? Object.keys(t.splits)[0];
  const ds = key === undefined ? undefined : t.splits[key];
  if (ds === undefined)
    throw new BulwarkError('ERR_DATASET_MISSING', `dataset "${name}" has no split to query`);
  return { ds, budgetName: o.budget ?? name };
}

function requireColumn(o: CommonOpts): string {
  if (o.column === undefined) throw new BulwarkError('ERR_USAGE', 'this query needs --column NAME');
  return o.column;
}

function requireBounds(o: CommonOpts): { lower: number; upper: number } {
  if (o.lower === undefined || o.upper === undefined)
    throw new BulwarkError(
      'ERR_USAGE',
      'this query needs public bounds: --lower L --upper U (never read from the data)',
    );
  return { lower: o.lower, upper: o.upper };
}

/**
 * The column's numbers. A text column (a CSV column is always read as text: {@link loadData}) is parsed
 * one value at a time — a decimal number, else an ISO 8601 date as epoch ms — and a value that is
 * neither counts as missing for its row alone. Refusing the query because some row is not a number
 * would tell the analyst that such a row exists, outside the DP accounting.
 */
function numericColumn(ds: Dataset, column: string): Float64Array {
  const c = ds.column(column);
  if (c.type !== 'string') return ds.numbers(column);
  return Float64Array.from(c.values, (s) => {
    if (s === null) return Number.NaN;
    const x = parseNumber(s);
    return Number.isNaN(x) ? parseTimestamp(s) : x;
  });
}

type Kind = 'count' | 'sum' | 'mean' | 'histogram' | 'quantiles';

async function runQuery(
  kind: Kind,
  o: CommonOpts,
  base: QueryOptions,
  ds: Dataset,
): Promise<DpRelease<unknown>> {
  switch (kind) {
    case 'count':
      return o.column === undefined ? dpCount(ds.rowCount, base) : dpCount(valuesOf(ds, o.column), base);
    case 'sum':
      return dpSum(numericColumn(ds, requireColumn(o)), { ...base, ...requireBounds(o) });
    case 'mean':
      return dpMean(numericColumn(ds, requireColumn(o)), { ...base, ...requireBounds(o) });
    case 'histogram': {
      const col = requireColumn(o);
      if (o.categories !== undefined)
        return dpHistogram(valuesOf(ds, col), { ...base, categories: o.categories });
      if (o.bins === undefined)
        throw new BulwarkError(
          'ERR_USAGE',
          'histogram needs --categories A,B,... or --bins K with --lower/--upper',
        );
      return dpHistogram(numericColumn(ds, col), { ...base, ...requireBounds(o), bins: o.bins });
    }
    case 'quantiles': {
      const { mechanism: _m, delta: _d, ...rest } = base;
      return dpQuantiles(numericColumn(ds, requireColumn(o)), {
        ...rest,
        ...requireBounds(o),
        quantiles: o.quantiles ?? [0.25, 0.5, 0.75],
        ...(o.candidates === undefined ? {} : { candidates: o.candidates }),
      });
    }
  }
}

function valuesOf(ds: Dataset, column: string): Array<string | number | null> {
  const c = ds.column(column);
  return c.type === 'string'
    ? [...ds.strings(column)]
    : Array.from(ds.numbers(column), (v) => (Number.isNaN(v) ? null : v));
}

function human(kind: Kind, r: DpRelease<unknown>, column: string | undefined): string {
  const what = `${kind}${column ? ` of "${column}"` : ''}`;
  const guarantee = r.delta > 0 ? `(${r.epsilon}, ${r.delta})-DP` : `${r.epsilon}-DP`;
  let body: string;
  if (Array.isArray(r.value)) {
    body = (r.value as Array<{ bin?: string; count?: number; quantile?: number; value?: number }>)
      .map((x) => (x.bin !== undefined ? `  ${x.bin}: ${x.count}` : `  q${x.quantile}: ${x.value}`))
      .join('\n');
    body = `\n${body}`;
  } else body = ` ${String(r.value)}`;
  const noise = r.noiseScale !== undefined ? `, noise scale ${Number(r.noiseScale.toPrecision(4))}` : '';
  const left = r.receipt
    ? `\nBudget "${r.receipt.dataset}": spent epsilon ${r.receipt.epsilon}${r.receipt.delta > 0 ? `, delta ${r.receipt.delta}` : ''}; left epsilon ${Number(r.receipt.remaining.epsilon.toPrecision(6))}, delta ${Number(r.receipt.remaining.delta.toPrecision(6))}${r.receipt.composition === 'pld' ? ` (pld composition: ${Number(r.receipt.spent.epsilon.toPrecision(6))} spent in all)` : ''}`
    : '';
  return `DP ${what} (${guarantee}, ${r.mechanism}${noise}):${body}${left}`;
}

/** The human line of `budget status`: totals, what is spent and left, and how it was composed. */
function statusLine(name: string, st: BudgetStatus): string {
  const n = (x: number) => Number(x.toPrecision(6));
  const how =
    st.composition === 'basic'
      ? 'basic composition'
      : `pld composition: ${st.accounting.figure === 'pld' ? 'the PLD figure' : 'the basic sum'} (basic sum ${n(st.accounting.basic.epsilon)}, PLD ${st.accounting.pldEpsilon === null ? 'n/a' : n(st.accounting.pldEpsilon)})`;
  return `Budget "${name}"${st.analyst ? ` (analyst ${st.analyst})` : ''}: total epsilon ${st.total.epsilon}, delta ${st.total.delta}; spent ${n(st.spent.epsilon)}, ${n(st.spent.delta)} in ${st.spends} spends (${how}); left epsilon ${n(st.remaining.epsilon)}, delta ${n(st.remaining.delta)}.`;
}

/** Where the command's `--ledger` came from (the flag, `$BULWARK_LEDGER`, or the default), for errors. */
function ledgerOrigin(cmd: Command): string | undefined {
  return locationOrigin('--ledger', cmd.getOptionValueSource('ledger') === 'cli', 'BULWARK_LEDGER');
}

/**
 * Opens the command's `--ledger`; with `audit`, each committed spend is appended to that log
 * (privacy.spent).
 */
async function withLedger<T>(
  cmd: Command,
  location: string | undefined,
  f: (l: BudgetLedger) => Promise<T>,
  audit?: AuditLog,
): Promise<T> {
  // Resolved here, not as the option's default: a default is printed by --help, and $BULWARK_LEDGER may
  // be a postgres:// URL holding a password.
  const ledger = await openLedger(location ?? defaultLedger(), {
    option: ledgerOrigin(cmd),
    ...(audit ? { onSpend: auditSpendSink(audit) } : {}),
  });
  try {
    return await f(ledger);
  } finally {
    await ledger.close();
  }
}

/**
 * How query words the protected-data check (protected-data.ts): without exact counts in its messages,
 * which would be statistics of the data outside the DP releases.
 */
const QUERY_USE: ProtectedDataUse = {
  files: '--data',
  purpose: 'the query (and before any budget is spent)',
  recorded: 'the --json result, the ledger record and its privacy.spent audit event',
  noCounts: true,
};

/** `bulwark query`: DP statistics spending from the budget ledger, and the ledger's budgets. */
export function registerQueryCommand(program: Command): void {
  const query = program
    .command('query')
    .description(
      'differentially private statistics (count, sum, mean, histogram, quantiles) with a budget ledger',
    );

  for (const kind of ['count', 'sum', 'mean', 'histogram', 'quantiles'] as const) {
    const cmd = query
      .command(kind)
      .description(
        {
          count: 'noisy number of rows (or of non-missing values of --column)',
          sum: 'noisy sum of --column clamped to the public bounds',
          mean: 'noisy mean of --column clamped to the public bounds (half the epsilon each for sum and count)',
          histogram:
            'noisy count per public category (--categories) or per bin (--bins with --lower/--upper)',
          quantiles: 'quantiles of --column among a public grid of candidates (permute-and-flip)',
        }[kind],
      )
      .option('--data <file>', 'the data (CSV, TSV or Parquet)')
      .option('--dataset <name>', 'a registered dataset, NAME or NAME:SPLIT (e.g. adult:train)')
      .option(
        '--column <name>',
        kind === 'count' ? 'count the non-missing values of this column' : 'the column to query',
      )
      .requiredOption('--epsilon <e>', 'epsilon spent by this query', floatOption(1e-9, 1e6));
    // Each query lists only the options it reads: a flag another query takes (count --bins, sum
    // --categories) is refused as unknown instead of being silently ignored. Quantiles keep --delta
    // and --mechanism out of their help but still parse them, to refuse them with the reason.
    const delta = new Option('--delta <d>', 'delta (with --mechanism gaussian)').argParser(
      floatOption(0, 0.999999),
    );
    const mechanism = new Option(
      '--mechanism <m>',
      'laplace (pure epsilon-DP) or gaussian (discrete Gaussian)',
    )
      .argParser(oneOf(['laplace', 'gaussian'] as const))
      .default('laplace');
    if (kind === 'quantiles') {
      delta.hideHelp();
      mechanism.hideHelp();
    }
    cmd.addOption(delta).addOption(mechanism);
    if (kind !== 'count')
      cmd
        .option('--lower <x>', 'public lower bound of the values', floatOption())
        .option('--upper <x>', 'public upper bound of the values', floatOption());
    if (kind === 'histogram')
      cmd
        .option('--bins <k>', 'equal-width bins between --lower and --upper', intOption(1, 100000))
        .option('--categories <list>', 'the public categories, comma-separated', listOption(String));
    if (kind === 'quantiles')
      cmd
        .option(
          '--quantiles <list>',
          'quantiles to release (default 0.25,0.5,0.75)',
          listOption(floatOption(0, 1)),
        )
        .option(
          '--candidates <k>',
          'size of the public grid of candidates between --lower and --upper (default 1001)',
          intOption(2, 1000000),
        );
    cmd
      .option(
        '--ledger <location>',
        'budget ledger: a SQLite file or postgres:// URL (default $BULWARK_LEDGER or ./bulwark-ledger.sqlite)',
      )
      .option('--budget <name>', 'the budget to spend from (default: the dataset name or file name)')
      .option('--analyst <name>', 'who is asking (checked against per-analyst budgets)')
      .option(AUDIT_OPTION_FLAGS, AUDIT_OPTION_HELP)
      .option(
        '--seeded-noise <seed>',
        'INSECURE: reproducible noise from a seed, for tests only',
        intOption(0, Number.MAX_SAFE_INTEGER),
      );
    addProtectedDataOptions(cmd, QUERY_USE, { keyring: true })
      .addHelpText('after', `\n${protectedDataHelp(QUERY_USE)}`)
      .action(async function (this: Command) {
        const o = this.opts<CommonOpts>();
        const io = ioOf(this);
        if (o.seededNoise !== undefined)
          io.note(
            'bulwark: WARNING (BULWARK_INSECURE_NOISE): --seeded-noise makes the noise reproducible: these results are NOT private. Use for tests only.',
          );
        // Usage before the data is read: a wrong flag should not wait for a large file to load.
        if (kind === 'quantiles' && (o.mechanism !== 'laplace' || o.delta !== undefined))
          throw new BulwarkError(
            'ERR_USAGE',
            'quantiles are pure epsilon-DP (permute-and-flip): no --mechanism or --delta',
          );
        const { ds, budgetName, protectedData } = await loadData(io, o);
        if (o.column !== undefined) ds.column(o.column);
        // The audit log, when configured, is opened before the spend: an unreachable log refuses it.
        const r = await withOperationLog(o.audit, (log) =>
          withLedger(
            this,
            o.ledger,
            (ledger) => {
              const base: QueryOptions = {
                epsilon: o.epsilon,
                mechanism: o.mechanism,
                ...(o.delta === undefined ? {} : { delta: o.delta }),
                ...(o.column === undefined ? {} : { column: o.column }),
                // The ledger record and its audit event say whether the file was verified.
                details: protectedHyperparameters(protectedData),
                budget: {
                  ledger,
                  dataset: budgetName,
                  ...(o.analyst === undefined ? {} : { analyst: o.analyst }),
                },
                ...(o.seededNoise === undefined
                  ? {}
                  : { noise: NoiseSource.insecureSeeded(o.seededNoise, 'bulwark query') }),
              };
              return runQuery(kind, o, base, ds);
            },
            log,
          ),
        );
        io.result(
          {
            query: kind,
            column: o.column ?? null,
            value: r.value,
            epsilon: r.epsilon,
            delta: r.delta,
            mechanism: r.mechanism,
            noiseScale: r.noiseScale ?? null,
            budget: r.receipt
              ? {
                  name: r.receipt.dataset,
                  spendId: r.receipt.id,
                  composition: r.receipt.composition,
                  spent: r.receipt.spent,
                  remaining: r.receipt.remaining,
                }
              : null,
            seededNoise: o.seededNoise !== undefined,
            ...(protectedData ? { protectedData } : {}),
          },
          () => human(kind, r, o.column),
        );
      });
  }

  const budget = query.command('budget').description('set and inspect privacy budgets in the ledger');
  const ledgerOpt = (c: Command) =>
    c
      .option(
        '--ledger <location>',
        'budget ledger: a SQLite file or postgres:// URL (default $BULWARK_LEDGER or ./bulwark-ledger.sqlite)',
      )
      .option('--analyst <name>', 'a per-analyst budget');
  ledgerOpt(
    budget
      .command('set <name>')
      .description('set the total (epsilon, delta) of a budget (spends so far still count)')
      .requiredOption('--epsilon <e>', 'total epsilon', floatOption(0, 1e6))
      .option('--delta <d>', 'total delta', floatOption(0, 0.999999), 0)
      .option(
        '--composition <c>',
        'how spends compose: basic (epsilon and delta add up; the default for a new budget) or pld (epsilon of all spends composed by privacy loss distributions at the budget delta); an existing budget keeps its own unless given',
        oneOf(COMPOSITIONS),
      ),
  ).action(async function (this: Command, name: string) {
    const o = this.opts<{
      epsilon: number;
      delta: number;
      ledger?: string;
      analyst?: string;
      composition?: Composition;
    }>();
    const warning = deltaWarning(o.delta);
    if (warning !== null) ioOf(this).note(`bulwark: WARNING: budget ${warning}`);
    // Re-composing whole privacy profiles is proven for planned workloads, not when each next spend is
    // chosen after seeing earlier results (a natural privacy filter; Regehr et al., arXiv 2602.15815).
    if (o.composition === 'pld')
      ioOf(this).note(
        'bulwark: note: a pld budget is proven for spends planned in advance (repeated trainings, fixed release schedules); for interactive analysis that picks each next query after seeing earlier answers, use basic (docs/privacy.md)',
      );
    const st = await withLedger(this, o.ledger, (l) =>
      l.setBudget(
        name,
        { epsilon: o.epsilon, delta: o.delta },
        {
          ...(o.analyst === undefined ? {} : { analyst: o.analyst }),
          ...(o.composition === undefined ? {} : { composition: o.composition }),
        },
      ),
    );
    ioOf(this).result(
      st,
      () =>
        `Budget "${name}"${st.analyst ? ` (analyst ${st.analyst})` : ''}: epsilon ${st.total.epsilon}, delta ${st.total.delta}, ${st.composition} composition; spent epsilon ${Number(st.spent.epsilon.toPrecision(6))}, delta ${Number(st.spent.delta.toPrecision(6))}.`,
    );
  });
  ledgerOpt(budget.command('status <name>').description('total, spent and remaining budget')).action(
    async function (this: Command, name: string) {
      const o = this.opts<{ ledger?: string; analyst?: string }>();
      const st = await withLedger(this, o.ledger, (l) =>
        l.status(name, o.analyst === undefined ? {} : { analyst: o.analyst }),
      );
      ioOf(this).result(st, () => statusLine(name, st));
    },
  );
  ledgerOpt(
    budget
      .command('history <name>')
      .description('the spends recorded against a budget, oldest first')
      .option('--limit <n>', 'at most this many', intOption(1, 1_000_000)),
  ).action(async function (this: Command, name: string) {
    const o = this.opts<{ ledger?: string; analyst?: string; limit?: number }>();
    const h = await withLedger(this, o.ledger, (l) =>
      l.history(name, {
        ...(o.analyst === undefined ? {} : { analyst: o.analyst }),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
      }),
    );
    ioOf(this).result(h, () =>
      h.length === 0
        ? `No spends on "${name}".`
        : h
            .map(
              (r) =>
                `${r.at}  ${r.operation}  epsilon ${r.epsilon}${r.delta > 0 ? ` delta ${r.delta}` : ''}${r.analyst ? `  by ${r.analyst}` : ''}${r.details['noise'] === 'insecure-seeded' ? '  INSECURE seeded noise: not private' : ''}`,
            )
            .join('\n'),
    );
  });
}
