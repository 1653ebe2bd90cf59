/**
 * Offline verification of the hash chain. Recomputes every hash from the stored body (never trusting
 * a parsed copy) and checks the links, the seq order, the record shapes and the run-end tallies.
 * Reports the first bad record: its run, its seq (the position where the chain breaks — for a
 * missing record, the seq that is missing) and a reason. A batch row (ledger v2) is hashed whole: a
 * changed call in it is reported at the batch's first seq, with the batch's range in the reason.
 *
 * What a chain cannot show on its own: removing the newest runs, or appending a forged but
 * well-formed run at the end. Anchor the ledger root (the run-end hash a run returns) or the newest
 * run-start hash outside the database to detect those.
 */
import { DEFAULT_LIMITS } from '../policy/schema.js';
import {
  BATCH_TYPE,
  DECISION_COUNTER,
  emptyCounts,
  KEYED_CHAIN,
  recordHasher,
  type RecoveredFound,
  type RunCounts,
  type StoredBatch,
  type StoredRecord,
} from './records.js';
import type { LedgerRow } from './store.js';

/**
 * `inFlight`: how many of the runs were still being written (see the `inFlight` options), checked up
 * to their newest record but not to a run-end; present only when not zero.
 */
export type VerifyResult =
  | {
      ok: true;
      records: number;
      runs: number;
      inFlight?: number;
      /** Runs whose chain is plain SHA-256 (written before ledger keys): intact, but anyone could have rehashed them. */
      unkeyed?: number;
      /** Runs ended by recovery, with what recovery found of them. */
      recovered?: Array<{ run: string } & RecoveredFound>;
      /** The in-flight runs: when each started and its own time limit (policy limits.timeoutMs). */
      open?: Array<{ run: string; startedAt: string; timeoutMs: number }>;
    }
  | { ok: false; seq: number; run: string; reason: string };

/** How a verification knows the key, and which runs may be unkeyed. */
export interface VerifyKeyOptions {
  /** The ledger key; without it a keyed run cannot be checked and fails. */
  key?: Buffer;
}

/** Hashes of the newest records of a run kept to check a recovered run-end's `lastHash` (recovery appends few after it). */
const RECENT_HASHES = 4096;

type Failure = { seq: number; reason: string };

const DECISIONS = new Set(['allow', 'deny', 'limit', 'invalid']);
const ERROR_KINDS = new Set(['denied', 'limit', 'invalid', 'failed']);
const RUN_OUTCOMES = new Set(['ok', 'error', 'trap', 'limit', 'incomplete']);
const COUNT_KEYS: ReadonlyArray<keyof RunCounts> = ['calls', 'allowed', 'denied', 'limited', 'invalid', 'unknown'];
const INTENT_DECISIONS = new Set(['allow', 'ask']);

/** The reason reported at `seq` when its prev is not the hash of the record before it. */
export function prevMismatchReason(seq: number): string {
  return `prev does not match the hash of seq ${seq - 1}`;
}

/** The incremental state of one run's chain while its records are checked in order. */
class RunChain {
  private next = 0;
  private head = '';
  private counts = emptyCounts();
  /** Open intents: seq → call. */
  private readonly openIntents = new Map<number, string>();
  private ended = false;
  private hash: (body: string) => string = recordHasher(undefined);
  /** Set by the run-start: whether the run's chain is keyed. */
  keyed = false;
  startedAt = '';
  timeoutMs: number = DEFAULT_LIMITS.timeoutMs;
  recovered: RecoveredFound | undefined;
  private recent: string[] | undefined = [];

  constructor(
    readonly run: string,
    private readonly key: Buffer | undefined,
  ) {}

  get expectsRunStart(): boolean {
    return this.next === 0;
  }

