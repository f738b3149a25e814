/**
 * The client SDK of an attested session: fetch an attestation with a fresh nonce, verify it against
 * the client's policy (allowed measurements, no debug, freshness, hardware), then encrypt each request
 * to the key the attestation binds and decrypt the response. The transport is any `fetch`-like
 * function, so the same client runs against the gateway over HTTPS, or in-process in tests.
 */
import { randomBytes } from 'node:crypto';
import { BulwarkError, type ErrorCode, errorCodes, isBulwarkError } from '../../core/index.js';
import { bytesEqual } from '../../keys/index.js';
import { decodeCbor } from '../cose.js';
import { type AttestationPolicy, checkPolicy } from '../policy.js';
import { verifyAttestation } from '../registry.js';
import type { AttestationClaims } from '../types.js';
import {
  bindingDigest,
  deriveSessionKeys,
  hpkeSuite,
  open,
  type SessionKeys,
  seal,
  sessionInfo,
  transcriptHash,
} from './crypto.js';
import { ReplayWindow } from './replay.js';
import { ENC_BYTES, FrameType, frameHeader, parseFrame, SUITE, WIRE_VERSION } from './wire.js';

/** The subset of `fetch` the client uses. */
export type FetchLike = (
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: Uint8Array },
) => Promise<{ status: number; arrayBuffer(): Promise<ArrayBuffer> }>;

export interface ClientVerifyOptions {
  policy: AttestationPolicy;
  /** Trust anchors by format, replacing the pinned defaults (software: the signer's public key). */
  roots?: Readonly<Record<string, readonly (string | Uint8Array)[]>>;
  /**
   * Certificate revocation lists by format (`VerifyOptions.crls`: offline, each of a CA of the chain);
   * a revoked certificate refuses the session (`ERR_ATTEST_REVOKED`).
   */
  crls?: Readonly<Record<string, readonly (string | Uint8Array)[]>>;
  /** Clock (tests, and verifying at a given time). */
  now?: () => Date;
}

export interface AttestedClientOptions extends ClientVerifyOptions {
  /** Base URL; the client POSTs to `${baseUrl}/attestation` and `${baseUrl}/infer`. */
  baseUrl: string;
  fetch?: FetchLike;
}

export const ATTESTATION_MEDIA_TYPE = 'application/vnd.bulwark.attestation+cbor';
export const SESSION_MEDIA_TYPE = 'application/vnd.bulwark.session';

/** A verified session on the client side: seals requests and opens their responses. */
export class ClientSession {
  readonly claims: AttestationClaims;
  readonly #keys: SessionKeys;
  readonly #transcript: Uint8Array;
  readonly #enc: Uint8Array;
  #next = 0n;
  readonly #answered = new ReplayWindow(1024);

  private constructor(claims: AttestationClaims, keys: SessionKeys, transcript: Uint8Array, enc: Uint8Array) {
    this.claims = claims;
    this.#keys = keys;
    this.#transcript = transcript;
    this.#enc = enc;
  }

