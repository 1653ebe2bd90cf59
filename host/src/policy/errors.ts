/**
 * Every message a policy author can see, in one place. Each names what was wrong and how to fix it; the
 * schema wires these into zod and `toPolicyIssues` turns zod's issues into `PolicyIssue`s, so a raw zod
 * message or a stack trace never reaches a user for a mistake in their policy.
 */
import type { z } from 'zod';

export interface PolicyIssue {
  /** Where: a key path (`grants.kv.read[1]`), a `line:column` for syntax errors, or `''` for the whole policy. */
  readonly path: string;
  readonly message: string;
}

/** A policy that cannot be loaded. `message` is complete and meant to be shown as is, without a stack. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  /** The file path, or `<inline>`. */
  readonly source: string;
  readonly issues: readonly PolicyIssue[];

  constructor(source: string, issues: readonly PolicyIssue[], headline?: string) {
    super(headline ?? invalidPolicyMessage(source, issues));
    this.source = source;
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}

// Enough to fix a policy in one pass; a hostile file with thousands of problems must not make a huge message.
const MAX_LISTED_ISSUES = 20;

function invalidPolicyMessage(source: string, issues: readonly PolicyIssue[]): string {
  const listed = issues.slice(0, MAX_LISTED_ISSUES);
  const lines = listed.map((issue) => `  ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`);
  if (issues.length > listed.length) lines.push(`  … and ${issues.length - listed.length} more`);
  return `policy ${source} is invalid:\n${lines.join('\n')}`;
}

/** `grants.kv.read[1]`; keys that are not plain names are quoted so the path stays unambiguous. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && segment.length <= 56 && /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${quoteKey(String(segment))}]`;
  }
  return out;
}

/** A key as written, cut like values are: a policy must not make its own error message huge. */
function quoteKey(key: string): string {
  const quoted = JSON.stringify(key);
  return quoted.length > 60 ? `${quoted.slice(0, 56)}…"` : quoted;
}

/** A short, safe rendering of what the policy actually contained, for "got …". */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    const quoted = JSON.stringify(value);
    return quoted.length > 60 ? `${quoted.slice(0, 56)}…"` : quoted;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'a list';
  if (ArrayBuffer.isView(value)) return 'binary data';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

function humanBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return ` (${n / (1024 * 1024)} MiB)`;
  if (n >= 1024 && n % 1024 === 0) return ` (${n / 1024} KiB)`;
  return '';
}

