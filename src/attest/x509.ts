import { createHash, X509Certificate } from 'node:crypto';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509Certificate as PeculiarCertificate,
  X509Crl as PeculiarCrl,
} from '@peculiar/x509';
import { BulwarkError } from '../core/index.js';

/** Normalised SHA-256 fingerprint: upper-case hex pairs joined by colons (as X509Certificate gives). */
export function normaliseFingerprint(fp: string): string {
  const h = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  return h.match(/../g)?.join(':') ?? '';
}

const parsed = new Map<string, X509Certificate>();
const MAX_PARSED = 1024;

/** Parses one certificate (DER bytes or a PEM string), `ERR_ATTEST_MALFORMED` naming `what`. */
export function parseCertificate(input: string | Uint8Array, what: string): X509Certificate {
  try {
    // Parsed certificates are immutable: reuse them by content digest (CA bundles repeat).
    const key = createHash('sha256').update(input).digest('base64');
    const hit = parsed.get(key);
    if (hit) return hit;
    const c = new X509Certificate(typeof input === 'string' ? input : Buffer.from(input));
    if (parsed.size >= MAX_PARSED) parsed.delete(parsed.keys().next().value as string);
    parsed.set(key, c);
    return c;
  } catch (e) {
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what} is not an X.509 certificate`, { cause: e });
  }
}

/** Every certificate of a PEM bundle, or the one DER certificate, in order. */
export function parseCertificates(input: string | Uint8Array, what: string): X509Certificate[] {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (pems) return pems.map((p, i) => parseCertificate(p, `${what} #${i + 1}`));
  if (typeof input === 'string')
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${what} holds no PEM certificate`);
  return [parseCertificate(input, what)];
}

/** Trust anchors: either pinned fingerprints (the top certificate comes with the evidence) or certificates. */
export type TrustAnchors =
  | { readonly kind: 'fingerprints'; readonly fingerprints: readonly string[]; readonly name: string }
  | { readonly kind: 'certificates'; readonly certificates: readonly X509Certificate[] };

/**
 * The anchors of a verification: the root certificates given (`roots`, PEM or DER, each file may hold
 * several), else the pinned fingerprints of the vendor's root(s), named `name` in errors.
 */
export function trustAnchors(
  roots: readonly (string | Uint8Array)[] | undefined,
  fingerprints: readonly string[],
  name: string,
): TrustAnchors {
  if (roots && roots.length > 0) {
    return {
      kind: 'certificates',
      certificates: roots.flatMap((r, i) => parseCertificates(r, `root ${i + 1}`)),
    };
  }
  return { kind: 'fingerprints', fingerprints, name };
}

function checkValidity(c: X509Certificate, at: Date, role: string): void {
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  if (!(at.getTime() >= from && at.getTime() <= to)) {
    throw new BulwarkError(
      'ERR_ATTEST_CERT_EXPIRED',
      `the ${role} certificate (${subjectCn(c)}) is valid from ${c.validFrom} to ${c.validTo}, not at ${at.toISOString()}`,
      { details: { role, at: at.toISOString(), validFrom: c.validFrom, validTo: c.validTo } },
    );
  }
}

export function subjectCn(c: X509Certificate): string {
  return /CN=([^\n,]+)/.exec(c.subject)?.[1] ?? c.subject.replace(/\n/g, ', ');
}

/**
 * Verified issuer -> subject links, keyed by both certificates' SHA-256 fingerprints. A signature over
 * the same bytes under the same key verifies the same way every time, so a link checked once need not
 * be checked again: documents from one Nitro host share their CA bundle and differ only in the leaf.
 * Only successes are kept; validity at the verification time is checked every time. Bounded (LRU).
 */
const verifiedLinks = new Map<string, true>();
const MAX_LINKS = 4096;

/** Forgets verified links and parsed certificates (benchmarks measure the cold path with it). */
export function clearChainCache(): void {
  verifiedLinks.clear();
  parsed.clear();
  profiles.clear();
}

/** What RFC 5280 path validation reads beyond Node's X509Certificate: kept per certificate fingerprint. */
export interface Profile {
  /** basicConstraints pathLenConstraint, or null when absent. */
  pathLen: number | null;
  /** keyUsage flags, or null when the extension is absent. */
  keyUsage: number | null;
  /** Critical extensions this verifier does not process (RFC 5280 §4.2: must be refused). */
  unknownCritical: string[];
  /** The signature's hash (SHA-1 and weaker are refused). */
  hash: string;
  /** Every extension's value (DER, without the OCTET STRING wrapper) by OID. */
  extensions: ReadonlyMap<string, Uint8Array>;
}

/**
 * Extensions whose criticality this verifier honours: basicConstraints and keyUsage are enforced here;
 * extKeyUsage, subjectAltName and the key identifiers constrain nothing attestation chains rely on.
 * nameConstraints, policy extensions and anything else critical are refused, not ignored.
 */
const UNDERSTOOD = new Set([
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
]);
const WEAK_HASHES = new Set(['SHA-1', 'MD5', 'MD2']);
const profiles = new Map<string, Profile>();

/**
 * What path validation reads from `c` beyond Node's X509Certificate (parsed once per certificate and
 * kept): a format verifier reads its vendor extensions (SEV-SNP's VCEK TCB) from here too.
 */
export function certificateProfile(c: X509Certificate): Profile {
  const hit = profiles.get(c.fingerprint256);
  if (hit) return hit;
  let p: Profile;
  try {
    const pc = new PeculiarCertificate(c.raw);
    const bc = pc.getExtension(BasicConstraintsExtension);
    const ku = pc.getExtension(KeyUsagesExtension);
    const alg = pc.signatureAlgorithm as { name: string; hash?: { name: string } };
    p = {
      pathLen: bc?.pathLength ?? null,
      keyUsage: ku ? ku.usages : null,
      unknownCritical: pc.extensions.filter((e) => e.critical && !UNDERSTOOD.has(e.type)).map((e) => e.type),
      hash: alg.hash?.name ?? alg.name,
      extensions: new Map(pc.extensions.map((e) => [e.type, new Uint8Array(e.value)])),
    };
  } catch (e) {
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `certificate "${subjectCn(c)}" cannot be read`, {
      cause: e,
    });
  }
  if (profiles.size >= MAX_PARSED) profiles.delete(profiles.keys().next().value as string);
  profiles.set(c.fingerprint256, p);
  return p;
}

/**
 * RFC 5280 checks on each certificate of a path (leaf first) and on the anchor: no unrecognised
 * critical extension (§4.2), no SHA-1 or weaker signature, the leaf an end entity allowed to sign
 * (§4.2.1.3 digitalSignature when keyUsage is present), each CA's pathLenConstraint respected
 * (§6.1.4 (l)-(m): at most that many intermediate CAs below it).
 */
function checkProfiles(path: readonly X509Certificate[], anchor: X509Certificate): void {
  const all = path[path.length - 1] === anchor ? path : [...path, anchor];
  all.forEach((c, i) => {
    const p = certificateProfile(c);
    if (p.unknownCritical.length > 0)
      throw new BulwarkError(
        'ERR_ATTEST_CHAIN',
        `"${subjectCn(c)}" has critical extensions this verifier does not process (${p.unknownCritical.join(', ')})`,
      );
    // The anchor's own self-signature is not relied on (it is trusted by pin or by being given).
    if (c !== anchor && WEAK_HASHES.has(p.hash.toUpperCase()))
      throw new BulwarkError(
        'ERR_ATTEST_CHAIN',
        `"${subjectCn(c)}" is signed with ${p.hash}, which is refused`,
      );
    if (i === 0) {
      if (c.ca)
        throw new BulwarkError(
          'ERR_ATTEST_CHAIN',
          `the leaf "${subjectCn(c)}" is a CA certificate, not an end entity`,
        );
      if (p.keyUsage !== null && (p.keyUsage & KeyUsageFlags.digitalSignature) === 0)
        throw new BulwarkError(
          'ERR_ATTEST_CHAIN',
          `the leaf "${subjectCn(c)}" is not allowed to sign (keyUsage lacks digitalSignature)`,
        );
      return;
    }
    // Intermediate CAs between this CA and the leaf (the leaf itself does not count).
    const below = i - 1;
    if (p.pathLen !== null && below > p.pathLen)
      throw new BulwarkError(
        'ERR_ATTEST_CHAIN',
        `"${subjectCn(c)}" allows ${p.pathLen} intermediate CA(s) below it (pathLenConstraint), the path has ${below}`,
      );
  });
}

function issues(parent: X509Certificate, child: X509Certificate): boolean {
  const key = `${parent.fingerprint256}>${child.fingerprint256}`;
  if (verifiedLinks.has(key)) {
    verifiedLinks.delete(key);
    verifiedLinks.set(key, true);
    return true;
  }
  let ok: boolean;
  try {
    ok = child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    ok = false;
  }
  if (ok) {
    if (verifiedLinks.size >= MAX_LINKS) verifiedLinks.delete(verifiedLinks.keys().next().value as string);
    verifiedLinks.set(key, true);
  }
  return ok;
}

/**
 * Verifies `path` (leaf first, each certificate issued by the next) up to a trust anchor, at time `at`
 * (RFC 5280 §6.1 in the subset attestation chains need: names, signatures, CA flag, validity, path
 * length, key usage, critical extensions, no SHA-1; revocation is {@link checkChainRevocation}'s). The top
 * of the path must be a pinned root (by fingerprint, self-signed) or be issued by one of the given root
 * certificates, else `ERR_ATTEST_UNTRUSTED_ROOT`. Returns the anchor's SHA-256 fingerprint.
 */
export function verifyPath(path: readonly X509Certificate[], anchors: TrustAnchors, at: Date): string {
  return verifiedAnchor(path, anchors, at).fingerprint256;
}

/** {@link verifyPath}, returning the anchor certificate itself (for the revocation check). */
export function verifiedAnchor(
  path: readonly X509Certificate[],
  anchors: TrustAnchors,
  at: Date,
): X509Certificate {
  if (path.length === 0) throw new BulwarkError('ERR_ATTEST_MALFORMED', 'the certificate chain is empty');
  const top = path[path.length - 1] as X509Certificate;
  let anchor: X509Certificate;
  if (anchors.kind === 'fingerprints') {
    const pinned = anchors.fingerprints.map(normaliseFingerprint);
    if (!pinned.includes(normaliseFingerprint(top.fingerprint256))) {
      throw new BulwarkError(
        'ERR_ATTEST_UNTRUSTED_ROOT',
        `the chain ends at "${subjectCn(top)}" (SHA-256 ${top.fingerprint256}), not the pinned ${anchors.name}`,
        { details: { fingerprint: top.fingerprint256 } },
      );
    }
    // The fingerprint covers the whole DER, signature included: a match is the pinned root itself, so
    // its self-signature needs no check (one P-384 verification less on the cold path).
    anchor = top;
  } else {
    const same = anchors.certificates.find((r) => r.fingerprint256 === top.fingerprint256);
    const issuer = same ?? anchors.certificates.find((r) => issues(r, top));
    if (!issuer) {
      throw new BulwarkError(
        'ERR_ATTEST_UNTRUSTED_ROOT',
        `the chain ends at "${subjectCn(top)}" (SHA-256 ${top.fingerprint256}), which is not (issued by) a root given`,
        { details: { fingerprint: top.fingerprint256 } },
      );
    }
    anchor = issuer;
    checkValidity(issuer, at, 'root');
  }
  for (let i = 0; i < path.length - 1; i++) {
    const child = path[i] as X509Certificate;
    const parent = path[i + 1] as X509Certificate;
    if (!parent.ca) {
      throw new BulwarkError(
        'ERR_ATTEST_CHAIN',
        `"${subjectCn(parent)}" issues a certificate but is not a CA`,
      );
    }
    if (!issues(parent, child)) {
      throw new BulwarkError(
        'ERR_ATTEST_CHAIN',
        `"${subjectCn(child)}" is not issued and signed by "${subjectCn(parent)}"`,
        { details: { depth: i } },
      );
    }
  }
  checkProfiles(path, anchor);
  path.forEach((c, i) => {
    checkValidity(c, at, i === 0 ? 'leaf' : i === path.length - 1 ? 'top' : `intermediate ${i}`);
  });
  return anchor;
}

/** A validated certificate revocation list (RFC 5280 §5). */
export interface CheckedCrl {
  /** The CA that issued and signed it (one of the candidates). */
  readonly ca: X509Certificate;
  /** The issuer's name, for messages. */
  readonly issuer: string;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  /** Revoked serial numbers, normalised ({@link serialKey}). */
  readonly revoked: ReadonlySet<string>;
  /** The CRL's DER encoding. */
  readonly der: ArrayBuffer;
}

/** A serial number as a canonical hex string: Node and @peculiar/x509 differ on case and leading zeros. */
export function serialKey(hex: string): string {
  return BigInt(`0x${hex}`).toString(16);
}

/**
 * Parses and validates one CRL (DER) against candidate CAs, the checks RFC 5280 asks before a CRL may be
 * used: it parses; it has a nextUpdate (§5.1.2.5: without one it could never be found stale); it has no
 * critical extension (§5.2, §5.3: delta, partitioned and indirect CRLs are not supported); its issuer is
 * one of `cas` whose key verifies its signature and whose key usage, when present, allows cRLSign
 * (§6.3.3 (f), (g)). Each refusal is `fail(message)`, so callers keep their own codes and keys.
 */
export async function checkCrl(
  der: Uint8Array,
  cas: readonly X509Certificate[],
  which: string,
  fail: CrlFail,
  /** How messages name `cas` ("here"; the gateway: "of the bundle"). */
  scope = 'here',
): Promise<CheckedCrl> {
  let crl: PeculiarCrl;
  try {
    crl = new PeculiarCrl(der);
  } catch (e) {
    throw fail(`${which} cannot be parsed`, e);
  }
  const length = derElementLength(der);
  if (length !== der.length)
    throw fail(`${which} cannot be parsed: ${der.length - (length ?? 0)} byte(s) follow the DER CRL`);
  const next = crl.nextUpdate;
  if (next === undefined) throw fail(`${which} (${crl.issuer}) has no nextUpdate`);
  const critical = [
    ...crl.extensions.filter((x) => x.critical).map((x) => x.type),
    ...crl.entries.flatMap((entry) => entry.extensions.filter((x) => x.critical).map((x) => x.type)),
  ];
  if (critical.length > 0)
    throw fail(
      `${which} (${crl.issuer}) has critical extensions (${[...new Set(critical)].join(', ')}); delta, partitioned and indirect CRLs are not supported`,
    );
  const named = cas
    .filter((c) => c.ca)
    .map((node) => ({ node, cert: new PeculiarCertificate(node.raw) }))
    .filter((c) => c.cert.subject === crl.issuer);
  if (named.length === 0) throw fail(`${which} is issued by ${crl.issuer}, which is not a CA ${scope}`);
  for (const c of named) {
    // The CA's PublicKey, not the certificate: given a certificate, @peculiar/x509 1.14 verifies with
    // the hash of the certificate's own signature algorithm instead of the CRL's.
    let ok: boolean;
    try {
      ok = await crl.verify({ publicKey: c.cert.publicKey });
    } catch (e) {
      throw fail(`${which} (${crl.issuer}): the signature cannot be verified`, e);
    }
    if (!ok) continue;
    const ku = c.cert.getExtension(KeyUsagesExtension);
    if (ku !== null && (ku.usages & KeyUsageFlags.cRLSign) === 0)
      throw fail(`${which}: the CA ${crl.issuer} has a key usage without cRLSign (RFC 5280 §4.2.1.3)`);
    return {
      ca: c.node,
      issuer: crl.issuer,
      thisUpdate: crl.thisUpdate.getTime(),
      nextUpdate: next.getTime(),
      revoked: new Set(crl.entries.map((entry) => serialKey(entry.serialNumber))),
      der: crl.rawData,
    };
  }
  throw fail(`${which}: the signature does not verify with the key of the CA ${crl.issuer}`);
}

/** How a CRL reader reports a refusal: the caller's code, and the file or parameter in the message. */
export type CrlFail = (message: string, cause?: unknown) => BulwarkError;

const PEM_BOUNDARY = /^-----(BEGIN|END) ([^-]*)-----[ \t]*$/;

/**
 * The CRLs of one CRL input, as DER: the one reader of `VerifyOptions.crls` / `attest verify --crl`
 * and of the gateway's `server.tls.clientCrl` / `auth.mtls.crlFile`. Bytes that start with a DER
 * SEQUENCE (0x30) are one DER CRL (AMD's KDS serves the ARK's CRL so); anything else is PEM text,
 * read in RFC 7468's strict form (§3, `stricttextualmsg`): nothing but whitespace outside the
 * blocks, every block labelled `X509 CRL` (§6) with its END line, and each body plain, canonical
 * base64 (no headers, length a multiple of 4, padding only at the end). Everything else is
 * `fail(message)`, never skipped: a block skipped here (a typo in a BEGIN line, a certificate pasted
 * in its place) would leave its CA's revocation unchecked while looking configured. Whether each DER
 * parses is {@link checkCrl}'s.
 */
export function readCrls(input: string | Uint8Array, fail: CrlFail): Uint8Array[] {
  if (typeof input !== 'string' && input.length > 0 && input[0] === 0x30) return [input];
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const lines = text.split('\n');
  const out: Uint8Array[] = [];
  let body: string[] | undefined;
  let bodyStart = 0;
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const at = `line ${i + 1}`;
    const boundary = PEM_BOUNDARY.exec(line);
    if (body === undefined) {
      if (line.trim() === '') continue;
      if (boundary === null)
        throw fail(
          `text outside the X509 CRL blocks (${at}): only X509 CRL blocks and whitespace are accepted (remove explanatory text, as \`openssl crl -text\` writes)`,
        );
      if (boundary[1] === 'END') throw fail(`an END line without its BEGIN line (${at})`);
      if (boundary[2] !== 'X509 CRL')
        throw fail(`holds a PEM "${boundary[2]}" block (${at}); only X509 CRL blocks are accepted`);
      body = [];
      bodyStart = i + 1;
      continue;
    }
    const which = `CRL ${out.length + 1}`;
    if (boundary === null) {
      if (!/^[A-Za-z0-9+/=\s]*$/.test(line))
        throw fail(`${which} is not plain base64 (no PEM headers; ${at})`);
      body.push(line);
      continue;
    }
    if (boundary[1] === 'BEGIN' || boundary[2] !== 'X509 CRL')
      throw fail(`an X509 CRL block has no END line (the block of line ${bodyStart})`);
    const b64 = body.join('').replace(/\s+/g, '');
    if (b64.length === 0) throw fail(`${which} is empty (line ${bodyStart})`);
    // Buffer's decoder skips what it cannot read; only a canonical text decodes to what it says.
    const der = Buffer.from(b64, 'base64');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0 || der.toString('base64') !== b64)
      throw fail(
        `${which} is not valid base64 (line ${bodyStart}): its length is not a multiple of 4, or it has padding or bits past its end`,
      );
    out.push(new Uint8Array(der));
    body = undefined;
  }
  if (body !== undefined) throw fail(`an X509 CRL block has no END line (the block of line ${bodyStart})`);
  if (out.length === 0) throw fail('no X509 CRL block');
  return out;
}

