import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BulwarkError, parseConfig } from '../../src/core/index.js';
import {
  gatewayConfigSchema,
  httpStatus,
  jsonStructureProblem,
  parseJsonBody,
  resolveConfigPaths,
} from '../../src/gateway/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const example = readFileSync(join(ROOT, 'examples', 'bulwark.yaml'), 'utf8');

function configError(text: string): string {
  try {
    parseConfig(text, gatewayConfigSchema, 'bulwark.yaml');
  } catch (e) {
    assert.ok(e instanceof BulwarkError);
    assert.equal(e.code, 'ERR_CONFIG_INVALID');
    return e.message;
  }
  assert.fail('the configuration was accepted');
}

describe('gateway configuration', () => {
  it('accepts examples/bulwark.yaml and fills defaults', () => {
    const c = parseConfig(example, gatewayConfigSchema, 'examples/bulwark.yaml');
    assert.equal(c.server.tls?.clientAuth, 'request');
    assert.equal(c.models[0]?.output.topK, 1);
    assert.equal(c.detectors.mode, 'enforce');
    assert.equal(c.enclave?.mode, 'off');
  });

  it('names the key path of every problem, refuses unknown keys and wrong types', () => {
    const m = configError(
      example.replace('port: 8443', 'port: "8443"').replace('  maxDepth: 8', '  maxDepht: 8'),
    );
    assert.match(m, /server\.port: .*expected number/);
    assert.match(m, /server: .*maxDepht/);
    assert.match(configError(example.replace('clientCa: tls/clients-ca.pem', '')), /server\.tls\.clientCa: /);
    assert.match(configError(example.replace('  tls:\n', '  tlz:\n')), /server/);
    assert.match(configError(example.replace('mode: off', 'mode: sgx-classic')), /enclave\.mode/);
    assert.match(configError(example.replace('backend: redis', 'backend: memcached')), /limits\.backend/);
    // A burst the whole-second window cannot hold at the configured rate (it enforced another rate).
    for (const burst of ['300', '100'])
      assert.match(
        configError(example.replace('burst: 400', `burst: ${burst}`)),
        /limits\.burst: must be a multiple of requestsPerSecond/,
      );
  });

  it('serves a plain ONNX file only with insecure: true and a schema; packages need keyring and trust', () => {
    const onnx = example.replace('package: models/fraud.bwm', 'onnx: models/fraud.onnx');
    assert.match(configError(onnx), /models\[0\]\.insecure: .*unsigned/);
    assert.match(
      configError(example.replace('    trust: keys/trust.yaml', '')),
      /models\[0\]\.keyring: .*keyring and trust/,
    );
    const ok = onnx.replace('    threads: 1', '    threads: 1\n    insecure: true\n    schema: s.yaml');
    assert.equal(parseConfig(ok, gatewayConfigSchema).models[0]?.insecure, true);
  });

  it('resolves file paths against the config folder, leaving URLs alone', () => {
    const withFile = example.replace(
      '    # detectors:\n    #   prada: detectors/fraud-prada.json',
      '    detectors:\n      prada: detectors/fraud-prada.json',
    );
    assert.notEqual(withFile, example);
    const c = resolveConfigPaths(parseConfig(withFile, gatewayConfigSchema), '/etc/bulwark');
    assert.equal(c.server.tls?.cert, '/etc/bulwark/tls/server.pem');
    assert.equal(c.models[0]?.package, '/etc/bulwark/models/fraud.bwm');
    assert.equal(c.models[0]?.detectors.prada, '/etc/bulwark/detectors/fraud-prada.json');
    assert.deepEqual(c.policy.files, ['/etc/bulwark/gateway/policies.cedar']);
    assert.equal(c.audit.store, '/etc/bulwark/audit/gateway.db');
    const pg = resolveConfigPaths(
      parseConfig(
        example.replace('store: audit/gateway.db', 'store: postgres://u@db:5432/a'),
        gatewayConfigSchema,
      ),
      '/x',
    );
    assert.equal(pg.audit.store, 'postgres://u@db:5432/a');
  });
});

