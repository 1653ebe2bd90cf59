/**
 * An MCP server over the loaded agents, built on the SDK's low-level `Server` (tool schemas are JSON
 * Schema from the components' types, not zod). Each tools/call is one governed run, exactly as `ice
 * call` / `ice run` would make it: fresh instance, every import mediated and recorded, the policy's
 * limits. The server declares the tools capability and nothing else — no resources, prompts or
 * sampling — and no tool touches policies or grants: nothing an MCP client can send changes what an
 * agent may do. `ask` rules go to the client by elicitation when it supports it; otherwise they are
 * denied, as with a host that has no approver.
 */
import { readFileSync } from 'node:fs';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { sha256Hex } from '../core/digest.js';
import { ICE_VERSION } from '../core/version.js';
import { createHost, RunInputError, type Host, type HostOptions, type RunResult } from '../host.js';
import type { ApprovalRequest } from '../capabilities/define.js';
import { McpConfigError, type McpConfig } from './config.js';
import { toolsOf, type Tool, type ToolEntry } from './tools.js';

export interface McpServing {
  readonly host: Host;
  readonly tools: readonly Tool[];
  close(): Promise<void>;
}

/**
 * Loads every agent of the config (refusing to serve if any fails: a pin that does not match, a
 * policy error, a component ICE refuses), then serves them on `transport`.
 * @throws McpConfigError, LoadError, PolicyError before anything is served
 */
export async function serveMcp(config: McpConfig, hostOptions: Omit<HostOptions, 'approve' | 'approverName'>, transport: Transport): Promise<McpServing> {
  const server = new Server({ name: 'ice', version: ICE_VERSION }, { capabilities: { tools: {} } });
  const host = await createHost({ ...hostOptions, approve: (request) => askClient(server, request), approverName: 'mcp-client' });
  const entries = new Map<string, ToolEntry>();
  const tools: Tool[] = [];
  try {
    for (const agentConfig of config.agents) {
      if (agentConfig.sha256 !== undefined) {
        const actual = sha256Hex(readFileSync(agentConfig.component));
        if (actual !== agentConfig.sha256) {
          throw new McpConfigError(
            `agent ${agentConfig.name}: ${agentConfig.component} is not the pinned component: its sha256 is ${actual}, ${config.source} pins ${agentConfig.sha256} (update the pin only after reviewing the new component)`,
          );
        }
      }
      const agent = await host.load(agentConfig.component, agentConfig.policy).catch((error: unknown) => {
        if (error instanceof Error) error.message = `agent ${agentConfig.name}: ${error.message}`;
        throw error;
      });
      for (const { tool, entry } of toolsOf(agentConfig.name, agent)) {
        if (entries.has(tool.name)) throw new McpConfigError(`agent ${agentConfig.name}: two tools would be named ${tool.name}; rename the agent`);
        entries.set(tool.name, entry);
        tools.push(tool);
      }
    }
  } catch (error) {
    host.close();
    throw error;
  }

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.map((t) => ({ ...t })) }));
  const inFlight = new Set<Promise<unknown>>();
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const entry = entries.get(request.params.name);
    if (!entry) throw new InvalidParams(`unknown tool ${JSON.stringify(request.params.name)}; this server has ${tools.map((t) => t.name).join(', ')}`);
    const call = callTool(entry, request.params.arguments ?? {});
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
  await server.connect(transport);
  return {
    host,
    tools,
    async close() {
      // Calls already running finish (each within its own limits.timeoutMs) and are answered first: the
      // SDK sends a response a few promise steps after the handler returns, hence the turn of the loop.
      do {
        await Promise.allSettled([...inFlight]);
        await new Promise((resolve) => setImmediate(resolve));
      } while (inFlight.size > 0);
      await server.close();
      host.close();
    },
  };
}

/** A JSON-RPC invalid-params error (the SDK answers a thrown error's `code` and `message` as they are). */
class InvalidParams extends Error {
  readonly code = ErrorCode.InvalidParams;
}

async function callTool(entry: ToolEntry, args: Record<string, unknown>): Promise<CallToolResult> {
  switch (entry.kind) {
    case 'call': {
      const result = await entry.agent.call(entry.fn.name, args);
      return result.ok ? { content: [{ type: 'text', text: result.output }], structuredContent: { result: result.value ?? null }, _meta: meta(result) } : failure(result);
    }
    case 'run': {
      const extra = Object.keys(args).filter((k) => k !== 'input');
      if (typeof args['input'] !== 'string' || extra.length > 0) {
        throw new RunInputError(`expected arguments { "input": <string> }${extra.length > 0 ? `; unknown ${extra.map((k) => JSON.stringify(k)).join(', ')}` : ''}`);
      }
      const result = await entry.agent.run(args['input']);
      return result.ok ? { content: [{ type: 'text', text: result.output }], _meta: meta(result) } : failure(result);
    }
    case 'command': {
      const { args: argv = [], stdin, ...extra } = args as { args?: unknown; stdin?: unknown };
      if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string') || (stdin !== undefined && typeof stdin !== 'string') || Object.keys(extra).length > 0) {
        throw new RunInputError('expected arguments { "args"?: [<string>…], "stdin"?: <string> }');
      }
      const result = await entry.agent.command(argv as string[], stdin as string | undefined);
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

/** An `ask` rule, put to the client's user by elicitation; anything but an explicit approval denies. */
async function askClient(server: Server, request: ApprovalRequest): Promise<{ approved: boolean; by?: string; reason?: string }> {
  if (!server.getClientCapabilities()?.elicitation) {
    return { approved: false, by: 'ice', reason: 'the MCP client does not support elicitation, so nobody can approve this ask' };
  }
  const detail = request.detail ? `\n${request.detail.what} (${request.detail.bytes} bytes): ${JSON.stringify(request.detail.head)}` : '';
  const answer = await server.elicitInput({
    message: `Agent ${request.component} (${request.call}) asks: ${request.summary}${detail}\nPolicy rule: ${request.rule}. Approve this one call?`,
    requestedSchema: { type: 'object', properties: { approve: { type: 'boolean', title: 'Approve', description: 'Allow this one call' } }, required: ['approve'] },
  });
  if (answer.action !== 'accept') return { approved: false, by: 'mcp-client', reason: `the client's user chose ${answer.action}` };
  return answer.content?.['approve'] === true ? { approved: true, by: 'mcp-client' } : { approved: false, by: 'mcp-client', reason: 'the client\'s user did not approve' };
}
