import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog, parseSignerKey } from '../../src/audit/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';

/**
 * `audit prove --from may.note` without --signing-key proves consistency up to the latest STORED
 * checkpoint. Entries appended since were left out without a word, so an auditor took a proof of an
 * old tree for one of today's. Now a note says how many entries the proof does not cover and how to
 * include them; with --signing-key the proof covers them and there is no note.
 */
describe('audit prove --from when the log has grown beyond its latest checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-prove-stale-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'log.key');
  const db = join(dir, 'audit.db');
  const note = join(dir, 'may.note');

  it('notes the uncovered entries; --signing-key covers them', async () => {
    const kg = await runBulwarkInProcess(['audit', 'keygen', '--name', 'bulwark.test/stale', '--out', key]);
    assert.equal(kg.code, 0, kg.stderr);
    const cp = await runBulwarkInProcess([
      'audit',
      '--store',
      db,
      'checkpoint',
      '--signing-key',
      key,
      '--out',
      note,
    ]);
    assert.equal(cp.code, 0, cp.stderr);
    const signer = parseSignerKey(readFileSync(key, 'utf8'));
    const log = await AuditLog.open({ store: { kind: 'sqlite', path: db }, origin: signer.name, signer });
    for (const d of ['a', 'b'])
      await log.append({
        type: 'dataset.created',
        data: {
          datasetDigest: `sha256:${createHash('sha256').update(d).digest('hex')}`,
          source: 'synthetic',
          rows: 1,
          columns: 1,
        },
      });
    await log.close();

    /** `audit prove --from` the kept note into `out`, with `extra`. */
    const prove = (out: string, extra: string[] = []) =>
      runBulwarkInProcess([
        'audit',
        '--store',
        db,
        'prove',
        '--from',
        note,
        ...extra,
        '--out',
        join(dir, out),
      ]);
    const stale = await prove('stale.json');
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stderr, /consistency proof from tree size 0 to 0 \(a stored checkpoint\)/);
    assert.match(
      stale.stderr,
      /note: the log holds 2 entries beyond tree size 0 that this proof does not cover; add --signing-key/,
    );

    const fresh = await prove('fresh.json', ['--signing-key', key]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stderr, /consistency proof from tree size 0 to 2 \(a checkpoint signed now\)/);
    assert.doesNotMatch(fresh.stderr, /does not cover/);
  });
});
