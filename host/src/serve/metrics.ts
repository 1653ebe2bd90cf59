/**
 * `GET /metrics` of `ice serve`, in Prometheus' text format (prom-client, on a registry of its own).
 *
 * Counts come from the ledger, not from the run path: at each scrape the rows committed since the last
 * one are aggregated in SQL (runs by component and outcome, calls by component, interface and decision,
 * duration and fuel per run), so a run costs nothing extra, every run on the state is counted (an `ice
 * run` on the same state dir too), and what the metrics say is what the audit says. Gauges (lifecycle
 * states, queues, deliveries) are read from the runtime at the scrape.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentState } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';
import type { ServeRuntime } from './runtime.js';

const STATES: readonly AgentState[] = ['deployed', 'active', 'suspended', 'quarantined', 'stopped'];

export class ServeMetrics {
  readonly registry = new Registry();
  /** Ledger rows up to this id are counted. */
  private lastId: number;
  private readonly runs: Counter<'component' | 'outcome'>;
  private readonly calls: Counter<'component' | 'interface' | 'decision'>;
  private readonly hostRecords: Counter<'kind'>;
  private readonly duration: Histogram<'component'>;
  private readonly fuel: Histogram<'component'>;

  constructor(
    private readonly state: StateDb,
    private readonly runtime: () => ServeRuntime,
  ) {
    const registers = [this.registry];
    // Counted from the server's start: a counter that restarts at 0 is what Prometheus expects of a restart.
    this.lastId = Number(state.db.prepare('SELECT coalesce(max(id), 0) FROM ledger').pluck().get());
    this.runs = new Counter({ name: 'ice_runs_total', help: 'Runs that ended, by component and outcome (ok, error, trap, limit, incomplete).', labelNames: ['component', 'outcome'], registers });
    this.calls = new Counter({ name: 'ice_calls_total', help: 'Import calls recorded, by component, interface and decision (allow, deny, limit, invalid).', labelNames: ['component', 'interface', 'decision'], registers });
    this.hostRecords = new Counter({ name: 'ice_host_records_total', help: 'Host records: lifecycle transitions, refused triggers, operator writes.', labelNames: ['kind'], registers });
    this.duration = new Histogram({ name: 'ice_run_duration_seconds', help: 'Run duration, from run-start to run-end.', labelNames: ['component'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers });
    this.fuel = new Histogram({ name: 'ice_run_fuel', help: 'Fuel a run used (absent for runs stopped from outside).', labelNames: ['component'], buckets: [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10], registers });
    // Read at each scrape: prom-client calls `collect` before it renders the gauge, and renders in
    // registration order, so the first gauge registered refreshes all of them.
    const agentState: Gauge<'agent' | 'state'> = new Gauge({
      name: 'ice_agent_state',
      help: 'Each served agent’s lifecycle state (1 for its current state).',
      labelNames: ['agent', 'state'],
      registers,
      collect: () => {
        for (const g of [agentState, queued, running, deliveries]) g.reset();
        const live = this.runtime();
        for (const name of live.names()) {
          const status = live.status(name);
          for (const s of STATES) agentState.set({ agent: name, state: s }, status.state === s ? 1 : 0);
          queued.set({ agent: name }, status.queue.length);
          running.set({ agent: name }, status.queue.running);
          deliveries.set({ agent: name, status: 'pending' }, status.deliveries.pending);
          deliveries.set({ agent: name, status: 'running' }, status.deliveries.running);
        }
      },
    });
    const queued = new Gauge({ name: 'ice_agent_queue_length', help: 'Runs waiting in the agent’s queue.', labelNames: ['agent'], registers });
    const running = new Gauge({ name: 'ice_agent_running', help: 'Runs of the agent in flight.', labelNames: ['agent'], registers });
    const deliveries = new Gauge({ name: 'ice_agent_deliveries', help: 'Event deliveries to the agent not yet completed, by status (pending, running).', labelNames: ['agent', 'status'], registers });
  }

  /** The text of a scrape: first counts what the ledger gained since the last one. */
  async scrape(): Promise<string> {
    this.catchUp();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private catchUp(): void {
    const { db } = this.state;
    const upTo = Number(db.prepare('SELECT coalesce(max(id), 0) FROM ledger').pluck().get());
    if (upTo <= this.lastId) return;
    const range = [this.lastId, upTo] as const;
    // Calls: a call record, or the result of an intent (the intent alone has no outcome yet).
    const calls = db
      .prepare<[number, number], { component: string; call: string; decision: string; n: number }>(
        // ledger_records: one row per record, a batch's calls included (storage/db.ts).
        `SELECT s.body ->> '$.component.name' AS component, c.body ->> '$.call' AS call, c.body ->> '$.decision' AS decision, count(*) AS n
           FROM ledger_records c JOIN ledger s ON s.run = c.run AND s.seq = 0
          WHERE c.id > ? AND c.id <= ? AND c.type IN ('call', 'result')
          GROUP BY 1, 2, 3`,
      )
      .all(...range);
    for (const row of calls) this.calls.inc({ component: row.component, interface: interfaceOf(row.call), decision: row.decision }, row.n);
    const ends = db
      .prepare<[number, number], { component: string; invoke: string | null; outcome: string; durationUs: number; fuel: number | null }>(
        `SELECT s.body ->> '$.component.name' AS component, s.body ->> '$.invoke.kind' AS invoke, e.body ->> '$.outcome' AS outcome,
                e.body ->> '$.durationUs' AS durationUs, e.body ->> '$.fuel' AS fuel
           FROM ledger e JOIN ledger s ON s.run = e.run AND s.seq = 0
          WHERE e.id > ? AND e.id <= ? AND e.type = 'run-end'`,
      )
      .all(...range);
    for (const end of ends) {
      if (end.invoke === 'lifecycle' || end.invoke === 'refused' || end.invoke === 'operator') {
        this.hostRecords.inc({ kind: end.invoke });
        continue;
      }
      this.runs.inc({ component: end.component, outcome: end.outcome });
      this.duration.observe({ component: end.component }, Number(end.durationUs) / 1e6);
      if (end.fuel !== null) this.fuel.observe({ component: end.component }, Number(end.fuel));
    }
    this.lastId = upTo;
  }
}

/** `ice:agent/kv@0.1.0#get` → `ice:agent/kv@0.1.0`. */
function interfaceOf(call: string): string {
  const hash = call.lastIndexOf('#');
  return hash < 0 ? call : call.slice(0, hash);
}
