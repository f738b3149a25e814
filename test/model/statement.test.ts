import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/keys/index.js';
import {
  FOOTER_BYTES,
  IN_TOTO_PAYLOAD_TYPE,
  MODEL_SIGNING_PREDICATE_TYPE,
  pae,
  parsePublicKey,
  parseSignature,
  parseStatement,
  protectModel,
  publicKeyPem,
  RESOURCE_BODY,
  RESOURCE_MANIFEST,
  RESOURCE_MODEL,
  type SigningKey,
  verifyBytes,
} from '../../src/model/index.js';
import { ROOT } from '../helpers/cli.js';
import { FIXTURE_ONNX, generateSigningKey, makeKeyring, tempDir } from './helpers.js';

const t = tempDir('model-stmt');
const REF = join(ROOT, 'test', 'model', 'fixtures', 'model-transparency-v1.1.0');
let kr: Keyring;
let key: SigningKey;
let pkg: string;
let bundleText: string;
let bytes: Buffer;

before(async () => {
  kr = await makeKeyring(join(t.dir, 'kr.json'));
  key = generateSigningKey();
  pkg = join(t.dir, 'm.bwm');
  await protectModel(FIXTURE_ONNX, pkg, {
    keyring: kr,
    signingKey: key,
    name: 'credit-scorer',
    version: '3',
  });
  bytes = readFileSync(pkg);
  const f = bytes.subarray(bytes.length - FOOTER_BYTES);
  const sLen = f.readUInt32BE(8);
  bundleText = bytes
    .subarray(bytes.length - FOOTER_BYTES - sLen, bytes.length - FOOTER_BYTES)
    .toString('utf8');
});

after(async () => {
  await kr.close();
  t.cleanup();
});

