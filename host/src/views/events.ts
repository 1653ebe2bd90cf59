/**
 * Queries over the ledger as an event store. The ledger is the only record of what guests did: a
 * granted call that succeeded (`decision: allow`, outcome `ok`) is an event that happened — an
 * `events.emit` a guest published, or a `kv.set` / `kv.delete` that changed its memory (the kv view
 * is folded from those, see fold.ts). A call that was denied, limited, invalid or failed (a host
 * fault) did not happen, so it is never an event.
 *
 * Reads the stored bodies as they are: it does not check the hash chain (`ice audit verify` does).
 *
 * @example
 * ```ts
 * const state = openStateDb('.ice');
 * for (const e of queryEvents(state, { kind: compileKindPattern('counter.*') as Matcher })) console.log(e.kind, e.payload);
 * ```
 */
import { callName } from '../core/world.js';
import { sha256Hex } from '../core/digest.js';
import type { CallRecord, Captured, IntentRecord, LedgerRecord, ResultRecord, RunStartRecord } from '../ledger/records.js';
import type { LedgerRow } from '../ledger/store.js';
import { compileMatcher, parsePattern } from '../policy/matchers.js';
import type { Matcher } from '../policy/types.js';
import type { StateDb } from '../storage/db.js';

/** The ledger name of `events.emit`. */
export const EMIT_CALL = callName('events', 'emit');

/** A string argument as the ledger holds it: whole, or (digest capture) only its SHA-256 and UTF-8 size. */
export type RecordedText = { readonly text: string } | { readonly sha256: string; readonly size: number };

/** Where the calls are read from: the state database (filtered in SQL first), or raw rows (an export, a test). */
export type LedgerSource = StateDb | Iterable<LedgerRow>;

/** A granted call that succeeded, with the component and capture mode of its run. */
export interface GrantedCall {
  /** The row id: store (commit) order across all runs. */
  readonly id: number;
  readonly component: string;
  /** The run's `audit.capture`, so a digest can be explained. */
  readonly capture: 'full' | 'digest';
  readonly record: CallRecord;
}

/** One event a guest emitted. */
export interface GuestEventRow {
  readonly run: string;
  readonly seq: number;
  readonly at: string;
  readonly component: string;
  readonly kind: RecordedText;
  readonly payload: RecordedText;
}

/** Thrown when a record the query needs is not shaped as ICE writes it (a damaged or forged ledger). */
export class LedgerShapeError extends Error {
  override readonly name = 'LedgerShapeError';
}

/**
 * Reads the granted, successful calls to any of `calls` (ledger names like `ice:agent/kv@0.1.0#set`)
 * in store order, optionally only those of runs of `component`. Each `scan` continues after the last
 * row the previous one read, remembering every run's component, so a caller can read most of the
 * ledger first and only the tail later (rebuild does the tail under the write lock). Row ids only
 * grow in commit order: a row committed after a scan has a larger id than any row it read.
 *
 * A call recorded as an intent and its result happened when its result says so, at the result's place
 * in store order (a write commits with its result); an intent without a result is `open`: its outcome
 * is unknown, so it is no event.
 */
export class GrantedCallScanner {
  private readonly wanted: ReadonlySet<string>;
  private readonly needles: readonly string[];
  private readonly runs = new Map<string, { component: string; capture: 'full' | 'digest' }>();
  /** Intents of wanted calls not yet resulted, by run and seq. */
  private readonly intents = new Map<string, IntentRecord>();
  /** Id of the last row read. */
  lastId = 0;

  constructor(calls: readonly string[], private readonly component?: string) {
    this.wanted = new Set(calls);
    this.needles = calls.map(callNeedle);
  }

