import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { z } from 'zod';
import { BulwarkError, fsError, parseYaml, validateConfig } from '../core/index.js';
import { isCredentialParam } from './credentials.js';

/**
 * The `deploy` section of `bulwark.yaml`, and a narrow reader of the few other keys the Kubernetes
 * manifests need. The gateway owns the rest of the file's schema (`src/gateway/config.ts`) and treats
 * `deploy` as opaque; this module never imports the gateway, so it reads exactly these keys of the
 * other sections, each optional and checked here only for the shape it needs:
 *
 * | key                    | used for                                                         |
 * |------------------------|------------------------------------------------------------------|
 * | `server.host`          | must listen on all interfaces (0.0.0.0 or ::): a pod's loopback is unreachable from the Service and the kubelet probes (the gateway's default is 127.0.0.1) |
 * | `server.port`          | container port, Service target, ingress NetworkPolicy (default 8443) |
 * | `server.insecurePlaintext` | refused: in a cluster, TLS is required (a NetworkPolicy is not encryption) |
 * | `server.drainSeconds`  | the pod's terminationGracePeriodSeconds: at least deploy.preStop.seconds + drainSeconds + 20 (default 5 + 10 + 20 = 35) |
 * | `server.tls.clientAuth`| a note: kubelet probes present no client certificate             |
 * | `metrics.enabled`, `metrics.host`, `metrics.port` | metrics port and its NetworkPolicy from the monitoring namespace (default 9464); host must be all interfaces |
 * | `limits.backend`       | `redis` → egress to Redis; `memory` refused with more than one replica (see manifests.ts) |
 * | `limits.redis.url`     | Redis host and port (`redis://` or `rediss://`, default port 6379) |
 * | `audit.store`          | must be a `postgres://` URL (a SQLite file in a pod is lost at reschedule) → egress to PostgreSQL |
 * | `ledger.store`         | same as `audit.store`, when present                              |
 * | `auth.jwt.jwks.url`    | an `https://` JWKS URL → egress to its host (port 443 by default) |
 * | `telemetry.traces.enabled`, `telemetry.traces.otlp.endpoint` | with traces enabled, the OTLP/HTTP collector URL → egress to its host (port 80 or 443 by default) |
 * | `models[].package`, `models[].keyringPassphrase` | a note when a package's passphrase is read from the environment (the pod gets secrets as files) |
 * | `server.tls.key`, `audit.signer`, `models[].keyringPassphrase.file`, `telemetry.traces.otlp.headersFile`, `.keyFile` | files holding secrets: refused in the ConfigMap's folder, a note outside the mounted Secrets (see {@link secretFileProblem}) |
 *
 * Everything else in the file is ignored here. A destination a NetworkPolicy cannot name by itself
 * (a DNS name outside the cluster) must be given a peer in `deploy.egress` — never guessed.
 */

/** `name@sha256:<64 hex>` with an optional `:tag` before the digest (the tag is then informational). */
const IMAGE_DIGEST =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?@sha256:[a-f0-9]{64}$/;

/** RFC 1123 label (namespaces, object names of Secrets). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1035 label: a Service name must also start with a letter (the API server refuses `1gateway`). */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes resource quantities (`500m`, `1`, `512Mi`, `2Gi`). */
const QUANTITY = /^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$/;
/** Label keys (optional DNS prefix) and values. */
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

const dnsLabel = (what: string) =>
  z.string().max(63).regex(DNS_LABEL, `${what} must be a DNS label (lower case letters, digits, '-')`);
const quantity = z.string().regex(QUANTITY, 'must be a Kubernetes quantity such as 500m, 2, 512Mi');
const labels = z
  .record(
    z.string().regex(LABEL_KEY, 'must be a label key'),
    z.string().regex(LABEL_VALUE, 'must be a label value'),
  )
  .refine((r) => Object.keys(r).length > 0, 'must name at least one label');

/** A CIDR (IPv4 or IPv6) for NetworkPolicy ipBlock peers. */
const cidr = z.string().refine((s) => {
  const [ip, len, ...rest] = s.split('/');
  if (ip === undefined || len === undefined || rest.length > 0 || !/^\d{1,3}$/.test(len)) return false;
  const v = isIP(ip);
  return v !== 0 && Number(len) <= (v === 4 ? 32 : 128);
}, 'must be a CIDR such as 10.0.12.0/24');

