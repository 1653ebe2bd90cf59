/**
 * A run worker: one thread of the pool. It opens its own connection to the state database and runs
 * governed runs with the same code as in-process execution (governed-run.ts), so its ledger records
 * are committed by this thread before the guest gets each answer. The host thread only ever kills it
 * (deadline) and writes the run-end of a killed run.
 */
import { workerData } from 'node:worker_threads';
import { prepareCapabilities } from '../capabilities/admit.js';
import { compilePolicy, type IcePolicy } from '../capabilities/policy.js';
import type { GuestEvent, GuestLogEntry, WasiOutputEntry } from '../capabilities/run-services.js';
import type { GeneratedInstantiate } from '../component/prepare.js';
import { LedgerStore, type IntentLogEntry } from '../ledger/index.js';
import { openStateDb } from '../storage/db.js';
import { KvStore } from '../views/kv-store.js';
import { enqueueDeliveries, type EmittedEvent } from '../views/deliveries.js';
import { BridgeClient } from './bridge.js';
import { governedRun } from './governed-run.js';
import { instantiateGenerated } from './instantiate.js';
import { Journal } from './journal.js';
import { SHARE_INTENTS, type FromWorker, type WorkerInit, type WorkerJob } from './protocol.js';

const { stateDir, port, journal, bridge, writeLock, shareIntents } = workerData as WorkerInit;
const post = (message: FromWorker): void => port.postMessage(message);

const state = openStateDb(stateDir, { writeLock });
const hostThread = new BridgeClient(bridge);
const services = {
  journal: new Journal(journal),
  state,
  ledger: new LedgerStore(state),
  kv: new KvStore(state),
  guestLog: (entry: GuestLogEntry) => post({ type: 'log', entry }),
  events: (event: GuestEvent) => post({ type: 'event', event }),
  deliveries: (event: EmittedEvent) => enqueueDeliveries(state, event),
  wasiOutput: (entry: WasiOutputEntry) => post({ type: 'output', entry }),
  bridge: hostThread,
  // A cluster: an intent is in the shared database before its effect starts (the host thread writes it).
  ...(shareIntents ? { shareIntents: (runId: string, entries: readonly IntentLogEntry[]) => void hostThread.call(SHARE_INTENTS, { runId, entries }) } : {}),
};

interface Component {
  instantiate: GeneratedInstantiate;
  modules: ReadonlyMap<string, WebAssembly.Module>;
}
const components = new Map<string, Component>();
const policies = new Map<string, IcePolicy>();

// One run at a time, in the order sent: the pool may send the next run while this one is running
// (prefetch), and its deadline, journal and bridge belong to the run the worker reported `started`.
const jobs: WorkerJob[] = [];
let draining = false;
port.on('message', (job: WorkerJob) => {
  jobs.push(job);
  if (!draining) void drain();
});

async function drain(): Promise<void> {
  draining = true;
  for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) await run(job);
  draining = false;
}

async function run(job: WorkerJob): Promise<void> {
  try {
    const component = await componentFor(job);
    const policy = policyFor(job);
    await prepareCapabilities(job.admitted);
    post({ type: 'started', runId: job.runId });
    const summary = governedRun(
      { runId: job.runId, invocation: job.invocation, policy, digest: job.digest, admitted: job.admitted, ...(job.cause ? { cause: job.cause } : {}), ...(job.delivery !== undefined ? { delivery: job.delivery } : {}) },
      (provider, meter) => instantiateGenerated(component.instantiate, component.modules, provider, meter),
      services,
      // The pool's host syncs the WAL before it hands the result on (group commit, storage/wal-sync.ts).
      { hostSyncs: true },
    );
    post({ type: 'done', runId: job.runId, summary });
  } catch (error) {
    post({ type: 'failed', runId: job.runId, reason: error instanceof Error ? error.message : String(error) });
  }
}

async function componentFor(job: WorkerJob): Promise<Component> {
  const known = components.get(job.component.key);
  if (known) return known;
  const { modules, glueUrl } = job.component;
  if (!modules) throw new Error(`worker has no modules for component ${job.component.key}`);
  const glue = (await import(glueUrl)) as { instantiate: GeneratedInstantiate };
  const component = { instantiate: glue.instantiate, modules };
  components.set(job.component.key, component);
  return component;
}

function policyFor(job: WorkerJob): IcePolicy {
  const key = `${job.policy.digest}\0${job.policy.source}`;
  const known = policies.get(key);
  if (known) return known;
  if (job.policy.document === undefined) throw new Error(`worker has no policy ${job.policy.source} (sha256:${job.policy.digest})`);
  const policy = compilePolicy(job.policy.document, job.policy.source);
  policies.set(key, policy);
  return policy;
}
