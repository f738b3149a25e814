import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';
import { PASS_ENV, tempDir } from '../model/helpers.js';
import {
  auditTailArgs,
  backdoored,
  DP_SCHEMA,
  flipLabels,
  fromArgs,
  packageArgs,
  packageFiles,
  parseAuditEvents,
  protectArgs,
  rows,
  setUpPackages,
  trainMlpArgs,
  writeCsv,
} from './helpers.js';

/**
 * `bulwark train --from PARENT.bwm` through the built CLI, each step a separate process: a protected
 * package is verified, decrypted in memory, fine-tuned on a new batch after the poisoning checks,
 * compared with the parent, and written as a new signed package naming its parent. Data: a label "yes"
 * when a noisy linear score of x1..x4 is high (as test/integrity/cli.test.ts).
 */

const t = tempDir('continuous');
// The child processes' temporary folder: checked for plaintext models at the end.
const tmp = join(t.dir, 'tmp');
const outDir = join(t.dir, 'out');
const env = { [PASS_ENV]: process.env[PASS_ENV] as string, TMPDIR: tmp };
const { kr, trust } = packageFiles(t.dir);
const db = join(t.dir, 'audit.db');
const parent = join(t.dir, 'parent.bwm');
const batch = join(t.dir, 'batch.csv');
const flipped = join(t.dir, 'flipped.csv');
const backdoor = join(t.dir, 'backdoor.csv');
const evalSet = join(t.dir, 'eval.csv');
let plantedRows: number[] = [];

function bw(args: string[]) {
  return runBulwark(args, { cwd: t.dir, env });
}

/**
 * {@link bw} in this process: for the refusals raised before any training and the audit log
 * read-backs (each spawned run was 0.5 s of CPU, nearly all Node start-up). One at a time.
 */
function bwHere(args: string[]) {
  return runBulwarkInProcess(args, { cwd: t.dir, env });
}

/** {@link bw} without blocking: for runs that do not depend on each other (see inParallel). */
function bwAsync(args: string[]) {
  return runBulwarkAsync(args, { cwd: t.dir, env });
}

const sha256File = (p: string) => `sha256:${createHash('sha256').update(readFileSync(p)).digest('hex')}`;

function onnxFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.toLowerCase().endsWith('.onnx'),
  );
}

/** `train --from` with the package options; `extra` overrides or adds. */
function continueFrom(from: string, data: string, out: string, extra: string[] = []) {
  return bw(continueArgs(from, data, out, extra));
}

/** The arguments of {@link continueFrom}. */
function continueArgs(from: string, data: string, out: string, extra: string[] = []): string[] {
  return [
    ...fromArgs(from, data, evalSet),
    '--epochs',
    '30',
    '--lr',
    '0.003',
    '--max-clean-drop',
    '0.03',
    '--max-robust-drop',
    '0.05',
    ...packageArgs(t.dir),
    '--out',
    out,
    '--audit',
    db,
    ...extra,
  ];
}

async function auditTypes(): Promise<string[]> {
  return parseAuditEvents(await bwHere(auditTailArgs(db))).map((e) => e.type);
}

before(async () => {
  mkdirSync(tmp);
  mkdirSync(outDir);
  writeCsv(join(t.dir, 'base.csv'), rows(1500, 1));
  writeCsv(evalSet, rows(400, 2));
  const fresh = rows(600, 5);
  writeCsv(batch, fresh);
  // An attacker flips most labels of the new batch.
  writeCsv(flipped, flipLabels(fresh, 0.7, 6));
  // A planted backdoor: copies of "yes" rows with the trigger (kiosk at 4 a.m.) labelled "no",
  // 12 % of the "no" class, appended at the end (1-based data rows after the 600 clean ones).
  const planted = backdoored(fresh, 0.12, 7);
  plantedRows = planted.slice(fresh.length).map((_, i) => fresh.length + i + 1);
  writeCsv(backdoor, planted);

  // Training the parent needs no keys: it runs while the keys are made (one at a time: 2 processes).
  const train = trainMlpArgs(join(t.dir, 'base.csv'), join(t.dir, 'base.onnx'));
  const [trained] = await Promise.all([
    bwAsync(train),
    setUpPackages(bwAsync, t.dir, db, 'bulwark.test/continuous', 1),
  ]);
  assert.equal(trained.code, 0, `train: ${trained.stderr}`);
  const prot = bw(protectArgs(t.dir, join(t.dir, 'base.onnx'), parent, 'fraud-mlp'));
  assert.equal(prot.code, 0, `model protect: ${prot.stderr}`);
  // From here on the only model is the package: the plaintext parent is gone.
  rmSync(join(t.dir, 'base.onnx'));
});

