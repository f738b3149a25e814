import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SeededRng } from '../../src/core/index.js';
import type { Principal } from '../../src/gateway/auth/index.js';
import { type Action, Authorizer, type AuthzRequest } from '../../src/gateway/policy/index.js';

/**
 * Differential test: the compiled fast path against cedar-wasm (engine: cedar-wasm) on the same seeded
 * random requests. Every decision (allow, reasons, code) must be identical, and most requests must be
 * decided by the compiled path (so the test checks it, not the fallback).
 */

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-diff-'));
const pick = <T>(rng: SeededRng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;
const subset = <T>(rng: SeededRng, xs: readonly T[]): T[] => xs.filter(() => rng.bernoulli(0.4));
const ACTIONS: readonly Action[] = ['predict', 'explain', 'admin', 'read-metrics'];

function principal(rng: SeededRng): Principal {
  const mon = rng.bernoulli(0.1);
  const id = mon ? 'spiffe://bulwark.example/ns/monitoring/sa/prometheus' : `client-${rng.int(5)}`;
  const tenant = pick(rng, ['acme', 'globex', undefined]);
  return {
    id,
    ...(mon ? { spiffeId: id } : {}),
    ...(tenant === undefined ? {} : { tenant }),
    roles: subset(rng, ['admin', 'predictor', 'monitoring', 'auditor']),
    scopes: subset(rng, ['predict', 'explain', 'read']),
    sources: subset(rng, ['mtls', 'token']),
  };
}

const ADDRESSES = [
  '127.0.0.1',
  '127.9.9.9',
  '10.0.0.1',
  '10.255.1.2',
  '11.0.0.1',
  '203.0.113.7',
  '0.0.0.0',
  '::1',
  '::ffff:10.1.1.1',
  'fe80::1',
  '224.0.0.5',
];

async function compare(
  authzA: Authorizer,
  authzB: Authorizer,
  make: (rng: SeededRng) => AuthzRequest,
  n: number,
  seed: number,
) {
  const rng = new SeededRng(seed);
  let allowed = 0;
  for (let i = 0; i < n; i++) {
    const req = make(rng);
    const a = authzA.authorize(req);
    const b = authzB.authorize(req);
    assert.deepEqual(
      { allow: a.allow, reasons: a.reasons, code: a.code },
      { allow: b.allow, reasons: b.reasons, code: b.code },
      `request ${i}: ${JSON.stringify(req)}`,
    );
    if (a.allow) allowed++;
  }
  return allowed;
}

describe('compiled Cedar fast path agrees with cedar-wasm', () => {
  it('on the example policies and schema (3,000 random requests)', async () => {
    const cfg = {
      files: [join(root, 'examples', 'gateway', 'policies.cedar')],
      schemaFile: join(root, 'examples', 'gateway', 'bulwark.cedarschema'),
      models: { fraud: { tenant: 'acme' }, churn: { tenant: 'globex' } },
    };
    const fast = await Authorizer.create(cfg);
    const wasm = await Authorizer.create({ ...cfg, engine: 'cedar-wasm' });
    assert.equal(fast.engine, 'compiled');
    assert.equal(wasm.engine, 'cedar-wasm');
    const n = 3000;
    const allowed = await compare(
      fast,
      wasm,
      (rng) => {
        const context: Record<string, string | number | boolean> = {};
        if (rng.bernoulli(0.7)) context['time'] = 1_800_000_000 + rng.int(1000);
        if (rng.bernoulli(0.7)) context['clientAddress'] = pick(rng, ADDRESSES);
        if (rng.bernoulli(0.7))
          context['riskScore'] = rng.bernoulli(0.3)
            ? pick(rng, [0.9, 0.9001, 0.8999, 0, 1])
            : Math.round(rng.uniform(0, 1.2) * 1e4) / 1e4;
        if (rng.bernoulli(0.7))
          context['queryCount'] = rng.bernoulli(0.95)
            ? rng.bernoulli(0.3)
              ? pick(rng, [10_000, 10_001, 9_999])
              : rng.int(20_000)
            : 1.5;
        if (rng.bernoulli(0.1)) context['undeclared'] = 'x';
        // wrong types for declared keys: both engines must refuse them the same way
        if (rng.bernoulli(0.03)) context['riskScore'] = 'high';
        if (rng.bernoulli(0.03)) context['clientAddress'] = 5;
        if (rng.bernoulli(0.03)) context['time'] = pick(rng, [2.5, true, 1e300]);
        const model = pick(rng, ['fraud', 'churn', 'unlisted']);
        return {
          principal: principal(rng),
          action: pick(rng, ACTIONS),
          resource: {
            model,
            ...(rng.bernoulli(0.3) ? { version: String(rng.int(4)) } : {}),
            ...(rng.bernoulli(0.1) ? { tenant: 'acme' } : {}),
          },
          context,
        };
      },
      n,
      9,
    );
    assert.ok(allowed > n / 20, `enough allows to be meaningful (${allowed})`);
    assert.ok(fast.fallbacks < n / 4, `compiled path decided most requests (fallbacks ${fast.fallbacks})`);
    assert.ok(fast.fallbacks > 0, 'IPv6 and invalid inputs went to cedar-wasm');
  });

  it('on a schemaless corpus exercising every supported operator, with type errors (3,000 requests)', async () => {
    const f = join(dir, 'ops.cedar');
    writeFileSync(
      f,
      `@id("like") permit (principal, action == Bulwark::Action::"predict", resource) when { resource.name like "fr*d" };
@id("sets") permit (principal, action, resource) when { principal.roles.containsAll(["a", "b"]) || principal.roles.containsAny(["c"]) && !principal.scopes.isEmpty() };
@id("arith") forbid (principal, action, resource) when { context has n && context.n * 2 - 3 > 10 && -context.n < 0 };
@id("nested-has") permit (principal, action, resource) when { context has rec.inner && context.rec.inner == 1 };
@id("records") forbid (principal, action, resource) when { context has rec && context.rec == {inner: 2} };
@id("ite") permit (principal, action == Bulwark::Action::"explain", resource) when { if context has flag then context.flag else false };
@id("ip") forbid (principal, action, resource) when { context has addr && (ip(context.addr).isInRange(ip("192.168.0.0/16")) || ip(context.addr).isMulticast()) };
@id("dec") forbid (principal, action, resource) when { context has score && context.score.greaterThanOrEqual(decimal("0.75")) && context.score.lessThan(decimal("2.0")) };
@id("is-in") permit (principal is Bulwark::Client in Bulwark::Client::"client-1", action in [Bulwark::Action::"admin"], resource is Bulwark::Model);
@id("neq") permit (principal, action == Bulwark::Action::"read-metrics", resource) when { principal has tenant && principal.tenant != "globex" && [1, 2, 2] == [2, 1] };
@id("in-set") permit (principal, action, resource) when { principal in [Bulwark::Client::"client-2", Bulwark::Client::"client-3"] && resource.name like "*\\*" };
@id("unguarded") forbid (principal, action, resource) when { principal.tenant == "evil" };
`,
    );
    const fast = await Authorizer.create({ files: [f] });
    const wasm = await Authorizer.create({ files: [f], engine: 'cedar-wasm' });
    assert.equal(fast.engine, 'compiled');
    const n = 3000;
    const allowed = await compare(
      fast,
      wasm,
      (rng) => {
        const p = principal(rng);
        const tenant = rng.bernoulli(0.1) ? undefined : pick(rng, ['acme', 'globex', 'evil']);
        const { tenant: _t, ...rest } = p;
        const context: Record<string, string | number | boolean> = {};
        if (rng.bernoulli(0.8))
          context['n'] = rng.bernoulli(0.95) ? rng.intBetween(-20, 20) : pick(rng, ['7', true, 2.5]);
        if (rng.bernoulli(0.3)) context['flag'] = rng.bernoulli(0.8) ? rng.bernoulli(0.5) : 'yes';
        if (rng.bernoulli(0.5))
          context['addr'] = pick(rng, ['192.168.1.1', '192.169.0.1', '224.1.2.3', '10.0.0.1', '::1']);
        if (rng.bernoulli(0.5))
          context['score'] = rng.bernoulli(0.9)
            ? rng.bernoulli(0.3)
              ? pick(rng, [0.75, 0.7499, 2.0001, 1.9999])
              : Math.round(rng.uniform(0, 2.5) * 1e4) / 1e4
            : 1;
        return {
          principal: {
            ...rest,
            id: pick(rng, ['client-1', 'client-2', 'client-3', 'x']),
            roles: subset(rng, ['a', 'b', 'c']),
            ...(tenant === undefined ? {} : { tenant }),
          },
          action: pick(rng, ACTIONS),
          resource: { model: pick(rng, ['fraud', 'frd', 'fraudulent', 'model*', 'x']) },
          context,
        };
      },
      n,
      17,
    );
    assert.ok(allowed > n / 50, `enough allows (${allowed})`);
    assert.ok(fast.fallbacks < n / 2, `compiled path decided most requests (fallbacks ${fast.fallbacks})`);
  });

  it('on single expressions at the edges of Cedar semantics', async () => {
    const exprs = [
      'ip("10.0.0.1") == ip("10.0.0.1/32")',
      'ip("10.1.2.3/8") == ip("10.0.0.0/8")',
      'ip("10.1.2.3/8").isInRange(ip("10.0.0.0/8"))',
      'ip("10.0.0.0/8").isInRange(ip("10.1.2.3/8"))',
      'ip("0.0.0.0/0").isInRange(ip("10.0.0.0/8"))',
      'ip("10.0.0.0/8").isInRange(ip("0.0.0.0/0"))',
      'ip("127.0.0.0/8").isLoopback()',
      'ip("127.0.0.1").isLoopback() && !ip("128.0.0.1").isLoopback()',
      'ip("239.255.255.255").isMulticast() && !ip("240.0.0.0").isMulticast()',
      'ip("::1").isLoopback()',
      'ip("10.0.0.1").isIpv4() && !ip("10.0.0.1").isIpv6()',
      'ip("010.0.0.1") == ip("10.0.0.1")',
      'decimal("1.0") == decimal("1.0000")',
      'decimal("-0.0001").lessThan(decimal("0.0"))',
      'decimal("922337203685477.5807").greaterThan(decimal("1.0"))',
      'decimal("1.00001") == decimal("1.0")',
      'decimal("1") == decimal("1.0")',
      '[1, 2] == [2, 1, 1]',
      '{a: 1, b: 2} == {b: 2, a: 1}',
      '{a: 1} == {a: 1, b: 2}',
      '[[1], [2]].contains([2])',
      '[1, "a", true].containsAll(["a", true])',
      '[].isEmpty() && ![1].isEmpty()',
      '"abc" like "a*c" && !("abc" like "a*b")',
      '"a*c" like "a\\*c" && !("abc" like "a\\*c")',
      '"" like "*"',
      '"ünï" like "*n*"',
      '1 == "1"',
      '1 < "a"',
      '"a" < "b"',
      '-9007199254740991 - 1 < 0',
      '9007199254740991 + 1 > 0',
      '4611686018427387904 * 2 > 0',
      'if 1 == 1 then true else 1',
      'if 1 then true else false',
      'true || (1 < "a")',
      'false && (1 < "a")',
      '(1 < "a") || true',
      '!1',
      'principal has roles && principal.roles.contains("x") || principal has nope',
      'principal.nope == 1 || true',
      'context has a.b',
      'resource is Bulwark::Model && !(principal is Bulwark::Model)',
      'principal in principal && !(principal in resource)',
      'principal in [resource, principal]',
      'principal in [1]',
      'Bulwark::Model::"m" in resource',
      'Bulwark::Other::"x".name == "x"',
      'Bulwark::Other::"x" has name',
      'action has foo',
      'action == Bulwark::Action::"predict"',
    ];
    const principalP: Principal = { id: 'p', tenant: 'acme', roles: ['x'], scopes: [] };
    for (const [i, expr] of exprs.entries()) {
      const f = join(dir, `expr-${i}.cedar`);
      writeFileSync(f, `@id("e") permit (principal, action, resource) when { ${expr} };`);
      const fast = await Authorizer.create({ files: [f] });
      const wasm = await Authorizer.create({ files: [f], engine: 'cedar-wasm' });
      const req: AuthzRequest = {
        principal: principalP,
        action: 'predict',
        resource: { model: 'm' },
        context: {},
      };
      const a = fast.authorize(req);
      const b = wasm.authorize(req);
      assert.deepEqual(
        { allow: a.allow, reasons: a.reasons, code: a.code },
        { allow: b.allow, reasons: b.reasons, code: b.code },
        expr,
      );
    }
  });

  it('falls back to cedar-wasm for the whole set outside the subset (datetime, tags)', async () => {
    const f = join(dir, 'outside.cedar');
    writeFileSync(
      f,
      '@id("t") permit (principal, action, resource) when { datetime("2026-01-01") < datetime("2027-01-01") };',
    );
    const a = await Authorizer.create({ files: [f] });
    assert.equal(a.engine, 'cedar-wasm');
    assert.match(a.unsupportedReason ?? '', /datetime/);
    const p: Principal = { id: 'c', roles: [], scopes: [] };
    assert.equal(
      a.authorize({ principal: p, action: 'predict', resource: { model: 'm' }, context: {} }).allow,
      true,
    );
  });
});
