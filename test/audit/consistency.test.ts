/**
 * Consistency bundles (RFC 9162 §2.1.4): `AuditLog.proveConsistency` on a real store (SQLite and
 * PostgreSQL), `verifyConsistencyBundle` offline with the public key only, and the command line
 * (`audit prove --from`, `audit verify --proof`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type AuditEventInput,
  AuditLog,
  type ConsistencyBundle,
  generateSignerKey,
  type NoteSigner,
  parseSignerKey,
  verifyConsistencyBundle,
} from '../../src/audit/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { code } from '../helpers/errors.js';
import { FIXTURES, freshStores, type StoreFixture, sqliteFixture } from './stores.js';

const ORIGIN = 'bulwark.test/consistency';

const event = (i: number, tag = 'a'): AuditEventInput => ({
  type: 'key.created',
  data: { keyId: `${tag}-${i}`, algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
});

async function grow(log: AuditLog, to: number, tag = 'a'): Promise<void> {
  const { size } = await log.head();
  await Promise.all(Array.from({ length: to - size }, (_, i) => log.append(event(size + i, tag))));
}

/** A log with checkpoints at `sizes` (0 included when listed). */
async function logWith(
  fx: StoreFixture,
  signer: NoteSigner,
  sizes: readonly number[],
  tag = 'a',
): Promise<{ log: AuditLog; notes: Map<number, string> }> {
  const log = await AuditLog.open({ store: fx.spec, origin: ORIGIN, signer });
  const notes = new Map<number, string>();
  for (const s of sizes) {
    await grow(log, s, tag);
    notes.set(s, (await log.checkpoint()).note);
  }
  return { log, notes };
}

const note = (notes: Map<number, string>, size: number) => notes.get(size) as string;

