/**
 * Validated document → compiled policy: typed matchers, budgets as plain numbers, deny slots with their
 * rule ids. Runs once per load (and once more inside a worker, from `document`); nothing here runs per call.
 */
import { sha256Hex } from '../digest.js';
import { PolicyError, messages, toPolicyIssues } from './errors.js';
import { compileMatcher } from './matchers.js';
import { PolicySchema, type PolicyDocument } from './schema.js';
import { parseAddress, parseCidr, type Cidr } from '../egress/address.js';
import { compileUrlRule } from '../egress/rules.js';
import { dirname, resolve as resolvePath } from 'node:path';
import type { CompiledGrants, CompiledPolicy, Denied, HttpGrant, HttpRule, Level, Matcher, ModelGrant, PolicyCapability, WasiGrant } from './types.js';

export { firstMatch } from './matchers.js';

export const INLINE_SOURCE = '<inline>';

/** The policy key that grants `capability`, e.g. `grants.kv`: named by admission errors and used as rule id. */
export function policyKeyFor(capability: PolicyCapability): string {
  return `grants.${capability}`;
}

/**
 * Validates and compiles an already parsed policy (from a file, from the library API, or a `document`
 * sent to a worker). Throws `PolicyError` listing every problem found.
 */
export function compilePolicy(document: unknown, source: string = INLINE_SOURCE): CompiledPolicy {
  const result = PolicySchema.safeParse(document, {
    reportInput: true,
    // Only reached by an issue the schema has no message for; still a sentence, never zod's own text.
    error: (issue) => messages.invalidValue(issue.input),
  });
  if (!result.success) throw new PolicyError(source, toPolicyIssues(result.error.issues));
  const normalized = deepFreeze(result.data);
  return Object.freeze({
    component: normalized.component,
    capture: normalized.audit.capture,
    maxCaptureBytes: normalized.audit.maxCaptureBytes,
    limits: normalized.limits,
    // Paths in a policy file (wasi mounts) are relative to the file; an inline policy's to the working directory.
    grants: compileGrants(normalized.grants, source === INLINE_SOURCE ? process.cwd() : dirname(resolvePath(source))),
    document: normalized,
    digest: sha256Hex(canonicalJson(normalized)),
    source,
  });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function compileGrants(grants: PolicyDocument['grants'], base: string): CompiledGrants {
  const out: Mutable<CompiledGrants> = {};
  const { log, clock, random, kv, events, http, model, wasi } = grants;
  if (log !== undefined) {
    out.log =
      log === 'deny'
        ? denied('log')
        : Object.freeze({
            mode: 'grant',
            rule: policyKeyFor('log'),
            levels: new SealedSet<Level>(log.levels),
            maxCalls: log.maxCalls,
            maxMessageBytes: log.maxMessageBytes,
          });
  }
  if (clock !== undefined) {
    out.clock =
      clock === 'deny' ? denied('clock') : Object.freeze({ mode: 'grant', rule: policyKeyFor('clock'), maxCalls: clock.maxCalls });
  }
  if (random !== undefined) {
    out.random =
      random === 'deny'
        ? denied('random')
        : Object.freeze({ mode: 'grant', rule: policyKeyFor('random'), maxCalls: random.maxCalls, maxBytes: random.maxBytes });
  }
  if (kv !== undefined) {
    out.kv =
      kv === 'deny'
        ? denied('kv')
        : Object.freeze({
            mode: 'grant',
            rule: policyKeyFor('kv'),
            maxCalls: kv.maxCalls,
            read: compileMatchers('grants.kv.read', kv.read),
            write: compileMatchers('grants.kv.write', kv.write),
            maxValueBytes: kv.maxValueBytes,
            maxKeyBytes: kv.maxKeyBytes,
            ask: compileMatchers('grants.kv.ask', kv.ask),
            askTimeoutMs: kv.askTimeoutMs,
          });
  }
  if (events !== undefined) {
    out.events =
      events === 'deny'
        ? denied('events')
        : Object.freeze({
            mode: 'grant',
            rule: policyKeyFor('events'),
            maxCalls: events.maxCalls,
            kinds: compileMatchers('grants.events.kinds', events.kinds),
            maxPayloadBytes: events.maxPayloadBytes,
          });
  }
  if (http !== undefined) out.http = http === 'deny' ? denied('http') : compileHttp(http);
  if (model !== undefined) out.model = model === 'deny' ? denied('model') : compileModel(model);
  if (wasi !== undefined) out.wasi = compileWasi(wasi, base);
  return Object.freeze(out);
}

function compileWasi(wasi: NonNullable<PolicyDocument['grants']['wasi']>, base: string): WasiGrant {
  const { env, filesystem, ...rest } = wasi;
  return deepFreeze({
    mode: 'grant',
    rule: 'grants.wasi',
    ...rest,
    ...(env === undefined ? {} : { env: Object.entries(env) }),
    ...(filesystem === undefined
      ? {}
      : { filesystem: filesystem === 'deny' ? 'deny' : filesystem.map((m) => ({ guest: m.guest, host: resolvePath(base, m.host), mode: m.mode })) }),
  } as WasiGrant);
}

type HttpDocument = Exclude<NonNullable<PolicyDocument['grants']['http']>, 'deny'>;
type HttpRuleDocument = HttpDocument['ask'][number] | HttpDocument['allow'][number];

function compileHttp(http: HttpDocument): HttpGrant {
  const rule = (list: 'allow' | 'ask') => (written: HttpRuleDocument, index: number): HttpRule => {
    const id = `grants.http.${list}[${index}]`;
    const compiled = compileUrlRule(written.url, written.methods, id);
    const addresses: Cidr[] = (written.addresses ?? []).map((text) => parseCidr(text)!);
    // A rule naming an exact IP may reach it whatever its class: that is the author's explicit choice.
    if (compiled.host.kind === 'exact') {
      const literal = parseAddress(compiled.host.name.replace(/^\[|\]$/gu, ''));
      if (literal) addresses.push(parseCidr(compiled.host.name.replace(/^\[|\]$/gu, ''))!);
    }
    return Object.freeze({
      ...compiled,
      addresses: Object.freeze(addresses),
      ...(written.inject ? { inject: Object.freeze({ ...written.inject }) } : {}),
      ...('askTimeoutMs' in written ? { askTimeoutMs: written.askTimeoutMs } : {}),
    });
  };
  return Object.freeze({
    mode: 'grant',
    rule: policyKeyFor('http'),
    maxCalls: http.maxCalls,
    allow: Object.freeze(http.allow.map(rule('allow'))),
    deny: Object.freeze(http.deny.map((written, index) => compileUrlRule(written.url, written.methods, `grants.http.deny[${index}]`))),
    ask: Object.freeze(http.ask.map(rule('ask'))),
    maxRequestBytes: http.maxRequestBytes,
    maxResponseBytes: http.maxResponseBytes,
    timeoutMs: http.timeoutMs,
    maxRedirects: http.maxRedirects,
  });
}

function compileModel(model: Exclude<NonNullable<PolicyDocument['grants']['model']>, 'deny'>): ModelGrant {
  return Object.freeze({
    mode: 'grant',
    rule: policyKeyFor('model'),
    maxCalls: model.maxCalls,
    models: compileMatchers('grants.model.models', model.models),
    ask: compileMatchers('grants.model.ask', model.ask),
    askTimeoutMs: model.askTimeoutMs,
    maxTokensPerCall: model.maxTokensPerCall,
    maxTokensPerRun: model.maxTokensPerRun,
  });
}

function denied(capability: PolicyCapability): Denied {
  return Object.freeze({ mode: 'deny', rule: policyKeyFor(capability) });
}

function compileMatchers(rule: string, patterns: readonly string[]): readonly Matcher[] {
  return Object.freeze(patterns.map((pattern, index) => compileMatcher(`${rule}[${index}]`, pattern)));
}

/**
 * A Set that cannot be changed after construction: `ReadonlySet` is only a compile-time promise, and a
 * capability provider must not be able to widen the levels it was granted.
 */
class SealedSet<T> extends Set<T> {
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

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
