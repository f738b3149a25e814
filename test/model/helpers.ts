import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '../../src/keys/index.js';
import {
  generateSigningKey,
  publicKeyPem,
  type SigningKey,
  type TrustPolicy,
  trustPolicyFrom,
} from '../../src/model/index.js';
import { ROOT } from '../helpers/cli.js';

/** A small ONNX model made by PyTorch (test/ml/fixtures), one float input of 6 features. */
export const FIXTURE_ONNX = join(ROOT, 'test', 'ml', 'fixtures', 'torch-mlp.onnx');

export const PASS_ENV = 'BULWARK_TEST_MODEL_PASS';
process.env[PASS_ENV] = 'model package test passphrase';

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `bulwark-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A local keyring with key `data` (cheap scrypt: tests only). */
export async function makeKeyring(path: string): Promise<Keyring> {
  const kr = await Keyring.create(path, { secret: { env: PASS_ENV }, scrypt: { N: 1024, r: 8, p: 1 } });
  await kr.createKey('data');
  return kr;
}

export async function trustFor(
  key: SigningKey,
  models: string[] = ['*'],
  name = 'test-signer',
): Promise<TrustPolicy> {
  return trustPolicyFrom({ version: 1, signers: [{ name, publicKey: publicKeyPem(key.publicKey), models }] });
}

export { generateSigningKey };
