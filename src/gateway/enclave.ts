/**
 * Attested end-to-end encrypted sessions through the gateway (`enclave.mode: software | nitro`,
 * docs/attestation.md "Gateway integration"):
 *
 * - `POST /v2/attestation` (body: the client's nonce, 16-64 bytes) → the attestation envelope that binds
 *   the session key and the nonce. Authenticated like every route, then rate-limited per principal:
 *   each call costs a signature (an NSM round trip in a Nitro enclave).
 * - `POST /v2/models/{name}[/versions/{v}]/infer-sealed` (body: an OPEN or DATA session frame) → a
 *   RESPONSE frame. The plaintext inside is the Open Inference Protocol body of `/infer`, and it runs
 *   through the same `Pipeline.infer` as a plain request, with the identity of the OUTER request (mTLS
 *   and the bearer token stay in the unencrypted HTTP layer): parse, authenticate, authorise, limits,
 *   validation, detectors, inference, extraction check, hardening, audit. The pipeline's answer, denial
 *   or not, is sealed as `{"status", "code", "body"}`; the outer answer is then always 200, so the host
 *   does not learn the outcome from the status line. Only session-layer failures (malformed frame,
 *   unknown session, replay, decryption, enclave down) are plaintext 4xx/503 JSON with their code.
 *
 * Where the keys live:
 * - `software`: a forked worker process (src/attest SoftwareEnclave) generates the HPKE and signer keys
 *   and opens and seals every frame; the gateway process never holds a session key. The decrypted body
 *   is handed to this process for the pipeline and its buffer is zeroed once the answer is sealed (the
 *   JSON values the pipeline parsed from it stay until garbage collection). NO HARDWARE GUARANTEE: the
 *   host's operator can read both processes' memory.
 * - `nitro`: the whole gateway runs in the enclave; the session server runs in this process and the
 *   Nitro Security Module signs the attestations (NitroAttester; not testable here: no enclave).
 *
 * Audit: `attestation.session` events, `issued` (caller, format, envelope digest) and `opened` (the
 * same digest, the session id); both written before the answer leaves (fail closed). The predictions
 * are the pipeline's usual `prediction` / `request.denied` events.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  ATTESTATION_MEDIA_TYPE,
  AttestedSessionServer,
  type Attester,
  NitroAttester,
  nsmHelperDevice,
  parseFrame,
  type RemoteOpenedRequest,
  SESSION_MEDIA_TYPE,
  SoftwareEnclave,
} from '../attest/index.js';
import type { AuditWriter } from '../audit/index.js';
import { BulwarkError, sha256Digest } from '../core/index.js';
import { readLimitedBody } from './body.js';
import type { EnclaveConfig } from './config.js';
import type { DenialRecorder } from './denials.js';
import { errorReply, type Reply } from './errors.js';
import { principalLimit } from './limits.js';
import type { AuthRequest, Principal } from './peers.js';
import type { Pipeline } from './pipeline.js';
import type { ServedModel } from './served-model.js';

/** The attestation route. */
export const ATTESTATION_PATH = '/v2/attestation';
/** The sealed inference route: model name and optional version. */
export const SEALED_ROUTE =
  /^\/v2\/models\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:\/versions\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127}))?\/infer-sealed$/;
/** Frame overhead over the plaintext: header (at most 4 + 1 + 32 + 32 + 8) and the AES-GCM tag. */
const FRAME_OVERHEAD = 128;
const FRAME_TYPE = /^application\/(vnd\.bulwark\.session|octet-stream)\s*$/i;

/** What the gateway needs of the place that holds the session keys. */
interface SessionHost {
  readonly format: string;
  readonly hardware: boolean;
  /** False when the keys are gone (software worker died): the gateway reports not ready. */
  readonly healthy: boolean;
  attestation(nonce: Uint8Array): Promise<Uint8Array>;
  open(frame: Uint8Array): Promise<RemoteOpenedRequest>;
  close(): Promise<void>;
}

