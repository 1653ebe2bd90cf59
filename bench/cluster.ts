/**
 * `npm run bench` (seventh table): `ice serve` hosts sharing one PostgreSQL (`--db`), 1, 2 and 3 server
 * processes on this machine, against the baseline of one `ice serve` on its own SQLite state (no
 * cluster). The work: a burst of events emitted once, delivered to six agents (each event to each),
 * hello runs with concurrency 8 per agent. Runs/s = runs completed ÷ time from the emit's answer until
 * the shared queue is empty and every run-end is in the shared ledger.
 *
 * Also printed per configuration: PostgreSQL commits per run and shared-ledger bytes per run (from
 * pg_stat_database and the tables' sizes), the inputs of the README's estimate for 100 hosts.
 *
 * PostgreSQL: ICE_BENCH_POSTGRES (a URL), or a throwaway server started with scripts/postgres.sh.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { buildGuest } from '../host/src/build/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const work = mkdtempSync(join(tmpdir(), 'ice-bench-cluster-'));
const EVENTS = Number(process.env.BENCH_CLUSTER_EVENTS ?? 500);
const WARM = 50;
const AGENTS = 6;
const KEY = 'bench-cluster-ledger-key-0123456789abcdef';

let pgServer: { url: string; stop: () => void } | undefined;
const serverUrl = (): string => {
  if (process.env.ICE_BENCH_POSTGRES) return process.env.ICE_BENCH_POSTGRES;
  const env = { ...process.env, ICE_PG_DIR: join(tmpdir(), 'ice-bench-pg'), ICE_PG_PORT: '54349' };
  const url = execFileSync('bash', [join(root, 'scripts', 'postgres.sh'), 'start'], { env, encoding: 'utf8' }).trim();
  pgServer = { url, stop: () => execFileSync('bash', [join(root, 'scripts', 'postgres.sh'), 'stop'], { env }) };
  return url;
};
const server = serverUrl();

const hello = join(work, 'hello.wasm');
writeFileSync(hello, (await buildGuest(join(root, 'guests', 'hello'))).component);
const emitter = join(work, 'emitter.wasm');
writeFileSync(emitter, (await buildGuest(join(root, 'guests', 'event-emitter'))).component);
const policy = (name: string, grants: string) => {
  const path = join(work, `${name}.policy.yaml`);
  writeFileSync(path, `version: 1\ncomponent: ${name}\ngrants:\n${grants}`);
  return path;
};
const agents = Array.from({ length: AGENTS }, (_, i) => `h${i + 1}`);
const config = join(work, 'ice.yaml');
writeFileSync(
  config,
  `agents:\n  - { name: emitter, component: ${emitter}, policy: ${policy('emitter', '  log: {}\n  events: { kinds: ["tick"], maxCalls: 1000000 }\n')} }\n` +
    agents.map((a) => `  - { name: ${a}, component: ${hello}, policy: ${policy(a, '  log: {}\n  events: { receive: ["tick"] }\n')}, concurrency: 8, queue: 100000, on: { events: ["tick"] } }\n`).join(''),
);

interface Host {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  readonly state: string;
}

async function start(db: string | undefined): Promise<Host> {
  const state = mkdtempSync(join(work, 'state-'));
  const child = spawn(process.execPath, [join(root, 'bin', 'ice.js'), 'serve', '--config', config, '--state', state, '--listen', '127.0.0.1:0', ...(db ? ['--db', db, '--lease-ms', '3000'] : [])], {
    env: { ...process.env, ICE_LEDGER_KEY: KEY, ICE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Its stderr is shown only if it fails (a clean stop prints what a person at a terminal wants to see).
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(stderr);
  });
  const info = join(state, 'serve', 'server.json');
  while (!existsSync(info)) await sleep(50);
  const { url } = JSON.parse(readFileSync(info, 'utf8')) as { url: string };
  return { child, url, token: readFileSync(join(state, 'serve', 'token'), 'utf8').trim(), state };
}

async function emit(host: Host, events: number, tag: string): Promise<void> {
  const input = Array.from({ length: events }, (_, i) => `tick ${tag}${i}`).join('\n');
  const response = await fetch(`${host.url}/v1/agents/emitter/invoke`, { method: 'POST', headers: { authorization: `Bearer ${host.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
  const body = (await response.json()) as { run?: { outcome: string } };
  if (body.run?.outcome !== 'ok') throw new Error(`the emitter run failed: ${JSON.stringify(body)}`);
}

/** Runs/s of one burst on `hosts` processes (0: one process on its own SQLite state, no cluster). */
/** CPU time (ms) used so far by processes: the ice serve hosts, and every process named postgres (server and backends). */
function cpuMs(pids: readonly number[]): { ice: number; postgres: number } {
  const ticks = (pid: number): number => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  let postgres = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') postgres += ticks(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  // USER_HZ is 100 on Linux.
  return { ice: pids.reduce((sum, pid) => sum + ticks(pid), 0) * 10, postgres: postgres * 10 };
}

