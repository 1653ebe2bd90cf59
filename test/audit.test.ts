/**
 * `ice audit list | show | verify | export` through the real CLI, on a ledger written by real runs,
 * tampered with the way an attacker holding the file would: better-sqlite3, triggers dropped.
 */
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { LedgerStore, capture, newRunId, recordHasher, sha256Hex } from '../host/src/ledger/index.js';
import { readLedgerKey } from '../host/src/storage/ledger-key.js';
import { openStateDb } from '../host/src/storage/db.js';
import { freshHost, ice, tempDir, writePolicy, type CliResult } from './helpers.js';
import { guestWasm } from './paths.js';

const COUNTER_POLICY = writePolicy(`version: 1
component: counter
grants:
  log: deny
  kv: { read: ["count"], write: ["count"] }
`);
const CLOCK_RANDOM_POLICY = writePolicy('version: 1\ncomponent: clock-random\ngrants:\n  log: deny\n  clock: {}\n  random: { maxBytes: 64 }\n');
const FUEL_POLICY = writePolicy('version: 1\ncomponent: hostile\nlimits: { fuel: 100000 }\ngrants:\n  log: {}\n  clock: deny\n  kv: deny\n  events: deny\n');

interface Row {
  id: number;
  run: string;
  seq: number;
  hash: string;
  body: string;
}

/** The base state: four finished runs, oldest first (see beforeAll). */
let base: string;
let runs: string[];

/** Records in the base state: counter 5 + counter 5 + clock-random 4 + hostile 2. */
const BASE_RECORDS = 16;

beforeAll(async () => {
  base = tempDir('ice-audit-');
  const { host } = await freshHost(base, { execution: 'in-process' });
  try {
    const counter = await host.load(guestWasm('counter'), COUNTER_POLICY);
    await counter.run('one'); // get count, set count, set history/1 (denied)
    await counter.run('two');
    await (await host.load(guestWasm('clock-random'), CLOCK_RANDOM_POLICY)).run('4'); // clock.now, random.bytes
    await (await host.load(guestWasm('hostile'), FUEL_POLICY)).run('loop'); // no calls, limit (fuel)
  } finally {
    host.close(); // the last connection: SQLite folds the WAL into ice.db, so copying ice.db copies the state
  }
  runs = rows(base)
    .filter((r) => r.seq === 0)
    .map((r) => r.run);
  expect(runs).toHaveLength(4);
}, 60_000);

function rows(state: string): Row[] {
  const db = new Database(join(state, 'ice.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, run, seq, hash, body FROM ledger ORDER BY id').all() as Row[];
  } finally {
    db.close();
  }
}

function row(state: string, run: string, seq: number): Row {
  const found = rows(state).find((r) => r.run === run && r.seq === seq);
  if (!found) throw new Error(`no row ${run}/${seq}`);
  return found;
}

/** A copy of the base state, tampered by `edit` after dropping the append-only triggers. */
function tampered(edit: (db: Database.Database) => void): string {
  const state = tempDir('ice-audit-tampered-');
  copyFileSync(join(base, 'ice.db'), join(state, 'ice.db'));
  // The key goes with the database: the attacker here holds the database, not the key.
  copyFileSync(join(base, 'ledger.key'), join(state, 'ledger.key'));
  const db = new Database(join(state, 'ice.db'));
  try {
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) {
      db.exec(`DROP TRIGGER "${name}"`);
    }
    db.transaction(() => edit(db))();
  } finally {
    db.close();
  }
  return state;
}

const copy = (): string => tampered(() => undefined);

/** A record hash as an attacker who also stole the ledger key would make it: reaches the checks behind the hash. */
const keyedHash = (body: string): string => recordHasher(readLedgerKey(base)!.key)(body);

function audit(...args: string[]): CliResult {
  return ice(['audit', ...args]);
}

function expectFailed(out: CliResult, run: string, seq: number, reason: string): void {
  expect(out).toEqual({ code: 1, stdout: `FAILED run ${run} at seq ${seq}: ${reason}\n`, stderr: '' });
}

