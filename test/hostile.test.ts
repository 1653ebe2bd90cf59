/**
 * The attacks an adversary would write (guests/hostile and guests/rust/hostile, selected by input),
 * in both languages and both execution modes. Each case asserts its exact outcome and ledger, that
 * the ledger verifies, and that the same host then serves a healthy run.
 */
import { renameSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../host/src/index.js';
import { LEDGER_RESERVE_BYTES, type CallRecord, type RunEndRecord, type RunStartRecord } from '../host/src/ledger/index.js';
import { EXECUTIONS, freshHost, ice, tempDir, writePolicy, type Execution } from './helpers.js';
import { LANGUAGES, guestWasm } from './paths.js';

const MiB = 1024 * 1024;

function policy(limits: string, grants = 'log: {}\n  clock: { maxCalls: 1000 }\n  kv: { read: ["count"] }\n  events: { kinds: ["flood.*"] }'): string {
  return writePolicy(`version: 1\ncomponent: hostile\nlimits: ${limits}\ngrants:\n  ${grants}\n`);
}

interface Case {
  /** Input to the hostile guest. */
  readonly attack: string;
  readonly title: string;
  readonly policy: string;
  /** Modes it applies to (a tight loop can only be preempted in a worker). */
  readonly modes?: readonly Execution[];
  readonly expect: (result: RunResult, calls: CallRecord[], end: RunEndRecord) => void;
}

const abiTrap = (result: RunResult) =>
  expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest', error: expect.stringMatching(/^the guest broke the canonical ABI: /) });

const CASES: Case[] = [
  {
    attack: 'loop',
    title: 'an infinite loop without imports ends when its fuel runs out, with the exact fuel',
    policy: policy('{ fuel: 20000000 }'),
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'fuel', fuel: 20_000_000, error: 'the guest used all its fuel (limits.fuel 20000000)' });
      expect(calls).toEqual([]);
      expect(end).toMatchObject({ outcome: 'limit', limit: 'fuel', fuel: 20_000_000 });
    },
  },
  {
    attack: 'loop',
    title: 'an infinite loop without imports is stopped at its deadline',
    policy: policy('{ fuel: 1000000000000000, timeoutMs: 300 }'),
    modes: ['worker'],
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout', fuel: undefined });
      expect(result.durationMs).toBeGreaterThanOrEqual(300);
      expect(result.durationMs).toBeLessThan(2000);
      expect(calls).toEqual([]);
      expect(end).toMatchObject({ outcome: 'limit', limit: 'timeout', reason: 'the run took longer than limits.timeoutMs (300 ms) and was stopped' });
      expect(end.fuel).toBeUndefined();
    },
  },
  {
    attack: 'loop-imports',
    title: 'an infinite loop of import calls runs into maxCalls, then out of fuel; every call is recorded',
    policy: policy('{ fuel: 200000 }'),
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'fuel', fuel: 200_000 });
      expect(calls.length).toBeGreaterThan(1000);
      expect(calls.slice(0, 1000).every((c) => c.decision === 'allow')).toBe(true);
      expect(calls.slice(1000).every((c) => c.decision === 'limit' && c.rule === 'grants.clock.maxCalls')).toBe(true);
      expect(end.counts).toMatchObject({ calls: calls.length, allowed: 1000, limited: calls.length - 1000 });
    },
  },
  {
    attack: 'loop-imports',
    title: 'an infinite loop of import calls is stopped at its deadline with its calls on record',
    policy: policy('{ fuel: 1000000000000000, timeoutMs: 400 }', 'log: {}\n  clock: { maxCalls: 1000000000 }\n  kv: { read: ["count"] }\n  events: { kinds: ["flood.*"] }'),
    modes: ['worker'],
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout' });
      expect(calls.length).toBeGreaterThan(10);
      expect(calls.map((c) => c.seq)).toEqual(calls.map((_, i) => i + 1));
      expect(end).toMatchObject({ outcome: 'limit', limit: 'timeout', seq: calls.length + 1 });
      expect(end.counts.calls).toBe(calls.length);
    },
  },
  {
    attack: 'denied-then-loop',
    title: 'a kill at the deadline keeps the record of every call made before it (queued records are rescued)',
    policy: policy('{ fuel: 1000000000000000, timeoutMs: 300 }'),
    modes: ['worker'],
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout' });
      expect(calls).toHaveLength(100);
      expect(calls.every((c) => c.decision === 'deny')).toBe(true);
      expect(end.counts).toMatchObject({ calls: 100, denied: 100 });
    },
  },
  {
    attack: 'grow',
    title: 'a memory bomb fails to grow past limits.memoryMiB and the run ends limit: memory',
    policy: policy('{ memoryMiB: 32 }'),
    expect: (result) => {
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'memory' });
      expect(result.ok ? '' : result.error).toMatch(/^the guest's memory could not grow past limits\.memoryMiB \(32 MiB\), and then it trapped/);
    },
  },
  {
    attack: 'grow-raw',
    title: 'memory.grow past the cap returns -1 to a guest that handles it',
    policy: policy('{ memoryMiB: 16 }'),
    expect: (result) => expect(result).toMatchObject({ ok: true, output: expect.stringMatching(/^grow refused after \d+ pages$/) }),
  },
  {
    attack: 'recurse',
    title: 'unbounded recursion traps the guest',
    policy: policy('{}'),
    expect: (result) => expect(result).toMatchObject({ ok: false, blame: 'guest', outcome: 'trap' }),
  },
  {
    attack: 'callback-trap',
    title: 'a trap inside a sort comparator traps the guest',
    policy: policy('{}'),
    expect: (result) => expect(result).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest', error: expect.stringContaining('unreachable') }),
  },
  {
    attack: 'big-log',
    title: 'a 100 MiB log message is refused by size and recorded as its digest, not its text',
    policy: policy('{ memoryMiB: 512 }'),
    expect: (result, calls) => {
      expect(result).toMatchObject({ ok: true, output: 'big-log: limit' });
      const big = calls.find((c) => c.args.some((a) => 'size' in a && a.size === 100 * MiB));
      expect(big).toMatchObject({ decision: 'limit', rule: 'grants.log.maxMessageBytes', args: [{ value: 'info' }, { sha256: expect.any(String), size: 100 * MiB }] });
    },
  },
  {
    attack: 'bad-utf8',
    title: 'a string that is not UTF-8 traps the guest before the host acts on it',
    policy: policy('{}'),
    expect: (result, calls) => {
      abiTrap(result);
      expect(calls).toEqual([]);
    },
  },
  {
    attack: 'oob-pointer',
    title: 'a string pointer outside memory traps the guest',
    policy: policy('{}'),
    expect: (result, calls) => {
      abiTrap(result);
      expect(calls).toEqual([]);
    },
  },
  {
    attack: 'oob-length',
    title: 'a string length past the end of memory traps the guest',
    policy: policy('{}'),
    expect: (result, calls) => {
      abiTrap(result);
      expect(calls).toEqual([]);
    },
  },
  {
    attack: 'bad-retptr',
    title: 'a return area outside memory traps the guest after the call is recorded',
    policy: policy('{}'),
    expect: (result, calls) => {
      abiTrap(result);
      expect(calls).toMatchObject([{ call: 'ice:agent/clock@0.1.0#now', decision: 'allow' }]);
    },
  },
  {
    attack: 'denied-10k',
    title: 'ten thousand denied calls in a row are each answered and recorded',
    policy: policy('{}'),
    expect: (result, calls, end) => {
      expect(result).toMatchObject({ ok: true, output: '10000 denied' });
      expect(calls).toHaveLength(10_000);
      expect(calls.every((c) => c.decision === 'deny' && c.rule === 'grants.kv.write')).toBe(true);
      expect(end.counts).toMatchObject({ calls: 10_000, denied: 10_000 });
    },
  },
  {
    attack: 'huge-output',
    title: 'an output over limits.maxOutputBytes ends the run limit: output',
    policy: policy('{}'),
    expect: (result) =>
      expect(result).toMatchObject({
        ok: false,
        outcome: 'limit',
        limit: 'output',
        error: `the guest's output is ${2 * MiB} bytes, over limits.maxOutputBytes (${MiB})`,
      }),
  },
  {
    attack: 'kv-flood',
    title: 'a kv flood stops at the component quota grants.kv.maxKeys with limit, naming the key and the fix',
    policy: policy('{}', 'log: {}\n  clock: {}\n  kv: { read: ["flood/*"], write: ["flood/*"], maxKeys: 500 }\n  events: { kinds: ["flood.*"] }'),
    expect: (result, calls, end) => {
      expect(result.ok ? result.output : result.error).toMatch(/^kv-flood: 500 set, then limit: kv\.set\("flood\/500"\): component "hostile" has 500 keys, grants\.kv\.maxKeys \(500\); .*raise grants\.kv\.maxKeys/);
      expect(calls).toHaveLength(501);
      expect(calls.at(-1)).toMatchObject({ decision: 'limit', rule: 'grants.kv.maxKeys' });
      expect(end.counts).toMatchObject({ calls: 501, allowed: 500, limited: 1 });
    },
  },
  {
    attack: 'event-flood',
    title: 'an event flood stops at limits.maxLedgerBytes with limit, its ledger within the budget and the reserve',
    policy: policy('{ maxLedgerBytes: 1048576 }'),
    expect: (result, calls, end) => {
      expect(result.ok ? result.output : result.error).toMatch(/^event-flood: 1[67] emitted, then limit: events\.emit: its record \(\d+ bytes\) would take the run's ledger past limits\.maxLedgerBytes \(1048576; /);
      expect(calls.at(-1)).toMatchObject({ decision: 'limit', rule: 'limits.maxLedgerBytes', args: [{ value: 'flood.tick' }, { size: 60_000 }] });
      expect(calls.slice(0, -1).every((c) => c.decision === 'allow')).toBe(true);
      expect(end).toMatchObject({ outcome: 'ok' });
    },
  },
  ...(['fill-loop', 'copy-loop'] as const).map(
    (attack): Case => ({
      attack,
      title: 'a loop of 16 MiB bulk memory operations runs out of fuel (bulk ops cost fuel by length), in any execution mode',
      policy: policy('{ fuel: 20000000, memoryMiB: 64, timeoutMs: 20000 }'),
      expect: (result, calls, end) => {
        expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'fuel', fuel: 20_000_000, error: 'the guest used all its fuel (limits.fuel 20000000)' });
        // Before: one unit per iteration, so 20M units were hours of 16 MiB fills (a worker stopped it at its deadline).
        expect(result.durationMs).toBeLessThan(10_000);
        expect(calls).toEqual([]);
        expect(end).toMatchObject({ outcome: 'limit', limit: 'fuel' });
      },
    }),
  ),
];

