/**
 * Test PKI and document builders: a root, an intermediate and a leaf certificate made in the test
 * (@peculiar/x509 over WebCrypto, ECDSA P-384), and Nitro-shaped documents signed with the leaf key,
 * for every negative case the real AWS document cannot give.
 */
import { sign as cryptoSign, KeyObject, webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { encode } from 'cbor2';
import { VCEK_OID } from '../../src/attest/formats/sev-snp.js';

x509.cryptoProvider.set(webcrypto as never);

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

export const SHARED =
  process.env['BULWARK_ATTESTATION'] ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'attestation');
export const NITRO_DOC = join(SHARED, 'nitro', 'qos_mock_attestation_doc.bin');
export const NITRO_ROOT = join(SHARED, 'nitro', 'aws_root_cert.pem');
export const SNP_REPORT = join(SHARED, 'sev-snp', 'attestation.bin');
export const SNP_ASK_ARK = join(SHARED, 'sev-snp', 'ask_ark_milan.pem');
export const SNP_VCEK = join(SHARED, 'sev-snp', 'vcek.der');
/** Skip reason when the shared samples are absent (said plainly, never a silent pass). */
export const noSamples =
  existsSync(NITRO_DOC) && existsSync(SNP_REPORT)
    ? false
    : `attestation samples not found in ${SHARED} (set BULWARK_ATTESTATION)`;

const ALG = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const;

export interface TestCa {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

async function keys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
}

const caExtensions = () => [
  new x509.BasicConstraintsExtension(true, undefined, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
];

export async function makeRoot(name: string, notBefore: Date, notAfter: Date): Promise<TestCa> {
  const k = await keys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore,
    notAfter,
    keys: k,
    signingAlgorithm: ALG,
    extensions: caExtensions(),
  });
  return { cert, keys: k };
}

