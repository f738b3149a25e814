import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import type { Principal } from '../../src/gateway/auth/index.js';
import { Authorizer, type AuthzRequest, decisionError } from '../../src/gateway/policy/index.js';

const root = join(import.meta.dirname, '..', '..');
const POLICIES = join(root, 'examples', 'gateway', 'policies.cedar');
const SCHEMA = join(root, 'examples', 'gateway', 'bulwark.cedarschema');
const dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-'));

const acme: Principal = {
  id: 'https://issuer.bulwark.test|acme-scorer',
  issuer: 'https://issuer.bulwark.test',
  subject: 'acme-scorer',
  tenant: 'acme',
  roles: [],
  scopes: ['predict'],
  sources: ['token'],
};
const admin: Principal = {
  id: 'spiffe://bulwark.example/ns/ops/sa/admin',
  spiffeId: 'spiffe://bulwark.example/ns/ops/sa/admin',
  roles: ['admin'],
  scopes: [],
};
const prometheus: Principal = {
  id: 'spiffe://bulwark.example/ns/monitoring/sa/prometheus',
  spiffeId: 'spiffe://bulwark.example/ns/monitoring/sa/prometheus',
  roles: [],
  scopes: [],
  sources: ['mtls'],
};

let authz: Authorizer;
const ask = (r: Partial<AuthzRequest>) =>
  authz.authorize({ principal: acme, action: 'predict', resource: { model: 'fraud' }, context: {}, ...r });

before(async () => {
  authz = await Authorizer.create({
    files: [POLICIES],
    schemaFile: SCHEMA,
    models: { fraud: { tenant: 'acme' }, churn: { tenant: 'globex' } },
  });
});

describe('example policies (examples/gateway)', () => {
  it('load and validate against the schema, with their @id as policy ids', () => {
    assert.deepEqual(authz.policyIds, [
      'tenant-own-models',
      'admin-role',
      'monitoring-reads-metrics',
      'deny-high-risk',
      'deny-query-flood',
      'admin-from-private-network',
    ]);
  });

  it('a tenant may predict and explain on its own models only', () => {
    const own = ask({
      context: { time: 1_800_000_000, clientAddress: '10.1.2.3', riskScore: 0.12, queryCount: 4 },
    });
    assert.deepEqual(own, { allow: true, reasons: ['tenant-own-models'], errors: [] });
    assert.equal(ask({ action: 'explain', resource: { model: 'fraud', version: '3' } }).allow, true);
    const other = ask({ resource: { model: 'churn' } });
    assert.deepEqual(other, { allow: false, reasons: [], errors: [], code: 'ERR_POLICY_DENIED' });
    // unknown model: no tenant, so no permit (deny by default)
    assert.equal(ask({ resource: { model: 'unlisted' } }).allow, false);
    // the request may carry the model tenant itself
    assert.equal(ask({ resource: { model: 'unlisted', tenant: 'acme' } }).allow, true);
    // without the predict scope or the predictor role
    assert.equal(ask({ principal: { ...acme, scopes: ['read'] } }).allow, false);
    assert.equal(ask({ principal: { ...acme, scopes: [], roles: ['predictor'] } }).allow, true);
    // a principal without a tenant never matches a tenant's model
    const { tenant: _t, ...noTenant } = acme;
    assert.equal(ask({ principal: noTenant }).allow, false);
    // predict is not admin
    assert.equal(ask({ action: 'admin' }).allow, false);
  });

  it('forbids predictions when a risk score exceeds 0.9 (decimal compare, 4 places)', () => {
    const high = ask({ context: { riskScore: 0.9001 } });
    assert.deepEqual(high, {
      allow: false,
      reasons: ['deny-high-risk'],
      errors: [],
      code: 'ERR_POLICY_DENIED',
    });
    assert.equal(ask({ context: { riskScore: 0.9 } }).allow, true);
    assert.equal(ask({ context: { riskScore: 1 } }).allow, false); // an integer value is still a decimal
    assert.equal(ask({ action: 'explain', context: { riskScore: 0.95 } }).allow, false);
  });

  it('forbids query floods', () => {
    assert.equal(ask({ context: { queryCount: 10_000 } }).allow, true);
    assert.deepEqual(ask({ context: { queryCount: 10_001 } }).reasons, ['deny-query-flood']);
  });

  it('admin needs the admin role and a private or loopback address', () => {
    const a = (address: string | undefined, p: Principal = admin) =>
      authz.authorize({
        principal: p,
        action: 'admin',
        resource: { model: 'fraud' },
        context: address === undefined ? {} : { clientAddress: address },
      });
    assert.deepEqual(a('10.9.8.7'), { allow: true, reasons: ['admin-role'], errors: [] });
    assert.equal(a('127.0.0.1').allow, true);
    assert.equal(a('::1').allow, true);
    assert.equal(a('::ffff:10.0.0.5').allow, true); // IPv4-mapped peer address from a dual-stack socket
    assert.deepEqual(a('203.0.113.7').reasons, ['admin-from-private-network']);
    assert.equal(a(undefined).allow, false);
    assert.equal(a('10.9.8.7', { ...admin, roles: ['predictor'] }).allow, false);
  });

  it('read-metrics for the monitoring workload or role only', () => {
    const m = (p: Principal) =>
      authz.authorize({ principal: p, action: 'read-metrics', resource: { model: 'fraud' }, context: {} });
    assert.deepEqual(m(prometheus).reasons, ['monitoring-reads-metrics']);
    assert.equal(m({ ...acme, roles: ['monitoring'] }).allow, true);
    assert.equal(m(acme).allow, false);
    assert.equal(m(admin).allow, false);
  });

  it('an input the engine cannot evaluate denies with ERR_POLICY_ENGINE (503), not ERR_POLICY_DENIED', () => {
    const frac = ask({ context: { queryCount: 1.5 } });
    assert.equal(frac.allow, false);
    assert.equal(frac.code, 'ERR_POLICY_ENGINE');
    assert.match(frac.errors[0] ?? '', /queryCount/);
    const badIp = ask({ context: { clientAddress: 'not-an-ip' } });
    assert.equal(badIp.code, 'ERR_POLICY_ENGINE');
    const badAction = ask({ action: 'delete' as never });
    assert.equal(badAction.code, 'ERR_POLICY_ENGINE');
    const e = decisionError(frac, 'predict');
    assert.ok(isBulwarkError(e, 'ERR_POLICY_ENGINE'));
    assert.equal(e.exitCode, 6);
    const d = decisionError(ask({ context: { riskScore: 0.99 } }), 'predict');
    assert.ok(isBulwarkError(d, 'ERR_POLICY_DENIED'));
    assert.match(d.message, /deny-high-risk/);
    assert.equal(decisionError(ask({}), 'predict'), undefined);
  });

  it('drops context keys the schema does not declare', () => {
    assert.equal(ask({ context: { somethingElse: 'x' } }).allow, true);
  });
});