describe.each(LANGUAGES.flatMap((language) => EXECUTIONS.map((execution) => [language, execution] as const)))(
  'hostile guest (%s, %s)',
  (language, execution) => {
    for (const c of CASES.filter((c) => !c.modes || c.modes.includes(execution))) {
      it(`${c.attack}: ${c.title}`, async () => {
        const { host } = await freshHost(tempDir(), { execution });
        try {
          const agent = await host.load(guestWasm('hostile', language), c.policy);
          const result = await agent.run(c.attack);
          const records = host.readRun(result.runId);
          const calls = records.filter((r) => r.record.type === 'call').map((r) => r.record as CallRecord);
          const end = records.at(-1)!.record as RunEndRecord;
          expect(end.type).toBe('run-end');
          c.expect(result, calls, end);
          expect(host.verify(result.runId)).toMatchObject({ ok: true });
          expect(records.at(-1)!.hash).toBe(result.ledgerRoot);
          // Whatever the attack, the run's ledger stays within limits.maxLedgerBytes and its reserve.
          const bytes = records.reduce((sum, r) => sum + Buffer.byteLength(r.body, 'utf8'), 0);
          const { limits } = (records[0]!.record as RunStartRecord).policy.document as { limits: { maxLedgerBytes: number } };
          expect(bytes).toBeLessThanOrEqual(limits.maxLedgerBytes + LEDGER_RESERVE_BYTES);

          // The host keeps serving: the next run on the same host succeeds.
          const healthy = await (await host.load(guestWasm('hostile', language), policy('{}'))).run('ok');
          expect(healthy).toMatchObject({ ok: true, output: 'still here' });
        } finally {
          host.close();
        }
      }, 30_000);
    }

    it('uses the same fuel for the same input on every run', async () => {
      const { host } = await freshHost(tempDir(), { execution });
      try {
        const agent = await host.load(guestWasm('hostile', language), policy('{}'));
        const runs = [await agent.run('ok'), await agent.run('ok'), await agent.run('callback-trap')];
        expect(runs[0]!.fuel).toBeGreaterThan(0);
        expect(runs[1]!.fuel).toBe(runs[0]!.fuel);
        const again = await agent.run('callback-trap');
        expect(again.fuel).toBe(runs[2]!.fuel);
      } finally {
        host.close();
      }
    });
  },
);

