import { BulwarkError, removePendingTemps } from '../core/index.js';
import { reportError } from './output.js';

/**
 * Ctrl-C or SIGTERM in the middle of a write: the temporary files being written (part of a decrypted
 * file, say) are deleted before the process ends, and the interruption is reported like any other
 * error (ERR_ABORTED, in JSON with `--json`). Commands that handle the signal themselves (serve drains
 * its requests, data synth stops its generator) have listeners of their own and are left to do so.
 */
export function exitCleanlyOnSignals(json: boolean): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) > 1) return;
      const removed = removePendingTemps();
      const exit = reportError(
        new BulwarkError(
          'ERR_ABORTED',
          `interrupted by ${signal}${removed > 0 ? `; the unfinished output was deleted (${removed} temporary file${removed === 1 ? '' : 's'})` : ''}; nothing was written (a file already at an output path is left as it was)`,
        ),
        json,
      );
      process.exit(exit);
    });
  }
}
