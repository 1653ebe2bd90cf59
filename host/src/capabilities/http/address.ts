/**
 * Address classification for egress checks made at connect time.
 *
 * A host name is checked once it resolves and an IP-literal host is checked as written, but in
 * both cases the verdict must concern the address the socket really reaches. Runtimes have shipped
 * bypasses by checking a spelling instead of an address: numeric aliases of 127.0.0.1 (Deno
 * GHSA-v8fw-85r8-5m23), IPv6 forms that carry an IPv4 address, and names that resolve differently
 * at check time and connect time. So everything here works on bytes, unmaps the forms that carry
 * an IPv4 address before classifying, and denies any non-public address that no rule names.
 */

export interface Address {
  readonly family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
  /** The canonical spelling: dotted quad, or the WHATWG URL / RFC 5952 form of IPv6 (no brackets). */
  readonly text: string;
}

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unspecified'
  | 'cgnat'
  | 'metadata'
  | 'multicast'
  | 'broadcast'
  | 'reserved';

export interface Cidr {
  readonly family: 4 | 6;
  /** The network, host bits zero. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  readonly text: string;
}

export type AddressCheck = { ok: true } | { ok: false; class: AddressClass; reason: string };

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * One part of an inet_aton-style IPv4 address: decimal, 0x hex or leading-zero octal. These
 * forms are accepted (not refused) because the resolver and WHATWG URL both accept them; refusing
 * one here would only let a caller mistake it for a host name while the resolver still connects
 * to the address it denotes.
 */
function ipv4Part(part: string): number | undefined {
  let value: number;
  if (/^0[xX][0-9a-fA-F]*$/.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
  else if (/^0[0-7]+$/.test(part)) value = parseInt(part.slice(1), 8);
  else if (/^(0|[1-9][0-9]*)$/.test(part)) value = parseInt(part, 10);
  else return undefined;
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * IPv4 in every form inet_aton accepts: 1 to 4 parts, the last filling the remaining bytes
 * (`127.1`, `1.2.3` = 1.2.0.3, `2130706433`). A trailing dot is refused: inet_aton and
 * getaddrinfo refuse it too, and WHATWG URL strips it before a host ever reaches us.
 */
function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length > 4) return undefined;
  const values: number[] = [];
  for (const part of parts) {
    const value = ipv4Part(part);
    if (value === undefined) return undefined;
    values.push(value);
  }
  const last = values.pop() as number;
  if (values.some((v) => v > 255)) return undefined;
  const lastBytes = 4 - values.length;
  if (last >= 2 ** (8 * lastBytes)) return undefined;
  const bytes = new Uint8Array(4);
  values.forEach((v, i) => (bytes[i] = v));
  for (let i = 0; i < lastBytes; i++) bytes[3 - i] = Math.floor(last / 2 ** (8 * i)) % 256;
  return bytes;
}

/** Strict dotted quad, as the tail of an IPv6 address and in CIDR rules: no alias forms. */
function parseDottedQuad(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (i === parts.length - 1 && part.includes('.')) {
      const quad = parseDottedQuad(part);
      if (!quad) return undefined;
      groups.push(((quad[0] as number) << 8) | (quad[1] as number), ((quad[2] as number) << 8) | (quad[3] as number));
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0] as string);
    const tail = parseGroups(halves[1] as string);
    // An embedded IPv4 may only end the address, so it cannot sit before the `::`.
    if (!head || !tail || (halves[0] as string).includes('.')) return undefined;
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(text);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes).join('.');
}

/** Compresses the first longest run of two or more zero groups, as WHATWG URL serializes hosts. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function makeAddress(bytes: Uint8Array): Address {
  return bytes.length === 4
    ? { family: 4, bytes, text: formatIpv4(bytes) }
    : { family: 6, bytes, text: formatIpv6(bytes) };
}

/**
 * Parses an IP literal as a URL host or a resolver answer gives it. Undefined means "not an IP
 * literal we accept". A caller must not read undefined as "a host name, so fine" when `node:net`
 * `isIP` says otherwise: zone ids (`fe80::1%eth0`) are refused here because they are host-local
 * and name an interface, not a destination, yet `isIP` accepts them and Node would connect to
 * them without a lookup.
 */
