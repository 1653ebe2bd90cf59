/**
 * The library API: a Host owns the state directory (kv + ledger in one SQLite file) and the component
 * cache; `host.load` inspects, admits and prepares a component under a policy; `agent.run` executes
 * one governed, recorded run.
 */
import { mkdirSync, statSync } from 'node:fs';
import { availableParallelism, homedir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { admitImports, checkAdmitted, hasRunExport, prepareCapabilities, RUN_SIGNATURE, type Admitted } from './capabilities/admit.js';
import { ArgumentError, argumentsFromJson, type Json } from './component/json-values.js';
import type { TypedFunction } from './component/wit-types.js';
import { recordedInput, type Invocation } from './sandbox/invoke.js';
import type { ModelConfig } from './capabilities/model/index.js';
import { compilePolicy, loadPolicyFile, type IcePolicy } from './capabilities/policy.js';
import type { GuestEventSink, GuestLogSink, WasiOutputEntry, WasiOutputSink } from './capabilities/run-services.js';
import { secretSource, type SecretSource } from './capabilities/secrets.js';
import { LoadError } from './component/errors.js';
import { DEFAULT_MAX_COMPONENT_BYTES, checkComponentSize, readComponentFile } from './component/source.js';
import { checkHeader, type ComponentInfo } from './component/inspect.js';
import { ComponentCache, type PreparedComponent } from './component/prepare.js';
import { ComponentStore } from './component/store.js';
import { processAlive } from './ledger/recover.js';
import { endInterruptedRuns, isHostRecord, LedgerStore, newRunId, verifyRun, type IntentLogEntry, type LimitKind, type RunCause, type RunCounts, type StoredRecord, type VerifyResult } from './ledger/index.js';
import { notReplayable, ReplayError, replayRun, type ReplayOptions, type ReplayReport } from './replay/replay.js';
import { endCutRun, endStoppedRun, governedRun, type RunRequest, type RunServices, type RunSummary } from './sandbox/governed-run.js';
import { HostGateway, type Approver } from './sandbox/host-gateway.js';
import { instantiateGenerated } from './sandbox/instantiate.js';
import { WorkerPool } from './sandbox/pool.js';
import { SHARE_INTENTS } from './sandbox/protocol.js';
import { openStateDb, type StateDb } from './storage/db.js';
import { newWriteLockBuffer } from './storage/write-lock.js';
import { WalSync } from './storage/wal-sync.js';
import { KvStore } from './views/kv-store.js';
import { enqueueDeliveries } from './views/deliveries.js';
import { OperatorInputError, operatorKvWrites, type OperatorKvWrite, type OperatorRun } from './views/kv-operator.js';
import { COMPONENT_NAME } from './policy/schema.js';

export interface HostOptions {
  /** Where kv data, the ledger and the component cache live. Default `./.ice`. */
  readonly stateDir?: string;
  /**
   * Transpiled-component cache directory; `false` keeps it in memory only. Default: one per user —
   * ICE_CACHE_DIR, else `$XDG_CACHE_HOME/ice`, else `~/.cache/ice` (owner-only; a directory others can
   * write is refused for `<stateDir>/cache`) — so a new state dir does not pay a component's first load.
   */
  readonly cacheDir?: string | false;
  /** Operational logger (pino). Default: warnings and errors to stderr, level from ICE_LOG_LEVEL. */
  readonly logger?: Logger;
  /** Receives every granted guest log.write. Default: the operational logger at debug level. */
  readonly onGuestLog?: GuestLogSink;
  /** Receives every granted events.emit (the ledger records them either way). */
  readonly onEvent?: GuestEventSink;
  /** Receives what a WASI guest writes to its captured stdout/stderr (the ledger records it either way). */
  readonly onGuestOutput?: WasiOutputSink;
  /**
   * Largest component accepted, in bytes, checked before it is read past the cap or parsed (load,
   * replay). Default 64 MiB (DEFAULT_MAX_COMPONENT_BYTES); a component over it is a LoadError `too-large`.
   */
  readonly maxComponentBytes?: number;
  /** Largest run input accepted, in UTF-8 bytes. Default 1 MiB. */
  readonly maxInputBytes?: number;
  /**
   * `worker` (default): each run executes in a worker thread of a pool, and `limits.timeoutMs` is
   * enforced by terminating the worker. `in-process`: on the calling thread, for trusted or embedded
   * use: fuel, memory and size limits hold, and `limits.timeoutMs` is checked each time the guest draws
   * a slice of fuel (every ~4M units, a few ms of work), so a run ends within a slice of its deadline;
   * a guest blocked inside one host call is not interrupted (in-process runs get no host effects).
   */
  readonly execution?: 'worker' | 'in-process';
  /** Worker threads in the pool. Default: the number of cores. */
  readonly workers?: number;
  /**
   * Secret values by name, for `inject` rules (e.g. from `loadSecretsFile`); a name not here is read from
   * the environment. Values stay on the host thread: never sent to a worker, a guest, the ledger or a log.
   */
  readonly secrets?: Readonly<Record<string, string>>;
  /** Where `secrets` came from, for messages (e.g. the secrets file's path). */
  readonly secretsSource?: string;
  /** Decides `ask` rules (http, model, kv writes). Without one every ask is denied. */
  readonly approve?: Approver;
  /** Who the ledger says answered an ask when the approver does not say. Default `approver`. */
  readonly approverName?: string;
  /** Model providers (models other than `local/*` go to the OpenAI-compatible endpoint). */
  readonly models?: ModelConfig;
  /** Egress DNS: hostname → addresses. Default the system resolver. For tests and custom resolvers. */
  readonly resolve?: (hostname: string) => Promise<readonly string[]>;
  /** Extra CA certificates trusted for egress TLS. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /**
   * Where a run's intents are also made durable before their effects start, beyond this machine's
   * intent log (a cluster's shared database: cluster/). A rejection fails the intent, so the effect
   * never starts. Worker execution only.
   */
  readonly shareIntents?: (runId: string, entries: readonly IntentLogEntry[]) => Promise<void>;
}

export type RunOutcome = 'ok' | 'error' | 'trap' | 'limit';

/** How a run is made, beyond what it calls (for runtimes built on the host, like `ice serve`). */
export interface RunOptions {
  /** Why the run happens (a trigger), recorded in its run-start's `cause`. */
  readonly cause?: RunCause;
  /** The run's id, when the caller must know it before the run starts (e.g. to claim a delivery for it). */
  readonly runId?: string;
  /** The event delivery (claimed for this run) the run completes: marked done with its run-end. */
  readonly delivery?: number;
  /** The run's own W3C trace context (its span, when traced): its outbound HTTP requests carry it. */
  readonly traceparent?: string;
}

interface RunTotals {
  readonly runId: string;
  /** Import calls the run made (each is one call record, or an intent and its result). */
  readonly calls: number;
  readonly counts: Readonly<RunCounts>;
  /** Hash of the run-end record: the head of the run's chain. */
  readonly ledgerRoot: string;
  readonly durationMs: number;
  /** Fuel the guest used; undefined when it was stopped at its deadline. */
  readonly fuel: number | undefined;
}

export type RunResult =
  | (RunTotals & { readonly ok: true; readonly outcome: 'ok'; readonly output: string })
  | (RunTotals & {
      readonly ok: false;
      readonly outcome: 'error' | 'trap' | 'limit';
      /** The guest's err message, why the run trapped, or which limit ended it and how. */
      readonly error: string;
      /** Who a trap is blamed on. */
      readonly blame?: 'guest' | 'host';
      /** For outcome `limit`: which one. */
      readonly limit?: LimitKind;
    });

/** A run refused before it started (nothing reached the guest, nothing was recorded). */
export class RunInputError extends Error {
  override readonly name = 'RunInputError';
}

/** The host stopped (Host.shutdown) before the run ended: its run-end says `incomplete`. */
export class RunStopped extends Error {
  override readonly name = 'RunStopped';
  constructor(readonly runId: string) {
    super(`run ${runId} was cut off: the host stopped before it ended (outcome incomplete)`);
  }
}

const DEFAULT_MAX_INPUT_BYTES = 1024 * 1024;

/**
 * Opens (creating if needed) a state directory.
 * @example
 *   const host = await createHost({ stateDir: '.ice' });
 *   const agent = await host.load('hello.wasm', 'examples/hello/policy.yaml');
 *   const result = await agent.run('world');   // { ok: true, output: 'hello, world!', runId, calls, ledgerRoot, ... }
 *   host.close();
 */
export async function createHost(options: HostOptions = {}): Promise<Host> {
  const max = options.maxComponentBytes;
  if (max !== undefined && !(Number.isSafeInteger(max) && max > 0)) {
    throw new RangeError(`maxComponentBytes must be a positive whole number of bytes, got ${String(max)}`);
  }
  return new Host(options);
}

export class Host {
  readonly stateDir: string;
  readonly logger: Logger;
  readonly ledger: LedgerStore;
  /** @internal */
  readonly state: StateDb;
  private readonly kv: KvStore;
  private readonly cache: ComponentCache;
  private readonly components: ComponentStore;
  private readonly guestLog: GuestLogSink;
  private readonly execution: 'worker' | 'in-process';
  private pool: WorkerPool | undefined;
  private readonly secrets: SecretSource;
  private readonly gateway: HostGateway;
  /** Runs in flight on the pool, for shutdown to wait for. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** One writer at a time among this host's threads (storage/write-lock.ts). */
  private readonly writeLock = newWriteLockBuffer();
  /** Group commit of the run-ends workers write (storage/wal-sync.ts). */
  private walSync!: WalSync;
  private stopping = false;
  /** Shutdown's deadline passed: runs still in flight are being cut off. */
  private cutting = false;
  private drainMs = 0;
  private readonly cut: string[] = [];

  constructor(private readonly options: HostOptions) {
    this.stateDir = resolve(options.stateDir ?? '.ice');
    this.logger =
      options.logger ?? pino({ name: 'ice', level: process.env.ICE_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
    this.state = openStateDb(this.stateDir, { writeLock: this.writeLock });
    this.walSync = new WalSync(`${this.state.path}-wal`);
    this.kv = new KvStore(this.state);
    this.ledger = new LedgerStore(this.state);
    const cacheDir = options.cacheDir === undefined ? userCacheDir(this.stateDir, this.logger) : options.cacheDir;
    this.cache = new ComponentCache(cacheDir === false ? undefined : cacheDir);
    this.components = new ComponentStore(join(this.stateDir, 'components'));
    this.guestLog =
      options.onGuestLog ??
      ((entry) => this.logger.debug({ guest: entry.component, run: entry.runId, level: entry.level }, entry.message));
    this.execution = options.execution ?? 'worker';
    if (options.shareIntents && this.execution === 'in-process') {
      throw new RangeError('shareIntents needs worker execution: an in-process run cannot wait for the host thread to share an intent');
    }
    this.secrets = secretSource(options.secrets, process.env, options.secretsSource);
    this.gateway = new HostGateway({
      secrets: this.secrets,
      ...(options.approve ? { approver: options.approve } : {}),
      ...(options.approverName ? { approverName: options.approverName } : {}),
      config: {
        ...(options.models ? { models: options.models } : {}),
        ...(options.resolve ? { resolve: options.resolve } : {}),
        ...(options.ca ? { ca: options.ca } : {}),
      },
      onApproverError: (error) => this.logger.error({ error: error instanceof Error ? error.message : String(error) }, 'the approver failed; the ask was denied'),
    });
    for (const { run, pid, calls } of endInterruptedRuns(this.state, this.ledger)) {
      this.logger.warn({ run, pid, calls }, 'ended a run interrupted when its process stopped: outcome incomplete');
    }
  }

  /**
   * inspect → admit → prepare. `component` is the bytes or a path; `policy` a compiled policy, a policy
   * file path, or a policy object. Refusals are LoadError / PolicyError with messages that say the fix.
   */
  async load(component: Uint8Array | string, policy: IcePolicy | string | object): Promise<Agent> {
    const origin = typeof component === 'string' ? component : '<component bytes>';
    const bytes = this.readComponent(component, origin);
    const compiled = typeof policy === 'string' ? loadPolicyFile(policy) : isCompiled(policy) ? policy : compilePolicy(policy);
    checkHeader(bytes, origin);
    const info = await asLoadError(origin, () => this.cache.inspect(bytes, origin));
    if (compiled.pin !== undefined && compiled.pin !== info.digest) {
      throw new LoadError(
        'pin-mismatch',
        origin,
        `${origin} is not the component policy ${compiled.source} is pinned to: its sha256 is ${info.digest}, the policy's sha256 is ${compiled.pin} (update the pin only after reviewing the new component)`,
      );
    }
    const admitted = admitImports(info, compiled, origin);
    this.checkLoad(compiled, admitted, origin);
    // A run on the calling thread needs metering that lets its deadline stop it (component/core-binary.ts).
    const variant = this.execution === 'in-process' ? 'preemptible' : 'trap';
    const prepared = await asLoadError(origin, () => this.cache.prepare(bytes, info, origin, variant));
    // Compile for the policy's memory cap now, so a component that cannot fit is refused at load; a
    // refused component leaves nothing in the cache.
    try {
      prepared.modules(compiled.limits.memoryMiB);
    } catch (error) {
      this.cache.forget(info.digest);
      throw error;
    }
    // Kept by digest, so any run of it can be replayed from the ledger alone.
    this.components.put(bytes, info.digest);
    this.logger.debug({ component: compiled.component, digest: info.digest, source: prepared.source, ms: prepared.prepareMs }, 'component loaded');
    return new Agent(this, info, compiled, admitted, prepared);
  }

  /**
   * Refuses, at load, what a run could only fail at: each capability's own load checks (a secret a rule
   * injects, a mount's directory), and host effects and approvals in-process (they need the host thread
   * free to serve them).
   */
  private checkLoad(policy: IcePolicy, admitted: Admitted, origin: string): void {
    const needHostThread = checkAdmitted(policy, admitted, { policySource: policy.source, origin, secrets: this.secrets });
    if (this.execution === 'in-process' && needHostThread.length > 0) {
      throw new LoadError(
        'needs-worker',
        origin,
        `policy ${policy.source} grants ${needHostThread.join(', ')}, which in-process execution cannot serve (the host thread runs the guest): use worker execution (the default; drop --in-process)`,
      );
    }
  }

  /**
   * A component's kv data as an operator sees it: reads, and writes recorded in the ledger as operator
   * runs by `by` (views/kv-operator.ts), so `ice state verify` still holds and `ice audit` says who
   * changed what. Works whether or not the component was ever loaded.
   */
  kvOf(component: string, by: string = defaultOperator()): OperatorKv {
    if (!COMPONENT_NAME.test(component)) {
      throw new OperatorInputError(`bad component name ${JSON.stringify(component)}: a component's kv namespace is its policy's component name (1 to 64 of a-z, 0-9, ".", "_", "-")`);
    }
    if (typeof by !== 'string' || by.trim() === '' || by.length > 128) throw new OperatorInputError('the operator (by) must be a name of 1 to 128 characters');
    const services = { state: this.state, ledger: this.ledger, kv: this.kv };
    const write = (action: string, writes: readonly OperatorKvWrite[]) => operatorKvWrites(services, { component, by, action, writes });
    const kv = this.kv;
    return {
      get: (key) => kv.get(component, key),
      list: (prefix = '', limit = 10_000) => kv.keys(component, prefix, limit),
      set: (key, value) => write('kv set', [{ op: 'set', key, value }]),
      delete: (key) => write('kv delete', [{ op: 'delete', key }]),
      import: (entries, source = 'entries') => write(`kv import ${source}`, entries.map(([key, value]) => ({ op: 'set' as const, key, value }))),
      export: () => kv.keys(component, '', Number.MAX_SAFE_INTEGER).map((key) => [key, kv.get(component, key)!] as [string, string]),
    };
  }

  /** The records of one run, in order (`last` for the most recent run). */
  readRun(runId: string): StoredRecord[] {
    const id = this.ledger.resolveRunId(runId);
    return id ? this.ledger.readRun(id) : [];
  }

  /** Checks one run's chain (`last` for the most recent) with this state's ledger key (see `ice audit verify`). */
  verify(runId: string): VerifyResult {
    return verifyRun(this.readRun(runId), { key: this.state.ledgerKey.key });
  }

  /**
   * Replays a recorded run (`last` for the newest): the same component, checked by digest (`component`,
   * or the copy kept when it was loaded), with the recorded input and every import answered from the
   * ledger. Writes nothing. @throws ReplayError when the run cannot be replayed at all.
   */
  async replay(runId: string, component?: Uint8Array | string, options: ReplayOptions = {}): Promise<ReplayReport> {
    const id = this.ledger.resolveRunId(runId);
    const records = id ? this.ledger.readRun(id) : [];
    const start = records[0]?.record;
    if (start?.type !== 'run-start') throw new ReplayError(`no run ${runId} in the ledger in ${this.stateDir}`);
    if (isHostRecord(start)) throw notReplayable(start);
    const origin = typeof component === 'string' ? component : component ? '<component bytes>' : `the stored component sha256:${start.component.digest.slice(0, 12)}`;
    const bytes = component !== undefined ? this.readComponent(component, origin) : this.components.get(start.component.digest, this.maxComponentBytes);
    if (!bytes) {
      throw new ReplayError(
        `the component of run ${start.run} (sha256:${start.component.digest}) is not kept in ${this.components.dir}: pass it with --component <path>`,
      );
    }
    return replayRun(records, bytes, origin, this.cache, { ledgerKey: this.state.ledgerKey.key, ...options });
  }

  /** @internal a component kept by digest when it was loaded (for replay and upgrades), or undefined. */
  storedComponent(digest: string): Uint8Array | undefined {
    return this.components.get(digest, this.maxComponentBytes) ?? undefined;
  }

  private get maxComponentBytes(): number {
    return this.options.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES;
  }

  /** The component's bytes, refused over maxComponentBytes before they are read further or parsed. */
  private readComponent(component: Uint8Array | string, origin: string): Uint8Array {
    if (typeof component === 'string') return readComponentFile(component, this.maxComponentBytes);
    checkComponentSize(component, origin, this.maxComponentBytes);
    return component;
  }

  /**
   * Stops taking runs, waits up to `deadlineMs` for those in flight, then cuts the rest off (their
   * workers terminated) and ends each `incomplete`, and closes. Returns the ids of the runs cut off.
   */
  async shutdown(deadlineMs: number): Promise<string[]> {
    this.stopping = true;
    this.drainMs = deadlineMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), Math.max(0, deadlineMs))));
    const settled = await Promise.race([Promise.allSettled([...this.inFlight]).then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    let cut: string[] = [];
    if (settled === 'late') {
      this.cutting = true;
      await this.pool?.close();
      this.pool = undefined;
      await Promise.allSettled([...this.inFlight]);
      cut = [...this.cut];
      // A backstop for a run whose end the pool could not report: still in `running` under this process.
      cut.push(...endInterruptedRuns(this.state, this.ledger, processAlive, { reason: `the host stopped and the run did not end within the drain deadline (${deadlineMs} ms)` }).map((r) => r.run));
    }
    this.close();
    return cut;
  }

  /** Closes the state database and stops the worker pool (runs in flight are cut off). */
  close(): void {
    void this.pool?.close();
    this.pool = undefined;
    this.gateway.close();
    this.walSync.close();
    this.state.close();
  }

  /** @internal one governed run; Agent.run, Agent.call and Agent.command are the public entries. */
  async execute(agent: Agent, invocation: Invocation, options: RunOptions = {}): Promise<RunResult> {
    const max = this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
    const inputBytes = Buffer.byteLength(recordedInput(invocation), 'utf8') + (invocation.kind === 'command' ? Buffer.byteLength(invocation.args.join(' ')) : 0);
    if (inputBytes > max) {
      const what = invocation.kind === 'call' ? 'the arguments are' : invocation.kind === 'command' ? 'the command line and stdin are' : 'run input is';
      throw new RunInputError(`${what} ${inputBytes} bytes, over the host's limit of ${max} bytes (maxInputBytes)`);
    }
    const { policy, info, prepared, admitted } = agent;
    const request: RunRequest = { runId: options.runId ?? newRunId(), invocation, policy, digest: info.digest, admitted, ...(options.cause ? { cause: options.cause } : {}), ...(options.delivery !== undefined ? { delivery: options.delivery } : {}) };
    let summary: RunSummary;
    if (this.execution === 'in-process') {
      await prepareCapabilities(admitted);
      const modules = prepared.modules(policy.limits.memoryMiB);
      summary = governedRun(request, (provider, meter) => instantiateGenerated(prepared.generated, modules, provider, meter), this.services(), { ownDeadline: true });
    } else {
      if (this.stopping) throw new RunInputError('the host is shutting down: no new runs');
      const running = this.inWorker(agent, request, options.traceparent);
      this.inFlight.add(running);
      try {
        summary = await running;
      } finally {
        this.inFlight.delete(running);
      }
    }
    this.logger.info({ run: summary.runId, component: policy.component, outcome: summary.ending.outcome, calls: summary.counts.calls }, 'run ended');
    return toResult(summary);
  }

  private services(): RunServices {
    return {
      state: this.state,
      ledger: this.ledger,
      kv: this.kv,
      guestLog: this.guestLog,
      deliveries: (event) => enqueueDeliveries(this.state, event),
      ...(this.options.onEvent ? { events: this.options.onEvent } : {}),
      wasiOutput: (entry) => this.deliver('onGuestOutput', () => this.guestOutput(entry)),
    };
  }

  private guestOutput(entry: WasiOutputEntry): void {
    if (this.options.onGuestOutput) this.options.onGuestOutput(entry);
    else this.logger.debug({ guest: entry.component, run: entry.runId, stream: entry.stream }, entry.text);
  }

  private deliver(sink: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger.error({ sink, error: error instanceof Error ? error.message : String(error) }, 'a guest output sink failed');
    }
  }

  private async inWorker(agent: Agent, request: RunRequest, traceparent?: string): Promise<RunSummary> {
    const { policy, prepared } = agent;
    const { memoryMiB, timeoutMs } = policy.limits;
    const share = this.options.shareIntents;
    this.pool ??= new WorkerPool(
      Math.max(1, this.options.workers ?? availableParallelism()),
      this.stateDir,
      (op, args) => (op === SHARE_INTENTS && share ? shareFrom(share, args) : this.gateway.serve(op, args)),
      this.writeLock,
      share !== undefined,
    );
    this.gateway.begin(request.runId, policy, traceparent);
    const outcome = await this.pool.run({
      job: {
        runId: request.runId,
        invocation: request.invocation,
        ...(request.cause ? { cause: request.cause } : {}),
        ...(request.delivery !== undefined ? { delivery: request.delivery } : {}),
        digest: request.digest,
        admitted: request.admitted,
        policy: { document: policy.document, source: policy.source, digest: policy.digest },
        component: { key: `${request.digest}/${memoryMiB}`, glueUrl: prepared.glueUrl, modules: prepared.modules(memoryMiB) },
      },
      timeoutMs,
      // A sink that throws cannot fail a run that already recorded the call; it must not crash the host either.
      onLog: (entry) => this.deliver('onGuestLog', () => this.guestLog(entry)),
      onEvent: (event) => this.deliver('onEvent', () => this.options.onEvent?.(event)),
      onOutput: (entry) => this.deliver('onGuestOutput', () => this.guestOutput(entry)),
    }).finally(() => this.gateway.end(request.runId));
    // Cut off by shutdown: ended incomplete with what it had written or queued.
    if (this.cutting && outcome.kind !== 'done') {
      this.cut.push(request.runId);
      endCutRun(this, request, `the host stopped and the run did not end within the drain deadline (${this.drainMs} ms)`, outcome.elapsedUs, outcome.rescued);
      throw new RunStopped(request.runId);
    }
    switch (outcome.kind) {
      case 'done':
        // The worker committed the run-end without a sync: one sync of the WAL covers every run-end so far.
        await this.walSync.barrier();
        return outcome.summary;
      case 'timeout':
        return endStoppedRun(
          this,
          request,
          { outcome: 'limit', limit: 'timeout', reason: `the run took longer than limits.timeoutMs (${timeoutMs} ms) and was stopped` },
          outcome.elapsedUs,
          outcome.rescued,
        );
      case 'failed':
        return endStoppedRun(this, request, { outcome: 'trap', blame: 'host', reason: outcome.reason }, outcome.elapsedUs, outcome.rescued);
    }
  }
}

