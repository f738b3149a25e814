/**
 * Privacy accountants behind one interface and a registry (as Opacus's `create_accountant`): each keeps
 * the history of mechanisms run and answers "what ε has been spent, for this δ?".
 *
 * | name | analyses | guarantee reported |
 * |---|---|---|
 * | `basic` | ε-DP and (ε, δ)-DP events | Σε, Σδ (Dwork, McSherry, Nissim & Smith 2006) |
 * | `advanced` | ε-DP and (ε, δ)-DP events | min(basic, DRV10) |
 * | `rdp` | Gaussian (Poisson-subsampled), ε-DP, zCDP | RDP, then the Balle et al. 2020 or classic conversion |
 * | `pld` | Gaussian (Poisson-subsampled), ε-DP, (ε, δ)-DP | pessimistic PLD with FFT composition |
 *
 * Advanced composition is the theorem of Dwork, Rothblum & Vadhan (FOCS 2010, Thm III.3), stated for
 * heterogeneous mechanisms as in Dwork & Roth (2014, Thm 3.20, same proof): k mechanisms, the i-th
 * (ε_i, δ_i)-DP, compose to (ε', Σδ_i + δ')-DP with
 *   ε' = sqrt(2 ln(1/δ') Σ ε_i²) + Σ ε_i (e^{ε_i} − 1),
 * which for k identical mechanisms is ε sqrt(2k ln(1/δ')) + k ε (e^ε − 1). The k ε (e^ε − 1) term is not
 * optional (leaving it out under-reports), and for large ε the bound is worse than basic composition,
 * so the accountant reports the minimum of the two.
 */
import { invalidArgument } from '../../core/index.js';
import { requireCount, requireDelta } from '../params.js';
import { type ComposedEvent, checkEvent, describeEvent, type PrivacyEvent } from './events.js';
import { DEFAULT_DISCRETIZATION, epsilonDeltaPld, gaussianPld, PrivacyLossDistribution } from './pld.js';
import {
  OPACUS_ORDERS,
  type RdpConversion,
  type RdpSeries,
  rdpSubsampledGaussian,
  rdpToEpsilon,
} from './rdp-analysis.js';

/** A privacy accountant (see the module documentation for the registered ones). */
export interface Accountant {
  /** The name it is registered under. */
  readonly name: string;
  /** Whether this accountant can analyse the event. */
  supports(event: PrivacyEvent): boolean;
  /**
   * Records `count` (default 1) runs of `event`. Throws ERR_INVALID_ARGUMENT when the event is invalid
   * or of a kind this accountant cannot analyse (nothing is recorded then).
   */
  compose(event: PrivacyEvent, count?: number): this;
  /** The ε spent by everything composed so far, at total δ `delta` (Infinity when δ cannot be met). */
  getEpsilon(delta: number): number;
  /** What was composed, in order (consecutive identical events merged). */
  readonly history: readonly ComposedEvent[];
}

abstract class BaseAccountant implements Accountant {
  abstract readonly name: string;
  readonly #history: ComposedEvent[] = [];

  abstract supports(event: PrivacyEvent): boolean;
  abstract getEpsilon(delta: number): number;

  get history(): readonly ComposedEvent[] {
    return this.#history.map((h) => ({ ...h }));
  }

  compose(event: PrivacyEvent, count = 1): this {
    checkEvent(event);
    requireCount('count', count);
    if (!this.supports(event)) {
      throw invalidArgument(
        'event',
        `an event the ${this.name} accountant can analyse (${this.kinds()})`,
        describeEvent(event),
      );
    }
    const last = this.#history[this.#history.length - 1];
    // The history keeps its own frozen copies: a caller that reuses and then changes one event object
    // (a noise schedule) must not rewrite the steps already composed.
    if (last !== undefined && sameEvent(last.event, event)) {
      this.#history[this.#history.length - 1] = { event: last.event, count: last.count + count };
    } else this.#history.push({ event: Object.freeze({ ...event }), count });
    this.changed();
    return this;
  }

  /** Called after the history changed (caches are dropped). */
  protected changed(): void {}

  protected abstract kinds(): string;
}

