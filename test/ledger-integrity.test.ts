/**
 * The ledger against an attacker holding write access to `ice.db` (better-sqlite3, triggers dropped),
 * on a state written by real runs: truncation hidden by recovery, a run kept "in flight" by a forged
 * `running` row, a rewritten and rehashed chain, a downgrade to an unkeyed chain, and `--root`.
 */
import { chmodSync, copyFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { LedgerStore, capture, newRunId, recordHasher, sha256Hex } from '../host/src/ledger/index.js';
import { readLedgerKey } from '../host/src/storage/ledger-key.js';
import { openStateDb } from '../host/src/storage/db.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { guestWasm } from './paths.js';

const COUNTER_POLICY = writePolicy('version: 1\ncomponent: counter\ngrants:\n  log: deny\n  kv: { read: ["count"], write: ["count"] }\n');

let base: string;
let runs: string[];
let roots: string[];

beforeAll(async () => {
  base = tempDir('ice-integrity-');
  const { host } = await freshHost(base, { execution: 'in-process' });
  try {
    const counter = await host.load(guestWasm('counter'), COUNTER_POLICY);
    roots = [];
    for (const input of ['one', 'two']) roots.push((await counter.run(input)).ledgerRoot);
  } finally {
    host.close();
  }
  runs = rows(base).filter((r) => r.seq === 0).map((r) => r.run);
  expect(runs).toHaveLength(2);
}, 60_000);

interface Row { id: number; run: string; seq: number; type: string; hash: string; body: string }

function rows(state: string): Row[] {
  const db = new Database(join(state, 'ice.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, run, seq, type, hash, body FROM ledger ORDER BY id').all() as Row[];
  } finally {
    db.close();
  }
}

/** A copy of the base state (the db and its key file), tampered by `edit` with the triggers dropped. */
function tampered(edit: (db: Database.Database) => void): string {
  const state = tempDir('ice-integrity-tampered-');
  copyFileSync(join(base, 'ice.db'), join(state, 'ice.db'));
  copyFileSync(join(base, 'ledger.key'), join(state, 'ledger.key'));
  chmodSync(join(state, 'ledger.key'), 0o600);
  const db = new Database(join(state, 'ice.db'));
  try {
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) db.exec(`DROP TRIGGER "${name}"`);
    db.transaction(() => edit(db))();
  } finally {
    db.close();
  }
  return state;
}

/** Deletes the run's records from `fromSeq` on (its last calls and its run-end). */
function truncate(db: Database.Database, run: string, fromSeq: number): void {
  db.prepare('DELETE FROM ledger WHERE run = ? AND seq >= ?').run(run, fromSeq);
}

const verify = (...args: string[]) => ice(['audit', 'verify', ...args]);

