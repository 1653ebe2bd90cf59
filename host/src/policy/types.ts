/**
 * The compiled policy: the only form the mediator and the capability providers read at call time.
 * Everything here is decided at load (patterns are already typed matchers, defaults are filled in), so a
 * call-time check is a field read or a `firstMatch`, never a parse.
 */
import type { Cidr } from '../egress/address.js';
import type { UrlRule } from '../egress/rules.js';
import type { PolicyDocument } from './schema.js';

export type { PolicyDocument } from './schema.js';
export { firstMatch } from './matchers.js';
export { PolicyError } from './errors.js';
export type { PolicyIssue } from './errors.js';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export type Capture = 'full' | 'digest';

/** The capability interfaces a policy can grant; one `grants.<name>` key each. */
export type PolicyCapability = 'log' | 'clock' | 'random' | 'kv' | 'events' | 'http' | 'model';

/**
 * One key or kind pattern, parsed once at load. `kind` says how `text` is compared, so a pattern is never
 * interpreted as a glob at call time (Deno's typed wildcards rather than a regex built from user text).
 */
export interface Matcher {
  /** Rule id for the ledger and for denial hints, e.g. `grants.kv.read[1]`. */
  readonly rule: string;
  /** The pattern as written in the policy. */
  readonly pattern: string;
  readonly kind: 'any' | 'prefix' | 'exact';
  /** The exact key, or the prefix before the trailing `*` (`''` for `any`). */
  readonly text: string;
  test(value: string): boolean;
}

/** An interface set to `deny`: components importing it load, and every call is denied under `rule`. */
export interface Denied {
  readonly mode: 'deny';
  /** `grants.<interface>`. */
  readonly rule: string;
}

export interface LogGrant {
  readonly mode: 'grant';
  /** `grants.log`. */
  readonly rule: string;
  readonly levels: ReadonlySet<Level>;
  readonly maxCalls: number;
  readonly maxMessageBytes: number;
}

export interface ClockGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
}

export interface RandomGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
  /** Per call. */
  readonly maxBytes: number;
}

export interface KvGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
  readonly read: readonly Matcher[];
  /** Governs `set` and `delete`. */
  readonly write: readonly Matcher[];
  readonly maxValueBytes: number;
  readonly maxKeyBytes: number;
  /** Keys whose writes wait for the host's approver (when no `write` rule matches). */
  readonly ask: readonly Matcher[];
  readonly askTimeoutMs: number;
}

export interface EventsGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
  readonly kinds: readonly Matcher[];
  readonly maxPayloadBytes: number;
}

/** A secret the host adds to a request after the decision: the guest never sees it, the ledger names it only. */
export interface Injection {
  readonly header: string;
  /** The name of the host's secret (an environment variable or an entry of the host's secrets file). */
  readonly secret: string;
  /** Where the value goes, e.g. `Bearer {}`. */
  readonly format: string;
}

export interface HttpRule extends UrlRule {
  /** Non-public addresses (CIDRs) this rule's hosts may resolve to; an IP-literal host allows itself. */
  readonly addresses: readonly Cidr[];
  readonly inject?: Injection;
  /** For an `ask` rule: how long to wait for the approver. */
  readonly askTimeoutMs?: number;
}

export interface HttpGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
  readonly allow: readonly HttpRule[];
  readonly deny: readonly UrlRule[];
  readonly ask: readonly HttpRule[];
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly timeoutMs: number;
  readonly maxRedirects: number;
}

export interface ModelGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly maxCalls: number;
  readonly models: readonly Matcher[];
  readonly ask: readonly Matcher[];
  readonly askTimeoutMs: number;
  readonly maxTokensPerCall: number;
  readonly maxTokensPerRun: number;
}

export interface WasiMount {
  /** Where the guest sees it (absolute). */
  readonly guest: string;
  /** The host directory, absolute (resolved against the policy file's directory). */
  readonly host: string;
  readonly mode: 'read-only' | 'read-write';
}

/**
 * `grants.wasi`: each key undefined when the policy does not mention it (a component importing the
 * matching WASI interface is then refused at load), or its setting.
 */
export interface WasiGrant {
  readonly mode: 'grant';
  readonly rule: string;
  readonly env?: readonly (readonly [string, string])[];
  readonly args?: readonly string[];
  readonly cwd?: string;
  readonly stdout?: 'capture' | 'deny';
  readonly stderr?: 'capture' | 'deny';
  readonly stdin?: 'empty' | 'deny';
  readonly clocks?: 'allow' | 'deny';
  readonly random?: 'allow' | 'deny';
  readonly filesystem?: readonly WasiMount[] | 'deny';
  readonly sockets?: 'deny';
  readonly http?: 'deny';
  /** WASI calls per run; the next one traps the run. */
  readonly maxCalls: number;
}

/** An absent key means the interface is not granted at all: admission refuses a component importing it. */
export interface CompiledGrants {
  readonly log?: LogGrant | Denied;
  readonly clock?: ClockGrant | Denied;
  readonly random?: RandomGrant | Denied;
  readonly kv?: KvGrant | Denied;
  readonly events?: EventsGrant | Denied;
  readonly http?: HttpGrant | Denied;
  readonly model?: ModelGrant | Denied;
  readonly wasi?: WasiGrant;
}

/** What bounds one run (policy `limits`). */
export interface RunLimits {
  /** Units of guest work: one per function entry, function exit and loop iteration. */
  readonly fuel: number;
  /** Wall clock, enforced by terminating the run's worker (worker execution only). */
  readonly timeoutMs: number;
  /** The maximum of every linear memory the component defines. */
  readonly memoryMiB: number;
  /** The run's ok output or err message, in UTF-8 bytes. */
  readonly maxOutputBytes: number;
}

export interface CompiledPolicy {
  /** The component's name in the ledger; also its kv namespace. */
  readonly component: string;
  readonly capture: Capture;
  /** audit.maxCaptureBytes: larger values are recorded as digest and size. */
  readonly maxCaptureBytes: number;
  /** limits.*, defaults filled in. */
  readonly limits: RunLimits;
  readonly grants: CompiledGrants;
  /**
   * The normalized policy (defaults filled in) as plain JSON data: what was enforced. It goes into the
   * ledger's run-start record, and it is what crosses to a worker thread, where `compilePolicy(document)`
   * rebuilds the same compiled form (matchers hold closures, which cannot be cloned).
   */
  readonly document: PolicyDocument;
  /** sha256 hex of the canonical JSON (sorted keys) of `document`: the same policy in YAML or JSON has the same digest. */
  readonly digest: string;
  /** The file path, or `<inline>`. */
  readonly source: string;
}
