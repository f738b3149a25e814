import { isIP } from 'node:net';
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import {
  Namespace,
  Pod,
  PodTemplate,
  ReplicationController,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { type Document, isAlias, isMap, isScalar, isSeq, parseAllDocuments, Scalar } from 'yaml';
import { BulwarkError } from '../core/index.js';
import { urlCredential } from './credentials.js';
import { RULE_BY_ID, type RuleLevel, type Severity, severityRank } from './rules.js';

/**
 * `bulwark deploy check`: Pod Security Standards (Baseline and Restricted, every control, as the
 * pod-security-admission controller evaluates them) and further hardening rules over any set of
 * manifests. Pure functions of the parsed documents; the rule table is in rules.ts.
 */

export interface ObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

export interface Finding {
  rule: string;
  severity: Severity;
  level: RuleLevel;
  object: ObjectRef;
  /** The file (and document index in it) the object came from. */
  file?: string;
  document?: number;
  /** Field path, e.g. `spec.template.spec.containers[0].securityContext.runAsNonRoot`. */
  path: string;
  message: string;
  fix: string;
}

export interface ManifestDoc {
  file: string;
  document: number;
  object: Record<string, unknown>;
}

export interface CheckOptions {
  /** Pod Security level to check: baseline only, or baseline + restricted (default). */
  level?: 'baseline' | 'restricted';
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function obj(v: unknown): Obj {
  return isObj(v) ? v : {};
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * YAML as kubectl and the API server read it. They convert YAML to JSON with sigs.k8s.io/yaml, a fork
 * of go-yaml v2: YAML 1.1 scalars (`yes`, `on`, `y` are true; `0o0`, `0x0`, `0b0`, `0_0`, `00` are 0)
 * and `<<` merge keys, applied in document order, so a merge after an explicit key overrides it. The
 * `yaml` package reads YAML 1.2 by default, where `privileged: yes` is a string and `<<: {privileged:
 * true}` an unknown key, and its own YAML 1.1 mode lets explicit keys win over merges: either way a
 * privileged container that kubectl creates would pass the check. So documents are parsed with the
 * failsafe schema (every scalar a string) and converted here with go-yaml v2's rules.
 */
const GO_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']);
const GO_FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']);
const GO_NULL = new Set(['', '~', 'null', 'Null', 'NULL']);
/** Go's strconv.ParseInt(s, 0, 64) syntax, after go-yaml has removed every `_`. */
const GO_INT = /^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/;
const GO_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
/** Nodes a document may expand to through aliases, beyond its own: a billion-laughs bound. */
const ALIAS_EXPANSION_BUDGET = 100_000;

/** The value go-yaml v2 gives an untagged plain scalar (a timestamp stays its text, as JSON has it). */
function goPlain(s: string): unknown {
  if (GO_TRUE.has(s)) return true;
  if (GO_FALSE.has(s)) return false;
  if (GO_NULL.has(s)) return null;
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(s)) return Number.NaN;
  const c = s[0]!;
  if (c === '.') return GO_FLOAT.test(s) ? Number(s) : s;
  if (!/[-+0-9]/.test(c) || /^\d{4}-/.test(s)) return s;
  const plain = s.replace(/_/g, '');
  const m = GO_INT.exec(plain);
  if (m) {
    const neg = plain.startsWith('-');
    const body = m[1]!;
    // BigInt reads 0x, 0o and 0b; Go's base 0 also reads a leading 0 as octal.
    const big = BigInt(/^0[0-7]+$/.test(body) ? `0o${body.slice(1)}` : body);
    const v = neg ? -big : big;
    if (v >= -(2n ** 63n) && v < 2n ** 64n) return Number(v);
  }
  if (GO_FLOAT.test(plain)) return Number(plain);
  return s;
}

function parseError(file: string, document: number, message: string): BulwarkError {
  return new BulwarkError('ERR_MANIFEST_PARSE', `${file}: document ${document + 1}: ${message}`, {
    details: { file, document },
  });
}

/** Converts one parsed document (failsafe schema) to plain JSON values as sigs.k8s.io/yaml does. */
function kubeValue(doc: Document, file: string, index: number): unknown {
  let budget = ALIAS_EXPANSION_BUDGET;
  const active = new Set<unknown>();
  const set = (o: Obj, k: string, v: unknown) =>
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  const conv = (node: unknown, viaAlias: boolean): unknown => {
    if (viaAlias && --budget < 0)
      throw parseError(file, index, 'its aliases expand too far (a resource exhaustion attack?)');
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (target === undefined) throw parseError(file, index, `unknown alias *${node.source}`);
      if (active.has(target)) throw parseError(file, index, `anchor &${node.source} contains itself`);
      return conv(target, true);
    }
    if (isScalar(node)) {
      const text = String(node.value ?? '');
      const tag = node.tag;
      if (tag === undefined || tag === '!') return node.type === Scalar.PLAIN ? goPlain(text) : text;
      const short = tag.replace(/^tag:yaml\.org,2002:/, '!!');
      if (short === '!!str' || short === '!!binary') return text;
      if (short === '!!bool' || short === '!!int' || short === '!!float' || short === '!!null') {
        const v = goPlain(text);
        const ok =
          short === '!!bool'
            ? typeof v === 'boolean'
            : short === '!!null'
              ? v === null
              : typeof v === 'number' && (short === '!!float' || Number.isInteger(v));
        if (!ok) throw parseError(file, index, `cannot read ${JSON.stringify(text)} as ${short}`);
        return v;
      }
      return text; // other tags: the scalar's text, as go-yaml gives it
    }
    active.add(node);
    try {
      if (isSeq(node)) return node.items.map((x) => conv(x, viaAlias));
      if (isMap(node)) {
        const out: Obj = {};
        const merge = (src: unknown) => {
          const v = conv(src, viaAlias);
          if (!isObj(v)) throw parseError(file, index, 'a << merge needs a mapping (or a list of mappings)');
          for (const [k, x] of Object.entries(v)) set(out, k, x);
        };
        for (const pair of node.items) {
          const key = pair.key;
          if (isScalar(key) && key.type === Scalar.PLAIN && key.value === '<<' && key.tag === undefined) {
            // go-yaml v2: the merge writes its keys now (over earlier ones, later ones over it); in a list
            // of mappings the first wins, so they are applied last to first.
            const src = isAlias(pair.value) ? pair.value.resolve(doc) : pair.value;
            if (isSeq(src)) for (const m of [...src.items].reverse()) merge(m);
            else merge(pair.value);
            continue;
          }
          const k = conv(key, viaAlias);
          if (k !== null && typeof k === 'object')
            throw parseError(file, index, 'a mapping key is itself a mapping or a list');
          set(out, k === null ? 'null' : String(k), conv(pair.value, viaAlias));
        }
        return out;
      }
      return null;
    } finally {
      active.delete(node);
    }
  };
  return conv(doc.contents, false);
}

/**
 * Parses multi-document YAML as kubectl reads it (see {@link goPlain}); `kind: List` (kubectl's output)
 * and typed lists (`PodList`, whose items may omit their kind) are flattened into their items.
 */
export function parseManifests(text: string, file: string): ManifestDoc[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, schema: 'failsafe' });
  const out: ManifestDoc[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((d, i) => {
    if (d.errors.length > 0) {
      const first = d.errors[0]!;
      const where = first.linePos?.[0] ? `:${first.linePos[0].line}:${first.linePos[0].col}` : '';
      throw new BulwarkError('ERR_MANIFEST_PARSE', `${file}${where}: ${first.message.split('\n')[0]}`, {
        details: { file, document: i },
      });
    }
    const v: unknown = kubeValue(d, file, i);
    if (v === null || v === undefined) return;
    const notObject = () =>
      new BulwarkError(
        'ERR_MANIFEST_PARSE',
        `${file}: document ${i + 1} is not a Kubernetes object (no kind)`,
        {
          details: { file, document: i },
        },
      );
    if (!isObj(v) || typeof v['kind'] !== 'string') throw notObject();
    // kubectl applies every item of a list; an item of a typed list (PodList) without its own kind and
    // apiVersion is read as the list's item kind. A list inside a list is flattened too.
    const flatten = (o: Obj, depth: number): void => {
      const kind = String(o['kind']);
      if (depth < 8 && (kind === 'List' || /List$/.test(kind)) && Array.isArray(o['items'])) {
        const itemKind = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
        for (const item of arr(o['items'])) {
          if (!isObj(item)) throw notObject();
          const typed =
            typeof item['kind'] === 'string'
              ? item
              : itemKind
                ? { apiVersion: o['apiVersion'], kind: itemKind, ...item }
                : undefined;
          if (typed === undefined) throw notObject();
          flatten(typed, depth + 1);
        }
        return;
      }
      out.push({ file, document: i, object: o });
    };
    flatten(v, 0);
  });
  return out;
}

