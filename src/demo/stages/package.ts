import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isBulwarkError, sha256Digest, writeFileAtomic } from '../../core/index.js';
import { type Dataset, type Pipeline, readDatasetWithDigest, writeDataset } from '../../data/index.js';
import { Keyring } from '../../keys/index.js';
import { onnxMetadata } from '../../ml/index.js';
import {
  claimStatus,
  generateSigningKey,
  inspectPackage,
  lineageFromOnnxMetadata,
  loadProtectedModel,
  loadTrustPolicy,
  type ModelLineage,
  type ModelManifest,
  protectModel,
  scanModel,
  verifyPackage,
  writeSigningKey,
} from '../../model/index.js';
import type { Block } from '../../report/index.js';
import { argmaxRows, type DetectorBundleJson, fitDetectorBundle } from '../../robust/index.js';
import { classIndexOf } from '../../train/index.js';
import type { DemoStage } from '../stage.js';

/** What backs the manifest's privacy and adversarial claims, for the report. */
function claimsText(m: ModelManifest): string {
  const c = claimStatus(m);
  const backed = (['privacy', 'adversarial'] as const).filter((k) => c[k] === 'backed');
  const not = (['privacy', 'adversarial'] as const).filter((k) => c[k] !== 'backed' && c[k] !== 'none');
  const ev = m.lineage.evidence?.privacy ?? m.lineage.evidence?.adversarial;
  return [
    backed.length > 0 && ev?.status === 'backed'
      ? ` (backed by the training run's audit entry ${ev.event.index}, checked when packaging)`
      : '',
    not.length > 0 ? ` (${not.join(' and ')}: CLAIMED by the model file only, unchecked)` : '',
  ].join('');
}

const PASSPHRASE_FILE = 'DEMO-ONLY-keyring-passphrase.txt';
/** The case-study model (DP at ε = 0.5): packaged, signed, and the subject of the refusals. */
const MODEL_NAME = 'fraud-dp';
/** The baseline's package name, when there is no DP model to package. */
const BASELINE_NAME = 'fraud-baseline';

/**
 * The gateway's detectors for the packaged model, fitted on the rows its training held out (never
 * trained on), written to their own file cut to the model's input columns and the label (no personal
 * field): the bundle's state is statistics of its rows, and for the DP model those must not be the
 * private training rows (protectModel refuses a bundle fitted on the training file, ERR_DP_UNACCOUNTED).
 * A fresh synthetic file is no substitute: another seed is another population of cardholders (other
 * cities), and the detectors then flag the real traffic.
 */
