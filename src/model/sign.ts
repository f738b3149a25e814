/**
 * Signing compatible with OpenSSF Model Signing (sigstore/model-transparency, signature format v1.0):
 *
 * - an in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
 *   with predicate type `https://model_signing/signature/v1.0`, whose predicate lists `resources`
 *   (`{name, algorithm: "sha256", digest: hex}`, sorted by name) and a `serialization` block, and
 *   whose one subject is the model name with, as its sha256 digest, SHA-256 over the concatenated raw
 *   resource digests in that order (the root digest model_signing computes);
 * - wrapped in a DSSE envelope (https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md),
 *   payload type `application/vnd.in-toto+json`, signed over the pre-authentication encoding
 *   PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP payload;
 * - inside a Sigstore bundle v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`) built and parsed
 *   with `@sigstore/bundle`, whose verification material is a public-key hint: the hex SHA-256 of the
 *   signer's PEM SubjectPublicKeyInfo, as model_signing's key signer writes it. Keys are ECDSA P-256
 *   (SHA-256, DER signatures, as model_signing and Sigstore use) or Ed25519. Keyless (Fulcio/Rekor)
 *   signing needs the internet and is out of scope: there are no transparency-log entries.
 *
 * Signatures are checked directly with node:crypto (the same PAE bytes), against keys from the trust
 * policy only, never against a key carried in the bundle.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import {
  assertBundle,
  BUNDLE_V03_MEDIA_TYPE,
  type Bundle,
  bundleFromJSON,
  bundleToJSON,
  toDSSEBundle,
} from '@sigstore/bundle';
import { BulwarkError, readInputFile, warnIfWorldReadable, writeFileAtomic } from '../core/index.js';

export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const MODEL_SIGNING_PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const SIGSTORE_BUNDLE_MEDIA_TYPE: string = BUNDLE_V03_MEDIA_TYPE;

/** Signature algorithms accepted. */
export type SigningAlgorithm = 'ecdsa-p256-sha256' | 'ecdsa-p384-sha384' | 'ed25519';
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = [
  'ecdsa-p256-sha256',
  'ecdsa-p384-sha384',
  'ed25519',
];

/** The hash ECDSA uses with each curve (as model_signing's get_ec_key_hash). */
function ecHash(algorithm: SigningAlgorithm): string | null {
  return algorithm === 'ed25519' ? null : algorithm === 'ecdsa-p384-sha384' ? 'sha384' : 'sha256';
}

/** One signed resource: a name and the SHA-256 of its bytes. */
export interface SignedResource {
  name: string;
  algorithm: 'sha256';
  /** Lowercase hex. */
  digest: string;
}

/** The in-toto statement a package's signature covers. */
export interface ModelStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: [{ name: string; digest: { sha256: string } }];
  predicateType: typeof MODEL_SIGNING_PREDICATE_TYPE;
  predicate: {
    serialization: { method: 'files'; hash_type: 'sha256'; allow_symlinks: false; ignore_paths: string[] };
    resources: SignedResource[];
  };
}

/** A signing key (private) with its public identity. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly algorithm: SigningAlgorithm;
  /** Hex SHA-256 of the public key's PEM SPKI (model_signing's key hint). */
  readonly keyId: string;
}

function bad(code: 'ERR_SIGNING_KEY_INVALID', msg: string): BulwarkError {
  return new BulwarkError(code, msg);
}

