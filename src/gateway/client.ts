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
import { NOT_ONE_LINE_CHARS } from '../core/index.js';
import { type DpopKey, dpopProof } from './auth/dpop-proof.js';
import { readLimitedBody } from './body.js';

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
  /** Per-request timeout in ms, for the whole exchange (default 30,000; at most 2,147,483,647). */
  timeoutMs?: number;
  /**
   * Largest answer body read, in bytes (default 16 MiB, at most 256 MiB): a bigger one, announced by
   * `Content-Length` or streamed, is cut off and refused with `ERR_CLIENT_RESPONSE_TOO_LARGE`.
   */
  maxResponseBytes?: number;
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
  if (typeof name !== 'string' || !SEGMENT.test(name))
    throw new TypeError(
      `${what}: expected letters, digits, _ . - (got ${JSON.stringify(String(name).slice(0, 64))})`,
    );
  return name;
}

const DEFAULT_MAX_RESPONSE = 16 << 20;
const MAX_RESPONSE_CAP = 256 << 20;
/** setTimeout's largest delay: a longer one fires at once (Node's TimeoutOverflowWarning). */
const MAX_TIMEOUT = 2_147_483_647;
/**
 * RFC 6750 §2.1 `b64token` (RFC 9449 §7.1 uses the same token68 for DPoP): what a bearer token may hold.
 * Checked before the header is built, so a token with a CR/LF (a file read with its trailing newline, or
 * a hostile token source) is refused by name instead of reaching the header, and is never echoed.
 */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** A request path: origin-form (RFC 9112 §3.2.1), visible ASCII, no fragment, not `//host`. */
const PATH = /^\/(?!\/)[\x21-\x22\x24-\x7e]*$/;
/** A gateway error code as the gateway writes them (src/core/error-codes.ts). */
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

function checkToken(token: unknown): string {
  if (typeof token !== 'string' || !TOKEN.test(token))
    throw new TypeError(
      'token: expected an RFC 6750 b64token (letters, digits, - . _ ~ + / and trailing =); the token given has another character (a trailing newline?) and is not sent',
    );
  return token;
}

export class GatewayClient {
  readonly #url: URL;
  readonly #agent: http.Agent;
  /** The gateway's latest `DPoP-Nonce` (RFC 9449 §9), put in every proof once seen. */
  #dpopNonce: string | undefined;
  readonly #o: GatewayClientOptions;
  readonly #sentTokens: string[] = [];

