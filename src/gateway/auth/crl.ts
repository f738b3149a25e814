import type { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as x509 from '@peculiar/x509';
import { type CheckedCrl, checkCrl, readCrls, serialKey } from '../../attest/x509.js';
import { BulwarkError, fsError, requireNonEmptyString, requireOneOf } from '../../core/index.js';

/**
 * Offline certificate revocation lists (RFC 5280 §5) for client certificates: one PEM file holding one
 * CRL per CA of a bundle (or one DER CRL), checked at load and then consulted per certificate (RFC 5280
 * §6.3). The same lists go to Node's TLS (`crl`, for direct connections) and to the JavaScript checks (forwarded
 * certificates, and kept-alive connections after a reload), so both paths refuse the same certificates.
 *
 * Node sets X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL once a CRL is given: OpenSSL then wants a
 * CRL for the issuer of every certificate in the chain and refuses one whose CA has none
 * (UNABLE_TO_GET_CRL), refuses a CRL past its nextUpdate or before its thisUpdate (CRL_HAS_EXPIRED,
 * CRL_NOT_YET_VALID) and one whose signature fails (CRL_SIGNATURE_FAILURE). Where OpenSSL would pick
 * one of several CRLs of a CA, or use a CRL without nextUpdate, we refuse the file at load instead, so
 * the TLS layer and this code never disagree. Not done: OCSP, delta and partitioned or indirect CRLs,
 * fetching from distribution points (offline only).
 */

/** Outcome of a revocation check; the strings are OpenSSL's verify codes as Node reports them. */
export type RevocationStatus =
  | 'good'
  | 'CERT_REVOKED'
  | 'CRL_HAS_EXPIRED'
  | 'CRL_NOT_YET_VALID'
  | 'UNABLE_TO_GET_CRL';

/** How load errors are reported: the config key they name and their code. */
export interface RevocationListsOptions {
  /** The configuration key of the CRL file, named in every load error (`server.tls.clientCrl`). */
  readonly key: string;
  /** `ERR_GATEWAY_TLS` for the TLS layer's file, `ERR_CONFIG_INVALID` for the authenticator's. */
  readonly code: 'ERR_GATEWAY_TLS' | 'ERR_CONFIG_INVALID';
}

type Crl = CheckedCrl;

/** RFC 7468 §2: base64 in lines of 64 characters, and no blank line (OpenSSL refuses the PEM then). */
function toPem(der: ArrayBuffer): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN X509 CRL-----\n${lines.join('\n')}\n-----END X509 CRL-----\n`;
}

/** The CRLs of a CA bundle, validated against it; immutable (a reload builds a new one). */
export class RevocationLists {
  /** CA certificate fingerprint (SHA-256) to its CRL. */
  readonly #byCa: ReadonlyMap<string, Crl>;
  /** The validated CRLs re-encoded as PEM, for `tls.createSecureContext({ crl })`. */
  readonly pem: readonly string[];
  /** Per peer certificate object (the server parses it once per connection): the CRLs of its chain and whether one revokes it. */
  readonly #chains = new WeakMap<
    X509Certificate,
    readonly { crl: Crl; revoked: boolean }[] | 'UNABLE_TO_GET_CRL'
  >();

  /** The CA certificates of the bundle, to find a peer chain's issuers in. */
  readonly #cas: readonly X509Certificate[];

  private constructor(
    byCa: ReadonlyMap<string, Crl>,
    pem: readonly string[],
    cas: readonly X509Certificate[],
  ) {
    this.#byCa = byCa;
    this.pem = pem;
    this.#cas = cas;
  }

  /**
   * Reads `file` (PEM, one or more `X509 CRL` blocks, or one DER CRL: {@link readCrls}, which the
   * attestation path's `crls` share) and validates it against `cas`, the CA bundle the certificates it
   * covers chain to. Refused, with `options.code` and a message naming `options.key`: an unreadable or
   * empty file, text outside the blocks, another PEM block, bad base64, a CRL that does not parse, has no
   * nextUpdate (RFC 5280 §5.1.2.5), or carries a critical extension (RFC 5280 §5.2, §5.3: delta,
   * partitioned and indirect CRLs are not supported); a CRL whose issuer is not a CA of the bundle,
   * whose signature does not verify with that CA's key, or whose CA may not sign CRLs (RFC 5280 §6.3.3
   * (f), (g)); two CRLs of one CA; and a CA of the bundle with no CRL (Node's TLS would refuse all its
   * certificates). A CRL past its nextUpdate loads: the certificates of its CA are refused until a
   * current one is loaded.
   */
  static async load(
    file: string,
    cas: readonly X509Certificate[],
    options: RevocationListsOptions,
  ): Promise<RevocationLists> {
    requireNonEmptyString('file', file);
    requireNonEmptyString('options.key', options?.key);
    requireOneOf('options.code', options.code, ['ERR_GATEWAY_TLS', 'ERR_CONFIG_INVALID'] as const);
    if (!Array.isArray(cas) || cas.length === 0)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'cas: expected at least one CA certificate');
    const fail = (message: string, cause?: unknown): BulwarkError =>
      new BulwarkError(options.code, `${options.key}: ${file}: ${message}`, {
        ...(cause === undefined ? {} : { cause }),
        details: { path: file },
      });
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (e) {
      const err = fsError(e, file, `cannot read ${options.key}`);
      throw new BulwarkError(options.code, err.message, { cause: e, details: { path: file } });
    }
    // The one strict reader the attestation path uses too: PEM blocks or one DER CRL, nothing skipped.
    const blocks = readCrls(bytes, fail);

    const candidates = cas.filter((c) => c.ca);
    const byCa = new Map<string, Crl>();
    const pem: string[] = [];
    for (const [i, der] of blocks.entries()) {
      const crl = await checkCrl(der, candidates, `CRL ${i + 1}`, fail, 'of the bundle');
      const id = crl.ca.fingerprint256;
      if (byCa.has(id)) throw fail(`holds two CRLs of the CA ${crl.issuer}; keep only the current one`);
      byCa.set(id, crl);
      pem.push(toPem(crl.der));
    }
    const without = candidates
      .filter((c) => !byCa.has(c.fingerprint256))
      .map((c) => new x509.X509Certificate(c.raw).subject);
    if (without.length > 0)
      throw fail(
        `no CRL for the CA ${without.join('; ')}: with CRLs configured, every CA of the bundle needs one (the TLS layer refuses certificates of a CA without one)`,
      );
    return new RevocationLists(byCa, pem, candidates);
  }

  /** Issuers of the CRLs outside their validity window at `nowMs` (to warn about at load). */
  outdated(nowMs: number): string[] {
    return [...this.#byCa.values()]
      .filter((c) => nowMs < c.thisUpdate || nowMs > c.nextUpdate)
      .map((c) => c.issuer);
  }

  /**
   * The revocation status of `cert`, issued by `issuer` (a CA of the bundle), at `nowMs`, in OpenSSL's
   * order (RFC 5280 §6.3.3 (b) before (i)): a CRL outside its validity window first, then revocation.
   */
  status(cert: X509Certificate, issuer: X509Certificate, nowMs: number): RevocationStatus {
    const crl = this.#byCa.get(issuer.fingerprint256);
    if (crl === undefined) return 'UNABLE_TO_GET_CRL';
    return (
      timeStatus(crl, nowMs) ?? (crl.revoked.has(serialKey(cert.serialNumber)) ? 'CERT_REVOKED' : 'good')
    );
  }

  /**
   * The status of a TLS peer's certificate chain at `nowMs`: each certificate, up to a self-issued CA,
   * against the CRL of its issuer in the bundle, as X509_V_FLAG_CRL_CHECK_ALL does at the handshake.
   * Lets a reload's CRLs, and a CRL going out of date, reach connections opened before. The issuers are
   * found in the bundle (issuer name and signature), not through Node's `issuerCertificate`, which is
   * not set for a leaf issued by an intermediate CA. The chain and its revocation are memoised per
   * certificate object (one signature check per link and connection); the CRL windows are checked at
   * every call.
   */
  chainStatus(peer: X509Certificate, nowMs: number): RevocationStatus {
    let links = this.#chains.get(peer);
    if (links === undefined) {
      const found: { crl: Crl; revoked: boolean }[] = [];
      let cert = peer;
      // Bounded: a bundle cannot make a longer chain than it has CAs.
      for (let depth = 0; depth <= this.#cas.length; depth++) {
        if (depth > 0 && cert.checkIssued(cert)) break;
        const issuer = this.#cas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
        const crl = issuer === undefined ? undefined : this.#byCa.get(issuer.fingerprint256);
        // No issuer in the bundle (a reload withdrew the CA) or no CRL for it: TLS would refuse now.
        if (issuer === undefined || crl === undefined) {
          found.length = 0;
          break;
        }
        found.push({ crl, revoked: crl.revoked.has(serialKey(cert.serialNumber)) });
        cert = issuer;
      }
      links = found.length === 0 ? 'UNABLE_TO_GET_CRL' : found;
      this.#chains.set(peer, links);
    }
    if (links === 'UNABLE_TO_GET_CRL') return links;
    // Leaf first, each link's CRL window before its revocation, as OpenSSL walks the chain.
    for (const { crl, revoked } of links) {
      const t = timeStatus(crl, nowMs);
      if (t !== undefined) return t;
      if (revoked) return 'CERT_REVOKED';
    }
    return 'good';
  }
}

function timeStatus(crl: Crl, nowMs: number): RevocationStatus | undefined {
  if (nowMs < crl.thisUpdate) return 'CRL_NOT_YET_VALID';
  if (nowMs > crl.nextUpdate) return 'CRL_HAS_EXPIRED';
  return undefined;
}

/** The error a request gets for a status other than `good` (TLS `authorizationError` strings included). */
export function revocationError(status: string): BulwarkError {
  switch (status) {
    case 'CERT_REVOKED':
      return new BulwarkError('ERR_AUTH_CERT_REVOKED', 'the client certificate is revoked (CRL)');
    case 'CRL_HAS_EXPIRED':
      return new BulwarkError(
        'ERR_AUTH_CRL_EXPIRED',
        'the CRL of the client certificate CA is past its nextUpdate: revocation status unknown',
      );
    case 'CRL_NOT_YET_VALID':
      return new BulwarkError(
        'ERR_AUTH_CRL_EXPIRED',
        'the CRL of the client certificate CA is not yet valid (thisUpdate in the future)',
      );
    case 'UNABLE_TO_GET_CRL':
      return new BulwarkError('ERR_AUTH_CERT_INVALID', 'no CRL for the CA of the client certificate');
    default:
      return new BulwarkError('ERR_AUTH_CERT_INVALID', 'the client certificate was not verified by TLS');
  }
}
