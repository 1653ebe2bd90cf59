/**
 * `npm run bench` (third table): what mediation adds to an HTTP request. The same GET to the same local
 * server (127.0.0.1, keep-alive), made:
 *   1. directly with node:http and a keep-alive agent (the baseline);
 *   2. with Node's global fetch (undici), for reference;
 *   3. through ICE's egress client alone (connect-time address checks, limits), no guest;
 *   4. by a guest, through the whole path: http-driver in a worker → intent committed → bridge → host thread → decision
 *      again on the dispatched URL → egress client → result record (and back): the median duration of
 *      a call as its ledger record measured it;
 *   5. the same run's wall time divided by its request count (the driver's own work between calls —
 *      hex-encoding each response into its growing output — included).
 */
import { createServer, Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest } from '../host/src/build/index.js';
import { parseCidr } from '../host/src/capabilities/http/address.js';
import { EgressPool } from '../host/src/capabilities/http/client.js';
import { createHost } from '../host/src/index.js';
import { ledgerCalls } from '../host/src/ledger/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const N = Number(process.env.BENCH_REQUESTS ?? 2000);
const work = mkdtempSync(join(tmpdir(), 'ice-bench-egress-'));

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
  res.end('ok');
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;
const url = `http://127.0.0.1:${port}/ping`;

async function timed(label: string, n: number, one: () => Promise<unknown>): Promise<[string, number]> {
  for (let i = 0; i < 50; i++) await one(); // warm-up: connections, JIT
  const t = performance.now();
  for (let i = 0; i < n; i++) await one();
  return [label, ((performance.now() - t) * 1000) / n];
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const direct = () =>
  new Promise<void>((resolve, reject) => {
    const req = httpRequest(url, { agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });

const pool = new EgressPool({ allowedFor: () => [parseCidr('127.0.0.1')!] });
const target = new URL(url);
const client = async () => {
  const result = await pool.send({ method: 'GET', url: target, headers: [] }, { timeoutMs: 5000, maxResponseBytes: 1024 });
  if (!result.ok) throw new Error(result.message);
};

try {
  const rows: [string, number][] = [];
  rows.push(await timed('1 node:http, keep-alive (baseline)', N, direct));
  rows.push(await timed('2 global fetch (undici)', N, async () => (await fetch(url)).arrayBuffer()));
  rows.push(await timed('3 ICE egress client alone', N, client));

  const wasm = (await buildGuest(join(root, 'guests', 'http-driver'))).component;
  const host = await createHost({ stateDir: join(work, 'state'), workers: 1 });
  const loaded = await host.load(wasm, {
    version: 1,
    component: 'bench-egress',
    limits: { timeoutMs: 600_000, fuel: 1e13, maxOutputBytes: 64 * 1024 * 1024 },
    grants: { log: {}, http: { allow: [{ url }], maxCalls: 1e9 } },
  });
  const lines = (n: number) => Array.from({ length: n }, () => `GET\t${url}`).join('\n');
  await loaded.run(lines(50));
  const started = performance.now();
  const result = await loaded.run(lines(N));
  const perCall = ((performance.now() - started) * 1000) / N;
  if (!result.ok || result.calls !== N) throw new Error(`the bench run failed: ${result.ok ? `${result.calls} calls` : result.error}`);
  // As the guest sees one call (its result record's duration: decision, intent, bridge, host-side fetch, record).
  const durations = ledgerCalls(host.readRun(result.runId).map((r) => r.record))
    .flatMap((call) => (call.durationUs === undefined ? [] : [call.durationUs]))
    .sort((a, b) => a - b);
  rows.push(['4 guest http.fetch through ICE, one call (median, from the ledger)', durations[durations.length >> 1]!]);
  rows.push(['5 the same, per call of the whole run (guest work included)', perCall]);
  host.close();

  const base = rows[0]![1];
  console.log(`\nHTTP GET to a local server, keep-alive, ${N} sequential requests each (µs per request)\n`);
  console.log(`${'path'.padEnd(66)} ${'µs/req'.padStart(8)}  vs baseline   added`);
  for (const [label, us] of rows) {
    console.log(`${label.padEnd(66)} ${us.toFixed(1).padStart(8)}  ${(us / base).toFixed(2).padStart(6)}x  ${(us - base >= 0 ? '+' : '') + (us - base).toFixed(1).padStart(7)} µs`);
  }
} finally {
  pool.close();
  agent.destroy();
  server.close();
  rmSync(work, { recursive: true, force: true });
}
