import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { BulwarkError } from './errors.js';
import { readInputFile } from './fs.js';

/**
 * YAML configuration validated against a zod schema. Errors name the file, the key path
 * (`gateway.tls.cert`) and what was expected, one problem per line, so a user can fix them all at once.
 */

/**
 * Parses YAML text (duplicate keys refused) into plain values, `{}` for an empty document; the first
 * syntax error is ERR_CONFIG_PARSE naming `source`, line and column.
 */
export function parseYaml(text: string, source = '<config>'): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const where = first.linePos?.[0] ? `:${first.linePos[0].line}:${first.linePos[0].col}` : '';
    throw new BulwarkError('ERR_CONFIG_PARSE', `${source}${where}: ${first.message.split('\n')[0]}`, {
      details: { file: source },
    });
  }
  let value: unknown;
  try {
    // The yaml library refuses alias expansion beyond maxAliasCount (default 100, the "billion
    // laughs" document) with a ReferenceError: the same refusal as a syntax error, not an internal one.
    value = doc.toJS();
  } catch (e) {
    throw new BulwarkError('ERR_CONFIG_PARSE', `${source}: ${(e as Error).message}`, {
      details: { file: source },
    });
  }
  const found = unsafeNode(value);
  if (found?.kind === 'cycle')
    throw new BulwarkError(
      'ERR_CONFIG_PARSE',
      `${source}: ${found.path}: an alias refers to a node that contains it (a YAML document with no end)`,
      { details: { file: source } },
    );
  if (found?.kind === 'proto')
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `${source}: ${found.path}: a "__proto__" key is not allowed`,
      {
        details: { file: source, firstPath: found.path },
      },
    );
  return value ?? {};
}

/**
 * The first node no configuration may hold, with its key path, or undefined:
 * - a value that contains itself: `a: &x [*x]` is valid YAML and becomes an array holding itself, and
 *   every consumer that walks it (validation of an open record, JSON.stringify of a configuration
 *   digest, a deep copy) recurses forever or throws;
 * - a `__proto__` key: an own key after parsing, which zod's records drop without a word, so a file's
 *   "unknown keys are refused" did not hold for it (found in `bulwark plan`'s file; refused here for
 *   every configuration).
 */
function unsafeNode(root: unknown): { kind: 'cycle' | 'proto'; path: string } | undefined {
  const open = new Set<object>();
  const walk = (v: unknown, path: PropertyKey[]): { kind: 'cycle' | 'proto'; path: string } | undefined => {
    if (v === null || typeof v !== 'object') return undefined;
    if (open.has(v)) return { kind: 'cycle', path: formatPath(path) };
    open.add(v);
    const entries: [PropertyKey, unknown][] =
      v instanceof Map ? [...v.entries()] : Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of entries) {
      if (k === '__proto__') return { kind: 'proto', path: formatPath([...path, k]) };
      const found = walk(x, [...path, k]);
      if (found !== undefined) return found;
    }
    open.delete(v);
    return undefined;
  };
  return walk(root, []);
}

/** Parses YAML text and validates it; `source` names the file in messages. */
export function parseConfig<S extends z.ZodType>(text: string, schema: S, source = '<config>'): z.infer<S> {
  return validateConfig(parseYaml(text, source), schema, source);
}

/** Validates an already-parsed value (from YAML, JSON or code) against `schema`. */
export function validateConfig<S extends z.ZodType>(
  value: unknown,
  schema: S,
  source = '<config>',
): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
  throw new BulwarkError('ERR_CONFIG_INVALID', `${source}: ${lines.join('; ')}`, {
    details: { file: source, firstPath: formatPath(r.error.issues[0]?.path ?? []) },
  });
}

/** Reads and validates a YAML configuration file; `what` names it in a read error ("trust policy"). */
export async function loadConfig<S extends z.ZodType>(
  path: string,
  schema: S,
  what = 'config',
): Promise<z.infer<S>> {
  return parseConfig(await readInputFile(path, what, 'utf8'), schema, path);
}

export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}
