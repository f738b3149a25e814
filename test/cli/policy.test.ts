import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runBulwark } from '../helpers/cli.js';

const POL = 'examples/gateway/policies.cedar';
const SCHEMA = 'examples/gateway/bulwark.cedarschema';
const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-policy-'));
const acme = ['--model', 'fraud', '--model-tenant', 'acme', '--tenant', 'acme', '--scopes', 'predict'];

describe('bulwark policy', () => {
  it('check validates the example policies against the schema (exit 0, ids, compiled engine)', () => {
    const r = runBulwark(['--json', 'policy', 'check', POL, '--schema', SCHEMA]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.policies.length, 6);
    assert.equal(out.validated, true);
    assert.equal(out.engine, 'compiled');
  });

  it('check refuses a policy that does not validate: exit 4, file and policy named, one line', () => {
    const f = join(dir, 'typo.cedar');
    writeFileSync(
      f,
      '@id("typo") permit (principal, action, resource) when { principal.tennant == "acme" };',
    );
    const r = runBulwark(['policy', 'check', POL, f, '--schema', SCHEMA]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^bulwark: ERR_POLICY_INVALID: .*typo\.cedar.*typo/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('eval: allowed exit 0; a forbid exit 5 naming it; a context value of the wrong type exit 2', () => {
    const ok = runBulwark([
      'policy',
      'eval',
      POL,
      '--schema',
      SCHEMA,
      '--action',
      'predict',
      ...acme,
      '--context',
      'riskScore=0.5',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /permitted by tenant-own-models/);
    const risky = runBulwark([
      'policy',
      'eval',
      POL,
      '--schema',
      SCHEMA,
      '--action',
      'predict',
      ...acme,
      '--context',
      'riskScore=0.95',
    ]);
    assert.equal(risky.code, 5);
    assert.match(risky.stderr, /ERR_POLICY_DENIED: predict forbidden by deny-high-risk/);
    const other = runBulwark([
      'policy',
      'eval',
      POL,
      '--schema',
      SCHEMA,
      '--action',
      'predict',
      '--model',
      'fraud',
      '--model-tenant',
      'globex',
      '--tenant',
      'acme',
      '--scopes',
      'predict',
    ]);
    assert.equal(other.code, 5);
    assert.match(other.stderr, /not permitted by any policy/);
    const bad = runBulwark([
      'policy',
      'eval',
      POL,
      '--schema',
      SCHEMA,
      '--action',
      'predict',
      ...acme,
      '--context',
      'queryCount=1.5',
    ]);
    // A context value of the wrong type is the user's input: a usage error naming --context.
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^bulwark: ERR_USAGE: --context: context queryCount must be an integer$/m);
  });

  it('eval with a principal file and a bad action', () => {
    const p = join(dir, 'admin.json');
    writeFileSync(
      p,
      JSON.stringify({ id: 'spiffe://bulwark.example/ns/ops/sa/admin', roles: ['admin'], scopes: [] }),
    );
    const ok = runBulwark([
      'policy',
      'eval',
      POL,
      '--schema',
      SCHEMA,
      '--action',
      'admin',
      '--model',
      'fraud',
      '--principal',
      p,
      '--context',
      'clientAddress=10.1.2.3',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const usage = runBulwark(['policy', 'eval', POL, '--action', 'delete', '--model', 'fraud']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /ERR_USAGE/);
  });
});
