/**
 * Small, dependency-free SVG charts for the HTML reports (bar chart, histogram, line chart). They are
 * pure functions of their data, so a report is one self-contained file that opens anywhere, offline.
 */

export interface Bar {
  label: string;
  value: number;
  /** CSS colour; defaults to the palette by index. */
  color?: string;
}

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  color?: string;
  /** Draw as a dashed line (a reference such as the diagonal of a ROC plot). */
  dashed?: boolean;
}

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/**
 * Estimated advance of one character of chart text (11 px; about 0.56 em, a little over DejaVu Sans's
 * average in Chromium, the widest of the usual sans-serif defaults): SVG text cannot be measured
 * without a renderer.
 */
const CHAR_W = 6.2;

/** `text` escaped, cut with an ellipsis to about `maxPx` pixels; a cut text keeps its whole as a tooltip. */
function fitText(text: string, maxPx: number): string {
  const max = Math.max(4, Math.floor(maxPx / CHAR_W));
  if (text.length <= max) return escapeXml(text);
  return `<title>${escapeXml(text)}</title>${escapeXml(`${text.slice(0, max - 1)}…`)}`;
}

export function paletteColor(i: number): string {
  return PALETTE[i % PALETTE.length] as string;
}

/** Escapes text for HTML and SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  if (a >= 10 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

/** "Nice" tick values covering [lo, hi] (Heckbert, "Nice numbers for graph labels", Graphics Gems 1990). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const nice = (x: number, round: boolean): number => {
    const e = Math.floor(Math.log10(x));
    const f = x / 10 ** e;
    const nf = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) : f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * 10 ** e;
  };
  const step = nice(nice(hi - lo, false) / (count - 1), true);
  const start = Math.floor(lo / step) * step;
  const out: number[] = [];
  for (let v = start; v <= hi + step * 0.5; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** `[lo, hi]` widened to the nice ticks around it (a share that tops out at 0.73 reads on [0, 0.8]). */
export function niceDomain(lo: number, hi: number): [number, number] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || !(hi > lo)) return [lo, hi];
  const t = niceTicks(lo, hi);
  if (t.length < 2) return [lo, hi];
  const step = (t[1] as number) - (t[0] as number);
  const round = (v: number) => Number(v.toPrecision(12));
  return [round(Math.floor(lo / step + 1e-9) * step), round(Math.ceil(hi / step - 1e-9) * step)];
}

/** A horizontal bar chart: one row per bar, labels on the left, values at the bar ends. */
export function barChart(
  bars: readonly Bar[],
  opts: { title?: string; width?: number; unit?: string } = {},
): string {
  const width = opts.width ?? 560;
  const rowH = 24;
  // Labels get up to half the width; a longer one is cut with an ellipsis and keeps its full text
  // as a tooltip (before, a long label ran off the chart's left edge).
  const labelW = Math.min(
    Math.round(0.5 * width),
    12 + Math.ceil(CHAR_W * Math.max(4, ...bars.map((b) => b.label.length))),
  );
  const top = opts.title ? 28 : 8;
  const height = top + rowH * bars.length + 8;
  const max = Math.max(0, ...bars.map((b) => b.value)) || 1;
  const plotW = width - labelW - 70;
  const rows = bars
    .map((b, i) => {
      const y = top + i * rowH;
      const w = Math.max(0, (b.value / max) * plotW);
      const color = b.color ?? paletteColor(i);
      return (
        `<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${fitText(b.label, labelW - 12)}</text>` +
        `<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${escapeXml(color)}" rx="2"/>` +
        `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 16}">${escapeXml(fmtTick(b.value))}${opts.unit ? ` ${escapeXml(opts.unit)}` : ''}</text>`
      );
    })
    .join('');
  const title = opts.title ? `<text x="0" y="16" class="title">${escapeXml(opts.title)}</text>` : '';
  return svg(width, height, title + rows, opts.title ?? 'bar chart');
}