/** Where a kind keeps its pod template. */
const POD_SPEC_PATHS: Record<string, { spec: string[]; meta: string[] }> = {
  Pod: { spec: ['spec'], meta: ['metadata'] },
  PodTemplate: { spec: ['template', 'spec'], meta: ['template', 'metadata'] },
  Deployment: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  StatefulSet: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  DaemonSet: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  ReplicaSet: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  ReplicationController: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  Job: { spec: ['spec', 'template', 'spec'], meta: ['spec', 'template', 'metadata'] },
  CronJob: {
    spec: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
    meta: ['spec', 'jobTemplate', 'spec', 'template', 'metadata'],
  },
};
/**
 * The API groups built into Kubernetes (`''` is the core group, `apiVersion: v1`). Their kinds that hold
 * pods are the keys of POD_SPEC_PATHS; the rest (ConfigMap, Service, PodDisruptionBudget, RBAC...) run
 * nothing. A kind of any other group (a custom resource: Argo Rollout, Knative Service, KServe
 * InferenceService...) is not understood here: reported as BW-UNCHECKED-KIND, never passed silently.
 */
const BUILTIN_GROUPS = new Set([
  '',
  'admissionregistration.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'apps',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'autoscaling',
  'batch',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'extensions',
  'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io',
  'networking.k8s.io',
  'node.k8s.io',
  'policy',
  'rbac.authorization.k8s.io',
  'resource.k8s.io',
  'scheduling.k8s.io',
  'storage.k8s.io',
  'storagemigration.k8s.io',
]);

/** The first `containers` list in `o` (breadth first, bounded): where an unknown kind keeps a pod spec. */
function podSpecPathIn(o: Obj): string | undefined {
  let level: Array<[unknown, string]> = [[o, '']];
  for (let depth = 0; depth < 12 && level.length > 0; depth++) {
    const next: Array<[unknown, string]> = [];
    for (const [v, path] of level) {
      if (Array.isArray(v)) {
        v.forEach((x, i) => {
          next.push([x, `${path}[${i}]`]);
        });
      } else if (isObj(v)) {
        if (Array.isArray(v['containers'])) return path === '' ? '(root)' : path;
        for (const [k, x] of Object.entries(v)) next.push([x, path === '' ? k : `${path}.${k}`]);
      }
    }
    level = next;
  }
  return undefined;
}

const LONG_RUNNING = new Set([
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'ReplicationController',
]);

