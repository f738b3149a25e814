/**
 * Backdoor (trojan) poisoning, after BadNets (Gu, Dolan-Gavitt & Garg, "BadNets: identifying
 * vulnerabilities in the machine learning model supply chain", arXiv:1708.06733, 2017): the attacker
 * plants a trigger in a share of the training rows and gives them the attacker's label. A model trained
 * on them behaves normally on clean inputs and predicts the attacker's label whenever the trigger is
 * present. Two kinds of trigger:
 *
 * - images: a square patch of fixed pixel values (BadNets' white square in a corner), on row-major
 *   `rows x (height * width)` pixels in [0, 1];
 * - tabular: a value pattern in a few chosen fields of the raw records (before encoding), each value
 *   checked against the schema (bounds, integers, categories), so the poisoned rows pass the same
 *   validation as honest ones: an attacker who feeds a pipeline must get past its schema check.
 *
 * Poisoning modes: `relabel` changes existing rows of other classes in place (the poison rate is the
 * share of training rows changed); `inject` appends triggered copies of rows of other classes (the poison
 * rate is the share of the training set, after injection, that is poisoned) — the attacker who submits a
 * batch of new data.
 *
 * The attack success rate is measured on test inputs whose true class is not the target, with the
 * trigger applied: the share classified as the target (Gu et al.; Tran et al. 2018).
 */
import {
  BulwarkError,
  invalidArgument,
  type Rng,
  requireInteger,
  requireNumberIn,
  requireOneOf,
  rngOf,
} from '../../../core/index.js';
import { type CellValue, type Column, Dataset, type Schema } from '../../../data/index.js';
import { argmaxRows, type ProbabilityModel } from '../../model.js';
import { takeRows } from '../evasion/common.js';

export const POISON_MODES = ['relabel', 'inject'] as const;
export type PoisonMode = (typeof POISON_MODES)[number];

/** A square patch on images: `size x size` pixels set to `value`, `margin` pixels from the bottom-right corner. */
export interface PatchTrigger {
  kind: 'patch';
  width: number;
  height: number;
  size: number;
  /** Pixel value of the patch (default 1, white). */
  value?: number;
  /** Distance from the bottom-right corner (default 1). */
  margin?: number;
}

/** Sets the patch on every row of `x` (`rows x width*height`), in place; returns `x`. */
export function applyPatch(
  x: Float32Array,
  rows: number,
  t: PatchTrigger,
  only?: ArrayLike<number>,
): Float32Array {
  const w = requireInteger('width', t.width, 1);
  const h = requireInteger('height', t.height, 1);
  const size = requireInteger('size', t.size, 1, Math.min(w, h));
  const margin = requireInteger('margin', t.margin ?? 1, 0, Math.min(w, h) - size);
  const value = requireNumberIn('value', t.value ?? 1, -1e9, 1e9);
  if (x.length !== rows * w * h) throw invalidArgument('x', `${rows} x ${w * h} values`, x.length);
  const r0 = h - margin - size;
  const c0 = w - margin - size;
  const apply = (r: number) => {
    const base = r * w * h;
    for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) x[base + (r0 + i) * w + c0 + j] = value;
  };
  if (only) for (let k = 0; k < only.length; k++) apply(only[k] as number);
  else for (let r = 0; r < rows; r++) apply(r);
  return x;
}

/** A tabular trigger: raw field values (numbers, or category strings). */
export type TabularTrigger = Readonly<Record<string, number | string>>;

/**
 * Checks a tabular trigger against the data's columns and, when given, the schema: each field must
 * exist, numbers must be finite, within the field's bounds and integral for integer fields, categories
 * one of the allowed values. Throws ERR_INVALID_ARGUMENT naming the field.
 */
