/**
 * `bulwark serve` configuration (`bulwark.yaml`), validated at start with strict zod schemas: an unknown
 * key, a missing one or a wrong type is `ERR_CONFIG_INVALID` naming the key path (`server.tls.cert`).
 * Reference: docs/gateway.md.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { digestSchema } from '../audit/index.js';
import { loadConfig, validateConfig } from '../core/index.js';
import { authConfigSchema, policyConfigSchema } from './peers.js';

const path = z.string().min(1, 'expected a file path');
const port = z.number().int().min(0).max(65535);
/** Model and version names appear in URLs and metric labels: a closed alphabet. */
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'expected letters, digits, _ . -');

export const tlsConfigSchema = z
  .strictObject({
    cert: path,
    key: path,
    /** CA bundle that client certificates must chain to (mutual TLS). */
    clientCa: path.optional(),
    /**
     * PEM file of CRLs (`X509 CRL` blocks), one for each CA of clientCa, handed to Node's TLS (`crl`):
     * a revoked client certificate fails the handshake (RFC 5280 §6.3; offline, no OCSP). Reloaded with
     * the certificates.
     */
    clientCrl: path.optional(),
    clientAuth: z.enum(['none', 'request', 'require']).default('none'),
    /** Reload certificates when their files change (SIGHUP always reloads). */
    watch: z.boolean().default(false),
    /** A connection that has not completed its TLS handshake in this time is closed (ms). */
    handshakeTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .refine((t) => t.clientAuth === 'none' || t.clientCa !== undefined, {
    message: 'clientAuth request/require needs clientCa',
    path: ['clientCa'],
  })
  .refine((t) => t.clientCrl === undefined || t.clientCa !== undefined, {
    message: 'clientCrl needs clientCa (the CAs that issued the CRLs)',
    path: ['clientCrl'],
  });

export const serverConfigSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(8443),
    tls: tlsConfigSchema.optional(),
    /**
     * Serve plain HTTP without TLS. Only for a sidecar behind a TLS-terminating mesh on loopback;
     * logged as a warning at every start.
     */
    insecurePlaintext: z.boolean().default(false),
    bodyLimitBytes: z
      .number()
      .int()
      .min(64)
      .max(64 << 20)
      .default(1 << 20),
    maxDepth: z.number().int().min(2).max(64).default(8),
    /** Seconds a graceful shutdown waits for requests in flight. */
    drainSeconds: z.number().min(0).max(600).default(10),
    /** Idle keep-alive timeout of client connections (ms). */
    keepAliveMs: z.number().int().min(100).max(600_000).default(65_000),
    /** Time a client has to send a request's headers (ms); past it: 408 and the connection is closed. */
    headersTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Time a client has to send a whole request, body included (ms); past it: 408, closed. */
    requestTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
  })
  .refine((s) => s.tls !== undefined || s.insecurePlaintext, {
    message: 'TLS is required (set server.tls, or server.insecurePlaintext: true for a loopback sidecar)',
    path: ['tls'],
  })
  .refine((s) => s.headersTimeoutMs <= s.requestTimeoutMs, {
    message: 'must not be longer than server.requestTimeoutMs',
    path: ['headersTimeoutMs'],
  });

export const metricsConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(9464),
});

export const limitsConfigSchema = z
  .strictObject({
    backend: z.enum(['memory', 'redis']).default('memory'),
    redis: z
      .strictObject({
        url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
        keyPrefix: z.string().min(1).max(64).default('bulwark:'),
      })
      .optional(),
    /** Sustained requests per second per principal and model. */
    requestsPerSecond: z.number().int().min(1).max(1_000_000).default(100),
    /** Requests allowed in one burst (default: requestsPerSecond). */
    burst: z.number().int().min(1).max(10_000_000).optional(),
    /** Total rows a principal may query per model per window (against extraction; off when absent). */
    queryBudget: z
      .strictObject({
        queries: z.number().int().min(1),
        windowSeconds: z.number().int().min(1).default(86_400),
      })
      .optional(),
  })
  .refine((l) => l.backend === 'memory' || l.redis !== undefined, {
    message: 'backend redis needs redis.url',
    path: ['redis'],
  })
  // The limiter's window is burst / rate seconds, and its windows are whole seconds: any other burst
  // would enforce another rate than the one configured (burst 10 at 100/s allowed 10/s; 5 at 2/s, 1.7/s).
  .refine((l) => l.burst === undefined || l.burst % l.requestsPerSecond === 0, {
    message:
      'must be a multiple of requestsPerSecond (the window holding a burst is burst / rate whole seconds)',
    path: ['burst'],
  });

