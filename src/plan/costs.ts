import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BulwarkError, fsError, summarise } from '../core/index.js';

/**
 * Measured costs for the planner, read from committed benchmark results (`bench/results/*.json`, as
 * written by bench/harness.ts), converted to one unit: CPU-hours per month for a workload the plan file
 * describes. A measure whose figures are absent has no cost — it is reported as missing, never
 * estimated; the plan file may supply one (with its source).
 *
 * Conversion: throughput figures (records/s, events/s) were measured on one thread, so 1/rate is
 * CPU-seconds per unit; training figures are ratios of epoch times of the same network on the same
 * machine, so (protected / plain − 1) × the workload's plain training CPU-hours is the extra cost.
 */

export interface BenchFigure {
  id: string;
  label: string;
  system: string;
  unit: string;
  median: number;
}

export interface BenchResult {
  benchmark: string;
  file: string;
  finishedAt?: string;
  /** A `npm run bench -- --quick` smoke run (small sizes, one repeat): its figures are not costs. */
  quick?: boolean;
  /** The machine the run was made on, as one line (`cpu, N cores, Node v, Bulwark v`), when recorded. */
  machine?: string;
  figures: ReadonlyMap<string, BenchFigure>;
  /** Figures present with no value (median null). */
  empty: ReadonlySet<string>;
  facts: Readonly<Record<string, unknown>>;
}

export type BenchSet = ReadonlyMap<string, BenchResult>;

/** Reads every `*.json` in `dir`; a malformed file is ERR_BENCH_RESULTS_INVALID, never skipped. */
export async function readBenchResults(dir: string): Promise<BenchSet> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (e) {
    throw fsError(e, dir, 'cannot read the benchmark results folder');
  }
  const out = new Map<string, BenchResult>();
  for (const n of names) {
    const file = join(dir, n);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw fsError(e, file, 'cannot read benchmark result');
    }
    const r = parseBenchResult(text, file);
    // The plan cites a figure as `<benchmark>.json#<id>`: a result whose name is not its file's would let
    // any file in the folder stand in for another (the last one read silently won) and be cited as it.
    if (r.benchmark !== n.slice(0, -'.json'.length)) {
      throw new BulwarkError(
        'ERR_BENCH_RESULTS_INVALID',
        `${file}: names the benchmark "${r.benchmark}"; a result must be in the file of its name (${r.benchmark}.json)`,
        { details: { file } },
      );
    }
    out.set(r.benchmark, r);
  }
  return out;
}

export function parseBenchResult(text: string, file: string): BenchResult {
  const bad = (why: string) =>
    new BulwarkError('ERR_BENCH_RESULTS_INVALID', `${file}: ${why}`, { details: { file } });
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw bad('not valid JSON');
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw bad('not a JSON object');
  const o = j as Record<string, unknown>;
  if (typeof o['benchmark'] !== 'string' || o['benchmark'] === '') throw bad('no "benchmark" name');
  if (!Array.isArray(o['figures'])) throw bad('no "figures" list');
  const figures = new Map<string, BenchFigure>();
  const empty = new Set<string>();
  o['figures'].forEach((f: unknown, i: number) => {
    const x = f as Record<string, unknown> | null;
    if (x === null || typeof x !== 'object' || typeof x['id'] !== 'string')
      throw bad(`figures[${i}] has no id`);
    // The harness writes a median of null when a run produced no number (NaN): no value, not an error.
    if (x['median'] === null) {
      empty.add(x['id']);
      return;
    }
    if (typeof x['median'] !== 'number' || !Number.isFinite(x['median'])) {
      throw bad(`figures[${i}] (${x['id']}) has a median that is not a number`);
    }
    // The harness writes every sample beside min / median / max (NaN samples as null): a median that is
    // not its samples' median was edited by hand or damaged. (A forger who rewrites the samples too is not
    // caught: results are not signed.)
    if (x['samples'] !== undefined) {
      const raw = x['samples'];
      if (
        !Array.isArray(raw) ||
        !raw.every((v) => v === null || (typeof v === 'number' && Number.isFinite(v)))
      )
        throw bad(`figures[${i}] (${x['id']}) has samples that are not numbers`);
      // Recomputed by the harness's own summarise (src/core/figures.ts): a null sample is its NaN, left
      // out; with none left the median is NaN and matches nothing.
      const s = summarise({
        id: x['id'],
        label: '',
        system: '',
        unit: '',
        better: 'lower',
        samples: raw.map((v: number | null) => v ?? Number.NaN),
      });
      const same = (a: unknown, b: number) =>
        typeof a === 'number' && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
      if (
        !same(x['median'], s.median) ||
        (x['min'] !== undefined && !same(x['min'], s.min)) ||
        (x['max'] !== undefined && !same(x['max'], s.max))
      ) {
        throw bad(
          `figures[${i}] (${x['id']}): median ${x['median']} is not the median of its samples; the file was edited or damaged`,
        );
      }
    }
    figures.set(x['id'], {
      id: x['id'],
      label: String(x['label'] ?? ''),
      system: String(x['system'] ?? ''),
      unit: String(x['unit'] ?? ''),
      median: x['median'],
    });
  });
  const facts =
    o['facts'] !== null && typeof o['facts'] === 'object' ? (o['facts'] as Record<string, unknown>) : {};
  const finishedAt = o['finishedAt'];
  if (
    finishedAt !== undefined &&
    (typeof finishedAt !== 'string' || !Number.isFinite(Date.parse(finishedAt)))
  )
    throw bad('"finishedAt" is not a date');
  if (o['quick'] !== undefined && typeof o['quick'] !== 'boolean') throw bad('"quick" is not true or false');
  const machine = machineLine(o['machine']);
  return {
    benchmark: o['benchmark'],
    file,
    ...(typeof finishedAt === 'string' ? { finishedAt: new Date(Date.parse(finishedAt)).toISOString() } : {}),
    ...(o['quick'] === true ? { quick: true } : {}),
    ...(machine !== undefined ? { machine } : {}),
    figures,
    empty,
    facts,
  };
}