/** How a NetworkPolicy names an egress destination: pods in a namespace, or an IP block. */
const peerSchema = z
  .strictObject({
    namespace: dnsLabel('namespace').optional(),
    podLabels: labels.optional(),
    cidr: cidr.optional(),
  })
  .refine((p) => (p.cidr === undefined) !== (p.namespace === undefined && p.podLabels === undefined), {
    message: 'give either cidr, or namespace (and optionally podLabels) — not both, not neither',
  });
export type EgressPeer = z.infer<typeof peerSchema>;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/, 'must be host:port')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'port must be in [1, 65535]');

/** Default seconds of the preStop hook (see `deploy.preStop`). */
export const PRE_STOP_SECONDS = 5;

export const deploySchema = z.strictObject({
  /**
   * Namespace of every object; labelled Pod Security `restricted`, with a default-deny NetworkPolicy
   * for every pod in it: never `default` or a `kube-*` namespace (in kube-system that policy would cut
   * the cluster's DNS, and the label would refuse its system pods).
   */
  namespace: dnsLabel('namespace').refine(
    (ns) => ns !== 'default' && !ns.startsWith('kube-'),
    "must be the gateway's own namespace, not default or kube-*: the base labels it Pod Security restricted and denies all traffic of every pod in it",
  ),
  /**
   * Base name of the objects (Deployment, Service, ...). The Service's name is an RFC 1035 label: it
   * must start with a letter.
   */
  name: z
    .string()
    .max(63)
    .regex(
      DNS_1035_LABEL,
      "name must be an RFC 1035 label (lower case letters, digits, '-'; starting with a letter, as a Service name must)",
    )
    .default('bulwark-gateway'),
  /** The gateway image, pinned by digest: a tag alone can be moved to other bytes. */
  image: z
    .string()
    .regex(IMAGE_DIGEST, 'must be pinned by digest: registry/name@sha256:<64 hex> (a tag alone is refused)'),
  replicas: z.int().min(1).max(1000).default(3),
  autoscaling: z
    .strictObject({
      minReplicas: z.int().min(1).optional(),
      maxReplicas: z.int().min(1).max(10000).optional(),
      targetCpuUtilization: z.int().min(1).max(100).default(70),
    })
    .default({ targetCpuUtilization: 70 }),
  resources: z
    .strictObject({
      requests: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: '500m', memory: '512Mi' }),
      limits: z.strictObject({ cpu: quantity, memory: quantity }).default({ cpu: '2', memory: '1Gi' }),
    })
    .default({ requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } }),
  /** Size limit of the writable /tmp (the root filesystem is read-only). */
  tmpSizeLimit: quantity.default('64Mi'),
  topology: z
    .strictObject({
      zoneKey: z.string().regex(LABEL_KEY).default('topology.kubernetes.io/zone'),
      maxSkew: z.int().min(1).default(1),
      whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']).default('DoNotSchedule'),
      /** Also spread across nodes within a zone (ScheduleAnyway). */
      spreadNodes: z.boolean().default(true),
    })
    .default({
      zoneKey: 'topology.kubernetes.io/zone',
      maxSkew: 1,
      whenUnsatisfiable: 'DoNotSchedule',
      spreadNodes: true,
    }),
  /** Who may reach the gateway port: pods in these namespaces (optionally only pods with these labels). */
  ingressFrom: z
    .array(z.strictObject({ namespace: dnsLabel('namespace'), podLabels: labels.optional() }))
    .min(1, 'name at least one ingress source: a gateway nobody may reach is a mistake'),
  /** The only namespace allowed to scrape the metrics port. */
  monitoringNamespace: dnsLabel('monitoringNamespace'),
  /** The key service (KMS proxy, HSM front end) as host:port; omitted when keys are local. */
  keyService: hostPort.optional(),
  /** Peers for egress destinations that are not in-cluster service names (see module comment). */
  egress: z
    .strictObject({
      redis: peerSchema.optional(),
      postgres: peerSchema.optional(),
      keyService: peerSchema.optional(),
      jwks: peerSchema.optional(),
      otlp: peerSchema.optional(),
    })
    .default({}),
  /** Names of existing Secrets, mounted as files; their values never pass through Bulwark. */
  secrets: z.strictObject({
    tls: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a Secret name'),
    modelKey: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a Secret name'),
    /** The audit log's checkpoint signing key (audit.signer), when it is not in another mounted Secret. */
    auditSigner: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a Secret name').optional(),
  }),
  /**
   * Non-secret files bulwark.yaml refers to (Cedar policies and schema, trust policy, data schemas,
   * detector state), relative to bulwark.yaml's folder: they join it in the ConfigMap, mounted at
   * /etc/bulwark/config, where the gateway resolves its relative paths.
   */
  configFiles: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z0-9._-]+$/, 'must be a file name in the folder of bulwark.yaml (no folders, no ..)')
        .refine(
          (f) => f !== '.' && f !== '..' && f !== 'bulwark.yaml',
          'must be another file than bulwark.yaml',
        ),
    )
    .default([])
    .refine((a) => new Set(a).size === a.length, 'must not repeat a file'),
  /** A PersistentVolumeClaim holding the protected model packages, mounted read-only. */
  modelsClaim: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a PersistentVolumeClaim name').optional(),
  /** Fixed non-root UID (and GID, default the same); 65532 is distroless `nonroot`. */
  uid: z.int().min(1, 'uid must not be 0 (root)').max(2147483647).default(65532),
  gid: z.int().min(1, 'gid must not be 0 (root group)').max(2147483647).optional(),
  /**
   * The container's preStop hook: when a pod is deleted, its removal from the Service endpoints (and
   * from ingress controllers and load balancers) races the SIGTERM that starts the gateway's drain,
   * which stops accepting connections; for these `seconds` the pod keeps serving while the rest of the
   * cluster stops sending it new ones. `sleep`: the kubelet's native sleep action (Kubernetes 1.30+);
   * `exec`: runs the image's node (`/nodejs/bin/node`, the distroless image has no `sleep` and no
   * shell) for clusters 1.27-1.29. 0 seconds: no hook.
   */
  preStop: z
    .strictObject({
      seconds: z.int().min(0).max(300).default(PRE_STOP_SECONDS),
      handler: z.enum(['sleep', 'exec']).default('sleep'),
    })
    .default({ seconds: PRE_STOP_SECONDS, handler: 'sleep' }),
  /** Kubernetes version of the Pod Security labels (`latest` or `v1.N`). */
  podSecurityVersion: z
    .string()
    .regex(/^(latest|v1\.\d+)$/)
    .default('latest'),
});
export type DeployConfig = z.infer<typeof deploySchema>;

