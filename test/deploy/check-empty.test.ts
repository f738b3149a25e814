import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runBulwarkInProcess } from '../helpers/cli.js';

/**
 * `kubectl kustomize k8s/ | bulwark deploy check - --fail-on high` (README) with kubectl missing or
 * failing pipes nothing into the checker, which printed "no findings ... 0 objects checked" and exited
 * 0: a CI gate that passed having checked nothing. Now every input must hold at least one object
 * (ERR_MANIFEST_PARSE, exit 3, naming the input).
 */
const dir = mkdtempSync(join(tmpdir(), 'bulwark-check-empty-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CONFIG_MAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c, namespace: n }\ndata: { a: b }\n';

describe('deploy check: an input with no object', () => {
  it('empty stdin is refused (exit 3), not passed as no findings', async () => {
    const r = await runBulwarkInProcess(['deploy', 'check', '-', '--fail-on', 'high'], { input: '' });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^bulwark: ERR_MANIFEST_PARSE: stdin: no Kubernetes object to check /);
  });

  it('a file of comments only, or an empty List, is refused naming the file', async () => {
    const comments = join(dir, 'comments.yaml');
    writeFileSync(comments, '# nothing here\n---\n');
    const list = join(dir, 'list.yaml');
    writeFileSync(list, 'apiVersion: v1\nkind: List\nitems: []\n');
    for (const f of [comments, list]) {
      const r = await runBulwarkInProcess(['deploy', 'check', f]);
      assert.equal(r.code, 3, r.stderr);
      assert.ok(
        r.stderr.startsWith(`bulwark: ERR_MANIFEST_PARSE: ${f}: no Kubernetes object to check`),
        r.stderr,
      );
    }
  });

  it('one empty input among good ones is still refused; a file with an object is checked as before', async () => {
    const good = join(dir, 'cm.yaml');
    writeFileSync(good, CONFIG_MAP);
    const mixed = await runBulwarkInProcess(['deploy', 'check', good, '-'], { input: '' });
    assert.equal(mixed.code, 3, mixed.stderr);
    const r = await runBulwarkInProcess(['deploy', 'check', good, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { objects: number }).objects, 1);
  });
});
