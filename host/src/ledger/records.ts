/**
 * Ledger record format, versions 1 and 2: the types, and how a record becomes the exact JSON body whose
 * SHA-256 (HMAC-SHA256 for a keyed run) is its hash.
 *
 * A run is a chain: run-start (seq 0), the records of its import calls (seq 1..n), run-end (seq n+1).
 * A call is one `call` record, or — when its effect leaves the run (an HTTP request, a model call, an
 * approval) — an `intent` record, durable before the effect starts, and a `result` record after it. A
 * run stopped in between keeps the intent: its run-end lists the seq in `unknown`, the calls whose
 * outcome the ledger cannot know. Each record's `prev` is the hash of the record before it in the run;
 * a run-start's `prev` is the hash of the previous run-start in the store (null for the first run
 * ever), so removing a whole run breaks the chain too.
 *
 * Version 1 gained the `intent` and `result` types and the run-end's `unknown` (and `counts.unknown`)
 * without changing any existing field: records written before them read and verify as they always did.
 *
 * Version 2 adds one row type, `batch`: consecutive call records of a run committed together (a flush
 * of buffered-writer.ts) stored as one row and hashed once — `{"v":2,"type":"batch","run","seq": last,
 * "first","prev","records":[…]}`, each element a call record without the fields the batch carries
 * (`v`, `run`, `prev`). The batch's hash is the chain link, as a record's is: the next row's `prev`
 * names it. Everything else (run-start, run-end, intents, results, the record of a state write) stays a
 * version-1 row, so a reader of either version sees the same records; a version-1 ledger is a
 * version-2 ledger without batches. What a batch costs: a tampered call inside it is named by its
 * batch (seq first–last), not by its own seq — the hash covers the batch, not each record.
 */
import * as crypto from 'node:crypto';
import type { Captured } from '../core/capture.js';
import type { ApprovalRecord, Decision } from '../core/verdict.js';

export type { Captured, Capturable, CaptureMode } from '../core/capture.js';
export { capture } from '../core/capture.js';
export type { Decision } from '../core/verdict.js';
export { sha256Hex } from '../core/digest.js';
import { sha256Hex } from '../core/digest.js';

export const LEDGER_RECORD_VERSION = 1;

export type CallErrorKind = 'denied' | 'limit' | 'invalid' | 'failed';
/**
 * incomplete: the process running the run stopped (killed, crashed) before its run-end; written by the
 * next host to open the state, after every record the run had committed.
 */
export type RunOutcome = 'ok' | 'error' | 'trap' | 'limit' | 'incomplete';
/** Which run limit ended a run with outcome `limit` (policy `limits.*`). */
export type LimitKind = 'fuel' | 'timeout' | 'memory' | 'output';
export type Blame = 'guest' | 'host';

export interface RunCounts {
  /** Import calls: `call` records plus `intent` records (a call whose effect left the run). */
  calls: number;
  allowed: number;
  denied: number;
  limited: number;
  invalid: number;
  /** Intents without a result: calls whose outcome is unknown. Present only when not zero. */
  unknown?: number;
}

export interface RunStartRecord {
  v: 1;
  type: 'run-start';
  run: string;
  seq: 0;
  at: string;
  prev: string | null;
  component: { name: string; digest: string };
  policy: { digest: string; source: string; document: unknown };
  input: Captured;
  /**
   * What the run called, when not the ICE world's `run(input)`: a typed export (its arguments are the
   * input, as JSON), or a WASI command (its arguments; the input is its stdin).
   */
  invoke?: RunInvoke;
  /**
   * Why the run happened, when something other than a direct request made it: an event another run
   * emitted, a schedule, a webhook, an operator (`ice serve`'s triggers); for a lifecycle record, what
   * caused the transition. Absent for runs a user started directly.
   */
  cause?: RunCause;
  host: { ice: string };
  /**
   * How this run's record hashes are made. `hmac-sha256`: HMAC-SHA256 of the body with the ledger key
   * (kept outside the database, storage/ledger-key.ts). Absent: plain SHA-256 (runs written before keys).
   */
  chain?: ChainScheme;
}

