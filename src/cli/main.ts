// The mechanism's own module, not privacy/index.js: the entry point loads only what every command needs
// (test/cli/cli.test.ts: `bulwark audit --help` loads no data or ML module).
import { INSECURE_NOISE_WARNING } from '../privacy/mechanisms/noise.js';
import { runCli } from './program.js';
import { exitCleanlyOnSignals } from './signals.js';

// Entry point of the `bulwark` executable: the exit code is set, never a stack trace for user errors.
// A reader that stops early (`bulwark ... | head`) closes the pipe: that is not an error of ours, so
// every command stops quietly instead of printing an unhandled EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

// Node prints process warnings as '(node:PID) [CODE] Warning: ...' followed by a hint about
// --trace-warnings: noise in a CLI's output. Warnings are printed the CLI's way instead, except the
// library's seeded-noise warning, which every command that takes --seeded-noise has already said in
// its own words (a second copy of the same warning teaches the reader to skip warnings).
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code === INSECURE_NOISE_WARNING) return;
  process.stderr.write(`bulwark: warning: ${w.code ? `${w.code}: ` : ''}${w.message}\n`);
});

const argv = process.argv.slice(2);
exitCleanlyOnSignals(argv.includes('--json'));
process.exitCode = await runCli(argv);