function toResult(summary: RunSummary): RunResult {
  const { runId, ending, counts, ledgerRoot, fuel } = summary;
  const totals = { runId, calls: counts.calls, counts, ledgerRoot, durationMs: summary.durationUs / 1000, fuel };
  switch (ending.outcome) {
    case 'ok':
      return { ...totals, ok: true, outcome: 'ok', output: ending.output };
    case 'error':
      return { ...totals, ok: false, outcome: 'error', error: ending.error };
    case 'trap':
      return { ...totals, ok: false, outcome: 'trap', error: ending.reason, blame: ending.blame };
    case 'limit':
      return { ...totals, ok: false, outcome: 'limit', error: ending.reason, limit: ending.limit };
  }
}

export class Agent {
  constructor(
    private readonly host: Host,
    readonly info: ComponentInfo,
    readonly policy: IcePolicy,
    /** What the component imports, by capability (ICE interfaces, WASI interfaces). */
    readonly admitted: Admitted,
    /** @internal */
    readonly prepared: PreparedComponent,
  ) {}

  get name(): string {
    return this.policy.component;
  }

  /** The capabilities the component imports, in registry order (`['log', 'kv']`; `wasi` for WASI interfaces). */
  get imports(): readonly string[] {
    return this.admitted.map((a) => a.name);
  }

