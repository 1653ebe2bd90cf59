/**
 * The kv view as state derived from events. Each granted kv write — a `kv.set` or `kv.delete` call
 * record with decision `allow` and outcome `ok` — is an event; folding them in store order (ledger
 * row id, which is commit order across concurrent runs), per component namespace, gives what the
 * `kv` table must hold. The table is a materialized view that `rebuildKv` can recompute and `diffKv`
 * can check.
 *
 * Why the fold is exact: the kernel commits a granted write in the same transaction as its record,
 * so the table never holds a write the ledger does not show, and a write whose record says `err` (a
 * host fault) was rolled back. A run that ended `trap`, `limit` or `incomplete` keeps the writes it
 * committed, so they are events too. Write arguments are recorded whole whatever
 * `audit.maxCaptureBytes` says; only a policy with `audit.capture: digest` leaves just
 * `{ sha256, size }`. Then rebuild cannot reproduce the value and refuses, while verify still
 * checks it, by hashing the view's value.
 *
 * Keys are identified by the SHA-256 of their UTF-8 text, so a write recorded with a digested key and
 * one recorded with the whole key (a policy changed between runs) are the same key to the fold.
 *
 * The fold trusts the stored bodies; `ice audit verify` checks the hash chain they belong to.
 */
import { callName } from '../core/world.js';
import { sha256Hex } from '../core/digest.js';
import { formatCaptured } from '../ledger/format.js';
import type { StateDb } from '../storage/db.js';
import { digestLabel, GrantedCallScanner, recordedText, type GrantedCall, type LedgerSource, type RecordedText } from './events.js';

export const KV_SET_CALL = callName('kv', 'set');
export const KV_DELETE_CALL = callName('kv', 'delete');

/** One granted kv write. */
export interface KvEvent {
  readonly id: number;
  readonly run: string;
  readonly seq: number;
  readonly namespace: string;
  readonly capture: 'full' | 'digest';
  readonly op: 'set' | 'delete';
  readonly key: RecordedText;
  /** For `set`. */
  readonly value?: RecordedText;
}

/** A key the events leave set, and the event that last set it. */
export interface KvSlot {
  /** The key; undefined when every event since it was last created recorded only its digest. */
  readonly key: string | undefined;
  readonly keySha256: string;
  readonly value: RecordedText;
  readonly id: number;
  readonly run: string;
  readonly seq: number;
  readonly capture: 'full' | 'digest';
}

export interface KvFold {
  /** namespace → SHA-256 of the key → slot. A namespace is present once any write of it was folded. */
  readonly namespaces: Map<string, Map<string, KvSlot>>;
  readonly events: number;
}

export interface RebuildResult {
  readonly events: number;
  /** The components rebuilt, by name, with the keys each now has. */
  readonly components: ReadonlyArray<{ name: string; keys: number }>;
  /** View rows deleted before the fold was written. */
  readonly removed: number;
}

export type KvDifference =
  | { kind: 'different'; namespace: string; key: string; view: string; ledger: RecordedText; run: string; seq: number }
  | { kind: 'missing'; namespace: string; key: string | undefined; keySha256: string; ledger: RecordedText; run: string; seq: number }
  | { kind: 'extra'; namespace: string; key: string; view: string };

export interface KvDiff {
  readonly events: number;
  /**
   * kv writes whose intent has no result (an ask the run stopped during, or one still waiting): not in
   * the fold, since a write commits with its result record; listed so verify says so rather than hide them.
   */
  readonly unknown: readonly { readonly run: string; readonly seq: number; readonly call: string }[];
  /** Components in the fold or the view. */
  readonly components: number;
  /** Keys the fold leaves set. */
  readonly keys: number;
  /** Keys whose ledger value is a digest, checked by hashing the view's value. */
  readonly digestChecked: number;
  readonly differences: KvDifference[];
}