describe('hostile guest through the CLI', () => {
  it('exits 3 with the limit on stderr, and 0 for a healthy run, in both execution modes', () => {
    const state = tempDir();
    const fuel = policy('{ fuel: 1000000 }');
    for (const mode of [[], ['--in-process']]) {
      const out = ice(['run', guestWasm('hostile'), '--policy', fuel, '--input', 'loop', '--state', state, ...mode]);
      expect(out.code).toBe(3);
      expect(out.stderr).toMatch(/^run \S+ limit \(fuel\): the guest used all its fuel \(limits\.fuel 1000000\) · 0 calls .* · fuel 1000000 · ledger root [0-9a-f]{16}\n$/);
    }
    const timeout = ice(['run', guestWasm('hostile', 'rust'), '--policy', policy('{ fuel: 1000000000000000, timeoutMs: 200 }'), '--input', 'loop', '--state', state]);
    expect(timeout.code).toBe(3);
    expect(timeout.stderr).toMatch(/^run \S+ limit \(timeout\): the run took longer than limits\.timeoutMs \(200 ms\) and was stopped · 0 calls/);
    expect(ice(['audit', 'show', 'last', '--state', state]).stdout).toContain('outcome    limit (timeout): the run took longer than limits.timeoutMs (200 ms)');
  });
});