describe('parse stage', () => {
  const p = (s: string, max = 1 << 20, depth = 8) => parseJsonBody(Buffer.from(s), max, depth);
  const reason = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return `${(e as BulwarkError).code}/${(e as BulwarkError).details['reason']}`;
    }
    return 'accepted';
  };

  it('limits depth on the raw text, skipping brackets inside strings', () => {
    assert.equal(jsonStructureProblem('[[[]]]', 3)?.reason === 'depth', false);
    assert.equal(jsonStructureProblem('[[[[]]]]', 3)?.reason === 'depth', true);
    assert.equal(jsonStructureProblem('{"a":"[[[[[[\\"[[[["}', 1)?.reason === 'depth', false);
    assert.equal(
      reason(() => p(`{"a":${'['.repeat(100_000)}`)),
      'ERR_GATEWAY_REQUEST_INVALID/depth',
    );
  });

  it('refuses forbidden keys however they are spelled, anywhere; leaves the same words as values alone', () => {
    for (const s of [
      '{"__proto__":{"x":1}}',
      '{"a":[{"constructor":{}}]}',
      '{"\\u005f_proto__":1}',
      '{"a":{"prototype":1}}',
    ])
      assert.equal(
        reason(() => p(s)),
        'ERR_GATEWAY_REQUEST_INVALID/forbidden_key',
        s,
      );
    assert.deepEqual(p('{"a":["__proto__","constructor"]}'), { a: ['__proto__', 'constructor'] });
  });

  it('refuses a key given twice in one object, however spelled; the same key in sibling objects is fine', () => {
    for (const s of [
      '{"id":"a","id":"b","inputs":[]}',
      '{"inputs":[{"name":"x","name":"y"}]}',
      '{"a":1,"\\u0061":2}',
      '{"a":{"b":[1,{"c":1,"c":2}]}}',
    ])
      assert.equal(
        reason(() => p(s)),
        'ERR_GATEWAY_REQUEST_INVALID/duplicate_key',
        s,
      );
    assert.deepEqual(p('{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":"a,\\"a\\":"}'), {
      a: { a: 1 },
      b: [{ a: 1 }, { a: 2 }],
      c: 'a,"a":',
    });
    assert.deepEqual(p('{"k":["k","k"]}'), { k: ['k', 'k'] });
  });

  it('refuses invalid UTF-8, broken JSON and oversize bodies with distinct reasons', () => {
    assert.equal(
      reason(() => parseJsonBody(Buffer.from([0x22, 0xc3, 0x28, 0x22]), 100, 8)),
      'ERR_GATEWAY_REQUEST_INVALID/encoding',
    );
    assert.equal(
      reason(() => p('{"a": NaN}')),
      'ERR_GATEWAY_REQUEST_INVALID/json',
    );
    assert.equal(
      reason(() => p('{"a": 1}', 4)),
      'ERR_GATEWAY_BODY_TOO_LARGE/size',
    );
  });

  it('maps codes to HTTP statuses', () => {
    assert.equal(httpStatus('ERR_GATEWAY_REQUEST_INVALID'), 400);
    assert.equal(httpStatus('ERR_AUTH_TOKEN_EXPIRED'), 401);
    assert.equal(httpStatus('ERR_AUTH_JWKS_UNAVAILABLE'), 503);
    assert.equal(httpStatus('ERR_POLICY_DENIED'), 403);
    assert.equal(httpStatus('ERR_POLICY_ENGINE'), 503);
    assert.equal(httpStatus('ERR_GATEWAY_BUDGET_EXHAUSTED'), 429);
    assert.equal(httpStatus('ERR_AUDIT_UNAVAILABLE'), 503);
    assert.equal(httpStatus('ERR_INPUT_TOO_LARGE'), 413);
  });
});