export function parseAddress(text: string): Address | undefined {
  if (text.length === 0 || text.length > 64) return undefined;
  let inner = text;
  if (inner.startsWith('[') || inner.endsWith(']')) {
    if (!(inner.startsWith('[') && inner.endsWith(']'))) return undefined;
    inner = inner.slice(1, -1);
    if (!inner.includes(':')) return undefined;
  }
  if (inner.includes('%')) return undefined;
  const bytes = inner.includes(':') ? parseIpv6(inner) : parseIpv4(inner);
  return bytes ? makeAddress(bytes) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Unmapping

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

function allZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

const NAT64_WELL_KNOWN = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
const NAT64_LOCAL = [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01];
const MAPPED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/**
 * The IPv4 address an IPv6 address delivers to, if it is one of the forms that carry one. These
 * are unmapped because the packet reaches the IPv4 host: `::ffff:127.0.0.1` on a dual-stack
 * socket is loopback, a NAT64 gateway forwards `64:ff9b::a9fe:a9fe` to 169.254.169.254, and a
 * 6to4 relay forwards `2002:7f00:1::` towards 127.0.0.1. Judging the IPv6 spelling instead would
 * call all of these public.
 */
function embeddedIpv4(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length !== 16) return undefined;
  if (startsWith(bytes, MAPPED)) return bytes.slice(12, 16);
  if (startsWith(bytes, NAT64_WELL_KNOWN)) return bytes.slice(12, 16);
  // Local-use NAT64 (RFC 8215): the operator picks the prefix length and so where the IPv4
  // address sits; the /96 layout is the usual one. classify() also checks the other layouts.
  if (startsWith(bytes, NAT64_LOCAL)) return bytes.slice(12, 16);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6);
  // IPv4-compatible (deprecated, RFC 4291): `::a.b.c.d`, but not `::` and `::1`, which are IPv6's
  // own unspecified and loopback addresses.
  if (allZero(bytes, 0, 12) && !(allZero(bytes, 12, 15) && (bytes[15] === 0 || bytes[15] === 1))) {
    return bytes.slice(12, 16);
  }
  return undefined;
}

/** The address a connection really reaches: the carried IPv4 for forms that carry one, else itself. */
export function unmap(address: Address): Address {
  const v4 = embeddedIpv4(address.bytes);
  return v4 ? makeAddress(v4) : address;
}

// ---------------------------------------------------------------------------------------------
// Classification

function inPrefix(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  if (bytes.length !== network.length) return false;
  const full = Math.floor(prefix / 8);
  for (let i = 0; i < full; i++) if (bytes[i] !== network[i]) return false;
  const rest = prefix % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((bytes[full] as number) & mask) === ((network[full] as number) & mask);
}

function range(cidr: string): Cidr {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new Error(`bad built-in range ${cidr}`);
  return parsed;
}

/**
 * Cloud instance-metadata endpoints: they hand out credentials, so they are named apart from the
 * broader link-local, private and reserved ranges they sit in (168.63.129.16 is even public),
 * and checked first so a denial says what is actually at stake.
 */
const METADATA: readonly Cidr[] = [
  '169.254.169.254/32', // AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, ...
  '169.254.170.2/32', // AWS ECS task credentials
  'fd00:ec2::254/128', // AWS IMDS over IPv6
  '100.100.100.200/32', // Alibaba Cloud
  '168.63.129.16/32', // Azure WireServer
  '192.0.0.192/32', // Oracle Cloud
].map(range);

const RANGES: readonly (readonly [AddressClass, Cidr])[] = (
  [
    ['unspecified', '0.0.0.0/8'],
    ['unspecified', '::/128'],
    ['loopback', '127.0.0.0/8'],
    ['loopback', '::1/128'],
    ['broadcast', '255.255.255.255/32'],
    ['private', '10.0.0.0/8'],
    ['private', '172.16.0.0/12'],
    ['private', '192.168.0.0/16'],
    ['private', 'fc00::/7'],
    ['private', 'fec0::/10'], // site-local, deprecated but still routed by some stacks
    ['link-local', '169.254.0.0/16'],
    ['link-local', 'fe80::/10'],
    ['cgnat', '100.64.0.0/10'],
    ['multicast', '224.0.0.0/4'],
    ['multicast', 'ff00::/8'],
    ['reserved', '240.0.0.0/4'],
    ['reserved', '192.0.0.0/24'],
    ['reserved', '192.0.2.0/24'],
    ['reserved', '198.18.0.0/15'],
    ['reserved', '198.51.100.0/24'],
    ['reserved', '203.0.113.0/24'],
    ['reserved', '2001:db8::/32'],
    ['reserved', '3fff::/20'], // documentation, RFC 9637
    ['reserved', '100::/64'], // discard-only
  ] as const
).map(([cls, cidr]) => [cls, range(cidr)] as const);

function classifyBytes(bytes: Uint8Array): AddressClass {
  if (METADATA.some((m) => inPrefix(bytes, m.bytes, m.prefix))) return 'metadata';
  for (const [cls, cidr] of RANGES) if (inPrefix(bytes, cidr.bytes, cidr.prefix)) return cls;
  return 'public';
}

