import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { packageRoot, writeFileAtomic } from '../../core/index.js';
import { checkOutputPath, intOption } from '../options.js';
import { ioOf } from '../output.js';
import { startProgress } from '../progress.js';

const lib = () => import('../../bench/index.js');

export function registerBenchCommands(program: Command): void {
  const bench = program.command('bench').description('measured benchmarks that ship with the CLI');
  bench
    .command('costs')
    .description(
      "the article's security cost and effectiveness claims beside measured figures (committed results + new measurements)",
    )
    .option('--quick', 'small sizes, for a smoke run (a few seconds of training)')
    .option(
      '--repeats <n>',
      'paired repeats of each timed measurement (default 3; --quick 1)',
      intOption(1, 50),
    )
    .option('--seed <n>', 'seed of the generated transactions and the models', intOption(0), 11)
    .option(
      '--results <dir>',
      "committed benchmark results to read (default: the results shipped with Bulwark, its bench/results; give your own machine's `npm run bench` results here)",
    )
    .option(
      '--out <file>',
      'where to write the results JSON (default RESULTS/costs.json with --results, else bench/results/costs.json in the working folder)',
    )
    .option(
      '--doc <file>',
      'where to write the Markdown table (in the working folder)',
      'docs/performance.md',
    )
    .option('--no-write', 'print only; write neither the JSON nor the doc')
    .option(
      '--from <file>',
      'measure nothing: rebuild the rows and the doc from this earlier costs.json against the results as they are now',
    )
    .addHelpText(
      'after',
      `
Every figure the article states in "Secure AI Performance Benchmarks", "Performance Impact Analysis",
"Real-World Performance Metrics" and "Defense Effectiveness Metrics" gets a row: the claim, our figure,
the verdict (confirms / contradicts / not comparable / not measured) and its source. Figures already in
bench/results/*.json are read from there (file, figure id, run date); the rest are measured now on
generated card transactions (encryption in the training loop, storage and memory, DP at epsilon 1,
software-enclave inference, input validation and an ensemble of defences against attacks).
A missing results file makes its rows "not measured"; nothing is estimated. See docs/performance.md.`,
    )
    .action(async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<{
        quick?: boolean;
        repeats?: number;
        seed: number;
        results?: string;
        out?: string;
        doc: string;
        write: boolean;
        from?: string;
      }>();
      const b = await lib();
      // Not the working directory's bench/results: run from any other folder, every row read "not
      // measured" (as bulwark plan did before it read the shipped results too).
      const resultsDir =
        o.results !== undefined ? resolve(o.results) : join(packageRoot(), 'bench', 'results');
      const out = resolve(
        o.out ??
          (o.results !== undefined
            ? join(resultsDir, `${b.COSTS_BENCH}.json`)
            : join('bench', 'results', `${b.COSTS_BENCH}.json`)),
      );
      const doc = resolve(o.doc);
      // Generated files, replaced on every run (no --force), but their folders must exist: checked
      // before minutes of measurement, and never created (before, ./bench/results and ./docs were).
      if (o.write) {
        await checkOutputPath(out, { force: true });
        await checkOutputPath(doc, { force: true, option: '--doc', inputs: [out] });
      }
      let r: Awaited<ReturnType<typeof b.runCosts>>;
      if (o.from !== undefined) {
        const from = resolve(o.from);
        const { readInputFile } = await import('../../core/index.js');
        const text = await readInputFile(from, 'costs results', 'utf8');
        const { set, note } = await b.readCommitted(resultsDir);
        r = b.reassemble(set, text, from);
        if (note) r.json.notes.push(note);
      } else {
        const bar = startProgress(io, 'bench costs', 100, '%');
        try {
          r = await b.runCosts({
            resultsDir,
            quick: o.quick === true,
            seed: o.seed,
            ...(o.repeats !== undefined ? { repeats: o.repeats } : {}),
            onProgress: (stage, f) => bar.update(Math.round(100 * f), { stage }),
          });
        } finally {
          bar.stop();
        }
      }
      if (o.write) {
        await writeFileAtomic(out, `${JSON.stringify(r.json, null, 2)}\n`);
        await writeFileAtomic(doc, r.markdown);
      }
      io.result(
        {
          ...(o.write ? { results: out, doc } : {}),
          rows: r.rows,
          figures: r.json.figures,
          facts: r.json.facts,
        },
        () =>
          [
            ...r.rows.map(
              (x) =>
                `${x.verdict.padEnd(14)} ${x.claimText}\n${''.padEnd(15)}${x.measured === null ? '—' : `${b.fmt(x.measured)} ${x.unit}`}: ${x.what}`,
            ),
            ...(o.write ? [`results: ${out}`, `doc: ${doc}`] : []),
          ].join('\n'),
      );
    });
}
