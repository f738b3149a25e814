/**
 * Privacy and adversarial-training claims in a package's signed manifest (red-team finding: `model
 * protect` copied a model file's `bulwark.privacy` metadata, which anyone can write, into the signed
 * manifest as if it were a guarantee). Real files throughout: models trained by `bulwark train`, a real
 * SQLite audit log, packages verified by `bulwark model verify`; the CLI run in this process.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, canonicalJson } from '../../src/audit/index.js';
import { isBulwarkError } from '../../src/core/index.js';
import { encryptStream, Keyring } from '../../src/keys/index.js';
import { decodeModel, encodeModel } from '../../src/ml/onnx/proto.js';
import { encodeFooter, encodeHeader } from '../../src/model/format.js';
import {
  buildManifest,
  loadSigningKey,
  type ModelManifest,
  RESOURCE_BODY,
  RESOURCE_MANIFEST,
  RESOURCE_MODEL,
} from '../../src/model/index.js';
import { parseManifest } from '../../src/model/manifest.js';
import { buildStatement, signStatement } from '../../src/model/sign.js';
import { type CliRun, runBulwarkInProcess } from '../helpers/cli.js';
import { DP_SCHEMA, rows, writeCsv } from '../integrity/helpers.js';
import { PASS_ENV, tempDir } from './helpers.js';

const t = tempDir('claims');
const env = { [PASS_ENV]: process.env[PASS_ENV] as string };
const p = (f: string) => join(t.dir, f);
const bw = (args: string[]) => runBulwarkInProcess(args, { cwd: t.dir, env });
const audit = p('audit.db');
const ledger = p('ledger.sqlite');
const keys = ['--keyring', p('kr.json'), '--passphrase-env', PASS_ENV, '--sign-key', p('signer.key')];
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** The training data options every `bulwark train` of these tests takes. */
const common = ['--data', p('data.csv'), '--label', 'label', '--schema', p('schema.yaml'), '--seed', '1'];

/** `bulwark --json train` of a small PGD-trained MLP into `out`, with `extra` (later options win). */
const advTrainArgs = (out: string, extra: string[] = []) => [
  '--json',
  'train',
  ...common,
  '--model',
  'mlp',
  '--hidden',
  '8',
  '--epochs',
  '2',
  '--adversarial',
  'pgd',
  '--adv-eps',
  '0.1',
  '--adv-steps',
  '3',
  '--out',
  p(out),
  ...extra,
];

function ok(r: CliRun, what: string): CliRun {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r;
}

/** A refused run (exit 5) with `code`, its message matching `message` (`--json`: the error is JSON). */
function refused(r: CliRun, code: string, message: RegExp): void {
  assert.equal(r.code, 5, r.stderr);
  const e = (JSON.parse(r.stderr) as { error: { code: string; message: string } }).error;
  assert.equal(e.code, code, e.message);
  assert.match(e.message, message);
}

/** `bulwark --json model protect MODEL --out OUT` with this folder's keys, and `extra`. */
function protect(model: string, out: string, extra: string[] = []): Promise<CliRun> {
  return bw([
    '--json',
    'model',
    'protect',
    p(model),
    ...keys,
    '--out',
    p(out),
    '--name',
    'fraud-x',
    ...extra,
  ]);
}

/** `model verify --json` of a package: the manifest and claim statuses it reports. */
async function verified(pkg: string): Promise<{
  manifest: ModelManifest;
  claims: { privacy: string; adversarial: string };
}> {
  const r = ok(await bw(['--json', 'model', 'verify', p(pkg), '--trust', p('trust.yaml')]), 'verify');
  return JSON.parse(r.stdout);
}

/** The ONNX model at `from` with `entries` added to (or replacing) its metadata_props. */
function withMetadata(from: string, to: string, entries: Record<string, string>): void {
  const m = decodeModel(readFileSync(p(from)));
  m.metadataProps = [
    ...m.metadataProps.filter((e) => !(e.key in entries)),
    ...Object.entries(entries).map(([key, value]) => ({ key, value })),
  ];
  writeFileSync(p(to), encodeModel(m));
}

