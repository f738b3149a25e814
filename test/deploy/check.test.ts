import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { isBulwarkError } from '../../src/core/index.js';
import {
  checkManifests,
  type Finding,
  type ManifestDoc,
  parseManifests,
  RULES,
  splitImage,
} from '../../src/deploy/index.js';
import { ROOT, runBulwark } from '../helpers/cli.js';

const ARTICLE = join(import.meta.dirname, 'fixtures', 'article-secure-ai-deployment.yaml');
const DIGEST = `sha256:${'cd'.repeat(32)}`;

// biome-ignore lint/suspicious/noExplicitAny: building plain JSON manifests
type J = any;

/** A pod spec that passes every rule; cases below break one thing at a time. */
function goodPodSpec(): J {
  return {
    automountServiceAccountToken: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [
      {
        name: 'app',
        image: `registry.example.com/app:1.2@${DIGEST}`,
        ports: [{ containerPort: 8080 }],
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        },
        resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
        livenessProbe: { httpGet: { path: '/l', port: 8080 } },
        readinessProbe: { httpGet: { path: '/r', port: 8080 } },
      },
    ],
    volumes: [{ name: 'tmp', emptyDir: {} }],
  };
}

function deployment(spec: J, meta: J = {}, ns = 'apps'): J {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: ns },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' }, ...meta }, spec },
    },
  };
}

const denyAll = (ns = 'apps'): J => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'deny', namespace: ns },
  spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
});

function run(objects: J[], level?: 'baseline' | 'restricted'): Finding[] {
  const docs: ManifestDoc[] = objects.map((o, i) => ({ file: 'x.yaml', document: i, object: o }));
  return checkManifests(docs, level ? { level } : {});
}

function rulesOf(f: readonly Finding[]): string[] {
  return [...new Set(f.map((x) => x.rule))].sort();
}

/** Applies `mutate` to a fresh good pod spec and returns the findings for a Deployment of it. */
function withPod(mutate: (p: J) => void, meta: J = {}): Finding[] {
  const p = goodPodSpec();
  mutate(p);
  return run([deployment(p, meta), denyAll()]);
}

describe('deploy check: the article manifest', () => {
  const docs = parseManifests(readFileSync(ARTICLE, 'utf8'), ARTICLE);
  const findings = checkManifests(docs);

  it('passes Pod Security restricted (the article got those settings right)', () => {
    assert.deepEqual(
      findings.filter((f) => f.level !== 'hardening'),
      [],
    );
  });

  it('gets exactly the hardening findings it deserves', () => {
    assert.deepEqual(
      findings.map((f) => `${f.rule} ${f.object.kind}/${f.object.name} ${f.path}`),
      [
        'BW-IMAGE-LATEST Deployment/secure-ai-inference spec.template.spec.containers[0].image',
        'BW-IMAGE-DIGEST Deployment/secure-ai-inference spec.template.spec.containers[0].image',
        'BW-NETPOL-BROAD NetworkPolicy/ai-isolation-policy spec.egress[0].to[0].ipBlock.cidr',
        'BW-SA-TOKEN Deployment/secure-ai-inference spec.template.spec.automountServiceAccountToken',
        'BW-DEFAULT-NAMESPACE Deployment/secure-ai-inference metadata.namespace',
        'BW-NETPOL-NS-LABEL NetworkPolicy/ai-isolation-policy spec.ingress[0].from[0].namespaceSelector.matchLabels["name"]',
        'BW-PROBES Deployment/secure-ai-inference spec.template.spec.containers[0].livenessProbe',
        'BW-PROBES Deployment/secure-ai-inference spec.template.spec.containers[0].readinessProbe',
        'BW-RUN-AS-GROUP Deployment/secure-ai-inference spec.template.spec.containers[0].securityContext.runAsGroup',
        'BW-SECRET-ENV-REF Deployment/secure-ai-inference spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef',
      ],
    );
    const latest = findings[0]!;
    assert.equal(latest.severity, 'high');
    assert.deepEqual(latest.object, {
      kind: 'Deployment',
      namespace: 'default',
      name: 'secure-ai-inference',
    });
    assert.match(latest.fix, /digest/);
  });

  it('CLI: table by default, --json, exit 5 at --fail-on high, 0 at --fail-on critical', () => {
    const r = runBulwark(['deploy', 'check', ARTICLE, '--fail-on', 'high']);
    assert.equal(r.code, 5);
    assert.match(r.stdout, /^SEVERITY\s+RULE\s+OBJECT\s+FIELD/);
    assert.match(
      r.stdout,
      /HIGH\s+BW-IMAGE-LATEST\s+Deployment\/default\/secure-ai-inference\s+spec\.template\.spec\.containers\[0\]\.image/,
    );
    assert.match(r.stderr, /^bulwark: ERR_DEPLOY_FINDINGS: 1 finding at or above high/);
    const j = runBulwark(['--json', 'deploy', 'check', ARTICLE, '--fail-on', 'critical']);
    assert.equal(j.code, 0, j.stderr);
    const out = JSON.parse(j.stdout);
    assert.equal(out.findings.length, 10);
    assert.deepEqual(out.counts, { info: 0, low: 6, medium: 3, high: 1, critical: 0 });
  });
});

