/**
 * `ice audit list | show | verify | export | trace | tail`: read, check and hand over the ledger in
 * `<state>/ice.db`. Nothing here writes to the ledger; every check is offline (`ledger/verify.ts`,
 * `ledger/export.ts`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ICE_CAPABILITY_NAMES } from '../capabilities/registry.js';
import { ICE_PACKAGE } from '../core/world.js';
import { exportJsonl, verifyExport } from '../ledger/export.js';
import { formatCause, formatRunList, formatStoredRunTable, type CallFilter, type RunListRow } from '../ledger/format.js';
import { causedRuns, DEFAULT_TRACE_BOUNDS, type TracedRun } from '../ledger/trace.js';
import { shorten, terminalSafe as clean, width } from '../core/text.js';
import {
  ledgerCalls,
  LedgerStore,
  verifyRun,
  verifyStore,
  type LedgerCall,
  type RunEndRecord,
  type RunSummary,
  type StoredRecord,
  type VerifyResult,
} from '../ledger/index.js';
import { openStateDb, type StateDb } from '../storage/db.js';
import { LedgerKeyError, readLedgerKey } from '../storage/ledger-key.js';
import { processAlive } from '../ledger/recover.js';
import { onePositional, withUsage, UsageError } from './args.js';
import { EXIT, type Io } from './io.js';
import { AUDIT_USAGE } from './usage.js';
import { checkStateDir } from './paths.js';
import { pathProblem } from '../core/path-problem.js';

type Subcommand = (argv: string[], io: Io) => number | Promise<number>;

const SUBCOMMANDS: Record<string, Subcommand> = {
  list,
  show,
  // --db: a cluster's shared ledger (loaded on demand: it talks to PostgreSQL).
  verify: async (argv, io) => (argv.some((a) => a === '--db' || a.startsWith('--db=')) ? (await import('./audit-db.js')).verifyShared(argv, io) : verify(argv, io)),
  export: exportRun,
  trace,
  // Loaded on demand: it is the one subcommand that may talk HTTP.
  tail: async (argv, io) => (await import('./audit-tail.js')).tail(argv, io),
};

export async function auditCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  const subcommand = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (!subcommand) {
    const problem = sub ? `unknown subcommand "${sub}"` : 'missing subcommand';
    throw new UsageError(`ice audit: ${problem} (one of: ${Object.keys(SUBCOMMANDS).join(', ')})\nusage: ${AUDIT_USAGE}`);
  }
  return subcommand(rest, io);
}

const DEFAULT_LIST_LIMIT = 50;

/** `ice audit list [--limit <n>] [--state <dir>]`: the newest runs, one line each. */
function list(argv: string[], io: Io): number {
  const { values } = parse('audit list', argv, { limit: { type: 'string' }, state: { type: 'string' } }, false);
  const limit = values.limit === undefined ? DEFAULT_LIST_LIMIT : positiveInteger('audit list', '--limit', values.limit);
  return withLedger('audit list', values.state, (ledger, state) => {
    const rows = readConsistently(state, () => {
      const inFlight = runsInFlight(state);
      const runEnd = runEndReader(state);
      return { total: countRuns(state), rows: ledger.listRuns(limit).map((run) => listRow(ledger, run, inFlight, runEnd)) };
    });
    io.stdout(formatRunList(rows.rows, rows.total));
    return EXIT.ok;
  });
}

/** What `listRuns` does not carry: the limit kind and the denied count, from the run-end (or the calls so far). */
function listRow(
  ledger: LedgerStore,
  run: RunSummary,
  inFlight: ReadonlySet<string>,
  runEnd: (run: string) => RunEndRecord | undefined,
): RunListRow {
  const row = { run: run.run, component: run.component.name, invoked: run.invoked, startedAt: run.startedAt, calls: run.calls };
  if (run.outcome === 'unfinished') {
    // Rare (a run being written, or a truncated one): reading its calls is the only way to count them.
    const denied = ledgerCalls(ledger.readRun(run.run).map((r) => r.record)).filter((c) => c.decision === 'deny').length;
    return { ...row, outcome: inFlight.has(run.run) ? 'unfinished (in flight)' : 'unfinished', denied };
  }
  const end = runEnd(run.run);
  const outcome = end?.limit === undefined ? run.outcome : `${run.outcome} (${end.limit})`;
  return { ...row, outcome, denied: end?.counts.denied ?? 0 };
}

