import { runCli } from './program.js';

// Entry point of the `bulwark` executable: the exit code is set, never a stack trace for user errors.
process.exitCode = await runCli(process.argv.slice(2));
