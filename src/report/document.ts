import { createHash } from 'node:crypto';
import {
  type Bar,
  barChart,
  escapeXml,
  type HistogramGroup,
  histogramChart,
  lineChart,
  type Series,
} from './svg.js';

/**
 * A report as data: sections of typed blocks. The same object is written as `report.json` (for scripts
 * and auditors) and rendered as a self-contained `report.html` (inline CSS and SVG, no scripts, no
 * network), so what a person reads and what a machine checks are the same facts.
 */

export type Block =
  | { kind: 'text'; text: string }
  | { kind: 'facts'; facts: ReadonlyArray<readonly [string, string | number | boolean]> }
  | {
      kind: 'table';
      columns: readonly string[];
      rows: ReadonlyArray<ReadonlyArray<string | number>>;
      caption?: string;
    }
  | { kind: 'bars'; title: string; bars: readonly Bar[]; unit?: string }
  | { kind: 'lines'; title: string; series: readonly Series[]; xLabel?: string; yLabel?: string }
  | {
      kind: 'histogram';
      title: string;
      /** Common bin range (on the log10 scale when `log10`); make with `binGroups`. */
      lo: number;
      hi: number;
      groups: readonly HistogramGroup[];
      xLabel?: string;
      log10?: boolean;
    };

export type SectionStatus = 'ok' | 'skipped' | 'failed';

export interface Section {
  id: string;
  title: string;
  status: SectionStatus;
  /** Seconds the stage took. */
  seconds?: number;
  blocks: Block[];
}

export interface ReportDoc {
  title: string;
  subtitle?: string;
  generatedAt: string;
  bulwarkVersion: string;
  sections: Section[];
}

function renderBlock(b: Block): string {
  switch (b.kind) {
    case 'text':
      return `<p>${escapeXml(b.text)}</p>`;
    case 'facts':
      return `<dl class="facts">${b.facts
        .map(([k, v]) => `<dt>${escapeXml(k)}</dt><dd>${escapeXml(String(v))}</dd>`)
        .join('')}</dl>`;
    case 'table':
      return (
        '<table>' +
        (b.caption ? `<caption>${escapeXml(b.caption)}</caption>` : '') +
        `<thead><tr>${b.columns.map((c) => `<th>${escapeXml(c)}</th>`).join('')}</tr></thead><tbody>` +
        (b.rows.length === 0
          ? // An empty table said nothing; "none" says the list is empty, not missing.
            `<tr><td colspan="${b.columns.length}">none</td></tr>`
          : b.rows
              .map(
                (r) =>
                  `<tr>${r.map((c) => `<td${typeof c === 'number' ? ' class="num"' : ''}>${escapeXml(String(c))}</td>`).join('')}</tr>`,
              )
              .join('')) +
        '</tbody></table>'
      );
    case 'bars':
      return `<figure>${barChart(b.bars, { title: b.title, ...(b.unit ? { unit: b.unit } : {}) })}</figure>`;
    case 'lines':
      return `<figure>${lineChart(b.series, {
        title: b.title,
        ...(b.xLabel ? { xLabel: b.xLabel } : {}),
        ...(b.yLabel ? { yLabel: b.yLabel } : {}),
      })}</figure>`;
    case 'histogram':
      return `<figure>${histogramChart(b.groups, b.lo, b.hi, {
        title: b.title,
        ...(b.xLabel ? { xLabel: `${b.xLabel}${b.log10 ? ' (log10)' : ''}` } : {}),
      })}</figure>`;
  }
}

const CSS = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;max-width:980px;margin:2rem auto;padding:0 1rem}
h1{margin-bottom:.2rem}.sub{color:#4b5563;margin-top:0}
section{border-top:1px solid #e5e7eb;padding-top:.5rem;margin-top:1.5rem}
h2 .status{font-size:.75rem;padding:.1rem .5rem;border-radius:1rem;margin-left:.5rem;vertical-align:middle}
.ok{background:#dcfce7;color:#166534}.skipped{background:#f3f4f6;color:#374151}.failed{background:#fee2e2;color:#991b1b}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #e5e7eb;padding:.25rem .5rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;color:#4b5563}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem}dt{color:#4b5563}dd{margin:0;font-variant-numeric:tabular-nums}
figure{margin:.75rem 0}svg{font-size:11px;max-width:100%;height:auto}svg .title{font-size:13px;font-weight:600}
svg .grid{stroke:#f3f4f6}svg .axis{stroke:#9ca3af}nav a{margin-right:.75rem}
`;

/**
 * The page's one style sheet by its hash, not `'unsafe-inline'`: should anything ever slip past the
 * escaping, it still could not restyle the page (hide a failed section, overlay a fake verdict).
 */
const CSS_HASH = `sha256-${createHash('sha256').update(CSS).digest('base64')}`;

/** Renders the report as one self-contained HTML page. */
export function renderHtml(doc: ReportDoc): string {
  const nav = doc.sections.map((s) => `<a href="#${escapeXml(s.id)}">${escapeXml(s.title)}</a>`).join('');
  const sections = doc.sections
    .map(
      (s) =>
        `<section id="${escapeXml(s.id)}"><h2>${escapeXml(s.title)}<span class="status ${escapeXml(s.status)}">${escapeXml(s.status)}${
          s.seconds === undefined ? '' : ` · ${s.seconds.toFixed(1)} s`
        }</span></h2>${s.blocks.map(renderBlock).join('\n')}</section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src '${CSS_HASH}'; img-src data:; base-uri 'none'; form-action 'none'">
<title>${escapeXml(doc.title)}</title><style>${CSS}</style></head>
<body><h1>${escapeXml(doc.title)}</h1><p class="sub">${escapeXml(doc.subtitle ?? '')} Generated ${escapeXml(
    doc.generatedAt,
  )} by Bulwark ${escapeXml(doc.bulwarkVersion)}.</p><nav>${nav}</nav>
${sections}
</body></html>
`;
}
