/**
 * The audit log on a writer thread (src/audit/threaded.ts): the same entries, receipts and
 * checkpoints as the log on the calling thread, errors with their codes, and fail-closed behaviour
 * when the thread stops, with recovery.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AuditEventInput,
  AuditLog,
  generateSignerKey,
  parseVerifierKey,
  ThreadedAuditLog,
  verifyCheckpoint,
} from '../../src/audit/index.js';
import { CRASH_WRITER } from '../../src/audit/threaded.js';
import { BulwarkError } from '../../src/core/index.js';
import { pgFixture, type StoreFixture, sqliteFixture } from './stores.js';

const ORIGIN = 'bulwark.test/threaded';
const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

function prediction(i: number): AuditEventInput {
  return {
    type: 'prediction',
    data: {
      requestId: `req-${i}`,
      caller: `spiffe://bulwark.test/client-${i % 3}`,
      modelDigest: digest('model'),
      inputDigest: digest(`input-${i}`),
      decision: i % 2 === 0 ? 'fraud' : 'legit',
      detections: [{ detector: 'mahalanobis', score: i / 7, flagged: i % 5 === 0 }],
      latencyMs: i * 0.25,
    },
  };
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof BulwarkError ? e.code : `not a BulwarkError: ${String(e)}`;
  }
};

for (const make of [sqliteFixture, pgFixture]) {
  describe(`ThreadedAuditLog on ${make().name}`, () => {
    const fixtures: StoreFixture[] = [];
    after(async () => {
      for (const f of fixtures) await f.cleanup();
    });

    it('commits concurrent appends as the inline log would: indexes, leaf hashes, checkpoint, verify', async () => {
      const f = make();
      fixtures.push(f);
      const { skey, vkey } = generateSignerKey(ORIGIN);
      const log = await ThreadedAuditLog.open({ store: f.spec, signerKey: skey });
      assert.equal(log.origin, ORIGIN);
      const n = 300;
      // Several loop turns' worth, so several messages and commit batches.
      const receipts = [];
      for (let turn = 0; turn < 6; turn++) {
        receipts.push(
          ...(await Promise.all(
            Array.from({ length: n / 6 }, (_, j) => log.append(prediction(turn * 50 + j))),
          )),
        );
      }
      assert.deepEqual(
        receipts.map((r) => r.index).sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => i),
      );
      const cp = await log.checkpoint();
      assert.equal(cp.size, n);
      assert.ok(Buffer.isBuffer(cp.root) && cp.root.length === 32);
      verifyCheckpoint(cp.note, parseVerifierKey(vkey), ORIGIN);
      assert.equal((await log.checkpoints()).at(-1)?.note, cp.note);
      assert.equal(await log.publicKey(), vkey);
      await log.close();
      await log.close(); // idempotent

      const inline = await AuditLog.open({ store: f.spec });
      try {
        const report = await inline.verify({ publicKey: vkey, schema: true });
        assert.equal(report.size, n);
        assert.equal(report.root, cp.root.toString('base64'));
        for (const r of receipts.slice(0, 20)) {
          const e = await inline.get(r.id);
          assert.equal(e.index, r.index);
        }
        const tail = await inline.tail(1);
        assert.equal(tail[0]?.type, 'prediction');
      } finally {
        await inline.close();
      }
    });

    it('rejects an invalid event with its code and still commits the valid ones sent with it', async () => {
      const f = make();
      fixtures.push(f);
      const { skey } = generateSignerKey(ORIGIN);
      const log = await ThreadedAuditLog.open({ store: f.spec, signerKey: skey });
      try {
        const bad = prediction(1);
        (bad.data as Record<string, unknown>)['inputDigest'] = 'md5:abc';
        const results = await Promise.all([
          codeOf(log.append(prediction(0))),
          codeOf(log.append(bad)),
          codeOf(log.append({ type: 'no.such.type', data: {} } as unknown as AuditEventInput)),
          codeOf(log.append(prediction(2))),
        ]);
        assert.deepEqual(results, [
          'resolved',
          'ERR_AUDIT_EVENT_INVALID',
          'ERR_AUDIT_EVENT_INVALID',
          'resolved',
        ]);
        // An event that cannot even be sent to the thread, in the same turn as two valid ones.
        const fn = prediction(3);
        (fn.data as Record<string, unknown>)['latencyMs'] = () => 1;
        assert.deepEqual(
          await Promise.all([
            codeOf(log.append(prediction(4))),
            codeOf(log.append(fn)),
            codeOf(log.append(prediction(5))),
          ]),
          ['resolved', 'ERR_AUDIT_EVENT_INVALID', 'resolved'],
        );
        assert.equal((await log.checkpoint()).size, 4);
      } finally {
        await log.close();
      }
      assert.equal(await codeOf(log.append(prediction(9))), 'ERR_AUDIT_CLOSED');
      assert.equal(await codeOf(log.flush()), 'ERR_AUDIT_CLOSED');
    });

    it('fails closed when the thread stops, then reopens the log by itself', async () => {
      const f = make();
      fixtures.push(f);
      const { skey, vkey } = generateSignerKey(ORIGIN);
      const log = await ThreadedAuditLog.open({ store: f.spec, signerKey: skey });
      try {
        await Promise.all([0, 1, 2].map((i) => log.append(prediction(i))));
        // In flight when the thread dies: refused, never reported as written.
        const inFlight = log.append(prediction(3));
        const flushing = log.flush();
        await log[CRASH_WRITER]();
        assert.equal(await codeOf(inFlight), 'ERR_AUDIT_UNAVAILABLE');
        assert.equal(await codeOf(flushing), 'ERR_AUDIT_UNAVAILABLE');
        assert.equal(await codeOf(log.append(prediction(4))), 'ERR_AUDIT_UNAVAILABLE');
        assert.equal(await codeOf(log.checkpoint()), 'ERR_AUDIT_UNAVAILABLE');
        // The next calls start a new thread (at most one attempt a second).
        let ok = false;
        for (let attempt = 0; attempt < 100 && !ok; attempt++) {
          ok = (await codeOf(log.append(prediction(5)))) === 'resolved';
          if (!ok) await sleep(100);
        }
        assert.ok(ok, 'the writer thread came back');
        const cp = await log.checkpoint();
        // 3 before the crash, maybe the one in flight (committed but not acknowledged), then 1.
        assert.ok(cp.size === 4 || cp.size === 5, `tree size ${cp.size}`);
      } finally {
        await log.close();
      }
      const inline = await AuditLog.open({ store: f.spec });
      try {
        const r = await inline.verify({ publicKey: vkey });
        assert.ok(r.size === 4 || r.size === 5);
      } finally {
        await inline.close();
      }
    });

    it('close() commits what was appended before it and leaves nothing pending', async () => {
      const f = make();
      fixtures.push(f);
      const { skey, vkey } = generateSignerKey(ORIGIN);
      const log = await ThreadedAuditLog.open({ store: f.spec, signerKey: skey });
      const before = Array.from({ length: 20 }, (_, i) => codeOf(log.append(prediction(i))));
      const closing = log.close();
      const after = codeOf(log.append(prediction(99)));
      await closing;
      assert.deepEqual(await Promise.all(before), Array(20).fill('resolved'));
      assert.equal(await after, 'ERR_AUDIT_CLOSED');
      const inline = await AuditLog.open({ store: f.spec });
      try {
        assert.equal((await inline.verify({ publicKey: vkey })).size, 20);
      } finally {
        await inline.close();
      }
    });

    it('fails the start with the log’s own codes', async () => {
      const f = make();
      fixtures.push(f);
      const a = generateSignerKey(ORIGIN);
      const log = await ThreadedAuditLog.open({ store: f.spec, signerKey: a.skey });
      await log.close();
      const other = generateSignerKey('bulwark.test/other');
      assert.equal(
        await codeOf(ThreadedAuditLog.open({ store: f.spec, signerKey: other.skey })),
        'ERR_AUDIT_ORIGIN_MISMATCH',
      );
      const sameName = generateSignerKey(ORIGIN);
      assert.equal(
        await codeOf(ThreadedAuditLog.open({ store: f.spec, signerKey: sameName.skey })),
        'ERR_AUDIT_KEY_INVALID',
      );
      assert.equal(
        await codeOf(ThreadedAuditLog.open({ store: f.spec, signerKey: 'not a key' })),
        'ERR_AUDIT_KEY_INVALID',
      );
      assert.equal(
        await codeOf(ThreadedAuditLog.open({ store: f.spec, startTimeoutMs: 0 })),
        'ERR_INVALID_ARGUMENT',
      );
    });
  });
}