/** Schema classes (kubernetes-models, from the published OpenAPI) for kinds we check. */
const SCHEMAS: Record<string, { apiVersion: string; make: (o: Obj) => { validate(): void } }> = {
  Pod: { apiVersion: 'v1', make: (o) => new Pod(o as never) },
  PodTemplate: { apiVersion: 'v1', make: (o) => new PodTemplate(o as never) },
  ReplicationController: { apiVersion: 'v1', make: (o) => new ReplicationController(o as never) },
  Service: { apiVersion: 'v1', make: (o) => new Service(o as never) },
  ServiceAccount: { apiVersion: 'v1', make: (o) => new ServiceAccount(o as never) },
  Namespace: { apiVersion: 'v1', make: (o) => new Namespace(o as never) },
  Deployment: { apiVersion: 'apps/v1', make: (o) => new Deployment(o as never) },
  StatefulSet: { apiVersion: 'apps/v1', make: (o) => new StatefulSet(o as never) },
  DaemonSet: { apiVersion: 'apps/v1', make: (o) => new DaemonSet(o as never) },
  ReplicaSet: { apiVersion: 'apps/v1', make: (o) => new ReplicaSet(o as never) },
  Job: { apiVersion: 'batch/v1', make: (o) => new Job(o as never) },
  CronJob: { apiVersion: 'batch/v1', make: (o) => new CronJob(o as never) },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', make: (o) => new NetworkPolicy(o as never) },
};

const BASELINE_CAPS = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  // 1.32
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
  // 1.37
  'net.ipv4.tcp_slow_start_after_idle',
  'net.ipv4.tcp_notsent_lowat',
]);
const SELINUX_TYPES = new Set([
  '',
  'container_t',
  'container_init_t',
  'container_kvm_t',
  'container_engine_t',
]);
const RESTRICTED_VOLUMES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);
const SENSITIVE_HOST_PATHS = [
  '/etc',
  '/proc',
  '/sys',
  '/dev',
  '/root',
  '/boot',
  '/var/lib/kubelet',
  '/var/lib/docker',
  '/var/lib/containerd',
  '/var/run',
  '/run',
  '/var/log',
  '/home',
];
const SECRET_NAME =
  /(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|auth[_-]?key|access[_-]?key|encryption[_-]?key|signing[_-]?key)/i;
/** Values that are settings, not secrets, even under a secret-looking name: flags, ratios, durations. */
const SETTING_VALUE = /^(0|1|[+-]?\d*\.\d+|\d+(\.\d+)?(ms|[smhd])|true|false|yes|no|on|off)$/i;
/** A value of digits only: a PIN, a numeric API key — or a setting such as TOKEN_TTL=3600. */
const INTEGER_VALUE = /^[+-]?\d+$/;
/**
 * Secret words, matched as whole words of the name (see {@link nameWords}): strict enough for a value
 * of digits only, where the substring match of SECRET_NAME would flag BYPASS_CACHE=1 or PASSIVE_MODE=1.
 */
const SECRET_WORDS =
  /(^|_)(PASS|PASSWORDS?|PASSWD|PWD|PASSCODE|PASSPHRASE|SECRETS?|TOKENS?|PINS?|PIN_?CODE|CREDENTIALS?|APIKEY|(API|PRIVATE|AUTH|ACCESS|ENCRYPTION|SIGNING|SECRET|MASTER|CLIENT)_?KEYS?)(_|$)/;
/** Words that make a secret-named variable a setting about the secret (TOKEN_TTL, PASSWORD_MIN_LENGTH). */
const SETTING_WORDS =
  /(^|_)(TTL|TIMEOUT|EXPIRY|EXPIRES?|EXPIRATION|LIFETIME|AGE|INTERVAL|DURATION|PERIOD|DELAY|SECONDS?|SECS?|MS|MILLIS|MINUTES?|MINS?|HOURS?|DAYS?|LEN|LENGTH|SIZE|BITS|BYTES|COUNT|LIMIT|MAX|MIN|RETRIES|RETRY|ATTEMPTS|ROUNDS|ITERATIONS|COST|PORT|VERSION|LEVEL|THRESHOLD|WINDOW|WORKERS|THREADS|ID|INDEX|ENABLED?|DISABLED?|REQUIRED?|USE|ALLOW|SKIP)(_|$)/;
/** The name in upper case with its words separated by `_` (`apiKey` and `api-key` both give `API_KEY`). */
function nameWords(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();
}
/**
 * The `*_FILE` convention (POSTGRES_PASSWORD_FILE=/run/secrets/pg): the value names the mounted file
 * that holds the secret, which is what this checker asks for, not the secret itself.
 */
const SECRET_FILE_NAME = /_(FILE|PATH|DIR|FILENAME)$/i;
const ABSOLUTE_PATH = /^\/[^\s]*$/;
const SECRET_VALUE =
  /(-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bxox[abpr]-[A-Za-z0-9-]+|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.)/;

/** A name that ends in a secret noun (DB_PASSWORD, HSM_PIN, AUTH_TOKEN, API_KEY): its value is the secret. */
const SECRET_LAST_WORD = new RegExp(`${SECRET_WORDS.source.slice(0, -'(_|$)'.length)}$`);
/** Key material under a name ending in KEY (STRIPE_KEY, HMAC_KEY): 16+ key characters, letters and digits. */
const KEY_MATERIAL = /^(?=[^\s]*[A-Za-z])(?=[^\s]*\d)[A-Za-z0-9+/=_.~-]{16,}$/;

/** Whether env `name=value` writes a secret into the manifest (BW-SECRET-ENV-LITERAL). */
function secretLiteral(name: string, value: string): boolean {
  // A URL that carries a credential, whatever the variable's name (one rule with deploy k8s).
  if (SECRET_VALUE.test(value) || urlCredential(value) !== undefined) return true;
  if (SECRET_FILE_NAME.test(name) && ABSOLUTE_PATH.test(value)) return false;
  const words = nameWords(name);
  const setting = SETTING_WORDS.test(words);
  // The name says the value is the secret: any value is one, even shaped like a setting (HSM_PIN=1,
  // DB_PASSWORD=true); a setting word makes it a setting about the secret (TOKEN_TTL, USE_TOKEN).
  if (!setting && SECRET_LAST_WORD.test(words)) return true;
  if (!setting && /(^|_)KEYS?$/.test(words) && KEY_MATERIAL.test(value)) return true;
  if (SETTING_VALUE.test(value)) return false;
  // Digits only: a PIN (HSM_PIN=123456) or a numeric API key is as secret as any other, unless the
  // name says the number is a setting about the secret (TOKEN_TTL=3600, PASSWORD_MIN_LENGTH=12).
  if (INTEGER_VALUE.test(value)) return SECRET_WORDS.test(words) && !SETTING_WORDS.test(words);
  return SECRET_NAME.test(name) || /(^|_)(PINS?|PIN_?CODE)(_|$)/.test(words);
}

