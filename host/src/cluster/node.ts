/**
 * One `ice serve` host's membership of a cluster (`--db postgres://…`): which agents it holds leases
 * for, what it has still to ship, and the loop that keeps both true.
 *
 * - An agent's runs happen on the host holding its lease, so they stay serialized (its queue, its
 *   concurrency) across hosts. A host takes leases of agents with pending deliveries up to its fair
 *   share (agents ÷ live hosts), renews them every third of their time to live, and gives back those
 *   of idle agents, so work spreads over the hosts as they come and go.
 * - Taking a lease: the shared registry row, the chain head and the agent's kv namespace are loaded;
 *   runs a previous holder left in flight are ended `incomplete` (recover.ts) and their deliveries
 *   pending again. Every later write for the agent is fenced by the lease's token (store.ts).
 * - Shipping: after each run of the agent ends, before an intent's effect starts, and after a host
 *   record, the agent's new local rows, kv writes and emitted deliveries go to the shared database in
 *   one transaction. Shipments of one agent are serialized, so its chain has one writer.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import pg from 'pg';
import { newRunId, type IntentLogEntry } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';
import type { Delivery } from '../views/deliveries.js';
import { LEDGER_KEY_ENV } from '../storage/ledger-key.js';
import { checkpointHeads, checkpointSignature, type ChainHead } from './chain.js';
import { endOrphanedRun } from './recover.js';
import { emittedDeliveries, forgetDeliveries, forgetKvChanges, importRegistryRow, kvChanges, loadNamespace, prepareSpool, registryRow, runRowsAfter } from './spool.js';
import { ClusterStore, LeaseLost, type AgentRow, type Lease, type NewDelivery, type Shipment } from './store.js';

/** What the cluster needs from the runtime serving the agents (serve/runtime.ts). */
export interface ClusterMember {
  /** The agents this host serves, with each one's kv namespace (its component name). */
  agents(): ReadonlyMap<string, { readonly namespace: string }>;
  /** How many more runs the agent's queue takes now. */
  room(agent: string): number;
  /** Deliveries claimed for the agent under its lease: queue their runs. */
  enqueue(agent: string, claimed: readonly { readonly delivery: Delivery; readonly run: string }[]): void;
  /** Nothing of the agent is running or queued on this host. */
  idle(agent: string): boolean;
  /** The lease was taken over: drop the agent's queued runs; returns their claimed deliveries. */
  lost(agent: string): number[];
  /** The shared registry's row of an agent this host just took. */
  registry(agent: string, row: AgentRow): void;
}

export interface ClusterOptions {
  /** `postgres://…` */
  readonly url: string;
  readonly logger: Logger;
  /** How long a lease lives without renewal; a dead host's agents move after this. Default 5000 ms. */
  readonly leaseMs?: number;
  /** How often a checkpoint over every chain head is signed (by one host). Default 10 s. */
  readonly checkpointMs?: number;
  /** Connections to the shared database. Default 8. */
  readonly connections?: number;
}

interface Held {
  readonly lease: Lease;
  head: ChainHead | null;
}

interface Cursor {
  readonly agent: string;
  /** The last seq of the run in the shared ledger (-1: none yet). */
  shipped: number;
  readonly delivery?: number;
  /** The run never started (refused before it ran): its claimed delivery is done with. */
  abandoned?: boolean;
}

export class ClusterError extends Error {
  override readonly name = 'ClusterError';
}

export class ClusterNode {
  readonly id: string;
  private readonly held = new Map<string, Held>();
  private readonly cursors = new Map<string, Cursor>();
  /** Runs whose cursor went with a lost lease, with why: their callers learn it (ended). */
  private readonly lostRuns = new Map<string, string>();
  private readonly shipping = new Map<string, Promise<void>>();
  private state: StateDb | undefined;
  private member: ClusterMember | undefined;
  private timer: NodeJS.Timeout | undefined;
  private listener: pg.Client | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  private liveHosts = 1;
  /** The shared queue's deliveries per agent, as of the last step (status pages). */
  private counts = new Map<string, { pending: number; running: number }>();
  /** Agents whose lease this host is taking right now (taken(): loading, recovering). */
  private readonly taking = new Set<string>();
  /** Held agents over this host's fair share: no new claims; given back once idle. */
  private shedding = new Set<string>();
  readonly leaseMs: number;
  private readonly checkpointMs: number;