  /** The typed functions it exports (world-level, then those of exported interfaces), with their types. */
  get functions(): readonly TypedFunction[] {
    return this.info.exported.functions;
  }

  /** The `wasi:cli/run@…` export when the component is a WASI command. */
  get commandExport(): string | undefined {
    return this.info.exported.command;
  }

  /** Whether it implements the ICE world's `run(input)`. */
  get implementsRun(): boolean {
    return hasRunExport(this.info);
  }

  /**
   * One governed run of the ICE world's `run(input)` on a fresh instance. Resolves with the result;
   * rejects only with RunInputError (also when the component has no such `run`).
   */
  async run(input: string, options: RunOptions = {}): Promise<RunResult> {
    if (typeof input !== 'string') throw new RunInputError('run input must be a string');
    if (!this.implementsRun) {
      const offers = this.commandExport
        ? 'it is a WASI command: run it with `ice run <component> --policy <file> -- <args>` (Agent.command)'
        : `it exports ${this.functions.map((f) => f.name).join(', ')}: call one with \`ice call <component> <function> --args '<json>'\` (Agent.call)`;
      throw new RunInputError(`${this.name} does not implement \`run: ${RUN_SIGNATURE}\`; ${offers}`);
    }
    return this.host.execute(this, { kind: 'run', input }, options);
  }

