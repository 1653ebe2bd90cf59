/**
 * Replay: re-executes a recorded run's component with the recorded input, serving every import from the
 * recorded results instead of the world (clock readings, random bytes, kv reads, denials and limits
 * alike), and checks that the guest makes exactly the recorded calls with the recorded arguments and
 * ends as recorded. A run that replays exactly proves the ledger holds everything the run depended on.
 *
 * Replay reads only the ledger: it writes no record and touches no kv state.
 */
import type { ComponentCache } from '../component/prepare.js';
import { admitImports, wasiImportsOf } from '../component/admit.js';
import type { WasiImport } from '../wasi/interfaces.js';
import { loadWasiShim, WasiMediator } from '../wasi/mediate.js';
import { CAPABILITY_FUNCTIONS, qualifiedInterface, type CapabilityName } from '../component/wit.js';
import { capture, verifyRun, type Captured, type CallRecord, type RunEndRecord, type RunStartRecord, type StoredRecord } from '../ledger/index.js';
import { displayCall, formatCaptured } from '../ledger/format.js';
import { compilePolicy, type CompiledPolicy } from '../policy/index.js';
import { runInstance, type ImportProvider, type RunEnding } from '../sandbox/instance.js';
import { sha256Hex } from '../digest.js';
import { isUnrecorded, ledgerForm } from '../capabilities/ledger-forms.js';

export type ReplayReport =
  | { readonly matches: true; readonly calls: number; readonly outcome: string; readonly fuel: number; readonly durationMs: number; readonly note?: string }
  | { readonly matches: false; readonly seq: number; readonly expected: string; readonly actual: string; readonly durationMs: number };

/** The run cannot be replayed at all (as opposed to replaying and diverging). */
export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

/** Functions whose arguments are recorded whole regardless of audit.maxCaptureBytes (state writes). */
const WRITES = new Set(['ice:agent/kv@0.1.0#set', 'ice:agent/kv@0.1.0#delete']);
const ARG_MAX = 60;

export interface ReplayOptions {
  /**
   * Replay a component other than the recorded one against the recording (e.g. a new version of the
   * agent, to see whether it still makes the same calls). Off by default: replay proves a run only with
   * the component it ran.
   */
  readonly otherComponent?: boolean;
}

export async function replayRun(
  records: readonly StoredRecord[],
  component: Uint8Array,
  origin: string,
  cache: ComponentCache,
  options: ReplayOptions = {},
): Promise<ReplayReport> {
  const checked = verifyRun(records as StoredRecord[]);
  if (!checked.ok) throw new ReplayError(`the run's records do not verify (seq ${checked.seq}: ${checked.reason}); run ice audit verify`);
  const start = records[0]!.record as RunStartRecord;
  const end = records.at(-1)!.record;
  if (end.type !== 'run-end') throw new ReplayError(`run ${start.run} has not ended; replay it once it has`);
  const digest = sha256Hex(component);
  if (digest !== start.component.digest && !options.otherComponent) {
    throw new ReplayError(`${origin} is not the component run ${start.run} executed: its sha256 is ${digest}, the run's is ${start.component.digest}`);
  }
  if (!('value' in start.input) || typeof start.input.value !== 'string') {
    throw new ReplayError(`run ${start.run} recorded its input as a digest (audit.capture: digest), so it cannot be replayed`);
  }
  const policy = compilePolicy(start.policy.document, start.policy.source);
  const info = await cache.inspect(component, origin);
  const imported = admitImports(info, policy, origin);
  const prepared = await cache.prepare(component, info, origin);
  const calls = records.filter((r) => r.record.type === 'call').map((r) => r.record as CallRecord);

  const started = performance.now();
  const server = new RecordedWorld(policy, calls, end);
  const wasi = wasiImportsOf(info);
  if (wasi.length > 0) await loadWasiShim();
  const { ending, fuel } = runInstance(
    (imports, meter) => prepared.instantiate(policy.limits.memoryMiB, imports, meter),
    imported,
    wasi,
    server,
    policy.limits,
    start.input.value,
  );
  const durationMs = performance.now() - started;
  if (server.unreplayable) throw server.unreplayable;
  if (server.divergence) return { matches: false, ...server.divergence, durationMs };
  if (server.consumed < calls.length) {
    const missing = calls[server.consumed]!;
    return { matches: false, seq: missing.seq, expected: describe(missing.call, missing.args), actual: `run-end (${ending.outcome})`, durationMs };
  }
  if (server.stoppedFromOutside) {
    return { matches: true, calls: calls.length, outcome: end.outcome, fuel, durationMs, note: `the original run ended ${end.outcome} after these calls; the replay stopped there` };
  }
  const expectedEnd = describeEnd(end.limit ? `${end.outcome} (${end.limit})` : end.outcome, end.output, end.fuel);
  const actualEnd = describeEnd(ending.outcome === 'limit' ? `limit (${ending.limit})` : ending.outcome, outputOf(ending, policy), fuel);
  if (expectedEnd !== actualEnd) return { matches: false, seq: end.seq, expected: expectedEnd, actual: actualEnd, durationMs };
  return { matches: true, calls: calls.length, outcome: end.outcome, fuel, durationMs };
}

