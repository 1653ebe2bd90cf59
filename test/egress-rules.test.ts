import { describe, expect, it } from 'vitest';
import {
  EgressRuleError,
  checkRequest,
  compileUrlRule,
  decide,
  parseRequestUrl,
  type Decision,
  type UrlRule,
} from '../host/src/capabilities/http/rules.js';

/** The EgressRuleError message a rule compiles to (fails the test if it compiles). */
function ruleError(text: string, methods?: readonly string[], rule = 'grants.http.allow[0]'): string {
  try {
    compileUrlRule(text, methods, rule);
  } catch (error) {
    expect(error).toBeInstanceOf(EgressRuleError);
    return (error as EgressRuleError).message;
  }
  throw new Error(`expected ${text} not to compile`);
}

function url(text: string): URL {
  const parsed = parseRequestUrl(text);
  if (!parsed.ok) throw new Error(`test setup: ${text} did not parse: ${parsed.reason}`);
  return parsed.url;
}

function refusal(text: string): string {
  const parsed = parseRequestUrl(text);
  if (parsed.ok) throw new Error(`expected ${text} to be refused, got ${parsed.url.href}`);
  return parsed.reason;
}

function allowOnly(text: string, methods?: readonly string[]): { allow: UrlRule[]; deny: UrlRule[] } {
  return { allow: [compileUrlRule(text, methods, 'grants.http.allow[0]')], deny: [] };
}

const ALLOW = (rule = 'grants.http.allow[0]'): Decision => ({ decision: 'allow', rule });
const noMatch = (method: string, href: string): Decision => ({
  decision: 'deny',
  rule: 'grants.http.allow',
  reason: `${method} ${href} matches no rule; add a rule like { url: "https://api.example.com/v1/*" } to grants.http.allow (with methods: [${method}] for methods other than GET and HEAD)`,
});

describe('compileUrlRule: typed parts', () => {
  it('compiles scheme, host, default port, prefix path and default methods', () => {
    const rule = compileUrlRule('https://API.Example.com/v1/*', undefined, 'grants.http.allow[0]');
    expect(rule).toEqual({
      rule: 'grants.http.allow[0]',
      url: 'https://API.Example.com/v1/*',
      scheme: 'https',
      host: { kind: 'exact', name: 'api.example.com' },
      port: 443,
      path: { kind: 'prefix', text: '/v1/' },
      methods: ['GET', 'HEAD'],
      methodsExplicit: false,
    });
    expect(Object.isFrozen(rule)).toBe(true);
  });

  it.each([
    ['subdomain wildcard', 'https://*.example.com/*', { kind: 'subdomains', suffix: '.example.com' }, 443],
    ['IDN wildcard is punycoded', 'https://*.bücher.example/*', { kind: 'subdomains', suffix: '.xn--bcher-kva.example' }, 443],
    ['IDN exact host is punycoded', 'https://bücher.example/*', { kind: 'exact', name: 'xn--bcher-kva.example' }, 443],
    ['explicit default port', 'https://h.example:443/*', { kind: 'exact', name: 'h.example' }, 443],
    ['http default port', 'http://h.example/*', { kind: 'exact', name: 'h.example' }, 80],
    ['other port', 'https://h.example:8443/*', { kind: 'exact', name: 'h.example' }, 8443],
    ['IPv4 literal', 'http://10.0.0.1:8080/*', { kind: 'exact', name: '10.0.0.1' }, 8080],
    ['IPv6 literal', 'http://[::1]:8080/*', { kind: 'exact', name: '[::1]' }, 8080],
    ['IPv6 literal, normalized', 'https://[0:0:0:0:0:0:0:1]/*', { kind: 'exact', name: '[::1]' }, 443],
  ])('%s', (_name, text, host, port) => {
    const rule = compileUrlRule(text, undefined, 'r');
    expect(rule.host).toEqual(host);
    expect(rule.port).toBe(port);
  });

  it.each([
    ['prefix', 'https://h.example/v1/*', { kind: 'prefix', text: '/v1/' }],
    ['prefix without slash', 'https://h.example/v1*', { kind: 'prefix', text: '/v1' }],
    ['every path', 'https://h.example/*', { kind: 'prefix', text: '/' }],
    ['exact', 'https://h.example/v1/status', { kind: 'exact', text: '/v1/status' }],
    ['root only', 'https://h.example/', { kind: 'exact', text: '/' }],
    ['non-ASCII is percent-encoded like requests', 'https://h.example/ü/*', { kind: 'prefix', text: '/%C3%BC/' }],
    ['lowercase escapes are uppercased', 'https://h.example/%c3%bc', { kind: 'exact', text: '/%C3%BC' }],
  ])('path: %s', (_name, text, path) => {
    expect(compileUrlRule(text, undefined, 'r').path).toEqual(path);
  });

  it('keeps explicit methods', () => {
    const rule = compileUrlRule('https://h.example/*', ['POST', 'GET'], 'r');
    expect(rule.methods).toEqual(['POST', 'GET']);
    expect(rule.methodsExplicit).toBe(true);
  });
});

