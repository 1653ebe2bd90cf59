/**
 * `ice mcp --config agents.yaml`: the config's agents as MCP tools over stdio. stdout carries only the
 * protocol: ICE's log, guest log lines and a WASI guest's output go to stderr, and so does anything
 * else that writes to process.stdout (a dependency's console.log, a worker thread's stdout). It serves
 * until the client closes stdin or the process gets SIGINT/SIGTERM, then answers the calls in flight
 * and closes the host.
 */
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { loadSecretsFile } from '../capabilities/secrets.js';
import { terminalSafe } from '../core/text.js';
import { loadMcpConfig } from '../mcp/config.js';
import { serveMcp } from '../mcp/server.js';
import { UsageError, withUsage } from './args.js';
import { MAX_COMPONENT_BYTES_OPTION, maxComponentBytes } from './component-size.js';
import { EXIT, type Io } from './io.js';
import { checkStateDir } from './paths.js';
import { MCP_USAGE } from './usage.js';

export async function mcpCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('mcp', MCP_USAGE, () =>
    parseArgs({
      args: argv,
      options: { config: { type: 'string' }, state: { type: 'string' }, 'in-process': { type: 'boolean', default: false }, secrets: { type: 'string' }, ...MAX_COMPONENT_BYTES_OPTION },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (positionals.length > 0) throw new UsageError(`ice mcp: unexpected ${positionals.join(' ')}: the agents come from --config\nusage: ${MCP_USAGE}`);
  if (!values.config) throw new UsageError(`ice mcp: --config <agents.yaml> is required: it names each agent's component and policy\nusage: ${MCP_USAGE}`);
  const config = loadMcpConfig(values.config);
  const triggered = config.agents.filter((a) => a.on.events || a.on.schedule || a.on.http).map((a) => a.name);
  if (triggered.length > 0) io.stderr(`ice mcp: the triggers (on:) of ${triggered.join(', ')} run only under ice serve; here they are ignored\n`);
  const secrets = values.secrets !== undefined ? loadSecretsFile(values.secrets) : undefined;
  const line = (text: string) => io.stderr(`${text}\n`);
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  // Until the client goes away (stdin ends, or stdout can no longer be written) or the process is asked
  // to stop; a signal while the agents load stops the server as soon as it is up. Registered before
  // anything is announced: a signal before a listener exists would kill the process outright. A second
  // SIGINT/SIGTERM while calls in flight finish kills it (the default).
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdin.once('end', stop);
  process.stdin.once('close', stop);
  const protocol = claimStdout(stop);
  const unlisten = () => {
    process.off('SIGINT', stop).off('SIGTERM', stop);
    process.stdin.off('end', stop).off('close', stop);
  };
  const serving = await serveMcp(
    config,
    {
      stateDir: checkStateDir('mcp', values.state, true),
      maxComponentBytes: maxComponentBytes('mcp', values['max-component-bytes']),
      ...(secrets ? { secrets, secretsSource: `the secrets file ${values.secrets}` } : {}),
      ...(values['in-process'] ? { execution: 'in-process' as const } : {}),
      onGuestLog: (e) => line(`[${terminalSafe(e.component)} ${e.level}] ${terminalSafe(e.message)}`),
      onGuestOutput: (e) => line(`[${terminalSafe(e.component)} ${e.stream}] ${terminalSafe(e.text.replace(/\n$/u, ''))}`),
    },
    new StdioServerTransport(process.stdin, protocol),
  ).catch((error: unknown) => {
    unlisten();
    throw error;
  });
  line(`ice mcp: serving ${serving.tools.length} tool${serving.tools.length === 1 ? '' : 's'} from ${config.agents.length} agent${config.agents.length === 1 ? '' : 's'} on stdio (${serving.tools.map((t) => t.name).join(', ')})`);
  void serving.closed.then(stop);
  if (process.stdin.readableEnded || process.stdin.destroyed) stop();
  await stopped;
  await serving.close();
  unlisten();
  return EXIT.ok;
}

/**
 * The protocol's own stream on fd 1. From here on, whatever else writes to process.stdout goes to
 * stderr: Node pipes a worker thread's stdout into process.stdout, and a stray console.log from any
 * dependency would otherwise corrupt the JSON-RPC stream. A failed write (the client is gone) stops
 * the server.
 */
function claimStdout(onBroken: () => void): Writable {
  const stdout = process.stdout;
  const protocolWrite = stdout.write.bind(stdout) as (chunk: Uint8Array | string, callback: (error?: Error | null) => void) => boolean;
  stdout.write = ((...args: Parameters<typeof stdout.write>) => process.stderr.write(...(args as Parameters<typeof process.stderr.write>))) as typeof stdout.write;
  stdout.on('error', onBroken);
  const protocol = new Writable({
    write(chunk: Uint8Array, _encoding, callback) {
      protocolWrite(chunk, callback);
    },
  });
  protocol.on('error', onBroken);
  return protocol;
}
