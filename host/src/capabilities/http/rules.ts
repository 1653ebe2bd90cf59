/**
 * Outbound HTTP rules: the pure core of egress. A rule such as `https://api.example.com/v1/*` is compiled at
 * load into typed parts (scheme, host, port, path, methods); a request URL is parsed once, checked, and the
 * same `URL` object is both decided on and dispatched. Like the kv patterns (policy/matchers.ts) no regex or
 * glob engine ever sees policy text: matching is string equality, `endsWith` and `startsWith` on normalized
 * parts, so a rule means what it looks like and nothing more.
 *
 * Every check here refuses rather than repairs. A request that is odd in any way a server might interpret
 * differently from us (a dot segment, an encoded slash, a doubled slash, a Host header) is refused with the
 * reason, so the guest learns exactly why and no request is ever sent that differs from the one we decided on.
 */

export type Scheme = 'http' | 'https';

/** Methods a rule may name. CONNECT, TRACE and TRACK are refused outright (tunnels and reflection). */
export const RULE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type RuleMethod = (typeof RULE_METHODS)[number];
export const DEFAULT_METHODS: readonly RuleMethod[] = Object.freeze(['GET', 'HEAD'] as const);
const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'TRACE', 'TRACK']);

const DEFAULT_PORT: Readonly<Record<Scheme, number>> = { http: 80, https: 443 };

export type HostMatcher =
  /** The host, lowercased and IDNA-normalized by the WHATWG URL parser (IP literals in canonical form). */
  | { readonly kind: 'exact'; readonly name: string }
  /** `*.example.com`: `suffix` is `.example.com`; matches hosts with at least one more label, never the bare domain. */
  | { readonly kind: 'subdomains'; readonly suffix: string };

export type PathMatcher =
  | { readonly kind: 'exact'; readonly text: string }
  /** A trailing `*`: every path starting with `text`. */
  | { readonly kind: 'prefix'; readonly text: string };

export interface UrlRule {
  /** Where the rule is in the policy, e.g. `grants.http.allow[2]`: what a decision names. */
  readonly rule: string;
  /** The rule as written. */
  readonly url: string;
  readonly scheme: Scheme;
  readonly host: HostMatcher;
  /** Explicit, or the scheme's default: `https://h/` and `https://h:443/` are the same rule. */
  readonly port: number;
  readonly path: PathMatcher;
  readonly methods: readonly RuleMethod[];
  /**
   * False when the author omitted `methods`. An allow rule then grants GET and HEAD only; a deny rule then
   * denies every method (a deny rule that silently let POST through would be a trap).
   */
  readonly methodsExplicit: boolean;
}

/** A rule that cannot be compiled. The message names the rule and how to fix it, and is shown as is. */
export class EgressRuleError extends Error {
  override readonly name = 'EgressRuleError';
  readonly rule: string;
  constructor(rule: string, message: string) {
    super(`${rule}: ${message}`);
    this.rule = rule;
  }
}

// C0 controls, DEL and C1 controls. A URL containing one is either an injection (CR/LF) or invisible in review.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const LONE_SURROGATE = /\p{Cs}/u;
// `scheme://authority rest`, where authority ends at the first `/`, `?` or `#` (backslashes are refused first,
// so this is the same split the WHATWG parser makes for http and https).
const SPLIT = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/su;
const PERCENT = /%([0-9A-Fa-f]{2})/gu;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/u;
const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/u;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/u;
const MAX_URL_LENGTH = 8192;
const EXAMPLE_RULE = '{ url: "https://api.example.com/v1/*" }';

function show(text: string): string {
  const quoted = JSON.stringify(text);
  return quoted.length > 80 ? `${quoted.slice(0, 76)}…"` : quoted;
}

