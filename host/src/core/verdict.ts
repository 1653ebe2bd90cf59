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
export type Ask = { readonly decision: 'ask'; readonly rule: string; readonly timeoutMs: number; readonly summary: string; readonly detail?: AskDetail };

/**
 * The data an ask is about (a kv value, an http body), so an approver sees what it lets through, not
 * only where it goes. `head` is its start (at most `ASK_DETAIL_HEAD` characters: a prompt shows less,
 * and a guest cannot push megabytes through the approval bridge); `bytes` its whole UTF-8 size.
 */
export interface AskDetail {
  readonly what: string;
  readonly head: string;
  readonly bytes: number;
}
export const ASK_DETAIL_HEAD = 1000;

export function askDetail(what: string, data: string | Uint8Array): AskDetail {
  if (typeof data === 'string') return { what, head: data.slice(0, ASK_DETAIL_HEAD), bytes: Buffer.byteLength(data, 'utf8') };
  // A body that is not UTF-8 shows U+FFFD where it is not: the prompt says what a reader would see.
  return { what, head: new TextDecoder().decode(data.subarray(0, ASK_DETAIL_HEAD * 4)).slice(0, ASK_DETAIL_HEAD), bytes: data.byteLength };
}
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
export function ask(rule: string, timeoutMs: number, summary: string, detail?: AskDetail): Ask {
  return detail ? { decision: 'ask', rule, timeoutMs, summary, detail } : { decision: 'ask', rule, timeoutMs, summary };
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
