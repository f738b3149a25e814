import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import type { Keyring } from '../../src/keys/index.js';
import {
  decryptProtectedModel,
  FOOTER_BYTES,
  loadProtectedModel,
  protectModel,
  readManifest,
  type SigningKey,
  type TrustPolicy,
} from '../../src/model/index.js';
import { FIXTURE_ONNX, generateSigningKey, makeKeyring, tempDir, trustFor } from '../model/helpers.js';

/**
 * `decryptProtectedModel` (the fine-tuning entry of src/model) verifies exactly as `loadProtectedModel`:
 * on every altered or mis-keyed package both refuse with the same code; on a good one it returns the
 * very bytes that were protected, and `wipe()` overwrites them.
 */
const t = tempDir('continuous-decrypt');
let kr: Keyring;
let otherKr: Keyring;
let key: SigningKey;
let trust: TrustPolicy;
let pkg: string;
const onnx = readFileSync(FIXTURE_ONNX);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(isBulwarkError(e), `expected a BulwarkError, got ${String(e)}`);
    return e.code;
  }
  return 'OK';
}

function altered(name: string, edit: (b: Buffer) => void): string {
  const b = Buffer.from(readFileSync(pkg));
  edit(b);
  const out = join(t.dir, name);
  writeFileSync(out, b);
  return out;
}

before(async () => {
  kr = await makeKeyring(join(t.dir, 'kr.json'));
  otherKr = await makeKeyring(join(t.dir, 'other.json'));
  key = generateSigningKey();
  trust = await trustFor(key, ['fraud-*']);
  pkg = join(t.dir, 'fraud.bwm');
  await protectModel(FIXTURE_ONNX, pkg, {
    keyring: kr,
    signingKey: key,
    name: 'fraud-detector',
    version: '1',
    lineage: {
      parent: {
        packageDigest: `sha256:${'cd'.repeat(32)}`,
        modelDigest: `sha256:${'ef'.repeat(32)}`,
        name: 'fraud-detector',
        version: '0',
      },
    },
  });
});

after(async () => {
  await kr.close();
  await otherKr.close();
  t.cleanup();
});

describe('decryptProtectedModel', () => {
  it('returns the protected ONNX bytes, verified, and wipe() overwrites them', async () => {
    const d = await decryptProtectedModel(pkg, { keyring: kr, trust });
    assert.ok(d.onnx.equals(onnx));
    assert.equal(d.manifest.onnx.sha256, createHash('sha256').update(onnx).digest('hex'));
    assert.equal(d.packageDigest, `sha256:${createHash('sha256').update(readFileSync(pkg)).digest('hex')}`);
    assert.equal(d.signer.keyId, key.keyId);
    assert.equal(d.manifest.lineage.parent?.version, '0');
    d.wipe();
    assert.ok(d.onnx.every((x) => x === 0));
    assert.equal((await readManifest(pkg)).lineage.parent?.name, 'fraud-detector');
  });

  it('refuses every altered or mis-keyed package with the same code as loadProtectedModel', async () => {
    const size = readFileSync(pkg).length;
    const sigLen = readFileSync(pkg)
      .subarray(size - FOOTER_BYTES)
      .readUInt32BE(8);
    const cases: [string, string, Keyring, TrustPolicy][] = [
      [
        'encrypted byte',
        altered('ct.bwm', (b) => {
          const m = b.readUInt32BE(12);
          b[16 + m + 100] = (b[16 + m + 100] as number) ^ 0x40;
        }),
        kr,
        trust,
      ],
      [
        'manifest byte',
        altered('m.bwm', (b) => {
          const i = b.indexOf('"fraud-detector"', 16);
          b[i + 2] = 'F'.charCodeAt(0);
        }),
        kr,
        trust,
      ],
      [
        'signature byte',
        altered('sig.bwm', (b) => {
          const at = size - FOOTER_BYTES - Math.floor(sigLen / 2);
          b[at] = (b[at] as number) ^ 0x01;
        }),
        kr,
        trust,
      ],
      ['unsigned', join(t.dir, 'unsigned.bwm'), kr, trust],
      ['wrong keyring', pkg, otherKr, trust],
      ['untrusted signer', pkg, kr, await trustFor(generateSigningKey())],
      ['not trusted for the name', pkg, kr, await trustFor(key, ['credit-*'])],
      ['truncated', altered('cut.bwm', (b) => b.fill(0, b.length - 4)), kr, trust],
      ['not a package', FIXTURE_ONNX, kr, trust],
    ];
    await protectModel(onnx, join(t.dir, 'unsigned.bwm'), { keyring: kr, name: 'fraud-x', version: '1' });
    const seen = new Set<string>();
    for (const [what, path, k, tr] of cases) {
      const viaLoad = await codeOf(
        loadProtectedModel(path, { keyring: k, trust: tr }).then((l) => l.model.close()),
      );
      const viaDecrypt = await codeOf(decryptProtectedModel(path, { keyring: k, trust: tr }));
      assert.notEqual(viaLoad, 'OK', what);
      assert.equal(viaDecrypt, viaLoad, what);
      seen.add(viaLoad);
    }
    // The cases cover the refusal codes of a keyed load.
    for (const c of [
      'ERR_DIGEST_MISMATCH',
      'ERR_PACKAGE_UNSIGNED',
      'ERR_KEY_NOT_FOUND',
      'ERR_SIGNER_UNTRUSTED',
      'ERR_FORMAT_UNSUPPORTED',
    ])
      assert.ok(seen.has(c), `${c} among ${[...seen].join(', ')}`);
  });
});
