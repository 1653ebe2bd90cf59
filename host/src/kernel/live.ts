/**
 * The live answerer: every call of a run, in this order —
 *   1. the capability's call budget, then its `decide` on the compiled grant;
 *   2. an `ask` is put to the host's approver (the run waits), once its intent is durable;
 *   3. an effect that leaves the run (`host`) starts only once its intent is durable;
 *   4. the effect, only on `allow` (a state write commits in the same transaction as its record);
 *   5. the record: one call record, or the result of the intent;
 *   6. the answer: ok, or the typed `error` variant.
 * A fault of the host itself (a decision, an effect or the ledger failing) is recorded when possible and
 * traps the run with host blame: the guest never sees a half-done call as a success.
 */
import { capture, type Captured } from '../core/capture.js';
import { isoNow } from '../ledger/records.js';
import { deny, overLimit, type ApprovalRecord, type Ask, type IceError, type Verdict } from '../core/verdict.js';
import { RefusedEffect, Steps, type Answer, type ApprovalAnswer, type ApprovalRequest, type CallContext, type CallSite, type HostEffect, type RunContext, type StepResult } from '../capabilities/define.js';
import { hostEffectKey } from '../capabilities/registry.js';
import { COMPACT_ARG_BYTES, LEDGER_RESERVE_BYTES, LEDGER_RULE, RUN_END_ROOM_BYTES, recordBytesBound, type CallInput, type IntentInput, type QueuedInput, type ResultInput } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';
import { HostFault, LedgerBudgetSpent, type Answerer } from './kernel.js';

/** Where the kernel records calls: a run's (buffered) writer. */
export interface CallRecorder {
  /** `bound`: recordBytesBound of `call`, when the caller computed it already (the writer needs it too). */
  appendCall(call: CallInput, bound?: number): unknown;
  /** Makes the intent durable (with everything queued before it: the intent log, or a commit); returns its seq. */
  appendIntent(intent: IntentInput): number;
  appendResult(result: ResultInput, bound?: number): unknown;
  /** Commits what is queued; called before a state write opens its transaction. */
  flush(): void;
  /** An upper bound of the bytes of the run's records so far; exact right after `flush()`. */
  readonly bytesBound: number;
  /** The exact bytes `input` would take as the next record (commits the queue first). */
  measure(input: QueuedInput): number;
  /** Seq of the last record written or queued. */
  readonly seq: number;
}

/** A blocking call to the host thread (worker execution): a host effect, or the approver. */
export interface HostBridge {
  call(key: string, payload: BridgeRequest): unknown;
}

/** What a run's thread sends for a host effect: the run it is for, the seq of its intent, the request. */
export interface BridgeRequest {
  readonly runId: string;
  readonly seq: number | undefined;
  readonly request: unknown;
}

/** The bridge key of an ask: the host thread's approver. */
export const APPROVAL = 'approve';

export interface LiveServices {
  readonly state: StateDb;
  readonly recorder: CallRecorder;
  /**
   * The host thread (http, model, approvals); a worker reaches it over the bridge. Absent in in-process
   * execution, where a policy needing it is refused at load.
   */
  readonly bridge?: HostBridge;
}

/** A duration no call reaches (12 digits of µs, 11 days): a record measured with it is never smaller than the one written. */
const MAX_DURATION_US = 999_999_999_999;

/** A call site's effect answered with a value the host could not complete: the guest gets `failed`, the run goes on. */
class FailedStep {
  constructor(readonly message: string) {}
}

interface RecordExtra {
  readonly approval?: ApprovalRecord | undefined;
  /** For a follow-up record (a redirect hop). */
  readonly hop?: number;
  /** Measured where the step ran (the host thread), for follow-ups. */
  readonly durationUs?: number;
}

export class LiveAnswerer implements Answerer {
  private ownFault: HostFault | undefined;
  /** Asks this run put to the approver (limits.maxAsks). */
  private asks = 0;
  /** The current call's captured arguments (calls never overlap on a run's thread). */
  private captured: { readonly args: readonly unknown[]; readonly values: Captured[] } | undefined;
  /** Given to `perform`; one object, its seq set per call (calls never overlap on a run's thread). */
  private readonly context: CallContext & { seq: number | undefined };

  constructor(
    private readonly run: RunContext,
    private readonly services: LiveServices,
  ) {
    this.context = { seq: undefined, host: (effect, request) => this.host(effect, request) };
  }

  get hostFault(): Error | undefined {
    return this.ownFault;
  }

