/**
 * One ledger key for every state a ledger test opens (ICE_LEDGER_KEY, set when this module loads), so
 * a test can rehash as an attacker who holds the key would and reach the checks behind the hash; and
 * verify with that key. Each test file runs in its own worker, so the key is per file.
 */
import { capture, recordHasher, verifyRun as verifyRunWithKey, verifyStore as verifyStoreWithKey, type CallInput } from '../host/src/ledger/index.js';

export const LEDGER_KEY = 'ledger-test-key-0123456789abcdef0123456789';
process.env.ICE_LEDGER_KEY = LEDGER_KEY;
export const key = Buffer.from(LEDGER_KEY, 'utf8');
export const keyedHash = recordHasher(key);
export const verifyRun: typeof verifyRunWithKey = (records, options = {}) => verifyRunWithKey(records, { key, ...options });
export const verifyStore: typeof verifyStoreWithKey = (store, options = {}) => verifyStoreWithKey(store, { key, ...options });

/** Call `i` of a test run: a `kv.get` of `k<i>`, every third one denied (batches mix decisions). */
export const call = (i: number): CallInput => ({
  call: 'ice:agent/kv@0.1.0#get',
  args: [capture(`k${i}`, 'full')],
  decision: i % 3 === 0 ? 'deny' : 'allow',
  rule: 'grants.kv.read[0]',
  outcome: i % 3 === 0 ? { err: { kind: 'denied', message: `kv.get("k${i}") denied` } } : { ok: capture(`v${i}`, 'full') },
  durationUs: 3,
});
