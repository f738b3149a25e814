/**
 * The detectors' risk score and the caller's query count reach Cedar: with policies that mention them,
 * the gateway evaluates Cedar once, after the detectors, so `forbid ... when { context.riskScore > 0.9 }`
 * and `... context.queryCount > N` take effect (here with detectors in monitor mode: the policy decides).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayClient, type GatewayError } from '../../src/gateway/client.js';
import { Authorizer, type AuthorizerLike } from '../../src/gateway/peers.js';
import type { Gateway } from '../../src/gateway/server.js';
import { type Fixture, fixture, startGateway } from './gateway-fixtures.js';

const POLICIES = `@id("tenant-own-models")
permit (principal is Bulwark::Client, action == Bulwark::Action::"predict", resource is Bulwark::Model)
when { principal has tenant && resource has tenant && principal.tenant == resource.tenant };
@id("deny-high-risk")
forbid (principal, action == Bulwark::Action::"predict", resource)
when { context has riskScore && context.riskScore.greaterThan(decimal("0.9")) };
@id("deny-query-flood")
forbid (principal, action == Bulwark::Action::"predict", resource)
when { context has queryCount && context.queryCount > 2 };
`;

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    return `${(e as GatewayError).status} ${(e as GatewayError).code}`;
  }
}

/** The fixture's configuration with POLICIES, memory limits and the detectors in `mode`. */
function contextConfig(f: Fixture, mode: 'monitor' | 'enforce') {
  const file = join(f.dir, `context-policies-${mode}.cedar`);
  writeFileSync(file, POLICIES);
  const base = f.config();
  return f.config({
    policy: { ...base.policy, files: [file] },
    detectors: { mode },
    limits: {
      backend: 'memory',
      requestsPerSecond: 1000,
      queryBudget: { queries: 1000, windowSeconds: 3600 },
    },
  });
}

describe('risk score and query count in the Cedar context', () => {
  let f: Fixture;
  let gw: Gateway;
  /** Cedar decisions taken (the real authoriser, counted). */
  let decisions = 0;

  before(async () => {
    f = await fixture();
    const config = contextConfig(f, 'monitor');
    const real = await Authorizer.create(config.policy);
    const counted: AuthorizerLike = {
      authorize: (r) => {
        decisions++;
        return real.authorize(r);
      },
      reload: () => real.reload(),
    };
    gw = await startGateway(config, { authorizer: counted });
  });
  after(async () => {
    await gw?.close();
  });

  it('Cedar is evaluated once per inference request, after the detectors', async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'once' }),
    });
    const before = decisions;
    assert.equal(await code(c.inferRows('fraud', [f.rows[40] as never])), 'OK');
    assert.equal(await code(c.inferRows('fraud', [f.rows[41] as never])), 'OK');
    c.close();
    assert.equal(decisions - before, 2);
  });

  it('a policy on context.queryCount stops the third query of a caller', async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'counted' }),
    });
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await code(c.inferRows('fraud', [f.rows[20 + i] as never])));
    c.close();
    assert.deepEqual(got, ['OK', 'OK', '403 ERR_POLICY_DENIED']);
  });

  it('a policy on context.riskScore refuses an out-of-distribution row that monitor mode lets through the detectors', async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'risky' }),
    });
    assert.equal(await code(c.inferRows('fraud', [f.rows[30] as never])), 'OK');
    assert.equal(
      await code(c.inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }])),
      '403 ERR_POLICY_DENIED',
    );
    c.close();
    // Counted as a detection (monitor mode) and denied by the policy, evaluated once after the detectors.
    const text = await (await fetch(gw.metricsUrl as string)).text();
    assert.match(text, /gateway_detections_total\{model="fraud",detector="mahalanobis"\} 1/);
    assert.match(text, /gateway_denials_total\{stage="authorize",reason="ERR_POLICY_DENIED"\} [1-9]/);
  });
});

describe('with detectors enforcing and Cedar after them', () => {
  let f: Fixture;
  let gw: Gateway;

  before(async () => {
    f = await fixture();
    gw = await startGateway(contextConfig(f, 'enforce'));
  });
  after(async () => {
    await gw?.close();
  });

  it('a caller the policy refuses learns nothing of the detectors: the policy denial comes first', async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'prober' }),
    });
    const got = [];
    for (let i = 0; i < 2; i++) got.push(await code(c.inferRows('fraud', [f.rows[50 + i] as never])));
    // The third query is refused by the query-count policy; its out-of-distribution row, which the
    // Mahalanobis detector flags, must not change the answer (it did when the detectors refused first).
    got.push(await code(c.inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }])));
    c.close();
    assert.deepEqual(got, ['OK', 'OK', '403 ERR_POLICY_DENIED']);
    // Still counted as a detection.
    const text = await (await fetch(gw.metricsUrl as string)).text();
    assert.match(text, /gateway_detections_total\{model="fraud",detector="mahalanobis"\} 1/);
  });

  it("a permitted caller refused only for the risk gets the detectors' refusal", async () => {
    const c = new GatewayClient({
      url: gw.url,
      ca: f.ca.pem,
      servername: 'localhost',
      token: await f.token({ sub: 'permitted' }),
    });
    // deny-high-risk refuses this row (riskScore 1); without the flag the policy permits the caller:
    // the refusal is the detectors' own, as without a risk policy.
    const got = await code(c.inferRows('fraud', [{ amount: 4000, age: 40, kind: 'B' }]));
    c.close();
    assert.equal(got, '403 ERR_GATEWAY_DETECTED');
  });
});
