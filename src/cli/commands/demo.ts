import { resolve } from 'node:path';
import type { Command } from 'commander';
import { bulwarkVersion } from '../../core/index.js';
import { DEMO_STAGES, runDemo } from '../../demo/index.js';
import { intOption } from '../options.js';
import { ioOf } from '../output.js';
import { startProgress } from '../progress.js';

/** `bulwark demo`: the end-to-end story, written as report.html and report.json. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end demo on generated data and write report.html and report.json')
    .option('--out <dir>', 'output folder', 'demo-out')
    .option('--quick', 'a smaller run for a fast look')
    .option(
      '--seed <n>',
      'seed for the generated data and the models',
      intOption(0, Number.MAX_SAFE_INTEGER),
      7,
    )
    .addHelpText(
      'after',
      `
Stages: ${DEMO_STAGES.map((s) => s.title).join(' → ')}.
Writes DIR/report.html (open it in a browser), DIR/report.json, and each stage's files.`,
    )
    .action(async function (this: Command) {
      const opts = this.opts<{ out: string; quick?: boolean; seed: number }>();
      const io = ioOf(this);
      const outDir = resolve(opts.out);
      const ids = DEMO_STAGES.map((s) => s.id);
      const bar = startProgress(io, 'demo', ids.length * 100, '%');
      let report: Awaited<ReturnType<typeof runDemo>>;
      try {
        report = await runDemo(
          {
            outDir,
            quick: opts.quick === true,
            seed: opts.seed,
            onProgress: (stage, f) => bar.update(ids.indexOf(stage) * 100 + Math.round(100 * f), { stage }),
          },
          bulwarkVersion(),
        );
      } finally {
        bar.stop();
      }
      io.result({ outDir, report: `${outDir}/report.html`, summary: report.summary }, () =>
        [
          `Demo finished: ${report.sections.length} stages.`,
          ...report.sections.map(
            (s) => `  ${s.status.padEnd(7)} ${s.title} (${(s.seconds ?? 0).toFixed(1)} s)`,
          ),
          `Report: ${outDir}/report.html`,
        ].join('\n'),
      );
    });
}
