/**
 * The worker pool: runs execute in worker threads (by default one per core), reused across runs.
 * A run past its deadline has its worker terminated — a guest spinning in a loop without import calls
 * cannot be interrupted any other way — and replaced; the host thread then writes the run-end.
 *
 * Each worker reports on a dedicated MessagePort. After a kill the host drains that port
 * synchronously, so a run that finished just as its deadline fired is reported as finished, not as a
 * timeout that never happened.
 *
 * A busy worker is sent the next run before its current one ends (one at most, when no worker is
 * idle): it starts that run as soon as it posts the result of the current one, instead of waiting a
 * round trip through the host thread for it. The host treats the prefetched run as dispatched only
 * then — its start-up timer and its deadline begin when the worker reaches it — and a prefetched run
 * whose worker is killed or dies before reaching it goes back to the front of the queue.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { GuestEvent, GuestLogEntry, WasiOutputEntry } from '../capabilities/run-services.js';
import { APPROVAL } from '../kernel/live.js';
import type { QueuedInput } from '../ledger/index.js';
import { BRIDGE_BYTES, BridgeServer, type BridgeHandler } from './bridge.js';
import type { RunSummary } from './governed-run.js';
import { JOURNAL_BYTES, Journal } from './journal.js';
import type { FromWorker, WorkerInit, WorkerJob } from './protocol.js';
import { releaseIfHeldBy } from '../storage/write-lock.js';

/** Records the killed worker had queued but not committed, from its journal. */
type Rescued = readonly { seq: number; record: QueuedInput }[];

export type PoolOutcome =
  | { readonly kind: 'done'; readonly summary: RunSummary }
  | { readonly kind: 'timeout'; readonly elapsedUs: number; readonly rescued: Rescued }
  | { readonly kind: 'failed'; readonly reason: string; readonly elapsedUs: number; readonly rescued: Rescued };

export interface PoolTask {
  readonly job: WorkerJob;
  readonly timeoutMs: number;
  readonly onLog: (entry: GuestLogEntry) => void;
  readonly onEvent: (event: GuestEvent) => void;
  readonly onOutput: (entry: WasiOutputEntry) => void;
}

interface Slot {
  readonly worker: Worker;
  /** The worker's threadId, kept: it reads -1 once the thread is gone. */
  readonly thread: number;
  readonly journal: Journal;
  readonly port: MessagePort;
  /** Component keys whose modules this worker already holds. */
  readonly known: Set<string>;
  /** Policies (digest and source) this worker has compiled. */
  readonly knownPolicies: Set<string>;
  readonly bridge: BridgeServer;
  /** The running job's deadline, paused while the run waits for an approver. */
  deadline: { pause(): void; resume(): void } | undefined;
  busy: boolean;
  /** A run already sent to this busy worker, which it starts when its current run ends. */
  prefetched: Queued | undefined;
}

interface Queued {
  readonly task: PoolTask;
  readonly resolve: (outcome: PoolOutcome) => void;
}

// From sources (vitest runs the TypeScript), the worker is the compiled one in dist/: a worker thread
// cannot load TypeScript. `npm test` builds dist first.
/** How long a worker may take to start a run (spawn, open the database, load the component). */
const STARTUP_MS = 30_000;

