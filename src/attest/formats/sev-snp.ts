/**
 * AMD SEV-SNP attestation reports (AMD, "SEV Secure Nested Paging Firmware ABI Specification" 56860,
 * Table 22 `ATTESTATION_REPORT`; "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
 * Specification" 57230). A report is 0x4A0 bytes; bytes 0x000..0x29F are signed by the chip's VCEK with
 * ECDSA P-384/SHA-384, the signature at 0x2A0 holding r and s as 72-byte little-endian fields. The VCEK
 * is certified by the AMD SEV key (ASK), itself by the AMD root key (ARK), both RSA-PSS.
 *
 * Checks: size, version and signature algorithm; the VCEK -> ASK -> ARK path with the ARK pinned by
 * fingerprint (or the roots given), each certificate valid at the injected time; the report signature;
 * the report's `REPORTED_TCB` and `CHIP_ID` equal to those the VCEK was issued for (its AMD extensions,
 * 1.3.6.1.4.1.3704.1.3.x and .1.4); user data (`REPORT_DATA`) against the caller's expectation.
 * Debug is guest policy bit 19 (`DEBUG`): a guest launched with it may be debugged by the hypervisor.
 */
import { verify as cryptoVerify, type X509Certificate } from 'node:crypto';
import { BulwarkError } from '../../core/index.js';
import type { AttestationClaims, AttestationVerifier, VerifyOptions } from '../types.js';
import {
  certificateProfile,
  checkChainRevocation,
  normaliseFingerprint,
  parseCertificates,
  subjectCn,
  trustAnchors,
  verifiedAnchor,
} from '../x509.js';

/** SHA-256 fingerprints of pinned AMD root keys (ARK), by product. */
export const AMD_ARK_FINGERPRINTS: Readonly<Record<string, string>> = {
  // ARK-Milan, as served by https://kdsintf.amd.com/vcek/v1/Milan/cert_chain.
  Milan: '69:D0:63:B4:53:44:D2:6A:2E:94:E1:F4:21:0D:E4:9E:F5:55:30:82:87:D4:C1:74:44:5C:95:63:9A:54:0B:CD',
};

export const SNP_REPORT_SIZE = 0x4a0;
const SIGNED_END = 0x2a0;
const WHAT = 'sev-snp report';

/** The fields of an attestation report Bulwark uses (offsets from the ABI spec, Table 22). */
export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  vmpl: number;
  signatureAlgo: number;
  platformInfo: bigint;
  signingKey: number;
  maskChipId: boolean;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  reportedTcb: TcbVersion;
  chipId: Uint8Array;
  body: Uint8Array;
  r: Uint8Array;
  s: Uint8Array;
}

