/**
 * The gateway server (`bulwark serve`): HTTPS with TLS 1.3 only, optional mutual TLS, the Open Inference
 * Protocol REST routes over the request pipeline, Prometheus metrics on a separate port, certificate and
 * policy reload without restart, and a graceful shutdown that drains requests and flushes the audit log.
 *
 * Transport: `node:https` with a hand-written router. Measured against fastify 5 with the same pipeline
 * (bench/gateway.bench.ts); the figures are in bench/results/gateway.json and docs/gateway.md.
 */
import type { X509Certificate } from 'node:crypto';
import { type FSWatcher, watch as fsWatch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import type { Attester } from '../attest/index.js';
import {
  AuditLog,
  type AuditStoreSpec,
  type AuditWriter,
  type NoteSigner,
  parseSignerKey,
  ThreadedAuditLog,
} from '../audit/index.js';
import {
  BulwarkError,
  bulwarkVersion,
  fsError,
  readJsonFile,
  requireOutputFolder,
  warnIfWorldReadable,
} from '../core/index.js';
import { BUNDLE_KINDS, RedisStreamState } from '../robust/index.js';
import { isBodyBroken, type LimitedBody, markBodyBroken, readLimitedBody } from './body.js';
import type { GatewayConfig } from './config.js';
import { DASHBOARD_CSP, DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS, dashboardData } from './dashboard.js';
import { DenialRecorder } from './denials.js';
import { type EnclaveInfo, GatewayEnclave } from './enclave.js';
import { errorReply, jsonReply, type Reply } from './errors.js';
import { connectRedis, Limiter } from './limits.js';
import { GatewayMetrics } from './metrics.js';
import { DefaultModelSource, type LoadedModel, type ModelSource } from './model-source.js';
import {
  Authenticator,
  type AuthenticatorLike,
  Authorizer,
  type AuthorizerLike,
  type AuthRequest,
  DETECTOR_CONTEXT,
  pemCertificates,
  RedisReplayStore,
  RevocationLists,
} from './peers.js';
import { type OptionalStage, Pipeline } from './pipeline.js';
import { atKey, keyed, packageDetectors, ServedModel } from './served-model.js';
import { type GatewayTracing, startTracing } from './telemetry.js';

export interface GatewayOptions {
  config: GatewayConfig;
  logger?: Logger;
  /** Where models come from (default: protected packages; plain ONNX for `insecure: true` models). */
  modelSource?: ModelSource;
  /** Authenticator and authoriser (default: built from the `auth` and `policy` sections). */
  authenticator?: AuthenticatorLike;
  authorizer?: AuthorizerLike;
  /**
   * Stages to switch off. Only for the protections-off benchmark: never reachable from a config file;
   * every disabled stage is logged as a warning.
   */
  unsafeDisable?: readonly OptionalStage[];
  /** Serve plain HTTP even without `server.insecurePlaintext` (benchmark of TLS cost only). */
  unsafePlaintext?: boolean;
  /** Register default process metrics (default true). */
  defaultMetrics?: boolean;
  /**
   * `enclave.mode: nitro` only: the attester replacing the Nitro Security Module (tests and the
   * benchmark run the in-enclave session path with documents signed under a test root).
   */
  enclaveAttester?: Attester;
}

/** One item of {@link Gateway.check}: what was checked, and how it stands. */
export interface GatewayCheckItem {
  /** The configuration section checked (`models`, `server.tls`, `auth`, `policy`, `limits`, `audit`, ...). */
  component: string;
  /**
   * `ok`: checked as `serve` would use it; `create`: absent, `serve` will create it (an audit log not
   * written yet), and what it needs (its folder, the database) is there; `skipped`: left to `serve`
   * (what cannot be checked without its side effects: binding the ports, starting an enclave).
   */
  status: 'ok' | 'create' | 'skipped';
  detail: string;
}

/** The result of {@link Gateway.check}. */
export interface GatewayCheck {
  models: Array<{
    name: string;
    version: string;
    origin: LoadedModel['origin'];
    modelDigest: string;
    detectors: ServedModel['detectorSources'];
  }>;
  checks: GatewayCheckItem[];
}

/** How long `check` waits for Redis to answer before it reports it unreachable. */
const CHECK_REDIS_TIMEOUT_MS = 3_000;

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
const ROUTE =
  /^\/v2\/models\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:\/versions\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127}))?(\/infer|\/ready)?$/;
/** The routes without a body, answered to GET and HEAD (Node sends HEAD the headers only). */
const READ_ROUTES = new Set(['/v2/health/live', '/v2/health/ready', '/v2', '/favicon.ico']);
const READ = ['GET', 'HEAD'] as const;
const WRITE = ['POST'] as const;
/** Request line and headers together (Node's parser refuses more: 431). */
const MAX_HEADER_BYTES = 16_384;
/** The longest route with its names is under 300 bytes: a longer URL is refused before routing (414). */
const MAX_URL_BYTES = 8_192;
/** Readiness: how long the audit store may take to answer its probe, and how long an answer is reused. */
const AUDIT_PROBE_TIMEOUT_MS = 2_000;
const AUDIT_PROBE_CACHE_MS = 1_000;
/** How long a refused connection may take to accept its last reply before it is destroyed anyway. */
const REFUSAL_LINGER_MS = 2_000;

/**
 * The answer to an error of Node's HTTP parser or of its request timeouts (the `clientError` event), or
 * null for the errors with no HTTP to answer: TLS errors (handshake timeout, a bad ClientHello) and
 * socket errors (a reset).
 */