export const outputConfigSchema = z.strictObject({
  /** Labels returned per row, most probable first. */
  topK: z.number().int().min(1).max(1000).default(1),
  /** Return the probabilities of the top-k labels (false: labels only). */
  probabilities: z.boolean().default(true),
  /** Decimal digits probabilities are rounded to. */
  roundDigits: z.number().int().min(0).max(8).default(2),
  /** Noise added to probabilities before rounding (Laplace or Gaussian scale), from a CSPRNG. */
  noise: z
    .strictObject({
      kind: z.enum(['laplace', 'gaussian']).default('laplace'),
      scale: z.number().min(0).max(1),
    })
    .optional(),
});

export const modelConfigSchema = z
  .strictObject({
    name,
    /** The version served (default: the package's; '1' for a plain ONNX file). */
    version: name.optional(),
    /** A protected model package (issue 7); requires keyring and trust. */
    package: path.optional(),
    /**
     * The model name the package must carry (its signed manifest's `model.name`; default: `name`), so a
     * validly signed package of another model put at the path is not served under this name.
     */
    packageModel: z.string().min(1).max(256).optional(),
    /**
     * Pin the package: its SHA-256 (`sha256:<hex>`, as `bulwark model verify` and the audit log's
     * model.loaded give it). Another package at the path, even validly signed, such as an older version
     * put back (a rollback), is refused. Without it, pin the version with `version`.
     */
    digest: digestSchema.optional(),
    keyring: path.optional(),
    /** Where the keyring passphrase comes from (default: env BULWARK_PASSPHRASE). */
    keyringPassphrase: z
      .union([z.strictObject({ file: path }), z.strictObject({ env: z.string().min(1) })])
      .optional(),
    /** The provider the keyring was created with; a keyring file naming another is refused. */
    keyringProvider: z.string().min(1).default('local'),
    trust: path.optional(),
    /** A plain ONNX file from `bulwark train`: unsigned and unencrypted, only with insecure: true. */
    onnx: path.optional(),
    insecure: z.boolean().default(false),
    /** The data schema requests are validated against (YAML from `bulwark schema infer`). */
    schema: path.optional(),
    threads: z.number().int().min(1).max(64).default(1),
    maxRows: z.number().int().min(1).max(100_000).default(256),
    /**
     * Most bytes the tensors of one run of the model may hold, at maxRows rows, as bounded from the
     * graph before it is opened (docs/model-package.md); a model past it is refused at load. 1 GiB.
     */
    maxMemoryBytes: z
      .number()
      .int()
      .min(2 ** 20)
      .max(2 ** 40)
      .default(2 ** 30),
    output: outputConfigSchema.default({ topK: 1, probabilities: true, roundDigits: 2 }),
    detectors: z
      .strictObject({ mahalanobis: path.optional(), stateful: path.optional(), prada: path.optional() })
      .default({}),
  })
  .refine((m) => (m.package === undefined) !== (m.onnx === undefined), {
    message: 'give exactly one of package or onnx',
    path: ['package'],
  })
  .refine((m) => m.onnx === undefined || m.insecure, {
    message: 'a plain ONNX model is unsigned: set insecure: true to serve it anyway',
    path: ['insecure'],
  })
  .refine((m) => m.onnx === undefined || m.schema !== undefined, {
    message: 'a plain ONNX model needs schema',
    path: ['schema'],
  })
  .refine((m) => m.package !== undefined || (m.digest === undefined && m.packageModel === undefined), {
    message: 'digest and packageModel apply to a package',
    path: ['digest'],
  })
  .refine((m) => m.package === undefined || (m.keyring !== undefined && m.trust !== undefined), {
    message: 'a model package needs keyring and trust',
    path: ['keyring'],
  });

export const detectorsConfigSchema = z.strictObject({
  /** enforce: a flagged request is denied (403); monitor: recorded and counted only. */
  mode: z.enum(['enforce', 'monitor']).default('enforce'),
  /**
   * With `limits.backend: redis`, the stateful and PRADA detectors keep each caller's history in that
   * Redis (shared by the replicas); a caller's keys expire this long after its last query.
   */
  stateTtlSeconds: z.number().int().min(1).max(31_536_000).default(86_400),
});

