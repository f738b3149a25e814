/**
 * The set of inputs an attacker may produce: the valid range of every feature, the unit in which the
 * perturbation budget is measured, and, for tabular data, the schema's rules: integer fields, one-hot
 * groups of a categorical field (one 1; all zeros for an unknown category), and fields the attacker cannot change (a customer's
 * account age, a transaction's history). Attacks keep every iterate inside `domain ∩ eps-ball` and
 * return points that satisfy all the rules; {@link InputDomain.check} refuses clean inputs that do not.
 *
 * Budgets are measured in units of `scale`: an L-inf budget eps allows |x_j - x0_j| <= eps * scale_j, an
 * L2 budget ||(x - x0) / scale||_2 <= eps. Images use scale 1 (pixels in [0, 1]); tabular data the range
 * of each field, so eps = 0.05 means "at most 5 % of each field's range".
 *
 * Mutable one-hot groups are not charged to the eps budget: changing a category is a discrete choice the
 * attacker either can make (merchant category) or cannot (mark the field immutable). During gradient
 * steps a group is relaxed to [0, 1]; {@link InputDomain.repair} turns it back into one-hot by argmax.
 */
import { BulwarkError, invalidArgument, type Rng, requireInteger } from '../core/index.js';
import type { Schema } from '../data/index.js';

/** `inf` (L-infinity) or `2` (Euclidean) perturbation budgets. */
export type Norm = 'inf' | '2';
export const NORMS: readonly Norm[] = ['inf', '2'];

/** How to build an {@link InputDomain}. Per-feature values may be one number for all features. */
export interface InputDomainSpec {
  /** Number of features. */
  inputs: number;
  /** Lowest valid value of each feature (default -Infinity). */
  lower?: number | ArrayLike<number>;
  /** Highest valid value of each feature (default +Infinity). */
  upper?: number | ArrayLike<number>;
  /** Unit of the eps budget per feature (default 1); must be positive and finite. */
  scale?: number | ArrayLike<number>;
  /** Indices of features the attacker cannot change. */
  immutable?: readonly number[];
  /** Indices of integer-valued features. */
  integer?: readonly number[];
  /** One-hot groups: each a list of feature indices of which exactly one is 1. */
  categorical?: readonly (readonly number[])[];
  /** Feature names for messages (default `feature j`). */
  names?: readonly string[];
}

function perFeature(
  name: string,
  v: number | ArrayLike<number> | undefined,
  d: number,
  dflt: number,
): Float64Array {
  const out = new Float64Array(d);
  if (v === undefined) return out.fill(dflt);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) throw invalidArgument(name, 'a number', v);
    return out.fill(v);
  }
  if (v.length !== d) throw invalidArgument(name, `${d} values (one per feature)`, `${v.length} values`);
  for (let j = 0; j < d; j++) {
    const x = v[j] as number;
    if (typeof x !== 'number' || Number.isNaN(x)) throw invalidArgument(`${name}[${j}]`, 'a number', x);
    out[j] = x;
  }
  return out;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The float32 next to float32 `x` in the direction of `target` (x itself when they are equal). */
function f32Toward(x: number, target: number): number {
  if (x === target) return x;
  F32[0] = x;
  if (x === 0) U32[0] = target > 0 ? 1 : 0x80000001;
  else if (target > x === x > 0) U32[0] = (U32[0] as number) + 1;
  else U32[0] = (U32[0] as number) - 1;
  return F32[0] as number;
}

function indexList(name: string, v: readonly number[] | undefined, d: number): number[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalidArgument(name, 'a list of feature indices', v);
  return v.map((j, i) => requireInteger(`${name}[${i}]`, j, 0, d - 1));
}

/** The valid inputs of a model and the attacker's freedom within them (see the module comment). */
export class InputDomain {
  readonly inputs: number;
  readonly lower: Float64Array;
  readonly upper: Float64Array;
  readonly scale: Float64Array;
  /** 1 where the attacker may change the feature. */
  readonly mutable: Uint8Array;
  /** 1 for integer features. */
  readonly integer: Uint8Array;
  /** One-hot groups (feature indices). */
  readonly groups: readonly Int32Array[];
  /** Group index of each feature, or -1. */
  readonly groupOf: Int32Array;
  readonly names: readonly string[] | null;