/** A network destination the gateway must reach, read from the rest of `bulwark.yaml`. */
export interface Destination {
  /** What it is, also the suffix of its NetworkPolicy. */
  role: 'redis' | 'postgres' | 'key-service' | 'jwks' | 'otlp';
  host: string;
  port: number;
  /** The config key it came from, for messages. */
  from: string;
}

/** What the manifests need from the whole file. */
export interface DeployInputs {
  deploy: DeployConfig;
  serverPort: number;
  /** `server.drainSeconds` (default 10): how long the gateway's shutdown waits for requests in flight. */
  drainSeconds: number;
  /** null when `metrics.enabled: false`: no metrics port, no metrics NetworkPolicy. */
  metricsPort: number | null;
  /** Things the operator must fix or know that the manifests cannot (e.g. a secret read from env). */
  warnings: string[];
  /** `limits.backend` (default memory). */
  limitsBackend: 'memory' | 'redis';
  clientAuth: 'none' | 'request' | 'require';
  destinations: Destination[];
}

const portSchema = z.int().min(1).max(65535);
/** The narrow view of the other sections: only the keys listed in the module comment. */
const otherSchema = z.looseObject({
  server: z
    .looseObject({
      host: z.string().optional(),
      port: portSchema.optional(),
      insecurePlaintext: z.boolean().optional(),
      drainSeconds: z.number().min(0).max(600).optional(),
      tls: z
        .looseObject({
          clientAuth: z.enum(['none', 'request', 'require']).optional(),
          key: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  metrics: z
    .looseObject({
      enabled: z.boolean().optional(),
      host: z.string().optional(),
      port: portSchema.optional(),
    })
    .optional(),
  limits: z
    .looseObject({
      backend: z.enum(['memory', 'redis']).optional(),
      redis: z.looseObject({ url: z.string().optional() }).optional(),
    })
    .optional(),
  audit: z.looseObject({ store: z.string().optional(), signer: z.string().optional() }).optional(),
  ledger: z.looseObject({ store: z.string().optional() }).optional(),
  models: z
    .array(
      z.looseObject({
        name: z.string().optional(),
        package: z.string().optional(),
        keyringPassphrase: z
          .looseObject({ file: z.string().optional(), env: z.string().optional() })
          .optional(),
      }),
    )
    .optional(),
  auth: z
    .looseObject({
      jwt: z.looseObject({ jwks: z.looseObject({ url: z.string().optional() }).optional() }).optional(),
    })
    .optional(),
  telemetry: z
    .looseObject({
      traces: z
        .looseObject({
          enabled: z.boolean().optional(),
          otlp: z
            .looseObject({
              endpoint: z.string().optional(),
              headersFile: z.string().optional(),
              keyFile: z.string().optional(),
            })
            .optional(),
        })
        .optional(),
    })
    .optional(),
});

function parseUrl(text: string, key: string, source: string, protocols: readonly string[]): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new BulwarkError('ERR_CONFIG_INVALID', `${source}: ${key}: not a URL`, {
      details: { file: source, firstPath: key },
    });
  }
  if (!protocols.includes(u.protocol)) {
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `${source}: ${key}: expected a ${protocols.join(' or ')} URL, got ${u.protocol}`,
      { details: { file: source, firstPath: key } },
    );
  }
  if (u.password !== '') {
    // bulwark.yaml becomes a ConfigMap, which is not for secrets: credentials belong in a file.
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `${source}: ${key}: the URL carries a password, which would be copied into a ConfigMap; put it in a mounted secret file instead`,
      { details: { file: source, firstPath: key } },
    );
  }
  // pg and ioredis also take the password from the query (`?password=`, `?sslpassword=`); one rule
  // with deploy check's (credentials.ts).
  for (const name of u.searchParams.keys()) {
    if (isCredentialParam(name))
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `${source}: ${key}: the URL carries a credential in its query (${name}), which would be copied into a ConfigMap; put it in a mounted secret file instead`,
        { details: { file: source, firstPath: key } },
      );
  }
  if (u.hostname === '') {
    throw new BulwarkError('ERR_CONFIG_INVALID', `${source}: ${key}: the URL has no host`, {
      details: { file: source, firstPath: key },
    });
  }
  return u;
}

