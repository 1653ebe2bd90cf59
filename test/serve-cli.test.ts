/**
 * The operator's side of `ice serve`, through the real `ice` binary: `ice audit trace` (the tree of runs
 * a run caused), `ice events list --follow`, `ice audit tail` (from the state database, and from a
 * real server), and the HTTP client of `ice agents` against a stub server that answers what a server
 * can: a wrong token, a refusal (409, 429), a run's outcome, an upgrade's divergence; and against no
 * server at all (no server.json, a dead pid, a refused connection). The agents' own behaviour is
 * test/serve.test.ts's, against the real server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capture } from '../host/src/core/capture.js';
import { LedgerStore, newRunId, type RunCause, type RunInvoke, type RunWriter } from '../host/src/ledger/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { freshHost, ice, tempDir, writePolicy, type CliResult } from './helpers.js';
import { guestWasm, ICE_BIN } from './paths.js';

// ── driving `ice` without blocking this process (the stub server and the followers live here) ──────

interface Running {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
const servers = new Set<Server>();
afterEach(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  await Promise.all([...servers].map((s) => new Promise((resolve) => s.close(resolve))));
  servers.clear();
});

function start(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [ICE_BIN, ...args], { env: { ...process.env, ICE_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function iceAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const running = start(args, env);
  const code = await running.exited;
  return { code: code ?? -1, stdout: running.stdout(), stderr: running.stderr() };
}

async function waitFor(what: string, condition: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Stops a follower as an operator would (Ctrl-C) and resolves with its exit code. */
async function interrupt(running: Running): Promise<number | null> {
  running.child.kill('SIGINT');
  return running.exited;
}

const EMITTER_POLICY = 'version: 1\ncomponent: emitter\ngrants:\n  log: {}\n  events: { kinds: ["notes.*"] }\n';

/** One run of the event-emitter guest on `state`, through `ice run`; its run id. */
function emit(state: string, policy: string, lines: string[]): string {
  const out = ice(['run', guestWasm('event-emitter'), '--policy', policy, '--state', state, '--input', lines.join('\n')]);
  expect(out.code, out.stderr).toBe(0);
  return /^run (\S+) /m.exec(out.stderr)![1]!;
}

// ── ice audit trace ──────────────────────────────────────────────────────────────────────────────

/** Writes runs straight into a state's ledger, each with the cause given (what `ice serve` would record). */
function ledgerWriter(state: string) {
  const db = openStateDb(state);
  const ledger = new LedgerStore(db);
  const open = (component: string, cause?: RunCause, invoke?: RunInvoke): RunWriter =>
    ledger.startRun({
      run: newRunId(),
      component: { name: component, digest: 'ab'.repeat(32) },
      policy: { digest: 'cd'.repeat(32), source: `${component}.yaml`, document: {} },
      input: capture('', 'full'),
      host: { ice: 'test' },
      ...(cause ? { cause } : {}),
      ...(invoke ? { invoke } : {}),
    });
  const run = (component: string, cause?: RunCause, invoke?: RunInvoke, outcome: 'ok' | 'trap' = 'ok'): string => {
    const writer = open(component, cause, invoke);
    writer.end({ outcome, durationUs: 10, ...(outcome === 'trap' ? { blame: 'guest' as const, reason: 'unreachable' } : {}) });
    return writer.run;
  };
  const event = (from: string, seq: number, kind = 'notes.added'): Extract<RunCause, { kind: 'event' }> => ({ kind: 'event', event: `${from}#${seq}`, run: from, seq, eventKind: kind, attempt: 1 });
  return { open, run, event, close: () => db.close() };
}