function expectUsage(out: CliResult, message: string): void {
  expect(out.code).toBe(2);
  expect(out.stdout).toBe('');
  expect(out.stderr).toContain(message);
  expect(out.stderr).not.toMatch(/\n\s+at /);
}

/** A run started by a live writer (this process), two calls in, not ended: a run in flight. */
function startRunInFlight(state: string): string {
  const db = openStateDb(state);
  try {
    const writer = new LedgerStore(db).startRun({
      run: newRunId(),
      component: { name: 'counter', digest: sha256Hex('counter') },
      policy: { digest: sha256Hex('policy'), source: 'policy.yaml', document: {} },
      input: capture('', 'full'),
      host: { ice: '0.1.0' },
    });
    for (const decision of ['allow', 'deny'] as const) {
      writer.appendCall({
        call: 'ice:agent/kv@0.1.0#get',
        args: [capture('count', 'full')],
        decision,
        rule: decision === 'allow' ? 'grants.kv.read[0]' : 'grants.kv.read',
        outcome: decision === 'allow' ? { ok: null } : { err: { kind: 'denied', message: 'denied' } },
        durationUs: 3,
      });
    }
    return writer.run;
  } finally {
    db.close();
  }
}

describe('ice audit verify', () => {
  it('passes an untouched ledger: the whole store by default, --all, and one run', () => {
    const state = copy();
    const ok = { code: 0, stdout: `ok: ${BASE_RECORDS} records in 4 runs verified\n`, stderr: '' };
    expect(audit('verify', '--state', state)).toEqual(ok);
    expect(audit('verify', '--all', '--state', state)).toEqual(ok);
    expect(audit('verify', runs[0]!, '--state', state)).toEqual({ code: 0, stdout: 'ok: 5 records in 1 run verified\n', stderr: '' });
    expect(audit('verify', 'last', '--state', state)).toEqual({ code: 0, stdout: 'ok: 2 records in 1 run verified\n', stderr: '' });
  });

  it('finds an edited field of a body at its record', () => {
    const state = tampered((db) => {
      db.prepare(`UPDATE ledger SET body = replace(body, '"decision":"deny"', '"decision":"allow"') WHERE run = ? AND seq = 3`).run(runs[1]);
    });
    expectFailed(audit('verify', '--state', state), runs[1]!, 3, 'hash does not match body');
    expectFailed(audit('verify', runs[1]!, '--state', state), runs[1]!, 3, 'hash does not match body');
  });

  it('finds an edited hash column at its record', () => {
    // The row that holds seq 1: a record of its own, or (ledger v2) the batch of the calls from seq 1 on.
    const state = tampered((db) => db.prepare('UPDATE ledger SET hash = ? WHERE run = ? AND seq = (SELECT min(seq) FROM ledger WHERE run = ? AND seq >= 1)').run('0'.repeat(64), runs[2], runs[2]));
    const out = audit('verify', '--state', state);
    expect(out).toMatchObject({ code: 1, stderr: '' });
    expect(out.stdout).toMatch(new RegExp(`^FAILED run ${runs[2]} at seq 1: hash does not match body( \\(the batch of seq 1–\\d+: a record in it, or the batch, was changed\\))?\n$`, 'u'));
  });

  it('finds a deleted record at the missing seq', () => {
    const state = tampered((db) => db.prepare('DELETE FROM ledger WHERE run = ? AND seq = 2').run(runs[0]));
    expectFailed(audit('verify', '--state', state), runs[0]!, 2, 'expected seq 2, found 3');
    expectFailed(audit('verify', runs[0]!, '--state', state), runs[0]!, 2, 'expected seq 2, found 3');
  });

  it('finds two swapped records at the first of them', () => {
    // The rows at seq 1 and seq 2 exchange their records (hash and body); the seq columns stay.
    const state = tampered((db) => {
      const put = db.prepare('UPDATE ledger SET hash = ?, body = ? WHERE id = ?');
      const [one, two] = [row(base, runs[1]!, 1), row(base, runs[1]!, 2)];
      put.run(two.hash, two.body, one.id);
      put.run(one.hash, one.body, two.id);
    });
    expectFailed(audit('verify', '--state', state), runs[1]!, 1, 'seq column 1 does not match body seq 2');
    expectFailed(audit('verify', runs[1]!, '--state', state), runs[1]!, 1, 'expected seq 1, found 2');
  });

  it('finds a truncated run at the first missing seq', () => {
    const state = tampered((db) => db.prepare('DELETE FROM ledger WHERE run = ? AND seq >= 3').run(runs[0]));
    expectFailed(audit('verify', '--state', state), runs[0]!, 3, 'run has no run-end record');
    expectFailed(audit('verify', runs[0]!, '--state', state), runs[0]!, 3, 'run has no run-end record');
  });

  it('finds a forged call record inserted in the middle of a run', () => {
    // Make room at seq 2 (columns only), then insert a well-formed denied call chained to seq 1.
    const [one, two] = [row(base, runs[1]!, 1), row(base, runs[1]!, 2)];
    const forged = JSON.stringify({ ...JSON.parse(two.body), prev: one.hash, decision: 'deny', rule: 'grants.kv.write' });
    const state = tampered((db) => {
      db.prepare('UPDATE ledger SET seq = -seq - 1 WHERE run = ? AND seq >= 2').run(runs[1]);
      db.prepare('UPDATE ledger SET seq = -seq WHERE run = ? AND seq < 0').run(runs[1]);
      db.prepare("INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, 2, 'call', ?, ?)").run(runs[1], keyedHash(forged), forged);
    });
    // In append order the displaced original comes first, at the seq the forgery took.
    expectFailed(audit('verify', '--state', state), runs[1]!, 2, 'seq column 3 does not match body seq 2');
    // In seq order the forgery chains correctly; the chain breaks at the record after it.
    expectFailed(audit('verify', runs[1]!, '--state', state), runs[1]!, 3, 'expected seq 3, found 2');
  });

  it('finds a run-start that does not link to the previous run-start', () => {
    // Rewritten (and rehashed) to skip the run before it, as if that run had never been.
    const start = row(base, runs[2]!, 0);
    const body = JSON.stringify({ ...JSON.parse(start.body), prev: row(base, runs[0]!, 0).hash });
    const state = tampered((db) => db.prepare('UPDATE ledger SET body = ?, hash = ? WHERE id = ?').run(body, keyedHash(body), start.id));
    const reason = 'run-start prev does not match the previous run-start in the store';
    expectFailed(audit('verify', '--state', state), runs[2]!, 0, reason);
    expectFailed(audit('verify', runs[2]!, '--state', state), runs[2]!, 0, reason);
  });

  it('finds a whole run deleted, at the next run-start', () => {
    const state = tampered((db) => db.prepare('DELETE FROM ledger WHERE run = ?').run(runs[1]));
    expectFailed(audit('verify', '--state', state), runs[2]!, 0, 'run-start prev does not match the previous run-start in the store');
  });

  it('checks a run in flight up to its newest record, and calls it truncated once nothing is writing it', () => {
    const state = copy();
    const inFlight = startRunInFlight(state);
    // In flight is not a plain ok: exit 4, and the run and the process that claims it are named.
    const alive = `in flight: run ${inFlight} (pid ${process.pid} alive)\n`;
    expect(audit('verify', '--state', state)).toEqual({
      code: 4,
      stdout: `ok: ${BASE_RECORDS + 3} records in 5 runs verified (1 run in flight, not checked to its end)\n${alive}`,
      stderr: '',
    });
    expect(audit('verify', inFlight, '--state', state)).toMatchObject({ code: 4, stdout: `ok: 3 records in 1 run verified (1 run in flight, not checked to its end)\n${alive}` });
    expectUsage(audit('export', inFlight, '--format', 'jsonl', '--state', state), `run ${inFlight} is still in flight`);
    const db = new Database(join(state, 'ice.db'));
    db.prepare('DELETE FROM running WHERE run = ?').run(inFlight);
    db.close();
    expectFailed(audit('verify', '--state', state), inFlight, 3, 'run has no run-end record');
  });
});