function codePoint(char: string): string {
  return 'U+' + (char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
}

/** Problems with the raw text shared by rules and requests; `undefined` when none. */
function rawTextProblem(text: string): string | undefined {
  if (text.length === 0) return 'is empty';
  if (text.length > MAX_URL_LENGTH) return `is ${text.length} characters long; at most ${MAX_URL_LENGTH} are accepted`;
  const control = CONTROL.exec(text);
  if (control) {
    return `contains the control character ${codePoint(control[0])} (CR, LF and TAB included); percent-encode it or remove it`;
  }
  if (LONE_SURROGATE.test(text)) return 'contains a lone surrogate; URLs must be valid Unicode';
  if (text.includes('\\')) return 'contains a backslash, which parsers disagree on; use "/"';
  if (text.includes(' ')) return 'contains a space; percent-encode it as %20';
  if (BAD_PERCENT.test(text)) return 'contains a "%" not followed by two hex digits; write a literal "%" as %25';
  return undefined;
}

/**
 * The path a rule is matched against, or why the path is refused. Input is a WHATWG-normalized pathname (dot
 * segments `.`/`..`/`%2e` already resolved). Refused, because a server may read them differently from us:
 * - an empty segment (`//`): many servers merge slashes, so `/v1//admin` would dodge a deny of `/v1/admin*`;
 * - an encoded `/` or `\` (`%2F`, `%5C`): a server that decodes before routing sees extra segments, e.g.
 *   `/v1%2F..%2Fadmin` becomes `/v1/../admin` = `/admin`;
 * - an encoded control character (`%00`–`%1F`, `%7F`);
 * - an encoded unreserved character (`%61` for `a`): RFC 3986 makes it equal to the plain character, so a
 *   server reads `/v1/%61dmin` as `/v1/admin`, which would dodge a deny rule; there is no reason to encode one;
 * - a segment starting with `.;` or `..;`: Tomcat-style servers drop the `;…` and then resolve the dot segment.
 * The rest of the percent-escapes get uppercase hex (`%c3%bc` = `%C3%BC`) so case cannot dodge a rule.
 */
function canonicalPath(pathname: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (!pathname.startsWith('/')) return { ok: false, reason: 'the path must start with "/"' };
  if (pathname.startsWith('//')) {
    return { ok: false, reason: 'the path starts with "//", which some clients and servers read as a host; use a single "/"' };
  }
  if (pathname.includes('//')) {
    return { ok: false, reason: 'the path contains an empty segment ("//"), which servers may merge away; use a single "/"' };
  }
  let problem: string | undefined;
  const path = pathname.replace(PERCENT, (escape, hex: string) => {
    const code = Number.parseInt(hex, 16);
    const char = String.fromCharCode(code);
    if (problem === undefined) {
      if (char === '/' || char === '\\') {
        problem = `the path contains ${escape}, an encoded "${char}" that a server may decode into a path separator; refused`;
      } else if (code < 0x20 || code === 0x7f) {
        problem = `the path contains ${escape}, an encoded control character; refused`;
      } else if (/[A-Za-z0-9._~-]/u.test(char)) {
        problem = `the path contains ${escape}, an encoded "${char}" that servers read as the plain character; write "${char}"`;
      }
    }
    return escape.toUpperCase();
  });
  if (problem !== undefined) return { ok: false, reason: problem };
  for (const segment of path.split('/')) {
    if (segment.startsWith('.;') || segment.startsWith('..;')) {
      return { ok: false, reason: `the path segment ${show(segment)} is a dot segment to some servers; refused` };
    }
  }
  return { ok: true, path };
}

/** The problem with a parsed host (already lowercased and IDNA-normalized), or `undefined`. */
function hostProblem(hostname: string): string | undefined {
  if (hostname === '') return 'the host is empty';
  if (hostname.startsWith('[')) return undefined; // an IPv6 literal, validated by the parser
  if (hostname.endsWith('.')) return `the host ${show(hostname)} ends with a dot; remove it`;
  if (hostname.split('.').some((label) => label === '')) return `the host ${show(hostname)} has an empty label ("..")`;
  return undefined;
}

function isIpLiteral(hostname: string): boolean {
  return hostname.startsWith('[') || IPV4.test(hostname);
}

function effectivePort(url: URL, scheme: Scheme): number {
  return url.port === '' ? DEFAULT_PORT[scheme] : Number(url.port);
}

/**
 * Compiles one rule. `methods` omitted means GET and HEAD for an allow rule, and every method for a deny
 * rule (see `UrlRule.methodsExplicit`). Throws `EgressRuleError` naming `rule` and the fix.
 */
export function compileUrlRule(text: string, methods: readonly string[] | undefined, rule: string): UrlRule {
  const fail = (problem: string): never => {
    throw new EgressRuleError(rule, `bad url ${show(text)}: ${problem}`);
  };
  const raw = rawTextProblem(text);
  if (raw !== undefined) fail(raw);
  const split = SPLIT.exec(text);
  if (!split) {
    fail(`write an absolute http or https URL with a path, like "https://api.example.com/v1/*"`);
  }
  const [, schemeText = '', authority = '', rest = ''] = split ?? [];
  const scheme = schemeText.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') fail(`the scheme "${schemeText}" is not allowed; use https (or http)`);
  if (schemeText !== scheme) fail(`write the scheme in lowercase: "${scheme}://"`);
  const s = scheme as Scheme;
  if (text.includes('?')) fail('rules cannot contain a query ("?"); a rule matches the path, whatever the query');
  if (text.includes('#')) fail('rules cannot contain a fragment ("#"); fragments are never sent');
  if (authority.includes('@')) fail('rules cannot contain a user name or password ("@"); put credentials in headers');
  if (authority === '') fail('the host is empty; write one like "https://api.example.com/v1/*"');
  // The host: a leading `*.` is the only wildcard, parsed as a typed part; everything else goes through the
  // WHATWG parser, the same one that parses requests, so both sides are normalized identically.
  const wildcard = authority.startsWith('*.');
  const concreteAuthority = wildcard ? authority.slice(2) : authority;
  if (concreteAuthority.includes('*')) {
    fail(
      wildcard
        ? '"*" may appear only once in the host, as the whole first label ("*.example.com")'
        : '"*" in the host may only be a whole first label followed by a dot, as in "*.example.com"',
    );
  }
  if (rest === '') {
    fail(`there is no path; add "/*" to allow every path (${show(text + '/*')}) or "/" for the root only`);
  }

  const pathText = rest;
  const star = pathText.indexOf('*');
  if (pathText.includes('**')) fail('"**" is not supported; a single trailing "*" already matches any rest of the path');
  if (star !== -1 && star !== pathText.length - 1) fail('"*" may only end the path, as in "https://api.example.com/v1/*"');
  const prefix = star !== -1;
  const literalPath = prefix ? pathText.slice(0, -1) : pathText;
  for (const segment of literalPath.split('/')) {
    const decoded = segment.replace(/%2e/giu, '.');
    if (decoded === '.' || decoded === '..') {
      fail(`the path contains the dot segment ${show(segment)}; write the path it resolves to`);
    }
  }

  let parsed: URL;
  try {
    parsed = new URL(`${s}://${concreteAuthority}${literalPath === '' ? '/' : literalPath}`);
  } catch {
    return fail('it is not a valid URL; check the host and port');
  }
  const hostname = parsed.hostname;
  const badHost = hostProblem(hostname);
  if (badHost !== undefined) fail(badHost);
  const port = effectivePort(parsed, s);
  if (port === 0) fail('port 0 is not a port; remove it or write the real port');

  let host: HostMatcher;
  if (wildcard) {
    if (isIpLiteral(hostname)) fail('"*." cannot be put in front of an IP address; write the address exactly');
    if (!hostname.includes('.')) {
      fail(`"*.${hostname}" would match every host under a top-level domain; name a domain like "*.example.com"`);
    }
    host = Object.freeze({ kind: 'subdomains', suffix: `.${hostname}` });
  } else {
    const written = concreteAuthority.replace(/:\d*$/u, '').toLowerCase();
    if (IPV4.test(hostname) && written !== hostname) {
      fail(`write the IPv4 address in dotted decimal form: "${hostname}"`);
    }
    host = Object.freeze({ kind: 'exact', name: hostname });
  }

  const canonical = canonicalPath(parsed.pathname);
  if (!canonical.ok) fail(canonical.reason);
  const pathMatched = canonical.ok ? canonical.path : '';
  // An empty prefix (`https://h*`) cannot be written: SPLIT puts "*" in the host, refused above.
  const path: PathMatcher = Object.freeze({ kind: prefix ? 'prefix' : 'exact', text: pathMatched });

  let ruleMethods: readonly RuleMethod[] = DEFAULT_METHODS;
  if (methods !== undefined) {
    const failMethods = (problem: string): never => {
      throw new EgressRuleError(rule, `bad methods: ${problem}`);
    };
    if (methods.length === 0) failMethods(`the list is empty; omit "methods" for the default [GET, HEAD], or list some`);
    const seen = new Set<string>();
    for (const method of methods) {
      if (typeof method !== 'string') failMethods(`expected method names, got ${typeof method}`);
      if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
        failMethods(`${show(method)} is never allowed (tunnels and request reflection); remove it`);
      }
      if (!(RULE_METHODS as readonly string[]).includes(method)) {
        const upper = method.toUpperCase();
        failMethods(
          (RULE_METHODS as readonly string[]).includes(upper)
            ? `write ${show(method)} in uppercase: "${upper}" (HTTP methods are case-sensitive)`
            : `unknown method ${show(method)}; use some of ${RULE_METHODS.join(', ')}`,
        );
      }
      if (seen.has(method)) failMethods(`duplicate method "${method}"; remove one`);
      seen.add(method);
    }
    ruleMethods = Object.freeze([...methods] as RuleMethod[]);
  }

  return Object.freeze({
    rule,
    url: text,
    scheme: s,
    host,
    port,
    path,
    methods: ruleMethods,
    methodsExplicit: methods !== undefined,
  });
}

