/**
 * ice:agent/kv — the component's persistent memory: keys checked against the typed read/write
 * matchers, sizes against the grant, data in the component's own namespace of the state database.
 * Writes are state effects: each commits with its ledger record (the kv view is a fold of them).
 */
import type { z } from 'zod';
import type * as KvInterface from '../../generated/interfaces/ice-agent-kv.js';
import { quote, utf8Bytes } from '../../core/text.js';
import { allow, ask, askDetail, deny, invalid, overLimit, type Decided, type Refusal, type Verdict } from '../../core/verdict.js';
import { askTimeout, compileMatchers, firstMatch, maxCalls, messages, patternList, size, strictObject, type Matcher } from '../../policy/index.js';
import type { KvStore } from '../../views/kv-store.js';
import { fail, unit, type AbiAnswer } from '../abi.js';
import { RefusedEffect, type Grant, type IceCapability } from '../define.js';

/** kv.keys answers at most this many keys; a larger listing must use a longer prefix. */
export const KV_KEYS_MAX = 10_000;

export const KV_LIMITS = Object.freeze({ maxValueBytes: 16 * 1024 * 1024, maxKeyBytes: 4096, maxKeys: 10_000_000, maxTotalBytes: 64 * 1024 * 1024 * 1024 } as const);

/**
 * The component's kv quota when the policy does not set one: what a component may keep across all its
 * runs (keys, and UTF-8 bytes of keys plus values). A write past it gets `limit`; deletes free quota.
 */
export const KV_QUOTA_DEFAULTS = Object.freeze({ maxKeys: 10_000, maxTotalBytes: 64 * 1024 * 1024 } as const);
const EXAMPLE = 'kv: { read: ["count"], write: ["count"] }';

export interface KvGrant extends Grant {
  readonly read: readonly Matcher[];
  /** Governs `set` and `delete`. */
  readonly write: readonly Matcher[];
  readonly maxValueBytes: number;
  readonly maxKeyBytes: number;
  /** Keys whose writes wait for the host's approver (when no `write` rule matches). */
  readonly ask: readonly Matcher[];
  readonly askTimeoutMs: number;
  /** Keys the component may keep (all runs together). */
  readonly maxKeys: number;
  /** UTF-8 bytes of keys plus values the component may keep (all runs together). */
  readonly maxTotalBytes: number;
}

const keyList = (rule: string, prefixExample: string, listExample: string) => patternList({ rule, prefixExample, listExample }).default(() => []);

const Settings = strictObject(
  {
    maxCalls: maxCalls(),
    read: keyList('grants.kv.read', 'history/*', '["count", "history/*"]'),
    write: keyList('grants.kv.write', 'history/*', '["count", "history/*"]'),
    maxValueBytes: size(KV_LIMITS.maxValueBytes, 65_536),
    maxKeyBytes: size(KV_LIMITS.maxKeyBytes, 256),
    // Writes to these keys wait for the host's approver (an `ask` rule); `write` wins when both match.
    ask: keyList('grants.kv.ask', 'config/*', '["config/*"]'),
    askTimeoutMs: askTimeout(),
    // The component's quota, across runs: a flood of writes ends in `limit`, not a full disk.
    maxKeys: size(KV_LIMITS.maxKeys, KV_QUOTA_DEFAULTS.maxKeys),
    maxTotalBytes: size(KV_LIMITS.maxTotalBytes, KV_QUOTA_DEFAULTS.maxTotalBytes),
  },
  (got) => messages.grantNotSettings(EXAMPLE, got),
).superRefine((kv, ctx) => {
  // A pattern longer than the longest key the component may use can never match: almost surely a mistake.
  for (const list of ['read', 'write', 'ask'] as const) {
    kv[list].forEach((text, index) => {
      const bytes = utf8Bytes(text);
      if (bytes > kv.maxKeyBytes) {
        ctx.addIssue({
          code: 'custom',
          path: [list, index],
          message: messages.badPattern(text, `${bytes} bytes, longer than grants.kv.maxKeyBytes (${kv.maxKeyBytes}); shorten it or raise maxKeyBytes`),
        });
      }
    });
  }
});

type Settings = z.output<typeof Settings>;

