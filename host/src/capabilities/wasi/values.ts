/**
 * WASI values in the ledger. A WASI call's arguments and results are records, variants, lists, u64s,
 * byte lists and resources; they are written as capturable values with typed markers (`$u64`, `$list`,
 * `$resource`; `$` cannot start a WIT name) so that each part follows the capture rules and replay can
 * turn a record back into exactly the value the guest was given.
 */
import type { Capturable, Captured } from '../../core/capture.js';

/** A resource as the ledger names it: `output-stream#3` (ids count up per run, in creation order). */
export interface ResourceRef {
  readonly ledgerName: string;
}

export function isResourceRef(value: unknown): value is ResourceRef {
  return typeof value === 'object' && value !== null && typeof (value as { ledgerName?: unknown }).ledgerName === 'string';
}

const MAX_DEPTH = 16;

export function toLedger(value: unknown, depth = 0): Capturable {
  if (depth > MAX_DEPTH) return { $opaque: 'nested too deeply' };
  if (value === undefined || value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'number':
      return value;
    case 'bigint':
      return { $u64: value.toString(10) };
    case 'function':
    case 'symbol':
      return { $opaque: typeof value };
  }
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (isResourceRef(value)) return { $resource: value.ledgerName };
  if (Array.isArray(value)) {
    if (value.every((item) => typeof item === 'string')) return value as string[];
    const out: { [field: string]: Capturable } = { $list: value.length };
    value.forEach((item, index) => {
      out[String(index)] = toLedger(item, depth + 1);
    });
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return { $opaque: (value as object).constructor?.name ?? 'object' };
  const out: { [field: string]: Capturable } = {};
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) out[key] = toLedger(field, depth + 1);
  return out;
}

export class NotReplayable extends Error {
  override readonly name = 'NotReplayable';
}

/** A recorded value back into the value (replay); `resource` turns `output-stream#3` into the run's object. */
export function fromLedger(captured: Captured, resource: (ledgerName: string) => unknown): unknown {
  if ('sha256' in captured) throw new NotReplayable('a value was recorded as its digest');
  if ('hex' in captured) return new Uint8Array(Buffer.from(captured.hex, 'hex'));
  if ('value' in captured) return captured.value === null ? undefined : Array.isArray(captured.value) ? [...captured.value] : captured.value;
  const fields = captured.fields;
  const plain = (key: string) => {
    const field = fields[key];
    return field && 'value' in field ? field.value : undefined;
  };
  if ('$u64' in fields) return BigInt(plain('$u64') as string);
  if ('$resource' in fields) return resource(plain('$resource') as string);
  if ('$opaque' in fields) throw new NotReplayable(`a value the ledger could only name (${String(plain('$opaque'))})`);
  if ('$list' in fields) {
    const length = plain('$list') as number;
    return Array.from({ length }, (_, index) => fromLedger(fields[String(index)] ?? { value: null }, resource));
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) out[key] = fromLedger(field, resource);
  return out;
}