function sameEvent(a: PrivacyEvent, b: PrivacyEvent): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.join() !== kb.join()) return false;
  return ka.every((k) => (a as Record<string, unknown>)[k] === (b as Record<string, unknown>)[k]);
}

function epsDeltaOf(e: PrivacyEvent): { epsilon: number; delta: number } {
  if (e.kind === 'pure') return { epsilon: e.epsilon, delta: 0 };
  if (e.kind === 'approx') return { epsilon: e.epsilon, delta: e.delta };
  throw invalidArgument('event', 'an ε-DP or (ε, δ)-DP event', describeEvent(e));
}

/** Basic (sequential) composition: ε and δ add up. */
export class BasicAccountant extends BaseAccountant {
  readonly name = 'basic';
  supports(e: PrivacyEvent): boolean {
    return e.kind === 'pure' || e.kind === 'approx';
  }
  protected kinds(): string {
    return 'ε-DP and (ε, δ)-DP events';
  }
  /** The totals (Σ count·ε, Σ count·δ). */
  totals(): { epsilon: number; delta: number } {
    let epsilon = 0;
    let delta = 0;
    for (const h of this.history) {
      const p = epsDeltaOf(h.event);
      epsilon += h.count * p.epsilon;
      delta += h.count * p.delta;
    }
    return { epsilon, delta };
  }
  getEpsilon(delta: number): number {
    requireDelta('delta', delta, { allowZero: true });
    const t = this.totals();
    return t.delta <= delta ? t.epsilon : Infinity;
  }
}

/**
 * The advanced composition bound (DRV10) for k identical (ε, δ)-DP mechanisms and slack δ':
 * (ε sqrt(2k ln(1/δ')) + kε(e^ε − 1), kδ + δ')-DP. This is the bound alone; {@link AdvancedAccountant}
 * reports min(this, basic).
 *
 * @example
 * ```ts
 * advancedComposition(0.1, 0, 100, 1e-5); // { epsilon: 5.850..., delta: 1e-5 } (basic: 10)
 * ```
 */
export function advancedComposition(
  epsilon: number,
  delta: number,
  k: number,
  deltaPrime: number,
): { epsilon: number; delta: number } {
  requireCount('k', k);
  requireDelta('deltaPrime', deltaPrime);
  requireDelta('delta', delta, { allowZero: true });
  if (!(epsilon > 0) || !Number.isFinite(epsilon))
    throw invalidArgument('epsilon', 'a finite epsilon > 0', epsilon);
  return {
    epsilon: epsilon * Math.sqrt(2 * k * Math.log(1 / deltaPrime)) + k * epsilon * Math.expm1(epsilon),
    delta: k * delta + deltaPrime,
  };
}

/** Advanced composition (DRV10, heterogeneous form), never worse than basic composition. */
export class AdvancedAccountant extends BaseAccountant {
  readonly name = 'advanced';
  supports(e: PrivacyEvent): boolean {
    return e.kind === 'pure' || e.kind === 'approx';
  }
  protected kinds(): string {
    return 'ε-DP and (ε, δ)-DP events';
  }
  getEpsilon(delta: number): number {
    requireDelta('delta', delta, { allowZero: true });
    let basicEps = 0;
    let deltaSum = 0;
    let sumSq = 0;
    let sumExp = 0;
    for (const h of this.history) {
      const p = epsDeltaOf(h.event);
      basicEps += h.count * p.epsilon;
      deltaSum += h.count * p.delta;
      sumSq += h.count * p.epsilon * p.epsilon;
      sumExp += h.count * p.epsilon * Math.expm1(p.epsilon);
    }
    if (deltaSum > delta) return Infinity;
    const slack = delta - deltaSum;
    if (!(slack > 0)) return basicEps;
    const adv = Math.sqrt(2 * Math.log(1 / slack) * sumSq) + sumExp;
    return Math.min(basicEps, adv);
  }
}