class Collector {
  readonly findings: Finding[] = [];
  constructor(private readonly level: 'baseline' | 'restricted') {}
  add(id: string, doc: ManifestDoc, ref: ObjectRef, path: string, message: string): void {
    const r = RULE_BY_ID.get(id);
    if (!r) throw new BulwarkError('ERR_INTERNAL', `unknown rule id ${id}`);
    if (r.level === 'restricted' && this.level === 'baseline') return;
    this.findings.push({
      rule: id,
      severity: r.severity,
      level: r.level,
      object: ref,
      file: doc.file,
      document: doc.document,
      path,
      message,
      fix: r.fix,
    });
  }
}

interface ContainerAt {
  c: Obj;
  path: string;
  kind: 'containers' | 'initContainers' | 'ephemeralContainers';
}

function containersOf(ps: Obj, base: string): ContainerAt[] {
  const out: ContainerAt[] = [];
  for (const kind of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    arr(ps[kind]).forEach((c, i) => {
      if (isObj(c)) out.push({ c, path: `${base}.${kind}[${i}]`, kind });
    });
  }
  return out;
}

function checkPodSpec(
  col: Collector,
  doc: ManifestDoc,
  ref: ObjectRef,
  kind: string,
  ps: Obj,
  meta: Obj,
  base: string,
  metaBase: string,
): void {
  const psc = obj(ps['securityContext']);
  const all = containersOf(ps, base);
  const linux = str(obj(ps['os'])['name']) !== 'windows';
  // Pods in a user namespace: root in the pod is not root on the node (PSS 1.35+ relaxes runAsNonRoot,
  // runAsUser and the baseline /proc mount for them).
  const userNamespace = ps['hostUsers'] === false;
  const annotations = obj(meta['annotations']);

  // --- Baseline ---
  if (obj(psc['windowsOptions'])['hostProcess'] === true) {
    col.add(
      'PSS-B-HOST-PROCESS',
      doc,
      ref,
      `${base}.securityContext.windowsOptions.hostProcess`,
      'pod runs as a Windows HostProcess',
    );
  }
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) {
    if (ps[f] === true)
      col.add('PSS-B-HOST-NAMESPACES', doc, ref, `${base}.${f}`, `${f}: true shares the host's namespace`);
  }
  if (str(obj(psc['appArmorProfile'])['type']) !== undefined) {
    const t = str(obj(psc['appArmorProfile'])['type']);
    if (t !== 'RuntimeDefault' && t !== 'Localhost') {
      col.add(
        'PSS-B-APPARMOR',
        doc,
        ref,
        `${base}.securityContext.appArmorProfile.type`,
        `AppArmor profile ${t}`,
      );
    }
  }
  for (const [k, v] of Object.entries(annotations)) {
    if (k.startsWith('container.apparmor.security.beta.kubernetes.io/')) {
      const s = String(v);
      if (s !== 'runtime/default' && !s.startsWith('localhost/')) {
        col.add('PSS-B-APPARMOR', doc, ref, `${metaBase}.annotations["${k}"]`, `AppArmor annotation ${s}`);
      }
    }
    if (
      (k === 'seccomp.security.alpha.kubernetes.io/pod' ||
        k.startsWith('container.seccomp.security.alpha.kubernetes.io/')) &&
      String(v) === 'unconfined'
    ) {
      col.add('PSS-B-SECCOMP', doc, ref, `${metaBase}.annotations["${k}"]`, 'seccomp annotation unconfined');
    }
  }
  checkSelinux(col, doc, ref, obj(psc['seLinuxOptions']), `${base}.securityContext.seLinuxOptions`);
  if (str(obj(psc['seccompProfile'])['type']) === 'Unconfined') {
    col.add(
      'PSS-B-SECCOMP',
      doc,
      ref,
      `${base}.securityContext.seccompProfile.type`,
      'pod seccomp profile is Unconfined',
    );
  }
  arr(psc['sysctls']).forEach((s, i) => {
    const name = str(obj(s)['name']) ?? '';
    if (!SAFE_SYSCTLS.has(name)) {
      col.add(
        'PSS-B-SYSCTLS',
        doc,
        ref,
        `${base}.securityContext.sysctls[${i}].name`,
        `unsafe sysctl ${name}`,
      );
    }
  });
  arr(ps['volumes']).forEach((v, i) => {
    const vol = obj(v);
    const hp = obj(vol['hostPath']);
    if (vol['hostPath'] !== undefined) {
      col.add(
        'PSS-B-HOST-PATH',
        doc,
        ref,
        `${base}.volumes[${i}].hostPath`,
        `volume ${String(vol['name'])} mounts host path ${String(hp['path'])}`,
      );
      const p = (str(hp['path']) ?? '/').replace(/\/+$/, '') || '/';
      if (
        p === '/' ||
        /(docker|containerd|crio|cri-dockerd)\.sock$/.test(p) ||
        SENSITIVE_HOST_PATHS.some((s) => p === s || p.startsWith(`${s}/`))
      ) {
        col.add(
          'BW-HOSTPATH-SENSITIVE',
          doc,
          ref,
          `${base}.volumes[${i}].hostPath.path`,
          `host path ${p} exposes the node`,
        );
      }
    }
    // --- Restricted: volume types ---
    for (const key of Object.keys(vol)) {
      if (key === 'name') continue;
      if (!RESTRICTED_VOLUMES.has(key)) {
        col.add(
          'PSS-R-VOLUME-TYPES',
          doc,
          ref,
          `${base}.volumes[${i}].${key}`,
          `volume ${String(vol['name'])} is of type ${key}`,
        );
      }
    }
  });

  for (const { c, path } of all) {
    const sc = obj(c['securityContext']);
    if (obj(sc['windowsOptions'])['hostProcess'] === true) {
      col.add(
        'PSS-B-HOST-PROCESS',
        doc,
        ref,
        `${path}.securityContext.windowsOptions.hostProcess`,
        'container runs as a Windows HostProcess',
      );
    }
    if (sc['privileged'] === true) {
      col.add(
        'PSS-B-PRIVILEGED',
        doc,
        ref,
        `${path}.securityContext.privileged`,
        `container ${String(c['name'])} is privileged`,
      );
    }
    const caps = obj(sc['capabilities']);
    arr(caps['add']).forEach((cap, i) => {
      const name = String(cap);
      if (!BASELINE_CAPS.has(name)) {
        col.add(
          'PSS-B-CAPABILITIES',
          doc,
          ref,
          `${path}.securityContext.capabilities.add[${i}]`,
          `adds capability ${name}`,
        );
      }
    });
    arr(c['ports']).forEach((p, i) => {
      const hostPort = obj(p)['hostPort'];
      if (typeof hostPort === 'number' && hostPort !== 0) {
        col.add('PSS-B-HOST-PORTS', doc, ref, `${path}.ports[${i}].hostPort`, `host port ${hostPort}`);
      }
    });
    const aa = str(obj(sc['appArmorProfile'])['type']);
    if (aa !== undefined && aa !== 'RuntimeDefault' && aa !== 'Localhost') {
      col.add(
        'PSS-B-APPARMOR',
        doc,
        ref,
        `${path}.securityContext.appArmorProfile.type`,
        `AppArmor profile ${aa}`,
      );
    }
    checkSelinux(col, doc, ref, obj(sc['seLinuxOptions']), `${path}.securityContext.seLinuxOptions`);
    const pm = str(sc['procMount']);
    if (pm !== undefined && pm !== 'Default') {
      col.add('PSS-R-PROC-MOUNT', doc, ref, `${path}.securityContext.procMount`, `procMount ${pm}`);
    }
    if (pm !== undefined && pm !== 'Default' && !userNamespace) {
      col.add('PSS-B-PROC-MOUNT', doc, ref, `${path}.securityContext.procMount`, `procMount ${pm}`);
    }
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      for (const h of ['httpGet', 'tcpSocket']) {
        const host = obj(obj(c[probe])[h])['host'];
        if (host !== undefined && host !== '') {
          col.add(
            'PSS-B-HOST-PROBES',
            doc,
            ref,
            `${path}.${probe}.${h}.host`,
            `${probe} targets host ${String(host)}`,
          );
        }
      }
    }
    for (const hook of ['postStart', 'preStop']) {
      for (const h of ['httpGet', 'tcpSocket']) {
        const host = obj(obj(obj(c['lifecycle'])[hook])[h])['host'];
        if (host !== undefined && host !== '') {
          col.add(
            'PSS-B-HOST-PROBES',
            doc,
            ref,
            `${path}.lifecycle.${hook}.${h}.host`,
            `${hook} hook targets host ${String(host)}`,
          );
        }
      }
    }
    if (str(obj(sc['seccompProfile'])['type']) === 'Unconfined') {
      col.add(
        'PSS-B-SECCOMP',
        doc,
        ref,
        `${path}.securityContext.seccompProfile.type`,
        'container seccomp profile is Unconfined',
      );
    }
  }

  // --- Restricted ---
  if (!userNamespace) {
    // runAsNonRoot: true at pod level (and never false on a container), or true on every container.
    const podNonRoot = psc['runAsNonRoot'];
    if (podNonRoot === false) {
      col.add(
        'PSS-R-RUN-AS-NON-ROOT',
        doc,
        ref,
        `${base}.securityContext.runAsNonRoot`,
        'runAsNonRoot is false',
      );
    }
    for (const { c, path } of all) {
      const v = obj(c['securityContext'])['runAsNonRoot'];
      if (v === false) {
        col.add(
          'PSS-R-RUN-AS-NON-ROOT',
          doc,
          ref,
          `${path}.securityContext.runAsNonRoot`,
          `container ${String(c['name'])} sets runAsNonRoot: false`,
        );
      } else if (podNonRoot !== true && v !== true) {
        col.add(
          'PSS-R-RUN-AS-NON-ROOT',
          doc,
          ref,
          `${path}.securityContext.runAsNonRoot`,
          `container ${String(c['name'])} may run as root (runAsNonRoot unset here and on the pod)`,
        );
      }
    }
    if (psc['runAsUser'] === 0)
      col.add('PSS-R-RUN-AS-USER', doc, ref, `${base}.securityContext.runAsUser`, 'pod runs as UID 0');
    for (const { c, path } of all) {
      if (obj(c['securityContext'])['runAsUser'] === 0) {
        col.add(
          'PSS-R-RUN-AS-USER',
          doc,
          ref,
          `${path}.securityContext.runAsUser`,
          `container ${String(c['name'])} runs as UID 0`,
        );
      }
    }
  }
  if (linux) {
    const podSeccomp = str(obj(psc['seccompProfile'])['type']);
    const okType = (t: string | undefined) => t === 'RuntimeDefault' || t === 'Localhost';
    if (podSeccomp !== undefined && !okType(podSeccomp)) {
      col.add(
        'PSS-R-SECCOMP',
        doc,
        ref,
        `${base}.securityContext.seccompProfile.type`,
        `pod seccomp profile ${podSeccomp}`,
      );
    }
    for (const { c, path } of all) {
      const t = str(obj(obj(c['securityContext'])['seccompProfile'])['type']);
      if (t !== undefined ? !okType(t) : !okType(podSeccomp)) {
        col.add(
          'PSS-R-SECCOMP',
          doc,
          ref,
          `${path}.securityContext.seccompProfile.type`,
          `container ${String(c['name'])} has no RuntimeDefault/Localhost seccomp profile (here or on the pod)`,
        );
      }
    }
    for (const { c, path } of all) {
      const sc = obj(c['securityContext']);
      if (sc['allowPrivilegeEscalation'] !== false) {
        col.add(
          'PSS-R-PRIVILEGE-ESCALATION',
          doc,
          ref,
          `${path}.securityContext.allowPrivilegeEscalation`,
          `container ${String(c['name'])} does not set allowPrivilegeEscalation: false`,
        );
      }
      const caps = obj(sc['capabilities']);
      if (!arr(caps['drop']).some((d) => String(d) === 'ALL')) {
        col.add(
          'PSS-R-CAPABILITIES',
          doc,
          ref,
          `${path}.securityContext.capabilities.drop`,
          `container ${String(c['name'])} does not drop ALL capabilities`,
        );
      }
      arr(caps['add']).forEach((cap, i) => {
        if (String(cap) !== 'NET_BIND_SERVICE') {
          col.add(
            'PSS-R-CAPABILITIES',
            doc,
            ref,
            `${path}.securityContext.capabilities.add[${i}]`,
            `adds capability ${String(cap)}`,
          );
        }
      });
    }
  }

  // --- Further hardening ---
  for (const { c, path, kind: ck } of all) {
    if (ck === 'ephemeralContainers') continue; // debug containers are added by hand, not shipped
    const sc = obj(c['securityContext']);
    const name = String(c['name']);
    if (sc['readOnlyRootFilesystem'] !== true) {
      col.add(
        'BW-READONLY-ROOTFS',
        doc,
        ref,
        `${path}.securityContext.readOnlyRootFilesystem`,
        `container ${name} can write its root filesystem`,
      );
    }
    const image = str(c['image']) ?? '';
    const { tag, digest } = splitImage(image);
    if (digest === undefined && (tag === undefined || tag === 'latest')) {
      col.add('BW-IMAGE-LATEST', doc, ref, `${path}.image`, `image ${image || '(none)'} follows latest`);
    }
    if (digest === undefined)
      col.add(
        'BW-IMAGE-DIGEST',
        doc,
        ref,
        `${path}.image`,
        `image ${image || '(none)'} is not pinned by digest`,
      );
    const res = obj(c['resources']);
    for (const r of ['cpu', 'memory']) {
      if (obj(res['limits'])[r] === undefined) {
        col.add(
          'BW-RESOURCE-LIMITS',
          doc,
          ref,
          `${path}.resources.limits.${r}`,
          `container ${name} has no ${r} limit`,
        );
      }
      if (obj(res['requests'])[r] === undefined && obj(res['limits'])[r] === undefined) {
        col.add(
          'BW-RESOURCE-REQUESTS',
          doc,
          ref,
          `${path}.resources.requests.${r}`,
          `container ${name} has no ${r} request`,
        );
      }
    }
    if (ck === 'containers' && LONG_RUNNING.has(kind)) {
      for (const p of ['livenessProbe', 'readinessProbe']) {
        if (c[p] === undefined)
          col.add('BW-PROBES', doc, ref, `${path}.${p}`, `container ${name} has no ${p}`);
      }
    }
    arr(c['ports']).forEach((p, i) => {
      const port = obj(p)['containerPort'];
      if (typeof port === 'number' && port < 1024) {
        col.add(
          'BW-PRIVILEGED-PORT',
          doc,
          ref,
          `${path}.ports[${i}].containerPort`,
          `container ${name} listens on privileged port ${port}`,
        );
      }
    });
    arr(c['env']).forEach((e, i) => {
      const env = obj(e);
      const n = str(env['name']) ?? '';
      // An unquoted PIN or numeric key (`value: 123456`) is a YAML number, not a string: read it as
      // written (kubectl would refuse the type, but the secret is in the manifest all the same).
      const raw = env['value'];
      const value =
        typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'bigint' ? String(raw) : '';
      if (value !== '' && secretLiteral(n, value)) {
        col.add(
          'BW-SECRET-ENV-LITERAL',
          doc,
          ref,
          `${path}.env[${i}].value`,
          `env ${n} holds a secret-looking literal`,
        );
      }
      if (obj(env['valueFrom'])['secretKeyRef'] !== undefined) {
        col.add(
          'BW-SECRET-ENV-REF',
          doc,
          ref,
          `${path}.env[${i}].valueFrom.secretKeyRef`,
          `env ${n} is read from a Secret`,
        );
      }
    });
    arr(c['envFrom']).forEach((e, i) => {
      if (obj(e)['secretRef'] !== undefined) {
        col.add(
          'BW-SECRET-ENV-REF',
          doc,
          ref,
          `${path}.envFrom[${i}].secretRef`,
          'a whole Secret is loaded into the environment',
        );
      }
    });
    const group = sc['runAsGroup'] ?? psc['runAsGroup'];
    if (group === undefined || group === 0) {
      col.add(
        'BW-RUN-AS-GROUP',
        doc,
        ref,
        `${path}.securityContext.runAsGroup`,
        `container ${name} runs with GID ${group === 0 ? '0' : 'unset (the image default, usually 0)'}`,
      );
    }
  }
  // The kubelet adds fsGroup and supplementalGroups to every container's groups: GID 0 there puts the
  // process in the root group as surely as runAsGroup: 0 (once per pod: it is a pod setting).
  if (psc['fsGroup'] === 0)
    col.add(
      'BW-RUN-AS-GROUP',
      doc,
      ref,
      `${base}.securityContext.fsGroup`,
      'fsGroup 0 adds the root group to every container',
    );
  arr(psc['supplementalGroups']).forEach((g, i) => {
    if (g === 0)
      col.add(
        'BW-RUN-AS-GROUP',
        doc,
        ref,
        `${base}.securityContext.supplementalGroups[${i}]`,
        'supplemental group 0 adds the root group to every container',
      );
  });
}

