import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, type NoteSigner } from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';
import { fileDigest } from '../../src/integrity/index.js';
import { type CliRun, inParallel } from '../helpers/cli.js';
import { PASS_ENV } from '../model/helpers.js';

/**
 * CSV rows for the integrity CLI tests: a label "yes" when a noisy linear score of x1..x4 is high, with
 * a channel and an hour a trigger can use (the columns of HEADER).
 */
export function rows(n: number, seed: number): string[] {
  const rng = new SeededRng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    const ch = rng.pick(['web', 'shop', 'phone', 'kiosk']);
    const hour = rng.int(24);
    const z = 1.5 * (x[0] as number) - (x[1] as number) + 0.5 * (x[2] as number) + rng.normal(0, 0.3);
    out.push(`${x.map((v) => v.toFixed(4)).join(',')},${ch},${hour},${z > 0.5 ? 'yes' : 'no'}`);
  }
  return out;
}

export const HEADER = 'x1,x2,x3,x4,channel,hour,label';

/** Writes `lines` (from {@link rows}) as a CSV file under {@link HEADER}. */
export function writeCsv(path: string, lines: readonly string[]): void {
  writeFileSync(path, `${[HEADER, ...lines].join('\n')}\n`);
}

/** `fresh` with each label flipped with probability `share` (seeded): an attacker's label-flipped batch. */
export function flipLabels(fresh: readonly string[], share: number, seed: number): string[] {
  const rng = new SeededRng(seed);
  return fresh.map((r) =>
    rng.nextFloat() < share ? r.replace(/,(yes|no)$/, (_, v: string) => (v === 'yes' ? ',no' : ',yes')) : r,
  );
}

/** `bulwark train` of an MLP with 32 hidden units on `data` (label "label") into `out`; add the rest. */
export function mlpArgs(data: string, out: string): string[] {
  return ['train', '--data', data, '--label', 'label', '--model', 'mlp', '--hidden', '32', '--out', out];
}

/** `bulwark train` arguments for the small MLP the integrity tests train (32 hidden, 40 epochs, 10 % held out, seed 1). */
export function trainMlpArgs(data: string, out: string): string[] {
  return [...mlpArgs(data, out), '--epochs', '40', '--test-fraction', '0.1', '--seed', '1'];
}

/** `bulwark --json train --from` of `from` on `data`, compared on `evalSet` (label "label"); add the rest. */
export function fromArgs(from: string, data: string, evalSet: string): string[] {
  return ['--json', 'train', '--from', from, '--data', data, '--eval', evalSet, '--label', 'label'];
}

/** The schema of {@link rows} with public bounds and categories (for DP training). */
export const DP_SCHEMA = `version: 1
label: label
fields:
  - { name: x1, type: number, bounds: { min: -4, max: 4 } }
  - { name: x2, type: number, bounds: { min: -4, max: 4 } }
  - { name: x3, type: number, bounds: { min: -4, max: 4 } }
  - { name: x4, type: number, bounds: { min: -4, max: 4 } }
  - { name: channel, type: category, categories: [web, shop, phone, kiosk] }
  - { name: hour, type: integer, bounds: { min: 0, max: 23 } }
  - { name: label, type: category, categories: ['no', 'yes'] }
`;

/** The backdoored batch: `fresh` plus copies of "yes" rows with the trigger (kiosk, 4 a.m.) labelled "no". */
export function backdoored(fresh: string[], share: number, seed: number): string[] {
  const yes = fresh.filter((r) => r.endsWith(',yes'));
  const k = Math.round(share * (fresh.length - yes.length));
  const rng = new SeededRng(seed);
  const planted: string[] = [];
  for (let i = 0; i < k; i++) {
    const r = (yes[rng.int(yes.length)] as string).split(',');
    r[4] = 'kiosk';
    r[5] = '4';
    r[6] = 'no';
    planted.push(r.join(','));
  }
  return [...fresh, ...planted];
}

/** The package tests' files in their folder: keyring, package signing key, trust policy. */
export function packageFiles(dir: string): { kr: string; signer: string; trust: string } {
  return { kr: join(dir, 'kr.json'), signer: join(dir, 'signer.key'), trust: join(dir, 'trust.yaml') };
}

