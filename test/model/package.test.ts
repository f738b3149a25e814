import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import type { Keyring } from '../../src/keys/index.js';
import { OnnxRuntimeModel } from '../../src/ml/index.js';
import {
  buildStatement,
  FOOTER_BYTES,
  inspectPackage,
  loadProtectedModel,
  type ModelManifest,
  protectModel,
  readManifest,
  type SigningKey,
  signingKeyFromPem,
  signStatement,
  type TrustPolicy,
  trustPolicyFrom,
  verifyPackage,
} from '../../src/model/index.js';
import { FIXTURE_ONNX, generateSigningKey, makeKeyring, tempDir, trustFor } from './helpers.js';

const t = tempDir('model-pkg');
let kr: Keyring;
let otherKr: Keyring;
let key: SigningKey;
let trust: TrustPolicy;
let pkg: string;
let manifest: ModelManifest;
const onnx = readFileSync(FIXTURE_ONNX);

/** Asserts that `p` rejects with a BulwarkError of `code`; returns the error. */
async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error> {
  let caught: Error | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    caught = e;
    return true;
  });
  return caught as Error;
}

/** Writes a copy of the package with `edit` applied to its bytes. */
function altered(name: string, edit: (b: Buffer) => Buffer | undefined): string {
  const b = Buffer.from(readFileSync(pkg));
  const out = join(t.dir, name);
  writeFileSync(out, edit(b) ?? b);
  return out;
}

/**
 * Writes a 17 MB ONNX model (one MatMul with a seeded 256x16640 weight) with Python's onnx package;
 * returns why not when that is unavailable, or null.
 */
function bigOnnx(path: string): string | null {
  const py = spawnSync(
    '/usr/bin/python3',
    [
      '-c',
      `import numpy as np, onnx, sys
from onnx import helper, TensorProto, numpy_helper
w = np.random.default_rng(3).standard_normal((256, 16640)).astype(np.float32)
g = helper.make_graph([helper.make_node('MatMul', ['x', 'W'], ['y'])], 'g',
    [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 256])],
    [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 16640])], [numpy_helper.from_array(w, 'W')])
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); m.ir_version = 8
open(sys.argv[1], 'wb').write(m.SerializeToString())`,
      path,
    ],
    { encoding: 'utf8' },
  );
  return py.status === 0 ? null : `python onnx/numpy not available: ${py.stderr.slice(0, 200)}`;
}

function layoutOf(b: Buffer): {
  mOff: number;
  mLen: number;
  cOff: number;
  cLen: number;
  sOff: number;
  sLen: number;
} {
  const mLen = b.readUInt32BE(12);
  const f = b.subarray(b.length - FOOTER_BYTES);
  const cLen = Number(f.readBigUInt64BE(0));
  const sLen = f.readUInt32BE(8);
  return { mOff: 16, mLen, cOff: 16 + mLen, cLen, sOff: 16 + mLen + cLen, sLen };
}

before(async () => {
  kr = await makeKeyring(join(t.dir, 'kr.json'));
  otherKr = await makeKeyring(join(t.dir, 'other.json'));
  key = generateSigningKey();
  trust = await trustFor(key, ['fraud-*']);
  pkg = join(t.dir, 'fraud.bwm');
  const r = await protectModel(FIXTURE_ONNX, pkg, {
    keyring: kr,
    signingKey: key,
    name: 'fraud-detector',
    version: '2.1.0',
    description: 'test model',
    lineage: {
      datasetDigest: `sha256:${'ab'.repeat(32)}`,
      privacy: { method: 'dp-sgd', epsilon: 0.5, delta: 1e-5, accountant: 'rdp' },
      adversarial: { method: 'pgd', eps: 0.1, steps: 10 },
      trainingRun: { eventId: 'evt-42', index: 7 },
    },
    // No audit record backs these claims (test/model/claims.test.ts): packaged as unchecked claims.
    acceptClaims: true,
    frameSize: 65536,
  });
  manifest = r.manifest;
});

after(async () => {
  await kr.close();
  await otherKr.close();
  t.cleanup();
});