  /**
   * Checks the next record. `startPrev`: for a run-start, the hash its prev must equal (the previous
   * run-start in the store, or null); undefined skips that check. `columns`: the row's indexed
   * columns, which must agree with the body.
   */
  check(
    hash: string,
    body: string,
    startPrev: string | null | undefined,
    columns?: { seq: number; type: string },
  ): Failure | undefined {
    const seq = this.next;
    const fail = (reason: string): Failure => ({ seq, reason });
    let unknownScheme: unknown;
    if (seq === 0) {
      const start = startOf(body);
      let scheme = start?.chain;
      // A first record that is not a run-start names no chain: read it with the key if that is how it was hashed, so
      // the failure reported is the missing run-start, not its hash.
      if (scheme === undefined && start?.type !== 'run-start' && this.key !== undefined && recordHasher(this.key)(body) === hash) scheme = KEYED_CHAIN;
      if (scheme !== undefined && this.key === undefined) {
        return fail(`keyed run (chain ${String(scheme)}): checking it needs the ledger key (<state>/ledger.key, or ICE_LEDGER_KEY)`);
      }
      if (scheme !== undefined) this.hash = recordHasher(this.key);
      if (scheme !== undefined && scheme !== KEYED_CHAIN) unknownScheme = scheme;
      this.keyed = scheme === KEYED_CHAIN;
    }
    if (this.hash(body) !== hash) return fail(batchFirst(body) === seq ? `hash does not match body (${batchRange(body)}: a record in it, or the batch, was changed)` : 'hash does not match body');
    if (unknownScheme !== undefined) return fail(`unknown chain scheme ${JSON.stringify(unknownScheme)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return fail('body is not valid JSON');
    }
    if (!isObject(parsed)) return fail('body is not a JSON object');
    const rec = parsed;
    if (rec.v === 2 && rec.type === BATCH_TYPE && seq > 0) return this.checkBatch(hash, rec, columns);
    if (rec.v !== 1) return fail(`unsupported record version ${JSON.stringify(rec.v)}`);
    if (rec.run !== this.run) return fail(`record claims run ${JSON.stringify(rec.run)}`);
    if (columns !== undefined) {
      if (columns.seq !== rec.seq) return fail(`seq column ${columns.seq} does not match body seq ${String(rec.seq)}`);
      if (columns.type !== rec.type) return fail(`type column "${columns.type}" does not match body type`);
    }
    if (this.ended) return fail('record after run-end');
    if (seq === 0 && rec.type !== 'run-start') return fail('run has no run-start record');
    if (rec.seq !== seq) return fail(`expected seq ${seq}, found ${JSON.stringify(rec.seq)}`);
    if (seq === 0) {
      if (startPrev !== undefined && rec.prev !== startPrev) {
        return fail('run-start prev does not match the previous run-start in the store');
      }
    } else if (rec.prev !== this.head) {
      return fail(prevMismatchReason(seq));
    }
    switch (rec.type) {
      case 'run-start': {
        if (seq !== 0) return fail('run-start after seq 0');
        const shape = runStartShape(rec);
        if (shape) return fail(`malformed run-start record: ${shape}`);
        this.startedAt = rec.at as string;
        this.timeoutMs = policyTimeoutMs(rec.policy);
        break;
      }
      case 'call': {
        const shape = callShape(rec);
        if (shape) return fail(`malformed call record: ${shape}`);
        this.counts.calls++;
        this.counts[DECISION_COUNTER[rec.decision as keyof typeof DECISION_COUNTER]]++;
        break;
      }
      case 'intent': {
        const shape = intentShape(rec);
        if (shape) return fail(`malformed intent record: ${shape}`);
        this.counts.calls++;
        this.openIntents.set(seq, rec.call as string);
        break;
      }
      case 'result': {
        const shape = resultShape(rec);
        if (shape) return fail(`malformed result record: ${shape}`);
        const intent = rec.intent as number;
        const call = this.openIntents.get(intent);
        if (call === undefined) return fail(`result of seq ${intent}, which is not an open intent of this run`);
        if (call !== rec.call) return fail(`result names ${JSON.stringify(rec.call)} but its intent (seq ${intent}) is ${JSON.stringify(call)}`);
        this.openIntents.delete(intent);
        this.counts[DECISION_COUNTER[rec.decision as keyof typeof DECISION_COUNTER]]++;
        break;
      }
      case 'run-end': {
        const shape = runEndShape(rec);
        if (shape) return fail(`malformed run-end record: ${shape}`);
        const claimed = rec.counts as RunCounts;
        const tallied: RunCounts = { ...this.counts, unknown: this.openIntents.size };
        const wrong = COUNT_KEYS.filter((key) => (claimed[key] ?? 0) !== tallied[key]);
        if (wrong.length > 0) {
          const detail = wrong.map((key) => `${key} ${claimed[key] ?? 0} ≠ ${tallied[key]}`).join(', ');
          return fail(`run-end counts do not match the call records (${detail})`);
        }
        const listed = JSON.stringify((rec.unknown as number[] | undefined) ?? []);
        const open = JSON.stringify([...this.openIntents.keys()].sort((a, b) => a - b));
        if (listed !== open) return fail(`run-end lists ${listed} as calls of unknown outcome, but the intents without a result are ${open}`);
        const found = rec.recovered as RecoveredFound | undefined;
        if (found !== undefined) {
          if (rec.outcome !== 'incomplete') return fail('run-end says it was recovered, but its outcome is not incomplete');
          if (found.lastSeq >= seq || found.records !== found.lastSeq + 1) return fail(`recovered run-end: found ${found.records} records up to seq ${found.lastSeq}, which this run does not have before seq ${seq}`);
          if (this.recentHash(found.lastSeq) !== found.lastHash) return fail(`recovered run-end: the hash it found at seq ${found.lastSeq} is not the hash of that record`);
          this.recovered = found;
        }
        this.ended = true;
        this.recent = undefined;
        break;
      }
      default:
        return fail(`unknown record type ${JSON.stringify(rec.type)}`);
    }
    this.head = hash;
    if (this.recent !== undefined) this.recent[seq % RECENT_HASHES] = hash;
    this.next++;
    return undefined;
  }

  /**
   * A version-2 batch row whose hash matched its body: its link, its seqs (first = the next expected,
   * the row's seq = the last), and each call in it, as a call record is checked. A failure inside names
   * the call's own seq; the hash, checked before, covers the batch as a whole.
   */
  private checkBatch(hash: string, rec: Record<string, unknown>, columns: { seq: number; type: string } | undefined): Failure | undefined {
    const first = this.next;
    const fail = (reason: string, seq = first): Failure => ({ seq, reason });
    if (rec.run !== this.run) return fail(`record claims run ${JSON.stringify(rec.run)}`);
    if (this.ended) return fail('record after run-end');
    if (rec.first !== first) return fail(`expected seq ${first}, found a batch from seq ${JSON.stringify(rec.first)}`);
    const records = rec.records;
    if (!Array.isArray(records) || records.length < 2) return fail('malformed batch: records');
    const last = first + records.length - 1;
    if (rec.seq !== last) return fail(`malformed batch: seq ${JSON.stringify(rec.seq)} is not its last record's (${last})`);
    if (columns !== undefined) {
      if (columns.seq !== last) return fail(`seq column ${columns.seq} does not match body seq ${last}`);
      if (columns.type !== BATCH_TYPE) return fail(`type column "${columns.type}" does not match body type`);
    }
    if (rec.prev !== this.head) return fail(prevMismatchReason(first));
    for (let i = 0; i < records.length; i++) {
      const seq = first + i;
      const call: unknown = records[i];
      if (!isObject(call)) return fail('malformed call record in a batch: not a JSON object', seq);
      if (call.seq !== seq) return fail(`expected seq ${seq}, found ${JSON.stringify(call.seq)}`, seq);
      if (call.type !== 'call') return fail(`a batch holds call records, found ${JSON.stringify(call.type)}`, seq);
      const shape = callShape(call);
      if (shape) return fail(`malformed call record: ${shape}`, seq);
      this.counts.calls++;
      this.counts[DECISION_COUNTER[call.decision as keyof typeof DECISION_COUNTER]]++;
      if (this.recent !== undefined) this.recent[seq % RECENT_HASHES] = hash;
    }
    this.head = hash;
    this.next = last + 1;
    return undefined;
  }

  private recentHash(seq: number): string | undefined {
    return seq < this.next && this.next - seq <= RECENT_HASHES ? this.recent?.[seq % RECENT_HASHES] : undefined;
  }

  /**
   * After the last record: a run must end with a run-end — unless it is still being written
   * (`inFlight`), when the records so far are all there is to check.
   */
  finish(inFlight = false): Failure | undefined {
    if (this.next === 0) return { seq: 0, reason: 'run has no records' };
    if (!this.ended && !inFlight) return { seq: this.next, reason: 'run has no run-end record' };
    return undefined;
  }

  /** Checked to its newest record, but not yet ended. */
  get open(): boolean {
    return !this.ended;
  }

  get records(): number {
    return this.next;
  }
}

/**
 * Verifies one run's records, given in seq order (as `LedgerStore.readRun` returns them). The
 * run-start's link to the previous run is checked only if `previousRunStart` is given (the hash of
 * the previous run-start in the store, or null for the first run); `verifyStore` checks it always.
 * `run`: the run id the records must belong to (as read, e.g. `readRun(id)`); by default the run the
 * first record claims, which a tampered first record can misstate. `inFlight`: the run is still being
 * written (it has a `running` row), so a missing run-end is expected, not a truncation.
 */
export function verifyRun(
  records: readonly StoredRecord[],
  options: VerifyKeyOptions & { previousRunStart?: string | null; run?: string; inFlight?: boolean; allowUnkeyed?: boolean } = {},
): VerifyResult {
  const first = records[0];
  if (first === undefined) return { ok: false, seq: 0, run: options.run ?? '', reason: 'run has no records' };
  const chain = new RunChain(options.run ?? claimedRun(first), options.key);
  let batch: StoredBatch | undefined;
  for (const { hash, body, batch: inBatch } of records) {
    // The calls of a batch row (readRun gives them one by one) are checked once, as the row they are.
    if (inBatch !== undefined && inBatch === batch) continue;
    batch = inBatch;
    const failure = inBatch ? chain.check(inBatch.hash, inBatch.body, undefined) : chain.check(hash, body, chain.expectsRunStart ? options.previousRunStart : undefined);
    if (failure) return { ok: false, run: chain.run, ...failure };
  }
  if (!chain.keyed && options.allowUnkeyed === false) return { ok: false, run: chain.run, seq: 0, reason: DOWNGRADED };
  const inFlight = options.inFlight === true;
  const failure = chain.finish(inFlight);
  if (failure) return { ok: false, run: chain.run, ...failure };
  return withNotes({ ok: true, records: chain.records, runs: 1 }, [chain], inFlight ? new Set([chain.run]) : undefined);
}

const DOWNGRADED =
  'unkeyed run in a keyed ledger: the run-start was rewritten without its key (chain downgraded), or it was written without one';

/**
 * Verifies every record in a store, in append order: each run's chain, and the chain of run-starts
 * (each run-start's prev is the previous run-start's hash). Streams the rows; memory grows with the
 * number of runs, not records. `inFlight`: runs still being written (the `running` table, read in the
 * same snapshot as the rows), whose missing run-end is expected; any other run without one was truncated.
 * `legacyRuns`: how many runs (in store order) may be unkeyed; if undefined, only those before the first keyed run.
 */
export function verifyStore(
  store: { rows(): Iterable<LedgerRow> },
  options: VerifyKeyOptions & { inFlight?: ReadonlySet<string>; legacyRuns?: number } = {},
): VerifyResult {
  const verifier = new StoreVerifier(options);
  for (const row of store.rows()) {
    const failure = verifier.add(row);
    if (failure) return failure;
  }
  return verifier.finish();
}

/**
 * `verifyStore` one row at a time, for rows that arrive in pages (a shared database read
 * asynchronously, cluster/verify.ts). `runStarts: 'external'`: run-starts are chained outside their
 * bodies (per agent, by the cluster's chain table), so a run-start's own `prev` is not checked here.
 */
export class StoreVerifier {
  private readonly chains = new Map<string, RunChain>();
  private previousRunStart: string | null = null;
  private recordCount = 0;
  private keyedSeen = false;