  constructor(options: GatewayClientOptions) {
    this.#o = options;
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      // Not echoed: the string may hold credentials (https://user:secret@host).
      throw new TypeError('url: expected an absolute https:// URL, https://host[:port]');
    }
    this.#url = url;
    // Requests go to /v2/... at the root: a path, query or fragment would be silently dropped, and
    // credentials in the URL would never be sent (the token is the credential); refuse them instead.
    if (url.username !== '' || url.password !== '')
      throw new TypeError('url: credentials in the URL are not sent; give the token in `token`');
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
      throw new TypeError(
        'url: expected https://host[:port] without a path, query or fragment (requests go to /v2/... at its root)',
      );
    if (this.#url.protocol !== 'https:' && this.#url.protocol !== 'http:')
      throw new TypeError(`url: expected https:// or http://, got ${this.#url.protocol}`);
    if (this.#url.protocol === 'http:' && options.insecurePlaintext !== true)
      throw new TypeError(
        'url: http:// sends the token and the inputs unencrypted; use https://, or set insecurePlaintext: true for a loopback sidecar',
      );
    for (const k of ['timeoutMs', 'maxSockets', 'maxResponseBytes'] as const) {
      const v = options[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1))
        throw new TypeError(`${k}: expected a positive integer, got ${String(v)}`);
    }
    if (options.timeoutMs !== undefined && options.timeoutMs > MAX_TIMEOUT)
      throw new TypeError(`timeoutMs: expected at most ${MAX_TIMEOUT}, got ${options.timeoutMs}`);
    if (options.maxResponseBytes !== undefined && options.maxResponseBytes > MAX_RESPONSE_CAP)
      throw new TypeError(
        `maxResponseBytes: expected at most ${MAX_RESPONSE_CAP}, got ${options.maxResponseBytes}`,
      );
    // A certificate without its key (or a key without its certificate) makes Node send no client
    // certificate at all: mutual TLS would be silently off.
    if ((options.cert === undefined) !== (options.key === undefined))
      throw new TypeError(
        `${options.cert === undefined ? 'cert' : 'key'}: mutual TLS needs both cert and key; only ${options.cert === undefined ? 'key' : 'cert'} was given`,
      );
    if (typeof options.token === 'string') checkToken(options.token);
    else if (options.token !== undefined && typeof options.token !== 'function')
      throw new TypeError('token: expected a string or a function returning one');
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
    if (typeof path !== 'string' || !PATH.test(path))
      throw new TypeError('path: expected an absolute path such as /v2/health/live (visible ASCII, no #)');
    const fresh = typeof this.#o.token === 'function' ? await this.#o.token() : this.#o.token;
    const token = fresh === undefined ? undefined : checkToken(fresh);
    if (token !== undefined && !this.#sentTokens.includes(token)) {
      // The last few tokens sent (a token function may rotate them): redacted from refusals' text.
      this.#sentTokens.push(token);
      if (this.#sentTokens.length > 4) this.#sentTokens.shift();
    }
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
    // Lower-cased, so a caller's `Authorization` cannot ride along beside the one set here.
    const h: Record<string, string | number> = { accept: 'application/json', 'accept-encoding': 'identity' };
    for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = v;
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
    const limit = this.#o.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
    return new Promise<RawResponse>((resolve, reject) => {
      let deadline: NodeJS.Timeout | undefined;
      const fail = (e: unknown) => {
        clearTimeout(deadline);
        reject(e);
      };
      let req: http.ClientRequest;
      try {
        req = mod.request(
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
            const tooLarge = () =>
              new GatewayError(
                res.statusCode ?? 0,
                'ERR_CLIENT_RESPONSE_TOO_LARGE',
                `answer body over maxResponseBytes (${limit} bytes; HTTP ${res.statusCode ?? 0})`,
              );
            const declared = Number(res.headers['content-length']);
            if (Number.isFinite(declared) && declared > limit) {
              req.destroy(tooLarge());
              return;
            }
            // The gateway's own bounded reader (body.ts): bytes past the limit are dropped, never
            // buffered, and it returns as soon as the bound is passed, so a server streaming without
            // end cannot fill the caller's memory until the deadline.
            readLimitedBody(res, limit, false).then(({ body, over }) => {
              // The caller keeps `raw`: a chunked answer's buffer, grown by doubling from 16 KiB, can be
              // up to twice the body (or 16 KiB for a short one), so it gets a copy of its own size then.
              const raw =
                body.buffer.byteLength > Math.max(body.length, Buffer.poolSize) ? Buffer.from(body) : body;
              if (over) {
                fail(tooLarge());
                req.destroy();
                return;
              }
              clearTimeout(deadline);
              const nonce = res.headers['dpop-nonce'];
              if (typeof nonce === 'string' && nonce.length > 0 && nonce.length <= 512)
                this.#dpopNonce = nonce;
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw });
            }, fail);
          },
        );
      } catch (e) {
        // Node refuses a header with a CR/LF or a non-Latin-1 character synchronously (its message names
        // the header, not the value). No timer is armed yet: before, the deadline set above the request
        // fired later on a `req` never assigned and threw out of the timer, ending the caller's process.
        reject(e);
        return;
      }
      // The whole exchange, not only each idle gap: a server trickling its answer a byte at a time
      // never trips the socket's idle timeout.
      deadline = setTimeout(() => req.destroy(new Error(`request timed out after ${ms} ms`)), ms);
      req.on('timeout', () => req.destroy(new Error(`request timed out after ${ms} ms`)));
      req.on('error', fail);
      req.end(body);
    });
  }

  /**
   * The {@link GatewayError} of a refusal (`value`: its parsed JSON body), its text stripped of every
   * token this client sent lately, whatever its shape (an opaque token echoed by a server is not
   * JWT-shaped nor behind `Bearer`).
   */
  protected refusal(status: number, value: unknown): GatewayError {
    return errorFrom(status, value, this.#sentTokens);
  }

  /** {@link refusal} of a raw answer whose body may not be JSON. */
  protected refusalOf(r: RawResponse): GatewayError {
    let value: unknown;
    try {
      value = parseAnswer(r);
    } catch {
      value = undefined;
    }
    return this.refusal(r.status, value);
  }

  async #json(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const r = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body));
    const value = parseAnswer(r);
    if (r.status < 200 || r.status >= 300) throw this.refusal(r.status, value);
    return value;
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
  async modelMetadata(name: string, version?: string): Promise<Record<string, unknown>> {
    const v = await this.#json('GET', this.#modelPath(name, version));
    if (!isObject(v)) throw malformed(200, 'model metadata is not a JSON object');
    return v;
  }

  async modelReady(name: string, version?: string): Promise<boolean> {
    const r = await this.#json('GET', `${this.#modelPath(name, version)}/ready`);
    return isObject(r) && r['ready'] === true;
  }

  /**
   * `POST /v2/models/{name}[/versions/{v}]/infer`; throws {@link GatewayError} on a refusal, and
   * `ERR_CLIENT_RESPONSE` on an answer that is not a v2 inference response (checked, not cast).
   */
  async infer(
    name: string,
    request: InferRequest,
    options: { version?: string } = {},
  ): Promise<InferResponse> {
    return inferResponse(
      await this.#json('POST', `${this.#modelPath(name, options.version)}/infer`, request),
    );
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
    if (r.status !== 200) throw this.refusalOf(r);
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
    if (r.status !== 200) throw this.refusalOf(r);
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
    const reply = parseJson(Buffer.from(pt).toString('utf8'), 502, 'sealed answer');
    if (
      !isObject(reply) ||
      !Number.isInteger(reply['status']) ||
      (reply['status'] as number) < 100 ||
      (reply['status'] as number) > 599
    )
      throw malformed(502, 'sealed answer: expected {status, code, body}');
    const status = reply['status'] as number;
    if (status < 200 || status >= 300) {
      const body = isObject(reply['body']) ? reply['body'] : {};
      throw this.refusal(status, { ...body, code: reply['code'] });
    }
    return inferResponse(reply['body']);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function malformed(status: number, message: string): GatewayError {
  return new GatewayError(status, 'ERR_CLIENT_RESPONSE', message);
}

/**
 * JSON.parse, then a walk that refuses what JSON.parse lets through but a caller would not expect of a
 * valid answer: a `__proto__` key (an own property after JSON.parse, which `Object.assign`, a recursive
 * merge or a for-in copy turns into a prototype change of the target) and a number out of the double
 * range (`1e999` parses to Infinity; no gateway writes one: JSON.stringify writes null).
 */
function parseJson(text: string, status: number, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed(status, `${what} is not JSON (HTTP ${status})`);
  }
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'number' && !Number.isFinite(v))
      throw malformed(status, `${what} holds a number out of range (HTTP ${status})`);
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    if (Object.hasOwn(v, '__proto__'))
      throw malformed(status, `${what} has a __proto__ key (HTTP ${status})`);
    for (const x of Object.values(v)) stack.push(x);
  }
  return value;
}

