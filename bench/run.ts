/**
 * `npm run bench -- [NAME...] [--quick] [--repeats N]`: runs the named benchmarks (all when none) and
 * writes bench/results/NAME.json for each. Benchmarks are the files bench/*.bench.ts.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../src/core/index.js';
import {
  BENCH_DIR,
  type BenchContext,
  type Benchmark,
  computeRatios,
  machineInfo,
  markdownTable,
  REPO_ROOT,
  summarise,
} from './harness.js';

function parseArgs(argv: string[]): { names: string[]; quick: boolean; repeats: number | undefined } {
  const names: string[] = [];
  let quick = false;
  let repeats: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a === '--repeats') {
      repeats = Number(argv[++i]);
      if (!Number.isInteger(repeats) || repeats < 1) throw new Error('--repeats: expected an integer >= 1');
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else names.push(a);
  }
  return { names, quick, repeats };
}

async function main(): Promise<number> {
  const { names, quick, repeats } = parseArgs(process.argv.slice(2));
  const available = readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => f.replace(/\.bench\.ts$/, ''))
    .sort();
  const unknown = names.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown benchmark ${unknown.join(', ')}; available: ${available.join(', ')}\n`,
    );
    return 2;
  }
  const ctx: BenchContext = {
    repeats: repeats ?? (quick ? 2 : 5),
    quick,
    log: (m) => process.stderr.write(`  ${m}\n`),
    python: process.env['BULWARK_PYTHON'] ?? '/usr/bin/python3',
    peersDir: process.env['BULWARK_PEERS'] ?? join(REPO_ROOT, 'bench', 'peers'),
    datasetsDir: process.env['BULWARK_DATASETS'] ?? join(REPO_ROOT, '..', 'shared', 'datasets'),
  };
  for (const name of names.length > 0 ? names : available) {
    const mod = (await import(pathToFileURL(join(BENCH_DIR, `${name}.bench.ts`)).href)) as {
      default: Benchmark;
    };
    const b = mod.default;
    process.stderr.write(`bench ${b.name}: ${b.description}\n`);
    const startedAt = new Date().toISOString();
    const out = await b.run(ctx);
    const figures = out.figures.map(summarise);
    const ratios = computeRatios(figures, out.ratios ?? []);
    const table = markdownTable(b.name, figures, ratios);
    process.stdout.write(`${table}\n\n`);
    for (const n of out.notes ?? []) process.stdout.write(`- ${n}\n`);
    if ((out.notes ?? []).length > 0) process.stdout.write('\n');
    const result = {
      benchmark: b.name,
      description: b.description,
      startedAt,
      finishedAt: new Date().toISOString(),
      quick,
      repeats: ctx.repeats,
      machine: machineInfo(),
      figures,
      ratios,
      facts: out.facts ?? {},
      notes: out.notes ?? [],
      table,
    };
    await writeFileAtomic(
      join(REPO_ROOT, 'bench', 'results', `${b.name}.json`),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
