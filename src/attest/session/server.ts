/**
 * The server side of an attested session: it runs inside the enclave (Nitro: the gateway process in
 * the enclave; software mode: the worker process), holds the HPKE private key, issues attestations that
 * bind its public key and the client's nonce, and opens requests. Transport-agnostic: the gateway
 * mounts `attestation` and `handle`/`openRequest` on HTTP routes (see http.ts for a plain node:http
 * mounting).
 */
import type { CipherSuite } from '@hpke/core';
import { encode } from 'cbor2';
import { BulwarkError, requireInteger } from '../../core/index.js';
import { plain } from '../cose.js';
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
import { FrameType, frameHeader, MAX_NONCE, MIN_NONCE, parseFrame, SUITE, WIRE_VERSION } from './wire.js';

/** What the enclave's attestation must bind. */
export interface AttestationBinding {
  nonce: Uint8Array;
  publicKey: Uint8Array;
  /** SHA-512 over the label, public key and nonce (wire.ts): for formats with only user data. */
  userData: Uint8Array;
}

/** Produces attestation documents in the enclave (NSM for Nitro, the local signer in software mode). */
export interface Attester {
  readonly format: string;
  attest(binding: AttestationBinding): Promise<{ document: Uint8Array; evidence?: readonly Uint8Array[] }>;
}

export interface AttestedSessionServerOptions {
  attester: Attester;
  /** How long an issued attestation can open a session (default 300 s). */
  attestationTtlSeconds?: number;
  /** Session lifetime from its opening (default 3600 s). */
  sessionTtlSeconds?: number;
  /** Cap on open sessions and on pending attestations; the oldest is evicted (default 10,000). */
  maxSessions?: number;
  /** Clock (tests). */
  now?: () => number;
}

/** An opened request: its plaintext and the function that seals the response to it. */
export interface OpenedRequest {
  readonly plaintext: Uint8Array;
  readonly sessionId: string;
  readonly seq: bigint;
  respond(plaintext: Uint8Array): Uint8Array;
}

type KeyPair = Awaited<ReturnType<CipherSuite['kem']['generateKeyPair']>>;

interface Session {
  keys: SessionKeys;
  window: ReplayWindow;
  expires: number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class AttestedSessionServer {
  readonly #suite: CipherSuite;
  readonly #keyPair: KeyPair;
  readonly #publicKey: Uint8Array;
  readonly #attester: Attester;
  readonly #attTtl: number;
  readonly #sessionTtl: number;
  readonly #max: number;
  readonly #now: () => number;
  /** Issued attestations by transcript hash: single use. */
  readonly #issued = new Map<string, { expires: number; used: boolean }>();
  readonly #sessions = new Map<string, Session>();

  private constructor(suite: CipherSuite, kp: KeyPair, pk: Uint8Array, o: AttestedSessionServerOptions) {
    this.#suite = suite;
    this.#keyPair = kp;
    this.#publicKey = pk;
    this.#attester = o.attester;
    this.#attTtl = requireInteger('attestationTtlSeconds', o.attestationTtlSeconds ?? 300, 1) * 1000;
    this.#sessionTtl = requireInteger('sessionTtlSeconds', o.sessionTtlSeconds ?? 3600, 1) * 1000;
    this.#max = requireInteger('maxSessions', o.maxSessions ?? 10_000, 1);
    this.#now = o.now ?? Date.now;
  }

  /** Generates the HPKE key pair (X25519, from the CSPRNG) inside the calling process. */
  static async create(options: AttestedSessionServerOptions): Promise<AttestedSessionServer> {
    if (!options?.attester || typeof options.attester.attest !== 'function') {
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'attester: expected an Attester', {
        details: { parameter: 'attester' },
      });
    }
    const suite = hpkeSuite();
    const kp = await suite.kem.generateKeyPair();
    const pk = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
    return new AttestedSessionServer(suite, kp, pk, options);
  }

  /** The HPKE public key (32 bytes, X25519) the attestations bind. */
  get publicKey(): Uint8Array {
    return this.#publicKey.slice();
  }

