/**
 * Replay: re-executes a recorded run's component with the recorded input, through the same kernel as a
 * live run but with the recorded answerer (kernel/recorded.ts): every import is answered from the
 * ledger, and the guest must make exactly the recorded calls and end as recorded. A run that replays
 * exactly proves the ledger holds everything the run depended on.
 *
 * Replay reads only the ledger: it writes no record and touches no kv state.
 */
import { admitImports, prepareCapabilities } from '../capabilities/admit.js';
import { compilePolicy, type IcePolicy } from '../capabilities/policy.js';
import { capture, type Captured } from '../core/capture.js';
import { sha256Hex } from '../core/digest.js';
import type { ComponentCache } from '../component/prepare.js';
import { RunKernel } from '../kernel/kernel.js';
import { describeCall, RecordedAnswerer, ReplayError } from '../kernel/recorded.js';
import { ledgerCalls, verifyRun, type RunStartRecord, type StoredRecord } from '../ledger/index.js';
import { formatCaptured } from '../ledger/format.js';
import type { ComponentInfo } from '../component/inspect.js';
import type { Json } from '../component/json-values.js';
import { commandOutput } from '../sandbox/governed-run.js';
import { runInstance, type RunEnding } from '../sandbox/instance.js';
import type { Invocation } from '../sandbox/invoke.js';
import { instantiateGenerated } from '../sandbox/instantiate.js';

export { ReplayError } from '../kernel/recorded.js';

export type ReplayReport =
  | { readonly matches: true; readonly calls: number; readonly outcome: string; readonly fuel: number; readonly durationMs: number; readonly note?: string }
  | { readonly matches: false; readonly seq: number; readonly expected: string; readonly actual: string; readonly durationMs: number };

const ARG_MAX = 60;

export interface ReplayOptions {
  /**
   * Replay a component other than the recorded one against the recording (e.g. a new version of the
   * agent, to see whether it still makes the same calls). Off by default: replay proves a run only with
   * the component it ran.
   */
  readonly otherComponent?: boolean;
  /**
   * Wall-clock budget of the re-execution (default: the recorded policy's limits.timeoutMs). Replay runs
   * on the calling thread, so this deadline is what keeps a guest that loops without calling the host
   * (a run the original worker was stopped in at its deadline) from hanging the replay.
   */
  readonly timeoutMs?: number;
  /** The ledger key of the state the records come from: a keyed run's chain is checked with it. */
  readonly ledgerKey?: Buffer;
}