/**
 * Reads a finished run's run-end record. By its own indexed query rather than `readRun`, which would
 * parse every call record of the run (tens of thousands for a busy one) to use only the last.
 */
function runEndReader(state: StateDb): (run: string) => RunEndRecord | undefined {
  const select = state.db.prepare("SELECT body FROM ledger WHERE run = ? AND type = 'run-end'").pluck();
  return (run) => {
    const body = select.get(run) as string | undefined;
    return body === undefined ? undefined : (JSON.parse(body) as RunEndRecord);
  };
}

function countRuns(state: StateDb): number {
  return state.db.prepare("SELECT count(*) FROM ledger WHERE type = 'run-start'").pluck().get() as number;
}

/** `ice audit show <run-id | last> [--json] [--denied] [--interface <name>] [--state <dir>]` */
function show(argv: string[], io: Io): number {
  const { values, positionals } = parse(
    'audit show',
    argv,
    { json: { type: 'boolean', default: false }, denied: { type: 'boolean', default: false }, interface: { type: 'string' }, state: { type: 'string' } },
    true,
  );
  const wanted = onePositional('audit show', positionals, 'run id (or `last`)', AUDIT_USAGE);
  const filter = callFilter(values.denied === true, values.interface);
  return withLedger('audit show', values.state, (ledger) => {
    const { records } = readWantedRun('audit show', ledger, wanted);
    if (values.json) {
      // run-start and run-end always; the filter applies to calls (an intent and its result go together).
      const kept = filter ? keptSeqs(records, filter) : undefined;
      const shown = kept ? records.filter((r) => r.record.type === 'run-start' || r.record.type === 'run-end' || kept.has(r.record.seq)) : records;
      io.stdout(exportJsonl(shown));
    } else {
      io.stdout(`${formatStoredRunTable(records, filter ? { filter } : {})}\n`);
    }
    return EXIT.ok;
  });
}

/** The seqs of the records of the calls `filter` keeps: a call record, or an intent and its result. */
function keptSeqs(records: readonly StoredRecord[], filter: CallFilter): ReadonlySet<number> {
  const kept = new Set<number>();
  for (const call of ledgerCalls(records.map((r) => r.record))) {
    if (!filter.keep(call)) continue;
    kept.add(call.seq);
    if (call.resultSeq !== undefined) kept.add(call.resultSeq);
  }
  return kept;
}

/** `--denied` and `--interface <name>` as one filter (both must match), or undefined for neither. */
function callFilter(denied: boolean, iface: string | undefined): CallFilter | undefined {
  const tests: Array<(c: LedgerCall) => boolean> = [];
  const labels: string[] = [];
  if (denied) {
    tests.push((c) => c.decision === 'deny' || c.decision === 'limit' || c.decision === 'invalid');
    labels.push('--denied');
  }
  if (iface !== undefined) {
    if (!ICE_CAPABILITY_NAMES.includes(iface)) {
      throw new UsageError(
        `ice audit show: unknown --interface ${JSON.stringify(iface)}: use one of ${ICE_CAPABILITY_NAMES.join(', ')}\nusage: ${AUDIT_USAGE}`,
      );
    }
    // Any version of the interface: a ledger outlives the ICE that wrote it.
    const prefix = `${ICE_PACKAGE}/${iface}@`;
    tests.push((c) => c.call.startsWith(prefix) && c.call.indexOf('#', prefix.length) > 0);
    labels.push(`--interface ${iface}`);
  }
  if (tests.length === 0) return undefined;
  return { keep: (c) => tests.every((test) => test(c)), label: labels.join(' ') };
}

/**
 * `ice audit verify [<run-id> [--root <hex>] | --all | --file <export.jsonl>] [--state <dir>]`
 *
 * Exit codes: 0 every run checked, keyed and ended by its own host; 1 a check failed (tampering, a
 * truncation, a --root mismatch); 2 usage; 4 the chain is intact but needs a look: a run ended by
 * recovery, or a run in flight (or stale: its process alive past its own time limit). Unkeyed runs older
 * than the ledger key (its file's `legacyRuns`) pass, with a note on stderr; a later unkeyed run fails.
 */
