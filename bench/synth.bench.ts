/**
 * Synthetic transactions benchmark: rows per second for generating 1,000,000 card transactions to CSV
 * (`writeTransactionsCsv`: simulation, history features, byte-level CSV, atomic file with fsync), and for
 * reading those rows back with the data layer's streaming CSV reader (`openCsv`), next to csv-parse
 * (the library the reader falls back to) reading the same file. `--quick` uses 100,000 rows.
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse';
import { openCsv, TRANSACTION_COLUMNS, writeTransactionsCsv } from '../src/data/index.js';
import { type Benchmark, type Figure, REPO_ROOT, timeRepeats } from './harness.js';

function csvParseVersion(): string {
  // csv-parse's exports map hides its package.json from require.resolve.
  const file = join(REPO_ROOT, 'node_modules', 'csv-parse', 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

const bench: Benchmark = {
  name: 'synth',
  description: 'synthetic card transactions: generate to CSV, and read back (rows/s)',
  async run(ctx) {
    const rows = ctx.quick ? 100_000 : 1_000_000;
    const options = { rows, fraudRate: 0.02, seed: 2024 };
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-synth-'));
    const path = join(dir, 'transactions.csv');
    try {
      // Memory stays bounded while streaming: sample the resident set through the progress callback.
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      let fraudRows = 0;
      let bytes = 0;
      const loadBefore = loadavg()[0] as number;
      ctx.log(`generating ${rows} rows x ${ctx.repeats}`);
      // CPU seconds of the whole process (main thread and the file-system threads) per run: on this
      // shared machine wall time mostly measures the other jobs, CPU time much less so.
      const genCpuSeconds: number[] = [];
      const genSeconds = await timeRepeats(ctx.repeats, async () => {
        const cpu0 = process.cpuUsage();
        const s = await writeTransactionsCsv(path, options, () => {
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        });
        const cpu = process.cpuUsage(cpu0);
        genCpuSeconds.push((cpu.user + cpu.system) / 1e6);
        fraudRows = s.fraudRows;
        bytes = s.bytes;
      });
      if (statSync(path).size !== bytes) throw new Error('file size differs from the bytes reported');

      ctx.log(`reading ${rows} rows back with openCsv x ${ctx.repeats}`);
      const readSeconds = await timeRepeats(ctx.repeats, async () => {
        const reader = await openCsv(path);
        let n = 0;
        for await (const row of reader) {
          if (row.values.length !== TRANSACTION_COLUMNS.length) throw new Error(`row ${n + 1}: field count`);
          n++;
        }
        if (n !== rows) throw new Error(`openCsv read ${n} rows, expected ${rows}`);
      });

      ctx.log(`reading ${rows} rows back with csv-parse x ${ctx.repeats}`);
      const csvParseSeconds = await timeRepeats(ctx.repeats, async () => {
        let n = 0;
        const parser = createReadStream(path).pipe(parse({ from_line: 2 }));
        for await (const rec of parser as AsyncIterable<string[]>) {
          if (rec.length !== TRANSACTION_COLUMNS.length) throw new Error(`row ${n + 1}: field count`);
          n++;
        }
        if (n !== rows) throw new Error(`csv-parse read ${n} rows, expected ${rows}`);
      });

      const rate = (s: number[]): number[] => s.map((x) => rows / x);
      const figures: Figure[] = [
        {
          id: 'synth.generate_rows_per_s',
          label: `generate ${rows} rows to CSV`,
          system: 'bulwark',
          unit: 'rows/s',
          better: 'higher',
          samples: rate(genSeconds),
        },
        {
          id: 'synth.generate_rows_per_cpu_s',
          label: `generate ${rows} rows to CSV, per CPU second`,
          system: 'bulwark',
          unit: 'rows/CPU-s',
          better: 'higher',
          samples: genCpuSeconds.map((x) => rows / x),
        },
        {
          id: 'synth.read_rows_per_s',
          label: `read ${rows} rows back (openCsv)`,
          system: 'bulwark',
          unit: 'rows/s',
          better: 'higher',
          samples: rate(readSeconds),
        },
        {
          id: 'synth.read_rows_per_s.csv_parse',
          label: `read ${rows} rows back (csv-parse stream)`,
          system: `csv-parse ${csvParseVersion()}`,
          unit: 'rows/s',
          better: 'higher',
          samples: rate(csvParseSeconds),
        },
      ];
      return {
        figures,
        ratios: [
          {
            label: 'openCsv / csv-parse read speed',
            of: 'synth.read_rows_per_s',
            to: 'synth.read_rows_per_s.csv_parse',
          },
        ],
        facts: {
          rows,
          fraud_rate_target: options.fraudRate,
          fraud_rows: fraudRows,
          fraud_rate: fraudRows / rows,
          columns: TRANSACTION_COLUMNS.length,
          file_bytes: bytes,
          bytes_per_row: Math.round(bytes / rows),
          rss_growth_during_generation_mib: Math.round((rssPeak - rssBefore) / 2 ** 20),
          rss_peak_mib: Math.round(rssPeak / 2 ** 20),
          load_average_1m_before: Number(loadBefore.toFixed(2)),
          load_average_1m_after: Number((loadavg()[0] as number).toFixed(2)),
        },
        notes: [
          `${rows} rows, fraud rate 0.02, seed 2024, ${TRANSACTION_COLUMNS.length} columns, ${Math.round(bytes / 2 ** 20)} MiB of CSV.`,
          'Generation time includes building the cardholder population, the simulation, CSV encoding, and the atomic write (temporary file, fsync, rename).',
          "Reading back uses the data layer's streaming reader (openCsv, Bulwark's own tokenizer); csv-parse reads the same file as a stream for comparison. Both check the field count of every row.",
          'The machine has 2 cores shared with other engineers\u2019 jobs (see the load averages in the facts): wall-clock rows/s depend on that load; rows per CPU second (whole process, including the file-system threads) much less.',
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default bench;
