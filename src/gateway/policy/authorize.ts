import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { BulwarkError, fsError, validateConfig } from '../../core/index.js';
import type { Principal } from '../auth/index.js';
import {
  type CompiledPolicy,
  compilePolicies,
  Ent,
  type Env,
  evaluate,
  Fallback,
  parseDecimal,
  parseIp,
  Rec,
  type Val,
} from './compiled.js';
import { type PolicyConfig, type PolicyConfigInput, policyConfigSchema } from './config.js';
import { ACTIONS, type Action, type AuthzRequest, type Decision } from './types.js';

/**
 * Authorisation with Cedar (cedar-policy.com; Cutler et al., "Cedar: A New Language for Expressive,
 * Fast, Safe, and Analyzable Authorization", OOPSLA 2024). Policies and schema are parsed and validated
 * once at load and kept pre-parsed inside the WebAssembly module (`preparsePolicySet`/`preparseSchema`);
 * per request only the two entities and the context are built. Deny by default; any engine failure
 * denies and is reported as `ERR_POLICY_ENGINE`.
 */

type ContextKind = 'Long' | 'String' | 'Boolean' | 'decimal' | 'ipaddr' | 'datetime' | 'duration';

interface Loaded {
  readonly policySetId: string;
  readonly schemaName: string | undefined;
  /** Per action: declared context attribute kinds (from the schema). */
  readonly contextKinds: ReadonlyMap<string, ReadonlyMap<string, ContextKind>> | undefined;
  /** Entity attributes the schema declares (the others are not sent: Cedar refuses undeclared ones). */
  readonly clientAttrs: ReadonlySet<string> | undefined;
  readonly modelAttrs: ReadonlySet<string> | undefined;
  readonly policyIds: readonly string[];
  /** The compiled fast path, or why the set is outside its subset. */
  readonly compiled: readonly CompiledPolicy[] | undefined;
  readonly unsupported: string | undefined;
  /** Whether a policy of this set reads `riskScore` or `queryCount` (see {@link Authorizer.readsDetectorContext}). */
  readonly readsDetectorContext: boolean;
}

/** The context keys only known after the detectors and the limiter (the pipeline evaluates such sets late). */
export const DETECTOR_CONTEXT = /\b(riskScore|queryCount)\b/;

let generation = 0;

function invalid(file: string, message: string, cause?: unknown): BulwarkError {
  return new BulwarkError('ERR_POLICY_INVALID', `${file}: ${message}`, {
    details: { file },
    ...(cause === undefined ? {} : { cause }),
  });
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw fsError(e, file, `cannot read ${what}`);
  }
}

function errorText(errors: readonly cedar.DetailedError[]): string {
  return errors.map((e) => e.message).join('; ');
}

/** Context attribute kinds per action from the schema (JSON with resolved types). */
function contextKinds(
  schema: cedar.SchemaJson<string>,
  namespace: string,
): Map<string, Map<string, ContextKind>> {
  const out = new Map<string, Map<string, ContextKind>>();
  const ns = schema[namespace];
  if (ns === undefined) return out;
  const resolve = (t: cedar.Type<string> | undefined): cedar.Type<string> | undefined => {
    if (t === undefined) return undefined;
    const name = (t as { type: string }).type;
    if (name === 'Record') return t;
    const local = name.startsWith(`${namespace}::`) ? name.slice(namespace.length + 2) : name;
    const common = ns.commonTypes?.[local];
    return common === undefined ? t : resolve(common);
  };
  for (const [action, def] of Object.entries(ns.actions)) {
    const ctx = resolve(def.appliesTo?.context);
    const kinds = new Map<string, ContextKind>();
    if (ctx !== undefined && (ctx as { type: string }).type === 'Record') {
      for (const [k, v] of Object.entries((ctx as cedar.RecordType<string>).attributes)) {
        const r = resolve(v) as { type: string; name?: string } | undefined;
        const kind = r?.type === 'Extension' ? r.name : r?.type;
        if (
          kind === 'Long' ||
          kind === 'String' ||
          kind === 'Boolean' ||
          kind === 'decimal' ||
          kind === 'ipaddr' ||
          kind === 'datetime' ||
          kind === 'duration'
        )
          kinds.set(k, kind);
      }
    }
    out.set(action, kinds);
  }
  return out;
}

