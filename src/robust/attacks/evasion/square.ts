/**
 * The Square attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
 * black-box adversarial attack via random search", ECCV 2020), L-infinity version: it needs only the
 * model's output probabilities, so it runs against any ONNX model through ONNX Runtime.
 *
 * Start from vertical stripes of +-eps (images) or random +-eps per feature (tabular); then, for each
 * row still correctly classified, propose to set a random square window (side sqrt(p * features / c)) of
 * every channel to one random +-eps, and keep the proposal when the margin loss
 * log p_y - max_{j != y} log p_j (equal to the logit margin) decreases. p follows the paper's schedule,
 * halving at fixed fractions of the query budget. On tabular data (no image shape) the "square" is a
 * random subset of round(p * d) mutable features, each set to a random +-eps. Integer features are
 * repaired after each proposal; one-hot groups are left unchanged (random search has no gradient to
 * choose a category with).
 *
 * With a synchronous model (a Bulwark network, not ONNX Runtime) no query ever waits, so the whole
 * search ran in one turn of the event loop (seconds, SIGTERM waiting for it): it gives the loop a turn
 * between queries when one is due ({@link EventLoopTurns}); the random search is the same.
 */
import {
  BulwarkError,
  invalidArgument,
  type Rng,
  requireInteger,
  requireNumberIn,
  rngOf,
} from '../../../core/index.js';
import { EventLoopTurns } from '../../../ml/index.js';
import { attackSucceeded } from '../../losses.js';
import { argmaxRows, type ProbabilityModel } from '../../model.js';
import { checkBase, type EvasionBase, type EvasionResult, rate, takeLabels, takeRows } from './common.js';

/** Options of {@link square}. */
export interface SquareOptions extends Omit<EvasionBase, 'norm'> {
  /** Query budget per row, including the initial query (default 1000). */
  queries?: number;
  /** Initial fraction of features changed per proposal (default 0.05; the paper uses 0.05-0.3). */
  pInit?: number;
  /** Image layout, to draw square windows: height x width x channels, channels last. */
  image?: { height: number; width: number; channels?: number };
  seed?: number | Rng;
  /** Called after each iteration with the queries used so far and the share of rows fooled. */
  onProgress?: (queriesUsed: number, budget: number, fooled: number) => void;
}

/** The paper's schedule for p (reference implementation's `p_selection`), for a budget of `n` queries. */
export function squareP(pInit: number, it: number, n: number): number {
  const i = Math.floor((it / n) * 10000);
  if (i <= 10) return pInit;
  const cuts = [50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let div = 2;
  for (const c of cuts) {
    if (i <= c) return pInit / div;
    div *= 2;
  }
  return pInit / div;
}

/** Margin log p_y - max_{j != y} log p_j (targeted: the opposite, with y the target). */
function margins(p: Float32Array, y: Int32Array, rows: number, k: number, targeted: boolean): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const t = y[r] as number;
    let other = -Infinity;
    for (let j = 0; j < k; j++) if (j !== t) other = Math.max(other, p[r * k + j] as number);
    const m = Math.log(Math.max(p[r * k + t] as number, 1e-30)) - Math.log(Math.max(other, 1e-30));
    out[r] = targeted ? -m : m;
  }
  return out;
}

/**
 * Square attack (black-box, L-inf). `y` are the true labels (null: the model's predictions, one more
 * query). Rows stop using queries once fooled.
 *
 * @example
 * ```ts
 * const m = onnxRuntimeModel(await OnnxRuntimeModel.create(bytes), { inputs: 784, classes: 10 });
 * const r = await square(m, x, y, rows, { eps: 0.1, queries: 1000, image: { height: 28, width: 28 } });
 * ```
 */
