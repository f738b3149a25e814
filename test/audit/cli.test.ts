import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AuditLog, parseSignerKey } from '../../src/audit/index.js';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';

const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('bulwark audit (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-cli-'));
  const key = join(dir, 'log.key');
  const db = join(dir, 'audit.db');
  after(() => rmSync(dir, { recursive: true, force: true }));
  let predictionId = '';

  it('keygen writes a private key (0600) and its public key, and refuses to overwrite', async () => {
    const r = runBulwark(['audit', 'keygen', '--name', 'bulwark.test/cli', '--out', key, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { publicKey: string };
    assert.match(out.publicKey, /^bulwark\.test\/cli\+[0-9a-f]{8}\+/);
    assert.equal(readFileSync(`${key}.pub`, 'utf8').trim(), out.publicKey);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const again = await runBulwarkInProcess(['audit', 'keygen', '--name', 'bulwark.test/cli', '--out', key]);
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stderr, /^bulwark: ERR_FILE_EXISTS: /);
  });

  it('checkpoint --signing-key does not start a log in a missing folder: exit 3, the flag and folder named', async () => {
    const missing = join(dir, 'bulwrak');
    const store = join(missing, 'audit.db');
    const r = await runBulwarkInProcess(['audit', '--store', store, 'checkpoint', '--signing-key', key]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(
      r.stderr,
      `bulwark: ERR_FILE_NOT_FOUND: cannot write audit log ${store} (--store): no such folder: ${missing} (create it first)\n`,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(existsSync(missing), false);
  });

  it('verify --key naming a missing file says the file is missing (exit 3), not that the key is malformed', async () => {
    const missing = join(dir, 'nope.key.pub');
    const r = await runBulwarkInProcess(['audit', '--store', db, 'verify', '--key', missing]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, `bulwark: ERR_FILE_NOT_FOUND: public key file not found: ${missing}\n`);
    // A value that has the shape of a key (name+id+key) is still parsed as one, with the key's error.
    const bad = await runBulwarkInProcess([
      'audit',
      '--store',
      db,
      'verify',
      '--key',
      'bulwark.test/cli+zz+AAAA',
    ]);
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(
      bad.stderr,
      /^bulwark: ERR_AUDIT_KEY_INVALID: verifier key: key ID must be 8 lowercase hex digits\n$/,
    );
  });

  it('checkpoint, verify, prove, verify --proof, tail and lineage on a log', async () => {
    const signer = parseSignerKey(readFileSync(key, 'utf8'));
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: db }, origin: signer.name, signer });
    await log.append({
      type: 'key.created',
      data: { keyId: 'dek-1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
    });
    await log.append({
      type: 'dataset.created',
      data: { datasetDigest: digest('raw'), source: 'synthetic', rows: 10, columns: 3 },
    });
    await log.append({
      type: 'dataset.protected',
      data: {
        datasetDigest: digest('prot'),
        sourceDigest: digest('raw'),
        schemaDigest: digest('s'),
        protectedFields: ['email'],
        keyIds: ['dek-1'],
        rows: 10,
      },
    });
    await log.append({
      type: 'model.trained',
      data: {
        modelDigest: digest('m'),
        datasetDigest: digest('prot'),
        algorithm: 'logistic-regression',
        hyperparameters: { l2: 0.01 },
      },
    });
    predictionId = (
      await log.append({
        type: 'prediction',
        data: {
          requestId: 'r1',
          caller: 'alice',
          modelDigest: digest('m'),
          inputDigest: digest('x'),
          decision: 'fraud',
          detections: [],
          latencyMs: 3,
        },
      })
    ).id;
    await log.close();

    const cp = runBulwark(['audit', 'checkpoint', '--store', db, '--signing-key', key]);
    assert.equal(cp.code, 0, cp.stderr);
    assert.match(
      cp.stdout,
      /^bulwark\.test\/cli\n5\n[A-Za-z0-9+/]{43}=\n\n\u2014 bulwark\.test\/cli \S+\n$/u,
    );
    // The rest reads the log (prove writes only its proof file, checked by the next run): two
    // processes at a time.
    const proofFile = join(dir, 'proof.json');
    const [latest, v, [p, check], tail, lin] = (await inParallel<unknown>([
      () => runBulwarkAsync(['audit', 'checkpoint', '--store', db]),
      () => runBulwarkAsync(['audit', 'verify', '--store', db, '--key', `${key}.pub`, '--schema', '--json']),
      async () => [
        await runBulwarkAsync(['audit', 'prove', predictionId, '--store', db, '--out', proofFile]),
        await runBulwarkAsync(['audit', 'verify', '--proof', proofFile, '--key', `${key}.pub`]),
      ],
      () => runBulwarkAsync(['audit', 'tail', '--store', db, '-n', '2', '--json']),
      () => runBulwarkAsync(['audit', 'lineage', predictionId, '--store', db]),
      // An --out that is the log itself or the signing key is refused before anything is written.
      async () => {
        for (const args of [
          ['checkpoint', '--store', db, '--out', db],
          ['checkpoint', '--store', db, '--signing-key', key, '--out', key, '--force'],
          ['prove', predictionId, '--store', db, '--out', db, '--force'],
        ]) {
          const r = await runBulwarkAsync(['audit', ...args]);
          assert.equal(r.code, 2, r.stderr);
          assert.match(r.stderr, /^bulwark: ERR_USAGE: --out \S+ is also an input of this command/);
        }
        return undefined;
      },
    ])) as [CliRun, CliRun, [CliRun, CliRun], CliRun, CliRun, undefined];
    assert.equal(latest.stdout, cp.stdout);

    assert.equal(v.code, 0, v.stderr);
    const report = JSON.parse(v.stdout) as {
      ok: boolean;
      entries: number;
      checkpoints: number;
      keySource: string;
    };
    assert.deepEqual(
      [report.ok, report.entries, report.checkpoints, report.keySource],
      [true, 5, 1, 'argument'],
    );

    assert.equal(p.code, 0, p.stderr);
    const again = await runBulwarkInProcess([
      'audit',
      'prove',
      predictionId,
      '--store',
      db,
      '--out',
      proofFile,
    ]);
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stderr, /ERR_FILE_EXISTS: refusing to overwrite .* \(add --force to replace it\)/);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^OK: event \S+ \(#4, prediction\) is in bulwark\.test\/cli at tree size 5/);

    assert.deepEqual(
      (JSON.parse(tail.stdout) as { type: string }[]).map((e) => e.type),
      ['model.trained', 'prediction'],
    );
    assert.equal(lin.code, 0, lin.stderr);
    const lines = lin.stdout.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => /#\d+ (\S+):/.exec(l)?.[1]),
      ['prediction', 'model.trained', 'dataset.protected', 'dataset.created', 'key.created'],
    );
  });

  it('exits 5 with a distinct code on tampering and on a wrong key', async () => {
    const other = join(dir, 'other.key');
    assert.equal(runBulwark(['audit', 'keygen', '--name', 'bulwark.test/cli', '--out', other]).code, 0);
    // Two checks that only read: two processes at a time.
    const [wrongKey, proofCheck] = (await inParallel([
      () => runBulwarkAsync(['audit', 'verify', '--store', db, '--key', `${other}.pub`]),
      () => runBulwarkAsync(['audit', 'verify', '--proof', join(dir, 'proof.json'), '--key', `${other}.pub`]),
    ])) as [CliRun, CliRun];
    assert.equal(wrongKey.code, 5, wrongKey.stderr);
    assert.match(wrongKey.stderr, /^bulwark: ERR_AUDIT_CHECKPOINT_SIGNATURE: /);
    assert.equal(proofCheck.code, 5);

    const d = new Database(db);
    d.prepare(`UPDATE entries SET body = replace(body, '"alice"', '"mallory"') WHERE idx = 4`).run();
    d.close();
    const v = runBulwark(['audit', 'verify', '--store', db, '--key', `${key}.pub`]);
    assert.equal(v.code, 5, v.stderr);
    assert.match(v.stderr, /^bulwark: ERR_AUDIT_ENTRY_CORRUPT: entry #4 was altered/);
  });

  it('fails closed: unreachable database exits 6; an unknown event exits 3', async () => {
    const [down, unknown] = (await inParallel([
      () => runBulwarkAsync(['audit', 'tail', '--store', 'postgres://postgres@127.0.0.1:1/test']),
      () => runBulwarkAsync(['audit', 'lineage', 'no-such-event', '--store', db]),
    ])) as [CliRun, CliRun];
    assert.equal(down.code, 6, down.stderr);
    assert.match(down.stderr, /^bulwark: ERR_AUDIT_UNAVAILABLE: /);
    assert.equal(unknown.code, 3, unknown.stderr);
    assert.match(unknown.stderr, /ERR_AUDIT_EVENT_NOT_FOUND/);
    // A URL that does not parse is a usage error, and its text (a password, say) is not repeated.
    const bad = await runBulwarkInProcess(['audit', 'tail', '--store', 'postgres://bob:S3cret@[::1:1/x']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /ERR_USAGE: the audit store is a postgres:\/\/ URL that does not parse/);
    assert.doesNotMatch(bad.stderr, /S3cret/);
  });
});