function verify(argv: string[], io: Io): number {
  const { values, positionals } = parse(
    'audit verify',
    argv,
    { all: { type: 'boolean', default: false }, file: { type: 'string' }, state: { type: 'string' }, root: { type: 'string' } },
    true,
  );
  if (values.root !== undefined && (positionals.length !== 1 || !/^[0-9a-fA-F]{16,64}$/.test(values.root))) {
    throw new UsageError(`ice audit verify: --root takes the hex ledger root a run printed (at least 16 hex digits) and one run id\nusage: ${AUDIT_USAGE}`);
  }
  const chosen = [positionals.length > 0, values.all === true, values.file !== undefined].filter(Boolean).length;
  if (chosen > 1 || positionals.length > 1) {
    throw new UsageError(`ice audit verify: give one of a run id, --all or --file <export.jsonl>\nusage: ${AUDIT_USAGE}`);
  }
  if (values.file !== undefined) {
    // --state names only where the key is (its ledger.key); the file is checked alone.
    return verifyFile(values.file, exportKey(values.state), io);
  }
  const wanted = positionals[0];
  return withLedger('audit verify', values.state, (ledger, state) => {
    const { key, legacyRuns } = state.ledgerKey;
    // The `running` rows in the same snapshot as the ledger rows (see readConsistently).
    const { running, result } = readConsistently(state, () => {
      const rows = runningRows(state);
      return {
        running: rows,
        result:
          wanted === undefined
            ? verifyStore(ledger, { inFlight: new Set(rows.keys()), key, ...(legacyRuns === undefined ? {} : { legacyRuns }) })
            : verifyOneRun(ledger, state, wanted, rows),
      };
    });
    if (values.root !== undefined && result.ok) {
      const run = ledger.resolveRunId(wanted!)!;
      const root = ledger.readRun(run).at(-1)!;
      const wantedRoot = values.root.toLowerCase();
      if (root.record.type !== 'run-end') {
        io.stdout(`FAILED run ${run}: it has no run-end, so no root to compare with --root ${wantedRoot}\n`);
        return EXIT.checkFailed;
      }
      if (!root.hash.startsWith(wantedRoot)) {
        io.stdout(`FAILED run ${run}: its ledger root is ${root.hash}, not the --root ${wantedRoot} you kept: the run was rewritten, or the root is another run's\n`);
        return EXIT.checkFailed;
      }
    }
    return report(result, running, io, values.root);
  });
}

/** The key to check an exported keyed run with: ICE_LEDGER_KEY, or --state's ledger.key (never created here). */
function exportKey(stateOption: string | undefined): Buffer | undefined {
  try {
    return readLedgerKey(resolve(stateOption ?? '.ice'))?.key;
  } catch (error) {
    if (error instanceof LedgerKeyError) throw new UsageError(`ice audit verify: ${error.message}`);
    throw error;
  }
}

/** One stored run, its run-start checked against the run-start appended before it. */
function verifyOneRun(ledger: LedgerStore, state: StateDb, wanted: string, running: ReadonlyMap<string, RunningRow>): VerifyResult {
  const { run, records } = readWantedRun('audit verify', ledger, wanted);
  const before = state.db
    .prepare(
      `SELECT hash, (SELECT count(*) FROM ledger b WHERE b.type = 'run-start' AND b.id <= a.id) AS n FROM ledger a
        WHERE type = 'run-start' AND id < (SELECT min(id) FROM ledger WHERE run = ?) ORDER BY id DESC LIMIT 1`,
    )
    .get(run) as { hash: string; n: number } | undefined;
  const { key, legacyRuns } = state.ledgerKey;
  // Unkeyed only if the key file says the ledger held this run before keys (an env key: reported, not refused).
  const allowUnkeyed = legacyRuns === undefined || (before?.n ?? 0) < legacyRuns;
  return verifyRun(records, { run, previousRunStart: before?.hash ?? null, inFlight: running.has(run), key, allowUnkeyed });
}

