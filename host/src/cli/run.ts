/** `ice run <component.wasm> --policy <file> [--input …] … [-- <command args>]`: one governed run of `run(input)` or of a WASI command. */
import { checkStateDir, readUserFile } from './paths.js';
import { createHost, type Host, type RunResult } from '../host.js';
import { onePositional, withUsage, UsageError } from './args.js';
import { parseArgs } from 'node:util';
import { MAX_COMPONENT_BYTES_OPTION, maxComponentBytes } from './component-size.js';
import { EXIT, type Io } from './io.js';
import { RUN_USAGE } from './usage.js';
import { cliApprover } from './approve.js';
import { loadSecretsFile } from '../capabilities/secrets.js';
import type { WasiOutputEntry } from '../capabilities/run-services.js';
import { terminalSafe } from '../core/text.js';

/** The options every command that runs a component takes (`ice run`, `ice call`). */
export const HOST_OPTIONS = {
  policy: { type: 'string' },
  state: { type: 'string' },
  log: { type: 'boolean', default: false },
  'in-process': { type: 'boolean', default: false },
  secrets: { type: 'string' },
  approve: { type: 'string' },
  'model-base-url': { type: 'string' },
  'model-key-secret': { type: 'string' },
  ...MAX_COMPONENT_BYTES_OPTION,
} as const;

interface HostValues {
  readonly state?: string | undefined;
  readonly log?: boolean | undefined;
  readonly 'in-process'?: boolean | undefined;
  readonly secrets?: string | undefined;
  readonly approve?: string | undefined;
  readonly 'model-base-url'?: string | undefined;
  readonly 'model-key-secret'?: string | undefined;
  readonly 'max-component-bytes'?: string | undefined;
}

/**
 * The host a run command uses. `showStdout()`: whether a WASI guest's stdout is also shown on stderr
 * (not for a command, whose stdout is the run's output).
 */
export async function runHost(command: string, values: HostValues, io: Io, showStdout: () => boolean = () => true): Promise<Host> {
  const approver = cliApprover(values.approve, { input: process.stdin, output: process.stderr });
  const secrets = values.secrets !== undefined ? loadSecretsFile(values.secrets) : undefined;
  const baseUrl = values['model-base-url'];
  if (baseUrl !== undefined && !/^https?:\/\//u.test(baseUrl)) {
    throw new UsageError(`ice ${command}: --model-base-url must be an http(s) URL like https://api.openai.com/v1, got ${JSON.stringify(baseUrl)}`);
  }
  const maxBytes = maxComponentBytes(command, values['max-component-bytes']);
  const writer = guestOutputWriter(io);
  return createHost({
    maxComponentBytes: maxBytes,
    ...(secrets ? { secrets, secretsSource: `the secrets file ${values.secrets}` } : {}),
    approve: approver.approve,
    approverName: approver.name,
    ...(baseUrl !== undefined
      ? { models: { openai: { baseUrl, ...(values['model-key-secret'] ? { apiKeySecret: values['model-key-secret'] } : {}) } } }
      : {}),
    stateDir: checkStateDir(command, values.state, true),
    // One line per log call, whatever the message holds: a guest cannot start a line that reads as ICE's.
    ...(values.log ? { onGuestLog: (e) => io.stderr(`[${terminalSafe(e.component)} ${e.level}] ${terminalSafe(e.message)}\n`) } : {}),
    ...(values['in-process'] ? { execution: 'in-process' as const } : {}),
    // A WASI guest's captured stdout/stderr (recorded in the ledger) is shown on stderr, never mixed into
    // the output, each of its lines marked as the guest's.
    onGuestOutput: (entry) => {
      if (entry.stream === 'stdout' && !showStdout()) return;
      writer(entry);
    },
  });
}