export type RunInvoke =
  | { kind: 'call'; function: string; interface?: string }
  | { kind: 'command'; export: string; args: string[] }
  /** An operator's action on a component's data (views/kv-operator.ts): no component ran. */
  | { kind: 'operator'; by: string; action: string }
  /** A served agent's lifecycle transition (serve/lifecycle): no component ran; `cause` says why. */
  | { kind: 'lifecycle'; agent: string; from: AgentState | null; to: AgentState }
  /** A trigger `ice serve` refused (a webhook that failed its check, a full queue): no component ran. */
  | { kind: 'refused'; agent: string; trigger: TriggerKind; reason: string };

/** The states of a served agent: deployed → active ⇄ suspended → stopped, and quarantined after faults. */
export type AgentState = 'deployed' | 'active' | 'suspended' | 'quarantined' | 'stopped';

/** What can start a served agent's run. */
export type TriggerKind = 'event' | 'schedule' | 'webhook' | 'manual' | 'mcp';

/**
 * Why a run (or a lifecycle transition) happened. `event`: a delivery of the event `run`#`seq` emitted
 * (its id is `<run>#<seq>`), `attempt` counting from 1 (a run cut off by a crash is delivered again);
 * `schedule`: the cron expression and the time it was due; `webhook`: the path it arrived on;
 * `manual`/`operator`: who; `fault`: the run whose fault it was; `upgrade`: both component digests.
 */
export type RunCause =
  | { kind: 'event'; event: string; run: string; seq: number; eventKind: string; attempt: number }
  | { kind: 'schedule'; schedule: string; due: string }
  | { kind: 'webhook'; path: string }
  | { kind: 'manual'; by: string }
  | { kind: 'mcp'; tool: string }
  | { kind: 'operator'; by: string; reason?: string }
  | { kind: 'fault'; run: string; faults: number; windowMs: number }
  | { kind: 'upgrade'; by: string; from: string; to: string; replayed: number; diverged: number; forced: boolean }
  | { kind: 'config'; source: string };

export type ChainScheme = 'hmac-sha256';
export const KEYED_CHAIN: ChainScheme = 'hmac-sha256';

/** What recovery found of a run whose process stopped: the records it had, the last one's seq and hash. */
export interface RecoveredFound {
  records: number;
  lastSeq: number;
  lastHash: string;
}

export type CallOutcome = { ok: Captured | null } | { err: { kind: CallErrorKind; message: string } };

export interface CallRecord {
  /** 2: the call was stored in a batch (its `prev` is then the batch's). */
  v: 1 | 2;
  type: 'call';
  run: string;
  seq: number;
  at: string;
  prev: string;
  /** `interface#function` with the interface fully qualified, e.g. `ice:agent/kv@0.1.0#get`. */
  call: string;
  /** In WIT parameter order. */
  args: Captured[];
  decision: Decision;
  /** The rule that decided, e.g. `grants.kv.read[1]`, `grants.log.maxCalls`. */
  rule: string;
  outcome: CallOutcome;
  durationUs: number;
  /**
   * A redirect the host followed for the call before it (hop 1, 2, ...): a record of its own, decided
   * again against the whole policy. The guest's answer is the outcome of the call's last hop.
   */
  hop?: number;
  /** For a call an `ask` rule sent to the host's approver: who answered, and how. */
  approval?: Approval;
}

/** Who answered an ask (the CLI's prompt `terminal`, `--approve all|none`, or the library callback's name), how, and how long the run waited. */
export type Approval = ApprovalRecord;

/**
 * Made durable (the run's intent log, then the ledger) before an effect that leaves the run starts
 * (`decision: allow`), or before the host's approver is asked (`decision: ask`): the arguments and the
 * rule, so a run stopped during the effect still shows what it set out to do.
 */
export interface IntentRecord {
  v: 1;
  type: 'intent';
  run: string;
  seq: number;
  at: string;
  prev: string;
  call: string;
  args: Captured[];
  decision: IntentDecision;
  rule: string;
}

export type IntentDecision = 'allow' | 'ask';

/** How the call an `intent` announced ended: its final decision (an ask's answer), outcome and duration. */
export interface ResultRecord {
  v: 1;
  type: 'result';
  run: string;
  seq: number;
  at: string;
  prev: string;
  /** The same `interface#function` as its intent (so a reader or a filter needs no lookup). */
  call: string;
  /** The seq of the intent this completes. */
  intent: number;
  decision: Decision;
  rule: string;
  outcome: CallOutcome;
  /** From the intent to the end of the effect. */
  durationUs: number;
  approval?: Approval;
}