  /** Number of open sessions (for metrics). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Issues an attestation envelope (wire.ts) for the client's fresh nonce. */
  async attestation(nonce: Uint8Array): Promise<Uint8Array> {
    if (!(nonce instanceof Uint8Array) || nonce.length < MIN_NONCE || nonce.length > MAX_NONCE) {
      throw new BulwarkError(
        'ERR_SESSION_MALFORMED',
        `attested session: the nonce must be ${MIN_NONCE} to ${MAX_NONCE} bytes`,
      );
    }
    const binding: AttestationBinding = {
      nonce: Uint8Array.from(nonce),
      publicKey: this.publicKey,
      userData: bindingDigest(this.#publicKey, nonce),
    };
    const { document, evidence } = await this.#attester.attest(binding);
    const envelope = encode(
      new Map<string, unknown>([
        ['v', WIRE_VERSION],
        ['format', this.#attester.format],
        ['document', plain(document)],
        ['publicKey', plain(this.#publicKey)],
        ['suite', [...SUITE]],
        ['evidence', (evidence ?? []).map(plain)],
      ]),
    );
    const now = this.#now();
    this.#sweep(now);
    evictOldest(this.#issued, this.#max);
    this.#issued.set(hex(transcriptHash(envelope)), {
      expires: now + this.#attTtl,
      used: false,
    });
    return envelope;
  }

  /** Opens a request frame (OPEN or DATA); throws ERR_SESSION_* for anything not fresh and authentic. */
  async openRequest(frame: Uint8Array): Promise<OpenedRequest> {
    const f = parseFrame(frame);
    const now = this.#now();
    let id: string;
    let s: Session;
    if (f.type === FrameType.open) {
      const t = hex(f.transcript);
      const issued = this.#issued.get(t);
      if (!issued || issued.expires < now) {
        throw new BulwarkError(
          'ERR_SESSION_UNKNOWN',
          'attested session: OPEN names an attestation this server did not issue or that expired',
        );
      }
      if (issued.used)
        throw new BulwarkError(
          'ERR_SESSION_REPLAY',
          'attested session: this attestation already opened a session (replayed OPEN)',
        );
      if (f.seq !== 0n)
        throw new BulwarkError(
          'ERR_SESSION_MALFORMED',
          'attested session: OPEN must carry sequence number 0',
        );
      let keys: SessionKeys;
      try {
        const ctx = await this.#suite.createRecipientContext({
          recipientKey: this.#keyPair,
          enc: plain(f.enc).slice().buffer,
          info: sessionInfo(f.transcript),
        });
        keys = await deriveSessionKeys(ctx);
      } catch (e) {
        throw new BulwarkError(
          'ERR_SESSION_DECRYPT',
          'attested session: the HPKE encapsulated key does not decapsulate',
          { cause: e },
        );
      }
      // Authenticate before consuming the attestation, so a forged OPEN cannot burn a client's.
      const plaintext = open(keys.requestKey, keys.requestNonce, 0n, f.aad, f.ciphertext);
      id = hex(keys.sessionId);
      // Checked again after the await above: copies of one OPEN arriving together all passed the first
      // check while decapsulating. Only the first may open the session; a second would answer under the
      // same response key and nonce (AES-GCM nonce reuse: the XOR of the answers, and forgeries).
      // Nothing is awaited from here to the set, so this check-and-set is atomic.
      if (issued.used || this.#sessions.has(id))
        throw new BulwarkError(
          'ERR_SESSION_REPLAY',
          'attested session: this attestation already opened a session (replayed OPEN)',
        );
      issued.used = true;
      s = { keys, window: new ReplayWindow(), expires: now + this.#sessionTtl };
      s.window.accept(0n, 'request');
      evictOldest(this.#sessions, this.#max);
      this.#sessions.set(id, s);
      return this.#opened(id, s, 0n, plaintext);
    }
    if (f.type !== FrameType.data)
      throw new BulwarkError(
        'ERR_SESSION_MALFORMED',
        'attested session: a RESPONSE frame sent to the server',
      );
    id = hex(f.sessionId);
    const found = this.#sessions.get(id);
    if (!found || found.expires < now) {
      if (found) this.#sessions.delete(id);
      throw new BulwarkError(
        'ERR_SESSION_UNKNOWN',
        'attested session: unknown or expired session (attest again)',
      );
    }
    s = found;
    const plaintext = open(s.keys.requestKey, s.keys.requestNonce, f.seq, f.aad, f.ciphertext);
    // The window is updated only after authentication: forged frames cannot advance it. A replay's
    // plaintext (decrypted to authenticate it) is overwritten, not left for the collector.
    try {
      s.window.accept(f.seq, 'request');
    } catch (e) {
      plaintext.fill(0);
      throw e;
    }
    return this.#opened(id, s, f.seq, plaintext);
  }

  /** Opens `frame`, runs `app` on its plaintext and returns the sealed response frame. */
  async handle(
    frame: Uint8Array,
    app: (plaintext: Uint8Array) => Promise<Uint8Array> | Uint8Array,
  ): Promise<Uint8Array> {
    const r = await this.openRequest(frame);
    return r.respond(await app(r.plaintext));
  }

  /** Forgets a session (client logout, or key rotation). */
  close(sessionId: string): boolean {
    return this.#sessions.delete(sessionId);
  }

  #opened(id: string, s: Session, seq: bigint, plaintext: Uint8Array): OpenedRequest {
    let answered = false;
    return {
      plaintext,
      sessionId: id,
      seq,
      respond: (pt: Uint8Array) => {
        if (answered)
          throw new BulwarkError('ERR_SESSION_REPLAY', 'attested session: a request can be answered once');
        answered = true;
        const header = frameHeader(FrameType.response, { sessionId: s.keys.sessionId }, seq);
        return seal(s.keys.responseKey, s.keys.responseNonce, seq, header, pt);
      },
    };
  }

  #sweep(now: number): void {
    for (const [k, v] of this.#issued) {
      if (v.expires >= now) break; // insertion order = expiry order
      this.#issued.delete(k);
    }
    for (const [k, v] of this.#sessions) {
      if (v.expires >= now) break;
      this.#sessions.delete(k);
    }
  }
}

function evictOldest<V>(m: Map<string, V>, max: number): void {
  while (m.size >= max) {
    const first = m.keys().next();
    if (first.done) return;
    m.delete(first.value);
  }
}
