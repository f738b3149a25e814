/**
 * Gateway authentication and authorisation cost per request (issue #9, the hot-path half of
 * src/gateway/auth and src/gateway/policy), each next to the baseline it replaces, in the same run:
 *
 * - Bearer token: `Authenticator.authenticate` with the verified-token cache hit, and with the cache off
 *   (full RFC 8725 screening + jose verification + claim mapping), against bare `jose.jwtVerify` with the
 *   same key set and options (ES256, local JWKS).
 * - DPoP (RFC 9449): authenticate with a DPoP-bound token (cache hit) and a fresh ES256 proof per request
 *   (the proof's screening, signature, claims, `ath`, thumbprint and replay record), against bare
 *   `jose.jwtVerify` of the same proofs with the key embedded in their header (`EmbeddedJWK`: the key
 *   imported from the header on every call, as a plain jose integration does; Bulwark keeps imported keys).
 * - mTLS: authenticate from a SPIFFE X.509-SVID (memoised by thumbprint), and the uncached SVID parse.
 * - Cedar: `Authorizer.authorize` (pre-parsed policies and schema, the example policy set, a full
 *   context) against cedar-wasm's stateless `isAuthorized` (policies and schema parsed per call) and the
 *   stateful call with per-request schema validation switched on; plus the floor of one wasm call with
 *   a one-line policy and no entities.
 *
 * Every figure is microseconds per operation (median over repeats of a timed loop).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { createLocalJWKSet, EmbeddedJWK, jwtVerify } from 'jose';
import {
  Authenticator,
  type AuthRequest,
  createDpopKey,
  dpopProof,
  spiffeIdFromCertificate,
} from '../src/gateway/auth/index.js';
import { Authorizer, type AuthzRequest } from '../src/gateway/policy/index.js';
import { goodClaims, issuerKey, makeCa, makeLeaf, mint } from '../test/gateway/auth-fixtures.js';
import { type BenchContext, type Benchmark, type Figure, REPO_ROOT } from './harness.js';

const ISS = 'https://issuer.bulwark.test';
const AUD = 'https://gateway.bulwark.test';

interface Spec {
  id: string;
  label: string;
  system: string;
  n: number;
  fn: () => unknown;
}

/**
 * Times each spec's loop (µs per operation), interleaving the specs in every repeat so that a figure and
 * its baseline see the same machine load (the machine is shared and noisy).
 */
async function runInterleaved(ctx: BenchContext, specs: readonly Spec[]): Promise<Figure[]> {
  const samples = specs.map(() => [] as number[]);
  for (const s of specs) for (let i = 0; i < Math.min(s.n, 2000); i++) await s.fn(); // warm-up
  for (let r = 0; r < ctx.repeats; r++) {
    for (const [k, s] of specs.entries()) {
      const isAsync = s.fn() instanceof Promise;
      const t0 = performance.now();
      if (isAsync) for (let i = 0; i < s.n; i++) await s.fn();
      else for (let i = 0; i < s.n; i++) s.fn(); // no await: a microtask per call would distort µs figures
      samples[k]!.push(((performance.now() - t0) * 1000) / s.n);
    }
  }
  return specs.map((s, k) => ({
    id: s.id,
    label: s.label,
    system: s.system,
    unit: 'µs/op',
    better: 'lower',
    samples: samples[k]!,
  }));
}