describe('ice audit list', () => {
  it('lists the runs newest first with outcome, calls and denials', () => {
    const started = runs.map((run) => (JSON.parse(row(base, run, 0).body) as { at: string }).at);
    const line = (i: number, component: string, outcome: string, calls: number, denied: number): string =>
      `${runs[i]}  ${component.padEnd(12)}  run     ${started[i]}  ${outcome.padEnd(12)}  ${String(calls).padStart(5)}  ${String(denied).padStart(6)}`;
    const table = [
      'run                         component     called  started                   outcome       calls  denied',
      '──────────────────────────  ────────────  ──────  ────────────────────────  ────────────  ─────  ──────',
      line(3, 'hostile', 'limit (fuel)', 0, 0),
      line(2, 'clock-random', 'ok', 2, 0),
      line(1, 'counter', 'ok', 3, 1),
      line(0, 'counter', 'ok', 3, 1),
    ];
    const state = copy();
    expect(audit('list', '--state', state)).toEqual({ code: 0, stdout: `${table.join('\n')}\n\n4 runs\n`, stderr: '' });
    const two = audit('list', '--limit', '2', '--state', state);
    expect(two.stdout).toBe(`${table.slice(0, 4).join('\n')}\n\n2 of 4 runs shown, newest first (--limit <n> for more)\n`);
    const inFlight = startRunInFlight(state);
    expect(audit('list', '--limit', '1', '--state', state).stdout).toContain(`${inFlight}  counter  `);
    expect(audit('list', '--limit', '1', '--state', state).stdout).toMatch(/unfinished \(in flight\)\s+2\s+1\n/);
  });
});