  *scan(source: LedgerSource): Generator<GrantedCall> {
    for (const row of candidateRows(source, this.needles, this.lastId)) {
      this.lastId = row.id;
      if (row.type === 'run-start') {
        const start = parseRecord(row) as RunStartRecord;
        this.runs.set(row.run, { component: String(start.component?.name), capture: captureMode(start) });
        continue;
      }
      const run = this.runs.get(row.run);
      if (run === undefined) {
        throw new LedgerShapeError(`run ${row.run} has a call record (seq ${row.seq}) but no run-start before it; check the ledger with \`ice audit verify\``);
      }
      // Parse only the calls of the runs asked for: the SQL filter matched text, this confirms the fields.
      if (this.component !== undefined && run.component !== this.component) continue;
      const parsed = parseRecord(row);
      if (parsed.type === 'intent') {
        if (this.wanted.has(parsed.call)) this.intents.set(`${row.run}#${parsed.seq}`, parsed);
        continue;
      }
      const record = parsed.type === 'result' ? this.joined(parsed) : parsed;
      if (record === undefined || !isGrantedCall(record, this.wanted)) continue;
      yield { id: row.id, component: run.component, capture: run.capture, record };
    }
  }

  /** Wanted calls whose intent has no result in what was scanned: their outcome is unknown (or still to come). */
  open(): readonly IntentRecord[] {
    return [...this.intents.values()];
  }

  /** A result with its intent, as the one call record it stands for. */
  private joined(result: ResultRecord): CallRecord | undefined {
    const key = `${result.run}#${result.intent}`;
    const intent = this.intents.get(key);
    if (intent === undefined) return undefined;
    this.intents.delete(key);
    const { decision, rule, outcome, durationUs } = result;
    return { v: 1, type: 'call', run: intent.run, seq: intent.seq, at: intent.at, prev: intent.prev, call: intent.call, args: intent.args, decision, rule, outcome, durationUs };
  }
}

/** One pass of a `GrantedCallScanner` over the whole ledger. */
export function grantedCalls(source: LedgerSource, calls: readonly string[], component?: string): Generator<GrantedCall> {
  return new GrantedCallScanner(calls, component).scan(source);
}

/** The names of every component with a run in the ledger, sorted. */
export function ledgerComponents(state: StateDb): string[] {
  const rows = state.db
    .prepare<[], { name: string }>(
      "SELECT DISTINCT json_extract(body, '$.component.name') AS name FROM ledger WHERE type = 'run-start' ORDER BY name",
    )
    .all();
  return rows.map((row) => String(row.name));
}

/**
 * The events guests emitted, oldest first. `kind` filters with the policy's pattern semantics; a kind
 * recorded only as a digest matches `*`, and an exact pattern by its SHA-256, but never a prefix
 * (the digest does not say how the kind starts).
 */
export function queryEvents(source: LedgerSource, filter: { kind?: Matcher; component?: string } = {}): Generator<GuestEventRow> {
  return scanEvents(new GrantedCallScanner([EMIT_CALL], filter.component), source, filter.kind);
}

/**
 * The events in the rows `scanner` (made for `[EMIT_CALL]`) has not read yet: a follower keeps one
 * scanner and calls this again for the events committed since (`ice events list --follow`).
 */
export function* scanEvents(scanner: GrantedCallScanner, source: LedgerSource, kind?: Matcher): Generator<GuestEventRow> {
  for (const call of scanner.scan(source)) {
    const { record } = call;
    const recordedKind = recordedText(record.args[0], record, 'kind');
    if (kind !== undefined && !matchesRecorded(kind, recordedKind)) continue;
    const payload = recordedText(record.args[1], record, 'payload');
    yield { run: record.run, seq: record.seq, at: record.at, component: call.component, kind: recordedKind, payload };
  }
}

/**
 * A `--kind` pattern compiled with the policy's matcher code (`*`, `prefix*`, exact), or the problem
 * with it, phrased as the text after `bad pattern "…": `.
 */
export function compileKindPattern(pattern: string): Matcher | { problem: string } {
  const shape = parsePattern(pattern, 'counter.*');
  if ('problem' in shape) return shape;
  return compileMatcher('--kind', pattern);
}

/** Whether a matcher accepts a recorded string (see `queryEvents` for digests). */
export function matchesRecorded(matcher: Matcher, value: RecordedText): boolean {
  if ('text' in value) return matcher.test(value.text);
  if (matcher.kind === 'any') return true;
  return matcher.kind === 'exact' && sha256Hex(matcher.text) === value.sha256;
}

