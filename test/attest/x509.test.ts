/**
 * RFC 5280 path checks beyond names, signatures and validity (src/attest/x509.ts verifyPath): path
 * length constraints, unrecognised critical extensions, the leaf as an end entity allowed to sign, and
 * SHA-1 signatures. Each case is a chain that was accepted before these checks.
 */
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { verifyPath } from '../../src/attest/x509.js';
import type { ErrorCode } from '../../src/core/index.js';

x509.cryptoProvider.set(webcrypto as never);

const P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const;
const now = new Date('2026-06-01T00:00:00Z');
const from = new Date(now.getTime() - 86_400_000);
const to = new Date(now.getTime() + 86_400_000);
let serial = 1;

interface Made {
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
  node: X509Certificate;
}

async function cert(
  subject: string,
  issuer: Made | null,
  o: { ca: boolean; pathLen?: number; extra?: x509.Extension[]; hash?: string; usage?: number },
): Promise<Made> {
  const keys = (await webcrypto.subtle.generateKey(P384, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const c = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: `CN=${subject}`,
    issuer: issuer ? issuer.cert.subject : `CN=${subject}`,
    notBefore: from,
    notAfter: to,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: { ...P384, hash: o.hash ?? 'SHA-384' },
    extensions: [
      new x509.BasicConstraintsExtension(o.ca, o.pathLen, true),
      new x509.KeyUsagesExtension(
        o.usage ?? (o.ca ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature),
        true,
      ),
      ...(o.extra ?? []),
    ],
  });
  return { cert: c, keys, node: new X509Certificate(Buffer.from(c.rawData)) };
}

function verdict(path: Made[], root: Made): ErrorCode | 'ok' {
  try {
    verifyPath(
      path.map((c) => c.node),
      { kind: 'certificates', certificates: [root.node] },
      now,
    );
    return 'ok';
  } catch (e) {
    return (e as { code: ErrorCode }).code;
  }
}

describe('attestation certificate paths: RFC 5280 profile checks', () => {
  it('accepts a well-formed path, and enforces pathLenConstraint', async () => {
    const root = await cert('root', null, { ca: true, pathLen: 1 });
    const inter = await cert('inter', root, { ca: true, pathLen: 0 });
    const leaf = await cert('leaf', inter, { ca: false });
    assert.equal(verdict([leaf, inter], root), 'ok');
    // inter allows no CA below it; the root allows one intermediate, the path has two.
    const sub = await cert('sub-CA', inter, { ca: true });
    const leaf2 = await cert('leaf under sub-CA', sub, { ca: false });
    assert.equal(verdict([leaf2, sub, inter], root), 'ERR_ATTEST_CHAIN');
    const open = await cert('inter, no pathLen', root, { ca: true });
    const sub2 = await cert('sub-CA 2', open, { ca: true });
    const leaf3 = await cert('leaf 3', sub2, { ca: false });
    assert.equal(verdict([leaf3, sub2, open], root), 'ERR_ATTEST_CHAIN', 'the root pathLen 1 is exceeded');
  });

  it('refuses an unrecognised critical extension, a CA or non-signing leaf, and SHA-1', async () => {
    const root = await cert('root', null, { ca: true });
    const crit = new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([5, 0]).buffer);
    const nonCrit = new x509.Extension('1.3.6.1.4.1.99999.1', false, new Uint8Array([5, 0]).buffer);
    assert.equal(verdict([await cert('leaf', root, { ca: false, extra: [nonCrit] })], root), 'ok');
    assert.equal(verdict([await cert('leaf', root, { ca: false, extra: [crit] })], root), 'ERR_ATTEST_CHAIN');
    assert.equal(verdict([await cert('CA as leaf', root, { ca: true })], root), 'ERR_ATTEST_CHAIN');
    assert.equal(
      verdict([await cert('leaf', root, { ca: false, usage: x509.KeyUsageFlags.keyEncipherment })], root),
      'ERR_ATTEST_CHAIN',
    );
    assert.equal(
      verdict([await cert('SHA-1 leaf', root, { ca: false, hash: 'SHA-1' })], root),
      'ERR_ATTEST_CHAIN',
    );
  });
});
