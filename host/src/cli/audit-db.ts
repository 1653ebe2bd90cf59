/**
 * `ice audit verify --db <postgres://…>`: verifies a cluster's shared ledger (cluster/verify.ts) with
 * the cluster's key from ICE_LEDGER_KEY. Exit codes as `ice audit verify`: 0 intact, 1 a check failed,
 * 2 usage, 4 intact but needs a look (a run ended by recovery, or runs in flight).
 */
import { parseArgs } from 'node:util';
import { ClusterStore, redact } from '../cluster/store.js';
import { verifyCluster } from '../cluster/verify.js';
import { LEDGER_KEY_ENV } from '../storage/ledger-key.js';
import { UsageError } from './args.js';
import { EXIT, type Io } from './io.js';
import { AUDIT_USAGE } from './usage.js';

export async function verifyShared(argv: string[], io: Io): Promise<number> {
  let values: { db?: string };
  try {
    ({ values } = parseArgs({ args: argv, options: { db: { type: 'string' } }, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`ice audit verify --db: ${error instanceof Error ? error.message : String(error)} (with --db the whole shared ledger is verified)\nusage: ${AUDIT_USAGE}`);
  }
  const url = values.db ?? '';
  if (!/^postgres(ql)?:\/\//u.test(url)) throw new UsageError(`ice audit verify: --db takes the cluster's PostgreSQL URL (postgres://…)\nusage: ${AUDIT_USAGE}`);
  const secret = process.env[LEDGER_KEY_ENV];
  if (secret === undefined || secret.length < 32) throw new UsageError(`ice audit verify --db: set ${LEDGER_KEY_ENV} to the cluster's ledger key (the one its hosts run with)`);
  let store: ClusterStore;
  try {
    store = await ClusterStore.open(url, { max: 1, migrate: false });
  } catch (error) {
    throw new UsageError(`ice audit verify: cannot read the cluster database ${redact(url)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    const result = await verifyCluster(store, Buffer.from(secret, 'utf8'));
    if (!result.ok) {
      const where = result.run === undefined ? '' : ` run ${result.run}${result.seq === undefined ? '' : ` at seq ${result.seq}`}`;
      io.stdout(`FAILED${where}: ${result.reason}\n`);
      return EXIT.checkFailed;
    }
    const lines = [
      `ok: ${result.records} records in ${result.runs} runs of ${result.agents} agents verified (shared ledger ${redact(url)}; run-starts chained per agent, ${result.checkpoints} signed checkpoints)`,
    ];
    if (result.newestCheckpoint) lines.push(`newest checkpoint: ${result.newestCheckpoint.at} signature ${result.newestCheckpoint.signature} (keep it elsewhere: it proves which runs existed then)`);
    for (const found of result.recovered ?? []) {
      lines.push(`recovered: run ${found.run} was ended by recovery (its host stopped); recovery found ${found.records} records, the last seq ${found.lastSeq}: records after it, if any, are gone`);
    }
    if (result.inFlight) lines.push(`in flight: ${result.inFlight} runs (not checked to their end)`);
    io.stdout(`${lines.join('\n')}\n`);
    return result.recovered || result.inFlight ? 4 : EXIT.ok;
  } finally {
    await store.close();
  }
}
