/**
 * WASI guests from a third-party toolchain: a JavaScript agent built by componentize-js (StarlingMonkey)
 * in the test setup runs under a tight grants.wasi with exactly the authority listed, in both execution
 * modes; everything else it tries is refused, every WASI call is in its ledger, and its runs replay.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadError, type Agent, type Host } from '../host/src/index.js';
import type { CallRecord } from '../host/src/ledger/index.js';
import { EXECUTIONS, freshHost, tempDir } from './helpers.js';
import { JS_GUEST_BUILD_DIR } from './paths.js';

const AGENT = join(JS_GUEST_BUILD_DIR, 'wasi-agent.wasm');
const place = tempDir('ice-wasi-');
const data = join(place, 'data');
const scratch = join(place, 'scratch');

function policy(wasi: Record<string, unknown> = {}) {
  return {
    version: 1,
    component: 'js-agent',
    grants: {
      log: {},
      kv: { read: ['count'], write: ['count'] },
      wasi: {
        env: { GREETING: 'hi' },
        args: ['agent'],
        cwd: '/data',
        stdout: 'capture',
        stderr: 'capture',
        stdin: 'empty',
        clocks: 'allow',
        random: 'allow',
        filesystem: [
          { guest: '/data', host: data, mode: 'read-only' },
          { guest: '/scratch', host: scratch, mode: 'read-write' },
        ],
        sockets: 'deny',
        http: 'deny',
        ...wasi,
      },
    },
  };
}

beforeAll(() => {
  mkdirSync(data);
  mkdirSync(scratch);
  writeFileSync(join(data, 'hello.txt'), 'hello from a mounted file\n');
  writeFileSync(join(place, 'secret.txt'), 'outside the mount');
  symlinkSync(join(place, 'secret.txt'), join(data, 'link-out'));
});

const calls = (host: Host, runId: string) => host.readRun(runId).flatMap(({ record }) => (record.type === 'call' ? [record as CallRecord] : []));

describe.each(EXECUTIONS)('a componentize-js agent under grants.wasi (%s)', (execution) => {
  let host: Host;
  let agent: Agent;
  const output: string[] = [];

  beforeAll(async () => {
    ({ host } = await freshHost(undefined, { execution, onGuestOutput: (e) => output.push(`${e.stream}: ${e.text}`) }));
    agent = await host.load(AGENT, policy());
  }, 120_000);
  afterAll(() => host.close());

  it('sees exactly the environment, arguments and cwd of the policy, nothing of the host', async () => {
    const result = await agent.run('env');
    expect(result).toMatchObject({ ok: true, output: JSON.stringify({ env: [['GREETING', 'hi']], args: ['agent'], cwd: '/data' }) });
    expect(result.ok && result.output).not.toContain(process.env.PATH ?? '<none>');
  });

  it('captures stdout and stderr: recorded in the ledger, passed to the host, never the process\'s own', async () => {
    const result = await agent.run('stdout');
    expect(result).toMatchObject({ ok: true, output: 'printed' });
    expect(output.join('')).toContain('stdout: hello on stdout');
    expect(output.join('')).toContain('stderr: hello on stderr');
    const writes = calls(host, result.runId).filter((c) => c.call.endsWith('[method]output-stream.blocking-write-and-flush'));
    expect(writes.map((c) => JSON.stringify(c.args[1]))).toEqual(expect.arrayContaining([JSON.stringify({ fields: { $text: { value: 'hello on stdout' } } })]));
  });

  it('reads a file of a mounted directory, and lists only the mounts', async () => {
    expect(await agent.run('read')).toMatchObject({ ok: true, output: 'hello from a mounted file\n' });
    expect(await agent.run('list-dirs')).toMatchObject({ ok: true, output: '/data,/scratch' });
  });

  it.each([
    ['escape-dotdot', 'err:not-permitted', 'contains ".."'],
    ['escape-absolute', 'err:not-permitted', 'absolute path'],
    ['escape-symlink', 'err:not-permitted', 'resolves outside /data (through a symlink)'],
  ])('refuses %s with the WASI error, and records why', async (action, answer, why) => {
    const result = await agent.run(action);
    expect(result).toMatchObject({ ok: true, output: answer });
    const denied = calls(host, result.runId).filter((c) => c.decision === 'deny');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ call: 'wasi:filesystem/types@0.2.12#[method]descriptor.open-at', rule: 'grants.wasi.filesystem' });
    expect('err' in denied[0]!.outcome && denied[0]!.outcome.err.message).toContain(why);
  });

  it('refuses every write, create, truncate, rename and delete on a read-only mount, leaving it untouched', async () => {
    const result = await agent.run('write-ro');
    expect(result).toMatchObject({ ok: true, output: Array(6).fill('err:read-only').join(' ') });
    expect(readFileSync(join(data, 'hello.txt'), 'utf8')).toBe('hello from a mounted file\n');
    for (const name of ['new.txt', 'moved.txt', 'sub']) expect(existsSync(join(data, name))).toBe(false);
    const denied = calls(host, result.runId).filter((c) => c.decision === 'deny').map((c) => c.call.split('#')[1]);
    expect(denied).toEqual([
      '[method]descriptor.open-at',
      '[method]descriptor.open-at',
      '[method]descriptor.unlink-file-at',
      '[method]descriptor.rename-at',
      '[method]descriptor.create-directory-at',
      '[method]descriptor.write-via-stream',
    ]);
  });

  it('writes to a read-write mount', async () => {
    expect(await agent.run('write-rw')).toMatchObject({ ok: true, output: 'written by the guest' });
    expect(readFileSync(join(scratch, 'out.txt'), 'utf8')).toBe('written by the guest');
  });

  it('ends the run on wasi:cli/exit — ok with empty output, or a guest error — never the process', async () => {
    expect(await agent.run('exit-ok')).toMatchObject({ ok: true, outcome: 'ok', output: '' });
    expect(await agent.run('exit-err')).toMatchObject({ ok: false, outcome: 'error', error: 'the guest exited with an error status (wasi:cli/exit)' });
    expect(await agent.run('env')).toMatchObject({ ok: true });
  });

  it('refuses sockets and wasi:http without grants', async () => {
    expect(await agent.run('sockets')).toMatchObject({ ok: true, output: 'err:access-denied' });
    const http = await agent.run('http');
    expect(http).toMatchObject({ ok: true, output: 'err:{"tag":"HTTP-request-denied"}' });
    expect(calls(host, http.runId).find((c) => c.decision === 'deny')).toMatchObject({ call: 'wasi:http/outgoing-handler@0.2.12#handle', rule: 'grants.wasi.http' });
    // instance-network has no error result: denied, it traps the run with the reason.
    expect(await agent.run('instance-network')).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest', error: expect.stringContaining('sockets are not granted') });
  });

  it('mixes ice:agent calls with WASI in one ledger, and the run replays from it', async () => {
    const result = await agent.run('ice from js');
    expect(result).toMatchObject({ ok: true, output: 'count=1' });
    const recorded = calls(host, result.runId);
    expect(recorded.some((c) => c.call === 'ice:agent/kv@0.1.0#set')).toBe(true);
    expect(recorded.some((c) => c.call.startsWith('wasi:'))).toBe(true);
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, calls: recorded.length });
  });
});

describe('grants.wasi refusals', () => {
  let host: Host;
  beforeAll(async () => {
    ({ host } = await freshHost());
  });
  afterAll(() => host.close());

  it('refuses at load a WASI import the policy does not cover, naming the key', async () => {
    const { clocks: _clocks, filesystem: _filesystem, ...rest } = policy().grants.wasi;
    const error = await host.load(AGENT, { ...policy(), grants: { ...policy().grants, wasi: rest } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoadError);
    expect((error as LoadError).message).toContain('add grants.wasi.clocks: allow');
    expect((error as LoadError).message).toContain('add grants.wasi.filesystem:');
    const none = await host.load(AGENT, { ...policy(), grants: { log: {}, kv: {} } }).catch((e: unknown) => e);
    expect((none as LoadError).message).toContain('add a grants.wasi section');
  });

  it('refuses a mount whose host directory does not exist', async () => {
    const error = await host.load(AGENT, policy({ filesystem: [{ guest: '/data', host: join(place, 'nope'), mode: 'read-only' }] })).catch((e: unknown) => e);
    expect((error as LoadError).code).toBe('bad-mount');
  });

  it('traps a denied clock or random source rather than returning a fake value', async () => {
    const agent = await host.load(AGENT, policy({ clocks: 'deny' }));
    const result = await agent.run('clock');
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(result.ok ? '' : result.error).toContain('grants.wasi.clocks is deny');
  });

  it('stops a guest past grants.wasi.maxCalls: the call over the budget traps the run, and is recorded', async () => {
    const agent = await host.load(AGENT, policy({ maxCalls: 30 }));
    const result = await agent.run('write-ro');
    expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest', error: expect.stringContaining('over grants.wasi.maxCalls (30)') });
    const recorded = calls(host, result.runId);
    expect(recorded.filter((c) => c.call.startsWith('wasi:'))).toHaveLength(31);
    expect(recorded.at(-1)).toMatchObject({ decision: 'limit', rule: 'grants.wasi.maxCalls' });
  });

  it('gives a guest with filesystem: deny no directories', async () => {
    const agent = await host.load(AGENT, policy({ filesystem: 'deny' }));
    expect(await agent.run('list-dirs')).toMatchObject({ ok: true, output: '' });
  });
});
