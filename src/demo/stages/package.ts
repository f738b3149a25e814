import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isBulwarkError, sha256Digest, writeFileAtomic } from '../../core/index.js';
import { Keyring } from '../../keys/index.js';
import {
  generateSigningKey,
  inspectPackage,
  loadProtectedModel,
  loadTrustPolicy,
  type ModelLineage,
  protectModel,
  scanModel,
  verifyPackage,
  writeSigningKey,
} from '../../model/index.js';
import type { Block } from '../../report/index.js';
import type { DemoStage } from '../stage.js';

const PASSPHRASE_FILE = 'DEMO-ONLY-keyring-passphrase.txt';
const MODEL_NAME = 'fraud-baseline';

/** The refusal a check produced, as `CODE` (or `accepted` when it did not refuse). */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted (a defect)';
  } catch (e) {
    if (isBulwarkError(e)) return e.code;
    throw e;
  }
}

/**
 * Stage: package the baseline model as a protected model package (issue #7). A keyring key wraps the
 * model's data key, a fresh ECDSA P-256 key signs the OpenSSF model-signing statement, a trust policy
 * names that key for `fraud-*` models; then the package is verified and loaded in memory as the
 * gateway does, its predictions compared with the baseline network's, and the refusals shown: an
 * altered byte, an untrusted signer, a pickle with a code-execution payload.
 */
