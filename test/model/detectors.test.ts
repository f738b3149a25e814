/**
 * Detector bundles inside model packages (manifest version 2): the bundle is encrypted after the model
 * in the same stream, its digest signed as the `detectors.json` resource; loading verifies it and hands
 * it back; a package without detectors stays version 1; a differentially private model refuses
 * detectors fitted on its training data.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBulwarkError, SeededRng } from '../../src/core/index.js';
import type { Keyring } from '../../src/keys/index.js';
import { encodeFooter, encodeHeader } from '../../src/model/format.js';
import {
  buildStatement,
  FOOTER_BYTES,
  inspectPackage,
  loadProtectedModel,
  type ModelManifest,
  protectModel,
  type SigningKey,
  signStatement,
  type TrustPolicy,
  verifyPackage,
} from '../../src/model/index.js';
import { parseManifest } from '../../src/model/manifest.js';
import { type DetectorBundleJson, fitDetectorBundle, loadDetectorBundle } from '../../src/robust/index.js';
import { FIXTURE_ONNX, generateSigningKey, makeKeyring, tempDir, trustFor } from './helpers.js';

const t = tempDir('model-det');
let kr: Keyring;
let key: SigningKey;
let trust: TrustPolicy;
let bundle: DetectorBundleJson;
let pkg: string;
const DATA_DIGEST = `sha256:${'cd'.repeat(32)}`;

/** Two seeded Gaussian classes in 6 features (the fixture model's width). */
function data(rows: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new SeededRng(seed);
  const x = new Float32Array(rows * 6);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    y[r] = r % 2;
    for (let j = 0; j < 6; j++) x[r * 6 + j] = rng.normal(y[r] === 1 && j < 3 ? 1.5 : 0, 1);
  }
  return { x, y };
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/**
 * A copy of `pkg` with its manifest replaced by `edit(manifest)` and re-signed by the trusted key over
 * `resources(manifest bytes, body)`: what a signer who made a mistake (or a defect) would produce.
 */
function resigned(
  name: string,
  edit: (m: ModelManifest) => ModelManifest,
  resources: (m: ModelManifest, manifestHex: string, bodyHex: string) => Parameters<typeof buildStatement>[1],
): string {
  const b = readFileSync(pkg);
  const mLen = b.readUInt32BE(12);
  const f = b.subarray(b.length - FOOTER_BYTES);
  const cLen = Number(f.readBigUInt64BE(0));
  const m = edit(JSON.parse(b.subarray(16, 16 + mLen).toString('utf8')) as ModelManifest);
  const mBytes = Buffer.from(JSON.stringify(m), 'utf8');
  const body = Buffer.concat([encodeHeader(mBytes.length), mBytes, b.subarray(16 + mLen, 16 + mLen + cLen)]);
  const hex = (x: Buffer) => createHash('sha256').update(x).digest('hex');
  const sig = Buffer.from(
    signStatement(buildStatement(m.model.name, resources(m, hex(mBytes), hex(body))), key),
    'utf8',
  );
  const out = join(t.dir, name);
  writeFileSync(out, Buffer.concat([body, sig, encodeFooter(cLen, sig.length)]));
  return out;
}

before(async () => {
  kr = await makeKeyring(join(t.dir, 'kr.json'));
  key = generateSigningKey();
  trust = await trustFor(key, ['fraud-*']);
  const { x, y } = data(800, 1);
  bundle = await fitDetectorBundle(x, y, 800, {
    classes: 2,
    seed: 4,
    datasetDigest: DATA_DIGEST,
    streamLength: 120,
    stateful: { k: 5, history: 100 },
    prada: { minQueries: 20, window: 100 },
  });
  pkg = join(t.dir, 'det.bwm');
  await protectModel(FIXTURE_ONNX, pkg, {
    keyring: kr,
    signingKey: key,
    name: 'fraud-det',
    version: '1',
    detectors: bundle,
    frameSize: 65536,
  });
});

after(async () => {
  await kr.close();
  t.cleanup();
});

