/**
 * The one table of Bulwark's error codes (after fastify's `errors.js`): every failure Bulwark reports
 * has a stable `ERR_*` code here, the process exit code the CLI uses for it, and a one-line summary.
 * `docs/errors.md` documents each code; `test/core/errors.test.ts` fails when a code is undocumented,
 * documented twice, or never thrown anywhere in `src/`.
 *
 * Codes are part of the public API: never rename or reuse one; add a new code instead.
 */

/** Process exit codes of the `bulwark` CLI (documented in `docs/errors.md` and the README). */
export const ExitCode = {
  ok: 0,
  /** An operation failed for a reason not covered below. */
  failure: 1,
  /** The command line was wrong: unknown option, bad value, missing argument. */
  usage: 2,
  /** Input data was missing or malformed: file not found, bad CSV row, schema mismatch. */
  input: 3,
  /** A configuration file was missing keys or had wrong values. */
  config: 4,
  /** A security check refused: bad signature, missing or wrong key, failed verification. */
  security: 5,
  /** A service Bulwark depends on was unreachable (database, ledger, policy store). */
  unavailable: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

interface CodeInfo {
  readonly exit: ExitCode;
  readonly summary: string;
}

export const errorCodes = {
  // core
  ERR_INVALID_ARGUMENT: {
    exit: ExitCode.usage,
    summary: 'A parameter passed to a function or command was invalid.',
  },
  ERR_USAGE: {
    exit: ExitCode.usage,
    summary: 'The command line could not be parsed (unknown option, missing argument).',
  },
  ERR_INTERNAL: { exit: ExitCode.failure, summary: 'An unexpected internal failure; a bug to report.' },
  ERR_FILE_NOT_FOUND: { exit: ExitCode.input, summary: 'A file or folder named by the user does not exist.' },
  ERR_FILE_EXISTS: {
    exit: ExitCode.input,
    summary: 'An output file exists and overwriting was not asked for.',
  },
  ERR_IO: { exit: ExitCode.failure, summary: 'Reading or writing a file failed (permissions, disk full).' },
  ERR_CONFIG_PARSE: { exit: ExitCode.config, summary: 'A YAML configuration file is not well-formed YAML.' },
  ERR_CONFIG_INVALID: { exit: ExitCode.config, summary: 'A configuration file does not match its schema.' },
  ERR_RNG_SEED: { exit: ExitCode.usage, summary: 'A PRNG seed is not an integer in the accepted range.' },
  // data
  ERR_CSV_PARSE: {
    exit: ExitCode.input,
    summary: 'A CSV file is malformed (bad quoting, wrong field count).',
  },
  ERR_PARQUET_READ: { exit: ExitCode.input, summary: 'A Parquet file could not be read.' },
  ERR_FILE_CHANGED: {
    exit: ExitCode.input,
    summary: 'A file changed while Bulwark read it: two reads of it differ, so what was read is refused.',
  },
  ERR_FORMAT_UNSUPPORTED: {
    exit: ExitCode.input,
    summary: 'A file format or extension Bulwark does not read or write.',
  },
  ERR_SCHEMA_INVALID: { exit: ExitCode.input, summary: 'A schema file is malformed or inconsistent.' },
  ERR_SCHEMA_MISMATCH: {
    exit: ExitCode.input,
    summary: 'Data does not match its schema (missing column, bad value).',
  },
  ERR_DATA_VALUE: {
    exit: ExitCode.input,
    summary: 'A value cannot be used: NaN, Infinity, non-numeric in a numeric column.',
  },
  ERR_COLUMN_NOT_FOUND: { exit: ExitCode.input, summary: 'A named column does not exist in the data.' },
  ERR_DATASET_UNKNOWN: { exit: ExitCode.usage, summary: 'A dataset name is not in the dataset registry.' },
  ERR_DATASET_MISSING: {
    exit: ExitCode.input,
    summary: 'A registered dataset’s files are not in the folder given.',
  },
  ERR_PREPROCESS_STATE: {
    exit: ExitCode.input,
    summary: 'A preprocessing step was used before fitting, or its saved state is invalid.',
  },
  ERR_DATASET_CHECKSUM: {
    exit: ExitCode.input,
    summary: 'A dataset file does not match the SHA-256 digest its SHA256SUMS lists.',
  },
  // data: synthetic transactions
  ERR_ABORTED: {
    exit: ExitCode.failure,
    summary: 'A long operation was cancelled (Ctrl-C or an abort signal); its output was not written.',
  },
  // privacy
  ERR_PRIVACY_BUDGET_EXCEEDED: {
    exit: ExitCode.security,
    summary:
      'A DP operation would spend more (epsilon, delta) than the budget left: refused, nothing released.',
  },
  ERR_PRIVACY_BUDGET_UNSET: {
    exit: ExitCode.security,
    summary: 'No privacy budget is set for the dataset (or analyst) a DP operation spends from: refused.',
  },
  ERR_PRIVACY_UNACHIEVABLE: {
    exit: ExitCode.usage,
    summary: 'The privacy target cannot be met with the parameters given (noise would be unbounded).',
  },
  ERR_LEDGER_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary: 'The privacy budget ledger cannot be reached or failed mid-spend: refused, nothing released.',
  },
  ERR_LEDGER_INVALID: {
    exit: ExitCode.input,
    summary: 'The budget ledger store is not a ledger of this format, or its stored totals are inconsistent.',
  },
  ERR_LEDGER_MISMATCH: {
    exit: ExitCode.security,
    summary:
      'A DP fine-tune would spend from another ledger or budget than the model it continues (or cannot tell which).',
  },
  ERR_WARM_START_MISMATCH: {
    exit: ExitCode.input,
    summary: 'The model to fine-tune with DP has another architecture, classes or public preprocessing.',
  },
  ERR_DP_UNACCOUNTED: {
    exit: ExitCode.usage,
    summary:
      'Refused under DP: the step would use the private data outside the DP accounting (e.g. --sanitize).',
  },
  // ml
  ERR_SHAPE_MISMATCH: {
    exit: ExitCode.input,
    summary: 'Arrays, data or a model do not have the shapes they must have to be used together.',
  },
  ERR_LABEL_INVALID: {
    exit: ExitCode.input,
    summary: 'Labels cannot be trained on: not integers in range, or only one class.',
  },
  ERR_MODEL_STATE: {
    exit: ExitCode.input,
    summary: 'A model was used before training, or saved model state is invalid or of another version.',
  },
  ERR_TRAINING_DIVERGED: {
    exit: ExitCode.failure,
    summary: 'Training produced a non-finite loss or weights (learning rate too high?).',
  },
  ERR_ONNX_INVALID: {
    exit: ExitCode.input,
    summary: 'An ONNX file is malformed or not a model Bulwark can use.',
  },
  ERR_ONNX_UNSUPPORTED_OP: {
    exit: ExitCode.input,
    summary: 'An ONNX graph uses an operator (or attribute) Bulwark cannot import.',
  },
  ERR_ONNX_RUNTIME: { exit: ExitCode.failure, summary: 'ONNX Runtime failed to load or run a model.' },
  // robust
  ERR_MODEL_CAPABILITY: {
    exit: ExitCode.usage,
    summary: 'An attack or defence needs a model capability (input gradients) the model does not offer.',
  },
  ERR_DETECTOR_STATE: {
    exit: ExitCode.input,
    summary: 'A detector was used before fit/calibrate, or its saved state is invalid or of another version.',
  },
  ERR_DETECTOR_STORE_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary:
      "The stream detectors' shared state store (Redis) cannot be reached: the request is denied, not judged without history.",
  },
  ERR_INPUT_INVALID: {
    exit: ExitCode.input,
    summary:
      'A prediction input fails the model schema (type, bounds, category, NaN/Infinity, unknown field).',
  },
  ERR_INPUT_TOO_LARGE: {
    exit: ExitCode.input,
    summary:
      'An input exceeds a size limit: a prediction request (rows, fields, string length, bytes), or manifests given to deploy check.',
  },
  // integrity (training-data integrity, security gate)
  ERR_DATA_PROVENANCE: {
    exit: ExitCode.security,
    summary: 'Training data is not a protected dataset whose digest the audit log records.',
  },
  ERR_DATA_ALREADY_PROTECTED: {
    exit: ExitCode.input,
    summary:
      'data protect was given a file that already has a protection manifest beside it (FILE.bulwark.json); reveal it first or pass --allow-protected-input.',
  },
  ERR_DATA_UNVERIFIED: {
    exit: ExitCode.security,
    summary:
      'A data file has a protection manifest but cannot be verified against it (no keyring, or no row digest), or --require-protected was given and it has none.',
  },
  ERR_GATE_FAILED: {
    exit: ExitCode.security,
    summary: 'A model crossed a threshold of the security gate (`bulwark evaluate --gate`).',
  },
  ERR_GATE_METRIC: {
    exit: ExitCode.usage,
    summary: 'A security-gate check cannot be measured with what was given (members, ledger, trigger).',
  },
  ERR_POISON_GATE: {
    exit: ExitCode.security,
    summary: 'Under DP, the poisoning check flagged more of the new batch than allowed: batch refused whole.',
  },
  ERR_MODEL_REGRESSION: {
    exit: ExitCode.security,
    summary: 'A retrained model regresses against the previous one beyond the configured limits.',
  },
  ERR_DATA_OVERLAP: {
    exit: ExitCode.input,
    summary:
      'A holdout or evaluation set shares rows with the data the model trained on (evaluate --gate --members, train --from --eval).',
  },
  ERR_FILE_LOCKED: {
    exit: ExitCode.unavailable,
    summary: 'Another process holds the lock on a file this command must change (or the lock was lost).',
  },
  // keys and data protection
  ERR_SECRET_MISSING: {
    exit: ExitCode.usage,
    summary: 'A passphrase or PIN was needed but no file, environment variable or terminal supplied it.',
  },
  ERR_PASSPHRASE_WRONG: { exit: ExitCode.security, summary: 'The passphrase does not open this keyring.' },
  ERR_KEYRING_INVALID: {
    exit: ExitCode.input,
    summary: 'A keyring file is malformed or its sealed contents failed authentication.',
  },
  ERR_KEYRING_CHANGED: {
    exit: ExitCode.failure,
    summary: 'The keyring file was changed by another process since it was opened; nothing was written.',
  },
  ERR_KEYRING_PROVIDER_MISMATCH: {
    exit: ExitCode.security,
    summary: 'A keyring file names another key provider than the one expected (default local).',
  },
  ERR_PKCS11_MODULE_UNTRUSTED: {
    exit: ExitCode.security,
    summary:
      'A pkcs11 keyring names a PKCS#11 module that is not a known SoftHSM2 location nor listed in BULWARK_PKCS11_MODULES.',
  },
  ERR_KEY_WRAP_LIMIT: {
    exit: ExitCode.security,
    summary: "A key-encryption key version has made as many wraps as its provider's random IVs allow.",
  },
  ERR_KEY_NOT_FOUND: {
    exit: ExitCode.security,
    summary: 'The key (keyring, id or version) that protected this data is not in the keyring given.',
  },
  ERR_KEY_DISABLED: { exit: ExitCode.security, summary: 'The key version needed is disabled.' },
  ERR_KEY_DESTROYED: {
    exit: ExitCode.security,
    summary: 'The key needed was destroyed (or the data subject was erased): the data is unreadable.',
  },
  ERR_KEY_UNWRAP: {
    exit: ExitCode.security,
    summary: 'A wrapped data key did not unwrap: altered, or the key material behind its id changed.',
  },
  ERR_HSM: {
    exit: ExitCode.unavailable,
    summary: 'The PKCS#11 module, slot, token or login failed.',
  },
  ERR_FORMAT_VERSION: {
    exit: ExitCode.input,
    summary: 'An encrypted file, value, keyring or manifest has a format version this Bulwark cannot read.',
  },
  ERR_HEADER_TAMPERED: {
    exit: ExitCode.security,
    summary: 'The header of an encrypted file or a protection manifest was altered.',
  },
  ERR_CIPHERTEXT_TAMPERED: {
    exit: ExitCode.security,
    summary: 'Encrypted data failed authentication: a byte was changed or it was moved from elsewhere.',
  },
  ERR_CIPHERTEXT_TRUNCATED: {
    exit: ExitCode.security,
    summary: 'An encrypted file ends before its final frame: it was truncated.',
  },
  ERR_FRAME_ORDER: {
    exit: ExitCode.security,
    summary: 'Frames of an encrypted file are out of order, repeated, or come from another file.',
  },
  // model packages
  ERR_PACKAGE_INVALID: {
    exit: ExitCode.input,
    summary: 'A model package is malformed: bad header or footer, part lengths, or manifest.',
  },
  ERR_PACKAGE_UNSIGNED: {
    exit: ExitCode.security,
    summary: 'A model package carries no signature: refused.',
  },
  ERR_SIGNATURE_INVALID: {
    exit: ExitCode.security,
    summary: 'A model package signature (DSSE in a Sigstore bundle) is malformed or does not verify.',
  },
  ERR_SIGNER_UNTRUSTED: {
    exit: ExitCode.security,
    summary: 'A model package is signed by a key the trust policy does not trust for that model name.',
  },
  ERR_DIGEST_MISMATCH: {
    exit: ExitCode.security,
    summary: 'A part of a model package does not match the digest its signed statement lists.',
  },
  ERR_SIGNING_KEY_INVALID: {
    exit: ExitCode.input,
    summary: 'A signing or public key is malformed or of an unsupported kind (use ECDSA P-256 or Ed25519).',
  },
  ERR_MODEL_UNSAFE: {
    exit: ExitCode.security,
    summary:
      'A model file can run code when loaded (pickle, PyTorch, joblib) or reads data outside its folder.',
  },
  ERR_LINEAGE_UNBACKED: {
    exit: ExitCode.security,
    summary:
      "A model's privacy or adversarial-training claim is backed by no audit record of its training: not signed.",
  },
  ERR_LINEAGE_MISMATCH: {
    exit: ExitCode.security,
    summary: "A model's lineage contradicts the audit log's record of its training: not signed.",
  },
  // audit
  ERR_AUDIT_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary:
      'The audit store (SQLite file or PostgreSQL) cannot be reached or written: nothing was recorded.',
  },
  ERR_AUDIT_STORE_INVALID: {
    exit: ExitCode.input,
    summary:
      'The audit store is not an audit log of this format, its tree cache or lineage index disagrees with its entries, or it holds rows beyond its tree head.',
  },
  ERR_AUDIT_CLOSED: { exit: ExitCode.failure, summary: 'An audit log was used after it was closed.' },
  ERR_AUDIT_EVENT_INVALID: { exit: ExitCode.input, summary: 'An audit event does not match its schema.' },
  ERR_AUDIT_EVENT_NOT_FOUND: {
    exit: ExitCode.input,
    summary: 'No event with the given id is in the audit log.',
  },
  ERR_AUDIT_KEY_INVALID: {
    exit: ExitCode.security,
    summary: 'An audit signing or public key is malformed, missing, or not the key of this log.',
  },
  ERR_AUDIT_ORIGIN_MISMATCH: {
    exit: ExitCode.security,
    summary: 'A checkpoint, store or public key belongs to another log (origin line or key name differs).',
  },
  ERR_AUDIT_CHECKPOINT_INVALID: {
    exit: ExitCode.security,
    summary: 'A checkpoint or signed note is malformed, or a stored checkpoint differs from its signed note.',
  },
  ERR_AUDIT_CHECKPOINT_SIGNATURE: {
    exit: ExitCode.security,
    summary: 'A checkpoint is not signed by the trusted log key, or its signature does not verify.',
  },
  ERR_AUDIT_CHECKPOINT_MISSING: {
    exit: ExitCode.input,
    summary: 'No signed checkpoint covers the event (or the tree size) asked for.',
  },
  ERR_AUDIT_ENTRY_CORRUPT: {
    exit: ExitCode.security,
    summary: 'An audit entry was altered: its bytes do not match its leaf hash, schema or canonical form.',
  },
  ERR_AUDIT_ENTRY_ORDER: {
    exit: ExitCode.security,
    summary: 'An audit entry is at another position than the one it was appended at: entries were reordered.',
  },
  ERR_AUDIT_ENTRY_MISSING: {
    exit: ExitCode.security,
    summary:
      'Audit entries covered by the tree, a signed checkpoint or one the auditor kept are missing: entries were removed or the log rolled back.',
  },
  ERR_AUDIT_ROOT_MISMATCH: {
    exit: ExitCode.security,
    summary: 'The audit entries do not hash to a signed root: the log was rewritten.',
  },
  ERR_AUDIT_INCONSISTENT: {
    exit: ExitCode.security,
    summary:
      'Two checkpoints of the audit log are not consistent (the later one does not extend the earlier), or its key signed two different trees of one size: a fork.',
  },
  ERR_AUDIT_PROOF_SIZE: {
    exit: ExitCode.security,
    summary: 'An inclusion proof is for another tree size than the checkpoint it is checked against.',
  },
  ERR_AUDIT_PROOF_INVALID: {
    exit: ExitCode.security,
    summary:
      'An inclusion or consistency proof is malformed, or does not verify against its signed checkpoints.',
  },
  // attest
  ERR_ATTEST_FORMAT_UNKNOWN: {
    exit: ExitCode.usage,
    summary: 'No attestation verifier is registered for the format named (TDX and NVIDIA are reserved).',
  },
  ERR_ATTEST_MALFORMED: {
    exit: ExitCode.input,
    summary: 'An attestation document or report is not well-formed for its format (CBOR, COSE, fields).',
  },
  ERR_ATTEST_SIGNATURE: {
    exit: ExitCode.security,
    summary: 'The signature over an attestation document or report does not verify: it was altered.',
  },
  ERR_ATTEST_CHAIN: {
    exit: ExitCode.security,
    summary: 'A certificate of an attestation chain is not issued or signed by the next one up.',
  },
  ERR_ATTEST_UNTRUSTED_ROOT: {
    exit: ExitCode.security,
    summary: 'An attestation chain ends at another root (or signer key) than the pinned one.',
  },
  ERR_ATTEST_CERT_EXPIRED: {
    exit: ExitCode.security,
    summary: 'A certificate of an attestation chain is not valid at the verification time.',
  },
  ERR_ATTEST_NONCE: {
    exit: ExitCode.security,
    summary: 'An attestation does not carry the nonce the verifier sent (replayed or missing).',
  },
  ERR_ATTEST_BINDING: {
    exit: ExitCode.security,
    summary: 'An attestation binds another public key or user data than the one expected.',
  },
  ERR_ATTEST_DEBUG: {
    exit: ExitCode.security,
    summary: 'The enclave runs in (or allows) debug mode and the policy forbids it.',
  },
  ERR_ATTEST_MEASUREMENT: {
    exit: ExitCode.security,
    summary: 'An attested measurement (PCR, launch digest) is not one the policy allows.',
  },
  ERR_ATTEST_TCB: {
    exit: ExitCode.security,
    summary: 'The platform TCB version is below the policy minimum or differs from its certificate.',
  },
  ERR_ATTEST_GUEST_POLICY: {
    exit: ExitCode.security,
    summary:
      'An SEV-SNP report was requested at a less privileged VMPL than the policy accepts, or its guest policy lets a migration agent in.',
  },
  ERR_ATTEST_HARDWARE_REQUIRED: {
    exit: ExitCode.security,
    summary: 'A software (non-hardware) attestation was offered and the policy requires hardware.',
  },
  ERR_ATTEST_REVOKED: {
    exit: ExitCode.security,
    summary: "A certificate of an attestation chain is on its issuer's certificate revocation list.",
  },
  ERR_ATTEST_STALE: {
    exit: ExitCode.security,
    summary: 'An attestation is older than the policy allows, dated in the future, or has no freshness.',
  },
  ERR_ATTEST_POLICY_INVALID: {
    exit: ExitCode.config,
    summary: 'An attestation policy file or object does not match its schema.',
  },
  ERR_SESSION_MALFORMED: {
    exit: ExitCode.input,
    summary: 'An attested-session message is not a frame of the session wire format.',
  },
  ERR_SESSION_UNKNOWN: {
    exit: ExitCode.security,
    summary: 'An attested-session message names a session or attestation the server does not hold.',
  },
  ERR_SESSION_REPLAY: {
    exit: ExitCode.security,
    summary: 'An attested-session message was replayed (sequence number seen before or too old).',
  },
  ERR_SESSION_DECRYPT: {
    exit: ExitCode.security,
    summary: 'An attested-session message failed authentication: altered, or keyed to another session.',
  },
  ERR_ENCLAVE_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary: 'The enclave runtime (NSM device, software worker, attested server) cannot be reached.',
  },
  // gateway: authentication (src/gateway/auth) and authorisation (src/gateway/policy)
  ERR_AUTH_MISSING: {
    exit: ExitCode.security,
    summary: 'A request carried no credential the gateway requires (client certificate or bearer token).',
  },
  ERR_AUTH_TOKEN_MALFORMED: {
    exit: ExitCode.security,
    summary: 'The bearer token is not a well-formed compact JWS/JWT or is too large.',
  },
  ERR_AUTH_TOKEN_ALG: {
    exit: ExitCode.security,
    summary: 'The token algorithm is not in the asymmetric allow-list (alg none, HS* with a public key).',
  },
  ERR_AUTH_TOKEN_HEADER: {
    exit: ExitCode.security,
    summary: 'The token header carries a key or key reference (jwk, jku, x5u, x5c) that is never trusted.',
  },
  ERR_AUTH_TOKEN_CRIT: {
    exit: ExitCode.security,
    summary: 'The token header lists critical extensions (crit) the gateway does not understand.',
  },
  ERR_AUTH_TOKEN_KID: {
    exit: ExitCode.security,
    summary: 'The token key id (kid) is malformed (path, quote or control characters, too long).',
  },
  ERR_AUTH_TOKEN_KEY_UNKNOWN: {
    exit: ExitCode.security,
    summary: 'No key of the issuer JWKS matches the token kid and algorithm.',
  },
  ERR_AUTH_TOKEN_SIGNATURE: {
    exit: ExitCode.security,
    summary: 'The token signature does not verify (tampered header or payload, forged or zero signature).',
  },
  ERR_AUTH_TOKEN_TYPE: {
    exit: ExitCode.security,
    summary: 'The token typ header is not an access-token type (RFC 9068 at+jwt).',
  },
  ERR_AUTH_TOKEN_EXPIRED: {
    exit: ExitCode.security,
    summary: 'The token is past its exp (beyond the clock skew).',
  },
  ERR_AUTH_TOKEN_NOT_YET_VALID: {
    exit: ExitCode.security,
    summary: 'The token nbf or iat is in the future (beyond the clock skew).',
  },
  ERR_AUTH_TOKEN_CLAIM_MISSING: {
    exit: ExitCode.security,
    summary: 'A required token claim (exp, iss, aud, sub, ...) is missing or of the wrong type.',
  },
  ERR_AUTH_TOKEN_ISSUER: { exit: ExitCode.security, summary: 'The token iss is not the configured issuer.' },
  ERR_AUTH_TOKEN_AUDIENCE: {
    exit: ExitCode.security,
    summary: 'The token aud does not name this gateway (a configured audience).',
  },
  ERR_AUTH_TOKEN_LIFETIME: {
    exit: ExitCode.security,
    summary: 'The token lifetime (exp - iat) exceeds the configured maximum.',
  },
  ERR_AUTH_TOKEN_BINDING: {
    exit: ExitCode.security,
    summary:
      'The token is bound to another client certificate (RFC 8705 cnf x5t#S256) or DPoP key (RFC 9449 cnf jkt), or the binding is missing or stripped.',
  },
  ERR_AUTH_DPOP_INVALID: {
    exit: ExitCode.security,
    summary:
      'The DPoP proof (RFC 9449) is missing, malformed, badly signed, for another method or URL, too old, or for another access token or key.',
  },
  ERR_AUTH_DPOP_REPLAY: {
    exit: ExitCode.security,
    summary: 'The DPoP proof was already used (its jti was seen within the proof lifetime).',
  },
  ERR_AUTH_DPOP_NONCE: {
    exit: ExitCode.security,
    summary:
      'The DPoP proof has no nonce, or not a fresh one this gateway issued (RFC 9449 §9, jwt.dpop.nonce): retry with the DPoP-Nonce of the answer.',
  },
  ERR_AUTH_DPOP_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary: 'The DPoP replay store (Redis, or the full memory store) cannot record the proof; refused.',
  },
  ERR_AUTH_CERT_INVALID: {
    exit: ExitCode.security,
    summary: 'The client certificate is unverified or not a valid SPIFFE X.509-SVID leaf.',
  },
  ERR_AUTH_CERT_REVOKED: {
    exit: ExitCode.security,
    summary: 'The client certificate (direct or forwarded) is revoked by its CA CRL (RFC 5280 §6.3).',
  },
  ERR_AUTH_CRL_EXPIRED: {
    exit: ExitCode.unavailable,
    summary:
      'The CRL of the client certificate CA is past its nextUpdate (or before its thisUpdate): refused until a current CRL is loaded.',
  },
  ERR_AUTH_TRUST_DOMAIN: {
    exit: ExitCode.security,
    summary: 'The client SPIFFE id is outside the allowed trust domains.',
  },
  ERR_AUTH_FORWARDED_UNTRUSTED: {
    exit: ExitCode.security,
    summary:
      'A forwarded client certificate came from a peer that is not a trusted proxy over mTLS, or is invalid.',
  },
  ERR_AUTH_IDENTITY_CONFLICT: {
    exit: ExitCode.security,
    summary: 'The certificate identity and the token disagree (for example on the tenant).',
  },
  ERR_AUTH_JWKS_INVALID: {
    exit: ExitCode.config,
    summary:
      'The JWKS file or response is malformed or holds keys that are not allowed (symmetric, private).',
  },
  ERR_AUTH_JWKS_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary: 'The issuer JWKS could not be fetched (network error, timeout, bad status).',
  },
  ERR_POLICY_DENIED: { exit: ExitCode.security, summary: 'The Cedar policies did not permit the request.' },
  ERR_POLICY_ENGINE: {
    exit: ExitCode.unavailable,
    summary: 'The policy engine failed to evaluate the request; the request is denied.',
  },
  ERR_POLICY_INVALID: {
    exit: ExitCode.config,
    summary: 'A Cedar policy or schema file does not parse or does not validate against the schema.',
  },
  // gateway: the request pipeline (src/gateway)
  ERR_GATEWAY_REQUEST_INVALID: {
    exit: ExitCode.input,
    summary:
      'A gateway request is malformed: not JSON, nested too deep, a forbidden key, an unknown field, a wrong type or shape.',
  },
  ERR_GATEWAY_BODY_TOO_LARGE: {
    exit: ExitCode.input,
    summary: 'A gateway request body is larger than server.bodyLimitBytes.',
  },
  ERR_GATEWAY_NOT_FOUND: {
    exit: ExitCode.input,
    summary: 'No gateway route, model or model version by that name.',
  },
  ERR_GATEWAY_METHOD_NOT_ALLOWED: {
    exit: ExitCode.input,
    summary: 'The HTTP method is not the one the gateway route takes.',
  },
  ERR_GATEWAY_MEDIA_TYPE: {
    exit: ExitCode.input,
    summary:
      'A gateway request body is not declared application/json (or has a charset other than UTF-8), or has a content coding.',
  },
  ERR_GATEWAY_REQUEST_TIMEOUT: {
    exit: ExitCode.input,
    summary:
      'A client did not send a request in time (server.headersTimeoutMs, server.requestTimeoutMs): 408, connection closed.',
  },
  ERR_GATEWAY_URL_TOO_LONG: {
    exit: ExitCode.input,
    summary: 'A gateway request URL is longer than the gateway accepts (414).',
  },
  ERR_GATEWAY_HEADERS_TOO_LARGE: {
    exit: ExitCode.input,
    summary:
      'A gateway request line and headers are larger than the gateway accepts (431): connection closed.',
  },
  ERR_GATEWAY_PIPELINE_OVERFLOW: {
    exit: ExitCode.input,
    summary:
      'A client pipelined more requests than the gateway reads ahead while their answers went unread (429): the owed answers, then this one, then the connection is closed.',
  },
  ERR_GATEWAY_EXPECTATION_FAILED: {
    exit: ExitCode.input,
    summary: 'A gateway request carries an Expect header other than 100-continue (417).',
  },
  ERR_GATEWAY_RATE_LIMITED: {
    exit: ExitCode.security,
    summary: 'The caller sent more requests than its rate limit allows; retry after the time given.',
  },
  ERR_GATEWAY_BUDGET_EXHAUSTED: {
    exit: ExitCode.security,
    summary: 'The caller has used its query budget for the model in the current window.',
  },
  ERR_GATEWAY_LIMITER_UNAVAILABLE: {
    exit: ExitCode.unavailable,
    summary: 'The rate-limit store (Redis) cannot be reached: the request is denied, not let through.',
  },
  ERR_GATEWAY_DETECTED: {
    exit: ExitCode.security,
    summary: 'A detector flagged the request (out-of-distribution input, probing or extraction traffic).',
  },
  ERR_GATEWAY_NOT_READY: {
    exit: ExitCode.unavailable,
    summary: 'The gateway is starting or draining, or the model is not loaded: try again later.',
  },
  ERR_GATEWAY_TLS: {
    exit: ExitCode.config,
    summary:
      'The gateway TLS certificate, key, client CA bundle or client CRL file cannot be read or does not load.',
  },
  // client SDK (bulwark/client): thrown as GatewayError
  ERR_CLIENT_RESPONSE: {
    exit: ExitCode.failure,
    summary:
      'The server answered the client SDK with something that is not a valid answer: not JSON, compressed, a __proto__ key, a number out of range, or not a v2 response.',
  },
  ERR_CLIENT_RESPONSE_TOO_LARGE: {
    exit: ExitCode.failure,
    summary: "The server's answer to the client SDK is larger than maxResponseBytes; it was cut off unread.",
  },
  // deploy
  ERR_DEPLOY_MANIFEST_INVALID: {
    exit: ExitCode.failure,
    summary:
      'A generated Kubernetes object does not match the published Kubernetes schema (a bug to report).',
  },
  ERR_MANIFEST_PARSE: {
    exit: ExitCode.input,
    summary:
      'A manifest file given to `deploy check` is not YAML, a document is not a Kubernetes object, or an input holds no object.',
  },
  ERR_DEPLOY_FINDINGS: {
    exit: ExitCode.security,
    summary: '`deploy check` found problems at or above the `--fail-on` severity.',
  },
  // plan
  ERR_BENCH_RESULTS_INVALID: {
    exit: ExitCode.input,
    summary: 'A benchmark result file (bench/results/*.json) is not valid JSON of the expected shape.',
  },
  ERR_PLAN_COST_MISSING: {
    exit: ExitCode.input,
    summary: 'A measure the plan requires has no measured cost and none was supplied in the plan file.',
  },
  ERR_PLAN_INFEASIBLE: {
    exit: ExitCode.input,
    summary: 'No set of measures meets the compliance profile and dependencies within the budget.',
  },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof errorCodes;
