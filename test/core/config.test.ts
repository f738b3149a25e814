import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { BulwarkError, formatPath, loadConfig, parseConfig, parseYaml } from '../../src/core/index.js';

const schema = z.strictObject({
  gateway: z.strictObject({
    port: z.number().int().min(1).max(65535),
    tls: z.strictObject({ cert: z.string(), key: z.string() }),
  }),
  stages: z.array(z.enum(['auth', 'policy', 'validate'])),
});

describe('YAML config', () => {
  it('parses and validates a good file', () => {
    const c = parseConfig(
      'gateway:\n  port: 8443\n  tls: { cert: a.pem, key: k.pem }\nstages: [auth, policy]\n',
      schema,
      'g.yaml',
    );
    assert.equal(c.gateway.port, 8443);
    assert.deepEqual(c.stages, ['auth', 'policy']);
  });

  it('names every bad key path and what was expected', () => {
    assert.throws(
      () =>
        parseConfig('gateway:\n  port: "80"\n  tls: { cert: 1 }\nstages: [auth, nope]\n', schema, 'g.yaml'),
      (e: unknown) => {
        const err = e as { code: string; message: string };
        assert.equal(err.code, 'ERR_CONFIG_INVALID');
        assert.match(err.message, /^g\.yaml: /);
        assert.match(err.message, /gateway\.port: .*number/);
        assert.match(err.message, /gateway\.tls\.cert: .*string/);
        assert.match(err.message, /gateway\.tls\.key: /);
        assert.match(err.message, /stages\[1\]: /);
        return true;
      },
    );
  });

  it('rejects unknown keys in strict schemas', () => {
    assert.throws(
      () => parseConfig('gateway: { port: 1, tls: { cert: a, key: b }, tlss: 1 }\nstages: []\n', schema),
      /gateway: .*tlss/,
    );
  });

  it('reports malformed YAML with line and column', () => {
    assert.throws(() => parseConfig('a: [1, 2\nb: 3\n', schema, 'bad.yaml'), {
      code: 'ERR_CONFIG_PARSE',
      message: /^bad\.yaml:\d+:\d+: /,
    });
  });

  it('rejects duplicate keys', () => {
    assert.throws(() => parseConfig('a: 1\na: 2\n', schema, 'dup.yaml'), { code: 'ERR_CONFIG_PARSE' });
  });

  it('an alias bomb or an alias inside itself is ERR_CONFIG_PARSE, not an internal error or a cyclic value', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 7; i++) {
      const prev = String.fromCharCode(96 + i);
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${prev}`).join(',')}]`,
      );
    }
    const isParse = (re: RegExp) => (e: unknown) =>
      e instanceof BulwarkError && e.code === 'ERR_CONFIG_PARSE' && re.test(e.message);
    assert.throws(
      () => parseYaml(`${levels.join('\n')}\n`, 'bomb.yaml'),
      isParse(/^bomb\.yaml: Excessive alias count/),
    );
    assert.throws(
      () => parseYaml('a: &x [1, *x]\n', 'self.yaml'),
      isParse(/^self\.yaml: a\[1\]: an alias refers to a node that contains it/),
    );
    assert.throws(() => parseYaml('m: &m {k: *m}\n', 'map.yaml'), isParse(/m\.k: an alias/));
    // Shared (not cyclic) aliases stay fine.
    assert.deepEqual(parseYaml('a: &x [1]\nb: *x\nc: *x\n', 'ok.yaml'), { a: [1], b: [1], c: [1] });
  });

  it('a __proto__ key is refused in every configuration (zod records would drop it silently)', () => {
    assert.throws(
      () => parseYaml('a:\n  b: [{__proto__: {polluted: 1}}]\n', 'p.yaml'),
      (e: unknown) =>
        e instanceof BulwarkError &&
        e.code === 'ERR_CONFIG_INVALID' &&
        e.message === 'p.yaml: a.b[0].__proto__: a "__proto__" key is not allowed',
    );
  });

  it('loadConfig maps a missing file to ERR_FILE_NOT_FOUND', async () => {
    await assert.rejects(loadConfig('/nonexistent/bulwark.yaml', schema), { code: 'ERR_FILE_NOT_FOUND' });
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-cfg-'));
    const p = join(dir, 'c.yaml');
    writeFileSync(p, 'gateway: { port: 9, tls: { cert: a, key: b } }\nstages: [validate]\n');
    assert.equal((await loadConfig(p, schema)).gateway.port, 9);
  });

  it('formats paths', () => {
    assert.equal(formatPath([]), '(root)');
    assert.equal(formatPath(['a', 0, 'b']), 'a[0].b');
  });
});
