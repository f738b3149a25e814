import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parse } from 'yaml';
import { isBulwarkError } from '../../src/core/index.js';
import {
  buildManifests,
  checkManifests,
  IMAGE_NODE,
  type K8sObject,
  PRE_STOP_SECONDS,
  parseDeployConfig,
  parseManifests,
  writeKustomizeBase,
} from '../../src/deploy/index.js';
import { gatewayConfig } from '../../src/gateway/index.js';
import { ROOT, runBulwark } from '../helpers/cli.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

export const CONFIG = `
server:
  host: 0.0.0.0
  port: 8443
  tls: { cert: /etc/bulwark/tls/tls.crt, key: /etc/bulwark/tls/tls.key, clientCa: /etc/bulwark/tls/ca.crt, clientAuth: request }
metrics: { host: 0.0.0.0, port: 9464 }
auth:
  require: token
  jwt:
    issuer: https://idp.example.com/
    audience: bulwark
    jwks: { url: "https://idp.example.com/.well-known/jwks.json" }
policy: { files: [/etc/bulwark/config/policy.cedar] }
limits:
  backend: redis
  redis: { url: "redis://redis.data.svc.cluster.local:6380/0" }
models:
  - name: fraud
    package: /etc/bulwark/models/fraud.bwm
    keyring: /etc/bulwark/model-key/keyring.json
    trust: /etc/bulwark/config/trust.yaml
    keyringPassphrase: { file: /etc/bulwark/model-key/passphrase }
audit:
  store: "postgres://bulwark@10.20.0.5:5432/audit"
  signer: /etc/bulwark/audit-signer/log.key
deploy:
  namespace: bulwark
  image: registry.example.com/bulwark/gateway:0.1.0@${DIGEST}
  replicas: 3
  ingressFrom:
    - { namespace: payments, podLabels: { app: checkout } }
    - { namespace: ingress-nginx }
  monitoringNamespace: monitoring
  keyService: kms-proxy.keys.svc:9443
  egress:
    jwks: { cidr: 203.0.113.0/24 }
  secrets: { tls: bulwark-tls, modelKey: bulwark-model-key, auditSigner: bulwark-audit-signer }
  modelsClaim: bulwark-models
  uid: 10001
`;

function byKind(objects: readonly { object: K8sObject }[], kind: string): K8sObject[] {
  return objects.map((o) => o.object).filter((o) => o.kind === kind);
}

// biome-ignore lint/suspicious/noExplicitAny: walking plain JSON in assertions
type J = any;

