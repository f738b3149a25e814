import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseVerifierKey, verifyCheckpoint, verifyInclusionBundle } from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';
import type { DemoState, StageContext } from '../../src/demo/index.js';
import { auditOpenStage, auditStage, recordStage } from '../../src/demo/stages/audit.js';

const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('demo audit stages', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'bulwark-audit-demo-'));
  after(() => rmSync(outDir, { recursive: true, force: true }));

  it('record every stage and the events stages return; the final stage verifies, proves and traces', async () => {
    const state: DemoState = {};
    const ctx: StageContext = {
      options: { outDir, quick: true, seed: 1 },
      state,
      rng: new SeededRng(1),
      progress: () => {},
    };
    const open = await auditOpenStage.run(ctx);
    assert.ok(state.audit, 'the first stage opens the log');
    await recordStage(state, auditOpenStage, open, 0.1);
    // A stage that reports what it produced, as the training and packaging stages do.
    await recordStage(
      state,
      { id: 'train' },
      {
        blocks: [],
        summary: { auc: 0.91, loss: Number.NaN, note: 'x'.repeat(500) },
        events: [
          {
            type: 'dataset.created',
            data: { datasetDigest: digest('raw'), source: 'test', rows: 5, columns: 2 },
          },
          {
            type: 'model.trained',
            data: {
              modelDigest: digest('m'),
              datasetDigest: digest('raw'),
              algorithm: 'mlp',
              hyperparameters: { epochs: 2 },
            },
          },
          {
            type: 'prediction',
            data: {
              requestId: 'r',
              caller: 'demo',
              modelDigest: digest('m'),
              inputDigest: digest('x'),
              decision: 'fraud',
              detections: [],
              latencyMs: 1,
            },
          },
        ],
      },
      1.5,
    );
    const r = await auditStage.run(ctx);
    assert.equal(state.audit, undefined, 'the final stage closes the log');
    assert.deepEqual(r.summary, {
      entries: 6,
      root: r.summary?.['root'],
      verified: true,
      lineageLength: 3,
      lineageUnresolved: 0,
      tamperedCopy: 'ERR_AUDIT_ENTRY_CORRUPT',
    });
    const vkey = readFileSync(join(outDir, 'audit', 'log.key.pub'), 'utf8').trim();
    const cp = verifyCheckpoint(
      readFileSync(join(outDir, 'audit', 'checkpoint.txt'), 'utf8'),
      parseVerifierKey(vkey),
    );
    assert.equal(cp.size, 6);
    const proof = JSON.parse(readFileSync(join(outDir, 'audit', 'proof.json'), 'utf8'));
    assert.equal(verifyInclusionBundle(proof, vkey).entry.type, 'prediction');
    const lineage = r.blocks.find((b) => b.kind === 'table' && b.caption?.startsWith('Lineage'));
    assert.ok(lineage && lineage.kind === 'table');
    assert.deepEqual(
      lineage.rows.map((row) => row[2]),
      ['prediction', 'model.trained', 'dataset.created'],
    );
  });
});
