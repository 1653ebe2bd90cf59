/**
 * The cluster's chains of run-starts, one per agent, and the signed checkpoints over their heads.
 *
 * In one SQLite state every run-start names the previous one in its own `prev` (one global chain, one
 * writer lock). Across hosts a global chain would make every run-start wait for every other host's, so
 * a run-start keeps the `prev` its host wrote, and the cluster chains run-starts per agent outside the
 * records: row n of `ice_runs` links the hash of the agent's n-th run-start to row n - 1's link. Only the
 * holder of the agent's lease appends (fenced), so each chain has one writer. Removing a run from the
 * middle of a chain breaks the next link; removing the newest runs of a chain is caught by a checkpoint
 * taken after them, which signs every chain's (n, link).
 */
import { createHmac } from 'node:crypto';

export interface ChainHead {
  readonly n: number;
  readonly link: string;
}

/** The link of run-start `startHash` as run `n` of `agent`'s chain after `previous` (null for n = 1). */
export function chainLink(key: Buffer, agent: string, n: number, run: string, startHash: string, previous: string | null): string {
  return createHmac('sha256', key).update(JSON.stringify(['ice-run-chain', agent, n, run, startHash, previous])).digest('hex');
}

/** The heads, as a checkpoint stores them: sorted by agent, so the text (and the signature) is canonical. */
export function checkpointHeads(heads: ReadonlyMap<string, ChainHead>): string {
  return JSON.stringify([...heads.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([agent, head]) => [agent, head.n, head.link]));
}

export function checkpointSignature(key: Buffer, at: string, heads: string): string {
  return createHmac('sha256', key).update(`ice-checkpoint\n${at}\n${heads}`).digest('hex');
}