/** The ledger does not hold what a rebuild would need (digest capture). Nothing was changed. */
export class KvFoldError extends Error {
  override readonly name = 'KvFoldError';
}

/** The granted kv writes, in store order (of runs of `component` only, if given). */
export function kvEvents(source: LedgerSource, component?: string): Generator<KvEvent> {
  return toKvEvents(new GrantedCallScanner(KV_WRITE_CALLS, component).scan(source));
}

/** Applies events in order: a set replaces the key's slot, a delete removes it. */
export function foldKvEvents(events: Iterable<KvEvent>): KvFold {
  const fold = { namespaces: new Map<string, Map<string, KvSlot>>(), events: 0 };
  for (const event of events) applyKvEvent(fold, event);
  return fold;
}

/**
 * A fold that can be brought up to date: `advance` folds the writes committed since the previous
 * call. Rebuild advances it over the whole ledger first, without the write lock (runs keep going),
 * then once more under the lock, for the few writes committed in between.
 */
export class KvFolder implements KvFold {
  readonly namespaces = new Map<string, Map<string, KvSlot>>();
  events = 0;
  private readonly scanner: GrantedCallScanner;

  constructor(component?: string) {
    this.scanner = new GrantedCallScanner(KV_WRITE_CALLS, component);
  }

  advance(source: LedgerSource): this {
    for (const event of toKvEvents(this.scanner.scan(source))) applyKvEvent(this, event);
    return this;
  }

  /** Writes whose outcome is unknown in what was folded (see KvDiff.unknown). */
  unknown(): KvDiff['unknown'] {
    return this.scanner.open().map(({ run, seq, call }) => ({ run, seq, call }));
  }
}

/** The fold of the ledger's kv writes (of `component` only, if given). */
export function foldLedger(source: LedgerSource, component?: string): KvFolder {
  return new KvFolder(component).advance(source);
}

/**
 * The kv content the ledger implies: namespace → key → value. Throws KvFoldError if a key's value
 * (or the key) was recorded only as a digest.
 */
export function foldKv(source: LedgerSource, component?: string): Map<string, Map<string, string>> {
  return reproduce(foldLedger(source, component), () => undefined);
}

/**
 * Replaces the kv view (of `component`, or all of it) with the fold of the ledger, in one write
 * transaction. The fold is completed under the write lock, so no run can commit a write between the
 * fold and the replacement; the bulk of it is read before, so runs are not held up for the whole
 * ledger (a kv write waits at most the busy timeout, 5 s, for the lock). Refuses, changing nothing,
 * when the fold cannot be reproduced.
 */
export function rebuildKv(state: StateDb, component?: string): RebuildResult {
  const folder = new KvFolder(component).advance(state);
  return state.transaction(() => {
    folder.advance(state);
    const content = reproduce(folder, (namespace, slot) => viewKeyNamed(state, namespace, slot.keySha256));
    if (component !== undefined && !content.has(component)) content.set(component, new Map());
    const removed = deleteView(state, component);
    const insert = state.db.prepare<[string, string, string]>('INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)');
    for (const [namespace, entries] of content) {
      for (const [key, value] of entries) insert.run(namespace, key, value);
    }
    const components = [...content].map(([name, entries]) => ({ name, keys: entries.size })).sort((a, b) => compare(a.name, b.name));
    return { events: folder.events, components, removed };
  });
}

/**
 * The differences between the kv view and the fold (of `component`, or everything), read in one
 * snapshot so a run committing meanwhile cannot show up as a difference.
 */
export function diffKv(state: StateDb, component?: string): KvDiff {
  return state.db
    .transaction(() => {
      const fold = foldLedger(state, component);
      const view = readView(state, component);
      return { ...compareView(fold, view), unknown: fold.unknown() };
    })
    .deferred();
}

