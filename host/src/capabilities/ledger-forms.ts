/**
 * How WIT records are written into the ledger, and read back by replay. A request or a response is
 * recorded field by field (`{ fields: { method, url, headers, body } }`), headers as `name: value` lines,
 * so each field follows the audit capture rules on its own: the method and status stay readable while a
 * large body becomes its digest. Replay turns a recorded result back into the value the guest was given.
 */
import type { Capturable, Captured } from '../ledger/index.js';

export interface LedgerForm {
  /** The WIT arguments as capturable values. */
  args(args: readonly unknown[]): Capturable[];
  /** The ok value as a capturable value. */
  result(value: unknown): Capturable;
  /** A recorded ok value back into the WIT value (replay); throws when it was not recorded whole. */
  decode(recorded: Captured): unknown;
}

interface Header {
  readonly name: string;
  readonly value: string;
}

const headerLines = (headers: readonly Header[]): string[] => headers.map((h) => `${h.name}: ${h.value}`);

function fromHeaderLines(lines: readonly string[]): Header[] {
  return lines.map((line) => {
    const colon = line.indexOf(': ');
    return { name: line.slice(0, colon), value: line.slice(colon + 2) };
  });
}

class Unrecorded extends Error {}

function fields(recorded: Captured): { [name: string]: Captured } {
  if (!('fields' in recorded)) throw new Unrecorded('not recorded as a record');
  return recorded.fields;
}
function plain(recorded: Captured | undefined): unknown {
  if (recorded === undefined) throw new Unrecorded('a field is missing');
  if ('hex' in recorded) return new Uint8Array(Buffer.from(recorded.hex, 'hex'));
  if ('value' in recorded) return recorded.value;
  throw new Unrecorded('recorded as a digest');
}

const HTTP_FETCH: LedgerForm = {
  args([request]) {
    const r = request as { method: string; url: string; headers: Header[]; body?: Uint8Array };
    return [{ method: r.method, url: r.url, headers: headerLines(r.headers), body: r.body ?? null }];
  },
  result(value) {
    const r = value as { status: number; headers: Header[]; body: Uint8Array; address?: string; injected?: readonly string[] };
    return {
      status: r.status,
      headers: headerLines(r.headers),
      body: r.body,
      // Where the host connected and which secrets it added (by name): audit facts, not part of the answer.
      ...(r.address === undefined ? {} : { address: r.address }),
      ...(r.injected && r.injected.length > 0 ? { injected: [...r.injected] } : {}),
    };
  },
  decode(recorded) {
    const f = fields(recorded);
    return { status: plain(f.status) as number, headers: fromHeaderLines(plain(f.headers) as string[]), body: plain(f.body) as Uint8Array };
  },
};

const MODEL_COMPLETE: LedgerForm = {
  args([request]) {
    const r = request as { model: string; messages: { role: string; content: string }[]; maxTokens: number };
    return [
      {
        model: r.model,
        messageCount: r.messages.length,
        messageBytes: r.messages.reduce((n, m) => n + Buffer.byteLength(m.content, 'utf8'), 0),
        messages: r.messages.map((m) => `${m.role}: ${m.content}`),
        maxTokens: r.maxTokens,
      },
    ];
  },
  result(value) {
    const c = value as { text: string; usage: { inputTokens: number; outputTokens: number } };
    return { text: c.text, usage: { inputTokens: c.usage.inputTokens, outputTokens: c.usage.outputTokens } };
  },
  decode(recorded) {
    const f = fields(recorded);
    const usage = fields(f.usage ?? { value: null });
    return { text: plain(f.text) as string, usage: { inputTokens: plain(usage.inputTokens) as number, outputTokens: plain(usage.outputTokens) as number } };
  },
};

const FORMS: ReadonlyMap<string, LedgerForm> = new Map([
  ['ice:agent/http@0.1.0#fetch', HTTP_FETCH],
  ['ice:agent/model@0.1.0#complete', MODEL_COMPLETE],
]);

/** The ledger form of a call whose arguments or result are WIT records; undefined for plain values. */
export function ledgerForm(call: string): LedgerForm | undefined {
  return FORMS.get(call);
}

export function isUnrecorded(error: unknown): boolean {
  return error instanceof Unrecorded;
}
