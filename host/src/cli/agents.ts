/**
 * `ice agents list|status|suspend|resume|upgrade|invoke`: an operator's hands on the agents a running
 * `ice serve` serves, through its HTTP API (server-client.ts). Everything that changes an agent is done
 * and recorded by the server (a lifecycle record, or a run, in the ledger, with `--by` as who); this
 * command only asks and prints the answer.
 *
 * Exit codes: 0 ok · 1 refused (409 a state that does not allow it, 429 a full queue, an upgrade whose
 * replay diverged, an invoked guest's err) · 2 usage, or the server cannot be reached · 3 an invoked run
 * trapped or hit a limit.
 */
import { parseArgs } from 'node:util';
import { shorten, terminalSafe as clean, width } from '../core/text.js';
import { UsageError, withUsage } from './args.js';
import { EXIT, type Io } from './io.js';
import { readUserFile } from './paths.js';
import { defaultOperator, findServer, SERVER_OPTIONS, ServerClient, ServerError } from './server-client.js';
import { AGENTS_USAGE } from './usage.js';
import type { AgentStatus } from '../serve/runtime.js';

/** What the server says of an agent (`GET /v1/agents/:name`): the server's own type, so the two cannot drift. */
export type { AgentStatus } from '../serve/runtime.js';

/** One run's result (`POST /v1/agents/:name/invoke`). */
export interface RunResultJson {
  readonly runId: string;
  readonly ok: boolean;
  readonly outcome: string;
  readonly output?: string;
  readonly error?: string;
  readonly value?: unknown;
  readonly limit?: string;
  readonly blame?: string;
  readonly calls: number;
  readonly ledgerRoot: string;
  readonly durationMs: number;
}

interface Replayed {
  readonly run: string;
  readonly matches: boolean;
  readonly detail?: string;
}

interface UpgradeReport {
  readonly from: string;
  readonly to: string;
  readonly replayed: readonly Replayed[];
  readonly forced: boolean;
  readonly run: string;
}

const COMMON = { ...SERVER_OPTIONS, json: { type: 'boolean', default: false } } as const;
const BY = { by: { type: 'string' } } as const;

/** Each subcommand's own options (parseArgs is strict: another subcommand's flag is an error). */
const SUBCOMMANDS = {
  list: { options: COMMON, takesName: false },
  status: { options: COMMON, takesName: true },
  suspend: { options: { ...COMMON, ...BY, reason: { type: 'string' } }, takesName: true },
  resume: { options: { ...COMMON, ...BY, reason: { type: 'string' } }, takesName: true },
  upgrade: { options: { ...COMMON, ...BY, component: { type: 'string' }, against: { type: 'string' }, force: { type: 'boolean', default: false } }, takesName: true },
  invoke: { options: { ...COMMON, ...BY, input: { type: 'string' }, function: { type: 'string' }, args: { type: 'string' } }, takesName: true },
} as const;
type Sub = keyof typeof SUBCOMMANDS;

const AGENT_NAME = /^[a-z][a-z0-9-]{0,31}$/u;

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  name: string;
  /** After `--`: a WASI command's arguments (`invoke`). */
  commandArgs: string[] | undefined;
}

export async function agentsCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || !Object.hasOwn(SUBCOMMANDS, sub)) {
    const problem = sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`;
    throw new UsageError(`ice agents: ${problem} (one of: ${Object.keys(SUBCOMMANDS).join(', ')})\nusage: ${AGENTS_USAGE}`);
  }
  const command = `agents ${sub}`;
  const parsed = parse(sub as Sub, rest);
  // Found only once the arguments are checked: a typo is reported as such, whether or not a server runs.
  const client = (): ServerClient => new ServerClient(command, findServer(command, parsed.values as { state?: string; server?: string; 'token-file'?: string }));
  try {
    switch (sub as Sub) {
      case 'list':
        return await list(client, parsed, io);
      case 'status':
        return await status(client, parsed, io);
      case 'suspend':
      case 'resume':
        return await transition(client, sub as 'suspend' | 'resume', parsed, io);
      case 'upgrade':
        return await upgrade(client, parsed, io);
      case 'invoke':
        return await invoke(client, parsed, io);
    }
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    return refused(command, error, io);
  }
}

function parse(sub: Sub, argv: string[]): Parsed {
  const command = `agents ${sub}`;
  // Everything after `--` belongs to the WASI command an invoke runs, options included.
  const dash = argv.indexOf('--');
  if (dash >= 0 && sub !== 'invoke') throw new UsageError(`ice ${command}: takes nothing after --; only \`ice agents invoke\` passes arguments to a command\nusage: ${AGENTS_USAGE}`);
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const { values, positionals } = withUsage(command, AGENTS_USAGE, () =>
    parseArgs({ args: own, options: SUBCOMMANDS[sub].options, allowPositionals: true, strict: true }),
  );
  const wanted = SUBCOMMANDS[sub].takesName ? 1 : 0;
  if (positionals.length !== wanted) {
    const problem =
      wanted === 0
        ? `takes no arguments, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`
        : positionals.length === 0
          ? 'missing the agent name'
          : `expected one agent name, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}${sub === 'invoke' ? ' (a run\'s input goes in --input; a command\'s arguments after --)' : ''}`;
    throw new UsageError(`ice ${command}: ${problem}\nusage: ${AGENTS_USAGE}`);
  }
  const name = positionals[0] ?? '';
  if (wanted === 1 && !AGENT_NAME.test(name)) {
    throw new UsageError(`ice ${command}: ${JSON.stringify(name)} is not an agent name (1 to 32 characters from a-z, 0-9, "-", starting with a letter): \`ice agents list\` shows them`);
  }
  return { values: values as Parsed['values'], name, commandArgs: dash < 0 ? undefined : argv.slice(dash + 1) };
}

