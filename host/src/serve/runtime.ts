/**
 * The long-running runtime behind `ice serve`: one Host (one worker pool, one state database) and the
 * agents of the config, each an *actor* — its runs start in arrival order, at most `concurrency` at
 * once, from a bounded queue — woken by triggers: events other agents emit (durable deliveries,
 * views/deliveries.ts), a cron schedule, a webhook, an operator's invoke, an MCP tool call.
 *
 * Everything that changes an agent is a ledger record first (views/lifecycle.ts): deployment, suspend
 * and resume, quarantine after `faults.max` faults (trap or limit) within `faults.windowMs` (each
 * fault before that delays its next run, 100 ms doubling up to 30 s), upgrades with the replay that
 * allowed them. The registry of agents is the fold of those records, so a restarted server, `ice state
 * verify` and `ice audit` all read the same history.
 */
import type { Logger } from 'pino';
import { Cron } from 'croner';
import { DEFAULT_MAX_COMPONENT_BYTES } from '../component/source.js';
import { createHost, RunInputError, RunStopped, type Agent, type Host, type HostOptions, type RunResult } from '../host.js';
import { newRunId, type AgentState, type RunCause, type TriggerKind } from '../ledger/index.js';
import type { AgentEntry, McpConfig } from '../mcp/config.js';
import { McpConfigError } from '../mcp/config.js';
import { loadAgent } from '../mcp/server.js';
import { agentsWithPending, claimDeliveries, deliveryCounts, finishDelivery, recoverDeliveries, releaseDelivery, setSubscriptions, type Delivery, type Subscription } from '../views/deliveries.js';
import { readAgent, recordRefusal, recordTransition, TransitionError, type RecordSubject } from '../views/lifecycle.js';
import type { ApprovalRequest } from '../capabilities/define.js';
import type { RunSpanIds, RunTracer } from '../telemetry/traces.js';
import type { ClusterMember, ClusterNode } from '../cluster/node.js';
import { importRegistryRow } from '../cluster/spool.js';
import { LeaseLost, type AgentRow } from '../cluster/store.js';

/** What a run of an agent calls. */
export type AgentRequest =
  | { readonly kind: 'run'; readonly input: string }
  | { readonly kind: 'call'; readonly function: string; readonly args: unknown }
  | { readonly kind: 'command'; readonly args: readonly string[]; readonly stdin?: string };

