/**
 * The audit log against someone who can write its database (an insider, a compromised host) and wants
 * to hide what a model saw or who asked it what: a store rolled back or replaced as a whole, a fork
 * shown to one auditor, rows inserted beyond the tree head, the lineage index edited, hostile text in
 * events. Each case was found by the red-team review of 2026-11-28 and failed before its fix.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type AuditEventInput,
  AuditLog,
  canonicalJson,
  describeEvent,
  EMPTY_ROOT,
  generateSignerKey,
  leafHash,
  MAX_ENTRY_CHARS,
  type NoteSigner,
  parseEventInput,
  parseVerifierKey,
  signCheckpoint,
  verifyCheckpoint,
  verifyCheckpointConsistency,
  verifyConsistency,
  verifyInclusionBundle,
} from '../../src/audit/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { code } from '../helpers/errors.js';
import { FIXTURES, freshStores, type StoreFixture, sqliteFixture } from './stores.js';

const ORIGIN = 'bulwark.test/attacks';
const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const ph = (fx: StoreFixture, n: number) => (fx.name === 'postgres' ? `$${n}` : '?');

function prediction(i: number, caller = 'alice'): AuditEventInput {
  return {
    type: 'prediction',
    data: {
      requestId: `req-${i}`,
      caller,
      modelDigest: digest('model'),
      inputDigest: digest(`input ${i}`),
      decision: i % 2 === 0 ? 'fraud' : 'legitimate',
      detections: [],
      latencyMs: 1,
    },
  };
}

const trained = (model: string, epsilon: number): AuditEventInput => ({
  type: 'model.trained',
  data: {
    modelDigest: digest(model),
    datasetDigest: digest('data'),
    algorithm: 'dp-sgd',
    hyperparameters: { lr: 0.1 },
    privacy: { epsilon, delta: 1e-5, accountant: 'rdp' },
  },
});

async function open(fx: StoreFixture, signer?: NoteSigner): Promise<AuditLog> {
  return AuditLog.open({ store: fx.spec, origin: ORIGIN, ...(signer ? { signer } : {}) });
}

for (const makeFixture of FIXTURES) {
  describe(`audit log attacks on ${makeFixture().name}`, () => {
    const fresh = freshStores(makeFixture);
    const { signer, vkey } = generateSignerKey(ORIGIN);

    it('a log rolled back to an earlier state, then forked, passes on its own but not against a checkpoint the auditor kept', async () => {
      const fx = fresh();
      const log = await open(fx, signer);
      for (let i = 0; i < 10; i++) await log.append(prediction(i));
      await log.checkpoint();
      const at10 = await log.store.state();
      for (let i = 10; i < 20; i++) await log.append(prediction(i, 'mallory'));
      // The auditor keeps the checkpoint of size 20 (what `audit checkpoint --out` gives).
      const kept = (await log.checkpoint()).note;
      await log.close();
      // Roll the store back to size 10: entries, index rows, checkpoints and head, all consistent.
      await fx.exec('DELETE FROM entries WHERE idx >= 10');
      await fx.exec('DELETE FROM refs WHERE idx >= 10');
      await fx.exec('DELETE FROM checkpoints WHERE size > 10');
      await fx.exec(`UPDATE state SET size = 10, root = ${ph(fx, 1)}, frontier = ${ph(fx, 2)}`, [
        at10.root,
        at10.frontier,
      ]);
      const rolled = await open(fx, signer);
      try {
        // On its own the rolled-back log is self-consistent: nothing in it says entries are gone.
        const alone = await rolled.verify({ publicKey: vkey });
        assert.equal(alone.size, 10);
        assert.equal(alone.signedSize, 10);
        await assert.rejects(
          rolled.verify({ publicKey: vkey, checkpoints: [kept] }),
          (e: unknown) =>
            code('ERR_AUDIT_ENTRY_MISSING')(e) && /checkpoint you hold/.test((e as Error).message),
        );
        // The operator (who has the key) forks: ten other entries and a new checkpoint of size 20.
        for (let i = 10; i < 20; i++) await rolled.append(prediction(i, 'bob'));
        await rolled.checkpoint();
        assert.equal((await rolled.verify({ publicKey: vkey })).size, 20);
        await assert.rejects(
          rolled.verify({ publicKey: vkey, checkpoints: [kept] }),
          code('ERR_AUDIT_ROOT_MISMATCH'),
        );
        // A kept checkpoint signed by another key is not an anchor.
        const forger = generateSignerKey(ORIGIN);
        const other = await open(fresh(), forger.signer);
        await other.append(prediction(0));
        const foreign = (await other.checkpoint()).note;
        await other.close();
        await assert.rejects(
          rolled.verify({ publicKey: vkey, checkpoints: [foreign] }),
          code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
        );
      } finally {
        await rolled.close();
      }
    });

    it('a store swapped for another log with no checkpoint does not pass verify with the trusted key', async () => {
      // Another origin: the trusted key belongs to another log.
      const evil = generateSignerKey('evil.test/audit');
      const fx = fresh();
      const log = await AuditLog.open({ store: fx.spec, signer: evil.signer });
      await log.append(prediction(0, 'nobody'));
      await assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ORIGIN_MISMATCH'));
      await log.close();
      // The same origin, but the log records another key and has no checkpoint signed by ours.
      const fx2 = fresh();
      const log2 = await open(fx2, generateSignerKey(ORIGIN).signer);
      await log2.append(prediction(0, 'nobody'));
      await assert.rejects(log2.verify({ publicKey: vkey }), code('ERR_AUDIT_KEY_INVALID'));
      // With a checkpoint, its signature check fails first, with the code it always had.
      await log2.checkpoint();
      await assert.rejects(log2.verify({ publicKey: vkey }), code('ERR_AUDIT_CHECKPOINT_SIGNATURE'));
      await log2.close();
      // A log of ours with no checkpoint yet verifies, and says that nothing in it is signed yet.
      const fx3 = fresh();
      const log3 = await open(fx3, signer);
      await log3.append(prediction(0));
      const r = await log3.verify({ publicKey: vkey });
      assert.deepEqual([r.size, r.signedSize, r.checkpoints], [1, 0, 0]);
      await log3.close();
    });

    it('rows inserted beyond the tree head are reported by verify and never shown or proved as logged', async () => {
      const fx = fresh();
      const log = await open(fx, signer);
      for (let i = 0; i < 5; i++) await log.append(prediction(i));
      await log.checkpoint();
      await log.close();
      // A forged entry at index 5, well formed and with its leaf hash, but the head left at 5.
      const body = canonicalJson({
        data: (prediction(99, 'mallory') as { data: unknown }).data,
        id: '01900000-0000-7000-8000-000000000000',
        index: 5,
        time: '2026-11-28T00:00:00.000Z',
        type: 'prediction',
        v: 1,
      });
      await fx.exec(
        `INSERT INTO entries (idx, id, leaf, body) VALUES (5, ${ph(fx, 1)}, ${ph(fx, 2)}, ${ph(fx, 3)})`,
        ['01900000-0000-7000-8000-000000000000', leafHash(body), body],
      );
      const reader = await open(fx);
      try {
        await assert.rejects(
          reader.verify({ publicKey: vkey }),
          (e: unknown) =>
            code('ERR_AUDIT_STORE_INVALID')(e) && /beyond the tree head/.test((e as Error).message),
        );
        const tail = await reader.tail(3);
        assert.deepEqual(
          tail.map((e) => e.index),
          [2, 3, 4],
        );
        await assert.rejects(
          reader.get('01900000-0000-7000-8000-000000000000'),
          code('ERR_AUDIT_STORE_INVALID'),
        );
        await assert.rejects(
          reader.lineage('01900000-0000-7000-8000-000000000000'),
          code('ERR_AUDIT_STORE_INVALID'),
        );
      } finally {
        await reader.close();
      }
      // With its signer, prove() would have signed a checkpoint and then failed on the range check.
      const writer = await open(fx, signer);
      try {
        await assert.rejects(
          writer.prove('01900000-0000-7000-8000-000000000000'),
          code('ERR_AUDIT_STORE_INVALID'),
        );
      } finally {
        await writer.close();
      }
    });

    it('the lineage index edited so that an older training record backs the model: verify reports it', async () => {
      const fx = fresh();
      const log = await open(fx, signer);
      await log.append(trained('m', 8));
      await log.append(prediction(1));
      await log.append(trained('m', 1));
      await log.checkpoint();
      assert.equal((await log.trainingRecord(digest('m')))?.data.privacy?.epsilon, 1);
      await log.close();
      // Dropping the index row of the latest record makes the first one "the" record of the model;
      // the entries, tree and checkpoints are untouched.
      await fx.exec('DELETE FROM refs WHERE idx = 2');
      const after1 = await open(fx);
      try {
        assert.equal((await after1.trainingRecord(digest('m')))?.data.privacy?.epsilon, 8);
        await assert.rejects(
          after1.verify({ publicKey: vkey }),
          (e: unknown) => code('ERR_AUDIT_STORE_INVALID')(e) && /lineage index/.test((e as Error).message),
        );
      } finally {
        await after1.close();
      }
      // An extra row, pointing at an entry that produces nothing, is reported too.
      await fx.exec(`INSERT INTO refs (ref, role, idx) VALUES (${ph(fx, 1)}, 0, 2)`, [
        `model:${digest('m')}`,
      ]);
      await fx.exec(`INSERT INTO refs (ref, role, idx) VALUES (${ph(fx, 1)}, 0, 1)`, [
        `model:${digest('x')}`,
      ]);
      const after2 = await open(fx);
      try {
        await assert.rejects(after2.verify({ publicKey: vkey }), code('ERR_AUDIT_STORE_INVALID'));
      } finally {
        await after2.close();
      }
    });

    it('a training record rewritten in the database backs a claim unless it is proved under a signed checkpoint', async () => {
      const fx = fresh();
      const log = await open(fx, signer);
      await log.append(trained('m', 1));
      await log.append(prediction(1));
      await log.checkpoint();
      await log.append(trained('n', 2));
      const proved = await log.trainingRecord(digest('m'), { publicKey: vkey });
      assert.deepEqual([proved?.data.privacy?.epsilon, proved?.checkpointSize], [1, 2]);
      // Appended after the latest checkpoint: nothing signed covers it yet.
      assert.equal((await log.trainingRecord(digest('n')))?.index, 2);
      await assert.rejects(
        log.trainingRecord(digest('n'), { publicKey: vkey }),
        code('ERR_AUDIT_CHECKPOINT_MISSING'),
      );
      await assert.rejects(
        log.trainingRecord(digest('m'), { publicKey: generateSignerKey(ORIGIN).vkey }),
        code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
      );
      const e = await log.get(proved?.eventId as string);
      await log.close();
      // Someone with write access to the database lowers the recorded epsilon and its leaf hash.
      const privacy = (e.data as { privacy: object }).privacy;
      const forged = canonicalJson({ ...e, data: { ...e.data, privacy: { ...privacy, epsilon: 0.1 } } });
      await fx.exec(`UPDATE entries SET body = ${ph(fx, 1)}, leaf = ${ph(fx, 2)} WHERE idx = 0`, [
        forged,
        leafHash(forged),
      ]);
      const reader = await open(fx);
      try {
        // Checked against its stored leaf hash only, the forgery is "the record" (the limitation).
        assert.equal((await reader.trainingRecord(digest('m')))?.data.privacy?.epsilon, 0.1);
        await assert.rejects(
          reader.trainingRecord(digest('m'), { publicKey: vkey }),
          code('ERR_AUDIT_PROOF_INVALID'),
        );
      } finally {
        await reader.close();
      }
    });
  });
}

describe('audit log attacks: events and the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-attacks-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a "__proto__" key in a free-form record is refused, not silently dropped from the record', () => {
    const event = JSON.parse(
      `{"type":"model.trained","data":{"modelDigest":"${digest('m')}","datasetDigest":"${digest('d')}","algorithm":"x","hyperparameters":{"__proto__":"the real one","lr":1}}}`,
    ) as unknown;
    assert.throws(
      () => parseEventInput(event),
      (e: unknown) => code('ERR_AUDIT_EVENT_INVALID')(e) && /__proto__/.test((e as Error).message),
    );
  });

  it('an event too large for an inclusion proof is refused at append, not logged unprovable', async () => {
    const { signer, vkey } = generateSignerKey(ORIGIN);
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: join(dir, 'large.db') }, signer });
    try {
      const fields = (n: number) => Array.from({ length: n }, (_, i) => `field_${i}`);
      const event = (n: number): AuditEventInput => ({
        type: 'dataset.protected',
        data: {
          datasetDigest: digest('p'),
          schemaDigest: digest('s'),
          protectedFields: fields(n),
          keyIds: ['k'],
          rows: 1,
        },
      });
      // 200,000 names: about 2.9 million characters, which no verifier of a proof accepts.
      await assert.rejects(
        log.append(event(200_000)),
        (e: unknown) => code('ERR_AUDIT_EVENT_INVALID')(e) && /at most/.test((e as Error).message),
      );
      // Just under the limit: appended, and provable to a third party.
      const ok = await log.append(event(70_000));
      const bundle = await log.prove(ok.id);
      assert.ok(
        bundle.entry.length > 900_000 && bundle.entry.length <= MAX_ENTRY_CHARS,
        `${bundle.entry.length}`,
      );
      assert.equal(verifyInclusionBundle(bundle, vkey).entry.index, 0);
      assert.equal((await log.head()).size, 1);
    } finally {
      await log.close();
    }
  });

  it('hostile text in an event cannot forge lines or escape sequences in tail and lineage output', async () => {
    const { signer, skey, vkey } = generateSignerKey(ORIGIN);
    const key = join(dir, 'log.key');
    writeFileSync(key, `${skey}\n`, { mode: 0o600 });
    writeFileSync(`${key}.pub`, `${vkey}\n`);
    const db = join(dir, 'hostile.db');
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: db }, signer });
    // A caller name that, printed raw, ends the line and prints a fake, innocent-looking entry.
    const forged = 'alice → legitimate (model sha256:00)\n#7  2026-11-28T00:00:00.000Z  prediction';
    const p = await log.append(prediction(0, forged));
    await log.append(prediction(1, 'eve\u001b[1A\u001b[2K\r\u2028bob'));
    await log.close();
    assert.doesNotMatch(describeEvent(prediction(0, forged)), /\n/);

    const tail = await runBulwarkInProcess(['audit', 'tail', '--store', db, '-n', '5']);
    assert.equal(tail.code, 0, tail.stderr);
    const lines = tail.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, tail.stdout);
    assert.ok(
      lines.every((l) => /^#\d+ {2}\S+ {2}prediction/.test(l)),
      tail.stdout,
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking that none is printed.
    assert.doesNotMatch(tail.stdout, /[\u001b\r\u2028]/);
    const lin = await runBulwarkInProcess(['audit', 'lineage', p.id, '--store', db]);
    assert.equal(lin.code, 0, lin.stderr);
    assert.equal(lin.stdout.trimEnd().split('\n').length, 2, lin.stdout);
  });

  it('verify --checkpoint FILE: a rolled-back SQLite log fails against the checkpoint the auditor kept', async () => {
    const fx = sqliteFixture();
    const { signer, skey, vkey } = generateSignerKey(ORIGIN);
    const key = join(dir, 'cp.key');
    writeFileSync(key, `${skey}\n`, { mode: 0o600 });
    writeFileSync(`${key}.pub`, `${vkey}\n`);
    try {
      const log = await AuditLog.open({ store: fx.spec, signer });
      for (let i = 0; i < 4; i++) await log.append(prediction(i));
      await log.checkpoint();
      const at4 = await log.store.state();
      for (let i = 4; i < 8; i++) await log.append(prediction(i));
      await log.close();
      const store = (fx.spec as { path: string }).path;
      const verifyStore = (...extra: string[]) =>
        runBulwarkInProcess(['audit', 'verify', '--store', store, ...extra]);
      const keptFile = join(dir, 'kept.note');
      const cp = await runBulwarkInProcess([
        'audit',
        'checkpoint',
        '--store',
        store,
        '--signing-key',
        key,
        '--out',
        keptFile,
      ]);
      assert.equal(cp.code, 0, cp.stderr);
      await fx.exec('DELETE FROM entries WHERE idx >= 4');
      await fx.exec('DELETE FROM checkpoints WHERE size > 4');
      await fx.exec('UPDATE state SET size = 4, root = ?, frontier = ?', [at4.root, at4.frontier]);

      const alone = await verifyStore('--key', `${key}.pub`);
      assert.equal(alone.code, 0, alone.stderr);
      assert.match(alone.stderr, /--checkpoint/);
      const anchored = await verifyStore('--key', `${key}.pub`, '--checkpoint', keptFile);
      assert.equal(anchored.code, 5, anchored.stderr);
      assert.match(anchored.stderr, /^bulwark: ERR_AUDIT_ENTRY_MISSING: .*checkpoint you hold/);
      const missing = await verifyStore('--checkpoint', join(dir, 'no-such.note'));
      assert.equal(missing.code, 3, missing.stderr);
      assert.match(missing.stderr, /^bulwark: ERR_FILE_NOT_FOUND: /);
      // The signing key given as --checkpoint: refused as malformed, and its text is never echoed.
      const wrong = await verifyStore('--checkpoint', key);
      assert.equal(wrong.code, 5, wrong.stderr);
      assert.match(wrong.stderr, /^bulwark: ERR_AUDIT_CHECKPOINT_INVALID: /);
      assert.ok(!wrong.stderr.includes(skey.split('+')[4] as string));
    } finally {
      await fx.cleanup();
    }
  });

  it('a signed checkpoint of size 0 must state the empty tree\'s root, or it would be "consistent" with anything', () => {
    const { signer, vkey } = generateSignerKey(ORIGIN);
    const bogus = Buffer.alloc(32, 7);
    const empty = signerNote(signer, 0, bogus);
    const later = signerNote(signer, 5, Buffer.alloc(32, 1));
    // RFC 9162's consistency check from size 0 takes an empty proof whatever the roots.
    assert.equal(verifyConsistency(0, 5, bogus, Buffer.alloc(32, 1), []), true);
    assert.throws(
      () => verifyCheckpoint(empty, parseVerifierKey(vkey)),
      code('ERR_AUDIT_CHECKPOINT_INVALID'),
    );
    assert.throws(
      () => verifyCheckpointConsistency(empty, later, [], vkey),
      code('ERR_AUDIT_CHECKPOINT_INVALID'),
    );
    assert.throws(
      () => signCheckpoint({ origin: ORIGIN, size: 0, root: bogus }, signer),
      code('ERR_AUDIT_CHECKPOINT_INVALID'),
    );
    assert.equal(verifyCheckpoint(signerNote(signer, 0, EMPTY_ROOT), parseVerifierKey(vkey)).size, 0);
  });
});

function signerNote(signer: NoteSigner, size: number, root: Buffer): string {
  // Written by hand (not signCheckpoint) so the test does not depend on what signing accepts.
  const text = `${ORIGIN}\n${size}\n${root.toString('base64')}\n`;
  const id = Buffer.alloc(4);
  id.writeUInt32BE(signer.keyId, 0);
  return `${text}\n\u2014 ${signer.name} ${Buffer.concat([id, signer.sign(Buffer.from(text))]).toString('base64')}\n`;
}