describe('ice audit show filters', () => {
  it('--denied keeps the calls not allowed; the header and footer stay whole', () => {
    const out = audit('show', runs[0]!, '--denied', '--state', base);
    expect(out.code).toBe(0);
    const table = out.stdout.split('\n\n')[1]!.split('\n');
    expect(table).toHaveLength(4);
    expect(table[2]).toMatch(/^ {2}3 {2}kv\.set\("history\/1", "one"\) {2}deny {6}grants\.kv\.write {2}/);
    expect(table[3]).toBe('(1 of 3 calls shown: --denied)');
    expect(out.stdout).toContain('\n3 calls: 2 allowed, 1 denied, 0 limited, 0 invalid\nledger root ');
  });

  it('--interface keeps the calls to one interface, and combines with --denied', () => {
    const random = audit('show', runs[2]!, '--interface', 'random', '--state', base).stdout;
    expect(random).toContain('random.bytes(4)');
    expect(random).not.toContain('clock.now()');
    expect(random).toContain('(1 of 2 calls shown: --interface random)');
    const none = audit('show', runs[2]!, '--interface', 'kv', '--denied', '--state', base).stdout;
    expect(none).toContain('(0 of 2 calls shown: --denied --interface kv)');
  });

  it('--json prints the run-start, the matching calls and the run-end, exactly as stored', () => {
    const out = audit('show', runs[0]!, '--json', '--denied', '--interface', 'kv', '--state', base);
    const expected = [0, 3, 4].map((seq) => `${row(base, runs[0]!, seq).body}\n`).join('');
    expect(out).toEqual({ code: 0, stdout: expected, stderr: '' });
  });
});

