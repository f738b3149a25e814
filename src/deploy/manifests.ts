import { isIP } from 'node:net';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { ILifecycle } from 'kubernetes-models/v1/Lifecycle';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { ITopologySpreadConstraint } from 'kubernetes-models/v1/TopologySpreadConstraint';
import { BulwarkError } from '../core/index.js';
import { type DeployInputs, type Destination, type EgressPeer, MOUNTS } from './config.js';

/**
 * The Kubernetes objects of a hardened gateway deployment. Every object is built through the
 * `kubernetes-models` class of its kind (typed by the published OpenAPI schema, so a misspelt field is a
 * compile error) and validated with `.validate()` before it is returned: a generator that emits an
 * object the API server would reject is a bug, reported as ERR_DEPLOY_MANIFEST_INVALID.
 *
 * Each setting and why is in docs/deploy.md; the Pod Security Standards it meets are
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/ (level `restricted`).
 */

/**
 * The gateway image's node binary (Dockerfile: distroless nodejs20, `ENTRYPOINT ["/nodejs/bin/node"]`):
 * the exec preStop hook runs it, the image having no `sleep` and no shell.
 */
export const IMAGE_NODE = '/nodejs/bin/node';

/** Name of the ConfigMap kustomize generates from bulwark.yaml (it appends a content hash). */
export const CONFIG_MAP = 'bulwark-config';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface GeneratedObject {
  /** File name in the Kustomize base, e.g. `deployment.yaml`. */
  file: string;
  object: K8sObject;
}

export interface GeneratedBase {
  objects: GeneratedObject[];
  /** Things the operator must know (e.g. probes and client certificates). */
  notes: string[];
}

interface Validatable {
  validate(): void;
  toJSON(): unknown;
}