/** Options of {@link RdpAccountant}. */
export interface RdpAccountantOptions {
  /** RDP orders α > 1 to optimise over (default Opacus 1.4's). */
  orders?: readonly number[];
  /** RDP → (ε, δ) conversion (default `balle2020`, as Opacus 1.4 and dp_accounting). */
  conversion?: RdpConversion;
  /** Summation of the fractional-order series (default `opacus`; see {@link RdpSeries}). */
  series?: RdpSeries;
}

/**
 * Rényi DP accounting (Mironov 2017): RDP curves add up under composition; ε(δ) is read off at the best
 * order. Gaussian events use the subsampled-Gaussian analysis of Mironov, Talwar & Zhang 2019; an ε-DP
 * event has RDP min(ε, αε²/2) (Bun & Steinke 2016, Prop. 1.4, and D_α <= D_∞); a ρ-zCDP event αρ.
 */
export class RdpAccountant extends BaseAccountant {
  readonly name = 'rdp';
  readonly orders: readonly number[];
  readonly conversion: RdpConversion;
  readonly series: RdpSeries;

  constructor(options: RdpAccountantOptions = {}) {
    super();
    const orders = options.orders ?? OPACUS_ORDERS;
    if (!Array.isArray(orders) || orders.length === 0)
      throw invalidArgument('orders', 'a non-empty array', orders);
    orders.forEach((a, i) => {
      if (typeof a !== 'number' || !(a > 1) || !Number.isFinite(a))
        throw invalidArgument(`orders[${i}]`, 'a finite order > 1', a);
    });
    this.orders = [...orders];
    const c = options.conversion ?? 'balle2020';
    if (c !== 'balle2020' && c !== 'classic') throw invalidArgument('conversion', 'balle2020 or classic', c);
    this.conversion = c;
    const series = options.series ?? 'opacus';
    if (series !== 'opacus' && series !== 'dp-accounting')
      throw invalidArgument('series', 'opacus or dp-accounting', series);
    this.series = series;
  }

  supports(e: PrivacyEvent): boolean {
    return e.kind === 'gaussian' || e.kind === 'pure' || e.kind === 'zcdp';
  }
  protected kinds(): string {
    return 'Gaussian, ε-DP and zCDP events';
  }

  /** The RDP curve of the history at every order. */
  rdp(): Float64Array {
    const total = new Float64Array(this.orders.length);
    for (const h of this.history) {
      const e = h.event;
      let curve: Float64Array;
      if (e.kind === 'gaussian')
        curve = rdpSubsampledGaussian(
          e.samplingRate ?? 1,
          e.noiseMultiplier,
          h.count,
          this.orders,
          this.series,
        );
      else if (e.kind === 'pure')
        curve = Float64Array.from(
          this.orders,
          (a) => h.count * Math.min(e.epsilon, (a * e.epsilon * e.epsilon) / 2),
        );
      else if (e.kind === 'zcdp') curve = Float64Array.from(this.orders, (a) => h.count * a * e.rho);
      else throw invalidArgument('event', 'an event the rdp accountant can analyse', describeEvent(e));
      for (let i = 0; i < total.length; i++) total[i] = (total[i] as number) + (curve[i] as number);
    }
    return total;
  }

  /** ε at δ and the order reaching it, with this accountant's conversion (or the one given). */
  getPrivacySpent(
    delta: number,
    conversion: RdpConversion = this.conversion,
  ): { epsilon: number; order: number } {
    requireDelta('delta', delta);
    if (this.history.length === 0) return { epsilon: 0, order: Number.NaN };
    return rdpToEpsilon(this.orders, this.rdp(), delta, conversion);
  }

  getEpsilon(delta: number): number {
    return this.getPrivacySpent(delta).epsilon;
  }
}

/** Options of {@link PldAccountant}. */
export interface PldAccountantOptions {
  /** Grid width of the privacy loss (default 1e-4, as dp_accounting); coarser is faster and looser. */
  discretization?: number;
}

/**
 * Privacy loss distribution accounting (pessimistic discretisation, FFT composition), as Google's
 * dp_accounting `PLDAccountant`: the tightest numbers here for DP-SGD. The PLD is built when first asked
 * for, then kept until the history changes.
 */
export class PldAccountant extends BaseAccountant {
  readonly name = 'pld';
  readonly discretization: number;
  #pld: PrivacyLossDistribution | null = null;

