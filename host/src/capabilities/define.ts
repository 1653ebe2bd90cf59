/**
 * What a capability is: one definition that says everything the host needs to know about it, so the
 * registry (registry.ts) can drive policy, admission, the import object, the ledger, replay and the
 * bridge to the host thread from one list. The kernel (kernel/) is the only code that calls into a
 * definition at run time, always in the same order: decide → (intent) → perform → record → answer.
 *
 * Two kinds:
 *   - `ice`: an interface of the ice:agent world. The definition declares its WIT functions (typed from
 *     the declarations jco generates from wit/), what each one's effect touches, and its operations; the
 *     kernel builds the import functions, and the capability may add a fast canonical-ABI binding.
 *   - `foreign`: interfaces of another package (WASI 0.2), claimed by name. The definition builds its own
 *     import table, but every call in it goes through the kernel's `invoke`, the same choke point.
 */
import type { z } from 'zod';
import type { Capturable, Captured, CaptureMode } from '../core/capture.js';
import type { ApprovalRecord, AskDetail, Decided, IceError } from '../core/verdict.js';
import type { LoadErrorCode } from '../component/errors.js';
import type { CompileContext, RunLimits } from '../policy/index.js';
import type { Abi, CoreFunction } from './abi.js';
import type { RunServices } from './run-services.js';
import type { SecretSource } from './secrets.js';
import type { ModelConfig } from './model/config.js';
import type { RefusedEffect, Steps } from './steps.js';

export { RefusedEffect, Steps, type FollowUp, type StepResult, type WireStep } from './steps.js';

// ── policy ───────────────────────────────────────────────────────────────────────────────────────

/** A compiled grant (`grants.<name>` after compile): what `decide` reads at call time. */
export interface Grant {
  readonly mode: 'grant';
  /** `grants.<name>`: the rule id of the interface as a whole. */
  readonly rule: string;
  /** Calls per run to the capability; the kernel answers the next ones with `limit`. */
  readonly maxCalls: number;
}

/** The capability's slice of the policy: `grants.<name>`. */
export interface PolicySlice<G extends Grant> {
  /** The settings: a strict zod object with defaults, whose every issue is a message from policy/errors.ts. */
  readonly schema: z.ZodType;
  /** What the settings look like, for messages: `kv: { read: ["count"], write: ["count"] }`. */
  readonly example: string;
  /**
   * Whether `grants.<name>: deny` is allowed: the interface loads and every call is denied. A foreign
   * capability covers its interfaces key by key instead (`grants.wasi.<key>: deny`).
   */
  readonly deniable: boolean;
  compile(settings: never, context: CompileContext): G;
}

