import type { Command } from 'commander';
import { ioOf } from '../program.js';

/** `bulwark demo`: the end-to-end story, written as report.html and report.json. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end demo on generated data and write report.html and report.json')
    .option('--out <dir>', 'output folder', 'demo-out')
    .option('--quick', 'a smaller run for a fast look')
    .action(async function (this: Command) {
      ioOf(this).result({}, () => 'demo: not yet');
    });
}
