/**
 * `ice audit tail [--after <row id>] [--json] [--state <dir> | --server <url> --token-file <file>]`:
 * follows the ledger, printing each record as it is committed (one line: run, seq, type, and the call
 * with its decision, or the run's start or outcome), until SIGINT or SIGTERM.
 *
 * Through the server's long poll (`GET /v1/ledger`) when one runs on the state dir (or with --server);
 * otherwise by polling the state database read-only, so a tail never changes what it watches. Starts
 * at the end of the ledger unless `--after` names a row id (0: from the first record); `--json` prints
 * the stored rows `{id, run, seq, type, hash, body}`, the body byte for byte as it was hashed.
 */
import type Database from 'better-sqlite3';
import { parseArgs } from 'node:util';
import { shorten, terminalSafe as clean } from '../core/text.js';
import { displayCall, formatCaptured, formatCause, formatDuration } from '../ledger/format.js';
import type { CallOutcome, Captured, LedgerRecord } from '../ledger/records.js';
import { expandRow, invokedName, type LedgerRow } from '../ledger/store.js';
import { openStateDbReadOnly } from '../storage/read-only.js';
import { UsageError, withUsage } from './args.js';
import { pause, POLL_MS, LONG_POLL_MS, stopOnSignals } from './follow.js';
import { EXIT, type Io } from './io.js';
import { checkStateDir } from './paths.js';
import { findServer, lookupServer, SERVER_OPTIONS, ServerClient, ServerError, type ServerChoice, type ServerTarget } from './server-client.js';
import { AUDIT_USAGE } from './usage.js';

const COMMAND = 'audit tail';
const PAGE = 1000;

/** Where the rows come from: `next` waits for rows after `after`, or returns none once `signal` fires. */
interface RowSource {
  readonly describe: string;
  next(after: number, signal: AbortSignal): Promise<LedgerRow[]>;
  /** One page at once, without waiting (the server's): what finding the end by reading needs. */
  page?(after: number, signal: AbortSignal): Promise<LedgerRow[]>;
}