function hostOf(u: URL): string {
  return u.hostname.replace(/^\[|\]$/g, '');
}

/** Where the container finds its files (the Deployment's mounts); bulwark.yaml must name these paths. */
export const MOUNTS = {
  config: '/etc/bulwark/config',
  tls: '/etc/bulwark/tls',
  modelKey: '/etc/bulwark/model-key',
  auditSigner: '/etc/bulwark/audit-signer',
  models: '/etc/bulwark/models',
  tmp: '/tmp',
} as const;

/**
 * Where a file holding a secret (a TLS or client key, the checkpoint signing key, a passphrase, the
 * OTLP collector's API-key headers) lands in the pod, as the gateway resolves it: relative paths
 * against the folder of bulwark.yaml, which in the pod is the ConfigMap's mount. A secret there would
 * have to be one of `deploy.configFiles`, i.e. copied into a ConfigMap (readable by anyone who may read
 * ConfigMaps in the namespace, stored unencrypted in etcd unless the cluster encrypts it): refused. A
 * path under none of the mounted Secrets is a note, not a refusal: an overlay may mount it, but as
 * generated the gateway would not start. Returns the refusal's reason, or a note, or nothing.
 */
export function secretFileProblem(
  file: string,
  auditSignerMounted: boolean,
): { refuse: string } | { note: string } | undefined {
  const at = posix.resolve(MOUNTS.config, file);
  const under = (dir: string) => at.startsWith(`${dir}/`);
  if (under(MOUNTS.config) || at === MOUNTS.config)
    return {
      refuse: `${file} is in the folder of bulwark.yaml, which the pod gets from a ConfigMap (a secret would have to be copied into it); put the file in a mounted Secret: ${MOUNTS.tls}/, ${MOUNTS.modelKey}/ or ${MOUNTS.auditSigner}/ (deploy.secrets)`,
    };
  const mounted = [MOUNTS.tls, MOUNTS.modelKey, ...(auditSignerMounted ? [MOUNTS.auditSigner] : [])];
  if (mounted.some(under)) return undefined;
  return {
    note: `${at} is under none of the Secrets the Deployment mounts (${mounted.map((d) => `${d}/`).join(', ')}${auditSignerMounted ? '' : `; ${MOUNTS.auditSigner}/ only with deploy.secrets.auditSigner`}): the gateway will not find it unless an overlay mounts it`,
  };
}

/**
 * Reads `deploy` and the keys listed above from an already-parsed `bulwark.yaml`. Credentials in URLs
 * (user:password@) are refused: bulwark.yaml is copied into a ConfigMap. Only host and port are used.
 */