describe('ice audit export', () => {
  it('writes the stored bodies, one per line, which verify --file accepts alone', () => {
    const out = audit('export', runs[0]!, '--format', 'jsonl', '--state', base);
    const stored = rows(base).filter((r) => r.run === runs[0]);
    expect(out).toEqual({ code: 0, stdout: stored.map((r) => `${r.body}\n`).join(''), stderr: '' });
    const file = join(tempDir(), 'run.jsonl');
    writeFileSync(file, out.stdout);
    expect(audit('verify', '--file', file, '--state', base)).toEqual({
      code: 0,
      stdout:
        `ok: 5 records of run ${runs[0]} verified (exported; its link to the previous run is not checked)\n` +
        `ledger root ${stored[4]!.hash} (compare it with the root the run reported: a file can be rewritten whole)\n`,
      stderr: '',
    });
    expect(audit('export', 'last', '--format', 'jsonl', '--state', base).stdout.split('\n')).toHaveLength(3);
  });

  it('finds a tampered line of an export at its seq', () => {
    const lines = audit('export', runs[0]!, '--format', 'jsonl', '--state', base).stdout.split('\n');
    lines[2] = lines[2]!.replace('"args":[{"value":"count"},{"value":"1"}]', '"args":[{"value":"count"},{"value":"100"}]');
    const file = join(tempDir(), 'run.jsonl');
    writeFileSync(file, lines.join('\n'));
    expectFailed(audit('verify', '--file', file, '--state', base), runs[0]!, 2, 'the line does not hash to the prev recorded by seq 3: it was changed');
    // A deleted line: at the missing seq, as in the store.
    writeFileSync(file, lines.filter((_, i) => i !== 2).join('\n'));
    expectFailed(audit('verify', '--file', file, '--state', base), runs[0]!, 2, 'expected seq 2, found 3');
  });

  it('says FAILED for a file that is not an export', () => {
    const dir = tempDir();
    const file = (name: string, text: string): string => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const two = audit('export', runs[0]!, '--format', 'jsonl', '--state', base).stdout + audit('export', runs[1]!, '--format', 'jsonl', '--state', base).stdout;
    const cases: Array<[string, string]> = [
      [file('empty.jsonl', ''), `${join(dir, 'empty.jsonl')}: not a run as \`ice audit export\` writes it: the file is empty`],
      [file('text.jsonl', 'hello\n'), `${join(dir, 'text.jsonl')} line 1: not a run as \`ice audit export\` writes it: the line is not valid JSON`],
      [file('array.jsonl', '[1,2]\n'), `line 1: not a run as \`ice audit export\` writes it: the line is not a ledger record`],
      [file('two.jsonl', two), `line 6: not a run as \`ice audit export\` writes it: a record of run ${runs[1]} in an export of run ${runs[0]} (an export holds one run)`],
    ];
    for (const [path, message] of cases) {
      const out = audit('verify', '--file', path);
      expect(out.code, path).toBe(1);
      expect(out.stdout, path).toMatch(/^FAILED /);
      expect(out.stdout, path).toContain(message);
    }
  });
});

describe('ice audit usage errors', () => {
  it('exit 2 with the fix, never a stack trace', () => {
    expectUsage(audit('frobnicate'), 'ice audit: unknown subcommand "frobnicate" (one of: list, show, verify, export, trace, tail)');
    expectUsage(audit('export', 'last', '--format', 'csv', '--state', base), 'unknown --format "csv": use --format jsonl');
    expectUsage(audit('export', 'last', '--state', base), '--format is required: use --format jsonl');
    expectUsage(audit('show', 'last', '--interface', 'fs', '--state', base), 'unknown --interface "fs": use one of log, clock, random, kv, events');
    expectUsage(audit('list', '--limit', 'ten', '--state', base), '--limit must be a positive integer, got "ten"');
    expectUsage(audit('verify', runs[0]!, '--all', '--state', base), 'give one of a run id, --all or --file <export.jsonl>');
    expectUsage(audit('verify', '--file', join(tempDir(), 'missing.jsonl')), 'cannot read --file');
    expectUsage(audit('verify', 'no-such-run', '--state', base), 'no run no-such-run in the ledger');
    const empty = tempDir();
    expectUsage(audit('list', '--state', empty), 'no ICE state in');
    expect(existsSync(join(empty, 'ice.db'))).toBe(false);
  });
});