  constructor(spec: InputDomainSpec) {
    const d = requireInteger('inputs', spec.inputs, 1);
    this.inputs = d;
    this.lower = perFeature('lower', spec.lower, d, -Infinity);
    this.upper = perFeature('upper', spec.upper, d, Infinity);
    this.scale = perFeature('scale', spec.scale, d, 1);
    for (let j = 0; j < d; j++) {
      if ((this.lower[j] as number) > (this.upper[j] as number)) {
        throw invalidArgument(`lower[${j}]`, `at most upper[${j}] (${this.upper[j]})`, this.lower[j]);
      }
      const s = this.scale[j] as number;
      if (!(s > 0) || !Number.isFinite(s))
        throw invalidArgument(`scale[${j}]`, 'a positive finite number', s);
    }
    this.mutable = new Uint8Array(d).fill(1);
    for (const j of indexList('immutable', spec.immutable, d)) this.mutable[j] = 0;
    this.integer = new Uint8Array(d);
    for (const j of indexList('integer', spec.integer, d)) this.integer[j] = 1;
    this.groupOf = new Int32Array(d).fill(-1);
    const groups: Int32Array[] = [];
    (spec.categorical ?? []).forEach((g, gi) => {
      const idx = indexList(`categorical[${gi}]`, g as number[], d);
      if (idx.length < 2)
        throw invalidArgument(`categorical[${gi}]`, 'a group of at least 2 one-hot features', idx);
      let mutable = -1;
      for (const j of idx) {
        if (this.groupOf[j] !== -1)
          throw invalidArgument(`categorical[${gi}]`, 'groups that do not overlap', j);
        if (this.integer[j])
          throw invalidArgument(`categorical[${gi}]`, 'features that are not also integer features', j);
        this.groupOf[j] = groups.length;
        const m = this.mutable[j] as number;
        if (mutable === -1) mutable = m;
        else if (mutable !== m) {
          throw invalidArgument(
            `categorical[${gi}]`,
            'a group whose features are all mutable or all immutable',
            j,
          );
        }
        this.lower[j] = Math.max(0, this.lower[j] as number);
        this.upper[j] = Math.min(1, this.upper[j] as number);
      }
      groups.push(Int32Array.from(idx));
    });
    this.groups = groups;
    if (spec.names !== undefined) {
      if (spec.names.length !== d) throw invalidArgument('names', `${d} names`, `${spec.names.length} names`);
      this.names = [...spec.names];
    } else this.names = null;
  }

  /** Pixels (or any features) in [lo, hi] with nothing else to respect. */
  static box(inputs: number, lo = 0, hi = 1): InputDomain {
    return new InputDomain({ inputs, lower: lo, upper: hi });
  }

  /** Whether any integer feature or mutable one-hot group needs {@link repair}. */
  get discrete(): boolean {
    if (this.integer.some((v, j) => v === 1 && this.mutable[j] === 1)) return true;
    return this.groups.some((g) => this.mutable[g[0] as number] === 1);
  }

  /** Number of features the attacker can change. */
  get mutableCount(): number {
    let n = 0;
    for (const m of this.mutable) n += m;
    return n;
  }

  featureName(j: number): string {
    return this.names?.[j] ?? `feature ${j}`;
  }