describe('signature layout: OpenSSF model signing v1.0 in a Sigstore bundle v0.3', () => {
  it('has the bundle, envelope and statement fields model_signing writes and reads', () => {
    const b = JSON.parse(bundleText);
    assert.equal(b.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    // model_signing's key signer: verification material is a hint = hex SHA-256 of the PEM SPKI.
    assert.deepEqual(Object.keys(b.verificationMaterial.publicKey), ['hint']);
    assert.equal(
      b.verificationMaterial.publicKey.hint,
      createHash('sha256').update(publicKeyPem(key.publicKey)).digest('hex'),
    );
    assert.equal(b.dsseEnvelope.payloadType, 'application/vnd.in-toto+json');
    assert.equal(b.dsseEnvelope.signatures.length, 1);
    const s = JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString('utf8'));
    assert.deepEqual(Object.keys(s).sort(), ['_type', 'predicate', 'predicateType', 'subject']);
    assert.equal(s._type, 'https://in-toto.io/Statement/v1');
    assert.equal(s.predicateType, 'https://model_signing/signature/v1.0');
    assert.equal(s.subject.length, 1);
    assert.equal(s.subject[0].name, 'credit-scorer');
    assert.deepEqual(s.predicate.serialization, {
      method: 'files',
      hash_type: 'sha256',
      allow_symlinks: false,
      ignore_paths: [],
    });
    const names = s.predicate.resources.map((r: { name: string }) => r.name);
    assert.deepEqual(names, [RESOURCE_MANIFEST, RESOURCE_MODEL, RESOURCE_BODY]);
    assert.deepEqual(names, [...names].sort());
    for (const r of s.predicate.resources) {
      assert.deepEqual(Object.keys(r).sort(), ['algorithm', 'digest', 'name']);
      assert.equal(r.algorithm, 'sha256');
    }
    // Subject digest: SHA-256 over the raw resource digests in order (model_signing's Payload).
    const root = createHash('sha256');
    for (const r of s.predicate.resources) root.update(Buffer.from(r.digest, 'hex'));
    assert.equal(s.subject[0].digest.sha256, root.digest('hex'));
    // The resources are the digests of the package's parts.
    const mLen = bytes.readUInt32BE(12);
    const sLen = bytes.subarray(bytes.length - FOOTER_BYTES).readUInt32BE(8);
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(s.predicate.resources[0].digest, digest(bytes.subarray(16, 16 + mLen)));
    assert.equal(s.predicate.resources[1].digest, digest(readFileSync(FIXTURE_ONNX)));
    assert.equal(
      s.predicate.resources[2].digest,
      digest(bytes.subarray(0, bytes.length - FOOTER_BYTES - sLen)),
    );
  });

  it('PAE is the DSSE v1 encoding (spec example)', () => {
    // protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert.equal(
      pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString(),
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it('verifies a bundle signed by the reference implementation (model_signing 1.1.0, ECDSA P-384)', () => {
    const sig = parseSignature(readFileSync(join(REF, 'model.sig'), 'utf8'), 'model.sig');
    const pub = parsePublicKey(readFileSync(join(REF, 'signing-key-pub.pem'), 'utf8'), 'reference key');
    assert.equal(pub.algorithm, 'ecdsa-p384-sha384');
    assert.equal(sig.keyHint, pub.keyId, 'same key-hint rule as model_signing');
    const data = pae(IN_TOTO_PAYLOAD_TYPE, sig.payload);
    assert.ok(verifyBytes(pub.key, pub.algorithm, data, sig.signatures[0]!.sig));
    const tampered = Buffer.from(data);
    tampered[tampered.length - 5]! ^= 1;
    assert.ok(!verifyBytes(pub.key, pub.algorithm, tampered, sig.signatures[0]!.sig));
    const st = parseStatement(sig.payload, 'model.sig');
    assert.equal(st.predicateType, MODEL_SIGNING_PREDICATE_TYPE);
    for (const r of st.predicate.resources) {
      const file = readFileSync(join(REF, r.name));
      assert.equal(createHash('sha256').update(file).digest('hex'), r.digest, r.name);
    }
  });

  it('a verifier written independently in Python (cryptography) accepts our bundle and rejects a changed one', (c) => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import cryptography'], { encoding: 'utf8' });
    if (probe.status !== 0) return c.skip('python3 cryptography not available');
    writeFileSync(join(t.dir, 'bundle.json'), bundleText);
    writeFileSync(join(t.dir, 'key.pub'), publicKeyPem(key.publicKey));
    // The steps of model_signing's key verifier (sign_ec_key.Verifier + dsse_payload_to_manifest),
    // restated: the reference package itself is not installable offline here.
    const script = `
import base64, hashlib, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
b = json.load(open(sys.argv[1]))
pem = open(sys.argv[2], 'rb').read()
pub = serialization.load_pem_public_key(pem)
assert b['mediaType'] == 'application/vnd.dev.sigstore.bundle.v0.3+json'
raw = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
assert b['verificationMaterial']['publicKey']['hint'] == hashlib.sha256(raw).hexdigest()
env = b['dsseEnvelope']
payload = base64.b64decode(env['payload'])
if len(sys.argv) > 3: payload = payload.replace(b'credit-scorer', b'credit-scorex')
t = env['payloadType']
pae = b' '.join([f'DSSEv1 {len(t)} {t} {len(payload)}'.encode(), payload])
pub.verify(base64.b64decode(env['signatures'][0]['sig']), pae, ec.ECDSA(hashes.SHA256()))
s = json.loads(payload)
assert s['predicateType'] == 'https://model_signing/signature/v1.0'
h = hashlib.sha256()
for r in s['predicate']['resources']: h.update(bytes.fromhex(r['digest']))
assert h.hexdigest() == s['subject'][0]['digest']['sha256']
print('OK', s['subject'][0]['name'])
`;
    const ok = spawnSync(
      '/usr/bin/python3',
      ['-c', script, join(t.dir, 'bundle.json'), join(t.dir, 'key.pub')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'OK credit-scorer');
    const bad = spawnSync(
      '/usr/bin/python3',
      ['-c', script, join(t.dir, 'bundle.json'), join(t.dir, 'key.pub'), 'tamper'],
      {
        encoding: 'utf8',
      },
    );
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /InvalidSignature/);
  });
});