describe('deploy check: every rule fires on a crafted manifest, and only there', () => {
  it('a hardened Deployment with a default-deny policy has no finding', () => {
    assert.deepEqual(
      withPod(() => {}),
      [],
    );
  });

  const cases: Array<[string, () => Finding[], string]> = [
    [
      'PSS-B-HOST-PROCESS',
      () => withPod((p) => (p.securityContext.windowsOptions = { hostProcess: true })),
      'spec.template.spec.securityContext.windowsOptions.hostProcess',
    ],
    ['PSS-B-HOST-NAMESPACES', () => withPod((p) => (p.hostPID = true)), 'spec.template.spec.hostPID'],
    [
      'PSS-B-PRIVILEGED',
      () => withPod((p) => (p.containers[0].securityContext.privileged = true)),
      'spec.template.spec.containers[0].securityContext.privileged',
    ],
    [
      'PSS-B-CAPABILITIES',
      () => withPod((p) => (p.containers[0].securityContext.capabilities.add = ['SYS_ADMIN'])),
      'spec.template.spec.containers[0].securityContext.capabilities.add[0]',
    ],
    [
      'PSS-B-HOST-PATH',
      () => withPod((p) => p.volumes.push({ name: 'h', hostPath: { path: '/srv/data' } })),
      'spec.template.spec.volumes[1].hostPath',
    ],
    [
      'PSS-B-HOST-PORTS',
      () => withPod((p) => (p.containers[0].ports[0].hostPort = 8080)),
      'spec.template.spec.containers[0].ports[0].hostPort',
    ],
    [
      'PSS-B-APPARMOR',
      () =>
        withPod(() => {}, {
          annotations: { 'container.apparmor.security.beta.kubernetes.io/app': 'unconfined' },
        }),
      'spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"]',
    ],
    [
      'PSS-B-SELINUX',
      () => withPod((p) => (p.securityContext.seLinuxOptions = { type: 'spc_t' })),
      'spec.template.spec.securityContext.seLinuxOptions.type',
    ],
    [
      'PSS-B-HOST-PROBES',
      () =>
        withPod(
          (p) => (p.containers[0].livenessProbe = { httpGet: { host: '10.0.0.1', path: '/l', port: 8080 } }),
        ),
      'spec.template.spec.containers[0].livenessProbe.httpGet.host',
    ],
    [
      'PSS-R-PROC-MOUNT',
      () =>
        withPod((p) => {
          p.hostUsers = false;
          p.containers[0].securityContext.procMount = 'Unmasked';
        }),
      'spec.template.spec.containers[0].securityContext.procMount',
    ],
    [
      'PSS-B-PROC-MOUNT',
      () => withPod((p) => (p.containers[0].securityContext.procMount = 'Unmasked')),
      'spec.template.spec.containers[0].securityContext.procMount',
    ],
    [
      'PSS-B-SECCOMP',
      () => withPod((p) => (p.securityContext.seccompProfile.type = 'Unconfined')),
      'spec.template.spec.securityContext.seccompProfile.type',
    ],
    [
      'PSS-B-SYSCTLS',
      () =>
        withPod(
          (p) =>
            (p.securityContext.sysctls = [
              { name: 'net.ipv4.tcp_syncookies', value: '1' },
              { name: 'kernel.msgmax', value: '1' },
            ]),
        ),
      'spec.template.spec.securityContext.sysctls[1].name',
    ],
    [
      'PSS-R-VOLUME-TYPES',
      () => withPod((p) => p.volumes.push({ name: 'n', nfs: { server: 'nfs', path: '/x' } })),
      'spec.template.spec.volumes[1].nfs',
    ],
    [
      'PSS-R-PRIVILEGE-ESCALATION',
      () => withPod((p) => delete p.containers[0].securityContext.allowPrivilegeEscalation),
      'spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation',
    ],
    [
      'PSS-R-RUN-AS-NON-ROOT',
      () => withPod((p) => delete p.securityContext.runAsNonRoot),
      'spec.template.spec.containers[0].securityContext.runAsNonRoot',
    ],
    [
      'PSS-R-RUN-AS-USER',
      () => withPod((p) => (p.containers[0].securityContext.runAsUser = 0)),
      'spec.template.spec.containers[0].securityContext.runAsUser',
    ],
    [
      'PSS-R-SECCOMP',
      () => withPod((p) => delete p.securityContext.seccompProfile),
      'spec.template.spec.containers[0].securityContext.seccompProfile.type',
    ],
    [
      'PSS-R-CAPABILITIES',
      () => withPod((p) => (p.containers[0].securityContext.capabilities = { drop: ['NET_RAW'] })),
      'spec.template.spec.containers[0].securityContext.capabilities.drop',
    ],
    [
      'BW-READONLY-ROOTFS',
      () => withPod((p) => (p.containers[0].securityContext.readOnlyRootFilesystem = false)),
      'spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem',
    ],
    [
      'BW-IMAGE-LATEST',
      () => withPod((p) => (p.containers[0].image = 'nginx')),
      'spec.template.spec.containers[0].image',
    ],
    [
      'BW-IMAGE-DIGEST',
      () => withPod((p) => (p.containers[0].image = 'nginx:1.27')),
      'spec.template.spec.containers[0].image',
    ],
    [
      'BW-RESOURCE-LIMITS',
      () => withPod((p) => delete p.containers[0].resources.limits.memory),
      'spec.template.spec.containers[0].resources.limits.memory',
    ],
    [
      'BW-RESOURCE-REQUESTS',
      () => withPod((p) => delete p.containers[0].resources),
      'spec.template.spec.containers[0].resources.requests.cpu',
    ],
    [
      'BW-PROBES',
      () => withPod((p) => delete p.containers[0].readinessProbe),
      'spec.template.spec.containers[0].readinessProbe',
    ],
    ['BW-NETPOL-MISSING', () => run([deployment(goodPodSpec())]), 'metadata.namespace'],
    [
      'BW-NETPOL-BROAD',
      () =>
        run([
          deployment(goodPodSpec()),
          { ...denyAll(), spec: { podSelector: {}, egress: [{ ports: [{ port: 443 }] }] } },
        ]),
      'spec.egress[0].to',
    ],
    [
      'BW-NETPOL-NS-LABEL',
      () =>
        run([
          deployment(goodPodSpec()),
          {
            ...denyAll(),
            spec: {
              podSelector: {},
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] }],
            },
          },
        ]),
      'spec.ingress[0].from[0].namespaceSelector.matchLabels["team"]',
    ],
    [
      'BW-PRIVILEGED-PORT',
      () => withPod((p) => (p.containers[0].ports[0].containerPort = 443)),
      'spec.template.spec.containers[0].ports[0].containerPort',
    ],
    [
      'BW-HOSTPATH-SENSITIVE',
      () => withPod((p) => p.volumes.push({ name: 'd', hostPath: { path: '/var/run/docker.sock' } })),
      'spec.template.spec.volumes[1].hostPath.path',
    ],
    [
      'BW-SA-TOKEN',
      () => withPod((p) => delete p.automountServiceAccountToken),
      'spec.template.spec.automountServiceAccountToken',
    ],
    [
      'BW-SECRET-ENV-LITERAL',
      () => withPod((p) => (p.containers[0].env = [{ name: 'DB_PASSWORD', value: 'hunter2' }])),
      'spec.template.spec.containers[0].env[0].value',
    ],
    [
      'BW-SECRET-ENV-REF',
      () => withPod((p) => (p.containers[0].envFrom = [{ secretRef: { name: 's' } }])),
      'spec.template.spec.containers[0].envFrom[0].secretRef',
    ],
    [
      'BW-RUN-AS-GROUP',
      () => withPod((p) => (p.securityContext.runAsGroup = 0)),
      'spec.template.spec.containers[0].securityContext.runAsGroup',
    ],
    [
      'BW-DEFAULT-NAMESPACE',
      () => run([deployment(goodPodSpec(), {}, 'default'), denyAll('default')]),
      'metadata.namespace',
    ],
    [
      'BW-SCHEMA',
      () => withPod((p) => (p.containers[0].ports[0].containerPort = 'http')),
      'spec.template.spec.containers[0].ports[0].containerPort',
    ],
    [
      'BW-UNCHECKED-KIND',
      () =>
        run([
          {
            ...deployment(goodPodSpec()),
            apiVersion: 'argoproj.io/v1alpha1',
            kind: 'Rollout',
          },
          denyAll(),
        ]),
      'spec.template.spec',
    ],
  ];

  for (const [id, make, path] of cases) {
    it(`${id} at ${path}`, () => {
      const f = make();
      const hit = f.filter((x) => x.rule === id);
      assert.ok(hit.length > 0, `${id} not raised; got ${rulesOf(f).join(', ')}`);
      assert.ok(
        hit.some((x) => x.path === path),
        `${id} paths: ${hit.map((x) => x.path).join(', ')}`,
      );
      assert.ok(hit.every((x) => x.fix.length > 10 && x.message.length > 5));
    });
  }

  it('reads namespaceSelector.matchExpressions: a mutable label under any operator, and exclusions only', () => {
    const peer = (matchExpressions: J[]): J[] => [
      deployment(goodPodSpec()),
      {
        ...denyAll(),
        spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions } }] }] },
      },
    ];
    const at = (f: Finding[], id: string) => f.filter((x) => x.rule === id).map((x) => x.path);
    const base = 'spec.ingress[0].from[0].namespaceSelector.matchExpressions';
    for (const operator of ['In', 'NotIn', 'Exists', 'DoesNotExist']) {
      const f = run(peer([{ key: 'team', operator, ...(operator.endsWith('In') ? { values: ['a'] } : {}) }]));
      assert.deepEqual(at(f, 'BW-NETPOL-NS-LABEL'), [`${base}[0].key`], operator);
    }
    // Every namespace carries kubernetes.io/metadata.name: Exists, or only NotIn, selects them all.
    const name = 'kubernetes.io/metadata.name';
    for (const e of [
      [{ key: name, operator: 'Exists' }],
      [{ key: name, operator: 'NotIn', values: ['kube-system'] }],
    ]) {
      const f = run(peer(e));
      assert.deepEqual(at(f, 'BW-NETPOL-BROAD'), [base], JSON.stringify(e));
      assert.deepEqual(at(f, 'BW-NETPOL-NS-LABEL'), []);
    }
    // Naming the namespaces is what the rules ask for: no finding.
    const named = run(peer([{ key: name, operator: 'In', values: ['payments'] }]));
    assert.deepEqual(at(named, 'BW-NETPOL-BROAD'), []);
    assert.deepEqual(at(named, 'BW-NETPOL-NS-LABEL'), []);
  });

  it('BW-RUN-AS-GROUP also for GID 0 in fsGroup or supplementalGroups (the kubelet adds them to every container)', () => {
    const paths = (f: Finding[]) => f.filter((x) => x.rule === 'BW-RUN-AS-GROUP').map((x) => x.path);
    assert.deepEqual(
      paths(
        withPod((p) => {
          p.securityContext.fsGroup = 0;
          p.securityContext.supplementalGroups = [1000, 0];
        }),
      ),
      [
        'spec.template.spec.securityContext.fsGroup',
        'spec.template.spec.securityContext.supplementalGroups[1]',
      ],
    );
    assert.deepEqual(
      paths(
        withPod((p) => {
          p.securityContext.fsGroup = 1000;
          p.securityContext.supplementalGroups = [1000];
        }),
      ),
      [],
    );
  });

  it('BW-SA-TOKEN also for a projected API token volume, whatever automountServiceAccountToken says', () => {
    const paths = (f: Finding[]) => f.filter((x) => x.rule === 'BW-SA-TOKEN').map((x) => x.path);
    const projected = (token: J) =>
      withPod((p) =>
        p.volumes.push({
          name: 'kube-api',
          projected: { sources: [{ configMap: { name: 'ca' } }, { serviceAccountToken: token }] },
        }),
      );
    assert.deepEqual(paths(projected({ path: 'token', expirationSeconds: 3600 })), [
      'spec.template.spec.volumes[1].projected.sources[1].serviceAccountToken',
    ]);
    // A token for another audience (Vault, a cloud IAM) is not a Kubernetes API token.
    assert.deepEqual(paths(projected({ path: 'token', audience: 'vault' })), []);
  });

  it('BW-NETPOL-MISSING also when the policies selecting the pods leave a direction open', () => {
    const at = (f: Finding[]) => f.filter((x) => x.rule === 'BW-NETPOL-MISSING').map((x) => x.message);
    const only = (spec: J): J => ({ ...denyAll(), spec: { podSelector: {}, ...spec } });
    // An Ingress-only policy (explicit, or by default without egress rules): egress is open.
    for (const spec of [{ policyTypes: ['Ingress'] }, { ingress: [] }])
      assert.deepEqual(at(run([deployment(goodPodSpec()), only(spec)])), [
        'no NetworkPolicy in namespace apps restricts the egress of these pods',
      ]);
    assert.deepEqual(at(run([deployment(goodPodSpec()), only({ policyTypes: ['Egress'] })])), [
      'no NetworkPolicy in namespace apps restricts the ingress of these pods',
    ]);
    // Egress rules make a policy without policyTypes restrict egress too; two policies may share the work.
    assert.deepEqual(at(run([deployment(goodPodSpec()), only({ egress: [] })])), []);
    assert.deepEqual(
      at(
        run([
          deployment(goodPodSpec()),
          only({ policyTypes: ['Ingress'] }),
          { ...only({ policyTypes: ['Egress'] }), metadata: { name: 'deny-egress', namespace: 'apps' } },
        ]),
      ),
      [],
    );
  });

  it('the cases cover every rule in the table, and docs/deploy.md documents each id with its severity', () => {
    assert.deepEqual(cases.map((c) => c[0]).sort(), RULES.map((r) => r.id).sort());
    const doc = readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8');
    for (const r of RULES)
      assert.ok(doc.includes(`| \`${r.id}\` | ${r.level} | ${r.severity} |`), `${r.id} in docs/deploy.md`);
  });

  it('sees pod templates of StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod; init and ephemeral containers', () => {
    const bad = (): J => {
      const p = goodPodSpec();
      p.containers[0].securityContext.privileged = true;
      return p;
    };
    const wrap = (kind: string, apiVersion: string, spec: J): J => ({
      apiVersion,
      kind,
      metadata: { name: 'x', namespace: 'apps' },
      spec,
    });
    const tpl = { metadata: { labels: { app: 'web' } }, spec: bad() };
    const objs: Array<[J, string]> = [
      [
        wrap('StatefulSet', 'apps/v1', {
          serviceName: 's',
          selector: { matchLabels: { app: 'web' } },
          template: tpl,
        }),
        'spec.template.spec.containers[0]',
      ],
      [
        wrap('DaemonSet', 'apps/v1', { selector: { matchLabels: { app: 'web' } }, template: tpl }),
        'spec.template.spec.containers[0]',
      ],
      [
        wrap('ReplicaSet', 'apps/v1', { selector: { matchLabels: { app: 'web' } }, template: tpl }),
        'spec.template.spec.containers[0]',
      ],
      [wrap('Job', 'batch/v1', { template: tpl }), 'spec.template.spec.containers[0]'],
      [
        wrap('CronJob', 'batch/v1', { schedule: '* * * * *', jobTemplate: { spec: { template: tpl } } }),
        'spec.jobTemplate.spec.template.spec.containers[0]',
      ],
      [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'x', namespace: 'apps', labels: { app: 'web' } },
          spec: bad(),
        },
        'spec.containers[0]',
      ],
    ];
    for (const [o, prefix] of objs) {
      const f = run([o, denyAll()]);
      assert.deepEqual(
        f.filter((x) => x.rule === 'PSS-B-PRIVILEGED').map((x) => x.path),
        [`${prefix}.securityContext.privileged`],
        o.kind,
      );
      assert.deepEqual(
        rulesOf(f).filter((r) => r !== 'PSS-B-PRIVILEGED'),
        [],
        `${o.kind}: ${rulesOf(f)}`,
      );
    }
    const p = goodPodSpec();
    p.initContainers = [
      { name: 'init', image: `i@${DIGEST}`, securityContext: { capabilities: { add: ['NET_ADMIN'] } } },
    ];
    p.ephemeralContainers = [{ name: 'dbg', image: 'busybox', securityContext: { runAsUser: 0 } }];
    const f = run([
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x', namespace: 'apps' }, spec: p },
      denyAll(),
    ]);
    const paths = f.map((x) => `${x.rule} ${x.path}`);
    assert.ok(
      paths.includes('PSS-B-CAPABILITIES spec.initContainers[0].securityContext.capabilities.add[0]'),
    );
    assert.ok(
      paths.includes(
        'PSS-R-PRIVILEGE-ESCALATION spec.initContainers[0].securityContext.allowPrivilegeEscalation',
      ),
    );
    assert.ok(paths.includes('PSS-R-RUN-AS-USER spec.ephemeralContainers[0].securityContext.runAsUser'));
    assert.ok(
      paths.includes('PSS-R-CAPABILITIES spec.ephemeralContainers[0].securityContext.capabilities.drop'),
    );
  });

  it('--level baseline reports no restricted-only control; the standard allows what it allows', () => {
    const p = goodPodSpec();
    delete p.securityContext;
    delete p.containers[0].securityContext.allowPrivilegeEscalation;
    p.containers[0].securityContext.capabilities = { add: ['NET_BIND_SERVICE', 'CHOWN'] };
    p.securityContext = {
      sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }],
      seLinuxOptions: { type: 'container_init_t' },
      appArmorProfile: { type: 'RuntimeDefault' },
      runAsGroup: 10,
    };
    const base = run([deployment(p), denyAll()], 'baseline');
    assert.deepEqual(
      base.filter((f) => f.level !== 'hardening'),
      [],
    );
    const restricted = run([deployment(p), denyAll()]);
    assert.deepEqual(rulesOf(restricted.filter((f) => f.level === 'restricted')), [
      'PSS-R-CAPABILITIES',
      'PSS-R-PRIVILEGE-ESCALATION',
      'PSS-R-RUN-AS-NON-ROOT',
      'PSS-R-SECCOMP',
    ]);
    // Windows pods are exempt from the Linux-only restricted controls.
    p.os = { name: 'windows' };
    assert.deepEqual(rulesOf(run([deployment(p), denyAll()]).filter((f) => f.level === 'restricted')), [
      'PSS-R-RUN-AS-NON-ROOT',
    ]);
  });

  it('user-namespaced pods (hostUsers: false): root and an unmasked /proc pass baseline, /proc fails restricted', () => {
    const p = goodPodSpec();
    p.hostUsers = false;
    p.securityContext.runAsUser = 0;
    delete p.securityContext.runAsNonRoot;
    p.containers[0].securityContext.procMount = 'Unmasked';
    const f = run([deployment(p), denyAll()]);
    assert.deepEqual(rulesOf(f.filter((x) => x.level !== 'hardening')), ['PSS-R-PROC-MOUNT']);
    delete p.hostUsers;
    assert.deepEqual(rulesOf(run([deployment(p), denyAll()]).filter((x) => x.level !== 'hardening')), [
      'PSS-B-PROC-MOUNT',
      'PSS-R-PROC-MOUNT',
      'PSS-R-RUN-AS-NON-ROOT',
      'PSS-R-RUN-AS-USER',
    ]);
  });

  it('a NetworkPolicy in the namespace that does not select the pods still counts as missing', () => {
    const other = {
      ...denyAll(),
      spec: { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] } },
    };
    const f = run([deployment(goodPodSpec()), other]);
    assert.deepEqual(
      f.map((x) => `${x.rule} ${x.path}`),
      ['BW-NETPOL-MISSING spec.template.metadata.labels'],
    );
    // A ServiceAccount in the set with automount off is enough for the token rule.
    const p = goodPodSpec();
    delete p.automountServiceAccountToken;
    p.serviceAccountName = 'web';
    const sa = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'web', namespace: 'apps' },
      automountServiceAccountToken: false,
    };
    assert.deepEqual(run([deployment(p), denyAll(), sa]), []);
  });

  it('secret literals: names and well-known key formats, not settings', () => {
    const envs = (env: J[]) =>
      withPod((p) => (p.containers[0].env = env))
        .filter((f) => f.rule === 'BW-SECRET-ENV-LITERAL')
        .map((f) => f.path);
    assert.deepEqual(
      envs([
        { name: 'TOKEN_TTL', value: '3600' },
        { name: 'AUTH_URL', value: 'https://idp' },
        { name: 'LOG', value: 'info' },
        // The value names the mounted secret file, as this checker recommends: not a literal.
        { name: 'POSTGRES_PASSWORD_FILE', value: '/run/secrets/pg' },
        { name: 'API_KEY_PATH', value: '/etc/bulwark/model-key/api' },
      ]),
      [],
    );
    assert.deepEqual(
      envs([
        { name: 'DB_PASSWORD_FILE', value: 'hunter2' },
        { name: 'TOKEN_FILE', value: '/x\n-----BEGIN PRIVATE KEY-----' },
      ]),
      ['spec.template.spec.containers[0].env[0].value', 'spec.template.spec.containers[0].env[1].value'],
    );
    assert.deepEqual(
      envs([
        { name: 'X', value: '-----BEGIN EC PRIVATE KEY-----\nabc' },
        { name: 'API_KEY', value: 'k-123' },
      ]),
      ['spec.template.spec.containers[0].env[0].value', 'spec.template.spec.containers[0].env[1].value'],
    );
  });

  it('secret literals made of digits only: a PIN or a numeric key, quoted or a YAML number', () => {
    const flagged = (env: J[]) =>
      withPod((p) => (p.containers[0].env = env))
        .filter((f) => f.rule === 'BW-SECRET-ENV-LITERAL')
        .map((f) => Number(/env\[(\d+)\]/.exec(f.path)?.[1]));
    // Digits only passed as "a number, not a secret" (and a YAML number was not even a string).
    const secrets: J[] = [
      { name: 'DB_PASSWORD', value: '123456' },
      { name: 'HSM_PIN', value: '1234' },
      { name: 'PKCS11_PIN', value: 246810 },
      { name: 'API_KEY', value: '84375293847592837451' },
      { name: 'apiKey', value: 843752938475 },
      { name: 'ACCESS_TOKEN', value: '000012345678' },
      { name: 'CARD_PIN_CODE', value: '0042' },
      { name: 'HSM_PIN', value: 'abcd-1234' },
    ];
    assert.deepEqual(
      flagged(secrets),
      secrets.map((_, i) => i),
    );
    // Settings about a secret, flags, ratios, durations, and names that only contain a secret word.
    const settings: J[] = [
      { name: 'TOKEN_TTL', value: '3600' },
      { name: 'TOKEN_TTL', value: 3600 },
      { name: 'PASSWORD_MIN_LENGTH', value: '12' },
      { name: 'SESSION_SECRET_ROTATION_DAYS', value: 30 },
      { name: 'API_KEY_MAX_AGE', value: '86400' },
      { name: 'USE_TOKEN', value: '1' },
      { name: 'TOKEN_REFRESH_RATIO', value: '0.5' },
      { name: 'TOKEN_TIMEOUT', value: '30s' },
      { name: 'BYPASS_CACHE', value: '1' },
      { name: 'PASSIVE_PORTS', value: '30000' },
      { name: 'TOKENIZER_THREADS', value: '4' },
      { name: 'SHIPPING_ZONE', value: '12' },
      { name: 'PORT', value: 8080 },
    ];
    assert.deepEqual(flagged(settings), []);
  });

  it('deploy check flags an unquoted numeric secret in YAML, without printing it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-check-pin-'));
    const p = goodPodSpec();
    p.containers[0].env = [{ name: 'HSM_PIN', value: 'PLACEHOLDER' }];
    const file = join(dir, 'pin.yaml');
    // YAML reads the unquoted 20-digit value as a number.
    writeFileSync(
      file,
      [deployment(p), denyAll()]
        .map((o) => stringify(o))
        .join('---\n')
        .replace('value: PLACEHOLDER', 'value: 73928461057392846105'),
    );
    const env = (parseManifests(readFileSync(file, 'utf8'), file)[0]!.object as J).spec.template.spec
      .containers[0].env;
    assert.equal(typeof env[0].value, 'number');
    const r = runBulwark(['--json', 'deploy', 'check', file]);
    assert.equal(r.code, 5, r.stderr);
    const j = JSON.parse(r.stdout) as { findings: Finding[] };
    assert.deepEqual(
      j.findings.map((f) => `${f.rule} ${f.path}`),
      [
        // kubectl would refuse the number where a string belongs; the secret is in the file all the same.
        'BW-SCHEMA spec.template.spec.containers[0].env[0].value',
        'BW-SECRET-ENV-LITERAL spec.template.spec.containers[0].env[0].value',
      ],
    );
    assert.doesNotMatch(r.stdout + r.stderr, /7392846105/);
  });

  it('splits image references', () => {
    assert.deepEqual(splitImage('nginx'), {});
    assert.deepEqual(splitImage('localhost:5000/a/b:1.0'), { tag: '1.0' });
    assert.deepEqual(splitImage(`r.io/a@${DIGEST}`), { digest: DIGEST });
  });

  it('multi-document files, List, malformed YAML exits 3 with ERR_MANIFEST_PARSE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-check-'));
    const list = join(dir, 'list.yaml');
    writeFileSync(
      list,
      stringify({ apiVersion: 'v1', kind: 'List', items: [deployment(goodPodSpec()), denyAll()] }),
    );
    const r = runBulwark(['--json', 'deploy', 'check', list]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).objects, 2);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'kind: Pod\nmetadata: [unclosed\n');
    const b = runBulwark(['deploy', 'check', bad]);
    assert.equal(b.code, 3);
    assert.match(b.stderr, /^bulwark: ERR_MANIFEST_PARSE: /);
    assert.throws(
      () => parseManifests('just: text\n', 'a.yaml'),
      (e: unknown) => isBulwarkError(e, 'ERR_MANIFEST_PARSE'),
    );
    assert.ok(ROOT.length > 0);
  });
});