export function checkTabularTrigger(trigger: TabularTrigger, ds: Dataset, schema?: Schema): void {
  const fields = Object.keys(trigger);
  if (fields.length === 0) throw invalidArgument('trigger', 'at least one field', '{}');
  for (const f of fields) {
    const v = trigger[f] as number | string;
    const col = ds.column(f);
    const sf = schema?.fields.find((s) => s.name === f);
    if (col.type === 'timestamp')
      throw invalidArgument(`trigger.${f}`, 'a number or category field, not a timestamp', v);
    if (col.type === 'number') {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw invalidArgument(`trigger.${f}`, 'a finite number', v);
      if (sf?.bounds && (v < sf.bounds.min || v > sf.bounds.max))
        throw invalidArgument(
          `trigger.${f}`,
          `a value within the schema bounds [${sf.bounds.min}, ${sf.bounds.max}]`,
          v,
        );
      if (sf?.type === 'integer' && !Number.isInteger(v))
        throw invalidArgument(`trigger.${f}`, 'an integer', v);
    } else {
      if (typeof v !== 'string') throw invalidArgument(`trigger.${f}`, 'a category value (string)', v);
      if (sf?.categories && !sf.categories.includes(v))
        throw invalidArgument(
          `trigger.${f}`,
          `one of the schema categories (${sf.categories.slice(0, 10).join(', ')})`,
          v,
        );
    }
  }
}

/** The dataset with the trigger's values set on the rows `only` (default all); columns not in the trigger are shared. */
export function applyTabularTrigger(ds: Dataset, trigger: TabularTrigger, only?: ArrayLike<number>): Dataset {
  let out = ds;
  const set = new Uint8Array(ds.rowCount);
  if (only) for (let k = 0; k < only.length; k++) set[only[k] as number] = 1;
  else set.fill(1);
  for (const [f, v] of Object.entries(trigger)) {
    const col = ds.column(f);
    let next: Column;
    if (col.type === 'string') {
      const vals = col.values.map((old, i) => (set[i] ? String(v) : old));
      next = { name: f, type: 'string', values: vals };
    } else {
      const vals = Float64Array.from(col.values);
      for (let i = 0; i < vals.length; i++) if (set[i]) vals[i] = Number(v);
      next = { name: f, type: col.type, values: vals };
    }
    out = out.withColumn(next);
  }
  return out;
}

/** Rows of `a` then rows of `b` (same columns and types). */
export function concatRows(a: Dataset, b: Dataset): Dataset {
  const cols = a.columns.map((c): Column => {
    const o = b.column(c.name);
    if (o.type !== c.type) throw invalidArgument(`column "${c.name}"`, `type ${c.type} in both`, o.type);
    if (c.type === 'string')
      return {
        name: c.name,
        type: 'string',
        values: [...c.values, ...(o.values as readonly (string | null)[])],
      };
    const v = new Float64Array(a.rowCount + b.rowCount);
    v.set(c.values, 0);
    v.set(o.values as Float64Array, a.rowCount);
    return { name: c.name, type: c.type, values: v };
  });
  if (b.columns.length !== a.columns.length)
    throw invalidArgument('datasets', 'the same columns', b.columnNames.join(','));
  return new Dataset(cols, a.rowCount + b.rowCount);
}

export interface TabularBackdoorOptions {
  /** The label column. */
  label: string;
  /** The attacker's label (a value of the label column, as it reads in the data). */
  target: string;
  trigger: TabularTrigger;
  /** Poison rate in (0, 1): see the module comment for what it counts in each mode. */
  rate: number;
  /** Default `inject`. */
  mode?: PoisonMode;
  /** Checks the trigger's values against it. */
  schema?: Schema;
  rng?: Rng | number;
}

export interface TabularBackdoor {
  /** The poisoned training data. */
  dataset: Dataset;
  /** Row indices (in `dataset`) of the poisoned rows, ascending. */
  poisoned: Int32Array;
}

function labelString(v: CellValue): string | null {
  if (v === null) return null;
  return typeof v === 'number' ? (Number.isFinite(v) ? String(v) : null) : v;
}

