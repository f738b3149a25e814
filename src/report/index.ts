export { type Block, type ReportDoc, renderHtml, type Section, type SectionStatus } from './document.js';
export {
  type Bar,
  barChart,
  binGroups,
  escapeXml,
  type HistogramGroup,
  histogramChart,
  histogramCounts,
  lineChart,
  niceTicks,
  type Series,
} from './svg.js';