async function detectorBundle(
  dir: string,
  heldOut: Dataset,
  seed: number,
  label: string,
  model: {
    pipeline: Pipeline;
    classValues: readonly string[];
    predictProba: (x: Float32Array, rows: number) => Float32Array;
  },
): Promise<{ bundle: DetectorBundleJson; rows: number; columns: number }> {
  const path = join(dir, 'detector-rows.csv');
  const inputs = model.pipeline.toJSON().inputs.map((i) => i.name);
  await writeDataset(path, heldOut.select([...inputs, label]));
  const { dataset, digest } = await readDatasetWithDigest(path);
  const x = model.pipeline.transform(dataset).matrix;
  const col = dataset.column(label);
  const y = Int32Array.from({ length: dataset.rowCount }, (_, i) =>
    classIndexOf(model.classValues, col.values[i] ?? null),
  );
  const classes = model.classValues.length;
  const predicted = argmaxRows(model.predictProba(x, dataset.rowCount), dataset.rowCount, classes);
  const bundle = await fitDetectorBundle(x, y, dataset.rowCount, {
    classes,
    seed,
    datasetDigest: digest,
    // Mahalanobis at 0.1 % of clean rows (a batch of rows compounds the rate); the stream detectors
    // at 1 % of benign clients.
    fpr: { mahalanobis: 0.001, stateful: 0.01, prada: 0.01 },
    streams: 100,
    streamLength: 200,
    predicted,
    stateful: { k: 10, history: 200 },
    prada: { minQueries: 30, window: 300 },
  });
  return { bundle, rows: dataset.rowCount, columns: dataset.columnNames.length };
}

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
 * Stage: package the case-study model (the DP model of the privacy stage; the baseline when that stage
 * did not run) as a protected model package (issue #7). A keyring key wraps the
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
    const ds = ctx.state.dataset;
    if (!baseline || !ctx.state.schema || !ds) throw new Error('the package stage needs the baseline stage');
    const dp = ctx.state.dp;
    // What is packaged and checked: the DP model when there is one (the article's case study).
    const subject = dp
      ? {
          path: dp.path,
          network: dp.result.network,
          testSet: dp.result.testSet,
          test: dp.result.test,
          pipeline: dp.result.pipeline,
          classValues: dp.result.classValues,
          testRows: dp.result.testRows,
        }
      : {
          path: baseline.path,
          network: baseline.result.network,
          testSet: baseline.result.testSet,
          test: baseline.result.test,
          pipeline: baseline.result.pipeline,
          classValues: baseline.result.classValues,
          testRows: baseline.result.testRows,
        };
    const subjectName = dp ? MODEL_NAME : BASELINE_NAME;
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

      // Lineage: the privacy guarantee and adversarial training from the ONNX metadata the DP trainer
      // wrote, backed by the training run's model.trained entry, which protectModel finds in the demo's
      // log by the model's digest and checks against them (it also cites the entry).
      const datasetDigest = sha256Digest(await readFile(ctx.state.dataPath ?? baseline.path));
      const log = ctx.state.audit;
      const lineageOf = (bytes: Uint8Array, test: { accuracy: number; rocAuc?: number }): ModelLineage => ({
        ...lineageFromOnnxMetadata(onnxMetadata(bytes)),
        datasetDigest,
        algorithm: 'mlp',
        metrics: { accuracy: test.accuracy, ...(test.rocAuc !== undefined ? { rocAuc: test.rocAuc } : {}) },
      });
      const onnx = await readFile(subject.path);
      const modelDigest = sha256Digest(onnx);
      const lineage = lineageOf(onnx, subject.test);

      const detectors = await detectorBundle(
        dir,
        ds.take(subject.testRows),
        ctx.options.seed,
        ctx.state.label ?? 'is_fraud',
        {
          pipeline: subject.pipeline,
          classValues: subject.classValues,
          predictProba: (x, rows) => subject.network.predictProba(x, rows),
        },
      );
      ctx.progress(0.3);

      const pkgPath = join(ctx.options.outDir, `${subjectName}.bwm`);
      let t0 = performance.now();
      const made = await protectModel(onnx, pkgPath, {
        keyring,
        keyId: 'model',
        signingKey: signer,
        name: subjectName,
        version: '1.0.0',
        description: dp
          ? 'Card-fraud MLP of the Bulwark demo, trained with DP-SGD at epsilon 0.5 (the case study)'
          : 'Baseline card-fraud MLP of the Bulwark demo',
        schema: ctx.state.schema,
        lineage,
        // Without the demo's log (never in a full run) a claim goes out marked unchecked.
        ...(log ? { trainingRecord: (d: string) => log.trainingRecord(d) } : { acceptClaims: true }),
        detectors: detectors.bundle,
      });
      const protectSeconds = (performance.now() - t0) / 1000;
      // The gateway serves this package (state.served): a baseline package left by an earlier run of
      // this folder is removed, so nothing can pick it up by mistake.
      if (dp) await rm(join(ctx.options.outDir, `${BASELINE_NAME}.bwm`), { force: true });
      ctx.state.served = {
        name: subjectName,
        packagePath: pkgPath,
        packageDigest: made.packageDigest,
        modelDigest,
      };
      ctx.progress(0.5);

      const trust = await loadTrustPolicy(join(dir, 'trust.yaml'));
      t0 = performance.now();
      const loaded = await loadProtectedModel(pkgPath, { keyring, trust });
      const loadSeconds = (performance.now() - t0) / 1000;
      // The package's model answers as the network the training stage produced.
      let maxDiff = 0;
      try {
        const test = subject.testSet;
        const rows = Math.min(256, test.rows);
        const features = loaded.manifest.input.features;
        const x = test.x.subarray(0, rows * features);
        const out = await loaded.model.run(x, rows, features);
        const probs = Object.values(out).find((o) => o.dims[o.dims.length - 1] === 2)?.data;
        const ref = subject.network.predictProba(x, rows);
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
            `${dp ? 'The case-study model (DP-SGD at ε = 0.5)' : 'The baseline model'} is packaged as ${subjectName}.bwm: its manifest in the clear, the ONNX encrypted with the framed ` +
            `AES-256-GCM stream under a data key wrapped by keyring key "model", and an OpenSSF model-signing v1.0 signature ` +
            `(in-toto statement in a DSSE envelope in a Sigstore bundle v0.3, ECDSA P-256). Loading verifies the signature ` +
            `against the trust policy, every digest, then decrypts in memory only and opens ONNX Runtime from the buffer: ` +
            `the plaintext model never touches the disk. A stolen package without the keyring is ciphertext; a swapped or ` +
            `altered one is refused. The gateway stage serves this package.`,
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
              'detectors (in the package)',
              m.detectors
                ? `${m.detectors.kinds.join(', ')}: encrypted and signed with the model, fitted on ${m.detectors.fittedOn?.fitRows} and calibrated on ${m.detectors.fittedOn?.calibrationRows} rows its training held out (package/detector-rows.csv, ${m.detectors.fittedOn?.datasetDigest?.slice(0, 19)}…), not the rows it trained on`
                : 'none',
            ],
            [
              'privacy / adversarial training',
              `${m.lineage.privacy ? `(${Number(m.lineage.privacy.epsilon.toFixed(4))}, ${m.lineage.privacy.delta})-DP` : 'none (baseline)'} / ${m.lineage.adversarial ? m.lineage.adversarial.method : 'none (baseline)'}${claimsText(m)}`,
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
              `max |p(package) - p(${dp ? 'DP network' : 'baseline'})| on 256 test rows`,
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
          model: subjectName,
          packageDigest: made.packageDigest,
          modelDigest,
          packageBytes: made.packageBytes,
          overheadBytes: overhead,
          signerKeyId: signer.keyId,
          verified: true,
          maxProbabilityDiff: maxDiff,
          tamperedRefusal: refusals[0]![1]!,
          untrustedRefusal: refusals[1]![1]!,
          detectors: (m.detectors?.kinds ?? []).join(','),
          // What backs the signed privacy and adversarial claims: backed by the training's audit entry.
          privacyClaim: claimStatus(m).privacy,
          adversarialClaim: claimStatus(m).adversarial,
        },
        events: [
          // The two keys the packages use, so a lineage walk ends at them (audit/events.ts eventRefs).
          {
            type: 'key.created',
            data: {
              keyId: 'model',
              algorithm: 'AES-256-GCM',
              provider: 'keyring',
              purpose: 'model data keys',
            },
          },
          {
            type: 'key.created',
            data: {
              keyId: signer.keyId,
              algorithm: 'ECDSA-P256',
              provider: 'file',
              purpose: 'model signing',
            },
          },
          // The held-out traffic the package's detectors were fitted on: a dataset of its own in the lineage.
          ...(m.detectors?.fittedOn?.datasetDigest
            ? [
                {
                  type: 'dataset.created' as const,
                  data: {
                    datasetDigest: m.detectors.fittedOn.datasetDigest,
                    source: "the model's held-out rows, for its detectors",
                    rows: detectors.rows,
                    columns: detectors.columns,
                  },
                },
              ]
            : []),
          {
            type: 'model.packaged',
            data: {
              packageDigest: made.packageDigest,
              modelDigest,
              keyId: 'model',
              signerKeyId: signer.keyId,
              ...(m.detectors?.fittedOn?.datasetDigest
                ? { detectorsDatasetDigest: m.detectors.fittedOn.datasetDigest }
                : {}),
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
