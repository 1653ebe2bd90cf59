/**
 * One governed run, the same code on the host's thread (in-process execution) and inside a worker:
 * run-start record → a fresh instance whose every import goes through the kernel → run-end record,
 * committed durably. Also the run-end for a run stopped from outside (its worker terminated at the
 * deadline), written by the host thread onto whatever the worker had committed.
 */
import type { Admitted } from '../capabilities/admit.js';
import type { IcePolicy } from '../capabilities/policy.js';
import type { CommandContext } from '../capabilities/define.js';
import type { RunServices as CapabilityServices } from '../capabilities/run-services.js';
import { capture } from '../core/capture.js';
import { ICE_VERSION } from '../core/version.js';
import { RunKernel } from '../kernel/kernel.js';
import { LiveAnswerer, type HostBridge } from '../kernel/live.js';
import { appendLogged, BufferedRunWriter, LEDGER_RESERVE_BYTES, IntentLog, readIntentLog, removeIntentLog, type IntentLogEntry, type LedgerStore, type RunCounts, type RunCause, type RunEndInput, type RunWriter } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';
import { finishDelivery } from '../views/deliveries.js';
import { runInstance, type Instantiate, type RunEnding } from './instance.js';
import { recordedInput, recordedInvoke, type Invocation } from './invoke.js';
import type { Journal } from './journal.js';

export interface RunRequest {
  readonly runId: string;
  /** What the run calls: `run(input)`, a typed export, or a WASI command. */
  readonly invocation: Invocation;
  /** Why the run happens (a trigger), recorded in its run-start. */
  readonly cause?: RunCause;
  /** The event delivery this run completes: marked done in the transaction of its run-end (views/deliveries.ts). */
  readonly delivery?: number;
  readonly policy: IcePolicy;
  readonly digest: string;
  /** What the component imports, by capability (admitted against the policy). */
  readonly admitted: Admitted;
}

export interface RunServices extends CapabilityServices {
  /** A worker's journal of queued records, for the host thread to rescue after a kill. */
  readonly journal?: Journal;
  readonly state: StateDb;
  readonly ledger: LedgerStore;
  /** The host thread, for host effects and approvals (worker execution). */
  readonly bridge?: HostBridge;
  /**
   * Also makes a run's intents durable outside this machine before their effects (a cluster's shared
   * database, cluster/): called after the local intent log's write, and a throw fails the intent — so
   * an effect never starts that the shared ledger could not account for.
   */
  readonly shareIntents?: (runId: string, entries: readonly IntentLogEntry[]) => void;
}

/** What a run left, as plain data (it crosses back from a worker). */
export interface RunSummary {
  readonly runId: string;
  readonly ending: RunEnding;
  /** Fuel used; undefined when the run was stopped from outside before it could be read. */
  readonly fuel: number | undefined;
  readonly counts: RunCounts;
  readonly ledgerRoot: string;
  readonly durationUs: number;
}

/**
 * ownDeadline: the run enforces limits.timeoutMs itself (on the calling thread; a worker is terminated
 * instead). hostSyncs: the run-end commits without an fsync because the host thread syncs the WAL for
 * it before anyone learns the result (storage/wal-sync.ts, group commit).
 */
export function governedRun(request: RunRequest, instantiate: Instantiate, services: RunServices, options: { readonly ownDeadline?: boolean; readonly hostSyncs?: boolean } = {}): RunSummary {
  const started = performance.now();
  const { policy, runId } = request;
  const { journal } = services;
  journal?.clear();
  const intentLog = IntentLog.forRun(services.state.dir, runId);
  const { shareIntents } = services;
  // The run-start commits with the run's first records (often with its run-end): one commit per run.
  const writer = new BufferedRunWriter(startRun(services.ledger, request, true), services.state, {
    ...(journal ? { onQueued: (queued, seq) => journal.write(seq, queued), onFlushed: () => journal.clear() } : {}),
    intentLog: shareIntents
      ? {
          write: (entries) => {
            intentLog.write(entries);
            shareIntents(runId, entries);
          },
          clear: () => intentLog.clear(),
        }
      : intentLog,
  });
  const output = commandOutput(request.invocation);
  const run = { component: policy.component, runId, capture: policy.capture, maxCaptureBytes: policy.maxCaptureBytes, limits: policy.limits, services, ...output.context };
  const kernel = new RunKernel(policy, run, new LiveAnswerer(run, { state: services.state, recorder: writer, ...(services.bridge ? { bridge: services.bridge } : {}) }));
  const deadline = options.ownDeadline ? started + policy.limits.timeoutMs : undefined;
  const { ending, fuel } = runInstance(instantiate, request.admitted, kernel, policy.limits, request.invocation, output.text, deadline);
  const durationUs = Math.round((performance.now() - started) * 1000);
  // The run-end is committed durably (WAL fsynced), which also makes every call record before it so.
  const end = () =>
    services.state.transaction(() => {
      const root = writer.end(runEnd(ending, policy, fuel, durationUs, writer.bytesBound));
      if (request.delivery !== undefined) finishDelivery(services.state, request.delivery);
      return root;
    });
  const ledgerRoot = options.hostSyncs ? end() : services.state.durable(end);
  intentLog.remove();
  return { runId, ending, fuel, counts: writer.counts, ledgerRoot, durationUs };
}