  constructor(private readonly options: VerifyKeyOptions & { inFlight?: ReadonlySet<string>; legacyRuns?: number; runStarts?: 'chained' | 'external' } = {}) {}

  /** Checks the next row in append order; a failure ends the walk. */
  add(row: LedgerRow): (VerifyResult & { ok: false }) | undefined {
    const { options } = this;
    let chain = this.chains.get(row.run);
    if (chain === undefined) {
      chain = new RunChain(row.run, options.key);
      this.chains.set(row.run, chain);
    }
    const isStart = chain.expectsRunStart;
    const before = chain.records;
    const startPrev = isStart && options.runStarts !== 'external' ? this.previousRunStart : undefined;
    const failure = chain.check(row.hash, row.body, startPrev, row);
    if (failure) return { ok: false, run: row.run, ...failure };
    if (isStart) {
      this.previousRunStart = row.hash;
      // A run rewritten unkeyed (rehashed with plain SHA-256) after keys came in is a downgrade.
      const legacy = options.legacyRuns === undefined ? !this.keyedSeen : this.chains.size <= options.legacyRuns;
      if (!chain.keyed && !legacy) return { ok: false, run: row.run, seq: 0, reason: DOWNGRADED };
      this.keyedSeen ||= chain.keyed;
    }
    this.recordCount += chain.records - before;
    return undefined;
  }