  answer(site: CallSite, args: unknown[]): Answer {
    const started = performance.now();
    this.captured = undefined;
    // Until a verdict exists, a failure is a check that failed: recorded as a denial by the interface.
    let decided: { decision: Verdict['decision']; rule: string } | undefined;
    let intent: number | undefined;
    // Fail closed: a decision, effect or record that throws traps the run with host blame; nothing
    // half-done is ever answered as a success.
    try {
      const { budget } = site;
      const made = ++budget.made;
      const first = made > budget.max ? overLimit(budget.rule, `${site.label} is call ${made} to ${budget.name} in this run, over ${budget.rule} (${budget.max})`) : site.decide(args);
      let verdict: Verdict;
      let approval: ApprovalRecord | undefined;
      if (first.decision === 'ask' && this.asks >= this.run.limits.maxAsks) {
        // Refused without asking: the human is not shown the question at all.
        const max = this.run.limits.maxAsks;
        return this.finish(site, args, undefined, overLimit('limits.maxAsks', `${site.label} needs approval under ${first.rule}, but this run already asked ${max} times, the most limits.maxAsks (${max}) allows`), undefined, started, {});
      }
      if (first.decision === 'ask') {
        this.asks++;
        decided = { decision: 'deny', rule: first.rule };
        const over = this.overBudget(site, this.intentInput(site, args, 'ask', first.rule));
        if (over) return this.finish(site, args, undefined, over, undefined, started, {});
        // The question leaves the run: it is durable before the approver sees it.
        intent = this.intent(site, args, 'ask', first.rule);
        ({ verdict, approval } = this.approve(site.label, first));
      } else verdict = first;
      decided = verdict;
      if (verdict.decision !== 'allow') return this.finish(site, args, intent, verdict, undefined, started, { approval });
      // An effect starts only once the record announcing it (its intent, or its call record) is sure to fit the budget.
      if (intent === undefined) {
        const announced =
          site.effect === 'host'
            ? this.intentInput(site, args, 'allow', verdict.rule)
            : ({ call: site.call, args: this.captureArgs(site, args), decision: 'allow', rule: verdict.rule, outcome: { ok: null }, durationUs: MAX_DURATION_US } satisfies CallInput);
        const over = this.overBudget(site, announced);
        if (over) return this.finish(site, args, undefined, over, undefined, started, {});
      }
      if (site.effect === 'host' && intent === undefined) intent = this.intent(site, args, 'allow', verdict.rule);
      if (site.effect !== 'state') return this.perform(site, args, intent, verdict, started, approval);
      // The write, its record and every record before it commit together, in call order.
      this.services.recorder.flush();
      return this.services.state.transaction(() => this.perform(site, args, intent, verdict, started, approval, intent ?? this.services.recorder.seq + 1));
    } catch (error) {
      // Not a host fault: the guest ran its own ledger budget out; the run ends as its trap.
      if (error instanceof LedgerBudgetSpent) throw error;
      throw this.fault(site, args, intent, decided ?? { decision: 'deny', rule: `grants.${site.budget.name}` }, error, started);
    }
  }

  private perform(site: CallSite, args: unknown[], intent: number | undefined, verdict: Verdict, started: number, approval: ApprovalRecord | undefined, seq = intent): Answer {
    this.context.seq = seq;
    const value = site.perform(args, this.context);
    if (value instanceof RefusedEffect) return this.finish(site, args, intent, value.refusal, undefined, started, { approval });
    if (value instanceof Steps) return this.finishSteps(site, args, intent, verdict, value, started, approval);
    return this.finish(site, args, intent, verdict, value, started, { approval });
  }

  /** Makes durable the intent of a call whose effect leaves the run; returns its seq. */
  private intent(site: CallSite, args: unknown[], decision: 'allow' | 'ask', rule: string): number {
    return this.services.recorder.appendIntent(this.intentInput(site, args, decision, rule));
  }

  private intentInput(site: CallSite, args: unknown[], decision: 'allow' | 'ask', rule: string): IntentInput {
    return { call: site.call, args: this.captureArgs(site, args), decision, rule, at: isoNow() };
  }

  /**
   * The `limit` refusal of a call whose record would take the run's ledger past limits.maxLedgerBytes, or
   * undefined when it fits. A bound from string lengths decides almost every call; only a record the
   * bound cannot place under the budget is measured exactly (which commits the queue first).
   */
  private overBudget(site: CallSite, input: QueuedInput, bound = recordBytesBound(this.run.runId, input)): Verdict | undefined {
    const recorder = this.services.recorder;
    const max = this.run.limits.maxLedgerBytes;
    if (recorder.bytesBound + bound <= max) return undefined;
    const bytes = recorder.measure(input);
    const used = recorder.bytesBound;
    if (used + bytes <= max) return undefined;
    return overLimit(
      LEDGER_RULE,
      `${site.label}: its record (${bytes} bytes) would take the run's ledger past ${LEDGER_RULE} (${max}; ${used} bytes used); ` +
        `raise ${LEDGER_RULE} in the policy, or record less (audit.maxCaptureBytes, audit.capture: digest)`,
    );
  }

