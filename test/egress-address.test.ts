/**
 * The pure core of connect-time egress checks: every spelling of an address must land on the
 * bytes the socket reaches, and every non-public address must be denied unless a rule names it.
 */
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  checkAddress,
  cidrContains,
  classify,
  parseAddress,
  parseCidr,
  unmap,
  type Address,
  type AddressClass,
  type Cidr,
} from '../host/src/capabilities/http/address.js';

function addr(text: string): Address {
  const a = parseAddress(text);
  if (!a) throw new Error(`test address ${text} did not parse`);
  return a;
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`test range ${text} did not parse`);
  return c;
}

describe('parseAddress', () => {
  it.each([
    ['127.0.0.1', 4, '127.0.0.1'],
    ['0.0.0.0', 4, '0.0.0.0'],
    ['255.255.255.255', 4, '255.255.255.255'],
    ['::1', 6, '::1'],
    ['[::1]', 6, '::1'],
    ['::', 6, '::'],
    ['[::]', 6, '::'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', 6, '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', 6, '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:0:3', 6, '1:0:0:2::3'],
    ['1:2:3:4:5:6:7::', 6, '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', 6, '0:2:3:4:5:6:7:8'],
    ['fe80::1', 6, 'fe80::1'],
    ['::ffff:127.0.0.1', 6, '::ffff:7f00:1'],
    ['[::FFFF:7F00:1]', 6, '::ffff:7f00:1'],
    ['64:ff9b::169.254.169.254', 6, '64:ff9b::a9fe:a9fe'],
  ] as const)('%s is IPv%i %s', (text, family, canonical) => {
    const a = addr(text);
    expect(a.family).toBe(family);
    expect(a.bytes.length).toBe(family === 4 ? 4 : 16);
    expect(a.text).toBe(canonical);
  });

  it.each([
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0X7F000001', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['127.000.000.001', '127.0.0.1'],
    ['2852039166', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['0251.0376.0251.0376', '169.254.169.254'],
    ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254'],
    ['169.254.43518', '169.254.169.254'],
    ['169.16689662', '169.254.169.254'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['1.2.3', '1.2.0.3'],
  ])('inet_aton alias %s is %s, as WHATWG URL reads it', (alias, canonical) => {
    expect(addr(alias).text).toBe(canonical);
    expect(new URL(`http://${alias}/`).hostname).toBe(canonical);
  });

  it('accepts what WHATWG URL leaves as the host, byte for byte', () => {
    const hosts = ['2130706433', '0x7f.1', '[::ffff:127.0.0.1]', '[64:ff9b::127.0.0.1]', '[::127.0.0.1]', '127.0.0.1.', '[2002:7f00:1::]'];
    for (const host of hosts) {
      const hostname = new URL(`http://${host}/`).hostname;
      const parsed = addr(hostname);
      expect(parsed.family === 6 ? `[${parsed.text}]` : parsed.text).toBe(hostname);
    }
  });

  it('agrees with node:net isIP on every form isIP accepts, except zone ids', () => {
    for (const text of ['1.2.3.4', '::', '::1', '1::', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', 'a:b:c:d:e:f:0:1', 'fe80::1%eth0']) {
      expect(isIP(text), text).not.toBe(0);
      expect(parseAddress(text) !== undefined, text).toBe(!text.includes('%'));
    }
  });

  it.each([
    'fe80::1%eth0',
    '[fe80::1%25eth0]',
    'fe80::1%1',
    '::1%lo',
  ])('refuses zone id %s', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });

  it.each([
    '',
    '256.1.1.1',
    '1.2.3.4.5',
    '1.2.3.256',
    '1.2.65536',
    '1.16777216',
    '4294967296',
    '0x100000000',
    '08.0.0.1',
    '1..2.3',
    '.1.2.3',
    '127.0.0.1.',
    ' 127.0.0.1',
    '127.0.0.1 ',
    '+1.2.3.4',
    '-1',
    '1e3',
    'localhost',
    '[127.0.0.1]',
    '[::1',
    '::1]',
    '::ffff:1.2.3.4.5',
    '::ffff:1.2.3',
    '::ffff:0x7f.0.0.1',
    '::ffff:127.000.0.1',
    '1.2.3.4::',
    ':::',
    '1::2::3',
    ':1::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '12345::',
    'g::1',
    '::1/128',
  ])('refuses malformed %j', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });
});

describe('unmap', () => {
  it.each([
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::127.0.0.1', '127.0.0.1'],
    ['::a9fe:a9fe', '169.254.169.254'],
    ['64:ff9b::a9fe:a9fe', '169.254.169.254'],
    ['64:ff9b::7f00:1', '127.0.0.1'],
    ['64:ff9b:1::a9fe:a9fe', '169.254.169.254'],
    ['2002:7f00:1::', '127.0.0.1'],
    ['2002:a9fe:a9fe:1:2:3:4:5', '169.254.169.254'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:db8::1', '2001:db8::1'],
    ['64:ff9b:2::1', '64:ff9b:2::1'],
    ['1.2.3.4', '1.2.3.4'],
  ])('%s reaches %s', (text, target) => {
    expect(unmap(addr(text)).text).toBe(target);
  });
});

describe('classify', () => {
  const table: readonly (readonly [string, AddressClass])[] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['192.0.0.192', 'metadata'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.254', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.51.100.1', 'reserved'],
    ['203.0.113.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['172.15.255.255', 'public'],
    ['172.32.0.0', 'public'],
    ['100.63.255.255', 'public'],
    ['100.128.0.0', 'public'],
    ['169.253.255.255', 'public'],
    ['198.20.0.0', 'public'],
    ['223.255.255.255', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['2001:4860:4860::8888', 'public'],
    ['fe00::1', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::808:808', 'public'],
    ['2002:808:808::', 'public'],
    // Mapped forms take the class of the IPv4 address they carry.
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:c0a8:101::1', 'private'],
    ['::ffff:255.255.255.255', 'broadcast'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::0.0.0.2', 'unspecified'],
    // Local-use NAT64 whose /96 tail looks public but whose /48 layout carries 169.254.169.254.
    ['64:ff9b:1:a9fe:a9:fe00:808:808', 'metadata'],
  ];
  it.each(table)('%s is %s', (text, cls) => {
    expect(classify(addr(text))).toBe(cls);
  });

  it.each([
    '127.0.0.1',
    '2130706433',
    '0x7f000001',
    '017700000001',
    '0177.0.0.1',
    '127.1',
    '::ffff:127.0.0.1',
    '[::ffff:7f00:1]',
    '::127.0.0.1',
    '64:ff9b::7f00:1',
    '64:ff9b:1::7f00:1',
    '2002:7f00:1::',
  ])('alias %s of 127.0.0.1 is loopback', (text) => {
    expect(classify(addr(text))).toBe('loopback');
  });

  it.each([
    '169.254.169.254',
    '2852039166',
    '0xa9fea9fe',
    '0251.0376.0251.0376',
    '169.16689662',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '64:ff9b::a9fe:a9fe',
    '2002:a9fe:a9fe::',
  ])('alias %s of 169.254.169.254 is metadata', (text) => {
    expect(classify(addr(text))).toBe('metadata');
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', 4, 8, '10.0.0.0/8'],
    ['0.0.0.0/0', 4, 0, '0.0.0.0/0'],
    ['127.0.0.1/32', 4, 32, '127.0.0.1/32'],
    ['127.0.0.1', 4, 32, '127.0.0.1/32'],
    ['::/0', 6, 0, '::/0'],
    ['fc00::/7', 6, 7, 'fc00::/7'],
    ['::1/128', 6, 128, '::1/128'],
    ['2001:DB8::/32', 6, 32, '2001:db8::/32'],
    ['::ffff:10.0.0.0/104', 4, 8, '10.0.0.0/8'],
    ['::ffff:7f00:1/128', 4, 32, '127.0.0.1/32'],
    ['64:ff9b::a9fe:a9fe/128', 4, 32, '169.254.169.254/32'],
    ['2002:a00::/24', 4, 8, '10.0.0.0/8'],
    ['2002::/16', 6, 16, '2002::/16'],
    ['64:ff9b::/96', 6, 96, '64:ff9b::/96'],
    ['::ffff:0:0/96', 6, 96, '::ffff:0:0/96'],
    ['::ffff:0:0/97', 4, 1, '0.0.0.0/1'],
    ['2002:a00:1:5::/64', 6, 64, '2002:a00:1:5::/64'],
  ] as const)('%s is IPv%i /%i', (text, family, prefix, canonical) => {
    const c = cidr(text);
    expect([c.family, c.prefix, c.text]).toEqual([family, prefix, canonical]);
  });

  it.each([
    '10.0.0.1/8',
    '192.168.1.0/16',
    '1.2.3.4/33',
    '::/129',
    'fe80::1/10',
    '10.0.0.0/',
    '10.0.0.0/08',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0.0/ 8',
    '/8',
    '',
    '10/8',
    '0x0a.0.0.0/8',
    '010.0.0.0/8',
    '[::1]/128',
    'fe80::%eth0/64',
    'localhost/32',
  ])('refuses %j', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });
});

describe('cidrContains', () => {
  it.each([
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['172.16.0.0/12', '172.31.0.1', true],
    ['172.16.0.0/12', '172.32.0.1', false],
    ['0.0.0.0/0', '127.0.0.1', true],
    ['0.0.0.0/0', '::1', false],
    ['::/0', '::1', true],
    ['::/0', '127.0.0.1', false],
    // An IPv4 range matches the forms that carry an IPv4 address...
    ['127.0.0.0/8', '::ffff:127.0.0.1', true],
    ['127.0.0.1/32', '64:ff9b::7f00:1', true],
    ['127.0.0.1/32', '2002:7f00:1::', true],
    ['127.0.0.1/32', '2130706433', true],
    ['::ffff:127.0.0.1/128', '127.0.0.1', true],
    // ...and a broad IPv6 range does not smuggle in the IPv4 addresses they carry.
    ['::/0', '::ffff:127.0.0.1', false],
    ['64:ff9b::/96', '64:ff9b::a9fe:a9fe', false],
    ['::ffff:0:0/96', '::ffff:127.0.0.1', false],
    ['2002::/16', '2002:7f00:1::', false],
    ['0.0.0.0/0', '64:ff9b::a9fe:a9fe', true],
    ['fe80::/10', 'fe80::1', true],
    ['fe80::/10', 'fec0::1', false],
    ['fd00:ec2::254/128', 'fd00:ec2::254', true],
  ] as const)('%s contains %s: %s', (range, text, expected) => {
    expect(cidrContains(cidr(range), addr(text))).toBe(expected);
  });
});

describe('checkAddress', () => {
  it.each(['8.8.8.8', '2606:4700:4700::1111', '::ffff:1.1.1.1'])('lets public %s through', (text) => {
    expect(checkAddress(addr(text), [])).toEqual({ ok: true });
  });

  const denied: readonly (readonly [string, AddressClass])[] = [
    ['127.0.0.1', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['fd12::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'cgnat'],
    ['169.254.169.254', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['224.0.0.251', 'multicast'],
    ['ff02::fb', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
  ];

  it.each(denied)('denies %s as %s, naming it, and allows it once a rule names it', (text, cls) => {
    const a = addr(text);
    const result = checkAddress(a, [cidr('8.8.8.0/24'), cidr('2606:4700::/32')]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.class).toBe(cls);
    expect(result.reason).toContain(a.text);
    expect(result.reason).toContain(`(${cls})`);
    expect(result.reason).toContain('a rule must name this address or its range');
    expect(checkAddress(a, [cidr(a.text)])).toEqual({ ok: true });
  });

  it('names both the reached address and the spelling it came in', () => {
    const result = checkAddress(addr('[::ffff:a9fe:a9fe]'), []);
    expect(result).toMatchObject({ ok: false, class: 'metadata' });
    if (result.ok) return;
    expect(result.reason).toContain('169.254.169.254 (written ::ffff:a9fe:a9fe)');
    expect(result.reason).toMatch(/cloud metadata/);
  });

  it('allows a mapped form through an IPv4 rule and an IPv4 form through a mapped rule', () => {
    expect(checkAddress(addr('::ffff:127.0.0.1'), [cidr('127.0.0.0/8')])).toEqual({ ok: true });
    expect(checkAddress(addr('64:ff9b::7f00:1'), [cidr('127.0.0.1/32')])).toEqual({ ok: true });
    expect(checkAddress(addr('127.0.0.1'), [cidr('::ffff:127.0.0.1/128')])).toEqual({ ok: true });
  });

  it('does not let a neighbouring rule allow an address', () => {
    expect(checkAddress(addr('127.0.0.2'), [cidr('127.0.0.1/32')])).toMatchObject({ ok: false, class: 'loopback' });
    expect(checkAddress(addr('169.254.169.254'), [cidr('169.254.0.0/24')])).toMatchObject({ ok: false, class: 'metadata' });
    expect(checkAddress(addr('::ffff:127.0.0.1'), [cidr('::/0')])).toMatchObject({ ok: false, class: 'loopback' });
  });

  it('allows the metadata address only through a rule wide enough to contain it', () => {
    expect(checkAddress(addr('169.254.169.254'), [cidr('169.254.0.0/16')])).toEqual({ ok: true });
  });

  it('allows a local-use NAT64 address denied by another layout only through an IPv6 rule', () => {
    const a = addr('64:ff9b:1:a9fe:a9:fe00:808:808');
    const result = checkAddress(a, [cidr('8.8.8.8/32')]);
    expect(result).toMatchObject({ ok: false, class: 'metadata' });
    if (!result.ok) expect(result.reason).toContain('64:ff9b:1:a9fe:a9:fe00:808:808');
    expect(checkAddress(a, [cidr('64:ff9b:1::/48')])).toEqual({ ok: true });
  });

  it('denies every alias of 127.0.0.1 and 169.254.169.254 found by the URL parser', () => {
    for (const host of ['2130706433', '0x7f.1', '0177.0.0.1', '127.1', '[::ffff:127.0.0.1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::]', '0xa9fea9fe', '[::ffff:a9fe:a9fe]', '[64:ff9b::a9fe:a9fe]']) {
      const result = checkAddress(addr(new URL(`http://${host}:8080/`).hostname), []);
      expect(result.ok, host).toBe(false);
    }
  });
});

describe('agreement with WHATWG URL on generated addresses', () => {
  // A fixed-seed generator keeps the run reproducible while covering spellings no table lists.
  let seed = 0x1ce;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };

  it('reads 500 IPv4 aliases as URL does', () => {
    for (let i = 0; i < 500; i++) {
      const bytes = [next(256), next(256), next(256), next(256)];
      const part = (v: number): string => [String(v), `0x${v.toString(16)}`, `0${v.toString(8)}`][next(3)] as string;
      const n = ((bytes[0] as number) * 2 ** 24) + ((bytes[1] as number) << 16) + ((bytes[2] as number) << 8) + (bytes[3] as number);
      const forms = [
        bytes.map(part).join('.'),
        part(n),
        `${part(bytes[0] as number)}.${part(n % 2 ** 24)}`,
        `${part(bytes[0] as number)}.${part(bytes[1] as number)}.${part(n % 2 ** 16)}`,
      ];
      for (const form of forms) expect(addr(form).text, form).toBe(new URL(`http://${form}/`).hostname);
    }
  });

  it('serializes 500 IPv6 addresses as URL does', () => {
    for (let i = 0; i < 500; i++) {
      const groups = Array.from({ length: 8 }, () => (next(3) === 0 ? next(0x10000) : 0));
      const text = groups.map((g) => g.toString(16)).join(':');
      expect(`[${addr(text).text}]`, text).toBe(new URL(`http://[${text}]/`).hostname);
    }
  });
});