/** A refusal the server answered: 409/429 are the agent's state or load (exit 1); the rest are the caller's to fix (exit 2). */
function refused(command: string, error: ServerError, io: Io): number {
  const message = clean(error.message);
  if (error.status === 409 || error.status === 429) {
    io.stderr(`ice ${command}: ${message}\n`);
    const replayed = error.body['replayed'];
    if (Array.isArray(replayed)) io.stderr(formatReplayed(replayed as Replayed[]));
    return EXIT.guestError;
  }
  const code = error.status >= 500 ? ` (the server answered ${error.status})` : '';
  throw new UsageError(`ice ${command}: ${message}${code}`);
}

async function list(client: () => ServerClient, { values }: Parsed, io: Io): Promise<number> {
  const c = client();
  const answer = await c.get<{ agents: AgentStatus[] }>('/v1/agents');
  if (!Array.isArray(answer.agents) || !answer.agents.every(isAgentStatus)) throw notTheApi(c, 'GET /v1/agents');
  if (values['json']) io.stdout(`${JSON.stringify(answer)}\n`);
  else io.stdout(formatAgentList(answer.agents));
  return EXIT.ok;
}

async function status(client: () => ServerClient, { values, name }: Parsed, io: Io): Promise<number> {
  const c = client();
  const answer = await c.get<AgentStatus>(agentPath(name));
  if (!isAgentStatus(answer)) throw notTheApi(c, `GET ${agentPath(name)}`);
  io.stdout(values['json'] ? `${JSON.stringify(answer)}\n` : formatAgentStatus(answer));
  return EXIT.ok;
}

async function transition(client: () => ServerClient, action: 'suspend' | 'resume', { values, name }: Parsed, io: Io): Promise<number> {
  const body = { by: operator(values), ...(typeof values['reason'] === 'string' ? { reason: values['reason'] } : {}) };
  const c = client();
  const answer = await c.post<AgentStatus>(`${agentPath(name)}/${action}`, { body });
  if (!isAgentStatus(answer)) throw notTheApi(c, `POST ${agentPath(name)}/${action}`);
  io.stdout(values['json'] ? `${JSON.stringify(answer)}\n` : `agent ${clean(answer.name)} is ${clean(answer.state)} (recorded as run ${clean(answer.since?.run ?? '?')})\n`);
  return EXIT.ok;
}

async function upgrade(client: () => ServerClient, { values, name }: Parsed, io: Io): Promise<number> {
  const file = values['component'];
  if (typeof file !== 'string') throw new UsageError(`ice agents upgrade: --component <new.wasm> is required: the component that replaces agent ${name}'s\nusage: ${AGENTS_USAGE}`);
  const query = new URLSearchParams({ by: operator(values) });
  if (values['against'] !== undefined) query.set('against', wholeNumber('agents upgrade', '--against', String(values['against']), 1000));
  if (values['force']) query.set('force', '1');
  const bytes = readUserFile('agents upgrade', '--component', file);
  const c = client();
  const report = await c.post<UpgradeReport>(`${agentPath(name)}/upgrade?${query}`, { bytes: { data: bytes, type: 'application/wasm' } });
  if (typeof report.from !== 'string' || typeof report.to !== 'string') throw notTheApi(c, `POST ${agentPath(name)}/upgrade`, "an upgrade's report");
  if (values['json']) {
    io.stdout(`${JSON.stringify(report)}\n`);
    return EXIT.ok;
  }
  const replayed = report.replayed ?? [];
  const diverged = replayed.filter((r) => !r.matches).length;
  io.stdout(
    `agent ${clean(name)} upgraded: ${digest(report.from)} → ${digest(report.to)} (recorded as run ${clean(report.run)})\n` +
      (replayed.length === 0
        ? 'no earlier runs to replay against it\n'
        : `replayed ${replayed.length} recent run${replayed.length === 1 ? '' : 's'} against it: ${diverged === 0 ? 'all match' : `${diverged} diverged${report.forced ? ' (upgraded anyway: --force)' : ''}`}\n`) +
      formatReplayed(replayed.filter((r) => !r.matches)),
  );
  return EXIT.ok;
}