export type ParsedRequestUrl = { readonly ok: true; readonly url: URL } | { readonly ok: false; readonly reason: string };

/**
 * Parses a guest's request URL. The returned `URL` is the object to decide on AND to dispatch: nothing
 * re-parses the text later, so what was checked is what is sent.
 */
export function parseRequestUrl(text: string): ParsedRequestUrl {
  const refuse = (problem: string): ParsedRequestUrl => ({ ok: false, reason: `url ${show(text)} refused: ${problem}` });
  if (typeof text !== 'string') return { ok: false, reason: 'url refused: expected a string' };
  const raw = rawTextProblem(text);
  if (raw !== undefined) return refuse(raw);
  const split = SPLIT.exec(text);
  if (!split) {
    // `/x`, `//evil.com/x`, `https:evil.com`, `javascript:…`, `file:…`: nothing without `scheme://` is resolved.
    return refuse('only absolute http:// or https:// URLs are allowed (no relative or scheme-relative URLs)');
  }
  const [, schemeText = '', authority = ''] = split;
  const scheme = schemeText.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return refuse(`the scheme "${schemeText}" is not allowed; use https or http`);
  if (authority.includes('@')) return refuse('URLs with a user name or password ("@") are not allowed; send credentials in a header');
  if (authority === '') return refuse('the host is empty');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return refuse('it is not a valid URL');
  }
  // `http://2130706433/`, `http://0x7f.1/`, `http://[::ffff:127.0.0.1]/` are other spellings of an address:
  // the parser normalizes them (so every rule sees the canonical address), but a request is refused unless it
  // names an IP the way it is checked and recorded, so an audit never shows one address as another.
  if (IPV4.test(url.hostname) || url.hostname.startsWith('[')) {
    const written = authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d*$/u, '');
    if (written.toLowerCase() !== url.hostname) {
      return refuse(`the host ${show(written)} is another spelling of the address ${url.hostname}; write ${url.hostname}`);
    }
  }
  const target = requestTarget(url);
  if (!target.ok) return refuse(target.reason);
  return { ok: true, url };
}

