/**
 * An operator's writes to an agent's kv data (seeding it, fixing it, importing it), made without the
 * agent running: each batch is recorded as an *operator run* of that component — a run-start whose
 * `invoke` says who did what (`{ kind: 'operator', by, action }`), one `kv.set` / `kv.delete` call
 * record per write, allowed under the rule `operator`, and a run-end — committed in the same
 * transaction as the writes themselves. So the kv view stays a fold of the ledger (`ice state verify`
 * and `rebuild` see these writes like any guest's), `ice audit` shows who changed what, and nothing
 * reaches the kv table unrecorded.
 *
 * Operator runs are not component runs: there is no component digest (`operator`) and no policy
 * (`source: operator`); replay refuses them.
 */
import { capture } from '../core/capture.js';
import { sha256Hex } from '../core/digest.js';
import { ICE_VERSION } from '../core/version.js';
import { newRunId, type LedgerStore, type RunCounts } from '../ledger/index.js';
import type { StateDb } from '../storage/db.js';
import { KV_DELETE_CALL, KV_SET_CALL } from './kv-fold.js';
import type { KvStore } from './kv-store.js';

export const OPERATOR_RULE = 'operator';
/** What an operator run records as its component digest and policy source: none ran, none applied. */
export const OPERATOR_SOURCE = 'operator';

export type OperatorKvWrite = { readonly op: 'set'; readonly key: string; readonly value: string } | { readonly op: 'delete'; readonly key: string };

export interface OperatorRun {
  readonly runId: string;
  readonly ledgerRoot: string;
  readonly counts: RunCounts;
  /** For each delete, whether the key existed. */
  readonly deleted: readonly boolean[];
}

/** A write an operator may not make (a bad key or value): nothing was written or recorded. */
export class OperatorInputError extends Error {
  override readonly name = 'OperatorInputError';
}

const MAX_KEY_BYTES = 4096;
const MAX_VALUE_BYTES = 16 * 1024 * 1024;
const MAX_WRITES = 100_000;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function check(write: OperatorKvWrite, i: number): void {
  const where = `write ${i + 1} (${write.op} ${JSON.stringify(write.key.slice(0, 40))})`;
  if (typeof write.key !== 'string' || write.key.length === 0) throw new OperatorInputError(`${where}: the key must be a non-empty string`);
  if (LONE_SURROGATE.test(write.key)) throw new OperatorInputError(`${where}: the key is not valid Unicode (a lone surrogate)`);
  if (Buffer.byteLength(write.key) > MAX_KEY_BYTES) throw new OperatorInputError(`${where}: the key is over ${MAX_KEY_BYTES} bytes`);
  if (write.op === 'set') {
    if (typeof write.value !== 'string') throw new OperatorInputError(`${where}: the value must be a string`);
    if (LONE_SURROGATE.test(write.value)) throw new OperatorInputError(`${where}: the value is not valid Unicode (a lone surrogate)`);
    if (Buffer.byteLength(write.value) > MAX_VALUE_BYTES) throw new OperatorInputError(`${where}: the value is over ${MAX_VALUE_BYTES} bytes`);
  }
}

/**
 * Applies `writes` to `component`'s kv namespace as one operator run, all or nothing, committed
 * durably. `by`: who (a user name); `action`: what, e.g. `kv set`, `kv import <file>`.
 */
export function operatorKvWrites(
  services: { readonly state: StateDb; readonly ledger: LedgerStore; readonly kv: KvStore },
  request: { readonly component: string; readonly by: string; readonly action: string; readonly writes: readonly OperatorKvWrite[] },
): OperatorRun {
  const { state, ledger, kv } = services;
  const { component, by, action, writes } = request;
  if (writes.length === 0) throw new OperatorInputError('nothing to write');
  if (writes.length > MAX_WRITES) throw new OperatorInputError(`${writes.length} writes in one operator run; at most ${MAX_WRITES}`);
  writes.forEach(check);
  const started = performance.now();
  const document = { operator: by, action };
  return state.durable(() =>
    state.transaction(() => {
      const writer = ledger.startRun({
        run: newRunId(),
        component: { name: component, digest: OPERATOR_SOURCE },
        policy: { digest: sha256Hex(JSON.stringify(document)), source: OPERATOR_SOURCE, document },
        input: capture('', 'full'),
        invoke: { kind: 'operator', by, action },
        host: { ice: ICE_VERSION },
      });
      const deleted: boolean[] = [];
      for (const write of writes) {
        const t = performance.now();
        if (write.op === 'set') kv.set(component, write.key, write.value);
        else deleted.push(kv.delete(component, write.key));
        writer.appendCall({
          call: write.op === 'set' ? KV_SET_CALL : KV_DELETE_CALL,
          // Whole, whatever the size: the kv view is rebuilt from these.
          args: write.op === 'set' ? [capture(write.key, 'full'), capture(write.value, 'full')] : [capture(write.key, 'full')],
          decision: 'allow',
          rule: OPERATOR_RULE,
          outcome: { ok: null },
          durationUs: Math.round((performance.now() - t) * 1000),
        });
      }
      const durationUs = Math.round((performance.now() - started) * 1000);
      const ledgerRoot = writer.end({ outcome: 'ok', output: capture(`${writes.length} write${writes.length === 1 ? '' : 's'}`, 'full'), durationUs });
      return { runId: writer.run, ledgerRoot, counts: writer.counts, deleted };
    }),
  );
}