/** The claim a forger writes into a model that was not trained with differential privacy. */
const FORGED_PRIVACY = JSON.stringify({
  method: 'dp-sgd',
  epsilon: 0.1,
  delta: 1e-6,
  neighbours: 'add-remove',
  accountant: 'rdp',
  noiseMultiplier: 4,
  clipNorm: 1,
});

let dpEvent: string;
let plainEvent: string;
let advEvent: string;

before(async () => {
  writeFileSync(p('schema.yaml'), DP_SCHEMA);
  writeCsv(p('data.csv'), rows(800, 1));
  ok(
    await bw([
      'keys',
      'init',
      '--keyring',
      p('kr.json'),
      '--passphrase-env',
      PASS_ENV,
      '--scrypt-log-n',
      '10',
    ]),
    'keys init',
  );
  const kg = ok(await bw(['--json', 'model', 'keygen', '--out', p('signer.key')]), 'keygen');
  writeFileSync(
    p('trust.yaml'),
    `version: 1\nsigners:\n  - name: ml-platform\n    publicKeyFile: signer.key.pub\n    keyId: ${JSON.parse(kg.stdout).keyId}\n    models: ["fraud-*"]\n`,
  );
  ok(await bw(['audit', 'keygen', '--name', 'bulwark.test/claims', '--out', p('log.key')]), 'audit keygen');
  ok(await bw(['audit', 'checkpoint', '--store', audit, '--signing-key', p('log.key')]), 'checkpoint');
  ok(
    await bw(['query', 'budget', 'set', 'tx', '--epsilon', '5', '--delta', '1e-4', '--ledger', ledger]),
    'budget',
  );
  const dp = ok(
    await bw([
      '--json',
      'train',
      ...common,
      '--model',
      'logreg',
      '--out',
      p('dp.onnx'),
      '--dp-epsilon',
      '1',
      '--seeded-noise',
      '7',
      '--ledger',
      ledger,
      '--budget',
      'tx',
      '--audit',
      audit,
    ]),
    'DP train',
  );
  dpEvent = (JSON.parse(dp.stdout) as { auditEvent: string }).auditEvent;
  const plain = ok(
    await bw(['--json', 'train', ...common, '--epochs', '5', '--out', p('plain.onnx'), '--audit', audit]),
    'plain train',
  );
  plainEvent = (JSON.parse(plain.stdout) as { auditEvent: string }).auditEvent;
  const adv = ok(await bw(advTrainArgs('adv.onnx', ['--audit', audit])), 'adversarial train');
  advEvent = (JSON.parse(adv.stdout) as { auditEvent: string }).auditEvent;
  assert.ok(dpEvent && plainEvent && advEvent);
});

after(() => t.cleanup());

