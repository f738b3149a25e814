import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BulwarkError, ExitCode, errorCodes, invalidArgument, isBulwarkError } from '../../src/core/index.js';

const root = join(import.meta.dirname, '..', '..');
const docs = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
const codes = Object.keys(errorCodes);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('error code table', () => {
  it('every code is documented exactly once in docs/errors.md with its exit status', () => {
    for (const code of codes) {
      const headings = docs.match(new RegExp(`^### ${code}$`, 'gm')) ?? [];
      assert.equal(
        headings.length,
        1,
        `${code} must have exactly one "### ${code}" heading in docs/errors.md`,
      );
      const section = docs.slice(docs.indexOf(`### ${code}\n`)).split('\n### ')[0] ?? '';
      const exit = errorCodes[code as keyof typeof errorCodes].exit;
      assert.match(section, new RegExp(`Exit ${exit}\\.`), `${code}: docs must say "Exit ${exit}."`);
    }
  });

  it('docs/errors.md documents no code that is not in the table', () => {
    const documented = [...docs.matchAll(/^### (ERR_[A-Z0-9_]+)$/gm)].map((m) => m[1]);
    for (const d of documented)
      assert.ok(codes.includes(d as string), `docs/errors.md documents unknown ${d}`);
  });

  it('codes are well-formed and unique, and each is raised somewhere in src/', () => {
    const src = sourceFiles(join(root, 'src'))
      .filter((p) => !p.endsWith('error-codes.ts'))
      .map((p) => readFileSync(p, 'utf8'))
      .join('\n');
    const tableText = readFileSync(join(root, 'src', 'core', 'error-codes.ts'), 'utf8');
    for (const code of codes) {
      assert.match(code, /^ERR_[A-Z0-9_]+$/);
      assert.equal(tableText.match(new RegExp(`\\b${code}:`, 'g'))?.length, 1, `${code} defined once`);
      assert.ok(src.includes(`'${code}'`), `${code} is never raised in src/ (dead code or a typo)`);
    }
  });

  it('exit statuses are within the documented set', () => {
    const allowed = new Set<number>(Object.values(ExitCode));
    for (const [code, info] of Object.entries(errorCodes)) assert.ok(allowed.has(info.exit), code);
  });
});

describe('BulwarkError', () => {
  it('keeps code, message, details and cause; maps the exit status', () => {
    const cause = new Error('low level');
    const e = new BulwarkError('ERR_CSV_PARSE', 'bad row', { cause, details: { line: 3 } });
    assert.equal(e.code, 'ERR_CSV_PARSE');
    assert.equal(e.cause, cause);
    assert.equal(e.exitCode, ExitCode.input);
    assert.deepEqual(e.toJSON(), { code: 'ERR_CSV_PARSE', message: 'bad row', details: { line: 3 } });
    assert.ok(isBulwarkError(e, 'ERR_CSV_PARSE'));
    assert.ok(!isBulwarkError(e, 'ERR_IO'));
    assert.ok(!isBulwarkError(cause));
  });

  it('invalidArgument names the parameter, the expectation and a short rendering of the value', () => {
    const e = invalidArgument('epochs', 'an integer >= 1', 'x'.repeat(100));
    assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
    assert.match(e.message, /^epochs: expected an integer >= 1, got "x{40}…"$/);
    assert.equal(e.exitCode, ExitCode.usage);
    assert.equal(
      invalidArgument('delta', 'a delta in (0, 1)', undefined).message,
      'delta: expected a delta in (0, 1), got nothing (it was not given)',
    );
  });
});