  /** After the last row: every run not in flight must have ended. */
  finish(): VerifyResult {
    for (const chain of this.chains.values()) {
      const failure = chain.finish(this.options.inFlight?.has(chain.run) === true);
      if (failure) return { ok: false, run: chain.run, ...failure };
    }
    return withNotes({ ok: true, records: this.recordCount, runs: this.chains.size }, this.chains.values(), this.options.inFlight);
  }
}

/** Adds the notes (in flight, unkeyed, recovered) only when there are some, so results of plain ledgers keep their shape. */
function withNotes(result: { ok: true; records: number; runs: number }, chains: Iterable<RunChain>, inFlight: ReadonlySet<string> | undefined): VerifyResult {
  const open: Array<{ run: string; startedAt: string; timeoutMs: number }> = [];
  const recovered: Array<{ run: string } & RecoveredFound> = [];
  let unkeyed = 0;
  for (const chain of chains) {
    if (chain.open && inFlight?.has(chain.run)) open.push({ run: chain.run, startedAt: chain.startedAt, timeoutMs: chain.timeoutMs });
    if (chain.recovered) recovered.push({ run: chain.run, ...chain.recovered });
    if (!chain.keyed) unkeyed++;
  }
  return {
    ...result,
    ...(open.length > 0 ? { inFlight: open.length, open } : {}),
    ...(unkeyed > 0 ? { unkeyed } : {}),
    ...(recovered.length > 0 ? { recovered } : {}),
  };
}

/** The type and `chain` a first record's body names, before its hash is checked (undefined: not a JSON object). */
function startOf(body: string): { type: unknown; chain: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return isObject(parsed) ? { type: parsed.type, chain: parsed.chain } : undefined;
  } catch {
    return undefined;
  }
}