export async function tail(argv: string[], io: Io): Promise<number> {
  const { values } = withUsage(COMMAND, AUDIT_USAGE, () =>
    parseArgs({ args: argv, options: { ...SERVER_OPTIONS, after: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: false, strict: true }),
  );
  let after = values.after === undefined ? undefined : rowId(values.after);
  const stop = stopOnSignals();
  let db: Database.Database | undefined;
  try {
    let source: RowSource;
    let recover: ((failed: RowSource) => Promise<RowSource | undefined>) | undefined;
    if (values.server !== undefined) {
      source = serverSource(findServer(COMMAND, values));
    } else {
      const stateDir = checkStateDir(COMMAND, values.state, false);
      db = openStateDbReadOnly(stateDir);
      const local = db;
      if (lookupServer(stateDir).kind === 'running') source = serverSource(findServer(COMMAND, values));
      else if (local) source = databaseSource(local, stateDir);
      else throw new UsageError(`ice ${COMMAND}: no ICE state in ${stateDir} (no ice.db), and no ice serve running there: run a component first, or pass --state <dir>`);
      if (after === undefined && local) after = lastRowId(local);
      recover = (failed) => recoverSource(stateDir, local, failed, values, stop.signal);
    }
    if (after === undefined) after = await skipToEnd(source, stop.signal);
    io.stderr(`ice ${COMMAND}: following ${source.describe} after row ${after} (Ctrl-C stops)\n`);
    while (!stop.signal.aborted) {
      let rows: LedgerRow[];
      try {
        rows = await source.next(after, stop.signal);
      } catch (error) {
        const next = error instanceof UsageError && !stop.signal.aborted ? await recover?.(source) : undefined;
        if (next === undefined) throw error;
        if (next.describe !== source.describe) io.stderr(`ice ${COMMAND}: ${source.describe} stopped answering; following ${next.describe} instead\n`);
        source = next;
        continue;
      }
      if (rows.length === 0) continue;
      io.stdout(rows.map((row) => (values.json ? JSON.stringify({ id: row.id, run: row.run, seq: row.seq, type: row.type, hash: row.hash, body: row.body }) : formatTailLine(row))).join('\n') + '\n');
      after = rows.at(-1)!.id;
    }
    return EXIT.ok;
  } finally {
    stop.dispose();
    db?.close();
  }
}

/** How long a tail on a state dir waits, after its server failed, for the server to be gone or back. */
const RECOVER_MS = 5000;

/**
 * After the server a tail on a state dir followed failed: once its server.json is gone (a server
 * that stopped), the database it wrote, polled directly; a new server there (a restart), that one.
 * Undefined when neither happens within RECOVER_MS: the failure was something else, reported as it is.
 */
async function recoverSource(stateDir: string, db: Database.Database | undefined, failed: RowSource, choice: ServerChoice, signal: AbortSignal): Promise<RowSource | undefined> {
  for (let waited = 0; waited < RECOVER_MS; waited += POLL_MS) {
    const found = lookupServer(stateDir);
    if (found.kind === 'none') return db ? databaseSource(db, stateDir) : undefined;
    const restarted = serverSource(findServer(COMMAND, choice));
    if (restarted.describe !== failed.describe) return restarted;
    if (!(await pause(POLL_MS, signal))) return undefined;
  }
  return undefined;
}

function rowId(text: string): number {
  if (!/^\d{1,15}$/u.test(text)) throw new UsageError(`ice ${COMMAND}: --after takes a ledger row id (a whole number; 0 for the first record), got ${JSON.stringify(text)}\nusage: ${AUDIT_USAGE}`);
  return Number(text);
}

function lastRowId(db: Database.Database): number {
  return (db.prepare('SELECT max(id) FROM ledger').pluck().get() as number | null) ?? 0;
}

/** With only a URL, the end of the ledger is found by reading through it (the API pages from a row id). */
async function skipToEnd(source: RowSource, signal: AbortSignal): Promise<number> {
  let after = 0;
  for (;;) {
    const rows = (await source.page?.(after, signal)) ?? [];
    if (rows.length === 0 || signal.aborted) return after;
    after = rows.at(-1)!.id;
  }
}

function databaseSource(db: Database.Database, stateDir: string): RowSource {
  const select = db.prepare<[number, number], LedgerRow>('SELECT id, run, seq, type, hash, body FROM ledger WHERE id > ? ORDER BY id LIMIT ?');
  return {
    describe: `the ledger in ${stateDir}`,
    async next(after, signal) {
      for (;;) {
        const rows = select.all(after, PAGE);
        if (rows.length > 0) return rows.flatMap(expandRow);
        if (!(await pause(POLL_MS, signal))) return [];
      }
    },
  };
}

function serverSource(target: ServerTarget): RowSource {
  const client = new ServerClient(COMMAND, target);
  const get = async (after: number, wait: number, signal: AbortSignal): Promise<LedgerRow[]> => {
    try {
      const answer = await client.get<{ records?: LedgerRow[] }>(`/v1/ledger?after=${after}&limit=${PAGE}&wait=${wait}`, { signal });
      return Array.isArray(answer.records) ? answer.records : [];
    } catch (error) {
      if (signal.aborted) return [];
      if (error instanceof ServerError) throw new UsageError(`ice ${COMMAND}: ${target.where} at ${target.url} refused to list the ledger (${error.status}): ${clean(error.message)}`);
      throw error;
    }
  };
  return {
    describe: `${target.where} at ${target.url}`,
    next: (after, signal) => get(after, LONG_POLL_MS, signal),
    page: (after, signal) => get(after, 0, signal),
  };
}

// ── one line per record ──────────────────────────────────────────────────────────────────────────

const RUN_WIDTH = 26;
const TYPE_WIDTH = 9;
const MAX_CALL = 60;
const MAX_VALUE = 40;

/** `<run>  <seq>  <type>  <what>`: fixed columns, so lines from many runs interleave readably. */
export function formatTailLine(row: LedgerRow): string {
  let what: string;
  try {
    what = describeRecord(JSON.parse(row.body) as LedgerRecord);
  } catch {
    // A body that is not a record as ICE writes it: shown as such, the tail goes on (`ice audit verify` judges it).
    what = '(body not readable as a record: `ice audit verify` checks the ledger)';
  }
  return `${clean(row.run).padEnd(RUN_WIDTH)}  ${String(row.seq).padStart(4)}  ${clean(row.type).padEnd(TYPE_WIDTH)}  ${what}`.trimEnd();
}

function describeRecord(record: LedgerRecord): string {
  switch (record.type) {
    case 'run-start': {
      const cause = record.cause ? `  ← ${formatCause(record.cause)}` : '';
      return `${clean(record.component.name)}  ${shorten(clean(invokedName(record)), MAX_CALL)}${cause}`;
    }
    case 'call':
      return `${callText(record.call, record.args)}  ${record.decision}  ${clean(record.rule)}  → ${outcomeText(record.outcome)}`;
    case 'intent':
      return `${callText(record.call, record.args)}  ${record.decision}  ${clean(record.rule)}  (its effect starts)`;
    case 'result':
      return `${clean(displayCall(record.call))} of seq ${record.intent}  ${record.decision}  ${clean(record.rule)}  → ${outcomeText(record.outcome)}`;
    case 'run-end': {
      const kind = record.limit ? ` (${record.limit})` : record.blame ? ` (${record.blame} blame)` : '';
      const reason = record.reason === undefined ? '' : `: ${shorten(clean(record.reason), MAX_VALUE * 2)}`;
      const c = record.counts;
      return `${record.outcome}${kind}${reason}  ${c.calls} call${c.calls === 1 ? '' : 's'} (${c.denied} denied)  ${formatDuration(record.durationUs)}`;
    }
    default:
      return '';
  }
}

function callText(call: string, args: readonly Captured[]): string {
  return shorten(`${clean(displayCall(call))}(${args.map((a) => formatCaptured(a, 24)).join(', ')})`, MAX_CALL);
}

function outcomeText(outcome: CallOutcome): string {
  if ('ok' in outcome) return outcome.ok === null ? 'ok' : `ok ${formatCaptured(outcome.ok, MAX_VALUE)}`;
  return shorten(`${outcome.err.kind}: ${clean(outcome.err.message)}`, MAX_VALUE * 2);
}