export interface RunEndRecord {
  v: 1;
  type: 'run-end';
  run: string;
  seq: number;
  at: string;
  prev: string;
  /** ok: the guest returned ok; error: the guest returned err; trap: guest trap or host fault. */
  outcome: RunOutcome;
  /** For trap: whose fault. */
  blame?: Blame;
  /** The ok output or the err message. */
  output?: Captured;
  /** Trap or limit message. */
  reason?: string;
  /** For limit: which one. */
  limit?: LimitKind;
  counts: RunCounts;
  /** Fuel the guest used (absent when the run was stopped from outside, by its timeout). */
  fuel?: number;
  durationUs: number;
  /** Seqs of the intents without a result: the run stopped during their effect (absent when none). */
  unknown?: number[];
  /** For a run ended by recovery (outcome incomplete): what the ledger held of it when recovery began. */
  recovered?: RecoveredFound;
}

export type LedgerRecord = RunStartRecord | CallRecord | IntentRecord | ResultRecord | RunEndRecord;

/**
 * A record as stored: its hash, the exact body that was hashed, and the parsed body. A call stored in
 * a batch has the batch's hash, its own element's text as `body`, and `batch`: the row that was hashed.
 */
export interface StoredRecord {
  hash: string;
  body: string;
  record: LedgerRecord;
  batch?: StoredBatch;
}

/** A version-2 batch row: its hash, the exact body that was hashed, and the seqs of its records. */
export interface StoredBatch {
  readonly hash: string;
  readonly body: string;
  readonly first: number;
  readonly last: number;
}

export const BATCH_TYPE = 'batch';

/** A batch body as parsed (before its records are checked). */
export interface BatchRecord {
  v: 2;
  type: 'batch';
  run: string;
  /** The last record's seq (the row's seq column, so a run's newest row has its newest seq). */
  seq: number;
  first: number;
  prev: string;
  records: unknown[];
}

/** What `LedgerStore.startRun` needs from the caller. */
export type RunStartInput = Omit<RunStartRecord, 'v' | 'type' | 'seq' | 'prev' | 'at'> & {
  run: string;
  /** When the run started (ISO 8601); default: when the record is written. */
  at?: string;
};
/** What `RunWriter.appendCall` needs from the caller. */
export type CallInput = Omit<CallRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at'> & {
  /** When the call was made (ISO 8601); default: when the record is written. Set when records are queued. */
  at?: string;
};
/** What `RunWriter.appendIntent` needs. */
export type IntentInput = Omit<IntentRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at'> & { at?: string };
/** What `RunWriter.appendResult` needs. */
export type ResultInput = Omit<ResultRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at'> & { at?: string };
/** A record a run's writer queues: a call, an intent, or the result of an earlier intent. */
export type QueuedInput = CallInput | IntentInput | ResultInput;

/** Which record a queued input becomes: a result has `intent`, a call has `outcome`, an intent neither. */
export function queuedType(input: QueuedInput): 'call' | 'intent' | 'result' {
  if ((input as ResultInput).intent !== undefined) return 'result';
  return (input as CallInput).outcome === undefined ? 'intent' : 'call';
}
/**
 * What `RunWriter.end` needs from the caller. `counts` may be left out: the writer tallies the call
 * records it wrote; if given, it must equal that tally. `unknown` is the writer's too (its open intents).
 */
export type RunEndInput = Omit<RunEndRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at' | 'counts' | 'unknown'> & {
  counts?: RunCounts;
};

let lastIsoMs = -1;
let lastIso = '';

