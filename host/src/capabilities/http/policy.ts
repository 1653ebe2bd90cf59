/**
 * `grants.http`: outbound HTTP rules. Each rule's URL is compiled here already (rules.ts), so a rule
 * that would not compile is a policy error with its path and fix, never a surprise at call time.
 *
 *   http:
 *     allow:
 *       - url: "https://api.github.com/repos/*"
 *         methods: [GET]
 *         inject: { header: Authorization, secret: GITHUB_TOKEN, format: "Bearer {}" }
 *       - { url: "http://10.0.0.5:8080/*", methods: [GET, POST] }      # an exact private IP: reachable
 *       - { url: "https://intranet.example/*", addresses: ["10.1.0.0/16"] }
 *       - { url: "https://api.example.com/v1/orders", methods: [POST], idempotencyKey: true }
 *     deny:  [{ url: "https://api.github.com/repos/admin*" }]         # deny wins
 *     ask:   [{ url: "https://api.github.com/repos/*", methods: [POST], askTimeoutMs: 30000 }]
 */
import { z } from 'zod';
import { MiB, askTimeout, describeValue, maxCalls, messages, size, strictObject, type CompileContext } from '../../policy/index.js';
import type { Grant } from '../define.js';
import { SECRET_NAME } from '../secrets.js';
import { parseAddress, parseCidr, type Cidr } from './address.js';
import { compileUrlRule, EgressRuleError, injectedHeaderProblem, type UrlRule } from './rules.js';

export const HTTP_EXAMPLE = 'http: { allow: [{ url: "https://api.example.com/v1/*", methods: [GET] }] }';

export const HTTP_DEFAULTS = Object.freeze({
  maxRequestBytes: MiB,
  maxResponseBytes: MiB,
  timeoutMs: 10_000,
  maxRedirects: 5,
} as const);

/** Bodies cross from the run's worker to the host thread and back; these bound what one call can move. */
export const HTTP_LIMITS = Object.freeze({
  maxRequestBytes: 8 * MiB,
  maxResponseBytes: 8 * MiB,
  timeoutMs: 300_000,
  maxRedirects: 20,
  rules: 256,
  addresses: 64,
} as const);

const text = (what: string) => z.string({ error: (issue) => `expected ${what} as a string, got ${describeValue(issue.input)}` });

