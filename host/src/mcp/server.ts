/**
 * An MCP server over the loaded agents, built on the SDK's low-level `Server` (tool schemas are JSON
 * Schema from the components' types, not zod). Each tools/call is one governed run, exactly as `ice
 * call` / `ice run` would make it: fresh instance, every import mediated and recorded, the policy's
 * limits.
 *
 * What a client can reach: tools/list and tools/call, nothing else. The server declares the tools
 * capability only — no resources, prompts, sampling, logging or completions — and its tools are the
 * agents' exports: none reads or changes a policy, a grant, a pin or the ledger. Policies are read once,
 * from files, before the server answers anything; nothing an MCP client can send changes what an agent
 * may do. `ask` rules go to the client's user by elicitation when the client supports (form)
 * elicitation; otherwise they are denied, as with a host that has no approver.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ApprovalRequest } from '../capabilities/define.js';
import { LoadError } from '../component/errors.js';
import { DEFAULT_MAX_COMPONENT_BYTES, readComponentFile } from '../component/source.js';
import { sha256Hex } from '../core/digest.js';
import { terminalSafe } from '../core/text.js';
import { ICE_VERSION } from '../core/version.js';
import { createHost, RunInputError, type Agent, type Host, type HostOptions, type RunResult } from '../host.js';
import { McpConfigError, type AgentEntry, type McpConfig } from './config.js';
import { toolsOf, type Tool, type ToolEntry } from './tools.js';

export interface McpServing {
  readonly host: Host;
  readonly tools: readonly Tool[];
  /** Settles when the transport closes by itself (e.g. the SDK's read buffer overflowed) or by close(). */
  readonly closed: Promise<void>;
  /** Answers the calls already running (each within its policy's limits), then closes the transport and the host. */
  close(): Promise<void>;
}

/** Who the ledger says answered an ask the client's user decided. */
export const MCP_APPROVER = 'mcp-client';

/**
 * Loads every agent of the config (refusing to serve if any fails: a pin that does not match, a
 * missing file, a policy error, a component ICE refuses), then serves them on `transport`.
 * @throws McpConfigError, LoadError, PolicyError (each message names the agent) before anything is served
 */
export async function serveMcp(config: McpConfig, hostOptions: Omit<HostOptions, 'approve' | 'approverName'>, transport: Transport): Promise<McpServing> {
  // Tools only (see the header): no other capability is declared, so the SDK refuses every other method.
  const server = new Server({ name: 'ice', version: ICE_VERSION }, { capabilities: { tools: {} } });
  // Aborted when the server closes: an ask still waiting for the client's user is denied then.
  const closing = new AbortController();
  const host = await createHost({ ...hostOptions, approve: (request) => askClient(server, request, closing.signal), approverName: MCP_APPROVER });
  const agents: { name: string; agent: Agent }[] = [];
  let served: { tools: Tool[]; inFlight: Set<Promise<unknown>> };
  try {
    for (const agentConfig of config.agents) {
      agents.push({ name: agentConfig.name, agent: await loadAgent(host, agentConfig, config.source, hostOptions.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES) });
    }
    served = serveTools(server, toolTable(agents, config.source), directly);
  } catch (error) {
    host.close();
    throw error;
  }
  const { tools, inFlight } = served;
  const closed = new Promise<void>((resolve) => (server.onclose = resolve));
  await server.connect(transport);
  return {
    host,
    tools,
    closed,
    async close() {
      // Calls already received end (each within its own limits.timeoutMs; asks still open are denied)
      // and are answered before the transport closes. The SDK starts a handler a few promise steps after
      // a message arrives and sends its response a few after it settles: hence a turn of the event loop
      // before each look.
      closing.abort();
      const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
      await turn();
      while (inFlight.size > 0) {
        await Promise.allSettled([...inFlight]);
        await turn();
      }
      await server.close();
      host.close();
    },
  };
}

/** The tools of `agents`, by name. @throws McpConfigError when two would have one name */
export function toolTable(agents: readonly { readonly name: string; readonly agent: Agent }[], source: string): Map<string, { tool: Tool; entry: ToolEntry; agent: string }> {
  const table = new Map<string, { tool: Tool; entry: ToolEntry; agent: string }>();
  for (const { name, agent } of agents) {
    for (const { tool, entry } of toolsOf(name, agent)) {
      if (table.has(tool.name)) throw new McpConfigError(`agent ${name}: two tools would be named ${tool.name}; rename the agent in ${source}`);
      table.set(tool.name, { tool, entry, agent: name });
    }
  }
  return table;
}