/** What the gateway supplies per entity: attribute -> [type, always present]. */
const CLIENT_SUPPLY: Readonly<Record<string, readonly ['String' | 'Set<String>', boolean]>> = {
  tenant: ['String', false],
  roles: ['Set<String>', true],
  scopes: ['Set<String>', true],
  sources: ['Set<String>', true],
  spiffeId: ['String', false],
  subject: ['String', false],
  issuer: ['String', false],
  clientId: ['String', false],
};
const MODEL_SUPPLY: Readonly<Record<string, readonly ['String' | 'Set<String>', boolean]>> = {
  name: ['String', true],
  version: ['String', false],
  tenant: ['String', false],
};

/**
 * Checks the schema's Client and Model shapes against what the gateway supplies, so that no request can
 * fail Cedar's entity conformance check at run time (every request would then be a 503): an attribute
 * the gateway may omit must be optional, a supplied attribute must have the supplied type, and a required
 * attribute must be one the gateway always supplies. Returns the declared attribute names.
 */
function entityAttrs(
  schema: cedar.SchemaJson<string>,
  ns: string,
  type: 'Client' | 'Model',
  supply: Readonly<Record<string, readonly ['String' | 'Set<String>', boolean]>>,
  file: string,
): Set<string> {
  const def = schema[ns]?.entityTypes[type];
  if (def === undefined) throw invalid(file, `schema does not declare entity type ${ns}::${type}`);
  if ('enum' in def) throw invalid(file, `${ns}::${type} must not be an enumerated entity type`);
  const shape = def.shape as
    | { type?: string; attributes?: Record<string, cedar.TypeOfAttribute<string>> }
    | undefined;
  const attrs = shape?.attributes ?? {};
  for (const [name, t] of Object.entries(attrs)) {
    const required = t.required !== false;
    const want = supply[name];
    if (want === undefined) {
      if (required)
        throw invalid(file, `${ns}::${type}.${name} is required but the gateway never supplies it`);
      continue;
    }
    const tt = t as { type: string; element?: { type: string } };
    const kind = tt.type === 'Set' && tt.element?.type === 'String' ? 'Set<String>' : tt.type;
    if (kind !== want[0])
      throw invalid(file, `${ns}::${type}.${name} must have type ${want[0]} (found ${kind})`);
    if (required && !want[1])
      throw invalid(file, `${ns}::${type}.${name} must be optional (${name}?): not every request has it`);
  }
  return new Set(Object.keys(attrs));
}

/** Cedar decimal literal (4 fractional digits; RFC-free, Cedar spec §"decimal"). */
function decimalLiteral(n: number): string {
  const s = n.toFixed(4);
  return s === '-0.0000' ? '0.0000' : s;
}

function contextValue(
  key: string,
  v: string | number | boolean,
  kind: ContextKind | undefined,
): cedar.CedarValueJson {
  if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`context ${key} is not finite`);
  switch (kind) {
    case undefined:
      if (typeof v === 'number' && !Number.isInteger(v))
        return { __extn: { fn: 'decimal', arg: decimalLiteral(v) } };
      if (typeof v === 'number' && !Number.isSafeInteger(v))
        throw new Error(`context ${key} is out of range`);
      return v;
    case 'Long':
      if (typeof v !== 'number' || !Number.isSafeInteger(v))
        throw new Error(`context ${key} must be an integer`);
      return v;
    case 'decimal':
      if (typeof v !== 'number') throw new Error(`context ${key} must be a number`);
      return { __extn: { fn: 'decimal', arg: decimalLiteral(v) } };
    case 'ipaddr':
      if (typeof v !== 'string') throw new Error(`context ${key} must be an IP address string`);
      // Node reports IPv4 peers on dual-stack sockets as ::ffff:a.b.c.d; Cedar ranges are written in IPv4.
      return { __extn: { fn: 'ip', arg: v.startsWith('::ffff:') && v.includes('.') ? v.slice(7) : v } };
    case 'datetime':
      if (typeof v === 'number') return { __extn: { fn: 'datetime', arg: new Date(v * 1000).toISOString() } };
      return { __extn: { fn: 'datetime', arg: v } };
    case 'duration':
      if (typeof v !== 'number' || !Number.isSafeInteger(v))
        throw new Error(`context ${key} must be integer ms`);
      return { __extn: { fn: 'duration', arg: `${v}ms` } };
    case 'String':
      if (typeof v !== 'string') throw new Error(`context ${key} must be a string`);
      return v;
    case 'Boolean':
      if (typeof v !== 'boolean') throw new Error(`context ${key} must be a boolean`);
      return v;
  }
}

