import { createHash, type X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { BulwarkError } from '../../core/index.js';

/**
 * Workload identity from an X.509-SVID, following the SPIFFE specs
 * (github.com/spiffe/spiffe: standards/SPIFFE-ID.md and X509-SVID.md).
 */

const MAX_SPIFFE_ID_BYTES = 2048; // SPIFFE-ID.md §2.3
const TRUST_DOMAIN = /^[a-z0-9._-]+$/; // SPIFFE-ID.md §2.1: lower-case letters, digits, dot, dash, underscore
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/; // SPIFFE-ID.md §2.2

function certError(message: string): BulwarkError {
  return new BulwarkError('ERR_AUTH_CERT_INVALID', message);
}

/**
 * Parses and checks a SPIFFE id (SPIFFE-ID.md §2): scheme `spiffe`, a lower-case trust domain with no
 * port or user info, path segments of unreserved characters, no `.`/`..` segments, no trailing slash,
 * no query or fragment, at most 2048 bytes. Returns the trust domain.
 */
export function parseSpiffeId(id: string): { trustDomain: string; path: string } {
  if (Buffer.byteLength(id, 'utf8') > MAX_SPIFFE_ID_BYTES)
    throw certError('SPIFFE id longer than 2048 bytes');
  if (!id.startsWith('spiffe://')) throw certError('URI SAN is not a spiffe:// id');
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (trustDomain.length === 0 || !TRUST_DOMAIN.test(trustDomain))
    throw certError('SPIFFE id has an invalid trust domain (lower-case letters, digits, ".", "-", "_" only)');
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const s of segments) {
      if (s === '' || s === '.' || s === '..' || !PATH_SEGMENT.test(s))
        throw certError('SPIFFE id has an invalid path segment');
    }
  }
  return { trustDomain, path };
}

/**
 * The SPIFFE id of a leaf X.509-SVID. Enforces X509-SVID.md: exactly one URI SAN and it is a SPIFFE id
 * (§2), the leaf is not a CA (§4.1 basicConstraints cA=false), and its key usage, when present, has
 * digitalSignature and neither keyCertSign nor cRLSign (§4.3). Throws `ERR_AUTH_CERT_INVALID`.
 */
export function spiffeIdFromCertificate(cert: X509Certificate): string {
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(cert.raw);
  } catch (e) {
    throw new BulwarkError('ERR_AUTH_CERT_INVALID', 'client certificate cannot be parsed', { cause: e });
  }
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  if (bc?.ca === true || cert.ca) throw certError('client certificate is a CA certificate, not a leaf SVID');
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  if (ku !== null) {
    if ((ku.usages & x509.KeyUsageFlags.digitalSignature) === 0)
      throw certError('client certificate key usage lacks digitalSignature');
    if ((ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0)
      throw certError('client certificate key usage allows certificate or CRL signing');
  }
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((n) => n.type === 'url').map((n) => n.value) ?? [];
  if (uris.length !== 1)
    throw certError(`client certificate must carry exactly one URI SAN (found ${uris.length})`);
  const id = uris[0]!;
  parseSpiffeId(id);
  return id;
}

/** RFC 8705 §3.1 `x5t#S256`: base64url (no padding) SHA-256 of the certificate's DER encoding. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

/** True when `id` is in one of the allowed trust domains. */
export function inTrustDomains(id: string, trustDomains: readonly string[]): boolean {
  const { trustDomain } = parseSpiffeId(id);
  return trustDomains.includes(trustDomain);
}

/** What the gateway needs from a client certificate; a pure function of its DER bytes. */
export interface SvidFacts {
  readonly spiffeId: string;
  /** The SPIFFE id's trust domain, parsed once with the certificate. */
  readonly trustDomain: string;
  readonly thumbprint: string;
  /** validTo, epoch ms. */
  readonly notAfter: number;
}

/**
 * Memoises {@link spiffeIdFromCertificate} by certificate thumbprint: ASN.1-parsing the SVID costs tens
 * of microseconds and a workload presents the same certificate on every request. The result depends only
 * on the DER bytes (trust-domain and validity checks stay per request), so the cache can never be stale;
 * it is bounded and emptied on reload anyway.
 */
export class SvidCache {
  readonly #max: number;
  readonly #map = new Map<string, SvidFacts | BulwarkError>();
  /** The server parses a connection's certificate once, so the same object comes back for every request. */
  #byObject = new WeakMap<X509Certificate, SvidFacts | BulwarkError>();

  constructor(maxEntries = 10_000) {
    this.#max = maxEntries;
  }

  facts(cert: X509Certificate): SvidFacts {
    let v = this.#byObject.get(cert);
    if (v === undefined) {
      v = this.#byThumbprint(cert);
      this.#byObject.set(cert, v);
    }
    if (v instanceof BulwarkError) throw new BulwarkError(v.code, v.message);
    return v;
  }

  #byThumbprint(cert: X509Certificate): SvidFacts | BulwarkError {
    const thumbprint = certificateThumbprint(cert);
    let v = this.#map.get(thumbprint);
    if (v === undefined) {
      try {
        const spiffeId = spiffeIdFromCertificate(cert);
        const { trustDomain } = parseSpiffeId(spiffeId);
        v = { spiffeId, trustDomain, thumbprint, notAfter: Date.parse(cert.validTo) };
      } catch (e) {
        if (!(e instanceof BulwarkError)) throw e;
        v = e;
      }
      if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value as string);
      this.#map.set(thumbprint, v);
    }
    return v;
  }

  clear(): void {
    this.#map.clear();
    this.#byObject = new WeakMap();
  }
}
