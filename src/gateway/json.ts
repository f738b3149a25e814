/**
 * The parse stage's JSON reader: a size limit, a nesting-depth limit checked on the raw text before
 * `JSON.parse` runs (so a 100,000-deep array never reaches the recursive parser), and refusal of the
 * keys `__proto__`, `constructor` and `prototype` anywhere in the document (prototype pollution, CWE-1321:
 * `JSON.parse` makes them own properties, but any later `Object.assign` or spread by a library would not),
 * and of a key given twice in one object (which `JSON.parse` would resolve silently to the last).
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
 * The first structural problem of `text` that `JSON.parse` would not report: nesting deeper than
 * `limit`, or a key given twice in one object (`JSON.parse` keeps the last silently, while a proxy or
 * log reader in front may keep the first: the two would act on different requests). Keys are compared
 * decoded (`"a"` and `"\u0061"` are one key). One pass over the text; malformed text is left for
 * `JSON.parse` to reject.
 */
export function jsonStructureProblem(
  text: string,
  limit: number,
): { reason: 'depth' } | { reason: 'duplicate_key'; key: string } | null {
  // One entry per open container: the keys seen so far of an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const start = i + 1;
      let escaped = false;
      for (i = start; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92 /* \ */) {
          escaped = true;
          i++;
        } else if (d === 34) break;
      }
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        let key = text.slice(start, i);
        if (escaped) {
          try {
            key = JSON.parse(`"${key}"`) as string;
          } catch {
            return null; // a broken escape: JSON.parse refuses the whole text
          }
        }
        if (keys.has(key)) return { reason: 'duplicate_key', key };
        keys.add(key);
        expectKey = false;
      }
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      stack.push(c === 123 ? new Set() : null);
      if (stack.length > limit) return { reason: 'depth' };
      expectKey = c === 123;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 44 /* , */) expectKey = stack[stack.length - 1] instanceof Set;
    else if (c === 58 /* : */) expectKey = false;
  }
  return null;
}

function refuseKey(key: string): void {
  if (key === '__proto__' || key === 'constructor' || key === 'prototype')
    throw invalid(`request body: the key "${key}" is not allowed`, 'forbidden_key');
}

/**
 * Parses a request body. Throws `ERR_GATEWAY_BODY_TOO_LARGE` over `maxBytes`, and
 * `ERR_GATEWAY_REQUEST_INVALID` (details.reason `encoding`, `json`, `depth`, `duplicate_key`,
 * `forbidden_key`) otherwise.
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
  const problem = jsonStructureProblem(text, maxDepth);
  if (problem?.reason === 'depth')
    throw invalid(`request body: nested deeper than ${maxDepth} levels`, 'depth');
  if (problem?.reason === 'duplicate_key')
    throw invalid(
      `request body: the key ${JSON.stringify(problem.key.slice(0, 64))} is given twice in one object`,
      'duplicate_key',
    );
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