export const auditConfigSchema = z.strictObject({
  /** A SQLite file path or a postgres:// URL. */
  store: z.string().min(1),
  /** PostgreSQL schema holding the log's tables (default bulwark_audit). */
  schema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected a lower-case SQL identifier')
    .optional(),
  /** File holding the checkpoint signing key (`PRIVATE+KEY+origin+id+key`). */
  signer: path,
  /** Seconds between signed checkpoints (0: only at shutdown). */
  checkpointSeconds: z.number().int().min(0).max(86_400).default(60),
  /**
   * Where the log is written: on the event loop (`inline`, the default) or on a worker thread of its
   * own (`thread`: validation, hashing and the store's writes off the event loop, at the price of
   * more CPU in all; docs/gateway.md has the measurements).
   */
  writer: z.enum(['inline', 'thread']).default('inline'),
  /**
   * Refusals get an entry of their own up to `perSecond` (with bursts of `burst`) per caller, all
   * anonymous requests sharing one allowance; beyond it they are counted, and the counts written as one
   * `request.denied.summary` entry every `summarySeconds`. Bounds what unauthenticated traffic can add
   * to the log (docs/gateway.md, "Refusals in the audit log").
   */
  denials: z
    .strictObject({
      perSecond: z.number().min(0.01).max(100_000).default(20),
      burst: z.number().int().min(1).max(1_000_000).default(100),
      summarySeconds: z.number().int().min(1).max(3600).default(10),
      maxCallers: z.number().int().min(100).max(10_000_000).default(10_000),
    })
    .default({ perSecond: 20, burst: 100, summarySeconds: 10, maxCallers: 10_000 }),
});

export const telemetryConfigSchema = z.strictObject({
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  traces: z
    .strictObject({
      enabled: z.boolean().default(false),
      serviceName: z.string().min(1).default('bulwark-gateway'),
      /**
       * The share of requests traced, drawn by the gateway per request from the CSPRNG (never from the
       * caller's trace id or sampled flag, so a caller cannot keep its requests out of the traces).
       */
      sampleRatio: z.number().gt(0).max(1).default(1),
      /** Export over OTLP/HTTP from the gateway's own provider (src/gateway/telemetry.ts). */
      otlp: z
        .strictObject({
          /** The collector's traces URL, e.g. http://collector:4318/v1/traces. */
          endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
          /** `Name: value` lines sent with every export (a collector's API key): read, never logged. */
          headersFile: z.string().min(1).optional(),
          /** CA bundle (PEM) for an https collector with a private CA. */
          caFile: z.string().min(1).optional(),
          /** Client certificate and key (PEM) for a collector that requires mutual TLS: both or neither. */
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
          timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
          /**
           * Spans held for export; past it, spans are dropped (and counted) rather than memory grown
           * while a collector is slow. Exported in batches of min(512, maxQueueSize).
           */
          maxQueueSize: z.number().int().min(1).max(1_000_000).default(2048),
          /** OTLP/HTTP encoding: JSON, or protobuf (the OTLP specification's default). */
          protocol: z.enum(['http/json', 'http/protobuf']).default('http/json'),
          /** gzip each export (Content-Encoding: gzip): fewer bytes to a remote collector, more CPU here. */
          compression: z.enum(['none', 'gzip']).default('none'),
        })
        .refine((o) => (o.certFile === undefined) === (o.keyFile === undefined), {
          message: 'set both certFile and keyFile for mutual TLS to the collector, or neither',
          path: ['certFile'],
        })
        .refine((o) => o.certFile === undefined || o.endpoint.startsWith('https:'), {
          message: 'a client certificate needs an https:// endpoint',
          path: ['certFile'],
        })
        .optional(),
    })
    .refine((t) => t.otlp === undefined || t.enabled, {
      message: 'set telemetry.traces.enabled: true to export traces',
      path: ['otlp'],
    })
    .default({ enabled: false, serviceName: 'bulwark-gateway', sampleRatio: 1 }),
});

/** `enclave`: attested sessions off, in a software worker (no hardware guarantee), or in a Nitro enclave. */
export const enclaveConfigSchema = z
  .strictObject({
    mode: z.enum(['off', 'software', 'nitro']).default('off'),
    attestation: z
      .strictObject({
        /** Attestations per principal per minute (each costs a signature). */
        perMinute: z.number().int().min(1).max(100_000).default(30),
        /** How long an issued attestation can open a session. */
        ttlSeconds: z.number().int().min(1).max(3600).default(300),
      })
      .default({ perMinute: 30, ttlSeconds: 300 }),
    /** Session lifetime from its opening. */
    sessionSeconds: z.number().int().min(1).max(86_400).default(3600),
    /** Cap on open sessions (the oldest is evicted). */
    maxSessions: z.number().int().min(1).max(1_000_000).default(10_000),
    software: z
      .strictObject({
        moduleId: name.default('bulwark-gateway'),
        /** Worker start-up and per-call timeout. */
        timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
      })
      .optional(),
    nitro: z.strictObject({ helper: path.default('/usr/local/bin/bulwark-nsm') }).optional(),
  })
  .superRefine((e, ctx) => {
    if (e.software !== undefined && e.mode !== 'software')
      ctx.addIssue({ code: 'custom', path: ['software'], message: 'only with mode: software' });
    if (e.nitro !== undefined && e.mode !== 'nitro')
      ctx.addIssue({ code: 'custom', path: ['nitro'], message: 'only with mode: nitro' });
  });