export async function square(
  model: ProbabilityModel,
  x: Float32Array,
  y: ArrayLike<number> | null,
  rows: number,
  options: SquareOptions,
): Promise<EvasionResult> {
  const k = model.classes;
  const d = model.inputs;
  // Every parameter is checked before the first query: the model's own predictions (y null) are asked
  // for only once the data and the options are known to be valid.
  // The type has no norm, but a caller passing one must not get an L-inf attack reported as theirs.
  const askedNorm = (options as { norm?: unknown }).norm;
  if (askedNorm !== undefined && askedNorm !== 'inf')
    throw invalidArgument('norm', "'inf' (the Square attack is L-inf only)", askedNorm);
  let predict = false;
  const base = checkBase(model, x, y, rows, { ...options, norm: 'inf' }, () => {
    predict = true;
    return new Int32Array(rows);
  });
  const budget = requireInteger('queries', options.queries ?? 1000, 1);
  const pInit = requireNumberIn('pInit', options.pInit ?? 0.05, 0, 1, { minExclusive: true });
  const rng = rngOf(options.seed);
  const { eps, domain, targeted } = base;
  let h = 1;
  let w = d;
  let c = 1;
  if (options.image !== undefined) {
    h = requireInteger('image.height', options.image.height, 1);
    w = requireInteger('image.width', options.image.width, 1);
    c = requireInteger('image.channels', options.image.channels ?? 1, 1);
    if (h * w * c !== d) {
      throw invalidArgument('image', `a shape with ${d} values (the model's inputs)`, `${h}x${w}x${c}`);
    }
  }
  const mutable: number[] = [];
  for (let j = 0; j < d; j++) if (domain.mutable[j] && domain.groupOf[j] === -1) mutable.push(j);
  if (mutable.length === 0 && eps > 0) {
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      'square: the domain leaves no feature the attack may change',
    );
  }
  const scale = domain.scale;
  let labels = base.labels;
  if (predict) {
    const p = await model.predictProba(x, rows);
    labels = argmaxRows(p, rows, k);
  }
  const clampTo = (x0: Float32Array, r: number, j: number, v: number): number =>
    domain.clampLinf(j, x0[r * d + j] as number, v, eps);
  // Initial query (clean): rows already fooled are done.
  let used = 1;
  const turns = new EventLoopTurns();
  const p0 = await model.predictProba(x, rows);
  const success = attackSucceeded(p0, labels, rows, k, targeted);
  const out = x.slice();
  if (eps === 0 || budget === 1) {
    return {
      x: out,
      rows,
      success,
      successRate: rate(success),
      distance: domain.distance(out, x, rows, 'inf'),
      queries: used,
    };
  }
  let active: number[] = [];
  for (let r = 0; r < rows; r++) if (!success[r]) active.push(r);
  // Initialisation: stripes (images) or random signs, then one query.
  let x0: Float32Array = takeRows(x, d, active);
  let lab = takeLabels(labels, active);
  let cur: Float32Array = x0.slice();
  for (let i = 0; i < active.length; i++) {
    if (options.image !== undefined) {
      for (let col = 0; col < w; col++) {
        for (let ch = 0; ch < c; ch++) {
          const s = rng.nextFloat() < 0.5 ? -eps : eps;
          for (let row = 0; row < h; row++) {
            const j = (row * w + col) * c + ch;
            if (domain.mutable[j] && domain.groupOf[j] === -1)
              cur[i * d + j] = clampTo(x0, i, j, (x0[i * d + j] as number) + s * (scale[j] as number));
          }
        }
      }
    } else {
      for (const j of mutable) {
        const s = rng.nextFloat() < 0.5 ? -eps : eps;
        cur[i * d + j] = clampTo(x0, i, j, (x0[i * d + j] as number) + s * (scale[j] as number));
      }
    }
  }
  cur = domain.repair(cur, x0, active.length, 'inf', eps);
  let pr: Float32Array =
    active.length > 0 ? await model.predictProba(cur, active.length) : new Float32Array(0);
  used++;
  let marg = margins(pr, lab, active.length, k, targeted);
  const finish = (i: number) => {
    const r = active[i] as number;
    out.set(cur.subarray(i * d, (i + 1) * d), r * d);
  };
  const compact = () => {
    const keep: number[] = [];
    for (let i = 0; i < active.length; i++) {
      finish(i);
      if ((marg[i] as number) < 0) success[active[i] as number] = 1;
      else keep.push(i);
    }
    active = keep.map((i) => active[i] as number);
    x0 = takeRows(x0, d, keep);
    lab = takeLabels(lab, keep);
    cur = takeRows(cur, d, keep);
    marg = Float64Array.from(keep, (i) => marg[i] as number);
  };
  compact();
  for (let it = 1; used < budget && active.length > 0; it++) {
    const n = active.length;
    const p = squareP(pInit, it - 1, budget);
    const prop = cur.slice();
    for (let i = 0; i < n; i++) {
      if (options.image !== undefined) {
        const side = Math.min(Math.max(Math.round(Math.sqrt((p * d) / c)), 1), Math.max(1, h - 1));
        const sideW = Math.min(side, Math.max(1, w - 1));
        const vh = rng.int(h - side + 1);
        const vw = rng.int(w - sideW + 1);
        for (let ch = 0; ch < c; ch++) {
          const s = rng.nextFloat() < 0.5 ? -eps : eps;
          for (let row = vh; row < vh + side; row++) {
            for (let col = vw; col < vw + sideW; col++) {
              const j = (row * w + col) * c + ch;
              if (domain.mutable[j] && domain.groupOf[j] === -1)
                prop[i * d + j] = clampTo(x0, i, j, (x0[i * d + j] as number) + s * (scale[j] as number));
            }
          }
        }
      } else {
        const m = Math.max(1, Math.round(p * mutable.length));
        for (let t = 0; t < m; t++) {
          const j = mutable[rng.int(mutable.length)] as number;
          const s = rng.nextFloat() < 0.5 ? -eps : eps;
          prop[i * d + j] = clampTo(x0, i, j, (x0[i * d + j] as number) + s * (scale[j] as number));
        }
      }
    }
    const repaired = domain.repair(prop, x0, n, 'inf', eps);
    if (turns.due()) await turns.turn();
    pr = await model.predictProba(repaired, n);
    used++;
    const mNew = margins(pr, lab, n, k, targeted);
    for (let i = 0; i < n; i++) {
      if ((mNew[i] as number) < (marg[i] as number)) {
        marg[i] = mNew[i] as number;
        cur.set(repaired.subarray(i * d, (i + 1) * d), i * d);
      }
    }
    if (mNew.some((v) => v < 0)) compact();
    options.onProgress?.(used, budget, rate(success));
  }
  for (let i = 0; i < active.length; i++) finish(i);
  return {
    x: out,
    rows,
    success,
    successRate: rate(success),
    distance: domain.distance(out, x, rows, 'inf'),
    queries: used,
  };
}