  private constructor(
    readonly store: ClusterStore,
    private readonly key: Buffer,
    private readonly options: ClusterOptions,
  ) {
    this.id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.leaseMs = Math.max(300, options.leaseMs ?? 5000);
    this.checkpointMs = Math.max(100, options.checkpointMs ?? 10_000);
  }

  /** Connects and migrates the shared database. The ledger key must be the cluster's, from the environment. */
  static async open(options: ClusterOptions): Promise<ClusterNode> {
    const secret = process.env[LEDGER_KEY_ENV];
    if (secret === undefined || secret === '') {
      throw new ClusterError(
        `a cluster needs one ledger key on every host: set ${LEDGER_KEY_ENV} to the same random secret of at least 32 characters on each (e.g. openssl rand -hex 32); with a key per host, no host could verify or continue another's runs`,
      );
    }
    let store: ClusterStore;
    try {
      store = await ClusterStore.open(options.url, options.connections === undefined ? {} : { max: options.connections });
    } catch (error) {
      throw new ClusterError(`cannot open the cluster database: ${error instanceof Error ? error.message : String(error)}`);
    }
    return new ClusterNode(store, Buffer.from(secret, 'utf8'), options);
  }

  /** Starts taking part: registers the host and the agents' leases, then the loop. */
  async attach(state: StateDb, member: ClusterMember): Promise<void> {
    if (state.ledgerKey.source !== LEDGER_KEY_ENV) throw new ClusterError(`the state's ledger key must be the cluster's (${LEDGER_KEY_ENV})`);
    this.state = state;
    this.member = member;
    prepareSpool(state);
    this.liveHosts = await this.store.heartbeat(this.id, this.leaseMs);
    await this.store.addAgents([...member.agents().keys()]);
    // Another host's shipment of deliveries wakes this one at once instead of at its next tick.
    const listener = new pg.Client({ connectionString: this.options.url, application_name: 'ice-listen' });
    listener.on('error', () => undefined);
    await listener.connect();
    await listener.query('LISTEN ice_work');
    listener.on('notification', () => this.wake());
    this.listener = listener;
    this.timer = setInterval(() => this.wake(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** The shared registry (for a start: what the config's reconcile compares with). */
  registry(): Promise<AgentRow[]> {
    return this.store.registry();
  }

  /** An agent's deliveries in the shared queue, as of the last step (at most a third of the lease time old). */
  deliveries(agent: string): { pending: number; running: number } {
    return this.counts.get(agent) ?? { pending: 0, running: 0 };
  }

  holds(agent: string): boolean {
    return this.held.has(agent);
  }

  /**
   * Takes the agent's lease (operators, webhooks, schedules), waiting up to `waitMs` for its holder to
   * give it back (an idle agent's lease goes back within a third of the lease time); false: another
   * host kept it.
   */
  async take(agent: string, waitMs = 0): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (this.held.has(agent)) return true;
      if (!this.taking.has(agent)) {
        const [lease] = await this.acquire([agent], 1);
        if (lease !== undefined) {
          await this.taken(lease);
          return true;
        }
      }
      if (Date.now() >= deadline || this.closed) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The host holding an agent's lease, for a refusal's message. */
  holder(agent: string): Promise<string | undefined> {
    return this.store.holder(agent);
  }

  /** A run of `agent` is about to start here: its rows ship as it goes. */
  begin(runId: string, agent: string, delivery?: number): void {
    this.cursors.set(runId, { agent, shipped: -1, ...(delivery !== undefined ? { delivery } : {}) });
  }

  /**
   * The run ended (or never started: `abandoned`): ships the agent. Rejects with LeaseLost when the
   * run's records cannot reach the shared ledger (the agent moved to another host meanwhile).
   */
  ended(runId: string, abandoned = false): Promise<void> {
    const lost = this.lostRuns.get(runId);
    if (lost !== undefined) {
      this.lostRuns.delete(runId);
      return Promise.reject(new LeaseLost(lost));
    }
    const cursor = this.cursors.get(runId);
    if (cursor === undefined) return Promise.resolve();
    if (abandoned) cursor.abandoned = true;
    return this.ship(cursor.agent);
  }

  /** A host record (lifecycle, refusal) written locally: ships it now if the lease is held, else at the next taking. */
  hostRecord(agent: string, runId: string): Promise<void> {
    this.cursors.set(runId, { agent, shipped: -1 });
    return this.ship(agent);
  }

  /** HostOptions.shareIntents: the run's rows so far and its intents, in the shared database before the effect. */
  shareIntents = async (runId: string, entries: readonly IntentLogEntry[]): Promise<void> => {
    const cursor = this.cursors.get(runId);
    if (cursor === undefined) throw new ClusterError(`run ${runId} is not a run of this cluster host: its intent cannot be shared`);
    if (!this.held.has(cursor.agent)) throw new LeaseLost(`host ${this.id} no longer holds agent ${cursor.agent}'s lease: the effect is not started`);
    await this.ship(cursor.agent, entries.map((e) => ({ run: runId, seq: e.seq, entry: JSON.stringify(e) })));
  };

  /** Gives back the leases of idle agents (after the start took them to ship its lifecycle records). */
  async settle(): Promise<void> {
    for (const [agent, held] of [...this.held]) {
      if (!this.member?.idle(agent) || this.hasCursors(agent)) continue;
      this.held.delete(agent);
      await this.store.release(this.id, held.lease);
    }
  }

  /** Claims deliveries for a held agent with room (after a run ends). */
  async pull(agent: string): Promise<void> {
    const held = this.held.get(agent);
    const member = this.member;
    if (held === undefined || member === undefined || this.closed || this.shedding.has(agent)) return;
    const room = member.room(agent);
    if (room <= 0) return;
    try {
      const claimed = await this.store.claim(this.id, held.lease, room, this.leaseMs, newRunId);
      if (claimed.length > 0) member.enqueue(agent, claimed);
    } catch (error) {
      this.failed(agent, error);
    }
  }

  /** Runs the loop's step now (coalesced). */
  wake(): void {
    if (this.closed || this.ticking) return;
    this.ticking = this.tick()
      .catch((error: unknown) => this.options.logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'cluster: a step failed; retrying at the next'))
      .finally(() => (this.ticking = undefined));
  }

  private async tick(): Promise<void> {
    const member = this.member!;
    this.liveHosts = await this.store.heartbeat(this.id, this.leaseMs);
    // Only leases held before the renewal was asked for can be missing from its answer: one taken
    // meanwhile (an operator's invoke) is not lost.
    const before = new Map(this.held);
    const renewal = await this.store.renew(this.id, this.leaseMs);
    const renewed = new Set(renewal.map((l) => `${l.agent}\0${l.token}`));
    for (const [agent, held] of before) {
      if (this.held.get(agent) === held && !renewed.has(`${agent}\0${held.lease.token}`)) this.lose(agent, 'its lease was not renewed in time');
    }
    // A lease the database says this host holds but this host does not use (its taking failed half
    // way): given back, or the agent would wait on a live host that never runs it.
    for (const lease of renewal) {
      if (!this.held.has(lease.agent) && !this.taking.has(lease.agent)) await this.store.release(this.id, lease);
    }
    const served = [...member.agents().keys()];
    const pending = new Set(await this.store.agentsWithPending(served));
    // A fair share of the agents with work; a host over it stops pulling for the excess (by name)
    // and gives each back once its runs here are done, so a new or lightly loaded host gets work.
    const share = Math.max(1, Math.ceil((await this.store.busyAgents(served)) / Math.max(1, this.liveHosts)));
    const excess = [...this.held.keys()].sort().slice(share);
    this.shedding = new Set(excess);
    for (const [agent, held] of [...this.held]) {
      const giveBack = this.shedding.has(agent) || !pending.has(agent);
      if (!giveBack || !member.idle(agent) || this.hasCursors(agent)) continue;
      this.held.delete(agent);
      this.shedding.delete(agent);
      await this.store.release(this.id, held.lease);
    }
    // Agents with work, and agents a dead host left (its runs to end, its claimed deliveries to requeue).
    const wanted = [...new Set([...pending, ...(await this.store.abandoned(served))])].filter((a) => !this.held.has(a));
    if (wanted.length > 0 && this.held.size < share) {
      for (const lease of await this.acquire(wanted, share - this.held.size)) {
        // One agent's failed taking (given back) does not leave the others half-taken.
        await this.taken(lease).catch((error: unknown) => this.options.logger.warn({ agent: lease.agent, error: error instanceof Error ? error.message : String(error) }, 'cluster: could not take the agent over; gave the lease back'));
      }
    }
    await Promise.all([...this.held.keys()].filter((a) => pending.has(a)).map((a) => this.pull(a)));
    // What a failed shipment (the database unreachable for a moment) left behind goes now.
    await Promise.all([...this.held.keys()].filter((a) => this.hasCursors(a)).map((a) => this.ship(a).catch(() => undefined)));
    this.counts = await this.store.deliveryCounts(served);
    await this.store.checkpoint(this.id, this.checkpointMs, (heads, at) => {
      const text = checkpointHeads(heads);
      return { heads: text, signature: checkpointSignature(this.key, at, text) };
    });
  }

  private hasCursors(agent: string): boolean {
    for (const cursor of this.cursors.values()) if (cursor.agent === agent) return true;
    return false;
  }

  /** Acquires leases, the agents marked `taking` from before the request (a renewal meanwhile must not give them back). */
  private async acquire(agents: readonly string[], limit: number): Promise<Lease[]> {
    const marked = agents.filter((a) => !this.taking.has(a));
    for (const agent of marked) this.taking.add(agent);
    try {
      const leases = await this.store.acquire(this.id, marked, limit, this.leaseMs);
      // Still marked for those taken: taken() clears them.
      for (const agent of marked) if (!leases.some((l) => l.agent === agent)) this.taking.delete(agent);
      return leases;
    } catch (error) {
      for (const agent of marked) this.taking.delete(agent);
      throw error;
    }
  }

  /** A lease just taken: the agent's shared state replaces the local one; a dead holder's runs are ended. */
  private async taken(lease: Lease): Promise<void> {
    this.taking.add(lease.agent);
    try {
      await this.adopt(lease);
    } catch (error) {
      // Not half-held: the next host (or this one, next tick) starts the taking over.
      await this.store.release(this.id, lease).catch(() => undefined);
      throw error;
    } finally {
      this.taking.delete(lease.agent);
    }
  }

  private async adopt(lease: Lease): Promise<void> {
    const state = this.state!;
    const member = this.member!;
    const namespace = member.agents().get(lease.agent)?.namespace;
    const held: Held = { lease, head: await this.store.chainHead(lease.agent) };
    const row = await this.store.agentRow(lease.agent);
    if (row) {
      importRegistryRow(state, row);
      member.registry(lease.agent, row);
    }
    if (namespace !== undefined) loadNamespace(state, namespace, await this.store.kvNamespace(namespace));
    for (const orphan of await this.store.orphanedRuns(lease.agent, new Set(this.cursors.keys()))) {
      const rows = await this.store.runRows(orphan.run);
      const reason = `its host ${orphan.host} stopped holding agent ${lease.agent}'s lease before the run ended (it died or lost the database); ended by host ${this.id}`;
      const appended = endOrphanedRun(rows, await this.store.runIntents(orphan.run), reason);
      held.head = await this.store.ship(this.id, lease, this.leaseMs, this.key, held.head, { ...EMPTY, rows: appended, ends: [{ run: orphan.run, incomplete: true }] });
      this.options.logger.warn({ agent: lease.agent, run: orphan.run, host: orphan.host }, 'cluster: ended a run its host left in flight: outcome incomplete');
    }
    const requeued = await this.store.requeueOrphaned(this.id, lease, this.leaseMs);
    if (requeued.redelivered > 0) this.options.logger.warn({ agent: lease.agent, ...requeued }, 'cluster: deliveries a previous holder left running are pending again');
    this.held.set(lease.agent, held);
    this.options.logger.info({ agent: lease.agent, token: lease.token }, 'cluster: took the lease');
    // Host records written while another host held the agent.
    if (this.hasCursors(lease.agent)) await this.ship(lease.agent);
  }

  private lose(agent: string, why: string): void {
    if (!this.held.delete(agent)) return;
    const dropped = [...this.cursors].filter(([, c]) => c.agent === agent).map(([run]) => run);
    for (const run of dropped) {
      this.cursors.delete(run);
      this.lostRuns.set(run, `run ${run} of agent ${agent} is not in the shared ledger: host ${this.id} lost the agent's lease (${why}); its records stay in this host's state directory`);
    }
    const unstarted = this.member?.lost(agent) ?? [];
    void this.store.unclaim(this.id, unstarted).catch(() => undefined);
    this.options.logger.error({ agent, why, unshipped: dropped }, 'cluster: lost the lease; runs of the agent on this host are no longer recorded in the shared ledger');
  }

  private failed(agent: string, error: unknown): void {
    if (error instanceof LeaseLost) this.lose(agent, error.message);
    else this.options.logger.warn({ agent, error: error instanceof Error ? error.message : String(error) }, 'cluster: a shared-database step failed');
  }

  /** Ships the agent's pending rows (serialized per agent). */
  private ship(agent: string, intents: Shipment['intents'] = []): Promise<void> {
    const previous = this.shipping.get(agent) ?? Promise.resolve();
    const next = previous.then(() => this.shipNow(agent, intents));
    const settled = next.catch(() => undefined);
    this.shipping.set(agent, settled);
    void settled.then(() => {
      if (this.shipping.get(agent) === settled) this.shipping.delete(agent);
    });
    return next;
  }

  private async shipNow(agent: string, intents: Shipment['intents']): Promise<void> {
    const held = this.held.get(agent);
    const state = this.state;
    if (held === undefined || state === undefined) {
      if (intents.length > 0) throw new LeaseLost(`host ${this.id} does not hold agent ${agent}'s lease`);
      return;
    }
    const namespace = this.member?.agents().get(agent)?.namespace;
    // One read snapshot of the local state: every kv value shipped has its record in the same
    // shipment and every record its value (they committed together), so the shared kv is always the
    // fold of the shared ledger.
    const read = state.db.transaction(() => this.collect(state, agent, namespace)).deferred;
    const { kv, rows, ends, deliveries, done, advanced, lifecycle } = read();
    if (rows.length === 0 && kv.writes.length === 0 && intents.length === 0 && done.length === 0) return;
    const registry = lifecycle ? [registryRow(state, agent)].filter((r): r is AgentRow => r !== undefined) : [];
    try {
      held.head = await this.store.ship(this.id, held.lease, this.leaseMs, this.key, held.head, {
        rows,
        ends,
        kv: kv.writes,
        deliveries: deliveries.map(({ id: _local, ...d }) => d),
        intents,
        registry,
        done,
      });
    } catch (error) {
      this.failed(agent, error);
      // A retry after an unknown outcome links from the chain as it is, not as this host last saw it.
      if (!(error instanceof LeaseLost)) held.head = await this.store.chainHead(agent).catch(() => held.head);
      throw error;
    }
    for (const [run, seq] of advanced) {
      if (seq === Infinity) this.cursors.delete(run);
      else {
        const cursor = this.cursors.get(run);
        if (cursor) cursor.shipped = seq;
      }
    }
    if (namespace !== undefined) forgetKvChanges(state, namespace, kv.upTo);
    forgetDeliveries(state, deliveries.map((d) => d.id));
  }

  /** What the agent's runs wrote here since the last shipment (call inside one read transaction). */
  private collect(state: StateDb, agent: string, namespace: string | undefined) {
    const kv = namespace === undefined ? { upTo: 0, writes: [] } : kvChanges(state, namespace);
    const rows: Shipment['rows'][number][] = [];
    const ends: Shipment['ends'][number][] = [];
    const deliveries: (NewDelivery & { id: number })[] = [];
    const done: number[] = [];
    const advanced = new Map<string, number>();
    let lifecycle = false;
    for (const [run, cursor] of this.cursors) {
      if (cursor.agent !== agent) continue;
      const fresh = runRowsAfter(state, run, cursor.shipped);
      if (fresh.length === 0) {
        if (cursor.abandoned) {
          if (cursor.delivery !== undefined) done.push(cursor.delivery);
          advanced.set(run, Infinity);
        }
        continue;
      }
      rows.push(...fresh);
      const last = fresh.at(-1)!;
      advanced.set(run, last.type === 'run-end' ? Infinity : last.seq);
      if (last.type === 'run-end') ends.push({ run, incomplete: outcomeOf(last.body) === 'incomplete', ...(cursor.delivery !== undefined ? { delivery: cursor.delivery } : {}) });
      deliveries.push(...emittedDeliveries(state, run, last.seq));
      if (fresh[0]!.seq === 0 && fresh[0]!.body.includes('"kind":"lifecycle"')) lifecycle = true;
    }
    return { kv, rows, ends, deliveries, done, advanced, lifecycle };
  }

  /** Ships what is left, gives the leases back and leaves. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
    for (const agent of [...this.held.keys()]) await this.ship(agent).catch(() => undefined);
    for (const held of this.held.values()) await this.store.release(this.id, held.lease).catch(() => undefined);
    this.held.clear();
    await this.store.leaveHosts(this.id).catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    await this.store.close();
  }
}

const EMPTY: Shipment = { rows: [], ends: [], kv: [], deliveries: [], intents: [], registry: [], done: [] };

function outcomeOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { outcome?: string }).outcome;
  } catch {
    return undefined;
  }
}
