/**
 * The mediation kernel: the one place a guest's import call goes through. For each capability a run
 * imports it builds the call sites (one per WIT function, or per WASI member as the guest first calls it)
 * and the import functions, and hands every call to the run's answerer:
 *   - live (live.ts): budget → decide → (intent) → perform → record → answer;
 *   - recorded (recorded.ts): the next recorded call, checked against this one, answered as it was (replay).
 * Which one is passed in; nothing else differs, so a replay runs the very bindings, sites and ledger
 * forms the run ran. A fault of the host itself traps the run with host blame, whichever answered.
 */
import { basename } from 'node:path';
import { callName, qualifiedInterface, unversionedInterface } from '../core/world.js';
import { Abi, type CoreFunction, type GuestMemory } from '../capabilities/abi.js';
import type { Admitted } from '../capabilities/admit.js';
import type { Answer, Budget, CallSite, ForeignCapability, IceCapability, Mediation, Operation, RunContext, SiteSpec } from '../capabilities/define.js';
import { PLAIN_FORM } from '../capabilities/forms.js';
import type { IcePolicy } from '../capabilities/policy.js';
import { capabilityNamed } from '../capabilities/registry.js';
import { deny } from '../core/verdict.js';
import type { Grant } from '../capabilities/define.js';
import type { Denied } from '../policy/index.js';

/** Thrown into the guest (so the run traps) when the host itself failed; never a policy outcome. */
export class HostFault extends Error {
  override readonly name = 'HostFault';
}

/**
 * Thrown through the guest's frames when a run on the calling thread is past its deadline (checked at
 * every import call here, and at every slice of fuel by the run's meter): the run ends with the timeout
 * limit. Never thrown in a worker, whose deadline terminates it instead.
 */
export class DeadlineReached extends Error {
  override readonly name = 'DeadlineReached';
}

/**
 * Thrown into the guest (the run traps, guest blame) when it keeps calling after its ledger budget
 * and the reserve for limit records are spent: nothing more of the run can be recorded, so it stops.
 */
export class LedgerBudgetSpent extends Error {
  override readonly name = 'LedgerBudgetSpent';
}

/** How a run's calls are answered: live (decided, recorded, performed) or from a recording. */
export interface Answerer {
  answer(site: CallSite, args: unknown[]): Answer;
  /** Set when the host itself failed (the run is then the host's fault). */
  readonly hostFault: Error | undefined;
}

type HostFunction = (...args: unknown[]) => unknown;

export class RunKernel implements Mediation {
  private readonly iceTables = new Map<IceCapability, Record<string, HostFunction>>();

  /** A `performance.now()` time past which no call is answered (runs on the calling thread only). */
  private deadline = Number.POSITIVE_INFINITY;
  private expire: () => void = () => undefined;

  constructor(
    private readonly policy: IcePolicy,
    private readonly run: RunContext,
    private readonly answerer: Answerer,
  ) {}

  /**
   * Called by the run before the guest starts, when nothing else can stop it (see DeadlineReached).
   * `expire` makes the guest's next fuel hook trap, in case the guest catches DeadlineReached.
   */
  stopAt(deadline: number, expire: () => void): void {
    this.deadline = deadline;
    this.expire = expire;
  }

  timeLeft(): number {
    return this.deadline - performance.now();
  }

  stopIfPastDeadline(): void {
    // Worker runs have no deadline here: they skip the clock read on the hottest path there is.
    if (this.deadline !== Number.POSITIVE_INFINITY && performance.now() >= this.deadline) {
      this.expire();
      throw new DeadlineReached('deadline');
    }
  }

  private answer(site: CallSite, args: unknown[]): Answer {
    // A guest looping over cheap-in-fuel import calls would otherwise reach the next slice of fuel only
    // after many (recorded) calls; one clock read per call is noise next to recording one.
    // Worker runs have no deadline here: they skip the clock read on the hottest path there is.
    if (this.deadline !== Number.POSITIVE_INFINITY && performance.now() >= this.deadline) {
      this.expire();
      throw new DeadlineReached('deadline');
    }
    return this.answerer.answer(site, args);
  }

  get hostFault(): Error | undefined {
    return this.answerer.hostFault;
  }

