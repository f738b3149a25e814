import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { decode, encode } from 'cbor2';
import {
  AWS_NITRO_ROOT_FINGERPRINT,
  attestationFormats,
  parsePolicy,
  productionPolicy,
  verifyAttestation,
} from '../../src/attest/index.js';
import type { ErrorCode } from '../../src/core/index.js';
import {
  issue,
  makePki,
  makeRoot,
  NITRO_DOC,
  NITRO_ROOT,
  noSamples,
  pcrsOf,
  pem,
  signNitro,
  type TestCa,
} from './fixtures.js';

async function code(p: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}

describe('nitro: the real AWS document', { skip: noSamples }, () => {
  const doc = () => new Uint8Array(readFileSync(NITRO_DOC));
  const ts = () => {
    const cose = decode(doc()) as Uint8Array[];
    return new Date((decode(cose[2] as Uint8Array) as { timestamp: number }).timestamp);
  };

  it('verifies at its own timestamp against the pinned AWS Nitro root', async () => {
    const c = await verifyAttestation('nitro', doc(), { at: ts() });
    assert.equal(c.format, 'nitro');
    assert.equal(c.hardware, true);
    assert.equal(c.trustAnchor, AWS_NITRO_ROOT_FINGERPRINT);
    assert.equal(c.time?.getTime(), 1657117102484);
    assert.equal(c.details['moduleId'], 'i-07e25f3bada361dec-enc0181d3dff86da785');
    assert.equal(c.measurements['PCR0']?.slice(0, 16), 'f8bb0133c427bc49');
    assert.equal(Object.keys(c.measurements).length, 16);
    assert.equal(c.debug, false);
    assert.equal(c.nonce, null);
    assert.match(Buffer.from(c.publicKey ?? []).toString(), /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(
      Buffer.from(c.userData ?? [])
        .toString('hex')
        .slice(0, 8),
      'a2ec4272',
    );
  });

  it('the shared root file is the pinned root (same fingerprint) and verifies as --root', async () => {
    const root = readFileSync(NITRO_ROOT, 'utf8');
    const c = await verifyAttestation('nitro', doc(), { at: ts(), roots: [root] });
    assert.equal(c.trustAnchor, AWS_NITRO_ROOT_FINGERPRINT);
  });

  it('checks its public_key and user_data bindings and a PCR policy', async () => {
    const c = await verifyAttestation('nitro', doc(), { at: ts() });
    const ok = await verifyAttestation('nitro', doc(), {
      at: ts(),
      publicKey: c.publicKey as Uint8Array,
      userData: c.userData as Uint8Array,
      policy: parsePolicy({ measurements: { PCR0: [c.measurements['PCR0'] as string] } }),
    });
    assert.equal(ok.format, 'nitro');
    assert.equal(
      await code(verifyAttestation('nitro', doc(), { at: ts(), userData: new Uint8Array(32) })),
      'ERR_ATTEST_BINDING',
    );
    assert.equal(
      await code(verifyAttestation('nitro', doc(), { at: ts(), publicKey: new Uint8Array(32) })),
      'ERR_ATTEST_BINDING',
    );
    assert.equal(
      await code(
        verifyAttestation('nitro', doc(), {
          at: ts(),
          policy: productionPolicy({ PCR0: ['00'.repeat(48)] }),
        }),
      ),
      'ERR_ATTEST_MEASUREMENT',
    );
  });

  it('a tampered byte (inside PCR1) fails the signature', async () => {
    const d = doc();
    const c = await verifyAttestation('nitro', d, { at: ts() });
    const pcr1 = Buffer.from(c.measurements['PCR1'] as string, 'hex');
    const off = Buffer.from(d).indexOf(pcr1);
    assert.ok(off > 0);
    d[off + 5] = (d[off + 5] as number) ^ 0x01;
    assert.equal(await code(verifyAttestation('nitro', d, { at: ts() })), 'ERR_ATTEST_SIGNATURE');
  });

  it('today the leaf certificate has expired; a nonce it does not carry is refused', async () => {
    assert.equal(
      await code(verifyAttestation('nitro', doc(), { at: new Date('2026-01-01T00:00:00Z') })),
      'ERR_ATTEST_CERT_EXPIRED',
    );
    assert.equal(
      await code(verifyAttestation('nitro', doc(), { at: ts(), nonce: new Uint8Array(16) })),
      'ERR_ATTEST_NONCE',
    );
  });

  it('is stale for a 5-minute policy an hour later (leaf still valid)', async () => {
    const later = new Date(ts().getTime() + 3_600_000);
    assert.equal(
      await code(
        verifyAttestation('nitro', doc(), { at: later, policy: parsePolicy({ allowAnyMeasurement: true }) }),
      ),
      'ERR_ATTEST_STALE',
    );
  });

  it('under a test root instead of the AWS root, the chain is to another root', async () => {
    const t = ts();
    const other = await makeRoot('Not AWS', new Date(t.getTime() - 1e9), new Date(t.getTime() + 1e9));
    assert.equal(
      await code(verifyAttestation('nitro', doc(), { at: t, roots: [pem(other)] })),
      'ERR_ATTEST_UNTRUSTED_ROOT',
    );
  });
});

describe('nitro: documents signed under a test root', () => {
  const T = new Date('2026-03-01T12:00:00Z');
  let pki: { root: TestCa; inter: TestCa; leaf: TestCa };
  const chain = () => ({ leaf: pki.leaf, bundle: [pki.root, pki.inter] });
  const roots = () => [pem(pki.root)];
  before(async () => {
    pki = await makePki(T);
  });

  it('COSE and CBOR are read strictly: the unprotected header, crit, duplicate and non-preferred encodings', async () => {
    const d = signNitro({ timestamp: T.getTime() }, chain());
    const ok = await code(verifyAttestation('nitro', d, { at: T, roots: roots() }));
    assert.equal(ok, 'ok');
    const [prot, , payload, sig] = decode(d, { preferMap: true }) as [
      Uint8Array,
      unknown,
      Uint8Array,
      Uint8Array,
    ];
    // The same signed parts, with another unprotected bucket: not a map, a label also protected, crit.
    for (const unprotected of [7, new Map([[1, -7]]), new Map([[2, [99]]])])
      assert.equal(
        await code(
          verifyAttestation('nitro', encode([prot, unprotected, payload, sig]), { at: T, roots: roots() }),
        ),
        'ERR_ATTEST_MALFORMED',
        String(unprotected),
      );
    // The whole document as an indefinite-length array (0x9f ... 0xff) instead of 0x84.
    const indefinite = Buffer.concat([Buffer.from([0x9f]), Buffer.from(d).subarray(1), Buffer.from([0xff])]);
    assert.equal(d[0], 0x84);
    assert.equal(
      await code(verifyAttestation('nitro', indefinite, { at: T, roots: roots() })),
      'ERR_ATTEST_MALFORMED',
    );
    // The array header in a longer form than needed (0x98 0x04 for 4 elements).
    const long = Buffer.concat([Buffer.from([0x98, 0x04]), Buffer.from(d).subarray(1)]);
    assert.equal(
      await code(verifyAttestation('nitro', long, { at: T, roots: roots() })),
      'ERR_ATTEST_MALFORMED',
    );
  });

  it('verifies, with the nonce, public key and user data bound', async () => {
    const nonce = new Uint8Array(32).fill(9);
    const publicKey = new Uint8Array(32).fill(3);
    const userData = new Uint8Array(64).fill(4);
    const d = signNitro({ timestamp: T.getTime(), nonce, publicKey, userData }, chain());
    const c = await verifyAttestation('nitro', d, {
      at: T,
      roots: roots(),
      nonce,
      publicKey,
      userData,
      policy: productionPolicy({ PCR0: ['07'.repeat(48)] }),
    });
    assert.equal(c.nonceVerified, true);
    assert.deepEqual(new Uint8Array(c.nonce ?? []), nonce);
    assert.equal(c.trustAnchor, new X509Certificate(pem(pki.root)).fingerprint256);
    assert.equal(c.measurements['PCR0'], '07'.repeat(48));
  });

  it('is refused against the pinned AWS root (a chain to another root)', async () => {
    const d = signNitro({ timestamp: T.getTime() }, chain());
    assert.equal(await code(verifyAttestation('nitro', d, { at: T })), 'ERR_ATTEST_UNTRUSTED_ROOT');
  });

  it('a wrong nonce, a missing nonce', async () => {
    const d = signNitro({ timestamp: T.getTime(), nonce: new Uint8Array(32).fill(1) }, chain());
    assert.equal(
      await code(verifyAttestation('nitro', d, { at: T, roots: roots(), nonce: new Uint8Array(32).fill(2) })),
      'ERR_ATTEST_NONCE',
    );
    const n = signNitro({ timestamp: T.getTime() }, chain());
    assert.equal(
      await code(verifyAttestation('nitro', n, { at: T, roots: roots(), nonce: new Uint8Array(32) })),
      'ERR_ATTEST_NONCE',
    );
  });

  it('an expired leaf at the given time, and a leaf not yet valid', async () => {
    const d = signNitro({ timestamp: T.getTime() }, chain());
    assert.equal(
      await code(
        verifyAttestation('nitro', d, { at: new Date(T.getTime() + 4 * 3_600_000), roots: roots() }),
      ),
      'ERR_ATTEST_CERT_EXPIRED',
    );
    assert.equal(
      await code(verifyAttestation('nitro', d, { at: new Date(T.getTime() - 3_600_000), roots: roots() })),
      'ERR_ATTEST_CERT_EXPIRED',
    );
  });

  it('a debug-mode enclave (PCR0-2 zero) under a production policy', async () => {
    const d = signNitro({ timestamp: T.getTime(), pcrs: pcrsOf(0) }, chain());
    assert.equal(
      await code(verifyAttestation('nitro', d, { at: T, roots: roots(), policy: productionPolicy() })),
      'ERR_ATTEST_DEBUG',
    );
    const c = await verifyAttestation('nitro', d, {
      at: T,
      roots: roots(),
      policy: parsePolicy({ allowDebug: true, allowAnyMeasurement: true }),
    });
    assert.equal(c.debug, true);
  });

  it('a broken chain: an intermediate that did not issue the leaf', async () => {
    const stranger = await issue(pki.root, 'Other Intermediate', {
      ca: true,
      notBefore: new Date(T.getTime() - 1e9),
      notAfter: new Date(T.getTime() + 1e9),
    });
    const d = signNitro({ timestamp: T.getTime() }, { leaf: pki.leaf, bundle: [pki.root, stranger] });
    assert.equal(await code(verifyAttestation('nitro', d, { at: T, roots: roots() })), 'ERR_ATTEST_CHAIN');
  });

  it('an issuer that is not a CA', async () => {
    const notCa = await issue(pki.inter, 'Not a CA', {
      ca: false,
      notBefore: new Date(T.getTime() - 1e9),
      notAfter: new Date(T.getTime() + 1e9),
    });
    const leaf = await issue(notCa, 'Leaf under a non-CA', {
      ca: false,
      notBefore: new Date(T.getTime() - 1e6),
      notAfter: new Date(T.getTime() + 1e6),
    });
    const d = signNitro({ timestamp: T.getTime() }, { leaf, bundle: [pki.root, pki.inter, notCa] });
    assert.equal(await code(verifyAttestation('nitro', d, { at: T, roots: roots() })), 'ERR_ATTEST_CHAIN');
  });

  it('signed by another key than the leaf certificate', async () => {
    const d = signNitro({ timestamp: T.getTime() }, { ...chain(), signer: pki.inter.keys.privateKey });
    assert.equal(
      await code(verifyAttestation('nitro', d, { at: T, roots: roots() })),
      'ERR_ATTEST_SIGNATURE',
    );
  });

  it('malformed documents: not CBOR, another algorithm, a missing field, a wrong digest', async () => {
    const o = { at: T, roots: roots() };
    assert.equal(
      await code(verifyAttestation('nitro', new Uint8Array([0xff, 0x00, 0x01]), o)),
      'ERR_ATTEST_MALFORMED',
    );
    assert.equal(
      await code(
        verifyAttestation('nitro', signNitro({ timestamp: T.getTime() }, { ...chain(), alg: -7 }), o),
      ),
      'ERR_ATTEST_MALFORMED',
    );
    const missing = signNitro({ timestamp: T.getTime(), override: new Map([['module_id', '']]) }, chain());
    assert.equal(await code(verifyAttestation('nitro', missing, o)), 'ERR_ATTEST_MALFORMED');
    const digest = signNitro({ timestamp: T.getTime(), override: new Map([['digest', 'SHA256']]) }, chain());
    assert.equal(await code(verifyAttestation('nitro', digest, o)), 'ERR_ATTEST_MALFORMED');
    assert.equal(await code(verifyAttestation('nitro', new Uint8Array(0), o)), 'ERR_ATTEST_MALFORMED');
  });

  it('unknown and reserved formats', async () => {
    assert.deepEqual(attestationFormats(), ['nitro', 'sev-snp', 'software']);
    assert.equal(await code(verifyAttestation('sgx', new Uint8Array(4))), 'ERR_ATTEST_FORMAT_UNKNOWN');
    await assert.rejects(verifyAttestation('tdx', new Uint8Array(4)), /reserved/);
  });
});
