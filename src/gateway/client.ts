/**
 * `bulwark/client`: a small TypeScript client for the Bulwark gateway (and any KServe v2 / Open Inference
 * Protocol REST server): mutual TLS, a bearer or DPoP-bound token (fixed or fetched per call), keep-alive connections,
 * and the v2 calls; and an attested mode (AttestedGatewayClient) for end-to-end encrypted sessions.
 *
 * @example
 * ```ts
 * import { GatewayClient } from 'bulwark/client';
 * const client = new GatewayClient({
 *   url: 'https://gateway.internal:8443',
 *   ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client.key'),
 *   token: () => tokenSource.get(),
 * });
 * const out = await client.inferRows('fraud', [{ amount: 120.5, age: 39, kind: 'B' }]);
 * console.log(out.outputs[0].data);
 * client.close();
 * ```
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import {
  ATTESTATION_MEDIA_TYPE,
  type AttestationClaims,
  ClientSession,
  type ClientVerifyOptions,
  SESSION_MEDIA_TYPE,
} from '../attest/index.js';
import { type DpopKey, dpopProof } from './auth/dpop-proof.js';

/** DPoP (RFC 9449) for the client: a key pair, and a proof for a token request to the issuer. */
export { createDpopKey, type DpopAlgorithm, type DpopKey, dpopProof } from './auth/dpop-proof.js';

export interface GatewayClientOptions {
  /** Base URL, `https://host:port` (`http://` only with {@link insecurePlaintext}). */
  url: string;
  /**
   * Allow an `http://` URL (a loopback sidecar behind a mesh that does the TLS): the bearer token and
   * every input then travel unencrypted. Without it an `http://` URL is refused, so a mistyped scheme
   * cannot silently send the token in the clear.
   */
  insecurePlaintext?: boolean;
  /** CA bundle the server certificate must chain to (PEM). */
  ca?: string | Buffer;
  /** Client certificate and key for mutual TLS (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** TLS server name to verify when the URL holds an address (`localhost`, `gateway.internal`). */
  servername?: string;
  /** Bearer access token, or a function returning a fresh one per call. */
  token?: string | (() => string | Promise<string>);
  /**
   * The DPoP key the token is bound to (RFC 9449; {@link createDpopKey}): the token is then sent as
   * `Authorization: DPoP <token>` with a fresh proof for each request's method and URL. The gateway's
   * latest `DPoP-Nonce` goes into every proof; a refusal asking for a newer one is retried once.
   */
  dpop?: DpopKey;
  /** Per-request timeout in ms, for the whole exchange (default 30,000). */
  timeoutMs?: number;
  /** Connections kept open (default 16). */
  maxSockets?: number;
}

/** A v2 tensor. */
export interface Tensor {
  name: string;
  shape: number[];
  datatype: string;
  data: (number | string | boolean | null)[];
  parameters?: Record<string, string | number | boolean>;
}

export interface InferRequest {
  id?: string;
  parameters?: Record<string, string | number | boolean>;
  inputs: Tensor[];
  outputs?: { name: string; parameters?: Record<string, string | number | boolean> }[];
}

export interface InferResponse {
  model_name: string;
  model_version?: string;
  id: string;
  outputs: Tensor[];
}

/** An error answer of the gateway: HTTP status and its stable code. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

/** A raw answer. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body's bytes (binary answers: attestation envelopes, session frames). */
  raw: Buffer;
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function segment(name: string, what: string): string {
  if (!SEGMENT.test(name))
    throw new TypeError(`${what}: expected letters, digits, _ . - (got ${JSON.stringify(name)})`);
  return name;
}

export class GatewayClient {
  readonly #url: URL;
  readonly #agent: http.Agent;
  /** The gateway's latest `DPoP-Nonce` (RFC 9449 §9), put in every proof once seen. */
  #dpopNonce: string | undefined;
  readonly #o: GatewayClientOptions;