/**
 * The same conversion as {@link contextValue}, straight to compiled-path values (same checks, same
 * errors); extension values the compiled path cannot judge throw `Fallback`.
 */
function contextVal(key: string, v: string | number | boolean, kind: ContextKind | undefined): Val {
  switch (kind) {
    case undefined:
    case 'decimal':
    case 'Long':
    case 'String':
    case 'Boolean': {
      const asDecimal =
        typeof v === 'number' && (kind === 'decimal' || (kind === undefined && !Number.isInteger(v)));
      if (!asDecimal) {
        contextValue(key, v, kind); // the same checks (and errors) as the wasm path
        return v;
      }
      if (!Number.isFinite(v)) throw new Error(`context ${key} is not finite`);
      return parseDecimal(decimalLiteral(v));
    }
    case 'ipaddr':
      if (typeof v !== 'string') throw new Error(`context ${key} must be an IP address string`);
      return parseIp(v.startsWith('::ffff:') && v.includes('.') ? v.slice(7) : v);
    default:
      throw new Fallback();
  }
}

export class Authorizer {
  readonly #config: PolicyConfig;
  #loaded: Loaded;

  private constructor(config: PolicyConfig, loaded: Loaded) {
    this.#config = config;
    this.#loaded = loaded;
  }

  /** Loads, parses and validates the policies; refuses (`ERR_POLICY_INVALID`, naming the file) on any error. */
  static async create(config: PolicyConfigInput): Promise<Authorizer> {
    const c = validateConfig(config, policyConfigSchema, 'policy');
    return new Authorizer(c, await load(c));
  }

  /** Ids of the loaded policies, in file order. */
  get policyIds(): readonly string[] {
    return this.#loaded.policyIds;
  }

  /**
   * Re-reads and re-validates the policy files and schema. On any error the previous policies stay in
   * force and the error is thrown; on success the new set replaces the old atomically (the next
   * `authorize` uses it: nothing derived from the old set is cached).
   */
  async reload(): Promise<void> {
    this.#loaded = await load(this.#config);
  }

  /**
   * Whether the policies in force read `context.riskScore` or `context.queryCount`, which the pipeline
   * only knows after the detectors: it then evaluates Cedar after them. Decided from the very policy
   * set loaded (swapped with it by {@link reload}), not from a second read of the files: a flag from
   * another read could disagree with the set in force (files changed in between, or requests served
   * between the swap and the flag), and a risk `forbid` evaluated before the detectors never fires.
   */
  get readsDetectorContext(): boolean {
    return this.#loaded.readsDetectorContext;
  }

  /** `compiled` when requests are decided by the compiled fast path (with per-request fallback), else `cedar-wasm`. */
  get engine(): 'compiled' | 'cedar-wasm' {
    return this.#loaded.compiled === undefined ? 'cedar-wasm' : 'compiled';
  }

  /** Why the policy set is outside the compiled subset (when `engine` is `cedar-wasm` under `auto`). */
  get unsupportedReason(): string | undefined {
    return this.#loaded.unsupported;
  }

  /** Requests the compiled path handed to cedar-wasm because it was not sure (for metrics and tests). */
  get fallbacks(): number {
    return this.#fallbacks;
  }

  #fallbacks = 0;

