/**
 * Ledger record format, version 1: the types, how values are captured into them, and how a record
 * becomes the exact JSON body whose SHA-256 is its hash.
 *
 * A run is a chain: run-start (seq 0), one call record per mediated import call (seq 1..n), run-end
 * (seq n+1). Each record's `prev` is the hash of the record before it in the run; a run-start's `prev`
 * is the hash of the previous run-start in the store (null for the first run ever), so removing a
 * whole run breaks the chain too.
 */
import * as crypto from 'node:crypto';
import { sha256Hex } from '../digest.js';

export const LEDGER_RECORD_VERSION = 1;

/**
 * A captured value: the value itself, or (digest mode) its SHA-256 and byte size, or bytes as hex.
 * Always JSON-serializable.
 */
export type Captured =
  | { value: string | number | boolean | null | string[] }
  | { sha256: string; size: number }
  | { hex: string }
  /** A WIT record (an http request, a model completion): each field captured by the same rules. */
  | { fields: { [name: string]: Captured } };

export type CaptureMode = 'full' | 'digest';

export type Decision = 'allow' | 'deny' | 'limit' | 'invalid';
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
  calls: number;
  allowed: number;
  denied: number;
  limited: number;
  invalid: number;
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
  host: { ice: string };
}

export type CallOutcome = { ok: Captured | null } | { err: { kind: CallErrorKind; message: string } };

export interface CallRecord {
  v: 1;
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

export interface Approval {
  /** Who or what answered: the CLI's prompt (`terminal`), `--approve all|none`, or the library callback's name. */
  by: string;
  answer: 'approved' | 'denied' | 'timeout';
  /** How long the run waited for the answer. */
  waitedMs: number;
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
}

export type LedgerRecord = RunStartRecord | CallRecord | RunEndRecord;

/** A record as stored: its hash, the exact body that was hashed, and the parsed body. */
export interface StoredRecord {
  hash: string;
  body: string;
  record: LedgerRecord;
}

/** What `LedgerStore.startRun` needs from the caller. */
export type RunStartInput = Omit<RunStartRecord, 'v' | 'type' | 'seq' | 'prev' | 'at'> & { run: string };
/** What `RunWriter.appendCall` needs from the caller. */
export type CallInput = Omit<CallRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at'> & {
  /** When the call was made (ISO 8601); default: when the record is written. Set when records are queued. */
  at?: string;
};
/**
 * What `RunWriter.end` needs from the caller. `counts` may be left out: the writer tallies the call
 * records it wrote; if given, it must equal that tally.
 */
export type RunEndInput = Omit<RunEndRecord, 'v' | 'type' | 'run' | 'seq' | 'prev' | 'at' | 'counts'> & {
  counts?: RunCounts;
};

export { sha256Hex };

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

/** A value a capability call may take or return; a plain object is a WIT record. */
export type Capturable =
  | string
  | number
  | bigint
  | boolean
  | Uint8Array
  | readonly string[]
  | null
  | undefined
  | { readonly [field: string]: Capturable };

/**
 * Captures a call argument or result for the ledger.
 *
 * - `full`: strings, booleans, string lists as `{ value }`; bytes as `{ hex }`.
 * - `digest`: strings, string lists and bytes as `{ sha256, size }` — the digest and byte size of the
 *   UTF-8 text (a string list: of its JSON text, e.g. `["a","b"]`; bytes: of the bytes), so the record
 *   proves what was passed without holding it.
 * - `maxBytes` (audit.maxCaptureBytes): in `full` mode too, a string, list or byte array over this many
 *   bytes is recorded as `{ sha256, size }`, so a guest cannot make the ledger hold megabytes per call.
 * - In both modes numbers, bigints, booleans and null/undefined are kept as values: they are small,
 *   fixed-size, carry no free text, and replay needs them (clock readings, random u64s). A bigint is
 *   its decimal string (`{ value: "1732614780123456789" }`); a non-finite number is its name
 *   (`"NaN"`, `"Infinity"`, `"-Infinity"`), since JSON has no such numbers.
 */
export function capture(value: Capturable, mode: CaptureMode, maxBytes: number = Number.POSITIVE_INFINITY): Captured {
  if (value === undefined || value === null) return { value: null };
  switch (typeof value) {
    case 'number':
      return { value: Number.isFinite(value) ? value : String(value) };
    case 'bigint':
      return { value: value.toString(10) };
    case 'boolean':
      return { value };
    case 'string':
      // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: the exact count is only needed near the cap.
      return mode === 'full' && (value.length * 3 <= maxBytes || Buffer.byteLength(value, 'utf8') <= maxBytes)
        ? { value }
        : digestOf(value);
  }
  if (value instanceof Uint8Array) {
    return mode === 'full' && value.byteLength <= maxBytes
      ? { hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') }
      : digestOf(value);
  }
  if (Array.isArray(value)) {
    const list = value.map(String);
    const json = JSON.stringify(list);
    return mode === 'full' && Buffer.byteLength(json, 'utf8') <= maxBytes ? { value: list } : digestOf(json);
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    // Each field by the same rules (and the same cap), so a record's small fields (a method, a status)
    // stay readable while a large body becomes its digest.
    const fields: { [name: string]: Captured } = {};
    for (const [name, field] of Object.entries(value as { readonly [field: string]: Capturable })) fields[name] = capture(field, mode, maxBytes);
    return { fields };
  }
  throw new TypeError(`capture: unsupported value of type ${typeof value}`);
}

function digestOf(data: string | Uint8Array): Captured {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { sha256: sha256Hex(bytes), size: bytes.byteLength };
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
        host: { ice: record.host.ice },
      });
    case 'call':
      // The hot path (one per import call): the same text JSON.stringify would produce for the object
      // with these keys in this order, built without the intermediate object. `serializeRecord` callers
      // have checked the field types (see `checkCallInput`), so no field is undefined.
      return (
        `{"v":${record.v},"type":"call","run":${JSON.stringify(record.run)},"seq":${record.seq},` +
        `"at":${JSON.stringify(record.at)},"prev":${JSON.stringify(record.prev)},` +
        `"call":${JSON.stringify(record.call)},"args":${JSON.stringify(record.args)},` +
        `"decision":${JSON.stringify(record.decision)},"rule":${JSON.stringify(record.rule)},` +
        `"outcome":${JSON.stringify(record.outcome)},"durationUs":${JSON.stringify(record.durationUs)}` +
        (record.hop === undefined ? '' : `,"hop":${JSON.stringify(record.hop)}`) +
        (record.approval === undefined
          ? ''
          : `,"approval":${JSON.stringify({ by: record.approval.by, answer: record.approval.answer, waitedMs: record.approval.waitedMs })}`) +
        '}'
      );
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
        },
        fuel: record.fuel,
        durationUs: record.durationUs,
      });
  }
}

/** Which counter of `RunCounts` a decision increments (besides `calls`). */
export const DECISION_COUNTER: Record<Decision, Exclude<keyof RunCounts, 'calls'>> = {
  allow: 'allowed',
  deny: 'denied',
  limit: 'limited',
  invalid: 'invalid',
};

export function emptyCounts(): RunCounts {
  return { calls: 0, allowed: 0, denied: 0, limited: 0, invalid: 0 };
}
