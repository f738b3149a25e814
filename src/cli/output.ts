import type { Command } from 'commander';
import {
  BulwarkError,
  type ErrorCode,
  ExitCode,
  errorCodes,
  escapeChars,
  UNPRINTABLE_CHARS,
} from '../core/index.js';

/** Where a command writes: stdout for results, stderr for messages and progress. */
export interface Io {
  /** `--json` was given: results are one JSON document on stdout; no colours, no progress bars. */
  readonly json: boolean;
  /** Writes a result: `data` as JSON in `--json` mode, otherwise `human()` as text. */
  result(data: unknown, human: () => string): void;
  /** A human-facing note on stderr (suppressed in `--json` mode). */
  note(message: string): void;
  /** Whether progress bars may be drawn (stderr is a terminal and not `--json`). */
  readonly interactive: boolean;
}

/**
 * Text as a terminal will show it, not obey it. Column names, category values, file names and model
 * metadata reach the human output from files that anyone may have written: an escape sequence in a CSV
 * header could retitle the terminal, clear it, or move the cursor back over the SENSITIVITY column of
 * `bulwark data schema` and print "public" where the table says "sensitive".
 */
export function printable(s: string): string {
  return escapeChars(s, UNPRINTABLE_CHARS);
}

/** The `Io` of a running command, from the global `--json` flag. */
export function ioOf(cmd: Command): Io {
  return makeIo(cmd.optsWithGlobals<{ json?: boolean }>().json === true);
}

export function makeIo(json: boolean): Io {
  return {
    json,
    interactive: !json && process.stderr.isTTY === true && process.env['CI'] !== 'true',
    result(data, human) {
      process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${printable(human())}\n`);
    },
    note(message) {
      if (!json) process.stderr.write(`${printable(message)}\n`);
    },
  };
}

/**
 * Reports an error as one line (`bulwark: ERR_CODE: message`) or, in `--json` mode, as
 * `{"error": {"code", "message", "details"}}` on stderr; returns the exit code. Never prints a stack
 * trace for a BulwarkError; an unexpected error is reported as ERR_INTERNAL with its message only,
 * and its stack only when BULWARK_DEBUG=1.
 */
export function reportError(e: unknown, json: boolean): ExitCode {
  const err =
    e instanceof BulwarkError
      ? e
      : new BulwarkError('ERR_INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`, {
          cause: e,
        });
  if (json) {
    process.stderr.write(`${JSON.stringify({ error: err.toJSON() })}\n`);
  } else {
    process.stderr.write(`bulwark: ${err.code}: ${printable(err.message)}\n`);
  }
  if (process.env['BULWARK_DEBUG'] === '1' && e instanceof Error && e.stack)
    process.stderr.write(`${e.stack}\n`);
  return err.exitCode;
}

export function exitCodeOf(code: ErrorCode): ExitCode {
  return errorCodes[code].exit;
}

export { ExitCode };
