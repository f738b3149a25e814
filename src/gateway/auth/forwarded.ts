import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BulwarkError, fsError } from '../../core/index.js';
import { RevocationLists, revocationError } from './crl.js';

/**
 * Forwarded client certificates from a trusted proxy that terminated the client's mTLS:
 * Envoy's `x-forwarded-client-cert` (XFCC: `By=...;Hash=<hex sha256>;Cert="<url-encoded PEM>";URI=...`)
 * or a URL-encoded PEM header (nginx `$ssl_client_escaped_cert`). The caller checks that the immediate
 * peer is a trusted proxy BEFORE calling these; here we parse and re-verify the certificate.
 */

const MAX_HEADER_BYTES = 16_384;

function untrusted(message: string, cause?: unknown): BulwarkError {
  return new BulwarkError('ERR_AUTH_FORWARDED_UNTRUSTED', message, cause === undefined ? {} : { cause });
}

/** Splits `s` on `sep` outside double-quoted strings (XFCC values may be quoted, with `\"` escapes). */
function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted && c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1]!;
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      cur += c;
    } else if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw untrusted('forwarded client certificate header has an unterminated quote');
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t;
}

/** Parses an Envoy XFCC header holding exactly ONE element (one proxy hop) with a `Cert` key. */
export function parseXfcc(header: string): X509Certificate {
  if (header.length > MAX_HEADER_BYTES) throw untrusted('forwarded client certificate header too large');
  const elements = splitOutsideQuotes(header, ',').filter((e) => e.trim() !== '');
  // More than one element means several proxy hops; the last one then describes the previous proxy, not
  // the client. We accept a single trusted hop only, so the certificate is the client's.
  if (elements.length !== 1)
    throw untrusted(`XFCC header must hold exactly one element (found ${elements.length})`);
  const fields = new Map<string, string>();
  for (const pair of splitOutsideQuotes(elements[0]!, ';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw untrusted('XFCC element has a malformed key=value pair');
    const key = pair.slice(0, eq).trim().toLowerCase();
    if (fields.has(key) && key !== 'uri' && key !== 'dns') throw untrusted(`XFCC key ${key} repeated`);
    fields.set(key, unquote(pair.slice(eq + 1)));
  }
  const certField = fields.get('cert');
  if (certField === undefined)
    throw untrusted('XFCC element has no Cert (configure Envoy set_current_client_cert_details.cert)');
  const cert = parsePemHeader(certField);
  const hash = fields.get('hash');
  if (hash !== undefined) {
    const actual = createHash('sha256').update(cert.raw).digest('hex');
    if (hash.toLowerCase() !== actual) throw untrusted('XFCC Hash does not match the forwarded certificate');
  }
  return cert;
}

/** Parses a URL-encoded PEM certificate (one certificate, no chain). */
export function parsePemHeader(value: string): X509Certificate {
  if (value.length > MAX_HEADER_BYTES) throw untrusted('forwarded client certificate header too large');
  let pem: string;
  try {
    pem = decodeURIComponent(value);
  } catch (e) {
    throw untrusted('forwarded client certificate is not URL-encoded PEM', e);
  }
  // The whole value must be one PEM certificate: no chain, and nothing around it to smuggle another format.
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1 || pem.trim() !== blocks[0])
    throw untrusted(`forwarded header must be exactly one PEM certificate (found ${blocks.length})`);
  try {
    return new X509Certificate(blocks[0]!);
  } catch (e) {
    throw untrusted('forwarded client certificate cannot be parsed', e);
  }
}

/**
 * Every `CERTIFICATE` block of a PEM bundle, parsed; `unparsable` makes the error for one that does not
 * parse (each caller names its own file and key).
 */
export function pemCertificates(text: string, unparsable: (cause: unknown) => Error): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw unparsable(e);
    }
  });
}

/**
 * A CA bundle used to re-verify forwarded certificates (defence in depth: the proxy verified them first),
 * with the CRLs of its CAs when `auth.mtls.crlFile` is set.
 */
export class CaBundle {
  readonly #cas: readonly X509Certificate[];
  readonly #crls: RevocationLists | undefined;

  private constructor(cas: readonly X509Certificate[], crls: RevocationLists | undefined) {
    this.#cas = cas;
    this.#crls = crls;
  }

  /**
   * Loads the bundle and, with `crlFile`, its CRLs (validated against it: see {@link RevocationLists.load}).
   * Both are loaded together, so a reload never pairs a new bundle with old CRLs or the reverse.
   */
  static async load(file: string, crlFile?: string): Promise<CaBundle> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw fsError(e, file, 'cannot read CA bundle');
    }
    const parsed = pemCertificates(
      text,
      (e) =>
        new BulwarkError('ERR_CONFIG_INVALID', `${file}: a certificate in the CA bundle cannot be parsed`, {
          cause: e,
          details: { file },
        }),
    );
    const cas: X509Certificate[] = [];
    for (const c of parsed) {
      if (!c.ca)
        throw new BulwarkError('ERR_CONFIG_INVALID', `${file}: holds a certificate that is not a CA`, {
          details: { file },
        });
      cas.push(c);
    }
    if (cas.length === 0)
      throw new BulwarkError('ERR_CONFIG_INVALID', `${file}: no certificates in the CA bundle`, {
        details: { file },
      });
    const crls =
      crlFile === undefined
        ? undefined
        : await RevocationLists.load(crlFile, cas, { key: 'auth.mtls.crlFile', code: 'ERR_CONFIG_INVALID' });
    return new CaBundle(cas, crls);
  }

  /**
   * Refuses a leaf not signed directly by a CA of the bundle, or outside its validity period, and with
   * CRLs a leaf its CA's CRL revokes or whose CA's CRL is outside its validity window (RFC 5280 §6.3.3:
   * `ERR_AUTH_CERT_REVOKED`, `ERR_AUTH_CRL_EXPIRED`), as the TLS layer does for direct connections.
   */
  verifyLeaf(leaf: X509Certificate, nowMs: number): void {
    if (nowMs < Date.parse(leaf.validFrom) || nowMs > Date.parse(leaf.validTo))
      throw untrusted('forwarded client certificate is outside its validity period');
    for (const ca of this.#cas) {
      if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) {
        if (nowMs < Date.parse(ca.validFrom) || nowMs > Date.parse(ca.validTo))
          throw untrusted('the CA of the forwarded client certificate is outside its validity period');
        const status = this.#crls?.status(leaf, ca, nowMs) ?? 'good';
        if (status !== 'good') throw revocationError(status);
        return;
      }
    }
    throw untrusted('forwarded client certificate is not issued by the configured client CA');
  }
}