export interface GatewayEnclaveOptions {
  config: EnclaveConfig;
  models: ReadonlyMap<string, ServedModel>;
  pipeline: Pipeline;
  audit: AuditWriter | null;
  /** Where refusals at the session layer are recorded (the pipeline's recorder). */
  denials: DenialRecorder | null;
  logger: Logger;
  bodyLimitBytes: number;
  /** Nitro mode: replaces the NSM device (tests, benchmark). */
  attester?: Attester;
}

/** Public facts of the running enclave, for operators and clients (never keys). */
export interface EnclaveInfo {
  mode: 'software' | 'nitro';
  format: string;
  hardware: boolean;
  /** Software mode: the worker's self-measurements (hex) — pin them in the client's policy. */
  measurements: Readonly<Record<string, string>>;
  /** Software mode: the worker's attestation signer (SPKI PEM) — the client's `roots.software`. */
  signerPublicKey: string | null;
  /** Software mode: the worker's process id. */
  workerPid: number | null;
}

/** The measurement name under which software mode reports a served model's digest. */
export const modelMeasurement = (name: string) => `model.${name}`;

/**
 * Prometheus metrics of the attested sessions, on the gateway's registry. Labels are closed sets (the
 * route and the error code); session ids and callers never appear. Each update is one counter
 * increment; the active-session gauge is computed when scraped.
 */
export class SessionMetrics {
  readonly attestations: Counter;
  readonly opened: Counter;
  readonly refused: Counter<'route' | 'code'>;
  readonly active: Gauge;

  constructor(registry: Registry, activeSessions: () => number) {
    const registers = [registry];
    this.attestations = new Counter({
      name: 'gateway_attestations_issued_total',
      help: 'Attestations issued on /v2/attestation (each a signature; an NSM round trip in a Nitro enclave).',
      registers,
    });
    this.opened = new Counter({
      name: 'gateway_attested_sessions_opened_total',
      help: 'Attested sessions opened (an OPEN frame that authenticated).',
      registers,
    });
    this.refused = new Counter({
      name: 'gateway_attested_refusals_total',
      help: 'Attestation and session-layer refusals, by route and code (ERR_SESSION_REPLAY: replayed frames).',
      labelNames: ['route', 'code'],
      registers,
    });
    this.active = new Gauge({
      name: 'gateway_attested_sessions_active',
      help: 'Attested sessions opened and not yet expired.',
      registers,
      collect() {
        this.set(activeSessions());
      },
    });
  }
}

export class GatewayEnclave {
  readonly info: EnclaveInfo;
  readonly #host: SessionHost;
  readonly #o: GatewayEnclaveOptions;
  readonly #limiter: { consume(principal: string): Promise<void> };
  /** The authenticated caller of a request in progress (for the audit of its refusal). */
  readonly #caller = new WeakMap<object, string>();
  /** Who obtained each pending attestation (by envelope digest) and who opened each session. */
  readonly #issued = new Map<string, { caller: string; expires: number }>();
  readonly #sessions = new Map<string, { caller: string; expires: number }>();
  /** Prometheus counters (sessions opened, active, refusals, attestations issued). */
  readonly metrics: SessionMetrics;