/** A line chart of one or more series on linear axes, with a legend. */
export function lineChart(
  series: readonly Series[],
  opts: {
    title?: string;
    xLabel?: string;
    yLabel?: string;
    width?: number;
    height?: number;
    xDomain?: [number, number];
    yDomain?: [number, number];
  } = {},
): string {
  const width = opts.width ?? 560;
  const plotHeight = opts.height ?? 340;
  const m = { l: 56, r: 16, t: opts.title ? 32 : 12, b: 44 };
  // The legend sits under the x axis, entries flowing in rows: inside the plot it hid the curves'
  // top-right corner (where a ROC curve lives) and long names ran past the right edge.
  const legendLayout = flowLegend(
    series.map((s) => s.name),
    m.l,
    width - m.r,
  );
  const height = plotHeight + (legendLayout.rows > 0 ? legendLayout.rows * 16 + 10 : 0);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = opts.xDomain ?? [Math.min(...xs), Math.max(...xs)];
  // Without a given domain the y axis runs up to the tick at or above the largest value, so the top
  // is labelled and a flat curve at the maximum does not run along the frame.
  const [y0, y1] = opts.yDomain ?? niceDomain(Math.min(0, ...ys), Math.max(...ys));
  const pw = width - m.l - m.r;
  const ph = plotHeight - m.t - m.b;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * pw;
  const sy = (y: number) => m.t + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
  const xt = niceTicks(x0, x1).filter((t) => t >= x0 && t <= x1);
  const yt = niceTicks(y0, y1).filter((t) => t >= y0 && t <= y1);
  const grid =
    xt
      .map(
        (t) =>
          `<line x1="${sx(t)}" x2="${sx(t)}" y1="${m.t}" y2="${m.t + ph}" class="grid"/><text x="${sx(t)}" y="${m.t + ph + 16}" text-anchor="middle">${fmtTick(t)}</text>`,
      )
      .join('') +
    yt
      .map(
        (t) =>
          `<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/><text x="${m.l - 6}" y="${sy(t) + 4}" text-anchor="end">${fmtTick(t)}</text>`,
      )
      .join('');
  const lines = series
    .map((s, i) => {
      const d = s.points
        .map((p, j) => `${j ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
        .join('');
      const color = s.color ?? paletteColor(i);
      return `<path d="${d}" fill="none" stroke="${escapeXml(color)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`;
    })
    .join('');
  const legend = series
    .map((s, i) => {
      const at = legendLayout.at[i]!;
      const y = plotHeight + 12 + at.row * 16;
      const color = s.color ?? paletteColor(i);
      return `<rect x="${at.x}" y="${y - 9}" width="10" height="10" fill="${escapeXml(color)}"${s.dashed ? ' fill-opacity="0.5"' : ''}/><text x="${at.x + 14}" y="${y}">${fitText(s.name, width - m.r - at.x - 14)}</text>`;
    })
    .join('');
  const labels =
    (opts.xLabel
      ? `<text x="${m.l + pw / 2}" y="${plotHeight - 6}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`
      : '') +
    (opts.yLabel
      ? `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`
      : '') +
    (opts.title ? `<text x="0" y="18" class="title">${escapeXml(opts.title)}</text>` : '');
  return svg(
    width,
    height,
    `${grid}<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" class="axis"/>${lines}${legend}${labels}`,
    opts.title ?? 'line chart',
  );
}

/**
 * Where each legend entry goes when entries flow left to right from `left` and wrap before `right`:
 * a colour box, a gap and the estimated width of the name, then 16 px to the next entry.
 */
export function flowLegend(
  names: readonly string[],
  left: number,
  right: number,
): { rows: number; at: Array<{ row: number; x: number }> } {
  const at: Array<{ row: number; x: number }> = [];
  let row = 0;
  let x = left;
  for (const name of names) {
    const w = 14 + Math.ceil(CHAR_W * name.length);
    if (x > left && x + w > right) {
      row++;
      x = left;
    }
    at.push({ row, x });
    x += w + 16;
  }
  return { rows: names.length === 0 ? 0 : row + 1, at };
}

/** Bin edges and counts for a histogram of `values` over [lo, hi] (values outside are clamped). */
export function histogramCounts(values: ArrayLike<number>, bins: number, lo: number, hi: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const w = (hi - lo) / bins || 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) continue;
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w)));
    counts[b]!++;
  }
  return counts;
}

/** Binned counts of one group, as stored in a report (raw values never are: they may be personal). */
export interface HistogramGroup {
  name: string;
  counts: readonly number[];
  color?: string;
}

/** Bins several groups of values on one common range, optionally on a log10 scale. */
export function binGroups(
  groups: ReadonlyArray<{ name: string; values: ArrayLike<number> }>,
  opts: { bins?: number; log10?: boolean } = {},
): { lo: number; hi: number; groups: HistogramGroup[] } {
  const tf = (v: number) => (opts.log10 ? Math.log10(Math.max(v, 1e-9)) : v);
  let lo = Infinity;
  let hi = -Infinity;
  const transformed = groups.map((g) => Float64Array.from(g.values as ArrayLike<number>, tf));
  for (const t of transformed) {
    for (const v of t) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  const bins = opts.bins ?? 30;
  return {
    lo,
    hi,
    groups: groups.map((g, i) => ({ name: g.name, counts: histogramCounts(transformed[i]!, bins, lo, hi) })),
  };
}

/** Overlaid histograms (step lines of relative frequency) of binned groups over [lo, hi]. */
export function histogramChart(
  groups: readonly HistogramGroup[],
  lo: number,
  hi: number,
  opts: { title?: string; xLabel?: string } = {},
): string {
  const series: Series[] = groups.map((g, i) => {
    const n = g.counts.reduce((a, b) => a + b, 0) || 1;
    const w = (hi - lo) / (g.counts.length || 1);
    const pts: Array<[number, number]> = [];
    g.counts.forEach((c, b) => {
      pts.push([lo + b * w, c / n], [lo + (b + 1) * w, c / n]);
    });
    return { name: g.name, points: pts, color: g.color ?? paletteColor(i) };
  });
  return lineChart(series, {
    ...(opts.title ? { title: opts.title } : {}),
    ...(opts.xLabel ? { xLabel: opts.xLabel } : {}),
    yLabel: 'fraction of rows',
    xDomain: [lo, hi],
  });
}

function svg(width: number, height: number, body: string, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(label)}">${body}</svg>`;
}