/** The algorithm of a key, or an error naming what it is. */
export function algorithmOf(key: KeyObject, where: string): SigningAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'ecdsa-p256-sha256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1')
    return 'ecdsa-p384-sha384';
  const kind =
    key.asymmetricKeyType === 'ec'
      ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}`
      : (key.asymmetricKeyType ?? key.type);
  throw bad(
    'ERR_SIGNING_KEY_INVALID',
    `${where}: ${kind} keys are not supported for model signing (use ECDSA P-256, P-384 or Ed25519)`,
  );
}

/** Hex SHA-256 of the PEM SubjectPublicKeyInfo: the key id (model_signing's `publicKey.hint`). */
export function publicKeyId(publicKey: KeyObject): string {
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  return createHash('sha256').update(pem).digest('hex');
}

/** The PEM SubjectPublicKeyInfo of a key. */
export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** Parses a PEM public key (SPKI) for a trust policy. */
export function parsePublicKey(
  pem: string,
  where: string,
): { key: KeyObject; algorithm: SigningAlgorithm; keyId: string } {
  // createPublicKey also accepts a private key and derives its public half: a trust policy pointing at
  // the signing key itself would work, with the private key copied wherever packages are verified.
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem))
    throw bad(
      'ERR_SIGNING_KEY_INVALID',
      `${where}: this is a private key; a trust policy holds public keys only (bulwark model keygen writes KEY.pub beside it)`,
    );
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new BulwarkError('ERR_SIGNING_KEY_INVALID', `${where}: not a PEM public key`, { cause: e });
  }
  if (key.type !== 'public') throw bad('ERR_SIGNING_KEY_INVALID', `${where}: not a public key`);
  return { key, algorithm: algorithmOf(key, where), keyId: publicKeyId(key) };
}

/** Builds a signing key from a PEM (PKCS#8, SEC1 or OpenSSH-free) private key. */
export function signingKeyFromPem(pem: string | Buffer, where = 'signing key'): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    // The key text is never quoted: it is a secret.
    throw new BulwarkError(
      'ERR_SIGNING_KEY_INVALID',
      `${where}: not an unencrypted PEM private key (ECDSA P-256 or Ed25519)`,
      { cause: e instanceof Error ? new Error(e.message) : undefined },
    );
  }
  const algorithm = algorithmOf(privateKey, where);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, algorithm, keyId: publicKeyId(publicKey) };
}

/** Reads a PEM private key file. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  warnIfWorldReadable(path, 'signing key');
  const pem = await readInputFile(path, 'signing key');
  try {
    return signingKeyFromPem(pem, path);
  } finally {
    pem.fill(0);
  }
}

/** Generates a signing key pair (P-256 by default) with the CSPRNG. */
export function generateSigningKey(algorithm: SigningAlgorithm = 'ecdsa-p256-sha256'): SigningKey {
  const { privateKey, publicKey } =
    algorithm === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', {
          namedCurve: algorithm === 'ecdsa-p384-sha384' ? 'secp384r1' : 'prime256v1',
        });
  return { privateKey, publicKey, algorithm, keyId: publicKeyId(publicKey) };
}

/**
 * Writes a key pair: the private key as PKCS#8 PEM at `privatePath` (mode 0600, atomically, refusing
 * to overwrite) and the public key as SPKI PEM next to it.
 */
export async function writeSigningKey(
  key: SigningKey,
  privatePath: string,
  publicPath: string,
): Promise<void> {
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const bytes = Buffer.from(pem);
  try {
    await writeFileAtomic(privatePath, bytes, { mode: 0o600, noClobber: true });
  } finally {
    bytes.fill(0);
  }
  await writeFileAtomic(publicPath, publicKeyPem(key.publicKey), { mode: 0o644, noClobber: true });
}

/** DSSE v1 pre-authentication encoding (protocol.md): lengths are byte lengths in ASCII decimal. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** The statement over `resources` for model `name` (resources sorted by name, as model_signing does). */
export function buildStatement(name: string, resources: readonly SignedResource[]): ModelStatement {
  const sorted = [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name, digest: { sha256: rootDigest(sorted) } }],
    predicateType: MODEL_SIGNING_PREDICATE_TYPE,
    predicate: {
      serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: [] },
      resources: sorted,
    },
  };
}

/** SHA-256 over the raw resource digests in order (model_signing's subject digest). */
export function rootDigest(resources: readonly SignedResource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(Buffer.from(r.digest, 'hex'));
  return h.digest('hex');
}

function signBytes(key: SigningKey, data: Buffer): Buffer {
  const h = ecHash(key.algorithm);
  return h === null
    ? cryptoSign(null, data, key.privateKey)
    : cryptoSign(h, data, { key: key.privateKey, dsaEncoding: 'der' });
}

/** Verifies `sig` over `data` with a public key of a known algorithm. */
export function verifyBytes(
  publicKey: KeyObject,
  algorithm: SigningAlgorithm,
  data: Buffer,
  sig: Uint8Array,
): boolean {
  const h = ecHash(algorithm);
  try {
    return h === null
      ? cryptoVerify(null, data, publicKey, sig)
      : cryptoVerify(h, data, { key: publicKey, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}

/** Signs a statement: a DSSE envelope in a Sigstore bundle v0.3, as serialized JSON text. */
export function signStatement(statement: ModelStatement, key: SigningKey): string {
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  const signature = signBytes(key, pae(IN_TOTO_PAYLOAD_TYPE, payload));
  const bundle = toDSSEBundle({
    artifact: payload,
    artifactType: IN_TOTO_PAYLOAD_TYPE,
    signature,
    keyHint: key.keyId,
    certificateChain: false,
  });
  return JSON.stringify(bundleToJSON(bundle));
}

/** A parsed signature: the envelope's payload and signatures and the key hint. */
export interface ParsedSignature {
  bundle: Bundle;
  payload: Buffer;
  signatures: { sig: Buffer; keyid: string }[];
  /** The key hint of the verification material ('' when absent). */
  keyHint: string;
}

/**
 * Parses a bundle's JSON text (structure only; nothing is trusted yet). A bundle that is not a v0.3
 * DSSE bundle with a public-key hint is ERR_SIGNATURE_INVALID; one with no signature is
 * ERR_PACKAGE_UNSIGNED.
 */
export function parseSignature(text: string, where: string): ParsedSignature {
  const invalid = (what: string) =>
    new BulwarkError(
      'ERR_SIGNATURE_INVALID',
      `${where}: the signature is not a valid Sigstore bundle (${what})`,
    );
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(JSON.parse(text));
    assertBundle(bundle);
  } catch (e) {
    throw invalid(e instanceof Error ? e.message : 'malformed');
  }
  if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE) throw invalid(`media type ${bundle.mediaType}`);
  if (bundle.content.$case !== 'dsseEnvelope') throw invalid('no DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw invalid(`payload type ${env.payloadType}`);
  const vm = bundle.verificationMaterial.content;
  if (vm?.$case !== 'publicKey') throw invalid('verification material is not a public-key hint');
  const signatures = env.signatures
    .filter((s) => s.sig.length > 0)
    .map((s) => ({ sig: Buffer.from(s.sig), keyid: s.keyid }));
  if (signatures.length === 0) {
    throw new BulwarkError('ERR_PACKAGE_UNSIGNED', `${where}: the package carries no signature`);
  }
  return { bundle, payload: Buffer.from(env.payload), signatures, keyHint: vm.publicKey.hint };
}

/** Parses and checks a signed statement's layout (after its signature verified). */
export function parseStatement(payload: Buffer, where: string): ModelStatement {
  const invalid = (what: string) =>
    new BulwarkError(
      'ERR_SIGNATURE_INVALID',
      `${where}: the signed statement is not a model_signing v1.0 statement (${what})`,
    );
  let s: unknown;
  try {
    s = JSON.parse(payload.toString('utf8'));
  } catch {
    throw invalid('not JSON');
  }
  const o = s as Partial<ModelStatement> | null;
  if (!o || typeof o !== 'object') throw invalid('not an object');
  if (o._type !== IN_TOTO_STATEMENT_TYPE) throw invalid(`_type ${String(o._type)}`);
  if (o.predicateType !== MODEL_SIGNING_PREDICATE_TYPE)
    throw invalid(`predicateType ${String(o.predicateType)}`);
  if (!Array.isArray(o.subject) || o.subject.length !== 1) throw invalid('expected one subject');
  const subj = o.subject[0] as { name?: unknown; digest?: { sha256?: unknown } };
  if (typeof subj?.name !== 'string' || typeof subj.digest?.sha256 !== 'string') throw invalid('subject');
  const res = o.predicate?.resources;
  if (!Array.isArray(res) || res.length === 0) throw invalid('no resources');
  for (const r of res) {
    if (
      typeof r?.name !== 'string' ||
      r.algorithm !== 'sha256' ||
      typeof r.digest !== 'string' ||
      !/^[0-9a-f]{64}$/.test(r.digest)
    )
      throw invalid('resource entry');
  }
  if (rootDigest(res) !== subj.digest.sha256) {
    throw new BulwarkError(
      'ERR_DIGEST_MISMATCH',
      `${where}: the statement's subject digest does not match its resources`,
    );
  }
  return o as ModelStatement;
}