export const messages = {
  notAMapping: (allowed: readonly string[], got: unknown) =>
    `expected a mapping with keys ${allowed.join(', ')}, got ${describeValue(got)}`,
  unknownKey: (allowed: readonly string[]) =>
    allowed.length === 0 ? 'unknown key; no keys are allowed here' : `unknown key; allowed keys: ${allowed.join(', ')}`,
  versionMissing: () => 'missing; add "version: 1"',
  versionUnsupported: (got: unknown) =>
    typeof got === 'string' && /^\s*\d+(\.\d+)?\s*$/u.test(got)
      ? `expected a number, got the string ${describeValue(got)}: write "version: 1" without quotes`
      : `unsupported policy version ${describeValue(got)}; this host reads version 1`,
  componentMissing: () =>
    'missing; add "component: <name>" (the component\'s name in the ledger, also its kv namespace)',
  componentNotString: (got: unknown) => `expected the component name as a string, got ${describeValue(got)}`,
  sha256Bad: (got: unknown) =>
    `expected the component's sha256 as 64 hex digits, quoted in YAML (sha256: "4f1c…"; \`sha256sum calc.wasm\`, or the digest \`ice inspect\` prints), got ${describeValue(got)}`,
  componentBadName: (got: string) =>
    `bad component name ${describeValue(got)}: use 1 to 64 characters from a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
  auditNotMapping: (got: unknown) => `expected a mapping like { capture: full }, got ${describeValue(got)}`,
  limitsNotMapping: (got: unknown) =>
    `expected a mapping like { fuel: 1000000000, timeoutMs: 10000, memoryMiB: 64 }, got ${describeValue(got)}`,
  limitOutOfRange: (max: number, unit: string, got: unknown) =>
    `must be an integer from 1 to ${max}${unit}, got ${describeValue(got)}`,
  captureInvalid: (got: unknown) => `expected full or digest, got ${describeValue(got)}`,
  grantsMissing: () =>
    'missing; add "grants:" with the capabilities this component may use ("grants: {}" grants nothing)',
  grantsNotMapping: (capabilities: readonly string[], got: unknown) =>
    `expected a mapping of capabilities (${capabilities.join(', ')}), got ${describeValue(got)}`,
  grantNotSettings: (example: string, got: unknown) =>
    `expected settings like ${example}, or "deny" to deny every call; got ${describeValue(got)}`,
  sizeOutOfRange: (max: number, got: unknown) =>
    `must be an integer from 1 to ${max}${humanBytes(max)}, got ${describeValue(got)}`,
  patternsNotList: (example: string, got: unknown) =>
    `expected a list of patterns like ${example}, got ${describeValue(got)}`,
  patternsTooMany: (count: number, max: number, prefixExample: string) =>
    `too many patterns (${count}); at most ${max}, use a prefix pattern like "${prefixExample}"`,
  patternNotString: (got: unknown) => `expected a pattern string, got ${describeValue(got)}`,
  badPattern: (pattern: string, problem: string) => `bad pattern ${describeValue(pattern)}: ${problem}`,
  patternDuplicate: (pattern: string, firstRule: string) =>
    `duplicate pattern ${describeValue(pattern)} (same as ${firstRule}); remove one`,
  invalidValue: (got: unknown) => `invalid value ${describeValue(got)}`,
  emptyPolicy: () => 'the policy is empty; it needs at least version, component and grants',
  tooLarge: (bytes: number, max: number) => `the policy is ${bytes} bytes; at most ${max}${humanBytes(max)} are read`,
  yamlSyntax: (message: string) => `YAML syntax error: ${message}`,
  yamlTag: (tag: string) => `unsupported YAML tag ${tag}; write plain values without tags`,
  yamlWarning: (message: string) => `YAML problem: ${message}`,
  duplicateKey: (at: string, firstAt: string) =>
    `duplicate key at ${at} (first at ${firstAt}); each key may appear only once, since a duplicate could hide a grant`,
  tooDeep: () => 'the policy is nested too deeply',
  jsonSyntax: (message: string) => `JSON syntax error: ${message}`,
  fileNotFound: (path: string) => `policy file ${path} not found`,
  fileUnreadable: (path: string, reason: string) => `policy file ${path} could not be read: ${reason}`,
  fileIsDirectory: (path: string) => `policy file ${path} could not be read: it is a directory: pass the policy file itself (e.g. ${path.replace(/\/+$/u, '')}/policy.yaml)`,
} as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/**
 * zod issues → policy issues. Two shapes need more than a path and the schema's message:
 * - unknown keys come as one issue per object; each key gets its own line, at its own path;
 * - an interface slot is `"deny" | settings`: when the author wrote a mapping they meant settings, so the
 *   settings branch's issues are reported (at their full paths) instead of "matches neither" (likewise a
 *   list, for `deny | [mounts]`).
 */
export function toPolicyIssues(issues: readonly z.core.$ZodIssue[], base: readonly PropertyKey[] = []): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...path, key]), message: issue.message });
    } else if (issue.code === 'invalid_union' && (isPlainObject(issue.input) || Array.isArray(issue.input))) {
      const settings = issue.errors.find(
        (branch) => !branch.some((e) => e.path.length === 0 && (e.code === 'invalid_type' || e.code === 'invalid_value')),
      );
      if (settings) out.push(...toPolicyIssues(settings, path));
      else out.push({ path: formatPath(path), message: issue.message });
    } else {
      out.push({ path: formatPath(path), message: issue.message });
    }
  }
  return out;
}