describe('fail closed', () => {
  it('a forbid that errors at evaluation denies (Cedar would skip it and allow)', async () => {
    const f = join(dir, 'erroring.cedar');
    writeFileSync(
      f,
      `@id("allow-all") permit (principal, action, resource);
@id("forbid-evil") forbid (principal, action, resource) when { principal.tenant == "evil" };`,
    );
    const a = await Authorizer.create({ files: [f] }); // no schema: nothing catches the unguarded access
    const { tenant: _t, ...noTenant } = acme;
    const d = a.authorize({ principal: noTenant, action: 'predict', resource: { model: 'm' }, context: {} });
    assert.equal(d.allow, false);
    assert.equal(d.code, 'ERR_POLICY_ENGINE');
    assert.match(d.errors.join(), /forbid-evil/);
    assert.equal(
      a.authorize({ principal: acme, action: 'predict', resource: { model: 'm' }, context: {} }).allow,
      true,
    );
    const evil = a.authorize({
      principal: { ...acme, tenant: 'evil' },
      action: 'predict',
      resource: { model: 'm' },
      context: {},
    });
    assert.deepEqual(evil.reasons, ['forbid-evil']);
  });

  it('without a schema numbers are typed by value (integers Long, others decimal)', async () => {
    const f = join(dir, 'noschema.cedar');
    writeFileSync(
      f,
      `@id("p") permit (principal, action, resource) when { context.n > 3 && context.r.lessThan(decimal("0.5")) && context.flag };`,
    );
    const a = await Authorizer.create({ files: [f] });
    const q = (context: AuthzRequest['context']) =>
      a.authorize({ principal: acme, action: 'predict', resource: { model: 'm' }, context });
    assert.equal(q({ n: 4, r: 0.25, flag: true }).allow, true);
    assert.equal(q({ n: 3, r: 0.25, flag: true }).allow, false);
    assert.equal(q({ n: 4, r: 0.75, flag: true }).allow, false);
    assert.equal(q({ n: 4, r: 0.25, flag: false }).allow, false);
    assert.equal(q({ n: 4, r: Number.NaN, flag: true }).code, 'ERR_POLICY_ENGINE');
  });
});