describe('compileUrlRule: refusals name the rule and the fix', () => {
  const R = 'grants.http.allow[2]';
  it.each([
    ['ftp scheme', 'ftp://h.example/*', `${R}: bad url "ftp://h.example/*": the scheme "ftp" is not allowed; use https (or http)`],
    ['uppercase scheme', 'HTTPS://h.example/*', `${R}: bad url "HTTPS://h.example/*": write the scheme in lowercase: "https://"`],
    ['no scheme', 'h.example/*', `${R}: bad url "h.example/*": write an absolute http or https URL with a path, like "https://api.example.com/v1/*"`],
    ['scheme-relative', '//h.example/*', `${R}: bad url "//h.example/*": write an absolute http or https URL with a path, like "https://api.example.com/v1/*"`],
    ['no path', 'https://h.example', `${R}: bad url "https://h.example": there is no path; add "/*" to allow every path ("https://h.example/*") or "/" for the root only`],
    ['query', 'https://h.example/v1?x=1', `${R}: bad url "https://h.example/v1?x=1": rules cannot contain a query ("?"); a rule matches the path, whatever the query`],
    ['fragment', 'https://h.example/v1#x', `${R}: bad url "https://h.example/v1#x": rules cannot contain a fragment ("#"); fragments are never sent`],
    ['userinfo', 'https://u:p@h.example/*', `${R}: bad url "https://u:p@h.example/*": rules cannot contain a user name or password ("@"); put credentials in headers`],
    ['empty host', 'https:///v1/*', `${R}: bad url "https:///v1/*": the host is empty; write one like "https://api.example.com/v1/*"`],
    ['trailing dot', 'https://h.example./*', `${R}: bad url "https://h.example./*": the host "h.example." ends with a dot; remove it`],
    ['star inside a label', 'https://*example.com/*', `${R}: bad url "https://*example.com/*": "*" in the host may only be a whole first label followed by a dot, as in "*.example.com"`],
    ['star in the middle', 'https://api.*.example.com/*', `${R}: bad url "https://api.*.example.com/*": "*" in the host may only be a whole first label followed by a dot, as in "*.example.com"`],
    ['star as the host', 'https://*/*', `${R}: bad url "https://*/*": "*" in the host may only be a whole first label followed by a dot, as in "*.example.com"`],
    ['two stars', 'https://*.*.example.com/*', `${R}: bad url "https://*.*.example.com/*": "*" may appear only once in the host, as the whole first label ("*.example.com")`],
    ['wildcard over a TLD', 'https://*.com/*', `${R}: bad url "https://*.com/*": "*.com" would match every host under a top-level domain; name a domain like "*.example.com"`],
    ['wildcard over an IP', 'https://*.10.0.0.1/*', `${R}: bad url "https://*.10.0.0.1/*": "*." cannot be put in front of an IP address; write the address exactly`],
    ['non-canonical IPv4', 'https://0x7f.1/*', `${R}: bad url "https://0x7f.1/*": write the IPv4 address in dotted decimal form: "127.0.0.1"`],
    ['star inside the path', 'https://h.example/*/admin', `${R}: bad url "https://h.example/*/admin": "*" may only end the path, as in "https://api.example.com/v1/*"`],
    ['double star', 'https://h.example/v1/**', `${R}: bad url "https://h.example/v1/**": "**" is not supported; a single trailing "*" already matches any rest of the path`],
    ['dot segment', 'https://h.example/v1/../admin/*', `${R}: bad url "https://h.example/v1/../admin/*": the path contains the dot segment ".."; write the path it resolves to`],
    ['encoded dot segment', 'https://h.example/v1/%2e%2E/*', `${R}: bad url "https://h.example/v1/%2e%2E/*": the path contains the dot segment "%2e%2E"; write the path it resolves to`],
    ['double slash', 'https://h.example//v1/*', `${R}: bad url "https://h.example//v1/*": the path starts with "//", which some clients and servers read as a host; use a single "/"`],
    ['encoded slash', 'https://h.example/v1%2F*', `${R}: bad url "https://h.example/v1%2F*": the path contains %2F, an encoded "/" that a server may decode into a path separator; refused`],
    ['newline', 'https://h.example/v1/*\n', `${R}: bad url "https://h.example/v1/*\\n": contains the control character U+000A (CR, LF and TAB included); percent-encode it or remove it`],
    ['backslash', 'https://h.example\\v1/*', `${R}: bad url "https://h.example\\\\v1/*": contains a backslash, which parsers disagree on; use "/"`],
    ['port 0', 'https://h.example:0/*', `${R}: bad url "https://h.example:0/*": port 0 is not a port; remove it or write the real port`],
    ['bad port', 'https://h.example:99999/*', `${R}: bad url "https://h.example:99999/*": it is not a valid URL; check the host and port`],
  ])('%s', (_name, text, message) => {
    expect(ruleError(text, undefined, R)).toBe(message);
  });

  it.each([
    ['CONNECT', ['CONNECT'], `${R}: bad methods: "CONNECT" is never allowed (tunnels and request reflection); remove it`],
    ['TRACE', ['GET', 'TRACE'], `${R}: bad methods: "TRACE" is never allowed (tunnels and request reflection); remove it`],
    ['track, lowercase', ['track'], `${R}: bad methods: "track" is never allowed (tunnels and request reflection); remove it`],
    ['lowercase get', ['get'], `${R}: bad methods: write "get" in uppercase: "GET" (HTTP methods are case-sensitive)`],
    ['unknown', ['PURGE'], `${R}: bad methods: unknown method "PURGE"; use some of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`],
    ['duplicate', ['GET', 'GET'], `${R}: bad methods: duplicate method "GET"; remove one`],
    ['empty', [], `${R}: bad methods: the list is empty; omit "methods" for the default [GET, HEAD], or list some`],
  ])('methods: %s', (_name, methods, message) => {
    expect(ruleError('https://h.example/*', methods, R)).toBe(message);
  });
});