const WORKER_URL = import.meta.url.endsWith('.ts')
  ? new URL('../../../dist/host/src/sandbox/worker.js', import.meta.url)
  : new URL('./worker.js', import.meta.url);

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Queued[] = [];
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly stateDir: string,
    /** Serves the runs' requests to the host thread (host effects, approvals). */
    private readonly serve: BridgeHandler,
    /** The process's write lock on the state database, shared with every worker. */
    private readonly writeLock: SharedArrayBuffer,
    /** Runs hand their intents to the host thread too (`SHARE_INTENTS`). */
    private readonly shareIntents = false,
  ) {}

  run(task: PoolTask): Promise<PoolOutcome> {
    if (this.closed) return Promise.reject(new Error('the host is closed'));
    return new Promise((resolve) => {
      this.queue.push({ task, resolve });
      this.dispatch();
    });
  }

  /** Terminates every worker; runs still queued are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { resolve } of this.queue.splice(0)) resolve({ kind: 'failed', reason: 'the host was closed before the run started', elapsedUs: 0, rescued: [] });
    // A prefetched run is settled when its worker's exit is handled (recoverPrefetched): it may have started.
    await Promise.all(
      this.slots.splice(0).map((slot) => {
        slot.bridge.close();
        return slot.worker.terminate();
      }),
    );
  }

  private dispatch(): void {
    while (!this.closed && this.queue.length > 0) {
      const slot = this.slots.find((s) => !s.busy) ?? (this.slots.length < this.size ? this.spawn() : undefined);
      if (slot) {
        this.execute(slot, this.queue.shift()!);
        continue;
      }
      const busy = this.slots.find((s) => s.prefetched === undefined);
      if (!busy) return;
      const queued = this.queue.shift()!;
      busy.prefetched = queued;
      busy.port.postMessage(this.message(busy, queued.task.job));
    }
  }

  /** The job as this worker needs it: what it already holds (compiled modules, a policy's document) is not sent again. */
  private message(slot: Slot, job: WorkerJob): WorkerJob {
    const policyKey = `${job.policy.digest}\0${job.policy.source}`;
    const send: WorkerJob = {
      ...job,
      component: slot.known.has(job.component.key) ? { key: job.component.key, glueUrl: job.component.glueUrl } : job.component,
      policy: slot.knownPolicies.has(policyKey) ? { source: job.policy.source, digest: job.policy.digest } : job.policy,
    };
    slot.known.add(job.component.key);
    slot.knownPolicies.add(policyKey);
    return send;
  }

  /**
   * The prefetched run of a worker that was killed or died: finished if its result is among the
   * worker's last messages, failed if it had started (its records rescued from the journal), and
   * otherwise put back at the front of the queue, never having run.
   */
  private recoverPrefetched(slot: Slot, drained: readonly FromWorker[]): void {
    const queued = slot.prefetched;
    if (!queued) return;
    slot.prefetched = undefined;
    const runId = queued.task.job.runId;
    let started = false;
    for (const message of drained) {
      if (message.type === 'started' && message.runId === runId) started = true;
      else if (!started) continue;
      else if (message.type === 'log') queued.task.onLog(message.entry);
      else if (message.type === 'event') queued.task.onEvent(message.event);
      else if (message.type === 'output') queued.task.onOutput(message.entry);
      else if (message.type === 'done' && message.runId === runId) return queued.resolve({ kind: 'done', summary: message.summary });
      else if (message.type === 'failed' && message.runId === runId) return queued.resolve({ kind: 'failed', reason: message.reason, elapsedUs: 0, rescued: slot.journal.read() });
    }
    if (started) {
      queued.resolve({ kind: 'failed', reason: "the run's worker was stopped while the run ran (another run on it was past its deadline, or the worker died)", elapsedUs: 0, rescued: slot.journal.read() });
      return;
    }
    if (this.closed) queued.resolve({ kind: 'failed', reason: 'the host was closed before the run started', elapsedUs: 0, rescued: [] });
    else this.queue.unshift(queued);
  }

  private spawn(): Slot {
    const { port1, port2 } = new MessageChannel();
    const journal = new Journal(new SharedArrayBuffer(JOURNAL_BYTES));
    const bridgeBuffer = new SharedArrayBuffer(BRIDGE_BYTES);
    const init: WorkerInit = { stateDir: this.stateDir, port: port2, journal: journal.buffer, bridge: bridgeBuffer, writeLock: this.writeLock, shareIntents: this.shareIntents };
    const worker = new Worker(WORKER_URL, { workerData: init, transferList: [port2] });
    worker.unref();
    port1.unref();
    const slot: Slot = {
      worker,
      thread: worker.threadId,
      journal,
      port: port1,
      known: new Set(),
      knownPolicies: new Set(),
      busy: false,
      deadline: undefined,
      prefetched: undefined,
      // A human may take longer than the run's timeout to answer: the deadline stops while the run waits.
      bridge: new BridgeServer(bridgeBuffer, async (op, args) => {
        const waiting = op === APPROVAL ? slot.deadline : undefined;
        waiting?.pause();
        try {
          return await this.serve(op, args);
        } finally {
          waiting?.resume();
        }
      }),
    };
    this.slots.push(slot);
    return slot;
  }

  /** `sent`: the job was already posted to this worker (prefetched); it is not posted again. */
  private execute(slot: Slot, { task, resolve }: Queued, sent = false): void {
    slot.busy = true;
    slot.worker.ref();
    const dispatched = performance.now();
    const elapsedUs = () => Math.round((performance.now() - dispatched) * 1000);
    const { job } = task;
    const send = sent ? undefined : this.message(slot, job);

    let settled = false;
    let started = false;
    /** Set once the worker is being terminated: whatever the outcome, the slot is not reused. */
    let killed = false;
    const finish = (outcome: PoolOutcome, healthy: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      slot.deadline = undefined;
      slot.port.off('message', onMessage);
      slot.worker.off('error', onError);
      slot.worker.off('exit', onExit);
      resolve(outcome);
      const next = slot.prefetched;
      if (healthy && !killed) {
        slot.busy = false;
        // The worker goes on with the run it was sent ahead, without a round trip through this thread.
        if (next) {
          slot.prefetched = undefined;
          this.execute(slot, next, true);
        } else slot.worker.unref();
      } else {
        const drained: FromWorker[] = [];
        for (let m = receiveMessageOnPort(slot.port); m !== undefined; m = receiveMessageOnPort(slot.port)) drained.push(m.message as FromWorker);
        this.recoverPrefetched(slot, drained);
        this.retire(slot);
      }
      this.dispatch();
    };
    let remaining = task.timeoutMs;
    let deadlineAt = 0;
    const handle = (message: FromWorker): boolean => {
      if (message.type === 'started' && message.runId === job.runId) {
        started = true;
        clearTimeout(timer);
        deadlineAt = performance.now() + remaining;
        timer = setTimeout(kill, remaining);
        slot.deadline = {
          pause: () => {
            clearTimeout(timer);
            remaining = Math.max(0, deadlineAt - performance.now());
          },
          resume: () => {
            if (settled) return;
            deadlineAt = performance.now() + remaining;
            timer = setTimeout(kill, remaining);
          },
        };
      } else if (message.type === 'log') task.onLog(message.entry);
      else if (message.type === 'event') task.onEvent(message.event);
      else if (message.type === 'output') task.onOutput(message.entry);
      else if (message.type === 'done' && message.runId === job.runId) {
        finish({ kind: 'done', summary: message.summary }, true);
        return true;
      } else if (message.type === 'failed' && message.runId === job.runId) {
        finish({ kind: 'failed', reason: message.reason, elapsedUs: elapsedUs(), rescued: slot.journal.read() }, true);
        return true;
      }
      return false;
    };
    const onMessage = (message: FromWorker) => void handle(message);
    // A worker that fails or exits is dying: its connection rolls back, and the write lock it may hold is freed.
    const onError = (error: Error) => {
      releaseIfHeldBy(this.writeLock, slot.thread);
      finish({ kind: 'failed', reason: `the run's worker failed: ${error.message}`, elapsedUs: elapsedUs(), rescued: slot.journal.read() }, false);
    };
    const onExit = (code: number) => {
      releaseIfHeldBy(this.writeLock, slot.thread);
      finish({ kind: 'failed', reason: `the run's worker exited (code ${code})`, elapsedUs: elapsedUs(), rescued: slot.journal.read() }, false);
    };
    const kill = () => {
      killed = true;
      // The exit this causes is expected: it must not be reported as a crash.
      slot.worker.off('exit', onExit);
      slot.worker.off('error', onError);
      void slot.worker.terminate().then(() => {
        // A worker stopped inside a state write held the write lock: free it before anyone writes the run's end.
        releaseIfHeldBy(this.writeLock, slot.thread);
        // Whatever the worker posted before it died: its last logs, or a result that beat the kill.
        for (let m = receiveMessageOnPort(slot.port); m !== undefined; m = receiveMessageOnPort(slot.port)) {
          if (handle(m.message as FromWorker)) return;
        }
        finish(
          started
            ? { kind: 'timeout', elapsedUs: elapsedUs(), rescued: slot.journal.read() }
            : { kind: 'failed', reason: `the run's worker did not start the run within ${STARTUP_MS} ms`, elapsedUs: elapsedUs(), rescued: [] },
          false,
        );
      });
    };
    let timer = setTimeout(kill, STARTUP_MS);

    slot.port.on('message', onMessage);
    slot.worker.on('error', onError);
    slot.worker.on('exit', onExit);
    if (send) slot.port.postMessage(send);
  }

  /** Drops a worker that was killed or died; the next dispatch spawns a fresh one if needed. */
  private retire(slot: Slot): void {
    const index = this.slots.indexOf(slot);
    if (index >= 0) this.slots.splice(index, 1);
    slot.port.close();
    slot.bridge.close();
    const thread = slot.thread;
    void slot.worker.terminate().then(() => releaseIfHeldBy(this.writeLock, thread));
  }
}