function clientErrorReply(code: string | undefined): Reply | null {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return errorReply(
      new BulwarkError('ERR_GATEWAY_REQUEST_TIMEOUT', 'the request was not received in time'),
    );
  if (code === 'HPE_HEADER_OVERFLOW')
    return errorReply(
      new BulwarkError(
        'ERR_GATEWAY_HEADERS_TOO_LARGE',
        `request line and headers over ${MAX_HEADER_BYTES} bytes`,
      ),
    );
  // Node paused its parser because the client does not read the answers to its pipelined requests
  // (the socket's queued output passed its high-water mark); over TLS, records already decrypted still
  // reach the paused parser, which refuses them and drops them. Not a malformed request: a flood.
  if (code === 'HPE_PAUSED')
    return errorReply(
      new BulwarkError(
        'ERR_GATEWAY_PIPELINE_OVERFLOW',
        'too many pipelined requests whose answers were not read',
      ),
    );
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW')
    return errorReply(new BulwarkError('ERR_GATEWAY_BODY_TOO_LARGE', 'chunk extensions too large'));
  if (code?.startsWith('HPE_'))
    return errorReply(new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', 'malformed HTTP request'));
  return null;
}

interface TlsFiles {
  /** What `https.createServer` and `setSecureContext` get. */
  options: { key: Buffer; cert: Buffer; ca?: Buffer; crl?: string[] };
  /** The `clientCrl` CRLs, validated against `clientCa` (null without `clientCrl`). */
  crls: RevocationLists | null;
}

async function readTls(c: NonNullable<GatewayConfig['server']['tls']>): Promise<TlsFiles> {
  const read = async (p: string, what: string) => {
    try {
      return await readFile(p);
    } catch (e) {
      const err = fsError(e, p, `cannot read TLS ${what}`);
      throw new BulwarkError('ERR_GATEWAY_TLS', err.message, { cause: e, details: { path: p } });
    }
  };
  const key = await read(c.key, 'key');
  const cert = await read(c.cert, 'certificate');
  const caFile = c.clientCa;
  const ca = caFile === undefined ? undefined : await read(caFile, 'client CA bundle');
  if (caFile === undefined || ca === undefined) return { options: { key, cert }, crls: null };
  if (c.clientCrl === undefined) return { options: { key, cert, ca }, crls: null };
  // The CRLs are checked here, at load, against the CAs of clientCa: Node's TLS would only find a bad
  // signature, a foreign issuer or a CA without a CRL at each handshake, and refuse every client of it.
  const caError = (message: string, cause?: unknown) =>
    new BulwarkError('ERR_GATEWAY_TLS', `server.tls.clientCa: ${caFile}: ${message}`, {
      ...(cause === undefined ? {} : { cause }),
      details: { path: caFile },
    });
  const cas = pemCertificates(ca.toString('utf8'), (e) => caError('a certificate cannot be parsed', e));
  if (cas.length === 0) throw caError('no PEM certificate');
  const crls = await RevocationLists.load(c.clientCrl, cas, {
    key: 'server.tls.clientCrl',
    code: 'ERR_GATEWAY_TLS',
  });
  return { options: { key, cert, ca, crl: [...crls.pem] }, crls };
}

/**
 * The codings of a body the gateway does not undo: a content coding (gzip...) would reach the JSON parser
 * still coded, and a transfer coding other than chunked would stay in the body Node's parser hands over.
 */
function codingError(req: IncomingMessage): BulwarkError | null {
  const ce = req.headers['content-encoding']?.trim().toLowerCase();
  if (ce !== undefined && ce !== '' && ce !== 'identity')
    return new BulwarkError('ERR_GATEWAY_MEDIA_TYPE', 'send the body without a content coding');
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked')
    return new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', 'the only transfer coding accepted is chunked');
  return null;
}

/**
 * Whether Cedar runs after the detectors (PipelineOptions.policyAfterDetect): the authoriser's own
 * answer, from the policy set it loaded; the policy files are read for it only for an authoriser that
 * does not tell (one passed in by the embedding code).
 */
async function policyAfterDetect(
  authorizer: AuthorizerLike | null,
  files: readonly string[],
): Promise<boolean> {
  if (authorizer === null) return false;
  return authorizer.readsDetectorContext ?? (await policiesMention(files, DETECTOR_CONTEXT));
}

/**
 * Every Authorization field of a request, joined with ", " as repeated fields are: Node keeps only the
 * first one in `headers`, while a proxy or WAF in front may act on the last; the authenticator refuses
 * a join. Read from `rawHeaders` (names and values alternate) rather than `headersDistinct`, which
 * builds a map of every header on each request that asks for it: this runs on every request.
 */
function authorizationFields(raw: readonly string[]): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 13 && name.toLowerCase() === 'authorization')
      v = v === undefined ? (raw[i + 1] as string) : `${v}, ${raw[i + 1] as string}`;
  }
  return v;
}

/** Whether any policy file mentions `pattern` (the context keys only known after the detectors). */
async function policiesMention(files: readonly string[], pattern: RegExp): Promise<boolean> {
  for (const f of files) {
    try {
      if (pattern.test(await readFile(f, 'utf8'))) return true;
    } catch {
      // The authoriser has read these files already; an unreadable one now is treated as mentioning.
      return true;
    }
  }
  return false;
}

/**
 * The audit log as `serve` would open it, read-only: an existing log must have the signer's origin and
 * key (AuditLog.open checks both); an absent one is reported as to be created, once its folder (SQLite)
 * or its database (PostgreSQL) answers.
 */
async function checkAuditLog(a: GatewayConfig['audit'], signer: NoteSigner): Promise<GatewayCheckItem> {
  const spec = { ...auditSpec(a), create: false };
  let log: AuditLog;
  try {
    log = await AuditLog.open({ store: spec, signer });
  } catch (e) {
    const absent =
      e instanceof BulwarkError &&
      ((spec.kind === 'sqlite' && e.code === 'ERR_FILE_NOT_FOUND') ||
        (spec.kind === 'postgres' &&
          e.code === 'ERR_AUDIT_STORE_INVALID' &&
          /^no audit log in /.test(e.message)));
    if (!absent) throw keyed('audit.store', e);
    if (spec.kind === 'sqlite')
      await requireOutputFolder(spec.path, { what: 'audit log', option: 'audit.store' });
    return {
      component: 'audit',
      status: 'create',
      detail: `no log yet: serve creates it (origin ${signer.name})`,
    };
  }
  try {
    const size = (await log.head()).size;
    return {
      component: 'audit',
      status: 'ok',
      detail: `log ${signer.name}, ${size} entries; the signer's key is the log's`,
    };
  } finally {
    await log.close();
  }
}

/** Waits for a Redis connection to be ready and answer PING; ERR_GATEWAY_LIMITER_UNAVAILABLE otherwise. */
async function requireRedis(redis: Redis, key: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        if (redis.status !== 'ready') await new Promise<void>((r) => redis.once('ready', () => r()));
        await redis.ping();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), CHECK_REDIS_TIMEOUT_MS);
      }),
    ]);
  } catch {
    throw new BulwarkError(
      'ERR_GATEWAY_LIMITER_UNAVAILABLE',
      `${key}: Redis did not answer within ${CHECK_REDIS_TIMEOUT_MS / 1000} s (serve would deny every request with 503)`,
    );
  } finally {
    clearTimeout(timer);
  }
}

