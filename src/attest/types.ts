/**
 * The one interface every attestation format implements (after sigstore-js's small pluggable
 * interfaces): a verifier takes the document's bytes and the verifier's expectations, checks the
 * cryptography (signature, certificate chain to a pinned root, validity at an injected time) and the
 * bindings (nonce, public key, user data), and returns the verified claims — or throws a
 * `BulwarkError` with one precise `ERR_ATTEST_*` code. Policy (allowed measurements, debug, hardware,
 * freshness, TCB) is applied to the claims by `checkPolicy` (policy.ts) so every format is judged by
 * the same rules.
 */

/** Claims a verifier vouches for once every check passed. Byte fields are raw bytes. */
export interface AttestationClaims {
  /** The registry format that verified the document (`nitro`, `sev-snp`, `software`, ...). */
  readonly format: string;
  /**
   * True only when the document was signed by a hardware root of trust (AWS Nitro, AMD SP). A
   * `software` attestation is always false: it is signed by a key held by an ordinary process.
   */
  readonly hardware: boolean;
  /** Measurements by name, lower-case hex: `PCR0`..`PCR15` (Nitro), `measurement` (SEV-SNP), ... */
  readonly measurements: Readonly<Record<string, string>>;
  /** The nonce the document carries (null when the format has none, e.g. SEV-SNP). */
  readonly nonce: Uint8Array | null;
  /** The public key the document binds (Nitro `public_key`, software `public_key`); null if none. */
  readonly publicKey: Uint8Array | null;
  /** The user data the document binds (Nitro `user_data`, SEV-SNP `REPORT_DATA`); null if none. */
  readonly userData: Uint8Array | null;
  /** Whether the enclave is debuggable (its memory readable by the host): refused by default. */
  readonly debug: boolean;
  /** When the document was made (Nitro `timestamp`); null when the format carries no time. */
  readonly time: Date | null;
  /** Whether the verifier matched the nonce it was given (freshness without a time). */
  readonly nonceVerified: boolean;
  /** Who vouches: the SHA-256 fingerprint of the pinned root (or signer key) the chain ended at. */
  readonly trustAnchor: string;
  /** Platform TCB version (SEV-SNP), for `policy.minTcb`. */
  readonly tcb?: Readonly<Record<string, number>>;
  /**
   * The privilege level that requested the report (SEV-SNP VMPL, 0 most privileged), for
   * `policy.maxVmpl`; absent for formats without one.
   */
  readonly vmpl?: number;
  /** Whether a migration agent may access the guest (SEV-SNP guest policy MIGRATE_MA), for `policy.allowMigrationAgent`. */
  readonly migrationAgent?: boolean;
  /** Further format-specific facts (module id, guest SVN, chip id), for display and audit. */
  readonly details: Readonly<Record<string, string | number | boolean>>;
}

/** What the caller expects of the document; every field given is checked, fail closed. */
export interface VerifyOptions {
  /** The verification time (certificate validity, freshness). Default: now. */
  at?: Date;
  /**
   * Trust anchors replacing the format's pinned default: PEM or DER certificates (Nitro, SEV-SNP ARK),
   * or the signer's SPKI public key (software). Tests pass their own test root here.
   */
  roots?: readonly (string | Uint8Array)[];
  /** Intermediate/leaf certificates that do not travel in the document (SEV-SNP: ASK and VCEK). */
  chain?: readonly (string | Uint8Array)[];
  /**
   * Certificate revocation lists (PEM `X509 CRL` blocks or one DER CRL each; AMD's KDS serves the ARK's
   * CRL of ASKs as DER): each must be issued and signed by a CA of the chain; a certificate its issuer's
   * CRL lists is refused (`ERR_ATTEST_REVOKED`), a CRL not current at `at` too (`ERR_ATTEST_STALE`).
   * Offline: nothing is fetched; without CRLs revocation is not checked.
   */
  crls?: readonly (string | Uint8Array)[];
  /** The nonce the verifier sent: the document must carry exactly this. */
  nonce?: Uint8Array;
  /** The public key the document must bind. */
  publicKey?: Uint8Array;
  /** The user data the document must bind. */
  userData?: Uint8Array;
}

/** A verifier for one attestation format (register with `registerAttestationFormat`). */
export interface AttestationVerifier {
  /** The registry key, e.g. `nitro`. */
  readonly format: string;
  /** One line for `--help` and reports. */
  readonly description: string;
  /** Whether documents of this format come from hardware (false for `software`). */
  readonly hardware: boolean;
  verify(document: Uint8Array, options: VerifyOptions): Promise<AttestationClaims>;
}