// ── one call ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Where a function's effect happens, which decides how the kernel records it:
 *   - `local`: in the run's thread, touching nothing shared (a log line, a clock reading, a read);
 *     one call record, queued;
 *   - `state`: writes the state database: the write and its record commit in one transaction, after
 *     every record before it (atomic, so the ledger never shows a write that did not happen, nor misses
 *     one that did);
 *   - `host`: leaves the run (the network, a model provider), performed on the host thread: an intent
 *     record is made durable (the run's intent log) before the effect starts, and a result record follows.
 * A call whose decision is `ask` leaves the run too (to the approver): it also gets an intent.
 */
export type EffectKind = 'local' | 'state' | 'host';

/** How one function's arguments and results are written into the ledger, and read back by replay. */
export interface LedgerForm {
  /** The WIT arguments as capturable values (default: as they are). */
  args(args: readonly unknown[]): Capturable[];
  /** The ok value as a capturable value (default: as it is). */
  result(value: unknown): Capturable;
  /** A recorded ok value back into the WIT value; throws `Unrecorded` when it was not recorded whole. */
  decode(recorded: Captured): unknown;
}

/** A recorded value that replay cannot turn back into the value the guest got (a digest, a missing field). */
export class Unrecorded extends Error {
  override readonly name = 'Unrecorded';
}

/** A function the host thread serves for a capability (`ice:agent/http#fetch`'s network request). */
export interface HostEffect<Request, Reply, G extends Grant = Grant> {
  readonly serve: (request: Request, context: HostCallContext<G>) => Promise<Reply>;
}

/** Declares a host effect; the operation reaches it with `call.host(effect, request)`. */
export function hostEffect<Request, Reply, G extends Grant = Grant>(serve: (request: Request, context: HostCallContext<G>) => Promise<Reply>): HostEffect<Request, Reply, G> {
  return { serve };
}

/** What `perform` knows of the call it performs. */
export interface CallContext {
  /**
   * The seq of the call's intent (host effects and asks), e.g. for an idempotency key; for a state
   * effect without one, the seq its call record will have (it commits in the same transaction).
   */
  readonly seq: number | undefined;
  /** Runs `effect` on the host thread and blocks this thread until it answers (worker execution). */
  host<Request, Reply>(effect: HostEffect<Request, Reply, never>, request: Request): Reply;
}

export interface Operation<Args extends readonly unknown[] = readonly unknown[], Result = unknown> {
  /** Pure: the compiled grant + the arguments → a verdict. Never has an effect. */
  decide(args: Args): Decided;
  /**
   * The effect, run only after an `allow`; its return value is the ok payload for the guest. An
   * optional result may be `null` for none (jco lowers null and undefined alike; the ledger then shows
   * none as a value rather than as a unit result).
   */
  perform(args: Args, call: CallContext): Result | (undefined extends Result ? null : never) | RefusedEffect | Steps;
}

/**
 * The operations of one WIT interface, typed from the declarations jco generates from wit/
 * (host/src/generated): arguments and ok results cannot drift from the WIT.
 */
export type InterfaceOperations<Interface> = {
  readonly [F in FunctionsOf<Interface>]: Interface[F] extends (...args: infer A) => infer R ? Operation<Readonly<A>, R> : never;
};

/** The function names of a generated interface module. */
export type FunctionsOf<Interface> = {
  [F in keyof Interface]: Interface[F] extends (...args: never[]) => unknown ? F : never;
}[keyof Interface] &
  string;

/** Per WIT function: what its effect touches, and (when its values are WIT records) its ledger form. */
export interface FunctionSpec {
  readonly effect: EffectKind;
  readonly form?: LedgerForm;
}

// ── the run a capability serves ──────────────────────────────────────────────────────────────────

/** What a capability needs from the run it serves: plain data plus the run's host services. */
export interface RunContext {
  readonly component: string;
  readonly runId: string;
  readonly capture: CaptureMode;
  /** audit.maxCaptureBytes. */
  readonly maxCaptureBytes: number;
  readonly limits: RunLimits;
  readonly services: RunServices;
  /** A WASI command run's own inputs and where its stdout goes (absent for other runs). */
  readonly command?: CommandContext;
}

/**
 * `ice run cmd.wasm --input <text> -- <args>`: the arguments follow grants.wasi.args; stdin is the input
 * when grants.wasi.stdin is `input`; what the guest writes to stdout (live, or replayed from the ledger)
 * is the run's output.
 */
export interface CommandContext {
  readonly args: readonly string[];
  readonly stdin: string;
  readonly stdout: (text: string) => void;
}

/** The host thread's side of a call: the grant, the run, and the host's own services. */
export interface HostCallContext<G extends Grant = Grant> {
  readonly grant: G;
  readonly component: string;
  readonly runId: string;
  /** The seq of the call's intent record. */
  readonly seq: number | undefined;
  /** The run's W3C trace context when the run is traced (its span is the parent of what the call causes). */
  readonly traceparent?: string;
  readonly secrets: SecretSource;
  readonly config: HostConfig;
  /** Asks the host's approver (for a step only the host thread discovers: a redirect hop under an ask rule). */
  approve(request: ApprovalRequest): Promise<ApprovalAnswer>;
  /**
   * A resource kept across this component's runs under this policy (e.g. its connection pool), made on
   * first use and closed with the host; never shared with another component or policy.
   */
  shared<T extends { close(): void }>(key: string, make: () => T): T;
  /** Aborted when the run ends (done, stopped at its deadline, or killed): stop what is still in flight. */
  readonly signal: AbortSignal;
}

/** The host's settings some capabilities read on the host thread (host options). */
export interface HostConfig {
  /** Model providers (model): `ModelConfig` of capabilities/model/providers.ts. */
  readonly models?: ModelConfig;
  /** Egress DNS (http). */
  readonly resolve?: (hostname: string) => Promise<readonly string[]>;
  /** Extra CA certificates trusted for egress TLS (http). */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}

export interface ApprovalRequest {
  readonly runId: string;
  readonly component: string;
  /** `http.fetch`, `kv.set`, ... */
  readonly call: string;
  /** The ask rule, e.g. `grants.http.ask[0]`. */
  readonly rule: string;
  /** What is asked for, e.g. `POST https://api.example.com/v1/issues`. */
  readonly summary: string;
  /** The value or body asked about (bounded), when there is one. */
  readonly detail?: AskDetail;
  readonly timeoutMs: number;
}

export interface ApprovalAnswer extends ApprovalRecord {
  readonly reason?: string;
}

// ── load ─────────────────────────────────────────────────────────────────────────────────────────

export interface LoadContext {
  readonly policySource: string;
  readonly origin: string;
  readonly secrets: SecretSource;
}

/** A reason to refuse a load that only the capability can see (a missing secret, a mount that does not exist). */
export interface LoadProblem {
  readonly code: LoadErrorCode;
  readonly message: string;
}

// ── the definitions ──────────────────────────────────────────────────────────────────────────────

interface CapabilityBase<Name extends string, G extends Grant> {
  readonly name: Name;
  /** One line: what it grants (for `ice inspect` and the README). */
  readonly summary: string;
  readonly policy: PolicySlice<G>;
  /** Refuses a load the policy makes impossible to serve. */
  checkLoad?(grant: G, context: LoadContext): LoadProblem | undefined;
  /**
   * The policy keys of this grant that need the host thread free while the guest runs (worker
   * execution): host effects, and ask rules (the approver). Default: `grants.<name>` when the
   * capability has host effects.
   */
  hostThreadKeys?(grant: G): readonly string[];
}

export interface IceCapability<Name extends string = string, Interface = unknown, G extends Grant = Grant> extends CapabilityBase<Name, G> {
  readonly kind: 'ice';
  /** Every function of the WIT interface, in WIT order, with what its effect touches. */
  readonly functions: { readonly [F in FunctionsOf<Interface>]: FunctionSpec };
  /** The operations for one run under a compiled grant. */
  operations(grant: G, run: RunContext): InterfaceOperations<Interface>;
  /** Effects the host thread serves (a `host` function's), declared so the bridge can be built from the registry. */
  readonly hostEffects?: Readonly<Record<string, HostEffect<never, unknown, G>>>;
  /**
   * ICE's own canonical-ABI binding of the interface (in place of jco's per-call trampolines): the core
   * import functions, given the guest's memory and the kernel's import functions.
   */
  binding?(abi: Abi, functions: Readonly<Record<string, (...args: unknown[]) => unknown>>): Record<string, CoreFunction>;
}

/** What the kernel offers a capability that builds its own import table: the one choke point. */
export interface Mediation {
  /** A call site: made once per (interface, function) a run uses. */
  site(spec: SiteSpec): CallSite;
  /** Decides, records and performs (or answers from a recording) one call at `site`. */
  invoke(site: CallSite, args: unknown[]): Answer;
  /**
   * Milliseconds until the run's deadline (Infinity where none is kept here, as in a worker, which is
   * terminated instead): a capability that blocks the thread (a WASI clock pollable) waits no longer.
   */
  timeLeft(): number;
  /** Ends the run with its timeout, as an import call past the deadline does, if the deadline has passed. */
  stopIfPastDeadline(): void;
}

/** How the kernel answers a guest: the WIT result, as jco lowers it (`payload` never reaches the ABI). */
export type Answer = { readonly tag: 'ok'; readonly val: unknown } | { readonly tag: 'err'; readonly val: IceError };

export interface SiteSpec {
  /** The ledger's name of the call: `wasi:cli/environment@0.2.3#get-environment`. */
  readonly call: string;
  /** How messages name it: `get-environment`. */
  readonly label: string;
  /** The budget this call counts against (shared by every function of the capability). */
  readonly budget: Budget;
  readonly effect: EffectKind;
  readonly form: LedgerForm;
  readonly decide: (args: readonly unknown[]) => Decided;
  readonly perform: (args: readonly unknown[], call: CallContext) => unknown;
}

export interface CallSite extends SiteSpec {
  /** Arguments recorded whole whatever audit.maxCaptureBytes says (state writes: the fold needs them). */
  readonly keepWhole: boolean;
}

/** Calls per run to a capability. */
export interface Budget {
  made: number;
  readonly max: number;
  /** `grants.<name>.maxCalls`. */
  readonly rule: string;
  /** `<name>`, for the message. */
  readonly name: string;
}

export interface ForeignCapability<Name extends string = string, G extends Grant = Grant, Claim = unknown> extends CapabilityBase<Name, G> {
  readonly kind: 'foreign';
  /** The import this capability serves, parsed (`wasi:cli/environment@0.2.3`), or undefined when it is not one. */
  claim(name: string): Claim | undefined;
  /** The policy key that grants a claimed import, for `ice inspect` and messages. */
  policyKeyOf(claim: Claim): string;
  /** What the grant leaves uncovered, one message per missing key (absent grant: `grant` is undefined). */
  uncovered(claims: readonly Claim[], grant: G | undefined, policySource: string, origin: string): readonly string[];
  /** Loads what a run needs before it starts (preview2-shim); once per process. */
  prepare?(): Promise<void>;
  /** The run's import table for its claimed imports, every call through `mediation.invoke`. */
  bind(grant: G, claims: readonly Claim[], run: RunContext, mediation: Mediation): Record<string, Record<string, unknown>>;
}

/** Any capability, its types erased: what the registry lists and the kernel iterates. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Capability = IceCapability<string, any, any> | ForeignCapability<string, any, any>;

export type { CompileContext };
