/**
 * Rows two labelled sets share, as the model sees them (the encoded features and the class). A holdout
 * or evaluation set that holds training rows measures memory, not generalisation: the gate's clean
 * accuracy rises, its membership test compares members with members (AUC 0.5, "no leakage"), and a
 * fine-tuned model that trained on the evaluation rows gains accuracy on exactly the rows that judge it.
 */
import { BulwarkError } from '../core/index.js';
import type { LabelledData } from '../ml/index.js';

function rowKey(d: LabelledData, i: number, width: number): string {
  const x = d.x.subarray(i * width, (i + 1) * width);
  return `${d.y[i]}:${Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64')}`;
}

/** The 0-based rows of `a` that also occur in `b` (same encoded features and class). */
export function sharedRows(a: LabelledData, b: LabelledData): number[] {
  if (a.rows === 0 || b.rows === 0) return [];
  const width = a.x.length / a.rows;
  if (b.x.length / b.rows !== width) return [];
  const keys = new Set<string>();
  for (let i = 0; i < b.rows; i++) keys.add(rowKey(b, i, width));
  const out: number[] = [];
  for (let i = 0; i < a.rows; i++) if (keys.has(rowKey(a, i, width))) out.push(i);
  return out;
}

/** Distinct rows of `d` (encoded features and class): repeated rows add no evidence to an accuracy. */
export function distinctRows(d: LabelledData): number {
  if (d.rows === 0) return 0;
  const width = d.x.length / d.rows;
  const keys = new Set<string>();
  for (let i = 0; i < d.rows; i++) keys.add(rowKey(d, i, width));
  return keys.size;
}

/**
 * Throws ERR_DATA_OVERLAP when `held` (a holdout or evaluation set, named `heldName`) shares any row
 * with `trained` (`trainedName`), naming the first shared rows (1-based data rows of `held`).
 */
export function requireDisjoint(
  held: LabelledData,
  trained: LabelledData,
  heldName: string,
  trainedName: string,
): void {
  const shared = sharedRows(held, trained);
  if (shared.length === 0) return;
  const first = shared.slice(0, 5).map((r) => r + 1);
  throw new BulwarkError(
    'ERR_DATA_OVERLAP',
    `${heldName} shares ${shared.length} of its ${held.rows} rows with ${trainedName} (data rows ${first.join(', ')}${shared.length > first.length ? ', ...' : ''}): rows a model trained on measure its memory, not how it does on new data; remove them from ${heldName}`,
    { details: { rows: shared.length, of: held.rows } },
  );
}
