/**
 * `ice mcp --config agents.yaml`: the config's agents as MCP tools over stdio. stdout carries only the
 * protocol: ICE's log, guest log lines and a WASI guest's output go to stderr.
 */
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
  const secrets = values.secrets !== undefined ? loadSecretsFile(values.secrets) : undefined;
  const line = (text: string) => io.stderr(`${text}\n`);
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
    new StdioServerTransport(),
  );
  line(`ice mcp: serving ${serving.tools.length} tool${serving.tools.length === 1 ? '' : 's'} from ${config.agents.length} agent${config.agents.length === 1 ? '' : 's'} on stdio (${serving.tools.map((t) => t.name).join(', ')})`);
  // Until the client goes away (stdin ends) or the process is asked to stop.
  await new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await serving.close();
  return EXIT.ok;
}
