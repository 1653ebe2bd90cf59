/**
 * Several `ice serve` hosts on one PostgreSQL (`--db`, host/src/cluster/): real server processes, real
 * guests, a real PostgreSQL (test/postgres.ts). What must hold: every event is delivered and recorded
 * exactly once whichever host runs it; a host killed with SIGKILL in the middle of an effect leaves a
 * shared ledger that verifies, its run ended `incomplete` by another host with the intent it had made
 * durable, and the agent goes on there; the shared ledger refuses a stale lease holder's writes and a
 * retried shipment's duplicates, and its verification catches edits, removed runs and forged checkpoints.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { ClusterStore, LeaseLost, ShipConflict, type Shipment } from '../host/src/cluster/store.js';
import { verifyCluster } from '../host/src/cluster/verify.js';
import { capture } from '../host/src/core/capture.js';
import { LedgerStore, newRunId } from '../host/src/ledger/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { tempDir } from './helpers.js';
import { guestWasm, ICE_BIN } from './paths.js';
import { freshDatabase, query, stopPostgres } from './postgres.js';
import { api, policy, serve, sleep, stopAll, type Served } from './serve-harness.js';

const KEY = 'cluster-test-ledger-key-0123456789abcdef';
const LEASE_MS = '2000';

afterEach(async () => {
  await stopAll();
});
afterAll(() => stopPostgres());

/** Every host a test started, so a failure shows what each one logged. */
const started: Served[] = [];

/** One cluster host: one worker (three hosts and PostgreSQL share this machine's cores with the other test files). */
async function host(config: string, db: string): Promise<Served> {
  const s = await serve(config, tempDir(), ['--db', db, '--lease-ms', LEASE_MS, '--workers', '1'], { ICE_LEDGER_KEY: KEY, ICE_LOG_LEVEL: 'info' });
  started.push(s);
  return s;
}

beforeEach(() => {
  started.length = 0;
  onTestFailed(() => {
    for (const s of started) console.log(`--- ice serve pid ${s.process.pid}:\n${s.stderr()}`);
  });
});