  /**
   * The typed export named `name` (`add`, `geometry.area`, `example:calc/geometry@0.1.0#area`, or a
   * function name that only one interface has). @throws RunInputError naming what it exports
   */
  function(name: string): TypedFunction {
    const found =
      this.functions.find((f) => f.name === name || (f.interface !== undefined && `${f.interface}#${f.func}` === name)) ??
      (this.functions.filter((f) => f.func === name).length === 1 ? this.functions.find((f) => f.func === name) : undefined);
    if (!found) {
      const names = this.functions.map((f) => f.name);
      throw new RunInputError(`${this.name} exports no function ${JSON.stringify(name)}; it exports ${names.length > 0 ? names.join(', ') : 'no typed functions'}`);
    }
    return found;
  }

  /**
   * One governed run of a typed export with JSON arguments (an object keyed by parameter name). The
   * result's `output` (ok) or `error` (the function's `err`) is JSON text; `value` is it parsed.
   * @throws InvalidArguments (a RunInputError) naming the path of the first bad argument, before anything runs
   */
  async call(name: string, args: unknown, options: RunOptions = {}): Promise<CallResult> {
    const fn = this.function(name);
    try {
      argumentsFromJson(fn, args);
    } catch (error) {
      if (error instanceof ArgumentError) throw new InvalidArguments(fn.name, error.path, error.problem);
      throw error;
    }
    const result = await this.host.execute(this, { kind: 'call', fn, args: args as Record<string, Json> }, options);
    if (result.ok) return { ...result, value: JSON.parse(result.output) as Json };
    return result.outcome === 'error' ? { ...result, value: JSON.parse(result.error) as Json } : result;
  }