describe.each(LANGUAGES)('the deadline on the calling thread (%s)', (language) => {
  const endless = policy('{ fuel: 1000000000000000, timeoutMs: 300 }', 'log: {}\n  clock: { maxCalls: 1000000000 }\n  kv: { read: ["count"] }\n  events: deny');

  it.each(['loop', 'loop-imports'])('an in-process %s is stopped at limits.timeoutMs, with its fuel and calls on record', async (attack) => {
    const { host } = await freshHost(tempDir(), { execution: 'in-process' });
    try {
      const result = await (await host.load(guestWasm('hostile', language), endless)).run(attack);
      expect(result).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout', error: 'the run took longer than limits.timeoutMs (300 ms) and was stopped' });
      expect(result.durationMs).toBeGreaterThanOrEqual(300);
      expect(result.durationMs).toBeLessThan(1500);
      // The run stopped itself at a refuel, so unlike a terminated worker it knows its fuel.
      expect(result.fuel).toBeGreaterThan(0);
      const records = host.readRun(result.runId);
      expect(records.at(-1)!.record).toMatchObject({ type: 'run-end', outcome: 'limit', limit: 'timeout', fuel: result.fuel });
      expect(host.verify(result.runId)).toMatchObject({ ok: true });
      expect(await (await host.load(guestWasm('hostile', language), policy('{}'))).run('ok')).toMatchObject({ ok: true });
    } finally {
      host.close();
    }
  });

  it('replay of a run its worker was stopped in ends at the replay deadline instead of hanging', async () => {
    const { host } = await freshHost(tempDir());
    try {
      const run = await (await host.load(guestWasm('hostile', language), endless)).run('loop');
      expect(run).toMatchObject({ outcome: 'limit', limit: 'timeout' });
      const report = await host.replay(run.runId);
      expect(report).toMatchObject({ matches: true, calls: 0, outcome: 'limit', note: expect.stringContaining('stopped at its deadline') });
      expect(report.durationMs).toBeLessThan(1500);
      const shorter = await host.replay(run.runId, undefined, { timeoutMs: 50 });
      expect(shorter.durationMs).toBeLessThan(600);
    } finally {
      host.close();
    }
  });

  it('replay that runs past its deadline where the recording did not is reported as a divergence', async () => {
    const { host } = await freshHost(tempDir());
    try {
      // The same loop under enough fuel to end it: recorded as a fuel limit after ~1.5 s of work.
      const run = await (await host.load(guestWasm('hostile', language), policy('{ fuel: 300000000, timeoutMs: 60000 }'))).run('loop');
      expect(run).toMatchObject({ outcome: 'limit', limit: 'fuel' });
      const report = await host.replay(run.runId, undefined, { timeoutMs: 20 });
      expect(report).toMatchObject({ matches: false, expected: 'run-end limit (fuel) fuel 300000000', actual: expect.stringMatching(/^no further call within the replay's deadline \(20 ms; raise it with --timeout <ms>\)$/) });
      expect(await host.replay(run.runId)).toMatchObject({ matches: true, outcome: 'limit', fuel: 300_000_000 });
    } finally {
      host.close();
    }
  });
});

describe.each(LANGUAGES)('what a denial tells the guest (%s)', (language) => {
  it('names the policy file, not the directory the host keeps it in', async () => {
    const dir = tempDir('ice-private-dir-');
    const { host } = await freshHost(tempDir());
    try {
      const file = writePolicy('version: 1\ncomponent: denied\ngrants:\n  log: {}\n  kv: deny\n', 'secret-place.yaml');
      const moved = `${dir}/secret-place.yaml`;
      renameSync(file, moved);
      const result = await (await host.load(guestWasm('denied', language), moved)).run('x');
      expect(result).toMatchObject({ ok: true, output: 'denied: kv.set denied for component "denied": grants.kv is deny in policy secret-place.yaml' });
      expect(JSON.stringify(host.readRun(result.runId).slice(1))).not.toContain(dir);
    } finally {
      host.close();
    }
  });
});