/** `AMD EPYC, 2 cores, Node v20.20.2, Bulwark 0.1.0` from a result's `machine` object. */
function machineLine(m: unknown): string | undefined {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return undefined;
  const o = m as Record<string, unknown>;
  const s = (k: string) => (typeof o[k] === 'string' || typeof o[k] === 'number' ? String(o[k]) : undefined);
  const parts = [
    s('cpu'),
    s('cores') !== undefined ? `${s('cores')} cores` : undefined,
    s('node') !== undefined ? `Node ${s('node')}` : undefined,
    s('bulwark') !== undefined ? `Bulwark ${s('bulwark')}` : undefined,
  ].filter((x): x is string => x !== undefined);
  return parts.length > 0 ? parts.join(', ').slice(0, 200) : undefined;
}

/** Where a result came from, for the plan's citations: `crypto.json (run 2026-11-26T09:56:41.052Z, …)`. */
export function provenance(r: BenchResult): string {
  return `${basename(r.file)} (run ${r.finishedAt ?? 'date unknown: the file has no finishedAt'}${r.machine ? `, ${r.machine}` : ''})`;
}

export interface Workload {
  /** Records whose personal fields are encrypted per month. */
  recordsPerMonth: number;
  /** Records decrypted per month (training reads, erasure checks). */
  recordReadsPerMonth: number;
  /** CPU-hours per month of plain (non-private, non-robust) training. */
  trainingCpuHoursPerMonth: number;
  /** Predictions served per month. */
  requestsPerMonth: number;
  /** Audit events appended per month. */
  auditEventsPerMonth: number;
  auditStore: 'sqlite' | 'postgres';
  /** Size of the served model (MB). */
  modelSizeMB: number;
  /** Model package loads per month (pod starts, reloads). */
  modelLoadsPerMonth: number;
  /** Model packages protected (encrypted and signed) per month. */
  modelPublishesPerMonth: number;
}

/** A figure a cost was computed from: `bench/results/<bench>.json#<id>`. */
export interface FigureRef {
  bench: string;
  id: string;
  label: string;
  value: number;
  unit: string;
  /** The file read (the path in the results folder). */
  file: string;
  /** When that run finished (ISO 8601), or null when the file does not say. */
  finishedAt: string | null;
  /** The machine it ran on, when the file says. */
  machine: string | null;
}

export type MeasureCost =
  | {
      measure: string;
      status: 'measured';
      cpuHours: number;
      formula: string;
      figures: FigureRef[];
      effects: string[];
    }
  | { measure: string; status: 'supplied'; cpuHours: number; source: string; overrides?: string }
  | { measure: string; status: 'missing'; reason: string };

/** Why a result's figures are not costs (a quick smoke run), or undefined. */
function notMeasurement(r: BenchResult): string | undefined {
  return r.quick
    ? `bench/results/${r.benchmark}.json is from a --quick run (smoke sizes, one repeat), not a measurement; run \`npm run bench -- ${r.benchmark}\``
    : undefined;
}

