/**
 * Validated document → compiled policy: typed matchers, budgets as plain numbers, deny slots with their
 * rule ids. Runs once per load (and once more inside a worker, from `document`); nothing here runs per
 * call. Which grants there are is given by the caller (the capability registry), so this layer knows no
 * capability by name.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import type { z } from 'zod';
import { sha256Hex } from '../core/digest.js';
import { PolicyError, messages, toPolicyIssues } from './errors.js';
import { compileMatcher } from './matchers.js';
import type { CompiledPolicy, Denied, Matcher, PolicyDocument } from './types.js';

export { firstMatch } from './matchers.js';

export const INLINE_SOURCE = '<inline>';

/** The policy key that grants `capability`, e.g. `grants.kv`: named by admission errors and used as rule id. */
export function policyKeyFor(capability: string): string {
  return `grants.${capability}`;
}

export interface CompileContext {
  /** `grants.<name>`. */
  readonly rule: string;
  /** The directory relative paths in the policy are resolved against (the policy file's). */
  readonly base: string;
}

/** How one `grants.<name>` value compiles: `deny` (when allowed) or the capability's settings. */
export interface GrantCompiler {
  readonly name: string;
  readonly deniable: boolean;
  compile(settings: never, context: CompileContext): unknown;
}

/**
 * Validates and compiles an already parsed policy (from a file, from the library API, or a `document`
 * sent to a worker) against `schema`, compiling each grant with its capability's compiler. Throws
 * `PolicyError` listing every problem found.
 */
export function compileWith<Grants>(schema: z.ZodType, compilers: readonly GrantCompiler[], document: unknown, source: string = INLINE_SOURCE): CompiledPolicy<Grants> {
  const result = schema.safeParse(document, {
    reportInput: true,
    // Only reached by an issue the schema has no message for; still a sentence, never zod's own text.
    error: (issue) => messages.invalidValue(issue.input),
  });
  if (!result.success) throw new PolicyError(source, toPolicyIssues(result.error.issues));
  const normalized = deepFreeze(result.data as PolicyDocument);
  // Paths in a policy file (wasi mounts) are relative to the file; an inline policy's to the working directory.
  const base = source === INLINE_SOURCE ? process.cwd() : dirname(resolvePath(source));
  const grants: Record<string, unknown> = {};
  for (const { name, deniable, compile } of compilers) {
    const settings = normalized.grants[name];
    if (settings === undefined) continue;
    const rule = policyKeyFor(name);
    grants[name] = deniable && settings === 'deny' ? denied(rule) : compile(settings as never, { rule, base });
  }
  return Object.freeze({
    component: normalized.component,
    ...(normalized.sha256 === undefined ? {} : { pin: normalized.sha256 }),
    capture: normalized.audit.capture,
    maxCaptureBytes: normalized.audit.maxCaptureBytes,
    limits: normalized.limits,
    grants: Object.freeze(grants) as Grants,
    document: normalized,
    digest: sha256Hex(canonicalJson(normalized)),
    source,
  });
}

function denied(rule: string): Denied {
  return Object.freeze({ mode: 'deny', rule });
}

/** Each pattern of a list as a typed matcher whose rule id is its place in the list (`grants.kv.read[1]`). */
export function compileMatchers(rule: string, patterns: readonly string[]): readonly Matcher[] {
  return Object.freeze(patterns.map((pattern, index) => compileMatcher(`${rule}[${index}]`, pattern)));
}

/**
 * A Set that cannot be changed after construction: `ReadonlySet` is only a compile-time promise, and a
 * capability provider must not be able to widen the levels it was granted.
 */
export class SealedSet<T> extends Set<T> {
  #sealed = false;
  constructor(values: Iterable<T>) {
    super();
    for (const value of values) super.add(value);
    this.#sealed = true;
    Object.freeze(this);
  }
  override add(value: T): this {
    if (this.#sealed) throw new TypeError('a compiled policy is read-only');
    return super.add(value);
  }
  override delete(_value: T): boolean {
    throw new TypeError('a compiled policy is read-only');
  }
  override clear(): void {
    throw new TypeError('a compiled policy is read-only');
  }
}

/** JSON with object keys sorted at every level: the digest must not depend on key order in the file. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .filter((key) => record[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