  /**
   * A call refused for the ledger budget is recorded compactly: an argument over COMPACT_ARG_BYTES as its digest. It draws on
   * the reserve; once that is spent too (a guest calling on regardless), the run is stopped.
   */
  private compact<Input extends CallInput | ResultInput>(site: CallSite, args: unknown[], input: Input): Input {
    const small = 'args' in input ? { ...input, args: site.form.args(args).map((arg) => capture(arg, this.run.capture, COMPACT_ARG_BYTES)) } : input;
    const recorder = this.services.recorder;
    const max = this.run.limits.maxLedgerBytes + LEDGER_RESERVE_BYTES - RUN_END_ROOM_BYTES;
    if (recorder.bytesBound + recordBytesBound(this.run.runId, small) > max && recorder.bytesBound + recorder.measure(small) > max) {
      throw new LedgerBudgetSpent(
        `the guest kept calling after its ledger budget was spent: ${LEDGER_RULE} (${this.run.limits.maxLedgerBytes}) and the ` +
          `${LEDGER_RESERVE_BYTES}-byte reserve for limit records are used up; raise ${LEDGER_RULE} in the policy`,
      );
    }
    return small;
  }

  private host<Request, Reply>(effect: HostEffect<Request, Reply, never>, request: Request): Reply {
    const bridge = this.services.bridge;
    // Host.load refuses such a policy in in-process execution; reaching this is a host bug: fail closed.
    if (!bridge) throw new Error('this execution has no host thread for http, model or approvals');
    return bridge.call(hostEffectKey(effect), { runId: this.run.runId, seq: this.context.seq, request }) as Reply;
  }

  /** Waits for the host's approver (never inside a transaction: a human may take a while). */
  private approve(label: string, asked: Ask): { verdict: Verdict; approval: ApprovalRecord } {
    const bridge = this.services.bridge;
    if (!bridge) throw new Error('this execution has no host thread for approvals');
    const request: ApprovalRequest = {
      runId: this.run.runId,
      component: this.run.component,
      call: label,
      rule: asked.rule,
      summary: asked.summary,
      ...(asked.detail ? { detail: asked.detail } : {}),
      timeoutMs: asked.timeoutMs,
    };
    const answer = bridge.call(APPROVAL, { runId: this.run.runId, seq: undefined, request }) as ApprovalAnswer;
    const approval: ApprovalRecord = { by: answer.by, answer: answer.answer, waitedMs: answer.waitedMs };
    if (answer.answer === 'approved') return { verdict: { decision: 'allow', rule: asked.rule }, approval };
    const why =
      answer.answer === 'timeout'
        ? `no answer from the approver within ${asked.timeoutMs} ms (${asked.rule} is an ask rule)`
        : `the approver (${answer.by}) said no${answer.reason ? `: ${answer.reason}` : ''}`;
    return { verdict: deny(asked.rule, `${label} needs approval under ${asked.rule} and was not approved: ${why}`), approval };
  }

  /** A call whose effect took several steps: its record (or result), then one record per hop; the guest gets the last. */
  private finishSteps(site: CallSite, args: unknown[], intent: number | undefined, verdict: Verdict, steps: Steps, started: number, approval: ApprovalRecord | undefined): Answer {
    let answer = this.finishStep(site, args, intent, verdict.rule, steps.first, started, { approval });
    steps.followUps.forEach((hop, index) => {
      answer = this.finishStep(site, [...hop.args], undefined, hop.rule, hop.result, undefined, {
        hop: index + 1,
        durationUs: hop.durationUs,
        ...(hop.approval ? { approval: hop.approval } : {}),
      });
    });
    return answer;
  }

  private finishStep(site: CallSite, args: unknown[], intent: number | undefined, rule: string, result: StepResult, started: number | undefined, extra: RecordExtra): Answer {
    if ('refused' in result) return this.finish(site, args, intent, result.refused, undefined, started, extra);
    if ('ok' in result) return this.finish(site, args, intent, { decision: 'allow', rule }, result.ok, started, extra);
    return this.finish(site, args, intent, { decision: 'allow', rule }, new FailedStep(result.failed), started, extra);
  }