describe('parseRequestUrl: refusals', () => {
  const ABS = 'only absolute http:// or https:// URLs are allowed (no relative or scheme-relative URLs)';
  it.each([
    ['relative', '/x', `url "/x" refused: ${ABS}`],
    ['scheme-relative', '//evil.com/x', `url "//evil.com/x" refused: ${ABS}`],
    ['scheme without slashes', 'https:evil.com/x', `url "https:evil.com/x" refused: ${ABS}`],
    ['scheme with one slash', 'https:/evil.com/x', `url "https:/evil.com/x" refused: ${ABS}`],
    ['javascript:', 'javascript:alert(1)', `url "javascript:alert(1)" refused: ${ABS}`],
    ['file:', 'file:///etc/passwd', 'url "file:///etc/passwd" refused: the scheme "file" is not allowed; use https or http'],
    ['ftp:', 'ftp://h.example/x', 'url "ftp://h.example/x" refused: the scheme "ftp" is not allowed; use https or http'],
    ['userinfo', 'https://user:pw@h.example/', 'url "https://user:pw@h.example/" refused: URLs with a user name or password ("@") are not allowed; send credentials in a header'],
    ['empty userinfo', 'https://@h.example/', 'url "https://@h.example/" refused: URLs with a user name or password ("@") are not allowed; send credentials in a header'],
    ['userinfo that looks like the host', 'https://api.example.com@evil.com/v1/', 'url "https://api.example.com@evil.com/v1/" refused: URLs with a user name or password ("@") are not allowed; send credentials in a header'],
    ['empty host', 'https:///evil.com', 'url "https:///evil.com" refused: the host is empty'],
    ['trailing dot', 'https://h.example./', 'url "https://h.example./" refused: the host "h.example." ends with a dot; remove it'],
    ['empty label', 'https://h..example/', 'url "https://h..example/" refused: the host "h..example" has an empty label ("..")'],
    ['CR LF in path', 'https://h.example/x\r\nHost: evil', 'url "https://h.example/x\\r\\nHost: evil" refused: contains the control character U+000D (CR, LF and TAB included); percent-encode it or remove it'],
    ['TAB in host', 'https://h.exa\tmple/', 'url "https://h.exa\\tmple/" refused: contains the control character U+0009 (CR, LF and TAB included); percent-encode it or remove it'],
    ['NUL', 'https://h.example/\u0000', 'url "https://h.example/\\u0000" refused: contains the control character U+0000 (CR, LF and TAB included); percent-encode it or remove it'],
    ['leading space', ' https://h.example/', 'url " https://h.example/" refused: contains a space; percent-encode it as %20'],
    ['backslash', 'https://h.example\\@evil.com/', 'url "https://h.example\\\\@evil.com/" refused: contains a backslash, which parsers disagree on; use "/"'],
    ['double slash at start of path', 'https://h.example//evil.com/x', 'url "https://h.example//evil.com/x" refused: the path starts with "//", which some clients and servers read as a host; use a single "/"'],
    ['double slash inside the path', 'https://h.example/v1//admin', 'url "https://h.example/v1//admin" refused: the path contains an empty segment ("//"), which servers may merge away; use a single "/"'],
    // A server that decodes %2F before routing would see /v1/../admin = /admin: refused, never "matched as /v1…".
    ['encoded slash traversal', 'https://h.example/v1%2F..%2Fadmin', 'url "https://h.example/v1%2F..%2Fadmin" refused: the path contains %2F, an encoded "/" that a server may decode into a path separator; refused'],
    ['encoded backslash', 'https://h.example/v1/..%5cadmin', 'url "https://h.example/v1/..%5cadmin" refused: the path contains %5c, an encoded "\\" that a server may decode into a path separator; refused'],
    ['encoded NUL', 'https://h.example/v1/a%00.json', 'url "https://h.example/v1/a%00.json" refused: the path contains %00, an encoded control character; refused'],
    ['encoded unreserved char', 'https://h.example/v1/%61dmin', 'url "https://h.example/v1/%61dmin" refused: the path contains %61, an encoded "a" that servers read as the plain character; write "a"'],
    ['Tomcat path-parameter dot segment', 'https://h.example/v1/..;/admin', 'url "https://h.example/v1/..;/admin" refused: the path segment "..;" is a dot segment to some servers; refused'],
    ['stray percent', 'https://h.example/100%', 'url "https://h.example/100%" refused: contains a "%" not followed by two hex digits; write a literal "%" as %25'],
    ['bad port', 'https://h.example:99999/', 'url "https://h.example:99999/" refused: it is not a valid URL'],
  ])('%s', (_name, text, reason) => {
    expect(refusal(text)).toBe(reason);
  });

  it('returns the parsed URL it checked, normalized by WHATWG', () => {
    expect(url('https://API.Example.COM:443/v1/../admin?q=1').href).toBe('https://api.example.com/admin?q=1');
    expect(url('https://bücher.example/').hostname).toBe('xn--bcher-kva.example');
    expect(url('https://h.example/v1/%2e%2e/admin').pathname).toBe('/admin');
    expect(url('http://[::ffff:7f00:1]/').hostname).toBe('[::ffff:7f00:1]');
  });

  // The Deno alias class: the parser would normalize these, but a request must name an address as it is
  // checked and recorded, so the other spellings are refused with the canonical one.
  it.each([
    ['http://2130706433/x', '127.0.0.1'],
    ['http://0x7f.1/x', '127.0.0.1'],
    ['http://0177.0.0.1/x', '127.0.0.1'],
    ['http://127.1/x', '127.0.0.1'],
    ['http://%31%32%37.0.0.1/x', '127.0.0.1'],
    ['http://[::ffff:127.0.0.1]/x', '[::ffff:7f00:1]'],
    ['http://[0:0::1]:8080/x', '[::1]'],
    ['http://[::FFFF:7F00:1]/x', null],
  ])('refuses %s, another spelling of an address', (text, canonical) => {
    if (canonical === null) {
      // Only case differs: the same spelling, accepted.
      expect(url(text).hostname).toBe('[::ffff:7f00:1]');
      return;
    }
    expect(refusal(text)).toContain(`is another spelling of the address ${canonical}; write ${canonical}`);
  });
});

