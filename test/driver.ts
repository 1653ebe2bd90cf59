/** Reading the http-driver guest's output and a run's call records, for the egress tests. */
import { ledgerCalls, type LedgerCall, type StoredRecord } from '../host/src/ledger/index.js';

export type Line = { ok: true; status: number; headers: string; body: string } | { ok: false; kind: string; message: string };

const unhex = (text: string) => Buffer.from(text, 'hex').toString('utf8');

/** The http-driver's output, one entry per request line. */
export function parseDriverOutput(output: string): Line[] {
  return output.split('\n').map((line) => {
    const [tag, a = '', b = '', c = ''] = line.split(' ');
    return tag === 'ok' ? { ok: true, status: Number(a), headers: unhex(b), body: unhex(c) } : { ok: false, kind: a, message: unhex(b) };
  });
}

/** The run's calls, grouped per guest call (a call's redirect hops follow it). */
export function callGroups(records: readonly StoredRecord[]): LedgerCall[][] {
  const groups: LedgerCall[][] = [];
  for (const call of ledgerCalls(records.map((r) => r.record))) {
    if (call.hop === undefined) groups.push([call]);
    else groups.at(-1)!.push(call);
  }
  return groups;
}

export const line = (method: string, url: string, ...fields: string[]) => [method, url, ...fields].join('\t');

