/**
 * `ice`: dispatch, and the one place errors become exit codes. User errors (usage, policy, load,
 * build) print their message, never a stack trace; ICE_DEBUG=1 adds the stack for bug reports.
 */
import { BuildError } from '../build/errors.js';
import { LoadError } from '../component/errors.js';
import { PolicyError } from '../policy/errors.js';
import { SecretsError } from '../capabilities/secrets.js';
import { UsageError } from './args.js';
import { EXIT, processIo, safeIo, type Io } from './io.js';
import { AGENTS_USAGE, AUDIT_USAGE, BUILD_USAGE, CALL_USAGE, EVENTS_USAGE, INSPECT_USAGE, KV_USAGE, MCP_USAGE, REPLAY_USAGE, RUN_USAGE, SERVE_USAGE, STATE_USAGE } from './usage.js';

const HELP = `ice — run untrusted agents as WebAssembly components under explicit, audited authority

usage:
  ${RUN_USAGE}
  ${CALL_USAGE}
  ${INSPECT_USAGE}
  ${BUILD_USAGE}
  ${AUDIT_USAGE}
  ${REPLAY_USAGE}
  ${STATE_USAGE}
  ${EVENTS_USAGE}
  ${MCP_USAGE}
  ${SERVE_USAGE}
  ${AGENTS_USAGE}
  ${KV_USAGE}

exit codes: 0 ok · 1 the guest returned err, or a check failed (audit verify, state verify, replay
            divergence), or the server refused (ice agents: 409, 429, an upgrade's divergence) · 2 usage,
            policy, load or build error, or the server cannot be reached · 3 trap or limit
state: --state <dir> (default ./.ice) holds kv data and the ledger; prepared components are cached per user
       (ICE_CACHE_DIR, else $XDG_CACHE_HOME/ice, else ~/.cache/ice)
`;

type Command = (argv: string[], io: Io) => Promise<number>;

/** Loaded on demand: `ice run` should not pay for the AssemblyScript compiler, nor `ice build` for SQLite. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./run.js')).runCommand,
  call: async () => (await import('./call.js')).callCommand,
  mcp: async () => (await import('./mcp.js')).mcpCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
  agents: async () => (await import('./agents.js')).agentsCommand,
  kv: async () => (await import('./kv.js')).kvCommand,
  inspect: async () => (await import('./inspect.js')).inspectCommand,
  build: async () => (await import('./build.js')).buildCommand,
  audit: async () => (await import('./audit.js')).auditCommand,
  replay: async () => (await import('./replay.js')).replayCommand,
  state: async () => (await import('./state.js')).stateCommand,
  events: async () => (await import('./events.js')).eventsCommand,
};

export async function main(argv: string[], rawIo: Io = processIo): Promise<number> {
  const io = safeIo(rawIo);
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.stdout(HELP);
    return command ? EXIT.ok : EXIT.usage;
  }
  const load = COMMANDS[command];
  if (!load) {
    io.stderr(`ice: unknown command "${command}"\n\n${HELP}`);
    return EXIT.usage;
  }
  try {
    return await (await load())(rest, io);
  } catch (error) {
    if (error instanceof UsageError || error instanceof PolicyError || error instanceof LoadError || error instanceof BuildError || error instanceof SecretsError || (error instanceof Error && (error.name === 'RunInputError' || error.name === 'McpConfigError' || error.name === 'OperatorInputError'))) {
      io.stderr(`${error.message}\n`);
      return EXIT.usage;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr(`ice ${command}: internal error: ${message}\n`);
    if (process.env.ICE_DEBUG && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
    else io.stderr('(set ICE_DEBUG=1 for a stack trace, and please report it)\n');
    return EXIT.usage;
  }
}
