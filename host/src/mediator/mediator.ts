/**
 * The mediator: the one place a guest's import call goes through. For every call it
 *   1. decides: the per-run call budget, then the capability's `decide` on the compiled policy;
 *   2. performs the effect only on `allow` (a state write commits in the same transaction as its record);
 *   3. records exactly one ledger record (arguments, decision, rule, outcome, duration);
 *   4. answers the guest with the WIT result: ok, or the typed `error` variant.
 * A fault of the host itself (an effect or the ledger failing) is recorded when possible and then traps
 * the run with host blame: the guest never sees a half-done call as a success.
 */
import type { CompiledPolicy, Denied } from '../policy/index.js';
import type { StateDb } from '../state/db.js';
import type { KvStore } from '../state/kv-store.js';
import { capture, isoNow, type CallInput } from '../ledger/index.js';
import { CAPABILITY_FUNCTIONS, qualifiedInterface, type CapabilityName } from '../component/wit.js';
import { createClock } from '../capabilities/clock.js';
import { createEvents, type GuestEventSink } from '../capabilities/events.js';
import { createKv } from '../capabilities/kv.js';
import { createLog, type GuestLogSink } from '../capabilities/log.js';
import { createRandom } from '../capabilities/random.js';
import type { HostGateway } from '../capabilities/gateway.js';
import type { WasiImport } from '../wasi/interfaces.js';
import { WasiMediator, type WasiOutputSink } from '../wasi/mediate.js';
import { createHttp } from '../capabilities/http.js';
import { ledgerForm, type LedgerForm } from '../capabilities/ledger-forms.js';
import { createModel } from '../capabilities/model.js';
import {
  RefusedEffect,
  Steps,
  deny,
  overLimit,
  type ApprovalRecord,
  type Ask,
  type CapabilityOperations,
  type IceError,
  type Operation,
  type RunScope,
  type StepResult,
  type Verdict,
} from '../capabilities/operation.js';

/** Host services a run's capabilities use; constructible from plain data in any thread. */
export interface MediatorServices {
  readonly state: StateDb;
  readonly kv: KvStore;
  readonly guestLog: GuestLogSink;
  readonly events?: GuestEventSink;
  readonly now?: () => number;
  /**
   * Effects served by the host thread (HTTP, model calls, approvals); a worker reaches it over the
   * bridge. Absent in in-process execution, where a policy needing it is refused at load.
   */
  readonly gateway?: HostGateway;
  /** Receives what a WASI guest writes to its captured stdout and stderr. */
  readonly wasiOutput?: WasiOutputSink;
}

type WitResult = { tag: 'ok'; val: unknown } | { tag: 'err'; val: IceError };

/** Thrown into the guest (so the run traps) when the host itself failed; never a policy outcome. */
export class HostFault extends Error {
  override readonly name = 'HostFault';
}

/** Where the mediator records calls: a run's (buffered) writer. */
export interface CallRecorder {
  appendCall(call: CallInput): unknown;
  /** Commits what is queued; called before a state write opens its transaction. */
  flush(): void;
}

export class RunMediator {
  /** Set when a host fault trapped the run, so the run-end blames the host. */
  private ownFault: HostFault | undefined;
  private wasi: WasiMediator | undefined;

  get hostFault(): Error | undefined {
    return this.ownFault ?? this.wasi?.hostFault;
  }

  constructor(
    private readonly policy: CompiledPolicy,
    private readonly scope: RunScope,
    private readonly writer: CallRecorder,
    private readonly services: MediatorServices,
  ) {}