  constructor(options: GatewayClientOptions) {
    this.#o = options;
    this.#url = new URL(options.url);
    if (this.#url.protocol !== 'https:' && this.#url.protocol !== 'http:')
      throw new TypeError(`url: expected https:// or http://, got ${this.#url.protocol}`);
    if (this.#url.protocol === 'http:' && options.insecurePlaintext !== true)
      throw new TypeError(
        'url: http:// sends the token and the inputs unencrypted; use https://, or set insecurePlaintext: true for a loopback sidecar',
      );
    for (const k of ['timeoutMs', 'maxSockets'] as const) {
      const v = options[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1))
        throw new TypeError(`${k}: expected a positive integer, got ${String(v)}`);
    }
    const common = { keepAlive: true, maxSockets: options.maxSockets ?? 16 };
    this.#agent =
      this.#url.protocol === 'https:'
        ? new https.Agent({
            ...common,
            minVersion: 'TLSv1.3',
            // Explicit: Node's default follows NODE_TLS_REJECT_UNAUTHORIZED=0, a process-wide switch
            // that would turn off the server's certificate check for this client without a word to it.
            rejectUnauthorized: true,
            ...(options.ca !== undefined ? { ca: options.ca } : {}),
            ...(options.cert !== undefined ? { cert: options.cert } : {}),
            ...(options.key !== undefined ? { key: options.key } : {}),
            ...(options.servername !== undefined ? { servername: options.servername } : {}),
          })
        : new http.Agent(common);
  }

  /** Sends one request and returns the raw answer (no status check). */
  async request(
    method: 'GET' | 'POST',
    path: string,
    body?: string | Buffer,
    headers: Record<string, string> = {},
  ): Promise<RawResponse> {
    const token = typeof this.#o.token === 'function' ? await this.#o.token() : this.#o.token;
    const sentNonce = this.#dpopNonce;
    const r = await this.#send(method, path, token, body, headers);
    // RFC 9449 §9: a gateway that requires nonces refuses a proof without its latest one and sends a
    // fresh one; try once more with it (never in a loop).
    if (
      r.status === 401 &&
      this.#o.dpop !== undefined &&
      this.#dpopNonce !== sentNonce &&
      /\berror="use_dpop_nonce"/.test(String(r.headers['www-authenticate'] ?? ''))
    )
      return this.#send(method, path, token, body, headers);
    return r;
  }

  async #send(
    method: 'GET' | 'POST',
    path: string,
    token: string | undefined,
    body: string | Buffer | undefined,
    headers: Record<string, string>,
  ): Promise<RawResponse> {
    const h: Record<string, string | number> = { accept: 'application/json', ...headers };
    if (token !== undefined && this.#o.dpop !== undefined) {
      h['authorization'] = `DPoP ${token}`;
      h['dpop'] = await dpopProof(this.#o.dpop, method, new URL(path, this.#url), token, this.#dpopNonce);
    } else if (token !== undefined) h['authorization'] = `Bearer ${token}`;
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const mod = this.#url.protocol === 'https:' ? https : http;
    const ms = this.#o.timeoutMs ?? 30_000;
    return new Promise<RawResponse>((resolve, reject) => {
      // The whole exchange, not only each idle gap: a server trickling its answer a byte at a time
      // never trips the socket's idle timeout.
      const deadline = setTimeout(() => req.destroy(new Error(`request timed out after ${ms} ms`)), ms);
      const fail = (e: unknown) => {
        clearTimeout(deadline);
        reject(e);
      };
      const req = mod.request(
        {
          protocol: this.#url.protocol,
          hostname: this.#url.hostname.replace(/^\[|\]$/g, ''),
          port: this.#url.port,
          path,
          method,
          agent: this.#agent,
          headers: h,
          timeout: ms,
          ...(this.#o.servername !== undefined ? { servername: this.#o.servername } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(deadline);
            const raw = Buffer.concat(chunks);
            const nonce = res.headers['dpop-nonce'];
            if (typeof nonce === 'string' && nonce.length > 0 && nonce.length <= 512) this.#dpopNonce = nonce;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
          });
          res.on('error', fail);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`request timed out after ${ms} ms`)));
      req.on('error', fail);
      req.end(body);
    });
  }

  async #json<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const r = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body));
    let value: unknown;
    try {
      value = JSON.parse(r.body);
    } catch {
      throw new GatewayError(r.status, 'ERR_CLIENT_RESPONSE', `answer is not JSON (HTTP ${r.status})`);
    }
    if (r.status < 200 || r.status >= 300) {
      const v = value as { error?: unknown; code?: unknown };
      throw new GatewayError(
        r.status,
        typeof v.code === 'string' ? v.code : `HTTP_${r.status}`,
        typeof v.error === 'string' ? v.error : `HTTP ${r.status}`,
      );
    }
    return value as T;
  }

  async live(): Promise<boolean> {
    return (await this.request('GET', '/v2/health/live')).status === 200;
  }

  async ready(): Promise<boolean> {
    return (await this.request('GET', '/v2/health/ready')).status === 200;
  }

  #modelPath(name: string, version?: string): string {
    return `/v2/models/${segment(name, 'model')}${version === undefined ? '' : `/versions/${segment(version, 'version')}`}`;
  }

  /** `GET /v2/models/{name}[/versions/{v}]`. */
  modelMetadata(name: string, version?: string): Promise<Record<string, unknown>> {
    return this.#json('GET', this.#modelPath(name, version));
  }

  async modelReady(name: string, version?: string): Promise<boolean> {
    const r = await this.#json<{ ready: boolean }>('GET', `${this.#modelPath(name, version)}/ready`);
    return r.ready === true;
  }

  /** `POST /v2/models/{name}[/versions/{v}]/infer`; throws {@link GatewayError} on a refusal. */
  infer(name: string, request: InferRequest, options: { version?: string } = {}): Promise<InferResponse> {
    return this.#json('POST', `${this.#modelPath(name, options.version)}/infer`, request);
  }

  /**
   * Infers on rows of named fields: one input tensor per field (numbers as FP64, strings as BYTES), the
   * columnar form the gateway expects for tabular models.
   */
  inferRows(
    name: string,
    rows: readonly Record<string, number | string | null>[],
    options: { version?: string; id?: string } = {},
  ): Promise<InferResponse> {
    if (rows.length === 0) throw new TypeError('rows: expected at least one row');
    // Every field of every row: a field absent from the first row is sent (null where a row lacks it),
    // not dropped, so the gateway's schema check sees what the caller gave.
    const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const inputs: Tensor[] = names.map((n) => {
      const data = rows.map((r) => (Object.hasOwn(r, n) ? (r[n] as number | string | null) : null));
      const numeric = data.every((v) => v === null || typeof v === 'number');
      return { name: n, shape: [rows.length], datatype: numeric ? 'FP64' : 'BYTES', data };
    });
    return this.infer(
      name,
      { ...(options.id !== undefined ? { id: options.id } : {}), inputs },
      options.version !== undefined ? { version: options.version } : {},
    );
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}

