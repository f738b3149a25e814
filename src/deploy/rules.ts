/**
 * The rules of `bulwark deploy check`. Ids are stable (documented in docs/deploy.md; never renamed or
 * reused). `PSS-B-*` are the controls of the Pod Security Standards' Baseline level and `PSS-R-*` those
 * of the Restricted level, one rule per control of
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/ (as enforced by the
 * pod-security-admission controller); `BW-*` are further hardening rules.
 */

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export type RuleLevel = 'baseline' | 'restricted' | 'hardening';

export interface Rule {
  id: string;
  level: RuleLevel;
  severity: Severity;
  title: string;
  fix: string;
}

const rule = (id: string, level: RuleLevel, severity: Severity, title: string, fix: string): Rule => ({
  id,
  level,
  severity,
  title,
  fix,
});

export const RULES: readonly Rule[] = [
  // Pod Security Standards: Baseline
  rule(
    'PSS-B-HOST-PROCESS',
    'baseline',
    'critical',
    'Windows HostProcess containers',
    'remove windowsOptions.hostProcess or set it to false',
  ),
  rule(
    'PSS-B-HOST-NAMESPACES',
    'baseline',
    'critical',
    'host network, PID or IPC namespace shared',
    'remove hostNetwork, hostPID and hostIPC (or set them to false)',
  ),
  rule(
    'PSS-B-PRIVILEGED',
    'baseline',
    'critical',
    'privileged container',
    'remove securityContext.privileged or set it to false',
  ),
  rule(
    'PSS-B-CAPABILITIES',
    'baseline',
    'high',
    'capability added beyond the baseline set',
    'add only capabilities of the baseline list (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT); better, drop ALL',
  ),
  rule(
    'PSS-B-HOST-PATH',
    'baseline',
    'high',
    'hostPath volume',
    'replace the hostPath volume by an emptyDir, a ConfigMap/Secret, or a PersistentVolumeClaim',
  ),
  rule(
    'PSS-B-HOST-PORTS',
    'baseline',
    'high',
    'host port',
    'remove hostPort (expose the port through a Service)',
  ),
  rule(
    'PSS-B-APPARMOR',
    'baseline',
    'high',
    'AppArmor profile overridden or disabled',
    'use the RuntimeDefault or a Localhost AppArmor profile (or leave it unset)',
  ),
  rule(
    'PSS-B-SELINUX',
    'baseline',
    'high',
    'custom SELinux user, role or type',
    'leave seLinuxOptions.user and role unset; type only container_t, container_init_t, container_kvm_t or container_engine_t',
  ),
  rule(
    'PSS-B-PROC-MOUNT',
    'baseline',
    'high',
    'unmasked /proc mount',
    'remove securityContext.procMount or set it to Default',
  ),
  rule(
    'PSS-B-HOST-PROBES',
    'baseline',
    'high',
    'probe or lifecycle hook aimed at another host',
    'remove the host field of httpGet/tcpSocket probes and lifecycle hooks (they target the pod itself)',
  ),
  rule(
    'PSS-B-SECCOMP',
    'baseline',
    'high',
    'seccomp explicitly Unconfined',
    'set seccompProfile.type to RuntimeDefault (or Localhost)',
  ),
  rule(
    'PSS-B-SYSCTLS',
    'baseline',
    'high',
    'unsafe sysctl',
    'set only the safe sysctls (kernel.shm_rmid_forced, net.ipv4.ip_local_port_range, net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies, net.ipv4.ping_group_range, net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time, net.ipv4.tcp_fin_timeout, net.ipv4.tcp_keepalive_intvl, net.ipv4.tcp_keepalive_probes)',
  ),
  // Pod Security Standards: Restricted
  rule(
    'PSS-R-VOLUME-TYPES',
    'restricted',
    'medium',
    'volume type outside the restricted set',
    'use only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret volumes',
  ),
  rule(
    'PSS-R-PROC-MOUNT',
    'restricted',
    'medium',
    'unmasked /proc mount (even in a user namespace)',
    'remove securityContext.procMount or set it to Default',
  ),
  rule(
    'PSS-R-PRIVILEGE-ESCALATION',
    'restricted',
    'medium',
    'privilege escalation not disabled',
    'set securityContext.allowPrivilegeEscalation: false on every container',
  ),
  rule(
    'PSS-R-RUN-AS-NON-ROOT',
    'restricted',
    'medium',
    'may run as root',
    'set spec.securityContext.runAsNonRoot: true (and never false on a container)',
  ),
  rule(
    'PSS-R-RUN-AS-USER',
    'restricted',
    'medium',
    'runs as UID 0',
    'set runAsUser to a non-zero UID (or leave it unset with runAsNonRoot: true)',
  ),
  rule(
    'PSS-R-SECCOMP',
    'restricted',
    'medium',
    'seccomp profile not set to RuntimeDefault or Localhost',
    'set spec.securityContext.seccompProfile.type: RuntimeDefault',
  ),
  rule(
    'PSS-R-CAPABILITIES',
    'restricted',
    'medium',
    'capabilities not dropped, or added beyond NET_BIND_SERVICE',
    'set securityContext.capabilities.drop: [ALL]; add at most NET_BIND_SERVICE',
  ),
  // Further hardening
  rule(
    'BW-READONLY-ROOTFS',
    'hardening',
    'medium',
    'writable root filesystem',
    'set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the program writes (e.g. /tmp)',
  ),
  rule(
    'BW-IMAGE-LATEST',
    'hardening',
    'high',
    'image tag latest (or no tag)',
    'name an exact version and pin it by digest: registry/name@sha256:…',
  ),
  rule(
    'BW-IMAGE-DIGEST',
    'hardening',
    'medium',
    'image not pinned by digest',
    'pin the image by digest (registry/name@sha256:…): a tag can be moved to other bytes',
  ),
  rule(
    'BW-RESOURCE-LIMITS',
    'hardening',
    'medium',
    'no CPU or memory limit',
    'set resources.limits.cpu and resources.limits.memory',
  ),
  rule(
    'BW-RESOURCE-REQUESTS',
    'hardening',
    'low',
    'no CPU or memory request',
    'set resources.requests.cpu and resources.requests.memory',
  ),
  rule(
    'BW-PROBES',
    'hardening',
    'low',
    'no liveness or readiness probe',
    'add livenessProbe and readinessProbe',
  ),
  rule(
    'BW-NETPOL-MISSING',
    'hardening',
    'medium',
    'no NetworkPolicy selects the workload',
    'add a default-deny NetworkPolicy in the namespace and allow only the traffic the workload needs',
  ),
  rule(
    'BW-NETPOL-BROAD',
    'hardening',
    'medium',
    'NetworkPolicy rule open to everything or to a wide CIDR',
    'name the peers (namespace and pod selectors) or a narrow CIDR (/16 or longer for IPv4, /48 for IPv6)',
  ),
  rule(
    'BW-NETPOL-NS-LABEL',
    'hardening',
    'low',
    'namespace selected by a mutable label',
    'select namespaces by kubernetes.io/metadata.name, which the API server sets and namespace owners cannot forge',
  ),
  rule(
    'BW-PRIVILEGED-PORT',
    'hardening',
    'low',
    'container port below 1024',
    'listen on a port >= 1024 (the Service can still expose 443)',
  ),
  rule(
    'BW-HOSTPATH-SENSITIVE',
    'hardening',
    'critical',
    'hostPath onto a sensitive host path',
    'never mount the host root, /etc, /proc, /sys, /dev, /root, /boot, kubelet or container-runtime sockets',
  ),
  rule(
    'BW-SA-TOKEN',
    'hardening',
    'medium',
    'service-account token mounted',
    'set automountServiceAccountToken: false on the pod (or its ServiceAccount) unless it calls the Kubernetes API',
  ),
  rule(
    'BW-SECRET-ENV-LITERAL',
    'hardening',
    'high',
    'secret written as an env literal',
    'move the value to a Secret and mount it as a file',
  ),
  rule(
    'BW-SECRET-ENV-REF',
    'hardening',
    'low',
    'secret passed in an environment variable',
    'mount the Secret as a read-only file: environment variables leak into child processes, crash dumps and logs',
  ),
  rule(
    'BW-RUN-AS-GROUP',
    'hardening',
    'low',
    'runs with the root group (GID 0)',
    'set runAsGroup (and fsGroup) to a non-zero GID',
  ),
  rule(
    'BW-DEFAULT-NAMESPACE',
    'hardening',
    'low',
    'workload in the default namespace',
    'put the workload in its own namespace, labelled for Pod Security restricted',
  ),
  rule(
    'BW-SCHEMA',
    'hardening',
    'high',
    'object does not match the Kubernetes schema',
    'fix the field named in the message (kubectl would reject the object)',
  ),
  rule(
    'BW-UNCHECKED-KIND',
    'hardening',
    'info',
    'object of a kind the checker does not know: not checked',
    'check its pods another way: render them as a Pod or Deployment for deploy check, and keep the namespace labelled Pod Security restricted (admission still checks the pods its controller creates)',
  ),
];

export const RULE_BY_ID: ReadonlyMap<string, Rule> = new Map(RULES.map((r) => [r.id, r]));

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}