  /**
   * Throws `ERR_SCHEMA_MISMATCH` naming the row and feature of the first clean input outside the domain:
   * NaN/Infinity, out of range, a non-integer integer feature, a one-hot group that is not one-hot.
   */
  check(x: Float32Array, rows: number, what = 'input'): void {
    const d = this.inputs;
    if (x.length !== rows * d) {
      throw new BulwarkError(
        'ERR_SHAPE_MISMATCH',
        `${what}: ${x.length} values for ${rows} rows of ${d} features`,
      );
    }
    const fail = (r: number, j: number, why: string) =>
      new BulwarkError('ERR_SCHEMA_MISMATCH', `${what}: row ${r + 1}, ${this.featureName(j)}: ${why}`, {
        details: { row: r + 1, feature: this.featureName(j) },
      });
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) {
        const v = x[o + j] as number;
        if (!Number.isFinite(v)) throw fail(r, j, `${v} is not a finite number`);
        // Inputs are float32: a bound like 0.005 has no float32 of its own, and the value read from
        // the same "0.005" rounds to just below it. Compared at float32 precision, it is in range.
        if (v < Math.fround(this.lower[j] as number) || v > Math.fround(this.upper[j] as number)) {
          throw fail(r, j, `${v} is outside the valid range [${this.lower[j]}, ${this.upper[j]}]`);
        }
        if (this.integer[j] && !Number.isInteger(v)) throw fail(r, j, `${v} is not an integer`);
      }
      for (const g of this.groups) {
        let ones = 0;
        for (const j of g) {
          const v = x[o + j] as number;
          if (v !== 0 && v !== 1) throw fail(r, j, `one-hot value ${v} is neither 0 nor 1`);
          ones += v;
        }
        // All zeros is an unknown or missing category (the encoder's `ignore` mode); two ones is never valid.
        if (ones > 1) throw fail(r, g[0] as number, `its one-hot group has ${ones} ones, expected at most 1`);
      }
    }
  }

  /** Whether feature j is bound by the eps-ball (mutable and not in a one-hot group). */
  #inBall(j: number): boolean {
    return this.mutable[j] === 1 && this.groupOf[j] === -1;
  }

  /**
   * Projects `x` in place onto the eps-ball around `x0` (in scale units) intersected with the valid
   * range; immutable features are reset to x0. For L-inf the two boxes intersect in a box, so clipping
   * is the exact projection. For L2, scaling onto the ball and then clipping to the range never leaves
   * the ball (clipping moves each coordinate towards x0, which is in the range), so the result is
   * feasible (not always the exact Euclidean projection onto the intersection).
   */
  project(x: Float32Array, x0: Float32Array, rows: number, norm: Norm, eps: number): void {
    const d = this.inputs;
    const { lower, upper, scale } = this;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      if (norm === '2') {
        let sq = 0;
        for (let j = 0; j < d; j++) {
          if (!this.#inBall(j)) continue;
          const u = ((x[o + j] as number) - (x0[o + j] as number)) / (scale[j] as number);
          sq += u * u;
        }
        const n = Math.sqrt(sq);
        if (n > eps) {
          const f = eps / n;
          for (let j = 0; j < d; j++) {
            if (!this.#inBall(j)) continue;
            const a = x0[o + j] as number;
            x[o + j] = a + ((x[o + j] as number) - a) * f;
          }
        }
      }
      for (let j = 0; j < d; j++) {
        const a = x0[o + j] as number;
        if (this.mutable[j] === 0) {
          x[o + j] = a;
          continue;
        }
        let v = x[o + j] as number;
        if (norm === 'inf' && this.groupOf[j] === -1) {
          x[o + j] = this.clampLinf(j, a, v, eps);
          continue;
        }
        if (v > (upper[j] as number)) v = upper[j] as number;
        else if (v < (lower[j] as number)) v = lower[j] as number;
        x[o + j] = v;
      }
      if (norm === '2') this.#shrinkIntoBall(x, x0, o, eps);
    }
  }

  /**
   * `v` clamped to feature j's L-inf box around the clean value `a` (float32) and to the valid range, as
   * a float32 that is inside the ball: a + eps * scale rounded to the nearest float32 can land just
   * outside it, so a point the attack returns would be reported, and seen by anyone checking, as
   * farther than eps from the clean input. It is then moved one float32 step towards `a`.
   */
  clampLinf(j: number, a: number, v: number, eps: number): number {
    const s = this.scale[j] as number;
    const e = eps * s;
    let w = v;
    if (w > a + e) w = a + e;
    else if (w < a - e) w = a - e;
    if (w > (this.upper[j] as number)) w = this.upper[j] as number;
    else if (w < (this.lower[j] as number)) w = this.lower[j] as number;
    let r = Math.fround(w);
    // The same arithmetic as distance(): what it reports is what is guaranteed.
    while (Math.abs((r - a) / s) > eps) r = f32Toward(r, a);
    return r;
  }

  /**
   * After the L2 projection was stored in float32: rounding each coordinate may leave the row's norm a
   * hair above eps. Scales the row's step down until the float32 point is inside the ball (as measured
   * by distance()); towards x0 inside the range, so the range still holds.
   */
  #shrinkIntoBall(x: Float32Array, x0: Float32Array, o: number, eps: number): void {
    const d = this.inputs;
    const { scale } = this;
    for (let round = 0; round < 64; round++) {
      let sq = 0;
      for (let j = 0; j < d; j++) {
        if (!this.#inBall(j)) continue;
        const u = Math.abs(((x[o + j] as number) - (x0[o + j] as number)) / (scale[j] as number));
        sq += u * u;
      }
      const n = Math.sqrt(sq);
      if (!(n > eps)) return;
      const f = (eps / n) * (1 - 2 ** -20 * (round + 1));
      for (let j = 0; j < d; j++) {
        if (!this.#inBall(j)) continue;
        const a = x0[o + j] as number;
        x[o + j] = a + ((x[o + j] as number) - a) * f;
      }
    }
    // Never reached in practice; x0 itself is always feasible.
    for (let j = 0; j < d; j++) if (this.#inBall(j)) x[o + j] = x0[o + j] as number;
  }

  /**
   * The feasible L-inf box around each row of `x0` as explicit bounds, `rows x inputs` each: the eps-ball
   * (eps in scale units) intersected with the valid range; immutable features pinned to x0. Clamping to
   * it is {@link project} under L-inf for a domain without one-hot groups (what the ONNX Runtime PGD
   * engine applies inside its graph).
   */
  linfBox(x0: Float32Array, rows: number, eps: number): { lower: Float32Array; upper: Float32Array } {
    const d = this.inputs;
    const lower = new Float32Array(rows * d);
    const upper = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) {
        const a = x0[o + j] as number;
        if (this.mutable[j] === 0) {
          lower[o + j] = a;
          upper[o + j] = a;
          continue;
        }
        if (this.groupOf[j] !== -1) {
          lower[o + j] = this.lower[j] as number;
          upper[o + j] = this.upper[j] as number;
          continue;
        }
        // Rounded inwards (see clampLinf): float32 bounds that are inside the ball.
        lower[o + j] = this.clampLinf(j, a, -Infinity, eps);
        upper[o + j] = this.clampLinf(j, a, Infinity, eps);
      }
    }
    return { lower, upper };
  }

  /**
   * A random point of the feasible set around each row of `x0`: uniform in the L-inf box, or uniform in
   * the L2 ball (a Gaussian direction and radius eps * U^(1/d)), then projected; one-hot groups are left
   * at x0 (the gradient moves them).
   */
  randomStart(x0: Float32Array, rows: number, norm: Norm, eps: number, rng: Rng): Float32Array {
    const d = this.inputs;
    const x = x0.slice();
    let dBall = 0;
    for (let j = 0; j < d; j++) if (this.#inBall(j)) dBall++;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      if (norm === 'inf') {
        for (let j = 0; j < d; j++) {
          if (this.#inBall(j))
            x[o + j] = (x0[o + j] as number) + rng.uniform(-eps, eps) * (this.scale[j] as number);
        }
      } else if (dBall > 0) {
        const dir = new Float64Array(d);
        let sq = 0;
        for (let j = 0; j < d; j++) {
          if (!this.#inBall(j)) continue;
          const g = rng.normal();
          dir[j] = g;
          sq += g * g;
        }
        const radius = (eps * rng.nextFloat() ** (1 / dBall)) / (Math.sqrt(sq) || 1);
        for (let j = 0; j < d; j++) {
          if (this.#inBall(j))
            x[o + j] = (x0[o + j] as number) + (dir[j] as number) * radius * (this.scale[j] as number);
        }
      }
    }
    this.project(x, x0, rows, norm, eps);
    return x;
  }

  /**
   * A copy of `x` that satisfies every rule: integer features rounded (to the nearest integer inside the
   * L-inf box; towards x0 for L2, so the norm cannot grow), one-hot groups set to their largest entry.
   * `x` must already be projected.
   */
  repair(x: Float32Array, x0: Float32Array, rows: number, norm: Norm, eps: number): Float32Array {
    const out = x.slice();
    if (!this.discrete) return out;
    const d = this.inputs;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) {
        if (this.integer[j] === 0 || this.mutable[j] === 0) continue;
        const a = x0[o + j] as number;
        const v = out[o + j] as number;
        if (norm === 'inf') {
          const e = eps * (this.scale[j] as number);
          const lo = Math.ceil(Math.max(this.lower[j] as number, a - e));
          const hi = Math.floor(Math.min(this.upper[j] as number, a + e));
          out[o + j] = Math.min(hi, Math.max(lo, Math.round(v)));
        } else {
          out[o + j] = v >= a ? Math.floor(v) : Math.ceil(v);
        }
      }
      for (const g of this.groups) {
        if (this.mutable[g[0] as number] === 0) continue;
        let best = g[0] as number;
        for (const j of g) if ((out[o + j] as number) > (out[o + best] as number)) best = j;
        // A group with no positive entry has no category to pick: it keeps the one it started from
        // (all zeros for an unknown category, a valid input). Argmax would pick the group's first
        // category, so FGSM at eps 0 changed rows whose category was unknown.
        if (!((out[o + best] as number) > 0)) for (const j of g) out[o + j] = x0[o + j] as number;
        else for (const j of g) out[o + j] = j === best ? 1 : 0;
      }
    }
    return out;
  }

  /**
   * The perturbation size of each row in the budget's units: max_j |x - x0| / scale_j (inf) or the
   * scaled Euclidean norm (2), over features bound by the ball.
   */
  distance(x: Float32Array, x0: Float32Array, rows: number, norm: Norm): Float64Array {
    const d = this.inputs;
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let j = 0; j < d; j++) {
        if (!this.#inBall(j)) continue;
        const u = Math.abs(
          ((x[r * d + j] as number) - (x0[r * d + j] as number)) / (this.scale[j] as number),
        );
        acc = norm === 'inf' ? Math.max(acc, u) : acc + u * u;
      }
      out[r] = norm === 'inf' ? acc : Math.sqrt(acc);
    }
    return out;
  }
}

