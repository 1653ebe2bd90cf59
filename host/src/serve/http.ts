/**
 * The HTTP face of `ice serve` (node:http; JSON in and out):
 *
 *   GET  /healthz                         no token: is it up
 *   GET  /v1/agents, /v1/agents/:name     status
 *   POST /v1/agents/:name/suspend|resume  lifecycle (recorded)
 *   POST /v1/agents/:name/invoke          one run: {input} | {function, args} | {command, stdin}
 *   POST /v1/agents/:name/upgrade         body: the new component; ?against=N&force=1&by=
 *   GET  /v1/ledger?after=&limit=&wait=   new ledger records (long poll): `ice audit tail`; ?tail=1: where it ends
 *   GET  /v1/runs?component=&outcome=&denied=1, /v1/runs/<id>   runs, and one run with its verify result and the runs it caused
 *   GET  /, /console/*                    the web console (console.ts; its shell holds no data)
 *   GET  /v1/events?after=&kind=&wait=    new events (long poll): `ice events list --follow`
 *   GET  /metrics                         Prometheus metrics (metrics.ts)
 *   POST /hooks/<name>                    webhooks, checked by their own scheme (webhook.ts), not the token
 *   *    /mcp                             MCP over Streamable HTTP (mcp-http.ts)
 *
 * Every endpoint but /healthz and the webhooks needs `Authorization: Bearer <token>`, compared in
 * constant time. No CORS headers are ever sent, so a web page cannot read an answer or send the token;
 * /mcp also refuses a browser `Origin` that is not this server's own.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { LoadError } from '../component/errors.js';
import { ICE_VERSION } from '../core/version.js';
import { RunInputError, type RunResult } from '../host.js';
import { compileKindPattern, EMIT_CALL } from '../views/events.js';
import { causedRuns } from '../ledger/trace.js';
import { expandRow } from '../ledger/store.js';
import { consoleAsset } from './console.js';
import { Refused, type AgentRequest, type ServeRuntime } from './runtime.js';
import type { ServeMetrics } from './metrics.js';
import type { WebhookVerifier } from './webhook.js';

export interface ApiOptions {
  readonly runtime: ServeRuntime;
  readonly token: string;
  readonly verifier: WebhookVerifier;
  readonly logger: Logger;
  /** Largest component an upgrade may send. */
  readonly maxComponentBytes: number;
  /** /mcp, when served. */
  readonly mcp?: (request: IncomingMessage, response: ServerResponse, body: unknown) => Promise<void>;
  /** Origins allowed on /mcp besides the server's own (`http://127.0.0.1:<port>`, `http://localhost:<port>`). */
  readonly origins: () => readonly string[];
  /** Long polls answer at once (with what they have) once this is set: the server is stopping. */
  readonly stopping: () => boolean;
  /** Long polls in flight, so the server can wait for them before it closes the database. */
  readonly polls: { count: number };
  readonly metrics: ServeMetrics;
}

const MAX_JSON_BYTES = 2 * 1024 * 1024;
const MAX_HOOK_BYTES = 1024 * 1024;
const MAX_WAIT_MS = 30_000;
const MAX_PAGE = 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export function apiHandler(options: ApiOptions): (request: IncomingMessage, response: ServerResponse) => void {
  const tokenDigest = createHash('sha256').update(options.token).digest();
  const authorized = (request: IncomingMessage): boolean => {
    const header = request.headers.authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
    return timingSafeEqual(createHash('sha256').update(header.slice(7)).digest(), tokenDigest);
  };
  return (request, response) => {
    handle(options, authorized, request, response).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : error instanceof Refused ? error.status : error instanceof RunInputError || error instanceof LoadError ? 400 : 500;
      if (status === 500) options.logger.error({ error: error instanceof Error ? error.message : String(error), url: request.url }, 'request failed');
      const detail = error instanceof HttpError || error instanceof Refused ? error.detail : undefined;
      const message = error instanceof Error ? error.message : String(error);
      send(response, status, { error: status === 500 ? `internal error: ${message}` : message, ...(detail && typeof detail === 'object' ? detail : {}) });
    });
  };
}

