import type { Section, Series } from '../report/index.js';
import type { PlanResult } from './plan.js';

/** Report sections for a plan: the choice and why, the Pareto frontier, costs and their sources, threats. */

const n = (x: number) => Number(x.toPrecision(4));
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** A small "+" marker as a series (the line chart draws paths only). */
function marker(name: string, x: number, y: number, dx: number, dy: number, color: string): Series {
  return {
    name,
    color,
    points: [
      [x - dx, y],
      [x + dx, y],
      [x, y],
      [x, y - dy],
      [x, y + dy],
    ],
  };
}

export function planSections(p: PlanResult): Section[] {
  const unit = p.unit;
  const facts: Array<readonly [string, string | number]> = [
    ['budget', `${n(p.budget)} ${unit}`],
    ['cost of the choice', `${n(p.cost)} ${unit}`],
    ['risk reduction', `${n(p.riskReduction)} of ${n(p.totalRisk)} (${pct(p.riskReductionShare)})`],
    ['compliance profiles', p.profiles.join(', ') || 'none'],
    [
      'greedy (the article’s rule)',
      `${pct(p.greedy.riskReduction / p.totalRisk)} for ${n(p.greedy.cost)} ${unit}${p.greedy.lossVsOptimal > 1e-9 ? ` — loses ${pct(p.greedy.lossVsOptimal / p.totalRisk)}` : ' — same value here'}`,
    ],
    ['solver', `${p.solver.method}, ${p.solver.items} measures, ${p.solver.nodes} nodes`],
  ];
  if (p.money)
    facts.splice(2, 0, [
      'money',
      `${n(p.money.cost)} ${p.money.currency} of ${n(p.money.budget)} ${p.money.currency} per month`,
    ]);

  const stairs: Array<[number, number]> = [];
  p.frontier.forEach((f, i) => {
    const y = 100 * f.share;
    if (i > 0) stairs.push([f.cost, stairs[stairs.length - 1]![1]]);
    stairs.push([f.cost, y]);
  });
  const xMax = Math.max(p.budget, ...p.frontier.map((f) => f.cost)) || 1;
  if (stairs.length > 0) stairs.push([xMax, stairs[stairs.length - 1]![1]]);
  const dx = xMax / 80;
  const series: Series[] = [
    { name: 'exact optimum', points: stairs },
    {
      name: 'budget',
      dashed: true,
      color: '#9ca3af',
      points: [
        [p.budget, 0],
        [p.budget, 100],
      ],
    },
    marker('chosen', p.cost, 100 * p.riskReductionShare, dx, 2, '#16a34a'),
    marker('greedy', p.greedy.cost, (100 * p.greedy.riskReduction) / p.totalRisk, dx, 2, '#dc2626'),
  ];

  return [
    {
      id: 'choice',
      title: 'The choice and why',
      status: 'ok',
      blocks: [
        { kind: 'facts', facts },
        {
          kind: 'table',
          caption: 'Chosen measures',
          columns: ['measure', 'cost', 'risk removed if dropped', 'why'],
          rows: p.chosen.map((c) => [c.measure, n(c.cost), n(c.marginal), c.reasons.join('; ')]),
        },
        {
          kind: 'table',
          caption: 'Measures not chosen',
          columns: ['measure', 'cost', 'risk it would add', 'why not'],
          rows: p.notChosen.map((c) => [c.measure, n(c.cost), n(c.marginal), c.reasons.join('; ')]),
        },
        {
          kind: 'table',
          caption: 'Measures left out before optimising',
          columns: ['measure', 'reason'],
          rows: p.unavailable.map((u) => [u.measure, u.reason]),
        },
      ],
    },
    {
      id: 'frontier',
      title: 'Pareto frontier: cost against risk reduction',
      status: 'ok',
      blocks: [
        {
          kind: 'lines',
          title: 'Risk reduction (% of total risk) against cost',
          series,
          xLabel: unit,
          yLabel: '% of total risk removed',
        },
        {
          kind: 'table',
          columns: ['cost', 'risk reduction', 'measures'],
          rows: p.frontier.map((f) => [n(f.cost), pct(f.share), f.measures.join(', ')]),
        },
      ],
    },
    {
      id: 'costs',
      title: 'Costs and their sources',
      status: 'ok',
      blocks: [
        {
          kind: 'table',
          columns: ['measure', 'status', `cost (${unit})`, 'source'],
          rows: p.costs.map((c) => {
            if (c.status === 'measured') {
              return [
                c.measure,
                'measured',
                n(c.cpuHours),
                `${c.formula}; ${c.figures.map((f) => `${f.bench}.json#${f.id} (run ${f.finishedAt ?? 'date unknown'}${f.machine ? `, ${f.machine}` : ''})`).join(', ')}${c.effects.length ? `; effect: ${c.effects.join('; ')}` : ''}`,
              ];
            }
            if (c.status === 'supplied')
              return [
                c.measure,
                'supplied',
                n(c.cpuHours),
                `plan file: ${c.source}${c.overrides ? ` (overrides ${c.overrides})` : ''}`,
              ];
            return [c.measure, 'missing', '—', c.reason];
          }),
        },
      ],
    },
    {
      id: 'threats',
      title: 'Threats: weight and residual risk',
      status: 'ok',
      blocks: [
        {
          kind: 'table',
          columns: ['threat', 'weight', 'residual', 'covered by'],
          rows: p.threats.map((t) => [
            t.threat,
            t.weight,
            pct(t.residualShare),
            t.coveredBy.join(', ') || '—',
          ]),
        },
        {
          kind: 'text',
          text: 'Weights are likelihood × impact (1–5 each) from docs/threat-model.md; residual is the share of each threat’s risk the chosen measures let through.',
        },
      ],
    },
  ];
}