  /** The import object for jco's generated `instantiate`, for the capabilities and WASI interfaces the component imports. */
  importObject(imported: readonly CapabilityName[], wasi: readonly WasiImport[] = []): Record<string, Record<string, unknown>> {
    const table: Record<string, Record<string, unknown>> = {};
    if (wasi.length > 0) {
      const grant = this.policy.grants.wasi;
      // admit refuses WASI imports without a grants.wasi section; reaching this without one is a host bug.
      if (!grant) throw new Error('a WASI import without grants.wasi reached the mediator');
      this.wasi = new WasiMediator(grant, this.scope, this.writer, this.policy.limits, this.services.wasiOutput);
      Object.assign(table, this.wasi.importObject(wasi));
    }
    for (const name of imported) {
      const operations = this.operationsFor(name);
      const functions: Record<string, (...args: unknown[]) => WitResult> = {};
      const budget = { made: 0 }; // maxCalls counts every call to the interface, whatever the function
      for (const fn of CAPABILITY_FUNCTIONS[name]) {
        const operation = operations[fn];
        if (!operation) throw new Error(`capability ${name} has no operation ${fn}`);
        functions[fn] = this.mediated(name, fn, operation, budget);
      }
      // jco's instantiation glue looks interfaces up by their unversioned names.
      table[`ice:agent/${name}`] = functions;
    }
    return table;
  }

  private operationsFor(name: CapabilityName): CapabilityOperations {
    const grant = this.policy.grants[name];
    // admit refuses ungranted imports; a missing grant here is a host bug, so deny rather than allow.
    if (grant === undefined || grant.mode === 'deny') return deniedOperations(name, grant, this.scope, this.policy.source);
    return this.grantedOperations(name);
  }

  private grantedOperations(name: CapabilityName): CapabilityOperations {
    const { grants } = this.policy;
    switch (name) {
      case 'log':
        return untyped(createLog(asGrant(grants.log), this.scope, this.services.guestLog));
      case 'clock':
        return untyped(createClock(asGrant(grants.clock), this.services.now));
      case 'random':
        return untyped(createRandom(asGrant(grants.random)));
      case 'kv':
        return untyped(createKv(asGrant(grants.kv), this.scope, this.services.kv));
      case 'events':
        return untyped(createEvents(asGrant(grants.events), this.scope, this.services.events));
      case 'http':
        return untyped(createHttp(asGrant(grants.http), this.scope, this.gateway()));
      case 'model':
        return untyped(createModel(asGrant(grants.model), this.scope, this.gateway()));
    }
  }

  private gateway(): HostGateway {
    const { gateway } = this.services;
    // Host.load refuses such a policy in in-process execution; reaching this is a host bug: fail closed.
    if (!gateway) throw new Error('this execution has no host gateway for http, model or approvals');
    return gateway;
  }

  private mediated(name: CapabilityName, fn: string, operation: Operation, budget: { made: number }): (...args: unknown[]) => WitResult {
    // The ledger names a call interface#function (`ice:agent/kv@0.1.0#get`); messages say `kv.get`.
    const call = `${qualifiedInterface(name)}#${fn}`;
    const label = `${name}.${fn}`;
    const grant = this.policy.grants[name];
    const maxCalls = grant && grant.mode === 'grant' ? grant.maxCalls : Number.POSITIVE_INFINITY;
    const budgetRule = `grants.${name}.maxCalls`;
    const form = ledgerForm(call);
    // A state write's arguments are the event the kv view is folded from (ice state rebuild): they are
    // recorded whole, whatever audit.maxCaptureBytes says (kv sizes are capped by the grant already).
    const keepWhole = operation.writesState === true;
    const perform = (args: unknown[], verdict: Verdict, started: number, approval: ApprovalRecord | undefined): WitResult => {
      const value = operation.perform(args);
      if (value instanceof RefusedEffect) return this.finish(call, form, args, value.refusal, undefined, started, { approval });
      if (value instanceof Steps) return this.finishSteps(call, form, args, verdict, value, started, approval);
      return this.finish(call, form, args, verdict, value, started, { keepWhole, approval });
    };
    return (...args: unknown[]): WitResult => {
      const started = performance.now();
      // Until a verdict exists, a failure is a check that failed: recorded as a denial by the interface.
      let decided: Pick<Verdict, 'decision' | 'rule'> = { decision: 'deny', rule: `grants.${name}` };
      // Fail closed: a decision, effect or record that throws traps the run with host blame; nothing
      // half-done is ever answered as a success.
      try {
        const made = ++budget.made;
        const first =
          made > maxCalls
            ? overLimit(budgetRule, `${label} is call ${made} to ${name} in this run, over ${budgetRule} (${maxCalls})`)
            : operation.decide(args);
        let approval: ApprovalRecord | undefined;
        let verdict: Verdict;
        if (first.decision === 'ask') {
          decided = { decision: 'deny', rule: first.rule };
          ({ verdict, approval } = this.approve(label, first));
        } else verdict = first;
        decided = verdict;
        if (verdict.decision !== 'allow') return this.finish(call, form, args, verdict, undefined, started, { approval });
        if (!operation.writesState) return perform(args, verdict, started, approval);
        // The write, its record and every record before it commit together, in call order.
        this.writer.flush();
        return this.services.state.transaction(() => perform(args, verdict, started, approval));
      } catch (error) {
        throw this.fault(call, form, label, args, decided, error, started);
      }
    };
  }

