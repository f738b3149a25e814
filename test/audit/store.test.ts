/**
 * The shared audit store suite: every test runs on SQLite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  type AuditEventInput,
  AuditLog,
  type AuditStoreSpec,
  canonicalJson,
  generateSignerKey,
  leafHash,
  type NoteSigner,
  nodeHash,
  signCheckpoint,
  verifyCheckpointConsistency,
  verifyInclusionBundle,
} from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';
import { code } from '../helpers/errors.js';
import { FIXTURES, freshStores, PG_URL, type StoreFixture, spawnWriter } from './stores.js';

const ORIGIN = 'bulwark.test/audit';
/** A SQL placeholder for the fixture's database. */
const ph = (fx: StoreFixture, n: number) => (fx.name === 'postgres' ? `$${n}` : '?');
const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** A realistic lineage: keys, raw data, protected data, a DP model, a package, a load, predictions. */
function lineageEvents(): AuditEventInput[] {
  return [
    {
      type: 'key.created',
      data: { keyId: 'kek-1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'wrap' },
    },
    {
      type: 'key.created',
      data: { keyId: 'dek-1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
    },
    { type: 'key.rotated', data: { keyId: 'dek-2', previousKeyId: 'dek-1', provider: 'local' } },
    {
      type: 'dataset.created',
      data: { datasetDigest: digest('raw'), source: 'synthetic', rows: 1000, columns: 20 },
    },
    {
      type: 'dataset.protected',
      data: {
        datasetDigest: digest('protected'),
        sourceDigest: digest('raw'),
        schemaDigest: digest('schema'),
        protectedFields: ['card_number', 'email'],
        keyIds: ['dek-2'],
        rows: 1000,
      },
    },
    {
      type: 'model.trained',
      data: {
        modelDigest: digest('model'),
        datasetDigest: digest('protected'),
        algorithm: 'dp-sgd',
        hyperparameters: { lr: 0.05, epochs: 5, batch: 256 },
        privacy: { epsilon: 3, delta: 1e-5, accountant: 'rdp', noiseMultiplier: 1.1, clipNorm: 1 },
        metrics: { auc: 0.93 },
      },
    },
    {
      type: 'model.packaged',
      data: {
        packageDigest: digest('pkg'),
        modelDigest: digest('model'),
        keyId: 'dek-2',
        signerKeyId: 'kek-1',
      },
    },
    {
      type: 'model.loaded',
      data: { packageDigest: digest('pkg'), modelDigest: digest('model'), server: 'gw-1' },
    },
  ];
}

function prediction(i: number): AuditEventInput {
  return {
    type: 'prediction',
    data: {
      requestId: `req-${i}`,
      caller: i % 3 === 0 ? 'alice' : 'bob',
      modelDigest: digest('model'),
      packageDigest: digest('pkg'),
      inputDigest: digest(`input ${i}`),
      decision: i % 11 === 0 ? 'fraud' : 'legitimate',
      detections: [{ detector: 'mahalanobis', score: i / 100, flagged: i % 50 === 0 }],
      latencyMs: 0.5 + (i % 9),
    },
  };
}

// Naive RFC 9162 reference over leaf hashes, independent of the store's cached subtrees.
function naiveMth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return leaves[0] as Buffer;
  const k = 2 ** Math.floor(Math.log2(leaves.length - 1));
  return nodeHash(naiveMth(leaves.slice(0, k)), naiveMth(leaves.slice(k)));
}
function naivePath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  const k = 2 ** Math.floor(Math.log2(leaves.length - 1));
  return m < k
    ? [...naivePath(m, leaves.slice(0, k)), naiveMth(leaves.slice(k))]
    : [...naivePath(m - k, leaves.slice(k)), naiveMth(leaves.slice(0, k))];
}