/** Attestation policies for the attested mode (src/attest/policy.ts). */
export { type AttestationPolicy, parsePolicy, productionPolicy } from '../attest/index.js';

export interface AttestedGatewayClientOptions extends GatewayClientOptions, ClientVerifyOptions {}

/** The sealed answer's plaintext: the pipeline's status, code and JSON body. */
interface SealedReply {
  status: number;
  code: string;
  body: unknown;
}

/**
 * The attested mode of the client (docs/attestation.md): `connect()` fetches an attestation for a fresh
 * 32-byte nonce from `POST /v2/attestation`, verifies it against `policy` (allowed measurements, no
 * debug, hardware required or not, freshness), the pinned `roots` and any `crls`, and sets up the HPKE session to
 * the key it binds; `infer` and `inferRows` then send each request sealed to
 * `/v2/models/{name}[/versions/{v}]/infer-sealed` and open the sealed answer. Nothing is sent to a
 * gateway whose attestation fails the policy. Denials by the pipeline arrive sealed and are thrown as
 * {@link GatewayError}; session-layer refusals arrive in plaintext with their code. A response that is
 * replayed, altered, or for another request or session is refused (`ERR_SESSION_*`). mTLS and the
 * bearer token stay on the outer HTTPS request, as on the plain path.
 */
