/**
 * A run's ledger budget (`limits.maxLedgerBytes`): the UTF-8 bytes of the record bodies a run appends,
 * its run-start included. The kernel checks each record against it before the record is queued; a call
 * whose record would pass it gets `limit` and a compact record instead, drawn from a fixed reserve, as
 * is the run-end, so a run over its budget still ends properly and its ledger never passes
 * `maxLedgerBytes + LEDGER_RESERVE_BYTES`.
 *
 * Checking must be cheap (one per import call) yet exact at the edge, so it is two-staged: a bound
 * computed from string lengths (no serialization) decides almost every call; only when the bound says
 * a record might not fit is the queue committed and the record measured exactly (serialized as the
 * writer would).
 */
import type { QueuedInput } from './records.js';

/** What a run's ledger may hold beyond `limits.maxLedgerBytes`: its limit records and its run-end. */
export const LEDGER_RESERVE_BYTES = 64 * 1024;

/** The part of the reserve kept for the run-end: limit records stop (the run is stopped) before it. */
export const RUN_END_ROOM_BYTES = 16 * 1024;

/** The rule of a call refused because its record would pass the run's ledger budget. */
export const LEDGER_RULE = 'limits.maxLedgerBytes';

/** In such a call's (compact) record, an argument over this many bytes is kept as its digest and size. */
export const COMPACT_ARG_BYTES = 256;

/**
 * An upper bound of the UTF-8 bytes of `JSON.stringify(value)`: a UTF-16 unit never takes more than 6
 * bytes (a `\u` escape with four hex digits), a number never more than 24 characters.
 */
export function jsonBytesBound(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return 6 * value.length + 2;
    case 'number':
    case 'bigint':
      return 24;
    case 'boolean':
      return 5;
    case 'undefined':
      return 0;
    case 'object': {
      if (value === null) return 4;
      if (Array.isArray(value)) {
        let sum = 2 + value.length;
        for (const item of value) sum += jsonBytesBound(item);
        return sum;
      }
      let sum = 2;
      for (const key in value) sum += 6 * key.length + 4 + jsonBytesBound((value as Record<string, unknown>)[key]);
      return sum;
    }
    default:
      return 0;
  }
}

/** The fields every record has besides a queued input's own (version, type, run, seq, time, previous hash). */
const ENVELOPE_BOUND = 512;

/** An upper bound of the bytes of the record `input` becomes in run `run`. */
export function recordBytesBound(run: string, input: QueuedInput): number {
  return ENVELOPE_BOUND + 6 * run.length + jsonBytesBound(input);
}
