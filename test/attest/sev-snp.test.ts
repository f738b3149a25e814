import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  AMD_ARK_FINGERPRINTS,
  buildSnpCertTable,
  parsePolicy,
  parseSnpCertTable,
  parseSnpReport,
  productionPolicy,
  verifyAttestation,
} from '../../src/attest/index.js';
import type { ErrorCode } from '../../src/core/index.js';
import {
  makeRoot,
  makeSnpPki,
  noSamples,
  pem,
  SNP_ASK_ARK,
  SNP_REPORT,
  SNP_VCEK,
  signSnp,
} from './fixtures.js';

async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}

const MEASUREMENT =
  'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';
const AT = new Date('2026-01-01T00:00:00Z');

describe('sev-snp: the real Milan report and its VCEK -> ASK -> ARK chain', { skip: noSamples }, () => {
  const report = () => new Uint8Array(readFileSync(SNP_REPORT));
  const chain = () => [readFileSync(SNP_ASK_ARK, 'utf8'), new Uint8Array(readFileSync(SNP_VCEK))];
  // The sample is a debug-enabled guest without a nonce: archived evidence (no freshness), debug allowed.
  const lab = (extra: Record<string, unknown> = {}) =>
    parsePolicy({ allowDebug: true, maxAgeSeconds: null, allowAnyMeasurement: true, ...extra });

  it('verifies: signature, pinned ARK-Milan, claims from the report', async () => {
    const c = await verifyAttestation('sev-snp', report(), { at: AT, chain: chain() });
    assert.equal(c.format, 'sev-snp');
    assert.equal(c.hardware, true);
    assert.equal(c.trustAnchor, AMD_ARK_FINGERPRINTS['Milan']);
    assert.equal(c.measurements['measurement'], MEASUREMENT);
    assert.deepEqual(c.tcb, { bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    assert.equal(c.details['policy'], '0xb0000');
    assert.equal(c.debug, true, 'guest policy 0xb0000 has bit 19 (DEBUG) set');
    assert.equal(c.time, null);
    assert.equal(
      Buffer.from(c.userData ?? [])
        .toString('hex')
        .slice(0, 10),
      '0102030405',
    );
  });

  it('parses the fields at their ABI offsets', () => {
    const r = parseSnpReport(report());
    assert.equal(r.version, 2);
    assert.equal(r.signatureAlgo, 1);
    assert.equal(r.vmpl, 0);
    assert.equal(r.policy, 0xb0000n);
  });

  it('a production policy refuses it: debug mode', async () => {
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), policy: productionPolicy() }),
      ),
      'ERR_ATTEST_DEBUG',
    );
  });

  it('policy on measurement and TCB', async () => {
    const ok = await verifyAttestation('sev-snp', report(), {
      at: AT,
      chain: chain(),
      policy: lab({
        measurements: { measurement: [MEASUREMENT] },
        minTcb: { bootloader: 2, snp: 5, microcode: 68 },
      }),
    });
    assert.equal(ok.debug, true);
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), {
          at: AT,
          chain: chain(),
          policy: lab({ measurements: { measurement: ['ab'.repeat(48)] } }),
        }),
      ),
      'ERR_ATTEST_MEASUREMENT',
    );
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), {
          at: AT,
          chain: chain(),
          policy: lab({ minTcb: { snp: 6 } }),
        }),
      ),
      'ERR_ATTEST_TCB',
    );
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), {
          at: AT,
          chain: chain(),
          policy: lab({ minTcb: { microcode: 69 } }),
        }),
      ),
      'ERR_ATTEST_TCB',
    );
  });

  it('without a nonce or time its freshness cannot be told', async () => {
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), {
          at: AT,
          chain: chain(),
          policy: parsePolicy({ allowDebug: true, allowAnyMeasurement: true }),
        }),
      ),
      'ERR_ATTEST_STALE',
    );
  });

  it('a tampered byte in the signed body (measurement) or in the signature', async () => {
    const r = report();
    r[0x90] = (r[0x90] as number) ^ 0x80;
    assert.equal(
      await code(verifyAttestation('sev-snp', r, { at: AT, chain: chain() })),
      'ERR_ATTEST_SIGNATURE',
    );
    const s = report();
    s[0x2a0] = (s[0x2a0] as number) ^ 0x01;
    assert.equal(
      await code(verifyAttestation('sev-snp', s, { at: AT, chain: chain() })),
      'ERR_ATTEST_SIGNATURE',
    );
  });

  it('another root than the pinned ARK; an expired VCEK at the given time', async () => {
    const other = await makeRoot('Not AMD', new Date('2020-01-01'), new Date('2040-01-01'));
    assert.equal(
      await code(verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), roots: [pem(other)] })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    // The ARK given as the root explicitly works too.
    const ark = readFileSync(SNP_ASK_ARK, 'utf8').split(/(?=-----BEGIN CERTIFICATE-----)/)[1] as string;
    const c = await verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), roots: [ark] });
    assert.equal(c.trustAnchor, AMD_ARK_FINGERPRINTS['Milan']);
    assert.equal(
      await code(verifyAttestation('sev-snp', report(), { at: new Date('2030-01-01'), chain: chain() })),
      'ERR_ATTEST_CERT_EXPIRED',
    );
  });

  it('a chain without the ASK is broken; without the ARK it ends at an unpinned certificate', async () => {
    const [ask] = readFileSync(SNP_ASK_ARK, 'utf8').split(/(?=-----BEGIN CERTIFICATE-----)/);
    const vcek = new Uint8Array(readFileSync(SNP_VCEK));
    assert.equal(
      await code(verifyAttestation('sev-snp', report(), { at: AT, chain: [vcek] })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    assert.equal(
      await code(verifyAttestation('sev-snp', report(), { at: AT, chain: [ask as string, vcek] })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
    assert.equal(await code(verifyAttestation('sev-snp', report(), { at: AT })), 'ERR_ATTEST_MALFORMED');
  });

  it('user data and a nonce bind through REPORT_DATA; only the nonce proves freshness', async () => {
    const rd = parseSnpReport(report()).reportData;
    const debugOk = parsePolicy({ allowDebug: true, allowAnyMeasurement: true });
    // Matching user data binds, but it may be a static value any old report carries: not fresh. Years
    // after the report, with the production age rule, it is still refused as stale.
    const later = new Date('2028-06-01T00:00:00Z');
    const bound = await verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), userData: rd });
    assert.equal(bound.nonceVerified, false);
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), { at: later, chain: chain(), userData: rd, policy: debugOk }),
      ),
      'ERR_ATTEST_STALE',
    );
    // The verifier's nonce is REPORT_DATA's first bytes: that is freshness.
    const c = await verifyAttestation('sev-snp', report(), {
      at: later,
      chain: chain(),
      nonce: rd.subarray(0, 32),
      policy: debugOk,
    });
    assert.equal(c.nonceVerified, true);
    assert.equal(
      await code(
        verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), userData: new Uint8Array(64) }),
      ),
      'ERR_ATTEST_BINDING',
    );
    const other = rd.slice(0, 32);
    other[0] = (other[0] as number) ^ 1;
    for (const nonce of [other, new Uint8Array(0), new Uint8Array(65)])
      assert.equal(
        await code(verifyAttestation('sev-snp', report(), { at: AT, chain: chain(), nonce })),
        'ERR_ATTEST_NONCE',
      );
  });

  it('malformed: wrong size, unknown version, other signature algorithm', async () => {
    assert.equal(
      await code(verifyAttestation('sev-snp', report().subarray(0, 1000), { at: AT, chain: chain() })),
      'ERR_ATTEST_MALFORMED',
    );
    const v = report();
    v[0] = 9;
    assert.equal(
      await code(verifyAttestation('sev-snp', v, { at: AT, chain: chain() })),
      'ERR_ATTEST_MALFORMED',
    );
    const a = report();
    a[0x34] = 2;
    assert.equal(
      await code(verifyAttestation('sev-snp', a, { at: AT, chain: chain() })),
      'ERR_ATTEST_MALFORMED',
    );
  });
});

