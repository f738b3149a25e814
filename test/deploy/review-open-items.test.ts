import assert from 'node:assert/strict';
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { isBulwarkError } from '../../src/core/index.js';
import {
  buildManifests,
  checkManifests,
  type K8sObject,
  parseDeployConfig,
  parseManifests,
  readConfigFiles,
} from '../../src/deploy/index.js';
import { telemetryConfigSchema } from '../../src/gateway/config.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { BASE } from './helpers.js';

/** The open items of the red-team review of `bulwark deploy` (docs/deploy.md). */

// biome-ignore lint/suspicious/noExplicitAny: walking plain JSON in assertions
type J = any;

const withTraces = (traces: string) => `${BASE}telemetry:\n  traces: ${traces}\n`;

/** The egress rules of the generated policies, by name suffix. */
function egressOf(text: string): Record<string, J> {
  const { objects } = buildManifests(parseDeployConfig(text, 'b.yaml'));
  return Object.fromEntries(
    objects
      .map((o) => o.object as K8sObject & J)
      .filter((o) => o.kind === 'NetworkPolicy' && o.spec.egress)
      .map((o) => [o.metadata.name.replace('bulwark-gateway-egress-', ''), o.spec.egress]),
  );
}

describe('deploy k8s: OTLP trace export egress', () => {
  it('opens exactly the collector port, peer derived like the other destinations', () => {
    const inCluster = withTraces(
      '{ enabled: true, otlp: { endpoint: "http://otel-collector.observability.svc.cluster.local:4318/v1/traces" } }',
    );
    // The keys are the gateway's own: the section is valid for the gateway's telemetry schema.
    const t = telemetryConfigSchema.parse(parse(inCluster).telemetry);
    assert.equal(
      t.traces.otlp?.endpoint,
      'http://otel-collector.observability.svc.cluster.local:4318/v1/traces',
    );
    assert.deepEqual(egressOf(inCluster)['otlp'], [
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } } }],
        ports: [{ protocol: 'TCP', port: 4318 }],
      },
    ]);
    // An IP: a /32 ipBlock; https without a port: 443; a bare service name: the gateway's namespace.
    assert.deepEqual(
      egressOf(withTraces('{ enabled: true, otlp: { endpoint: "https://10.9.8.7/v1/traces" } }'))['otlp'],
      [{ to: [{ ipBlock: { cidr: '10.9.8.7/32' } }], ports: [{ protocol: 'TCP', port: 443 }] }],
    );
    assert.deepEqual(
      egressOf(withTraces('{ enabled: true, otlp: { endpoint: "http://collector/v1/traces" } }'))['otlp'],
      [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'bulwark' } } }],
          ports: [{ protocol: 'TCP', port: 80 }],
        },
      ],
    );
    // A host outside the cluster needs its peer in deploy.egress.otlp, never a guess.
    const outside = withTraces(
      '{ enabled: true, otlp: { endpoint: "https://otlp.vendor.example:4318/v1/traces" } }',
    );
    assert.throws(
      () => buildManifests(parseDeployConfig(outside, 'b.yaml')),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /deploy\.egress\.otlp: telemetry\.traces\.otlp\.endpoint names otlp\.vendor\.example/.test(e.message),
    );
    const given = outside.replace('  secrets:', '  egress: { otlp: { cidr: 198.51.100.0/24 } }\n  secrets:');
    assert.deepEqual(egressOf(given)['otlp'], [
      { to: [{ ipBlock: { cidr: '198.51.100.0/24' } }], ports: [{ protocol: 'TCP', port: 4318 }] },
    ]);
    // The generated base with the new policy still passes its own check.
    const { objects } = buildManifests(parseDeployConfig(inCluster, 'b.yaml'));
    assert.deepEqual(
      checkManifests(objects.map((o, i) => ({ file: o.file, document: i, object: o.object }))),
      [],
    );
    assert.ok(objects.some((o) => o.file === 'networkpolicy-egress-otlp.yaml'));
  });

  it('nothing is generated when traces are off; a credential in the endpoint is refused', () => {
    for (const text of [
      BASE,
      withTraces('{ enabled: false }'),
      withTraces('{ enabled: true }'), // spans go to the embedding process's provider: no export here
    ])
      assert.equal(egressOf(text)['otlp'], undefined);
    assert.throws(
      () =>
        parseDeployConfig(
          withTraces(
            '{ enabled: true, otlp: { endpoint: "https://c.obs.svc:4318/v1/traces?api_key=s3cr3t" } }',
          ),
          'b.yaml',
        ),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /telemetry\.traces\.otlp\.endpoint: the URL carries a credential/.test(e.message) &&
        !e.message.includes('s3cr3t'),
    );
  });
});

