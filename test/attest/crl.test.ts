/**
 * Revocation of attestation chains (RFC 5280 §6.3, offline): `VerifyOptions.crls` / `bulwark attest
 * verify --crl`. Chains and CRLs are made with @peculiar/x509 (test/gateway/auth-fixtures.ts), the same
 * kind of objects AMD's KDS serves (a CRL of the ARK listing ASKs); the real Nitro document checks that
 * the option reaches the verifier.
 */
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { encode } from 'cbor2';
import { bindingDigest, ClientSession, parsePolicy, verifyAttestation } from '../../src/attest/index.js';
import { SUITE, WIRE_VERSION } from '../../src/attest/session/wire.js';
import { checkChainRevocation, checkCrl, verifiedAnchor } from '../../src/attest/x509.js';
import { isBulwarkError } from '../../src/core/index.js';
import { type Ca, makeCa, makeCrl, makeIntermediate, makeLeaf } from '../gateway/auth-fixtures.js';
import { runBulwark } from '../helpers/cli.js';
import { tempDir } from '../model/helpers.js';
import {
  makePki,
  NITRO_DOC,
  noSamples,
  SNP_ASK_ARK,
  SNP_REPORT,
  SNP_VCEK,
  signNitro,
  type TestCa,
  pem as testPem,
} from './fixtures.js';

