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
  return doc.toJS() ?? {};
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

/** Reads and validates a YAML configuration file. */
export async function loadConfig<S extends z.ZodType>(path: string, schema: S): Promise<z.infer<S>> {
  return parseConfig(await readInputFile(path, 'config', 'utf8'), schema, path);
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
