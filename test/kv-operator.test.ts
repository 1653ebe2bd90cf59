/**
 * An operator's kv writes (`ice kv …`, Host.kvOf): an agent's data seeded or changed without it
 * running, each batch recorded as an operator run, so the kv view is still a fold of the ledger and
 * the audit says who changed what. Through the real CLI and the real calc component.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { CALC_COMPONENT } from './paths.js';

const CALC_POLICY = 'version: 1\ncomponent: calc\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"], maxKeys: 3 }\n';

describe('ice kv (operator writes on a state dir)', () => {
  it('seeds an agent that never ran; the agent reads it; every write is an operator run; verify and rebuild hold', () => {
    const state = tempDir();
    const set = ice(['kv', 'set', 'notes/today', 'ship it', '--component', 'calc', '--by', 'ada', '--state', state]);
    expect(set.code).toBe(0);
    expect(set.stderr).toMatch(/^operator run \S+ · 1 write recorded · ledger root [0-9a-f]{16}\n$/);
    const file = join(tempDir(), 'seed.json');
    writeFileSync(file, JSON.stringify({ 'notes/a': '1', 'notes/b': 'two' }));
    expect(ice(['kv', 'import', file, '--component', 'calc', '--by', 'ada', '--state', state]).stderr).toContain('· 2 writes recorded');
    expect(ice(['kv', 'list', '--component', 'calc', '--state', state]).stdout).toBe('notes/a\nnotes/b\nnotes/today\n');
    expect(ice(['kv', 'list', '--prefix', 'notes/t', '--json', '--component', 'calc', '--state', state]).stdout).toBe('["notes/today"]\n');
    expect(ice(['kv', 'get', 'notes/b', '--component', 'calc', '--state', state]).stdout).toBe('two\n');
    const missing = ice(['kv', 'get', 'notes/z', '--component', 'calc', '--state', state]);
    expect([missing.code, missing.stderr]).toEqual([1, 'ice kv get: component calc has no key "notes/z"\n']);

    const recall = ice(['call', CALC_COMPONENT, 'recall', '--policy', writePolicy(CALC_POLICY), '--args', '{"key":"notes/today"}', '--state', state]);
    expect([recall.code, recall.stdout]).toEqual([0, '"ship it"\n']);
    expect(ice(['kv', 'delete', 'notes/a', '--component', 'calc', '--by', 'bob', '--state', state]).code).toBe(0);
    expect(JSON.parse(ice(['kv', 'export', '--component', 'calc', '--state', state]).stdout)).toEqual({ 'notes/b': 'two', 'notes/today': 'ship it' });

    const list = ice(['audit', 'list', '--state', state]).stdout;
    expect(list).toMatch(/calc\s+operator: kv delete/);
    expect(list).toMatch(/calc\s+operator: kv import \//);
    const show = ice(['audit', 'show', 'last', '--state', state]).stdout;
    expect(show).toMatch(/^operator {3}bob: kv delete$/m);
    expect(show).toMatch(/^component {2}calc {2}\(its data; no component ran\)$/m);
    expect(show).toMatch(/kv\.delete\("notes\/a"\)\s+allow\s+operator/);

    expect(ice(['audit', 'verify', '--all', '--state', state]).code).toBe(0);
    const verify = ice(['state', 'verify', '--state', state]);
    expect([verify.code, verify.stdout]).toEqual([0, 'ok: kv view equals the fold of 4 events (1 component, 2 keys)\n']);
    expect(ice(['state', 'rebuild', '--state', state]).code).toBe(0);
    expect(ice(['kv', 'get', 'notes/today', '--component', 'calc', '--state', state]).stdout).toBe('ship it\n');
    const replay = ice(['replay', 'last', '--state', state]);
    expect(replay.code).not.toBe(0);
    expect(replay.stderr).toContain("is an operator's kv delete by bob, not a run of a component: there is nothing to replay");
  });

  it('refuses bad input before anything is written or recorded', () => {
    const state = tempDir();
    const bad = (args: string[], message: string) => {
      const out = ice(['kv', ...args, '--state', state]);
      expect(out.code, out.stderr).toBe(2);
      expect(out.stderr).toContain(message);
    };
    bad(['set', 'k', 'v', '--component', 'Bad Name'], 'bad component name "Bad Name"');
    bad(['set', 'k', '--component', 'calc'], 'ice kv set: expected <key> <value>, got "k"');
    bad(['set', 'k', 'v'], '--component <name> is required');
    bad(['put', 'k', 'v', '--component', 'calc'], 'ice kv: expected one of get, set, delete, list, import, export, got "put"');
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, JSON.stringify({ a: 1 }));
    bad(['import', file, '--component', 'calc'], 'the value of "a" is not a string');
    writeFileSync(file, '["a","b"]');
    bad(['import', file, '--component', 'calc'], 'is not a JSON object');
    expect(ice(['audit', 'list', '--state', state]).stdout).toContain('0 runs');
  });
});

describe('Host.kvOf (the library API)', () => {
  it("writes count against the agent's own kv quota, and the agent's writes show beside the operator's", async () => {
    const { host } = await freshHost();
    try {
      const kv = host.kvOf('calc', 'seeder');
      const seeded = kv.import([
        ['notes/1', 'a'],
        ['notes/2', 'b'],
        ['notes/3', 'c'],
      ]);
      expect(seeded.counts).toMatchObject({ calls: 3, allowed: 3 });
      const calc = await host.load(CALC_COMPONENT, writePolicy(CALC_POLICY));
      // grants.kv.maxKeys is 3, and the operator's three keys count.
      const full = await calc.call('remember', { key: 'notes/4', value: 'd' });
      expect(full.ok).toBe(false);
      expect(String(full.value)).toContain('maxKeys');
      kv.delete('notes/1');
      expect((await calc.call('remember', { key: 'notes/4', value: 'd' })).ok).toBe(true);
      expect(kv.export()).toEqual([
        ['notes/2', 'b'],
        ['notes/3', 'c'],
        ['notes/4', 'd'],
      ]);
      expect(() => kv.set('k', 'x'.repeat(17 * 1024 * 1024))).toThrow('the value is over 16777216 bytes');
      expect(() => kv.set('a\ud800', 'v')).toThrow('the key is not valid Unicode');
      expect(() => kv.import([])).toThrow('nothing to write');
      expect(() => host.kvOf('../etc')).toThrow('bad component name');
      expect(kv.list()).toEqual(['notes/2', 'notes/3', 'notes/4']);
      expect(host.verify(seeded.runId).ok).toBe(true);
    } finally {
      host.close();
    }
  });
});
