/** Messages between the host thread and a run worker (plain, structured-clonable data). */
import type { MessagePort } from 'node:worker_threads';
import type { Admitted } from '../capabilities/admit.js';
import type { GuestEvent, GuestLogEntry, WasiOutputEntry } from '../capabilities/run-services.js';
import type { PolicyDocument } from '../policy/index.js';
import type { RunCause } from '../ledger/index.js';
import type { RunSummary } from './governed-run.js';
import type { Invocation } from './invoke.js';

/** Given to each worker at start. */
export interface WorkerInit {
  readonly stateDir: string;
  /** Where the worker posts everything it reports (a dedicated port, so the host can drain it after a kill). */
  readonly port: MessagePort;
  /** The worker's journal of queued ledger records (sandbox/journal.ts). */
  readonly journal: SharedArrayBuffer;
  /** The worker's end of its bridge to the host thread (host effects: http, model; approvals). */
  readonly bridge: SharedArrayBuffer;
  /** The process's write lock on the state database (storage/write-lock.ts). */
  readonly writeLock: SharedArrayBuffer;
  /** Whether runs' intents also go to the host thread before their effects (`SHARE_INTENTS`, a cluster). */
  readonly shareIntents?: boolean;
}

/** The bridge operation that hands a run's intents to the host thread (HostOptions.shareIntents). */
export const SHARE_INTENTS = 'ice:share-intents';

export interface WorkerJob {
  readonly runId: string;
  readonly invocation: Invocation;
  /** Why the run happens (a trigger), recorded in its run-start. */
  readonly cause?: RunCause;
  /** The event delivery the run completes (marked done with its run-end). */
  readonly delivery?: number;
  readonly digest: string;
  /** What the component imports, by capability. */
  readonly admitted: Admitted;
  /**
   * The normalized policy; the worker compiles it again (compiled matchers hold closures). The
   * document is sent only the first time this worker sees the policy (digest and source).
   */
  readonly policy: { readonly document?: PolicyDocument; readonly source: string; readonly digest: string };
  readonly component: {
    /** digest and memory cap: what the worker caches the component by. */
    readonly key: string;
    readonly glueUrl: string;
    /** Compiled core modules; sent only the first time this worker sees `key`. */
    readonly modules?: ReadonlyMap<string, WebAssembly.Module>;
  };
}

export type FromWorker =
  /** The guest's run begins now: its deadline starts here, not at dispatch (thread start-up is the host's). */
  | { readonly type: 'started'; readonly runId: string }
  | { readonly type: 'log'; readonly entry: GuestLogEntry }
  | { readonly type: 'event'; readonly event: GuestEvent }
  | { readonly type: 'output'; readonly entry: WasiOutputEntry }
  | { readonly type: 'done'; readonly runId: string; readonly summary: RunSummary }
  /** The worker could not run the job at all (e.g. the state database failed): a host fault. */
  | { readonly type: 'failed'; readonly runId: string; readonly reason: string };
