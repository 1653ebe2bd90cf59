/**
 * Human-readable rendering of a run's ledger for `ice audit show`.
 *
 * Everything printed that came from a guest or a policy (values, messages, names) is escaped so a
 * hostile string cannot move the cursor, recolour the terminal or reorder text (C0/C1 controls and
 * bidi overrides become `\u` escapes such as `\u202e`).
 */
import { shorten, terminalSafe as clean, width } from '../core/text.js';
import { ledgerCalls, type LedgerCall } from './calls.js';
import type { Captured, LedgerRecord, RunCause, RunCounts, RunEndRecord, RunStartRecord, StoredRecord } from './records.js';

const MAX_CALL = 40;
const MAX_ARG = 24;
const MAX_RULE = 28;
const MAX_VALUE = 40;
const MAX_MESSAGE = 60;
const MAX_COMPONENT = 32;

/**
 * Which call rows a table shows (`ice audit show --denied --interface kv`): `keep` decides, `label`
 * names the filter in the note under the rows, so a filtered table never passes for the whole run.
 */
export interface CallFilter {
  keep(call: LedgerCall): boolean;
  label: string;
}

/**
 * A run as a fixed-width table: a header (run id, component and policy with short digests, start time,
 * input, outcome), one row per call (`seq  call  decision  rule  duration  result`), and a footer with
 * the counts and the ledger root (`options.root`: the run-end record's hash, which a record does not
 * carry; `formatStoredRunTable` fills it in). Records are expected in seq order. With `options.filter`
 * only the matching calls are rows; the header and the footer (the whole run's counts) are unchanged.
 */
export function formatRunTable(records: readonly LedgerRecord[], options: { root?: string; filter?: CallFilter } = {}): string {
  const start = records.find((r): r is RunStartRecord => r.type === 'run-start');
  const allCalls = ledgerCalls(records);
  const calls = options.filter ? allCalls.filter((c) => options.filter!.keep(c)) : allCalls;
  const end = records.find((r): r is RunEndRecord => r.type === 'run-end');
  const lines: string[] = [];

  const run = start?.run ?? records[0]?.run ?? '(no records)';
  lines.push(`run        ${clean(run)}`);
  if (start) {
    if (start.invoke?.kind === 'operator') {
      lines.push(`component  ${clean(start.component.name)}  (its data; no component ran)`);
    } else if (start.invoke?.kind === 'lifecycle' || start.invoke?.kind === 'refused') {
      lines.push(`component  ${clean(start.component.name)}  ${shortDigest(start.component.digest)}  (no component ran)`);
    } else {
      lines.push(`component  ${clean(start.component.name)}  ${shortDigest(start.component.digest)}`);
      lines.push(`policy     ${clean(start.policy.source)}  ${shortDigest(start.policy.digest)}`);
    }
    lines.push(`started    ${clean(start.at)}  (ice ${clean(start.host.ice)})`);
    const invoke = start.invoke;
    if (invoke?.kind === 'call') {
      lines.push(`called     ${clean(invoke.function)}${invoke.interface ? `  (${clean(invoke.interface)})` : ''}`);
      lines.push(`arguments  ${formatCaptured(start.input, MAX_VALUE * 2)}`);
    } else if (invoke?.kind === 'operator') {
      lines.push(`operator   ${clean(invoke.by)}: ${clean(invoke.action)}`);
    } else if (invoke?.kind === 'lifecycle') {
      lines.push(`lifecycle  agent ${clean(invoke.agent)}: ${invoke.from ?? 'new'} → ${invoke.to}`);
    } else if (invoke?.kind === 'refused') {
      lines.push(`refused    ${invoke.trigger} for agent ${clean(invoke.agent)}: ${shorten(clean(invoke.reason), MAX_VALUE * 2)}`);
    } else if (invoke?.kind === 'command') {
      lines.push(`command    ${clean(invoke.export)}  args ${shorten(clean(JSON.stringify(invoke.args)), MAX_VALUE * 2)}`);
      lines.push(`stdin      ${formatCaptured(start.input, MAX_VALUE * 2)}`);
    } else {
      lines.push(`input      ${formatCaptured(start.input, MAX_VALUE * 2)}`);
    }
    if (start.cause) lines.push(`cause      ${formatCause(start.cause)}`);
  } else {
    lines.push('component  ?  (run-start record missing)');
  }
  lines.push(`outcome    ${end ? formatOutcome(end) : 'unfinished (no run-end record)'}`);
  lines.push('');

  const header = ['seq', 'call', 'decision', 'rule', 'duration', 'result'];
  const rows = calls.map((c) => [
    // A call recorded as intent and result: both seqs, so a reader finds both records.
    c.resultSeq === undefined ? String(c.seq) : `${c.seq}→${c.resultSeq}`,
    formatCall(c),
    c.decision,
    shorten(clean(c.rule), MAX_RULE),
    c.durationUs === undefined ? '?' : formatDuration(c.durationUs),
    formatCallOutcome(c),
  ]);
  // Numeric columns right-aligned.
  lines.push(...renderTable(header, rows, [true, false, false, false, true, false]));
  if (rows.length === 0 && !options.filter) lines.push('(no calls)');
  if (options.filter) lines.push(`(${calls.length} of ${allCalls.length} calls shown: ${options.filter.label})`);
  lines.push('');

  const counts = end?.counts ?? tally(allCalls);
  lines.push(
    `${counts.calls} ${counts.calls === 1 ? 'call' : 'calls'}: ${counts.allowed} allowed, ${counts.denied} denied, ` +
      `${counts.limited} limited, ${counts.invalid} invalid` +
      (counts.unknown ? `, ${counts.unknown} outcome unknown (seq ${(end?.unknown ?? []).join(', ')}: the run stopped during their effect)` : ''),
  );
  if (end?.recovered) {
    const found = end.recovered;
    lines.push(`recovered: ended by the next host after its process stopped; it found ${found.records} records, the last seq ${found.lastSeq} (hash ${found.lastHash.slice(0, 16)})`);
  }
  if (end) lines.push(`ledger root ${options.root ?? '(not given)'} (keep it: \`ice audit verify <run> --root <hex>\` checks the run against it)`);
  return lines.join('\n') + '\n';
}

