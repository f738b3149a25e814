/**
 * Signed notes (C2SP `signed-note`, the format of Go's `golang.org/x/mod/sumdb/note`) with Ed25519
 * keys, using node:crypto only.
 *
 * A note is UTF-8 text ending in a newline, a blank line, then signature lines
 * `— <key name> <base64(key ID || signature)>`. The key ID of an Ed25519 key is
 * `SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`.
 *
 * Keys use the Go encodings, so keys and notes interoperate with that ecosystem:
 * - verifier key ("vkey"): `<name>+<hex key ID>+<base64(0x01 || public key)>`;
 * - signer key ("skey"): `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { BulwarkError } from '../core/index.js';

/** The signature type byte of Ed25519 in the signed-note registry. */
export const SIG_TYPE_ED25519 = 0x01;
const EM_DASH = '\u2014';

// DER prefixes that turn a raw 32-byte Ed25519 seed / public key into PKCS#8 / SPKI (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A key that can check note signatures: what a third party holds. */
export interface NoteVerifier {
  readonly name: string;
  /** The 4-byte key ID as a number. */
  readonly keyId: number;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** The key in the `name+hex+base64` text form. */
  readonly vkey: string;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A key that can sign notes: what the log operator keeps secret. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly verifier: NoteVerifier;
  sign(message: Uint8Array): Buffer;
}

/** A signature line of a note. */
export interface NoteSignature {
  name: string;
  keyId: number;
  /** The signature bytes after the key ID. */
  signature: Buffer;
}

function keyError(message: string): BulwarkError {
  return new BulwarkError('ERR_AUDIT_KEY_INVALID', message);
}

/** Key names must be non-empty with no Unicode space and no '+' (signed-note §Format). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && !hasControl(name);
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20 && s[i] !== '\n') return true;
  return false;
}

/** The signed-note key ID of an Ed25519 key: `SHA-256(name || 0x0A || 0x01 || pubkey)[:4]`. */
export function ed25519KeyId(name: string, publicKey: Uint8Array): number {
  const h = createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, SIG_TYPE_ED25519]))
    .update(publicKey)
    .digest();
  return h.readUInt32BE(0);
}

const hex8 = (id: number): string => id.toString(16).padStart(8, '0');

function verifierFromRaw(name: string, publicKey: Buffer): NoteVerifier {
  const keyId = ed25519KeyId(name, publicKey);
  const key: KeyObject = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, publicKey]),
    format: 'der',
    type: 'spki',
  });
  const vkey = `${name}+${hex8(keyId)}+${Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), publicKey]).toString('base64')}`;
  return {
    name,
    keyId,
    publicKey,
    vkey,
    verify: (message, signature) => signature.length === 64 && verify(null, message, key, signature),
  };
}

function signerFromSeed(name: string, seed: Buffer): NoteSigner {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const verifier = verifierFromRaw(name, Buffer.from(spki.subarray(SPKI_PREFIX.length)));
  return {
    name,
    keyId: verifier.keyId,
    verifier,
    sign: (message) => sign(null, message, priv),
  };
}

