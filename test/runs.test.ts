/**
 * Governed runs through the real path: real guests, real policies, the real SQLite ledger.
 */
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createHost, RunInputError } from '../host/src/index.js';
import { freshHost, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { LANGUAGES, guestWasm as wasmOf, type Language } from './paths.js';

const COUNTER_POLICY = POLICIES.counterWithHistory();

describe.each(LANGUAGES)('runs (%s)', (language: Language) => {
  const guestWasm = (name: string): string => wasmOf(name, language);

  it('keeps kv across runs and lists only keys the policy lets the guest read', async () => {
    const { host } = await freshHost();
    const agent = await host.load(guestWasm('counter'), COUNTER_POLICY);
    for (const n of [1, 2, 3]) expect(await agent.run(`run ${n}`)).toMatchObject({ ok: true, output: `count=${n}` });
    expect(await agent.run('keys:history/')).toMatchObject({ output: 'history/1,history/2,history/3' });

    const narrow = writePolicy('version: 1\ncomponent: counter\ngrants:\n  log: deny\n  kv: { read: ["history/2"] }\n');
    const limited = await host.load(guestWasm('counter'), narrow);
    expect(await limited.run('keys:history/')).toMatchObject({ ok: true, output: 'history/2' });
    expect(await limited.run('keys:')).toMatchObject({ ok: true, output: 'history/2' });
    host.close();
  });

  it('namespaces kv per component name', async () => {
    const { host } = await freshHost();
    const a = await host.load(guestWasm('counter'), COUNTER_POLICY);
    const other = writePolicy('version: 1\ncomponent: counter-b\ngrants:\n  log: deny\n  kv: { read: ["count"], write: ["count"] }\n');
    const b = await host.load(guestWasm('counter'), other);
    await a.run('x');
    await a.run('x');
    expect(await b.run('x')).toMatchObject({ output: 'count=1' });
    host.close();
  });

  it('ends a trapped run with a run-end record, and the host runs the next component', async () => {
    const { host, guestLog } = await freshHost();
    const trap = await host.load(guestWasm('trap'), POLICIES.trap());
    const result = await trap.run('abort');
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(guestLog.at(-1)).toMatch(/^error: guest gave up: abort \(.+:\d+:\d+\)$/);
    const records = host.readRun(result.runId);
    expect(records.at(-1)!.record).toMatchObject({ type: 'run-end', outcome: 'trap', blame: 'guest' });
    expect(host.verify(result.runId)).toMatchObject({ ok: true });

    const again = await trap.run('abort');
    expect(again.runId).not.toBe(result.runId);
    const hello = await host.load(guestWasm('hello'), POLICIES.hello());
    expect(await hello.run('still here')).toMatchObject({ ok: true, output: 'hello, still here!' });
    host.close();
  });

  it('traps the run with host blame when the host itself fails, records it, and serves the next run (in-process)', async () => {
    let failing = true;
    const host = await createHost({
      stateDir: tempDir(),
      cacheDir: false,
      // In a worker, guest logs reach the sink after the call was answered (see the next test).
      execution: 'in-process',
      onGuestLog: () => {
        if (failing) throw new Error('log sink is down');
      },
    });
    const hello = await host.load(guestWasm('hello'), POLICIES.hello());
    const result = await hello.run('x');
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'host', error: 'host fault in log.write: log sink is down' });
    const records = host.readRun(result.runId).map((r) => r.record);
    expect(records[1]).toMatchObject({ call: 'ice:agent/log@0.1.0#write', decision: 'allow', outcome: { err: { kind: 'failed', message: 'host fault in log.write: log sink is down' } } });
    expect(records[2]).toMatchObject({ type: 'run-end', outcome: 'trap', blame: 'host' });
    expect(host.verify(result.runId)).toMatchObject({ ok: true });
    failing = false;
    expect(await hello.run('again')).toMatchObject({ ok: true, output: 'hello, again!' });
    host.close();
  });

  it('keeps running and serving when a log sink throws in worker execution', async () => {
    const errors: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
    const host = await createHost({
      stateDir: tempDir(),
      cacheDir: false,
      logger,
      onGuestLog: () => {
        throw new Error('log sink is down');
      },
    });
    const hello = await host.load(guestWasm('hello'), POLICIES.hello());
    expect(await hello.run('x')).toMatchObject({ ok: true, output: 'hello, x!' });
    expect(await hello.run('y')).toMatchObject({ ok: true, output: 'hello, y!' });
    expect(errors.join('')).toContain('log sink is down');
    host.close();
  });

  it('reuses the disk cache across hosts, and never trusts an entry that was altered', async () => {
    const cacheDir = tempDir();
    const policy = POLICIES.hello();
    const load = async () => {
      const host = await createHost({ stateDir: tempDir(), cacheDir, onGuestLog: () => undefined });
      const agent = await host.load(guestWasm('hello'), policy);
      const result = await agent.run('cache');
      host.close();
      return { source: agent.prepared.source, result };
    };
    expect((await load()).source).toBe('transpiled');
    expect((await load()).source).toBe('disk');
    const [entry] = readdirSync(cacheDir).filter((name) => !name.startsWith('.'));
    appendFileSync(join(cacheDir, entry!, 'agent.mjs'), '\nglobalThis.pwned = true;\n');
    const reloaded = await load();
    expect(reloaded.source).toBe('transpiled');
    expect(reloaded.result).toMatchObject({ ok: true, output: 'hello, cache!' });
    expect((globalThis as { pwned?: boolean }).pwned).toBeUndefined();
  });

  it('round-trips unicode input and output', async () => {
    const { host } = await freshHost();
    const hello = await host.load(guestWasm('hello'), POLICIES.hello());
    expect(await hello.run('ünïcödé ✓ 😀')).toMatchObject({ ok: true, output: 'hello, ünïcödé ✓ 😀!' });
    host.close();
  });

  it('refuses an oversized input before the run starts', async () => {
    const { host } = await freshHost();
    const hello = await host.load(guestWasm('hello'), POLICIES.hello());
    await expect(hello.run('x'.repeat(1024 * 1024 + 1))).rejects.toThrow(RunInputError);
    await expect(hello.run('x'.repeat(1024 * 1024 + 1))).rejects.toThrow(
      'run input is 1048577 bytes, over the host\'s limit of 1048576 bytes (maxInputBytes)',
    );
    expect(host.readRun('last')).toEqual([]);
    host.close();
  });

  it('records digests instead of values when the policy says audit.capture: digest', async () => {
    const { host } = await freshHost();
    const policy = writePolicy('version: 1\ncomponent: counter\naudit: { capture: digest }\ngrants:\n  log: deny\n  kv: { read: ["count"], write: ["count"] }\n');
    const result = await (await host.load(guestWasm('counter'), policy)).run('secret input');
    const bodies = host.readRun(result.runId).map((r) => r.body).join('\n');
    expect(bodies).not.toContain('secret input');
    const set = host.readRun(result.runId).find((r) => r.record.type === 'call' && r.record.call === 'ice:agent/kv@0.1.0#set')!.record;
    expect(set).toMatchObject({ args: [{ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), size: 5 }, { sha256: expect.any(String), size: 1 }] });
    host.close();
  });

  it('records full values by default, one record per import call in order', async () => {
    const { host } = await freshHost();
    const result = await (await host.load(guestWasm('counter'), COUNTER_POLICY)).run('first');
    const calls = host.readRun(result.runId).filter((r) => r.record.type === 'call').map((r) => r.record);
    expect(calls).toMatchObject([
      { seq: 1, call: 'ice:agent/kv@0.1.0#get', args: [{ value: 'count' }], decision: 'allow', outcome: { ok: { value: null } } },
      { seq: 2, call: 'ice:agent/kv@0.1.0#set', args: [{ value: 'count' }, { value: '1' }], decision: 'allow', outcome: { ok: null } },
      { seq: 3, call: 'ice:agent/kv@0.1.0#set', args: [{ value: 'history/1' }, { value: 'first' }], decision: 'allow' },
    ]);
    expect(result.calls).toBe(3);
    host.close();
  });

  it('detects an edited ledger record at its seq', async () => {
    const { host, stateDir } = await freshHost();
    const result = await (await host.load(guestWasm('counter'), COUNTER_POLICY)).run('first');
    expect(host.verify(result.runId)).toMatchObject({ ok: true });
    host.close();

    // An attacker with the file: drop the append-only guards and rewrite a decision.
    const db = new Database(join(stateDir, 'ice.db'));
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) {
      db.exec(`DROP TRIGGER "${name}"`);
    }
    db.prepare("UPDATE ledger SET body = replace(body, '\"decision\":\"allow\"', '\"decision\":\"deny\"') WHERE run = ? AND seq = 2").run(result.runId);
    db.close();

    const { host: reopened } = await freshHost(stateDir);
    expect(reopened.verify(result.runId)).toMatchObject({ ok: false, seq: 2 });
    reopened.close();
  });
});
