/**
 * ice:agent/kv — the component's persistent memory: keys checked against the typed read/write
 * matchers, sizes against the grant, data in the component's own namespace of the state database.
 */
import type * as KvInterface from '../generated/interfaces/ice-agent-kv.js';
import { firstMatch, type KvGrant, type Matcher } from '../policy/index.js';
import type { KvStore } from '../state/kv-store.js';
import {
  allow,
  ask,
  deny,
  invalid,
  overLimit,
  quote,
  RefusedEffect,
  utf8Bytes,
  type InterfaceOperations,
  type RunScope,
  type Decided,
  type Verdict,
} from './operation.js';

/** kv.keys answers at most this many keys; a larger listing must use a longer prefix. */
export const KV_KEYS_MAX = 10_000;

export function createKv(grant: KvGrant, scope: RunScope, store: KvStore): InterfaceOperations<typeof KvInterface> {
  const namespace = scope.component;

  function checkKey(fn: string, key: string): Verdict | undefined {
    if (key.length === 0) return invalid(`${grant.rule}.keys`, `kv.${fn}: the key is empty; keys are 1 to ${grant.maxKeyBytes} bytes`);
    const size = utf8Bytes(key);
    if (size > grant.maxKeyBytes) {
      return invalid(
        `${grant.rule}.maxKeyBytes`,
        `kv.${fn}: the key is ${size} bytes, over ${grant.rule}.maxKeyBytes (${grant.maxKeyBytes})`,
      );
    }
    return undefined;
  }

  function decideKey(fn: string, key: string, rules: readonly Matcher[], access: 'read' | 'write'): Decided {
    const bad = checkKey(fn, key);
    if (bad) return bad;
    const rule = firstMatch(rules, key);
    if (rule) return allow(rule.rule);
    // A write no write rule allows may still be allowed by the approver, under an ask rule.
    const asked = access === 'write' ? firstMatch(grant.ask, key) : undefined;
    if (asked) return ask(asked.rule, grant.askTimeoutMs, `${fn} ${quote(key)}`);
    return deny(
      `${grant.rule}.${access}`,
      `kv.${fn}(${quote(key)}) denied for component "${scope.component}": no ${access} rule matches; ` +
        `add ${quote(key)} to ${grant.rule}.${access}`,
    );
  }

  /** A read rule covers a listing when some key it matches can start with the prefix. */
  function coversPrefix(rule: Matcher, prefix: string): boolean {
    if (rule.kind === 'any') return true;
    if (rule.kind === 'exact') return rule.text.startsWith(prefix);
    return rule.text.startsWith(prefix) || prefix.startsWith(rule.text);
  }

  return {
    get: {
      decide: ([key]) => decideKey('get', key , grant.read, 'read'),
      // null, not undefined: jco lowers both to none, and the ledger then shows none as a value, not as unit.
      perform: ([key]) => store.get(namespace, key ) ?? null,
    },
    set: {
      writesState: true,
      decide([key, value]) {
        const verdict = decideKey('set', key , grant.write, 'write');
        if (verdict.decision !== 'allow' && verdict.decision !== 'ask') return verdict;
        const size = utf8Bytes(value );
        if (size > grant.maxValueBytes) {
          return overLimit(
            `${grant.rule}.maxValueBytes`,
            `kv.set(${quote(key )}): the value is ${size} bytes, over ${grant.rule}.maxValueBytes (${grant.maxValueBytes})`,
          );
        }
        return verdict;
      },
      perform([key, value]) {
        store.set(namespace, key , value );
        return undefined;
      },
    },
    delete: {
      writesState: true,
      decide: ([key]) => decideKey('delete', key , grant.write, 'write'),
      perform([key]) {
        store.delete(namespace, key );
        return undefined;
      },
    },
    keys: {
      decide([prefix]) {
        const p = prefix ;
        if (utf8Bytes(p) > grant.maxKeyBytes) {
          return invalid(`${grant.rule}.maxKeyBytes`, `kv.keys: the prefix is longer than ${grant.rule}.maxKeyBytes (${grant.maxKeyBytes})`);
        }
        const rule = grant.read.find((r) => coversPrefix(r, p));
        if (rule) return allow(rule.rule);
        return deny(
          `${grant.rule}.read`,
          `kv.keys(${quote(p)}) denied for component "${scope.component}": no read rule covers keys starting with ${quote(p)}; ` +
            `add ${quote(`${p}*`)} to ${grant.rule}.read`,
        );
      },
      perform([prefix]) {
        // Only keys the component may read are listed: a listing must not reveal what a get would deny.
        const keys = store.keys(namespace, prefix , KV_KEYS_MAX + 1);
        if (keys.length > KV_KEYS_MAX) {
          return new RefusedEffect(
            overLimit(`${grant.rule}.keys`, `kv.keys(${quote(prefix )}) matches more than ${KV_KEYS_MAX} keys; list with a longer prefix`),
          );
        }
        return keys.filter((key) => firstMatch(grant.read, key) !== undefined);
      },
    },
  };
}
