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
export type Verdict = { readonly decision: 'allow'; readonly rule: string } | Refusal;

/**
 * Returned by a `perform` that finds, while doing the effect, that the answer would break a budget
 * (e.g. a listing larger than the host returns): the call is then recorded and answered as refused.
 */
export class RefusedEffect {
  constructor(readonly refusal: Refusal) {}
}

export interface Operation<Args extends readonly unknown[] = readonly unknown[], Result = unknown> {
  /** Pure: policy + arguments → verdict. Never has an effect. */
  decide(args: Args): Verdict;
  /**
   * The effect, run only after an `allow`; its return value is the ok payload for the guest. An
   * optional result may be `null` for none (jco lowers null and undefined alike; the ledger then
   * shows none as a value rather than as a unit result).
   */
  perform(args: Args): Result | (undefined extends Result ? null : never) | RefusedEffect;
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