function checkSelinux(col: Collector, doc: ManifestDoc, ref: ObjectRef, se: Obj, path: string): void {
  const t = se['type'];
  if (t !== undefined && !SELINUX_TYPES.has(String(t)))
    col.add('PSS-B-SELINUX', doc, ref, `${path}.type`, `SELinux type ${String(t)}`);
  for (const f of ['user', 'role']) {
    if (se[f] !== undefined && se[f] !== '')
      col.add('PSS-B-SELINUX', doc, ref, `${path}.${f}`, `SELinux ${f} ${String(se[f])}`);
  }
}

/** Splits `registry/name:tag@sha256:…` into its tag and digest. */
export function splitImage(image: string): { tag?: string; digest?: string } {
  const at = image.indexOf('@');
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const nameTag = at >= 0 ? image.slice(0, at) : image;
  const lastSlash = nameTag.lastIndexOf('/');
  const colon = nameTag.indexOf(':', lastSlash + 1);
  const tag = colon >= 0 ? nameTag.slice(colon + 1) : undefined;
  return {
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined && /^sha256:[a-f0-9]{64}$/.test(digest) ? { digest } : {}),
  };
}

/** Label selector semantics (matchLabels AND matchExpressions). */
function selects(selector: Obj, labels: Obj): boolean {
  for (const [k, v] of Object.entries(obj(selector['matchLabels']))) if (labels[k] !== v) return false;
  for (const e of arr(selector['matchExpressions'])) {
    const ex = obj(e);
    const key = String(ex['key']);
    const values = arr(ex['values']).map(String);
    const has = Object.hasOwn(labels, key);
    const val = has ? String(labels[key]) : undefined;
    switch (ex['operator']) {
      case 'In':
        if (!has || !values.includes(val!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(val!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** The directions a NetworkPolicy restricts: its policyTypes, or by default Ingress (and Egress with egress rules). */
function policyTypes(spec: Obj): string[] {
  if (Array.isArray(spec['policyTypes'])) return arr(spec['policyTypes']).map(String);
  return spec['egress'] !== undefined ? ['Ingress', 'Egress'] : ['Ingress'];
}

function checkNetworkPolicy(col: Collector, doc: ManifestDoc, ref: ObjectRef, np: Obj): void {
  const spec = obj(np['spec']);
  const peers = (rules: unknown[], field: 'from' | 'to', dir: string) =>
    rules.forEach((r, i) => {
      const rule = obj(r);
      if (rule[field] === undefined || arr(rule[field]).length === 0) {
        col.add(
          'BW-NETPOL-BROAD',
          doc,
          ref,
          `spec.${dir}[${i}].${field}`,
          `${dir} rule ${i} has no ${field}: it allows every peer`,
        );
        return;
      }
      arr(rule[field]).forEach((p, j) => {
        const peer = obj(p);
        const ip = obj(peer['ipBlock']);
        const c = str(ip['cidr']);
        if (c !== undefined) {
          const [addr, len] = c.split('/');
          const v = isIP(addr ?? '');
          const n = Number(len);
          if ((v === 4 && n < 16) || (v === 6 && n < 48)) {
            col.add(
              'BW-NETPOL-BROAD',
              doc,
              ref,
              `spec.${dir}[${i}].${field}[${j}].ipBlock.cidr`,
              `${dir} allowed to/from ${c}`,
            );
          }
        }
        const ns = peer['namespaceSelector'];
        if (isObj(ns)) {
          const exprs = arr(ns['matchExpressions']).map(obj);
          if (Object.keys(obj(ns['matchLabels'])).length === 0 && exprs.length === 0) {
            col.add(
              'BW-NETPOL-BROAD',
              doc,
              ref,
              `spec.${dir}[${i}].${field}[${j}].namespaceSelector`,
              'an empty namespaceSelector selects every namespace',
            );
          } else if (
            Object.keys(obj(ns['matchLabels'])).length === 0 &&
            exprs.every(
              (e) =>
                e['operator'] === 'NotIn' ||
                (e['operator'] === 'Exists' && e['key'] === 'kubernetes.io/metadata.name'),
            )
          ) {
            // Only exclusions (NotIn) or the label every namespace carries: as open as an empty selector,
            // minus a few names.
            col.add(
              'BW-NETPOL-BROAD',
              doc,
              ref,
              `spec.${dir}[${i}].${field}[${j}].namespaceSelector.matchExpressions`,
              'this namespaceSelector selects every namespace but the ones it excludes',
            );
          }
          // Expressions select by labels as matchLabels does: a namespace owner who sets, changes or
          // removes a mutable label gets in whatever the operator (In, NotIn, Exists, DoesNotExist).
          exprs.forEach((e, k) => {
            const key = str(e['key']);
            if (key !== undefined && key !== 'kubernetes.io/metadata.name')
              col.add(
                'BW-NETPOL-NS-LABEL',
                doc,
                ref,
                `spec.${dir}[${i}].${field}[${j}].namespaceSelector.matchExpressions[${k}].key`,
                `namespaces selected by the label ${key}, which their owners can set`,
              );
          });
          for (const k of Object.keys(obj(ns['matchLabels']))) {
            if (k !== 'kubernetes.io/metadata.name') {
              col.add(
                'BW-NETPOL-NS-LABEL',
                doc,
                ref,
                `spec.${dir}[${i}].${field}[${j}].namespaceSelector.matchLabels["${k}"]`,
                `namespaces selected by the label ${k}, which their owners can set`,
              );
            }
          }
        }
      });
    });
  peers(arr(spec['ingress']), 'from', 'ingress');
  peers(arr(spec['egress']), 'to', 'egress');
}

function refOf(o: Obj): ObjectRef {
  const m = obj(o['metadata']);
  return {
    kind: String(o['kind']),
    namespace: str(m['namespace']) ?? (o['kind'] === 'Namespace' ? '' : 'default'),
    name: str(m['name']) ?? '(unnamed)',
  };
}

function dig(o: Obj, path: readonly string[]): Obj {
  let cur: unknown = o;
  for (const p of path) cur = obj(cur)[p];
  return obj(cur);
}

/** Checks a set of manifests; findings are sorted by severity (highest first), then object and path. */
export function checkManifests(docs: readonly ManifestDoc[], opts: CheckOptions = {}): Finding[] {
  const col = new Collector(opts.level ?? 'restricted');
  const policies = docs.filter((d) => d.object['kind'] === 'NetworkPolicy');
  const accounts = new Map<string, Obj>();
  for (const d of docs)
    if (d.object['kind'] === 'ServiceAccount')
      accounts.set(`${refOf(d.object).namespace}/${refOf(d.object).name}`, d.object);

  for (const doc of docs) {
    const o = doc.object;
    const kind = String(o['kind']);
    const ref = refOf(o);
    const schema = SCHEMAS[kind];
    if (schema && o['apiVersion'] === schema.apiVersion) {
      try {
        schema.make(o).validate();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        const m = /data\/(\S+)/.exec(msg);
        col.add(
          'BW-SCHEMA',
          doc,
          ref,
          m ? m[1]!.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.') : '(root)',
          msg.split('\n')[0]!,
        );
      }
    }
    if (kind === 'NetworkPolicy') checkNetworkPolicy(col, doc, ref, o);
    const at = POD_SPEC_PATHS[kind];
    if (!at) {
      const apiVersion = str(o['apiVersion']);
      const group = apiVersion?.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
      if (apiVersion === undefined || !BUILTIN_GROUPS.has(group)) {
        const pods = podSpecPathIn(o);
        col.add(
          'BW-UNCHECKED-KIND',
          doc,
          ref,
          pods ?? '(root)',
          `${apiVersion ?? '(no apiVersion)'} ${kind} is not a kind deploy check knows: ${
            pods
              ? `the pod spec at ${pods} was not checked`
              : 'not checked (a pod template in it would not be seen)'
          }`,
        );
      }
      continue;
    }
    const ps = dig(o, at.spec);
    const meta = dig(o, at.meta);
    const base = at.spec.join('.');
    checkPodSpec(col, doc, ref, kind, ps, meta, base, at.meta.join('.'));
    if (kind === 'PodTemplate') continue;
    if (ref.namespace === 'default') {
      col.add(
        'BW-DEFAULT-NAMESPACE',
        doc,
        ref,
        'metadata.namespace',
        `${kind} ${ref.name} is in the default namespace`,
      );
    }
    // Service-account token: the pod's setting wins; unset, its ServiceAccount's (when in the set).
    if (ps['automountServiceAccountToken'] !== false) {
      const sa = accounts.get(`${ref.namespace}/${str(ps['serviceAccountName']) ?? 'default'}`);
      if (ps['automountServiceAccountToken'] === true || sa?.['automountServiceAccountToken'] !== false) {
        col.add(
          'BW-SA-TOKEN',
          doc,
          ref,
          `${base}.automountServiceAccountToken`,
          'the pod gets a Kubernetes API token it likely does not need',
        );
      }
    }
    // automountServiceAccountToken: false does not stop a projected token volume: without an audience
    // it is a token for the Kubernetes API itself (one with an audience is for another service: Vault...).
    arr(ps['volumes']).forEach((v, i) => {
      arr(obj(obj(v)['projected'])['sources']).forEach((src, j) => {
        const t = obj(src)['serviceAccountToken'];
        if (t !== undefined && !str(obj(t)['audience']))
          col.add(
            'BW-SA-TOKEN',
            doc,
            ref,
            `${base}.volumes[${i}].projected.sources[${j}].serviceAccountToken`,
            'a projected Kubernetes API token (no audience) is mounted',
          );
      });
    });
    const podLabels = obj(meta['labels']);
    const inNs = policies.filter((p) => refOf(p.object).namespace === ref.namespace);
    if (inNs.length === 0) {
      col.add(
        'BW-NETPOL-MISSING',
        doc,
        ref,
        'metadata.namespace',
        `no NetworkPolicy in namespace ${ref.namespace} among the files checked`,
      );
    } else {
      const selecting = inNs.filter((p) => selects(obj(obj(p.object['spec'])['podSelector']), podLabels));
      if (selecting.length === 0) {
        col.add(
          'BW-NETPOL-MISSING',
          doc,
          ref,
          `${at.meta.join('.')}.labels`,
          `no NetworkPolicy in namespace ${ref.namespace} selects these pods`,
        );
      } else {
        // A policy restricts only the directions of its policyTypes: an Ingress-only policy leaves the
        // pods' egress (exfiltration, callbacks) open, as if no policy selected them.
        for (const dir of ['Ingress', 'Egress'] as const) {
          if (!selecting.some((p) => policyTypes(obj(p.object['spec'])).includes(dir)))
            col.add(
              'BW-NETPOL-MISSING',
              doc,
              ref,
              `${at.meta.join('.')}.labels`,
              `no NetworkPolicy in namespace ${ref.namespace} restricts the ${dir.toLowerCase()} of these pods`,
            );
        }
      }
    }
  }
  return col.findings.sort(
    (a, b) =>
      severityRank(b.severity) - severityRank(a.severity) ||
      a.rule.localeCompare(b.rule) ||
      `${a.object.namespace}/${a.object.kind}/${a.object.name}`.localeCompare(
        `${b.object.namespace}/${b.object.kind}/${b.object.name}`,
      ) ||
      a.path.localeCompare(b.path),
  );
}

/** Whether any finding is at or above `failOn`. */
export function failsAt(findings: readonly Finding[], failOn: Severity): Finding[] {
  return findings.filter((f) => severityRank(f.severity) >= severityRank(failOn));
}