async function invoke(client: () => ServerClient, { values, name, commandArgs }: Parsed, io: Io): Promise<number> {
  const input = typeof values['input'] === 'string' ? values['input'] : undefined;
  const fn = typeof values['function'] === 'string' ? values['function'] : undefined;
  let request: Record<string, unknown>;
  if (commandArgs !== undefined) {
    if (fn !== undefined || values['args'] !== undefined) throw new UsageError(`ice agents invoke: give a command's arguments after -- or --function, not both\nusage: ${AGENTS_USAGE}`);
    // As with `ice run`, a command's --input is its stdin.
    request = { command: commandArgs, ...(input !== undefined ? { stdin: input } : {}) };
  } else if (fn !== undefined) {
    if (input !== undefined) throw new UsageError(`ice agents invoke: give --input (a run of run(input)) or --function with --args (a typed call), not both\nusage: ${AGENTS_USAGE}`);
    request = { function: fn, args: jsonArgs(values['args']) };
  } else {
    if (values['args'] !== undefined) throw new UsageError(`ice agents invoke: --args goes with --function <name>: the function's arguments by parameter name\nusage: ${AGENTS_USAGE}`);
    request = { input: input ?? '' };
  }
  const by = operator(values);
  const c = client();
  const answer = await c.post<{ run: RunResultJson }>(`${agentPath(name)}/invoke`, { body: { ...request, by } });
  const result = answer.run;
  if (typeof result !== 'object' || result === null || typeof result.ok !== 'boolean' || typeof result.runId !== 'string') {
    throw notTheApi(c, `POST ${agentPath(name)}/invoke`, "a run's result");
  }
  if (values['json']) io.stdout(`${JSON.stringify(answer)}\n`);
  else {
    if (result.ok && typeof result.output === 'string') io.stdout(result.output.endsWith('\n') ? result.output : `${result.output}\n`);
    io.stderr(`${runSummary(result)}\n`);
  }
  return result.ok ? EXIT.ok : result.outcome === 'error' ? EXIT.guestError : EXIT.trap;
}

/** The fields the tables read: a server that answers otherwise is not the `ice serve` this client knows. */
function isAgentStatus(value: unknown): value is AgentStatus {
  const a = value as AgentStatus | null;
  return (
    typeof a === 'object' && a !== null && typeof a.name === 'string' && typeof a.state === 'string' &&
    typeof a.component?.name === 'string' && typeof a.component.digest === 'string' && typeof a.policy?.source === 'string' &&
    typeof a.queue?.length === 'number' && typeof a.queue.capacity === 'number' && typeof a.queue.running === 'number' &&
    typeof a.faults?.recent === 'number' && typeof a.faults.max === 'number' && typeof a.faults.windowMs === 'number'
  );
}

function notTheApi(client: ServerClient, request: string, what = "an agent's status"): UsageError {
  return new UsageError(`ice ${client.command}: ${client.target.url} answered ${request} with JSON that is not ${what}: is it an ice serve, of this ICE's version?`);
}

function jsonArgs(text: string | boolean | undefined): unknown {
  if (typeof text !== 'string') return {};
  let args: unknown;
  try {
    args = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`ice agents invoke: --args is not JSON (${error instanceof Error ? error.message : String(error)}): pass an object keyed by parameter name, like --args '{"a": 1, "b": 2}'`);
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new UsageError(`ice agents invoke: --args must be a JSON object keyed by parameter name, like --args '{"a": 1, "b": 2}'`);
  return args;
}

function operator(values: Parsed['values']): string {
  const by = values['by'];
  if (typeof by !== 'string') return defaultOperator();
  if (by.trim() === '' || by.length > 128 || /[\u0000-\u001f]/u.test(by)) throw new UsageError('ice agents: --by must be a name of 1 to 128 printable characters: who you are, for the ledger');
  return by;
}