/** A string argument of a call as recorded, or a LedgerShapeError naming the record. */
export function recordedText(arg: Captured | undefined, record: CallRecord, what: string): RecordedText {
  if (arg !== undefined && 'value' in arg && typeof arg.value === 'string') return { text: arg.value };
  if (arg !== undefined && 'sha256' in arg && typeof arg.sha256 === 'string' && typeof arg.size === 'number') {
    return { sha256: arg.sha256, size: arg.size };
  }
  throw new LedgerShapeError(
    `run ${record.run} seq ${record.seq}: the ${what} of ${record.call} is recorded as ${JSON.stringify(arg)}, not a string or its digest; check the ledger with \`ice audit verify\``,
  );
}

/** `sha256:<first 12 hex>… (<size> bytes)`: how a value recorded only as a digest is shown. */
export function digestLabel(digest: { sha256: string; size: number }): string {
  return `sha256:${digest.sha256.slice(0, 12)}… (${digest.size} ${digest.size === 1 ? 'byte' : 'bytes'})`;
}

// --- reading -------------------------------------------------------------------------------------

/** The text a call record of `call` contains (`"call":"ice:agent/kv@0.1.0#set"`): a pre-filter only. */
function callNeedle(call: string): string {
  return `"call":${JSON.stringify(call)}`;
}

/**
 * Run-starts and the call records that may be one of the wanted calls, after row `afterId`, in store
 * order. From the database the text test runs in SQL (instr: an exact substring, cheaper than LIKE),
 * so the other records' bodies never reach JavaScript.
 */
function candidateRows(source: LedgerSource, needles: readonly string[], afterId: number): Iterable<LedgerRow> {
  if (!isStateDb(source)) return filterRows(source, needles, afterId);
  const contains = needles.map(() => 'instr(body, ?) > 0').join(' OR ');
  return source.db
    .prepare<[number, ...string[]], LedgerRow>(
      `SELECT id, run, seq, type, hash, body FROM ledger
        WHERE id > ? AND (type = 'run-start' OR (type IN ('call', 'intent', 'result') AND (${contains})))
        ORDER BY id`,
    )
    .iterate(afterId, ...needles);
}

function* filterRows(rows: Iterable<LedgerRow>, needles: readonly string[], afterId: number): Generator<LedgerRow> {
  for (const row of rows) {
    if (row.id <= afterId) continue;
    if (row.type === 'run-start' || (CALL_TYPES.has(row.type) && needles.some((needle) => row.body.includes(needle)))) yield row;
  }
}

const CALL_TYPES: ReadonlySet<string> = new Set(['call', 'intent', 'result']);

function isStateDb(source: LedgerSource): source is StateDb {
  return typeof (source as StateDb).db === 'object' && typeof (source as StateDb).transaction === 'function';
}

function parseRecord(row: LedgerRow): LedgerRecord {
  let record: LedgerRecord;
  try {
    record = JSON.parse(row.body) as LedgerRecord;
  } catch {
    throw new LedgerShapeError(`run ${row.run} seq ${row.seq}: the record body is not JSON; check the ledger with \`ice audit verify\``);
  }
  if (record?.type !== row.type || record.run !== row.run || record.seq !== row.seq) {
    throw new LedgerShapeError(`run ${row.run} seq ${row.seq}: the record body does not match its row; check the ledger with \`ice audit verify\``);
  }
  return record;
}

function isGrantedCall(record: LedgerRecord, wanted: ReadonlySet<string>): record is CallRecord {
  return (
    record.type === 'call' &&
    wanted.has(record.call) &&
    record.decision === 'allow' &&
    typeof record.outcome === 'object' &&
    record.outcome !== null &&
    'ok' in record.outcome &&
    Array.isArray(record.args)
  );
}

function captureMode(start: RunStartRecord): 'full' | 'digest' {
  const document = start.policy?.document as { audit?: { capture?: unknown } } | undefined;
  return document?.audit?.capture === 'digest' ? 'digest' : 'full';
}
