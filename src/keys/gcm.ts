import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { BulwarkError, invalidArgument } from '../core/index.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, gcmSeal, KEY_BYTES } from './aead.js';

/**
 * AES-256-GCM with a key prepared once, writing into buffers the caller owns, on one of two backends
 * that produce the same bytes:
 *
 * - `native`: build/native/aead.node (native/aead.c, built by scripts/build-native.mjs), which calls
 *   the EVP interface of the OpenSSL that node itself links — the implementation node:crypto uses —
 *   without node:crypto's per-call output allocation and cipher object. A 1 MiB frame costs page
 *   faults for its fresh output in node:crypto; that put node:crypto at about a third of
 *   `openssl speed` (bench/results/crypto.json). It also runs frames on the libuv thread pool
 *   ({@link GcmKey.sealAsync}), with no copies and no worker start-up.
 * - `node:crypto`: the fallback when the addon is not built (no C compiler or Node headers), fails its
 *   self-test, or `BULWARK_NATIVE=0`.
 *
 * The addon is checked against node:crypto when it loads (a random message sealed by both, opened, and
 * a tampered tag refused); a mismatch disables it for the process, never a silent wrong answer.
 */

/** {@link GcmArgs} with the input as pieces whose lengths add up to the output's. */
export type GcmPiecesArgs = [
  iv: Uint8Array,
  aad: Uint8Array,
  pieces: readonly Uint8Array[],
  output: Uint8Array,
  tag: Uint8Array,
];
/** One AES-GCM operation's buffers: IV, associated data, input, output (same length), tag. */
export type GcmArgs = [
  iv: Uint8Array,
  aad: Uint8Array,
  input: Uint8Array,
  output: Uint8Array,
  tag: Uint8Array,
];
type Done = (err: Error | null, ok: boolean) => void;

/** The native addon's interface (native/aead.c). */
interface NativeAead {
  key(k: Uint8Array): object;
  seal(h: object, ...a: GcmArgs): void;
  open(h: object, ...a: GcmArgs): boolean;
  openv(h: object, ...a: GcmPiecesArgs): boolean;
  sealAsync(h: object, ...a: [...GcmArgs, cb: Done]): void;
  openAsync(h: object, ...a: [...GcmArgs, cb: Done]): void;
  wipe(h: object): void;
  opensslVersion(): string;
}

/** Which backend serves AES-256-GCM in this process, and why. */
export interface GcmBackendInfo {
  backend: 'native' | 'node:crypto';
  /** Why the native backend is not used (absent when it is). */
  reason?: string;
  /** The OpenSSL the native addon resolved to (absent for node:crypto). */
  openssl?: string;
}

const ADDON = fileURLToPath(new URL('../../build/native/aead.node', import.meta.url));
let loaded: NativeAead | null | undefined;
let info: GcmBackendInfo = { backend: 'node:crypto', reason: 'not loaded yet' };

/** Throws unless the addon agrees with node:crypto and refuses a wrong tag, in place and not. */
function selfTest(m: NativeAead): void {
  const key = randomBytes(KEY_BYTES);
  const iv = randomBytes(GCM_NONCE_BYTES);
  const aad = randomBytes(45);
  const plain = randomBytes(1000);
  // The reference: node:crypto's `ciphertext | tag`.
  const ref = gcmSeal(key, iv, plain, aad);
  const h = m.key(key);
  const out = Buffer.alloc(plain.length);
  const tag = Buffer.alloc(GCM_TAG_BYTES);
  m.seal(h, iv, aad, plain, out, tag);
  if (!Buffer.concat([out, tag]).equals(ref)) throw new Error('ciphertext differs from node:crypto');
  if (!m.open(h, iv, aad, out, out, tag) || !out.equals(plain)) throw new Error('does not open its own seal');
  m.seal(h, iv, aad, out, out, tag);
  tag[0]! ^= 1;
  if (m.open(h, iv, aad, out, out, tag)) throw new Error('accepted a wrong tag');
  if (out.some((b) => b !== 0)) throw new Error('left unauthenticated plaintext');
}

function native(): NativeAead | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.BULWARK_NATIVE === '0') {
    info = { backend: 'node:crypto', reason: 'disabled by BULWARK_NATIVE=0' };
  } else if (!existsSync(ADDON)) {
    info = {
      backend: 'node:crypto',
      reason: 'the native addon is not built (npm run build with a C compiler)',
    };
  } else {
    try {
      const m = createRequire(import.meta.url)(ADDON) as NativeAead;
      selfTest(m);
      loaded = m;
      info = { backend: 'native', openssl: m.opensslVersion() };
    } catch (e) {
      info = {
        backend: 'node:crypto',
        reason: `the native addon failed its self-test: ${(e as Error).message}`,
      };
    }
  }
  return loaded;
}

/** The AES-256-GCM backend of this process (loads and checks the addon on first use). */
export function gcmBackend(): GcmBackendInfo {
  native();
  return { ...info };
}

/** Bytes per node:crypto call when writing into a caller's buffer (64 KiB outputs are reused by the allocator). */
const PIECE_BYTES = 1 << 16;