function auditSpec(a: GatewayConfig['audit']): AuditStoreSpec {
  if (!/^postgres(ql)?:\/\//.test(a.store)) return { kind: 'sqlite', path: a.store, option: 'audit.store' };
  return { kind: 'postgres', url: a.store, ...(a.schema !== undefined ? { schema: a.schema } : {}) };
}

/**
 * The verified peer certificate of a connection, parsed once per connection (not per request: a
 * kept-alive mTLS connection carries thousands of requests with the same certificate).
 */
const peerCerts = new WeakMap<TLSSocket, X509Certificate | null>();
function peerCertificate(socket: TLSSocket): X509Certificate | undefined {
  let c = peerCerts.get(socket);
  if (c === undefined) {
    c = socket.getPeerX509Certificate() ?? null;
    peerCerts.set(socket, c);
  }
  return c ?? undefined;
}

/** OpenSSL's reason for a peer certificate TLS did not verify (Node sets a code string, typed as an Error). */
function authorizationError(socket: TLSSocket): string | undefined {
  const e: unknown = socket.authorizationError;
  if (typeof e === 'string') return e;
  return e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : undefined;
}

/** A running gateway. */
export class Gateway {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly pipeline: Pipeline;
  readonly models: ReadonlyMap<string, ServedModel>;
  readonly audit: AuditWriter | null;
  readonly limiter: Limiter | null;
  readonly #server: http.Server | https.Server;
  #metricsServer: http.Server | null = null;
  /** Attested sessions (`enclave.mode` software or nitro), or null. */
  #enclave: GatewayEnclave | null = null;
  /** Records refusals in the audit log, bounded per caller (null without an audit log). */
  #denials: DenialRecorder | null = null;
  /** The gateway's tracing (its own OTLP exporter, or the global API), or null when traces are off. */
  #tracing: GatewayTracing | null = null;
  /** The detectors' own Redis connection when the limiter (which otherwise lends its own) is off. */
  #ownRedis: Redis | null = null;
  readonly #authenticator: AuthenticatorLike | null;
  readonly #authorizer: AuthorizerLike | null;
  #draining = false;
  #inFlight = 0;
  /** Open TCP connections (from 'connection'), HTTP or not yet. */
  readonly #sockets = new Set<Duplex>();
  /** TLS connections whose handshake completed. */
  readonly #secured = new WeakSet<Duplex>();
  /** Connections refused by #clientError (a parser in error reports it again at every read). */
  readonly #clientErrored = new WeakSet<Duplex>();
  /** Each connection's latest request (the only one whose body can still be arriving). */
  readonly #lastRequest = new WeakMap<Duplex, IncomingMessage>();
  /** Responses to requests parsed after their connection's parser error: never written (#handle). */
  readonly #abandoned = new WeakSet<ServerResponse>();
  /** Responses whose client waits for `100 Continue` before it sends the body. */
  readonly #awaitingContinue = new WeakSet<ServerResponse>();
  #idle: (() => void) | null = null;
  #watchers: FSWatcher[] = [];
  #checkpointTimer: NodeJS.Timeout | null = null;
  #reloadTimer: NodeJS.Timeout | null = null;
  readonly #tls: boolean;
  /**
   * `server.tls.clientCrl` as last loaded with the secure context. TLS checks a certificate at the
   * handshake only; each request re-checks its connection's chain against these, so a reload's CRL
   * also reaches connections opened before it, and a CRL that goes out of date refuses them too.
   */
  #clientCrls: RevocationLists | null = null;
  #lastCheckpoint: { size: number; time: string } | null = null;
  /** The audit store's last reachability probe (readiness), and the probe under way if any. */
  #auditProbe: { at: number; ok: boolean } = { at: Number.NEGATIVE_INFINITY, ok: true };
  #auditProbing: Promise<boolean> | null = null;

  private constructor(init: {
    config: GatewayConfig;
    logger: Logger;
    metrics: GatewayMetrics;
    pipeline: Pipeline;
    models: Map<string, ServedModel>;
    audit: AuditWriter | null;
    limiter: Limiter | null;
    authenticator: AuthenticatorLike | null;
    authorizer: AuthorizerLike | null;
    server: http.Server | https.Server;
    tls: boolean;
  }) {
    this.config = init.config;
    this.logger = init.logger;
    this.metrics = init.metrics;
    this.pipeline = init.pipeline;
    this.models = init.models;
    this.audit = init.audit;
    this.limiter = init.limiter;
    this.#authenticator = init.authenticator;
    this.#authorizer = init.authorizer;
    this.#server = init.server;
    this.#tls = init.tls;
  }

  /** Loads models, opens the audit log and the limiter, and starts listening. Fails closed on any error. */
  static start(options: GatewayOptions): Promise<Gateway> {
    return Gateway.#open(options, null);
  }

  /**
   * A dry run of {@link start} (`bulwark serve --check`): the configuration is validated, the models
   * loaded (signatures verified, packages decrypted, detectors calibrated), the authenticator (a
   * remote JWKS must answer) and the policies built, Redis asked to answer, the TLS certificate and key put in a secure context, and the
   * audit log opened read-only with the signer's key checked against it. Nothing is written and
   * nothing listens: no port is bound, no event is appended, no checkpoint is signed, no enclave or
   * trace exporter is started. Throws the error `start` would throw.
   */
  static async check(
    options: Omit<GatewayOptions, 'unsafeDisable' | 'unsafePlaintext'>,
  ): Promise<GatewayCheck> {
    const checks: GatewayCheckItem[] = [];
    const gw = await Gateway.#open({ ...options, defaultMetrics: false }, checks);
    try {
      return {
        models: [...gw.models.values()].map((m) => ({
          name: m.name,
          version: m.version,
          origin: m.loaded.origin,
          modelDigest: m.loaded.modelDigest,
          detectors: m.detectorSources,
        })),
        checks,
      };
    } finally {
      await gw.close();
    }
  }

  /** {@link start}, or with `dry` its dry run, which records what it checked there. */
  static async #open(options: GatewayOptions, dry: GatewayCheckItem[] | null): Promise<Gateway> {
    const c = options.config;
    const logger =
      options.logger ??
      pino({
        level: c.telemetry.logLevel,
        base: { service: 'bulwark-gateway' },
        redact: {
          paths: ['authorization', '*.authorization', 'headers', '*.headers', 'token'],
          remove: true,
        },
      });
    const disabled = new Set(options.unsafeDisable ?? []);
    for (const s of disabled) logger.warn({ stage: s }, 'pipeline stage DISABLED (benchmark mode)');
    const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? true });
    const cleanup: (() => Promise<unknown>)[] = [];
    try {
      // Models first: a gateway that cannot serve them must not start.
      const source = options.modelSource ?? new DefaultModelSource();
      const models = new Map<string, ServedModel>();
      for (const m of c.models) {
        if (models.has(m.name))
          throw new BulwarkError('ERR_CONFIG_INVALID', `models: "${m.name}" is configured twice`);
        if (m.onnx !== undefined)
          logger.warn(
            { model: m.name },
            'INSECURE: serving a plain ONNX file: unsigned and unencrypted; use a protected model package',
          );
        let loaded: LoadedModel;
        try {
          loaded = await source.load(m);
        } catch (e) {
          throw keyed(`models.${m.name}`, e);
        }
        const det: { mahalanobis?: unknown; stateful?: unknown; prada?: unknown } = {};
        // Detectors the package carries (signed and encrypted with the model) come first; a file in
        // the configuration may add a kind the package lacks, never replace one it has (that would
        // swap signed state for unsigned state).
        const bundled =
          loaded.detectors === undefined ? null : packageDetectors(m.name, loaded.detectors, loaded);
        const detectorSource: Partial<Record<(typeof BUNDLE_KINDS)[number], 'package' | 'file'>> = {};
        for (const kind of BUNDLE_KINDS) {
          if (disabled.has(kind === 'prada' ? 'extraction' : 'detect')) continue;
          const key = `models.${m.name}.detectors.${kind}`;
          const p = m.detectors[kind];
          if (bundled?.[kind] !== undefined) {
            if (p !== undefined)
              throw new BulwarkError(
                'ERR_CONFIG_INVALID',
                `${key}: the model package carries a signed ${kind} detector; remove the file from the configuration (a file may only add a detector the package lacks)`,
              );
            det[kind] = bundled[kind];
            detectorSource[kind] = 'package';
            continue;
          }
          if (p === undefined) continue;
          try {
            det[kind] = await readJsonFile(
              p,
              `${kind} detector`,
              () => new BulwarkError('ERR_DETECTOR_STATE', `${key}: ${p}: not JSON`),
            );
          } catch (e) {
            throw keyed(key, e);
          }
          detectorSource[kind] = 'file';
        }
        const served = new ServedModel(loaded, m, det, detectorSource);
        cleanup.push(() => served.close());
        for (const d of [served.mahalanobis, served.stateful, served.prada]) {
          if (d && d.calibration === null)
            throw new BulwarkError(
              'ERR_DETECTOR_STATE',
              `models.${m.name}.detectors.${d.kind}: not calibrated (no threshold)`,
            );
        }
        models.set(m.name, served);
        metrics.modelInfo.labels(m.name, loaded.version, loaded.origin).set(1);
        logger.info(
          {
            model: m.name,
            version: loaded.version,
            origin: loaded.origin,
            modelDigest: loaded.modelDigest,
            detectors: detectorSource,
          },
          'model loaded',
        );
      }

      dry?.push({
        component: 'models',
        status: 'ok',
        detail: `${models.size} loaded (signatures verified, detectors calibrated)`,
      });

      const limiter = disabled.has('limit') ? null : Limiter.create(c.limits);
      if (limiter) cleanup.push(() => limiter.close());
      if (dry && limiter) {
        if (limiter.redis) await requireRedis(limiter.redis, 'limits.redis.url');
        dry.push({
          component: 'limits',
          status: 'ok',
          detail: limiter.redis ? 'Redis answered' : 'in memory (one replica)',
        });
      }

      // Several replicas (Redis for the limiter): the stream detectors' per-caller state and the DPoP
      // proof ids go to the same Redis, so each replica judges a caller on its whole query stream and a
      // proof used at one replica is refused at every other.
      const redisConf = c.limits.backend === 'redis' ? c.limits.redis : undefined;
      // The gateway's own connection when the limiter (disabled) has none, opened on first use.
      let ownRedis: Redis | null = null;
      const sharedRedis = (): Redis => {
        let redis = limiter?.redis ?? ownRedis;
        if (redis === null) {
          const own = connectRedis(redisConf!.url);
          cleanup.push(async () => own.disconnect());
          ownRedis = own;
          redis = own;
        }
        return redis;
      };
      const authenticator = disabled.has('authenticate')
        ? null
        : (options.authenticator ??
          (await Authenticator.create(c.auth, {
            ...(redisConf && c.auth.jwt?.dpop
              ? { dpopReplay: new RedisReplayStore(sharedRedis(), `${redisConf.keyPrefix}dpop:`) }
              : {}),
            // The dry run reports an issuer whose key set does not answer; serve starts and answers 503.
            ...(dry ? { requireJwks: true } : {}),
          })));
      if (authenticator) cleanup.push(async () => authenticator.close());
      const authorizer = disabled.has('authorize')
        ? null
        : (options.authorizer ?? (await Authorizer.create(c.policy)));
      if (dry) {
        const how = [c.auth.mtls ? 'client certificates' : '', c.auth.jwt ? 'JWT' : ''].filter(Boolean);
        dry.push({
          component: 'auth',
          status: 'ok',
          detail: `${how.length > 0 ? how.join(' and ') : 'none configured'}; key sets and CA bundles loaded`,
        });
        dry.push({
          component: 'policy',
          status: 'ok',
          detail: `${c.policy.files.length} Cedar policy file(s) parsed`,
        });
      }

      if (redisConf && [...models.values()].some((m) => m.stateful || m.prada)) {
        const redis = sharedRedis();
        for (const m of models.values()) {
          if (!m.stateful && !m.prada) continue;
          m.shareStreamState(
            new RedisStreamState(redis, {
              keyPrefix: `${redisConf.keyPrefix}det:${m.name}:`,
              ttlSeconds: c.detectors.stateTtlSeconds,
            }),
          );
        }
        logger.info({ models: models.size }, 'stream detector state shared through Redis');
      }

      let audit: AuditWriter | null = null;
      let denials: DenialRecorder | null = null;
      if (!disabled.has('audit')) {
        let skey: string;
        try {
          warnIfWorldReadable(c.audit.signer, 'audit signer key');
          skey = await readFile(c.audit.signer, 'utf8');
        } catch (e) {
          throw keyed('audit.signer', fsError(e, c.audit.signer, 'cannot read audit signer key'));
        }
        // Parsed here too, so that a bad key fails the start with its code whichever the writer.
        const signer = atKey('audit.signer', () => parseSignerKey(skey));
        if (dry) dry.push(await checkAuditLog(c.audit, signer));
        else {
          const a: AuditWriter =
            c.audit.writer === 'thread'
              ? await ThreadedAuditLog.open({
                  store: auditSpec(c.audit),
                  signerKey: skey,
                  origin: signer.name,
                })
              : await AuditLog.open({ store: auditSpec(c.audit), signer });
          audit = a;
          cleanup.push(() => a.close());
          denials = new DenialRecorder(a, c.audit.denials, logger, metrics);
          for (const m of models.values()) {
            if (m.loaded.packageDigest)
              await a.append({
                type: 'model.loaded',
                data: {
                  packageDigest: m.loaded.packageDigest,
                  modelDigest: m.loaded.modelDigest,
                  server: 'bulwark-gateway',
                },
              });
          }
        }
      }

      // Every lost span is counted; the warning is logged at most every 10 s with the spans lost since
      // the last one, so a collector that is down does not flood the log at the request rate.
      let unlogged = 0;
      let lastWarning = Number.NEGATIVE_INFINITY;
      const tracing =
        c.telemetry.traces.enabled && !dry
          ? await startTracing(c.telemetry.traces, (spans, error) => {
              metrics.traceSpansDropped.inc(spans);
              unlogged += spans;
              const now = performance.now();
              if (now - lastWarning < 10_000) return;
              logger.warn({ spans: unlogged, reason: error?.message }, 'trace spans dropped');
              unlogged = 0;
              lastWarning = now;
            })
          : null;
      if (tracing) cleanup.push(() => tracing.shutdown());

      const pipeline = new Pipeline({
        models,
        authenticator,
        authorizer,
        limiter,
        audit,
        denials,
        metrics,
        logger,
        detectorsMode: c.detectors.mode,
        bodyLimitBytes: c.server.bodyLimitBytes,
        maxDepth: c.server.maxDepth,
        tracing,
        policyAfterDetect: await policyAfterDetect(authorizer, c.policy.files),
      });

      const enclave =
        c.enclave && !dry
          ? await GatewayEnclave.start({
              config: c.enclave,
              models,
              pipeline,
              audit,
              denials,
              logger,
              bodyLimitBytes: c.server.bodyLimitBytes,
              ...(options.enclaveAttester ? { attester: options.enclaveAttester } : {}),
            })
          : null;
      if (enclave) cleanup.push(() => enclave.close());

      const tlsConf = c.server.tls;
      const useTls = tlsConf !== undefined && !options.unsafePlaintext;
      let server: http.Server | https.Server;
      const serverOpts = {
        keepAliveTimeout: c.server.keepAliveMs,
        requestTimeout: c.server.requestTimeoutMs,
        headersTimeout: c.server.headersTimeoutMs,
        // Node looks for timed-out requests on this interval (30 s by default: a slow client would keep
        // its connection up to that long past its timeout).
        connectionsCheckingInterval: Math.min(1_000, Math.ceil(c.server.headersTimeoutMs / 2)),
        maxHeaderSize: MAX_HEADER_BYTES,
        // The router refuses a missing Host with a JSON body; Node's own refusal has no body.
        requireHostHeader: false,
      };
      let clientCrls: RevocationLists | null = null;
      if (useTls) {
        const files = await readTls(tlsConf);
        clientCrls = files.crls;
        try {
          server = https.createServer({
            ...serverOpts,
            ...files.options,
            minVersion: 'TLSv1.3',
            maxVersion: 'TLSv1.3',
            requestCert: tlsConf.clientAuth !== 'none',
            rejectUnauthorized: tlsConf.clientAuth === 'require',
            handshakeTimeout: tlsConf.handshakeTimeoutMs,
          });
        } catch (e) {
          throw new BulwarkError('ERR_GATEWAY_TLS', `server.tls: ${(e as Error).message}`, { cause: e });
        }
      } else {
        logger.warn('INSECURE: serving plain HTTP without TLS');
        server = http.createServer(serverOpts);
      }
      const gw = new Gateway({
        config: c,
        logger,
        metrics,
        pipeline,
        models,
        audit,
        limiter,
        authenticator,
        authorizer,
        server,
        tls: useTls,
      });
      gw.#enclave = enclave;
      gw.#denials = denials;
      gw.#ownRedis = ownRedis;
      gw.#tracing = tracing;
      gw.#setClientCrls(clientCrls);
      if (dry) {
        dry.push(
          useTls
            ? {
                component: 'server.tls',
                status: 'ok',
                detail: `certificate and key load (TLS 1.3 only; client certificates: ${tlsConf.clientAuth})`,
              }
            : { component: 'server.tls', status: 'ok', detail: 'none: plain HTTP (insecurePlaintext)' },
          {
            component: 'ports',
            status: 'skipped',
            detail: `${c.server.host}:${c.server.port}${c.metrics.enabled ? ` and metrics ${c.metrics.host}:${c.metrics.port}` : ''} are bound by serve, not by the check`,
          },
        );
        if (c.enclave && c.enclave.mode !== 'off')
          dry.push({
            component: 'enclave',
            status: 'skipped',
            detail: `mode ${c.enclave.mode}: started by serve only`,
          });
        if (c.telemetry.traces.enabled)
          dry.push({
            component: 'telemetry.traces',
            status: 'skipped',
            detail: 'the exporter starts with serve',
          });
        return gw;
      }
      server.on('request', (req: IncomingMessage, res: ServerResponse) => gw.#handle(req, res));
      // With this listener Node no longer sends `100 Continue` by itself: the router sends it once the
      // request passed the checks that need no body (#continue), so a refused body is never sent.
      server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
        gw.#awaitingContinue.add(res);
        gw.#handle(req, res);
      });
      server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
        gw.#simple(
          req,
          res,
          errorReply(
            new BulwarkError(
              'ERR_GATEWAY_EXPECTATION_FAILED',
              'the only expectation supported is 100-continue',
            ),
          ),
        ),
      );
      // Node hands a CONNECT request's socket over as is (and without a listener closes it unanswered).
      server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
        gw.#refuse(
          socket,
          errorReply(new BulwarkError('ERR_GATEWAY_METHOD_NOT_ALLOWED', 'CONNECT is not supported')),
        ),
      );
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => gw.#clientError(err, socket));
      server.on('tlsClientError', () => {});
      // Every TCP connection, from its accept: close() must also end those that never became HTTP (a
      // TLS handshake not finished), which closeAllConnections() does not know.
      server.on('connection', (socket: Duplex) => {
        gw.#sockets.add(socket);
        socket.once('close', () => gw.#sockets.delete(socket));
      });
      server.on('secureConnection', (socket: TLSSocket) => gw.#secured.add(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e) =>
          reject(
            new BulwarkError('ERR_IO', `cannot listen on ${c.server.host}:${c.server.port}: ${e.message}`),
          ),
        );
        server.listen(c.server.port, c.server.host, () => resolve());
      });
      cleanup.push(() => new Promise((r) => server.close(() => r(undefined))));
      if (c.metrics.enabled) {
        // The gateway's timeouts here too (Node's defaults let a slow client hold a connection for
        // minutes), and a collector that throws answers 500 instead of an unhandled rejection, which
        // would end the process.
        const ms = http.createServer(serverOpts, (req, res) => {
          if (req.url === '/metrics' && req.method === 'GET') {
            metrics.registry.metrics().then(
              (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
              (e: unknown) => {
                logger.error(
                  { err: e instanceof Error ? e.message : String(e) },
                  'metrics collection failed',
                );
                res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
              },
            );
          } else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        });
        await new Promise<void>((resolve, reject) => {
          ms.once('error', (e) =>
            reject(
              new BulwarkError(
                'ERR_IO',
                `cannot listen on metrics ${c.metrics.host}:${c.metrics.port}: ${e.message}`,
              ),
            ),
          );
          ms.listen(c.metrics.port, c.metrics.host, () => resolve());
        });
        gw.#metricsServer = ms;
      }
      if (useTls && tlsConf.watch)
        gw.#watch([
          tlsConf.cert,
          tlsConf.key,
          ...(tlsConf.clientCa ? [tlsConf.clientCa] : []),
          // CRLs are replaced on a schedule (each before its nextUpdate): both files reload like the rest.
          ...(tlsConf.clientCrl ? [tlsConf.clientCrl] : []),
          ...(c.auth.mtls?.crlFile ? [c.auth.mtls.crlFile] : []),
        ]);
      if (audit && c.audit.checkpointSeconds > 0) {
        gw.#checkpointTimer = setInterval(() => void gw.checkpoint(), c.audit.checkpointSeconds * 1000);
        gw.#checkpointTimer.unref();
      }
      logger.info({ url: gw.url, metrics: gw.metricsUrl }, 'gateway listening');
      return gw;
    } catch (e) {
      for (const f of cleanup.reverse()) await f().catch(() => {});
      throw e;
    }
  }

  /** Base URL of the API. */
  get url(): string {
    const a = this.#server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.#tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  /** Public facts of the attested-session enclave (null when `enclave.mode` is off). */
  get enclave(): EnclaveInfo | null {
    return this.#enclave?.info ?? null;
  }

  get metricsUrl(): string | null {
    if (!this.#metricsServer) return null;
    const a = this.#metricsServer.address() as AddressInfo;
    return `http://${a.address}:${a.port}/metrics`;
  }

  /** Requests being answered now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  get ready(): boolean {
    if (this.#draining) return false;
    if (this.limiter && !this.limiter.healthy) return false;
    if (this.#enclave && !this.#enclave.healthy) return false;
    for (const m of this.models.values()) if (!m.ready) return false;
    return true;
  }

  /**
   * Whether the audit store answers (readiness): a one-row read of the log's metadata, within
   * AUDIT_PROBE_TIMEOUT_MS. Every prediction waits for its record, so a replica whose store is down
   * can answer nothing but 503 and must leave the load balancer's rotation; the probe (not the failed
   * appends) decides, so the replica comes back by itself once the store does, with no traffic needed.
   * At most one probe runs at a time and its result serves AUDIT_PROBE_CACHE_MS: the readiness route
   * needs no credential, and must not let a flood of probes become a flood of store queries.
   */
  async auditReachable(): Promise<boolean> {
    const audit = this.audit;
    if (!audit) return true;
    if (performance.now() - this.#auditProbe.at < AUDIT_PROBE_CACHE_MS) return this.#auditProbe.ok;
    this.#auditProbing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      let ok: boolean;
      try {
        await Promise.race([
          audit.publicKey(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('timeout')), AUDIT_PROBE_TIMEOUT_MS);
          }),
        ]);
        ok = true;
      } catch {
        ok = false;
      } finally {
        clearTimeout(timer);
      }
      this.#auditProbe = { at: performance.now(), ok };
      this.#auditProbing = null;
      return ok;
    })();
    return this.#auditProbing;
  }

  /** Signs a checkpoint of the audit log now (also on a timer and at shutdown). */
  async checkpoint(): Promise<{ size: number } | null> {
    if (!this.audit) return null;
    try {
      const cp = await this.audit.checkpoint();
      this.#lastCheckpoint = { size: cp.size, time: new Date().toISOString() };
      this.metrics.auditCheckpointSize.set(cp.size);
      return { size: cp.size };
    } catch (e) {
      this.logger.warn({ code: (e as BulwarkError).code }, 'audit checkpoint failed');
      return null;
    }
  }

  /** Exports the spans buffered so far (a no-op unless the gateway exports its own traces). */
  async flushTraces(): Promise<void> {
    await this.#tracing?.flush();
  }

  get lastCheckpoint(): { size: number; time: string } | null {
    return this.#lastCheckpoint;
  }

  /** Installs the client CRLs (with the secure context holding them), warning about out-of-date ones. */
  #setClientCrls(crls: RevocationLists | null): void {
    this.#clientCrls = crls;
    const outdated = crls?.outdated(Date.now()) ?? [];
    if (outdated.length > 0)
      this.logger.warn(
        { cas: outdated, code: 'ERR_AUTH_CRL_EXPIRED' },
        'server.tls.clientCrl: CRLs outside their validity window: clients of these CAs are refused until current CRLs are loaded',
      );
  }

  /**
   * Re-reads certificates, key, client CA and client CRLs (`server.setSecureContext`), the CA bundle
   * and CRLs of forwarded certificates, the JWKS, the policies and the trace collector's credentials
   * (headers file, CA, client certificate and key).
   * A file that does not load leaves the previous one in service (logged with ERR_GATEWAY_TLS).
   */
  async reload(): Promise<void> {
    const tlsConf = this.config.server.tls;
    if (this.#tls && tlsConf) {
      try {
        const files = await readTls(tlsConf);
        (this.#server as https.Server).setSecureContext({
          ...files.options,
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
        });
        this.#setClientCrls(files.crls);
        this.logger.info('TLS certificates reloaded');
      } catch (e) {
        const code = e instanceof BulwarkError ? e.code : 'ERR_GATEWAY_TLS';
        // The reason names the file and key at fault (Bulwark's messages and OpenSSL's carry no key
        // material), so an operator can tell which of the watched files did not load.
        this.logger.error(
          { code, reason: (e as Error).message },
          'TLS reload failed; previous certificates stay in service',
        );
      }
    }
    for (const [what, f] of [
      ['authentication', () => this.#authenticator?.reload()],
      ['trace export', () => this.#tracing?.reload()],
      [
        'policies',
        async () => {
          await this.#authorizer?.reload();
          this.pipeline.options.policyAfterDetect = await policyAfterDetect(
            this.#authorizer,
            this.config.policy.files,
          );
        },
      ],
      ['audit signing key', () => this.#reloadAuditSigner()],
    ] as const) {
      try {
        await f();
        this.logger.info(`${what} reloaded`);
      } catch (e) {
        this.logger.error(
          { code: (e as BulwarkError).code, reason: (e as Error).message },
          `${what} reload failed; what failed keeps its previous state`,
        );
      }
    }
  }

  /**
   * After `bulwark audit rotate-key` on the gateway's log (run by an operator while the gateway
   * writes), the file at `audit.signer` holds the new key: the log signs with it from now on. Until
   * this reload the gateway's checkpoints are refused (the old key is retired: see AuditLog.checkpoint),
   * never signed with a retired key; appends go on. A key the log's history does not have in force is
   * refused and the one in use kept (ERR_AUDIT_KEY_INVALID, logged).
   */
  async #reloadAuditSigner(): Promise<void> {
    const audit = this.audit;
    if (!audit) return;
    const path = this.config.audit.signer;
    let skey: string;
    warnIfWorldReadable(path, 'audit signer key');
    try {
      skey = await readFile(path, 'utf8');
    } catch (e) {
      throw keyed('audit.signer', fsError(e, path, 'cannot read audit signer key'));
    }
    const r = await audit.useSigner(skey);
    if (r.changed) this.logger.info({ key: r.key }, 'audit log now signed with a new key');
  }

  #watch(files: string[]): void {
    for (const f of files) {
      try {
        const w = fsWatch(f, () => {
          if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
          this.#reloadTimer = setTimeout(() => void this.reload(), 200);
        });
        w.unref();
        this.#watchers.push(w);
      } catch (e) {
        this.logger.warn({ code: (e as NodeJS.ErrnoException).code }, 'cannot watch a TLS file; use SIGHUP');
      }
    }
  }

  /**
   * Graceful shutdown: readiness goes false, new requests get 503, requests in flight finish (up to
   * `server.drainSeconds`), then the audit log is flushed, checkpointed and closed.
   */
  async close(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    for (const w of this.#watchers) w.close();
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    this.#server.closeIdleConnections();
    if (this.#inFlight > 0) {
      await Promise.race([
        new Promise<void>((r) => {
          this.#idle = r;
        }),
        new Promise<void>((r) => setTimeout(r, this.config.server.drainSeconds * 1000).unref()),
      ]);
    }
    this.#server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    await closed;
    if (this.audit) {
      // The refusals counted since the last summary are written before the log is flushed and closed.
      await this.#denials?.flush();
      await this.audit.flush().catch(() => {});
      await this.checkpoint();
      await this.audit.close().catch(() => {});
    }
    await this.#enclave?.close().catch(() => {});
    await this.limiter?.close();
    this.#ownRedis?.disconnect();
    await this.#authenticator?.close();
    for (const m of this.models.values()) await m.close().catch(() => {});
    // The spans of the drained requests are exported before the process may exit.
    await this.#tracing?.shutdown().catch(() => {});
    if (this.#metricsServer) {
      const ms = this.#metricsServer;
      await new Promise<void>((r) => ms.close(() => r()));
      ms.closeAllConnections();
    }
    this.logger.info('gateway stopped');
  }

  #authRequest(req: IncomingMessage): AuthRequest {
    const socket = req.socket as TLSSocket;
    const remoteAddress = socket.remoteAddress ?? '';
    const peer = this.#tls ? peerCertificate(socket) : undefined;
    const authorization = authorizationFields(req.rawHeaders);
    const fwd = req.headers['x-forwarded-client-cert'];
    const dpop = req.headers.dpop;
    let authorized = this.#tls ? socket.authorized === true : false;
    let reason = peer && !authorized ? authorizationError(socket) : undefined;
    if (authorized && peer && this.#clientCrls) {
      const status = this.#clientCrls.chainStatus(peer, Date.now());
      if (status !== 'good') {
        authorized = false;
        reason = status;
      }
    }
    return {
      peerAuthorized: authorized,
      ...(reason !== undefined ? { peerAuthorizationError: reason } : {}),
      remoteAddress,
      ...(peer ? { peerCertificate: peer } : {}),
      ...(authorization !== undefined ? { authorization } : {}),
      ...(typeof dpop === 'string' ? { dpop } : {}),
      ...(req.method !== undefined ? { method: req.method } : {}),
      ...(req.url !== undefined ? { url: req.url } : {}),
      ...(typeof fwd === 'string' ? { forwardedClientCert: fwd } : {}),
    };
  }

  #headers(r: Reply, close: boolean): Record<string, string | number> {
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(r.body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...r.headers,
    };
    if (r.status === 401) headers['www-authenticate'] = this.#authenticator?.challenge?.(r.code) ?? 'Bearer';
    // RFC 9449 §9: a fresh nonce on every answer, so a client always holds one for its next proof.
    const nonce = this.#authenticator?.dpopNonce?.();
    if (nonce !== undefined) headers['dpop-nonce'] = nonce;
    if (close || this.#draining) headers['connection'] = 'close';
    return headers;
  }

  #send(res: ServerResponse, r: Reply, close = false): void {
    res.writeHead(r.status, this.#headers(r, close)).end(r.body);
  }

  /**
   * Writes `r` straight to a connection the HTTP layer has given up on, then destroys it: once the reply
   * is written, or after REFUSAL_LINGER_MS for a client that does not read. Never left half-closed: a
   * client that keeps sending would otherwise keep it open.
   */
  #refuse(socket: Duplex, r: Reply): void {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const head = Object.entries(this.#headers(r, true))
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    // A reset while the reply is written is of no interest; Node left no 'error' listener on a
    // CONNECT socket, and an error without one would be thrown.
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    socket.once('finish', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    socket.end(`HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status]}\r\n${head}\r\n${r.body}`);
  }

  /**
   * Node's HTTP server reports here the parser's errors, its header and request timeouts, socket errors
   * and (https) TLS errors, and with a listener leaves the connection open: every path below ends in
   * destroy().
   */
  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (this.#clientErrored.has(socket)) return;
    this.#clientErrored.add(socket);
    // HTTP/1.1 reads one request at a time, so only the last one parsed can have a body still arriving.
    const last = this.#lastRequest.get(socket);
    if (last !== undefined) markBodyBroken(last);
    const reply = clientErrorReply(err.code);
    // No HTTP to answer with (a TLS or socket error, a handshake not finished): a reply queued on a TLS
    // socket whose handshake never completes is never sent, and the socket then never closes.
    if (reply === null || (this.#tls && !this.#secured.has(socket))) {
      socket.destroy();
      return;
    }
    this.#afterPending(socket, reply);
  }

  /**
   * Refuses the connection once the responses already owed on it are out: a pipelined request that
   * was read whole is answered first (its prediction ran, was audited and counted against the budget),
   * and so is one whose answer has started. Then `reply` answers the request that failed (as Node's own
   * handler does, it replaces the answer of a request still being read: its handler can no longer
   * write to the connection).
   */
  #afterPending(socket: Duplex, reply: Reply): void {
    // The response writing to the connection now (Node's queue of pipelined responses is internal).
    const res = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (
      res &&
      !socket.destroyed &&
      !this.#abandoned.has(res) &&
      !isBodyBroken(res.req) &&
      (res.req.complete || res.headersSent)
    ) {
      res.once('close', () => this.#afterPending(socket, reply));
      return;
    }
    this.#refuse(socket, reply);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    // A request parsed after the connection's parser reported an error is not served: after an
    // HPE_PAUSED Node has dropped bytes of the stream, so what it parses next is misframed (a body cut
    // short, another request's bytes in a header). The connection's refusal (#afterPending) is
    // already on its way; this response is never written and does not hold it up.
    if (this.#clientErrored.has(req.socket)) {
      this.#abandoned.add(res);
      req.resume();
      return;
    }
    this.#lastRequest.set(req.socket, req);
    this.#inFlight++;
    res.once('close', () => {
      if (--this.#inFlight === 0 && this.#idle) this.#idle();
    });
    this.#route(req, res).catch((e: unknown) => {
      this.logger.error({ err: e }, 'unhandled gateway error');
      if (!res.headersSent) this.#send(res, errorReply(e), true);
      else res.destroy();
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url.length > MAX_URL_BYTES)
      return this.#simple(
        req,
        res,
        errorReply(new BulwarkError('ERR_GATEWAY_URL_TOO_LONG', `URL over ${MAX_URL_BYTES} bytes`)),
      );
    // HTTP/1.1 requires Host (RFC 9112 section 3.2). Node's own check is off: its refusal has no body.
    if (req.headers.host === undefined && req.httpVersion !== '1.0')
      return this.#simple(
        req,
        res,
        errorReply(new BulwarkError('ERR_GATEWAY_REQUEST_INVALID', 'no Host header')),
      );
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const m = ROUTE.exec(path);
    const enclave = this.#enclave !== null && GatewayEnclave.routes(path);
    if (m === null && !enclave && !READ_ROUTES.has(path) && !path.startsWith('/dashboard'))
      return this.#simple(req, res, errorReply(new BulwarkError('ERR_GATEWAY_NOT_FOUND', 'no such route')));
    if (!this.#allow(req, res, enclave || m?.[3] === '/infer' ? WRITE : READ)) return;
    if (path === '/v2/health/live') return this.#simple(req, res, jsonReply(200, { live: true }));
    if (path === '/v2/health/ready')
      return this.#simple(
        req,
        res,
        this.ready && (await this.auditReachable())
          ? jsonReply(200, { ready: true })
          : errorReply(new BulwarkError('ERR_GATEWAY_NOT_READY', 'not ready')),
      );
    if (path.startsWith('/dashboard')) return this.#dashboard(req, res, path);
    if (path === '/favicon.ico') {
      res.writeHead(204, { 'cache-control': 'max-age=86400' }).end();
      return;
    }
    if (path === '/v2')
      return this.#simple(
        req,
        res,
        jsonReply(200, { name: 'bulwark', version: bulwarkVersion(), extensions: [] }),
      );
    if (this.#enclave && enclave) {
      const coding = codingError(req);
      if (coding !== null) return this.#simple(req, res, errorReply(coding));
      this.#continue(res);
      return this.#enclave.handle(req, res, path, this.#authRequest(req), this.#draining);
    }
    // Every other known path was answered above: this is a model route (m matched).
    const [, name, version, tail] = m as unknown as [string, string, string | undefined, string | undefined];
    if (tail === '/infer') return this.#infer(req, res, name, version);
    let reply: Reply;
    try {
      await this.pipeline.authorizeOther(this.#authRequest(req), 'predict', {
        model: name,
        ...(version !== undefined ? { version } : {}),
      });
      const model = this.models.get(name);
      if (!model || (version !== undefined && version !== model.version))
        throw new BulwarkError('ERR_GATEWAY_NOT_FOUND', 'no such model');
      reply =
        tail === '/ready'
          ? jsonReply(200, { name: model.name, ready: model.ready && !this.#draining })
          : jsonReply(200, model.metadata());
    } catch (e) {
      reply = errorReply(e);
      if (reply.status >= 500) this.logger.error({ path, code: reply.code, err: e }, 'request failed');
    }
    this.#simple(req, res, reply);
  }

  async #dashboard(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const assets: Record<string, [string, string]> = {
      '/dashboard': ['text/html; charset=utf-8', DASHBOARD_HTML],
      '/dashboard/app.js': ['text/javascript; charset=utf-8', DASHBOARD_JS],
      '/dashboard/app.css': ['text/css; charset=utf-8', DASHBOARD_CSS],
    };
    const asset = assets[path];
    if (asset) {
      res
        .writeHead(200, {
          'content-type': asset[0],
          'content-length': Buffer.byteLength(asset[1]),
          'content-security-policy': DASHBOARD_CSP,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
          // The CSP's frame-ancestors 'none', for browsers that predate it.
          'x-frame-options': 'DENY',
        })
        .end(asset[1]);
      return;
    }
    if (path !== '/dashboard/data')
      return this.#simple(req, res, errorReply(new BulwarkError('ERR_GATEWAY_NOT_FOUND', 'no such route')));
    let reply: Reply;
    try {
      await this.pipeline.authorizeOther(this.#authRequest(req), 'read-metrics', { model: 'gateway' });
      reply = jsonReply(200, await dashboardData(this));
    } catch (e) {
      reply = errorReply(e);
      if (reply.status >= 500) this.logger.error({ path, code: reply.code, err: e }, 'request failed');
    }
    this.#simple(req, res, reply);
  }

  /** The one method check of every route: another method gets 405 with the route's methods in Allow. */
  #allow(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): boolean {
    if (methods.includes(req.method ?? '')) return true;
    this.#simple(req, res, {
      ...errorReply(new BulwarkError('ERR_GATEWAY_METHOD_NOT_ALLOWED', `use ${methods.join(' or ')}`)),
      headers: { allow: methods.join(', ') },
    });
    return false;
  }

  /** Sends `100 Continue` to a client waiting for it before its body (see 'checkContinue'). */
  #continue(res: ServerResponse): void {
    if (this.#awaitingContinue.delete(res)) res.writeContinue();
  }

  /** Answers a request without a body of interest (the body, if any, is discarded). */
  #simple(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
    const len = Number(req.headers['content-length'] ?? 0);
    if (len > 0 || req.headers['transfer-encoding'] !== undefined) {
      // Do not read what we do not need; the connection cannot be reused with unread bytes on it.
      this.#send(res, reply, true);
      req.resume();
      return;
    }
    this.#send(res, reply);
  }

  async #infer(req: IncomingMessage, res: ServerResponse, model: string, version?: string): Promise<void> {
    const limit = this.config.server.bodyLimitBytes;
    const tooLarge = () =>
      new BulwarkError('ERR_GATEWAY_BODY_TOO_LARGE', `request body over the limit of ${limit} bytes`);
    const content =
      codingError(req) ??
      (JSON_TYPE.test(req.headers['content-type'] ?? '')
        ? null
        : new BulwarkError('ERR_GATEWAY_MEDIA_TYPE', 'send the body as application/json'));
    let pre: BulwarkError | null = null;
    const declared = req.headers['content-length'];
    if (this.#draining) pre = new BulwarkError('ERR_GATEWAY_NOT_READY', 'the gateway is shutting down');
    else if (declared !== undefined && Number(declared) > limit) pre = tooLarge();
    // A body refused for its headers is still read (within the limit) so the connection stays usable,
    // unless the client waits for 100 Continue: it has sent nothing yet, and is refused before it does.
    else if (this.#awaitingContinue.has(res)) pre = content;
    let body: Buffer = Buffer.alloc(0);
    if (pre === null) {
      this.#continue(res);
      let read: LimitedBody;
      try {
        read = await readLimitedBody(req, limit, false);
      } catch {
        // A body cut by its connection's parser error: the connection's refusal answers it
        // (#afterPending does not wait for this response, which is never written).
        if (isBodyBroken(req)) this.#abandoned.add(res);
        else res.destroy();
        return;
      }
      pre = read.over ? tooLarge() : content;
      body = read.body;
    }
    const reply = await this.pipeline.infer({
      model,
      ...(version !== undefined ? { version } : {}),
      body,
      auth: this.#authRequest(req),
      ...(pre ? { preError: pre } : {}),
      ...(this.#tracing ? { traceHeaders: req.headers } : {}),
    });
    if (pre !== null && !req.readableEnded) {
      this.#send(res, reply, true);
      req.resume();
      return;
    }
    this.#send(res, reply);
  }
}