/**
 * The length of the DER element at the start of `der` (X.690 §8.1.3, definite form), or undefined when
 * its header cannot be read. @peculiar/x509 parses a CRL with bytes after it; we refuse them.
 */
function derElementLength(der: Uint8Array): number | undefined {
  if (der.length < 2) return undefined;
  const first = der[1] as number;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || der.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (der[2 + i] as number);
  return 2 + n + len;
}

/**
 * Revocation of an attestation chain (RFC 5280 §6.3) against the CRLs given (`crls`, PEM or DER, each
 * checked by {@link checkCrl} against the chain's CAs and the anchor): every certificate whose issuer
 * has a CRL must not be on it, and that CRL must be current at `at` (thisUpdate <= at <= nextUpdate).
 * A CRL of no CA of this chain is refused (a list given for another chain, or a typo, would otherwise
 * check nothing); a CA without a CRL is not checked (vendors publish CRLs for some CAs only: AMD's KDS
 * for the ASK under the ARK). Offline: nothing is fetched.
 */
export async function checkChainRevocation(
  path: readonly X509Certificate[],
  anchor: X509Certificate,
  crls: readonly (string | Uint8Array)[],
  at: Date,
): Promise<void> {
  const cas = [...path.slice(1), ...(path.includes(anchor) ? [] : [anchor])];
  const fail = (message: string, cause?: unknown) =>
    new BulwarkError('ERR_ATTEST_CHAIN', `certificate revocation list: ${message}`, {
      ...(cause === undefined ? {} : { cause }),
    });
  const byCa = new Map<string, CheckedCrl>();
  for (const [i, input] of crls.entries()) {
    // Every refusal names the input (`crls[i]`, the i+1-th --crl) and the CRL within it, as the gateway names its file.
    const failInput: CrlFail = (message, cause) => fail(`crls[${i}]: ${message}`, cause);
    for (const [k, der] of readCrls(input, failInput).entries()) {
      const c = await checkCrl(der, cas, `CRL ${k + 1}`, failInput);
      if (byCa.has(c.ca.fingerprint256))
        throw failInput(`two CRLs of the CA ${c.issuer}; give only the current one`);
      byCa.set(c.ca.fingerprint256, c);
    }
  }
  const t = at.getTime();
  const chain = [...path, ...(path.includes(anchor) ? [] : [anchor])];
  for (let i = 0; i < chain.length - 1; i++) {
    const cert = chain[i] as X509Certificate;
    const crl = byCa.get((chain[i + 1] as X509Certificate).fingerprint256);
    if (crl === undefined) continue;
    if (t < crl.thisUpdate || t > crl.nextUpdate)
      throw new BulwarkError(
        'ERR_ATTEST_STALE',
        `the CRL of "${subjectCn(chain[i + 1] as X509Certificate)}" is not current at ${at.toISOString()} (thisUpdate ${new Date(crl.thisUpdate).toISOString()}, nextUpdate ${new Date(crl.nextUpdate).toISOString()}): revocation status unknown`,
      );
    if (crl.revoked.has(serialKey(cert.serialNumber)))
      throw new BulwarkError(
        'ERR_ATTEST_REVOKED',
        `"${subjectCn(cert)}" (serial ${cert.serialNumber}) is revoked by its issuer's CRL`,
        { details: { serial: cert.serialNumber } },
      );
  }
}
