import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { parseDeployConfig, writeKustomizeBase } from '../../src/deploy/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { BASE } from './helpers.js';

/** Red-team findings on `bulwark deploy k8s` (docs/deploy.md). */

function refused(text: string, re: RegExp, secret?: string): void {
  assert.throws(
    () => parseDeployConfig(text, 'b.yaml'),
    (e: unknown) =>
      isBulwarkError(e, 'ERR_CONFIG_INVALID') &&
      re.test(e.message) &&
      (secret === undefined || !e.message.includes(secret)),
    String(re),
  );
}

describe('deploy k8s: red-team findings', () => {
  it('a password in a store or Redis URL query (pg and ioredis read ?password=) is refused, not copied into the ConfigMap', () => {
    refused(
      BASE.replace('5432/audit"', '5432/audit?sslmode=require&password=hunter2"'),
      /audit\.store: the URL carries a credential in its query \(password\)/,
      'hunter2',
    );
    refused(
      BASE.replace('6380/0"', '6380/0?password=hunter2"'),
      /limits\.redis\.url: the URL carries a credential in its query/,
      'hunter2',
    );
    refused(
      BASE.replace('5432/audit"', '5432/audit?sslpassword=hunter2"'),
      /audit\.store: .*\(sslpassword\)/,
      'hunter2',
    );
    // Other query parameters are settings.
    parseDeployConfig(BASE.replace('5432/audit"', '5432/audit?sslmode=verify-full"'), 'b.yaml');
  });

  it('default and kube-* namespaces are refused: the base would deny all their traffic and enforce restricted', () => {
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'default'])
      refused(
        BASE.replace('namespace: bulwark', `namespace: ${ns}`),
        /deploy\.namespace: must be the gateway's own/,
      );
  });

  it('a port below 1024 is a configuration error named by its key (the non-root container cannot bind it)', () => {
    refused(BASE.replace('port: 8443', 'port: 443'), /server\.port: 443 is below 1024/);
    refused(BASE.replace('port: 9464', 'port: 80'), /metrics\.port: 80 is below 1024/);
  });

  it('a base that fails its own check is refused before anything is written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-k8s-rt-'));
    const inputs = { ...parseDeployConfig(BASE, 'b.yaml'), serverPort: 443 };
    await assert.rejects(
      writeKustomizeBase(dir, inputs, BASE),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_DEPLOY_MANIFEST_INVALID') && /BW-PRIVILEGED-PORT/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('--out --force never writes a generated file over the --config it reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-k8s-rt-'));
    for (const name of ['deployment.yaml', 'kustomization.yaml']) {
      const out = join(dir, name.replace('.yaml', ''));
      mkdirSync(out);
      const config = join(out, name);
      writeFileSync(config, BASE);
      const r = await runBulwarkInProcess(['deploy', 'k8s', '--config', config, '--out', out, '--force']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`ERR_USAGE: .*the generated ${name} would replace an input`));
      assert.equal(readFileSync(config, 'utf8'), BASE);
      assert.deepEqual(readdirSync(out), [name]);
    }
    // bulwark.yaml in the folder it generates (regenerated in place) is still allowed.
    const out = join(dir, 'inplace');
    mkdirSync(out);
    writeFileSync(join(out, 'bulwark.yaml'), BASE);
    const r = await runBulwarkInProcess([
      'deploy',
      'k8s',
      '--config',
      join(out, 'bulwark.yaml'),
      '--out',
      out,
      '--force',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(out, 'bulwark.yaml'), 'utf8'), BASE);
    assert.ok(existsSync(join(out, 'deployment.yaml')));
  });
});
