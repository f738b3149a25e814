import assert from 'node:assert/strict';
import { isBulwarkError } from '../../src/core/index.js';

/**
 * A validation function for `assert.rejects` / `assert.throws`: the error is a BulwarkError with code
 * `c` (and a message matching `message`, when given). Anything else fails with what was thrown instead
 * of node's generic "validation function is expected to return true".
 */
export const code =
  (c: string, message?: RegExp) =>
  (e: unknown): true => {
    if (isBulwarkError(e) && e.code === c && (!message || message.test(e.message))) return true;
    throw new assert.AssertionError({
      message: `expected ${c}${message ? ` ${message}` : ''}, got ${isBulwarkError(e) ? `${e.code}: ${e.message}` : String(e)}`,
    });
  };
