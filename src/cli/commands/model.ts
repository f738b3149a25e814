import { basename, extname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { AuditLog } from '../../audit/index.js';
import { BulwarkError, fileDigest } from '../../core/index.js';
import { loadSchema } from '../../data/index.js';
import {
  assertModelSafe,
  claimStatus,
  generateSigningKey,
  inspectPackage,
  loadProtectedModel,
  loadSigningKey,
  loadTrustPolicy,
  type ModelLineage,
  type ModelManifest,
  protectModel,
  publicKeyPem,
  type ScanReport,
  type SigningAlgorithm,
  scanModel,
  verifyPackage,
  writeSigningKey,
} from '../../model/index.js';
import { addAuditOption, record, withOperationLog } from '../audit-record.js';
import { MODEL_MEMORY_OPTION, modelMemoryOf } from '../model-file.js';
import { checkOutputPath, intOption } from '../options.js';
import { ioOf } from '../output.js';
import { type Progress, startProgress } from '../progress.js';
import { loadVerifierKey } from './audit.js';
import { keyringInputs, openKeyringFromOptions, type SecretCliOptions, withKeyringOptions } from './keys.js';
import { readDetectorBundleFile, registerFitDetectorsCommand } from './model-detectors.js';

/** The audit library, on first use (it loads the SQLite and PostgreSQL drivers). */
const auditLib = () => import('../../audit/index.js');

async function sha256File(path: string): Promise<string> {
  return fileDigest(path, 'dataset', 'cannot read');
}

/** What backs a privacy or adversarial claim, for the lines of `inspect`, `verify` and `protect`. */
function evidenceText(l: ModelLineage, k: 'privacy' | 'adversarial'): string {
  const e = l.evidence?.[k];
  if (e === undefined) return ' [UNVERIFIED: packaged before Bulwark recorded what backs a claim]';
  if (e.status === 'backed')
    return ` [backed: audit event ${e.event.eventId} (entry ${e.event.index}) of ${e.event.origin} records this training]`;
  return e.source === 'model-metadata'
    ? " [CLAIMED by the model file's metadata, backed by no record of its training: unverified]"
    : ' [CLAIMED by the packager, backed by no record of its training: unverified]';
}

function lineageLines(l: ModelLineage): string[] {
  const out: string[] = [];
  if (l.datasetDigest) out.push(`  dataset:      ${l.datasetDigest}`);
  if (l.algorithm) out.push(`  algorithm:    ${l.algorithm}`);
  if (l.privacy) {
    const p = l.privacy;
    out.push(
      `  privacy:      (${Number(p.epsilon.toPrecision(6))}, ${p.delta})-DP${p.method ? ` by ${p.method}` : ''}${p.accountant ? `, ${p.accountant} accountant` : ''}${p.budgetSpent ? `; budget spent ε=${Number(p.budgetSpent.epsilon.toPrecision(6))}` : ''}${p.noise === 'insecure-seeded' ? '; NOT PRIVATE: seeded noise (tests only)' : ''}${evidenceText(l, 'privacy')}`,
    );
  } else out.push('  privacy:      none recorded (not trained with differential privacy)');
  if (l.adversarial)
    out.push(
      `  adversarial:  ${l.adversarial.method} at eps ${l.adversarial.eps}${l.adversarial.steps !== undefined ? `, ${l.adversarial.steps} steps` : ''}${evidenceText(l, 'adversarial')}`,
    );
  else out.push('  adversarial:  none recorded');
  if (l.parent)
    out.push(
      `  parent:       ${l.parent.name} ${l.parent.version}, package ${l.parent.packageDigest} (fine-tuned from it)`,
    );
  if (l.trainingRun)
    out.push(
      `  training run: audit event ${l.trainingRun.eventId}${l.trainingRun.index !== undefined ? ` (entry ${l.trainingRun.index})` : ''}${l.trainingRun.origin ? ` in ${l.trainingRun.origin}` : ''}`,
    );
  if (l.metrics)
    out.push(
      `  metrics:      ${Object.entries(l.metrics)
        .map(([k, v]) => `${k}=${Number(v.toFixed(4))}`)
        .join(', ')}`,
    );
  return out;
}

/**
 * What a package's manifest says of its detectors' data being a protected dataset (manifest version 4;
 * nothing for a plain file or a bundle fitted before it was recorded).
 */
function detectorsProtectedText(
  p: NonNullable<NonNullable<ModelManifest['detectors']>['fittedOn']>['protectedData'],
): string {
  if (p === undefined) return '';
  return `, a protected dataset (${p.dataset ?? 'id unreadable'}) ${p.verified ? 'verified against its protection manifest before fitting' : 'NOT verified against its manifest (--no-verify-protected)'}`;
}

function manifestLines(m: ModelManifest): string[] {
  return [
    `model ${m.model.name} ${m.model.version} (packaged ${m.model.createdAt} by ${m.model.packager})`,
    ...(m.model.description ? [`  ${m.model.description}`] : []),
    `  input:        "${m.input.name}", ${m.input.features} features${m.input.fields ? ` from ${m.input.fields.length} fields` : ''}${m.input.preprocessing !== undefined ? ', preprocessing included' : ''}`,
    `  output:       ${m.output.names.join(', ')}${m.output.classes ? ` (classes ${m.output.classes.join(', ')})` : ''}`,
    `  onnx:         ${m.onnx.bytes} bytes, sha256:${m.onnx.sha256}${m.onnx.opset ? `, opset ${m.onnx.opset}` : ''}`,
    `  encryption:   ${m.encryption.scheme}, key "${m.encryption.keyId}" v${m.encryption.keyVersion} of keyring ${m.encryption.keyring}`,
    ...lineageLines(m.lineage),
    m.detectors
      ? `  detectors:    ${m.detectors.kinds.join(', ')} (${m.detectors.bytes} bytes, encrypted and signed with the model${m.detectors.fittedOn ? `; fitted on ${m.detectors.fittedOn.fitRows} rows and calibrated on ${m.detectors.fittedOn.calibrationRows}${m.detectors.fittedOn.datasetDigest ? ` of ${m.detectors.fittedOn.datasetDigest}` : ''}${detectorsProtectedText(m.detectors.fittedOn.protectedData)}` : ''})`
      : '  detectors:    none in the package',
  ];
}

function scanLines(r: ScanReport): string[] {
  const lines = [`${r.path}: ${r.format}, ${r.safe ? 'SAFE to load' : 'REFUSED'}`];
  for (const f of r.findings) lines.push(`  [${f.severity}] ${f.message}`);
  if (r.imports.length > 0) {
    lines.push(`  imports the pickle performs (${r.imports.length}, ${r.calls} calls):`);
    for (const i of r.imports)
      lines.push(
        `    ${i.severity.padEnd(8)} ${i.opcode.padEnd(12)} ${i.module}.${i.name}${i.entry ? `  (${i.entry})` : ''}`,
      );
  }
  return lines;
}

type KeyringOpts = Partial<SecretCliOptions>;

/** `bulwark model ...`: protected model packages and model scanning. */
export function registerModelCommands(program: Command): void {
  const model = program
    .command('model')
    .description('protected model packages: sign, encrypt, verify, inspect; scan models people bring')
    .addHelpText(
      'after',
      '\nA package (.bwm) holds a manifest, the ONNX model encrypted under a keyring key, and an OpenSSF\n' +
        'model-signing v1.0 signature (Sigstore bundle). See docs/model-package.md.',
    );

  model
    .command('keygen')
    .description('create a signing key pair (private key written 0600, never printed)')
    .requiredOption('--out <file>', 'private key file (PKCS#8 PEM)')
    .option('--public <file>', 'public key file (default: <out>.pub)')
    .option('--algorithm <alg>', 'ecdsa-p256, ecdsa-p384 or ed25519', 'ecdsa-p256')
    .action(async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<{ out: string; public?: string; algorithm: string }>();
      const algs: Record<string, SigningAlgorithm> = {
        'ecdsa-p256': 'ecdsa-p256-sha256',
        'ecdsa-p384': 'ecdsa-p384-sha384',
        ed25519: 'ed25519',
      };
      const alg = algs[o.algorithm];
      if (!alg)
        throw new BulwarkError(
          'ERR_INVALID_ARGUMENT',
          `--algorithm: expected ecdsa-p256, ecdsa-p384 or ed25519, got "${o.algorithm}"`,
        );
      const pub = o.public ?? `${o.out}.pub`;
      // Both files checked before either is written: a public key path that exists (or is the private
      // key's own) used to fail after the private key was written, leaving half a key pair.
      await checkOutputPath(o.out);
      await checkOutputPath(pub, { option: o.public !== undefined ? '--public' : '--out', inputs: [o.out] });
      const key = generateSigningKey(alg);
      await writeSigningKey(key, o.out, pub);
      io.result({ privateKey: o.out, publicKey: pub, keyId: key.keyId, algorithm: key.algorithm }, () =>
        [
          `wrote ${o.out} (private, mode 0600) and ${pub}`,
          `key id ${key.keyId} (${key.algorithm})`,
          'Add the public key to a trust policy (docs/model-package.md) for the model names it may sign.',
          publicKeyPem(key.publicKey).trimEnd(),
        ].join('\n'),
      );
    });

  addAuditOption(
    withKeyringOptions(
      model
        .command('protect')
        .argument('<model>', 'the ONNX model to package')
        .description('package an ONNX model: encrypt it under a keyring key and sign it')
        .requiredOption('--sign-key <file>', 'signing private key (PEM: ECDSA P-256/P-384 or Ed25519)')
        .requiredOption('--out <file>', 'package to write (.bwm)')
        .option('--name <name>', 'model name (default: the file name)')
        .option('--model-version <v>', 'model version', '1')
        .option('--description <text>', 'a description for the manifest')
        .option('--key <id>', 'keyring key that wraps the data key', 'data')
        .option('--schema <file>', 'data schema: its fields and public bounds go into the manifest')
        .option('--dataset <file>', 'training data file: its SHA-256 goes into the lineage')
        .option('--dataset-digest <sha256:hex>', 'the training data digest, when the file is not at hand')
        .option('--audit-event <id>', 'the audit-log event id of the training run (model.trained)')
        .option('--audit-index <n>', 'its entry index in the log', intOption(0))
        .option('--audit-origin <origin>', "the audit log's origin line")
        .option(
          '--accept-claims',
          "sign the model's privacy/adversarial metadata although no model.trained record in the --audit log backs it, marked as an unchecked claim",
        )
        .option(
          '--audit-key <key>',
          "the --audit log's public key (or a file): the model.trained record that backs a claim must also be proved included under a stored checkpoint signed by it, so that a record rewritten in the database (its hash recomputed) backs nothing",
        )
        .option(
          '--trainer-key <key>',
          "the training job's public key (or a file; bulwark train --record-key signed with its private half): a model.trained record backs a claim only if this key signed it, not if anyone who can append to the log wrote it",
        )
        .option(
          '--detectors <file>',
          'detector bundle (bulwark model fit-detectors) to seal into the package with the model',
        )
        .option(
          '--frame-size <bytes>',
          'encryption frame size (power of two, 65536-1048576)',
          intOption(65536, 1048576),
        )
        .option('--force', 'overwrite --out if it exists')
        .option(...MODEL_MEMORY_OPTION),
    ),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & {
        signKey: string;
        out: string;
        name?: string;
        modelVersion: string;
        description?: string;
        key: string;
        schema?: string;
        dataset?: string;
        datasetDigest?: string;
        auditEvent?: string;
        auditIndex?: number;
        auditOrigin?: string;
        frameSize?: number;
        force?: boolean;
        audit?: string;
        detectors?: string;
        acceptClaims?: boolean;
        auditKey?: string;
        trainerKey?: string;
      }
    >();
    const auditKey = o.auditKey !== undefined ? await loadVerifierKey(o.auditKey) : undefined;
    const trainerKey = o.trainerKey !== undefined ? await loadVerifierKey(o.trainerKey) : undefined;
    if (o.datasetDigest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(o.datasetDigest))
      throw new BulwarkError('ERR_INVALID_ARGUMENT', `--dataset-digest: expected sha256:<64 hex digits>`);
    // Before the work, and never over one of the inputs, --force or not: the package used to replace
    // the signing key, the keyring (and every key in it) or the model it was made from.
    await checkOutputPath(o.out, {
      force: o.force,
      inputs: [file, o.signKey, o.schema, o.dataset, o.detectors, o.audit, ...keyringInputs(o)],
    });
    const memory = modelMemoryOf(this);
    // The same bound as protectModel's below: a model under a raised limit is not refused by the scan.
    await assertModelSafe(file, { memory });
    const signingKey = await loadSigningKey(o.signKey);
    const schema = o.schema !== undefined ? await loadSchema(o.schema) : undefined;
    const detectors = o.detectors !== undefined ? await readDetectorBundleFile(o.detectors) : undefined;
    const lineage: ModelLineage = {};
    const dd = o.datasetDigest ?? (o.dataset !== undefined ? await sha256File(o.dataset) : undefined);
    if (dd) lineage.datasetDigest = dd;
    if (o.auditEvent !== undefined)
      lineage.trainingRun = {
        eventId: o.auditEvent,
        ...(o.auditIndex !== undefined ? { index: o.auditIndex } : {}),
        ...(o.auditOrigin !== undefined ? { origin: o.auditOrigin } : {}),
      };
    await withOperationLog(o.audit, async (log) => {
      if ((auditKey !== undefined || trainerKey !== undefined) && !log)
        throw new BulwarkError(
          'ERR_USAGE',
          `${auditKey !== undefined ? '--audit-key' : '--trainer-key'} applies with an audit log (--audit or BULWARK_AUDIT_STORE), whose records back the claims`,
        );
      // With --trainer-key a record its writer did not sign backs nothing: it is set aside, and the
      // refusal of a claim it would have backed says why (protectModel's `missing`).
      const trainer =
        trainerKey === undefined ? undefined : [(await auditLib()).parseVerifierKey(trainerKey)];
      const recordOf = async (modelDigest: string) => {
        const r = await (log as AuditLog).trainingRecord(
          modelDigest,
          auditKey !== undefined ? { publicKey: auditKey } : {},
        );
        if (r === undefined || trainer === undefined) return r;
        const problem = (await auditLib()).recordSignatureProblem(
          r.data,
          trainer,
          `the model.trained record of this model (event ${r.eventId}, #${r.index})`,
        );
        if (problem === undefined) return r;
        io.note(`bulwark: ${problem}; the package does not cite it`);
        return { missing: problem };
      };
      const kr = await openKeyringFromOptions(o);
      let bar: Progress | undefined;
      try {
        const r = await protectModel(resolve(file), resolve(o.out), {
          keyring: kr,
          keyId: o.key,
          signingKey,
          name: o.name ?? basename(file, extname(file)),
          version: o.modelVersion,
          ...(o.description !== undefined ? { description: o.description } : {}),
          ...(schema ? { schema } : {}),
          lineage,
          // Bulwark's own record of the training, found in the log by the digest of the bytes packaged
          // (never by --audit-event: naming an event backs nothing).
          // With --audit-key the record is also proved under a signed checkpoint.
          ...(log ? { trainingRecord: recordOf } : {}),
          acceptClaims: o.acceptClaims === true,
          memory,
          ...(detectors !== undefined ? { detectors } : {}),
          ...(o.frameSize !== undefined ? { frameSize: o.frameSize } : {}),
          noClobber: o.force !== true,
          onProgress: (done, total) => {
            bar ??= startProgress(io, 'protect', Math.ceil(total / 2 ** 20), 'MiB');
            bar.update(Math.floor(done / 2 ** 20));
          },
        });
        bar?.stop();
        const auditIds = await record(log, [
          {
            type: 'model.packaged',
            data: {
              packageDigest: r.packageDigest,
              modelDigest: r.modelDigest,
              keyId: o.key,
              signerKeyId: signingKey.keyId,
              ...(r.manifest.detectors?.fittedOn?.datasetDigest
                ? { detectorsDatasetDigest: r.manifest.detectors.fittedOn.datasetDigest }
                : {}),
            },
          },
        ]);
        io.result(
          {
            package: o.out,
            packageDigest: r.packageDigest,
            modelDigest: r.modelDigest,
            packageBytes: r.packageBytes,
            modelBytes: r.modelBytes,
            overhead: (r.packageBytes - r.modelBytes) / r.modelBytes,
            signer: r.signer,
            manifest: r.manifest,
            claims: claimStatus(r.manifest),
            ...(auditIds.length > 0 ? { auditEvent: auditIds[0] } : {}),
          },
          () =>
            [
              `wrote ${o.out}: ${r.packageBytes} bytes for a ${r.modelBytes}-byte model (+${r.packageBytes - r.modelBytes} bytes)`,
              `package ${r.packageDigest}`,
              `signed by ${r.signer?.keyId} (${r.signer?.algorithm})`,
              ...manifestLines(r.manifest),
              ...(auditIds.length > 0 ? [`Audit: model.packaged recorded as event ${auditIds[0]}`] : []),
            ].join('\n'),
        );
      } finally {
        bar?.stop();
        await kr.close();
      }
    });
  });

  withKeyringOptions(
    model
      .command('verify')
      .argument('<package>', 'the package (.bwm)')
      .description(
        'verify a package: signature, trusted signer, digests; with --keyring also decrypt in memory',
      )
      .requiredOption('--trust <file>', 'trust policy (YAML/JSON): which keys may sign which model names'),
    { optional: 'keyring: also decrypt the model in memory and check its digest' },
  )
    .option('--load', 'also open the model in ONNX Runtime (needs --keyring)')
    .option(...MODEL_MEMORY_OPTION)
    .action(async function (this: Command, file: string) {
      const io = ioOf(this);
      const o = this.opts<KeyringOpts & { trust: string; load?: boolean }>();
      const trust = await loadTrustPolicy(o.trust);
      if (o.load && o.keyring === undefined)
        throw new BulwarkError('ERR_INVALID_ARGUMENT', '--load: needs --keyring to decrypt the model');
      const kr = o.keyring !== undefined ? await openKeyringFromOptions(o as SecretCliOptions) : undefined;
      try {
        let result: {
          manifest: ModelManifest;
          signer: { keyId: string; algorithm: string; name?: string };
          packageDigest: string;
          decrypted: boolean;
          loaded: boolean;
        };
        if (o.load && kr) {
          const l = await loadProtectedModel(file, { keyring: kr, trust, memory: modelMemoryOf(this) });
          await l.model.close();
          const name = trust.signers.find((s) => s.keyId === l.signer.keyId)?.name;
          result = {
            manifest: l.manifest,
            signer: { ...l.signer, ...(name ? { name } : {}) },
            packageDigest: l.packageDigest,
            decrypted: true,
            loaded: true,
          };
        } else {
          const v = await verifyPackage(file, { trust, ...(kr ? { keyring: kr } : {}) });
          result = {
            manifest: v.manifest,
            signer: v.signer,
            packageDigest: v.packageDigest,
            decrypted: v.decrypted,
            loaded: false,
          };
        }
        io.result({ package: file, verified: true, ...result, claims: claimStatus(result.manifest) }, () =>
          [
            `${file}: VERIFIED`,
            `  signer:       ${result.signer.name ?? ''} ${result.signer.keyId} (${result.signer.algorithm})`,
            `  package:      ${result.packageDigest}`,
            `  checks:       signature, trust for "${result.manifest.model.name}", manifest and body digests${result.decrypted ? `, decryption in memory and model digest${result.manifest.detectors ? ', detector bundle digest' : ''}` : ' (not decrypted: no --keyring)'}${result.loaded ? ', ONNX Runtime session' : ''}`,
            ...manifestLines(result.manifest),
          ].join('\n'),
        );
      } finally {
        await kr?.close();
      }
    });

  model
    .command('inspect')
    .argument('<package>', 'the package (.bwm)')
    .description('show a package manifest, claimed signer and lineage (no key needed, nothing verified)')
    .action(async function (this: Command, file: string) {
      const io = ioOf(this);
      const r = await inspectPackage(file);
      io.result(
        {
          package: file,
          manifest: r.manifest,
          claims: claimStatus(r.manifest),
          signerKeyId: r.signerKeyId,
          statement: r.statement,
          layout: r.layout,
          verified: false,
        },
        () =>
          [
            `${file}: ${r.layout.fileBytes} bytes (manifest ${r.layout.manifestBytes}, encrypted model ${r.layout.encryptedBytes}, signature ${r.layout.signatureBytes})`,
            r.signerKeyId !== null
              ? `  signed by key ${r.signerKeyId} (claimed; run "bulwark model verify --trust" to check)`
              : '  UNSIGNED: every loader refuses this package',
            ...manifestLines(r.manifest),
          ].join('\n'),
      );
    });

  registerFitDetectorsCommand(model);

  model
    .command('scan')
    .argument('<file>', 'the model file (ONNX, safetensors, pickle, PyTorch, joblib)')
    .description(
      'check a model file before loading it: refuse pickle-based formats, list their imports; check ONNX external data and the memory its graph asks for',
    )
    .option(...MODEL_MEMORY_OPTION)
    .action(async function (this: Command, file: string) {
      const io = ioOf(this);
      const r = await scanModel(file, { memory: modelMemoryOf(this) });
      io.result(r, () => scanLines(r).join('\n'));
      if (!r.safe) {
        const first =
          r.findings.find((f) => f.severity === 'critical' || f.severity === 'high') ?? r.findings[0];
        throw new BulwarkError('ERR_MODEL_UNSAFE', `${file}: refused: ${first?.message ?? 'unsafe format'}`);
      }
    });
}
