import { BulwarkError } from '../core/index.js';
import type { AttestationClaims } from './types.js';

/**
 * What a relying party accepts (after the appraisal policies of RFC 9334 §8.5, "Appraisal Policy for
 * Evidence"). The defaults are the production ones: hardware required, debug refused, documents at most
 * five minutes old, at least one measurement pinned. Measurements are allow-lists: for each name given,
 * the claim must equal one of the listed values; names not given are not constrained.
 */
export interface AttestationPolicy {
  /** Formats accepted (default: any registered). */
  readonly formats?: readonly string[];
  /** Refuse software attestations (default true). */
  readonly requireHardware: boolean;
  /** Accept debuggable enclaves (default false). */
  readonly allowDebug: boolean;
  /** Allowed measurements by name (`PCR0`, `measurement`, `model`, ...), lower-case hex. */
  readonly measurements: Readonly<Record<string, readonly string[]>>;
  /**
   * Accept an enclave whatever code it runs (default false): a policy that pins no measurement is
   * refused otherwise, since any genuine enclave — anyone's, in any account — would pass it.
   */
  readonly allowAnyMeasurement: boolean;
  /** Maximum age of a timed document; null: not checked (archived evidence). Default 300. */
  readonly maxAgeSeconds: number | null;
  /** Tolerated clock skew for documents dated ahead of the verifier. Default 60. */
  readonly maxSkewSeconds: number;
  /** Minimum TCB component versions (SEV-SNP: `bootloader`, `tee`, `snp`, `microcode`). */
  readonly minTcb: Readonly<Record<string, number>>;
  /**
   * The least privileged level whose reports are accepted (SEV-SNP VMPL 0-3; default 0): with a
   * paravisor or SVSM, code at a higher VMPL can ask for a report binding its own key.
   */
  readonly maxVmpl: number;
  /** Accept a guest a migration agent may access (SEV-SNP guest policy MIGRATE_MA; default false). */
  readonly allowMigrationAgent: boolean;
}

const KEYS = [
  'formats',
  'requireHardware',
  'allowDebug',
  'measurements',
  'allowAnyMeasurement',
  'maxAgeSeconds',
  'maxSkewSeconds',
  'minTcb',
  'maxVmpl',
  'allowMigrationAgent',
] as const;

function bad(message: string, key: string): BulwarkError {
  return new BulwarkError('ERR_ATTEST_POLICY_INVALID', `attestation policy: ${message}`, {
    details: { key },
  });
}

/**
 * Checks a policy object (from YAML/JSON or code) and fills the defaults. Unknown keys are refused:
 * a misspelt `alowDebug` must not silently mean "default".
 */
export function parsePolicy(input: unknown): AttestationPolicy {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw bad('expected a mapping of policy keys', '');
  }
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(k))
      throw bad(`unknown key "${k}" (keys: ${KEYS.join(', ')})`, k);
  }
  const bool = (k: string, d: boolean): boolean => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'boolean') throw bad(`${k}: expected true or false`, k);
    return v;
  };
  let formats: string[] | undefined;
  if (o['formats'] !== undefined) {
    const f = o['formats'];
    if (!Array.isArray(f) || f.length === 0 || !f.every((x) => typeof x === 'string' && x.length > 0)) {
      throw bad('formats: expected a non-empty list of format names', 'formats');
    }
    formats = f as string[];
  }
  const measurements: Record<string, string[]> = {};
  if (o['measurements'] !== undefined) {
    const m = o['measurements'];
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw bad('measurements: expected a mapping of name to a list of hex values', 'measurements');
    }
    for (const [name, list] of Object.entries(m)) {
      const values = typeof list === 'string' ? [list] : list;
      if (!Array.isArray(values) || values.length === 0) {
        throw bad(`measurements.${name}: expected a non-empty list of hex values`, 'measurements');
      }
      measurements[name] = values.map((v) => {
        if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(v)) {
          throw bad(`measurements.${name}: expected hex strings, got ${JSON.stringify(v)}`, 'measurements');
        }
        return v.toLowerCase();
      });
    }
  }
  const num = (k: string, d: number, min: number): number => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
      throw bad(`${k}: expected a number >= ${min}`, k);
    return v;
  };
  let maxAgeSeconds: number | null = 300;
  if (o['maxAgeSeconds'] === null) maxAgeSeconds = null;
  else maxAgeSeconds = num('maxAgeSeconds', 300, 0);
  const minTcb: Record<string, number> = {};
  if (o['minTcb'] !== undefined) {
    const t = o['minTcb'];
    if (typeof t !== 'object' || t === null || Array.isArray(t))
      throw bad('minTcb: expected a mapping', 'minTcb');
    for (const [k, v] of Object.entries(t)) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
        throw bad(`minTcb.${k}: expected an integer in [0, 255]`, 'minTcb');
      }
      minTcb[k] = v;
    }
  }
  const policy: AttestationPolicy = {
    requireHardware: bool('requireHardware', true),
    allowDebug: bool('allowDebug', false),
    measurements,
    allowAnyMeasurement: bool('allowAnyMeasurement', false),
    maxAgeSeconds,
    maxSkewSeconds: num('maxSkewSeconds', 60, 0),
    minTcb,
    maxVmpl: vmpl(o['maxVmpl']),
    allowMigrationAgent: bool('allowMigrationAgent', false),
  };
  return formats ? { ...policy, formats } : policy;
}

