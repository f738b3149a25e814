import {
  createHash,
  createSign,
  type KeyObject,
  sign as nodeSign,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

/** Test fixtures for gateway authentication: issuer keys, token minting and an X.509 CA issuing SVIDs. */

x509.cryptoProvider.set(webcrypto as never);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const ISSUER = 'https://issuer.bulwark.test';
export const AUDIENCE = 'https://gateway.bulwark.test';
/** A fixed clock (epoch seconds) so token times are deterministic. */
export const T0 = 1_800_000_000;

export interface IssuerKeys {
  readonly kid: string;
  readonly alg: 'ES256' | 'RS256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: JWK;
}

export async function issuerKey(alg: 'ES256' | 'RS256', kid: string): Promise<IssuerKeys> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    privateKey: privateKey as unknown as KeyObject,
    publicKey: publicKey as unknown as KeyObject,
    publicJwk,
  };
}

/** Claims of a valid RFC 9068 access token at T0. */
export function goodClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'client-acme',
    client_id: 'client-acme',
    iat: T0,
    exp: T0 + 600,
    jti: 'jti-1',
    scope: 'predict explain',
    tenant: 'acme',
    roles: ['predictor'],
    ...extra,
  };
}

/** Signs with jose (the honest path). */
export async function mint(
  key: IssuerKeys,
  claims: Record<string, unknown> = goodClaims(),
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header })
    .sign(key.privateKey);
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * Builds a compact JWS by hand (attacks jose would refuse to produce): arbitrary header, payload and a
 * signature made with `signer` over `header.payload`.
 */
export function forge(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signer: (input: Buffer) => Buffer,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}

/** ES256 raw (IEEE P1363) signature, as JWS requires (RFC 7518 §3.4). */
export function es256(privateKey: KeyObject): (input: Buffer) => Buffer {
  return (input) => nodeSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
}

export function rs256(privateKey: KeyObject): (input: Buffer) => Buffer {
  return (input) => createSign('sha256').update(input).sign(privateKey);
}

// ---- X.509: a CA that issues SPIFFE SVIDs ----

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface Ca {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly pem: string;
}

let serial = 1;
const nextSerial = (): string => (serial++).toString(16).padStart(4, '0');

export async function makeCa(
  name = 'Bulwark Test CA',
  usages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(usages, true),
    ],
  });
  return { cert, keys, pem: cert.toString('pem') };
}

/** An intermediate CA issued by `parent` (path length 0: it issues leaves only). */
export async function makeIntermediate(parent: Ca, name = 'Bulwark Test Intermediate CA'): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: `CN=${name}`,
    issuer: parent.cert.subject,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIG,
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.AuthorityKeyIdentifierExtension.create(parent.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, pem: cert.toString('pem') };
}

export interface LeafOptions {
  uris?: string[];
  dns?: string[];
  ips?: string[];
  ca?: boolean;
  usages?: number;
  notAfter?: Date;
  serverAuth?: boolean;
}

export interface Leaf {
  readonly cert: X509Certificate;
  readonly pem: string;
  readonly keyPem: string;
}

/** A leaf signed by `ca` (an X.509-SVID when `uris` holds one spiffe:// id). */
export async function makeLeaf(ca: Ca, o: LeafOptions = {}): Promise<Leaf> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [
    ...(o.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const ext: x509.Extension[] = [
    new x509.BasicConstraintsExtension(o.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(o.usages ?? x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([o.serverAuth ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2']),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  if (names.length > 0) ext.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: 'CN=workload',
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: o.notAfter ?? new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: ext,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  const pem = cert.toString('pem');
  return { cert: new X509Certificate(pem), pem, keyPem };
}

/** Envoy XFCC element for a client certificate (`Hash` hex SHA-256 of the DER, `Cert` URL-encoded PEM). */
export function xfcc(leaf: Leaf, opts: { hash?: string; by?: string } = {}): string {
  const hash = opts.hash ?? createHashHex(leaf.cert.raw);
  return `By=${opts.by ?? 'spiffe://bulwark.example/ns/edge/sa/envoy'};Hash=${hash};Cert="${encodeURIComponent(leaf.pem)}"`;
}

function createHashHex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---- CRLs (RFC 5280 §5) issued by a test CA ----

export interface CrlOptions {
  /** Default: an hour ago. */
  thisUpdate?: Date;
  /** Default: a day from now; null: no nextUpdate. */
  nextUpdate?: Date | null;
  /** Sign with this key instead of the CA's (a forged CRL). */
  signingKey?: webcrypto.CryptoKey;
  extensions?: x509.Extension[];
}

/**
 * A CRL of `ca` revoking `revoked` (leaves or intermediate CAs), as PEM with the `X509 CRL` label OpenSSL and Node read (RFC 7468 §5;
 * @peculiar/x509 writes `CRL`). Every entry carries a reason code: without one @peculiar/x509 1.14
 * writes an empty entry-extensions SEQUENCE, which is not DER (SIZE (1..MAX)) and OpenSSL refuses.
 */
export async function makeCrl(
  ca: Ca,
  revoked: readonly { cert: { serialNumber: string } }[] = [],
  o: CrlOptions = {},
): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: o.thisUpdate ?? new Date(Date.now() - 3_600_000),
    ...(o.nextUpdate === null ? {} : { nextUpdate: o.nextUpdate ?? new Date(Date.now() + 86_400_000) }),
    signingAlgorithm: SIG,
    signingKey: o.signingKey ?? ca.keys.privateKey,
    entries: revoked.map((l) => ({
      serialNumber: l.cert.serialNumber,
      revocationDate: new Date(Date.now() - 60_000),
      reason: x509.X509CrlReason.keyCompromise,
    })),
    ...(o.extensions ? { extensions: o.extensions } : {}),
  });
  const lines =
    Buffer.from(crl.rawData)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN X509 CRL-----\n${lines.join('\n')}\n-----END X509 CRL-----\n`;
}
