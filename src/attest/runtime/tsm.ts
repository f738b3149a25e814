/**
 * SEV-SNP and TDX guests through the Linux configfs-tsm report interface (Linux 6.7+,
 * Documentation/ABI/testing/configfs-tsm): plain files, so no native addon is needed.
 * UNTESTED ON HARDWARE — no SEV-SNP or TDX guest exists on the machines Bulwark is built on; the
 * certificate-table parser is tested on the real Milan VCEK/ASK/ARK, the configfs round trip is not.
 *
 *   mkdir  /sys/kernel/config/tsm/report/<name>
 *   write  <name>/inblob      64 bytes: SEV-SNP REPORT_DATA / TDX REPORTDATA (the session binding digest)
 *   read   <name>/outblob     the SEV-SNP ATTESTATION_REPORT or the TDX quote
 *   read   <name>/auxblob     SEV-SNP: the certificate table the host supplied (VCEK, ASK, ARK), if any
 *   read   <name>/generation  unchanged across the read, or another writer raced us: retry
 *   rmdir  <name>
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BulwarkError } from '../../core/index.js';
import type { AttestationBinding, Attester } from '../session/server.js';

/** GUIDs of the SEV-SNP extended-report certificate table (GHCB spec 56421, §4.1.8.1). */
const CERT_GUIDS: Readonly<Record<string, string>> = {
  '63da758d-e664-4564-adc5-f4b93be8accd': 'vcek',
  '4ab7b379-bbac-4fe4-a02f-05aef327c782': 'ask',
  'c0b406a4-a803-4952-9743-3fb6014cd0ae': 'ark',
  'a8074bc2-a25a-483e-aae6-39c045a0b8a1': 'vlek',
};

function guidText(b: Uint8Array): string {
  // Mixed-endian GUID layout: the first three fields little-endian.
  const h = (x: Uint8Array) => Buffer.from(x).toString('hex');
  const le = (x: Uint8Array) => h(Uint8Array.from(x).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`;
}

function guidBytes(text: string): Uint8Array {
  const p = text.split('-').map((s) => Buffer.from(s, 'hex'));
  const rev = (b: Buffer) => Uint8Array.from(b).reverse();
  return Buffer.concat([
    rev(p[0] as Buffer),
    rev(p[1] as Buffer),
    rev(p[2] as Buffer),
    p[3] as Buffer,
    p[4] as Buffer,
  ]);
}

/**
 * Parses the SEV-SNP certificate table: entries of GUID (16) | offset (u32 LE) | length (u32 LE),
 * ended by an all-zero entry; offsets are from the start of the table. Returns the certificates by
 * role (unknown GUIDs are skipped).
 */
export function parseSnpCertTable(table: Uint8Array): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  for (let o = 0; ; o += 24) {
    if (o + 24 > table.length)
      throw new BulwarkError('ERR_ATTEST_MALFORMED', 'SEV-SNP certificate table: no terminating entry');
    const guid = table.subarray(o, o + 16);
    const off = dv.getUint32(o + 16, true);
    const len = dv.getUint32(o + 20, true);
    if (guid.every((b) => b === 0)) break;
    if (off + len > table.length || len === 0)
      throw new BulwarkError(
        'ERR_ATTEST_MALFORMED',
        'SEV-SNP certificate table: an entry points outside the table',
      );
    const role = CERT_GUIDS[guidText(guid)];
    if (role) out[role] = table.slice(off, off + len);
  }
  return out;
}

/** Builds a certificate table (for tests and for hosts that stage certificates). */
export function buildSnpCertTable(certs: Readonly<Record<string, Uint8Array>>): Uint8Array {
  const roles = Object.keys(certs);
  const byRole = Object.fromEntries(Object.entries(CERT_GUIDS).map(([g, r]) => [r, g]));
  const head = 24 * (roles.length + 1);
  let off = head;
  const entries: Uint8Array[] = [];
  const bodies: Uint8Array[] = [];
  for (const r of roles) {
    const g = byRole[r];
    if (!g)
      throw new BulwarkError('ERR_INVALID_ARGUMENT', `certs: unknown role "${r}"`, {
        details: { parameter: 'certs' },
      });
    const body = certs[r] as Uint8Array;
    const e = new Uint8Array(24);
    e.set(guidBytes(g));
    new DataView(e.buffer).setUint32(16, off, true);
    new DataView(e.buffer).setUint32(20, body.length, true);
    entries.push(e);
    bodies.push(body);
    off += body.length;
  }
  entries.push(new Uint8Array(24));
  return Buffer.concat([...entries, ...bodies]);
}

export interface TsmAttesterOptions {
  /** `sev-snp` or `tdx` (the verifier the client will use). */
  format: 'sev-snp' | 'tdx';
  /** The configfs-tsm report folder (default /sys/kernel/config/tsm/report). */
  root?: string;
  /** Certificates to send as evidence when the host supplies none (SEV-SNP: VCEK, ASK, ARK as DER). */
  chain?: readonly Uint8Array[];
}

/** An {@link Attester} for SEV-SNP or TDX guests through configfs-tsm (binding = REPORT_DATA). */
export class TsmAttester implements Attester {
  readonly format: 'sev-snp' | 'tdx';
  readonly #root: string;
  readonly #chain: readonly Uint8Array[];

  constructor(options: TsmAttesterOptions) {
    if (options?.format !== 'sev-snp' && options?.format !== 'tdx') {
      throw new BulwarkError('ERR_INVALID_ARGUMENT', 'format: expected sev-snp or tdx', {
        details: { parameter: 'format' },
      });
    }
    this.format = options.format;
    this.#root = options.root ?? '/sys/kernel/config/tsm/report';
    this.#chain = options.chain ?? [];
  }

  async attest(b: AttestationBinding): Promise<{ document: Uint8Array; evidence: readonly Uint8Array[] }> {
    const dir = join(this.#root, `bulwark-${randomBytes(8).toString('hex')}`);
    const fail = (e: unknown, what: string) =>
      new BulwarkError('ERR_ENCLAVE_UNAVAILABLE', `configfs-tsm: ${what}: ${(e as Error).message}`, {
        cause: e,
      });
    try {
      await mkdir(dir);
    } catch (e) {
      throw fail(e, `cannot create ${dir} (not a confidential guest, or configfs not mounted)`);
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        await writeFile(join(dir, 'inblob'), b.userData);
        const gen = await readFile(join(dir, 'generation'), 'utf8');
        const document = new Uint8Array(await readFile(join(dir, 'outblob')));
        let aux: Uint8Array = new Uint8Array(0);
        if (this.format === 'sev-snp')
          aux = new Uint8Array(await readFile(join(dir, 'auxblob')).catch(() => Buffer.alloc(0)));
        if ((await readFile(join(dir, 'generation'), 'utf8')) !== gen) continue; // raced: retry
        const certs = aux.length > 0 ? Object.values(parseSnpCertTable(aux)) : [];
        return { document, evidence: certs.length > 0 ? certs : this.#chain };
      }
      throw new BulwarkError(
        'ERR_ENCLAVE_UNAVAILABLE',
        'configfs-tsm: the report kept changing under concurrent writers',
      );
    } catch (e) {
      if (e instanceof BulwarkError) throw e;
      throw fail(e, 'report request failed');
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
  }
}
