/**
 * Characters that text from files, events or servers must not carry into a terminal, a log line or an
 * error message as they are: C0 and C1 controls and DEL (escape sequences move the cursor, retitle or
 * clear a terminal; CR/LF start lines of their own) and the invisible bidirectional marks, overrides
 * and isolates (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which reorder what is shown.
 */
const BIDI = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';

/** Controls other than TAB and LF, and the bidirectional marks: multi-line human output keeps its lines. */
export const UNPRINTABLE_CHARS = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${BIDI}]`, 'g');

/** Every control character and line break (TAB, LF, U+2028, U+2029 too), and the bidirectional marks. */
export const NOT_ONE_LINE_CHARS = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029${BIDI}]`, 'g');

/** `s` with each character `chars` matches written as `\uXXXX`: shown, not obeyed. */
export function escapeChars(s: string, chars: RegExp): string {
  return s.replace(chars, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
