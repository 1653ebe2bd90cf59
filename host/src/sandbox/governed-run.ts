/**
 * One governed run, the same code on the host's thread (in-process execution) and inside a worker:
 * run-start record → a fresh instance whose every import goes through the mediator → run-end record,
 * committed durably. Also the run-end for a run stopped from outside (its worker terminated at the
 * deadline), written by the host thread onto whatever the worker had committed.
 */
import type { GuestEventSink } from '../capabilities/events.js';
import type { HostGateway } from '../capabilities/gateway.js';
import type { WasiImport } from '../wasi/interfaces.js';
import type { WasiOutputSink } from '../wasi/mediate.js';
import type { GuestLogSink } from '../capabilities/log.js';
import type { CapabilityName } from '../component/wit.js';
import { BufferedRunWriter, DEFAULT_MAX_PENDING, capture, type CallInput, type LedgerStore, type RunCounts, type RunEndInput, type RunWriter } from '../ledger/index.js';
import { RunMediator } from '../mediator/mediator.js';
import type { CompiledPolicy } from '../policy/index.js';
import type { StateDb } from '../state/db.js';
import type { KvStore } from '../state/kv-store.js';
import { ICE_VERSION } from '../version.js';
import { runInstance, type Instantiate, type RunEnding } from './instance.js';
import type { Journal } from './journal.js';

export interface RunRequest {
  readonly runId: string;
  readonly input: string;
  readonly policy: CompiledPolicy;
  readonly digest: string;
  readonly imports: readonly CapabilityName[];
  /** The WASI 0.2 interfaces the component imports (admitted against grants.wasi). */
  readonly wasi: readonly WasiImport[];
}

export interface RunServices {
  /** A worker's journal of queued records, for the host thread to rescue after a kill. */
  readonly journal?: Journal;
  readonly state: StateDb;
  readonly ledger: LedgerStore;
  readonly kv: KvStore;
  readonly guestLog: GuestLogSink;
  readonly events?: GuestEventSink;
  readonly gateway?: HostGateway;
  readonly wasiOutput?: WasiOutputSink;
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

export function governedRun(request: RunRequest, instantiate: Instantiate, services: RunServices): RunSummary {
  const started = performance.now();
  const { policy, runId, input } = request;
  const { journal } = services;
  journal?.clear();
  const writer = new BufferedRunWriter(
    startRun(services.ledger, request),
    services.state,
    DEFAULT_MAX_PENDING,
    journal ? (call, seq) => journal.write(seq, call) : undefined,
    journal ? () => journal.clear() : undefined,
  );
  const scope = { component: policy.component, runId, capture: policy.capture, maxCaptureBytes: policy.maxCaptureBytes };
  const mediator = new RunMediator(policy, scope, writer, services);
  const { ending, fuel } = runInstance(instantiate, request.imports, request.wasi, mediator, policy.limits, input);
  const durationUs = Math.round((performance.now() - started) * 1000);
  // The run-end is committed durably (WAL fsynced), which also makes every call record before it so.
  const ledgerRoot = services.state.durable(() => writer.end(runEnd(ending, policy, fuel, durationUs)));
  return { runId, ending, fuel, counts: writer.counts, ledgerRoot, durationUs };
}

/**
 * Ends a run whose worker was terminated at its deadline: continues the chain from the last record
 * the worker committed, first committing the records it had only queued (rescued from its journal),
 * or writes the run-start too if the worker never got that far. A state write in flight at the kill
 * was rolled back with its record: it is neither in the database nor in the journal.
 */
export function endStoppedRun(
  services: Pick<RunServices, 'state' | 'ledger'>,
  request: RunRequest,
  ending: RunEnding,
  durationUs: number,
  /** Records the worker had queued but not committed (from its journal), with their seqs. */
  rescued: readonly { seq: number; call: CallInput }[] = [],
): RunSummary {
  const { ledger, state } = services;
  const ended = state.durable(() =>
    state.transaction(() => {
      const writer = ledger.readRun(request.runId).length > 0 ? ledger.resumeRun(request.runId) : startRun(ledger, request);
      // Only what the database does not have: a kill between a commit and the journal's clearing leaves both.
      for (const { seq, call } of rescued) if (seq > writer.seq) writer.appendCall(call);
      return { root: writer.end(runEnd(ending, request.policy, undefined, durationUs)), counts: writer.counts };
    }),
  );
  return { runId: request.runId, ending, fuel: undefined, counts: ended.counts, ledgerRoot: ended.root, durationUs };
}

function startRun(ledger: LedgerStore, request: RunRequest): RunWriter {
  const { policy } = request;
  return ledger.startRun({
    run: request.runId,
    component: { name: policy.component, digest: request.digest },
    policy: { digest: policy.digest, source: policy.source, document: policy.document },
    // The input is kept whole (it is bounded by the host's maxInputBytes): replay needs it.
    input: capture(request.input, policy.capture),
    host: { ice: ICE_VERSION },
  });
}

function runEnd(ending: RunEnding, policy: CompiledPolicy, fuel: number | undefined, durationUs: number): RunEndInput {
  const kept = (text: string) => capture(text, policy.capture, policy.maxCaptureBytes);
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
