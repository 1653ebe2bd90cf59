/**
 * The kernel without a guest: a real run (real policy compile, real kernel and live answerer, real
 * ledger and kv in a temp state dir) whose import functions a test calls directly, as a guest's glue
 * would — for decision, record and answer cases that need no compiled component. Only the host thread
 * is stood in for (`bridge`), when a test needs one: synchronously, as the worker's bridge is.
 */
import type { Admitted } from '../host/src/capabilities/admit.js';
import type { Answer, ApprovalAnswer, ApprovalRequest } from '../host/src/capabilities/define.js';
import { compilePolicy, type IcePolicy } from '../host/src/capabilities/policy.js';
import { CAPABILITIES } from '../host/src/capabilities/registry.js';
import type { GuestEvent, GuestLogEntry } from '../host/src/capabilities/run-services.js';
import { qualifiedInterface, unversionedInterface } from '../host/src/core/world.js';
import { RunKernel } from '../host/src/kernel/kernel.js';
import { APPROVAL, LiveAnswerer, type BridgeRequest, type HostBridge } from '../host/src/kernel/live.js';
import { RecordedAnswerer } from '../host/src/kernel/recorded.js';
import { BufferedRunWriter, IntentLog, LedgerStore, capture, ledgerCalls, newRunId, queuedType, readIntentLog, type LedgerRecord, type RunEndRecord, type StoredRecord } from '../host/src/ledger/index.js';
import { openStateDb, type StateDb } from '../host/src/storage/db.js';
import { KvStore } from '../host/src/views/kv-store.js';
import { tempDir } from './helpers.js';

type Functions = Record<string, (...args: unknown[]) => Answer>;

export interface Harness {
  readonly policy: IcePolicy;
  readonly runId: string;
  readonly stateDir: string;
  readonly state: StateDb;
  readonly kv: KvStore;
  readonly logs: GuestLogEntry[];
  readonly events: GuestEvent[];
  readonly kernel: RunKernel;
  /** One import call, as the guest's glue makes it: `call('kv', 'get', 'count')`. */
  call(capability: string, fn: string, ...args: unknown[]): Answer;
  /** Records committed so far, read by another connection as an auditor would. */
  committed(): LedgerRecord[];
  /**
   * What would survive a kill of the process now, as `type:seq`: the committed records, then what the
   * run's intent log holds beyond them.
   */
  durable(): string[];
  /** Ends the run as a governed run does (flush + run-end); returns every record. */
  end(): StoredRecord[];
}

export interface HarnessOptions {
  /** Stands in for the host thread (host effects, approvals). */
  readonly bridge?: HostBridge;
  readonly now?: () => number;
  /** A kv store other than the state's (e.g. one that fails). */
  readonly kvStore?: KvStore;
  readonly stateDir?: string;
}

/** The ICE interfaces a policy names (granted or `deny`), as admission would list them. */
function admittedBy(policy: IcePolicy): Admitted {
  const grants = policy.grants as Readonly<Record<string, unknown>>;
  return CAPABILITIES.filter((c) => c.kind === 'ice' && grants[c.name] !== undefined).map((c) => ({ name: c.name, imports: [qualifiedInterface(c.name)] }));
}