describe('decide: one row per bypass class', () => {
  const wildcard = allowOnly('https://*.example.com/*');
  const v1 = allowOnly('https://api.example.com/v1/*');
  const rows: [string, { allow: UrlRule[]; deny: UrlRule[] }, string, string, Decision][] = [
    ['wildcard matches a subdomain', wildcard, 'GET', 'https://a.example.com/x', ALLOW()],
    ['wildcard matches a deeper subdomain', wildcard, 'GET', 'https://a.b.example.com/x', ALLOW()],
    ['wildcard never matches the bare domain', wildcard, 'GET', 'https://example.com/x', noMatch('GET', 'https://example.com/x')],
    ['wildcard vs evilexample.com', wildcard, 'GET', 'https://evilexample.com/x', noMatch('GET', 'https://evilexample.com/x')],
    ['wildcard vs example.com.evil.com', wildcard, 'GET', 'https://example.com.evil.com/x', noMatch('GET', 'https://example.com.evil.com/x')],
    ['wildcard vs a.example.com.evil.com', wildcard, 'GET', 'https://a.example.com.evil.com/x', noMatch('GET', 'https://a.example.com.evil.com/x')],
    ['uppercase host matches', v1, 'GET', 'https://API.EXAMPLE.COM/v1/x', ALLOW()],
    ['uppercase host under a wildcard', wildcard, 'GET', 'https://A.Example.Com/x', ALLOW()],
    ['punycode request vs IDN rule', allowOnly('https://bücher.example/*'), 'GET', 'https://xn--bcher-kva.example/', ALLOW()],
    ['IDN request vs punycode rule', allowOnly('https://xn--bcher-kva.example/*'), 'GET', 'https://bücher.example/', ALLOW()],
    ['fullwidth-dot IDN is normalized', wildcard, 'GET', 'https://a\uff0eexample\uff0ecom/x', ALLOW()],
    ['explicit :443 vs default rule', v1, 'GET', 'https://api.example.com:443/v1/x', ALLOW()],
    ['default port vs explicit :443 rule', allowOnly('https://api.example.com:443/v1/*'), 'GET', 'https://api.example.com/v1/x', ALLOW()],
    ['port :8443 never matches a default-port rule', v1, 'GET', 'https://api.example.com:8443/v1/x', noMatch('GET', 'https://api.example.com:8443/v1/x')],
    ['http :443 is not https', v1, 'GET', 'http://api.example.com:443/v1/x', noMatch('GET', 'http://api.example.com:443/v1/x')],
    ['https vs http rule', allowOnly('http://api.example.com/v1/*'), 'GET', 'https://api.example.com/v1/x', noMatch('GET', 'https://api.example.com/v1/x')],
    ['path prefix matches', v1, 'GET', 'https://api.example.com/v1/users?id=1', ALLOW()],
    ['.. traversal is normalized to /admin first', v1, 'GET', 'https://api.example.com/v1/../admin', noMatch('GET', 'https://api.example.com/admin')],
    ['%2e%2e traversal is normalized first', v1, 'GET', 'https://api.example.com/v1/%2e%2e/admin', noMatch('GET', 'https://api.example.com/admin')],
    ['/v1 without slash is not /v1/*', v1, 'GET', 'https://api.example.com/v1', noMatch('GET', 'https://api.example.com/v1')],
    ['/v1evil is not /v1/*', v1, 'GET', 'https://api.example.com/v1evil', noMatch('GET', 'https://api.example.com/v1evil')],
    ['paths are case-sensitive', v1, 'GET', 'https://api.example.com/V1/x', noMatch('GET', 'https://api.example.com/V1/x')],
    ['escape case cannot dodge a rule', allowOnly('https://h.example/%C3%BC/*'), 'GET', 'https://h.example/%c3%bc/x', ALLOW()],
    ['default methods: GET', v1, 'GET', 'https://api.example.com/v1/x', ALLOW()],
    ['default methods: HEAD', v1, 'HEAD', 'https://api.example.com/v1/x', ALLOW()],
    ['default methods: not POST', v1, 'POST', 'https://api.example.com/v1/x', noMatch('POST', 'https://api.example.com/v1/x')],
    ['lowercase get matches nothing', v1, 'get', 'https://api.example.com/v1/x', noMatch('get', 'https://api.example.com/v1/x')],
    ['explicit methods', allowOnly('https://api.example.com/v1/*', ['POST']), 'POST', 'https://api.example.com/v1/x', ALLOW()],
    ['IPv4 literal rule', allowOnly('http://10.0.0.1:8080/*'), 'GET', 'http://10.0.0.1:8080/x', ALLOW()],
    ['IPv4 in another notation is the same address', allowOnly('http://127.0.0.1/*'), 'GET', 'new URL:http://0x7f.1/x', ALLOW()],
    ['IPv4 literal rule, other port', allowOnly('http://10.0.0.1:8080/*'), 'GET', 'http://10.0.0.1/x', noMatch('GET', 'http://10.0.0.1/x')],
    ['IPv6 literal rule', allowOnly('http://[::1]:8080/*'), 'GET', 'new URL:http://[0:0::1]:8080/x', ALLOW()],
    ['IPv4-mapped IPv6 is not the IPv4 rule', allowOnly('http://127.0.0.1/*'), 'GET', 'http://[::ffff:7f00:1]/x', noMatch('GET', 'http://[::ffff:7f00:1]/x')],
    ['no rules at all', { allow: [], deny: [] }, 'GET', 'https://api.example.com/', noMatch('GET', 'https://api.example.com/')],
  ];
  it.each(rows)('%s', (_name, rules, method, text, expected) => {
    // `new URL:` rows decide on a URL from elsewhere (parseRequestUrl refuses those spellings): decide must
    // still see the canonical address.
    const target = text.startsWith('new URL:') ? new URL(text.slice('new URL:'.length)) : url(text);
    expect(decide(rules, method, target)).toEqual(expected);
  });
});

