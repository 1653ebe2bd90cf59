/**
 * A reader for wasm-tools' text form of a component (jco `print`): S-expressions, with the `(;N;)`
 * index comments the printer writes kept as atoms, because they name each item's index directly and
 * so spare re-counting every index space.
 */

/** An S-expression: an atom (keywords, numbers, `$names`, quoted strings kept with their quotes) or a list. */
export type SExpr = string | SExpr[];

export function indexOf(form: SExpr[]): number | undefined {
  for (const x of form) {
    if (typeof x === 'string') {
      const match = /^\(;(\d+);\)$/.exec(x);
      if (match) return Number(match[1]);
    }
  }
  return undefined;
}

export function unquote(x: SExpr | undefined): string | undefined {
  return typeof x === 'string' && x.startsWith('"') ? JSON.parse(x) : undefined;
}

/**
 * The children of the outer `(component ...)`, parsed, except the forms `skip` matches at their start
 * (by default everything but types, aliases, imports and exports: core modules' code can be large and
 * carries no component-level types), which are skipped by bracket matching.
 */
const SKIPPED = /^\((core|component|canon|func|instance|start)\b/;

export function topLevelForms(wat: string, skip: RegExp = SKIPPED): SExpr[] {
  let i = wat.indexOf('(component');
  if (i < 0) return [];
  i += '(component'.length;
  const forms: SExpr[] = [];
  for (;;) {
    i = skipSpace(wat, i);
    if (i >= wat.length || wat[i] === ')') break;
    if (wat[i] !== '(') {
      i = atomEnd(wat, i);
      continue;
    }
    if (skip.test(wat.slice(i, i + 12))) {
      i = formEnd(wat, i);
      continue;
    }
    const [form, end] = parseForm(wat, i);
    forms.push(form);
    i = end;
  }
  return forms;
}

function skipSpace(s: string, i: number): number {
  for (;;) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s.startsWith(';;', i)) {
      const nl = s.indexOf('\n', i);
      i = nl < 0 ? s.length : nl + 1;
    } else if (s.startsWith('(;', i) && !/^\(;\d+;\)/.test(s.slice(i, i + 16))) {
      const end = s.indexOf(';)', i + 2);
      i = end < 0 ? s.length : end + 2;
    } else {
      return i;
    }
  }
}

function atomEnd(s: string, i: number): number {
  if (s[i] === '"') return stringEnd(s, i);
  if (s.startsWith('$"', i)) return stringEnd(s, i + 1);
  if (/^\(;\d+;\)/.test(s.slice(i, i + 16))) return s.indexOf(';)', i) + 2;
  while (i < s.length && !/[\s()]/.test(s[i]!)) i++;
  return i;
}

function stringEnd(s: string, i: number): number {
  i++;
  while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
  return i + 1;
}

function formEnd(s: string, i: number): number {
  let depth = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"') i = stringEnd(s, i);
    else if (s.startsWith('(;', i)) i = s.indexOf(';)', i + 2) + 2 || s.length;
    else if (s.startsWith(';;', i)) i = s.indexOf('\n', i) < 0 ? s.length : s.indexOf('\n', i) + 1;
    else {
      if (c === '(') depth++;
      else if (c === ')' && --depth === 0) return i + 1;
      i++;
    }
  }
  return s.length;
}

/**
 * A quoted WAT name. wasm-tools escapes some characters as `\u{8}`, which JSON does not know; names
 * are only compared, so an unreadable one is kept verbatim rather than failing the whole inspection.
 */
function quotedName(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted;
  }
}

function parseForm(s: string, i: number): [SExpr[], number] {
  const list: SExpr[] = [];
  i++; // '('
  for (;;) {
    i = skipSpace(s, i);
    if (i >= s.length) return [list, i];
    if (s[i] === ')') return [list, i + 1];
    if (s[i] === '(' && !/^\(;\d+;\)/.test(s.slice(i, i + 16))) {
      const [child, end] = parseForm(s, i);
      list.push(child);
      i = end;
    } else {
      const end = atomEnd(s, i);
      const atom = s.slice(i, end);
      // `$"#type3 error"` style names: keep them as one `$...` atom.
      list.push(atom.startsWith('$"') ? `$${quotedName(atom.slice(1))}` : atom);
      i = end;
    }
  }
}