  /** Waits for the host's approver (never inside a transaction: a human may take a while). */
  private approve(label: string, asked: Ask): { verdict: Verdict; approval: ApprovalRecord } {
    const answer = this.gateway().approve({
      runId: this.scope.runId,
      component: this.scope.component,
      call: label,
      rule: asked.rule,
      summary: asked.summary,
      timeoutMs: asked.timeoutMs,
    });
    const approval: ApprovalRecord = { by: answer.by, answer: answer.answer, waitedMs: answer.waitedMs };
    if (answer.answer === 'approved') return { verdict: { decision: 'allow', rule: asked.rule }, approval };
    const why =
      answer.answer === 'timeout'
        ? `no answer from the approver within ${asked.timeoutMs} ms (${asked.rule} is an ask rule)`
        : `the approver (${answer.by}) said no${answer.reason ? `: ${answer.reason}` : ''}`;
    return { verdict: deny(asked.rule, `${label} needs approval under ${asked.rule} and was not approved: ${why}`), approval };
  }

  /** A call whose effect took several steps: one record per step, the guest answered with the last. */
  private finishSteps(
    call: string,
    form: LedgerForm | undefined,
    args: unknown[],
    verdict: Verdict,
    steps: Steps,
    started: number,
    approval: ApprovalRecord | undefined,
  ): WitResult {
    let answer = this.finishStep(call, form, args, verdict.rule, steps.first, started, { approval });
    steps.followUps.forEach((hop, index) => {
      answer = this.finishStep(call, form, [...hop.args], hop.rule, hop.result, undefined, {
        hop: index + 1,
        durationUs: hop.durationUs,
        ...(hop.approval ? { approval: hop.approval } : {}),
      });
    });
    return answer;
  }

  private finishStep(
    call: string,
    form: LedgerForm | undefined,
    args: unknown[],
    rule: string,
    result: StepResult,
    started: number | undefined,
    extra: RecordExtra,
  ): WitResult {
    if ('refused' in result) return this.finish(call, form, args, result.refused, undefined, started, extra);
    if ('ok' in result) return this.finish(call, form, args, { decision: 'allow', rule }, result.ok, started, extra);
    return this.finish(call, form, args, { decision: 'allow', rule }, new FailedStep(result.failed), started, extra);
  }