describe('deploy check: input size cap', () => {
  it('refuses stdin over 64 MiB with ERR_INPUT_TOO_LARGE naming the limit', async () => {
    const r = await runBulwarkInProcess(['deploy', 'check', '-'], {
      input: `# ${'x'.repeat(64 * 1024 * 1024)}\n`,
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_INPUT_TOO_LARGE: stdin: over the 67108864-byte \(64 MiB\) limit/);
  });

  it('refuses a file over 64 MiB the same way, before reading it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-check-big-'));
    const f = join(dir, 'big.yaml');
    writeFileSync(f, '');
    truncateSync(f, 64 * 1024 * 1024 + 1);
    const r = await runBulwarkInProcess(['deploy', 'check', f]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /ERR_INPUT_TOO_LARGE: .*big\.yaml: over the 67108864-byte \(64 MiB\) limit/);
  });
});

describe('deploy check: kinds it does not know', () => {
  const ROLLOUT = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: r, namespace: apps}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: c, image: x, securityContext: {privileged: true}}]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: k, namespace: apps}
spec:
  template:
    spec:
      containers: [{image: x}]
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: m, namespace: apps}
spec:
  predictor:
    model: {modelFormat: {name: sklearn}, storageUri: "gs://b/m"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: apps}
data: {a: b}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: p, namespace: apps}
spec: {maxUnavailable: 1, selector: {matchLabels: {a: b}}}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: apps}
spec: {ports: [{port: 80}]}
`;

  it('reports each custom resource as not checked (info), with where its pod spec is; built-in kinds are not', () => {
    const found = checkManifests(parseManifests(ROLLOUT, 'x.yaml')).map(
      (f) => `${f.rule} ${f.severity} ${f.object.kind}/${f.object.name} ${f.path}`,
    );
    assert.deepEqual(found, [
      'BW-UNCHECKED-KIND info InferenceService/m (root)',
      'BW-UNCHECKED-KIND info Rollout/r spec.template.spec',
      'BW-UNCHECKED-KIND info Service/k spec.template.spec',
    ]);
    const [f] = checkManifests(parseManifests(ROLLOUT.split('---')[0]!, 'x.yaml'));
    assert.match(
      f!.message,
      /argoproj\.io\/v1alpha1 Rollout is not a kind deploy check knows: the pod spec at spec\.template\.spec was not checked/,
    );
  });

  it('the CLI says so in its summary and does not fail at the default --fail-on', async () => {
    const r = await runBulwarkInProcess(['deploy', 'check', '-'], { input: ROLLOUT });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /6 objects checked \(Pod Security restricted \+ hardening\), 3 of them of a kind not known and NOT checked \(BW-UNCHECKED-KIND\)/,
    );
    const j = await runBulwarkInProcess(['--json', 'deploy', 'check', '-', '--fail-on', 'info'], {
      input: ROLLOUT,
    });
    assert.equal(j.code, 5, j.stderr);
    assert.equal(JSON.parse(j.stdout).unchecked, 3);
  });
});

describe('deploy config: name and configFiles', () => {
  it('deploy.name starting with a digit is refused naming the key (a Service name is an RFC 1035 label)', () => {
    for (const name of ['1gateway', '9', '0-bulwark'])
      assert.throws(
        () =>
          parseDeployConfig(
            BASE.replace('  namespace: bulwark\n', `  namespace: bulwark\n  name: "${name}"\n`),
            'b.yaml',
          ),
        (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /deploy\.name/.test(e.message),
        name,
      );
    const ok = parseDeployConfig(
      BASE.replace('  namespace: bulwark\n', '  namespace: bulwark\n  name: gw-1\n'),
      'b.yaml',
    );
    assert.equal(ok.deploy.name, 'gw-1');
  });

  it('a configFiles entry that is a symbolic or hard link (or not a regular file) is refused, whether it points in or out', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bulwark-k8s-link-'));
    const dir = join(root, 'cfg');
    mkdirSync(dir);
    writeFileSync(join(root, 'outside.txt'), 'not for the ConfigMap\n');
    writeFileSync(join(dir, 'policy.cedar'), 'permit(principal, action, resource);\n');
    symlinkSync(join(root, 'outside.txt'), join(dir, 'trust.yaml'));
    symlinkSync('policy.cedar', join(dir, 'alias.cedar'));
    // A hard link to a file outside the folder (same file system: the temp folder).
    linkSync(join(root, 'outside.txt'), join(dir, 'hard.yaml'));
    mkdirSync(join(dir, 'sub.yaml'));
    const cfg = join(dir, 'bulwark.yaml');
    for (const [name, what] of [
      ['trust.yaml', 'a symbolic link'],
      ['alias.cedar', 'a symbolic link'],
      ['hard.yaml', 'a hard link'],
      ['sub.yaml', 'not a regular file'],
    ] as const) {
      await assert.rejects(
        readConfigFiles(cfg, ['policy.cedar', name], BASE),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
          e.message.startsWith(`deploy.configFiles: ${name} is ${what}`) &&
          !e.message.includes('not for the ConfigMap'),
        name,
      );
    }
    const files = await readConfigFiles(cfg, ['policy.cedar'], BASE);
    assert.deepEqual(
      files.map((f) => [f.name, Buffer.from(f.bytes).toString('utf8')]),
      [['policy.cedar', 'permit(principal, action, resource);\n']],
    );
    // Through the CLI: nothing is written.
    writeFileSync(cfg, BASE.replace('  secrets:', '  configFiles: [policy.cedar, trust.yaml]\n  secrets:'));
    const out = join(root, 'out');
    const r = await runBulwarkInProcess(['deploy', 'k8s', '--config', cfg, '--out', out]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /ERR_CONFIG_INVALID: deploy\.configFiles: trust\.yaml is a symbolic link/);
    assert.throws(() => readdirSync(out));
  });
});

describe('deploy config: files holding secrets', () => {
  const withTls = (key: string, extra = '') =>
    BASE.replace(
      'tls: { cert: /etc/bulwark/tls/tls.crt, key: /etc/bulwark/tls/tls.key }',
      `tls: { cert: /etc/bulwark/tls/tls.crt, key: ${key} }`,
    ).replace(
      'audit:\n  store: "postgres://bulwark@10.20.0.5:5432/audit"\n',
      `audit:\n  store: "postgres://bulwark@10.20.0.5:5432/audit"\n${extra}`,
    );

  it('the generated layout passes with no note', () => {
    const i = parseDeployConfig(
      withTls('/etc/bulwark/tls/tls.key', '  signer: /etc/bulwark/model-key/log.key\n'),
      'b.yaml',
    );
    assert.deepEqual(i.warnings, []);
  });

  it('a secret file in the folder of bulwark.yaml (the ConfigMap) is refused, naming the key', () => {
    const traces = `telemetry:\n  traces:\n    enabled: true\n    otlp: { endpoint: "http://otel.observability.svc:4318/v1/traces", headersFile: otlp-headers, certFile: /etc/bulwark/tls/c.pem, keyFile: ../config/otlp.key }\n`;
    for (const [text, key] of [
      [withTls('tls/server.key'), 'server.tls.key'],
      [withTls('./server.key'), 'server.tls.key'],
      [withTls('/etc/bulwark/tls/tls.key', '  signer: /etc/bulwark/config/log.key\n'), 'audit.signer'],
      [withTls('/etc/bulwark/tls/tls.key', '  signer: /etc/bulwark/tls/../config/log.key\n'), 'audit.signer'],
      [`${BASE}${traces}`, 'telemetry.traces.otlp.headersFile'],
      [
        `${BASE}models:\n  - { name: m, package: /etc/bulwark/models/m.bwm, keyringPassphrase: { file: pass.txt } }\n`,
        'models[0].keyringPassphrase.file',
      ],
    ] as const) {
      assert.throws(
        () => parseDeployConfig(text, 'b.yaml'),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
          e.message.includes(`${key}: `) &&
          /which the pod gets from a ConfigMap/.test(e.message),
        key,
      );
    }
    // Both OTLP files at once: one run lists both problems.
    assert.throws(
      () => parseDeployConfig(`${BASE}${traces}`, 'b.yaml'),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /2 problems/.test(e.message) &&
        /telemetry\.traces\.otlp\.keyFile/.test(e.message),
    );
  });

  it('a secret file outside every mounted Secret is a note, not a refusal', () => {
    const i = parseDeployConfig(
      `${withTls('/etc/bulwark/tls/tls.key', '  signer: /etc/bulwark/audit-signer/log.key\n')}models:\n  - { name: m, package: /etc/bulwark/models/m.bwm, keyringPassphrase: { file: /run/secrets/pass } }\n`,
      'b.yaml',
    );
    assert.deepEqual(
      i.warnings.map((w) => w.slice(0, w.indexOf(':'))),
      ['audit.signer', 'models[0].keyringPassphrase.file'],
    );
    assert.match(i.warnings[0] ?? '', /only with deploy\.secrets\.auditSigner/);
    assert.match(i.warnings[1] ?? '', /\/run\/secrets\/pass is under none of the Secrets/);
    const mounted = parseDeployConfig(
      withTls('/etc/bulwark/tls/tls.key', '  signer: /etc/bulwark/audit-signer/log.key\n').replace(
        'secrets: { tls: bulwark-tls, modelKey: bulwark-model-key }',
        'secrets: { tls: bulwark-tls, modelKey: bulwark-model-key, auditSigner: signer }',
      ),
      'b.yaml',
    );
    assert.deepEqual(mounted.warnings, []);
  });
});
