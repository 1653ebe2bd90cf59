/**
 * Text that came from a guest or a policy, made safe to show: on a terminal (the audit tables, the
 * approval prompt, `ice events list`) and in messages (quoted and shortened, so a hostile key cannot
 * flood an error string). One sanitizer for every view, so they cannot drift apart.
 */

// C0 and C1 controls, DEL, line/paragraph separators, bidi marks, embeddings, overrides and isolates:
// each could move the cursor, recolour the terminal, or reorder what a reader sees.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** Escapes every character that could alter a terminal's display (`\u202e`, `\u001b`, ...). */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Display width in code points (wide CJK glyphs are counted as one). */
export function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** At most `max` code points, the last being `…` when cut. */
export function shorten(text: string, max: number): string {
  if (width(text) <= max) return text;
  return Array.from(text).slice(0, Math.max(0, max - 1)).join('') + '…';
}

/** `"count"`: JSON-quoted and cut at `max` UTF-16 units, for messages a guest or a log will read. */
export function quote(text: string, max = 64): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
