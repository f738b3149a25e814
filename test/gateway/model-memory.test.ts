/**
 * The gateway and the memory a served model's graph asks for (src/model/onnx-memory.ts): a model whose
 * tensors may pass `models[].maxMemoryBytes` at `maxRows` rows, or whose sizes cannot be bounded, is
 * refused at load, end to end as an operator meets it. `bulwark serve --check` and a real `bulwark
 * serve` fail closed with one line (ERR_MODEL_UNSAFE, exit 5) naming the entry, the node, its operator
 * and the key that raises the limit, before any port is bound; a signed package made with a raised
 * limit is refused by a gateway with a lower one; a SIGHUP reload (`Gateway.reload`) does not reload
 * models, so a refused model put at the path of a served one does not replace it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { GatewayClient } from '../../src/gateway/client.js';
import type { GatewayConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/server.js';
import { Keyring } from '../../src/keys/index.js';
import { DataType, decodeModel, encodeModel } from '../../src/ml/onnx/proto.js';
import { generateSigningKey, protectModel, publicKeyPem } from '../../src/model/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { type Fixture, fixture, SCHEMA, startGateway } from './gateway-fixtures.js';

const PASS_ENV = 'BULWARK_TEST_GATEWAY_MEMORY_PASS';
process.env[PASS_ENV] = 'gateway memory test passphrase';

/** No stack frame of any kind in what the operator sees. */
const STACK = /\bat [\w.<>]+ \(|\bat .*\.[cm]?[jt]s:\d+|node:internal/;

/**
 * The fixture's model (Bulwark's metadata and all) with one more node: a ConstantOfShape of `n` floats
 * whose shape is an initializer, the 222-byte attack grafted into a model the gateway otherwise serves.
 */
function withFill(onnx: Uint8Array, n: number): Uint8Array {
  const m = decodeModel(onnx);
  const g = m.graph as NonNullable<typeof m.graph>;
  g.initializer.push({ name: 'fill_shape', dims: [1], dataType: DataType.INT64, int64Data: [n] } as never);
  g.node.push({
    input: ['fill_shape'],
    output: ['filled'],
    name: 'evil_fill',
    opType: 'ConstantOfShape',
    domain: '',
    attribute: [],
  } as never);
  return encodeModel(m);
}

/** The fixture's model with a Range whose limit is the largest input value: no bound before the run. */
function withRangeOverInput(onnx: Uint8Array): Uint8Array {
  const m = decodeModel(onnx);
  const g = m.graph as NonNullable<typeof m.graph>;
  const input = (g.input[0] as { name: string }).name;
  g.initializer.push(
    { name: 'r0', dims: [], dataType: DataType.FLOAT, floatData: [0] } as never,
    { name: 'r1', dims: [], dataType: DataType.FLOAT, floatData: [1] } as never,
  );
  g.node.push(
    {
      input: [input],
      output: ['top'],
      name: 'top',
      opType: 'ReduceMax',
      domain: '',
      attribute: [{ name: 'keepdims', type: 2, i: 0 }],
    } as never,
    {
      input: ['r0', 'top', 'r1'],
      output: ['span'],
      name: 'evil_range',
      opType: 'Range',
      domain: '',
    } as never,
  );
  return encodeModel(m);
}

describe('gateway: a model whose memory is not bounded is refused at load', () => {
  let f: Fixture;
  let huge: string;
  let unbounded: string;
  let medium: string;
  let pkg: string;
  const opened: Gateway[] = [];

  before(async () => {
    f = await fixture();
    const onnx = readFileSync(join(f.dir, 'fraud.onnx'));
    huge = join(f.dir, 'mem-huge.onnx');
    unbounded = join(f.dir, 'mem-range.onnx');
    medium = join(f.dir, 'mem-16mib.onnx');
    writeFileSync(huge, withFill(onnx, 2 ** 30)); // 4 GiB of floats
    writeFileSync(unbounded, withRangeOverInput(onnx));
    writeFileSync(medium, withFill(onnx, 2 ** 22)); // 16 MiB of floats
    // A signed package of the 4 GiB model: its maker raised the limit when protecting it.
    const kr = await Keyring.create(join(f.dir, 'mem-keyring.json'), {
      secret: { env: PASS_ENV },
      scrypt: { N: 1024, r: 8, p: 1 },
    });
    await kr.createKey('data');
    const key = generateSigningKey();
    pkg = join(f.dir, 'mem-huge.bwm');
    await protectModel(huge, pkg, {
      keyring: kr,
      signingKey: key,
      name: 'fraud',
      version: '1',
      schema: SCHEMA,
      memory: { maxMemoryBytes: 2 ** 33 },
    });
    await kr.close();
    const pem = publicKeyPem(key.publicKey)
      .trim()
      .split('\n')
      .map((l) => `      ${l}`)
      .join('\n');
    writeFileSync(
      join(f.dir, 'mem-trust.yaml'),
      `version: 1\nsigners:\n  - name: ci\n    models: ["fraud"]\n    publicKey: |\n${pem}\n`,
    );
  });
  after(async () => {
    for (const g of opened) await g.close().catch(() => {});
  });

  /** The fixture's configuration with a second model entry `evil` (plain ONNX at `onnx`). */
  function withEvil(onnx: string, extra: Record<string, unknown> = {}): GatewayConfig {
    const base = f.config();
    const good = base.models[0] as (typeof base.models)[number];
    return f.config({
      models: [
        good,
        { name: 'evil', onnx, insecure: true, schema: join(f.dir, 'schema.yaml'), detectors: {}, ...extra },
      ],
    });
  }

  function writeConfig(name: string, c: GatewayConfig): string {
    const file = join(f.dir, `${name}-${process.pid}.yaml`);
    writeFileSync(file, JSON.stringify(c, null, 2));
    return file;
  }

  /** `serve --check` and a real `serve` both exit 5 with the one line `expect` matches. */
  async function refusedByServe(file: string, expect: RegExp, store: string): Promise<void> {
    for (const args of [
      ['serve', '--config', file, '--check'],
      ['serve', '--config', file],
    ]) {
      const r = await runBulwarkInProcess(args);
      assert.equal(r.code, 5, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^bulwark: ERR_MODEL_UNSAFE: /);
      assert.match(r.stderr, expect);
      assert.doesNotMatch(r.stderr, STACK);
      assert.doesNotMatch(r.stdout, /gateway listening/);
    }
    // Refused before anything is written: the audit log the configuration names was not created.
    assert.equal(existsSync(store), false);
  }

  it('serve --check and serve refuse a model past the limit, naming the entry, node, operator and key', async () => {
    const c = withEvil(huge);
    await refusedByServe(
      writeConfig('mem-huge', c),
      // Exact: the entry names the model once (until 2026-11-28 it read "models.evil: model: at ...").
      /^bulwark: ERR_MODEL_UNSAFE: models\.evil: at 256 rows \(models\.evil\.maxRows\) a run may hold 4\.0 GiB of tensors, above the limit of 1\.0 GiB \(models\.evil\.maxMemoryBytes\); the largest is output "filled" of node "evil_fill" \(ConstantOfShape\), up to 4\.0 GiB$/m,
      c.audit.store,
    );
    // --json: the same error as an object, with the node and operator as fields.
    const r = await runBulwarkInProcess([
      '--json',
      'serve',
      '--config',
      writeConfig('mem-huge', c),
      '--check',
    ]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, '');
    const e = (JSON.parse(r.stderr) as { error: { code: string; details: Record<string, unknown> } }).error;
    assert.equal(e.code, 'ERR_MODEL_UNSAFE');
    assert.deepEqual(
      [e.details['node'], e.details['op'], e.details['reason']],
      ['evil_fill', 'ConstantOfShape', 'limit'],
    );
  });

  it('serve --check and serve refuse a model whose sizes rest on the input values (no bound)', async () => {
    const c = withEvil(unbounded);
    await refusedByServe(
      writeConfig('mem-range', c),
      /^bulwark: ERR_MODEL_UNSAFE: models\.evil: node "evil_range" \(Range\): its limit is computed at run time from values Bulwark cannot bound before the run.*Bulwark does not run a model whose memory it cannot bound$/m,
      c.audit.store,
    );
    // No limit makes an unbounded model acceptable.
    await assert.rejects(
      Gateway.check({ config: withEvil(unbounded, { maxMemoryBytes: 2 ** 40 }) }),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['reason'] === 'unbounded',
    );
  });

  it('a signed package made with a raised limit is refused by a gateway with the default one', async () => {
    const base = f.config();
    const good = base.models[0] as (typeof base.models)[number];
    const c = f.config({
      models: [
        {
          name: 'fraud',
          package: pkg,
          keyring: join(f.dir, 'mem-keyring.json'),
          keyringPassphrase: { env: PASS_ENV },
          trust: join(f.dir, 'mem-trust.yaml'),
          output: good.output,
          detectors: {},
        },
      ],
    });
    await refusedByServe(
      writeConfig('mem-pkg', c),
      // Exact, through the package path too (loadProtectedModel): no "models.fraud: model: at ...".
      /^bulwark: ERR_MODEL_UNSAFE: models\.fraud: at 256 rows \(models\.fraud\.maxRows\) a run may hold 4\.0 GiB of tensors, above the limit of 1\.0 GiB \(models\.fraud\.maxMemoryBytes\); the largest is output "filled" of node "evil_fill" \(ConstantOfShape\), up to 4\.0 GiB$/m,
      c.audit.store,
    );
  });

  it('models[].maxMemoryBytes raises the limit for one model', async () => {
    // 16 MiB of floats in one node: refused under 8 MiB, served under the default.
    await assert.rejects(
      Gateway.check({ config: withEvil(medium, { maxMemoryBytes: 2 ** 23 }) }),
      (e: unknown) =>
        isBulwarkError(e, 'ERR_MODEL_UNSAFE') &&
        /^models\.evil: .*above the limit of 8\.0 MiB \(models\.evil\.maxMemoryBytes\)/.test(e.message),
    );
    const r = await Gateway.check({ config: withEvil(medium) });
    assert.deepEqual(
      r.models.map((m) => m.name),
      ['fraud', 'evil'],
    );
  });

  it('a SIGHUP reload does not reload models: a refused model put at the path of a served one does not replace it', async () => {
    const path = join(f.dir, `mem-served-${process.pid}.onnx`);
    writeFileSync(path, readFileSync(join(f.dir, 'fraud.onnx')));
    const base = f.config();
    const good = base.models[0] as (typeof base.models)[number];
    const gw = await startGateway(f.config({ models: [{ ...good, onnx: path }] }));
    opened.push(gw);
    const digest = gw.models.get('fraud')?.loaded.modelDigest;
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token(),
    });
    try {
      const before = await c.inferRows('fraud', [f.rows[0] as never]);
      writeFileSync(path, readFileSync(huge));
      // What `bulwark serve` runs on SIGHUP (src/cli/commands/serve.ts).
      await gw.reload();
      assert.equal(gw.models.get('fraud')?.loaded.modelDigest, digest);
      const after = await c.inferRows('fraud', [f.rows[0] as never]);
      assert.deepEqual(after.outputs, before.outputs);
    } finally {
      c.close();
    }
    // The next start reads the file again, and refuses it.
    await assert.rejects(
      Gateway.check({ config: f.config({ models: [{ ...good, onnx: path }] }) }),
      (e: unknown) => isBulwarkError(e, 'ERR_MODEL_UNSAFE') && e.details['node'] === 'evil_fill',
    );
  });
});
