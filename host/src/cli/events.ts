/**
 * `ice events list [--kind <pattern>] [--component <name>] [--json] [--state <dir>]`: the events guests
 * emitted (granted, successful `events.emit` calls), oldest first, from the ledger.
 */
import { parseArgs } from 'node:util';
import { shorten, terminalSafe as clean, width } from '../core/text.js';
import type { Matcher } from '../policy/types.js';
import { compileKindPattern, digestLabel, ledgerComponents, queryEvents, type GuestEventRow, type RecordedText } from '../views/events.js';
import { UsageError, withUsage } from './args.js';
import { EXIT, type Io } from './io.js';
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
      options: { kind: { type: 'string' }, component: { type: 'string' }, json: { type: 'boolean', default: false }, state: { type: 'string' } },
      allowPositionals: false,
      strict: true,
    }),
  );
  // The pattern first: a bad one is wrong whatever the state holds.
  const kind = values.kind === undefined ? undefined : kindMatcher(values.kind);
  const state = openExistingState('events list', values.state);
  try {
    if (values.component !== undefined) checkComponent(ledgerComponents(state), values.component, state.dir);
    const events = queryEvents(state, { kind, component: values.component });
    if (values.json) writeJsonLines(events, io);
    else io.stdout(formatEventsTable([...events]));
    return EXIT.ok;
  } finally {
    state.close();
  }
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
  const rows = events.map((e) => [clean(e.run), String(e.seq), clean(e.at), clean(e.component), showText(e.kind, 128), showText(e.payload, MAX_PAYLOAD)]);
  const widths = HEADER.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const render = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => {
        if (i === cells.length - 1) return cell;
        const pad = ' '.repeat((widths[i] ?? 0) - width(cell));
        return RIGHT_ALIGNED[i] ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [render(HEADER), render(widths.map((w) => '─'.repeat(w))), ...rows.map(render)].join('\n') + '\n';
}

function showText(value: RecordedText, max: number): string {
  return 'text' in value ? shorten(clean(value.text), max) : digestLabel(value);
}