describe('sev-snp: the extended-report certificate table (configfs-tsm auxblob)', { skip: noSamples }, () => {
  it('round-trips the real VCEK, ASK and ARK and the report verifies with them as evidence', async () => {
    const pems = readFileSync(SNP_ASK_ARK, 'utf8').split(/(?=-----BEGIN CERTIFICATE-----)/);
    const der = (p: string) => new Uint8Array(Buffer.from(p.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
    const certs = {
      vcek: new Uint8Array(readFileSync(SNP_VCEK)),
      ask: der(pems[0] as string),
      ark: der(pems[1] as string),
    };
    const table = buildSnpCertTable(certs);
    // The VCEK GUID 63da758d-e664-4564-adc5-f4b93be8accd in its mixed-endian wire layout.
    assert.equal(Buffer.from(table.subarray(0, 16)).toString('hex'), '8d75da6364e66445adc5f4b93be8accd');
    const back = parseSnpCertTable(table);
    assert.deepEqual(Object.keys(back).sort(), ['ark', 'ask', 'vcek']);
    assert.ok(Buffer.from(back['vcek'] as Uint8Array).equals(Buffer.from(certs.vcek)));
    const c = await verifyAttestation('sev-snp', new Uint8Array(readFileSync(SNP_REPORT)), {
      at: AT,
      chain: Object.values(back),
    });
    assert.equal(c.trustAnchor, AMD_ARK_FINGERPRINTS['Milan']);
    assert.throws(() => parseSnpCertTable(table.subarray(0, 30)), { code: 'ERR_ATTEST_MALFORMED' });
  });
});

describe('sev-snp: fields the report must have (reports signed by a test VCEK)', () => {
  const T = new Date('2026-06-01T00:00:00Z');
  const TCB = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
  const CHIP = new Uint8Array(64).fill(0xc1);
  const MEAS = '5a'.repeat(48);
  const pinned = (extra: Record<string, unknown> = {}) =>
    parsePolicy({ maxAgeSeconds: null, measurements: { measurement: [MEAS] }, ...extra });

  it('a report from the test PKI verifies with its claims; VMPL and MIGRATE_MA go to the policy', async () => {
    const pki = await makeSnpPki(T, TCB, CHIP);
    const opts = { at: T, roots: [pem(pki.ark)], chain: [pem(pki.ask), pem(pki.vcek)] };
    const c = await verifyAttestation('sev-snp', signSnp({}, pki.vcek), { ...opts, policy: pinned() });
    assert.equal(c.vmpl, 0);
    assert.equal(c.migrationAgent, false);
    assert.deepEqual(c.tcb, TCB);
    // A report requested at VMPL 2 (say, the guest kernel under an SVSM) binds that code's data.
    const vmpl2 = signSnp({ vmpl: 2 }, pki.vcek);
    assert.equal(
      await code(verifyAttestation('sev-snp', vmpl2, { ...opts, policy: pinned() })),
      'ERR_ATTEST_GUEST_POLICY',
    );
    assert.equal(
      await code(verifyAttestation('sev-snp', vmpl2, { ...opts, policy: pinned({ maxVmpl: 2 }) })),
      'ok',
    );
    const ma = signSnp({ policy: 0x30000n | (1n << 18n) }, pki.vcek);
    assert.equal(
      await code(verifyAttestation('sev-snp', ma, { ...opts, policy: pinned() })),
      'ERR_ATTEST_GUEST_POLICY',
    );
    assert.equal(
      await code(
        verifyAttestation('sev-snp', ma, { ...opts, policy: pinned({ allowMigrationAgent: true }) }),
      ),
      'ok',
    );
    for (const bad of [{ maxVmpl: 4 }, { maxVmpl: -1 }, { maxVmpl: 1.5 }, { allowMigrationAgent: 'yes' }])
      assert.throws(() => pinned(bad), { code: 'ERR_ATTEST_POLICY_INVALID' }, JSON.stringify(bad));
  });

  it('reserved bytes set, or guest policy bit 17 clear, are malformed (even when signed)', async () => {
    const pki = await makeSnpPki(T, TCB, CHIP);
    const opts = { at: T, roots: [pem(pki.ark)], chain: [pem(pki.ask), pem(pki.vcek)] };
    for (const poke of [0x4c, 0x18b, 0x19f, 0x1f8, 0x29f])
      assert.equal(
        await code(verifyAttestation('sev-snp', signSnp({ poke: [[poke, 1]] }, pki.vcek), opts)),
        'ERR_ATTEST_MALFORMED',
        `0x${poke.toString(16)}`,
      );
    // Version 5 puts its mitigation vectors at 0x1F8-0x207; the rest stays reserved.
    assert.equal(
      await code(verifyAttestation('sev-snp', signSnp({ version: 5, poke: [[0x1f8, 1]] }, pki.vcek), opts)),
      'ok',
    );
    assert.equal(
      await code(verifyAttestation('sev-snp', signSnp({ version: 5, poke: [[0x208, 1]] }, pki.vcek), opts)),
      'ERR_ATTEST_MALFORMED',
    );
    assert.equal(
      await code(verifyAttestation('sev-snp', signSnp({ policy: 0x10000n }, pki.vcek), opts)),
      'ERR_ATTEST_MALFORMED',
    );
  });

  it('a VCEK without its TCB or hardware-id extensions cannot vouch for a report', async () => {
    for (const omit of ['snp', 'microcode', 'hwid'] as const) {
      const pki = await makeSnpPki(T, TCB, CHIP, [omit]);
      const opts = { at: T, roots: [pem(pki.ark)], chain: [pem(pki.ask), pem(pki.vcek)] };
      assert.equal(
        await code(verifyAttestation('sev-snp', signSnp({}, pki.vcek), opts)),
        'ERR_ATTEST_MALFORMED',
        omit,
      );
    }
    // With MASK_CHIP_ID (key info bit 1) the chip id is zero and the hardware id is not needed.
    const pki = await makeSnpPki(T, TCB, CHIP, ['hwid']);
    const opts = { at: T, roots: [pem(pki.ark)], chain: [pem(pki.ask), pem(pki.vcek)] };
    const masked = signSnp({ chipId: new Uint8Array(64), poke: [[0x48, 0b10]] }, pki.vcek);
    assert.equal(await code(verifyAttestation('sev-snp', masked, opts)), 'ok');
  });
});
