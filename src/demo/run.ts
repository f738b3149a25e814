import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BulwarkError, fsError, SeededRng, writeFileAtomic } from '../core/index.js';
import { type ReportDoc, renderHtml, type Section } from '../report/index.js';
import { caseStudySection } from './case-study.js';
import type { DemoOptions, DemoStage, DemoState, StageContext } from './stage.js';
import { attestStage } from './stages/attest.js';
import { auditOpenStage, auditStage, recordStage } from './stages/audit.js';
import { baselineStage } from './stages/baseline.js';
import { gatewayStage } from './stages/gateway.js';
import { packageStage } from './stages/package.js';
import { poisonStage } from './stages/poison.js';
import { privacyStage } from './stages/privacy.js';
import { protectStage } from './stages/protect.js';
import { robustStage } from './stages/robust.js';
import { schemaStage } from './stages/schema.js';
import { synthStage } from './stages/synth.js';

/** The demo's stages in order. Later capabilities append theirs. */
export const DEMO_STAGES: readonly DemoStage[] = [
  auditOpenStage,
  synthStage,
  schemaStage,
  protectStage,
  baselineStage,
  privacyStage,
  robustStage,
  packageStage,
  gatewayStage,
  attestStage,
  poisonStage,
  auditStage,
];

export interface DemoReport extends ReportDoc {
  options: { quick: boolean; seed: number };
  summary: Record<string, Record<string, string | number | boolean>>;
  /** Wall-clock and CPU seconds of the whole run (CPU of this process: the machine may be shared). */
  timing?: { seconds: number; cpuSeconds: number };
}

/**
 * Runs every stage and writes `report.json` and `report.html` to `options.outDir`. A stage that fails
 * stops the demo (later stages depend on it) after the report so far is written with the failed
 * section marked; the error is then rethrown.
 */
export async function runDemo(options: DemoOptions, version: string): Promise<DemoReport> {
  try {
    await mkdir(options.outDir, { recursive: true });
  } catch (e) {
    throw fsError(e, options.outDir, 'cannot create the demo folder');
  }
  const state: DemoState = {};
  const report: DemoReport = {
    title: 'Bulwark demo: securing a card-fraud model',
    subtitle: `${options.quick ? 'Quick run' : 'Full run'}, seed ${options.seed}.`,
    generatedAt: new Date().toISOString(),
    bulwarkVersion: version,
    options: { quick: options.quick, seed: options.seed },
    summary: {},
    sections: [],
  };
  const rng = new SeededRng(options.seed);
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  for (const stage of DEMO_STAGES) {
    const ctx: StageContext = {
      options,
      state,
      rng: rng.split(),
      progress: (f) => options.onProgress?.(stage.id, f),
    };
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    let section: Section;
    try {
      const r = await stage.run(ctx);
      section = {
        id: stage.id,
        title: stage.title,
        status: r.status ?? 'ok',
        seconds: seconds(),
        blocks: r.blocks,
      };
      if (r.summary) report.summary[stage.id] = r.summary;
      await recordStage(state, stage, r, section.seconds ?? 0);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const code = e instanceof BulwarkError ? `${e.code}: ` : '';
      report.sections.push({
        id: stage.id,
        title: stage.title,
        status: 'failed',
        seconds: seconds(),
        blocks: [{ kind: 'text', text: `This stage failed: ${code}${message}` }],
      });
      await writeReport(options.outDir, report);
      throw e;
    }
    report.sections.push(section);
    options.onProgress?.(stage.id, 1);
  }
  // The case study gathers every stage's results: built last, shown first.
  const cpu = process.cpuUsage(cpu0);
  report.timing = {
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  const cs = await caseStudySection(options, state, report.sections, report.summary, report.timing);
  report.sections.unshift(cs.section);
  report.summary['case-study'] = cs.summary;
  report.subtitle = `${report.subtitle ?? ''} Run time ${report.timing.seconds.toFixed(1)} s wall, ${report.timing.cpuSeconds.toFixed(1)} s CPU.`;
  await writeReport(options.outDir, report);
  return report;
}

async function writeReport(dir: string, report: DemoReport): Promise<void> {
  await writeFileAtomic(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFileAtomic(join(dir, 'report.html'), renderHtml(report));
}