  /** The import object for jco's generated `instantiate`, keyed by unversioned interface name. */
  importObject(admitted: Admitted): Record<string, Record<string, unknown>> {
    const table: Record<string, Record<string, unknown>> = {};
    for (const { name, imports } of admitted) {
      const capability = capabilityNamed(name);
      // admit only names capabilities of the registry; anything else is a host bug: fail closed.
      if (!capability) throw new Error(`no capability ${name} in the registry`);
      const grant = (this.policy.grants as Readonly<Record<string, Grant | Denied | undefined>>)[name];
      if (capability.kind === 'ice') {
        const functions = this.iceFunctions(capability, grant);
        this.iceTables.set(capability, functions);
        // With ICE's own binding the core module never reaches these (coreImports replaces jco's
        // trampolines); without one, jco's trampolines call them, by jco's convention for results.
        table[unversionedInterface(name)] = capability.binding ? functions : jcoConvention(functions);
      } else {
        // admit refuses a foreign import its grant does not cover; reaching this without one is a host bug.
        if (grant === undefined || grant.mode !== 'grant') throw new Error(`a ${name} import without grants.${name} reached the kernel`);
        const foreign = capability as ForeignCapability<string, Grant, unknown>;
        Object.assign(table, foreign.bind(grant, imports.map((i) => foreign.claim(i)), this.run, this));
      }
    }
    return table;
  }

  /**
   * The core-level import functions of ICE's own bindings (capabilities' `binding`), keyed by the core
   * import module (`ice:agent/kv@0.1.0`), for the capabilities `importObject` bound.
   */
  coreImports(guest: GuestMemory): Record<string, Record<string, CoreFunction>> {
    const abi = new Abi(guest);
    const out: Record<string, Record<string, CoreFunction>> = {};
    for (const [capability, functions] of this.iceTables) {
      if (capability.binding) out[qualifiedInterface(capability.name)] = capability.binding(abi, functions);
    }
    return out;
  }

  site(spec: SiteSpec): CallSite {
    return { ...spec, keepWhole: spec.effect === 'state' };
  }

  invoke(site: CallSite, args: unknown[]): Answer {
    return this.answer(site, args);
  }

  private iceFunctions(capability: IceCapability, grant: Grant | Denied | undefined): Record<string, HostFunction> {
    const { name } = capability;
    const operations: Readonly<Record<string, Operation>> =
      grant?.mode === 'grant' ? (capability.operations(grant, this.run) as unknown as Record<string, Operation>) : deniedOperations(capability, grant, this.run, this.policy.source);
    // maxCalls counts every call to the capability, whatever the function.
    const budget: Budget = { made: 0, max: grant?.mode === 'grant' ? grant.maxCalls : Number.POSITIVE_INFINITY, rule: `grants.${name}.maxCalls`, name };
    const functions: Record<string, HostFunction> = {};
    for (const [fn, spec] of Object.entries(capability.functions as Readonly<Record<string, { effect: CallSite['effect']; form?: CallSite['form'] }>>)) {
      const operation = operations[fn];
      if (!operation) throw new Error(`capability ${name} has no operation ${fn}`);
      const site = this.site({
        call: callName(name, fn),
        label: `${name}.${fn}`,
        budget,
        effect: spec.effect,
        form: spec.form ?? PLAIN_FORM,
        // Arguments as jco lifted them, by the component's declared signatures, which prepare checked
        // against wit/: the generated types each operation is written against.
        decide: operation.decide as CallSite['decide'],
        perform: operation.perform as CallSite['perform'],
      });
      functions[fn] = (...args: unknown[]) => this.answer(site, args);
    }
    return functions;
  }
}

/**
 * The kernel's answers as jco's generated trampolines expect a result from a host function: the ok value
 * returned, an err thrown as an object whose own `payload` is the error variant (jco lowers it as
 * `err(payload)`, never as a trap). A host fault still throws (the run traps).
 */
function jcoConvention(functions: Record<string, HostFunction>): Record<string, HostFunction> {
  const out: Record<string, HostFunction> = {};
  for (const [fn, answer] of Object.entries(functions)) {
    out[fn] = (...args: unknown[]) => {
      const result = answer(...args) as Answer;
      if (result.tag === 'ok') return result.val;
      throw { payload: result.val };
    };
  }
  return out;
}

/** Every function of an interface the policy sets to `deny` (or, defensively, does not mention). */
function deniedOperations(capability: IceCapability, grant: Denied | undefined, run: RunContext, source: string): Record<string, Operation> {
  const { name } = capability;
  const rule = grant?.rule ?? `grants.${name}`;
  // The guest reads this: it names the policy file, never where the host keeps it.
  const policy = basename(source);
  const why = grant ? `${rule} is deny in policy ${policy}` : `${rule} is not in policy ${policy}`;
  const operations: Record<string, Operation> = {};
  for (const fn of Object.keys(capability.functions)) {
    const refusal = deny(rule, `${name}.${fn} denied for component "${run.component}": ${why}`);
    operations[fn] = {
      decide: () => refusal,
      perform: () => {
        throw new Error(`${name}.${fn} performed without a grant`);
      },
    };
  }
  return operations;
}
