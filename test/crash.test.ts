/**
 * Crash safety with a real process: `ice run` killed with SIGKILL in the middle of a run leaves every
 * record it had committed intact and verifiable; the next host to open the state ends the run
 * `incomplete` with a new record, touching none of the old ones.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { verifyRun } from '../host/src/ledger/index.js';
import { readLedgerKey } from '../host/src/storage/ledger-key.js';
import { line } from './driver.js';
import { echoServer } from './egress-servers.js';
import { freshHost, tempDir, writePolicy } from './helpers.js';
import { ICE_BIN, ROOT, guestWasm } from './paths.js';

const POLICY = writePolicy(
  'version: 1\ncomponent: hostile\nlimits: { fuel: 1000000000000000, timeoutMs: 600000 }\n' +
    'grants:\n  log: {}\n  clock: { maxCalls: 1000000000 }\n  kv: { read: ["count"] }\n  events: deny\n',
);

/** Committed call records so far, read by another connection as any auditor would (one record per row: ledger_records). */
function committedCalls(stateDir: string): number {
  try {
    const db = new Database(join(stateDir, 'ice.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT count(*) AS n FROM ledger_records WHERE type = 'call'").get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0; // not created yet
  }
}

describe('a host process killed mid-run', () => {
  it.each([['worker'], ['in-process']])('keeps what it committed, and the next open ends the run incomplete (%s)', async (mode) => {
    const stateDir = tempDir();
    const args = [ICE_BIN, 'run', guestWasm('hostile'), '--policy', POLICY, '--input', 'loop-imports', '--state', stateDir];
    const child = spawn(process.execPath, mode === 'in-process' ? [...args, '--in-process'] : args, { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 20_000;
    while (committedCalls(stateDir) < 200) {
      if (Date.now() > deadline) throw new Error('the child never got to 200 calls');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const { host } = await freshHost(stateDir);
    try {
      const runId = host.ledger.lastRunId()!;
      const records = host.readRun(runId);
      const end = records.at(-1)!.record;
      expect(end).toMatchObject({
        type: 'run-end',
        outcome: 'incomplete',
        reason: expect.stringMatching(/^the process running it \(pid \d+\) stopped before the run ended; ended when the state was next opened$/),
      });
      // Every record before the new run-end is one the killed process wrote: a gapless chain 0..n.
      expect(records.map((r) => r.record.seq)).toEqual(records.map((_, i) => i));
      expect(records.length - 2).toBeGreaterThanOrEqual(200);
      expect(end.type === 'run-end' && end.counts.calls).toBe(records.length - 2);
      expect(verifyRun(records, { key: readLedgerKey(stateDir)!.key })).toMatchObject({ ok: true, recovered: [expect.objectContaining({ run: expect.any(String) })] });

      // Opening again changes nothing: the run is ended once.
      const { host: again } = await freshHost(stateDir);
      expect(again.readRun(runId).map((r) => r.hash)).toEqual(records.map((r) => r.hash));
      again.close();
    } finally {
      host.close();
    }
  }, 60_000);

  it('leaves alone a run whose process is still alive', async () => {
    const stateDir = tempDir();
    const child = spawn(process.execPath, [ICE_BIN, 'run', guestWasm('hostile'), '--policy', POLICY, '--input', 'loop-imports', '--state', stateDir], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      while (committedCalls(stateDir) < 20) await new Promise((resolve) => setTimeout(resolve, 20));
      const { host } = await freshHost(stateDir);
      const runId = host.ledger.lastRunId()!;
      expect(host.readRun(runId).at(-1)!.record.type).toBe('call');
      host.close();
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }, 60_000);

  it('keeps the intent of a POST in flight when the whole process is killed, and the next open ends the run with its outcome unknown', async () => {
    const server = await echoServer();
    const stateDir = tempDir();
    const policy = writePolicy(
      `version: 1\ncomponent: poster\nlimits: { timeoutMs: 600000 }\ngrants:\n  log: {}\n  http: { allow: [{ url: "${server.origin}/*", methods: [POST] }], timeoutMs: 300000 }\n`,
    );
    const child = spawn(process.execPath, [ICE_BIN, 'run', guestWasm('http-driver'), '--policy', policy, '--input', line('POST', `${server.origin}/stall`, 'b:pay 10'), '--state', stateDir], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    try {
      const deadline = Date.now() + 20_000;
      // The effect happened: the server has the request.
      while (!server.seen.some((s) => s.url === '/stall' && s.body === 'pay 10')) {
        if (Date.now() > deadline) throw new Error('the POST never reached the server');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const { host } = await freshHost(stateDir);
      try {
        const records = host.readRun(host.ledger.lastRunId()!);
        expect(records.map((r) => r.record.type)).toEqual(['run-start', 'intent', 'run-end']);
        expect(records[1]!.record).toMatchObject({ type: 'intent', decision: 'allow', rule: 'grants.http.allow[0]' });
        expect(records[2]!.record).toMatchObject({ outcome: 'incomplete', unknown: [1], counts: { calls: 1, unknown: 1 } });
        expect(verifyRun(records, { key: readLedgerKey(stateDir)!.key })).toMatchObject({ ok: true, recovered: [expect.objectContaining({ run: expect.any(String) })] });
      } finally {
        host.close();
      }
    } finally {
      child.kill('SIGKILL');
      await server.close();
    }
  }, 60_000);
});
