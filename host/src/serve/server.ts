/**
 * `ice serve`: the runtime (runtime.ts) behind an HTTP listener (http.ts) with MCP at /mcp
 * (mcp-http.ts), its token and address in the state directory (files.ts) so that `ice agents`, `ice
 * audit tail` and `ice events list --follow` on the same state find it by themselves.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { secretSource } from '../capabilities/secrets.js';
import { DEFAULT_MAX_COMPONENT_BYTES } from '../component/source.js';
import type { HostOptions } from '../host.js';
import type { McpConfig } from '../mcp/config.js';
import { claimState, loadToken, removeServerInfo, writeServerInfo, ServeSetupError } from './files.js';
import { apiHandler } from './http.js';
import { McpSessions } from './mcp-http.js';
import { ServeMetrics } from './metrics.js';
import { RunTracer } from '../telemetry/traces.js';
import { ServeRuntime } from './runtime.js';
import { ClusterNode, type ClusterOptions } from '../cluster/node.js';
import { WebhookVerifier } from './webhook.js';

export interface ServeOptions {
  readonly stateDir: string;
  /** `host:port`; default 127.0.0.1:7700; port 0 picks a free one. */
  readonly listen?: string;
  readonly tokenFile?: string;
  readonly host?: Omit<HostOptions, 'stateDir' | 'approve' | 'approverName' | 'onEvent'>;
  readonly logger: Logger;
  /** Extra origins allowed on /mcp. */
  readonly allowOrigins?: readonly string[];
  /** A cluster's shared PostgreSQL (`--db`): this server is one host of it (cluster/). */
  readonly cluster?: ClusterOptionsFor;
}

/** How a server joins a cluster (the logger is the server's). */
export type ClusterOptionsFor = Omit<ClusterOptions, 'logger'>;

export interface RunningServer {
  readonly url: string;
  readonly runtime: ServeRuntime;
  /** Stops listening, drains runs in flight up to `drainMs`, ends the rest incomplete; returns the runs cut off. */
  close(drainMs: number): Promise<string[]>;
}

const DEFAULT_LISTEN = '127.0.0.1:7700';

export async function startServer(config: McpConfig, options: ServeOptions): Promise<RunningServer> {
  const { hostname, port } = parseListen(options.listen ?? DEFAULT_LISTEN);
  claimState(options.stateDir);
  const { token, file: tokenFile } = loadToken(options.stateDir, options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {});
  let runtime: ServeRuntime | undefined;
  // Traces of runs, exported over OTLP/HTTP when the environment names an endpoint.
  const tracer = RunTracer.fromEnvironment();
  const sessions = new McpSessions(() => runtime!, config.source);
  const cluster = options.cluster ? await ClusterNode.open({ ...options.cluster, logger: options.logger }) : undefined;
  try {
    runtime = await ServeRuntime.start(config, {
      stateDir: options.stateDir,
      ...(cluster ? { cluster } : {}),
    ...(options.host ? { host: options.host } : {}),
    logger: options.logger,
      approve: (request) => sessions.approve(request),
      ...(tracer ? { tracer } : {}),
    });
  } catch (error) {
    await cluster?.close().catch(() => undefined);
    throw error;
  }
  const secrets = secretSource(options.host?.secrets, process.env, options.host?.secretsSource);
  let origins: string[] = [];
  let stopping = false;
  const polls = { count: 0 };
  const http: HttpServer = createServer(
    { requestTimeout: 120_000, headersTimeout: 30_000 },
    apiHandler({
      runtime,
      token,
      verifier: new WebhookVerifier(secrets),
      logger: options.logger,
      maxComponentBytes: options.host?.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES,
      mcp: (request, response, body) => sessions.handle(request, response, body),
      origins: () => origins,
      stopping: () => stopping,
      polls,
      metrics: new ServeMetrics(runtime.host.state, () => runtime!),
    }),
  );
  http.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, hostname, () => resolve());
    });
  } catch (error) {
    await runtime.close(0);
    throw new ServeSetupError(`cannot listen on ${hostname}:${port}: ${(error as NodeJS.ErrnoException).code ?? String(error)}${(error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? ' (pick another --listen, or 127.0.0.1:0 for a free port)' : ''}`);
  }
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  origins = [url, `http://localhost:${address.port}`, `http://127.0.0.1:${address.port}`, ...(options.allowOrigins ?? [])];
  writeServerInfo(options.stateDir, { url, pid: process.pid, started: new Date().toISOString(), tokenFile: tokenFile ?? '' });
  const running = runtime;
  return {
    url,
    runtime: running,
    async close(drainMs) {
      // No new connections; open keep-alive connections are closed once idle.
      http.close();
      http.closeIdleConnections();
      // Long polls answer with what they have, before the database they read closes.
      stopping = true;
      for (let waited = 0; polls.count > 0 && waited < 1000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      await sessions.close();
      const cut = await running.close(drainMs);
      await tracer?.shutdown().catch((error: unknown) => options.logger.warn({ error: String(error) }, 'could not export the last spans'));
      http.closeAllConnections();
      removeServerInfo(options.stateDir);
      return cut;
    },
  };
}

function parseListen(listen: string): { hostname: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/u.exec(listen);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ServeSetupError(`--listen ${JSON.stringify(listen)} is not host:port (e.g. 127.0.0.1:7700, or 127.0.0.1:0 for a free port)`);
  return { hostname: match[1] ?? match[2]!, port };
}