/** TCB_VERSION for Milan and Genoa: boot loader, TEE, SNP and microcode security patch levels. */
export interface TcbVersion {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

function tcb(b: Uint8Array, off: number): TcbVersion {
  return {
    bootloader: b[off] as number,
    tee: b[off + 1] as number,
    snp: b[off + 6] as number,
    microcode: b[off + 7] as number,
  };
}

/** A little-endian 72-byte ECDSA component as 48 big-endian bytes (P-384); the high 24 bytes are zero. */
function component(le: Uint8Array, name: string): Uint8Array {
  if (!le.subarray(48).every((x) => x === 0)) {
    throw new BulwarkError('ERR_ATTEST_SIGNATURE', `${WHAT}: signature ${name} exceeds 384 bits`);
  }
  return Uint8Array.from(le.subarray(0, 48)).reverse();
}

export function parseSnpReport(report: Uint8Array): SnpReport {
  if (report.length !== SNP_REPORT_SIZE) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: ${report.length} bytes, expected ${SNP_REPORT_SIZE}`,
    );
  }
  const dv = new DataView(report.buffer, report.byteOffset, report.byteLength);
  const version = dv.getUint32(0x00, true);
  if (version < 2 || version > 5)
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: version ${version} is not 2 to 5`);
  const signatureAlgo = dv.getUint32(0x34, true);
  if (signatureAlgo !== 1) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: signature algorithm ${signatureAlgo}, expected 1 (ECDSA P-384 with SHA-384)`,
    );
  }
  const keyInfo = dv.getUint32(0x48, true);
  const slice = (o: number, n: number) => report.slice(o, o + n);
  return {
    version,
    guestSvn: dv.getUint32(0x04, true),
    policy: dv.getBigUint64(0x08, true),
    vmpl: dv.getUint32(0x30, true),
    signatureAlgo,
    platformInfo: dv.getBigUint64(0x40, true),
    signingKey: (keyInfo >> 2) & 0b111,
    maskChipId: (keyInfo & 0b10) !== 0,
    reportData: slice(0x50, 64),
    measurement: slice(0x90, 48),
    hostData: slice(0xc0, 32),
    idKeyDigest: slice(0xe0, 48),
    reportedTcb: tcb(report, 0x180),
    chipId: slice(0x1a0, 64),
    body: report.subarray(0, SIGNED_END),
    r: report.subarray(0x2a0, 0x2a0 + 72),
    s: report.subarray(0x2a0 + 72, 0x2a0 + 144),
  };
}

/** AMD's VCEK extensions (VCEK spec 57230, Table 8): the TCB SPLs it was issued for and the chip id. */
export const VCEK_OID = {
  bootloader: '1.3.6.1.4.1.3704.1.3.1',
  tee: '1.3.6.1.4.1.3704.1.3.2',
  snp: '1.3.6.1.4.1.3704.1.3.3',
  microcode: '1.3.6.1.4.1.3704.1.3.8',
  hwid: '1.3.6.1.4.1.3704.1.4',
} as const;

/**
 * The TCB and chip id a VCEK was issued for (VCEK spec, Table 8), from the extensions its path
 * validation already read (x509.ts keeps them per certificate).
 */
function vcekFacts(vcek: X509Certificate): { tcb: Partial<TcbVersion>; hwid: Uint8Array | null } {
  const extensions = certificateProfile(vcek).extensions;
  const int = (oid: string): number | undefined => {
    const v = extensions.get(oid);
    if (!v) return undefined;
    // DER INTEGER: 02 len value (the SPLs are 0..255).
    if (v[0] !== 0x02 || v[1] === undefined || v.length !== 2 + v[1]) {
      throw new BulwarkError('ERR_ATTEST_MALFORMED', `VCEK extension ${oid} is not a DER INTEGER`);
    }
    let n = 0;
    for (const b of v.subarray(2)) n = n * 256 + b;
    return n;
  };
  const t: Partial<TcbVersion> = {};
  for (const k of ['bootloader', 'tee', 'snp', 'microcode'] as const) {
    const v = int(VCEK_OID[k]);
    if (v !== undefined) t[k] = v;
  }
  const v = extensions.get(VCEK_OID.hwid);
  const hwid = v === undefined ? null : v.length === 66 && v[0] === 0x04 && v[1] === 64 ? v.subarray(2) : v;
  return { tcb: t, hwid };
}

/**
 * Fields the ABI reserves (spec 56860, Table 22/23): signed, so only the firmware could have set them,
 * but a report with them set is not one this verifier understands. Guest policy bit 17 must be 1.
 * 0x1F8-0x207 is reserved up to report version 4; version 5 puts the mitigation vectors there.
 */
function checkReserved(report: SnpReport): void {
  const b = report.body;
  const ranges: [number, number][] = [
    [0x4c, 0x50],
    [0x18b, 0x1a0],
    [report.version >= 5 ? 0x208 : 0x1f8, 0x2a0],
  ];
  for (const [from, to] of ranges)
    if (!b.subarray(from, to).every((x) => x === 0))
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        `${WHAT}: reserved bytes 0x${from.toString(16)}-0x${(to - 1).toString(16)} are not zero`,
      );
  if (((report.policy >> 17n) & 1n) !== 1n)
    throw new BulwarkError('ERR_ATTEST_MALFORMED', `${WHAT}: guest policy bit 17 (reserved, must be 1) is 0`);
}

/** Orders the certificates given into a path from the one leaf (non-CA) up through its issuers. */
function buildPath(certs: readonly X509Certificate[]): X509Certificate[] {
  const leaves = certs.filter((c) => !c.ca);
  if (leaves.length !== 1) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: the chain must hold exactly one VCEK (non-CA) certificate, got ${leaves.length}`,
    );
  }
  const path = [leaves[0] as X509Certificate];
  const rest = certs.filter((c) => c.ca);
  for (;;) {
    const cur = path[path.length - 1] as X509Certificate;
    if (cur.ca && cur.checkIssued(cur)) break;
    const i = rest.findIndex((c) => cur.checkIssued(c));
    if (i < 0) break;
    path.push(rest.splice(i, 1)[0] as X509Certificate);
  }
  return path;
}

