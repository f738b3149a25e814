/**
 * The verification policy: which signer keys are trusted for which model names. A package loads only
 * when its signature verifies under a key of the policy whose `models` patterns match the model name
 * in the (signed) manifest. Keys come only from the policy, never from the package: a package signed
 * by anyone else, even validly, is refused with ERR_SIGNER_UNTRUSTED.
 *
 * ```yaml
 * version: 1
 * signers:
 *   - name: ml-platform             # who this key is, shown in reports
 *     publicKeyFile: signer.pub     # PEM SPKI, relative to this file (or publicKey: inline PEM)
 *     keyId: 3f9c…                  # optional: hex SHA-256 of the PEM, checked when given
 *     models: ["fraud-*", "credit"] # model names this key may sign; "*" matches any run of characters
 * ```
 */
import type { KeyObject } from 'node:crypto';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { BulwarkError, loadConfig, readInputFile, validateConfig } from '../core/index.js';
import { parsePublicKey, type SigningAlgorithm } from './sign.js';

/** One trusted signer. */
export interface TrustedSigner {
  name: string;
  keyId: string;
  algorithm: SigningAlgorithm;
  publicKey: KeyObject;
  /** Model-name patterns (`*` is a wildcard). */
  models: readonly string[];
}

/** Which keys are trusted for which models. */
export interface TrustPolicy {
  signers: readonly TrustedSigner[];
  /** Where it was read from (for messages). */
  source: string;
}

const policySchema = z.strictObject({
  version: z.literal(1),
  signers: z
    .array(
      z
        .strictObject({
          name: z.string().min(1).max(256),
          publicKey: z.string().min(1).optional(),
          publicKeyFile: z.string().min(1).optional(),
          keyId: z
            .string()
            .regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits')
            .optional(),
          models: z.array(z.string().min(1).max(256)).min(1),
        })
        .refine((s) => (s.publicKey === undefined) !== (s.publicKeyFile === undefined), {
          message: 'give exactly one of publicKey and publicKeyFile',
        }),
    )
    .min(1),
});

type PolicyDoc = z.infer<typeof policySchema>;

async function build(doc: PolicyDoc, source: string, baseDir: string): Promise<TrustPolicy> {
  const signers: TrustedSigner[] = [];
  for (const [i, s] of doc.signers.entries()) {
    const where = `${source}: signers[${i}] (${s.name})`;
    let pem = s.publicKey;
    if (pem === undefined) {
      const p = isAbsolute(s.publicKeyFile!) ? s.publicKeyFile! : resolve(baseDir, s.publicKeyFile!);
      pem = await readInputFile(p, 'public key', 'utf8');
    }
    const k = parsePublicKey(pem, where);
    if (s.keyId !== undefined && s.keyId !== k.keyId) {
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `${where}: keyId ${s.keyId} is not the id of that public key (${k.keyId})`,
        { details: { file: source } },
      );
    }
    signers.push({
      name: s.name,
      keyId: k.keyId,
      algorithm: k.algorithm,
      publicKey: k.key,
      models: s.models,
    });
  }
  return { signers, source };
}

/** Reads a trust policy file (YAML or JSON). */
export async function loadTrustPolicy(path: string): Promise<TrustPolicy> {
  const doc = await loadConfig(path, policySchema, 'trust policy');
  return build(doc, path, dirname(resolve(path)));
}

/** A trust policy from a value (e.g. built in code); relative key files resolve against `baseDir`. */
export async function trustPolicyFrom(
  value: unknown,
  source = '<trust policy>',
  baseDir = process.cwd(),
): Promise<TrustPolicy> {
  return build(validateConfig(value, policySchema, source), source, baseDir);
}

/** Whether `pattern` (with `*` wildcards) matches the whole of `name`. */
export function modelPatternMatches(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(name);
}

/** The signer of the policy with this key id, if any. */
export function signerByKeyId(policy: TrustPolicy, keyId: string): TrustedSigner | undefined {
  return policy.signers.find((s) => s.keyId === keyId);
}