const ref = (r: BenchResult, id: string, label: string, value: number, unit: string): FigureRef => ({
  bench: r.benchmark,
  id,
  label,
  value,
  unit,
  file: r.file,
  finishedAt: r.finishedAt ?? null,
  machine: r.machine ?? null,
});

/**
 * Every figure and fact a cost uses is a rate, a time or a share: a value of 0 or below is not a
 * measurement (it made a cost infinite, negative, or clamped to a "measured" 0).
 */
function positive(r: BenchResult, what: string, v: number): number {
  if (!(v > 0)) {
    throw new BulwarkError(
      'ERR_BENCH_RESULTS_INVALID',
      `${r.file}: ${what} is ${v}; a rate or a time must be above 0`,
      { details: { file: r.file } },
    );
  }
  return v;
}

function fig(b: BenchSet, bench: string, id: string): FigureRef | string {
  const r = b.get(bench);
  if (!r) return `bench/results/${bench}.json is not committed`;
  const quick = notMeasurement(r);
  if (quick) return quick;
  const f = r.figures.get(id);
  if (!f)
    return `bench/results/${bench}.json has no ${r.empty.has(id) ? 'value for figure' : 'figure'} ${id}`;
  return ref(r, id, f.label, positive(r, `figure ${id}`, f.median), f.unit);
}

function fact(b: BenchSet, bench: string, key: string): FigureRef | string {
  const r = b.get(bench);
  if (!r) return `bench/results/${bench}.json is not committed`;
  const quick = notMeasurement(r);
  if (quick) return quick;
  const v = r.facts[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return `bench/results/${bench}.json has no fact ${key}`;
  return ref(r, `facts.${key}`, key, positive(r, `fact ${key}`, v), '');
}

function need(...xs: Array<FigureRef | string>): FigureRef[] | string {
  const missing = xs.filter((x): x is string => typeof x === 'string');
  return missing.length > 0 ? [...new Set(missing)].join('; ') : (xs as FigureRef[]);
}

/**
 * Mean microseconds per request of the gateway's pipeline stages: the fact
 * `<config>.sequential_stage_means_us` (one request at a time: CPU per request without queueing) or,
 * failing that, `<config>.stage_means_us` (under load); a JSON object written as a string.
 */
function stageMeans(b: BenchSet, config: string): { means: Record<string, number>; key: string } | string {
  const r = b.get('gateway');
  if (!r) return 'bench/results/gateway.json is not committed yet';
  const quick = notMeasurement(r);
  if (quick) return quick;
  for (const key of [`${config}.sequential_stage_means_us`, `${config}.stage_means_us`]) {
    const v = r.facts[key];
    if (v === undefined) continue;
    let o: unknown = v;
    if (typeof v === 'string') {
      try {
        o = JSON.parse(v);
      } catch {
        return `bench/results/gateway.json: fact ${key} is not JSON`;
      }
    }
    if (o !== null && typeof o === 'object') {
      const means = o as Record<string, unknown>;
      for (const [k, x] of Object.entries(means)) {
        if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
          throw new BulwarkError(
            'ERR_BENCH_RESULTS_INVALID',
            `${r.file}: fact ${key}: stage ${k} has the mean ${String(x)}; a time must be a number >= 0`,
            { details: { file: r.file } },
          );
        }
      }
      return { means: means as Record<string, number>, key };
    }
  }
  return `bench/results/gateway.json has no fact ${config}.sequential_stage_means_us or ${config}.stage_means_us`;
}

/**
 * The gateway's measures from bench/results/gateway.json (same server and model, protections off, TLS
 * only, full stack): the gateway itself costs the TLS difference in time per request at saturation
 * (1/tls.rps − 1/off.rps) plus its authenticate, authorize and limit stages; input validation its
 * validate stage; the detectors their detect and extraction stages (stage means of the full-stack run,
 * measured one request at a time when the file has them).
 * The audit stage is the audit-log measure, costed from audit.json.
 */