describe('model package: round trip', () => {
  it('loads the model it protected: same predictions as the plain ONNX, digest of the whole file', async () => {
    const loaded = await loadProtectedModel(pkg, { keyring: kr, trust });
    const plain = await OnnxRuntimeModel.create(onnx);
    try {
      const x = Float32Array.from({ length: 3 * 6 }, (_, i) => Math.sin(i) * 2);
      const a = await loaded.model.run(x, 3, 6);
      const b = await plain.run(x, 3, 6);
      assert.deepEqual(Object.keys(a), Object.keys(b));
      for (const k of Object.keys(a)) assert.deepEqual(a[k]!.data, b[k]!.data);
      assert.equal(
        loaded.packageDigest,
        `sha256:${createHash('sha256').update(readFileSync(pkg)).digest('hex')}`,
      );
      assert.deepEqual(loaded.signer, { keyId: key.keyId, algorithm: 'ecdsa-p256-sha256' });
      assert.deepEqual(loaded.manifest, manifest);
    } finally {
      await loaded.model.close();
      await plain.close();
    }
  });

  it('keeps the manifest readable without a key, and the model only in encrypted form', async () => {
    assert.deepEqual(await readManifest(pkg), manifest);
    assert.equal(manifest.onnx.sha256, createHash('sha256').update(onnx).digest('hex'));
    assert.equal(manifest.onnx.bytes, onnx.length);
    assert.equal(manifest.model.name, 'fraud-detector');
    assert.equal(manifest.lineage.privacy?.epsilon, 0.5);
    assert.equal(manifest.lineage.trainingRun?.eventId, 'evt-42');
    assert.deepEqual(manifest.lineage.evidence, {
      privacy: { status: 'claimed', source: 'packager' },
      adversarial: { status: 'claimed', source: 'packager' },
    });
    assert.equal(manifest.version, 3);
    assert.equal(manifest.input.features, 6);
    const b = readFileSync(pkg);
    // No 64-byte window of the ONNX appears in the package.
    for (let i = 0; i + 64 <= onnx.length; i += 256) assert.equal(b.indexOf(onnx.subarray(i, i + 64)), -1);
    const ins = await inspectPackage(pkg);
    assert.equal(ins.signerKeyId, key.keyId);
    assert.equal(ins.layout.fileBytes, b.length);
  });

  it('loads a model large enough for the digest worker (17 MB), same outputs as the plain ONNX', async (c) => {
    const skip = bigOnnx(join(t.dir, 'big.onnx'));
    if (skip) return c.skip(skip);
    const big = readFileSync(join(t.dir, 'big.onnx'));
    assert.ok(big.length > 16 << 20);
    const out = join(t.dir, 'big.bwm');
    await protectModel(big, out, { keyring: kr, signingKey: key, name: 'fraud-big', version: '1' });
    const fast = await loadProtectedModel(out, { keyring: kr, trust, checkModelDigest: false });
    await fast.model.close();
    const loaded = await loadProtectedModel(out, { keyring: kr, trust });
    const plain = await OnnxRuntimeModel.create(big);
    try {
      const x = Float32Array.from({ length: 256 }, (_, i) => Math.cos(i));
      assert.deepEqual(
        (await loaded.model.run(x, 1, 256))['y']!.data,
        (await plain.run(x, 1, 256))['y']!.data,
      );
    } finally {
      await loaded.model.close();
      await plain.close();
    }
  });

  it('decrypts with frames on the thread pool: same model as on one thread; a frame failing there is refused', async (c) => {
    const src = join(t.dir, 'big-par.onnx');
    const skip = bigOnnx(src);
    if (skip) return c.skip(skip);
    const big = readFileSync(src);
    const out = join(t.dir, 'big-par.bwm');
    // 64 KiB frames: 260 of them, most opened by the pool.
    await protectModel(big, out, {
      keyring: kr,
      signingKey: key,
      name: 'fraud-par',
      version: '1',
      frameSize: 65536,
    });
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
    const ys: Float32Array[] = [];
    for (const decryptThreads of [1, 2]) {
      const m = await loadProtectedModel(out, { keyring: kr, trust, decryptThreads });
      try {
        ys.push((await m.model.run(x, 1, 256))['y']!.data as Float32Array);
      } finally {
        await m.model.close();
      }
    }
    assert.deepEqual(ys[0], ys[1]);
    // A trusted signer's package whose ciphertext was altered before signing (digests and signature
    // all valid): only frame authentication can catch it, and it must, on the thread pool, before
    // any session is created, with the frame named.
    const b = Buffer.from(readFileSync(out));
    const l = layoutOf(b);
    const frame = 200;
    b[l.cOff + 600 + frame * (65536 + 29) + 100]! ^= 0x01;
    const body = b.subarray(0, l.sOff);
    const m = JSON.parse(b.subarray(l.mOff, l.mOff + l.mLen).toString('utf8')) as ModelManifest;
    const statement = buildStatement(m.model.name, [
      {
        name: 'manifest.json',
        algorithm: 'sha256',
        digest: createHash('sha256')
          .update(b.subarray(l.mOff, l.mOff + l.mLen))
          .digest('hex'),
      },
      { name: 'model.onnx', algorithm: 'sha256', digest: m.onnx.sha256 },
      { name: 'package.body', algorithm: 'sha256', digest: createHash('sha256').update(body).digest('hex') },
    ]);
    const sig = Buffer.from(signStatement(statement, key), 'utf8');
    const footer = Buffer.from(b.subarray(b.length - FOOTER_BYTES));
    footer.writeUInt32BE(sig.length, 8);
    const bad = join(t.dir, 'big-par-bad.bwm');
    writeFileSync(bad, Buffer.concat([body, sig, footer]));
    for (const decryptThreads of [2, 1]) {
      const e = await rejectsWith(
        loadProtectedModel(bad, { keyring: kr, trust, decryptThreads }),
        'ERR_CIPHERTEXT_TAMPERED',
      );
      assert.match(e.message, /frame \d+ fails authentication/);
    }
    await rejectsWith(verifyPackage(bad, { trust, keyring: kr }), 'ERR_CIPHERTEXT_TAMPERED');
  });

  it('verifies with Ed25519 keys too', async () => {
    const ed = generateSigningKey('ed25519');
    const out = join(t.dir, 'ed.bwm');
    await protectModel(onnx, out, { keyring: kr, signingKey: ed, name: 'fraud-ed', version: '1' });
    const v = await verifyPackage(out, { trust: await trustFor(ed), keyring: kr });
    assert.equal(v.signer.algorithm, 'ed25519');
    assert.equal(v.decrypted, true);
  });

  it('reads PEM keys and refuses unsupported ones', () => {
    const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' });
    assert.equal(signingKeyFromPem(pem).keyId, key.keyId);
    assert.throws(
      () => signingKeyFromPem('not a key'),
      (e: unknown) => isBulwarkError(e, 'ERR_SIGNING_KEY_INVALID'),
    );
  });

  it('a trust policy given the private signing key instead of its public key is refused', async () => {
    const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await assert.rejects(
      trustPolicyFrom({ version: 1, signers: [{ name: 'ci', publicKey: pem, models: ['*'] }] }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_SIGNING_KEY_INVALID') && /private key/.test((e as Error).message),
    );
  });
});

describe('model package: refusals, each with its code', () => {
  it('an unsigned package: ERR_PACKAGE_UNSIGNED', async () => {
    const out = join(t.dir, 'unsigned.bwm');
    await protectModel(onnx, out, { keyring: kr, name: 'fraud-x', version: '1' });
    await rejectsWith(loadProtectedModel(out, { keyring: kr, trust }), 'ERR_PACKAGE_UNSIGNED');
    assert.equal((await inspectPackage(out)).signerKeyId, null);
  });

  it('a signature byte changed: ERR_SIGNATURE_INVALID', async () => {
    const out = altered('badsig.bwm', (b) => {
      const { sOff, sLen } = layoutOf(b);
      const j = JSON.parse(b.subarray(sOff, sOff + sLen).toString('utf8'));
      const sig = Buffer.from(j.dsseEnvelope.signatures[0].sig, 'base64');
      sig[sig.length - 3]! ^= 0x01;
      j.dsseEnvelope.signatures[0].sig = sig.toString('base64');
      const text = Buffer.from(JSON.stringify(j));
      assert.equal(text.length, sLen);
      text.copy(b, sOff);
      return b;
    });
    await rejectsWith(loadProtectedModel(out, { keyring: kr, trust }), 'ERR_SIGNATURE_INVALID');
  });

  it('re-signed by another key claiming the trusted key id: ERR_SIGNATURE_INVALID', async () => {
    const attacker = generateSigningKey();
    const out = join(t.dir, 'forged.bwm');
    await protectModel(onnx, out, {
      keyring: kr,
      signingKey: { ...attacker, keyId: key.keyId },
      name: 'fraud-detector',
      version: '9',
    });
    await rejectsWith(loadProtectedModel(out, { keyring: kr, trust }), 'ERR_SIGNATURE_INVALID');
  });

  it('signed by a key the policy does not list: ERR_SIGNER_UNTRUSTED', async () => {
    const other = await trustFor(generateSigningKey());
    await rejectsWith(loadProtectedModel(pkg, { keyring: kr, trust: other }), 'ERR_SIGNER_UNTRUSTED');
  });

  it('a trusted key, but not for this model name: ERR_SIGNER_UNTRUSTED', async () => {
    const narrow = await trustFor(key, ['credit-*', 'fraud-detector-v*']);
    await rejectsWith(verifyPackage(pkg, { trust: narrow }), 'ERR_SIGNER_UNTRUSTED');
  });

  it('an encrypted byte changed: ERR_DIGEST_MISMATCH before any decryption', async () => {
    const out = altered('ct.bwm', (b) => {
      const { cOff, cLen } = layoutOf(b);
      b[cOff + Math.floor(cLen / 2)]! ^= 0x40;
      return b;
    });
    // Even a keyring that could not decrypt it gives the digest error: nothing is decrypted first.
    await rejectsWith(loadProtectedModel(out, { keyring: otherKr, trust }), 'ERR_DIGEST_MISMATCH');
  });

  it('a manifest byte changed (the version): ERR_DIGEST_MISMATCH', async () => {
    const out = altered('manifest.bwm', (b) => {
      const { mOff, mLen } = layoutOf(b);
      const m = b.subarray(mOff, mOff + mLen);
      const i = m.indexOf('"2.1.0"');
      assert.ok(i > 0);
      m[i + 1] = '9'.charCodeAt(0);
      return b;
    });
    await rejectsWith(verifyPackage(out, { trust }), 'ERR_DIGEST_MISMATCH');
  });

  it('the wrong keyring: ERR_KEY_NOT_FOUND; a destroyed key: ERR_KEY_DESTROYED', async () => {
    await rejectsWith(loadProtectedModel(pkg, { keyring: otherKr, trust }), 'ERR_KEY_NOT_FOUND');
    const k2 = await makeKeyring(join(t.dir, 'k2.json'));
    try {
      const out = join(t.dir, 'shred.bwm');
      await protectModel(onnx, out, { keyring: k2, signingKey: key, name: 'fraud-s', version: '1' });
      await k2.destroy('data', 1);
      await rejectsWith(loadProtectedModel(out, { keyring: k2, trust }), 'ERR_KEY_DESTROYED');
    } finally {
      await k2.close();
    }
  });

  it('truncated, appended to, or not a package at all', async () => {
    const cut = altered('cut.bwm', (b) => b.subarray(0, b.length - 100));
    await rejectsWith(verifyPackage(cut, { trust }), 'ERR_PACKAGE_INVALID');
    const extra = altered('extra.bwm', (b) => Buffer.concat([b, Buffer.from('x')]));
    await rejectsWith(verifyPackage(extra, { trust }), 'ERR_PACKAGE_INVALID');
    await rejectsWith(verifyPackage(FIXTURE_ONNX, { trust }), 'ERR_FORMAT_UNSUPPORTED');
    const v2 = altered('v2.bwm', (b) => {
      b[8] = 2;
      return b;
    });
    await rejectsWith(readManifest(v2), 'ERR_FORMAT_VERSION');
  });

  it('two packages spliced (body of one, signature of another): ERR_DIGEST_MISMATCH', async () => {
    const other = join(t.dir, 'other.bwm');
    await protectModel(onnx, other, {
      keyring: kr,
      signingKey: key,
      name: 'fraud-detector',
      version: '2.1.0',
      frameSize: 65536,
    });
    const a = readFileSync(pkg);
    const b = readFileSync(other);
    const la = layoutOf(a);
    const lb = layoutOf(b);
    // Same manifest length is not guaranteed (timestamps); splice body of b with signature of a.
    const sigA = a.subarray(la.sOff, la.sOff + la.sLen);
    const footer = Buffer.alloc(FOOTER_BYTES);
    b.subarray(b.length - FOOTER_BYTES).copy(footer);
    footer.writeUInt32BE(sigA.length, 8);
    const out = join(t.dir, 'spliced.bwm');
    writeFileSync(out, Buffer.concat([b.subarray(0, lb.sOff), sigA, footer]));
    await rejectsWith(verifyPackage(out, { trust }), 'ERR_DIGEST_MISMATCH');
  });
});

describe('trust policy', () => {
  it('matches model names with * wildcards and checks a stated key id', async () => {
    const { modelPatternMatches } = await import('../../src/model/index.js');
    assert.ok(modelPatternMatches('fraud-*', 'fraud-detector'));
    assert.ok(!modelPatternMatches('fraud-*', 'xfraud-detector'));
    assert.ok(modelPatternMatches('team/*', 'team/a.b'));
    assert.ok(!modelPatternMatches('a.b', 'axb'));
    await assert.rejects(
      trustPolicyFrom({ version: 1, signers: [{ name: 'x', publicKey: 'nope', models: ['*'] }] }),
      (e: unknown) => isBulwarkError(e, 'ERR_SIGNING_KEY_INVALID'),
    );
    await assert.rejects(
      trustPolicyFrom({
        version: 1,
        signers: [{ name: 'x', publicKey: 'k', publicKeyFile: 'f', models: ['*'] }],
      }),
      (e: unknown) => isBulwarkError(e, 'ERR_CONFIG_INVALID'),
    );
  });

  it('the statement over the resources is deterministic in resource order', () => {
    const r = [
      { name: 'b', algorithm: 'sha256' as const, digest: '11'.repeat(32) },
      { name: 'a', algorithm: 'sha256' as const, digest: '22'.repeat(32) },
    ];
    assert.deepEqual(buildStatement('m', r), buildStatement('m', [...r].reverse()));
  });
});