/** `formatRunTable` for stored records (`LedgerStore.readRun`): the footer shows the ledger root hash. */
export function formatStoredRunTable(records: readonly StoredRecord[], options: { filter?: CallFilter } = {}): string {
  const end = records.find((r) => r.record.type === 'run-end');
  return formatRunTable(
    records.map((r) => r.record),
    { ...options, ...(end ? { root: end.hash } : {}) },
  );
}

/** One row of `ice audit list`: a run summary plus what only its run-end (or its calls) tell. */
export interface RunListRow {
  run: string;
  component: string;
  /** What it called: `run`, a function (`geometry.area`), `wasi:cli/run`. */
  invoked: string;
  startedAt: string;
  /** `ok`, `error`, `trap`, `incomplete`, `limit (fuel)`, `unfinished`, `unfinished (in flight)`. */
  outcome: string;
  calls: number;
  denied: number;
}

/**
 * Runs as a table (`run  component  started  outcome  calls  denied`), as given (newest first), and a
 * footer with how many are shown; `total`: how many runs the ledger holds, when more than are shown.
 */
export function formatRunList(rows: readonly RunListRow[], total: number = rows.length): string {
  const header = ['run', 'component', 'called', 'started', 'outcome', 'calls', 'denied'];
  const cells = rows.map((r) => [
    clean(r.run),
    shorten(clean(r.component), MAX_COMPONENT),
    shorten(clean(r.invoked), MAX_COMPONENT),
    clean(r.startedAt),
    clean(r.outcome),
    String(r.calls),
    String(r.denied),
  ]);
  const rightAligned = [false, false, false, false, false, true, true];
  const lines = renderTable(header, cells, rightAligned);
  if (cells.length === 0) lines.push('(no runs)');
  lines.push('');
  const runs = (n: number): string => `${n} ${n === 1 ? 'run' : 'runs'}`;
  lines.push(total > rows.length ? `${rows.length} of ${runs(total)} shown, newest first (--limit <n> for more)` : runs(total));
  return lines.join('\n') + '\n';
}

