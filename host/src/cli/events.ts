/**
 * `ice events list [--kind <pattern>] [--component <name>] [--json] [--follow] [--state <dir> | --server
 * <url> --token-file <file>]`: the events guests emitted (granted, successful `events.emit` calls),
 * oldest first, from the ledger. `--follow` then keeps printing new ones as they are committed, until
 * SIGINT or SIGTERM: by polling the state database from the last row read, or with `--server`, through
 * the server's long poll (`GET /v1/events`).
 */
import { parseArgs } from 'node:util';
import { shorten, terminalSafe as clean, width } from '../core/text.js';
import type { Matcher } from '../policy/types.js';
import {
  compileKindPattern,
  digestLabel,
  EMIT_CALL,
  GrantedCallScanner,
  ledgerComponents,
  scanEvents,
  type GuestEventRow,
  type RecordedText,
} from '../views/events.js';
import { UsageError, withUsage } from './args.js';
import { LONG_POLL_MS, pause, POLL_MS, stopOnSignals } from './follow.js';
import { EXIT, type Io } from './io.js';
import { findServer, ServerClient, ServerError, SERVER_OPTIONS } from './server-client.js';
import { openExistingState } from './state.js';
import { EVENTS_USAGE } from './usage.js';

export async function eventsCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'list') {
    throw new UsageError(`ice events: ${sub ? `unknown subcommand "${sub}"` : 'missing subcommand'}\nusage: ${EVENTS_USAGE}`);
  }
  const { values } = withUsage('events list', EVENTS_USAGE, () =>
    parseArgs({
      args: rest,
      options: { kind: { type: 'string' }, component: { type: 'string' }, json: { type: 'boolean', default: false }, follow: { type: 'boolean', default: false }, ...SERVER_OPTIONS },
      allowPositionals: false,
      strict: true,
    }),
  );
  // The pattern first: a bad one is wrong whatever the state holds.
  const kind = values.kind === undefined ? undefined : kindMatcher(values.kind);
  const printer = new EventPrinter(io, values.json, values.follow);
  if (values.server !== undefined) return listFromServer(values, printer, io);
  if (values['token-file'] !== undefined) {
    throw new UsageError(`ice events list: --token-file goes with --server <url>; on a state dir the events are read from its database\nusage: ${EVENTS_USAGE}`);
  }
  const state = openExistingState('events list', values.state);
  const stop = values.follow ? stopOnSignals() : undefined;
  try {
    if (values.component !== undefined) checkComponent(ledgerComponents(state), values.component, state.dir);
    // One scanner throughout: each scan continues after the last row the one before read.
    const scanner = new GrantedCallScanner([EMIT_CALL], values.component);
    printer.print(scanEvents(scanner, state, kind));
    if (!stop) return EXIT.ok;
    io.stderr(`ice events list: following new events in ${state.dir} (Ctrl-C stops)\n`);
    while (await pause(POLL_MS, stop.signal)) printer.print(scanEvents(scanner, state, kind));
    return EXIT.ok;
  } finally {
    stop?.dispose();
    state.close();
  }
}

/** The event as `GET /v1/events` answers it: kind and payload a string, or `{sha256, size}` for a digest. */
interface ServedEvent {
  readonly id: number;
  readonly run: string;
  readonly seq: number;
  readonly at: string;
  readonly component: string;
  readonly kind: string | { sha256: string; size: number };
  readonly payload: string | { sha256: string; size: number };
}

/**
 * The same list through a server: the kind filter is the server's (the same pattern code), the
 * component filter is applied here. The events that exist are read page by page without waiting.
 */
async function listFromServer(values: { kind?: string | undefined; component?: string | undefined; follow?: boolean; server?: string | undefined; state?: string | undefined; 'token-file'?: string | undefined }, printer: EventPrinter, io: Io): Promise<number> {
  const target = findServer('events list', { server: values.server, state: values.state, 'token-file': values['token-file'] });
  const client = new ServerClient('events list', target);
  const stop = values.follow ? stopOnSignals() : undefined;
  const signal = stop?.signal ?? new AbortController().signal;
  const page = async (after: number, wait: number): Promise<{ events: GuestEventRow[]; last: number }> => {
    const query = new URLSearchParams({ after: String(after), wait: String(wait), ...(values.kind !== undefined ? { kind: values.kind } : {}) });
    let answer: { events?: ServedEvent[]; last?: number };
    try {
      answer = await client.get(`/v1/events?${query}`, { signal });
    } catch (error) {
      if (signal.aborted) return { events: [], last: after };
      if (error instanceof ServerError) throw new UsageError(`ice events list: ${target.where} at ${target.url} refused to list the events (${error.status}): ${clean(error.message)}`);
      throw error;
    }
    const events = (answer.events ?? []).filter((e) => values.component === undefined || e.component === values.component).map(eventRow);
    return { events, last: typeof answer.last === 'number' && answer.last > after ? answer.last : after };
  };
  try {
    let after = 0;
    const existing: GuestEventRow[] = [];
    for (;;) {
      const { events, last } = await page(after, 0);
      existing.push(...events);
      // A page can be empty of matches and still move the cursor: only a cursor that stays put is the end.
      if (last === after) break;
      after = last;
    }
    printer.print(existing);
    if (!stop) return EXIT.ok;
    io.stderr(`ice events list: following new events from ${target.where} at ${target.url} (Ctrl-C stops)\n`);
    while (!signal.aborted) {
      const { events, last } = await page(after, LONG_POLL_MS);
      printer.print(events);
      after = last;
    }
    return EXIT.ok;
  } finally {
    stop?.dispose();
  }
}