  /**
   * Verifies an attestation envelope obtained for `nonce` and sets up the HPKE context to its key.
   * This is the session set-up the benchmark times ("after the document is fetched").
   */
  static async establish(
    envelope: Uint8Array,
    nonce: Uint8Array,
    options: ClientVerifyOptions,
  ): Promise<ClientSession> {
    const m = decodeCbor(envelope, 'attestation envelope');
    if (!(m instanceof Map) || m.get('v') !== WIRE_VERSION) {
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        `attestation envelope: not a version ${WIRE_VERSION} envelope`,
      );
    }
    const format = m.get('format');
    const document = m.get('document');
    const publicKey = m.get('publicKey');
    const suite = m.get('suite');
    const evidence = m.get('evidence') ?? [];
    if (
      typeof format !== 'string' ||
      !(document instanceof Uint8Array) ||
      !(publicKey instanceof Uint8Array) ||
      publicKey.length !== 32 ||
      !Array.isArray(suite) ||
      suite.length !== 3 ||
      suite.some((x, i) => x !== SUITE[i]) ||
      !Array.isArray(evidence) ||
      !evidence.every((e) => e instanceof Uint8Array)
    ) {
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        'attestation envelope: format, document, 32-byte publicKey, suite [32, 1, 2] and evidence are required',
      );
    }
    if (options.policy.formats && !options.policy.formats.includes(format)) {
      throw new BulwarkError(
        'ERR_ATTEST_FORMAT_UNKNOWN',
        `attestation format "${format}" is not one the policy accepts (${options.policy.formats.join(', ')})`,
        {
          details: { format },
        },
      );
    }
    const at = options.now?.() ?? new Date();
    const roots = options.roots?.[format];
    const crls = options.crls?.[format];
    const claims = await verifyAttestation(format, document, {
      at,
      userData: bindingDigest(publicKey, nonce),
      ...(roots ? { roots } : {}),
      ...(crls ? { crls } : {}),
      ...(evidence.length > 0 ? { chain: evidence as Uint8Array[] } : {}),
    }).catch((e: unknown) => {
      // The user data binds key and nonce together: a mismatch is a wrong nonce or a wrong key.
      if (isBulwarkError(e, 'ERR_ATTEST_BINDING')) {
        throw new BulwarkError(
          'ERR_ATTEST_NONCE',
          `${format} attestation does not bind this client's nonce with the key offered (replayed or substituted)`,
          { cause: e },
        );
      }
      throw e;
    });
    // Formats with explicit fields must carry the same key and nonce as the user data says.
    if (claims.publicKey && !bytesEqual(claims.publicKey, publicKey)) {
      throw new BulwarkError(
        'ERR_ATTEST_BINDING',
        `${format} attestation binds another public key than the envelope offers`,
      );
    }
    if (claims.nonce && !bytesEqual(claims.nonce, nonce)) {
      throw new BulwarkError(
        'ERR_ATTEST_NONCE',
        `${format} attestation carries another nonce than the one sent`,
      );
    }
    // The nonce is bound (through the user data): freshness is established even without a time.
    const verified: AttestationClaims = { ...claims, nonceVerified: true };
    checkPolicy(verified, options.policy, at);
    const hpke = hpkeSuite();
    const transcript = transcriptHash(envelope);
    const pk = await hpke.kem.deserializePublicKey(Uint8Array.from(publicKey).buffer);
    const ctx = await hpke.createSenderContext({ recipientPublicKey: pk, info: sessionInfo(transcript) });
    const keys = await deriveSessionKeys(ctx);
    const enc = new Uint8Array(ctx.enc);
    if (enc.length !== ENC_BYTES) throw new BulwarkError('ERR_INTERNAL', 'HPKE enc has an unexpected length');
    return new ClientSession(verified, keys, transcript, enc);
  }

  /** The session id (hex), as the server knows it. */
  get sessionId(): string {
    return Buffer.from(this.#keys.sessionId).toString('hex');
  }

  /** Seals the next request; returns the frame and its sequence number (to open the response). */
  sealRequest(plaintext: Uint8Array): { frame: Uint8Array; seq: bigint } {
    const seq = this.#next++;
    const header =
      seq === 0n
        ? frameHeader(FrameType.open, { transcript: this.#transcript, enc: this.#enc }, 0n)
        : frameHeader(FrameType.data, { sessionId: this.#keys.sessionId }, seq);
    return { frame: seal(this.#keys.requestKey, this.#keys.requestNonce, seq, header, plaintext), seq };
  }

  /** Opens the response to request `seq`; a replayed, foreign or altered response is refused. */
  openResponse(frame: Uint8Array, seq: bigint): Uint8Array {
    const f = parseFrame(frame);
    if (f.type !== FrameType.response)
      throw new BulwarkError('ERR_SESSION_MALFORMED', 'attested session: expected a RESPONSE frame');
    if (!bytesEqual(f.sessionId, this.#keys.sessionId))
      throw new BulwarkError('ERR_SESSION_UNKNOWN', 'attested session: response for another session');
    if (f.seq !== seq)
      throw new BulwarkError(
        'ERR_SESSION_REPLAY',
        `attested session: response ${f.seq} to request ${seq} (replayed or misrouted)`,
      );
    const pt = open(this.#keys.responseKey, this.#keys.responseNonce, f.seq, f.aad, f.ciphertext);
    this.#answered.accept(f.seq, 'response');
    return pt;
  }
}

/** Maps an error answer of the server to its code (session codes pass through; others: unavailable). */
async function errorFrom(
  res: { status: number; arrayBuffer(): Promise<ArrayBuffer> },
  what: string,
): Promise<BulwarkError> {
  let code: ErrorCode = 'ERR_ENCLAVE_UNAVAILABLE';
  let message = `${what}: the server answered HTTP ${res.status}`;
  try {
    const body = JSON.parse(Buffer.from(await res.arrayBuffer()).toString('utf8')) as {
      error?: { code?: string; message?: string };
    };
    const c = body.error?.code;
    if (c && c in errorCodes && (c.startsWith('ERR_SESSION_') || c.startsWith('ERR_ATTEST_')))
      code = c as ErrorCode;
    if (body.error?.message) message = `${what}: server: ${body.error.message}`;
  } catch {
    // not a JSON error body: keep the status line
  }
  return new BulwarkError(code, message, { details: { status: res.status } });
}

/**
 * The client: `connect()` fetches and verifies the attestation, `request()` sends an encrypted request.
 *
 * @example
 * ```ts
 * const client = new AttestedClient({ baseUrl: 'https://gw/v1/attested', policy: productionPolicy({ PCR0: [pcr0] }) });
 * const claims = await client.connect();
 * const answer = await client.request(new TextEncoder().encode(JSON.stringify({ inputs: [[0.1, 2]] })));
 * ```
 */
export class AttestedClient {
  readonly #o: AttestedClientOptions;
  readonly #fetch: FetchLike;
  #session: ClientSession | undefined;

  constructor(options: AttestedClientOptions) {
    if (!options || typeof options.baseUrl !== 'string' || options.baseUrl.length === 0) {
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'baseUrl: expected a non-empty string', {
        details: { parameter: 'baseUrl' },
      });
    }
    if (!options.policy)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'policy: an attestation policy is required', {
        details: { parameter: 'policy' },
      });
    this.#o = options;
    const f = options.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
    if (!f)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'fetch: no fetch function available', {
        details: { parameter: 'fetch' },
      });
    this.#fetch = f;
  }

  /** The verified claims of the current session (after `connect`). */
  get claims(): AttestationClaims | undefined {
    return this.#session?.claims;
  }

  async #post(path: string, type: string, body: Uint8Array, what: string): Promise<Uint8Array> {
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await this.#fetch(`${this.#o.baseUrl.replace(/\/$/, '')}/${path}`, {
        method: 'POST',
        headers: {
          'content-type': type,
          accept: type === SESSION_MEDIA_TYPE ? SESSION_MEDIA_TYPE : ATTESTATION_MEDIA_TYPE,
        },
        body,
      });
    } catch (e) {
      throw new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', `${what}: ${(e as Error).message}`, { cause: e });
    }
    if (res.status !== 200) throw await errorFrom(res, what);
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Fetches an attestation for a fresh 32-byte nonce, verifies it and sets up the session. */
  async connect(): Promise<AttestationClaims> {
    const nonce = new Uint8Array(randomBytes(32));
    const envelope = await this.#post('attestation', 'application/octet-stream', nonce, 'attestation');
    this.#session = await ClientSession.establish(envelope, nonce, this.#o);
    return this.#session.claims;
  }

  /**
   * Sends one encrypted request and returns the decrypted response (connecting first if needed). If
   * the server no longer holds the session (expired, restarted enclave: `ERR_SESSION_UNKNOWN`), the
   * client attests again — a fresh nonce, the full verification — and retries once; the server never
   * opened the first attempt.
   */
  async request(plaintext: Uint8Array): Promise<Uint8Array> {
    if (!this.#session) await this.connect();
    try {
      return await this.#send(plaintext);
    } catch (e) {
      if (!isBulwarkError(e, 'ERR_SESSION_UNKNOWN')) throw e;
      await this.connect();
      return this.#send(plaintext);
    }
  }

  async #send(plaintext: Uint8Array): Promise<Uint8Array> {
    const s = this.#session as ClientSession;
    const { frame, seq } = s.sealRequest(plaintext);
    const res = await this.#post('infer', SESSION_MEDIA_TYPE, frame, 'attested request');
    return s.openResponse(res, seq);
  }
}
