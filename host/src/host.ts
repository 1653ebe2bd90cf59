/**
 * The library API: a Host owns the state directory (kv + ledger in one SQLite file) and the component
 * cache; `host.load` inspects, admits and prepares a component under a policy; `agent.run` executes
 * one governed, recorded run.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { admitImports } from './component/admit.js';
import { LoadError } from './component/errors.js';
import { checkHeader, type ComponentInfo } from './component/inspect.js';
import { ComponentCache, type PreparedComponent } from './component/prepare.js';
import type { CapabilityName } from './component/wit.js';
import { capture, LedgerStore, newRunId, type RunCounts, type StoredRecord } from './ledger/index.js';
import { RunMediator } from './mediator/mediator.js';
import type { GuestEventSink } from './capabilities/events.js';
import type { GuestLogSink } from './capabilities/log.js';
import { compilePolicy, loadPolicyFile, type CompiledPolicy } from './policy/index.js';
import { runInProcess } from './sandbox/in-process.js';
import { openStateDb, type StateDb } from './state/db.js';
import { KvStore } from './state/kv-store.js';
import { ICE_VERSION } from './version.js';

export interface HostOptions {
  /** Where kv data, the ledger and the component cache live. Default `./.ice`. */
  readonly stateDir?: string;
  /** Transpiled-component cache directory; `false` keeps it in memory only. Default `<stateDir>/cache`. */
  readonly cacheDir?: string | false;
  /** Operational logger (pino). Default: warnings and errors to stderr, level from ICE_LOG_LEVEL. */
  readonly logger?: Logger;
  /** Receives every granted guest log.write. Default: the operational logger at debug level. */
  readonly onGuestLog?: GuestLogSink;
  /** Receives every granted events.emit (the ledger records them either way). */
  readonly onEvent?: GuestEventSink;
  /** Largest run input accepted, in UTF-8 bytes. Default 1 MiB. */
  readonly maxInputBytes?: number;
}

export type RunOutcome = 'ok' | 'error' | 'trap';

interface RunTotals {
  readonly runId: string;
  /** Import calls the run made (each has exactly one ledger record). */
  readonly calls: number;
  readonly counts: Readonly<RunCounts>;
  /** Hash of the run-end record: the head of the run's chain. */
  readonly ledgerRoot: string;
  readonly durationMs: number;
}

export type RunResult =
  | (RunTotals & { readonly ok: true; readonly outcome: 'ok'; readonly output: string })
  | (RunTotals & {
      readonly ok: false;
      readonly outcome: 'error' | 'trap';
      /** The guest's err message, or why the run trapped. */
      readonly error: string;
      /** Who a trap is blamed on. */
      readonly blame?: 'guest' | 'host';
    });

/** A run refused before it started (nothing reached the guest, nothing was recorded). */
export class RunInputError extends Error {
  override readonly name = 'RunInputError';
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
  return new Host(options);
}

export class Host {
  readonly stateDir: string;
  readonly logger: Logger;
  readonly ledger: LedgerStore;
  private readonly state: StateDb;
  private readonly kv: KvStore;
  private readonly cache: ComponentCache;
  private readonly guestLog: GuestLogSink;