export const packageStage: DemoStage = {
  id: 'package',
  title: 'Protected model package: encrypted, signed, verified before loading',
  async run(ctx) {
    const baseline = ctx.state.baseline;
    if (!baseline || !ctx.state.schema) throw new Error('the package stage needs the baseline stage');
    const dir = join(ctx.options.outDir, 'package');
    await mkdir(dir, { recursive: true });
    for (const f of ['keyring.json', 'signer.key', 'signer.key.pub', 'trust.yaml', PASSPHRASE_FILE])
      await rm(join(dir, f), { force: true });
    const passFile = join(dir, PASSPHRASE_FILE);
    await writeFileAtomic(passFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    const keyring = await Keyring.create(join(dir, 'keyring.json'), {
      secret: { file: passFile },
      scrypt: { N: 2 ** 15, r: 8, p: 1 },
    });
    try {
      await keyring.createKey('model');
      const signer = generateSigningKey();
      await writeSigningKey(signer, join(dir, 'signer.key'), join(dir, 'signer.key.pub'));
      await writeFileAtomic(
        join(dir, 'trust.yaml'),
        `# Which keys may sign which models (docs/model-package.md).\nversion: 1\nsigners:\n  - name: demo-ml-platform\n    publicKeyFile: signer.key.pub\n    keyId: ${signer.keyId}\n    models: ["fraud-*"]\n`,
      );
      ctx.progress(0.2);

      // Lineage: the training run's audit entry, found in the demo's log by the model's digest.
      const onnx = await readFile(baseline.path);
      const modelDigest = sha256Digest(onnx);
      const lineage: ModelLineage = {
        datasetDigest: sha256Digest(await readFile(ctx.state.dataPath ?? baseline.path)),
        algorithm: 'mlp',
        metrics: {
          accuracy: baseline.result.test.accuracy,
          ...(baseline.result.test.rocAuc !== undefined ? { rocAuc: baseline.result.test.rocAuc } : {}),
        },
      };
      const log = ctx.state.audit;
      if (log) {
        const trained = (await log.tail(200))
          .reverse()
          .find((e) => e.type === 'model.trained' && e.data.modelDigest === modelDigest);
        if (trained)
          lineage.trainingRun = { origin: 'bulwark.demo/audit', eventId: trained.id, index: trained.index };
      }

      const pkgPath = join(ctx.options.outDir, `${MODEL_NAME}.bwm`);
      let t0 = performance.now();
      const made = await protectModel(onnx, pkgPath, {
        keyring,
        keyId: 'model',
        signingKey: signer,
        name: MODEL_NAME,
        version: '1.0.0',
        description: 'Baseline card-fraud MLP of the Bulwark demo',
        schema: ctx.state.schema,
        lineage,
      });
      const protectSeconds = (performance.now() - t0) / 1000;
      ctx.progress(0.5);

      const trust = await loadTrustPolicy(join(dir, 'trust.yaml'));
      t0 = performance.now();
      const loaded = await loadProtectedModel(pkgPath, { keyring, trust });
      const loadSeconds = (performance.now() - t0) / 1000;
      // The package's model answers as the network the baseline stage trained.
      let maxDiff = 0;
      try {
        const test = baseline.result.testSet;
        const rows = Math.min(256, test.rows);
        const features = loaded.manifest.input.features;
        const x = test.x.subarray(0, rows * features);
        const out = await loaded.model.run(x, rows, features);
        const probs = Object.values(out).find((o) => o.dims[o.dims.length - 1] === 2)?.data;
        const ref = baseline.result.network.predictProba(x, rows);
        if (probs)
          for (let i = 0; i < rows * 2; i++) maxDiff = Math.max(maxDiff, Math.abs(probs[i]! - ref[i]!));
        else maxDiff = Number.NaN;
      } finally {
        await loaded.model.close();
      }
      ctx.progress(0.7);

      // Refusals: each check in turn, on copies.
      const bytes = await readFile(pkgPath);
      const tampered = Buffer.from(bytes);
      tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
      await writeFile(join(dir, 'tampered.bwm'), tampered);
      const otherTrust = await loadTrustPolicy(join(dir, 'trust.yaml')).then((t) => ({
        ...t,
        signers: t.signers.map((s) => ({ ...s, models: ['credit-*'] })),
      }));
      const pickle = Buffer.concat([
        Buffer.from([0x80, 0x04, 0x95, 0x28, 0, 0, 0, 0, 0, 0, 0]),
        Buffer.from([0x8c, 0x05]),
        Buffer.from('posix'),
        Buffer.from([0x8c, 0x06]),
        Buffer.from('system'),
        Buffer.from([0x93, 0x8c, 0x0b]),
        Buffer.from('echo pwned'),
        Buffer.from(' '),
        Buffer.from([0x85, 0x52, 0x2e]),
      ]);
      await writeFile(join(dir, 'untrusted-model.pkl'), pickle);
      const scan = await scanModel(join(dir, 'untrusted-model.pkl'));
      const refusals: string[][] = [
        [
          'one byte of the package changed',
          await refusal(verifyPackage(join(dir, 'tampered.bwm'), { trust, keyring })),
        ],
        [
          'trust policy lists the key for credit-* only',
          await refusal(verifyPackage(pkgPath, { trust: otherTrust })),
        ],
        [
          'a pickle "model" brought by someone (bulwark model scan)',
          scan.safe
            ? 'accepted (a defect)'
            : `ERR_MODEL_UNSAFE: imports ${scan.imports.map((i) => `${i.module}.${i.name}`).join(', ')}`,
        ],
      ];
      await rm(join(dir, 'tampered.bwm'), { force: true });
      ctx.progress(0.9);

      const ins = await inspectPackage(pkgPath);
      const m = made.manifest;
      const overhead = made.packageBytes - made.modelBytes;
      const blocks: Block[] = [
        {
          kind: 'text',
          text:
            `The baseline model is packaged as ${MODEL_NAME}.bwm: its manifest in the clear, the ONNX encrypted with the framed ` +
            `AES-256-GCM stream under a data key wrapped by keyring key "model", and an OpenSSF model-signing v1.0 signature ` +
            `(in-toto statement in a DSSE envelope in a Sigstore bundle v0.3, ECDSA P-256). Loading verifies the signature ` +
            `against the trust policy, every digest, then decrypts in memory only and opens ONNX Runtime from the buffer: ` +
            `the plaintext model never touches the disk. A stolen package without the keyring is ciphertext; a swapped or ` +
            `altered one is refused.`,
        },
        {
          kind: 'facts',
          facts: [
            ['model', `${m.model.name} ${m.model.version}`],
            [
              'input',
              `${m.input.features} features from ${m.input.fields?.length ?? 0} schema fields (bounds and preprocessing in the manifest)`,
            ],
            ['output classes', (m.output.classes ?? []).join(', ') || 'n/a'],
            ['model digest', `sha256:${m.onnx.sha256}`],
            ['package digest', made.packageDigest],
            [
              'size',
              `${made.packageBytes} bytes for a ${made.modelBytes}-byte model (+${overhead} bytes: manifest, signature, frame headers)`,
            ],
            ['encryption', `${m.encryption.scheme}, key "${m.encryption.keyId}" v${m.encryption.keyVersion}`],
            [
              'signer',
              `${trust.signers[0]?.name} ${made.signer?.keyId.slice(0, 16)}… (${made.signer?.algorithm})`,
            ],
            [
              'signed resources',
              ins.statement?.predicate.resources
                .map((r) => `${r.name} ${r.digest.slice(0, 12)}…`)
                .join('; ') ?? 'none',
            ],
            [
              'training run',
              m.lineage.trainingRun
                ? `audit event ${m.lineage.trainingRun.eventId} (entry ${m.lineage.trainingRun.index})`
                : 'not found in the log',
            ],
            ['dataset digest', m.lineage.datasetDigest ?? 'n/a'],
            [
              'privacy / adversarial training',
              `${m.lineage.privacy ? `(${m.lineage.privacy.epsilon}, ${m.lineage.privacy.delta})-DP` : 'none (baseline)'} / ${m.lineage.adversarial ? m.lineage.adversarial.method : 'none (baseline)'}`,
            ],
            [
              'verification',
              `VERIFIED: signature, trusted signer for ${m.model.name}, manifest/body/model digests`,
            ],
            [
              'protect / verify + decrypt + load',
              `${protectSeconds.toFixed(3)} s / ${loadSeconds.toFixed(3)} s`,
            ],
            [
              'max |p(package) - p(baseline)| on 256 test rows',
              Number.isFinite(maxDiff) ? maxDiff.toExponential(2) : 'n/a',
            ],
          ],
        },
        {
          kind: 'table',
          caption: 'What is refused, and with which code',
          columns: ['attempt', 'result'],
          rows: refusals,
        },
      ];
      return {
        blocks,
        summary: {
          packageDigest: made.packageDigest,
          modelDigest,
          packageBytes: made.packageBytes,
          overheadBytes: overhead,
          signerKeyId: signer.keyId,
          verified: true,
          maxProbabilityDiff: maxDiff,
          tamperedRefusal: refusals[0]![1]!,
          untrustedRefusal: refusals[1]![1]!,
        },
        events: [
          {
            type: 'model.packaged',
            data: {
              packageDigest: made.packageDigest,
              modelDigest,
              keyId: 'model',
              signerKeyId: signer.keyId,
            },
          },
          {
            type: 'model.loaded',
            data: { packageDigest: made.packageDigest, modelDigest, server: 'bulwark demo' },
          },
        ],
      };
    } finally {
      await keyring.close();
    }
  },
};
