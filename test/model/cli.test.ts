import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBulwark } from '../helpers/cli.js';
import { FIXTURE_ONNX, PASS_ENV, tempDir } from './helpers.js';

// The CLI as a user runs it (bin/bulwark.js -> dist/, built by `npm test` first): each step is a
// separate process, so the package is verified after a round trip through another process.
const t = tempDir('model-cli');
const env = { [PASS_ENV]: process.env[PASS_ENV]! };
const kr = join(t.dir, 'kr.json');
const key = join(t.dir, 'signer.key');
const pkg = join(t.dir, 'fraud.bwm');
const trust = join(t.dir, 'trust.yaml');
const db = join(t.dir, 'audit.db');
const logKey = join(t.dir, 'log.key');

function bw(args: string[]) {
  return runBulwark(args, { cwd: t.dir, env });
}

before(() => {
  const init = bw(['keys', 'init', '--keyring', kr, '--passphrase-env', PASS_ENV, '--scrypt-log-n', '10']);
  assert.equal(init.code, 0, init.stderr);
  const lk = bw(['audit', 'keygen', '--name', 'bulwark.test/model', '--out', logKey]);
  assert.equal(lk.code, 0, lk.stderr);
  const cp = bw(['audit', 'checkpoint', '--store', db, '--signing-key', logKey]);
  assert.equal(cp.code, 0, cp.stderr);
  const kg = bw(['--json', 'model', 'keygen', '--out', key]);
  assert.equal(kg.code, 0, kg.stderr);
  assert.ok(!kg.stdout.includes('PRIVATE KEY'), 'the private key is never printed');
  assert.equal(statSync(key).mode & 0o777, 0o600);
  writeFileSync(
    trust,
    `version: 1\nsigners:\n  - name: ml-platform\n    publicKeyFile: signer.key.pub\n    keyId: ${JSON.parse(kg.stdout).keyId}\n    models: ["fraud-*"]\n`,
  );
});

after(() => t.cleanup());

describe('bulwark model (second process)', () => {
  it('protect, then verify and load in another process', () => {
    const p = bw([
      '--json',
      'model',
      'protect',
      FIXTURE_ONNX,
      '--keyring',
      kr,
      '--passphrase-env',
      PASS_ENV,
      '--sign-key',
      key,
      '--out',
      pkg,
      '--name',
      'fraud-mlp',
      '--model-version',
      '1.2.0',
      '--dataset',
      FIXTURE_ONNX,
      '--audit-event',
      'evt-1',
      '--audit',
      db,
    ]);
    assert.equal(p.code, 0, p.stderr);
    const made = JSON.parse(p.stdout);
    // The packaging is in the audit log (opened before the operation: a missing log refuses it).
    const tail = bw(['--json', 'audit', 'tail', '--store', db]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.ok(tail.stdout.includes(made.auditEvent) && tail.stdout.includes('model.packaged'), tail.stdout);
    assert.ok(made.overhead > 0);
    const v = bw([
      '--json',
      'model',
      'verify',
      pkg,
      '--trust',
      trust,
      '--keyring',
      kr,
      '--passphrase-env',
      PASS_ENV,
      '--load',
    ]);
    assert.equal(v.code, 0, v.stderr);
    const out = JSON.parse(v.stdout);
    assert.equal(out.verified, true);
    assert.equal(out.decrypted, true);
    assert.equal(out.loaded, true);
    assert.equal(out.signer.name, 'ml-platform');
    assert.equal(out.packageDigest, made.packageDigest);
    assert.equal(out.manifest.lineage.trainingRun.eventId, 'evt-1');
    const ins = bw(['model', 'inspect', pkg]);
    assert.equal(ins.code, 0, ins.stderr);
    assert.match(ins.stdout, /model fraud-mlp 1\.2\.0/);
  });

  it('refuses an altered package with exit 5 and one line naming the code', () => {
    const b = Buffer.from(readFileSync(pkg));
    b[b.length - 400]! ^= 1;
    const bad = join(t.dir, 'bad.bwm');
    writeFileSync(bad, b);
    const v = bw(['model', 'verify', bad, '--trust', trust]);
    assert.equal(v.code, 5);
    assert.match(v.stderr, /^bulwark: ERR_(SIGNATURE_INVALID|DIGEST_MISMATCH): /);
    assert.equal(v.stderr.trim().split('\n').length, 1);
  });

  it('model scan refuses a pickle with exit 5', () => {
    const f = join(t.dir, 'm.pkl');
    // protocol 2: PROTO 2, GLOBAL 'os system', SHORT_BINUNICODE 'true', TUPLE1, REDUCE, STOP
    writeFileSync(
      f,
      Buffer.concat([
        Buffer.from([0x80, 2]),
        Buffer.from('cos\nsystem\n'),
        Buffer.from([0x8c, 4]),
        Buffer.from('true'),
        Buffer.from([0x85, 0x52, 0x2e]),
      ]),
    );
    const s = bw(['model', 'scan', f]);
    assert.equal(s.code, 5);
    assert.match(s.stdout, /critical\s+GLOBAL\s+os\.system/);
    assert.match(s.stderr, /ERR_MODEL_UNSAFE/);
    const ok = bw(['model', 'scan', FIXTURE_ONNX]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});