  /**
   * Records the call (or its intent's result) and builds the guest's answer. A ledger failure
   * propagates: the caller faults. Call counts are the writer's (it follows rollbacks), never tallied here.
   */
  private finish(site: CallSite, args: unknown[], intent: number | undefined, verdict: Verdict, value: unknown, started: number | undefined, extra: RecordExtra): Answer {
    const durationUs = extra.durationUs ?? Math.round((performance.now() - (started ?? performance.now())) * 1000);
    // The call's time, set here so a queued record does not need a copy to carry it.
    const at = isoNow();
    let input = this.recordInput(site, args, intent, verdict, value, durationUs, at, extra);
    // The record's size bound, computed once: the budget check and the writer's tally both need it.
    let bound: number | undefined;
    // A state write was checked against the budget before it was made (its outcome is known in advance);
    // any other record is checked as it is, and one that would not fit becomes a limit.
    if (verdict.rule !== LEDGER_RULE && !(verdict.decision === 'allow' && site.effect === 'state' && !(value instanceof FailedStep))) {
      bound = recordBytesBound(this.run.runId, input);
      const over = this.overBudget(site, input, bound);
      if (over) {
        verdict = over;
        bound = undefined;
        input = this.recordInput(site, args, intent, verdict, undefined, durationUs, at, extra);
      }
    }
    if (verdict.rule === LEDGER_RULE && verdict.decision === 'limit') input = this.compact(site, args, input);
    if (intent !== undefined) this.services.recorder.appendResult(input as ResultInput, bound);
    else this.services.recorder.appendCall(input as CallInput, bound);
    if (verdict.decision !== 'allow') return { tag: 'err', val: verdict.error };
    if (value instanceof FailedStep) return { tag: 'err', val: { tag: 'failed', val: value.message } satisfies IceError };
    return { tag: 'ok', val: value };
  }

  /** The record of a call (or its intent's result) with this verdict and value. */
  private recordInput(site: CallSite, args: unknown[], intent: number | undefined, verdict: Verdict, value: unknown, durationUs: number, at: string, extra: RecordExtra): CallInput | ResultInput {
    const allowed = verdict.decision === 'allow';
    const failed = value instanceof FailedStep ? value.message : undefined;
    const max = site.keepWhole ? Number.POSITIVE_INFINITY : this.run.maxCaptureBytes;
    const outcome = !allowed
      ? { err: { kind: verdict.error.tag, message: verdict.error.val } }
      : failed !== undefined
        ? { err: { kind: 'failed' as const, message: failed } }
        : { ok: value === undefined ? null : capture(site.form.result(value), this.run.capture, max) };
    if (intent !== undefined) {
      const result: ResultInput = { call: site.call, intent, decision: verdict.decision, rule: verdict.rule, outcome, durationUs, at };
      if (extra.approval) result.approval = { ...extra.approval };
      return result;
    }
    const call: CallInput = { call: site.call, args: this.captureArgs(site, args), decision: verdict.decision, rule: verdict.rule, outcome, durationUs, at };
    if (extra.hop !== undefined) call.hop = extra.hop;
    if (extra.approval) call.approval = { ...extra.approval };
    return call;
  }

  /** A state write's arguments are the event the kv view is folded from: recorded whole, whatever audit.maxCaptureBytes says. */
  private captureArgs(site: CallSite, args: readonly unknown[]): Captured[] {
    // The budget check and the record capture the same arguments: once (a large one costs a digest).
    if (this.captured?.args === args) return this.captured.values;
    const max = site.keepWhole ? Number.POSITIVE_INFINITY : this.run.maxCaptureBytes;
    const values = site.form.args(args).map((arg) => capture(arg, this.run.capture, max));
    this.captured = { args, values };
    return values;
  }

  private fault(site: CallSite, args: unknown[], intent: number | undefined, decided: { decision: Verdict['decision']; rule: string }, error: unknown, started: number): HostFault {
    const reason = error instanceof Error ? error.message : String(error);
    const fault = new HostFault(`host fault in ${site.label}: ${reason}`);
    this.ownFault = fault;
    try {
      const outcome = { err: { kind: 'failed' as const, message: fault.message } };
      const durationUs = Math.round((performance.now() - started) * 1000);
      if (intent !== undefined) this.services.recorder.appendResult({ call: site.call, intent, ...decided, outcome, durationUs });
      else this.services.recorder.appendCall({ call: site.call, args: this.captureArgs(site, args), ...decided, outcome, durationUs });
    } catch {
      // The ledger itself failed; the run-end record (written by the runner) still carries the reason.
    }
    return fault;
  }
}
