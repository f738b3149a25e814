import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import type { DemoState, StageContext } from '../../src/demo/index.js';
import { baselineStage } from '../../src/demo/stages/baseline.js';
import { robustStage } from '../../src/demo/stages/robust.js';
import { schemaStage } from '../../src/demo/stages/schema.js';
import { synthStage } from '../../src/demo/stages/synth.js';

/**
 * The demo's robustness stage on a quick run (data, schema and baseline stages before it; the protect
 * and audit stages are exercised by test/demo): adversarial fine-tuning must cut the PGD attack's
 * success on fraud rows, and the report says what it costs.
 */
describe('demo stage: adversarial robustness of the fraud model', () => {
  it('attacks the baseline and the adversarially trained model; the robust one resists PGD better', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'bulwark-robust-demo-'));
    const state: DemoState = {};
    const rng = new SeededRng(3);
    const ctx = (): StageContext => ({
      options: { outDir, quick: true, seed: 3 },
      state,
      rng: rng.split(),
      progress: () => {},
    });
    for (const s of [synthStage, schemaStage, baselineStage]) await s.run(ctx());
    const r = await robustStage.run(ctx());
    const s = r.summary ?? {};
    assert.ok(Number(s['rowsAttacked']) > 20, 'fraud rows attacked');
    const base = Number(s['baselinePgdSuccess']);
    const robust = Number(s['robustPgdSuccess']);
    assert.ok(base > 0.2, `PGD succeeds against the baseline (${base})`);
    assert.ok(robust < base - 0.1, `adversarial training cuts PGD success: ${robust} vs ${base}`);
    assert.ok(Number(s['robustRecallAt1PctFpr']) > 0.3, 'the robust model still catches fraud');
    assert.match(String(s['robustModelDigest']), /^sha256:[0-9a-f]{64}$/);
    const kinds = new Set(r.blocks.map((b) => b.kind));
    for (const k of ['text', 'table', 'facts', 'lines', 'bars']) assert.ok(kinds.has(k as never), k);
    assert.equal(r.events?.[0]?.type, 'model.trained');
  });
});