function decodeStrictBase64(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

/** Splits `s` at its first `n - 1` '+' signs; null when there are fewer. */
function splitPlus(s: string, n: number): string[] | null {
  const out: string[] = [];
  let rest = s;
  for (let i = 0; i < n - 1; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return null;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  out.push(rest);
  return out;
}

/**
 * Parses a verifier key `name+hexid+base64(0x01 || pubkey)`; the key ID must match the key.
 * Throws ERR_AUDIT_KEY_INVALID.
 */
export function parseVerifierKey(vkey: string): NoteVerifier {
  // Split at the first two '+' only: the base64 key may itself contain '+'.
  const parts = splitPlus(vkey.trim(), 3);
  if (!parts) throw keyError('verifier key: expected "name+keyid+base64key"');
  const [name, idHex, b64] = parts as [string, string, string];
  if (!isValidKeyName(name)) throw keyError('verifier key: invalid key name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw keyError('verifier key: key ID must be 8 lowercase hex digits');
  const raw = decodeStrictBase64(b64);
  if (raw?.length !== 33 || raw[0] !== SIG_TYPE_ED25519)
    throw keyError('verifier key: not an Ed25519 key (expected base64 of 0x01 and 32 bytes)');
  const v = verifierFromRaw(name, raw.subarray(1));
  if (hex8(v.keyId) !== idHex) throw keyError('verifier key: key ID does not match the key');
  return v;
}

/**
 * Parses a signer key `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`; the key ID must match.
 * Throws ERR_AUDIT_KEY_INVALID (the message never contains key material).
 */
export function parseSignerKey(skey: string): NoteSigner {
  const parts = splitPlus(skey.trim(), 5);
  if (parts?.[0] !== 'PRIVATE' || parts[1] !== 'KEY')
    throw keyError('signer key: expected "PRIVATE+KEY+name+keyid+base64key"');
  const [, , name, idHex, b64] = parts as [string, string, string, string, string];
  if (!isValidKeyName(name)) throw keyError('signer key: invalid key name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw keyError('signer key: key ID must be 8 lowercase hex digits');
  const raw = decodeStrictBase64(b64);
  if (raw?.length !== 33 || raw[0] !== SIG_TYPE_ED25519)
    throw keyError('signer key: not an Ed25519 key (expected base64 of 0x01 and a 32-byte seed)');
  const s = signerFromSeed(name, raw.subarray(1));
  if (hex8(s.keyId) !== idHex) throw keyError('signer key: key ID does not match the key');
  return s;
}

/** A new Ed25519 signing key for `name`, as the signer and its `PRIVATE+KEY+...` text form. */
export function generateSignerKey(name: string): { signer: NoteSigner; skey: string; vkey: string } {
  if (!isValidKeyName(name))
    throw keyError(`key name ${JSON.stringify(name)}: must be non-empty, no spaces or '+'`);
  const seed = randomBytes(32);
  const signer = signerFromSeed(name, seed);
  const skey = `PRIVATE+KEY+${name}+${hex8(signer.keyId)}+${Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), seed]).toString('base64')}`;
  return { signer, skey, vkey: signer.verifier.vkey };
}

/** Signs `text` (which must end in a newline) and returns the signed note. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (!text.endsWith('\n'))
    throw new BulwarkError('ERR_AUDIT_CHECKPOINT_INVALID', 'note text must end with a newline');
  if (hasControl(text))
    throw new BulwarkError('ERR_AUDIT_CHECKPOINT_INVALID', 'note text has control characters');
  const msg = Buffer.from(text, 'utf8');
  const lines = signers.map((s) => {
    const id = Buffer.alloc(4);
    id.writeUInt32BE(s.keyId, 0);
    return `${EM_DASH} ${s.name} ${Buffer.concat([id, s.sign(msg)]).toString('base64')}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

/**
 * Splits a signed note into its text and signature lines, checking the format strictly. Throws
 * ERR_AUDIT_CHECKPOINT_INVALID.
 */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  const bad = (why: string) =>
    new BulwarkError('ERR_AUDIT_CHECKPOINT_INVALID', `malformed signed note: ${why}`);
  if (note.length > 1 << 20) throw bad('larger than 1 MiB');
  if (hasControl(note)) throw bad('contains control characters');
  if (!note.endsWith('\n')) throw bad('does not end with a newline');
  // The text is separated from the signatures by the last blank line.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw bad('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split('\n');
  if (sigLines.length > 100) throw bad('too many signatures');
  const signatures = sigLines.map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw bad(`signature line ${JSON.stringify(line.slice(0, 40))}`);
    const name = m[1] as string;
    const raw = decodeStrictBase64(m[2] as string);
    if (!isValidKeyName(name) || !raw || raw.length < 5)
      throw bad(`signature line for ${JSON.stringify(name)}`);
    return { name, keyId: raw.readUInt32BE(0), signature: Buffer.from(raw.subarray(4)) };
  });
  return { text, signatures };
}

/** The signatures of a note that name `verifier`'s key (same name and key ID), not yet checked. */
export function signaturesBy(signatures: readonly NoteSignature[], verifier: NoteVerifier): NoteSignature[] {
  return signatures.filter((s) => s.name === verifier.name && s.keyId === verifier.keyId);
}

/**
 * Opens a signed note with a trusted key: returns its text when a signature by that key (same name
 * and key ID) verifies. Signatures by other keys are ignored, as the spec requires. Throws
 * ERR_AUDIT_CHECKPOINT_SIGNATURE when no signature by the key is present or it does not verify.
 */
export function openNote(note: string, verifier: NoteVerifier): string {
  const { text, signatures } = parseNote(note);
  const mine = signaturesBy(signatures, verifier);
  if (mine.length === 0)
    throw new BulwarkError(
      'ERR_AUDIT_CHECKPOINT_SIGNATURE',
      `note is not signed by the trusted key ${verifier.name}+${hex8(verifier.keyId)}`,
      { details: { key: verifier.name } },
    );
  const msg = Buffer.from(text, 'utf8');
  for (const s of mine)
    if (!verifier.verify(msg, s.signature))
      throw new BulwarkError(
        'ERR_AUDIT_CHECKPOINT_SIGNATURE',
        `signature by ${verifier.name} does not verify`,
        {
          details: { key: verifier.name },
        },
      );
  return text;
}