const Inject = strictObject(
  {
    header: text('a header name').superRefine((name, ctx) => {
      const problem = injectedHeaderProblem(name);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    secret: text('a secret name').regex(SECRET_NAME, {
      error: (issue) => `bad secret name ${describeValue(issue.input)}: write the name of the host's secret (an environment variable name like GITHUB_TOKEN), never its value`,
    }),
    format: text('a format')
      .superRefine((format, ctx) => {
        if (format.split('{}').length !== 2) ctx.addIssue({ code: 'custom', message: `the format ${describeValue(format)} must contain "{}" exactly once (where the secret goes), like "Bearer {}"` });
        else if (/[\u0000-\u001f\u007f]/u.test(format)) ctx.addIssue({ code: 'custom', message: 'the format contains a control character (CR, LF, ...); remove it' });
        else if (format.length > 256) ctx.addIssue({ code: 'custom', message: 'the format is longer than 256 characters' });
      })
      .default('{}'),
  },
  (got) => messages.grantNotSettings('inject: { header: Authorization, secret: GITHUB_TOKEN, format: "Bearer {}" }', got),
);

const Addresses = z
  .array(
    text('an address or CIDR range').superRefine((cidr, ctx) => {
      if (!parseCidr(cidr)) ctx.addIssue({ code: 'custom', message: `bad address range ${describeValue(cidr)}: write an IP address or a CIDR range like "10.0.0.0/8" or "fd00::/8"` });
    }),
    { error: (issue) => `expected a list of address ranges like ["10.0.0.0/8"], got ${describeValue(issue.input)}` },
  )
  .max(HTTP_LIMITS.addresses, { error: () => `at most ${HTTP_LIMITS.addresses} address ranges per rule` });

const Methods = z
  .array(text('a method'), { error: (issue) => `expected a list of methods like [GET, POST], got ${describeValue(issue.input)}` })
  .optional();

/** Compiles the rule's url + methods once to report what is wrong with them; the compiled rule is rebuilt in compile.ts. */
function checkRule(rule: { url: string; methods?: string[] | undefined }, ctx: z.RefinementCtx): void {
  try {
    compileUrlRule(rule.url, rule.methods, '');
  } catch (error) {
    if (!(error instanceof EgressRuleError)) throw error;
    const message = error.message.replace(/^: /u, '');
    ctx.addIssue({ code: 'custom', path: [message.startsWith('bad methods') ? 'methods' : 'url'], message });
  }
}

const url = () => text('a URL like "https://api.example.com/v1/*"');

// Only a rule can promise a server de-duplicates: the header is sent when the rule says so.
const IdempotencyKey = z.boolean({ error: (issue) => `expected true or false, got ${describeValue(issue.input)}` }).optional();

const AllowRule = strictObject(
  { url: url(), methods: Methods, inject: Inject.optional(), addresses: Addresses.optional(), idempotencyKey: IdempotencyKey },
  (got) => messages.grantNotSettings('{ url: "https://api.example.com/v1/*", methods: [GET] }', got),
).superRefine(checkRule);

const AskRule = strictObject(
  { url: url(), methods: Methods, inject: Inject.optional(), addresses: Addresses.optional(), idempotencyKey: IdempotencyKey, askTimeoutMs: askTimeout() },
  (got) => messages.grantNotSettings('{ url: "https://api.example.com/v1/*", methods: [POST] }', got),
).superRefine(checkRule);

const DenyRule = strictObject({ url: url(), methods: Methods }, (got) =>
  messages.grantNotSettings('{ url: "https://api.example.com/v1/admin*" }', got),
).superRefine(checkRule);

function rules<T extends z.ZodType>(rule: T) {
  return z
    .array(rule, { error: (issue) => `expected a list of rules like [{ url: "https://api.example.com/v1/*" }], got ${describeValue(issue.input)}` })
    .max(HTTP_LIMITS.rules, { error: () => `at most ${HTTP_LIMITS.rules} rules per list; use a path prefix ("/v1/*") or a subdomain wildcard` })
    .default(() => []);
}

function bounded(max: number, fallback: number, unit: string) {
  const error = (issue: { input?: unknown }) => messages.limitOutOfRange(max, unit, issue.input);
  return z.number({ error }).int({ error }).min(0, { error }).max(max, { error }).default(fallback);
}

export const HttpSettings = strictObject(
  {
    allow: rules(AllowRule),
    deny: rules(DenyRule),
    ask: rules(AskRule),
    maxCalls: maxCalls(),
    maxRequestBytes: size(HTTP_LIMITS.maxRequestBytes, HTTP_DEFAULTS.maxRequestBytes),
    maxResponseBytes: size(HTTP_LIMITS.maxResponseBytes, HTTP_DEFAULTS.maxResponseBytes),
    timeoutMs: size(HTTP_LIMITS.timeoutMs, HTTP_DEFAULTS.timeoutMs),
    // 0: redirects are not followed; the guest gets the 3xx response.
    maxRedirects: bounded(HTTP_LIMITS.maxRedirects, HTTP_DEFAULTS.maxRedirects, ''),
  },
  (got) => messages.grantNotSettings(HTTP_EXAMPLE, got),
);

/** A secret the host adds to a request after the decision: the guest never sees it, the ledger names it only. */
export interface Injection {
  readonly header: string;
  /** The name of the host's secret (an environment variable or an entry of the host's secrets file). */
  readonly secret: string;
  /** Where the value goes, e.g. `Bearer {}`. */
  readonly format: string;
}

export interface HttpRule extends UrlRule {
  /** Non-public addresses (CIDRs) this rule's hosts may resolve to; an IP-literal host allows itself. */
  readonly addresses: readonly Cidr[];
  readonly inject?: Injection;
  /** Requests with a body carry `Idempotency-Key: <run>-<seq>`, so the server can de-duplicate a retried effect. */
  readonly idempotencyKey: boolean;
  /** For an `ask` rule: how long to wait for the approver. */
  readonly askTimeoutMs?: number;
}

export interface HttpGrant extends Grant {
  readonly allow: readonly HttpRule[];
  readonly deny: readonly UrlRule[];
  readonly ask: readonly HttpRule[];
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly timeoutMs: number;
  readonly maxRedirects: number;
}

type HttpSettings = z.output<typeof HttpSettings>;
type RuleSettings = HttpSettings['ask'][number] | HttpSettings['allow'][number];

export function compileHttp(http: HttpSettings, { rule: key }: CompileContext): HttpGrant {
  const rule = (list: 'allow' | 'ask') => (written: RuleSettings, index: number): HttpRule => {
    const id = `${key}.${list}[${index}]`;
    const compiled = compileUrlRule(written.url, written.methods, id);
    const addresses: Cidr[] = (written.addresses ?? []).map((text) => parseCidr(text)!);
    // A rule naming an exact IP may reach it whatever its class: that is the author's explicit choice.
    if (compiled.host.kind === 'exact') {
      const literal = compiled.host.name.replace(/^\[|\]$/gu, '');
      if (parseAddress(literal)) addresses.push(parseCidr(literal)!);
    }
    return Object.freeze({
      ...compiled,
      addresses: Object.freeze(addresses),
      idempotencyKey: written.idempotencyKey === true,
      ...(written.inject ? { inject: Object.freeze({ ...written.inject }) } : {}),
      ...('askTimeoutMs' in written ? { askTimeoutMs: written.askTimeoutMs } : {}),
    });
  };
  return Object.freeze({
    mode: 'grant',
    rule: key,
    maxCalls: http.maxCalls,
    allow: Object.freeze(http.allow.map(rule('allow'))),
    deny: Object.freeze(http.deny.map((written, index) => compileUrlRule(written.url, written.methods, `${key}.deny[${index}]`))),
    ask: Object.freeze(http.ask.map(rule('ask'))),
    maxRequestBytes: http.maxRequestBytes,
    maxResponseBytes: http.maxResponseBytes,
    timeoutMs: http.timeoutMs,
    maxRedirects: http.maxRedirects,
  });
}
