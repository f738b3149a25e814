import { basename, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { packageRoot } from '../../core/index.js';
import { MAX_CPU_HOURS, PROFILE_IDS, PROFILES, type Profile } from '../../plan/index.js';
import { checkOutputPath, floatOption } from '../options.js';
import { ioOf } from '../output.js';
import { writeHtmlReport } from '../report.js';

const lib = () => import('../../plan/index.js');

function profileList(v: string): Profile['id'][] {
  const out = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  // An empty list replaced the plan file's profiles with none, silently: the plan then checked no
  // compliance requirement and said nothing about it.
  if (out.length === 0)
    throw new InvalidArgumentError(`expected profiles among ${PROFILE_IDS.join(', ')}, got none`);
  for (const p of out) {
    if (!(PROFILE_IDS as readonly string[]).includes(p)) {
      throw new InvalidArgumentError(`expected profiles among ${PROFILE_IDS.join(', ')}, got "${p}"`);
    }
  }
  return out as Profile['id'][];
}

const n = (x: number) => Number(x.toPrecision(4));
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description(
      'choose the protections that remove the most risk within a budget (exact, on measured costs)',
    )
    .option(
      '--plan <file>',
      'plan YAML: budget, profiles, workload, supplied costs, threat overrides, require/exclude',
    )
    .option(
      '--budget <cpu-hours>',
      'CPU-hours per month for protection (overrides the plan file)',
      floatOption(0, MAX_CPU_HOURS),
    )
    .option(
      '--profile <list>',
      `compliance profiles: ${PROFILE_IDS.join(',')} (overrides the plan file)`,
      profileList,
    )
    .option(
      '--results <dir>',
      "benchmark results folder (default: the results shipped with Bulwark, its bench/results; give your own machine's `npm run bench` results here)",
    )
    .option('--report <file>', 'write an HTML report with the Pareto frontier plot')
    .option('--force', 'overwrite --report if it exists')
    .addHelpText(
      'after',
      `
Costs come from bench/results/*.json; a measure without a measured cost is left out (and listed) unless
the plan file supplies one. Threats and benefits: docs/threat-model.md. Method and plan file: docs/plan.md.
Exit 3 with ERR_PLAN_INFEASIBLE when the profiles cannot be met within the budget, ERR_PLAN_COST_MISSING
when a required measure has no cost.`,
    )
    .action(async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<{
        plan?: string;
        budget?: number;
        profile?: Profile['id'][];
        results?: string;
        report?: string;
        force?: boolean;
      }>();
      if (o.report !== undefined)
        await checkOutputPath(o.report, { force: o.force, option: '--report', inputs: [o.plan] });
      const p = await lib();
      const file = o.plan !== undefined ? await p.loadPlanFile(o.plan) : p.defaultPlanFile();
      // Not the working directory's bench/results: run from a project folder, that is not Bulwark's.
      const bench = await p.readBenchResults(
        o.results !== undefined ? resolve(o.results) : join(packageRoot(), 'bench', 'results'),
      );
      const plan = p.makePlan(file, bench, {
        ...(o.budget !== undefined ? { budget: o.budget } : {}),
        ...(o.profile !== undefined ? { profiles: o.profile } : {}),
      });
      let reportPath: string | undefined;
      if (o.report !== undefined) {
        reportPath = await writeHtmlReport(o.report, o.force, {
          title: 'Bulwark security plan',
          subtitle: `Budget ${n(plan.budget)} ${plan.unit}${plan.profiles.length ? `, profiles ${plan.profiles.join(', ')}` : ''}.`,
          sections: p.planSections(plan),
        });
      }
      const tag = (m: string) =>
        plan.costs.find((c) => c.measure === m)?.status === 'supplied' ? ' supplied' : '';
      io.result({ ...plan, ...(reportPath ? { report: reportPath } : {}) }, () => {
        const lines = [
          plan.profiles.length > 0
            ? `compliance: ${PROFILES.filter((x) => plan.profiles.includes(x.id))
                .map((x) => x.name)
                .join(', ')} — every measure they require is chosen (a supplied cost is marked "supplied")`
            : 'compliance: no profile checked',
          `chosen (${n(plan.cost)} of ${n(plan.budget)} ${plan.unit}; removes ${pct(plan.riskReductionShare)} of the modelled risk):`,
          ...plan.chosen.map(
            (c) =>
              `  + ${c.measure.padEnd(22)} ${String(n(c.cost)).padStart(10)}${tag(c.measure)}  ${c.reasons.join('; ')}`,
          ),
          'not chosen:',
          ...plan.notChosen.map(
            (c) =>
              `  - ${c.measure.padEnd(22)} ${String(n(c.cost)).padStart(10)}${tag(c.measure)}  ${c.reasons.join('; ')}`,
          ),
          ...plan.unavailable.map((u) => `  ? ${u.measure.padEnd(22)} ${'—'.padStart(10)}  ${u.reason}`),
          `greedy (the article's rule): ${pct(plan.greedy.riskReduction / plan.totalRisk)} for ${n(plan.greedy.cost)}${plan.greedy.lossVsOptimal > 1e-9 ? ` — worse than the exact choice by ${pct(plan.greedy.lossVsOptimal / plan.totalRisk)}` : ''}`,
          'Pareto frontier (cost → risk removed):',
          ...plan.frontier.map(
            (f) =>
              `  ${String(n(f.cost)).padStart(10)} → ${pct(f.share).padStart(7)}  ${f.measures.join(', ')}`,
          ),
        ];
        // Where each cost comes from: the result file and its run (date, machine), the plan file's
        // source, or why there is none — what an auditor asks for behind every figure.
        lines.push(`costs (${plan.unit}):`);
        for (const c of plan.costs) {
          const head = `  ${c.measure.padEnd(22)} ${c.status.padEnd(8)} ${(c.status === 'missing' ? '—' : String(n(c.cpuHours))).padStart(10)}  `;
          if (c.status === 'measured') {
            const runs = [...new Map(c.figures.map((f) => [f.file, f])).values()].map(
              (f) =>
                `${basename(f.file)} (run ${f.finishedAt ?? 'date unknown'}${f.machine ? `, ${f.machine}` : ''})`,
            );
            lines.push(`${head}${runs.join('; ')}`);
          } else if (c.status === 'supplied') {
            lines.push(`${head}plan file: ${c.source}${c.overrides ? ` (overrides ${c.overrides})` : ''}`);
          } else lines.push(`${head}${c.reason}`);
        }
        if (reportPath) lines.push(`report: ${reportPath}`);
        return lines.join('\n');
      });
    });
}