describe('model package with detectors', () => {
  it('records the bundle in a version-2 manifest and signs its digest; its state is only in the encrypted part', async () => {
    const r = await inspectPackage(pkg);
    const json = Buffer.from(JSON.stringify(bundle), 'utf8');
    assert.equal(r.manifest.version, 2);
    assert.deepEqual(r.manifest.detectors, {
      sha256: createHash('sha256').update(json).digest('hex'),
      bytes: json.length,
      kinds: ['mahalanobis', 'stateful', 'prada'],
      fittedOn: { datasetDigest: DATA_DIGEST, fitRows: 400, calibrationRows: 400, seed: 4 },
    });
    const signed = r.statement?.predicate.resources.find((x) => x.name === 'detectors.json');
    assert.equal(signed?.digest, r.manifest.detectors?.sha256);
    // The Mahalanobis precision matrix is not in the file in the clear.
    const precision = (bundle.detectors.mahalanobis as unknown as { precision: string }).precision;
    assert.equal(readFileSync(pkg).includes(Buffer.from(precision.slice(0, 40))), false);
  });

  it('loads the model and hands back the verified bundle, which loads against the model', async () => {
    const l = await loadProtectedModel(pkg, { keyring: kr, trust });
    try {
      assert.deepEqual(l.detectors, bundle);
      const det = loadDetectorBundle(l.detectors, { features: 6, classes: 2 });
      assert.ok(det.mahalanobis && det.stateful && det.prada);
      // The loaded Mahalanobis detector works: rows far from the data are flagged, fresh clean ones
      // at about the calibrated 1 %.
      const far = Float32Array.from({ length: 6 * 20 }, () => 9);
      assert.equal(
        (await det.mahalanobis.detect(far, 20)).reduce((a, b) => a + b, 0),
        20,
      );
      const fresh = data(2000, 77);
      const fp = (await det.mahalanobis.detect(fresh.x, 2000)).reduce((a, b) => a + b, 0) / 2000;
      assert.ok(fp < 0.03, `fresh clean FPR ${fp}`);
      const out = await l.model.run(new Float32Array(6), 1, 6);
      assert.ok(Object.keys(out).length > 0);
    } finally {
      await l.model.close();
    }
    const v = await verifyPackage(pkg, { trust, keyring: kr });
    assert.equal(v.decrypted, true);
  });

  it('a package without detectors stays manifest version 1 and loads with detectors null', async () => {
    const plain = join(t.dir, 'plain.bwm');
    await protectModel(FIXTURE_ONNX, plain, {
      keyring: kr,
      signingKey: key,
      name: 'fraud-plain',
      version: '1',
    });
    const l = await loadProtectedModel(plain, { keyring: kr, trust });
    try {
      assert.equal(l.manifest.version, 1);
      assert.equal(l.manifest.detectors, undefined);
      assert.equal(l.detectors, null);
    } finally {
      await l.model.close();
    }
  });

  it('refuses a manifest that drops the signed bundle, and a bundle the statement does not sign', async () => {
    const dropped = resigned(
      'dropped.bwm',
      (m) => {
        const { detectors: _d, ...rest } = m;
        return { ...rest, version: 1 } as ModelManifest;
      },
      (m, mh, bh) => [
        { name: 'manifest.json', algorithm: 'sha256', digest: mh },
        { name: 'model.onnx', algorithm: 'sha256', digest: m.onnx.sha256 },
        { name: 'package.body', algorithm: 'sha256', digest: bh },
        { name: 'detectors.json', algorithm: 'sha256', digest: 'ab'.repeat(32) },
      ],
    );
    await rejectsWith(verifyPackage(dropped, { trust }), 'ERR_DIGEST_MISMATCH', /detector digest/);
    const unsigned = resigned(
      'unsigned-bundle.bwm',
      (m) => m,
      (m, mh, bh) => [
        { name: 'manifest.json', algorithm: 'sha256', digest: mh },
        { name: 'model.onnx', algorithm: 'sha256', digest: m.onnx.sha256 },
        { name: 'package.body', algorithm: 'sha256', digest: bh },
      ],
    );
    await rejectsWith(verifyPackage(unsigned, { trust }), 'ERR_DIGEST_MISMATCH', /detector digest/);
  });

  it('refuses a signed package whose bundle differs from its signed digest (checked after decryption)', async () => {
    // A signer's defect: the manifest and statement name another bundle digest than the bytes inside.
    const other = 'ef'.repeat(32);
    const wrong = resigned(
      'wrong-digest.bwm',
      (m) => ({
        ...m,
        detectors: { ...(m.detectors as NonNullable<ModelManifest['detectors']>), sha256: other },
      }),
      (m, mh, bh) => [
        { name: 'manifest.json', algorithm: 'sha256', digest: mh },
        { name: 'model.onnx', algorithm: 'sha256', digest: m.onnx.sha256 },
        { name: 'package.body', algorithm: 'sha256', digest: bh },
        { name: 'detectors.json', algorithm: 'sha256', digest: other },
      ],
    );
    await verifyPackage(wrong, { trust }); // digests of manifest and body agree: only decryption can tell
    await rejectsWith(
      loadProtectedModel(wrong, { keyring: kr, trust }),
      'ERR_DIGEST_MISMATCH',
      /decrypted detector bundle/,
    );
  });

  it('manifest versions: detectors need version 2; versions other than 1, 2, 3 and 4 are refused', () => {
    const m = JSON.parse(
      readFileSync(pkg)
        .subarray(16, 16 + readFileSync(pkg).readUInt32BE(12))
        .toString('utf8'),
    ) as ModelManifest;
    assert.throws(
      () => parseManifest({ ...m, version: 1 }, 'x.bwm'),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_PACKAGE_INVALID') && /detectors need manifest version 2/.test(e.message),
    );
    assert.throws(
      () => parseManifest({ ...m, version: 5 }, 'x.bwm'),
      (e: unknown) => isBulwarkError(e, 'ERR_FORMAT_VERSION') && /reads 1, 2, 3 and 4/.test(e.message),
    );
    // Version 4 is read (it adds the detectors' protected data, which this bundle has not).
    assert.equal(parseManifest({ ...m, version: 4 }, 'x.bwm').version, 4);
  });

  it('refuses what is not a detector bundle', async () => {
    for (const bad of [
      42,
      { format: 'bulwark.detector' },
      { format: 'bulwark.detectors', detectors: {} },
      { ...bundle, features: 7 }, // made for another model's width
    ]) {
      await rejectsWith(
        protectModel(FIXTURE_ONNX, join(t.dir, 'bad.bwm'), {
          keyring: kr,
          signingKey: key,
          name: 'fraud-bad',
          version: '1',
          detectors: bad,
        }),
        'ERR_DETECTOR_STATE',
      );
    }
  });

  it('a differentially private model refuses detectors fitted on its training data, on data they cannot name, or when its own training data is not named', async () => {
    const privacy = { method: 'dp-sgd', epsilon: 1, delta: 1e-5 };
    const dp = (detectors: unknown, datasetDigest: string | undefined) =>
      protectModel(FIXTURE_ONNX, join(t.dir, 'dp.bwm'), {
        keyring: kr,
        signingKey: key,
        name: 'fraud-dp',
        version: '1',
        lineage: { privacy, ...(datasetDigest !== undefined ? { datasetDigest } : {}) },
        acceptClaims: true,
        detectors,
        noClobber: false,
      });
    await rejectsWith(dp(bundle, DATA_DIGEST), 'ERR_DP_UNACCOUNTED', /private training data/);
    const { fittedOn: _f, ...anonymous } = bundle;
    await rejectsWith(dp(anonymous, DATA_DIGEST), 'ERR_DP_UNACCOUNTED', /does not say which data/);
    // A lineage that does not name the training data (protect without --dataset): the bundle's data
    // cannot be told apart from it, so even a bundle fitted on the training file would pass. Refused.
    await rejectsWith(dp(bundle, undefined), 'ERR_DP_UNACCOUNTED', /does not name its training data/);
    assert.throws(() => readFileSync(join(t.dir, 'dp.bwm')), /ENOENT/);
    // Fitted on other (held-out) data: allowed, and the manifest says which.
    const r = await dp(bundle, `sha256:${'01'.repeat(32)}`);
    assert.equal(r.manifest.detectors?.fittedOn?.datasetDigest, DATA_DIGEST);
    assert.equal(r.manifest.lineage.datasetDigest, `sha256:${'01'.repeat(32)}`);
  });
});