function verifyShared(db: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [ICE_BIN, 'audit', 'verify', '--db', db], { env: { ...process.env, ICE_LEDGER_KEY: KEY }, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The pid in a cluster host id (`<hostname>:<pid>:<random>`). */
const pidOf = (hostId: string) => Number(hostId.split(':').at(-2));

/**
 * An emitter and a fetcher agent (guests/event-fetcher: GETs the event's payload URL, counts it in kv)
 * on `count` hosts, and the server they fetch from: its first request is held until `release()`,
 * later ones answer at once.
 */
async function fetcherCluster(count: number) {
  const db = await freshDatabase();
  const dir = tempDir();
  let requests = 0;
  let release: () => void = () => undefined;
  const slow: Server = createServer((_request, response) => {
    requests++;
    if (requests === 1) release = () => response.end('late');
    else response.end('fine');
  });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  const close = () => {
    slow.closeAllConnections();
    slow.close();
  };
  const origin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const emitter = policy(dir, 'emitter', 'grants:\n  log: {}\n  events: { kinds: ["fetch"], maxCalls: 100 }\n');
  const fetcher = policy(dir, 'fetcher', `grants:\n  log: {}\n  kv: { read: ["*"], write: ["*"] }\n  http: { allow: [{ url: "${origin}/*" }], timeoutMs: 60000 }\n  events: { receive: ["fetch"] }\n`);
  const config = join(dir, 'ice.yaml');
  writeFileSync(config, `agents:\n  - { name: emitter, component: ${guestWasm('event-emitter')}, policy: ${emitter} }\n  - { name: fetcher, component: ${guestWasm('event-fetcher')}, policy: ${fetcher}, on: { events: ["fetch"] } }\n`);
  let hosts: Served[];
  try {
    hosts = await Promise.all(Array.from({ length: count }, () => host(config, db)));
  } catch (error) {
    close();
    throw error;
  }
  return {
    db,
    hosts,
    close,
    release: () => release(),
    /** Emits one fetch event via `via` for `path`; returns the event's id. */
    async emit(via: Served, path: string): Promise<string> {
      const emitted = await api(via, 'POST', '/v1/agents/emitter/invoke', { input: `fetch ${origin}${path}` });
      expect(emitted.json.run.outcome).toBe('ok');
      return `${emitted.json.run.runId as string}#1`;
    },
    /** The run in the middle of the first GET (its intent in the shared database before the effect started) and the host running it. */
    async inFlight(): Promise<{ running: { run: string; host: string }; on: Served }> {
      const running = await until('the fetch in flight', async () => {
        const rows = await query<{ run: string; host: string }>(db, 'SELECT r.run, r.host FROM ice_running r JOIN ice_intents i ON i.run = r.run');
        return requests === 1 && rows[0];
      });
      const on = hosts.find((h) => h.process.pid === pidOf(running.host));
      if (on === undefined) throw new Error(`no test host runs ${running.run} (${running.host})`);
      return { running, on };
    },
  };
}

describe('ice serve --db: three hosts on one PostgreSQL', () => {
  it('delivers and records a 1,000-event burst exactly once, shared across the hosts, and the shared ledger verifies', async () => {
    const db = await freshDatabase();
    const dir = tempDir();
    // Two subscribers on three hosts, each event for one of them (tick.a → c1, tick.b → c2): 1,000 runs.
    const counters = ['c1', 'c2'];
    const kindOf = (c: string) => (c === 'c1' ? 'tick.a' : 'tick.b');
    const emitter = policy(dir, 'emitter', 'grants:\n  log: {}\n  events: { kinds: ["tick.*"], maxCalls: 100000 }\n');
    const config = join(dir, 'ice.yaml');
    writeFileSync(
      config,
      `agents:\n  - { name: emitter, component: ${guestWasm('event-emitter')}, policy: ${emitter} }\n` +
        counters
          .map((c) => `  - { name: ${c}, component: ${guestWasm('counter')}, policy: ${policy(dir, c, `grants:\n  log: {}\n  kv: { read: ["*"], write: ["*"] }\n  events: { receive: ["${kindOf(c)}"] }\n`)}, queue: 2000, on: { events: ["${kindOf(c)}"] } }\n`)
          .join(''),
    );
    const hosts = await Promise.all([host(config, db), host(config, db), host(config, db)]);
    // The config's lifecycle is recorded once, by whichever host reconciled first.
    const lifecycle = await query<{ n: string }>(db, `SELECT count(*) AS n FROM ice_ledger WHERE type = 'run-start' AND body::jsonb -> 'invoke' ->> 'kind' = 'lifecycle'`);
    expect(Number(lifecycle[0]!.n)).toBe((1 + counters.length) * 2);

    const burst = Array.from({ length: 1000 }, (_, i) => `${i % 2 === 0 ? 'tick.a' : 'tick.b'} e${i}`).join('\n');
    const emitted = await api(hosts[0]!, 'POST', '/v1/agents/emitter/invoke', { input: burst });
    expect(emitted.status).toBe(200);
    expect(emitted.json.run.outcome).toBe('ok');

    await until('1,000 deliveries done', async () => {
      const [left] = await query<{ n: string }>(db, 'SELECT count(*) AS n FROM ice_deliveries');
      const [ended] = await query<{ n: string }>(db, `SELECT count(*) AS n FROM ice_ledger WHERE type = 'run-end' AND agent = ANY($1) AND body::jsonb ->> 'outcome' = 'ok'`, [counters]);
      return Number(left!.n) === 0 && Number(ended!.n) >= 1000 + counters.length * 2;
    }, 120_000);

    // Exactly once: one run per (agent, event), every one ok; and the counters' kv says so too.
    const runs = await query<{ agent: string; event: string; n: string; host: string }>(
      db,
      `SELECT s.agent, s.body::jsonb -> 'cause' ->> 'event' AS event, count(*) AS n, min(s.host) AS host
         FROM ice_ledger s WHERE s.type = 'run-start' AND s.body::jsonb -> 'cause' ->> 'kind' = 'event' GROUP BY 1, 2`,
    );
    expect(runs.length).toBe(1000);
    expect(new Set(runs.map((r) => r.event)).size).toBe(1000);
    expect(runs.filter((r) => Number(r.n) !== 1)).toEqual([]);
    for (const c of counters) expect(new Set(runs.filter((r) => r.agent === c).map((r) => r.event)).size).toBe(500);
    const kv = await query<{ namespace: string; value: string }>(db, `SELECT namespace, value FROM ice_kv WHERE key = 'count' ORDER BY namespace`);
    expect(kv).toEqual(counters.map((c) => ({ namespace: c, value: '500' })));
    // The work was shared: runs of the counters happened on more than one host.
    expect(new Set(runs.map((r) => r.host)).size).toBeGreaterThan(1);
    const incomplete = await query(db, `SELECT 1 FROM ice_ledger WHERE type = 'run-end' AND body::jsonb ->> 'outcome' <> 'ok'`);
    expect(incomplete).toEqual([]);

    // Every record verifies with the cluster's key; a wrong key does not.
    const verified = verifyShared(db);
    expect(verified.stdout).toMatch(new RegExp(`^ok: \\d+ records in ${1000 + (1 + counters.length) * 2 + 1} runs of ${1 + counters.length} agents verified`));
    expect(verified.status).toBe(0);
    const wrongKey = spawnSync(process.execPath, [ICE_BIN, 'audit', 'verify', '--db', db], { env: { ...process.env, ICE_LEDGER_KEY: `${KEY}-not` }, encoding: 'utf8' });
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.stdout).toMatch(/^FAILED run \S+ at seq 0: hash does not match body/);
    // The shared kv is the fold of the shared ledger's writes: an edited value is named.
    await query(db, `UPDATE ice_kv SET value = '999' WHERE namespace = 'c2' AND key = 'count'`);
    const editedKv = verifyShared(db);
    expect(editedKv.status).toBe(1);
    expect(editedKv.stdout).toMatch(/^FAILED: kv: c2 "count" in ice_kv is not the value set by run \S+ seq \d+ in the shared ledger \(the kv view was edited\)/);
  }, 180_000);

  it('kill -9 of the host in the middle of an effect: another host ends the run incomplete with its intent, redelivers, and the agent goes on there', async () => {
    // The first GET never answers (the host running it is killed meanwhile); later ones answer at once.
    const cluster = await fetcherCluster(3);
    const { db, hosts, emit } = cluster;
    try {
      const event = await emit(hosts[0]!, '/first');
      // The run is in the middle of its GET: its intent is in the shared database before the effect started.
      const { running, on: victim } = await cluster.inFlight();
      expect(victim).toBeDefined();
      await victim.stop('SIGKILL');
      const survivors = hosts.filter((h) => h !== victim);

      // After the lease expires another host ends the run and runs the event again.
      const ended = await until('the cut run ended by another host', async () => {
        const rows = await query<{ body: string; host: string }>(db, `SELECT body, host FROM ice_ledger WHERE run = $1 AND type = 'run-end'`, [running.run]);
        return rows[0];
      }, 30_000);
      const end = JSON.parse(ended.body) as { outcome: string; unknown?: number[]; reason: string; recovered?: { lastSeq: number } };
      expect(end.outcome).toBe('incomplete');
      expect(end.unknown).toEqual([1]);
      expect(end.reason).toContain(`its host ${running.host} stopped holding agent fetcher's lease`);
      expect(ended.host).not.toBe(running.host);
      const cut = await query<{ seq: number; type: string }>(db, 'SELECT seq, type FROM ice_ledger WHERE run = $1 ORDER BY seq', [running.run]);
      expect(cut.map((r) => r.type)).toEqual(['run-start', 'intent', 'run-end']);

      const again = await until('the event run again, ok', async () => {
        const rows = await query<{ run: string; host: string }>(
          db,
          `SELECT s.run, s.host FROM ice_ledger s JOIN ice_ledger e ON e.run = s.run AND e.type = 'run-end' AND e.body::jsonb ->> 'outcome' = 'ok'
            WHERE s.type = 'run-start' AND s.body::jsonb -> 'cause' ->> 'event' = $1`,
          [event],
        );
        return rows[0];
      }, 30_000);
      expect(again.host).not.toBe(running.host);
      expect(JSON.parse((await query<{ body: string }>(db, `SELECT body FROM ice_ledger WHERE run = $1 AND seq = 0`, [again.run]))[0]!.body).cause.attempt).toBe(2);
      // The cut run's kv write never happened; the rerun's did, once.
      expect(await query(db, 'SELECT value FROM ice_kv WHERE namespace = $1', ['fetcher'])).toEqual([{ value: '1' }]);

      // The agent goes on: the next event runs on a surviving host.
      const next = await emit(survivors[0]!, '/second');
      const nextEnd = await until('the next event done', async () => {
        const rows = await query<{ body: string }>(
          db,
          `SELECT e.body FROM ice_ledger s JOIN ice_ledger e ON e.run = s.run AND e.type = 'run-end' WHERE s.type = 'run-start' AND s.body::jsonb -> 'cause' ->> 'event' = $1`,
          [next],
        );
        return rows[0];
      }, 30_000);
      expect(JSON.parse(nextEnd.body)).toMatchObject({ outcome: 'ok', output: { value: 'status=200 fetches=2' } });
      expect(await query(db, 'SELECT value FROM ice_kv WHERE namespace = $1', ['fetcher'])).toEqual([{ value: '2' }]);
      expect(await query(db, 'SELECT id FROM ice_deliveries')).toEqual([]);

      const verified = verifyShared(db);
      expect(verified.stdout).toMatch(/^ok: \d+ records in \d+ runs of 2 agents verified/);
      expect(verified.stdout).toContain(`recovered: run ${running.run} was ended by recovery`);
      expect(verified.status).toBe(4);
    } finally {
      cluster.close();
    }
  }, 120_000);
});

describe('a host that stalls past its lease (SIGSTOP)', () => {
  it('is fenced off: another host ends and reruns its run, and what it does when it wakes never reaches the shared ledger', async () => {
    // The first GET hangs until released; later ones answer at once.
    const cluster = await fetcherCluster(2);
    const { db, hosts, emit } = cluster;
    try {
      const event = await emit(hosts[0]!, '/once');
      const { running, on: stalled } = await cluster.inFlight();
      stalled.process.kill('SIGSTOP');
      try {
        // The other host takes the agent over: the stalled run ends incomplete, the event runs again.
        await until('the rerun, ok', async () => {
          const rows = await query(db, `SELECT 1 FROM ice_ledger s JOIN ice_ledger e ON e.run = s.run AND e.type = 'run-end' AND e.body::jsonb ->> 'outcome' = 'ok'
            WHERE s.type = 'run-start' AND s.body::jsonb -> 'cause' ->> 'event' = $1`, [event]);
          return rows.length === 1;
        }, 30_000);
      } finally {
        // The stalled host wakes with its GET answered: its run goes on and ends, locally.
        cluster.release();
        stalled.process.kill('SIGCONT');
      }
      await until('the woken host gives up the agent', async () => stalled.stderr().includes('cluster: lost the lease'), 20_000);
      await sleep(500);
      // In the shared ledger the stalled run is what the new holder recorded: its prefix and an incomplete end.
      const cut = await query<{ seq: number; type: string; host: string }>(db, 'SELECT seq, type, host FROM ice_ledger WHERE run = $1 ORDER BY seq', [running.run]);
      expect(cut.map((r) => r.type)).toEqual(['run-start', 'intent', 'run-end']);
      expect(cut[2]!.host).not.toBe(running.host);
      const attempts = await query<{ outcome: string }>(
        db,
        `SELECT e.body::jsonb ->> 'outcome' AS outcome FROM ice_ledger s JOIN ice_ledger e ON e.run = s.run AND e.type = 'run-end'
          WHERE s.type = 'run-start' AND s.body::jsonb -> 'cause' ->> 'event' = $1 ORDER BY s.id`,
        [event],
      );
      expect(attempts.map((a) => a.outcome)).toEqual(['incomplete', 'ok']);
      // Its kv write (fetches=1 on its own copy) was fenced off: the shared kv has the rerun's only.
      expect(await query(db, 'SELECT value FROM ice_kv WHERE namespace = $1', ['fetcher'])).toEqual([{ value: '1' }]);
      const verified = verifyShared(db);
      expect(verified.stdout).toContain(`recovered: run ${running.run} was ended by recovery`);
      expect(verified.status).toBe(4);
    } finally {
      cluster.close();
    }
  }, 120_000);
});

describe('the shared ledger refuses and detects', () => {
  const key = Buffer.from(KEY, 'utf8');
  const TTL = 60_000;

  /** Real records of `n` runs written by a real LedgerStore (with the cluster's key), as shipments' rows. */
  function localRuns(n: number): { run: string; seq: number; type: string; hash: string; body: string }[][] {
    const previous = process.env['ICE_LEDGER_KEY'];
    process.env['ICE_LEDGER_KEY'] = KEY;
    const state = openStateDb(tempDir());
    try {
      const ledger = new LedgerStore(state);
      const runs = [];
      for (let i = 0; i < n; i++) {
        const writer = ledger.startRun({ run: newRunId(), component: { name: 'a', digest: 'd'.repeat(64) }, policy: { digest: 'p'.repeat(64), source: 'p.yaml', document: {} }, input: capture(`in ${i}`, 'full'), host: { ice: 'test' } });
        writer.appendCall({ call: 'ice:agent/log@0.1.0#write', args: [capture(`line ${i}`, 'full')], decision: 'allow', rule: 'grants.log', outcome: { ok: null }, durationUs: 3 });
        writer.end({ outcome: 'ok', output: capture('done', 'full'), durationUs: 10 });
        runs.push(state.db.prepare('SELECT run, seq, type, hash, body FROM ledger WHERE run = ? ORDER BY seq').all(writer.run) as { run: string; seq: number; type: string; hash: string; body: string }[]);
      }
      return runs;
    } finally {
      state.close();
      if (previous === undefined) delete process.env['ICE_LEDGER_KEY'];
      else process.env['ICE_LEDGER_KEY'] = previous;
    }
  }

  const shipment = (rows: Shipment['rows'], ends: string[] = [...new Set(rows.map((r) => r.run))]): Shipment => ({
    rows,
    ends: ends.map((run) => ({ run, incomplete: false })),
    kv: [],
    deliveries: [],
    intents: [],
    registry: [],
    done: [],
  });

  async function cluster(): Promise<{ store: ClusterStore; db: string }> {
    const db = await freshDatabase();
    const store = await ClusterStore.open(db, { max: 2 });
    await store.addAgents(['a']);
    return { store, db };
  }

  it('a stale lease holder (its token superseded) writes nothing; a retried shipment records nothing twice; a different hash at the same seq is a conflict', async () => {
    const { store, db } = await cluster();
    try {
      const [lease] = await store.acquire('host-1', ['a'], 1, TTL);
      const runs = localRuns(3);
      let head = await store.ship('host-1', lease!, TTL, key, null, shipment(runs[0]!));
      // Retried after an unknown outcome (a lost connection at COMMIT): the same rows, nothing new.
      const retried = await store.ship('host-1', lease!, TTL, key, head, shipment(runs[0]!));
      expect(retried).toEqual(head);
      expect((await query<{ n: string }>(db, 'SELECT count(*) AS n FROM ice_ledger'))[0]!.n).toBe('3');
      expect((await query<{ n: string }>(db, 'SELECT count(*) AS n FROM ice_runs'))[0]!.n).toBe('1');
      // The same (run, seq) with another body: refused whole.
      const forged = runs[0]!.map((r) => (r.seq === 1 ? { ...r, hash: 'f'.repeat(64) } : r));
      await expect(store.ship('host-1', lease!, TTL, key, head, shipment([...runs[1]!, ...forged]))).rejects.toBeInstanceOf(ShipConflict);
      expect((await query<{ n: string }>(db, 'SELECT count(*) AS n FROM ice_ledger'))[0]!.n).toBe('3');

      // Host 1's lease expires; host 2 takes it (token + 1). Host 1's late shipment is fenced off.
      await query(db, `UPDATE ice_leases SET expires = now() - interval '1 second'`);
      const [taken] = await store.acquire('host-2', ['a'], 1, TTL);
      expect(taken!.token).toBe(lease!.token + 1);
      await expect(store.ship('host-1', lease!, TTL, key, head, shipment(runs[1]!))).rejects.toBeInstanceOf(LeaseLost);
      await expect(store.claim('host-1', lease!, 10, TTL, newRunId)).rejects.toBeInstanceOf(LeaseLost);
      expect((await query<{ n: string }>(db, 'SELECT count(*) AS n FROM ice_ledger'))[0]!.n).toBe('3');
      head = await store.ship('host-2', taken!, TTL, key, await store.chainHead('a'), shipment(runs[1]!));
      expect(head!.n).toBe(2);
      const verified = await verifyCluster(store, key);
      expect(verified).toMatchObject({ ok: true, runs: 2, agents: 1 });
    } finally {
      await store.close();
    }
  });

  it('verify catches an edited record, a run removed from the middle or the end of a chain, a forged checkpoint and an unchained run', async () => {
    const tamper = async (edit: (db: string, runs: string[]) => Promise<void>, checkpoint = false) => {
      const { store, db } = await cluster();
      try {
        const [lease] = await store.acquire('host-1', ['a'], 1, TTL);
        const runs = localRuns(4);
        let head = null;
        for (const rows of runs) head = await store.ship('host-1', lease!, TTL, key, head, shipment(rows));
        if (checkpoint) {
          const { checkpointHeads, checkpointSignature } = await import('../host/src/cluster/chain.js');
          await store.checkpoint('host-1', 0, (heads, at) => ({ heads: checkpointHeads(heads), signature: checkpointSignature(key, at, checkpointHeads(heads)) }));
        }
        expect(await verifyCluster(store, key)).toMatchObject({ ok: true, runs: 4 });
        // A tamperer with write access to the database: the append-only triggers are in their way, not a barrier.
        await query(db, 'ALTER TABLE ice_ledger DISABLE TRIGGER USER; ALTER TABLE ice_runs DISABLE TRIGGER USER; ALTER TABLE ice_checkpoints DISABLE TRIGGER USER');
        await edit(db, runs.map((r) => r[0]!.run));
        return await verifyCluster(store, key);
      } finally {
        await store.close();
      }
    };
    // The append-only trigger refuses an UPDATE by mistake.
    const { store, db } = await cluster();
    const [lease] = await store.acquire('host-1', ['a'], 1, TTL);
    await store.ship('host-1', lease!, TTL, key, null, shipment(localRuns(1)[0]!));
    await expect(query(db, `UPDATE ice_ledger SET body = body`)).rejects.toThrow(/ice_ledger is append-only: UPDATE refused/);
    await store.close();

    const edited = await tamper((db, runs) => query(db, `UPDATE ice_ledger SET body = replace(body, 'line 1', 'line X') WHERE run = $1 AND seq = 1`, [runs[1]]).then(() => undefined));
    expect(edited).toMatchObject({ ok: false, seq: 1, reason: 'hash does not match body' });
    const middle = await tamper(async (db, runs) => {
      await query(db, 'DELETE FROM ice_ledger WHERE run = $1', [runs[1]]);
      await query(db, 'DELETE FROM ice_runs WHERE run = $1', [runs[1]]);
    });
    expect(middle).toMatchObject({ ok: false });
    expect((middle as { reason: string }).reason).toMatch(/run 2 of agent a's chain is missing: the chain jumps to 3/);
    const rowsOnly = await tamper((db, runs) => query(db, 'DELETE FROM ice_ledger WHERE run = $1', [runs[2]]).then(() => undefined));
    expect((rowsOnly as { reason: string }).reason).toMatch(/has no run-start in the ledger \(the run was removed\)/);
    const newest = await tamper(async (db, runs) => {
      await query(db, 'DELETE FROM ice_ledger WHERE run = $1', [runs[3]]);
      await query(db, 'DELETE FROM ice_runs WHERE run = $1', [runs[3]]);
    }, true);
    expect((newest as { reason: string }).reason).toMatch(/signed run 4 of agent a's chain, which is gone or different now/);
    const forgedCheckpoint = await tamper((db) => query(db, `UPDATE ice_checkpoints SET heads = '[]'`).then(() => undefined), true);
    expect((forgedCheckpoint as { reason: string }).reason).toMatch(/its signature does not match/);
    const unchained = await tamper((db, runs) => query(db, 'DELETE FROM ice_runs WHERE run = $1', [runs[3]]).then(() => undefined));
    expect((unchained as { reason: string }).reason).toMatch(/is in no agent's chain of run-starts/);
  });
});

describe('ice serve --db refuses what cannot work', () => {
  it('names the fix: no shared key, a URL that is not PostgreSQL, --lease-ms alone, two agents on one kv namespace', async () => {
    const dir = tempDir();
    const config = join(dir, 'ice.yaml');
    const p = policy(dir, 'same', 'grants:\n  log: {}\n');
    writeFileSync(config, `agents:\n  - { name: one, component: ${guestWasm('hello')}, policy: ${p} }\n  - { name: two, component: ${guestWasm('hello')}, policy: ${p} }\n`);
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const environment: NodeJS.ProcessEnv = { ...process.env, ...env };
      if (env['ICE_LEDGER_KEY'] === undefined) delete environment['ICE_LEDGER_KEY'];
      return spawnSync(process.execPath, [ICE_BIN, 'serve', '--config', config, '--state', tempDir(), '--listen', '127.0.0.1:0', ...args], { env: environment, encoding: 'utf8', timeout: 60_000 });
    };
    const db = await freshDatabase();
    const noKey = run(['--db', db]);
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toContain('a cluster needs one ledger key on every host: set ICE_LEDGER_KEY');
    const mysql = run(['--db', 'mysql://u:hunter2@h/db']);
    expect(mysql.status).toBe(2);
    expect(mysql.stderr).toContain('--db takes a PostgreSQL URL');
    expect(mysql.stderr).not.toContain('hunter2');
    const leaseAlone = run(['--lease-ms', '1000']);
    expect(leaseAlone.status).toBe(2);
    expect(leaseAlone.stderr).toContain('--lease-ms applies to a cluster: add --db');
    const shared = run(['--db', db], { ICE_LEDGER_KEY: KEY });
    expect(shared.status).toBe(2);
    expect(shared.stderr).toContain('agents one and two');
    expect(shared.stderr).toContain('share its kv namespace');
  }, 120_000);
});