export async function replayRun(
  records: readonly StoredRecord[],
  component: Uint8Array,
  origin: string,
  cache: ComponentCache,
  options: ReplayOptions = {},
): Promise<ReplayReport> {
  const checked = verifyRun(records, options.ledgerKey ? { key: options.ledgerKey } : {});
  if (!checked.ok) throw new ReplayError(`the run's records do not verify (seq ${checked.seq}: ${checked.reason}); run ice audit verify`);
  const start = records[0]!.record as RunStartRecord;
  const end = records.at(-1)!.record;
  if (end.type !== 'run-end') throw new ReplayError(`run ${start.run} has not ended; replay it once it has`);
  const digest = sha256Hex(component);
  if (digest !== start.component.digest && !options.otherComponent) {
    throw new ReplayError(`${origin} is not the component run ${start.run} executed: its sha256 is ${digest}, the run's is ${start.component.digest}`);
  }
  if (!('value' in start.input) || typeof start.input.value !== 'string') {
    throw new ReplayError(`run ${start.run} recorded its input as a digest (audit.capture: digest), so it cannot be replayed`);
  }
  const policy = compilePolicy(start.policy.document, start.policy.source);
  const info = await cache.inspect(component, origin);
  const admitted = admitImports(info, policy, origin);
  // Replay runs on the calling thread: its deadline needs the preemptible metering.
  const prepared = await cache.prepare(component, info, origin, 'preemptible');
  const calls = ledgerCalls(records.map((r) => r.record));
  await prepareCapabilities(admitted);

  const started = performance.now();
  const answerer = new RecordedAnswerer(policy, calls, end);
  // The run as it was, minus its effects: no state, no sinks, no host thread (the answerer never performs).
  const run = { component: policy.component, runId: start.run, capture: policy.capture, maxCaptureBytes: policy.maxCaptureBytes, limits: policy.limits, services: {} };
  const modules = prepared.modules(policy.limits.memoryMiB);
  const timeoutMs = options.timeoutMs ?? policy.limits.timeoutMs;
  const limits = { ...policy.limits, timeoutMs };
  const invocation = recordedInvocation(start, start.input.value, info, origin);
  const output = commandOutput(invocation);
  const kernel = new RunKernel(policy, { ...run, ...output.context }, answerer);
  const { ending, fuel } = runInstance(
    (provider, meter) => instantiateGenerated(prepared.generated, modules, provider, meter),
    admitted,
    kernel,
    limits,
    invocation,
    output.text,
    started + timeoutMs,
  );
  const durationMs = performance.now() - started;
  if (answerer.unreplayable) throw answerer.unreplayable;
  if (answerer.divergence) return { matches: false, ...answerer.divergence, durationMs };
  const recordedCalls = calls.length;
  if (answerer.stoppedFromOutside) return { matches: true, calls: recordedCalls, outcome: end.outcome, fuel, durationMs, note: answerer.stoppedFromOutside };
  const replayTimedOut = ending.outcome === 'limit' && ending.limit === 'timeout';
  if (replayTimedOut && answerer.consumed === calls.length && end.outcome === 'limit' && end.limit === 'timeout') {
    // Both stopped by a clock: where exactly (and so the fuel) depends on the machine, not on the recording.
    return { matches: true, calls: recordedCalls, outcome: end.outcome, fuel, durationMs, note: `the original run was stopped at its deadline after these calls; the replay was stopped at its own (${timeoutMs} ms)` };
  }
  if (replayTimedOut) {
    const next = calls[answerer.consumed];
    const expected = next ? describeCall(next.call, next.args) : describeEnd(end.limit ? `${end.outcome} (${end.limit})` : end.outcome, end.output, end.fuel);
    return { matches: false, seq: next?.seq ?? end.seq, expected, actual: `no further call within the replay's deadline (${timeoutMs} ms; raise it with --timeout <ms>)`, durationMs };
  }
  if (answerer.consumed < calls.length) {
    const missing = calls[answerer.consumed]!;
    return { matches: false, seq: missing.seq, expected: describeCall(missing.call, missing.args), actual: `run-end (${ending.outcome})`, durationMs };
  }
  const expectedEnd = describeEnd(end.limit ? `${end.outcome} (${end.limit})` : end.outcome, end.output, end.fuel);
  const actualEnd = describeEnd(ending.outcome === 'limit' ? `limit (${ending.limit})` : ending.outcome, outputOf(ending, policy), fuel);
  if (expectedEnd !== actualEnd) return { matches: false, seq: end.seq, expected: expectedEnd, actual: actualEnd, durationMs };
  return { matches: true, calls: recordedCalls, outcome: end.outcome, fuel, durationMs };
}

/** A host record (an operator's write, a lifecycle transition, a refused trigger) ran no component: the refusal that says so. */
export function notReplayable(start: RunStartRecord): ReplayError {
  const invoke = start.invoke;
  const what =
    invoke?.kind === 'operator'
      ? `an operator's ${invoke.action} by ${invoke.by}`
      : invoke?.kind === 'lifecycle'
        ? `agent ${invoke.agent}'s lifecycle transition to ${invoke.to}`
        : invoke?.kind === 'refused'
          ? `a ${invoke.trigger} trigger refused for agent ${invoke.agent}`
          : 'a host record';
  return new ReplayError(`run ${start.run} is ${what}, not a run of a component: there is nothing to replay`);
}

/** What the run called, from its run-start: `run(input)`, the recorded typed export, or the command line. */
function recordedInvocation(start: RunStartRecord, input: string, info: ComponentInfo, origin: string): Invocation {
  const invoke = start.invoke;
  if (invoke === undefined) return { kind: 'run', input };
  if (invoke.kind !== 'call' && invoke.kind !== 'command') throw notReplayable(start);
  if (invoke.kind === 'command') return { kind: 'command', export: invoke.export, args: invoke.args, stdin: input };
  const fn = info.exported.functions.find((f) => f.name === invoke.function && f.interface === invoke.interface);
  if (!fn) throw new ReplayError(`${origin} exports no function ${invoke.function}, which run ${start.run} called`);
  let args: Record<string, Json>;
  try {
    args = JSON.parse(input) as Record<string, Json>;
  } catch {
    throw new ReplayError(`run ${start.run} recorded its arguments in a form that is not JSON, so it cannot be replayed`);
  }
  return { kind: 'call', fn, args };
}

function describeEnd(outcome: string, output: Captured | undefined, fuel: number | undefined): string {
  const shown = output === undefined ? '' : ` output ${formatCaptured(output, ARG_MAX)}`;
  return `run-end ${outcome}${shown}${fuel === undefined ? '' : ` fuel ${fuel}`}`;
}

function outputOf(ending: RunEnding, policy: IcePolicy): Captured | undefined {
  if (ending.outcome === 'ok') return capture(ending.output, policy.capture, policy.maxCaptureBytes);
  if (ending.outcome === 'error') return capture(ending.error, policy.capture, policy.maxCaptureBytes);
  return undefined;
}