  private constructor(host: SessionHost, info: EnclaveInfo, o: GatewayEnclaveOptions) {
    this.#host = host;
    this.info = info;
    this.#o = o;
    // On the gateway's limiter backend: with `limits.backend: redis` every replica shares one count.
    const perMinute = o.config.attestation.perMinute;
    this.#limiter =
      o.pipeline.options.limiter?.perPrincipal('attestation', perMinute) ??
      principalLimit('attestation', perMinute);
    this.metrics = new SessionMetrics(o.pipeline.options.metrics.registry, () => this.#activeSessions());
  }

  /** Sessions opened through this gateway and not expired (the owner table mirrors the session host's). */
  #activeSessions(): number {
    const now = Date.now();
    let n = 0;
    for (const v of this.#sessions.values()) if (v.expires >= now) n++;
    return n;
  }

  /** Starts the session host of `config.mode` (null for `off`). Fails closed if it cannot start. */
  static async start(o: GatewayEnclaveOptions): Promise<GatewayEnclave | null> {
    const c = o.config;
    if (c.mode === 'off') return null;
    const session = {
      attestationTtlSeconds: c.attestation.ttlSeconds,
      sessionTtlSeconds: c.sessionSeconds,
      maxSessions: c.maxSessions,
    };
    if (c.mode === 'software') {
      const measurements: Record<string, string> = {};
      for (const m of o.models.values())
        measurements[modelMeasurement(m.name)] = m.loaded.modelDigest.replace(/^sha256:/, '');
      const sw = await SoftwareEnclave.start({
        model: null,
        moduleId: c.software?.moduleId ?? 'bulwark-gateway',
        timeoutMs: c.software?.timeoutMs ?? 30_000,
        measurements,
        session,
      });
      o.logger.warn(
        { pid: sw.pid, measurements: sw.measurements },
        'enclave.mode software: attested sessions in a worker process, NO HARDWARE GUARANTEE',
      );
      const host: SessionHost = {
        format: 'software',
        hardware: false,
        get healthy() {
          return sw.alive;
        },
        attestation: (n) => sw.attestation(n),
        open: (f) => sw.open(f),
        close: () => sw.close(),
      };
      return new GatewayEnclave(
        host,
        {
          mode: 'software',
          format: 'software',
          hardware: false,
          measurements: sw.measurements,
          signerPublicKey: sw.signerPublicKey,
          workerPid: sw.pid,
        },
        o,
      );
    }
    const server = await AttestedSessionServer.create({
      attester: o.attester ?? new NitroAttester(nsmHelperDevice(c.nitro?.helper)),
      ...session,
    });
    const host: SessionHost = {
      format: o.attester?.format ?? 'nitro',
      hardware: true,
      healthy: true,
      attestation: (n) => server.attestation(n),
      open: async (f) => {
        const r = await server.openRequest(f);
        return {
          plaintext: r.plaintext,
          sessionId: r.sessionId,
          seq: r.seq,
          respond: async (pt: Uint8Array) => r.respond(pt),
        };
      },
      close: async () => {},
    };
    o.logger.info(
      o.attester
        ? `enclave.mode nitro with a substitute attester (${o.attester.format}): tests and benchmarks only`
        : 'enclave.mode nitro: attestations from the Nitro Security Module',
    );
    return new GatewayEnclave(
      host,
      {
        mode: 'nitro',
        format: host.format,
        hardware: true,
        measurements: {},
        signerPublicKey: null,
        workerPid: null,
      },
      o,
    );
  }

  /** False when the session host lost its keys (software worker died); readiness follows it. */
  get healthy(): boolean {
    return this.#host.healthy;
  }

  /** True for the paths this module answers. */
  static routes(path: string): boolean {
    return path === ATTESTATION_PATH || path.endsWith('/infer-sealed');
  }

  /** Answers an attestation or sealed-inference request. Never throws. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    auth: AuthRequest,
    draining: boolean,
  ) {
    let reply: Reply | { status: 200; type: string; bytes: Uint8Array };
    try {
      if (req.method !== 'POST') throw new BulwarkError('ERR_GATEWAY_METHOD_NOT_ALLOWED', 'use POST');
      if (draining) throw new BulwarkError('ERR_GATEWAY_NOT_READY', 'the gateway is shutting down');
      if (path === ATTESTATION_PATH) {
        const body = await readBody(req, 1024);
        reply = { status: 200, type: ATTESTATION_MEDIA_TYPE, bytes: await this.#attest(body, auth) };
      } else {
        const m = SEALED_ROUTE.exec(path);
        if (m === null) throw new BulwarkError('ERR_GATEWAY_NOT_FOUND', 'no such route');
        const body = await readBody(req, this.#o.bodyLimitBytes + FRAME_OVERHEAD);
        if (!FRAME_TYPE.test(req.headers['content-type'] ?? ''))
          throw new BulwarkError('ERR_GATEWAY_MEDIA_TYPE', `send the frame as ${SESSION_MEDIA_TYPE}`);
        const [, name, version] = m as unknown as [string, string, string | undefined];
        reply = {
          status: 200,
          type: SESSION_MEDIA_TYPE,
          bytes: await this.#infer(body, name, version, auth),
        };
      }
    } catch (e) {
      reply = errorReply(e);
      if (reply.status >= 500)
        this.#o.logger.warn({ code: reply.code, err: e }, 'attested session request failed');
      // Refusals at the session layer (replays, altered frames, another principal's session, rate
      // limit) are security events: recorded like the pipeline's denials, without waiting for the commit.
      const stage = path === ATTESTATION_PATH ? 'attestation' : 'session';
      const code = reply.code;
      this.metrics.refused.labels(stage, code).inc();
      this.#o.denials?.record({
        requestId: randomUUID(),
        caller: this.#caller.get(auth) ?? null,
        stage,
        code,
      });
    }
    const complete = req.readableEnded;
    if ('bytes' in reply) {
      res
        .writeHead(200, {
          'content-type': reply.type,
          'content-length': reply.bytes.length,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        })
        .end(reply.bytes);
    } else {
      res
        .writeHead(reply.status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(reply.body),
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          ...(reply.status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
          ...(complete ? {} : { connection: 'close' }),
          ...reply.headers,
        })
        .end(reply.body);
    }
    if (!complete) req.resume();
  }

  /** Authenticates the outer request; the principal is handed to the pipeline (not verified twice). */
  async #principal(auth: AuthRequest): Promise<{ caller: string; principal: Principal | undefined }> {
    const a = this.#o.pipeline.options.authenticator;
    const principal = a ? await a.authenticate(auth) : undefined;
    const caller = principal ? principal.id.slice(0, 256) : 'anonymous';
    this.#caller.set(auth, caller);
    return { caller, principal };
  }