async function handle(options: ApiOptions, authorized: (r: IncomingMessage) => boolean, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname;
  const method = request.method ?? 'GET';
  const { runtime } = options;

  if (path === '/healthz' && method === 'GET') return send(response, 200, { ok: true, version: ICE_VERSION });

  // The console's shell holds no data (it asks the API, with the token, for everything): served open.
  const asset = method === 'GET' ? consoleAsset(path) : undefined;
  if (asset) {
    response.writeHead(200, {
      'Content-Type': asset.type,
      'Content-Length': Buffer.byteLength(asset.body),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      // Only its own script and style, no inline code, no other origin: a guest string that reached the
      // page as markup could not run anyway.
      'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    });
    response.end(asset.body);
    return;
  }

  if (path.startsWith('/hooks/')) {
    if (method !== 'POST') throw new HttpError(405, 'webhooks are POST');
    return hook(options, path, request, response);
  }

  if (!authorized(request)) {
    response.setHeader('WWW-Authenticate', 'Bearer');
    throw new HttpError(401, 'missing or wrong bearer token: send Authorization: Bearer <the token in <state>/serve/token>');
  }

  if (path === '/mcp') {
    if (!options.mcp) throw new HttpError(404, 'MCP is not served');
    checkOrigin(request, options.origins());
    const body = method === 'POST' ? parseJson(await readBody(request, MAX_JSON_BYTES)) : undefined;
    return options.mcp(request, response, body);
  }

  if (path === '/metrics' && method === 'GET') {
    const text = await options.metrics.scrape();
    response.writeHead(200, { 'Content-Type': options.metrics.contentType, 'Cache-Control': 'no-store' });
    response.end(text);
    return;
  }

  if (path === '/v1/agents' && method === 'GET') return send(response, 200, { agents: runtime.names().map((n) => runtime.status(n)) });

  const agentRoute = /^\/v1\/agents\/([a-z][a-z0-9-]{0,31})(?:\/(suspend|resume|invoke|upgrade))?$/u.exec(path);
  if (agentRoute) {
    const [, name, action] = agentRoute as unknown as [string, string, string | undefined];
    if (action === undefined) {
      if (method !== 'GET') throw new HttpError(405, `GET ${path}`);
      return send(response, 200, runtime.status(name));
    }
    if (method !== 'POST') throw new HttpError(405, `POST ${path}`);
    switch (action) {
      case 'suspend':
      case 'resume': {
        const body = objectBody(parseJson(await readBody(request, MAX_JSON_BYTES)));
        const by = operator(body['by']);
        const reason = typeof body['reason'] === 'string' ? body['reason'].slice(0, 1000) : undefined;
        return send(response, 200, action === 'suspend' ? runtime.suspend(name, by, reason) : runtime.resume(name, by, reason));
      }
      case 'invoke': {
        const body = objectBody(parseJson(await readBody(request, MAX_JSON_BYTES)));
        const by = operator(body['by']);
        const traceparent = typeof request.headers.traceparent === 'string' ? request.headers.traceparent : undefined;
        const result = await runtime.invoke(name, invokeRequest(body), 'manual', { kind: 'manual', by }, traceparent ? { traceparent } : {});
        return send(response, 200, { run: resultJson(result) });
      }
      case 'upgrade': {
        const bytes = await readBody(request, options.maxComponentBytes);
        const against = url.searchParams.get('against');
        if (against !== null && !/^\d{1,4}$/u.test(against)) throw new HttpError(400, 'against must be a number of runs from 0 to 1000');
        const report = await runtime.upgrade(name, bytes, {
          by: operator(url.searchParams.get('by') ?? undefined),
          ...(against !== null ? { against: Number(against) } : {}),
          force: url.searchParams.get('force') === '1' || url.searchParams.get('force') === 'true',
        });
        return send(response, 200, report);
      }
    }
  }

  if (path === '/v1/runs' && method === 'GET') {
    const limit = Math.min(MAX_PAGE, cursor(url.searchParams.get('limit')) || 200);
    const component = url.searchParams.get('component');
    const outcome = url.searchParams.get('outcome');
    const denied = url.searchParams.get('denied') === '1';
    // Filtered after the newest rows are read: a page is the newest `limit` runs that pass.
    const runs = runtime.host.ledger
      .listRuns(limit * 5)
      .filter((r) => (component === null || r.component.name === component) && (outcome === null || r.outcome === outcome))
      .map((r) => ({ ...r, ...runCounts(runtime, r.run) }))
      .filter((r) => !denied || r.denied > 0)
      .slice(0, limit);
    return send(response, 200, { runs });
  }

  const runRoute = /^\/v1\/runs\/([0-9A-Z]{26})$/u.exec(path);
  if (runRoute && method === 'GET') {
    const id = runRoute[1]!;
    const records = runtime.host.readRun(id);
    if (records.length === 0) throw new HttpError(404, `no run ${id} in the ledger`);
    const verified = runtime.host.verify(id);
    return send(response, 200, {
      records: records.map((r) => ({ hash: r.hash, record: r.record })),
      verify: verified.ok ? { ok: true } : { ok: false, seq: verified.seq, reason: verified.reason },
      caused: causedRuns(runtime.host.state, id, { maxDepth: 8, maxChildren: 50, maxRuns: 500 }) ?? null,
    });
  }

  if (path === '/v1/ledger' && method === 'GET' && url.searchParams.get('tail') === '1') {
    // Where the ledger ends now: a follower starts there.
    const end = Number(runtime.host.state.db.prepare('SELECT coalesce(max(id), 0) FROM ledger').pluck().get());
    return send(response, 200, { records: [], last: end, end });
  }

  if (path === '/v1/ledger' && method === 'GET') {
    const after = cursor(url.searchParams.get('after'));
    const limit = Math.min(MAX_PAGE, cursor(url.searchParams.get('limit')) || 100);
    const wait = Math.min(MAX_WAIT_MS, cursor(url.searchParams.get('wait')));
    const statement = runtime.host.state.db.prepare<[number, number], { id: number; run: string; seq: number; type: string; hash: string; body: string }>(
      'SELECT id, run, seq, type, hash, body FROM ledger WHERE id > ? ORDER BY id LIMIT ?',
    );
    // A batch row (ledger v2) goes out as its calls, one record each, under the row's id.
    const records = await longPoll(options, request, wait, () => statement.all(after, limit).flatMap(expandRow));
    return send(response, 200, { records, last: records.at(-1)?.id ?? after });
  }

  if (path === '/v1/events' && method === 'GET') {
    const after = cursor(url.searchParams.get('after'));
    const wait = Math.min(MAX_WAIT_MS, cursor(url.searchParams.get('wait')));
    const kindPattern = url.searchParams.get('kind');
    const matcher = kindPattern === null ? undefined : compileKindPattern(kindPattern);
    if (matcher !== undefined && 'problem' in matcher) throw new HttpError(400, `bad kind pattern ${JSON.stringify(kindPattern)}: ${matcher.problem}`);
    const statement = runtime.host.state.db.prepare<[number, string], { id: number; component: string; body: string }>(
      `SELECT c.id, s.body ->> '$.component.name' AS component, c.body FROM ledger c JOIN ledger s ON s.run = c.run AND s.type = 'run-start'
        WHERE c.id > ? AND c.type = 'call' AND instr(c.body, ?) > 0 ORDER BY c.id LIMIT ${MAX_PAGE}`,
    );
    let last = after;
    const events = await longPoll(options, request, wait, () => {
      const rows = statement.all(last, `"call":${JSON.stringify(EMIT_CALL)}`);
      if (rows.length > 0) last = rows.at(-1)!.id;
      return rows.flatMap((row) => {
        const record = JSON.parse(row.body) as { run: string; seq: number; at: string; decision: string; outcome: object; args: ({ value: string } | { sha256: string; size: number })[] };
        if (record.decision !== 'allow' || !('ok' in record.outcome)) return [];
        const [kind, payload] = record.args.map((a) => ('value' in a ? a.value : { sha256: a.sha256, size: a.size }));
        if (matcher !== undefined && !(typeof kind === 'string' ? matcher.test(kind) : matcher.kind === 'any')) return [];
        return [{ id: row.id, run: record.run, seq: record.seq, at: record.at, component: row.component, kind, payload }];
      });
    });
    return send(response, 200, { events, last });
  }

  throw new HttpError(404, `no endpoint ${method} ${path}`);
}

/** A webhook: checked by its agent's scheme; a refusal is recorded (rate-limited) and answered 401. */
async function hook(options: ApiOptions, path: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const target = options.runtime.hook(path);
  if (target === undefined) throw new HttpError(404, `no webhook ${path}`);
  let body: Buffer;
  try {
    body = await readBody(request, MAX_HOOK_BYTES);
  } catch (error) {
    options.runtime.refuse(target.name, 'webhook', `request to ${path} refused: ${error instanceof Error ? error.message : String(error)}`, { kind: 'webhook', path });
    throw error;
  }
  const problem = options.verifier.check(target.verify, request.headers, body);
  if (problem !== undefined) {
    options.runtime.refuse(target.name, 'webhook', `request to ${path} refused: ${problem}`, { kind: 'webhook', path });
    throw new HttpError(401, `webhook refused: ${problem}`);
  }
  const text = body.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(body)) throw new HttpError(400, 'the webhook body must be UTF-8 text');
  const input = JSON.stringify({ trigger: 'webhook', path, contentType: request.headers['content-type'] ?? null, body: text });
  // Answered once queued: a sender should not wait for the agent.
  const traceparent = typeof request.headers.traceparent === 'string' ? request.headers.traceparent : undefined;
  const run = options.runtime.invoke(target.name, { kind: 'run', input }, 'webhook', { kind: 'webhook', path }, traceparent ? { traceparent } : {});
  run.catch(() => undefined);
  send(response, 202, { accepted: true });
}

function checkOrigin(request: IncomingMessage, allowed: readonly string[]): void {
  const origin = request.headers.origin;
  if (origin === undefined) return;
  if (!allowed.includes(origin)) throw new HttpError(403, `Origin ${origin} may not use /mcp (allowed: ${allowed.join(', ')}; add one with --allow-origin)`);
}

function invokeRequest(body: Record<string, unknown>): AgentRequest {
  const keys = Object.keys(body).filter((k) => k !== 'by');
  if ('input' in body) {
    if (keys.length !== 1 || typeof body['input'] !== 'string') throw new HttpError(400, 'an invoke of run(input) is {"input": "<text>"}');
    return { kind: 'run', input: body['input'] };
  }
  if ('function' in body) {
    if (typeof body['function'] !== 'string' || keys.some((k) => k !== 'function' && k !== 'args')) throw new HttpError(400, 'an invoke of a function is {"function": "<name>", "args": {…}}');
    return { kind: 'call', function: body['function'], args: body['args'] ?? {} };
  }
  if ('command' in body) {
    const argv = body['command'];
    if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string') || keys.some((k) => k !== 'command' && k !== 'stdin') || (body['stdin'] !== undefined && typeof body['stdin'] !== 'string')) {
      throw new HttpError(400, 'an invoke of a command is {"command": ["<arg>", …], "stdin": "<text>"}');
    }
    return { kind: 'command', args: argv as string[], ...(typeof body['stdin'] === 'string' ? { stdin: body['stdin'] } : {}) };
  }
  throw new HttpError(400, 'say what to run: {"input": …}, {"function": …, "args": …} or {"command": […]}');
}

