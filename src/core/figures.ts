/**
 * The shape of a benchmark figure and its summary, shared by the benchmark harness (bench/harness.ts)
 * and `bulwark bench costs` (src/bench), so both write results files the planner reads alike: every
 * sample kept, min / median / max beside them, the machine the run was on, and the same Markdown table.
 */
import { cpus, type as osType, release, totalmem } from 'node:os';
import { bulwarkVersion } from './version.js';

/** One measured quantity for one system (Bulwark or a peer), with every sample. */
export interface Figure {
  /** Stable id, unique within the benchmark, e.g. `synth.rows_per_s`. */
  id: string;
  /** Human label for the table. */
  label: string;
  /** `bulwark` or the peer's name, e.g. `scikit-learn 1.2.1`. */
  system: string;
  unit: string;
  /** Whether a larger value is better (throughput, accuracy) or worse (time). */
  better: 'higher' | 'lower';
  samples: number[];
}

export interface FigureSummary extends Figure {
  min: number;
  median: number;
  max: number;
}

/**
 * Median of the samples that are numbers (mean of the middle two when even); NaN when there are none.
 * A NaN sample (a run that could not produce the figure) is left out rather than sorted, since NaN has
 * no place in the order.
 */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** min / median / max of a figure's samples, NaN samples left out (all NaN: all three NaN). */
export function summarise(f: Figure): FigureSummary {
  const ok = f.samples.filter((x) => !Number.isNaN(x));
  return {
    ...f,
    min: ok.length ? Math.min(...ok) : Number.NaN,
    median: median(f.samples),
    max: ok.length ? Math.max(...ok) : Number.NaN,
  };
}

/** The machine a result was measured on (results files keep it beside the figures). */
export function machineInfo(): Record<string, string | number> {
  const c = cpus();
  return {
    os: `${osType()} ${release()}`,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    bulwark: bulwarkVersion(),
  };
}

/** A figure in a table: 3 decimals near 1, whole numbers from 100, exponent from a million. */
export function fmtFigure(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e6) return x.toExponential(3);
  if (a >= 100) return x.toFixed(0);
  if (a >= 1) return x.toFixed(3);
  if (a === 0) return '0';
  return x.toPrecision(3);
}

/** The Markdown table of a benchmark's figures (heading, header and one line a figure). */
export function figureTableLines(name: string, figs: readonly FigureSummary[]): string[] {
  return [
    `### ${name}`,
    '',
    '| figure | system | median | min | max | unit | n |',
    '|---|---|---:|---:|---:|---|---:|',
    ...figs.map(
      (f) =>
        `| ${f.label} | ${f.system} | ${fmtFigure(f.median)} | ${fmtFigure(f.min)} | ${fmtFigure(f.max)} | ${f.unit} | ${f.samples.length} |`,
    ),
  ];
}
