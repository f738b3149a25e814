import { type ErrorCode, type ExitCode, errorCodes } from './error-codes.js';

export interface BulwarkErrorOptions {
  /** The underlying error, kept for debugging; never printed to users by the CLI. */
  cause?: unknown;
  /** Structured, non-secret facts about the failure (file, row, field, option). */
  details?: Readonly<Record<string, string | number | boolean | null>>;
}

/**
 * The one error base of Bulwark (after panva/jose's `JOSEError`): every failure carries a stable
 * `code` from {@link errorCodes}, a one-line message that names what was wrong, and its `cause`.
 *
 * Messages must never contain secrets (keys, passphrases, tokens, plaintext of protected fields).
 *
 * @example
 * ```ts
 * throw new BulwarkError('ERR_FILE_NOT_FOUND', `data file not found: ${path}`, { details: { path } });
 * ```
 */
export class BulwarkError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, string | number | boolean | null>>;

  constructor(code: ErrorCode, message: string, options: BulwarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BulwarkError';
    this.code = code;
    this.details = options.details ?? {};
  }

  /** The CLI exit code for this error (from the code table). */
  get exitCode(): ExitCode {
    return errorCodes[this.code].exit;
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: { ...this.details } };
  }
}

/** True when `e` is a {@link BulwarkError}, optionally with the given code. */
export function isBulwarkError(e: unknown, code?: ErrorCode): e is BulwarkError {
  return e instanceof BulwarkError && (code === undefined || e.code === code);
}

/** Shorthand for the most common failure: a parameter that is out of range or of the wrong kind. */
export function invalidArgument(name: string, expected: string, got: unknown): BulwarkError {
  return new BulwarkError('ERR_INVALID_ARGUMENT', `${name}: expected ${expected}, got ${describe(got)}`, {
    details: { parameter: name },
  });
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  // A message says what was wrong in words, never "undefined": the parameter was not given.
  if (v === undefined) return 'nothing (it was not given)';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return `a ${typeof v}`;
}