function gatewayCosts(b: BenchSet, w: Workload): MeasureCost[] {
  const f = need(fig(b, 'gateway', 'off.rps'), fig(b, 'gateway', 'tls.rps'));
  const st = stageMeans(b, 'full');
  const missing = [typeof f === 'string' ? f : '', typeof st === 'string' ? st : ''].filter((x) => x !== '');
  if (missing.length > 0) {
    const reason = [...new Set(missing)].join('; ');
    return ['gateway', 'input-validation', 'detectors'].map((measure) => ({
      measure,
      status: 'missing',
      reason,
    }));
  }
  const [off, tls] = f as [FigureRef, FigureRef];
  const gw = b.get('gateway') as BenchResult;
  const { means: s, key: stageKey } = st as { means: Record<string, number>; key: string };
  const stage = (k: string): number | string =>
    typeof s[k] === 'number' && Number.isFinite(s[k])
      ? s[k]
      : `bench/results/gateway.json has no stage mean ${k}`;
  const one = (measure: string, stages: string[], extraUs: number, what: string): MeasureCost => {
    const vals = stages.map(stage);
    const bad = vals.filter((v): v is string => typeof v === 'string');
    if (bad.length > 0) return { measure, status: 'missing', reason: bad.join('; ') };
    const stageUs = (vals as number[]).reduce((a, x) => a + x, 0);
    const us = extraUs + stageUs;
    // Cite the stage means too (they were cited by name only, so validation and the detectors showed a
    // measured cost with no file or run date behind it).
    const stagesRef = ref(gw, `facts.${stageKey}`, `${stages.join(' + ')} stage means`, stageUs, 'µs');
    return {
      measure,
      status: 'measured',
      cpuHours: (w.requestsPerMonth * us) / 1e6 / 3600,
      formula: `requestsPerMonth × ${round(us)} µs / 3600 s [${what}]`,
      figures: measure === 'gateway' ? [off, tls, stagesRef] : [stagesRef],
      effects: [],
    };
  };
  const tlsUs = Math.max(0, 1e6 / tls.value - 1e6 / off.value);
  return [
    one(
      'gateway',
      ['authenticate', 'authorize', 'limit'],
      tlsUs,
      `TLS ${round(tlsUs)} µs (1/tls.rps − 1/off.rps) + authenticate, authorize, limit (${stageKey})`,
    ),
    one('input-validation', ['validate'], 0, `validate (${stageKey})`),
    one('detectors', ['detect', 'extraction'], 0, `detect + extraction (${stageKey})`),
  ];
}

const round = (x: number) => Number(x.toPrecision(4));

function provenanceOf(b: BenchSet, bench: string): string {
  const r = b.get(bench);
  return r ? provenance(r) : `${bench}.json`;
}

