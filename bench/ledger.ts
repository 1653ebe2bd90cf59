/**
 * `npm run bench` (second table): the ledger's write throughput and replay speed, on this machine.
 *
 * Throughput: call records appended the way the runtime does it (BufferedRunWriter: queued on the hot
 * path, committed 256 per transaction, WAL with synchronous=NORMAL), in ledger v2 (a batch row, one
 * hash per batch) and v1 (a row and a hash per record), against one
 * commit per record, all of them in one transaction, and synchronous=FULL (an fsync per record).
 * Replay: a recorded run of the bench guest replayed from its ledger, against the original run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest } from '../host/src/build/index.js';
import { createHost } from '../host/src/index.js';
import { BufferedRunWriter, capture, LedgerStore, newRunId, type CallInput } from '../host/src/ledger/index.js';
import { openStateDb } from '../host/src/storage/db.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const here = (p: string) => join(root, 'bench', p);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 20_000);
const pad = (s: string, n: number) => s.padEnd(n);
const work = mkdtempSync(join(tmpdir(), 'ice-bench-ledger-'));

function appendAll(writer: { appendCall(call: CallInput): unknown }, n: number): void {
  for (let i = 0; i < n; i++) {
    writer.appendCall({
      call: 'ice:agent/kv@0.1.0#get',
      args: [capture('count', 'full')],
      decision: 'allow',
      rule: 'grants.kv.read[0]',
      outcome: { ok: capture(String(i), 'full') },
      durationUs: 3,
    });
  }
}

function throughput(label: string, synchronous: 'normal' | 'full', mode: 'runtime' | 'each' | 'one-transaction', n: number, format: 1 | 2 = 2): [string, number] {
  const state = openStateDb(join(work, `${label.replace(/\W+/g, '-')}`), { synchronous });
  const ledger = new LedgerStore(state, { format });
  const meta = { component: { name: 'bench', digest: '0'.repeat(64) }, policy: { digest: '0'.repeat(64), source: 'bench', document: {} }, input: capture('', 'full'), host: { ice: 'bench' } };
  const writer = ledger.startRun({ run: newRunId(), ...meta });
  const t = performance.now();
  if (mode === 'one-transaction') state.transaction(() => appendAll(writer, n));
  else if (mode === 'each') appendAll(writer, n);
  else {
    const buffered = new BufferedRunWriter(writer, state);
    appendAll(buffered, n);
    buffered.flush();
  }
  const seconds = (performance.now() - t) / 1000;
  state.close();
  return [label, n / seconds];
}

try {
  // Warm the JIT on both formats first, so the first row is not the one that pays for it.
  throughput('warm-up 2', 'normal', 'runtime', RECORDS);
  throughput('warm-up 1', 'normal', 'runtime', RECORDS, 1);
  const rows = [
    throughput('ledger v2: batches of 256, one row and hash each (the runtime)', 'normal', 'runtime', RECORDS),
    throughput('ledger v1: batches of 256, a row and hash per record', 'normal', 'runtime', RECORDS, 1),
    throughput('one commit per record, synchronous=NORMAL', 'normal', 'each', RECORDS),
    throughput('all records in one transaction', 'normal', 'one-transaction', RECORDS),
    throughput('one commit per record, synchronous=FULL', 'full', 'each', Math.min(RECORDS, 2000)),
  ];
  console.log(`\nledger write throughput, call records per second (${RECORDS} records; node ${process.version})\n`);
  for (const [label, perSecond] of rows) console.log(`${pad(label, 64)}  ${Math.round(perSecond).toLocaleString('en-US').padStart(9)}`);
  const [v2, v1] = [rows[0]![1], rows[1]![1]];
  console.log(`${pad('v2 ÷ v1', 64)}  ${`${(v2 / v1).toFixed(2)}x`.padStart(9)}`);
  console.log(`${pad('goal (issue 18): ≥ 1,000,000 batched; measured ÷ goal', 64)}  ${(v2 / 1_000_000).toFixed(2).padStart(9)}`);

  const built = await buildGuest(here('guest'));
  const wasm = join(work, 'bench.wasm');
  writeFileSync(wasm, built.component);
  const host = await createHost({ stateDir: join(work, 'state'), cacheDir: false, execution: 'in-process', onGuestLog: () => undefined });
  const agent = await host.load(wasm, here('policy.yaml'));
  console.log('\nreplay against the original run (in-process, same component, ms)\n');
  console.log(`${pad('run', 26)}  ${pad('original', 9)}  ${pad('replay', 9)}  replay/original`);
  for (const input of ['get:5000', 'now:5000', 'random:5000', 'log:5000', 'sort:100000']) {
    await agent.run(input); // warm
    const t = performance.now();
    const result = await agent.run(input);
    const original = performance.now() - t;
    const report = await host.replay(result.runId);
    if (!report.matches) throw new Error(`bench replay of ${input} diverged at seq ${report.seq}`);
    console.log(`${pad(`${input} (${result.calls} calls)`, 26)}  ${pad(original.toFixed(1), 9)}  ${pad(report.durationMs.toFixed(1), 9)}  ${(report.durationMs / original).toFixed(2)}x`);
  }
  host.close();
} finally {
  rmSync(work, { recursive: true, force: true });
}