describe('ledger integrity against write access to ice.db', () => {
  it('a fully ok ledger: exit 0, and the state dir has an owner-only ledger key', () => {
    expect(verify('--state', base)).toEqual({ code: 0, stdout: 'ok: 10 records in 2 runs verified\n', stderr: '' });
    expect(statSync(join(base, 'ledger.key')).mode & 0o777).toBe(0o600);
  });

  it('truncation + a running row with a dead pid: recovery records what it found and verify reports the run as recovered (exit 4)', async () => {
    const state = tampered((db) => {
      truncate(db, runs[1]!, 3);
      db.prepare('INSERT INTO running (run, pid, started) VALUES (?, ?, ?)').run(runs[1]!, 2 ** 22 + 12345, new Date().toISOString());
    });
    const { host } = await freshHost(state, { execution: 'in-process' });
    host.close();
    const end = JSON.parse(rows(state).at(-1)!.body) as Record<string, unknown>;
    expect(end).toMatchObject({ type: 'run-end', outcome: 'incomplete', recovered: { records: 3, lastSeq: 2 } });
    const out = verify('--state', state);
    expect(out.code).toBe(4);
    expect(out.stdout).toContain(`recovered: run ${runs[1]} was ended by recovery`);
    expect(out.stdout).toContain('recovery found 3 records, the last seq 2');
    expect(verify(runs[1]!, '--state', state).code).toBe(4);
  }, 60_000);

  it('a running row with pid 1 does not keep a truncated run silently in flight: exit 4, named', () => {
    const state = tampered((db) => {
      truncate(db, runs[1]!, 3);
      db.prepare('INSERT INTO running (run, pid, started) VALUES (?, ?, ?)').run(runs[1]!, 1, new Date().toISOString());
    });
    const out = verify('--state', state);
    expect(out.code).toBe(4);
    // The base runs are seconds old: within their 10 s limit plus margin they read as in flight, older as stale.
    expect(out.stdout).toMatch(new RegExp(`(in flight|stale): run ${runs[1]} \\(pid 1 alive\\)`));
  });

  it('a run whose live process holds it past its own timeoutMs is stale, not in flight (exit 4)', () => {
    const state = tampered(() => undefined);
    const db = openStateDb(state);
    try {
      const ledger = new LedgerStore(db);
      const run = newRunId();
      ledger.startRun({ run, component: { name: 'counter', digest: sha256Hex('c') }, policy: { digest: sha256Hex('p'), source: 'p.yaml', document: { limits: { timeoutMs: 1 } } }, input: capture('', 'full'), host: { ice: '0.1.0' } });
      // pid 1 is alive. The run started an hour ago (rewritten with the key, as a host that started it then would
      // have written it), against its own limit of 1 ms: stale, not in flight.
      db.db.prepare('UPDATE running SET pid = 1 WHERE run = ?').run(run);
      for (const { name } of db.db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) db.db.exec(`DROP TRIGGER "${name}"`);
      const body = (db.db.prepare('SELECT body FROM ledger WHERE run = ? AND seq = 0').pluck().get(run) as string).replace(/"at":"[^"]+"/, `"at":"${new Date(Date.now() - 3_600_000).toISOString()}"`);
      db.db.prepare('UPDATE ledger SET body = ?, hash = ? WHERE run = ? AND seq = 0').run(body, recordHasher(readLedgerKey(state)!.key)(body), run);
      const out = ice(['audit', 'verify', '--state', state]);
      expect(out.code).toBe(4);
      expect(out.stdout).toContain(`stale: run ${run} (pid 1 alive) started 3600 s ago, past its own limit of 0 s`);
    } finally {
      db.close();
    }
  });

  it('rewriting a decision and rehashing the rest with SHA-256 fails (exit 1)', () => {
    const state = tampered((db) => rehashFrom(db, runs[0]!, 1, (body) => body.replace('"decision":"allow"', '"decision":"deny"'), false));
    const out = verify('--state', state);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(new RegExp(`^FAILED run ${runs[0]} at seq 1: hash does not match body\n$`));
  });

  it('downgrading a run to an unkeyed chain and rehashing it fails (exit 1)', () => {
    const state = tampered((db) => rehashFrom(db, runs[1]!, 0, (body) => body.replace(',"chain":"hmac-sha256"', ''), true));
    const out = verify('--state', state);
    expect(out).toMatchObject({ code: 1, stdout: expect.stringContaining(`FAILED run ${runs[1]} at seq 0: unkeyed run in a keyed ledger`) });
    expect(verify(runs[1]!, '--state', state).code).toBe(1);
  });

  it('downgrading every run (rehashed unkeyed, relinked) still fails: the key file says no run predates the key', () => {
    const state = tampered((db) => {
      let prevStart: string | null = null;
      for (const run of runs) {
        const first = db.prepare('SELECT hash FROM ledger WHERE run = ? AND seq = 0').pluck().get(run) as string;
        rehashFrom(db, run, 0, (body) => body.replace(',"chain":"hmac-sha256"', '').replace(/"prev":(null|"[0-9a-f]{64}")/, `"prev":${JSON.stringify(prevStart)}`), true);
        prevStart = db.prepare('SELECT hash FROM ledger WHERE run = ? AND seq = 0').pluck().get(run) as string;
        expect(prevStart).not.toBe(first);
      }
    });
    expect(verify('--state', state)).toMatchObject({ code: 1, stdout: expect.stringContaining(`FAILED run ${runs[0]} at seq 0: unkeyed run in a keyed ledger`) });
  });

  it('verify <run> --root: exit 0 on the root ice run printed, 1 on another', () => {
    expect(verify(runs[0]!, '--root', roots[0]!, '--state', base)).toMatchObject({ code: 0, stdout: expect.stringContaining('root: matches') });
    expect(verify(runs[0]!, '--root', roots[0]!.slice(0, 16), '--state', base).code).toBe(0);
    const out = verify(runs[0]!, '--root', roots[1]!, '--state', base);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain(`FAILED run ${runs[0]}: its ledger root is ${roots[0]}, not the --root ${roots[1]}`);
    expect(verify(runs[0]!, '--root', 'xyz', '--state', base).code).toBe(2);
  });

  it('refuses a ledger key readable by others', () => {
    const state = tampered(() => undefined);
    chmodSync(join(state, 'ledger.key'), 0o644);
    const out = verify('--state', state);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('run chmod 600');
  });

  it('an export of a keyed run verifies with the key (--state), and says which key it needs without', () => {
    const file = join(tempDir('ice-integrity-export-'), 'run.jsonl');
    const exported = ice(['audit', 'export', runs[0]!, '--format', 'jsonl', '--state', base]);
    expect(exported.code).toBe(0);
    writeFileSync(file, exported.stdout);
    expect(verify('--file', file, '--state', base)).toMatchObject({ code: 0, stdout: expect.stringContaining(`ledger root ${roots[0]}`) });
    const without = verify('--file', file, '--state', tempDir());
    expect(without.code).toBe(1);
    expect(without.stdout).toContain('needs the ledger key');
  });
});

/** Rewrites records of `run` from `fromSeq` with `edit`, relinks and rehashes them (SHA-256, as an attacker without the key must). */
function rehashFrom(db: Database.Database, run: string, fromSeq: number, edit: (body: string) => string, editAll: boolean): void {
  const list = db.prepare('SELECT id, seq, hash, body FROM ledger WHERE run = ? ORDER BY seq').all(run) as Row[];
  let prev = fromSeq === 0 ? undefined : list[fromSeq - 1]!.hash;
  for (const r of list.slice(fromSeq)) {
    let body = r.seq === fromSeq || editAll ? edit(r.body) : r.body;
    if (prev !== undefined && r.seq > 0) body = body.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${prev}"`);
    const hash = sha256Hex(body);
    db.prepare('UPDATE ledger SET body = ?, hash = ? WHERE id = ?').run(body, hash, r.id);
    prev = hash;
  }
}
