/**
 * Verifies a cluster's shared ledger offline, with the cluster's key: every run's own chain (the
 * records of ledger/verify.ts, rows streamed in append order in pages), every agent's chain of
 * run-starts (`ice_runs`: contiguous, each link recomputed, each naming its run-start's actual hash),
 * that every run is in exactly one agent chain, and that every signed checkpoint is authentic and its
 * heads are still in their chains — so a run removed from the middle or the end of a chain, a row
 * edited or dropped, or a forged checkpoint all fail. And the shared kv must be exactly the fold of
 * the shared ledger's granted kv writes (views/kv-fold.ts): state derived from the validated events.
 */
import { sha256Hex } from '../core/digest.js';
import { StoreVerifier, type LedgerRow, type VerifyResult } from '../ledger/index.js';
import { KvFolder } from '../views/kv-fold.js';
import { chainLink, checkpointSignature } from './chain.js';
import type { ClusterStore } from './store.js';

export type ClusterVerifyResult =
  | (VerifyResult & { ok: true; agents: number; checkpoints: number; newestCheckpoint?: { at: string; signature: string } })
  | { ok: false; reason: string; run?: string; seq?: number };

const PAGE = 5000;

export async function verifyCluster(store: ClusterStore, key: Buffer): Promise<ClusterVerifyResult> {
  const client = await store.pool.connect();
  try {
    // One snapshot for every read: hosts may be writing while this runs.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const inFlight = new Set((await client.query<{ run: string }>('SELECT run FROM ice_running')).rows.map((r) => r.run));
    const verifier = new StoreVerifier({ key, inFlight, runStarts: 'external', legacyRuns: 0 });
    const starts = new Map<string, string>();
    const kv = new KvFolder();
    let after = 0;
    for (;;) {
      const { rows } = await client.query<LedgerRow & { id: string }>('SELECT id, run, seq, type, hash, body FROM ice_ledger WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE]);
      const page = rows.map((row) => ({ ...row, id: Number(row.id) }));
      for (const row of page) {
        const failure = verifier.add(row);
        if (failure) return failure as ClusterVerifyResult;
        if (row.seq === 0) starts.set(row.run, row.hash);
      }
      kv.advance(page);
      if (rows.length < PAGE) break;
      after = Number(rows.at(-1)!.id);
    }
    const runs = verifier.finish();
    if (!runs.ok) return runs as ClusterVerifyResult;

    const links = new Map<string, string>();
    const chained = new Set<string>();
    let agent = '';
    let previous: string | null = null;
    let n = 0;
    let lastAgent: string | undefined;
    let agents = 0;
    let afterKey: [string, number] = ['', 0];
    for (;;) {
      const { rows } = await client.query<{ agent: string; n: string; run: string; start_hash: string; link: string }>(
        'SELECT agent, n, run, start_hash, link FROM ice_runs WHERE (agent, n) > ($1, $2) ORDER BY agent, n LIMIT $3',
        [afterKey[0], afterKey[1], PAGE],
      );
      for (const row of rows) {
        if (row.agent !== lastAgent) {
          lastAgent = agent = row.agent;
          previous = null;
          n = 0;
          agents++;
        }
        n++;
        const at = `run ${n} of agent ${agent}'s chain`;
        if (Number(row.n) !== n) return { ok: false, reason: `${at} is missing: the chain jumps to ${row.n} (a run was removed)`, run: row.run };
        const start = starts.get(row.run);
        if (start === undefined) return { ok: false, reason: `${at} names run ${row.run}, which has no run-start in the ledger (the run was removed)`, run: row.run };
        if (start !== row.start_hash) return { ok: false, reason: `${at} names another run-start hash than run ${row.run}'s (the run-start was replaced)`, run: row.run };
        if (chainLink(key, agent, n, row.run, row.start_hash, previous) !== row.link) return { ok: false, reason: `${at}: its link does not match (the chain was edited or rewritten without the key)`, run: row.run };
        if (chained.has(row.run)) return { ok: false, reason: `run ${row.run} is in more than one place of the agent chains`, run: row.run };
        chained.add(row.run);
        links.set(`${agent}\0${n}`, row.link);
        previous = row.link;
      }
      if (rows.length < PAGE) break;
      afterKey = [rows.at(-1)!.agent, Number(rows.at(-1)!.n)];
    }
    for (const run of starts.keys()) {
      if (!chained.has(run)) return { ok: false, reason: `run ${run} is in no agent's chain of run-starts (its chain row was removed, or the run was inserted)`, run };
    }

    const checkpoints = (await client.query<{ id: string; at: string; heads: string; signature: string }>('SELECT id, at, heads, signature FROM ice_checkpoints ORDER BY id')).rows;
    for (const cp of checkpoints) {
      if (checkpointSignature(key, cp.at, cp.heads) !== cp.signature) return { ok: false, reason: `checkpoint ${cp.id} (${cp.at}): its signature does not match (forged or edited)` };
      let heads: [string, number, string][];
      try {
        heads = JSON.parse(cp.heads) as [string, number, string][];
      } catch {
        return { ok: false, reason: `checkpoint ${cp.id}: heads are not JSON` };
      }
      for (const [a, headN, link] of heads) {
        if (links.get(`${a}\0${headN}`) !== link) {
          return { ok: false, reason: `checkpoint ${cp.id} (${cp.at}) signed run ${headN} of agent ${a}'s chain, which is gone or different now: runs were removed from the end of the chain` };
        }
      }
    }
    const view = (await client.query<{ namespace: string; key: string; value: string }>('SELECT namespace, key, value FROM ice_kv')).rows;
    const kvFailure = compareKv(kv, view);
    if (kvFailure) return { ok: false, reason: kvFailure };
    await client.query('COMMIT');
    const newest = checkpoints.at(-1);
    return { ...runs, ok: true, agents, checkpoints: checkpoints.length, ...(newest ? { newestCheckpoint: { at: newest.at, signature: newest.signature } } : {}) };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

/** The first difference between the shared kv and the fold of the shared ledger's writes, in words. */
function compareKv(fold: KvFolder, view: readonly { namespace: string; key: string; value: string }[]): string | undefined {
  const byHash = new Map<string, { key: string; value: string }>();
  for (const row of view) byHash.set(`${row.namespace}\0${sha256Hex(row.key)}`, row);
  for (const [namespace, slots] of fold.namespaces) {
    for (const [keySha256, slot] of slots) {
      const found = byHash.get(`${namespace}\0${keySha256}`);
      const at = `set by run ${slot.run} seq ${slot.seq}`;
      const name = JSON.stringify(slot.key ?? `sha256:${keySha256}`);
      if (found === undefined) return `kv: ${namespace} ${name} is ${at} in the shared ledger but missing from ice_kv (the kv view was edited)`;
      const same = 'text' in slot.value ? slot.value.text === found.value : slot.value.sha256 === sha256Hex(found.value);
      if (!same) return `kv: ${namespace} ${name} in ice_kv is not the value ${at} in the shared ledger (the kv view was edited)`;
      byHash.delete(`${namespace}\0${keySha256}`);
    }
  }
  const extra = byHash.values().next();
  if (!extra.done) {
    const row = [...byHash.entries()][0]!;
    return `kv: ${row[0].split('\0')[0]} ${JSON.stringify(row[1].key)} is in ice_kv but no granted write in the shared ledger set it (the kv view was edited)`;
  }
  return undefined;
}
