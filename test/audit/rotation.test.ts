/**
 * Rotating the log's own checkpoint key (`AuditLog.rotateKey`, `bulwark audit rotate-key`): the
 * hand-over entry and checkpoint signed by both keys, `verify` with either key, the retired key
 * refused for signing, proofs and consistency bundles across the rotation, and the store's key
 * history not trusted (each step checked against the log). On SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type AuditEventInput,
  AuditLog,
  checkpointText,
  generateSignerKey,
  openAuditStore,
  openNote,
  parseVerifierKey,
  signNote,
  ThreadedAuditLog,
  verifyConsistencyBundle,
  verifyInclusionBundle,
} from '../../src/audit/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { code } from '../helpers/errors.js';
import { FIXTURES, freshStores, sqliteFixture } from './stores.js';

const ORIGIN = 'bulwark.test/rotation';

const event = (i: number): AuditEventInput => ({
  type: 'key.created',
  data: { keyId: `k-${i}`, algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
});

async function grow(log: AuditLog, by: number): Promise<void> {
  const { size } = await log.head();
  await Promise.all(Array.from({ length: by }, (_, i) => log.append(event(size + i))));
}

for (const makeFixture of FIXTURES) {
  const name = makeFixture === sqliteFixture ? 'sqlite' : 'postgres';
  describe(`log key rotation on ${name}`, () => {
    const fresh = freshStores(makeFixture);

    /** A fresh store opened with key A, and a key B to rotate to. */
    async function started() {
      const fx = fresh();
      const a = generateSignerKey(ORIGIN);
      const b = generateSignerKey(ORIGIN);
      const log = await AuditLog.open({ store: fx.spec, signer: a.signer });
      return { fx, a, b, log };
    }

    /** A log signed by A at sizes 3 and 5, rotated to B (hand-over at 6), then B's checkpoint at 9. */
    async function rotated() {
      const { fx, a, b, log } = await started();
      await grow(log, 3);
      const cp3 = await log.checkpoint();
      await grow(log, 2);
      await log.checkpoint();
      const r = await log.rotateKey(b.signer);
      await grow(log, 3);
      const cp9 = await log.checkpoint();
      return { fx, a, b, log, r, cp3, cp9 };
    }

    it('hands over with an entry and a checkpoint signed by both keys; later checkpoints are the new key’s', async () => {
      const { a, b, log, r, cp9 } = await rotated();
      try {
        assert.equal(r.handover.size, 6);
        assert.equal(r.previousKey, a.vkey);
        assert.equal(r.newKey, b.vkey);
        // The hand-over opens with either key; the checkpoint after it only with the new one.
        openNote(r.handover.note, parseVerifierKey(a.vkey));
        openNote(r.handover.note, parseVerifierKey(b.vkey));
        openNote(cp9.note, parseVerifierKey(b.vkey));
        assert.throws(
          () => openNote(cp9.note, parseVerifierKey(a.vkey)),
          code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
        );
        const entry = (await log.tail(10)).find((e) => e.type === 'log.key-rotated');
        assert.deepEqual(entry?.data, { previousKey: a.vkey, newKey: b.vkey });
        assert.equal(entry?.index, 5);
        assert.equal(await log.publicKey(), b.vkey);
        assert.deepEqual(await log.keys(), [
          { vkey: a.vkey, since: 0 },
          { vkey: b.vkey, since: 6 },
        ]);
      } finally {
        await log.close();
      }
    });

    it('verify passes with either key (and the recorded history), and refuses a key of neither', async () => {
      const { fx, a, b, log } = await rotated();
      try {
        for (const publicKey of [a.vkey, b.vkey, undefined]) {
          const rep = await log.verify(publicKey ? { publicKey } : {});
          assert.equal(rep.keys, 2);
          assert.equal(rep.checkpoints, 4);
          assert.deepEqual(rep.unfinishedRotations, []);
        }
        const c = generateSignerKey(ORIGIN);
        await assert.rejects(log.verify({ publicKey: c.vkey }), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
      } finally {
        await log.close();
      }
      // The retired key signs nothing more: opening the store with it is refused, naming the rotation.
      await assert.rejects(
        AuditLog.open({ store: fx.spec, signer: a.signer }),
        code('ERR_AUDIT_KEY_INVALID', /this signing key was retired: .* since tree size 6/),
      );
      const again = await AuditLog.open({ store: fx.spec, signer: b.signer });
      await again.close();
    });

    it('the store’s key history is not trusted: a forged step, a dropped step or a missing hand-over fails verify', async () => {
      const { fx, a, b, log } = await rotated();
      await log.close();
      const c = generateSignerKey(ORIGIN);
      const setKeys = (keys: unknown) =>
        fx.exec(
          fx.name === 'sqlite'
            ? 'UPDATE meta SET value = ? WHERE key = ?'
            : 'UPDATE meta SET value = $1 WHERE key = $2',
          [JSON.stringify(keys), 'keys'],
        );
      const verifyWith = async (publicKey: string) => {
        const l = await AuditLog.open({ store: fx.spec });
        try {
          return await l.verify({ publicKey });
        } finally {
          await l.close();
        }
      };
      // An attacker's key C appended to the history: its hand-over would need A's or B's signature.
      await setKeys([
        { vkey: a.vkey, since: 0 },
        { vkey: b.vkey, since: 6 },
        { vkey: c.vkey, since: 9 },
      ]);
      await assert.rejects(verifyWith(a.vkey), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
      // The rotation dropped from the history: B's checkpoints do not open with A.
      await setKeys([{ vkey: a.vkey, since: 0 }]);
      await assert.rejects(verifyWith(a.vkey), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
      // The hand-over moved to a size with no checkpoint signed by both keys.
      await setKeys([
        { vkey: a.vkey, since: 0 },
        { vkey: b.vkey, since: 7 },
      ]);
      await assert.rejects(
        verifyWith(b.vkey),
        code(
          'ERR_AUDIT_KEY_INVALID',
          /hands over to .* at tree size 7, but no checkpoint of that size signed by both keys/,
        ),
      );
      // Restored, it verifies again.
      await setKeys([
        { vkey: a.vkey, since: 0 },
        { vkey: b.vkey, since: 6 },
      ]);
      assert.equal((await verifyWith(b.vkey)).keys, 2);
    });

    it('a hand-over the log does not record (no log.key-rotated entry) fails verify, though both keys signed it', async () => {
      // An operator who holds both keys writes the history and a checkpoint signed by both by hand,
      // without the entry: the log itself would not say when its key changed.
      const { fx, a, b, log } = await started();
      await grow(log, 4);
      await log.checkpoint();
      await grow(log, 1);
      const head = { origin: ORIGIN, ...(await log.head()) };
      await log.close();
      const store = await openAuditStore(fx.spec);
      try {
        await store.addCheckpoint({
          size: head.size,
          root: head.root,
          note: signNote(checkpointText(head), [a.signer, b.signer]),
          createdAt: new Date().toISOString(),
        });
        await store.setMeta({
          keys: JSON.stringify([
            { vkey: a.vkey, since: 0 },
            { vkey: b.vkey, since: head.size },
          ]),
          vkey: b.vkey,
        });
      } finally {
        await store.close();
      }
      const l = await AuditLog.open({ store: fx.spec });
      try {
        await assert.rejects(
          l.verify({ publicKey: a.vkey }),
          code('ERR_AUDIT_KEY_INVALID', /no log\.key-rotated entry before it records that/),
        );
      } finally {
        await l.close();
      }
    });

    it('append refuses log.key-rotated: only a rotation writes it', async () => {
      const { a, b, log } = await started();
      try {
        await assert.rejects(
          log.append({ type: 'log.key-rotated', data: { previousKey: a.vkey, newKey: b.vkey } }),
          code('ERR_AUDIT_EVENT_INVALID', /written only by a key rotation/),
        );
        assert.equal((await log.head()).size, 0);
      } finally {
        await log.close();
      }
    });

    it('refuses a new key of another log, the key in force, a retired key, and rotating without the key', async () => {
      const { fx, a, b, log } = await rotated();
      try {
        await assert.rejects(
          log.rotateKey(generateSignerKey('bulwark.test/other').signer),
          code('ERR_AUDIT_KEY_INVALID', /must be named "bulwark.test\/rotation"/),
        );
        await assert.rejects(log.rotateKey(b.signer), code('ERR_AUDIT_KEY_INVALID', /the key in force/));
        await assert.rejects(
          log.rotateKey(a.signer),
          code('ERR_AUDIT_KEY_INVALID', /a retired key is never used again/),
        );
      } finally {
        await log.close();
      }
      const reader = await AuditLog.open({ store: fx.spec });
      try {
        await assert.rejects(
          reader.rotateKey(generateSignerKey(ORIGIN).signer),
          code('ERR_AUDIT_KEY_INVALID'),
        );
      } finally {
        await reader.close();
      }
    });

    it('a checkpoint of the hand-over size signed meanwhile by another writer stops the rotation: the key stays', async () => {
      const { fx, a, b, log } = await started();
      try {
        await grow(log, 2);
        // What another writer holding A would store at size 3 between the rotation's append and its
        // hand-over (the store keeps the first checkpoint of a size).
        const head = { origin: ORIGIN, size: 3, root: Buffer.alloc(32, 7) };
        const store = await openAuditStore(fx.spec);
        try {
          await store.addCheckpoint({
            size: 3,
            root: head.root,
            note: signNote(checkpointText(head), [a.signer]),
            createdAt: new Date().toISOString(),
          });
        } finally {
          await store.close();
        }
        await assert.rejects(
          log.rotateKey(b.signer),
          code('ERR_AUDIT_INCONSISTENT', /another writer signed the checkpoint of tree size 3/),
        );
        assert.equal(await log.publicKey(), a.vkey);
        assert.equal((await log.keys()).length, 1);
      } finally {
        await log.close();
      }
    });

    it('a writer still holding the old key: its checkpoints are refused after a rotation elsewhere until useSigner gives it the new key (on its thread too)', async () => {
      const { fx, a, b, log } = await started();
      const c = generateSignerKey(ORIGIN);
      const gateway = await AuditLog.open({ store: fx.spec, signer: a.signer });
      const threaded = await ThreadedAuditLog.open({ store: fx.spec, signerKey: a.skey });
      try {
        await grow(log, 2);
        assert.deepEqual(await gateway.useSigner(a.skey), { key: a.vkey, changed: false });
        // The operator rotates with another process (here: another instance) while the writers run.
        await log.rotateKey(b.signer);
        for (const w of [gateway, threaded]) {
          await w.append(event(100));
          await assert.rejects(w.checkpoint(), code('ERR_AUDIT_KEY_INVALID', /retired/));
          // Neither the retired key nor a key the log never had is taken; the writer keeps its key.
          await assert.rejects(w.useSigner(a.skey), code('ERR_AUDIT_KEY_INVALID', /retired/));
          await assert.rejects(w.useSigner(c.skey), code('ERR_AUDIT_KEY_INVALID', /another key/));
          await assert.rejects(w.useSigner('not a key'), code('ERR_AUDIT_KEY_INVALID', /signer key/));
          assert.deepEqual(await w.useSigner(b.skey), { key: b.vkey, changed: true });
          openNote((await w.checkpoint()).note, parseVerifierKey(b.vkey));
        }
        // The hand-over and the two writers' checkpoints, each with the key in force at its size.
        for (const publicKey of [a.vkey, b.vkey]) {
          const rep = await log.verify({ publicKey });
          assert.equal(rep.keys, 2);
          assert.equal(rep.checkpoints, 3);
        }
      } finally {
        await threaded.close();
        await gateway.close();
        await log.close();
      }
    });

    it('a rotation that stopped after its entry is reported, and a second run completes it', async () => {
      const started_ = await started();
      const { fx, a, b } = started_;
      let log = started_.log;
      await grow(log, 2);
      await log.checkpoint();
      await log.rotateKey(b.signer);
      await log.close();
      // Undo what followed the entry (the hand-over and the history): a crash right after the append.
      await fx.exec('DELETE FROM checkpoints WHERE size = 3');
      await fx.exec("DELETE FROM meta WHERE key = 'keys'");
      await fx.exec(
        fx.name === 'sqlite'
          ? 'UPDATE meta SET value = ? WHERE key = ?'
          : 'UPDATE meta SET value = $1 WHERE key = $2',
        [a.vkey, 'vkey'],
      );
      log = await AuditLog.open({ store: fx.spec, signer: a.signer });
      try {
        const rep = await log.verify({ publicKey: a.vkey });
        assert.deepEqual(rep.unfinishedRotations, [2]);
        assert.equal(rep.keys, 1);
        const r = await log.rotateKey(b.signer);
        assert.equal(r.handover.size, 4);
        // The first entry names the same hand-over, which the second run's checkpoint completes.
        const done = await log.verify({ publicKey: b.vkey });
        assert.deepEqual(done.unfinishedRotations, []);
        assert.equal(done.keys, 2);
      } finally {
        await log.close();
      }
    });

    it('inclusion proofs and training records are proved with either key; consistency bundles lead across the hand-over', async () => {
      const { a, b, log, cp3, cp9 } = await rotated();
      try {
        const first = (await log.tail(20)).find((e) => e.index === 1);
        // An entry under A's checkpoints: A proves it with A's latest covering checkpoint (the
        // hand-over), B with B's latest.
        const bundle = await log.prove(first?.id as string);
        verifyInclusionBundle(bundle, b.vkey, ORIGIN);
        const byA = await log.prove(first?.id as string, 6);
        verifyInclusionBundle(byA, a.vkey, ORIGIN);
        // From A's checkpoint of size 3 to B's of 9: one hand-over.
        const { bundle: c } = await log.proveConsistency(cp3.note, 9);
        assert.equal(c.handovers?.length, 1);
        const v = verifyConsistencyBundle(c, a.vkey, { held: cp3.note });
        assert.equal(v.key, b.vkey);
        assert.equal(v.newer.size, 9);
        // Without the hand-over, B's checkpoint does not open with A's key.
        const { handovers: _, ...bare } = c;
        assert.throws(() => verifyConsistencyBundle(bare, a.vkey), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
        // A hand-over naming another key: the note is not signed by it.
        const other = generateSignerKey(ORIGIN).vkey;
        const forged = { ...c, handovers: c.handovers?.map((h) => ({ ...h, newKey: other })) };
        assert.throws(() => verifyConsistencyBundle(forged, a.vkey), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
        // A proof altered on the way to the hand-over.
        const altered = {
          ...c,
          handovers: c.handovers?.map((h) => ({
            ...h,
            proof: h.proof.map(() => Buffer.alloc(32).toString('base64')),
          })),
        };
        assert.throws(() => verifyConsistencyBundle(altered, a.vkey), code('ERR_AUDIT_PROOF_INVALID'));
        // From B's own checkpoint on, B alone.
        const { bundle: after } = await log.proveConsistency(cp9.note);
        assert.equal(after.handovers, undefined);
        verifyConsistencyBundle(after, b.vkey);
      } finally {
        await log.close();
      }
    });
  });
}

describe('bulwark audit rotate-key (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-rotate-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const p = (f: string) => join(dir, f);

  it('rotates, writes the hand-over, and verify follows it with the old key; the old key signs no more', async () => {
    const store = p('audit.db');
    const bw = (args: string[]) => runBulwarkInProcess(args);
    /** `audit rotate-key` on the store from the key in force (`from`) to `to`, with `extra`. */
    const rotate = (from: string, to: string, extra: string[] = []) =>
      bw(['audit', '--store', store, 'rotate-key', '--signing-key', p(from), '--new-key', p(to), ...extra]);
    for (const k of ['a.key', 'b.key'])
      assert.equal((await bw(['audit', 'keygen', '--name', ORIGIN, '--out', p(k)])).code, 0);
    let r = await bw([
      'audit',
      '--store',
      store,
      'checkpoint',
      '--signing-key',
      p('a.key'),
      '--out',
      p('a.note'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await rotate('a.key', 'b.key', ['--out', p('handover.note'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { size: number; previousKey: string; newKey: string };
    assert.equal(out.size, 1);
    assert.equal(out.newKey, readFileSync(p('b.key.pub'), 'utf8').trim());
    assert.ok(existsSync(p('handover.note')));
    assert.doesNotMatch(r.stdout + r.stderr, /PRIVATE\+KEY/);
    r = await bw(['audit', '--store', store, 'verify', '--key', p('a.key.pub'), '--checkpoint', p('a.note')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 checkpoint keys, each hand-over signed by both keys/);
    r = await bw(['audit', '--store', store, 'checkpoint', '--signing-key', p('a.key')]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_AUDIT_KEY_INVALID: this signing key was retired/);
    r = await bw(['audit', '--store', store, 'checkpoint', '--signing-key', p('b.key')]);
    assert.equal(r.code, 0, r.stderr);
    // An auditor who kept A's checkpoint follows the proof to B with A's key alone.
    r = await bw(['audit', '--store', store, 'prove', '--from', p('a.note'), '--out', p('c.json')]);
    assert.equal(r.code, 0, r.stderr);
    r = await bw([
      '--json',
      'audit',
      'verify',
      '--proof',
      p('c.json'),
      '--key',
      p('a.key.pub'),
      '--checkpoint',
      p('a.note'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { newKey?: string }).newKey, out.newKey);
    // Misuse: the new key missing, the same key twice.
    r = await bw(['audit', '--store', store, 'rotate-key', '--signing-key', p('b.key')]);
    assert.equal(r.code, 2, r.stderr);
    r = await rotate('b.key', 'b.key');
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_AUDIT_KEY_INVALID: the new key is the key in force/);
    writeFileSync(p('junk.key'), 'not a key\n');
    r = await rotate('b.key', 'junk.key');
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /ERR_AUDIT_KEY_INVALID: signer key/);
  });
});
