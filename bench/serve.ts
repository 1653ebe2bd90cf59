/**
 * `npm run bench` (sixth table): a warm `ice serve` process (its own process, driven over HTTP from
 * this one, both on this machine's cores), against the baselines named in the issue:
 *   - runs/s: hello invoked over the HTTP API (16 clients), and hello runs triggered by events (no
 *     client at all: a burst of deliveries), side by side with the library's worker pool (Agent.run,
 *     no HTTP) and with `ice run` started once per run (what ICE was before `ice serve`);
 *   - trigger-to-run latency: from an event's emit (its call record) and from a webhook's send to the
 *     start of the run it causes (run-start `at`, millisecond timestamps).
 * The goals: ≥ 1,000 hello runs/s, p50 latency < 5 ms.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { buildGuest } from '../host/src/build/index.js';
import { createHost } from '../host/src/index.js';
import { signWebhook } from '../host/src/serve/webhook.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const work = mkdtempSync(join(tmpdir(), 'ice-bench-serve-'));
const RUNS = Number(process.env.BENCH_SERVE_RUNS ?? 3000);
const BURST = Number(process.env.BENCH_SERVE_BURST ?? 2000);
const LATENCY_SAMPLES = Number(process.env.BENCH_SERVE_LATENCY ?? 200);
const SECRET = 'bench-hook-secret';
const CLIENTS = 32;

const wasm = async (name: string) => {
  const path = join(work, `${name}.wasm`);
  writeFileSync(path, (await buildGuest(join(root, 'guests', name))).component);
  return path;
};
const policy = (name: string, grants: string) => {
  const path = join(work, `${name}.policy.yaml`);
  writeFileSync(path, `version: 1\ncomponent: ${name}\ngrants:\n${grants}`);
  return path;
};
const hello = await wasm('hello');
const emitterWasm = await wasm('event-emitter');
const config = join(work, 'ice.yaml');
writeFileSync(
  config,
  `agents:
  - { name: hello, component: ${hello}, policy: ${policy('hello', '  log: {}\n')}, concurrency: 64, queue: 100000 }
  - { name: emitter, component: ${emitterWasm}, policy: ${policy('emitter', '  log: {}\n  events: { kinds: ["bench.*"], maxCalls: 1000000 }\n')} }
  - name: serial
    component: ${hello}
    policy: ${policy('serial', '  log: {}\n  events: { receive: ["bench.serial"] }\n')}
    queue: 100000
    on: { events: ["bench.serial"] }
  - name: parallel
    component: ${hello}
    policy: ${policy('parallel', '  log: {}\n  events: { receive: ["bench.parallel"] }\n')}
    concurrency: 8
    queue: 100000
    on: { events: ["bench.parallel"] }
  - name: latency
    component: ${hello}
    policy: ${policy('latency', '  log: {}\n  events: { receive: ["bench.latency"] }\n')}
    on: { events: ["bench.latency"], http: /hooks/latency, verify: { hmac: HOOK } }
`,
);

const state = join(work, 'state');
const server: ChildProcess = spawn(process.execPath, [join(root, 'bin', 'ice.js'), 'serve', '--config', config, '--state', state, '--listen', '127.0.0.1:0'], {
  env: { ...process.env, HOOK: SECRET, ICE_LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const infoPath = join(state, 'serve', 'server.json');
while (!existsSync(infoPath)) await sleep(50);
const { url } = JSON.parse(readFileSync(infoPath, 'utf8')) as { url: string };
const token = readFileSync(join(state, 'serve', 'token'), 'utf8').trim();

async function invoke(agent: string, input: string): Promise<{ runId: string; ok: boolean }> {
  const response = await fetch(`${url}/v1/agents/${agent}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
  const body = (await response.json()) as { run?: { runId: string; ok: boolean }; error?: string };
  if (!body.run) throw new Error(body.error);
  return body.run;
}

const db = new Database(join(state, 'ice.db'), { readonly: true });
const startsOf = db.prepare<[string], { run: string; at: string; cause: string | null }>(
  "SELECT run, body ->> '$.at' AS at, body ->> '$.cause' AS cause FROM ledger WHERE type = 'run-start' AND body ->> '$.component.name' = ? ORDER BY id",
);
const endAt = db.prepare<[string], string>("SELECT body ->> '$.at' FROM ledger WHERE run = ? AND type = 'run-end'").pluck();

// 1. HTTP invoke throughput. The client is node:http with keep-alive: fetch (undici) spent more of the
// two cores than the server did, and measured the client (600 runs/s against 900–1100).
async function httpThroughput(serverUrl: string, bearer: string): Promise<number> {
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const target = new URL(serverUrl);
  const body = JSON.stringify({ input: 'bench' });
  const invokeHello = () =>
    new Promise<void>((resolve, reject) => {
      const request = http.request(
        { host: target.hostname, port: target.port, path: '/v1/agents/hello/invoke', method: 'POST', agent: keepAlive, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => ((JSON.parse(text) as { run?: { ok: boolean } }).run?.ok ? resolve() : reject(new Error(`a hello run failed: ${text}`))));
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  for (let i = 0; i < 200; i++) await invokeHello();
  let sent = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (sent++ < RUNS) await invokeHello();
  }));
  keepAlive.destroy();
  return RUNS / ((performance.now() - t) / 1000);
}
const httpRate = await httpThroughput(url, token);

// 2. Triggered runs: a burst of events, delivered to a serialized agent and to one with concurrency 8.
async function burst(kind: string, agent: string): Promise<number> {
  const before = startsOf.all(agent).length;
  const emit = await invoke('emitter', Array.from({ length: BURST }, (_, i) => `${kind} e${i}`).join('\n'));
  const emitted = Date.parse(endAt.get(emit.runId)!);
  let runs = startsOf.all(agent).slice(before);
  while (runs.length < BURST || endAt.get(runs.at(-1)!.run) === undefined) {
    await sleep(20);
    runs = startsOf.all(agent).slice(before);
  }
  const last = Math.max(...runs.map((r) => Date.parse(endAt.get(r.run) ?? '0')));
  return BURST / ((last - emitted) / 1000);
}
const serialRate = await burst('bench.serial', 'serial');
const parallelRate = await burst('bench.parallel', 'parallel');

// 3. Trigger-to-run latency, one trigger at a time.
const emitAt = db.prepare<[string], string>("SELECT body ->> '$.at' FROM ledger WHERE run = ? AND seq = 1").pluck();
const eventLatency: number[] = [];
for (let i = 0; i < LATENCY_SAMPLES; i++) {
  const emit = await invoke('emitter', `bench.latency l${i}`);
  const id = `${emit.runId}#1`;
  let start: { at: string } | undefined;
  while (!(start = startsOf.all('latency').find((r) => r.cause !== null && (JSON.parse(r.cause) as { event?: string }).event === id))) await sleep(1);
  eventLatency.push(Date.parse(start.at) - Date.parse(emitAt.get(emit.runId)!));
}
const webhookLatency: number[] = [];
for (let i = 0; i < LATENCY_SAMPLES; i++) {
  const before = startsOf.all('latency').length;
  const body = `{"n":${i}}`;
  const sent = Date.now();
  const response = await fetch(`${url}/hooks/latency`, { method: 'POST', body, headers: signWebhook(SECRET, body) });
  if (response.status !== 202) throw new Error(`webhook answered ${response.status}`);
  let runs = startsOf.all('latency');
  while (runs.length === before) {
    await sleep(1);
    runs = startsOf.all('latency');
  }
  webhookLatency.push(Date.parse(runs.at(-1)!.at) - sent);
}
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));

// 4. The same HTTP throughput with tracing on: spans of every run exported over OTLP/HTTP to a local
// collector that accepts and drops them.
let spansReceived = 0;
const collector = http.createServer((request, response) => {
  let text = '';
  request.on('data', (chunk: Buffer) => (text += chunk.toString()));
  request.on('end', () => {
    spansReceived += (text.match(/"spanId"/g) ?? []).length;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end('{}');
  });
});
await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
const tracedState = join(work, 'traced');
const traced = spawn(process.execPath, [join(root, 'bin', 'ice.js'), 'serve', '--config', config, '--state', tracedState, '--listen', '127.0.0.1:0'], {
  env: { ...process.env, HOOK: SECRET, ICE_LOG_LEVEL: 'warn', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as { port: number }).port}` },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const tracedInfo = join(tracedState, 'serve', 'server.json');
while (!existsSync(tracedInfo)) await sleep(50);
const tracedRate = await httpThroughput((JSON.parse(readFileSync(tracedInfo, 'utf8')) as { url: string }).url, readFileSync(join(tracedState, 'serve', 'token'), 'utf8').trim());
traced.kill('SIGTERM');
await new Promise((resolve) => traced.once('exit', resolve));
collector.close();
db.close();

// Baselines: the library's worker pool (no HTTP, no actor queue), and `ice run` as one process per run.
const host = await createHost({ stateDir: join(work, 'library') });
const agent = await host.load(hello, join(work, 'hello.policy.yaml'));
for (let i = 0; i < 200; i++) await agent.run('warm');
let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: 64 }, async () => {
  while (next++ < RUNS) await agent.run('bench');
}));
const poolRate = RUNS / ((performance.now() - t0) / 1000);
host.close();
const processMs: number[] = [];
for (let i = 0; i < 5; i++) {
  const started = performance.now();
  spawnSync(process.execPath, [join(root, 'bin', 'ice.js'), 'run', hello, '--policy', join(work, 'hello.policy.yaml'), '--input', 'x', '--state', join(work, 'cli')]);
  processMs.push(performance.now() - started);
}
const processRate = 1000 / median(processMs);

const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - s.length));
const line = (label: string, value: string, ratio = '') => console.log(`${pad(label, 78)}  ${pad(value, 10)}  ${ratio}`);
console.log(`\nice serve, warm (${availableParallelism()} cores; server, workers and this client share them; node ${process.version})`);
line('runs per second', 'runs/s', 'vs `ice run` per process');
line('─'.repeat(78), '─'.repeat(10), '─'.repeat(24));
line('`ice run` of hello, one process per run (before ice serve)', processRate.toFixed(1), '1×');
line(`hello on the library's worker pool (Agent.run, 64 concurrent, no HTTP)`, String(Math.round(poolRate)), `${Math.round(poolRate / processRate)}×`);
line(`hello invoked over the HTTP API (${CLIENTS} keep-alive clients, agent concurrency 64)`, String(Math.round(httpRate)), `${Math.round(httpRate / processRate)}×  (goal ≥ 1000)`);
line(`the same with tracing on (OTLP/HTTP to a local collector; ${spansReceived} spans received)`, String(Math.round(tracedRate)), `${Math.round(tracedRate / processRate)}×  (${(tracedRate / httpRate).toFixed(2)}× of tracing off)`);
line(`hello triggered by a burst of ${BURST} events, concurrency 1 (in arrival order)`, String(Math.round(serialRate)), `${Math.round(serialRate / processRate)}×`);
line(`hello triggered by a burst of ${BURST} events, concurrency 8`, String(Math.round(parallelRate)), `${Math.round(parallelRate / processRate)}×  (goal ≥ 1000)`);
console.log('');
line(`trigger → run-start latency, ms (${LATENCY_SAMPLES} each, one at a time)`, 'p50', 'p95 · max   (goal p50 < 5)');
line('─'.repeat(78), '─'.repeat(10), '─'.repeat(24));
for (const [label, samples] of [['event emitted (its call record) → subscriber run-start', eventLatency], ['webhook sent (client clock) → run-start', webhookLatency]] as const) {
  const s = [...samples].sort((a, b) => a - b);
  line(label, String(quantile(s, 0.5)), `${quantile(s, 0.95)} · ${s.at(-1)}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