/** The imports of a replay: each call is checked against the next recorded one and answered as it was. */
class RecordedWorld implements ImportProvider {
  readonly hostFault = undefined;
  made = 0;
  /** Index of the next recorded call record (hops make it run ahead of `made`). */
  private next = 0;
  get consumed(): number {
    return this.next;
  }
  divergence: { seq: number; expected: string; actual: string } | undefined;
  /** A recorded answer the replay cannot give (recorded as a digest). */
  unreplayable: ReplayError | undefined;
  /** The recorded run was stopped by its deadline or its process died: calls past the record cannot be checked. */
  stoppedFromOutside = false;

  constructor(
    private readonly policy: CompiledPolicy,
    private readonly calls: readonly CallRecord[],
    private readonly end: RunEndRecord,
  ) {}

  importObject(imported: readonly CapabilityName[], wasi: readonly WasiImport[]): Record<string, Record<string, unknown>> {
    const table: Record<string, Record<string, unknown>> = {};
    if (wasi.length > 0) {
      const grant = this.policy.grants.wasi;
      if (!grant) throw new ReplayError('the run imports WASI but its policy has no grants.wasi');
      const scope = { component: this.policy.component, runId: 'replay', capture: this.policy.capture, maxCaptureBytes: this.policy.maxCaptureBytes };
      const wasiWorld = new WasiMediator(grant, scope, { appendCall: () => undefined }, this.policy.limits, undefined, (call, args) => this.recordedWasi(call, args));
      Object.assign(table, wasiWorld.importObject(wasi));
    }
    for (const name of imported) {
      const functions: Record<string, (...args: unknown[]) => unknown> = {};
      for (const fn of CAPABILITY_FUNCTIONS[name]) functions[fn] = (...args) => this.answer(`${qualifiedInterface(name)}#${fn}`, args);
      table[`ice:agent/${name}`] = functions;
    }
    return table;
  }

  /** The recorded record of a WASI call, checked like any other (a divergence stops the replay). */
  private recordedWasi(call: string, actual: Captured[]): CallRecord {
    const seq = ++this.made;
    const expected = this.calls[this.next++];
    if (expected === undefined) {
      if ((this.end.outcome === 'limit' && this.end.limit === 'timeout') || this.end.outcome === 'incomplete') this.stoppedFromOutside = true;
      else this.divergence = { seq: this.end.seq, expected: `run-end (${this.end.outcome})`, actual: describe(call, actual) };
      throw new Error('replay stopped');
    }
    if (expected.call !== call || JSON.stringify(expected.args) !== JSON.stringify(actual)) {
      this.divergence = { seq: expected.seq || seq, expected: describe(expected.call, expected.args), actual: describe(call, actual) };
      throw new Error('replay diverged');
    }
    return expected;
  }

