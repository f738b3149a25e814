import { BulwarkError, requireNonEmptyString } from '../core/index.js';
import { nitroVerifier } from './formats/nitro.js';
import { sevSnpVerifier } from './formats/sev-snp.js';
import { softwareVerifier } from './formats/software.js';
import { type AttestationPolicy, checkPolicy } from './policy.js';
import type { AttestationClaims, AttestationVerifier, VerifyOptions } from './types.js';
import { clearChainCache } from './x509.js';

/**
 * Formats whose name is reserved for a verifier still to be written. Each must implement
 * {@link AttestationVerifier} and be added with `registerAttestationFormat`; what it has to check is
 * written here so the slot is unambiguous (docs/attestation.md repeats it):
 *
 * - `tdx` — Intel TDX DCAP quote v4/v5: the ECDSA P-256 quote signature by the attestation key, the
 *   QE report signed by the PCK certificate, the PCK -> Intel SGX Root CA chain (pinned), TCB status
 *   from Intel's TCB info and QE identity (collateral fetched and signed by Intel), MRTD and RTMR0-3 as
 *   measurements, `TD_ATTRIBUTES.DEBUG` as debug, `REPORTDATA` (64 bytes) as user data binding.
 * - `nvidia-gpu` — NVIDIA Hopper/Blackwell confidential-computing GPU evidence (SPDM 1.1 measurement
 *   response signed by the device's attestation key), the device certificate chain to the pinned
 *   NVIDIA device identity root, OCSP status, measurements compared with NVIDIA's signed RIM
 *   (reference integrity manifests), the requester nonce, and the GPU's CC/debug mode.
 */
export const RESERVED_ATTESTATION_FORMATS: Readonly<Record<string, string>> = {
  tdx: 'Intel TDX DCAP quote (reserved: no verifier yet)',
  'nvidia-gpu': 'NVIDIA confidential-computing GPU evidence (reserved: no verifier yet)',
};

const registry = new Map<string, AttestationVerifier>();

/**
 * Registers a verifier under its `format` name (replacing none: a name can be registered once, so a
 * plug-in cannot silently take over `nitro`).
 *
 * @example
 * ```ts
 * registerAttestationFormat({ format: 'tdx', description: 'Intel TDX', hardware: true, verify: verifyTdx });
 * ```
 */
export function registerAttestationFormat(verifier: AttestationVerifier): void {
  requireNonEmptyString('verifier.format', verifier.format);
  if (!/^[a-z][a-z0-9-]*$/.test(verifier.format)) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `verifier.format: expected lower-case letters, digits and dashes, got "${verifier.format}"`,
      { details: { parameter: 'verifier.format' } },
    );
  }
  if (registry.has(verifier.format)) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `verifier.format: an attestation format "${verifier.format}" is already registered`,
      { details: { parameter: 'verifier.format' } },
    );
  }
  if (typeof verifier.verify !== 'function') {
    throw new BulwarkError('ERR_INVALID_ARGUMENT', 'verifier.verify: expected a function', {
      details: { parameter: 'verifier.verify' },
    });
  }
  registry.set(verifier.format, verifier);
}

/** The verifier registered for `format`, or `ERR_ATTEST_FORMAT_UNKNOWN`. */
export function attestationVerifier(format: string): AttestationVerifier {
  const v = registry.get(format);
  if (v) return v;
  const reserved = RESERVED_ATTESTATION_FORMATS[format];
  throw new BulwarkError(
    'ERR_ATTEST_FORMAT_UNKNOWN',
    reserved
      ? `attestation format "${format}": ${reserved}`
      : `unknown attestation format "${format}" (registered: ${attestationFormats().join(', ')})`,
    { details: { format } },
  );
}

/** Names of the registered formats, sorted. */
export function attestationFormats(): string[] {
  return [...registry.keys()].sort();
}

export interface VerifyAttestationOptions extends VerifyOptions {
  /** Applied to the verified claims; omitted: cryptographic and binding checks only. */
  policy?: AttestationPolicy;
}

/**
 * Verifies `document` as `format`: the format's cryptographic and binding checks, then the policy.
 *
 * @example
 * ```ts
 * const claims = await verifyAttestation('nitro', doc, { nonce, policy: productionPolicy({ measurements }) });
 * ```
 */
export async function verifyAttestation(
  format: string,
  document: Uint8Array,
  options: VerifyAttestationOptions = {},
): Promise<AttestationClaims> {
  const verifier = attestationVerifier(format);
  if (!(document instanceof Uint8Array) || document.length === 0) {
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${format} attestation: the document is empty`);
  }
  if (options.policy?.formats && !options.policy.formats.includes(format)) {
    throw new BulwarkError(
      'ERR_ATTEST_FORMAT_UNKNOWN',
      `attestation format "${format}" is not one the policy accepts (${options.policy.formats.join(', ')})`,
      { details: { format } },
    );
  }
  const claims = await verifier.verify(document, options);
  if (options.policy) checkPolicy(claims, options.policy, options.at ?? new Date());
  return claims;
}

/**
 * Forgets every verification cache (verified certificate links, parsed certificates and their
 * extensions, which hold the VCEK facts):
 * the next verification takes the cold path. Caches hold only successes of checks whose outcome
 * cannot change for the same bytes; validity times and policies are checked on every call.
 */
export function clearAttestationCaches(): void {
  clearChainCache();
}

registerAttestationFormat(nitroVerifier);
registerAttestationFormat(sevSnpVerifier);
registerAttestationFormat(softwareVerifier);