  async #attest(nonce: Buffer, auth: AuthRequest): Promise<Uint8Array> {
    const { caller } = await this.#principal(auth);
    await this.#limiter.consume(caller);
    const envelope = await this.#host.attestation(new Uint8Array(nonce));
    this.metrics.attestations.inc();
    const transcript = sha256Digest(envelope);
    await this.#record({ event: 'issued', caller, transcript });
    const c = this.#o.config;
    remember(
      this.#issued,
      transcript.slice(7),
      caller,
      Date.now() + c.attestation.ttlSeconds * 1000,
      c.maxSessions,
    );
    return envelope;
  }

  async #infer(frame: Buffer, model: string, version: string | undefined, auth: AuthRequest) {
    const f = parseFrame(frame);
    // The outer layer first: who sends this frame (plaintext 401 as on every route), and is it the
    // principal the attestation was issued to / the session was opened by? A frame captured from one
    // caller cannot be spent under another's credentials (403 ERR_SESSION_UNKNOWN, before decryption).
    const { caller, principal } = await this.#principal(auth);
    const now = Date.now();
    const key =
      f.type === 1 ? Buffer.from(f.transcript).toString('hex') : Buffer.from(f.sessionId).toString('hex');
    const owner = (f.type === 1 ? this.#issued : this.#sessions).get(key);
    // A DATA frame of a session with no owner on record (expired, or evicted from the table) is refused
    // here too, not let through to the host unchecked: the host keeps a session no longer than this
    // table does, so no live session is lost, and a captured frame is never spent without the
    // ownership check. (An OPEN whose attestation is no longer on record goes on to the host, which
    // refuses it as used (ERR_SESSION_REPLAY) or unknown: this table forgets an attestation once used.)
    if (f.type !== 1 && (!owner || owner.expires < now))
      throw new BulwarkError(
        'ERR_SESSION_UNKNOWN',
        'attested session: unknown or expired session (attest again)',
      );
    if (owner && owner.expires >= now && owner.caller !== caller)
      throw new BulwarkError(
        'ERR_SESSION_UNKNOWN',
        f.type === 1
          ? 'attested session: this attestation was issued to another principal'
          : 'attested session: this session belongs to another principal',
      );
    const opened = await this.#host.open(frame);
    const pt = opened.plaintext;
    try {
      let reply: Reply;
      if (f.type === 1) {
        this.metrics.opened.inc();
        this.#issued.delete(key);
        remember(
          this.#sessions,
          opened.sessionId,
          caller,
          now + this.#o.config.sessionSeconds * 1000,
          this.#o.config.maxSessions,
        );
        // OPEN: record the session before anything runs in it (fail closed, sealed to the client).
        try {
          await this.#record({
            event: 'opened',
            caller,
            transcript: `sha256:${key}`,
            sessionId: opened.sessionId,
          });
          reply = await this.#pipeline(pt, model, version, auth, principal);
        } catch (e) {
          reply = errorReply(e);
          if (reply.status >= 500)
            this.#o.logger.warn({ code: reply.code, err: e }, 'attested session could not be opened');
        }
      } else reply = await this.#pipeline(pt, model, version, auth, principal);
      const rid = reply.headers?.['x-request-id'];
      const sealed = `{"status":${reply.status},"code":${JSON.stringify(reply.code)},${rid ? `"requestId":${JSON.stringify(rid)},` : ''}"body":${reply.body}}`;
      return await opened.respond(Buffer.from(sealed));
    } finally {
      pt.fill(0);
    }
  }

  #pipeline(
    pt: Uint8Array,
    model: string,
    version: string | undefined,
    auth: AuthRequest,
    principal: Principal | undefined,
  ): Promise<Reply> {
    return this.#o.pipeline.infer({
      model,
      ...(version !== undefined ? { version } : {}),
      body: Buffer.from(pt.buffer, pt.byteOffset, pt.byteLength),
      auth,
      ...(principal ? { principal } : {}),
    });
  }

  async #record(d: { event: 'issued' | 'opened'; caller: string; transcript: string; sessionId?: string }) {
    const audit = this.#o.audit;
    if (!audit) return;
    try {
      await audit.append({
        type: 'attestation.session',
        data: {
          event: d.event,
          caller: d.caller.slice(0, 256),
          format: this.#host.format,
          hardware: this.#host.hardware,
          transcript: d.transcript,
          ...(d.sessionId !== undefined ? { sessionId: d.sessionId } : {}),
        },
      });
    } catch (e) {
      throw new BulwarkError('ERR_AUDIT_UNAVAILABLE', 'the audit log cannot be written; request refused', {
        cause: e,
      });
    }
  }

  /** Stops the session host (software mode: the worker and its keys). */
  close(): Promise<void> {
    return this.#host.close();
  }
}

/** Records `key → caller` until `expires`, dropping expired entries and the oldest over `max`. */
function remember(
  m: Map<string, { caller: string; expires: number }>,
  key: string,
  caller: string,
  expires: number,
  max: number,
): void {
  const now = Date.now();
  for (const [k, v] of m) {
    if (v.expires >= now && m.size < max) break;
    m.delete(k);
  }
  m.delete(key);
  m.set(key, { caller, expires });
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit)
    throw new BulwarkError('ERR_GATEWAY_BODY_TOO_LARGE', `request body over the limit of ${limit} bytes`);
  const { body, over } = await readLimitedBody(req, limit, true);
  if (over)
    throw new BulwarkError('ERR_GATEWAY_BODY_TOO_LARGE', `request body over the limit of ${limit} bytes`);
  return body;
}
