/**
 * The shape every capability module fills in: for each WIT function, a `decide` that reads only the
 * compiled policy and the arguments, and a `perform` that has the effect. Only the mediator calls
 * them, in that order, so no effect can run without a decision and a ledger record.
 */
import type { Capture } from '../policy/index.js';

/** The WIT `error` variant as jco expects it. */
export interface IceError {
  readonly tag: 'denied' | 'limit' | 'invalid' | 'failed';
  readonly val: string;
}

export type Decision = 'allow' | 'deny' | 'limit' | 'invalid';

export type Refusal = { readonly decision: 'deny' | 'limit' | 'invalid'; readonly rule: string; readonly error: IceError };
/**
 * An `ask` rule matched: the mediator asks the host's approver (the run waits) and the call goes on as
 * allowed under `rule` only if the answer is yes in time; otherwise it is denied under `rule`.
 */
export type Ask = { readonly decision: 'ask'; readonly rule: string; readonly timeoutMs: number; readonly summary: string };
export type Allowed = { readonly decision: 'allow'; readonly rule: string };
export type Verdict = Allowed | Refusal;
export type Decided = Verdict | Ask;

/**
 * Returned by a `perform` that finds, while doing the effect, that the answer would break a budget
 * (e.g. a listing larger than the host returns): the call is then recorded and answered as refused.
 */
export class RefusedEffect {
  constructor(readonly refusal: Refusal) {}
}

/** Who answered an `ask`, as the ledger records it. */
export interface ApprovalRecord {
  readonly by: string;
  readonly answer: 'approved' | 'denied' | 'timeout';
  readonly waitedMs: number;
}

/** How one host-side step of a call ended: its value, a refusal found while doing it, or a failure. */
export type StepResult = { readonly ok: unknown } | { readonly refused: Refusal } | { readonly failed: string };

/** One more record a call produced after its first (a redirect hop): its own arguments, decision and result. */
export interface FollowUp {
  readonly args: readonly unknown[];
  readonly rule: string;
  readonly result: StepResult;
  readonly durationUs: number;
  readonly approval?: ApprovalRecord;
}

/**
 * Returned by a `perform` whose effect took more than one step (an HTTP fetch that followed redirects, or
 * one that failed): `first` is the outcome of the call as the guest made it, `followUps` the records of
 * the hops after it. The guest gets the last step's result.
 */
export class Steps {
  constructor(
    readonly first: StepResult,
    readonly followUps: readonly FollowUp[] = [],
  ) {}
}

export interface Operation<Args extends readonly unknown[] = readonly unknown[], Result = unknown> {
  /** Pure: policy + arguments → verdict. Never has an effect. */
  decide(args: Args): Decided;
  /**
   * The effect, run only after an `allow`; its return value is the ok payload for the guest. An
   * optional result may be `null` for none (jco lowers null and undefined alike; the ledger then
   * shows none as a value rather than as a unit result).
   */
  perform(args: Args): Result | (undefined extends Result ? null : never) | RefusedEffect | Steps;
  /**
   * True when the effect writes the state database: the write and its ledger record then commit in
   * one transaction, so the store never holds a write the ledger does not show.
   */
  readonly writesState?: boolean;
}

/** A capability's functions, keyed by WIT function name (`get`, `set`, ...). */
export type CapabilityOperations = Readonly<Record<string, Operation>>;

/**
 * The operations of one WIT interface, typed from the declarations jco generates from wit/
 * (host/src/generated): arguments and ok results cannot drift from the WIT.
 */
export type InterfaceOperations<Interface> = {
  readonly [F in keyof Interface as Interface[F] extends (...args: never[]) => unknown ? F : never]: Interface[F] extends (
    ...args: infer A
  ) => infer R
    ? Operation<Readonly<A>, R>
    : never;
};

/** What a capability needs from the run it serves (plain data plus host services). */
export interface RunScope {
  readonly component: string;
  readonly runId: string;
  readonly capture: Capture;
  /** audit.maxCaptureBytes. */
  readonly maxCaptureBytes: number;
}

export function ask(rule: string, timeoutMs: number, summary: string): Ask {
  return { decision: 'ask', rule, timeoutMs, summary };
}
export function allow(rule: string): Verdict {
  return { decision: 'allow', rule };
}
export function deny(rule: string, message: string): Refusal {
  return { decision: 'deny', rule, error: { tag: 'denied', val: message } };
}
export function overLimit(rule: string, message: string): Refusal {
  return { decision: 'limit', rule, error: { tag: 'limit', val: message } };
}
export function invalid(rule: string, message: string): Refusal {
  return { decision: 'invalid', rule, error: { tag: 'invalid', val: message } };
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** `"count"` — quoted and shortened for messages, so a hostile key cannot flood an error string. */
export function quote(text: string, max = 64): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}
