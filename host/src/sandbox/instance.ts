/**
 * One component instance for one run: a fresh instance per run (an agent's memory is its kv, never
 * leftover instance state, and a trapped instance is poisoned), the invocation (`run`, a typed export,
 * a command) called synchronously, and whatever it ends with classified for the ledger's run-end record.
 *
 * The instance draws on a per-run meter (component/meter.ts): a fuel global shared by every core
 * module of the component, and a flag the metered code raises when a memory.grow is refused. Both are
 * read after the run, so a trap that happened because fuel ran out or memory was capped is reported
 * as that limit rather than as a bare trap.
 */
import type { Admitted } from '../capabilities/admit.js';
import { WasiDenied, WasiExit } from '../capabilities/wasi/index.js';
import type { AgentExports, Meter } from '../component/prepare.js';
import { runMeter } from './fuel.js';
import { DeadlineReached, HostFault, LedgerBudgetSpent, type RunKernel } from '../kernel/kernel.js';
import type { LimitKind } from '../ledger/index.js';
import type { RunLimits } from '../policy/index.js';
import { OutputTooLarge } from '../component/json-values.js';
import { FootprintError, type ImportProvider } from './instantiate.js';
import { componentError, invokeExports, type Invocation } from './invoke.js';

export type RunEnding =
  | { readonly outcome: 'ok'; readonly output: string }
  | { readonly outcome: 'error'; readonly error: string }
  | { readonly outcome: 'trap'; readonly blame: 'guest' | 'host'; readonly reason: string }
  | { readonly outcome: 'limit'; readonly limit: LimitKind; readonly reason: string };

export interface InstanceRun {
  readonly ending: RunEnding;
  /** Fuel the guest used (at most the limit). */
  readonly fuel: number;
}

export type Instantiate = (provider: ImportProvider, meter: Meter) => AgentExports;

/** The kernel's side of a run, as the instance needs it. */
type Kernel = Pick<RunKernel, 'importObject' | 'coreImports' | 'hostFault' | 'stopAt'>;

const PAGES_PER_MIB = 16;

/**
 * `deadline` (a `performance.now()` time): for a run on the calling thread, which nothing else can stop;
 * the guest is stopped at its next refuel once past it (see fuel.ts). Worker runs pass none: their
 * worker is terminated at the deadline, which the host pauses while a human answers an ask.
 */
export function runInstance(
  instantiate: Instantiate,
  admitted: Admitted,
  kernel: Kernel,
  limits: RunLimits,
  invocation: Invocation,
  /** A command run's stdout so far (see CommandContext). */
  stdout: () => string,
  deadline?: number,
): InstanceRun {
  const metered = runMeter(limits.fuel, deadline, limits.memoryMiB * PAGES_PER_MIB);
  if (deadline !== undefined) kernel.stopAt(deadline, metered.expire);
  let ending: RunEnding;
  try {
    const provider: ImportProvider = { imports: kernel.importObject(admitted), coreImports: (guest) => kernel.coreImports(guest) };
    ending = invokeExports(instantiate(provider, metered.meter) as unknown as Record<string, unknown>, invocation, stdout, limits.maxOutputBytes);
  } catch (error) {
    // Past the deadline: at an import call (DeadlineReached) or at a refuel (the guest then trapped).
    ending = kernel.hostFault === undefined && (error instanceof DeadlineReached || metered.pastDeadline()) ? timedOut(limits) : classify(error, kernel);
  }
  return { ending: withLimits(ending, metered.outOfFuel(), metered.memoryRefused(), limits), fuel: metered.used() };
}

function timedOut(limits: RunLimits): RunEnding {
  return { outcome: 'limit', limit: 'timeout', reason: `the run took longer than limits.timeoutMs (${limits.timeoutMs} ms) and was stopped` };
}

/** A trap caused by a limit is reported as that limit; an output over its cap likewise. */
function withLimits(ending: RunEnding, outOfFuel: boolean, memoryRefused: boolean, limits: RunLimits): RunEnding {
  if (ending.outcome === 'trap' && ending.blame === 'guest') {
    if (outOfFuel) {
      return { outcome: 'limit', limit: 'fuel', reason: `the guest used all its fuel (limits.fuel ${limits.fuel})` };
    }
    if (memoryRefused) {
      return {
        outcome: 'limit',
        limit: 'memory',
        reason: `the guest's memory could not grow past limits.memoryMiB (${limits.memoryMiB} MiB), and then it trapped (${ending.reason})`,
      };
    }
  }
  if (ending.outcome === 'ok' || ending.outcome === 'error') {
    const text = ending.outcome === 'ok' ? ending.output : ending.error;
    const bytes = text.length <= limits.maxOutputBytes / 3 ? 0 : Buffer.byteLength(text, 'utf8');
    if (bytes > limits.maxOutputBytes) {
      return {
        outcome: 'limit',
        limit: 'output',
        reason: `the guest's ${ending.outcome === 'ok' ? 'output' : 'err message'} is ${bytes} bytes, over limits.maxOutputBytes (${limits.maxOutputBytes})`,
      };
    }
  }
  return ending;
}

/**
 * jco raises a guest's `err(...)` as its own ComponentError carrying `payload` (its class is created
 * per instantiation, so it is recognised by shape); a wasm trap is a WebAssembly.RuntimeError; a
 * stack overflow in the guest surfaces as a RangeError. A RangeError or TypeError from the generated
 * glue means the guest broke the canonical ABI (a pointer or length outside its memory, a return
 * area it cannot hold): the host's own code inside an import is wrapped by the kernel, which turns
 * its failures into HostFault. Anything else escaped the host's own code.
 */
export function classify(error: unknown, kernel: Pick<Kernel, 'hostFault'>): RunEnding {
  if (kernel.hostFault) return { outcome: 'trap', blame: 'host', reason: kernel.hostFault.message };
  // wasi:cli/exit ends the run, never the process: success is an ok run with empty output.
  if (error instanceof WasiExit) return error.ok ? { outcome: 'ok', output: '' } : { outcome: 'error', error: error.message };
  if (error instanceof FootprintError) return { outcome: 'limit', limit: 'memory', reason: error.message };
  if (error instanceof OutputTooLarge) return { outcome: 'limit', limit: 'output', reason: `the guest's ${error.message}, over limits.maxOutputBytes` };
  if (error instanceof WasiDenied) return { outcome: 'trap', blame: 'guest', reason: error.message };
  if (error instanceof LedgerBudgetSpent) return { outcome: 'trap', blame: 'guest', reason: error.message };
  if (error instanceof HostFault) return { outcome: 'trap', blame: 'host', reason: error.message };
  if (componentError(error)) {
    const payload = error.payload;
    return { outcome: 'error', error: typeof payload === 'string' ? payload : String(payload) };
  }
  if (error instanceof WebAssembly.RuntimeError) {
    // V8 already words these as `wasm trap: ...` on some versions; say it once.
    const reason = error.message.startsWith('wasm trap') ? error.message : `wasm trap: ${error.message}`;
    return { outcome: 'trap', blame: 'guest', reason };
  }
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return { outcome: 'trap', blame: 'guest', reason: 'wasm trap: call stack exhausted' };
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    return { outcome: 'trap', blame: 'guest', reason: `the guest broke the canonical ABI: ${error.message}` };
  }
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { outcome: 'trap', blame: 'host', reason: `host error while running the guest: ${reason}` };
}
