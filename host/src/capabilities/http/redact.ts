/**
 * Redaction of host-held secrets from what a server (or provider) sends back. A server that echoes a
 * secret rarely echoes it byte for byte: it base64s it, percent-encodes it into a URL, escapes it in
 * JSON, prints it in hex. So a secret is searched for in each of its common forms, and so is the whole
 * injected header value (`Bearer <secret>`, `Basic <secret>`): its base64 is not the base64 of the
 * secret, and for a short secret it is the only form long enough to be found reliably.
 *
 * Every form is a fixed byte string found with `Buffer.indexOf` (no regular expression), so the cost
 * is linear in the body, once per form. Forms are searched longest first, and the search repeats until
 * no form is left: a replacement can never leave a form behind, and if one is (a pathological secret
 * that the marker itself spells) the caller fails closed.
 *
 * Short secrets: every form is redacted at any length, so a 1-byte secret turns every occurrence of
 * that byte (and of its two-character hex, its base64, ...) into the marker. That mangles bodies and
 * is deliberate: the alternative is handing the secret over. What redaction cannot do is stop a guest
 * that controls what the server echoes from guessing a short secret (the guess that comes back
 * redacted is the secret); only a long random secret resists that.
 */

export interface Secret {
  /** The secret's name, shown in the marker. */
  readonly name: string;
  /** The secret's value. */
  readonly value: string;
  /** The whole header value it was sent in (`Bearer <value>`), when that differs from the value. */
  readonly sent?: string;
}

/** Rounds of re-searching before giving up: each round only runs when the previous one changed something. */
const MAX_ROUNDS = 4;

export class Redactor {
  /** Each form with its marker, longest first. */
  readonly #forms: readonly { needle: Buffer; mark: Buffer }[];

  constructor(secrets: readonly Secret[]) {
    const forms = new Map<string, { needle: Buffer; name: string }>();
    for (const secret of secrets) {
      const needles = [...formsOf(secret.value), ...(secret.sent !== undefined && secret.sent !== secret.value ? formsOf(secret.sent) : [])];
      for (const needle of needles) {
        const key = needle.toString('latin1');
        if (needle.length > 0 && !forms.has(key)) forms.set(key, { needle, name: secret.name });
      }
    }
    const all = [...forms.values()].sort((a, b) => b.needle.length - a.needle.length);
    const needles = all.map((f) => f.needle);
    // The marker must not spell a form itself, or redacting would put the secret back.
    this.#forms = all.map(({ needle, name }) => ({ needle, mark: markerFor(name, needles) }));
  }

  get empty(): boolean {
    return this.#forms.length === 0;
  }

  /** The bytes with every form replaced, or undefined if a form survives every round (fail closed). */
  bytes(input: Uint8Array): Uint8Array | undefined {
    if (this.#forms.length === 0) return input;
    let out = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let changed = false;
      for (const { needle, mark } of this.#forms) {
        let at = out.indexOf(needle);
        if (at === -1) continue;
        changed = true;
        const parts: Buffer[] = [];
        let from = 0;
        for (; at !== -1; at = out.indexOf(needle, from)) {
          parts.push(out.subarray(from, at), mark);
          from = at + needle.length;
        }
        parts.push(out.subarray(from));
        out = Buffer.concat(parts);
      }
      if (!changed) return out;
    }
    return this.#forms.some(({ needle }) => out.includes(needle)) ? undefined : out;
  }

