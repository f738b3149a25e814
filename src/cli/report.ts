/**
 * The HTML report a command writes with `--report FILE` (src/report renders it): stamped with the time
 * and the Bulwark version, written atomically, and never over an existing file unless `--force`.
 */
import { resolve } from 'node:path';
import { bulwarkVersion, writeFileAtomic } from '../core/index.js';
import { type ReportDoc, renderHtml } from '../report/index.js';

/** Writes the report to `file` and returns its absolute path (for the command's result). */
export async function writeHtmlReport(
  file: string,
  force: boolean | undefined,
  doc: Pick<ReportDoc, 'title' | 'subtitle' | 'sections'>,
): Promise<string> {
  const path = resolve(file);
  await writeFileAtomic(
    path,
    renderHtml({
      title: doc.title,
      ...(doc.subtitle !== undefined ? { subtitle: doc.subtitle } : {}),
      generatedAt: new Date().toISOString(),
      bulwarkVersion: bulwarkVersion(),
      sections: doc.sections,
    }),
    { noClobber: force !== true },
  );
  return path;
}