/** The measured cost of each measure for `w` (or why it is missing). */
export function measuredCosts(b: BenchSet, w: Workload): MeasureCost[] {
  const out: MeasureCost[] = [];
  {
    const f = need(fig(b, 'crypto', 'fields.encrypt.bulwark'), fig(b, 'crypto', 'fields.decrypt.bulwark'));
    if (typeof f === 'string') out.push({ measure: 'field-encryption', status: 'missing', reason: f });
    else {
      const [enc, dec] = f as [FigureRef, FigureRef];
      out.push({
        measure: 'field-encryption',
        status: 'measured',
        cpuHours: (w.recordsPerMonth / enc.value + w.recordReadsPerMonth / dec.value) / 3600,
        formula: `(recordsPerMonth / ${round(enc.value)} records/s + recordReadsPerMonth / ${round(dec.value)} records/s) / 3600`,
        figures: f,
        effects: [],
      });
    }
  }
  out.push({
    measure: 'budget-ledger',
    status: 'missing',
    reason: 'no committed benchmark measures the budget ledger (one transaction per training run or query)',
  });
  {
    const f = need(fig(b, 'dp', 'mnist.dpsgd.epoch_s'), fig(b, 'ml-core', 'mnist.epoch_s'));
    if (typeof f === 'string') out.push({ measure: 'dp-training', status: 'missing', reason: f });
    else {
      const [dp, plain] = f as [FigureRef, FigureRef];
      const ratio = dp.value / plain.value;
      const effects: string[] = [];
      if (ratio < 1) {
        // DP-SGD does more work per step than plain SGD on the same network; a faster DP epoch means the
        // two results are not comparable (other machine or load), not that DP is free.
        out.push({
          measure: 'dp-training',
          status: 'missing',
          reason: `the DP-SGD epoch (${round(dp.value)} s, ${provenanceOf(b, 'dp')}) is shorter than the plain epoch (${round(plain.value)} s, ${provenanceOf(b, 'ml-core')}): the two results are not comparable; run both benchmarks again`,
        });
      } else {
        const accDp = fact(b, 'robust', 'mia.DP-SGD eps 4.testAccuracy');
        const accNp = fact(b, 'robust', 'mia.non-private.testAccuracy');
        if (typeof accDp !== 'string' && typeof accNp !== 'string') {
          effects.push(
            `test accuracy ${round(accNp.value)} % → ${round(accDp.value)} % at epsilon 4 (robust.json, small-data membership-inference setup)`,
          );
        }
        out.push({
          measure: 'dp-training',
          status: 'measured',
          cpuHours: w.trainingCpuHoursPerMonth * (ratio - 1),
          formula: `trainingCpuHoursPerMonth × (${round(dp.value)} s / ${round(plain.value)} s − 1) [DP-SGD vs plain epoch, same MLP, 1 thread]`,
          figures: f,
          effects,
        });
      }
    }
  }
  {
    const f = need(
      fig(b, 'robust', 'mnist.at0.1.epoch_s'),
      fact(b, 'robust', 'mnist.bulwark.normalEpochSeconds'),
    );
    if (typeof f === 'string') out.push({ measure: 'adversarial-training', status: 'missing', reason: f });
    else {
      const [at, plain] = f as [FigureRef, FigureRef];
      const effects: string[] = [];
      if (at.value < plain.value) {
        out.push({
          measure: 'adversarial-training',
          status: 'missing',
          reason: `the PGD-training epoch (${round(at.value)} s) is shorter than the plain epoch (${round(plain.value)} s) in ${provenanceOf(b, 'robust')}: not a comparable pair; run the benchmark again`,
        });
      } else {
        const c0 = fig(b, 'robust', 'mnist.normal.clean');
        const c1 = fig(b, 'robust', 'mnist.pgd-0.1.clean');
        if (typeof c0 !== 'string' && typeof c1 !== 'string') {
          effects.push(
            `clean accuracy ${round(c0.value)} % → ${round(c1.value)} % (MNIST, PGD eps 0.1 training)`,
          );
        }
        out.push({
          measure: 'adversarial-training',
          status: 'measured',
          cpuHours: w.trainingCpuHoursPerMonth * (at.value / plain.value - 1),
          formula: `trainingCpuHoursPerMonth × (${round(at.value)} s / ${round(plain.value)} s − 1) [PGD-training vs plain epoch, same data and MLP]`,
          figures: f,
          effects,
        });
      }
    }
  }
  {
    // Per MB from the 100 MB case (the 1 MB case is dominated by fixed costs).
    const f = need(
      fig(b, 'model-package', '100mb.load'),
      fig(b, 'model-package', '100mb.plain_load'),
      fig(b, 'model-package', '100mb.protect'),
    );
    if (typeof f === 'string') out.push({ measure: 'model-package', status: 'missing', reason: f });
    else {
      const [load, plain, protect] = f as [FigureRef, FigureRef, FigureRef];
      const effects: string[] = [];
      const ov = fact(b, 'model-package', '100mb.overhead_percent');
      if (typeof ov !== 'string') effects.push(`package size +${round(ov.value)} % (100 MB model)`);
      out.push({
        measure: 'model-package',
        status: 'measured',
        cpuHours:
          (w.modelLoadsPerMonth * w.modelSizeMB * Math.max(0, load.value - plain.value)) / 100 / 3600 +
          (w.modelPublishesPerMonth * w.modelSizeMB * protect.value) / 100 / 3600,
        formula: `(modelLoadsPerMonth × modelSizeMB × (${round(load.value)} s − ${round(plain.value)} s) + modelPublishesPerMonth × modelSizeMB × ${round(protect.value)} s) / 100 MB / 3600 [package load vs plain load, protect; 100 MB model]`,
        figures: f,
        effects,
      });
    }
  }
  out.push(...gatewayCosts(b, w));
  {
    const id = w.auditStore === 'postgres' ? 'pg.append' : 'sqlite.append';
    const f = need(fig(b, 'audit', id));
    if (typeof f === 'string') out.push({ measure: 'audit-log', status: 'missing', reason: f });
    else {
      const [rate] = f as [FigureRef];
      out.push({
        measure: 'audit-log',
        status: 'measured',
        cpuHours: w.auditEventsPerMonth / rate.value / 3600,
        formula: `auditEventsPerMonth / ${round(rate.value)} events/s / 3600 [durable appends, ${w.auditStore}; wall time, an upper bound on CPU]`,
        figures: f,
        effects: [],
      });
    }
  }
  out.push({
    measure: 'tee',
    status: 'missing',
    reason: b.has('attest')
      ? "bench/results/attest.json measures attestation and session crypto, not the enclave's execution overhead (no TEE hardware here); supply costs.tee"
      : 'bench/results/attest.json is not committed yet',
  });
  out.push({
    measure: 'k8s-hardening',
    status: 'missing',
    reason: 'configuration only; no committed benchmark measures its runtime cost (supply one, 0 is allowed)',
  });
  return out;
}