export const gatewayConfigSchema = z.strictObject({
  server: serverConfigSchema,
  metrics: metricsConfigSchema.default({ enabled: true, host: '127.0.0.1', port: 9464 }),
  auth: authConfigSchema,
  policy: policyConfigSchema,
  limits: limitsConfigSchema.default({ backend: 'memory', requestsPerSecond: 100 }),
  models: z.array(modelConfigSchema).min(1),
  detectors: detectorsConfigSchema.default({ mode: 'enforce', stateTtlSeconds: 86_400 }),
  audit: auditConfigSchema,
  telemetry: telemetryConfigSchema.default({
    logLevel: 'info',
    traces: { enabled: false, serviceName: 'bulwark-gateway', sampleRatio: 1 },
  }),
  /** Attested end-to-end encrypted sessions (src/gateway/enclave.ts, docs/attestation.md). */
  enclave: enclaveConfigSchema.optional(),
  /** Deployment settings, validated by src/deploy/. */
  deploy: z.unknown().optional(),
});

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
export type ModelConfig = z.infer<typeof modelConfigSchema>;
export type OutputConfig = z.infer<typeof outputConfigSchema>;
export type LimitsConfig = z.infer<typeof limitsConfigSchema>;
export type TlsConfig = z.infer<typeof tlsConfigSchema>;
export type EnclaveConfig = z.infer<typeof enclaveConfigSchema>;

/** Reads and validates `bulwark.yaml`; relative file paths in it are relative to its folder. */
export async function loadGatewayConfig(file: string): Promise<GatewayConfig> {
  const c = await loadConfig(file, gatewayConfigSchema);
  return resolveConfigPaths(c, dirname(resolve(file)));
}

/** Resolves every file path of a configuration against `base` (the config file's folder). */
export function resolveConfigPaths(c: GatewayConfig, base: string): GatewayConfig {
  const r = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const ro = <T extends string | undefined>(p: T): T => (p === undefined ? p : (r(p) as T));
  const tls = c.server.tls;
  const jwks = c.auth.jwt?.jwks;
  const otlp = c.telemetry.traces.otlp;
  return {
    ...c,
    server: {
      ...c.server,
      ...(tls
        ? {
            tls: {
              ...tls,
              cert: r(tls.cert),
              key: r(tls.key),
              ...(tls.clientCa ? { clientCa: r(tls.clientCa) } : {}),
              ...(tls.clientCrl ? { clientCrl: r(tls.clientCrl) } : {}),
            },
          }
        : {}),
    },
    auth: {
      ...c.auth,
      ...(c.auth.mtls
        ? {
            mtls: {
              ...c.auth.mtls,
              ...(c.auth.mtls.caFile ? { caFile: r(c.auth.mtls.caFile) } : {}),
              ...(c.auth.mtls.crlFile ? { crlFile: r(c.auth.mtls.crlFile) } : {}),
            },
          }
        : {}),
      ...(c.auth.jwt && jwks && 'file' in jwks
        ? { jwt: { ...c.auth.jwt, jwks: { file: r(jwks.file) } } }
        : {}),
    },
    policy: {
      ...c.policy,
      files: c.policy.files.map(r),
      ...(c.policy.schemaFile ? { schemaFile: r(c.policy.schemaFile) } : {}),
    },
    models: c.models.map((m) => ({
      ...m,
      package: ro(m.package),
      keyring: ro(m.keyring),
      trust: ro(m.trust),
      onnx: ro(m.onnx),
      schema: ro(m.schema),
      ...(m.keyringPassphrase && 'file' in m.keyringPassphrase
        ? { keyringPassphrase: { file: r(m.keyringPassphrase.file) } }
        : {}),
      detectors: {
        mahalanobis: ro(m.detectors.mahalanobis),
        stateful: ro(m.detectors.stateful),
        prada: ro(m.detectors.prada),
      },
    })),
    audit: {
      ...c.audit,
      store: /^postgres(ql)?:\/\//.test(c.audit.store) ? c.audit.store : r(c.audit.store),
      signer: r(c.audit.signer),
    },
    ...(c.enclave?.nitro ? { enclave: { ...c.enclave, nitro: { helper: r(c.enclave.nitro.helper) } } } : {}),
    ...(otlp
      ? {
          telemetry: {
            ...c.telemetry,
            traces: {
              ...c.telemetry.traces,
              otlp: {
                ...otlp,
                headersFile: ro(otlp.headersFile),
                caFile: ro(otlp.caFile),
                certFile: ro(otlp.certFile),
                keyFile: ro(otlp.keyFile),
              },
            },
          },
        }
      : {}),
  };
}

/** Validates a configuration object (from code or tests). */
export function gatewayConfig(value: unknown, source = '<gateway config>'): GatewayConfig {
  return validateConfig(value, gatewayConfigSchema, source);
}