  /**
   * One governed run of a WASI command: `args` follow the policy's grants.wasi.args; `stdin` is what it
   * reads when grants.wasi.stdin is `input`; its stdout is the run's output.
   */
  async command(args: readonly string[] = [], stdin?: string, options: RunOptions = {}): Promise<RunResult> {
    const exported = this.commandExport;
    if (!exported) throw new RunInputError(`${this.name} is not a WASI command (it does not export wasi:cli/run)`);
    if (!args.every((a) => typeof a === 'string')) throw new RunInputError('command arguments must be strings');
    const grant = (this.policy.grants as { wasi?: { mode?: string; stdin?: string } }).wasi;
    if (stdin !== undefined && grant?.stdin !== 'input') {
      throw new RunInputError(`policy ${this.policy.source} does not give the command its input as stdin: set grants.wasi.stdin: input (it is ${grant?.stdin ?? 'not set'})`);
    }
    return this.host.execute(this, { kind: 'command', export: exported, args: [...args], stdin: stdin ?? '' }, options);
  }
}

/** An operator's view of one component's kv data (Host.kvOf). Each write is one recorded operator run. */
export interface OperatorKv {
  get(key: string): string | undefined;
  /** Keys starting with `prefix`, in code point order, at most `limit`. */
  list(prefix?: string, limit?: number): string[];
  set(key: string, value: string): OperatorRun;
  delete(key: string): OperatorRun;
  /** Sets every entry in one operator run (all or nothing); `source` names where they came from in the record. */
  import(entries: readonly (readonly [string, string])[], source?: string): OperatorRun;
  /** Every key and value, in key order. */
  export(): [string, string][];
}