  /**
   * A string carried as bytes (Node gives header values as latin1, one char per byte): redacted as those
   * bytes, so a UTF-8 echo in a header is found too. Undefined: fail closed, as for `bytes`.
   */
  latin1(text: string): string | undefined {
    if (this.#forms.length === 0) return text;
    const out = this.bytes(Buffer.from(text, 'latin1'));
    return out === undefined ? undefined : Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('latin1');
  }

  /** A message of ours or a provider's (UTF-8 text). Never fails: a survivor withholds the whole message. */
  text(text: string, otherwise = '[a message that contained a secret was withheld]'): string {
    if (this.#forms.length === 0) return text;
    const out = this.bytes(Buffer.from(text, 'utf8'));
    return out === undefined ? otherwise : Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('utf8');
  }
}

function markerFor(name: string, needles: readonly Buffer[]): Buffer {
  for (const candidate of [`[secret ${name}]`, '[redacted]', '***', '###', '~~~', '___']) {
    const mark = Buffer.from(candidate, 'utf8');
    if (!needles.some((n) => mark.includes(n))) return mark;
  }
  return Buffer.alloc(0);
}

/** The byte encodings of a value as a server would send it: UTF-8, and latin1 (how Node sends a header). */
function encodings(value: string): Buffer[] {
  const utf8 = Buffer.from(value, 'utf8');
  const out = [utf8];
  if (/^[\u0000-\u00ff]*$/u.test(value)) {
    const latin1 = Buffer.from(value, 'latin1');
    if (!latin1.equals(utf8)) out.push(latin1);
  }
  return out;
}

/** Every searched form of one value, as bytes (deduplicated by the caller). */
export function formsOf(value: string): Buffer[] {
  if (value === '') return [];
  const out: Buffer[] = [];
  const ascii = (s: string) => out.push(Buffer.from(s, 'latin1'));
  for (const bytes of encodings(value)) {
    out.push(bytes);
    ascii(bytes.toString('hex'));
    ascii(bytes.toString('hex').toUpperCase());
    for (const b64 of base64Forms(bytes)) ascii(b64);
    ascii(percent(bytes, false, false));
    ascii(percent(bytes, true, false));
    ascii(percent(bytes, false, true));
    ascii(percent(bytes, true, true));
  }
  // JSON string escapes: the minimal one JSON.stringify writes, with `\/` (PHP, some Java), and with
  // every non-ASCII or every char as a six-character \u escape with four hex digits (Python's ensure_ascii and friends), hex in either case.
  const json = JSON.stringify(value).slice(1, -1);
  for (const s of [json, json.replace(/\//gu, '\\/'), unicodeEscaped(value, false, false), unicodeEscaped(value, false, true), unicodeEscaped(value, true, false), unicodeEscaped(value, true, true)]) {
    out.push(Buffer.from(s, 'utf8'));
  }
  return out;
}

/**
 * base64 and base64url, unpadded (the padded form contains it). Also the forms of the value inside a
 * longer base64 run at byte offsets 1 and 2 (the characters that depend only on the value), when that
 * leaves at least 8 characters: a shorter run would match by chance, and the value is then caught by
 * the forms of the whole header value.
 */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift), bytes]);
    const std = padded.toString('base64').replace(/=+$/u, '');
    const start = Math.ceil((8 * shift) / 6);
    const total = 8 * padded.length;
    // The last char is whole only when the bits end on a char boundary; otherwise it depends on what follows.
    const end = shift === 0 ? std.length : Math.floor(total / 6);
    const run = std.slice(start, end);
    if (shift === 0 || run.length >= 8) {
      out.push(run, run.replace(/\+/gu, '-').replace(/\//gu, '_'));
    }
  }
  return out;
}

/** %XX of the bytes: only those encodeURIComponent escapes (`all` false) or every byte; hex upper or lower. */
function percent(bytes: Buffer, all: boolean, lower: boolean): string {
  let out = '';
  for (const byte of bytes) {
    const c = String.fromCharCode(byte);
    if (!all && byte < 0x80 && /[A-Za-z0-9\-_.!~*'()]/u.test(c)) out += c;
    else {
      const h = byte.toString(16).padStart(2, '0');
      out += `%${lower ? h : h.toUpperCase()}`;
    }
  }
  return out;
}

/** A JSON string body with non-ASCII (or every) UTF-16 unit as a \u escape (four hex digits), and the JSON escapes otherwise. */
function unicodeEscaped(value: string, all: boolean, lower: boolean): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (all || unit >= 0x7f || unit < 0x20 || unit === 0x22 || unit === 0x5c) {
      const h = unit.toString(16).padStart(4, '0');
      out += `\\u${lower ? h : h.toUpperCase()}`;
    } else out += value[i];
  }
  return out;
}
