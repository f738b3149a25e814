/**
 * Software attestations: the same shape as a Nitro document (COSE_Sign1 over a CBOR payload binding
 * measurements, nonce, public key and user data), signed with Ed25519 (COSE alg -8, RFC 9053 §2.2) by
 * a key generated inside Bulwark's software enclave worker. There is NO hardware root of trust: the
 * host that runs the worker can read its memory and its key. The claims say so (`hardware: false`) and
 * any policy with `requireHardware` refuses them. The verifier needs the signer's public key pinned out
 * of band (`roots`); the protected header's `kid` (4) is the SHA-256 of that key's SPKI.
 */
import {
  createHash,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { encode } from 'cbor2';
import { BulwarkError } from '../../core/index.js';
import { COSE_ALG, decodeCbor, decodeCoseSign1, encodeCoseSign1, plain, sigStructure } from '../cose.js';
import type { AttestationClaims, AttestationVerifier, VerifyOptions } from '../types.js';
import { normaliseFingerprint } from '../x509.js';
import { checkBindings } from './nitro.js';

export const SOFTWARE_FORMAT_ID = 'bulwark-software/1';
const WHAT = 'software attestation';

/** What a software attestation states; measurements are digests the worker took of what it loaded. */
export interface SoftwareStatement {
  moduleId: string;
  timestamp: number;
  measurements: Readonly<Record<string, Uint8Array>>;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
}

/** SHA-256 over a public key's SPKI DER: the software signer's key id and trust anchor. */
export function softwareKeyId(publicKey: KeyObject): Uint8Array {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

/** Signs a software attestation with an Ed25519 private key (inside the worker). */
export function signSoftwareAttestation(
  statement: SoftwareStatement,
  privateKey: KeyObject,
  publicKey: KeyObject,
): Uint8Array {
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new BulwarkError('ERR_INVALID_ARGUMENT', 'privateKey: expected an Ed25519 key');
  }
  const protectedBytes = encode(
    new Map<number, unknown>([
      [1, COSE_ALG.EdDSA],
      [4, plain(softwareKeyId(publicKey))],
    ]),
  );
  const payload = encode(
    new Map<string, unknown>([
      ['format', SOFTWARE_FORMAT_ID],
      ['module_id', statement.moduleId],
      ['timestamp', statement.timestamp],
      ['hardware', false],
      ['debug', false],
      ['measurements', new Map(Object.entries(statement.measurements).map(([k, v]) => [k, plain(v)]))],
      ['public_key', statement.publicKey && plain(statement.publicKey)],
      ['user_data', statement.userData && plain(statement.userData)],
      ['nonce', statement.nonce && plain(statement.nonce)],
    ]),
  );
  const signature = cryptoSign(null, sigStructure(protectedBytes, payload), privateKey);
  return encodeCoseSign1(protectedBytes, payload, signature);
}

function signerKey(options: VerifyOptions): KeyObject {
  const r = options.roots?.[0];
  if (r === undefined || options.roots?.length !== 1) {
    throw new BulwarkError(
      'ERR_ATTEST_UNTRUSTED_ROOT',
      `${WHAT}: no signer key pinned; a software attestation is only as good as the key you trust (pass its public key with --root)`,
    );
  }
  let key: KeyObject;
  try {
    key =
      typeof r === 'string'
        ? createPublicKey(r)
        : createPublicKey({ key: Buffer.from(r), format: 'der', type: 'spki' });
  } catch (e) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: the pinned signer key is not a public key (PEM or SPKI DER)`,
      { cause: e },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: the pinned signer key is not Ed25519`);
  return key;
}

const optBytes = (m: Map<unknown, unknown>, k: string): Uint8Array | null => {
  const v = m.get(k);
  if (v === null || v === undefined) return null;
  if (!(v instanceof Uint8Array) || v.length > 1024) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: "${k}" must be a byte string of at most 1024 bytes`,
    );
  }
  return v;
};

async function verifySoftware(document: Uint8Array, options: VerifyOptions): Promise<AttestationClaims> {
  // Signed by a bare key, no certificate: revocation lists would check nothing, so they are refused
  // rather than ignored (a caller giving them expects revocation to be checked).
  if (options.crls && options.crls.length > 0)
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `crls: a ${WHAT} is signed by a key, not a certificate chain; revocation lists do not apply (remove the key from the trusted roots to revoke it)`,
    );
  const cose = decodeCoseSign1(document, COSE_ALG.EdDSA, WHAT);
  const key = signerKey(options);
  const kid = softwareKeyId(key);
  const got = cose.protectedHeader.get(4);
  if (!(got instanceof Uint8Array) || !Buffer.from(got).equals(Buffer.from(kid))) {
    throw new BulwarkError(
      'ERR_ATTEST_UNTRUSTED_ROOT',
      `${WHAT}: signed by another key than the pinned signer`,
    );
  }
  if (
    cose.signature.length !== 64 ||
    !cryptoVerify(null, sigStructure(cose.protectedBytes, cose.payload), key, cose.signature)
  ) {
    throw new BulwarkError(
      'ERR_ATTEST_SIGNATURE',
      `${WHAT}: the COSE_Sign1 signature does not verify under the pinned signer key`,
    );
  }
  const m = decodeCbor(cose.payload, `${WHAT} payload`);
  if (!(m instanceof Map))
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: the payload is not a map`);
  if (m.get('format') !== SOFTWARE_FORMAT_ID)
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: "format" is not ${SOFTWARE_FORMAT_ID}`);
  // A software document that claims hardware is lying: refuse rather than trust the flag.
  if (m.get('hardware') !== false)
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: "hardware" must be false`);
  const moduleId = m.get('module_id');
  const ts = m.get('timestamp');
  const debug = m.get('debug');
  const meas = m.get('measurements');
  if (
    typeof moduleId !== 'string' ||
    typeof ts !== 'number' ||
    !Number.isSafeInteger(ts) ||
    typeof debug !== 'boolean' ||
    !(meas instanceof Map)
  ) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: module_id, timestamp, debug and measurements are required`,
    );
  }
  const measurements: Record<string, string> = {};
  for (const [k, v] of meas) {
    if (typeof k !== 'string' || !(v instanceof Uint8Array))
      throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: measurements must map names to bytes`);
    measurements[k] = Buffer.from(v).toString('hex');
  }
  const bound = {
    nonce: optBytes(m, 'nonce'),
    publicKey: optBytes(m, 'public_key'),
    userData: optBytes(m, 'user_data'),
  };
  const nonceVerified = checkBindings(WHAT, bound, options);
  return {
    format: 'software',
    hardware: false,
    measurements,
    ...bound,
    debug,
    time: new Date(ts),
    nonceVerified,
    trustAnchor: normaliseFingerprint(Buffer.from(kid).toString('hex')),
    details: { moduleId, signer: 'local Ed25519 key (no hardware root of trust)' },
  };
}

export const softwareVerifier: AttestationVerifier = {
  format: 'software',
  description: 'Bulwark software-mode attestation (Ed25519 by a local key; NO hardware guarantee)',
  hardware: false,
  verify: verifySoftware,
};