/** Who an operator action is recorded as, by default: the OS user. */
function defaultOperator(): string {
  try {
    return userInfo().username || 'operator';
  } catch {
    return 'operator';
  }
}

/** A typed call's result: `value` is the function's JSON result (ok) or its `err` value (error). */
export type CallResult = RunResult & { readonly value?: Json };

/** A call's arguments do not fit its parameters: nothing ran, nothing was recorded. */
export class InvalidArguments extends RunInputError {
  constructor(
    readonly fn: string,
    /** Where the first bad value is: `points[2].x`. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`invalid arguments for ${fn}: ${path}: ${problem}`);
  }
}

/**
 * Every load failure is a LoadError: what the decoder, jco or binaryen throw beyond the refusals they
 * were written for (a stack overflow on deep nesting, an allocation failure) still names the component.
 */
async function asLoadError<T>(origin: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof LoadError) throw error;
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new LoadError('prepare-failed', origin, `${origin} could not be loaded: ${reason}`);
  }
}

/**
 * The per-user component cache (see HostOptions.cacheDir). The cache holds JavaScript the host imports,
 * so a directory that is not ours, or that others can write, is not used: the state dir's own is.
 */
function userCacheDir(stateDir: string, logger: Logger): string {
  const home = (() => {
    try {
      return homedir();
    } catch {
      return '';
    }
  })();
  const configured = process.env.ICE_CACHE_DIR || (process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, 'ice') : home ? join(home, '.cache', 'ice') : '');
  if (configured === '') return join(stateDir, 'cache');
  const dir = resolve(configured);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const info = statSync(dir);
    const ours = typeof process.getuid !== 'function' || info.uid === process.getuid();
    if (info.isDirectory() && ours && (info.mode & 0o022) === 0) return dir;
    logger.warn({ dir }, 'the component cache is not owned by this user or others can write it: using the state directory\'s own');
  } catch (error) {
    logger.warn({ dir, error: error instanceof Error ? error.message : String(error) }, 'cannot use the per-user component cache: using the state directory\'s own');
  }
  return join(stateDir, 'cache');
}

function isCompiled(policy: object): policy is IcePolicy {
  return 'grants' in policy && 'digest' in policy && 'document' in policy;
}

/** A run's intents from its worker, handed to `HostOptions.shareIntents` (checked: the worker is not trusted with shapes). */
async function shareFrom(share: NonNullable<HostOptions['shareIntents']>, args: unknown): Promise<null> {
  const { runId, entries } = (args ?? {}) as { runId?: unknown; entries?: unknown };
  if (typeof runId !== 'string' || !Array.isArray(entries)) throw new Error('malformed intents from a run worker');
  await share(runId, entries as IntentLogEntry[]);
  return null;
}
