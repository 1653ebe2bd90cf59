/** Reading the http-driver guest's output and a run's call records, for the egress tests. */
import type { CallRecord, StoredRecord } from '../host/src/ledger/index.js';

export type Line = { ok: true; status: number; headers: string; body: string } | { ok: false; kind: string; message: string };

const unhex = (text: string) => Buffer.from(text, 'hex').toString('utf8');

/** The http-driver's output, one entry per request line. */
export function parseDriverOutput(output: string): Line[] {
  return output.split('\n').map((line) => {
    const [tag, a = '', b = '', c = ''] = line.split(' ');
    return tag === 'ok' ? { ok: true, status: Number(a), headers: unhex(b), body: unhex(c) } : { ok: false, kind: a, message: unhex(b) };
  });
}

/** The run's call records, grouped per guest call (a call's redirect hops follow it). */
export function callGroups(records: readonly StoredRecord[]): CallRecord[][] {
  const groups: CallRecord[][] = [];
  for (const { record } of records) {
    if (record.type !== 'call') continue;
    if (record.hop === undefined) groups.push([record]);
    else groups.at(-1)!.push(record);
  }
  return groups;
}

export const line = (method: string, url: string, ...fields: string[]) => [method, url, ...fields].join('\t');