const bench: Benchmark = {
  name: 'gateway-auth',
  description: 'Per-request cost of token/mTLS authentication and Cedar authorisation vs their baselines',
  async run(ctx) {
    const figures: Figure[] = [];
    const specs: Spec[] = [];
    const n = ctx.quick ? 2000 : 20_000;
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-auth-'));

    // ---- tokens ----
    const key = await issuerKey('ES256', 'k1');
    const jwksPath = join(dir, 'jwks.json');
    writeFileSync(jwksPath, JSON.stringify({ keys: [key.publicJwk] }));
    const now = Math.floor(Date.now() / 1000);
    const token = await mint(key, goodClaims({ iss: ISS, aud: AUD, iat: now, exp: now + 3600 }));
    const jwt = { issuer: ISS, audience: AUD, jwks: { file: jwksPath }, algorithms: ['ES256' as const] };
    const cached = await Authenticator.create({ jwt });
    const uncached = await Authenticator.create({ jwt: { ...jwt, cacheSize: 0 } });
    const req: AuthRequest = {
      peerAuthorized: false,
      remoteAddress: '127.0.0.1',
      authorization: `Bearer ${token}`,
    };
    const jwks = createLocalJWKSet({ keys: [key.publicJwk] });
    const joseOpts = {
      algorithms: ['ES256'],
      issuer: ISS,
      audience: AUD,
      typ: 'at+jwt',
      clockTolerance: 30,
      requiredClaims: ['exp', 'iss', 'aud', 'sub', 'client_id', 'iat', 'jti'],
    };
    ctx.log('tokens');
    specs.push({
      id: 'auth.token_cached',
      label: 'authenticate, bearer token, cache hit',
      system: 'bulwark',
      n: n,
      fn: () => cached.authenticate(req),
    });
    specs.push({
      id: 'auth.token_full',
      label: 'authenticate, bearer token, cache off (ES256)',
      system: 'bulwark',
      n: n / 10,
      fn: () => uncached.authenticate(req),
    });
    specs.push({
      id: 'jose.verify',
      label: 'jose jwtVerify alone (ES256, same checks)',
      system: 'jose 6',
      n: n / 10,
      fn: () => jwtVerify(token, jwks, joseOpts),
    });

    // ---- DPoP (RFC 9449): the bound token from the cache, and one proof verified per request ----
    ctx.log('DPoP');
    const origin = 'https://gateway.bulwark.test:8443';
    const path = '/v2/models/fraud/infer';
    const dpopKey = await createDpopKey('ES256');
    const boundToken = await mint(
      key,
      goodClaims({ iss: ISS, aud: AUD, iat: now, exp: now + 3600, cnf: { jkt: dpopKey.jkt } }),
    );
    // A fixed clock: each proof is single-use, so they are all signed before timing, at this instant.
    const fixedMs = Date.now();
    const dpopAuth = await Authenticator.create(
      { jwt: { ...jwt, dpop: { origins: [origin], algorithms: ['ES256'] } } },
      { now: () => fixedMs },
    );
    const nDpop = n / 10;
    const proofs: string[] = [];
    // The warm-up, every timed call, and the one call per repeat that tells whether fn is async.
    for (let i = 0; i < Math.min(nDpop, 2000) + ctx.repeats * (nDpop + 1); i++)
      proofs.push(await dpopProof(dpopKey, 'POST', `${origin}${path}`, boundToken));
    let next = 0;
    let nextBare = 0;
    const dpopReq = (): AuthRequest => ({
      peerAuthorized: false,
      remoteAddress: '127.0.0.1',
      authorization: `DPoP ${boundToken}`,
      dpop: proofs[next++] as string,
      method: 'POST',
      url: path,
    });
    const bareOpts = { algorithms: ['ES256'], typ: 'dpop+jwt', currentDate: new Date(fixedMs) };
    specs.push({
      id: 'auth.dpop',
      label: 'authenticate, DPoP-bound token (cache hit) + proof check (ES256)',
      system: 'bulwark',
      n: nDpop,
      fn: () => dpopAuth.authenticate(dpopReq()),
    });
    specs.push({
      id: 'jose.verify_dpop',
      label: 'jose jwtVerify of the proof alone (EmbeddedJWK, ES256)',
      system: 'jose 6',
      n: nDpop,
      fn: () => jwtVerify(proofs[nextBare++ % proofs.length] as string, EmbeddedJWK, bareOpts),
    });

    // ---- mTLS ----
    ctx.log('mTLS');
    const ca = await makeCa();
    const leaf = await makeLeaf(ca, { uris: ['spiffe://bulwark.example/ns/acme/sa/scorer'] });
    const mtlsAuth = await Authenticator.create({
      require: 'certificate',
      mtls: {
        trustDomains: ['bulwark.example'],
        identities: [
          { spiffeId: 'spiffe://bulwark.example/ns/acme/*', tenant: 'acme', roles: ['predictor'] },
        ],
      },
    });
    const mreq: AuthRequest = {
      peerCertificate: leaf.cert,
      peerAuthorized: true,
      remoteAddress: '127.0.0.1',
    };
    specs.push({
      id: 'auth.mtls',
      label: 'authenticate, SPIFFE client certificate (memoised)',
      system: 'bulwark',
      n: n,
      fn: () => mtlsAuth.authenticate(mreq),
    });
    specs.push({
      id: 'auth.svid_parse',
      label: 'SVID parse and checks, uncached',
      system: 'bulwark',
      n: n / 10,
      fn: () => spiffeIdFromCertificate(leaf.cert),
    });

    // ---- Cedar ----
    ctx.log('Cedar');
    const policiesFile = join(REPO_ROOT, 'examples', 'gateway', 'policies.cedar');
    const schemaFile = join(REPO_ROOT, 'examples', 'gateway', 'bulwark.cedarschema');
    const authz = await Authorizer.create({
      files: [policiesFile],
      schemaFile,
      models: { fraud: { tenant: 'acme' } },
    });
    const authzWasm = await Authorizer.create({
      files: [policiesFile],
      schemaFile,
      models: { fraud: { tenant: 'acme' } },
      engine: 'cedar-wasm',
    });
    if (authz.engine !== 'compiled')
      throw new Error(`example policies should compile: ${authz.unsupportedReason}`);
    const principal = await cached.authenticate(req);
    const areq: AuthzRequest = {
      principal,
      action: 'predict',
      resource: { model: 'fraud', version: '3' },
      context: { time: now, clientAddress: '127.0.0.1', riskScore: 0.1234, queryCount: 17 },
    };
    const d = authz.authorize(areq);
    if (!d.allow) throw new Error(`bench request should be allowed: ${JSON.stringify(d)}`);
    specs.push({
      id: 'policy.authorize',
      label: 'Authorizer.authorize (pre-parsed, example policies)',
      system: 'bulwark',
      n: n,
      fn: () => authz.authorize(areq),
    });
    specs.push({
      id: 'policy.authorize_wasm',
      label: 'Authorizer.authorize, engine cedar-wasm (pre-parsed)',
      system: 'bulwark',
      n: n,
      fn: () => authzWasm.authorize(areq),
    });

    // The same request handed to cedar-wasm directly, the way a naive integration would.
    const policies = readFileSync(policiesFile, 'utf8');
    const schema = readFileSync(schemaFile, 'utf8');
    const uid = (type: string, id: string) => ({ type: `Bulwark::${type}`, id });
    const call: Omit<cedar.AuthorizationCall, 'policies' | 'schema' | 'validateRequest'> = {
      principal: uid('Client', principal.id),
      action: uid('Action', 'predict'),
      resource: uid('Model', 'fraud'),
      context: {
        time: now,
        clientAddress: { __extn: { fn: 'ip', arg: '127.0.0.1' } },
        riskScore: { __extn: { fn: 'decimal', arg: '0.1234' } },
        queryCount: 17,
      },
      entities: [
        {
          uid: uid('Client', principal.id),
          attrs: {
            tenant: 'acme',
            roles: ['predictor'],
            scopes: ['explain', 'predict'],
            sources: ['token'],
            subject: 'client-acme',
            issuer: ISS,
            clientId: 'client-acme',
          },
          parents: [],
        },
        { uid: uid('Model', 'fraud'), attrs: { name: 'fraud', version: '3', tenant: 'acme' }, parents: [] },
      ],
    };
    cedar.preparsePolicySet('bench-set', { staticPolicies: policies });
    cedar.preparseSchema('bench-schema', schema);
    const check = cedar.isAuthorized({
      ...call,
      policies: { staticPolicies: policies },
      schema,
      validateRequest: true,
    });
    if (check.type !== 'success' || check.response.decision !== 'allow')
      throw new Error('cedar baseline should allow');
    specs.push({
      id: 'cedar.stateless',
      label: 'cedar-wasm isAuthorized, policies+schema parsed per call',
      system: 'cedar-wasm 4.13',
      n: n / 20,
      fn: () =>
        cedar.isAuthorized({
          ...call,
          policies: { staticPolicies: policies },
          schema,
          validateRequest: true,
        }),
    });
    specs.push({
      id: 'cedar.stateful_validate',
      label: 'cedar-wasm statefulIsAuthorized with per-request schema validation',
      system: 'cedar-wasm 4.13',
      n: n / 4,
      fn: () =>
        cedar.statefulIsAuthorized({
          ...call,
          preparsedPolicySetId: 'bench-set',
          preparsedSchemaName: 'bench-schema',
          validateRequest: true,
        }),
    });
    cedar.preparsePolicySet('bench-trivial', { staticPolicies: 'permit (principal, action, resource);' });
    specs.push({
      id: 'cedar.floor',
      label: 'cedar-wasm floor: one-line policy, no entities, empty context',
      system: 'cedar-wasm 4.13',
      n: n,
      fn: () =>
        cedar.statefulIsAuthorized({
          principal: call.principal,
          action: call.action,
          resource: call.resource,
          context: {},
          entities: [],
          preparsedPolicySetId: 'bench-trivial',
        }),
    });

    ctx.log('timing (interleaved)');
    figures.push(...(await runInterleaved(ctx, specs)));
    return {
      figures,
      ratios: [
        { label: 'cached token vs bare jose verify', of: 'auth.token_cached', to: 'jose.verify' },
        { label: 'full token path vs bare jose verify', of: 'auth.token_full', to: 'jose.verify' },
        { label: 'DPoP request vs bare jose verify of its proof', of: 'auth.dpop', to: 'jose.verify_dpop' },
        { label: 'DPoP request vs cached bearer token', of: 'auth.dpop', to: 'auth.token_cached' },
        { label: 'memoised mTLS identity vs uncached SVID parse', of: 'auth.mtls', to: 'auth.svid_parse' },
        {
          label: 'authorize (compiled) vs authorize through cedar-wasm',
          of: 'policy.authorize',
          to: 'policy.authorize_wasm',
        },
        { label: 'authorize vs stateless isAuthorized', of: 'policy.authorize', to: 'cedar.stateless' },
        {
          label: 'authorize vs stateful call with request validation',
          of: 'policy.authorize',
          to: 'cedar.stateful_validate',
        },
        { label: 'authorize vs wasm call floor', of: 'policy.authorize', to: 'cedar.floor' },
      ],
      notes: [
        `${n} operations per timed loop (token/SVID/stateless figures use fewer), ${ctx.repeats} repeats, after a warm-up.`,
        'Token: ES256, local JWKS file, RFC 9068 claims; the full path includes the header screening and claim mapping.',
        'Cedar: the example policy set (6 policies) and schema from examples/gateway; context time, clientAddress (ipaddr), riskScore (decimal), queryCount.',
        "Authorizer.authorize builds the entities and context on every call and caches no decision; the compiled path evaluates closures compiled at load from the policies' Cedar JSON, the wasm engine calls statefulIsAuthorized with the pre-parsed set.",
      ],
    };
  },
};

export default bench;