/** Plants a tabular backdoor in a dataset (raw records, before any encoding). */
export function plantTabularBackdoor(ds: Dataset, o: TabularBackdoorOptions): TabularBackdoor {
  const rate = requireNumberIn('rate', o.rate, 0, 0.99);
  const mode = requireOneOf('mode', o.mode ?? 'inject', POISON_MODES);
  checkTabularTrigger(o.trigger, ds, o.schema);
  if (o.trigger[o.label] !== undefined)
    throw invalidArgument('trigger', 'fields other than the label', o.label);
  const labelCol = ds.column(o.label);
  const rng = rngOf(o.rng);
  const sources: number[] = [];
  let sawTarget = false;
  for (let i = 0; i < ds.rowCount; i++) {
    const s = labelString(
      labelCol.type === 'string' ? (labelCol.values[i] ?? null) : (labelCol.values[i] as number),
    );
    if (s === o.target) sawTarget = true;
    else if (s !== null) sources.push(i);
  }
  if (!sawTarget) throw invalidArgument('target', `a value of the label column "${o.label}"`, o.target);
  if (sources.length === 0)
    throw new BulwarkError('ERR_DATA_VALUE', `no rows outside the target class "${o.target}" to poison`);
  const setLabel = (d: Dataset, rows: ArrayLike<number>): Dataset => {
    const c = d.column(o.label);
    const on = new Set(Array.from(rows));
    if (c.type === 'string')
      return d.withColumn({
        name: o.label,
        type: 'string',
        values: c.values.map((v, i) => (on.has(i) ? o.target : v)),
      });
    const t = Number(o.target);
    return d.withColumn({
      name: o.label,
      type: c.type,
      values: Float64Array.from(c.values, (v, i) => (on.has(i) ? t : v)),
    });
  };
  if (mode === 'relabel') {
    const count = Math.round(rate * ds.rowCount);
    if (count > sources.length)
      throw new BulwarkError(
        'ERR_DATA_VALUE',
        `rate ${rate}: ${count} rows needed, only ${sources.length} outside the target class`,
      );
    const perm = rng.permutation(sources.length);
    const rows = Int32Array.from(perm.subarray(0, count), (p) => sources[p] as number).sort();
    return { dataset: setLabel(applyTabularTrigger(ds, o.trigger, rows), rows), poisoned: rows };
  }
  // inject: k copies so that k / (n + k) = rate.
  const k = Math.round((rate * ds.rowCount) / (1 - rate));
  const picks = Array.from({ length: k }, () => sources[rng.int(sources.length)] as number);
  let extra = ds.take(picks);
  const all = Array.from({ length: k }, (_, i) => i);
  extra = setLabel(applyTabularTrigger(extra, o.trigger), all);
  const joined = concatRows(ds, extra);
  // Shuffle the injected rows in, as a batch of new data would arrive mixed.
  const perm = rng.permutation(joined.rowCount);
  const shuffled = joined.take(perm);
  const poisoned: number[] = [];
  for (let i = 0; i < perm.length; i++) if ((perm[i] as number) >= ds.rowCount) poisoned.push(i);
  return { dataset: shuffled, poisoned: Int32Array.from(poisoned) };
}

export interface ImageBackdoorOptions {
  trigger: PatchTrigger;
  /** The attacker's class. */
  target: number;
  /** Take the poisoned rows from this class only (one-to-one, as Tran et al.); default every other class. */
  source?: number;
  rate: number;
  classes: number;
  /** Default `relabel` (BadNets). */
  mode?: PoisonMode;
  rng?: Rng | number;
}

export interface ImageBackdoor {
  x: Float32Array;
  y: Int32Array;
  rows: number;
  poisoned: Int32Array;
}