function wholeNumber(command: string, flag: string, text: string, max: number): string {
  if (!/^\d{1,4}$/u.test(text) || Number(text) > max) throw new UsageError(`ice ${command}: ${flag} must be a whole number from 0 to ${max}, got ${JSON.stringify(text)}\nusage: ${AGENTS_USAGE}`);
  return String(Number(text));
}

function agentPath(name: string): string {
  return `/v1/agents/${encodeURIComponent(name)}`;
}

// ── printing ─────────────────────────────────────────────────────────────────────────────────────

/** `run <id> ok · 3 calls · 12 ms · ledger root <16 hex>`, or the outcome and its reason on one line. */
export function runSummary(result: RunResultJson): string {
  const reason = result.error === undefined ? '' : `: ${shorten(clean(result.error.replace(/\s+/gu, ' ').trim()), 200)}`;
  const outcome = result.ok
    ? 'ok'
    : result.outcome === 'limit'
      ? `limit${result.limit ? ` (${clean(result.limit)})` : ''}${reason}`
      : result.outcome === 'trap'
        ? `trap${result.blame ? ` (${clean(result.blame)} blame)` : ''}${reason}`
        : `${clean(result.outcome)}${reason}`;
  const calls = `${result.calls} call${result.calls === 1 ? '' : 's'}`;
  return `run ${clean(result.runId)} ${outcome} · ${calls} · ${Math.round(result.durationMs)} ms · ledger root ${clean(String(result.ledgerRoot)).slice(0, 16)}`;
}

export function formatAgentList(agents: readonly AgentStatus[]): string {
  const header = ['agent', 'state', 'component', 'queue', 'running', 'faults', 'last run'];
  const rows = agents.map((a) => [
    clean(a.name),
    clean(a.state),
    `${shorten(clean(a.component.name), 32)} ${digest(a.component.digest)}`,
    `${a.queue.length}/${a.queue.capacity}`,
    String(a.queue.running),
    `${a.faults.recent}/${a.faults.max}`,
    a.lastRun ? `${clean(a.lastRun.run)} ${clean(a.lastRun.outcome)}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i]!))));
  const rightAligned = [false, false, false, true, true, true, false];
  const render = (cells: readonly string[]): string =>
    cells
      .map((c, i) => {
        if (i === cells.length - 1) return c;
        const pad = ' '.repeat(widths[i]! - width(c));
        return rightAligned[i] ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  const lines = [render(header), render(widths.map((w) => '─'.repeat(w))), ...rows.map(render)];
  if (rows.length === 0) lines.push('(no agents)');
  lines.push('', `${agents.length} agent${agents.length === 1 ? '' : 's'}`);
  return `${lines.join('\n')}\n`;
}

export function formatAgentStatus(a: AgentStatus): string {
  const t = a.triggers ?? {};
  const triggers = [
    ...(t.events ? [`events ${t.events.map(clean).join(', ')}`] : []),
    ...(t.schedule ? [`schedule ${clean(t.schedule)}`] : []),
    ...(t.http ? [`http ${clean(t.http)}`] : []),
  ];
  const lines = [
    `agent      ${clean(a.name)}`,
    `state      ${clean(a.state)}  (since run ${clean(a.since?.run ?? '?')})`,
    `component  ${clean(a.component.name)}  ${digest(a.component.digest)}`,
    `policy     ${clean(a.policy.source)}  ${digest(a.policy.digest)}`,
    `triggers   ${triggers.length === 0 ? 'none (runs only when invoked)' : triggers.join(' · ')}`,
    `queue      ${a.queue.length} waiting of ${a.queue.capacity}, ${a.queue.running} running (concurrency ${a.queue.concurrency})`,
    `faults     ${a.faults.recent} in the last ${seconds(a.faults.windowMs)} (quarantined at ${a.faults.max})`,
    `last run   ${a.lastRun ? `${clean(a.lastRun.run)}  ${clean(a.lastRun.outcome)}  at ${clean(a.lastRun.at)}` : 'none yet'}`,
  ];
  return `${lines.join('\n')}\n`;
}

function formatReplayed(replayed: readonly Replayed[]): string {
  return replayed.map((r) => `  run ${clean(String(r.run))}: ${r.matches ? 'matches' : `diverges${r.detail ? `: ${shorten(clean(r.detail), 160)}` : ''}`}\n`).join('');
}

function digest(hex: string | undefined): string {
  return `sha256:${clean(String(hex ?? '?')).slice(0, 12)}`;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
