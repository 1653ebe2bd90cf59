/**
 * Text that came from a guest or a policy, made safe to show: on a terminal (the audit tables, the
 * approval prompt, `ice events list`) and in messages (quoted and shortened, so a hostile key cannot
 * flood an error string). One sanitizer for every view, so they cannot drift apart.
 */

// C0 and C1 controls (U+0085 NEL and the 8-bit CSI U+009B among them), DEL, line/paragraph separators,
// bidi marks (LRM, RLM, ALM), embeddings, overrides and isolates: each could move the cursor, recolour
// or retitle the terminal, or reorder what a reader sees.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
// The same, but newline and tab pass: for text that is several lines (a table, a guest's output).
// eslint-disable-next-line no-control-regex
const UNSAFE_KEEPING_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

const escape = (ch: string): string => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One line: escapes every character that could alter a terminal's display (`\u202e`, `\u001b`, `\u000a`, ...). */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, escape);
}

/**
 * Like `terminalSafe`, but newlines and tabs pass. The escape is a JSON escape too, so JSON text passed
 * through it (where `JSON.stringify` left U+0080–U+009F and the bidi controls raw) still parses to the
 * same values: the CLI's one output writer applies it to everything it prints.
 */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_KEEPING_LINES, escape);
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