/** Runs `input` through `c` in pieces, writing the output into `into` from `at`; returns the end offset. */
function updateInto(
  c: { update(data: Uint8Array): Buffer },
  input: Uint8Array,
  into: Uint8Array,
  at: number,
): number {
  let off = at;
  for (let i = 0; i < input.length; i += PIECE_BYTES) {
    const out = c.update(input.subarray(i, Math.min(input.length, i + PIECE_BYTES)));
    into.set(out, off);
    off += out.length;
  }
  return off;
}

/**
 * An AES-256-GCM key ready for many messages. Every call takes a 12-byte IV (the caller guarantees it
 * never repeats under this key), the associated data, the input and an output of the same length
 * (which may be the input itself), and a 16-byte tag (written by seal, checked by open). A failed open
 * returns false and overwrites the output: no unauthenticated plaintext is ever left in it.
 *
 * The async forms run on the libuv thread pool with the native backend (the caller must not touch the
 * buffers until the promise settles) and inline with node:crypto.
 */
export interface GcmKey {
  readonly backend: 'native' | 'node:crypto';
  seal(...a: GcmArgs): void;
  open(...a: GcmArgs): boolean;
  /** {@link open} with the input in several pieces (their lengths add up to the output's). */
  openPieces(...a: GcmPiecesArgs): boolean;
  sealAsync(...a: GcmArgs): Promise<void>;
  openAsync(...a: GcmArgs): Promise<boolean>;
  /** Overwrites the key now (jobs already queued keep their own copy); any later call throws. */
  wipe(): void;
}

class NodeGcmKey implements GcmKey {
  readonly backend = 'node:crypto' as const;
  readonly #key: Buffer;
  #wiped = false;
  constructor(key: Uint8Array) {
    this.#key = Buffer.from(key);
  }
  #live(): Buffer {
    if (this.#wiped) throw new BulwarkError('ERR_INTERNAL', 'AES-GCM: the key was wiped');
    return this.#key;
  }
  seal(iv: Uint8Array, aad: Uint8Array, input: Uint8Array, output: Uint8Array, tag: Uint8Array): void {
    const c = createCipheriv('aes-256-gcm', this.#live(), iv, { authTagLength: GCM_TAG_BYTES });
    c.setAAD(aad);
    updateInto(c, input, output, 0);
    c.final();
    tag.set(c.getAuthTag());
  }
  open(iv: Uint8Array, aad: Uint8Array, input: Uint8Array, output: Uint8Array, tag: Uint8Array): boolean {
    return this.openPieces(iv, aad, [input], output, tag);
  }
  openPieces(...[iv, aad, pieces, output, tag]: GcmPiecesArgs): boolean {
    const d = createDecipheriv('aes-256-gcm', this.#live(), iv, { authTagLength: GCM_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    let off = 0;
    for (const p of pieces) off = updateInto(d, p, output, off);
    try {
      d.final();
      return true;
    } catch {
      output.fill(0);
      return false;
    }
  }
  wipe(): void {
    this.#key.fill(0);
    this.#wiped = true;
  }
  async sealAsync(...a: GcmArgs): Promise<void> {
    this.seal(...a);
  }
  async openAsync(...a: GcmArgs): Promise<boolean> {
    return this.open(...a);
  }
}

class NativeGcmKey implements GcmKey {
  readonly backend = 'native' as const;
  readonly #m: NativeAead;
  readonly #h: object;
  constructor(m: NativeAead, key: Uint8Array) {
    this.#m = m;
    this.#h = m.key(key);
  }
  seal(...a: GcmArgs): void {
    this.#m.seal(this.#h, ...a);
  }
  open(...a: GcmArgs): boolean {
    return this.#m.open(this.#h, ...a);
  }
  openPieces(...a: GcmPiecesArgs): boolean {
    return this.#m.openv(this.#h, ...a);
  }
  wipe(): void {
    this.#m.wipe(this.#h);
  }
  sealAsync(...a: GcmArgs): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#m.sealAsync(this.#h, ...a, (err) => (err ? reject(err) : resolve()));
    });
  }
  openAsync(...a: GcmArgs): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#m.openAsync(this.#h, ...a, (err, ok) => (err ? reject(err) : resolve(ok)));
    });
  }
}

/**
 * Prepares `key` (32 bytes; copied, so the caller may wipe its copy) on the process's backend, or on
 * node:crypto when `backend` says so (the tests compare the two).
 */
export function gcmKey(key: Uint8Array, backend?: 'native' | 'node:crypto'): GcmKey {
  if (key.length !== KEY_BYTES) throw invalidArgument('key', `${KEY_BYTES} bytes (AES-256-GCM)`, key.length);
  const m = backend === 'node:crypto' ? null : native();
  if (backend === 'native' && !m)
    throw new BulwarkError('ERR_INTERNAL', `native AES-GCM unavailable: ${info.reason}`);
  return m ? new NativeGcmKey(m, key) : new NodeGcmKey(key);
}
