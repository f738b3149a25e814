/**
 * The default model source: a protected model package (src/model) made from the model trained in the
 * fixture, verified against a trust policy and decrypted with the keyring before the gateway serves it.
 * A package signed by a key the trust policy does not list is refused at start (fail closed).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../../src/audit/index.js';
import { isBulwarkError } from '../../src/core/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import { Gateway } from '../../src/gateway/server.js';
import { Keyring } from '../../src/keys/index.js';
import { generateSigningKey, protectModel, publicKeyPem } from '../../src/model/index.js';
import {
  detectorBundleToJson,
  MahalanobisDetector,
  PradaDetector,
  StatefulDetector,
} from '../../src/robust/index.js';
import { type Fixture, fixture, SCHEMA, startGateway } from './gateway-fixtures.js';

const PASS_ENV = 'BULWARK_TEST_GATEWAY_PASS';
process.env[PASS_ENV] = 'gateway package test passphrase';

describe('gateway: protected model package (default source)', () => {
  let f: Fixture;
  let gw: Gateway | undefined;
  let pkg: string;
  let pkgWithDetectors: string;
  let packageDigest: string;
  let otherModelPkg: string;

  before(async () => {
    f = await fixture();
    const kr = await Keyring.create(join(f.dir, 'pkg-keyring.json'), {
      secret: { env: PASS_ENV },
      scrypt: { N: 1024, r: 8, p: 1 },
    });
    await kr.createKey('data');
    const key = generateSigningKey();
    pkg = join(f.dir, 'fraud.bwm');
    const r = await protectModel(join(f.dir, 'fraud.onnx'), pkg, {
      keyring: kr,
      signingKey: key,
      name: 'fraud',
      version: '3',
      schema: SCHEMA,
    });
    packageDigest = r.packageDigest;
    // The same model with the fixture's three detectors inside the package (manifest version 2).
    const saved = (n: string) => JSON.parse(readFileSync(join(f.dir, `${n}.json`), 'utf8')) as unknown;
    const bundle = detectorBundleToJson(
      {
        mahalanobis: MahalanobisDetector.load(saved('mahalanobis')),
        stateful: StatefulDetector.load(saved('stateful')),
        prada: PradaDetector.load(saved('prada')),
      },
      { features: 5, classes: 2 },
    );
    pkgWithDetectors = join(f.dir, 'fraud-det.bwm');
    await protectModel(join(f.dir, 'fraud.onnx'), pkgWithDetectors, {
      keyring: kr,
      signingKey: key,
      name: 'fraud',
      version: '4',
      schema: SCHEMA,
      detectors: bundle,
    });
    // Another model, validly signed by the same key (trusted for it in trust-wide.yaml only).
    otherModelPkg = join(f.dir, 'fraud-old.bwm');
    await protectModel(join(f.dir, 'fraud.onnx'), otherModelPkg, {
      keyring: kr,
      signingKey: key,
      name: 'fraud-old',
      version: '1',
      schema: SCHEMA,
    });
    await kr.close();
    const trust = (pem: string, models = '"fraud"') =>
      `version: 1\nsigners:\n  - name: ci\n    models: [${models}]\n    publicKey: |\n${pem
        .trim()
        .split('\n')
        .map((l) => `      ${l}`)
        .join('\n')}\n`;
    writeFileSync(join(f.dir, 'trust.yaml'), trust(publicKeyPem(key.publicKey)));
    writeFileSync(join(f.dir, 'trust-other.yaml'), trust(publicKeyPem(generateSigningKey().publicKey)));
    writeFileSync(join(f.dir, 'trust-wide.yaml'), trust(publicKeyPem(key.publicKey), '"fraud*"'));
  });
  after(async () => {
    await gw?.close();
  });

  function config(
    trust: string,
    extra: {
      package?: string;
      detectors?: Record<string, string>;
      packageModel?: string;
      digest?: string;
    } = {},
  ) {
    const base = f.config();
    const m = base.models[0] as (typeof base.models)[number];
    return f.config({
      models: [
        {
          name: 'fraud',
          package: extra.package ?? pkg,
          keyring: join(f.dir, 'pkg-keyring.json'),
          keyringPassphrase: { env: PASS_ENV },
          trust: join(f.dir, trust),
          output: m.output,
          detectors: extra.detectors ?? {},
          ...(extra.packageModel ? { packageModel: extra.packageModel } : {}),
          ...(extra.digest ? { digest: extra.digest } : {}),
        },
      ],
    });
  }

  it('refuses a validly signed package of another model under this name, unless packageModel names it', async () => {
    await assert.rejects(
      Gateway.check({ config: config('trust-wide.yaml', { package: otherModelPkg }) }),
      (e: unknown) =>
        isBulwarkError(e) &&
        e.code === 'ERR_CONFIG_INVALID' &&
        /models\.fraud: the package is model "fraud-old", not "fraud" \(set packageModel/.test(e.message),
    );
    const r = await Gateway.check({
      config: config('trust-wide.yaml', { package: otherModelPkg, packageModel: 'fraud-old' }),
    });
    assert.equal(r.models[0]?.name, 'fraud');
  });

  it('a digest pin refuses any other package at the path, even validly signed (a rollback or a swap)', async () => {
    // The pin names version 3; version 4 of the same model, signed by the same trusted key, is at the path.
    await assert.rejects(
      Gateway.check({ config: config('trust.yaml', { package: pkgWithDetectors, digest: packageDigest }) }),
      (e: unknown) =>
        isBulwarkError(e) && e.code === 'ERR_DIGEST_MISMATCH' && /models\.fraud\.digest: /.test(e.message),
    );
    const r = await Gateway.check({ config: config('trust.yaml', { digest: packageDigest }) });
    assert.equal(r.models[0]?.version, '3');
  });

  it('serves the package: version and digests from the manifest, model.loaded recorded in the audit log', async () => {
    const c = config('trust.yaml');
    gw = await startGateway(c);
    const served = gw.models.get('fraud');
    assert.equal(served?.version, '3');
    assert.equal(served?.loaded.origin, 'package');
    assert.equal(served?.loaded.packageDigest, packageDigest);
    const client = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token(),
    });
    const out = await client.inferRows('fraud', [{ amount: 120.5, age: 39, kind: 'B' }], { version: '3' });
    assert.equal(out.model_version, '3');
    client.close();
    await gw.close();
    gw = undefined;
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: c.audit.store } });
    const entries = await log.tail(50);
    const loaded = entries.find((e) => e.type === 'model.loaded');
    assert.ok(loaded, 'model.loaded recorded');
    assert.equal((loaded.data as { packageDigest: string }).packageDigest, packageDigest);
    const pred = entries.find((e) => e.type === 'prediction');
    assert.ok(pred, 'prediction recorded');
    assert.equal((pred.data as { packageDigest: string }).packageDigest, packageDigest);
    await log.close();
  });

  it('refuses to start when the package signer is not trusted', async () => {
    await assert.rejects(startGateway(config('trust-other.yaml')), (e: unknown) => {
      assert.ok(isBulwarkError(e), String(e));
      assert.match(e.code, /^ERR_MODEL_|^ERR_PACKAGE_|SIGN|TRUST/);
      return true;
    });
  });

  it('runs the detectors the package carries: an out-of-distribution row is refused, no detector file configured', async () => {
    const g = await startGateway(config('trust.yaml', { package: pkgWithDetectors }));
    try {
      const served = g.models.get('fraud');
      assert.ok(served?.mahalanobis && served.stateful && served.prada, 'all three detectors loaded');
      const client = new GatewayClient({
        url: g.url,
        ca: f.ca.pem,
        servername: 'localhost',
        token: await f.token(),
      });
      const ok = await client.inferRows('fraud', [f.rows[0] as never]);
      assert.equal(ok.model_version, '4');
      await assert.rejects(
        client.inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }]),
        (e: unknown) => {
          assert.equal((e as { code?: string }).code, 'ERR_GATEWAY_DETECTED', String(e));
          assert.match(String((e as Error).message), /flagged by the mahalanobis detector/);
          return true;
        },
      );
      client.close();
      const text = await (await fetch(g.metricsUrl as string)).text();
      assert.match(text, /gateway_detections_total\{model="fraud",detector="mahalanobis"\} 1/);
    } finally {
      await g.close();
    }
  });

  it('refuses a detector file that would replace one the package carries (signed state for unsigned)', async () => {
    await assert.rejects(
      startGateway(
        config('trust.yaml', {
          package: pkgWithDetectors,
          detectors: { mahalanobis: join(f.dir, 'mahalanobis.json') },
        }),
      ),
      (e: unknown) => {
        assert.ok(isBulwarkError(e), String(e));
        assert.equal(e.code, 'ERR_CONFIG_INVALID');
        assert.match(
          e.message,
          /models\.fraud\.detectors\.mahalanobis: the model package carries a signed mahalanobis detector/,
        );
        return true;
      },
    );
  });
});