/** Options of {@link domainFromSchema}. */
export interface SchemaDomainOptions {
  /** Schema fields the attacker cannot change. */
  immutable?: readonly string[];
  /**
   * Unit of eps for features without declared bounds (default: 1). Features with bounds use their range
   * (max - min).
   */
  fallbackScale?: ArrayLike<number>;
}

/**
 * The input domain of a model whose features come from a schema through a preprocessing pipeline:
 * a feature named like a schema field takes its bounds (and `integer` type); features named
 * `field=category` (the one-hot encoder's names) form that field's one-hot group. Features the schema
 * does not describe are unbounded and continuous. Immutable fields must exist in the schema.
 */
export function domainFromSchema(
  schema: Schema,
  features: readonly string[],
  options: SchemaDomainOptions = {},
): InputDomain {
  const d = features.length;
  const byName = new Map(schema.fields.map((f) => [f.name, f]));
  const immutable = new Set(options.immutable ?? []);
  for (const n of immutable) {
    if (!byName.has(n))
      throw invalidArgument('immutable', `fields of the schema (${[...byName.keys()].join(', ')})`, n);
  }
  const lower = new Float64Array(d).fill(-Infinity);
  const upper = new Float64Array(d).fill(Infinity);
  const scale = new Float64Array(d).fill(1);
  if (options.fallbackScale !== undefined) {
    if (options.fallbackScale.length !== d)
      throw invalidArgument('fallbackScale', `${d} values`, options.fallbackScale.length);
    for (let j = 0; j < d; j++) {
      const s = options.fallbackScale[j] as number;
      scale[j] = s > 0 && Number.isFinite(s) ? s : 1;
    }
  }
  const integer: number[] = [];
  const immutableIdx: number[] = [];
  const groups = new Map<string, number[]>();
  features.forEach((name, j) => {
    const f = byName.get(name);
    if (f !== undefined && (f.type === 'number' || f.type === 'integer')) {
      if (f.bounds) {
        lower[j] = f.bounds.min;
        upper[j] = f.bounds.max;
        if (f.bounds.max > f.bounds.min) scale[j] = f.bounds.max - f.bounds.min;
      }
      if (f.type === 'integer') integer.push(j);
      if (immutable.has(name)) immutableIdx.push(j);
      return;
    }
    const eq = name.indexOf('=');
    if (eq > 0) {
      const field = name.slice(0, eq);
      const g = byName.get(field);
      if (g !== undefined && g.type === 'category') {
        const list = groups.get(field) ?? [];
        list.push(j);
        groups.set(field, list);
        if (immutable.has(field)) immutableIdx.push(j);
        return;
      }
    }
    if (immutable.has(name)) immutableIdx.push(j);
  });
  const categorical: number[][] = [];
  for (const [field, idx] of groups) {
    if (idx.length >= 2) categorical.push(idx);
    else {
      // A category with one observed value is a constant column: nothing to switch to.
      for (const j of idx) if (!immutable.has(field)) immutableIdx.push(j);
    }
  }
  return new InputDomain({
    inputs: d,
    lower,
    upper,
    scale,
    integer,
    immutable: immutableIdx,
    categorical,
    names: features,
  });
}

