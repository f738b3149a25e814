/**
 * The red-team result as report sections (src/report): the same facts as the JSON, drawn so a reader
 * sees at a glance how accuracy falls with attack strength, which detectors catch what (and where one
 * fails against an adaptive attack), how much membership leaks, and how fast a copy of the model agrees
 * with it.
 */
import type { Block, Section } from '../report/index.js';
import type { MembershipResult } from './attacks/inference/membership.js';
import type { DetectorEvaluation, RedTeamResult } from './redteam.js';

const pct = (v: number | undefined | null) =>
  v === undefined || v === null || Number.isNaN(v) ? 'n/a' : `${(100 * v).toFixed(1)} %`;

const ATTACK_LABEL: Record<string, string> = {
  fgsm: 'FGSM',
  pgd: 'PGD',
  apgd: 'APGD-CE',
  square: 'Square (black-box)',
};

/**
 * "TPR x at 0.1 % FPR" for a console line, saying when the non-members are too few to resolve that
 * rate: below 1,000 of them, the only threshold at or under 0.1 % FPR flags none, so the figure is the
 * TPR at 0 % FPR (the HTML report's caption says the same).
 */
export function tprAtLowFpr(m: MembershipResult): string {
  const t = m.tprAtFpr.find((x) => x.fpr === 0.001);
  const line = `TPR ${pct(t?.tpr)} at 0.1 % FPR`;
  return m.nonMembers < 1000 ? `${line} (with ${m.nonMembers} non-members: in effect at 0 % FPR)` : line;
}