/** What a tool call runs: the agent's run, typed call or command (the runner may queue it, as `ice serve` does). */
export type ToolRequest =
  | { readonly kind: 'run'; readonly input: string }
  | { readonly kind: 'call'; readonly function: string; readonly args: unknown }
  | { readonly kind: 'command'; readonly args: readonly string[]; readonly stdin?: string };
export type ToolRunner = (
  target: { readonly agent: string; readonly entry: ToolEntry; readonly tool: string },
  request: ToolRequest,
  /** The request's `_meta` (e.g. a W3C `traceparent`). */
  meta?: Readonly<Record<string, unknown>>,
) => Promise<RunResult & { readonly value?: unknown }>;

/** `ice mcp`'s runner: the agent runs at once, on the host's pool. */
const directly: ToolRunner = ({ entry }, request) =>
  request.kind === 'run' ? entry.agent.run(request.input) : request.kind === 'call' ? entry.agent.call(request.function, request.args) : entry.agent.command(request.args, request.stdin);

/**
 * Sets `server`'s tools/list and tools/call handlers over `table`; each call goes through `run`.
 * Returns the tools and the calls in flight (for a close that answers them first).
 */
export function serveTools(server: Server, table: ReadonlyMap<string, { tool: Tool; entry: ToolEntry; agent: string }>, run: ToolRunner): { tools: Tool[]; inFlight: Set<Promise<unknown>> } {
  const tools = [...table.values()].map((t) => t.tool);
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.map((t) => ({ ...t })) }));
  const inFlight = new Set<Promise<unknown>>();
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const found = table.get(request.params.name);
    if (!found) throw new InvalidParams(`unknown tool ${JSON.stringify(request.params.name)}; this server has ${tools.map((t) => t.name).join(', ')}`);
    const call = callTool(found.entry, request.params.arguments ?? {}, (r) => run({ agent: found.agent, entry: found.entry, tool: request.params.name }, r, request.params._meta));
    inFlight.add(call);
    try {
      return await call;
    } catch (error) {
      // Arguments that do not fit: nothing ran, nothing was recorded.
      if (error instanceof RunInputError) throw new InvalidParams(error.message);
      throw error;
    } finally {
      inFlight.delete(call);
    }
  });
  return { tools, inFlight };
}

/**
 * One agent of the config, loaded from the bytes its pin was checked on (the file is read once: it
 * cannot change between the check and the load). Every refusal names the agent.
 */
export async function loadAgent(host: Host, entry: AgentEntry, source: string, maxComponentBytes: number): Promise<Agent> {
  const named = (error: unknown): unknown => {
    if (error instanceof Error) error.message = `agent ${entry.name}: ${error.message.replaceAll('<component bytes>', entry.component)}`;
    return error;
  };
  let bytes: Uint8Array;
  try {
    bytes = readComponentFile(entry.component, maxComponentBytes);
  } catch (error) {
    throw named(error);
  }
  if (entry.sha256 !== undefined) {
    const actual = sha256Hex(bytes);
    if (actual !== entry.sha256) {
      throw new LoadError(
        'pin-mismatch',
        entry.component,
        `agent ${entry.name}: ${entry.component} is not the pinned component: its sha256 is ${actual}, ${source} pins ${entry.sha256} (update the pin only after reviewing the new component)`,
      );
    }
  }
  return host.load(bytes, entry.policy).catch((error: unknown) => {
    throw named(error);
  });
}

/**
 * A JSON-RPC invalid-params error whose message is exactly `message` (McpError's own prefixes `MCP
 * error -32602:`, which the client's McpError would then prefix again).
 */
class InvalidParams extends McpError {
  constructor(message: string) {
    super(ErrorCode.InvalidParams, message);
    this.message = message;
  }
}