describe('loading and reload', () => {
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const refuses = async (cfg: Parameters<typeof Authorizer.create>[0], file: string, re: RegExp) =>
    assert.rejects(Authorizer.create(cfg), (e: unknown) => {
      assert.ok(isBulwarkError(e, 'ERR_POLICY_INVALID'), String(e));
      assert.equal(e.details['file'], file);
      assert.match(e.message, re);
      assert.equal(e.exitCode, 4);
      return true;
    });

  it('refuses a policy file that does not parse, naming it', async () => {
    const f = write('syntax.cedar', 'permit (principal, action, resource) when { ;');
    await refuses({ files: [POLICIES, f] }, f, /does not parse/);
  });

  it('refuses a policy that does not validate against the schema, naming its file and id', async () => {
    const f = write(
      'typo.cedar',
      '@id("typo") permit (principal, action, resource) when { principal.tennant == "acme" };',
    );
    await refuses({ files: [POLICIES, f], schemaFile: SCHEMA }, f, /typo/);
    const g = write(
      'unguarded.cedar',
      '@id("unguarded") permit (principal, action, resource) when { principal.tenant == "acme" };',
    );
    await refuses({ files: [g], schemaFile: SCHEMA }, g, /unguarded/);
  });

  it('refuses duplicate ids, templates, an empty set and a broken schema', async () => {
    const dup = write('dup.cedar', '@id("admin-role") permit (principal, action, resource);');
    await refuses({ files: [POLICIES, dup] }, dup, /admin-role/);
    const tpl = write('tpl.cedar', 'permit (principal == ?principal, action, resource);');
    await refuses({ files: [tpl] }, tpl, /templates/);
    const empty = write('empty.cedar', '// nothing\n');
    await refuses({ files: [empty] }, empty, /no policies/);
    const badSchema = write('bad.cedarschema', 'namespace Bulwark { entity Client = { ; }');
    await refuses({ files: [POLICIES], schemaFile: badSchema }, badSchema, /schema/);
    const noActions = write(
      'noactions.cedarschema',
      'namespace Bulwark { entity Client; entity Model; action predict appliesTo { principal: Client, resource: Model }; }',
    );
    await refuses({ files: [POLICIES], schemaFile: noActions }, noActions, /explain|does not validate/);
    await assert.rejects(Authorizer.create({ files: [join(dir, 'missing.cedar')] }), (e: unknown) =>
      isBulwarkError(e, 'ERR_FILE_NOT_FOUND'),
    );
    await assert.rejects(Authorizer.create({ files: [] }), (e: unknown) =>
      isBulwarkError(e, 'ERR_CONFIG_INVALID'),
    );
  });

  it("checks the schema's entity shapes against what the gateway supplies", async () => {
    const shape = (client: string, model = 'name: String, tenant?: String') =>
      write(
        'shape.cedarschema',
        `namespace Bulwark { entity Client = { ${client} }; entity Model = { ${model} };
         action predict, explain, admin, "read-metrics" appliesTo { principal: Client, resource: Model }; }`,
      );
    const pol = write(
      'shape.cedar',
      '@id("p") permit (principal, action, resource) when { principal.roles.contains("r") };',
    );
    const fn = shape('tenant: String, roles: Set<String>');
    await refuses({ files: [pol], schemaFile: fn }, fn, /Client\.tenant must be optional/);
    const ft = shape('roles: String');
    await refuses({ files: [pol], schemaFile: ft }, ft, /Client\.roles must have type Set<String>/);
    const fr = shape('roles: Set<String>, department: String');
    await refuses({ files: [pol], schemaFile: fr }, fr, /department is required/);
    const fm = shape('roles: Set<String>', 'name: String, version: String');
    await refuses({ files: [pol], schemaFile: fm }, fm, /Model\.version must be optional/);
    // a schema declaring only some attributes: the others are not sent, and both engines agree
    const ok = shape('roles: Set<String>, department?: String', 'name: String');
    for (const engine of ['auto', 'cedar-wasm'] as const) {
      const a = await Authorizer.create({ files: [pol], schemaFile: ok, engine });
      const d = a.authorize({
        principal: { ...acme, roles: ['r'] },
        action: 'predict',
        resource: { model: 'm', version: '2' },
        context: {},
      });
      assert.deepEqual(d, { allow: true, reasons: ['p'], errors: [] }, engine);
    }
  });

  it('reload swaps policies atomically, and a broken reload keeps the previous set in force', async () => {
    const f = write(
      'live.cedar',
      '@id("v1") permit (principal, action == Bulwark::Action::"predict", resource);',
    );
    const a = await Authorizer.create({ files: [f], schemaFile: SCHEMA });
    const q = () =>
      a.authorize({ principal: acme, action: 'predict', resource: { model: 'm' }, context: {} });
    assert.deepEqual(q().reasons, ['v1']);
    write(
      'live.cedar',
      '@id("v2") forbid (principal, action, resource);\n@id("v2p") permit (principal, action, resource);',
    );
    await a.reload();
    assert.deepEqual(q(), { allow: false, reasons: ['v2'], errors: [], code: 'ERR_POLICY_DENIED' });
    write('live.cedar', 'permit (principal, action, resource) when { principal.nope };');
    await assert.rejects(a.reload(), (e: unknown) => isBulwarkError(e, 'ERR_POLICY_INVALID'));
    assert.deepEqual(q().reasons, ['v2']);
  });
});
