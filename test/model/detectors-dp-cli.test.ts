/**
 * Detectors sealed into a DP fine-tune's package (`bulwark train --from PARENT.bwm --dp-epsilon ...
 * --detectors FILE`), through the built CLI: the new model's guarantee covers the batch and the parent's
 * training data, so a bundle fitted on either is refused (ERR_DP_UNACCOUNTED), as is one made for
 * another model (ERR_DETECTOR_STATE); all before the run, with no budget spent and nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBulwark, runBulwarkAsync, runBulwarkInProcess } from '../helpers/cli.js';
import {
  DP_SCHEMA,
  fromArgs,
  packageArgs,
  protectArgs,
  rows,
  setUpPackages,
  writeCsv,
} from '../integrity/helpers.js';
import { PASS_ENV, tempDir } from './helpers.js';

const t = tempDir('det-dp-cli');
const env = { [PASS_ENV]: process.env[PASS_ENV] as string };
const p = (f: string) => join(t.dir, f);
const ledger = p('ledger.sqlite');
const bw = (args: string[]) => runBulwark(args, { cwd: t.dir, env });
/** {@link bw} in this process: for the refusals raised before any work, and the budget read-backs. */
const bwHere = (args: string[]) => runBulwarkInProcess(args, { cwd: t.dir, env });

/** The args of the DP fine-tune of parent.bwm on `data` into `out` with the bundle `detectors`. */
function dpFrom(data: string, out: string, detectors: string): string[] {
  return [
    ...fromArgs(p('parent.bwm'), p(data), p('eval.csv')),
    ...packageArgs(t.dir),
    '--schema',
    p('schema.yaml'),
    '--dp-epsilon',
    '1',
    '--dp-delta',
    '1e-5',
    '--epochs',
    '2',
    '--batch-size',
    '60',
    '--lr',
    '0.03',
    '--solver',
    'sgd',
    '--seed',
    '3',
    '--seeded-noise',
    '11',
    '--max-flagged',
    '0.3',
    '--max-clean-drop',
    '0.2',
    '--max-robust-drop',
    '0.2',
    // This DP fine-tune (epsilon 1, seeded noise) moves class "yes"'s recall 0.86 -> 0.70 over 173 rows,
    // which the per-class check (52629de, default 0.1) refuses; the test is about the detectors sealed
    // into the package, so its limits are loosened like the accuracy ones above.
    '--max-class-drop',
    '0.3',
    '--ledger',
    ledger,
    '--out',
    p(out),
    '--detectors',
    p(detectors),
  ];
}

async function spent(): Promise<number> {
  const r = await bwHere(['--json', 'query', 'budget', 'status', 'tx', '--ledger', ledger]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { spent: { epsilon: number } }).spent.epsilon;
}

function fit(model: string, data: string, out: string): void {
  const r = bw(['model', 'fit-detectors', model, '--data', p(data), '--out', p(out), '--fpr', '0.05']);
  assert.equal(r.code, 0, r.stderr);
}

before(async () => {
  writeFileSync(p('schema.yaml'), DP_SCHEMA);
  writeCsv(p('base.csv'), rows(1500, 1));
  writeCsv(p('batch.csv'), rows(600, 5));
  writeCsv(p('held.csv'), rows(600, 6));
  writeCsv(p('eval.csv'), rows(400, 2));
  // Another model: without the channel column, so fewer features.
  writeFileSync(
    p('narrow.csv'),
    `x1,x2,x3,x4,hour,label\n${rows(300, 9)
      .map((r) => r.split(',').toSpliced(4, 1).join(','))
      .join('\n')}\n`,
  );
  await setUpPackages(
    (a) => runBulwarkAsync(a, { cwd: t.dir, env }),
    t.dir,
    p('audit.db'),
    'bulwark.test/det-dp',
    1,
  );
  const budget = bw([
    'query',
    'budget',
    'set',
    'tx',
    '--epsilon',
    '6',
    '--delta',
    '1e-4',
    '--ledger',
    ledger,
  ]);
  assert.equal(budget.code, 0, budget.stderr);
  const parent = bw([
    'train',
    '--data',
    p('base.csv'),
    '--label',
    'label',
    '--model',
    'mlp',
    '--hidden',
    '16',
    '--out',
    p('parent.onnx'),
    '--schema',
    p('schema.yaml'),
    '--dp-epsilon',
    '2',
    '--dp-delta',
    '1e-5',
    '--epochs',
    '5',
    '--batch-size',
    '100',
    '--lr',
    '0.5',
    '--solver',
    'sgd',
    '--seed',
    '1',
    '--seeded-noise',
    '3',
    '--ledger',
    ledger,
    '--budget',
    'tx',
    '--audit',
    p('audit.db'),
  ]);
  assert.equal(parent.code, 0, parent.stderr);
  // With the log its training was recorded in: the parent's DP guarantee is signed as backed by it.
  const prot = bw([
    ...protectArgs(t.dir, p('parent.onnx'), p('parent.bwm'), 'fraud-dp'),
    '--dataset',
    p('base.csv'),
    '--audit',
    p('audit.db'),
  ]);
  assert.equal(prot.code, 0, prot.stderr);
  const narrow = bw(['train', '--data', p('narrow.csv'), '--label', 'label', '--out', p('narrow.onnx')]);
  assert.equal(narrow.code, 0, narrow.stderr);
  fit(p('parent.bwm'), 'base.csv', 'det-base.json');
  fit(p('parent.bwm'), 'batch.csv', 'det-batch.json');
  fit(p('parent.bwm'), 'held.csv', 'det-held.json');
  fit(p('narrow.onnx'), 'narrow.csv', 'det-narrow.json');
});

after(() => t.cleanup());

describe('train --from PARENT.bwm --dp-epsilon --detectors', () => {
  it("refuses detectors fitted on the batch or on the parent's training data, or made for another model, before spending", async () => {
    const cases: [string, number, string, RegExp][] = [
      ['det-batch.json', 2, 'ERR_DP_UNACCOUNTED', /fitted on the model's private training data/],
      ['det-base.json', 2, 'ERR_DP_UNACCOUNTED', /fitted on the model's private training data/],
      [
        'det-narrow.json',
        3,
        'ERR_DETECTOR_STATE',
        /^--detectors .*det-narrow\.json: the detector bundle was made for 5 features, the model takes 9$/,
      ],
    ];
    for (const [bundle, exit, code, message] of cases) {
      const before = await spent();
      const r = await bwHere(dpFrom('batch.csv', 'refused.bwm', bundle));
      assert.equal(r.code, exit, `${bundle}: ${r.stderr}`);
      const line = r.stderr.split('\n').findLast((l) => l.startsWith('{"error"'));
      const err = JSON.parse(line ?? '{}').error as { code: string; message: string };
      assert.equal(err.code, code);
      assert.match(err.message, message);
      assert.doesNotMatch(r.stderr, /at .*\.[jt]s:\d+/, 'no stack trace');
      assert.equal(await spent(), before, `${bundle}: no budget spent`);
      assert.equal(existsSync(p('refused.bwm')), false);
    }
  });

  it('seals detectors fitted on held-out rows', async () => {
    const before = await spent();
    const r = bw(dpFrom('batch.csv', 'next.bwm', 'det-held.json'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await spent()) > before);
    const i = bw(['--json', 'model', 'inspect', p('next.bwm')]);
    assert.equal(i.code, 0, i.stderr);
    const m = JSON.parse(i.stdout).manifest;
    assert.deepEqual(m.detectors.kinds, ['mahalanobis', 'stateful', 'prada']);
    assert.ok(m.lineage.privacy.epsilon > 0);
  });
});