/** The current time as an ISO 8601 string; cached per millisecond (a record append is ~µs). */
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastIsoMs) {
    lastIsoMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let lastIdTime = -1;
let lastIdRandom: Uint8Array = new Uint8Array(10);

/**
 * A new run id: a ULID (26 Crockford base32 characters: 48-bit millisecond time, then 80 random bits).
 * Ids sort by creation time; ids made in the same millisecond by this thread sort in creation order.
 */
export function newRunId(now: number = Date.now()): string {
  let random: Uint8Array;
  if (now <= lastIdTime) {
    // Same (or earlier: clock step back) millisecond: increment the previous random part.
    random = lastIdRandom.slice();
    let i = random.length - 1;
    while (i >= 0 && random[i] === 0xff) random[i--] = 0;
    if (i < 0) throw new Error('newRunId: random part overflowed within one millisecond');
    random[i] = random[i]! + 1;
    now = lastIdTime;
  } else {
    random = crypto.randomBytes(10);
  }
  lastIdTime = now;
  lastIdRandom = random;
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32]! + time;
  let bits = 0n;
  for (const byte of random) bits = (bits << 8n) | BigInt(byte);
  let rand = '';
  for (let i = 0; i < 16; i++, bits >>= 5n) rand = CROCKFORD[Number(bits & 31n)]! + rand;
  return time + rand;
}

/**
 * The body of a record: its JSON text with keys in a fixed order (v, type, run, seq, at, prev, then the
 * record's own fields). The body is stored verbatim and hashed; verification never re-serializes.
 */
export function serializeRecord(record: LedgerRecord): string {
  switch (record.type) {
    case 'run-start':
      return JSON.stringify({
        v: record.v,
        type: record.type,
        run: record.run,
        seq: record.seq,
        at: record.at,
        prev: record.prev,
        component: { name: record.component.name, digest: record.component.digest },
        policy: { digest: record.policy.digest, source: record.policy.source, document: record.policy.document },
        input: record.input,
        invoke: record.invoke,
        cause: record.cause,
        host: { ice: record.host.ice },
        chain: record.chain,
      });
    case 'call':
      // The hot path (one per import call): the same text JSON.stringify would produce for the object
      // with these keys in this order, built without the intermediate object. `serializeRecord` callers
      // have checked the field types (see `checkCallInput`), so no field is undefined.
      return (
        `{"v":${record.v},"type":"call","run":${JSON.stringify(record.run)},"seq":${record.seq},` +
        `"at":${JSON.stringify(record.at)},"prev":${JSON.stringify(record.prev)},${callFields(record)}`
      );
    case 'intent':
      return JSON.stringify({
        v: record.v,
        type: record.type,
        run: record.run,
        seq: record.seq,
        at: record.at,
        prev: record.prev,
        call: record.call,
        args: record.args,
        decision: record.decision,
        rule: record.rule,
      });
    case 'result':
      return JSON.stringify({
        v: record.v,
        type: record.type,
        run: record.run,
        seq: record.seq,
        at: record.at,
        prev: record.prev,
        call: record.call,
        intent: record.intent,
        decision: record.decision,
        rule: record.rule,
        outcome: record.outcome,
        durationUs: record.durationUs,
        approval: record.approval && { by: record.approval.by, answer: record.approval.answer, waitedMs: record.approval.waitedMs },
      });
    case 'run-end':
      return JSON.stringify({
        v: record.v,
        type: record.type,
        run: record.run,
        seq: record.seq,
        at: record.at,
        prev: record.prev,
        outcome: record.outcome,
        blame: record.blame,
        output: record.output,
        reason: record.reason,
        limit: record.limit,
        counts: {
          calls: record.counts.calls,
          allowed: record.counts.allowed,
          denied: record.counts.denied,
          limited: record.counts.limited,
          invalid: record.counts.invalid,
          // Only when some call's outcome is unknown: a run-end without one reads as it always did.
          unknown: record.counts.unknown || undefined,
        },
        fuel: record.fuel,
        durationUs: record.durationUs,
        unknown: record.unknown !== undefined && record.unknown.length > 0 ? [...record.unknown] : undefined,
        recovered: record.recovered && { records: record.recovered.records, lastSeq: record.recovered.lastSeq, lastHash: record.recovered.lastHash },
      });
  }
}

/**
 * One call of a batch, as its element of the batch body: the call record's text without `v`, `run` and
 * `prev` (the batch has them). Fields in the order of a version-1 call record.
 */
export function serializeBatchedCall(seq: number, input: CallInput, at: string): string {
  return `{"seq":${seq},"type":"call","at":${jsonOfRepeated(at)},${callFields(input)}`;
}

