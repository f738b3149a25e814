import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';

/**
 * A compiled fast path for Cedar policies (the `Authorizer`'s hot path). cedar-wasm costs tens to hundreds
 * of microseconds per call, most of it moving JSON across the WebAssembly boundary (see
 * bench/results/gateway-auth.json), so the policy set is compiled once, at load, from Cedar's own JSON
 * form (EST, produced by cedar-wasm `policyToJson`) into JavaScript closures.
 *
 * The compiled path is deliberately partial and conservative: it covers the Cedar subset the gateway's
 * policies use (scope constraints, boolean logic, Long comparison and checked arithmetic, strings and
 * `like`, sets, records, `has`, `is`, `in` without entity hierarchy, `decimal` and IPv4 `ipaddr`), and
 * whenever it meets anything else — an unsupported construct at load, or at request time any evaluation
 * error, an IPv6 address, an overflow, an unknown entity — it throws {@link Fallback} and the request is
 * decided by cedar-wasm, which stays the authority. A differential test checks the two agree on
 * randomised requests. Semantics follow the Cedar language reference (docs.cedarpolicy.com, "Operators"
 * and "Extension types").
 */

/** "Not sure": the caller must ask cedar-wasm. Never a decision by itself. */
export class Fallback extends Error {}

export class Ent {
  constructor(
    readonly type: string,
    readonly id: string,
  ) {}
}
/** Cedar decimal as an integer count of 1e-4 (exact while within 2^53). */
export class Dec {
  constructor(readonly v: number) {}
}
/** IPv4 address or range (Cedar ipaddr); IPv6 always falls back. */
export class Ip {
  constructor(
    readonly addr: number,
    readonly prefix: number,
  ) {}
}
export class Rec {
  constructor(readonly m: ReadonlyMap<string, Val>) {}
}
/** Cedar values; a Set is a JS array (order and duplicates irrelevant). */
export type Val = boolean | number | string | Ent | Dec | Ip | Rec | Val[];

export interface Env {
  readonly principal: Ent;
  readonly action: Ent;
  readonly resource: Ent;
  readonly context: Rec;
  /** Attributes of the only entities in the store: the principal and the resource. */
  readonly attrs: ReadonlyMap<Ent, ReadonlyMap<string, Val>>;
}

type Fn = (env: Env) => Val;

export interface CompiledPolicy {
  readonly id: string;
  readonly effect: 'permit' | 'forbid';
  readonly matches: (env: Env) => boolean;
}

class Unsupported extends Error {}

const fallback = (): never => {
  throw new Fallback();
};

export function parseDecimal(s: string): Dec {
  const m = /^(-?)([0-9]+)\.([0-9]{1,4})$/.exec(s);
  if (m === null) return fallback();
  const v = Number(m[2]) * 10_000 + Number(m[3]!.padEnd(4, '0'));
  const signed = m[1] === '-' ? -v : v;
  if (!Number.isSafeInteger(signed)) return fallback();
  return new Dec(signed);
}

export function parseIp(s: string): Ip {
  const m =
    /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})(?:\/(0|[1-9][0-9]?))?$/.exec(
      s,
    );
  if (m === null) return fallback(); // IPv6, or anything Cedar should judge
  const o = [m[1], m[2], m[3], m[4]].map(Number);
  if (o.some((x) => x > 255)) return fallback();
  const prefix = m[5] === undefined ? 32 : Number(m[5]);
  if (prefix > 32) return fallback();
  return new Ip(((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0, prefix);
}

const mask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function eq(a: Val, b: Val): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Ent) return b instanceof Ent && a.type === b.type && a.id === b.id;
  if (a instanceof Dec) return b instanceof Dec && a.v === b.v;
  if (a instanceof Ip) return b instanceof Ip && a.addr === b.addr && a.prefix === b.prefix;
  if (Array.isArray(a)) {
    if (!Array.isArray(b)) return false;
    return a.every((x) => b.some((y) => eq(x, y))) && b.every((y) => a.some((x) => eq(x, y)));
  }
  if (a instanceof Rec) {
    if (!(b instanceof Rec) || a.m.size !== b.m.size) return false;
    for (const [k, v] of a.m) {
      const w = b.m.get(k);
      if (w === undefined || !eq(v, w)) return false;
    }
    return true;
  }
  return false;
}

