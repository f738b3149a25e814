/**
 * A training record signed by its writer (src/audit/record-signature.ts): `AuditLog.signRecordsWith`
 * signs each `model.trained` record appended, and `requireRecordSignedBy` accepts only a record a
 * trusted key signed, unchanged since. On a real SQLite log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type AuditEntry,
  type AuditEventData,
  AuditLog,
  canonicalJson,
  describeEvent,
  generateSignerKey,
  leafHash,
  parseVerifierKey,
  RECORD_SIGNATURE_CONTEXT,
  requireRecordSignedBy,
  signTrainingRecord,
} from '../../src/audit/index.js';
import { code } from '../helpers/errors.js';
import { sqliteFixture } from './stores.js';

const dir = mkdtempSync(join(tmpdir(), 'bulwark-record-sig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const record: AuditEventData<'model.trained'> = {
  modelDigest: digest('a'),
  datasetDigest: digest('b'),
  algorithm: 'mlp',
  hyperparameters: { epochs: 3, seed: 1 },
  adversarial: { attack: 'pgd', epsilon: 0.1, steps: 3 },
};
const trainer = generateSignerKey('ci.example/trainer');
const other = generateSignerKey('ci.example/trainer');
const trusted = [parseVerifierKey(trainer.vkey)];

describe('training records signed by their writer', () => {
  it('a signed record verifies with its key; changed, unsigned or signed by another key it is refused, naming why', () => {
    const signed = signTrainingRecord(record, trainer.signer);
    assert.equal(signed.recordedBy?.key, trainer.vkey);
    assert.equal(requireRecordSignedBy(signed, trusted, 'the record').vkey, trainer.vkey);
    // The signature covers the context line and the record's canonical JSON without recordedBy.
    const message = Buffer.from(RECORD_SIGNATURE_CONTEXT + canonicalJson(record), 'utf8');
    assert.ok(trusted[0]?.verify(message, Buffer.from(signed.recordedBy?.signature ?? '', 'base64')));
    const bare = trainer.signer.sign(Buffer.from(canonicalJson(record), 'utf8')).toString('base64');
    assert.throws(
      () =>
        requireRecordSignedBy(
          { ...record, recordedBy: { key: trainer.vkey, signature: bare } },
          trusted,
          'the record',
        ),
      code('ERR_LINEAGE_UNBACKED', /does not verify: the record was changed after it was signed/),
    );
    assert.throws(
      () =>
        requireRecordSignedBy(
          { ...signed, adversarial: { attack: 'pgd', epsilon: 0.3, steps: 3 } },
          trusted,
          'the record',
        ),
      code('ERR_LINEAGE_UNBACKED', /does not verify/),
    );
    assert.throws(
      () => requireRecordSignedBy(record, trusted, 'the record'),
      code('ERR_LINEAGE_UNBACKED', /^the record is not signed by its writer/),
    );
    assert.throws(
      () => requireRecordSignedBy(signTrainingRecord(record, other.signer), trusted, 'the record'),
      code(
        'ERR_LINEAGE_UNBACKED',
        /is signed by ci\.example\/trainer\+[0-9a-f]{8}, not by a trainer key given/,
      ),
    );
    // Either of two trusted keys.
    const both = [...trusted, parseVerifierKey(other.vkey)];
    assert.equal(requireRecordSignedBy(signTrainingRecord(record, other.signer), both, 'r').vkey, other.vkey);
  });

  it('signRecordsWith signs each model.trained appended (and nothing else); the stored record verifies', async () => {
    const log = await AuditLog.open({
      store: { kind: 'sqlite', path: join(dir, 'log.db'), create: true },
      origin: 'bulwark.test/records',
    });
    try {
      await log.append({ type: 'model.trained', data: record });
      log.signRecordsWith(trainer.signer);
      await log.append({
        type: 'key.created',
        data: { keyId: 'k1', algorithm: 'AES-256-GCM', provider: 'local', purpose: 'data' },
      });
      await log.append({ type: 'model.trained', data: { ...record, modelDigest: digest('c') } });
      // A record that carries a signature already (another writer's) is stored as it came.
      const foreign = signTrainingRecord({ ...record, modelDigest: digest('d') }, other.signer);
      await log.append({ type: 'model.trained', data: foreign });
      const entries = await log.tail(10);
      const by = entries.map((e) => (e.data as { recordedBy?: { key: string } }).recordedBy?.key);
      assert.deepEqual(by, [undefined, undefined, trainer.vkey, other.vkey]);
      // audit tail and lineage name the signer.
      assert.match(describeEvent(entries[2] as AuditEntry), /, signed by ci\.example\/trainer\+[0-9a-f]{8}$/);
      assert.doesNotMatch(describeEvent(entries[0] as AuditEntry), /signed by/);
      const stored = await log.trainingRecord(digest('c'));
      assert.ok(stored);
      requireRecordSignedBy(stored.data, trusted, 'the stored record');
      const report = await log.verify({ schema: true });
      assert.equal(report.entries, 4);
      // verify checks each signature under the key it names, and counts the records by signer.
      assert.deepEqual(report.trainingRecords, {
        signed: [
          { key: trainer.vkey, records: 1 },
          { key: other.vkey, records: 1 },
        ],
        unsigned: 1,
      });
    } finally {
      await log.close();
    }
  });

  it('audit verify finds a signed record changed after it was signed, with its leaf hash recomputed', async () => {
    const fx = sqliteFixture();
    try {
      const log = await AuditLog.open({ store: fx.spec, origin: 'bulwark.test/records' });
      log.signRecordsWith(trainer.signer);
      const { id } = await log.append({ type: 'model.trained', data: record });
      const e = await log.get(id);
      await log.close();
      // Someone who can write the database weakens the recorded attack and recomputes the leaf hash.
      const data = e.data as AuditEventData<'model.trained'>;
      const forged = canonicalJson({
        ...e,
        data: { ...data, adversarial: { attack: 'pgd', epsilon: 0.3, steps: 3 } },
      });
      await fx.exec('UPDATE entries SET body = ?, leaf = ? WHERE idx = 0', [forged, leafHash(forged)]);
      const reader = await AuditLog.open({ store: fx.spec });
      try {
        await assert.rejects(
          reader.verify(),
          code(
            'ERR_AUDIT_ENTRY_CORRUPT',
            /entry #0 was altered: its writer's signature \(recordedBy\) does not verify/,
          ),
        );
      } finally {
        await reader.close();
      }
    } finally {
      await fx.cleanup();
    }
  });

  it('the schema refuses a malformed recordedBy', async () => {
    const log = await AuditLog.open({
      store: { kind: 'sqlite', path: join(dir, 'bad.db'), create: true },
      origin: 'bulwark.test/records',
    });
    try {
      for (const recordedBy of [
        { key: 'not a key', signature: 'A'.repeat(86) + '==' },
        { key: trainer.vkey, signature: 'short' },
        { key: trainer.vkey, signature: 'A'.repeat(86) + '==', extra: 1 },
      ])
        await assert.rejects(
          log.append({ type: 'model.trained', data: { ...record, recordedBy } as never }),
          code('ERR_AUDIT_EVENT_INVALID'),
        );
    } finally {
      await log.close();
    }
  });
});
