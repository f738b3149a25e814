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

const argv = process.argv.slice(2);
exitCleanlyOnSignals(argv.includes('--json'));
process.exitCode = await runCli(argv);