describe('decide: deny wins', () => {
  const rules = {
    allow: [
      compileUrlRule('https://api.example.com/*', ['GET', 'POST'], 'grants.http.allow[0]'),
      compileUrlRule('https://*.example.com/*', undefined, 'grants.http.allow[1]'),
    ],
    deny: [
      compileUrlRule('https://api.example.com/admin/*', undefined, 'grants.http.deny[0]'),
      compileUrlRule('https://api.example.com/v1/delete', ['GET'], 'grants.http.deny[1]'),
      compileUrlRule('https://internal.example.com/*', undefined, 'grants.http.deny[2]'),
    ],
  };
  it.each<[string, string, string, Decision]>([
    ['allowed', 'GET', 'https://api.example.com/v1/x', ALLOW('grants.http.allow[0]')],
    ['second allow rule', 'GET', 'https://www.example.com/x', ALLOW('grants.http.allow[1]')],
    ['deny beats an earlier allow', 'GET', 'https://api.example.com/admin/users',
      { decision: 'deny', rule: 'grants.http.deny[0]', reason: 'GET https://api.example.com/admin/users matches the deny rule grants.http.deny[0] ("https://api.example.com/admin/*")' }],
    ['deny without methods denies POST too', 'POST', 'https://api.example.com/admin/users',
      { decision: 'deny', rule: 'grants.http.deny[0]', reason: 'POST https://api.example.com/admin/users matches the deny rule grants.http.deny[0] ("https://api.example.com/admin/*")' }],
    ['deny reached through ..', 'GET', 'https://api.example.com/v1/../admin/x',
      { decision: 'deny', rule: 'grants.http.deny[0]', reason: 'GET https://api.example.com/admin/x matches the deny rule grants.http.deny[0] ("https://api.example.com/admin/*")' }],
    ['deny with explicit methods only denies those', 'POST', 'https://api.example.com/v1/delete', ALLOW('grants.http.allow[0]')],
    ['deny with explicit methods', 'GET', 'https://api.example.com/v1/delete',
      { decision: 'deny', rule: 'grants.http.deny[1]', reason: 'GET https://api.example.com/v1/delete matches the deny rule grants.http.deny[1] ("https://api.example.com/v1/delete")' }],
    ['deny beats a wildcard allow, uppercase host', 'GET', 'https://INTERNAL.example.com/x',
      { decision: 'deny', rule: 'grants.http.deny[2]', reason: 'GET https://internal.example.com/x matches the deny rule grants.http.deny[2] ("https://internal.example.com/*")' }],
  ])('%s', (_name, method, text, expected) => {
    expect(decide(rules, method, url(text))).toEqual(expected);
  });

  it('deny bypasses that would need a server to read the path differently are refused at parse', () => {
    // Each of these would reach /admin/… on some server while not starting with "/admin/" as written.
    expect(parseRequestUrl('https://api.example.com//admin/x').ok).toBe(false);
    expect(parseRequestUrl('https://api.example.com/%61dmin/x').ok).toBe(false);
    expect(parseRequestUrl('https://api.example.com/v1/..;/admin/x').ok).toBe(false);
    expect(parseRequestUrl('https://api.example.com/v1%2F..%2Fadmin/x').ok).toBe(false);
  });

  it('fails closed on a URL that did not come from parseRequestUrl', () => {
    expect(decide(rules, 'GET', new URL('https://u:p@api.example.com/v1/x'))).toEqual({
      decision: 'deny',
      rule: 'grants.http',
      reason: 'url refused: URLs with a user name or password are not allowed; send credentials in a header',
    });
    expect(decide(rules, 'GET', new URL('https://api.example.com//x')).decision).toBe('deny');
  });
});

