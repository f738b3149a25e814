import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { checkManifests, parseManifests } from '../../src/deploy/index.js';

/**
 * `deploy check` reads YAML as kubectl does (sigs.k8s.io/yaml, go-yaml v2: YAML 1.1 scalars, `<<` merge
 * keys in document order). Red-team findings: with YAML 1.2 a privileged, host-network pod written with
 * `yes`/`on` or a merge key passed every Pod Security control while kubectl created it as such.
 */

const NS = 'apps';
const POD_HEAD = `apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ${NS}}\n`;

function rules(text: string, level: 'baseline' | 'restricted' = 'restricted'): string[] {
  return checkManifests(parseManifests(text, 'x.yaml'), { level })
    .filter((f) => f.level !== 'hardening')
    .map((f) => `${f.rule} ${f.path}`)
    .sort();
}

describe('deploy check reads YAML as kubectl does', () => {
  it('YAML 1.1 booleans and go integers: yes/on/y are true, 0o0 0x0 0b0 0_0 00 are 0', () => {
    const found = rules(
      `${POD_HEAD}spec:
  hostNetwork: yes
  hostPID: on
  hostIPC: Y
  securityContext: {runAsNonRoot: true, runAsUser: 0o0, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: a
    image: x
    ports: [{containerPort: 8080, hostPort: 0x50}]
    securityContext:
      privileged: yes
      runAsUser: 0_0
      allowPrivilegeEscalation: off
      capabilities: {drop: [ALL]}
`,
    );
    assert.deepEqual(found, [
      'PSS-B-HOST-NAMESPACES spec.hostIPC',
      'PSS-B-HOST-NAMESPACES spec.hostNetwork',
      'PSS-B-HOST-NAMESPACES spec.hostPID',
      'PSS-B-HOST-PORTS spec.containers[0].ports[0].hostPort',
      'PSS-B-PRIVILEGED spec.containers[0].securityContext.privileged',
      'PSS-R-RUN-AS-USER spec.containers[0].securityContext.runAsUser',
      'PSS-R-RUN-AS-USER spec.securityContext.runAsUser',
    ]);
  });

  it('<< merge keys apply in document order: a merge after an explicit false wins, as in kubectl', () => {
    const found = rules(
      `${POD_HEAD}spec:
  hostNetwork: false
  <<: {hostNetwork: true}
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: a
    image: x
    securityContext: &sc
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      privileged: false
      <<: [{privileged: true}, {privileged: false}]
  - name: b
    image: x
    securityContext:
      <<: *sc
`,
    );
    assert.deepEqual(found, [
      'PSS-B-HOST-NAMESPACES spec.hostNetwork',
      'PSS-B-PRIVILEGED spec.containers[0].securityContext.privileged',
      'PSS-B-PRIVILEGED spec.containers[1].securityContext.privileged',
    ]);
  });

  it("scalars take go-yaml v2's values; quoted and !!str stay strings; a bad !!int is refused", () => {
    const [doc] = parseManifests(
      `kind: Widget
v: [yes, No, ~, "<<", 0o17, 017, 08, -0b11, 0x_1F, 1_000, +12, .5, 1e3, 0., 1:20, 2001-12-14, "yes", !!str 0, 'y', !!bool true]
`,
      'x.yaml',
    );
    assert.deepEqual(doc!.object['v'], [
      true,
      false,
      null,
      '<<',
      15,
      15,
      8,
      -3,
      31,
      1000,
      12,
      0.5,
      1000,
      0,
      '1:20',
      '2001-12-14',
      'yes',
      '0',
      'y',
      true,
    ]);
    assert.throws(
      () => parseManifests('kind: Pod\nspec: {hostPID: !!int yes}\n', 'x.yaml'),
      (e: unknown) => isBulwarkError(e, 'ERR_MANIFEST_PARSE'),
    );
  });

  it('agrees with kubectl on every value (when kubectl is installed)', (t) => {
    if (spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status !== 0) {
      t.skip('kubectl not installed');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-kyaml-'));
    const file = join(dir, 'w.yaml');
    writeFileSync(
      file,
      `apiVersion: x.example/v1
kind: Widget
metadata: {name: w, namespace: ${NS}}
spec:
  values: [yes, No, on, OFF, y, N, ~, "<<", 0o17, 017, 08, -0b11, 0x_1F, 1_000, +12, .5, 1e3, 0., 1:20, 0e0, -0]
  a: &a {x: 1, y: 2}
  b: {x: 0, <<: *a, z: 3}
  c: {<<: [{x: 1}, {x: 2, y: 2}], y: 0}
`,
    );
    const k = spawnSync('kubectl', ['label', '--local', '-f', file, 'zz=1', '-o', 'json'], {
      encoding: 'utf8',
    });
    assert.equal(k.status, 0, k.stderr);
    const theirs = JSON.parse(k.stdout) as { metadata: Record<string, unknown> };
    delete theirs.metadata['labels'];
    const sorted = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sorted)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([a, b]) => [a, sorted(b)]),
            )
          : v;
    const [ours] = parseManifests(readFileSync(file, 'utf8'), file);
    assert.deepEqual(sorted(ours!.object), sorted(theirs));
  });

  it('typed lists: items of a PodList without kind are checked as Pods; a List item without kind is refused', () => {
    const found = rules(
      `apiVersion: v1
kind: PodList
items:
- metadata: {name: bare, namespace: ${NS}}
  spec:
    containers: [{name: a, image: x, securityContext: {privileged: true}}]
`,
      'baseline',
    );
    assert.deepEqual(found, ['PSS-B-PRIVILEGED spec.containers[0].securityContext.privileged']);
    const nested = rules(
      `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Pod, metadata: {name: i, namespace: ${NS}}, spec: {hostPID: true, containers: []}}
`,
      'baseline',
    );
    assert.deepEqual(nested, ['PSS-B-HOST-NAMESPACES spec.hostPID']);
    assert.throws(
      () => parseManifests('apiVersion: v1\nkind: List\nitems: [{metadata: {name: a}}]\n', 'x.yaml'),
      (e: unknown) => isBulwarkError(e, 'ERR_MANIFEST_PARSE') && /no kind/.test((e as Error).message),
    );
  });

  it('alias bombs and self-referencing anchors are ERR_MANIFEST_PARSE, not an internal error', () => {
    const levels = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      levels.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    const bomb = `kind: ConfigMap\nmetadata: {name: b}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    assert.throws(
      () => parseManifests(bomb, 'bomb.yaml'),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MANIFEST_PARSE') && /aliases expand too far/.test((e as Error).message),
    );
    assert.throws(
      () => parseManifests('kind: Pod\nspec: &a {x: [*a]}\n', 'x.yaml'),
      (e: unknown) => isBulwarkError(e, 'ERR_MANIFEST_PARSE') && /contains itself/.test((e as Error).message),
    );
    // Ordinary aliasing is read.
    const [d] = parseManifests('kind: Pod\na: &v {k: 1}\nb: [*v, *v]\n', 'x.yaml');
    assert.deepEqual(d!.object['b'], [{ k: 1 }, { k: 1 }]);
  });
});