/** Plants a patch backdoor in image rows (copies; the inputs are not modified). */
export function plantImageBackdoor(x: Float32Array, y: Int32Array, o: ImageBackdoorOptions): ImageBackdoor {
  const rate = requireNumberIn('rate', o.rate, 0, 0.99);
  const classes = requireInteger('classes', o.classes, 2);
  const target = requireInteger('target', o.target, 0, classes - 1);
  const mode = requireOneOf('mode', o.mode ?? 'relabel', POISON_MODES);
  const d = o.trigger.width * o.trigger.height;
  const n = y.length;
  if (x.length !== n * d) throw invalidArgument('x', `${n} x ${d} values`, x.length);
  const rng = rngOf(o.rng);
  const source = o.source === undefined ? undefined : requireInteger('source', o.source, 0, classes - 1);
  if (source === target) throw invalidArgument('source', 'a class other than the target', source);
  const sources: number[] = [];
  for (let i = 0; i < n; i++) if (source === undefined ? y[i] !== target : y[i] === source) sources.push(i);
  if (mode === 'relabel') {
    const count = Math.round(rate * n);
    if (count > sources.length)
      throw new BulwarkError('ERR_DATA_VALUE', `rate ${rate}: not enough rows outside the target class`);
    const perm = rng.permutation(sources.length);
    const rows = Int32Array.from(perm.subarray(0, count), (p) => sources[p] as number).sort();
    const xo = Float32Array.from(x);
    const yo = Int32Array.from(y);
    applyPatch(xo, n, o.trigger, rows);
    for (const r of rows) yo[r] = target;
    return { x: xo, y: yo, rows: n, poisoned: rows };
  }
  const k = Math.round((rate * n) / (1 - rate));
  const xo = new Float32Array((n + k) * d);
  const yo = new Int32Array(n + k);
  xo.set(x);
  yo.set(y);
  const added: number[] = [];
  for (let j = 0; j < k; j++) {
    const s = sources[rng.int(sources.length)] as number;
    xo.set(x.subarray(s * d, (s + 1) * d), (n + j) * d);
    yo[n + j] = target;
    added.push(n + j);
  }
  applyPatch(xo, n + k, o.trigger, added);
  return { x: xo, y: yo, rows: n + k, poisoned: Int32Array.from(added) };
}

export interface BackdoorSuccess {
  /** Triggered test rows whose true class is not the target. */
  rows: number;
  /** Share of them classified as the target. */
  successRate: number;
  /** The same share on the clean versions of those rows (what the model does without the trigger). */
  cleanTargetRate: number;
}

/**
 * Attack success rate: on the rows whose true class is not `target`, the share the model classifies as
 * `target` once the trigger is applied (`triggered` holds the triggered versions of all `clean` rows).
 */
export async function backdoorSuccess(
  model: ProbabilityModel,
  clean: Float32Array,
  triggered: Float32Array,
  y: Int32Array,
  target: number,
): Promise<BackdoorSuccess> {
  const d = model.inputs;
  const rows = y.length;
  if (clean.length !== rows * d) throw invalidArgument('clean', `${rows} x ${d} values`, clean.length);
  if (triggered.length !== rows * d)
    throw invalidArgument('triggered', `${rows} x ${d} values`, triggered.length);
  const keep: number[] = [];
  for (let i = 0; i < rows; i++) if (y[i] !== target) keep.push(i);
  if (keep.length === 0) return { rows: 0, successRate: Number.NaN, cleanTargetRate: Number.NaN };
  const pt = argmaxRows(
    await model.predictProba(takeRows(triggered, d, keep), keep.length),
    keep.length,
    model.classes,
  );
  const pc = argmaxRows(
    await model.predictProba(takeRows(clean, d, keep), keep.length),
    keep.length,
    model.classes,
  );
  let hit = 0;
  let cleanHit = 0;
  for (let i = 0; i < keep.length; i++) {
    if (pt[i] === target) hit++;
    if (pc[i] === target) cleanHit++;
  }
  return { rows: keep.length, successRate: hit / keep.length, cleanTargetRate: cleanHit / keep.length };
}