  constructor(private readonly options: HostOptions) {
    this.stateDir = resolve(options.stateDir ?? '.ice');
    this.logger =
      options.logger ?? pino({ name: 'ice', level: process.env.ICE_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
    this.state = openStateDb(this.stateDir);
    this.kv = new KvStore(this.state);
    this.ledger = new LedgerStore(this.state);
    const cacheDir = options.cacheDir === undefined ? join(this.stateDir, 'cache') : options.cacheDir;
    this.cache = new ComponentCache(cacheDir === false ? undefined : cacheDir);
    this.guestLog =
      options.onGuestLog ??
      ((entry) => this.logger.debug({ guest: entry.component, run: entry.runId, level: entry.level }, entry.message));
  }

  /**
   * inspect → admit → prepare. `component` is the bytes or a path; `policy` a compiled policy, a policy
   * file path, or a policy object. Refusals are LoadError / PolicyError with messages that say the fix.
   */
  async load(component: Uint8Array | string, policy: CompiledPolicy | string | object): Promise<Agent> {
    const origin = typeof component === 'string' ? component : '<component bytes>';
    const bytes = typeof component === 'string' ? readComponent(component) : component;
    const compiled = typeof policy === 'string' ? loadPolicyFile(policy) : isCompiled(policy) ? policy : compilePolicy(policy);
    checkHeader(bytes, origin);
    const info = await this.cache.inspect(bytes, origin);
    const imported = admitImports(info, compiled, origin);
    const prepared = await this.cache.prepare(bytes, info, origin);
    this.logger.debug({ component: compiled.component, digest: info.digest, source: prepared.source, ms: prepared.prepareMs }, 'component loaded');
    return new Agent(this, info, compiled, imported, prepared);
  }

  /** The records of one run, in order (`last` for the most recent run). */
  readRun(runId: string): StoredRecord[] {
    const id = this.ledger.resolveRunId(runId);
    return id ? this.ledger.readRun(id) : [];
  }

  close(): void {
    this.state.close();
  }

  /** @internal one governed run; Agent.run is the public entry. */
  execute(agent: Agent, input: string): RunResult {
    const started = performance.now();
    const max = this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
    if (typeof input !== 'string') throw new RunInputError('run input must be a string');
    const inputBytes = Buffer.byteLength(input, 'utf8');
    if (inputBytes > max) {
      throw new RunInputError(`run input is ${inputBytes} bytes, over the host's limit of ${max} bytes (maxInputBytes)`);
    }
    const { policy, info } = agent;
    const runId = newRunId();
    const writer = this.ledger.startRun({
      run: runId,
      component: { name: policy.component, digest: info.digest },
      policy: { digest: policy.digest, source: policy.source, document: policy.document },
      input: capture(input, policy.capture),
      host: { ice: ICE_VERSION },
    });
    const scope = { component: policy.component, runId, capture: policy.capture };
    const services = { state: this.state, kv: this.kv, guestLog: this.guestLog, ...(this.options.onEvent ? { events: this.options.onEvent } : {}) };
    const mediator = new RunMediator(policy, scope, writer, services);
    const ending = runInProcess(agent.prepared, agent.imports, mediator, input);
    const durationUs = Math.round((performance.now() - started) * 1000);
    // The run-end is committed durably (WAL fsynced), which also makes every call record before it so.
    const ledgerRoot = this.state.durable(() => writer.end({
      outcome: ending.outcome,
      ...(ending.outcome === 'ok' ? { output: capture(ending.output, policy.capture) } : {}),
      ...(ending.outcome === 'error' ? { output: capture(ending.error, policy.capture) } : {}),
      ...(ending.outcome === 'trap' ? { blame: ending.blame, reason: ending.reason } : {}),
      durationUs,
    }));
    const counts = writer.counts;
    const totals = { runId, calls: counts.calls, counts, ledgerRoot, durationMs: durationUs / 1000 };
    this.logger.info({ run: runId, component: policy.component, outcome: ending.outcome, calls: counts.calls }, 'run ended');
    if (ending.outcome === 'ok') return { ...totals, ok: true, outcome: 'ok', output: ending.output };
    if (ending.outcome === 'error') return { ...totals, ok: false, outcome: 'error', error: ending.error };
    return { ...totals, ok: false, outcome: 'trap', error: ending.reason, blame: ending.blame };
  }
}

export class Agent {
  constructor(
    private readonly host: Host,
    readonly info: ComponentInfo,
    readonly policy: CompiledPolicy,
    /** The ICE capabilities the component imports. */
    readonly imports: readonly CapabilityName[],
    /** @internal */
    readonly prepared: PreparedComponent,
  ) {}

  get name(): string {
    return this.policy.component;
  }

  /** One governed run on a fresh instance. Resolves with the result; rejects only with RunInputError. */
  async run(input: string): Promise<RunResult> {
    return this.host.execute(this, input);
  }
}

function readComponent(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(code ?? error);
    throw new LoadError('not-found', path, `cannot read component ${path}: ${why}`);
  }
}

function isCompiled(policy: object): policy is CompiledPolicy {
  return 'grants' in policy && 'digest' in policy && 'document' in policy;
}

