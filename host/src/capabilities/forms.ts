/**
 * Ledger forms: how a call's arguments and results are written into the ledger, and read back by
 * replay. Plain values (strings, numbers, byte lists, string lists) go as they are; a WIT record is
 * recorded field by field (`{ fields: { method, url, headers, body } }`), so each field follows the
 * audit capture rules on its own: the method and status stay readable while a large body becomes its
 * digest. A capability whose values are records gives its own form, built from the helpers here.
 */
import type { Capturable, Captured } from '../core/capture.js';
import { Unrecorded, type LedgerForm } from './define.js';

/** Values as they are: what every function without records uses. */
export const PLAIN_FORM: LedgerForm = {
  args: (args) => args as Capturable[],
  result: (value) => value as Capturable,
  decode(recorded) {
    if ('fields' in recorded) throw new Unrecorded('a record where the function returns none');
    return plain(recorded);
  },
};

/** The fields of a recorded WIT record. */
export function fields(recorded: Captured): { readonly [name: string]: Captured } {
  if (!('fields' in recorded)) throw new Unrecorded('not recorded as a record');
  return recorded.fields;
}

/** A recorded plain value back into the value: bytes from hex, the rest as recorded. */
export function plain(recorded: Captured | undefined): unknown {
  if (recorded === undefined) throw new Unrecorded('a field is missing');
  if ('hex' in recorded) return new Uint8Array(Buffer.from(recorded.hex, 'hex'));
  if ('value' in recorded) return recorded.value;
  throw new Unrecorded('recorded as a digest');
}

interface Pair {
  readonly name: string;
  readonly value: string;
}

/** Headers as `name: value` lines: readable in an audit, and one string each for capture. */
export const headerLines = (headers: readonly Pair[]): string[] => headers.map((h) => `${h.name}: ${h.value}`);

export function fromHeaderLines(lines: readonly string[]): Pair[] {
  return lines.map((line) => {
    const colon = line.indexOf(': ');
    return { name: line.slice(0, colon), value: line.slice(colon + 2) };
  });
}