/** The JSON of an answer. The client asks for `identity`; a compressed body is refused, not inflated. */
function parseAnswer(r: RawResponse): unknown {
  const enc = r.headers['content-encoding'];
  if (enc !== undefined && enc.trim().toLowerCase() !== 'identity')
    throw malformed(r.status, `answer is compressed (content-encoding not identity; HTTP ${r.status})`);
  return parseJson(r.body, r.status, 'answer');
}

/**
 * Text of the server for an error message: control characters and line breaks (CR/LF, ANSI escapes,
 * U+2028) and bidirectional marks (core's NOT_ONE_LINE_CHARS, as `audit tail` escapes them) become
 * spaces so it cannot forge log lines, a token the client sent (`sent`), a JWT or a `Bearer`/`DPoP`
 * credential in it is replaced, and it is cut at 512 characters.
 */

function serverText(text: string, sent: readonly string[]): string {
  let t = text;
  // A token of fewer than 8 characters is left alone: it would match ordinary words of the message.
  for (const token of sent) if (token.length >= 8) t = t.split(token).join('[credential]');
  t = t
    .replace(NOT_ONE_LINE_CHARS, ' ')
    .replace(/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[credential]')
    .replace(/\b(Bearer|DPoP)\s+[A-Za-z0-9\-._~+/]+=*/gi, '$1 [credential]');
  return t.length > 512 ? `${t.slice(0, 511)}…` : t;
}

/** A refusal's {@link GatewayError}: the gateway's code and message when well-formed, else `HTTP_<status>`. */
function errorFrom(status: number, value: unknown, sent: readonly string[]): GatewayError {
  const v = isObject(value) ? value : {};
  const code = typeof v['code'] === 'string' && CODE.test(v['code']) ? v['code'] : `HTTP_${status}`;
  const message =
    typeof v['error'] === 'string' && v['error'] !== '' ? serverText(v['error'], sent) : `HTTP ${status}`;
  return new GatewayError(status, code, message);
}

const NUMERIC = /^(?:U?INT(?:8|16|32|64)|FP(?:16|32|64)|BF16)$/;

/**
 * A v2 inference response (KServe v2 / Open Inference Protocol), checked field by field: what reaches
 * the caller typed {@link InferResponse} is one. Flat `data` whose length is the product of `shape`,
 * and values of the tensor's datatype (or null).
 */
function inferResponse(v: unknown): InferResponse {
  const bad = (what: string) => malformed(200, `answer is not a v2 inference response: ${what}`);
  if (!isObject(v)) throw bad('not an object');
  if (typeof v['model_name'] !== 'string') throw bad('model_name is not a string');
  if (v['model_version'] !== undefined && typeof v['model_version'] !== 'string')
    throw bad('model_version is not a string');
  if (typeof v['id'] !== 'string') throw bad('id is not a string');
  const outputs = v['outputs'];
  if (!Array.isArray(outputs)) throw bad('outputs is not a list');
  outputs.forEach((t: unknown, i) => {
    const at = `outputs[${i}]`;
    if (!isObject(t)) throw bad(`${at} is not an object`);
    if (typeof t['name'] !== 'string') throw bad(`${at}.name is not a string`);
    const dt = t['datatype'];
    if (typeof dt !== 'string' || !(NUMERIC.test(dt) || dt === 'BOOL' || dt === 'BYTES'))
      throw bad(`${at}.datatype is not a v2 datatype`);
    const shape = t['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0))
      throw bad(`${at}.shape is not a list of sizes`);
    const data = t['data'];
    if (!Array.isArray(data)) throw bad(`${at}.data is not a list`);
    if (data.length !== (shape as number[]).reduce((a, b) => a * b, 1))
      throw bad(`${at}.data has ${data.length} values for shape [${shape.join(', ')}]`);
    const kind = NUMERIC.test(dt) ? 'number' : dt === 'BOOL' ? 'boolean' : 'string';
    const integral = /INT/.test(dt);
    for (const x of data)
      if (x !== null && (typeof x !== kind || (integral && !Number.isInteger(x))))
        throw bad(`${at}.data holds a value that is not ${dt}`);
    const p = t['parameters'];
    if (
      p !== undefined &&
      !(isObject(p) && Object.values(p).every((x) => ['string', 'number', 'boolean'].includes(typeof x)))
    )
      throw bad(`${at}.parameters is not a map of scalars`);
  });
  return v as unknown as InferResponse;
}
