/**
 * MCP over Streamable HTTP at `/mcp`: the same tools as `ice mcp` (mcp/server.ts), one SDK `Server`
 * and transport per session. A tool call is queued on its agent like any trigger (serialized with the
 * agent's other runs, refused when its queue is full), recorded with cause `mcp`. An `ask` in a run a
 * session started goes to that session's client by elicitation; nobody else can answer it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { ApprovalRequest } from '../capabilities/define.js';
import { ICE_VERSION } from '../core/version.js';
import { newRunId } from '../ledger/index.js';
import { askClient, serveTools, toolTable } from '../mcp/server.js';
import type { ServeRuntime } from './runtime.js';

/** Sessions at most; an initialize beyond it is refused until one closes. */
const MAX_SESSIONS = 256;

export class McpSessions {
  private readonly sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: Server; closing: AbortController }>();
  /** Which session started a run, for its asks. */
  private readonly runs = new Map<string, { server: Server; closing: AbortController }>();

  constructor(
    private readonly runtime: () => ServeRuntime,
    private readonly source: string,
  ) {}

  /** The approver for runs an MCP session started; undefined for any other run. */
  approve(request: ApprovalRequest): Promise<{ approved: boolean; by?: string; reason?: string }> | undefined {
    const session = this.runs.get(request.runId);
    return session ? askClient(session.server, request, session.closing.signal) : undefined;
  }

  async handle(request: IncomingMessage, response: ServerResponse, body: unknown): Promise<void> {
    const id = request.headers['mcp-session-id'];
    const known = typeof id === 'string' ? this.sessions.get(id) : undefined;
    if (known) return known.transport.handleRequest(request, response, body);
    if (id !== undefined || request.method !== 'POST' || !isInitializeRequest(body)) {
      response.writeHead(id === undefined ? 400 : 404, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: id === undefined ? 'no session: send initialize first' : 'unknown or closed session: initialize a new one' }, id: null }));
      return;
    }
    if (this.sessions.size >= MAX_SESSIONS) {
      response.writeHead(503, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: `too many MCP sessions (${MAX_SESSIONS}); close one` }, id: null }));
      return;
    }
    const server = new Server({ name: 'ice', version: ICE_VERSION }, { capabilities: { tools: {} } });
    const closing = new AbortController();
    const runtime = this.runtime();
    const table = toolTable(
      runtime.names().map((name) => ({ name, agent: runtime.agent(name) })),
      this.source,
    );
    serveTools(server, table, async ({ agent, tool }, toolRequest, meta) => {
      // A W3C trace context in the request's _meta (MCP's convention for trace propagation) parents the run.
      const traceparent = typeof meta?.['traceparent'] === 'string' ? meta['traceparent'] : undefined;
      const runId = newRunId();
      const session = { server, closing };
      this.runs.set(runId, session);
      try {
        return await runtime.invoke(agent, toolRequest, 'mcp', { kind: 'mcp', tool }, { runId, ...(traceparent ? { traceparent } : {}) });
      } finally {
        this.runs.delete(runId);
      }
    });
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        this.sessions.set(sessionId, { transport, server, closing });
      },
    });
    transport.onclose = () => {
      closing.abort();
      if (transport.sessionId) this.sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    await transport.handleRequest(request, response, body);
  }

  async close(): Promise<void> {
    for (const { server, closing } of this.sessions.values()) {
      closing.abort();
      await server.close().catch(() => undefined);
    }
    this.sessions.clear();
  }
}