  /** Deny by default; an engine error denies with `ERR_POLICY_ENGINE`. Synchronous: it is in the hot path. */
  authorize(req: AuthzRequest): Decision {
    const loaded = this.#loaded;
    const ns = this.#config.namespace;
    try {
      if (!(ACTIONS as readonly string[]).includes(req.action))
        throw new Error(`unknown action ${String(req.action)}`);
      const kinds = loaded.contextKinds?.get(req.action);
      if (loaded.compiled !== undefined) {
        try {
          const cm = new Map<string, Val>();
          for (const key of Object.keys(req.context)) {
            const kind = kinds?.get(key);
            if (kinds !== undefined && kind === undefined) continue;
            cm.set(key, contextVal(key, req.context[key]!, kind));
          }
          const principal = new Ent(`${ns}::Client`, req.principal.id);
          const resource = new Ent(`${ns}::Model`, req.resource.model);
          const env: Env = {
            principal,
            action: new Ent(`${ns}::Action`, req.action),
            resource,
            context: new Rec(cm),
            attrs: new Map([
              [principal, principalVals(req.principal, loaded.clientAttrs)],
              [resource, toRec(this.#resourceAttrs(req.resource, loaded.modelAttrs)).m],
            ]),
          };
          const r = evaluate(loaded.compiled, env);
          return r.allow
            ? { allow: true, reasons: r.reasons, errors: [] }
            : { allow: false, reasons: r.reasons, errors: [], code: 'ERR_POLICY_DENIED' };
        } catch (e) {
          if (!(e instanceof Fallback)) throw e;
          this.#fallbacks += 1;
        }
      }
      // No prototype: a context key named __proto__ must be an ordinary key here too.
      const context: Record<string, cedar.CedarValueJson> = Object.create(null);
      for (const key of Object.keys(req.context)) {
        const kind = kinds?.get(key);
        // With a schema, undeclared context keys are dropped rather than failing request validation: the
        // gateway may send more facts than a deployment's schema uses.
        if (kinds !== undefined && kind === undefined) continue;
        context[key] = contextValue(key, req.context[key]!, kind);
      }
      const pAttrs = principalAttrs(req.principal, loaded.clientAttrs);
      const rAttrs = this.#resourceAttrs(req.resource, loaded.modelAttrs);
      const principalUid = { type: `${ns}::Client`, id: req.principal.id };
      const resourceUid = { type: `${ns}::Model`, id: req.resource.model };
      const answer = cedar.statefulIsAuthorized({
        principal: principalUid,
        action: { type: `${ns}::Action`, id: req.action },
        resource: resourceUid,
        context,
        preparsedPolicySetId: loaded.policySetId,
        // The request is typed from the schema (context kinds above, entity attributes below), and the
        // policies were validated against it at load; per-request validation would double the cost (measured
        // in bench/results/gateway-auth.json). A type slip still cannot allow: any evaluation error denies.
        ...(loaded.schemaName === undefined
          ? {}
          : { preparsedSchemaName: loaded.schemaName, validateRequest: false }),
        entities: [
          { uid: principalUid, attrs: pAttrs, parents: [] },
          { uid: resourceUid, attrs: rAttrs, parents: [] },
        ],
      });
      if (answer.type === 'failure')
        return {
          allow: false,
          reasons: [],
          errors: answer.errors.map((e) => e.message),
          code: 'ERR_POLICY_ENGINE',
        };
      const { decision, diagnostics } = answer.response;
      const reasons = [...diagnostics.reason].sort();
      const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
      // Cedar skips a policy whose condition errors; a skipped forbid could turn into an allow, so any
      // evaluation error denies (fail closed) and is reported as an engine error.
      if (errors.length > 0) return { allow: false, reasons, errors, code: 'ERR_POLICY_ENGINE' };
      if (decision === 'allow') return { allow: true, reasons, errors };
      return { allow: false, reasons, errors, code: 'ERR_POLICY_DENIED' };
    } catch (e) {
      return {
        allow: false,
        reasons: [],
        errors: [e instanceof Error ? e.message : String(e)],
        code: 'ERR_POLICY_ENGINE',
      };
    }
  }

  #resourceAttrs(
    r: AuthzRequest['resource'],
    allowed: ReadonlySet<string> | undefined,
  ): Record<string, cedar.CedarValueJson> {
    const tenant = r.tenant ?? this.#config.models[r.model]?.tenant;
    const a: Record<string, cedar.CedarValueJson> = {};
    if (allowed === undefined || allowed.has('name')) a['name'] = r.model;
    if (r.version !== undefined && (allowed === undefined || allowed.has('version')))
      a['version'] = r.version;
    if (tenant !== undefined && (allowed === undefined || allowed.has('tenant'))) a['tenant'] = tenant;
    return a;
  }
}

/** Cedar JSON (as built for cedar-wasm) to compiled-path values; extension values it cannot judge fall back. */
function toVal(v: cedar.CedarValueJson): Val {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(toVal);
  if (v !== null && typeof v === 'object' && '__extn' in v) {
    const x = v.__extn as { fn: string; arg?: cedar.CedarValueJson };
    if (x.fn === 'decimal' && typeof x.arg === 'string') return parseDecimal(x.arg);
    if (x.fn === 'ip' && typeof x.arg === 'string') return parseIp(x.arg);
  }
  throw new Fallback();
}

function toRec(o: Record<string, cedar.CedarValueJson>): Rec {
  const m = new Map<string, Val>();
  for (const k of Object.keys(o)) m.set(k, toVal(o[k]!));
  return new Rec(m);
}

/**
 * The principal's attributes a policy may read, those the schema declares (all when `allowed` is
 * undefined), in one order for both evaluation paths; an attribute the principal lacks is left out.
 */
function eachPrincipalAttr(
  p: Principal,
  allowed: ReadonlySet<string> | undefined,
  put: (k: string, v: string | readonly string[]) => void,
): void {
  const all: Array<[string, string | readonly string[] | undefined]> = [
    ['roles', p.roles],
    ['scopes', p.scopes],
    ['sources', p.sources ?? []],
    ['tenant', p.tenant],
    ['spiffeId', p.spiffeId],
    ['subject', p.subject],
    ['issuer', p.issuer],
    ['clientId', p.clientId],
  ];
  for (const [k, v] of all) if (v !== undefined && (allowed === undefined || allowed.has(k))) put(k, v);
}

/** The principal's attributes as compiled-path values (the same attributes as {@link principalAttrs}). */
function principalVals(p: Principal, allowed: ReadonlySet<string> | undefined): Map<string, Val> {
  const m = new Map<string, Val>();
  eachPrincipalAttr(p, allowed, (k, v) => m.set(k, v as Val));
  return m;
}

/** The principal entity's attributes for cedar-wasm, limited to those the schema declares. */
function principalAttrs(
  p: Principal,
  allowed: ReadonlySet<string> | undefined,
): Record<string, cedar.CedarValueJson> {
  const a: Record<string, cedar.CedarValueJson> = {};
  eachPrincipalAttr(p, allowed, (k, v) => {
    a[k] = typeof v === 'string' ? v : [...v];
  });
  return a;
}

/** Turns a decision that is not an allow into the error the gateway reports (403 or 503). */
export function decisionError(d: Decision, action: Action): BulwarkError | undefined {
  if (d.allow) return undefined;
  if (d.code === 'ERR_POLICY_ENGINE')
    return new BulwarkError('ERR_POLICY_ENGINE', `policy engine failed; ${action} denied`, {
      details: { action },
    });
  return new BulwarkError(
    'ERR_POLICY_DENIED',
    d.reasons.length > 0
      ? `${action} forbidden by ${d.reasons.join(', ')}`
      : `${action} not permitted by any policy`,
    { details: { action } },
  );
}

async function load(c: PolicyConfig): Promise<Loaded> {
  try {
    return await loadUnchecked(c);
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    // cedar-wasm throws plain Errors on inputs it cannot deserialise.
    throw invalid(
      c.files.join(', '),
      `cannot be loaded: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`,
      e,
    );
  }
}

async function loadUnchecked(c: PolicyConfig): Promise<Loaded> {
  const policies: Record<string, string> = {};
  const jsons = new Map<string, cedar.PolicyJson>();
  const fileOf = new Map<string, string>();
  for (const file of c.files) {
    const text = await readText(file, 'policy file');
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') throw invalid(file, `does not parse: ${errorText(parts.errors)}`);
    if (parts.policy_templates.length > 0) throw invalid(file, 'policy templates are not supported');
    for (const [i, p] of parts.policies.entries()) {
      const json = cedar.policyToJson(p);
      if (json.type === 'failure')
        throw invalid(file, `policy ${i} does not parse: ${errorText(json.errors)}`);
      const id = json.json.annotations?.['id'] ?? `${basename(file)}:${i}`;
      if (id in policies) throw invalid(file, `policy id ${id} is also used in ${fileOf.get(id)}`);
      policies[id] = p;
      jsons.set(id, json.json);
      fileOf.set(id, file);
    }
  }
  if (Object.keys(policies).length === 0)
    throw invalid(c.files.join(', '), 'no policies: every request would be denied');

  let schemaText: string | undefined;
  let kinds: Map<string, Map<string, ContextKind>> | undefined;
  let actionGroups = false;
  let clientAttrs: Set<string> | undefined;
  let modelAttrs: Set<string> | undefined;
  if (c.schemaFile !== undefined) {
    const file = c.schemaFile;
    schemaText = await readText(file, 'Cedar schema');
    const isJson = file.endsWith('.json');
    let schemaJson: cedar.SchemaJson<string>;
    if (isJson) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(schemaText);
      } catch (e) {
        throw invalid(file, 'is not JSON', e);
      }
      const check = cedar.checkParseSchema(parsed as cedar.SchemaJson<string>);
      if (check.type === 'failure') throw invalid(file, `schema does not parse: ${errorText(check.errors)}`);
      const text = cedar.schemaToText(parsed as cedar.SchemaJson<string>);
      if (text.type === 'failure') throw invalid(file, `schema does not parse: ${errorText(text.errors)}`);
      schemaText = text.text;
    }
    const resolved = cedar.schemaToJsonWithResolvedTypes(schemaText);
    if (resolved.type === 'failure')
      throw invalid(file, `schema does not parse: ${errorText(resolved.errors)}`);
    schemaJson = resolved.json;
    if (schemaJson[c.namespace] === undefined) throw invalid(file, `schema has no namespace ${c.namespace}`);
    for (const a of ACTIONS) {
      if (schemaJson[c.namespace]!.actions[a] === undefined)
        throw invalid(file, `schema does not declare action ${a}`);
    }
    kinds = contextKinds(schemaJson, c.namespace);
    clientAttrs = entityAttrs(schemaJson, c.namespace, 'Client', CLIENT_SUPPLY, file);
    modelAttrs = entityAttrs(schemaJson, c.namespace, 'Model', MODEL_SUPPLY, file);
    actionGroups = Object.values(schemaJson[c.namespace]!.actions).some((a) => (a.memberOf?.length ?? 0) > 0);
    const v = cedar.validate({
      schema: schemaText,
      policies: { staticPolicies: policies },
      validationSettings: { mode: 'strict' },
    });
    if (v.type === 'failure') throw invalid(file, `validation failed: ${errorText(v.errors)}`);
    if (v.validationErrors.length > 0) {
      const first = v.validationErrors[0]!;
      const where = fileOf.get(first.policyId) ?? c.files[0]!;
      throw invalid(
        where,
        `policy ${first.policyId} does not validate against ${file}: ${v.validationErrors
          .map((e) => `${e.policyId}: ${e.error.message}`)
          .join('; ')}`,
      );
    }
  }

  generation += 1;
  const policySetId = `bulwark-policies-${generation}`;
  const pre = cedar.preparsePolicySet(policySetId, { staticPolicies: policies });
  if (pre.type === 'failure')
    throw invalid(c.files.join(', '), `policies do not parse: ${errorText(pre.errors)}`);
  let schemaName: string | undefined;
  if (schemaText !== undefined) {
    schemaName = `bulwark-schema-${generation}`;
    const s = cedar.preparseSchema(schemaName, schemaText);
    if (s.type === 'failure') throw invalid(c.schemaFile!, `schema does not parse: ${errorText(s.errors)}`);
  }
  const compiled =
    c.engine === 'auto' ? compilePolicies(jsons, actionGroups) : { unsupported: 'engine: cedar-wasm' };
  return {
    policySetId,
    schemaName,
    contextKinds: kinds,
    clientAttrs,
    modelAttrs,
    policyIds: Object.keys(policies),
    compiled: 'policies' in compiled ? compiled.policies : undefined,
    unsupported: 'unsupported' in compiled ? compiled.unsupported : undefined,
    readsDetectorContext: Object.values(policies).some((p) => DETECTOR_CONTEXT.test(p)),
  };
}
