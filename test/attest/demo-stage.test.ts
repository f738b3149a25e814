import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SeededRng, writeFileAtomic } from '../../src/core/index.js';
import { readDataset, writeTransactionsCsv } from '../../src/data/index.js';
import type { DemoState, StageContext } from '../../src/demo/index.js';
import { attestStage } from '../../src/demo/stages/attest.js';
import { trainTabular } from '../../src/train/index.js';
import { noSamples } from './fixtures.js';

describe('demo attest stage', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'bulwark-attest-demo-'));
  after(() => rmSync(outDir, { recursive: true, force: true }));

  it('runs a software-mode attested session on the baseline model and says there is no hardware guarantee', async () => {
    const data = join(outDir, 'tx.csv');
    await writeTransactionsCsv(data, { rows: 1500, fraudRate: 0.05, seed: 2 });
    const ds = await readDataset(data);
    const result = await trainTabular(ds, {
      label: 'is_fraud',
      model: 'mlp',
      hidden: [8],
      epochs: 1,
      batchSize: 256,
      seed: 1,
      drop: ['transaction_id', 'timestamp', 'merchant_id', 'merchant_location'].filter((c) => ds.has(c)),
    });
    const path = join(outDir, 'baseline.onnx');
    await writeFileAtomic(path, result.onnx);
    const state: DemoState = { baseline: { path, result } };
    const ctx: StageContext = {
      options: { outDir, quick: true, seed: 1 },
      state,
      rng: new SeededRng(1),
      progress: () => {},
    };
    const r = await attestStage.run(ctx);
    const s = r.summary ?? {};
    assert.equal(s['format'], 'software');
    assert.equal(s['hardware'], false);
    assert.equal(s['productionPolicy'], 'refused: ERR_ATTEST_HARDWARE_REQUIRED');
    assert.ok((s['rows'] as number) > 0);
    assert.ok((s['maxProbabilityDiff'] as number) < 1e-5, String(s['maxProbabilityDiff']));
    assert.equal(s['nitroSample'], noSamples ? 'absent' : 'verified');
    const text = r.blocks
      .filter((b) => b.kind === 'text')
      .map((b) => (b as { text: string }).text)
      .join(' ');
    assert.match(text, /SOFTWARE MODE GIVES NO HARDWARE GUARANTEE/);
  });
});