/** One line per difference, e.g. `counter: "count" is "5" in the view but "3" in the ledger`. */
export function describeDifference(d: KvDifference): string {
  switch (d.kind) {
    case 'different':
      return `${d.namespace}: ${showText(d.key)} is ${showText(d.view, MAX_VALUE)} in the view but ${showRecorded(d.ledger)} in the ledger`;
    case 'missing':
      return `${d.namespace}: ${d.key === undefined ? `key sha256:${d.keySha256.slice(0, 12)}…` : showText(d.key)} is ${showRecorded(d.ledger)} in the ledger but missing from the view`;
    case 'extra':
      return `${d.namespace}: ${showText(d.key)} is ${showText(d.view, MAX_VALUE)} in the view but not in the ledger`;
  }
}

// --- folding -------------------------------------------------------------------------------------

const KV_WRITE_CALLS = [KV_SET_CALL, KV_DELETE_CALL];

function* toKvEvents(calls: Iterable<GrantedCall>): Generator<KvEvent> {
  for (const { id, component: namespace, capture, record } of calls) {
    const op = record.call === KV_SET_CALL ? 'set' : 'delete';
    const key = recordedText(record.args[0], record, 'key');
    const value = op === 'set' ? recordedText(record.args[1], record, 'value') : undefined;
    yield { id, run: record.run, seq: record.seq, namespace, capture, op, key, value };
  }
}

function applyKvEvent(fold: { namespaces: Map<string, Map<string, KvSlot>>; events: number }, event: KvEvent): void {
  fold.events++;
  let slots = fold.namespaces.get(event.namespace);
  if (slots === undefined) fold.namespaces.set(event.namespace, (slots = new Map()));
  const keySha256 = 'text' in event.key ? sha256Hex(event.key.text) : event.key.sha256;
  if (event.op === 'delete' || event.value === undefined) {
    slots.delete(keySha256);
    return;
  }
  // A digested key is still the key an earlier whole record named: keep the name.
  const key = 'text' in event.key ? event.key.text : slots.get(keySha256)?.key;
  slots.set(keySha256, { key, keySha256, value: event.value, id: event.id, run: event.run, seq: event.seq, capture: event.capture });
}

// --- rebuild -------------------------------------------------------------------------------------

/**
 * The fold as plain values, or a KvFoldError naming the earliest write it cannot reproduce.
 * `nameKey` recovers the text of a key recorded only as a digest, for the message.
 */
function reproduce(fold: KvFold, nameKey: (namespace: string, slot: KvSlot) => string | undefined): Map<string, Map<string, string>> {
  const content = new Map<string, Map<string, string>>();
  const opaque: Array<{ namespace: string; slot: KvSlot }> = [];
  for (const [namespace, slots] of fold.namespaces) {
    const entries = new Map<string, string>();
    for (const slot of slots.values()) {
      if (slot.key !== undefined && 'text' in slot.value) entries.set(slot.key, slot.value.text);
      else opaque.push({ namespace, slot });
    }
    content.set(namespace, entries);
  }
  const first = opaque.sort((a, b) => a.slot.id - b.slot.id)[0];
  if (first !== undefined) throw digestRefusal(first.namespace, first.slot, nameKey(first.namespace, first.slot), opaque.length);
  return content;
}

function digestRefusal(namespace: string, slot: KvSlot, knownKey: string | undefined, count: number): KvFoldError {
  const name = slot.key ?? knownKey;
  const key = name === undefined ? `the key with sha256:${slot.keySha256.slice(0, 12)}…` : showText(name);
  const parts = [slot.key === undefined ? 'key' : '', 'text' in slot.value ? '' : 'value'].filter(Boolean).join(' and ');
  const why =
    slot.capture === 'digest'
      ? `the component's policy uses digest capture (audit.capture: digest)`
      : 'it was recorded over audit.maxCaptureBytes by an older ICE';
  const more = count > 1 ? `; ${count - 1} more ${count === 2 ? 'key is' : 'keys are'} like it` : '';
  return new KvFoldError(
    `cannot rebuild the kv of component "${namespace}": run ${slot.run} seq ${slot.seq} set ${key}, but the ledger holds ` +
      `only the sha256 of its ${parts} because ${why}${more}. Nothing was changed. To rebuild, set audit.capture: full ` +
      `in the component's policy (a key is rebuildable again once a run writes it), or rebuild other components with --component <name>`,
  );
}