  /**
   * Records the call and builds the guest's answer. A ledger failure propagates: the caller faults.
   * Call counts are the writer's (it follows rollbacks), never tallied here.
   */
  private finish(
    call: string,
    form: LedgerForm | undefined,
    args: unknown[],
    verdict: Verdict,
    value: unknown,
    started: number | undefined,
    extra: RecordExtra = {},
  ): WitResult {
    const { capture: mode } = this.scope;
    const max = extra.keepWhole ? Number.POSITIVE_INFINITY : this.scope.maxCaptureBytes;
    const durationUs = extra.durationUs ?? Math.round((performance.now() - (started ?? performance.now())) * 1000);
    const allowed = verdict.decision === 'allow';
    const failed = value instanceof FailedStep ? value.message : undefined;
    const ledgerArgs = form?.args ? form.args(args) : args;
    this.writer.appendCall({
      call,
      args: ledgerArgs.map((arg) => capture(arg as never, mode, max)),
      decision: verdict.decision,
      rule: verdict.rule,
      outcome: !allowed
        ? { err: { kind: verdict.error.tag, message: verdict.error.val } }
        : failed !== undefined
          ? { err: { kind: 'failed', message: failed } }
          : { ok: value === undefined ? null : capture((form?.result ? form.result(value) : value) as never, mode, max) },
      durationUs,
      // The call's time, set here so a queued record does not need a copy to carry it.
      at: isoNow(),
      ...(extra.hop === undefined ? {} : { hop: extra.hop }),
      ...(extra.approval ? { approval: { ...extra.approval } } : {}),
    });
    if (!allowed) return { tag: 'err', val: verdict.error };
    if (failed !== undefined) return { tag: 'err', val: { tag: 'failed', val: failed } };
    return { tag: 'ok', val: value };
  }

  private fault(call: string, form: LedgerForm | undefined, label: string, args: unknown[], decided: Pick<Verdict, 'decision' | 'rule'>, error: unknown, started: number): HostFault {
    const reason = error instanceof Error ? error.message : String(error);
    const fault = new HostFault(`host fault in ${label}: ${reason}`);
    this.ownFault = fault;
    try {
      this.writer.appendCall({
        call,
        args: (form?.args ? form.args(args) : args).map((arg) => capture(arg as never, this.scope.capture, this.scope.maxCaptureBytes)),
        decision: decided.decision,
        rule: decided.rule,
        outcome: { err: { kind: 'failed', message: fault.message } },
        durationUs: Math.round((performance.now() - started) * 1000),
      });
    } catch {
      // The ledger itself failed; the run-end record (written by the runner) still carries the reason.
    }
    return fault;
  }
}

interface RecordExtra {
  readonly keepWhole?: boolean;
  readonly approval?: ApprovalRecord | undefined;
  /** For a follow-up record (a redirect hop). */
  readonly hop?: number;
  /** Measured where the step ran (the host thread), for follow-ups. */
  readonly durationUs?: number;
}

/** An allowed step the host could not complete: the guest gets `failed`, the run goes on. */
class FailedStep {
  constructor(readonly message: string) {}
}

/**
 * The mediator's view of a capability: arguments as jco lifted them. jco lifts them by the component's
 * declared signatures, which prepare has checked against wit/, so they are the generated types the
 * capability was written against; this is the one place that typing is set aside.
 */
function untyped<T>(operations: T): CapabilityOperations {
  return operations as unknown as CapabilityOperations;
}

function asGrant<T extends { mode: 'grant' }>(grant: T | Denied | undefined): T {
  if (!grant || grant.mode !== 'grant') throw new Error('capability is not granted');
  return grant;
}

/** Every function of an interface the policy sets to `deny` (or, defensively, does not mention). */
function deniedOperations(name: CapabilityName, grant: Denied | undefined, scope: RunScope, source: string): CapabilityOperations {
  const rule = grant?.rule ?? `grants.${name}`;
  const why = grant ? `${rule} is deny in policy ${source}` : `${rule} is not in policy ${source}`;
  const operations: Record<string, Operation> = {};
  for (const fn of CAPABILITY_FUNCTIONS[name]) {
    const refusal = deny(rule, `${name}.${fn} denied for component "${scope.component}": ${why}`);
    operations[fn] = {
      decide: () => refusal,
      perform: () => {
        throw new Error(`${name}.${fn} performed without a grant`);
      },
    };
  }
  return operations;
}
