import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { loadGate } from '../../src/integrity/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';

/**
 * A missing trust policy, plan file or gate file was reported as "config not readable: X": the user
 * had to guess which of the command's files "config" meant. Each now names its kind.
 */
describe('a missing configuration file is named by its kind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-config-names-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('model verify --trust: "trust policy not readable"', async () => {
    const r = await runBulwarkInProcess(['model', 'verify', 'model.bwm', '--trust', 'trust.yaml'], {
      cwd: dir,
    });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(
      r.stderr,
      'bulwark: ERR_FILE_NOT_FOUND: trust policy not readable: no such file or folder: trust.yaml\n',
    );
  });

  it('plan --plan: "plan file not readable"', async () => {
    const r = await runBulwarkInProcess(['plan', '--plan', 'plan.yaml', '--budget', '60'], { cwd: dir });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(
      r.stderr,
      'bulwark: ERR_FILE_NOT_FOUND: plan file not readable: no such file or folder: plan.yaml\n',
    );
  });

  it('evaluate --gate: "gate file not readable"', async () => {
    await assert.rejects(
      loadGate(join(dir, 'gate.yaml')),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_FILE_NOT_FOUND') && e.message.startsWith('gate file not readable: '),
    );
  });
});