export function harness(policyDocument: object, options: HarnessOptions = {}): Harness {
  const policy = compilePolicy(policyDocument);
  const stateDir = options.stateDir ?? tempDir('ice-harness-');
  const state = openStateDb(stateDir);
  const ledger = new LedgerStore(state);
  const kv = new KvStore(state);
  const logs: GuestLogEntry[] = [];
  const events: GuestEvent[] = [];
  const runId = newRunId();
  const writer = new BufferedRunWriter(
    ledger.startRun({
      run: runId,
      component: { name: policy.component, digest: '0'.repeat(64) },
      policy: { digest: policy.digest, source: policy.source, document: policy.document },
      input: capture('', policy.capture),
      host: { ice: 'test' },
    }),
    state,
    // As a governed run does: an intent is durable (in the run's intent log) before its effect starts.
    { intentLog: IntentLog.forRun(stateDir, runId) },
  );
  const run = {
    component: policy.component,
    runId,
    capture: policy.capture,
    maxCaptureBytes: policy.maxCaptureBytes,
    limits: policy.limits,
    services: {
      kv: options.kvStore ?? kv,
      guestLog: (e: GuestLogEntry) => logs.push(e),
      events: (e: GuestEvent) => events.push(e),
      ...(options.now ? { now: options.now } : {}),
    },
  };
  const kernel = new RunKernel(policy, run, new LiveAnswerer(run, { state, recorder: writer, ...(options.bridge ? { bridge: options.bridge } : {}) }));
  const imports = kernel.importObject(admittedBy(policy)) as Record<string, Functions>;
  const started = performance.now();
  return {
    policy,
    runId,
    stateDir,
    state,
    kv,
    logs,
    events,
    kernel,
    call(capability, fn, ...args) {
      const f = imports[unversionedInterface(capability)]?.[fn];
      if (!f) throw new Error(`the harness's run does not import ${capability}.${fn}`);
      return f(...args);
    },
    committed: () => committedRecords(stateDir, runId),
    durable: () => durableRecords(stateDir, runId),
    end() {
      writer.end({ outcome: 'ok', output: capture('', policy.capture), durationUs: Math.round((performance.now() - started) * 1000) });
      return ledger.readRun(runId);
    },
  };
}

/** A run's committed records, through a connection of their own. */
export function committedRecords(stateDir: string, runId: string): LedgerRecord[] {
  const other = openStateDb(stateDir);
  try {
    return new LedgerStore(other).readRun(runId).map((r) => r.record);
  } finally {
    other.close();
  }
}

/** A run's committed records and, after them, what its intent log holds, as `type:seq`. */
export function durableRecords(stateDir: string, runId: string): string[] {
  const committed = committedRecords(stateDir, runId);
  const last = committed.at(-1)?.seq ?? -1;
  const logged = readIntentLog(stateDir, runId).filter((e) => e.seq > last);
  return [...committed.map((r) => `${r.type}:${r.seq}`), ...logged.map((e) => `${queuedType(e.record)}:${e.seq}`)];
}

/**
 * The host thread, stood in for synchronously: `effects` answer host effects by key (`http.fetch`),
 * `approve` answers asks. Every request it receives is kept, in order.
 */
export function hostThread(
  effects: Readonly<Record<string, (request: unknown, payload: BridgeRequest) => unknown>> = {},
  approve: (request: ApprovalRequest) => ApprovalAnswer = () => ({ by: 'test', answer: 'denied', waitedMs: 0 }),
): HostBridge & { readonly seen: { key: string; payload: BridgeRequest }[] } {
  const seen: { key: string; payload: BridgeRequest }[] = [];
  return {
    seen,
    call(key, payload) {
      seen.push({ key, payload });
      if (key === APPROVAL) return approve(payload.request as ApprovalRequest);
      const effect = effects[key];
      if (!effect) throw new Error(`the test's host thread has no ${key}`);
      return effect(payload.request, payload);
    },
  };
}

/**
 * A replay of the harness's run through the same kernel with the recorded answerer: `call` answers from
 * the records; `divergence` says where the calls stopped matching.
 */
export function replayHarness(h: Harness, records: readonly StoredRecord[]): { call: Harness['call']; answerer: RecordedAnswerer } {
  const end = records.at(-1)!.record as RunEndRecord;
  const answerer = new RecordedAnswerer(h.policy, ledgerCalls(records.map((r) => r.record)), end);
  const run = { component: h.policy.component, runId: h.runId, capture: h.policy.capture, maxCaptureBytes: h.policy.maxCaptureBytes, limits: h.policy.limits, services: {} };
  const imports = new RunKernel(h.policy, run, answerer).importObject(admittedBy(h.policy)) as Record<string, Functions>;
  return {
    answerer,
    call(capability, fn, ...args) {
      return imports[unversionedInterface(capability)]![fn]!(...args);
    },
  };
}