  constructor(options: PldAccountantOptions = {}) {
    super();
    const d = options.discretization ?? DEFAULT_DISCRETIZATION;
    if (typeof d !== 'number' || !(d > 0) || d > 0.1)
      throw invalidArgument('discretization', 'a number in (0, 0.1]', d);
    this.discretization = d;
  }

  supports(e: PrivacyEvent): boolean {
    return e.kind === 'gaussian' || e.kind === 'pure' || e.kind === 'approx';
  }
  protected kinds(): string {
    return 'Gaussian, ε-DP and (ε, δ)-DP events';
  }
  protected override changed(): void {
    this.#pld = null;
  }

  /** The composed privacy loss distribution. */
  pld(): PrivacyLossDistribution {
    if (this.#pld !== null) return this.#pld;
    let pld = PrivacyLossDistribution.identity(this.discretization);
    for (const h of this.history) {
      const e = h.event;
      let one: PrivacyLossDistribution;
      if (e.kind === 'gaussian') {
        const q = e.samplingRate ?? 1;
        // Without subsampling, k Gaussian steps are one Gaussian with σ/√k (as dp_accounting does).
        one =
          q === 1
            ? gaussianPld({
                sigma: e.noiseMultiplier / Math.sqrt(h.count),
                discretization: this.discretization,
              })
            : gaussianPld({
                sigma: e.noiseMultiplier,
                samplingRate: q,
                discretization: this.discretization,
              }).selfCompose(h.count);
      } else if (e.kind === 'pure')
        one = epsilonDeltaPld(e.epsilon, 0, this.discretization).selfCompose(h.count);
      else if (e.kind === 'approx')
        one = epsilonDeltaPld(e.epsilon, e.delta, this.discretization).selfCompose(h.count);
      else throw invalidArgument('event', 'an event the pld accountant can analyse', describeEvent(e));
      pld = pld.compose(one);
    }
    this.#pld = pld;
    return pld;
  }

  getEpsilon(delta: number): number {
    requireDelta('delta', delta);
    if (this.history.length === 0) return 0;
    return this.pld().epsilonForDelta(delta);
  }

  /** The δ at which the history is ε-DP (the hockey-stick divergence). */
  getDelta(epsilon: number): number {
    if (this.history.length === 0) return 0;
    return this.pld().deltaForEpsilon(epsilon);
  }
}

/** Options accepted by {@link createAccountant} (each accountant reads its own). */
export type AccountantOptions = RdpAccountantOptions & PldAccountantOptions;

const registry = new Map<string, (options: AccountantOptions) => Accountant>([
  ['basic', () => new BasicAccountant()],
  ['advanced', () => new AdvancedAccountant()],
  ['rdp', (o) => new RdpAccountant(o)],
  ['pld', (o) => new PldAccountant(o)],
]);

/** The built-in accountant names. */
export type AccountantName = 'basic' | 'advanced' | 'rdp' | 'pld';

/**
 * A new accountant by name (`basic`, `advanced`, `rdp`, `pld`, or one registered).
 *
 * @example
 * ```ts
 * const acc = createAccountant('rdp').compose({ kind: 'gaussian', noiseMultiplier: 1.1, samplingRate: 256 / 60000 }, 3515);
 * acc.getEpsilon(1e-5); // 1.2811...
 * ```
 */
export function createAccountant(name: string, options: AccountantOptions = {}): Accountant {
  const f = registry.get(name);
  if (f === undefined) throw invalidArgument('accountant', `one of ${accountantNames().join(', ')}`, name);
  return f(options);
}

/** Adds an accountant to the registry (a name may be registered once). */
export function registerAccountant(name: string, factory: (options: AccountantOptions) => Accountant): void {
  if (typeof name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(name))
    throw invalidArgument('name', 'a lower-case accountant name', name);
  if (registry.has(name)) throw invalidArgument('name', 'a name not yet registered', name);
  registry.set(name, factory);
}

/** The registered accountant names, sorted. */
export function accountantNames(): string[] {
  return [...registry.keys()].sort();
}