/** The view's key whose SHA-256 is `keySha256`, if the view has it (to name a digested key). */
function viewKeyNamed(state: StateDb, namespace: string, keySha256: string): string | undefined {
  const keys = state.db.prepare<[string], { key: string }>('SELECT key FROM kv WHERE namespace = ?').all(namespace);
  return keys.find(({ key }) => sha256Hex(key) === keySha256)?.key;
}

function deleteView(state: StateDb, component: string | undefined): number {
  const { db } = state;
  return component === undefined
    ? db.prepare('DELETE FROM kv').run().changes
    : db.prepare('DELETE FROM kv WHERE namespace = ?').run(component).changes;
}

// --- verify --------------------------------------------------------------------------------------

interface ViewRow {
  namespace: string;
  key: string;
  value: string;
}

function readView(state: StateDb, component: string | undefined): ViewRow[] {
  const sql = 'SELECT namespace, key, value FROM kv';
  return component === undefined
    ? state.db.prepare<[], ViewRow>(`${sql} ORDER BY namespace, key`).all()
    : state.db.prepare<[string], ViewRow>(`${sql} WHERE namespace = ? ORDER BY key`).all(component);
}

function compareView(fold: KvFold, view: readonly ViewRow[]): Omit<KvDiff, 'unknown'> {
  const differences: KvDifference[] = [];
  const matched = new Set<KvSlot>();
  let digestChecked = 0;
  for (const row of view) {
    const slot = fold.namespaces.get(row.namespace)?.get(sha256Hex(row.key));
    if (slot === undefined) {
      differences.push({ kind: 'extra', namespace: row.namespace, key: row.key, view: row.value });
      continue;
    }
    matched.add(slot);
    if ('sha256' in slot.value) digestChecked++;
    if (!sameValue(row.value, slot.value)) {
      differences.push({ kind: 'different', namespace: row.namespace, key: row.key, view: row.value, ledger: slot.value, run: slot.run, seq: slot.seq });
    }
  }
  let keys = 0;
  for (const [namespace, slots] of fold.namespaces) {
    keys += slots.size;
    for (const slot of slots.values()) {
      if (matched.has(slot)) continue;
      differences.push({ kind: 'missing', namespace, key: slot.key, keySha256: slot.keySha256, ledger: slot.value, run: slot.run, seq: slot.seq });
    }
  }
  differences.sort((a, b) => compare(a.namespace, b.namespace) || compare(a.key ?? '', b.key ?? ''));
  const components = new Set([...fold.namespaces.keys(), ...view.map((row) => row.namespace)]).size;
  return { events: fold.events, components, keys, digestChecked, differences };
}

/** A digest-recorded value is compared by hashing the view's value: equal digests, equal values. */
function sameValue(viewValue: string, recorded: RecordedText): boolean {
  if ('text' in recorded) return viewValue === recorded.text;
  return sha256Hex(viewValue) === recorded.sha256 && Buffer.byteLength(viewValue, 'utf8') === recorded.size;
}

// --- display -------------------------------------------------------------------------------------

const MAX_KEY = 300;
const MAX_VALUE = 60;

/** Quoted, with terminal control characters escaped (keys and values come from guests). */
function showText(text: string, max = MAX_KEY): string {
  return formatCaptured({ value: text }, max);
}

function showRecorded(recorded: RecordedText): string {
  return 'text' in recorded ? showText(recorded.text, MAX_VALUE) : digestLabel(recorded);
}

/** A stable order for listings (UTF-16 order: SQLite's, except between astral and U+E000–U+FFFF characters). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