function eventRow(e: ServedEvent): GuestEventRow {
  const text = (value: ServedEvent['kind']): RecordedText =>
    typeof value === 'string' ? { text: value } : { sha256: String(value?.sha256), size: Number(value?.size) };
  return { run: String(e.run), seq: Number(e.seq), at: String(e.at), component: String(e.component), kind: text(e.kind), payload: text(e.payload) };
}

function kindMatcher(pattern: string): Matcher {
  const compiled = compileKindPattern(pattern);
  if ('problem' in compiled) {
    throw new UsageError(`ice events list: bad --kind pattern ${JSON.stringify(pattern)}: ${compiled.problem}\nusage: ${EVENTS_USAGE}`);
  }
  return compiled;
}

function checkComponent(known: readonly string[], component: string, dir: string): void {
  if (known.includes(component)) return;
  const list = known.length === 0 ? 'there are none yet' : `components: ${known.join(', ')}`;
  throw new UsageError(`ice events list: no runs of component "${component}" in the ledger in ${dir} (${list}); pass one of those to --component, or leave it out for all`);
}

/**
 * One object per line. A kind or payload recorded whole is a string; one recorded under digest
 * capture is `{ sha256, size }` with the full digest (a shortened one would be useless to a program).
 */
function writeJsonLines(events: Iterable<GuestEventRow>, io: Io): void {
  let chunk: string[] = [];
  for (const e of events) {
    chunk.push(JSON.stringify({ run: e.run, seq: e.seq, at: e.at, component: e.component, kind: jsonValue(e.kind), payload: jsonValue(e.payload) }));
    if (chunk.length === 1000) {
      io.stdout(`${chunk.join('\n')}\n`);
      chunk = [];
    }
  }
  if (chunk.length > 0) io.stdout(`${chunk.join('\n')}\n`);
}

function jsonValue(value: RecordedText): string | { sha256: string; size: number } {
  return 'text' in value ? value.text : { sha256: value.sha256, size: value.size };
}

const HEADER = ['run', 'seq', 'at', 'component', 'kind', 'payload'] as const;
const RIGHT_ALIGNED = [false, true, false, false, false, false];
const MAX_PAYLOAD = 80;

/** A fixed-width table; the payload column is last and unpadded. */
export function formatEventsTable(events: readonly GuestEventRow[]): string {
  if (events.length === 0) return '(no events)\n';
  const rows = events.map(eventCells);
  const widths = columnWidths(HEADER.map(width), rows);
  return [renderRow(HEADER, widths), renderRow(widths.map((w) => '─'.repeat(w)), widths), ...rows.map((r) => renderRow(r, widths))].join('\n') + '\n';
}

/**
 * Prints batches of events as they come: `--json` one object per line; a table otherwise. Following,
 * the header is printed once and later rows keep its columns, widening one only for a longer value.
 */
class EventPrinter {
  private widths: number[] | undefined;

  constructor(
    private readonly io: Io,
    private readonly json: boolean,
    private readonly follow: boolean,
  ) {}

  /** `events` is read once, lazily for --json: a large ledger streams rather than being held whole. */
  print(events: Iterable<GuestEventRow>): void {
    if (this.json) return writeJsonLines(events, this.io);
    if (!this.follow) return this.io.stdout(formatEventsTable([...events]));
    const rows = [...events].map(eventCells);
    const first = this.widths === undefined;
    const widths = columnWidths(this.widths ?? HEADER.map(width), rows);
    this.widths = widths;
    const lines = first ? [renderRow(HEADER, widths), renderRow(widths.map((w) => '─'.repeat(w)), widths)] : [];
    lines.push(...rows.map((r) => renderRow(r, widths)));
    if (lines.length > 0) this.io.stdout(`${lines.join('\n')}\n`);
  }
}

function eventCells(e: GuestEventRow): string[] {
  return [clean(e.run), String(e.seq), clean(e.at), clean(e.component), showText(e.kind, 128), showText(e.payload, MAX_PAYLOAD)];
}

function columnWidths(start: readonly number[], rows: readonly string[][]): number[] {
  return start.map((w, i) => Math.max(w, ...rows.map((r) => width(r[i] ?? ''))));
}

function renderRow(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((cell, i) => {
      if (i === cells.length - 1) return cell;
      const pad = ' '.repeat((widths[i] ?? 0) - width(cell));
      return RIGHT_ALIGNED[i] ? pad + cell : cell + pad;
    })
    .join('  ')
    .trimEnd();
}

function showText(value: RecordedText, max: number): string {
  return 'text' in value ? shorten(clean(value.text), max) : digestLabel(value);
}