const bool = (v: Val): boolean => (typeof v === 'boolean' ? v : fallback());
const long = (v: Val): number => (typeof v === 'number' ? v : fallback());
const str = (v: Val): string => (typeof v === 'string' ? v : fallback());
const set = (v: Val): Val[] => (Array.isArray(v) ? v : fallback());
const ent = (v: Val): Ent => (v instanceof Ent ? v : fallback());
const dec = (v: Val): Dec => (v instanceof Dec ? v : fallback());
const ip = (v: Val): Ip => (v instanceof Ip ? v : fallback());
const checked = (n: number): number => (Number.isSafeInteger(n) ? n : fallback());

/** `a in b`: equality, as the gateway's entities have no parents (action groups are refused at load). */
function inEntity(a: Val, b: Val): boolean {
  const l = ent(a);
  if (Array.isArray(b)) return b.some((x) => eq(l, ent(x)));
  return eq(l, ent(b));
}

function attrsOf(env: Env, v: Val): ReadonlyMap<string, Val> {
  if (v instanceof Rec) return v.m;
  if (v instanceof Ent) {
    for (const [e, attrs] of env.attrs) if (e.type === v.type && e.id === v.id) return attrs;
  }
  return fallback(); // another entity (not in the store) or a non-record: let Cedar decide
}

/** A literal Cedar JSON value (policy text constants). */
function literal(v: cedar.CedarValueJson): Val {
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Unsupported('integer literal beyond 2^53');
    return v;
  }
  if (v === null) throw new Unsupported('null literal');
  if (Array.isArray(v)) return v.map(literal);
  if (
    '__entity' in v &&
    typeof v.__entity === 'object' &&
    v.__entity !== null &&
    !Array.isArray(v.__entity)
  ) {
    const e = v.__entity as { type: string; id: string };
    return new Ent(e.type, e.id);
  }
  if ('__extn' in v) throw new Unsupported('extension literal');
  return new Rec(new Map(Object.entries(v).map(([k, x]) => [k, literal(x as cedar.CedarValueJson)])));
}

