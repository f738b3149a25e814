import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeTransactionsCsv } from '../../src/data/index.js';
import { type CliRun, inParallel, runBulwark, runBulwarkAsync } from '../helpers/cli.js';

interface TailEntry {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/**
 * `--audit <store>` on the lifecycle commands: keys, data protect, train (plain and DP) and query
 * record what they did in the audit log, the lineage of a trained model reaches its dataset and keys,
 * and a log that cannot be opened refuses the operation before anything is written.
 */
describe('lifecycle commands record to the audit log (--audit)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-record-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'audit.db');
  const pass = join(dir, 'pass.txt');
  writeFileSync(pass, 'a long test passphrase\n');
  const kr = join(dir, 'keys.json');
  const auth = ['--keyring', kr, '--passphrase-file', pass];
  const ok = (args: string[]) => {
    const r = runBulwark(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  /** {@link ok} for runs that do not depend on each other: two processes at a time. */
  const allOk = async (runs: string[][]) => {
    const rs = await inParallel(runs.map((args) => () => runBulwarkAsync(args)));
    for (const [i, args] of runs.entries()) {
      const r = rs[i] as CliRun;
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    return rs as CliRun[];
  };

  it('records keys, protection, training and privacy spends, with lineage', async () => {
    const key = join(dir, 'log.key');
    const src = join(dir, 'tx.csv');
    await writeTransactionsCsv(src, { rows: 400, fraudRate: 0.1, seed: 5 });
    const ledger = join(dir, 'ledger.sqlite');
    // The log key, the keyring, the schema and the budget do not depend on each other (nor record to
    // the log). The commands that record run one after another below: the log's order is theirs.
    await allOk([
      ['audit', 'keygen', '--name', 'bulwark.test/ops', '--out', key],
      ['keys', 'init', ...auth, '--scrypt-log-n', '10'],
      ['data', 'schema', src, '--out', join(dir, 'schema.yaml')],
      ['query', 'budget', 'set', 'tx', '--epsilon', '1', '--ledger', ledger],
    ]);
    ok(['audit', 'checkpoint', '--store', db, '--signing-key', key]);
    ok(['keys', 'create', 'reports', ...auth, '--audit', db]);

    const prot = join(dir, 'tx.protected.csv');
    const protect = ok([
      '--json',
      'data',
      'protect',
      src,
      '--schema',
      join(dir, 'schema.yaml'),
      '--out',
      prot,
      ...auth,
      '--audit',
      db,
    ]);
    assert.match((JSON.parse(protect.stdout) as { auditEvent: string }).auditEvent, /\S+/);

    const model = join(dir, 'model.onnx');
    const train = ok([
      '--json',
      'train',
      '--data',
      prot,
      '--label',
      'is_fraud',
      '--epochs',
      '2',
      '--out',
      model,
      '--audit',
      db,
      // The protected file is checked against its manifest before training: that needs the keyring.
      ...auth,
    ]);
    const trainedId = (JSON.parse(train.stdout) as { auditEvent: string }).auditEvent;

    ok([
      'query',
      'count',
      '--data',
      prot,
      '--budget',
      'tx',
      '--epsilon',
      '0.25',
      '--ledger',
      ledger,
      '--audit',
      db,
      // The protected file is checked against its manifest before the query: that needs the keyring.
      ...auth,
    ]);
    ok(['keys', 'rotate', 'data', ...auth, '--audit', db]);

    // Two reads of the log: two processes at once.
    const [tailRun, linRun] = (await allOk([
      ['--json', 'audit', 'tail', '--store', db, '-n', '20'],
      ['--json', 'audit', 'lineage', trainedId, '--store', db],
    ])) as [CliRun, CliRun];
    const tail = JSON.parse(tailRun.stdout) as TailEntry[];
    const types = tail.map((e) => e.type);
    for (const t of ['key.created', 'dataset.protected', 'model.trained', 'privacy.spent', 'key.rotated'])
      assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    const spent = tail.find((e) => e.type === 'privacy.spent') as TailEntry;
    assert.equal(spent.data['dataset'], 'tx');
    assert.equal(spent.data['epsilon'], 0.25);
    assert.equal(spent.data['operation'], 'query.count');
    assert.equal((spent.data['details'] as Record<string, unknown>)['protectedVerified'], true);
    const created = tail.find((e) => e.type === 'key.created') as TailEntry;
    assert.equal(created.data['keyId'], 'reports.v1');
    const trained = tail.find((e) => e.type === 'model.trained') as TailEntry;
    assert.equal((trained.data['hyperparameters'] as Record<string, unknown>)['protectedVerified'], true);
    const rotated = tail.find((e) => e.type === 'key.rotated') as TailEntry;
    assert.deepEqual([rotated.data['keyId'], rotated.data['previousKeyId']], ['data.v2', 'data.v1']);

    // The trained model's lineage reaches the protected dataset, its source and the data key.
    const lin = JSON.parse(linRun.stdout) as {
      nodes: { entry: TailEntry }[];
    };
    const linTypes = lin.nodes.map((n) => n.entry.type);
    assert.deepEqual(linTypes.slice(0, 2), ['model.trained', 'dataset.protected']);
    const protectedEntry = lin.nodes[1]?.entry as TailEntry;
    assert.deepEqual(protectedEntry.data['keyIds'], ['data.v1']);

    ok(['audit', 'checkpoint', '--store', db, '--signing-key', key]);
    ok(['audit', 'verify', '--store', db, '--key', `${key}.pub`]);
  });

  it('refuses to train when the audit log cannot be opened, and writes nothing', () => {
    const src = join(dir, 'tx.csv');
    const model = join(dir, 'unrecorded.onnx');
    const r = runBulwark([
      'train',
      '--data',
      src,
      '--label',
      'is_fraud',
      '--out',
      model,
      '--audit',
      join(dir, 'no-such-log.db'),
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_FILE_NOT_FOUND: audit log not found: /);
    // And how to make one (it is never created by a command that records into it).
    assert.match(
      r.stderr,
      /create the log first: bulwark audit keygen .* bulwark audit checkpoint --store .*no-such-log\.db --signing-key/,
    );
    assert.equal(existsSync(model), false);
  });

  it('refuses a privacy spend when the PostgreSQL audit log is unreachable, and spends nothing', () => {
    const ledger = join(dir, 'ledger2.sqlite');
    const prot = join(dir, 'tx.csv');
    ok(['query', 'budget', 'set', 'tx', '--epsilon', '1', '--ledger', ledger]);
    const r = runBulwark([
      'query',
      'count',
      '--data',
      prot,
      '--budget',
      'tx',
      '--epsilon',
      '0.5',
      '--ledger',
      ledger,
      '--audit',
      'postgres://postgres@127.0.0.1:1/test',
    ]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_AUDIT_UNAVAILABLE: /);
    const st = JSON.parse(ok(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]).stdout) as {
      spent: { epsilon: number };
    };
    assert.equal(st.spent.epsilon, 0);
  });
});