async function measure(hosts: number): Promise<{ rate: number; commitsPerRun?: number; bytesPerRun?: number; iceCpu: number; pgCpu: number }> {
  let db: string | undefined;
  let client: pg.Client | undefined;
  if (hosts > 0) {
    const name = `ice_bench_${hosts}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: server });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(server);
    url.pathname = `/${name}`;
    db = url.toString();
  }
  const started = await Promise.all(Array.from({ length: Math.max(1, hosts) }, () => start(db)));
  try {
    const done: () => Promise<number> = db
      ? async () => {
          client ??= await connect(db!);
          const { rows } = await client.query<{ left: string; ended: string }>(
            `SELECT (SELECT count(*) FROM ice_deliveries) AS left, (SELECT count(*) FROM ice_ledger WHERE type = 'run-end' AND agent <> 'emitter') AS ended`,
          );
          return Number(rows[0]!.left) === 0 ? Number(rows[0]!.ended) : -1;
        }
      : async () => {
          const sqlite = new Database(join(started[0]!.state, 'ice.db'), { readonly: true });
          try {
            const left = sqlite.prepare('SELECT count(*) FROM deliveries').pluck().get() as number;
            const ended = sqlite.prepare(`SELECT count(*) FROM ledger WHERE type = 'run-end' AND body ->> '$.output.value' LIKE 'hello%'`).pluck().get() as number;
            return left === 0 ? ended : -1;
          } finally {
            sqlite.close();
          }
        };
    const until = async (expected: number) => {
      for (;;) {
        const ended = await done();
        if (ended >= expected) return;
        await sleep(20);
      }
    };
    // Warm: every host loads its components and takes part before the clock starts.
    await emit(started[0]!, WARM, 'warm');
    await until(WARM * AGENTS);
    const before = await done();
    const stats = db ? await pgStats(client!) : undefined;
    const pids = started.map((h) => h.child.pid!);
    const cpu0 = cpuMs(pids);
    const t0 = performance.now();
    await emit(started[0]!, EVENTS, 'e');
    await until(before + EVENTS * AGENTS);
    const seconds = (performance.now() - t0) / 1000;
    const runs = EVENTS * AGENTS;
    const cpu1 = cpuMs(pids);
    const cpu = { iceCpu: (cpu1.ice - cpu0.ice) / runs, pgCpu: (cpu1.postgres - cpu0.postgres) / runs };
    if (!db) return { rate: runs / seconds, ...cpu };
    const after = await pgStats(client!);
    return { rate: runs / seconds, commitsPerRun: (after.commits - stats!.commits) / runs, bytesPerRun: (after.bytes - stats!.bytes) / runs, ...cpu };
  } finally {
    for (const host of started) host.child.kill('SIGTERM');
    await Promise.all(started.map((h) => new Promise((resolve) => (h.child.exitCode !== null ? resolve(null) : h.child.once('exit', resolve)))));
    await (client as pg.Client | undefined)?.end();
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

async function pgStats(client: pg.Client): Promise<{ commits: number; bytes: number }> {
  const { rows } = await client.query<{ commits: string; bytes: string }>(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
            pg_total_relation_size('ice_ledger') + pg_total_relation_size('ice_runs') AS bytes`,
  );
  return { commits: Number(rows[0]!.commits), bytes: Number(rows[0]!.bytes) };
}

const cpuNote = 'CPU ms/run: user + system time of the ice serve processes (host threads and workers) and of every postgres process, per run';
const results: { label: string; hosts: number; rate: number; commitsPerRun?: number; bytesPerRun?: number; iceCpu: number; pgCpu: number }[] = [];
try {
  results.push({ label: 'one ice serve on its own SQLite state (no cluster)', hosts: 0, ...(await measure(0)) });
  for (const hosts of [1, 2, 3]) results.push({ label: `${hosts} ice serve process${hosts === 1 ? '' : 'es'} on one PostgreSQL (--db)`, hosts, ...(await measure(hosts)) });
} finally {
  pgServer?.stop();
  rmSync(work, { recursive: true, force: true });
}

const single = results[0]!.rate;
const one = results[1]!.rate;
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - s.length));
const line = (label: string, value: string, ratio: string, cpu: string, extra = '') => console.log(`${pad(label, 56)}  ${pad(value, 8)}  ${pad(ratio, 22)}  ${pad(cpu, 24)}  ${extra}`);
console.log(
  `\nice serve hosts sharing one PostgreSQL (${availableParallelism()} cores shared by every server process, its workers, PostgreSQL and this client; node ${process.version})`,
);
console.log(cpuNote);
console.log(`a burst of ${EVENTS} events to ${AGENTS} agents (${EVENTS * AGENTS} hello runs, concurrency 8 each), after a warm-up burst`);
line('configuration', 'runs/s', 'vs 1 host · vs SQLite', 'CPU ms/run: ICE · PG', 'PostgreSQL per run');
line('─'.repeat(56), '─'.repeat(8), '─'.repeat(22), '─'.repeat(24), '─'.repeat(28));
for (const r of results) {
  const perRun = r.commitsPerRun === undefined ? '' : `${r.commitsPerRun.toFixed(2)} commits · ${Math.round(r.bytesPerRun!)} B`;
  line(r.label, String(Math.round(r.rate)), r.hosts === 0 ? '— · 1×' : `${(r.rate / one).toFixed(2)}× · ${(r.rate / single).toFixed(2)}×`, `${r.iceCpu.toFixed(2)} · ${r.hosts === 0 ? '—' : r.pgCpu.toFixed(2)}`, perRun);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