describe('model protect: privacy and adversarial claims', () => {
  it('a DP model trained with --audit and protected with that log is marked backed by its model.trained entry', async () => {
    const r = ok(await protect('dp.onnx', 'dp.bwm', ['--audit', audit]), 'protect');
    const out = JSON.parse(r.stdout) as { manifest: ModelManifest; claims: { privacy: string } };
    const m = out.manifest;
    assert.equal(out.claims.privacy, 'backed');
    assert.equal(m.version, 3);
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: audit } });
    try {
      const entry = await log.get(dpEvent);
      assert.equal(entry.type, 'model.trained');
      const ref = {
        origin: 'bulwark.test/claims',
        eventId: dpEvent,
        index: entry.index,
        // An entry is stored as its canonical JSON: the digest an auditor recomputes from the entry.
        entryDigest: `sha256:${createHash('sha256').update(canonicalJson(entry)).digest('hex')}`,
      };
      assert.deepEqual(m.lineage.evidence, { privacy: { status: 'backed', event: ref } });
      assert.deepEqual(m.lineage.trainingRun, ref);
      const recorded = entry.data as {
        privacy: { epsilon: number; budgetSpent: unknown };
        datasetDigest: string;
      };
      assert.equal(m.lineage.privacy?.epsilon, recorded.privacy.epsilon);
      assert.deepEqual(
        m.lineage.privacy?.budgetSpent,
        recorded.privacy.budgetSpent,
        'the spend from the record',
      );
      assert.equal(m.lineage.privacy?.noise, 'insecure-seeded', 'the seeded noise is carried, not dropped');
      assert.equal(m.lineage.datasetDigest, sha256(readFileSync(p('data.csv'))));
      assert.equal(m.onnx.sha256, sha256(readFileSync(p('dp.onnx'))).slice(7));
    } finally {
      await log.close();
    }
    const v = await verified('dp.bwm');
    assert.equal(v.claims.privacy, 'backed');
    assert.equal(v.claims.adversarial, 'none');
    const ins = ok(await bw(['model', 'inspect', p('dp.bwm')]), 'inspect');
    assert.match(
      ins.stdout,
      new RegExp(`privacy: .*-DP.*NOT PRIVATE: seeded noise.*\\[backed: audit event ${dpEvent}`),
    );
  });

  it('a forged bulwark.privacy in a plain model is refused, with or without the audit log; --accept-claims marks it claimed', async () => {
    withMetadata('plain.onnx', 'forged.onnx', { 'bulwark.privacy': FORGED_PRIVACY });
    for (const extra of [[], ['--audit', audit]]) {
      refused(
        await protect('forged.onnx', 'forged.bwm', extra),
        'ERR_LINEAGE_UNBACKED',
        /differential-privacy guarantee .*backed by no record of its training/,
      );
      assert.equal(existsSync(p('forged.bwm')), false, 'nothing written');
    }
    const r = ok(await protect('forged.onnx', 'forged.bwm', ['--accept-claims']), 'protect --accept-claims');
    const m = (JSON.parse(r.stdout) as { manifest: ModelManifest }).manifest;
    assert.equal(m.version, 3);
    assert.deepEqual(m.lineage.evidence, { privacy: { status: 'claimed', source: 'model-metadata' } });
    assert.equal(m.lineage.trainingRun, undefined);
    const v = await verified('forged.bwm');
    assert.equal(v.claims.privacy, 'claimed', 'verified package, claim still marked unchecked');
    const ins = ok(await bw(['model', 'inspect', p('forged.bwm')]), 'inspect');
    assert.match(ins.stdout, /privacy: +\(0\.1, 0\.000001\)-DP.*\[CLAIMED by the model file's metadata/);
  });

  it('the refusal says what is missing: the audit log when none was given, the record when the given log lacks it', async () => {
    withMetadata('plain.onnx', 'forged-msg.onnx', { 'bulwark.privacy': FORGED_PRIVACY });
    const digest = sha256(readFileSync(p('forged-msg.onnx')));
    refused(
      await protect('forged-msg.onnx', 'forged-msg.bwm'),
      'ERR_LINEAGE_UNBACKED',
      /give the audit log its training was recorded in \(--audit\), or package it as an unchecked claim \(--accept-claims\)$/,
    );
    // With --audit the log was searched: telling the user to "give the audit log" sent them back to it.
    const r = await protect('forged-msg.onnx', 'forged-msg.bwm', ['--audit', audit]);
    refused(
      r,
      'ERR_LINEAGE_UNBACKED',
      /differential-privacy guarantee .*backed by no record of its training: the audit log given has no model\.trained entry of this model/,
    );
    assert.ok(r.stderr.includes(`(${digest})`), r.stderr);
    assert.doesNotMatch(r.stderr, /give the audit log its training was recorded in/);
    assert.equal(existsSync(p('forged-msg.bwm')), false, 'nothing written');
  });

  it('model inspect shows epsilon to 6 significant digits; the manifest keeps the exact value', async () => {
    // DP-SGD's accountant gives values such as 0.9930028765058609, printed whole before.
    const exact = 0.9930028765058609;
    withMetadata('plain.onnx', 'long-eps.onnx', {
      'bulwark.privacy': JSON.stringify({ ...JSON.parse(FORGED_PRIVACY), epsilon: exact }),
    });
    const r = ok(await protect('long-eps.onnx', 'long-eps.bwm', ['--accept-claims']), 'protect');
    assert.equal(
      (JSON.parse(r.stdout) as { manifest: ModelManifest }).manifest.lineage.privacy?.epsilon,
      exact,
    );
    const ins = ok(await bw(['model', 'inspect', p('long-eps.bwm')]), 'inspect');
    assert.match(ins.stdout, /privacy: +\(0\.993003, 0\.000001\)-DP by dp-sgd/);
  });

  it('an adversarially trained model (bulwark train --adversarial --audit) is marked backed', async () => {
    const r = ok(await protect('adv.onnx', 'adv.bwm', ['--audit', audit]), 'protect');
    const out = JSON.parse(r.stdout) as {
      manifest: ModelManifest;
      claims: { privacy: string; adversarial: string };
    };
    assert.deepEqual(out.claims, { privacy: 'none', adversarial: 'backed' });
    assert.deepEqual(out.manifest.lineage.adversarial, { method: 'pgd', eps: 0.1, steps: 3 });
    const ev = out.manifest.lineage.evidence?.adversarial;
    assert.equal(ev?.status === 'backed' ? ev.event.eventId : undefined, advEvent);
    const ins = ok(await bw(['model', 'inspect', p('adv.bwm')]), 'inspect');
    assert.match(
      ins.stdout,
      new RegExp(`adversarial: +pgd at eps 0\\.1, 3 steps \\[backed: audit event ${advEvent}`),
    );
  });

  it('a forged bulwark.adversarial is refused like a privacy claim', async () => {
    withMetadata('plain.onnx', 'forged-adv.onnx', {
      'bulwark.adversarial': JSON.stringify({ method: 'pgd', eps: 0.3, steps: 40 }),
    });
    refused(
      await protect('forged-adv.onnx', 'forged-adv.bwm', ['--audit', audit]),
      'ERR_LINEAGE_UNBACKED',
      /adversarial-training claim/,
    );
  });

  it('a claim the audit record contradicts is refused, --accept-claims or not', async () => {
    // The forger also records a training run for the forged model (anyone who can write the log could).
    withMetadata('plain.onnx', 'contradicted.onnx', { 'bulwark.privacy': FORGED_PRIVACY });
    const digest = sha256(readFileSync(p('contradicted.onnx')));
    const base = {
      modelDigest: digest,
      datasetDigest: sha256(readFileSync(p('data.csv'))),
      algorithm: 'mlp',
      hyperparameters: { seed: 1 },
    };
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: audit } });
    try {
      await log.append({ type: 'model.trained', data: base });
    } finally {
      await log.close();
    }
    for (const extra of [
      ['--audit', audit],
      ['--audit', audit, '--accept-claims'],
    ]) {
      refused(
        await protect('contradicted.onnx', 'contradicted.bwm', extra),
        'ERR_LINEAGE_MISMATCH',
        /claims \(0\.1, 0\.000001\)-differential privacy; the audit log records its training without differential privacy/,
      );
      assert.equal(existsSync(p('contradicted.bwm')), false);
    }
    // A later record with another epsilon: the latest record of the model is the one checked.
    const log2 = await AuditLog.open({ store: { kind: 'sqlite', path: audit } });
    try {
      await log2.append({
        type: 'model.trained',
        data: {
          ...base,
          privacy: { epsilon: 8, delta: 1e-6, accountant: 'rdp', noiseMultiplier: 4, clipNorm: 1 },
        },
      });
    } finally {
      await log2.close();
    }
    refused(
      await protect('contradicted.onnx', 'contradicted.bwm', ['--audit', audit]),
      'ERR_LINEAGE_MISMATCH',
      /epsilon 0\.1 claimed, 8 recorded/,
    );
  });

  it('--audit-event, --dataset and the log must agree with the record', async () => {
    refused(
      await protect('dp.onnx', 'x.bwm', ['--audit', audit, '--audit-event', plainEvent]),
      'ERR_LINEAGE_MISMATCH',
      new RegExp(
        `names training run ${plainEvent}; the audit log's record of this model is event ${dpEvent}`,
      ),
    );
    writeCsv(p('other.csv'), rows(50, 9));
    refused(
      await protect('dp.onnx', 'x.bwm', ['--audit', audit, '--dataset', p('other.csv')]),
      'ERR_LINEAGE_MISMATCH',
      /names training data/,
    );
    // Naming the DP model's training run does not back another model's claim: only the record of the
    // packaged model's own digest does.
    withMetadata('plain.onnx', 'forged-2.onnx', { 'bulwark.privacy': FORGED_PRIVACY, 'bulwark.note': '2' });
    refused(
      await protect('forged-2.onnx', 'x.bwm', ['--audit', audit, '--audit-event', dpEvent]),
      'ERR_LINEAGE_UNBACKED',
      /differential-privacy guarantee/,
    );
    assert.equal(existsSync(p('x.bwm')), false);
    // A plain model with its record: no claim, still version 1, the run cited from the log.
    const plain = ok(await protect('plain.onnx', 'plain.bwm', ['--audit', audit]), 'protect plain');
    const m = (JSON.parse(plain.stdout) as { manifest: ModelManifest }).manifest;
    assert.equal(m.version, 1);
    assert.equal(m.lineage.evidence, undefined);
    assert.equal(m.lineage.trainingRun?.eventId, plainEvent);
  });

  it('a signed package made before claims were checked (version 1, no evidence) still verifies, shown as unrecorded', async () => {
    // Written as the previous protectModel wrote it: version 1, the claim copied, no evidence.
    const onnx = readFileSync(p('forged.onnx'));
    const kr = await Keyring.open(p('kr.json'), { secret: { env: PASS_ENV } });
    try {
      const { manifest } = buildManifest(onnx, {
        keyring: kr,
        name: 'fraud-old',
        version: '1',
        acceptClaims: true,
      });
      const { evidence: _e, ...lineage } = manifest.lineage;
      const { noise: _n, ...privacy } = lineage.privacy ?? { epsilon: 0, delta: 0 };
      const old = { ...manifest, version: 1, lineage: { ...lineage, privacy } };
      parseManifest(old, 'old');
      const manifestBytes = Buffer.from(JSON.stringify(old), 'utf8');
      const parts: Buffer[] = [encodeHeader(manifestBytes.length), manifestBytes];
      for await (const c of encryptStream([onnx], kr, {
        keyId: 'data',
        frameSize: manifest.encryption.frameSize,
      }))
        parts.push(Buffer.from(c));
      const body = Buffer.concat(parts);
      const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
      const signature = Buffer.from(
        signStatement(
          buildStatement('fraud-old', [
            { name: RESOURCE_MANIFEST, algorithm: 'sha256', digest: hex(manifestBytes) },
            { name: RESOURCE_MODEL, algorithm: 'sha256', digest: manifest.onnx.sha256 },
            { name: RESOURCE_BODY, algorithm: 'sha256', digest: hex(body) },
          ]),
          await loadSigningKey(p('signer.key')),
        ),
        'utf8',
      );
      const encrypted = body.length - 16 - manifestBytes.length;
      writeFileSync(
        p('old.bwm'),
        Buffer.concat([body, signature, encodeFooter(encrypted, signature.length)]),
      );
    } finally {
      await kr.close();
    }
    const v = await verified('old.bwm');
    assert.equal(v.manifest.version, 1);
    assert.equal(v.claims.privacy, 'unrecorded');
    const r = ok(
      await bw([
        'model',
        'verify',
        p('old.bwm'),
        '--trust',
        p('trust.yaml'),
        '--keyring',
        p('kr.json'),
        '--passphrase-env',
        PASS_ENV,
        '--load',
      ]),
      'verify --load',
    );
    assert.match(r.stdout, /VERIFIED/);
    assert.match(r.stdout, /privacy: .*\[UNVERIFIED: packaged before Bulwark recorded what backs a claim\]/);
  });

  it('the evidence is part of the signed manifest: edited, the package is refused; a version-3 claim without evidence is malformed', async () => {
    const b = readFileSync(p('dp.bwm'));
    const at = b.indexOf(Buffer.from('"status":"backed"'));
    assert.ok(at > 0);
    const edited = Buffer.from(b);
    edited.write('"status":"xacked"', at);
    writeFileSync(p('edited.bwm'), edited);
    const r = await bw(['model', 'verify', p('edited.bwm'), '--trust', p('trust.yaml')]);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /ERR_DIGEST_MISMATCH|ERR_SIGNATURE_INVALID/);
    const m = (await verified('dp.bwm')).manifest;
    const { evidence: _e, ...bare } = m.lineage;
    const refused = (raw: unknown, re: RegExp) =>
      assert.throws(
        () => parseManifest(raw, 'x.bwm'),
        (e: unknown) => isBulwarkError(e, 'ERR_PACKAGE_INVALID') && re.test(e.message),
      );
    refused({ ...m, lineage: bare }, /each privacy or adversarial claim needs its evidence/);
    refused({ ...m, version: 2 }, /claim evidence needs manifest version 3/);
    refused(
      {
        ...m,
        lineage: {
          ...m.lineage,
          evidence: { ...m.lineage.evidence, adversarial: m.lineage.evidence?.privacy },
        },
      },
      /each privacy or adversarial claim needs its evidence, and only those/,
    );
  });

  it('with --audit-key the record that backs a claim must be proved under a checkpoint signed by that key', async () => {
    const pub = p('log.key.pub');
    assert.ok(existsSync(pub), 'audit keygen writes the public key beside the private one');
    const withKey = (out: string, key: string) =>
      protect('adv.onnx', out, ['--audit', audit, '--audit-key', key]);
    // Without a log the option has nothing to check.
    const alone = await protect('adv.onnx', 'alone.bwm', ['--audit-key', pub]);
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /ERR_USAGE.*--audit-key applies with an audit log/);
    // The only checkpoint was signed before the training was recorded: nothing covers the record yet.
    const uncovered = await withKey('uncovered.bwm', pub);
    assert.notEqual(uncovered.code, 0, uncovered.stderr);
    assert.match(uncovered.stderr, /ERR_AUDIT_CHECKPOINT_MISSING/);
    assert.equal(existsSync(p('uncovered.bwm')), false);
    ok(await bw(['audit', 'checkpoint', '--store', audit, '--signing-key', p('log.key')]), 'checkpoint');
    // Another key of the same name does not verify the log's checkpoint.
    ok(
      await bw(['audit', 'keygen', '--name', 'bulwark.test/claims', '--out', p('other.key')]),
      'other keygen',
    );
    const wrong = await withKey('wrong.bwm', p('other.key.pub'));
    assert.notEqual(wrong.code, 0, wrong.stderr);
    assert.match(wrong.stderr, /ERR_AUDIT_CHECKPOINT_SIGNATURE/);
    assert.equal(existsSync(p('wrong.bwm')), false);
    const r = ok(await withKey('proved.bwm', pub), 'protect --audit-key');
    const out = JSON.parse(r.stdout) as { claims: { adversarial: string } };
    assert.equal(out.claims.adversarial, 'backed');
  });

  it('with --trainer-key only a record the training job signed (train --record-key) backs a claim; one anyone appended does not', async () => {
    ok(
      await bw(['audit', 'keygen', '--name', 'bulwark.test/trainer', '--out', p('trainer.key')]),
      'trainer keygen',
    );
    // Without a log, --record-key has nothing to sign, and is refused before any training.
    const noLog = await bw(advTrainArgs('nolog.onnx', ['--record-key', p('trainer.key')]));
    assert.equal(noLog.code, 2, noLog.stderr);
    assert.match(noLog.stderr, /ERR_USAGE.*--record-key signs the model.trained record: it needs --audit/);
    assert.equal(existsSync(p('nolog.onnx')), false);
    // The job signs its record.
    const signed = ok(
      // Three epochs: another model than adv.onnx (the same run would give the same bytes, and the
      // latest record of a digest is the one cited).
      await bw(
        advTrainArgs('signed.onnx', ['--epochs', '3', '--audit', audit, '--record-key', p('trainer.key')]),
      ),
      'train --record-key',
    );
    const event = (JSON.parse(signed.stdout) as { auditEvent: string }).auditEvent;
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: audit } });
    let recorded: Awaited<ReturnType<AuditLog['trainingRecord']>>;
    try {
      recorded = await log.trainingRecord(sha256(readFileSync(p('signed.onnx'))));
    } finally {
      await log.close();
    }
    assert.equal(recorded?.eventId, event);
    assert.match(recorded?.data.recordedBy?.key ?? '', /^bulwark\.test\/trainer\+[0-9a-f]{8}\+/);
    const trainer = ['--audit', audit, '--trainer-key', p('trainer.key.pub')];
    const backed = ok(await protect('signed.onnx', 'signed.bwm', trainer), 'protect --trainer-key');
    assert.equal(
      (JSON.parse(backed.stdout) as { claims: { adversarial: string } }).claims.adversarial,
      'backed',
    );
    // adv.onnx's record was written without --record-key: with the trainer key it backs nothing.
    refused(
      await protect('adv.onnx', 'unsigned.bwm', trainer),
      'ERR_LINEAGE_UNBACKED',
      /record of this model .* is not signed by its writer .*--accept-claims/,
    );
    assert.equal(existsSync(p('unsigned.bwm')), false);
    // A forger who can append records a run of its own model, signed with a key of its own: refused.
    withMetadata('plain.onnx', 'forged-signed.onnx', {
      'bulwark.adversarial': JSON.stringify({ method: 'pgd', eps: 0.1, steps: 3 }),
    });
    ok(
      await bw(['audit', 'keygen', '--name', 'bulwark.test/trainer', '--out', p('forger.key')]),
      'forger key',
    );
    const forger = await AuditLog.open({ store: { kind: 'sqlite', path: audit } });
    try {
      forger.signRecordsWith(
        (await import('../../src/audit/index.js')).parseSignerKey(readFileSync(p('forger.key'), 'utf8')),
      );
      await forger.append({
        type: 'model.trained',
        data: {
          modelDigest: sha256(readFileSync(p('forged-signed.onnx'))),
          datasetDigest: sha256(readFileSync(p('data.csv'))),
          algorithm: 'mlp',
          hyperparameters: {},
          adversarial: { attack: 'pgd', epsilon: 0.1, steps: 3 },
        },
      });
    } finally {
      await forger.close();
    }
    refused(
      await protect('forged-signed.onnx', 'forged-signed.bwm', trainer),
      'ERR_LINEAGE_UNBACKED',
      /is signed by bulwark\.test\/trainer\+[0-9a-f]{8}, not by a trainer key given/,
    );
    // Without --trainer-key that forged record backs the claim: why the option exists.
    const open = ok(await protect('forged-signed.onnx', 'forged-open.bwm', ['--audit', audit]), 'protect');
    assert.equal(
      (JSON.parse(open.stdout) as { claims: { adversarial: string } }).claims.adversarial,
      'backed',
    );
    // audit verify checks each writer's signature and says who signed how many records.
    const v = ok(await bw(['audit', 'verify', '--store', audit]), 'audit verify');
    assert.match(
      v.stdout,
      /training records: 2 signed by their writer \(1 by bulwark\.test\/trainer\+[0-9a-f]{8}, 1 by bulwark\.test\/trainer\+[0-9a-f]{8}; each signature verified\), \d+ unsigned/,
    );
    // --accept-claims packages the model with its claim marked unchecked.
    const claimed = ok(
      await protect('adv.onnx', 'claimed.bwm', [...trainer, '--accept-claims']),
      'protect --accept-claims',
    );
    assert.equal(
      (JSON.parse(claimed.stdout) as { claims: { adversarial: string } }).claims.adversarial,
      'claimed',
    );
  });
});