/** A header, a rule of `─` and the rows, columns two spaces apart; the last column is not padded. */
function renderTable(header: string[], rows: string[][], rightAligned: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const render = (cells: string[]): string =>
    cells
      .map((cell, i) => {
        if (i === cells.length - 1 && !rightAligned[i]) return cell;
        const pad = ' '.repeat((widths[i] ?? 0) - width(cell));
        return rightAligned[i] ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [render(header), render(widths.map((w) => '─'.repeat(w))), ...rows.map(render)];
}

function formatOutcome(end: RunEndRecord): string {
  let text: string = end.outcome;
  if (end.limit) text += ` (${end.limit})`;
  if (end.blame) text += ` (${end.blame} blame)`;
  if (end.reason !== undefined) text += `: ${shorten(clean(end.reason), MAX_MESSAGE)}`;
  if (end.output !== undefined) text += `  output ${formatCaptured(end.output, MAX_VALUE)}`;
  const fuel = end.fuel === undefined ? '' : `  fuel ${end.fuel}`;
  return `${text}  in ${formatDuration(end.durationUs)}${fuel}`;
}

/** `ice:agent/kv@0.1.0#get` reads as `kv.get` in the table; other interfaces keep their full name. */
export function displayCall(call: string): string {
  const ice = /^ice:agent\/([a-z][a-z0-9-]*)@[0-9.]+#(.+)$/.exec(call);
  if (ice) return `${ice[1]}.${ice[2]}`;
  // wasi:filesystem/types@0.2.12#[method]descriptor.open-at → descriptor.open-at; functions keep their interface.
  const wasi = /^wasi:[a-z-]+\/([a-z-]+)@[0-9.]+#(?:\[(?:method|static)\](.+)|\[constructor\](.+)|(.+))$/.exec(call);
  if (wasi) return wasi[2] ?? (wasi[3] ? `new ${wasi[3]}` : `${wasi[1]}.${wasi[4]}`);
  return call;
}

function formatCall(c: LedgerCall): string {
  const args = recordArgs(c) ?? c.args.map((a) => formatCaptured(a, MAX_ARG)).join(', ');
  const hop = c.hop === undefined ? '' : `↪${c.hop} `;
  return shorten(`${hop}${clean(displayCall(c.call))}(${args})`, MAX_CALL);
}

function formatCallOutcome(c: LedgerCall): string {
  // Who answered an ask comes first: the result column is cut, and this is what an auditor looks for.
  const approval = c.approval ? `[${c.approval.answer} by ${clean(c.approval.by)}] ` : '';
  if (c.outcome === undefined) {
    return c.decision === 'ask' ? 'outcome unknown (stopped while the approver was asked)' : 'outcome unknown (stopped during its effect)';
  }
  if ('ok' in c.outcome) return approval + (c.outcome.ok === null ? 'ok' : (recordResult(c.outcome.ok) ?? formatCaptured(c.outcome.ok, MAX_VALUE)));
  return shorten(`${approval}${c.outcome.err.kind}: ${clean(c.outcome.err.message)}`, MAX_MESSAGE);
}

/** A captured value for display: JSON-quoted strings, `sha256:1a2b3c4d… (12 B)` for digests. */
export function formatCaptured(c: Captured, max: number): string {
  if ('fields' in c) {
    // WASI values: a resource, a u64 or written text read as themselves.
    const marker = Object.keys(c.fields).length === 1 ? (c.fields.$resource ?? c.fields.$u64 ?? c.fields.$text) : undefined;
    if (marker && 'value' in marker && typeof marker.value === 'string') return c.fields.$text ? quote(marker.value, max) : clean(marker.value);
    const parts = Object.entries(c.fields).map(([name, field]) => `${clean(name)}: ${formatCaptured(field, MAX_ARG)}`);
    return shorten(`{${parts.join(', ')}}`, max);
  }
  if ('sha256' in c) return `sha256:${c.sha256.slice(0, 8)}… (${formatSize(c.size)})`;
  if ('hex' in c) return shorten(`0x${c.hex}`, max - 1) + ` (${formatSize(c.hex.length / 2)})`;
  const v = c.value;
  if (typeof v === 'string') return quote(v, max);
  if (Array.isArray(v)) {
    const items: string[] = [];
    let used = 2;
    for (const item of v) {
      const text = quote(item, MAX_ARG);
      if (used + text.length + 2 > max) {
        items.push('…');
        break;
      }
      items.push(text);
      used += text.length + 2;
    }
    return `[${items.join(', ')}]`;
  }
  return String(v);
}

/** A JSON string literal, shortened to `max` characters with the ellipsis inside the quotes. */
function quote(s: string, max: number): string {
  const q = clean(JSON.stringify(s));
  if (width(q) <= max) return q;
  return shorten(q.slice(0, -1), max - 1) + '"';
}

function tally(calls: readonly LedgerCall[]): RunCounts {
  const counts: RunCounts = { calls: calls.length, allowed: 0, denied: 0, limited: 0, invalid: 0 };
  for (const c of calls) {
    if (c.outcome === undefined) counts.unknown = (counts.unknown ?? 0) + 1;
    else if (c.decision === 'allow') counts.allowed++;
    else if (c.decision === 'deny') counts.denied++;
    else if (c.decision === 'limit') counts.limited++;
    else counts.invalid++;
  }
  return counts;
}

function shortDigest(digest: string): string {
  return `sha256:${clean(digest).slice(0, 12)}`;
}

/** `12 µs`, `3.4 µs`, `1.84 ms`, `2.10 s`. */
export function formatDuration(us: number): string {
  if (us < 10 && !Number.isInteger(us)) return `${us.toFixed(1)} µs`;
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** A captured field as plain text, or undefined when it was not recorded as a value. */
function plainField(c: Captured | undefined): string | undefined {
  if (c === undefined) return undefined;
  if ('value' in c && c.value !== null && !Array.isArray(c.value)) return clean(String(c.value));
  return undefined;
}

function bytesOf(c: Captured | undefined): string {
  if (c === undefined) return '?';
  if ('hex' in c) return formatSize(c.hex.length / 2);
  if ('sha256' in c) return formatSize(c.size);
  return '0 B';
}

/** The arguments of an http request or model completion, the way a reader scans for them. */
function recordArgs(c: LedgerCall): string | undefined {
  const arg = c.args[0];
  if (c.args.length !== 1 || arg === undefined || !('fields' in arg)) return undefined;
  const f = arg.fields;
  const method = plainField(f.method);
  const url = plainField(f.url);
  if (method !== undefined && url !== undefined) return `${method} ${url}`;
  const model = plainField(f.model);
  if (model !== undefined) return `${model}, ${plainField(f.messageCount) ?? '?'} msgs, max ${plainField(f.maxTokens) ?? '?'}`;
  return undefined;
}

/** An http response (status, size, the address connected to, secrets added by name) or a completion (usage, text). */
function recordResult(ok: Captured): string | undefined {
  if (!('fields' in ok)) return undefined;
  const f = ok.fields;
  const status = plainField(f.status);
  if (status !== undefined) {
    const address = plainField(f.address);
    const injected = f.injected && 'value' in f.injected && Array.isArray(f.injected.value) ? ` · ${f.injected.value.map(clean).join(', ')}` : '';
    return `${status} · ${bytesOf(f.body)}${address ? ` · ${address}` : ''}${injected}`;
  }
  const usage = f.usage && 'fields' in f.usage ? f.usage.fields : undefined;
  if (usage && f.text) return `${plainField(usage.inputTokens) ?? '?'}+${plainField(usage.outputTokens) ?? '?'} tokens ${formatCaptured(f.text, MAX_ARG)}`;
  return undefined;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A run's cause in one line: e.g. `event notes.added from 01J…#3 (attempt 2)`. */
export function formatCause(cause: RunCause): string {
  switch (cause.kind) {
    case 'event':
      return `event ${clean(cause.eventKind)} from ${clean(cause.event)}${cause.attempt > 1 ? ` (attempt ${cause.attempt})` : ''}`;
    case 'schedule':
      return `schedule ${clean(cause.schedule)} due ${clean(cause.due)}`;
    case 'webhook':
      return `webhook ${clean(cause.path)}`;
    case 'manual':
      return `invoked by ${clean(cause.by)}`;
    case 'mcp':
      return `MCP tool ${clean(cause.tool)}`;
    case 'operator':
      return `operator ${clean(cause.by)}${cause.reason ? `: ${shorten(clean(cause.reason), MAX_VALUE)}` : ''}`;
    case 'fault':
      return `${cause.faults} faults within ${cause.windowMs} ms, the last in run ${clean(cause.run)}`;
    case 'upgrade':
      return `upgrade by ${clean(cause.by)}: ${shortDigest(cause.from)} → ${shortDigest(cause.to)}, ${cause.replayed} runs replayed, ${cause.diverged} diverged${cause.forced ? ' (forced)' : ''}`;
    case 'config':
      return `config ${clean(cause.source)}`;
    default:
      return clean(JSON.stringify(cause));
  }
}