async function callTool(entry: ToolEntry, args: Record<string, unknown>, run: (request: ToolRequest) => Promise<RunResult & { readonly value?: unknown }>): Promise<CallToolResult> {
  switch (entry.kind) {
    case 'call': {
      const result = await run({ kind: 'call', function: entry.fn.name, args });
      return result.ok ? { content: [{ type: 'text', text: result.output }], structuredContent: { result: result.value ?? null }, _meta: meta(result) } : failure(result);
    }
    case 'run': {
      const extra = Object.keys(args).filter((k) => k !== 'input');
      if (typeof args['input'] !== 'string' || extra.length > 0) {
        const problem = extra.length > 0 ? `unknown argument ${extra.map((k) => JSON.stringify(k)).join(', ')}` : `input: expected a string`;
        throw new RunInputError(`invalid arguments for run: ${problem} (the arguments are { "input": <string> })`);
      }
      const result = await run({ kind: 'run', input: args['input'] });
      return result.ok ? { content: [{ type: 'text', text: result.output }], _meta: meta(result) } : failure(result);
    }
    case 'command': {
      const { args: argv = [], stdin, ...extra } = args as { args?: unknown; stdin?: unknown };
      const problem =
        Object.keys(extra).length > 0
          ? `unknown argument ${Object.keys(extra).map((k) => JSON.stringify(k)).join(', ')}`
          : !Array.isArray(argv)
            ? 'args: expected a list of strings'
            : argv.findIndex((a) => typeof a !== 'string') >= 0
              ? `args[${argv.findIndex((a) => typeof a !== 'string')}]: expected a string`
              : stdin !== undefined && typeof stdin !== 'string'
                ? 'stdin: expected a string'
                : undefined;
      if (problem) throw new RunInputError(`invalid arguments for run: ${problem} (the arguments are { "args"?: [<string>…], "stdin"?: <string> })`);
      const result = await run({ kind: 'command', args: argv as string[], ...(typeof stdin === 'string' ? { stdin } : {}) });
      return result.ok ? { content: [{ type: 'text', text: result.output }], _meta: meta(result) } : failure(result);
    }
  }
}

function meta(result: RunResult): Record<string, unknown> {
  return { 'ice/runId': result.runId, 'ice/ledgerRoot': result.ledgerRoot, 'ice/outcome': result.outcome };
}

/** A run that did not end ok: the guest's err, a limit or a trap, as a tool error the model can read. */
function failure(result: Exclude<RunResult, { ok: true }>): CallToolResult {
  const reason =
    result.outcome === 'error'
      ? `error: ${result.error}`
      : result.outcome === 'limit'
        ? `limit (${result.limit}): ${result.error}`
        : `trap (${result.blame ?? 'guest'} blame): ${result.error}`;
  return { isError: true, content: [{ type: 'text', text: reason }], _meta: meta(result) };
}

/**
 * An `ask` rule, put to the client's user by a form elicitation with one boolean, `approve`. Anything
 * but an explicit approval denies: a client that cannot elicit, a decline, a cancel, a failed or
 * timed-out request (the SDK cancels it at the rule's timeout, so the client's prompt goes away).
 */
export async function askClient(server: Server, request: ApprovalRequest, closing: AbortSignal): Promise<{ approved: boolean; by?: string; reason?: string }> {
  if (!server.getClientCapabilities()?.elicitation?.form) {
    return { approved: false, by: 'ice', reason: 'the MCP client does not support (form) elicitation, so nobody can approve this ask' };
  }
  if (closing.aborted) return { approved: false, by: 'ice', reason: 'the MCP server is closing' };
  // Guest- and policy-controlled text, escaped like ice run's terminal prompt.
  const { detail } = request;
  const shown = detail ? `\n${terminalSafe(detail.what)} (${detail.bytes} bytes): "${terminalSafe(detail.head)}${Buffer.byteLength(detail.head) < detail.bytes ? '…' : ''}"` : '';
  const message =
    `Agent ${terminalSafe(request.component)} (${request.call}) asks: ${terminalSafe(request.summary)}${shown}\n` +
    `Policy rule: ${request.rule}. Approve this one call? (no answer in ${Math.round(request.timeoutMs / 1000)} s means no)`;
  let answer: Awaited<ReturnType<Server['elicitInput']>>;
  try {
    answer = await server.elicitInput(
      { message, requestedSchema: { type: 'object', properties: { approve: { type: 'boolean', title: 'Approve', description: 'Allow this one call' } }, required: ['approve'] } },
      { timeout: request.timeoutMs, signal: closing },
    );
  } catch (error) {
    if (closing.aborted) return { approved: false, by: MCP_APPROVER, reason: 'the MCP server closed (the client went away) before its user answered' };
    return { approved: false, by: MCP_APPROVER, reason: `the elicitation failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (answer.action !== 'accept') return { approved: false, by: MCP_APPROVER, reason: `the client's user chose ${answer.action}` };
  return answer.content?.['approve'] === true ? { approved: true, by: MCP_APPROVER } : { approved: false, by: MCP_APPROVER, reason: "the client's user did not approve" };
}