/** The options `train --from PARENT.bwm` needs: decrypt and verify the parent, sign the new package. */
export function packageArgs(dir: string): string[] {
  const f = packageFiles(dir);
  return ['--keyring', f.kr, '--passphrase-env', PASS_ENV, '--trust', f.trust, '--sign-key', f.signer];
}

/**
 * Prepares `dir` for the package tests with `bw` (the CLI run in that folder): the keyring and the
 * package signing key of {@link packageFiles}, a trust policy trusting that key for models `fraud-*`,
 * and an audit store `audit` with a signed checkpoint (its key log.key, log name `logName`). The three
 * key files do not depend on each other: they are made `limit` processes at a time (1 when the caller
 * runs something else alongside).
 */
export async function setUpPackages(
  bw: (args: string[]) => Promise<CliRun>,
  dir: string,
  audit: string,
  logName: string,
  limit = 2,
): Promise<void> {
  const f = packageFiles(dir);
  const check = (s: string[], r: CliRun) =>
    assert.equal(r.code, 0, `${s.slice(0, 2).join(' ')}: ${r.stderr}`);
  const keys = [
    ['keys', 'init', '--keyring', f.kr, '--passphrase-env', PASS_ENV, '--scrypt-log-n', '10'],
    ['model', 'keygen', '--out', f.signer],
    ['audit', 'keygen', '--name', logName, '--out', join(dir, 'log.key')],
  ];
  const runs = await inParallel(
    keys.map((s) => () => bw(s)),
    limit,
  );
  for (const [i, s] of keys.entries()) check(s, runs[i] as CliRun);
  const checkpoint = ['audit', 'checkpoint', '--store', audit, '--signing-key', join(dir, 'log.key')];
  check(checkpoint, await bw(checkpoint));
  writeFileSync(
    f.trust,
    'version: 1\nsigners:\n  - name: ml-platform\n    publicKeyFile: signer.key.pub\n    models: ["fraud-*"]\n',
  );
}

/** `bulwark model protect` of `onnx` into `out` (version 1.0.0) with the keys of {@link setUpPackages}. */
export function protectArgs(dir: string, onnx: string, out: string, name: string): string[] {
  const f = packageFiles(dir);
  const keys = ['--keyring', f.kr, '--passphrase-env', PASS_ENV, '--sign-key', f.signer];
  return ['model', 'protect', onnx, ...keys, '--out', out, '--name', name, '--model-version', '1.0.0'];
}

/** The events of an audit store, oldest first (`bulwark --json audit tail`). */
export function auditEvents<D = unknown>(
  bw: (args: string[]) => CliRun,
  store: string,
): { type: string; data: D }[] {
  return parseAuditEvents<D>(bw(auditTailArgs(store)));
}

/** The arguments of {@link auditEvents}: run them with the async runner, parse with {@link parseAuditEvents}. */
export function auditTailArgs(store: string): string[] {
  return ['--json', 'audit', 'tail', '--store', store, '--count', '100000'];
}

/** The events in the output of `bulwark --json audit tail` (exit 0 checked). */
export function parseAuditEvents<D = unknown>(r: CliRun): { type: string; data: D }[] {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { type: string; data: D }[];
}

/**
 * Records `file` in the audit log `db` as a protected dataset of `rows` rows (a dataset.protected
 * event with its file digest, as `bulwark data protect --audit` does), for the --require-provenance
 * tests. The log is opened with `signer` and closed again.
 */
export async function recordProtected(
  db: string,
  signer: NoteSigner,
  file: string,
  rows: number,
): Promise<void> {
  const log = await AuditLog.open({ store: { kind: 'sqlite', path: db }, origin: signer.name, signer });
  try {
    const digest = await fileDigest(file);
    await log.append({
      type: 'dataset.protected',
      data: { datasetDigest: digest, schemaDigest: digest, protectedFields: ['x1'], keyIds: ['k1'], rows },
    });
  } finally {
    await log.close();
  }
}
