/**
 * Durability: a writer process appends a stream of events and prints each id once the log has
 * acknowledged it; the test SIGKILLs it at seeded random points, again and again, then checks that
 * every acknowledged event is in the log at the index it was acknowledged with, and that the whole
 * log (entries, tree cache, checkpoints written by the killed writers) verifies. On both stores.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditLog, generateSignerKey } from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';
import { FIXTURES, type StoreFixture, spawnWriter } from './stores.js';

const ORIGIN = 'bulwark.test/durability';
const ROUNDS = 6;

for (const makeFixture of FIXTURES) {
  const fx: StoreFixture = makeFixture();
  describe(`durability under SIGKILL on ${fx.name}`, () => {
    after(() => fx.cleanup());

    it(`every acknowledged event survives ${ROUNDS} kills and the log verifies`, async () => {
      const { skey, vkey, signer } = generateSignerKey(ORIGIN);
      const created = await AuditLog.open({ store: fx.spec, origin: ORIGIN, signer });
      await created.close();
      const rng = new SeededRng(fx.name === 'sqlite' ? 20251 : 20252);
      const acked = new Map<string, number>();
      let killedMidStream = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const w = spawnWriter({
          store: fx.spec,
          origin: ORIGIN,
          skey,
          count: 0,
          window: 64,
          checkpointEvery: 150,
          tag: `round${round}`,
        });
        // Kill after a seeded number of acknowledgements plus a seeded delay: inside a batch, between
        // batches, or during a checkpoint.
        await w.waitForAcks(1 + rng.int(400));
        await sleep(rng.int(25));
        w.child.kill('SIGKILL');
        const exit = await w.exited;
        assert.equal(exit.signal, 'SIGKILL', `round ${round} writer ended on its own: ${w.stderr}`);
        if (!w.done) killedMidStream++;
        for (const a of w.acks) {
          assert.ok(!acked.has(a.id), `id ${a.id} acknowledged twice`);
          acked.set(a.id, a.index);
        }
      }
      assert.equal(killedMidStream, ROUNDS);
      assert.ok(acked.size > ROUNDS, 'writers acknowledged events before being killed');
      const log = await AuditLog.open({ store: fx.spec });
      try {
        const report = await log.verify({ publicKey: vkey });
        assert.ok(
          report.size >= acked.size,
          `log has ${report.size} entries, ${acked.size} were acknowledged`,
        );
        const indices = new Set<number>();
        for (const [id, index] of acked) {
          const e = await log.get(id);
          assert.equal(e.index, index, `event ${id}`);
          indices.add(index);
        }
        assert.equal(indices.size, acked.size, 'no two acknowledged events share an index');
      } finally {
        await log.close();
      }
    });
  });
}
