/**
 * Ledgers written before intents existed still read, verify, fold and replay. The fixtures in
 * test/fixtures/ledger-v1/ are `ice audit export` files of runs made by the ICE of the previous landing
 * (counter twice: kv reads and writes, one denied; http-driver: a redirect hop, a POST, a denial). They
 * are put into a fresh state directory row by row, as that ICE stored them, and read back by this one.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../host/src/core/digest.js';
import { parseExport, verifyExport } from '../host/src/ledger/export.js';
import { ledgerCalls, type RunEndRecord } from '../host/src/ledger/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { freshHost, ice, tempDir } from './helpers.js';
import { ROOT, guestWasm } from './paths.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'ledger-v1');
const RUNS = ['counter-first', 'counter-second', 'http-driver'] as const;
const text = (name: string) => readFileSync(join(FIXTURES, `${name}.jsonl`), 'utf8');

/** A state directory holding the fixture runs, stored as the earlier ICE stored them. */
function oldStateDir(): string {
  const dir = tempDir('ice-v1-');
  const state = openStateDb(dir);
  const insert = state.db.prepare('INSERT INTO ledger (run, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)');
  for (const name of RUNS) {
    for (const { body, record } of parseExport(text(name))) insert.run(record.run, record.seq, record.type, sha256Hex(body), body);
  }
  state.close();
  // The earlier ICE had no ledger key: the next open makes one, counting these runs as older than it.
  rmSync(join(dir, 'ledger.key'));
  return dir;
}

describe('a ledger written before intent records', () => {
  it.each(RUNS)('verifies as an export (%s)', (name) => {
    expect(verifyExport(text(name))).toMatchObject({ ok: true });
  });

  it('verifies as a store, and shows every call with its decision', () => {
    const dir = oldStateDir();
    expect(ice(['audit', 'verify', '--all', '--state', dir])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: \d+ records in 3 runs verified\n$/u), stderr: expect.stringContaining('unkeyed: 3 runs') });
    const shown = ice(['audit', 'show', 'last', '--state', dir]).stdout;
    expect(shown).toMatch(/^\s+2\s+↪1 http\.fetch\(GET http:\/\/127\.0\.0\.1:\d+…\s+allow\s+grants\.http\.allow\[0\]\s+[\d.]+ ms\s+200 · 21 B · 127\.0\.0\.1$/mu);
    expect(shown).toContain('4 calls: 3 allowed, 1 denied, 0 limited, 0 invalid');
    expect(shown).not.toContain('unknown');
  });

  it('folds into the same kv state (rebuild, then verify)', () => {
    const dir = oldStateDir();
    expect(ice(['state', 'rebuild', '--state', dir]).stdout).toBe('rebuilt kv of 1 component from 2 events: counter (1 key)\n');
    expect(ice(['state', 'verify', '--state', dir])).toMatchObject({ code: 0, stdout: 'ok: kv view equals the fold of 2 events (1 component, 1 key)\n' });
  });

  it('reads as one call per record, none of unknown outcome', () => {
    const calls = ledgerCalls(parseExport(text('http-driver')).map((r) => r.record));
    expect(calls.map((c) => [c.decision, c.hop ?? 0, c.outcome === undefined])).toEqual([
      ['allow', 0, false],
      ['allow', 1, false],
      ['allow', 0, false],
      ['deny', 0, false],
    ]);
    const end = parseExport(text('http-driver')).at(-1)!.record as RunEndRecord;
    expect(end.unknown).toBeUndefined();
    expect(end.counts.unknown).toBeUndefined();
  });

  it('replays through the new kernel against the guests built from source', async () => {
    const { host } = await freshHost(oldStateDir(), { execution: 'in-process' });
    try {
      for (const [name, guest] of [['counter-second', 'counter'], ['http-driver', 'http-driver']] as const) {
        const run = parseExport(text(name))[0]!.record.run;
        const report = await host.replay(run, guestWasm(guest), { otherComponent: true });
        // Every call replays; only the fuel of the run-end may differ, as bulk memory operations now
        // cost fuel by length (this ICE meters the same guest differently from the one that recorded).
        if (!report.matches) {
          expect(report.expected.replace(/ fuel \d+$/u, ''), name).toBe(report.actual.replace(/ fuel \d+$/u, ''));
          expect(report.expected, name).toMatch(/^run-end /u);
        }
      }
    } finally {
      host.close();
    }
  });
});