async function verifySnp(document: Uint8Array, options: VerifyOptions): Promise<AttestationClaims> {
  const at = options.at ?? new Date();
  const report = parseSnpReport(document);
  if (report.signingKey !== 0) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: signed by key type ${report.signingKey} (VLEK or none); only VCEK-signed reports are supported`,
    );
  }
  if (!options.chain || options.chain.length === 0) {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: the VCEK, ASK and ARK certificates are needed (--chain)`,
    );
  }
  const certs = options.chain.flatMap((c, i) => parseCertificates(c, `chain file ${i + 1}`));
  const anchors = trustAnchors(options.roots, Object.values(AMD_ARK_FINGERPRINTS), 'AMD root key (ARK)');
  // Roots given separately may also sit in the chain file; the path stops below a given root.
  const pool =
    anchors.kind === 'certificates'
      ? certs.filter((c) => !anchors.certificates.some((r) => r.fingerprint256 === c.fingerprint256))
      : certs;
  const path = buildPath(pool);
  const root = verifiedAnchor(path, anchors, at);
  if (options.crls && options.crls.length > 0) await checkChainRevocation(path, root, options.crls, at);
  const anchor = root.fingerprint256;
  const vcek = path[0] as X509Certificate;
  const key = vcek.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new BulwarkError(
      'ERR_ATTEST_MALFORMED',
      `${WHAT}: the VCEK "${subjectCn(vcek)}" is not a P-384 key`,
    );
  }
  const sig = Buffer.concat([component(report.r, 'r'), component(report.s, 's')]);
  if (!cryptoVerify('sha384', report.body, { key, dsaEncoding: 'ieee-p1363' }, sig)) {
    throw new BulwarkError(
      'ERR_ATTEST_SIGNATURE',
      `${WHAT}: the report signature does not verify under the VCEK`,
    );
  }
  checkReserved(report);
  const facts = vcekFacts(vcek);
  for (const k of ['bootloader', 'tee', 'snp', 'microcode'] as const) {
    const want = facts.tcb[k];
    // A VCEK is issued for one TCB (VCEK spec 57230, Table 8): without the extension the report's TCB
    // cannot be tied to the key that signed it.
    if (want === undefined)
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        `${WHAT}: the VCEK "${subjectCn(vcek)}" lacks its ${k} TCB extension (${VCEK_OID[k]})`,
      );
    if (want !== report.reportedTcb[k]) {
      throw new BulwarkError(
        'ERR_ATTEST_TCB',
        `${WHAT}: reported TCB ${k} ${report.reportedTcb[k]} differs from the VCEK's ${want} (a VCEK for another TCB)`,
        {
          details: { component: k },
        },
      );
    }
  }
  if (!report.maskChipId) {
    if (facts.hwid === null)
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        `${WHAT}: the VCEK "${subjectCn(vcek)}" lacks its hardware id extension (${VCEK_OID.hwid})`,
      );
    if (!Buffer.from(facts.hwid).equals(Buffer.from(report.chipId)))
      throw new BulwarkError(
        'ERR_ATTEST_TCB',
        `${WHAT}: CHIP_ID differs from the VCEK's hardware id (a VCEK of another chip)`,
      );
  }
  // SEV-SNP has no nonce field: a verifier's nonce travels in REPORT_DATA, here its first bytes. Only
  // this proves freshness; matching user data does not (it may be a static value, such as a key's
  // digest, that any old report of this guest carries).
  if (options.nonce !== undefined) {
    if (options.nonce.length === 0 || options.nonce.length > 64)
      throw new BulwarkError(
        'ERR_ATTEST_NONCE',
        `${WHAT}: a nonce bound through REPORT_DATA is 1 to 64 bytes, got ${options.nonce.length}`,
      );
    if (!Buffer.from(report.reportData.subarray(0, options.nonce.length)).equals(Buffer.from(options.nonce)))
      throw new BulwarkError(
        'ERR_ATTEST_NONCE',
        `${WHAT}: REPORT_DATA does not begin with the nonce sent (a replayed or foreign report)`,
      );
  }
  if (options.publicKey !== undefined) {
    throw new BulwarkError(
      'ERR_ATTEST_BINDING',
      `${WHAT}: SEV-SNP reports bind no public key; bind its digest through REPORT_DATA (user data)`,
    );
  }
  if (options.userData !== undefined) {
    const want = new Uint8Array(64);
    if (options.userData.length > 64)
      throw new BulwarkError(
        'ERR_ATTEST_BINDING',
        `${WHAT}: REPORT_DATA is 64 bytes; expected user data is longer`,
      );
    want.set(options.userData);
    if (!Buffer.from(want).equals(Buffer.from(report.reportData))) {
      throw new BulwarkError(
        'ERR_ATTEST_BINDING',
        `${WHAT}: REPORT_DATA differs from the expected user data`,
      );
    }
  }
  const debug = ((report.policy >> 19n) & 1n) === 1n;
  return {
    format: 'sev-snp',
    hardware: true,
    measurements: { measurement: Buffer.from(report.measurement).toString('hex') },
    nonce: null,
    publicKey: null,
    userData: report.reportData,
    debug,
    time: null,
    nonceVerified: options.nonce !== undefined,
    trustAnchor: normaliseFingerprint(anchor),
    tcb: { ...report.reportedTcb },
    vmpl: report.vmpl,
    migrationAgent: ((report.policy >> 18n) & 1n) === 1n,
    details: {
      version: report.version,
      guestSvn: report.guestSvn,
      policy: `0x${report.policy.toString(16)}`,
      vmpl: report.vmpl,
      hostData: Buffer.from(report.hostData).toString('hex'),
      idKeyDigest: Buffer.from(report.idKeyDigest).toString('hex'),
      chipId: Buffer.from(report.chipId).toString('hex'),
      vcek: subjectCn(vcek),
    },
  };
}

export const sevSnpVerifier: AttestationVerifier = {
  format: 'sev-snp',
  description: 'AMD SEV-SNP attestation report (ECDSA P-384 by the VCEK; VCEK -> ASK -> ARK, RSA-PSS)',
  hardware: true,
  verify: verifySnp,
};