/** The `first` seq a body names if it is a batch's (cheap: before the hash is trusted, for a reason's wording only). */
function batchFirst(body: string): number | undefined {
  if (!body.startsWith('{"v":2,"type":"batch"')) return undefined;
  const found = /"first":(\d+)/.exec(body);
  return found ? Number(found[1]) : undefined;
}

function batchRange(body: string): string {
  const last = /"seq":(\d+)/.exec(body)?.[1];
  return `the batch of seq ${batchFirst(body)}–${last ?? '?'}`;
}

/** A run's own time limit, from the policy its run-start recorded. */
function policyTimeoutMs(policy: unknown): number {
  const limits = isObject(policy) && isObject(policy.document) ? policy.document.limits : undefined;
  const timeoutMs = isObject(limits) ? limits.timeoutMs : undefined;
  return typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : DEFAULT_LIMITS.timeoutMs;
}

function claimedRun(record: StoredRecord): string {
  try {
    const parsed: unknown = JSON.parse(record.body);
    if (isObject(parsed) && typeof parsed.run === 'string') return parsed.run;
  } catch {
    // fall through: the chain check reports the bad body
  }
  return typeof record.record?.run === 'string' ? record.record.run : '';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isDuration = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value) && value >= 0;

function isCaptured(value: unknown, depth = 0): boolean {
  if (!isObject(value)) return false;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === 'fields') {
    // Records nest (a completion's usage); a bound keeps a forged body from recursing without end.
    const fields = value.fields;
    return depth < 8 && isObject(fields) && Object.values(fields).every((field) => isCaptured(field, depth + 1));
  }
  if (keys.length === 1 && keys[0] === 'value') {
    const v = value.value;
    return v === null || ['string', 'number', 'boolean'].includes(typeof v) || (Array.isArray(v) && v.every(isString));
  }
  if (keys.length === 1 && keys[0] === 'hex') return isString(value.hex) && /^(?:[0-9a-f]{2})*$/.test(value.hex);
  if (keys.length === 2 && isString(value.sha256) && isCount(value.size)) return /^[0-9a-f]{64}$/.test(value.sha256);
  return false;
}

/** The first malformed field of a run-start body, or undefined. */
function runStartShape(rec: Record<string, unknown>): string | undefined {
  if (!isString(rec.at)) return 'at';
  if (rec.prev !== null && !isString(rec.prev)) return 'prev';
  const { component, policy, host } = rec;
  if (!isObject(component) || !isString(component.name) || !isString(component.digest)) return 'component';
  if (!isObject(policy) || !isString(policy.digest) || !isString(policy.source)) return 'policy';
  if (!isCaptured(rec.input)) return 'input';
  if (!isObject(host) || !isString(host.ice)) return 'host';
  return undefined;
}