after(() => t.cleanup());

describe('bulwark train --from PARENT.bwm (continuous learning from a protected package)', () => {
  it('a clean batch: a new signed package that verifies and loads, its lineage names the parent and the run', async () => {
    const next = join(outDir, 'next.bwm');
    const r = continueFrom(parent, batch, next);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      version: string;
      parent: { packageDigest: string; name: string; version: string };
      comparison: { accepted: boolean };
      auditEvent: string;
      packagedEvent: string;
      package: string;
    };
    assert.equal(j.comparison.accepted, true);
    assert.equal(j.version, '1.0.1');
    assert.equal(j.parent.packageDigest, sha256File(parent));
    assert.equal(j.package, sha256File(next));
    // The checks below only read the packages and the log: they run two processes at a time.
    const [v, ins, insText, insParent, tail] = (await inParallel([
      // Another process verifies, decrypts and opens the new package in ONNX Runtime.
      () =>
        bwAsync([
          '--json',
          'model',
          'verify',
          next,
          '--trust',
          trust,
          '--keyring',
          kr,
          '--passphrase-env',
          PASS_ENV,
          '--load',
        ]),
      () => bwAsync(['--json', 'model', 'inspect', next]),
      () => bwAsync(['model', 'inspect', next]),
      () => bwAsync(['--json', 'model', 'inspect', parent]),
      () => bwAsync(auditTailArgs(db)),
    ])) as [CliRun, CliRun, CliRun, CliRun, CliRun];
    assert.equal(v.code, 0, v.stderr);
    assert.equal(JSON.parse(v.stdout).loaded, true);
    assert.equal(ins.code, 0, ins.stderr);
    const m = JSON.parse(ins.stdout).manifest as {
      model: { name: string; version: string };
      lineage: {
        parent: { packageDigest: string; modelDigest: string; name: string; version: string };
        trainingRun: { eventId: string; index: number };
        algorithm: string;
        datasetDigest: string;
        privacy?: unknown;
      };
    };
    assert.deepEqual(m.model.name, 'fraud-mlp');
    assert.equal(m.lineage.parent.packageDigest, sha256File(parent));
    assert.deepEqual([m.lineage.parent.name, m.lineage.parent.version], ['fraud-mlp', '1.0.0']);
    assert.equal(m.lineage.trainingRun.eventId, j.auditEvent);
    assert.equal(m.lineage.algorithm, 'fine-tune');
    assert.equal(m.lineage.datasetDigest, sha256File(batch));
    assert.equal(m.lineage.privacy, undefined, 'fine-tuning is not DP: no privacy claim');
    assert.match(insText.stdout, /parent: +fraud-mlp 1\.0\.0, package sha256:/);
    const parentManifest = JSON.parse(insParent.stdout).manifest;
    assert.equal(m.lineage.parent.modelDigest, `sha256:${parentManifest.onnx.sha256}`);
    // The audit log holds model.trained then model.packaged, in that order, as the last two entries.
    const types = parseAuditEvents(tail).map((e) => e.type);
    assert.deepEqual(types.slice(-2), ['model.trained', 'model.packaged']);
    // The new package can itself be continued (lineage chains).
    const second = join(t.dir, 'batch2.csv');
    writeCsv(second, rows(600, 8));
    // A second fine-tune erodes robust accuracy by several points on this small MLP (the ONNX path
    // does the same); this step checks the lineage chain, so its robust-drop limit is loose.
    const again = continueFrom(next, second, join(outDir, 'next2.bwm'), [
      '--model-version',
      '2.0.0',
      '--epochs',
      '10',
      '--lr',
      '0.001',
      '--max-robust-drop',
      '0.15',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).parent.packageDigest, sha256File(next));
  });

  it('a label-flipped batch is refused (ERR_MODEL_REGRESSION): nothing written, nothing recorded', async () => {
    const before = (await auditTypes()).length;
    const out = join(outDir, 'flipped.bwm');
    const r = continueFrom(parent, flipped, out);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_MODEL_REGRESSION/);
    assert.equal(existsSync(out), false);
    assert.equal((await auditTypes()).length, before);
  });

  it('a planted backdoor (12 % of the "no" class): every planted row removed, the clean rows of their activation cluster put back, the fine-tune accepted', async () => {
    const before = (await auditTypes()).length;
    const out = join(outDir, 'backdoor.bwm');
    const r = continueFrom(parent, backdoor, out, ['--expected-poison', '0.12']);
    // The parent never saw the batch: the planted rows' labels contradict it, the clean rows of the
    // cluster they share agree with it (exclusionary reclassification). Before the clean rows were put
    // back, the cluster went whole and the fine-tune lost robust accuracy (0.875 -> 0.735, refused
    // with ERR_MODEL_REGRESSION) though every planted row was out: a refusal for the defence's own
    // removal of clean rows.
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      removedRows: number[];
      reinstated: { class: string; cluster: number; spectral: number; rows: number }[];
    };
    assert.ok(plantedRows.length > 40);
    const removed = new Set(j.removedRows);
    assert.deepEqual(
      plantedRows.filter((p) => !removed.has(p)),
      [],
    );
    const back = j.reinstated.reduce((n, c) => n + c.rows, 0);
    assert.ok(back > 0, JSON.stringify(j.reinstated));
    assert.ok(existsSync(out));
    assert.ok((await auditTypes()).length > before);
  });

  it('a tampered, untrusted or wrongly keyed parent is refused with its code before any training', async () => {
    const before = (await auditTypes()).length;
    const bytes = readFileSync(parent);
    const tampered = join(t.dir, 'tampered.bwm');
    const b = Buffer.from(bytes);
    const mid = Math.floor(b.length / 2);
    b[mid] = (b[mid] as number) ^ 0x01;
    writeFileSync(tampered, b);
    const out = join(outDir, 'never.bwm');
    // A trust policy that does not list the signer (its key is made below).
    const other = join(t.dir, 'other.key');
    const otherTrust = join(t.dir, 'other-trust.yaml');
    writeFileSync(
      otherTrust,
      'version: 1\nsigners:\n  - name: other\n    publicKeyFile: other.key.pub\n    models: ["*"]\n',
    );
    // Another keyring: the data key does not unwrap.
    const kr2 = join(t.dir, 'kr2.json');
    writeFileSync(join(t.dir, 'dp-schema.yaml'), DP_SCHEMA);
    // The refusals run in this process, one at a time; the two key files are made by the executable.
    const [kg, ki] = (await inParallel([
      () => bwAsync(['model', 'keygen', '--out', other]),
      () => bwAsync(['keys', 'init', '--keyring', kr2, '--passphrase-env', PASS_ENV, '--scrypt-log-n', '10']),
    ])) as [CliRun, CliRun];
    assert.equal(kg.code, 0, kg.stderr);
    assert.equal(ki.code, 0, ki.stderr);
    const t1 = await bwHere(continueArgs(tampered, batch, out));
    // Missing package options are a usage error naming them.
    const u = await bwHere([
      'train',
      '--from',
      parent,
      '--data',
      batch,
      '--eval',
      evalSet,
      '--label',
      'label',
      '--out',
      out,
    ]);
    // A DP fine-tune needs the schema and the gate's limit, and a DP-trained parent: this one is not.
    const dp = await bwHere(continueArgs(parent, batch, out, ['--dp-epsilon', '1']));
    // Package options with a plain ONNX parent are a usage error, as is a non-.bwm output.
    const noPkg = await bwHere(continueArgs(batch, batch, join(outDir, 'x.bwm')));
    const onnxOut = await bwHere(continueArgs(parent, batch, join(outDir, 'x.onnx')));
    const t2 = await bwHere(continueArgs(parent, batch, out, ['--trust', otherTrust]));
    const t3 = await bwHere(continueArgs(parent, batch, out, ['--keyring', kr2]));
    // A signing key the policy does not trust for this model: refused before training too.
    const t4 = await bwHere(continueArgs(parent, batch, out, ['--sign-key', other]));
    const nonDp = await bwHere(
      continueArgs(parent, batch, out, [
        '--dp-epsilon',
        '1',
        '--schema',
        join(t.dir, 'dp-schema.yaml'),
        '--max-flagged',
        '0.3',
        '--ledger',
        join(t.dir, 'ledger.sqlite'),
      ]),
    );
    assert.equal(t1.code, 5, t1.stderr);
    assert.match(t1.stderr, /ERR_DIGEST_MISMATCH/);
    assert.doesNotMatch(t1.stderr, /at .*\.js:\d+/, 'one line, no stack trace');
    assert.equal(t2.code, 5, t2.stderr);
    assert.match(t2.stderr, /ERR_SIGNER_UNTRUSTED/);
    assert.equal(t3.code, 5, t3.stderr);
    assert.match(t3.stderr, /ERR_KEY_NOT_FOUND/);
    assert.equal(t4.code, 5, t4.stderr);
    assert.match(t4.stderr, /ERR_SIGNER_UNTRUSTED/);
    for (const x of [t1, t2, t3, t4]) assert.doesNotMatch(x.stderr, /fine-tun|Poisoning check/i);
    assert.equal(existsSync(out), false);
    assert.equal((await auditTypes()).length, before, 'no model.trained event: no training ran');
    assert.equal(u.code, 2, u.stderr);
    assert.match(u.stderr, /--keyring, --trust, --sign-key/);
    assert.equal(dp.code, 2, dp.stderr);
    assert.match(dp.stderr, /ERR_USAGE.*needs --schema/);
    assert.equal(nonDp.code, 2, nonDp.stderr);
    assert.match(nonDp.stderr, /ERR_DP_UNACCOUNTED.*not trained with differential privacy/);
    assert.equal(noPkg.code, 2, noPkg.stderr);
    assert.match(noPkg.stderr, /apply when --from is a protected package/);
    assert.equal(onnxOut.code, 2, onnxOut.stderr);
    assert.match(onnxOut.stderr, /--out .*name it \*\.bwm/);
  });

  it('an evaluation set of one row (or too few for the limits) is refused before any training, naming --eval', async () => {
    // With one row the comparison with the parent passed or failed by chance, and the package was written.
    const one = join(t.dir, 'eval-1.csv');
    const few = join(t.dir, 'eval-99.csv');
    writeCsv(one, rows(1, 2));
    writeCsv(few, rows(99, 2));
    const before = (await auditTypes()).length;
    const out = join(outDir, 'small-eval.bwm');
    const withEval = (file: string) =>
      continueArgs(parent, batch, out).map((a) => (a === evalSet ? file : a));
    const runs: [CliRun, CliRun] = [await bwHere(withEval(one)), await bwHere(withEval(few))];
    for (const [r, n] of [
      [runs[0], '1 row'],
      [runs[1], '99 rows'],
    ] as const) {
      assert.equal(r.code, 3, r.stderr);
      const e = JSON.parse(r.stderr.trim().split('\n').at(-1) as string) as {
        error: { code: string; message: string; details: { minimum: number } };
      };
      assert.equal(e.error.code, 'ERR_DATA_VALUE');
      assert.match(
        e.error.message,
        new RegExp(`^the evaluation set \\(--eval\\) has ${n}; the regression comparison needs at least 100`),
      );
      assert.equal(e.error.details.minimum, 100);
      assert.doesNotMatch(r.stderr, /fine-tun|Poisoning check/i);
    }
    assert.equal(existsSync(out), false);
    assert.equal((await auditTypes()).length, before, 'nothing recorded');
  });

  it('the plaintext ONNX never touches disk: no .onnx file in the output or temporary folders', () => {
    assert.deepEqual(onnxFiles(outDir), []);
    assert.deepEqual(onnxFiles(tmp), []);
    assert.deepEqual(onnxFiles(t.dir), []);
    assert.ok(readdirSync(outDir).some((f) => f.endsWith('.bwm')));
  });
});
