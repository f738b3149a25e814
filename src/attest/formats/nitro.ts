/**
 * AWS Nitro Enclaves attestation documents (AWS, "Verifying the root of trust", Nitro Enclaves User
 * Guide; the NSM API's `AttestationDoc`): a COSE_Sign1 (RFC 9052) signed with ES384 whose CBOR payload
 * holds the enclave's PCRs, a leaf certificate and the CA bundle from the AWS Nitro root, and optional
 * `public_key`, `user_data` and `nonce` chosen by the enclave's caller.
 *
 * Checks, in order: COSE structure and `alg` = ES384; payload fields and types (the User Guide's
 * "syntactical validation"); the certificate path leaf -> cabundle[n-1] -> ... -> cabundle[0] and
 * cabundle[0] equal to the pinned AWS Nitro root (SHA-256 64:1A:03:21:...:BB:5B), each certificate valid
 * at the injected time; the COSE signature under the leaf key (P-384, r||s as in RFC 9053 §2.1); then
 * nonce, public key and user data against the caller's expectations.
 */
import { verify as cryptoVerify, type X509Certificate } from 'node:crypto';
import { BulwarkError } from '../../core/index.js';
import { bytesEqual } from '../../keys/index.js';
import { COSE_ALG, decodeCbor, decodeCoseSign1, sigStructure } from '../cose.js';
import type { AttestationClaims, AttestationVerifier, VerifyOptions } from '../types.js';
import {
  checkChainRevocation,
  normaliseFingerprint,
  parseCertificate,
  trustAnchors,
  verifiedAnchor,
} from '../x509.js';

/** SHA-256 fingerprint of the AWS Nitro Enclaves root G1 (AWS_NitroEnclaves_Root-G1.zip). */
export const AWS_NITRO_ROOT_FINGERPRINT =
  '64:1A:03:21:A3:E2:44:EF:E4:56:46:31:95:D6:06:31:7E:D7:CD:CC:3C:17:56:E0:98:93:F3:C6:8F:79:BB:5B';

const WHAT = 'nitro attestation';