describe('checkRequest', () => {
  const target = url('https://api.example.com/v1/x');
  it('accepts ordinary headers and returns copies', () => {
    const headers = [{ name: 'Accept', value: 'application/json' }, { name: 'X-Api-Key', value: 'k\tv' }];
    const checked = checkRequest('POST', target, headers);
    expect(checked).toEqual({ ok: true, headers });
    if (checked.ok) expect(checked.headers[0]).not.toBe(headers[0]);
  });

  it.each([
    ['CONNECT', 'CONNECT', 'method "CONNECT" refused: CONNECT, TRACE and TRACK are never allowed'],
    ['TRACE', 'TRACE', 'method "TRACE" refused: CONNECT, TRACE and TRACK are never allowed'],
    ['TRACK', 'TRACK', 'method "TRACK" refused: CONNECT, TRACE and TRACK are never allowed'],
    ['lowercase connect', 'connect', 'method "connect" refused: in any case, CONNECT, TRACE and TRACK are never allowed'],
    ['lowercase get', 'get', 'method "get" refused: methods are case-sensitive; write "GET"'],
    ['not a token', 'GET /x HTTP/1.1\r\n', 'method "GET /x HTTP/1.1\\r\\n" refused: a method must be a token like "GET"'],
    ['empty', '', 'method "" refused: a method must be a token like "GET"'],
  ])('method: %s', (_name, method, reason) => {
    expect(checkRequest(method, target, [])).toEqual({ ok: false, reason });
  });

  const HOP = 'it is hop-by-hop or set by the host; remove it';
  it.each([
    ['Host', 'Host', 'evil.com', 'header "Host" refused: the host sets Host from the URL; put the host in the URL instead'],
    ['host, lowercase', 'host', 'evil.com', 'header "host" refused: the host sets Host from the URL; put the host in the URL instead'],
    ['HOST, uppercase', 'HOST', '127.0.0.1', 'header "HOST" refused: the host sets Host from the URL; put the host in the URL instead'],
    ['Connection', 'Connection', 'close', `header "Connection" refused: ${HOP}`],
    ['Keep-Alive', 'keep-alive', 'timeout=5', `header "keep-alive" refused: ${HOP}`],
    ['Proxy-Authenticate', 'Proxy-Authenticate', 'Basic', `header "Proxy-Authenticate" refused: ${HOP}`],
    ['Proxy-Authorization', 'Proxy-Authorization', 'Basic eA==', `header "Proxy-Authorization" refused: ${HOP}`],
    ['Proxy-* (any)', 'Proxy-Connection', 'keep-alive', `header "Proxy-Connection" refused: ${HOP}`],
    ['TE', 'TE', 'trailers', `header "TE" refused: ${HOP}`],
    ['Trailer', 'Trailer', 'X', `header "Trailer" refused: ${HOP}`],
    ['Transfer-Encoding', 'Transfer-Encoding', 'chunked', `header "Transfer-Encoding" refused: ${HOP}`],
    ['Upgrade', 'Upgrade', 'websocket', `header "Upgrade" refused: ${HOP}`],
    ['Content-Length (smuggling)', 'Content-Length', '0', `header "Content-Length" refused: ${HOP}`],
    ['name with a space', 'X Evil', 'v', 'header name "X Evil" refused: a header name must be a token (letters, digits, !#$%&\'*+-.^_`|~)'],
    ['name with a colon', 'X-A:b', 'v', 'header name "X-A:b" refused: a header name must be a token (letters, digits, !#$%&\'*+-.^_`|~)'],
    ['pseudo-header', ':authority', 'evil.com', 'header name ":authority" refused: a header name must be a token (letters, digits, !#$%&\'*+-.^_`|~)'],
    ['name with CRLF', 'X-A\r\nHost', 'evil.com', 'header name "X-A\\r\\nHost" refused: a header name must be a token (letters, digits, !#$%&\'*+-.^_`|~)'],
    ['empty name', '', 'v', 'header name "" refused: a header name must be a token (letters, digits, !#$%&\'*+-.^_`|~)'],
    ['value with CRLF', 'X-A', 'v\r\nHost: evil.com', 'header "X-A" refused: its value contains CR, LF or NUL (header injection)'],
    ['value with bare LF', 'X-A', 'v\nX-B: w', 'header "X-A" refused: its value contains CR, LF or NUL (header injection)'],
    ['value with NUL', 'X-A', 'v\u0000w', 'header "X-A" refused: its value contains CR, LF or NUL (header injection)'],
  ])('header: %s', (_name, name, value, reason) => {
    expect(checkRequest('GET', target, [{ name: 'Accept', value: '*/*' }, { name, value }])).toEqual({ ok: false, reason });
  });

  it('re-checks the URL', () => {
    expect(checkRequest('GET', new URL('https://u@h.example/'), [])).toEqual({
      ok: false,
      reason: 'url refused: URLs with a user name or password are not allowed; send credentials in a header',
    });
  });
});
