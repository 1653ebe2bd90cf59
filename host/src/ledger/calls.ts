/**
 * A run's import calls as a reader thinks of them: one entry per call, whether the ledger holds it as
 * one `call` record or as an `intent` and its `result`. What `audit show`, replay and the views read;
 * verification works on the records themselves (verify.ts).
 */
import type { Approval, CallOutcome, CallRecord, Captured, Decision, IntentDecision, IntentRecord, LedgerRecord, ResultRecord } from './records.js';

export interface LedgerCall {
  /** The seq of the call record, or of the intent. */
  readonly seq: number;
  readonly at: string;
  readonly call: string;
  readonly args: readonly Captured[];
  /** The final decision; for a call whose outcome is unknown, its intent's (`allow`, or `ask` while the approver was asked). */
  readonly decision: Decision | IntentDecision;
  readonly rule: string;
  /** Undefined: the run stopped during the call's effect, so its outcome is unknown. */
  readonly outcome: CallOutcome | undefined;
  readonly durationUs: number | undefined;
  readonly hop?: number;
  readonly approval?: Approval;
  /** The seq of the result record, when the call was recorded as intent and result. */
  readonly resultSeq?: number;
}

export function isUnknown(call: LedgerCall): boolean {
  return call.outcome === undefined;
}

/** The calls of a run's records (in seq order), each intent joined with its result. */
export function ledgerCalls(records: Iterable<LedgerRecord>): LedgerCall[] {
  const out: LedgerCall[] = [];
  const byIntent = new Map<number, number>();
  for (const record of records) {
    if (record.type === 'call') out.push(fromCall(record));
    else if (record.type === 'intent') {
      byIntent.set(record.seq, out.length);
      out.push(fromIntent(record));
    } else if (record.type === 'result') {
      const index = byIntent.get(record.intent);
      if (index === undefined) continue; // verify reports it; a reader shows what it can
      out[index] = withResult(out[index]!, record);
    }
  }
  return out;
}

function fromCall(r: CallRecord): LedgerCall {
  return {
    seq: r.seq,
    at: r.at,
    call: r.call,
    args: r.args,
    decision: r.decision,
    rule: r.rule,
    outcome: r.outcome,
    durationUs: r.durationUs,
    ...(r.hop === undefined ? {} : { hop: r.hop }),
    ...(r.approval === undefined ? {} : { approval: r.approval }),
  };
}

function fromIntent(r: IntentRecord): LedgerCall {
  return { seq: r.seq, at: r.at, call: r.call, args: r.args, decision: r.decision, rule: r.rule, outcome: undefined, durationUs: undefined };
}

/** An intent joined with its result: exactly the call a single record would have shown. */
export function withResult(intent: LedgerCall, r: ResultRecord): LedgerCall {
  return {
    ...intent,
    decision: r.decision,
    rule: r.rule,
    outcome: r.outcome,
    durationUs: r.durationUs,
    resultSeq: r.seq,
    ...(r.approval === undefined ? {} : { approval: r.approval }),
  };
}