for (const makeFixture of FIXTURES) {
  // Not makeFixture().name: a SQLite fixture makes its folder when created, and this one would be left behind.
  const name = makeFixture === sqliteFixture ? 'sqlite' : 'postgres';
  describe(`consistency bundles on ${name}`, () => {
    const fresh = freshStores(makeFixture);
    const { signer, vkey } = generateSignerKey(ORIGIN);

    it('proves every stored size from every smaller one (0, equal sizes, across cached subtrees) and verifies offline', async () => {
      // 256 and 300 cross NODE_CACHE_LEVEL: the proof then reads cached subtrees.
      const sizes = [0, 1, 2, 3, 7, 8, 13, 256, 300];
      const { log, notes } = await logWith(fresh(), signer, sizes);
      try {
        for (const [i, to] of sizes.entries())
          for (const from of sizes.slice(0, i + 1)) {
            const { bundle, older, newer, signed } = await log.proveConsistency(note(notes, from), to);
            assert.equal(signed, false);
            assert.deepEqual([older.size, newer.size], [from, to]);
            assert.equal(bundle.newCheckpoint, note(notes, to));
            if (from === 0 || from === to) assert.deepEqual(bundle.proof, []);
            else assert.ok(bundle.proof.length > 0);
            const v = verifyConsistencyBundle(JSON.parse(JSON.stringify(bundle)), vkey, {
              held: note(notes, from),
            });
            assert.deepEqual([v.older.size, v.newer.size, v.held?.size], [from, to, from]);
          }
        // Without a size: the latest stored checkpoint, none signed (the log has no new entries).
        const latest = await log.proveConsistency(note(notes, 7));
        assert.deepEqual([latest.newer.size, latest.signed], [300, false]);
      } finally {
        await log.close();
      }
    });

    it('signs a new checkpoint only with the signer and only when the tree grew; refuses what it cannot prove', async () => {
      const fx = fresh();
      const { log, notes } = await logWith(fx, signer, [5, 9]);
      const reader = await AuditLog.open({ store: fx.spec });
      try {
        await grow(log, 12);
        // Without the signer: the latest stored checkpoint (9), the 3 newer entries not covered.
        const stored = await reader.proveConsistency(note(notes, 5));
        assert.deepEqual([stored.newer.size, stored.signed], [9, false]);
        assert.equal((await reader.checkpoints()).length, 2);
        // With it: a checkpoint of the current tree is signed and stored.
        const fresh12 = await log.proveConsistency(note(notes, 5));
        assert.deepEqual([fresh12.newer.size, fresh12.signed], [12, true]);
        assert.deepEqual(
          (await reader.checkpoints()).map((c) => c.size),
          [5, 9, 12],
        );
        // ... and not again while the tree has not grown.
        assert.equal((await log.proveConsistency(note(notes, 5))).signed, false);

        await assert.rejects(
          reader.proveConsistency(note(notes, 5), 10),
          code('ERR_AUDIT_CHECKPOINT_MISSING'),
        );
        await assert.rejects(
          reader.proveConsistency(note(notes, 9), 5),
          code('ERR_INVALID_ARGUMENT', /^treeSize: /),
        );
        // A checkpoint of another log (another key, same name).
        const other = generateSignerKey(ORIGIN);
        const foreign = await logWith(fresh(), other.signer, [5]);
        await foreign.log.close();
        await assert.rejects(
          reader.proveConsistency(note(foreign.notes, 5)),
          code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
        );
        // The log holds another tree at that size: the auditor was shown a fork.
        const fork = await logWith(fresh(), signer, [5], 'fork');
        await fork.log.close();
        await assert.rejects(reader.proveConsistency(note(fork.notes, 5)), code('ERR_AUDIT_ROOT_MISMATCH'));
        // A checkpoint larger than the log: the log was rolled back (here: a larger copy's checkpoint).
        const bigger = await logWith(fresh(), signer, [20]);
        await bigger.log.close();
        await assert.rejects(
          reader.proveConsistency(note(bigger.notes, 20)),
          code('ERR_AUDIT_ENTRY_MISSING'),
        );
      } finally {
        await reader.close();
        await log.close();
      }
    });

    it('a stored checkpoint note altered in the database is never handed out', async () => {
      const fx = fresh();
      const { log, notes } = await logWith(fx, signer, [3, 6]);
      await log.close();
      const bad = note(notes, 6).replace(/\n6\n/, '\n7\n');
      await fx.exec(`UPDATE checkpoints SET note = ${fx.name === 'postgres' ? '$1' : '?'} WHERE size = 6`, [
        bad,
      ]);
      const reader = await AuditLog.open({ store: fx.spec });
      try {
        await assert.rejects(reader.proveConsistency(note(notes, 3)), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
      } finally {
        await reader.close();
      }
    });
  });
}

describe('verifyConsistencyBundle refusals (offline, the public key only)', () => {
  const fx = sqliteFixture();
  const forkFx = sqliteFixture();
  const { signer, vkey } = generateSignerKey(ORIGIN);
  after(async () => {
    await fx.cleanup();
    await forkFx.cleanup();
  });
  let notes = new Map<number, string>();
  let forked = new Map<number, string>();
  let good: ConsistencyBundle;
  let forkBundle: ConsistencyBundle;
  const ready = (async () => {
    const a = await logWith(fx, signer, [0, 5, 11, 20]);
    notes = a.notes;
    good = (await a.log.proveConsistency(note(notes, 5), 20)).bundle;
    await a.log.close();
    // The same key signs another tree: entries 0-4 differ.
    const b = await logWith(forkFx, signer, [3, 5, 20], 'fork');
    forked = b.notes;
    forkBundle = (await b.log.proveConsistency(note(forked, 3), 20)).bundle;
    await b.log.close();
  })();

  it('accepts the good bundle, with and without the held checkpoint', async () => {
    await ready;
    assert.equal(verifyConsistencyBundle(good, vkey).newer.size, 20);
    assert.equal(verifyConsistencyBundle(good, vkey, { held: note(notes, 5) }).held?.size, 5);
    assert.equal(verifyConsistencyBundle(forkBundle, vkey).newer.size, 20);
  });

  it('a fork: two different trees of one size signed by the key, reported with both roots', async () => {
    await ready;
    const a = notes.get(20) as string;
    const b = forked.get(20) as string;
    const rootOf = (n: string) => n.split('\n')[2] as string;
    for (const bundle of [
      { ...good, oldCheckpoint: a, newCheckpoint: b, proof: [] },
      { ...good, oldCheckpoint: note(notes, 5), newCheckpoint: note(forked, 5), proof: [] },
    ])
      assert.throws(
        () => verifyConsistencyBundle(bundle, vkey),
        (e: unknown) => {
          code('ERR_AUDIT_INCONSISTENT', /^fork: /)(e);
          const d = (e as { details?: Record<string, unknown> }).details ?? {};
          const size = Number(bundle.oldCheckpoint.split('\n')[1]);
          assert.deepEqual(d, {
            size,
            oldRoot: rootOf(bundle.oldCheckpoint),
            newRoot: rootOf(bundle.newCheckpoint),
          });
          assert.ok((e as Error).message.includes(rootOf(bundle.oldCheckpoint)));
          assert.ok((e as Error).message.includes(rootOf(bundle.newCheckpoint)));
          return true;
        },
      );
    // A valid bundle of the forked tree, checked against the checkpoint the auditor holds of size 5.
    const forkFrom5 = { ...forkBundle };
    assert.throws(
      () => verifyConsistencyBundle(forkFrom5, vkey, { held: note(notes, 20) }),
      code('ERR_AUDIT_INCONSISTENT', /held checkpoint root .* new checkpoint root/),
    );
    // Held checkpoint and the bundle's old one: same size, other tree.
    assert.throws(
      () => verifyConsistencyBundle(good, vkey, { held: note(forked, 5) }),
      code('ERR_AUDIT_INCONSISTENT', /^fork: /),
    );
  });

  it('a rollback: the new tree smaller than the old one (or the one held)', async () => {
    await ready;
    assert.throws(
      () =>
        verifyConsistencyBundle(
          { ...good, oldCheckpoint: note(notes, 20), newCheckpoint: note(notes, 5) },
          vkey,
        ),
      code('ERR_AUDIT_ENTRY_MISSING', /^rollback: /),
    );
    assert.throws(
      () => verifyConsistencyBundle(good, vkey, { held: note(forked, 3) }),
      code('ERR_AUDIT_PROOF_INVALID', /not from the checkpoint you hold \(size 3\)/),
    );
    const small = (await (async () => {
      const log = await AuditLog.open({ store: fx.spec });
      try {
        return (await log.proveConsistency(note(notes, 5), 11)).bundle;
      } finally {
        await log.close();
      }
    })()) as ConsistencyBundle;
    assert.throws(
      () => verifyConsistencyBundle(small, vkey, { held: note(notes, 20) }),
      code('ERR_AUDIT_ENTRY_MISSING', /fewer than the 20 of the checkpoint you hold/),
    );
  });

  it('a tampered proof: a hash changed, dropped, added or moved; a proof where none is due', async () => {
    await ready;
    assert.ok(good.proof.length >= 2);
    const flip = (h: string) => {
      const b = Buffer.from(h, 'base64');
      b[0] = (b[0] as number) ^ 1;
      return b.toString('base64');
    };
    const variants: string[][] = [
      [flip(good.proof[0] as string), ...good.proof.slice(1)],
      good.proof.slice(0, -1),
      [...good.proof, good.proof[0] as string],
      [...good.proof].reverse(),
      [],
    ];
    for (const proof of variants)
      assert.throws(
        () => verifyConsistencyBundle({ ...good, proof }, vkey),
        code('ERR_AUDIT_PROOF_INVALID', /does not show that the tree of size 20 extends the tree of size 5/),
      );
    // From size 0 and between equal sizes the proof must be empty.
    for (const [from, to] of [
      [0, 20],
      [11, 11],
    ] as const)
      assert.throws(
        () =>
          verifyConsistencyBundle(
            {
              ...good,
              oldCheckpoint: note(notes, from),
              newCheckpoint: note(notes, to),
              proof: good.proof.slice(0, 1),
            },
            vkey,
          ),
        code('ERR_AUDIT_PROOF_INVALID'),
      );
    // The good proof put between other sizes.
    assert.throws(
      () => verifyConsistencyBundle({ ...good, oldCheckpoint: note(notes, 11) }, vkey),
      code('ERR_AUDIT_PROOF_INVALID'),
    );
  });

  it('a bundle of another log, a note naming another log, a malformed bundle', async () => {
    await ready;
    const other = generateSignerKey('bulwark.test/other');
    assert.throws(() => verifyConsistencyBundle(good, other.vkey), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
    // Same name, another key: another log too.
    assert.throws(
      () => verifyConsistencyBundle(good, generateSignerKey(ORIGIN).vkey),
      code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
    );
    assert.throws(
      () => verifyConsistencyBundle(good, vkey, { origin: 'bulwark.test/elsewhere' }),
      code('ERR_AUDIT_ORIGIN_MISMATCH'),
    );
    // One note altered: its signature no longer verifies.
    assert.throws(
      () =>
        verifyConsistencyBundle(
          { ...good, newCheckpoint: good.newCheckpoint.replace('\n20\n', '\n21\n') },
          vkey,
        ),
      code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
    );
    for (const bad of [
      null,
      { ...good, format: 'bulwark-audit-inclusion/1' },
      { ...good, extra: 1 },
      { ...good, proof: ['not base64'] },
      { ...good, proof: Array.from({ length: 129 }, () => good.proof[0]) },
    ])
      assert.throws(
        () => verifyConsistencyBundle(bad, vkey),
        code('ERR_AUDIT_PROOF_INVALID', /malformed bundle/),
      );
  });
});

describe('bulwark audit prove --from / verify --proof (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-consistency-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'audit.db');
  const key = join(dir, 'log.key');
  const p = (f: string) => join(dir, f);
  /** `audit verify --proof BUNDLE --key log.key.pub ...extra`, offline (no --store). */
  const verifyProof = (bundle: string, ...extra: string[]) =>
    runBulwarkInProcess(['audit', 'verify', '--proof', p(bundle), '--key', `${key}.pub`, ...extra]);
  /** `audit --store db prove --from CHECKPOINT ...extra`. */
  const proveFrom = (from: string, ...extra: string[]) =>
    runBulwarkInProcess(['audit', '--store', db, 'prove', '--from', p(from), ...extra]);

  it('an auditor keeps a checkpoint, gets a bundle next month and checks it with the public key only', async () => {
    const kg = await runBulwarkInProcess(['audit', 'keygen', '--name', ORIGIN, '--out', key]);
    assert.equal(kg.code, 0, kg.stderr);
    const cp = await runBulwarkInProcess([
      'audit',
      '--store',
      db,
      'checkpoint',
      '--signing-key',
      key,
      '--out',
      p('may.note'),
    ]);
    assert.equal(cp.code, 0, cp.stderr);
    // May: the empty log; June: 6 entries.
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: db } });
    await Promise.all(Array.from({ length: 6 }, (_, i) => log.append(event(i))));
    await log.close();

    // No checkpoint covers the new entries and no key: the stored one (size 0) is used, and says so.
    const same = await proveFrom('may.note', '--out', p('b0.json'));
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stderr, /consistency proof from tree size 0 to 0 \(a stored checkpoint\) written to/);

    const r = await proveFrom('may.note', '--signing-key', key, '--out', p('june.json'), '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      out: p('june.json'),
      oldSize: 0,
      newSize: 6,
      newCheckpoint: 'signed',
    });
    const june = JSON.parse(readFileSync(p('june.json'), 'utf8')) as ConsistencyBundle;
    assert.equal(june.format, 'bulwark-audit-consistency/1');

    // Offline: no --store.
    const v = await verifyProof('june.json', '--checkpoint', p('may.note'));
    assert.equal(v.code, 0, v.stderr);
    assert.match(
      v.stdout,
      /^OK: bulwark\.test\/consistency at tree size 6 extends its tree of size 0 \(the checkpoint you hold\)\n/,
    );
    assert.equal(v.stderr, '');
    const noHeld = await verifyProof('june.json', '--json');
    assert.equal(noHeld.code, 0, noHeld.stderr);
    const out = JSON.parse(noHeld.stdout) as Record<string, unknown>;
    assert.deepEqual(
      [out['kind'], out['oldSize'], out['newSize'], out['heldCheckpoint']],
      ['consistency', 0, 6, false],
    );

    // July: more entries; last month's bundle is this month's starting point.
    const log2 = await AuditLog.open({ store: { kind: 'sqlite', path: db } });
    await Promise.all(Array.from({ length: 5 }, (_, i) => log2.append(event(6 + i))));
    await log2.close();
    const july = await proveFrom('june.json', '--signing-key', key, '--out', p('july.json'));
    assert.equal(july.code, 0, july.stderr);
    assert.match(july.stderr, /from tree size 6 to 11 \(a checkpoint signed now\)/);
    const vj = await verifyProof('july.json', '--checkpoint', p('june.json'));
    assert.equal(vj.code, 0, vj.stderr);
    assert.match(vj.stdout, /at tree size 11 extends its tree of size 6/);

    // Refusals: exit 5 with the code; a tampered proof, a bundle checked from another checkpoint.
    const b = JSON.parse(readFileSync(p('july.json'), 'utf8')) as ConsistencyBundle;
    writeFileSync(p('tampered.json'), JSON.stringify({ ...b, proof: [...b.proof].reverse() }));
    const t = await verifyProof('tampered.json');
    assert.equal(t.code, 5, t.stderr);
    assert.match(t.stderr, /^bulwark: ERR_AUDIT_PROOF_INVALID: consistency proof rejected: /);
    const wrongHeld = await verifyProof('july.json', '--checkpoint', p('may.note'));
    assert.equal(wrongHeld.code, 5, wrongHeld.stderr);
    assert.match(wrongHeld.stderr, /ERR_AUDIT_PROOF_INVALID: .*not from the checkpoint you hold \(size 0\)/);
    const rollback = JSON.stringify({
      ...b,
      oldCheckpoint: b.newCheckpoint,
      newCheckpoint: b.oldCheckpoint,
      proof: [],
    });
    writeFileSync(p('rollback.json'), rollback);
    const rb = await verifyProof('rollback.json', '--json');
    assert.equal(rb.code, 5, rb.stderr);
    assert.equal(
      (JSON.parse(rb.stderr) as { error: { code: string } }).error.code,
      'ERR_AUDIT_ENTRY_MISSING',
    );

    // A fork: a second log under the same key, shown to someone else, with a checkpoint of size 6.
    const forkDb = p('fork.db');
    const signer = parseSignerKey(readFileSync(key, 'utf8'));
    const fork = await AuditLog.open({ store: { kind: 'sqlite', path: forkDb }, origin: ORIGIN, signer });
    await Promise.all(Array.from({ length: 6 }, (_, i) => fork.append(event(i, 'fork'))));
    const forkNote = (await fork.checkpoint()).note;
    await fork.close();
    writeFileSync(p('fork.note'), forkNote);
    // The forked log cannot prove it extends the June tree...
    const pf = await runBulwarkInProcess(['audit', '--store', forkDb, 'prove', '--from', p('june.json')]);
    assert.equal(pf.code, 5, pf.stderr);
    assert.match(pf.stderr, /^bulwark: ERR_AUDIT_ROOT_MISMATCH: the log's tree of size 6 is not the one/);
    // ... and its checkpoint against the June one is a fork, proved by the two signed notes.
    writeFileSync(
      p('forked.json'),
      JSON.stringify({ ...june, oldCheckpoint: june.newCheckpoint, newCheckpoint: forkNote, proof: [] }),
    );
    const f = await verifyProof('forked.json', '--json');
    assert.equal(f.code, 5, f.stderr);
    const err = (JSON.parse(f.stderr) as { error: { code: string; details: Record<string, unknown> } }).error;
    const rootOf = (n: string) => n.split('\n')[2];
    assert.equal(err.code, 'ERR_AUDIT_INCONSISTENT');
    assert.deepEqual(err.details, {
      size: 6,
      oldRoot: rootOf(june.newCheckpoint),
      newRoot: rootOf(forkNote),
    });
    // The June bundle checked against the fork's checkpoint held by another auditor: the same fork.
    const f2 = await verifyProof('june.json', '--checkpoint', p('fork.note'));
    assert.equal(f2.code, 5, f2.stderr);
    assert.match(
      f2.stderr,
      /^bulwark: ERR_AUDIT_INCONSISTENT: fork: the log's key signed two different trees of size 6 \(held checkpoint root \S+, new checkpoint root \S+\)/,
    );
    // Another log's key: the bundle is not that log's.
    const otherKey = p('other.key');
    assert.equal(
      (await runBulwarkInProcess(['audit', 'keygen', '--name', 'bulwark.test/other', '--out', otherKey]))
        .code,
      0,
    );
    const o = await runBulwarkInProcess([
      'audit',
      'verify',
      '--proof',
      p('july.json'),
      '--key',
      `${otherKey}.pub`,
    ]);
    assert.equal(o.code, 5, o.stderr);
    assert.match(o.stderr, /^bulwark: ERR_AUDIT_CHECKPOINT_SIGNATURE: /);
  });

  it('usage: an event id or --from, not both; --size below the old size; --checkpoint with an inclusion proof', async () => {
    for (const [args, re] of [
      [['prove'], /prove needs an event id \(inclusion proof\) or --from CHECKPOINT/],
      [['prove', 'some-id', '--from', p('may.note')], /give an event id or --from, not both/],
      [
        ['prove', '--from', p('june.json'), '--size', '3'],
        /^bulwark: ERR_USAGE: --size 3 is below the size of the old checkpoint \(6\)/,
      ],
    ] as const) {
      const r = await runBulwarkInProcess(['audit', '--store', db, ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    }
    const inc = await verifyProof('june.json', '--checkpoint', p('may.note'), '--checkpoint', p('june.json'));
    assert.equal(inc.code, 2, inc.stderr);
    assert.match(inc.stderr, /ERR_USAGE: --checkpoint: give one with a consistency --proof/);
    writeFileSync(p('incl.json'), JSON.stringify({ format: 'bulwark-audit-inclusion/1' }));
    const inc2 = await verifyProof('incl.json', '--checkpoint', p('may.note'));
    assert.equal(inc2.code, 2, inc2.stderr);
    assert.match(inc2.stderr, /ERR_USAGE: --checkpoint applies to a log \(--store\) or a consistency proof/);
    const help = await runBulwarkInProcess(['audit', 'prove', '--help']);
    assert.match(help.stdout, /--from <checkpoint>/);
    const missing = await runBulwarkInProcess(['audit', '--store', db, 'prove', '--from', p('nope.note')]);
    assert.equal(missing.code, 3, missing.stderr);
    assert.match(missing.stderr, /ERR_FILE_NOT_FOUND: checkpoint file not found/);
  });
});
