/**
 * The worker pool sends a busy worker its next run ahead of time (prefetch). The hostile cases: a run
 * past its deadline gets its worker killed — the run sent ahead to that worker must not pay for it
 * (it runs on a fresh worker, in its turn, with its own deadline), and a prefetched run's deadline
 * must not start while it waits behind another run.
 */
import { describe, expect, it } from 'vitest';
import { freshHost, writePolicy } from './helpers.js';
import { guestWasm } from './paths.js';

const SPIN = writePolicy('version: 1\ncomponent: hostile\nlimits: { timeoutMs: 400 }\ngrants:\n  log: {}\n  clock: {}\n  kv: { read: ["count"] }\n  events: deny\n');
const HELLO = writePolicy('version: 1\ncomponent: hello\nlimits: { timeoutMs: 300 }\ngrants:\n  log: {}\n');

describe('worker pool prefetch', () => {
  it('a run sent ahead to a worker killed for another run’s deadline runs on a fresh worker, in order, and verifies', async () => {
    const { host } = await freshHost(undefined, { workers: 1 });
    try {
      const spinner = await host.load(guestWasm('hostile'), SPIN);
      const hello = await host.load(guestWasm('hello'), HELLO);
      await hello.run('warm');
      const order: string[] = [];
      const spun = spinner.run('loop');
      // With one busy worker, the first of these is prefetched to it, the second waits in the queue.
      const first = hello.run('first').then((r) => (order.push('first'), r));
      const second = hello.run('second').then((r) => (order.push('second'), r));
      const [a, b, c] = await Promise.all([spun, first, second]);
      expect(a).toMatchObject({ ok: false, outcome: 'limit', limit: 'timeout' });
      // hello's own deadline (300 ms) is shorter than the spinner's (400 ms): had it started while it
      // waited behind the spinner, it would have been killed too.
      expect(b).toMatchObject({ ok: true, output: 'hello, first!' });
      expect(c).toMatchObject({ ok: true, output: 'hello, second!' });
      expect(order).toEqual(['first', 'second']);
      for (const result of [a, b, c]) expect(host.verify(result.runId)).toMatchObject({ ok: true });
      // The runs sent ahead never started on the killed worker: one run-start each, no incomplete run.
      expect(host.ledger.listRuns(10).filter((r) => r.outcome === 'incomplete')).toEqual([]);
    } finally {
      host.close();
    }
  }, 30_000);

  it('keeps every run of a burst on two workers, each once, in its own ledger chain', async () => {
    const { host } = await freshHost(undefined, { workers: 2 });
    try {
      const hello = await host.load(guestWasm('hello'), HELLO);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => hello.run(`n${i}`)));
      expect(results.map((r) => r.ok && r.output)).toEqual(results.map((_, i) => `hello, n${i}!`));
      expect(new Set(results.map((r) => r.runId)).size).toBe(200);
      expect(host.ledger.listRuns(1000)).toHaveLength(200);
    } finally {
      host.close();
    }
  }, 30_000);
});