describe('ice audit trace', () => {
  it('prints the tree of runs a run caused, recursively, with what each called, its cause and outcome', () => {
    const state = tempDir();
    const w = ledgerWriter(state);
    const root = w.run('emitter', { kind: 'manual', by: 'ada' });
    const a = w.run('notes', w.event(root, 1));
    const b = w.run('trapper', { ...w.event(root, 2, 'notes.other'), attempt: 2 }, undefined, 'trap');
    const quarantine = w.run('trapper', { kind: 'fault', run: b, faults: 2, windowMs: 60000 }, { kind: 'lifecycle', agent: 'trapper', from: 'active', to: 'quarantined' });
    const grandchild = w.run('archive', w.event(a, 1, 'notes.filed'));
    const open = w.open('notes', w.event(grandchild, 3, 'notes.done')); // in flight: no run-end
    w.run('unrelated');
    w.close();

    const out = ice(['audit', 'trace', root, '--state', state]);
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.trimEnd().split('\n').map((l) => l.trimEnd());
    expect(lines[0]).toMatch(/^run +component +called +cause +outcome$/);
    // The first column is the tree's branches and the run id; the others are two or more spaces apart.
    const rows = lines.slice(2, -2).map((l) => {
      const [, branches, rest] = /^([│├└─ ]*\S+) {2,}(.*)$/u.exec(l)!;
      return [branches!, ...rest!.split(/ {2,}/)];
    });
    expect(rows).toEqual([
      [root, 'emitter', 'run', 'invoked by ada', 'ok'],
      [`├─ ${a}`, 'notes', 'run', `event notes.added from ${root}#1`, 'ok'],
      [`│  └─ ${grandchild}`, 'archive', 'run', `event notes.filed from ${a}#1`, 'ok'],
      [`│     └─ ${open.run}`, 'notes', 'run', `event notes.done from ${grandchild}#3`, 'unfinished (in flight)'],
      [`└─ ${b}`, 'trapper', 'run', `event notes.other from ${root}#2 (attempt 2)`, 'trap (guest blame)'],
      [`   └─ ${quarantine}`, 'trapper', 'lifecycle: trapper active → quarantined', `2 faults within 60000 ms, the last in run ${b}`, 'ok'],
    ]);
    expect(lines.at(-1)).toBe('5 runs caused');

    const json = ice(['audit', 'trace', root, '--json', '--state', state]);
    const tree = JSON.parse(json.stdout) as { run: string; omitted: number; caused: { run: string; outcome: string; cause: RunCause; caused: { run: string }[] }[] };
    expect(tree.run).toBe(root);
    expect(tree.caused.map((c) => [c.run, c.outcome, c.cause.kind])).toEqual([
      [a, 'ok', 'event'],
      [b, 'trap', 'event'],
    ]);
    expect(tree.caused[1]!.caused.map((c) => c.run)).toEqual([quarantine]);

    // A run that caused nothing, and `last`.
    expect(ice(['audit', 'trace', 'last', '--state', state]).stdout).toMatch(/^\S+ +unrelated +run +started directly +ok\n\nit caused no runs\n$/m);
  });

  it('bounds a large fan-out and a deep chain, and says how many runs it left out and how to see them', () => {
    const state = tempDir();
    const w = ledgerWriter(state);
    const root = w.run('emitter');
    for (let i = 1; i <= 60; i++) w.run('notes', w.event(root, i));
    // A chain deeper than the depth bound (32): an agent answering its own events.
    let link = w.run('echo', w.event(root, 61, 'echo.ping'));
    const chain = [link];
    for (let i = 0; i < 34; i++) chain.push((link = w.run('echo', w.event(link, 1, 'echo.ping'))));
    w.close();

    const out = ice(['audit', 'trace', root, '--limit', '5', '--state', state]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain(`└─ … 56 more (caused by ${root}: \`--limit 61\` shows more)`);
    expect(out.stdout.split('\n').filter((l) => / notes +run /.test(l))).toHaveLength(5);
    expect(out.stdout).toMatch(/5 runs shown; at least 56 more left out \(the … rows\)\n$/);

    // The chain is walked to the depth bound; the cut names the run to trace from.
    const deep = JSON.parse(ice(['audit', 'trace', chain[0]!, '--json', '--state', state]).stdout) as { run: string; caused: unknown[]; omitted: number };
    let node = deep;
    let depth = 0;
    while (node.caused.length > 0) {
      node = node.caused[0] as typeof deep;
      depth++;
    }
    expect(depth).toBe(32);
    expect(node.run).toBe(chain[32]);
    expect(node.omitted).toBe(1);
    const text = ice(['audit', 'trace', chain[0]!, '--state', state]).stdout;
    expect(text).toContain(`└─ … 1 more (\`ice audit trace ${chain[32]}\` continues from here)`);
    expect(ice(['audit', 'trace', chain[32]!, '--state', state]).stdout).toMatch(new RegExp(`└─ ${chain[34]} +echo +run +event echo\\.ping from ${chain[33]}#1 +ok\n\n2 runs caused\n$`));
  });

  it('follows real runs: a run caused by an event of another run shows under it', async () => {
    const { host, stateDir } = await freshHost();
    try {
      const emitter = await host.load(guestWasm('event-emitter'), writePolicy(EMITTER_POLICY));
      const first = await emitter.run('notes.added one');
      expect(first.ok).toBe(true);
      const hello = await host.load(guestWasm('hello'), writePolicy('version: 1\ncomponent: notes\ngrants:\n  log: {}\n'));
      const handled = await hello.run('one', { cause: { kind: 'event', event: `${first.runId}#1`, run: first.runId, seq: 1, eventKind: 'notes.added', attempt: 1 } });
      expect(handled.ok).toBe(true);
      const out = ice(['audit', 'trace', first.runId, '--state', stateDir]);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toMatch(new RegExp(`^${first.runId} +emitter +run +started directly +ok$`, 'm'));
      expect(out.stdout).toMatch(new RegExp(`^└─ ${handled.runId} +notes +run +event notes\\.added from ${first.runId}#1 +ok$`, 'm'));
    } finally {
      host.close();
    }
  });

  it('says what is wrong with an unknown run, an empty ledger or a bad --limit', () => {
    const state = tempDir();
    expect(ice(['audit', 'trace', 'last', '--state', state]).stderr).toMatch(/^ice audit trace: no ICE state in .* \(no ice\.db\)/);
    ledgerWriter(state).close();
    const empty = ice(['audit', 'trace', 'last', '--state', state]);
    expect([empty.code, empty.stderr]).toEqual([2, `ice audit trace: the ledger in ${state} has no runs yet\n`]);
    const w = ledgerWriter(state);
    w.run('emitter');
    w.close();
    const unknown = ice(['audit', 'trace', 'NOPE', '--state', state]);
    expect([unknown.code, unknown.stderr]).toEqual([2, `ice audit trace: no run NOPE in the ledger in ${state} (\`ice audit list\` shows the runs)\n`]);
    expect(ice(['audit', 'trace', 'last', '--limit', '0', '--state', state]).stderr).toContain('--limit must be a positive integer');
  });
});

// ── ice events list --follow, ice audit tail (state database) ───────────────────────────────────────

describe('following the state database', () => {
  it('ice events list --follow prints what exists, then each new event as it is committed, until SIGINT', async () => {
    const state = tempDir();
    const policy = writePolicy(EMITTER_POLICY);
    const first = emit(state, policy, ['notes.added one']);
    const table = start(['events', 'list', '--follow', '--state', state]);
    const json = start(['events', 'list', '--follow', '--json', '--kind', 'notes.filed', '--state', state]);
    await waitFor('both followers to start', () => table.stderr().includes('following new events') && json.stderr().includes('following new events'));
    expect(table.stdout()).toMatch(new RegExp(`^run +seq +at +component +kind +payload\n─+.*\n${first} +1 +\\S+ +emitter +notes\\.added +one\n$`));
    expect(json.stdout()).toBe('');

    const second = emit(state, policy, ['notes.filed two', 'other.x denied', 'notes.added three']);
    await waitFor('the new events', () => table.stdout().includes('three') && json.stdout().includes('two'));
    expect(await interrupt(table)).toBe(0);
    expect(await interrupt(json)).toBe(0);
    const lines = table.stdout().trimEnd().split('\n');
    // The header once; the denied emit is no event.
    expect(lines.filter((l) => l.startsWith('run '))).toHaveLength(1);
    expect(lines.slice(2).map((l) => l.split(/ {2,}/).filter((c) => c !== '').slice(-2))).toEqual([
      ['notes.added', 'one'],
      ['notes.filed', 'two'],
      ['notes.added', 'three'],
    ]);
    expect(json.stdout().trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual([
      { run: second, seq: 1, at: expect.any(String), component: 'emitter', kind: 'notes.filed', payload: 'two' },
    ]);
  });

  it('ice audit tail prints each new ledger record on one line, read-only, from the end or --after a row id', async () => {
    const state = tempDir();
    const policy = writePolicy(EMITTER_POLICY);
    const before = emit(state, policy, ['notes.added old']);
    const tail = start(['audit', 'tail', '--state', state]);
    const all = start(['audit', 'tail', '--json', '--after', '0', '--state', state]);
    await waitFor('the tails to start', () => tail.stderr().includes('following the ledger') && all.stderr().includes('following the ledger'));
    const run = emit(state, policy, ['notes.added new', 'other.x no']);
    await waitFor('the run in both tails', () => tail.stdout().includes('run-end') && all.stdout().split('\n').filter((l) => l.includes('"run-end"')).length === 2);
    expect(await interrupt(tail)).toBe(0);
    expect(await interrupt(all)).toBe(0);

    const lines = tail.stdout().trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.every((l) => l.startsWith(run))).toBe(true);
    expect(lines[0]).toMatch(/^\S+ +0 {2}run-start {2}emitter {2}run$/);
    expect(lines[1]).toMatch(/^\S+ +1 {2}call {7}events\.emit\("notes\.added", "new"\) {2}allow {2}grants\.events\.kinds\[0\] {2}→ ok$/);
    expect(lines[2]).toMatch(/^\S+ +2 {2}call {7}events\.emit\("other\.x", "no"\) {2}deny {2}grants\.events\.kinds {2}→ denied: /);
    expect(lines[3]).toMatch(/^\S+ +3 {2}run-end {4}ok {2}2 calls \(1 denied\) {2}\S+ (µs|ms)$/);

    const rows = all.stdout().trimEnd().split('\n').map((l) => JSON.parse(l) as { id: number; run: string; seq: number; type: string; hash: string; body: string });
    expect(rows.map((r) => [r.run, r.seq, r.type])).toEqual([
      [before, 0, 'run-start'],
      [before, 1, 'call'],
      [before, 2, 'run-end'],
      [run, 0, 'run-start'],
      [run, 1, 'call'],
      [run, 2, 'call'],
      [run, 3, 'run-end'],
    ]);
    expect(rows.map((r) => r.id)).toEqual([...rows.map((r) => r.id)].sort((x, y) => x - y));
    // The body as stored (and hashed): it parses to the record of its row.
    expect(rows.every((r) => (JSON.parse(r.body) as { type: string; seq: number }).type === r.type && /^[0-9a-f]{64}$/.test(r.hash))).toBe(true);

    const none = tempDir();
    const missing = ice(['audit', 'tail', '--state', none]);
    expect([missing.code, missing.stderr]).toEqual([2, `ice audit tail: no ICE state in ${none} (no ice.db), and no ice serve running there: run a component first, or pass --state <dir>\n`]);
    expect(existsSync(join(none, 'ice.db'))).toBe(false);
    expect(ice(['audit', 'tail', '--after', 'x', '--state', state]).stderr).toContain('--after takes a ledger row id');
  });
});

// ── a real ice serve: tail and events through its long polls ─────────────────────────────────────────

describe('following a running ice serve', () => {
  it('ice audit tail on its state dir and ice events list --follow --server read its long polls', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const emitterPolicy = join(dir, 'emitter.yaml');
    writeFileSync(emitterPolicy, EMITTER_POLICY);
    const config = join(dir, 'ice.yaml');
    writeFileSync(config, `agents:\n  - name: emitter\n    component: ${guestWasm('event-emitter')}\n    policy: ${emitterPolicy}\n`);
    const server = start(['serve', '--config', config, '--state', state, '--listen', '127.0.0.1:0']);
    await waitFor('the server to listen', () => existsSync(join(state, 'serve', 'server.json')));
    const { url, tokenFile } = JSON.parse(readFileSync(join(state, 'serve', 'server.json'), 'utf8')) as { url: string; tokenFile: string };

    const tail = start(['audit', 'tail', '--state', state]);
    const events = start(['events', 'list', '--follow', '--json', '--server', url, '--token-file', tokenFile]);
    await waitFor('the followers to start', () => tail.stderr().includes('following ice serve on') && events.stderr().includes('following new events from ice serve'));
    const invoked = await iceAsync(['agents', 'invoke', 'emitter', '--input', 'notes.added served', '--by', 'ada', '--state', state]);
    expect(invoked.code, invoked.stderr).toBe(0);
    const run = /^run (\S+) ok/m.exec(invoked.stderr)![1]!;
    await waitFor('the run in the tail and the event', () => tail.stdout().includes('run-end') && events.stdout().includes('served'));
    expect(await interrupt(tail)).toBe(0);
    expect(await interrupt(events)).toBe(0);
    expect(tail.stdout()).toMatch(new RegExp(`^${run} +0 {2}run-start {2}emitter {2}run {2}← invoked by ada$`, 'm'));
    expect(JSON.parse(events.stdout().trim())).toEqual({ run, seq: 1, at: expect.any(String), component: 'emitter', kind: 'notes.added', payload: 'served' });

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });
});