function compileExpr(e: cedar.Expr): Fn {
  const o = e as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 1) throw new Unsupported('expression shape');
  const k = keys[0]!;
  const a = o[k] as Record<string, unknown>;
  const bin = (f: (l: Val, r: Val) => Val): Fn => {
    const l = compileExpr(a['left'] as cedar.Expr);
    const r = compileExpr(a['right'] as cedar.Expr);
    return (env) => f(l(env), r(env));
  };
  switch (k) {
    case 'Value': {
      const v = literal(o[k] as cedar.CedarValueJson);
      return () => v;
    }
    case 'Var':
      switch (o[k]) {
        case 'principal':
          return (env) => env.principal;
        case 'action':
          return (env) => env.action;
        case 'resource':
          return (env) => env.resource;
        case 'context':
          return (env) => env.context;
        default:
          throw new Unsupported('variable');
      }
    case '!': {
      const x = compileExpr(a['arg'] as cedar.Expr);
      return (env) => !bool(x(env));
    }
    case 'neg': {
      const x = compileExpr(a['arg'] as cedar.Expr);
      return (env) => checked(-long(x(env)));
    }
    case '==':
      return bin((l, r) => eq(l, r));
    case '!=':
      return bin((l, r) => !eq(l, r));
    case '<':
      return bin((l, r) => long(l) < long(r));
    case '<=':
      return bin((l, r) => long(l) <= long(r));
    case '>':
      return bin((l, r) => long(l) > long(r));
    case '>=':
      return bin((l, r) => long(l) >= long(r));
    case '+':
      return bin((l, r) => checked(long(l) + long(r)));
    case '-':
      return bin((l, r) => checked(long(l) - long(r)));
    case '*':
      return bin((l, r) => checked(long(l) * long(r)));
    case '&&': {
      const l = compileExpr(a['left'] as cedar.Expr);
      const r = compileExpr(a['right'] as cedar.Expr);
      return (env) => bool(l(env)) && bool(r(env));
    }
    case '||': {
      const l = compileExpr(a['left'] as cedar.Expr);
      const r = compileExpr(a['right'] as cedar.Expr);
      return (env) => bool(l(env)) || bool(r(env));
    }
    case 'in':
      return bin(inEntity);
    case 'contains':
      return bin((l, r) => set(l).some((x) => eq(x, r)));
    case 'containsAll':
      return bin((l, r) => {
        const s = set(l);
        return set(r).every((y) => s.some((x) => eq(x, y)));
      });
    case 'containsAny':
      return bin((l, r) => {
        const s = set(l);
        return set(r).some((y) => s.some((x) => eq(x, y)));
      });
    case 'isEmpty': {
      const x = compileExpr(a['arg'] as cedar.Expr);
      return (env) => set(x(env)).length === 0;
    }
    case '.': {
      const x = compileExpr(a['left'] as cedar.Expr);
      const attr = a['attr'] as string;
      return (env) => {
        const v = attrsOf(env, x(env)).get(attr);
        return v === undefined ? fallback() : v;
      };
    }
    case 'has': {
      const x = compileExpr(a['left'] as cedar.Expr);
      const path = Array.isArray(a['attr']) ? (a['attr'] as string[]) : [a['attr'] as string];
      return (env) => {
        let cur: Val = x(env);
        for (const p of path) {
          const v = attrsOf(env, cur).get(p);
          if (v === undefined) return false;
          cur = v;
        }
        return true;
      };
    }
    case 'like': {
      const x = compileExpr(a['left'] as cedar.Expr);
      const pattern = a['pattern'] as cedar.PatternElem[];
      const src = pattern
        .map((p) => (p === 'Wildcard' ? '[\\s\\S]*' : p.Literal.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')))
        .join('');
      const re = new RegExp(`^${src}$`, 'u');
      return (env) => re.test(str(x(env)));
    }
    case 'is': {
      const x = compileExpr(a['left'] as cedar.Expr);
      const type = a['entity_type'] as string;
      const within = a['in'] === undefined ? undefined : compileExpr(a['in'] as cedar.Expr);
      return (env) => {
        const v = ent(x(env));
        return v.type === type && (within === undefined || inEntity(v, within(env)));
      };
    }
    case 'if-then-else': {
      const c = compileExpr(a['if'] as cedar.Expr);
      const t = compileExpr(a['then'] as cedar.Expr);
      const f = compileExpr(a['else'] as cedar.Expr);
      return (env) => (bool(c(env)) ? t(env) : f(env));
    }
    case 'Set': {
      const xs = (o[k] as cedar.Expr[]).map(compileExpr);
      return (env) => xs.map((x) => x(env));
    }
    case 'Record': {
      const entries = Object.entries(o[k] as Record<string, cedar.Expr>).map(
        ([n, x]) => [n, compileExpr(x)] as const,
      );
      return (env) => new Rec(new Map(entries.map(([n, x]) => [n, x(env)])));
    }
    default:
      return compileExtension(k, o[k]);
  }
}

function compileExtension(fn: string, rawArgs: unknown): Fn {
  if (!Array.isArray(rawArgs)) throw new Unsupported(`operator ${fn}`);
  const args = (rawArgs as cedar.Expr[]).map(compileExpr);
  const one = (f: (v: Val) => Val): Fn => {
    if (args.length !== 1) throw new Unsupported(`${fn} arity`);
    const x = args[0]!;
    return (env) => f(x(env));
  };
  const two = (f: (l: Val, r: Val) => Val): Fn => {
    if (args.length !== 2) throw new Unsupported(`${fn} arity`);
    const [l, r] = args as [Fn, Fn];
    return (env) => f(l(env), r(env));
  };
  switch (fn) {
    case 'decimal':
      return one((v) => parseDecimal(str(v)));
    case 'ip':
      return one((v) => parseIp(str(v)));
    case 'lessThan':
      return two((l, r) => dec(l).v < dec(r).v);
    case 'lessThanOrEqual':
      return two((l, r) => dec(l).v <= dec(r).v);
    case 'greaterThan':
      return two((l, r) => dec(l).v > dec(r).v);
    case 'greaterThanOrEqual':
      return two((l, r) => dec(l).v >= dec(r).v);
    case 'isIpv4':
      return one((v) => {
        ip(v);
        return true;
      });
    case 'isIpv6':
      return one((v) => {
        ip(v);
        return false;
      });
    case 'isLoopback':
      // Only single addresses are decided here; ranges go to Cedar.
      return one((v) => {
        const x = ip(v);
        return x.prefix === 32 ? x.addr >>> 24 === 127 : fallback();
      });
    case 'isMulticast':
      return one((v) => {
        const x = ip(v);
        return x.prefix === 32 ? x.addr >>> 28 === 0xe : fallback();
      });
    case 'isInRange':
      return two((l, r) => {
        const a = ip(l);
        const b = ip(r);
        const m = mask(b.prefix);
        return a.prefix >= b.prefix && (a.addr & m) >>> 0 === (b.addr & m) >>> 0;
      });
    default:
      throw new Unsupported(`function ${fn}`);
  }
}

function scopeEntity(c: { entity?: cedar.EntityUidJson; slot?: string }): Ent {
  if (c.slot !== undefined || c.entity === undefined) throw new Unsupported('template slot');
  const e = ('__entity' in c.entity ? c.entity.__entity : c.entity) as { type: string; id: string };
  return new Ent(e.type, e.id);
}

function compileScope(
  c: cedar.PrincipalConstraint | cedar.ActionConstraint,
  pick: (env: Env) => Ent,
): (env: Env) => boolean {
  switch (c.op) {
    case 'All':
      return () => true;
    case '==': {
      const e = scopeEntity(c as { entity?: cedar.EntityUidJson });
      return (env) => eq(pick(env), e);
    }
    case 'in': {
      if ('entities' in c) {
        const es = c.entities.map((x) => scopeEntity({ entity: x }));
        return (env) => es.some((e) => eq(pick(env), e));
      }
      const e = scopeEntity(c as { entity?: cedar.EntityUidJson });
      return (env) => eq(pick(env), e);
    }
    case 'is': {
      const c2 = c as cedar.PrincipalOrResourceIsConstraint;
      const within = c2.in === undefined ? undefined : scopeEntity(c2.in as { entity?: cedar.EntityUidJson });
      return (env) => {
        const v = pick(env);
        return v.type === c2.entity_type && (within === undefined || eq(v, within));
      };
    }
    default:
      throw new Unsupported('scope');
  }
}

/** Compiles one policy; throws `Unsupported` (caught by {@link compilePolicies}) for anything outside the subset. */
function compilePolicy(id: string, p: cedar.PolicyJson): CompiledPolicy {
  const principal = compileScope(p.principal, (env) => env.principal);
  const action = compileScope(p.action, (env) => env.action);
  const resource = compileScope(p.resource, (env) => env.resource);
  const conds = p.conditions.map((c) => {
    const body = compileExpr(c.body);
    return c.kind === 'when' ? (env: Env) => bool(body(env)) : (env: Env) => !bool(body(env));
  });
  return {
    id,
    effect: p.effect,
    matches: (env) => principal(env) && action(env) && resource(env) && conds.every((f) => f(env)),
  };
}

/**
 * The compiled set, or the reason it could not be compiled (then every request goes to cedar-wasm).
 * `actionGroups`: true when the schema puts actions in groups (`in` would need the hierarchy).
 */
export function compilePolicies(
  policies: ReadonlyMap<string, cedar.PolicyJson>,
  actionGroups: boolean,
): { policies: readonly CompiledPolicy[] } | { unsupported: string } {
  if (actionGroups) return { unsupported: 'the schema groups actions (memberOf)' };
  try {
    return { policies: [...policies].map(([id, p]) => compilePolicy(id, p)) };
  } catch (e) {
    if (e instanceof Unsupported) return { unsupported: e.message };
    throw e;
  }
}

/**
 * Evaluates the compiled set: allow iff some permit matches and no forbid does (Cedar's semantics, with
 * no errors: any error is a {@link Fallback}). Reasons sorted, as the wasm path reports them.
 */
export function evaluate(
  policies: readonly CompiledPolicy[],
  env: Env,
): { allow: boolean; reasons: string[] } {
  const permits: string[] = [];
  const forbids: string[] = [];
  for (const p of policies) {
    if (p.matches(env)) (p.effect === 'permit' ? permits : forbids).push(p.id);
  }
  if (forbids.length > 0) return { allow: false, reasons: forbids.sort() };
  return permits.length > 0 ? { allow: true, reasons: permits.sort() } : { allow: false, reasons: [] };
}