async function withLog<T>(
  fx: StoreFixture,
  signer: NoteSigner,
  fn: (log: AuditLog) => Promise<T>,
): Promise<T> {
  const log = await AuditLog.open({ store: fx.spec, origin: ORIGIN, signer });
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

/** A 300-event log with checkpoints at sizes 100 and 300; returns the receipts. */
async function buildLog(fx: StoreFixture, signer: NoteSigner) {
  return withLog(fx, signer, async (log) => {
    const receipts = await Promise.all(
      [...lineageEvents(), ...Array.from({ length: 92 }, (_, i) => prediction(i))].map((e) => log.append(e)),
    );
    await log.checkpoint();
    receipts.push(
      ...(await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(prediction(100 + i))))),
    );
    await log.checkpoint();
    return receipts;
  });
}

for (const makeFixture of FIXTURES) {
  const name = makeFixture().name;

  describe(`audit log on ${name}`, () => {
    const fresh = freshStores(makeFixture);
    const { signer, vkey } = generateSignerKey(ORIGIN);

    it('appends one sequence; proofs at every checkpoint match a naive recomputation; verify passes', async () => {
      const fx = fresh();
      await withLog(fx, signer, async (log) => {
        const empty = await log.checkpoint();
        assert.equal(empty.size, 0);
        assert.deepEqual(empty.root, createHash('sha256').digest());
        const rng = new SeededRng(11);
        const sizes = [1, 2, 255, 256, 257, 511, 513, 600];
        const receipts: { id: string; index: number; leafHash: string }[] = [];
        for (const target of sizes) {
          const batch = Array.from({ length: target - receipts.length }, (_, i) =>
            prediction(receipts.length + i),
          );
          receipts.push(...(await Promise.all(batch.map((e) => log.append(e)))));
          await log.checkpoint();
        }
        assert.deepEqual(
          receipts.map((r) => r.index),
          receipts.map((_, i) => i),
        );
        const leaves = receipts.map((r) => Buffer.from(r.leafHash, 'hex'));
        const cps = await log.checkpoints();
        assert.deepEqual(
          cps.map((c) => c.size),
          [0, ...sizes],
        );
        for (const cp of cps)
          assert.deepEqual(cp.root, naiveMth(leaves.slice(0, cp.size)), `root of ${cp.size}`);
        for (const size of sizes) {
          const indices = new Set([0, size - 1, Math.floor(size / 2), rng.int(size), rng.int(size)]);
          for (const index of indices) {
            const bundle = await log.prove((receipts[index] as { id: string }).id, size);
            assert.deepEqual(
              bundle.proof.map((p) => Buffer.from(p, 'base64')),
              naivePath(index, leaves.slice(0, size)),
              `proof of ${index} in ${size}`,
            );
            const v = verifyInclusionBundle(JSON.parse(JSON.stringify(bundle)), vkey);
            assert.equal(v.entry.index, index);
            assert.equal(v.checkpoint.size, size);
          }
        }
        for (let i = 1; i < cps.length; i++)
          for (const j of [i - 1, 0]) {
            const a = cps[j] as { size: number; note: string };
            const b = cps[i] as { size: number; note: string };
            const proof = await log.consistency(a.size, b.size);
            assert.equal(verifyCheckpointConsistency(a.note, b.note, proof, vkey).newer.size, b.size);
          }
        const report = await log.verify({ publicKey: vkey });
        assert.equal(report.size, 600);
        assert.equal(report.checkpoints, cps.length);
        assert.equal(report.keySource, 'argument');
        // 600 leaves complete subtrees of height >= 8 at (8,0), (8,1), (9,0): all compared.
        assert.equal(report.nodesChecked, 3);
        assert.equal(report.root, naiveMth(leaves).toString('base64'));
      });
    });

    it('walks lineage from a prediction back to the package, model, training data, raw data and keys', async () => {
      const fx = fresh();
      await withLog(fx, signer, async (log) => {
        const r = [];
        for (const e of lineageEvents()) r.push(await log.append(e));
        const p = await log.append(prediction(1));
        // A later retraining must not be taken as the producer of what the prediction used.
        await log.append(lineageEvents()[5] as AuditEventInput);
        const lin = await log.lineage(p.id);
        assert.deepEqual(
          lin.nodes.map((n) => [n.entry.type, n.depth, n.via]),
          [
            ['prediction', 0, null],
            ['model.packaged', 1, `package:${digest('pkg')}`],
            ['model.trained', 2, `model:${digest('model')}`],
            ['key.rotated', 2, 'key:dek-2'],
            ['key.created', 2, 'key:kek-1'],
            ['dataset.protected', 3, `dataset:${digest('protected')}`],
            ['key.created', 3, 'key:dek-1'],
            ['dataset.created', 4, `dataset:${digest('raw')}`],
          ],
        );
        assert.deepEqual(lin.unresolved, []);
        assert.equal((await log.get(p.id)).type, 'prediction');
        assert.deepEqual(
          (await log.tail(3)).map((e) => e.type),
          ['model.loaded', 'prediction', 'model.trained'],
        );
        await assert.rejects(log.get('no-such-id'), code('ERR_AUDIT_EVENT_NOT_FOUND'));
        // No checkpoint covers the prediction yet: the log has its signer, so prove() writes one.
        const b = await log.prove(p.id);
        assert.equal(verifyInclusionBundle(b, vkey).entry.id, p.id);
      });
    });

    it('refuses invalid events at once and a second log key or origin on the same store', async () => {
      const fx = fresh();
      await withLog(fx, signer, async (log) => {
        await assert.rejects(
          log.append({ type: 'prediction', data: { caller: 'x' } } as unknown as AuditEventInput),
          code('ERR_AUDIT_EVENT_INVALID'),
        );
        await log.append(prediction(0));
      });
      const other = generateSignerKey(ORIGIN);
      await assert.rejects(
        AuditLog.open({ store: fx.spec, signer: other.signer }),
        code('ERR_AUDIT_KEY_INVALID'),
      );
      await assert.rejects(
        AuditLog.open({ store: fx.spec, origin: 'bulwark.test/other' }),
        code('ERR_AUDIT_ORIGIN_MISMATCH'),
      );
      const reader = await AuditLog.open({ store: fx.spec });
      assert.equal(reader.origin, ORIGIN);
      await assert.rejects(reader.checkpoint(), code('ERR_AUDIT_KEY_INVALID'));
      await reader.close();
      await assert.rejects(reader.append(prediction(1)), code('ERR_AUDIT_CLOSED'));
    });

    describe('tamper detection', () => {
      it('a corrupted entry: ERR_AUDIT_ENTRY_CORRUPT', async () => {
        const fx = fresh();
        await buildLog(fx, signer);
        await fx.exec(
          `UPDATE entries SET body = replace(body, '"caller":"', '"caller":"eve-') WHERE idx = 20`,
        );
        await withLog(fx, signer, (log) =>
          assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ENTRY_CORRUPT')),
        );
      });

      it('a reordered entry: ERR_AUDIT_ENTRY_ORDER', async () => {
        const fx = fresh();
        await buildLog(fx, signer);
        // Swap two whole rows (id, leaf and bytes together), as an attacker reordering the log would.
        await fx.exec('UPDATE entries SET idx = -1 WHERE idx = 40');
        await fx.exec('UPDATE entries SET idx = 40 WHERE idx = 41');
        await fx.exec('UPDATE entries SET idx = 41 WHERE idx = -1');
        await withLog(fx, signer, (log) =>
          assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ENTRY_ORDER')),
        );
      });

      it('an entry rewritten with a recomputed leaf hash: ERR_AUDIT_ROOT_MISMATCH against the signed root', async () => {
        const fx = fresh();
        const receipts = await buildLog(fx, signer);
        const log = await AuditLog.open({ store: fx.spec });
        const e = await log.get((receipts[30] as { id: string }).id);
        await log.close();
        const canonical = canonicalJson({ ...e, data: { ...e.data, latencyMs: 999 } });
        assert.notEqual(canonical, JSON.stringify(e));
        await fx.exec(`UPDATE entries SET body = ${ph(fx, 1)}, leaf = ${ph(fx, 2)} WHERE idx = 30`, [
          canonical,
          leafHash(canonical),
        ]);
        await withLog(fx, signer, (l) =>
          assert.rejects(l.verify({ publicKey: vkey }), code('ERR_AUDIT_ROOT_MISMATCH')),
        );
      });

      it('entries removed: ERR_AUDIT_ENTRY_MISSING', async () => {
        const fx = fresh();
        await buildLog(fx, signer);
        await fx.exec('DELETE FROM entries WHERE idx = 150');
        await withLog(fx, signer, (log) =>
          assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ENTRY_MISSING')),
        );
        // Truncating the tail and rewinding the head is caught by the signed checkpoint of size 300.
        await fx.exec('DELETE FROM entries WHERE idx >= 150');
        await fx.exec('UPDATE state SET size = 150');
        await withLog(fx, signer, (log) =>
          assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ENTRY_MISSING')),
        );
      });

      it('the lineage index or the id column altered: caught when read', async () => {
        const fx = fresh();
        const receipts = await buildLog(fx, signer);
        // #6 is model.packaged (produces the package); point its index row at #5 (model.trained).
        await fx.exec('UPDATE refs SET idx = 5 WHERE idx = 6');
        await fx.exec(`UPDATE entries SET id = 'forged' WHERE idx = 9`);
        await withLog(fx, signer, async (log) => {
          await assert.rejects(
            log.lineage((receipts[8] as { id: string }).id),
            code('ERR_AUDIT_STORE_INVALID'),
          );
          await assert.rejects(log.get('forged'), code('ERR_AUDIT_ENTRY_CORRUPT'));
          await assert.rejects(log.verify({ publicKey: vkey }), code('ERR_AUDIT_ENTRY_CORRUPT'));
        });
      });

      it('a checkpoint signed by another key: ERR_AUDIT_CHECKPOINT_SIGNATURE', async () => {
        const fx = fresh();
        await buildLog(fx, signer);
        const forger = generateSignerKey(ORIGIN);
        const log = await AuditLog.open({ store: fx.spec });
        const head = await log.head();
        await log.close();
        const forged = signCheckpoint({ origin: ORIGIN, size: head.size, root: head.root }, forger.signer);
        await fx.exec(`UPDATE checkpoints SET note = ${ph(fx, 1)} WHERE size = 300`, [forged.note]);
        await withLog(fx, signer, (l) =>
          assert.rejects(l.verify({ publicKey: vkey }), code('ERR_AUDIT_CHECKPOINT_SIGNATURE')),
        );
      });

      it('a proof for the wrong tree size: ERR_AUDIT_PROOF_SIZE, and ERR_AUDIT_PROOF_INVALID when relabelled', async () => {
        const fx = fresh();
        const receipts = await buildLog(fx, signer);
        await withLog(fx, signer, async (log) => {
          const id = (receipts[50] as { id: string }).id;
          const at100 = await log.prove(id, 100);
          const at300 = await log.prove(id, 300);
          assert.equal(verifyInclusionBundle(at100, vkey).checkpoint.size, 100);
          assert.throws(
            () => verifyInclusionBundle({ ...at100, checkpoint: at300.checkpoint }, vkey),
            code('ERR_AUDIT_PROOF_SIZE'),
          );
          assert.throws(
            () => verifyInclusionBundle({ ...at100, checkpoint: at300.checkpoint, treeSize: 300 }, vkey),
            code('ERR_AUDIT_PROOF_INVALID'),
          );
          assert.throws(
            () => verifyInclusionBundle({ ...at300, index: 51 }, vkey),
            code('ERR_AUDIT_PROOF_INVALID'),
          );
          const other = await log.prove((receipts[51] as { id: string }).id, 300);
          assert.throws(
            () => verifyInclusionBundle({ ...at300, entry: other.entry }, vkey),
            code('ERR_AUDIT_PROOF_INVALID'),
          );
          assert.throws(
            () => verifyInclusionBundle(at300, generateSignerKey(ORIGIN).vkey),
            code('ERR_AUDIT_CHECKPOINT_SIGNATURE'),
          );
          await assert.rejects(log.prove(id, 99), code('ERR_AUDIT_CHECKPOINT_MISSING'));
        });
      });
    });

    it('writers in several processes produce one consistent sequence', async () => {
      const fx = fresh();
      // Create the log first so that the writers only open it.
      await withLog(fx, signer, async () => {});
      const writers = ['w1', 'w2', 'w3'].map((tag) =>
        spawnWriter({ store: fx.spec, origin: ORIGIN, count: 150, window: 16, tag }),
      );
      const exits = await Promise.all(writers.map((w) => w.exited));
      for (const [i, x] of exits.entries()) assert.equal(x.code, 0, `writer ${i}: ${writers[i]?.stderr}`);
      const all = writers.flatMap((w) => w.acks);
      assert.equal(all.length, 450);
      assert.deepEqual(
        all.map((a) => a.index).sort((a, b) => a - b),
        Array.from({ length: 450 }, (_, i) => i),
      );
      await withLog(fx, signer, async (log) => {
        await log.checkpoint();
        const report = await log.verify({ publicKey: vkey });
        assert.equal(report.size, 450);
        for (const a of all) assert.equal((await log.get(a.id)).index, a.index);
      });
    });
  });
}