describe('deploy config', () => {
  it('reads the deploy section and only the documented keys of the rest', () => {
    const i = parseDeployConfig(CONFIG, 'bulwark.yaml');
    assert.equal(i.serverPort, 8443);
    assert.equal(i.metricsPort, 9464);
    assert.equal(i.deploy.uid, 10001);
    assert.deepEqual(
      i.destinations.map((d) => `${d.role} ${d.host}:${d.port} (${d.from})`),
      [
        'redis redis.data.svc.cluster.local:6380 (limits.redis.url)',
        'postgres 10.20.0.5:5432 (audit.store)',
        'key-service kms-proxy.keys.svc:9443 (deploy.keyService)',
        'jwks idp.example.com:443 (auth.jwt.jwks.url)',
      ],
    );
  });

  it('the example is a valid gateway config too (the gateway treats deploy as opaque)', () => {
    const g = gatewayConfig(parse(CONFIG), 'bulwark.yaml');
    assert.equal(g.server.host, '0.0.0.0');
    assert.equal(
      g.auth.jwt?.jwks && 'url' in g.auth.jwt.jwks ? g.auth.jwt.jwks.url : '',
      'https://idp.example.com/.well-known/jwks.json',
    );
  });

  it('refuses what cannot work in a pod: loopback hosts, plaintext, a SQLite audit log; metrics off drops its port and policy', () => {
    const cases: Array<[string, RegExp]> = [
      [
        CONFIG.replace('store: "postgres://bulwark@10.20.0.5:5432/audit"', 'store: audit.db'),
        /audit\.store: a SQLite file inside a pod is lost/,
      ],
      [
        CONFIG.replace('  host: 0.0.0.0\n', ''),
        /server\.host: 127\.0\.0\.1 \(the default\) is not reachable/,
      ],
      [
        CONFIG.replace('  host: 0.0.0.0\n', '  host: 127.0.0.1\n'),
        /server\.host: 127\.0\.0\.1 is not reachable/,
      ],
      [
        CONFIG.replace('metrics: { host: 0.0.0.0, port: 9464 }', 'metrics: { port: 9464 }'),
        /metrics\.host: .*cannot be scraped/,
      ],
      [
        CONFIG.replace('  port: 8443\n', '  port: 8443\n  insecurePlaintext: true\n'),
        /server\.insecurePlaintext: refused/,
      ],
    ];
    for (const [text, re] of cases) {
      assert.throws(
        () => parseDeployConfig(text, 'b.yaml'),
        (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && re.test(e.message),
        String(re),
      );
    }
    // Several problems at once are reported together, not one per run.
    const all = CONFIG.replace('  host: 0.0.0.0\n', '').replace(
      'store: "postgres://bulwark@10.20.0.5:5432/audit"',
      'store: audit.db',
    );
    assert.throws(
      () => parseDeployConfig(all, 'b.yaml'),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /^b\.yaml: 2 problems: server\.host: .*; audit\.store: a SQLite file/.test(e.message),
    );
    const off = parseDeployConfig(
      CONFIG.replace('metrics: { host: 0.0.0.0, port: 9464 }', 'metrics: { enabled: false }'),
      'b.yaml',
    );
    assert.equal(off.metricsPort, null);
    const { objects } = buildManifests(off);
    assert.ok(!objects.some((o) => o.file === 'networkpolicy-ingress-metrics.yaml'));
    const dep = byKind(objects, 'Deployment')[0] as J;
    assert.deepEqual(
      dep.spec.template.spec.containers[0].ports.map((p: J) => p.name),
      ['https'],
    );
    assert.deepEqual(
      (byKind(objects, 'Service')[0] as J).spec.ports.map((p: J) => p.name),
      ['https'],
    );
  });

  it("gives the pod time for the preStop delay, the gateway's drain and the audit log's final flush before SIGKILL", () => {
    const grace = (text: string) =>
      (byKind(buildManifests(parseDeployConfig(text, 'b.yaml')).objects, 'Deployment')[0] as J).spec.template
        .spec.terminationGracePeriodSeconds;
    // preStop 5 s + drain 10 s (the gateway's default) + 20 s for the flush and checkpoint.
    assert.equal(grace(CONFIG), 35);
    assert.equal(grace(CONFIG.replace('  port: 8443\n', '  port: 8443\n  drainSeconds: 60\n')), 85);
    assert.equal(grace(CONFIG.replace('  port: 8443\n', '  port: 8443\n  drainSeconds: 12.5\n')), 38);
    const noHook = CONFIG.replace('  uid: 10001\n', '  uid: 10001\n  preStop: { seconds: 0 }\n');
    assert.equal(grace(noHook), 30);
    assert.equal(
      grace(noHook.replace('  port: 8443\n', '  port: 8443\n  drainSeconds: 60\n')),
      80,
      'without the hook: drain + 20',
    );
  });

  it('keeps serving for a few seconds after deletion (preStop), before SIGTERM starts the drain', () => {
    const container = (text: string) =>
      (byKind(buildManifests(parseDeployConfig(text, 'b.yaml')).objects, 'Deployment')[0] as J).spec.template
        .spec.containers[0];
    // The endpoint removal races the SIGTERM: without the delay, new connections reach a draining gateway.
    assert.deepEqual(container(CONFIG).lifecycle, { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } });
    assert.ok(PRE_STOP_SECONDS >= 1, 'a sleep of 0 s is refused before Kubernetes 1.33');
    const with12 = CONFIG.replace('  uid: 10001\n', '  uid: 10001\n  preStop: { seconds: 12 }\n');
    assert.deepEqual(container(with12).lifecycle, { preStop: { sleep: { seconds: 12 } } });
    // Clusters before 1.30 have no sleep action: exec, with the image's own node (distroless: no sleep,
    // no shell).
    const exec = container(
      CONFIG.replace('  uid: 10001\n', '  uid: 10001\n  preStop: { seconds: 7, handler: exec }\n'),
    );
    assert.deepEqual(exec.lifecycle, {
      preStop: { exec: { command: [IMAGE_NODE, '-e', 'setTimeout(() => {}, 7000)'] } },
    });
    const node = spawnSync(process.execPath, [
      '-e',
      exec.lifecycle.preStop.exec.command[2].replace('7000', '1'),
    ]);
    assert.equal(node.status, 0, 'the exec command is valid JavaScript');
    assert.equal(
      container(CONFIG.replace('  uid: 10001\n', '  uid: 10001\n  preStop: { seconds: 0 }\n')).lifecycle,
      undefined,
    );
    for (const bad of [
      '{ seconds: -1 }',
      '{ seconds: 2.5 }',
      '{ seconds: 301 }',
      '{ handler: shell }',
      '{ second: 5 }',
    ]) {
      assert.throws(
        () =>
          parseDeployConfig(CONFIG.replace('  uid: 10001\n', `  uid: 10001\n  preStop: ${bad}\n`), 'b.yaml'),
        (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /deploy\.preStop/.test(e.message),
        bad,
      );
    }
  });

  it('in-memory limits with more than one replica are refused (each replica would count separately)', () => {
    const text = CONFIG.replace(/ {2}backend: redis\n {2}redis: .*\n/, '  backend: memory\n');
    assert.throws(
      () => buildManifests(parseDeployConfig(text, 'b.yaml')),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
        /limits\.backend: memory counts per replica, so with up to 9 replicas/.test(e.message),
    );
    const one = parseDeployConfig(
      text.replace('  replicas: 3\n', '  replicas: 1\n  autoscaling: { maxReplicas: 1 }\n'),
      'b.yaml',
    );
    const { notes } = buildManifests(one);
    assert.ok(notes.some((n) => /one replica/.test(n)));
  });

  it('a keyring passphrase read from the environment gets a note (the pod has secrets as files only)', () => {
    assert.deepEqual(buildManifests(parseDeployConfig(CONFIG, 'b.yaml')).notes, []);
    const env = parseDeployConfig(
      CONFIG.replace('    keyringPassphrase: { file: /etc/bulwark/model-key/passphrase }\n', ''),
      'b.yaml',
    );
    assert.match(
      buildManifests(env).notes.join('\n'),
      /models\[0\] \(fraud\): the keyring passphrase comes from BULWARK_PASSPHRASE/,
    );
  });

  it('clientAuth require: TCP probes (the kubelet has no client certificate), with a note', () => {
    const { objects, notes } = buildManifests(
      parseDeployConfig(CONFIG.replace('clientAuth: request', 'clientAuth: require'), 'b.yaml'),
    );
    const c = (byKind(objects, 'Deployment')[0] as J).spec.template.spec.containers[0];
    for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe'])
      assert.deepEqual(c[p].tcpSocket, { port: 'https' }, p);
    assert.ok(notes.some((n) => /TCP connects/.test(n)));
  });

  it('refuses an image without a digest, naming the key', () => {
    for (const image of [
      'company/secure-ai:latest',
      'registry.example.com/bulwark:1.0',
      `bulwark@sha256:${'a'.repeat(10)}`,
    ]) {
      const text = CONFIG.replace(/image: .*/, `image: ${image}`);
      assert.throws(
        () => parseDeployConfig(text, 'b.yaml'),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
          /deploy\.image: must be pinned by digest/.test(e.message),
        image,
      );
    }
  });

  it('refuses unknown keys, uid 0, no ingress source, and a password in a store URL', () => {
    const cases: Array<[string, RegExp]> = [
      [CONFIG.replace('  replicas: 3', '  replicas: 3\n  replica: 4'), /deploy: Unrecognized key/],
      [CONFIG.replace('uid: 10001', 'uid: 0'), /deploy\.uid/],
      [CONFIG.replace(/ {2}ingressFrom:\n.*\n.*\n/, '  ingressFrom: []\n'), /deploy\.ingressFrom/],
      [
        CONFIG.replaceAll('postgres://bulwark@', 'postgres://bulwark:hunter2@'),
        /audit\.store: the URL carries a password/,
      ],
    ];
    for (const [text, re] of cases) {
      assert.throws(
        () => parseDeployConfig(text, 'b.yaml'),
        (e: unknown) =>
          isBulwarkError(e, 'ERR_CONFIG_INVALID') && re.test(e.message) && !/hunter2/.test(e.message),
        String(re),
      );
    }
  });

  it('a destination outside the cluster without a peer is refused, never guessed', () => {
    const text = CONFIG.replace('  egress:\n    jwks: { cidr: 203.0.113.0/24 }\n', '');
    const i = parseDeployConfig(text, 'b.yaml');
    assert.throws(
      () => buildManifests(i),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /deploy\.egress\.jwks/.test(e.message),
    );
  });
});

describe('deploy k8s: generated objects', () => {
  const { objects } = buildManifests(parseDeployConfig(CONFIG, 'bulwark.yaml'));

  it('every object validates against the Kubernetes schema (kubernetes-models)', () => {
    const classes: Record<string, (o: J) => { validate(): void }> = {
      Namespace: (o) => new Namespace(o),
      ServiceAccount: (o) => new ServiceAccount(o),
      Deployment: (o) => new Deployment(o),
      Service: (o) => new Service(o),
      PodDisruptionBudget: (o) => new PodDisruptionBudget(o),
      HorizontalPodAutoscaler: (o) => new HorizontalPodAutoscaler(o),
      NetworkPolicy: (o) => new NetworkPolicy(o),
    };
    for (const { object } of objects) {
      const make = classes[object.kind];
      assert.ok(make, `no schema class for ${object.kind}`);
      make(object).validate();
    }
    // and the validator does reject a broken object (so the check above can fail)
    const bad = structuredClone(byKind(objects, 'Deployment')[0]) as J;
    bad.spec.template.spec.containers[0].securityContext.runAsUser = 'root';
    assert.throws(() => new Deployment(bad).validate());
  });

  it('the Namespace enforces, audits and warns Pod Security restricted', () => {
    const ns = byKind(objects, 'Namespace')[0]!;
    const l = ns.metadata.labels!;
    for (const m of ['enforce', 'audit', 'warn']) {
      assert.equal(l[`pod-security.kubernetes.io/${m}`], 'restricted');
      assert.equal(l[`pod-security.kubernetes.io/${m}-version`], 'latest');
    }
  });

  it('the Deployment is hardened as specified', () => {
    const d = byKind(objects, 'Deployment')[0] as J;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.image, `registry.example.com/bulwark/gateway:0.1.0@${DIGEST}`);
    assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/v2/health/live', port: 'https', scheme: 'HTTPS' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/v2/health/ready', port: 'https', scheme: 'HTTPS' });
    assert.equal(pod.topologySpreadConstraints[0].topologyKey, 'topology.kubernetes.io/zone');
    assert.equal(pod.topologySpreadConstraints[0].whenUnsatisfiable, 'DoNotSchedule');
    const tmp = pod.volumes.find((v: J) => v.name === 'tmp');
    assert.ok(tmp.emptyDir);
    assert.ok(c.volumeMounts.some((m: J) => m.mountPath === '/tmp' && m.name === 'tmp'));
    // secrets referenced by name, mounted read-only, never embedded
    assert.deepEqual(
      pod.volumes.filter((v: J) => v.secret).map((v: J) => v.secret.secretName),
      ['bulwark-tls', 'bulwark-model-key', 'bulwark-audit-signer'],
    );
    assert.deepEqual(
      c.volumeMounts.map((m: J) => `${m.mountPath}${m.readOnly ? ' ro' : ''}`),
      [
        '/tmp',
        '/etc/bulwark/config ro',
        '/etc/bulwark/tls ro',
        '/etc/bulwark/model-key ro',
        '/etc/bulwark/audit-signer ro',
        '/etc/bulwark/models ro',
      ],
    );
    assert.deepEqual(pod.volumes.find((v: J) => v.name === 'models').persistentVolumeClaim, {
      claimName: 'bulwark-models',
      readOnly: true,
    });
    assert.equal(byKind(objects, 'Secret').length, 0);
    assert.ok(!JSON.stringify(d).includes('secretKeyRef'));
    assert.equal(d.spec.replicas, undefined, 'the HPA owns the replica count');
    const hpa = byKind(objects, 'HorizontalPodAutoscaler')[0] as J;
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.equal(hpa.spec.minReplicas, 3);
  });

  it('NetworkPolicies: default deny, ingress only from the sources, metrics only from monitoring, named egress only', () => {
    const nps = byKind(objects, 'NetworkPolicy') as J[];
    const deny = nps.find((n) => n.metadata.name === 'default-deny-all');
    assert.deepEqual(deny.spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const ing = nps.find((n) => n.metadata.name === 'bulwark-gateway-ingress');
    assert.deepEqual(ing.spec.ingress, [
      {
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'payments' } },
            podSelector: { matchLabels: { app: 'checkout' } },
          },
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
        ],
        ports: [{ protocol: 'TCP', port: 8443 }],
      },
    ]);
    const met = nps.find((n) => n.metadata.name === 'bulwark-gateway-metrics');
    assert.deepEqual(met.spec.ingress[0].from, [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    assert.deepEqual(met.spec.ingress[0].ports, [{ protocol: 'TCP', port: 9464 }]);
    const egress = Object.fromEntries(
      nps
        .filter((n) => n.spec.egress)
        .map((n) => [n.metadata.name.replace('bulwark-gateway-egress-', ''), n.spec.egress[0]]),
    );
    assert.deepEqual(Object.keys(egress).sort(), ['dns', 'jwks', 'key-service', 'postgres', 'redis']);
    assert.deepEqual(egress['dns'].ports, [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ]);
    assert.deepEqual(egress['dns'].to[0].podSelector, { matchLabels: { 'k8s-app': 'kube-dns' } });
    assert.deepEqual(egress['redis'], {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'data' } } }],
      ports: [{ protocol: 'TCP', port: 6380 }],
    });
    assert.deepEqual(egress['postgres'], {
      to: [{ ipBlock: { cidr: '10.20.0.5/32' } }],
      ports: [{ protocol: 'TCP', port: 5432 }],
    });
    assert.deepEqual(egress['key-service'].to, [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keys' } } },
    ]);
    assert.deepEqual(egress['jwks'], {
      to: [{ ipBlock: { cidr: '203.0.113.0/24' } }],
      ports: [{ protocol: 'TCP', port: 443 }],
    });
    // Every policy lives in the gateway namespace, and nothing but these policies allows egress.
    for (const n of nps) assert.equal(n.metadata.namespace, 'bulwark');
  });

  it('the generated base passes the checker at restricted with no finding at all (either preStop handler)', () => {
    const docs = (list: typeof objects) =>
      list.map((o, i) => ({ file: o.file, document: i, object: o.object as Record<string, unknown> }));
    assert.deepEqual(checkManifests(docs(objects)), []);
    const exec = buildManifests(
      parseDeployConfig(
        CONFIG.replace('  uid: 10001\n', '  uid: 10001\n  preStop: { seconds: 5, handler: exec }\n'),
        'bulwark.yaml',
      ),
    ).objects;
    assert.ok((byKind(exec, 'Deployment')[0] as J).spec.template.spec.containers[0].lifecycle.preStop.exec);
    assert.deepEqual(checkManifests(docs(exec)), []);
  });

  it('writes kustomization + one file per object atomically, refuses a non-empty folder without --force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-k8s-'));
    const inputs = parseDeployConfig(CONFIG, 'bulwark.yaml');
    const w = await writeKustomizeBase(dir, inputs, CONFIG);
    const files = readdirSync(dir).sort();
    assert.ok(!files.some((f) => f.endsWith('.tmp')), 'no temporary files left');
    assert.deepEqual(files, [...w.files].sort());
    const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
    assert.equal(k.kind, 'Kustomization');
    assert.deepEqual(k.resources.sort(), w.objects.map((o) => o.file).sort());
    assert.deepEqual(k.configMapGenerator, [
      { name: 'bulwark-config', namespace: 'bulwark', files: ['bulwark.yaml'] },
    ]);
    for (const o of w.objects) {
      const docs = parseManifests(readFileSync(join(dir, o.file), 'utf8'), o.file);
      assert.equal(docs.length, 1);
      assert.equal(docs[0]!.object['kind'], o.kind);
    }
    await assert.rejects(writeKustomizeBase(dir, inputs, CONFIG), (e: unknown) =>
      isBulwarkError(e, 'ERR_FILE_EXISTS'),
    );
    await writeKustomizeBase(dir, inputs, CONFIG, { force: true });
  });
});

