/** The worker bridge: a blocking call from a worker thread, served by an async function on this thread. */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { BRIDGE_BYTES, BridgeServer } from '../host/src/sandbox/bridge.js';
import { ROOT } from './paths.js';

const BRIDGE = new URL('dist/host/src/sandbox/bridge.js', `file://${ROOT}/`).href;

/** A worker that makes `n` bridge calls and reports their answers (or the error of the first that fails). */
function callsFrom(buffer: SharedArrayBuffer, calls: { op: string; args: unknown }[]): Promise<unknown[]> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(BRIDGE)}).then(({ BridgeClient }) => {
      const client = new BridgeClient(workerData.buffer);
      const out = [];
      for (const { op, args } of workerData.calls) {
        try { out.push({ ok: client.call(op, args) }); } catch (e) { out.push({ error: e.name + ': ' + e.message }); }
      }
      parentPort.postMessage(out);
    });`;
  const worker = new Worker(source, { eval: true, workerData: { buffer, calls } });
  return new Promise((resolve, reject) => {
    worker.once('message', (out) => {
      void worker.terminate();
      resolve(out as unknown[]);
    });
    worker.once('error', reject);
  });
}

describe('worker bridge', () => {
  it('answers blocking calls in order with the async handler results, and passes errors back as values', async () => {
    const buffer = new SharedArrayBuffer(BRIDGE_BYTES);
    const seen: string[] = [];
    const server = new BridgeServer(buffer, async (op, args) => {
      seen.push(op);
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (op === 'fail') throw new Error('the effect failed');
      return { echoed: args };
    });
    const out = await callsFrom(buffer, [
      { op: 'a', args: [1, 'x'] },
      { op: 'fail', args: null },
      { op: 'b', args: { k: 'ü' } },
    ]);
    server.close();
    expect(seen).toEqual(['a', 'fail', 'b']);
    expect(out).toEqual([
      { ok: { echoed: [1, 'x'] } },
      { error: 'BridgeError: the effect failed' },
      { ok: { echoed: { k: 'ü' } } },
    ]);
  });

  it('serves 20,000 calls in a row without losing a wake-up (a lost one deadlocks both threads)', async () => {
    const buffer = new SharedArrayBuffer(BRIDGE_BYTES);
    let served = 0;
    const server = new BridgeServer(buffer, async () => ++served);
    const calls = Array.from({ length: 20_000 }, () => ({ op: 'tick', args: null }));
    const out = await callsFrom(buffer, calls);
    server.close();
    expect(out).toHaveLength(20_000);
    expect(out.at(-1)).toEqual({ ok: 20_000 });
  }, 30_000);

  it('refuses a message larger than the shared buffer, naming the limit', async () => {
    const buffer = new SharedArrayBuffer(1024);
    const server = new BridgeServer(buffer, async () => 'x'.repeat(5000));
    const out = await callsFrom(buffer, [{ op: 'big', args: null }, { op: 'big', args: 'y'.repeat(5000) }]);
    server.close();
    expect(out).toEqual([{ error: 'BridgeError: a bridge message is over 1016 bytes' }, { error: 'BridgeError: a bridge message is over 1016 bytes' }]);
  });
});