export async function runCommand(argv: string[], io: Io): Promise<number> {
  // Everything after `--` belongs to a WASI command, options included.
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const commandArgs = dash < 0 ? undefined : argv.slice(dash + 1);
  const { values, positionals } = withUsage('run', RUN_USAGE, () =>
    parseArgs({
      args: own,
      options: { ...HOST_OPTIONS, input: { type: 'string' }, 'input-file': { type: 'string' } },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (positionals.length > 1) {
    const extra = positionals.slice(1).join(' ');
    throw new UsageError(
      `ice run: expected one component file, got ${positionals.length}: ${positionals.join(' ')}\n` +
        `  the run's input is not a positional argument: pass it with --input ${JSON.stringify(extra)} (or --input-file <path>); a WASI command's arguments go after --\nusage: ${RUN_USAGE}`,
    );
  }
  const component = onePositional('run', positionals, 'component file', RUN_USAGE);
  if (!values.policy) throw new UsageError(`ice run: --policy <file> is required: a run without a policy has no authority to check\nusage: ${RUN_USAGE}`);
  if (values.input !== undefined && values['input-file'] !== undefined) {
    throw new UsageError(`ice run: give --input or --input-file, not both\nusage: ${RUN_USAGE}`);
  }
  const given = values['input-file'] !== undefined ? readInputFile(values['input-file']) : values.input;

  let isCommand = false;
  const host = await runHost('run', values, io, () => !isCommand);
  try {
    const agent = await host.load(component, values.policy);
    isCommand = !agent.implementsRun && agent.commandExport !== undefined;
    if (commandArgs !== undefined && !isCommand) {
      throw new UsageError(`ice run: ${component} is not a WASI command, so it takes no arguments after --; pass its input with --input\nusage: ${RUN_USAGE}`);
    }
    const result = isCommand ? await agent.command(commandArgs ?? [], given) : await agent.run(given ?? '');
    if (result.ok && result.output !== '') io.stdout(result.output.endsWith('\n') || isCommand ? result.output : `${result.output}\n`);
    else if (result.ok && !isCommand) io.stdout('\n');
    io.stderr(`${summary(result)}\n`);
    return exitCode(result);
  } finally {
    host.close();
  }
}

/** 0 ok · 1 the guest returned err (a command's failure exit) · 3 trap or limit. */
export function exitCode(result: RunResult): number {
  return result.ok ? EXIT.ok : result.outcome === 'error' ? EXIT.guestError : EXIT.trap;
}

/**
 * Shows a guest's WASI stdout/stderr as lines `[<component> stdout] <text>`. Chunks need not end at a
 * line break: an unfinished line continues with the next chunk of the same stream, and is ended first
 * when another stream writes, so every line on the terminal carries its marker.
 */
export function guestOutputWriter(io: Io): (entry: WasiOutputEntry) => void {
  let open: string | undefined;
  return (entry) => {
    const key = `${entry.component}\u0000${entry.stream}`;
    const prefix = `[${terminalSafe(entry.component)} ${entry.stream}] `;
    let text = open !== undefined && open !== key ? '\n' : '';
    if (open !== key) open = undefined;
    for (const line of entry.text.split(/(?<=\n)/u)) {
      if (line === '') continue;
      if (open === undefined) text += prefix;
      const ended = line.endsWith('\n');
      text += ended ? `${terminalSafe(line.slice(0, -1))}\n` : terminalSafe(line);
      open = ended ? undefined : key;
    }
    io.stderr(text);
  };
}

/** One line: run id, outcome and call counts. */
export function summary(result: RunResult): string {
  const c = result.counts;
  const unknown = c.unknown ? `, ${c.unknown} outcome unknown` : '';
  const counts = `${c.calls} call${c.calls === 1 ? '' : 's'} (${c.allowed} allowed, ${c.denied} denied, ${c.limited} limited, ${c.invalid} invalid${unknown})`;
  const outcome = result.ok
    ? 'ok'
    : result.outcome === 'error'
      ? `error: ${oneLine(result.error)}`
      : result.outcome === 'limit'
        ? `limit (${result.limit}): ${oneLine(result.error)}`
        : `trap (${result.blame} blame): ${oneLine(result.error)}`;
  const fuel = result.fuel === undefined ? '' : ` · fuel ${result.fuel}`;
  return `run ${result.runId} ${outcome} · ${counts}${fuel} · ledger root ${result.ledgerRoot.slice(0, 16)}`;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function readInputFile(path: string): string {
  const bytes = readUserFile('run', '--input-file', path);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`ice run: --input-file ${path} is not valid UTF-8 text; a run's input is a WIT string`);
  }
}