/** Where RFC 6052 puts the IPv4 address for the /48, /56 and /64 local-use NAT64 prefixes. */
const NAT64_LOCAL_LAYOUTS: readonly (readonly number[])[] = [
  [6, 7, 9, 10],
  [7, 9, 10, 11],
  [9, 10, 11, 12],
];

export function classify(address: Address): AddressClass {
  const cls = classifyBytes(unmap(address).bytes);
  // Which layout a local-use NAT64 prefix uses is the operator's choice, so if any layout would
  // reach a non-public address, take it that it does.
  if (cls === 'public' && address.family === 6 && startsWith(address.bytes, NAT64_LOCAL)) {
    for (const layout of NAT64_LOCAL_LAYOUTS) {
      const other = classifyBytes(Uint8Array.from(layout, (i) => address.bytes[i] as number));
      if (other !== 'public') return other;
    }
  }
  return cls;
}

// ---------------------------------------------------------------------------------------------
// CIDR rules

/**
 * Parses `address/prefix` (or a bare address, meaning that one address). Rules are written by
 * people, so only plain dotted quads and standard IPv6 are taken, and a range with host bits set
 * is refused rather than silently widened or narrowed: `10.0.0.1/8` is more likely a typo than
 * a wish for all of 10/8. A range of IPv6 forms that carry IPv4 (`::ffff:10.0.0.0/104`) becomes
 * the IPv4 range, since addresses are unmapped before they are matched.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (addressText.includes('%') || addressText.includes('[')) return undefined;
  const bytes = addressText.includes(':') ? parseIpv6(addressText) : parseDottedQuad(addressText);
  if (!bytes) return undefined;
  const bits = bytes.length * 8;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > bits) return undefined;
  }
  for (let bit = prefix; bit < bits; bit++) {
    if (((bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) return undefined;
  }
  // Only a range inside a carrier prefix denotes a set of IPv4 addresses. The carrier prefix alone
  // (`64:ff9b::/96`, `2002::/16`) stays IPv6 and so matches nothing once addresses are unmapped:
  // read as 0.0.0.0/0 it would quietly allow loopback and metadata to whoever wrote "NAT64". A
  // 6to4 range narrower than /48 (a site's subnet) has no IPv4 equivalent and stays IPv6 too.
  const v4 = embeddedIpv4(bytes);
  if (v4) {
    const sixToFour = bytes[0] === 0x20 && bytes[1] === 0x02;
    const start = sixToFour ? 16 : 96;
    if (prefix > start && (!sixToFour || prefix <= 48)) {
      const v4Prefix = prefix - start;
      return { family: 4, bytes: v4, prefix: v4Prefix, text: `${formatIpv4(v4)}/${v4Prefix}` };
    }
  }
  const text6 = bytes.length === 4 ? formatIpv4(bytes) : formatIpv6(bytes);
  return { family: bytes.length === 4 ? 4 : 6, bytes, prefix, text: `${text6}/${prefix}` };
}

/** Whether the range contains the address the connection really reaches (see `unmap`). */
export function cidrContains(cidr: Cidr, address: Address): boolean {
  const target = unmap(address);
  return target.family === cidr.family && inPrefix(target.bytes, cidr.bytes, cidr.prefix);
}

const ARTICLE: Record<AddressClass, string> = {
  public: 'a public',
  loopback: 'a loopback',
  private: 'a private',
  'link-local': 'a link-local',
  unspecified: 'an unspecified',
  cgnat: 'a carrier-grade NAT',
  metadata: 'a cloud metadata',
  multicast: 'a multicast',
  broadcast: 'a broadcast',
  reserved: 'a reserved',
};

/**
 * Public addresses pass; any other is denied unless a rule names it or its range, since reaching
 * the host's own network is the thing an agent must be granted explicitly.
 */
export function checkAddress(address: Address, allowed: readonly Cidr[]): AddressCheck {
  const target = unmap(address);
  const carried = classifyBytes(target.bytes);
  const cls = classify(address);
  if (cls === 'public') return { ok: true };
  // When only another local-use NAT64 layout is non-public, the unmapped address is not the one
  // at stake, so only a rule naming the IPv6 address itself can allow it.
  const alternate = carried === 'public';
  const named = alternate || target.text === address.text ? address.text : `${target.text} (written ${address.text})`;
  const ok = alternate
    ? allowed.some((cidr) => cidr.family === 6 && inPrefix(address.bytes, cidr.bytes, cidr.prefix))
    : allowed.some((cidr) => cidrContains(cidr, address));
  if (ok) return { ok: true };
  return {
    ok: false,
    class: cls,
    reason:
      `egress to ${named} is denied: it is ${ARTICLE[cls]} address (${cls}), ` +
      'and a rule must name this address or its range to allow it',
  };
}