describe('bulwark deploy k8s (CLI)', () => {
  it('writes the base, reports no findings, renders with kustomize; a tag-only image exits 4 naming deploy.image', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-k8s-cli-'));
    const cfg = join(dir, 'bulwark.yaml');
    writeFileSync(cfg, CONFIG);
    const out = join(dir, 'base');
    const r = runBulwark(['--json', 'deploy', 'k8s', '--config', cfg, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.findings, 0);
    assert.ok(j.files.includes('kustomization.yaml'));
    const c = runBulwark([
      'deploy',
      'check',
      ...j.objects.map((o: { file: string }) => join(out, o.file)),
      '--fail-on',
      'info',
    ]);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    assert.match(c.stdout, /no findings/);

    // kustomize (kubectl's built-in, offline) renders the base: the ConfigMap gets its content hash and
    // the Deployment's volume follows it; the rendered stream still has no finding.
    const kubectl = spawnSync('kubectl', ['kustomize', out], { encoding: 'utf8' });
    if (kubectl.error) {
      t.diagnostic('kubectl not installed: kustomize rendering not checked');
    } else {
      assert.equal(kubectl.status, 0, kubectl.stderr);
      const rendered = join(dir, 'rendered.yaml');
      writeFileSync(rendered, kubectl.stdout);
      const docs = parseManifests(kubectl.stdout, rendered);
      const cm = docs.find((d) => d.object['kind'] === 'ConfigMap')!.object as J;
      assert.match(cm.metadata.name, /^bulwark-config-[a-z0-9]{10}$/);
      assert.equal(cm.metadata.namespace, 'bulwark');
      assert.equal(cm.data['bulwark.yaml'], CONFIG);
      const dep = docs.find((d) => d.object['kind'] === 'Deployment')!.object as J;
      assert.equal(
        dep.spec.template.spec.volumes.find((v: J) => v.name === 'config').configMap.name,
        cm.metadata.name,
      );
      const rc = runBulwark(['--json', 'deploy', 'check', rendered, '--fail-on', 'info']);
      assert.equal(rc.code, 0, rc.stdout);
      assert.equal(JSON.parse(rc.stdout).objects, j.objects.length + 1);
    }

    writeFileSync(cfg, CONFIG.replace(/image: .*/, 'image: company/secure-ai:latest'));
    const bad = runBulwark(['deploy', 'k8s', '--config', cfg, '--out', join(dir, 'other')]);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /^bulwark: ERR_CONFIG_INVALID: .*deploy\.image: must be pinned by digest/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
  });
});