// ── ice agents: the client against a stub, and against no server ───────────────────────────────────

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  type: string | undefined;
  body: Buffer;
}

const TOKEN = 'a'.repeat(64);

/** A stub of the API: `answer` decides each reply; every request is kept in `seen`. */
async function stub(answer: (seen: Seen) => [number, unknown]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const s: Seen = { method: request.method ?? '', url: request.url ?? '', auth: request.headers.authorization, type: request.headers['content-type'], body: Buffer.concat(chunks) };
      seen.push(s);
      const [status, body] = s.auth === `Bearer ${TOKEN}` ? answer(s) : [401, { error: 'missing or wrong bearer token: send Authorization: Bearer <the token in <state>/serve/token>' }];
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(body));
    });
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** A state dir whose server.json names `url` and `pid`, with a token file. */
function stateFor(url: string, pid: number = process.pid, token = TOKEN): string {
  const state = tempDir();
  mkdirSync(join(state, 'serve'), { mode: 0o700 });
  const tokenFile = join(state, 'serve', 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  chmodSync(tokenFile, 0o600);
  writeFileSync(join(state, 'serve', 'server.json'), JSON.stringify({ url, pid, started: new Date().toISOString(), tokenFile }));
  return state;
}

const STATUS = {
  name: 'notes',
  state: 'active',
  component: { name: 'notes', digest: 'ab'.repeat(32) },
  policy: { source: 'notes.yaml', digest: 'cd'.repeat(32) },
  triggers: { events: ['notes.*'] },
  queue: { length: 0, capacity: 16, running: 0, concurrency: 1 },
  faults: { recent: 0, max: 3, windowMs: 60000 },
  since: { run: 'R1' },
};

describe('ice agents (the client)', () => {
  it('finds the server from server.json, sends the token and --by, and prints its answers', async () => {
    const { url, seen } = await stub((s) => {
      if (s.url === '/v1/agents') return [200, { agents: [STATUS, { ...STATUS, name: 'trapper', state: 'quarantined', faults: { recent: 3, max: 3, windowMs: 60000 }, lastRun: { run: 'R9', outcome: 'trap', at: 'now' } }] }];
      if (s.url === '/v1/agents/notes') return [200, STATUS];
      if (s.url === '/v1/agents/notes/suspend') return [200, { ...STATUS, state: 'suspended', since: { run: 'R2' } }];
      return [404, { error: `no endpoint ${s.method} ${s.url}` }];
    });
    const state = stateFor(url);
    const list = await iceAsync(['agents', 'list', '--state', state]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^agent +state +component +queue +running +faults +last run\n/);
    expect(list.stdout).toMatch(/^notes +active +notes sha256:abababababab +0\/16 +0 +0\/3 +-$/m);
    expect(list.stdout).toMatch(/^trapper +quarantined +notes sha256:abababababab +0\/16 +0 +3\/3 +R9 trap$/m);
    const status = await iceAsync(['agents', 'status', 'notes', '--state', state]);
    expect(status.stdout).toContain('state      active  (since run R1)\n');
    expect(status.stdout).toContain('triggers   events notes.*\n');
    expect(JSON.parse((await iceAsync(['agents', 'status', 'notes', '--json', '--state', state])).stdout)).toEqual(STATUS);
    const suspend = await iceAsync(['agents', 'suspend', 'notes', '--reason', 'maintenance', '--by', 'ada', '--state', state]);
    expect([suspend.code, suspend.stdout]).toEqual([0, 'agent notes is suspended (recorded as run R2)\n']);
    const post = seen.find((s) => s.url === '/v1/agents/notes/suspend')!;
    expect([post.method, post.auth, post.type, JSON.parse(post.body.toString())]).toEqual(['POST', `Bearer ${TOKEN}`, 'application/json', { by: 'ada', reason: 'maintenance' }]);

    // --server and --token-file instead of a state dir.
    const tokenFile = join(tempDir(), 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    expect((await iceAsync(['agents', 'status', 'notes', '--server', `${url}/`, '--token-file', tokenFile])).code).toBe(0);
  });

  it('maps the outcome of an invoked run to the exit code, and 409 / 429 to 1', async () => {
    const result = (outcome: string, extra: object = {}) => ({ run: { runId: `R-${outcome}`, ok: outcome === 'ok', outcome, calls: 1, ledgerRoot: 'f'.repeat(64), durationMs: 3, ...extra } });
    const { url, seen } = await stub((s) => {
      const body = s.body.length > 0 ? (JSON.parse(s.body.toString()) as Record<string, unknown>) : {};
      if (s.url === '/v1/agents/notes/invoke') {
        if (body['input'] === 'ok') return [200, result('ok', { output: 'hello' })];
        if (body['input'] === 'err') return [200, result('error', { error: 'no such note' })];
        if (body['input'] === 'trap') return [200, result('trap', { error: 'wasm trap: unreachable', blame: 'guest' })];
        if (body['input'] === 'limit') return [200, result('limit', { error: 'fuel exhausted', limit: 'fuel' })];
        if (body['input'] === 'busy') return [429, { error: "agent notes's queue is full (16 runs waiting); try again later" }];
        if (body['function'] === 'add') return [200, result('ok', { output: '3', value: 3 })];
        if (Array.isArray(body['command'])) return [200, result('ok', { output: `argv ${(body['command'] as string[]).join(' ')} stdin ${String(body['stdin'])}\n` })];
        return [400, { error: 'say what to run' }];
      }
      if (s.url === '/v1/agents/notes/resume') return [409, { error: 'agent notes is active: it cannot become active' }];
      return [404, { error: `no agent "${s.url.split('/')[3]}" on this server; it serves notes` }];
    });
    const state = stateFor(url);
    const invoke = (...args: string[]) => iceAsync(['agents', 'invoke', 'notes', '--state', state, ...args]);

    const ok = await invoke('--input', 'ok');
    expect([ok.code, ok.stdout]).toEqual([0, 'hello\n']);
    expect(ok.stderr).toBe(`run R-ok ok · 1 call · 3 ms · ledger root ${'f'.repeat(16)}\n`);
    const err = await invoke('--input', 'err');
    expect([err.code, err.stderr]).toEqual([1, `run R-error error: no such note · 1 call · 3 ms · ledger root ${'f'.repeat(16)}\n`]);
    expect((await invoke('--input', 'trap')).code).toBe(3);
    const limit = await invoke('--input', 'limit');
    expect([limit.code, limit.stderr]).toEqual([3, `run R-limit limit (fuel): fuel exhausted · 1 call · 3 ms · ledger root ${'f'.repeat(16)}\n`]);
    const busy = await invoke('--input', 'busy');
    expect([busy.code, busy.stderr]).toEqual([1, "ice agents invoke: agent notes's queue is full (16 runs waiting); try again later\n"]);
    const resume = await iceAsync(['agents', 'resume', 'notes', '--state', state]);
    expect([resume.code, resume.stderr]).toEqual([1, 'ice agents resume: agent notes is active: it cannot become active\n']);
    const unknown = await iceAsync(['agents', 'status', 'nope', '--state', state]);
    expect([unknown.code, unknown.stderr]).toEqual([2, 'ice agents status: no agent "nope" on this server; it serves notes\n']);

    const typed = await invoke('--function', 'add', '--args', '{"a":1,"b":2}', '--json');
    expect(typed.code).toBe(0);
    expect(JSON.parse(typed.stdout)).toEqual(result('ok', { output: '3', value: 3 }));
    const command = await invoke('--input', 'in', '--', 'ls', '--long');
    expect([command.code, command.stdout]).toEqual([0, 'argv ls --long stdin in\n']);
    const bodies = seen.filter((s) => s.url.endsWith('/invoke')).map((s) => JSON.parse(s.body.toString()) as Record<string, unknown>);
    expect(bodies.at(-2)).toEqual({ function: 'add', args: { a: 1, b: 2 }, by: expect.any(String) });
    expect(bodies.at(-1)).toEqual({ command: ['ls', '--long'], stdin: 'in', by: expect.any(String) });
    // Arguments are checked before any request.
    const before = seen.length;
    expect((await invoke('--function', 'add', '--input', 'x')).stderr).toContain('give --input (a run of run(input)) or --function with --args (a typed call), not both');
    expect((await invoke('--function', 'add', '--args', '[1]')).stderr).toContain('--args must be a JSON object keyed by parameter name');
    expect((await iceAsync(['agents', 'invoke', 'Not_A_Name', '--state', state])).stderr).toContain('"Not_A_Name" is not an agent name');
    expect(seen.length).toBe(before);
  });

  it('upgrade sends the component as application/wasm; a divergent replay is refused with exit 1 and the runs that diverged', async () => {
    const component = readFileSync(guestWasm('hello'));
    const replayed = [
      { run: 'R1', matches: true },
      { run: 'R2', matches: false, detail: 'seq 1: expected events.emit("a", "b"), got log.write("info", "x")' },
    ];
    const { url, seen } = await stub((s) => {
      const query = new URL(s.url, 'http://x').searchParams;
      if (query.get('force') === '1') return [200, { from: 'aa'.repeat(32), to: 'bb'.repeat(32), replayed, forced: true, run: 'R3' }];
      return [409, { error: 'upgrade of agent notes refused: 1 of 2 recent runs replayed diverge; fix the component, or pass --force', replayed }];
    });
    const state = stateFor(url);
    const refused = await iceAsync(['agents', 'upgrade', 'notes', '--component', guestWasm('hello'), '--against', '2', '--by', 'ada', '--state', state]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'ice agents upgrade: upgrade of agent notes refused: 1 of 2 recent runs replayed diverge; fix the component, or pass --force\n' +
        '  run R1: matches\n' +
        '  run R2: diverges: seq 1: expected events.emit("a", "b"), got log.write("info", "x")\n',
    );
    const sent = seen[0]!;
    expect(sent.method).toBe('POST');
    expect(sent.type).toBe('application/wasm');
    expect(sent.body.equals(component)).toBe(true);
    expect(Object.fromEntries(new URL(sent.url, 'http://x').searchParams)).toEqual({ by: 'ada', against: '2' });

    const forced = await iceAsync(['agents', 'upgrade', 'notes', '--component', guestWasm('hello'), '--force', '--state', state]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toBe(
      'agent notes upgraded: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb (recorded as run R3)\n' +
        'replayed 2 recent runs against it: 1 diverged (upgraded anyway: --force)\n' +
        '  run R2: diverges: seq 1: expected events.emit("a", "b"), got log.write("info", "x")\n',
    );
    expect(new URL(seen[1]!.url, 'http://x').searchParams.get('force')).toBe('1');
    expect((await iceAsync(['agents', 'upgrade', 'notes', '--state', state])).stderr).toContain('--component <new.wasm> is required');
  });

  it('a wrong token, a refused connection, a dead pid or no server at all is exit 2 with the fix', async () => {
    const { url } = await stub(() => [200, { agents: [] }]);
    const wrong = await iceAsync(['agents', 'list', '--state', stateFor(url, process.pid, 'b'.repeat(64))]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^ice agents list: ice serve on .* \(pid \d+\) at http:\/\/127\.0\.0\.1:\d+ refused the token from .*\/serve\/token \(401: missing or wrong bearer token.*\); pass that server's token: its <state>\/serve\/token, or the file its --token-file names\n$/);

    // A live pid (this process) but nothing listening: the port of a server that was closed.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await iceAsync(['agents', 'list', '--state', stateFor(`http://127.0.0.1:${port}`)]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`^ice agents list: cannot reach ice serve on .* at http://127\\.0\\.0\\.1:${port}: connection refused: is the server running, and is this its address\\?`));
    const direct = await iceAsync(['agents', 'list', '--server', `http://127.0.0.1:${port}`], { ICE_SERVE_TOKEN: TOKEN });
    expect([direct.code, direct.stderr]).toEqual([2, expect.stringMatching(/^ice agents list: cannot reach ice serve at http:\/\/127\.0\.0\.1:\d+: connection refused/)]);

    const exited = spawnSync(process.execPath, ['-e', '']).pid!;
    const dead = stateFor(url, exited);
    const gone = await iceAsync(['agents', 'list', '--state', dead]);
    expect([gone.code, gone.stderr]).toEqual([
      2,
      `ice agents list: no ice serve is running on ${dead} (server.json names pid ${exited}, which has exited): start one with \`ice serve --config <ice.yaml> --state ${dead}\`, or pass --server <url> --token-file <file>\n`,
    ]);
    const none = tempDir();
    const nothing = await iceAsync(['agents', 'status', 'notes', '--state', none]);
    expect([nothing.code, nothing.stderr]).toEqual([2, expect.stringContaining(`ice agents status: no ice serve is running on ${none} (no ${join(none, 'serve', 'server.json')})`)]);
    const noToken = await iceAsync(['agents', 'list', '--server', url], { ICE_SERVE_TOKEN: '' });
    expect([noToken.code, noToken.stderr]).toEqual([2, expect.stringContaining('ice agents list: no token for ice serve at ' + url)]);
    const both = await iceAsync(['agents', 'list', '--server', url, '--state', none]);
    expect(both.stderr).toContain('give --state <dir> (the server running there) or --server <url>, not both');
    expect((await iceAsync(['agents', 'list', '--server', 'ftp://x', '--token-file', '/dev/null'])).stderr).toContain('expected an http:// or https:// URL');
  });
});