let serial = 2;
export async function issue(
  issuer: TestCa,
  name: string,
  opts: { ca: boolean; notBefore: Date; notAfter: Date },
): Promise<TestCa> {
  const k = await keys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: `CN=${name}`,
    issuer: issuer.cert.subject,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingKey: issuer.keys.privateKey,
    publicKey: k.publicKey,
    signingAlgorithm: ALG,
    extensions: opts.ca ? caExtensions() : [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  return { cert, keys: k };
}

export const der = (c: TestCa) => new Uint8Array(c.cert.rawData);
export const pem = (c: TestCa) => c.cert.toString('pem');

/** A full test PKI valid from `t - 1 day` to `t + 3 hours` (leaf) / `t + 10 years` (CAs). */
export async function makePki(
  t: Date,
  leafHours = 3,
): Promise<{ root: TestCa; inter: TestCa; leaf: TestCa }> {
  const from = new Date(t.getTime() - 86_400_000);
  const far = new Date(t.getTime() + 10 * 365 * 86_400_000);
  const root = await makeRoot('Test Nitro Root', from, far);
  const inter = await issue(root, 'Test Nitro Intermediate', { ca: true, notBefore: from, notAfter: far });
  const leaf = await issue(inter, 'Test Nitro Leaf', {
    ca: false,
    notBefore: new Date(t.getTime() - 60_000),
    notAfter: new Date(t.getTime() + leafHours * 3_600_000),
  });
  return { root, inter, leaf };
}

const u8 = (b: Uint8Array) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export interface NitroFields {
  moduleId?: string;
  timestamp: number;
  pcrs?: Map<number, Uint8Array>;
  nonce?: Uint8Array | null;
  publicKey?: Uint8Array | null;
  userData?: Uint8Array | null;
  /** Extra or replaced payload entries (malformed cases). */
  override?: Map<string, unknown>;
}

export function pcrsOf(fill: number): Map<number, Uint8Array> {
  return new Map(Array.from({ length: 16 }, (_, i) => [i, new Uint8Array(48).fill(i < 3 ? fill : 0)]));
}

/** A Nitro-shaped COSE_Sign1 signed by `signer` (default: the leaf) with the given chain. */
export function signNitro(
  f: NitroFields,
  chain: { leaf: TestCa; bundle: TestCa[]; signer?: CryptoKey; alg?: number },
): Uint8Array {
  const payload = new Map<string, unknown>([
    ['module_id', f.moduleId ?? 'i-test-enc0'],
    ['digest', 'SHA384'],
    ['timestamp', f.timestamp],
    ['pcrs', f.pcrs ?? pcrsOf(7)],
    ['certificate', der(chain.leaf)],
    ['cabundle', chain.bundle.map(der)],
    ['public_key', f.publicKey ? u8(f.publicKey) : null],
    ['user_data', f.userData ? u8(f.userData) : null],
    ['nonce', f.nonce ? u8(f.nonce) : null],
  ]);
  for (const [k, v] of f.override ?? []) payload.set(k, v);
  const p = encode(payload);
  const prot = encode(new Map([[1, chain.alg ?? -35]]));
  const sigStructure = encode(['Signature1', prot, new Uint8Array(0), p]);
  const key = KeyObject.from(chain.signer ?? chain.leaf.keys.privateKey);
  const sig = cryptoSign('sha384', sigStructure, { key, dsaEncoding: 'ieee-p1363' });
  return encode([prot, new Map(), p, u8(sig)]);
}

export interface SnpFields {
  version?: number;
  policy?: bigint;
  vmpl?: number;
  tcb?: { bootloader: number; tee: number; snp: number; microcode: number };
  chipId?: Uint8Array;
  /** Bytes written over the report after the fields (reserved-field cases), before signing. */
  poke?: [offset: number, value: number][];
}

/**
 * A test "AMD" PKI: a root (ARK stand-in), an ASK and a VCEK (P-384) carrying the TCB and chip-id
 * extensions, all but those listed in `omit`. ECDSA throughout (AMD's ARK and ASK are RSA-PSS: the
 * verifier takes either), valid from `t - 1 day` for ten years.
 */
export async function makeSnpPki(
  t: Date,
  tcb: { bootloader: number; tee: number; snp: number; microcode: number },
  chipId: Uint8Array,
  omit: readonly (keyof typeof VCEK_OID)[] = [],
): Promise<{ ark: TestCa; ask: TestCa; vcek: TestCa }> {
  const from = new Date(t.getTime() - 86_400_000);
  const far = new Date(t.getTime() + 10 * 365 * 86_400_000);
  const ark = await makeRoot('Test ARK', from, far);
  const ask = await issue(ark, 'Test ASK', { ca: true, notBefore: from, notAfter: far });
  const k = await keys();
  const int = (v: number) => new Uint8Array(v < 128 ? [0x02, 1, v] : [0x02, 2, 0, v]).buffer;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true)];
  for (const name of ['bootloader', 'tee', 'snp', 'microcode'] as const)
    if (!omit.includes(name)) extensions.push(new x509.Extension(VCEK_OID[name], false, int(tcb[name])));
  if (!omit.includes('hwid'))
    extensions.push(new x509.Extension(VCEK_OID.hwid, false, new Uint8Array([0x04, 64, ...chipId]).buffer));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: 'CN=Test VCEK',
    issuer: ask.cert.subject,
    notBefore: from,
    notAfter: far,
    signingKey: ask.keys.privateKey,
    publicKey: k.publicKey,
    signingAlgorithm: ALG,
    extensions,
  });
  return { ark, ask, vcek: { cert, keys: k } };
}

/** An SEV-SNP report (ABI 56860, Table 22 layout) signed by `vcek` (ECDSA P-384, little-endian r and s). */
export function signSnp(f: SnpFields, vcek: TestCa): Uint8Array {
  const r = new Uint8Array(0x4a0);
  const dv = new DataView(r.buffer);
  dv.setUint32(0x00, f.version ?? 2, true);
  dv.setBigUint64(0x08, f.policy ?? 0x30000n, true); // SMT allowed, bit 17 (must be 1)
  dv.setUint32(0x30, f.vmpl ?? 0, true);
  dv.setUint32(0x34, 1, true); // ECDSA P-384 with SHA-384
  r.fill(0x5a, 0x90, 0x90 + 48); // the launch measurement
  const t = f.tcb ?? { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
  r[0x180] = t.bootloader;
  r[0x181] = t.tee;
  r[0x186] = t.snp;
  r[0x187] = t.microcode;
  r.set(f.chipId ?? new Uint8Array(64).fill(0xc1), 0x1a0);
  for (const [o, v] of f.poke ?? []) r[o] = v;
  const sig = cryptoSign('sha384', r.subarray(0, 0x2a0), {
    key: KeyObject.from(vcek.keys.privateKey),
    dsaEncoding: 'ieee-p1363',
  });
  r.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), 0x2a0);
  r.set(Uint8Array.from(sig.subarray(48)).reverse(), 0x2a0 + 72);
  return r;
}
