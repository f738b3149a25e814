/**
 * The parse stage's JSON reader: a size limit, a nesting-depth limit checked on the raw text before
 * `JSON.parse` runs (so a 100,000-deep array never reaches the recursive parser), and refusal of the
 * keys `__proto__`, `constructor` and `prototype` anywhere in the document (prototype pollution, CWE-1321:
 * `JSON.parse` makes them own properties, but any later `Object.assign` or spread by a library would not).
 * No coercion happens here or later: types are checked exactly by the protocol and the model schema.
 */
import { BulwarkError } from '../core/index.js';

const FORBIDDEN = ['__proto__', 'constructor', 'prototype'] as const;
/** One decoder for every request: a non-streaming `decode` keeps no state between calls. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, reason: string): BulwarkError {
  return new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', message, { details: { reason } });
}

/**
 * The deepest nesting of arrays and objects in `text`, stopping as soon as `limit` is exceeded. Brackets
 * inside strings are skipped (escapes honoured). Malformed text is left for `JSON.parse` to reject.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > limit) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

function refuseKey(key: string): void {
  if (key === '__proto__' || key === 'constructor' || key === 'prototype')
    throw invalid(`request body: the key "${key}" is not allowed`, 'forbidden_key');
}

/**
 * Parses a request body. Throws `ERR_GATEWAY_BODY_TOO_LARGE` over `maxBytes`, and
 * `ERR_GATEWAY_REQUEST_INVALID` (details.reason `encoding`, `json`, `depth`, `forbidden_key`) otherwise.
 */
export function parseJsonBody(body: Buffer, maxBytes: number, maxDepth: number): unknown {
  if (body.length > maxBytes)
    throw new BulwarkError(
      'ERR_GATEWAY_BODY_TOO_LARGE',
      `request body of ${body.length} bytes, the limit is ${maxBytes}`,
      { details: { reason: 'size', limit: maxBytes } },
    );
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw invalid('request body: not valid UTF-8', 'encoding');
  }
  if (jsonDepthExceeds(text, maxDepth))
    throw invalid(`request body: nested deeper than ${maxDepth} levels`, 'depth');
  // The reviver costs a call per value; only pay it when a forbidden name appears in the text at all.
  const suspicious = FORBIDDEN.some((k) => text.includes(k)) || text.includes('\\u');
  try {
    return suspicious
      ? JSON.parse(text, function (this: unknown, key: string, value: unknown) {
          if (!Array.isArray(this)) refuseKey(key);
          return value;
        })
      : JSON.parse(text);
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw invalid(`request body: not valid JSON (${(e as Error).message.slice(0, 120)})`, 'json');
  }
}