function callShape(rec: Record<string, unknown>): string | undefined {
  if (!isString(rec.at)) return 'at';
  if (!isString(rec.call)) return 'call';
  if (!Array.isArray(rec.args) || !rec.args.every(isCaptured)) return 'args';
  if (!isString(rec.decision) || !DECISIONS.has(rec.decision)) return 'decision';
  if (!isString(rec.rule)) return 'rule';
  if (!outcomeShapeOk(rec.outcome)) return 'outcome';
  if (!isDuration(rec.durationUs)) return 'durationUs';
  if (rec.hop !== undefined && !(isCount(rec.hop) && rec.hop > 0)) return 'hop';
  if (rec.approval !== undefined && !approvalShapeOk(rec.approval)) return 'approval';
  return undefined;
}

function intentShape(rec: Record<string, unknown>): string | undefined {
  if (!isString(rec.at)) return 'at';
  if (!isString(rec.call)) return 'call';
  if (!Array.isArray(rec.args) || !rec.args.every(isCaptured)) return 'args';
  if (!isString(rec.decision) || !INTENT_DECISIONS.has(rec.decision)) return 'decision';
  if (!isString(rec.rule)) return 'rule';
  return undefined;
}

function resultShape(rec: Record<string, unknown>): string | undefined {
  if (!isString(rec.at)) return 'at';
  if (!isString(rec.call)) return 'call';
  if (!isCount(rec.intent) || (rec.intent as number) < 1) return 'intent';
  if (!isString(rec.decision) || !DECISIONS.has(rec.decision)) return 'decision';
  if (!isString(rec.rule)) return 'rule';
  if (!outcomeShapeOk(rec.outcome)) return 'outcome';
  if (!isDuration(rec.durationUs)) return 'durationUs';
  if (rec.approval !== undefined && !approvalShapeOk(rec.approval)) return 'approval';
  return undefined;
}

function outcomeShapeOk(outcome: unknown): boolean {
  if (!isObject(outcome)) return false;
  if ('ok' in outcome) return outcome.ok === null || isCaptured(outcome.ok);
  return isObject(outcome.err) && ERROR_KINDS.has(outcome.err.kind as string) && isString(outcome.err.message);
}

function approvalShapeOk(a: unknown): boolean {
  return isObject(a) && isString(a.by) && APPROVAL_ANSWERS.has(a.answer as string) && isDuration(a.waitedMs);
}

const APPROVAL_ANSWERS: ReadonlySet<string> = new Set(['approved', 'denied', 'timeout']);

const LIMIT_KINDS: ReadonlySet<string> = new Set(['fuel', 'timeout', 'memory', 'output']);

function runEndShape(rec: Record<string, unknown>): string | undefined {
  if (!isString(rec.at)) return 'at';
  if (!isString(rec.outcome) || !RUN_OUTCOMES.has(rec.outcome)) return 'outcome';
  if (rec.blame !== undefined && rec.blame !== 'guest' && rec.blame !== 'host') return 'blame';
  if (rec.output !== undefined && !isCaptured(rec.output)) return 'output';
  if (rec.reason !== undefined && !isString(rec.reason)) return 'reason';
  if (rec.limit !== undefined && !LIMIT_KINDS.has(rec.limit as string)) return 'limit';
  if ((rec.outcome === 'limit') !== (rec.limit !== undefined)) return 'limit';
  if (rec.fuel !== undefined && !isCount(rec.fuel)) return 'fuel';
  const counts = rec.counts;
  // `unknown` is written only when not zero.
  if (!isObject(counts) || !COUNT_KEYS.every((key) => isCount(counts[key]) || (key === 'unknown' && counts[key] === undefined))) return 'counts';
  if (counts.unknown === 0) return 'counts';
  if (!isDuration(rec.durationUs)) return 'durationUs';
  const found = rec.recovered;
  if (found !== undefined && !(isObject(found) && isCount(found.records) && isCount(found.lastSeq) && isString(found.lastHash) && /^[0-9a-f]{64}$/.test(found.lastHash))) return 'recovered';
  if (rec.unknown !== undefined && !(Array.isArray(rec.unknown) && rec.unknown.length > 0 && rec.unknown.every((seq) => isCount(seq)))) return 'unknown';
  return undefined;
}