/** Sections of the red-team report, in reading order. */
export function redTeamSections(r: RedTeamResult, seconds?: number): Section[] {
  const sections: Section[] = [];
  const evasion = (['fgsm', 'pgd', 'apgd', 'square'] as const).filter((a) =>
    r.models.some((m) => m.curves[a]),
  );
  const timing = seconds === undefined ? {} : { seconds };
  sections.push({
    id: 'redteam-setup',
    title: 'Red-team setup',
    status: 'ok',
    ...timing,
    blocks: [
      {
        kind: 'facts',
        facts: [
          ['models', r.models.map((m) => m.name).join(', ')],
          ['attacks', r.attacks.join(', ')],
          [
            'rows attacked',
            r.attackClass === null ? r.rowsAttacked : `${r.rowsAttacked} (class ${r.attackClass} only)`,
          ],
          ['clean rows (detector fit/calibration, attacker pool)', r.cleanRows],
          ['norm', r.norm === 'inf' ? 'L-infinity' : 'L2'],
          ['budgets (eps)', r.eps.join(', ')],
          ['detectors evaluated at eps', r.detectorEps],
        ],
      },
      ...r.notes.map((t): Block => ({ kind: 'text', text: t })),
    ],
  });
  if (evasion.length > 0) {
    const blocks: Block[] = [];
    for (const a of evasion) {
      blocks.push({
        kind: 'lines',
        title: `Accuracy under ${ATTACK_LABEL[a]} against eps`,
        xLabel: 'eps',
        yLabel: 'accuracy',
        series: r.models
          .filter((m) => m.curves[a])
          .map((m) => ({
            name: m.name,
            points: (m.curves[a] ?? []).map((p) => [p.eps, p.accuracy] as const),
          })),
      });
    }
    blocks.push({
      kind: 'bars',
      title: `Attack success rate at eps ${r.detectorEps} (share of correctly classified rows fooled)`,
      unit: '%',
      bars: r.models.flatMap((m) =>
        evasion
          .filter((a) => m.curves[a])
          .map((a) => ({
            label: `${m.name} · ${ATTACK_LABEL[a]}`,
            value: 100 * ((m.curves[a] ?? []).find((p) => p.eps === r.detectorEps)?.successRate ?? 0),
          })),
      ),
    });
    blocks.push({
      kind: 'table',
      caption: 'Accuracy (robust accuracy under attack) per budget',
      columns: ['model', 'attack', ...r.eps.map((e) => `eps ${e}`), 'queries per row'],
      rows: r.models.flatMap((m) =>
        evasion
          .filter((a) => m.curves[a])
          .map((a) => [
            m.name,
            ATTACK_LABEL[a] as string,
            ...r.eps.map((e) => pct((m.curves[a] ?? []).find((p) => p.eps === e)?.accuracy)),
            Math.max(...(m.curves[a] ?? []).map((p) => p.queries)),
          ]),
      ),
    });
    sections.push({ id: 'redteam-evasion', title: 'Evasion attacks', status: 'ok', blocks });
  }
  if (r.detectors.length > 0) {
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `Each detector's threshold is calibrated on clean rows for a ${pct(r.detectors[0]?.targetFpr)} false-positive rate; ` +
          'the catch rate is the share of adversarial inputs (rows the model classified right that the attack turns wrong) that are flagged; ' +
          'fooled and undetected is the share of attacked rows turned wrong without a flag. Adaptive attacks know the detector: ' +
          'they are the honest measure of what it stops. ' +
          (r.attackClass === null
            ? 'The flagged-before-attack column is the rate on the attacked rows before the attack: fresh clean rows, so it checks the calibrated rate.'
            : `The threshold is calibrated on clean rows of every class, but only class ${r.attackClass} rows are attacked, and the flagged-before-attack ` +
              `column is the rate on those rows before the attack. It is not a check of the calibration: a class that is rare and unusual ` +
              `(fraud) is flagged more often than the calibrated rate, before anyone attacks it.`),
      },
      {
        kind: 'text',
        text: adaptiveSummary(r.detectors),
      },
      {
        kind: 'table',
        caption: `Detection at the calibrated threshold (eps ${r.detectorEps})`,
        columns: [
          'detector',
          r.attackClass === null
            ? 'flagged before attack (target FPR)'
            : `flagged before attack, class ${r.attackClass} (target FPR)`,
          'attack',
          'adversarial inputs',
          'caught',
          'ROC AUC',
          'fooled and undetected',
        ],
        rows: r.detectors.flatMap((d) =>
          d.attacks.map((a) => [
            d.name,
            `${pct(d.observedFpr)} (${pct(d.targetFpr)})`,
            a.attack,
            a.fooled,
            pct(a.catchRate),
            Number.isNaN(a.auc) ? 'n/a' : a.auc.toFixed(3),
            pct(a.evadedRate),
          ]),
        ),
      },
    ];
    for (const d of r.detectors) {
      blocks.push({
        kind: 'lines',
        title: `${d.name}: ROC, clean vs adversarial`,
        xLabel: 'false-positive rate',
        yLabel: 'true-positive rate',
        series: [
          ...d.attacks
            .filter((a) => a.fooled > 0)
            .map((a) => ({
              name: a.attack,
              points: a.roc.fpr.map((f, i) => [f, a.roc.tpr[i] as number] as const),
            })),
          { name: 'chance', points: [[0, 0] as const, [1, 1] as const], dashed: true, color: '#9ca3af' },
        ],
      });
      const adaptive = d.attacks.find((a) => a.attack.startsWith('adaptive'));
      const plainPgd = d.attacks.find((a) => (a.attack === 'PGD' || a.attack === 'APGD') && a.fooled > 0);
      if (adaptive && plainPgd) {
        // The adaptive attack is PGD that knows the detector: compare it with plain PGD at the same budget.
        // A detector "fails" when what it catches of the adaptive inputs is near its false-alarm rate or
        // less than half of what it catches of plain PGD.
        const fails =
          adaptive.fooled > 0 &&
          (adaptive.catchRate <= 2 * d.targetFpr || adaptive.catchRate < 0.5 * plainPgd.catchRate);
        const facts = `it catches ${pct(plainPgd.catchRate)} of plain ${plainPgd.attack} inputs and ${pct(adaptive.catchRate)} of the ${adaptive.attack} ones; ${pct(adaptive.evadedRate)} of attacked rows are turned wrong without a flag (${pct(plainPgd.evadedRate)} under plain ${plainPgd.attack})`;
        const verdict =
          adaptive.fooled === 0
            ? `: the adaptive attack found no input that fools the model and passes the detector at this budget (plain ${plainPgd.attack}: ${pct(plainPgd.catchRate)} caught).`
            : fails
              ? ` fails against an attacker who knows it: ${facts}.`
              : ` holds against the adaptive attack tried here: ${facts}. A stronger adaptive attack may still break it.`;
        blocks.push({ kind: 'text', text: `${d.name}${verdict}` });
      }
      for (const n of d.notes) blocks.push({ kind: 'text', text: `${d.name}: ${n}.` });
    }
    sections.push({ id: 'redteam-detectors', title: 'Detectors', status: 'ok', blocks });
  }
  if (r.streams.length > 0) {
    sections.push({
      id: 'redteam-streams',
      title: 'Query-stream detectors',
      status: 'ok',
      blocks: [
        {
          kind: 'table',
          caption: 'Attack traffic detected (per client)',
          columns: [
            'detector',
            'FPR target',
            'attack traffic',
            'clients',
            'detected',
            'median queries to detection',
          ],
          rows: r.streams.flatMap((s) =>
            s.attacks.map((a) => [
              s.name,
              `${pct(s.targetFpr)} per ${s.level}`,
              a.attack,
              a.streams,
              a.detected,
              a.medianQueriesToDetection ?? 'n/a',
            ]),
          ),
        },
        ...r.streams.flatMap((s) => s.notes.map((n): Block => ({ kind: 'text', text: `${s.name}: ${n}.` }))),
      ],
    });
  }
  const mia = r.models.filter((m) => m.membership);
  if (mia.length > 0) {
    const rows: (string | number)[][] = [];
    const series: {
      name: string;
      points: (readonly [number, number])[];
      dashed?: boolean;
      color?: string;
    }[] = [];
    for (const m of mia) {
      const entries = [
        ['loss threshold', m.membership?.lossThreshold],
        ['LiRA', m.membership?.lira],
      ] as const;
      for (const [label, res] of entries) {
        if (!res) continue;
        rows.push([
          m.name,
          `${label}${res.shadows ? ` (${res.shadows} shadows)` : ''}`,
          res.auc.toFixed(3),
          `${res.aucInterval[0].toFixed(2)}-${res.aucInterval[1].toFixed(2)}`,
          pct(res.tprAtFpr.find((t) => t.fpr === 0.001)?.tpr),
          pct(res.tprAtFpr.find((t) => t.fpr === 0.01)?.tpr),
          pct(res.advantage),
          `${res.members} / ${res.nonMembers}`,
        ]);
        series.push({
          name: `${m.name} · ${label}`,
          points: res.roc.fpr.map((f, i) => [f, res.roc.tpr[i] as number] as const),
        });
      }
    }
    series.push({
      name: 'chance',
      points: [
        [0, 0],
        [1, 1],
      ],
      dashed: true,
      color: '#9ca3af',
    });
    sections.push({
      id: 'redteam-privacy',
      title: 'Membership inference',
      status: 'ok',
      blocks: [
        {
          kind: 'lines',
          title: 'Membership-inference ROC',
          xLabel: 'false-positive rate',
          yLabel: 'true-positive rate',
          series,
        },
        {
          kind: 'table',
          caption:
            'An AUC near 0.5 and a TPR near the FPR mean little leakage; an AUC whose 95 % interval (Hanley & McNeil 1982) holds 0.5 cannot tell a leak from chance; TPR at 0.1 % FPR needs 1,000+ non-members to resolve',
          columns: [
            'model',
            'attack',
            'AUC',
            'AUC 95 % interval',
            'TPR @ 0.1 % FPR',
            'TPR @ 1 % FPR',
            'advantage',
            'members / non-members',
          ],
          rows,
        },
      ],
    });
  }
  const ext = r.models.filter((m) => m.extraction);
  if (ext.length > 0) {
    sections.push({
      id: 'redteam-extraction',
      title: 'Model extraction',
      status: 'ok',
      blocks: [
        {
          kind: 'lines',
          title: 'Agreement of a copy trained on the answers, against queries',
          xLabel: 'queries',
          yLabel: 'agreement with the victim',
          series: ext.map((m) => ({
            name: m.name,
            points: (m.extraction?.points ?? []).map((p) => [p.queries, p.agreement] as const),
          })),
        },
        {
          kind: 'table',
          columns: ['model', 'queries', 'agreement', 'copy accuracy', 'victim accuracy'],
          rows: ext.flatMap((m) =>
            (m.extraction?.points ?? []).map((p) => [
              m.name,
              p.queries,
              pct(p.agreement),
              pct(p.accuracy),
              pct(m.extraction?.victimAccuracy),
            ]),
          ),
        },
      ],
    });
  }
  return sections;
}

/** Which detectors an adaptive attack was run against, and which not (their catch rate is then an upper bound). */
function adaptiveSummary(detectors: readonly DetectorEvaluation[]): string {
  // A result without the field (saved before it existed) counts as not evaluated adaptively.
  const yes = detectors.filter((d) => typeof d.adaptive === 'string');
  const no = detectors.filter((d) => typeof d.adaptive !== 'string');
  const parts = [
    yes.length > 0
      ? `Evaluated against an adaptive attack: ${yes.map((d) => `${d.name} (${d.adaptive})`).join('; ')}.`
      : 'No detector was evaluated against an adaptive attack.',
  ];
  if (no.length > 0)
    parts.push(
      `Not evaluated adaptively, so their catch rates are upper bounds of what they stop: ${no.map((d) => d.name).join('; ')}.`,
    );
  return parts.join(' ');
}