describe('deploy k8s: configFiles', () => {
  it('copies the named non-secret files into the ConfigMap; refuses private keys, oversize sets and paths', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-k8s-files-'));
    const cfgText = CONFIG.replace(
      '  modelsClaim: bulwark-models\n',
      '  modelsClaim: bulwark-models\n  configFiles: [policy.cedar, trust.yaml]\n',
    );
    const cfg = join(dir, 'bulwark.yaml');
    writeFileSync(cfg, cfgText);
    writeFileSync(join(dir, 'policy.cedar'), 'permit(principal, action, resource);\n');
    writeFileSync(join(dir, 'trust.yaml'), 'signers: []\n');
    const out = join(dir, 'base');
    const r = runBulwark(['--json', 'deploy', 'k8s', '--config', cfg, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const k = parse(readFileSync(join(out, 'kustomization.yaml'), 'utf8'));
    assert.deepEqual(k.configMapGenerator[0].files, ['bulwark.yaml', 'policy.cedar', 'trust.yaml']);
    assert.equal(readFileSync(join(out, 'policy.cedar'), 'utf8'), 'permit(principal, action, resource);\n');

    writeFileSync(join(dir, 'trust.yaml'), '-----BEGIN PRIVATE KEY-----\nMC4CAQ\n');
    const key = runBulwark(['deploy', 'k8s', '--config', cfg, '--out', join(dir, 'b2')]);
    assert.equal(key.code, 4);
    assert.match(key.stderr, /deploy\.configFiles: trust\.yaml holds a private key/);
    assert.doesNotMatch(key.stderr, /MC4CAQ/);

    writeFileSync(join(dir, 'trust.yaml'), 'x'.repeat(1_100_000));
    const big = runBulwark(['deploy', 'k8s', '--config', cfg, '--out', join(dir, 'b3')]);
    assert.equal(big.code, 4);
    assert.match(big.stderr, /above the 1000000 a ConfigMap can hold/);

    for (const bad of ['../etc/passwd', 'sub/policy.cedar', 'bulwark.yaml']) {
      assert.throws(
        () =>
          parseDeployConfig(
            cfgText.replace('configFiles: [policy.cedar, trust.yaml]', `configFiles: ["${bad}"]`),
            'b.yaml',
          ),
        (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID') && /deploy\.configFiles/.test(e.message),
        bad,
      );
    }
    const clash = parseDeployConfig(
      cfgText.replace('configFiles: [policy.cedar, trust.yaml]', 'configFiles: [service.yaml]'),
      'b.yaml',
    );
    await assert.rejects(
      writeKustomizeBase(join(dir, 'b4'), clash, cfgText, {
        configFiles: [{ name: 'service.yaml', bytes: new Uint8Array(1) }],
      }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_CONFIG_INVALID') && /clashes with a generated file/.test(e.message),
    );
  });

  it("deploy check reads stdin for '-'", () => {
    const r = runBulwark(['--json', 'deploy', 'check', '-', '--fail-on', 'critical'], {
      input: readFileSync(join(import.meta.dirname, 'fixtures', 'article-secure-ai-deployment.yaml'), 'utf8'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).findings.length, 10);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const froms = lines.map((l, i) => [l, i] as const).filter(([l]) => /^FROM\s/i.test(l));
  const finalStage = lines.slice(froms.at(-1)![1]);
  const args = Object.fromEntries(
    lines
      .filter((l) => /^ARG\s+\w+=/.test(l))
      .map((l) => l.replace(/^ARG\s+/, '').split('=') as [string, string]),
  );
  const resolveImage = (l: string) =>
    l.split(/\s+/)[1]!.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? '');

  it('runs the node binary the exec preStop hook names (IMAGE_NODE)', () => {
    const entry = finalStage.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1);
    assert.ok(entry, 'ENTRYPOINT in the final stage');
    assert.equal((JSON.parse(entry.replace(/^ENTRYPOINT\s+/i, '')) as string[])[0], IMAGE_NODE);
  });

  it('is multi-stage: builds on node:20, ships distroless nodejs20 nonroot', () => {
    assert.ok(froms.length >= 2, 'at least two FROM lines');
    assert.match(resolveImage(froms[0]![0]), /^node:20/);
    assert.equal(resolveImage(froms.at(-1)![0]), 'gcr.io/distroless/nodejs20-debian12:nonroot');
    assert.ok(
      finalStage.some((l) => /^COPY\s+--from=build\b/.test(l)),
      'final stage copies from the build stage',
    );
  });

  it('final stage: non-root USER, no shell (no RUN, no shell-form ENTRYPOINT/CMD)', () => {
    const user = finalStage.filter((l) => /^USER\s/i.test(l)).at(-1);
    assert.ok(user, 'USER in final stage');
    const u = user.split(/\s+/)[1]!;
    assert.ok(u === 'nonroot' || /^[1-9]\d*(:[1-9]\d*)?$/.test(u), `USER ${u} is non-root`);
    assert.ok(
      !finalStage.some((l) => /^RUN\s/i.test(l)),
      'no RUN in the final stage (distroless has no shell)',
    );
    for (const l of finalStage.filter((x) => /^(ENTRYPOINT|CMD)\s/i.test(x))) {
      assert.match(l, /^(ENTRYPOINT|CMD)\s+\[/, `exec form: ${l}`);
      assert.doesNotMatch(l, /\/bin\/(ba)?sh/);
    }
  });

  it('adds no secrets: no ADD, no key/cert/env files copied, no secret-looking ARG/ENV', () => {
    assert.ok(!lines.some((l) => /^ADD\s/i.test(l)), 'COPY only (ADD fetches URLs and unpacks archives)');
    for (const l of lines.filter((x) => /^COPY\s/i.test(x))) {
      assert.doesNotMatch(l, /\.(pem|key|p12|pfx|sealed)\b|\.env\b|id_rsa|keyring/i, l);
    }
    for (const l of lines.filter((x) => /^(ARG|ENV)\s/i.test(x))) {
      assert.doesNotMatch(l, /(secret|password|token|api_?key|private)/i, l);
    }
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
    assert.match(ignore, /^\*\*$/m, '.dockerignore starts from excluding everything');
    assert.match(ignore, /\*\*\/\*\.pem/);
  });
});
