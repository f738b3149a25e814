import { stat } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { BulwarkError, SecureRng } from '../../core/index.js';
import {
  MAX_CARDHOLDERS,
  MAX_ROWS,
  resolveSynthOptions,
  type SynthSummary,
  writeTransactionsCsv,
} from '../../data/index.js';
import { checkOutputPath, floatOption, intOption } from '../options.js';
import { ioOf } from '../output.js';
import { startProgress } from '../progress.js';

interface SynthCliOptions {
  out: string;
  rows: number;
  fraudRate: number;
  seed?: number;
  cardholders?: number;
  start?: string;
  labelNoise?: number;
  includeScenario?: boolean;
  force?: boolean;
}

/** `--start`: an ISO 8601 date or date-time the generator accepts. */
function startOption(v: string): string {
  try {
    resolveSynthOptions({ rows: 1, fraudRate: 0, seed: 0, start: v });
  } catch {
    throw new InvalidArgumentError(
      `expected an ISO 8601 date (2024-01-01) or a date-time with Z or an offset (2024-01-01T08:00:00Z), in 2000-2099, got "${v}"`,
    );
  }
  return v;
}

function outOption(v: string): string {
  if (v.trim() === '') throw new InvalidArgumentError('expected a file path, got ""');
  return v;
}

function human(s: SynthSummary): string {
  const pct = (100 * s.fraudRate).toFixed(2);
  return [
    `wrote ${s.rows} transactions to ${s.path} (${s.columns} columns, ${s.bytes} bytes)`,
    `fraud: ${s.fraudRows} rows (${pct} %)`,
    `time: ${s.seconds.toFixed(2)} s (${Math.round(s.rowsPerSecond)} rows/s)`,
    `seed: ${s.seed} (pass --seed ${s.seed} to generate the same file again)`,
  ].join('\n');
}

/** `bulwark data synth`: synthetic card transactions with labelled fraud, streamed to CSV. */
export function registerDataSynthCommand(data: Command): void {
  data
    .command('synth')
    .description('generate synthetic card transactions with personal fields and labelled fraud, as CSV')
    .requiredOption('--out <file>', 'output CSV file (written atomically: complete or not at all)', outOption)
    .option('--rows <n>', `number of transactions, 1 to ${MAX_ROWS}`, intOption(1, MAX_ROWS), 100_000)
    .option(
      '--fraud-rate <r>',
      'fraction of rows labelled is_fraud=1, in [0, 0.5]',
      floatOption(0, 0.5),
      0.02,
    )
    .option(
      '--seed <n>',
      'PRNG seed (default: random, printed so the run can be repeated)',
      intOption(0, 2 ** 53 - 1),
    )
    .option(
      '--cardholders <n>',
      'number of cardholders (default rows/100 in [20, 20000])',
      intOption(1, MAX_CARDHOLDERS),
    )
    .option(
      '--start <date>',
      'start of the simulated period: an ISO 8601 date, or a date-time with Z or an offset (default 2024-01-01T00:00:00Z)',
      startOption,
    )
    .option(
      '--label-noise <r>',
      'fraction of fraud episodes left unreported (labelled 0), in [0, 0.5]',
      floatOption(0, 0.5),
    )
    .option(
      '--include-scenario',
      'add a last column naming the pattern behind each row (for analysis, not training)',
    )
    .option('--force', 'overwrite --out if it exists')
    // The old opt-in to what is now the default (every writing command refuses an existing output
    // without --force); still accepted so that scripts written for it keep working.
    .addOption(new Option('--no-clobber', 'refuse to overwrite an existing file (the default)').hideHelp())
    .addHelpText(
      'after',
      '\nThe columns, fraud patterns and their parameters are described in docs/synth.md.\n' +
        'Same seed and options: the same bytes. Ctrl-C leaves no file behind.',
    )
    .action(async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<SynthCliOptions>();
      try {
        if ((await stat(o.out)).isDirectory()) {
          throw new BulwarkError('ERR_USAGE', `--out: ${o.out} is a folder; give a file path`, {
            details: { option: '--out' },
          });
        }
      } catch (e) {
        if (e instanceof BulwarkError) throw e;
      }
      // Before any row is generated: a missing folder, or an existing file without --force.
      await checkOutputPath(o.out, { force: o.force });
      const seed = o.seed ?? new SecureRng().nextUint32();
      const controller = new AbortController();
      const onSignal = (): void => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const progress = startProgress(io, 'synth', o.rows, 'rows');
      try {
        const summary = await writeTransactionsCsv(
          o.out,
          {
            rows: o.rows,
            fraudRate: o.fraudRate,
            seed,
            start: o.start,
            cardholders: o.cardholders,
            labelNoise: o.labelNoise,
            includeScenario: o.includeScenario === true,
            noClobber: o.force !== true,
            signal: controller.signal,
          },
          (done) => progress.update(done),
        );
        progress.stop();
        io.result(summary, () => human(summary));
      } finally {
        progress.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