/** A request the runtime refused; `status` is the HTTP status that says why. */
export class Refused extends Error {
  override readonly name = 'Refused';
  constructor(
    readonly status: 400 | 404 | 409 | 429 | 503,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export interface ServeRuntimeOptions {
  readonly stateDir: string;
  readonly host?: Omit<HostOptions, 'stateDir' | 'approve' | 'approverName' | 'onEvent'>;
  readonly logger: Logger;
  /** How often the database is polled for deliveries from other processes (an `ice run` on this state). Default 250 ms. */
  readonly pollMs?: number;
  /** Traces of runs (telemetry/traces.ts); undefined: tracing off. */
  readonly tracer?: RunTracer;
  /** Asks of runs started by an MCP session go to its client (serve/mcp-http.ts). */
  readonly approve?: (request: ApprovalRequest) => Promise<{ approved: boolean; by?: string; reason?: string }> | undefined;
  /**
   * One host of a cluster (`ice serve --db postgres://…`, cluster/): ledger, kv, registry and deliveries
   * are shared; an agent runs on the host holding its lease. Undefined: this state directory alone.
   */
  readonly cluster?: ClusterNode;
}

export interface AgentStatus {
  readonly name: string;
  readonly state: AgentState;
  readonly component: { readonly name: string; readonly digest: string };
  readonly policy: { readonly source: string; readonly digest: string };
  readonly triggers: { readonly events?: readonly string[]; readonly schedule?: string; readonly http?: string };
  readonly queue: { readonly length: number; readonly capacity: number; readonly running: number; readonly concurrency: number };
  readonly faults: { readonly recent: number; readonly max: number; readonly windowMs: number };
  /** Its event deliveries not yet completed: waiting on disk (pending), claimed for a run (running). */
  readonly deliveries: { readonly pending: number; readonly running: number };
  readonly lastRun?: { readonly run: string; readonly outcome: string; readonly at: string };
  readonly since: { readonly run: string };
}

interface Work {
  readonly runId: string;
  readonly request: AgentRequest;
  readonly cause: RunCause | undefined;
  readonly trigger: TriggerKind;
  /** The delivery this run completes (its id in the cluster's database, on a cluster host). */
  readonly delivery?: number;
  /** The caller's W3C trace context (traces). */
  readonly traceparent?: string;
  readonly settle?: (result: RunResult | Error) => void;
}

interface Served {
  readonly entry: AgentEntry;
  agent: Agent;
  state: AgentState;
  since: string;
  readonly queue: Work[];
  running: number;
  /** Times (ms) of recent faults, oldest first. */
  faults: number[];
  backoffUntil: number;
  backoffTimer: NodeJS.Timeout | undefined;
  lastRun: { run: string; outcome: string; at: string } | undefined;
  cron: Cron | undefined;
}

const MAX_BACKOFF_MS = 30_000;
const FIRST_BACKOFF_MS = 100;
/** Refusal records per agent and trigger, at most one per this interval; the rest are counted into the next. */
const REFUSAL_RECORD_INTERVAL_MS = 1000;

export class ServeRuntime {
  readonly host: Host;
  private readonly agents = new Map<string, Served>();
  private readonly running = new Set<Promise<void>>();
  private poll: NodeJS.Timeout | undefined;
  private pumpQueued = false;
  /** Runs that emitted: when one ends, its deliveries are committed and worth a look. */
  readonly emitting = new Set<string>();
  /** Agents with pending deliveries that did not fit their queue at the last look. */
  private readonly backlogged = new Set<string>();
  private closing = false;
  private readonly refusals = new Map<string, { last: number; suppressed: number }>();

  private constructor(
    host: Host,
    private readonly config: McpConfig,
    private readonly options: ServeRuntimeOptions,
  ) {
    this.host = host;
  }

  /**
   * Loads every agent (refusing to start if any fails: the message names it), reconciles the registry
   * with the config (recording each transition), subscribes the event triggers, recovers deliveries a
   * crash left running, and starts the schedules.
   */
  static async start(config: McpConfig, options: ServeRuntimeOptions): Promise<ServeRuntime> {
    let runtime: ServeRuntime | undefined;
    const { cluster } = options;
    const host = await createHost({
      ...options.host,
      stateDir: options.stateDir,
      ...(cluster ? { shareIntents: cluster.shareIntents } : {}),
      approve: (request) =>
        options.approve?.(request) ?? Promise.resolve({ approved: false, by: 'ice-serve', reason: 'a run started by a trigger has nobody to ask: grant or deny it in the policy' }),
      approverName: 'ice-serve',
      // An emit may have queued deliveries: look once its run has ended (its transaction committed).
      onEvent: (event) => runtime?.emitting.add(event.runId),
    });
    runtime = new ServeRuntime(host, config, options);
    try {
      await runtime.load();
    } catch (error) {
      host.close();
      throw error;
    }
    return runtime;
  }

  private async load(): Promise<void> {
    const max = this.options.host?.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES;
    const subscriptions: Subscription[] = [];
    const loaded: { entry: AgentEntry; agent: Agent }[] = [];
    for (const entry of this.config.agents) {
      const agent = await this.keptOrConfigured(entry, max);
      checkTriggers(entry, agent, this.config.source);
      for (const pattern of entry.on.events ?? []) for (const receive of receivePatterns(agent)) subscriptions.push({ agent: entry.name, pattern, receive });
      loaded.push({ entry, agent });
    }
    const state = this.host.state;
    const cluster = this.options.cluster;
    if (cluster) {
      checkNamespaces(loaded.map(({ entry, agent }) => ({ name: entry.name, namespace: agent.policy.component })), this.config.source);
      // Hosts reconcile one at a time against the shared registry: the first records what the config
      // changes, the others find it recorded.
      await cluster.store.withLock('config', async () => {
        for (const row of await cluster.registry()) importRegistryRow(state, row);
        for (const { entry, agent } of loaded) this.agents.set(entry.name, this.reconcile(entry, agent));
        await cluster.attach(state, this.member());
        this.attached = true;
        // Shipped now where this host can take the agent's lease; else by this host when it next takes it.
        for (const { agent, runId } of this.recorded.splice(0)) {
          await cluster.take(agent);
          await cluster.hostRecord(agent, runId);
        }
        // Taken only to ship those records: work goes to whichever host has room.
        await cluster.settle();
      });
    } else {
      for (const { entry, agent } of loaded) {
        const served = this.reconcile(entry, agent);
        this.agents.set(entry.name, served);
      }
    }
    // Agents of an earlier config that this one no longer has: stopped, so nothing is delivered to them.
    // (Not on a cluster: the registry is shared, and a host cannot tell a removed agent from one that
    // another host's newer config added; such an agent stays as recorded, and no host of this config serves it.)
    const registered = cluster ? [] : state.db.prepare<[], { name: string; state: string }>("SELECT name, state FROM agents WHERE state <> 'stopped'").all();
    for (const row of registered) {
      if (this.agents.has(row.name)) continue;
      // The same component and policy as its last record: it is removed, not changed.
      const since = this.host.readRun(readAgent(state, row.name)!.since)[0]?.record;
      if (since?.type !== 'run-start') continue;
      this.transition({ agent: row.name, component: since.component, policy: since.policy }, 'stopped', { kind: 'config', source: this.config.source });
    }
    setSubscriptions(state, subscriptions);
    const recovered = recoverDeliveries(state);
    if (recovered.redelivered > 0 || recovered.done > 0) this.options.logger.warn(recovered, 'recovered deliveries a stopped server left running');
    for (const served of this.agents.values()) this.startSchedule(served);
    this.poll = setInterval(() => this.schedulePump(), this.options.pollMs ?? 250);
    this.poll.unref();
    this.schedulePump();
  }

  /**
   * The component an agent runs: the one the config names, unless an upgrade (recorded) replaced it
   * and the config still names the one before; then the upgraded one, kept by digest.
   */
  private async keptOrConfigured(entry: AgentEntry, max: number): Promise<Agent> {
    const configured = await loadAgent(this.host, entry, this.config.source, max);
    const known = readAgent(this.host.state, entry.name);
    if (known === undefined || known.digest === configured.info.digest || known.state === 'stopped') return configured;
    const upgraded = this.host.state.db
      .prepare(
        `SELECT 1 FROM ledger WHERE type = 'run-start' AND body ->> '$.invoke.kind' = 'lifecycle' AND body ->> '$.invoke.agent' = ?
           AND body ->> '$.cause.kind' = 'upgrade' AND body ->> '$.cause.to' = ? LIMIT 1`,
      )
      .get(entry.name, known.digest);
    if (upgraded === undefined) return configured;
    const bytes = this.host.storedComponent(known.digest);
    if (bytes === undefined) return configured;
    this.options.logger.warn({ agent: entry.name, runs: known.digest, config: configured.info.digest }, 'the agent runs the component it was upgraded to, not the one the config names: update the config');
    return this.host.load(bytes, entry.policy);
  }

  /** Records what the config changes about an agent (deployed, activated, a new component or policy). */
  private reconcile(entry: AgentEntry, agent: Agent): Served {
    const state = this.host.state;
    const subject = subjectOf(entry.name, agent);
    const cause: RunCause = { kind: 'config', source: this.config.source };
    let known = readAgent(state, entry.name);
    if (known === undefined || known.state === 'stopped') {
      this.transition(subject, 'deployed', cause);
      known = readAgent(state, entry.name)!;
    } else if (known.digest !== agent.info.digest || known.policyDigest !== agent.policy.digest) {
      // Same state, new component or policy: the record keeps both (the previous in the record before).
      this.transition(subject, known.state, cause);
      known = readAgent(state, entry.name)!;
    }
    if (known.state === 'deployed') {
      this.transition(subject, 'active', cause);
      known = readAgent(state, entry.name)!;
    }
    return { entry, agent, state: known.state, since: known.since, queue: [], running: 0, faults: [], backoffUntil: 0, backoffTimer: undefined, lastRun: undefined, cron: undefined };
  }

  private transition(subject: RecordSubject, to: AgentState, cause: RunCause): string {
    const { runId } = recordTransition({ state: this.host.state, ledger: this.host.ledger }, subject, to, cause);
    this.shipHostRecord(subject.agent, runId);
    const served = this.agents.get(subject.agent);
    if (served) {
      served.state = to;
      served.since = runId;
    }
    this.options.logger.info({ agent: subject.agent, to, cause: cause.kind, run: runId }, 'agent lifecycle');
    return runId;
  }

  // --- operators ---------------------------------------------------------------------------------

  names(): string[] {
    return [...this.agents.keys()];
  }

  /** The component an agent runs now (after any upgrade). */
  agent(name: string): Agent {
    return this.served(name).agent;
  }

  status(name: string): AgentStatus {
    const served = this.served(name);
    const { entry, agent } = served;
    const now = Date.now();
    return {
      name,
      state: served.state,
      component: { name: agent.policy.component, digest: agent.info.digest },
      policy: { source: agent.policy.source, digest: agent.policy.digest },
      triggers: { ...(entry.on.events ? { events: entry.on.events } : {}), ...(entry.on.schedule ? { schedule: entry.on.schedule } : {}), ...(entry.on.http ? { http: entry.on.http } : {}) },
      queue: { length: served.queue.length, capacity: entry.queue, running: served.running, concurrency: entry.concurrency },
      faults: { recent: served.faults.filter((t) => now - t <= entry.faults.windowMs).length, max: entry.faults.max, windowMs: entry.faults.windowMs },
      deliveries: this.options.cluster ? this.options.cluster.deliveries(name) : deliveryCounts(this.host.state, name),
      ...(served.lastRun ? { lastRun: served.lastRun } : {}),
      since: { run: served.since },
    };
  }

  suspend(name: string, by: string, reason?: string): AgentStatus {
    const served = this.served(name);
    this.transitionOrRefuse(served, 'suspended', { kind: 'operator', by, ...(reason ? { reason } : {}) });
    return this.status(name);
  }

  /** From suspended or quarantined: active again, with its fault count cleared. */
  resume(name: string, by: string, reason?: string): AgentStatus {
    const served = this.served(name);
    this.transitionOrRefuse(served, 'active', { kind: 'operator', by, ...(reason ? { reason } : {}) });
    served.faults = [];
    served.backoffUntil = 0;
    this.pump(served);
    this.schedulePump();
    return this.status(name);
  }

  private transitionOrRefuse(served: Served, to: AgentState, cause: RunCause): void {
    try {
      this.transition(subjectOf(served.entry.name, served.agent), to, cause);
    } catch (error) {
      if (error instanceof TransitionError) throw new Refused(409, error.message);
      throw error;
    }
  }

  /**
   * Replaces an agent's component after replaying its last `against` runs (default 10) against the new
   * one: any divergence refuses the upgrade unless `force`. The record keeps both digests and the count.
   */
  async upgrade(name: string, bytes: Uint8Array, options: { readonly by: string; readonly against?: number; readonly force?: boolean }): Promise<{ from: string; to: string; replayed: { run: string; matches: boolean; detail?: string }[]; forced: boolean; run: string }> {
    const served = this.served(name);
    if (served.state === 'stopped') throw new Refused(409, `agent ${name} is stopped: it cannot be upgraded`);
    let next: Agent;
    try {
      next = await this.host.load(bytes, served.entry.policy);
    } catch (error) {
      throw new Refused(400, `agent ${name}: the new component cannot be loaded under ${served.entry.policy}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const from = served.agent.info.digest;
    const to = next.info.digest;
    if (from === to) throw new Refused(409, `agent ${name} already runs sha256:${to}`);
    const against = Math.min(Math.max(options.against ?? 10, 0), 1000);
    const replayed: { run: string; matches: boolean; detail?: string }[] = [];
    for (const run of this.lastRuns(served, against)) {
      try {
        const report = await this.host.replay(run, bytes, { otherComponent: true });
        replayed.push(report.matches ? { run, matches: true } : { run, matches: false, detail: `seq ${report.seq}: expected ${report.expected}, got ${report.actual}` });
      } catch (error) {
        replayed.push({ run, matches: false, detail: error instanceof Error ? error.message : String(error) });
      }
    }
    const diverged = replayed.filter((r) => !r.matches).length;
    if (diverged > 0 && !options.force) {
      throw new Refused(
        409,
        `upgrade of agent ${name} refused: ${diverged} of ${replayed.length} recent runs replayed against sha256:${to.slice(0, 12)} diverge (first: run ${replayed.find((r) => !r.matches)!.run}: ${replayed.find((r) => !r.matches)!.detail}); fix the component, or pass --force`,
        { replayed },
      );
    }
    const cause: RunCause = { kind: 'upgrade', by: options.by, from, to, replayed: replayed.length, diverged, forced: diverged > 0 };
    const run = this.transition(subjectOf(name, next), served.state, cause);
    // Runs already started finish on the old instance; every run from now on gets the new component.
    served.agent = next;
    return { from, to, replayed, forced: diverged > 0, run };
  }

  /** The agent's newest runs of its current component that ended (not host records), newest first. */
  private lastRuns(served: Served, limit: number): string[] {
    if (limit === 0) return [];
    return this.host.state.db
      .prepare<[string, string, number], { run: string }>(
        `SELECT s.run FROM ledger s JOIN ledger e ON e.run = s.run AND e.type = 'run-end'
          WHERE s.type = 'run-start' AND s.body ->> '$.component.name' = ? AND s.body ->> '$.component.digest' = ?
            AND (s.body ->> '$.invoke.kind' IS NULL OR s.body ->> '$.invoke.kind' IN ('call', 'command'))
            AND e.body ->> '$.outcome' <> 'incomplete'
          ORDER BY s.id DESC LIMIT ?`,
      )
      .all(served.agent.policy.component, served.agent.info.digest, limit)
      .map((r) => r.run);
  }

  // --- triggers ----------------------------------------------------------------------------------

  /**
   * Queues a run of `name` and resolves with its result once it ends. @throws Refused (404 unknown,
   * 409 not active, 429 queue full: recorded), RunInputError (bad input: nothing ran)
   */
  invoke(
    name: string,
    request: AgentRequest,
    trigger: TriggerKind,
    cause: RunCause | undefined,
    options: { readonly runId?: string; /** W3C trace context of the caller: the run's span becomes its child. */ readonly traceparent?: string } = {},
  ): Promise<RunResult> {
    const cluster = this.options.cluster;
    if (cluster && !cluster.holds(name)) {
      this.served(name);
      // The agent runs where its lease is: take it if free, else say where it runs.
      return cluster.take(name, 2 * cluster.leaseMs).then(async (taken) => {
        if (!taken) {
          const reason = `agent ${name} runs on another host of the cluster now (${(await cluster.holder(name)) ?? 'unknown'}): send the request there, or retry once it is idle`;
          // A webhook was already answered 202: its refusal is recorded. A schedule fires on every host; the holder runs it.
          if (trigger === 'webhook') this.refuse(name, trigger, reason, cause);
          throw new Refused(409, reason);
        }
        return this.invoke(name, request, trigger, cause, options);
      });
    }
    const runId = options.runId ?? newRunId();
    const served = this.served(name);
    if (this.closing) throw new Refused(503, 'the server is shutting down');
    if (served.state !== 'active') {
      const reason = `agent ${name} is ${served.state}: it takes no runs${served.state === 'suspended' || served.state === 'quarantined' ? ` until \`ice agents resume ${name}\`` : ''}`;
      if (trigger === 'webhook' || trigger === 'schedule') this.refuse(served, trigger, reason, cause);
      throw new Refused(409, reason);
    }
    checkRequest(served.agent, request);
    if (served.queue.length >= served.entry.queue) {
      const reason = `agent ${name}'s queue is full (${served.entry.queue} runs waiting, queue: ${served.entry.queue} in ${this.config.source}); try again later`;
      this.refuse(served, trigger, reason, cause);
      throw new Refused(429, reason);
    }
    return new Promise<RunResult>((resolve, reject) => {
      served.queue.push({ runId, request, cause, trigger, ...(options.traceparent ? { traceparent: options.traceparent } : {}), settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      this.pump(served);
    });
  }

  /** Records a refused trigger, at most one record per agent and trigger a second (the rest are counted into it). */
  refuse(served: Served | string, trigger: TriggerKind, reason: string, cause?: RunCause): void {
    const agent = typeof served === 'string' ? this.served(served) : served;
    const key = `${agent.entry.name}\0${trigger}`;
    const now = Date.now();
    const seen = this.refusals.get(key) ?? { last: 0, suppressed: 0 };
    this.refusals.set(key, seen);
    if (now - seen.last < REFUSAL_RECORD_INTERVAL_MS) {
      seen.suppressed++;
      return;
    }
    const more = seen.suppressed > 0 ? ` (and ${seen.suppressed} more refused since the last record)` : '';
    seen.last = now;
    seen.suppressed = 0;
    const { runId } = recordRefusal({ state: this.host.state, ledger: this.host.ledger }, subjectOf(agent.entry.name, agent.agent), trigger, `${reason}${more}`, cause);
    this.shipHostRecord(agent.entry.name, runId);
  }

  /** Host records written before the cluster is attached (the start's reconcile), shipped once it is. */
  private readonly recorded: { agent: string; runId: string }[] = [];

  /** The cluster is attached: host records ship as they are written (before, they wait in `recorded`). */
  private attached = false;

  /** On a cluster host: a host record goes to the shared ledger (now if this host holds the agent, else when it next does). */
  private shipHostRecord(agent: string, runId: string): void {
    const cluster = this.options.cluster;
    if (cluster === undefined) return;
    if (!this.attached) {
      this.recorded.push({ agent, runId });
      return;
    }
    cluster.hostRecord(agent, runId).catch((error: unknown) => this.options.logger.warn({ agent, run: runId, error: String(error) }, 'cluster: a host record is not shipped yet; it will be with the next'));
  }

  /** What the cluster asks of this runtime (cluster/node.ts). */
  private member(): ClusterMember {
    const namespaces = new Map([...this.agents].map(([name, served]) => [name, { namespace: served.agent.policy.component }]));
    return {
      agents: () => namespaces,
      room: (agent) => {
        const served = this.agents.get(agent);
        return served && served.state === 'active' && !this.closing ? served.entry.queue - served.queue.length : 0;
      },
      enqueue: (agent, claimed) => {
        const served = this.agents.get(agent);
        if (served === undefined) return;
        for (const { delivery, run } of claimed) served.queue.push(deliveryWork(delivery, run));
        this.pump(served);
      },
      idle: (agent) => {
        const served = this.agents.get(agent);
        return served === undefined || (served.running === 0 && served.queue.length === 0);
      },
      lost: (agent) => {
        const served = this.agents.get(agent);
        if (served === undefined) return [];
        const dropped = served.queue.splice(0);
        for (const work of dropped) work.settle?.(new Refused(503, `agent ${agent} moved to another host of the cluster before the run started`));
        return dropped.flatMap((work) => (work.delivery === undefined ? [] : [work.delivery]));
      },
      registry: (agent, row) => this.adopt(agent, row),
    };
  }

  /** The shared registry's state of an agent this host just took (another host may have changed it). */
  private adopt(agent: string, row: AgentRow): void {
    const served = this.agents.get(agent);
    if (served === undefined) return;
    served.state = row.state as AgentState;
    served.since = row.since;
  }

  /** The agent a webhook path belongs to. */
  hook(path: string): { name: string; verify: NonNullable<AgentEntry['on']['verify']> } | undefined {
    for (const served of this.agents.values()) if (served.entry.on.http === path && served.entry.on.verify) return { name: served.entry.name, verify: served.entry.on.verify };
    return undefined;
  }

  private startSchedule(served: Served): void {
    const expression = served.entry.on.schedule;
    if (expression === undefined) return;
    served.cron = new Cron(expression, { protect: true }, (job: Cron) => {
      if (served.state !== 'active') return;
      const due = (job.currentRun() ?? new Date()).toISOString();
      const cause: RunCause = { kind: 'schedule', schedule: expression, due };
      this.invoke(served.entry.name, { kind: 'run', input: JSON.stringify({ trigger: 'schedule', schedule: expression, due }) }, 'schedule', cause).catch((error: unknown) => {
        if (!(error instanceof Refused)) this.options.logger.error({ agent: served.entry.name, error: String(error) }, 'a scheduled run failed to start');
      });
    });
  }

  /** Looks for pending deliveries on the next turn (coalesced). */
  schedulePump(): void {
    if (this.pumpQueued || this.closing) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      if (!this.closing) this.pumpDeliveries();
    });
  }

  /** Moves pending deliveries into the queues of active agents with room, claiming each for its run. */
  private pumpDeliveries(): void {
    const cluster = this.options.cluster;
    if (cluster) {
      for (const name of this.agents.keys()) if (cluster.holds(name)) void cluster.pull(name);
      return;
    }
    const state = this.host.state;
    for (const name of agentsWithPending(state)) {
      const served = this.agents.get(name);
      if (served === undefined || served.state !== 'active') continue;
      const room = served.entry.queue - served.queue.length;
      this.backlogged.add(name);
      if (room <= 0) continue;
      const claimed = claimDeliveries(state, name, room, newRunId);
      if (claimed.length < room) this.backlogged.delete(name);
      for (const { delivery, run } of claimed) served.queue.push(deliveryWork(delivery, run));
      this.pump(served);
    }
  }

  /** Starts queued runs while the agent is active, has a free slot and is not backing off after a fault. */
  private pump(served: Served): void {
    if (this.closing) return;
    while (served.state === 'active' && served.running < served.entry.concurrency && served.queue.length > 0) {
      const wait = served.backoffUntil - Date.now();
      if (wait > 0) {
        served.backoffTimer ??= setTimeout(() => {
          served.backoffTimer = undefined;
          this.pump(served);
        }, wait);
        return;
      }
      this.start(served, served.queue.shift()!);
    }
  }

  private start(served: Served, work: Work): void {
    served.running++;
    // A traced run's span ids are chosen now, so its outbound requests can name it as their parent.
    const ids = this.options.tracer?.begin(work.traceparent);
    const cluster = this.options.cluster;
    // On a cluster the delivery is the shared database's, completed by the run-end's shipment.
    cluster?.begin(work.runId, served.entry.name, work.delivery);
    const options = {
      runId: work.runId,
      ...(work.cause ? { cause: work.cause } : {}),
      ...(work.delivery !== undefined && !cluster ? { delivery: work.delivery } : {}),
      ...(ids ? { traceparent: ids.traceparent } : {}),
    };
    const agent = served.agent;
    const { request } = work;
    const run =
      request.kind === 'run' ? agent.run(request.input, options) : request.kind === 'call' ? agent.call(request.function, request.args, options) : agent.command(request.args, request.stdin, options);
    const done = run
      .then(
        async (result) => {
          // On a cluster the agent's next run may start while this one ships (shipments of an agent stay
          // in order), unless this one faulted: its backoff must come first.
          const early = this.options.cluster !== undefined && result.outcome !== 'trap' && result.outcome !== 'limit';
          if (early) this.release(served);
          const unshipped = await this.shipped(served, work.runId);
          if (unshipped) this.failed(served, work, unshipped, early);
          else this.finished(served, work, result, ids, early);
        },
        async (error: unknown) => {
          await this.shipped(served, work.runId, !(error instanceof RunStopped));
          this.failed(served, work, error);
        },
      )
      .catch((error: unknown) => this.options.logger.error({ agent: served.entry.name, run: work.runId, error: error instanceof Error ? error.message : String(error) }, 'after a run'));
    this.running.add(done);
    void done.finally(() => this.running.delete(done));
  }

  /**
   * On a cluster: the run's records in the shared ledger before anyone learns its result. Returns the
   * error when they cannot be (the lease was lost): the caller gets that, not a result the shared
   * ledger does not hold.
   */
  private async shipped(served: Served, runId: string, abandoned = false): Promise<Error | undefined> {
    const cluster = this.options.cluster;
    if (cluster === undefined) return undefined;
    try {
      await cluster.ended(runId, abandoned);
      return undefined;
    } catch (error) {
      this.options.logger.error({ agent: served.entry.name, run: runId, error: error instanceof Error ? error.message : String(error) }, 'cluster: the run is not in the shared ledger');
      return new Refused(
        503,
        error instanceof LeaseLost
          ? error.message
          : `run ${runId} ended, but its records are not in the shared ledger yet (${error instanceof Error ? error.message : String(error)}): they are in this host's state and are shipped when the database answers`,
      );
    }
  }

  /** The run's slot is free: the agent's next queued run may start. */
  private release(served: Served): void {
    served.running--;
    this.pump(served);
  }

  /** `released`: its slot was already given back (release). */
  private finished(served: Served, work: Work, result: RunResult, ids?: RunSpanIds, released = false): void {
    if (!released) served.running--;
    served.lastRun = { run: result.runId, outcome: result.outcome, at: new Date().toISOString() };
    // Spans from the run's records (telemetry/traces.ts): nothing on the run's path, only when tracing is on.
    this.options.tracer?.record(this.host.readRun(result.runId), { agent: served.entry.name, ...(work.traceparent ? { traceparent: work.traceparent } : {}), ...(ids ? { ids } : {}) });
    if (result.outcome === 'trap' || result.outcome === 'limit') this.fault(served, result.runId);
    work.settle?.(result);
    this.pump(served);
    // Deliveries only appear when something emitted, or wait for room in this agent's queue.
    if (this.emitting.delete(result.runId) || this.backlogged.has(served.entry.name)) this.schedulePump();
  }

  private failed(served: Served, work: Work, error: unknown, released = false): void {
    if (!released) served.running--;
    this.emitting.delete(work.runId);
    if (error instanceof RunStopped || (error instanceof Refused && error.status === 503)) {
      // Cut off by shutdown and ended incomplete: the next start puts its delivery back to pending.
      // (On a cluster, a run whose agent moved to another host: that host ends it and redelivers.)
    } else if (work.delivery !== undefined) {
      // Refused before it ran (an input over the host's limit): recorded, and the delivery is done with.
      this.refuse(served, 'event', `delivery of ${work.cause?.kind === 'event' ? work.cause.event : 'an event'} refused: ${error instanceof Error ? error.message : String(error)}`, work.cause);
      if (!this.options.cluster) finishDelivery(this.host.state, work.delivery);
    }
    work.settle?.(error instanceof Error ? error : new Error(String(error)));
    if (!this.closing) this.pump(served);
  }

  /** A trap or limit: back off before the next run, or quarantine at `faults.max` within the window. */
  private fault(served: Served, run: string): void {
    const now = Date.now();
    const { max, windowMs } = served.entry.faults;
    served.faults = [...served.faults.filter((t) => now - t <= windowMs), now];
    if (served.faults.length >= max && served.state === 'active') {
      this.transition(subjectOf(served.entry.name, served.agent), 'quarantined', { kind: 'fault', run, faults: served.faults.length, windowMs });
      return;
    }
    served.backoffUntil = now + Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (served.faults.length - 1));
  }

  private served(name: string): Served {
    const served = this.agents.get(name);
    if (served === undefined) throw new Refused(404, `no agent ${JSON.stringify(name)} on this server; it serves ${this.names().join(', ')}`);
    return served;
  }

  /**
   * Stops: no new runs or triggers; queued runs that have not started are dropped (their deliveries stay
   * pending for the next start, their callers get 503); runs in flight get `drainMs` to end, then are
   * cut off and ended `incomplete`. Returns the runs cut off.
   */
  async close(drainMs: number): Promise<string[]> {
    this.closing = true;
    clearInterval(this.poll);
    for (const served of this.agents.values()) {
      served.cron?.stop();
      clearTimeout(served.backoffTimer);
      const unstarted: number[] = [];
      for (const work of served.queue.splice(0)) {
        if (work.delivery !== undefined) {
          if (this.options.cluster) unstarted.push(work.delivery);
          else releaseDelivery(this.host.state, work.delivery);
        }
        work.settle?.(new Refused(503, 'the server shut down before the run started'));
      }
      if (unstarted.length > 0) await this.options.cluster?.store.unclaim(this.options.cluster.id, unstarted);
    }
    const cut = await this.host.shutdown(drainMs);
    await Promise.allSettled([...this.running]);
    // Runs cut off were ended `incomplete` locally: shipped, with their deliveries pending again.
    await this.options.cluster?.close();
    return cut;
  }
}

function deliveryWork(delivery: Delivery, runId: string): Work {
  const hash = delivery.event.lastIndexOf('#');
  const cause: RunCause = {
    kind: 'event',
    event: delivery.event,
    run: delivery.event.slice(0, hash),
    seq: Number(delivery.event.slice(hash + 1)),
    eventKind: delivery.kind,
    attempt: delivery.attempts + 1,
  };
  const input = JSON.stringify({ trigger: 'event', event: { id: delivery.event, kind: delivery.kind, payload: delivery.payload, source: delivery.source } });
  return { runId, request: { kind: 'run', input }, cause, trigger: 'event', delivery: delivery.id };
}

function subjectOf(name: string, agent: Agent): RecordSubject {
  return {
    agent: name,
    component: { name: agent.policy.component, digest: agent.info.digest },
    policy: { digest: agent.policy.digest, source: agent.policy.source, document: agent.policy.document },
  };
}

function receivePatterns(agent: Agent): readonly string[] {
  const grant = (agent.policy.grants as Record<string, { mode?: string; receivePatterns?: readonly string[] } | undefined>)['events'];
  return grant?.mode === 'grant' ? (grant.receivePatterns ?? []) : [];
}

/** Triggers deliver to `run(input)`, and event triggers need the policy's consent to receive. */
function checkTriggers(entry: AgentEntry, agent: Agent, source: string): void {
  const { on } = entry;
  const triggered = on.events !== undefined || on.schedule !== undefined || on.http !== undefined;
  if (triggered && !agent.implementsRun) {
    throw new McpConfigError(`agent ${entry.name} in ${source}: triggers call run(input), which ${entry.component} does not export; remove its on: triggers (invoke its functions with \`ice agents invoke\` or MCP)`);
  }
  if (on.events !== undefined && receivePatterns(agent).length === 0) {
    throw new McpConfigError(
      `agent ${entry.name} in ${source}: on.events lists ${on.events.join(', ')}, but its policy ${agent.policy.source} grants receiving no events: add grants.events.receive: [${on.events.map((p) => JSON.stringify(p)).join(', ')}] to the policy (deny by default)`,
    );
  }
}

/** What can be checked before a run is queued, so a bad request is a 400 and never waits in line. */
function checkRequest(agent: Agent, request: AgentRequest): void {
  switch (request.kind) {
    case 'run':
      if (typeof request.input !== 'string') throw new RunInputError('input must be a string');
      if (!agent.implementsRun) throw new RunInputError(`${agent.name} does not implement run(input); call one of its functions (${agent.functions.map((f) => f.name).join(', ')}) with {"function", "args"}`);
      return;
    case 'call':
      agent.function(request.function);
      return;
    case 'command':
      if (!agent.commandExport) throw new RunInputError(`${agent.name} is not a WASI command`);
      return;
  }
}

/**
 * On a cluster a lease fences one agent's writes: two agents writing one kv namespace (one component
 * name) could not be fenced apart, so a config that has them is refused.
 */
function checkNamespaces(agents: readonly { name: string; namespace: string }[], source: string): void {
  const seen = new Map<string, string>();
  for (const { name, namespace } of agents) {
    const other = seen.get(namespace);
    if (other !== undefined) {
      throw new McpConfigError(`agents ${other} and ${name} in ${source} run the same component "${namespace}" and so share its kv namespace; on a cluster (--db) each agent's kv is fenced by its own lease: give each its own component name`);
    }
    seen.set(namespace, name);
  }
}