/** Options of {@link tabularDomain}. */
export interface TabularDomainOptions {
  /** Feature names (the preprocessing pipeline's output names). */
  features: readonly string[];
  /** Rows of the feature matrix the bounds and scales are taken from (training data). */
  x: Float32Array;
  rows: number;
  /** The data schema: declared bounds, integer fields, categories (recommended). */
  schema?: Schema;
  /** Input columns the attacker cannot change (their one-hot features too). */
  immutable?: readonly string[];
  /** Input columns that were one-hot encoded (features `column=value`). */
  categorical?: readonly string[];
}

/**
 * The input domain of a tabular model from its feature names and training matrix. With a schema, its
 * declared bounds and types rule ({@link domainFromSchema}); features it does not bound fall back to the
 * range observed in the data. Without one, every feature stays within the range observed in the data,
 * features whose observed values are all integers are integer, and the one-hot features of
 * `categorical` columns form groups. The budget unit is each feature's range when the schema bounds it,
 * else its standard deviation in the data.
 */
export function tabularDomain(o: TabularDomainOptions): InputDomain {
  const d = o.features.length;
  const rows = requireInteger('rows', o.rows, 1);
  if (o.x.length !== rows * d) throw invalidArgument('x', `${rows} rows of ${d} features`, o.x.length);
  const lo = new Float64Array(d).fill(Infinity);
  const hi = new Float64Array(d).fill(-Infinity);
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  const integral = new Uint8Array(d).fill(1);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) {
      const v = o.x[r * d + j] as number;
      if (v < (lo[j] as number)) lo[j] = v;
      if (v > (hi[j] as number)) hi[j] = v;
      mean[j] = (mean[j] as number) + v / rows;
      if (!Number.isInteger(v)) integral[j] = 0;
    }
  }
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < d; j++)
      sq[j] = (sq[j] as number) + ((o.x[r * d + j] as number) - (mean[j] as number)) ** 2;
  const std = Float64Array.from(sq, (s) => Math.sqrt(s / rows) || 1);
  const inputOf = (name: string): string => {
    const eq = name.indexOf('=');
    return eq > 0 && (o.categorical ?? []).includes(name.slice(0, eq)) ? name.slice(0, eq) : name;
  };
  // A misspelt immutable column would leave the field it meant to pin free for the attacker (with a
  // schema too: domainFromSchema only sees the names the schema declares).
  const inputs = new Set(o.features.map(inputOf));
  for (const n of o.immutable ?? [])
    if (!inputs.has(n))
      throw invalidArgument('immutable', `input columns of the model (${[...inputs].join(', ')})`, n);
  if (o.schema) {
    const base = domainFromSchema(o.schema, o.features, {
      immutable: (o.immutable ?? []).filter((n) => o.schema?.fields.some((f) => f.name === n)),
      fallbackScale: std,
    });
    // Features the schema leaves unbounded stay within the range observed in the data.
    const lower = Float64Array.from(base.lower, (v, j) => (Number.isFinite(v) ? v : (lo[j] as number)));
    const upper = Float64Array.from(base.upper, (v, j) => (Number.isFinite(v) ? v : (hi[j] as number)));
    const immutable: number[] = [];
    for (let j = 0; j < d; j++)
      if (!base.mutable[j] || (o.immutable ?? []).includes(inputOf(o.features[j] as string)))
        immutable.push(j);
    return new InputDomain({
      inputs: d,
      lower,
      upper,
      scale: base.scale,
      integer: Array.from(base.integer.keys()).filter((j) => base.integer[j] === 1),
      immutable,
      categorical: base.groups.map((g) => Array.from(g)),
      names: o.features,
    });
  }
  const groups = new Map<string, number[]>();
  const immutable: number[] = [];
  const integer: number[] = [];
  o.features.forEach((name, j) => {
    const input = inputOf(name);
    if (input !== name) {
      const g = groups.get(input) ?? [];
      g.push(j);
      groups.set(input, g);
    } else if (integral[j]) integer.push(j);
    if ((o.immutable ?? []).includes(input)) immutable.push(j);
  });
  const categorical: number[][] = [];
  for (const g of groups.values()) {
    if (g.length >= 2) categorical.push(g);
    else immutable.push(...g);
  }
  return new InputDomain({
    inputs: d,
    lower: lo,
    upper: hi,
    scale: std,
    integer,
    immutable: [...new Set(immutable)],
    categorical,
    names: o.features,
  });
}
