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
import {
  RefusedEffect,
  deny,
  overLimit,
  type CapabilityOperations,
  type IceError,
  type Operation,
  type RunScope,
  type Verdict,
} from '../capabilities/operation.js';

/** Host services a run's capabilities use; constructible from plain data in any thread. */
export interface MediatorServices {
  readonly state: StateDb;
  readonly kv: KvStore;
  readonly guestLog: GuestLogSink;
  readonly events?: GuestEventSink;
  readonly now?: () => number;
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
  hostFault: HostFault | undefined;

  constructor(
    private readonly policy: CompiledPolicy,
    private readonly scope: RunScope,
    private readonly writer: CallRecorder,
    private readonly services: MediatorServices,
  ) {}

  /** The import object for jco's generated `instantiate`, for the capabilities the component imports. */
  importObject(imported: readonly CapabilityName[]): Record<string, Record<string, (...args: unknown[]) => WitResult>> {
    const table: Record<string, Record<string, (...args: unknown[]) => WitResult>> = {};
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
    }
  }

  private mediated(name: CapabilityName, fn: string, operation: Operation, budget: { made: number }): (...args: unknown[]) => WitResult {
    // The ledger names a call interface#function (`ice:agent/kv@0.1.0#get`); messages say `kv.get`.
    const call = `${qualifiedInterface(name)}#${fn}`;
    const label = `${name}.${fn}`;
    const grant = this.policy.grants[name];
    const maxCalls = grant && grant.mode === 'grant' ? grant.maxCalls : Number.POSITIVE_INFINITY;
    const budgetRule = `grants.${name}.maxCalls`;
    // A state write's arguments are the event the kv view is folded from (ice state rebuild): they are
    // recorded whole, whatever audit.maxCaptureBytes says (kv sizes are capped by the grant already).
    const keepWhole = operation.writesState === true;
    const perform = (args: unknown[], verdict: Verdict, started: number): WitResult => {
      const value = operation.perform(args);
      if (value instanceof RefusedEffect) return this.finish(call, args, value.refusal, undefined, started);
      return this.finish(call, args, verdict, value, started, keepWhole);
    };
    return (...args: unknown[]): WitResult => {
      const started = performance.now();
      // Until a verdict exists, a failure is a check that failed: recorded as a denial by the interface.
      let decided: Pick<Verdict, 'decision' | 'rule'> = { decision: 'deny', rule: `grants.${name}` };
      // Fail closed: a decision, effect or record that throws traps the run with host blame; nothing
      // half-done is ever answered as a success.
      try {
        const made = ++budget.made;
        const verdict: Verdict =
          made > maxCalls
            ? overLimit(budgetRule, `${label} is call ${made} to ${name} in this run, over ${budgetRule} (${maxCalls})`)
            : operation.decide(args);
        decided = verdict;
        if (verdict.decision !== 'allow') return this.finish(call, args, verdict, undefined, started);
        if (!operation.writesState) return perform(args, verdict, started);
        // The write, its record and every record before it commit together, in call order.
        this.writer.flush();
        return this.services.state.transaction(() => perform(args, verdict, started));
      } catch (error) {
        throw this.fault(call, label, args, decided, error, started);
      }
    };
  }

  /**
   * Records the call and builds the guest's answer. A ledger failure propagates: the caller faults.
   * Call counts are the writer's (it follows rollbacks), never tallied here.
   */
  private finish(call: string, args: unknown[], verdict: Verdict, value: unknown, started: number, keepWhole = false): WitResult {
    const { capture: mode } = this.scope;
    const max = keepWhole ? Number.POSITIVE_INFINITY : this.scope.maxCaptureBytes;
    const durationUs = Math.round((performance.now() - started) * 1000);
    const allowed = verdict.decision === 'allow';
    this.writer.appendCall({
      call,
      args: args.map((arg) => capture(arg as never, mode, max)),
      decision: verdict.decision,
      rule: verdict.rule,
      outcome: allowed ? { ok: value === undefined ? null : capture(value as never, mode, max) } : { err: { kind: verdict.error.tag, message: verdict.error.val } },
      durationUs,
      // The call's time, set here so a queued record does not need a copy to carry it.
      at: isoNow(),
    });
    return allowed ? { tag: 'ok', val: value } : { tag: 'err', val: verdict.error };
  }

  private fault(call: string, label: string, args: unknown[], decided: Pick<Verdict, 'decision' | 'rule'>, error: unknown, started: number): HostFault {
    const reason = error instanceof Error ? error.message : String(error);
    const fault = new HostFault(`host fault in ${label}: ${reason}`);
    this.hostFault = fault;
    try {
      this.writer.appendCall({
        call,
        args: args.map((arg) => capture(arg as never, this.scope.capture, this.scope.maxCaptureBytes)),
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
