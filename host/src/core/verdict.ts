/**
 * The vocabulary of a decision, shared by every layer: what a capability's `decide` returns, what the
 * kernel records, what the ledger counts and what a guest is answered. A policy outcome is always one
 * of these values, never an exception.
 */

/** The WIT `error` variant (ice:agent/types), as jco lifts and lowers it. */
export interface IceError {
  readonly tag: 'denied' | 'limit' | 'invalid' | 'failed';
  readonly val: string;
}

/** How a call was decided, as the ledger counts it. */
export type Decision = 'allow' | 'deny' | 'limit' | 'invalid';

export type Refusal = { readonly decision: 'deny' | 'limit' | 'invalid'; readonly rule: string; readonly error: IceError };
export type Allowed = { readonly decision: 'allow'; readonly rule: string };
/**
 * An `ask` rule matched: the kernel asks the host's approver (the run waits) and the call goes on as
 * allowed under `rule` only if the answer is yes in time; otherwise it is denied under `rule`.
 */
export type Ask = { readonly decision: 'ask'; readonly rule: string; readonly timeoutMs: number; readonly summary: string };
export type Verdict = Allowed | Refusal;
export type Decided = Verdict | Ask;

/** Who answered an `ask`, as the ledger records it. */
export interface ApprovalRecord {
  readonly by: string;
  readonly answer: 'approved' | 'denied' | 'timeout';
  readonly waitedMs: number;
}

export function allow(rule: string): Allowed {
  return { decision: 'allow', rule };
}
export function ask(rule: string, timeoutMs: number, summary: string): Ask {
  return { decision: 'ask', rule, timeoutMs, summary };
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