/**
 * A call record's own fields, from `call` to the closing brace, in their fixed order: the same text in a
 * version-1 row and in a batch. Callers have checked the field types (see `checkCallInput`).
 */
function callFields(call: CallInput): string {
  return (
    `"call":${jsonOfRepeated(call.call)},"args":${JSON.stringify(call.args)},` +
    `"decision":${jsonOfRepeated(call.decision)},"rule":${jsonOfRepeated(call.rule)},` +
    `"outcome":${JSON.stringify(call.outcome)},"durationUs":${JSON.stringify(call.durationUs)}` +
    (call.hop === undefined ? '' : `,"hop":${JSON.stringify(call.hop)}`) +
    (call.approval === undefined
      ? ''
      : `,"approval":${JSON.stringify({ by: call.approval.by, answer: call.approval.answer, waitedMs: call.approval.waitedMs })}`) +
    '}'
  );
}

/**
 * JSON text of a string a batch repeats (a call's name, rule, decision, the millisecond it was made):
 * looked up rather than escaped again (a fifth of serializing a call). Bounded; strings are immutable,
 * so a cached text is always the string's.
 */
const repeatedJson = new Map<string, string>();
function jsonOfRepeated(text: string): string {
  let json = repeatedJson.get(text);
  if (json === undefined) {
    json = JSON.stringify(text);
    if (repeatedJson.size >= 4096) repeatedJson.clear();
    repeatedJson.set(text, json);
  }
  return json;
}

/** A batch row's body around its serialized calls (`elements`, from `serializeBatchedCall`). */
export function serializeBatch(run: string, first: number, last: number, prev: string, elements: readonly string[]): string {
  return `{"v":2,"type":"batch","run":${JSON.stringify(run)},"seq":${last},"first":${first},"prev":${JSON.stringify(prev)},"records":[${elements.join(',')}]}`;
}

/**
 * The records of a batch row, each a call record as a reader sees one (`v: 2`, the batch's `prev`), with
 * `batch` set; undefined when the body is not a well-formed batch (verify says why).
 */
export function expandBatch(hash: string, body: string): StoredRecord[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const b = parsed as Partial<BatchRecord> | null;
  if (b === null || typeof b !== 'object' || b.type !== BATCH_TYPE || !Array.isArray(b.records) || typeof b.first !== 'number' || typeof b.seq !== 'number') return undefined;
  const batch: StoredBatch = { hash, body, first: b.first, last: b.seq };
  return b.records.map((element) => {
    const inner = (element ?? {}) as Record<string, unknown>;
    const record = { v: 2, type: 'call', run: b.run, ...inner, prev: b.prev } as unknown as CallRecord;
    return { hash, body: JSON.stringify(element), record, batch };
  });
}

/**
 * The records a row holds: itself, or the calls of a batch row. A batch whose body is not a batch
 * (tampered) is kept as one record, for verify to report.
 */
export function storedRecords(type: string, hash: string, body: string): StoredRecord[] {
  if (type === BATCH_TYPE) {
    const expanded = expandBatch(hash, body);
    if (expanded !== undefined && expanded.length > 0) return expanded;
  }
  let record: LedgerRecord;
  try {
    record = JSON.parse(body) as LedgerRecord;
  } catch {
    record = {} as LedgerRecord;
  }
  return [{ hash, body, record }];
}

/**
 * The hash function of a run's chain: HMAC-SHA256 with `key` for a keyed run, SHA-256 for an unkeyed one.
 * Rewriting a keyed record and rehashing the rest needs the key, which is not in the database.
 */
export function recordHasher(key: Buffer | undefined): (body: string) => string {
  if (key === undefined) return sha256Hex;
  return (body) => crypto.createHmac('sha256', key).update(body).digest('hex');
}

/** Which counter of `RunCounts` a decision increments (besides `calls`). */
export const DECISION_COUNTER: Record<Decision, Exclude<keyof RunCounts, 'calls' | 'unknown'>> = {
  allow: 'allowed',
  deny: 'denied',
  limit: 'limited',
  invalid: 'invalid',
};

export function emptyCounts(): RunCounts {
  return { calls: 0, allowed: 0, denied: 0, limited: 0, invalid: 0 };
}