export const kv: IceCapability<'kv', typeof KvInterface, KvGrant> = {
  kind: 'ice',
  name: 'kv',
  summary: "the component's persistent key-value memory",
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: Settings, { rule }) =>
      Object.freeze({
        mode: 'grant',
        rule,
        maxCalls: settings.maxCalls,
        read: compileMatchers(`${rule}.read`, settings.read),
        write: compileMatchers(`${rule}.write`, settings.write),
        maxValueBytes: settings.maxValueBytes,
        maxKeyBytes: settings.maxKeyBytes,
        ask: compileMatchers(`${rule}.ask`, settings.ask),
        askTimeoutMs: settings.askTimeoutMs,
        maxKeys: settings.maxKeys,
        maxTotalBytes: settings.maxTotalBytes,
      }),
  },
  // Writes commit with their record, so the kv view is exactly the fold of the ledger (views/kv-fold.ts).
  functions: { get: { effect: 'local' }, set: { effect: 'state' }, delete: { effect: 'state' }, keys: { effect: 'local' } },
  hostThreadKeys: (grant) => (grant.ask.length > 0 ? [`${grant.rule}.ask`] : []),
  operations(grant, run) {
    const namespace = run.component;
    const store = run.services.kv;
    const kvStore = (): KvStore => {
      // The host always provides the store; a run without one cannot read or write anything: fail closed.
      if (!store) throw new Error('this run has no kv store');
      return store;
    };

    /** The quota refusal of a set, if it would take the component past maxKeys or maxTotalBytes (an overwrite counts its size difference). */
    function overQuota(store: KvStore, key: string, value: string): Refusal | undefined {
      const usage = store.usage(namespace);
      const previous = store.entryBytes(namespace, key);
      const keys = usage.keys + (previous === undefined ? 1 : 0);
      const entry = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
      const bytes = usage.bytes - (previous ?? 0) + entry;
      if (previous === undefined && keys > grant.maxKeys) {
        return overLimit(
          `${grant.rule}.maxKeys`,
          `kv.set(${quote(key)}): component "${namespace}" has ${usage.keys} keys, ${grant.rule}.maxKeys (${grant.maxKeys}); ` +
            `delete keys it no longer needs or raise ${grant.rule}.maxKeys in its policy`,
        );
      }
      // A write that does not grow the total is always allowed (a policy may have lowered the quota).
      if (bytes > grant.maxTotalBytes && bytes > usage.bytes) {
        return overLimit(
          `${grant.rule}.maxTotalBytes`,
          `kv.set(${quote(key)}): component "${namespace}" would keep ${bytes} bytes of keys and values, over ${grant.rule}.maxTotalBytes ` +
            `(${grant.maxTotalBytes}; ${usage.bytes} in use); delete keys or raise ${grant.rule}.maxTotalBytes in its policy`,
        );
      }
      return undefined;
    }

    function checkKey(fn: string, key: string): Verdict | undefined {
      if (key.length === 0) return invalid(`${grant.rule}.keys`, `kv.${fn}: the key is empty; keys are 1 to ${grant.maxKeyBytes} bytes`);
      const bytes = utf8Bytes(key);
      if (bytes > grant.maxKeyBytes) {
        return invalid(`${grant.rule}.maxKeyBytes`, `kv.${fn}: the key is ${bytes} bytes, over ${grant.rule}.maxKeyBytes (${grant.maxKeyBytes})`);
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
        `kv.${fn}(${quote(key)}) denied for component "${run.component}": no ${access} rule matches; add ${quote(key)} to ${grant.rule}.${access}`,
      );
    }

    return {
      get: {
        decide: ([key]) => decideKey('get', key, grant.read, 'read'),
        // null, not undefined: jco lowers both to none, and the ledger then shows none as a value, not as unit.
        perform: ([key]) => kvStore().get(namespace, key) ?? null,
      },
      set: {
        decide([key, value]) {
          const verdict = decideKey('set', key, grant.write, 'write');
          if (verdict.decision !== 'allow' && verdict.decision !== 'ask') return verdict;
          const bytes = utf8Bytes(value);
          if (bytes > grant.maxValueBytes) {
            return overLimit(`${grant.rule}.maxValueBytes`, `kv.set(${quote(key)}): the value is ${bytes} bytes, over ${grant.rule}.maxValueBytes (${grant.maxValueBytes})`);
          }
          return verdict.decision === 'ask' ? { ...verdict, detail: askDetail('value', value) } : verdict;
        },
        perform([key, value]) {
          // Inside the write's transaction (a state effect): the usage read, the check and the write see
          // one snapshot no concurrent run of the component can change in between.
          const refused = overQuota(kvStore(), key, value);
          if (refused) return new RefusedEffect(refused);
          kvStore().set(namespace, key, value);
          return undefined;
        },
      },
      delete: {
        decide: ([key]) => decideKey('delete', key, grant.write, 'write'),
        perform([key]) {
          kvStore().delete(namespace, key);
          return undefined;
        },
      },
      keys: {
        decide([prefix]) {
          if (utf8Bytes(prefix) > grant.maxKeyBytes) {
            return invalid(`${grant.rule}.maxKeyBytes`, `kv.keys: the prefix is longer than ${grant.rule}.maxKeyBytes (${grant.maxKeyBytes})`);
          }
          const rule = grant.read.find((r) => coversPrefix(r, prefix));
          if (rule) return allow(rule.rule);
          return deny(
            `${grant.rule}.read`,
            `kv.keys(${quote(prefix)}) denied for component "${run.component}": no read rule covers keys starting with ${quote(prefix)}; ` +
              `add ${quote(`${prefix}*`)} to ${grant.rule}.read`,
          );
        },
        perform([prefix]) {
          // Only keys the component may read are listed, and only they count towards the cap: a listing
          // must not reveal what a get would deny, not even how many such keys there are.
          const keys = kvStore().keysWhere(namespace, prefix, KV_KEYS_MAX + 1, (key) => firstMatch(grant.read, key) !== undefined);
          if (keys.length > KV_KEYS_MAX) {
            return new RefusedEffect(overLimit(`${grant.rule}.keys`, `kv.keys(${quote(prefix)}) matches more than ${KV_KEYS_MAX} keys; list with a longer prefix`));
          }
          return keys;
        },
      },
    };
  },
  // get → result<option<string>, error>: option tag at 4, ptr 8, len 12 · set/delete → result<_, error>
  // · keys → result<list<string>, error>: ok ptr at 4, len at 8, elements (ptr, len) of 8 bytes.
  binding: (abi, { get, set, delete: del, keys }) => ({
    get: (kp, kl, ret) => {
      const answer = get!(abi.string(kp!, kl!)) as AbiAnswer;
      if (answer.tag === 'err') return fail(abi, ret!, 4, answer.val);
      const value = answer.val as string | null | undefined;
      if (value === null || value === undefined) {
        const p = abi.area(ret!, 8);
        abi.u8(p, 0);
        abi.u8(p + 4, 0);
        return;
      }
      const [ptr, n] = abi.lowerString(value);
      const p = abi.area(ret!, 16);
      abi.u8(p, 0);
      abi.u8(p + 4, 1);
      abi.u32(p + 8, ptr);
      abi.u32(p + 12, n);
    },
    set: (kp, kl, vp, vl, ret) => unit(abi, ret!, set!(abi.string(kp!, kl!), abi.string(vp!, vl!)) as AbiAnswer),
    delete: (kp, kl, ret) => unit(abi, ret!, del!(abi.string(kp!, kl!)) as AbiAnswer),
    keys: (pp, pl, ret) => {
      const answer = keys!(abi.string(pp!, pl!)) as AbiAnswer;
      if (answer.tag === 'err') return fail(abi, ret!, 4, answer.val);
      const list = answer.val as string[];
      const lowered = list.map((key) => abi.lowerString(key));
      const elements = list.length === 0 ? 4 : abi.alloc(list.length * 8, 4);
      lowered.forEach(([ptr, n], i) => {
        abi.u32(elements + i * 8, ptr);
        abi.u32(elements + i * 8 + 4, n);
      });
      const p = abi.area(ret!, 12);
      abi.u8(p, 0);
      abi.u32(p + 4, elements);
      abi.u32(p + 8, list.length);
    },
  }),
};

/** A read rule covers a listing when some key it matches can start with the prefix. */
function coversPrefix(rule: Matcher, prefix: string): boolean {
  if (rule.kind === 'any') return true;
  if (rule.kind === 'exact') return rule.text.startsWith(prefix);
  return rule.text.startsWith(prefix) || prefix.startsWith(rule.text);
}
