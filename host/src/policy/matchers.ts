/**
 * Key and kind patterns. There are exactly three shapes — `*`, `text*` (prefix), `text` (exact) — and
 * each is parsed into a typed matcher at load. No glob or regex engine ever sees policy text, so there is
 * no pattern whose meaning depends on an engine's corner cases, and matching is a string comparison.
 */
import type { Matcher } from './types.js';

export type PatternShape = { readonly kind: 'any' | 'prefix' | 'exact'; readonly text: string };

// C0, DEL and C1 controls: invisible in a policy review, so a pattern containing one is never what it looks like.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
// A lone surrogate cannot occur in a key coming from a guest (the canonical ABI carries valid UTF-8), so a
// pattern containing one could never match what it appears to say.
const LONE_SURROGATE = /\p{Cs}/u;

/** Parses a pattern, or returns why it is not one (the text after `bad pattern "…": `). */
export function parsePattern(pattern: string, example: string): PatternShape | { readonly problem: string } {
  if (pattern.length === 0) {
    return { problem: `empty; use "*" to match everything, a prefix like "${example}", or the exact text` };
  }
  const control = CONTROL.exec(pattern);
  if (control) {
    return { problem: `contains the control character ${codePoint(control[0])}; patterns must be printable text` };
  }
  const surrogate = LONE_SURROGATE.exec(pattern);
  if (surrogate) {
    return { problem: `contains the lone surrogate ${codePoint(surrogate[0])}; patterns must be valid Unicode` };
  }
  if (pattern.includes('**')) {
    return { problem: `"**" is not supported; a single trailing "*" already matches any rest (e.g. "${example}")` };
  }
  const star = pattern.indexOf('*');
  if (star !== -1 && star !== pattern.length - 1) {
    return { problem: `"*" may only end a pattern (e.g. "${example}")` };
  }
  if (pattern === '*') return { kind: 'any', text: '' };
  if (star !== -1) return { kind: 'prefix', text: pattern.slice(0, -1) };
  return { kind: 'exact', text: pattern };
}

function codePoint(char: string): string {
  return 'U+' + (char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
}

/**
 * Builds the matcher for an already validated pattern. A pattern that does not parse here is a host bug
 * (the schema rejects it first), so it throws rather than compiling to something permissive.
 */
export function compileMatcher(rule: string, pattern: string): Matcher {
  const shape = parsePattern(pattern, '*');
  if ('problem' in shape) {
    throw new Error(`internal: ${rule} holds the unvalidated pattern ${JSON.stringify(pattern)}: ${shape.problem}`);
  }
  const { kind, text } = shape;
  // One closure per kind, chosen here, so the per-call test has no branching on the kind.
  const test =
    kind === 'any'
      ? (_value: string): boolean => true
      : kind === 'prefix'
        ? (value: string): boolean => value.startsWith(text)
        : (value: string): boolean => value === text;
  return Object.freeze({ rule, pattern, kind, text, test });
}

/** The first matcher (in policy order) that accepts `value`: its `rule` is what the ledger records. */
export function firstMatch(matchers: readonly Matcher[], value: string): Matcher | undefined {
  for (const matcher of matchers) {
    if (matcher.test(value)) return matcher;
  }
  return undefined;
}
