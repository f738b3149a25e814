/**
 * The benchmark harness behind `npm run bench -- [NAME...]`.
 *
 * A benchmark measures Bulwark and, in the same run, the peer it compares with (so the ratio is taken
 * under the same machine load: this machine is shared and noisy). Each figure keeps every sample; the
 * harness reports min / median / max and the ratio of medians, prints a Markdown table, and writes
 * `bench/results/NAME.json` atomically with the machine, Node and package versions.
 *
 * Benchmarks are never part of the test suite.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type Figure,
  type FigureSummary,
  figureTableLines,
  fmtFigure,
  machineInfo,
  median,
  summarise,
} from '../src/core/index.js';

// The figure, its summary and the table are shared with `bulwark bench costs` (src/core/figures.ts).
export { type Figure, type FigureSummary, machineInfo, median, summarise };

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(BENCH_DIR, '..');

/** A ratio between two figures' medians: `of / to`. */
export interface RatioSpec {
  label: string;
  of: string;
  to: string;
}

export interface BenchOutput {
  figures: Figure[];
  ratios?: RatioSpec[];
  /** Facts a reader needs to interpret the figures (sizes, parameters, what limits a figure). */
  notes?: string[];
  /** Non-timing results (accuracy, parity checks) to keep alongside. */
  facts?: Record<string, string | number | boolean>;
}

export interface BenchContext {
  /** Repeats for timed figures (default 5; `--quick`: 2). */
  repeats: number;
  /** `--quick`: smaller sizes, for a smoke run. */
  quick: boolean;
  /** A line of progress on stderr. */
  log(message: string): void;
  /** The Python that has the peers' packages (`BULWARK_PYTHON`, default /usr/bin/python3). */
  python: string;
  /** Where peers' checkouts live (`BULWARK_PEERS`, default bench/peers; git-ignored). */
  peersDir: string;
  /** The shared datasets folder (`BULWARK_DATASETS`, default ../shared/datasets). */
  datasetsDir: string;
}

export interface Benchmark {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchOutput>;
}

export interface RatioResult extends RatioSpec {
  value: number;
}

export function computeRatios(figs: readonly FigureSummary[], specs: readonly RatioSpec[]): RatioResult[] {
  const byId = new Map(figs.map((f) => [f.id, f]));
  return specs.map((r) => {
    const a = byId.get(r.of);
    const b = byId.get(r.to);
    if (!a || !b) throw new Error(`ratio ${r.label}: unknown figure ${a ? r.to : r.of}`);
    return { ...r, value: a.median / b.median };
  });
}

/** Runs `fn` `repeats` times and returns the wall-clock seconds of each run. */
export async function timeRepeats(repeats: number, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    out.push((performance.now() - t0) / 1000);
  }
  return out;
}

const run = promisify(execFile);

/**
 * Runs a Python peer script (from bench/scripts/) with the peers' Python and returns its stdout parsed
 * as JSON. The script prints exactly one JSON document on stdout.
 */
export async function runPython(
  ctx: BenchContext,
  script: string,
  args: readonly string[] = [],
  env: Record<string, string> = {},
): Promise<unknown> {
  const { stdout } = await run(ctx.python, [join(BENCH_DIR, 'scripts', script), ...args], {
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout);
}

/** Whether the peers' Python has the given modules; the reason when not. */
export async function pythonHas(ctx: BenchContext, modules: readonly string[]): Promise<string | null> {
  try {
    await run(ctx.python, ['-c', modules.map((m) => `import ${m}`).join('; ')]);
    return null;
  } catch {
    return `${ctx.python} lacks ${modules.join(', ')}: apt-get install ${modules
      .map((m) => `python3-${m === 'sklearn' ? 'sklearn' : m}`)
      .join(' ')}`;
  }
}

/** The Markdown table printed by `npm run bench` and pasted into notes and docs. */
export function markdownTable(
  name: string,
  figs: readonly FigureSummary[],
  ratios: readonly RatioResult[],
): string {
  const lines = figureTableLines(name, figs);
  if (ratios.length > 0) {
    lines.push(
      '',
      '| ratio | value |',
      '|---|---:|',
      ...ratios.map((r) => `| ${r.label} | ${fmtFigure(r.value)} |`),
    );
  }
  return lines.join('\n');
}