function vmpl(v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 3)
    throw bad('maxVmpl: expected an integer in [0, 3]', 'maxVmpl');
  return v;
}

/** The production policy (hardware, no debug, 5 minutes) with the given allowed measurements. */
export function productionPolicy(
  measurements: Readonly<Record<string, readonly string[]>> = {},
): AttestationPolicy {
  return parsePolicy({
    measurements: Object.fromEntries(Object.entries(measurements).map(([k, v]) => [k, [...v]])),
  });
}

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : '');

/** The measurement names a document of this format carries, for a message. */
function measurementHint(claims: AttestationClaims): string {
  if (claims.format === 'nitro') return 'Nitro: PCR0, with PCR1 and PCR2 or PCR8';
  const names = Object.keys(claims.measurements);
  return names.length > 0 ? `this document carries ${names.slice(0, 4).join(', ')}` : 'none carried';
}

/**
 * Applies `policy` to verified claims at time `at`; throws the code of the first rule broken. The order
 * is fixed so a document failing several rules always reports the same, most basic one.
 */
export function checkPolicy(claims: AttestationClaims, policy: AttestationPolicy, at: Date): void {
  if (policy.requireHardware && !claims.hardware) {
    throw new BulwarkError(
      'ERR_ATTEST_HARDWARE_REQUIRED',
      `${claims.format} attestation is a software attestation (no hardware root of trust) and the policy requires hardware`,
      { details: { format: claims.format } },
    );
  }
  if (claims.debug && !policy.allowDebug) {
    throw new BulwarkError(
      'ERR_ATTEST_DEBUG',
      `${claims.format} attestation: the enclave is debuggable and the policy forbids debug mode`,
      { details: { format: claims.format } },
    );
  }
  // An attestation proves which code runs; a policy that pins none accepts an attacker's genuine
  // enclave, bound to the attacker's key, as readily as ours (RFC 9334 §8.5: appraisal against
  // reference values). Pinning nothing must be said explicitly.
  if (Object.keys(policy.measurements).length === 0 && !policy.allowAnyMeasurement) {
    throw new BulwarkError(
      'ERR_ATTEST_MEASUREMENT',
      `${claims.format} attestation: the policy pins no measurement, so any genuine enclave (anyone's) would pass; pin the approved values (${measurementHint(claims)}) or set allowAnyMeasurement: true`,
      { details: { measurement: '' } },
    );
  }
  for (const [name, allowed] of Object.entries(policy.measurements)) {
    const got = claims.measurements[name];
    if (got === undefined) {
      throw new BulwarkError(
        'ERR_ATTEST_MEASUREMENT',
        `${claims.format} attestation carries no measurement "${name}" and the policy constrains it`,
        { details: { measurement: name } },
      );
    }
    if (!allowed.includes(got.toLowerCase())) {
      throw new BulwarkError(
        'ERR_ATTEST_MEASUREMENT',
        `${claims.format} attestation: measurement ${name} = ${got.slice(0, 16)}… is not an allowed value`,
        { details: { measurement: name, value: got } },
      );
    }
  }
  if (claims.vmpl !== undefined && claims.vmpl > policy.maxVmpl) {
    throw new BulwarkError(
      'ERR_ATTEST_GUEST_POLICY',
      `${claims.format} attestation: requested at VMPL ${claims.vmpl}, the policy accepts at most ${policy.maxVmpl} (less privileged code than the policy trusts bound its data)`,
      { details: { vmpl: claims.vmpl } },
    );
  }
  if (claims.migrationAgent === true && !policy.allowMigrationAgent) {
    throw new BulwarkError(
      'ERR_ATTEST_GUEST_POLICY',
      `${claims.format} attestation: the guest policy lets a migration agent access the guest (MIGRATE_MA) and the policy does not allow it`,
      { details: { migrationAgent: true } },
    );
  }
  for (const [k, min] of Object.entries(policy.minTcb)) {
    const got = claims.tcb?.[k];
    if (got === undefined || got < min) {
      throw new BulwarkError(
        'ERR_ATTEST_TCB',
        `${claims.format} attestation: TCB ${k} is ${got ?? 'absent'}, the policy requires at least ${min}`,
        { details: { component: k } },
      );
    }
  }
  if (policy.maxAgeSeconds !== null) {
    if (claims.time) {
      const ageMs = at.getTime() - claims.time.getTime();
      if (ageMs > policy.maxAgeSeconds * 1000) {
        throw new BulwarkError(
          'ERR_ATTEST_STALE',
          `${claims.format} attestation is ${Math.round(ageMs / 1000)} s old, the policy allows ${policy.maxAgeSeconds} s`,
          { details: { ageSeconds: Math.round(ageMs / 1000) } },
        );
      }
      if (-ageMs > policy.maxSkewSeconds * 1000) {
        throw new BulwarkError(
          'ERR_ATTEST_STALE',
          `${claims.format} attestation is dated ${Math.round(-ageMs / 1000)} s in the future`,
          { details: { ageSeconds: Math.round(ageMs / 1000) } },
        );
      }
    } else if (!claims.nonceVerified) {
      throw new BulwarkError(
        'ERR_ATTEST_STALE',
        `${claims.format} attestation carries no time and no verified nonce: its freshness cannot be told (bind a nonce, or set maxAgeSeconds: null for archived evidence)`,
        { details: { nonce: hex(claims.nonce) } },
      );
    }
  }
}
