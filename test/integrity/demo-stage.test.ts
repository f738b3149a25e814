import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import type { DemoState, StageContext } from '../../src/demo/index.js';
import { baselineStage } from '../../src/demo/stages/baseline.js';
import { poisonStage } from '../../src/demo/stages/poison.js';
import { schemaStage } from '../../src/demo/stages/schema.js';
import { synthStage } from '../../src/demo/stages/synth.js';

/**
 * The demo's poisoning stage on a quick run (without the audit log, whose provenance refusal is tested
 * in poison.test.ts): the planted backdoor works on the model trained on the poisoned batch, spectral
 * signatures find at least half of the planted rows (0.62 on this seed), the retrained model no longer obeys the trigger, and the gate
 * refuses the poisoned model and passes the sanitised one.
 */
describe('demo stage: training-data poisoning', () => {
  it('plants a backdoor in the second batch, catches it, and the gate refuses the poisoned model', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'bulwark-poison-demo-'));
    try {
      const state: DemoState = {};
      const rng = new SeededRng(5);
      const ctx = (): StageContext => ({
        options: { outDir, quick: true, seed: 5 },
        state,
        rng: rng.split(),
        progress: () => {},
      });
      for (const s of [synthStage, schemaStage, baselineStage]) await s.run(ctx());
      const r = await poisonStage.run(ctx());
      const s = r.summary ?? {};
      assert.ok(
        Number(s['backdoorSuccessPoisoned']) > 0.5,
        `backdoor works: ${s['backdoorSuccessPoisoned']}`,
      );
      assert.ok(Number(s['detectionRecall']) >= 0.5, `recall ${s['detectionRecall']}`);
      assert.ok(
        Number(s['backdoorSuccessSanitized']) < 0.1,
        `after sanitising: ${s['backdoorSuccessSanitized']}`,
      );
      assert.equal(s['gatePoisoned'], false);
      assert.equal(s['gateSanitized'], true);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  });
});