describe('fail closed when the store is unreachable', () => {
  it('a log that does not exist is not created by readers', async () => {
    const fx = FIXTURES[0]();
    const missing = { ...(fx.spec as { kind: 'sqlite'; path: string }), create: false };
    await assert.rejects(AuditLog.open({ store: missing }), code('ERR_FILE_NOT_FOUND'));
    const noSchema: AuditStoreSpec = {
      kind: 'postgres',
      url: PG_URL,
      schema: 'audit_no_such_schema',
      create: false,
    };
    await assert.rejects(AuditLog.open({ store: noSchema }), code('ERR_AUDIT_STORE_INVALID'));
    await fx.cleanup();
  });

  it('PostgreSQL not listening: open fails with ERR_AUDIT_UNAVAILABLE', async () => {
    const spec: AuditStoreSpec = {
      kind: 'postgres',
      url: 'postgres://postgres@127.0.0.1:1/test',
      schema: 'audit_nowhere',
    };
    await assert.rejects(AuditLog.open({ store: spec, origin: ORIGIN }), code('ERR_AUDIT_UNAVAILABLE'));
  });

  it('PostgreSQL going away after open: append rejects with ERR_AUDIT_UNAVAILABLE, nothing is acknowledged', async () => {
    const target = new URL(PG_URL);
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = tcpConnect(Number(target.port || 5432), target.hostname);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop);
      upstream.on('error', drop);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as { port: number }).port;
    const via = new URL(PG_URL);
    via.port = String(port);
    via.hostname = '127.0.0.1';
    const fx = StoreFixtureFor(via.toString());
    const log = await AuditLog.open({ store: fx.spec, origin: ORIGIN });
    try {
      await log.append(prediction(0));
      proxy.close();
      for (const s of sockets) s.destroy();
      await assert.rejects(log.append(prediction(1)), code('ERR_AUDIT_UNAVAILABLE'));
    } finally {
      await log.close().catch(() => {});
      await fx.cleanup();
    }
  });

  it('SQLite locked by another writer beyond the busy timeout: ERR_AUDIT_UNAVAILABLE', async () => {
    const fx = FIXTURES[0]();
    const spec = { ...(fx.spec as { kind: 'sqlite'; path: string }), busyTimeoutMs: 50 };
    const log = await AuditLog.open({ store: spec, origin: ORIGIN });
    const holder = new Database(spec.path);
    try {
      await log.append(prediction(0));
      holder.prepare('BEGIN IMMEDIATE').run();
      await assert.rejects(log.append(prediction(1)), code('ERR_AUDIT_UNAVAILABLE'));
      holder.prepare('ROLLBACK').run();
      assert.equal((await log.append(prediction(2))).index, 1, 'the log recovers once the lock is released');
    } finally {
      holder.close();
      await log.close();
      await fx.cleanup();
    }
  });
});

/** A PostgreSQL fixture reached through another URL (the proxy). */
function StoreFixtureFor(url: string): StoreFixture {
  const base = FIXTURES[1]();
  const spec = { ...(base.spec as { kind: 'postgres'; url: string; schema: string }), url };
  return { ...base, spec };
}