/** After its own time limit plus this, a run whose process is alive is stale, not in flight. */
const STALE_MARGIN_MS = 60_000;

function report(result: VerifyResult, running: ReadonlyMap<string, RunningRow>, io: Io, root?: string): number {
  if (!result.ok) {
    io.stdout(`FAILED run ${result.run} at seq ${result.seq}: ${result.reason}\n`);
    return EXIT.checkFailed;
  }
  const inFlight = result.inFlight ?? 0;
  const note =
    inFlight === 0 ? '' : ` (${plural(inFlight, 'run')} in flight, not checked to ${inFlight === 1 ? 'its' : 'their'} end)`;
  const lines = [`ok: ${plural(result.records, 'record')} in ${plural(result.runs, 'run')} verified${note}`];
  if (root !== undefined) lines.push(`root: matches --root ${root.toLowerCase()}`);
  for (const found of result.recovered ?? []) {
    lines.push(
      `recovered: run ${found.run} was ended by recovery (its process stopped); recovery found ${plural(found.records, 'record')}, ` +
        `the last seq ${found.lastSeq} hash ${found.lastHash.slice(0, 16)}: records after it, if any, are gone`,
    );
  }
  const now = Date.now();
  for (const open of result.open ?? []) {
    const pid = running.get(open.run)?.pid;
    const age = now - Date.parse(open.startedAt);
    const alive = pid !== undefined && processAlive(pid);
    if (!alive) lines.push(`in flight: run ${open.run} (pid ${pid ?? '?'} not running): the next host to open this state ends it incomplete`);
    else if (!(age <= open.timeoutMs + STALE_MARGIN_MS)) {
      lines.push(`stale: run ${open.run} (pid ${pid} alive) started ${Math.round(age / 1000)} s ago, past its own limit of ${Math.round(open.timeoutMs / 1000)} s: not a run in flight; its records may have been cut`);
    } else lines.push(`in flight: run ${open.run} (pid ${pid} alive)`);
  }
  io.stdout(`${lines.join('\n')}\n`);
  // Runs the key file accepts as older than the key: intact and allowed, but not keyed; said, never passed off as keyed.
  if (result.unkeyed) io.stderr(`unkeyed: ${plural(result.unkeyed, 'run')} written before ledger keys: a plain SHA-256 chain, which anyone with write access could have rewritten\n`);
  return lines.length > 1 + (root === undefined ? 0 : 1) ? EXIT_VERIFY_NOTICE : EXIT.ok;
}

/** `ice audit verify`: the chain is intact, but some run was recovered, is in flight or stale, or is unkeyed. */
const EXIT_VERIFY_NOTICE = 4;

function verifyFile(path: string, key: Buffer | undefined, io: Io): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`ice audit verify: cannot read --file ${path}: ${pathProblem(error)}; pass the file \`ice audit export\` wrote`);
  }
  const result = verifyExport(text, key ? { key } : {});
  if (result.ok) {
    io.stdout(
      `ok: ${plural(result.records, 'record')} of run ${result.run} verified (exported; its link to the previous run is not checked)\n` +
        `ledger root ${result.root} (compare it with the root the run reported: a file can be rewritten whole)\n`,
    );
    if (!result.keyed) io.stderr('unkeyed: a plain SHA-256 chain (written before ledger keys), which anyone could have rewritten\n');
    return EXIT.ok;
  }
  if ('line' in result) {
    const where = result.line === 0 ? path : `${path} line ${result.line}`;
    io.stdout(`FAILED ${where}: not a run as \`ice audit export\` writes it: ${result.reason}\n`);
  } else {
    io.stdout(`FAILED run ${result.run} at seq ${result.seq}: ${result.reason}\n`);
  }
  return EXIT.checkFailed;
}