export function readDeployInputs(doc: unknown, source = '<config>'): DeployInputs {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new BulwarkError('ERR_CONFIG_INVALID', `${source}: expected a YAML mapping at the top level`, {
      details: { file: source, firstPath: '(root)' },
    });
  }
  const root = doc as Record<string, unknown>;
  if (root['deploy'] === undefined) {
    throw new BulwarkError('ERR_CONFIG_INVALID', `${source}: deploy: the section is missing`, {
      details: { file: source, firstPath: 'deploy' },
    });
  }
  const deploy = validateConfig(
    { deploy: root['deploy'] },
    z.strictObject({ deploy: deploySchema }),
    source,
  ).deploy;
  const other = validateConfig(root, otherSchema, source);
  const serverPort = other.server?.port ?? 8443;
  const metricsEnabled = other.metrics?.enabled ?? true;
  const metricsPort = other.metrics?.port ?? 9464;
  const refuse = (key: string, why: string) =>
    new BulwarkError('ERR_CONFIG_INVALID', `${source}: ${key}: ${why}`, {
      details: { file: source, firstPath: key },
    });
  // Every problem is reported at once (one run, one list), not the first one per run.
  const problems: BulwarkError[] = [];
  /** The egress destination a URL setting names, or undefined (its problem recorded). */
  const destination = (
    role: Destination['role'],
    text: string,
    key: string,
    protocols: readonly string[],
    defaultPort: number,
  ): Destination | undefined => {
    try {
      const u = parseUrl(text, key, source, protocols);
      return { role, host: hostOf(u), port: Number(u.port || defaultPort), from: key };
    } catch (e) {
      if (!(e instanceof BulwarkError)) throw e;
      problems.push(e);
      return undefined;
    }
  };
  // The gateway defaults to 127.0.0.1 (safe on a laptop); inside a pod that is unreachable.
  const allInterfaces = (h: string | undefined) => h === '0.0.0.0' || h === '::' || h === '[::]';
  if (!allInterfaces(other.server?.host)) {
    problems.push(
      refuse(
        'server.host',
        `${other.server?.host ?? '127.0.0.1 (the default)'} is not reachable from the Service or the kubelet probes in a pod; set 0.0.0.0 (or ::)`,
      ),
    );
  }
  if (other.server?.insecurePlaintext === true) {
    problems.push(
      refuse(
        'server.insecurePlaintext',
        'refused in Kubernetes: serve TLS (server.tls); a NetworkPolicy is not encryption',
      ),
    );
  }
  if (metricsEnabled && !allInterfaces(other.metrics?.host)) {
    problems.push(
      refuse(
        'metrics.host',
        `${other.metrics?.host ?? '127.0.0.1 (the default)'} cannot be scraped from the monitoring namespace; set 0.0.0.0 (or metrics.enabled: false)`,
      ),
    );
  }
  // The container runs as a non-root UID with every capability dropped: it cannot bind a port below
  // 1024 (the Service still exposes 443).
  if (serverPort < 1024)
    problems.push(
      refuse(
        'server.port',
        `${serverPort} is below 1024, which the non-root container (no capabilities) cannot bind; use 8443 (the Service exposes 443)`,
      ),
    );
  if (metricsEnabled && metricsPort < 1024)
    problems.push(
      refuse('metrics.port', `${metricsPort} is below 1024, which the non-root container cannot bind`),
    );
  if (metricsEnabled && serverPort === metricsPort)
    problems.push(refuse('metrics.port', 'must differ from server.port'));
  const destinations: Destination[] = [];
  if (other.limits?.backend === 'redis') {
    const text = other.limits.redis?.url;
    if (text === undefined) problems.push(refuse('limits.redis.url', 'required when backend is redis'));
    else {
      const d = destination('redis', text, 'limits.redis.url', ['redis:', 'rediss:'], 6379);
      if (d) destinations.push(d);
    }
  }
  const pgSeen = new Set<string>();
  for (const key of ['audit', 'ledger'] as const) {
    const store = other[key]?.store;
    if (store !== undefined && !/^postgres(ql)?:\/\//i.test(store)) {
      // A SQLite file in a pod lives on the read-only image or an emptyDir: lost at the next reschedule,
      // and one log per replica. A tamper-evident log that silently disappears is refused.
      problems.push(
        refuse(
          `${key}.store`,
          'a SQLite file inside a pod is lost when the pod is rescheduled and each replica would keep its own; use a postgres:// URL',
        ),
      );
      continue;
    }
    if (store === undefined) {
      if (key === 'audit')
        problems.push(
          refuse('audit.store', 'the gateway needs an audit store; in Kubernetes a postgres:// URL'),
        );
      continue;
    }
    const d = destination('postgres', store, `${key}.store`, ['postgres:', 'postgresql:'], 5432);
    if (!d) continue;
    const id = `${d.host}:${d.port}`;
    if (pgSeen.has(id)) continue;
    pgSeen.add(id);
    destinations.push(d);
  }
  if (deploy.keyService !== undefined) {
    const i = deploy.keyService.lastIndexOf(':');
    destinations.push({
      role: 'key-service',
      host: deploy.keyService.slice(0, i).replace(/^\[|\]$/g, ''),
      port: Number(deploy.keyService.slice(i + 1)),
      from: 'deploy.keyService',
    });
  }
  const jwks = other.auth?.jwt?.jwks?.url;
  if (jwks !== undefined) {
    const d = destination('jwks', jwks, 'auth.jwt.jwks.url', ['https:'], 443);
    if (d) destinations.push(d);
  }
  // The trace exporter posts to the collector only with traces enabled (the gateway refuses otlp
  // without enabled: true); the default-deny policy would otherwise drop every export silently.
  const traces = other.telemetry?.traces;
  const otlpEndpoint = traces?.otlp?.endpoint;
  if (traces?.enabled === true && otlpEndpoint !== undefined) {
    const key = 'telemetry.traces.otlp.endpoint';
    const port = /^https:/i.test(otlpEndpoint) ? 443 : 80;
    const d = destination('otlp', otlpEndpoint, key, ['http:', 'https:'], port);
    if (d) destinations.push(d);
  }
  // Files holding secrets: never in the ConfigMap; a note when no mounted Secret holds them.
  const secretFiles: [string, string | undefined][] = [
    ['server.tls.key', other.server?.tls?.key],
    ['audit.signer', other.audit?.signer],
    ...(other.models ?? []).map(
      (m, i) =>
        [`models[${i}].keyringPassphrase.file`, m.keyringPassphrase?.file] as [string, string | undefined],
    ),
    ['telemetry.traces.otlp.headersFile', traces?.otlp?.headersFile],
    ['telemetry.traces.otlp.keyFile', traces?.otlp?.keyFile],
  ];
  const notes: string[] = [];
  for (const [key, file] of secretFiles) {
    if (file === undefined) continue;
    const p = secretFileProblem(file, deploy.secrets.auditSigner !== undefined);
    if (p && 'refuse' in p) problems.push(refuse(key, p.refuse));
    else if (p) notes.push(`${key}: ${p.note}`);
  }
  const [first, ...more] = problems;
  if (first)
    throw more.length === 0
      ? first
      : new BulwarkError(
          'ERR_CONFIG_INVALID',
          `${source}: ${problems.length} problems: ${problems.map((p) => p.message.slice(source.length + 2)).join('; ')}`,
          { details: { file: source, firstPath: String(first.details['firstPath'] ?? '') } },
        );
  return {
    deploy,
    serverPort,
    drainSeconds: other.server?.drainSeconds ?? 10,
    metricsPort: metricsEnabled ? metricsPort : null,
    limitsBackend: other.limits?.backend ?? 'memory',
    warnings: [
      ...(other.models ?? []).flatMap((m, i) =>
        m.package !== undefined && m.keyringPassphrase?.file === undefined
          ? [
              `models[${i}]${m.name ? ` (${m.name})` : ''}: the keyring passphrase comes from ${m.keyringPassphrase?.env ?? 'BULWARK_PASSPHRASE'} in the environment, which the Deployment does not set (secrets are mounted as files); set keyringPassphrase: { file: ${MOUNTS.modelKey}/<file> }`,
            ]
          : [],
      ),
      ...notes,
    ],
    clientAuth: other.server?.tls?.clientAuth ?? 'none',
    destinations,
  };
}

/** Parses the YAML text of `bulwark.yaml` and reads the deploy inputs. */
export function parseDeployConfig(text: string, source = '<config>'): DeployInputs {
  return readDeployInputs(parseYaml(text, source), source);
}

/** Reads `bulwark.yaml` from disk. */
export async function loadDeployConfig(path: string): Promise<{ inputs: DeployInputs; text: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw fsError(e, path, 'cannot read config');
  }
  return { inputs: parseDeployConfig(text, path), text };
}