const node = (ca: Ca) => new X509Certificate(ca.pem);
const der = (pem: string) =>
  new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'));

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBulwarkError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('attestation chains against CRLs', async () => {
  const root = await makeCa('Test ARK');
  const ask = await makeIntermediate(root, 'Test ASK');
  const vcek = await makeLeaf(ask);
  const path = [vcek.cert, node(ask)];
  const at = new Date();
  const anchor = verifiedAnchor(path, { kind: 'certificates', certificates: [node(root)] }, at);

  it('passes when no CRL lists a certificate of the chain (PEM or DER)', async () => {
    await checkChainRevocation(path, anchor, [await makeCrl(root), der(await makeCrl(ask))], at);
  });

  it('refuses a certificate its issuer revoked, at any depth', async () => {
    await rejectsWith(
      checkChainRevocation(path, anchor, [await makeCrl(root, [{ cert: ask.cert }])], at),
      'ERR_ATTEST_REVOKED',
      /"Test ASK" \(serial [0-9a-f]+\) is revoked/i,
    );
    await rejectsWith(
      checkChainRevocation(path, anchor, [der(await makeCrl(ask, [vcek]))], at),
      'ERR_ATTEST_REVOKED',
      /"workload" .* is revoked/,
    );
  });

  it("verifies an RSA-PSS CRL, as AMD's ARK signs its CRL of ASKs (SHA-384, salt 48)", async () => {
    const alg = {
      name: 'RSA-PSS',
      hash: 'SHA-384',
      publicExponent: new Uint8Array([1, 0, 1]),
      modulusLength: 2048,
      saltLength: 48,
    };
    const keys = (await webcrypto.subtle.generateKey(alg, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const ark = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=ARK-PSS',
      notBefore: new Date(at.getTime() - 3_600_000),
      notAfter: new Date(at.getTime() + 86_400_000),
      signingAlgorithm: alg,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    const crl = await x509.X509CrlGenerator.create({
      issuer: ark.subject,
      thisUpdate: new Date(at.getTime() - 3_600_000),
      nextUpdate: new Date(at.getTime() + 86_400_000),
      signingAlgorithm: alg,
      signingKey: keys.privateKey,
      entries: [{ serialNumber: '05', revocationDate: at, reason: x509.X509CrlReason.keyCompromise }],
    });
    const c = await checkCrl(
      new Uint8Array(crl.rawData),
      [new X509Certificate(ark.toString('pem'))],
      'CRL 1',
      (m) => {
        throw new Error(m);
      },
    );
    assert.equal(c.issuer, 'CN=ARK-PSS');
    assert.deepEqual([...c.revoked], ['5']);
  });

  it('refuses a CRL that is not current at the verification time', async () => {
    const old = await makeCrl(root, [], {
      thisUpdate: new Date(at.getTime() - 3 * 86_400_000),
      nextUpdate: new Date(at.getTime() - 86_400_000),
    });
    await rejectsWith(checkChainRevocation(path, anchor, [old], at), 'ERR_ATTEST_STALE', /not current/);
  });

  it('refuses a CRL of no CA of the chain, a forged one, and a file with no CRL', async () => {
    const other = await makeCa('Other CA');
    await rejectsWith(
      checkChainRevocation(path, anchor, [await makeCrl(other)], at),
      'ERR_ATTEST_CHAIN',
      /issued by CN=Other CA, which is not a CA here/,
    );
    const forged = await makeCrl(root, [], { signingKey: other.keys.privateKey });
    await rejectsWith(
      checkChainRevocation(path, anchor, [forged], at),
      'ERR_ATTEST_CHAIN',
      /signature does not verify with the key of the CA CN=Test ARK/,
    );
    await rejectsWith(
      checkChainRevocation(path, anchor, [root.pem], at),
      'ERR_ATTEST_CHAIN',
      /CRL file 1 holds no X509 CRL/,
    );
    await rejectsWith(
      checkChainRevocation(path, anchor, [await makeCrl(root), await makeCrl(root)], at),
      'ERR_ATTEST_CHAIN',
      /two CRLs of the CA CN=Test ARK/,
    );
  });

  it('verifyAttestation(nitro, { crls }): a document whose leaf its intermediate revoked is refused, verified otherwise', async () => {
    const T = new Date('2026-01-15T12:00:00Z');
    const pki = await makePki(T);
    const doc = signNitro({ timestamp: T.getTime() }, { leaf: pki.leaf, bundle: [pki.root, pki.inter] });
    const crlOf = async (ca: TestCa, revoked: TestCa[]) =>
      new Uint8Array(
        (
          await x509.X509CrlGenerator.create({
            issuer: ca.cert.subject,
            thisUpdate: new Date(T.getTime() - 3_600_000),
            nextUpdate: new Date(T.getTime() + 86_400_000),
            signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
            signingKey: ca.keys.privateKey,
            entries: revoked.map((c) => ({
              serialNumber: c.cert.serialNumber,
              revocationDate: T,
              reason: x509.X509CrlReason.keyCompromise,
            })),
          })
        ).rawData,
      );
    const base = { at: T, roots: [testPem(pki.root)] };
    const ok = await verifyAttestation('nitro', doc, {
      ...base,
      crls: [await crlOf(pki.inter, []), await crlOf(pki.root, [])],
    });
    assert.equal(ok.format, 'nitro');
    await rejectsWith(
      verifyAttestation('nitro', doc, { ...base, crls: [await crlOf(pki.inter, [pki.leaf])] }),
      'ERR_ATTEST_REVOKED',
      /"Test Nitro Leaf" .* is revoked/,
    );
    await rejectsWith(
      verifyAttestation('nitro', doc, { ...base, crls: [await crlOf(pki.root, [pki.inter])] }),
      'ERR_ATTEST_REVOKED',
      /"Test Nitro Intermediate" .* is revoked/,
    );
  });

  it('an attested session (ClientSession.establish) with crls refuses a revoked enclave chain', async () => {
    const T = new Date('2026-01-15T12:00:00Z');
    const pki = await makePki(T);
    const nonce = new Uint8Array(32).fill(7);
    const publicKey = new Uint8Array(32).fill(9);
    const document = signNitro(
      { timestamp: T.getTime(), userData: bindingDigest(publicKey, nonce) },
      { leaf: pki.leaf, bundle: [pki.root, pki.inter] },
    );
    const envelope = encode(
      new Map<string, unknown>([
        ['v', WIRE_VERSION],
        ['format', 'nitro'],
        ['document', document],
        ['publicKey', publicKey],
        ['suite', [...SUITE]],
        ['evidence', []],
      ]),
    );
    const revoking = new Uint8Array(
      (
        await x509.X509CrlGenerator.create({
          issuer: pki.inter.cert.subject,
          thisUpdate: new Date(T.getTime() - 3_600_000),
          nextUpdate: new Date(T.getTime() + 86_400_000),
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
          signingKey: pki.inter.keys.privateKey,
          entries: [
            {
              serialNumber: pki.leaf.cert.serialNumber,
              revocationDate: T,
              reason: x509.X509CrlReason.keyCompromise,
            },
          ],
        })
      ).rawData,
    );
    const options = {
      policy: parsePolicy({ formats: ['nitro'], allowAnyMeasurement: true }),
      roots: { nitro: [testPem(pki.root)] },
      now: () => T,
    };
    await ClientSession.establish(envelope, nonce, options); // the same chain without a CRL: accepted
    await rejectsWith(
      ClientSession.establish(envelope, nonce, { ...options, crls: { nitro: [revoking] } }),
      'ERR_ATTEST_REVOKED',
      /"Test Nitro Leaf" .* is revoked/,
    );
  });

  it('bulwark attest verify --crl: a CRL of no CA of the chain refuses the real Nitro and SEV-SNP documents', {
    skip: noSamples,
  }, async () => {
    const t = tempDir('attest-crl');
    try {
      const crl = join(t.dir, 'other.crl');
      writeFileSync(crl, await makeCrl(await makeCa('Not the vendor')));
      const docs = [
        ['attest', 'verify', NITRO_DOC, '--format', 'nitro', '--at', 'document', '--no-policy'],
        [
          'attest',
          'verify',
          SNP_REPORT,
          '--format',
          'sev-snp',
          '--chain',
          SNP_ASK_ARK,
          '--chain',
          SNP_VCEK,
          '--no-policy',
        ],
      ];
      for (const base of docs) {
        assert.equal(runBulwark(base).code, 0, `${base[3]} verifies without --crl`);
        const r = runBulwark([...base, '--crl', crl]);
        assert.equal(r.code, 5, r.stderr);
        assert.match(
          r.stderr,
          /ERR_ATTEST_CHAIN: certificate revocation list: CRL 1 is issued by CN=Not the vendor/,
        );
      }
    } finally {
      t.cleanup();
    }
  });
});
