/**
 * Revocation of attestation chains (RFC 5280 §6.3, offline): `VerifyOptions.crls` / `bulwark attest
 * verify --crl`. Chains and CRLs are made with @peculiar/x509 (test/gateway/auth-fixtures.ts), the same
 * kind of objects AMD's KDS serves (a CRL of the ARK listing ASKs); the real Nitro document checks that
 * the option reaches the verifier.
 */
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { encode } from 'cbor2';
import { bindingDigest, ClientSession, parsePolicy, verifyAttestation } from '../../src/attest/index.js';
import { SUITE, WIRE_VERSION } from '../../src/attest/session/wire.js';
import { checkChainRevocation, checkCrl, readCrls, verifiedAnchor } from '../../src/attest/x509.js';
import { BulwarkError, isBulwarkError } from '../../src/core/index.js';
import { RevocationLists } from '../../src/gateway/auth/crl.js';
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
      /crls\[0\]: holds a PEM "CERTIFICATE" block \(line 1\); only X509 CRL blocks are accepted/,
    );
    await rejectsWith(
      checkChainRevocation(path, anchor, [await makeCrl(root), await makeCrl(root)], at),
      'ERR_ATTEST_CHAIN',
      /two CRLs of the CA CN=Test ARK/,
    );
  });

  describe('one strict reader for both paths (VerifyOptions.crls and the gateway RevocationLists.load)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-crl-reader-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    let n = 0;
    /** Both paths on the same input: the attestation chain check and the gateway loader (bundle root + ask). */
    const both = async (input: string | Uint8Array) => {
      const file = join(dir, `crl-${n++}`);
      writeFileSync(file, input);
      const attest = checkChainRevocation(path, anchor, [input], at).then(
        () => undefined,
        (e: unknown) => e,
      );
      const gateway = RevocationLists.load(file, [node(root), node(ask)], {
        key: 'server.tls.clientCrl',
        code: 'ERR_GATEWAY_TLS',
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      return { attest: await attest, gateway: await gateway, file };
    };

    it('both accept PEM blocks (LF or CRLF) and a DER CRL', async () => {
      const two = (await makeCrl(root)) + (await makeCrl(ask));
      for (const input of [two, two.replaceAll('\n', '\r\n'), Buffer.from(two)]) {
        const r = await both(input);
        assert.equal(r.attest, undefined, String(r.attest));
        assert.equal(r.gateway, undefined, String(r.gateway));
      }
      // One DER CRL: the attestation path (AMD KDS serves DER) and a one-CA gateway bundle.
      const d = der(await makeCrl(root));
      await checkChainRevocation(path, anchor, [d], at);
      const file = join(dir, 'one.der');
      writeFileSync(file, d);
      const lists = await RevocationLists.load(file, [node(root)], { key: 'k', code: 'ERR_CONFIG_INVALID' });
      assert.equal(lists.pem.length, 1);
    });

    it('both refuse, with their code and naming the file or parameter, what the attestation path used to skip', async () => {
      const a = await makeCrl(root);
      const b = await makeCrl(ask);
      const body = a.split('\n')[1] as string;
      const cases: [string, string | Uint8Array, RegExp][] = [
        ['an empty file', '', /no X509 CRL block/],
        ['whitespace only', '\n \n', /no X509 CRL block/],
        [
          'text before the blocks',
          `Certificate Revocation List (CRL):\n${a}${b}`,
          /text outside the X509 CRL blocks \(line 1\)/,
        ],
        ['text between the blocks', `${a}junk\n${b}`, /text outside the X509 CRL blocks \(line \d+\)/],
        ['text after the blocks', `${a}${b}trailing`, /text outside the X509 CRL blocks/],
        [
          'a BEGIN line with a typo',
          `${a}${b.replace('-----BEGIN', '----BEGIN')}`,
          /text outside the X509 CRL blocks/,
        ],
        ['a CERTIFICATE block where a CRL is expected', root.pem, /PEM "CERTIFICATE" block/],
        ['a CERTIFICATE block beside the CRLs', `${a}${b}${root.pem}`, /PEM "CERTIFICATE" block/],
        ['an END line of another label', a.replace('END X509 CRL', 'END CERTIFICATE'), /has no END line/],
        ['an END line alone', `${a}${b}-----END X509 CRL-----\n`, /END line without its BEGIN/],
        ['no END line', `${a}${b}-----BEGIN X509 CRL-----\nAAAA\n`, /has no END line/],
        ['a character outside base64', a.replace(body, `${body.slice(0, -1)}*`), /CRL 1 is not plain base64/],
        [
          'base64 of a length not a multiple of 4',
          a.replace(body, body.slice(0, -1)),
          /CRL 1 is not valid base64/,
        ],
        [
          'padding inside the base64',
          a.replace(body, `${body.slice(0, 60)}==${body.slice(62)}`),
          /CRL 1 is not valid base64/,
        ],
        ['an empty block', '-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n', /CRL 1 is empty/],
        [
          'base64 of bytes that are no CRL',
          '-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n',
          /CRL 1 cannot be parsed/,
        ],
        [
          'a CRL followed by bytes',
          `-----BEGIN X509 CRL-----\n${Buffer.concat([der(a), Buffer.from([0, 0])]).toString('base64')}\n-----END X509 CRL-----\n`,
          /CRL 1 cannot be parsed: 2 byte\(s\) follow the DER CRL/,
        ],
        ['DER that does not parse', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), /CRL 1 cannot be parsed/],
        [
          'binary that is neither DER nor PEM',
          new Uint8Array([0xff, 0xfe, 0x00, 0x01]),
          /text outside the X509 CRL blocks/,
        ],
      ];
      for (const [what, input, message] of cases) {
        const r = await both(input);
        assert.ok(r.attest instanceof BulwarkError, `${what}: attestation path accepted it`);
        assert.equal(r.attest.code, 'ERR_ATTEST_CHAIN', `${what}: ${r.attest.message}`);
        assert.match(
          r.attest.message,
          new RegExp(`^certificate revocation list: crls\\[0\\]: .*${message.source}`),
          what,
        );
        assert.ok(r.gateway instanceof BulwarkError, `${what}: gateway accepted it`);
        assert.equal(r.gateway.code, 'ERR_GATEWAY_TLS', `${what}: ${r.gateway.message}`);
        assert.ok(
          r.gateway.message.startsWith(`server.tls.clientCrl: ${r.file}: `),
          `${what}: ${r.gateway.message}`,
        );
        assert.match(r.gateway.message, message, what);
        assert.deepEqual(r.gateway.details, { path: r.file }, what);
      }
    });

    it("readCrls hands the caller's refusal back unchanged (its code, its prefix)", () => {
      const fail = (m: string) => new BulwarkError('ERR_CONFIG_INVALID', `x.crl: ${m}`);
      assert.throws(
        () => readCrls('nothing', fail),
        (e: unknown) => {
          assert.ok(e instanceof BulwarkError);
          assert.equal(e.code, 'ERR_CONFIG_INVALID');
          assert.match(e.message, /^x\.crl: text outside/);
          return true;
        },
      );
    });
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
          /ERR_ATTEST_CHAIN: certificate revocation list: crls\[0\]: CRL 1 is issued by CN=Not the vendor/,
        );
      }
    } finally {
      t.cleanup();
    }
  });
});