function checked(file: string, model: Validatable): GeneratedObject {
  try {
    model.validate();
  } catch (e) {
    throw new BulwarkError(
      'ERR_DEPLOY_MANIFEST_INVALID',
      `generated ${file} does not match the Kubernetes schema: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e, details: { file } },
    );
  }
  return { file, object: JSON.parse(JSON.stringify(model.toJSON())) as K8sObject };
}

/** The egress peer of a destination: from `deploy.egress`, an IP literal, or an in-cluster service name. */
export function peerFor(d: Destination, inputs: DeployInputs): INetworkPolicyPeer {
  const key = d.role === 'key-service' ? 'keyService' : d.role;
  const given: EgressPeer | undefined = inputs.deploy.egress[key];
  if (given !== undefined) {
    if (given.cidr !== undefined) return { ipBlock: { cidr: given.cidr } };
    return {
      namespaceSelector: {
        matchLabels: { 'kubernetes.io/metadata.name': given.namespace ?? inputs.deploy.namespace },
      },
      ...(given.podLabels ? { podSelector: { matchLabels: given.podLabels } } : {}),
    };
  }
  const v = isIP(d.host);
  if (v !== 0) return { ipBlock: { cidr: `${d.host}/${v === 4 ? 32 : 128}` } };
  // <service>.<namespace>.svc[.<cluster domain>]: the namespace is in the name.
  const m = /^[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.[a-z0-9.-]+)?$/.exec(d.host);
  if (m) return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': m[1]! } } };
  // A bare service name resolves in the gateway's own namespace.
  if (/^[a-z0-9-]+$/.test(d.host)) {
    return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': inputs.deploy.namespace } } };
  }
  throw new BulwarkError(
    'ERR_CONFIG_INVALID',
    `deploy.egress.${key}: ${d.from} names ${d.host}, which a NetworkPolicy cannot select by name; give its cidr (or namespace and podLabels) in deploy.egress.${key}`,
    { details: { firstPath: `deploy.egress.${key}` } },
  );
}

/** Builds every object of the Kustomize base (without the kustomization itself). */
export function buildManifests(inputs: DeployInputs): GeneratedBase {
  const d = inputs.deploy;
  const ns = d.namespace;
  const gid = d.gid ?? d.uid;
  const selector = { 'app.kubernetes.io/name': d.name, 'app.kubernetes.io/component': 'gateway' };
  const labels = {
    ...selector,
    'app.kubernetes.io/part-of': 'bulwark',
    'app.kubernetes.io/managed-by': 'bulwark',
  };
  const meta = (name: string) => ({ name, namespace: ns, labels });
  const notes: string[] = [...inputs.warnings];
  const objects: GeneratedObject[] = [];

  const psVersion = d.podSecurityVersion;
  objects.push(
    checked(
      'namespace.yaml',
      new Namespace({
        metadata: {
          name: ns,
          labels: {
            'kubernetes.io/metadata.name': ns,
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': psVersion,
            'pod-security.kubernetes.io/audit': 'restricted',
            'pod-security.kubernetes.io/audit-version': psVersion,
            'pod-security.kubernetes.io/warn': 'restricted',
            'pod-security.kubernetes.io/warn-version': psVersion,
          },
        },
      }),
    ),
  );

  objects.push(
    checked(
      'serviceaccount.yaml',
      new ServiceAccount({ metadata: meta(d.name), automountServiceAccountToken: false }),
    ),
  );

  const containerSecurity: ISecurityContext = {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: d.uid,
    runAsGroup: gid,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  // With clientAuth: require the TLS handshake itself refuses a client without a certificate, and the
  // kubelet has none: an HTTPS probe could never succeed. The probes then only open a TCP connection
  // (readiness no longer reflects the model being loaded; the note below says so).
  const mtlsOnly = inputs.clientAuth === 'require';
  const probe = (path: string, period: number, failures: number): IProbe => ({
    ...(mtlsOnly ? { tcpSocket: { port: 'https' } } : { httpGet: { path, port: 'https', scheme: 'HTTPS' } }),
    periodSeconds: period,
    timeoutSeconds: 2,
    failureThreshold: failures,
  });
  const zoneSpread: ITopologySpreadConstraint = {
    maxSkew: d.topology.maxSkew,
    topologyKey: d.topology.zoneKey,
    whenUnsatisfiable: d.topology.whenUnsatisfiable,
    labelSelector: { matchLabels: selector },
    matchLabelKeys: ['pod-template-hash'],
  };
  const nodeSpread: ITopologySpreadConstraint = {
    maxSkew: 1,
    topologyKey: 'kubernetes.io/hostname',
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selector },
    matchLabelKeys: ['pod-template-hash'],
  };
  // Deleting a pod starts two things at once: the kubelet runs the preStop hook then sends SIGTERM,
  // and the endpoints controller removes the pod from the Service, which kube-proxy, ingress
  // controllers and load balancers learn of later. SIGTERM without a delay starts the gateway's drain
  // (it stops accepting connections) while they still send it new ones, which fail. The hook keeps
  // the pod serving meanwhile; the grace period below counts it.
  const preStopSeconds = d.preStop.seconds;
  const lifecycle: ILifecycle | undefined =
    preStopSeconds === 0
      ? undefined
      : {
          preStop:
            d.preStop.handler === 'sleep'
              ? { sleep: { seconds: preStopSeconds } }
              : {
                  exec: {
                    command: [IMAGE_NODE, '-e', `setTimeout(() => {}, ${preStopSeconds * 1000})`],
                  },
                },
        };
  objects.push(
    checked(
      'deployment.yaml',
      new Deployment({
        metadata: meta(d.name),
        spec: {
          // No spec.replicas: the HorizontalPodAutoscaler owns the count (a replicas field would reset it
          // on every `kubectl apply`).
          revisionHistoryLimit: 5,
          selector: { matchLabels: selector },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: d.name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              // The grace period starts with the preStop hook; then SIGTERM starts the gateway's drain
              // (server.drainSeconds), then the audit log is flushed, checkpointed and closed: the
              // kubelet's SIGKILL must not come before. 20 s for the flush, the checkpoint and the trace
              // export after the drain.
              terminationGracePeriodSeconds: Math.max(
                30,
                preStopSeconds + Math.ceil(inputs.drainSeconds) + 20,
              ),
              securityContext: {
                runAsNonRoot: true,
                runAsUser: d.uid,
                runAsGroup: gid,
                fsGroup: gid,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              topologySpreadConstraints: d.topology.spreadNodes ? [zoneSpread, nodeSpread] : [zoneSpread],
              containers: [
                {
                  name: 'gateway',
                  image: d.image,
                  imagePullPolicy: 'IfNotPresent',
                  args: ['/app/bin/bulwark.js', 'serve', '--config', `${MOUNTS.config}/bulwark.yaml`],
                  env: [{ name: 'NODE_ENV', value: 'production' }],
                  ports: [
                    { name: 'https', containerPort: inputs.serverPort, protocol: 'TCP' },
                    ...(inputs.metricsPort !== null
                      ? [{ name: 'metrics', containerPort: inputs.metricsPort, protocol: 'TCP' as const }]
                      : []),
                  ],
                  securityContext: containerSecurity,
                  ...(lifecycle ? { lifecycle } : {}),
                  resources: {
                    requests: { cpu: d.resources.requests.cpu, memory: d.resources.requests.memory },
                    limits: { cpu: d.resources.limits.cpu, memory: d.resources.limits.memory },
                  },
                  startupProbe: probe('/v2/health/live', 5, 24),
                  livenessProbe: probe('/v2/health/live', 10, 3),
                  readinessProbe: probe('/v2/health/ready', 5, 2),
                  volumeMounts: [
                    { name: 'tmp', mountPath: MOUNTS.tmp },
                    { name: 'config', mountPath: MOUNTS.config, readOnly: true },
                    { name: 'tls', mountPath: MOUNTS.tls, readOnly: true },
                    { name: 'model-key', mountPath: MOUNTS.modelKey, readOnly: true },
                    ...(d.secrets.auditSigner
                      ? [{ name: 'audit-signer', mountPath: MOUNTS.auditSigner, readOnly: true }]
                      : []),
                    ...(d.modelsClaim ? [{ name: 'models', mountPath: MOUNTS.models, readOnly: true }] : []),
                  ],
                },
              ],
              volumes: [
                { name: 'tmp', emptyDir: { sizeLimit: d.tmpSizeLimit } },
                { name: 'config', configMap: { name: CONFIG_MAP } },
                // 0440 with fsGroup: readable by the gateway's group only.
                { name: 'tls', secret: { secretName: d.secrets.tls, defaultMode: 0o440 } },
                { name: 'model-key', secret: { secretName: d.secrets.modelKey, defaultMode: 0o440 } },
                ...(d.secrets.auditSigner
                  ? [
                      {
                        name: 'audit-signer',
                        secret: { secretName: d.secrets.auditSigner, defaultMode: 0o440 },
                      },
                    ]
                  : []),
                ...(d.modelsClaim
                  ? [{ name: 'models', persistentVolumeClaim: { claimName: d.modelsClaim, readOnly: true } }]
                  : []),
              ],
            },
          },
        },
      }),
    ),
  );

  objects.push(
    checked(
      'service.yaml',
      new Service({
        metadata: meta(d.name),
        spec: {
          type: 'ClusterIP',
          selector,
          ports: [
            { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' },
            ...(inputs.metricsPort !== null
              ? [
                  {
                    name: 'metrics',
                    port: inputs.metricsPort,
                    targetPort: 'metrics',
                    protocol: 'TCP' as const,
                  },
                ]
              : []),
          ],
        },
      }),
    ),
  );

  objects.push(
    checked(
      'poddisruptionbudget.yaml',
      new PodDisruptionBudget({
        metadata: meta(d.name),
        spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
      }),
    ),
  );

  const minReplicas = d.autoscaling.minReplicas ?? d.replicas;
  const maxReplicas = d.autoscaling.maxReplicas ?? Math.max(minReplicas, d.replicas * 3);
  if (maxReplicas < minReplicas) {
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `deploy.autoscaling.maxReplicas: ${maxReplicas} is below minReplicas ${minReplicas}`,
      { details: { firstPath: 'deploy.autoscaling.maxReplicas' } },
    );
  }
  if (maxReplicas > 1 && inputs.limitsBackend !== 'redis') {
    // In-memory limits count per replica: a caller would get up to maxReplicas times its rate limit and
    // query budget (the extraction defence). Shared state is what Redis is for.
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `limits.backend: memory counts per replica, so with up to ${maxReplicas} replicas a caller gets up to ${maxReplicas}× its rate limit and query budget; use backend: redis (or maxReplicas 1)`,
      { details: { firstPath: 'limits.backend' } },
    );
  }
  if (minReplicas < 2) {
    notes.push('one replica: a node or zone failure stops the gateway; use replicas >= 2 across zones');
  }
  objects.push(
    checked(
      'horizontalpodautoscaler.yaml',
      new HorizontalPodAutoscaler({
        metadata: meta(d.name),
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: d.name },
          minReplicas,
          maxReplicas,
          metrics: [
            {
              type: 'Resource',
              resource: {
                name: 'cpu',
                target: { type: 'Utilization', averageUtilization: d.autoscaling.targetCpuUtilization },
              },
            },
          ],
        },
      }),
    ),
  );

  // NetworkPolicies: deny everything, then allow exactly what the config names.
  const podSelector = { matchLabels: selector };
  objects.push(
    checked(
      'networkpolicy-default-deny.yaml',
      new NetworkPolicy({
        metadata: { name: 'default-deny-all', namespace: ns, labels },
        spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
      }),
    ),
  );
  objects.push(
    checked(
      'networkpolicy-ingress-gateway.yaml',
      new NetworkPolicy({
        metadata: { name: `${d.name}-ingress`, namespace: ns, labels },
        spec: {
          podSelector,
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: d.ingressFrom.map((s) => ({
                // kubernetes.io/metadata.name is set by the API server and cannot be forged by a
                // namespace owner, unlike a hand-made label such as `name: trusted`.
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': s.namespace } },
                ...(s.podLabels ? { podSelector: { matchLabels: s.podLabels } } : {}),
              })),
              ports: [{ protocol: 'TCP', port: inputs.serverPort }],
            },
          ],
        },
      }),
    ),
  );
  if (inputs.metricsPort !== null) {
    const metricsPort = inputs.metricsPort;
    objects.push(
      checked(
        'networkpolicy-ingress-metrics.yaml',
        new NetworkPolicy({
          metadata: { name: `${d.name}-metrics`, namespace: ns, labels },
          spec: {
            podSelector,
            policyTypes: ['Ingress'],
            ingress: [
              {
                from: [
                  {
                    namespaceSelector: {
                      matchLabels: { 'kubernetes.io/metadata.name': d.monitoringNamespace },
                    },
                  },
                ],
                ports: [{ protocol: 'TCP', port: metricsPort }],
              },
            ],
          },
        }),
      ),
    );
  }
  objects.push(
    checked(
      'networkpolicy-egress-dns.yaml',
      new NetworkPolicy({
        metadata: { name: `${d.name}-egress-dns`, namespace: ns, labels },
        spec: {
          podSelector,
          policyTypes: ['Egress'],
          egress: [
            {
              to: [
                {
                  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                  podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
                },
              ],
              ports: [
                { protocol: 'UDP', port: 53 },
                { protocol: 'TCP', port: 53 },
              ],
            },
          ],
        },
      }),
    ),
  );
  const seen = new Map<string, number>();
  for (const dest of inputs.destinations) {
    const n = (seen.get(dest.role) ?? 0) + 1;
    seen.set(dest.role, n);
    const suffix = n === 1 ? dest.role : `${dest.role}-${n}`;
    objects.push(
      checked(
        `networkpolicy-egress-${suffix}.yaml`,
        new NetworkPolicy({
          metadata: { name: `${d.name}-egress-${suffix}`, namespace: ns, labels },
          spec: {
            podSelector,
            policyTypes: ['Egress'],
            egress: [{ to: [peerFor(dest, inputs)], ports: [{ protocol: 'TCP', port: dest.port }] }],
          },
        }),
      ),
    );
  }
  if (inputs.clientAuth === 'require') {
    notes.push(
      'server.tls.clientAuth is require: the kubelet has no client certificate, so the probes are TCP connects to the https port; readiness does not see /v2/health/ready (model loaded, stores reachable) — use clientAuth: request with require in the auth section to keep HTTPS probes',
    );
  }
  return { objects, notes };
}
