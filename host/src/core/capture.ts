/**
 * How a value becomes part of the ledger: kept whole, or (digest capture, or over the size cap) as its
 * SHA-256 and byte size. Every argument and result a kernel records, and every field of a WIT record,
 * goes through `capture`; replay and the views read the same shapes back.
 */
import { sha256Hex } from './digest.js';

/**
 * A captured value: the value itself, or (digest mode) its SHA-256 and byte size, or bytes as hex.
 * Always JSON-serializable.
 */
export type Captured =
  | { value: string | number | boolean | null | string[] }
  | { sha256: string; size: number }
  | { hex: string }
  /** A WIT record (an http request, a model completion): each field captured by the same rules. */
  | { fields: { [name: string]: Captured } };

export type CaptureMode = 'full' | 'digest';

/** A value a capability call may take or return; a plain object is a WIT record. */
export type Capturable =
  | string
  | number
  | bigint
  | boolean
  | Uint8Array
  | readonly string[]
  | null
  | undefined
  | { readonly [field: string]: Capturable };

/**
 * Captures a call argument or result for the ledger.
 *
 * - `full`: strings, booleans, string lists as `{ value }`; bytes as `{ hex }`.
 * - `digest`: strings, string lists and bytes as `{ sha256, size }` — the digest and byte size of the
 *   UTF-8 text (a string list: of its JSON text, e.g. `["a","b"]`; bytes: of the bytes), so the record
 *   proves what was passed without holding it.
 * - `maxBytes` (audit.maxCaptureBytes): in `full` mode too, a string, list or byte array over this many
 *   bytes is recorded as `{ sha256, size }`, so a guest cannot make the ledger hold megabytes per call.
 * - In both modes numbers, bigints, booleans and null/undefined are kept as values: they are small,
 *   fixed-size, carry no free text, and replay needs them (clock readings, random u64s). A bigint is
 *   its decimal string (`{ value: "1732614780123456789" }`); a non-finite number is its name
 *   (`"NaN"`, `"Infinity"`, `"-Infinity"`), since JSON has no such numbers.
 */
export function capture(value: Capturable, mode: CaptureMode, maxBytes: number = Number.POSITIVE_INFINITY): Captured {
  if (value === undefined || value === null) return { value: null };
  switch (typeof value) {
    case 'number':
      return { value: Number.isFinite(value) ? value : String(value) };
    case 'bigint':
      return { value: value.toString(10) };
    case 'boolean':
      return { value };
    case 'string':
      // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: the exact count is only needed near the cap.
      return mode === 'full' && (value.length * 3 <= maxBytes || Buffer.byteLength(value, 'utf8') <= maxBytes)
        ? { value }
        : digestOf(value);
  }
  if (value instanceof Uint8Array) {
    return mode === 'full' && value.byteLength <= maxBytes
      ? { hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') }
      : digestOf(value);
  }
  if (Array.isArray(value)) {
    const list = value.map(String);
    const json = JSON.stringify(list);
    return mode === 'full' && Buffer.byteLength(json, 'utf8') <= maxBytes ? { value: list } : digestOf(json);
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    // Each field by the same rules (and the same cap), so a record's small fields (a method, a status)
    // stay readable while a large body becomes its digest.
    const fields: { [name: string]: Captured } = {};
    for (const [name, field] of Object.entries(value as { readonly [field: string]: Capturable })) fields[name] = capture(field, mode, maxBytes);
    return { fields };
  }
  throw new TypeError(`capture: unsupported value of type ${typeof value}`);
}

function digestOf(data: string | Uint8Array): Captured {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { sha256: sha256Hex(bytes), size: bytes.byteLength };
}
