import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import type { DemoStage, DemoState, StageContext, StageResult } from '../../src/demo/index.js';
import { auditOpenStage, recordStage } from '../../src/demo/stages/audit.js';
import { baselineStage } from '../../src/demo/stages/baseline.js';
import { gatewayStage } from '../../src/demo/stages/gateway.js';
import { packageStage } from '../../src/demo/stages/package.js';
import { protectStage } from '../../src/demo/stages/protect.js';
import { schemaStage } from '../../src/demo/stages/schema.js';
import { synthStage } from '../../src/demo/stages/synth.js';

/**
 * The gateway stage without the privacy stage (test/demo/demo.test.ts runs the whole demo, with the DP
 * model): the package stage then signs the baseline as the case-study package, and the gateway must
 * serve exactly that package (state.served), run the detectors sealed in it (fitted by the package
 * stage on held-out traffic in the baseline's feature space, no detector file on disk), and write its predictions to the demo's own audit log, where one lineage walk reaches the training run.
 */
describe('demo stage: the gateway serves the package stage’s package and logs to the demo log', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'bulwark-gateway-demo-'));
  after(() => rmSync(outDir, { recursive: true, force: true }));

  it('serves state.served (the baseline here), answers legitimate traffic, refuses attacks, one log', async () => {
    const state: DemoState = {};
    const rng = new SeededRng(5);
    const results = new Map<string, StageResult>();
    const run = async (s: DemoStage) => {
      const r = await s.run({
        options: { outDir, quick: true, seed: 5 },
        state,
        rng: rng.split(),
        progress: () => {},
      } satisfies StageContext);
      await recordStage(state, s, r, 0);
      results.set(s.id, r);
      return r;
    };
    try {
      for (const s of [auditOpenStage, synthStage, schemaStage, protectStage, baselineStage, packageStage])
        await run(s);
      const pkg = results.get('package')?.summary ?? {};
      assert.equal(pkg['model'], 'fraud-baseline', 'no DP model: the baseline is the packaged model');
      assert.equal(state.served?.packagePath, join(outDir, 'fraud-baseline.bwm'));
      assert.equal(pkg['detectors'], 'mahalanobis,stateful,prada', 'the package carries the detectors');

      const g = (await run(gatewayStage)).summary ?? {};
      assert.equal(g['servedCaseStudyPackage'], true);
      assert.equal(g['packageDigest'], pkg['packageDigest']);
      assert.equal(g['modelDigest'], pkg['modelDigest']);
      assert.equal(g['legitimateAnswered'], g['legitimateSent'], 'legitimate traffic answered');
      assert.equal(g['attacksRefused'], g['attacks'], 'every attack refused');
      assert.equal(g['proofVerified'], true);
      assert.equal(g['auditLog'], 'audit/audit.db');
      assert.ok(!existsSync(join(outDir, 'gateway', 'gateway-audit.db')), 'no second log');
      for (const n of ['mahalanobis', 'stateful', 'prada'])
        assert.ok(!existsSync(join(outDir, 'gateway', `${n}.json`)), `no ${n} detector file on disk`);

      // The demo runner's log (still open) sees what the gateway appended as a second writer.
      const log = state.audit;
      assert.ok(log);
      const { size } = await log.head();
      const entries = await log.tail(size);
      assert.deepEqual(
        entries.map((e) => e.index),
        entries.map((_, i) => i),
        'one gap-free sequence',
      );
      const prediction = entries.find((e) => e.type === 'prediction');
      assert.ok(prediction, 'the gateway wrote its predictions to the demo log');
      assert.equal(prediction.data['packageDigest'], pkg['packageDigest']);
      const walk = await log.lineage(prediction.id);
      const types: string[] = walk.nodes.map((n) => n.entry.type);
      for (const t of ['prediction', 'model.packaged', 'model.trained', 'dataset.protected', 'key.created'])
        assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
      const trained = walk.nodes.find((n) => n.entry.type === 'model.trained');
      assert.equal(
        (trained?.entry.data as { modelDigest?: string } | undefined)?.modelDigest,
        pkg['modelDigest'],
      );
      assert.deepEqual(walk.unresolved, []);
      // Two datasets: the training data, and the held-out traffic the package's detectors were fitted on.
      assert.equal(types.filter((t) => t === 'dataset.created').length, 2, types.join(', '));
      // Entries appended after the gateway closed its connection still extend the same tree.
      await log.append({
        type: 'pipeline.stage',
        data: { pipeline: 'test', stage: 'after', status: 'ok', seconds: 0, summary: {} },
      });
      const cp = await log.checkpoint();
      assert.equal(cp.size, size + 1);
      const pub = readFileSync(join(outDir, 'audit', 'log.key.pub'), 'utf8');
      const v = await log.verify({ publicKey: pub.trim() });
      assert.equal(v.size, size + 1);
    } finally {
      await state.audit?.close();
    }
  });
});