export function resultJson(result: RunResult & { value?: unknown }): Record<string, unknown> {
  return {
    runId: result.runId,
    ok: result.ok,
    outcome: result.outcome,
    ...(result.ok ? { output: result.output } : { error: result.error }),
    ...('value' in result && result.value !== undefined ? { value: result.value } : {}),
    ...(!result.ok && result.limit ? { limit: result.limit } : {}),
    ...(!result.ok && result.blame ? { blame: result.blame } : {}),
    calls: result.calls,
    ledgerRoot: result.ledgerRoot,
    durationMs: result.durationMs,
  };
}

function operator(value: unknown): string {
  if (value === undefined) return 'api';
  if (typeof value !== 'string' || value.trim() === '' || value.length > 128 || /[\u0000-\u001f]/u.test(value)) throw new HttpError(400, 'by must be a name of 1 to 128 printable characters');
  return value;
}

function cursor(value: string | null): number {
  if (value === null || value === '') return 0;
  if (!/^\d{1,15}$/u.test(value)) throw new HttpError(400, `expected a whole number, got ${JSON.stringify(value.slice(0, 20))}`);
  return Number(value);
}

/** Answers as soon as `read` finds something, or after `waitMs` with nothing; stops when the client leaves. */
async function longPoll<T>(options: ApiOptions, request: IncomingMessage, waitMs: number, read: () => T[]): Promise<T[]> {
  const until = Date.now() + waitMs;
  options.polls.count++;
  try {
    for (;;) {
      const found = read();
      if (found.length > 0 || Date.now() >= until || request.destroyed || options.stopping()) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    options.polls.count--;
  }
}

function readBody(request: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > max) {
      request.resume();
      reject(new HttpError(413, `the body is ${declared} bytes, over the limit of ${max}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        request.destroy();
        reject(new HttpError(413, `the body is over the limit of ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return {};
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
}

function objectBody(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HttpError(400, 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) {
    response.end();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  response.end(text);
}

/** A run's denied and limited call counts (its run-end, or its records so far). */
function runCounts(runtime: ServeRuntime, run: string): { denied: number; limited: number } {
  const row = runtime.host.state.db
    .prepare<[string], { denied: number | null; limited: number | null }>("SELECT body ->> '$.counts.denied' AS denied, body ->> '$.counts.limited' AS limited FROM ledger WHERE run = ? AND type = 'run-end'")
    .get(run);
  return { denied: Number(row?.denied ?? 0), limited: Number(row?.limited ?? 0) };
}