function malformed(message: string, field: string): BulwarkError {
  return new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: ${message}`, { details: { field } });
}

function bytesField(
  m: Map<unknown, unknown>,
  key: string,
  min: number,
  max: number,
  optional: boolean,
): Uint8Array | null {
  const v = m.get(key);
  if (v === undefined || v === null) {
    if (optional) return null;
    throw malformed(`missing field "${key}"`, key);
  }
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    throw malformed(`field "${key}" must be a byte string of ${min} to ${max} bytes`, key);
  }
  return v;
}

/** The parsed payload of a Nitro attestation document (not yet verified). */
export interface NitroPayload {
  moduleId: string;
  digest: string;
  timestamp: number;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

/** Syntactic validation of the payload (User Guide, "Syntactical validation"). */
export function parseNitroPayload(payload: Uint8Array): NitroPayload {
  const m = decodeCbor(payload, `${WHAT} payload`);
  if (!(m instanceof Map)) throw malformed('payload is not a CBOR map', 'payload');
  const moduleId = m.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0)
    throw malformed('"module_id" must be a non-empty text string', 'module_id');
  const digest = m.get('digest');
  if (digest !== 'SHA384')
    throw malformed(`"digest" must be "SHA384", got ${JSON.stringify(digest)}`, 'digest');
  const ts = m.get('timestamp');
  const timestamp = typeof ts === 'bigint' ? Number(ts) : ts;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw malformed('"timestamp" must be a positive integer (ms since the epoch)', 'timestamp');
  }
  const rawPcrs = m.get('pcrs');
  if (!(rawPcrs instanceof Map) || rawPcrs.size < 1 || rawPcrs.size > 32)
    throw malformed('"pcrs" must be a map of 1 to 32 entries', 'pcrs');
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of rawPcrs) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 31)
      throw malformed('"pcrs" keys must be integers 0..31', 'pcrs');
    if (!(v instanceof Uint8Array) || ![32, 48, 64].includes(v.length))
      throw malformed(`PCR${k} must be 32, 48 or 64 bytes`, 'pcrs');
    pcrs.set(k, v);
  }
  const certificate = bytesField(m, 'certificate', 1, 1024, false) as Uint8Array;
  const ca = m.get('cabundle');
  if (!Array.isArray(ca) || ca.length === 0)
    throw malformed('"cabundle" must be a non-empty array', 'cabundle');
  const cabundle = ca.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length < 1 || c.length > 1024)
      throw malformed(`cabundle[${i}] must be 1 to 1024 bytes`, 'cabundle');
    return c;
  });
  return {
    moduleId,
    digest,
    timestamp,
    pcrs,
    certificate,
    cabundle,
    publicKey: bytesField(m, 'public_key', 1, 1024, true),
    userData: bytesField(m, 'user_data', 0, 512, true),
    nonce: bytesField(m, 'nonce', 0, 512, true),
  };
}

/** Checks the caller's nonce / public key / user data expectations (shared by COSE-based formats). */
export function checkBindings(
  what: string,
  got: { nonce: Uint8Array | null; publicKey: Uint8Array | null; userData: Uint8Array | null },
  options: VerifyOptions,
): boolean {
  if (options.nonce !== undefined) {
    if (!got.nonce) throw new BulwarkError('ERR_ATTEST_NONCE', `${what} carries no nonce; one was expected`);
    if (!bytesEqual(got.nonce, options.nonce)) {
      throw new BulwarkError(
        'ERR_ATTEST_NONCE',
        `${what} carries another nonce than the one sent (a replayed or foreign document)`,
      );
    }
  }
  if (options.publicKey !== undefined && !(got.publicKey && bytesEqual(got.publicKey, options.publicKey))) {
    throw new BulwarkError(
      'ERR_ATTEST_BINDING',
      `${what} binds ${got.publicKey ? 'another' : 'no'} public key than the one expected`,
    );
  }
  if (options.userData !== undefined && !(got.userData && bytesEqual(got.userData, options.userData))) {
    throw new BulwarkError(
      'ERR_ATTEST_BINDING',
      `${what} binds ${got.userData ? 'other' : 'no'} user data than expected`,
    );
  }
  return options.nonce !== undefined;
}

async function verifyNitro(document: Uint8Array, options: VerifyOptions): Promise<AttestationClaims> {
  const at = options.at ?? new Date();
  const cose = decodeCoseSign1(document, COSE_ALG.ES384, WHAT);
  const p = parseNitroPayload(cose.payload);
  const leaf = parseCertificate(p.certificate, `${WHAT} leaf certificate`);
  const bundle = p.cabundle.map((c, i) => parseCertificate(c, `${WHAT} cabundle[${i}]`));
  // cabundle is ordered root first; the path is leaf first.
  const path: X509Certificate[] = [leaf, ...bundle.reverse()];
  const root = verifiedAnchor(
    path,
    trustAnchors(options.roots, [AWS_NITRO_ROOT_FINGERPRINT], 'AWS Nitro Enclaves root'),
    at,
  );
  if (options.crls && options.crls.length > 0) await checkChainRevocation(path, root, options.crls, at);
  const anchor = root.fingerprint256;
  const key = leaf.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw malformed('the leaf certificate key is not a P-384 key', 'certificate');
  }
  if (cose.signature.length !== 96) throw malformed('an ES384 signature is 96 bytes (r || s)', 'signature');
  const ok = cryptoVerify(
    'sha384',
    sigStructure(cose.protectedBytes, cose.payload),
    { key, dsaEncoding: 'ieee-p1363' },
    cose.signature,
  );
  if (!ok) {
    throw new BulwarkError(
      'ERR_ATTEST_SIGNATURE',
      `${WHAT}: the COSE_Sign1 signature does not verify under the leaf certificate`,
    );
  }
  const nonceVerified = checkBindings(WHAT, p, options);
  const measurements: Record<string, string> = {};
  for (const [k, v] of [...p.pcrs].sort((a, b) => a[0] - b[0]))
    measurements[`PCR${k}`] = Buffer.from(v).toString('hex');
  // A debug-mode enclave reports PCR0-2 as all zeros (Nitro Enclaves User Guide, "Debug mode").
  const zero = (k: number) => {
    const v = p.pcrs.get(k);
    return v?.every((b) => b === 0) === true;
  };
  const debug = zero(0) && zero(1) && zero(2);
  return {
    format: 'nitro',
    hardware: true,
    measurements,
    nonce: p.nonce,
    publicKey: p.publicKey,
    userData: p.userData,
    debug,
    time: new Date(p.timestamp),
    nonceVerified,
    trustAnchor: normaliseFingerprint(anchor),
    details: { moduleId: p.moduleId, digest: p.digest, chainLength: path.length },
  };
}

export const nitroVerifier: AttestationVerifier = {
  format: 'nitro',
  description: 'AWS Nitro Enclaves attestation document (COSE_Sign1 ES384, AWS Nitro root)',
  hardware: true,
  verify: verifyNitro,
};