/**
 * Ends a run whose worker was terminated at its deadline: continues the chain from the last record
 * the worker committed, first committing the records it had only queued (rescued from its journal),
 * or writes the run-start too if the worker never got that far. A state write in flight at the kill
 * was rolled back with its record: it is neither in the database nor in the journal. An intent the
 * worker committed without its result (the kill came during the effect) stays open: the run-end
 * lists it as a call whose outcome is unknown.
 */
export function endStoppedRun(
  services: Pick<RunServices, 'state' | 'ledger'>,
  request: RunRequest,
  ending: RunEnding,
  durationUs: number,
  /** Records the worker had queued but not committed (from its journal), with their seqs. */
  rescued: readonly IntentLogEntry[] = [],
): RunSummary {
  const { ledger, state } = services;
  const ended = state.durable(() =>
    state.transaction(() => {
      // Resumed from SQL aggregates (counts, last seq and hash), never by reading the run's records: a
      // run stopped at its deadline may have written gigabytes.
      const writer = ledger.hasRun(request.runId) ? ledger.resumeRun(request.runId) : startRun(ledger, request);
      appendLogged(writer, [...rescued, ...readIntentLog(state.dir, request.runId)]);
      const root = writer.end(runEnd(ending, request.policy, undefined, durationUs, writer.bytes));
      if (request.delivery !== undefined) finishDelivery(state, request.delivery);
      const counts = writer.openIntents.size > 0 ? { ...writer.counts, unknown: writer.openIntents.size } : writer.counts;
      return { root, counts };
    }),
  );
  removeIntentLog(state.dir, request.runId);
  return { runId: request.runId, ending, fuel: undefined, counts: ended.counts, ledgerRoot: ended.root, durationUs };
}

/**
 * Ends a run its host cut off while stopping (the drain deadline passed): `incomplete`, after whatever
 * it had committed or queued — its run-start too when it had written none yet (deferRun).
 */
export function endCutRun(services: Pick<RunServices, 'state' | 'ledger'>, request: RunRequest, reason: string, durationUs: number, rescued: readonly IntentLogEntry[] = []): void {
  const { ledger, state } = services;
  state.durable(() =>
    state.transaction(() => {
      const writer = ledger.hasRun(request.runId) ? ledger.resumeRun(request.runId) : startRun(ledger, request);
      appendLogged(writer, [...rescued, ...readIntentLog(state.dir, request.runId)]);
      writer.end({ outcome: 'incomplete', reason, durationUs });
    }),
  );
  removeIntentLog(state.dir, request.runId);
}

function startRun(ledger: LedgerStore, request: RunRequest, deferred = false): RunWriter {
  const { policy } = request;
  return ledger[deferred ? 'deferRun' : 'startRun']({
    run: request.runId,
    component: { name: policy.component, digest: request.digest },
    policy: { digest: policy.digest, source: policy.source, document: policy.document },
    // The input is kept whole (it is bounded by the host's maxInputBytes): replay needs it.
    input: capture(recordedInput(request.invocation), policy.capture),
    invoke: recordedInvoke(request.invocation),
    ...(request.cause ? { cause: request.cause } : {}),
    host: { ice: ICE_VERSION },
  });
}

/**
 * The run-end, its output kept whole only if it fits what is left of the ledger budget and its reserve
 * (`used`: the run's bytes so far), else recorded as its digest: the run-end always fits.
 */
function runEnd(ending: RunEnding, policy: IcePolicy, fuel: number | undefined, durationUs: number, used: number): RunEndInput {
  // A UTF-8 byte takes at most 6 bytes of JSON; 4 KiB is kept for the run-end's other fields.
  const room = Math.floor((policy.limits.maxLedgerBytes + LEDGER_RESERVE_BYTES - used - 4096) / 6);
  const kept = (text: string) => capture(text, policy.capture, Math.max(0, Math.min(policy.maxCaptureBytes, room)));
  const common = { durationUs, ...(fuel === undefined ? {} : { fuel }) };
  switch (ending.outcome) {
    case 'ok':
      return { outcome: 'ok', output: kept(ending.output), ...common };
    case 'error':
      return { outcome: 'error', output: kept(ending.error), ...common };
    case 'trap':
      return { outcome: 'trap', blame: ending.blame, reason: ending.reason, ...common };
    case 'limit':
      return { outcome: 'limit', limit: ending.limit, reason: ending.reason, ...common };
  }
}

/** A command run's context (its args, stdin, and its stdout collected as the run's output); nothing for other runs. */
export function commandOutput(invocation: Invocation): { context: { command?: CommandContext }; text: () => string } {
  if (invocation.kind !== 'command') return { context: {}, text: () => '' };
  const parts: string[] = [];
  return { context: { command: { args: invocation.args, stdin: invocation.stdin, stdout: (text) => parts.push(text) } }, text: () => parts.join('') };
}