/** `ice audit export <run-id | last> --format jsonl [--state <dir>]`: the stored bodies, byte for byte. */
function exportRun(argv: string[], io: Io): number {
  const { values, positionals } = parse('audit export', argv, { format: { type: 'string' }, state: { type: 'string' } }, true);
  const wanted = onePositional('audit export', positionals, 'run id (or `last`)', AUDIT_USAGE);
  if (values.format !== 'jsonl') {
    const problem = values.format === undefined ? '--format is required' : `unknown --format ${JSON.stringify(values.format)}`;
    throw new UsageError(`ice audit export: ${problem}: use --format jsonl (one stored record per line)\nusage: ${AUDIT_USAGE}`);
  }
  return withLedger('audit export', values.state, (ledger, state) => {
    const records = readConsistently(state, () => {
      const { run, records: stored } = readWantedRun('audit export', ledger, wanted);
      // Its export would stop mid-chain and fail `verify --file`; the run's owner is still writing it.
      if (runsInFlight(state).has(run) && stored.at(-1)?.record.type !== 'run-end') {
        throw new UsageError(`ice audit export: run ${run} is still in flight (no run-end yet): export it once it has ended`);
      }
      return stored;
    });
    (io.data ?? io.stdout)(exportJsonl(records));
    return EXIT.ok;
  });
}

/** `ice audit trace <run-id | last> [--limit <n>] [--json] [--state <dir>]`: the tree of runs a run caused. */
function trace(argv: string[], io: Io): number {
  const { values, positionals } = parse('audit trace', argv, { json: { type: 'boolean', default: false }, limit: { type: 'string' }, state: { type: 'string' } }, true);
  const wanted = onePositional('audit trace', positionals, 'run id (or `last`)', AUDIT_USAGE);
  const maxChildren = values.limit === undefined ? DEFAULT_TRACE_BOUNDS.maxChildren : positiveInteger('audit trace', '--limit', values.limit);
  return withLedger('audit trace', values.state, (ledger, state) => {
    const run = ledger.resolveRunId(wanted);
    if (!run) throw new UsageError(`ice audit trace: the ledger in ${state.dir} has no runs yet`);
    // The total bound grows with --limit, so asking for more per run is never cut by it first.
    const tree = causedRuns(state, run, { maxChildren, maxRuns: Math.max(DEFAULT_TRACE_BOUNDS.maxRuns, maxChildren * 4) });
    if (!tree) throw new UsageError(`ice audit trace: no run ${run} in the ledger in ${state.dir} (\`ice audit list\` shows the runs)`);
    io.stdout(values.json ? `${JSON.stringify(tree)}\n` : formatTrace(tree, maxChildren));
    return EXIT.ok;
  });
}

const MAX_TRACE_CALLED = 40;
const MAX_TRACE_CAUSE = 72;

/**
 * The tree as a table: the run column carries the tree's branches, the other columns are aligned
 * across every row. A run that leaves runs out gets a `… N more` row saying how to see them.
 */
export function formatTrace(root: TracedRun, limit: number): string {
  const rows: Array<string[] | string> = [];
  const walk = (node: TracedRun, lead: string, branch: string): void => {
    rows.push([
      branch + clean(node.run),
      shorten(clean(node.component), MAX_TRACE_CALLED),
      shorten(clean(node.invoked), MAX_TRACE_CALLED),
      node.cause ? shorten(formatCause(node.cause), MAX_TRACE_CAUSE) : node === root ? 'started directly' : '?',
      traceOutcome(node),
    ]);
    const last = node.caused.length - 1;
    node.caused.forEach((child, i) => {
      const end = i === last && node.omitted === 0;
      walk(child, lead + (end ? '   ' : '│  '), lead + (end ? '└─ ' : '├─ '));
    });
    if (node.omitted > 0) rows.push(`${lead}└─ … ${node.omitted} more ${omittedHint(node, limit)}`);
  };
  walk(root, '', '');
  const header = ['run', 'component', 'called', 'cause', 'outcome'];
  const table = rows.filter((r): r is string[] => typeof r !== 'string');
  const widths = header.map((h, i) => Math.max(width(h), ...table.map((r) => width(r[i]!))));
  const render = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('  ').trimEnd();
  const lines = [render(header), render(widths.map((w) => '─'.repeat(w))), ...rows.map((r) => (typeof r === 'string' ? r : render(r)))];
  const shown = count(root) - 1;
  const left = omitted(root);
  const runs = (n: number): string => `${n} run${n === 1 ? '' : 's'}`;
  // Left-out runs may have caused runs of their own: with any left out, the total is a lower bound.
  lines.push('', left === 0 ? (shown === 0 ? 'it caused no runs' : `${runs(shown)} caused`) : `${runs(shown)} shown; at least ${left} more left out (the … rows)`);
  return `${lines.join('\n')}\n`;
}