export class AttestedGatewayClient extends GatewayClient {
  readonly #verify: ClientVerifyOptions;
  #session: ClientSession | undefined;

  constructor(options: AttestedGatewayClientOptions) {
    super(options);
    if (!options.policy) throw new TypeError('policy: an attestation policy is required in attested mode');
    this.#verify = {
      policy: options.policy,
      ...(options.roots ? { roots: options.roots } : {}),
      ...(options.crls ? { crls: options.crls } : {}),
      ...(options.now ? { now: options.now } : {}),
    };
  }

  /** The verified claims of the current session (after `connect`). */
  get claims(): AttestationClaims | undefined {
    return this.#session?.claims;
  }

  /** Fetches and verifies an attestation (fresh nonce) and sets up a new session. */
  async connect(): Promise<AttestationClaims> {
    const nonce = randomBytes(32);
    const r = await this.request('POST', '/v2/attestation', nonce, {
      'content-type': 'application/octet-stream',
      accept: ATTESTATION_MEDIA_TYPE,
    });
    if (r.status !== 200) throw errorOf(r);
    this.#session = await ClientSession.establish(new Uint8Array(r.raw), new Uint8Array(nonce), this.#verify);
    return this.#session.claims;
  }

  /** Sends a sealed frame and returns the opened answer (reconnects once if the session is gone). */
  async sealed(path: string, plaintext: Uint8Array): Promise<Uint8Array> {
    if (!this.#session) await this.connect();
    try {
      return await this.#send(path, plaintext);
    } catch (e) {
      if (!(e instanceof GatewayError) || e.code !== 'ERR_SESSION_UNKNOWN') throw e;
      await this.connect();
      return this.#send(path, plaintext);
    }
  }

  async #send(path: string, plaintext: Uint8Array): Promise<Uint8Array> {
    const s = this.#session as ClientSession;
    const { frame, seq } = s.sealRequest(plaintext);
    const r = await this.request('POST', path, Buffer.from(frame), {
      'content-type': SESSION_MEDIA_TYPE,
      accept: SESSION_MEDIA_TYPE,
    });
    if (r.status !== 200) throw errorOf(r);
    return s.openResponse(new Uint8Array(r.raw), seq);
  }

  /** `infer`, sealed end to end to the attested enclave. */
  override async infer(
    name: string,
    request: InferRequest,
    options: { version?: string } = {},
  ): Promise<InferResponse> {
    const path = `/v2/models/${segment(name, 'model')}${options.version === undefined ? '' : `/versions/${segment(options.version, 'version')}`}/infer-sealed`;
    const pt = await this.sealed(path, Buffer.from(JSON.stringify(request)));
    let reply: SealedReply;
    try {
      reply = JSON.parse(Buffer.from(pt).toString('utf8')) as SealedReply;
    } catch {
      throw new GatewayError(502, 'ERR_CLIENT_RESPONSE', 'sealed answer is not JSON');
    }
    if (reply.status < 200 || reply.status >= 300) {
      const b = (reply.body ?? {}) as { error?: unknown };
      throw new GatewayError(
        reply.status,
        reply.code,
        typeof b.error === 'string' ? b.error : `HTTP ${reply.status}`,
      );
    }
    return reply.body as InferResponse;
  }
}

function errorOf(r: RawResponse): GatewayError {
  try {
    const v = JSON.parse(r.body) as { error?: unknown; code?: unknown };
    return new GatewayError(
      r.status,
      typeof v.code === 'string' ? v.code : `HTTP_${r.status}`,
      typeof v.error === 'string' ? v.error : `HTTP ${r.status}`,
    );
  } catch {
    return new GatewayError(r.status, `HTTP_${r.status}`, `HTTP ${r.status}`);
  }
}