interface Target {
  readonly scheme: Scheme;
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** The parts a rule is matched against; re-checks what `parseRequestUrl` checked, so `decide` fails closed on a URL from elsewhere. */
function requestTarget(url: URL): { ok: true; target: Target } | { ok: false; reason: string } {
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'http' && scheme !== 'https') return { ok: false, reason: `the scheme "${scheme}" is not allowed; use https or http` };
  if (url.username !== '' || url.password !== '') {
    return { ok: false, reason: 'URLs with a user name or password are not allowed; send credentials in a header' };
  }
  const badHost = hostProblem(url.hostname);
  if (badHost !== undefined) return { ok: false, reason: badHost };
  const port = effectivePort(url, scheme);
  if (port === 0) return { ok: false, reason: 'port 0 is not a port' };
  const path = canonicalPath(url.pathname);
  if (!path.ok) return path;
  return { ok: true, target: { scheme, host: url.hostname, port, path: path.path } };
}

export interface Header {
  readonly name: string;
  readonly value: string;
}

export type CheckedRequest = { readonly ok: true; readonly headers: Header[] } | { readonly ok: false; readonly reason: string };

// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the host computes itself. Guest-supplied, each is a known
// bypass: Host re-targets "self" requests (Spin CVE-2024-32980), Transfer-Encoding/Content-Length enable request
// smuggling, Upgrade and Connection change what the connection is, TE/Trailer smuggle trailers.
const REFUSED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
]);

/**
 * Checks a request's method and headers. Forbidden headers are REFUSED, not stripped: stripping would send a
 * request other than the one the guest wrote, silently; refusing tells the guest exactly why. On success the
 * headers are returned as a fresh array of fresh objects, so later mutation by the caller cannot change them.
 */