function traceOutcome(node: TracedRun): string {
  if (node.outcome === 'unfinished') return node.inFlight ? 'unfinished (in flight)' : 'unfinished';
  if (node.limit) return `${node.outcome} (${node.limit})`;
  if (node.blame) return `${node.outcome} (${node.blame} blame)`;
  return node.outcome;
}

/** Why runs were left out, and the command that shows them. */
function omittedHint(node: TracedRun, limit: number): string {
  if (node.caused.length === 0) return `(\`ice audit trace ${clean(node.run)}\` continues from here)`;
  return `(caused by ${clean(node.run)}: \`--limit ${Math.max(limit * 2, node.caused.length + node.omitted)}\` shows more)`;
}

function count(node: TracedRun): number {
  return 1 + node.caused.reduce((n, child) => n + count(child), 0);
}

function omitted(node: TracedRun): number {
  return node.omitted + node.caused.reduce((n, child) => n + omitted(child), 0);
}

// ── shared ──────────────────────────────────────────────────────────────────────────────────────

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parse<O extends Options>(command: string, argv: string[], options: O, allowPositionals: boolean) {
  return withUsage(command, AUDIT_USAGE, () => parseArgs({ args: argv, options, allowPositionals, strict: true }));
}

function positiveInteger(command: string, flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`ice ${command}: ${flag} must be a positive integer, got ${JSON.stringify(text)} (e.g. ${flag} 20)`);
  }
  return n;
}

/** Opens `<state>/ice.db` (default ./.ice), runs `fn`, closes it. No state dir is a usage error. */
function withLedger(command: string, stateOption: string | undefined, fn: (ledger: LedgerStore, state: StateDb) => number): number {
  const stateDir = checkStateDir(command, stateOption, false);
  if (!existsSync(join(stateDir, 'ice.db'))) {
    throw new UsageError(`ice ${command}: no ICE state in ${stateDir} (no ice.db): run a component first, or pass --state <dir>`);
  }
  let state: StateDb;
  try {
    state = openStateDb(stateDir);
  } catch (error) {
    if (error instanceof LedgerKeyError) throw new UsageError(`ice ${command}: ${error.message}`);
    throw error;
  }
  try {
    return fn(new LedgerStore(state), state);
  } finally {
    state.close();
  }
}

/**
 * Runs `fn`'s reads in one read transaction: one snapshot of the ledger and the `running` table, so a
 * run that starts or ends meanwhile (another process on the same state) is seen consistently — never
 * a run-start without its `running` row, which would read as a truncated run.
 */
function readConsistently<T>(state: StateDb, fn: () => T): T {
  return state.db.transaction(fn).deferred();
}

/** Runs being written now (`running`, see ledger/recover.ts): their missing run-end is expected. */
function runsInFlight(state: StateDb): ReadonlySet<string> {
  return new Set(state.db.prepare('SELECT run FROM running').pluck().all() as string[]);
}

interface RunningRow {
  pid: number;
  started: string;
}

/** The `running` rows: which process claims each run in flight. */
function runningRows(state: StateDb): ReadonlyMap<string, RunningRow> {
  const rows = state.db.prepare('SELECT run, pid, started FROM running').all() as Array<{ run: string } & RunningRow>;
  return new Map(rows.map(({ run, pid, started }) => [run, { pid, started }]));
}

/** The records of the run the user named (an id or `last`); an unknown run is a usage error. */
function readWantedRun(command: string, ledger: LedgerStore, wanted: string): { run: string; records: StoredRecord[] } {
  const run = ledger.resolveRunId(wanted);
  const stateDir = ledger.state.dir;
  if (!run) throw new UsageError(`ice ${command}: the ledger in ${stateDir} has no runs yet`);
  const records = ledger.readRun(run);
  if (records.length === 0) {
    throw new UsageError(`ice ${command}: no run ${run} in the ledger in ${stateDir} (\`ice audit list\` shows the runs)`);
  }
  return { run, records };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
