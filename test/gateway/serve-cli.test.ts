/**
 * `bulwark serve` as a user runs it: a bad configuration is one line with the key path and exit 4;
 * `--check` loads and checks everything, writes nothing and exits; a running server answers, reloads on SIGHUP and drains on
 * SIGTERM (exit 0). Uses the built CLI (bin/bulwark.js -> dist/).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { GatewayClient } from '../../src/gateway/client.js';
import { ROOT, runBulwark } from '../helpers/cli.js';
import { type Fixture, fixture } from './gateway-fixtures.js';

describe('bulwark serve', () => {
  let f: Fixture;
  let good: string;

  before(async () => {
    f = await fixture();
    const c = f.config({ telemetry: { logLevel: 'info', traces: { enabled: false, serviceName: 'x' } } });
    good = join(f.dir, `serve-${process.pid}.yaml`);
    // JSON is YAML: the parsed fixture configuration written back as a file.
    writeFileSync(good, JSON.stringify(c, null, 2));
  });

  it('refuses a bad configuration with one line naming the key, exit 4, no stack trace', () => {
    const bad = join(f.dir, 'bad.yaml');
    writeFileSync(bad, 'server:\n  port: "8443"\n  tls: {cert: a.pem}\nmodels: []\n');
    const r = runBulwark(['serve', '--config', bad]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^bulwark: ERR_CONFIG_INVALID: .*server\.port: .*server\.tls\.key/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
  });

  it('--check loads the model and exits 0', () => {
    const r = runBulwark(['--json', 'serve', '--config', good, '--check']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      models: { name: string; origin: string; detectors: Record<string, string> }[];
    };
    assert.equal(out.ok, true);
    assert.deepEqual(
      out.models.map((m) => [m.name, m.origin]),
      [['fraud', 'insecure-onnx']],
    );
    assert.deepEqual(out.models[0]?.detectors, { mahalanobis: 'file', stateful: 'file', prada: 'file' });
    assert.equal(
      (out as unknown as { checks: { component: string; status: string }[] }).checks.find(
        (c) => c.component === 'audit',
      )?.status,
      'create',
    );
    const human = runBulwark(['serve', '--config', good, '--check']);
    assert.match(
      human.stdout,
      /fraud@1 \(insecure-onnx; detectors: mahalanobis from file, stateful from file, prada from file\)/,
    );
    assert.match(human.stdout, /^ {2}audit +create +no log yet: serve creates it/m);
    // A dry run: the audit log the configuration names is not created.
    assert.equal(existsSync(JSON.parse(readFileSync(good, 'utf8')).audit.store), false);
  });

  it('serves, reloads on SIGHUP and drains on SIGTERM with exit 0', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'bulwark.js'), 'serve', '--config', good], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    const waitFor = (msg: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no "${msg}" log line; got ${JSON.stringify(lines.map((l) => l['msg']))}`)),
          30_000,
        );
        const check = () => {
          const l = lines.find((x) => x['msg'] === msg);
          if (l) {
            clearTimeout(t);
            resolve(l);
          } else setTimeout(check, 50);
        };
        check();
      });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i !== -1) {
        try {
          lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        } catch {
          /* not a log line */
        }
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const listening = await waitFor('gateway listening');
    const warned = lines.find((l) => String(l['msg']).startsWith('INSECURE: serving a plain ONNX file'));
    assert.ok(warned, 'the insecure model source is logged loudly');
    const c = new GatewayClient({
      url: String(listening['url']),
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token(),
    });
    const out = await c.inferRows('fraud', [f.rows[3] as never]);
    assert.equal(out.model_name, 'fraud');
    c.close();
    child.kill('SIGHUP');
    await waitFor('TLS certificates reloaded');
    await waitFor('policies reloaded');
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(lines.some((l) => l['msg'] === 'gateway stopped'));
    // No secret or identity in the logs.
    const text = JSON.stringify(lines);
    assert.doesNotMatch(text, /Bearer|eyJ[A-Za-z0-9_-]{10,}|client-acme/);
  });
});