export function checkRequest(method: string, url: URL, headers: readonly Header[]): CheckedRequest {
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    return { ok: false, reason: `method ${show(String(method))} refused: a method must be a token like "GET"` };
  }
  if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
    return { ok: false, reason: `method "${method}" refused: ${FORBIDDEN_METHODS.has(method) ? '' : 'in any case, '}CONNECT, TRACE and TRACK are never allowed` };
  }
  if (method !== method.toUpperCase()) {
    // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET. Refused rather than uppercased, so the
    // method decided on is byte for byte the one sent.
    return { ok: false, reason: `method "${method}" refused: methods are case-sensitive; write "${method.toUpperCase()}"` };
  }
  const target = requestTarget(url);
  if (!target.ok) return { ok: false, reason: `url refused: ${target.reason}` };
  const out: Header[] = [];
  for (const header of headers) {
    const name = header.name;
    const value = header.value;
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      return { ok: false, reason: `header name ${show(String(name))} refused: a header name must be a token (letters, digits, !#$%&'*+-.^_\`|~)` };
    }
    const lower = name.toLowerCase();
    if (lower === 'host') {
      return { ok: false, reason: `header "${name}" refused: the host sets Host from the URL; put the host in the URL instead` };
    }
    if (REFUSED_HEADERS.has(lower) || lower.startsWith('proxy-')) {
      return { ok: false, reason: `header "${name}" refused: it is hop-by-hop or set by the host; remove it` };
    }
    if (typeof value !== 'string') return { ok: false, reason: `header "${name}" refused: its value must be a string` };
    if (/[\r\n\0]/u.test(value)) {
      return { ok: false, reason: `header "${name}" refused: its value contains CR, LF or NUL (header injection)` };
    }
    out.push({ name, value });
  }
  return { ok: true, headers: out };
}

export type Decision =
  | { readonly decision: 'allow'; readonly rule: string }
  | { readonly decision: 'deny'; readonly rule: string; readonly reason: string };

export function hostMatches(matcher: HostMatcher, host: string): boolean {
  if (matcher.kind === 'exact') return host === matcher.name;
  // At least one label before the suffix: `example.com` and `evilexample.com` never end with `.example.com`
  // as a proper subdomain; `example.com.evil.com` does not end with it at all.
  return host.length > matcher.suffix.length && host.endsWith(matcher.suffix) && !isIpLiteral(host);
}

function pathMatches(matcher: PathMatcher, path: string): boolean {
  return matcher.kind === 'prefix' ? path.startsWith(matcher.text) : path === matcher.text;
}

function ruleMatches(rule: UrlRule, list: 'allow' | 'deny', method: string, target: Target): boolean {
  const methodOk = list === 'deny' && !rule.methodsExplicit ? true : (rule.methods as readonly string[]).includes(method);
  return (
    methodOk &&
    rule.scheme === target.scheme &&
    rule.port === target.port &&
    hostMatches(rule.host, target.host) &&
    pathMatches(rule.path, target.path)
  );
}

/**
 * Decides a request: a matching deny rule wins over any allow rule; otherwise the first matching allow rule
 * (in policy order) allows; otherwise deny, naming the fix. `url` should come from `parseRequestUrl`; one that
 * would not pass it is denied.
 */
export function decide(rules: { readonly allow: readonly UrlRule[]; readonly deny: readonly UrlRule[] }, method: string, url: URL): Decision {
  const target = requestTarget(url);
  if (!target.ok) return { decision: 'deny', rule: 'grants.http', reason: `url refused: ${target.reason}` };
  for (const rule of rules.deny) {
    if (ruleMatches(rule, 'deny', method, target.target)) {
      return { decision: 'deny', rule: rule.rule, reason: `${method} ${url.href} matches the deny rule ${rule.rule} (${show(rule.url)})` };
    }
  }
  for (const rule of rules.allow) {
    if (ruleMatches(rule, 'allow', method, target.target)) return { decision: 'allow', rule: rule.rule };
  }
  return {
    decision: 'deny',
    rule: 'grants.http.allow',
    reason: `${method} ${url.href} matches no rule; add a rule like ${EXAMPLE_RULE} to grants.http.allow (with methods: [${method}] for methods other than GET and HEAD)`,
  };
}

/** Why `name` cannot be a header the host injects (a rule's `inject.header`), or `undefined`. */
export function injectedHeaderProblem(name: string): string | undefined {
  if (!TOKEN.test(name)) return `${show(name)} is not a header name (letters, digits, !#$%&'*+-.^_\`|~)`;
  const lower = name.toLowerCase();
  if (REFUSED_HEADERS.has(lower) || lower.startsWith('proxy-')) return `"${name}" is hop-by-hop or set by the host; inject another header`;
  return undefined;
}
