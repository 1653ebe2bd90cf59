/**
 * `ice serve` end to end: a real server process (bin/ice.js serve), driven over HTTP, with real guests
 * and policies. What it refuses first (no token, a bad webhook signature, an event the policy does not
 * let an agent receive, a divergent upgrade, a faulting agent), then what it does: events wake
 * subscribers, schedules fire, lifecycle transitions are ledger records, a SIGKILL in the middle of a
 * 500-event burst loses and duplicates nothing, SIGTERM drains.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { api, HOOK_SECRET, outcomes, policy, runStarts, serve, sleep, stopAll, until, writeConfig } from './serve-harness.js';
import { signWebhook } from '../host/src/serve/webhook.js';
import { ice, tempDir, writePolicy } from './helpers.js';
import { CALC_COMPONENT, guestWasm } from './paths.js';

afterEach(stopAll);

describe('ice serve', () => {
  it('refuses what it must: no token, a wrong token, a browser origin on /mcp, an unknown agent; /healthz is open', async () => {
    const s = await serve(writeConfig(tempDir()));
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const none = await fetch(`${s.url}/v1/agents`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/bearer token/);
    expect((await fetch(`${s.url}/v1/agents`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` } })).status).toBe(401);
    const origin = await api(s, 'POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }, { origin: 'https://evil.example' });
    expect(origin.status).toBe(403);
    const unknown = await api(s, 'GET', '/v1/agents/nobody');
    expect([unknown.status, unknown.json.error]).toEqual([404, expect.stringMatching(/no agent "nobody".*emitter, notes, trapper/)]);
    const listed = await api(s, 'GET', '/v1/agents');
    expect(listed.json.agents.map((a: { name: string; state: string }) => `${a.name}:${a.state}`)).toEqual(['emitter:active', 'notes:active', 'trapper:active']);
    // The token file is the server's whole authority: owner-only.
    expect((await import('node:fs')).statSync(join(s.state, 'serve', 'token')).mode & 0o077).toBe(0);
  });

  it("an emitter's event wakes the subscriber; a kind its policy does not let it receive never does", async () => {
    const s = await serve(writeConfig(tempDir()));
    const emitted = await api(s, 'POST', '/v1/agents/emitter/invoke', { input: 'notes.added first\nnotes.deleted gone\nother.thing x' });
    expect(emitted.status).toBe(200);
    const emitRun = emitted.json.run.runId as string;
    const delivered = await until('the delivery', () => runStarts(s.state).find((r) => r.cause?.kind === 'event'));
    expect(delivered.component.name).toBe('subscriber');
    expect(delivered.cause).toEqual({ kind: 'event', event: `${emitRun}#1`, run: emitRun, seq: 1, eventKind: 'notes.added', attempt: 1 });
    expect(JSON.parse(delivered.input.value)).toEqual({ trigger: 'event', event: { id: `${emitRun}#1`, kind: 'notes.added', payload: 'first', source: 'emitter' } });
    await sleep(600);
    // notes.deleted and other.thing match on.events but not grants.events.receive: deny by default.
    expect(runStarts(s.state).filter((r) => r.cause?.kind === 'event')).toHaveLength(1);
    const trace = ice(['audit', 'show', delivered.run, '--state', s.state]);
    expect(trace.stdout).toMatch(new RegExp(`^cause {6}event notes\\.added from ${emitRun}#1$`, 'm'));
  });

  it('refuses and records a webhook with a bad signature, a replayed one, and runs a good one', async () => {
    const s = await serve(writeConfig(tempDir()));
    const body = '{"note":"from outside"}';
    const bad = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body, headers: signWebhook('not-the-secret', body) });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: string }).error).toMatch(/bad signature/);
    const unsigned = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body });
    expect(unsigned.status).toBe(401);
    const stale = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body, headers: signWebhook(HOOK_SECRET, body, Math.floor(Date.now() / 1000) - 3600) });
    expect(stale.status).toBe(401);
    const headers = signWebhook(HOOK_SECRET, body);
    const good = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body, headers });
    expect(good.status).toBe(202);
    const replayed = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body, headers });
    expect(replayed.status).toBe(401);
    const ran = await until('the webhook run', () => runStarts(s.state).find((r) => r.cause?.kind === 'webhook' && r.invoke === undefined));
    expect(JSON.parse(ran.input.value)).toMatchObject({ trigger: 'webhook', path: '/hooks/notes', body });
    // Refusals are host records: the first one whole; those within the next second counted into the next.
    const refused = runStarts(s.state).filter((r) => r.invoke?.kind === 'refused');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]!.invoke).toMatchObject({ kind: 'refused', agent: 'notes', trigger: 'webhook', reason: expect.stringMatching(/bad signature/) });
    expect(ice(['audit', 'verify', '--all', '--state', s.state]).code).toBe(0);
  });

  it('quarantines an agent after faults.max faults, refuses its runs, and resumes it on an operator record', async () => {
    const s = await serve(writeConfig(tempDir()));
    const first = await api(s, 'POST', '/v1/agents/trapper/invoke', { input: 'x' });
    expect(first.json.run).toMatchObject({ outcome: 'trap', blame: 'guest' });
    await api(s, 'POST', '/v1/agents/trapper/invoke', { input: 'x' });
    const status = await api(s, 'GET', '/v1/agents/trapper');
    expect(status.json).toMatchObject({ state: 'quarantined', faults: { recent: 2, max: 2 } });
    const refused = await api(s, 'POST', '/v1/agents/trapper/invoke', { input: 'x' });
    expect([refused.status, refused.json.error]).toEqual([409, expect.stringMatching(/trapper is quarantined.*ice agents resume trapper/)]);
    const quarantine = runStarts(s.state).find((r) => r.invoke?.kind === 'lifecycle' && r.invoke.to === 'quarantined');
    expect(quarantine?.cause).toMatchObject({ kind: 'fault', faults: 2, windowMs: 60000 });
    const resumed = await api(s, 'POST', '/v1/agents/trapper/resume', { by: 'ada' });
    expect(resumed.json.state).toBe('active');
    expect(runStarts(s.state).at(-1)).toMatchObject({ invoke: { kind: 'lifecycle', agent: 'trapper', from: 'quarantined', to: 'active' }, cause: { kind: 'operator', by: 'ada' } });
    expect((await api(s, 'POST', '/v1/agents/trapper/resume', {})).status).toBe(409);
    const verify = ice(['state', 'verify', '--state', s.state]);
    expect([verify.code, verify.stdout]).toEqual([0, expect.stringMatching(/registry of served agents equals the fold of \d+ lifecycle records \(3 agents\)/)]);
  });

  it('refuses an upgrade whose replay of recent runs diverges, unless forced; the record keeps both digests', async () => {
    const s = await serve(writeConfig(tempDir()));
    for (const name of ['ada', 'bob']) expect((await api(s, 'POST', '/v1/agents/notes/invoke', { input: name })).json.run.output).toBe(`hello, ${name}!`);
    const divergent = readFileSync(guestWasm('trap'));
    const refused = await api(s, 'POST', '/v1/agents/notes/upgrade?by=ada', divergent, { 'content-type': 'application/wasm' });
    expect(refused.status).toBe(409);
    expect(refused.json.error).toMatch(/upgrade of agent notes refused: 2 of 2 recent runs .* diverge/);
    expect(refused.json.replayed).toHaveLength(2);
    // Still the old component.
    expect((await api(s, 'POST', '/v1/agents/notes/invoke', { input: 'cy' })).json.run.output).toBe('hello, cy!');
    const forced = await api(s, 'POST', '/v1/agents/notes/upgrade?by=ada&force=1&against=1', divergent, { 'content-type': 'application/wasm' });
    expect(forced.status).toBe(200);
    expect(forced.json).toMatchObject({ forced: true, replayed: [{ matches: false }] });
    const record = runStarts(s.state).at(-1)!;
    expect(record.invoke).toEqual({ kind: 'lifecycle', agent: 'notes', from: 'active', to: 'active' });
    expect(record.cause).toEqual({ kind: 'upgrade', by: 'ada', from: forced.json.from, to: forced.json.to, replayed: 1, diverged: 1, forced: true });
    expect((await api(s, 'POST', '/v1/agents/notes/invoke', { input: 'cy' })).json.run.outcome).toBe('trap');
  });

  it('fires a schedule, and suspends and resumes as recorded transitions', async () => {
    const dir = tempDir();
    const ticker = policy(dir, 'ticker', 'grants:\n  log: {}\n');
    const s = await serve(writeConfig(dir, `  - name: ticker\n    component: ${guestWasm('hello')}\n    policy: ${ticker}\n    on: { schedule: "* * * * * *" }\n`));
    const tick = await until('a scheduled run', () => runStarts(s.state).find((r) => r.cause?.kind === 'schedule'), 5000);
    expect(tick.cause).toMatchObject({ kind: 'schedule', schedule: '* * * * * *', due: expect.stringMatching(/^\d{4}-/) });
    expect((await api(s, 'POST', '/v1/agents/ticker/suspend', { by: 'ada', reason: 'maintenance' })).json.state).toBe('suspended');
    const suspendedAt = runStarts(s.state).filter((r) => r.cause?.kind === 'schedule').length;
    await sleep(2200);
    expect(runStarts(s.state).filter((r) => r.cause?.kind === 'schedule').length).toBe(suspendedAt);
    expect((await api(s, 'POST', '/v1/agents/ticker/resume', { by: 'ada' })).json.state).toBe('active');
    await until('a tick after resume', () => runStarts(s.state).filter((r) => r.cause?.kind === 'schedule').length > suspendedAt, 5000);
  });

  it('serves the same tools over MCP Streamable HTTP, each call a queued, recorded run', async () => {
    const s = await serve(writeConfig(tempDir()));
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${s.token}` } } }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['emitter_run', 'notes_run', 'trapper_run']);
    const result = (await client.callTool({ name: 'notes_run', arguments: { input: 'mcp' } })) as { content: { text: string }[]; _meta: Record<string, string> };
    expect(result.content[0]!.text).toBe('hello, mcp!');
    const start = runStarts(s.state).find((r) => r.run === result._meta['ice/runId']);
    expect(start?.cause).toEqual({ kind: 'mcp', tool: 'notes_run' });
    await client.close();
    const unauthorized = await fetch(`${s.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(unauthorized.status).toBe(401);
  });

  it("an ask in a run an MCP session started goes to that session's client; the same ask from any other trigger is denied", async () => {
    const dir = tempDir();
    const calcPolicy = policy(dir, 'calc', 'grants:\n  kv: { read: ["shared/*"], write: [], ask: ["shared/*"], askTimeoutMs: 20000 }\n');
    const s = await serve(writeConfig(dir, `  - name: calc\n    component: ${CALC_COMPONENT}\n    policy: ${calcPolicy}\n`));
    const client = new Client({ name: 'test', version: '1' }, { capabilities: { elicitation: {} } });
    const asked: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: 'accept', content: { approve: true } };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${s.token}` } } }));
    const approved = (await client.callTool({ name: 'calc_remember', arguments: { key: 'shared/plan', value: 'ship' } })) as { isError?: boolean };
    expect(approved.isError).toBeFalsy();
    expect(asked).toEqual([expect.stringMatching(/^Agent calc \(kv\.set\) asks: set "shared\/plan"/)]);
    await client.close();
    // Invoked over the API, nobody can be asked: denied, and the ledger says by whom.
    const invoked = await api(s, 'POST', '/v1/agents/calc/invoke', { function: 'remember', args: { key: 'shared/other', value: 'x' } });
    expect(invoked.json.run).toMatchObject({ ok: false, outcome: 'error', error: expect.stringMatching(/not approved: the approver \(ice-serve\) said no: a run started by a trigger has nobody to ask/) });
  });

  it('serves Prometheus metrics behind the token: runs, calls and durations from the ledger, agent states and queues live', async () => {
    const s = await serve(writeConfig(tempDir()));
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
    await api(s, 'POST', '/v1/agents/emitter/invoke', { input: 'notes.added a\nnotes.added b' });
    await api(s, 'POST', '/v1/agents/trapper/invoke', { input: 'x' });
    await until('both deliveries', () => runStarts(s.state).filter((r) => r.cause?.kind === 'event').length === 2);
    await sleep(300);
    const response = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('ice_runs_total{component="emitter",outcome="ok"} 1');
    expect(text).toContain('ice_runs_total{component="subscriber",outcome="ok"} 2');
    expect(text).toContain('ice_runs_total{component="trapper",outcome="trap"} 1');
    expect(text).toContain('ice_calls_total{component="emitter",interface="ice:agent/events@0.1.0",decision="allow"} 2');
    expect(text).toContain('ice_run_duration_seconds_count{component="subscriber"} 2');
    expect(text).toMatch(/^ice_run_fuel_count\{component="emitter"\} 1$/m);
    expect(text).toContain('ice_agent_state{agent="trapper",state="active"} 1');
    expect(text).toContain('ice_agent_queue_length{agent="notes"} 0');
    expect(text).toContain('ice_agent_deliveries{agent="notes",status="pending"} 0');
    // A second scrape counts only what is new.
    const again = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
    expect(again).toContain('ice_runs_total{component="emitter",outcome="ok"} 1');
  });

  it('exports a span tree per run over OTLP/HTTP: the run under the caller\'s traceparent, a child per import call', async () => {
    const received: any[] = [];
    const outbound: (string | undefined)[] = [];
    // One local server: the OTLP collector at /v1/traces, and a page the fetcher agent GETs.
    const collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (request.url === '/page') {
          outbound.push(request.headers.traceparent as string | undefined);
          response.writeHead(200, { 'content-type': 'text/plain' });
          response.end('a page');
          return;
        }
        if (request.url === '/v1/traces') received.push(JSON.parse(body));
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
      const dir = tempDir();
      const fetcher = policy(dir, 'fetcher', `grants:\n  log: {}\n  http: { allow: [{ url: "${endpoint}/page" }] }\n  model: { models: ["local/echo"], maxTokensPerCall: 64 }\n`);
      const s = await serve(writeConfig(dir, `  - name: fetcher\n    component: ${guestWasm('fetcher')}\n    policy: ${fetcher}\n`), tempDir(), [], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parentId = '00f067aa0ba902b7';
      const invoked = await api(s, 'POST', '/v1/agents/notes/invoke', { input: 'traced' }, { traceparent: `00-${traceId}-${parentId}-01` });
      const runId = invoked.json.run.runId as string;
      const spans = () => received.flatMap((r) => r.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)));
      const attr = (span: any, key: string) => {
        const found = span.attributes.find((a: any) => a.key === key)?.value;
        return found === undefined ? undefined : (found.stringValue ?? found.intValue ?? found.boolValue);
      };
      const run = await until('the run span', () => spans().find((span: any) => attr(span, 'ice.run.id') === runId), 10_000);
      expect(run).toMatchObject({ name: 'invoke_agent notes', traceId, parentSpanId: parentId });
      expect(attr(run, 'gen_ai.agent.name')).toBe('notes');
      expect(attr(run, 'ice.outcome')).toBe('ok');
      expect(attr(run, 'ice.ledger_root')).toBe(invoked.json.run.ledgerRoot);
      const children = spans().filter((span: any) => span.parentSpanId === run.spanId);
      expect(children.map((c: any) => c.name)).toEqual(['log.write']);
      expect(attr(children[0], 'ice.decision')).toBe('allow');
      expect(attr(children[0], 'ice.rule')).toBe('grants.log.levels');
      // No argument values unless the operator opts in.
      expect(children[0].attributes.map((a: any) => a.key)).not.toContain('ice.call.args');
      expect(JSON.stringify(received)).not.toContain('hello called with');

      // A granted outbound request carries the run's own trace context: its span is the request's parent.
      const fetched = await api(s, 'POST', '/v1/agents/fetcher/invoke', { input: `${endpoint}/page` });
      expect(fetched.json.run.ok).toBe(true);
      const fetchRun = await until('the fetcher run span', () => spans().find((span: any) => attr(span, 'ice.run.id') === fetched.json.run.runId), 10_000);
      expect(outbound).toEqual([`00-${fetchRun.traceId}-${fetchRun.spanId}-01`]);
      const fetchChildren = spans().filter((span: any) => span.parentSpanId === fetchRun.spanId).map((c: any) => c.name);
      expect(fetchChildren).toEqual(['http.fetch', 'log.write', 'chat']);
      const chat = spans().find((span: any) => span.parentSpanId === fetchRun.spanId && span.name === 'chat');
      expect(attr(chat, 'gen_ai.operation.name')).toBe('chat');
      expect(Number(attr(chat, 'gen_ai.usage.input_tokens'))).toBeGreaterThan(0);
      expect(Number(attr(chat, 'gen_ai.usage.output_tokens'))).toBeGreaterThan(0);
      // The model's name is an argument: not in a span unless the operator opts in.
      expect(attr(chat, 'gen_ai.request.model')).toBeUndefined();
      await s.stop('SIGTERM');
    } finally {
      collector.close();
    }
  });

  it('after SIGKILL mid-burst and a restart, each of 500 events is delivered and completed exactly once; the ledger verifies', async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const state = tempDir();
    const first = await serve(config, state);
    const burst = Array.from({ length: 500 }, (_, i) => `notes.added n${i}`).join('\n');
    const emitted = await api(first, 'POST', '/v1/agents/emitter/invoke', { input: burst });
    expect(emitted.json.run.ok).toBe(true);
    const emitRun = emitted.json.run.runId as string;
    // Some delivered, most not: kill it in the middle.
    await until('some deliveries', () => runStarts(state).filter((r) => r.cause?.kind === 'event').length >= 40);
    expect(await first.stop('SIGKILL')).toBe(null);
    const before = runStarts(state).filter((r) => r.cause?.kind === 'event').length;
    expect(before).toBeLessThan(500);

    const second = await serve(config, state);
    const events = await until(
      'every delivery',
      () => {
        const ends = outcomes(state);
        const done = runStarts(state).filter((r) => r.cause?.kind === 'event' && ends.has(r.run) && ends.get(r.run) !== 'incomplete');
        return done.length >= 500 ? done : undefined;
      },
      60_000,
    );
    await sleep(500);
    const ends = outcomes(state);
    const completed = runStarts(state).filter((r) => r.cause?.kind === 'event' && ends.get(r.run) !== 'incomplete');
    const ids = completed.map((r) => r.cause.event as string);
    expect(new Set(ids).size).toBe(500);
    expect(ids).toHaveLength(500);
    expect(new Set(ids)).toEqual(new Set(Array.from({ length: 500 }, (_, i) => `${emitRun}#${i + 1}`)));
    expect(events.every((r) => ends.get(r.run) === 'ok')).toBe(true);
    // A run the kill cut off was ended incomplete, and its event delivered again (attempt 2).
    const cut = runStarts(state).filter((r) => r.cause?.kind === 'event' && ends.get(r.run) === 'incomplete');
    for (const r of cut) expect(completed.find((c) => c.cause.event === r.cause.event)?.cause.attempt).toBeGreaterThan(1);
    await second.stop('SIGTERM');
    const verify = ice(['audit', 'verify', '--all', '--state', state]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(ice(['state', 'verify', '--state', state]).code).toBe(0);
  }, 120_000);

  it('serializes an agent\'s runs and refuses, recording it, a trigger its full queue cannot take', async () => {
    const dir = tempDir();
    const spinner = policy(dir, 'spinner', 'grants:\n  log: {}\n  clock: {}\n  kv: { read: ["count"] }\n  events: { kinds: ["flood.*"] }\nlimits: { timeoutMs: 1500, fuel: 1000000000000000 }\n');
    const s = await serve(writeConfig(dir, `  - name: spinner\n    component: ${guestWasm('hostile')}\n    policy: ${spinner}\n    queue: 1\n    faults: { max: 10, windowMs: 60000 }\n`));
    const first = api(s, 'POST', '/v1/agents/spinner/invoke', { input: 'loop' });
    await sleep(300);
    const second = api(s, 'POST', '/v1/agents/spinner/invoke', { input: 'ok' });
    await sleep(100);
    expect((await api(s, 'GET', '/v1/agents/spinner')).json.queue).toMatchObject({ length: 1, capacity: 1, running: 1, concurrency: 1 });
    const third = await api(s, 'POST', '/v1/agents/spinner/invoke', { input: 'ok' });
    expect([third.status, third.json.error]).toEqual([429, expect.stringMatching(/spinner's queue is full \(1 runs waiting, queue: 1 in .*ice\.yaml\)/)]);
    // In arrival order: the second starts only once the first has hit its deadline.
    expect((await first).json.run).toMatchObject({ outcome: 'limit', limit: 'timeout' });
    expect((await second).json.run.outcome).toBe('ok');
    const refused = runStarts(s.state).find((r) => r.invoke?.kind === 'refused');
    expect(refused?.invoke).toMatchObject({ agent: 'spinner', trigger: 'manual', reason: expect.stringMatching(/queue is full/) });
    expect(refused?.cause).toMatchObject({ kind: 'manual', by: 'api' });
  });

  it('refuses malformed requests with a message naming the fix, and an oversized webhook body before reading it', async () => {
    const s = await serve(writeConfig(tempDir()));
    const notJson = await api(s, 'POST', '/v1/agents/notes/invoke', '{"input":');
    expect([notJson.status, notJson.json.error]).toEqual([400, 'the body is not JSON']);
    const both = await api(s, 'POST', '/v1/agents/notes/invoke', { input: 'x', function: 'y' });
    expect([both.status, both.json.error]).toEqual([400, expect.stringMatching(/\{"input": "<text>"\}/)]);
    const typed = await api(s, 'POST', '/v1/agents/notes/invoke', { function: 'add', args: {} });
    expect([typed.status, typed.json.error]).toEqual([400, expect.stringMatching(/^subscriber exports no function "add"; it exports run$/)]);
    const huge = await fetch(`${s.url}/hooks/notes`, { method: 'POST', body: 'x'.repeat(2 * 1024 * 1024), headers: signWebhook(HOOK_SECRET, 'x') });
    expect(huge.status).toBe(413);
    const badAgainst = await api(s, 'POST', '/v1/agents/notes/upgrade?against=lots', new Uint8Array([0, 97, 115, 109]), { 'content-type': 'application/wasm' });
    expect([badAgainst.status, badAgainst.json.error]).toEqual([400, expect.stringMatching(/against must be a number/)]);
    const notWasm = await api(s, 'POST', '/v1/agents/notes/upgrade', new Uint8Array([1, 2, 3]), { 'content-type': 'application/wasm' });
    expect([notWasm.status, notWasm.json.error]).toEqual([400, expect.stringMatching(/agent notes: the new component cannot be loaded/)]);
    expect((await api(s, 'GET', '/v1/nothing')).status).toBe(404);
  });

  it('is operated with ice agents on its state dir, and ice audit trace shows what an emit caused', async () => {
    const s = await serve(writeConfig(tempDir()));
    const on = ['--state', s.state];
    const list = ice(['agents', 'list', ...on]);
    expect([list.code, list.stdout]).toEqual([0, expect.stringMatching(/^notes\s+active\s+subscriber sha256:[0-9a-f]{12}\s+0\/100\s+0\s+0\/3\s+-$/m)]);
    const invoked = ice(['agents', 'invoke', 'notes', '--input', 'ada', ...on]);
    expect([invoked.code, invoked.stdout]).toEqual([0, 'hello, ada!\n']);
    expect(ice(['agents', 'suspend', 'notes', '--reason', 'maintenance', '--by', 'ada', ...on]).stdout).toMatch(/^agent notes is suspended \(recorded as run \S+\)$/m);
    const refused = ice(['agents', 'invoke', 'notes', '--input', 'bob', ...on]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/agent notes is suspended: it takes no runs until `ice agents resume notes`/)]);
    expect(ice(['agents', 'resume', 'notes', ...on]).code).toBe(0);
    const trapped = ice(['agents', 'invoke', 'trapper', '--input', 'x', ...on]);
    expect(trapped.code).toBe(3);
    const upgrade = ice(['agents', 'upgrade', 'notes', '--component', guestWasm('trap'), ...on]);
    expect([upgrade.code, upgrade.stderr]).toEqual([1, expect.stringMatching(/upgrade of agent notes refused: 1 of 1 recent runs/)]);
    const emitted = (JSON.parse(ice(['agents', 'invoke', 'emitter', '--input', 'notes.added x', '--json', ...on]).stdout) as { run: { runId: string } }).run;
    await until('the delivery', () => runStarts(s.state).find((r) => r.cause?.event === `${emitted.runId}#1`));
    await sleep(200);
    const trace = ice(['audit', 'trace', emitted.runId, ...on]);
    expect(trace.stdout).toMatch(new RegExp(`^└─ \\S+\\s+subscriber\\s+run\\s+event notes\\.added from ${emitted.runId}#1\\s+ok$`, 'm'));
    const wrong = ice(['agents', 'list', '--server', s.url, '--token-file', writePolicy('0'.repeat(64), 'token')]);
    expect(wrong.code).toBe(2);
  });

  it('on SIGTERM drains runs in flight up to --drain-ms, then ends them incomplete', async () => {
    const dir = tempDir();
    const spinner = policy(dir, 'spinner', 'grants:\n  log: {}\n  clock: {}\n  kv: { read: ["count"] }\n  events: { kinds: ["flood.*"] }\nlimits: { timeoutMs: 60000, fuel: 1000000000000000 }\n');
    const s = await serve(writeConfig(dir, `  - name: spinner\n    component: ${guestWasm('hostile')}\n    policy: ${spinner}\n`), tempDir(), ['--drain-ms', '300']);
    const pending = api(s, 'POST', '/v1/agents/spinner/invoke', { input: 'loop' }).catch(() => undefined);
    // The guest spins without a call: its run-start is written only when it ends (ledger deferRun).
    await sleep(700);
    const started = Date.now();
    expect(await s.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    await pending;
    expect(s.stderr()).toMatch(/ended 1 run incomplete at the drain deadline/);
    const run = runStarts(s.state).find((r) => r.component.name === 'spinner' && r.invoke === undefined);
    expect(run).toBeDefined();
    const db = new Database(join(s.state, 'ice.db'), { readonly: true });
    const end = JSON.parse(db.prepare("SELECT body FROM ledger WHERE run = ? AND type = 'run-end'").pluck().get(run!.run) as string) as { outcome: string; reason: string };
    db.close();
    expect(end).toMatchObject({ outcome: 'incomplete', reason: expect.stringMatching(/drain deadline \(300 ms\)/) });
    expect(existsSync(join(s.state, 'serve', 'server.json'))).toBe(false);
    expect(ice(['audit', 'verify', '--all', '--state', s.state]).code).toBe(0);
  });
});