  private answer(call: string, args: unknown[]): unknown {
    const seq = ++this.made;
    const max = WRITES.has(call) ? Number.POSITIVE_INFINITY : this.policy.maxCaptureBytes;
    const form = ledgerForm(call);
    const actual = (form ? form.args(args) : args).map((arg) => capture(arg as never, this.policy.capture, max));
    const expected = this.calls[this.next++];
    if (expected === undefined) {
      if (this.end.outcome === 'limit' && this.end.limit === 'timeout') this.stoppedFromOutside = true;
      else if (this.end.outcome === 'incomplete') this.stoppedFromOutside = true;
      else this.divergence = { seq: this.end.seq, expected: `run-end (${this.end.outcome})`, actual: describe(call, actual) };
      throw new Error('replay stopped');
    }
    if (expected.hop !== undefined || expected.call !== call || JSON.stringify(expected.args) !== JSON.stringify(actual)) {
      this.divergence = { seq: expected.seq, expected: describe(expected.call, expected.args), actual: describe(call, actual) };
      throw new Error('replay diverged');
    }
    // A call the host followed redirects for: its hops are the records after it; the guest got the last one's answer.
    let answered = expected;
    while (this.calls[this.next]?.hop !== undefined) answered = this.calls[this.next++]!;
    return this.answerFrom(answered, call);
  }

  private answerFrom(expected: CallRecord, call: string): unknown {
    if ('err' in expected.outcome) {
      // A host fault was a trap for the guest, not an answer.
      if (expected.outcome.err.kind === 'failed' && this.end.outcome === 'trap' && this.end.blame === 'host' && this.next === this.calls.length) {
        throw new Error(expected.outcome.err.message);
      }
      return { tag: 'err', val: { tag: expected.outcome.err.kind, val: expected.outcome.err.message } };
    }
    try {
      return { tag: 'ok', val: decode(call, expected.outcome.ok, expected.seq) };
    } catch (error) {
      if (error instanceof ReplayError) this.unreplayable = error;
      throw error;
    }
  }
}

/** A recorded ok value back into what the capability returned to the guest. */
function decode(call: string, value: Captured | null, seq: number): unknown {
  if (value === null) return undefined;
  const digested = () => new ReplayError(`seq ${seq} (${displayCall(call)}) recorded its result as a digest, so the run cannot be replayed`);
  if ('sha256' in value) throw digested();
  const form = ledgerForm(call);
  if (form) {
    try {
      return form.decode(value);
    } catch (error) {
      if (isUnrecorded(error)) throw digested();
      throw error;
    }
  }
  if ('fields' in value) throw new ReplayError(`seq ${seq} (${displayCall(call)}) recorded a record where ${displayCall(call)} returns none`);
  if ('hex' in value) return new Uint8Array(Buffer.from(value.hex, 'hex'));
  if (call === 'ice:agent/clock@0.1.0#now') return BigInt(value.value as string | number);
  return value.value;
}

function describe(call: string, args: readonly Captured[]): string {
  return `${displayCall(call)}(${args.map((a) => formatCaptured(a, ARG_MAX)).join(', ')})`;
}

function describeEnd(outcome: string, output: Captured | undefined, fuel: number | undefined): string {
  const shown = output === undefined ? '' : ` output ${formatCaptured(output, ARG_MAX)}`;
  return `run-end ${outcome}${shown}${fuel === undefined ? '' : ` fuel ${fuel}`}`;
}

function outputOf(ending: RunEnding, policy: CompiledPolicy): Captured | undefined {
  if (ending.outcome === 'ok') return capture(ending.output, policy.capture, policy.maxCaptureBytes);
  if (ending.outcome === 'error') return capture(ending.error, policy.capture, policy.maxCaptureBytes);
  return undefined;
}
